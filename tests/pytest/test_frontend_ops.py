"""Operator-level import checks: each small graph is imported, run by the numpy
reference interpreter on the loaded weights and compared with onnxruntime."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from frontend_reference import assert_close, onnxruntime_outputs, random_feeds, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import ModuleOp

from cimflow.cimdialect.cim_graph import ConvOp, PoolOp, ints
from cimflow.frontend import import_onnx, load_weights, prepare_model

F = TensorProto.FLOAT
RNG = np.random.default_rng(7)


def init(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def weight(name: str, shape: list[int]) -> onnx.TensorProto:
    return init(name, RNG.standard_normal(shape))


def graph(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list[int]],
    outputs: list[str],
    initializers: list[onnx.TensorProto] | None = None,
    opset: int = 17,
    input_type: int = F,
) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "ops",
        [helper.make_tensor_value_info(n, input_type, s) for n, s in inputs.items()],
        [
            helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
            for n in outputs
        ],
        initializers or [],
    )
    model = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8
    )
    return onnx.shape_inference.infer_shapes(model)


def node(
    op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any
) -> onnx.NodeProto:
    outputs = outputs or ["y"]
    return helper.make_node(op, inputs, outputs, name=f"{op}_{outputs[0]}", **attrs)


def check(
    model: onnx.ModelProto,
    tmp_path: Path,
    rtol: float = 1e-4,
    feeds: dict[str, Any] | None = None,
) -> ModuleOp:
    """Import ``model`` and compare the reference run with onnxruntime."""
    path = tmp_path / "op.onnx"
    path.write_bytes(model.SerializeToString())
    module = import_onnx(path, {})
    module.verify()
    feeds = feeds if feeds is not None else random_feeds(model, {})
    expected = onnxruntime_outputs(model, feeds)
    assert_close(expected, run(module, load_weights(path, {}), feeds), rtol)
    prepared = prepare_model(model, {}, "op.onnx")
    assert_close(expected, onnxruntime_outputs(prepared, feeds), rtol)
    return module


def counts(module: ModuleOp) -> Counter[str]:
    return Counter(op.name.removeprefix("cim_graph.") for op in module.walk())


X = {"x": [2, 3, 6, 6]}
CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv_same_upper": lambda: graph(
        [node("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])],
        {"x": [1, 3, 7, 7]},
        ["y"],
        [weight("w", [4, 3, 4, 4])],
    ),
    "conv_same_lower": lambda: graph(
        [node("Conv", ["x", "w"], auto_pad="SAME_LOWER", strides=[2, 2])],
        {"x": [1, 3, 7, 7]},
        ["y"],
        [weight("w", [4, 3, 4, 4])],
    ),
    "conv_valid_dilated": lambda: graph(
        [node("Conv", ["x", "w", "b"], auto_pad="VALID", dilations=[2, 1])],
        X,
        ["y"],
        [weight("w", [5, 3, 2, 3]), weight("b", [5])],
    ),
    "conv_grouped_pads": lambda: graph(
        [node("Conv", ["x", "w", "b"], group=3, pads=[1, 0, 2, 1], strides=[1, 2])],
        X,
        ["y"],
        [weight("w", [6, 1, 3, 3]), weight("b", [6])],
    ),
    "gemm_trans_a_alpha_beta": lambda: graph(
        [node("Gemm", ["x", "w", "c"], transA=1, transB=1, alpha=0.5, beta=2.0)],
        {"x": [5, 3]},
        ["y"],
        [weight("w", [4, 5]), weight("c", [4])],
    ),
    "gemm_activation_b": lambda: graph(
        [node("Gemm", ["x", "z", "c"], transB=1)],
        {"x": [3, 5], "z": [4, 5]},
        ["y"],
        [weight("c", [1, 4])],
    ),
    "gemm_matrix_c": lambda: graph(
        [node("Gemm", ["x", "w", "c"], beta=0.5)],
        {"x": [3, 5]},
        ["y"],
        [weight("w", [5, 4]), weight("c", [3, 4])],
    ),
    "matmul_vector_weight": lambda: graph(
        [node("MatMul", ["x", "w"])], {"x": [5]}, ["y"], [weight("w", [5, 3])]
    ),
    "matmul_vector_rhs": lambda: graph(
        [node("MatMul", ["x", "z"])], {"x": [2, 3, 5], "z": [5]}, ["y"]
    ),
    "matmul_broadcast": lambda: graph(
        [node("MatMul", ["x", "z"])], {"x": [2, 1, 3, 5], "z": [4, 5, 2]}, ["y"]
    ),
    "matmul_batched_weight": lambda: graph(
        [node("MatMul", ["x", "w"])], {"x": [2, 3, 5]}, ["y"], [weight("w", [2, 5, 4])]
    ),
    "transposed_weight_matmul": lambda: graph(
        [
            node("Transpose", ["w"], ["wt"], perm=[1, 0]),
            node("MatMul", ["x", "wt"], ["m"]),
            node("Add", ["m", "b"]),
        ],
        {"x": [2, 3, 5]},
        ["y"],
        [weight("w", [4, 5]), weight("b", [4])],
    ),
    "softmax_opset11_coerced": lambda: graph(
        [node("Softmax", ["x"], axis=1)], {"x": [2, 3, 4]}, ["y"], opset=11
    ),
    "softmax_opset11_last": lambda: graph(
        [node("Softmax", ["x"], axis=2)], {"x": [2, 3, 4]}, ["y"], opset=11
    ),
    "clip_attrs_opset6": lambda: graph(
        [node("Clip", ["x"], min=-0.5, max=0.25)], X, ["y"], opset=6
    ),
    "clip_only_max": lambda: graph(
        [node("Clip", ["x", "", "hi"])], X, ["y"], [init("hi", 0.3)]
    ),
    "slice_negative_and_clamped": lambda: graph(
        [node("Slice", ["x", "s", "e", "a", "st"])],
        X,
        ["y"],
        [
            init("s", [-4, 1], np.int64),
            init("e", [100, -1], np.int64),
            init("a", [-1, 1], np.int64),
            init("st", [2, 1], np.int64),
        ],
    ),
    "slice_opset9_attrs": lambda: graph(
        [node("Slice", ["x"], starts=[1, -3], ends=[3, 1000], axes=[1, 3])],
        X,
        ["y"],
        opset=9,
    ),
    "gather_negative_indices": lambda: graph(
        [node("Gather", ["x", "i"], axis=-1)],
        X,
        ["y"],
        [init("i", [[-1, 0], [2, -6]], np.int64)],
    ),
    "gather_scalar_index": lambda: graph(
        [node("Gather", ["x", "i"], axis=1)], X, ["y"], [init("i", 2, np.int64)]
    ),
    "pad_reflect_axes": lambda: graph(
        [node("Pad", ["x", "p", "", "a"], mode="reflect")],
        X,
        ["y"],
        [init("p", [1, 2, 2, 0], np.int64), init("a", [2, -1], np.int64)],
        opset=18,
    ),
    "pad_edge": lambda: graph(
        [node("Pad", ["x", "p"], mode="edge")],
        X,
        ["y"],
        [init("p", [0, 0, 1, 1, 0, 1, 0, 2], np.int64)],
    ),
    "pad_constant_opset2": lambda: graph(
        [node("Pad", ["x"], pads=[0, 1, 0, 0, 0, 0, 2, 1], value=1.5)],
        X,
        ["y"],
        opset=2,
    ),
    "split_num_outputs": lambda: graph(
        [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)],
        {"x": [2, 8]},
        ["a", "b", "c"],
        opset=18,
    ),
    "split_opset11_attr": lambda: graph(
        [node("Split", ["x"], ["a", "b"], axis=-1, split=[2, 4])],
        X,
        ["a", "b"],
        opset=11,
    ),
    "reduce_sum_axes_input": lambda: graph(
        [node("ReduceSum", ["x", "a"], keepdims=0)],
        X,
        ["y"],
        [init("a", [-1, 1], np.int64)],
    ),
    "reduce_max_attr_axes": lambda: graph(
        [node("ReduceMax", ["x"], axes=[0, 2])], X, ["y"]
    ),
    "reduce_mean_noop": lambda: graph(
        [node("ReduceMean", ["x"], noop_with_empty_axes=1), node("Relu", ["y"], ["z"])],
        X,
        ["z"],
        opset=18,
    ),
    "reduce_prod_all": lambda: graph(
        [node("ReduceProd", ["x"], keepdims=1)], {"x": [2, 3]}, ["y"]
    ),
    "reduce_min": lambda: graph([node("ReduceMin", ["x"], axes=[3])], X, ["y"]),
    "average_pool_count_include_pad": lambda: graph(
        [
            node(
                "AveragePool",
                ["x"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[2, 2],
                count_include_pad=1,
            )
        ],
        X,
        ["y"],
    ),
    "average_pool_exclude_pad": lambda: graph(
        [node("AveragePool", ["x"], kernel_shape=[3, 2], pads=[1, 0, 1, 1])], X, ["y"]
    ),
    "max_pool_same_upper": lambda: graph(
        [
            node(
                "MaxPool",
                ["x"],
                kernel_shape=[2, 2],
                strides=[2, 2],
                auto_pad="SAME_UPPER",
            )
        ],
        {"x": [1, 2, 5, 5]},
        ["y"],
    ),
    "max_pool_ceil_mode_exact": lambda: graph(
        [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
        X,
        ["y"],
    ),
    "global_max_pool": lambda: graph([node("GlobalMaxPool", ["x"])], X, ["y"]),
    "comparisons": lambda: graph(
        [
            node("LessOrEqual", ["x", "z"], ["le"]),
            node("GreaterOrEqual", ["x", "z"], ["ge"]),
            node("Greater", ["x", "z"], ["gt"]),
            node("And", ["le", "ge"], ["both"]),
            node("Or", ["both", "gt"], ["any"]),
            node("Not", ["any"], ["none"]),
            node("Where", ["none", "x", "z"]),
        ],
        {"x": [3, 4], "z": [4]},
        ["y", "le"],
    ),
    "variadic_max_min": lambda: graph(
        [node("Max", ["x", "z", "c"], ["m"]), node("Min", ["m", "x", "z"])],
        {"x": [3, 4], "z": [1, 4]},
        ["y"],
        [init("c", 0.1)],
    ),
    "unary_functions": lambda: graph(
        [
            node("Abs", ["x"], ["a"]),
            node("Sqrt", ["a"], ["s"]),
            node("Log", ["s"], ["l"]),
            node("Exp", ["l"], ["e"]),
            node("Reciprocal", ["e"], ["r"]),
            node("Neg", ["r"], ["n"]),
            node("Softplus", ["n"], ["sp"]),
            node("Floor", ["sp"], ["f"]),
            node("Ceil", ["x"], ["c"]),
            node("Cos", ["c"], ["co"]),
            node("Sin", ["co"], ["si"]),
            node("Tanh", ["si"], ["t"]),
            node("Sigmoid", ["t"], ["sg"]),
            node("Erf", ["sg"], ["er"]),
            node("Add", ["er", "f"], ["sum"]),
            node("Gelu", ["sum"]),
        ],
        X,
        ["y"],
        opset=20,
    ),
    "binary_functions": lambda: graph(
        [
            node("Sub", ["x", "z"], ["d"]),
            node("Div", ["d", "two"], ["q"]),
            node("Abs", ["q"], ["a"]),
            node("Pow", ["a", "z"], ["p"]),
            node("Mul", ["p", "x"], ["m"]),
            node("Equal", ["m", "m"], ["eq"]),
            node("Less", ["x", "z"], ["lt"]),
            node("Cast", ["lt"], ["lf"], to=F),
            node("Add", ["m", "lf"]),
        ],
        {"x": [3, 4], "z": [4]},
        ["y", "eq"],
        [init("two", 2.0)],
    ),
    "cast_int_roundtrip": lambda: graph(
        [node("Cast", ["x"], ["i"], to=TensorProto.INT32), node("Cast", ["i"], to=F)],
        {"x": [3, 4]},
        ["y"],
    ),
    "reshape_family": lambda: graph(
        [
            node("Flatten", ["x"], ["f"], axis=2),
            node("Unsqueeze", ["f"], ["u"], axes=[0, -1]),
            node("Squeeze", ["u"], ["s"], axes=[0]),
            node("Reshape", ["s", "shape"], ["r"]),
            node("Transpose", ["r"], ["t"]),
            node("Expand", ["t", "e"], ["x2"]),
            node("Concat", ["x2", "x2"], axis=-1),
        ],
        X,
        ["y"],
        [init("shape", [0, -1, 4], np.int64), init("e", [3, 1, 1, 1], np.int64)],
        opset=11,
    ),
    "layer_norm_two_axes": lambda: graph(
        [node("LayerNormalization", ["x", "g", "b"], axis=-2, epsilon=1e-3)],
        X,
        ["y"],
        [weight("g", [6, 6]), weight("b", [6])],
    ),
    "batchnorm_without_conv": lambda: graph(
        [
            node("Relu", ["x"], ["r"]),
            node("BatchNormalization", ["r", "s", "b", "m", "v"], epsilon=1e-3),
        ],
        X,
        ["y"],
        [
            weight("s", [3]),
            weight("b", [3]),
            weight("m", [3]),
            init("v", [0.5, 1.0, 2.0]),
        ],
    ),
    "conv_batchnorm_shared_input": lambda: graph(
        [
            node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "s", "b", "m", "v"]),
        ],
        X,
        ["y"],
        [
            weight("w", [4, 3, 3, 3]),
            weight("cb", [4]),
            weight("s", [4]),
            weight("b", [4]),
            weight("m", [4]),
            init("v", [0.5, 1.0, 2.0, 0.1]),
        ],
    ),
    "identity_output_of_input": lambda: graph(
        [
            node("Identity", ["x"], ["y"]),
            node("Dropout", ["x"], ["d"]),
            node("Relu", ["d"], ["z"]),
        ],
        {"x": [2, 3]},
        ["y", "z"],
    ),
    "gelu_erf_variant": lambda: graph(
        [
            node("Mul", ["x", "half"], ["h"]),
            node("Mul", ["x", "inv_sqrt2"], ["s"]),
            node("Erf", ["s"], ["e"]),
            node("Add", ["one", "e"], ["g"]),
            node("Mul", ["h", "g"]),
        ],
        X,
        ["y"],
        [init("half", 0.5), init("inv_sqrt2", 1 / math.sqrt(2)), init("one", 1.0)],
    ),
    "rms_norm_div_form": lambda: graph(
        [
            node("Mul", ["x", "x"], ["sq"]),
            node("ReduceMean", ["sq"], ["m"], axes=[-1]),
            node("Add", ["eps", "m"], ["a"]),
            node("Sqrt", ["a"], ["r"]),
            node("Div", ["x", "r"], ["n"]),
            node("Mul", ["n", "w"]),
        ],
        X,
        ["y"],
        [init("eps", 1e-5), weight("w", [6])],
    ),
    "silu_reversed": lambda: graph(
        [node("Sigmoid", ["x"], ["s"]), node("Mul", ["s", "x"])], X, ["y"]
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator(case: str, tmp_path: Path) -> None:
    check(CASES[case](), tmp_path)


def test_conv_auto_pad_values(tmp_path: Path) -> None:
    upper = check(CASES["conv_same_upper"](), tmp_path)
    lower = check(CASES["conv_same_lower"](), tmp_path)
    pads = [
        ints(op.pads)
        for m in (upper, lower)
        for op in m.walk()
        if isinstance(op, ConvOp)
    ]
    assert pads == [(1, 1, 2, 2), (2, 2, 1, 1)]


def test_pool_pads_resolved(tmp_path: Path) -> None:
    module = check(CASES["max_pool_same_upper"](), tmp_path)
    pools = [op for op in module.walk() if isinstance(op, PoolOp)]
    assert [ints(p.pads) for p in pools] == [(0, 0, 1, 1)]


def test_fusions(tmp_path: Path) -> None:
    assert counts(check(CASES["gelu_erf_variant"](), tmp_path))["unary"] == 1
    assert counts(check(CASES["rms_norm_div_form"](), tmp_path))["rms_norm"] == 1
    assert counts(check(CASES["silu_reversed"](), tmp_path))["unary"] == 1
    linear = counts(check(CASES["transposed_weight_matmul"](), tmp_path))
    assert linear["linear"] == 1 and linear["transpose"] == 0 and linear["binary"] == 0


def test_batchnorm_folds_into_conv(tmp_path: Path) -> None:
    model = CASES["conv_batchnorm_shared_input"]()
    prepared = prepare_model(model, {}, "m.onnx")
    assert [n.op_type for n in prepared.graph.node] == ["Conv"]
    assert sorted(t.name for t in prepared.graph.initializer) == [
        "cb.bn_folded",
        "w.bn_folded",
    ]
    assert counts(check(model, tmp_path))["conv"] == 1


def test_batchnorm_folds_without_data() -> None:
    model = CASES["conv_batchnorm_shared_input"]()
    weights = model.graph.initializer
    for tensor in weights:
        if tensor.name == "w":
            tensor.ClearField("raw_data")
            tensor.ClearField("float_data")
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", "absent.bin"
    prepared = prepare_model(model, {}, "m.onnx")
    folded = {t.name: t for t in prepared.graph.initializer}
    assert list(folded["w.bn_folded"].dims) == [4, 3, 3, 3]
    assert folded["w.bn_folded"].data_location == TensorProto.EXTERNAL
    assert folded["cb.bn_folded"].data_location != TensorProto.EXTERNAL


def test_causal_mask_is_folded(tmp_path: Path) -> None:
    nodes = [
        node("Shape", ["x"], ["shape"]),
        node("Gather", ["shape", "one"], ["n"], axis=0),
        node("Range", ["zero", "n", "step"], ["r"]),
        node("Unsqueeze", ["r", "axis1"], ["col"]),
        node("Less", ["r", "col"], ["future"]),
        node("Not", ["future"], ["allowed"]),
        node("Concat", ["shape_n", "shape_n"], ["square"], axis=0),
        node("ConstantOfShape", ["square"], ["ones"], value=init("v", [1.0])),
        node("Trilu", ["ones"], ["tril"], upper=0),
        node("Cast", ["tril"], ["tril_b"], to=TensorProto.BOOL),
        node("And", ["allowed", "tril_b"], ["keep"]),
        node("Where", ["keep", "x", "neg"]),
    ]
    nodes.insert(3, node("Unsqueeze", ["n", "axis0"], ["shape_n"]))
    model = graph(
        nodes,
        {"x": [5, 5]},
        ["y"],
        [
            init("one", 1, np.int64),
            init("zero", 0, np.int64),
            init("step", 1, np.int64),
            init("axis0", [0], np.int64),
            init("axis1", [1], np.int64),
            init("neg", -1e9),
        ],
    )
    module = check(model, tmp_path)
    assert counts(module)["where"] == 1
    assert counts(module)["constant"] == 1


def test_unseen_mask_chain_is_folded_generically(tmp_path: Path) -> None:
    """A position/mask chain with ops and attributes no hand-written folding
    knew (exclusive CumSum, Mod, OneHot, ScatterND, Hardmax, EyeLike) folds
    through the reference evaluator down to one constant added to ``x``."""
    nodes = [
        node("Shape", ["x"], ["shape"], start=-1),
        node("ConstantOfShape", ["shape"], ["ones"], value=init("v", [1], np.int64)),
        node("CumSum", ["ones", "zero"], ["positions"], exclusive=1, reverse=1),
        node("Range", ["zero", "shape_n", "one"], ["rows"]),
        node("Unsqueeze", ["rows", "axis1"], ["column"]),
        node("Less", ["positions", "column"], ["ahead"]),
        node("Mod", ["positions", "two"], ["parity"]),
        node("OneHot", ["parity", "two", "on_off"], ["hot"], axis=-1),
        node("ScatterND", ["hot", "where", "update"], ["scattered"]),
        node("Hardmax", ["scattered"], ["picked"]),
        node("EyeLike", ["picked"], ["eye"]),
        node("ReduceSum", ["eye", "axis0"], ["weights"], keepdims=0),
        node("Where", ["ahead", "neg", "zero_f"], ["mask"]),
        node("Add", ["mask", "weights_row"], ["bias"]),
        node("Add", ["x", "bias"], ["scores"]),
        node("Softmax", ["scores"], axis=-1),
    ]
    nodes.insert(3, node("Squeeze", ["shape", "axis0"], ["shape_n"]))
    nodes.insert(-3, node("Slice", ["weights", "zero1", "one1"], ["weights_row"]))
    model = graph(
        nodes,
        {"x": [2, 5, 5]},
        ["y"],
        [
            init("zero", 0, np.int64),
            init("one", 1, np.int64),
            init("two", 2, np.int64),
            init("axis0", [0], np.int64),
            init("axis1", [1], np.int64),
            init("zero1", [0], np.int64),
            init("one1", [1], np.int64),
            init("on_off", [0.0, 1.0]),
            init("where", [[0, 1], [3, 0]], np.int64),
            init("update", [0.25, 0.75]),
            init("neg", -1e9),
            init("zero_f", 0.0),
        ],
    )
    prepared = prepare_model(model, {}, "m.onnx")
    assert Counter(n.op_type for n in prepared.graph.node) == {
        "Constant": 1,
        "Add": 1,
        "Softmax": 1,
    }
    module = check(model, tmp_path)
    assert counts(module)["constant"] == 1


def test_infinite_mask_constant_is_finite(tmp_path: Path) -> None:
    model = graph(
        [
            node("ConstantOfShape", ["s"], ["ones"], value=init("v", [1.0])),
            node("Trilu", ["ones"], ["tril"], upper=0),
            node("Equal", ["tril", "zero"], ["hidden"]),
            node("Where", ["hidden", "neg_inf", "zero"], ["mask"]),
            node("Add", ["x", "mask"], ["scores"]),
            node("Softmax", ["scores"], axis=-1),
        ],
        {"x": [2, 4, 4]},
        ["y"],
        [init("s", [4, 4], np.int64), init("zero", 0.0), init("neg_inf", -np.inf)],
    )
    text = str(check(model, tmp_path))
    assert "-3.40282347e+38" in text
    assert "0xff800000" not in text


def test_large_folded_constant_becomes_weight(tmp_path: Path) -> None:
    model = graph(
        [
            node("ConstantOfShape", ["s"], ["big"], value=init("v", [0.5])),
            node("Add", ["x", "big"]),
        ],
        {"x": [80, 80]},
        ["y"],
        [init("s", [80, 80], np.int64)],
    )
    module = check(model, tmp_path)
    assert 'cim_graph.weight "big.folded"' in str(module)
    assert load_weights(tmp_path / "op.onnx", {})["big.folded"].shape == (80, 80)


def test_weights_in_constant_nodes_become_initializers(tmp_path: Path) -> None:
    model = graph(
        [
            node("Constant", [], ["w"], value=weight("w", [4, 3, 3, 3])),
            node("Constant", [], ["m"], value=weight("m", [5, 2])),
            node("Conv", ["x", "w"], ["c"]),
            node("Flatten", ["c"], ["f"], axis=3),
            node("MatMul", ["f", "m"]),
        ],
        {"x": [1, 3, 7, 7]},
        ["y"],
    )
    text = str(check(model, tmp_path))
    assert 'cim_graph.weight "w.folded"' in text
    assert 'cim_graph.weight "m.folded"' in text
    assert "cim_graph.linear" in text


def test_weights_are_not_folded(tmp_path: Path) -> None:
    model = graph(
        [node("Transpose", ["w"], ["wt"], perm=[1, 0]), node("Add", ["x", "wt"])],
        {"x": [3, 4]},
        ["y"],
        [weight("w", [4, 3])],
    )
    module = check(model, tmp_path)
    assert 'cim_graph.weight "w"' in str(module)
    assert counts(module)["transpose"] == 1


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(
        st.tuples(
            st.integers(-12, 12), st.integers(-12, 12), st.integers(1, 3), st.booleans()
        ),
        min_size=1,
        max_size=3,
    ),
    huge_end=st.booleans(),
)
def test_slice_matches_onnxruntime(
    tmp_path: Path, data: list[tuple[int, int, int, bool]], huge_end: bool
) -> None:
    shape = [5, 4, 6]
    axes = list(range(len(data)))
    starts = [d[0] for d in data]
    ends = [d[1] for d in data]
    if huge_end:
        ends[-1] = int(np.iinfo(np.int64).max)
    steps = [d[2] for d in data]
    axes = [a - 3 if d[3] else a for a, d in zip(axes, data, strict=True)]
    model = graph(
        [
            node("Slice", ["x", "s", "e", "a", "st"], ["sliced"]),
            node("Relu", ["sliced"]),
        ],
        {"x": shape},
        ["y"],
        [
            init("s", starts, np.int64),
            init("e", ends, np.int64),
            init("a", axes, np.int64),
            init("st", steps, np.int64),
        ],
    )
    check(model, tmp_path)
