"""A numpy reference interpreter for imported ``cim_graph`` functions (tests only).

It runs the module :func:`cimflow.frontend.import_onnx` produced on the
weights :func:`cimflow.frontend.load_weights` returns, so the tests can
compare an imported model end to end with onnxruntime on the ONNX file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerType,
    ModuleOp,
    TensorType,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Operation, SSAValue

from cimflow.cimdialect import cim_graph as g

Array = np.ndarray[Any, Any]

_ERF = np.vectorize(math.erf, otypes=[np.float64])


def _np_dtype(value_type: TensorType) -> np.dtype[Any]:
    element = value_type.element_type
    if isinstance(element, IntegerType):
        width = element.width.data
        return np.dtype(np.bool_) if width == 1 else np.dtype(f"int{width}")
    return np.dtype(np.float32)


def _conv(x: Array, w: Array, b: Array | None, op: g.ConvOp) -> Array:
    sh, sw = g.ints(op.strides)
    dh, dw = g.ints(op.dilations)
    top, left, bottom, right = g.ints(op.pads)
    groups = op.groups.value.data
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, height, width = x.shape
    out_ch, in_per_group, kh, kw = w.shape
    oh = (height - dh * (kh - 1) - 1) // sh + 1
    ow = (width - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, out_ch, oh, ow), dtype=np.float64)
    per_out = out_ch // groups
    for grp in range(groups):
        xs = x[:, grp * in_per_group : (grp + 1) * in_per_group]
        ws = w[grp * per_out : (grp + 1) * per_out]
        for i in range(kh):
            for j in range(kw):
                patch = xs[
                    :,
                    :,
                    i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                ]
                out[:, grp * per_out : (grp + 1) * per_out] += np.einsum(
                    "nchw,oc->nohw", patch, ws[:, :, i, j]
                )
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _pool(x: Array, op: g.PoolOp) -> Array:
    kh, kw = g.ints(op.kernel)
    sh, sw = g.ints(op.strides)
    top, left, bottom, right = g.ints(op.pads)
    is_max = op.kind.data == g.PoolKind.MAX
    fill = -np.inf if is_max else 0.0
    padded = np.pad(
        x.astype(np.float64),
        ((0, 0), (0, 0), (top, bottom), (left, right)),
        constant_values=fill,
    )
    ones = np.pad(np.ones(x.shape[2:]), ((top, bottom), (left, right)))
    oh = (padded.shape[2] - kh) // sh + 1
    ow = (padded.shape[3] - kw) // sw + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for r in range(oh):
        for c in range(ow):
            window = padded[:, :, r * sh : r * sh + kh, c * sw : c * sw + kw]
            if is_max:
                out[:, :, r, c] = window.max(axis=(2, 3))
            else:
                count = (
                    kh * kw
                    if op.count_include_pad is not None
                    else ones[r * sh : r * sh + kh, c * sw : c * sw + kw].sum()
                )
                out[:, :, r, c] = window.sum(axis=(2, 3)) / count
    return out


_UNARY: dict[str, Callable[[Array], Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "erf": _ERF,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "reciprocal": lambda x: 1 / x,
    "neg": np.negative,
    "abs": np.abs,
    "gelu": lambda x: 0.5 * x * (1 + _ERF(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: (
        0.5 * x * (1 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    ),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "floor": np.floor,
    "ceil": np.ceil,
    "cos": np.cos,
    "sin": np.sin,
    "not": np.logical_not,
}

_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "equal": np.equal,
    "less": np.less,
    "greater": np.greater,
    "and": np.logical_and,
    "or": np.logical_or,
}

_REDUCE: dict[str, Callable[..., Array]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": np.prod,
}


def _constant(attr: DenseIntOrFPElementsAttr) -> Array:
    tensor_type = attr.type
    assert isinstance(tensor_type, TensorType)
    values = np.array(attr.get_values())
    return values.reshape(tensor_type.get_shape()).astype(_np_dtype(tensor_type))


def _float(attr: FloatAttr) -> float:
    return float(attr.value.data)


def _evaluate(
    op: Operation, args: list[Array], weights: Mapping[str, Array]
) -> list[Array]:
    if isinstance(op, g.WeightOp):
        return [weights[op.weight_name.data]]
    if isinstance(op, g.ConstantOp):
        return [_constant(op.value)]
    if isinstance(op, g.ConvOp):
        return [_conv(args[0], args[1], args[2] if len(args) > 2 else None, op)]
    if isinstance(op, g.LinearOp):
        w = args[1].T if op.transpose_weight is not None else args[1]
        y = args[0].astype(np.float64) @ w
        return [y + args[2].reshape(-1) if len(args) > 2 else y]
    if isinstance(op, g.MatMulOp):
        return [np.matmul(args[0].astype(np.float64), args[1])]
    if isinstance(op, g.UnaryOp):
        return [_UNARY[op.kind.data.value](args[0])]
    if isinstance(op, g.BinaryOp):
        return [_BINARY[op.kind.data.value](args[0], args[1])]
    if isinstance(op, g.WhereOp):
        return [np.where(args[0], args[1], args[2])]
    if isinstance(op, g.CastOp):
        out_type = op.output.type
        assert isinstance(out_type, TensorType)
        return [args[0].astype(_np_dtype(out_type))]
    if isinstance(op, g.ClipOp):
        return [np.clip(args[0], _float(op.min), _float(op.max))]
    if isinstance(op, g.SoftmaxOp):
        axis = op.axis.value.data
        shifted = np.exp(args[0] - args[0].max(axis=axis, keepdims=True))
        return [shifted / shifted.sum(axis=axis, keepdims=True)]
    if isinstance(op, g.LayerNormOp | g.RMSNormOp):
        x = args[0].astype(np.float64)
        axes = tuple(range(op.axis.value.data % x.ndim, x.ndim))
        eps = _float(op.epsilon)
        if isinstance(op, g.LayerNormOp):
            centered = x - x.mean(axis=axes, keepdims=True)
            y = centered / np.sqrt((centered**2).mean(axis=axes, keepdims=True) + eps)
        else:
            y = x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + eps)
        y = y * args[1]
        return [y + args[2] if len(args) > 2 else y]
    if isinstance(op, g.ReduceOp):
        fn = _REDUCE[op.kind.data.value]
        return [fn(args[0], axis=g.ints(op.axes), keepdims=op.keepdims is not None)]
    if isinstance(op, g.PoolOp):
        return [_pool(args[0], op)]
    if isinstance(op, g.GlobalPoolOp):
        reduce = np.max if op.kind.data == g.PoolKind.MAX else np.mean
        return [reduce(args[0], axis=tuple(range(2, args[0].ndim)), keepdims=True)]
    if isinstance(op, g.ReshapeOp | g.ExpandOp):
        shape = g.tensor_shape(op.output)
        if isinstance(op, g.ReshapeOp):
            return [args[0].reshape(shape)]
        return [np.broadcast_to(args[0], shape)]
    if isinstance(op, g.TransposeOp):
        return [np.transpose(args[0], g.ints(op.perm))]
    if isinstance(op, g.ConcatOp):
        return [np.concatenate(args, axis=op.axis.value.data)]
    if isinstance(op, g.SplitOp):
        axis = op.axis.value.data
        sizes = [g.tensor_shape(r)[axis] for r in op.outputs]
        return list(np.split(args[0], np.cumsum(sizes)[:-1], axis=axis))
    if isinstance(op, g.SliceOp):
        index = tuple(
            slice(s, e, st)
            for s, e, st in zip(
                g.ints(op.starts), g.ints(op.ends), g.ints(op.steps), strict=True
            )
        )
        return [args[0][index]]
    if isinstance(op, g.GatherOp):
        return [np.take(args[0], args[1], axis=op.axis.value.data)]
    if isinstance(op, g.PadOp):
        pads = g.ints(op.pads)
        rank = args[0].ndim
        widths = [(pads[i], pads[rank + i]) for i in range(rank)]
        mode = op.mode.data.value
        if mode == "constant":
            return [np.pad(args[0], widths, constant_values=_float(op.value))]
        return [np.pad(args[0], widths, mode=mode)]
    raise NotImplementedError(op.name)


def run(
    module: ModuleOp, weights: Mapping[str, Array], inputs: Mapping[str, Array]
) -> dict[str, Array]:
    """Evaluate the module's function on inputs named as the ONNX inputs."""
    func = next(op for op in module.ops if isinstance(op, FuncOp))
    values: dict[SSAValue, Array] = {}
    assert func.arg_attrs is not None and func.res_attrs is not None
    for arg, attrs in zip(func.body.block.args, func.arg_attrs.data, strict=True):
        name = attrs.data["cim_graph.name"]
        values[arg] = inputs[name.data]  # type: ignore[attr-defined]
    for op in func.body.block.ops:
        if isinstance(op, ReturnOp):
            names = [a.data["cim_graph.name"].data for a in func.res_attrs.data]  # type: ignore[attr-defined]
            return {
                n: np.asarray(values[v])
                for n, v in zip(names, op.arguments, strict=True)
            }
        results = _evaluate(op, [values[o] for o in op.operands], weights)
        for result, value in zip(op.results, results, strict=True):
            result_type = result.type
            assert isinstance(result_type, TensorType)
            values[result] = np.asarray(value).astype(_np_dtype(result_type))
    raise AssertionError("no func.return")


def random_feeds(
    model: Any, dims: Mapping[str, int], seed: int = 1
) -> dict[str, Array]:
    """Random inputs for an ONNX model: floats ~ N(0, 1), ids in a small range,
    masks and token types in {0, 1} (masks keep their first half set)."""
    import onnx

    rng = np.random.default_rng(seed)
    feeds: dict[str, Array] = {}
    for info in model.graph.input:
        tensor_type = info.type.tensor_type
        shape = [d.dim_value or dims[d.dim_param] for d in tensor_type.shape.dim]
        if tensor_type.elem_type == onnx.TensorProto.INT64:
            high = 2 if "mask" in info.name or "type" in info.name else 30
            value = rng.integers(0, high, shape).astype(np.int64)
            if "mask" in info.name and value.ndim == 2:
                value[:, : (value.shape[1] + 1) // 2] = 1
            feeds[info.name] = value
        elif tensor_type.elem_type == onnx.TensorProto.BOOL:
            feeds[info.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[info.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def onnxruntime_outputs(model: Any, feeds: Mapping[str, Array]) -> dict[str, Array]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def assert_close(
    expected: Mapping[str, Array], actual: Mapping[str, Array], rtol: float = 1e-4
) -> None:
    """Outputs agree to ``rtol`` relative to each output's largest magnitude."""
    assert set(expected) == set(actual)
    for name, want in expected.items():
        got = np.asarray(actual[name])
        assert got.shape == want.shape, name
        if want.size == 0:
            continue
        if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=name)
            continue
        scale = max(float(np.max(np.abs(want))), 1e-6)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=name)
