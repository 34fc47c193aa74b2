"""The critical path of a simulated schedule: the chain of ops that ends
last, each one started when its predecessor on the chain finished, and what
part of the machine each of its cycles waited on.

Walking back from the op that finishes last (the lowest id among equals),
an op's predecessor is the dependency that finished at its start (data it
needed), else an op that held one of its resources (arrays, a vector unit,
a lane of DRAM or of an interconnect link) and finished then (the
simulator starts an op only at such a finish, :func:`~cimflow.cimsim.
engine.schedule`); ties go to the lowest id. Every cycle from 0 to the
makespan lies in exactly one op of the chain, or in ``idle`` where no
such predecessor exists (none does in a schedule the engine made: the
class is a guard), so the classes sum to the makespan.

An op's cycles count for the resource class that does its work:

- ``compute``: ``mvm`` ops (array time; an MVM streaming its input from
  DRAM also waits for the channel);
- ``program``: ``program`` ops (writing weights into arrays);
- ``dram``: loads and stores to or from DRAM;
- ``memory``: other loads and stores (memory-mode arrays, the buffer);
- ``interconnect``: ``move`` ops;
- ``vector``: ``vector`` ops;
- ``switch``: mode switches.
"""

from __future__ import annotations

import csv
import io
import weakref
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from .engine import Held, SimResult, held_resources
from .trace import TraceOp, TransferOp

CRITICAL_CLASSES: tuple[str, ...] = (
    "compute",
    "program",
    "dram",
    "memory",
    "interconnect",
    "vector",
    "switch",
    "idle",
)
"""The resource classes of the critical path, in report order."""

_KIND_CLASS = {
    "mvm": "compute",
    "program": "program",
    "move": "interconnect",
    "vector": "vector",
    "switch": "switch",
}


def critical_class(op: TraceOp) -> str:
    """The resource class an op's cycles on the critical path count for
    (barriers and frees take none: ``idle``)."""
    if isinstance(op, TransferOp):
        return "dram" if "dram" in (op.src, op.dst) else "memory"
    return _KIND_CLASS.get(op.kind, "idle")


@dataclass(frozen=True)
class CriticalPath:
    """The chain of ops that sets the makespan."""

    ops: tuple[int, ...]
    """Op ids, first to last."""
    entered: tuple[str, ...]
    """How each op of :attr:`ops` followed the one before it: ``data`` (it
    waited for that op's result), ``resource`` (for a resource that op
    held), ``start`` (the first op)."""
    cycles: Mapping[str, int]
    """Cycles per class of :data:`CRITICAL_CLASSES` (they sum to the
    makespan)."""
    layer_cycles: tuple[tuple[str, int], ...]
    """Cycles per layer (ONNX node; "" for a segment's own work), most
    first, ties by name."""

    @property
    def bound_by(self) -> str:
        """The class with the most cycles (the first in
        :data:`CRITICAL_CLASSES` order among equals: ``compute`` for an
        empty schedule)."""
        return dominant_class(self.cycles)


def dominant_class(cycles: Mapping[str, int]) -> str:
    """The class of :data:`CRITICAL_CLASSES` with the most ``cycles``
    (the first in their order among equals)."""
    return max(
        CRITICAL_CLASSES,
        key=lambda c: (cycles.get(c, 0), -CRITICAL_CLASSES.index(c)),
    )


_last: tuple[weakref.ref[SimResult], CriticalPath] | None = None
"""The run whose path was walked last, and its path: the report, the layer
table, the timeline and the ``--critical`` CSV of one run ask for it in
turn."""


def critical_path(result: SimResult) -> CriticalPath:
    """The critical path of ``result`` (see the module docstring)."""
    global _last
    if _last is not None and _last[0]() is result:
        return _last[1]
    path = _walk(result)
    _last = (weakref.ref(result), path)
    return path


def _walk(result: SimResult) -> CriticalPath:
    ops = result.trace.ops
    start, finish = result.start, result.finish
    cycles = dict.fromkeys(CRITICAL_CLASSES, 0)
    layers: dict[str, int] = defaultdict(int)
    if not ops:
        return CriticalPath((), (), cycles, ())
    held = held_resources(result.trace)
    ended_at: dict[int, list[int]] = defaultdict(list)
    for i, end in enumerate(finish):
        if end > start[i]:
            ended_at[end].append(i)
    last = max(range(len(ops)), key=lambda i: (finish[i], -i))
    chain: list[int] = []
    entered: list[str] = []
    current: int | None = last
    while current is not None:
        op = ops[current]
        chain.append(current)
        duration = finish[current] - start[current]
        cycles[critical_class(op)] += duration
        layers[op.layer] += duration
        begin = start[current]
        if begin == 0:
            entered.append("start")
            break
        current, edge = _predecessor(current, begin, ops, finish, held, ended_at)
        entered.append(edge)
        if current is None:
            cycles["idle"] += begin
        elif finish[current] < begin:
            cycles["idle"] += begin - finish[current]
    return CriticalPath(
        tuple(reversed(chain)),
        tuple(reversed(entered)),
        cycles,
        tuple(sorted(layers.items(), key=lambda item: (-item[1], item[0]))),
    )


def _predecessor(
    i: int,
    begin: int,
    ops: tuple[TraceOp, ...],
    finish: tuple[int, ...],
    held: list[Held],
    ended_at: Mapping[int, list[int]],
) -> tuple[int | None, str]:
    """The op before ``i`` on the path and how ``i`` followed it (see
    :attr:`CriticalPath.entered`)."""
    deps = ops[i].deps
    data = [d for d in deps if finish[d] == begin]
    if data:
        return min(data), "data"
    exclusive, bandwidth = held[i]
    mine = set(exclusive), set(bandwidth)
    for j in ended_at.get(begin, ()):
        theirs = held[j]
        if j != i and (
            not mine[0].isdisjoint(theirs[0]) or not mine[1].isdisjoint(theirs[1])
        ):
            return j, "resource"
    if deps:
        return max(deps, key=lambda d: (finish[d], -d)), "data"
    return None, "start"


PATH_COLUMNS: tuple[str, ...] = (
    "op",
    "kind",
    "name",
    "layer",
    "class",
    "start_cycle",
    "finish_cycle",
    "cycles",
    "after",
)
"""Columns of :func:`critical_csv`."""


def critical_csv(result: SimResult, path: CriticalPath | None = None) -> str:
    """The critical path's ops, first to last, as CSV (``cim-sim --critical
    FILE``): each op's id, kind, name, layer, class, start, finish, cycles,
    and how it followed the op before it (``after``: data, resource,
    start)."""
    if path is None:
        path = critical_path(result)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PATH_COLUMNS)
    for op_id, after in zip(path.ops, path.entered, strict=True):
        op = result.trace.ops[op_id]
        start, finish = result.start[op_id], result.finish[op_id]
        writer.writerow(
            (
                op_id,
                op.kind,
                op.name,
                op.layer,
                critical_class(op),
                start,
                finish,
                finish - start,
                after,
            )
        )
    return buffer.getvalue()
