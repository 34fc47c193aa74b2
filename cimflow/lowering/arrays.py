"""Array placement: a segment's resident weights and memory buffers on
arrays, mode switches, and the arrays it leaves free."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import SSAValue

from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_meta, cim_tile
from cimflow.cimdialect.cim_tile import ArrayMode
from cimflow.errors import CimError
from cimflow.lowering.placement import (
    Location,
    TensorState,
    spread_bytes,
)
from cimflow.lowering.rules import stages_in_place
from cimflow.lowering.state import (
    CopyLayout,
    array_ids,
    copy_layout,
    runs_of,
)
from cimflow.lowering.weights import WeightStreaming


class ArrayPlacement(WeightStreaming):
    """Segments: arrays for weights and buffers, and mode switches."""

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
        # a segment starts at the end where the one before staged weights
        self.laid_down = bool(self.prefetched) and not self.laid_down
        self.segment = segment
        self.start_segment_users()
        self.barrier = self.emit(cim_meta.SegmentOp(segment, list(self.sinks)))
        pins: dict[str, int] = self.staged_pins(mvms)
        layout = self.lay_out(mvms, buffers, pins)
        if layout is None:  # the staged copies leave no room: read them out
            pins = {}
            layout = self.lay_out(mvms, buffers, pins)
            assert layout is not None
        placed, roles = layout
        self.split_local_buffers(placed)
        keep = roles.get(cim_tile.BufferRole.ACTIVATIONS)
        freeing = self.evict_spills(keep)
        compute = {a for _, copies in placed for c in copies for a in array_ids(c)}
        self.dynamic_busy, self.streamed_busy = [], []
        if any(m.alloc is not None and m.alloc.field("chunks") > 1 for m in mvms):
            compute |= set(range(self.free_array, self.free_stop))
        memory = {a for arrays, _ in roles.values() for a in array_ids(arrays)}
        in_place = {w: self.prefetched.pop(w) for w in pins}
        staged_arrays = {
            a for s in in_place.values() if s.arrays for a in array_ids(s.arrays)
        }
        sources, read_out = self.read_out_prefetched(compute)
        self.to_compute = self.switch(
            (compute & self.memory_mode) - staged_arrays,
            ArrayMode.COMPUTE,
            [*freeing, *read_out],
        )
        self.to_memory = self.switch(
            memory - self.memory_mode, ArrayMode.MEMORY, freeing
        )
        if self.to_memory is None and freeing:
            # arrays already in memory mode: what they store next waits
            # for the tensors evicted from them
            self.to_memory = self.join(freeing, "evictions")
        for mvm, copies in placed:
            staged = in_place.pop(mvm.weight.data, None)
            if staged is not None:
                self.switch_in_place(mvm, copies, staged)
                continue
            source = sources.get(mvm.weight.data)
            if source is None:
                # from DRAM, when the MVM before it is lowered: programmed
                # all at once, the weights would cycle through the global
                # buffer and the segment's first outputs, placed after
                # them, would wait there for the last one
                self.unprogrammed[mvm] = copies
            else:
                self.program_copies(mvm, copies, source)
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
        self.input_arrays = roles.get(cim_tile.BufferRole.INPUTS)
        self.staged_input = None
        weights = roles.get(cim_tile.BufferRole.WEIGHTS)
        if weights is not None:
            self.pending_prefetch = (next_mvms, weights, self.to_memory)

    def split_local_buffers(
        self,
        placed: Sequence[tuple[cim_tile.MVMOp, Sequence[cim_meta.ArrayRangesAttr]]],
    ) -> None:
        """Give each resident weight of a pipelined segment its own part of
        the local buffer of every core it shares with another (their layers
        run at the same time: sharing one buffer in program order would make
        a layer's first band wait for the last band of the layer before)."""
        parts: dict[int, set[str]] = {}
        if self.pipelined:
            per_core = self.hw.hierarchy.arrays_per_core
            for mvm, copies in placed:
                for copy in copies:
                    for array in array_ids(copy):
                        parts.setdefault(array // per_core, set()).add(mvm.weight.data)
            for array in range(self.free_array, self.free_stop):
                parts.setdefault(array // per_core, set()).add("")
        split = {core: frozenset(w) for core, w in parts.items() if len(w) > 1}
        if split or self.local_parts:
            # new parts over bytes the segments before used: their first
            # allocations wait for the ops that released those bytes
            for core, tokens in self.local_releases().items():
                if tokens:
                    self.local_after[core] = [
                        self.join(tokens, f"local buffer of core {core}")
                    ]
            self.local = {}
        self.local_parts = split

    def local_releases(self) -> dict[int, list[SSAValue]]:
        """For each core whose local buffer the lowering used, the ops its
        bytes wait for: those that released them, and what the bytes never
        taken were waiting for."""
        releases: dict[int, list[SSAValue]] = {}
        for (core, _), space in self.local.items():
            assert not space.live, f"core {core}'s local buffer holds {space.live}"
            if space.fresh == space.capacity and not space.releases:
                continue  # never used: its bytes wait for what they waited for
            tokens = releases.setdefault(core, [])
            tokens += space.fresh_after
            tokens += [released.token for released in space.released + space.held]
        return {core: list(dict.fromkeys(tokens)) for core, tokens in releases.items()}

    def program_on_first_use(self, mvm: cim_tile.MVMOp) -> None:
        """Program ``mvm``'s resident copies, if the segment has not yet,
        and the next resident weight's: a weight loads while the layer
        before it computes."""
        todo = [mvm] if mvm in self.unprogrammed else []
        todo += [m for m in self.unprogrammed if m is not mvm][:1]
        for weight in todo:
            self.program_copies(weight, self.unprogrammed.pop(weight))

    def leave_segment(self) -> None:
        """Free the weights and biases the ending segment loaded."""
        assert not self.unprogrammed, "a resident weight's MVM was never lowered"
        for state in self.segment_loads.values():
            if state.allocated:
                self.free(state)
        self.segment_loads = {}
        self.buffer.unhold()

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

    def staged_pins(self, mvms: Sequence[cim_tile.MVMOp]) -> dict[str, int]:
        """The first array of each weight the segment before staged in place
        (:meth:`prefetch`) that this segment computes with, resident."""
        pins: dict[str, int] = {}
        for mvm in mvms:
            alloc = mvm.alloc
            held = self.prefetched.get(mvm.weight.data)
            if held is None or alloc is None or held.arrays is None:
                continue
            if alloc.field("chunks") == 1:
                pins[mvm.weight.data] = held.arrays.ranges[0][0]
        return pins

    def lay_out(
        self,
        mvms: Sequence[cim_tile.MVMOp],
        buffers: Sequence[cim_tile.MemoryBufferOp],
        pins: dict[str, int],
    ) -> (
        tuple[
            list[tuple[cim_tile.MVMOp, list[cim_meta.ArrayRangesAttr]]],
            dict[cim_tile.BufferRole, tuple[cim_meta.ArrayRangesAttr, int]],
        ]
        | None
    ):
        """Arrays for the segment's resident weight copies, then its memory
        buffers, one after another from one end of the arrays outside the KV
        cache (:attr:`laid_down`: from the last array down, else from the
        first up): first the copies ``pins`` keeps where the segment before
        staged them (at that end: see :meth:`prefetch`), then every other
        copy, then the buffers, but a ``weights`` buffer at the far end when
        weights stage in place. Sets the free run left between. None when
        the pinned copies are not where this order puts them; a segment
        that does not fit is an error."""
        low, high = self.reserved, self.hw.total_arrays
        down = self.laid_down
        cursor = high if down else low

        def take(count: int, align: int) -> int:
            nonlocal cursor
            if down:
                cursor = (cursor - count) // align * align
                return cursor
            start = -(-cursor // align) * align
            cursor = start + count
            return start

        sized = {
            m.weight.data: plan_chunks(m.tiling, self.usable_arrays, self.hw)[0].arrays
            for m in mvms
            if m.weight.data in pins
        }
        for weight in sorted(pins, key=pins.__getitem__, reverse=down):
            if take(sized[weight], 1) != pins[weight]:
                return None
        placed: list[tuple[cim_tile.MVMOp, list[cim_meta.ArrayRangesAttr]]] = []
        for mvm in mvms:
            alloc = mvm.alloc
            assert alloc is not None
            if alloc.field("chunks") > 1:
                continue
            plan = plan_chunks(mvm.tiling, self.usable_arrays, self.hw)
            if len(plan) > 1:
                raise CimError(
                    f"weight '{mvm.weight.data}' needs {mvm.tiling.arrays_per_copy} "
                    f"arrays per copy, more than the {self.usable_arrays} of target "
                    f"'{self.hw.name}'{self.beside_kv_cache()}, but its allocation "
                    "does not stream it in chunks"
                )
            count = plan[0].arrays
            align = 1 if mvm.align is None else mvm.align.value.data
            starts = [pins[mvm.weight.data]] if mvm.weight.data in pins else []
            while len(starts) < alloc.field("copies"):
                starts.append(take(count, align))
            placed.append(
                (
                    mvm,
                    [
                        cim_meta.ArrayRangesAttr.from_ranges([(a, a + count)])
                        for a in starts
                    ],
                )
            )
        needed = high - cursor if down else cursor - low
        if needed > high - low:
            raise CimError(
                f"segment {self.segment} needs {needed} arrays"
                f"{self.beside_kv_cache()} but the target '{self.hw.name}' has "
                f"{self.hw.total_arrays}"
            )
        roles: dict[cim_tile.BufferRole, tuple[cim_meta.ArrayRangesAttr, int]] = {}
        far: tuple[int, int] | None = None
        for buffer in buffers:
            role = buffer.role.data
            count = buffer.arrays.value.data
            if role in roles:
                raise CimError(
                    f"segment {self.segment} declares two {role.value} memory buffers"
                )
            if role == cim_tile.BufferRole.WEIGHTS and stages_in_place(self.hw):
                first = low if down else high - count
                far = (first, first + count)
            else:
                first = take(count, 1)
            if first < low or first + count > min(
                self.hw.dual_mode.switchable_arrays, high
            ):
                raise CimError(
                    f"segment {self.segment} needs arrays up to "
                    f"{first + count if first >= low else high - first} but "
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
        free = (low, cursor) if down else (cursor, high)
        if far is not None:
            free = (far[1], free[1]) if down else (free[0], far[0])
        if free[0] > free[1]:
            raise CimError(
                f"segment {self.segment} needs {high - low + free[0] - free[1]} "
                f"arrays for its weights and memory buffers{self.beside_kv_cache()} "
                f"but target '{self.hw.name}' has {self.hw.total_arrays}"
            )
        self.free_array, self.free_stop = free
        return placed, roles

    def switch_in_place(
        self,
        mvm: cim_tile.MVMOp,
        copies: Sequence[cim_meta.ArrayRangesAttr],
        staged: TensorState,
    ) -> None:
        """A weight staged in place: its other copies are programmed from
        the staged arrays first, then those switch to compute mode with the
        weight in their cells (a program fed by its own cells)."""
        others: list[tuple[CopyLayout, SSAValue]] = []
        if len(copies) > 1:
            self.program_copies(mvm, copies[1:], staged)
            others = self.programmed[mvm]
        self.declare_weight(mvm)
        chunk = plan_chunks(mvm.tiling, self.usable_arrays, self.hw)[0]
        layout = copy_layout(self.hw, mvm.tiling, chunk, copies[0].ranges[0][0])
        token = self.program(
            mvm.weight.data,
            layout,
            self.deps(*staged.tokens(), *staged.readers, self.barrier),
            cim_meta.Feed.CELLS,
        )
        staged.allocated = False  # its cells are the weight's from now on
        self.memory_mode -= set(array_ids(copies[0]))
        self.programmed[mvm] = [(layout, token), *others]

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

    def dynamic_arrays(self) -> int:
        """Arrays an activation matmul may write in this segment: the free
        ones from ``free_array`` up to the first in memory mode or
        ``free_stop`` (shared, one after the other, with the weights the
        segment streams through them)."""
        stop = next(
            (
                a
                for a in range(self.free_array, self.free_stop)
                if a in self.memory_mode
            ),
            self.free_stop,
        )
        return stop - self.free_array
