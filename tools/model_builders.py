"""ONNX models in the shapes PyTorch's exporters produce, built without torch.

Every builder takes its sizes as parameters and:

* ``exporter`` — ``"torchscript"`` mimics ``torch.onnx.export`` (opset 17,
  node names like ``/layer1/layer1.0/conv1/Conv``, ``Constant`` nodes,
  BatchNorm already folded into ``onnx::Conv_*`` weights, linear layers as
  ``MatMul`` by a pre-transposed ``onnx::MatMul_*`` plus ``Add(bias, ·)``,
  shape arithmetic as ``Shape → Gather → Unsqueeze → Concat``);
  ``"dynamo"`` mimics ``torch.onnx.export(dynamo=True)`` (opset 18 or 20,
  node names like ``node_Conv_3``, parameters under their module names,
  ``BatchNormalization`` nodes, ``Transpose(W) → MatMul``, ``Shape`` with
  ``start``/``end``, constants as ``val_*`` initializers);
* ``weights`` — ``"random"`` stores float32 data drawn from
  ``numpy.random.default_rng(seed)``; ``"shape_only"`` stores every tensor
  larger than 1 KiB as external data in a file that is never written (as a
  model exported with external data and shipped without it);
* ``batch`` / ``sequence`` — an int for a static dimension or a name for a
  symbolic one;
* ``phase`` (decoder transformers: GPT-2, LLaMA, OPT) — ``"prefill"`` runs
  ``sequence`` tokens under a causal mask; ``"decode"`` runs one new token
  per sequence (``input_ids`` ``[batch, 1]``) against a KV cache of
  ``sequence`` past positions: per layer ``past_key_values.{i}.key`` /
  ``.value`` inputs ``[batch, kv_heads, sequence, head_dim]``, concatenated
  with the new key/value along the sequence axis into the
  ``present.{i}.key`` / ``.value`` outputs, with positions starting at
  ``sequence``. ``use_cache=True`` gives a prefill graph the ``present``
  outputs too (the K/V of its ``sequence`` tokens), as HF's
  ``use_cache`` exports do.

Builders are deterministic: the same arguments give byte-identical
``SerializeToString()``.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto, numpy_helper

Exporter = Literal["torchscript", "dynamo"]
Weights = Literal["random", "shape_only"]
Phase = Literal["prefill", "decode"]
Dim = int | str

EXTERNAL_THRESHOLD = 1024
"""Tensors of more bytes are external in ``shape_only`` models (torch's default)."""

_FLOAT32_MIN = float(np.finfo(np.float32).min)
_INT64_MAX = int(np.iinfo(np.int64).max)


class _Builder:
    """Graph under construction, with the naming conventions of one exporter."""

    def __init__(
        self,
        name: str,
        exporter: Exporter,
        weights: Weights,
        seed: int,
        opset: int | None = None,
    ):
        if exporter not in ("torchscript", "dynamo"):
            raise ValueError(f"unknown exporter {exporter!r}")
        if weights not in ("random", "shape_only"):
            raise ValueError(f"unknown weights mode {weights!r}")
        self.name = name
        self.exporter: Exporter = exporter
        self.weights: Weights = weights
        self.rng = np.random.default_rng(seed)
        self.opset = opset or (17 if exporter == "torchscript" else 18)
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[ValueInfoProto] = []
        self.outputs: list[ValueInfoProto] = []
        self.scopes: list[str] = []
        self.counts: dict[str, int] = {}
        self.serial = 0
        self.data_offset = 0
        self.data_file = f"{name}.onnx.data"

    @property
    def torchscript(self) -> bool:
        return self.exporter == "torchscript"

    # -- naming ---------------------------------------------------------------

    def _count(self, key: str) -> int:
        count = self.counts.get(key, 0)
        self.counts[key] = count + 1
        return count

    @contextmanager
    def scope(self, *names: str) -> Generator[None]:
        """Nest node names under module names (torchscript ``/a/a.0/conv/Conv``)."""
        self.scopes.extend(names)
        try:
            yield
        finally:
            del self.scopes[len(self.scopes) - len(names) :]

    def _names(
        self, op_type: str, outputs: int, hint: str | None
    ) -> tuple[str, list[str]]:
        if self.torchscript:
            base = "/" + "".join(f"{s}/" for s in self.scopes) + op_type
            count = self._count(base)
            name = base if count == 0 else f"{base}_{count}"
            return name, [f"{name}_output_{i}" for i in range(outputs)]
        self.serial += 1
        name = f"node_{op_type}_{self.serial}"
        base = hint or op_type.lower()
        values: list[str] = []
        for _ in range(outputs):
            count = self._count(f"value:{base}")
            values.append(base if count == 0 else f"{base}_{count}")
        return name, values

    # -- nodes ----------------------------------------------------------------

    def ops(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: int = 1,
        hint: str | None = None,
        out_names: Sequence[str] | None = None,
        **attrs: Any,
    ) -> list[str]:
        name, values = self._names(op_type, outputs, hint)
        if out_names is not None:
            values = list(out_names)
        self.nodes.append(
            onnx.helper.make_node(op_type, list(inputs), values, name=name, **attrs)
        )
        return values

    def op(
        self,
        op_type: str,
        *inputs: str,
        hint: str | None = None,
        out: str | None = None,
        **attrs: Any,
    ) -> str:
        return self.ops(
            op_type, inputs, 1, hint, None if out is None else [out], **attrs
        )[0]

    # -- constants and parameters ---------------------------------------------

    def const(self, value: npt.ArrayLike, dtype: npt.DTypeLike | None = None) -> str:
        """A constant: ``Constant`` node (torchscript, dynamo scalars) or ``val_*``."""
        array = np.asarray(value, dtype=dtype)
        tensor = numpy_helper.from_array(array, "value")
        if self.torchscript:
            return self.op("Constant", value=tensor)
        name = f"val_{self._count('val')}"
        if array.size == 1:
            return self.op("Constant", out=name, value=tensor)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def scalar(self, value: float, dtype: npt.DTypeLike = np.float32) -> str:
        return self.const(np.array(value, dtype=dtype))

    def tensor(self, name: str, array: npt.NDArray[Any]) -> str:
        """An initializer with the given values (external if shape-only and large)."""
        array = np.asarray(array)
        if self.weights == "shape_only" and array.nbytes > EXTERNAL_THRESHOLD:
            self.initializers.append(self._external(name, array.shape, array.dtype))
        else:
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def _external(
        self, name: str, shape: Sequence[int], dtype: np.dtype[Any]
    ) -> TensorProto:
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
        tensor.dims.extend(shape)
        tensor.data_location = TensorProto.EXTERNAL
        length = math.prod(shape) * dtype.itemsize
        for key, value in (
            ("location", self.data_file),
            ("offset", str(self.data_offset)),
            ("length", str(length)),
        ):
            entry = tensor.external_data.add()
            entry.key = key
            entry.value = value
        self.data_offset += -(-length // 4096) * 4096
        return tensor

    def param(
        self, name: str, shape: Sequence[int], kind: str = "normal", std: float = 0.02
    ) -> str:
        """A float32 parameter; shape-only parameters over 1 KiB draw no numbers."""
        count = math.prod(shape)
        if self.weights == "shape_only" and count * 4 > EXTERNAL_THRESHOLD:
            self.initializers.append(self._external(name, shape, np.dtype(np.float32)))
            return name
        rng = self.rng
        if kind in ("gamma", "var"):
            values = rng.uniform(0.5, 1.5, shape)
        elif kind == "ones":
            values = 1.0 + rng.normal(0.0, 0.05, shape)
        else:
            values = rng.normal(0.0, std, shape)
        return self.tensor(name, values.astype(np.float32))

    def ts_name(self, op_type: str) -> str:
        """A name torchscript's constant folding gives a new initializer."""
        return f"onnx::{op_type}_{1000 + self._count('onnx::')}"

    # -- graph interface ------------------------------------------------------

    def input(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        self.inputs.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(
        self, value: str, name: str, elem_type: int, shape: Sequence[Dim]
    ) -> None:
        """Declare ``value`` (renamed to ``name``) a graph output."""
        for node in self.nodes if value != name else ():
            for index, out in enumerate(node.output):
                if out == value:
                    node.output[index] = name
            for index, inp in enumerate(node.input):
                if inp == value:
                    node.input[index] = name
        self.outputs.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))

    def build(self) -> ModelProto:
        graph = onnx.helper.make_graph(
            self.nodes, "main_graph", self.inputs, self.outputs, self.initializers
        )
        model = onnx.helper.make_model(
            graph,
            opset_imports=[onnx.helper.make_opsetid("", self.opset)],
            producer_name="pytorch",
            producer_version="2.5.0",
            ir_version=8 if self.torchscript else 10,
        )
        model.doc_string = f"cimflow synthetic {self.name} ({self.exporter} style)"
        return model

    # -- common layers --------------------------------------------------------

    def shape_dims(self, x: str, dims: Sequence[int], rank: int) -> list[str]:
        """1-D int64 values holding ``x.shape[d]`` for each ``d`` in ``dims``."""
        result: list[str] = []
        if self.torchscript:
            for d in dims:
                shape = self.op("Shape", x)
                item = self.op(
                    "Gather", shape, self.const(np.array(d, np.int64)), axis=0
                )
                result.append(self.op("Unsqueeze", item, self.ints(0)))
            return result
        for d in dims:
            d = d % rank
            result.append(self.op("Shape", x, hint="sym_size_int", start=d, end=d + 1))
        return result

    def dynamic_shape(self, parts: Sequence[str | int]) -> str:
        """Concat of symbolic sizes (1-D values) and static ints into a shape."""
        pieces: list[str] = []
        statics: list[int] = []

        def flush() -> None:
            if not statics:
                return
            if self.torchscript:
                pieces.extend(self.ints(v) for v in statics)
            else:
                pieces.append(self.ints(*statics))
            statics.clear()

        for part in parts:
            if isinstance(part, int):
                statics.append(part)
            else:
                flush()
                pieces.append(part)
        flush()
        return self.op("Concat", *pieces, hint="cat", axis=0)

    def reshape(self, x: str, shape: str, hint: str = "view") -> str:
        return self.op("Reshape", x, shape, hint=hint)

    def unsqueeze(self, x: str, *axes: int) -> str:
        return self.op("Unsqueeze", x, self.ints(*axes))

    def linear(
        self,
        x: str,
        prefix: str,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        scope: str | None = None,
    ) -> str:
        """``nn.Linear``: Gemm on 2-D inputs, MatMul (+ Add) otherwise."""
        std = 1.0 / math.sqrt(in_features)
        with self.scope(*([scope] if scope else [])):
            if rank == 2:
                w = self.param(f"{prefix}.weight", [out_features, in_features], std=std)
                inputs = [x, w]
                if bias:
                    inputs.append(self.param(f"{prefix}.bias", [out_features]))
                return self.op(
                    "Gemm", *inputs, hint="linear", alpha=1.0, beta=1.0, transB=1
                )
            if self.torchscript:
                w = self.param(
                    self.ts_name("MatMul"), [in_features, out_features], std=std
                )
                y = self.op("MatMul", x, w)
                if bias:
                    y = self.op("Add", self.param(f"{prefix}.bias", [out_features]), y)
                return y
            w = self.param(f"{prefix}.weight", [out_features, in_features], std=std)
            wt = self.op("Transpose", w, hint="t", perm=[1, 0])
            y = self.op("MatMul", x, wt, hint="matmul")
            if bias:
                y = self.op(
                    "Add",
                    y,
                    self.param(f"{prefix}.bias", [out_features]),
                    hint="linear",
                )
            return y

    def layer_norm(
        self, x: str, prefix: str, dim: int, eps: float, scope: str | None = None
    ) -> str:
        """``nn.LayerNorm``; decomposed as torch exports it before opset 17."""
        with self.scope(*([scope] if scope else [])):
            gamma = self.param(f"{prefix}.weight", [dim], kind="ones")
            beta = self.param(f"{prefix}.bias", [dim])
            if self.opset >= 17:
                return self.op(
                    "LayerNormalization",
                    x,
                    gamma,
                    beta,
                    hint="layer_norm",
                    axis=-1,
                    epsilon=eps,
                )
            mean = self.op("ReduceMean", x, axes=[-1], keepdims=1)
            centered = self.op("Sub", x, mean)
            square = self.op("Pow", centered, self.scalar(2.0))
            variance = self.op("ReduceMean", square, axes=[-1], keepdims=1)
            root = self.op("Sqrt", self.op("Add", variance, self.scalar(eps)))
            normed = self.op("Div", centered, root)
            return self.op("Add", self.op("Mul", normed, gamma), beta)

    def gelu_erf(self, x: str) -> str:
        """``nn.GELU()``: ``x * 0.5 * (1 + erf(x / √2))`` or ``Gelu`` (opset 20)."""
        if not self.torchscript and self.opset >= 20:
            return self.op("Gelu", x, hint="gelu", approximate="none")
        scaled = self.op("Div", x, self.scalar(math.sqrt(2.0)))
        erf = self.op("Erf", scaled)
        gate = self.op("Add", erf, self.scalar(1.0))
        product = self.op("Mul", x, gate)
        return self.op("Mul", product, self.scalar(0.5), hint="gelu")

    def gelu_tanh(self, x: str) -> str:
        """HF ``gelu_new``: ``0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))``."""
        half = self.op("Mul", x, self.scalar(0.5))
        cube = self.op("Pow", x, self.scalar(3.0))
        term = self.op("Mul", cube, self.scalar(0.044715))
        inner = self.op("Add", x, term)
        scaled = self.op("Mul", inner, self.scalar(math.sqrt(2.0 / math.pi)))
        gate = self.op("Add", self.op("Tanh", scaled), self.scalar(1.0))
        return self.op("Mul", half, gate, hint="gelu")

    def attention_scores(
        self, q: str, k_t: str, head_dim: int, scale: float | None = None
    ) -> str:
        """``q @ kᵀ / √d`` (torchscript) or SDPA's ``(q√s) @ (kᵀ√s)`` (dynamo),
        ``s`` being ``scale`` (default ``1/√d``)."""
        if self.torchscript:
            scores = self.op("MatMul", q, k_t)
            return self.op("Div", scores, self.scalar(math.sqrt(head_dim)))
        if scale is None:
            scale = 1.0 / math.sqrt(head_dim)
        root = self.scalar(math.sqrt(scale))
        q_scaled = self.op("Mul", q, root, hint="mul")
        k_scaled = self.op("Mul", k_t, root, hint="mul")
        return self.op("MatMul", q_scaled, k_scaled, hint="matmul")


def _finish(builder: _Builder) -> ModelProto:
    model = builder.build()
    if builder.weights == "random":
        onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------
# ResNet
# ----------------------------------------------------------------------------


def _conv_bn(
    b: _Builder,
    x: str,
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    conv: str,
    bn: str,
    groups: int = 1,
    padding: int | None = None,
) -> str:
    """Conv + BatchNorm: one Conv with folded weights in torchscript style."""
    pad = kernel // 2 if padding is None else padding
    std = math.sqrt(2.0 / (cin // groups * kernel * kernel))
    attrs: dict[str, Any] = {
        "dilations": [1, 1],
        "group": groups,
        "kernel_shape": [kernel, kernel],
        "pads": [pad] * 4,
        "strides": [stride, stride],
    }
    wshape = [cout, cin // groups, kernel, kernel]
    if b.torchscript:
        with b.scope(conv.rsplit(".", 1)[-1]):
            w = b.param(b.ts_name("Conv"), wshape, std=std)
            bias = b.param(b.ts_name("Conv"), [cout])
            return b.op("Conv", x, w, bias, **attrs)
    w = b.param(f"{conv}.weight", wshape, std=std)
    y = b.op("Conv", x, w, hint="conv2d", **attrs)
    params = [
        b.param(f"{bn}.weight", [cout], kind="gamma"),
        b.param(f"{bn}.bias", [cout], std=0.1),
        b.param(f"{bn}.running_mean", [cout], std=0.1),
        b.param(f"{bn}.running_var", [cout], kind="var"),
    ]
    return b.op(
        "BatchNormalization",
        y,
        *params,
        hint="batch_norm",
        epsilon=1e-5,
        momentum=0.9,
        training_mode=0,
    )


def _relu(b: _Builder, x: str, module: str = "relu") -> str:
    with b.scope(module):
        return b.op("Relu", x, hint="relu")


def _classifier_head(
    b: _Builder, x: str, channels: int, classes: int, global_pool: str
) -> str:
    """Global average pool, flatten and the final fully connected layer."""
    if global_pool == "global":
        with b.scope("avgpool"):
            pooled = b.op("GlobalAveragePool", x, hint="adaptive_avg_pool2d")
    else:
        pooled = b.op("ReduceMean", x, b.ints(-1, -2), hint="mean", keepdims=1)
    if b.torchscript:
        flat = b.op("Flatten", pooled, axis=1)
    else:
        batch = b.shape_dims(pooled, [0], 4)[0]
        flat = b.reshape(pooled, b.dynamic_shape([batch, channels]))
    return b.linear(flat, "fc", channels, classes, rank=2, scope="fc")


def resnet(
    layers: Sequence[int],
    block: Literal["basic", "bottleneck"] = "basic",
    widths: Sequence[int] = (64, 128, 256, 512),
    stem_width: int = 64,
    num_classes: int = 1000,
    image: int = 224,
    batch: Dim = "batch",
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "resnet",
) -> ModelProto:
    """torchvision-style ResNet (v1.5: stride on the 3x3 conv of bottlenecks)."""
    b = _Builder(name, exporter, weights, seed)
    x = b.input("input", TensorProto.FLOAT, [batch, 3, image, image])
    x = _conv_bn(b, x, 3, stem_width, 7, 2, "conv1", "bn1", padding=3)
    x = _relu(b, x)
    with b.scope("maxpool"):
        x = b.op(
            "MaxPool",
            x,
            hint="max_pool2d",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
            ceil_mode=0,
            dilations=[1, 1],
        )
    expansion = 4 if block == "bottleneck" else 1
    cin = stem_width
    for stage, (width, count) in enumerate(zip(widths, layers, strict=True)):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            prefix = f"layer{stage + 1}.{index}"
            with b.scope(f"layer{stage + 1}", prefix):
                x, cin = _residual_block(
                    b, x, cin, width, expansion, stride, prefix, block
                )
    return _finish_classifier(b, x, cin, num_classes, "global", batch)


def _finish_classifier(
    b: _Builder, x: str, channels: int, classes: int, pool: str, batch: Dim
) -> ModelProto:
    logits = _classifier_head(
        b, x, channels, classes, pool if b.torchscript else "mean"
    )
    b.output(logits, "output", TensorProto.FLOAT, [batch, classes])
    return _finish(b)


def _residual_block(
    b: _Builder,
    x: str,
    cin: int,
    width: int,
    expansion: int,
    stride: int,
    prefix: str,
    block: str,
) -> tuple[str, int]:
    cout = width * expansion
    if block == "bottleneck":
        y = _conv_bn(b, x, cin, width, 1, 1, f"{prefix}.conv1", f"{prefix}.bn1")
        y = _relu(b, y)
        y = _conv_bn(b, y, width, width, 3, stride, f"{prefix}.conv2", f"{prefix}.bn2")
        y = _relu(b, y, "relu_1")
        y = _conv_bn(b, y, width, cout, 1, 1, f"{prefix}.conv3", f"{prefix}.bn3")
    else:
        y = _conv_bn(b, x, cin, width, 3, stride, f"{prefix}.conv1", f"{prefix}.bn1")
        y = _relu(b, y)
        y = _conv_bn(b, y, width, cout, 3, 1, f"{prefix}.conv2", f"{prefix}.bn2")
    shortcut = x
    if stride != 1 or cin != cout:
        with b.scope("downsample", "downsample.0"):
            shortcut = _conv_bn(
                b,
                x,
                cin,
                cout,
                1,
                stride,
                f"{prefix}.downsample.0",
                f"{prefix}.downsample.1",
                padding=0,
            )
    total = b.op("Add", y, shortcut, hint="add")
    return _relu(b, total, "relu_2" if block == "bottleneck" else "relu_1"), cout


def resnet18(**kwargs: Any) -> ModelProto:
    """ResNet-18 (basic blocks 2-2-2-2), 224x224, 1000 classes."""
    return resnet([2, 2, 2, 2], "basic", name="resnet18", **kwargs)


def resnet50(**kwargs: Any) -> ModelProto:
    """ResNet-50 (bottleneck blocks 3-4-6-3), 224x224, 1000 classes."""
    return resnet([3, 4, 6, 3], "bottleneck", name="resnet50", **kwargs)


def resnet_tiny(**kwargs: Any) -> ModelProto:
    """A small ResNet on 32x32 inputs: 2 stages of one basic block, 10 classes."""
    options: dict[str, Any] = {
        "widths": (8, 16),
        "stem_width": 8,
        "num_classes": 10,
        "image": 32,
        "name": "resnet_tiny",
    }
    options.update(kwargs)
    return resnet([1, 1], "basic", **options)


# ----------------------------------------------------------------------------
# MobileNetV2
# ----------------------------------------------------------------------------

MOBILENETV2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""torchvision's inverted residual settings: expansion, channels, repeats, stride."""


def _make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _relu6(b: _Builder, x: str, module: str) -> str:
    with b.scope(module):
        return b.op("Clip", x, b.scalar(0.0), b.scalar(6.0), hint="hardtanh")


def _conv_bn_act(
    b: _Builder,
    x: str,
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    prefix: str,
    groups: int = 1,
    act: bool = True,
    explicit_pad: bool = False,
) -> str:
    """torchvision ``Conv2dNormActivation`` (conv, BN, ReLU6) under ``prefix``."""
    padding: int | None = None
    if explicit_pad and stride == 2 and kernel == 3:
        with b.scope(f"{prefix}.pad"):
            pads = b.ints(0, 0, 0, 0, 0, 0, 1, 1)
            x = b.op(
                "Pad", x, pads, b.scalar(0.0), hint="constant_pad_nd", mode="constant"
            )
        padding = 0
    with b.scope(f"{prefix}.0"):
        y = _conv_bn(
            b,
            x,
            cin,
            cout,
            kernel,
            stride,
            f"{prefix}.0",
            f"{prefix}.1",
            groups,
            padding,
        )
    return _relu6(b, y, f"{prefix}.2") if act else y


def mobilenetv2(
    width_mult: float = 1.0,
    settings: Sequence[tuple[int, int, int, int]] = MOBILENETV2_SETTINGS,
    stem_width: int = 32,
    last_channel: int = 1280,
    num_classes: int = 1000,
    image: int = 224,
    batch: Dim = "batch",
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    explicit_pad: bool | None = None,
    name: str = "mobilenetv2",
) -> ModelProto:
    """torchvision MobileNetV2: inverted residuals with depthwise convs, ReLU6.

    ``explicit_pad`` (default: on for dynamo) pads stride-2 depthwise convs
    with a ``Pad`` node TF-style (bottom/right), as checkpoints ported from
    TensorFlow do.
    """
    b = _Builder(name, exporter, weights, seed)
    pad = (not b.torchscript) if explicit_pad is None else explicit_pad
    x = b.input("input", TensorProto.FLOAT, [batch, 3, image, image])
    cin = _make_divisible(stem_width * width_mult) if width_mult != 1.0 else stem_width
    with b.scope("features", "features.0"):
        x = _conv_bn_act(b, x, 3, cin, 3, 2, "features.0", explicit_pad=pad)
    index = 1
    for t, c, n, s in settings:
        cout = _make_divisible(c * width_mult) if width_mult != 1.0 else c
        for i in range(n):
            stride = s if i == 0 else 1
            prefix = f"features.{index}.conv"
            with b.scope("features", f"features.{index}", f"features.{index}.conv"):
                hidden = round(cin * t)
                y = x
                layer = 0
                if t != 1:
                    y = _conv_bn_act(b, y, cin, hidden, 1, 1, f"{prefix}.{layer}")
                    layer += 1
                y = _conv_bn_act(
                    b,
                    y,
                    hidden,
                    hidden,
                    3,
                    stride,
                    f"{prefix}.{layer}",
                    groups=hidden,
                    explicit_pad=pad,
                )
                y = _conv_bn(
                    b,
                    y,
                    hidden,
                    cout,
                    1,
                    1,
                    f"{prefix}.{layer + 1}",
                    f"{prefix}.{layer + 2}",
                )
            if stride == 1 and cin == cout:
                with b.scope("features", f"features.{index}"):
                    y = b.op("Add", x, y, hint="add")
            x, cin = y, cout
            index += 1
    last = _make_divisible(last_channel * max(1.0, width_mult))
    with b.scope("features", f"features.{index}"):
        x = _conv_bn_act(b, x, cin, last, 1, 1, f"features.{index}")
    if b.torchscript:
        pooled = b.op("GlobalAveragePool", x)
        flat = b.op("Flatten", pooled, axis=1)
    else:
        pooled = b.op("GlobalAveragePool", x, hint="adaptive_avg_pool2d")
        batch_dim = b.shape_dims(pooled, [0], 4)[0]
        flat = b.reshape(pooled, b.dynamic_shape([batch_dim, last]))
    logits = b.linear(
        flat, "classifier.1", last, num_classes, rank=2, scope="classifier"
    )
    b.output(logits, "output", TensorProto.FLOAT, [batch, num_classes])
    return _finish(b)


def mobilenetv2_tiny(**kwargs: Any) -> ModelProto:
    """A small MobileNetV2 on 32x32 inputs (3 inverted-residual stages)."""
    options: dict[str, Any] = {
        "settings": ((1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2)),
        "stem_width": 8,
        "last_channel": 32,
        "num_classes": 10,
        "image": 32,
        "name": "mobilenetv2_tiny",
    }
    options.update(kwargs)
    return mobilenetv2(**options)


# ----------------------------------------------------------------------------
# VGG
# ----------------------------------------------------------------------------

VGG16_LAYERS: tuple[int | Literal["M"], ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)
"""torchvision's configuration "D": 3x3 conv widths and ``"M"`` max pools."""


def vgg(
    layers: Sequence[int | Literal["M"]] = VGG16_LAYERS,
    pool_size: int = 7,
    hidden: int = 4096,
    num_classes: int = 1000,
    image: int = 224,
    batch: Dim = "batch",
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "vgg",
) -> ModelProto:
    """torchvision VGG without BatchNorm: 3x3 convs with biases and ReLU, 2x2 max
    pools, ``AdaptiveAvgPool2d(pool_size)`` and a three-layer classifier
    (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear; dropout vanishes in
    eval mode).

    The adaptive pool is exported as the ``AveragePool`` of kernel and stride
    ``size // pool_size`` both exporters emit for divisible sizes (a 1x1 pool
    at 224x224). Parameters keep their module names (``features.0.weight``) in
    both styles since there is no BatchNorm to fold.
    """
    b = _Builder(name, exporter, weights, seed)
    x = b.input("input", TensorProto.FLOAT, [batch, 3, image, image])
    cin, size, index = 3, image, 0
    for layer in layers:
        if layer == "M":
            with b.scope("features", f"features.{index}"):
                x = b.op(
                    "MaxPool",
                    x,
                    hint="max_pool2d",
                    kernel_shape=[2, 2],
                    pads=[0, 0, 0, 0],
                    strides=[2, 2],
                    ceil_mode=0,
                    dilations=[1, 1],
                )
            size //= 2
            index += 1
            continue
        with b.scope("features", f"features.{index}"):
            w = b.param(
                f"features.{index}.weight",
                [layer, cin, 3, 3],
                std=math.sqrt(2.0 / (cin * 9)),
            )
            bias = b.param(f"features.{index}.bias", [layer])
            x = b.op(
                "Conv",
                x,
                w,
                bias,
                hint="conv2d",
                dilations=[1, 1],
                group=1,
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[1, 1],
            )
        with b.scope("features"):
            x = _relu(b, x, f"features.{index + 1}")
        cin = layer
        index += 2
    if size % pool_size:
        raise ValueError(f"{name}: {size}x{size} features do not pool to {pool_size}")
    kernel = size // pool_size
    with b.scope("avgpool"):
        x = b.op(
            "AveragePool",
            x,
            hint="avg_pool2d",
            kernel_shape=[kernel, kernel],
            pads=[0, 0, 0, 0],
            strides=[kernel, kernel],
            ceil_mode=0,
            count_include_pad=1,
        )
    features = cin * pool_size * pool_size
    if b.torchscript:
        x = b.op("Flatten", x, axis=1)
    else:
        batch_dim = b.shape_dims(x, [0], 4)[0]
        x = b.reshape(x, b.dynamic_shape([batch_dim, features]))
    with b.scope("classifier"):
        sizes = ((features, hidden), (hidden, hidden), (hidden, num_classes))
        for fc, (fin, fout) in enumerate(sizes):
            module = f"classifier.{3 * fc}"
            x = b.linear(x, module, fin, fout, 2, scope=module)
            if fc < 2:
                x = _relu(b, x, f"classifier.{3 * fc + 1}")
    b.output(x, "output", TensorProto.FLOAT, [batch, num_classes])
    return _finish(b)


def vgg16(**kwargs: Any) -> ModelProto:
    """VGG-16 (configuration D, no BatchNorm), 224x224, 1000 classes."""
    return vgg(name="vgg16", **kwargs)


def vgg_tiny(**kwargs: Any) -> ModelProto:
    """A small VGG on 32x32 inputs: 4 convs, 3 pools, 2x2 adaptive pool, 10 classes."""
    options: dict[str, Any] = {
        "layers": (8, "M", 16, "M", 32, 32, "M"),
        "pool_size": 2,
        "hidden": 64,
        "num_classes": 10,
        "image": 32,
        "name": "vgg_tiny",
    }
    options.update(kwargs)
    return vgg(**options)


# ----------------------------------------------------------------------------
# Transformer pieces
# ----------------------------------------------------------------------------


def _split_heads(
    b: _Builder, x: str, heads: int, head_dim: int, perm: Sequence[int] = (0, 2, 1, 3)
) -> str:
    """``[b, s, h·d] → [b, h, s, d]`` (or ``perm`` applied to ``[b, s, h, d]``)."""
    lead = b.shape_dims(x, [0, 1], 3)
    y = b.reshape(x, b.dynamic_shape([*lead, heads, head_dim]))
    return b.op("Transpose", y, hint="transpose", perm=list(perm))


def _merge_heads(b: _Builder, x: str, hidden: int) -> str:
    """``[b, h, s, d] → [b, s, h·d]``."""
    y = b.op("Transpose", x, hint="transpose", perm=[0, 2, 1, 3])
    lead = b.shape_dims(y, [0, 1], 4)
    return b.reshape(y, b.dynamic_shape([*lead, hidden]))


def _attention(
    b: _Builder,
    q: str,
    k: str,
    v: str,
    heads: int,
    head_dim: int,
    mask: str | None,
) -> str:
    """Scaled dot-product attention of ``[b, s, h·d]`` projections."""
    qh = _split_heads(b, q, heads, head_dim)
    if b.torchscript:
        kt = _split_heads(b, k, heads, head_dim, (0, 2, 3, 1))
    else:
        kh = _split_heads(b, k, heads, head_dim)
        kt = b.op("Transpose", kh, hint="transpose", perm=[0, 1, 3, 2])
    vh = _split_heads(b, v, heads, head_dim)
    scores = b.attention_scores(qh, kt, head_dim)
    if mask is not None:
        scores = b.op("Add", scores, mask, hint="add")
    probs = b.op("Softmax", scores, hint="softmax", axis=-1)
    context = b.op("MatMul", probs, vh, hint="matmul")
    return _merge_heads(b, context, heads * head_dim)


def _check_phase(name: str, phase: str, sequence: Dim, positions: int) -> None:
    """Reject an unknown phase and static lengths beyond the position table."""
    if phase not in ("prefill", "decode"):
        raise ValueError(f"unknown phase {phase!r}")
    if isinstance(sequence, int):
        total = sequence + 1 if phase == "decode" else sequence
        if total > positions:
            raise ValueError(
                f"{name}: {phase} over {total} positions exceeds the model's "
                f"{positions}"
            )


class _KVCache:
    """The KV cache interface of a decoder: ``past_key_values.{i}.key``/``.value``
    inputs (decode) and ``present.{i}.key``/``.value`` outputs (decode, or
    prefill with ``use_cache``), in the order HF's exports list them."""

    def __init__(
        self,
        b: _Builder,
        phase: Phase,
        use_cache: bool,
        layers: int,
        batch: Dim,
        kv_heads: int,
        sequence: Dim,
        head_dim: int,
    ):
        self.b = b
        self.decode = phase == "decode"
        self.enabled = self.decode or use_cache
        self.past: list[tuple[str, str]] = []
        self.present: list[tuple[str, str]] = []
        if self.decode:
            shape: list[Dim] = [batch, kv_heads, sequence, head_dim]
            for layer in range(layers):
                self.past.append(
                    (
                        b.input(
                            f"past_key_values.{layer}.key", TensorProto.FLOAT, shape
                        ),
                        b.input(
                            f"past_key_values.{layer}.value", TensorProto.FLOAT, shape
                        ),
                    )
                )
        total: Dim = sequence
        if self.decode:
            total = sequence + 1 if isinstance(sequence, int) else f"{sequence} + 1"
        self.shape: list[Dim] = [batch, kv_heads, total, head_dim]

    def past_length(self) -> str | None:
        """``past_key_values[0][0].size(-2)`` as an int64 scalar (None in prefill)."""
        if not self.past:
            return None
        b = self.b
        key = self.past[0][0]
        if b.torchscript:
            shape = b.op("Shape", key)
            return b.op("Gather", shape, b.const(np.array(2, np.int64)), axis=0)
        size = b.op("Shape", key, hint="sym_size_int", start=2, end=3)
        return b.op("Squeeze", size, hint="sym_size")

    def update(self, layer: int, key: str, value: str) -> tuple[str, str]:
        """``torch.cat([past, new], dim=-2)`` of ``[b, kv, s, d]`` keys and values;
        the results are the layer's ``present`` outputs."""
        if not self.enabled:
            return key, value
        if self.decode:
            past_key, past_value = self.past[layer]
            key = self.b.op(
                "Concat", past_key, key, hint="cat", axis=-2, out=f"present.{layer}.key"
            )
            value = self.b.op(
                "Concat",
                past_value,
                value,
                hint="cat",
                axis=-2,
                out=f"present.{layer}.value",
            )
        self.present.append((key, value))
        return key, value

    def outputs(self) -> None:
        """Declare the ``present`` outputs (after ``logits``)."""
        for layer, (key, value) in enumerate(self.present):
            for tensor, kind in ((key, "key"), (value, "value")):
                self.b.output(
                    tensor, f"present.{layer}.{kind}", TensorProto.FLOAT, self.shape
                )


def _position_ids(b: _Builder, count: str, past: str | None) -> str:
    """``arange(past, past + count).unsqueeze(0)`` (``past`` 0 in prefill)."""
    if past is None:
        start, end = b.const(np.array(0, np.int64)), count
    else:
        start, end = past, b.op("Add", count, past, hint="add")
    return b.unsqueeze(
        b.op("Range", start, end, b.const(np.array(1, np.int64)), hint="arange"), 0
    )


# ----------------------------------------------------------------------------
# ViT
# ----------------------------------------------------------------------------


def vit(
    image: int = 224,
    patch: int = 16,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    mlp: int = 3072,
    num_classes: int = 1000,
    batch: Dim = "batch",
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "vit",
) -> ModelProto:
    """torchvision VisionTransformer (pre-LN encoder, class token, GELU MLP).

    The dynamo style uses opset 20, where GELU is one ``Gelu`` node.
    """
    b = _Builder(
        name, exporter, weights, seed, None if exporter == "torchscript" else 20
    )
    grid = image // patch
    seq = grid * grid + 1
    head_dim = hidden // heads
    x = b.input("input", TensorProto.FLOAT, [batch, 3, image, image])
    w = b.param(
        "conv_proj.weight",
        [hidden, 3, patch, patch],
        std=1 / math.sqrt(3 * patch * patch),
    )
    bias = b.param("conv_proj.bias", [hidden])
    with b.scope("conv_proj"):
        x = b.op(
            "Conv",
            x,
            w,
            bias,
            hint="conv2d",
            kernel_shape=[patch, patch],
            strides=[patch, patch],
            pads=[0, 0, 0, 0],
            dilations=[1, 1],
            group=1,
        )
    n = b.shape_dims(x, [0], 4)[0]
    x = b.reshape(x, b.dynamic_shape([n, hidden, grid * grid]))
    x = b.op("Transpose", x, hint="permute", perm=[0, 2, 1])
    cls = b.param("class_token", [1, 1, hidden])
    if b.torchscript:
        expand_shape = b.dynamic_shape([n, 1, hidden])
    else:
        expand_shape = b.dynamic_shape([b.shape_dims(x, [0], 3)[0], 1, hidden])
    cls = b.op("Expand", cls, expand_shape, hint="expand")
    x = b.op("Concat", cls, x, hint="cat", axis=1)
    x = b.op("Add", x, b.param("encoder.pos_embedding", [1, seq, hidden]), hint="add")
    for layer in range(layers):
        prefix = f"encoder.layers.encoder_layer_{layer}"
        with b.scope("encoder", "encoder.layers", f"{prefix}"):
            y = b.layer_norm(x, f"{prefix}.ln_1", hidden, 1e-6, "ln_1")
            with b.scope("self_attention"):
                y = _vit_attention(
                    b, y, f"{prefix}.self_attention", hidden, heads, head_dim
                )
            x = b.op("Add", y, x, hint="add")
            y = b.layer_norm(x, f"{prefix}.ln_2", hidden, 1e-6, "ln_2")
            with b.scope("mlp"):
                y = b.linear(y, f"{prefix}.mlp.0", hidden, mlp, 3, scope="mlp.0")
                with b.scope("mlp.1"):
                    y = b.gelu_erf(y)
                y = b.linear(y, f"{prefix}.mlp.3", mlp, hidden, 3, scope="mlp.3")
            x = b.op("Add", x, y, hint="add")
    x = b.layer_norm(x, "encoder.ln", hidden, 1e-6, "encoder.ln")
    token = b.op("Gather", x, b.const(np.array(0, np.int64)), hint="select", axis=1)
    logits = b.linear(token, "heads.head", hidden, num_classes, 2, scope="heads.head")
    b.output(logits, "output", TensorProto.FLOAT, [batch, num_classes])
    return _finish(b)


def _vit_attention(
    b: _Builder, x: str, prefix: str, hidden: int, heads: int, head_dim: int
) -> str:
    """``nn.MultiheadAttention`` with a packed in-projection."""
    qkv = b.linear(x, f"{prefix}.in_proj", hidden, 3 * hidden, 3)
    if b.torchscript:
        lead = b.shape_dims(qkv, [0, 1], 3)
        packed = b.reshape(qkv, b.dynamic_shape([*lead, 3, heads, head_dim]))
        packed = b.op("Transpose", packed, perm=[2, 0, 3, 1, 4])
        q, k, v = (
            b.op("Gather", packed, b.const(np.array(i, np.int64)), axis=0)
            for i in range(3)
        )
        kt = b.op("Transpose", k, perm=[0, 1, 3, 2])
        scores = b.attention_scores(q, kt, head_dim)
        probs = b.op("Softmax", scores, axis=-1)
        context = _merge_heads(b, b.op("MatMul", probs, v), hidden)
    else:
        q, k, v = b.ops(
            "Split", [qkv, b.ints(hidden, hidden, hidden)], 3, hint="split", axis=-1
        )
        context = _attention(b, q, k, v, heads, head_dim, None)
    return b.linear(context, f"{prefix}.out_proj", hidden, hidden, 3, scope="out_proj")


def vit_b16(**kwargs: Any) -> ModelProto:
    """ViT-B/16: 224x224, 12 layers of width 768, 12 heads."""
    return vit(name="vit_b16", **kwargs)


def vit_tiny(**kwargs: Any) -> ModelProto:
    """A small ViT: 32x32 images, 8x8 patches, 2 layers of width 32."""
    options: dict[str, Any] = {
        "image": 32,
        "patch": 8,
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "mlp": 64,
        "num_classes": 10,
        "name": "vit_tiny",
    }
    options.update(kwargs)
    return vit(**options)


# ----------------------------------------------------------------------------
# BERT
# ----------------------------------------------------------------------------


def bert(
    vocab: int = 30522,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    intermediate: int = 3072,
    max_positions: int = 512,
    type_vocab: int = 2,
    eps: float = 1e-12,
    batch: Dim = "batch",
    sequence: Dim = "sequence",
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    opset: int | None = None,
    name: str = "bert",
) -> ModelProto:
    """HuggingFace ``BertModel``: outputs ``last_hidden_state`` and ``pooler_output``.

    ``opset`` (13 or more) overrides the exporter's default; torchscript style
    below 17 decomposes LayerNorm into ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add.
    """
    if opset is not None and opset < 13:
        raise ValueError("bert() needs opset 13 or later")
    b = _Builder(name, exporter, weights, seed, opset)
    head_dim = hidden // heads
    ids = b.input("input_ids", TensorProto.INT64, [batch, sequence])
    mask_in = b.input("attention_mask", TensorProto.INT64, [batch, sequence])
    types = b.input("token_type_ids", TensorProto.INT64, [batch, sequence])
    with b.scope("embeddings"):
        words = b.op(
            "Gather",
            b.param("embeddings.word_embeddings.weight", [vocab, hidden]),
            ids,
            hint="embedding",
        )
        seq_len = b.shape_dims(ids, [1], 2)[0]
        position_ids = b.tensor(
            "embeddings.position_ids",
            np.arange(max_positions, dtype=np.int64).reshape(1, max_positions),
        )
        positions = b.op(
            "Slice",
            position_ids,
            b.ints(0),
            seq_len,
            b.ints(1),
            b.ints(1),
            hint="slice",
        )
        token_types = b.op(
            "Gather",
            b.param("embeddings.token_type_embeddings.weight", [type_vocab, hidden]),
            types,
            hint="embedding",
        )
        x = b.op("Add", words, token_types, hint="add")
        pos = b.op(
            "Gather",
            b.param("embeddings.position_embeddings.weight", [max_positions, hidden]),
            positions,
            hint="embedding",
        )
        x = b.op("Add", x, pos, hint="add")
        x = b.layer_norm(x, "embeddings.LayerNorm", hidden, eps, "LayerNorm")
    mask = _bert_mask(b, mask_in)
    for layer in range(layers):
        prefix = f"encoder.layer.{layer}"
        with b.scope("encoder", prefix):
            with b.scope("attention", "self"):
                q = b.linear(
                    x,
                    f"{prefix}.attention.self.query",
                    hidden,
                    hidden,
                    3,
                    scope="query",
                )
                k = b.linear(
                    x, f"{prefix}.attention.self.key", hidden, hidden, 3, scope="key"
                )
                v = b.linear(
                    x,
                    f"{prefix}.attention.self.value",
                    hidden,
                    hidden,
                    3,
                    scope="value",
                )
                context = _attention(b, q, k, v, heads, head_dim, mask)
            with b.scope("attention", "output"):
                y = b.linear(
                    context,
                    f"{prefix}.attention.output.dense",
                    hidden,
                    hidden,
                    3,
                    scope="dense",
                )
                y = b.op("Add", y, x, hint="add")
                x = b.layer_norm(
                    y, f"{prefix}.attention.output.LayerNorm", hidden, eps, "LayerNorm"
                )
            with b.scope("intermediate"):
                y = b.linear(
                    x,
                    f"{prefix}.intermediate.dense",
                    hidden,
                    intermediate,
                    3,
                    scope="dense",
                )
                with b.scope("intermediate_act_fn"):
                    y = b.gelu_erf(y)
            with b.scope("output"):
                y = b.linear(
                    y, f"{prefix}.output.dense", intermediate, hidden, 3, scope="dense"
                )
                y = b.op("Add", y, x, hint="add")
                x = b.layer_norm(
                    y, f"{prefix}.output.LayerNorm", hidden, eps, "LayerNorm"
                )
    with b.scope("pooler"):
        first = b.op("Gather", x, b.const(np.array(0, np.int64)), hint="select", axis=1)
        pooled = b.linear(first, "pooler.dense", hidden, hidden, 2, scope="dense")
        with b.scope("activation"):
            pooled = b.op("Tanh", pooled, hint="tanh")
    b.output(x, "last_hidden_state", TensorProto.FLOAT, [batch, sequence, hidden])
    b.output(pooled, "pooler_output", TensorProto.FLOAT, [batch, hidden])
    return _finish(b)


def _bert_mask(b: _Builder, mask: str) -> str:
    """``(1 - mask[:, None, None, :]) * finfo.min`` or its ``Where`` form."""
    if b.torchscript:
        m = b.unsqueeze(b.unsqueeze(mask, 1), 2)
        m = b.op("Cast", m, to=TensorProto.FLOAT)
        inverted = b.op("Sub", b.scalar(1.0), m)
        return b.op("Mul", inverted, b.scalar(_FLOAT32_MIN))
    m = b.op("Unsqueeze", mask, b.ints(1, 2), hint="unsqueeze")
    m = b.op("Cast", m, hint="to_float", to=TensorProto.FLOAT)
    inverted = b.op("Sub", b.scalar(1.0), m, hint="rsub")
    flags = b.op("Cast", inverted, hint="to_bool", to=TensorProto.BOOL)
    return b.op("Where", flags, b.scalar(_FLOAT32_MIN), inverted, hint="masked_fill")


def bert_base(**kwargs: Any) -> ModelProto:
    """BERT-base (uncased): 12 layers, hidden 768, 12 heads, vocabulary 30522."""
    return bert(name="bert_base", **kwargs)


def bert_large(**kwargs: Any) -> ModelProto:
    """BERT-large (uncased): 24 layers, hidden 1024, 16 heads, FFN 4096."""
    options: dict[str, Any] = {
        "hidden": 1024,
        "layers": 24,
        "heads": 16,
        "intermediate": 4096,
        "name": "bert_large",
    }
    options.update(kwargs)
    return bert(**options)


def bert_tiny(**kwargs: Any) -> ModelProto:
    """A small BERT: vocabulary 100, 2 layers of width 32, 2 heads."""
    options: dict[str, Any] = {
        "vocab": 100,
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "intermediate": 64,
        "max_positions": 64,
        "name": "bert_tiny",
    }
    options.update(kwargs)
    return bert(**options)


# ----------------------------------------------------------------------------
# GPT-2
# ----------------------------------------------------------------------------


def _conv1d(b: _Builder, x: str, prefix: str, nx: int, nf: int, scope: str) -> str:
    """HF ``Conv1D``: ``addmm(bias, x.view(-1, nx), weight).view(*lead, nf)``."""
    with b.scope(scope):
        lead = b.shape_dims(x, [0, 1], 3)
        flat = b.reshape(x, b.ints(-1, nx))
        w = b.param(f"{prefix}.weight", [nx, nf], std=0.02)
        bias = b.param(f"{prefix}.bias", [nf])
        y = b.op("Gemm", flat, w, bias, hint="addmm", alpha=1.0, beta=1.0)
        return b.reshape(y, b.dynamic_shape([*lead, nf]))


def gpt2(
    vocab: int = 50257,
    positions: int = 1024,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    eps: float = 1e-5,
    batch: Dim = "batch",
    sequence: Dim = "sequence",
    phase: Phase = "prefill",
    use_cache: bool = False,
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "gpt2",
) -> ModelProto:
    """HuggingFace ``GPT2LMHeadModel`` (tied LM head), output ``logits``.

    With a KV cache (``phase="decode"`` or ``use_cache``) keys are split as
    ``[b, h, s, d]``, concatenated with the past and transposed for the scores,
    as HF's ``GPT2Attention`` does; without, the torchscript style splits keys
    straight into ``[b, h, d, s]`` as older HF versions did. The causal mask is
    the sliced ``attn.bias`` buffer (torchscript) or SDPA's ``Trilu`` mask
    (dynamo; none for a single decode query).
    """
    _check_phase(name, phase, sequence, positions)
    b = _Builder(name, exporter, weights, seed)
    head_dim = hidden // heads
    decode = phase == "decode"
    ids = b.input("input_ids", TensorProto.INT64, [batch, 1 if decode else sequence])
    cache = _KVCache(b, phase, use_cache, layers, batch, heads, sequence, head_dim)
    wte = b.param("transformer.wte.weight", [vocab, hidden])
    seq_len = b.shape_dims(ids, [1], 2)[0]
    with b.scope("transformer"):
        if b.torchscript:
            count = b.op("Squeeze", seq_len, b.ints(0))
        else:
            count = b.op("Squeeze", seq_len, hint="sym_size")
        position_ids = _position_ids(b, count, cache.past_length())
        x = b.op("Gather", wte, ids, hint="embedding")
        wpe = b.param("transformer.wpe.weight", [positions, hidden])
        x = b.op(
            "Add", x, b.op("Gather", wpe, position_ids, hint="embedding"), hint="add"
        )
        causal = None if b.torchscript or decode else _trilu_mask(b, seq_len)
        for layer in range(layers):
            prefix = f"transformer.h.{layer}"
            with b.scope("h", f"h.{layer}"):
                y = b.layer_norm(x, f"{prefix}.ln_1", hidden, eps, "ln_1")
                with b.scope("attn"):
                    qkv = _conv1d(
                        b, y, f"{prefix}.attn.c_attn", hidden, 3 * hidden, "c_attn"
                    )
                    q, k, v = b.ops(
                        "Split",
                        [qkv, b.ints(hidden, hidden, hidden)],
                        3,
                        hint="split",
                        axis=2,
                    )
                    qh = _split_heads(b, q, heads, head_dim)
                    if cache.enabled:
                        kh = _split_heads(b, k, heads, head_dim)
                        vh = _split_heads(b, v, heads, head_dim)
                        kh, vh = cache.update(layer, kh, vh)
                        kt = b.op("Transpose", kh, hint="transpose", perm=[0, 1, 3, 2])
                        q_len, k_len = (b.shape_dims(t, [2], 4)[0] for t in (qh, kh))
                    else:
                        kt = _split_heads(b, k, heads, head_dim, (0, 2, 3, 1))
                        vh = _split_heads(b, v, heads, head_dim)
                        q_len = k_len = seq_len
                    scores = b.attention_scores(qh, kt, head_dim)
                    if b.torchscript:
                        scores = _gpt2_buffer_mask(
                            b, scores, f"{prefix}.attn.bias", positions, q_len, k_len
                        )
                    elif causal is not None:
                        scores = b.op("Add", scores, causal, hint="add")
                    probs = b.op("Softmax", scores, hint="softmax", axis=-1)
                    context = _merge_heads(
                        b, b.op("MatMul", probs, vh, hint="matmul"), hidden
                    )
                    y = _conv1d(
                        b, context, f"{prefix}.attn.c_proj", hidden, hidden, "c_proj"
                    )
                x = b.op("Add", y, x, hint="add")
                y = b.layer_norm(x, f"{prefix}.ln_2", hidden, eps, "ln_2")
                with b.scope("mlp"):
                    y = _conv1d(b, y, f"{prefix}.mlp.c_fc", hidden, 4 * hidden, "c_fc")
                    with b.scope("act"):
                        y = b.gelu_tanh(y)
                    y = _conv1d(
                        b, y, f"{prefix}.mlp.c_proj", 4 * hidden, hidden, "c_proj"
                    )
                x = b.op("Add", x, y, hint="add")
        x = b.layer_norm(x, "transformer.ln_f", hidden, eps, "ln_f")
    with b.scope("lm_head"):
        if b.torchscript:
            w = b.param(b.ts_name("MatMul"), [hidden, vocab])
            logits = b.op("MatMul", x, w)
        else:
            wt = b.op("Transpose", wte, hint="t", perm=[1, 0])
            logits = b.op("MatMul", x, wt, hint="matmul")
    b.output(
        logits,
        "logits",
        TensorProto.FLOAT,
        [batch, 1 if decode else sequence, vocab],
    )
    cache.outputs()
    return _finish(b)


def _gpt2_buffer_mask(
    b: _Builder, scores: str, name: str, positions: int, q_len: str, k_len: str
) -> str:
    """``torch.where(bias[:, :, k - q : k, :k], scores, finfo.min)``."""
    tril = np.tril(np.ones((positions, positions), dtype=np.bool_)).reshape(
        1, 1, positions, positions
    )
    bias = b.tensor(name, tril)
    start = b.op("Sub", k_len, q_len)
    rows = b.op("Slice", bias, start, k_len, b.ints(2), b.ints(1))
    mask = b.op("Slice", rows, b.ints(0), k_len, b.ints(3), b.ints(1))
    return b.op("Where", mask, scores, b.scalar(_FLOAT32_MIN))


def _trilu_mask(b: _Builder, seq_len: str) -> str:
    """SDPA's causal mask: ``where(tril(ones) == 0, finfo.min, 0)``."""
    shape = b.op("Concat", seq_len, seq_len, hint="cat", axis=0)
    ones = b.op(
        "ConstantOfShape",
        shape,
        hint="ones",
        value=numpy_helper.from_array(np.array([1.0], np.float32), "value"),
    )
    lower = b.op("Trilu", ones, hint="tril", upper=0)
    hidden = b.op("Equal", lower, b.scalar(0.0), hint="eq")
    return b.op("Where", hidden, b.scalar(_FLOAT32_MIN), b.scalar(0.0), hint="where")


def gpt2_small(**kwargs: Any) -> ModelProto:
    """GPT-2 small: 12 layers, hidden 768, 12 heads, 1024 positions."""
    return gpt2(name="gpt2_small", **kwargs)


def gpt2_tiny(**kwargs: Any) -> ModelProto:
    """A small GPT-2: vocabulary 96, 32 positions, 2 layers of width 32."""
    options: dict[str, Any] = {
        "vocab": 96,
        "positions": 32,
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "name": "gpt2_tiny",
    }
    options.update(kwargs)
    return gpt2(**options)


# ----------------------------------------------------------------------------
# LLaMA
# ----------------------------------------------------------------------------


def _rms_norm(
    b: _Builder, x: str, prefix: str, dim: int, eps: float, scope: str
) -> str:
    """LlamaRMSNorm: ``w * (x * rsqrt(mean(x²) + eps))``; rsqrt is ``Div(1, Sqrt)``
    in torchscript and ``Reciprocal(Sqrt)`` in dynamo."""
    with b.scope(scope):
        square = b.op("Pow", x, b.scalar(2.0), hint="pow")
        if b.opset >= 18:
            mean = b.op("ReduceMean", square, b.ints(-1), hint="mean", keepdims=1)
        else:
            mean = b.op("ReduceMean", square, axes=[-1], keepdims=1)
        shifted = b.op("Add", mean, b.scalar(eps), hint="add")
        root = b.op("Sqrt", shifted, hint="sqrt")
        if b.torchscript:
            inverse = b.op("Div", b.scalar(1.0), root)
        else:
            inverse = b.op("Reciprocal", root, hint="rsqrt")
        normed = b.op("Mul", x, inverse, hint="mul")
        weight = b.param(f"{prefix}.weight", [dim], kind="ones")
        return b.op("Mul", weight, normed, hint="mul")


def _rope_tables(
    b: _Builder,
    seq_len: str,
    head_dim: int,
    max_positions: int,
    theta: float,
    past: str | None = None,
) -> tuple[str, str]:
    """``cos`` and ``sin`` of shape ``[1, 1, s, d]`` for the positions
    ``past..past+s-1`` (``past`` an int64 scalar, 0 when None)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    count = b.op("Squeeze", seq_len, b.ints(0), hint="sym_size")
    position_ids = _position_ids(b, count, past)
    if b.torchscript:
        freqs = np.outer(np.arange(max_positions, dtype=np.float64), inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        tables: list[str] = []
        for fn, label in ((np.cos, "cos_cached"), (np.sin, "sin_cached")):
            cached = b.tensor(f"model.rotary_emb.{label}", fn(emb).astype(np.float32))
            end = seq_len
            if past is not None:
                end = b.unsqueeze(b.op("Add", count, past), 0)
            rows = b.op("Slice", cached, b.ints(0), end, b.ints(0), b.ints(1))
            picked = b.op("Gather", rows, position_ids, axis=0)
            tables.append(b.unsqueeze(picked, 1))
        return tables[0], tables[1]
    with b.scope("rotary_emb"):
        freq = b.tensor("model.rotary_emb.inv_freq", inv_freq.astype(np.float32))
        freq = b.op("Unsqueeze", freq, b.ints(0, 2), hint="unsqueeze")
        pos = b.op(
            "Cast", b.unsqueeze(position_ids, 1), hint="to_float", to=TensorProto.FLOAT
        )
        freqs = b.op("MatMul", freq, pos, hint="matmul")
        freqs = b.op("Transpose", freqs, hint="transpose", perm=[0, 2, 1])
        emb = b.op("Concat", freqs, freqs, hint="cat", axis=-1)
        cos = b.op("Mul", b.op("Cos", emb, hint="cos"), b.scalar(1.0), hint="mul")
        sin = b.op("Mul", b.op("Sin", emb, hint="sin"), b.scalar(1.0), hint="mul")
        return b.unsqueeze(cos, 1), b.unsqueeze(sin, 1)


def _rotate(b: _Builder, x: str, cos: str, sin: str, head_dim: int) -> str:
    """``x * cos + rotate_half(x) * sin``."""
    half = head_dim // 2
    axis = -1 if b.torchscript else 3
    first = b.op(
        "Slice", x, b.ints(0), b.ints(half), b.ints(axis), b.ints(1), hint="slice"
    )
    second = b.op(
        "Slice",
        x,
        b.ints(half),
        b.ints(_INT64_MAX),
        b.ints(axis),
        b.ints(1),
        hint="slice",
    )
    rotated = b.op(
        "Concat", b.op("Neg", second, hint="neg"), first, hint="cat", axis=-1
    )
    return b.op(
        "Add",
        b.op("Mul", x, cos, hint="mul"),
        b.op("Mul", rotated, sin, hint="mul"),
        hint="add",
    )


def _repeat_kv(b: _Builder, x: str, kv_heads: int, groups: int, head_dim: int) -> str:
    """``x[:, :, None].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)``."""
    if groups == 1:
        return x
    batch, seq = b.shape_dims(x, [0, 2], 4)
    y = b.unsqueeze(x, 2)
    y = b.op(
        "Expand",
        y,
        b.dynamic_shape([batch, kv_heads, groups, seq, head_dim]),
        hint="expand",
    )
    return b.reshape(y, b.dynamic_shape([batch, kv_heads * groups, seq, head_dim]))


def _llama_causal_mask(
    b: _Builder, batch: str, seq_len: str, past: str | None = None
) -> str | None:
    """HF ``_make_causal_mask``: ``full(min)``, zeroed where ``j <= i``, after
    ``past`` zero columns (decode), expanded to ``[b, 1, s, past + s]``; SDPA's
    ``Trilu`` mask in dynamo style, and no mask there for a decode step (HF
    drops it for a single query)."""
    if not b.torchscript:
        return _trilu_mask(b, seq_len) if past is None else None
    shape = b.op("Concat", seq_len, seq_len, axis=0)
    full = b.op(
        "ConstantOfShape",
        shape,
        value=numpy_helper.from_array(np.array([_FLOAT32_MIN], np.float32), "value"),
    )
    count = b.op("Squeeze", seq_len, b.ints(0))
    cond = b.op(
        "Range", b.const(np.array(0, np.int64)), count, b.const(np.array(1, np.int64))
    )
    column = b.reshape(
        b.op("Add", cond, b.const(np.array(1, np.int64))), b.dynamic_shape([seq_len, 1])
    )
    allowed = b.op("Less", cond, column)
    mask = b.op("Where", allowed, b.scalar(0.0), full)
    keys = seq_len
    if past is not None:
        past_len = b.unsqueeze(past, 0)
        zeros = b.op(
            "ConstantOfShape",
            b.op("Concat", seq_len, past_len, axis=0),
            value=numpy_helper.from_array(np.array([0.0], np.float32), "value"),
        )
        mask = b.op("Concat", zeros, mask, axis=-1)
        keys = b.op("Add", seq_len, past_len)
    mask = b.unsqueeze(mask, 0, 1)
    return b.op("Expand", mask, b.dynamic_shape([batch, 1, seq_len, keys]))


def llama(
    vocab: int = 32000,
    hidden: int = 4096,
    layers: int = 32,
    heads: int = 32,
    kv_heads: int = 32,
    intermediate: int = 11008,
    max_positions: int = 2048,
    eps: float = 1e-6,
    rope_theta: float = 10000.0,
    batch: Dim = "batch",
    sequence: Dim = "sequence",
    phase: Phase = "prefill",
    use_cache: bool = False,
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "llama",
) -> ModelProto:
    """HuggingFace ``LlamaForCausalLM``: RMSNorm, rotary embeddings, grouped-query
    attention (``kv_heads < heads``), SiLU-gated MLP; output ``logits``.

    Rotary tables are precomputed ``cos_cached``/``sin_cached`` initializers in
    torchscript style and computed from ``inv_freq`` and ``Range`` in dynamo style.
    The KV cache holds the rotated keys and the values of the ``kv_heads``
    before they are repeated for grouped-query attention.
    """
    _check_phase(name, phase, sequence, max_positions)
    b = _Builder(name, exporter, weights, seed)
    head_dim = hidden // heads
    groups = heads // kv_heads
    decode = phase == "decode"
    ids = b.input("input_ids", TensorProto.INT64, [batch, 1 if decode else sequence])
    cache = _KVCache(b, phase, use_cache, layers, batch, kv_heads, sequence, head_dim)
    with b.scope("model"):
        with b.scope("embed_tokens"):
            x = b.op(
                "Gather",
                b.param("model.embed_tokens.weight", [vocab, hidden]),
                ids,
                hint="embedding",
            )
        batch_dim, seq_len = b.shape_dims(ids, [0, 1], 2)
        past = cache.past_length()
        cos, sin = _rope_tables(b, seq_len, head_dim, max_positions, rope_theta, past)
        mask = _llama_causal_mask(b, batch_dim, seq_len, past)
        for layer in range(layers):
            prefix = f"model.layers.{layer}"
            with b.scope("layers", f"layers.{layer}"):
                y = _rms_norm(
                    b, x, f"{prefix}.input_layernorm", hidden, eps, "input_layernorm"
                )
                with b.scope("self_attn"):
                    attn = f"{prefix}.self_attn"
                    q = b.linear(
                        y,
                        f"{attn}.q_proj",
                        hidden,
                        heads * head_dim,
                        3,
                        False,
                        "q_proj",
                    )
                    k = b.linear(
                        y,
                        f"{attn}.k_proj",
                        hidden,
                        kv_heads * head_dim,
                        3,
                        False,
                        "k_proj",
                    )
                    v = b.linear(
                        y,
                        f"{attn}.v_proj",
                        hidden,
                        kv_heads * head_dim,
                        3,
                        False,
                        "v_proj",
                    )
                    qh = _rotate(
                        b, _split_heads(b, q, heads, head_dim), cos, sin, head_dim
                    )
                    kh = _rotate(
                        b, _split_heads(b, k, kv_heads, head_dim), cos, sin, head_dim
                    )
                    vh = _split_heads(b, v, kv_heads, head_dim)
                    kh, vh = cache.update(layer, kh, vh)
                    kh = _repeat_kv(b, kh, kv_heads, groups, head_dim)
                    vh = _repeat_kv(b, vh, kv_heads, groups, head_dim)
                    kt = b.op("Transpose", kh, hint="transpose", perm=[0, 1, 3, 2])
                    scores = b.attention_scores(qh, kt, head_dim)
                    if mask is not None:
                        scores = b.op("Add", scores, mask, hint="add")
                    probs = b.op("Softmax", scores, hint="softmax", axis=-1)
                    context = _merge_heads(
                        b, b.op("MatMul", probs, vh, hint="matmul"), hidden
                    )
                    y = b.linear(
                        context, f"{attn}.o_proj", hidden, hidden, 3, False, "o_proj"
                    )
                x = b.op("Add", x, y, hint="add")
                y = _rms_norm(
                    b,
                    x,
                    f"{prefix}.post_attention_layernorm",
                    hidden,
                    eps,
                    "post_attention_layernorm",
                )
                with b.scope("mlp"):
                    mlp = f"{prefix}.mlp"
                    gate = b.linear(
                        y,
                        f"{mlp}.gate_proj",
                        hidden,
                        intermediate,
                        3,
                        False,
                        "gate_proj",
                    )
                    with b.scope("act_fn"):
                        gate = b.op(
                            "Mul",
                            gate,
                            b.op("Sigmoid", gate, hint="sigmoid"),
                            hint="silu",
                        )
                    up = b.linear(
                        y, f"{mlp}.up_proj", hidden, intermediate, 3, False, "up_proj"
                    )
                    y = b.op("Mul", gate, up, hint="mul")
                    y = b.linear(
                        y,
                        f"{mlp}.down_proj",
                        intermediate,
                        hidden,
                        3,
                        False,
                        "down_proj",
                    )
                x = b.op("Add", x, y, hint="add")
        x = _rms_norm(b, x, "model.norm", hidden, eps, "norm")
    logits = b.linear(x, "lm_head", hidden, vocab, 3, False, "lm_head")
    b.output(
        logits,
        "logits",
        TensorProto.FLOAT,
        [batch, 1 if decode else sequence, vocab],
    )
    cache.outputs()
    return _finish(b)


def llama2_7b(**kwargs: Any) -> ModelProto:
    """LLaMA-2 7B shapes: 32 layers, hidden 4096, 32 heads, MLP 11008, 4096
    positions."""
    options: dict[str, Any] = {"max_positions": 4096, "name": "llama2_7b"}
    options.update(kwargs)
    return llama(**options)


def llama_tiny(**kwargs: Any) -> ModelProto:
    """A small LLaMA with grouped-query attention: 4 heads sharing 2 KV heads."""
    options: dict[str, Any] = {
        "vocab": 64,
        "hidden": 32,
        "layers": 2,
        "heads": 4,
        "kv_heads": 2,
        "intermediate": 64,
        "max_positions": 64,
        "name": "llama_tiny",
    }
    options.update(kwargs)
    return llama(**options)


# ----------------------------------------------------------------------------
# OPT
# ----------------------------------------------------------------------------

OPT_POSITION_OFFSET = 2
"""OPT's learned positions are looked up at ``position + 2`` (fairseq legacy)."""


def _opt_positions(
    b: _Builder, batch: str, seq_len: str, past: str | None, table: str
) -> str:
    """``OPTLearnedPositionalEmbedding`` over an all-ones attention mask:
    ``(cumsum(mask) * mask - 1)[:, past:] + 2`` gathered from the table."""
    if past is None:
        start, keys = b.ints(0), seq_len
    else:
        start = b.unsqueeze(past, 0)
        keys = b.op("Add", start, seq_len, hint="add")
    ones = b.op(
        "ConstantOfShape",
        b.op("Concat", batch, keys, hint="cat", axis=0),
        hint="ones",
        value=numpy_helper.from_array(np.array([1.0], np.float32), "value"),
    )
    axis = b.const(np.array(1, np.int64))
    if b.torchscript:
        mask = b.op("Cast", ones, to=TensorProto.INT64)
        total = b.op("CumSum", mask, axis)
        positions = b.op(
            "Sub", b.op("Mul", total, mask), b.const(np.array(1, np.int64))
        )
    else:
        total = b.op("CumSum", ones, axis, hint="cumsum")
        shifted = b.op(
            "Sub", b.op("Mul", total, ones, hint="mul"), b.scalar(1.0), hint="sub"
        )
        positions = b.op("Cast", shifted, hint="_to_copy", to=TensorProto.INT64)
    positions = b.op(
        "Slice",
        positions,
        start,
        b.ints(_INT64_MAX),
        b.ints(1),
        b.ints(1),
        hint="slice",
    )
    positions = b.op(
        "Add", positions, b.const(np.array(OPT_POSITION_OFFSET, np.int64)), hint="add"
    )
    return b.op("Gather", table, positions, hint="embedding")


def _opt_attention(
    b: _Builder,
    x: str,
    prefix: str,
    layer: int,
    hidden: int,
    heads: int,
    mask: str | None,
    cache: _KVCache,
) -> str:
    """``OPTAttention``: biased projections, queries scaled by ``1/√d``; batched
    ``bmm`` over ``[b·h, s, d]`` with ``max(scores, finfo.min)`` (torchscript,
    HF's eager attention) or SDPA with ``scale=1`` (dynamo)."""
    head_dim = hidden // heads
    q = b.linear(x, f"{prefix}.q_proj", hidden, hidden, 3, scope="q_proj")
    q = b.op("Mul", q, b.scalar(head_dim**-0.5), hint="mul")
    k = b.linear(x, f"{prefix}.k_proj", hidden, hidden, 3, scope="k_proj")
    v = b.linear(x, f"{prefix}.v_proj", hidden, hidden, 3, scope="v_proj")
    if not b.torchscript:
        qh = _split_heads(b, q, heads, head_dim)
        kh, vh = cache.update(
            layer,
            _split_heads(b, k, heads, head_dim),
            _split_heads(b, v, heads, head_dim),
        )
        kt = b.op("Transpose", kh, hint="transpose", perm=[0, 1, 3, 2])
        scores = b.attention_scores(qh, kt, head_dim, scale=1.0)
        if mask is not None:
            scores = b.op("Add", scores, mask, hint="add")
        probs = b.op("Softmax", scores, hint="softmax", axis=-1)
        context = _merge_heads(b, b.op("MatMul", probs, vh, hint="matmul"), hidden)
    else:
        bsz, tgt = b.shape_dims(x, [0, 1], 3)

        def shape(t: str) -> str:
            split = b.reshape(t, b.dynamic_shape([bsz, -1, heads, head_dim]))
            return b.op("Transpose", split, perm=[0, 2, 1, 3])

        kh, vh = cache.update(layer, shape(k), shape(v))
        rows = b.op("Mul", bsz, b.ints(heads))
        qh = b.reshape(
            b.op(
                "Transpose",
                b.reshape(q, b.dynamic_shape([bsz, tgt, heads, head_dim])),
                perm=[0, 2, 1, 3],
            ),
            b.dynamic_shape([rows, -1, head_dim]),
        )
        k3 = b.reshape(kh, b.dynamic_shape([rows, -1, head_dim]))
        v3 = b.reshape(vh, b.dynamic_shape([rows, -1, head_dim]))
        src = b.shape_dims(k3, [1], 3)[0]
        scores = b.op("MatMul", qh, b.op("Transpose", k3, perm=[0, 2, 1]))
        scores = b.reshape(scores, b.dynamic_shape([bsz, heads, tgt, src]))
        if mask is not None:
            scores = b.op("Add", scores, mask)
        scores = b.op("Max", scores, b.scalar(_FLOAT32_MIN))
        scores = b.reshape(scores, b.dynamic_shape([rows, tgt, src]))
        probs = b.op("Softmax", scores, axis=-1)
        context = b.op("MatMul", probs, v3)
        context = b.reshape(context, b.dynamic_shape([bsz, heads, tgt, head_dim]))
        context = b.op("Transpose", context, perm=[0, 2, 1, 3])
        context = b.reshape(context, b.dynamic_shape([bsz, tgt, hidden]))
    return b.linear(context, f"{prefix}.out_proj", hidden, hidden, 3, scope="out_proj")


def opt(
    vocab: int = 50272,
    hidden: int = 4096,
    layers: int = 32,
    heads: int = 32,
    ffn: int = 16384,
    max_positions: int = 2048,
    eps: float = 1e-5,
    batch: Dim = "batch",
    sequence: Dim = "sequence",
    phase: Phase = "prefill",
    use_cache: bool = False,
    exporter: Exporter = "torchscript",
    weights: Weights = "random",
    seed: int = 0,
    name: str = "opt",
) -> ModelProto:
    """HuggingFace ``OPTForCausalLM`` (pre-LN, ``do_layer_norm_before``; tied LM
    head without bias), output ``logits``.

    Learned positional embeddings (``max_positions + 2`` rows) are looked up at
    the positions of an all-ones attention mask plus OPT's offset of 2; the MLP
    (``fc1``, ReLU, ``fc2``) runs on the tokens flattened to 2-D as HF does,
    hence ``Gemm`` nodes.
    """
    _check_phase(name, phase, sequence, max_positions)
    b = _Builder(name, exporter, weights, seed)
    head_dim = hidden // heads
    decode = phase == "decode"
    ids = b.input("input_ids", TensorProto.INT64, [batch, 1 if decode else sequence])
    cache = _KVCache(b, phase, use_cache, layers, batch, heads, sequence, head_dim)
    with b.scope("model", "decoder"):
        embed = b.param("model.decoder.embed_tokens.weight", [vocab, hidden])
        with b.scope("embed_tokens"):
            x = b.op("Gather", embed, ids, hint="embedding")
        batch_dim, seq_len = b.shape_dims(ids, [0, 1], 2)
        past = cache.past_length()
        mask = _llama_causal_mask(b, batch_dim, seq_len, past)
        table = b.param(
            "model.decoder.embed_positions.weight",
            [max_positions + OPT_POSITION_OFFSET, hidden],
        )
        with b.scope("embed_positions"):
            positions = _opt_positions(b, batch_dim, seq_len, past, table)
        x = b.op("Add", x, positions, hint="add")
        for layer in range(layers):
            prefix = f"model.decoder.layers.{layer}"
            with b.scope("layers", f"layers.{layer}"):
                y = b.layer_norm(
                    x,
                    f"{prefix}.self_attn_layer_norm",
                    hidden,
                    eps,
                    "self_attn_layer_norm",
                )
                with b.scope("self_attn"):
                    y = _opt_attention(
                        b, y, f"{prefix}.self_attn", layer, hidden, heads, mask, cache
                    )
                x = b.op("Add", x, y, hint="add")
                if b.torchscript:
                    restore = b.op("Shape", x)
                    flat = b.reshape(
                        x, b.dynamic_shape([-1, b.shape_dims(x, [2], 3)[0]])
                    )
                else:
                    restore = b.dynamic_shape([*b.shape_dims(x, [0, 1], 3), hidden])
                    flat = b.reshape(x, b.ints(-1, hidden))
                y = b.layer_norm(
                    flat, f"{prefix}.final_layer_norm", hidden, eps, "final_layer_norm"
                )
                y = b.linear(y, f"{prefix}.fc1", hidden, ffn, 2, scope="fc1")
                y = _relu(b, y, "activation_fn")
                y = b.linear(y, f"{prefix}.fc2", ffn, hidden, 2, scope="fc2")
                x = b.reshape(b.op("Add", flat, y, hint="add"), restore)
        x = b.layer_norm(
            x, "model.decoder.final_layer_norm", hidden, eps, "final_layer_norm"
        )
    with b.scope("lm_head"):
        if b.torchscript:
            w = b.param(b.ts_name("MatMul"), [hidden, vocab])
            logits = b.op("MatMul", x, w)
        else:
            wt = b.op("Transpose", embed, hint="t", perm=[1, 0])
            logits = b.op("MatMul", x, wt, hint="matmul")
    b.output(
        logits,
        "logits",
        TensorProto.FLOAT,
        [batch, 1 if decode else sequence, vocab],
    )
    cache.outputs()
    return _finish(b)


def opt_6_7b(**kwargs: Any) -> ModelProto:
    """OPT-6.7B shapes: 32 layers, hidden 4096, 32 heads, FFN 16384, vocabulary
    50272, 2048 positions."""
    return opt(name="opt_6_7b", **kwargs)


def opt_13b(**kwargs: Any) -> ModelProto:
    """OPT-13B shapes (Zhang et al., "OPT: Open Pre-trained Transformer
    Language Models", 2022, Table 1): 40 layers, hidden 5120, 40 heads, FFN
    20480, vocabulary 50272, 2048 positions; CMSwitch's largest model."""
    options: dict[str, Any] = {
        "hidden": 5120,
        "layers": 40,
        "heads": 40,
        "ffn": 20480,
        "name": "opt_13b",
    }
    options.update(kwargs)
    return opt(**options)


def opt_tiny(**kwargs: Any) -> ModelProto:
    """A small OPT: vocabulary 64, 64 positions, 2 layers of width 32, 2 heads."""
    options: dict[str, Any] = {
        "vocab": 64,
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "ffn": 64,
        "max_positions": 64,
        "name": "opt_tiny",
    }
    options.update(kwargs)
    return opt(**options)


TINY_BUILDERS = {
    "resnet": resnet_tiny,
    "mobilenetv2": mobilenetv2_tiny,
    "vit": vit_tiny,
    "bert": bert_tiny,
    "gpt2": gpt2_tiny,
    "llama": llama_tiny,
}
"""The small variant of each model family, by family name."""
