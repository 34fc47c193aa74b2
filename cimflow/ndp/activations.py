"""Activation traces for Hermes: a seeded synthetic generator fitted to the
published statistics, importers for user-supplied data, and the statistics
that check them (``shared/reference/hermes.md`` §4.1, §5, §10.2, §10.3).

A trace is a sequence of *sparse blocks* in execution order (for a
transformer, block ``2l`` holds layer ``l``'s QKV input neurons and block
``2l + 1`` its MLP neurons); per block a ``(tokens, neurons)`` boolean matrix
says which neurons are active (nonzero after the ReLU) at each decode step.

What the generator reproduces (paper Sec. II-B, III-A, III-B, Fig. 4):

- **Skew** (§4.1, Sec. III-A): the top ``hot_fraction`` (20 %) of a block's
  neurons hold ``hot_share`` (80 %) of its activations, at a sparsity of
  70-90 % (Sec. II-B).
- **Temporal locality** (Sec. III-B, Fig. 4a): the overlap
  ``|A_t & A_t+k| / |A_t|`` of the active sets of tokens ``k`` apart is over
  0.9 at ``k = 1`` and about 0.7 from ``k = 10`` on, flat beyond 25.
- **Layer correlation** (§5, Fig. 4b): every neuron has two parents in the
  block before it and is active in at least 90 % of the tokens in which a
  parent is.

**Stationary probabilities.** Per block, neuron of rank fraction ``u`` (0 is
the hottest) is active with probability ``p(u) = 1`` for ``u < max(head,
v)`` and ``(v / u)**alpha`` beyond: a power law capped at 1, whose always
active part may extend to a ``head``. ``v`` fixes the mean ``1 - sparsity``,
``alpha`` the top-fifth share. Each ``p <= 1`` limits the share to
``hot_fraction / mean``; a larger request (20/80 at 70 % sparsity is one) is
lowered to 95 % of the way from ``hot_fraction`` to that bound. The pure
power law (``head = 0``) decays to an overlap of ``E[p**2] / E[p]``, about
0.65 at 85 % sparsity; ``head`` is raised until the long-lag overlap reaches
``far_overlap``. Neurons get their ``p`` in a random order, so hot neurons
are not contiguous.

**Time.** Neuron ``i`` is active at token ``t`` when a latent
``Y_t = (G_t - beta * z_t) / sqrt(1 + beta**2)`` falls below
``h_i = Phi^-1(p_i)``. ``Y_t`` is standard normal at every token, so
``P(active) = p_i`` exactly.

- ``G_t`` is *sticky*: it keeps its value from one token to the next with
  probability ``rho`` and is redrawn otherwise. For a fixed context each
  neuron is a two-state Markov chain whose correlation decays as ``rho**k``;
  ``rho`` is fitted to ``adjacent_overlap``.
- ``z_t`` is the *context* of a cluster of neurons, an AR(1) process with a
  correlation time of ``context_tokens`` that carries ``context_weight`` of
  the latent's variance. It moves a cluster's neurons up or down together:
  the hot set drifts, the overlap stays flat over tens of tokens and decays
  towards ``E[p**2] / E[p]`` over hundreds.

**Layers.** Neurons are grouped into *families*, each the neurons of a
narrow band of ranks (nearly equal ``p``) in every block, sharing one ``G``
and one context (a lineage through the layers). Within a family a neuron with
a higher threshold is active whenever one with a lower threshold is, so a
child whose parents are its family's neurons of nearly its own rank in the
previous block fires with them. Two things break the chain, each at a rate of
``(1 - parent_correlation) / 2``: a neuron may get a private ``G`` (same
``rho``, same context) and follow no one, and from one block to the next a
family's lineage may be redrawn, so that correlation fades over blocks (to
half in about ``1.4 / (1 - parent_correlation)`` blocks, 14 by default)
instead of tying every layer to the first. Together they make
``P(child | a parent)`` about ``(1 + parent_correlation) / 2``:
``parent_correlation`` is a lower bound.

``head``, ``alpha``, ``v`` and ``rho`` are solved from the targets with the
model's exact expected overlaps (Gauss-Hermite quadrature over the context).
Everything random comes from ``numpy.random.Generator(PCG64(seed))`` in a
fixed order: the same arguments give the same trace.

Known simplifications and limits: a neuron's parents are neurons of nearly
its own frequency rank, and blocks within a few layers of each other have
nearly the same activity pattern by rank (only private neurons and redrawn
lineages differ). The top-fifth share measured on a short trace is above
that of ``p`` (the top fifth of noisy frequencies is picked partly by luck,
and one trace follows one context path): over 256 tokens by about 0.02 at
85 % sparsity and 0.05 at 90 %, less over longer traces. The overlap decays
geometrically between lags 1 and 10, so with ``adjacent_overlap = 0.95``
(Falcon-40B) it is still about 0.75 at lag 10. Where even ``head = 0``
overlaps more than ``far_overlap`` (at 70 % sparsity, about 0.74), the
long-lag overlap stays above the target.

Importers (:func:`load_frequencies`, :func:`load_trace`) read user-supplied
NumPy files; nothing is downloaded. PowerInfer's per-layer activation counts
(``activation_{i}.pt``, §10.2), exported with NumPy, are one source.
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
"""Most context clusters in a trace, each with its own AR(1) context."""
PARENTS_PREFIX: Final = "parents_"
"""Key prefix of a parent table in a trace file (:func:`load_trace`)."""

_MIN_SPARSITY, _MAX_SPARSITY = 0.5, 0.99
_SHARE_HEADROOM = 0.95
_MAX_RHO = 0.995
_QUADRATURE_NODES = 8
_PROBABILITY_SAMPLES = 256

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
    - ``context_tokens``, ``context_weight``: correlation time (tokens) and
      share of the latent variance of the drifting context. Not from the
      paper: chosen so that the overlap stays flat from 25 to 40 tokens
      while the hot set still drifts.
    """

    sparsity: float = 0.85
    hot_fraction: float = 0.2
    hot_share: float = 0.8
    adjacent_overlap: float = 0.92
    far_overlap: float = 0.70
    parent_correlation: float = 0.9
    context_tokens: float = 400.0
    context_weight: float = 0.1

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
# The stationary distribution


@dataclass(frozen=True)
class _Shape:
    """``p(u) = 1`` for ``u < max(head, v)``, ``(v / u)**alpha`` beyond."""

    head: float
    v: float
    alpha: float

    def at(self, u: FloatArray) -> FloatArray:
        cap = max(self.head, self.v)
        with np.errstate(divide="ignore"):
            tail = (self.v / u) ** self.alpha
        return np.where(u < cap, 1.0, tail)

    def _part(self, exponent: float, a: float, b: float) -> float:
        """Integral of ``(v / u)**exponent`` from ``a`` to ``b`` (``v <= a``)."""
        if b <= a:
            return 0.0
        v = self.v
        if abs(1.0 - exponent) < 1e-9:
            return v * math.log(b / a)
        return (b * (v / b) ** exponent - a * (v / a) ** exponent) / (1.0 - exponent)

    def moments(self, fraction: float) -> tuple[float, float, float]:
        """Mean of ``p``, share of its top ``fraction`` and ``E[p^2] / E[p]``."""
        cap = max(self.head, self.v)
        mean = cap + self._part(self.alpha, cap, 1.0)
        if fraction <= cap:
            top = fraction
        else:
            top = cap + self._part(self.alpha, cap, fraction)
        square = cap + self._part(2.0 * self.alpha, cap, 1.0)
        return mean, top / mean, square / mean


def _shape_for(head: float, alpha: float, mean: float, fraction: float) -> _Shape:
    """The shape with ``head`` and ``alpha`` whose mean is ``mean`` (as close
    as it gets: with a large head the mean may stay above it)."""
    low, high = 0.0, mean
    for _ in range(60):
        v = 0.5 * (low + high)
        if _Shape(head, v, alpha).moments(fraction)[0] < mean:
            low = v
        else:
            high = v
    return _Shape(head, 0.5 * (low + high), alpha)


def _fit_shape(head: float, statistics: TraceStatistics) -> _Shape | None:
    """The shape with ``head`` that has the statistics' mean and share; None
    when there is none."""
    mean = 1.0 - statistics.sparsity
    fraction = statistics.hot_fraction
    share = _feasible_share(statistics)
    if head >= mean:
        return None
    low, high = 1e-3, 64.0
    for _ in range(50):
        alpha = 0.5 * (low + high)
        if _shape_for(head, alpha, mean, fraction).moments(fraction)[1] < share:
            low = alpha
        else:
            high = alpha
    shape = _shape_for(head, 0.5 * (low + high), mean, fraction)
    got_mean, got_share, _ = shape.moments(fraction)
    if abs(got_mean - mean) > 1e-6 * mean or abs(got_share - share) > 1e-4:
        return None
    return shape


def _feasible_share(statistics: TraceStatistics) -> float:
    mean = 1.0 - statistics.sparsity
    fraction = statistics.hot_fraction
    bound = min(1.0, fraction / mean)
    return min(statistics.hot_share, fraction + _SHARE_HEADROOM * (bound - fraction))


def fitted_probabilities(
    neurons: int, statistics: TraceStatistics = DEFAULT_STATISTICS
) -> FloatArray:
    """A block's stationary activation probabilities in decreasing order, the
    shape fitted to ``statistics`` evaluated at rank fractions
    ``(rank + 0.5) / neurons`` (see the module docstring)."""
    if neurons < 1:
        raise CimError(f"a block needs at least one neuron, got {neurons}")
    shape, _ = _fit_model(statistics)
    return shape.at((np.arange(neurons, dtype=np.float64) + 0.5) / neurons)


# ---------------------------------------------------------------------------
# Fitting the dynamics


@dataclass(frozen=True)
class _Dynamics:
    rho: float  # probability that a latent keeps its value to the next token
    beta: float  # context weight in the latent, before normalisation
    phi: float  # context AR(1) coefficient per token


def _pair_probabilities(
    thresholds: FloatArray, lag: int, dynamics: _Dynamics
) -> tuple[FloatArray, FloatArray]:
    """``P(active at t and t + lag)`` per threshold when ``G`` was kept over
    the lag and when it was redrawn, in expectation over the context pair."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_NODES)
    weights = weights / weights.sum()
    corr = dynamics.phi**lag
    common = nodes[:, None] * math.sqrt((1.0 + corr) / 2.0)
    apart = nodes[None, :] * math.sqrt((1.0 - corr) / 2.0)
    weight = (weights[:, None] * weights[None, :]).ravel()
    z1, z2 = (common + apart).ravel(), (common - apart).ravel()
    beta = dynamics.beta
    shifted = math.sqrt(1.0 + beta * beta) * thresholds[:, None]
    first = _normal_cdf(shifted + beta * z1[None, :])
    second = _normal_cdf(shifted + beta * z2[None, :])
    kept = _normal_cdf(shifted + beta * np.minimum(z1, z2)[None, :])
    return kept @ weight, (first * second) @ weight


@dataclass(frozen=True)
class _Sample:
    """Stationary probabilities standing for a distribution: ``always`` of
    it is always active, the rest is spread evenly over ``p``."""

    always: float
    p: FloatArray

    @functools.cached_property
    def thresholds(self) -> FloatArray:
        return _probit(self.p)

    def mean(self) -> float:
        return self.always + (1.0 - self.always) * float(self.p.mean())

    def pooled(self, values: FloatArray) -> float:
        """Mean over the distribution of a per-neuron value that is 1 for an
        always active neuron."""
        return self.always + (1.0 - self.always) * float(values.mean())


def _expected_overlap(sample: _Sample, lag: int, dynamics: _Dynamics) -> float:
    kept, redrawn = _pair_probabilities(sample.thresholds, lag, dynamics)
    stay = dynamics.rho**lag
    return sample.pooled(stay * kept + (1.0 - stay) * redrawn) / sample.mean()


def _far_overlap(sample: _Sample, dynamics: _Dynamics) -> float:
    overlaps = [_expected_overlap(sample, k, dynamics) for k in FAR_LAGS]
    return sum(overlaps) / len(overlaps)


def _rho_for(sample: _Sample, beta: float, phi: float, target: float) -> float:
    """``rho`` giving the adjacent overlap ``target`` (clipped to what the
    model reaches): the overlap at lag 1 is linear in ``rho``."""
    kept, redrawn = _pair_probabilities(sample.thresholds, 1, _Dynamics(0.0, beta, phi))
    low, high = sample.pooled(redrawn), sample.pooled(kept)
    if high <= low:
        return 0.0
    rho = (target * sample.mean() - low) / (high - low)
    return min(_MAX_RHO, max(0.0, rho))


def _bisect_increasing(
    function: functools.partial[float], low: float, high: float, target: float
) -> float:
    """The largest argument in ``[low, high]`` where the increasing
    ``function`` stays below ``target`` (to 2**-30 of the interval), or the
    nearer end when it is never or always below."""
    if function(low) >= target:
        return low
    if function(high) <= target:
        return high
    for _ in range(30):
        mid = 0.5 * (low + high)
        if function(mid) < target:
            low = mid
        else:
            high = mid
    return low


def _shape_sample(shape: _Shape) -> _Sample:
    cap = max(shape.head, shape.v)
    u = (
        cap
        + (1.0 - cap) * (np.arange(_PROBABILITY_SAMPLES) + 0.5) / _PROBABILITY_SAMPLES
    )
    return _Sample(cap, shape.at(u))


def _context_beta(statistics: TraceStatistics) -> float:
    w = statistics.context_weight
    return math.sqrt(w / (1.0 - w))


def _far_of_head(
    head: float, statistics: TraceStatistics, dynamics: _Dynamics
) -> float:
    shape = _fit_shape(head, statistics)
    if shape is None:
        return math.inf  # past the feasible heads: treat as overshooting
    return _far_overlap(_shape_sample(shape), dynamics)


@functools.lru_cache(maxsize=16)
def _fit_model(statistics: TraceStatistics) -> tuple[_Shape, _Dynamics]:
    """The power-law shape and dynamics that meet ``statistics``."""
    beta = _context_beta(statistics)
    phi = math.exp(-1.0 / statistics.context_tokens)
    mean = 1.0 - statistics.sparsity
    dynamics = _Dynamics(0.75, beta, phi)
    shape = _fit_shape(0.0, statistics)
    if shape is None:
        raise CimError(f"no power law fits the trace statistics {statistics}")
    for _ in range(2):
        far = functools.partial(_far_of_head, statistics=statistics, dynamics=dynamics)
        head = _bisect_increasing(far, 0.0, mean, statistics.far_overlap)
        shape = _fit_shape(head, statistics) or shape
        sample = _shape_sample(shape)
        rho = _rho_for(sample, beta, phi, statistics.adjacent_overlap)
        dynamics = _Dynamics(rho, beta, phi)
    return shape, dynamics


def _fit_dynamics(p: FloatArray, statistics: TraceStatistics) -> _Dynamics:
    """Dynamics for given stationary probabilities (pooled over the blocks):
    ``rho`` for ``adjacent_overlap``; the long-lag overlap is what ``p`` and
    the context give."""
    p = np.sort(p)
    picks = (np.arange(_PROBABILITY_SAMPLES) + 0.5) * p.size / _PROBABILITY_SAMPLES
    sample = _Sample(0.0, p[picks.astype(np.intp)])
    phi = math.exp(-1.0 / statistics.context_tokens)
    beta = _context_beta(statistics)
    if sample.mean() <= 0.0:
        return _Dynamics(0.0, beta, phi)
    return _Dynamics(
        _rho_for(sample, beta, phi, statistics.adjacent_overlap), beta, phi
    )


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
) -> _Latent:
    """AR(1) processes of unit variance, one column per cluster."""
    noise = rng.standard_normal((tokens, clusters))
    z = np.empty((tokens, clusters), dtype=np.float32)
    z[0] = noise[0]
    innovation = math.sqrt(1.0 - phi * phi)
    for t in range(1, tokens):
        z[t] = phi * z[t - 1] + innovation * noise[t]
    return z


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
    replaces the fitted power law by per-block probabilities (imported
    frequencies, :func:`load_frequencies`); ``sparsity``, ``hot_fraction``,
    ``hot_share`` and ``far_overlap`` are then unused: the overlap at long
    lags is what the given probabilities and the context make it (about
    ``E[p**2] / E[p]``). Each neuron of block ``b > 0`` gets two parents in
    block ``b - 1``.
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

    # Per block: p by rank (decreasing) and the neuron that holds each rank.
    by_rank: list[FloatArray] = []
    order: list[npt.NDArray[np.intp]] = []
    if stationary is None:
        _, dynamics = _fit_model(statistics)
        for n in counts:
            by_rank.append(fitted_probabilities(n, statistics))
            order.append(rng.permutation(n))
    else:
        for p in _check_stationary(stationary, counts):
            ranked = np.argsort(-p, kind="stable")
            by_rank.append(p[ranked])
            order.append(ranked)
        dynamics = _fit_dynamics(np.concatenate(by_rank), statistics)

    scale = np.float32(math.sqrt(1.0 + dynamics.beta**2))
    families = max(1, min(counts) // 2)
    clusters = min(families, CONTEXT_CLUSTERS)
    cluster_of_family = rng.permutation(np.arange(families) % clusters)
    context = _context(rng, tokens, clusters, dynamics.phi)
    context *= np.float32(dynamics.beta)

    def latents(cluster: npt.NDArray[np.intp]) -> _Latent:
        """Fresh latents ``Y`` for neurons or families in ``cluster``."""
        fresh = _sticky_normal(rng, tokens, cluster.size, dynamics.rho)
        fresh -= context[:, cluster]
        fresh /= scale
        return fresh

    lineage = latents(cluster_of_family)
    # Always active parents and children keep firing together whatever the
    # latents, so each rate costs P(child | a parent) about half of itself.
    private_rate = mutation_rate = (1.0 - statistics.parent_correlation) / 2.0

    active: list[BoolMatrix] = []
    parents: list[IndexArray] = []
    for b, n in enumerate(counts):
        if b > 0:
            mutated = np.flatnonzero(rng.random(families) < mutation_rate)
            lineage[:, mutated] = latents(cluster_of_family[mutated])
        family = np.arange(n) * families // n  # by rank
        private = rng.random(n) < private_rate
        own = latents(cluster_of_family[family[private]])
        column = family.copy()
        column[private] = families + np.arange(own.shape[1])
        neuron_rank = np.empty(n, dtype=np.intp)
        neuron_rank[order[b]] = np.arange(n)
        thresholds = _probit(by_rank[b]).astype(np.float32)[neuron_rank]
        latent = np.concatenate([lineage, own], axis=1)
        active.append(latent[:, column[neuron_rank]] < thresholds)
        if b == 0:
            parents.append(np.zeros((n, 0), dtype=np.int32))
        else:
            ranks = _parent_ranks(family, families, counts[b - 1])
            parents.append(order[b - 1][ranks][neuron_rank].astype(np.int32))
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
