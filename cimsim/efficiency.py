"""What a schedule computes, and how fast and efficiently: the MACs its
MVMs do (each weight element times each vector it multiplies, zeros of a
grouped weight's block diagonal left out), and from them TOPS (two
operations per MAC, over the makespan), TOPS/W (over the energy) and
TOPS/mm² (over the chip's area, where the target gives one)."""

from __future__ import annotations

from dataclasses import dataclass

from cimflow.analysis.area import total_area_mm2

from .engine import SimResult
from .trace import MvmOp, WeightInfo


def mvm_macs(op: MvmOp, weight: WeightInfo | None) -> int:
    """Multiply-accumulates of one MVM: its vectors times the weight
    elements of rows ``k`` and columns ``n`` it holds (of a grouped weight,
    only those inside the groups' diagonal blocks)."""
    (k0, k1), (n0, n1) = op.k, op.n
    if weight is None or weight.groups <= 1:
        return op.vectors * (k1 - k0) * (n1 - n0)
    rows, cols = weight.k, weight.n
    elements = 0
    for group in range(k0 // rows, min(weight.groups, (k1 - 1) // rows + 1)):
        held_rows = min(k1, (group + 1) * rows) - max(k0, group * rows)
        held_cols = min(n1, (group + 1) * cols) - max(n0, group * cols)
        elements += max(0, held_rows) * max(0, held_cols)
    return op.vectors * elements


@dataclass(frozen=True)
class Efficiency:
    """What a schedule computes and at what rate and cost."""

    macs: int
    """Multiply-accumulates of all its MVMs (:func:`mvm_macs`)."""
    tops: float
    """Tera-operations per second (two per MAC) over the makespan."""
    tops_per_watt: float
    """Operations per picojoule: tera-operations per second per watt."""
    area_mm2: float | None
    """The chip's area (:mod:`cimflow.analysis.area`); ``None``: the target
    gives none."""
    tops_per_mm2: float | None
    """TOPS over the area (``None`` without one)."""


def efficiency(result: SimResult) -> Efficiency:
    """The schedule's MACs, TOPS, TOPS/W and TOPS/mm²."""
    weights = {w.name: w for w in result.trace.weights}
    macs = sum(
        mvm_macs(op, weights.get(op.weight))
        for op in result.trace.ops
        if isinstance(op, MvmOp)
    )
    seconds = result.stats.seconds
    energy = result.stats.total_energy_pj
    tops = 2 * macs / seconds / 1e12 if seconds else 0.0
    area = total_area_mm2(result.trace.target)
    return Efficiency(
        macs,
        tops,
        2 * macs / energy if energy else 0.0,
        area,
        None if not area else tops / area,
    )
