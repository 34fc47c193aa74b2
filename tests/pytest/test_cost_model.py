"""The per-MVM cost: ADC rounds in the timing, Walden's law in the ADC energy.

Every number is derived by hand in the comments from the shipped targets'
files (``hw_targets/*.toml``) and the formulas of ``cimflow/cost_model.py``.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cimflow.cost_model import (
    ZeroShares,
    adc_conversion_pj,
    adc_rounds,
    mvm_cost,
    mvm_cycles,
    mvm_issue_interval,
    with_mvm_choices,
)
from cimflow.hw_targets import HardwareTarget, load_target, shipped_targets


def with_array(t: HardwareTarget, **changes: int) -> HardwareTarget:
    return dataclasses.replace(t, array=dataclasses.replace(t.array, **changes))


# --- ADC sharing: the issue interval follows the ADC rounds -------------------


def test_jain_wordline_adc_rounds_by_hand() -> None:
    # 64 columns share 8 ADCs: 8 rounds per input pass at full width. The
    # file's one-round keys: latency 10 (8 input bits x 1 round + 2 of
    # shift-add), interval 8; each round adds 8.
    t = load_target("jain_wordline")
    assert (adc_rounds(t, 64), adc_rounds(t, 8), adc_rounds(t, 20)) == (8, 1, 3)
    # Full width: interval 8 x 8 = 64, latency 10 - 8 + 64 = 66; 256 rows =
    # 8 wordline passes of 32: 4 vectors take 8 x (66 + 3 x 64) = 2064.
    assert mvm_issue_interval(t, 64) == 64
    assert mvm_cycles(t, 4, 256, 64) == 2064
    # 8 columns, one round: interval 8, latency 10; 32 rows, one pass:
    # 10 + 3 x 8 = 34.
    assert mvm_issue_interval(t, 8) == 8
    assert mvm_cycles(t, 4, 32, 8) == 34
    # 20 columns, 3 rounds: interval 24, latency 26; 64 rows, two passes:
    # 2 x (26 + 24) = 100.
    assert mvm_issue_interval(t, 20) == 24
    assert mvm_cycles(t, 2, 64, 20) == 100


def test_pimcomp_default_adc_rounds_by_hand() -> None:
    # 128 columns share 16 ADCs: 8 rounds of the one-round keys 500 / 500, so
    # a full-width MVM takes PIMCOMP's 4000 cycles (500 - 500 + 8 x 500) and
    # the crossbar's next starts when it ends (PIMCOMP: an array group's next
    # MVM waits for its previous one's 4000 ns).
    t = load_target("pimcomp_default")
    assert mvm_cycles(t, 3, 128, 128) == 3 * 4000
    # 16 columns (two 16-bit outputs of 8 slices), one round: interval 500,
    # latency 500; 3 vectors: 1500.
    assert mvm_cycles(t, 3, 128, 16) == 1500
    # 100 columns, 7 rounds: interval 3500, latency 500 - 500 + 3500 = 3500.
    assert mvm_cycles(t, 1, 128, 100) == 3500


def test_one_adc_per_column_does_not_depend_on_columns() -> None:
    # dynaplasia and isscc21_core have one ADC per column: one round always.
    for name, cols in (("dynaplasia", 320), ("isscc21_core", 256)):
        t = load_target(name)
        assert t.array.adcs_per_array == cols
        assert mvm_cycles(t, 4, t.array.rows, 8) == 10 + 3 * 8
        assert mvm_cycles(t, 4, t.array.rows, cols) == 10 + 3 * 8


def test_adcs_per_array_alone_changes_the_timing() -> None:
    # tiny has 32 ADCs for 32 columns: one round, 10 + 3 x 8 = 34 cycles for
    # 4 vectors on any columns. With 8 ADCs, 32 columns take 4 rounds:
    # interval 32, latency 10 - 8 + 32 = 34, 4 vectors 34 + 3 x 32 = 130;
    # 8 columns still take one round.
    tiny = load_target("tiny")
    shared = with_array(tiny, adcs_per_array=8)
    assert mvm_cycles(tiny, 4, 32, 32) == mvm_cycles(tiny, 4, 32, 8) == 34
    assert mvm_cycles(shared, 4, 32, 32) == 130
    assert mvm_cycles(shared, 4, 32, 8) == 34


@given(
    name=st.sampled_from(shipped_targets()),
    vectors=st.integers(1, 50),
    rows_fraction=st.floats(0, 1),
    data=st.data(),
)
def test_fewer_columns_never_take_longer(
    name: str, vectors: int, rows_fraction: float, data: st.DataObject
) -> None:
    t = load_target(name)
    rows = max(1, round(rows_fraction * t.array.rows))
    cols = data.draw(st.integers(1, t.array.cols))
    full = mvm_cycles(t, vectors, rows, t.array.cols)
    assert mvm_cycles(t, vectors, rows, cols) <= full
    assert mvm_cycles(t, vectors, rows, max(1, cols - 1)) <= mvm_cycles(
        t, vectors, rows, cols
    )
    # At full width every round of the one-round keys.
    a = t.array
    rounds = -(-a.cols // a.adcs_per_array)
    assert 1 <= mvm_issue_interval(t, cols) <= rounds * a.mvm_issue_interval_cycles
    passes = -(-rows // a.active_rows)
    interval = rounds * a.mvm_issue_interval_cycles
    latency = a.mvm_latency_cycles - a.mvm_issue_interval_cycles + interval
    assert full == passes * (latency + (vectors - 1) * interval)


# --- ADC energy: Walden's figure of merit -------------------------------------


@pytest.mark.parametrize(
    ("name", "pj"),
    [
        # 1.135 mW x 20 ns at 8 bits: 0.088671875 pJ/step x 2^8.
        ("pimcomp_default", 22.7),
        ("isaac", 22.7),
        ("puma", 22.7),
        ("multichip", 22.7),
        # ISAAC's ADC: 6.51 fJ/step x 2^8 (2 mW / 1.2 GS/s = 1.67 pJ).
        ("dynaplasia", 1.66656),
        ("isscc21_core", 1.66656),
        ("jain_wordline", 1.66656),
        # tiny: 2^-9 pJ/step x 2^8.
        ("tiny", 0.5),
    ],
)
def test_shipped_adc_conversion_energy(name: str, pj: float) -> None:
    assert adc_conversion_pj(load_target(name)) == pytest.approx(pj)


def test_adc_bits_alone_change_adc_energy() -> None:
    # pimcomp_default, 2 arrays x 3 vectors, 128 rows, 16 columns: 6 x 1
    # wordline pass x 16 input passes x 16 columns = 1536 conversions of
    # 22.7 pJ = 34867.2 pJ. Two more bits: 2^2 = 4 times as much.
    t = load_target("pimcomp_default")
    eight = mvm_cost(t, 2, 3, 128, 16)
    assert eight.energy_pj["adc"] == pytest.approx(34867.2)
    ten = mvm_cost(with_array(t, adc_bits=10), 2, 3, 128, 16)
    assert ten.energy_pj["adc"] == pytest.approx(4 * 34867.2)
    assert ten.energy_pj["array"] == eight.energy_pj["array"]
    assert ten.energy_pj["dac"] == eight.energy_pj["dac"]
    assert ten.cycles == eight.cycles
    # Sharing ADCs changes the time, not the conversions: 4 ADCs take 4
    # rounds for 16 columns, interval 2000, latency 500 - 500 + 2000 = 2000,
    # 3 vectors 2000 + 2 x 2000 = 6000 cycles (16 ADCs: 500 + 2 x 500 = 1500).
    shared = mvm_cost(with_array(t, adcs_per_array=4), 2, 3, 128, 16)
    assert shared.energy_pj == eight.energy_pj
    assert (shared.cycles, eight.cycles) == (6000, 1500)


def test_every_wordline_pass_converts_its_columns() -> None:
    # jain_wordline, one vector on 256 rows x 64 columns: 8 wordline passes,
    # each converting the 64 columns for each of 8 input bits: 4096
    # conversions x 0.00651 x 2^8 = 6826.22976 pJ; the DAC drives each of the
    # 256 rows once per input bit: 2048 x 0.01 = 20.48 pJ; the array: 8
    # passes x 0.24 = 1.92 pJ.
    t = load_target("jain_wordline")
    cost = mvm_cost(t, 1, 1, 256, 64)
    assert cost.energy_pj["adc"] == pytest.approx(6826.22976)
    assert cost.energy_pj["dac"] == pytest.approx(20.48)
    assert cost.energy_pj["array"] == pytest.approx(1.92)
    assert cost.cycles == 8 * 66  # 8 wordline passes of 8 ADC rounds


def test_every_conversion_is_shifted_and_added() -> None:
    # jain_wordline, one vector on 256 rows x 64 columns: 4096 conversions
    # (above), each shifted by its input bit and added to its output's sum
    # at PUMA's 0.045 pJ: 184.32 pJ; two more ADC bits quadruple the
    # conversions' energy, not the additions'.
    t = load_target("jain_wordline")
    assert mvm_cost(t, 1, 1, 256, 64).energy_pj["shift_add"] == pytest.approx(184.32)
    ten_bits = mvm_cost(with_array(t, adc_bits=10), 1, 1, 256, 64)
    assert ten_bits.energy_pj["shift_add"] == pytest.approx(184.32)
    # Input planes skipped as zero are neither converted nor added: a quarter
    # of them skipped leaves 3/4 x 184.32 = 138.24 pJ.
    skipping = with_mvm_choices(
        with_array(t, zero_skip=True, zero_detect_rows=32), 0, ZeroShares(0.25, 0.25)
    )
    cost = mvm_cost(skipping, 1, 1, 256, 64)
    assert cost.energy_pj["shift_add"] == pytest.approx(138.24)
    # A digital macro's shift-adders are in its array energy.
    assert mvm_cost(load_target("ciminus"), 1, 1, 1024, 32).energy_pj["shift_add"] == 0
