"""IntraBlock mapping (``cim-sparse-rows`` on a target with cell
multiplexers, :func:`intra_block_rows`): each cell picks its input among its
row group's, so an N:M weight whose columns keep different rows shrinks to
N rows per group of M. The rule on hand-made and random masks, pruned
models verifying exactly, and the index and multiplexer energy the
simulator charges."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from functional_models import two_layer_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from tampered_traces import assert_refused, trace_document

from cimflow.analysis.sparse_tiling import (
    best_intra_block,
    compacted_rows,
    intra_block_driven_rows,
    intra_block_matrix,
    intra_block_rows,
    row_group_starts,
)
from cimflow.cimsim.engine import op_costs, op_parts, simulate
from cimflow.cimsim.trace import MvmOp, ProgramOp, parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, overridden
from cimflow.tools import prune as cim_prune
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

Array = np.ndarray[Any, Any]
RESNET = Path(cim_prune.__file__).parent / "models" / "resnet_tiny.onnx"
PIPELINE = "convert-graph-to-tile,cim-sparse-rows,{},convert-tile-to-meta"


def n_of_m(
    rng: np.random.Generator, groups: int, k: int, n: int, keep: int, m: int
) -> Array:
    """Random weights keeping ``keep`` of every ``m`` rows, each column its
    own rows (a shorter last group keeps what it has, up to ``keep``)."""
    matrix = rng.standard_normal((groups, k, n))
    for g in range(groups):
        for column in range(n):
            for first in range(0, k, m):
                size = min(m, k - first)
                dropped = rng.permutation(size)[min(keep, size) :]
                matrix[g, first + dropped, column] = 0.0
    return matrix


def product(
    matrix: Array, row_map: Array, m: int, x: Array, tile_columns: int = 0
) -> Array:
    """What the mapped arrays compute for inputs ``x`` (``[groups, K]``): each
    held cell times the input its multiplexer picks, each column tile's
    arrays driven with their own row groups' inputs."""
    held = intra_block_matrix(matrix, row_map)
    starts = row_group_starts(row_map, m, tile_columns)
    groups, k, n = matrix.shape
    width = tile_columns or n
    out = np.zeros((groups, n))
    for g in range(groups):
        for t, first in enumerate(range(0, n, width)):
            columns = slice(first, first + width)
            tile_starts = starts[g, t]
            cells = row_map[g, columns].T
            picks = np.where(cells >= 0, cells - tile_starts[:, None], 0)
            for s in range(m):
                rows = np.clip(tile_starts + s, 0, k - 1)
                out[g, columns] += x[g, rows] @ (held[g, :, columns] * (picks == s))
    return out


def test_a_2_of_4_mask_holds_two_rows_per_group() -> None:
    matrix = np.zeros((1, 8, 2))
    matrix[0, [0, 3, 5, 6], 0] = [1.0, 2.0, 3.0, 4.0]
    matrix[0, [1, 2, 4, 7], 1] = [5.0, 6.0, 7.0, 8.0]
    row_map = intra_block_rows(matrix, 4)
    # ceil(8 * 2 / 4) = 4 physical rows; each column keeps its own rows
    assert row_map.tolist() == [[[0, 3, 5, 6], [1, 2, 4, 7]]]
    assert row_group_starts(row_map, 4).tolist() == [[[0, 0, 4, 4]]]
    assert intra_block_matrix(matrix, row_map)[0].tolist() == [
        [1.0, 5.0],
        [2.0, 6.0],
        [3.0, 7.0],
        [4.0, 8.0],
    ]


def test_a_column_with_fewer_nonzeros_pads_its_cells() -> None:
    matrix = np.zeros((1, 4, 2))
    matrix[0, [1, 2], 0] = 1.0
    matrix[0, 3, 1] = 1.0
    row_map = intra_block_rows(matrix, 4)
    assert row_map.tolist() == [[[1, 2], [3, -1]]]
    assert intra_block_matrix(matrix, row_map)[0, 1, 1] == 0.0


def test_an_all_zero_weight_keeps_one_row() -> None:
    assert intra_block_rows(np.zeros((2, 6, 3)), 4).shape == (2, 3, 1)


def test_the_best_group_is_the_one_holding_fewest_rows() -> None:
    rng = np.random.default_rng(0)
    matrix = n_of_m(rng, 1, 64, 16, 1, 8)
    best = best_intra_block(matrix, 16)
    assert best is not None and (best[0], best[1].shape[2]) == (8, 8)
    assert best_intra_block(matrix, 4) is not None
    assert best_intra_block(matrix, 1) is None


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 40),
    st.integers(1, 9),
    st.sampled_from([2, 4, 8, 16]),
    st.integers(1, 16),
    st.integers(0, 2**31),
)
def test_an_n_m_weight_maps_to_n_rows_per_group_and_computes_the_same(
    groups: int, k: int, n: int, m: int, keep: int, seed: int
) -> None:
    """ciminus.md §10 #5: an N:M weight holds ceil(R N / M) physical rows
    when M divides R (N per group; a shorter last group up to N), and the
    multiplexed cells compute the dense product."""
    keep = min(keep, m)
    rng = np.random.default_rng(seed)
    matrix = n_of_m(rng, groups, k, n, keep, m)
    row_map = intra_block_rows(matrix, m)
    expected_rows = (k // m) * keep + min(keep, k % m)
    assert row_map.shape == (groups, n, expected_rows)
    if k % m == 0:
        assert row_map.shape[2] == math.ceil(k * keep / m)
    # every nonzero weight is held exactly once, in its own group
    held = row_map[row_map >= 0]
    assert held.size == int(np.count_nonzero(matrix))
    starts = row_group_starts(row_map, m)
    assert np.all((row_map < 0) | (row_map // m * m == starts[:, :1, :]))
    assert intra_block_driven_rows(row_map, m, k) == k
    x = rng.standard_normal((groups, k))
    got = product(matrix, row_map, m, x)
    want = np.einsum("gk,gkn->gn", x, matrix)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 2),
    st.integers(1, 6),
    st.integers(1, 4),
    st.sampled_from([(2, 4), (1, 4), (1, 2), (3, 8)]),
    st.sampled_from([1, 2, 3]),
    st.integers(0, 2**31),
)
def test_a_flexblock_weight_drops_its_zero_blocks_and_compacts_the_rest(
    groups: int,
    row_blocks: int,
    tiles: int,
    n_m: tuple[int, int],
    tile_columns: int,
    seed: int,
) -> None:
    """CIMinus's FlexBlock: blocks of ``2M`` rows by a column tile, zero at
    random (FullBlock), ``N:M`` inside the kept ones (IntraBlock). Each
    tile holds ``N`` rows per group of its kept blocks, padded to the
    longest tile, and drives only its kept blocks' inputs; never more rows
    than either mapping alone; the multiplexed cells compute the product."""
    keep, m = n_m
    rng = np.random.default_rng(seed)
    k, n = row_blocks * 2 * m, tiles * tile_columns
    matrix = n_of_m(rng, groups, k, n, keep, m)
    kept = rng.random((groups, row_blocks, tiles)) < 0.5
    for g, block, tile in zip(*np.nonzero(~kept), strict=True):
        rows = slice(block * 2 * m, (block + 1) * 2 * m)
        matrix[g, rows, tile * tile_columns : (tile + 1) * tile_columns] = 0.0
    row_map = intra_block_rows(matrix, m, tile_columns)
    most_blocks = int(kept.sum(axis=1).max())
    assert row_map.shape == (groups, n, max(1, most_blocks * 2 * keep))
    assert intra_block_driven_rows(row_map, m, k, tile_columns) == most_blocks * 2 * m
    assert row_map.shape[2] <= intra_block_rows(matrix, m).shape[2]
    assert row_map.shape[2] <= compacted_rows(matrix, tile_columns).shape[2]
    assert row_map[row_map >= 0].size == int(np.count_nonzero(matrix))
    x = rng.standard_normal((groups, k))
    got = product(matrix, row_map, m, x, tile_columns)
    want = np.einsum("gk,gkn->gn", x, matrix)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def two_of_four(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed ResNet pruned 2:4 along each column's reduction rows."""
    path = tmp_path_factory.mktemp("nm") / "resnet_2_4.onnx"
    args = [str(RESNET), "--pattern", "2:4", "-o", str(path)]
    assert cim_prune.main(args) == 0
    return path


def w1_dac_pj(trace: Any) -> float:
    """The DAC energy of the MVMs of weight ``w1``."""
    spent = op_costs(trace)
    return sum(
        spent[op.id].energy_pj["dac"]
        for op in trace.ops
        if isinstance(op, MvmOp) and op.weight == "w1"
    )


@pytest.fixture(scope="module")
def mlp_1_of_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x [6, 96] -> MatMul 1:4 -> Relu -> MatMul (dense)."""
    rng = np.random.default_rng(3)
    first = n_of_m(rng, 1, 96, 40, 1, 4)[0].astype(np.float32)
    second = rng.standard_normal((40, 8)).astype(np.float32)
    return two_layer_mlp(tmp_path_factory.mktemp("mlp") / "mlp_1_4.onnx", first, second)


@pytest.mark.parametrize(
    "strategy", ["cim-static-allocate", "cim-clsa-allocate", "cim-cmswitch"]
)
def test_a_2_of_4_model_maps_intra_block_and_verifies_exactly(
    two_of_four: Path, strategy: str
) -> None:
    """On ciminus (cells with 16-input multiplexers) every pruned weight
    whose rows divide into groups of 4 holds half its rows; the trace
    computes onnxruntime's result in both modes."""
    module = compile_model(two_of_four, "ciminus", PIPELINE.format(strategy))
    trace = module_trace(module, str(two_of_four))
    mapped = [w for w in trace.weights if w.intra_block]
    assert mapped
    for weight in mapped:
        assert weight.intra_block == 4
        if weight.k % 4 == 0:
            assert weight.rows == weight.k // 2
    assert verify_trace(trace, two_of_four, "both").passed


@pytest.fixture(scope="module")
def flexblock_resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed ResNet pruned FlexBlock: half of its 8 x 4 blocks
    zero, 2:4 inside the rest."""
    path = tmp_path_factory.mktemp("flex") / "resnet_flexblock.onnx"
    args = [str(RESNET), "--pattern", "block:8x4+2:4", "--ratio", "0.5"]
    assert cim_prune.main([*args, "-o", str(path)]) == 0
    return path


@pytest.mark.parametrize("strategy", ["cim-static-allocate", "cim-cmswitch"])
def test_a_flexblock_model_maps_nested_and_verifies_exactly(
    flexblock_resnet: Path, strategy: str
) -> None:
    """Every convolution of the FlexBlock ResNet drops the row groups of its
    arrays' zero blocks (it drives fewer rows than it has) and holds fewer
    rows than 2:4 alone would (half its rows); the trace computes
    onnxruntime's result in both modes."""
    module = compile_model(flexblock_resnet, "ciminus", PIPELINE.format(strategy))
    trace = module_trace(module, str(flexblock_resnet))
    convolutions = [w for w in trace.weights if w.layout == "oihw" and w.k >= 72]
    assert convolutions
    for weight in convolutions:
        assert weight.intra_block == 4
        assert weight.rows <= weight.driven // 2 < weight.k // 2
    assert verify_trace(trace, flexblock_resnet, "both").passed


def test_without_multiplexers_an_n_m_weight_stays_dense(two_of_four: Path) -> None:
    """Without multiplexers (tiny), or with the option off, no weight is an
    IntraBlock mapping; the row gather alone compacts nothing on tiny's
    8-output arrays (a row is zero in all 8 columns of 2:4 weights only by
    chance)."""
    for target, options in (("tiny", ""), ("ciminus", "{intra_block=false}")):
        pipeline = PIPELINE.format("cim-static-allocate").replace(
            "cim-sparse-rows", f"cim-sparse-rows{options}"
        )
        trace = module_trace(compile_model(two_of_four, target, pipeline))
        assert not any(w.intra_block for w in trace.weights)
        if target == "tiny":
            assert not any(w.rows for w in trace.weights)


def test_the_quantized_pipeline_matches_the_dense_mapping(mlp_1_of_4: Path) -> None:
    """On a digital target the multiplexed cells add the same integers the
    dense arrays add: both modes give the dense mapping's outputs."""
    static = PIPELINE.format("cim-static-allocate")
    dense_pipeline = static.replace("cim-sparse-rows,", "")
    mapped = module_trace(compile_model(mlp_1_of_4, "ciminus", static))
    assert [(w.rows, w.intra_block) for w in mapped.weights if w.rows] == [(24, 4)]
    dense = module_trace(compile_model(mlp_1_of_4, "ciminus", dense_pipeline))
    for mode in ("exact", "quantized"):
        (got,) = verify_trace(mapped, mlp_1_of_4, mode).mode(mode).outputs
        (want,) = verify_trace(dense, mlp_1_of_4, mode).mode(mode).outputs
        assert got.max_abs_error == pytest.approx(want.max_abs_error, abs=1e-5)


def test_indices_and_multiplexers_are_charged(mlp_1_of_4: Path) -> None:
    """A held row's program reads a ceil(log2 M)-bit index per weight, which
    streams in with the values (2 bits beside each 8-bit weight); each
    MVM routes one input plane per held weight and input pass through its
    multiplexer; the inputs stream, and are driven, as the dense weight's
    (each group's M inputs reach its held rows)."""
    hw = load_target("ciminus")
    static = PIPELINE.format("cim-static-allocate")
    trace = module_trace(compile_model(mlp_1_of_4, "ciminus", static))
    dense = module_trace(
        compile_model(mlp_1_of_4, "ciminus", static.replace("cim-sparse-rows,", ""))
    )
    costs = op_costs(trace)
    index = mux = 0.0
    indices = 0
    for op in trace.ops:
        weights_per_row = -(-getattr(op, "cols", 0) // hw.bit_slices)
        if isinstance(op, ProgramOp) and op.weight == "w1":
            arrays = sum(stop - start for start, stop in op.arrays)
            pj = (
                arrays * op.rows * weights_per_row * 2 * hw.energy.index_read_pj_per_bit
            )
            assert costs[op.id].energy_pj["index"] == pytest.approx(pj)
            index += pj
            # the indices come with the values: 2 bits a weight, 8-bit weights
            values = (op.k[1] - op.k[0]) * (op.n[1] - op.n[0])
            index_bytes = math.ceil(arrays * op.rows * weights_per_row * 2 / 8)
            assert op.in_bytes == values + index_bytes
            indices += index_bytes
        if isinstance(op, MvmOp) and op.weight == "w1":
            arrays = sum(stop - start for start, stop in op.arrays)
            selects = arrays * op.vectors * op.rows * weights_per_row * hw.input_passes
            pj = selects * hw.energy.mux_select_pj
            assert costs[op.id].energy_pj["mux"] == pytest.approx(pj)
            mux += pj
    assert index > 0 and mux > 0
    assert indices == 24 * 40 * 2 // 8  # held rows x outputs x 2 bits
    stats = simulate(trace).stats
    assert stats.energy_pj["index"] == pytest.approx(index)
    assert stats.energy_pj["mux"] == pytest.approx(mux)
    assert simulate(dense).stats.energy_pj["mux"] == 0.0

    assert w1_dac_pj(trace) == pytest.approx(w1_dac_pj(dense))

    def input_bytes(t: Any) -> int:
        return sum(
            op.in_bytes for op in t.ops if isinstance(op, MvmOp) and op.weight == "w1"
        )

    assert input_bytes(trace) == input_bytes(dense)


def flexblock_weight(rng: np.random.Generator) -> Array:
    """A [256, 16] weight in ciminus's column tiles of 4 outputs: each tile
    keeps 4 of its 8 blocks of 32 rows (a different 4 per tile, every block
    kept by some tile), 1:4 inside them."""
    matrix = n_of_m(rng, 1, 256, 16, 1, 4)[0]
    kept_blocks = ([0, 1, 2, 3], [4, 5, 6, 7], [0, 2, 4, 6], [1, 3, 5, 7])
    for tile, kept in enumerate(kept_blocks):
        for block in set(range(8)) - set(kept):
            matrix[block * 32 : (block + 1) * 32, tile * 4 : (tile + 1) * 4] = 0.0
    return matrix.astype(np.float32)


@pytest.fixture(scope="module")
def mlp_flexblock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x [6, 256] -> MatMul (FlexBlock: 32 x 4 blocks, 1:4 inside) -> Relu
    -> MatMul (dense)."""
    rng = np.random.default_rng(5)
    second = rng.standard_normal((16, 8)).astype(np.float32)
    path = tmp_path_factory.mktemp("flex") / "mlp_flexblock.onnx"
    return two_layer_mlp(path, flexblock_weight(rng), second)


def test_a_flexblock_weight_holds_its_kept_blocks_compacted(
    mlp_flexblock: Path,
) -> None:
    """Each 4-output array of the FlexBlock weight holds 1 row per group of
    its 4 kept blocks (32 rows, where the IntraBlock mapping alone, whose
    groups every tile shares, would hold 64, and the row gather more) and
    drives the inputs of those blocks' 128 rows, half the dense weight's
    DAC conversions; the trace computes onnxruntime's result in both modes
    and the dense mapping's quantized outputs."""
    static = PIPELINE.format("cim-static-allocate")
    mapped = module_trace(compile_model(mlp_flexblock, "ciminus", static))
    (weight,) = (w for w in mapped.weights if w.rows)
    assert (weight.name, weight.rows, weight.intra_block, weight.driven) == (
        "w1",
        32,
        4,
        128,
    )
    dense = module_trace(
        compile_model(mlp_flexblock, "ciminus", static.replace("cim-sparse-rows,", ""))
    )
    assert w1_dac_pj(mapped) == pytest.approx(w1_dac_pj(dense) / 2)
    assert verify_trace(mapped, mlp_flexblock, "both").passed
    (got,) = verify_trace(mapped, mlp_flexblock, "quantized").mode("quantized").outputs
    (want,) = verify_trace(dense, mlp_flexblock, "quantized").mode("quantized").outputs
    assert got.max_abs_error == pytest.approx(want.max_abs_error, abs=1e-5)


def static_trace_document(path: Path) -> dict[str, Any]:
    """The JSON trace of ``path`` compiled statically on ciminus."""
    return trace_document(path, "ciminus", PIPELINE.format("cim-static-allocate"))


def test_a_trace_whose_driven_rows_disagree_with_the_weights_fails(
    mlp_flexblock: Path,
) -> None:
    document = static_trace_document(mlp_flexblock)
    weight = next(w for w in document["weights"] if w.get("driven"))
    weight["driven"] = 256
    assert_refused(document, mlp_flexblock, "drives the inputs of 128 rows")
    weight["driven"] = 16  # fewer than the 32 rows held
    with pytest.raises(CimError, match=r"'driven' \(16\) .* between 'rows' \(32\)"):
        parse_trace(document, "t.json")
    weight["driven"] = 128
    del weight["intra_block"]
    with pytest.raises(CimError, match=r"'driven' .* needs 'intra_block'"):
        parse_trace(document, "t.json")


def test_a_trace_whose_row_group_disagrees_with_the_weights_fails(
    mlp_1_of_4: Path,
) -> None:
    document = static_trace_document(mlp_1_of_4)
    weight = next(w for w in document["weights"] if w.get("intra_block"))
    weight["intra_block"] = 2  # a pair keeps up to 1: 48 rows, not the 24 held
    assert_refused(document, mlp_1_of_4, "rows per group")
    weight["intra_block"] = 6
    with pytest.raises(CimError, match=r"'intra_block' .* must be a power of two"):
        parse_trace(document, "t.json")
    del weight["rows"]
    weight["intra_block"] = 4
    with pytest.raises(CimError, match=r"'intra_block' .* needs 'rows'"):
        parse_trace(document, "t.json")


def test_a_target_with_a_bad_multiplexer_width_is_refused(tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "hw_targets" / "ciminus.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        source.read_text(encoding="utf-8").replace(
            "mux_inputs = 16", "mux_inputs = 12"
        ),
        encoding="utf-8",
    )
    with pytest.raises(CimError, match=r"'array\.mux_inputs' must be 0, 1 or a power"):
        load_target(str(bad))


def test_the_multiplexers_delay_adds_to_each_input_pass(mlp_1_of_4: Path) -> None:
    """``array.mux_delay_cycles`` (CIMinus's ``t_mux``) lengthens every input
    pass of an MVM whose cells pick their inputs: its 8 input planes take
    ``8 x d`` more cycles per vector (interval and latency alike), so its
    compute grows by ``passes x vectors x 8 x d``; a dense MVM's does not."""
    trace = module_trace(
        compile_model(mlp_1_of_4, "ciminus", PIPELINE.format("cim-static-allocate"))
    )
    weights = {w.name: w for w in trace.weights if w.rows}
    with overridden(["array.mux_delay_cycles=3"]):
        slow = load_target("ciminus")
    fast = load_target("ciminus")
    checked = {True: 0, False: 0}
    for op in trace.ops:
        if not isinstance(op, MvmOp):
            continue
        weight = weights.get(op.weight)
        grown = (
            op_parts(slow, op, weight)[0].cycles - op_parts(fast, op, weight)[0].cycles
        )
        mapped = weight is not None and weight.intra_block > 0
        assert grown == (op.vectors * 8 * 3 if mapped else 0)  # one word-line pass
        checked[mapped] += 1
    assert checked[True] and checked[False]


def test_a_multiplexer_delay_needs_multiplexers() -> None:
    with (
        pytest.raises(CimError, match=r"'array\.mux_delay_cycles' \(2\) needs input"),
        overridden(["array.mux_delay_cycles=2"]),
    ):
        load_target("tiny")
