"""Shared machinery of the replicating allocation strategies.

The PIMCOMP, CLSA-CIM and CIM-MLC passes differ only in a few decisions,
which they state as an :class:`AllocationPolicy`:

- how each weight copy is aligned (whole-core placement);
- the dataflow of a segment (``layer``, ``batch`` or ``rows``) and its blocks;
- how many copies each resident operator of a segment gets.

Everything else is common and lives here, so that every strategy produces
exactly what the lowering (``convert-tile-to-meta``) carries out:

- operators are packed into segments in program order while one copy of each
  fits the chip, counted as the lowering places them (copies one after
  another from array 0, each starting at a multiple of its ``align``); an
  operator larger than the chip streams its weight in chunks in a segment of
  its own (``chunks == len(plan_chunks(tiling, total arrays))``, as the static
  baseline does), so no model is ever refused;
- vector work takes the segment that is current when it runs;
- :func:`pipeline_rows` replays the lowering's blocking of a pipelined
  segment to learn how many steps each MVM runs in (each step split between
  all the copies: :func:`~cimflow.lowering.rules.banded_mvm_cycles`);
- every cost comes from :mod:`cimflow.cost_model` (:func:`layer_cycles`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation, SSAValue

from cimflow.analysis import blocking
from cimflow.analysis.blocking import BlockPlan, Layout
from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_graph import tensor_shape
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cost_model import replica_stream_cycles
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.rules import (
    banded_copies,
    banded_mvm_cycles,
    mvm_target,
    mvm_window,
    program_bytes,
    row_indices_of,
)
from cimflow.lowering.state import copy_local_bytes
from cimflow.passes.static_allocate import STRATEGY_ATTR


@dataclass
class Layer:
    """One resident MVM of a segment, with the numbers its cost needs."""

    op: cim_tile.MVMOp
    arrays: int
    """Arrays one copy occupies."""
    rows_used: int
    """Word lines each of its arrays uses (wordline passes)."""
    cols_used: int
    """Columns each of its arrays uses (ADC rounds)."""
    vectors: int
    """Input vectors of the whole operator."""
    align: int = 1
    """Each copy starts at a multiple of this many arrays."""
    weight_bytes: int = 0
    """Bytes of one copy's weight (what each extra copy streams in)."""
    steps: int = 1
    """Pipeline steps it runs in (1: whole), each step's vectors split
    between the copies."""
    copies: int = 1
    local_bytes: int = 0
    """Bytes a copy's busiest core reads from its local buffer per vector
    (:func:`~cimflow.lowering.state.copy_local_bytes`)."""

    def max_copies(self, hw: HardwareTarget) -> int:
        """Copies beyond this many never run (:func:`banded_copies`)."""
        return banded_copies(
            mvm_target(hw, self.op),
            self.vectors,
            self.steps,
            self.rows_used,
            self.cols_used,
        )


@dataclass
class Segment:
    """Operators whose weights are resident together, and how they run."""

    index: int
    layers: list[Layer] = field(default_factory=lambda: [])
    chunked: cim_tile.MVMOp | None = None
    """A weight larger than the chip, streamed alone in this segment."""
    kind: Dataflow = Dataflow.LAYER
    blocks: int = 1
    rows: list[int] = field(default_factory=lambda: [])
    """Feature-map rows (or sequence positions) of the operators its
    dataflow would block; none: nothing to pipeline by rows."""


class AllocationPolicy(Protocol):
    """The decisions that make one allocation strategy."""

    @property
    def strategy(self) -> str:
        """The name recorded in the module's ``cim_tile.strategy``."""
        ...

    def align(self, hw: HardwareTarget, arrays: int) -> int:
        """Alignment (in arrays) of each copy of a weight of ``arrays`` arrays."""
        ...

    def dataflow(self, hw: HardwareTarget, batch: int) -> Dataflow:
        """The dataflow of every segment for a model of ``batch`` samples."""
        ...

    def blocks(self, hw: HardwareTarget, segment: Segment, batch: int) -> int:
        """Pipeline blocks of a segment whose dataflow and rows are known."""
        ...

    def replicate(self, hw: HardwareTarget, segment: Segment) -> None:
        """Set ``copies`` of the segment's layers (one copy each fits)."""
        ...


# -- costs and placement ---------------------------------------------------


def layer_cycles(hw: HardwareTarget, layer: Layer, copies: int) -> int:
    """MVM cycles of ``layer`` with ``copies`` copies (:func:`banded_mvm_cycles`),
    and the time its extra copies take to stream their weights in: a copy
    is worth adding only if it saves more than that."""
    return banded_mvm_cycles(
        mvm_target(hw, layer.op),
        layer.vectors,
        layer.steps,
        copies,
        layer.rows_used,
        layer.cols_used,
        layer.local_bytes,
    ) + replica_stream_cycles(hw, copies, layer.weight_bytes)


def next_useful_copies(hw: HardwareTarget, layer: Layer, copies: int) -> int | None:
    """The fewest copies above ``copies`` that make ``layer`` faster, if any."""
    now = layer_cycles(hw, layer, copies)
    for more in range(copies + 1, layer.max_copies(hw) + 1):
        if layer_cycles(hw, layer, more) < now:
            return more
    return None


def place(start: int, arrays: int, align: int, copies: int) -> int:
    """Where the lowering's placement ends after ``copies`` copies of
    ``arrays`` arrays, each starting at a multiple of ``align``, from
    ``start``."""
    if copies < 1:
        return start
    first = -(-start // align) * align
    stride = -(-arrays // align) * align
    return first + (copies - 1) * stride + arrays


def placement_end(layers: Sequence[Layer]) -> int:
    """Arrays the lowering needs for ``layers`` and their copies, placed in
    program order from array 0."""
    end = 0
    for layer in layers:
        end = place(end, layer.arrays, layer.align, layer.copies)
    return end


def core_align(arrays: int, per_core: int) -> int:
    """An alignment that keeps every copy of ``arrays`` arrays inside one
    core of ``per_core`` arrays: the smallest divisor of ``per_core`` not
    below ``arrays``; 1 when a copy is larger than a core."""
    if arrays > per_core:
        return 1
    return next(d for d in range(arrays, per_core + 1) if per_core % d == 0)


# -- replication rules -------------------------------------------------------


def balance(hw: HardwareTarget, segment: Segment, stop_at_bottleneck: bool) -> None:
    """Give copies, one layer at a time, to the layer with the most MVM cycles.

    A layer gets the fewest extra copies that make it faster, if they fit
    the chip with everything else placed. With ``stop_at_bottleneck``
    (PIMCOMP's balance) replication ends as soon as the slowest layer cannot
    be made faster; otherwise (a greedy fill) that layer is set aside and
    the next slowest one is tried, until no layer can take another copy.
    """
    total = hw.total_arrays
    layers = segment.layers
    heap = [
        (-layer_cycles(hw, layer, layer.copies), i) for i, layer in enumerate(layers)
    ]
    heapq.heapify(heap)
    while heap:
        _, index = heapq.heappop(heap)
        layer = layers[index]
        more = next_useful_copies(hw, layer, layer.copies)
        if more is not None:
            previous = layer.copies
            layer.copies = more
            if placement_end(layers) <= total:
                heapq.heappush(heap, (-layer_cycles(hw, layer, more), index))
                continue
            layer.copies = previous
        if stop_at_bottleneck:
            return


Choice = tuple[int, int, int]
"""(copies, cost in budget units, MVM cycles) of one layer."""


def min_total_cycles(choices: Sequence[Sequence[Choice]], budget: int) -> list[int]:
    """Copies per layer minimizing the sum of cycles within ``budget`` units.

    A knapsack over the layers (CIM-MLC's duplication dynamic program):
    ``choices[i]`` lists the layer's options, the first one costing nothing.
    Among equal sums the fewest units win.
    """
    best = [0] * (budget + 1)
    picks: list[list[int]] = []
    for options in choices:
        row = [0] * (budget + 1)
        nxt = [0] * (budget + 1)
        for units in range(budget + 1):
            value: int | None = None
            for index, (_, cost, cycles) in enumerate(options):
                if cost > units:
                    continue
                candidate = best[units - cost] + cycles
                if value is None or candidate < value:
                    value, row[units] = candidate, index
            assert value is not None, "the first choice must cost nothing"
            nxt[units] = value
        best = nxt
        picks.append(row)
    units = min(u for u in range(budget + 1) if best[u] == best[budget])
    chosen = [0] * len(choices)
    for layer in range(len(choices) - 1, -1, -1):
        index = picks[layer][units]
        chosen[layer] = choices[layer][index][0]
        units -= choices[layer][index][1]
    return chosen


def useful_choices(
    hw: HardwareTarget,
    layer: Layer,
    cost: Callable[[int], int],
    budget: int,
) -> list[Choice]:
    """The copy counts of ``layer`` that make it faster, with their cost."""
    options: list[Choice] = [(1, 0, layer_cycles(hw, layer, 1))]
    copies = next_useful_copies(hw, layer, 1)
    while copies is not None and cost(copies) <= budget:
        options.append((copies, cost(copies), layer_cycles(hw, layer, copies)))
        copies = next_useful_copies(hw, layer, copies)
    return options


# -- segments and pipelines --------------------------------------------------


def segment_of(op: Operation) -> int | None:
    """The segment an allocated MVM or vector op runs in (None: not known
    from the op itself)."""
    if isinstance(op, cim_tile.MVMOp) and op.alloc is not None:
        return op.alloc.field("segment")
    if isinstance(op, cim_tile.VectorOp) and op.segment is not None:
        return op.segment.value.data
    return None


def batch_size(function: func.FuncOp) -> int:
    """Samples per run: the first input's leading dimension (as the lowering)."""
    args = function.body.block.args
    if args and tensor_shape(args[0]):
        return max(1, tensor_shape(args[0])[0])
    return 1


def pipeline_plans(
    function: func.FuncOp,
    kind_of: Callable[[int], Dataflow],
    batch: int,
    streamed: Callable[[cim_tile.MVMOp], bool] | None = None,
) -> dict[Operation, BlockPlan]:
    """How every operator a pipelined segment blocks runs, replaying the
    lowering: an operator takes the segment current when it runs
    (``kind_of(segment)`` its dataflow), and its inputs' layouts decide
    whether it is blocked (:func:`blocking.plan`); ``streamed`` says which
    MVMs stream their weight (default: as their allocation says)."""
    layouts: dict[SSAValue, Layout | None] = {}
    blocked: dict[Operation, BlockPlan] = {}
    current = 0
    for op in function.body.block.ops:
        segment = segment_of(op)
        if segment is not None:
            current = segment
        if not isinstance(
            op,
            cim_tile.MVMOp | cim_tile.Im2ColOp | cim_tile.Col2ImOp | cim_tile.VectorOp,
        ):
            continue
        kind = kind_of(current)
        plan = None
        if kind != Dataflow.LAYER:
            plan = blocking.plan(
                op,
                [layouts.get(v) for v in op.operands],
                kind,
                batch,
                None
                if streamed is None or not isinstance(op, cim_tile.MVMOp)
                else streamed(op),
            )
        for result in op.results:
            layouts[result] = None if plan is None else plan.output
        if plan is not None:
            blocked[op] = plan
    return blocked


def pipeline_layouts(
    function: func.FuncOp, kinds: dict[int, Dataflow], batch: int
) -> dict[Operation, Layout]:
    """The output layout of every operator a pipelined segment blocks
    (segments missing from ``kinds`` run in ``layer`` dataflow)."""
    plans = pipeline_plans(
        function, lambda segment: kinds.get(segment, Dataflow.LAYER), batch
    )
    return {op: plan.output for op, plan in plans.items()}


def feature_rows(op: Operation, layout: Layout) -> int | None:
    """Rows of a feature map or sequence a blocked operator works on: an
    im2col's output rows, or the blocked axis of a tensor of rank 3 or more
    (a 2-D ``[vectors x features]`` band is a run of vectors, not rows)."""
    if isinstance(op, cim_tile.Im2ColOp) or len(tensor_shape(op.results[0])) >= 3:
        return layout.rows
    return None


def _layer(hw: HardwareTarget, policy: AllocationPolicy, op: cim_tile.MVMOp) -> Layer:
    chunk = plan_chunks(op.tiling, hw.total_arrays, hw)[0]
    return Layer(
        op,
        chunk.arrays,
        chunk.rows,
        chunk.cols,
        op.vectors,
        policy.align(hw, chunk.arrays),
        program_bytes(hw, chunk, row_indices=row_indices_of(op)),
        local_bytes=copy_local_bytes(hw, op, chunk, mvm_window(op)),
    )


def pack_segments(
    hw: HardwareTarget, policy: AllocationPolicy, mvms: Sequence[cim_tile.MVMOp]
) -> list[Segment]:
    """Operators in program order, packed while one copy of each fits; a
    weight larger than the chip gets a segment of its own."""
    segments: list[Segment] = []
    for op in mvms:
        if len(plan_chunks(op.tiling, hw.total_arrays, hw)) > 1:
            segments.append(Segment(len(segments), chunked=op))
            continue
        layer = _layer(hw, policy, op)
        last = segments[-1] if segments else None
        if (
            last is None
            or last.chunked is not None
            or placement_end([*last.layers, layer]) > hw.total_arrays
        ):
            last = Segment(len(segments))
            segments.append(last)
        last.layers.append(layer)
    return segments


def _write_alloc(hw: HardwareTarget, segment: Segment) -> None:
    if segment.chunked is not None:
        chunks = len(plan_chunks(segment.chunked.tiling, hw.total_arrays, hw))
        segment.chunked.alloc = cim_tile.AllocAttr.from_ints(segment.index, 1, chunks)
        segment.chunked.align = None
    for layer in segment.layers:
        layer.op.alloc = cim_tile.AllocAttr.from_ints(segment.index, layer.copies, 1)
        layer.op.align = None if layer.align <= 1 else IntegerAttr(layer.align, i64)


def _assign_vector_segments(function: func.FuncOp) -> None:
    current = 0
    for op in function.body.block.ops:
        if isinstance(op, cim_tile.MVMOp) and op.alloc is not None:
            current = op.alloc.field("segment")
        elif isinstance(op, cim_tile.VectorOp):
            op.segment = IntegerAttr(current, i64)


def _write_dataflows(function: func.FuncOp, segments: Sequence[Segment]) -> None:
    block = function.body.block
    for op in list(block.ops):
        if isinstance(op, cim_tile.DataflowOp):
            op.detach()
            op.erase()
    declarations = [
        cim_tile.DataflowOp(
            s.index, s.kind, s.blocks if s.kind != Dataflow.LAYER else 1
        )
        for s in segments
    ]
    first = block.first_op
    if first is None:
        block.add_ops(declarations)
    else:
        block.insert_ops_before(declarations, first)


def _collect_rows(
    function: func.FuncOp, segments: Sequence[Segment], layouts: dict[Operation, Layout]
) -> None:
    by_index = {segment.index: segment for segment in segments}
    current = 0
    for op in function.body.block.ops:
        segment = segment_of(op)
        current = current if segment is None else segment
        rows = feature_rows(op, layouts[op]) if op in layouts else None
        if rows is not None and current in by_index:
            by_index[current].rows.append(rows)


def _choose_dataflow(
    hw: HardwareTarget,
    policy: AllocationPolicy,
    segment: Segment,
    kind: Dataflow,
    batch: int,
) -> None:
    """The policy's dataflow, or ``layer`` when it has nothing to pipeline:
    one block, or (``rows``) no feature-map rows or sequence positions."""
    segment.kind, segment.blocks = Dataflow.LAYER, 1
    if kind == Dataflow.LAYER or (kind == Dataflow.ROWS and not segment.rows):
        return
    segment.kind = kind
    blocks = policy.blocks(hw, segment, batch)
    if blocks < 2:
        segment.kind = Dataflow.LAYER
    else:
        segment.blocks = blocks


def _allocate_function(
    hw: HardwareTarget, policy: AllocationPolicy, function: func.FuncOp
) -> list[Segment]:
    mvms = [op for op in function.walk() if isinstance(op, cim_tile.MVMOp)]
    segments = pack_segments(hw, policy, mvms)
    for segment in segments:
        _write_alloc(hw, segment)
    _assign_vector_segments(function)
    batch = batch_size(function)
    kind = policy.dataflow(hw, batch)
    layouts = pipeline_layouts(function, {s.index: kind for s in segments}, batch)
    _collect_rows(function, segments, layouts)
    for segment in segments:
        _choose_dataflow(hw, policy, segment, kind, batch)
    chosen = {s.index: s.kind for s in segments}
    layouts = pipeline_layouts(function, chosen, batch)
    for segment in segments:
        for layer in segment.layers:
            if segment.kind != Dataflow.LAYER and layer.op in layouts:
                rows = layouts[layer.op].rows
                layer.steps = len(blocking.bands(rows, segment.blocks))
        if segment.layers:
            policy.replicate(hw, segment)
            for layer in segment.layers:
                layer.copies = max(1, min(layer.copies, layer.max_copies(hw)))
            assert placement_end(segment.layers) <= hw.total_arrays
        _write_alloc(hw, segment)
    _write_dataflows(function, segments)
    return segments


def allocate(
    module: ModuleOp, hw: HardwareTarget, policy: AllocationPolicy
) -> list[Segment]:
    """Run ``policy`` on every function of ``module``; record the strategy."""
    segments: list[Segment] = []
    for op in module.ops:
        if isinstance(op, func.FuncOp):
            segments += _allocate_function(hw, policy, op)
    module.attributes[STRATEGY_ATTR] = StringAttr(policy.strategy)
    return segments
