"""The chip's silicon area by component: the target's ``[area]`` figures
(one instance each) times how many instances the target's hierarchy has.

Summed component by component, as NeuroSim and PUMA's simulator do (no
layout, no wiring between blocks). What the project does not model has no
area here: instruction memories, control units, chip I/O.
"""

from __future__ import annotations

from cimflow.hw_targets import HardwareTarget

AREA_COMPONENTS = (
    "arrays",
    "adc",
    "dac",
    "array_periphery",
    "local_buffers",
    "global_buffer",
    "vector",
    "interconnect",
)
"""The components of :func:`chip_area`, in report order."""


def chip_area(hw: HardwareTarget) -> tuple[tuple[str, float], ...] | None:
    """Square millimetres per component (:data:`AREA_COMPONENTS` order), or
    ``None`` when the target gives no ``[area]``."""
    area = hw.area
    if area is None:
        return None
    arrays = hw.total_arrays
    cores = hw.total_cores
    return (
        ("arrays", arrays * area.array_mm2),
        ("adc", arrays * hw.array.adcs_per_array * area.adc_mm2),
        ("dac", arrays * hw.array.rows * area.dac_mm2),
        ("array_periphery", arrays * area.array_periphery_mm2),
        ("local_buffers", cores * area.local_buffer_mm2),
        ("global_buffer", area.global_buffer_mm2),
        ("vector", cores * hw.vector.units_per_core * area.vector_unit_mm2),
        ("interconnect", cores * area.router_mm2),
    )


def total_area_mm2(hw: HardwareTarget) -> float | None:
    """The chip's area in square millimetres, or ``None`` if not given."""
    parts = chip_area(hw)
    return None if parts is None else sum(mm2 for _, mm2 in parts)
