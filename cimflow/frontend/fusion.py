"""Recognition of decomposed operators in a prepared ONNX graph.

Exporters spell several operators the accelerator runs natively as chains of
primitive nodes. :func:`fuse` replaces each chain by one node, keeping the
output name of the chain's last node (the anchor), then drops nodes left
without uses. Nodes inside a matched chain whose values are also used
elsewhere stay, so a fusion never changes what the graph computes.

Recognized chains (``c`` are constants, operands of ``Add``/``Mul`` in
either order):

* ``Linear``: ``MatMul(x, W)`` or ``MatMul(x, Transpose(W))`` with a 2-D
  initializer ``W``, optionally followed by ``Add`` of an initializer bias;
* ``RMSNorm``: ``x * Reciprocal(Sqrt(ReduceMean(Pow(x, 2)) + eps)) * w``, also
  with ``Div(1, ·)`` or ``x / Sqrt(·)``;
* ``LayerNormalization``: ``d = x - ReduceMean(x)``,
  ``d / Sqrt(ReduceMean(Pow(d, 2)) + eps) * g (+ b)``;
* ``Gelu``: ``0.5 * x * (1 + Erf(x / √2))`` and the tanh form
  ``0.5 * x * (1 + Tanh(√(2/π) * (x + 0.044715 * x³)))``;
* ``Silu``: ``x * Sigmoid(x)``;
* a ``Conv`` whose input is a constant zero ``Pad`` of the spatial dims (as
  exporters write TF-style asymmetric padding) becomes one ``Conv`` with
  those pads added to its own (onnxruntime's Pad-Conv fusion does the
  same): the window expansion pads as it reads, nothing is copied.

``Linear``, ``RMSNorm`` and ``Silu`` are in the :data:`FUSED_DOMAIN` domain;
the other two are the standard ONNX operators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import NodeProto, TensorProto

from cimflow.frontend.common import Array, attr_int, attr_ints, default_opset
from cimflow.frontend.prepare import ValueType

FUSED_DOMAIN = "cimflow.fused"

_SQRT2 = math.sqrt(2.0)
_GELU_TANH_SCALE = math.sqrt(2.0 / math.pi)


class _Graph:
    def __init__(
        self,
        nodes: Sequence[NodeProto],
        initializers: Mapping[str, TensorProto],
        constants: Callable[[str], Array | None],
        types: Mapping[str, ValueType],
        opset: int,
    ):
        self.producers = {o: n for n in nodes for o in n.output if o}
        self.use_count: dict[str, int] = {}
        for node in nodes:
            for name in node.input:
                self.use_count[name] = self.use_count.get(name, 0) + 1
        self.initializers = initializers
        self.constant = constants
        self.types = types
        self.opset = opset

    def producer(self, name: str, op_type: str) -> NodeProto | None:
        node = self.producers.get(name)
        if (
            node is None
            or node.op_type != op_type
            or node.domain not in ("", "ai.onnx")
        ):
            return None
        return node

    def is_scalar(self, name: str, target: float, rtol: float = 1e-3) -> bool:
        value = self.constant(name)
        return (
            value is not None
            and value.size == 1
            and bool(np.isclose(float(value.reshape(-1)[0]), target, rtol=rtol))
        )

    def scalar(self, name: str) -> float | None:
        value = self.constant(name)
        if value is None or value.size != 1:
            return None
        return float(value.reshape(-1)[0])

    def shape(self, name: str) -> tuple[int, ...] | None:
        found = self.types.get(name)
        return None if found is None else found[1]

    def is_param(self, name: str) -> bool:
        return name in self.initializers or self.constant(name) is not None


def _pairs(node: NodeProto) -> list[tuple[str, str]]:
    a, b = node.input[0], node.input[1]
    return [(a, b), (b, a)]


def _last_axis_mean(graph: _Graph, name: str) -> NodeProto | None:
    """A ``ReduceMean`` over only the last axis, keeping dims."""
    node = graph.producer(name, "ReduceMean")
    if node is None or not attr_int(node, "keepdims", 1):
        return None
    shape = graph.shape(node.input[0])
    if shape is None:
        return None
    if graph.opset >= 18:
        value = graph.constant(node.input[1]) if len(node.input) > 1 else None
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    else:
        axes = attr_ints(node, "axes")
    if axes is None or len(axes) != 1 or axes[0] not in (-1, len(shape) - 1):
        return None
    return node


def _mean_square_eps(graph: _Graph, name: str) -> tuple[str, float] | None:
    """``Sqrt(ReduceMean(Pow(x, 2)) + eps)`` → ``(x, eps)``."""
    sqrt = graph.producer(name, "Sqrt")
    add = None if sqrt is None else graph.producer(sqrt.input[0], "Add")
    if add is None:
        return None
    for mean_name, eps_name in _pairs(add):
        eps = graph.scalar(eps_name)
        mean = _last_axis_mean(graph, mean_name)
        if eps is None or mean is None or eps <= 0:
            continue
        square = graph.producers.get(mean.input[0])
        if square is None:
            continue
        if square.op_type == "Pow" and graph.is_scalar(square.input[1], 2.0):
            return square.input[0], eps
        if square.op_type == "Mul" and square.input[0] == square.input[1]:
            return square.input[0], eps
    return None


def _rms_core(graph: _Graph, name: str) -> tuple[str, float] | None:
    """``x / sqrt(mean(x²) + eps)`` in its exported forms → ``(x, eps)``."""
    node = graph.producers.get(name)
    if node is None:
        return None
    if node.op_type == "Div":
        found = _mean_square_eps(graph, node.input[1])
        if found is not None and found[0] == node.input[0]:
            return found
        return None
    if node.op_type != "Mul":
        return None
    for x, r in _pairs(node):
        denominator: str | None = None
        if (recip := graph.producer(r, "Reciprocal")) is not None:
            denominator = recip.input[0]
        elif (div := graph.producer(r, "Div")) is not None and graph.is_scalar(
            div.input[0], 1.0, 1e-6
        ):
            denominator = div.input[1]
        if denominator is None:
            continue
        found = _mean_square_eps(graph, denominator)
        if found is not None and found[0] == x:
            return found
    return None


def _match_rms_norm(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    if anchor.op_type != "Mul":
        return None
    for scale, normed in _pairs(anchor):
        if not graph.is_param(scale):
            continue
        found = _rms_core(graph, normed)
        if found is None:
            continue
        x, eps = found
        x_shape, scale_shape = graph.shape(x), graph.shape(scale)
        if (
            x_shape is None
            or scale_shape != (x_shape[-1],)
            or graph.types.get(x) != graph.types.get(anchor.output[0])
        ):
            continue
        return onnx.helper.make_node(
            "RMSNorm",
            [x, scale],
            [anchor.output[0]],
            name=anchor.name,
            domain=FUSED_DOMAIN,
            axis=len(x_shape) - 1,
            epsilon=eps,
        )
    return None


def _centered(graph: _Graph, name: str) -> str | None:
    """``x - ReduceMean(x)`` → ``x``."""
    sub = graph.producer(name, "Sub")
    if sub is None:
        return None
    mean = _last_axis_mean(graph, sub.input[1])
    if mean is None or mean.input[0] != sub.input[0]:
        return None
    return sub.input[0]


def _layer_norm_core(graph: _Graph, name: str) -> tuple[str, float] | None:
    div = graph.producer(name, "Div")
    if div is None:
        return None
    found = _mean_square_eps(graph, div.input[1])
    if found is None or found[0] != div.input[0]:
        return None
    x = _centered(graph, div.input[0])
    return None if x is None else (x, found[1])


def _match_layer_norm(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    candidates: list[tuple[str, str | None]] = []
    if anchor.op_type == "Add":
        for scaled, bias in _pairs(anchor):
            if graph.is_param(bias) and graph.producer(scaled, "Mul") is not None:
                candidates.append((scaled, bias))
    elif anchor.op_type == "Mul":
        candidates.append((anchor.output[0], None))
    for scaled, bias in candidates:
        mul = anchor if bias is None else graph.producer(scaled, "Mul")
        if mul is None:
            continue
        for normed, scale in _pairs(mul):
            if not graph.is_param(scale):
                continue
            found = _layer_norm_core(graph, normed)
            if found is None:
                continue
            x, eps = found
            x_shape = graph.shape(x)
            if x_shape is None or graph.types.get(x) != graph.types.get(
                anchor.output[0]
            ):
                continue
            if graph.shape(scale) != (x_shape[-1],) or (
                bias is not None and graph.shape(bias) != (x_shape[-1],)
            ):
                continue
            inputs = [x, scale] if bias is None else [x, scale, bias]
            return onnx.helper.make_node(
                "LayerNormalization",
                inputs,
                [anchor.output[0]],
                name=anchor.name,
                axis=len(x_shape) - 1,
                epsilon=eps,
            )
    return None


def _factorizations(graph: _Graph, anchor: NodeProto) -> list[list[str]]:
    """The factors of a Mul with either, both or none of its operands expanded."""
    options: list[list[list[str]]] = []
    for name in anchor.input[:2]:
        inner = graph.producer(name, "Mul")
        choices = [[name]]
        if inner is not None:
            choices.append([inner.input[0], inner.input[1]])
        options.append(choices)
    return [a + b for a in options[0] for b in options[1]]


def _gelu_erf_input(graph: _Graph, name: str) -> str | None:
    """``1 + Erf(x / √2)`` → ``x``."""
    add = graph.producer(name, "Add")
    if add is None:
        return None
    for erf_name, one in _pairs(add):
        erf = graph.producer(erf_name, "Erf")
        if erf is None or not graph.is_scalar(one, 1.0):
            continue
        scaled = graph.producers.get(erf.input[0])
        if scaled is None:
            continue
        if scaled.op_type == "Div" and graph.is_scalar(scaled.input[1], _SQRT2):
            return scaled.input[0]
        if scaled.op_type == "Mul":
            for x, c in _pairs(scaled):
                if graph.is_scalar(c, 1 / _SQRT2):
                    return x
    return None


def _cube_of(graph: _Graph, name: str) -> str | None:
    power = graph.producer(name, "Pow")
    if power is not None and graph.is_scalar(power.input[1], 3.0):
        return power.input[0]
    return None


def _gelu_tanh_input(graph: _Graph, name: str) -> str | None:
    """``1 + Tanh(√(2/π) * (x + 0.044715 * x³))`` → ``x``."""
    add = graph.producer(name, "Add")
    if add is None:
        return None
    for tanh_name, one in _pairs(add):
        tanh = graph.producer(tanh_name, "Tanh")
        scaled = None if tanh is None else graph.producer(tanh.input[0], "Mul")
        if scaled is None or not graph.is_scalar(one, 1.0):
            continue
        for inner_name, c in _pairs(scaled):
            inner = graph.producer(inner_name, "Add")
            if inner is None or not graph.is_scalar(c, _GELU_TANH_SCALE):
                continue
            for x, term_name in _pairs(inner):
                term = graph.producer(term_name, "Mul")
                if term is None:
                    continue
                for cube, k in _pairs(term):
                    if graph.is_scalar(k, 0.044715) and _cube_of(graph, cube) == x:
                        return x
    return None


def _match_gelu(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    if anchor.op_type != "Mul":
        return None
    for factors in _factorizations(graph, anchor):
        if len(factors) != 3:
            continue
        for index, half in enumerate(factors):
            if not graph.is_scalar(half, 0.5):
                continue
            rest = factors[:index] + factors[index + 1 :]
            for x, gate in (rest, rest[::-1]):
                approximate = "none"
                found = _gelu_erf_input(graph, gate)
                if found is None:
                    approximate = "tanh"
                    found = _gelu_tanh_input(graph, gate)
                if found == x and graph.types.get(x) == graph.types.get(
                    anchor.output[0]
                ):
                    return onnx.helper.make_node(
                        "Gelu",
                        [x],
                        [anchor.output[0]],
                        name=anchor.name,
                        approximate=approximate,
                    )
    return None


def _match_silu(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    if anchor.op_type != "Mul":
        return None
    for x, gate in _pairs(anchor):
        sigmoid = graph.producer(gate, "Sigmoid")
        if sigmoid is not None and sigmoid.input[0] == x:
            return onnx.helper.make_node(
                "Silu", [x], [anchor.output[0]], name=anchor.name, domain=FUSED_DOMAIN
            )
    return None


def _linear_weight(graph: _Graph, matmul: NodeProto) -> tuple[str, bool] | None:
    """The 2-D initializer a MatMul multiplies by, and whether it is transposed."""
    b = matmul.input[1]
    tensor = graph.initializers.get(b)
    if tensor is not None:
        return (b, False) if len(tensor.dims) == 2 else None
    transpose = graph.producer(b, "Transpose")
    if transpose is None:
        return None
    tensor = graph.initializers.get(transpose.input[0])
    perm = attr_ints(transpose, "perm")
    if tensor is None or len(tensor.dims) != 2 or perm not in (None, [1, 0]):
        return None
    return transpose.input[0], True


def _linear(
    matmul: NodeProto, weight: tuple[str, bool], bias: str | None, anchor: NodeProto
) -> NodeProto:
    inputs = [matmul.input[0], weight[0]] + ([bias] if bias else [])
    return onnx.helper.make_node(
        "Linear",
        inputs,
        [anchor.output[0]],
        name=anchor.name,
        domain=FUSED_DOMAIN,
        transpose_weight=int(weight[1]),
    )


def _match_linear(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    if anchor.op_type == "MatMul":
        weight = _linear_weight(graph, anchor)
        return None if weight is None else _linear(anchor, weight, None, anchor)
    if anchor.op_type != "Add":
        return None
    for product, bias in _pairs(anchor):
        matmul = graph.producer(product, "MatMul")
        if matmul is None or graph.use_count.get(product, 0) != 1:
            continue
        weight = _linear_weight(graph, matmul)
        out_shape = graph.shape(product)
        if (
            weight is None
            or bias not in graph.initializers
            or out_shape is None
            or graph.shape(bias) != (out_shape[-1],)
            or graph.types.get(product) != graph.types.get(anchor.output[0])
        ):
            continue
        return _linear(matmul, weight, bias, anchor)
    return None


def _spatial_pads(graph: _Graph, pad: NodeProto) -> list[int] | None:
    """``[top, left, bottom, right]`` of a constant zero ``Pad`` of a 4-D
    tensor that pads only its last two axes, else None."""
    if any(a.name == "mode" and a.s not in (b"", b"constant") for a in pad.attribute):
        return None
    if graph.opset >= 11:
        if len(pad.input) > 3 and pad.input[3]:
            return None
        value = graph.constant(pad.input[1]) if len(pad.input) > 1 else None
        pads = None if value is None else [int(v) for v in value.reshape(-1)]
        if (
            len(pad.input) > 2
            and pad.input[2]
            and not graph.is_scalar(pad.input[2], 0.0)
        ):
            return None
    else:
        pads = attr_ints(pad, "pads")
        if any(a.name == "value" and a.f != 0.0 for a in pad.attribute):
            return None
    if pads is None or len(pads) != 8 or min(pads) < 0:
        return None
    if pads[0] or pads[1] or pads[4] or pads[5]:
        return None
    return [pads[2], pads[3], pads[6], pads[7]]


def _match_padded_conv(graph: _Graph, anchor: NodeProto) -> NodeProto | None:
    if anchor.op_type != "Conv":
        return None
    pad = graph.producer(anchor.input[0], "Pad")
    if pad is None:
        return None
    extra = _spatial_pads(graph, pad)
    auto_pad = next((a.s for a in anchor.attribute if a.name == "auto_pad"), b"")
    if extra is None or auto_pad not in (b"", b"NOTSET"):
        return None
    own = attr_ints(anchor, "pads") or [0, 0, 0, 0]
    if len(own) != 4:
        return None
    fused = onnx.NodeProto()
    fused.CopyFrom(anchor)
    fused.input[0] = pad.input[0]
    kept = [a for a in fused.attribute if a.name != "pads"]
    del fused.attribute[:]
    fused.attribute.extend(kept)
    fused.attribute.append(
        onnx.helper.make_attribute(
            "pads", [a + b for a, b in zip(own, extra, strict=True)]
        )
    )
    return fused


_MATCHERS = (
    _match_layer_norm,
    _match_rms_norm,
    _match_gelu,
    _match_silu,
    _match_linear,
    _match_padded_conv,
)


def fuse(
    model: onnx.ModelProto,
    constants: Callable[[str], Array | None],
    types: Mapping[str, ValueType],
) -> list[NodeProto]:
    """The nodes of a prepared model with recognized chains fused."""
    nodes = list(model.graph.node)
    initializers = {t.name: t for t in model.graph.initializer}
    graph = _Graph(nodes, initializers, constants, types, default_opset(model))
    replaced: dict[int, NodeProto] = {}
    for index in range(len(nodes) - 1, -1, -1):
        anchor = nodes[index]
        if anchor.domain not in ("", "ai.onnx") or len(anchor.input) < 2:
            continue
        for matcher in _MATCHERS:
            fused = matcher(graph, anchor)
            if fused is not None:
                replaced[index] = fused
                break
    result = [replaced.get(i, node) for i, node in enumerate(nodes)]
    live = {o.name for o in model.graph.output}
    kept: list[NodeProto] = []
    for node in reversed(result):
        if any(o in live for o in node.output if o):
            kept.append(node)
            live.update(n for n in node.input if n)
    return kept[::-1]
