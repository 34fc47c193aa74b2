"""A weight streamed in chunks that alternate between the two halves of the
free arrays (:class:`~cimflow.lowering.state.ChunkStream`): while one half
computes a chunk, the other takes the next one from DRAM (double
buffering). The rule, the lowering's dependences, the functional truth of
alternating bands of row tiles, and what it wins."""

from __future__ import annotations

import itertools
from pathlib import Path

import onnx
from functional_models import integer_linear, padded_conv
from test_functional import assert_banded_product_exact, small_dynaplasia
from xdsl.context import Context

from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import MvmOp, ProgramOp, parse_trace
from cimflow.hw_targets import load_target
from cimflow.lowering.state import (
    alternates_for,
    chunk_stream,
    stream_alternatives,
)
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.trace_target import build_trace
from cimflow.tools.cim_verify import compile_model, module_trace


def layer4_conv(directory: Path) -> Path:
    """ResNet-18's layer-4 convolution (512 to 512 channels on 7 x 7): a
    2.36 MB weight, 3 chunks on dynaplasia's 96 arrays, 5 on 48."""
    path = directory / "layer4.onnx"
    onnx.save(padded_conv(512, 512, 7, relu_first=True), path)
    return path


def conv_tiling(path: Path) -> cim_tile.TilingAttr:
    module = compile_model(path, "dynaplasia", "convert-graph-to-tile")
    mvm = next(op for op in module.walk() if isinstance(op, cim_tile.MVMOp))
    return mvm.tiling


def test_alternating_chunks_take_the_two_halves_in_turn(tmp_path: Path) -> None:
    hw = load_target("dynaplasia")
    tiling = conv_tiling(layer4_conv(tmp_path))
    whole = chunk_stream(hw, tiling, 0, 96, False)
    halves = chunk_stream(hw, tiling, 0, 96, True)
    assert (len(whole.chunks), len(halves.chunks)) == (3, 5)
    assert len(set(whole.starts)) == 1
    for index, (chunk, start) in enumerate(
        zip(halves.chunks, halves.starts, strict=True)
    ):
        if index % 2 == 0:
            assert start + chunk.arrays <= 48
        else:
            assert start >= 48 and start + chunk.arrays <= 96
    assert [halves.reuses(i) for i in range(4)] == [None, None, 0, 1]
    assert [whole.reuses(i) for i in range(3)] == [None, 0, 1]
    assert stream_alternatives(hw, tiling, 96) == (False, True)
    assert alternates_for(hw, tiling, 96, 3) is False
    assert alternates_for(hw, tiling, 96, 5) is True
    assert alternates_for(hw, tiling, 96, 4) is None


def test_a_weight_that_fits_or_a_single_array_streams_one_way(
    tmp_path: Path,
) -> None:
    """A weight that fits the free arrays is one chunk, and one free array
    has no halves: neither alternates, and a count only the halves would
    give is no allocation of theirs."""
    hw = load_target("dynaplasia")
    tiling = conv_tiling(layer4_conv(tmp_path))
    assert stream_alternatives(hw, tiling, hw.total_arrays * 4) == (False,)
    assert stream_alternatives(hw, tiling, 1) == (False,)
    halved = len(plan_chunks(tiling, hw.total_arrays, hw))
    assert alternates_for(hw, tiling, hw.total_arrays * 4, halved) is None


def test_cmswitch_alternates_a_layer4_convolution_and_overlaps_its_programs(
    tmp_path: Path,
) -> None:
    """The dual-mode model prices both ways (:func:`~cimflow.analysis.
    dual_mode_model.stream_terms`) and takes the halves: each chunk's
    program from DRAM waits for the chunk two before it, so it runs while
    the chunk before computes; the stream simulates faster than the static
    strategy's, which programs every chunk into the arrays the one before
    has just left (measured: 110 670 cycles, not 120 643)."""
    path = layer4_conv(tmp_path)
    module = compile_model(path, "dynaplasia", "convert-graph-to-tile,cim-cmswitch")
    mvm = next(op for op in module.walk() if isinstance(op, cim_tile.MVMOp))
    assert mvm.alloc is not None and mvm.alloc.field("chunks") == 5
    trace = module_trace(
        compile_model(path, "dynaplasia", "cim-compile{strategy=cmswitch}")
    )
    programs = [op for op in trace.ops if isinstance(op, ProgramOp)]
    assert len(programs) == 5
    firsts = [op.arrays[0][0] for op in programs]
    assert all(a < 48 for a in firsts[0::2]) and all(a >= 48 for a in firsts[1::2])
    run = simulate(trace)
    computed: dict[tuple[int, int], int] = {}
    for op in trace.ops:
        if isinstance(op, MvmOp):
            computed[op.n] = max(computed.get(op.n, 0), run.finish[op.id])
    overlapped = [
        run.start[later.id] < computed[earlier.n]
        for earlier, later in itertools.pairwise(programs)
    ]
    assert any(overlapped)
    static = module_trace(
        compile_model(path, "dynaplasia", "cim-compile{strategy=static}")
    )
    assert len([op for op in static.ops if isinstance(op, ProgramOp)]) == 3
    assert run.makespan < simulate(static).makespan


def test_alternating_bands_of_row_tiles_add_in_order_and_are_exact(
    tmp_path: Path,
) -> None:
    """A 1100 x 64 weight on 96 arrays of 32 x 32 streams in bands of row
    tiles whose sums add into a running sum per column range; alternating,
    two bands over the same columns compute at once, and their additions
    still take the running sum in order (each waits for the one before:
    else the trace is refused, a reader not depending on its writer), and
    the result is ``x @ W``."""
    path = tmp_path / "banded.onnx"
    onnx.save(integer_linear(vectors=6, k=1100, n=64), path)
    target = small_dynaplasia(tmp_path)
    hw = load_target(target)
    module = compile_model(path, target, "convert-graph-to-tile,cim-static-allocate")
    mvm = next(op for op in module.walk() if isinstance(op, cim_tile.MVMOp))
    halves = len(plan_chunks(mvm.tiling, hw.total_arrays // 2, hw))
    assert halves != len(plan_chunks(mvm.tiling, hw.total_arrays, hw))
    mvm.alloc = cim_tile.AllocAttr.from_ints(0, 1, halves)
    ConvertTileToMetaPass(target).apply(Context(), module)
    trace = parse_trace(build_trace(module), str(path))
    bands = {op.k for op in trace.ops if isinstance(op, MvmOp)}
    assert len(bands) > 1
    assert_banded_product_exact(trace, path)
