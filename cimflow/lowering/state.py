"""The state of the schedule builder (:mod:`cimflow.lowering.builder`): what
it has emitted, where tensors live, the current segment, and the bookkeeping
every part of the lowering shares (emitting ops, their dependences, the
bands of a pipelined segment, array and core ranges, copy layouts)."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import cast

from xdsl.dialects.builtin import ArrayAttr, StringAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue

from cimflow.analysis import blocking
from cimflow.analysis.blocking import Band, BlockPlan, Layout, bands
from cimflow.analysis.tile_mapping import Chunk, plan_chunks
from cimflow.cimdialect import cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import NODE_ATTR, tensor_shape
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    link_cycles,
    mvm_cycles,
    program_cost,
    sends_once,
    with_mvm_choices,
)
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.allocator import Grant, SpaceAllocator
from cimflow.lowering.placement import Location, Ring, TensorState
from cimflow.lowering.rules import (
    ColumnTile,
    RowIndices,
    Span,
    Window,
    column_tiles,
    core_k_spans,
    cores_of,
    expanded_elements,
    finishing_ops,
    held_input_scale,
    input_elements,
    merge_ops,
    merge_spans,
    new_input_elements,
    sum_bytes,
    written_outputs,
)


def array_ids(arrays: cim_meta.ArrayRangesAttr | cim_meta.CoreRangesAttr) -> list[int]:
    """The ids in ``arrays`` (array ranges, or a ``CoreRangesAttr``'s cores),
    in order."""
    return [a for first, stop in arrays.ranges for a in range(first, stop)]


def runs_of(arrays: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted array ids as ``[start, stop)`` runs."""
    runs: list[tuple[int, int]] = []
    for index in sorted(arrays):
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def core_ranges(cores: Iterable[int]) -> cim_meta.CoreRangesAttr:
    return cim_meta.CoreRangesAttr.from_ranges(runs_of(cores))


@dataclass(frozen=True)
class CopyLayout:
    """One placed copy (or streamed chunk) of a weight: its arrays, cores,
    the weight rows each core holds, and how many cores share each output
    column's row tiles."""

    arrays: cim_meta.ArrayRangesAttr
    chunk: Chunk
    cores: tuple[int, ...]
    k_by_core: Mapping[int, tuple[Span, ...]]
    columns: tuple[tuple[int, int, int], ...]
    """``(outputs, row tiles, cores holding them)`` per column tile."""

    @property
    def cross_core(self) -> bool:
        return any(holders > 1 for _, _, holders in self.columns)


@dataclass
class HeldBias:
    """A bias kept in the local buffers of the cores whose vector units add
    it while its MVM is lowered: the move that brought it there (the
    accumulations on those cores wait for it and read nothing more), and
    every accumulation that used it (what its free waits for)."""

    bias: str
    cores: cim_meta.CoreRangesAttr
    nbytes: int
    """Bytes in each of the cores."""
    moved: SSAValue
    """The move that brought it there."""
    readers: list[SSAValue] = field(default_factory=lambda: [])
    core_ids: tuple[int, ...] = field(init=False)
    """The ids of ``cores``."""

    def __post_init__(self) -> None:
        self.core_ids = tuple(array_ids(self.cores))


JOINED_USERS = 4
"""More users of an array range than this, and the first program waiting
for them waits for one join of them instead (so do later ones)."""


_PLACES = (cim_meta.AllocAttr, cim_meta.PlaceAttr)


def arrays_named(op: Operation) -> Iterator[tuple[int, int]]:
    """The array ranges a meta-op names: those it computes on, programs,
    switches, streams from or to, allocates in or frees."""
    # exact types: the attributes are leaf classes (and this runs per op)
    for value in op.properties.values():
        kind = type(value)
        if kind is cim_meta.ArrayRangesAttr:
            yield from cast(cim_meta.ArrayRangesAttr, value).ranges
        elif kind is ArrayAttr:
            for item in cast(ArrayAttr[Attribute], value).data:
                if type(item) in _PLACES:
                    units = cast(cim_meta.AllocAttr | cim_meta.PlaceAttr, item).units
                    if type(units) is cim_meta.ArrayRangesAttr:
                        yield from units.ranges


@lru_cache(maxsize=8192)
def copy_layout(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    chunk: Chunk,
    first_array: int,
) -> CopyLayout:
    """The layout of a chunk placed from array ``first_array``: arrays are
    taken group by group, column tile by column tile, row tile by row tile
    (:func:`cimflow.lowering.rules.array_k_spans`)."""
    arrays = cim_meta.ArrayRangesAttr.from_ranges(
        [(first_array, first_array + chunk.arrays)]
    )
    return CopyLayout(
        arrays,
        chunk,
        cores_of(hw, first_array, chunk.arrays),
        core_k_spans(hw, tiling, chunk, first_array),
        column_tiles(hw, tiling, chunk, first_array),
    )


def chunk_start(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    chunks: Sequence[Chunk],
    first: int,
    stop: int,
) -> int:
    """Where a streamed weight's chunks start in the free run ``[first,
    stop)``: the first array from which the fewest partial sums cross
    cores (:func:`crossing_sums`; none, when no chunk splits an output
    column's row tiles between cores: they then add up in the core instead
    of crossing to another, or to DRAM). Only the start's place in its core
    matters, so the first ``arrays_per_core`` starts are tried. The cost
    models place chunks in ``[0, available)`` by this same rule."""
    return _chunk_start(hw, tiling, tuple(chunks), first, stop)


@lru_cache(maxsize=4096)
def _chunk_start(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    chunks: tuple[Chunk, ...],
    first: int,
    stop: int,
) -> int:
    largest = max(chunk.arrays for chunk in chunks)
    last = min(stop - largest, first + hw.hierarchy.arrays_per_core - 1)
    # chunks of one weight differ mostly in their columns' offset, which
    # the count of crossing sums does not see
    shapes = Counter(
        replace(c, n0=0, n1=c.n1 - c.n0) if tiling.field("groups") == 1 else c
        for c in chunks
    )
    best, fewest = first, -1
    for start in range(first, last + 1):
        crossing = sum(
            count * crossing_sums(column_tiles(hw, tiling, c, start))
            for c, count in shapes.items()
        )
        if fewest < 0 or crossing < fewest:
            best, fewest = start, crossing
        if crossing == 0:
            break
    return best


@dataclass(frozen=True)
class ChunkStream:
    """A weight streamed through a free run of arrays: its chunks in order
    and the first array of each. Chunks on one run (``alternates`` false)
    each take the arrays the chunk before just computed on, so a chunk's
    program waits for that computation; alternating chunks take the two
    halves of the run in turn, so a chunk's program (DRAM-bound, for a
    weight from DRAM) overlaps the computation of the chunk before, and
    waits for the one before that (double buffering)."""

    chunks: tuple[Chunk, ...]
    starts: tuple[int, ...]
    alternates: bool

    def reuses(self, index: int) -> int | None:
        """The chunk before ``index`` whose arrays chunk ``index`` takes
        (None: the first on its arrays)."""
        before = index - (2 if self.alternates else 1)
        return before if before >= 0 else None


def chunk_stream(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    first: int,
    stop: int,
    alternates: bool,
) -> ChunkStream:
    """The chunks of a weight streamed through the free run ``[first,
    stop)``: cut on all of it, each placed by :func:`chunk_start`; or,
    ``alternates``, cut on half of it, the even chunks placed in the first
    half and the odd ones in the rest, each half by :func:`chunk_start`."""
    if not alternates:
        return one_run(hw, tiling, plan_chunks(tiling, stop - first, hw), first, stop)
    middle = first + (stop - first) // 2
    chunks = tuple(plan_chunks(tiling, middle - first, hw))
    halves = (
        chunk_start(hw, tiling, chunks, first, middle),
        chunk_start(hw, tiling, chunks, middle, stop),
    )
    starts = tuple(halves[index % 2] for index in range(len(chunks)))
    return ChunkStream(chunks, starts, True)


def one_run(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    chunks: Sequence[Chunk],
    first: int,
    stop: int,
) -> ChunkStream:
    """``chunks`` one after another on the same arrays of the free run
    ``[first, stop)``, placed by :func:`chunk_start`."""
    start = chunk_start(hw, tiling, chunks, first, stop)
    return ChunkStream(tuple(chunks), (start,) * len(chunks), False)


def stream_alternatives(
    hw: HardwareTarget, tiling: cim_tile.TilingAttr, available: int
) -> tuple[bool, ...]:
    """The ways a weight may stream through ``available`` free arrays
    (:func:`chunk_stream`'s ``alternates``): on all of them, and
    alternating between their halves when that cuts it into another number
    of chunks (the chunk count an allocation writes then says which it
    chose, :func:`alternates_for`)."""
    if available < 2:
        return (False,)
    whole = len(plan_chunks(tiling, available, hw))
    if whole < 2 or whole == len(plan_chunks(tiling, available // 2, hw)):
        return (False,)
    return (False, True)


def alternates_for(
    hw: HardwareTarget, tiling: cim_tile.TilingAttr, available: int, chunks: int
) -> bool | None:
    """Whether a weight allocated ``chunks`` chunks on ``available`` free
    arrays alternates between their halves: the count its chunks have on
    all the arrays says no, the count on half of them yes; None when it
    is neither."""
    for alternates in stream_alternatives(hw, tiling, available):
        size = available // 2 if alternates else available
        if len(plan_chunks(tiling, size, hw)) == chunks:
            return alternates
    return None


def crossing_sums(columns: Sequence[ColumnTile]) -> int:
    """Partial sums per input vector that leave their core, of a chunk
    whose column tiles are ``columns`` (:attr:`CopyLayout.columns`): each
    output of a column tile whose row tiles lie on several cores, once per
    core."""
    return sum(outputs * holders for outputs, _, holders in columns if holders > 1)


@dataclass
class MvmFeed:
    """What one copy's share of vectors moves and computes."""

    in_bytes: int
    """Bytes crossing the interconnect into the cores (bus: broadcast once;
    mesh: per core); 0 when the line buffers hold every input row."""
    core_in: int
    """Input bytes of the busiest core."""
    expanded: int
    """Bytes the busiest core's arrays read from its local buffer."""
    out_bytes: int
    core_out: int
    accumulate: int
    """Element additions of partial sums held by different cores."""
    local_adds: int
    """Element additions of partial sums of row tiles in the same core (the
    core adds them before its outputs leave)."""
    in_links: int | None = None
    """On a mesh that multicasts, the bytes the cores' links carry for
    ``in_bytes`` (each core its own rows; the port sends their union once);
    None: as many as ``in_bytes``."""


def mvm_feed(
    hw: HardwareTarget,
    layout: CopyLayout,
    span: Span,
    window: Window | None,
    previous: Span | None = None,
    input_scale: Fraction | None = None,
    output_scale: Fraction | None = None,
    misaligned: bool = False,
) -> MvmFeed:
    """What one copy's vectors ``span`` move and compute, right after the
    same cores computed ``previous`` (their line buffers still hold its
    window rows); its inputs are ``input_scale`` times those of the rows
    its arrays hold (:func:`~cimflow.lowering.rules.held_input_scale`; None:
    the same), and its finished outputs ``output_scale`` times its held
    columns' (:func:`~cimflow.lowering.rules.written_outputs`); its row
    tiles' partial sums merge ``misaligned``
    (:func:`~cimflow.lowering.rules.merge_ops`)."""
    act = hw.activation_bytes

    def scaled(elements: int) -> int:
        if input_scale is None:
            return elements * act
        return math.ceil(elements * input_scale) * act

    per_core = {
        core: scaled(input_elements(window, span, spans))
        for core, spans in layout.k_by_core.items()
    }

    def each_core() -> int:
        return scaled(
            sum(
                new_input_elements(window, span, spans, previous)
                for spans in layout.k_by_core.values()
            )
        )

    in_links: int | None = None
    if not sends_once(hw):
        moved = each_core()
    else:
        union = merge_spans(s for spans in layout.k_by_core.values() for s in spans)
        moved = scaled(new_input_elements(window, span, union, previous))
        if hw.interconnect.topology == "mesh":  # each core's link its own rows
            carried = each_core()
            in_links = carried if carried > moved else None
    expanded = max(
        scaled(expanded_elements(span, spans)) for spans in layout.k_by_core.values()
    )
    vectors = span[1] - span[0]
    out_bytes = sum_bytes(hw, layout.columns, vectors, False, output_scale)
    accumulate = local_adds = 0
    for outputs, tiles, holders in layout.columns:
        accumulate += merge_ops(vectors * outputs * (holders - 1), misaligned)
        local_adds += merge_ops(vectors * outputs * (tiles - holders), misaligned)
    core_out = math.ceil(out_bytes / max(1, len(layout.cores)))
    return MvmFeed(
        moved,
        max(per_core.values(), default=0),
        expanded,
        out_bytes,
        core_out,
        accumulate,
        local_adds,
        in_links,
    )


def copy_local_bytes(
    hw: HardwareTarget,
    mvm: cim_tile.MVMOp,
    chunk: Chunk,
    window: Window | None,
) -> int:
    """Bytes the busiest core's local buffer supplies per vector to a copy
    of ``mvm`` holding ``chunk`` from array 0 (:func:`mvm_feed`'s
    ``expanded`` of one vector): what bounds its MVMs when it takes longer
    than the arrays' compute."""
    layout = copy_layout(hw, mvm.tiling, chunk, 0)
    return mvm_feed(
        hw, layout, (0, 1), window, input_scale=held_input_scale(mvm)
    ).expanded


def chunk_ends(chunks: Sequence[Chunk]) -> list[tuple[bool, bool]]:
    """Per chunk of a streamed weight: whether it is the first and whether
    the last of the chunks over its columns."""
    first_of = {c.n0: i for i, c in reversed(list(enumerate(chunks)))}
    last_of = {c.n0: i for i, c in enumerate(chunks)}
    return [(first_of[c.n0] == i, last_of[c.n0] == i) for i, c in enumerate(chunks)]


def chunk_adds(
    chunk: Chunk,
    vectors: int,
    first: bool,
    last: bool,
    finishing: int,
    output_scale: Fraction | None = None,
    misaligned: bool = False,
) -> int:
    """Element additions after a streamed chunk's MVM of ``vectors``
    vectors: its row tiles' partial sums, the running sum of the chunks
    before it over the same columns (merged ``misaligned``:
    :func:`~cimflow.lowering.rules.merge_ops`), and on the last of them
    ``finishing`` more per output written (its bias, a fused residual;
    :func:`~cimflow.lowering.rules.finishing_ops`)."""
    outputs = vectors * (chunk.n1 - chunk.n0)
    merged = vectors * chunk.merged_sums + (0 if first else outputs)
    done = finishing_ops(outputs, finishing, output_scale) if last else 0
    return merge_ops(merged, misaligned) + done


def chunk_out_bytes(
    hw: HardwareTarget,
    layout: CopyLayout,
    vectors: int,
    first: bool,
    last: bool,
    adds: int,
    output_scale: Fraction | None = None,
) -> int:
    """Bytes the MVM of a streamed chunk sends out as it computes: its
    finished outputs when it alone covers its columns and nothing is left
    to add; none when it alone covers them and its cores add the rest (row
    tiles, bias, residual) before the outputs leave; else its partial sums,
    unfinished when another chunk covers the same columns."""
    if first and last and not adds:
        return sum_bytes(hw, layout.columns, vectors, False, output_scale)
    if first and last and not layout.cross_core:
        return 0
    return sum_bytes(hw, layout.columns, vectors, not (first and last))


def columns_bias_bytes(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    columns: int,
    output_scale: Fraction | None = None,
) -> int:
    """Bytes of the bias an accumulation over ``columns`` held columns of a
    weight reads: that of the outputs they finish
    (:func:`~cimflow.lowering.rules.written_outputs`), or the whole bias
    when they are none."""
    if columns <= 0:
        columns = tiling.field("groups") * tiling.field("n")
    return max(1, written_outputs(columns, output_scale) * hw.weight_bytes)


KEPT_BIAS_SHARE = 4
"""A core keeps a bias in the part of its local buffer that an MVM's
pieces use only while the biases it keeps there take at most this share
(one in this many bytes) of the part: the pieces take half of what is
left (:meth:`~cimflow.lowering.mvm.MvmLowering.local_room`), so the next
one moves in while one computes."""


def kept_bias_bytes(part: int, nbytes: int) -> int:
    """Bytes of biases (``nbytes`` in all) a local buffer part of ``part``
    bytes keeps: all of them when they take at most
    1 / :data:`KEPT_BIAS_SHARE` of it, else none."""
    return nbytes if KEPT_BIAS_SHARE * nbytes <= part else 0


def keeps_bias(part: int, kept: int, nbytes: int, whole: bool) -> bool:
    """Whether cores whose local buffer part of ``part`` bytes keeps
    ``kept`` bytes of biases already keep one more of ``nbytes`` until
    its MVM ends, moved in once: only a ``whole`` bias (each accumulation
    of a streamed chunk over some of the columns reads its columns' part),
    and only within :func:`kept_bias_bytes`. The lowering and the
    dual-mode model's streamed chunks both ask."""
    return whole and kept_bias_bytes(part, kept + nbytes) > 0


def partials_fit(nbytes: int, room_for: int, available: int) -> bool:
    """Whether partial sums of ``nbytes`` (and ``room_for`` bytes more:
    the running sum they start) wait for the vector units in the global
    buffer, of which ``available`` bytes are free: they fit half of it;
    else they wait in DRAM."""
    return nbytes + room_for <= available // 2


MAX_CHUNK_PARTS = 5
"""Most parts a streamed chunk's vectors go in
(:meth:`~cimflow.lowering.mvm.MvmLowering.chunk_parts`): each part is one
MVM and one addition more in the trace. With up to 8 a chunk, 8 layers
of LLaMA-2-7B at L 128 on dynaplasia took 53,583 ops instead of 5,670,
their cmswitch compile 3.2 -> 7.2 s and their simulation 1.4 -> 10.4 s
(149.1 million cycles instead of 161.2), which would put the 32-layer
compile past its 10 s budget; with up to 6, 12,358 ops. With up to 5,
6,366 ops: that prompt's projections keep their sums whole (they need
8 parts), and at L 64 every chunk of two layers passes its sums through
the buffer (34,515,705 -> 32,539,631 cycles under static, 1,685 -> 6,517
ops), as with no limit."""


def chunk_part_count(nbytes: int, vectors: int, available: int) -> int:
    """Parts a streamed chunk that alone covers its columns runs its
    ``vectors`` in, its cores' partial sums (``nbytes`` for them all)
    meeting in the global buffer (``available`` bytes free): those of
    :func:`partial_parts`, or one (the sums wait in DRAM) when that takes
    more than :data:`MAX_CHUNK_PARTS`."""
    count = partial_parts(nbytes, vectors, available)
    return count if count <= MAX_CHUNK_PARTS else 1


def partial_parts(nbytes: int, vectors: int, available: int) -> int:
    """Parts an MVM's ``vectors`` go in so that each part's partial sums
    (``nbytes`` for them all) wait for the vector units in the global
    buffer, of which ``available`` bytes are free (:func:`partials_fit`):
    one when they fit whole, or when not even one vector's do (they wait
    in DRAM); else the fewest near-equal parts whose largest fits half of
    it."""
    room = available // 2
    per_vector = math.ceil(nbytes / max(1, vectors))
    if nbytes <= room or per_vector > room:
        return 1
    return math.ceil(vectors / (room // per_vector))


def chunk_add_bytes(
    hw: HardwareTarget,
    outputs: int,
    streamed: int,
    position: tuple[bool, bool, bool],
    finishing_bytes: int,
    output_scale: Fraction | None = None,
) -> tuple[int, int]:
    """Bytes the add after a streamed chunk's MVM (``outputs`` outputs,
    ``streamed`` bytes of sums sent out) streams in and out, by its
    ``position`` (first, last over its columns, and in its cores: its
    cores hold the whole columns): in, its partial sums, the running sum
    of the chunks before it, and on the last chunk ``finishing_bytes``
    (the bias, a fused residual); out, the finished outputs on the last
    chunk, else the running sum at the accumulator's width."""
    first, last, in_cores = position
    wide = outputs * hw.accumulator_bytes
    finished = written_outputs(outputs, output_scale) * hw.activation_bytes
    if in_cores:
        return finishing_bytes, finished
    in_bytes = streamed + (0 if first else wide) + (finishing_bytes if last else 0)
    return in_bytes, finished if last else wide


@dataclass
class FusedResidual:
    """A residual (:func:`~cimflow.lowering.rules.residual_of`) that the
    finishing accumulations of the MVM being lowered add."""

    output: str
    """The MVM's output tensor."""
    shape: tuple[int, int]
    """Its ``[V, N]``."""
    skip: TensorState
    layout: str
    tokens: list[SSAValue] = field(default_factory=lambda: [])
    """What the current step's accumulations wait for (the skip's rows)."""


def order_by_dependences(block: Block) -> list[list[Operation]]:
    """Reorder ``block`` so that every op follows the ops it waits for,
    keeping the order it has wherever that already holds (the earliest op
    ready goes first): gates that wait for ops emitted after them
    (:meth:`~cimflow.lowering.buffers.BufferPlacement.close_rings`) move
    behind those ops, and so does everything waiting for them. When no
    such order exists, ``block`` stays as it is and the ops of every cycle
    of waits are returned, a list per cycle (else none)."""
    ops = list(block.ops)
    position = {op: index for index, op in enumerate(ops)}
    waits_for: list[list[int]] = [[] for _ in ops]
    users: list[list[int]] = [[] for _ in ops]
    for index, op in enumerate(ops):
        for operand in op.operands:
            owner = position.get(cast(Operation, operand.owner))
            if owner is not None:
                waits_for[index].append(owner)
                users[owner].append(index)
    waiting = [len(w) for w in waits_for]
    ready = [index for index, count in enumerate(waiting) if not count]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users[index]:
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(order) != len(ops):
        stuck = [[d for d in waits if waiting[d]] for waits in waits_for]
        return [[ops[i] for i in cycle] for cycle in _cycles(stuck)]
    if order != list(range(len(ops))):
        for op in ops:
            op.detach()
        block.add_ops(ops[index] for index in order)
    return []


def _cycles(waits_for: Sequence[Sequence[int]]) -> list[list[int]]:
    """The cycles of the graph where op ``i`` waits for ``waits_for[i]``:
    its strongly connected components of more than one op (Tarjan's
    algorithm, iterative), each in ascending order, by their first op."""
    count = len(waits_for)
    index_of = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    found: list[list[int]] = []
    visited = 0
    for root in range(count):
        if index_of[root] >= 0 or not waits_for[root]:
            continue
        work = [(root, 0)]
        index_of[root] = low[root] = visited
        visited += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, edge = work[-1]
            if edge < len(waits_for[node]):
                work[-1] = (node, edge + 1)
                nxt = waits_for[node][edge]
                if index_of[nxt] < 0:
                    index_of[nxt] = low[nxt] = visited
                    visited += 1
                    stack.append(nxt)
                    on_stack[nxt] = True
                    work.append((nxt, 0))
                elif on_stack[nxt]:
                    low[node] = min(low[node], index_of[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


@dataclass
class BuilderState:
    """The state of one function's lowering (see :mod:`cimflow.lowering.builder`)."""

    hw: HardwareTarget
    block: Block = field(default_factory=Block)
    decls: list[Operation] = field(default_factory=lambda: [])
    declared_weights: dict[
        str,
        tuple[
            cim_tile.WeightLayout,
            int,
            int,
            int,
            int,
            int,
            int,
            int,
            int,
            tuple[int, ...],
        ],
    ] = field(default_factory=lambda: {})
    row_indices: dict[str, RowIndices] = field(default_factory=lambda: {})
    """Each compacted weight's :data:`~cimflow.lowering.rules.RowIndices`,
    whose held rows' indices its programs stream with its values
    (:func:`~cimflow.lowering.rules.row_indices_of`)."""
    names: dict[SSAValue, str] = field(default_factory=lambda: {})
    used_names: set[str] = field(default_factory=lambda: set())
    name_suffixes: dict[str, int] = field(default_factory=lambda: {})
    """The suffix ``unique_name`` last gave each base name."""
    output_names: dict[SSAValue, str] = field(default_factory=lambda: {})
    tensors: dict[str, TensorState] = field(default_factory=lambda: {})
    windows: dict[str, Window] = field(default_factory=lambda: {})
    """An ``im2col`` result -> the window that expands its input."""
    layouts: dict[str, Layout | None] = field(default_factory=lambda: {})
    dataflows: dict[int, tuple[Dataflow, int]] = field(default_factory=lambda: {})
    batch: int = 1
    buffer: SpaceAllocator[SSAValue] = field(
        default_factory=lambda: SpaceAllocator[SSAValue](0)
    )
    """The global buffer."""
    rings: dict[str, Ring] = field(default_factory=lambda: {})
    """Tensors held in a ring of some of their bands, by name."""
    unringed: frozenset[str] = frozenset()
    """Tensors never held in a ring (their ring's waits closed a cycle)."""
    views: set[SSAValue] = field(default_factory=lambda: set())
    """The vector ops lowered as views (no work, no bytes: the result is
    their operand seen another way), so that a read of one reads what it
    views."""
    gated: set[SSAValue] = field(default_factory=lambda: set())
    """Ops that wait, directly or not, for a ring's gate
    (:meth:`~cimflow.lowering.buffers.BufferPlacement.ring_slot`)."""
    holding: frozenset[int] = frozenset()
    """Segments whose rings' waits closed a cycle through an allocation:
    the bytes their ops release after a ring's gate wait for the segment's
    end before another tensor takes them
    (:meth:`~cimflow.lowering.buffers.BufferPlacement.holds`)."""
    plans: Mapping[Operation, BlockPlan] = field(default_factory=lambda: {})
    """How every operator of a pipelined segment is cut into bands
    (:func:`~cimflow.analysis.allocation.pipeline_plans`)."""
    body: Sequence[Operation] = ()
    """The ops of the function being lowered (``position`` indexes them)."""
    grants: dict[str, Grant[SSAValue]] = field(default_factory=lambda: {})
    """The global-buffer bytes each tensor placed there was granted."""
    local: dict[tuple[int, str], SpaceAllocator[SSAValue]] = field(
        default_factory=lambda: {}
    )
    """Each core's local buffer, by core and the resident weight its part
    is for (``""``: the whole buffer, or the part of every other user)."""
    local_after: dict[int, list[SSAValue]] = field(default_factory=lambda: {})
    """What the first allocations of each core's local buffer wait for, once
    a segment has split them anew: the ops that last released its bytes
    before (:meth:`~cimflow.lowering.arrays.ArrayPlacement.split_local_buffers`)."""
    local_parts: dict[int, frozenset[str]] = field(default_factory=lambda: {})
    """In a pipelined segment, the resident weights of each core that holds
    more than one, whose layers run at the same time: each has its own part
    of the core's local buffer (and ``""`` one more, for the free arrays).
    Empty in other segments, where the layers run one after the other."""
    segment_loads: dict[str, TensorState] = field(default_factory=lambda: {})
    """Weights and biases the current segment reads, by name."""
    memory_mode: set[int] = field(default_factory=lambda: set())
    """Arrays now in memory mode."""
    prefetched: dict[str, TensorState] = field(default_factory=lambda: {})
    """Weights of the current segment waiting in memory-mode arrays."""
    spill_arrays: tuple[cim_meta.ArrayRangesAttr, int] | None = None
    """The current segment's activations buffer and the bytes still free."""
    input_arrays: tuple[cim_meta.ArrayRangesAttr, int] | None = None
    """The current segment's ``inputs`` buffer and its bytes."""
    staged_input: SSAValue | None = None
    """The free of the input last staged in the ``inputs`` buffer, which
    the next one staged there waits for."""
    reserved: int = 0
    """Arrays ``[0, reserved)`` hold the KV cache for the whole run."""
    pending_prefetch: (
        tuple[
            Sequence[cim_tile.MVMOp],
            tuple[cim_meta.ArrayRangesAttr, int],
            SSAValue | None,
        ]
        | None
    ) = None
    to_compute: SSAValue | None = None
    """The switch that gave the current segment its compute arrays back."""
    to_memory: SSAValue | None = None
    """The current segment's switch of its buffers to memory mode (or, when
    they already are, the join of the evictions that empty them)."""
    stream_loads: list[SSAValue] = field(default_factory=lambda: [])
    """DRAM traffic of the weights the current segment streams in chunks."""
    chunk_buffer: tuple[int, int] | None = None
    """First array and arrays per half of the segment's ``chunks`` buffer."""
    passing: dict[str, str] = field(default_factory=lambda: {})
    """Passing allocations in the global buffer, not released yet."""
    running_sums: dict[str, TensorState] = field(default_factory=lambda: {})
    """Where each running sum of a reduction split over chunks waits."""
    summed: dict[str, SSAValue] = field(default_factory=lambda: {})
    """The last addition into each running sum: the next one waits for it
    (alternating chunks compute at once, and add in order)."""
    position: int = 0
    node: StringAttr | None = None
    """The ONNX node of the tile op being lowered, stamped on every meta-op
    it emits (None between ops: a segment's barrier, switches, prefetch)."""
    releases: dict[int, list[TensorState]] = field(default_factory=lambda: {})
    """Allocated tensors by the position after which they may be freed."""
    last_use: dict[SSAValue, int] = field(default_factory=lambda: {})
    output_readers: dict[SSAValue, tuple[int, str]] = field(default_factory=lambda: {})
    """Each model output's last reader before the end (-1: none) and the
    name its store is labelled with."""
    early_stores: dict[str, str] = field(default_factory=lambda: {})
    """Model outputs in the global buffer (tensor -> output name) written
    to DRAM, and freed, as soon as their last reader is done, not at the
    end."""
    end: int = 0
    """The position after the last op (where the outputs are stored)."""
    values_by_name: dict[str, SSAValue] = field(default_factory=lambda: {})
    sinks: dict[SSAValue, None] = field(default_factory=lambda: {})
    segment: int = -1
    barrier: SSAValue | None = None
    input_scale: Fraction | None = None
    """Inputs per held weight row of the MVM being lowered, when not one
    (:func:`~cimflow.lowering.rules.held_input_scale`)."""
    output_scale: Fraction | None = None
    """Outputs written per column held of the MVM being lowered, when not
    one (``cim_tile.mvm.output_scale``)."""
    misaligned: bool = False
    """The MVM being lowered merges its row tiles' partial sums misaligned
    (``cim_tile.mvm.misaligned_columns``)."""
    lowering_weight: str = ""
    """The weight of the MVM being lowered."""
    held_biases: dict[str, HeldBias] = field(default_factory=lambda: {})
    """The bias of the MVM being lowered in the local buffers of the cores
    whose vector units add it, by its local allocation's name."""
    array_users: dict[tuple[int, int], list[SSAValue]] = field(
        default_factory=lambda: {}
    )
    """The ops of the current segment that named each array range (computed
    on, programmed, switched, streamed from or to, allocated in it)."""
    array_users_before: dict[tuple[int, int], list[SSAValue]] = field(
        default_factory=lambda: {}
    )
    """The same for the segment before."""
    arrays_used_earlier: set[tuple[int, int]] = field(default_factory=lambda: set())
    """Array ranges named before the segment before: its barrier follows
    every op that named them."""
    barrier_before: SSAValue | None = None
    """The barrier of the segment before."""
    free_array: int = 0
    """First array of the current segment's free run (neither a resident
    weight's nor a memory buffer's)."""
    free_stop: int = 0
    """End of the free run."""
    laid_down: bool = False
    """The current segment places its arrays from the last one down (it
    starts where the segment before staged its weights)."""
    programmed: dict[cim_tile.MVMOp, list[tuple[CopyLayout, SSAValue]]] = field(
        default_factory=lambda: {}
    )
    unprogrammed: dict[cim_tile.MVMOp, list[cim_meta.ArrayRangesAttr]] = field(
        default_factory=lambda: {}
    )
    """The current segment's resident weights (their copies' arrays) that
    come from DRAM, programmed when their MVM is first lowered."""
    finishers: dict[str, list[cim_meta.VectorOp]] = field(default_factory=lambda: {})
    """The vector ops that wrote each tensor's final values, in emission
    order: an MVM output's finishing accumulations, or the steps of a
    one-output vector operator."""
    residual: FusedResidual | None = None
    """The residual the accumulations of the MVM being lowered add."""
    fused_adds: dict[cim_tile.VectorOp, tuple[SSAValue, SSAValue]] = field(
        default_factory=lambda: {}
    )
    """Residual adds done by an MVM's accumulations -> (that MVM's output,
    the skip)."""
    dynamic_busy: list[SSAValue] = field(default_factory=lambda: [])
    """The op after which the free arrays are done with the activation
    matmul run on them last in this segment."""
    streamed_busy: list[SSAValue] = field(default_factory=lambda: [])
    """The op after which the free arrays are done with the weight streamed
    through them last in this segment."""
    computed_last: dict[tuple[str, int], Span] = field(default_factory=lambda: {})
    """The vectors each copy (weight, first array) computed last: the rows
    of the feature map its cores' line buffers still hold."""
    staged_last: dict[tuple[str, int], SSAValue] = field(default_factory=lambda: {})
    """The move (or streaming MVM) that last brought input rows into each
    copy's (weight, first array) line buffers."""
    expected: dict[SSAValue, int] = field(default_factory=lambda: {})
    """When each emitted op is expected to finish (:meth:`expect`)."""
    arrays_busy: dict[int, int] = field(default_factory=lambda: {})
    """When the work expected on each array range (by its attribute's id)
    ends."""
    dram_busy: int = 0
    """When the DRAM traffic expected so far ends."""
    next_vector_core: int = 0
    """Where the next vector op of the graph starts its cores (each takes
    the cores after the last one's, in turn)."""

    def __post_init__(self) -> None:
        self.buffer = SpaceAllocator[SSAValue](
            self.hw.buffers.global_bytes * self.hw.hierarchy.chips
        )

    @property
    def usable_arrays(self) -> int:
        """Arrays the segments may use: all but the KV cache's."""
        return self.hw.total_arrays - self.reserved

    @property
    def all_cores(self) -> cim_meta.CoreRangesAttr:
        return core_ranges(range(self.hw.total_cores))

    def vector_cores(self, count: int) -> cim_meta.CoreRangesAttr:
        """``count`` cores for a vector op of the graph: those after the
        previous one's, wrapping around, so that the ops of a pipelined
        segment spread over every core's vector units."""
        total = self.hw.total_cores
        if count >= total:
            return self.all_cores
        first = self.next_vector_core
        self.next_vector_core = (first + count) % total
        return core_ranges((first + i) % total for i in range(count))

    def emit(self, op: Operation) -> SSAValue:
        if self.node is not None:
            op.attributes[NODE_ATTR] = self.node
        self.block.add_op(op)
        expected, sinks = self.expected, self.sinks
        ready = 0
        gated = self.gated
        behind = False
        for dep in op.operands:
            sinks.pop(dep, None)
            at = expected[dep]
            if at > ready:
                ready = at
            behind = behind or dep in gated
        token = op.results[0]
        if behind:
            gated.add(token)
        sinks[token] = None
        expected[token] = self.expect(op, ready)
        for arrays in arrays_named(op):
            self.array_users.setdefault(arrays, []).append(token)
        return token

    def start_segment_users(self) -> None:
        """Begin a segment's record of the ops that name arrays (before its
        barrier is emitted: ``self.barrier`` is still the segment before's)."""
        self.arrays_used_earlier |= self.array_users_before.keys()
        self.array_users_before, self.array_users = self.array_users, {}
        self.barrier_before = self.barrier

    def arrays_free(
        self, arrays: cim_meta.ArrayRangesAttr, *tokens: SSAValue | None
    ) -> list[SSAValue]:
        """What a program that overwrites ``arrays`` waits for instead of the
        segment's barrier, besides ``tokens`` (which order it after this
        segment's own users of them: the previous chunk, a switch): every op
        of the segment before that named one of them, and that segment's
        barrier when an earlier one did; the segment's barrier only when
        nothing else. The arrays take the next weight as soon as their last
        user is done, while the rest of the segment before still runs."""
        chosen = [t for t in tokens if t is not None]
        wanted = arrays.ranges

        def overlaps(key: tuple[int, int]) -> bool:
            return any(key[0] < stop and first < key[1] for first, stop in wanted)

        for key, ops in self.array_users_before.items():
            if overlaps(key):
                if len(ops) > JOINED_USERS:  # later programs wait for the join
                    ops[:] = [self.join(ops, f"arrays {key[0]}:{key[1]}")]
                chosen += ops
        if self.barrier_before is not None and any(
            overlaps(key) for key in self.arrays_used_earlier
        ):
            chosen.append(self.barrier_before)
        return self.deps(*chosen)

    def expect(self, op: Operation, ready: int) -> int:
        """When ``op``, whose deps are done at ``ready``, is expected to
        finish: after the earlier work on its arrays and the earlier DRAM
        traffic, taking its cycles from the cost model (MVMs, programs and
        DRAM transfers; other ops count as instant). Only the choice of
        reused buffer space reads it
        (:class:`~cimflow.lowering.allocator.SpaceAllocator`), so it leaves
        out what the simulator adds (bandwidth sharing, vector work)."""
        hw = self.hw
        kind = type(op)  # exact types: the meta-ops are leaf classes
        if kind is cim_meta.MVMOp or kind is cim_meta.ProgramOp:
            assert isinstance(op, cim_meta.MVMOp | cim_meta.ProgramOp)
            rows = op.rows.value.data
            if isinstance(op, cim_meta.MVMOp):
                cycles = mvm_cycles(
                    with_mvm_choices(hw, op.chosen_rows_per_pass, op.zero_shares),
                    op.vectors.value.data,
                    rows,
                    op.cols.value.data,
                )
            else:
                cycles = program_cost(hw, 0, rows, 0).cycles
            # equal ranges are one attribute (ArrayRangesAttr.from_ranges)
            arrays = id(op.arrays)
            start = max(ready, self.arrays_busy.get(arrays, 0))
            self.arrays_busy[arrays] = start + cycles
            return start + cycles
        if kind is cim_meta.LoadOp or kind is cim_meta.StoreOp:
            assert isinstance(op, cim_meta.LoadOp | cim_meta.StoreOp)
            src, dst = op.src.data, op.dst.data
            if Location.DRAM in (src, dst):
                start = max(ready, self.dram_busy)
                self.dram_busy = start + link_cycles(
                    hw, "dram", op.size.value.data, reads=src == Location.DRAM
                )
                return self.dram_busy
        return ready

    def deps(self, *tokens: SSAValue | None) -> list[SSAValue]:
        chosen = [t for t in tokens if t is not None]
        if self.barrier is not None and not chosen:
            chosen = [self.barrier]
        return list(dict.fromkeys(chosen))

    def tensor_bytes(self, value: SSAValue) -> int:
        return num_elements(tensor_shape(value)) * self.hw.activation_bytes

    def join(self, tokens: Sequence[SSAValue], name: str) -> SSAValue:
        """A zero-time op after all ``tokens``."""
        return self.emit(
            cim_meta.SegmentOp(self.segment, list(tokens), label=f"join {name}")
        )

    @property
    def pipelined(self) -> bool:
        kind, blocks = self.dataflows.get(self.segment, (Dataflow.LAYER, 1))
        return kind != Dataflow.LAYER and blocks > 1

    def step_plan(self, op: Operation) -> BlockPlan | None:
        if not self.pipelined:
            return None
        kind, _ = self.dataflows[self.segment]
        layouts = [
            self.layouts.get(self.names[v]) if v in self.names else None
            for v in op.operands
        ]
        return blocking.plan(op, layouts, kind, self.batch)

    def steps(self, plan: BlockPlan | None) -> list[Band | None]:
        if plan is None:
            return [None]
        return list(bands(plan.output.rows, self.dataflows[self.segment][1]))

    def first_needs(self, plan: BlockPlan | None, index: int) -> Band | None:
        """What the first band of a pipelined op reads of its ``index``-th
        operand (None: all of it): a pipelined output is allocated once its
        first band can start, not after its whole input."""
        first = self.steps(plan)[0]
        if plan is None or first is None:
            return None
        return plan.needs(index, first)
