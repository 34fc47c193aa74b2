"""Parameters of imported ONNX nodes that older opsets give as attributes and
newer ones as constant inputs (axes, slice bounds, split sizes)."""

from __future__ import annotations

from collections.abc import Sequence

from onnx import NodeProto

from cimflow.frontend.common import Array, attr_int, attr_ints

Inputs = Sequence[Array | None]
"""A node's inputs: the value of each constant one, None for the others."""


def _ints(value: Array | None) -> list[int] | None:
    return None if value is None else [int(v) for v in value.reshape(-1)]


def slice_bounds(dim: int, start: int, end: int) -> tuple[int, int]:
    """ONNX ``Slice`` clamping of one axis for a positive step."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    start = min(max(start, 0), dim)
    end = min(max(end, 0), dim)
    return start, max(start, end)


def slice_params(
    node: NodeProto, inputs: Inputs, opset: int, shape: Sequence[int]
) -> tuple[list[int], list[int], list[int]] | None:
    """Full-rank ``(starts, ends, steps)`` of a Slice; None when not constant.

    Raises ValueError for a non-positive step.
    """
    if opset >= 10:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 else None
        steps = _ints(inputs[4]) if len(inputs) > 4 else None
    else:
        starts, ends = attr_ints(node, "starts"), attr_ints(node, "ends")
        axes, steps = attr_ints(node, "axes"), None
    if starts is None or ends is None:
        return None
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    full_starts, full_ends, full_steps = [0] * rank, list(shape), [1] * rank
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        axis = axis + rank if axis < 0 else axis
        if step <= 0:
            raise ValueError(f"step {step}")
        full_starts[axis], full_ends[axis] = slice_bounds(shape[axis], start, end)
        full_steps[axis] = step
    return full_starts, full_ends, full_steps


def split_sizes(
    node: NodeProto, inputs: Inputs, opset: int, dim: int, outputs: int
) -> list[int] | None:
    """Piece sizes of a Split along a dimension of length ``dim``."""
    sizes = _ints(inputs[1]) if opset >= 13 and len(inputs) > 1 else None
    if opset < 13:
        sizes = attr_ints(node, "split")
    if sizes:
        return sizes
    if opset >= 13 and len(inputs) > 1 and inputs[1] is None and node.input[1]:
        return None
    count = attr_int(node, "num_outputs", outputs) if opset >= 18 else outputs
    chunk = -(-dim // count)
    return [min(chunk, dim - i * chunk) for i in range(count)]


def reduce_axes(
    node: NodeProto, inputs: Inputs, opset: int, rank: int
) -> list[int] | None:
    """Normalized, sorted axes of a Reduce*; ``[]`` means no reduction (noop).

    Returns None when an axes input is present but not constant.
    """
    since = 13 if node.op_type == "ReduceSum" else 18
    if opset >= since:
        has_input = len(node.input) > 1 and bool(node.input[1])
        axes = _ints(inputs[1]) if has_input and len(inputs) > 1 else None
        if has_input and axes is None:
            return None
    else:
        axes = attr_ints(node, "axes")
    if not axes:
        if attr_int(node, "noop_with_empty_axes", 0):
            return []
        return list(range(rank))
    return sorted({a + rank if a < 0 else a for a in axes})
