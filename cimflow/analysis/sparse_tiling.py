"""What a sparse weight saves on arrays made of sub-arrays: CIMinus's
storage and activation counts (``shared/reference/ciminus.md`` §4.3 and
§6.2), from the weight's zeros and the sub-array grid.

A weight is the ``[groups, K, N]`` matrix the arrays hold; the arrays are
cut into ``rows x cols`` sub-arrays (CIMinus's case studies: 32 x 32). Its
zeros, described by a :class:`~cimflow.analysis.sparsity.Pattern`, save:

- *FullBlock* (a coarse pattern whose blocks are whole sub-arrays): a
  sub-array block of the weight that is all zero is not stored and never
  activated, so an MVM activates the stored blocks only; each stored block
  needs its position, ``ceil(log2(blocks))`` index bits;
- *IntraBlock* ``N:M``: every column keeps at most ``N`` of each ``M``
  reduction rows, so the rows compact to ``ceil(K * N / M)`` physical rows
  (per group), each kept weight with ``ceil(log2(M))`` index bits naming
  its row in the group, and an ``M``:1 input multiplexer per physical row.

:func:`compacted_rows` is the rule the compiler maps with
(``cim-sparse-rows``) and the functional executor follows: the rows each
column tile's arrays hold once rows that none of its columns needs are
dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cimflow.analysis.sparsity import Coarse, Matrix, Pattern, zero_blocks

SUBARRAY = (32, 32)
"""CIMinus's sub-array, rows x columns (its case studies)."""


@dataclass(frozen=True)
class SparseTiling:
    """The sub-array blocks and rows a weight needs, dense and sparse."""

    blocks: int
    """Sub-array blocks of the dense weight (every group)."""
    stored_blocks: int
    """Those a FullBlock pattern keeps (all, without one)."""
    rows: int
    """Reduction rows of the dense weight, per group."""
    physical_rows: int
    """Rows after ``N:M`` compaction (``rows`` without one)."""
    block_index_bits: int
    """Bits naming the stored blocks' positions."""
    element_index_bits: int
    """Bits naming the kept weights' rows in their ``N:M`` groups."""
    muxes: int
    """``M``:1 input multiplexers: one per physical row (per group)."""

    @property
    def index_bits(self) -> int:
        return self.block_index_bits + self.element_index_bits

    def active_blocks(self, vectors: int) -> int:
        """Sub-array activations of ``vectors`` input vectors (each stored
        block computes every vector)."""
        return vectors * self.stored_blocks


def sparse_tiling(
    matrix: Matrix, pattern: Pattern, subarray: tuple[int, int] = SUBARRAY
) -> SparseTiling:
    """The counts of ``matrix`` (``[G, K, N]``) under ``pattern`` on
    ``subarray`` blocks. A coarse pattern saves blocks when its blocks are
    whole sub-arrays (it is ``block:RxC`` with ``R x C`` the sub-array);
    otherwise every block is stored."""
    groups, k, n = matrix.shape
    rows, cols = subarray
    grid = Coarse("block", rows, cols)
    dense = groups * math.ceil(k / rows) * math.ceil(n / cols)
    stored = dense
    block_bits = 0
    coarse = pattern.coarse
    if coarse is not None and coarse.shape(k, n) == (rows, cols):
        stored = dense - int(np.count_nonzero(zero_blocks(matrix, grid)))
        block_bits = stored * math.ceil(math.log2(max(2, dense)))
    physical, element_bits, muxes = k, 0, 0
    fine = pattern.fine
    if fine is not None and fine.kind == "nm":
        physical = math.ceil(k * fine.n / fine.m)
        kept = int(np.count_nonzero(matrix))
        element_bits = kept * math.ceil(math.log2(fine.m))
        muxes = groups * physical
    return SparseTiling(dense, stored, k, physical, block_bits, element_bits, muxes)


# --------------------------------------------------------------------------
# Row compaction: the rows each array must hold
# --------------------------------------------------------------------------

RowMap = npt.NDArray[np.int64]
"""``[groups, column tiles, physical rows]``: the weight row (within its
group) each physical row of each column tile's arrays holds; -1 pads."""


def compacted_rows(matrix: Matrix, outputs_per_array: int) -> RowMap:
    """The rows a weight's arrays hold once the rows no column of an array
    needs are dropped.

    An array drives one input on each physical row, shared by all of its
    columns, so a column tile (the ``outputs_per_array`` outputs one array
    holds) can leave out a weight row only when all of its columns are
    zero there (CIMinus's row-wise, channel-wise and aligned FullBlock
    zeros; an N:M mask whose columns differ saves nothing here). Each
    column tile keeps its rows in order; the tiles are padded to the
    longest (CIMinus's padding rearrangement), so every tile's arrays are
    cut at the same physical rows. When a group's tiles need no more rows
    between them than the longest holds, every tile holds all of them, so
    that its tiles share one list of row indices. A tile with no nonzero
    row keeps one."""
    groups, _, n = matrix.shape
    tiles = -(-n // outputs_per_array)
    kept: list[list[npt.NDArray[np.int64]]] = []
    for g in range(groups):
        per_tile: list[npt.NDArray[np.int64]] = []
        for t in range(tiles):
            columns = matrix[g, :, t * outputs_per_array : (t + 1) * outputs_per_array]
            rows = np.flatnonzero(np.any(columns != 0, axis=1)).astype(np.int64)
            per_tile.append(rows if rows.size else np.zeros(1, np.int64))
        kept.append(per_tile)
    physical = max(rows.size for per_tile in kept for rows in per_tile)
    for g, per_tile in enumerate(kept):
        union = np.unique(np.concatenate(per_tile))
        if union.size <= physical:
            kept[g] = [union] * tiles
    row_map = np.full((groups, tiles, physical), -1, dtype=np.int64)
    for g, per_tile in enumerate(kept):
        for t, rows in enumerate(per_tile):
            row_map[g, t, : rows.size] = rows
    return row_map


def tile_rows_used(row_map: RowMap, tile_columns: int = 1) -> list[int]:
    """Physical rows each column tile of a one-group row map uses: one past
    the last it holds a weight row in. ``row_map`` lists rows per column
    tile (:func:`compacted_rows`, ``tile_columns`` 1) or per column
    (:func:`intra_block_rows`, ``tile_columns`` columns a tile)."""
    lists = row_map[0]
    positions = np.arange(1, lists.shape[1] + 1, dtype=np.int64)
    used = np.where(lists >= 0, positions, 0).max(axis=1, initial=0)
    return [
        int(used[start : start + tile_columns].max(initial=0))
        for start in range(0, lists.shape[0], tile_columns)
    ]


def sliced_row_tiles(row_map: RowMap, rows: int, tile_columns: int = 1) -> list[int]:
    """Arrays of ``rows`` rows each column tile of a one-group row map
    (:func:`tile_rows_used`) takes when sliced: as many as its own rows
    fill, not the longest tile's (CIMinus's slicing of ragged compressed
    columns, ciminus.md §4.2)."""
    return [max(1, -(-used // rows)) for used in tile_rows_used(row_map, tile_columns)]


def row_index_block(row_map: RowMap, k: int) -> int:
    """Rows one index names in a row gather's lists (:func:`compacted_rows`
    of a ``k``-row weight): the largest ``B`` such that every list holds
    whole ``B``-row blocks starting at multiples of ``B`` (a block ending at
    row ``k`` may be shorter), so that each list names its blocks, not its
    rows (CIMinus's FullBlock index: a block position per kept block). It
    is the greatest common divisor of the held runs' starts and lengths; a
    tile that keeps only the placeholder row 0 of an all-zero block (its
    cells hold zeros) fits any block size. 1: rows one by one."""
    block = 0
    for held in row_map.reshape(-1, row_map.shape[-1]):
        rows = held[held >= 0]
        if rows.size == 0 or (rows.size == 1 and rows[0] == 0):
            continue
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = rows[np.concatenate([[0], breaks])]
        ends = rows[np.concatenate([breaks - 1, [rows.size - 1]])] + 1
        lengths = (ends - starts)[ends < k]
        block = math.gcd(block, *(int(v) for v in (*starts, *lengths)))
    return block if 0 < block < k else 1


def compacted_matrix(matrix: Matrix, row_map: RowMap, outputs_per_array: int) -> Matrix:
    """``[groups, physical rows, N]``: the weight as its arrays hold it
    (:func:`compacted_rows`), zero on padding rows."""
    groups, _, n = matrix.shape
    held = np.zeros((groups, row_map.shape[2], n), dtype=matrix.dtype)
    for g in range(groups):
        for t in range(row_map.shape[1]):
            rows = row_map[g, t]
            real = rows >= 0
            cols = slice(t * outputs_per_array, min(n, (t + 1) * outputs_per_array))
            held[g, np.flatnonzero(real), cols] = matrix[g, rows[real], cols]
    return held


# --------------------------------------------------------------------------
# Column compaction: the outputs each array must compute
# --------------------------------------------------------------------------

ColumnMap = npt.NDArray[np.int64]
"""``[groups, row tiles, held columns]``: the weight column (within its
group) each held column of each row tile's arrays is; -1 pads."""


@dataclass(frozen=True)
class ColumnTiling:
    """The columns each row tile's arrays of a weight hold
    (:func:`held_columns`)."""

    column_map: ColumnMap
    starts: npt.NDArray[np.int64]
    """``[groups, column tiles + 1]``: the first output (within its group)
    each column tile's arrays own, and the group's ``N`` after the last."""

    @property
    def held(self) -> int:
        """Held columns per group (the tiling's ``n``)."""
        return int(self.column_map.shape[2])

    @property
    def misaligned(self) -> bool:
        """Whether some row tile holds other columns than another, so that
        their partial sums land on different outputs."""
        first = self.column_map[:, :1, :]
        return bool(np.any(self.column_map != first))


def held_columns(
    matrix: Matrix, rows_per_tile: int, outputs_per_tile: int
) -> ColumnTiling:
    """The columns a weight's arrays hold once each row tile (the
    ``rows_per_tile`` rows one array holds) leaves out the columns zero in
    all of its rows (CIMinus's column-wise compression: a filter pruned
    whole computes nothing, its output is its bias alone).

    The group's outputs are cut into contiguous ranges, one per column tile
    (the ``outputs_per_tile`` outputs one array computes), each as wide as
    it can be while no row tile keeps more than ``outputs_per_tile``
    columns in it; a column tile's arrays hold, in each row tile, that row
    tile's kept columns of its range, in order, and own the range's outputs
    (the dropped ones are zero until the bias is added). When the row tiles
    keep the same columns (whole filters pruned) that is every kept column
    once; when they keep different ones (zero blocks as tall as an array),
    their partial sums land on different outputs of the range and the
    accumulation that adds them is misaligned, CIMinus's extra
    accumulation. The groups are padded to the one holding the most; a
    group that keeps nothing holds column 0."""
    groups, k, n = matrix.shape
    row_tiles = max(1, -(-k // rows_per_tile))
    nonzero = np.zeros((groups, row_tiles, n), dtype=bool)
    for r in range(row_tiles):
        rows = matrix[:, r * rows_per_tile : (r + 1) * rows_per_tile, :]
        nonzero[:, r, :] = np.any(rows != 0, axis=1)
    ranges = [_column_ranges(nonzero[g], outputs_per_tile) for g in range(groups)]
    held = max(
        max(1, (len(spans) - 1) * outputs_per_tile + _most_kept(nonzero[g], spans[-1]))
        for g, spans in enumerate(ranges)
    )
    tiles = -(-held // outputs_per_tile)
    column_map = np.full((groups, row_tiles, held), -1, dtype=np.int64)
    starts = np.full((groups, tiles + 1), n, dtype=np.int64)
    starts[:, 0] = 0
    for g, spans in enumerate(ranges):
        for t, (first, stop) in enumerate(spans):
            starts[g, t] = first
            for r in range(row_tiles):
                kept = first + np.flatnonzero(nonzero[g, r, first:stop])
                slot = t * outputs_per_tile
                column_map[g, r, slot : slot + kept.size] = kept
        if not nonzero[g].any():
            column_map[g, :, 0] = 0
    return ColumnTiling(column_map, starts)


def _column_ranges(
    nonzero: npt.NDArray[np.bool_], outputs_per_tile: int
) -> list[tuple[int, int]]:
    """Contiguous ranges of a group's ``[row tiles, N]`` columns, each as
    wide as it can be with at most ``outputs_per_tile`` kept columns of any
    row tile in it."""
    spans: list[tuple[int, int]] = []
    first = 0
    counts = np.zeros(nonzero.shape[0], dtype=np.int64)
    for column in range(nonzero.shape[1]):
        kept = nonzero[:, column].astype(np.int64)
        if np.any(counts + kept > outputs_per_tile):
            spans.append((first, column))
            first, counts = column, np.zeros_like(counts)
        counts += kept
    spans.append((first, nonzero.shape[1]))
    return spans


def _most_kept(nonzero: npt.NDArray[np.bool_], span: tuple[int, int]) -> int:
    """The most kept columns any row tile has in ``span``."""
    return int(nonzero[:, span[0] : span[1]].sum(axis=1).max(initial=0))


def column_matrix(matrix: Matrix, tiling: ColumnTiling, rows_per_tile: int) -> Matrix:
    """``[groups, K, held columns]``: the weight as its arrays hold it
    (:func:`held_columns`), each row tile its own columns, zero on padding
    columns."""
    groups, k, _ = matrix.shape
    held = np.zeros((groups, k, tiling.held), dtype=matrix.dtype)
    for g in range(groups):
        group = held[g]
        for r, columns in enumerate(tiling.column_map[g]):
            rows = slice(r * rows_per_tile, min(k, (r + 1) * rows_per_tile))
            real = np.flatnonzero(columns >= 0)
            group[rows, real] = matrix[g, rows][:, columns[real]]
    return held


# --------------------------------------------------------------------------
# IntraBlock: each cell picks its input among its row group's
# --------------------------------------------------------------------------


def intra_block_rows(matrix: Matrix, m: int, tile_columns: int = 0) -> RowMap:
    """The rows each cell of an IntraBlock mapping holds: ``[groups,
    columns, physical rows]`` (the per-column form of :data:`RowMap`).

    The reduction rows are cut into row groups of ``m`` (the last may be
    shorter). In each column tile (the ``tile_columns`` outputs one array
    holds; 0: all columns one tile) group ``j`` gets as many physical rows
    as the most nonzeros any of the tile's columns has in it (``N`` for an
    ``N:M`` mask, none where the tile's block of the group is all zero),
    and the ``t``-th of them holds, in each column, that column's ``t``-th
    nonzero row of the group (-1, a zero cell, when it has fewer). A cell's
    input is then one of its group's ``m`` inputs, picked by an ``m``:1
    multiplexer that its ``ceil(log2 m)``-bit index sets: columns need not
    share their zeros, as they must for :func:`compacted_rows`. So zero
    blocks that span a tile's columns drop whole groups, and the rest
    compacts inside the kept blocks: CIMinus's FlexBlock, a FullBlock
    pattern with an IntraBlock one nested in it. Each tile's rows keep the
    groups' order; the tiles (and groups) are padded to the longest, so
    every array is cut at the same physical rows. An all-zero weight keeps
    one row."""
    groups, k, n = matrix.shape
    width = tile_columns or n
    tiles = -(-n // width)
    nonzero = matrix != 0
    firsts = range(0, k, m)
    # slots[g, j, t]: physical rows row group j takes in column tile t
    slots = np.zeros((groups, len(firsts), tiles), dtype=np.int64)
    for j, first in enumerate(firsts):
        counts = np.zeros((groups, tiles * width), dtype=np.int64)
        counts[:, :n] = nonzero[:, first : first + m, :].sum(axis=1)
        slots[:, j, :] = counts.reshape(groups, tiles, width).max(axis=2)
    offsets = np.cumsum(slots, axis=1) - slots
    physical = max(1, int(slots.sum(axis=1).max(initial=0)))
    row_map = np.full((groups, n, physical), -1, dtype=np.int64)
    tile_of: npt.NDArray[np.int64] = np.arange(n, dtype=np.int64) // width
    for j, first in enumerate(firsts):
        most = int(slots[:, j, :].max(initial=0))
        if not most:
            continue
        block = nonzero[:, first : first + m, :]
        # each column's nonzero rows first, in order (a stable sort)
        order = np.argsort(~block, axis=1, kind="stable")[:, :most, :]
        g, slot, column = np.nonzero(np.take_along_axis(block, order, axis=1))
        position = offsets[g, j, tile_of[column]] + slot
        row_map[g, column, position] = order[g, slot, column] + first
    return row_map


def intra_block_matrix(matrix: Matrix, row_map: RowMap) -> Matrix:
    """``[groups, physical rows, N]``: the weight as an IntraBlock mapping
    holds it (:func:`intra_block_rows`), zero on padding cells."""
    held = np.take_along_axis(matrix, np.maximum(row_map, 0).transpose(0, 2, 1), axis=1)
    return np.where(row_map.transpose(0, 2, 1) >= 0, held, 0).astype(matrix.dtype)


def row_group_starts(
    row_map: RowMap, m: int, tile_columns: int = 0
) -> npt.NDArray[np.int64]:
    """``[groups, column tiles, physical rows]``: the first weight row of
    the row group each physical row of an IntraBlock mapping
    (:func:`intra_block_rows`, with the same ``tile_columns``) draws its
    inputs from in each column tile's arrays; negative on a row that holds
    no weight of the tile (a padding row)."""
    groups, n, physical = row_map.shape
    width = tile_columns or n
    tiles = -(-n // width)
    padded = np.full((groups, tiles * width, physical), -1, dtype=np.int64)
    padded[:, :n, :] = row_map
    return padded.reshape(groups, tiles, width, physical).max(axis=2) // m * m


def _group_rows(firsts: npt.NDArray[np.int64], m: int, k: int) -> npt.NDArray[np.int64]:
    """Rows of the row groups of ``m`` starting at ``firsts`` (the last
    group of a ``k``-row weight may be shorter)."""
    return np.minimum(m, k - firsts)


def intra_block_driven_rows(
    row_map: RowMap, m: int, k: int, tile_columns: int = 0
) -> int:
    """The weight rows whose inputs the widest column tile's arrays of an
    IntraBlock mapping drive: the rows of every row group some physical row
    of the tile draws on (``k`` when every tile draws on every group; fewer
    where a nested FullBlock pattern dropped groups)."""
    starts = row_group_starts(row_map, m, tile_columns)
    # a group's physical rows are consecutive: count each group once
    previous = np.concatenate(
        [np.full((*starts.shape[:2], 1), -1), starts[:, :, :-1]], axis=2
    )
    first = (starts >= 0) & (starts != previous)
    sizes = np.where(first, _group_rows(starts, m, k), 0)
    return int(sizes.sum(axis=2).max())


def gathered_rows(row_map: RowMap, m: int, k: int) -> int:
    """The weight rows (per group, the most of any group) whose inputs some
    array of a compacted weight reads: the union over its column tiles of
    the rows they hold (:func:`compacted_rows`), or, for an IntraBlock
    mapping of row groups of ``m`` (:func:`intra_block_rows`), of the rows
    of the groups they draw on. A core holding several tiles' arrays takes
    that union in, not each tile's held rows."""
    most = 0
    for held in row_map:
        rows = np.unique(held[held >= 0])
        if m:
            firsts = np.unique(rows // m * m)
            most = max(most, int(_group_rows(firsts, m, k).sum()))
        else:
            most = max(most, int(rows.size))
    return most


def best_intra_block(
    matrix: Matrix, largest: int, tile_columns: int = 0
) -> tuple[int, RowMap] | None:
    """The row-group size ``m`` (a power of two from 2 to ``largest``) whose
    IntraBlock mapping (:func:`intra_block_rows`, column tiles of
    ``tile_columns``) holds the fewest physical rows, and that mapping (the
    smaller ``m`` on a tie: a narrower multiplexer and index); None when
    ``largest`` is below 2."""
    best: tuple[int, RowMap] | None = None
    m = 2
    while m <= largest:
        row_map = intra_block_rows(matrix, m, tile_columns)
        if best is None or row_map.shape[2] < best[1].shape[2]:
            best = (m, row_map)
        m *= 2
    return best
