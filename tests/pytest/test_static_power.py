"""Static power (leakage): every array and buffer leaks for the whole run,
``static power x makespan`` (CIMinus's energy model, ``ciminus.md`` §6.2),
reported as the ``array_static`` and ``buffer_static`` components and as a
row of its own in the per-layer figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.layers import STATIC_POWER, layer_rows
from cimflow.cost_model import STATIC_COMPONENTS, static_energy
from cimflow.hw_targets import load_target, overridden
from cimflow.tools.cim_verify import compile_model, module_trace

MODEL = Path(__file__).resolve().parents[2] / "tools" / "models" / "resnet_tiny.onnx"


def test_static_energy_is_power_times_time() -> None:
    hw = load_target("ciminus")
    cycles = 5000  # 10 us at 0.5 GHz
    energy = static_energy(hw, cycles)
    assert energy["array_static"] == pytest.approx(4 * 0.045 * 10_000)
    assert energy["buffer_static"] == pytest.approx((2.88 + 0.36) * 10_000)
    assert static_energy(load_target("dynaplasia"), cycles) == {
        "array_static": 0.0,
        "buffer_static": 0.0,
    }


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
