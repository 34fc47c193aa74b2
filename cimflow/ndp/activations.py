"""Activation traces for Hermes: a seeded synthetic generator fitted to the
published statistics, importers for user-supplied data, and the statistics
that check them (``shared/reference/hermes.md`` §4.1, §5, §10.2, §10.3).

A trace is a sequence of *sparse blocks* in execution order (for a
transformer, block ``2l`` holds layer ``l``'s QKV input neurons and block
``2l + 1`` its MLP neurons); per block a ``(tokens, neurons)`` boolean matrix
says which neurons are active (nonzero after the ReLU) at each decode step.

What the generator reproduces (paper Sec. II-B, III-A to III-C, Fig. 4):

- **Skew** (§4.1, Sec. III-A): in a sequence, the top ``hot_fraction``
  (20 %) of a block's neurons hold ``hot_share`` (80 %) of its
  activations, at a sparsity of 70-90 % (Sec. II-B).
- **Temporal locality** (Sec. III-B, Fig. 4a): the overlap
  ``|A_t & A_t+k| / |A_t|`` of the active sets of tokens ``k`` apart is over
  0.9 at ``k = 1`` and about 0.7 from ``k = 10`` on, flat beyond 25.
- **Layer correlation** (§5, Fig. 4b): every neuron has two parents in the
  block before it and is active in at least 90 % of the tokens in which a
  parent is.
- **Drift** (Sec. III-B, III-C, IV-D; §4.1, §7): which neurons are hot
  depends on the context. About 52 % of the initially hot neurons change
  activity during a sequence (:func:`hot_set_churn`), the hottest neurons
  over many sequences (what an offline profile sees) are not the hottest of
  any one, and the load of a fixed set of neurons (a DIMM's) drifts over
  tens of tokens but changes little within a few.

**The per-token law.** At every token, the neuron of a block at *current*
rank fraction ``U`` (0 is the hottest) is active with probability ``p(U) =
1`` for ``U < max(head, v)`` and ``(v / U)**alpha`` beyond: a power law
capped at 1 whose capped part may extend to a ``head``. ``v`` fixes the
mean ``1 - sparsity``, ``alpha`` the top-fifth share. Each ``p <= 1`` limits
the share to ``hot_fraction / mean``; a larger request (20/80 at 70 %
sparsity is one) is lowered to 95 % of the way from ``hot_fraction`` to that
bound. ``head`` is raised until the expected long-lag overlap reaches
``far_overlap`` (where even ``head = 0`` overlaps more, the law is scaled
by a ``top < 1`` instead, as far as the share allows). So the sparsity and
the skew hold at every token of every sequence; the context only decides
which neurons hold which rank.

**The context.** A neuron takes its rank from its *family* (see Layers), a
family from its ranking score: its base score (the probit of its base rank;
base ranks go to the neurons in a random order, so hot neurons are not
contiguous) plus ``beta`` times its cluster's context, ``beta**2 / (1 +
beta**2) = context_weight``. The families fall into ``context_clusters``
clusters by base rank: the neurons of a cluster are hot in the same
contexts, and their long-run frequency is how common those contexts are, so
neurons of neighbouring frequency share a context. Each cluster's context is
a smooth Gaussian process of unit variance (white noise through two
first-order filters of time constant ``context_tokens``); at every token
the families are ranked by score. Over many sequences a neuron therefore
visits a spread of ranks, and its long-run probability
(:func:`fitted_probabilities`, what an offline profile of many sequences
measures, and what the offline partition is solved on) is the law averaged
over that spread. The head (about a tenth of the neurons, active at every
token of a sequence) rotates: at the defaults under 1 % of the neurons have
a long-run probability of 0.999 or more, and over the long run the top
fifth holds about 76 % of the activations, against 80 % in a sequence.

**Time.** A neuron is active at token ``t`` when a latent ``G_t`` falls
below ``Phi^-1(p(U_t))``. ``G_t`` is standard normal and *sticky*: it keeps
its value from one token to the next with probability ``rho`` and is redrawn
otherwise, so at a fixed rank each neuron is a two-state Markov chain with
``P(active) = p``; ``rho`` is fitted to ``adjacent_overlap``.

**Layers.** Neurons are grouped into *families*, each the neurons of a
narrow band of base ranks in every block, sharing one ``G`` and one rank (a
lineage through the layers). Within a family a neuron with a higher
threshold is active whenever one with a lower threshold is, so a child whose
parents are its family's neurons of nearly its own rank in the previous
block fires with them. Two things break the chain, each at a rate of ``(1 -
parent_correlation) / 2``: a neuron may get a private ``G`` (same ``rho``,
same rank) and follow no one, and from one block to the next a family's
lineage may be redrawn, so that correlation fades over blocks (to half in
about ``1.4 / (1 - parent_correlation)`` blocks, 14 by default) instead of
tying every layer to the first. Together they make ``P(child | a parent)``
about ``(1 + parent_correlation) / 2``: ``parent_correlation`` is a lower
bound.

**Fitting.** ``head``, ``alpha``, ``v`` and ``rho`` are solved from the
targets with the model's exact expected overlaps: the law as a step
function of the probit of the rank, a context ``z`` moving the base probit
``x`` to ``(x - beta * z) / sqrt(1 + beta**2)`` (a score's rank among many
clusters' families), integrated over base ranks and Gauss-Hermite pairs of
contexts. Everything random comes from ``numpy.random.Generator(PCG64(seed))``
in a fixed order: the same arguments give the same trace.

**Defaults.** The targets are the paper's (:class:`TraceStatistics`). The
context's three parameters are not published; they are calibration
constants. A smooth context of time constant 200 tokens keeps the overlap
within about 0.02 from 10 to 40 tokens yet moves within a 256-token
sequence (128 prompt and 128 output tokens, §9.3). ``context_weight`` 0.1
and ``context_clusters`` 256 were then chosen against two published
consequences of the drift: the churn of the hot set (Sec. III-B: 52 %;
0.54-0.56 at the defaults over 256 tokens) and the ablation chain of §9.3
(§11 test 5: MLP-block latency of the random, partition, adjust and hermes
policies on LLaMA2-70B shapes, :mod:`cimflow.ndp.run` with 4 simulated
layers; published 1.63x, 1.33x, 1.29x; about 1.59x, 1.20x, 1.11x at the
defaults over seeds 0-5). A heavier context or fewer clusters move the hot
set and the DIMMs' loads more, raising the last two ratios and lowering the
first.

Known simplifications and limits: the 20/80 split holds per sequence (what
a trace measures); long-run frequencies are flatter (above). The top-fifth
share measured on a short trace is a little above the law's (the top fifth
of noisy frequencies is picked partly by luck): by about 0.01 at 85 %
sparsity and 0.03 at 90 % over 256 tokens. A neuron's parents are neurons
of nearly its own rank, and blocks within a few layers of each other have
nearly the same activity pattern by rank (only private neurons and redrawn
lineages differ); a family's neurons, of nearly equal rank, fire together,
so wherever a block's neurons are placed by frequency their loads move in
steps of a family. The overlap decays geometrically between lags 1 and 10,
so with ``adjacent_overlap = 0.95`` (Falcon-40B) it is still about 0.74 at
lag 10. Where the share leaves no room to lower the law (at 70 % sparsity)
the long-lag overlap stays above the target (about 0.76).

Importers (:func:`load_frequencies`, :func:`load_trace`) read user-supplied
NumPy files; nothing is downloaded. PowerInfer's per-layer activation counts
(``activation_{i}.pt``, §10.2), exported with NumPy, are one source; given
to :func:`synthetic_trace` they are long-run probabilities, whose per-token
law is found by deconvolution.
"""

from __future__ import annotations

import functools
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from cimflow.errors import CimError

BoolMatrix = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int32]
_Latent = npt.NDArray[np.float32]

FAR_LAGS: Final = (10, 25, 40)
"""Lags whose mean expected overlap the generator fits to ``far_overlap``."""
CONTEXT_CLUSTERS: Final = 256
"""Default number of context clusters (bands of families by rank)."""
PARENTS_PREFIX: Final = "parents_"
"""Key prefix of a parent table in a trace file (:func:`load_trace`)."""

_MIN_SPARSITY, _MAX_SPARSITY = 0.5, 0.99
_SHARE_HEADROOM = 0.95
_MAX_RHO = 0.995
_PROBIT_RANGE = 6.0  # base and per-token ranks are tabulated over +-6 probits
_LAW_POINTS = 2401
_BASE_POINTS = 512
_PAIR_NODES = 10
_RANK_ROWS = 1024
_DECONVOLUTION_RANGE = 4.5
_DECONVOLUTION_STEPS = 400
_DECONVOLUTION_ITERATIONS = 2000

# The standard normal CDF on a fine grid (step 1e-3), read both ways.
_GRID: Final = np.linspace(-8.5, 8.5, 17001)
_CDF: Final = np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in _GRID])
_LOWER_GRID: Final = _GRID[_GRID <= 0.0]
_LOWER_CDF: Final = _CDF[: _LOWER_GRID.size]


def _normal_cdf(x: FloatArray) -> FloatArray:
    return np.interp(x, _GRID, _CDF)


def _probit(p: FloatArray) -> FloatArray:
    """``Phi^-1(p)``: ``-inf`` at 0 and ``+inf`` at 1 (never, always active)."""
    lower = np.minimum(p, 1.0 - p)
    x = np.interp(lower, _LOWER_CDF, _LOWER_GRID)
    x = np.where(p > 0.5, -x, x)
    x[p <= 0.0] = -np.inf
    x[p >= 1.0] = np.inf
    return x


@dataclass(frozen=True)
class TraceStatistics:
    """The statistics a synthetic trace is fitted to; defaults from the paper.

    - ``sparsity``: mean fraction of inactive neurons, 0.85. The paper's ReLU
      models run at 70-90 % (Sec. II-B, hermes.md §4.1); 0.5-0.99 accepted.
    - ``hot_fraction``, ``hot_share``: the top 20 % of the neurons hold 80 %
      of the activations (Sec. III-A, §4.1).
    - ``adjacent_overlap``: overlap of consecutive tokens' active sets, 0.92
      (over 0.9 in Fig. 4a, Sec. III-B; use 0.95 for Falcon-40B, §10.3).
    - ``far_overlap``: overlap from 10 tokens apart on, 0.70 (Fig. 4a),
      fitted as the mean over :data:`FAR_LAGS`.
    - ``parent_correlation``: lower bound on ``P(child | a parent active)``,
      0.9 (§5, Fig. 4b: "over 0.9").
    - ``context_weight``: share of a family's ranking score that its
      cluster's context carries, 0.1 (``beta**2 / (1 + beta**2)``, ``beta``
      the context's weight against the base score).
    - ``context_tokens``: time constant of the smooth context, 200 tokens
      (its correlation ``k`` tokens apart is about ``(1 + k / 200) *
      exp(-k / 200)``: 0.98 at 40 tokens, 0.87 at 128, 0.63 at 256).
    - ``context_clusters``: how many clusters (bands of families by base
      rank, each with its own context) a trace has, 256 (fewer when a block
      has fewer than 512 neurons).

    The three context parameters are not published. They are calibration
    constants (the module docstring says how they were chosen): the context
    must be weak and slow enough that the overlap stays flat from 10 to 40
    tokens, and strong enough that the hot set and the DIMMs' loads drift
    as the paper reports.
    """

    sparsity: float = 0.85
    hot_fraction: float = 0.2
    hot_share: float = 0.8
    adjacent_overlap: float = 0.92
    far_overlap: float = 0.70
    parent_correlation: float = 0.9
    context_tokens: float = 200.0
    context_weight: float = 0.1
    context_clusters: int = CONTEXT_CLUSTERS

    def __post_init__(self) -> None:
        if not _MIN_SPARSITY <= self.sparsity <= _MAX_SPARSITY:
            raise CimError(
                f"trace sparsity {self.sparsity!r} is outside [{_MIN_SPARSITY}, "
                f"{_MAX_SPARSITY}] (the paper's models run at 0.70-0.90)"
            )
        if not 0.0 < self.hot_fraction < 1.0:
            raise CimError(
                f"trace hot_fraction {self.hot_fraction!r} is outside (0, 1)"
            )
        if not self.hot_fraction < self.hot_share < 1.0:
            raise CimError(
                f"trace hot_share {self.hot_share!r} is outside (hot_fraction "
                f"{self.hot_fraction!r}, 1)"
            )
        if not 0.0 < self.far_overlap < self.adjacent_overlap < 1.0:
            raise CimError(
                f"trace overlaps need 0 < far_overlap ({self.far_overlap!r}) < "
                f"adjacent_overlap ({self.adjacent_overlap!r}) < 1"
            )
        if not 0.0 <= self.parent_correlation <= 1.0:
            raise CimError(
                f"trace parent_correlation {self.parent_correlation!r} is outside "
                "[0, 1]"
            )
        if not self.context_tokens > 0.0:
            raise CimError(
                f"trace context_tokens {self.context_tokens!r} must be positive"
            )
        if not 0.0 <= self.context_weight < 1.0:
            raise CimError(
                f"trace context_weight {self.context_weight!r} is outside [0, 1)"
            )
        clusters = self.context_clusters
        if clusters < 1 or clusters != int(clusters):
            raise CimError(
                f"trace context_clusters {clusters!r} must be a positive integer"
            )


DEFAULT_STATISTICS: Final = TraceStatistics()


@dataclass(frozen=True)
class ActivationTrace:
    """Per-block activity of a run, in execution order.

    ``active[b]`` is block b's ``(tokens, neurons)`` activity. ``parents[b]``
    holds, per neuron of block b, indices of its correlated neurons in block
    ``b - 1``: ``(neurons, 2)`` in a synthetic trace, ``(neurons, 0)`` for
    block 0 and wherever none are known. Left empty, every block gets
    ``(neurons, 0)``.
    """

    active: tuple[BoolMatrix, ...]
    parents: tuple[IndexArray, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.active:
            raise CimError("an activation trace needs at least one block")
        tokens = self.active[0].shape[0]
        for b, block in enumerate(self.active):
            if block.ndim != 2 or block.shape[0] != tokens or block.dtype != np.bool_:
                raise CimError(
                    f"activity of block {b} is {block.dtype} {block.shape}, "
                    f"expected bool ({tokens}, neurons)"
                )
        if not self.parents:
            empty = tuple(
                np.zeros((block.shape[1], 0), dtype=np.int32) for block in self.active
            )
            object.__setattr__(self, "parents", empty)
        if len(self.parents) != len(self.active):
            raise CimError(
                f"trace has {len(self.active)} blocks but {len(self.parents)} "
                "parent tables"
            )
        for b, table in enumerate(self.parents):
            if table.ndim != 2 or table.shape[0] != self.active[b].shape[1]:
                raise CimError(
                    f"parents of block {b} have shape {table.shape}, expected "
                    f"({self.active[b].shape[1]}, k)"
                )

    @property
    def tokens(self) -> int:
        """Number of tokens (rows of every block)."""
        return int(self.active[0].shape[0])

    @property
    def neurons(self) -> tuple[int, ...]:
        """Neurons per block."""
        return tuple(int(block.shape[1]) for block in self.active)

    def frequencies(
        self, first: int = 0, stop: int | None = None
    ) -> tuple[FloatArray, ...]:
        """Per block, each neuron's activation frequency over tokens
        ``first:stop``."""
        return tuple(
            block[first:stop].mean(axis=0, dtype=np.float64) for block in self.active
        )


# ---------------------------------------------------------------------------
# The per-token law


@dataclass(frozen=True)
class _Shape:
    """``p(u) = top`` for ``u < max(head, v)``, ``top * (v / u)**alpha``
    beyond."""

    head: float
    v: float
    alpha: float
    top: float = 1.0

    def at(self, u: FloatArray) -> FloatArray:
        cap = max(self.head, self.v)
        with np.errstate(divide="ignore", over="ignore"):
            tail = (self.v / u) ** self.alpha
        return self.top * np.where(u < cap, 1.0, tail)

    def _part(self, exponent: float, a: float, b: float) -> float:
        """Integral of ``(v / u)**exponent`` from ``a`` to ``b`` (``v <= a``)."""
        if b <= a:
            return 0.0
        v = self.v
        if abs(1.0 - exponent) < 1e-9:
            return v * math.log(b / a)
        return (b * (v / b) ** exponent - a * (v / a) ** exponent) / (1.0 - exponent)

    def moments(self, fraction: float) -> tuple[float, float]:
        """Mean of ``p`` and the share of its top ``fraction``."""
        cap = max(self.head, self.v)
        mean = cap + self._part(self.alpha, cap, 1.0)
        if fraction <= cap:
            top = fraction
        else:
            top = cap + self._part(self.alpha, cap, fraction)
        return self.top * mean, top / mean


def _shape_for(
    head: float, alpha: float, mean: float, fraction: float, top: float
) -> _Shape:
    """The shape with ``head``, ``alpha`` and ``top`` whose mean is ``mean``
    (as close as it gets: with a large head the mean may stay above it)."""
    low, high = 0.0, mean
    for _ in range(60):
        v = 0.5 * (low + high)
        if _Shape(head, v, alpha, top).moments(fraction)[0] < mean:
            low = v
        else:
            high = v
    return _Shape(head, 0.5 * (low + high), alpha, top)


def _fit_shape(level: float, statistics: TraceStatistics) -> _Shape | None:
    """The shape at ``level`` (a head of ``level`` when positive, a top of
    ``1 + level`` when negative) with the statistics' mean and share; None
    when there is none."""
    head, top = max(0.0, level), min(1.0, 1.0 + level)
    mean = 1.0 - statistics.sparsity
    fraction = statistics.hot_fraction
    share = _feasible_share(statistics)
    if head >= mean or top <= 0.0:
        return None
    low, high = 1e-3, 64.0
    for _ in range(50):
        alpha = 0.5 * (low + high)
        shape = _shape_for(head, alpha, mean, fraction, top)
        if shape.moments(fraction)[1] < share:
            low = alpha
        else:
            high = alpha
    shape = _shape_for(head, 0.5 * (low + high), mean, fraction, top)
    got_mean, got_share = shape.moments(fraction)
    if abs(got_mean - mean) > 1e-6 * mean or abs(got_share - share) > 1e-4:
        return None
    return shape


def _feasible_share(statistics: TraceStatistics) -> float:
    mean = 1.0 - statistics.sparsity
    fraction = statistics.hot_fraction
    bound = min(1.0, fraction / mean)
    return min(statistics.hot_share, fraction + _SHARE_HEADROOM * (bound - fraction))


@dataclass(frozen=True)
class _Law:
    """A per-token law as a decreasing step function of the probit
    ``x = Phi^-1(u)`` of the rank fraction ``u``: ``floor`` plus the
    ``jumps`` of the ``steps`` right of ``x``."""

    floor: float
    steps: FloatArray
    jumps: FloatArray

    @functools.cached_property
    def _above(self) -> FloatArray:
        # _above[k]: the jumps of steps k, k + 1, ... plus the floor.
        return self.floor + np.concatenate([np.cumsum(self.jumps[::-1])[::-1], [0.0]])

    def at_probit(self, x: FloatArray) -> FloatArray:
        return self._above[np.searchsorted(self.steps, x, side="right")]

    def at(self, u: FloatArray) -> FloatArray:
        return self.at_probit(_probit(u))

    @staticmethod
    def tabulate(x: FloatArray, values: FloatArray) -> _Law:
        """The law that is ``values[k]`` near ``x[k]`` (increasing ``x``,
        decreasing ``values``), stepping midway between the points."""
        steps = 0.5 * (x[1:] + x[:-1])
        return _Law(float(values[-1]), steps, values[:-1] - values[1:])


_LAW_GRID: Final = np.linspace(-_PROBIT_RANGE, _PROBIT_RANGE, _LAW_POINTS)


@functools.lru_cache(maxsize=64)
def _shape_law(shape: _Shape) -> _Law:
    return _Law.tabulate(_LAW_GRID, shape.at(_normal_cdf(_LAW_GRID)))


def fitted_probabilities(
    neurons: int, statistics: TraceStatistics = DEFAULT_STATISTICS
) -> FloatArray:
    """A block's long-run activation probabilities in decreasing order: the
    fitted per-token law averaged over the contexts (see the module
    docstring), at base rank fractions ``(rank + 0.5) / neurons``."""
    if neurons < 1:
        raise CimError(f"a block needs at least one neuron, got {neurons}")
    return _fitted_long_run(neurons, statistics).copy()


@functools.lru_cache(maxsize=16)
def _fitted_long_run(neurons: int, statistics: TraceStatistics) -> FloatArray:
    shape, dynamics = _fit_model(statistics)
    u = (np.arange(neurons, dtype=np.float64) + 0.5) / neurons
    return np.minimum.accumulate(_long_run(_shape_law(shape), u, dynamics.beta))


# ---------------------------------------------------------------------------
# The context and what it does to the law


@dataclass(frozen=True)
class _Dynamics:
    rho: float  # probability that a latent keeps its value to the next token
    beta: float  # context weight in a family's ranking score
    phi: float  # pole of the context's second-order filter, per token

    def correlation(self, lag: int) -> float:
        """Correlation of a cluster's context ``lag`` tokens apart."""
        phi = self.phi
        return phi**lag * (1.0 + lag * (1.0 - phi * phi) / (1.0 + phi * phi))


def _context_beta(statistics: TraceStatistics) -> float:
    w = statistics.context_weight
    return math.sqrt(w / (1.0 - w))


def _long_run(law: _Law, u: FloatArray, beta: float) -> FloatArray:
    """The law averaged over the context at base rank fractions ``u``.

    A neuron at base probit ``x`` ranks at ``(x - beta * z) / sigma`` in a
    context ``z``, so each step ``s`` of the law is below it with
    probability ``Phi((sigma * s - x) / beta)``: exact for a step law.
    """
    if beta == 0.0:
        return law.at(u)
    sigma = math.sqrt(1.0 + beta * beta)
    x = _probit(u)
    rows = x if x.size <= _RANK_ROWS else _probit(_quantiles(_RANK_ROWS))
    mass = _normal_cdf((sigma * law.steps[None, :] - rows[:, None]) / beta)
    p = law.floor + mass @ law.jumps
    if rows is not x:
        p = np.interp(x, rows, p)
    return np.clip(p, 0.0, 1.0)


def _quantiles(count: int) -> FloatArray:
    return (np.arange(count, dtype=np.float64) + 0.5) / count


@dataclass(frozen=True)
class _PairMoments:
    """Over base ranks and a context pair ``lag`` tokens apart: the mean of
    the law, of ``min(p_t, p_t+lag)`` (both active when the latent was kept)
    and of ``p_t * p_t+lag`` (when it was redrawn)."""

    mean: float
    kept: float
    redrawn: float

    def overlap(self, stay: float) -> float:
        return (stay * self.kept + (1.0 - stay) * self.redrawn) / self.mean


_BASE_GRID: Final = np.linspace(-_PROBIT_RANGE, _PROBIT_RANGE, _BASE_POINTS)
_BASE_WEIGHTS: Final = np.exp(-0.5 * _BASE_GRID**2) / np.exp(-0.5 * _BASE_GRID**2).sum()


def _pair_moments(law: _Law, beta: float, correlation: float) -> _PairMoments:
    """Gauss-Hermite over the context pair, a fine grid over base ranks
    (where the steps are)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(_PAIR_NODES)
    weights = weights / weights.sum()
    common = nodes[:, None] * math.sqrt((1.0 + correlation) / 2.0)
    apart = nodes[None, :] * math.sqrt(max(0.0, 1.0 - correlation) / 2.0)
    pair = (weights[:, None] * weights[None, :]).ravel()
    z1, z2 = (common + apart).ravel(), (common - apart).ravel()
    sigma = math.sqrt(1.0 + beta * beta)
    x = _BASE_GRID[:, None]
    first = law.at_probit((x - beta * z1[None, :]) / sigma)
    second = law.at_probit((x - beta * z2[None, :]) / sigma)
    base = _BASE_WEIGHTS
    return _PairMoments(
        float(base @ first @ pair),
        float(base @ np.minimum(first, second) @ pair),
        float(base @ (first * second) @ pair),
    )


def _pooled(moments: Sequence[tuple[float, _PairMoments]]) -> _PairMoments:
    """Moments of several blocks' laws, weighted by their neurons."""
    total = sum(weight for weight, _ in moments)
    return _PairMoments(
        sum(w * m.mean for w, m in moments) / total,
        sum(w * m.kept for w, m in moments) / total,
        sum(w * m.redrawn for w, m in moments) / total,
    )


def _rho_for(adjacent: _PairMoments, target: float) -> float:
    """``rho`` giving the adjacent overlap ``target`` (clipped to what the
    model reaches): the overlap at lag 1 is linear in ``rho``."""
    low, high = adjacent.overlap(0.0), adjacent.overlap(1.0)
    if high <= low:
        return 0.0
    return min(_MAX_RHO, max(0.0, (target - low) / (high - low)))


def _far_overlap(law: _Law, dynamics: _Dynamics) -> float:
    overlaps = [
        _pair_moments(law, dynamics.beta, dynamics.correlation(k)).overlap(
            dynamics.rho**k
        )
        for k in FAR_LAGS
    ]
    return sum(overlaps) / len(overlaps)


def _bisect_increasing(
    function: functools.partial[float],
    low: float,
    high: float,
    target: float,
    iterations: int,
) -> float:
    """The largest argument in ``[low, high]`` where the increasing
    ``function`` stays below ``target`` (to ``2**-iterations`` of the
    interval), or the nearer end when it is never or always below."""
    if function(low) >= target:
        return low
    if function(high) <= target:
        return high
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if function(mid) < target:
            low = mid
        else:
            high = mid
    return low


def _far_of_level(
    level: float, statistics: TraceStatistics, dynamics: _Dynamics
) -> float:
    shape = _fit_shape(level, statistics)
    if shape is None:
        # Past the feasible levels: a head too large overshoots, a top too
        # low cannot hold the share.
        return math.inf if level > 0.0 else -math.inf
    return _far_overlap(_shape_law(shape), dynamics)


@functools.lru_cache(maxsize=16)
def _fit_model(statistics: TraceStatistics) -> tuple[_Shape, _Dynamics]:
    """The per-token law and the dynamics that meet ``statistics``."""
    beta = _context_beta(statistics)
    phi = math.exp(-1.0 / statistics.context_tokens)
    mean = 1.0 - statistics.sparsity
    dynamics = _Dynamics(0.75, beta, phi)
    shape = _fit_shape(0.0, statistics)
    if shape is None:
        raise CimError(f"no power law fits the trace statistics {statistics}")
    lowest = mean * _feasible_share(statistics) / statistics.hot_fraction - 1.0
    low, high, iterations = lowest, mean, 20
    for _ in range(2):
        far = functools.partial(_far_of_level, statistics=statistics, dynamics=dynamics)
        level = _bisect_increasing(far, low, high, statistics.far_overlap, iterations)
        fitted = _fit_shape(level, statistics)
        while fitted is None and level < mean:
            level += 1e-3  # just past the infeasible tops
            fitted = _fit_shape(level, statistics)
        shape = fitted or shape
        adjacent = _pair_moments(_shape_law(shape), beta, dynamics.correlation(1))
        dynamics = _Dynamics(_rho_for(adjacent, statistics.adjacent_overlap), beta, phi)
        # rho barely moves the overlap from lag 10 on: refine near the level.
        low, high, iterations = max(lowest, level - 0.02), min(mean, level + 0.02), 12
    return shape, dynamics


def _law_of(ranked: FloatArray, statistics: TraceStatistics, beta: float) -> _Law:
    """The per-token law whose long-run average is ``ranked`` (decreasing
    probabilities by base rank): the fitted law when they are the fitted
    long-run probabilities, else a deconvolution."""
    n = ranked.size
    fitted = _fitted_long_run(n, statistics)
    if np.allclose(ranked, fitted, rtol=0.0, atol=1e-12):
        return _shape_law(_fit_model(statistics)[0])
    u = _quantiles(n)
    if beta == 0.0 or n == 1:
        return _Law.tabulate(_probit(u), ranked)
    return _deconvolved(tuple(np.interp(_quantiles(_RANK_ROWS), u, ranked)), beta)


@functools.lru_cache(maxsize=16)
def _deconvolved(target: tuple[float, ...], beta: float) -> _Law:
    """A decreasing law on a coarse step grid whose long-run average is
    ``target`` (at :data:`_RANK_ROWS` rank quantiles) in least squares:
    projected gradient (FISTA) over the floor and the nonnegative jumps,
    which sum to at most 1."""
    b = np.array(target)
    steps = np.linspace(
        -_DECONVOLUTION_RANGE, _DECONVOLUTION_RANGE, _DECONVOLUTION_STEPS
    )
    sigma = math.sqrt(1.0 + beta * beta)
    rows = _probit(_quantiles(b.size))
    basis = np.concatenate(
        [
            np.ones((b.size, 1)),
            _normal_cdf((sigma * steps[None, :] - rows[:, None]) / beta),
        ],
        axis=1,
    )
    lipschitz = float(np.linalg.norm(basis, 2)) ** 2
    current = np.zeros(basis.shape[1])
    momentum = current.copy()
    t = 1.0
    for _ in range(_DECONVOLUTION_ITERATIONS):
        gradient = basis.T @ (basis @ momentum - b)
        following = _onto_capped_simplex(momentum - gradient / lipschitz)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        momentum = following + (t - 1.0) / t_next * (following - current)
        current, t = following, t_next
    return _Law(float(current[0]), steps, current[1:])


def _onto_capped_simplex(v: FloatArray) -> FloatArray:
    """Euclidean projection onto ``{w >= 0, sum(w) <= 1}``."""
    clipped = np.maximum(v, 0.0)
    if clipped.sum() <= 1.0:
        return clipped
    ordered = np.sort(v)[::-1]
    excess = np.cumsum(ordered) - 1.0
    k = int(np.nonzero(ordered - excess / np.arange(1, v.size + 1) > 0.0)[0][-1])
    return np.maximum(v - excess[k] / (k + 1), 0.0)


# ---------------------------------------------------------------------------
# The generator


def _sticky_normal(
    rng: np.random.Generator, tokens: int, columns: int, stay: float
) -> _Latent:
    """Standard normal columns that keep their value from one token to the
    next with probability ``stay`` and are redrawn otherwise."""
    values = rng.standard_normal((tokens, columns), dtype=np.float32)
    redraw = rng.random((tokens, columns), dtype=np.float32) >= stay
    redraw[0] = True
    source = np.where(redraw, np.arange(tokens, dtype=np.int32)[:, None], 0)
    np.maximum.accumulate(source, axis=0, out=source)
    return np.take_along_axis(values, source, axis=0)


def _context(
    rng: np.random.Generator, tokens: int, clusters: int, phi: float
) -> FloatArray:
    """Smooth contexts of unit variance, one column per cluster: white noise
    through two first-order filters of pole ``phi`` (an AR(2) process with a
    double root), started in its stationary state."""
    noise = rng.standard_normal((tokens, clusters))
    z = np.empty((tokens, clusters))
    z[0] = noise[0]
    first = 2.0 * phi / (1.0 + phi * phi)  # correlation one token apart
    if tokens > 1:
        z[1] = first * z[0] + math.sqrt(1.0 - first * first) * noise[1]
    scale = (1.0 - phi * phi) ** 1.5 / math.sqrt(1.0 + phi * phi)
    for t in range(2, tokens):
        z[t] = 2.0 * phi * z[t - 1] - phi * phi * z[t - 2] + scale * noise[t]
    return z


def _family_ranks(scores: FloatArray) -> npt.NDArray[np.int32]:
    """Per token, each family's rank by decreasing score (0 is the top)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty(order.shape, dtype=np.int32)
    np.put_along_axis(
        ranks, order, np.arange(scores.shape[1], dtype=np.int32)[None, :], axis=1
    )
    return ranks


def _check_stationary(
    stationary: Sequence[npt.ArrayLike], counts: list[int]
) -> list[FloatArray]:
    if len(stationary) != len(counts):
        raise CimError(
            f"stationary has {len(stationary)} blocks but the trace has {len(counts)}"
        )
    result: list[FloatArray] = []
    for b, (values, n) in enumerate(zip(stationary, counts, strict=True)):
        p = np.asarray(values, dtype=np.float64)
        if p.shape != (n,):
            raise CimError(
                f"stationary probabilities of block {b} have shape {p.shape}, "
                f"expected ({n},)"
            )
        bad = ~((p >= 0.0) & (p <= 1.0))
        if bad.any():
            i = int(np.argmax(bad))
            raise CimError(
                f"stationary probability of block {b} neuron {i} is {p[i]!r}, "
                "outside [0, 1]"
            )
        result.append(p)
    return result


def synthetic_trace(
    neurons_per_block: Sequence[int],
    tokens: int,
    *,
    seed: int,
    statistics: TraceStatistics = DEFAULT_STATISTICS,
    stationary: Sequence[npt.ArrayLike] | None = None,
) -> ActivationTrace:
    """A deterministic synthetic trace of ``tokens`` tokens fitted to
    ``statistics`` (the module docstring describes the model).

    ``neurons_per_block`` lists the blocks in execution order. ``stationary``
    replaces the fitted law by per-block long-run probabilities (imported
    frequencies, :func:`load_frequencies`): the per-token law of a block is
    the one whose average over the contexts they are (exact for
    :func:`fitted_probabilities`, a least-squares deconvolution otherwise),
    and a neuron given 0 or 1 is never or always active. ``sparsity``,
    ``hot_fraction``, ``hot_share`` and ``far_overlap`` are then unused.
    Each neuron of block ``b > 0`` gets two parents in block ``b - 1``.
    """
    counts = [int(n) for n in neurons_per_block]
    if not counts:
        raise CimError("a synthetic trace needs at least one block")
    for b, n in enumerate(counts):
        if n < 1:
            raise CimError(f"block {b} has {n} neurons; it needs at least one")
    if tokens < 1:
        raise CimError(f"a synthetic trace needs at least one token, got {tokens}")
    rng = np.random.Generator(np.random.PCG64(seed))

    # Per block: the per-token law, the neuron at each base rank, and the
    # neurons pinned always (1) or never (0) active.
    laws: list[_Law] = []
    order: list[npt.NDArray[np.intp]] = []
    pinned: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = []
    beta = _context_beta(statistics)
    if stationary is None:
        shape, dynamics = _fit_model(statistics)
        for n in counts:
            laws.append(_shape_law(shape))
            order.append(rng.permutation(n))
    else:
        phi = math.exp(-1.0 / statistics.context_tokens)
        adjacent = _Dynamics(0.0, beta, phi).correlation(1)
        of_law: dict[int, _PairMoments] = {}  # blocks often share a law
        weights: list[tuple[float, _PairMoments]] = []
        for p in _check_stationary(stationary, counts):
            ranked = np.argsort(-p, kind="stable")
            order.append(ranked)
            law = _law_of(p[ranked], statistics, beta)
            laws.append(law)
            pinned.append((np.flatnonzero(p >= 1.0), np.flatnonzero(p <= 0.0)))
            if id(law) not in of_law:
                of_law[id(law)] = _pair_moments(law, beta, adjacent)
            weights.append((p.size, of_law[id(law)]))
        rho = _rho_for(_pooled(weights), statistics.adjacent_overlap)
        dynamics = _Dynamics(rho, beta, phi)

    families = max(1, min(counts) // 2)
    clusters = min(families, statistics.context_clusters)
    cluster_of_family = np.arange(families) * clusters // families  # rank bands
    base = -_probit(_quantiles(families))
    context = _context(rng, tokens, clusters, dynamics.phi)
    scores = base + dynamics.beta * context[:, cluster_of_family]
    rank_of_family = _family_ranks(scores).astype(np.float32)

    def latents(count: int) -> _Latent:
        return _sticky_normal(rng, tokens, count, dynamics.rho)

    lineage = latents(families)
    private_rate = mutation_rate = (1.0 - statistics.parent_correlation) / 2.0

    active: list[BoolMatrix] = []
    parents: list[IndexArray] = []
    for b, n in enumerate(counts):
        if b > 0:
            mutated = np.flatnonzero(rng.random(families) < mutation_rate)
            lineage[:, mutated] = latents(mutated.size)
        family = np.arange(n) * families // n  # by base rank
        first = (family * n + families - 1) // families
        size = ((family + 1) * n + families - 1) // families - first
        within = ((np.arange(n) - first + 0.5) / size).astype(np.float32)
        private = rng.random(n) < private_rate
        own = latents(int(private.sum()))
        column = family.copy()
        column[private] = families + np.arange(own.shape[1])
        rank = np.empty(n, dtype=np.intp)  # each neuron's base rank
        rank[order[b]] = np.arange(n)
        # The neuron's rank at each token: its family's, then its place in
        # the family; its threshold is the law's probit there.
        table = _probit(laws[b].at(_quantiles(n))).astype(np.float32)
        now = rank_of_family[:, family[rank]] + within[rank]
        now *= np.float32(n / families)
        index = np.minimum(now.astype(np.int32), n - 1)
        latent = np.concatenate([lineage, own], axis=1)
        block = latent[:, column[rank]] < table[index]
        if pinned:
            always, never = pinned[b]
            block[:, always] = True
            block[:, never] = False
        active.append(block)
        if b == 0:
            parents.append(np.zeros((n, 0), dtype=np.int32))
        else:
            ranks = _parent_ranks(family, families, counts[b - 1])
            parents.append(order[b - 1][ranks][rank].astype(np.int32))
    return ActivationTrace(tuple(active), tuple(parents))


def _parent_ranks(
    family: npt.NDArray[np.intp], families: int, previous: int
) -> npt.NDArray[np.intp]:
    """Per child rank, the ranks of its two parents in a previous block of
    ``previous`` neurons: the family's two ranks nearest the child's rank
    fraction (one rank twice when the family has a single neuron there)."""
    n = family.size
    rank = np.arange(n)
    low = (family * previous + families - 1) // families
    high = ((family + 1) * previous + families - 1) // families
    position = np.floor((2 * rank + 1) * previous / (2 * n) - 0.5).astype(np.intp)
    first = np.clip(position, low, np.maximum(low, high - 2))
    second = np.minimum(first + 1, high - 1)
    return np.stack([first, second], axis=1)


# ---------------------------------------------------------------------------
# Importers


def _natural_key(name: str) -> list[tuple[str, int]]:
    parts = re.split(r"(\d+)", name)
    return [
        (parts[i], int(parts[i + 1]) if i + 1 < len(parts) else -1)
        for i in range(0, len(parts), 2)
    ]


def _read_arrays(
    path: Path, allow_npy: bool
) -> list[tuple[str, npt.NDArray[np.generic]]]:
    """The arrays of a ``.npz`` file, keys in natural order (``block_2``
    before ``block_10``), or the rows of a 2-D (or the one 1-D) ``.npy``
    array, named ``row 0``, ``row 1``, ..."""
    if not path.is_file():
        raise CimError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = sorted(archive.files, key=_natural_key)
                arrays = [(name, archive[name]) for name in names]
        elif suffix == ".npy" and allow_npy:
            array = np.load(path, allow_pickle=False)
            if array.ndim == 1:
                array = array[None, :]
            if array.ndim != 2:
                raise CimError(
                    f"{path}: array of shape {array.shape}; expected (blocks, neurons)"
                )
            arrays = [(f"row {i}", row) for i, row in enumerate(array)]
        else:
            kinds = ".npz or .npy" if allow_npy else ".npz"
            raise CimError(f"{path}: expected a {kinds} file")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CimError(f"{path}: not a readable NumPy file ({error})") from error
    if not arrays:
        raise CimError(f"{path}: holds no arrays")
    return arrays


def _first_bad(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


def load_frequencies(
    path: Path, *, samples: int | None = None
) -> tuple[FloatArray, ...]:
    """Per-block activation frequencies of every neuron from a user's file.

    ``path`` is a ``.npz`` with one 1-D array per block, taken in natural key
    order (``block_0, block_1, ..., block_10``; digits compare as numbers),
    or a ``.npy`` whose rows are the blocks (a 1-D one is one block).

    With ``samples``, every value is a count out of ``samples`` tokens.
    Without it, integer arrays are counts, divided by the largest count in
    the file, and float arrays are frequencies in [0, 1] (pass ``samples``
    for counts stored as floats).
    """
    if samples is not None and samples < 1:
        raise CimError(f"{path}: samples must be positive, got {samples}")
    arrays = _read_arrays(Path(path), allow_npy=True)
    checked: list[tuple[str, FloatArray, bool]] = []
    for key, array in arrays:
        if array.dtype.kind not in "iuf":
            raise CimError(
                f"{path}: {key} has dtype {array.dtype}; expected integer counts "
                "or float frequencies"
            )
        if array.ndim != 1:
            raise CimError(
                f"{path}: {key} has shape {array.shape}; expected one value per neuron"
            )
        if array.size == 0:
            raise CimError(f"{path}: {key} is empty")
        values = array.astype(np.float64)
        bad = ~np.isfinite(values) | (values < 0.0)
        if bad.any():
            i = _first_bad(bad)
            raise CimError(
                f"{path}: {key}{_index_text(i)} = {values[i]!r} is not a "
                "nonnegative number"
            )
        checked.append((key, values, array.dtype.kind != "f"))
    if samples is not None:
        limit, scale = float(samples), float(samples)
        what = f"exceeds samples = {samples}"
    else:
        counts = [values for _, values, is_count in checked if is_count]
        scale = max((float(c.max()) for c in counts), default=1.0)
        if counts and scale == 0.0:
            raise CimError(f"{path}: every count is zero")
        limit = 1.0
        what = "is a frequency above 1 (pass samples= for counts)"
    result: list[FloatArray] = []
    for key, values, is_count in checked:
        if samples is not None or not is_count:
            over = values > limit
            if over.any():
                i = _first_bad(over)
                raise CimError(f"{path}: {key}{_index_text(i)} = {values[i]!r} {what}")
        result.append(values / scale if samples is not None or is_count else values)
    return tuple(result)


def load_trace(path: Path) -> ActivationTrace:
    """A full activation trace from a user's ``.npz`` file.

    Each block is a ``(tokens, neurons)`` array of bools or of 0/1 numbers,
    the blocks in natural key order (``block_0, block_1, ..., block_10``),
    all with the same number of tokens. An optional integer array
    ``parents_<key>`` of shape ``(neurons, k)`` gives block ``<key>``'s
    correlated neurons in the block before it; a block without one gets
    ``(neurons, 0)`` (:func:`cimflow.ndp.predictor.trace_parents` samples
    them from the trace).
    """
    path = Path(path)
    arrays = _read_arrays(path, allow_npy=False)
    named = dict(arrays)
    blocks = [(k, a) for k, a in arrays if not k.startswith(PARENTS_PREFIX)]
    if not blocks:
        raise CimError(f"{path}: holds only parent tables, no blocks")
    keys = [k for k, _ in blocks]
    for k in named:
        if k.startswith(PARENTS_PREFIX) and k[len(PARENTS_PREFIX) :] not in keys:
            raise CimError(f"{path}: {k} names no block")
    active: list[BoolMatrix] = []
    tokens = -1
    for key, array in blocks:
        if array.dtype.kind not in "biuf":
            raise CimError(
                f"{path}: {key} has dtype {array.dtype}; expected bool or 0/1"
            )
        if array.ndim != 2 or array.size == 0:
            raise CimError(
                f"{path}: {key} has shape {array.shape}; expected (tokens, neurons)"
            )
        if array.dtype.kind != "b":
            bad = (array != 0) & (array != 1)
            if bad.any():
                i = _first_bad(bad)
                raise CimError(
                    f"{path}: {key}{_index_text(i)} = {array[i]!r} is not 0 or 1"
                )
        if tokens < 0:
            tokens = array.shape[0]
        elif array.shape[0] != tokens:
            raise CimError(
                f"{path}: {key} has {array.shape[0]} tokens, {keys[0]} has {tokens}"
            )
        active.append(array.astype(np.bool_))
    parents: list[IndexArray] = []
    for b, (key, block) in enumerate(zip(keys, active, strict=True)):
        name = PARENTS_PREFIX + key
        n = block.shape[1]
        if name not in named:
            parents.append(np.zeros((n, 0), dtype=np.int32))
            continue
        table = named[name]
        if table.dtype.kind not in "iu" or table.ndim != 2 or table.shape[0] != n:
            raise CimError(
                f"{path}: {name} is {table.dtype} {table.shape}; expected integer "
                f"({n}, k)"
            )
        previous = active[b - 1].shape[1] if b > 0 else 0
        indices = table.astype(np.int64)
        bad = (indices < 0) | (indices >= previous)
        if bad.any():
            i = _first_bad(bad)
            raise CimError(
                f"{path}: {name}{_index_text(i)} = {int(indices[i])} is not a neuron "
                f"of the block before {key} ({previous} neurons)"
            )
        parents.append(indices.astype(np.int32))
    return ActivationTrace(tuple(active), tuple(parents))


# ---------------------------------------------------------------------------
# Statistics


def sparsity(active: BoolMatrix) -> float:
    """Fraction of inactive (token, neuron) pairs: ``1 - mean activity``."""
    return 1.0 - float(np.mean(active, dtype=np.float64))


def _top_count(neurons: int, fraction: float) -> int:
    return max(1, round(fraction * neurons))


def hot_share(frequencies: npt.ArrayLike, fraction: float = 0.2) -> float:
    """Share of the sum of ``frequencies`` held by the top ``fraction`` of
    the neurons (``round(fraction * neurons)``, at least one); 0 when the sum
    is 0."""
    f = np.asarray(frequencies, dtype=np.float64).ravel()
    if f.size == 0:
        raise CimError("hot_share of no neurons")
    total = float(f.sum())
    if total <= 0.0:
        return 0.0
    top = _top_count(f.size, fraction)
    return float(np.partition(f, f.size - top)[f.size - top :].sum() / total)


def overlap(active: BoolMatrix, lag: int) -> float:
    """Mean over tokens ``t`` of ``|A_t & A_t+lag| / |A_t|`` (Fig. 4a), over
    the tokens whose ``A_t`` is not empty; NaN when all are."""
    tokens = active.shape[0]
    if not 1 <= lag < tokens:
        raise CimError(f"overlap lag {lag} is outside 1..{tokens - 1}")
    now, later = active[:-lag], active[lag:]
    size = now.sum(axis=1, dtype=np.int64)
    both = (now & later).sum(axis=1, dtype=np.int64)
    seen = size > 0
    if not seen.any():
        return math.nan
    ratios: FloatArray = both[seen] / size[seen]
    return float(ratios.mean())


def parent_correlation(
    active_child: BoolMatrix, active_parent: BoolMatrix, parents: npt.ArrayLike
) -> float:
    """``P(child active | at least one of its parents active)``, pooled over
    the child block's neurons and tokens (§5); NaN when no parent is ever
    active."""
    table = np.asarray(parents)
    if table.ndim != 2 or table.shape[0] != active_child.shape[1] or table.shape[1] < 1:
        raise CimError(
            f"parents have shape {table.shape}, expected ({active_child.shape[1]}, k) "
            "with k >= 1"
        )
    if active_parent.shape[0] != active_child.shape[0]:
        raise CimError(
            f"parent block has {active_parent.shape[0]} tokens, child block "
            f"{active_child.shape[0]}"
        )
    any_parent = np.zeros(active_child.shape, dtype=np.bool_)
    for k in range(table.shape[1]):
        any_parent |= active_parent[:, table[:, k]]
    conditions = int(any_parent.sum())
    if conditions == 0:
        return math.nan
    return int((any_parent & active_child).sum()) / conditions


def hot_set_churn(active: BoolMatrix, window: int = 32, fraction: float = 0.2) -> float:
    """Fraction of the initially hot neurons that turn cold later (Sec.
    III-B: about 52 % on LLaMA2-70B).

    A window's hot set holds the neurons active at least as often, in that
    window, as its neuron ranked ``round(fraction * neurons)`` from the top
    (ties included). The initially hot neurons are those of the first
    ``window`` tokens; one churns when it is outside the hot set of a later
    full window. 0 when there is no later full window.
    """
    if window < 1:
        raise CimError(f"churn window must be positive, got {window}")
    windows = active.shape[0] // window
    if windows < 2:
        return 0.0
    counts = active[: windows * window].reshape(windows, window, -1).sum(axis=1)
    neurons = counts.shape[1]
    top = _top_count(neurons, fraction)
    cut = np.partition(counts, neurons - top, axis=1)[:, neurons - top]
    hot = counts >= cut[:, None]
    initial = hot[0]
    churned = (~hot[1:]).any(axis=0) & initial
    return float(churned.sum() / initial.sum())
