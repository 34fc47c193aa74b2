"""Hermes' activation traces (hermes.md §4.1, §5, §10.3, §11 test 4): the
synthetic generator hits the published statistics within ±0.03, its hot set
drifts with the context (Sec. III-B), it is deterministic, and its helpers
and the importers of user files behave."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimflow.errors import CimError
from cimflow.ndp.activations import (
    ActivationTrace,
    TraceStatistics,
    fitted_probabilities,
    hot_set_churn,
    hot_share,
    load_frequencies,
    load_trace,
    overlap,
    parent_correlation,
    sparsity,
    synthetic_trace,
)

SHAPE = [4096, 8192] * 3  # QKV and MLP blocks of three layers
TOKENS = 256
SEED = 11
TOLERANCE = 0.03  # hermes.md §11 test 4


@pytest.fixture(scope="module")
def trace() -> ActivationTrace:
    return synthetic_trace(SHAPE, TOKENS, seed=SEED)


# ---------------------------------------------------------------------------
# The published statistics (§10.3)


@pytest.mark.parametrize("target", [0.70, 0.85, 0.90])
def test_sparsity_hits_the_target(target: float) -> None:
    generated = synthetic_trace(
        SHAPE[:4], TOKENS, seed=SEED, statistics=TraceStatistics(sparsity=target)
    )
    for block in generated.active:
        assert sparsity(block) == pytest.approx(target, abs=TOLERANCE)


def test_the_per_token_law_holds_the_20_80_split() -> None:
    # Without a context every neuron keeps its rank, so the long-run
    # probabilities are the per-token law itself.
    p = fitted_probabilities(8192, TraceStatistics(context_weight=0.0))
    assert p.mean() == pytest.approx(0.15, abs=1e-3)
    assert hot_share(p) == pytest.approx(0.80, abs=2e-3)
    assert p.max() <= 1.0 and np.all(np.diff(p) <= 0.0)


def test_long_run_probabilities_blur_the_law_but_keep_its_mean() -> None:
    # The context moves neurons between ranks, so over many sequences the
    # hottest ones are hot less often than in any one sequence.
    p = fitted_probabilities(8192)
    assert p.mean() == pytest.approx(0.15, abs=1e-3)
    assert 0.74 < hot_share(p) < 0.80
    assert p.max() <= 1.0 and np.all(np.diff(p) <= 0.0)


def test_few_neurons_are_always_active() -> None:
    # About a tenth of the neurons are active at every token of a sequence
    # (the law's head), but the context rotates them: over the long run at
    # most 2 % of the neurons are (almost) always active.
    assert np.mean(fitted_probabilities(8192) >= 0.999) <= 0.02


def test_the_hot_set_depends_on_the_context() -> None:
    # The hottest long-run neurons (a GPU's worth, 8 %) are not the hottest
    # of one sequence: what a fixed partition on profiled frequencies misses
    # and online adjustment recovers (Sec. III-B).
    rng = np.random.default_rng(0)
    p = fitted_probabilities(8192)[rng.permutation(8192)]
    stationary = [fitted_probabilities(4096), p]
    generated = synthetic_trace([4096, 8192], TOKENS, seed=SEED, stationary=stationary)
    frequencies = generated.frequencies()[1]
    count = round(0.08 * p.size)
    profiled = np.argsort(-p)[:count]
    current = np.argsort(-frequencies)[:count]
    assert 0.5 < np.intersect1d(profiled, current).size / count < 0.9
    assert frequencies[profiled].mean() < frequencies[current].mean() - 0.04


def test_an_infeasible_share_is_lowered_to_what_p_at_most_1_allows() -> None:
    # At 70 % sparsity the top fifth can hold at most 0.2 / 0.3 of the sum.
    statistics = TraceStatistics(sparsity=0.70, context_weight=0.0)
    p = fitted_probabilities(8192, statistics)
    assert p.mean() == pytest.approx(0.30, abs=1e-3)
    assert p.max() <= 1.0
    assert hot_share(p) == pytest.approx(0.2 + 0.95 * (0.2 / 0.3 - 0.2), abs=2e-3)


def test_measured_hot_share_is_20_80(trace: ActivationTrace) -> None:
    for frequencies in trace.frequencies():
        assert hot_share(frequencies) == pytest.approx(0.80, abs=TOLERANCE)


def test_hot_neurons_are_scattered(trace: ActivationTrace) -> None:
    frequencies = trace.frequencies()[1]
    hot = np.argsort(-frequencies)[: frequencies.size // 5]
    # Contiguous hot neurons would all sit in one fifth of the indices.
    assert (
        np.histogram(hot, bins=5, range=(0, frequencies.size))[0].max() < 0.3 * hot.size
    )


def test_adjacent_tokens_overlap_over_90_percent(trace: ActivationTrace) -> None:
    for block in trace.active:
        assert overlap(block, 1) >= 0.90


def test_overlap_is_about_70_percent_and_flat_at_long_lags(
    trace: ActivationTrace,
) -> None:
    for block in trace.active:
        far = {lag: overlap(block, lag) for lag in (10, 25, 40)}
        for value in far.values():
            assert value == pytest.approx(0.70, abs=TOLERANCE)
        assert far[40] == pytest.approx(far[25], abs=TOLERANCE)
        # Locality: without memory, lag 1 would overlap no more than lag 10.
        assert overlap(block, 1) - far[10] > 0.15


def test_falcon_adjacent_overlap_is_a_parameter() -> None:
    statistics = TraceStatistics(adjacent_overlap=0.95)
    generated = synthetic_trace([4096], TOKENS, seed=SEED, statistics=statistics)
    assert overlap(generated.active[0], 1) == pytest.approx(0.95, abs=TOLERANCE)


def test_children_fire_with_their_parents(trace: ActivationTrace) -> None:
    assert trace.parents[0].shape == (SHAPE[0], 0)
    for b in range(1, len(SHAPE)):
        table = trace.parents[b]
        assert table.shape == (SHAPE[b], 2) and table.dtype == np.int32
        assert table.min() >= 0 and table.max() < SHAPE[b - 1]
        child, parent = trace.active[b], trace.active[b - 1]
        assert parent_correlation(child, parent, table) >= 0.9 - TOLERANCE
        # The parents matter: random ones of the same block do far worse.
        shuffled = np.random.default_rng(b).permutation(table)
        assert parent_correlation(child, parent, shuffled) < 0.6


def test_about_half_the_hot_set_churns(trace: ActivationTrace) -> None:
    # Sec. III-B: about 52 % of the initially hot neurons change activity
    # during inference (LLaMA2-70B); a frozen trace does not churn.
    for block in trace.active:
        assert hot_set_churn(block) == pytest.approx(0.52, abs=0.1)
        assert hot_set_churn(np.tile(block[:32], (8, 1))) == 0.0


# ---------------------------------------------------------------------------
# Determinism, shapes, user probabilities


def test_same_seed_same_trace_other_seed_other_trace(trace: ActivationTrace) -> None:
    again = synthetic_trace(SHAPE, TOKENS, seed=SEED)
    for a, b in zip(
        trace.active + trace.parents, again.active + again.parents, strict=True
    ):
        assert np.array_equal(a, b)
    other = synthetic_trace(SHAPE[:2], TOKENS, seed=SEED + 1)
    assert not np.array_equal(other.active[1], trace.active[1])


@settings(max_examples=25, deadline=None)
@given(
    neurons=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    tokens=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_any_small_shape_gives_a_wellformed_trace(
    neurons: list[int], tokens: int, seed: int
) -> None:
    generated = synthetic_trace(neurons, tokens, seed=seed)
    assert generated.tokens == tokens and generated.neurons == tuple(neurons)
    for b, (block, table) in enumerate(
        zip(generated.active, generated.parents, strict=True)
    ):
        assert block.dtype == np.bool_ and block.shape == (tokens, neurons[b])
        if b == 0:
            assert table.shape == (neurons[0], 0)
        else:
            assert table.shape == (neurons[b], 2)
            assert table.min() >= 0 and table.max() < neurons[b - 1]


def test_user_probabilities_replace_the_power_law() -> None:
    rng = np.random.default_rng(3)
    stationary = [rng.uniform(0.0, 0.4, n) for n in (2048, 4096)]
    stationary[1][:100] = 1.0
    generated = synthetic_trace([2048, 4096], 512, seed=SEED, stationary=stationary)
    for p, f in zip(stationary, generated.frequencies(), strict=True):
        # Neurons grouped by their given probability are active that often.
        groups = np.array_split(np.argsort(p), 8)
        for group in groups:
            assert f[group].mean() == pytest.approx(p[group].mean(), abs=0.03)
    assert generated.active[1][:, :100].all()


def test_fitted_probabilities_given_back_give_the_fitted_traces() -> None:
    # What cimflow.ndp.run does: the long-run probabilities, in a neuron
    # order of its own, drive the trace; the per-token law is the fitted one.
    rng = np.random.default_rng(5)
    stationary = [fitted_probabilities(n)[rng.permutation(n)] for n in SHAPE[:2]]
    generated = synthetic_trace(SHAPE[:2], TOKENS, seed=SEED, stationary=stationary)
    for block, frequencies in zip(
        generated.active, generated.frequencies(), strict=True
    ):
        assert sparsity(block) == pytest.approx(0.85, abs=TOLERANCE)
        assert hot_share(frequencies) == pytest.approx(0.80, abs=TOLERANCE)
        assert overlap(block, 1) >= 0.90
        assert overlap(block, 25) == pytest.approx(0.70, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("stationary", "message"),
    [
        ([np.full(4, 0.1)], "stationary has 1 blocks"),
        ([np.full(4, 0.1), np.full(5, 0.1)], r"block 1 have shape \(5,\)"),
        ([np.full(4, 0.1), np.array([0.1, 1.5, 0.1, 0.1])], "block 1 neuron 1"),
    ],
)
def test_bad_user_probabilities_are_rejected(
    stationary: list[np.ndarray], message: str
) -> None:
    with pytest.raises(CimError, match=message):
        synthetic_trace([4, 4], 8, seed=0, stationary=stationary)


@pytest.mark.parametrize(
    "statistics",
    [
        {"sparsity": 0.45},
        {"sparsity": 0.995},
        {"hot_share": 0.15},
        {"far_overlap": 0.95},
        {"parent_correlation": 1.5},
        {"context_weight": 1.0},
        {"context_clusters": 0},
    ],
)
def test_bad_statistics_are_rejected(statistics: dict[str, Any]) -> None:
    with pytest.raises(CimError, match=next(iter(statistics))):
        TraceStatistics(**statistics)


def test_sparsity_bounds_are_accepted() -> None:
    for value in (0.5, 0.99):
        assert TraceStatistics(sparsity=value).sparsity == value


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(CimError, match="block 1 has 0 neurons"):
        synthetic_trace([4, 0], 8, seed=0)
    with pytest.raises(CimError, match="at least one token"):
        synthetic_trace([4], 0, seed=0)
    with pytest.raises(CimError, match="at least one block"):
        synthetic_trace([], 8, seed=0)


# ---------------------------------------------------------------------------
# Statistics helpers on hand-made activity


def test_helpers_on_hand_made_activity() -> None:
    active = np.array(
        [[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=np.bool_
    )
    assert sparsity(active) == pytest.approx(1 - 8 / 16)
    # |A0&A1|/|A0| = 1/2, |A1&A2|/|A1| = 0, A2 is empty and skipped.
    assert overlap(active, 1) == pytest.approx(0.25)
    # |A0&A2|/|A0| = 0, |A1&A3|/|A1| = 1.
    assert overlap(active, 2) == pytest.approx(0.5)
    assert hot_share([4.0, 3.0, 2.0, 1.0, 0.0], fraction=0.4) == pytest.approx(0.7)
    assert hot_share(np.zeros(3)) == 0.0
    with pytest.raises(CimError, match="lag 4"):
        overlap(active, 4)


def test_parent_correlation_on_hand_made_activity() -> None:
    parent = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], dtype=np.bool_)
    child = np.array([[1], [0], [1], [1]], dtype=np.bool_)
    # Token 0: parent 0 on, child on; 1: parent 1 on, child off; 2: no
    # parent (ignored); 3: both on, child on.
    assert parent_correlation(child, parent, [[0, 1]]) == pytest.approx(2 / 3)
    assert parent_correlation(child, parent, [[0]]) == pytest.approx(1.0)
    with pytest.raises(CimError, match="k >= 1"):
        parent_correlation(child, parent, np.zeros((1, 0), dtype=np.int32))


def test_churn_on_hand_made_activity() -> None:
    # Ten neurons, windows of 4 tokens, hot = top 2. Neurons 0 and 1 are hot
    # first; neuron 1 goes quiet in the third window, neuron 0 never does.
    active = np.zeros((12, 10), dtype=np.bool_)
    active[:, 0] = True
    active[:8, 1] = True
    active[8:, 2] = True
    assert hot_set_churn(active, window=4) == pytest.approx(0.5)
    assert hot_set_churn(active[:7], window=4) == 0.0  # no later full window


# ---------------------------------------------------------------------------
# Importers


def test_frequencies_round_trip_in_natural_key_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blocks = {f"block_{i}": rng.uniform(0.0, 1.0, 10 + i) for i in (0, 1, 2, 10)}
    path = tmp_path / "freq.npz"
    np.savez(path, block_10=blocks["block_10"], block_2=blocks["block_2"],
             block_0=blocks["block_0"], block_1=blocks["block_1"])  # fmt: skip
    loaded = load_frequencies(path)
    assert [f.size for f in loaded] == [10, 11, 12, 20]
    for f, key in zip(
        loaded, ("block_0", "block_1", "block_2", "block_10"), strict=True
    ):
        assert np.array_equal(f, blocks[key])


def test_counts_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "counts.npz"
    np.savez(path, layer_0=np.array([0, 64, 128]), layer_1=np.array([32, 16]))
    by_samples = load_frequencies(path, samples=256)
    assert np.allclose(by_samples[0], [0.0, 0.25, 0.5])
    assert np.allclose(by_samples[1], [0.125, 0.0625])
    by_maximum = load_frequencies(path)
    assert np.allclose(by_maximum[0], [0.0, 0.5, 1.0])
    assert np.allclose(by_maximum[1], [0.25, 0.125])
    rows = tmp_path / "counts.npy"
    np.save(rows, np.array([[1, 2], [3, 4]]))
    assert np.allclose(
        np.stack(load_frequencies(rows, samples=4)), [[0.25, 0.5], [0.75, 1.0]]
    )


def test_imported_frequencies_drive_the_generator(tmp_path: Path) -> None:
    path = tmp_path / "freq.npz"
    p = np.linspace(0.9, 0.01, 1024)
    np.savez(path, block_0=p, block_1=p[::-1])
    frequencies = load_frequencies(path)
    generated = synthetic_trace([1024, 1024], 512, seed=1, stationary=frequencies)
    assert generated.frequencies()[1].mean() == pytest.approx(p.mean(), abs=0.03)


def test_trace_round_trip(tmp_path: Path, trace: ActivationTrace) -> None:
    path = tmp_path / "trace.npz"
    arrays: dict[str, npt.NDArray[Any]] = {
        "block_0": trace.active[0],
        "block_1": trace.active[1].astype(np.int8),  # 0/1 numbers load too
        "block_2": trace.active[2],
        "parents_block_1": trace.parents[1],
    }
    _save(path, arrays)
    loaded = load_trace(path)
    assert loaded.tokens == TOKENS and loaded.neurons == tuple(SHAPE[:3])
    for a, b in zip(loaded.active, trace.active[:3], strict=True):
        assert a.dtype == np.bool_ and np.array_equal(a, b)
    assert np.array_equal(loaded.parents[1], trace.parents[1])
    assert loaded.parents[2].shape == (SHAPE[2], 0)  # none stored


def _save(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    savez: Callable[..., None] = np.savez
    savez(path, **arrays)


def _assert_rejected(call: Callable[[], object], path: Path, *names: str) -> None:
    """``call`` raises a one-line CimError naming the file and ``names``."""
    with pytest.raises(CimError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for name in (str(path), *names):
        assert name in message, (name, message)


@pytest.mark.parametrize(
    ("arrays", "names", "samples"),
    [
        ({"block_0": np.array(["a", "b"])}, ("block_0", "dtype"), None),
        ({"block_0": np.ones((2, 2))}, ("block_0", "shape"), None),
        ({"block_0": np.zeros(0)}, ("block_0", "empty"), None),
        ({"block_0": np.array([3, -1])}, ("block_0[1]", "-1"), None),
        ({"block_0": np.array([0.5, np.nan])}, ("block_0[1]", "nan"), None),
        ({"b0": np.array([0.5]), "b1": np.array([0.2, 1.5])}, ("b1[1]", "1.5"), None),
        ({"block_0": np.array([3, 300])}, ("block_0[1]", "300", "samples"), 256),
        ({"block_0": np.array([0, 0])}, ("every count is zero",), None),
        ({}, ("no arrays",), None),
    ],
)
def test_bad_frequency_files_are_rejected(
    tmp_path: Path,
    arrays: dict[str, np.ndarray],
    names: tuple[str, ...],
    samples: int | None,
) -> None:
    path = tmp_path / "freq.npz"
    _save(path, arrays)
    _assert_rejected(lambda: load_frequencies(path, samples=samples), path, *names)


def test_bad_frequency_paths_are_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    _assert_rejected(lambda: load_frequencies(missing), missing, "no such file")
    text = tmp_path / "freq.txt"
    text.write_text("0.5\n")
    _assert_rejected(lambda: load_frequencies(text), text, ".npz or .npy")
    garbage = tmp_path / "freq.npz"
    garbage.write_bytes(b"not a zip file")
    _assert_rejected(
        lambda: load_frequencies(garbage), garbage, "not a readable NumPy file"
    )
    cube = tmp_path / "freq.npy"
    np.save(cube, np.zeros((2, 2, 2)))
    _assert_rejected(lambda: load_frequencies(cube), cube, "(2, 2, 2)")


@pytest.mark.parametrize(
    ("arrays", "names"),
    [
        ({"block_0": np.array([[0, 2], [1, 0]])}, ("block_0[0, 1]", "2", "0 or 1")),
        ({"block_0": np.ones(3, dtype=np.bool_)}, ("block_0", "(tokens, neurons)")),
        (
            {
                "block_0": np.ones((3, 2), np.bool_),
                "block_1": np.ones((4, 2), np.bool_),
            },
            ("block_1", "4 tokens"),
        ),
        (
            {
                "block_0": np.ones((3, 2), np.bool_),
                "block_1": np.ones((3, 2), np.bool_),
                "parents_block_1": np.array([[0, 1], [1, 2]]),
            },
            ("parents_block_1[1, 1]", "2"),
        ),
        (
            {"block_0": np.ones((3, 2), np.bool_), "parents_block_0": np.zeros((3, 1))},
            ("parents_block_0", "(3, 1)"),
        ),
        (
            {"block_0": np.ones((3, 2), np.bool_), "parents_block_9": np.zeros((2, 0))},
            ("parents_block_9", "names no block"),
        ),
    ],
)
def test_bad_trace_files_are_rejected(
    tmp_path: Path, arrays: dict[str, np.ndarray], names: tuple[str, ...]
) -> None:
    path = tmp_path / "trace.npz"
    _save(path, arrays)
    _assert_rejected(lambda: load_trace(path), path, *names)


def test_a_trace_must_be_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "trace.npy"
    np.save(path, np.ones((2, 2), dtype=np.bool_))
    _assert_rejected(lambda: load_trace(path), path, "expected a .npz file")
