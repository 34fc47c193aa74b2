"""How one copy of a tiled weight is laid onto a given number of arrays.

Shared by the allocation passes (how many chunks an operator needs) and the
lowering to meta-ops (which weight slice each chunk programs), so both agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.hw_targets import HardwareTarget


@dataclass(frozen=True)
class Chunk:
    """A rectangle ``[k0, k1) x [n0, n1)`` of the ``[G*K, G*N]`` weight matrix
    held at once by ``arrays`` arrays, each using ``rows`` x ``cols`` cells.

    A grouped weight is block-diagonal: the rectangle then spans ``groups``
    whole ``K x N`` blocks and holds only those.
    """

    k0: int
    k1: int
    n0: int
    n1: int
    arrays: int
    rows: int
    cols: int
    row_tiles: int
    """Row tiles inside this chunk whose partial sums must be added (the
    most any of its column tiles has)."""
    groups: int = 1
    columns: tuple[tuple[int, int], ...] = ()
    """``(rows from k0, outputs)`` of each column tile when they hold
    different rows (a sliced tiling's, ``TilingAttr.column_row_tiles``);
    empty: ``k1 - k0`` rows each."""

    @property
    def column_row_tiles(self) -> list[int]:
        """Row tiles (arrays) of each column tile of a ragged chunk
        (``columns``; its arrays use all ``rows``)."""
        return [-(-held // self.rows) for held, _ in self.columns]

    @property
    def merged_sums(self) -> int:
        """Partial sums one input vector adds into others inside the chunk:
        each output's row tiles but one."""
        if self.columns:
            return sum(
                (tiles - 1) * outputs
                for tiles, (_, outputs) in zip(
                    self.column_row_tiles, self.columns, strict=True
                )
            )
        return (self.n1 - self.n0) * (max(1, self.row_tiles) - 1)

    @property
    def weight_elements(self) -> int:
        if self.columns:
            return sum(rows * outputs for rows, outputs in self.columns)
        return (self.k1 - self.k0) * (self.n1 - self.n0) // self.groups


def target_tiling(hw: HardwareTarget, k: int, n: int, groups: int) -> TilingAttr:
    """The partition of ``groups`` blocks of a ``k x n`` matrix onto the
    target's arrays (its rows, columns and bit slices)."""
    return TilingAttr.for_matrix(
        k, n, groups, hw.array.rows, hw.array.cols, hw.bit_slices
    )


def array_cells(tiling: TilingAttr) -> tuple[int, int]:
    """The rows and columns each array of a weight copy uses (packed
    groups side by side along the diagonal; else one tile's)."""
    k, n, rows = (tiling.field(f) for f in ("k", "n", "rows"))
    packed = tiling.field("groups_per_array")
    slices = tiling.field("bit_slices")
    if packed > 1:
        return packed * k, packed * n * slices
    return min(k, rows), min(n, tiling.outputs_per_array) * slices


def column_run(
    columns: Sequence[tuple[int, int]],
    k0: int,
    n0: int,
    rows: int,
    cells: tuple[int, int],
) -> Chunk:
    """A chunk of consecutive whole column tiles from output ``n0``, each
    ``(rows held from k0, outputs)`` on as many arrays of ``rows`` rows as
    those rows fill (``Chunk.columns`` only when the tiles hold different
    rows)."""
    counts = [-(-held // rows) for held, _ in columns]
    k1 = max(held for held, _ in columns)
    ragged = () if all(held == k1 for held, _ in columns) else tuple(columns)
    n1 = n0 + sum(outputs for _, outputs in columns)
    return Chunk(k0, k0 + k1, n0, n1, sum(counts), *cells, max(counts), columns=ragged)


def _plan_matrix(
    tiling: TilingAttr, available: int, k_offset: int, n_offset: int
) -> list[Chunk]:
    """Chunks of one ``K x N`` matrix (one group) at the given offsets: as
    many whole column tiles, in order, as fit the arrays (each on its own
    row tiles: ``TilingAttr.row_tiles_of``); when one column tile alone is
    larger than them, each column tile cut by its row tiles (then chunks
    add partial sums)."""
    n, rows = tiling.field("n"), tiling.field("rows")
    per_array = tiling.outputs_per_array
    cells = array_cells(tiling)
    tiles = [
        (
            tiling.row_tiles_of(c),
            tiling.rows_of(c),
            min(n, (c + 1) * per_array) - c * per_array,
        )
        for c in range(tiling.field("col_tiles"))
    ]
    if tiling.field("row_tiles") > available:
        return [
            Chunk(
                k_offset + r * rows,
                k_offset + min(held, (r + available) * rows),
                n_offset + c * per_array,
                n_offset + c * per_array + outputs,
                min(count, r + available) - r,
                *cells,
                min(count, r + available) - r,
            )
            for c, (count, held, outputs) in enumerate(tiles)
            for r in range(0, count, available)
        ]
    chunks: list[Chunk] = []
    start = 0
    while start < len(tiles):
        stop, arrays = start, 0
        while stop < len(tiles) and arrays + tiles[stop][0] <= available:
            arrays += tiles[stop][0]
            stop += 1
        columns = [(held, outputs) for _, held, outputs in tiles[start:stop]]
        chunks.append(
            column_run(columns, k_offset, n_offset + start * per_array, rows, cells)
        )
        start = stop
    return chunks


def whole_copy(tiling: TilingAttr) -> Chunk:
    """One copy of the weight on as many arrays as it takes, as one chunk."""
    return _memoized_plan(tiling, tiling.arrays_per_copy)[0]


def plan_chunks(tiling: TilingAttr, available: int) -> list[Chunk]:
    """Cut one weight copy into chunks of at most ``available`` arrays
    (see :func:`_cut`; plans are memoized, the list is the caller's)."""
    return list(_memoized_plan(tiling, available))


@lru_cache(maxsize=1 << 14)
def _memoized_plan(tiling: TilingAttr, available: int) -> tuple[Chunk, ...]:
    return tuple(_cut(tiling, available))


def _cut(tiling: TilingAttr, available: int) -> list[Chunk]:
    """Cut one weight copy into chunks of at most ``available`` arrays.

    A copy that fits is one chunk. Otherwise grouped weights are cut by
    groups (each group on its own when one group alone exceeds the arrays);
    a matrix is cut by column tiles (all row tiles of a column stay together,
    so each chunk finishes its outputs), and by row tiles too when one column
    of tiles alone exceeds the arrays (then chunks add partial sums).
    """
    k, n, groups = (tiling.field(f) for f in ("k", "n", "groups"))
    if available < 1:
        raise ValueError("no arrays available for a weight chunk")
    if groups == 1:
        return _plan_matrix(tiling, available, 0, 0)
    cell_rows, cell_cols = array_cells(tiling)
    row_tiles = tiling.field("row_tiles")
    block = row_tiles * tiling.field("col_tiles")
    packed = tiling.field("groups_per_array")
    if tiling.arrays_per_copy <= available:
        return [
            Chunk(
                0,
                groups * k,
                0,
                groups * n,
                tiling.arrays_per_copy,
                cell_rows,
                cell_cols,
                row_tiles,
                groups,
            )
        ]
    if block > available:
        return [
            chunk
            for g in range(groups)
            for chunk in _plan_matrix(tiling, available, g * k, g * n)
        ]
    step = (available // block) * packed
    return [
        Chunk(
            g * k,
            min(groups, g + step) * k,
            g * n,
            min(groups, g + step) * n,
            math.ceil((min(groups, g + step) - g) / packed) * block,
            cell_rows,
            cell_cols,
            row_tiles,
            min(groups, g + step) - g,
        )
        for g in range(0, groups, step)
    ]
