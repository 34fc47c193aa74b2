"""Ops the frontend rewrites into imported ones (``cimflow.frontend.decompose``).

Each case is a small graph built with onnx.helper. It must give
onnxruntime's outputs three ways: the prepared model (still standard ONNX,
run by onnxruntime), the imported ``cim_graph`` module (the tests' reference
interpreter) and the compiled trace (``cim-verify``'s functional executor,
exact mode, on ``tiny``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
from frontend_reference import assert_close, onnxruntime_outputs, random_feeds, run
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_weights, prepare_model
from cimflow.tools.cim_verify import verify_model

F = TensorProto.FLOAT
I64 = TensorProto.INT64
RNG = np.random.default_rng(11)
Array = np.ndarray[Any, Any]


def init(name: str, value: Any, dtype: Any = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def weight(name: str, shape: list[int], scale: float = 0.5) -> onnx.TensorProto:
    return init(name, RNG.standard_normal(shape) * scale)


def node(op: str, inputs: list[str], out: str = "y", **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [out], name=f"{op}_{out}", **attrs)


def graph(
    nodes: list[onnx.NodeProto],
    inputs: Mapping[str, list[int] | tuple[int, list[int]]],
    outputs: list[str],
    initializers: list[onnx.TensorProto] | None = None,
    opset: int = 18,
) -> onnx.ModelProto:
    infos: list[onnx.ValueInfoProto] = []
    for name, spec in inputs.items():
        if isinstance(spec, tuple):
            infos.append(helper.make_tensor_value_info(name, spec[0], spec[1]))
        else:
            infos.append(helper.make_tensor_value_info(name, F, spec))
    g = helper.make_graph(
        nodes,
        "rewritten",
        infos,
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


def lstm_inputs(
    gates: int, directions: int, hidden: int, features: int, peephole: bool = False
) -> list[onnx.TensorProto]:
    tensors = [
        weight("W", [directions, gates * hidden, features]),
        weight("R", [directions, gates * hidden, hidden]),
        weight("B", [directions, 2 * gates * hidden]),
    ]
    if peephole:
        tensors.append(weight("P", [directions, 3 * hidden]))
    return tensors


X1D = {"x": [2, 4, 9]}
X2D = {"x": [1, 4, 5, 6]}

CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "is_nan_softmax_guard": lambda: graph(
        [
            node("Softmax", ["x"], "p", axis=-1),
            node("IsNaN", ["p"], "bad"),
            node("Where", ["bad", "zero", "p"]),
        ],
        {"x": [2, 3, 4]},
        ["y"],
        [init("zero", 0.0)],
    ),
    "is_inf_both": lambda: graph(
        [node("Exp", ["x"], "e"), node("IsInf", ["e"])], {"x": [3, 4]}, ["y"]
    ),
    "is_inf_negative": lambda: graph(
        [node("IsInf", ["x"], detect_positive=0)], {"x": [3, 4]}, ["y"]
    ),
    "hard_sigmoid": lambda: graph(
        [node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], {"x": [2, 8]}, ["y"]
    ),
    "hard_swish": lambda: graph([node("HardSwish", ["x"])], X2D, ["y"]),
    "mish": lambda: graph([node("Mish", ["x"])], X2D, ["y"]),
    "gather_elements_runtime_indices": lambda: graph(
        [node("GatherElements", ["x", "i"], axis=1)],
        {"x": [3, 5, 2], "i": (I64, [3, 4, 2])},
        ["y"],
    ),
    "gather_elements_constant_indices": lambda: graph(
        [node("GatherElements", ["x", "i"], axis=-1)],
        {"x": [3, 5]},
        ["y"],
        [init("i", [[0, -1], [4, 2], [-5, 1]], np.int64)],
    ),
    "gather_nd": lambda: graph(
        [node("GatherND", ["x", "i"])],
        {"x": [4, 3, 5], "i": (I64, [2, 3, 2])},
        ["y"],
    ),
    "gather_nd_batch_dims": lambda: graph(
        [node("GatherND", ["x", "i"], batch_dims=1)],
        {"x": [2, 4, 3, 5]},
        ["y"],
        [init("i", [[[1, -1], [3, 0]], [[0, 2], [2, 1]]], np.int64)],
    ),
    "gather_nd_opset12": lambda: graph(
        [node("GatherND", ["x", "i"])],
        {"x": [4, 3, 5], "i": (I64, [6, 1])},
        ["y"],
        opset=12,
    ),
    "scatter_nd": lambda: graph(
        [node("ScatterND", ["x", "i", "u"])],
        {"x": [4, 3, 2], "u": [2, 3, 2]},
        ["y"],
        [init("i", [[1], [-1]], np.int64)],
    ),
    "scatter_nd_add_duplicates": lambda: graph(
        [node("ScatterND", ["x", "i", "u"], reduction="add")],
        {"x": [4, 3], "u": [3]},
        ["y"],
        [init("i", [[1, 2], [1, 2], [0, 0]], np.int64)],
    ),
    "scatter_elements_max": lambda: graph(
        [node("ScatterElements", ["x", "i", "u"], axis=-1, reduction="max")],
        {"x": [3, 4], "u": [3, 2]},
        ["y"],
        [init("i", [[0, 0], [3, 1], [2, -1]], np.int64)],
    ),
    "scatter_opset10": lambda: graph(
        [node("Scatter", ["x", "i", "u"], axis=0)],
        {"x": [3, 4], "u": [1, 4]},
        ["y"],
        [init("i", [[2, 0, 1, 2]], np.int64)],
        opset=10,
    ),
    "einsum_linear_weight": lambda: graph(
        [node("Einsum", ["x", "w"], equation="bij,jk->bik")],
        {"x": [2, 3, 5]},
        ["y"],
        [weight("w", [5, 4])],
    ),
    "einsum_weight_first_transposed": lambda: graph(
        [node("Einsum", ["w", "x"], equation="nk,...k->...n")],
        {"x": [2, 3, 5]},
        ["y"],
        [weight("w", [4, 5])],
    ),
    "einsum_attention_scores": lambda: graph(
        [node("Einsum", ["q", "k"], equation="bhqd,bhkd->bhqk")],
        {"q": [1, 2, 3, 4], "k": [1, 2, 5, 4]},
        ["y"],
    ),
    "einsum_implicit_output_and_sum": lambda: graph(
        [node("Einsum", ["a", "b"], equation="ijx,jk")],
        {"a": [3, 4, 2], "b": [4, 5]},
        ["y"],
    ),
    "einsum_one_operand": lambda: graph(
        [node("Einsum", ["x"], equation="abc->ca")], {"x": [2, 3, 4]}, ["y"]
    ),
    "conv_1d": lambda: graph(
        [node("Conv", ["x", "w", "b"], pads=[2, 1], strides=[2], dilations=[2])],
        X1D,
        ["y"],
        [weight("w", [6, 4, 3]), weight("b", [6])],
    ),
    "conv_1d_grouped_same": lambda: graph(
        [node("Conv", ["x", "w"], group=2, auto_pad="SAME_UPPER")],
        X1D,
        ["y"],
        [weight("w", [4, 2, 4])],
    ),
    "max_pool_1d": lambda: graph(
        [node("MaxPool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1])],
        X1D,
        ["y"],
    ),
    "average_pool_1d": lambda: graph(
        [node("AveragePool", ["x"], kernel_shape=[2], strides=[2])], X1D, ["y"]
    ),
    "conv_transpose": lambda: graph(
        [
            node(
                "ConvTranspose",
                ["x", "w", "b"],
                strides=[2, 3],
                pads=[1, 0, 2, 1],
                output_padding=[1, 0],
                dilations=[1, 2],
            )
        ],
        X2D,
        ["y"],
        [weight("w", [4, 3, 3, 2]), weight("b", [3])],
    ),
    "conv_transpose_grouped": lambda: graph(
        [node("ConvTranspose", ["x", "w"], group=2, strides=[2, 2])],
        X2D,
        ["y"],
        [weight("w", [4, 3, 2, 2])],
    ),
    "conv_transpose_output_shape": lambda: graph(
        [node("ConvTranspose", ["x", "w"], strides=[2, 2], output_shape=[10, 12])],
        X2D,
        ["y"],
        [weight("w", [4, 2, 3, 3])],
    ),
    "conv_transpose_same_upper": lambda: graph(
        [node("ConvTranspose", ["x", "w"], strides=[2, 2], auto_pad="SAME_UPPER")],
        X2D,
        ["y"],
        [weight("w", [4, 2, 3, 3])],
    ),
    "conv_transpose_1d": lambda: graph(
        [node("ConvTranspose", ["x", "w"], strides=[3], pads=[1, 2])],
        X1D,
        ["y"],
        [weight("w", [4, 5, 4])],
    ),
    "lstm": lambda: graph(
        [
            helper.make_node(
                "LSTM",
                ["x", "W", "R", "B"],
                ["y", "h", "c"],
                name="lstm",
                hidden_size=5,
            )
        ],
        {"x": [4, 2, 3]},
        ["y", "h", "c"],
        lstm_inputs(4, 1, 5, 3),
    ),
    "lstm_bidirectional_initial_state_peephole": lambda: graph(
        [
            helper.make_node(
                "LSTM",
                ["x", "W", "R", "B", "", "h0", "c0", "P"],
                ["y", "h"],
                name="lstm",
                hidden_size=5,
                direction="bidirectional",
            )
        ],
        {"x": [3, 2, 3], "h0": [2, 2, 5], "c0": [2, 2, 5]},
        ["y", "h"],
        lstm_inputs(4, 2, 5, 3, peephole=True),
    ),
    "lstm_reverse_clip_coupled": lambda: graph(
        [
            helper.make_node(
                "LSTM",
                ["x", "W", "R", "", "lengths"],
                ["", "h", "c"],
                name="lstm",
                hidden_size=4,
                clip=0.5,
                input_forget=1,
                direction="reverse",
                activations=["HardSigmoid", "Tanh", "Relu"],
                activation_alpha=[0.3],
                activation_beta=[0.4],
            )
        ],
        {"x": [3, 2, 3]},
        ["h", "c"],
        [*lstm_inputs(4, 1, 4, 3)[:2], init("lengths", [3, 3], np.int32)],
    ),
    "lstm_opset11": lambda: graph(
        [
            helper.make_node(
                "LSTM", ["x", "W", "R", "B"], ["y"], name="lstm", hidden_size=3
            )
        ],
        {"x": [3, 1, 2]},
        ["y"],
        lstm_inputs(4, 1, 3, 2),
        opset=11,
    ),
    "gru_linear_before_reset": lambda: graph(
        [
            helper.make_node(
                "GRU",
                ["x", "W", "R", "B"],
                ["y", "h"],
                name="gru",
                hidden_size=5,
                linear_before_reset=1,
            )
        ],
        {"x": [4, 2, 3]},
        ["y", "h"],
        lstm_inputs(3, 1, 5, 3),
    ),
    "gru_bidirectional_initial_state": lambda: graph(
        [
            helper.make_node(
                "GRU",
                ["x", "W", "R", "B", "", "h0"],
                ["y"],
                name="gru",
                hidden_size=4,
                direction="bidirectional",
            )
        ],
        {"x": [3, 2, 3], "h0": [2, 2, 4]},
        ["y"],
        lstm_inputs(3, 2, 4, 3),
    ),
    "gru_constant_initial_state": lambda: graph(
        [
            helper.make_node(
                "GRU",
                ["x", "W", "R", "B", "", "h0"],
                ["y"],
                name="gru",
                hidden_size=4,
                linear_before_reset=1,
            )
        ],
        {"x": [3, 2, 3]},
        ["y"],
        [*lstm_inputs(3, 1, 4, 3), weight("h0", [1, 2, 4])],
    ),
    "quantize_dequantize": lambda: graph(
        [
            node("QuantizeLinear", ["x", "xs", "xz"], "xq"),
            node("DequantizeLinear", ["xq", "xs", "xz"], "xf"),
            node("DequantizeLinear", ["wq", "ws", "wz"], "wf", axis=0),
            node("Conv", ["xf", "wf", "b"], pads=[1, 1, 1, 1]),
        ],
        X2D,
        ["y"],
        [
            init("xs", 0.02),
            init("xz", 128, np.uint8),
            init("wq", RNG.integers(-127, 128, [3, 4, 3, 3]), np.int8),
            init("ws", [0.01, 0.02, 0.005]),
            init("wz", [0, 0, 0], np.int8),
            weight("b", [3]),
        ],
    ),
    "quantize_per_axis_int8": lambda: graph(
        [
            node("QuantizeLinear", ["x", "s", "z"], "q", axis=1),
            node("DequantizeLinear", ["q", "s", "z"], axis=1),
        ],
        {"x": [2, 3, 4]},
        ["y"],
        [init("s", [0.01, 0.05, 0.1]), init("z", [-3, 0, 7], np.int8)],
    ),
}


def _feeds(model: onnx.ModelProto, name: str) -> dict[str, Array]:
    feeds = random_feeds(model, {}, seed=3)
    if name.startswith("is_inf_negative"):
        feeds["x"][0, :3] = [np.inf, -np.inf, np.nan]
    if name.startswith("is_nan"):
        feeds["x"][0, 0, :] = np.nan
    for key, value in feeds.items():
        if value.dtype == np.int64 and key == "i":
            bound = 3
            feeds[key] = RNG.integers(-bound, bound, value.shape).astype(np.int64)
    return feeds


def _write(tmp_path: Path, model: onnx.ModelProto) -> Path:
    path = tmp_path / "op.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewrite_matches_onnxruntime(tmp_path: Path, name: str) -> None:
    model = CASES[name]()
    path = _write(tmp_path, model)
    feeds = _feeds(model, name)
    expected = onnxruntime_outputs(model, feeds)
    prepared = prepare_model(model, {}, "op.onnx")
    assert_close(expected, onnxruntime_outputs(prepared, feeds))
    module = import_onnx(path, {})
    module.verify()
    assert_close(expected, run(module, load_weights(path, {}), feeds))


@pytest.mark.parametrize(
    "name", sorted(n for n in CASES if not n.startswith(("is_nan", "is_inf")))
)
def test_rewrite_compiles_and_verifies(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, CASES[name]())
    report = verify_model(path, "tiny", "cim-compile-static")
    assert report.passed, report.format()


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_batch_first_layout_matches_the_onnx_reference(tmp_path: Path, op: str) -> None:
    """onnxruntime refuses ``layout = 1``; onnx's reference evaluator runs it."""
    gates = 4 if op == "LSTM" else 3
    model = graph(
        [
            helper.make_node(
                op,
                ["x", "W", "R", "B", "", "h0"],
                ["y", "h"],
                name="r",
                hidden_size=4,
                layout=1,
                direction="bidirectional",
            )
        ],
        {"x": [2, 3, 3], "h0": [2, 2, 4]},
        ["y", "h"],
        lstm_inputs(gates, 2, 4, 3),
    )
    feeds = random_feeds(model, {}, seed=5)
    expected = cast(list[Array], cast(Any, ReferenceEvaluator(model)).run(None, feeds))
    path = _write(tmp_path, model)
    got = run(import_onnx(path, {}), load_weights(path, {}), feeds)
    assert_close(
        {"y": np.asarray(expected[0]), "h": np.asarray(expected[1])}, got, 1e-5
    )


def _op_counts(path: Path) -> Counter[str]:
    module = import_onnx(path, {})
    return Counter(op.name for op in module.walk())


def test_lstm_unrolls_into_one_input_product_and_a_recurrent_product_per_step(
    tmp_path: Path,
) -> None:
    counts = _op_counts(_write(tmp_path, CASES["lstm"]()))
    # x W^T for all 4 steps at once, h R^T for steps 1..3 (h0 is zero)
    assert counts["cim_graph.linear"] == 1 + 3
    assert counts["cim_graph.weight"] == 3  # W^T, R^T, bias: R^T shared
    assert counts["cim_graph.matmul"] == 0


def test_a_constant_initial_state_costs_no_recurrent_product(tmp_path: Path) -> None:
    """``h0 R^T`` of a constant ``h0`` is folded into a new weight (the arrays
    take activations only); a zero ``h0`` drops it."""
    model = CASES["gru_constant_initial_state"]()
    path = _write(tmp_path, model)
    # x W^T for the 3 steps at once, h R^T for steps 1 and 2
    assert _op_counts(path)["cim_graph.linear"] == 3
    assert any(".times." in name for name in load_weights(path, {}))
    for tensor in model.graph.initializer:
        if tensor.name == "h0":
            tensor.CopyFrom(init("h0", np.zeros([1, 2, 4])))
    path = _write(tmp_path, model)
    assert _op_counts(path)["cim_graph.linear"] == 3
    assert not any(".times." in name for name in load_weights(path, {}))


def test_einsum_with_a_weight_runs_on_the_arrays(tmp_path: Path) -> None:
    counts = _op_counts(_write(tmp_path, CASES["einsum_weight_first_transposed"]()))
    assert counts["cim_graph.linear"] == 1
    assert counts["cim_graph.matmul"] == 0


def test_one_d_convolution_is_a_two_d_one(tmp_path: Path) -> None:
    counts = _op_counts(_write(tmp_path, CASES["conv_1d"]()))
    assert counts["cim_graph.conv"] == 1


def test_dequantized_weight_is_a_float_weight(tmp_path: Path) -> None:
    path = _write(tmp_path, CASES["quantize_dequantize"]())
    weights = load_weights(path, {})
    assert weights["wq.dequantized"].dtype == np.float32
    assert _op_counts(path)["cim_graph.conv"] == 1


def test_rewritten_weights_without_data_are_shape_only() -> None:
    model = CASES["lstm"]()
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "absent.bin"
    prepared = prepare_model(model, {}, "m.onnx")
    derived = {t.name: t for t in prepared.graph.initializer}
    assert list(derived["W.lstm_w.d0"].dims) == [3, 20]
    assert derived["W.lstm_w.d0"].data_location == TensorProto.EXTERNAL


BAD: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "scatter_runtime_indices": (
        lambda: graph(
            [node("ScatterND", ["x", "i", "u"])],
            {"x": [4, 3], "i": (I64, [2, 1]), "u": [2, 3]},
            ["y"],
        ),
        r"node 'ScatterND_y' \(ScatterND\): indices 'i' must be constant",
    ),
    "einsum_diagonal": (
        lambda: graph([node("Einsum", ["x"], equation="ii->i")], {"x": [3, 3]}, ["y"]),
        r"node 'Einsum_y' \(Einsum\): equation 'ii->i' takes a diagonal",
    ),
    "lstm_runtime_lengths": (
        lambda: graph(
            [
                helper.make_node(
                    "LSTM", ["x", "W", "R", "", "n"], ["y"], name="l", hidden_size=2
                )
            ],
            {"x": [3, 1, 2], "n": (TensorProto.INT32, [1])},
            ["y"],
            lstm_inputs(4, 1, 2, 2)[:2],
        ),
        r"node 'l' \(LSTM\): sequence_lens must be a constant equal to the sequence "
        r"length 3",
    ),
    "lstm_activation": (
        lambda: graph(
            [
                helper.make_node(
                    "LSTM",
                    ["x", "W", "R"],
                    ["y"],
                    name="l",
                    hidden_size=2,
                    activations=["Sigmoid", "Elu", "Tanh"],
                )
            ],
            {"x": [3, 1, 2]},
            ["y"],
            lstm_inputs(4, 1, 2, 2)[:2],
        ),
        r"node 'l' \(LSTM\): activation 'Elu' is not supported",
    ),
    "lstm_runtime_weight": (
        lambda: graph(
            [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="l", hidden_size=2)],
            {"x": [3, 1, 2], "W": [1, 8, 2]},
            ["y"],
            lstm_inputs(4, 1, 2, 2)[1:2],
        ),
        r"node 'l' \(LSTM\): 'W' must be a weight \(an initializer\) or a constant",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_what_is_not_rewritten_is_one_line(tmp_path: Path, name: str) -> None:
    build, pattern = BAD[name]
    path = _write(tmp_path, build())
    with pytest.raises(CimError, match=pattern) as info:
        import_onnx(path, {})
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: ")
