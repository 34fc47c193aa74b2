"""Small ONNX models for the functional-verification tests, built with onnx.helper."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cimflow.tools import model_builders as mb


class _Graph:
    """Nodes and random float32 initializers under construction."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.3) -> str:
        values = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{op.lower()}_{self.count}"
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=f"n{self.count}", **attrs)
        )
        return out

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        groups: int = 1,
        bias: bool = True,
        **attrs: Any,
    ) -> str:
        index = self.count + 1
        w = self.weight(f"conv{index}.weight", (cout, cin // groups, kernel, kernel))
        inputs = [x, w]
        if bias:
            inputs.append(self.weight(f"conv{index}.bias", (cout,)))
        return self.node("Conv", inputs, group=groups, **attrs)

    def model(
        self,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name, inputs, outputs, initializer=self.initializers
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def save_model(graph: onnx.GraphProto, path: Path) -> Path:
    """``graph`` as a checked opset-17 model written to ``path``."""
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def two_layer_mlp(
    path: Path, first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]
) -> Path:
    """x [6, K] -> MatMul ``first`` (w1) -> Relu -> MatMul ``second`` (w2),
    written to ``path``."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, first.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, second.shape[1]])],
        [numpy_helper.from_array(first, "w1"), numpy_helper.from_array(second, "w2")],
    )
    return save_model(graph, path)


def cnn(seed: int = 0, image: int = 12) -> onnx.ModelProto:
    """A CNN with stride, symmetric and asymmetric padding, dilation, a grouped
    and a depthwise convolution, residual adds, pooling and a classifier.

    On ``tiny`` the depthwise weight packs 3 groups per array, and the last
    convolution (K = 72, N = 32: 3 row tiles x 4 column tiles) streams.
    """
    g = _Graph(seed)
    x = "image"
    stem = g.node("Relu", [g.conv(x, 4, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1])])
    grouped = g.conv(stem, 8, 8, 3, groups=2, dilations=[2, 2], pads=[2, 2, 2, 2])
    block = g.node("Relu", [g.node("Add", [grouped, stem])])
    depthwise = g.conv(block, 8, 8, 3, groups=8, pads=[1, 1, 1, 1])
    depthwise = g.node("Clip", [depthwise, _scalar(g, 0.0), _scalar(g, 6.0)])
    pointwise = g.conv(depthwise, 8, 8, 1, bias=False)
    block = g.node("Add", [pointwise, block])
    wide = g.conv(block, 8, 32, 3, strides=[2, 1], pads=[0, 1, 1, 0])
    wide = g.node("Relu", [wide])
    pooled = g.node("GlobalAveragePool", [wide])
    flat = g.node("Flatten", [pooled], axis=1)
    fc_w = g.weight("fc.weight", (10, 32))
    fc_b = g.weight("fc.bias", (10,))
    g.node("Gemm", [flat, fc_w, fc_b], transB=1)
    g.nodes[-1].output[0] = "logits"
    return g.model(
        "cnn",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 4, image, image])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
    )


def _scalar(g: _Graph, value: float) -> str:
    name = f"const_{len(g.initializers)}"
    g.initializers.append(numpy_helper.from_array(np.array(value, np.float32), name))
    return name


def wide_linear(
    seed: int = 0, vectors: int = 3, k: int = 300, n: int = 40
) -> onnx.ModelProto:
    """``relu(x @ W1 + b1) @ W2``: W1 needs more row tiles than ``tiny`` has
    arrays, so it streams in chunks cut by rows and columns."""
    g = _Graph(seed)
    w1 = g.weight("w1", (k, n), scale=0.05)
    b1 = g.weight("b1", (n,))
    hidden = g.node("Add", [g.node("MatMul", ["x", w1]), b1])
    hidden = g.node("Relu", [hidden])
    w2 = g.weight("w2", (n, 8))
    g.node("MatMul", [hidden, w2])
    g.nodes[-1].output[0] = "y"
    return g.model(
        "wide_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [vectors, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [vectors, 8])],
    )


def one_linear(vectors: int, k: int, n: int, bias: bool = False) -> onnx.ModelProto:
    """``y = x @ w`` (``+ b`` with ``bias``, as a Gemm), ``x [vectors, k]``,
    ``w [k, n]`` seeded."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0.0, 0.05, (k, n)).astype(np.float32)
    initializers = [numpy_helper.from_array(weight, "w")]
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")
    if bias:
        offsets = rng.normal(0.0, 0.05, (n,)).astype(np.float32)
        initializers.append(numpy_helper.from_array(offsets, "b"))
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")
    graph = helper.make_graph(
        [node],
        "one_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [vectors, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [vectors, n])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def matmul_relu_chain(layers: int, rows: int, width: int = 24) -> onnx.ModelProto:
    """``x [rows, width]`` through ``layers`` MatMul + Relu pairs: weights
    ``w{i}`` (``width x width``, seeded, scale 0.2), products ``m{i}``,
    activations ``r{i}``; the last ``r`` is the output."""
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights: list[TensorProto] = []
    x = "x"
    for i in range(layers):
        values = (rng.standard_normal((width, width)) / 5).astype(np.float32)
        weights.append(numpy_helper.from_array(values, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [rows, width])],
        weights,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    onnx.checker.check_model(model)
    return model


def integer_linear(
    seed: int = 0, vectors: int = 4, k: int = 80, n: int = 12
) -> onnx.ModelProto:
    """``x @ W`` with integer weights in ``[-127, 127]`` reaching both ends,
    so 8-bit symmetric quantization represents them exactly (scale 1)."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (k, n)).astype(np.float32)
    weight[0, 0], weight[1, 1] = 127, -127
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    graph = helper.make_graph(
        [node],
        "integer_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [vectors, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [vectors, n])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def attention(heads: int, rows: int, width: int) -> onnx.ModelProto:
    """``softmax(q @ kt) @ v`` of model inputs ``q [heads, rows, width]``,
    ``kt [heads, width, rows]``, ``v [heads, rows, width]``: no weights, so
    every array is free for the two matmuls."""
    nodes = [
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="scores"),
        helper.make_node("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["probs", "v"], ["out"], name="context"),
    ]

    def tensor(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes,
        "attention",
        [
            tensor("q", [heads, rows, width]),
            tensor("kt", [heads, width, rows]),
            tensor("v", [heads, rows, width]),
        ],
        [tensor("out", [heads, rows, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


FAMILIES: dict[str, Callable[[], onnx.ModelProto]] = {
    "cnn": cnn,
    "resnet": lambda: mb.resnet_tiny(weights="random"),
    "mobilenetv2": lambda: mb.mobilenetv2_tiny(weights="random"),
    "vit": lambda: mb.vit_tiny(weights="random"),
    # a wider feed-forward layer than the defaults, so it streams on tiny
    "bert": lambda: mb.bert_tiny(weights="random", intermediate=96),
    "gpt2": lambda: mb.gpt2_tiny(weights="random"),
    "llama": lambda: mb.llama_tiny(weights="random", intermediate=96),
    "wide_linear": wide_linear,
    # the other exporter's node patterns (explicit Pad, BatchNormalization)
    "mobilenetv2_dynamo": lambda: mb.mobilenetv2_tiny(
        weights="random", exporter="dynamo"
    ),
    # one new token against a KV cache (past_key_values in, present out)
    "gpt2_decode": lambda: mb.gpt2_tiny(weights="random", phase="decode"),
    "llama_decode": lambda: mb.llama_tiny(
        weights="random", intermediate=96, phase="decode", exporter="dynamo"
    ),
}
"""Every family the functional tests compile: the issue's CNN (stride,
padding, dilation, groups, depthwise, residuals), MobileNetV2 blocks, BERT,
GPT-2 and LLaMA (RMSNorm, rotary embeddings, GQA, SiLU-gated MLP) layers,
ViT and ResNet, a linear layer streamed in row- and column-cut chunks, and
the other exporter's patterns and the decode phase of the decoders."""


def quantized_by_onnxruntime(model: onnx.ModelProto, directory: Path) -> Path:
    """The CNN ``model`` (input ``image`` [1, 4, 12, 12]) quantized by
    onnxruntime's quantization tool: QDQ format, int8 weights with
    per-channel scales, uint8 activations calibrated on four seeded images;
    written to ``directory``."""
    quantization = cast(Any, importlib.import_module("onnxruntime.quantization"))

    class Images:
        """Calibration inputs (onnxruntime calls ``get_next`` until None)."""

        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            shape = (1, 4, 12, 12)
            self.images = iter(
                [
                    {"image": rng.standard_normal(shape).astype(np.float32)}
                    for _ in range(4)
                ]
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.images, None)

    source = directory / "cnn.onnx"
    onnx.save(model, source)
    quantized = directory / "cnn.qdq.onnx"
    quantization.quantize_static(
        str(source),
        str(quantized),
        Images(),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=True,
        weight_type=quantization.QuantType.QInt8,
        activation_type=quantization.QuantType.QUInt8,
    )
    return quantized


def padded_conv(
    channels: int, outputs: int, image: int, relu_first: bool = False
) -> onnx.ModelProto:
    """``x [1, channels, image, image]`` through a padded 3 x 3 convolution
    of zero weights; with ``relu_first`` through a ReLU before it (so the
    convolution's input is made on chip, not read from DRAM)."""
    weight = numpy_helper.from_array(
        np.zeros((outputs, channels, 3, 3), np.float32), "w"
    )
    source = "r" if relu_first else "x"
    nodes = [helper.make_node("Conv", [source, "w"], ["y"], pads=[1, 1, 1, 1])]
    if relu_first:
        nodes.insert(0, helper.make_node("Relu", ["x"], ["r"], name="relu"))
    graph = helper.make_graph(
        nodes,
        "padded_conv",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, [1, channels, image, image]
            )
        ],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [1, outputs, image, image]
            )
        ],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
