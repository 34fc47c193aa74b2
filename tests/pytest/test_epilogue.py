"""Activations and residual adds applied by the vector ops that finish their
input (an MVM's accumulations, a residual add): the pre-activation tensor
makes no round trip of its own, the fused op's result is a view, and the
trace still computes the model exactly."""

# ruff: noqa: E501

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
from functional_models import cnn, save_model, wide_linear
from ir_builders import parse_module
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import MvmOp, Trace, VectorOp
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
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
    return save_model(graph, directory / f"conv_relu{'_shared' if shared else ''}.onnx")


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


def test_residual_adds_ride_on_the_accumulations(tmp_path: Path) -> None:
    """relu(conv(x) + x) and conv1x1(y) + y in the test CNN: each add rides
    on the accumulations that finish its convolution's outputs (they stream
    the skip in and add it, one lane operation per output, before the relu),
    so no add op is left, and the 1x1 convolution (one row tile, no bias),
    which needed no accumulation, gets one for its residual; the depthwise
    convolution's ReLU6 (Clip 0..6) rides on its accumulations with its
    bounds. Exact on every strategy."""
    path = tmp_path / "cnn.onnx"
    onnx.save(cnn(), path)
    for strategy in ("static", "clsa-cim", "cmswitch"):
        trace = compiled(path, strategy=strategy)
        assert not vector_ops(trace, "add")
        residual = [
            op for op in vector_ops(trace, "accumulate") if "residual" in op.attrs
        ]
        assert {op.attrs["residual"] for op in residual} == {"nchw"}
        by_output: dict[str, list[VectorOp]] = {}
        for op in residual:
            by_output.setdefault(op.outputs[0], []).append(op)
        assert len(by_output) == 2
        shapes = {t.name: t.shape for t in trace.tensors}
        (relu,) = [n for n, ops in by_output.items() if ops[0].attrs.get("then")]
        (plain,) = [n for n in by_output if n != relu]
        assert all(op.attrs.get("then") == "relu" for op in by_output[relu])
        # the 1x1 convolution: its 8 outputs per vector on 36 vectors, only
        # the residual to add; the skip's bytes stream in with it
        assert [len(op.inputs) for op in by_output[plain]] == [2] * len(
            by_output[plain]
        )
        assert sum(op.element_ops for op in by_output[plain]) == math.prod(
            shapes[plain]
        )
        assert sum(op.in_bytes for op in by_output[plain]) >= math.prod(shapes[plain])
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


def conv_residual(directory: Path, shared: bool = False, late: bool = False) -> Path:
    """relu(conv3x3(x) + b + x), 4 channels on 8 x 8; with ``shared`` the
    convolution's output is also a model output (the add may not change
    it); with ``late`` the skip is a second convolution of ``x`` made after
    the first: relu(conv_a(x) + conv_b(x))."""
    rng = np.random.default_rng(1)
    initializers = [
        numpy_helper.from_array(
            (rng.standard_normal((4, 4, 3, 3)) / 5).astype(np.float32), name
        )
        for name in ("w", "w2")
    ]
    initializers.append(
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    )
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    skip = "x"
    if late:
        nodes.append(helper.make_node("Conv", ["x", "w2"], ["y2"], pads=[1, 1, 1, 1]))
        skip = "y2"
    nodes += [
        helper.make_node("Add", ["y", skip], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
    ]
    shape = [1, 4, 8, 8]
    outputs = [helper.make_tensor_value_info("r", TensorProto.FLOAT, shape)]
    if shared:
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, shape))
    graph = helper.make_graph(
        nodes,
        "conv_residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        outputs,
        initializers,
    )
    return save_model(graph, directory / f"conv_residual_{int(shared)}{int(late)}.onnx")


def residual_accumulates(trace: Trace) -> list[VectorOp]:
    return [op for op in vector_ops(trace, "accumulate") if "residual" in op.attrs]


def test_a_residual_saves_the_round_trip_of_the_branch(tmp_path: Path) -> None:
    """The fused add streams only the skip in (its 256 values, once) and
    writes the sum once; unfused (the convolution's
    output is also a model output), the add reads both operands and writes
    its own result: more bytes cross the interconnect, and more vector
    lanes work. Both exact."""
    fused_path = conv_residual(tmp_path)
    shared_path = conv_residual(tmp_path, shared=True)
    fused, shared = compiled(fused_path), compiled(shared_path)
    assert not vector_ops(fused, "add") and residual_accumulates(fused)
    assert vector_ops(shared, "add") and not residual_accumulates(shared)
    skip_bytes = sum(op.in_bytes for op in residual_accumulates(fused)) - sum(
        op.in_bytes for op in vector_ops(shared, "accumulate")
    )
    assert skip_bytes == 4 * 8 * 8  # the skip, once, at 1 byte per value
    fused_stats, shared_stats = simulate(fused).stats, simulate(shared).stats
    assert fused_stats.interconnect_bytes < shared_stats.interconnect_bytes
    assert verify_trace(fused, fused_path).passed
    assert verify_trace(shared, shared_path).passed


def test_the_later_operand_takes_the_residual(tmp_path: Path) -> None:
    """relu(conv_a(x) + conv_b(x)): conv_b's output is made after conv_a's
    accumulations, so conv_a cannot add it; conv_b adds conv_a's output,
    and the relu rides on conv_b's accumulations. Exact on every
    strategy."""
    path = conv_residual(tmp_path, late=True)
    for strategy in ("static", "pimcomp-ll", "cmswitch"):
        trace = compiled(path, strategy=strategy)
        residual = residual_accumulates(trace)
        assert residual and not vector_ops(trace, "add")
        mvms = {op.output: op.weight for op in trace.ops if isinstance(op, MvmOp)}
        assert {mvms[op.outputs[0]] for op in residual} == {"w2"}
        assert all(op.attrs.get("then") == "relu" for op in residual)
        assert verify_trace(trace, path).passed, strategy


def test_a_linear_layer_adds_its_residual_row_by_row(tmp_path: Path) -> None:
    """x + (x @ W + b) on 3 tokens of 40 features (the transformer's
    residual): the accumulations add x in the outputs' own order (``rows``),
    and the model computes exactly; in the quantized mode too."""
    rng = np.random.default_rng(2)
    weight = (rng.standard_normal((40, 40)) / 6).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    shape = [3, 40]
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["y"]),
            helper.make_node("Add", ["x", "y"], ["s"]),
        ],
        "linear_residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    path = save_model(graph, tmp_path / "linear_residual.onnx")
    for strategy in ("static", "cim-mlc", "cmswitch"):
        trace = compiled(path, strategy=strategy)
        residual = residual_accumulates(trace)
        assert residual and {op.attrs["residual"] for op in residual} == {"rows"}
        assert not vector_ops(trace, "add")
        assert verify_trace(trace, path).passed, strategy
        assert verify_trace(trace, path, "quantized").passed, strategy


KV_RESIDUAL = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @kv(%x: tensor<1x32xf32>, %past: tensor<1x40xf32>) -> tensor<1x64xf32> {
    cim_tile.memory_buffer kv_cache arrays 2 bytes 512 segment 0 holds ["past"] mode <memory>
    %h = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 40, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 5, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x40xf32>
    %s = cim_tile.vector segment 0 (%h, %past) : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32> {
    ^bb0(%0: tensor<1x40xf32>, %1: tensor<1x40xf32>):
      %2 = cim_graph.binary add %0, %1 : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32>
      cim_tile.yield %2 : tensor<1x40xf32>
    }
    %y = cim_tile.mvm %s weight "l2.w" layout kn tiling <k = 40, n = 64, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 8, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 3> mode <compute> : tensor<1x40xf32> -> tensor<1x64xf32>
    func.return %y : tensor<1x64xf32>
  }
}
"""


def test_a_residual_streams_from_memory_arrays_beside_partial_sums_in_the_cores(
    tmp_path: Path,
) -> None:
    """h = x @ l1.w finishes in its cores (one row tile) while its residual,
    the KV-cache input held in memory-mode arrays 0-1, streams in from
    those arrays: the accumulation reads from memory, its partial sums stay
    where they are, and the model computes exactly."""
    rng = np.random.default_rng(3)
    weights = [
        numpy_helper.from_array(
            (rng.standard_normal(shape) / 6).astype(np.float32), name
        )
        for name, shape in (("l1.w", (32, 40)), ("l2.w", (40, 64)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input0", "l1.w"], ["h"]),
            helper.make_node("Add", ["h", "input1"], ["s"]),
            helper.make_node("MatMul", ["s", "l2.w"], ["y"]),
        ],
        "kv",
        [
            helper.make_tensor_value_info("input0", TensorProto.FLOAT, [1, 32]),
            helper.make_tensor_value_info("input1", TensorProto.FLOAT, [1, 40]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        weights,
    )
    path = save_model(graph, tmp_path / "kv.onnx")
    context, module = parse_module(KV_RESIDUAL)
    ConvertTileToMetaPass("tiny").apply(context, module)
    trace = module_trace(module, str(path))
    (residual,) = residual_accumulates(trace)
    assert residual.in_from == "memory" and residual.inputs == ("h", "input1")
    assert verify_trace(trace, path).passed
