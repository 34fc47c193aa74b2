"""Numpy evaluation of ONNX nodes whose inputs are all known constants.

Used by :func:`cimflow.frontend.prepare.prepare_model` to fold shape
arithmetic (``Shape → Gather → Unsqueeze → Concat → Reshape``), masks and
rotary tables. Each evaluator follows the ONNX operator definition for the
model's opset; an operator or attribute combination not handled here is
simply not folded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from onnx import NodeProto

from cimflow.frontend.common import (
    Array,
    attr_float,
    attr_int,
    attr_ints,
    attr_tensor,
    np_dtype,
    tensor_to_array,
)

Inputs = Sequence[Array | None]
Evaluator = Callable[[NodeProto, Inputs, int], list[Array] | None]


def _first(inputs: Inputs) -> Array:
    value = inputs[0]
    if value is None:
        raise ValueError("missing input")
    return value


def _ints(value: Array | None) -> list[int] | None:
    return None if value is None else [int(v) for v in value.reshape(-1)]


def _axes(
    node: NodeProto, inputs: Inputs, opset: int, input_since: int
) -> list[int] | None:
    """Axes given as an attribute before ``input_since`` and as input 1 after."""
    if opset >= input_since:
        return _ints(inputs[1]) if len(inputs) > 1 else None
    return attr_ints(node, "axes")


def _int_div(a: Array, b: Array) -> Array:
    """Integer division truncating toward zero, like ONNX ``Div`` on integers."""
    quotient = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return quotient + fix.astype(quotient.dtype)


def _binary(fn: Callable[[Array, Array], Array]) -> Evaluator:
    def evaluate(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
        a, b = inputs[0], inputs[1]
        if a is None or b is None:
            return None
        return [np.asarray(fn(a, b))]

    return evaluate


def _div(a: Array, b: Array) -> Array:
    if np.issubdtype(a.dtype, np.integer):
        return _int_div(a, b)
    return np.divide(a, b).astype(a.dtype)


def _pow(a: Array, b: Array) -> Array:
    return np.power(a, b.astype(a.dtype) if a.dtype.kind == "f" else b).astype(a.dtype)


def _same_type(fn: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
    def apply(a: Array, b: Array) -> Array:
        return np.asarray(fn(a, b)).astype(a.dtype)

    return apply


def _variadic(fn: Callable[[Array, Array], Array]) -> Evaluator:
    def evaluate(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
        if not inputs or any(v is None for v in inputs):
            return None
        result = _first(inputs)
        for value in inputs[1:]:
            assert value is not None
            result = np.asarray(fn(result, value)).astype(result.dtype)
        return [result]

    return evaluate


def _erf(x: Array) -> Array:
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def _unary(fn: Callable[[Array], Array]) -> Evaluator:
    def evaluate(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
        x = _first(inputs)
        return [np.asarray(fn(x)).astype(x.dtype)]

    return evaluate


def _identity(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    return [_first(inputs)]


def _cast(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    return [_first(inputs).astype(np_dtype(attr_int(node, "to", 1)))]


def _cast_like(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    target = inputs[1]
    if target is None:
        return None
    return [_first(inputs).astype(target.dtype)]


def _gather(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    data, indices = _first(inputs), inputs[1]
    if indices is None:
        return None
    axis = attr_int(node, "axis", 0)
    return [np.take(data, indices.astype(np.int64), axis=axis)]


def _unsqueeze(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    axes = _axes(node, inputs, opset, 13)
    if axes is None:
        return None
    rank = x.ndim + len(axes)
    result = x
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        result = np.expand_dims(result, axis)
    return [result]


def _squeeze(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    axes = _axes(node, inputs, opset, 13)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(a + x.ndim if a < 0 else a for a in axes))]


def _concat(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    if any(v is None for v in inputs):
        return None
    values = [v for v in inputs if v is not None]
    return [np.concatenate(values, axis=attr_int(node, "axis", 0))]


def _constant_of_shape(
    node: NodeProto, inputs: Inputs, opset: int
) -> list[Array] | None:
    shape = _ints(inputs[0]) or []
    tensor = attr_tensor(node, "value")
    fill = (
        tensor_to_array(tensor).reshape(-1)[0]
        if tensor is not None
        else np.float32(0.0)
    )
    return [np.full(shape, fill, dtype=np.asarray(fill).dtype)]


def _range(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    start, limit, delta = inputs[0], inputs[1], inputs[2]
    if start is None or limit is None or delta is None:
        return None
    return [np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)]


def _where(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    cond, a, b = inputs[0], inputs[1], inputs[2]
    if cond is None or a is None or b is None:
        return None
    return [np.where(cond, a, b).astype(a.dtype)]


def slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
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
        full_starts[axis], full_ends[axis] = slice_bounds(shape[axis], start, end, step)
        full_steps[axis] = step
    return full_starts, full_ends, full_steps


def _onnx_negative_slice(dim: int, start: int, end: int, step: int) -> slice:
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


def _slice(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    try:
        params = slice_params(node, inputs, opset, x.shape)
    except ValueError:
        return _slice_any_step(node, inputs, opset)
    if params is None:
        return None
    index = tuple(
        slice(s, e, st)
        for s, e, st in zip(params[0], params[1], params[2], strict=True)
    )
    return [x[index]]


def _slice_any_step(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    if opset < 10:
        return None
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = _ints(inputs[3]) if len(inputs) > 3 else None
    steps = _ints(inputs[4]) if len(inputs) > 4 else None
    if starts is None or ends is None:
        return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index: list[slice] = [slice(None)] * x.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        axis = axis + x.ndim if axis < 0 else axis
        dim = x.shape[axis]
        if step > 0:
            lo, hi = slice_bounds(dim, start, end, step)
            index[axis] = slice(lo, hi, step)
        elif step < 0:
            index[axis] = _onnx_negative_slice(dim, start, end, step)
        else:
            return None
    return [x[tuple(index)]]


def reshape_target(
    in_shape: Sequence[int], shape: Sequence[int], allowzero: bool
) -> list[int]:
    """ONNX ``Reshape`` target: ``0`` copies the input dim, ``-1`` is inferred."""
    target = [
        in_shape[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)
    ]
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(in_shape) // known if known else 0
    return target


def _reshape(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x, shape = _first(inputs), _ints(inputs[1])
    if shape is None:
        return None
    allowzero = attr_int(node, "allowzero", 0) != 0
    return [x.reshape(reshape_target(x.shape, shape, allowzero))]


def _flatten(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    axis = attr_int(node, "axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _expand(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x, shape = _first(inputs), _ints(inputs[1])
    if shape is None:
        return None
    target = np.broadcast_shapes(x.shape, tuple(shape))
    return [np.broadcast_to(x, target).copy()]


def _tile(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    repeats = _ints(inputs[1])
    if repeats is None:
        return None
    return [np.tile(_first(inputs), repeats)]


def _transpose(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    perm = attr_ints(node, "perm")
    return [np.transpose(x, perm if perm is not None else None)]


def _trilu(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    k = 0
    if len(inputs) > 1 and inputs[1] is not None:
        k = int(inputs[1].item())
    upper = attr_int(node, "upper", 1)
    return [np.triu(x, k) if upper else np.tril(x, k)]


def _matmul(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    a, b = inputs[0], inputs[1]
    if a is None or b is None:
        return None
    return [np.matmul(a, b).astype(a.dtype)]


def _split(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    axis = attr_int(node, "axis", 0)
    axis = axis + x.ndim if axis < 0 else axis
    sizes = split_sizes(node, inputs, opset, x.shape[axis], len(node.output))
    if sizes is None:
        return None
    offsets = np.cumsum(sizes)[:-1].tolist()
    return list(np.split(x, offsets, axis=axis))


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


_REDUCERS: dict[str, Callable[..., Array]] = {
    "ReduceSum": np.sum,
    "ReduceMean": np.mean,
    "ReduceMax": np.max,
    "ReduceMin": np.min,
    "ReduceProd": np.prod,
}


def _reduce(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    axes = reduce_axes(node, inputs, opset, x.ndim)
    if axes is None:
        return None
    if not axes:
        return [x]
    keepdims = bool(attr_int(node, "keepdims", 1))
    result = _REDUCERS[node.op_type](x, axis=tuple(axes), keepdims=keepdims)
    return [np.asarray(result).astype(x.dtype)]


def _clip(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    if opset >= 11:
        low = inputs[1] if len(inputs) > 1 else None
        high = inputs[2] if len(inputs) > 2 else None
        if (low is None and len(node.input) > 1 and node.input[1]) or (
            high is None and len(node.input) > 2 and node.input[2]
        ):
            return None
        result = x
        if low is not None:
            result = np.maximum(result, low)
        if high is not None:
            result = np.minimum(result, high)
        return [result.astype(x.dtype)]
    low_f = attr_float(node, "min", float("-inf"))
    high_f = attr_float(node, "max", float("inf"))
    return [np.clip(x, low_f, high_f).astype(x.dtype)]


def _cumsum(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x, axis = _first(inputs), inputs[1]
    if axis is None or attr_int(node, "exclusive", 0) or attr_int(node, "reverse", 0):
        return None
    return [np.cumsum(x, axis=int(axis.item())).astype(x.dtype)]


def _softmax(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    x = _first(inputs)
    if opset < 13:
        return None
    axis = attr_int(node, "axis", -1)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return [(shifted / np.sum(shifted, axis=axis, keepdims=True)).astype(x.dtype)]


EVALUATORS: dict[str, Evaluator] = {
    "Identity": _identity,
    "Dropout": _identity,
    "Cast": _cast,
    "CastLike": _cast_like,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Where": _where,
    "Slice": _slice,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Expand": _expand,
    "Tile": _tile,
    "Transpose": _transpose,
    "Trilu": _trilu,
    "MatMul": _matmul,
    "Split": _split,
    "CumSum": _cumsum,
    "Clip": _clip,
    "Softmax": _softmax,
    "Add": _binary(_same_type(np.add)),
    "Sub": _binary(_same_type(np.subtract)),
    "Mul": _binary(_same_type(np.multiply)),
    "Div": _binary(_div),
    "Pow": _binary(_pow),
    "Mod": _binary(_same_type(np.fmod)),
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal),
    "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and),
    "Or": _binary(np.logical_or),
    "Xor": _binary(np.logical_xor),
    "Max": _variadic(np.maximum),
    "Min": _variadic(np.minimum),
    "Sum": _variadic(np.add),
    "Not": _unary(np.logical_not),
    "Neg": _unary(np.negative),
    "Abs": _unary(np.abs),
    "Sqrt": _unary(np.sqrt),
    "Reciprocal": _unary(np.reciprocal),
    "Exp": _unary(np.exp),
    "Log": _unary(np.log),
    "Cos": _unary(np.cos),
    "Sin": _unary(np.sin),
    "Tanh": _unary(np.tanh),
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Erf": _unary(_erf),
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Sigmoid": _unary(lambda x: 1 / (1 + np.exp(-x))),
    "Sign": _unary(np.sign),
    **{name: _reduce for name in _REDUCERS},
}
"""Evaluators by op type; Shape and Size are folded from inferred shapes."""


def evaluate(node: NodeProto, inputs: Inputs, opset: int) -> list[Array] | None:
    """The outputs of ``node`` given constant ``inputs``; None if not foldable."""
    evaluator = EVALUATORS.get(node.op_type)
    if evaluator is None or not inputs or inputs[0] is None:
        return None
    with np.errstate(all="ignore"):
        try:
            return evaluator(node, inputs, opset)
        except (ValueError, IndexError, TypeError, OverflowError):
            return None
