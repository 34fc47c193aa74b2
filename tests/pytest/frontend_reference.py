"""A numpy reference interpreter for imported ``cim_graph`` functions (tests only).

It runs the module :func:`cimflow.frontend.import_onnx` produced on the
weights :func:`cimflow.frontend.load_weights` returns, so the tests can
compare an imported model end to end with onnxruntime on the ONNX file.
Convolutions and linear layers are computed directly here; every other
operator goes through :func:`cimflow.cimsim.functional.apply_operator` with
the kind and attributes the trace would carry, the same numpy definition the
functional simulator executes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Operation, SSAValue

from cimflow.cimdialect import cim_graph as g
from cimflow.cimsim.functional import apply_operator
from cimflow.passes.convert_tile_to_meta import vector_work
from cimflow.passes.trace_target import json_value
from cimflow.tools.cim_verify import reference_outputs

Array = np.ndarray[Any, Any]


def _np_dtype(element: Attribute) -> np.dtype[Any]:
    if isinstance(element, IntegerType):
        width = element.bitwidth
        if width == 1:
            return np.dtype(np.bool_)
        integer = cast("IntegerType[int, Signedness]", element)
        unsigned = integer.signedness.data == Signedness.UNSIGNED
        return np.dtype(f"{'uint' if unsigned else 'int'}{width}")
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


def _constant(attr: DenseIntOrFPElementsAttr) -> Array:
    tensor_type = attr.type
    assert isinstance(tensor_type, TensorType)
    values = np.array(attr.get_values())
    return values.reshape(tensor_type.get_shape()).astype(
        _np_dtype(tensor_type.element_type)
    )


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
    kind, _ = vector_work(op)
    attrs = {key: json_value(value) for key, value in op.properties.items()}
    outputs: list[tuple[tuple[int, ...], np.dtype[Any]]] = []
    for result in op.results:
        outputs.append((g.tensor_shape(result), _np_dtype(g.element_type(result))))
    return apply_operator(kind, attrs, args, outputs)


def _name(attrs: DictionaryAttr) -> str:
    """The ONNX name recorded on a function argument or result."""
    name = attrs.data["cim_graph.name"]
    assert isinstance(name, StringAttr)
    return name.data


def run(
    module: ModuleOp, weights: Mapping[str, Array], inputs: Mapping[str, Array]
) -> dict[str, Array]:
    """Evaluate the module's function on inputs named as the ONNX inputs."""
    func = next(op for op in module.ops if isinstance(op, FuncOp))
    values: dict[SSAValue, Array] = {}
    assert func.arg_attrs is not None and func.res_attrs is not None
    for arg, attrs in zip(func.body.block.args, func.arg_attrs.data, strict=True):
        values[arg] = inputs[_name(attrs)]
    for op in func.body.block.ops:
        if isinstance(op, ReturnOp):
            names = [_name(a) for a in func.res_attrs.data]
            return {
                n: np.asarray(values[v])
                for n, v in zip(names, op.arguments, strict=True)
            }
        results = _evaluate(op, [values[o] for o in op.operands], weights)
        for result, value in zip(op.results, results, strict=True):
            assert isinstance(result.type, TensorType)
            values[result] = np.asarray(value).astype(_np_dtype(g.element_type(result)))
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
    """onnxruntime's outputs of an in-memory ONNX model, by name."""
    return dict(reference_outputs(model, feeds))


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
