"""Weight streaming: weights programmed into arrays from the global buffer,
memory-mode arrays or DRAM, and prefetched for the next segment or chunk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.ir import SSAValue

from cimflow.analysis.tile_mapping import Chunk, column_run, plan_chunks
from cimflow.cimdialect import cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import ints
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.buffers import BufferPlacement
from cimflow.lowering.placement import (
    Location,
    TensorState,
)
from cimflow.lowering.rules import (
    NO_ROW_INDICES,
    merge_spans,
    program_bytes,
    staged_in_place,
)
from cimflow.lowering.state import (
    CopyLayout,
    copy_layout,
)

PROGRAM_BURST_CYCLES = 40_000
"""Most cycles one burst programming a resident weight straight from DRAM
holds the DRAM channel: a longer weight goes in parts (:func:`program_parts`
of ``PROGRAM_BURST_CYCLES x`` the DRAM's bytes per cycle), each its own burst
in DRAM order, so that the loads other layers of a pipelined segment wait
for get the channel between them. On ``pimcomp_default`` ResNet-18
``clsa-cim`` takes 2.58 ms with whole weights (a 4.7 MB burst holds the
channel for 184 000 cycles), 2.40 ms with 1 MB parts; ResNet-50 is 1.3%
slower with 300 KB parts, and parts of 40 KB make ``dynaplasia`` ResNet-18
``pimcomp-ll`` 3.6% slower (each pays the DRAM latency)."""


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
    if chunk.columns:
        return _ragged_parts(tiling, chunk, room, hw)
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


def _ragged_parts(
    tiling: cim_tile.TilingAttr, chunk: Chunk, room: int, hw: HardwareTarget
) -> list[tuple[int, Chunk]]:
    """:func:`program_parts` of a chunk whose column tiles hold different
    rows: consecutive whole column tiles while their bytes fit ``room``, a
    column tile larger than it one array at a time."""
    rows, outputs = tiling.field("rows"), tiling.outputs_per_array
    cells = chunk.rows, chunk.cols
    parts: list[tuple[int, Chunk]] = []
    offset, size = 0, 0
    pending: list[tuple[int, int]] = []  # (rows held, outputs)
    first = 0  # the column tile pending starts at

    def flush() -> None:
        nonlocal offset
        if pending:
            part = column_run(pending, 0, chunk.n0 + first * outputs, rows, cells)
            parts.append((offset, part))
            offset += part.arrays
            pending.clear()

    for column, (held, width) in enumerate(chunk.columns):
        column_bytes = held * width * hw.weight_bytes
        if column_bytes > room or size + column_bytes > room:
            flush()
            size = 0
        if column_bytes > room:
            n0 = chunk.n0 + column * outputs
            for r0 in range(0, held, rows):
                r1 = min(held, r0 + rows)
                parts.append((offset, Chunk(r0, r1, n0, n0 + width, 1, *cells, 1)))
                offset += 1
            continue
        if not pending:
            first = column
        pending.append((held, width))
        size += column_bytes
    flush()
    return parts


def copies_arrays(layouts: Sequence[CopyLayout]) -> cim_meta.ArrayRangesAttr:
    """The arrays of every one of ``layouts`` (copies of one chunk, each on
    its own run of arrays), in id order."""
    return cim_meta.ArrayRangesAttr.from_ranges(
        merge_spans(r for c in layouts for r in c.arrays.ranges)
    )


class WeightStreaming(BufferPlacement):
    """Weights loaded, programmed and prefetched."""

    def weight_bytes(self, weight: str, chunk: Chunk) -> int:
        """Bytes of ``chunk`` of ``weight`` in DRAM and on the way to its
        arrays: its values and, compacted, its held rows' indices."""
        return program_bytes(
            self.hw, chunk, row_indices=self.row_indices.get(weight, NO_ROW_INDICES)
        )

    def declare_weight(self, mvm: cim_tile.MVMOp) -> None:
        weight = mvm.weight.data
        held = mvm.tiling.field("k")
        mapping = (
            mvm.layout.data,
            mvm.tiling.field("groups"),
            mvm.reduction,
            mvm.outputs_per_group,
            0 if held == mvm.reduction else held,
            mvm.row_group,
            0 if mvm.driven == mvm.reduction else mvm.driven,
            0 if mvm.rows_per_index == 1 else mvm.rows_per_index,
            0 if mvm.columns_from is None else mvm.tiling.field("n"),
            tuple(ints(mvm.tiling.column_row_tiles)),
        )
        declared = self.declared_weights.get(weight)
        if declared is None:
            self.declared_weights[weight] = mapping
            self.decls.append(cim_meta.WeightDeclOp(weight, *mapping))
        elif declared != mapping:
            raise CimError(
                f"weight '{weight}' is used as two different matrices (layout, "
                f"groups, k, n, rows held, row group, rows driven, rows per index, "
                f"columns held, row tiles per column tile) = "
                f"{declared} and "
                f"{mapping}"
            )

    def program_copies(
        self,
        mvm: cim_tile.MVMOp,
        copies: Sequence[cim_meta.ArrayRangesAttr],
        source: TensorState | None = None,
    ) -> None:
        """Program every copy of a resident weight, streaming it from
        ``source`` (memory-mode arrays that prefetched it, or the global
        buffer it was read out to); else one copy straight from DRAM
        (:meth:`program_from_dram`: it needs no room in the buffer, so it
        never waits for activations to leave), several from the global
        buffer (one load from DRAM for all copies) when it fits there, else
        part by part through it (each part read from DRAM once for all
        copies; :meth:`load_weight`)."""
        self.declare_weight(mvm)
        weight = mvm.weight.data
        chunk = plan_chunks(mvm.tiling, self.usable_arrays, self.hw)[0]
        nbytes = self.weight_bytes(weight, chunk)
        layouts = [
            copy_layout(self.hw, mvm.tiling, chunk, arrays.ranges[0][0])
            for arrays in copies
        ]
        staged = source
        if staged is None and len(copies) == 1:
            self.programmed[mvm] = [
                (layouts[0], self.program_from_dram(weight, mvm.tiling, layouts[0]))
            ]
            return
        if staged is None:
            staged = self.load_weight(weight, nbytes)
        if staged.where()[0] == Location.DRAM:
            tokens = self.program_through_buffer(weight, mvm.tiling, layouts)
            self.programmed[mvm] = list(zip(layouts, tokens, strict=True))
            return
        level, arrays = staged.where()
        feed = (
            cim_meta.Feed.BUFFER if level == Location.BUFFER else cim_meta.Feed.MEMORY
        )
        tokens = self.program_each(
            weight,
            layouts,
            [*staged.tokens(), self.to_compute],
            feed,
            arrays if level == Location.MEMORY else None,
        )
        for token in dict.fromkeys(tokens):
            self.read(staged, token)
        if staged is not source and staged.allocated:
            self.free(staged)
        self.programmed[mvm] = list(zip(layouts, tokens, strict=True))

    def program(
        self,
        weight: str,
        layout: CopyLayout,
        deps: Sequence[SSAValue],
        feed: cim_meta.Feed,
        feed_arrays: cim_meta.ArrayRangesAttr | None = None,
        source: cim_meta.ProgramSource = cim_meta.ProgramSource.WEIGHT,
        copies: Sequence[CopyLayout] = (),
    ) -> SSAValue:
        """Write a chunk of ``weight`` (or, with ``source`` tensor, of an
        activation tensor) into its arrays, streaming its values from
        ``feed`` at the weight (or activation) width; with ``copies`` (laid
        out as ``layout``, on a target that multicasts) into theirs too, the
        values read once."""
        chunk = layout.chunk
        arrays = copies_arrays((layout, *copies)) if copies else layout.arrays
        if feed == cim_meta.Feed.CELLS:
            in_bytes = 0
        else:
            in_bytes = (
                program_bytes(self.hw, chunk, activation=True)
                if source == cim_meta.ProgramSource.TENSOR
                else self.weight_bytes(weight, chunk)
            )
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
                source=source,
                feed=feed,
                in_bytes=in_bytes,
                feed_arrays=feed_arrays,
                copies=1 + len(copies),
            )
        )

    def program_each(
        self,
        weight: str,
        layouts: Sequence[CopyLayout],
        waits: Sequence[SSAValue | None],
        feed: cim_meta.Feed,
        feed_arrays: cim_meta.ArrayRangesAttr | None = None,
    ) -> list[SSAValue]:
        """Program a chunk of ``weight`` into every one of ``layouts`` (copies
        placed alike, in array order), each once its arrays are free and
        ``waits`` are done; returns, per layout, the op that programs it.
        Where the interconnect multicasts, one program writes them all once
        all their arrays are free, its values read once; else one each."""
        if len(layouts) > 1 and self.hw.interconnect.multicast:
            first, *rest = layouts
            token = self.program(
                weight,
                first,
                self.arrays_free(copies_arrays(layouts), *waits),
                feed,
                feed_arrays,
                copies=rest,
            )
            return [token] * len(layouts)
        return [
            self.program(
                weight,
                layout,
                self.arrays_free(layout.arrays, *waits),
                feed,
                feed_arrays,
            )
            for layout in layouts
        ]

    def program_from_dram(
        self, weight: str, tiling: cim_tile.TilingAttr, layout: CopyLayout
    ) -> SSAValue:
        """Program the one copy of a resident weight straight from DRAM, in
        bursts of at most :data:`PROGRAM_BURST_CYCLES` of the channel, in
        DRAM order with the segment's other streamed transfers, once the
        arrays are free. Returns the op after which it is programmed."""
        room = int(PROGRAM_BURST_CYCLES * self.hw.dram.bandwidth_bytes_per_cycle)
        bursts: list[SSAValue] = []
        for offset, part in program_parts(tiling, layout.chunk, room, self.hw):
            piece = copy_layout(
                self.hw, tiling, part, layout.arrays.ranges[0][0] + offset
            )
            burst = self.program(
                weight,
                piece,
                self.arrays_free(
                    piece.arrays, self.to_compute, *self.stream_loads[-1:]
                ),
                cim_meta.Feed.DRAM,
            )
            self.stream_loads.append(burst)
            bursts.append(burst)
        return self.programmed_after(weight, bursts)

    def programmed_after(self, weight: str, parts: Sequence[SSAValue]) -> SSAValue:
        """The op after which every part of a copy of ``weight`` is on its
        arrays: the one part, or a barrier joining them."""
        if len(parts) == 1:
            return parts[0]
        return self.emit(
            cim_meta.SegmentOp(self.segment, parts, label=f"programmed {weight}")
        )

    def program_through_buffer(
        self,
        weight: str,
        tiling: cim_tile.TilingAttr,
        layouts: Sequence[CopyLayout],
    ) -> list[SSAValue]:
        """Program copies of a placed chunk from DRAM: part by part (whole
        column tiles, or single arrays), each loaded into the global buffer
        once and streamed from there to every copy's arrays once they are
        free (:meth:`arrays_free`); the loads wait only for room in the
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
            nbytes = self.weight_bytes(weight, part)
            if nbytes > self.buffer.available:
                programs = self.program_each(
                    weight, pieces, [self.to_compute], cim_meta.Feed.DRAM
                )
                for done, program in zip(tokens, programs, strict=True):
                    done.append(program)
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
            programs = self.program_each(
                weight, pieces, [load, self.to_compute], cim_meta.Feed.BUFFER
            )
            self.release_passing(place, list(dict.fromkeys(programs)))
            for done, program in zip(tokens, programs, strict=True):
                done.append(program)
        return [self.programmed_after(weight, done) for done in tokens]

    def segment_weight(self, name: str, nbytes: int) -> TensorState:
        """A weight or bias the segment's vector work reads, loaded once
        (:meth:`load_weight`)."""
        state = self.segment_loads.get(name)
        if state is None:
            state = self.load_weight(name, nbytes)
            self.segment_loads[name] = state
        return state

    def load_weight(self, name: str, nbytes: int) -> TensorState:
        """A weight or bias of this segment loaded into the global buffer
        (when it fits): the load waits for its bytes and the start of the
        segment before, not for that segment's end, so it comes in while
        the segment before computes; what programs it waits only for the
        last users of its arrays."""
        return self.load_to_buffer(name, nbytes, [self.barrier_before])

    def prefetch(
        self,
        next_mvms: Sequence[cim_tile.MVMOp],
        buffer: tuple[cim_meta.ArrayRangesAttr, int],
        switched: SSAValue | None,
    ) -> None:
        """Stage the next segment's resident weights in this segment's
        ``weights`` buffer while it computes: one copy of each that fits, on
        whole arrays in the layout compute mode reads
        (:func:`~cimflow.lowering.rules.staged_in_place`), so that the next
        segment computes on those arrays after a switch in place."""
        arrays, capacity = buffer
        first, stop = arrays.ranges[0]
        per_array = self.hw.dual_mode.memory_capacity_bytes
        room = min(stop - first, capacity // per_array if per_array else 0)
        chunks: dict[str, Chunk] = {}
        streams = False
        for mvm in next_mvms:
            if mvm.alloc is None:
                continue
            if mvm.alloc.field("chunks") > 1:
                streams = True
                continue
            chunks.setdefault(
                mvm.weight.data, plan_chunks(mvm.tiling, self.usable_arrays, self.hw)[0]
            )
        offsets = staged_in_place(
            self.hw, room, [(w, c.arrays) for w, c in chunks.items()], streams
        )
        upcoming: dict[str, TensorState] = {}
        for weight, offset in offsets.items():
            chunk = chunks[weight]
            nbytes = self.weight_bytes(weight, chunk)
            # the next segment places its arrays from this buffer's end
            start = first + offset if self.laid_down else stop - offset - chunk.arrays
            staged = cim_meta.ArrayRangesAttr.from_ranges(
                [(start, start + chunk.arrays)]
            )
            token = self.emit(
                cim_meta.LoadOp(
                    weight,
                    nbytes,
                    Location.DRAM,
                    Location.MEMORY,
                    self.deps(switched, self.barrier, *self.stream_loads[-1:]),
                    self.segment,
                    arrays=staged,
                    label=weight,
                    allocs=[
                        cim_meta.AllocAttr.get(weight, nbytes, Location.MEMORY, staged)
                    ],
                )
            )
            state = TensorState(weight, nbytes, Location.MEMORY, staged)
            state.ready, state.allocated = [(None, token)], True
            upcoming[weight] = state
        self.prefetched = upcoming

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
        nbytes = self.weight_bytes(weight, chunk)
        if nbytes > half * self.hw.dual_mode.memory_capacity_bytes:
            return
        start = first + (index % 2) * half
        arrays = cim_meta.ArrayRangesAttr.from_ranges([(start, start + half)])
        load = self.emit(
            cim_meta.LoadOp(
                weight,
                nbytes,
                Location.DRAM,
                Location.MEMORY,
                self.deps(self.barrier, self.to_memory, programs.get(index - 2)),
                self.segment,
                arrays=arrays,
                label=weight,
                allocs=[
                    cim_meta.AllocAttr.get(weight, nbytes, Location.MEMORY, arrays)
                ],
            )
        )
        self.stream_loads.append(load)
        prefetched[index] = (arrays, load)
