"""User errors of the ONNX frontend: one line, naming the file and what is wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_weights, onnx_frontend
from cimflow.frontend.supported import SUPPORTED_OPS_DOC
from cimflow.tools import model_builders as mb


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] | None = None,
    opset: int = 17,
    domains: dict[str, int] | None = None,
) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in (domains or {}).items()
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers or [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def float_input(
    name: str, shape: Sequence[str | int | None] | None
) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def expect_error(path: Path, pattern: str, dims: dict[str, int] | None = None) -> str:
    with pytest.raises(CimError) as info:
        import_onnx(path, dims or {})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert re.search(pattern, message), message
    return message


def write(tmp_path: Path, model: onnx.ModelProto, name: str = "m") -> Path:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_unsupported_op_names_node_op_and_where_the_list_is(tmp_path: Path) -> None:
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="first"),
            helper.make_node("Hardmax", ["r"], ["y"], name="the_node"),
        ],
        [float_input("x", [1, 4])],
        [float_input("y", [1, 4])],
    )
    path = write(tmp_path, model)
    message = expect_error(path, r"node 'the_node' has unsupported op type 'Hardmax'")
    assert SUPPORTED_OPS_DOC in message
    assert "python -m cimflow.frontend.list_ops" in message
    assert "Conv" not in message


def test_unsupported_op_of_unnamed_node_uses_its_index(tmp_path: Path) -> None:
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("FusedMatMul", ["r", "r"], ["y"], domain="com.microsoft"),
        ],
        [float_input("x", [4, 4])],
        [float_input("y", [4, 4])],
        domains={"com.microsoft": 1},
    )
    expect_error(
        write(tmp_path, model),
        r"node '#1' has unsupported op type 'com\.microsoft\.FusedMatMul' "
        r"\(supported ops: ",
    )


def test_unresolved_symbolic_dim(tmp_path: Path) -> None:
    path = write(tmp_path, mb.bert_tiny(exporter="dynamo"))
    expect_error(
        path,
        r"input 'input_ids' has symbolic dimension 'sequence'; "
        r"pass --dim sequence=VALUE",
        {"batch": 1},
    )


def test_nonpositive_dim_value(tmp_path: Path) -> None:
    path = write(tmp_path, mb.resnet_tiny())
    expect_error(path, r"'batch' must be positive", {"batch": 0})


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe")
    expect_error(path, r"(cannot read the ONNX model|not an ONNX model)")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    expect_error(path, r"not an ONNX model")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    expect_error(path, r"no such file")
    with pytest.raises(CimError, match=r"absent\.onnx"):
        onnx_frontend(str(path), {})


def test_load_weights_without_data(tmp_path: Path) -> None:
    path = write(tmp_path, mb.resnet_tiny(weights="shape_only"))
    with pytest.raises(CimError, match=r"resnet_tiny|m\.onnx.*weight data") as info:
        load_weights(path, {"batch": 1})
    assert "\n" not in str(info.value)


def test_shape_inference_failure(tmp_path: Path) -> None:
    model = make_model(
        [helper.make_node("Add", ["x", "z"], ["y"], name="bad_add")],
        [float_input("x", [2, 3]), float_input("z", [4])],
        [float_input("y", None)],
    )
    expect_error(write(tmp_path, model), r"shape inference failed: .*bad_add")


def test_dynamic_shape_names_node_and_output(tmp_path: Path) -> None:
    model = make_model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="dyn")],
        [
            float_input("x", [2, 6]),
            helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
        ],
        [float_input("y", None)],
    )
    expect_error(
        write(tmp_path, model),
        r"cannot infer a static shape for output 'y' of node 'dyn' \(Reshape\)",
    )


def test_non_constant_range(tmp_path: Path) -> None:
    model = make_model(
        [
            helper.make_node("Constant", [], ["zero"], value_int=0),
            helper.make_node("Constant", [], ["one"], value_int=1),
            helper.make_node("Range", ["zero", "n", "one"], ["y"], name="rng"),
        ],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
    )
    expect_error(
        write(tmp_path, model),
        r"node 'rng' has unsupported op type 'Range' \(supported ops: .*\); other "
        r"ops are folded only when every input is a constant, and 'n' is not$",
    )


def test_negative_slice_step(tmp_path: Path) -> None:
    constants = [
        numpy_helper.from_array(np.array([v], np.int64), n)
        for n, v in (("starts", -1), ("ends", -100), ("axes", 1), ("steps", -1))
    ]
    model = make_model(
        [
            helper.make_node(
                "Slice", ["x", "starts", "ends", "axes", "steps"], ["y"], name="rev"
            )
        ],
        [float_input("x", [2, 5])],
        [float_input("y", None)],
        constants,
    )
    expect_error(
        write(tmp_path, model), r"node 'rev' \(Slice\): slice steps must be positive"
    )


def test_conv_weight_must_be_an_initializer(tmp_path: Path) -> None:
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
        [float_input("x", [1, 2, 5, 5]), float_input("w", [3, 2, 3, 3])],
        [float_input("y", None)],
    )
    expect_error(
        write(tmp_path, model), r"node 'c' \(Conv\): weight 'w' must be an initializer"
    )


def test_ceil_mode_pooling(tmp_path: Path) -> None:
    model = make_model(
        [
            helper.make_node(
                "MaxPool",
                ["x"],
                ["y"],
                name="p",
                kernel_shape=[2, 2],
                strides=[2, 2],
                ceil_mode=1,
            )
        ],
        [float_input("x", [1, 1, 5, 5])],
        [float_input("y", None)],
    )
    expect_error(
        write(tmp_path, model), r"node 'p' \(MaxPool\): ceil_mode=1 is not supported"
    )


def test_training_mode_batchnorm(tmp_path: Path) -> None:
    params = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in "sbmv"]
    model = make_model(
        [
            helper.make_node(
                "BatchNormalization",
                ["x", "s", "b", "m", "v"],
                ["y", "rm", "rv"],
                name="bn",
                training_mode=1,
            )
        ],
        [float_input("x", [1, 2, 3, 3])],
        [float_input("y", None)],
        params,
    )
    expect_error(
        write(tmp_path, model), r"node 'bn' is a BatchNormalization in training mode"
    )


def test_undefined_value(tmp_path: Path) -> None:
    model = make_model(
        [helper.make_node("Relu", ["nowhere"], ["y"], name="r")],
        [float_input("x", [1])],
        [float_input("y", [1])],
    )
    expect_error(write(tmp_path, model), r"node 'r' uses 'nowhere'")


def test_unsorted_graph_is_accepted(tmp_path: Path) -> None:
    model = make_model(
        [
            helper.make_node("Relu", ["a"], ["y"], name="second"),
            helper.make_node("Neg", ["x"], ["a"], name="first"),
        ],
        [float_input("x", [3])],
        [float_input("y", [3])],
    )
    text = str(import_onnx(write(tmp_path, model)))
    assert text.index("neg") < text.index("relu")
