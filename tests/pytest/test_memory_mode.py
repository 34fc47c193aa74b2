"""Memory-mode arrays in the lowering: mode switches, weight prefetch for the
next segment, activations spilled into arrays instead of DRAM, and eviction
when a segment takes those arrays back."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.ir import Block

from cimflow.cimdialect import cim_tile
from cimflow.cimsim.trace import LoadOp, StoreOp, SwitchOp, Trace
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target, target_to_toml
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.tools.cim_verify import module_trace, verify_trace

Buffer = tuple[int, cim_tile.BufferRole, int, int]
"""(segment, role, arrays, bytes)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Four 24x24 layers on the tiny target (two segments of 6 arrays, two
    arrays free each) whose memory arrays hold 4 KiB each."""
    directory = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights: list[TensorProto] = []
    x = "x"
    for i in range(4):
        values = (rng.standard_normal((24, 24)) / 5).astype(np.float32)
        weights.append(numpy_helper.from_array(values, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [150, 24])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [150, 24])],
        weights,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    path = directory / "mlp.onnx"
    onnx.save(model, path)
    tiny = load_target("tiny")
    target = dataclasses.replace(
        tiny, dual_mode=dataclasses.replace(tiny.dual_mode, memory_capacity_bytes=4096)
    )
    target_path = directory / "tinymem.toml"
    target_path.write_text(target_to_toml(target), encoding="utf-8")
    return path, str(target_path)


def allocated(path: Path, target: str) -> tuple[Context, ModuleOp, Block]:
    """The model tiled and statically allocated: a context, the module and
    its function body, ready for memory buffers."""
    module = import_onnx(path)
    ctx = Context()
    ConvertGraphToTilePass(target).apply(ctx, module)
    StaticAllocatePass(target).apply(ctx, module)
    function = next(op for op in module.ops if isinstance(op, func.FuncOp))
    return ctx, module, function.body.block


def compile_with_buffers(
    path: Path, target: str, buffers: Sequence[Buffer]
) -> ModuleOp:
    ctx, module, block = allocated(path, target)
    for segment, role, arrays, size in buffers:
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(role, arrays, size, segment), block.first_op
        )
    ConvertTileToMetaPass(target).apply(ctx, module)
    module.verify()
    return module


def trace_of(setup: tuple[Path, str], buffers: Sequence[Buffer]) -> Trace:
    path, target = setup
    return module_trace(compile_with_buffers(path, target, buffers), str(path))


WEIGHTS = cim_tile.BufferRole.WEIGHTS
ACTIVATIONS = cim_tile.BufferRole.ACTIVATIONS


def test_next_segment_weights_are_prefetched_into_memory_arrays(
    setup: tuple[Path, str],
) -> None:
    trace = trace_of(setup, [(0, WEIGHTS, 1, 4096)])
    switches = [op for op in trace.ops if isinstance(op, SwitchOp)]
    assert [(s.to, s.arrays) for s in switches] == [("memory", ((6, 7),))]
    prefetches = [
        op for op in trace.ops if isinstance(op, LoadOp) and op.dst == "memory"
    ]
    readouts = [op for op in trace.ops if isinstance(op, LoadOp) and op.src == "memory"]
    assert [op.tensor for op in prefetches] == ["w2", "w3"]
    assert all(op.segment == 0 for op in prefetches)
    assert [op.tensor for op in readouts] == ["w2", "w3"]
    assert all(op.segment == 1 for op in readouts)
    assert verify_trace(trace, setup[0], "exact").passed


def test_large_activations_spill_into_memory_arrays(setup: tuple[Path, str]) -> None:
    trace = trace_of(setup, [(0, ACTIVATIONS, 2, 8192), (1, ACTIVATIONS, 2, 8192)])
    into = [op for op in trace.ops if isinstance(op, StoreOp) and op.dst == "memory"]
    back = [op for op in trace.ops if isinstance(op, LoadOp) and op.src == "memory"]
    assert into and back
    assert {op.tensor for op in back} <= {op.tensor for op in into}
    assert verify_trace(trace, setup[0], "exact").passed


def resegment(block: Block, segments: Sequence[int]) -> None:
    """Give the i-th MVM (and the vector work after it) segment ``segments[i]``."""
    index = -1
    for op in block.ops:
        if isinstance(op, cim_tile.MVMOp):
            index += 1
            assert op.alloc is not None
            op.alloc = cim_tile.AllocAttr.from_ints(
                segments[index], op.alloc.field("copies"), op.alloc.field("chunks")
            )
        elif isinstance(op, cim_tile.VectorOp) and index >= 0:
            op.segment = IntegerAttr(segments[index], i64)


def test_spills_leave_arrays_a_later_segment_takes_back(
    setup: tuple[Path, str],
) -> None:
    """Layer 0 alone in segment 0 spills its product and its relu into its 2
    activation arrays; when segment 1 takes them back, the relu (layer 1's
    input) is evicted to DRAM and the product, which nothing reads again, is
    dropped."""
    path, target = setup
    ctx, module, block = allocated(path, target)
    resegment(block, [0, 1, 1, 2])
    assert block.first_op is not None
    block.insert_op_before(
        cim_tile.MemoryBufferOp(ACTIVATIONS, 2, 8192, 0), block.first_op
    )
    ConvertTileToMetaPass(target).apply(ctx, module)
    trace = module_trace(module, str(path))
    into = [op for op in trace.ops if isinstance(op, StoreOp) and op.dst == "memory"]
    evictions = [
        op
        for op in trace.ops
        if isinstance(op, StoreOp) and op.src == "memory" and op.dst == "dram"
    ]
    # the tile-level names: "t" is layer 0's product, "t.1" its relu
    assert [op.tensor for op in into] == ["t", "t.1"]
    assert [(op.tensor, op.segment) for op in evictions] == [("t.1", 1)]
    assert verify_trace(trace, path, "exact").passed


def test_a_kept_buffer_counts_what_it_still_holds(setup: tuple[Path, str]) -> None:
    """One layer per segment, each with the same 2 activation arrays (8 KiB):
    segment 0 spills t and t.1 (3600 B each); segment 1 keeps the buffer and
    t.1 in it (layer 1 reads it), so only 4592 B are free for its own
    spills: t.2 fits, t.3 goes to DRAM."""
    path, target = setup
    ctx, module, block = allocated(path, target)
    resegment(block, [0, 1, 2, 3])
    for segment in range(4):
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(ACTIVATIONS, 2, 8192, segment), block.first_op
        )
    ConvertTileToMetaPass(target).apply(ctx, module)
    trace = module_trace(module, str(path))
    into = [
        (op.segment, op.tensor)
        for op in trace.ops
        if isinstance(op, StoreOp) and op.dst == "memory"
    ]
    assert into[:3] == [(0, "t"), (0, "t.1"), (1, "t.2")]
    assert (1, "t.3") not in into
    assert verify_trace(trace, path, "exact").passed


def test_prefetch_yields_the_dram_to_its_segment(setup: tuple[Path, str]) -> None:
    """The prefetch of segment 1's weights is emitted after segment 0's own
    work, so at equal readiness the DRAM serves segment 0 first."""
    trace = trace_of(setup, [(0, WEIGHTS, 1, 4096)])
    prefetches = [
        op.id for op in trace.ops if isinstance(op, LoadOp) and op.dst == "memory"
    ]
    own = [
        op.id
        for op in trace.ops
        if op.segment == 0 and not (isinstance(op, LoadOp) and op.dst == "memory")
    ]
    assert prefetches and min(prefetches) > max(own)


def test_kv_cache_buffers_are_refused_clearly(setup: tuple[Path, str]) -> None:
    path, target = setup
    ctx, module, block = allocated(path, target)
    assert block.first_op is not None
    block.insert_op_before(
        cim_tile.MemoryBufferOp(cim_tile.BufferRole.KV_CACHE, 1, 64, 0, ["x"]),
        block.first_op,
    )
    with pytest.raises(CimError, match="KV cache"):
        ConvertTileToMetaPass(target).apply(ctx, module)


def test_buffers_beyond_the_switchable_arrays_are_refused(
    setup: tuple[Path, str],
) -> None:
    path, target = setup
    with pytest.raises(CimError, match="can switch 8 to memory mode"):
        compile_with_buffers(path, target, [(0, WEIGHTS, 3, 4096)])
