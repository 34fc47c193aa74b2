"""Static power (leakage): every array with its ADCs, buffer, vector unit
and core's share of the interconnect leaks for the whole run, ``static
power x makespan`` (CIMinus's energy model, ``ciminus.md`` §6.2), or, on
a target that gates idle cores (``energy.gate_idle_cores``, PUMA), each
core's units from its first op to its last; reported
as the ``array_static``, ``buffer_static``, ``vector_static`` and
``interconnect_static`` components and as a row of its own in the
per-layer figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sim_traces import mvm, run, small_target, times, vector

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.layers import STATIC_POWER, layer_rows
from cimflow.cost_model import STATIC_COMPONENTS, static_energy
from cimflow.hw_targets import HardwareTarget, load_target, overridden
from cimflow.tools.cim_verify import compile_model, module_trace

MODEL = Path(__file__).resolve().parents[2] / "tools" / "models" / "resnet_tiny.onnx"


def test_static_energy_is_power_times_time() -> None:
    hw = load_target("ciminus")
    cycles = 5000  # 10 us at 0.5 GHz
    energy = static_energy(hw, cycles)
    assert energy["array_static"] == pytest.approx(4 * 0.045 * 10_000)
    assert energy["buffer_static"] == pytest.approx((2.88 + 0.36) * 10_000)
    assert energy["vector_static"] == energy["interconnect_static"] == 0.0
    assert static_energy(load_target("dynaplasia"), cycles) == dict.fromkeys(
        STATIC_COMPONENTS, 0.0
    )


def test_every_unit_of_puma_leaks_by_its_count() -> None:
    # puma at 1 GHz, 1000 cycles = 1000 ns; 138 tiles of 128 crossbars with
    # 16 ADCs each, 8 vector units a tile:
    # arrays 17664 x (0.060749 + 16 x 0.2) mW; buffers 3.87 + 138 x 0.51;
    # vector units 1104 x 0.218; interconnect 138 x 0.6025.
    hw = load_target("puma")
    energy = static_energy(hw, 1000)
    assert energy["array_static"] == pytest.approx(17664 * 3.260749 * 1000)
    assert energy["buffer_static"] == pytest.approx((3.87 + 138 * 0.51) * 1000)
    assert energy["vector_static"] == pytest.approx(1104 * 0.218 * 1000)
    assert energy["interconnect_static"] == pytest.approx(138 * 0.6025 * 1000)
    # The ADCs' leakage follows their count: half the ADCs, 8 x 0.2 less.
    with overridden(["array.adcs_per_array=8"]):
        fewer = static_energy(load_target("puma"), 1000)
    assert fewer["array_static"] == pytest.approx(17664 * 1.660749 * 1000)


@pytest.mark.parametrize("macros", [4, 16])
def test_the_simulator_charges_leakage_over_the_makespan(macros: int) -> None:
    with overridden([f"hierarchy.arrays_per_core={macros}"]):
        hw = load_target("ciminus")
        result = simulate(module_trace(compile_model(MODEL, "ciminus")))
    stats = result.stats
    expected = static_energy(hw, stats.makespan_cycles)
    for component in STATIC_COMPONENTS:
        assert stats.energy_pj[component] == pytest.approx(expected[component])
    assert stats.total_energy_pj == pytest.approx(sum(stats.energy_pj.values()))
    rows = layer_rows(result)
    leakage = next(row for row in rows if row["layer"] == STATIC_POWER)
    assert leakage["energy_pj"] == pytest.approx(sum(expected.values()))
    assert sum(float(str(r["energy_pj"])) for r in rows) == pytest.approx(
        stats.total_energy_pj, rel=1e-9
    )


def test_a_target_without_leakage_has_no_static_row() -> None:
    result = simulate(module_trace(compile_model(MODEL, "tiny")))
    assert all(result.stats.energy_pj[c] == 0.0 for c in STATIC_COMPONENTS)
    assert all(row["layer"] != STATIC_POWER for row in layer_rows(result))


def leaky_small_target(gated: bool) -> HardwareTarget:
    """The hand-made traces' 2-core target, leaking 1 mW an array, 2 mW the
    global buffer, 0.5 mW a local buffer, 0.25 mW a vector unit and 0.125
    mW a core's interconnect share."""
    base = small_target()
    energy = dataclasses.replace(
        base.energy,
        array_static_mw=1.0,
        adc_static_mw=0.0,
        global_buffer_static_mw=2.0,
        local_buffer_static_mw=0.5,
        vector_static_mw=0.25,
        interconnect_static_mw=0.125,
        gate_idle_cores=gated,
    )
    return dataclasses.replace(base, energy=energy)


def test_a_gated_core_leaks_from_its_first_op_to_its_last() -> None:
    """With ``gate_idle_cores``, core 0 (an MVM, then, after core 1's vector
    op, another) leaks from its first MVM's start to its second's end, gap
    included, and core 1 for its vector op alone; the global buffer leaks
    for the whole run. Without it every core leaks for the whole run."""
    ops = [
        mvm(0, [[0, 4]], 40),
        vector(1, 4096, [[1, 2]], deps=(0,)),
        mvm(2, [[0, 4]], 40, deps=(1,)),
    ]
    gated = run(ops, leaky_small_target(True))
    (s0, _), (s1, f1), (_, f2) = times(gated)
    assert f2 > f1 > s1 > s0
    hw = leaky_small_target(True)
    ns = 1 / hw.target.clock_ghz
    makespan = gated.stats.makespan_cycles
    core_cycles = (f2 - s0) + (f1 - s1)
    units = hw.vector.units_per_core
    energy = gated.stats.energy_pj
    assert energy["array_static"] == pytest.approx(4 * 1.0 * core_cycles * ns)
    assert energy["buffer_static"] == pytest.approx(
        (2.0 * makespan + 0.5 * core_cycles) * ns
    )
    assert energy["vector_static"] == pytest.approx(units * 0.25 * core_cycles * ns)
    assert energy["interconnect_static"] == pytest.approx(0.125 * core_cycles * ns)
    always = run(ops, leaky_small_target(False)).stats
    assert always.makespan_cycles == makespan
    assert always.energy_pj["array_static"] == pytest.approx(8 * makespan * ns)
    assert always.energy_pj["buffer_static"] == pytest.approx(3.0 * makespan * ns)


def test_a_core_no_op_uses_leaks_nothing_when_gated() -> None:
    result = run([mvm(0, [[4, 8]], 40)], leaky_small_target(True))
    ((start, finish),) = times(result)
    stats = result.stats
    ns = 1 / small_target().target.clock_ghz
    assert stats.energy_pj["array_static"] == pytest.approx(4 * (finish - start) * ns)
    assert stats.energy_pj["interconnect_static"] == pytest.approx(
        0.125 * (finish - start) * ns
    )


def test_puma_gates_its_idle_tiles() -> None:
    """On puma (gated, as PUMA's simulator) the small ResNet uses a few of
    the 138 tiles: its tiles' leakage is a small share of the ungated run's,
    while the global buffer's is the same."""
    gated = simulate(module_trace(compile_model(MODEL, "puma"))).stats
    with overridden(["energy.gate_idle_cores=false"]):
        always = simulate(module_trace(compile_model(MODEL, "puma"))).stats
    assert gated.makespan_cycles == always.makespan_cycles
    assert gated.energy_pj["array_static"] < 0.1 * always.energy_pj["array_static"]
    global_pj = 3.87 * gated.makespan_cycles  # 1 GHz: one ns a cycle
    assert gated.energy_pj["buffer_static"] >= global_pj
    assert always.energy_pj["buffer_static"] == pytest.approx(
        global_pj + 138 * 0.51 * always.makespan_cycles
    )
