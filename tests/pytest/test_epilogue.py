"""Activations applied by the vector ops that finish their input (an MVM's
accumulations, a residual add): the pre-activation tensor makes no round
trip of its own, the activation's result is a view, and the trace still
computes the model exactly."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
from functional_models import cnn, wide_linear
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import Trace, VectorOp
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace


def compiled(path: Path, target: str = "tiny", strategy: str = "static") -> Trace:
    module = compile_model(path, target, f"cim-compile{{strategy={strategy}}}")
    return module_trace(module, str(path))


def vector_ops(trace: Trace, kind: str) -> list[VectorOp]:
    return [op for op in trace.ops if isinstance(op, VectorOp) and op.op == kind]


def conv_relu(directory: Path, shared: bool) -> Path:
    """relu(conv3x3(x) + b), 4 -> 8 channels on 16 x 16; with ``shared`` the
    convolution's output is also a second output of the model."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((8, 4, 3, 3)) / 5).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    outputs = [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 8, 16, 16])]
    if shared:
        outputs.append(
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])
        )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["r"]),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        outputs,
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    onnx.checker.check_model(model)
    path = directory / f"conv_relu{'_shared' if shared else ''}.onnx"
    onnx.save(model, path)
    return path


def test_the_relu_rides_on_the_bias_additions(tmp_path: Path) -> None:
    """Every accumulation that finishes the convolution's outputs applies
    the relu: per output, one addition of its two row tiles' sums (36
    weight rows on 32-row arrays), the bias and the relu, 3 x 2048 lane
    operations in all; the relu itself is a free view, and the model
    computes exactly."""
    path = conv_relu(tmp_path, shared=False)
    trace = compiled(path)
    assert not vector_ops(trace, "relu")
    finishing = vector_ops(trace, "accumulate")
    assert finishing and all(op.attrs.get("then") == "relu" for op in finishing)
    assert sum(op.element_ops for op in finishing) == 3 * 8 * 16 * 16
    (view,) = [op for op in vector_ops(trace, "reshape") if op.outputs == ("r",)]
    assert view.element_ops == view.in_bytes == view.out_bytes == 0
    assert verify_trace(trace, path).passed


def test_a_shared_output_keeps_its_own_relu(tmp_path: Path) -> None:
    """The convolution's output is also a model output: the relu may not
    change it, so it stays an op of its own, and fewer bytes move when it
    rides on the accumulations."""
    fused_path = conv_relu(tmp_path, shared=False)
    shared_path = conv_relu(tmp_path, shared=True)
    shared = compiled(shared_path)
    (relu,) = vector_ops(shared, "relu")
    assert relu.element_ops == 8 * 16 * 16
    assert not any(op.attrs.get("then") for op in vector_ops(shared, "accumulate"))
    assert verify_trace(shared, shared_path).passed
    fused = simulate(compiled(fused_path)).stats
    unfused = simulate(shared).stats
    assert fused.interconnect_bytes < unfused.interconnect_bytes


def test_streamed_chunks_apply_the_relu_when_they_finish(tmp_path: Path) -> None:
    """W1 of relu(x @ W1 + b1) @ W2 streams in chunks cut by rows: only the
    last chunk over each column finishes its sums, and only it applies the
    relu; the running sums do not. Exact on every strategy."""
    path = tmp_path / "wide.onnx"
    onnx.save(wide_linear(), path)
    for strategy in ("static", "pimcomp-ll", "cmswitch"):
        trace = compiled(path, strategy=strategy)
        accumulates = vector_ops(trace, "accumulate")
        assert not vector_ops(trace, "relu")
        running = [op for op in accumulates if op.attrs.get("running")]
        assert running and not any(op.attrs.get("then") for op in running)
        finishing = [op for op in accumulates if "b1" in op.inputs]
        assert finishing and all(op.attrs.get("then") == "relu" for op in finishing)
        assert verify_trace(trace, path).passed, strategy


def test_a_residual_add_applies_the_relu_after_it(tmp_path: Path) -> None:
    """relu(conv(x) + x) in the test CNN: the add's steps apply the relu (one
    more lane operation per output), the relu is a view; the depthwise
    convolution's ReLU6 (Clip 0..6) rides on its accumulations with its
    bounds. Exact on every strategy."""
    path = tmp_path / "cnn.onnx"
    onnx.save(cnn(), path)
    for strategy in ("static", "clsa-cim", "cmswitch"):
        trace = compiled(path, strategy=strategy)
        adds = vector_ops(trace, "add")
        assert [op.attrs.get("then") for op in adds].count("relu") >= 1
        fused = [op for op in adds if op.attrs.get("then") == "relu"]
        shapes = {t.name: t.shape for t in trace.tensors}
        for name in {op.outputs[0] for op in fused}:
            work = sum(op.element_ops for op in fused if op.outputs[0] == name)
            assert work == 2 * math.prod(shapes[name])
        assert not vector_ops(trace, "clip")
        clipped = [
            op
            for op in vector_ops(trace, "accumulate")
            if op.attrs.get("then") == "clip"
        ]
        assert clipped
        assert {(op.attrs["then_min"], op.attrs["then_max"]) for op in clipped} == {
            (0.0, 6.0)
        }
        assert verify_trace(trace, path).passed, strategy


def test_an_unknown_activation_is_a_failed_check(tmp_path: Path) -> None:
    path = conv_relu(tmp_path, shared=False)
    trace = compiled(path)
    ops = tuple(
        dataclasses.replace(op, attrs={**op.attrs, "then": "sparkle"})
        if isinstance(op, VectorOp) and op.attrs.get("then")
        else op
        for op in trace.ops
    )
    report = verify_trace(dataclasses.replace(trace, ops=ops), path)
    (check,) = report.modes
    assert (
        check.error is not None
        and "applies unknown activation 'sparkle'" in check.error
    )
