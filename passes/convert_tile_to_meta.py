"""convert-tile-to-meta: turn an allocated cim_tile function into a schedule.

The allocation attributes (segment, copies, chunks) are the decisions; this
pass only carries them out, so every strategy shares it:

- a segment starts with a ``cim_meta.segment`` barrier, then loads and
  programs the weights of its resident operators (arrays are given out in
  program order from array 0);
- an MVM fetches its input (from DRAM if it was spilled), moves it in to
  the cores of its arrays (every core for a weight streamed in chunks),
  runs one ``cim_meta.mvm`` per copy (a ``cim_meta.parallel`` group when
  there are several) or, for a streamed weight, programs and runs its
  chunks one after another, then moves the partial sums out from those
  cores and adds them on the vector units;
- vector work fetches its inputs (weights from DRAM) and runs on all vector
  units;
- a tensor larger than half the global buffer is stored to DRAM after it is
  produced and loaded again by each consumer; model inputs start in DRAM and
  outputs end there;
- ``cim_tile.memory_buffer`` arrays (right after the compute arrays) switch
  to memory mode: an ``activations`` buffer takes the tensors that would
  spill to DRAM (first fit; those a later op still reads are evicted to
  DRAM when a later segment takes the arrays back), a ``weights`` buffer
  prefetches the next segment's weights (emitted at the end of the segment,
  so its own DRAM traffic goes first), read out at the next segment's start;
- a ``kv_cache`` buffer (at most one, segment 0) keeps the model inputs it
  ``holds`` in arrays ``[0, K)`` for the whole run: they start there in
  memory mode (each input in arrays of its own, declared with ``arrays``),
  every consumer loads them from there, and every segment places its
  compute arrays, buffers and streamed chunks from array ``K`` on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from cimflow.analysis import blocking
from cimflow.analysis.blocking import Band, BlockPlan, Layout, bands
from cimflow.analysis.tile_mapping import Chunk, plan_chunks
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import tensor_shape
from cimflow.cimdialect.cim_tile import ArrayMode, Dataflow
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import cores_of_arrays, vector_element_ops
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.ir_checks import tensor_function
from cimflow.passes.static_allocate import STRATEGY_ATTR
from cimflow.target_record import module_target, module_target_spec

NAME_ATTR = "cim_graph.name"
Location = cim_meta.Location
Produced = tuple[Band | None, SSAValue | None]
"""A band of a tensor (None: all of it) and the op after which it exists."""


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


def vector_work(payload: Operation) -> tuple[str, int]:
    """Kind and lane operations of a vector-unit operator."""
    out_elements = sum(num_elements(tensor_shape(r)) for r in payload.results)
    work = 1
    if isinstance(payload, cim_graph.UnaryOp | cim_graph.BinaryOp):
        kind = payload.kind.data.value
    elif isinstance(payload, cim_graph.MatMulOp):
        kind, work = "matmul", tensor_shape(payload.lhs)[-1]
    elif isinstance(payload, cim_graph.PoolOp):
        kind = "pool"
        work = math.prod(cim_graph.ints(payload.kernel))
    elif isinstance(payload, cim_graph.ReduceOp | cim_graph.GlobalPoolOp):
        kind = payload.name.split(".")[1]
        work = num_elements(tensor_shape(payload.input)) // max(1, out_elements)
    else:
        kind = payload.name.split(".")[1]
    return kind, vector_element_ops(kind, out_elements, work)


@dataclass
class _ScheduleBuilder:
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
    where: dict[str, Location] = field(default_factory=lambda: {})
    ready: dict[str, list[Produced]] = field(default_factory=lambda: {})
    """The ops after which each band of a tensor exists (band None: whole)."""
    layouts: dict[str, Layout | None] = field(default_factory=lambda: {})
    dataflows: dict[int, tuple[Dataflow, int]] = field(default_factory=lambda: {})
    batch: int = 1
    segment_loads: dict[str, SSAValue] = field(default_factory=lambda: {})
    """Weights already loaded in the current segment."""
    memory_mode: set[int] = field(default_factory=lambda: set())
    """Arrays now in memory mode."""
    prefetched: dict[str, tuple[cim_meta.ArrayRangesAttr, SSAValue]] = field(
        default_factory=lambda: {}
    )
    """Weights of the current segment waiting in memory-mode arrays."""
    spill_arrays: tuple[cim_meta.ArrayRangesAttr, int] | None = None
    """Memory-mode arrays of the segment that hold spilled activations, and
    the bytes still free in them."""
    in_memory: dict[str, cim_meta.ArrayRangesAttr] = field(default_factory=lambda: {})
    """Tensors spilled to memory-mode arrays, and where."""
    reserved: int = 0
    """Arrays ``[0, reserved)`` hold the KV cache for the whole run; segments
    place everything from there on."""
    held: dict[str, cim_meta.ArrayRangesAttr] = field(default_factory=lambda: {})
    """Model inputs the KV cache holds, and their memory-mode arrays."""
    pending_prefetch: (
        tuple[
            Sequence[cim_tile.MVMOp],
            tuple[cim_meta.ArrayRangesAttr, int],
            SSAValue | None,
        ]
        | None
    ) = None
    """The current segment's prefetch of the next segment's weights, emitted
    when the segment ends (so the segment's own DRAM traffic goes first)."""
    to_compute: SSAValue | None = None
    to_memory: SSAValue | None = None
    """The current segment's switch of its buffers to memory mode."""
    """The switch that gave the current segment its compute arrays back."""
    stream_loads: list[SSAValue] = field(default_factory=lambda: [])
    """Chunk loads of the weights the current segment streams."""
    chunk_buffer: tuple[int, int] | None = None
    """First array and arrays per half of the current segment's ``chunks``
    buffer (None: its streamed weights load chunk by chunk from DRAM)."""
    position: int = 0
    """Index (in the function body) of the op being lowered."""
    last_use: dict[SSAValue, int] = field(default_factory=lambda: {})
    """Index of the last op that reads each value."""
    values_by_name: dict[str, SSAValue] = field(default_factory=lambda: {})
    sinks: dict[SSAValue, None] = field(default_factory=lambda: {})
    segment: int = -1
    barrier: SSAValue | None = None
    free_array: int = 0
    """First array not holding a resident weight of the current segment."""
    programmed: dict[
        cim_tile.MVMOp, list[tuple[cim_meta.ArrayRangesAttr, SSAValue]]
    ] = field(default_factory=lambda: {})

    @property
    def usable_arrays(self) -> int:
        """Arrays the segments may use: all but the KV cache's."""
        return self.hw.total_arrays - self.reserved

    def memory_arrays(self, name: str) -> cim_meta.ArrayRangesAttr | None:
        """The memory-mode arrays holding tensor ``name``, if any."""
        return self.in_memory.get(name) or self.held.get(name)

    # -- bookkeeping ------------------------------------------------------

    def emit(self, op: cim_meta.ParallelOp | Operation) -> SSAValue:
        self.block.add_op(op)
        for dep in op.operands:
            self.sinks.pop(dep, None)
        if isinstance(op, cim_meta.ParallelOp):
            for inner in op.body.block.ops:
                for dep in inner.operands:
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
        """Name an activation tensor and declare it in the schedule.

        Model inputs and outputs keep their ONNX names when the function
        records them.
        """
        base = preferred or self.output_names.get(value) or value.name_hint or "t"
        name = self.unique_name(base)
        self.names[value] = name
        self.values_by_name[name] = value
        value_type = cast(TensorType[Attribute], value.type)
        assert isinstance(value_type, TensorType)
        self.decls.append(
            cim_meta.TensorDeclOp(name, value_type, self.tensor_bytes(value))
        )
        return name

    def place(
        self,
        name: str,
        value: SSAValue,
        produced: list[Produced],
        label: str,
        spill: bool = True,
        layout: Layout | None = None,
    ) -> None:
        """Record where a new tensor lives and which ops made each band of it;
        a whole tensor larger than half the global buffer is spilled to DRAM."""
        nbytes = self.tensor_bytes(value)
        self.layouts[name] = layout
        whole = len(produced) == 1 and produced[0][0] is None
        if spill and whole and nbytes > self.hw.buffers.global_bytes // 2:
            destination = Location.DRAM
            arrays: cim_meta.ArrayRangesAttr | None = None
            if self.spill_arrays is not None and self.spill_arrays[1] >= nbytes:
                arrays, free = self.spill_arrays
                self.spill_arrays = (arrays, free - nbytes)
                destination = Location.MEMORY
                self.in_memory[name] = arrays
            setup = self.to_memory if destination == Location.MEMORY else None
            token = self.emit(
                cim_meta.StoreOp(
                    name,
                    nbytes,
                    Location.BUFFER,
                    destination,
                    self.deps(produced[0][1], setup),
                    self.segment,
                    arrays=arrays,
                    label=label,
                )
            )
            self.where[name] = destination
            produced = [(None, token)]
        else:
            self.where[name] = Location.BUFFER
        self.ready[name] = produced

    def fetch(
        self,
        value: SSAValue,
        label: str,
        weight_elements: int | None = None,
        rows: Band | None = None,
    ) -> list[SSAValue]:
        """The ops after which ``value`` (its ``rows``, or all of it) is in the
        global buffer.

        A weight is loaded from DRAM once per segment: all of it, or
        ``weight_elements`` of it when the consumer reads only part (an
        embedding lookup, loaded each time). A spilled tensor is loaded again
        for each consumer, or once for the rest of a pipelined segment.
        """
        owner = value.owner
        if isinstance(owner, cim_graph.ConstantOp):
            self.operand_name(value)
            return []
        if isinstance(owner, cim_graph.WeightOp):
            return [
                self.load_weight(owner.weight_name.data, value, label, weight_elements)
            ]
        name = self.names[value]
        if self.where[name] != Location.BUFFER:
            load = self.emit(
                cim_meta.LoadOp(
                    name,
                    max(1, self.tensor_bytes(value)),
                    self.where[name],
                    Location.BUFFER,
                    self.deps(*(t for _, t in self.ready[name])),
                    self.segment,
                    arrays=self.memory_arrays(name),
                    label=label,
                )
            )
            if self.pipelined:
                self.where[name] = Location.BUFFER
                self.ready[name] = [(None, load)]
                self.layouts[name] = None
            return [load]
        tokens = [
            token
            for band, token in self.ready[name]
            if band is None or rows is None or (band[0] < rows[1] and rows[0] < band[1])
        ]
        present = [t for t in tokens if t is not None]
        return present or ([self.barrier] if self.barrier is not None else [])

    def load_weight(
        self, weight: str, value: SSAValue, label: str, elements: int | None
    ) -> SSAValue:
        if elements is None and weight in self.segment_loads:
            return self.segment_loads[weight]
        count = num_elements(tensor_shape(value)) if elements is None else elements
        token = self.emit(
            cim_meta.LoadOp(
                weight,
                max(1, count * self.hw.weight_bytes),
                Location.DRAM,
                Location.BUFFER,
                self.deps(),
                self.segment,
                label=label,
            )
        )
        if elements is None:
            self.segment_loads[weight] = token
        return token

    # -- pipelined segments -----------------------------------------------

    @property
    def pipelined(self) -> bool:
        kind, blocks = self.dataflows.get(self.segment, (Dataflow.LAYER, 1))
        return kind != Dataflow.LAYER and blocks > 1

    def step_plan(self, op: Operation) -> BlockPlan | None:
        """How ``op`` runs in the current segment: in bands, or whole (None)."""
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

    # -- the KV cache -----------------------------------------------------

    def hold_kv_cache(
        self, buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
    ) -> None:
        """Keep the model inputs a ``kv_cache`` buffer holds in its arrays
        ``[0, K)`` for the whole run: each starts in arrays of its own (in
        memory mode, no switch) and is loaded from there; every segment
        places its arrays from ``K`` on.

        ``inputs`` gives the function argument of each trace input name and
        name hint.
        """
        count = buffer.arrays.value.data
        dual_mode = self.hw.dual_mode
        if count > min(dual_mode.switchable_arrays, self.hw.total_arrays):
            raise CimError(
                f"kv_cache memory buffer takes {count} arrays but target "
                f"'{self.hw.name}' can switch {dual_mode.switchable_arrays} to "
                "memory mode"
            )
        values = self.held_values(buffer, inputs)
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
            self.held[name] = arrays
            self.where[name] = Location.MEMORY
            self.declaration(name).arrays = arrays
        self.reserved = count
        self.memory_mode |= set(range(count))

    def held_values(
        self, buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
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

    # -- segments ---------------------------------------------------------

    def enter_segment(
        self,
        segment: int,
        mvms: Sequence[cim_tile.MVMOp],
        buffers: Sequence[cim_tile.MemoryBufferOp] = (),
        next_mvms: Sequence[cim_tile.MVMOp] = (),
    ) -> None:
        """Start a segment: evict what its mode switches would destroy, read
        out prefetched weights, switch arrays, program resident weights, and
        prefetch the next segment's weights into its ``weights`` buffer."""
        if segment == self.segment:
            return
        self.flush_prefetch()
        self.segment = segment
        self.segment_loads = {}
        self.barrier = self.emit(cim_meta.SegmentOp(segment, list(self.sinks)))
        placed, next_array = self.place_resident(mvms)
        roles = self.place_buffers(buffers, next_array)
        keep = roles.get(cim_tile.BufferRole.ACTIVATIONS)
        freeing = self.evict_spills(keep)
        readouts = self.read_prefetched(placed)
        compute = {a for _, _, ranges in placed for r in ranges for a in _ids(r)}
        if any(m.alloc is not None and m.alloc.field("chunks") > 1 for m in mvms):
            compute |= set(range(self.free_array, self.hw.total_arrays))
        memory = {a for arrays, _ in roles.values() for a in _ids(arrays)}
        switched = self.switch(
            compute & self.memory_mode,
            ArrayMode.COMPUTE,
            [*readouts.values(), *freeing],
        )
        self.to_compute = switched
        to_memory = self.switch(
            memory - self.memory_mode, ArrayMode.MEMORY, [*readouts.values(), *freeing]
        )
        self.to_memory = to_memory
        for mvm, chunk, ranges in placed:
            weight = mvm.weight.data
            load = readouts.get(weight) or self.emit(
                cim_meta.LoadOp(
                    weight,
                    self.weight_bytes(chunk),
                    Location.DRAM,
                    Location.BUFFER,
                    [self.barrier],
                    segment,
                    label=weight,
                )
            )
            self.programmed[mvm] = [
                (arrays, self.program(weight, arrays, chunk, self.deps(load, switched)))
                for arrays in ranges
            ]
        self.spill_arrays = None
        if keep is not None:
            held = sum(
                self.declared_bytes(name)
                for name, arrays in self.in_memory.items()
                if arrays == keep[0]
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
            self.pending_prefetch = (next_mvms, weights, to_memory)

    def flush_prefetch(self) -> None:
        """Emit the ending segment's prefetch: last, so that the DRAM serves
        it only when the segment's own loads and stores leave it idle, and
        after the weight it streams (a prefetch holding the DRAM between two
        chunks would stall the stream)."""
        pending, self.pending_prefetch = self.pending_prefetch, None
        if pending is not None:
            self.prefetch(*pending)
        self.stream_loads = []

    def place_resident(
        self, mvms: Sequence[cim_tile.MVMOp]
    ) -> tuple[list[tuple[cim_tile.MVMOp, Chunk, list[cim_meta.ArrayRangesAttr]]], int]:
        """Arrays for every copy of the segment's resident weights (from the
        first array after the KV cache's)."""
        placed: list[tuple[cim_tile.MVMOp, Chunk, list[cim_meta.ArrayRangesAttr]]] = []
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
            placed.append((mvm, chunk, ranges))
        if next_array > self.hw.total_arrays:
            raise CimError(
                f"segment {self.segment} needs {next_array - self.reserved} arrays"
                f"{self.beside_kv_cache()} but the target '{self.hw.name}' has "
                f"{self.hw.total_arrays}"
            )
        self.free_array = next_array
        return placed, next_array

    def beside_kv_cache(self) -> str:
        """How a message says the KV cache's arrays are taken (if they are)."""
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
        """Move spilled tensors out of memory arrays this segment reuses
        (a tensor no later op reads is simply dropped)."""
        tokens: list[SSAValue] = []
        for name, arrays in list(self.in_memory.items()):
            value = self.values_by_name.get(name)
            if value is not None and self.last_use.get(value, -1) < self.position:
                del self.in_memory[name]
                continue
            if keep is not None and arrays == keep[0]:
                continue
            tokens.append(
                self.emit(
                    cim_meta.StoreOp(
                        name,
                        max(1, self.declared_bytes(name)),
                        Location.MEMORY,
                        Location.DRAM,
                        self.deps(*(t for _, t in self.ready[name]), self.barrier),
                        self.segment,
                        arrays=arrays,
                        label=name,
                    )
                )
            )
            self.where[name] = Location.DRAM
            self.ready[name] = [(None, tokens[-1])]
            del self.in_memory[name]
        return tokens

    def read_prefetched(
        self,
        placed: Sequence[tuple[cim_tile.MVMOp, Chunk, list[cim_meta.ArrayRangesAttr]]],
    ) -> dict[str, SSAValue]:
        """Weights prefetched into memory arrays, read into the buffer."""
        readouts: dict[str, SSAValue] = {}
        for mvm, chunk, _ in placed:
            weight = mvm.weight.data
            if weight in self.prefetched and weight not in readouts:
                arrays, token = self.prefetched[weight]
                readouts[weight] = self.emit(
                    cim_meta.LoadOp(
                        weight,
                        self.weight_bytes(chunk),
                        Location.MEMORY,
                        Location.BUFFER,
                        self.deps(token, self.barrier),
                        self.segment,
                        arrays=arrays,
                        label=weight,
                    )
                )
        return readouts

    def switch(
        self, arrays: set[int], mode: ArrayMode, after: Sequence[SSAValue]
    ) -> SSAValue | None:
        if not arrays:
            return None
        token = self.emit(
            cim_meta.SwitchOp(
                cim_meta.ArrayRangesAttr.from_ranges(_runs(arrays)),
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
        upcoming: dict[str, tuple[cim_meta.ArrayRangesAttr, SSAValue]] = {}
        for mvm in next_mvms:
            alloc = mvm.alloc
            if alloc is None or alloc.field("chunks") > 1:
                continue
            plan = plan_chunks(mvm.tiling, self.usable_arrays)
            nbytes = self.weight_bytes(plan[0])
            weight = mvm.weight.data
            if weight in upcoming or nbytes > free:
                continue
            free -= nbytes
            upcoming[weight] = (
                arrays,
                self.emit(
                    cim_meta.LoadOp(
                        weight,
                        nbytes,
                        Location.DRAM,
                        Location.MEMORY,
                        self.deps(switched, self.barrier, *self.stream_loads[-1:]),
                        self.segment,
                        arrays=arrays,
                        label=weight,
                    )
                ),
            )
        self.prefetched = upcoming

    def declaration(self, name: str) -> cim_meta.TensorDeclOp:
        for decl in self.decls:
            if isinstance(decl, cim_meta.TensorDeclOp) and decl.tensor.data == name:
                return decl
        raise AssertionError(name)

    def declared_bytes(self, name: str) -> int:
        return self.declaration(name).size.value.data

    def program(
        self,
        weight: str,
        arrays: cim_meta.ArrayRangesAttr,
        chunk: Chunk,
        deps: Sequence[SSAValue],
    ) -> SSAValue:
        return self.emit(
            cim_meta.ProgramOp(
                weight,
                arrays,
                chunk.rows,
                chunk.cols,
                (chunk.k0, chunk.k1),
                (chunk.n0, chunk.n1),
                deps,
                self.segment,
                label=weight,
            )
        )

    def mvm_op(
        self,
        weight: str,
        arrays: cim_meta.ArrayRangesAttr,
        chunk: Chunk,
        vectors: tuple[int, int],
        tensors: tuple[str, str],
        deps: Sequence[SSAValue],
    ) -> cim_meta.MVMOp:
        return cim_meta.MVMOp(
            weight,
            arrays,
            vectors[1] - vectors[0],
            chunk.rows,
            chunk.cols,
            (chunk.k0, chunk.k1),
            (chunk.n0, chunk.n1),
            vectors,
            tensors[0],
            tensors[1],
            deps,
            self.segment,
            label=weight,
        )

    def weight_bytes(self, chunk: Chunk) -> int:
        return max(1, chunk.weight_elements * self.hw.weight_bytes)

    # -- operators --------------------------------------------------------

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

    def lower_mvm(self, mvm: cim_tile.MVMOp) -> None:
        alloc = mvm.alloc
        assert alloc is not None
        weight = mvm.weight.data
        self.declare_weight(mvm)
        in_name = self.names[mvm.input]
        out_name = self.declare(mvm.output)
        plan = self.step_plan(mvm)
        vectors = mvm.vectors
        row_bytes = self.tensor_bytes(mvm.input) // max(1, vectors)
        produced: list[Produced] = []
        for index, band in enumerate(self.steps(plan)):
            if plan is None or band is None:
                span, needed = (0, vectors), None
            else:
                span, needed = plan.output.elements(band), plan.needs(0, band)
            block = None if band is None else (0, *span)
            inputs = self.fetch(mvm.input, weight, rows=needed)
            cores = self.mvm_cores(mvm, None if band is None else index)
            moved = self.emit(
                cim_meta.MoveOp(
                    in_name,
                    max(1, (span[1] - span[0]) * row_bytes),
                    self.deps(*inputs),
                    self.segment,
                    label=weight,
                    block=block,
                    direction=cim_meta.MoveDirection.IN,
                    cores=cores,
                )
            )
            if alloc.field("chunks") > 1:
                finished = self.run_chunks(mvm, (in_name, out_name), moved)
            elif band is None:
                finished = self.run_copies(mvm, (in_name, out_name), moved)
            else:
                copies = self.programmed[mvm]
                arrays, program = copies[index % len(copies)]
                chunk = plan_chunks(mvm.tiling, self.usable_arrays)[0]
                finished = self.emit(
                    self.mvm_op(
                        weight,
                        arrays,
                        chunk,
                        span,
                        (in_name, out_name),
                        [moved, program],
                    )
                )
            produced.append(
                (band, self.finish_mvm(mvm, out_name, span, finished, block, cores))
            )
        feeds_col2im = bool(mvm.output.uses) and all(
            isinstance(use.operation, cim_tile.Col2ImOp) for use in mvm.output.uses
        )
        self.place(
            out_name,
            mvm.output,
            produced,
            weight,
            spill=not feeds_col2im,
            layout=None if plan is None else plan.output,
        )

    def mvm_cores(
        self, mvm: cim_tile.MVMOp, step: int | None
    ) -> cim_meta.CoreRangesAttr | None:
        """The cores an MVM's moves reach: those of the arrays it runs on
        (pipeline step ``step`` runs on one copy, a whole MVM on all of
        them), or every core (None) for a weight streamed in chunks."""
        alloc = mvm.alloc
        assert alloc is not None
        if alloc.field("chunks") > 1:
            return None
        copies = self.programmed[mvm]
        if step is not None:
            copies = [copies[step % len(copies)]]
        ranges = sorted(r for arrays, _ in copies for r in arrays.ranges)
        return cim_meta.CoreRangesAttr.from_ranges(
            cores_of_arrays(self.hw, tuple(ranges))
        )

    def run_copies(
        self, mvm: cim_tile.MVMOp, tensors: tuple[str, str], moved: SSAValue
    ) -> SSAValue:
        """All vectors, split between the weight's resident copies."""
        weight = mvm.weight.data
        copies = self.programmed[mvm]
        vectors = mvm.vectors
        share = math.ceil(vectors / len(copies))
        chunk = plan_chunks(mvm.tiling, self.usable_arrays)[0]
        runs: list[Operation] = []
        for index, (arrays, program) in enumerate(copies):
            v0, v1 = index * share, min(vectors, (index + 1) * share)
            if v0 < v1:
                runs.append(
                    self.mvm_op(
                        weight, arrays, chunk, (v0, v1), tensors, [moved, program]
                    )
                )
        if len(runs) == 1:
            return self.emit(runs[0])
        body = Block()
        body.add_ops(runs)
        return self.emit(
            cim_meta.ParallelOp(Region(body), [], self.segment, label=weight)
        )

    def run_chunks(
        self, mvm: cim_tile.MVMOp, tensors: tuple[str, str], moved: SSAValue
    ) -> SSAValue:
        """A weight streamed through the free arrays, one chunk after another."""
        alloc = mvm.alloc
        assert alloc is not None
        weight = mvm.weight.data
        previous: SSAValue | None = None
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
        readouts: dict[int, SSAValue] = {}
        last_program: SSAValue | None = None
        for index, chunk in enumerate(chunks):
            arrays = cim_meta.ArrayRangesAttr.from_ranges(
                [(self.free_array, self.free_array + chunk.arrays)]
            )
            if index in prefetched:
                half, token = prefetched[index]
                load = self.emit(
                    cim_meta.LoadOp(
                        weight,
                        self.weight_bytes(chunk),
                        Location.MEMORY,
                        Location.BUFFER,
                        self.deps(token, last_program),
                        self.segment,
                        arrays=half,
                        label=weight,
                    )
                )
                readouts[index] = load
            else:
                load = self.emit(
                    cim_meta.LoadOp(
                        weight,
                        self.weight_bytes(chunk),
                        Location.DRAM,
                        Location.BUFFER,
                        self.deps(previous),
                        self.segment,
                        label=weight,
                    )
                )
                self.stream_loads.append(load)
            if index + 1 < len(chunks):  # after this chunk's load: DRAM order
                self.prefetch_chunk(weight, chunks, index + 1, prefetched, readouts)
            last_program = self.program(
                weight, arrays, chunk, self.deps(load, previous, self.to_compute)
            )
            previous = self.emit(
                self.mvm_op(
                    weight,
                    arrays,
                    chunk,
                    (0, mvm.vectors),
                    tensors,
                    [moved, last_program],
                )
            )
        assert previous is not None
        return previous

    def prefetch_chunk(
        self,
        weight: str,
        chunks: Sequence[Chunk],
        index: int,
        prefetched: dict[int, tuple[cim_meta.ArrayRangesAttr, SSAValue]],
        readouts: Mapping[int, SSAValue],
    ) -> None:
        """Load chunk ``index`` of a streamed weight from DRAM into a half of
        the segment's ``chunks`` buffer (halves alternate; a half is reused
        once the chunk before in it was read out), if it fits a half."""
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
                self.deps(self.barrier, self.to_memory, readouts.get(index - 2)),
                self.segment,
                arrays=arrays,
                label=weight,
            )
        )
        self.stream_loads.append(load)
        prefetched[index] = (arrays, load)

    def finish_mvm(
        self,
        mvm: cim_tile.MVMOp,
        out_name: str,
        span: tuple[int, int],
        finished: SSAValue,
        block: tuple[int, int, int] | None,
        cores: cim_meta.CoreRangesAttr | None,
    ) -> SSAValue:
        """Gather the partial sums of vectors ``span`` from ``cores`` and add
        them (and the bias) on the vector units."""
        weight = mvm.weight.data
        groups, n = mvm.tiling.field("groups"), mvm.tiling.field("n")
        partials = mvm.tiling.field("row_tiles")
        outputs = (span[1] - span[0]) * groups * n
        gather_bytes = (
            outputs * partials * self.hw.accumulator_bytes
            if partials > 1
            else outputs * self.hw.activation_bytes
        )
        token = self.emit(
            cim_meta.MoveOp(
                out_name,
                max(1, gather_bytes),
                [finished],
                self.segment,
                label=weight,
                block=block,
                direction=cim_meta.MoveDirection.OUT,
                cores=cores,
            )
        )
        extra_ops = outputs * (partials - 1) + (outputs if mvm.bias is not None else 0)
        if not extra_ops:
            return token
        inputs = [out_name]
        deps = [token]
        if mvm.bias is not None:
            bias = mvm.bias.data
            inputs.append(bias)
            deps.append(self.load_bias(bias, groups * n))
        return self.emit(
            cim_meta.VectorOp(
                "accumulate",
                extra_ops,
                inputs,
                [out_name],
                deps,
                self.segment,
                label=weight,
                block=block,
            )
        )

    def load_bias(self, bias: str, elements: int) -> SSAValue:
        if bias not in self.segment_loads:
            self.segment_loads[bias] = self.emit(
                cim_meta.LoadOp(
                    bias,
                    max(1, elements * self.hw.weight_bytes),
                    Location.DRAM,
                    Location.BUFFER,
                    self.deps(),
                    self.segment,
                    label=bias,
                )
            )
        return self.segment_loads[bias]

    def lower_vector_like(
        self,
        op: Operation,
        kind: str,
        element_ops: int,
        params: dict[str, Attribute],
        inputs: Sequence[SSAValue],
        outputs: Sequence[SSAValue],
        gathered: int | None = None,
        spill: bool = True,
    ) -> None:
        """One vector-unit operator, whole or in the bands of a pipeline."""
        plan = self.step_plan(op)
        input_names = [self.operand_name(v) for v in inputs]
        names = [self.declare(r) for r in outputs]
        rows = 1 if plan is None else plan.output.rows
        produced: list[Produced] = []
        for band in self.steps(plan):
            tokens: list[SSAValue] = []
            for index, value in enumerate(inputs):
                needed = (
                    None if plan is None or band is None else plan.needs(index, band)
                )
                share = gathered if index == 0 else None
                if share is not None and band is not None:
                    share = math.ceil(share * (band[1] - band[0]) / rows)
                tokens += self.fetch(value, kind, share, needed)
            block = None
            work = element_ops
            if plan is not None and band is not None:
                block = (plan.output.axis, *plan.output.elements(band))
                work = math.ceil(element_ops * (band[1] - band[0]) / rows)
            token = self.emit(
                cim_meta.VectorOp(
                    kind,
                    work,
                    input_names,
                    names,
                    self.deps(*tokens),
                    self.segment,
                    label=kind,
                    params=params,
                    block=block,
                )
            )
            produced.append((band, token))
        for name, result in zip(names, outputs, strict=True):
            self.place(
                name,
                result,
                produced,
                kind,
                spill=spill and plan is None,
                layout=None if plan is None else plan.output,
            )

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
            spill=isinstance(op, cim_tile.Col2ImOp),
        )

    def lower_vector(self, op: cim_tile.VectorOp) -> None:
        payload = op.payload
        kind, element_ops = vector_work(payload)
        gathered = (
            num_elements(tensor_shape(payload.output))
            if isinstance(payload, cim_graph.GatherOp)
            else None
        )
        self.lower_vector_like(
            op,
            kind,
            element_ops,
            dict(payload.properties),
            list(op.inputs),
            list(op.outputs),
            gathered,
        )

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


def _ids(arrays: cim_meta.ArrayRangesAttr) -> list[int]:
    return [a for first, stop in arrays.ranges for a in range(first, stop)]


def _runs(arrays: set[int]) -> list[tuple[int, int]]:
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


def _kv_cache_buffer(ops: Iterable[Operation]) -> cim_tile.MemoryBufferOp | None:
    """The function's one ``kv_cache`` memory buffer, if it declares one."""
    buffers = [
        op
        for op in ops
        if isinstance(op, cim_tile.MemoryBufferOp)
        and op.role.data == cim_tile.BufferRole.KV_CACHE
    ]
    if len(buffers) > 1:
        raise CimError(
            f"the function declares {len(buffers)} kv_cache memory buffers; one "
            "holds the whole KV cache"
        )
    if not buffers:
        return None
    segment = buffers[0].segment.value.data
    if segment != 0:
        raise CimError(
            f"kv_cache memory buffer has segment {segment}; it holds the KV cache "
            "for the whole run and is declared with segment 0"
        )
    return buffers[0]


def _arguments_by_name(
    args: Sequence[SSAValue], names: Sequence[str]
) -> dict[str, SSAValue]:
    """Function arguments by name hint and by trace input name (which wins)."""
    by_name = {arg.name_hint: arg for arg in args if arg.name_hint}
    by_name.update(zip(names, args, strict=True))
    return by_name


def _segment_of(op: Operation) -> int | None:
    if isinstance(op, cim_tile.MVMOp):
        if op.alloc is None:
            raise CimError(
                f"cim_tile.mvm of weight '{op.weight.data}' has no allocation; run an "
                "allocation pass (e.g. cim-static-allocate) before convert-tile-to-meta"
            )
        return op.alloc.field("segment")
    if isinstance(op, cim_tile.VectorOp) and op.segment is not None:
        return op.segment.value.data
    return None


@dataclass(frozen=True)
class ConvertTileToMetaPass(ModulePass):
    """Lower an allocated cim_tile function to a cim_meta schedule."""

    name = "convert-tile-to-meta"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        function = tensor_function(op, self.name)
        hw = module_target(op, self.target, self.name)
        builder = _ScheduleBuilder(hw)
        body = function.body.block
        for inner in body.ops:
            if isinstance(inner, cim_graph.WeightOp):
                builder.used_names.add(inner.weight_name.data)
            elif isinstance(inner, cim_tile.MVMOp):
                builder.used_names.add(inner.weight.data)
                if inner.bias is not None:
                    builder.used_names.add(inner.bias.data)
        terminator = body.last_op
        if isinstance(terminator, func.ReturnOp) and function.res_attrs is not None:
            recorded_outputs = io_names(
                function, function.res_attrs, len(terminator.operands), "output"
            )
            for value, name in zip(terminator.operands, recorded_outputs, strict=True):
                if value not in body.args:
                    builder.output_names.setdefault(value, name)
        inputs = io_names(function, function.arg_attrs, len(body.args), "input")
        for arg, name in zip(body.args, inputs, strict=True):
            builder.declare(arg, name)
            builder.where[name] = Location.DRAM
            builder.ready[name] = [(None, None)]
        if body.args and tensor_shape(body.args[0]):
            builder.batch = max(1, tensor_shape(body.args[0])[0])
        kv_cache = _kv_cache_buffer(body.ops)
        if kv_cache is not None:
            builder.hold_kv_cache(kv_cache, _arguments_by_name(list(body.args), inputs))
        for inner in body.ops:
            if isinstance(inner, cim_tile.DataflowOp):
                builder.dataflows[inner.segment.value.data] = (
                    inner.kind.data,
                    inner.blocks.value.data,
                )
        mvms_by_segment: dict[int, list[cim_tile.MVMOp]] = {}
        for inner in body.ops:
            if isinstance(inner, cim_tile.MVMOp):
                segment = _segment_of(inner)
                assert segment is not None
                mvms_by_segment.setdefault(segment, []).append(inner)
        buffers_by_segment: dict[int, list[cim_tile.MemoryBufferOp]] = {}
        for inner in body.ops:
            if (
                isinstance(inner, cim_tile.MemoryBufferOp)
                and inner.role.data != cim_tile.BufferRole.KV_CACHE
            ):
                buffers_by_segment.setdefault(inner.segment.value.data, []).append(
                    inner
                )
        order = sorted(mvms_by_segment)

        def enter(segment: int) -> None:
            later = [s for s in order if s > segment]
            builder.enter_segment(
                segment,
                mvms_by_segment.get(segment, []),
                buffers_by_segment.get(segment, []),
                mvms_by_segment.get(later[0], []) if later else [],
            )

        for position, inner in enumerate(body.ops):
            for operand in inner.operands:
                builder.last_use[operand] = position
        enter(0)
        returned: list[SSAValue] = []
        for position, inner in enumerate(body.ops):
            builder.position = position
            segment = _segment_of(inner)
            if segment is not None and segment != builder.segment:
                enter(segment)
            if isinstance(inner, cim_tile.MVMOp):
                builder.lower_mvm(inner)
            elif isinstance(inner, cim_tile.Im2ColOp | cim_tile.Col2ImOp):
                builder.lower_layout(inner)
            elif isinstance(inner, cim_tile.VectorOp):
                builder.lower_vector(inner)
            elif isinstance(inner, func.ReturnOp):
                returned = list(inner.operands)
            elif not isinstance(
                inner,
                cim_graph.WeightOp
                | cim_graph.ConstantOp
                | cim_tile.MemoryBufferOp
                | cim_tile.DataflowOp,
            ):
                raise CimError(f"convert-tile-to-meta cannot lower '{inner.name}'")
        outputs: list[str] = []
        recorded = io_names(function, function.res_attrs, len(returned), "output")
        for value, preferred in zip(returned, recorded, strict=True):
            name = builder.names[value]
            outputs.append(name)
            if builder.where[name] != Location.DRAM:
                builder.emit(
                    cim_meta.StoreOp(
                        name,
                        max(1, builder.tensor_bytes(value)),
                        builder.where[name],
                        Location.DRAM,
                        builder.deps(*(t for _, t in builder.ready[name])),
                        builder.segment,
                        arrays=builder.memory_arrays(name),
                        label=preferred,
                    )
                )
        for decl in reversed(builder.decls):
            builder.block.insert_op_before(
                decl, builder.block.first_op
            ) if builder.block.first_op else builder.block.add_op(decl)
        first_input = body.args[0] if body.args else None
        batch = (
            tensor_shape(first_input)[0]
            if first_input is not None and tensor_shape(first_input)
            else 1
        )
        strategy = op.attributes.get(STRATEGY_ATTR)
        schedule = cim_meta.ScheduleOp(
            function.sym_name.data,
            module_target_spec(op, self.target),
            strategy.data if isinstance(strategy, StringAttr) else "unknown",
            max(1, batch),
            [builder.names[a] for a in body.args],
            outputs,
            Region(builder.block),
        )
        op.body.block.insert_op_before(schedule, function)
        function.detach()
        function.erase()
