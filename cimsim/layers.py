"""Per-layer figures of a simulated schedule: each ONNX node's ops
(a trace op's ``layer``), when they ran, what they cost and which arrays
they kept busy, as NeuroSim and Timeloop report per layer, and the cycles
they take on the run's critical path.

Ops of no layer (a segment's barrier, mode switches, the next segment's
prefetched weights) are one row of their own, :data:`SEGMENT_WORK`; the
chip's leakage over the whole run (static power, no op's) is the last row,
:data:`STATIC_POWER`, when the target has any.
Layers are listed in the order their first op appears in the trace.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from cimflow.cost_model import STATIC_COMPONENTS

from .critical import CriticalPath, critical_path
from .engine import SimResult
from .trace import op_arrays

SEGMENT_WORK = "(segment work)"
"""The row of ops that work for no one layer."""
STATIC_POWER = "(static power)"
"""The row of the arrays' and buffers' leakage over the run."""


@dataclass
class LayerStats:
    """One layer's ops over the schedule."""

    layer: str
    ops: int = 0
    start: int = -1
    """Cycle its first op starts."""
    finish: int = 0
    """Cycle its last op ends."""
    energy_pj: float = 0.0
    arrays: set[int] = field(default_factory=lambda: set())
    """Arrays its ops hold."""
    array_cycles: int = 0
    """Cycles its ops hold arrays, summed over the arrays."""
    critical_cycles: int = 0
    """Cycles its ops take on the run's critical path
    (:mod:`~cimflow.cimsim.critical`)."""

    @property
    def span(self) -> int:
        """Cycles from its first op's start to its last op's end."""
        return max(0, self.finish - self.start)

    @property
    def utilization(self) -> float:
        """Array cycles over its arrays times its span."""
        held = len(self.arrays) * self.span
        return self.array_cycles / held if held else 0.0


def layer_stats(
    result: SimResult, path: CriticalPath | None = None
) -> list[LayerStats]:
    """Every layer's figures, in order of first appearance (``path``: the
    run's critical path, when the caller has it already)."""
    rows: dict[str, LayerStats] = {}
    for op, start, finish, cost in zip(
        result.trace.ops, result.start, result.finish, result.costs, strict=True
    ):
        name = op.layer or SEGMENT_WORK
        row = rows.get(name)
        if row is None:
            row = rows[name] = LayerStats(name)
        row.ops += 1
        row.start = start if row.start < 0 else min(row.start, start)
        row.finish = max(row.finish, finish)
        row.energy_pj += sum(cost.energy_pj.values())
        held = [a for first, stop in op_arrays(op) for a in range(first, stop)]
        row.arrays.update(held)
        row.array_cycles += (finish - start) * len(held)
    if path is None:
        path = critical_path(result)
    for layer, cycles in path.layer_cycles:
        rows[layer or SEGMENT_WORK].critical_cycles = cycles
    stats = result.stats
    leakage = sum(stats.energy_pj.get(c, 0.0) for c in STATIC_COMPONENTS)
    if leakage > 0:
        rows[STATIC_POWER] = LayerStats(
            STATIC_POWER, start=0, finish=stats.makespan_cycles, energy_pj=leakage
        )
    return list(rows.values())


LAYER_COLUMNS: tuple[str, ...] = (
    "layer",
    "ops",
    "start_cycle",
    "finish_cycle",
    "span_cycles",
    "energy_pj",
    "energy_share",
    "arrays",
    "array_utilization",
    "critical_cycles",
)
"""Columns of :func:`layers_csv`, and keys of :func:`layer_rows`."""


def layer_rows(
    result: SimResult, path: CriticalPath | None = None
) -> list[dict[str, object]]:
    """:func:`layer_stats` as JSON-ready rows (:data:`LAYER_COLUMNS`)."""
    total = result.stats.total_energy_pj or 1.0
    return [
        {
            "layer": row.layer,
            "ops": row.ops,
            "start_cycle": max(0, row.start),
            "finish_cycle": row.finish,
            "span_cycles": row.span,
            "energy_pj": row.energy_pj,
            "energy_share": row.energy_pj / total,
            "arrays": len(row.arrays),
            "array_utilization": row.utilization,
            "critical_cycles": row.critical_cycles,
        }
        for row in layer_stats(result, path)
    ]


def layers_csv(result: SimResult) -> str:
    """:func:`layer_rows` as CSV (``cim-sim --layers FILE``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(LAYER_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in layer_rows(result):
        writer.writerow(
            {
                key: f"{value:.6g}" if isinstance(value, float) else value
                for key, value in row.items()
            }
        )
    return buffer.getvalue()


TEXT_LAYERS = 40
"""Most layers the text report lists (those of the longest spans)."""


def format_layers(result: SimResult, path: CriticalPath | None = None) -> list[str]:
    """The text report's ``layers:`` section (none when the trace names no
    layers)."""
    stats = layer_stats(result, path)
    if all(row.layer == SEGMENT_WORK for row in stats):
        return []
    total = result.stats.total_energy_pj or 1.0
    shown = stats
    if len(stats) > TEXT_LAYERS:
        longest = sorted(stats, key=lambda row: -row.span)[:TEXT_LAYERS]
        shown = [row for row in stats if row in longest]
    width = max(len(row.layer) for row in shown)
    note = (
        f" (the {TEXT_LAYERS} longest of {len(stats)}; --json or --layers FILE for all)"
        if len(shown) < len(stats)
        else ""
    )
    lines = [
        f"layers:{note}",
        f"  {'layer'.ljust(width)}  {'start':>12}  {'span':>12}  "
        f"{'energy pJ':>16}  {'share':>6}  {'arrays':>6}  {'util':>6}",
    ]
    lines += [
        f"  {row.layer.ljust(width)}  {max(0, row.start):>12,}  {row.span:>12,}  "
        f"{row.energy_pj:>16,.1f}  {row.energy_pj / total:>6.1%}  "
        f"{len(row.arrays):>6}  {row.utilization:>6.1%}"
        for row in shown
    ]
    return lines
