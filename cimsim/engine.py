"""The discrete-event simulation of a trace (``docs/trace-format.md``).

An op is ready when all its deps have finished. At every event time the ready
ops are started in increasing id order whenever all the resources they hold
(their arrays, ``dram``, ``interconnect``, ``vector``) are free; an op holds
them from start to finish. Durations and energies come from
:mod:`cimflow.cost_model` only.

Array modes cost nothing by themselves; only ``switch`` ops take time. The
arrays a model input starts in (``model.inputs[i].arrays``, a KV cache kept
on chip) begin the run in memory mode, so reading them is a ``load`` from
``memory`` (``transfer_cost`` over those arrays, holding them and not the
DRAM) with no switch before it; a later switch of them to compute is an
ordinary switch.

A ready op that finds resources busy waits on the one that frees last (a heap
by id per resource); when a resource frees, its waiters are retried lowest id
first until one takes it, so an event touches only ops that might start then.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cimflow.cost_model import (
    ENERGY_COMPONENTS,
    OpCost,
    cycles_to_seconds,
    interconnect_cost,
    mvm_cost,
    program_cost,
    switch_cost,
    transfer_cost,
    vector_cost,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget

from .trace import (
    OP_KINDS,
    SWITCH_DIRECTIONS,
    ArrayRange,
    LoadOp,
    MoveOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    SwitchOp,
    Trace,
    TraceOp,
    TransferOp,
    VectorOp,
    count_arrays,
    op_arrays,
)

SharedResource = Literal["dram", "interconnect", "vector"]
SHARED_RESOURCES: tuple[SharedResource, ...] = ("dram", "interconnect", "vector")
RESOURCE_CLASSES: tuple[str, ...] = ("arrays", "dram", "interconnect", "vector")

Resource = int | str
"""An array id, or one of :data:`SHARED_RESOURCES`."""


def op_cost(target: HardwareTarget, op: TraceOp) -> OpCost:
    """The cost of one op in isolation, from the cost model.

    Raises ValueError where the cost model does (a memory-mode transfer on a
    target without memory-mode bandwidth; validated traces never do).
    """
    if isinstance(op, TransferOp):
        n_arrays = count_arrays(op.arrays)
        return transfer_cost(target, op.src, op.dst, op.nbytes, n_arrays)
    if isinstance(op, MoveOp):
        return interconnect_cost(target, op.nbytes)
    if isinstance(op, ProgramOp):
        return program_cost(target, count_arrays(op.arrays), op.rows, op.cols)
    if isinstance(op, MvmOp):
        n_arrays = count_arrays(op.arrays)
        return mvm_cost(target, n_arrays, op.vectors, op.rows, op.cols)
    if isinstance(op, VectorOp):
        return vector_cost(target, op.element_ops, op.units)
    if isinstance(op, SwitchOp):
        return switch_cost(target, count_arrays(op.arrays))
    return OpCost(0, {})


def shared_resource(op: TraceOp) -> SharedResource | None:
    """The shared resource an op holds besides its arrays, if any."""
    if isinstance(op, TransferOp):
        return "dram" if op.src == "dram" or op.dst == "dram" else None
    if isinstance(op, MoveOp):
        return "interconnect"
    if isinstance(op, VectorOp):
        return "vector"
    return None


def op_resources(op: TraceOp) -> tuple[Resource, ...]:
    """The resources an op holds: its shared one first (if any), then array ids."""
    shared = shared_resource(op)
    arrays = tuple(a for first, stop in op_arrays(op) for a in range(first, stop))
    return arrays if shared is None else (shared, *arrays)


def _cost_key(op: TraceOp) -> tuple[object, ...]:
    if isinstance(op, TransferOp):
        return ("transfer", op.src, op.dst, op.nbytes, count_arrays(op.arrays))
    if isinstance(op, MoveOp):
        return ("move", op.nbytes)
    if isinstance(op, ProgramOp):
        return ("program", count_arrays(op.arrays), op.rows, op.cols)
    if isinstance(op, MvmOp):
        return ("mvm", count_arrays(op.arrays), op.vectors, op.rows, op.cols)
    if isinstance(op, VectorOp):
        return ("vector", op.element_ops, op.units)
    if isinstance(op, SwitchOp):
        return ("switch", count_arrays(op.arrays))
    return ("barrier",)


@dataclass(frozen=True)
class SimStats:
    """Everything the report shows, computed from a finished schedule.

    Utilizations are busy cycles over ``makespan_cycles`` (0 for an empty
    schedule); ``array_utilization`` averages over every array of the target,
    ``used_array_utilization`` over the arrays some op holds. Byte counts:
    DRAM read = loads from ``dram``, written = stores to ``dram``; memory-mode
    array bytes likewise by ``src`` / ``dst`` ``memory``; interconnect bytes
    are ``move`` bytes.
    """

    makespan_cycles: int
    seconds: float
    throughput: float
    array_busy_cycles: tuple[int, ...]
    arrays_used: int
    shared_busy_cycles: Mapping[str, int]
    utilization: Mapping[str, float]
    array_utilization: float
    used_array_utilization: float
    energy_pj: Mapping[str, float]
    total_energy_pj: float
    switch_ops: Mapping[str, int]
    array_switches: Mapping[str, int]
    dram_bytes_read: int
    dram_bytes_written: int
    interconnect_bytes: int
    memory_bytes_read: int
    memory_bytes_written: int
    op_counts: Mapping[str, int]
    kind_cycles: Mapping[str, int]


@dataclass(frozen=True)
class SimResult:
    """The schedule (start and finish cycle per op id), op costs and statistics."""

    trace: Trace
    start: tuple[int, ...]
    finish: tuple[int, ...]
    costs: tuple[OpCost, ...]
    stats: SimStats

    @property
    def makespan(self) -> int:
        """Cycles from time 0 to the last finish."""
        return self.stats.makespan_cycles


def op_costs(trace: Trace) -> tuple[OpCost, ...]:
    """The cost of every op, by id (identical ops share one OpCost)."""
    cache: dict[tuple[object, ...], OpCost] = {}
    costs: list[OpCost] = []
    target = trace.target
    for op in trace.ops:
        key = _cost_key(op)
        cost = cache.get(key)
        if cost is None:
            try:
                cost = op_cost(target, op)
            except ValueError as err:
                raise CimError(f"{trace.origin}: op {op.id}: {err}") from None
            cache[key] = cost
        costs.append(cost)
    return tuple(costs)


def schedule(trace: Trace, durations: list[int]) -> tuple[list[int], list[int]]:
    """Start and finish cycle of every op, given each op's duration."""
    ops = trace.ops
    n = len(ops)
    n_arrays = trace.target.total_arrays
    shared_index = {name: n_arrays + i for i, name in enumerate(SHARED_RESOURCES)}
    held_cache: dict[tuple[SharedResource | None, tuple[ArrayRange, ...]], list[int]]
    held_cache = {}
    resources: list[list[int]] = []
    for op in ops:
        key = (shared_resource(op), op_arrays(op))
        held = held_cache.get(key)
        if held is None:
            held = [a for first, stop in key[1] for a in range(first, stop)]
            if key[0] is not None:
                held.insert(0, shared_index[key[0]])
            held_cache[key] = held
        resources.append(held)

    pending = [len(op.deps) for op in ops]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for op in ops:
        for dep in op.deps:
            dependents[dep].append(op.id)

    n_resources = n_arrays + len(SHARED_RESOURCES)
    free_at = [0] * n_resources
    waiters: list[list[int]] = [[] for _ in range(n_resources)]
    woken_by = [-1] * n
    start = [-1] * n
    finish = [-1] * n
    events: list[tuple[int, int]] = []
    candidates = [i for i in range(n) if pending[i] == 0]
    heappush = heapq.heappush
    heappop = heapq.heappop
    now = 0
    done = 0

    while True:
        while candidates:
            i = heappop(candidates)
            held = resources[i]
            blocker = -1
            latest = now
            for r in held:
                if free_at[r] > latest:
                    latest = free_at[r]
                    blocker = r
            woke = woken_by[i]
            woken_by[i] = -1
            if blocker >= 0:
                heappush(waiters[blocker], i)
                if woke >= 0 and free_at[woke] <= now and waiters[woke]:
                    j = heappop(waiters[woke])
                    woken_by[j] = woke
                    heappush(candidates, j)
                continue
            start[i] = now
            duration = durations[i]
            if duration:
                end = now + duration
                for r in held:
                    free_at[r] = end
                heappush(events, (end, i))
                continue
            finish[i] = now
            done += 1
            if woke >= 0 and waiters[woke]:
                j = heappop(waiters[woke])
                woken_by[j] = woke
                heappush(candidates, j)
            for j in dependents[i]:
                pending[j] -= 1
                if not pending[j]:
                    heappush(candidates, j)
        if not events:
            break
        now = events[0][0]
        while events and events[0][0] == now:
            i = heappop(events)[1]
            finish[i] = now
            done += 1
            for r in resources[i]:
                queue = waiters[r]
                if queue:
                    j = heappop(queue)
                    woken_by[j] = r
                    heappush(candidates, j)
            for j in dependents[i]:
                pending[j] -= 1
                if not pending[j]:
                    heappush(candidates, j)

    if done != n:
        raise RuntimeError(f"simulation stalled with {n - done} of {n} ops unfinished")
    return start, finish


def _array_stats(trace: Trace, durations: list[int]) -> tuple[tuple[int, ...], int]:
    n_arrays = trace.target.total_arrays
    busy_diff = [0] * (n_arrays + 1)
    held_diff = [0] * (n_arrays + 1)
    for op, duration in zip(trace.ops, durations, strict=True):
        for first, stop in op_arrays(op):
            busy_diff[first] += duration
            busy_diff[stop] -= duration
            held_diff[first] += 1
            held_diff[stop] -= 1
    busy: list[int] = []
    used = 0
    busy_sum = 0
    held_sum = 0
    for a in range(n_arrays):
        busy_sum += busy_diff[a]
        held_sum += held_diff[a]
        busy.append(busy_sum)
        if held_sum:
            used += 1
    return tuple(busy), used


def compute_stats(
    trace: Trace, costs: tuple[OpCost, ...], finish: list[int]
) -> SimStats:
    """Makespan, utilization, energy, switches, bytes and per-kind totals."""
    target = trace.target
    durations = [cost.cycles for cost in costs]
    makespan = max(finish, default=0)
    seconds = cycles_to_seconds(target, makespan)
    throughput = trace.model.batch / seconds if seconds > 0 else 0.0

    array_busy, arrays_used = _array_stats(trace, durations)
    shared_busy: dict[str, int] = dict.fromkeys(SHARED_RESOURCES, 0)
    energy: dict[str, float] = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    switch_ops: dict[str, int] = dict.fromkeys(SWITCH_DIRECTIONS, 0)
    array_switches: dict[str, int] = dict.fromkeys(SWITCH_DIRECTIONS, 0)
    op_counts: dict[str, int] = dict.fromkeys(OP_KINDS, 0)
    kind_cycles: dict[str, int] = dict.fromkeys(OP_KINDS, 0)
    dram_read = dram_written = interconnect_bytes = memory_read = memory_written = 0

    for op, cost in zip(trace.ops, costs, strict=True):
        duration = cost.cycles
        op_counts[op.kind] += 1
        kind_cycles[op.kind] += duration
        for component, pj in cost.energy_pj.items():
            energy[component] = energy.get(component, 0.0) + pj
        if isinstance(op, TransferOp):
            if op.src == "dram" or op.dst == "dram":
                shared_busy["dram"] += duration
            if isinstance(op, LoadOp) and op.src == "dram":
                dram_read += op.nbytes
            if isinstance(op, StoreOp) and op.dst == "dram":
                dram_written += op.nbytes
            if op.src == "memory":
                memory_read += op.nbytes
            if op.dst == "memory":
                memory_written += op.nbytes
        elif isinstance(op, MoveOp):
            shared_busy["interconnect"] += duration
            interconnect_bytes += op.nbytes
        elif isinstance(op, VectorOp):
            shared_busy["vector"] += duration
        elif isinstance(op, SwitchOp):
            switch_ops[op.to] += 1
            array_switches[op.to] += count_arrays(op.arrays)

    def fraction(busy_cycles: int, resources: int) -> float:
        if makespan <= 0 or resources <= 0:
            return 0.0
        return busy_cycles / (makespan * resources)

    total_array_busy = sum(array_busy)
    array_util = fraction(total_array_busy, target.total_arrays)
    used_util = fraction(total_array_busy, arrays_used)
    utilization: dict[str, float] = {"arrays": array_util}
    for name in SHARED_RESOURCES:
        utilization[name] = fraction(shared_busy[name], 1)

    return SimStats(
        makespan_cycles=makespan,
        seconds=seconds,
        throughput=throughput,
        array_busy_cycles=array_busy,
        arrays_used=arrays_used,
        shared_busy_cycles=shared_busy,
        utilization=utilization,
        array_utilization=array_util,
        used_array_utilization=used_util,
        energy_pj=energy,
        total_energy_pj=sum(energy.values()),
        switch_ops=switch_ops,
        array_switches=array_switches,
        dram_bytes_read=dram_read,
        dram_bytes_written=dram_written,
        interconnect_bytes=interconnect_bytes,
        memory_bytes_read=memory_read,
        memory_bytes_written=memory_written,
        op_counts=op_counts,
        kind_cycles=kind_cycles,
    )


def simulate(trace: Trace) -> SimResult:
    """Run the discrete-event simulation of a validated trace."""
    costs = op_costs(trace)
    durations = [cost.cycles for cost in costs]
    start, finish = schedule(trace, durations)
    return SimResult(
        trace=trace,
        start=tuple(start),
        finish=tuple(finish),
        costs=costs,
        stats=compute_stats(trace, costs, finish),
    )
