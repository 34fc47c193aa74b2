"""Crossbar counts of a tiled model, in our units and in PIMCOMP's.

Our tiling (``#cim_tile.tiling``) counts *physical* arrays: a weight of
``weight_bits`` takes ``bit_slices = ceil(weight_bits / cell_bits)``
adjacent columns, so an array holds ``cols // bit_slices`` outputs.
PIMCOMP (Sun et al., DAC'23; ``backend/CrossbarPartition.cpp``) counts
*logical* crossbars, each holding a ``rows x cols`` block of whole
(16-bit) weights, and does not multiply by bit slices::

    logical crossbars of one copy = ceil(K / rows) * ceil(N / cols)

with ``K = Kh * Kw * Cin`` (a convolution) or the input features (a fully
connected layer) and ``N`` the output channels. The row cut is the same in
both (``row_tiles = ceil(K / rows)``); the column cut differs by the bit
slices (``col_tiles = ceil(N / (cols // bit_slices))``).

:func:`pimcomp_balance` reproduces PIMCOMP's default ``balance`` weight
replication (``backend/WeightReplication.cpp``, ``ReplicationByBalance``) so
totals can be compared with what PIMCOMP would map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from cimflow.cimdialect import cim_tile
from cimflow.errors import CimError

LayerKind = Literal["conv", "fc"]

PIMCOMP_MARGIN = 0.5
"""``balance`` stops replicating once half the crossbars left after the
fully connected layers are used (``margin_factor``)."""

PIMCOMP_COMPILER_CROSSBARS = 12 * 12 * 64
"""The crossbars PIMCOMP's compiler budgets for its default configuration:
``network_config.layout`` 12 x 12 cores x ``xbar_array_count`` 64 (its
simulator, pimsim-nn, uses ``core_cnt`` = 136 of those cores: 8704)."""


def logical_crossbars(tiling: cim_tile.TilingAttr) -> int:
    """PIMCOMP's logical crossbars for one copy of a tiled weight.

    ``ceil(groups * k / rows) * ceil(groups * n / cols)``: whole weights per
    column, no bit slices. For an ungrouped weight this is PIMCOMP's
    ``ceil(Kh*Kw*Cin / rows) * ceil(Cout / cols)``; PIMCOMP maps a grouped
    convolution as its whole block-diagonal ``[Kh*Kw*Cin, Cout]`` matrix
    (its ``H = kernel_h * kernel_w * input_channel`` uses all input
    channels), so the same formula holds with ``Cin`` all input channels.
    """
    k, n, groups, rows, cols = (
        tiling.field(key) for key in ("k", "n", "groups", "rows", "cols")
    )
    return math.ceil(groups * k / rows) * math.ceil(groups * n / cols)


@dataclass(frozen=True)
class LayerMapping:
    """One weight-stationary layer: its shape and crossbar counts."""

    name: str
    """The weight's name."""
    kind: LayerKind
    """``conv`` (PIMCOMP's OP_CONV, replicable) or ``fc`` (OP_FC, never)."""
    k: int
    n: int
    groups: int
    vectors: int
    """Input vectors of the whole batch."""
    windows: int
    """Sliding windows per sample (output pixels; 1 for a fully connected
    layer), what PIMCOMP's ``balance`` divides among copies."""
    row_tiles: int
    col_tiles: int
    arrays: int
    """Physical arrays of one copy (``arrays_per_copy``)."""
    logical: int
    """PIMCOMP's logical crossbars of one copy (:func:`logical_crossbars`)."""


def mapping_layers(module: ModuleOp, batch: int = 1) -> list[LayerMapping]:
    """Every ``cim_tile.mvm`` of a tiled module, in program order.

    ``batch`` divides the vectors into per-sample windows.
    """
    layers: list[LayerMapping] = []
    for function in module.ops:
        if not isinstance(function, func.FuncOp):
            continue
        for op in function.body.block.ops:
            if not isinstance(op, cim_tile.MVMOp):
                continue
            tiling = op.tiling
            kind: LayerKind = (
                "conv" if op.layout.data == cim_tile.WeightLayout.OIHW else "fc"
            )
            layers.append(
                LayerMapping(
                    name=op.weight.data,
                    kind=kind,
                    k=tiling.field("k"),
                    n=tiling.field("n"),
                    groups=tiling.field("groups"),
                    vectors=op.vectors,
                    windows=max(1, op.vectors // batch) if kind == "conv" else 1,
                    row_tiles=tiling.field("row_tiles"),
                    col_tiles=tiling.field("col_tiles"),
                    arrays=tiling.arrays_per_copy,
                    logical=logical_crossbars(tiling),
                )
            )
    if not layers:
        raise CimError("no cim_tile.mvm in the module; run convert-graph-to-tile first")
    return layers


# -- PIMCOMP's balance replication ----------------------------------------
#
# PIMCOMP keeps its candidates in a std::priority_queue ordered by the
# current sliding windows per copy only; which of two equal layers it pops
# first depends on libstdc++'s heap algorithms, reproduced here so the
# replication (and VGG-16's 9288 crossbars) comes out exactly.

_Entry = tuple[int, int, int, int]
"""(layer index, crossbars per copy, current windows per copy, windows)."""


def _less(a: _Entry, b: _Entry) -> bool:
    return a[2] < b[2]


def _sift_up(heap: list[_Entry], hole: int, top: int, value: _Entry) -> None:
    parent = (hole - 1) // 2
    while hole > top and _less(heap[parent], value):
        heap[hole] = heap[parent]
        hole = parent
        parent = (hole - 1) // 2
    heap[hole] = value


def _heap_push(heap: list[_Entry], value: _Entry) -> None:
    heap.append(value)
    _sift_up(heap, len(heap) - 1, 0, value)


def _heap_pop(heap: list[_Entry]) -> _Entry:
    """libstdc++ ``pop_heap`` (``__adjust_heap``) then ``pop_back``."""
    top, value = heap[0], heap[-1]
    length = len(heap) - 1
    hole = child = 0
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _less(heap[child], heap[child - 1]):
            child -= 1
        heap[hole] = heap[child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        heap[hole] = heap[child - 1]
        hole = child - 1
    if length:
        _sift_up(heap, hole, 0, value)
    heap.pop()
    return top


def pimcomp_balance(
    layers: Sequence[LayerMapping],
    budget: int,
    crossbars: Callable[[LayerMapping], int] = lambda layer: layer.logical,
) -> list[int]:
    """PIMCOMP's ``balance`` replication of every layer for ``budget`` crossbars.

    Fully connected layers get one copy and their crossbars are set aside.
    Convolutions start with one copy (not charged to the budget, as in
    PIMCOMP); then, while the crossbars left exceed both the next layer's
    copy and half of what was left after the fully connected layers, the
    convolution with the most sliding windows per copy gets one more copy.
    Copies are finally capped at the layer's windows (PIMCOMP's partition
    step). ``crossbars`` gives a layer's crossbars per copy (PIMCOMP's
    logical count by default).
    """
    replication = [1] * len(layers)
    heap: list[_Entry] = []
    available = budget
    for index, layer in enumerate(layers):
        if layer.kind == "fc":
            available -= crossbars(layer)
        else:
            _heap_push(heap, (index, crossbars(layer), layer.windows, layer.windows))
    margin = int(available * PIMCOMP_MARGIN)
    while heap and available > heap[0][1] and available > margin:
        index, per_copy, _, windows = _heap_pop(heap)
        replication[index] += 1
        current = math.ceil(windows / replication[index])
        _heap_push(heap, (index, per_copy, current, windows))
        available -= per_copy
    return [
        min(copies, layer.windows) if layer.kind == "conv" else 1
        for copies, layer in zip(replication, layers, strict=True)
    ]


@dataclass(frozen=True)
class MappingSummary:
    """Totals of :func:`mapping_layers` and PIMCOMP's replication of them."""

    layers: tuple[LayerMapping, ...]
    budget: int
    """The crossbar budget given to ``balance``."""
    replication: tuple[int, ...]
    """``balance`` copies per layer."""

    @property
    def logical(self) -> int:
        """PIMCOMP logical crossbars of one copy of every layer."""
        return sum(layer.logical for layer in self.layers)

    @property
    def arrays(self) -> int:
        """Our physical arrays of one copy of every layer."""
        return sum(layer.arrays for layer in self.layers)

    @property
    def logical_replicated(self) -> int:
        """Logical crossbars with ``balance`` replication (PIMCOMP's total)."""
        return sum(
            copies * layer.logical
            for copies, layer in zip(self.replication, self.layers, strict=True)
        )

    @property
    def arrays_replicated(self) -> int:
        """Physical arrays the same replication would take in our tiling."""
        return sum(
            copies * layer.arrays
            for copies, layer in zip(self.replication, self.layers, strict=True)
        )

    @property
    def fits(self) -> bool:
        """Whether PIMCOMP's mapping check would pass (total within budget)."""
        return self.logical_replicated <= self.budget


def mapping_summary(module: ModuleOp, budget: int, batch: int = 1) -> MappingSummary:
    """Per-layer counts of a tiled module and PIMCOMP's ``balance`` for ``budget``."""
    layers = mapping_layers(module, batch)
    return MappingSummary(tuple(layers), budget, tuple(pimcomp_balance(layers, budget)))


def format_mapping(summary: MappingSummary, title: str = "") -> str:
    """The per-layer table and totals as text.

    Columns: the layer's weight, ``conv`` or ``fc``, ``K`` and ``N`` (all
    groups), sliding windows per sample, our ``row_tiles``, ``col_tiles``
    and physical ``arrays`` of one copy, PIMCOMP's ``logical`` crossbars of
    one copy, ``balance`` ``copies`` for the summary's budget and the
    logical crossbars of all copies.
    """
    header = (
        "layer",
        "kind",
        "K",
        "N",
        "windows",
        "row_tiles",
        "col_tiles",
        "arrays",
        "logical",
        "copies",
        "logical x copies",
    )
    rows: list[tuple[str, ...]] = [header]
    for layer, copies in zip(summary.layers, summary.replication, strict=True):
        rows.append(
            (
                layer.name,
                layer.kind,
                str(layer.groups * layer.k),
                str(layer.groups * layer.n),
                str(layer.windows),
                str(layer.row_tiles),
                str(layer.col_tiles),
                str(layer.arrays),
                str(layer.logical),
                str(copies),
                str(copies * layer.logical),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title] if title else []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    verdict = "fits" if summary.fits else "does not fit: PIMCOMP's map check fails"
    lines += [
        f"one copy: {summary.logical} PIMCOMP logical crossbars, "
        f"{summary.arrays} physical arrays",
        f"balance replication for {summary.budget} crossbars: "
        f"{summary.logical_replicated} logical crossbars ({verdict}), "
        f"{summary.arrays_replicated} physical arrays",
    ]
    return "\n".join(lines)
