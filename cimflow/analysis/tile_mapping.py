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


def _band_shape(tiling: TilingAttr, available: int, bands: int) -> tuple[int, int]:
    """Row tiles a band of ``bands`` holds and whole columns a chunk of one
    band takes on ``available`` arrays (0: not even one fits)."""
    band = -(-tiling.field("row_tiles") // bands)
    return band, min(tiling.field("col_tiles"), available // band)


def stream_bytes(
    tiling: TilingAttr,
    available: int,
    hw: HardwareTarget,
    bands: int,
    input_rows: int = 0,
) -> float | None:
    """Bytes a streamed matrix moves besides its weights, per output column
    and input vector, cut into ``bands`` bands of its row tiles, each
    chunk holding one band of as many whole column tiles as fit
    ``available`` arrays (None: not even one fits):

    - inputs: every column run reads its band's rows of each vector, so
      the whole input once per run: ``k * activation_bytes / columns``
      (``input_rows`` for ``k`` when more: the rows whose inputs the arrays
      take in);
    - partial sums leaving a core: a column whose row tiles lie on ``h > 1``
      cores (laid from array 0, ``arrays_per_core`` a core) sends ``h``
      sums out and reads them back: ``2 * h * accumulator_bytes``;
    - bands: each band's sums are written and read, and the running sum
      read and written between bands: ``(4 * bands - 2) *
      accumulator_bytes`` with more than one band.

    Sums cost their bytes where they outgrow the global buffer and wait in
    DRAM, the case where the cut matters (a prompt's vectors)."""
    band, columns = _band_shape(tiling, available, bands)
    if columns < 1:
        return None
    per_core = hw.hierarchy.arrays_per_core
    leaving = 0
    for column in range(columns):
        offset = column * band % per_core
        holders = -(-(offset + band) // per_core)
        leaving += holders if holders > 1 else 0
    act, acc = hw.activation_bytes, hw.accumulator_bytes
    read = max(tiling.field("k"), input_rows)
    inputs = read * act / (columns * tiling.outputs_per_array)
    running = (4 * bands - 2) * acc if bands > 1 else 0
    return inputs + 2 * acc * leaving / columns + running


BAND_GAIN = 0.5
"""Bands of row tiles replace whole columns only where their
:func:`stream_bytes` is at most this share of the whole columns': those
bytes are what DRAM carries once a prompt's sums outgrow the global
buffer, while for few vectors a whole column's sums pass the buffer in
parts and the bands still cost running sums and their additions (the
plan is made without the vector count). LLaMA-2-7B's down projection on
dynaplasia: 0.46; a 256 x 16 weight on tiny's 8 arrays: 0.83."""


def row_groups(tiling: TilingAttr, available: int, hw: HardwareTarget) -> int | None:
    """Bands of row tiles a streamed matrix is cut into: the count whose
    :func:`stream_bytes` is least (the fewest on a tie), among those whose
    band fits ``available`` arrays, when it is at most :data:`BAND_GAIN`
    of the fewest's; else None (whole columns, each chunk finishing its
    outputs, or, when one column alone exceeds the arrays, one column tile
    a chunk). LLaMA-2-7B's down projection (35 row tiles of 320) on
    dynaplasia's 96 arrays took two columns a chunk and read its 1.4 MB
    prompt input (L 128) 52 times; in three bands, eight columns a chunk,
    13 times."""
    row_tiles = tiling.field("row_tiles")
    least = -(-row_tiles // available)
    costs = {
        groups: cost
        for groups in range(least, row_tiles + 1)
        if (cost := stream_bytes(tiling, available, hw, groups)) is not None
    }
    best = min(costs, key=lambda groups: (costs[groups], groups))
    if best == least or costs[best] > BAND_GAIN * costs[least]:
        return None
    return best


def stream_traffic(
    tiling: TilingAttr, available: int, hw: HardwareTarget, input_rows: int = 0
) -> float:
    """:func:`stream_bytes` of the cut :func:`plan_chunks` makes of a matrix
    on ``available`` arrays, for all its outputs: 0 when one copy fits
    them or the weight is grouped (cut by groups, not rows); a sliced
    tiling's columns counted as tall as its tallest, whole. ``input_rows``
    (when more than the tiling's ``k``): the rows whose inputs its arrays
    take in (held rows gathered from several tiles, or an IntraBlock
    mapping's dense rows), the input each column run reads again."""
    if tiling.arrays_per_copy <= available or tiling.field("groups") > 1:
        return 0.0
    bands = None if tiling.ragged else row_groups(tiling, available, hw)
    if bands is None:
        bands = -(-tiling.field("row_tiles") // available)
    cost = stream_bytes(tiling, available, hw, bands, input_rows)
    return math.inf if cost is None else cost * tiling.field("n")


def _plan_matrix(
    tiling: TilingAttr,
    available: int,
    k_offset: int,
    n_offset: int,
    hw: HardwareTarget | None,
) -> list[Chunk]:
    """Chunks of one ``K x N`` matrix (one group) at the given offsets: as
    many whole column tiles, in order, as fit the arrays (each on its own
    row tiles: ``TilingAttr.row_tiles_of``). Cut into bands of row tiles
    (then chunks add partial sums), each band of a column run after the
    other: with ``hw``, the :func:`row_groups` of a tiling that is not
    sliced; else, or for a sliced one, only when one column tile alone is
    larger than the arrays, one column tile a chunk."""
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
    whole = tiling.field("row_tiles") * tiling.field("col_tiles")
    if hw is not None and not tiling.ragged and whole > available:
        groups = row_groups(tiling, available, hw)
        if groups is not None:
            return _banded(tiling, available, k_offset, n_offset, groups)
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


def _banded(
    tiling: TilingAttr, available: int, k_offset: int, n_offset: int, groups: int
) -> list[Chunk]:
    """Chunks of a matrix cut into ``groups`` bands of row tiles: each run
    of as many whole column tiles as a band's arrays fit ``available``,
    band after band."""
    k, n, rows = (tiling.field(f) for f in ("k", "n", "rows"))
    row_tiles, col_tiles = tiling.field("row_tiles"), tiling.field("col_tiles")
    per_array = tiling.outputs_per_array
    band, run = _band_shape(tiling, available, groups)
    chunks: list[Chunk] = []
    for first in range(0, col_tiles, run):
        stop = min(col_tiles, first + run)
        for r in range(0, row_tiles, band):
            held = min(band, row_tiles - r)
            chunks.append(
                Chunk(
                    k_offset + r * rows,
                    k_offset + min(k, (r + band) * rows),
                    n_offset + first * per_array,
                    n_offset + min(n, stop * per_array),
                    held * (stop - first),
                    *array_cells(tiling),
                    held,
                )
            )
    return chunks


def whole_copy(tiling: TilingAttr) -> Chunk:
    """One copy of the weight on as many arrays as it takes, as one chunk."""
    return _memoized_plan(tiling, tiling.arrays_per_copy, None)[0]


def plan_chunks(
    tiling: TilingAttr, available: int, hw: HardwareTarget | None = None
) -> list[Chunk]:
    """Cut one weight copy into chunks of at most ``available`` arrays
    (see :func:`_cut`; plans are memoized, the list is the caller's). The
    lowering and every cost model pass the target, whose byte widths and
    cores choose the bands of row tiles a tall matrix streams in
    (:func:`row_groups`); without it, bands only where one column tile
    exceeds the arrays."""
    return list(_memoized_plan(tiling, available, hw))


@lru_cache(maxsize=1 << 14)
def _memoized_plan(
    tiling: TilingAttr, available: int, hw: HardwareTarget | None
) -> tuple[Chunk, ...]:
    return tuple(_cut(tiling, available, hw))


def _cut(
    tiling: TilingAttr, available: int, hw: HardwareTarget | None = None
) -> list[Chunk]:
    """Cut one weight copy into chunks of at most ``available`` arrays.

    A copy that fits is one chunk. Otherwise grouped weights are cut by
    groups (each group on its own when one group alone exceeds the arrays);
    a matrix is cut by column tiles (all row tiles of a column stay together,
    so each chunk finishes its outputs), and by bands of row tiles too
    (then chunks add partial sums) as :func:`_plan_matrix` says.
    """
    k, n, groups = (tiling.field(f) for f in ("k", "n", "groups"))
    if available < 1:
        raise ValueError("no arrays available for a weight chunk")
    if groups == 1:
        return _plan_matrix(tiling, available, 0, 0, hw)
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
            for chunk in _plan_matrix(tiling, available, g * k, g * n, hw)
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
