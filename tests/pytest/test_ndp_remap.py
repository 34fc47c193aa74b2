"""Window-based cold-neuron remapping (hermes.md §7, §11 test 3): the
invariants as properties, and a hand-computed example."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimflow.errors import CimError
from cimflow.ndp.remap import OFF_DIMM, WINDOW_TOKENS, dimm_loads, remap_window


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """A block's DIMM assignment (some neurons off the DIMMs) and window
    counts; sometimes with few distinct counts, so that ties are common."""
    dimms = draw(st.integers(1, 9))
    neurons = draw(st.integers(0, 60))
    top_count = draw(st.sampled_from([1, WINDOW_TOKENS, 40]))
    dimm_of = draw(
        st.lists(st.integers(OFF_DIMM, dimms - 1), min_size=neurons, max_size=neurons)
    )
    counts = draw(
        st.lists(st.integers(0, top_count), min_size=neurons, max_size=neurons)
    )
    return np.array(dimm_of, dtype=np.int64), np.array(counts, dtype=np.int64), dimms


@settings(max_examples=300, deadline=None)
@given(windows())
def test_remap_invariants(window: tuple[np.ndarray, np.ndarray, int]) -> None:
    dimm_of, counts, dimms = window
    result = remap_window(dimm_of, counts, dimms)
    before, after = result.loads_before, result.loads_after

    assert np.array_equal(before, dimm_loads(dimm_of, counts, dimms))
    assert np.array_equal(after, dimm_loads(result.dimm_of, counts, dimms))
    # the busiest DIMM never gets busier; the total is conserved
    assert after.max() <= before.max()
    assert after.sum() == before.sum()
    # neurons off the DIMMs stay off; nothing else changes but the moves
    off = dimm_of == OFF_DIMM
    assert bool(np.all(result.dimm_of[off] == OFF_DIMM))
    changed = np.flatnonzero(result.dimm_of != dimm_of)
    assert sorted(changed.tolist()) == sorted(result.moved.tolist())
    assert np.array_equal(result.source, dimm_of[result.moved])
    assert np.array_equal(result.destination, result.dimm_of[result.moved])
    # the pairs: heaviest with lightest, disjoint, each DIMM at most once
    order = [int(d) for d in result.pairs.ravel()]
    assert len(set(order)) == len(order) == 2 * (dimms // 2)
    heavy_to_light = {int(h): int(light) for h, light in result.pairs}
    for heavy, light in heavy_to_light.items():
        assert before[heavy] >= before[light]
        # a pair that moved lowered its maximum; the light side may end up the
        # heavier, but by less than the last neuron it took
        pair_max = max(after[heavy], after[light])
        took = counts[result.moved[result.destination == light]]
        if took.size:
            assert pair_max < before[heavy]
            assert after[light] - after[heavy] < took[-1]
        else:
            assert pair_max == before[heavy]
    # every move goes from its pair's heavy DIMM to the light one, and only
    # neurons that fired move
    for neuron, source, destination in zip(
        result.moved, result.source, result.destination, strict=True
    ):
        assert heavy_to_light[int(source)] == destination
        assert before[source] > before[destination]
        assert counts[neuron] > 0
    # the pair stopped at the first neuron (most activated first) whose move
    # would not lower its maximum
    for heavy, light in heavy_to_light.items():
        left = np.flatnonzero(result.dimm_of == heavy)
        left = left[counts[left] > 0]
        if left.size:
            next_count = int(counts[left].max())
            moved_here = result.moved[result.source == heavy]
            if moved_here.size:
                assert next_count <= counts[moved_here].min()
            assert after[light] + next_count >= after[heavy]


@settings(max_examples=100, deadline=None)
@given(windows())
def test_remap_is_deterministic(window: tuple[np.ndarray, np.ndarray, int]) -> None:
    dimm_of, counts, dimms = window
    first = remap_window(dimm_of, counts, dimms)
    again = remap_window(dimm_of.copy(), counts.copy(), dimms)
    assert np.array_equal(first.dimm_of, again.dimm_of)
    assert np.array_equal(first.moved, again.moved)
    assert np.array_equal(first.pairs, again.pairs)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 5), st.randoms())
def test_a_balanced_window_moves_nothing(
    dimms: int, per_dimm: int, count: int, shuffle: random.Random
) -> None:
    dimm_of = np.repeat(np.arange(dimms), per_dimm)
    order = list(range(dimm_of.size))
    shuffle.shuffle(order)
    dimm_of = dimm_of[order]
    result = remap_window(dimm_of, np.full(dimm_of.size, count), dimms)
    assert result.moved.size == 0
    assert np.array_equal(result.dimm_of, dimm_of)
    assert result.moved_bytes == 0


def test_hand_computed_window() -> None:
    #            neuron: 0  1  2  3  4  5  6  7  8  9  10
    dimm_of = np.array([0, 0, 0, 0, 1, 1, 1, 2, 3, 3, -1])
    counts = np.array([5, 4, 3, 1, 2, 2, 2, 1, 1, 0, 9])
    sizes = np.arange(11) * 10 + 100
    result = remap_window(dimm_of, counts, 4, sizes)
    # loads 13, 6, 1, 1 -> by load 0, 1, 2, 3 (2 before 3 on the tie)
    assert result.loads_before.tolist() == [13, 6, 1, 1]
    assert result.pairs.tolist() == [[0, 3], [1, 2]]
    # pair (0, 3): neuron 0 (5) moves, 1 + 5 < 13 -> loads 8 and 6; neuron
    # 1 (4) would give 10 >= 8 and stops the pair (neuron 3 alone would fit)
    # pair (1, 2): neuron 4 (2, lowest of the tied three) moves, 1 + 2 < 6 ->
    # 4 and 3; neuron 5 would give 5 >= 4 and stops
    assert result.moved.tolist() == [0, 4]
    assert result.source.tolist() == [0, 1]
    assert result.destination.tolist() == [3, 2]
    assert result.dimm_of.tolist() == [3, 0, 0, 0, 2, 1, 1, 2, 3, 3, -1]
    assert result.loads_after.tolist() == [8, 4, 3, 6]
    assert result.pair_bytes.tolist() == [100, 140]
    assert result.moved_bytes == 240
    assert result.busiest_pair_bytes == 140
    assert remap_window(dimm_of, counts, 4, 64).pair_bytes.tolist() == [64, 64]
    # the input is not modified
    assert dimm_of.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 3, 3, -1]


def test_an_odd_dimm_count_leaves_the_middle_one_out() -> None:
    dimm_of = np.array([0, 0, 1, 1, 2])
    counts = np.array([3, 3, 2, 1, 0])
    result = remap_window(dimm_of, counts, 3)
    assert result.pairs.tolist() == [[0, 2]]
    assert result.moved.tolist() == [0]
    assert result.loads_after.tolist() == [3, 3, 3]


@pytest.mark.parametrize(
    ("dimm_of", "counts", "dimms", "message"),
    [
        ([0, 4], [1, 1], 4, "DIMM indices 0..3"),
        ([0, -2], [1, 1], 4, "DIMM indices"),
        ([0, 1], [1, -1], 4, "counts must be >= 0"),
        ([0, 1], [1], 4, "2 neurons but counts has 1"),
        ([0, 1], [1.0, 2.0], 4, "counts must be a vector of integers"),
        ([0, 1], [1, 1], 0, "DIMM count"),
    ],
)
def test_bad_inputs_are_rejected(
    dimm_of: list[int], counts: list[float], dimms: int, message: str
) -> None:
    with pytest.raises(CimError, match=message):
        remap_window(np.array(dimm_of), np.array(counts), dimms)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(CimError, match="neuron_bytes"):
        remap_window(np.array([0, 1]), np.array([1, 1]), 2, np.array([1, 2, 3]))


def test_a_large_block_remaps_fast() -> None:
    # the largest sparse block (LLaMA2-70B's 28672 MLP neurons), 8 DIMMs, a
    # skewed window of 5 tokens; remapping runs 160 blocks x 25 windows
    rng = np.random.default_rng(0)
    neurons, dimms = 28672, 8
    dimm_of = rng.integers(0, dimms, neurons)
    dimm_of[rng.random(neurons) < 0.2] = OFF_DIMM
    probability = np.clip(rng.pareto(1.5, neurons) * 0.05, 0, 1)
    probability[dimm_of == 3] = np.clip(probability[dimm_of == 3] * 2, 0, 1)
    counts = rng.binomial(WINDOW_TOKENS, probability)
    result = remap_window(dimm_of, counts, dimms, 8192 * 2)
    assert result.moved.size > 0
    assert result.loads_after.max() < result.loads_before.max()
    calls = 50
    start = time.perf_counter()
    for _ in range(calls):
        remap_window(dimm_of, counts, dimms, 8192 * 2)
    per_call = (time.perf_counter() - start) / calls
    assert per_call < 0.01  # typically well under 1 ms; loose for shared CI
