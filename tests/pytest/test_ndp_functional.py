"""Hermes' hot/cold split computes every sparse block exactly (hermes.md §1,
§3, §10.4; Sec. IV-A of the paper).

For the OPT MLP, the ReLU-LLaMA MLP and the QKV block with a ReLU before it
(in OPT-like and LLaMA-like shapes, the latter with grouped-query K and V),
under all-GPU, all-DIMM, random and hot-first placements, the devices' partial
products summed by :mod:`cimflow.ndp.functional` equal onnxruntime's output of
the dense ONNX model, each device's partial equals the dense model restricted
to that device's neurons, and each device reads exactly its active neurons'
weights.

Equality is exact (``np.array_equal``): weights and inputs are small integers
in float32, so every product, partial sum and total is an integer of
magnitude below ``2**24``, exactly representable whatever order the devices
and onnxruntime add in. With ``|x| <= X``, ``|w| <= W`` and fan-in ``n``, every
partial sum is at most ``n * X * W`` (:func:`test_exactness_bounds` checks):

- OPT MLP (d 64, d_ff 256, X 4, W 3): ``|fc1 + b| <= 771``,
  ``|fc2| <= 256 * 771 * 3 = 592,128``;
- ReLU-LLaMA MLP (d 64, d_ff 172, X 3, W 1): ``|gate|, |up| <= 192``,
  ``|hidden| <= 36,864``, ``|down| <= 172 * 36,864 = 6,340,608``;
- QKV (d 64, X 4, W 3): ``<= 768``;
- the decoder layer squares magnitudes in its MLP, so its premise is checked
  on the data instead (:func:`assert_exact_premise`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from cimflow.errors import CimError
from cimflow.ndp.functional import (
    GPU,
    OPSET,
    DecoderLayer,
    Split,
    attend_first_token,
    decoder_layer_model,
    hot_first_placement,
    int_weights,
    mlp_opt_model,
    mlp_relu_llama_model,
    qkv_relu_model,
    split_decoder_layer,
    split_mlp_opt,
    split_mlp_relu_llama,
    split_qkv_relu,
)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Ints = NDArray[np.int64]
Mask = NDArray[np.bool_]

EXACT = 2**24
DIMMS = 4
DEVICES = 1 + DIMMS
TOKENS = 8
CALIBRATION_TOKENS = 64
HOT_SHARE = 0.2

OPT_D, OPT_FF = 64, 256
LLAMA_D, LLAMA_FF, LLAMA_Q, LLAMA_KV, HEAD_DIM = 64, 172, 64, 16, 8
OPT_X, OPT_W = 4, 3
LLAMA_X, LLAMA_W = 3, 1
QKV_X, QKV_W = 4, 3

PLACEMENTS = ["all-gpu", "all-dimm", "random", "hot-first"]


@dataclass(frozen=True)
class Case:
    """A sparse block with its weights: the split under test and what it is
    checked against (computed independently, in float64 or onnxruntime)."""

    model: onnx.ModelProto
    split: Callable[[F32, Ints, Mask | None], Split]
    restricted: Callable[[Mask], onnx.ModelProto]
    """The dense model with only these neurons' weights (the rest zero)."""
    active: Callable[[F32], Mask]
    neurons: int
    weights_per_neuron: int
    width: int
    x_bound: int


def run(model: onnx.ModelProto, x: F32) -> list[F32]:
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    outputs = cast(list[NDArray[Any]], session.run(None, {"x": x}))
    return [np.asarray(out, dtype=np.float32) for out in outputs]


def f64(a: NDArray[Any]) -> F64:
    return a.astype(np.float64)


def opt_mlp_case() -> Case:
    rng = np.random.default_rng(1)
    fc1_w = int_weights(rng, (OPT_D, OPT_FF), OPT_W)
    fc1_b = int_weights(rng, (OPT_FF,), OPT_W)
    fc2_w = int_weights(rng, (OPT_FF, OPT_D), OPT_W)
    fc2_b = int_weights(rng, (OPT_D,), OPT_W)
    zero_b = np.zeros_like(fc2_b)

    def split(x: F32, device_of: Ints, predicted: Mask | None) -> Split:
        return split_mlp_opt(
            x, fc1_w, fc1_b, fc2_w, fc2_b, device_of, DEVICES, predicted
        )

    def restricted(keep: Mask) -> onnx.ModelProto:
        k = keep.astype(np.float32)
        return mlp_opt_model(fc1_w * k, fc1_b * k, fc2_w * k[:, None], zero_b)

    def active(x: F32) -> Mask:
        return f64(x) @ f64(fc1_w) + f64(fc1_b) > 0

    return Case(
        mlp_opt_model(fc1_w, fc1_b, fc2_w, fc2_b),
        split,
        restricted,
        active,
        OPT_FF,
        2 * OPT_D + 1,
        OPT_D,
        OPT_X,
    )


def llama_mlp_case() -> Case:
    rng = np.random.default_rng(2)
    gate_w = int_weights(rng, (LLAMA_D, LLAMA_FF), LLAMA_W)
    up_w = int_weights(rng, (LLAMA_D, LLAMA_FF), LLAMA_W)
    down_w = int_weights(rng, (LLAMA_FF, LLAMA_D), LLAMA_W)

    def split(x: F32, device_of: Ints, predicted: Mask | None) -> Split:
        return split_mlp_relu_llama(
            x, gate_w, up_w, down_w, device_of, DEVICES, predicted
        )

    def restricted(keep: Mask) -> onnx.ModelProto:
        k = keep.astype(np.float32)
        return mlp_relu_llama_model(gate_w * k, up_w * k, down_w * k[:, None])

    def active(x: F32) -> Mask:
        return f64(x) @ f64(gate_w) > 0

    return Case(
        mlp_relu_llama_model(gate_w, up_w, down_w),
        split,
        restricted,
        active,
        LLAMA_FF,
        3 * LLAMA_D,
        LLAMA_D,
        LLAMA_X,
    )


def qkv_case(d: int, q: int, kv: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    wq = int_weights(rng, (d, q), QKV_W)
    wk = int_weights(rng, (d, kv), QKV_W)
    wv = int_weights(rng, (d, kv), QKV_W)

    def split(x: F32, device_of: Ints, predicted: Mask | None) -> Split:
        return split_qkv_relu(x, wq, wk, wv, device_of, DEVICES, predicted)

    def restricted(keep: Mask) -> onnx.ModelProto:
        k = keep.astype(np.float32)[:, None]
        return qkv_relu_model(wq * k, wk * k, wv * k)

    def active(x: F32) -> Mask:
        return x > 0

    return Case(
        qkv_relu_model(wq, wk, wv),
        split,
        restricted,
        active,
        d,
        q + 2 * kv,
        d,
        QKV_X,
    )


BUILDERS: dict[str, Callable[[], Case]] = {
    "opt-mlp": opt_mlp_case,
    "llama-relu-mlp": llama_mlp_case,
    "opt-qkv-relu": lambda: qkv_case(OPT_D, OPT_D, OPT_D, 3),
    "llama-qkv-relu-gqa": lambda: qkv_case(LLAMA_D, LLAMA_Q, LLAMA_KV, 4),
}


@cache
def case(name: str) -> Case:
    return BUILDERS[name]()


@cache
def tokens(name: str, count: int, seed: int) -> F32:
    c = case(name)
    return int_weights(np.random.default_rng(seed), (count, c.width), c.x_bound)


@cache
def dense(name: str) -> tuple[F32, ...]:
    return tuple(run(case(name).model, tokens(name, TOKENS, 10)))


def placement(kind: str, name: str) -> Ints:
    n = case(name).neurons
    if kind == "all-gpu":
        return np.full(n, GPU, dtype=np.int64)
    if kind == "all-dimm":
        return 1 + np.arange(n, dtype=np.int64) % DIMMS
    if kind == "random":
        return np.random.default_rng(7).integers(0, DEVICES, n, dtype=np.int64)
    assert kind == "hot-first"
    calibration = tokens(name, CALIBRATION_TOKENS, 11)
    frequency = case(name).active(calibration).mean(axis=0)
    return hot_first_placement(frequency, HOT_SHARE, DIMMS)


def assert_reads(split: Split, c: Case, x: F32, device_of: Ints) -> None:
    """Device ``j`` read the weights of exactly its neurons active at some
    token, and nothing else."""
    active = c.active(x)
    assert np.array_equal(split.active, active)
    read = np.count_nonzero(active, axis=0) > 0
    assert split.weights_per_neuron == c.weights_per_neuron
    for device in range(DEVICES):
        own = int(np.count_nonzero(read & (device_of == device)))
        assert split.reads[device] == own * c.weights_per_neuron
    assert split.reads.sum() == np.count_nonzero(read) * c.weights_per_neuron


@pytest.mark.parametrize("kind", PLACEMENTS)
@pytest.mark.parametrize("name", list(BUILDERS))
def test_split_equals_onnxruntime(name: str, kind: str) -> None:
    c = case(name)
    x = tokens(name, TOKENS, 10)
    device_of = placement(kind, name)
    split = c.split(x, device_of, None)
    assert len(split.outputs) == len(dense(name))
    for got, want in zip(split.outputs, dense(name), strict=True):
        assert got.dtype == np.float32
        assert np.array_equal(got, want)
    assert_reads(split, c, x, device_of)
    # The sparsity is real: some neurons are skipped, some computed.
    assert 0 < split.reads.sum() < c.neurons * c.weights_per_neuron


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_partial_is_its_neurons_dense_product(name: str) -> None:
    c = case(name)
    x = tokens(name, TOKENS, 10)
    device_of = placement("random", name)
    split = c.split(x, device_of, None)
    assert len(split.partials) == DEVICES
    for device, partial in enumerate(split.partials):
        want = run(c.restricted(device_of == device), x)
        for got, expected in zip(partial, want, strict=True):
            assert np.array_equal(got, expected)


def test_hot_first_placement_measures_and_deals() -> None:
    name = "opt-mlp"
    device_of = placement("hot-first", name)
    frequency = case(name).active(tokens(name, CALIBRATION_TOKENS, 11)).mean(axis=0)
    hot = device_of == GPU
    assert np.count_nonzero(hot) == round(HOT_SHARE * OPT_FF)
    assert frequency[hot].min() >= frequency[~hot].max()
    # The hot fifth carries more than a fifth of the activations.
    assert frequency[hot].sum() > HOT_SHARE * frequency.sum()
    counts = np.bincount(device_of[~hot], minlength=DEVICES)[1:]
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1
    assert set(device_of.tolist()) == set(range(DEVICES))


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(list(BUILDERS)),
    seed=st.integers(0, 2**32 - 1),
    dimms=st.integers(1, DIMMS),
)
def test_any_placement_is_exact(name: str, seed: int, dimms: int) -> None:
    c = case(name)
    x = tokens(name, TOKENS, 10)
    device_of = np.random.default_rng(seed).integers(
        0, 1 + dimms, c.neurons, dtype=np.int64
    )
    split = c.split(x, device_of, None)
    for got, want in zip(split.outputs, dense(name), strict=True):
        assert np.array_equal(got, want)
    assert_reads(split, c, x, device_of)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_predictor_false_positives_cost_reads_misses_cost_exactness(
    name: str,
) -> None:
    c = case(name)
    x = tokens(name, TOKENS, 10)
    device_of = placement("random", name)
    everything = c.split(x, device_of, np.ones(c.neurons, dtype=np.bool_))
    for got, want in zip(everything.outputs, dense(name), strict=True):
        assert np.array_equal(got, want)
    per_device = np.bincount(device_of, minlength=DEVICES)
    assert np.array_equal(everything.reads, per_device * c.weights_per_neuron)

    # Miss one active neuron that contributes: the output is no longer exact.
    read = np.count_nonzero(c.active(x), axis=0) > 0
    missed = next(
        int(i)
        for i in np.flatnonzero(read)
        if any(
            np.any(out != 0) for out in run(c.restricted(np.arange(c.neurons) == i), x)
        )
    )
    predicted = read.copy()
    predicted[missed] = False
    short = c.split(x, device_of, predicted)
    assert not all(
        np.array_equal(got, want)
        for got, want in zip(short.outputs, dense(name), strict=True)
    )
    lost = np.zeros(DEVICES, dtype=np.int64)
    lost[device_of[missed]] = c.weights_per_neuron
    assert np.array_equal(short.reads, c.split(x, device_of, None).reads - lost)


def decoder_layer(rng: np.random.Generator) -> DecoderLayer:
    def w(rows: int, cols: int) -> F32:
        return int_weights(rng, (rows, cols), 1)

    return DecoderLayer(
        w(LLAMA_D, LLAMA_Q),
        w(LLAMA_D, LLAMA_KV),
        w(LLAMA_D, LLAMA_KV),
        w(LLAMA_Q, LLAMA_D),
        w(LLAMA_D, LLAMA_FF),
        w(LLAMA_D, LLAMA_FF),
        w(LLAMA_FF, LLAMA_D),
        HEAD_DIM,
    )


def assert_exact_premise(x: F32, layer: DecoderLayer) -> None:
    """Every sum the layer forms, in any order, stays below ``2**24``: the sum
    of its terms' magnitudes does (computed exactly in float64)."""

    def bounded(a: F64, w: NDArray[Any]) -> F64:
        assert (np.abs(a) @ np.abs(f64(w))).max() < EXACT
        return a @ f64(w)

    h = np.maximum(f64(x), 0)
    for w in (layer.wq, layer.wk):
        bounded(h, w)
    attn = f64(attend_first_token(bounded(h, layer.wv), layer))
    x1 = f64(x) + bounded(attn, layer.wo)
    hidden = np.maximum(bounded(x1, layer.gate_w), 0) * bounded(x1, layer.up_w)
    assert np.abs(hidden).max() < EXACT
    y = x1 + bounded(hidden, layer.down_w)
    assert np.abs(y).max() < EXACT


def test_decoder_layer_chains_both_splits_exactly() -> None:
    rng = np.random.default_rng(5)
    layer = decoder_layer(rng)
    x = int_weights(rng, (TOKENS, LLAMA_D), 2)
    assert_exact_premise(x, layer)
    y, q, k, v = run(decoder_layer_model(layer), x)
    qkv_of = rng.integers(0, DEVICES, LLAMA_D, dtype=np.int64)
    mlp_of = rng.integers(0, DEVICES, LLAMA_FF, dtype=np.int64)
    got, qkv, mlp = split_decoder_layer(x, layer, qkv_of, mlp_of, DEVICES)
    assert np.array_equal(got, y)
    for part, want in zip(qkv.outputs, (q, k, v), strict=True):
        assert np.array_equal(part, want)
    assert qkv.reads.sum() == np.count_nonzero((x > 0).any(axis=0)) * (
        LLAMA_Q + 2 * LLAMA_KV
    )
    assert mlp.reads.sum() == np.count_nonzero(mlp.active.any(axis=0)) * 3 * LLAMA_D


def test_first_token_attention_shares_kv_heads() -> None:
    layer = decoder_layer(np.random.default_rng(6))
    v = np.arange(2 * LLAMA_KV, dtype=np.float32).reshape(2, LLAMA_KV)
    attn = attend_first_token(v, layer)
    heads = LLAMA_Q // HEAD_DIM
    kv_heads = LLAMA_KV // HEAD_DIM
    for head in range(heads):
        kv = head // (heads // kv_heads)
        got = attn[:, head * HEAD_DIM : (head + 1) * HEAD_DIM]
        assert np.array_equal(got, v[:, kv * HEAD_DIM : (kv + 1) * HEAD_DIM])


def test_models_are_checked_at_the_opset() -> None:
    for name in BUILDERS:
        model = case(name).model
        onnx.checker.check_model(model, full_check=True)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert onnx.defs.onnx_opset_version() >= OPSET


def test_exactness_bounds() -> None:
    opt_fc1 = OPT_D * OPT_X * OPT_W + OPT_W
    assert OPT_FF * opt_fc1 * OPT_W < EXACT
    llama_gate = LLAMA_D * LLAMA_X * LLAMA_W
    assert LLAMA_FF * llama_gate**2 * LLAMA_W < EXACT
    assert max(OPT_D, LLAMA_D) * QKV_X * QKV_W < EXACT


@pytest.mark.parametrize(
    ("device_of", "devices", "predicted", "message"),
    [
        (np.zeros(OPT_FF - 1, dtype=np.int64), DEVICES, None, "shape"),
        (np.full(OPT_FF, DEVICES, dtype=np.int64), DEVICES, None, "outside"),
        (np.full(OPT_FF, -1, dtype=np.int64), DEVICES, None, "outside"),
        (np.zeros(OPT_FF, dtype=np.float32), DEVICES, None, "int array"),
        (np.zeros(OPT_FF, dtype=np.int64), 0, None, "at least 1"),
        (np.zeros(OPT_FF, dtype=np.int64), DEVICES, np.ones(3, np.bool_), "pred"),
    ],
)
def test_bad_placements_are_refused(
    device_of: NDArray[Any], devices: int, predicted: Mask | None, message: str
) -> None:
    rng = np.random.default_rng(8)
    x = int_weights(rng, (TOKENS, OPT_D), 1)
    fc1_w = int_weights(rng, (OPT_D, OPT_FF), 1)
    fc2_w = int_weights(rng, (OPT_FF, OPT_D), 1)
    fc1_b = np.zeros(OPT_FF, dtype=np.float32)
    fc2_b = np.zeros(OPT_D, dtype=np.float32)
    with pytest.raises(CimError, match=message):
        split_mlp_opt(x, fc1_w, fc1_b, fc2_w, fc2_b, device_of, devices, predicted)


def test_mismatched_shapes_are_refused() -> None:
    rng = np.random.default_rng(9)
    wq = int_weights(rng, (LLAMA_D, LLAMA_Q), 1)
    wk = int_weights(rng, (LLAMA_D + 1, LLAMA_KV), 1)
    x = int_weights(rng, (TOKENS, LLAMA_D), 1)
    device_of = np.zeros(LLAMA_D, dtype=np.int64)
    with pytest.raises(CimError, match="wk"):
        split_qkv_relu(x, wq, wk, wk, device_of, DEVICES)
    with pytest.raises(CimError, match="hot_share"):
        hot_first_placement(np.ones(4), 1.5, DIMMS)
