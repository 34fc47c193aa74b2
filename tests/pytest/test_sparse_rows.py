"""Arrays that hold only the weight rows their columns need
(``cim-sparse-rows``, :func:`compacted_rows`): the rule on hand-made
matrices, pruned models verifying exactly on every strategy, fewer cycles
and less energy in the simulator, and the checks that catch a trace whose
held rows do not match the weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from functional_models import two_layer_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from tampered_traces import assert_refused, trace_document
from xdsl.context import Context

from cimflow.analysis.sparse_tiling import (
    compacted_matrix,
    compacted_rows,
    gathered_rows,
    row_index_block,
)
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import op_costs, simulate
from cimflow.cimsim.trace import MoveOp, ProgramOp, parse_trace
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target
from cimflow.passes.cim_sparse_rows import CimSparseRowsPass
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools import prune as cim_prune
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

Array = np.ndarray[Any, Any]
RESNET = Path(cim_prune.__file__).parent / "models" / "resnet_tiny.onnx"


def _pipeline(strategy: str = "cim-static-allocate") -> str:
    return f"convert-graph-to-tile,cim-sparse-rows,{strategy},convert-tile-to-meta"


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The committed ResNet pruned to each pattern (half the blocks)."""
    directory = tmp_path_factory.mktemp("pruned")
    paths: dict[str, Path] = {}
    for pattern in ("channel", "row", "block:8x8", "2:4", "unstructured"):
        path = directory / f"{pattern.replace(':', '_')}.onnx"
        args = [str(RESNET), "--pattern", pattern, "-o", str(path)]
        if pattern != "2:4":
            args += ["--ratio", "0.5"]
        assert cim_prune.main(args) == 0
        paths[pattern] = path
    return paths


def test_rows_no_column_of_a_tile_needs_are_dropped() -> None:
    matrix = np.zeros((1, 6, 4))
    matrix[0, [0, 3], 0:2] = 1.0  # tile 0 (outputs 0-1) needs rows 0 and 3
    matrix[0, [1, 2, 5], 2] = 1.0  # tile 1 (outputs 2-3) needs rows 1, 2, 5
    row_map = compacted_rows(matrix, 2)
    assert row_map.tolist() == [[[0, 3, -1], [1, 2, 5]]]
    held = compacted_matrix(matrix, row_map, 2)
    assert held.shape == (1, 3, 4)
    assert held[0, :, 0].tolist() == [1.0, 1.0, 0.0]  # rows 0, 3, padding
    assert held[0, :, 2].tolist() == [1.0, 1.0, 1.0]


def test_an_all_zero_tile_keeps_one_row() -> None:
    assert compacted_rows(np.zeros((1, 5, 2)), 1).shape == (1, 2, 1)


def test_held_rows_in_aligned_blocks_are_indexed_by_block() -> None:
    # channels of 9 rows (a 3 x 3 window) kept whole: 9 rows an index
    channels = np.zeros((1, 36, 2))
    channels[0, 9:18, :] = channels[0, 27:36, 0] = 1.0
    assert row_index_block(compacted_rows(channels, 2), 36) == 9
    # two kept runs of 4 rows from multiples of 4 in different tiles, the
    # last cut short at row K = 22: blocks of 4
    blocks = np.zeros((1, 22, 2))
    blocks[0, 4:8, 0] = blocks[0, 16:22, 1] = blocks[0, 8:16, 1] = 1.0
    assert row_index_block(compacted_rows(blocks, 1), 22) == 4
    # a run starting off the grid: row by row
    blocks[0, 3, 0] = 1.0
    assert row_index_block(compacted_rows(blocks, 1), 22) == 1
    # a tile with no kept row holds the placeholder row 0, which any block
    # holds too
    empty_tile = np.zeros((1, 16, 2))
    empty_tile[0, 8:16, 1] = 1.0
    assert row_index_block(compacted_rows(empty_tile, 1), 16) == 8


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 16), st.integers(2, 12), st.integers(1, 3), st.integers(0, 2**31))
def test_an_index_block_divides_every_held_run(
    block: int, blocks: int, tiles: int, seed: int
) -> None:
    """Whole blocks of ``block`` rows kept at random: the index block is a
    multiple of ``block`` and names every held run exactly."""
    rng = np.random.default_rng(seed)
    k = block * blocks
    kept = rng.random((blocks, tiles)) < 0.5
    matrix = np.repeat(kept, block, axis=0)[None].astype(float)
    row_map = compacted_rows(matrix, 1)
    found = row_index_block(row_map, k)
    assert found == 1 or found % block == 0
    for held in row_map[0]:
        rows = held[held >= 0]
        if rows.size > 1 or rows.tolist() != [0]:
            assert all(row % found == 0 for row in rows if row - 1 not in rows)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(0, 2**31),
)
def test_the_held_rows_compute_the_same_product(
    groups: int, k: int, n: int, outputs: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((groups, k, n)) * (rng.random((groups, k, n)) < 0.3)
    x = rng.standard_normal((groups, k))
    row_map = compacted_rows(matrix, outputs)
    held = compacted_matrix(matrix, row_map, outputs)
    for g in range(groups):
        for column in range(n):
            rows = row_map[g, column // outputs]
            real = rows >= 0
            got = float(held[g, real, column] @ x[g, rows[real]])
            assert got == pytest.approx(float(matrix[g, :, column] @ x[g]))
            assert not held[g, ~real, column].any()


@pytest.mark.parametrize("pattern", ["channel", "row", "block:8x8"])
@pytest.mark.parametrize(
    "strategy", ["cim-static-allocate", "cim-clsa-allocate", "cim-cmswitch"]
)
@pytest.mark.parametrize("target", ["tiny", "dynaplasia"])
def test_pruned_models_verify_exactly(
    pruned: dict[str, Path], pattern: str, strategy: str, target: str
) -> None:
    path = pruned[pattern]
    module = compile_model(path, target, _pipeline(strategy))
    trace = module_trace(module, str(path))
    assert any(w.rows for w in trace.weights)
    assert verify_trace(trace, path, "both").passed


@pytest.mark.parametrize("pattern", ["2:4", "unstructured"])
def test_zeros_an_arrays_columns_do_not_share_stay_dense(
    pruned: dict[str, Path], pattern: str
) -> None:
    trace = module_trace(compile_model(pruned[pattern], "tiny", _pipeline()))
    assert not any(w.rows for w in trace.weights)


def test_held_rows_are_faster_and_cheaper(pruned: dict[str, Path]) -> None:
    path = pruned["channel"]
    dense = simulate(module_trace(compile_model(path, "tiny"))).stats
    held = simulate(module_trace(compile_model(path, "tiny", _pipeline()))).stats
    assert held.makespan_cycles < dense.makespan_cycles
    for component in ("array", "adc", "dac", "program"):
        assert held.energy_pj[component] < dense.energy_pj[component], component


def test_held_rows_read_their_indices(pruned: dict[str, Path]) -> None:
    """The held rows' inputs are gathered by indices, read when an array is
    programmed and streamed in with the values, once for the column tiles
    that hold the same rows (a channel pattern's all do). A channel pattern
    keeps whole channels, the kh*kw rows of each from a multiple of kh*kw,
    so an index names a block of them (``index_block``, a multiple of 9 for
    a 3 x 3 convolution): ``ceil(held / B)`` indices of ``ceil(log2
    ceil(K / B))`` bits. On ciminus (0.1 pJ a bit) the simulator charges
    exactly that as the ``index`` component, and nothing for dense
    weights."""
    path = pruned["channel"]
    hw = load_target("ciminus")
    trace = module_trace(compile_model(path, "ciminus", _pipeline()))
    compacted = {w.name: (w.k, w.rows_per_index) for w in trace.weights if w.rows}
    assert compacted
    kernels = {
        init.name: tuple(init.dims[2:]) for init in onnx.load(path).graph.initializer
    }
    three_by_three = [name for name in compacted if kernels.get(name) == (3, 3)]
    assert three_by_three
    for name in three_by_three:
        assert compacted[name][1] % 9 == 0, name
    costs = op_costs(trace)
    expected = 0.0
    for op in trace.ops:
        if not isinstance(op, ProgramOp) or op.source != "weight":
            continue
        arrays = sum(stop - start for start, stop in op.arrays)
        k, block = compacted.get(op.weight, (0, 1))
        positions = -(-k // block)
        bits = math.ceil(math.log2(positions)) if positions > 1 else 0
        per_array = -(-op.rows // block) * bits
        pj = arrays * per_array * hw.energy.index_read_pj_per_bit
        assert costs[op.id].energy_pj.get("index", 0.0) == pytest.approx(pj)
        expected += pj
        if op.in_bytes:  # one index list a row tile, shared by its 4-output tiles
            values = (op.k[1] - op.k[0]) * (op.n[1] - op.n[0])
            lists = arrays // -(-(op.n[1] - op.n[0]) // 4)
            assert op.in_bytes == values + math.ceil(lists * per_array / 8)
    assert expected > 0
    stats = simulate(trace).stats
    assert stats.energy_pj["index"] == pytest.approx(expected)
    assert stats.energy_pj["index"] < stats.energy_pj["program"]
    dense = simulate(module_trace(compile_model(path, "ciminus"))).stats
    assert dense.energy_pj["index"] == 0.0


def test_a_trace_whose_held_rows_disagree_with_the_weights_fails(
    pruned: dict[str, Path],
) -> None:
    path = pruned["channel"]
    document = trace_document(path, "tiny", _pipeline())
    held = next(w for w in document["weights"] if w.get("rows"))
    held["rows"] += 1
    assert_refused(document, path, f"needs {held['rows'] - 1} rows per group")
    held["rows"] = held["k"] + 1
    with pytest.raises(CimError, match=r"key 'rows' .* exceeds 'k'"):
        parse_trace(document, "t.json")


def test_weights_alike_but_for_their_index_blocks_cost_apart(
    pruned: dict[str, Path],
) -> None:
    """Two weights of one shape whose programs look the same (here: nothing
    streamed with them, so that no byte count tells them apart): each
    program is charged its own weight's indices (the simulator's cost cache
    tells them apart by the index block too)."""
    path = pruned["channel"]
    document = trace_document(path, "ciminus", _pipeline())
    nines = [w for w in document["weights"] if w.get("index_block") == 9]
    alike = [w for w in nines if (w["k"], w["n"], w["rows"]) == (72, 8, 36)]
    assert len(alike) >= 2
    alike[0]["index_block"] = 3  # whole blocks of 9 are whole blocks of 3
    for op in document["ops"]:
        if op["kind"] == "program" and op["weight"] in {w["name"] for w in alike}:
            op["in_bytes"] = 0
    trace = parse_trace(document, "t.json")
    costs = op_costs(trace)
    pj = load_target("ciminus").energy.index_read_pj_per_bit
    bits = {alike[0]["name"]: 12 * 5, alike[1]["name"]: 4 * 3}  # 36 rows, K = 72
    seen: set[str] = set()
    for op in trace.ops:
        if isinstance(op, ProgramOp) and op.weight in bits:
            arrays = sum(stop - start for start, stop in op.arrays)
            expected = arrays * bits[op.weight] * pj
            assert costs[op.id].energy_pj["index"] == pytest.approx(expected)
            seen.add(op.weight)
    assert seen == set(bits)


def test_a_trace_whose_index_blocks_split_held_runs_fails(
    pruned: dict[str, Path],
) -> None:
    """Indices naming blocks of more rows than the held runs are whole
    blocks of do not hold those rows: the functional check refuses them."""
    path = pruned["channel"]
    document = trace_document(path, "tiny", _pipeline())
    indexed = [w for w in document["weights"] if w.get("index_block")]
    assert indexed
    assert verify_trace(parse_trace(document, "t.json"), path, "exact").passed
    wrong = indexed[0]
    wrong["index_block"] += 1  # a block its own size does not divide
    assert_refused(document, path, "are not whole blocks of")
    wrong["intra_block"] = 4
    with pytest.raises(CimError, match=r"'index_block' .* needs 'rows' without"):
        parse_trace(document, "t.json")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_saving": 1.0}, "min_saving must be in [0, 1), got 1.0"),
        ({"layers": ("nope",)}, "no MVM of ONNX node 'nope'"),
    ],
)
def test_bad_options_are_errors(
    pruned: dict[str, Path], options: dict[str, Any], message: str
) -> None:
    module = import_onnx(pruned["channel"])
    ConvertGraphToTilePass("tiny").apply(Context(), module)
    with pytest.raises(CimError, match=message.replace("[", r"\[").replace(")", r"\)")):
        CimSparseRowsPass(**options).apply(Context(), module)


def test_a_module_without_a_model_file_is_an_error(pruned: dict[str, Path]) -> None:
    module = import_onnx(pruned["channel"])
    ConvertGraphToTilePass("tiny").apply(Context(), module)
    del module.attributes["cim_graph.source"]
    with pytest.raises(CimError, match="names no model file"):
        CimSparseRowsPass().apply(Context(), module)


@pytest.mark.parametrize("options", ["", "{rearrangement=slice}"])
def test_a_dense_model_maps_exactly_as_without_the_pass(options: str) -> None:
    # CIMinus's invariant: no zeros, no sparse mapping, the same latency and
    # energy (here: the same trace, byte for byte), padded or sliced
    dense = build_trace(compile_model(RESNET, "ciminus"))
    pipeline = _pipeline().replace("cim-sparse-rows", f"cim-sparse-rows{options}")
    mapped = build_trace(compile_model(RESNET, "ciminus", pipeline))
    assert json.dumps(dense, sort_keys=True) == json.dumps(mapped, sort_keys=True)


def test_the_compile_preset_runs_the_pass(pruned: dict[str, Path]) -> None:
    path = pruned["channel"]
    preset = build_trace(
        compile_model(path, "tiny", "cim-compile{strategy=cmswitch sparse_rows=true}")
    )
    explicit = build_trace(compile_model(path, "tiny", _pipeline("cim-cmswitch")))
    assert json.dumps(preset, sort_keys=True) == json.dumps(explicit, sort_keys=True)


def test_a_grouped_compacted_weight_verifies_exactly(tmp_path: Path) -> None:
    """A grouped convolution (2 groups of 8 -> 8 channels, 3 x 3: 72 rows a
    group, so one group per array of tiny's 32 rows) with half its input
    channels pruned: each array drives only its own group's held rows, and
    the product is exact."""
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    weight[:, ::2] = (
        0.0  # every other input channel of each group: rows no column reads
    )
    weight *= rng.random(weight.shape) < 0.7
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node(
                "Conv", ["x", "w"], ["y"], name="grouped", group=2, pads=[1, 1, 1, 1]
            )
        ],
        "grouped",
        [
            onnx.helper.make_tensor_value_info(
                "x", onnx.TensorProto.FLOAT, [1, 16, 6, 6]
            )
        ],
        [
            onnx.helper.make_tensor_value_info(
                "y", onnx.TensorProto.FLOAT, [1, 16, 6, 6]
            )
        ],
        [onnx.numpy_helper.from_array(weight, "w")],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)]
    )
    path = tmp_path / "grouped.onnx"
    onnx.save(model, path)
    trace = module_trace(compile_model(path, "tiny", _pipeline()), str(path))
    (info,) = trace.weights
    assert info.groups == 2 and 0 < info.rows < 72
    assert verify_trace(trace, path, "both").passed


def test_tiles_whose_rows_fit_the_longest_share_one_list() -> None:
    """Tiles of 2 outputs: when the rows the tiles need fit in as many as
    the longest holds, every tile holds them all (one index list); when
    not, each keeps its own, padded."""
    matrix = np.zeros((1, 6, 4))
    matrix[0, [0, 2, 4], 0] = 1.0
    matrix[0, [0, 2], 2] = 1.0
    assert compacted_rows(matrix, 2).tolist() == [[[0, 2, 4], [0, 2, 4]]]
    matrix[0, 2, 2], matrix[0, 1, 3] = 0.0, 1.0  # tile 1 needs rows 0 and 1
    assert compacted_rows(matrix, 2).tolist() == [[[0, 2, 4], [0, 1, -1]]]


def input_moved(path: Path, pipeline: str) -> int:
    """Bytes of the model input ``x`` moved into the cores on ciminus."""
    trace = module_trace(compile_model(path, "ciminus", pipeline))
    return sum(
        op.nbytes for op in trace.ops if isinstance(op, MoveOp) and op.tensor == "x"
    )


@pytest.mark.parametrize("ragged", [False, True])
def test_a_core_takes_in_the_union_of_the_rows_its_tiles_gather(
    ragged: bool, tmp_path: Path
) -> None:
    """A [128, 8] weight on ciminus (two 4-output tiles in one macro core):
    each tile holds 64 rows. When both keep the same rows, only those
    inputs stream in (half the dense weight's); when one keeps rows 0-63
    and the other 64-127, the core takes in all 128 (``input_rows``), as
    many as dense, though each array still holds 64."""
    rng = np.random.default_rng(11)
    first = rng.standard_normal((128, 8)).astype(np.float32)
    first[64:, :4] = 0.0
    first[64 if not ragged else 0 : 128 if not ragged else 64, 4:] = 0.0
    second = rng.standard_normal((8, 3)).astype(np.float32)
    path = two_layer_mlp(tmp_path / "m.onnx", first, second)
    row_map = compacted_rows(first[None], 4)
    assert row_map.shape[2] == 64
    assert gathered_rows(row_map, 0, 128) == (128 if ragged else 64)
    tiled = compile_model(
        path, "ciminus", "convert-graph-to-tile,cim-sparse-rows{intra_block=false}"
    )
    (mvm,) = (
        op
        for op in tiled.walk()
        if isinstance(op, cim_tile.MVMOp) and op.weight.data == "w1"
    )
    gather = "convert-graph-to-tile,cim-sparse-rows{intra_block=false},"
    gather += "cim-static-allocate,convert-tile-to-meta"
    dense = input_moved(path, "cim-compile{strategy=static target=ciminus}")
    assert dense == 6 * 128
    if ragged:
        assert mvm.gathered_input_rows == 128 and mvm.input_rows is not None
        assert input_moved(path, gather) == dense
    else:
        assert mvm.gathered_input_rows == 64 and mvm.input_rows is None
        assert input_moved(path, gather) == dense // 2
    module = compile_model(path, "ciminus", gather)
    assert verify_trace(module_trace(module), path, "exact").passed


@pytest.mark.parametrize(
    ("k", "zero_rows", "compacted"), [(2048, 205, False), (1100, 110, True)]
)
def test_a_row_gather_is_kept_only_where_it_pays(
    k: int, zero_rows: int, compacted: bool, tmp_path: Path
) -> None:
    """On ciminus (1024-row arrays of 4 outputs) dropping 10% of a weight's
    rows pays when it halves the arrays (1100 -> 990 rows: one row tile,
    not two) for 21% more bytes (an 11-bit index beside each row's 4);
    not when both take two and the 1843 held rows with their indices
    program from DRAM no faster than the 2048 dense ones."""
    rng = np.random.default_rng(2)
    first = rng.standard_normal((k, 4)).astype(np.float32)
    first[:zero_rows] = 0.0
    second = rng.standard_normal((4, 3)).astype(np.float32)
    path = two_layer_mlp(tmp_path / "m.onnx", first, second)
    tiled = compile_model(path, "ciminus", "convert-graph-to-tile,cim-sparse-rows")
    (mvm,) = (
        op
        for op in tiled.walk()
        if isinstance(op, cim_tile.MVMOp) and op.weight.data == "w1"
    )
    assert (mvm.compacted_from is not None) == compacted
