"""Tensors made in bands held in rings of their bands.

A 3 x 3 convolution's output, 16 rows of 128 bytes, read a row or two
behind by the next 3 x 3 convolution of a segment pipelined in 16 one-row
bands, does not fit a 1.5 KiB global buffer whole; it lives in a ring of
four one-row slots there (512 bytes) instead of going to DRAM and back. The
schedule never holds more of its rows than the ring has room for (checked
from what each op writes and reads, against the simulated times), stays
within every capacity, and computes the model exactly."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from functional_models import save_model
from onnx import TensorProto, helper, numpy_helper
from test_buffer_spills import tiny_with, within_capacities
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block, Operation

from cimflow.analysis.allocation import batch_size, pipeline_plans, segment_of
from cimflow.analysis.dual_mode_model import Segment, build_program
from cimflow.analysis.rings import SLACK_BANDS, ring_depth
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cimsim.engine import SimResult
from cimflow.cimsim.trace import MvmOp, Trace, VectorOp
from cimflow.hw_targets import load_target
from cimflow.lowering.builder import ScheduleBuilder
from cimflow.lowering.placement import Location, Ring, TensorState
from cimflow.lowering.state import order_by_dependences
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

ROW_BYTES = 16 * 8
"""One row of the middle tensor: 16 pixels of 8 one-byte channels."""

PIPELINE = (
    "convert-graph-to-tile,cim-pimcomp-allocate{dataflow=latency blocks=16},"
    "convert-tile-to-meta"
)
"""PIMCOMP's latency dataflow in one-row bands."""


def chain_weights(rng: np.random.Generator) -> list[TensorProto]:
    """The two 3 x 3 convolutions' weights of a chain, ``w1`` [8, 4, 3, 3]
    and ``w2`` [8, 8, 3, 3], drawn from ``rng``."""
    first = (rng.standard_normal((8, 4, 3, 3)) / 5).astype(np.float32)
    second = (rng.standard_normal((8, 8, 3, 3)) / 5).astype(np.float32)
    return [numpy_helper.from_array(first, "w1"), numpy_helper.from_array(second, "w2")]


def conv_chain(
    directory: Path, second_output: bool = False, activation: str = "Relu"
) -> Path:
    """x [1, 4, 16, 16] -> Conv 3x3 -> act -> Conv 3x3 -> act (8 channels),
    ``act`` a Relu or a Clip to [0, 6] (ReLU6, with biased convolutions,
    whose accumulations apply it as the outputs leave); with
    ``second_output`` the first activation's result is a model output too."""
    rng = np.random.default_rng(0)
    initializers = chain_weights(rng)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])]
    if second_output:
        outputs.append(
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 8, 16, 16])
        )
    convs = (["x", "w1"], ["r", "w2"])
    acts: tuple[list[str], list[str]] = (["a"], ["b"])
    if activation == "Clip":
        bias = (rng.standard_normal(8) / 5).astype(np.float32)
        initializers += [
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array(0.0, np.float32), "low"),
            numpy_helper.from_array(np.array(6.0, np.float32), "high"),
        ]
        convs = (["x", "w1", "bias"], ["r", "w2", "bias"])
        acts = (["a", "low", "high"], ["b", "low", "high"])
    graph = helper.make_graph(
        [
            helper.make_node("Conv", convs[0], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node(activation, acts[0], ["r"]),
            helper.make_node("Conv", convs[1], ["b"], pads=[1, 1, 1, 1]),
            helper.make_node(activation, acts[1], ["y"]),
        ],
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        outputs,
        initializers,
    )
    return save_model(graph, directory / f"chain{int(second_output)}{activation}.onnx")


def pooled_chain(directory: Path) -> Path:
    """x [1, 4, 16, 16] -> Conv 3x3 -> MaxPool 3x3 (stride 1, padded) ->
    Conv 3x3 -> Relu (8 channels)."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node(
                "MaxPool", ["a"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Conv", ["p", "w2"], ["b"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["b"], ["y"]),
        ],
        "pooled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        chain_weights(np.random.default_rng(1)),
    )
    return save_model(graph, directory / "pooled.onnx")


def compiled(directory: Path, model: Path, global_bytes: int) -> Trace:
    target = tiny_with(
        directory, f"gb{global_bytes}", buffers={"global_bytes": global_bytes}
    )
    module = compile_model(model, target, PIPELINE)
    return module_trace(module, str(model))


def ring_bytes(trace: Trace, tensor: str) -> int:
    """Bytes the trace allocates for ``tensor`` in the global buffer."""
    return sum(
        alloc.nbytes
        for op in trace.ops
        for alloc in op.allocs
        if alloc.tensor == tensor and alloc.level == "buffer"
    )


def most_rows_held(trace: Trace, result: SimResult, tensor: str = "t.1") -> int:
    """The most rows of ``tensor`` (the first convolution's output, or what
    the second reads) held at once: a row is held from the start of the
    first op writing it (an MVM, an accumulation or another vector op, by
    the vectors it covers, 16 a row, or by the rows of its block on the
    height axis) to the end of the last MVM of ``w2`` whose 3 x 3 window
    reads it."""
    first_write: dict[int, int] = {}
    last_read: dict[int, int] = {}
    for op in trace.ops:
        written = range(0)
        if isinstance(op, MvmOp) and op.output == tensor:
            written = range(op.v[0] // 16, math.ceil(op.v[1] / 16))
        elif isinstance(op, VectorOp) and op.outputs == (tensor,) and op.block:
            axis, first, end = op.block
            per_row = 16 if axis == 0 else 1
            written = range(first // per_row, math.ceil(end / per_row))
        for row in written:
            start = result.start[op.id]
            first_write[row] = min(first_write.get(row, start), start)
        if isinstance(op, MvmOp) and op.weight == "w2":
            rows = range(
                max(0, op.v[0] // 16 - 1), min(16, math.ceil(op.v[1] / 16) + 1)
            )
            for row in rows:
                last_read[row] = max(last_read.get(row, 0), result.finish[op.id])
    assert set(first_write) == set(last_read) == set(range(16))
    events = sorted(
        [(first_write[r], 1) for r in range(16)]
        + [(last_read[r], -1) for r in range(16)]
    )
    held = most = 0
    for _, change in events:
        held += change
        most = max(most, held)
    return most


@pytest.mark.parametrize("activation", ["Relu", "Clip"])
def test_a_tensor_read_a_few_rows_behind_lives_in_a_ring(
    tmp_path: Path, activation: str
) -> None:
    model = conv_chain(tmp_path, activation=activation)
    trace = compiled(tmp_path, model, 1536)
    assert ring_bytes(trace, "t.1") == 4 * ROW_BYTES
    assert all(
        op.out_to == "buffer" for op in trace.ops if isinstance(op, MvmOp)
    )  # nothing of it goes to DRAM
    result = within_capacities(trace)
    assert most_rows_held(trace, result) <= 4
    assert verify_trace(trace, model, "exact").passed


def test_a_vector_operators_result_lives_in_a_ring_too(tmp_path: Path) -> None:
    """A max pool's output made in bands and read a row or two behind by
    the next 3 x 3 convolution: in a 3 KiB buffer that holds the first
    convolution's output whole but not the pool's as well, the pool's
    output lives in a ring of four one-row slots instead of going to DRAM
    and back (as it did while only MVM outputs took rings)."""
    model = pooled_chain(tmp_path)
    trace = compiled(tmp_path, model, 3072)
    assert ring_bytes(trace, "t.1") == 16 * ROW_BYTES
    assert ring_bytes(trace, "t.3") == 4 * ROW_BYTES
    pools = [op for op in trace.ops if isinstance(op, VectorOp) and op.op == "pool"]
    assert len(pools) == 16
    assert all(op.out_to == "buffer" for op in pools)
    result = within_capacities(trace)
    assert most_rows_held(trace, result, "t.3") <= 4
    assert verify_trace(trace, model, "exact").passed


def test_a_tensor_that_fits_whole_takes_no_ring(tmp_path: Path) -> None:
    model = conv_chain(tmp_path)
    trace = compiled(tmp_path, model, 65536)
    assert ring_bytes(trace, "t.1") == 16 * ROW_BYTES
    assert verify_trace(trace, model, "exact").passed


def test_a_model_output_takes_no_ring(tmp_path: Path) -> None:
    """A tensor the model returns is stored whole: it goes to DRAM as its
    bands are made, as before rings."""
    model = conv_chain(tmp_path, second_output=True)
    trace = compiled(tmp_path, model, 1536)
    assert ring_bytes(trace, "t.1") in (0, 16 * ROW_BYTES)
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed


def allocated_chain(
    tmp_path: Path, second_output: bool = False, activation: str = "Relu"
) -> func.FuncOp:
    model = conv_chain(tmp_path, second_output, activation)
    target = tiny_with(tmp_path, "roomy", buffers={"global_bytes": 65536})
    module: ModuleOp = compile_model(
        model,
        target,
        "convert-graph-to-tile,cim-pimcomp-allocate{dataflow=latency}",
    )
    (function,) = [op for op in module.ops if isinstance(op, func.FuncOp)]
    return function


@pytest.mark.parametrize(
    ("second_output", "activation"),
    [(False, "Relu"), (True, "Relu"), (False, "Clip")],
)
def test_ring_depth_of_a_window_chain(
    tmp_path: Path, second_output: bool, activation: str
) -> None:
    """A 3 x 3 window over 2-row bands reads the band before and after its
    own: the reader of band ``k`` waits for band ``k + 1`` of the
    producer, whose writers would wait for the reads of band ``k + 1 -
    depth``; so ``depth`` is at least 3 (lead 2 plus one), plus the slack.
    The window reads the producer's bytes through the activation as well
    when it is a clip, which the producer's accumulations apply as the
    values leave (taken for a separate tensor, the depth was 2: the
    window's reads of band ``k`` waited for the band the ring put in its
    slot, a cycle the lowering resolved by holding back every byte the
    segment released)."""
    function = allocated_chain(tmp_path, second_output, activation)
    plans = pipeline_plans(
        function, lambda _segment: Dataflow.ROWS, batch_size(function)
    )
    ops = list(function.body.block.ops)
    first = next(
        i
        for i, op in enumerate(ops)
        if isinstance(op, cim_tile.MVMOp) and op.weight.data == "w1"
    )
    depth = ring_depth(ops, first, ops[first].results[0], plans, 8, segment_of)
    assert depth == (None if second_output else 2 + 1 + SLACK_BANDS)


@pytest.mark.parametrize("global_bytes", [768, 1536])
def test_the_model_rings_what_the_lowering_rings(
    tmp_path: Path, global_bytes: int
) -> None:
    """The first convolution's output (2 KiB) in one-row bands: a ring of
    four rows (512 bytes) fits half of a 1.5 KiB buffer, not half of a
    768-byte one, where its bands go to DRAM and back. The dual-mode model
    prices the segment by the same rule: a tensor it holds in a ring is
    free, one it does not is spilled."""
    function = allocated_chain(tmp_path)
    path = tiny_with(
        tmp_path, f"gb{global_bytes}", buffers={"global_bytes": global_bytes}
    )
    program = build_program(function, load_target(path))
    (conv,) = [
        info
        for info in program.ops
        if isinstance(info.op, cim_tile.Col2ImOp) and info.index < len(program.ops) // 2
    ]
    (made,) = conv.outputs
    segment = Segment(program, 0, len(program.ops))
    model_rings = made in segment.banded_tensors(Dataflow.ROWS, 16)
    trace = compiled(tmp_path, conv_chain(tmp_path), global_bytes)
    lowering_rings = ring_bytes(trace, "t.1") == 4 * ROW_BYTES
    assert model_rings == lowering_rings == (global_bytes == 1536)
    assert program.tensors[made].spilled


def labels(ops: Iterable[Operation]) -> list[str]:
    return [
        op.label.data
        for op in ops
        if isinstance(op, cim_meta.SegmentOp) and op.label is not None
    ]


def test_order_by_dependences_moves_ops_behind_what_they_wait_for() -> None:
    block = Block()
    first = cim_meta.SegmentOp(0, [], label="first")
    gate = cim_meta.SegmentOp(0, [first.results[0]], label="gate")
    writer = cim_meta.SegmentOp(0, [gate.results[0]], label="writer")
    reader = cim_meta.SegmentOp(0, [first.results[0]], label="reader")
    block.add_ops([first, gate, writer, reader])
    assert order_by_dependences(block) == []
    assert labels(block.ops) == ["first", "gate", "writer", "reader"]
    # the gate now waits for the reader, emitted after it
    gate.operands = [first.results[0], reader.results[0]]
    assert order_by_dependences(block) == []
    assert labels(block.ops) == ["first", "reader", "gate", "writer"]
    # and a reader that waits for the writer closes a cycle
    reader.operands = [writer.results[0]]
    (cycle,) = order_by_dependences(block)
    assert set(labels(cycle)) == {"gate", "writer", "reader"}
    assert labels(block.ops) == ["first", "reader", "gate", "writer"]


@pytest.mark.parametrize("addressed", [True, False])
def test_a_read_through_a_transpose_made_a_view_reads_the_rings_bands(
    addressed: bool,
) -> None:
    """The transposes an activation matmul on arrays makes of its operands
    are views (the MVM's address generators do them): an op that reads
    one reads the bands of the ringed tensor it views, as through a
    reshape or an im2col, so the ring waits for it before writing those
    slots again. A transpose the vector units compute is a tensor of its
    own, read instead of the ring."""
    builder = ScheduleBuilder(load_target("tiny"))
    matrix = Block(arg_types=[TensorType(f32, [4, 2])]).args[0]
    bands = [
        builder.emit(cim_meta.SegmentOp(0, [], label=f"band {i}")) for i in range(2)
    ]
    builder.names[matrix] = "q"
    builder.tensors["q"] = TensorState(
        "q", 32, Location.BUFFER, ready=[((0, 2), bands[0]), ((2, 4), bands[1])]
    )
    ring = Ring(depth=2, count=2, band_bytes=16)
    ring.band_of.update({token: index for index, token in enumerate(bands)})
    builder.rings["q"] = ring
    transpose = cim_graph.TransposeOp(matrix, (1, 0), TensorType(f32, [2, 4]))
    builder.lower_vector_like(
        transpose, "transpose", 8, {}, [matrix], [transpose.output], addressed=addressed
    )
    made = cast(cim_meta.VectorOp, builder.block.last_op)
    reader = builder.emit(
        cim_meta.VectorOp("softmax", 8, ["t"], ["s"], [made.results[0]], 0)
    )
    assert (made.element_ops.value.data == 0) == addressed
    assert builder.bands_read(ring, reader) == (
        frozenset({0, 1}) if addressed else frozenset()
    )


def test_every_cycle_of_waits_is_found_at_once() -> None:
    """Two segments whose rings each close a cycle, and an op behind the
    first that waits in none: both cycles come back from one ordering (the
    lowering then lowers again once, not once per segment)."""
    block = Block()
    cycles: list[set[str]] = []
    reader = None
    for segment in (0, 1):
        first = cim_meta.SegmentOp(segment, [], label=f"first {segment}")
        gate = cim_meta.SegmentOp(segment, [first.results[0]], label=f"gate {segment}")
        writer = cim_meta.SegmentOp(
            segment, [gate.results[0]], label=f"writer {segment}"
        )
        reader = cim_meta.SegmentOp(
            segment, [writer.results[0]], label=f"reader {segment}"
        )
        gate.operands = [first.results[0], reader.results[0]]
        block.add_ops([first, gate, writer, reader])
        cycles.append({f"gate {segment}", f"writer {segment}", f"reader {segment}"})
    assert reader is not None
    behind = cim_meta.SegmentOp(2, [reader.results[0]], label="behind")
    block.add_op(behind)
    assert [set(labels(cycle)) for cycle in order_by_dependences(block)] == cycles
