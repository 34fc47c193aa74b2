"""Pipelined segments: how a tensor splits into row blocks, and which rows of
its inputs each block of an operator needs.

In a segment whose ``cim_tile.dataflow`` is ``batch`` or ``rows``, every
blockable operator runs as several steps, one per band of rows of its output,
and each step waits only for the producer steps that hold the rows it reads.
That is what makes PIMCOMP's pipelines and CLSA-CIM's cross-layer scheduling
real in the trace.

A tensor's ``Layout`` says along which axis it is cut and how many elements
of that axis make one row: samples along axis 0 (``batch``); feature-map rows
along H of NCHW tensors, ``OW`` MVM vectors per output row of a convolution,
or sequence positions (``rows``). An operator is blocked when the rows of its
output map to rows of its inputs (elementwise work, windows along H,
projections, normalizations over other axes, transposes and reshapes that
keep rows whole); otherwise it runs whole, after all of its inputs' steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import AnyFloat
from xdsl.ir import Operation

from cimflow.cimdialect import cim_graph, cim_tile
from cimflow.cimdialect.cim_graph import ints, tensor_shape
from cimflow.cimdialect.cim_tile import Dataflow

Band = tuple[int, int]
"""A ``[start, stop)`` range of rows."""


@dataclass(frozen=True)
class Layout:
    """A tensor cut into ``rows`` rows of ``unit`` elements along ``axis``."""

    axis: int
    unit: int
    rows: int

    def elements(self, band: Band) -> tuple[int, int]:
        """The element range of ``band`` along the axis."""
        return band[0] * self.unit, band[1] * self.unit


Needs = Callable[[int, Band], Band | None]
"""For an output band: the rows of input ``i`` it reads (None: all of them)."""


@dataclass(frozen=True)
class BlockPlan:
    """How an operator runs in a pipelined segment."""

    output: Layout
    needs: Needs


def skip_band(skip: Layout | None, output: Layout, band: Band) -> Band | None:
    """The rows of a fused residual's skip that an MVM's accumulations of
    output rows ``band`` add (None: all of it): the same rows, when the
    skip is cut into rows like the output (an elementwise add's rule)."""
    return band if skip is not None and skip.rows == output.rows else None


def bands(rows: int, blocks: int) -> list[Band]:
    """``rows`` split into at most ``blocks`` nearly equal, non-empty bands."""
    count = max(1, min(blocks, rows))
    cuts = [r * rows // count for r in range(count + 1)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


def _window(band: Band, stride: int, pad_begin: int, span: int, size: int) -> Band:
    """Input rows that output rows ``band`` of a window op read."""
    first = max(0, band[0] * stride - pad_begin)
    last = min(size, (band[1] - 1) * stride - pad_begin + span)
    return first, max(first + 1, last)


def _same(layout: Layout | None, output: Layout) -> bool:
    return layout is not None and layout.rows == output.rows


def _elementwise(
    inputs: Sequence[Layout | None],
    shapes: Sequence[Sequence[int]],
    out_shape: Sequence[int],
) -> BlockPlan | None:
    """Outputs whose rows are the rows of equally laid-out inputs."""
    rank = len(out_shape)
    output: Layout | None = None
    aligned: list[Layout | None] = []
    for layout, shape in zip(inputs, shapes, strict=True):
        shift = rank - len(shape)
        if layout is None or shape[layout.axis] != out_shape[layout.axis + shift]:
            aligned.append(None)
            continue
        moved = Layout(layout.axis + shift, layout.unit, layout.rows)
        aligned.append(moved)
        output = output or moved
    if output is None:
        return None
    result = output

    def needs(index: int, band: Band) -> Band | None:
        return band if _same(aligned[index], result) else None

    return BlockPlan(result, needs)


def _fresh(out_shape: Sequence[int], kind: Dataflow, batch: int) -> Layout | None:
    """The layout a blocked operator with whole inputs gives its output."""
    if not out_shape:
        return None
    if kind == Dataflow.BATCH:
        if out_shape[0] % batch or out_shape[0] < batch:
            return None
        return Layout(0, out_shape[0] // batch, batch)
    axis = {4: 2, 3: 1, 2: 0}.get(len(out_shape))
    if axis is None or out_shape[axis] < 2 or math.prod(out_shape[:axis]) != 1:
        return None
    return Layout(axis, 1, out_shape[axis])


def _reshape(
    layout: Layout, in_shape: Sequence[int], out_shape: Sequence[int]
) -> Layout | None:
    """Rows survive a reshape when they are contiguous slabs on both sides."""
    if math.prod(in_shape[: layout.axis]) != 1:
        return None
    slab = layout.unit * math.prod(in_shape[layout.axis + 1 :])
    for axis, size in enumerate(out_shape):
        if math.prod(out_shape[:axis]) != 1:
            break
        inner = math.prod(out_shape[axis + 1 :])
        if slab % inner == 0 and size % (slab // inner) == 0:
            unit = slab // inner
            if size // unit == layout.rows:
                return Layout(axis, unit, layout.rows)
    return None


def _payload_plan(
    payload: Operation,
    inputs: Sequence[Layout | None],
    shapes: Sequence[Sequence[int]],
    out_shape: Sequence[int],
) -> BlockPlan | None:
    primary = inputs[0] if inputs else None
    if isinstance(payload, cim_graph.ReshapeOp):
        if primary is None:
            return None
        layout = _reshape(primary, shapes[0], out_shape)
        return None if layout is None else BlockPlan(layout, lambda _i, band: band)
    if isinstance(payload, cim_graph.TransposeOp):
        if primary is None:
            return None
        axis = list(ints(payload.perm)).index(primary.axis)
        return BlockPlan(Layout(axis, primary.unit, primary.rows), lambda _i, b: b)
    if isinstance(payload, cim_graph.PoolOp | cim_graph.PadOp):
        if primary is None or primary.axis != 2 or primary.unit != 1:
            return None
        if isinstance(payload, cim_graph.PoolOp):
            kernel, stride = ints(payload.kernel)[0], ints(payload.strides)[0]
            pad = ints(payload.pads)[0]
        else:
            pads = ints(payload.pads)
            if pads[0] or pads[len(shapes[0])]:
                return None
            kernel, stride, pad = 1, 1, pads[2]
        size = shapes[0][2]
        output = Layout(2, 1, out_shape[2])
        return BlockPlan(
            output,
            lambda index, band: (
                _window(band, stride, pad, kernel, size) if index == 0 else None
            ),
        )
    if isinstance(payload, cim_graph.MatMulOp):
        lhs = primary
        if lhs is None:
            return None
        if lhs.axis == len(shapes[0]) - 2:
            output = Layout(
                lhs.axis + len(out_shape) - len(shapes[0]), lhs.unit, lhs.rows
            )
            return BlockPlan(output, lambda index, band: band if index == 0 else None)
        return _elementwise(inputs, [s[:-2] for s in shapes], out_shape[:-2])
    blocked_axes = {layout.axis for layout in inputs if layout is not None}
    if isinstance(payload, cim_graph.SoftmaxOp):
        axis = payload.axis.value.data % len(out_shape)
        if axis in blocked_axes:
            return None
    elif isinstance(payload, cim_graph.LayerNormOp | cim_graph.RMSNormOp):
        axis = payload.axis.value.data % len(out_shape)
        if any(a >= axis for a in blocked_axes):
            return None
    elif isinstance(payload, cim_graph.ReduceOp):
        if payload.keepdims is None or set(ints(payload.axes)) & blocked_axes:
            return None
    elif isinstance(payload, cim_graph.ConcatOp | cim_graph.SplitOp):
        if payload.axis.value.data in blocked_axes:
            return None
    elif isinstance(payload, cim_graph.SliceOp):
        starts, ends, steps = (
            ints(payload.starts),
            ints(payload.ends),
            ints(payload.steps),
        )
        for axis in blocked_axes:
            if (starts[axis], ends[axis], steps[axis]) != (0, shapes[0][axis], 1):
                return None
    elif isinstance(payload, cim_graph.GatherOp):
        if primary is not None:
            return None
        indices = inputs[1]
        if indices is None:
            return None
        axis = payload.axis.value.data + indices.axis
        output = Layout(axis, indices.unit, indices.rows)
        return BlockPlan(output, lambda index, band: band if index == 1 else None)
    elif isinstance(payload, cim_graph.GlobalPoolOp):
        return None
    return _elementwise(inputs, shapes, out_shape)


def plan(
    op: Operation,
    inputs: Sequence[Layout | None],
    kind: Dataflow,
    batch: int,
    streamed: bool | None = None,
) -> BlockPlan | None:
    """How ``op`` runs in a segment pipelined by ``kind``; None: whole.

    ``inputs`` are the layouts of its operands (None for whole tensors).
    Operators that produce non-float data (masks, indices) always run whole,
    and so does an MVM whose weight streams in chunks (``streamed``; None:
    as its allocation says, whole when it has none).
    """
    results = list(op.results)
    if not results:
        return None
    out_shape = tensor_shape(results[0])
    element = cim_graph.element_type(results[0])
    if not isinstance(element, AnyFloat):
        return None
    shapes = [tensor_shape(v) for v in op.operands]
    if isinstance(op, cim_tile.Im2ColOp):
        source = inputs[0]
        oh, ow = op.output_spatial()
        if kind == Dataflow.ROWS and shapes[0][0] != 1:
            return None  # rows of several samples are not one band of vectors
        output = (
            Layout(0, ow, oh)
            if kind == Dataflow.ROWS
            else _fresh(out_shape, kind, batch)
        )
        if output is None:
            return None
        if kind == Dataflow.BATCH:
            return BlockPlan(
                output, lambda _i, band: band if _same(source, output) else None
            )
        if source is None or source.axis != 2:
            return BlockPlan(output, lambda _i, _band: None)
        kernel, stride = ints(op.kernel)[0], ints(op.strides)[0]
        span = ints(op.dilations)[0] * (kernel - 1) + 1
        pad, size = ints(op.pads)[0], shapes[0][2]
        return BlockPlan(
            output, lambda _i, band: _window(band, stride, pad, span, size)
        )
    if isinstance(op, cim_tile.Col2ImOp):
        source = inputs[0]
        if source is None or source.axis != 0:
            return None
        if kind == Dataflow.BATCH:
            return BlockPlan(Layout(0, 1, source.rows), lambda _i, band: band)
        if (out_shape[0], out_shape[2], out_shape[3]) != (1, source.rows, source.unit):
            return None  # the vectors' rows are not the output's rows
        return BlockPlan(Layout(2, 1, source.rows), lambda _i, band: band)
    if isinstance(op, cim_tile.MVMOp):
        if streamed is None:
            streamed = op.alloc is None or op.alloc.field("chunks") > 1
        if streamed:
            return None
        source = inputs[0]
        output = source if source is not None else _fresh(out_shape, kind, batch)
        if output is None:
            return None
        return BlockPlan(output, lambda _i, band: band if source is not None else None)
    if isinstance(op, cim_tile.VectorOp):
        payload = op.payload
        if kind == Dataflow.BATCH:
            return _batch_plan(payload, inputs, shapes, out_shape, batch)
        blocked = _payload_plan(payload, inputs, shapes, out_shape)
        if blocked is not None:
            return blocked
        if all(layout is None for layout in inputs):
            fresh = _fresh(out_shape, kind, batch)
            if fresh is not None and _elementwise_kind(payload):
                return BlockPlan(fresh, lambda _i, _band: None)
    return None


def _elementwise_kind(payload: Operation) -> bool:
    return isinstance(
        payload,
        cim_graph.UnaryOp
        | cim_graph.BinaryOp
        | cim_graph.WhereOp
        | cim_graph.ClipOp
        | cim_graph.CastOp,
    )


def _batch_plan(
    payload: Operation,
    inputs: Sequence[Layout | None],
    shapes: Sequence[Sequence[int]],
    out_shape: Sequence[int],
    batch: int,
) -> BlockPlan | None:
    """Samples stay apart unless the operator works across axis 0."""
    if isinstance(payload, cim_graph.TransposeOp) and ints(payload.perm)[0] != 0:
        return None
    if isinstance(payload, cim_graph.ReduceOp) and 0 in ints(payload.axes):
        return None
    if (
        isinstance(payload, cim_graph.ConcatOp | cim_graph.SplitOp | cim_graph.GatherOp)
        and payload.axis.value.data == 0
    ):
        return None
    if (
        isinstance(payload, cim_graph.SoftmaxOp)
        and payload.axis.value.data % len(out_shape) == 0
    ):
        return None
    if isinstance(payload, cim_graph.LayerNormOp | cim_graph.RMSNormOp) and (
        payload.axis.value.data % len(out_shape) == 0
    ):
        return None
    if isinstance(payload, cim_graph.SliceOp) and (
        ints(payload.starts)[0],
        ints(payload.ends)[0],
        ints(payload.steps)[0],
    ) != (0, shapes[0][0], 1):
        return None
    if isinstance(payload, cim_graph.PadOp) and (
        ints(payload.pads)[0] or ints(payload.pads)[len(shapes[0])]
    ):
        return None
    output = _fresh(out_shape, Dataflow.BATCH, batch)
    if output is None:
        return None
    sample_inputs = [
        layout is not None and shape and shape[0] % batch == 0 and shape[0] >= batch
        for layout, shape in zip(inputs, shapes, strict=True)
    ]
    result = output

    def needs(index: int, band: Band) -> Band | None:
        return band if sample_inputs[index] else None

    return BlockPlan(result, needs)
