"""Every on-chip storage level, overfilled by the same graph on a smaller
target, passes what does not fit to the next level: the global buffer's
tensors go to DRAM, a core's staged input pieces shrink and then stream
from the global buffer, an activations buffer in memory-mode arrays leaves
its tensors in DRAM, and copies of a weight larger than the global buffer
pass through it part by part, each part read from DRAM once for all
copies. Each run stays within every capacity the simulator
checks and computes the model exactly. (``test_sim_machine`` shows the
simulator refusing hand-made traces that overfill each level.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
from functional_models import matmul_relu_chain, save_model
from onnx import TensorProto, helper, numpy_helper
from test_memory_mode import compile_with_buffers, written_to_memory

from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.semantics import array_ids
from cimflow.cimsim.trace import (
    FreeOp,
    LoadOp,
    MoveOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    Trace,
    VectorOp,
)
from cimflow.hw_targets import HardwareTarget, load_target, target_to_toml
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace


def two_layer_mlp(directory: Path, rows: int) -> Path:
    """x [rows, 24] -> MatMul -> Relu -> MatMul -> Relu."""
    path = directory / f"mlp{rows}.onnx"
    onnx.save(matmul_relu_chain(2, rows), path)
    return path


def padded_conv(directory: Path) -> Path:
    """A 3x3 convolution, 4 -> 8 channels, on a 16 x 16 feature map."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((8, 4, 3, 3)) / 5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [numpy_helper.from_array(weight, "w")],
    )
    return save_model(graph, directory / "conv.onnx")


def tiny_with(directory: Path, name: str, **changes: Any) -> str:
    """The tiny target with ``changes`` to its sections (``buffers=...``,
    ``dual_mode=...``, ``array=...``: dicts of keys), saved as TOML."""
    tiny = load_target("tiny")
    sections = {
        section: dataclasses.replace(getattr(tiny, section), **keys)
        for section, keys in changes.items()
    }
    target: HardwareTarget = dataclasses.replace(tiny, **sections)
    path = directory / f"{name}.toml"
    path.write_text(target_to_toml(target), encoding="utf-8")
    return str(path)


def within_capacities(trace: Trace) -> SimResult:
    """Simulate ``trace`` (the simulator refuses any overfull level) and
    check the peaks it reports against the capacities."""
    result = simulate(trace)
    for peak in result.stats.peak_occupancy:
        assert peak.nbytes <= peak.capacity, peak
    return result


def mvm_outputs_to(trace: Trace) -> set[str]:
    return {op.out_to for op in trace.ops if isinstance(op, MvmOp)}


def test_the_global_buffer_spills_to_dram(tmp_path: Path) -> None:
    """The MLP's 40 x 24 one-byte activations (960 B each) stay in a
    64 KiB global buffer; in a 512-byte one they live in DRAM, and MVMs and
    the Relus stream them there and back."""
    model = two_layer_mlp(tmp_path, 40)
    roomy = tiny_with(tmp_path, "roomy", buffers={"global_bytes": 65536})
    small = tiny_with(tmp_path, "small", buffers={"global_bytes": 512})

    fits = module_trace(compile_model(model, roomy), str(model))
    assert mvm_outputs_to(fits) == {"buffer"}
    assert {op.out_to for op in fits.ops if isinstance(op, VectorOp)} == {"buffer"}
    fits_run = within_capacities(fits)

    spilled = module_trace(compile_model(model, small), str(model))
    assert mvm_outputs_to(spilled) == {"dram"}
    relus = [op for op in spilled.ops if isinstance(op, VectorOp)]
    assert relus and {(op.in_from, op.out_to) for op in relus} == {("dram", "dram")}
    spilled_run = within_capacities(spilled)
    peak = spilled_run.stats.peak_occupancy[0]
    assert peak.level == "buffer" and 0 < peak.nbytes <= 512
    assert spilled_run.stats.dram_bytes_read > fits_run.stats.dram_bytes_read
    for trace in (fits, spilled):
        assert verify_trace(trace, model, "exact").passed


@pytest.mark.parametrize("strategy", ["pimcomp-ht", "cim-mlc"])
def test_copies_of_a_weight_read_it_from_dram_once(
    tmp_path: Path, strategy: str
) -> None:
    """A 24 x 24 weight (576 bytes, 3 arrays) copied twice does not fit a
    512-byte global buffer: each of its column tiles (192 bytes) is loaded
    once and programs both copies from there, so the weight leaves DRAM
    once (576 bytes), not once per copy."""
    model = tmp_path / "mlp.onnx"
    onnx.save(matmul_relu_chain(1, 64), model)
    small = tiny_with(tmp_path, "small", buffers={"global_bytes": 512})
    trace = module_trace(
        compile_model(model, small, f"cim-compile{{strategy={strategy}}}"),
        str(model),
    )
    programs = [op for op in trace.ops if isinstance(op, ProgramOp)]
    assert len(programs) == 6 and {op.feed for op in programs} == {"buffer"}
    loads = [op for op in trace.ops if isinstance(op, LoadOp) and op.tensor == "w0"]
    assert [op.nbytes for op in loads] == [192, 192, 192]
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed


def test_weights_are_programmed_one_layer_ahead(tmp_path: Path) -> None:
    """Six 8 x 8 weights (one array each, 64 bytes) share one segment but
    not a 256-byte global buffer. Each is loaded and programmed when the MVM
    before it is lowered, not all at the segment's start: programmed all at
    once they would cycle through the buffer, and the first layer's outputs,
    placed after them, would wait for the last weights to pass."""
    model = tmp_path / "chain.onnx"
    onnx.save(matmul_relu_chain(6, 16, 8), model)
    small = tiny_with(tmp_path, "small", buffers={"global_bytes": 256})
    trace = module_trace(compile_model(model, small), str(model))
    assert {op.segment for op in trace.ops} == {0}
    position = {
        (type(op).__name__, op.weight): index
        for index, op in reversed(list(enumerate(trace.ops)))
        if isinstance(op, ProgramOp | MvmOp)
    }
    for layer in range(2, 6):
        before = position[("MvmOp", f"w{layer - 2}")]
        assert position[("ProgramOp", f"w{layer}")] > before
    assert position[("ProgramOp", "w1")] < position[("MvmOp", "w0")]
    result = within_capacities(trace)
    first_mvm = min(result.start[op.id] for op in trace.ops if isinstance(op, MvmOp))
    last_program = max(
        result.finish[op.id] for op in trace.ops if isinstance(op, ProgramOp)
    )
    assert first_mvm < last_program
    assert verify_trace(trace, model, "exact").passed


def test_an_output_leaves_the_buffer_when_its_readers_are_done(
    tmp_path: Path,
) -> None:
    """Every layer's activation of a three-layer chain is also a model
    output (as a decoder returns each layer's keys and values). Each is
    stored to DRAM, and its buffer space freed, as soon as the next layer
    has read it, not at the end of the run: kept, they would fill the
    buffer with tensors nothing reads again."""
    graph = matmul_relu_chain(3, 16, 8).graph
    for name in ("r0", "r1"):
        graph.output.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [16, 8])
        )
    model = tmp_path / "outputs.onnx"
    save_model(graph, model)
    trace = module_trace(compile_model(model, "tiny"), str(model))
    position = {
        (type(op).__name__, getattr(op, "tensor", getattr(op, "weight", ""))): index
        for index, op in enumerate(trace.ops)
        if isinstance(op, StoreOp | MvmOp)
    }
    assert position[("StoreOp", "r0")] < position[("MvmOp", "w2")]
    for name in ("r0", "r1"):
        (store,) = [
            op for op in trace.ops if isinstance(op, StoreOp) and op.tensor == name
        ]
        frees = [
            op
            for op in trace.ops
            if isinstance(op, FreeOp) and any(p.tensor == name for p in op.frees)
        ]
        assert frees and all(store.id in op.deps for op in frees)
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed


def staged_pieces(trace: Trace) -> list[MoveOp]:
    """The moves that stage an MVM's input in the cores' local buffers."""
    return [
        op
        for op in trace.ops
        if isinstance(op, MoveOp) and any(a.level == "local" for a in op.allocs)
    ]


def test_the_local_buffers_spill_to_smaller_pieces_then_to_streaming(
    tmp_path: Path,
) -> None:
    """The convolution's input is staged in the cores' local buffers: in one
    piece when 8 KiB hold it, in several when 1 KiB does not, and with 256
    bytes (less than a piece of a few rows) the MVM streams its input from
    where it lives instead, staging nothing."""
    model = padded_conv(tmp_path)
    pieces: list[int] = []
    for local_bytes in (8192, 1024, 256):
        target = tiny_with(
            tmp_path, f"local{local_bytes}", buffers={"local_bytes": local_bytes}
        )
        trace = module_trace(compile_model(model, target), str(model))
        peak = within_capacities(trace).stats.peak_occupancy[1]
        assert peak.level == "local" and peak.nbytes <= local_bytes
        pieces.append(len(staged_pieces(trace)))
        if not staged_pieces(trace):
            assert {op.feed for op in trace.ops if isinstance(op, MvmOp)} <= {
                "buffer",
                "dram",
            }
        assert verify_trace(trace, model, "exact").passed
    assert pieces[0] == 1 < pieces[1]
    assert pieces[2] == 0


def test_pieces_move_only_what_the_line_buffers_lack(
    tmp_path: Path,
) -> None:
    """With 1 KiB local buffers the convolution's 16 x 16 x 4 input (1 byte
    per value on tiny) is staged in pieces of a few output pixels; a piece
    moves only the feature-map positions its windows add to those the
    pieces before it brought (the columns of a partial row included), so
    every input byte is loaded from DRAM and moved into the cores exactly
    once."""
    model = padded_conv(tmp_path)
    target = tiny_with(tmp_path, "local1024", buffers={"local_bytes": 1024})
    trace = module_trace(compile_model(model, target), str(model))
    feature_map = 4 * 16 * 16
    moves = staged_pieces(trace)
    assert sum(op.nbytes for op in moves) == feature_map
    loads = [op for op in trace.ops if isinstance(op, LoadOp) and op.tensor == "t"]
    assert sum(op.nbytes for op in loads) == feature_map
    assert len(loads) == len(moves)
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed


@pytest.mark.parametrize(
    ("array_bytes", "in_arrays"), [(4096, True), (512, False)], ids=["fits", "spills"]
)
def test_an_activations_buffer_spills_to_dram(
    tmp_path: Path, array_bytes: int, in_arrays: bool
) -> None:
    """Two memory-mode arrays given to activations hold the 150 x 24
    activations (3600 B) when each stores 4 KiB; at 512 B each the tensors
    go to DRAM instead, and nothing is written to the arrays."""
    model = two_layer_mlp(tmp_path, 150)
    target = tiny_with(
        tmp_path,
        f"memory{array_bytes}",
        array={"rows": 512, "active_rows": 512},
        dual_mode={"memory_capacity_bytes": array_bytes},
    )
    activations = cim_tile.BufferRole.ACTIVATIONS
    module = compile_with_buffers(model, target, [(0, activations, 2, 2 * array_bytes)])
    trace = module_trace(module, str(model))
    assert bool(written_to_memory(trace)) == in_arrays
    relu_outputs = {op.out_to for op in trace.ops if isinstance(op, VectorOp)}
    assert ("memory" in relu_outputs) == in_arrays
    assert ("dram" in relu_outputs) != in_arrays
    peak = within_capacities(trace).stats.peak_occupancy[2]
    assert peak.level == "memory" and peak.nbytes <= array_bytes
    assert verify_trace(trace, model, "exact").passed


def matmul_norm_matmul(directory: Path) -> Path:
    """x [150, 24] -> MatMul -> LayerNormalization (scale, bias) -> MatMul."""
    rng = np.random.default_rng(0)

    def initializer(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        values = (rng.standard_normal(shape) / 5).astype(np.float32)
        return numpy_helper.from_array(values, name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["m0"]),
            helper.make_node(
                "LayerNormalization", ["m0", "scale", "bias"], ["n0"], axis=-1
            ),
            helper.make_node("MatMul", ["n0", "w1"], ["y"]),
        ],
        "norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [150, 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [150, 24])],
        [
            initializer("w0", (24, 24)),
            initializer("w1", (24, 24)),
            initializer("scale", (24,)),
            initializer("bias", (24,)),
        ],
    )
    return save_model(graph, directory / "norm.onnx")


def test_a_norm_reads_memory_arrays_and_its_scale_from_the_buffer(
    tmp_path: Path,
) -> None:
    """The first product (3600 B) spills into the activations buffer (a
    2 KiB global buffer holds at most half that); the norm streams it from
    those arrays while its scale and bias sit in the global buffer, with no
    copy of either to DRAM."""
    model = matmul_norm_matmul(tmp_path)
    target = tiny_with(
        tmp_path,
        "norm",
        array={"rows": 512, "active_rows": 512},
        buffers={"global_bytes": 2048},
        dual_mode={"memory_capacity_bytes": 4096},
    )
    activations = cim_tile.BufferRole.ACTIVATIONS
    module = compile_with_buffers(model, target, [(0, activations, 2, 8192)])
    trace = module_trace(module, str(model))
    (norm,) = [op for op in trace.ops if isinstance(op, VectorOp)]
    assert norm.op == "layer_norm" and norm.in_from == "memory"
    assert {"scale", "bias"} <= set(norm.inputs)
    loaded = {op.tensor: op.dst for op in trace.ops if isinstance(op, LoadOp)}
    assert loaded["scale"] == loaded["bias"] == "buffer"
    stored = {op.tensor for op in trace.ops if isinstance(op, StoreOp)}
    assert not stored & set(norm.inputs)
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed


def test_the_next_segments_weights_load_while_the_segment_before_computes(
    tmp_path: Path,
) -> None:
    """Twelve 8 x 8 weights on the tiny chip, two copies each under
    ``pimcomp-ll``, take two segments. Each of the second segment's weights
    is read from DRAM into the global buffer once for both copies; the
    load waits for its bytes and the start of the segment before, not for
    the end of it, so every one of them is in the buffer while the first
    segment still computes (before, each waited for the barrier)."""
    model = tmp_path / "chain12.onnx"
    onnx.save(matmul_relu_chain(12, 16, 8), model)
    module = compile_model(model, "tiny", "cim-compile{strategy=pimcomp-ll}")
    trace = module_trace(module, str(model))
    first, second = sorted({op.segment for op in trace.ops})
    result = within_capacities(trace)
    last_of_first = max(
        result.finish[op.id]
        for op in trace.ops
        if isinstance(op, MvmOp) and op.segment == first
    )
    loads = [
        op
        for op in trace.ops
        if isinstance(op, LoadOp) and op.segment == second and op.dst == "buffer"
    ]
    assert {op.name for op in loads} == {"w8", "w9", "w10", "w11"}
    assert all(result.finish[op.id] < last_of_first for op in loads)
    assert verify_trace(trace, model, "exact").passed


def test_a_segment_programs_arrays_its_predecessor_is_done_with(
    tmp_path: Path,
) -> None:
    """Twelve 8 x 8 weights (one array each) on the tiny chip's 8 arrays
    take two segments. The second segment's first weight goes on array 0,
    which only the first layer used: it is programmed as soon as that
    layer's MVMs are done, while the first segment's last layers still
    compute, not after the segment's barrier."""
    model = tmp_path / "chain12.onnx"
    onnx.save(matmul_relu_chain(12, 16, 8), model)
    trace = module_trace(compile_model(model, "tiny"), str(model))
    segments = sorted({op.segment for op in trace.ops})
    assert len(segments) == 2
    result = within_capacities(trace)
    first, second = segments
    mvms = [op for op in trace.ops if isinstance(op, MvmOp)]
    programs = [op for op in trace.ops if isinstance(op, ProgramOp)]
    last_of_first = max(result.finish[op.id] for op in mvms if op.segment == first)
    early = [
        op
        for op in programs
        if op.segment == second and result.start[op.id] < last_of_first
    ]
    assert early
    for program in early:
        arrays = set(array_ids(program.arrays))
        users = [
            op
            for op in mvms
            if op.segment == first and arrays & set(array_ids(op.arrays))
        ]
        assert users
        assert all(result.finish[op.id] <= result.start[program.id] for op in users)
    assert verify_trace(trace, model, "exact").passed


def linear_residual_relu(directory: Path) -> Path:
    """``relu(x @ w + b + s)``: x [64, 200], w [200, 16] (7 row tiles of
    tiny's 32-row arrays, more than a core's 4: every column's sums meet
    from two cores), the skip s [64, 16] a model input."""
    rng = np.random.default_rng(3)
    weight = rng.normal(0.0, 0.05, (200, 16)).astype(np.float32)
    offsets = rng.normal(0.0, 0.05, (16,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc"),
            helper.make_node("Add", ["y", "s"], ["t"], name="skip"),
            helper.make_node("Relu", ["t"], ["z"], name="act"),
        ],
        "linear_residual_relu",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 200]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [64, 16]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [64, 16])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(offsets, "b"),
        ],
    )
    return save_model(graph, directory / "linear_residual_relu.onnx")


def test_a_chunk_s_partial_sums_pass_through_the_buffer_in_parts(
    tmp_path: Path,
) -> None:
    """w streams one column tile a chunk; each chunk's sums from its two
    cores (64 vectors x 8 outputs x 4 B x 2 = 4 KiB) do not fit half of
    tiny's 4 KiB global buffer, so its vectors go in parts whose sums do,
    each added with the bias, the skip and the ReLU as soon as it is out:
    no partial sum goes to DRAM, the parts cover every vector once, and the
    run computes the model exactly. With a 64 KiB buffer each chunk's sums
    fit whole and are added at once."""
    model = linear_residual_relu(tmp_path)
    trace = module_trace(compile_model(model, "tiny", "cim-compile"), str(model))
    mvms = [op for op in trace.ops if isinstance(op, MvmOp) and op.weight == "w"]
    assert {op.out_to for op in mvms} == {"buffer"}
    assert all(op.out_bytes <= 2048 for op in mvms)
    adds = [
        op for op in trace.ops if isinstance(op, VectorOp) and op.op == "accumulate"
    ]
    assert all(op.attrs.get("residual") and op.attrs.get("then") for op in adds)
    by_columns: dict[tuple[int, int], list[object]] = {}
    for op in adds:
        assert op.block is not None and op.block[0] == 1
        by_columns.setdefault((op.block[1], op.block[2]), []).append(
            op.attrs["vectors"]
        )
    assert sorted(by_columns) == [(0, 8), (8, 16)]
    for parts in by_columns.values():
        # consecutive [v0, v1) parts from 0 to 64
        bounds = [0, *(v for part in parts for v in cast(list[int], part)), 64]
        assert len(parts) > 1 and bounds[::2] == bounds[1::2]
    within_capacities(trace)
    assert verify_trace(trace, model, "exact").passed
    roomy = tiny_with(tmp_path, "roomy", buffers={"global_bytes": 65536})
    whole = module_trace(compile_model(model, roomy, "cim-compile"), str(model))
    adds = [
        op for op in whole.ops if isinstance(op, VectorOp) and op.op == "accumulate"
    ]
    assert len(adds) == 2 and not any("vectors" in op.attrs for op in adds)
    assert verify_trace(whole, model, "exact").passed
