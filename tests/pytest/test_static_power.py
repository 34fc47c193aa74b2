"""Static power (leakage): every array with its ADCs, buffer, vector unit
and core's share of the interconnect leaks for the whole run, ``static
power x makespan`` (CIMinus's energy model, ``ciminus.md`` §6.2), reported
as the ``array_static``, ``buffer_static``, ``vector_static`` and
``interconnect_static`` components and as a row of its own in the
per-layer figures."""

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
