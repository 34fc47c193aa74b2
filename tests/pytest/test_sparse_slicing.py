"""Ragged column tiles sliced, not padded (``cim-sparse-rows
{rearrangement=slice}``, ``#cim_tile.tiling``'s ``column_row_tiles``): each
column tile of a row gather on the arrays its own held rows fill. The
chunk plan on hand-made tilings and as a property, exact execution on every
strategy, fewer arrays and less work than padding, the model pricing it as
it is lowered, and the checks that refuse a trace whose slices drop rows."""

from __future__ import annotations

import dataclasses
import itertools
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from functional_models import two_layer_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from tampered_traces import assert_refused, trace_document
from test_model_exact import one_linear, priced_and_lowered

from cimflow.analysis.lower_bound import latency_lower_bound
from cimflow.analysis.sparse_tiling import compacted_rows, sliced_row_tiles
from cimflow.analysis.tile_mapping import Chunk, plan_chunks, whole_copy
from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import ProgramOp, parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, target_to_toml
from cimflow.lowering.rules import array_k_spans, chunk_column_row_tiles
from cimflow.lowering.weights import program_parts
from cimflow.tools import prune as cim_prune
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

STRATEGIES = (
    "cim-static-allocate",
    "cim-clsa-allocate",
    "cim-mlc-allocate",
    "cim-pimcomp-allocate",
    "cim-cmswitch",
)
DIGITS = Path(cim_prune.__file__).parent / "models" / "digits_mlp.onnx"


def _pipeline(rearrangement: str, strategy: str = "cim-static-allocate") -> str:
    return (
        f"convert-graph-to-tile,cim-sparse-rows{{rearrangement={rearrangement}}},"
        f"{strategy},convert-tile-to-meta"
    )


def ragged_mlp(
    path: Path, k: int, needs: list[int], outputs: int = 8, seed: int = 1
) -> Path:
    """A two-layer MLP whose first weight's column tiles (``outputs`` each:
    tiny's 8) need ``needs[c]`` of its ``k`` rows."""
    rng = np.random.default_rng(seed)
    first = rng.standard_normal((k, outputs * len(needs))).astype(np.float32)
    for tile, need in enumerate(needs):
        columns = slice(tile * outputs, (tile + 1) * outputs)
        first[rng.permutation(k)[: k - need], columns] = 0.0
    second = rng.standard_normal((outputs * len(needs), 8)).astype(np.float32)
    return two_layer_mlp(path, first, second)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """190 held rows (6 row tiles of 32) in the widest of 4 column tiles,
    the others 150, 40 and 10: 14 arrays sliced, 24 padded, on tiny's 8."""
    path = tmp_path_factory.mktemp("sliced") / "ragged.onnx"
    return ragged_mlp(path, 200, [190, 150, 40, 10])


def test_each_column_tile_takes_the_row_tiles_of_its_own_rows() -> None:
    matrix = np.zeros((1, 100, 3))
    matrix[0, :70, 0] = matrix[0, 80:90, 1] = matrix[0, 5:40, 2] = 1.0
    row_map = compacted_rows(matrix, 1)
    assert sliced_row_tiles(row_map, 32) == [3, 1, 2]
    tiling = TilingAttr.for_matrix(70, 3, 1, 32, 4, 4).sliced([3, 1, 2])
    assert tiling.arrays_per_copy == 6  # padded: 9
    assert [tiling.rows_of(c) for c in range(3)] == [70, 32, 64]
    assert whole_copy(tiling).merged_sums == 2 + 0 + 1
    assert TilingAttr.for_matrix(70, 3, 1, 32, 4, 4).sliced([3, 3, 3]).ragged is False


def test_a_sliced_copy_is_cut_by_whole_column_tiles_then_by_row_tiles() -> None:
    tiling = TilingAttr.for_matrix(300, 96, 1, 128, 128, 4).sliced([3, 1, 2])
    (whole,) = plan_chunks(tiling, 6)
    assert (whole.k1, whole.arrays, whole.columns) == (
        300,
        6,
        ((300, 32), (128, 32), (256, 32)),
    )
    assert whole.weight_elements == (300 + 128 + 256) * 32
    assert whole.merged_sums == 2 * 32 + 32
    four = plan_chunks(tiling, 4)
    assert [(c.n0, c.n1, c.arrays, c.k1) for c in four] == [
        (0, 64, 4, 300),
        (64, 96, 2, 256),
    ]
    assert four[1].columns == ()  # one column tile: a plain rectangle
    two = plan_chunks(tiling, 2)
    assert [(c.k0, c.k1, c.n0, c.arrays) for c in two] == [
        (0, 256, 0, 2),
        (256, 300, 0, 1),
        (0, 128, 32, 1),
        (0, 256, 64, 2),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=6),
    st.integers(1, 12),
    st.integers(1, 8),
)
def test_sliced_chunks_hold_every_column_tiles_rows_once(
    row_tiles: list[int], available: int, last_outputs: int
) -> None:
    """However few the arrays, the chunks of a sliced copy hold each column
    tile's rows ``[0, rows_of(c))`` exactly once, on no more arrays than
    available, on as many arrays in all as the copy takes."""
    rows, outputs = 4, 8
    if max(row_tiles) == min(row_tiles):
        row_tiles = [*row_tiles, max(row_tiles) + 1]
    k = max(row_tiles) * rows - 1
    n = outputs * (len(row_tiles) - 1) + last_outputs
    tiling = TilingAttr.for_matrix(k, n, 1, rows, outputs * 4, 4).sliced(row_tiles)
    chunks = plan_chunks(tiling, available)
    held: dict[int, list[tuple[int, int]]] = {}
    for chunk in chunks:
        assert chunk.arrays <= available
        spans = array_k_spans(tiling, chunk)
        assert len(spans) == chunk.arrays == sum(chunk_column_row_tiles(tiling, chunk))
        counts = iter(chunk_column_row_tiles(tiling, chunk))
        column, taken = chunk.n0 // outputs, 0
        for count in counts:
            held.setdefault(column, []).extend(
                span for (span,) in spans[taken : taken + count]
            )
            taken += count
            column += 1
    assert sum(c.arrays for c in chunks) == tiling.arrays_per_copy
    for column in range(len(row_tiles)):
        covered = sorted(held[column])
        assert covered[0][0] == 0 and covered[-1][1] == tiling.rows_of(column)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


def test_program_parts_of_a_sliced_chunk_take_its_arrays_in_order() -> None:
    hw = load_target("tiny")
    tiling = TilingAttr.for_matrix(300, 96, 1, 128, 128, 4).sliced([3, 1, 2])
    (chunk,) = plan_chunks(tiling, 6)
    for room in (10**6, 20_000, 9_000, 5_000):
        parts = program_parts(tiling, chunk, room, hw)
        offsets = [offset for offset, _ in parts]
        assert offsets == sorted(offsets)
        assert sum(part.arrays for _, part in parts) == chunk.arrays
        assert sum(part.weight_elements for _, part in parts) == chunk.weight_elements
        for offset, part in parts:
            assert isinstance(part, Chunk)
            assert offset + part.arrays <= chunk.arrays


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sliced_weights_verify_exactly_on_every_strategy(
    streamed: Path, strategy: str
) -> None:
    trace = module_trace(
        compile_model(streamed, "tiny", _pipeline("slice", strategy)), str(streamed)
    )
    (first,) = [w for w in trace.weights if w.name == "w1"]
    assert first.column_row_tiles == (6, 5, 2, 1)
    assert verify_trace(trace, streamed, "both").passed


def _macros(directory: Path, target: str, macros: int) -> str:
    """``target`` with ``macros`` arrays a core, as a TOML file."""
    hw = load_target(target)
    wider = dataclasses.replace(
        hw, hierarchy=dataclasses.replace(hw.hierarchy, arrays_per_core=macros)
    )
    path = directory / f"{target}_{macros}.toml"
    path.write_text(target_to_toml(wider), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("target", "k", "needs", "outputs", "tiles"),
    [
        ("ciminus", 2500, [2200, 300, 1100, 900], 4, (3, 1, 2, 1)),
        ("dynaplasia", 1000, [900, 200, 500], 40, (3, 1, 2)),
    ],
)
@pytest.mark.parametrize("strategy", ["cim-static-allocate", "cim-cmswitch"])
def test_sliced_weights_verify_exactly_on_larger_arrays(
    tmp_path: Path,
    target: str,
    k: int,
    needs: list[int],
    outputs: int,
    tiles: tuple[int, ...],
    strategy: str,
) -> None:
    """On 8 CIMinus macros the sliced copy of w1 (7 arrays) fits; on the
    target's 4 the dense w1 streams in bands of row tiles, reading its
    input once, where the sliced one would stream whole columns reading it
    four times, so ``cim-sparse-rows`` keeps it dense there."""
    path = ragged_mlp(tmp_path / "ragged.onnx", k, needs, outputs)
    pipeline = _pipeline("slice", strategy)
    chip = _macros(tmp_path, target, 8) if target == "ciminus" else target
    trace = module_trace(compile_model(path, chip, pipeline), str(path))
    assert [w.column_row_tiles for w in trace.weights if w.name == "w1"] == [tiles]
    assert verify_trace(trace, path, "both").passed
    if target == "ciminus":
        four = module_trace(compile_model(path, target, pipeline), str(path))
        assert [w.column_row_tiles for w in four.weights if w.name == "w1"] == [()]


def test_slicing_takes_fewer_arrays_and_less_work_than_padding(streamed: Path) -> None:
    runs: dict[str, Any] = {}
    for rearrangement in ("pad", "slice"):
        module = compile_model(streamed, "tiny", _pipeline(rearrangement))
        trace = module_trace(module)
        programmed = Counter[str]()
        for op in trace.ops:
            if isinstance(op, ProgramOp):
                programmed[op.weight] += sum(b - a for a, b in op.arrays)
        runs[rearrangement] = (simulate(trace).stats, programmed["w1"])
    (padded, padded_arrays), (sliced, sliced_arrays) = runs["pad"], runs["slice"]
    assert (padded_arrays, sliced_arrays) == (24, 14)
    assert sliced.makespan_cycles < padded.makespan_cycles
    for component in ("array", "program", "accumulate"):
        assert sliced.energy_pj[component] < padded.energy_pj[component], component


def test_the_bound_stays_below_a_sliced_run(streamed: Path) -> None:
    hw = load_target("tiny")
    tiled = compile_model(
        streamed,
        "tiny",
        "convert-graph-to-tile,cim-sparse-rows{rearrangement=slice}",
    )
    bound = latency_lower_bound(tiled, hw).cycles
    run = simulate(module_trace(compile_model(streamed, "tiny", _pipeline("slice"))))
    assert 0 < bound <= run.makespan


@pytest.mark.parametrize("bias", [False, True])
def test_a_streamed_sliced_weight_is_priced_as_it_is_lowered(
    tmp_path: Path, bias: bool
) -> None:
    """The dual-mode model's schedule of a sliced weight streamed through
    every array holds the programs, MVMs and partial-sum additions the
    lowering emits, each at the simulator's cycles."""
    path = tmp_path / "sliced.onnx"
    model = one_linear(3, 300, 40, bias=bias)
    weight = numpy_helper.to_array(model.graph.initializer[0]).copy()
    rng = np.random.default_rng(3)
    for tile, need in enumerate([280, 40, 150, 100, 10]):
        weight[rng.permutation(300)[: 300 - need], tile * 8 : (tile + 1) * 8] = 0.0
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "w"))
    onnx.save(model, path)
    sliced = "convert-graph-to-tile,cim-sparse-rows{rearrangement=slice}"
    priced, lowered, mvm = priced_and_lowered(path, "tiny", sliced)
    assert mvm.streamed and mvm.op.tiling.ragged
    assert priced == lowered


def test_a_pruned_model_file_is_sliced_and_exact(tmp_path: Path) -> None:
    """The committed digits MLP with half its 8 x 8 blocks pruned: its first
    weight's column tiles need 40, 32, 32 and 24 rows on tiny, 5 arrays
    sliced where padding takes 8."""
    path = tmp_path / "digits.onnx"
    args = [str(DIGITS), "--dim", "batch=4", "--pattern", "block:8x8"]
    assert cim_prune.main([*args, "--ratio", "0.5", "-o", str(path)]) == 0
    dims = {"batch": 4}
    trace = module_trace(
        compile_model(path, "tiny", _pipeline("slice"), dims), str(path)
    )
    (fc0,) = [w for w in trace.weights if w.name == "fc0.weight"]
    assert fc0.column_row_tiles == (2, 1, 1, 1)
    assert verify_trace(trace, path, "both").passed


def test_a_trace_whose_slices_drop_held_rows_fails(streamed: Path) -> None:
    document = trace_document(streamed, "tiny", _pipeline("slice"))
    (entry,) = [w for w in document["weights"] if w["name"] == "w1"]
    entry["column_row_tiles"] = [5, 5, 2, 1]
    assert_refused(document, streamed, "lists 6 arrays, but weight 'w1' k [0, 190)")
    for op in document["ops"]:  # the first column tile's ops on 5 arrays
        if op.get("weight") == "w1" and op.get("n") == [0, 8]:
            ((first, stop),) = op["arrays"]
            op["arrays"] = [[first, stop - 1]]
    assert_refused(
        document, streamed, "holds 190 rows in column tile 0, but the trace gives it 5"
    )
    entry["column_row_tiles"] = [6, 5, 2]
    assert_refused(document, streamed, "lists row tiles of 3 column tiles")
    entry["column_row_tiles"] = [6, 5, 2, 1]
    entry["groups"] = 2
    with pytest.raises(CimError, match="key 'column_row_tiles' needs 'rows' and one"):
        parse_trace(document, "t.json")


def test_a_bad_rearrangement_is_an_error(streamed: Path) -> None:
    with pytest.raises(CimError, match="rearrangement must be one of pad, slice"):
        compile_model(streamed, "tiny", _pipeline("fold"))


def test_the_compile_preset_slices_when_asked(streamed: Path) -> None:
    preset = "cim-compile{sparse_rows=true sparse_rearrangement=slice}"
    trace = module_trace(compile_model(streamed, "tiny", preset))
    assert [w.column_row_tiles for w in trace.weights if w.name == "w1"] == [
        (6, 5, 2, 1)
    ]
    padded = module_trace(
        compile_model(streamed, "tiny", "cim-compile{sparse_rows=true}")
    )
    assert all(not w.column_row_tiles for w in padded.weights)
    assert json.dumps([w.name for w in trace.weights]) == json.dumps(
        [w.name for w in padded.weights]
    )


@settings(max_examples=15, deadline=None)
@given(
    st.integers(40, 260),
    st.integers(9, 44),
    st.sampled_from(STRATEGIES),
    st.integers(0, 2**31),
)
def test_any_ragged_weight_verifies_exactly_sliced(
    k: int, n: int, strategy: str, seed: int
) -> None:
    """A first layer whose column tiles (the last one narrower when 8 does
    not divide ``n``) each need a random share of the rows, sliced and run
    on ``tiny`` by any strategy, streamed or not: the product is exact."""
    rng = np.random.default_rng(seed)
    first = rng.standard_normal((k, n)).astype(np.float32)
    for tile in range(-(-n // 8)):
        need = int(rng.integers(1, k))
        first[rng.permutation(k)[: k - need], tile * 8 : (tile + 1) * 8] = 0.0
    second = rng.standard_normal((n, 5)).astype(np.float32)
    with tempfile.TemporaryDirectory() as directory:
        path = two_layer_mlp(Path(directory) / "ragged.onnx", first, second)
        module = compile_model(path, "tiny", _pipeline("slice", strategy))
        trace = module_trace(module, str(path))
        assert verify_trace(trace, path, "exact").passed


def flexblock_mlp(path: Path, kept: list[int], seed: int = 5) -> Path:
    """A two-layer MLP whose first weight (4096 rows, 4 outputs per
    ``ciminus`` macro) keeps ``kept[t]`` random 32-row blocks in column tile
    ``t``, each 2:4 inside (CIMinus's FlexBlock)."""
    rng = np.random.default_rng(seed)
    outputs = 4
    first = np.zeros((4096, outputs * len(kept)), np.float32)
    for tile, blocks in enumerate(kept):
        for start in rng.permutation(4096 // 32)[:blocks] * 32:
            block = rng.standard_normal((32, outputs)).astype(np.float32)
            for group in range(0, 32, 4):
                for column in range(outputs):
                    block[group + rng.permutation(4)[:2], column] = 0.0
            first[start : start + 32, tile * outputs : (tile + 1) * outputs] = block
    second = rng.standard_normal((outputs * len(kept), 8)).astype(np.float32)
    return two_layer_mlp(path, first, second)


@pytest.mark.parametrize("strategy", ["cim-static-allocate", "cim-cmswitch"])
def test_an_intra_block_mapping_is_sliced_too(tmp_path: Path, strategy: str) -> None:
    """FlexBlock on 8 CIMinus macros: the IntraBlock mapping holds 2 of
    every 4 rows of the kept blocks, 1600, 320, 960 and 480 rows in the four
    tiles; sliced, they take 2 + 1 + 1 + 1 macros instead of 8, exactly,
    faster and for less energy. (On the target's 4 the held copy would
    stream, taking in the inputs of every dense row of its groups, more
    than the dense weight streamed in bands: it stays dense there.)"""
    path = flexblock_mlp(tmp_path / "flex.onnx", [100, 20, 60, 30])
    chip = _macros(tmp_path, "ciminus", 8)
    runs: dict[str, Any] = {}
    for rearrangement in ("pad", "slice"):
        module = compile_model(path, chip, _pipeline(rearrangement, strategy))
        trace = module_trace(module, str(path))
        (first,) = [w for w in trace.weights if w.name == "w1"]
        assert (first.rows, first.intra_block) == (1600, 4)
        assert verify_trace(trace, path, "both").passed
        runs[rearrangement] = (first.column_row_tiles, simulate(trace).stats)
    (padded_tiles, padded), (sliced_tiles, sliced) = runs["pad"], runs["slice"]
    assert (padded_tiles, sliced_tiles) == ((), (2, 1, 1, 1))
    assert sliced.makespan_cycles < padded.makespan_cycles
    assert sliced.total_energy_pj < padded.total_energy_pj
