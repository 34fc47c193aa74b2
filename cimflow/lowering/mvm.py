"""MVMs: each copy's share of the vectors staged or streamed through its
arrays, partial sums and biases added on the cores' vector units, and
weights streamed through the free arrays in chunks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from xdsl.dialects.builtin import BoolAttr, StringAttr
from xdsl.ir import Attribute, SSAValue

from cimflow.analysis.blocking import Band, BlockPlan, skip_band
from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import i64_array, tensor_shape
from cimflow.cost_model import (
    interconnect_cost,
    local_read_cycles,
    mvm_cycles,
    stream_bytes,
)
from cimflow.errors import CimError
from cimflow.lowering.allocator import SpaceAllocator
from cimflow.lowering.arrays import ArrayPlacement
from cimflow.lowering.placement import (
    Location,
    Produced,
    TensorState,
)
from cimflow.lowering.rules import (
    Span,
    Window,
    finishing_ops,
    held_input_scale,
    mvm_band_groups,
    mvm_target,
    residual_of,
    split_span,
    written_block_elements,
    written_outputs,
)
from cimflow.lowering.state import (
    ChunkStream,
    CopyLayout,
    FusedResidual,
    HeldBias,
    MvmFeed,
    alternates_for,
    array_ids,
    chunk_add_bytes,
    chunk_adds,
    chunk_ends,
    chunk_out_bytes,
    chunk_part_count,
    chunk_stream,
    columns_bias_bytes,
    copy_layout,
    core_ranges,
    keeps_bias,
    kept_bias_bytes,
    mvm_feed,
    partial_parts,
    partials_fit,
)

MAX_PIECES = 128
"""Most pieces a copy's share of an MVM is staged in (each one more op to
simulate); a share that would need more streams instead."""


_TRUE = BoolAttr.from_bool(True)


def held_name(bias: str, cores: cim_meta.CoreRangesAttr) -> str:
    """The local allocation holding ``bias`` in ``cores``."""
    return f"{bias}@" + ",".join(f"{first}:{stop}" for first, stop in cores.ranges)


def copy_key(mvm: cim_tile.MVMOp, layout: CopyLayout) -> tuple[str, int]:
    """One copy of an MVM's weight: the weight and the copy's first array
    (what its line buffers are recorded under)."""
    return mvm.weight.data, layout.arrays.ranges[0][0]


def _in_buffer(state: TensorState) -> TensorState:
    """``state`` as seen while it passes through the global buffer."""
    return TensorState(state.name, state.nbytes, Location.BUFFER)


class MvmLowering(ArrayPlacement):
    """MVMs on resident copies and streamed chunks."""

    def window_of(self, name: str) -> Window | None:
        return self.windows.get(name)

    def feed(
        self,
        layout: CopyLayout,
        span: Span,
        window: Window | None,
        previous: Span | None = None,
    ) -> MvmFeed:
        """What one copy's vectors ``span`` move and compute (rules), right
        after the same cores computed ``previous``."""
        return mvm_feed(
            self.hw,
            layout,
            span,
            window,
            previous,
            self.input_scale,
            self.output_scale,
            self.misaligned,
        )

    def line_buffer(
        self, mvm: cim_tile.MVMOp, layout: CopyLayout, span: Span
    ) -> Span | None:
        """The vectors ``layout``'s cores computed just before ``span`` (their
        window rows are still in the line buffers), recording ``span``."""
        key = copy_key(mvm, layout)
        previous = self.computed_last.get(key)
        self.computed_last[key] = span
        if previous is None or previous[1] != span[0]:
            return None
        return previous

    def lower_mvm(self, mvm: cim_tile.MVMOp) -> None:
        alloc = mvm.alloc
        assert alloc is not None
        self.input_scale = held_input_scale(mvm)
        self.output_scale = mvm.output_scale
        self.misaligned = mvm.misaligned_columns is not None
        self.declare_weight(mvm)
        self.program_on_first_use(mvm)
        self.lowering_weight = mvm.weight.data
        in_name = self.names[mvm.input]
        source = self.state(in_name)
        window = self.window_of(in_name)
        out_name = self.declare(mvm.output)
        plan = self.step_plan(mvm)
        staged = None
        if alloc.field("chunks") > 1 and window is None and plan is None:
            staged = self.stage_input(source)
            source = source if staged is None else staged
        steps = self.steps(plan)
        ring = self.plan_ring(mvm.output, plan, steps)
        (target,), allocs, after = self.place([out_name], [mvm.output], ring)
        ringed = out_name in self.rings
        in_parts = not ringed and self.writes_in_parts([target], allocs, len(steps))
        opened = (
            None
            if in_parts or ringed
            else self.open_output(
                target, allocs, [*after, *source.tokens(self.first_needs(plan, 0))]
            )
        )
        vectors = mvm.vectors
        produced: list[Produced] = []
        tensors = (in_name, out_name)
        residual = residual_of(mvm)
        if residual is not None and residual.skip in self.names:
            skip = self.names[residual.skip]
            rows, columns = tensor_shape(mvm.output)
            self.residual = FusedResidual(
                out_name, (rows, columns), self.state(skip), residual.layout
            )
            self.fused_adds[residual.add] = (mvm.output, residual.skip)
        for index, band in enumerate(steps):
            if plan is None or band is None:
                span, needed = (0, vectors), None
            else:
                span, needed = plan.output.elements(band), plan.needs(0, band)
            if in_parts:
                opened = self.open_part(target, span, vectors)
            elif ringed:
                opened = self.ring_slot(target, index)
            if self.residual is not None:
                self.residual.tokens = self.residual.skip.tokens(
                    self.skip_rows(self.residual.skip.name, plan, band)
                )
            block = None if band is None else (0, *span)
            ready = self.deps(*source.tokens(needed), opened)
            if alloc.field("chunks") > 1:
                finished = self.run_chunks(mvm, tensors, source, target, window, ready)
            else:
                finished = self.run_copies(
                    mvm,
                    self.band_copies(mvm, index, len(steps)),
                    (tensors, source, target),
                    window,
                    ready,
                    span,
                    block,
                )
            produced += [(band, token) for token in finished]
            if ringed:
                self.rings[out_name].band_of.update(dict.fromkeys(finished, index))
        if staged is not None:
            self.staged_input = self.free(staged)
        self.release_biases()
        self.residual = None
        self.input_scale = None
        self.output_scale = None
        self.misaligned = False
        target.ready = produced
        self.layouts[out_name] = None if plan is None else plan.output

    def skip_rows(
        self, skip: str, plan: BlockPlan | None, band: Band | None
    ) -> Band | None:
        """The rows of a fused residual's skip that the accumulations of
        output rows ``band`` add (None: all; :func:`skip_band`)."""
        if plan is None or band is None:
            return None
        return skip_band(self.layouts.get(skip), plan.output, band)

    def band_copies(
        self, mvm: cim_tile.MVMOp, index: int, steps: int
    ) -> list[tuple[CopyLayout, SSAValue]]:
        """The copies that run band ``index`` of the ``steps`` bands of
        ``mvm`` (a whole MVM is one band): the band's group
        (:func:`~cimflow.lowering.rules.mvm_band_groups`)."""
        copies = self.programmed[mvm]
        chunk = copies[0][0].chunk
        size, count = mvm_band_groups(
            mvm_target(self.hw, mvm),
            len(copies),
            mvm.vectors,
            steps,
            chunk.rows,
            chunk.cols,
        )
        first = (index % count) * size
        return copies[first : first + size]

    def run_copies(
        self,
        mvm: cim_tile.MVMOp,
        copies: Sequence[tuple[CopyLayout, SSAValue]],
        places: tuple[tuple[str, str], TensorState, TensorState],
        window: Window | None,
        ready: Sequence[SSAValue],
        span: Span,
        block: tuple[int, int, int] | None,
    ) -> list[SSAValue]:
        """``span``'s vectors, split between ``copies`` (resident copies of
        the weight); copies in the same cores share what is staged there."""
        tensors, source, target = places
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
                mvm, group, tensors, source, target, window, ready, block, finished
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
        block: tuple[int, int, int] | None,
        finished: list[SSAValue],
    ) -> bool:
        """Copies in the same cores staged together: each piece's band moves
        in once and every copy computes its part of the piece from it.
        False (nothing emitted) when the group's share streams instead."""
        layout, program, _ = group[0]
        span = (group[0][2][0], group[-1][2][1])
        pieces = self.pieces(
            mvm,
            layout,
            span,
            window,
            source,
            target,
            self.local_room(mvm, layout),
            block,
        )
        if pieces is None:
            return False
        finished += self.stage_pieces(
            mvm,
            (layout, program),
            tensors,
            (source, target),
            window,
            ready,
            split_span(span, pieces),
            self.line_buffer(mvm, layout, span),
            block,
            group=group,
        )
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
        before = self.line_buffer(mvm, layout, span)
        pieces = self.pieces(
            mvm,
            layout,
            span,
            window,
            source,
            target,
            self.local_room(mvm, layout, sharing),
            block,
            before,
        )
        if pieces is None:
            feed = self.feed(layout, span, window, before)
            if not layout.cross_core:
                in_core = feed.local_adds + self.finishing_adds(bias, layout, span)
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
        return self.stage_pieces(
            mvm,
            (layout, program),
            tensors,
            (source, target),
            window,
            ready,
            split_span(span, pieces),
            before,
            block,
        )

    def stage_pieces(
        self,
        mvm: cim_tile.MVMOp,
        copy: tuple[CopyLayout, SSAValue],
        tensors: tuple[str, str],
        places: tuple[TensorState, TensorState],
        window: Window | None,
        ready: Sequence[SSAValue],
        pieces: Sequence[Span],
        before: Span | None,
        block: tuple[int, int, int] | None = None,
        group: Sequence[tuple[CopyLayout, SSAValue, Span]] | None = None,
    ) -> list[SSAValue]:
        """``pieces`` of a copy's share staged one after the other, each
        moving in only the rows the one before did not (``before``: what
        the cores computed just before the first); with ``group``, copies in
        the same cores each compute their part of every piece."""
        layout, program = copy
        source, target = places
        bias = self.bias_of(mvm, layout)
        staged: list[SSAValue] = []
        for previous, piece in zip([before, *pieces], pieces, strict=False):
            workers = None
            if group is not None:
                parts = split_span(piece, len(group))
                workers = [
                    (worker, worker_program, part)
                    for (worker, worker_program, _), part in zip(
                        group, parts, strict=False
                    )
                ]
            staged.append(
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
                    workers,
                    window,
                )
            )
        return staged

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
        whole = self.feed(layout, span, window).out_bytes
        count = partial_parts(whole, span[1] - span[0], self.buffer.available)
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

    def local_space(self, core: int, weight: str) -> SpaceAllocator[SSAValue]:
        """The part of ``core``'s local buffer that ``weight``'s pieces use."""
        parts = self.local_parts.get(core, frozenset())
        key = (core, weight if weight in parts else "")
        space = self.local.get(key)
        if space is None:
            space = SpaceAllocator[SSAValue](
                self.hw.buffers.local_bytes // max(1, len(parts)),
                fresh_after=list(self.local_after.get(core, [])),
            )
            self.local[key] = space
        return space

    def local_room(
        self, mvm: cim_tile.MVMOp, layout: CopyLayout, sharing: int = 1
    ) -> int:
        """Bytes a piece of ``layout`` may take in each of its cores' local
        buffers: half of the weight's part (the next piece moves in while
        one computes) beside the bias its accumulations keep there
        (:meth:`hold_bias`), shared by the ``sharing`` copies of it there."""
        part = min(
            self.local_space(core, mvm.weight.data).capacity for core in layout.cores
        )
        if mvm.bias is not None:
            part -= kept_bias_bytes(
                part, columns_bias_bytes(self.hw, mvm.tiling, 0, mvm.output_scale)
            )
        return part // (2 * max(1, sharing))

    def pieces(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        span: Span,
        window: Window | None,
        source: TensorState,
        target: TensorState,
        room: int,
        block: tuple[int, int, int] | None = None,
        before: Span | None = None,
    ) -> int | None:
        """How a copy's share is fed. None: streamed as it computes, when the
        interconnect is its bottleneck anyway (holding the path costs
        nothing then) or when staging would need more than
        :data:`MAX_PIECES` pieces (or, for a window, pieces of less than an
        output row). Else the fewest near-equal pieces whose
        input and outputs fit ``room`` bytes of every core's local
        buffer (its share of half of it; half, so the
        next piece moves in while one computes), and whose input and outputs
        passing through the global buffer (when they live elsewhere) fit
        half of what it has free. A pipeline step's share (``block``) of an
        input made in bands streams when that input lives elsewhere."""
        whole = self.feed(layout, span, window, before)
        cores = tuple((c, c + 1) for c in layout.cores)
        levels = stream_bytes(
            "buffer", whole.in_bytes, "buffer", whole.out_bytes, in_links=whole.in_links
        )
        transfer = interconnect_cost(
            self.hw, levels.interconnect, cores, levels.links
        ).cycles
        chunk = layout.chunk
        compute = max(
            mvm_cycles(
                mvm_target(self.hw, mvm), span[1] - span[0], chunk.rows, chunk.cols
            ),
            local_read_cycles(self.hw, whole.expanded),
        )
        if transfer >= compute:
            return None
        passing = self.buffer.available // 2
        through_in = source.where()[0] != Location.BUFFER
        pipelined = block is not None and any(
            band is not None for band, _ in source.owner.ready
        )
        if through_in and pipelined:
            return None  # a step reads rows made in steps; loads move whole tensors
        through_out = target.level != Location.BUFFER
        most = MAX_PIECES
        if window is not None:  # whole output rows: a line buffer streams rows
            most = min(most, max(1, (span[1] - span[0]) // window.output_hw[1]))
        count = 1
        while count <= most:
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
        """The bias the accumulations of ``layout``'s columns read: the
        segment loads the whole bias once, and a streamed chunk's
        accumulations read its own columns' part of it."""
        if mvm.bias is None:
            return None
        columns = layout.chunk.n1 - layout.chunk.n0
        scale = mvm.output_scale
        whole = self.segment_weight(
            mvm.bias.data, columns_bias_bytes(self.hw, mvm.tiling, 0, scale)
        )
        read = columns_bias_bytes(self.hw, mvm.tiling, columns, scale)
        if read == whole.nbytes:
            return whole
        level, arrays = whole.where()
        return TensorState(
            whole.name, read, level, arrays, ready=list(whole.ready), root=whole
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
            rows_per_pass=mvm.chosen_rows_per_pass,
            zero_shares=mvm.zero_shares,
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
        feed: MvmFeed,
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
                # streamed from where the input lives, so at least a byte
                # (feed local would claim a move staged it)
                in_bytes=max(1, feed.in_bytes),
                in_link_bytes=feed.in_links,
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
        self.staged_last[copy_key(mvm, layout)] = token
        return token

    def stage_mvm(
        self,
        mvm: cim_tile.MVMOp,
        layout: CopyLayout,
        program: SSAValue,
        tensors: tuple[str, str],
        source: TensorState,
        target: TensorState,
        feed: MvmFeed,
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
            after += (
                self.local_space(core, mvm.weight.data).allocate(staged, per_core).after
            )
        cores = core_ranges(layout.cores)
        passing_in = (
            self.pass_through(in_name, source, feed.in_bytes, ready, f"{staged}@in")
            if feed.in_bytes
            else []
        )
        staging = cim_meta.AllocAttr.get(
            staged, per_core * len(layout.cores), Location.LOCAL, cores
        )
        copy = copy_key(mvm, layout)
        if feed.in_bytes:
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
                    allocs=[staging],
                    link_bytes=feed.in_links,
                )
            )
            self.staged_last[copy] = moved
        else:  # the line buffers hold every input row: nothing moves
            moved = self.emit(
                cim_meta.SegmentOp(
                    self.segment,
                    self.deps(*ready, *after, self.staged_last[copy]),
                    label=f"allocate {staged}",
                    allocs=[staging],
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
            in_core = part_feed.local_adds + self.finishing_adds(bias, worker, part)
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
            self.local_space(core, mvm.weight.data).release(
                staged, freed, self.expected[freed]
            )
        return last

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

    def partials_home(
        self, place: str, nbytes: int, target: TensorState, room_for: int = 0
    ) -> tuple[TensorState, tuple[cim_meta.AllocAttr, list[SSAValue]] | None]:
        """Where partial sums (or a running sum) of ``target`` wait for the
        vector units: a passing allocation of the global buffer when they
        (and ``room_for`` bytes more) fit half of what is free there, else
        DRAM."""
        if partials_fit(nbytes, room_for, self.buffer.available):
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
        outputs = (span[1] - span[0]) * (layout.chunk.n1 - layout.chunk.n0)
        written = written_outputs(outputs, self.output_scale)
        return max(1, written * self.hw.activation_bytes)

    def add_partials(
        self,
        layout: CopyLayout,
        out_name: str,
        target: TensorState,
        feed: MvmFeed,
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
        extra = feed.accumulate + feed.local_adds
        extra += self.finishing_adds(bias, layout, span)
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

    def finishing_adds(
        self, bias: TensorState | None, layout: CopyLayout, span: Span
    ) -> int:
        """Additions that finish a copy's outputs of vectors ``span``: the
        bias and a fused residual, one per output each
        (:func:`~cimflow.lowering.rules.finishing_ops`)."""
        outputs = (span[1] - span[0]) * (layout.chunk.n1 - layout.chunk.n0)
        adds = (bias is not None) + (self.residual is not None)
        return finishing_ops(outputs, adds, self.output_scale)

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
        vectors: Span | None = None,
    ) -> SSAValue:
        """Add partial sums (``partial_bytes`` of them streamed in from where
        the output lives, or ``partials_at``; 0: they are in the cores) and
        the bias on the vector units of ``cores``, streaming ``out_bytes`` of
        results out (``running``: into a sum more partial sums join later;
        ``vectors``: of those vectors of ``block`` only)."""
        inputs = [out_name]
        tokens = list(deps)
        states: list[TensorState] = [partials_at or target] if partial_bytes else []
        in_bytes = partial_bytes
        params: dict[str, Attribute] = {"running": _TRUE} if running else {}
        if vectors is not None:
            params["vectors"] = i64_array(vectors)
        held: list[HeldBias] = []
        if bias is not None:
            inputs.append(bias.name)
            held = self.hold_bias(bias, cores)
            if held:
                tokens += [holder.moved for holder in held]
            else:
                tokens += bias.tokens()
                states.append(bias)
                in_bytes += bias.nbytes
        residual = self.residual
        if residual is not None and not running and residual.output == out_name:
            inputs.append(residual.skip.name)
            tokens += residual.tokens
            states.append(residual.skip)
            skip = written_block_elements(
                residual.shape, block, self.output_scale, vectors
            )
            in_bytes += skip * self.hw.activation_bytes
            params["residual"] = StringAttr(residual.layout)
        in_level, in_arrays = (
            self.stream_level(states) if states else (Location.BUFFER, None)
        )
        if "residual" in params and residual is not None:
            skip = residual.skip
            if in_level == Location.DRAM and skip.where()[0] != Location.DRAM:
                # the rest streams from DRAM: so does a copy of the skip
                residual.skip = self.copy_to_dram(skip)
                residual.tokens = residual.skip.tokens()
                tokens += residual.tokens
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
            params=params or None,
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
        for holder in held:
            holder.readers.append(token)
        if bias is not None:
            self.read(bias, token)
        if "residual" in params and residual is not None:
            self.read(residual.skip, token)
        return token

    def hold_bias(
        self, bias: TensorState, cores: cim_meta.CoreRangesAttr
    ) -> list[HeldBias]:
        """The bias of the MVM being lowered kept in the local buffers of
        ``cores`` (whose vector units add it) until the MVM's end, as a
        core keeps what it reuses: moved in from where it lives once, at
        its first accumulation on them, into those of the cores that do not
        keep it yet (another copy's accumulations brought it to the
        others). Empty (read by each accumulation) for a part of a bias (a
        streamed chunk's columns), or where what a core keeps would pass a
        quarter of its part of the local buffer (the pieces staged there
        take at most half of it at once)."""
        if bias.where()[0] != Location.BUFFER:
            return []
        holders = {
            core: held
            for held in self.held_biases.values()
            if held.bias == bias.name
            for core in held.core_ids
        }
        ids = array_ids(cores)
        missing = [core for core in ids if core not in holders]
        spaces = [self.local_space(core, self.lowering_weight) for core in missing]
        whole = bias.root is None
        for core, space in zip(missing, spaces, strict=True):
            kept = sum(
                other.nbytes
                for other in self.held_biases.values()
                if core in other.core_ids
            )
            if not keeps_bias(space.capacity, kept, bias.nbytes, whole):
                return []
            if not space.fits(bias.nbytes):
                return []
        if missing:
            moved_to = core_ranges(missing)
            name = held_name(bias.name, moved_to)
            after: list[SSAValue] = []
            for space in spaces:
                after += space.allocate(name, bias.nbytes).after
            moved = self.emit(
                cim_meta.MoveOp(
                    bias.name,
                    bias.nbytes,
                    self.deps(*bias.tokens(), *after),
                    self.segment,
                    label=name,
                    direction=cim_meta.MoveDirection.IN,
                    cores=moved_to,
                    allocs=[
                        cim_meta.AllocAttr.get(
                            name, bias.nbytes * len(missing), Location.LOCAL, moved_to
                        )
                    ],
                )
            )
            self.read(bias, moved)
            held = HeldBias(bias.name, moved_to, bias.nbytes, moved)
            self.held_biases[name] = held
            holders.update(dict.fromkeys(missing, held))
        return list({id(holders[core]): holders[core] for core in ids}.values())

    def release_biases(self) -> None:
        """Free the biases the MVM just lowered kept in local buffers."""
        for name, held in self.held_biases.items():
            freed = self.emit(
                cim_meta.FreeOp(
                    [cim_meta.PlaceAttr.get(name, Location.LOCAL, held.cores)],
                    held.readers,
                    self.segment,
                    label=name,
                )
            )
            for core in held.core_ids:
                self.local_space(core, self.lowering_weight).release(
                    name, freed, self.expected[freed]
                )
        self.held_biases = {}

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
        another: program (from its half of the ``chunks`` buffer, else
        straight from DRAM: one burst per chunk, not parts through the small
        global buffer, each paying DRAM's latency), then compute every
        vector, streaming input and partial outputs."""
        alloc = mvm.alloc
        assert alloc is not None
        weight = mvm.weight.data
        available = self.free_stop - self.free_array
        if available < 1:
            raise CimError(
                f"weight '{weight}' streams through the free arrays of segment "
                f"{self.segment}, but its arrays and buffers"
                f"{self.beside_kv_cache()} leave none of the {self.hw.total_arrays}"
            )
        alternates = alternates_for(
            self.hw, mvm.tiling, available, alloc.field("chunks")
        )
        if alternates is None or (alternates and self.chunk_buffer is not None):
            whole = len(plan_chunks(mvm.tiling, available, self.hw))
            raise CimError(
                f"weight '{weight}' takes {whole} chunks on the "
                f"{available} free arrays of segment {self.segment}, but its "
                f"allocation says {alloc.field('chunks')}"
            )
        stream = chunk_stream(
            self.hw, mvm.tiling, self.free_array, self.free_stop, alternates
        )
        chunks = list(stream.chunks)
        prefetched: dict[int, tuple[cim_meta.ArrayRangesAttr, SSAValue]] = {}
        programs: dict[int, SSAValue] = {}

        def program_chunk(
            index: int, layout: CopyLayout, previous: SSAValue | None
        ) -> SSAValue:
            # previous: the end of the chunk whose arrays this one takes
            if index in prefetched:
                half, token = prefetched[index]
                program = self.program(
                    weight,
                    layout,
                    self.deps(token, previous, self.to_compute, *self.dynamic_busy),
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
            else:  # one burst from DRAM, in DRAM order with the stream's loads
                after = (
                    previous,
                    self.to_compute,
                    *self.dynamic_busy,
                    *self.stream_loads[-1:],
                )
                program = self.program(
                    weight,
                    layout,
                    self.deps(*after)
                    if previous is not None
                    else self.arrays_free(layout.arrays, *after),
                    cim_meta.Feed.DRAM,
                )
                self.stream_loads.append(program)
            programs[index] = program
            if index + 1 < len(chunks):  # after this chunk's program: DRAM order
                self.prefetch_chunk(weight, chunks, index + 1, prefetched, programs)
            return program

        finished, self.streamed_busy = self.compute_chunks(
            mvm, stream, program_chunk, tensors, (source, target), window, ready
        )
        return finished

    def compute_chunks(
        self,
        mvm: cim_tile.MVMOp,
        stream: ChunkStream,
        program_chunk: Callable[[int, CopyLayout, SSAValue | None], SSAValue],
        tensors: tuple[str, str],
        places: tuple[TensorState, TensorState],
        window: Window | None,
        ready: Sequence[SSAValue],
    ) -> tuple[list[SSAValue], list[SSAValue]]:
        """Chunks of ``mvm``'s weight one after another on the free arrays:
        ``program_chunk`` writes a chunk once the chunk before it on its
        arrays is done (:meth:`ChunkStream.reuses`), then every vector
        streams through it; partial sums of chunks over the same columns add
        up on the chunk's cores. Returns the ops that finish the outputs,
        and the end of the last chunk on each run of arrays."""
        source, target = places
        previous: SSAValue | None = None
        finished: list[SSAValue] = []
        span = (0, mvm.vectors)
        finishing = (mvm.bias is not None) + (self.residual is not None)
        chunks = stream.chunks
        ends = chunk_ends(chunks)
        chunk_end: list[SSAValue] = []
        for index, chunk in enumerate(chunks):
            if index:
                assert previous is not None
                chunk_end.append(previous)
            layout = copy_layout(self.hw, mvm.tiling, chunk, stream.starts[index])
            reused = stream.reuses(index)
            program = program_chunk(
                index, layout, None if reused is None else chunk_end[reused]
            )
            feed = self.feed(layout, span, window)
            columns = (chunk.n0, chunk.n1)
            first, last = ends[index]
            bias = self.bias_of(mvm, layout) if last else None
            outputs = (span[1] - span[0]) * (chunk.n1 - chunk.n0)
            adds = chunk_adds(
                chunk,
                span[1] - span[0],
                first,
                last,
                finishing,
                self.output_scale,
                self.misaligned,
            )
            streamed = chunk_out_bytes(
                self.hw, layout, span[1] - span[0], first, last, adds, self.output_scale
            )
            if first and last and not (adds and layout.cross_core):
                # whole columns: final, or finished by the cores' own adds
                previous = self.stream_mvm(
                    mvm,
                    layout,
                    program,
                    tensors,
                    source,
                    target,
                    feed,
                    ready,
                    span,
                    streamed,
                )
                if adds:
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
            if first and last:  # whole columns whose cores' partial sums meet
                added = self.chunk_parts(
                    mvm,
                    (layout, program),
                    (*tensors, f"{tensors[1]}@chunk{index}"),
                    places,
                    window,
                    ready,
                    (span, columns),
                    streamed,
                    (bias, finishing),
                )
                finished += added
                previous = added[-1]
                continue
            place = f"{tensors[1]}@chunk{index}"
            group = self.running_sums.get(f"{tensors[1]}@sum{chunk.n0}")
            if group is not None and group.level == Location.DRAM:
                home, passing = group, None
            else:  # the first chunk over these columns leaves room for their sum
                wide = outputs * self.hw.accumulator_bytes
                home, passing = self.partials_home(
                    place, streamed, target, wide if first and not last else 0
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
                streamed,
                passing,
            )
            previous = self.add_chunk(
                tensors[1],
                (target, home),
                layout,
                bias,
                adds,
                previous,
                streamed,
                (columns, first, last),
                outputs,
            )
            if passing is not None:
                self.release_passing(place, [previous])
            if last:
                finished.append(previous)
        assert previous is not None
        chunk_end.append(previous)
        last_on = {
            start: end for start, end in zip(stream.starts, chunk_end, strict=True)
        }
        return finished, list(last_on.values())

    def chunk_parts(
        self,
        mvm: cim_tile.MVMOp,
        copy: tuple[CopyLayout, SSAValue],
        names: tuple[str, str, str],
        places: tuple[TensorState, TensorState],
        window: Window | None,
        ready: Sequence[SSAValue],
        extent: tuple[Span, Span],
        streamed: int,
        finishing: tuple[TensorState | None, int],
    ) -> list[SSAValue]:
        """A chunk that alone covers its columns, whose cores each hold some
        of their row tiles: the vectors go in the parts
        (:func:`~cimflow.lowering.state.chunk_part_count`) whose partial sums
        (``streamed`` bytes for all of them) wait in the global buffer, each
        part's MVM after the one before and each part added (with the bias
        and a fused residual) on the chunk's cores as soon as it is out, as
        :meth:`stream_partials` does for a resident copy (``names``: input,
        output, and the partial sums' allocation). Returns the additions."""
        layout, program = copy
        tensors = names[:2]
        source, target = places
        span, columns = extent
        bias, adds_per_output = finishing
        chunk = layout.chunk
        parts = split_span(
            span, chunk_part_count(streamed, span[1] - span[0], self.buffer.available)
        )
        whole = len(parts) == 1
        after: list[SSAValue] = list(ready)
        previous: Span | None = None
        added: list[SSAValue] = []
        for part in parts:
            vectors = part[1] - part[0]
            feed = self.feed(layout, part, window, previous)
            previous = part
            adds = chunk_adds(
                chunk,
                vectors,
                True,
                True,
                adds_per_output,
                self.output_scale,
                self.misaligned,
            )
            partials = chunk_out_bytes(
                self.hw, layout, vectors, True, True, adds, self.output_scale
            )
            place = names[2] + ("" if whole else f"[{part[0]}]")
            home, passing = self.partials_home(place, partials, target)
            computed = self.stream_mvm(
                mvm,
                layout,
                program,
                tensors,
                source,
                home,
                feed,
                after,
                part,
                partials,
                passing,
            )
            after = [*ready, computed]
            added.append(
                self.add_chunk(
                    tensors[1],
                    (target, home),
                    layout,
                    bias,
                    adds,
                    computed,
                    partials,
                    (columns, True, True),
                    vectors * (chunk.n1 - chunk.n0),
                    None if whole else part,
                )
            )
            if passing is not None:
                self.release_passing(place, added[-1:])
        return added

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
        vectors: Span | None = None,
    ) -> SSAValue:
        """A chunk's partial sums (where ``places`` says: the output's home,
        then theirs) added on its cores' vector units: to each other, to
        the sum of the chunks before it over the same columns (kept at the
        accumulator width, in the global buffer when it fits, until the last
        of them), and the bias, with the last chunk writing the finished
        outputs (of ``vectors`` only, when given: a part of them)."""
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
        # the bias and a fused residual: vector_accumulate adds their bytes
        partial_bytes, out_bytes = chunk_add_bytes(
            self.hw, outputs, partials, (first, last, False), 0, self.output_scale
        )
        before = [] if first else [self.summed.pop(running)]
        token = self.vector_accumulate(
            out_name,
            bias,
            adds,
            core_ranges(layout.cores),
            [computed, *held, *before],
            (1, *columns),
            partial_bytes,
            out_bytes,
            target if last else sum_at,
            partials_at,
            running=not last,
            allocs=allocs,
            vectors=vectors,
        )
        if not last:
            self.summed[running] = token
        if last and not first:
            home = self.running_sums.pop(running)
            if home.level == Location.BUFFER:
                self.release_passing(running, [token])
        return token
