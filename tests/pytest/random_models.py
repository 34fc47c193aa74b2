"""Hypothesis strategies: random small ONNX models and random small targets.

Models are DAGs drawn from the supported operator set, in two flavours:
image-like ``[B, C, H, W]`` graphs (convolutions with random stride, padding,
dilation and groups, depthwise convolutions, pooling, residual adds, channel
concatenation, padding, a Gemm head) and sequence-like ``[B, S, D]`` graphs
(projections, attention-style activation matmuls, softmax, layer norm,
reductions, transposes, split/concat, slices). Sizes are deliberately odd and
rarely multiples of the array size; batch may exceed 1. Weights are real
(seeded normal values), so the models run in onnxruntime.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from cimflow.hw_targets import HardwareTarget, load_target

OPSET = 17

Shape = tuple[int, ...]


@dataclass
class _Graph:
    """A model under construction: nodes, initializers, live tensors."""

    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=lambda: [])
    initializers: list[TensorProto] = field(default_factory=lambda: [])
    shapes: dict[str, Shape] = field(default_factory=lambda: {})
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def weight(self, shape: Shape, fan_in: int) -> str:
        name = self.fresh("w")
        values = (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def const(self, values: np.ndarray) -> str:
        name = self.fresh("c")
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def node(self, op: str, inputs: list[str], shape: Shape, **attrs: Any) -> str:
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.shapes[out] = shape
        return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _image_step(draw: st.DrawFn, g: _Graph, live: list[str]) -> str:
    x = live[-1]
    b, c, h, w = g.shapes[x]
    choice = draw(
        st.sampled_from(
            ["conv", "conv", "depthwise", "act", "pool", "residual", "concat", "pad"]
        )
    )
    if choice in ("conv", "depthwise"):
        kernel = draw(st.sampled_from([1, 2, 3]))
        stride = draw(st.sampled_from([1, 2]))
        pad = draw(st.integers(0, kernel // 2 + 1))
        dilation = draw(st.sampled_from([1, 2])) if kernel > 1 else 1
        span = dilation * (kernel - 1) + 1
        if min(h, w) + 2 * pad < span:
            return g.node("Relu", [x], (b, c, h, w))
        if choice == "depthwise":
            out_c, groups = c, c
        else:
            out_c = draw(st.integers(1, 9))
            groups = draw(st.sampled_from(_divisors(np.gcd(c, out_c))))
        weight = g.weight((out_c, c // groups, kernel, kernel), c // groups * kernel**2)
        inputs = [x, weight]
        if draw(st.booleans()):
            inputs.append(g.const(g.rng.standard_normal(out_c).astype(np.float32)))
        oh = (h + 2 * pad - span) // stride + 1
        ow = (w + 2 * pad - span) // stride + 1
        return g.node(
            "Conv",
            inputs,
            (b, out_c, oh, ow),
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            dilations=[dilation, dilation],
            group=groups,
        )
    if choice == "act":
        op = draw(st.sampled_from(["Relu", "Sigmoid", "Tanh"]))
        return g.node(op, [x], (b, c, h, w))
    if choice == "pool" and min(h, w) >= 2:
        op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
        return g.node(
            op, [x], (b, c, h // 2, w // 2), kernel_shape=[2, 2], strides=[2, 2]
        )
    same = [t for t in live[:-1] if g.shapes[t] == g.shapes[x]]
    if choice == "residual":
        other = draw(st.sampled_from(same)) if same else None
        if other is None:
            other = g.const(g.rng.standard_normal((1, c, 1, 1)).astype(np.float32))
        return g.node("Add", [x, other], (b, c, h, w))
    if choice == "concat":
        spatial = [t for t in live[:-1] if g.shapes[t][2:] == (h, w)]
        if spatial:
            other = draw(st.sampled_from(spatial))
            return g.node(
                "Concat", [x, other], (b, c + g.shapes[other][1], h, w), axis=1
            )
    if choice == "pad":
        pads = g.const(np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=np.int64))
        return g.node("Pad", [x, pads], (b, c, h + 1, w + 1), mode="constant")
    return g.node("Relu", [x], (b, c, h, w))


def _sequence_step(draw: st.DrawFn, g: _Graph, live: list[str]) -> str:
    x = live[-1]
    b, s, d = g.shapes[x]
    choice = draw(
        st.sampled_from(
            [
                "linear",
                "linear",
                "attention",
                "softmax",
                "norm",
                "reduce",
                "act",
                "split",
                "slice",
                "residual",
            ]
        )
    )
    if choice == "linear":
        out_d = draw(st.integers(1, 23))
        y = g.node("MatMul", [x, g.weight((d, out_d), d)], (b, s, out_d))
        if draw(st.booleans()):
            bias = g.const(g.rng.standard_normal(out_d).astype(np.float32))
            y = g.node("Add", [y, bias], (b, s, out_d))
        return y
    if choice == "attention":
        xt = g.node("Transpose", [x], (b, d, s), perm=[0, 2, 1])
        scores = g.node("MatMul", [x, xt], (b, s, s))
        probs = g.node("Softmax", [scores], (b, s, s), axis=-1)
        return g.node("MatMul", [probs, x], (b, s, d))
    if choice == "softmax":
        return g.node("Softmax", [x], (b, s, d), axis=-1)
    if choice == "norm":
        scale = g.const(g.rng.standard_normal(d).astype(np.float32))
        bias = g.const(g.rng.standard_normal(d).astype(np.float32))
        return g.node(
            "LayerNormalization", [x, scale, bias], (b, s, d), axis=-1, epsilon=1e-5
        )
    if choice == "reduce":
        mean = g.node("ReduceMean", [x], (b, s, 1), axes=[-1], keepdims=1)
        return g.node("Sub", [x, mean], (b, s, d))
    if choice == "act":
        op = draw(st.sampled_from(["Relu", "Sigmoid", "Tanh", "Erf"]))
        return g.node(op, [x], (b, s, d))
    if choice == "split" and d >= 2:
        first = draw(st.integers(1, d - 1))
        sizes = g.const(np.array([first, d - first], dtype=np.int64))
        left, right = g.fresh("split"), g.fresh("split")
        g.nodes.append(helper.make_node("Split", [x, sizes], [left, right], axis=2))
        g.shapes[left], g.shapes[right] = (b, s, first), (b, s, d - first)
        return g.node("Concat", [right, left], (b, s, d), axis=2)
    if choice == "slice" and s >= 2:
        starts = g.const(np.array([1], dtype=np.int64))
        ends = g.const(np.array([s], dtype=np.int64))
        axes = g.const(np.array([1], dtype=np.int64))
        return g.node("Slice", [x, starts, ends, axes], (b, s - 1, d))
    same = [t for t in live[:-1] if g.shapes[t] == g.shapes[x]]
    if choice == "residual" and same:
        return g.node("Add", [x, draw(st.sampled_from(same))], (b, s, d))
    return g.node("Relu", [x], (b, s, d))


@st.composite
def random_models(draw: st.DrawFn) -> onnx.ModelProto:
    """A random, valid, small ONNX model with real weights."""
    g = _Graph(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    batch = draw(st.integers(1, 3))
    image = draw(st.booleans())
    if image:
        shape: Shape = (
            batch,
            draw(st.integers(1, 7)),
            draw(st.integers(3, 11)),
            draw(st.integers(3, 11)),
        )
    else:
        shape = (batch, draw(st.integers(1, 6)), draw(st.integers(2, 21)))
    g.shapes["x"] = shape
    live = ["x"]
    for _ in range(draw(st.integers(1, 6))):
        step = _image_step if image else _sequence_step
        live.append(step(draw, g, live))
    if image and draw(st.booleans()):
        b, c = g.shapes[live[-1]][:2]
        pooled = g.node("GlobalAveragePool", [live[-1]], (b, c, 1, 1))
        flat = g.node("Flatten", [pooled], (b, c), axis=1)
        classes = draw(st.integers(1, 11))
        live.append(
            g.node("Gemm", [flat, g.weight((classes, c), c)], (b, classes), transB=1)
        )
    outputs = [live[-1]]
    if len(live) > 2 and draw(st.booleans()):
        outputs.append(live[len(live) // 2])
    graph = helper.make_graph(
        g.nodes,
        "random",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info(o, TensorProto.FLOAT, list(g.shapes[o]))
            for o in dict.fromkeys(outputs)
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@st.composite
def random_targets(draw: st.DrawFn) -> HardwareTarget:
    """A small, valid target: few small arrays, small buffers, odd geometry,
    ADCs shared by up to 8 columns."""
    base = load_target("tiny")
    rows = draw(st.sampled_from([8, 12, 16, 24, 32]))
    cols = draw(st.sampled_from([8, 16, 24, 32]))
    cell_bits = draw(st.sampled_from([1, 2, 4]))
    arrays_per_core = draw(st.integers(1, 6))
    cores = draw(st.integers(1, 3))
    cell_bytes = rows * cols * cell_bits // 8
    return dataclasses.replace(
        base,
        hierarchy=dataclasses.replace(
            base.hierarchy, cores_per_chip=cores, arrays_per_core=arrays_per_core
        ),
        array=dataclasses.replace(
            base.array,
            rows=rows,
            cols=cols,
            active_rows=draw(st.sampled_from([r for r in (4, 8, rows) if r <= rows])),
            cell_bits=cell_bits,
            dac_bits=draw(st.sampled_from([1, 2])),
            adcs_per_array=draw(st.sampled_from([cols // 8, cols // 2, cols])),
        ),
        dual_mode=dataclasses.replace(
            base.dual_mode,
            switchable_arrays=cores * arrays_per_core,
            memory_capacity_bytes=min(base.dual_mode.memory_capacity_bytes, cell_bytes),
        ),
        buffers=dataclasses.replace(
            base.buffers, global_bytes=draw(st.sampled_from([256, 1024, 8192]))
        ),
    )
