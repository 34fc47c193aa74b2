"""The schedule builder of ``convert-tile-to-meta``.

It walks an allocated ``cim_tile`` function in program order and emits the
``cim_meta`` meta-ops that carry the allocation out on the machine of
``docs/machine-model.md``:

- **Segments.** A segment starts with a barrier; its resident weights are
  placed copy after copy from the first array after the KV cache's, its
  memory buffers right after them; arrays switch modes; each copy is
  programmed by streaming its weight over the interconnect from where the
  weight is (the global buffer when it fits there, memory-mode arrays that
  prefetched it, else DRAM).
- **Tensors** live where :mod:`cimflow.lowering.placement` puts them: the
  global buffer (allocated, and freed after the last reader), an
  activations memory buffer, or DRAM; ops stream the other levels through.
- **MVMs.** Each copy takes its share of the vectors. Its cores receive
  only the input rows their arrays hold, as feature-map rows when a window
  expands the input (:mod:`cimflow.lowering.rules`). When the input is in
  the global buffer and a piece of the share fits the cores' local
  buffers, the piece is staged: moved in, computed from the local buffer,
  its outputs moved out; otherwise the MVM streams its input and outputs
  while it computes. Partial sums of row tiles in different cores, and the
  bias, are added on the copy's cores' vector units.
- **Vector work** runs on every core's vector units and streams its
  operands in and its results out; views (reshapes, ``im2col``,
  ``col2im``) cost nothing and occupy nothing.
- Weights larger than the chip stream in chunks through the free arrays
  (with a ``chunks`` buffer: double-buffered in memory-mode arrays); a
  ``weights`` buffer prefetches the next segment's weights; a ``kv_cache``
  buffer keeps a decoder's past keys and values in arrays ``[0, K)`` for the
  whole run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DictionaryAttr,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.irdl import IRDLOperation

from cimflow.analysis import blocking
from cimflow.analysis.blocking import Band, BlockPlan, Layout, bands
from cimflow.analysis.tile_mapping import Chunk, plan_chunks
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import i64_attr, ints, tensor_shape
from cimflow.cimdialect.cim_tile import ArrayMode, Dataflow
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    interconnect_cost,
    local_read_cycles,
    mvm_cycles,
    vector_element_ops,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.allocator import SpaceAllocator
from cimflow.lowering.placement import (
    VIEW_KINDS,
    Location,
    Produced,
    TensorState,
    ViewRecipe,
    spread_bytes,
)
from cimflow.lowering.rules import (
    Span,
    Window,
    array_matmul,
    column_tiles,
    core_k_spans,
    cores_of,
    epilogue_activation,
    epilogue_source,
    expanded_elements,
    gathered_elements,
    input_elements,
    merge_spans,
    new_input_elements,
    span_length,
    split_span,
    sum_bytes,
    vector_work,
)

NAME_ATTR = "cim_graph.name"

MAX_PIECES = 128
"""Most pieces a copy's share of an MVM is staged in (each one more op to
simulate); a share that would need more streams instead."""

_TRUE = BoolAttr.from_bool(True)


def io_names(
    function: func.FuncOp,
    attrs: ArrayAttr[DictionaryAttr] | None,
    count: int,
    prefix: str,
) -> list[str]:
    """ONNX names recorded on a function's arguments or results."""
    names: list[str] = []
    for index in range(count):
        name = f"{prefix}{index}"
        if attrs is not None and index < len(attrs.data):
            recorded = attrs.data[index].data.get(NAME_ATTR)
            if isinstance(recorded, StringAttr):
                name = recorded.data
        names.append(name)
    return names


def array_ids(arrays: cim_meta.ArrayRangesAttr) -> list[int]:
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


def arrays_to_hold(size: int, capacity: int) -> int:
    """Memory-mode arrays of ``capacity`` bytes a tensor of ``size`` bytes
    needs on arrays of its own (at least one)."""
    return max(1, -(-size // max(1, capacity)))


def share_arrays(
    sizes: Sequence[int], arrays: int, capacity: int
) -> list[tuple[int, int]] | None:
    """Consecutive ``[start, stop)`` ranges of arrays ``[0, arrays)``, one per
    tensor of ``sizes`` bytes: each gets the arrays of ``capacity`` bytes it
    needs (at least one), and the arrays left over are shared out in order
    (more arrays read a tensor out faster). None when they need more."""
    needs = [arrays_to_hold(size, capacity) for size in sizes]
    spare = arrays - sum(needs)
    if spare < 0:
        return None
    ranges: list[tuple[int, int]] = []
    start = 0
    for index, need in enumerate(needs):
        count = need + spare // len(needs) + (1 if index < spare % len(needs) else 0)
        ranges.append((start, start + count))
        start += count
    return ranges


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


@dataclass
class _Feed:
    """What one copy's share of vectors moves and computes."""

    in_bytes: int
    """Bytes crossing the interconnect into the cores (bus: broadcast once;
    mesh: per core)."""
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


@dataclass
class ScheduleBuilder:
    """The state of one function's lowering (see the module docstring)."""

    hw: HardwareTarget
    block: Block = field(default_factory=Block)
    decls: list[Operation] = field(default_factory=lambda: [])
    declared_weights: dict[str, tuple[cim_tile.WeightLayout, int, int, int]] = field(
        default_factory=lambda: {}
    )
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
    local: dict[int, SpaceAllocator[SSAValue]] = field(default_factory=lambda: {})
    """Each core's local buffer."""
    segment_loads: dict[str, TensorState] = field(default_factory=lambda: {})
    """Weights and biases the current segment reads, by name."""
    memory_mode: set[int] = field(default_factory=lambda: set())
    """Arrays now in memory mode."""
    prefetched: dict[str, TensorState] = field(default_factory=lambda: {})
    """Weights of the current segment waiting in memory-mode arrays."""
    spill_arrays: tuple[cim_meta.ArrayRangesAttr, int] | None = None
    """The current segment's activations buffer and the bytes still free."""
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
    position: int = 0
    releases: dict[int, list[TensorState]] = field(default_factory=lambda: {})
    """Allocated tensors by the position after which they may be freed."""
    last_use: dict[SSAValue, int] = field(default_factory=lambda: {})
    values_by_name: dict[str, SSAValue] = field(default_factory=lambda: {})
    sinks: dict[SSAValue, None] = field(default_factory=lambda: {})
    segment: int = -1
    barrier: SSAValue | None = None
    free_array: int = 0
    """First array not holding a resident weight of the current segment."""
    programmed: dict[cim_tile.MVMOp, list[tuple[CopyLayout, SSAValue]]] = field(
        default_factory=lambda: {}
    )
    finishers: dict[str, list[cim_meta.VectorOp]] = field(default_factory=lambda: {})
    """The vector ops that wrote each tensor's final values, in emission
    order: an MVM output's finishing accumulations, or the steps of a
    one-output vector operator."""
    streams_chunks: bool = False
    """The current segment streams a weight through its free arrays."""
    dynamic_busy: list[SSAValue] = field(default_factory=lambda: [])
    """The op after which the free arrays are done with the activation
    matmul run on them last in this segment."""
    computed_last: dict[tuple[str, int], Span] = field(default_factory=lambda: {})
    """The vectors each copy (weight, first array) computed last: the rows
    of the feature map its cores' line buffers still hold."""

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

    # -- bookkeeping ------------------------------------------------------

    def emit(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        for dep in op.operands:
            self.sinks.pop(dep, None)
        token = op.results[0]
        self.sinks[token] = None
        return token

    def deps(self, *tokens: SSAValue | None) -> list[SSAValue]:
        chosen = [t for t in tokens if t is not None]
        if self.barrier is not None and not chosen:
            chosen = [self.barrier]
        return list(dict.fromkeys(chosen))

    def tensor_bytes(self, value: SSAValue) -> int:
        return num_elements(tensor_shape(value)) * self.hw.activation_bytes

    def unique_name(self, base: str) -> str:
        # names only ever join used_names, so the first free suffix never
        # lies below the one found last time for the same base
        suffix = self.name_suffixes.get(base, 0)
        name = base if suffix == 0 else f"{base}.{suffix}"
        while name in self.used_names:
            suffix += 1
            name = f"{base}.{suffix}"
        self.name_suffixes[base] = suffix
        self.used_names.add(name)
        return name

    def declare(self, value: SSAValue, preferred: str | None = None) -> str:
        """Name an activation tensor and declare it in the schedule (model
        inputs and outputs keep their ONNX names)."""
        base = preferred or self.output_names.get(value) or value.name_hint or "t"
        name = self.unique_name(base)
        self.names[value] = name
        self.values_by_name[name] = value
        value_type = cast(TensorType[Attribute], value.type)
        self.decls.append(
            cim_meta.TensorDeclOp(name, value_type, self.tensor_bytes(value))
        )
        return name

    def declaration(self, name: str) -> cim_meta.TensorDeclOp:
        for decl in self.decls:
            if isinstance(decl, cim_meta.TensorDeclOp) and decl.tensor.data == name:
                return decl
        raise AssertionError(name)

    def operand_name(self, value: SSAValue) -> str:
        """The name a meta-op uses for an operand: tensor, weight or constant."""
        owner = value.owner
        if isinstance(owner, cim_graph.WeightOp):
            return owner.weight_name.data
        if isinstance(owner, cim_graph.ConstantOp) and value not in self.names:
            name = self.unique_name(value.name_hint or "const")
            self.names[value] = name
            self.decls.append(cim_meta.ConstantDeclOp(name, owner.value))
        return self.names[value]

    # -- where tensors live ------------------------------------------------

    def state(self, name: str) -> TensorState:
        return self.tensors[name]

    def last_reader(self, value: SSAValue) -> int:
        return self.last_use.get(value, self.position)

    def place(
        self, names: Sequence[str], values: Sequence[SSAValue]
    ) -> tuple[list[TensorState], list[cim_meta.AllocAttr], list[SSAValue]]:
        """Where an op's new tensors live (together: the global buffer when
        they all fit, an activations buffer when they all fit there, else
        DRAM), the allocations its first writer makes, and what that writer
        waits for (space released by earlier frees)."""
        sizes = [self.tensor_bytes(v) for v in values]
        states: list[TensorState] = []
        for name, value, nbytes in zip(names, values, sizes, strict=True):
            state = TensorState(name, nbytes, Location.DRAM)
            state.release_at = self.last_reader(value)
            self.tensors[name] = state
            states.append(state)
        if sum(sizes) <= self.buffer.available:
            after: list[SSAValue] = []
            for state in states:
                after += self.buffer.allocate(state.name, state.nbytes).after
                state.level, state.allocated = Location.BUFFER, True
                self.release_after(state)
            allocs = [
                cim_meta.AllocAttr.get(s.name, s.nbytes, Location.BUFFER)
                for s in states
            ]
            return states, allocs, after
        spill = self.spill_arrays
        taken = 0 if spill is None else spread_bytes(sizes, spill[0])
        if spill is not None and spill[1] >= taken:
            arrays, free = spill
            self.spill_arrays = (arrays, free - taken)
            for state in states:
                state.level, state.arrays, state.allocated = (
                    Location.MEMORY,
                    arrays,
                    True,
                )
                self.release_after(state)
            allocs = [
                cim_meta.AllocAttr.get(s.name, s.nbytes, Location.MEMORY, arrays)
                for s in states
            ]
            return states, allocs, [t for t in (self.to_memory or self.barrier,) if t]
        return states, [], []

    def place_view(self, name: str, value: SSAValue, of: TensorState) -> TensorState:
        """A view ``name`` of ``of``: it lives where ``of`` does and keeps
        it alive until its own last reader."""
        state = TensorState(name, 0, Location.DRAM, root=of)
        state.release_at = self.last_reader(value)
        self.tensors[name] = state
        owner = of.owner
        if self.last_reader(value) > owner.release_at:
            owner.release_at = self.last_reader(value)
            if owner.allocated:
                self.release_after(owner)
        return state

    def release_after(self, state: TensorState) -> None:
        self.releases.setdefault(state.release_at, []).append(state)

    def read(self, state: TensorState, token: SSAValue) -> None:
        """``token`` reads ``state``: what holds its bytes is freed after it."""
        state.owner.readers.append(token)

    def release_finished(self) -> None:
        """Free what nothing reads after the op just lowered."""
        for state in self.releases.pop(self.position, []):
            if state.allocated and state.release_at <= self.position:
                self.free(state)

    def free(self, state: TensorState) -> SSAValue:
        tokens = [t for _, t in state.ready if t is not None] + state.readers
        token = self.emit(
            cim_meta.FreeOp(
                [state.place_attr()],
                self.deps(*tokens),
                self.segment,
                label=state.name,
            )
        )
        state.allocated = False
        if state.level == Location.BUFFER:
            self.buffer.release(state.name, token)
        return token

    def stream_level(
        self, states: Sequence[TensorState]
    ) -> tuple[Location, cim_meta.ArrayRangesAttr | None]:
        """Where an op streams operands in ``states`` from: the global
        buffer when all are there; else the one level the others share
        (DRAM wins over memory-mode arrays: its bytes are charged as DRAM's,
        an over-estimate for what is on chip)."""
        places = [s.where() for s in states]
        levels = {level for level, _ in places}
        if levels <= {Location.BUFFER}:
            return Location.BUFFER, None
        if Location.DRAM in levels:
            return Location.DRAM, None
        arrays = [a for level, a in places if level == Location.MEMORY]
        if len({a for a in arrays if a is not None}) == 1:
            return Location.MEMORY, arrays[0]
        return Location.DRAM, None

    # -- pipelined segments -----------------------------------------------

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

    # -- the KV cache -----------------------------------------------------

    def hold_kv_cache(
        self, buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
    ) -> None:
        """Keep the model inputs a ``kv_cache`` buffer holds in its arrays
        ``[0, K)`` for the whole run (each in arrays of its own, in memory
        mode from the start); every segment places its arrays from ``K``."""
        count = buffer.arrays.value.data
        dual_mode = self.hw.dual_mode
        if count > min(dual_mode.switchable_arrays, self.hw.total_arrays):
            raise CimError(
                f"kv_cache memory buffer takes {count} arrays but target "
                f"'{self.hw.name}' can switch {dual_mode.switchable_arrays} to "
                "memory mode"
            )
        values = held_values(buffer, inputs)
        names = [self.names[v] for v in values]
        sizes = [self.tensor_bytes(v) for v in values]
        capacity = min(buffer.size.value.data, count * dual_mode.memory_capacity_bytes)
        if sum(sizes) > capacity:
            overflow = next(
                name
                for index, name in enumerate(names)
                if sum(sizes[: index + 1]) > capacity
            )
            raise CimError(
                f"kv_cache memory buffer cannot hold '{overflow}': its "
                f"{len(names)} tensors take {sum(sizes)} bytes, more than its "
                f"{capacity} (min(bytes {buffer.size.value.data}, {count} arrays x "
                f"{dual_mode.memory_capacity_bytes} B))"
            )
        ranges = share_arrays(sizes, count, dual_mode.memory_capacity_bytes)
        if ranges is None:
            raise CimError(
                f"kv_cache memory buffer has {count} arrays, fewer than its "
                f"{len(names)} tensors need with arrays of their own "
                f"({dual_mode.memory_capacity_bytes} B each)"
            )
        for name, run in zip(names, ranges, strict=True):
            arrays = cim_meta.ArrayRangesAttr.from_ranges([run])
            state = self.tensors[name]
            state.level, state.arrays = Location.MEMORY, arrays
            self.declaration(name).arrays = arrays
        self.reserved = count
        self.memory_mode |= set(range(count))

    # -- segments ---------------------------------------------------------

    def enter_segment(
        self,
        segment: int,
        mvms: Sequence[cim_tile.MVMOp],
        buffers: Sequence[cim_tile.MemoryBufferOp] = (),
        next_mvms: Sequence[cim_tile.MVMOp] = (),
    ) -> None:
        """Start a segment: evict what its mode switches would destroy,
        switch arrays, program resident weights, and schedule the prefetch
        of the next segment's weights into its ``weights`` buffer."""
        if segment == self.segment:
            return
        self.flush_prefetch()
        self.leave_segment()
        self.segment = segment
        self.barrier = self.emit(cim_meta.SegmentOp(segment, list(self.sinks)))
        placed, next_array = self.place_resident(mvms)
        roles = self.place_buffers(buffers, next_array)
        keep = roles.get(cim_tile.BufferRole.ACTIVATIONS)
        freeing = self.evict_spills(keep)
        compute = {a for _, copies in placed for c in copies for a in array_ids(c)}
        self.streams_chunks = any(
            m.alloc is not None and m.alloc.field("chunks") > 1 for m in mvms
        )
        self.dynamic_busy = []
        if self.streams_chunks:
            compute |= set(range(self.free_array, self.hw.total_arrays))
        memory = {a for arrays, _ in roles.values() for a in array_ids(arrays)}
        sources, read_out = self.read_out_prefetched(compute)
        self.to_compute = self.switch(
            compute & self.memory_mode, ArrayMode.COMPUTE, [*freeing, *read_out]
        )
        self.to_memory = self.switch(
            memory - self.memory_mode, ArrayMode.MEMORY, freeing
        )
        if self.to_memory is None and freeing:
            # arrays already in memory mode: what they store next waits
            # for the tensors evicted from them
            self.to_memory = self.join(freeing, "evictions")
        for mvm, copies in placed:
            self.program_copies(mvm, copies, sources.get(mvm.weight.data))
        for state in sources.values():
            if state.allocated:
                self.free(state)
        self.spill_arrays = None
        if keep is not None:
            held = spread_bytes(
                [
                    s.nbytes
                    for s in self.tensors.values()
                    if s.level == Location.MEMORY
                    and s.arrays == keep[0]
                    and s.allocated
                ],
                keep[0],
            )
            self.spill_arrays = (keep[0], max(0, keep[1] - held))
        self.prefetched = {}
        self.chunk_buffer = None
        chunks = roles.get(cim_tile.BufferRole.CHUNKS)
        if chunks is not None:
            first, stop = chunks[0].ranges[0]
            if stop - first < 2:
                raise CimError(
                    f"segment {segment}'s chunks buffer has {stop - first} arrays; "
                    "it needs two halves of at least one array"
                )
            self.chunk_buffer = (first, (stop - first) // 2)
        weights = roles.get(cim_tile.BufferRole.WEIGHTS)
        if weights is not None:
            self.pending_prefetch = (next_mvms, weights, self.to_memory)

    def leave_segment(self) -> None:
        """Free the weights and biases the ending segment loaded."""
        for state in self.segment_loads.values():
            if state.allocated:
                self.free(state)
        self.segment_loads = {}

    def read_out_prefetched(
        self, compute: set[int]
    ) -> tuple[dict[str, TensorState], list[SSAValue]]:
        """Where each prefetched weight is programmed from: the memory-mode
        arrays holding it, unless they compute in this segment; then it is
        read out into the global buffer first (or, when it does not fit
        there, programmed from DRAM again). Returns the sources and the ops
        the switch to compute waits for."""
        sources: dict[str, TensorState] = {}
        waits: list[SSAValue] = []
        for weight, held in self.prefetched.items():
            arrays = held.arrays
            assert arrays is not None
            if not set(array_ids(arrays)) & compute:
                sources[weight] = held
                continue
            staged = self.load_to_buffer(
                weight, held.nbytes, held.tokens(), source=held
            )
            waits.append(self.free(held))
            sources[weight] = staged
        return sources, waits

    def flush_prefetch(self) -> None:
        """Emit the ending segment's prefetch: last, so that the DRAM serves
        it only when the segment's own traffic leaves it idle, and after the
        weight it streams."""
        pending, self.pending_prefetch = self.pending_prefetch, None
        if pending is not None:
            self.prefetch(*pending)
        self.stream_loads = []

    def place_resident(
        self, mvms: Sequence[cim_tile.MVMOp]
    ) -> tuple[list[tuple[cim_tile.MVMOp, list[cim_meta.ArrayRangesAttr]]], int]:
        """Arrays for every copy of the segment's resident weights (from the
        first array after the KV cache's)."""
        placed: list[tuple[cim_tile.MVMOp, list[cim_meta.ArrayRangesAttr]]] = []
        next_array = self.reserved
        for mvm in mvms:
            alloc = mvm.alloc
            assert alloc is not None
            if alloc.field("chunks") > 1:
                continue
            plan = plan_chunks(mvm.tiling, self.usable_arrays)
            if len(plan) > 1:
                raise CimError(
                    f"weight '{mvm.weight.data}' needs {mvm.tiling.arrays_per_copy} "
                    f"arrays per copy, more than the {self.usable_arrays} of target "
                    f"'{self.hw.name}'{self.beside_kv_cache()}, but its allocation "
                    "does not stream it in chunks"
                )
            chunk = plan[0]
            align = 1 if mvm.align is None else mvm.align.value.data
            ranges: list[cim_meta.ArrayRangesAttr] = []
            for _ in range(alloc.field("copies")):
                next_array = -(-next_array // align) * align
                ranges.append(
                    cim_meta.ArrayRangesAttr.from_ranges(
                        [(next_array, next_array + chunk.arrays)]
                    )
                )
                next_array += chunk.arrays
            placed.append((mvm, ranges))
        if next_array > self.hw.total_arrays:
            raise CimError(
                f"segment {self.segment} needs {next_array - self.reserved} arrays"
                f"{self.beside_kv_cache()} but the target '{self.hw.name}' has "
                f"{self.hw.total_arrays}"
            )
        self.free_array = next_array
        return placed, next_array

    def beside_kv_cache(self) -> str:
        if not self.reserved:
            return ""
        return f" besides the {self.reserved} arrays of the KV cache"

    def place_buffers(
        self, buffers: Sequence[cim_tile.MemoryBufferOp], first: int
    ) -> dict[cim_tile.BufferRole, tuple[cim_meta.ArrayRangesAttr, int]]:
        """Arrays (after the compute arrays) and bytes of each memory buffer."""
        roles: dict[cim_tile.BufferRole, tuple[cim_meta.ArrayRangesAttr, int]] = {}
        for buffer in buffers:
            role = buffer.role.data
            count = buffer.arrays.value.data
            if role in roles:
                raise CimError(
                    f"segment {self.segment} declares two {role.value} memory buffers"
                )
            if first + count > self.hw.dual_mode.switchable_arrays or (
                first + count > self.hw.total_arrays
            ):
                raise CimError(
                    f"segment {self.segment} needs arrays up to {first + count} but "
                    f"target '{self.hw.name}' can switch "
                    f"{self.hw.dual_mode.switchable_arrays} to memory mode"
                )
            capacity = min(
                buffer.size.value.data, count * self.hw.dual_mode.memory_capacity_bytes
            )
            roles[role] = (
                cim_meta.ArrayRangesAttr.from_ranges([(first, first + count)]),
                capacity,
            )
            first += count
        self.free_array = max(self.free_array, first)
        return roles

    def evict_spills(
        self, keep: tuple[cim_meta.ArrayRangesAttr, int] | None
    ) -> list[SSAValue]:
        """Move tensors out of memory arrays this segment takes back (one
        nothing reads again is freed)."""
        tokens: list[SSAValue] = []
        for state in list(self.tensors.values()):
            if state.level != Location.MEMORY or not state.allocated:
                continue
            if keep is not None and state.arrays == keep[0]:
                continue
            if state.release_at >= self.position:
                stored = self.emit(
                    cim_meta.StoreOp(
                        state.name,
                        max(1, state.nbytes),
                        Location.MEMORY,
                        Location.DRAM,
                        self.deps(*state.tokens(), self.barrier),
                        self.segment,
                        arrays=state.arrays,
                        label=state.name,
                    )
                )
                self.read(state, stored)
                tokens.append(self.free(state))
                state.level, state.arrays = Location.DRAM, None
                state.ready = [(None, stored)]
                state.readers = []
                self.remake_views(state)
            else:
                tokens.append(self.free(state))
        return tokens

    def remake_views(self, moved: TensorState) -> None:
        """Views of ``moved`` still to be read, made again where it now
        lives (a view is no data: making it costs nothing)."""
        for state in list(self.tensors.values()):
            recipe = state.view
            if (
                recipe is None
                or state.owner is not moved
                or state.release_at < self.position
            ):
                continue
            level, arrays = moved.where()
            sources = [self.tensors[n] for n in recipe.inputs if n in self.tensors]
            token = self.emit(
                cim_meta.VectorOp(
                    recipe.kind,
                    0,
                    list(recipe.inputs),
                    [state.name],
                    self.deps(*(t for s in sources for t in s.tokens())),
                    self.segment,
                    label=recipe.kind,
                    params=recipe.params,
                    cores=self.all_cores,
                    in_from=level,
                    in_arrays=arrays if level == Location.MEMORY else None,
                    out_to=level,
                    out_arrays=arrays if level == Location.MEMORY else None,
                )
            )
            state.ready = [(None, token)]

    def switch(
        self, arrays: set[int], mode: ArrayMode, after: Sequence[SSAValue]
    ) -> SSAValue | None:
        if not arrays:
            return None
        token = self.emit(
            cim_meta.SwitchOp(
                cim_meta.ArrayRangesAttr.from_ranges(runs_of(arrays)),
                mode,
                self.deps(self.barrier, *after),
                self.segment,
            )
        )
        if mode == ArrayMode.MEMORY:
            self.memory_mode |= arrays
        else:
            self.memory_mode -= arrays
        return token

    def prefetch(
        self,
        next_mvms: Sequence[cim_tile.MVMOp],
        buffer: tuple[cim_meta.ArrayRangesAttr, int],
        switched: SSAValue | None,
    ) -> None:
        """Load the next segment's resident weights into memory arrays while
        this segment computes, as many as fit."""
        arrays, free = buffer
        upcoming: dict[str, TensorState] = {}
        for mvm in next_mvms:
            alloc = mvm.alloc
            if alloc is None or alloc.field("chunks") > 1:
                continue
            plan = plan_chunks(mvm.tiling, self.usable_arrays)
            nbytes = self.weight_bytes(plan[0])
            weight = mvm.weight.data
            footprint = spread_bytes([nbytes], arrays)
            if weight in upcoming or footprint > free:
                continue
            free -= footprint
            token = self.emit(
                cim_meta.LoadOp(
                    weight,
                    nbytes,
                    Location.DRAM,
                    Location.MEMORY,
                    self.deps(switched, self.barrier, *self.stream_loads[-1:]),
                    self.segment,
                    arrays=arrays,
                    label=weight,
                    allocs=[
                        cim_meta.AllocAttr.get(weight, nbytes, Location.MEMORY, arrays)
                    ],
                )
            )
            state = TensorState(weight, nbytes, Location.MEMORY, arrays)
            state.ready, state.allocated = [(None, token)], True
            upcoming[weight] = state
        self.prefetched = upcoming

    # -- weights -------------------------------------------------------------

    def weight_bytes(self, chunk: Chunk) -> int:
        return max(1, chunk.weight_elements * self.hw.weight_bytes)

    def declare_weight(self, mvm: cim_tile.MVMOp) -> None:
        weight = mvm.weight.data
        mapping = (
            mvm.layout.data,
            mvm.tiling.field("groups"),
            mvm.tiling.field("k"),
            mvm.tiling.field("n"),
        )
        declared = self.declared_weights.get(weight)
        if declared is None:
            self.declared_weights[weight] = mapping
            self.decls.append(cim_meta.WeightDeclOp(weight, *mapping))
        elif declared != mapping:
            raise CimError(
                f"weight '{weight}' is used as two different matrices "
                f"(layout, groups, k, n) = {declared} and {mapping}"
            )

    def program_copies(
        self,
        mvm: cim_tile.MVMOp,
        copies: Sequence[cim_meta.ArrayRangesAttr],
        source: TensorState | None = None,
    ) -> None:
        """Program every copy of a resident weight, streaming it from
        ``source`` (memory-mode arrays that prefetched it, or the global
        buffer it was read out to), else from the global buffer (one load
        from DRAM for all copies) when it fits there, else part by part
        through it (each part read from DRAM once for all copies)."""
        self.declare_weight(mvm)
        weight = mvm.weight.data
        chunk = plan_chunks(mvm.tiling, self.usable_arrays)[0]
        nbytes = self.weight_bytes(chunk)
        layouts = [
            copy_layout(self.hw, mvm.tiling, chunk, arrays.ranges[0][0])
            for arrays in copies
        ]
        staged = source
        if staged is None and len(copies) > 1:
            staged = self.load_to_buffer(weight, nbytes, [self.barrier])
        programmed: list[tuple[CopyLayout, SSAValue]] = []
        if staged is None or staged.where()[0] == Location.DRAM:
            tokens = self.program_through_buffer(
                weight, mvm.tiling, layouts, self.deps(self.to_compute)
            )
            self.programmed[mvm] = list(zip(layouts, tokens, strict=True))
            return
        for layout in layouts:
            level, arrays = staged.where()
            feed = (
                cim_meta.Feed.BUFFER
                if level == Location.BUFFER
                else cim_meta.Feed.MEMORY
            )
            token = self.program(
                weight,
                layout,
                self.deps(*staged.tokens(), self.to_compute or self.barrier),
                feed,
                arrays if level == Location.MEMORY else None,
            )
            self.read(staged, token)
            programmed.append((layout, token))
        if staged is not source and staged.allocated:
            self.free(staged)
        self.programmed[mvm] = programmed

    def load_to_buffer(
        self,
        name: str,
        nbytes: int,
        after: Sequence[SSAValue | None],
        source: TensorState | None = None,
        from_level: Location = Location.DRAM,
    ) -> TensorState:
        """A weight, bias or tensor loaded into the global buffer, from DRAM
        or from the memory-mode arrays ``source`` holds it in, when it fits
        there; else a state where it is (DRAM for a weight), for its readers
        to stream."""
        state = TensorState(name, nbytes, from_level)
        if nbytes > self.buffer.available or name in self.buffer.live:
            return state
        grant = self.buffer.allocate(name, nbytes)
        token = self.emit(
            cim_meta.LoadOp(
                name,
                nbytes,
                Location.DRAM if source is None else Location.MEMORY,
                Location.BUFFER,
                self.deps(*after, *grant.after),
                self.segment,
                arrays=None if source is None else source.arrays,
                label=name,
                allocs=[cim_meta.AllocAttr.get(name, nbytes, Location.BUFFER)],
            )
        )
        if source is not None:
            self.read(source, token)
        state.level, state.allocated = Location.BUFFER, True
        state.ready = [(None, token)]
        return state

    def program(
        self,
        weight: str,
        layout: CopyLayout,
        deps: Sequence[SSAValue],
        feed: cim_meta.Feed,
        feed_arrays: cim_meta.ArrayRangesAttr | None = None,
    ) -> SSAValue:
        chunk = layout.chunk
        return self.emit(
            cim_meta.ProgramOp(
                weight,
                layout.arrays,
                chunk.rows,
                chunk.cols,
                (chunk.k0, chunk.k1),
                (chunk.n0, chunk.n1),
                deps,
                self.segment,
                label=weight,
                feed=feed,
                in_bytes=self.weight_bytes(chunk),
                feed_arrays=feed_arrays,
            )
        )

    def program_through_buffer(
        self,
        weight: str,
        tiling: cim_tile.TilingAttr,
        layouts: Sequence[CopyLayout],
        after: Sequence[SSAValue],
    ) -> list[SSAValue]:
        """Program copies of a placed chunk from DRAM: part by part (whole
        column tiles, or single arrays), each loaded into the global buffer
        once and streamed from there to every copy's arrays once ``after``
        (what frees the arrays) is done; the loads wait only for room in the
        buffer and the DRAM order, so they run ahead while the arrays still
        compute. A part that does not fit the buffer streams from DRAM to
        each copy. Returns, per copy, the op after which it is programmed."""
        room = self.buffer.available // 2
        tokens: list[list[SSAValue]] = [[] for _ in layouts]
        for offset, part in program_parts(tiling, layouts[0].chunk, room, self.hw):
            pieces = [
                copy_layout(self.hw, tiling, part, layout.arrays.ranges[0][0] + offset)
                for layout in layouts
            ]
            nbytes = self.weight_bytes(part)
            if nbytes > self.buffer.available:
                for done, piece in zip(tokens, pieces, strict=True):
                    done.append(
                        self.program(
                            weight, piece, self.deps(*after), cim_meta.Feed.DRAM
                        )
                    )
                continue
            place = f"{weight}@{pieces[0].arrays.ranges[0][0]}"
            grant = self.buffer.allocate(place, nbytes)
            load = self.emit(
                cim_meta.LoadOp(
                    weight,
                    nbytes,
                    Location.DRAM,
                    Location.BUFFER,
                    self.deps(*grant.after, *self.stream_loads[-1:]),
                    self.segment,
                    label=weight,
                    allocs=[cim_meta.AllocAttr.get(place, nbytes, Location.BUFFER)],
                )
            )
            self.stream_loads.append(load)
            self.passing[place] = place
            programs = [
                self.program(
                    weight, piece, self.deps(load, *after), cim_meta.Feed.BUFFER
                )
                for piece in pieces
            ]
            self.release_passing(place, programs)
            for done, program in zip(tokens, programs, strict=True):
                done.append(program)
        return [
            done[0]
            if len(done) == 1
            else self.emit(
                cim_meta.SegmentOp(self.segment, done, label=f"programmed {weight}")
            )
            for done in tokens
        ]

    def segment_weight(self, name: str, nbytes: int) -> TensorState:
        """A weight or bias the segment's vector work reads, loaded once."""
        state = self.segment_loads.get(name)
        if state is None:
            state = self.load_to_buffer(name, nbytes, [self.barrier])
            self.segment_loads[name] = state
        return state

    # -- MVMs ---------------------------------------------------------------

    def window_of(self, name: str) -> Window | None:
        return self.windows.get(name)

    def feed(
        self,
        layout: CopyLayout,
        span: Span,
        window: Window | None,
        previous: Span | None = None,
    ) -> _Feed:
        """What one copy's vectors ``span`` move and compute (rules), right
        after the same cores computed ``previous``."""
        act = self.hw.activation_bytes
        per_core = {
            core: input_elements(window, span, spans) * act
            for core, spans in layout.k_by_core.items()
        }
        if self.hw.interconnect.topology == "bus":
            union = merge_spans(s for spans in layout.k_by_core.values() for s in spans)
            moved = new_input_elements(window, span, union, previous) * act
        else:
            moved = act * sum(
                new_input_elements(window, span, spans, previous)
                for spans in layout.k_by_core.values()
            )
        expanded = max(
            expanded_elements(span, spans) * act for spans in layout.k_by_core.values()
        )
        vectors = span[1] - span[0]
        out_bytes = sum_bytes(self.hw, layout.columns, vectors, False)
        accumulate = local_adds = 0
        for outputs, tiles, holders in layout.columns:
            accumulate += vectors * outputs * (holders - 1)
            local_adds += vectors * outputs * (tiles - holders)
        core_out = math.ceil(out_bytes / max(1, len(layout.cores)))
        return _Feed(
            max(1, moved),
            max(per_core.values(), default=0),
            expanded,
            out_bytes,
            core_out,
            accumulate,
            local_adds,
        )

    def line_buffer(
        self, mvm: cim_tile.MVMOp, layout: CopyLayout, span: Span
    ) -> Span | None:
        """The vectors ``layout``'s cores computed just before ``span`` (their
        window rows are still in the line buffers), recording ``span``."""
        key = (mvm.weight.data, layout.arrays.ranges[0][0])
        previous = self.computed_last.get(key)
        self.computed_last[key] = span
        if previous is None or previous[1] != span[0]:
            return None
        return previous

    def lower_mvm(self, mvm: cim_tile.MVMOp) -> None:
        alloc = mvm.alloc
        assert alloc is not None
        self.declare_weight(mvm)
        in_name = self.names[mvm.input]
        source = self.state(in_name)
        window = self.window_of(in_name)
        out_name = self.declare(mvm.output)
        (target,), allocs, after = self.place([out_name], [mvm.output])
        plan = self.step_plan(mvm)
        opened = self.open_output(
            target, allocs, [*after, *source.tokens(self.first_needs(plan, 0))]
        )
        vectors = mvm.vectors
        produced: list[Produced] = []
        tensors = (in_name, out_name)
        for index, band in enumerate(self.steps(plan)):
            if plan is None or band is None:
                span, needed = (0, vectors), None
            else:
                span, needed = plan.output.elements(band), plan.needs(0, band)
            block = None if band is None else (0, *span)
            ready = self.deps(*source.tokens(needed), opened)
            if alloc.field("chunks") > 1:
                finished = self.run_chunks(mvm, tensors, source, target, window, ready)
            elif band is None:
                finished = self.run_copies(
                    mvm, tensors, source, target, window, ready, span, None
                )
            else:
                copies = self.programmed[mvm]
                layout, program = copies[index % len(copies)]
                finished = self.run_copy(
                    mvm,
                    layout,
                    program,
                    tensors,
                    source,
                    target,
                    window,
                    ready,
                    span,
                    block,
                )
            produced += [(band, token) for token in finished]
        target.ready = produced
        self.layouts[out_name] = None if plan is None else plan.output

    def open_output(
        self,
        target: TensorState,
        allocs: Sequence[cim_meta.AllocAttr],
        after: Sequence[SSAValue],
    ) -> SSAValue | None:
        """The point where a new tensor's bytes are allocated, which every op
        writing it waits for (None when it lives in DRAM)."""
        if not allocs:
            return None
        return self.emit(
            cim_meta.SegmentOp(
                self.segment,
                self.deps(*after),
                label=f"allocate {target.name}",
                allocs=list(allocs),
            )
        )

    def run_copies(
        self,
        mvm: cim_tile.MVMOp,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        window: Window | None,
        ready: Sequence[SSAValue],
        span: Span,
        block: tuple[int, int, int] | None,
    ) -> list[SSAValue]:
        """All vectors, split between the weight's resident copies; copies in
        the same cores share what is staged there."""
        copies = self.programmed[mvm]
        share = math.ceil((span[1] - span[0]) / len(copies))
        assigned: list[tuple[CopyLayout, SSAValue, Span]] = []
        for index, (layout, program) in enumerate(copies):
            v0 = span[0] + index * share
            v1 = min(span[1], v0 + share)
            if v0 < v1:
                assigned.append((layout, program, (v0, v1)))
        groups: list[list[tuple[CopyLayout, SSAValue, Span]]] = []
        for entry in assigned:
            layout = entry[0]
            if (
                groups
                and groups[-1][0][0].cores == layout.cores
                and not layout.cross_core
            ):
                groups[-1].append(entry)
            else:
                groups.append([entry])
        finished: list[SSAValue] = []
        for group in groups:
            staged = len(group) > 1 and self.run_group(
                mvm, group, tensors, source, target, window, ready, finished
            )
            if staged:
                continue
            for layout, program, part in group:
                finished += self.run_copy(
                    mvm,
                    layout,
                    program,
                    tensors,
                    source,
                    target,
                    window,
                    ready,
                    part,
                    block,
                )
        return finished

    def run_group(
        self,
        mvm: cim_tile.MVMOp,
        group: Sequence[tuple[CopyLayout, SSAValue, Span]],
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        window: Window | None,
        ready: Sequence[SSAValue],
        finished: list[SSAValue],
    ) -> bool:
        """Copies in the same cores staged together: each piece's band moves
        in once and every copy computes its part of the piece from it.
        False (nothing emitted) when the group's share streams instead."""
        layout, program, _ = group[0]
        span = (group[0][2][0], group[-1][2][1])
        pieces = self.pieces(layout, span, window, source, target)
        if pieces is None:
            return False
        bias = self.bias_of(mvm, layout)
        previous = self.line_buffer(mvm, layout, span)
        for piece in split_span(span, pieces):
            parts = split_span(piece, len(group))
            workers = [
                (worker, worker_program, part)
                for (worker, worker_program, _), part in zip(group, parts, strict=False)
            ]
            finished.append(
                self.stage_mvm(
                    mvm,
                    layout,
                    program,
                    tensors,
                    source,
                    target,
                    self.feed(layout, piece, window, previous),
                    ready,
                    piece,
                    (0, *piece),
                    bias,
                    None,
                    workers,
                    window,
                )
            )
            previous = piece
        return True

    def run_copy(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        program: SSAValue,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        window: Window | None,
        ready: Sequence[SSAValue],
        span: Span,
        block: tuple[int, int, int] | None,
    ) -> list[SSAValue]:
        """One copy's share: staged piece by piece through its cores' local
        buffers (and the global buffer, for input or outputs that live
        elsewhere) when a piece fits, else streamed as it computes; then the
        partial sums of other cores and the bias added."""
        bias = self.bias_of(mvm, layout)
        sharing = sum(
            1
            for other, _ in self.programmed.get(mvm, [])
            if set(other.cores) & set(layout.cores)
        )
        banded = any(band is not None for band, _ in source.owner.ready)
        before = self.line_buffer(mvm, layout, span)
        pieces = self.pieces(
            layout,
            span,
            window,
            source,
            target,
            sharing,
            block is not None and banded,
            before,
        )
        if pieces is None:
            feed = self.feed(layout, span, window, before)
            if not layout.cross_core:
                in_core = feed.local_adds + self.bias_adds(bias, layout, span)
                token = self.stream_mvm(
                    mvm,
                    layout,
                    program,
                    tensors,
                    source,
                    target,
                    feed,
                    ready,
                    span,
                    0 if in_core else None,
                )
                if not in_core:
                    return [token]
                return [
                    self.add_in_cores(
                        tensors[1],
                        bias,
                        in_core,
                        layout,
                        token,
                        span,
                        (0, *span),
                        target,
                    )
                ]
            return self.stream_partials(
                mvm, layout, program, tensors, source, target, window, ready, span
            )
        parts = split_span(span, pieces)
        return [
            self.stage_mvm(
                mvm,
                layout,
                program,
                tensors,
                source,
                target,
                self.feed(layout, piece, window, previous),
                ready,
                piece,
                (0, *piece),
                bias,
                block,
            )
            for previous, piece in zip([before, *parts], parts, strict=False)
        ]

    def stream_partials(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        program: SSAValue,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        window: Window | None,
        ready: Sequence[SSAValue],
        span: Span,
    ) -> list[SSAValue]:
        """A copy whose cores each hold some row tiles, streamed: its partial
        sums meet in a passing allocation of the global buffer, so the
        vectors go in parts whose partial sums fit half of what is free, each
        added (with the bias) on the copy's cores as soon as it is out; when
        not even one vector's fit, they wait in DRAM."""
        bias = self.bias_of(mvm, layout)
        room = self.buffer.available // 2
        whole = self.feed(layout, span, window).out_bytes
        vectors = span[1] - span[0]
        count = 1
        if whole > room and math.ceil(whole / vectors) <= room:
            count = min(vectors, math.ceil(whole / max(1, room)))
        done: list[SSAValue] = []
        previous: Span | None = self.line_buffer(mvm, layout, span)
        for part in split_span(span, count):
            feed = self.feed(layout, part, window, previous)
            previous = part
            place = f"{tensors[1]}[{part[0]}:{part[1]}]@partials"
            home, passing = self.partials_home(place, feed.out_bytes, target)
            token = self.stream_mvm(
                mvm,
                layout,
                program,
                tensors,
                source,
                home,
                feed,
                ready,
                part,
                None,
                passing,
            )
            token = self.add_partials(
                layout,
                tensors[1],
                target,
                feed,
                bias,
                token,
                part,
                (0, *part),
                partials_at=home,
            )
            if passing is not None:
                self.release_passing(place, [token])
            done.append(token)
        return done

    def pieces(
        self,
        layout: CopyLayout,
        span: Span,
        window: Window | None,
        source: TensorState,
        target: TensorState,
        sharing: int = 1,
        pipelined: bool = False,
        before: Span | None = None,
    ) -> int | None:
        """How a copy's share is fed. None: streamed as it computes, when the
        interconnect is its bottleneck anyway (holding the path costs
        nothing then) or when staging would need more than
        :data:`MAX_PIECES` pieces. Else the fewest near-equal pieces whose
        input and outputs fit this copy's part of half of every core's local
        buffer (``sharing`` copies of the weight share a core; half, so the
        next piece moves in while one computes), and whose input and outputs
        passing through the global buffer (when they live elsewhere) fit
        half of what it has free."""
        whole = self.feed(layout, span, window, before)
        cores = tuple((c, c + 1) for c in layout.cores)
        transfer = interconnect_cost(
            self.hw, whole.in_bytes + whole.out_bytes, cores
        ).cycles
        chunk = layout.chunk
        compute = max(
            mvm_cycles(self.hw, span[1] - span[0], chunk.rows, chunk.cols),
            local_read_cycles(self.hw, whole.expanded),
        )
        if transfer >= compute:
            return None
        room = self.hw.buffers.local_bytes // (2 * max(1, sharing))
        passing = self.buffer.available // 2
        through_in = source.where()[0] != Location.BUFFER
        if through_in and pipelined:
            return None  # a step reads rows made in steps; loads move whole tensors
        through_out = target.level != Location.BUFFER
        count = 1
        while count <= MAX_PIECES:
            parts = split_span(span, count)
            if len(parts) < count:
                return None
            feeds = [
                self.feed(layout, part, window, previous)
                for previous, part in zip([before, *parts], parts, strict=False)
            ]
            worst = max(f.core_in + f.core_out for f in feeds)
            passes = max(
                through_in * f.in_bytes + through_out * f.out_bytes for f in feeds
            )
            if worst <= room and passes <= passing:
                return count
            count = max(count + 1, math.ceil(count * max(worst / room, 1.0)))
        return None

    def bias_of(self, mvm: cim_tile.MVMOp, layout: CopyLayout) -> TensorState | None:
        if mvm.bias is None:
            return None
        elements = layout.chunk.n1 - layout.chunk.n0
        return self.segment_weight(
            mvm.bias.data,
            max(
                1,
                mvm.tiling.field("groups")
                * mvm.tiling.field("n")
                * self.hw.weight_bytes,
            )
            if elements <= 0
            else max(1, elements * self.hw.weight_bytes),
        )

    def mvm_op(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        span: Span,
        tensors: tuple[str, str],
        deps: Sequence[SSAValue],
        **streams: object,
    ) -> cim_meta.MVMOp:
        chunk = layout.chunk
        return cim_meta.MVMOp(
            mvm.weight.data,
            layout.arrays,
            span[1] - span[0],
            chunk.rows,
            chunk.cols,
            (chunk.k0, chunk.k1),
            (chunk.n0, chunk.n1),
            span,
            tensors[0],
            tensors[1],
            deps,
            self.segment,
            label=mvm.weight.data,
            **streams,  # pyright: ignore[reportArgumentType]
        )

    def stream_mvm(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        program: SSAValue,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        feed: _Feed,
        ready: Sequence[SSAValue],
        span: Span,
        out_bytes: int | None = None,
        passing: tuple[cim_meta.AllocAttr, list[SSAValue]] | None = None,
    ) -> SSAValue:
        """The MVM streaming its input from where ``source`` lives and its
        outputs (``out_bytes``, default what ``feed`` says; 0: they stay in
        the cores for the vector units to finish) to where ``target``
        lives (into the ``passing`` allocation of the global buffer)."""
        level, arrays = source.where()
        streamed = feed.out_bytes if out_bytes is None else out_bytes
        feed_kind = {
            Location.BUFFER: cim_meta.Feed.BUFFER,
            Location.DRAM: cim_meta.Feed.DRAM,
            Location.MEMORY: cim_meta.Feed.MEMORY,
        }[level]
        token = self.emit(
            self.mvm_op(
                mvm,
                layout,
                span,
                tensors,
                [*ready, program, *(passing[1] if passing else [])],
                feed=feed_kind,
                in_bytes=feed.in_bytes,
                local_bytes=feed.expanded,
                feed_arrays=arrays if level == Location.MEMORY else None,
                **(
                    {
                        "out_bytes": streamed,
                        "out_to": target.level,
                        "out_arrays": target.arrays,
                    }
                    if streamed
                    else {}
                ),
                allocs=[passing[0]] if passing else (),
            )
        )
        self.read(source, token)
        return token

    def stage_mvm(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        program: SSAValue,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        feed: _Feed,
        ready: Sequence[SSAValue],
        span: Span,
        block: tuple[int, int, int] | None,
        bias: TensorState | None,
        in_block: tuple[int, int, int] | None = None,
        workers: Sequence[tuple[CopyLayout, SSAValue, Span]] | None = None,
        window: Window | None = None,
    ) -> SSAValue:
        """One piece staged through the local buffers (``block``: its output
        rows; ``in_block``: the pipeline step's, for the input; ``workers``:
        copies in the same cores sharing the piece, each computing its part
        of it from the one staged band): its input moved in
        (first loaded into the global buffer when it lives in DRAM or
        memory-mode arrays), computed, partial sums and bias added, the
        outputs moved out (and on to DRAM or memory-mode arrays when the
        output lives there)."""
        in_name, out_name = tensors
        staged = f"{in_name}[{span[0]}:{span[1]}]"
        per_core = feed.core_in + feed.core_out
        after: list[SSAValue] = []
        for core in layout.cores:
            space = self.local.setdefault(
                core, SpaceAllocator[SSAValue](self.hw.buffers.local_bytes)
            )
            after += space.allocate(staged, per_core).after
        cores = core_ranges(layout.cores)
        passing_in = self.pass_through(
            in_name, source, feed.in_bytes, ready, f"{staged}@in"
        )
        moved = self.emit(
            cim_meta.MoveOp(
                in_name,
                feed.in_bytes,
                self.deps(*ready, *after, *passing_in[:1]),
                self.segment,
                label=mvm.weight.data,
                block=in_block,
                direction=cim_meta.MoveDirection.IN,
                cores=cores,
                allocs=[
                    cim_meta.AllocAttr.get(
                        staged, per_core * len(layout.cores), Location.LOCAL, cores
                    )
                ],
            )
        )
        self.read(source, moved)
        if passing_in:
            self.release_passing(f"{staged}@in", [moved])
        done: list[SSAValue] = []
        computed_all: list[SSAValue] = []
        through = target.level != Location.BUFFER
        # without partial sums of other cores, the cores write their outputs
        # on to DRAM or memory-mode arrays themselves
        writes_out = through and not layout.cross_core
        for worker, worker_program, part in workers or [(layout, program, span)]:
            part_feed = feed if workers is None else self.feed(worker, part, window)
            in_core = part_feed.local_adds + self.bias_adds(bias, worker, part)
            written = self.outputs_bytes(worker, part) if writes_out else 0
            streams: dict[str, object] = {}
            if written and not in_core:
                streams = {
                    "out_bytes": written,
                    "out_to": target.level,
                    "out_arrays": target.arrays,
                }
            computed = self.emit(
                self.mvm_op(
                    mvm,
                    worker,
                    part,
                    tensors,
                    [moved, worker_program],
                    local_bytes=part_feed.expanded,
                    **streams,
                )
            )
            computed_all.append(computed)
            if in_core and not worker.cross_core:
                # added in the cores, before the outputs leave
                computed = self.vector_accumulate(
                    out_name,
                    bias,
                    in_core,
                    cores,
                    [computed],
                    (0, *part),
                    0,
                    written,
                    target,
                )
            done.append(computed)
        out_bytes = feed.out_bytes
        last = done[0] if len(done) == 1 else self.join(done, out_name)
        computed = computed_all[-1]
        if not layout.cross_core:
            if not writes_out:
                last = self.move_out(mvm, out_name, out_bytes, last, block, cores)
            local_done = last
        elif not through:
            last = local_done = self.move_out(
                mvm, out_name, out_bytes, last, block, cores
            )
            last = self.add_partials(
                layout, out_name, target, feed, bias, last, span, block
            )
        else:  # partial sums meet in a passing allocation of the buffer
            out_place = f"{staged}@out"
            last = local_done = self.move_out(
                mvm,
                out_name,
                out_bytes,
                last,
                block,
                cores,
                self.passing_alloc(out_place, out_bytes),
            )
            last = self.add_partials(
                layout,
                out_name,
                target,
                feed,
                bias,
                last,
                span,
                block,
                partials_at=_in_buffer(target),
            )
            self.release_passing(out_place, [last])
        freed = self.emit(
            cim_meta.FreeOp(
                [cim_meta.PlaceAttr.get(staged, Location.LOCAL, cores)],
                [local_done, *computed_all],
                self.segment,
                label=staged,
            )
        )
        for core in layout.cores:
            self.local[core].release(staged, freed)
        return last

    def join(self, tokens: Sequence[SSAValue], name: str) -> SSAValue:
        """A zero-time op after all ``tokens``."""
        return self.emit(
            cim_meta.SegmentOp(self.segment, list(tokens), label=f"join {name}")
        )

    def pass_through(
        self,
        name: str,
        source: TensorState,
        nbytes: int,
        ready: Sequence[SSAValue],
        place: str,
    ) -> list[SSAValue]:
        """When ``source`` is not in the global buffer: load ``nbytes`` of it
        there (the passing allocation ``place``, released once moved on).
        Returns the load (empty when nothing passes)."""
        level, arrays = source.where()
        if level == Location.BUFFER:
            return []
        grant = self.buffer.allocate(place, nbytes)
        load = self.emit(
            cim_meta.LoadOp(
                name,
                nbytes,
                level,
                Location.BUFFER,
                self.deps(*ready, *grant.after),
                self.segment,
                arrays=arrays,
                label=name,
                allocs=[cim_meta.AllocAttr.get(place, nbytes, Location.BUFFER)],
            )
        )
        self.read(source, load)
        self.passing[place] = place
        return [load]

    def passing_alloc(
        self, place: str, nbytes: int
    ) -> tuple[cim_meta.AllocAttr, list[SSAValue]]:
        grant = self.buffer.allocate(place, nbytes)
        self.passing[place] = place
        return cim_meta.AllocAttr.get(place, nbytes, Location.BUFFER), grant.after

    def release_passing(self, place: str, after: Sequence[SSAValue]) -> None:
        del self.passing[place]
        token = self.emit(
            cim_meta.FreeOp(
                [cim_meta.PlaceAttr.get(place, Location.BUFFER)],
                list(after),
                self.segment,
                label=place,
            )
        )
        self.buffer.release(place, token)

    def partials_home(
        self, place: str, nbytes: int, target: TensorState, room_for: int = 0
    ) -> tuple[TensorState, tuple[cim_meta.AllocAttr, list[SSAValue]] | None]:
        """Where partial sums (or a running sum) of ``target`` wait for the
        vector units: a passing allocation of the global buffer when they
        (and ``room_for`` bytes more) fit half of what is free there, else
        DRAM."""
        if nbytes + room_for <= self.buffer.available // 2:
            return _in_buffer(target), self.passing_alloc(place, nbytes)
        return TensorState(target.name, target.nbytes, Location.DRAM), None

    def move_out(
        self,
        mvm: cim_tile.MVMOp,
        out_name: str,
        nbytes: int,
        after: SSAValue,
        block: tuple[int, int, int] | None,
        cores: cim_meta.CoreRangesAttr,
        passing: tuple[cim_meta.AllocAttr, list[SSAValue]] | None = None,
    ) -> SSAValue:
        """Outputs from the cores to the global buffer (into a passing
        allocation when they continue to DRAM or memory-mode arrays)."""
        return self.emit(
            cim_meta.MoveOp(
                out_name,
                nbytes,
                self.deps(after, *(passing[1] if passing else [])),
                self.segment,
                label=mvm.weight.data,
                block=block,
                direction=cim_meta.MoveDirection.OUT,
                cores=cores,
                allocs=[passing[0]] if passing else [],
            )
        )

    def outputs_bytes(self, layout: CopyLayout, span: Span) -> int:
        return max(
            1,
            (span[1] - span[0])
            * (layout.chunk.n1 - layout.chunk.n0)
            * self.hw.activation_bytes,
        )

    def add_partials(
        self,
        layout: CopyLayout,
        out_name: str,
        target: TensorState,
        feed: _Feed,
        bias: TensorState | None,
        computed: SSAValue,
        span: Span,
        block: tuple[int, int, int] | None,
        partials_at: TensorState | None = None,
    ) -> SSAValue:
        """After partial sums left the cores (to where ``target`` lives, or
        to ``partials_at``): add those of row tiles in different cores, and
        the bias, on the copy's cores, streaming the partial sums in and the
        outputs out."""
        extra = feed.accumulate + feed.local_adds + self.bias_adds(bias, layout, span)
        if not extra:
            return computed
        return self.vector_accumulate(
            out_name,
            bias,
            extra,
            core_ranges(layout.cores),
            [computed],
            block,
            feed.out_bytes,
            self.outputs_bytes(layout, span),
            target,
            partials_at,
        )

    def bias_adds(
        self, bias: TensorState | None, layout: CopyLayout, span: Span
    ) -> int:
        if bias is None:
            return 0
        return (span[1] - span[0]) * (layout.chunk.n1 - layout.chunk.n0)

    def vector_accumulate(
        self,
        out_name: str,
        bias: TensorState | None,
        element_ops: int,
        cores: cim_meta.CoreRangesAttr,
        deps: Sequence[SSAValue],
        block: tuple[int, int, int] | None,
        partial_bytes: int,
        out_bytes: int,
        target: TensorState,
        partials_at: TensorState | None = None,
        running: bool = False,
        allocs: Sequence[cim_meta.AllocAttr] = (),
    ) -> SSAValue:
        """Add partial sums (``partial_bytes`` of them streamed in from where
        the output lives, or ``partials_at``; 0: they are in the cores) and
        the bias on the vector units of ``cores``, streaming ``out_bytes`` of
        results out (``running``: into a sum more partial sums join later)."""
        inputs = [out_name]
        tokens = list(deps)
        states: list[TensorState] = [partials_at or target] if partial_bytes else []
        in_bytes = partial_bytes
        if bias is not None:
            inputs.append(bias.name)
            tokens += bias.tokens()
            states.append(bias)
            in_bytes += bias.nbytes
        in_level, in_arrays = (
            self.stream_level(states) if states else (Location.BUFFER, None)
        )
        out_level, out_arrays = (
            (target.level, target.arrays) if out_bytes else (Location.BUFFER, None)
        )
        accumulate = cim_meta.VectorOp(
            "accumulate",
            element_ops,
            inputs,
            [out_name],
            self.deps(*tokens),
            self.segment,
            label=out_name,
            params={"running": _TRUE} if running else None,
            block=block,
            cores=cores,
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            in_from=in_level,
            in_arrays=in_arrays,
            out_to=out_level,
            out_arrays=out_arrays,
            allocs=allocs,
        )
        token = self.emit(accumulate)
        if not running:
            self.finishers.setdefault(out_name, []).append(accumulate)
        if bias is not None:
            self.read(bias, token)
        return token

    # -- weights streamed in chunks -----------------------------------------

    def run_chunks(
        self,
        mvm: cim_tile.MVMOp,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        window: Window | None,
        ready: Sequence[SSAValue],
    ) -> list[SSAValue]:
        """A weight streamed through the free arrays, one chunk after
        another: program (from its half of the ``chunks`` buffer, the global
        buffer or DRAM), then compute every vector, streaming input and
        partial outputs."""
        alloc = mvm.alloc
        assert alloc is not None
        weight = mvm.weight.data
        available = self.hw.total_arrays - self.free_array
        if available < 1:
            raise CimError(
                f"weight '{weight}' streams through the free arrays of segment "
                f"{self.segment}, but its arrays and buffers"
                f"{self.beside_kv_cache()} leave none of the {self.hw.total_arrays}"
            )
        chunks = plan_chunks(mvm.tiling, available)
        if len(chunks) != alloc.field("chunks"):
            raise CimError(
                f"weight '{weight}' takes {len(chunks)} chunks on the "
                f"{available} free arrays of segment {self.segment}, but its "
                f"allocation says {alloc.field('chunks')}"
            )
        prefetched: dict[int, tuple[cim_meta.ArrayRangesAttr, SSAValue]] = {}
        programs: dict[int, SSAValue] = {}

        def program_chunk(
            index: int, layout: CopyLayout, previous: SSAValue | None
        ) -> SSAValue:
            if index in prefetched:
                half, token = prefetched[index]
                program = self.program(
                    weight,
                    layout,
                    self.deps(token, previous, self.to_compute),
                    cim_meta.Feed.MEMORY,
                    half,
                )
                program = self.emit(
                    cim_meta.FreeOp(
                        [cim_meta.PlaceAttr.get(weight, Location.MEMORY, half)],
                        [program],
                        self.segment,
                        label=weight,
                    )
                )
            else:
                (program,) = self.program_through_buffer(
                    weight, mvm.tiling, [layout], self.deps(previous, self.to_compute)
                )
            programs[index] = program
            if index + 1 < len(chunks):  # after this chunk's program: DRAM order
                self.prefetch_chunk(weight, chunks, index + 1, prefetched, programs)
            return program

        return self.compute_chunks(
            mvm, chunks, program_chunk, tensors, (source, target), window, ready
        )

    def compute_chunks(
        self,
        mvm: cim_tile.MVMOp,
        chunks: Sequence[Chunk],
        program_chunk: Callable[[int, CopyLayout, SSAValue | None], SSAValue],
        tensors: tuple[str, str],
        places: tuple[TensorState, TensorState],
        window: Window | None,
        ready: Sequence[SSAValue],
    ) -> list[SSAValue]:
        """Chunks of ``mvm``'s weight one after another on the free arrays:
        ``program_chunk`` writes a chunk once the one before is done, then
        every vector streams through it; partial sums of chunks over the
        same columns add up on the chunk's cores. Returns the ops that
        finish the outputs."""
        source, target = places
        previous: SSAValue | None = None
        finished: list[SSAValue] = []
        span = (0, mvm.vectors)
        first_of = {c.n0: i for i, c in reversed(list(enumerate(chunks)))}
        last_of = {c.n0: i for i, c in enumerate(chunks)}
        for index, chunk in enumerate(chunks):
            layout = copy_layout(self.hw, mvm.tiling, chunk, self.free_array)
            program = program_chunk(index, layout, previous)
            feed = self.feed(layout, span, window)
            columns = (chunk.n0, chunk.n1)
            first, last = first_of[chunk.n0] == index, last_of[chunk.n0] == index
            bias = self.bias_of(mvm, layout) if last else None
            outputs = (span[1] - span[0]) * (chunk.n1 - chunk.n0)
            adds = outputs * (max(1, chunk.row_tiles) - 1) + outputs * (not first)
            adds += self.bias_adds(bias, layout, span)
            if first and last and not adds:  # whole columns, no bias: final
                previous = self.stream_mvm(
                    mvm, layout, program, tensors, source, target, feed, ready, span
                )
                finished.append(previous)
                continue
            if first and last and not layout.cross_core:
                previous = self.stream_mvm(
                    mvm, layout, program, tensors, source, target, feed, ready, span, 0
                )
                previous = self.add_in_cores(
                    tensors[1],
                    bias,
                    adds,
                    layout,
                    previous,
                    span,
                    (1, *columns),
                    target,
                )
                finished.append(previous)
                continue
            partials = sum_bytes(
                self.hw, layout.columns, span[1] - span[0], not (first and last)
            )
            place = f"{tensors[1]}@chunk{index}"
            group = self.running_sums.get(f"{tensors[1]}@sum{chunk.n0}")
            if group is not None and group.level == Location.DRAM:
                home, passing = group, None
            else:  # the first chunk over these columns leaves room for their sum
                wide = outputs * self.hw.accumulator_bytes
                home, passing = self.partials_home(
                    place, partials, target, wide if first and not last else 0
                )
            previous = self.stream_mvm(
                mvm,
                layout,
                program,
                tensors,
                source,
                home,
                feed,
                ready,
                span,
                partials,
                passing,
            )
            previous = self.add_chunk(
                tensors[1],
                (target, home),
                layout,
                bias,
                adds,
                previous,
                partials,
                (columns, first, last),
                outputs,
            )
            if passing is not None:
                self.release_passing(place, [previous])
            if last:
                finished.append(previous)
        return finished

    def add_in_cores(
        self,
        out_name: str,
        bias: TensorState | None,
        adds: int,
        layout: CopyLayout,
        computed: SSAValue,
        span: Span,
        block: tuple[int, int, int] | None,
        target: TensorState,
    ) -> SSAValue:
        """Row tiles' partial sums that meet in one core, and the bias, added
        on its vector units before the finished outputs leave for where
        ``target`` lives."""
        return self.vector_accumulate(
            out_name,
            bias,
            adds,
            core_ranges(layout.cores),
            [computed],
            block,
            0,
            self.outputs_bytes(layout, span),
            target,
        )

    def add_chunk(
        self,
        out_name: str,
        places: tuple[TensorState, TensorState],
        layout: CopyLayout,
        bias: TensorState | None,
        adds: int,
        computed: SSAValue,
        partials: int,
        position: tuple[Span, bool, bool],
        outputs: int,
    ) -> SSAValue:
        """A chunk's partial sums (where ``places`` says: the output's home,
        then theirs) added on its cores' vector units: to each other, to
        the sum of the chunks before it over the same columns (kept at the
        accumulator width, in the global buffer when it fits, until the last
        of them), and the bias, with the last chunk writing the finished
        outputs."""
        target, partials_at = places
        columns, first, last = position
        running = f"{out_name}@sum{columns[0]}"
        wide = outputs * self.hw.accumulator_bytes
        allocs: list[cim_meta.AllocAttr] = []
        held: list[SSAValue] = []
        if first and not last:  # the sum waits where the partials do
            sum_at = partials_at
            if partials_at.level == Location.BUFFER:
                alloc, held = self.passing_alloc(running, wide)
                allocs.append(alloc)
            self.running_sums[running] = sum_at
        sum_at = self.running_sums.get(running, partials_at)
        if sum_at.level != partials_at.level:
            raise CimError(
                f"the partial sums of '{out_name}' columns {columns[0]}:"
                f"{columns[1]} no longer fit the global buffer beside their "
                "running sum"
            )
        token = self.vector_accumulate(
            out_name,
            bias,
            adds,
            core_ranges(layout.cores),
            [computed, *held],
            (1, *columns),
            partials + (0 if first else wide),
            outputs * self.hw.activation_bytes if last else wide,
            target if last else sum_at,
            partials_at,
            running=not last,
            allocs=allocs,
        )
        if last and not first:
            home = self.running_sums.pop(running)
            if home.level == Location.BUFFER:
                self.release_passing(running, [token])
        return token

    def prefetch_chunk(
        self,
        weight: str,
        chunks: Sequence[Chunk],
        index: int,
        prefetched: dict[int, tuple[cim_meta.ArrayRangesAttr, SSAValue]],
        programs: Mapping[int, SSAValue],
    ) -> None:
        """Load chunk ``index`` of a streamed weight from DRAM into a half of
        the segment's ``chunks`` buffer (halves alternate; a half is reused
        once the chunk before in it was programmed and freed), if it fits a
        half. ``programs`` holds, per chunk, the op after which it is on
        its arrays (its free, for a chunk that came through a half)."""
        if self.chunk_buffer is None:
            return
        first, half = self.chunk_buffer
        chunk = chunks[index]
        if self.weight_bytes(chunk) > half * self.hw.dual_mode.memory_capacity_bytes:
            return
        start = first + (index % 2) * half
        arrays = cim_meta.ArrayRangesAttr.from_ranges([(start, start + half)])
        load = self.emit(
            cim_meta.LoadOp(
                weight,
                self.weight_bytes(chunk),
                Location.DRAM,
                Location.MEMORY,
                self.deps(self.barrier, self.to_memory, programs.get(index - 2)),
                self.segment,
                arrays=arrays,
                label=weight,
                allocs=[
                    cim_meta.AllocAttr.get(
                        weight, self.weight_bytes(chunk), Location.MEMORY, arrays
                    )
                ],
            )
        )
        self.stream_loads.append(load)
        prefetched[index] = (arrays, load)

    # -- vector work ----------------------------------------------------------

    def lower_vector_like(
        self,
        op: Operation,
        kind: str,
        element_ops: int,
        params: dict[str, Attribute],
        inputs: Sequence[SSAValue],
        outputs: Sequence[SSAValue],
        gathered: int | None = None,
        addressed: bool = False,
    ) -> None:
        """One vector-unit operator, whole or in the bands of a pipeline, on
        every core's vector units, streaming its operands in and its
        results out (a view costs and occupies nothing; ``addressed``: the
        operator is a view too, because the address generators of the op
        that reads or writes it do its work)."""
        plan = self.step_plan(op)
        input_names = [self.operand_name(v) for v in inputs]
        names = [self.declare(r) for r in outputs]
        viewed = self.tensors.get(input_names[0]) if inputs else None
        view = (
            (kind in VIEW_KINDS or addressed)
            and len(outputs) == 1
            and viewed is not None
        )
        if view:
            assert viewed is not None
            targets = [self.place_view(names[0], outputs[0], viewed)]
            targets[0].view = ViewRecipe(kind, dict(params), tuple(input_names))
            opened = None
            if isinstance(op, cim_tile.Im2ColOp):
                self.windows[names[0]] = window_of(op)
        else:
            targets, allocs, after = self.place(names, list(outputs))
            opened = self.open_output(
                targets[0],
                allocs,
                [
                    *after,
                    *(
                        t
                        for index, v in enumerate(inputs)
                        if v in self.names and self.names[v] in self.tensors
                        for t in self.state(self.names[v]).tokens(
                            self.first_needs(plan, index)
                        )
                    ),
                ],
            )
        sources: list[tuple[TensorState | None, int]] = [
            self.operand_source(value, index, gathered)
            for index, value in enumerate(inputs)
        ]
        sources, copies = self.common_level(sources)
        rows = 1 if plan is None else plan.output.rows
        produced: list[Produced] = []
        emitted: list[cim_meta.VectorOp] = []
        steps = self.steps(plan)
        if view and viewed is not None and all(b is None for b, _ in viewed.ready):
            steps = [None]  # a view of a whole tensor is whole at once
        for band in steps:
            tokens: list[SSAValue] = [t for t in (opened,) if t is not None]
            in_states: list[TensorState] = []
            in_bytes = 0
            fraction = (
                1.0 if plan is None or band is None else (band[1] - band[0]) / rows
            )
            for index, (state, nbytes) in enumerate(sources):
                if state is None:
                    continue
                needed = (
                    None if plan is None or band is None else plan.needs(index, band)
                )
                tokens += state.tokens(needed)
                in_states.append(state)
                in_bytes += math.ceil(nbytes * fraction)
            block = None
            work = element_ops
            if plan is not None and band is not None:
                block = (plan.output.axis, *plan.output.elements(band))
                work = math.ceil(element_ops * fraction)
            out_bytes = math.ceil(sum(t.nbytes for t in targets) * fraction)
            if view:
                in_bytes = out_bytes = work = 0
            in_level, in_arrays = (
                self.stream_level(in_states) if in_states else (Location.BUFFER, None)
            )
            out_level, out_arrays = targets[0].where()
            vector = cim_meta.VectorOp(
                kind,
                work,
                input_names,
                names,
                self.deps(*tokens),
                self.segment,
                label=kind,
                params=params,
                block=block,
                cores=self.all_cores,
                in_bytes=in_bytes,
                out_bytes=out_bytes,
                in_from=in_level,
                in_arrays=in_arrays if in_level == Location.MEMORY else None,
                out_to=out_level,
                out_arrays=out_arrays if out_level == Location.MEMORY else None,
            )
            token = self.emit(vector)
            emitted.append(vector)
            for state in in_states:
                self.read(state, token)
            produced.append((band, token))
        if not view and len(names) == 1:
            self.finishers[names[0]] = emitted
        for name, state in zip(names, targets, strict=True):
            state.ready = produced
            self.layouts[name] = None if plan is None else plan.output
        for copy in copies:
            self.free(copy)

    def common_level(
        self, sources: Sequence[tuple[TensorState | None, int]]
    ) -> tuple[list[tuple[TensorState | None, int]], list[TensorState]]:
        """Operands an op streams from one level: when they lie in different
        levels, those outside the global buffer are loaded into it first
        (copies the op frees once it has read them)."""
        states = [state for state, _ in sources if state is not None]
        places = {state.where() for state in states}
        if len(places) <= 1:
            return list(sources), []
        result: list[tuple[TensorState | None, int]] = []
        copies: list[TensorState] = []
        for state, nbytes in sources:
            if state is None or state.where()[0] == Location.BUFFER:
                result.append((state, nbytes))
                continue
            owner = state.owner
            level, _ = state.where()
            copy = self.load_to_buffer(
                state.name,
                max(1, owner.nbytes if state.root is None else nbytes),
                state.tokens(),
                source=owner if level == Location.MEMORY else None,
                from_level=level,
            )
            if copy.level == Location.BUFFER:
                copies.append(copy)
                result.append((copy, nbytes))
            else:
                result.append((state, nbytes))
        states = [state for state, _ in result if state is not None]
        if len({state.where() for state in states}) > 1:
            # what still lies elsewhere is too large for the buffer: write
            # the other operands to DRAM too, and stream all from there
            result = [
                (self.copy_to_dram(state), nbytes)
                if state is not None and state.where()[0] != Location.DRAM
                else (state, nbytes)
                for state, nbytes in result
            ]
        return result, copies

    def copy_to_dram(self, state: TensorState) -> TensorState:
        """A copy in DRAM of a tensor in the global buffer or in memory-mode
        arrays."""
        level, arrays = state.where()
        stored = self.emit(
            cim_meta.StoreOp(
                state.name,
                max(1, state.owner.nbytes),
                level,
                Location.DRAM,
                self.deps(*state.tokens()),
                self.segment,
                arrays=arrays if level == Location.MEMORY else None,
                label=state.name,
            )
        )
        self.read(state, stored)
        copy = TensorState(state.name, state.nbytes, Location.DRAM)
        copy.ready = [(None, stored)]
        return copy

    def operand_source(
        self, value: SSAValue, index: int, gathered: int | None
    ) -> tuple[TensorState | None, int]:
        """Where a vector op's operand comes from and its bytes (None for a
        constant, which the op holds)."""
        owner = value.owner
        if isinstance(owner, cim_graph.ConstantOp):
            return None, 0
        if isinstance(owner, cim_graph.WeightOp):
            name = owner.weight_name.data
            if gathered is not None and index == 0:
                rows = max(1, gathered * self.hw.weight_bytes)
                return TensorState(name, rows, Location.DRAM), rows
            nbytes = max(1, num_elements(tensor_shape(value)) * self.hw.weight_bytes)
            return self.segment_weight(name, nbytes), nbytes
        state = self.state(self.names[value])
        return state, self.tensor_bytes(value)

    def lower_layout(self, op: cim_tile.Im2ColOp | cim_tile.Col2ImOp) -> None:
        kind = op.name.split(".")[1]
        elements = num_elements(tensor_shape(op.output))
        self.lower_vector_like(
            op,
            kind,
            vector_element_ops(kind, elements),
            dict(op.properties),
            [op.input],
            [op.output],
        )

    def lower_vector(self, op: cim_tile.VectorOp) -> None:
        if self.fuse_epilogue(op) or self.matmul_on_arrays(op):
            return
        payload = op.payload
        kind, element_ops = vector_work(payload)
        gathered = gathered_elements(payload)
        self.lower_vector_like(
            op,
            kind,
            element_ops,
            dict(payload.properties),
            list(op.inputs),
            list(op.outputs),
            gathered,
        )

    def matmul_on_arrays(self, op: cim_tile.VectorOp) -> bool:
        """An activation-by-activation matmul on the segment's free arrays,
        on a target with ``array.dynamic_matmul`` (:class:`ArrayMatmul`):
        the left operand is laid out as rows (a transpose on the vector
        units when it has batch dimensions), the right one is written into
        the arrays chunk after chunk (a tensor ``program`` from where it
        lives) and the rows stream through each chunk; the outputs are moved
        back to the operator's shape. False (nothing emitted) when the
        target cannot, the segment runs in bands, an operand is not an
        activation, or the free arrays cannot hold one block."""
        shape = array_matmul(op.payload)
        if (
            shape is None
            or not self.hw.array.dynamic_matmul
            or self.step_plan(op) is not None
            or any(v not in self.names for v in op.inputs)
        ):
            return False
        available = self.dynamic_arrays()
        tiling = shape.tiling(self.hw)
        if available < 1:
            return False
        chunks = plan_chunks(tiling, available)
        lhs, rhs = op.inputs
        element = op.outputs[0].type.element_type
        groups, rows = shape.groups, shape.rows
        transient: list[Operation] = []

        base = self.output_names.get(op.outputs[0]) or op.outputs[0].name_hint
        base = base or "matmul"

        def vector_step(payload: IRDLOperation, output: SSAValue | str) -> SSAValue:
            transient.append(payload)
            kind, work = vector_work(payload)
            if isinstance(output, str):
                result = payload.results[0]
                result.name_hint = f"{base}.{output}"
            else:
                result = output
            self.lower_vector_like(
                payload,
                kind,
                work,
                dict(payload.properties),
                list(payload.operands),
                [result],
                addressed=True,
            )
            return result

        left = lhs
        if groups > 1:
            moved = [tensor_shape(lhs)[i] for i in shape.rows_first]
            left = vector_step(
                cim_graph.TransposeOp(
                    lhs, shape.rows_first, TensorType(element, moved)
                ),
                "lhs_rows",
            )
        left = vector_step(
            cim_graph.ReshapeOp(
                left, TensorType(element, [rows, groups * shape.reduction])
            ),
            "lhs_matrix",
        )
        weight = self.names[rhs]
        mvm = cim_tile.MVMOp(
            left,
            weight,
            cim_tile.WeightLayout.KN,
            None,
            tiling,
            TensorType(element, [rows, groups * shape.columns]),
        )
        transient.append(mvm)
        mvm.output.name_hint = f"{base}.matrix"
        self.declare_weight(mvm)
        source = self.state(self.names[left])
        out_name = self.declare(mvm.output)
        (target,), allocs, after = self.place([out_name], [mvm.output])
        opened = self.open_output(target, allocs, [*after, *source.tokens()])
        operand = self.state(weight)

        def program_chunk(
            _: int, layout: CopyLayout, previous: SSAValue | None
        ) -> SSAValue:
            chunk = layout.chunk
            level, arrays = operand.where()
            token = self.emit(
                cim_meta.ProgramOp(
                    weight,
                    layout.arrays,
                    chunk.rows,
                    chunk.cols,
                    (chunk.k0, chunk.k1),
                    (chunk.n0, chunk.n1),
                    self.deps(*operand.tokens(), previous, *self.dynamic_busy),
                    self.segment,
                    label=weight,
                    source=cim_meta.ProgramSource.TENSOR,
                    feed=cim_meta.Feed(level.value),
                    in_bytes=chunk.weight_elements * self.hw.activation_bytes,
                    feed_arrays=arrays if level == Location.MEMORY else None,
                )
            )
            self.read(operand, token)
            return token

        finished = self.compute_chunks(
            mvm,
            chunks,
            program_chunk,
            (source.name, out_name),
            (source, target),
            None,
            self.deps(*source.tokens(), opened),
        )
        target.ready = [(None, token) for token in finished]
        self.layouts[out_name] = None
        self.dynamic_busy = finished[-1:]
        output = op.outputs[0]
        if groups > 1:
            spread = [rows, *shape.batch, shape.columns]
            back = vector_step(
                cim_graph.ReshapeOp(mvm.output, TensorType(element, spread)),
                "rows",
            )
            vector_step(
                cim_graph.TransposeOp(back, shape.rows_back, output.type), output
            )
        else:
            vector_step(cim_graph.ReshapeOp(mvm.output, output.type), output)
        for payload in reversed(transient):
            payload.drop_all_references()
        return True

    def dynamic_arrays(self) -> int:
        """Arrays an activation matmul may write in this segment: the free
        ones from ``free_array`` up to the first in memory mode (none when
        the segment streams a weight through them)."""
        if self.streams_chunks:
            return 0
        stop = next(
            (
                a
                for a in range(self.free_array, self.hw.total_arrays)
                if a in self.memory_mode
            ),
            self.hw.total_arrays,
        )
        return stop - self.free_array

    def fuse_epilogue(self, op: cim_tile.VectorOp) -> bool:
        """An activation applied by the vector ops that finish its input
        (:func:`epilogue_source`: an MVM's accumulations or an element-wise
        operator's steps), on their lanes, as the values leave: its result
        is a view of that input, which makes no round trip of its own.
        False (nothing emitted) when those ops do not write every value."""
        source = epilogue_source(op)
        if source is None:
            return False
        produced = (
            source.output if isinstance(source, cim_tile.MVMOp) else source.outputs[0]
        )
        if produced not in self.names:
            return False
        shape = tensor_shape(produced)
        finishers = self.finishers.get(self.names[produced], [])
        covered = [_block_elements(f, shape) for f in finishers]
        if not finishers or sum(covered) != math.prod(shape):
            return False
        activation = epilogue_activation(op)
        assert activation is not None
        kind, parameters = activation
        for finisher, elements in zip(finishers, covered, strict=True):
            params = dict(finisher.params.data)
            params["then"] = StringAttr(kind)
            params.update({f"then_{k}": v for k, v in parameters.items()})
            finisher.properties["attrs"] = DictionaryAttr(params)
            finisher.properties["element_ops"] = i64_attr(
                finisher.element_ops.value.data + vector_element_ops(kind, elements)
            )
        self.lower_vector_like(op, "reshape", 0, {}, list(op.inputs), list(op.outputs))
        return True

    # -- the end ---------------------------------------------------------------

    def store_outputs(
        self, returned: Sequence[SSAValue], names: Sequence[str]
    ) -> list[str]:
        """Every model output ends in DRAM."""
        outputs: list[str] = []
        for value, preferred in zip(returned, names, strict=True):
            name = self.names[value]
            outputs.append(name)
            state = self.state(name)
            level, arrays = state.where()
            if level == Location.DRAM:
                continue
            stored = self.emit(
                cim_meta.StoreOp(
                    name,
                    max(1, self.tensor_bytes(value)),
                    level,
                    Location.DRAM,
                    self.deps(*state.tokens()),
                    self.segment,
                    arrays=arrays,
                    label=preferred,
                )
            )
            self.read(state, stored)
        return outputs


def program_parts(
    tiling: cim_tile.TilingAttr, chunk: Chunk, room: int, hw: HardwareTarget
) -> list[tuple[int, Chunk]]:
    """A chunk cut into parts of at most ``room`` bytes of weight, each a
    rectangle of the matrix on consecutive arrays (its offset in the chunk):
    whole column tiles together, or one array at a time when a column tile
    alone is larger. Grouped and packed weights stay whole."""
    whole = max(1, (chunk.weight_elements) * hw.weight_bytes)
    if whole <= room or chunk.groups > 1 or tiling.field("groups") > 1:
        return [(0, chunk)]
    rows, outputs = tiling.field("rows"), tiling.outputs_per_array
    row_tiles = max(1, chunk.row_tiles)
    columns = -(-(chunk.n1 - chunk.n0) // outputs)
    column_bytes = (chunk.k1 - chunk.k0) * min(outputs, chunk.n1 - chunk.n0)
    column_bytes *= hw.weight_bytes
    parts: list[tuple[int, Chunk]] = []
    if column_bytes <= room:
        step = max(1, room // max(1, column_bytes))
        for c in range(0, columns, step):
            n0 = chunk.n0 + c * outputs
            n1 = min(chunk.n1, chunk.n0 + (c + step) * outputs)
            count = -(-(n1 - n0) // outputs)
            parts.append(
                (
                    c * row_tiles,
                    Chunk(
                        chunk.k0,
                        chunk.k1,
                        n0,
                        n1,
                        count * row_tiles,
                        chunk.rows,
                        chunk.cols,
                        row_tiles,
                    ),
                )
            )
        return parts
    for c in range(columns):
        n0 = chunk.n0 + c * outputs
        n1 = min(chunk.n1, n0 + outputs)
        for r in range(row_tiles):
            k0 = chunk.k0 + r * rows
            k1 = min(chunk.k1, k0 + rows)
            parts.append(
                (c * row_tiles + r, Chunk(k0, k1, n0, n1, 1, chunk.rows, chunk.cols, 1))
            )
    return parts


def _block_elements(op: cim_meta.VectorOp, shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` an op's block covers."""
    if op.block is None:
        return math.prod(shape)
    axis, start, stop = ints(op.block)
    return math.prod(shape) // max(1, shape[axis]) * (stop - start)


def _in_buffer(state: TensorState) -> TensorState:
    """``state`` as seen while it passes through the global buffer."""
    return TensorState(state.name, state.nbytes, Location.BUFFER)


def window_of(op: cim_tile.Im2ColOp) -> Window:
    shape = tensor_shape(op.input)
    kernel, strides = ints(op.kernel), ints(op.strides)
    pads, dilations = ints(op.pads), ints(op.dilations)
    return Window(
        (shape[0], shape[1], shape[2], shape[3]),
        (kernel[0], kernel[1]),
        (strides[0], strides[1]),
        (pads[0], pads[1], pads[2], pads[3]),
        (dilations[0], dilations[1]),
    )


def held_values(
    buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
) -> list[SSAValue]:
    """The function arguments a ``kv_cache`` buffer names in ``holds``."""
    values: list[SSAValue] = []
    for hold in buffer.holds.data if buffer.holds is not None else ():
        value = inputs.get(hold.data)
        if value is None:
            raise CimError(
                f"kv_cache memory buffer holds '{hold.data}', which is not a "
                "model input (a function argument)"
            )
        if value in values:
            raise CimError(f"kv_cache memory buffer holds '{hold.data}' twice")
        values.append(value)
    return values


__all__ = [
    "NAME_ATTR",
    "ScheduleBuilder",
    "arrays_to_hold",
    "io_names",
    "share_arrays",
    "span_length",
    "vector_work",
]
