"""The zero structure of a weight in the arrays' view, and pruning to one.

A weight is the ``[groups, K, N]`` matrix the arrays hold
(:mod:`cimflow.weight_layout`): rows ``K`` are the reduction, columns ``N``
the outputs. Its zeros are described as CIMinus describes them (Qi et al.,
IEEE Trans. Computers 2026, its FlexBlock: ``shared/reference/ciminus.md``
§3): at most two patterns, a coarse one whose whole blocks are zero
(FullBlock) and a fine one inside the blocks that are kept (IntraBlock):

- coarse: ``row`` (a whole row of the matrix: one input of every output),
  ``column`` (a whole output: a filter), ``channel`` (the ``kh x kw`` rows
  of one input channel of a convolution, every output), ``block:RxC``
  (``R`` rows by ``C`` columns on the grid from the matrix's corner; the
  blocks at the bottom and right edges are cut short);
- fine: ``N:M`` (every ``M`` consecutive reduction rows of a column, from
  row 0, keep at most ``N``; a last group of fewer rows at most ``N`` too)
  or ``unstructured`` (anything else).

:func:`detect` finds the description of a weight's zeros; :func:`prune`
zeroes a weight to one (CIMinus's pruning, its §5: the blocks of least L1
or L2 norm first, the ``M - N`` smallest magnitudes of each group, the
smallest magnitudes for unstructured zeros). Both work on every group
alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from cimflow.errors import CimError

Matrix = NDArray[Any]

CoarseKind = Literal["row", "column", "channel", "block"]
FineKind = Literal["nm", "unstructured"]
Criterion = Literal["l1", "l2"]
CRITERIA: tuple[Criterion, ...] = get_args(Criterion)

GROUP_SIZES: tuple[int, ...] = (2, 4, 8, 16, 32)
"""The ``M`` of ``N:M`` patterns :func:`detect` tries."""

STRAY_ZEROS = 0.01
"""Zeros a description may leave unexplained, as a share of the weights it
keeps: weights that are zero by themselves (a quantized model rounds some
to zero) do not hide the structure of the rest."""


@dataclass(frozen=True)
class Coarse:
    """Whole blocks of zeros (FullBlock): ``kind`` and, for ``block``, the
    block's rows and columns; for ``channel``, the rows of one channel."""

    kind: CoarseKind
    rows: int = 1
    cols: int = 1

    def shape(self, k: int, n: int) -> tuple[int, int]:
        """The block's rows and columns in a ``k x n`` matrix."""
        if self.kind == "row":
            return 1, n
        if self.kind == "column":
            return k, 1
        if self.kind == "channel":
            return self.rows, n
        return self.rows, self.cols

    def text(self) -> str:
        if self.kind == "block":
            return f"block:{self.rows}x{self.cols}"
        return self.kind


@dataclass(frozen=True)
class Fine:
    """Zeros inside the kept blocks (IntraBlock): ``N:M`` or unstructured."""

    kind: FineKind
    n: int = 0
    m: int = 0

    def text(self) -> str:
        return f"{self.n}:{self.m}" if self.kind == "nm" else "unstructured"


@dataclass(frozen=True)
class Pattern:
    """A FlexBlock description: a coarse and a fine pattern, either absent
    (both absent: dense)."""

    coarse: Coarse | None = None
    fine: Fine | None = None

    def text(self) -> str:
        parts = [p.text() for p in (self.coarse, self.fine) if p is not None]
        return "+".join(parts) or "dense"


_BLOCK = re.compile(r"block:(\d+)x(\d+)")
_NM = re.compile(r"(\d+):(\d+)")


def parse_pattern(text: str, channel_rows: int | None = None) -> Pattern:
    """A pattern as written on the command line: ``row``, ``column``,
    ``channel``, ``block:RxC``, ``N:M``, ``unstructured``, or a coarse one
    and a fine one joined by ``+`` (``block:32x32+2:4``). ``channel`` needs
    the rows of a channel, which only a convolution's weight knows (None:
    filled in per weight by :func:`for_weight`)."""
    coarse: Coarse | None = None
    fine: Fine | None = None
    parts = text.split("+")
    if not text or len(parts) > 2:
        raise CimError(
            f"pattern '{text}': give one pattern, or a coarse and a fine one "
            "joined by '+'"
        )
    for part in parts:
        block, nm = _BLOCK.fullmatch(part), _NM.fullmatch(part)
        if part in ("row", "column", "channel") or block is not None:
            if coarse is not None or fine is not None:
                raise CimError(
                    f"pattern '{text}': the coarse pattern comes first, and once"
                )
            if block is not None:
                rows, cols = int(block[1]), int(block[2])
                if rows < 1 or cols < 1:
                    raise CimError(f"pattern '{text}': a block has at least 1 x 1")
                coarse = Coarse("block", rows, cols)
            elif part == "channel":
                coarse = Coarse("channel", channel_rows or 1)
            else:
                coarse = Coarse("row" if part == "row" else "column")
        elif nm is not None or part == "unstructured":
            if fine is not None:
                raise CimError(f"pattern '{text}': at most one fine pattern")
            if nm is not None:
                keep, group = int(nm[1]), int(nm[2])
                if not 0 < keep < group:
                    raise CimError(
                        f"pattern '{text}': N:M keeps 0 < N < M of every M rows"
                    )
                fine = Fine("nm", keep, group)
            else:
                fine = Fine("unstructured")
        else:
            raise CimError(
                f"pattern '{text}': '{part}' is not row, column, channel, "
                "block:RxC, N:M or unstructured"
            )
    return Pattern(coarse, fine)


def for_weight(pattern: Pattern, channel_rows: int | None) -> Pattern:
    """``pattern`` with ``channel`` blocks of ``channel_rows`` rows (a
    convolution's ``kh * kw``); for a weight without windows (None, or one
    row per channel) an input channel is a row."""
    coarse = pattern.coarse
    if coarse is None or coarse.kind != "channel":
        return pattern
    if channel_rows is None or channel_rows == 1:
        return Pattern(Coarse("row"), pattern.fine)
    return Pattern(Coarse("channel", channel_rows), pattern.fine)


# -- blocks -------------------------------------------------------------


def _grid(matrix: Matrix, rows: int, cols: int, fill: float) -> Matrix:
    """``[G, K, N]`` padded with ``fill`` to whole ``rows x cols`` blocks and
    viewed as ``[G, K/rows, rows, N/cols, cols]``."""
    groups, k, n = matrix.shape
    padded = np.full(
        (groups, -(-k // rows) * rows, -(-n // cols) * cols),
        fill,
        dtype=matrix.dtype,
    )
    padded[:, :k, :n] = matrix
    return padded.reshape(groups, padded.shape[1] // rows, rows, -1, cols)


def zero_blocks(matrix: Matrix, coarse: Coarse) -> Matrix:
    """Per block of ``coarse`` (``[G, K/rows, N/cols]``), whether all its
    weights are zero."""
    rows, cols = coarse.shape(matrix.shape[1], matrix.shape[2])
    counts, _ = _block_counts(_integral(matrix != 0), rows, cols)
    return counts == 0


def _expand(blocks: Matrix, rows: int, cols: int, k: int, n: int) -> Matrix:
    """A per-block mask as a per-weight one of ``k x n``."""
    full = np.repeat(np.repeat(blocks, rows, axis=1), cols, axis=2)
    return full[:, :k, :n]


def group_counts(kept: Matrix, m: int) -> tuple[Matrix, Matrix]:
    """Per column and group of ``m`` reduction rows (from row 0): how many
    weights ``kept`` keeps, and how many rows the group has (``m``, fewer
    in a last, shorter group)."""
    groups, k, n = kept.shape
    tiles = _grid(kept.astype(np.int64), m, 1, 0)
    counts = tiles.sum(axis=2).reshape(groups, -1, n)
    sizes = np.full(counts.shape[1], m)
    if k % m:
        sizes[-1] = k % m
    return counts, sizes


# -- detection ----------------------------------------------------------


@dataclass(frozen=True)
class Sparsity:
    """What :func:`detect` found in one weight."""

    pattern: Pattern
    zeros: float
    """Share of the weights that are zero."""
    blocks_zero: float
    """Share of the coarse pattern's blocks that are all zero (0 without)."""


def _period(changes: Matrix) -> int:
    """The gcd of the positions (from 1) where ``changes`` is true: the
    size of blocks whose edges make those changes (0: none)."""
    positions = np.flatnonzero(changes) + 1
    return int(np.gcd.reduce(positions)) if positions.size else 0


def _coarse_candidates(zero: Matrix, channel_rows: int | None) -> list[Coarse]:
    """Coarse patterns to try on the zero mask ``zero`` (``[G, K, N]``),
    largest blocks first (among blocks of one shape the named kind, row,
    column or channel, first): rows and columns of every power of two, and
    of the period of the mask's changes from one row (column) to the next,
    which is a block's size when all zeros are in whole blocks."""
    _, k, n = zero.shape
    named = [Coarse("row"), Coarse("column")]
    if channel_rows is not None and 1 < channel_rows < k:
        named.append(Coarse("channel", channel_rows))
    shapes = {c.shape(k, n) for c in named}

    def sizes(limit: int, period: int) -> list[int]:
        found = {1 << i for i in range(limit.bit_length()) if 1 << i <= limit}
        return sorted(found | ({period} if 1 < period <= limit else set()))

    row_period = _period(np.any(zero[:, 1:, :] != zero[:, :-1, :], axis=(0, 2)))
    col_period = _period(np.any(zero[:, :, 1:] != zero[:, :, :-1], axis=(0, 1)))
    blocks = [
        Coarse("block", r, c)
        for r in sizes(k, row_period)
        for c in sizes(n, col_period)
        if (r, c) != (1, 1) and (r, c) not in shapes
    ]

    def order(coarse: Coarse) -> tuple[int, bool]:
        rows, cols = coarse.shape(k, n)
        return -rows * cols, coarse.kind == "block"

    return sorted(named + blocks, key=order)


def _fine_in(matrix: Matrix, kept: Matrix, rows: int) -> Fine | None:
    """The fine pattern of the zeros among ``kept`` weights (blocks of
    ``rows`` rows): None when at most :data:`STRAY_ZEROS` of them are zero,
    else the ``N:M`` (smallest ``N/M``, then smallest ``M``, with ``M``
    dividing ``rows`` so groups stay inside blocks) every group keeps at
    most ``N`` of and nearly all keep exactly ``N`` of, else unstructured."""
    total = int(kept.sum())
    nonzero = (matrix != 0) & kept
    stray = total - int(nonzero.sum())
    if stray <= STRAY_ZEROS * total:
        return None
    best: Fine | None = None
    for m in GROUP_SIZES:
        if m > matrix.shape[1] or rows % m:
            continue
        counts, sizes = group_counts(nonzero, m)
        inside, _ = group_counts(kept, m)
        full = inside == sizes[None, :, None]
        if not np.any(full):
            continue
        keep = int(counts[full].max())
        if keep >= m or keep == 0:
            continue
        expected = int(np.where(inside > 0, np.minimum(inside, keep), 0).sum())
        if np.any(counts > keep) or nonzero.sum() < (1 - STRAY_ZEROS) * expected:
            continue
        if best is None or keep * best.m < best.n * m:
            best = Fine("nm", keep, m)
    return best or Fine("unstructured")


def _integral(nonzero: Matrix) -> Matrix:
    """Per group, the count of nonzeros above and left of every point
    (``[G, K+1, N+1]``): any block's count in four lookups."""
    groups, k, n = nonzero.shape
    table = np.zeros((groups, k + 1, n + 1), dtype=np.int64)
    table[:, 1:, 1:] = nonzero.cumsum(axis=1).cumsum(axis=2)
    return table


def _block_counts(table: Matrix, rows: int, cols: int) -> tuple[Matrix, Matrix]:
    """Nonzeros per block of ``rows x cols`` (``[G, K/rows, N/cols]``) from
    :func:`_integral`'s table, and each block's weights (``[K/rows,
    N/cols]``: edge blocks are cut short)."""
    k, n = table.shape[1] - 1, table.shape[2] - 1
    row_edges = np.array([*range(0, k, rows), k])
    col_edges = np.array([*range(0, n, cols), n])
    corners = table[:, row_edges][:, :, col_edges]
    counts = (
        corners[:, 1:, 1:]
        - corners[:, :-1, 1:]
        - corners[:, 1:, :-1]
        + corners[:, :-1, :-1]
    )
    return counts, np.outer(np.diff(row_edges), np.diff(col_edges))


def _nm_plausible(stray: int, kept: int) -> bool:
    """Whether ``stray`` zeros among ``kept`` weights could be an ``N:M``
    of :data:`GROUP_SIZES` (a share of ``1 - N/M``, give or take
    :data:`STRAY_ZEROS`)."""
    share = stray / max(1, kept)
    return any(
        abs(m * (1 - share) - round(m * (1 - share))) <= m * STRAY_ZEROS + 1e-9
        and 0 < round(m * (1 - share)) < m
        for m in GROUP_SIZES
    )


def detect(matrix: Matrix, channel_rows: int | None = None) -> Sparsity:
    """The FlexBlock description of ``matrix``'s zeros (``[G, K, N]``;
    ``channel_rows``: a convolution's ``kh * kw``), the simplest that holds:
    one coarse pattern (the largest blocks whose zeros leave none in the
    kept weights beyond :data:`STRAY_ZEROS`); else one ``N:M`` over the
    whole matrix; else a coarse pattern (largest blocks first) with an
    ``N:M`` in the kept blocks; else unstructured."""
    _, k, n = matrix.shape
    nonzero = matrix != 0
    zeros = int(nonzero.size - np.count_nonzero(nonzero))
    if not zeros:
        return Sparsity(Pattern(), 0.0, 0.0)
    share = zeros / nonzero.size
    table = _integral(nonzero)
    nested: list[tuple[Coarse, Matrix]] = []
    for coarse in _coarse_candidates(~nonzero, channel_rows):
        rows, cols = coarse.shape(k, n)
        counts, sizes = _block_counts(table, rows, cols)
        blocks = counts == 0
        if not np.any(blocks) or np.all(blocks):
            continue
        dropped = int((blocks * sizes[None]).sum())
        kept, stray = int(nonzero.size) - dropped, zeros - dropped
        if stray <= STRAY_ZEROS * kept:
            return Sparsity(Pattern(coarse), share, _share(blocks))
        if _nm_plausible(stray, kept):
            nested.append((coarse, blocks))
    everything = np.ones(matrix.shape, dtype=bool)
    whole = _fine_in(matrix, everything, _ANY_GROUP)
    if whole is not None and whole.kind == "nm":
        return Sparsity(Pattern(None, whole), share, 0.0)
    for coarse, blocks in nested:
        rows, cols = coarse.shape(k, n)
        kept_mask = ~_expand(blocks, rows, cols, k, n)
        fine = _fine_in(matrix, kept_mask, rows if rows < k else _ANY_GROUP)
        if fine is not None and fine.kind == "nm":
            return Sparsity(Pattern(coarse, fine), share, _share(blocks))
    return Sparsity(Pattern(None, Fine("unstructured")), share, 0.0)


def _share(mask: Matrix) -> float:
    return int(np.count_nonzero(mask)) / max(1, int(mask.size))


_ANY_GROUP = math.lcm(*GROUP_SIZES)
"""Block rows every ``M`` of :data:`GROUP_SIZES` divides: the whole
matrix's, or a whole column's."""


def holds(matrix: Matrix, pattern: Pattern) -> bool:
    """Whether ``pattern`` describes ``matrix``'s zeros: outside the coarse
    pattern's all-zero blocks, no zeros beyond :data:`STRAY_ZEROS` (no fine
    pattern), at most ``N`` nonzeros in every group of ``M`` rows (``N:M``),
    or anything (unstructured). :func:`detect` may find a coarser
    description that holds too (pruned blocks that happen to pair up)."""
    _, k, n = matrix.shape
    kept = np.ones(matrix.shape, dtype=bool)
    rows = _ANY_GROUP
    if pattern.coarse is not None:
        rows, cols = pattern.coarse.shape(k, n)
        kept = ~_expand(zero_blocks(matrix, pattern.coarse), rows, cols, k, n)
    fine = pattern.fine
    if fine is None:
        return _fine_in(matrix, kept, rows) is None
    if fine.kind == "unstructured":
        return True
    counts, _ = group_counts((matrix != 0) & kept, fine.m)
    return int(counts.max(initial=0)) <= fine.n


# -- pruning ------------------------------------------------------------


def _norms(matrix: Matrix, rows: int, cols: int, criterion: Criterion) -> Matrix:
    tiles = _grid(matrix.astype(np.float64), rows, cols, 0.0)
    if criterion == "l1":
        return np.abs(tiles).sum(axis=(2, 4))
    return np.sqrt(np.square(tiles).sum(axis=(2, 4)))


def _smallest(scores: Matrix, count: int) -> Matrix:
    """A mask of the ``count`` smallest ``scores`` (ties: the first in
    row-major order)."""
    flat = scores.reshape(-1)
    order = np.argsort(flat, kind="stable")
    mask = np.zeros(flat.shape, dtype=bool)
    mask[order[:count]] = True
    return mask.reshape(scores.shape)


def prune(
    matrix: Matrix,
    pattern: Pattern,
    ratio: float,
    criterion: Criterion = "l1",
    fine_ratio: float | None = None,
) -> Matrix:
    """``matrix`` (``[G, K, N]``) with zeros of ``pattern``: the coarse
    pattern's ``ratio`` of blocks of least ``criterion`` norm; then, in the
    kept blocks, of every group of ``M`` rows of a column all but the
    ``N`` largest magnitudes (``N:M``), or the ``fine_ratio`` (``ratio``
    without a coarse pattern) of the kept weights of least magnitude
    (``unstructured``). Deterministic: ties go to the first in row-major
    order."""
    pruned = np.array(matrix, copy=True)
    groups, k, n = pruned.shape
    kept = np.ones(pruned.shape, dtype=bool)
    coarse, fine = pattern.coarse, pattern.fine
    if coarse is not None:
        rows, cols = coarse.shape(k, n)
        norms = _norms(pruned, rows, cols, criterion)
        dropped = _smallest(norms, _count(ratio, norms.size))
        kept = ~_expand(dropped, rows, cols, k, n)
    if fine is not None and fine.kind == "nm":
        magnitude = np.where(kept, np.abs(pruned.astype(np.float64)), -1.0)
        tiles = _grid(magnitude, fine.m, 1, -1.0)  # [G, K/M, M, N, 1]
        order = np.argsort(-tiles, axis=2, kind="stable")
        ranks = np.argsort(order, axis=2, kind="stable")
        keep = (ranks < fine.n) & (tiles >= 0)
        kept &= keep.reshape(groups, -1, n)[:, :k, :]
    elif fine is not None:
        share = ratio if coarse is None else fine_ratio
        if share is None:
            raise CimError(
                f"pattern '{pattern.text()}' needs the ratio of its unstructured zeros"
            )
        magnitude = np.where(kept, np.abs(pruned.astype(np.float64)), np.inf)
        kept &= ~_smallest(magnitude, _count(share, int(kept.sum())))
    pruned[~kept] = 0
    return pruned


def _count(ratio: float, total: int) -> int:
    if not 0.0 <= ratio <= 1.0:
        raise CimError(f"a pruning ratio is between 0 and 1, got {ratio}")
    return min(total, math.floor(ratio * total + 0.5))
