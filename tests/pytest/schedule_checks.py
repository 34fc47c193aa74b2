"""Checks on simulated schedules shared by the pipeline and strategy tests."""

from __future__ import annotations

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import Trace, VectorOp


def overlaps(trace: Trace) -> bool:
    """Some pipelined step starts before an operator it reads has finished."""
    result = simulate(trace)
    last: dict[str, int] = {}
    for op in trace.ops:
        if isinstance(op, VectorOp) and op.block is not None:
            for name in op.outputs:
                last[name] = max(last.get(name, 0), result.finish[op.id])
    return any(
        isinstance(op, VectorOp)
        and op.block is not None
        and any(result.start[op.id] < last.get(name, -1) for name in op.inputs)
        for op in trace.ops
    )
