"""The compiler passes: tiling, chunk planning, static allocation, lowering to
meta-ops, the trace target and the ``cim-opt`` driver.

Tests whose docstring describes a fix are regressions for bugs these tests
found in the passes; the docstring says what was wrong.
"""

# MLIR test inputs keep one operation per line, however long.
# ruff: noqa: E501

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_builders import chain_ir, parse_module
from xdsl.dialects.builtin import ModuleOp, StringAttr

from cimflow.analysis.tile_mapping import (
    Chunk,
    plan_chunks,
    row_groups,
    stream_bytes,
    target_tiling,
)
from cimflow.cimdialect.cim_tile import MVMOp, TilingAttr, VectorOp
from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.trace import (
    BarrierOp,
    LoadOp,
    MoveOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    Trace,
    dump_trace,
    parse_trace,
)
from cimflow.cimsim.trace import (
    VectorOp as TraceVectorOp,
)
from cimflow.errors import CimError
from cimflow.hw_targets import (
    HardwareTarget,
    load_target,
    shipped_targets,
    target_to_toml,
)
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.pipelines import CompileStaticPass
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools.cim_opt import main as cim_opt_main
from cimflow.tools.cim_opt import parse_dims

OpT = TypeVar("OpT")

# --- helpers -----------------------------------------------------------------


def compile_static(text: str, target: str = "tiny") -> ModuleOp:
    """cim_graph IR text -> a verified module holding one cim_meta.schedule."""
    ctx, module = parse_module(text)
    CompileStaticPass(target).apply(ctx, module)
    module.verify()
    return module


def trace_text(module: ModuleOp) -> str:
    return dump_trace(build_trace(module))


def trace_of(module: ModuleOp) -> Trace:
    """The module's trace, through its JSON text, validated."""
    return parse_trace(json.loads(trace_text(module)), "<test>")


def compile_and_simulate(text: str, target: str = "tiny") -> tuple[Trace, SimResult]:
    trace = trace_of(compile_static(text, target))
    return trace, simulate(trace)


def write_target(directory: Path, hw: HardwareTarget) -> str:
    """Write ``hw`` as a TOML file named by its content; return its path.

    ``load_target`` caches by path, so equal content may share a file.
    """
    text = target_to_toml(hw)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = directory / f"target-{digest}.toml"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return str(path)


def linear_chain_ir(vectors: int, dims: Sequence[int], relu: bool = True) -> str:
    """``len(dims) - 1`` linear layers ``dims[i] -> dims[i + 1]`` on [V, dims[0]]."""
    return chain_ir(vectors, dims, "between" if relu else "none")


def single_linear_ir(
    k: int, n: int, vectors: int = 1, bias: bool = False, name: str = "w"
) -> str:
    w_type = f"tensor<{k}x{n}xf32>"
    in_type, out_type = f"tensor<{vectors}x{k}xf32>", f"tensor<{vectors}x{n}xf32>"
    bias_def = (
        f'%b = cim_graph.weight "{name}.b" : tensor<{n}xf32>\n    ' if bias else ""
    )
    bias_use = ", %b" if bias else ""
    bias_type = f", tensor<{n}xf32>" if bias else ""
    return f"""builtin.module {{
  func.func @main(%x: {in_type}) -> {out_type} {{
    %w = cim_graph.weight "{name}" : {w_type}
    {bias_def}%y = cim_graph.linear %x, %w{bias_use} : ({in_type}, {w_type}{bias_type}) -> {out_type}
    func.return %y : {out_type}
  }}
}}
"""


SMALL_CNN = """
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx">} {
  func.func @main(%x: tensor<1x3x8x8xf32>) -> tensor<1x10xf32> {
    %w = cim_graph.weight "conv.w" : tensor<16x3x3x3xf32>
    %b = cim_graph.weight "conv.b" : tensor<16xf32>
    %y = cim_graph.conv %x, %w, %b strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<16x3x3x3xf32>, tensor<16xf32>) -> tensor<1x16x8x8xf32>
    %z = cim_graph.unary relu %y : tensor<1x16x8x8xf32> -> tensor<1x16x8x8xf32>
    %g = cim_graph.global_pool avg %z : tensor<1x16x8x8xf32> -> tensor<1x16x1x1xf32>
    %r = cim_graph.reshape %g : tensor<1x16x1x1xf32> -> tensor<1x16xf32>
    %lw = cim_graph.weight "fc.w" : tensor<10x16xf32>
    %l = cim_graph.linear %r, %lw transpose_weight : (tensor<1x16xf32>, tensor<10x16xf32>) -> tensor<1x10xf32>
    func.return %l : tensor<1x10xf32>
  }
}
"""

DEPTHWISE = """
builtin.module {
  func.func @main(%x: tensor<1x8x6x6xf32>) -> tensor<1x8x6x6xf32> {
    %w = cim_graph.weight "dw.w" : tensor<8x1x3x3xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    func.return %y : tensor<1x8x6x6xf32>
  }
}
"""

# Two groups of a 256 x 256 weight each (1x1 conv, 512 -> 512 channels).
GROUPED_LARGER_THAN_TINY = """
builtin.module {
  func.func @main(%x: tensor<1x512x1x1xf32>) -> tensor<1x512x1x1xf32> {
    %w = cim_graph.weight "g.w" : tensor<512x256x1x1xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 2 : (tensor<1x512x1x1xf32>, tensor<512x256x1x1xf32>) -> tensor<1x512x1x1xf32>
    func.return %y : tensor<1x512x1x1xf32>
  }
}
"""


# Every op kind of a static schedule: a depthwise conv, a streamed linear.
GROUPED_OK_AND_CHUNKED = """
builtin.module {
  func.func @main(%x: tensor<1x8x6x6xf32>, %h: tensor<1x256xf32>) -> (tensor<1x8x6x6xf32>, tensor<1x256xf32>) {
    %w = cim_graph.weight "dw.w" : tensor<8x1x3x3xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    %lw = cim_graph.weight "big.w" : tensor<256x256xf32>
    %l = cim_graph.linear %h, %lw : (tensor<1x256xf32>, tensor<256x256xf32>) -> tensor<1x256xf32>
    func.return %y, %l : tensor<1x8x6x6xf32>, tensor<1x256xf32>
  }
}
"""


def mvm_ops(module: ModuleOp) -> list[MVMOp]:
    return [op for op in module.walk() if isinstance(op, MVMOp)]


def ops_of(trace: Trace, kind: type[OpT]) -> list[OpT]:
    return [op for op in trace.ops if isinstance(op, kind)]


def tiled_and_allocated(text: str, target: str) -> ModuleOp:
    ctx, module = parse_module(text)
    ConvertGraphToTilePass(target).apply(ctx, module)
    StaticAllocatePass(target).apply(ctx, module)
    module.verify()
    return module


# --- TilingAttr.for_matrix ---------------------------------------------------


def tiling_fields(tiling: TilingAttr) -> dict[str, int]:
    keys = ("row_tiles", "col_tiles", "groups_per_array")
    return {key: tiling.field(key) for key in keys}


@pytest.mark.parametrize(
    ("k", "n", "groups", "rows", "cols", "slices", "expected", "arrays"),
    [
        # 256 x 256 on 128 x 128 arrays, 8-bit weights in 2-bit cells: 4 bit
        # slices, 128 / 4 = 32 outputs per array; 256 / 128 = 2 row tiles,
        # 256 / 32 = 8 column tiles, 16 arrays.
        (256, 256, 1, 128, 128, 4, (2, 8, 1), 16),
        # tiny (32 x 32, 4 slices -> 8 outputs/array): a 3x3x3 conv, 16 outputs.
        (27, 16, 1, 32, 32, 4, (1, 2, 1), 2),
        # K not a multiple of the rows: ceil(72 / 32) = 3; N = 8 fills one.
        (72, 8, 1, 32, 32, 4, (3, 1, 1), 3),
        # N not a multiple of the outputs per array: ceil(10 / 8) = 2.
        (40, 10, 1, 32, 32, 4, (2, 2, 1), 4),
        # One output column per weight (1-bit cells): 320 outputs per array.
        (512, 10, 1, 320, 320, 8, (2, 1, 1), 2),
        # Depthwise 3x3, 8 groups on tiny: min(8, 32 // 9 = 3, 8 // 1 = 8) = 3
        # groups per array, ceil(8 / 3) = 3 arrays.
        (9, 1, 8, 32, 32, 4, (1, 1, 3), 3),
        # Depthwise 3x3, 32 groups on 128 x 128: min(32, 14, 32) = 14 per
        # array, ceil(32 / 14) = 3 arrays.
        (9, 1, 32, 128, 128, 4, (1, 1, 14), 3),
        # Groups that do not pack (k > rows): each group tiled on its own,
        # 2 x 2 tiles per group, 2 groups.
        (40, 16, 2, 32, 32, 4, (2, 2, 1), 8),
        # Groups where only one fits an array (rows // k = 1): not packed.
        (20, 4, 4, 32, 32, 4, (1, 1, 1), 4),
        # Packing limited by the outputs per array: 8 // 3 = 2 groups.
        (4, 3, 6, 32, 32, 4, (1, 1, 2), 3),
    ],
)
def test_tiling_for_matrix_hand_counts(
    k: int,
    n: int,
    groups: int,
    rows: int,
    cols: int,
    slices: int,
    expected: tuple[int, int, int],
    arrays: int,
) -> None:
    tiling = TilingAttr.for_matrix(k, n, groups, rows, cols, slices)
    tiling.verify()
    row_tiles, col_tiles, packed = expected
    assert tiling_fields(tiling) == {
        "row_tiles": row_tiles,
        "col_tiles": col_tiles,
        "groups_per_array": packed,
    }
    assert tiling.outputs_per_array == cols // slices
    assert tiling.arrays_per_copy == arrays


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    k=st.integers(1, 700),
    n=st.integers(1, 700),
    groups=st.sampled_from([1, 1, 2, 3, 4, 8, 16, 32]),
    rows=st.sampled_from([8, 16, 32, 64, 128, 256, 320]),
    cols=st.sampled_from([8, 16, 32, 64, 128, 256, 320]),
    slices=st.sampled_from([1, 2, 4, 8]),
)
def test_tiling_covers_the_weight(
    k: int, n: int, groups: int, rows: int, cols: int, slices: int
) -> None:
    """Every tiling verifies, and its arrays hold every weight of every group."""
    tiling = TilingAttr.for_matrix(k, n, groups, rows, cols, slices)
    tiling.verify()
    per_array = cols // slices
    packed = tiling.field("groups_per_array")
    if packed > 1:
        assert packed * k <= rows and packed * n <= per_array
        assert tiling.arrays_per_copy == math.ceil(groups / packed)
    else:
        assert tiling.field("row_tiles") * rows >= k
        assert tiling.field("col_tiles") * per_array >= n
        assert tiling.arrays_per_copy == groups * tiling.field(
            "row_tiles"
        ) * tiling.field("col_tiles")
    # Capacity: the arrays have a cell for every weight bit slice.
    assert tiling.arrays_per_copy * rows * per_array >= groups * k * n


# --- plan_chunks --------------------------------------------------------------


def coverage(
    chunks: Sequence[Chunk], k: int, n: int, groups: int
) -> tuple[np.ndarray, list[int], list[int]]:
    """How many chunks cover each cell of a grid of the [G*K, G*N] matrix.

    The grid lines are every chunk edge and every group edge, so each grid
    cell lies in one group block and is either fully inside a chunk or not.
    """
    xs = sorted(
        {0, groups * k, *(g * k for g in range(groups))}
        | {edge for c in chunks for edge in (c.k0, c.k1)}
    )
    ys = sorted(
        {0, groups * n, *(g * n for g in range(groups))}
        | {edge for c in chunks for edge in (c.n0, c.n1)}
    )
    x_index = {x: i for i, x in enumerate(xs)}
    y_index = {y: i for i, y in enumerate(ys)}
    diff = np.zeros((len(xs), len(ys)), dtype=np.int64)
    for c in chunks:
        i0, i1, j0, j1 = x_index[c.k0], x_index[c.k1], y_index[c.n0], y_index[c.n1]
        diff[i0, j0] += 1
        diff[i0, j1] -= 1
        diff[i1, j0] -= 1
        diff[i1, j1] += 1
    counts = diff.cumsum(axis=0).cumsum(axis=1)[:-1, :-1]
    return counts, xs, ys


def check_exact_cover(chunks: Sequence[Chunk], k: int, n: int, groups: int) -> None:
    """Each weight (cell of a diagonal group block) is in exactly one chunk;
    chunks never overlap, even on the zero blocks between groups."""
    for c in chunks:
        assert 0 <= c.k0 < c.k1 <= groups * k, c
        assert 0 <= c.n0 < c.n1 <= groups * n, c
    counts, xs, ys = coverage(chunks, k, n, groups)
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            in_block = xs[i] // k == ys[j] // n
            if in_block:
                assert counts[i, j] == 1, (xs[i], ys[j], counts[i, j])
            else:
                assert counts[i, j] <= 1, (xs[i], ys[j], counts[i, j])


def arrays_for_rectangle(tiling: TilingAttr, chunk: Chunk) -> int:
    """Arrays a chunk needs to hold its rectangle (ungrouped weights)."""
    rows, per_array = tiling.field("rows"), tiling.outputs_per_array
    return math.ceil((chunk.k1 - chunk.k0) / rows) * math.ceil(
        (chunk.n1 - chunk.n0) / per_array
    )


def test_plan_chunks_fits_in_one_chunk() -> None:
    tiling = TilingAttr.for_matrix(256, 256, 1, 128, 128, 4)
    assert plan_chunks(tiling, 16) == [Chunk(0, 256, 0, 256, 16, 128, 128, 2)]
    assert plan_chunks(tiling, 96) == [Chunk(0, 256, 0, 256, 16, 128, 128, 2)]


def test_plan_chunks_by_column_tiles() -> None:
    # 256 x 256 on tiny: 8 row tiles x 32 column tiles; 8 arrays hold one
    # column of tiles (8 outputs) at a time: 32 chunks of 8 arrays.
    tiling = TilingAttr.for_matrix(256, 256, 1, 32, 32, 4)
    chunks = plan_chunks(tiling, 8)
    assert len(chunks) == 32
    assert chunks[0] == Chunk(0, 256, 0, 8, 8, 32, 32, 8)
    assert chunks[-1] == Chunk(0, 256, 248, 256, 8, 32, 32, 8)
    # 20 arrays: 2 columns of tiles (16 arrays) per chunk, 16 chunks.
    chunks = plan_chunks(tiling, 20)
    assert len(chunks) == 16
    assert {c.arrays for c in chunks} == {16}
    assert chunks[1] == Chunk(0, 256, 16, 32, 16, 32, 32, 8)


def test_plan_chunks_by_row_tiles() -> None:
    # k = 320: 10 row tiles > 8 arrays: the column is cut into 8 + 2 row
    # tiles whose partial sums are added later.
    tiling = TilingAttr.for_matrix(320, 8, 1, 32, 32, 4)
    assert plan_chunks(tiling, 8) == [
        Chunk(0, 256, 0, 8, 8, 32, 32, 8),
        Chunk(256, 320, 0, 8, 2, 32, 32, 2),
    ]


def test_plan_chunks_by_groups() -> None:
    # 32 depthwise groups packed 3 per array on tiny (11 arrays) on 4 arrays:
    # 4 x 3 = 12 groups per chunk: groups 0-11, 12-23, 24-31.
    tiling = TilingAttr.for_matrix(9, 1, 32, 32, 32, 4)
    assert tiling.arrays_per_copy == 11
    chunks = plan_chunks(tiling, 4)
    assert [(c.k0 // 9, c.k1 // 9, c.arrays) for c in chunks] == [
        (0, 12, 4),
        (12, 24, 4),
        (24, 32, 3),
    ]
    check_exact_cover(chunks, 9, 1, 32)


@st.composite
def chunk_problems(draw: st.DrawFn) -> tuple[TilingAttr, int, HardwareTarget | None]:
    groups = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 6, 8]))
    limit = 200 if groups == 1 else 64
    k = draw(st.integers(1, limit))
    n = draw(st.integers(1, limit))
    rows = draw(st.sampled_from([8, 16, 32, 64, 128]))
    cols = draw(st.sampled_from([16, 32, 64, 128]))
    slices = draw(st.sampled_from([1, 2, 4, 8]))
    tiling = TilingAttr.for_matrix(k, n, groups, rows, cols, slices)
    available = draw(st.integers(1, max(1, tiling.arrays_per_copy + 2)))
    target = draw(st.sampled_from([None, "tiny", "dynaplasia", "pimcomp_default"]))
    return tiling, available, None if target is None else load_target(target)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(problem=chunk_problems())
def test_plan_chunks_cover_exactly_once(
    problem: tuple[TilingAttr, int, HardwareTarget | None],
) -> None:
    """Chunks hold every weight exactly once, each in at most ``available``
    arrays (grouped weights whose one group exceeds ``available`` are the
    known bug of ``test_plan_chunks_group_larger_than_chip``), in bands of
    row tiles or not (with a target or without)."""
    tiling, available, hw = problem
    k, n, groups = (tiling.field(f) for f in ("k", "n", "groups"))
    row_tiles, col_tiles = tiling.field("row_tiles"), tiling.field("col_tiles")
    chunks = plan_chunks(tiling, available, hw)
    assert chunks
    check_exact_cover(chunks, k, n, groups)
    if tiling.arrays_per_copy <= available:
        assert len(chunks) == 1
        assert chunks[0].arrays == tiling.arrays_per_copy
    for chunk in chunks:
        assert chunk.rows <= tiling.field("rows")
        assert chunk.cols <= tiling.field("cols")
        assert chunk.arrays >= 1
        if groups == 1:
            assert chunk.arrays >= arrays_for_rectangle(tiling, chunk)
            assert chunk.row_tiles == math.ceil(
                (chunk.k1 - chunk.k0) / tiling.field("rows")
            )
        if groups == 1 or row_tiles * col_tiles <= available:
            assert chunk.arrays <= available, chunk
    total = sum(c.arrays for c in chunks)
    assert total >= tiling.arrays_per_copy


def test_a_tall_matrix_streams_in_bands_of_row_tiles() -> None:
    """LLaMA-2-7B's down projection (11008 x 4096) on dynaplasia's 96
    arrays: whole columns (35 row tiles) fit two at a time, so each of 52
    chunks reads the whole input again; in three bands of 12 row tiles
    (one core each) eight columns fit: 13 column runs read the input once
    each, and the bands' sums cost less than the 39 reads saved."""
    hw = load_target("dynaplasia")
    tiling = target_tiling(hw, 11008, 4096, 1)
    assert tiling.field("row_tiles") == 35
    assert len(plan_chunks(tiling, 96)) == 52
    assert row_groups(tiling, 96, hw) == 3
    whole, banded = (stream_bytes(tiling, 96, hw, g) for g in (1, 3))
    assert whole is not None and banded is not None and banded < whole / 2
    chunks = plan_chunks(tiling, 96, hw)
    check_exact_cover(chunks, 11008, 4096, 1)
    assert len(chunks) == 39
    assert sorted({(c.k0, c.k1) for c in chunks}) == [
        (0, 3840),
        (3840, 7680),
        (7680, 11008),
    ]
    assert {c.arrays for c in chunks[:3]} == {96, 88}
    assert (chunks[0].n0, chunks[0].n1) == (chunks[2].n0, chunks[2].n1) == (0, 320)


def test_a_banded_stream_reads_its_input_once_per_column_run() -> None:
    """The down projection's 128-token input (1.4 MB, in DRAM) lowered on
    dynaplasia: each of the 13 column runs reads every row of it once (a
    band its rows), not each of 52 whole-column chunks."""
    trace = trace_of(
        compile_static(single_linear_ir(11008, 4096, vectors=128), "dynaplasia")
    )
    read = sum(
        op.in_bytes
        for op in trace.ops
        if isinstance(op, MvmOp) and op.weight == "w" and op.feed == "dram"
    )
    assert read == 13 * 128 * 11008


def test_columns_that_fit_several_at_a_time_stay_whole() -> None:
    """A 4096 x 4096 projection on dynaplasia (13 row tiles, 7 columns a
    chunk): its columns' sums cross two cores, but two bands would cost
    more than the inputs they save; a 256 x 16 weight on tiny's 8 arrays
    (8 row tiles, one column a chunk) saves less than half in two bands;
    a copy that fits is one chunk."""
    hw = load_target("dynaplasia")
    tiling = target_tiling(hw, 4096, 4096, 1)
    assert row_groups(tiling, 96, hw) is None
    assert plan_chunks(tiling, 96, hw) == plan_chunks(tiling, 96)
    tiny = load_target("tiny")
    assert row_groups(target_tiling(tiny, 256, 16, 1), 8, tiny) is None
    small = target_tiling(hw, 640, 80, 1)
    assert plan_chunks(small, 4, hw) == [Chunk(0, 640, 0, 80, 4, 320, 320, 2)]


def test_plan_chunks_group_larger_than_chip() -> None:
    """Fix (cimflow/analysis/tile_mapping.py): in the ``groups > 1`` branch, when
    ``row_tiles * col_tiles > available`` (``blocks = available // ...`` is 0),
    plan each group like an ungrouped ``k x n`` weight (the column-tile /
    row-tile branches) and offset its chunks by ``g * k`` and ``g * n``."""
    tiling = TilingAttr.for_matrix(256, 256, 2, 32, 32, 4)
    assert tiling.arrays_per_copy == 512
    chunks = plan_chunks(tiling, 8)
    check_exact_cover(chunks, 256, 256, 2)
    assert max(c.arrays for c in chunks) <= 8


def test_grouped_conv_larger_than_chip_simulates() -> None:
    _, result = compile_and_simulate(GROUPED_LARGER_THAN_TINY)
    assert result.makespan > 0


# --- static allocation ------------------------------------------------------


def allocation(module: ModuleOp) -> list[tuple[str, int, int, int, int]]:
    """(weight, segment, copies, chunks, arrays per copy) of every MVM."""
    result: list[tuple[str, int, int, int, int]] = []
    for op in mvm_ops(module):
        assert op.alloc is not None
        result.append(
            (
                op.weight.data,
                op.alloc.field("segment"),
                op.alloc.field("copies"),
                op.alloc.field("chunks"),
                op.tiling.arrays_per_copy,
            )
        )
    return result


def test_static_allocation_segments_on_tiny() -> None:
    # 5 arrays, then 2 x 3 = 6 (5 + 6 > 8: segment 1), then 1 (6 + 1 <= 8).
    module = tiled_and_allocated(linear_chain_ir(1, [32, 40, 24, 8]), "tiny")
    assert allocation(module) == [
        ("l0.w", 0, 1, 1, 5),
        ("l1.w", 1, 1, 1, 6),
        ("l2.w", 1, 1, 1, 1),
    ]
    vector_segments = [
        op.segment.value.data
        for op in module.walk()
        if isinstance(op, VectorOp) and op.segment is not None
    ]
    assert vector_segments == [0, 1]
    strategy = module.attributes["cim_tile.strategy"]
    assert isinstance(strategy, StringAttr)
    assert strategy.data == "static"


def test_static_allocation_chunks_larger_than_chip() -> None:
    # 256 x 256 on tiny: 8 x 32 = 256 arrays = 32 chips' worth -> 32 chunks in
    # a segment of its own; the 8-array layer after it gets the next segment.
    module = tiled_and_allocated(linear_chain_ir(1, [256, 256, 8]), "tiny")
    assert allocation(module) == [
        ("l0.w", 0, 1, 32, 256),
        ("l1.w", 1, 1, 1, 8),
    ]


def test_static_alloc_chunks_match_lowering() -> None:
    """Fix (passes/static_allocate.py): ``chunks = len(plan_chunks(tiling,
    total))`` instead of ``chunks_needed(need, total)``, so the IR states
    the chunks that are executed."""
    text = single_linear_ir(96, 40)
    module = tiled_and_allocated(text, "tiny")
    (op,) = mvm_ops(module)
    assert op.alloc is not None
    planned = plan_chunks(op.tiling, load_target("tiny").total_arrays)
    executed = len(ops_of(trace_of(compile_static(text)), MvmOp))
    assert len(planned) == executed == 3
    assert op.alloc.field("chunks") == len(planned)


@st.composite
def small_targets(draw: st.DrawFn) -> HardwareTarget:
    """``tiny`` with a random array geometry and array count."""
    base = load_target("tiny")
    rows = draw(st.sampled_from([16, 32, 64]))
    cols = draw(st.sampled_from([16, 32, 64]))
    chips = draw(st.integers(1, 2))
    cores = draw(st.integers(1, 3))
    per_core = draw(st.integers(1, 4))
    cell_bits = draw(st.sampled_from([1, 2, 4, 8]))
    return dataclasses.replace(
        base,
        hierarchy=dataclasses.replace(
            base.hierarchy, chips=chips, cores_per_chip=cores, arrays_per_core=per_core
        ),
        array=dataclasses.replace(
            base.array,
            rows=rows,
            cols=cols,
            active_rows=draw(st.integers(1, rows)),
            cell_bits=cell_bits,
            adcs_per_array=draw(st.sampled_from([cols // 8, cols])),
        ),
        dual_mode=dataclasses.replace(
            base.dual_mode,
            switchable_arrays=chips * cores * per_core,
            memory_capacity_bytes=min(
                base.dual_mode.memory_capacity_bytes, rows * cols * cell_bits // 8
            ),
        ),
    )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    hw=small_targets(),
    vectors=st.integers(1, 3),
    dims=st.lists(st.integers(1, 96), min_size=2, max_size=5),
)
def test_static_allocation_never_exceeds_or_refuses(
    tmp_path_factory: pytest.TempPathFactory,
    hw: HardwareTarget,
    vectors: int,
    dims: list[int],
) -> None:
    """Any chain of linear layers compiles on any small target; no segment
    holds more arrays than the chip; the schedule simulates."""
    target = write_target(tmp_path_factory.getbasetemp(), hw)
    total = hw.total_arrays
    text = linear_chain_ir(vectors, dims)
    module = tiled_and_allocated(text, target)
    per_segment: dict[int, list[tuple[int, int]]] = {}
    previous = 0
    for _, segment, copies, chunks, arrays in allocation(module):
        assert copies == 1
        assert segment in (previous, previous + 1)  # in order, no gaps
        previous = segment
        assert (chunks > 1) == (arrays > total)
        per_segment.setdefault(segment, []).append((chunks, arrays))
    for members in per_segment.values():
        if any(chunks > 1 for chunks, _ in members):
            assert len(members) == 1  # a streamed weight has the chip alone
        else:
            assert sum(arrays for _, arrays in members) <= total

    trace, result = compile_and_simulate(text, target)
    programmed: dict[int, list[int]] = {}
    for op in ops_of(trace, ProgramOp):
        for first, stop in op.arrays:
            assert 0 <= first < stop <= total
            programmed.setdefault(op.segment, []).extend(range(first, stop))
    for segment, arrays in programmed.items():
        if all(chunks == 1 for chunks, _ in per_segment[segment]):
            # resident weights of one segment never share an array
            assert len(arrays) == len(set(arrays))
    mvm_weights = [op.weight for op in ops_of(trace, MvmOp)]
    for op in mvm_ops(module):
        planned = plan_chunks(op.tiling, total)
        assert mvm_weights.count(op.weight.data) == len(planned)
    assert result.makespan > 0
    assert all(f >= s >= 0 for s, f in zip(result.start, result.finish, strict=True))


# --- convert-tile-to-meta and the trace ------------------------------------


COPIES_2 = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @main(%x: tensor<5x32xf32>) -> tensor<5x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> mode <compute> : tensor<5x32xf32> -> tensor<5x8xf32>
    func.return %y : tensor<5x8xf32>
  }
}
"""


def lower_tile_ir(text: str, target: str = "tiny") -> ModuleOp:
    ctx, module = parse_module(text)
    ConvertTileToMetaPass(target).apply(ctx, module)
    module.verify()
    return module


def test_parallel_copies_flatten_into_a_barrier() -> None:
    """Two copies split 5 vectors 3 + 2 and run at the same time; the trace
    lists both MVMs, then a barrier on them that the gather waits for."""
    trace = trace_of(lower_tile_ir(COPIES_2))
    kinds = [op.kind for op in trace.ops if op.kind != "free"]
    assert kinds == [
        "barrier",
        "load",
        "program",
        "program",
        "barrier",
        "load",
        "move",
        "mvm",
        "mvm",
        "barrier",
        "move",
        "store",
    ]
    first, second = ops_of(trace, MvmOp)
    programs = ops_of(trace, ProgramOp)
    move_in, gather = ops_of(trace, MoveOp)
    assert (first.v, first.vectors, first.arrays) == ((0, 2), 2, ((0, 1),))
    assert (second.v, second.vectors, second.arrays) == ((2, 5), 3, ((1, 2),))
    assert first.deps == tuple(sorted((move_in.id, programs[0].id)))
    assert second.deps == tuple(sorted((move_in.id, programs[1].id)))
    (join,) = [
        op for op in ops_of(trace, BarrierOp) if op.deps == (first.id, second.id)
    ]
    assert gather.deps == (join.id,)
    result = simulate(trace)
    assert result.start[first.id] == result.start[second.id]
    assert result.finish[join.id] == result.finish[second.id]  # 3 vectors > 2


def test_trace_validates_and_simulates_small_cnn() -> None:
    trace, result = compile_and_simulate(SMALL_CNN)
    assert trace.strategy == "static"
    assert trace.model.source == "m.onnx"
    assert [t.name for t in trace.model.inputs] == ["input0"]
    for op in trace.ops:
        assert all(dep < op.id for dep in op.deps)
    # everything ends with the output stored to DRAM (and buffers freed)
    last = [op for op in trace.ops if op.kind != "free"][-1]
    assert isinstance(last, StoreOp)
    assert result.makespan == result.finish[last.id]


@pytest.mark.parametrize("target", shipped_targets())
def test_every_shipped_target_compiles_and_simulates(target: str) -> None:
    _, result = compile_and_simulate(SMALL_CNN, target)
    assert result.makespan > 0


def test_compile_is_deterministic_in_process() -> None:
    texts = {trace_text(compile_static(SMALL_CNN)) for _ in range(2)}
    assert len(texts) == 1


def run_cim_opt(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cimflow.tools.cim_opt", *args],
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_trace_is_byte_identical_across_processes(tmp_path: Path) -> None:
    """Different hash seeds (set/dict order of str) give the same bytes."""
    source = tmp_path / "cnn.mlir"
    source.write_text(SMALL_CNN + "\n// -----\n" + single_linear_ir(96, 40))
    outputs: list[str] = []
    for seed in ("0", "12345"):
        done = run_cim_opt(
            str(source),
            "--split-input-file",
            "-p",
            "cim-compile-static{target=tiny}",
            "-t",
            "cim-trace",
            env={"PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0] == trace_text(compile_static(SMALL_CNN)) + "// -----\n" + (
        trace_text(compile_static(single_linear_ir(96, 40)))
    )


def test_lowering_without_allocation_is_an_error() -> None:
    ctx, module = parse_module(SMALL_CNN)
    ConvertGraphToTilePass("tiny").apply(ctx, module)
    with pytest.raises(CimError, match="no allocation"):
        ConvertTileToMetaPass("tiny").apply(ctx, module)


def test_trace_without_schedule_is_an_error() -> None:
    _, module = parse_module(SMALL_CNN)
    with pytest.raises(CimError, match=r"exactly one cim_meta\.schedule"):
        build_trace(module)


def test_grouped_weight_loaded_in_arrays_packed_diagonally() -> None:
    trace = trace_of(compile_static(DEPTHWISE))
    (program,) = ops_of(trace, ProgramOp)
    # 3 groups of 9 rows x (1 output x 4 slices) on the diagonal of each array
    assert (program.arrays, program.rows, program.cols) == (((0, 3),), 27, 12)
    assert (program.k, program.n) == ((0, 72), (0, 8))


def test_grouped_weight_load_bytes() -> None:
    """Fix (passes/convert_tile_to_meta.py): size what a weight streams by
    the weights a chunk holds: for ``groups > 1``, ``(k1 - k0) // k * k * n
    * weight_bytes`` (the chunk's groups times one group's K x N), not the
    block-diagonal matrix. The one copy streams from DRAM as it is
    programmed: nothing is loaded first."""
    trace = trace_of(compile_static(DEPTHWISE))
    assert not [op for op in ops_of(trace, LoadOp) if op.tensor == "dw.w"]
    (program,) = ops_of(trace, ProgramOp)
    assert (program.feed, program.in_bytes) == ("dram", 8 * 1 * 3 * 3)


def accumulate_ops(trace: Trace) -> list[TraceVectorOp]:
    return [op for op in ops_of(trace, TraceVectorOp) if op.op == "accumulate"]


def test_partial_sums_accumulated_for_row_tiles() -> None:
    # k = 96: 3 row tiles -> 2 extra partial sums per output; plus the bias.
    trace = trace_of(compile_static(single_linear_ir(96, 8, vectors=2, bias=True)))
    (acc,) = accumulate_ops(trace)
    assert acc.element_ops == 2 * 8 * (3 - 1) + 2 * 8
    assert acc.inputs == ("y", "w.b")


def test_chunked_partial_sums_counted_once() -> None:
    """A weight of 10 row tiles streamed in two chunks (8 + 2 row tiles):
    every row tile yields one partial sum per output, so the two chunks'
    accumulates (the first into a running sum, the second finishing it) add
    8 x (10 - 1) values in all."""
    trace = trace_of(compile_static(single_linear_ir(320, 8)))
    assert len(ops_of(trace, MvmOp)) == 2  # 8 + 2 row tiles
    first, last = accumulate_ops(trace)
    assert first.attrs.get("running") and not last.attrs.get("running")
    assert first.element_ops + last.element_ops == 8 * (10 - 1)


def test_bias_loaded_from_dram() -> None:
    """Fix (passes/convert_tile_to_meta.py, ``lower_mvm``): when ``mvm.bias``
    is set, emit ``LoadOp(bias, groups * n * weight_bytes, DRAM, BUFFER,
    self.deps(), segment)``; the accumulate waits for it, through the move
    that brings the bias into its cores' local buffers."""
    trace = trace_of(compile_static(single_linear_ir(32, 8, bias=True)))
    (acc,) = accumulate_ops(trace)
    loads = [op for op in ops_of(trace, LoadOp) if op.tensor == "w.b"]
    assert len(loads) == 1
    (moved,) = [op for op in ops_of(trace, MoveOp) if op.tensor == "w.b"]
    assert loads[0].id in moved.deps and moved.id in acc.deps


def test_large_activations_live_in_dram_between_segments() -> None:
    """The chain's 64x64 activation does not stay in the tiny chip's global
    buffer across the segment boundary: the relu streams it to DRAM as it
    computes, and the next layer loads it back in pieces that fit."""
    text = linear_chain_ir(64, [32, 64, 8])
    trace = trace_of(compile_static(text))
    relu = next(op for op in ops_of(trace, TraceVectorOp) if op.op == "relu")
    assert relu.out_to == "dram" and relu.outputs == ("r0",)
    reloads = [op for op in ops_of(trace, LoadOp) if op.tensor == "r0"]
    (declared,) = [t for t in trace.tensors if t.name == "r0"]
    assert len(reloads) > 1
    assert sum(op.nbytes for op in reloads) == declared.nbytes
    assert all(relu.id in op.deps for op in reloads)
    simulate(trace)  # every piece fits the buffer


CHUNKS_1_TOO_LARGE = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @main(%x: tensor<1x320xf32>) -> tensor<1x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 320, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 10, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x320xf32> -> tensor<1x8xf32>
    func.return %y : tensor<1x8xf32>
  }
}
"""


def test_resident_weight_larger_than_chip_is_refused() -> None:
    """Fix (passes/convert_tile_to_meta.py, ``enter_segment``): if
    ``len(plan_chunks(mvm.tiling, total)) > 1`` for an MVM with ``chunks ==
    1``, raise ``CimError`` naming the weight (the allocation is invalid)."""
    with pytest.raises(CimError):
        lower_tile_ir(CHUNKS_1_TOO_LARGE)


RESIDENT_AND_STREAMED = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @main(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %a = cim_tile.mvm %x weight "a" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x8xf32>
    %b = cim_tile.mvm %x weight "b" layout kn tiling <k = 32, n = 80, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 10, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 2> mode <compute> : tensor<1x32xf32> -> tensor<1x80xf32>
    %c = cim_tile.mvm %b weight "c" layout kn tiling <k = 80, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 3, col_tiles = 1, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<1x80xf32> -> tensor<1x8xf32>
    func.return %a : tensor<1x8xf32>
  }
}
"""


def test_streamed_weight_does_not_overwrite_resident_arrays() -> None:
    """Fix (passes/convert_tile_to_meta.py): remember the first free array
    after ``enter_segment`` programs the resident weights; the chunked branch
    of ``lower_mvm`` plans with ``plan_chunks(tiling, total - first_free)``
    and offsets its array ranges by ``first_free`` (raise ``CimError`` when no
    array is free)."""
    try:
        trace = trace_of(lower_tile_ir(RESIDENT_AND_STREAMED))
    except CimError:
        return
    resident = {
        a
        for op in ops_of(trace, ProgramOp)
        if op.weight == "a"
        for first, stop in op.arrays
        for a in range(first, stop)
    }
    for op in ops_of(trace, ProgramOp):
        if op.weight == "b" and op.segment == 0:
            held = {a for first, stop in op.arrays for a in range(first, stop)}
            assert not held & resident, op


# --- the cim-opt driver ----------------------------------------------------


@pytest.fixture
def small_cnn_file(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.mlir"
    path.write_text(SMALL_CNN, encoding="utf-8")
    return path


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("cim-opt: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_cli_compiles_to_output_file(small_cnn_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cnn.json"
    code = cim_opt_main(
        [
            str(small_cnn_file),
            "-p",
            "cim-compile-static{target=tiny}",
            "-t",
            "cim-trace",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert out.read_text() == trace_text(compile_static(SMALL_CNN))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cim-opt-")] == []


def test_cli_unknown_pass(
    small_cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cim_opt_main([str(small_cnn_file), "-p", "no-such-pass"])
    captured = capsys.readouterr()
    assert code == 1
    assert "no-such-pass" in one_error_line(captured.err)
    assert captured.out == ""


def test_cli_unknown_target_in_process(
    small_cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cim_opt_main(
        [str(small_cnn_file), "-p", "cim-compile-static{target=nosuch}"]
    )
    captured = capsys.readouterr()
    assert code == 1
    line = one_error_line(captured.err)
    assert "unknown target 'nosuch'" in line
    assert "tiny" in line  # lists the shipped targets
    assert captured.out == ""


def test_cli_unknown_target_subprocess(small_cnn_file: Path) -> None:
    done = run_cim_opt(str(small_cnn_file), "-p", "cim-compile-static{target=nosuch}")
    assert done.returncode == 1
    assert "unknown target 'nosuch'" in one_error_line(done.stderr)
    assert done.stdout == ""


def test_cli_target_file_not_found(
    small_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.toml"
    code = cim_opt_main(
        [str(small_cnn_file), "-p", f'cim-compile-static{{target="{missing}"}}']
    )
    assert code == 1
    assert "target file not found" in one_error_line(capsys.readouterr().err)


def test_cli_target_from_file(small_cnn_file: Path, tmp_path: Path) -> None:
    hw = load_target("tiny")
    path = write_target(tmp_path, hw)
    out = tmp_path / "t.json"
    code = cim_opt_main(
        [
            str(small_cnn_file),
            "-p",
            f'cim-compile-static{{target="{path}"}}',
            "-t",
            "cim-trace",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    trace = parse_trace(json.loads(out.read_text()))
    assert trace.target == hw


def test_cli_missing_input_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.mlir"
    code = cim_opt_main([str(missing), "-p", "cim-compile-static{target=tiny}"])
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "no such file" in line


def test_cli_output_untouched_on_failure(
    small_cnn_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "existing.json"
    existing.write_text("previous contents\n")
    fresh = tmp_path / "fresh.json"
    for out in (existing, fresh):
        code = cim_opt_main(
            [
                str(small_cnn_file),
                "-p",
                "cim-compile-static{target=nosuch}",
                "-t",
                "cim-trace",
                "-o",
                str(out),
            ]
        )
        assert code == 1
        one_error_line(capsys.readouterr().err)
    assert existing.read_text() == "previous contents\n"
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.mlir", "existing.json"]


TWO_FUNCTIONS = """
builtin.module {
  func.func @f(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
    func.return %x : tensor<1x4xf32>
  }
  func.func @g(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
    func.return %x : tensor<1x4xf32>
  }
}
"""


def test_cli_output_untouched_when_a_later_chunk_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --split-input-file, a failure in the second module writes nothing
    (the first module's output is not half-written)."""
    source = tmp_path / "two.mlir"
    source.write_text(SMALL_CNN + "\n// -----\n" + TWO_FUNCTIONS)
    out = tmp_path / "out.json"
    out.write_text("keep\n")
    code = cim_opt_main(
        [
            str(source),
            "--split-input-file",
            "-p",
            "cim-compile-static{target=tiny}",
            "-t",
            "cim-trace",
            "-o",
            str(out),
        ]
    )
    assert code == 1
    assert "expects one func.func, found 2" in one_error_line(capsys.readouterr().err)
    assert out.read_text() == "keep\n"


@pytest.mark.parametrize("spec", ["foo", "=3", "a=", "a=0", "a=-1", "a=x", "a=1.5"])
def test_parse_dims_rejects(spec: str) -> None:
    with pytest.raises(CimError, match="--dim"):
        parse_dims([spec])


def test_parse_dims_accepts() -> None:
    assert parse_dims(["batch=4", "sequence=128", "batch=2"]) == {
        "batch": 2,
        "sequence": 128,
    }
    assert parse_dims([]) == {}


def onnx_frontend_available() -> bool:
    try:
        module = importlib.import_module("cimflow.frontend")
    except ImportError:
        return False
    return hasattr(module, "onnx_frontend")


@pytest.mark.skipif(
    not onnx_frontend_available(), reason="the ONNX frontend is not there yet"
)
def test_cli_bad_dim_with_onnx_input(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    done = run_cim_opt(
        str(model), "--dim", "batch", "-p", "cim-compile-static{target=tiny}"
    )
    assert done.returncode == 1
    assert "--dim 'batch'" in one_error_line(done.stderr)


def test_cli_bad_dim_with_mlir_input(
    small_cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fix (tools/cim_opt.py): call ``parse_dims(self.args.dim)`` at the
    start of ``CimOptMain.run`` (keep the result for ``_import_onnx``)."""
    code = cim_opt_main(
        [str(small_cnn_file), "--dim", "batch", "-p", "cim-compile-static{target=tiny}"]
    )
    assert code == 1
    assert "--dim 'batch'" in one_error_line(capsys.readouterr().err)


def test_cli_malformed_pipeline_is_one_line(small_cnn_file: Path) -> None:
    """Fix (tools/cim_opt.py, ``main``): ``except ArgSpecParseError as error:
    print(f"cim-opt: error: invalid pass pipeline: {_one_line(error)}")``
    and return 1 (``from xdsl.utils.exceptions import ArgSpecParseError``).
    The same happens for an unquoted path, ``{target=/x/t.toml}``."""
    done = run_cim_opt(str(small_cnn_file), "-p", "cim-compile-static{target=tiny")
    assert done.returncode == 1
    one_error_line(done.stderr)


COMMON_OP_KEYS = {"id", "kind", "deps", "segment", "name"}
DOCUMENTED_OP_KEYS: dict[str, set[str]] = {
    "load": {"src", "dst", "bytes", "tensor", "arrays", "cores"},
    "store": {"src", "dst", "bytes", "tensor", "arrays", "cores"},
    "move": {"dir", "cores", "bytes", "tensor", "block"},
    "program": {"arrays", "rows", "cols", "weight", "k", "n"},
    "mvm": {
        "arrays",
        "vectors",
        "rows",
        "cols",
        "weight",
        "k",
        "n",
        "v",
        "input",
        "output",
        "feed",
        "in_bytes",
        "out_bytes",
        "local_bytes",
    },
    "vector": {
        "op",
        "element_ops",
        "cores",
        "in_bytes",
        "out_bytes",
        "inputs",
        "outputs",
        "attrs",
        "block",
    },
    "barrier": set(),
    "free": {"frees"},
}
OPTIONAL_OP_KEYS: dict[str, set[str]] = {
    "program": {"source", "feed", "in_bytes", "feed_arrays"},
    "mvm": {"feed_arrays", "out_to", "out_arrays"},
    "vector": {"in_from", "out_to", "in_arrays", "out_arrays"},
}
"""Keys an op may carry (absent: the documented default); ``allocs`` on all."""


def test_trace_keys_are_the_documented_ones() -> None:
    """Top-level, model, tensor and op keys as in docs/trace-format.md."""
    trace = json.loads(trace_text(compile_static(GROUPED_OK_AND_CHUNKED)))
    assert sorted(trace) == [
        "constants",
        "format",
        "model",
        "ops",
        "solver",
        "strategy",
        "target",
        "tensors",
        "version",
        "weights",
    ]
    assert trace["format"] == "cim-trace" and trace["version"] == 5
    assert trace["solver"] == []  # the static strategy solves nothing
    assert sorted(trace["model"]) == [
        "batch",
        "dims",
        "inputs",
        "name",
        "outputs",
        "source",
    ]
    assert trace["target"] == load_target("tiny").to_dict()
    for tensor in trace["tensors"]:
        assert sorted(tensor) == ["bytes", "dtype", "name", "shape"]
    for weight in trace["weights"]:
        assert sorted(weight) == ["groups", "k", "layout", "n", "name"]
    assert [op["id"] for op in trace["ops"]] == list(range(len(trace["ops"])))
    kinds: set[str] = set()
    for op in trace["ops"]:
        kinds.add(op["kind"])
        optional = {"allocs", *OPTIONAL_OP_KEYS.get(op["kind"], set())}
        assert set(op) - optional == (
            COMMON_OP_KEYS | DOCUMENTED_OP_KEYS[op["kind"]]
        ), op
        assert op["deps"] == sorted(set(op["deps"]))
        assert all(dep < op["id"] for dep in op["deps"])
    assert kinds == set(DOCUMENTED_OP_KEYS)


TIED_WEIGHT_TWO_LAYOUTS = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @main(%x: tensor<1x16xf32>) -> tensor<1x16xf32> {
    %a = cim_tile.mvm %x weight "w" layout kn tiling <k = 16, n = 16, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 2, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x16xf32> -> tensor<1x16xf32>
    %b = cim_tile.mvm %a weight "w" layout nk tiling <k = 16, n = 16, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 2, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x16xf32> -> tensor<1x16xf32>
    func.return %b : tensor<1x16xf32>
  }
}
"""


def test_weight_used_as_two_matrices_is_refused() -> None:
    with pytest.raises(CimError, match="'w' is used as two different matrices"):
        lower_tile_ir(TIED_WEIGHT_TWO_LAYOUTS)


BOOL_CONSTANT = """
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %m = cim_graph.constant dense<[true, false, true, false]> : tensor<4xi1>
    %z = cim_graph.constant dense<0.0> : tensor<f32>
    %y = cim_tile.vector segment 0 (%m, %x, %z) : (tensor<4xi1>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32> {
    ^bb0(%c: tensor<4xi1>, %a: tensor<4xf32>, %b: tensor<f32>):
      %r = cim_graph.where %c, %a, %b : (tensor<4xi1>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
      cim_tile.yield %r : tensor<4xf32>
    }
    func.return %y : tensor<4xf32>
  }
}
"""


def test_boolean_constants_are_written_as_zero_and_one() -> None:
    trace = json.loads(trace_text(lower_tile_ir(BOOL_CONSTANT)))
    masks = [c for c in trace["constants"] if c["dtype"] == "bool"]
    assert [m["values"] for m in masks] == [[1, 0, 1, 0]]
