"""How one copy of a tiled weight is laid onto a given number of arrays.

Shared by the allocation passes (how many chunks an operator needs) and the
lowering to meta-ops (which weight slice each chunk programs), so both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimflow.cimdialect.cim_tile import TilingAttr


@dataclass(frozen=True)
class Chunk:
    """A rectangle ``[k0, k1) x [n0, n1)`` of the ``[G*K, G*N]`` weight matrix
    held at once by ``arrays`` arrays, each using ``rows`` x ``cols`` cells."""

    k0: int
    k1: int
    n0: int
    n1: int
    arrays: int
    rows: int
    cols: int
    row_tiles: int
    """Row tiles inside this chunk whose partial sums must be added."""


def _cells(tiling: TilingAttr) -> tuple[int, int]:
    k, n, rows = (tiling.field(f) for f in ("k", "n", "rows"))
    packed = tiling.field("groups_per_array")
    slices = tiling.field("bit_slices")
    if packed > 1:
        return packed * k, packed * n * slices
    return min(k, rows), min(n, tiling.outputs_per_array) * slices


def plan_chunks(tiling: TilingAttr, available: int) -> list[Chunk]:
    """Cut one weight copy into chunks of at most ``available`` arrays.

    A copy that fits is one chunk. Otherwise grouped weights are cut by
    groups, others by column tiles (all row tiles of a column stay together,
    so each chunk finishes its outputs), and by row tiles too when one column
    of tiles alone exceeds the chip (then chunks add partial sums).
    """
    k, n, groups = (tiling.field(f) for f in ("k", "n", "groups"))
    rows = tiling.field("rows")
    row_tiles, col_tiles = tiling.field("row_tiles"), tiling.field("col_tiles")
    per_array = tiling.outputs_per_array
    cell_rows, cell_cols = _cells(tiling)
    total = tiling.arrays_per_copy
    if total <= available:
        return [
            Chunk(0, groups * k, 0, groups * n, total, cell_rows, cell_cols, row_tiles)
        ]
    if groups > 1:
        packed = tiling.field("groups_per_array")
        arrays_per_group_block = row_tiles * col_tiles
        blocks = max(1, available // arrays_per_group_block)
        step = blocks * packed
        return [
            Chunk(
                g * k,
                min(groups, g + step) * k,
                g * n,
                min(groups, g + step) * n,
                math.ceil((min(groups, g + step) - g) / packed)
                * arrays_per_group_block,
                cell_rows,
                cell_cols,
                row_tiles,
            )
            for g in range(0, groups, step)
        ]
    if row_tiles <= available:
        columns = available // row_tiles
        return [
            Chunk(
                0,
                k,
                c * per_array,
                min(n, (c + columns) * per_array),
                row_tiles * (min(col_tiles, c + columns) - c),
                cell_rows,
                cell_cols,
                row_tiles,
            )
            for c in range(0, col_tiles, columns)
        ]
    return [
        Chunk(
            r * rows,
            min(k, (r + available) * rows),
            c * per_array,
            min(n, (c + 1) * per_array),
            min(row_tiles, r + available) - r,
            cell_rows,
            cell_cols,
            min(row_tiles, r + available) - r,
        )
        for c in range(col_tiles)
        for r in range(0, row_tiles, available)
    ]
