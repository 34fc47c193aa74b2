"""Sparsity in the arrays' view: pruning makes the pattern it is asked for,
detection finds it again, and ``cim-prune`` writes models of every pattern
that still compute what onnxruntime computes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimflow.analysis.sparse_tiling import sparse_tiling
from cimflow.analysis.sparsity import (
    Coarse,
    Fine,
    Pattern,
    detect,
    for_weight,
    group_counts,
    holds,
    parse_pattern,
    prune,
    zero_blocks,
)
from cimflow.errors import CimError
from cimflow.tools import cim_opt, zoo
from cimflow.tools import prune as prune_tool
from cimflow.tools.cim_verify import verify_model
from cimflow.tools.prune import PruneRequest, prune_model, report, weight_matrices

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"


def share(mask: np.ndarray) -> float:
    return int(np.count_nonzero(mask)) / mask.size


def weights(groups: int, k: int, n: int, seed: int = 0) -> np.ndarray:
    """Seeded normal weights: none of them zero."""
    return np.random.default_rng(seed).normal(size=(groups, k, n))


@pytest.mark.parametrize(
    ("spec", "ratio", "rows"),
    [
        ("row", 0.3, None),
        ("column", 0.6, None),
        ("channel", 0.5, 9),
        ("block:32x32", 0.5, None),
        ("block:8x4", 0.7, None),
        ("block:48x24", 0.4, None),
        ("block:1x3", 0.5, None),
        ("2:4", 0.0, None),
        ("1:8", 0.0, None),
        ("unstructured", 0.8, None),
        ("block:32x32+2:4", 0.5, None),
        ("block:16x32+1:8", 0.75, None),
        ("column+4:8", 0.5, None),
    ],
)
def test_detection_finds_the_pattern_pruning_made(
    spec: str, ratio: float, rows: int | None
) -> None:
    pattern = parse_pattern(spec, rows)
    matrix = prune(weights(2, 288, 96), pattern, ratio, fine_ratio=0.5)
    found = detect(matrix, rows)
    assert found.pattern == for_weight(pattern, rows)
    if pattern.coarse is not None:
        blocks = zero_blocks(matrix, pattern.coarse)
        assert found.blocks_zero == pytest.approx(share(blocks))
    assert found.zeros == pytest.approx(share(matrix == 0))


def test_the_simplest_description_wins() -> None:
    """Each group of 4 keeping 1 weight also has a zero pair and a 1:2 pair;
    one pattern describes it, so detection says 1:4. A block of a size
    that is no power of two and a fine pattern inside it is described by
    the largest power-of-two block it holds."""
    assert detect(prune(weights(1, 64, 32), parse_pattern("1:4"), 0)).pattern == (
        Pattern(None, Fine("nm", 1, 4))
    )
    mixed = prune(weights(1, 240, 96), parse_pattern("block:48x24+2:8"), 0.3)
    assert detect(mixed).pattern == Pattern(Coarse("block", 16, 8), Fine("nm", 2, 8))


def test_stray_zeros_do_not_hide_the_structure() -> None:
    """Weights a quantizer rounded to zero (0.5% of the kept ones) are not a
    pattern; dense weights are dense."""
    matrix = prune(weights(1, 256, 128), parse_pattern("block:16x16"), 0.5)
    rng = np.random.default_rng(1)
    kept = np.flatnonzero(matrix)
    matrix.reshape(-1)[rng.choice(kept, kept.size // 200, replace=False)] = 0
    assert detect(matrix).pattern == Pattern(Coarse("block", 16, 16))
    assert detect(weights(1, 64, 64)).pattern == Pattern()
    assert detect(weights(1, 64, 64)).zeros == 0.0


shapes = st.tuples(st.integers(1, 2), st.integers(1, 96), st.integers(1, 48))
powers = st.sampled_from([1, 2, 4, 8, 16, 32])


@settings(max_examples=60, deadline=None)
@given(
    shape=shapes,
    rows=powers,
    cols=powers,
    ratio=st.floats(0, 1),
    criterion=st.sampled_from(["l1", "l2"]),
    seed=st.integers(0, 9),
)
def test_coarse_pruning_zeroes_the_blocks_of_least_norm(
    shape: tuple[int, int, int],
    rows: int,
    cols: int,
    ratio: float,
    criterion: str,
    seed: int,
) -> None:
    original = weights(*shape, seed=seed)
    coarse = Coarse("block", rows, cols)
    pruned = prune(original, Pattern(coarse), ratio, criterion)  # type: ignore[arg-type]
    dropped = zero_blocks(pruned, coarse)
    assert int(dropped.sum()) == math.floor(ratio * dropped.size + 0.5)
    groups, k, n = shape
    padded = np.zeros((groups, -(-k // rows) * rows, -(-n // cols) * cols))
    padded[:, :k, :n] = np.abs(original) if criterion == "l1" else original**2
    norms = padded.reshape(groups, -1, rows, padded.shape[2] // cols, cols).sum(
        axis=(2, 4)
    )
    if dropped.any() and (~dropped).any():
        assert norms[dropped].max() <= norms[~dropped].min()
    kept = np.repeat(np.repeat(~dropped, rows, 1), cols, 2)[:, :k, :n]
    assert np.array_equal(pruned[kept], original[kept])


@settings(max_examples=60, deadline=None)
@given(
    shape=shapes,
    nm=st.sampled_from([(1, 2), (1, 4), (2, 4), (3, 4), (2, 8), (4, 16)]),
    seed=st.integers(0, 9),
)
def test_n_m_keeps_the_n_largest_of_every_m_rows(
    shape: tuple[int, int, int], nm: tuple[int, int], seed: int
) -> None:
    keep, group = nm
    original = weights(*shape, seed=seed)
    pruned = prune(original, Pattern(None, Fine("nm", keep, group)), 0)
    counts, sizes = group_counts(pruned != 0, group)
    assert np.array_equal(
        counts, np.broadcast_to(np.minimum(sizes, keep)[None, :, None], counts.shape)
    )
    for g in range(shape[0]):
        for start in range(0, shape[1], group):
            block = np.abs(original[g, start : start + group])
            kept = pruned[g, start : start + group] != 0
            for column in range(shape[2]):
                if (~kept[:, column]).any():
                    assert block[kept[:, column], column].min() >= (
                        block[~kept[:, column], column].max()
                    )


@settings(max_examples=40, deadline=None)
@given(shape=shapes, ratio=st.floats(0, 1), seed=st.integers(0, 9))
def test_unstructured_pruning_zeroes_the_smallest_magnitudes(
    shape: tuple[int, int, int], ratio: float, seed: int
) -> None:
    original = weights(*shape, seed=seed)
    pruned = prune(original, Pattern(None, Fine("unstructured")), ratio)
    zero = pruned == 0
    assert int(zero.sum()) == math.floor(ratio * original.size + 0.5)
    if zero.any() and (~zero).any():
        assert np.abs(original[zero]).max() <= np.abs(original[~zero]).min()


def test_patterns_print_as_they_parse() -> None:
    for text in [
        "row",
        "column",
        "block:32x8",
        "2:4",
        "unstructured",
        "block:4x4+1:2",
        "row+unstructured",
    ]:
        assert parse_pattern(text).text() == text
    assert parse_pattern("channel", 9).text() == "channel"
    assert Pattern().text() == "dense"


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("", "give one pattern"),
        ("block:0x4", "at least 1 x 1"),
        ("3:2", "0 < N < M"),
        ("2:4+block:8x8", "coarse pattern comes first"),
        ("row+column", "coarse pattern comes first"),
        ("2:4+unstructured", "at most one fine"),
        ("diagonal", "'diagonal' is not"),
        ("row+2:4+1:2", "give one pattern"),
    ],
)
def test_a_bad_pattern_is_named(spec: str, fault: str) -> None:
    with pytest.raises(CimError, match=fault) as error:
        parse_pattern(spec)
    assert f"'{spec}'" in str(error.value)


# -- the tool ------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["block:8x4", "2:4", "channel", "block:8x8+1:2", "column", "unstructured"],
)
def test_a_pruned_model_has_its_pattern_and_verifies_exactly(
    spec: str, tmp_path: Path
) -> None:
    """Every array weight of the pruned model (convolutions with batch
    normalization folded in, and the classifier) has the pattern, as the
    arrays hold it; the model still matches onnxruntime on the chip."""
    request = PruneRequest(parse_pattern(spec), 0.5)
    model, reports = prune_model(MODEL, request)
    path = tmp_path / "pruned.onnx"
    onnx.save(model, path)
    found = {r.weight.source: r.sparsity.pattern for r in report(path)}
    assert found == {r.weight.source: r.sparsity.pattern for r in reports}
    detected = {r.weight.name: r.sparsity.pattern for r in reports}
    for weight, matrix in weight_matrices(path):
        expected = for_weight(request.pattern, weight.channel_rows)
        assert holds(matrix, expected), weight.source
        assert holds(matrix, detected[weight.name]), weight.source
    assert verify_model(str(path), "tiny", "cim-compile-static").passed


def test_a_layer_ratio_overrides_and_zero_leaves_it_dense(tmp_path: Path) -> None:
    first, *_, last = [w.source for w, _ in weight_matrices(MODEL)]
    request = PruneRequest(
        parse_pattern("block:4x4"), 0.5, layers={last: 0.0, first: 0.25}
    )
    model, reports = prune_model(MODEL, request)
    by_source = {r.weight.source: r.sparsity for r in reports}
    assert last not in by_source and len(by_source) == 6
    path = tmp_path / "pruned.onnx"
    onnx.save(model, path)
    matrices = {w.source: matrix for w, matrix in weight_matrices(path)}
    assert not np.any(matrices[last] == 0)
    blocks = zero_blocks(matrices[first], Coarse("block", 4, 4))
    assert int(blocks.sum()) == math.floor(0.25 * blocks.size + 0.5)


def test_the_zoo_writes_pruned_variants(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path), "--small", "--models", "resnet18"]
    assert zoo.main([*argv, "--prune", "block:4x4+1:2", "--prune-ratio", "0.3"]) == 0
    path = tmp_path / "resnet_tiny.b1.block4x4_1of2.r0.3.onnx"
    assert all(
        holds(matrix, parse_pattern("block:4x4+1:2")) and share(matrix == 0) > 0.5
        for _, matrix in weight_matrices(path)
    )


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("cim-prune: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "status", "fault"),
    [
        (["--pattern", "block:0x2"], 1, "'block:0x2'"),
        (["--pattern", "row", "--layer", "nope=0.5"], 1, "'nope'"),
        (["--pattern", "row", "--layer", "fc.weight=2"], 1, "fc.weight=2"),
        (["--pattern", "row", "--ratio", "1.5"], 1, "between 0 and 1"),
        ([], 1, "give --pattern"),
        (["--pattern", "row", "--criterion", "l3"], 2, "l3"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_output(
    argv: list[str],
    status: int,
    fault: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "out.onnx"
    output.write_bytes(b"before")
    assert prune_tool.main([str(MODEL), *argv, "-o", str(output)]) == status
    assert fault in _one_line(capsys)
    assert output.read_bytes() == b"before"


def test_a_model_without_weight_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zoo.main(["--out", str(tmp_path), "--models", "resnet18"])
    capsys.readouterr()
    path = tmp_path / "resnet18.b1.onnx"
    argv = [str(path), "--pattern", "row", "-o", str(tmp_path / "p.onnx")]
    assert prune_tool.main(argv) == 1
    assert "weight data is not available" in _one_line(capsys)
    assert not (tmp_path / "p.onnx").exists()


def test_the_report_lists_every_array_weight(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert prune_tool.main([str(MODEL), "--report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all("0.0% zero  dense" in line for line in lines)
    assert lines[0].startswith("onnx::Conv_1000  [147x8]")


# -- counts on sub-arrays (CIMinus's invariants, ciminus.md §10) ----------


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    ratio=st.floats(0, 1),
    seed=st.integers(0, 9),
)
def test_aligned_full_blocks_activate_the_kept_share_of_sub_arrays(
    blocks: tuple[int, int], ratio: float, seed: int
) -> None:
    """FullBlock aligned to 32 x 32 sub-arrays at ratio r activates (1 - r)
    of the dense sub-array MVMs (the rounded count of kept blocks)."""
    matrix = weights(1, 32 * blocks[0], 32 * blocks[1], seed)
    pattern = parse_pattern("block:32x32")
    tiling = sparse_tiling(prune(matrix, pattern, ratio), pattern)
    dense = blocks[0] * blocks[1]
    kept = dense - math.floor(ratio * dense + 0.5)
    assert (tiling.blocks, tiling.stored_blocks) == (dense, kept)
    assert tiling.active_blocks(7) == 7 * kept
    assert tiling.block_index_bits == kept * math.ceil(math.log2(max(2, dense)))


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 200),
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (2, 8), (3, 8), (4, 16)]),
    seed=st.integers(0, 9),
)
def test_n_m_compacts_rows_and_names_each_kept_weight(
    k: int, nm: tuple[int, int], seed: int
) -> None:
    """N:M gives ceil(R * N / M) physical rows, an M:1 mux on each, and
    ceil(log2 M) index bits per kept weight."""
    keep, group = nm
    pattern = Pattern(None, Fine("nm", keep, group))
    matrix = prune(weights(1, k, 12, seed), pattern, 0)
    tiling = sparse_tiling(matrix, pattern)
    assert tiling.physical_rows == math.ceil(k * keep / group)
    assert tiling.muxes == tiling.physical_rows
    kept = int(np.count_nonzero(matrix))
    assert tiling.element_index_bits == kept * math.ceil(math.log2(group))


def test_ratio_zero_and_no_pattern_are_the_dense_counts() -> None:
    matrix = weights(2, 100, 70)
    for pattern in (Pattern(), parse_pattern("block:32x32")):
        tiling = sparse_tiling(prune(matrix, pattern, 0.0), pattern)
        assert tiling.stored_blocks == tiling.blocks == 2 * 4 * 3
        assert tiling.physical_rows == tiling.rows == 100
        assert tiling.element_index_bits == tiling.muxes == 0
