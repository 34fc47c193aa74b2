"""Hermes' hot/cold neuron split, computed: every device's partial product
of a sparse block, merged into the block's output.

Hermes (HPCA 2025, Sec. IV-A, Fig. 6; ``shared/reference/hermes.md`` §1, §3)
places each neuron of the QKV and MLP blocks on one device: the GPU (hot
neurons) or one of the NDP-DIMMs (cold neurons, computed inside the DIMM that
stores them). Per token, every device computes the partial product of its own
*active* neurons (those whose activation is nonzero; the rest are skipped and
their weights never read), and the partials are summed on the DIMMs. Because
a skipped neuron would only have contributed zero, the merged result is the
dense block's output exactly (hermes.md §10.4); this module computes it so
that the claim can be checked against onnxruntime.

A placement is an int array ``device_of`` with one entry per neuron: ``GPU``
(0) or DIMM ``j`` in ``1..J``; ``devices = 1 + J``.

Weights use the ONNX ``MatMul`` convention ``y = x @ W`` with ``W`` of shape
``(in, out)`` and ``x`` of shape ``(tokens, in)``. The neurons are then:

- OPT MLP (``fc2(relu(fc1(x)))``): neuron i is column i of ``fc1_w`` with
  ``fc1_b[i]`` and row i of ``fc2_w``; its activation is the ReLU output.
  ``fc2_b`` is added once, after the merge.
- ReLU-LLaMA MLP (``down(relu(gate(x)) * up(x))``): neuron i is column i of
  ``gate_w`` and ``up_w`` and row i of ``down_w``; its activation is
  ``relu(gate(x))[i]``.
- QKV block with a ReLU inserted before it: neuron i is input dimension i,
  row i of ``wq``, ``wk`` and ``wv``; its activation is ``relu(x)[i]``.

(In PyTorch's ``(out, in)`` layout the MLP's up-projection neurons are rows
and the QKV neurons columns, as hermes.md words it.)

A neuron counts as computed when it is active for any token of the batch
(the weights are streamed once per step). Each function takes an optional
``predicted`` mask in place of that oracle: a neuron predicted inactive is
skipped even if it is active, which is how a predictor's misses change the
output (Sec. IV-C.1).

The ONNX builders make the dense blocks (opset :data:`OPSET`) and one
decoder layer that chains the two split blocks, for onnxruntime to compute
the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from cimflow.errors import CimError

GPU: Final = 0
"""Device id of the GPU in a placement; DIMM ``j`` (1-based) has id ``j``."""

OPSET: Final = 17
"""ONNX opset of the built models."""
IR_VERSION: Final = 8
"""ONNX IR version matching :data:`OPSET`."""

Array = NDArray[np.floating[Any]]
Placement = NDArray[np.integer[Any]]
Mask = NDArray[np.bool_]
Indices = NDArray[np.intp]


@dataclass(frozen=True)
class Split:
    """One block computed device by device.

    ``outputs`` are the merged outputs (``(y,)`` for an MLP, ``(q, k, v)`` for
    a QKV block); ``partials[j]`` are device ``j``'s partial outputs, summed
    in device order into ``outputs``. ``active`` is ``(tokens, neurons)``:
    the neuron's activation is nonzero at that token. ``computed`` is
    ``(neurons,)``: the neurons whose weights their device read.
    ``reads[j]`` is the number of weight values device ``j`` read, its
    computed neurons times ``weights_per_neuron``.
    """

    outputs: tuple[Array, ...]
    partials: tuple[tuple[Array, ...], ...]
    active: Mask
    computed: Mask
    reads: NDArray[np.int64]
    weights_per_neuron: int


def split_mlp_opt(
    x: Array,
    fc1_w: Array,
    fc1_b: Array,
    fc2_w: Array,
    fc2_b: Array,
    device_of: Placement,
    devices: int,
    predicted: Mask | None = None,
) -> Split:
    """OPT's MLP ``relu(x @ fc1_w + fc1_b) @ fc2_w + fc2_b``, split by neuron.

    A neuron's weights are ``2 * d + 1`` values: its ``fc1`` column and bias
    and its ``fc2`` row.
    """
    _check_matrix("x", x, None, fc1_w.shape[0])
    _check_matrix("fc1_w", fc1_w, x.shape[1], None)
    _check_matrix("fc2_w", fc2_w, fc1_w.shape[1], None)
    _check_vector("fc1_b", fc1_b, fc1_w.shape[1])
    _check_vector("fc2_b", fc2_b, fc2_w.shape[1])
    active = x @ fc1_w + fc1_b > 0

    def partial(idx: Indices) -> tuple[Array, ...]:
        hidden = np.maximum(x @ fc1_w[:, idx] + fc1_b[idx], 0)
        return (hidden @ fc2_w[idx, :],)

    split = _split(
        active,
        device_of,
        devices,
        predicted,
        fc1_w.shape[0] + 1 + fc2_w.shape[1],
        partial,
    )
    (merged,) = split.outputs
    return replace(split, outputs=(merged + fc2_b,))


def split_mlp_relu_llama(
    x: Array,
    gate_w: Array,
    up_w: Array,
    down_w: Array,
    device_of: Placement,
    devices: int,
    predicted: Mask | None = None,
) -> Split:
    """ReLU-LLaMA's MLP ``(relu(x @ gate_w) * (x @ up_w)) @ down_w``, split
    by neuron.

    A neuron's weights are ``3 * d`` values: its ``gate`` and ``up`` columns
    and its ``down`` row.
    """
    _check_matrix("x", x, None, gate_w.shape[0])
    _check_matrix("up_w", up_w, *gate_w.shape)
    _check_matrix("down_w", down_w, gate_w.shape[1], None)
    active = x @ gate_w > 0

    def partial(idx: Indices) -> tuple[Array, ...]:
        hidden = np.maximum(x @ gate_w[:, idx], 0) * (x @ up_w[:, idx])
        return (hidden @ down_w[idx, :],)

    per_neuron = 2 * gate_w.shape[0] + down_w.shape[1]
    return _split(active, device_of, devices, predicted, per_neuron, partial)


def split_qkv_relu(
    x: Array,
    wq: Array,
    wk: Array,
    wv: Array,
    device_of: Placement,
    devices: int,
    predicted: Mask | None = None,
) -> Split:
    """The QKV block with a ReLU before it, ``relu(x) @ wq``, ``@ wk`` and
    ``@ wv``, split by input neuron; outputs ``(q, k, v)``.

    A neuron's weights are ``q + k + v`` values, its row of each matrix
    (``k`` and ``v`` narrower than ``q`` under grouped-query attention).
    """
    _check_matrix("x", x, None, wq.shape[0])
    _check_matrix("wk", wk, x.shape[1], None)
    _check_matrix("wv", wv, x.shape[1], None)
    hidden = np.maximum(x, 0)

    def partial(idx: Indices) -> tuple[Array, ...]:
        part = hidden[:, idx]
        return (part @ wq[idx, :], part @ wk[idx, :], part @ wv[idx, :])

    per_neuron = wq.shape[1] + wk.shape[1] + wv.shape[1]
    return _split(hidden > 0, device_of, devices, predicted, per_neuron, partial)


def hot_first_placement(
    frequency: NDArray[np.floating[Any]], hot_share: float, dimms: int
) -> NDArray[np.int64]:
    """The ``round(hot_share * neurons)`` most frequently active neurons on
    the GPU, the rest dealt round-robin over DIMMs ``1..dimms`` in order of
    decreasing frequency (ties by index)."""
    if frequency.ndim != 1:
        raise CimError(f"frequency must be 1-D, not of shape {list(frequency.shape)}")
    if not 0.0 <= hot_share <= 1.0:
        raise CimError(f"hot_share {hot_share} is not in [0, 1]")
    if dimms < 1:
        raise CimError(f"dimms must be at least 1, not {dimms}")
    order = np.argsort(-frequency, kind="stable")
    hot = round(hot_share * frequency.shape[0])
    device_of = np.full(frequency.shape[0], GPU, dtype=np.int64)
    device_of[order[hot:]] = 1 + np.arange(order.shape[0] - hot) % dimms
    return device_of


def _split(
    active: Mask,
    device_of: Placement,
    devices: int,
    predicted: Mask | None,
    weights_per_neuron: int,
    partial: Callable[[Indices], tuple[Array, ...]],
) -> Split:
    """Each device's partial over its computed neurons, summed in device
    order (the merge on the DIMMs)."""
    neurons = active.shape[1]
    _check_placement(device_of, devices, neurons)
    if predicted is None:
        computed = np.count_nonzero(active, axis=0) > 0
    elif predicted.shape != (neurons,) or predicted.dtype != np.bool_:
        raise CimError(
            f"predicted must be a bool array of shape [{neurons}], not "
            f"{predicted.dtype} {list(predicted.shape)}"
        )
    else:
        computed = predicted
    own = [computed & (device_of == device) for device in range(devices)]
    partials = tuple(partial(np.flatnonzero(mask)) for mask in own)
    merged: list[Array] = []
    for parts in zip(*partials, strict=True):
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        merged.append(total)
    reads = np.array([np.count_nonzero(mask) for mask in own], dtype=np.int64)
    return Split(
        tuple(merged),
        partials,
        active,
        computed,
        reads * weights_per_neuron,
        weights_per_neuron,
    )


def _check_placement(device_of: Placement, devices: int, neurons: int) -> None:
    if devices < 1:
        raise CimError(f"devices must be at least 1 (the GPU), not {devices}")
    if device_of.shape != (neurons,) or not np.issubdtype(device_of.dtype, np.integer):
        raise CimError(
            f"placement must be an int array of shape [{neurons}], not "
            f"{device_of.dtype} {list(device_of.shape)}"
        )
    if neurons and (device_of.min() < 0 or device_of.max() >= devices):
        raise CimError(
            f"placement names devices {int(device_of.min())}..{int(device_of.max())}"
            f", outside 0..{devices - 1}"
        )


def _check_matrix(name: str, a: Array, rows: int | None, cols: int | None) -> None:
    if (
        a.ndim != 2
        or (rows is not None and a.shape[0] != rows)
        or (cols is not None and a.shape[1] != cols)
    ):
        want = f"[{'*' if rows is None else rows}, {'*' if cols is None else cols}]"
        raise CimError(f"{name} has shape {list(a.shape)}, expected {want}")


def _check_vector(name: str, a: Array, size: int) -> None:
    if a.shape != (size,):
        raise CimError(f"{name} has shape {list(a.shape)}, expected [{size}]")


# --- dense ONNX models -------------------------------------------------------


def int_weights(
    rng: np.random.Generator, shape: tuple[int, ...], bound: int
) -> NDArray[np.float32]:
    """Integers drawn uniformly from ``[-bound, bound]``, as float32: sums of
    their products are exact while their magnitude stays below ``2**24``."""
    return rng.integers(-bound, bound, size=shape, endpoint=True).astype(np.float32)


def mlp_opt_model(
    fc1_w: Array, fc1_b: Array, fc2_w: Array, fc2_b: Array
) -> onnx.ModelProto:
    """The dense OPT MLP: input ``x`` ``[tokens, d]``, output ``y``."""
    nodes = [
        helper.make_node("MatMul", ["x", "fc1_w"], ["fc1"]),
        helper.make_node("Add", ["fc1", "fc1_b"], ["fc1_biased"]),
        helper.make_node("Relu", ["fc1_biased"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "fc2_w"], ["fc2"]),
        helper.make_node("Add", ["fc2", "fc2_b"], ["y"]),
    ]
    weights = {"fc1_w": fc1_w, "fc1_b": fc1_b, "fc2_w": fc2_w, "fc2_b": fc2_b}
    return _model("mlp_opt", nodes, weights, fc1_w.shape[0], [("y", fc2_w.shape[1])])


def mlp_relu_llama_model(gate_w: Array, up_w: Array, down_w: Array) -> onnx.ModelProto:
    """The dense ReLU-LLaMA MLP: input ``x`` ``[tokens, d]``, output ``y``."""
    weights = {"gate_w": gate_w, "up_w": up_w, "down_w": down_w}
    return _model(
        "mlp_relu_llama",
        _llama_mlp_nodes("x", "y"),
        weights,
        gate_w.shape[0],
        [("y", down_w.shape[1])],
    )


def qkv_relu_model(wq: Array, wk: Array, wv: Array) -> onnx.ModelProto:
    """The dense QKV block with a ReLU before it: input ``x`` ``[tokens, d]``,
    outputs ``q``, ``k``, ``v``."""
    weights = {"wq": wq, "wk": wk, "wv": wv}
    outputs = [("q", wq.shape[1]), ("k", wk.shape[1]), ("v", wv.shape[1])]
    return _model("qkv_relu", _qkv_nodes("x"), weights, wq.shape[0], outputs)


@dataclass(frozen=True)
class DecoderLayer:
    """A ReLU-LLaMA decoder layer: the QKV block (with its ReLU), attention,
    the output projection ``wo`` (dense, on the GPU) and the MLP block, each
    with a residual connection (no normalization). ``head_dim`` divides the
    widths of ``wq`` and ``wk``/``wv`` (grouped-query attention)."""

    wq: Array
    wk: Array
    wv: Array
    wo: Array
    gate_w: Array
    up_w: Array
    down_w: Array
    head_dim: int

    @property
    def kv_heads(self) -> int:
        return self.wv.shape[1] // self.head_dim

    @property
    def group(self) -> int:
        """Query heads per KV head."""
        return self.wq.shape[1] // self.wv.shape[1]


def decoder_layer_model(layer: DecoderLayer) -> onnx.ModelProto:
    """``layer`` for the first generated token: input ``x`` ``[tokens, d]``,
    outputs ``y`` and the ``q``, ``k``, ``v`` written to the KV cache.

    With one cached position the attention weights are all 1, so each query
    head's output is its KV head's ``v`` (:func:`attend_first_token`)."""
    kv_shape = np.array([0, layer.kv_heads, 1, layer.head_dim], dtype=np.int64)
    expand = np.array([1, layer.kv_heads, layer.group, layer.head_dim], np.int64)
    merge_heads = np.array([0, layer.wq.shape[1]], dtype=np.int64)
    nodes = [
        *_qkv_nodes("x"),
        helper.make_node("Reshape", ["v", "kv_shape"], ["v_heads"]),
        helper.make_node("Expand", ["v_heads", "expand"], ["attn_heads"]),
        helper.make_node("Reshape", ["attn_heads", "merge_heads"], ["attn"]),
        helper.make_node("MatMul", ["attn", "wo"], ["proj"]),
        helper.make_node("Add", ["x", "proj"], ["x1"]),
        *_llama_mlp_nodes("x1", "mlp"),
        helper.make_node("Add", ["x1", "mlp"], ["y"]),
    ]
    weights: dict[str, NDArray[Any]] = {
        "wq": layer.wq,
        "wk": layer.wk,
        "wv": layer.wv,
        "wo": layer.wo,
        "gate_w": layer.gate_w,
        "up_w": layer.up_w,
        "down_w": layer.down_w,
        "kv_shape": kv_shape,
        "expand": expand,
        "merge_heads": merge_heads,
    }
    d = layer.wq.shape[0]
    outputs = [
        ("y", d),
        ("q", layer.wq.shape[1]),
        ("k", layer.wk.shape[1]),
        ("v", layer.wv.shape[1]),
    ]
    return _model("decoder_layer", nodes, weights, d, outputs)


def attend_first_token(v: Array, layer: DecoderLayer) -> Array:
    """Attention output at sequence length 1: every query head gets ``v`` of
    its KV head (head ``h`` reads KV head ``h // group``)."""
    tokens = v.shape[0]
    heads = v.reshape(tokens, layer.kv_heads, 1, layer.head_dim)
    shape = (tokens, layer.kv_heads, layer.group, layer.head_dim)
    return np.broadcast_to(heads, shape).reshape(tokens, layer.wq.shape[1])


def split_decoder_layer(
    x: Array,
    layer: DecoderLayer,
    qkv_device_of: Placement,
    mlp_device_of: Placement,
    devices: int,
) -> tuple[Array, Split, Split]:
    """:func:`decoder_layer_model`'s output ``y`` with the QKV and MLP blocks
    split by their placements; also returns the two splits."""
    qkv = split_qkv_relu(x, layer.wq, layer.wk, layer.wv, qkv_device_of, devices)
    x1 = x + attend_first_token(qkv.outputs[2], layer) @ layer.wo
    mlp = split_mlp_relu_llama(
        x1, layer.gate_w, layer.up_w, layer.down_w, mlp_device_of, devices
    )
    return x1 + mlp.outputs[0], qkv, mlp


def _qkv_nodes(x: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Relu", [x], ["qkv_in"]),
        helper.make_node("MatMul", ["qkv_in", "wq"], ["q"]),
        helper.make_node("MatMul", ["qkv_in", "wk"], ["k"]),
        helper.make_node("MatMul", ["qkv_in", "wv"], ["v"]),
    ]


def _llama_mlp_nodes(x: str, y: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("MatMul", [x, "gate_w"], ["gate"]),
        helper.make_node("Relu", ["gate"], ["gate_act"]),
        helper.make_node("MatMul", [x, "up_w"], ["up"]),
        helper.make_node("Mul", ["gate_act", "up"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "down_w"], [y]),
    ]


def _model(
    name: str,
    nodes: Sequence[onnx.NodeProto],
    weights: dict[str, NDArray[Any]],
    width: int,
    outputs: Sequence[tuple[str, int]],
) -> onnx.ModelProto:
    """A checked model with input ``x`` ``[tokens, width]`` of the weights'
    float type and the named ``[tokens, n]`` outputs."""
    floats = {a.dtype for a in weights.values() if np.issubdtype(a.dtype, np.floating)}
    if len(floats) != 1:
        raise CimError(f"{name}: weights mix float types {sorted(map(str, floats))}")
    elem = helper.np_dtype_to_tensor_dtype(floats.pop())
    graph = helper.make_graph(
        list(nodes),
        name,
        [helper.make_tensor_value_info("x", elem, ["tokens", width])],
        [helper.make_tensor_value_info(out, elem, ["tokens", n]) for out, n in outputs],
        [numpy_helper.from_array(np.asarray(a), key) for key, a in weights.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="cimflow.ndp.functional",
    )
    onnx.checker.check_model(model, full_check=True)
    return model
