"""The Hermes system files: what they hold, what they derive, what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimflow.errors import CimError
from cimflow.ndp.system import load_system, shipped_systems


def test_the_shipped_systems_load_with_the_papers_figures() -> None:
    assert shipped_systems() == ["hermes", "hermes_host"]
    hermes = load_system("hermes")
    assert hermes.kind == "ndp"
    assert hermes.dimm.count == 8
    assert hermes.dimm_capacity == 8 * 32 * 2**30
    # DDR4-3200 x 8 B = 25.6 GB/s per rank; the bank-group-interleaved
    # stream keeps all of it; two ranks at once.
    assert hermes.rank_peak_bandwidth == pytest.approx(25.6e9)
    assert hermes.rank_streaming_efficiency == 1.0
    assert hermes.dimm_bandwidth == pytest.approx(51.2e9)
    # 256 multipliers x 8 FP16 values / 16 bit-serial cycles at 1 GHz.
    assert hermes.ndp_macs_per_second == pytest.approx(128e9)
    assert hermes.dimm_link_bandwidth == pytest.approx(25e9)
    host = load_system("hermes_host")
    assert host.kind == "host"
    assert host.host.memory_bandwidth_gb_per_s == 89.6
    assert host.gpu == hermes.gpu
    # what an i9-13900K addresses: 192 GB on two DDR5 channels
    assert host.dimm_capacity == 192 * 2**30 and host.dimm.count == 4


def test_one_bank_group_halves_the_stream() -> None:
    # tCCD_L = 8 between bursts of one group against tBL = 4 of data.
    system = load_system("hermes", {"dimm.bank_groups": 1})
    assert system.rank_streaming_efficiency == pytest.approx(0.5)


def test_a_slow_activation_rate_limits_the_stream() -> None:
    # A 64 B row every tFAW / 4 = 6.5 cycles cannot feed 16 B per cycle
    # (with 16 banks, each opening a row every tRC / 16 = 4.75 cycles).
    system = load_system("hermes", {"dimm.row_bytes": 64, "dimm.banks_per_group": 8})
    assert system.rank_streaming_efficiency == pytest.approx(64 / 6.5 / 16)
    # With 8 banks a bank reopens only every tRC / 8 = 9.5 cycles.
    system = load_system("hermes", {"dimm.row_bytes": 64})
    assert system.rank_streaming_efficiency == pytest.approx(64 / 9.5 / 16)
    # One bank group of 16 banks: a 32 B row every tRRD_L = 6 cycles (tFAW
    # / 4 = 5, tRC / 16 = 4.75), below the bursts' 64 B per tCCD_L = 8.
    one_group = {"dimm.row_bytes": 32, "dimm.bank_groups": 1, "dimm.t_faw": 20}
    system = load_system("hermes", {**one_group, "dimm.banks_per_group": 16})
    assert system.rank_streaming_efficiency == pytest.approx(32 / 6 / 16)


def test_the_dimm_channels_can_limit_the_gpus_path() -> None:
    # 8 DIMMs, 2 per channel: 4 x 25.6 GB/s, more than PCIe's 31.5 GB/s;
    # one DIMM alone has one channel, 25.6 GB/s.
    assert load_system("hermes").link_bandwidth == pytest.approx(31.5e9)
    single = load_system("hermes", {"dimm.count": 1, "dimm.capacity_bytes": 2**40})
    assert single.link_bandwidth == pytest.approx(25.6e9)
    # a layer streamed in the prefill first waits tRCD + tCL = 48 cycles of 1.6 GHz
    assert load_system("hermes").dimm_access_seconds == pytest.approx(30e-9)


def test_the_ndp_buffer_slices_the_step_not_the_batch() -> None:
    from cimflow.errors import CimError
    from cimflow.ndp.costs import MLP, cold_neuron_seconds, ndp_slices, neuron_bytes
    from cimflow.ndp.llm import load_shape

    shape = load_shape("llama2-70b")  # 8192 x 2 B = 16 KiB per vector
    hermes = load_system("hermes")  # 256 KiB: the vectors in and out of 8
    assert [ndp_slices(hermes, shape, b) for b in (1, 8, 9, 16, 64)] == [1, 1, 2, 2, 8]
    assert ndp_slices(load_system("hermes_host"), shape, 64) == 1
    # at batch 16 a DIMM still reads each of 1000 neurons once, plus the
    # partial sums crossing the one slice boundary, out and back
    read, batch = 1000.0, 16
    weights = read * neuron_bytes(shape, MLP)
    partials = 2 * read * batch * 4
    assert cold_neuron_seconds(hermes, shape, MLP, read, read, batch) == pytest.approx(
        (weights + partials) / hermes.dimm_bandwidth
    )
    assert cold_neuron_seconds(hermes, shape, MLP, read, read, 1) == pytest.approx(
        weights / hermes.dimm_bandwidth
    )
    tiny = load_system("hermes", {"ndp.buffer_bytes": 1024})
    with pytest.raises(CimError, match="cannot hold one llama2-70b input vector"):
        ndp_slices(tiny, shape, 1)


def test_a_child_file_inherits_and_overrides(tmp_path: Path) -> None:
    child = tmp_path / "sixteen.toml"
    child.write_text(
        'base = "hermes"\n[system]\nname = "sixteen"\n[dimm]\ncount = 16\n',
        encoding="utf-8",
    )
    system = load_system(str(child))
    assert (system.name, system.dimm.count) == ("sixteen", 16)
    assert system.gpu == load_system("hermes").gpu


def test_a_child_that_names_no_system_is_named_after_its_file(tmp_path: Path) -> None:
    child = tmp_path / "wide_ndp.toml"
    child.write_text('base = "hermes"\n[ndp]\nmultipliers = 512\n', encoding="utf-8")
    system = load_system(str(child))
    assert system.name == "wide_ndp"
    assert system.system.description.startswith("hermes with ndp.multipliers changed")
    assert system.system.kind == "ndp"


@pytest.mark.parametrize(
    ("overrides", "fault"),
    [
        ({"dimm.count": 0}, "'dimm.count' must be positive"),
        ({"dimm.ranks_in_parallel": 5}, "'dimm.ranks_in_parallel'"),
        (
            {"gpu.bandwidth_efficiency": 1.5},
            "'gpu.bandwidth_efficiency' must be at most 1",
        ),
        ({"system.kind": "fpga"}, "'system.kind' must be one of ndp, host"),
        ({"dimm.t_rc": 30}, "'dimm.t_rc'"),
        ({"dimm.colour": 3}, "unknown key 'dimm.colour'"),
        ({"gpu.memory_bytes": "lots"}, "'gpu.memory_bytes' must be an integer"),
        ({"cpu.cores": 8}, "unknown table 'cpu'"),
        ({"ndp.operand_bits": 12}, "'ndp.operand_bits' must be a multiple of 8"),
    ],
)
def test_bad_values_are_one_line_errors(
    overrides: dict[str, object], fault: str
) -> None:
    with pytest.raises(CimError, match=fault) as error:
        load_system("hermes", overrides)
    assert "\n" not in str(error.value)


def test_unknown_and_missing_systems_are_named(tmp_path: Path) -> None:
    with pytest.raises(CimError, match=r"unknown system 'dgx'.*hermes, hermes_host"):
        load_system("dgx")
    with pytest.raises(CimError, match=r"nowhere\.toml: system file not found"):
        load_system(str(tmp_path / "nowhere.toml"))
    partial = tmp_path / "partial.toml"
    partial.write_text('[system]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(
        CimError, match=r"partial.toml: missing key 'system.description'"
    ):
        load_system(str(partial))
