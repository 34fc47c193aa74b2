"""cim-sparse-rows: arrays hold only the weight rows their columns need
(or, with ``orientation``, only the columns their rows need).

An array drives one input on each of its rows, shared by all of its
columns, so the rows of a weight that are zero in every column an array
holds need not be stored, driven or converted. For each ``cim_tile.mvm``
whose weight the model file gives (``cim_graph.source``), this pass finds
those rows from the real values
(:func:`cimflow.analysis.sparse_tiling.compacted_rows`: per column tile of
``cols / bit_slices`` outputs, the rows some column needs, the tiles padded
to the longest) and, when that drops at least ``min_saving`` of the rows
and pays (a copy of the held rows programs from DRAM faster than the
dense weight, or takes fewer arrays while its bytes grow by no more than
that: the held rows' indices stream in with them, and a ``ceil(log2
K)``-bit index beside each held row of an array's few outputs can cost
more than the rows it drops; when every list holds whole blocks of ``B``
rows from multiples of ``B``, as channel and aligned block patterns do,
an index names a block, ``index_block`` ``B``,
:func:`cimflow.analysis.sparse_tiling.row_index_block`), tiles the weight
by the rows held:
``tiling.k`` becomes the held rows and
``compacted_from`` keeps ``K``. Fewer rows mean fewer row tiles (arrays,
programming, partial sums to add) and fewer word-line passes; each array
drives the inputs of the rows it holds, and a core takes in the inputs of
the rows some array needs: when the column tiles keep different rows,
their union (``input_rows``,
:func:`cimflow.analysis.sparse_tiling.gathered_rows`), more than any one
tile holds.

What zeros pay this way is CIMinus's row-wise, channel-wise and
array-aligned FullBlock sparsity (``docs/sparsity.md``); zeros that differ
between an array's columns (unstructured, most N:M masks) save nothing on
arrays whose rows are shared. On a target whose cells have input
multiplexers (``array.mux_inputs`` of 2 or more) the pass also tries
CIMinus's IntraBlock mapping
(:func:`cimflow.analysis.sparse_tiling.intra_block_rows`): rows cut into
groups of ``M`` (a power of two up to ``mux_inputs``), each group held in
as many rows as the most nonzeros a column has in it, each cell picking
its own input of the group; an ``N:M`` weight shrinks to ``N`` rows per
group whatever its columns' masks. The groups are counted per column
tile, so a group whose block is all zero in a tile's columns takes no
rows there (CIMinus's FlexBlock: a FullBlock pattern with an IntraBlock
one nested in it). It takes whichever mapping holds fewer rows (the row
gather on a tie) and marks the IntraBlock one with ``intra_block`` ``M``,
and with ``driven_rows`` when the widest tile's arrays drive the inputs of
fewer rows than the weight's. Grouped weights packed several to an array are left
as they are.

With ``orientation`` ``column`` (or ``best``: whichever takes fewer
arrays a copy, rows on a tie) it compacts the other dimension: each row
tile's arrays leave out the columns zero in all of its rows (filters
pruned whole, or zero blocks as tall as an array), ``tiling.n`` becomes
the columns held and ``columns_from`` keeps ``N``; the output stays ``N``
wide, each column tile owning a contiguous range of outputs, each held
column's outputs landing at its own column and a dropped column's being
its bias alone (:func:`cimflow.analysis.sparse_tiling.held_columns`).
Fewer columns mean fewer column tiles (arrays, programming,
conversions); each array's outputs need their columns' indices,
``ceil(log2 N)`` bits each, streamed with its weights. Where the row
tiles hold different columns (``misaligned_columns``), their partial sums
land on different outputs and each merge of them looks its output up
(CIMinus's extra accumulation). CIMinus calls the two its compression
orientations; a weight is compacted one way, not both.

Column tiles of a row gather hold different numbers of rows; with
``rearrangement`` ``pad`` (the default) each is padded to the longest and
takes as many arrays, with ``slice`` each takes only the arrays its own
held rows fill (``#cim_tile.tiling``'s ``column_row_tiles``,
:func:`cimflow.analysis.sparse_tiling.sliced_row_tiles`; CIMinus's two
rearrangements of ragged compressed columns): fewer arrays to program and
activate, fewer partial sums to add, and, where a weight streams, fewer
chunks. Slicing applies to one-group weights, row gathers and IntraBlock
mappings alike (a grouped weight stays padded).

Run it right after ``convert-graph-to-tile``::

    cim-opt pruned.onnx -p 'convert-graph-to-tile,cim-sparse-rows,
        cim-static-allocate,convert-tile-to-meta'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, UnitAttr, i64
from xdsl.passes import ModulePass

from cimflow.analysis.layer_selection import selected_mvms
from cimflow.analysis.sparse_tiling import (
    best_intra_block,
    compacted_rows,
    gathered_rows,
    held_columns,
    intra_block_driven_rows,
    row_index_block,
    sliced_row_tiles,
)
from cimflow.analysis.sparsity import Matrix
from cimflow.analysis.tile_mapping import stream_traffic, target_tiling, whole_copy
from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_graph import WeightSourceAttr
from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.cost_model import held_index_bits, program_op_cost
from cimflow.errors import CimError
from cimflow.frontend.onnx_import import SOURCE_ATTR
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.rules import (
    NO_ROW_INDICES,
    RowIndices,
    column_indices,
    program_bytes,
)
from cimflow.target_record import module_target
from cimflow.weight_layout import as_matrix


@dataclass(frozen=True)
class CimSparseRowsPass(ModulePass):
    """Tile each weight by the rows (or columns) its arrays need."""

    name = "cim-sparse-rows"

    min_saving: float = 0.05
    """Compact a weight only when this share of its rows, or more, drops."""

    layers: tuple[str, ...] = ()
    """ONNX node names of the MVMs to compact (empty: every MVM)."""

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    intra_block: bool = True
    """Also try the IntraBlock mapping, on a target with cell multiplexers."""

    orientation: str = "row"
    """What to compact: ``row`` (the rows an array's columns need),
    ``column`` (the columns nonzero in some row: filters pruned whole), or
    ``best`` (whichever takes fewer arrays a copy, rows on a tie)."""

    rearrangement: str = "pad"
    """How column tiles holding different numbers of rows are laid out:
    ``pad`` (each padded to the longest, every tile on as many arrays) or
    ``slice`` (each on the arrays its own rows fill; one-group weights)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from cimflow.frontend import load_weights

        if not 0.0 <= self.min_saving < 1.0:
            raise CimError(
                f"{self.name}: min_saving must be in [0, 1), got {self.min_saving}"
            )
        if self.orientation not in ORIENTATIONS:
            raise CimError(
                f"{self.name}: orientation must be one of "
                f"{', '.join(ORIENTATIONS)}, got '{self.orientation}'"
            )
        if self.rearrangement not in REARRANGEMENTS:
            raise CimError(
                f"{self.name}: rearrangement must be one of "
                f"{', '.join(REARRANGEMENTS)}, got '{self.rearrangement}'"
            )
        hw = module_target(op, self.target, self.name)
        source = op.attributes.get(SOURCE_ATTR)
        if not isinstance(source, WeightSourceAttr) or not source.path.data:
            raise CimError(
                f"{self.name}: the module names no model file "
                f"('{SOURCE_ATTR}'), so there are no weight values to read"
            )
        mvms = selected_mvms(op, self.layers, self.name)
        values = load_weights(Path(source.path.data), source.dim_values)
        for mvm in mvms:
            tiling = mvm.tiling
            if (
                mvm.compacted_from is not None
                or mvm.columns_from is not None
                or tiling.field("groups_per_array") > 1
                or mvm.weight.data not in values
            ):
                continue
            groups, k, n = (tiling.field(key) for key in ("groups", "k", "n"))
            matrix = as_matrix(
                mvm.weight.data,
                mvm.layout.data.value,
                groups,
                k,
                n,
                values[mvm.weight.data],
            )
            rows = (
                None
                if self.orientation == "column"
                else self.held_rows(hw, mvm, matrix)
            )
            columns = (
                None
                if self.orientation == "row"
                else self.held_columns(hw, mvm, matrix)
            )
            if rows is not None and (
                columns is None
                or rows.tiling.arrays_per_copy <= columns.tiling.arrays_per_copy
            ):
                rows.write(mvm)
            elif columns is not None:
                columns.write(mvm)

    def held_rows(
        self, hw: HardwareTarget, mvm: cim_tile.MVMOp, matrix: Matrix
    ) -> HeldRows | None:
        """The row gather or IntraBlock mapping of ``mvm``'s weight, when it
        drops ``min_saving`` of the rows and pays."""
        groups, k, n = matrix.shape
        tile_columns = mvm.tiling.outputs_per_array
        row_map = compacted_rows(matrix, tile_columns)
        group = 0
        if self.intra_block:
            best = best_intra_block(matrix, hw.array.mux_inputs, tile_columns)
            if best is not None and best[1].shape[2] < row_map.shape[2]:
                group, row_map = best
        held = row_map.shape[2]
        gathered = gathered_rows(row_map, group, k)
        block = 1 if group else row_index_block(row_map, k)
        indices = (k, group, not group and gathered == held, block, 0)
        if held > k * (1.0 - self.min_saving):
            return None
        tiling = target_tiling(hw, held, n, groups)
        candidates = [tiling]
        if self.rearrangement == "slice" and groups == 1:
            per_list = tile_columns if group else 1  # IntraBlock: per column
            rows = sliced_row_tiles(row_map, hw.array.rows, per_list)
            # padded where the sliced tiles do not pay (streamed in whole
            # columns where the padded ones stream in bands)
            candidates.insert(0, tiling.sliced(rows))
        paying = [
            t for t in candidates if _pays(hw, (mvm.tiling, t), indices, gathered)
        ]
        if not paying:
            return None
        tiling = paying[0]
        driven = k
        if group:
            driven = intra_block_driven_rows(row_map, group, k, tile_columns)
        return HeldRows(tiling, k, group, driven, gathered, block)

    def held_columns(
        self, hw: HardwareTarget, mvm: cim_tile.MVMOp, matrix: Matrix
    ) -> HeldColumns | None:
        """The columns of ``mvm``'s weight nonzero in some row, when they
        leave out ``min_saving`` of its columns and pay."""
        groups, k, n = matrix.shape
        columns = held_columns(
            matrix, mvm.tiling.field("rows"), mvm.tiling.outputs_per_array
        )
        tiling = target_tiling(hw, k, columns.held, groups)
        if columns.held > n * (1.0 - self.min_saving) or not _pays(
            hw, (mvm.tiling, tiling), column_indices(n)
        ):
            return None
        return HeldColumns(tiling, n, columns.misaligned)


ORIENTATIONS = ("row", "column", "best")
REARRANGEMENTS = ("pad", "slice")


@dataclass(frozen=True)
class HeldRows:
    """A weight tiled by the rows its arrays hold."""

    tiling: TilingAttr
    reduction: int
    group: int
    """The IntraBlock row group (0: a row gather)."""
    driven: int
    gathered: int
    block: int

    def write(self, mvm: cim_tile.MVMOp) -> None:
        mvm.tiling = self.tiling
        mvm.compacted_from = IntegerAttr(self.reduction, i64)
        if self.group:
            mvm.intra_block = IntegerAttr(self.group, i64)
            if self.driven < self.reduction:
                mvm.driven_rows = IntegerAttr(self.driven, i64)
        if self.gathered != mvm.gathered_input_rows:
            mvm.input_rows = IntegerAttr(self.gathered, i64)
        if self.block > 1:
            mvm.index_block = IntegerAttr(self.block, i64)


@dataclass(frozen=True)
class HeldColumns:
    """A weight tiled by the columns its arrays hold."""

    tiling: TilingAttr
    outputs: int
    misaligned: bool
    """Its row tiles hold different columns."""

    def write(self, mvm: cim_tile.MVMOp) -> None:
        mvm.tiling = self.tiling
        mvm.columns_from = IntegerAttr(self.outputs, i64)
        if self.misaligned:
            mvm.misaligned_columns = UnitAttr()


def _pays(
    hw: HardwareTarget,
    tilings: tuple[TilingAttr, TilingAttr],
    indices: RowIndices,
    input_rows: int = 0,
) -> bool:
    """Whether a copy tiled as ``tilings[1]`` instead of ``tilings[0]`` (the
    dense weight) pays: where the weight streams through the target's
    arrays, its chunks read no more input and move no more sums than the
    dense weight's (:func:`~cimflow.analysis.tile_mapping.stream_traffic`,
    its arrays taking in the inputs of ``input_rows`` rows: a dense weight
    streamed in bands of row tiles can read its input fewer times than
    held rows in whole columns); and it programs from DRAM
    faster, or takes fewer arrays while its bytes x arrays do not grow,
    its indices streaming in with its values
    (:func:`~cimflow.lowering.rules.program_bytes`,
    :func:`~cimflow.cost_model.program_op_cost`)."""
    dense, compacted = tilings
    total = hw.total_arrays
    streamed = stream_traffic(compacted, total, hw, input_rows)
    if streamed > stream_traffic(dense, total, hw):
        return False
    dense_cycles, dense_bytes = _copy_program(hw, dense, NO_ROW_INDICES)
    cycles, nbytes = _copy_program(hw, compacted, indices)
    if cycles < dense_cycles:
        return True
    # fewer arrays, its bytes growing (with the indices) by at most the
    # share of arrays saved: bytes x arrays no more than the dense copy's
    saved = compacted.arrays_per_copy < dense.arrays_per_copy
    return saved and (
        nbytes * compacted.arrays_per_copy <= dense_bytes * dense.arrays_per_copy
    )


def _copy_program(
    hw: HardwareTarget, tiling: TilingAttr, indices: RowIndices
) -> tuple[int, int]:
    """Cycles and bytes to program one copy of a weight tiled so from DRAM
    (its values and, compacted, its held rows' indices)."""
    chunk = whole_copy(tiling)
    reduction, group, _, block, columns_from = indices
    nbytes = program_bytes(hw, chunk, row_indices=indices)
    cost = program_op_cost(
        hw,
        chunk.arrays,
        chunk.rows,
        chunk.cols,
        feed="dram",
        in_bytes=nbytes,
        index_bits=held_index_bits(
            hw, reduction, group, chunk.rows, chunk.cols, block, columns_from
        ),
    )
    return cost.cycles, nbytes
