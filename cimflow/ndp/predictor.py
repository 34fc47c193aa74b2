"""Hermes' lightweight activity predictor (Sec. IV-C.1, Fig. 7).

Hermes decides, per generated token, which neurons of each sparse block will
be active, so that hot ones can be fetched to the GPU and cold ones computed
in the DIMMs. It replaces Deja Vu's MLP predictors with two small tables kept
in the host's last-level cache (``shared/reference/hermes.md`` §5):

- the **neuron state table**: one saturating counter of ``state_bits`` (4)
  bits per neuron, a branch-predictor-style finite-state machine. An active
  neuron gains ``step_up`` (4), an inactive one loses ``step_down`` (1), and
  the state stays within ``0 .. 2**state_bits - 1``. After prefill the
  counters start from the prefill activation frequency
  (:func:`initial_states`);
- the **layer correlation table**: for each neuron, its ``parents`` (2)
  most correlated neurons in the previous block, sampled offline
  (:func:`correlation_parents`).

A neuron is predicted active when ``s1 + lambda * s2 > T``: ``s1`` is its
state, ``s2`` the number of its parents active in the previous block at the
same token, ``lambda = 6`` and ``T = 15`` (:func:`predict`). A neuron whose
state exceeds ``T_h = 10`` counts as hot (:func:`hot`, Sec. IV-C.2, Fig. 8a).

Blocks are in execution order: block ``2l`` holds layer ``l``'s QKV input
neurons and block ``2l + 1`` its MLP neurons, so block 0 has no parents and
is predicted from its states alone. :class:`OnlinePredictor` runs a whole
activity trace: per token and block it predicts from the current states and
the actual activity of the previous block, then updates the states with the
actual activity. With 70-90 % sparsity the accuracy is dominated by true
negatives, so :class:`PredictionStats` reports recall and precision of the
active set as well (hermes.md §5).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cimflow.errors import CimError

BoolArray = NDArray[np.bool_]
StateArray = NDArray[np.uint8]
IndexArray = NDArray[np.int32]

_SCORE_CONSTANT_PARENT = -2.0
"""Score of a parent that is always or never active: below every correlation
(which lies in [-1, 1]), so such a parent is chosen only when nothing else is
left. It carries no information and an always-active one would add
``lambda`` to every prediction."""
_SCORE_TAKEN = -3.0
"""Score of a parent already chosen for this child."""


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise CimError(
            f"predictor rule {name} must be an integer {allowed}, got {value!r}"
        )


def _check_frequency(name: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0.0 <= value <= 1.0
    ):
        raise CimError(
            f"predictor rule {name} must be a frequency in [0, 1], got {value!r}"
        )


@dataclass(frozen=True)
class PredictorRules:
    """The predictor's parameters; the defaults are the paper's.

    ``init_low`` and ``init_high`` set the binning of the prefill frequency
    into initial states (:func:`initial_states`).
    """

    state_bits: int = 4
    step_up: int = 4
    step_down: int = 1
    correlation_weight: int = 6
    threshold: int = 15
    hot_threshold: int = 10
    parents: int = 2
    init_low: float = 0.02
    init_high: float = 0.90

    def __post_init__(self) -> None:
        _check_int("state_bits", self.state_bits, 2, 8)
        top = self.max_state
        _check_int("step_up", self.step_up, 0, top)
        _check_int("step_down", self.step_down, 0, top)
        _check_int("correlation_weight", self.correlation_weight, 0, None)
        _check_int("threshold", self.threshold, 0, None)
        _check_int("hot_threshold", self.hot_threshold, 0, top)
        _check_int("parents", self.parents, 0, None)
        _check_frequency("init_low", self.init_low)
        _check_frequency("init_high", self.init_high)
        if not self.init_low < self.init_high:
            raise CimError(
                f"predictor rule init_low ({self.init_low!r}) must be below "
                f"init_high ({self.init_high!r})"
            )

    @property
    def max_state(self) -> int:
        """The highest state, ``2**state_bits - 1`` (15)."""
        return (1 << self.state_bits) - 1


DEFAULT_RULES = PredictorRules()


def initial_states(
    prefill_frequency: ArrayLike, rules: PredictorRules = DEFAULT_RULES
) -> StateArray:
    """The states a block starts decoding with, from each neuron's
    activation frequency during prefill (a share of tokens, 0..1).

    The frequency falls into one of ``2**state_bits`` (16) bins: above
    ``init_high`` (0.90) is the top state (15), below ``init_low`` (0.02) is
    state 0, and ``[init_low, init_high]`` is cut into 14 equal bins of
    width ``w = (0.90 - 0.02) / 14``, bin ``j`` (state ``j``, 1..14) covering
    ``[0.02 + (j - 1) w, 0.02 + j w)``; ``init_high`` itself is in bin 14.
    """
    frequency = np.asarray(prefill_frequency, dtype=np.float64)
    if frequency.size and not (
        np.isfinite(frequency).all()
        and frequency.min() >= 0.0
        and frequency.max() <= 1.0
    ):
        raise CimError("prefill frequencies must lie in [0, 1]")
    top = rules.max_state
    width = (rules.init_high - rules.init_low) / (top - 1)
    middle = 1 + np.floor((frequency - rules.init_low) / width)
    states = np.clip(middle, 1, top - 1)
    states = np.where(frequency < rules.init_low, 0, states)
    states = np.where(frequency > rules.init_high, top, states)
    return states.astype(np.uint8)


def update_states(
    states: StateArray, active: ArrayLike, rules: PredictorRules = DEFAULT_RULES
) -> StateArray:
    """The states after one token: ``+step_up`` for each active neuron,
    ``-step_down`` for each inactive one, saturating at 0 and ``max_state``."""
    is_active = np.asarray(active, dtype=np.bool_)
    if is_active.shape != states.shape:
        raise CimError(
            f"activity of shape {is_active.shape} does not match states of "
            f"shape {states.shape}"
        )
    stepped = states.astype(np.int16) + np.where(
        is_active, np.int16(rules.step_up), np.int16(-rules.step_down)
    )
    return np.clip(stepped, 0, rules.max_state).astype(np.uint8)


def predict_tokens(
    states: StateArray,
    parents_active_counts: NDArray[np.int32] | int,
    activity: BoolArray,
    rules: PredictorRules = DEFAULT_RULES,
) -> tuple[BoolArray, NDArray[np.uint8]]:
    """One block over a run of tokens, as the predictor works: at each token
    (a row of ``activity``) predict from the states so far and the count of
    parents active (a row of ``parents_active_counts``, or 0 for every
    token), then observe the actual activity. Returns the predictions and
    the states after each token, both ``(tokens, neurons)``."""
    tokens = activity.shape[0]
    predicted = np.zeros(activity.shape, dtype=np.bool_)
    after = np.zeros(activity.shape, dtype=np.uint8)
    for token in range(tokens):
        counts = (
            parents_active_counts
            if isinstance(parents_active_counts, int)
            else parents_active_counts[token]
        )
        predicted[token] = predict(states, counts, rules)
        states = update_states(states, activity[token], rules)
        after[token] = states
    return predicted, after


def predict(
    states: StateArray,
    parents_active_count: ArrayLike,
    rules: PredictorRules = DEFAULT_RULES,
) -> BoolArray:
    """Which neurons are predicted active: ``s1 + lambda * s2 > T``, with
    ``s1`` the state and ``s2`` the count of the neuron's parents active in
    the previous block at this token (0 for a block without parents)."""
    parents_active = np.asarray(parents_active_count, dtype=np.int32)
    score = states.astype(np.int32) + rules.correlation_weight * parents_active
    return score > rules.threshold


def hot(states: StateArray, rules: PredictorRules = DEFAULT_RULES) -> BoolArray:
    """Which neurons count as hot: state above ``hot_threshold`` (10)."""
    return states > rules.hot_threshold


def table_bytes(
    neurons_per_block: Sequence[int], rules: PredictorRules = DEFAULT_RULES
) -> int:
    """Bytes of the neuron state table: ``state_bits`` per neuron over all
    blocks, rounded up to whole bytes. This is the figure the paper quotes
    (232 KB for LLaMA-7B)."""
    return math.ceil(sum(neurons_per_block) * rules.state_bits / 8)


def correlation_table_bytes(
    neurons_per_block: Sequence[int], rules: PredictorRules = DEFAULT_RULES
) -> int:
    """Bytes of the layer correlation table: each neuron of block ``b >= 1``
    stores ``parents`` indices into block ``b - 1``, each of
    ``ceil(log2(neurons of block b - 1))`` bits; block 0 stores none. Rounded
    up to whole bytes. The paper's 232 KB does not include this table."""
    bits = 0
    for previous, neurons in itertools.pairwise(neurons_per_block):
        index_bits = (previous - 1).bit_length() if previous > 0 else 0
        bits += neurons * rules.parents * index_bits
    return math.ceil(bits / 8)


def correlation_parents(
    active_previous: ArrayLike,
    active: ArrayLike,
    k: int = 2,
    chunk_elements: int = 1 << 24,
) -> IndexArray:
    """The ``k`` neurons of the previous block most correlated with each
    neuron of this block, sampled from the same tokens of both blocks
    (``active_previous`` is ``(tokens, m)``, ``active`` is ``(tokens, n)``);
    an ``(n, k)`` int32 array, best first.

    The correlation is the phi coefficient (Pearson's correlation of the two
    activity sequences), ``(T c - a b) / sqrt(a (T - a) b (T - b))`` for
    ``T`` tokens, child active ``a`` times, parent ``b`` times, both ``c``
    times. Unlike ``P(child | parent)`` it does not favour a parent that was
    active once by chance, and unlike the co-activation count it does not
    favour a parent that is always active (and so says nothing). A parent
    that is always or never active ranks below every other; a child that is
    always or never active gets the lowest-indexed parents that vary. Ties go
    to the lowest index.

    The score matrix is built ``chunk_elements`` entries (64 MB of float32)
    at a time, from an exact integer product: ``T c - a b`` is the product of
    the child's 0/1 column with the parent's column ``T x - b``.
    """
    previous = np.asarray(active_previous, dtype=np.bool_)
    current = np.asarray(active, dtype=np.bool_)
    if previous.ndim != 2 or current.ndim != 2:
        raise CimError("activity must be (tokens, neurons) arrays")
    tokens, candidates = previous.shape
    if current.shape[0] != tokens:
        raise CimError(
            f"the two blocks cover {tokens} and {current.shape[0]} tokens; "
            "parents are sampled from the same tokens"
        )
    neurons = current.shape[1]
    if not _is_integer(k) or k < 0:
        raise CimError(f"parents per neuron must be an integer >= 0, got {k!r}")
    if k > candidates and neurons > 0:
        raise CimError(
            f"{k} parents per neuron asked for, but the previous block has "
            f"{candidates} neurons"
        )
    parents = np.zeros((neurons, k), dtype=np.int32)
    if neurons == 0 or k == 0:
        return parents

    # T*c - a*b sums at most T*T in magnitude: exact in float32 below 2**24.
    dtype = np.float32 if tokens * tokens < (1 << 24) else np.float64
    parent_count = previous.sum(axis=0, dtype=np.int64)
    centered_parents = tokens * previous.astype(dtype) - parent_count.astype(dtype)
    child_count = current.sum(axis=0, dtype=np.int64)
    parent_scale = _inverse_spread(parent_count, tokens).astype(dtype)
    child_scale = _inverse_spread(child_count, tokens).astype(dtype)
    constant_parent = (parent_count == 0) | (parent_count == tokens)
    child_columns = current.astype(dtype).T

    rows_per_chunk = max(1, chunk_elements // candidates)
    for start in range(0, neurons, rows_per_chunk):
        stop = min(start + rows_per_chunk, neurons)
        score = child_columns[start:stop] @ centered_parents
        score *= child_scale[start:stop, None]
        score *= parent_scale[None, :]
        score[:, constant_parent] = _SCORE_CONSTANT_PARENT
        rows = np.arange(stop - start)
        for rank in range(k):
            best = np.argmax(score, axis=1)
            parents[start:stop, rank] = best
            score[rows, best] = _SCORE_TAKEN
    return parents


def _inverse_spread(count: NDArray[np.int64], tokens: int) -> NDArray[np.float64]:
    """``1 / sqrt(count (tokens - count))``, 0 where that is 0."""
    spread = count.astype(np.float64) * (tokens - count)
    return np.divide(1.0, np.sqrt(spread), out=np.zeros_like(spread), where=spread > 0)


def trace_parents(
    activity: Sequence[ArrayLike], k: int = 2, chunk_elements: int = 1 << 24
) -> list[IndexArray]:
    """The layer correlation table of a whole trace (one ``(tokens, neurons)``
    array per block, in execution order): :func:`correlation_parents` of
    each block against the one before; block 0 gets ``(n, 0)``."""
    blocks = [np.asarray(block, dtype=np.bool_) for block in activity]
    tables: list[IndexArray] = []
    for index, block in enumerate(blocks):
        if block.ndim != 2:
            raise CimError(f"activity of block {index} must be (tokens, neurons)")
        if index == 0:
            tables.append(np.zeros((block.shape[1], 0), dtype=np.int32))
        else:
            tables.append(
                correlation_parents(blocks[index - 1], block, k, chunk_elements)
            )
    return tables


@dataclass(frozen=True)
class PredictionStats:
    """Counts of predicted against actual activity, and the rates from them.

    A vacuous rate (no active neuron to find, or none predicted) is 1.0.
    """

    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int

    @classmethod
    def of(cls, predicted: BoolArray, actual: BoolArray) -> PredictionStats:
        """The counts of one prediction against what happened."""
        hits = int(np.count_nonzero(predicted & actual))
        predicted_count = int(np.count_nonzero(predicted))
        actual_count = int(np.count_nonzero(actual))
        return cls(
            true_positive=hits,
            false_positive=predicted_count - hits,
            false_negative=actual_count - hits,
            true_negative=actual.size - predicted_count - actual_count + hits,
        )

    def __add__(self, other: PredictionStats) -> PredictionStats:
        return PredictionStats(
            self.true_positive + other.true_positive,
            self.false_positive + other.false_positive,
            self.false_negative + other.false_negative,
            self.true_negative + other.true_negative,
        )

    @property
    def total(self) -> int:
        return (
            self.true_positive
            + self.false_positive
            + self.false_negative
            + self.true_negative
        )

    @property
    def accuracy(self) -> float:
        """Share of neurons predicted right, active or not (inflated by the
        many true negatives of a sparse trace)."""
        if self.total == 0:
            return 1.0
        return (self.true_positive + self.true_negative) / self.total

    @property
    def recall(self) -> float:
        """Share of the active neurons that were predicted active."""
        found = self.true_positive + self.false_negative
        return self.true_positive / found if found else 1.0

    @property
    def precision(self) -> float:
        """Share of the neurons predicted active that were active."""
        claimed = self.true_positive + self.false_positive
        return self.true_positive / claimed if claimed else 1.0


@dataclass(frozen=True)
class PredictorRun:
    """What :meth:`OnlinePredictor.run` predicted: per block a ``(tokens,
    neurons)`` bool array, the per-block stats and their sum."""

    predictions: tuple[BoolArray, ...]
    block_stats: tuple[PredictionStats, ...]
    stats: PredictionStats


class OnlinePredictor:
    """The state tables of every block and the correlation table, advanced
    token by token with the actual activity."""

    def __init__(
        self,
        states: Sequence[ArrayLike],
        parents: Sequence[ArrayLike],
        rules: PredictorRules = DEFAULT_RULES,
    ) -> None:
        """``states[b]`` are block ``b``'s states, ``parents[b]`` its
        ``(neurons, k)`` indices into block ``b - 1`` (``k = 0`` for block 0
        or a block predicted from its states alone)."""
        if len(states) != len(parents):
            raise CimError(
                f"{len(states)} state tables but {len(parents)} correlation tables"
            )
        self.rules = rules
        self._states: list[StateArray] = []
        self._parents: list[IndexArray] = []
        for block, (block_states, block_parents) in enumerate(
            zip(states, parents, strict=True)
        ):
            values = np.asarray(block_states)
            if values.ndim != 1 or (
                values.size and (values.min() < 0 or values.max() > rules.max_state)
            ):
                raise CimError(
                    f"states of block {block} must be a vector of 0..{rules.max_state}"
                )
            table = np.asarray(block_parents)
            if table.ndim != 2 or table.shape[0] != values.size:
                raise CimError(
                    f"correlation table of block {block} must have shape "
                    f"({values.size}, k), got {table.shape}"
                )
            if table.shape[1] and block == 0:
                raise CimError("block 0 has no previous block to take parents from")
            if table.size:
                previous = self._states[block - 1].size
                if table.min() < 0 or table.max() >= previous:
                    raise CimError(
                        f"correlation table of block {block} indexes outside "
                        f"the {previous} neurons of block {block - 1}"
                    )
            self._states.append(values.astype(np.uint8))
            self._parents.append(table.astype(np.int32))

    @classmethod
    def from_prefill(
        cls,
        prefill_frequency: Sequence[ArrayLike],
        parents: Sequence[ArrayLike],
        rules: PredictorRules = DEFAULT_RULES,
    ) -> OnlinePredictor:
        """A predictor whose states start from each block's prefill
        frequencies (:func:`initial_states`)."""
        return cls(
            [initial_states(f, rules) for f in prefill_frequency], parents, rules
        )

    @property
    def blocks(self) -> int:
        return len(self._states)

    def states(self, block: int) -> StateArray:
        """A copy of block ``block``'s current states."""
        return self._states[block].copy()

    def parents_active(
        self, block: int, previous_active: ArrayLike | None
    ) -> NDArray[np.int32] | int:
        """``s2``: how many of each neuron's parents are active in
        ``previous_active`` (block ``block - 1`` at this token; ``None`` or
        no parents gives 0). Works on one token's vector or a
        ``(tokens, neurons)`` array."""
        table = self._parents[block]
        if previous_active is None or table.shape[1] == 0:
            return 0
        previous = np.asarray(previous_active, dtype=np.bool_)
        return previous[..., table].sum(axis=-1, dtype=np.int32)

    def predict(self, block: int, previous_active: ArrayLike | None) -> BoolArray:
        """Block ``block``'s predicted activity at this token, from its
        states and the actual activity of block ``block - 1``."""
        return predict(
            self._states[block], self.parents_active(block, previous_active), self.rules
        )

    def observe(self, block: int, active: ArrayLike) -> None:
        """Advance block ``block``'s states with its actual activity."""
        self._states[block] = update_states(self._states[block], active, self.rules)

    def hot(self, block: int) -> BoolArray:
        """Block ``block``'s neurons that count as hot now."""
        return hot(self._states[block], self.rules)

    def run(self, activity: Sequence[ArrayLike]) -> PredictorRun:
        """Predict then observe every token of a trace (one ``(tokens,
        neurons)`` array per block), advancing the states.

        Blocks only meet through the actual activity, so running block by
        block gives what running token by token does.
        """
        if len(activity) != self.blocks:
            raise CimError(
                f"the trace has {len(activity)} blocks, the predictor {self.blocks}"
            )
        trace = [np.asarray(block, dtype=np.bool_) for block in activity]
        tokens = {block.shape[0] for block in trace if block.ndim == 2}
        for index, block in enumerate(trace):
            if block.ndim != 2 or block.shape[1] != self._states[index].size:
                raise CimError(
                    f"activity of block {index} must have shape (tokens, "
                    f"{self._states[index].size}), got {block.shape}"
                )
        if len(tokens) > 1:
            raise CimError(f"blocks cover different token counts: {sorted(tokens)}")
        predictions: list[BoolArray] = []
        block_stats: list[PredictionStats] = []
        for index, block in enumerate(trace):
            parent_counts = self.parents_active(
                index, trace[index - 1] if index else None
            )
            predicted, after = predict_tokens(
                self._states[index], parent_counts, block, self.rules
            )
            if block.shape[0]:
                self._states[index] = after[-1]
            predictions.append(predicted)
            block_stats.append(PredictionStats.of(predicted, block))
        total = sum(block_stats, PredictionStats(0, 0, 0, 0))
        return PredictorRun(tuple(predictions), tuple(block_stats), total)
