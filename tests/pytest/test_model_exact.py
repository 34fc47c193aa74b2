"""The dual-mode cost model prices what the lowering emits: for a segment of
one vector operator, its predicted cycles equal the simulated ones exactly,
on every shipped target; a weight streamed in chunks is priced op by op as
it is lowered."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest
from functional_models import attention, one_linear, padded_conv
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from test_memory_mode import SLOW_DRAM_TINY, allocated, stream_input_model
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr

from cimflow.analysis.allocation import layer_cycles, pack_segments
from cimflow.analysis.dual_mode_model import (
    MvmInfo,
    build_program,
    copies_run_cycles,
    input_arrays_needed,
    staged_input,
    stream_ops,
    stream_terms,
)
from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import op_cost, simulate
from cimflow.cimsim.trace import LoadOp, MoveOp, MvmOp, ProgramOp, VectorOp
from cimflow.hw_targets import load_target, shipped_targets
from cimflow.ir_checks import tensor_function
from cimflow.lowering.rules import held_input_scale, row_indices_of
from cimflow.lowering.state import chunk_stream
from cimflow.passes.cim_allocate import PREDICTED_ATTR
from cimflow.passes.clsa_allocate import ClsaPolicy
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.tools.cim_verify import compile_model, module_trace

SHIPPED = shipped_targets()
OPERATORS: list[tuple[str, int]] = [
    ("Relu", 1),
    ("Sigmoid", 1),
    ("Tanh", 1),
    ("Exp", 1),
    ("Softmax", 1),
    ("Add", 2),
    ("Mul", 2),
    ("Sub", 2),
]
"""ONNX operators and their operand counts (Softmax over the last axis)."""


def one_operator(kind: str, inputs: int, shape: list[int]) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(inputs)]
    node = helper.make_node(kind, names, ["y"], name="op")
    if kind == "Softmax":
        node.attribute.append(helper.make_attribute("axis", -1))
    graph = helper.make_graph(
        [node],
        "one_operator",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exact")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.sampled_from(SHIPPED),
    operator=st.sampled_from(OPERATORS),
    shape=st.lists(st.integers(1, 24), min_size=2, max_size=4),
)
def test_a_vector_operator_segment_is_predicted_exactly(
    directory: Path,
    target: str,
    operator: tuple[str, int],
    shape: list[int],
) -> None:
    """Its operands stream from DRAM while it computes (one stream, one DRAM
    latency), its result stays in the global buffer (it fits half of it,
    where the model and the lowering agree) and is stored at the end."""
    hw = load_target(target)
    elements = 1
    for size in shape:
        elements *= size
    assume(elements * hw.activation_bytes <= hw.buffers.global_bytes // 2)
    kind, inputs = operator
    path = directory / "one.onnx"
    onnx.save(one_operator(kind, inputs, shape), path)
    module = compile_model(path, target, "cim-compile{strategy=cmswitch}")
    predicted = module.attributes[PREDICTED_ATTR]
    assert isinstance(predicted, IntegerAttr)
    assert predicted.value.data == simulate(module_trace(module)).makespan


def test_a_resident_copy_is_priced_with_its_local_buffer_reads(
    directory: Path,
) -> None:
    """A 3 x 3 convolution of 256 channels on dynaplasia: every column of its
    8 row tiles sits in one core, whose local buffer supplies all 2304
    window-expanded inputs of each vector at 32 B/cycle (72 cycles) while
    the arrays take 8 a vector; the model's cycles of its one copy are the
    lowered MVM's, local reads and all, and so are those by which the
    baselines give copies (both priced only the arrays' 8 until
    2026-12-07)."""
    path = directory / "conv.onnx"
    onnx.save(padded_conv(256, 64, 16), path)
    hw = load_target("dynaplasia")
    tiled = "convert-graph-to-tile,cim-static-allocate"
    program = build_program(
        tensor_function(compile_model(path, "dynaplasia", tiled), "t"), hw
    )
    mvm = next(i.mvm for i in program.ops if i.mvm is not None)
    trace = module_trace(
        compile_model(path, "dynaplasia", f"{tiled},convert-tile-to-meta")
    )
    lowered = [op for op in trace.ops if isinstance(op, MvmOp)]
    assert mvm.local_bytes == 2304
    assert mvm.local_bytes * mvm.vectors == sum(op.local_bytes for op in lowered)
    priced = copies_run_cycles(
        hw, mvm.vectors, 1, 1, mvm.rows, mvm.cols, 0, mvm.arrays, mvm.local_bytes
    )
    # in two parts whose partial sums fit the global buffer, one after another
    assert priced == sum(op_cost(hw, op).cycles for op in lowered) == 72 * mvm.vectors
    # the baselines' replication ranks layers by the same cycles
    (segment,) = pack_segments(hw, ClsaPolicy(0), [mvm.op])
    (layer,) = segment.layers
    assert layer.local_bytes == mvm.local_bytes
    assert layer_cycles(hw, layer, 1) == priced


STREAMED_LINEARS = [
    ("tiny", (3, 300, 40), False),
    ("tiny", (3, 300, 40), True),
    ("tiny", (3, 300, 36), True),
    ("tiny", (64, 200, 16), True),
    ("dynaplasia", (64, 4096, 2048), False),
    ("dynaplasia", (128, 768, 3072), False),
    ("dynaplasia", (8, 3072, 768), True),
    ("dynaplasia", (8, 1024, 4096), False),
    ("jain_wordline", (16, 512, 256), True),
    ("isscc21_core", (8, 3072, 768), False),
]
"""Weights larger than the chip, on targets whose buffers hold them in
chunks and parts of every size: whole chunks, parts of several arrays or
one array, outputs in the global buffer or in DRAM (each well inside or
beyond half of the buffer, where the model's placement and the lowering's
agree); with and without a bias (added with the last chunk over its
columns, which reads its own columns' part of the bias the segment loaded
whole: 36 outputs are chunks of 8 and a last one of 4)."""


def priced_and_lowered(
    path: Path,
    target: str,
    tiling: str,
    allocation: str = "cim-static-allocate",
    staging: int = 0,
    alternates: bool = False,
) -> tuple[Counter[tuple[str, int]], Counter[tuple[str, int]], MvmInfo]:
    """The model's schedule of the weight ``w`` of ``path`` streamed through
    every array but ``staging`` ones holding its input in an ``inputs``
    buffer (:func:`~cimflow.analysis.dual_mode_model.stream_ops`; its
    chunks alternating between the halves of them with ``alternates``) and the
    loads, programs, MVMs and additions the lowering emits for it
    (``tiling``, then ``allocation``), by kind and the cycles the
    simulator gives each; and the model's view of its MVM."""
    hw = load_target(target)
    program = build_program(
        tensor_function(compile_model(path, target, tiling), "t"), hw
    )
    mvm = next(i.mvm for i in program.ops if i.mvm is not None)
    ops, _ = stream_ops(
        hw,
        mvm.op.tiling,
        mvm.vectors,
        hw.total_arrays - staging,
        0,
        mvm.window,
        mvm.input_in_dram,
        (mvm.bias_bytes, mvm.residual),
        mvm.output_in_dram,
        input_scale=held_input_scale(mvm.op),
        row_indices=row_indices_of(mvm.op),
        output_scale=mvm.op.output_scale,
        staged=staged_input(hw, mvm, staging),
        alternates=alternates,
    )
    priced = Counter((op.kind, op.cycles) for op in ops)
    module = compile_model(path, target, f"{tiling},{allocation}")
    if alternates:  # the chunk count of the halves says so
        streamed = next(op for op in module.walk() if isinstance(op, cim_tile.MVMOp))
        count = len(chunk_stream(hw, streamed.tiling, 0, hw.total_arrays, True).chunks)
        streamed.alloc = cim_tile.AllocAttr.from_ints(0, 1, count)
    ConvertTileToMetaPass(target).apply(Context(), module)
    trace = module_trace(module)
    compacted = {w.name: w for w in trace.weights if w.rows or w.columns}
    lowered = Counter(
        (op.kind, op_cost(hw, op, compacted.get(op.weight)).cycles)
        for op in trace.ops
        if isinstance(op, ProgramOp | MvmOp) and op.weight == "w"
    )
    lowered += Counter(
        (op.kind, op_cost(hw, op).cycles)
        for op in trace.ops
        if isinstance(op, LoadOp) and (op.tensor == "w" or op.dst == "memory")
    )
    lowered += Counter(
        ("add", op_cost(hw, op).cycles)
        for op in trace.ops
        if isinstance(op, VectorOp) and op.op == "accumulate"
    )
    lowered += Counter(  # the biases the cores keep (MvmLowering.hold_bias)
        ("move", op_cost(hw, op).cycles)
        for op in trace.ops
        if isinstance(op, MoveOp) and op.name.startswith(f"{op.tensor}@")
    )
    return priced, lowered, mvm


@pytest.mark.parametrize(("target", "shape", "bias"), STREAMED_LINEARS)
def test_a_streamed_weight_is_priced_op_by_op_as_it_is_lowered(
    directory: Path, target: str, shape: tuple[int, int, int], bias: bool
) -> None:
    """The model's schedule of a weight that streams through every array
    (:func:`~cimflow.analysis.dual_mode_model.stream_ops`) holds the loads,
    programs, MVMs and partial-sum additions the lowering emits for it, one
    for one, each at the cycles the simulator gives it: every chunk is
    programmed from DRAM in one burst, its MVM streams its input from DRAM
    again, and its cores add its partial sums (and the bias, once)."""
    path = directory / "linear.onnx"
    onnx.save(one_linear(*shape, bias=bias), path)
    priced, lowered, mvm = priced_and_lowered(path, target, "convert-graph-to-tile")
    assert mvm.streamed and mvm.input_in_dram
    assert priced == lowered


@pytest.mark.parametrize(("target", "shape", "bias"), STREAMED_LINEARS[:6])
def test_an_alternating_stream_is_priced_op_by_op_as_it_is_lowered(
    directory: Path, target: str, shape: tuple[int, int, int], bias: bool
) -> None:
    """The same with the chunks alternating between the halves of the
    arrays (``test_alternating_chunks``): twice as many chunks, each
    programmed while the one before computes, priced one for one."""
    path = directory / "linear.onnx"
    onnx.save(one_linear(*shape, bias=bias), path)
    priced, lowered, mvm = priced_and_lowered(
        path, target, "convert-graph-to-tile", alternates=True
    )
    assert mvm.streamed
    whole = len(plan_chunks(mvm.op.tiling, load_target(target).total_arrays))
    programs = sum(count for (kind, _), count in priced.items() if kind == "program")
    assert programs > whole
    assert priced == lowered


@pytest.mark.parametrize("shape", [(16, 400, 8), (3, 600, 4)])
def test_a_streamed_weight_whose_cores_keep_its_bias_is_priced_as_lowered(
    directory: Path, shape: tuple[int, int, int]
) -> None:
    """A weight of one column tile streamed in chunks of row tiles (tiny):
    its last chunk covers every column, so its cores keep the whole bias,
    moved in once (:func:`~cimflow.lowering.state.keeps_bias`), and its
    additions read none; the model prices that move and those additions."""
    path = directory / "kept_bias.onnx"
    onnx.save(one_linear(*shape, bias=True), path)
    priced, lowered, mvm = priced_and_lowered(path, "tiny", "convert-graph-to-tile")
    assert mvm.streamed
    assert sum(count for (kind, _), count in priced.items() if kind == "move") == 1
    assert priced == lowered


def test_a_streamed_weight_fed_from_an_inputs_buffer_is_priced_as_lowered(
    directory: Path,
) -> None:
    """The same when cmswitch keeps the weight's input in an ``inputs``
    buffer of one array (tiny with DRAM at 1 B/cycle, as in
    ``test_memory_mode``): the model prices the input's one load from DRAM
    into the array and each chunk's MVM streaming it from there."""
    path = stream_input_model(directory)
    target = str(SLOW_DRAM_TINY)
    priced, lowered, mvm = priced_and_lowered(
        path, target, "convert-graph-to-tile", "cim-cmswitch", staging=1
    )
    assert mvm.streamed and mvm.input_in_dram
    assert ("load", 276) in priced  # 256 B at 1 B/cycle after 20 of latency
    assert priced == lowered


@pytest.mark.parametrize(
    ("target", "shape"), [("tiny", (3, 300, 32)), ("tiny", (3, 300, 40))]
)
@pytest.mark.parametrize("bias", [False, True])
def test_a_streamed_weight_of_held_columns_is_priced_as_it_is_lowered(
    directory: Path, target: str, shape: tuple[int, int, int], bias: bool
) -> None:
    """The same with every other filter of the weight pruned whole and its
    arrays holding only the other columns (``cim-sparse-rows
    {orientation=column}``): the model prices the held columns' chunks, the
    indices of their outputs streamed with them, and the additions that
    write every output, the dropped ones their bias alone."""
    path = directory / "held_columns.onnx"
    model = one_linear(*shape, bias=bias)
    weight = numpy_helper.to_array(model.graph.initializer[0]).copy()
    weight[:, ::2] = 0.0
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "w"))
    onnx.save(model, path)
    held = "convert-graph-to-tile,cim-sparse-rows{orientation=column}"
    priced, lowered, mvm = priced_and_lowered(path, target, held)
    assert mvm.streamed and mvm.op.columns_from is not None
    assert priced == lowered


@pytest.mark.parametrize(
    ("heads", "rows", "width"), [(4, 64, 32), (2, 32, 64), (8, 16, 40), (1, 96, 48)]
)
def test_activation_matmuls_on_arrays_are_predicted_exactly(
    directory: Path, heads: int, rows: int, width: int
) -> None:
    """On dynaplasia (``dynamic_matmul``) the allocation runs both matmuls of
    an attention on arrays: each chunk of the right operand programmed from
    DRAM, the left operand's rows streamed through; the model's cycles
    equal the simulated ones."""
    path = directory / "attention.onnx"
    onnx.save(attention(heads, rows, width), path)
    module = compile_model(path, "dynaplasia", "cim-compile{strategy=cmswitch}")
    trace = module_trace(module)
    written = [op for op in trace.ops if isinstance(op, ProgramOp)]
    assert {op.weight for op in written if op.source == "tensor"} == {"kt", "v"}
    predicted = module.attributes[PREDICTED_ATTR]
    assert isinstance(predicted, IntegerAttr)
    assert predicted.value.data == simulate(trace).makespan


def staged_run(path: Path, target: str, arrays: int) -> int:
    """Simulated cycles of ``path``'s one weight streamed through the arrays
    an ``inputs`` buffer of ``arrays`` arrays leaves free, its input held
    there."""
    ctx, module, block = allocated(path, target)
    hw = load_target(target)
    mvm = next(op for op in block.ops if isinstance(op, cim_tile.MVMOp))
    chunks = len(plan_chunks(mvm.tiling, hw.total_arrays - arrays))
    mvm.alloc = cim_tile.AllocAttr.from_ints(0, 1, chunks)
    capacity = arrays * hw.dual_mode.memory_capacity_bytes
    assert block.first_op is not None
    block.insert_op_before(
        cim_tile.MemoryBufferOp(cim_tile.BufferRole.INPUTS, arrays, capacity, 0),
        block.first_op,
    )
    ConvertTileToMetaPass(target).apply(ctx, module)
    return simulate(module_trace(module)).makespan


def test_an_inputs_buffer_is_priced_with_the_bus_dram_traffic_crosses(
    directory: Path,
) -> None:
    """On dynaplasia every byte from DRAM crosses the one bus, which the
    input streamed from an ``inputs`` buffer to every chunk and the chunks'
    partial sums on their way to the additions also take: the model's
    stream schedule holds the bus for every DRAM transfer, and gives the
    simulated cycles of a 64 x 4096 x 4096 linear with its input in DRAM
    and held in 21 arrays exactly (the buffer loses: 979 384 cycles, not
    919 241)."""
    path = directory / "wide.onnx"
    onnx.save(one_linear(64, 4096, 4096), path)
    hw = load_target("dynaplasia")
    program = build_program(
        tensor_function(
            compile_model(path, "dynaplasia", "convert-graph-to-tile"), "t"
        ),
        hw,
    )
    mvm = next(i.mvm for i in program.ops if i.mvm is not None)
    arrays = input_arrays_needed(hw, mvm)
    assert arrays == 21
    plain = simulate(
        module_trace(compile_model(path, "dynaplasia", "cim-compile{strategy=static}"))
    ).makespan
    assert stream_terms(hw, mvm, hw.total_arrays)[0] == plain
    staged = staged_run(path, "dynaplasia", arrays)
    assert stream_terms(hw, mvm, hw.total_arrays - arrays, 0, arrays)[0] == staged
    assert staged > plain
