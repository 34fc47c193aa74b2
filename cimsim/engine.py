"""The discrete-event simulation of a trace (``docs/trace-format.md``,
``docs/machine-model.md``).

An op is ready when all its deps have finished. At every event time the ready
ops are started in increasing id order whenever the resources they hold
are free (a bandwidth resource: one of its lanes, :func:`schedule`); an op
holds them from start to finish. Resources: every array,
``dram``, the interconnect (``bus``, or on a mesh one ``link c`` per core and
the global buffer's port ``gb``) and one ``vector c`` per core. An op
that streams (:func:`op_streams`) holds the interconnect path of its cores
when a byte crosses it, ``dram`` when a byte comes from or goes to DRAM, and
the memory-mode arrays it reads or writes. Durations and energies come from
:mod:`cimflow.cost_model` only.

Array modes cost nothing by themselves; only ``switch`` ops take time. The
arrays a model input starts in (``model.inputs[i].arrays``, a KV cache kept
on chip) begin the run in memory mode, so reading them is a ``load`` from
``memory`` (``transfer_cost`` over those arrays, holding them and not the
DRAM) with no switch before it; a later switch of them to compute is an
ordinary switch.

A ready op that finds a resource busy waits on it (a heap by id per
resource); when it frees, its waiters are retried lowest id first while it
stays free, so an event touches only ops that might start then.

Allocations (an op's ``allocs``) occupy their level from the op's start until
the ``free`` (or switch to compute mode) that ends them starts; at one cycle
releases come before allocations. Occupancy never delays an op: a trace
that overfills the global buffer, a core's local buffer or a memory-mode
array is refused with one line naming the op, the buffer and the bytes.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from cimflow.collector import paused_collector
from cimflow.cost_model import (
    ENERGY_COMPONENTS,
    LANES,
    NO_COST,
    NO_STREAM,
    OpCost,
    Ranges,
    StreamBytes,
    concurrent_cost,
    cores_of_arrays,
    count_ids,
    crosses_interconnect,
    crossing_parts,
    cycles_to_seconds,
    driven_scale,
    feeds_directly,
    held_index_bits,
    interconnect_cost,
    interconnect_path,
    interconnect_resources,
    lane_share,
    laned_cycles,
    lanes_needed,
    multicast_bytes,
    mvm_op_parts,
    path_loads,
    program_op_parts,
    static_energy,
    stream_bytes,
    streamed_cycles,
    switch_cost,
    transfer_cost,
    vector_op_parts,
    vector_work_of,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget

from .semantics import op_label, releases
from .trace import (
    LEVELS,
    OP_KINDS,
    SWITCH_DIRECTIONS,
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
    WeightInfo,
    count_arrays,
    in_place,
    op_arrays,
)

SharedResource = Literal["dram", "interconnect", "vector"]
SHARED_RESOURCES: tuple[SharedResource, ...] = ("dram", "interconnect", "vector")
"""The resource classes besides the arrays."""
RESOURCE_CLASSES: tuple[str, ...] = ("arrays", "dram", "interconnect", "vector")

Resource = int | str
"""An array id, ``dram``, an interconnect resource (``bus``, ``link c``,
``gb j``) or a core's vector units (``vector c``)."""


def program_elements(op: ProgramOp) -> int:
    """Values a ``program`` writes: its slice of the weight matrix."""
    return (op.k[1] - op.k[0]) * (op.n[1] - op.n[0])


def program_in_bytes(target: HardwareTarget, op: ProgramOp) -> int:
    """Bytes a ``program`` streams to its arrays' cores: its ``in_bytes``,
    or for a tensor program that states none, its slice's values at the
    target's activation width."""
    if op.in_bytes or op.source != "tensor":
        return op.in_bytes
    return program_elements(op) * target.activation_bytes


def mvm_feeds_directly(target: HardwareTarget, op: MvmOp) -> bool:
    """Whether an MVM's input comes by the memory-to-compute path."""
    return op.feed == "memory" and feeds_directly(
        target, cores_of_arrays(target, op.arrays), op.feed_arrays
    )


def op_streams(target: HardwareTarget, op: TraceOp) -> StreamBytes:
    """What an ``mvm``, ``vector`` or ``program`` streams while it works,
    by what the bytes cross (nothing for other kinds)."""
    if isinstance(op, MvmOp):
        if not op.in_bytes and not op.out_bytes:
            return NO_STREAM
        return stream_bytes(
            "buffer" if op.feed == "local" else op.feed,
            op.in_bytes,
            op.out_to,
            op.out_bytes,
            mvm_feeds_directly(target, op),
            op.in_link_bytes,
        )
    if isinstance(op, VectorOp):
        if not op.in_bytes and not op.out_bytes:
            return NO_STREAM
        return stream_bytes(op.in_from, op.in_bytes, op.out_to, op.out_bytes)
    if isinstance(op, ProgramOp):
        in_bytes = program_in_bytes(target, op)
        feed = op.feed
        if not in_bytes or feed == "cells":
            return NO_STREAM
        links = multicast_bytes(target, in_bytes, op.copies)
        return stream_bytes(feed, in_bytes, "buffer", 0, in_links=links)
    return NO_STREAM


def op_parts(
    target: HardwareTarget,
    op: ProgramOp | MvmOp | VectorOp,
    compacted: WeightInfo | None = None,
) -> tuple[OpCost, OpCost]:
    """``(compute, stream)`` of an op that streams while it works, from the
    cost model: what no share of bandwidth changes, and its stream at the
    full bandwidth; ``compacted`` is the trace's record of the op's weight
    when its arrays hold compacted rows (``weights[].rows``), whose indices
    a program reads, and, for an IntraBlock mapping
    (``weights[].intra_block``), whose multiplexers an MVM drives with all
    of its groups' inputs."""
    reduction = compacted.k if compacted and compacted.rows else 0
    group = compacted.intra_block if compacted else 0
    columns_from = compacted.n if compacted and compacted.columns else 0
    if isinstance(op, ProgramOp):
        feed = op.feed
        if feed == "cells":  # a switch in place: nothing is written
            return switch_cost(target, count_arrays(op.arrays)), NO_COST
        return program_op_parts(
            target,
            count_arrays(op.arrays),
            op.rows,
            op.cols,
            cores=cores_of_arrays(target, op.arrays),
            feed=feed,
            in_bytes=program_in_bytes(target, op),
            feed_arrays=op.feed_arrays,
            copies=op.copies,
            index_bits=held_index_bits(
                target,
                reduction,
                group,
                op.rows,
                op.cols,
                compacted.rows_per_index if compacted else 1,
                columns_from,
            ),
        )
    if isinstance(op, MvmOp):
        return mvm_op_parts(
            target,
            count_arrays(op.arrays),
            op.vectors,
            op.rows,
            op.cols,
            local_bytes=op.local_bytes,
            feed=op.feed,
            in_bytes=op.in_bytes,
            out_bytes=op.out_bytes,
            cores=cores_of_arrays(target, op.arrays),
            feed_arrays=op.feed_arrays,
            out_to=op.out_to,
            out_arrays=op.out_arrays,
            rows_per_pass=op.rows_per_pass,
            zero_shares=op.zero_shares,
            in_links=op.in_link_bytes,
            row_group=group,
            driven_scale=driven_scale(
                group,
                compacted.driven_k if compacted else 0,
                compacted.rows if compacted else 0,
            ),
        )
    return vector_op_parts(
        target,
        op.element_ops,
        op.cores,
        op.in_bytes,
        op.out_bytes,
        in_from=op.in_from,
        in_arrays=op.in_arrays,
        out_to=op.out_to,
        out_arrays=op.out_arrays,
        work=vector_work_of(op.op),
    )


def op_cost(
    target: HardwareTarget, op: TraceOp, compacted: WeightInfo | None = None
) -> OpCost:
    """The cost of one op in isolation, from the cost model (``compacted``:
    :func:`op_parts`).

    Raises ValueError where the cost model does (a memory-mode transfer on a
    target without memory-mode bandwidth; validated traces never do).
    """
    if isinstance(op, TransferOp):
        n_arrays = count_arrays(op.arrays)
        return transfer_cost(target, op.src, op.dst, op.nbytes, n_arrays)
    if isinstance(op, MoveOp):
        return interconnect_cost(target, op.nbytes, op.cores, op.link_bytes)
    if isinstance(op, ProgramOp | MvmOp | VectorOp):
        return concurrent_cost(*op_parts(target, op, compacted))
    if isinstance(op, SwitchOp):
        return switch_cost(target, count_arrays(op.arrays))
    return NO_COST


def op_timing(target: HardwareTarget, op: TraceOp) -> tuple[int, int]:
    """``(compute, stream)`` cycles of an op that holds bandwidth resources
    (DRAM, the interconnect): what no share of bandwidth changes, and what
    its bytes take at the full bandwidth (:data:`LANES`). A transfer is all
    stream (but a transfer between memory-mode arrays and DRAM or the
    global buffer: its arrays' side is compute, :func:`crossing_parts`); an
    MVM, vector op or program computes while it streams."""
    if isinstance(op, TransferOp) and crosses_interconnect(op.src, op.dst):
        return crossing_parts(
            target, op.src, op.dst, op.nbytes, count_arrays(op.arrays)
        )
    if isinstance(op, TransferOp | MoveOp):
        return 0, op_cost(target, op).cycles
    if isinstance(op, ProgramOp | MvmOp | VectorOp):
        compute, stream = op_parts(target, op)
        return compute.cycles, stream.cycles
    return op_cost(target, op).cycles, 0


ResourceSpec = tuple[bool, Ranges, Ranges, Ranges]
"""What an op holds: DRAM, the interconnect path to some cores, the vector
units of some cores, and arrays."""


def _resource_spec(target: HardwareTarget, op: TraceOp) -> ResourceSpec:
    arrays = op_arrays(op)
    if isinstance(op, TransferOp):
        crossing = crosses_interconnect(op.src, op.dst)
        cores = cores_of_arrays(target, op.arrays) if crossing else ()
        return ("dram" in (op.src, op.dst), cores, (), arrays)
    if isinstance(op, MoveOp):
        return (False, op.cores, (), ())
    vector = op.cores if isinstance(op, VectorOp) else ()
    levels = op_streams(target, op)
    if levels is NO_STREAM:
        return (False, (), vector, arrays)
    path: Ranges = ()
    if levels.interconnect:
        if isinstance(op, MvmOp | ProgramOp):
            path = cores_of_arrays(target, op.arrays)
        else:
            path = vector
    return (bool(levels.dram_read or levels.dram_written), path, vector, arrays)


def _spec_names(target: HardwareTarget, spec: ResourceSpec) -> tuple[Resource, ...]:
    dram, path, vector, arrays = spec
    names: list[Resource] = ["dram"] if dram else []
    if path:
        names += interconnect_path(target, path)[0]
    names += [f"vector {c}" for first, stop in vector for c in range(first, stop)]
    names += [a for first, stop in arrays for a in range(first, stop)]
    return tuple(names)


def op_resources(target: HardwareTarget, op: TraceOp) -> tuple[Resource, ...]:
    """The resources an op holds: ``dram``, its interconnect path, its
    vector units, then array ids."""
    return _spec_names(target, _resource_spec(target, op))


def resource_names(target: HardwareTarget) -> tuple[str, ...]:
    """Every resource besides the arrays, in index order after them."""
    vectors = tuple(f"vector {c}" for c in range(target.total_cores))
    return ("dram", *interconnect_resources(target), *vectors)


def _cost_key(op: TraceOp) -> tuple[object, ...]:
    if isinstance(op, TransferOp):
        return ("transfer", op.src, op.dst, op.nbytes, count_arrays(op.arrays))
    if isinstance(op, MoveOp):
        return ("move", op.nbytes, op.cores, op.link_bytes)
    if isinstance(op, ProgramOp):
        key = ("program", count_arrays(op.arrays), op.rows, op.cols, op.source)
        if in_place(op):
            return (*key, op.feed)
        if op.source == "tensor" or op.in_bytes:
            key += (op.arrays, program_elements(op), op.feed, op.in_bytes)
            return (*key, op.feed_arrays, op.copies)
        return key
    if isinstance(op, MvmOp):
        key = ("mvm", count_arrays(op.arrays), op.vectors, op.rows, op.cols)
        key += (op.local_bytes, op.feed, op.in_bytes, op.out_bytes, op.in_link_bytes)
        key += (op.rows_per_pass, op.zero_shares)
        if op.in_bytes or op.out_bytes:
            return (*key, op.arrays, op.feed_arrays, op.out_to, op.out_arrays)
        return key
    if isinstance(op, VectorOp):
        key = (vector_work_of(op.op), op.element_ops, count_ids(op.cores))
        key += (op.in_bytes,)
        if op.in_bytes or op.out_bytes:
            key += (op.out_bytes, op.cores, op.in_from, op.in_arrays)
            return (*key, op.out_to, op.out_arrays)
        return key
    if isinstance(op, SwitchOp):
        return ("switch", count_arrays(op.arrays))
    return ("barrier",)


@dataclass(frozen=True)
class PeakOccupancy:
    """The most bytes one storage level held at once: the global
    ``buffer``, the fullest core's ``local`` buffer (``unit``: that core),
    the fullest ``memory``-mode array (``unit``: that array); ``cycle`` is
    when it first held them (``unit`` None and 0 bytes: never used)."""

    level: str
    nbytes: int
    capacity: int
    unit: int | None
    cycle: int


@dataclass(frozen=True)
class SimStats:
    """Everything the report shows, computed from a finished schedule.

    Utilizations are busy cycles over ``makespan_cycles`` (0 for an empty
    schedule); ``array_utilization`` averages over every array of the target,
    ``used_array_utilization`` over the arrays some op holds; the
    interconnect's is that of its busiest resource (the bus, or the busiest
    mesh link or global-buffer channel, named by ``busiest_interconnect``);
    the vector units' averages over the cores. ``shared_busy_cycles`` gives
    the busy cycles behind each: DRAM's, the busiest interconnect
    resource's, and the sum over the cores' vector units. Byte counts
    (streams as :func:`op_streams` counts them): DRAM read = loads from
    ``dram`` and what ops stream from DRAM, written = stores to ``dram`` and
    what ops stream to it; memory-mode array bytes by ``src`` / ``dst``
    ``memory`` and what ops stream from and to memory-mode arrays;
    interconnect bytes are what moves carry and every streamed byte but
    those of an MVM's input fed by the memory-to-compute path; local bytes
    read are what MVMs read from their cores' local buffers.
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
    busiest_interconnect: str = "bus"
    interconnect_busy_cycles: Mapping[str, int] | None = None
    vector_busy_cycles: tuple[int, ...] = ()
    local_bytes_read: int = 0
    peak_occupancy: tuple[PeakOccupancy, ...] = ()


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
    compacted = {w.name: w for w in trace.weights if w.rows or w.columns}
    for op in trace.ops:
        weight: WeightInfo | None = None
        if (isinstance(op, ProgramOp) and op.source == "weight") or isinstance(
            op, MvmOp
        ):
            weight = compacted.get(op.weight)
        shape = (
            (
                weight.k,
                weight.n,
                weight.intra_block,
                weight.rows,
                weight.driven,
                weight.index_block,
                weight.columns,
            )
            if weight
            else ()
        )
        key = (*_cost_key(op), *shape)
        cost = cache.get(key)
        if cost is None:
            try:
                cost = op_cost(target, op, weight)
            except ValueError as err:
                raise CimError(f"{trace.origin}: op {op.id}: {err}") from None
            cache[key] = cost
        costs.append(cost)
    return tuple(costs)


Held = tuple[list[int], list[int]]
"""What an op holds: exclusive resources (arrays by id, then the vector
units of :func:`resource_names`) and bandwidth resources (``dram`` and the
interconnect's, shared in :data:`LANES` lanes), as indices."""


def bandwidth_names(target: HardwareTarget) -> tuple[str, ...]:
    """The resources shared in lanes: DRAM and the interconnect's."""
    return ("dram", *interconnect_resources(target))


def held_resources(trace: Trace) -> list[Held]:
    """The resources each op holds (equal sets share their lists)."""
    target = trace.target
    n_arrays = target.total_arrays
    exclusive = {
        name: n_arrays + i
        for i, name in enumerate(f"vector {c}" for c in range(target.total_cores))
    }
    bandwidth = {name: i for i, name in enumerate(bandwidth_names(target))}
    cache: dict[ResourceSpec, Held] = {}
    resources: list[Held] = []
    for op in trace.ops:
        spec = _resource_spec(target, op)
        held = cache.get(spec)
        if held is None:
            names = _spec_names(target, spec)
            held = (
                [
                    r if isinstance(r, int) else exclusive[r]
                    for r in names
                    if isinstance(r, int) or r in exclusive
                ],
                [bandwidth[r] for r in names if isinstance(r, str) and r in bandwidth],
            )
            cache[spec] = held
        resources.append(held)
    return resources


Loads = tuple[float, ...] | None
"""Cycles each bandwidth resource an op holds is busy with its bytes at the
op's full rate, in the order of its :data:`Held` bandwidth list; None when
they are all equal (the op takes the same lanes on each)."""


def bandwidth_loads(trace: Trace, resources: list[Held] | None = None) -> list[Loads]:
    """Every op's :data:`Loads` (:func:`cimflow.cost_model.path_loads`), in
    the order of its bandwidth resources in ``resources`` (default:
    :func:`held_resources`)."""
    target = trace.target
    if resources is None:
        resources = held_resources(trace)
    bandwidth = bandwidth_names(target)
    loads: list[Loads] = []
    for op, (_, held) in zip(trace.ops, resources, strict=True):
        if len(held) < 2:
            loads.append(None)
            continue
        names = [bandwidth[r] for r in held]
        links: int | None = None
        if isinstance(op, MoveOp):
            interconnect, dram, links = op.nbytes, 0, op.link_bytes
        elif isinstance(op, TransferOp):
            interconnect = op.nbytes if crosses_interconnect(op.src, op.dst) else 0
            dram = op.nbytes if "dram" in (op.src, op.dst) else 0
        else:
            levels = op_streams(target, op)
            interconnect = levels.interconnect
            dram = levels.dram_read + levels.dram_written
            links = levels.links
        cores = _resource_spec(target, op)[1]
        cycles = path_loads(target, names, cores, interconnect, dram, links)
        loads.append(None if len(set(cycles)) == 1 else cycles)
    return loads


LaneTable = tuple[tuple[int, ...], ...]
"""For an op's :data:`Loads`: row ``l`` (0 to :data:`LANES`) holds the lanes
it takes of each of its bandwidth resources when it runs on ``l`` lanes of
the slowest (:func:`cimflow.cost_model.lane_share`)."""


@lru_cache(maxsize=1 << 12)
def _lane_table(loads: tuple[float, ...]) -> LaneTable:
    slowest = max(loads)
    return tuple(
        tuple(lane_share(lanes, load, slowest) if lanes else 0 for load in loads)
        for lanes in range(LANES + 1)
    )


@lru_cache(maxsize=1 << 12)
def _lane_inverse(loads: tuple[float, ...]) -> tuple[tuple[int, ...], ...]:
    """For each bandwidth resource of :func:`_lane_table`, indexed by ``c``
    (0 to :data:`LANES`): the most lanes of the slowest resource an op can
    run on when ``c`` lanes of that one are free."""
    table = _lane_table(loads)
    inverse: list[tuple[int, ...]] = []
    for index in range(len(loads)):
        most: list[int] = []
        lanes = 0  # a share never falls as the lanes grow
        for free in range(LANES + 1):
            while lanes < LANES and table[lanes + 1][index] <= free:
                lanes += 1
            most.append(lanes)
        inverse.append(tuple(most))
    return tuple(inverse)


LaneShares = tuple[LaneTable, LaneTable] | None
"""An op's :func:`_lane_table` and :func:`_lane_inverse` (None: the same
lanes on every resource)."""


def lane_shares(loads: Loads) -> LaneShares:
    """The tables :func:`schedule` reads for an op's :data:`Loads`."""
    if loads is None:
        return None
    return _lane_table(loads), _lane_inverse(loads)


def _lane_counts(lanes: int, shares: LaneShares, count: int) -> tuple[int, ...]:
    """Lanes an op on ``lanes`` lanes of its slowest resource takes of each
    of its ``count`` bandwidth resources."""
    if shares is None:
        return (lanes,) * count
    return shares[0][lanes]


@dataclass(frozen=True)
class Schedule:
    """When each op ran, and the lanes of its slowest bandwidth resource it
    held: ``lanes`` those it started on (``LANES`` for an op that holds
    none), ``grown`` the ``(cycle, lanes)`` steps of an op that took more
    as it ran."""

    start: list[int]
    finish: list[int]
    lanes: list[int]
    grown: dict[int, tuple[tuple[int, int], ...]]

    def lane_steps(self, op: int) -> tuple[tuple[int, int], ...]:
        """``(from cycle, lanes)`` of op ``op``, from its start to its
        finish."""
        return ((self.start[op], self.lanes[op]), *self.grown.get(op, ()))


def schedule(
    trace: Trace,
    timings: Sequence[tuple[int, int]],
    resources: list[Held] | None = None,
    loads: Sequence[Loads] | None = None,
) -> Schedule:
    """Start and finish of every op, given its ``(compute, stream)`` timing
    (:func:`op_timing`; an op without bandwidth resources takes ``compute
    + 0``) and the resources it holds (:func:`held_resources`).

    At every event time the ops that may act, in increasing id order, do:
    a ready op starts when its exclusive resources are free and every
    bandwidth resource it holds has a free lane, on the lanes it needs
    (:func:`cimflow.cost_model.lanes_needed`) or all the free ones if fewer,
    and runs :func:`cimflow.cost_model.laned_cycles` on them; a running op
    short of the lanes it needs takes the most it can of those freed, and
    streams the bytes it has left at the new rate. An op ends when its
    compute is done and its bytes are streamed. So no lane idles while an op
    on its resource could use it, and an op that started first is not
    passed over by a later one.
    """
    ops = trace.ops
    n = len(ops)
    if resources is None:
        resources = held_resources(trace)
    if loads is None:
        loads = bandwidth_loads(trace, resources)
    shares = [lane_shares(op_loads) for op_loads in loads]
    needed = [lanes_needed(compute, stream) for compute, stream in timings]
    target = trace.target
    n_exclusive = target.total_arrays + target.total_cores
    n_bandwidth = len(bandwidth_names(target))
    pending = [len(op.deps) for op in ops]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for op in ops:
        for dep in op.deps:
            dependents[dep].append(op.id)

    free_at = [0] * n_exclusive
    free_lanes = [LANES] * n_bandwidth
    waiters: list[list[int]] = [[] for _ in range(n_exclusive + n_bandwidth)]
    woken_by = [-1] * n
    start = [-1] * n
    finish = [-1] * n
    first_lanes = [LANES] * n
    held = [LANES] * n
    # an op short of lanes had ``left`` lane-cycles of its stream at ``since``
    left = [0] * n
    since = [0] * n
    end_at = [0] * n
    grown: dict[int, list[tuple[int, int]]] = {}
    short_of_lanes: set[int] = set()
    lanes_freed = False
    events: list[tuple[int, int]] = []
    candidates = [i for i in range(n) if pending[i] == 0]
    heappush = heapq.heappush
    heappop = heapq.heappop
    now = 0
    done = 0

    def is_free(r: int) -> bool:
        if r < n_exclusive:
            return free_at[r] <= now
        return free_lanes[r - n_exclusive] > 0

    def wake(r: int) -> None:
        queue = waiters[r]
        if queue:
            j = heappop(queue)
            woken_by[j] = r
            heappush(candidates, j)

    def most_lanes(i: int, having: int) -> int:
        """The most lanes op ``i``, on ``having`` now, can hold."""
        most = needed[i]
        share = shares[i]
        if share is None:
            for r in resources[i][1]:
                free = free_lanes[r] + having
                if free < most:
                    most = free
            return most
        table, inverse = share
        counts = table[having]
        for index, r in enumerate(resources[i][1]):
            free = inverse[index][free_lanes[r] + counts[index]]
            if free < most:
                most = free
        return most

    def retake(i: int, before: int, after: int) -> None:
        """Op ``i`` goes from ``before`` to ``after`` lanes."""
        bandwidth = resources[i][1]
        count = len(bandwidth)
        had = _lane_counts(before, shares[i], count)
        has = _lane_counts(after, shares[i], count)
        for r, b, a in zip(bandwidth, had, has, strict=True):
            free_lanes[r] += b - a

    def grow(i: int) -> None:
        """Running op ``i``, short of the lanes it needs, takes the most it
        can of those free; its bytes left stream at the new rate."""
        having = held[i]
        more = most_lanes(i, having)
        if more <= having:
            return
        retake(i, having, more)
        held[i] = more
        grown.setdefault(i, []).append((now, more))
        if more >= needed[i]:
            short_of_lanes.discard(i)
        left[i] -= having * (now - since[i])
        since[i] = now
        end = max(start[i] + timings[i][0], now + streamed_cycles(left[i], more))
        if end < end_at[i]:
            end_at[i] = end
            for r in resources[i][0]:
                free_at[r] = end
            heappush(events, (end, i))

    def release(i: int) -> None:
        nonlocal done
        finish[i] = now
        done += 1
        for j in dependents[i]:
            pending[j] -= 1
            if not pending[j]:
                heappush(candidates, j)

    while True:
        while candidates:
            i = heappop(candidates)
            if start[i] >= 0:
                grow(i)
                continue
            exclusive, bandwidth = resources[i]
            blocker = -1
            for r in exclusive:
                if free_at[r] > now:
                    blocker = r
                    break
            lanes = LANES
            if blocker < 0 and bandwidth:
                for r in bandwidth:
                    if not free_lanes[r]:
                        blocker = n_exclusive + r
                        break
                else:
                    lanes = most_lanes(i, 0)
            woke = woken_by[i]
            woken_by[i] = -1
            if blocker >= 0:
                heappush(waiters[blocker], i)
                if woke >= 0 and is_free(woke):
                    wake(woke)
                continue
            start[i] = now
            compute, stream = timings[i]
            duration = laned_cycles(compute, stream, lanes) if bandwidth else compute
            first_lanes[i] = held[i] = lanes
            if duration:
                end = end_at[i] = now + duration
                for r in exclusive:
                    free_at[r] = end
                if bandwidth:
                    retake(i, 0, lanes)
                    if lanes < needed[i]:
                        left[i] = stream * LANES
                        since[i] = now
                        short_of_lanes.add(i)
                heappush(events, (end, i))
                if woke >= n_exclusive and is_free(woke):
                    wake(woke)
                continue
            release(i)
            if woke >= 0:
                wake(woke)
        if not events:
            break
        now = events[0][0]
        while events and events[0][0] == now:
            i = heappop(events)[1]
            if end_at[i] != now:
                continue  # it took more lanes and ended sooner
            exclusive, bandwidth = resources[i]
            if bandwidth:
                retake(i, held[i], 0)
                lanes_freed = True
                short_of_lanes.discard(i)
            release(i)
            for r in exclusive:
                wake(r)
            for r in bandwidth:
                wake(n_exclusive + r)
        if lanes_freed:
            lanes_freed = False
            # the running ops short of lanes bid for the freed ones in id
            # order with the ops that may start now
            for i in short_of_lanes:
                heappush(candidates, i)

    if done != n:
        raise RuntimeError(f"simulation stalled with {n - done} of {n} ops unfinished")
    return Schedule(
        start,
        finish,
        first_lanes,
        {i: tuple(steps) for i, steps in sorted(grown.items())},
    )


# -- occupancy -----------------------------------------------------------------


def _shares(nbytes: int, units: Ranges) -> list[tuple[int, int]]:
    """``nbytes`` split evenly over the ids of ``units`` (the first
    ``nbytes % count`` ids take one byte more)."""
    ids = [u for first, stop in units for u in range(first, stop)]
    base, extra = divmod(nbytes, len(ids))
    return [(u, base + (1 if i < extra else 0)) for i, u in enumerate(ids)]


class _Occupancy:
    """Bytes held per level over simulated time, with capacities and peaks."""

    def __init__(self, trace: Trace) -> None:
        target = trace.target
        self.trace = trace
        self.capacity = {
            "buffer": target.buffers.global_bytes * target.hierarchy.chips,
            "local": target.buffers.local_bytes,
            "memory": target.dual_mode.memory_capacity_bytes,
        }
        self.used: dict[str, list[int]] = {
            "buffer": [0],
            "local": [0] * target.total_cores,
            "memory": [0] * target.total_arrays,
        }
        self.peak: dict[str, tuple[int, int | None, int]] = dict.fromkeys(
            LEVELS, (0, None, 0)
        )
        self.contributions, self.ended = releases(trace)
        self.series: dict[str, list[tuple[int, int]]] | None = None
        """With :meth:`record`, every level's bytes in use after each
        change (cycle, bytes over all its units)."""

    def record(self) -> _Occupancy:
        """Keep :attr:`series` as the run goes."""
        self.series = {level: [(0, 0)] for level in LEVELS}
        return self

    def _note(self, level: str, now: int) -> None:
        if self.series is not None:
            self.series[level].append((now, sum(self.used[level])))

    def parts(self, level: str, nbytes: int, units: Ranges) -> list[tuple[int, int]]:
        return [(0, nbytes)] if level == "buffer" else _shares(nbytes, units)

    def add(self, maker: int, alloc_index: int, now: int) -> None:
        contribution = self.contributions[alloc_index]
        alloc = contribution.alloc
        level = alloc.level
        used = self.used[level]
        capacity = self.capacity[level]
        for unit, share in self.parts(level, alloc.nbytes, alloc.units):
            total = used[unit] + share
            if total > capacity:
                raise self.overfull(maker, alloc.tensor, level, unit, share, total, now)
            used[unit] = total
            if total > self.peak[level][0]:
                self.peak[level] = (total, None if level == "buffer" else unit, now)
        self._note(level, now)

    def remove(self, alloc_index: int, now: int = 0) -> None:
        alloc = self.contributions[alloc_index].alloc
        used = self.used[alloc.level]
        for unit, share in self.parts(alloc.level, alloc.nbytes, alloc.units):
            used[unit] -= share
        self._note(alloc.level, now)

    def overfull(
        self,
        maker: int,
        tensor: str,
        level: str,
        unit: int,
        share: int,
        total: int,
        now: int,
    ) -> CimError:
        where = {
            "buffer": "the global buffer",
            "local": f"the local buffer of core {unit}",
            "memory": f"memory-mode array {unit}",
        }[level]
        who = (
            op_label(self.trace.ops[maker]) if maker >= 0 else f"model input '{tensor}'"
        )
        return CimError(
            f"{self.trace.origin}: {who}: {where} overflows at cycle {now}: "
            f"{share} bytes of '{tensor}' make {total} of its "
            f"{self.capacity[level]} bytes"
        )

    def run(self, start: Sequence[int]) -> tuple[PeakOccupancy, ...]:
        ended = self.ended
        events: list[tuple[int, int, int, int]] = [
            (0 if c.op < 0 else start[c.op], 1, c.op, index)
            for index, c in enumerate(self.contributions)
        ]
        for op_id, indices in ended.items():
            events += [(start[op_id], 0, op_id, index) for index in indices]
        events.sort()
        state = [0] * len(self.contributions)  # 0 pending, 1 held, 2 ended
        for now, phase, op_id, index in events:
            if phase == 0:
                if state[index] == 1:
                    self.remove(index, now)
                state[index] = 2
            elif state[index] == 0:
                self.add(op_id, index, now)
                state[index] = 1
        return tuple(
            PeakOccupancy(level, nbytes, self.capacity[level], unit, cycle)
            for level in LEVELS
            for nbytes, unit, cycle in (self.peak[level],)
        )


def occupancy(trace: Trace, start: Sequence[int]) -> tuple[PeakOccupancy, ...]:
    """Track every level's allocations over the schedule's start times;
    the peak of each level, or a one-line CimError at the first
    allocation that overfills one."""
    return _Occupancy(trace).run(start)


def occupancy_series(
    trace: Trace, start: Sequence[int]
) -> dict[str, list[tuple[int, int]]]:
    """Per level (``buffer``, ``local``, ``memory``), the bytes in use over
    the schedule: ``(cycle, bytes)`` after each change, all units
    together."""
    tracker = _Occupancy(trace).record()
    tracker.run(start)
    assert tracker.series is not None
    return tracker.series


# -- statistics ----------------------------------------------------------------


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


def _powered_core_cycles(trace: Trace, run: Schedule) -> int:
    """Cycles the cores are powered, summed over the cores, when each is
    gated before the first op that uses it (its arrays, vector units or
    local buffer) starts and after the last ends."""
    target = trace.target
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for op, start, finish in zip(trace.ops, run.start, run.finish, strict=True):
        for core in _cores_used(target, op):
            first[core] = min(first.get(core, start), start)
            last[core] = max(last.get(core, finish), finish)
    return sum(last[core] - first[core] for core in first)


def _cores_used(target: HardwareTarget, op: TraceOp) -> set[int]:
    """The cores whose arrays, vector units or local buffers ``op`` uses."""
    ranges = cores_of_arrays(target, op_arrays(op))
    if isinstance(op, VectorOp | MoveOp | TransferOp):
        ranges = (*ranges, *op.cores)
    return {core for first, stop in ranges for core in range(first, stop)}


def compute_stats(
    trace: Trace,
    costs: tuple[OpCost, ...],
    run: Schedule,
    resources: list[Held] | None = None,
    peaks: tuple[PeakOccupancy, ...] = (),
    loads: Sequence[Loads] | None = None,
) -> SimStats:
    """Makespan, utilization, energy, switches, bytes and per-kind totals.
    A bandwidth resource is busy for its lanes' share of each op's time."""
    target = trace.target
    durations = [f - s for s, f in zip(run.start, run.finish, strict=True)]
    makespan = max(run.finish, default=0)
    seconds = cycles_to_seconds(target, makespan)
    throughput = trace.model.batch / seconds if seconds > 0 else 0.0
    if resources is None:
        resources = held_resources(trace)
    if loads is None:
        loads = bandwidth_loads(trace, resources)

    n_arrays = target.total_arrays
    vectors = [0] * target.total_cores
    bandwidth = bandwidth_names(target)
    lane_cycles = [0] * len(bandwidth)
    for i, ((exclusive, shared), duration, op_loads) in enumerate(
        zip(resources, durations, loads, strict=True)
    ):
        if not duration:
            continue
        for r in exclusive:
            if r >= n_arrays:
                vectors[r - n_arrays] += duration
        if not shared:
            continue
        steps = run.lane_steps(i)
        ends = [at for at, _ in steps[1:]] + [run.finish[i]]
        for (at, lanes), until in zip(steps, ends, strict=True):
            for r, taken in zip(
                shared,
                _lane_counts(lanes, lane_shares(op_loads), len(shared)),
                strict=True,
            ):
                lane_cycles[r] += (until - at) * taken
    by_name = {
        name: -(-cycles // LANES)
        for name, cycles in zip(bandwidth, lane_cycles, strict=True)
    }
    links = interconnect_resources(target)
    link_busy = {name: by_name[name] for name in links}
    busiest = max(links, key=lambda name: (link_busy[name], -links.index(name)))
    vector_busy = tuple(vectors)

    array_busy, arrays_used = _array_stats(trace, durations)
    shared_busy: dict[str, int] = {
        "dram": by_name["dram"],
        "interconnect": link_busy[busiest],
        "vector": sum(vector_busy),
    }
    energy: dict[str, float] = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    switch_ops: dict[str, int] = dict.fromkeys(SWITCH_DIRECTIONS, 0)
    array_switches: dict[str, int] = dict.fromkeys(SWITCH_DIRECTIONS, 0)
    op_counts: dict[str, int] = dict.fromkeys(OP_KINDS, 0)
    kind_cycles: dict[str, int] = dict.fromkeys(OP_KINDS, 0)
    dram_read = dram_written = interconnect_bytes = memory_read = memory_written = 0
    local_read = 0

    for op, cost, duration in zip(trace.ops, costs, durations, strict=True):
        op_counts[op.kind] += 1
        kind_cycles[op.kind] += duration
        for component, pj in cost.energy_pj.items():
            energy[component] = energy.get(component, 0.0) + pj
        if isinstance(op, TransferOp):
            if isinstance(op, LoadOp) and op.src == "dram":
                dram_read += op.nbytes
            if isinstance(op, StoreOp) and op.dst == "dram":
                dram_written += op.nbytes
            if op.src == "memory":
                memory_read += op.nbytes
            if op.dst == "memory":
                memory_written += op.nbytes
            if crosses_interconnect(op.src, op.dst):
                interconnect_bytes += op.nbytes
            continue
        if isinstance(op, MoveOp):
            interconnect_bytes += op.nbytes
            continue
        levels = op_streams(target, op)
        if levels is not NO_STREAM:
            interconnect_bytes += levels.interconnect
            dram_read += levels.dram_read
            dram_written += levels.dram_written
            memory_read += levels.memory_read
            memory_written += levels.memory_written
        if isinstance(op, MvmOp):
            local_read += op.local_bytes
        elif isinstance(op, SwitchOp):
            switch_ops[op.to] += 1
            array_switches[op.to] += count_arrays(op.arrays)
        elif isinstance(op, ProgramOp) and in_place(op):
            switch_ops["compute"] += 1
            array_switches["compute"] += count_arrays(op.arrays)

    powered = (
        _powered_core_cycles(trace, run) if target.energy.gate_idle_cores else None
    )
    energy.update(static_energy(target, makespan, powered))

    def fraction(busy_cycles: int, count: int) -> float:
        if makespan <= 0 or count <= 0:
            return 0.0
        return busy_cycles / (makespan * count)

    total_array_busy = sum(array_busy)
    array_util = fraction(total_array_busy, target.total_arrays)
    used_util = fraction(total_array_busy, arrays_used)
    utilization: dict[str, float] = {
        "arrays": array_util,
        "dram": fraction(shared_busy["dram"], 1),
        "interconnect": fraction(shared_busy["interconnect"], 1),
        "vector": fraction(shared_busy["vector"], target.total_cores),
    }

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
        busiest_interconnect=busiest,
        interconnect_busy_cycles=link_busy,
        vector_busy_cycles=vector_busy,
        local_bytes_read=local_read,
        peak_occupancy=peaks,
    )


@paused_collector()
def simulate(trace: Trace) -> SimResult:
    """Run the discrete-event simulation of a validated trace."""
    costs = op_costs(trace)
    timings = op_timings(trace, costs)
    resources = held_resources(trace)
    loads = bandwidth_loads(trace, resources)
    run = schedule(trace, timings, resources, loads)
    peaks = occupancy(trace, run.start)
    return SimResult(
        trace=trace,
        start=tuple(run.start),
        finish=tuple(run.finish),
        costs=costs,
        stats=compute_stats(trace, costs, run, resources, peaks, loads),
    )


def op_timings(trace: Trace, costs: Sequence[OpCost]) -> list[tuple[int, int]]:
    """``(compute, stream)`` of every op (:func:`op_timing`; an op that holds
    no bandwidth resource: its whole cost as compute)."""
    target = trace.target
    cache: dict[tuple[object, ...], tuple[int, int]] = {}
    timings: list[tuple[int, int]] = []
    for op, cost in zip(trace.ops, costs, strict=True):
        spec = _resource_spec(target, op)
        if not spec[0] and not spec[1] and not isinstance(op, MoveOp):
            timings.append((cost.cycles, 0))
            continue
        key = _cost_key(op)
        timing = cache.get(key)
        if timing is None:
            timing = op_timing(target, op)
            cache[key] = timing
        timings.append(timing)
    return timings
