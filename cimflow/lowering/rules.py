"""What the lowering moves and computes for an operator: the rules in one
place.

``convert-tile-to-meta`` emits meta-ops by these functions, and every cost
model (the dual-mode model, the replicating strategies' layer costs, the
lower bound) prices work by the same functions, so a change of rule moves
the compiler's predictions and the simulated machine together.

The machine (``docs/machine-model.md``): array ``a`` sits in core ``a //
arrays_per_core``; a weight copy's arrays are laid out group by group,
column tile by column tile, row tile by row tile (the functional executor's
``slice_placements``), so each core holds some row tiles (input rows ``k``)
of some column tiles. An MVM's input crosses the interconnect once per core
that needs it, as feature-map rows when a convolution window expands it
(the expansion happens in the core, reading its local buffer), else as the
matrix rows themselves; each core receives only the input rows (channels)
its arrays hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

from xdsl.ir import Attribute, Operation, SSAValue

from cimflow.analysis.tile_mapping import Chunk, target_tiling
from cimflow.cimdialect import cim_graph, cim_tile
from cimflow.cimdialect.cim_graph import ints, tensor_shape
from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    EPILOGUE_ACTIVATIONS,
    EPILOGUE_HOSTS,
    Ranges,
    StreamLevel,
    all_cores,
    concurrent_cost,
    driven_scale,
    held_index_bits,
    interconnect_bandwidth,
    local_read_cycles,
    mvm_cycles,
    sends_once,
    stream_bytes,
    vector_cost,
    vector_element_ops,
    vector_op_parts,
    with_mvm_choices,
)
from cimflow.hw_targets import HardwareTarget

Span = tuple[int, int]
"""A ``[start, stop)`` range (of MVM vectors, or of weight rows ``k``)."""


def core_of(hw: HardwareTarget, array: int) -> int:
    """The core array ``array`` sits in."""
    return array // hw.hierarchy.arrays_per_core


def cores_of(hw: HardwareTarget, first: int, count: int) -> tuple[int, ...]:
    """The cores arrays ``[first, first + count)`` sit in, in order."""
    per_core = hw.hierarchy.arrays_per_core
    return tuple(range(first // per_core, (first + max(1, count) - 1) // per_core + 1))


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, disjoint union of ``[start, stop)`` spans."""
    merged: list[Span] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return tuple(merged)


def span_length(spans: Iterable[Span]) -> int:
    return sum(stop - start for start, stop in spans)


def _cuts(start: int, stop: int, size: int) -> list[Span]:
    """``[start, stop)`` cut at the multiples of ``size``."""
    return [
        (max(start, t * size), min(stop, (t + 1) * size))
        for t in range(start // size, -(-stop // size))
    ]


RowIndices = tuple[int, int, bool, int, int]
"""A compacted weight's ``(reduction rows, IntraBlock row group, whether
its column tiles share one list of held rows, rows one index names,
columns of a column-compacted weight)`` (:func:`row_indices_of`);
``NO_ROW_INDICES`` for a weight held whole."""

NO_ROW_INDICES: RowIndices = (0, 0, False, 1, 0)


def column_indices(columns_from: int) -> RowIndices:
    """The :data:`RowIndices` of a weight whose arrays hold only some of its
    ``columns_from`` columns (an output index per held column)."""
    return 0, 0, False, 1, columns_from


def program_bytes(
    hw: HardwareTarget,
    chunk: Chunk,
    activation: bool = False,
    row_indices: RowIndices = NO_ROW_INDICES,
) -> int:
    """Bytes a ``program`` of ``chunk`` streams to its arrays: its weights at
    the weight width, or, for an activation operand written into arrays
    (``activation``), at the activation width; for a compacted weight
    (``row_indices``) the indices of its held rows come with them
    (:func:`~cimflow.cost_model.held_index_bits`): one list per array, or,
    when the column tiles hold the same rows, one per row tile of the
    chunk."""
    width = hw.activation_bytes if activation else hw.weight_bytes
    values = max(1, chunk.weight_elements * width)
    reduction, group, shared, block, columns_from = row_indices
    bits = held_index_bits(
        hw, reduction, group, chunk.rows, chunk.cols, block, columns_from
    )
    lists = chunk.arrays
    if shared:
        outputs = max(1, hw.array.cols // hw.bit_slices)
        columns = -(-(chunk.n1 - chunk.n0) // (chunk.groups * outputs))
        lists = max(1, chunk.arrays // columns)
    return values + math.ceil(lists * bits / 8)


def row_indices_of(mvm: cim_tile.MVMOp) -> RowIndices:
    """The :data:`RowIndices` of ``mvm``'s weight: a row gather whose tiles
    need no rows beyond the held ones (no ``input_rows``) holds the same
    rows in every tile (:func:`~cimflow.analysis.sparse_tiling.
    compacted_rows`)."""
    if mvm.columns_from is not None:
        return column_indices(mvm.columns_from.value.data)
    if mvm.compacted_from is None:
        return NO_ROW_INDICES
    shared = mvm.intra_block is None and mvm.input_rows is None
    return mvm.reduction, mvm.row_group, shared, mvm.rows_per_index, 0


@lru_cache(maxsize=1 << 14)
def array_k_spans(tiling: TilingAttr, chunk: Chunk) -> tuple[tuple[Span, ...], ...]:
    """For each array a chunk of a weight occupies (in placement order), the
    weight rows ``k`` (of the ``[groups*k, groups*n]`` matrix) it holds."""
    big_k, big_n = tiling.field("k"), tiling.field("n")
    rows = tiling.field("rows")
    outputs = tiling.outputs_per_array
    packed = tiling.field("groups_per_array")
    groups = range(chunk.k0 // big_k, -(-chunk.k1 // big_k))
    if packed > 1:
        arrays: list[list[Span]] = []
        for index, g in enumerate(groups):
            if index % packed == 0:
                arrays.append([])
            arrays[-1].append((g * big_k, (g + 1) * big_k))
        return tuple(merge_spans(spans) for spans in arrays)
    result: list[tuple[Span, ...]] = []
    for g in groups:
        k_lo = max(chunk.k0, g * big_k) - g * big_k
        k_hi = min(chunk.k1, (g + 1) * big_k) - g * big_k
        n_lo = max(chunk.n0, g * big_n) - g * big_n
        n_hi = min(chunk.n1, (g + 1) * big_n) - g * big_n
        for index, _ in enumerate(_cuts(n_lo, n_hi, outputs)):
            k_top = k_lo + chunk.columns[index][0] if chunk.columns else k_hi
            for r0, r1 in _cuts(k_lo, k_top, rows):
                result.append(((g * big_k + r0, g * big_k + r1),))
    return tuple(result)


@lru_cache(maxsize=1 << 14)
def chunk_k_union(tiling: TilingAttr, chunk: Chunk) -> tuple[Span, ...]:
    """The weight rows some array of a chunk holds (wherever it is placed)."""
    return merge_spans(s for spans in array_k_spans(tiling, chunk) for s in spans)


def chunk_column_row_tiles(tiling: TilingAttr, chunk: Chunk) -> list[int]:
    """Row tiles (arrays) of each column tile of a chunk, in placement
    order; an array of packed groups counts as one column tile."""
    if chunk.columns:
        return chunk.column_row_tiles
    spans = array_k_spans(tiling, chunk)
    row_tiles = max(1, chunk.row_tiles if tiling.field("groups_per_array") == 1 else 1)
    return [
        min(row_tiles, len(spans) - start) for start in range(0, len(spans), row_tiles)
    ]


@lru_cache(maxsize=1 << 14)
def core_k_spans(
    hw: HardwareTarget, tiling: TilingAttr, chunk: Chunk, first_array: int
) -> Mapping[int, tuple[Span, ...]]:
    """Per core, the weight rows its arrays of this placed chunk hold."""
    per_core: dict[int, list[Span]] = {}
    for offset, spans in enumerate(array_k_spans(tiling, chunk)):
        per_core.setdefault(core_of(hw, first_array + offset), []).extend(spans)
    return {core: merge_spans(spans) for core, spans in per_core.items()}


ColumnTile = tuple[int, int, int]
"""``(outputs, row tiles, cores holding them)`` of one column tile of a placed
chunk."""


@lru_cache(maxsize=1 << 14)
def column_tiles(
    hw: HardwareTarget, tiling: TilingAttr, chunk: Chunk, first_array: int
) -> tuple[ColumnTile, ...]:
    """Per column tile of a chunk placed from array ``first_array``: its
    outputs, its row tiles, and how many cores hold them (arrays are taken
    column tile by column tile, row tile by row tile)."""
    packed = tiling.field("groups_per_array")
    # an array of packed groups holds each group's n outputs
    outputs = tiling.outputs_per_array if packed == 1 else packed * tiling.field("n")
    width = chunk.n1 - chunk.n0
    columns: list[ColumnTile] = []
    start = 0
    for count in chunk_column_row_tiles(tiling, chunk):
        tiles = range(start, start + count)
        start += count
        holders = {core_of(hw, first_array + offset) for offset in tiles}
        used = min(outputs, width - outputs * len(columns)) if width > 0 else 0
        columns.append((max(1, used), len(tiles), len(holders)))
    return tuple(columns)


def written_outputs(outputs: int, output_scale: Fraction | None) -> int:
    """Outputs finished from ``outputs`` sums of held columns: as many, or,
    where the arrays hold only a weight's nonzero columns
    (``cim_tile.mvm.output_scale``), every output those columns own, the
    dropped ones their bias alone."""
    if output_scale is None:
        return outputs
    return math.ceil(outputs * output_scale)


MISALIGNED_MERGE_OPS = 2
"""Vector operations a partial sum of a weight whose row tiles hold
different columns (``cim_tile.mvm.misaligned_columns``) takes to merge: the
look-up of the output its column lands on, then the add (CIMinus's extra
accumulation for misaligned partial sums; one operation for the look-up is
our assumption, the paper gives no figure)."""


def merge_ops(sums: int, misaligned: bool) -> int:
    """Vector operations that add ``sums`` partial sums into others: one
    each, :data:`MISALIGNED_MERGE_OPS` when they land misaligned."""
    return sums * (MISALIGNED_MERGE_OPS if misaligned else 1)


def finishing_ops(outputs: int, adds: int, output_scale: Fraction | None) -> int:
    """Vector element operations that finish ``outputs`` sums of held
    columns with ``adds`` additions each (a bias, a fused residual): on
    every output written (:func:`written_outputs`), at least one where the
    outputs of dropped columns must be written too."""
    if output_scale is not None:
        adds = max(1, adds)
    return written_outputs(outputs, output_scale) * adds


def sum_bytes(
    hw: HardwareTarget,
    columns: Sequence[ColumnTile],
    vectors: int,
    unfinished: bool,
    output_scale: Fraction | None = None,
) -> int:
    """Bytes of sums leaving a placed chunk's cores for ``vectors`` input
    vectors: a core adds the partial sums of the row tiles it holds before
    they leave (ISAAC's and PUMA's in-tile shift-and-add), so one sum per
    output and holding core leaves; at the accumulator width while other
    cores' or later chunks' sums still join (``unfinished``), else as
    finished activations (:func:`written_outputs`)."""
    total = 0
    for outputs, _, holders in columns:
        if unfinished or holders > 1:
            total += vectors * outputs * holders * hw.accumulator_bytes
        else:
            finished = written_outputs(vectors * outputs, output_scale)
            total += finished * hw.activation_bytes
    return max(1, total)


def chunks_out_bytes(
    hw: HardwareTarget,
    tiling: TilingAttr,
    chunks: Sequence[Chunk],
    vectors: int,
    output_scale: Fraction | None = None,
) -> list[int]:
    """:func:`sum_bytes` of each chunk of one weight streamed from the first
    free array (``0`` for a cost model's estimate): a chunk's sums are
    unfinished when another chunk covers the same columns."""
    covering: dict[int, int] = {}
    for chunk in chunks:
        covering[chunk.n0] = covering.get(chunk.n0, 0) + 1
    return [
        sum_bytes(
            hw,
            column_tiles(hw, tiling, chunk, 0),
            vectors,
            covering[chunk.n0] > 1,
            output_scale,
        )
        for chunk in chunks
    ]


@dataclass(frozen=True)
class Window:
    """The convolution window an MVM's input is expanded by (``im2col``):
    input ``[N, C, H, W]``, kernel, strides, pads ``[top, left, bottom,
    right]``, dilations; output rows are ``(n, oh, ow)``."""

    input_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]

    @property
    def output_hw(self) -> tuple[int, int]:
        _, _, height, width = self.input_shape
        (kh, kw), (sh, sw) = self.kernel, self.strides
        (dh, dw), (top, left, bottom, right) = self.dilations, self.pads
        oh = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
        ow = (width + left + right - dw * (kw - 1) - 1) // sw + 1
        return oh, ow

    def channels(self, k_spans: Iterable[Span]) -> tuple[Span, ...]:
        """The input channels the patch columns ``k_spans`` read (a patch
        column is ``c * kh * kw + i * kw + j``)."""
        area = self.kernel[0] * self.kernel[1]
        return merge_spans((k0 // area, -(-k1 // area)) for k0, k1 in k_spans)

    def axis(self, dim: int) -> tuple[int, int, int, int]:
        """``(stride, leading pad, kernel, dilation)`` of the window along
        rows (``dim`` 0) or columns (1)."""
        pad = self.pads[dim]  # pads are [top, left, bottom, right]
        return (self.strides[dim], pad, self.kernel[dim], self.dilations[dim])

    def input_rows(self, oh0: int, oh1: int) -> int:
        """Input rows (inside the feature map) that output rows ``[oh0, oh1)``
        read: every row some window covers (a stride longer than the window
        skips rows, as a 1x1 convolution of stride 2 does)."""
        return _covered(oh0, oh1, *self.axis(0), self.input_shape[2])

    @cached_property
    def input_columns(self) -> int:
        """Input columns (inside the feature map) that a whole output row
        reads."""
        return self.input_columns_of(0, self.output_hw[1])

    def input_columns_of(self, ow0: int, ow1: int) -> int:
        """Input columns (inside the feature map) that output columns
        ``[ow0, ow1)`` read."""
        return _covered(ow0, ow1, *self.axis(1), self.input_shape[3])

    def _window_rows(self, oh: int) -> set[int]:
        """Input rows (inside the feature map) output row ``oh`` reads."""
        stride, pad, kernel, dilation = self.axis(0)
        rows = (oh * stride - pad + i * dilation for i in range(kernel))
        return {r for r in rows if 0 <= r < self.input_shape[2]}

    def _reads_row(self, r: int, oh0: int, oh1: int) -> bool:
        """Whether some output row in ``[oh0, oh1)`` reads input row ``r``."""
        stride, pad, kernel, dilation = self.axis(0)
        for i in range(kernel):
            offset = r + pad - i * dilation
            if offset % stride == 0 and oh0 <= offset // stride < oh1:
                return True
        return False

    def sample_elements(self, lo: int, hi: int) -> int:
        """Feature-map elements (of one channel) output positions ``[lo,
        hi)`` of one sample read: the columns their windows cover in every
        row they read (a whole output row reads ``input_columns``)."""
        width = self.output_hw[1]
        oh0, oh1 = lo // width, (hi - 1) // width
        first = lo % width
        if oh0 == oh1:
            columns = self.input_columns_of(first, first + hi - lo)
            return self.input_rows(oh0, oh0 + 1) * columns
        full = self.input_columns
        head = self.input_columns_of(first, width)
        tail = self.input_columns_of(0, (hi - 1) % width + 1)
        elements = self.input_rows(oh0 + 1, oh1) * full
        head_rows, tail_rows = self._window_rows(oh0), self._window_rows(oh1)
        for r in head_rows | tail_rows:
            if not self._reads_row(r, oh0 + 1, oh1):
                used = head * (r in head_rows) + tail * (r in tail_rows)
                elements += min(full, used)
        return elements

    def band_elements(self, vectors: Span, k_spans: Iterable[Span]) -> int:
        """Feature-map elements the output positions ``vectors`` read through
        the patch columns ``k_spans``: in every row their windows cover (halo
        included, padding not), the columns they cover (all a whole output
        row reads, for the rows between a first and a last partial output
        row), of the channels they need."""
        return _band_elements(self, vectors, tuple(k_spans))

    def line_elements(self, k_spans: Iterable[Span]) -> int:
        """Feature-map elements a core keeps to expand windows as it streams
        rows in (a line buffer): one window's rows of its channels."""
        rows = (self.kernel[0] - 1) * self.dilations[0] + 1
        return rows * self.input_shape[3] * span_length(self.channels(k_spans))


@lru_cache(maxsize=1 << 16)
def _band_elements(window: Window, vectors: Span, k_spans: tuple[Span, ...]) -> int:
    """:meth:`Window.band_elements`, remembered: the lowering asks it for the
    same bands of every copy and every core again."""
    oh_count, ow_count = window.output_hw
    per_sample = oh_count * ow_count
    channels = span_length(window.channels(k_spans))
    v0, v1 = vectors
    elements = 0
    for sample in range(v0 // per_sample, -(-v1 // per_sample)):
        lo = max(v0, sample * per_sample) - sample * per_sample
        hi = min(v1, (sample + 1) * per_sample) - sample * per_sample
        elements += window.sample_elements(lo, hi)
    return elements * channels


def window_of(op: cim_tile.Im2ColOp) -> Window:
    """The window an ``im2col`` expands its feature map by."""
    shape = tensor_shape(op.input)
    kernel, strides = ints(op.kernel), ints(op.strides)
    pads, dilations = ints(op.pads), ints(op.dilations)
    return Window(
        (shape[0], shape[1], shape[2], shape[3]),
        (kernel[0], kernel[1]),
        (strides[0], strides[1]),
        (pads[0], pads[1], pads[2], pads[3]),
        (dilations[0], dilations[1]),
    )


def mvm_window(mvm: cim_tile.MVMOp) -> Window | None:
    """The window an MVM's input is expanded by (its input an ``im2col``'s
    result), or None."""
    owner = mvm.input.owner
    return window_of(owner) if isinstance(owner, cim_tile.Im2ColOp) else None


def _covered(
    out0: int, out1: int, stride: int, pad: int, kernel: int, dilation: int, size: int
) -> int:
    """How many of an input axis' ``size`` positions the windows of outputs
    ``[out0, out1)`` cover."""
    if out1 <= out0:
        return 0
    extent = (kernel - 1) * dilation + 1
    if dilation == 1 and stride <= extent:  # windows touch: one run
        first = out0 * stride - pad
        last = (out1 - 1) * stride - pad + extent - 1
        return max(0, min(size, last + 1) - max(0, first))
    return len(
        {
            p
            for o in range(out0, out1)
            for i in range(kernel)
            if 0 <= (p := o * stride - pad + i * dilation) < size
        }
    )


def input_elements(
    window: Window | None, vectors: Span, k_spans: Iterable[Span]
) -> int:
    """Input elements that cross the interconnect into one core for MVM
    vectors ``vectors`` through weight rows ``k_spans``: feature-map rows
    for a window, else one row of ``len(k_spans)`` per vector."""
    spans = tuple(k_spans)
    if window is not None:
        return window.band_elements(vectors, spans)
    return (vectors[1] - vectors[0]) * span_length(spans)


def held_input_scale(mvm: cim_tile.MVMOp) -> Fraction | None:
    """Inputs that reach the cores of ``mvm``'s arrays per weight row they
    hold (None: one): the rows whose inputs some array reads over the rows
    held (``cim_tile.mvm.gathered_input_rows``: the union over the column
    tiles of the rows they gather, or of their row groups' rows in an
    IntraBlock mapping), though one tile's arrays may drive fewer
    (:func:`driven_input_scale`)."""
    held = mvm.tiling.field("k")
    rows = mvm.gathered_input_rows
    return None if rows == held else Fraction(rows, held)


def driven_input_scale(mvm: cim_tile.MVMOp) -> Fraction | None:
    """Inputs an array of ``mvm`` drives per weight row it holds: its
    column tile's row groups' rows (``driven_rows``, the widest tile's) in
    an IntraBlock mapping (:func:`~cimflow.cost_model.driven_scale`; None:
    one)."""
    return driven_scale(mvm.row_group, mvm.driven, mvm.tiling.field("k"))


def mvm_input_bytes(
    hw: HardwareTarget,
    tiling: TilingAttr,
    chunks: Sequence[Chunk],
    window: Window | None,
    vectors: int,
    input_scale: Fraction | None = None,
) -> int:
    """Input bytes an MVM of ``vectors`` vectors moves over the interconnect
    when each of its ``chunks`` (one copy placed from array 0) streams every
    vector through once: per chunk, the input elements of the weight rows
    its arrays hold (:func:`input_elements`: feature-map rows for a window),
    once for all its cores on a bus or a mesh that multicasts, once per core
    on another mesh; times ``input_scale`` (:func:`held_input_scale`; None:
    one)."""
    total = 0
    for chunk in chunks:
        if sends_once(hw):
            total += input_elements(window, (0, vectors), chunk_k_union(tiling, chunk))
        else:
            total += sum(
                input_elements(window, (0, vectors), spans)
                for spans in core_k_spans(hw, tiling, chunk, 0).values()
            )
    if input_scale is not None:
        total = math.ceil(total * input_scale)
    return total * hw.activation_bytes


def new_input_elements(
    window: Window | None,
    vectors: Span,
    k_spans: Iterable[Span],
    previous: Span | None,
) -> int:
    """Input elements that must cross into a core for vectors ``vectors``
    when it just computed ``previous`` (the span before, through the same
    weight rows): a window's feature-map rows the previous span already
    brought stay in the core's line buffer, so only the rows below them
    move."""
    spans = tuple(k_spans)
    if window is None or previous is None or previous[1] != vectors[0]:
        return input_elements(window, vectors, spans)
    both = window.band_elements((previous[0], vectors[1]), spans)
    return both - window.band_elements(previous, spans)


def expanded_elements(vectors: Span, k_spans: Iterable[Span]) -> int:
    """Input elements one core's arrays read, window expanded (each vector's
    rows ``k_spans``): what its local buffer supplies."""
    return (vectors[1] - vectors[0]) * span_length(k_spans)


def block_elements(
    shape: Sequence[int],
    block: Sequence[int] | tuple[int, int, int] | None,
    vectors: Sequence[int] | None = None,
) -> int:
    """Elements of a tensor of ``shape`` that a step's ``block`` (``(axis,
    start, stop)``; None: the whole tensor) covers; with ``vectors``
    (``(v0, v1)``, of an accumulation over output columns: ``block`` on
    axis 1) only those vectors' of the block's columns."""
    if block is None:
        return math.prod(shape)
    axis, start, stop = block
    if vectors is not None:
        return (stop - start) * (vectors[1] - vectors[0])
    return math.prod(shape) // max(1, shape[axis]) * (stop - start)


def written_block_elements(
    shape: Sequence[int],
    block: Sequence[int] | tuple[int, int, int] | None,
    output_scale: Fraction | None,
    vectors: Sequence[int] | None = None,
) -> int:
    """Elements of an MVM's ``[V, N]`` output that an accumulation over
    ``block`` (and ``vectors``: :func:`block_elements`) writes: a block of
    held columns (axis 1, where the arrays hold only some columns:
    ``output_scale``) writes every output those columns own
    (:func:`written_outputs`)."""
    elements = block_elements(shape, block, vectors)
    if block is not None and block[0] == 1:
        return written_outputs(elements, output_scale)
    return elements


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // max(1, denominator))


def split_span(span: Span, pieces: int) -> list[Span]:
    """``span`` cut into ``pieces`` near-equal consecutive spans."""
    start, stop = span
    count = max(1, min(pieces, stop - start))
    size = (stop - start) / count
    bounds = [start + round(i * size) for i in range(count)] + [stop]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def mvm_target(hw: HardwareTarget, mvm: cim_tile.MVMOp) -> HardwareTarget:
    """The target as ``mvm`` runs on it: with the rows per ADC pass and the
    zero skipping the compiler chose for it
    (:func:`~cimflow.cost_model.with_mvm_choices`), so that every cost of
    the MVM, the lowering's and the allocation models', counts its passes
    and skipped planes."""
    return with_mvm_choices(
        hw,
        mvm.chosen_rows_per_pass,
        mvm.zero_shares,
        mvm.row_group,
        driven_input_scale(mvm),
    )


def splits_bands(hw: HardwareTarget, rows_used: int, cols_used: int) -> bool:
    """Whether a pipelined segment splits each band of an MVM whose arrays
    use ``rows_used`` x ``cols_used`` cells between several copies: when an
    array takes longer to compute a vector than the vector's input takes to
    cross one interconnect link (the MVM is compute-bound, so a band done
    early is worth the input columns each copy's part reads again). Else
    each band runs whole on one copy, in turn, and moves its rows once."""
    compute = mvm_cycles(hw, 2, rows_used, cols_used) - mvm_cycles(
        hw, 1, rows_used, cols_used
    )
    transfer = (
        rows_used * hw.activation_bytes / hw.interconnect.bandwidth_bytes_per_cycle
    )
    return compute > transfer


def band_groups(copies: int, per_band: int, split: bool) -> tuple[int, int]:
    """``(size, count)``: how ``copies`` copies of a weight run the bands of
    ``per_band`` vectors of a pipelined segment. With ``split``
    (:func:`splits_bands`) each band is split between the copies of one
    group, as many as it has vectors, so that it is done as early as they
    allow and the next layer starts on it; else groups of one. The groups
    take the bands in turn (band ``b`` on group ``b mod count``); copies
    beyond ``size * count`` stay idle. A whole MVM is one band."""
    size = max(1, min(copies, per_band)) if split else 1
    return size, max(1, copies // size)


def mvm_band_groups(
    hw: HardwareTarget,
    copies: int,
    vectors: int,
    steps: int,
    rows_used: int,
    cols_used: int,
) -> tuple[int, int]:
    """:func:`band_groups` of an MVM of ``vectors`` vectors run in ``steps``
    bands (whole with ``steps == 1``, where the copies split its vectors)
    on ``copies`` copies whose arrays use ``rows_used`` x ``cols_used``
    cells."""
    steps = max(1, steps)
    split = steps == 1 or splits_bands(hw, rows_used, cols_used)
    return band_groups(copies, ceil_div(vectors, steps), split)


def banded_copies(
    hw: HardwareTarget, vectors: int, steps: int, rows_used: int, cols_used: int
) -> int:
    """Most copies an MVM of ``vectors`` vectors run in ``steps`` bands can
    use (:func:`mvm_band_groups`): every band at once, on one copy each, or
    split one vector per copy."""
    steps = max(1, steps)
    if steps == 1:
        return max(1, vectors)
    split = splits_bands(hw, rows_used, cols_used)
    return steps * (ceil_div(vectors, steps) if split else 1)


def banded_mvm_cycles(
    hw: HardwareTarget,
    vectors: int,
    steps: int,
    copies: int,
    rows_used: int,
    cols_used: int,
    local_bytes: int = 0,
) -> int:
    """Array cycles of an MVM of ``vectors`` vectors run in ``steps`` bands
    (a pipelined segment's, or whole with ``steps == 1``) on ``copies``
    copies grouped as :func:`mvm_band_groups` says: ``ceil(steps / count)``
    rounds of one band split between a group's ``size`` copies (the
    lowering's ``MvmLowering.band_copies``), each round as long as its
    arrays compute or, when longer, as the busiest core's local buffer
    takes to supply ``local_bytes`` per vector (the window-expanded input,
    read while the arrays compute: ``mvm_op_parts``)."""
    steps = max(1, steps)
    size, count = mvm_band_groups(hw, copies, vectors, steps, rows_used, cols_used)
    share = ceil_div(ceil_div(vectors, steps), size)
    round_cycles = max(
        mvm_cycles(hw, share, rows_used, cols_used),
        local_read_cycles(hw, share * local_bytes),
    )
    return ceil_div(steps, count) * round_cycles


def split_to_fit(
    span: Span, bytes_of: Sequence[int], capacity: int, most: int
) -> int | None:
    """How many near-equal pieces ``span`` must be cut into so that every
    piece's bytes (``bytes_of`` gives the bytes of the whole span per core;
    pieces take their share, rounded up) fit ``capacity``; None when more
    than ``most`` pieces would be needed."""
    largest = max(bytes_of, default=0)
    if largest <= capacity:
        return 1
    pieces = math.ceil(largest / max(1, capacity))
    while pieces <= most and pieces <= span[1] - span[0]:
        share = math.ceil(largest / pieces)
        if share <= capacity:
            return pieces
        pieces += 1
    return None


@lru_cache(maxsize=1 << 12)
def vector_core_count(
    hw: HardwareTarget,
    element_ops: int,
    in_bytes: int,
    out_bytes: int,
    in_from: StreamLevel,
    out_to: StreamLevel,
    in_arrays: Ranges = (),
    out_arrays: Ranges = (),
) -> int:
    """How many cores' vector units a vector op of the graph runs on: the
    fewest consecutive cores that compute and stream it as fast as all of
    them (:func:`~cimflow.cost_model.vector_op_parts`, hop latency aside),
    so that it leaves the other cores' units to the accumulations of the
    layers running beside it. Held whole, all the chip's units wait for
    the one instant none is busy, which in a pipelined segment may not
    come until a layer ends."""
    total = hw.total_cores
    compute, stream = vector_op_parts(
        hw,
        element_ops,
        all_cores(hw),
        in_bytes,
        out_bytes,
        in_from=in_from,
        in_arrays=in_arrays,
        out_to=out_to,
        out_arrays=out_arrays,
    )
    finish = concurrent_cost(compute, stream).cycles
    units = hw.vector.units_per_core

    def fast_enough(count: int) -> bool:
        computed = vector_cost(hw, element_ops, units * count)
        return concurrent_cost(computed, stream).cycles <= finish

    needed = 1
    if stream_bytes(in_from, in_bytes, out_to, out_bytes).interconnect:
        full = interconnect_bandwidth(hw, all_cores(hw))
        while interconnect_bandwidth(hw, ((0, needed),)) < full:
            needed += 1
    low, high = needed, total
    while low < high:
        middle = (low + high) // 2
        if fast_enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def vector_work(payload: Operation) -> tuple[str, int]:
    """Kind and lane operations of a vector-unit operator."""
    out_elements = sum(num_elements(tensor_shape(r)) for r in payload.results)
    work = 1
    if isinstance(payload, cim_graph.UnaryOp | cim_graph.BinaryOp):
        kind = payload.kind.data.value
    elif isinstance(payload, cim_graph.MatMulOp):
        kind, work = "matmul", tensor_shape(payload.lhs)[-1]
    elif isinstance(payload, cim_graph.PoolOp):
        kind = "pool"
        work = math.prod(cim_graph.ints(payload.kernel))
    elif isinstance(payload, cim_graph.ReduceOp | cim_graph.GlobalPoolOp):
        kind = payload.name.split(".")[1]
        work = num_elements(tensor_shape(payload.input)) // max(1, out_elements)
    else:
        kind = payload.name.split(".")[1]
    return kind, vector_element_ops(kind, out_elements, work)


@dataclass(frozen=True)
class ArrayMatmul:
    """An activation-by-activation matmul ``[*batch, S, D] @ [*batch, D, T]``
    run as MVMs on arrays (a target with ``array.dynamic_matmul``): the
    right operand is written into arrays as ``prod(batch)`` blocks of a
    ``D x T`` matrix (layout ``kn``, block-diagonal like a grouped weight);
    the left operand streams through them as ``S`` rows of ``prod(batch) x
    D`` (batch dimensions moved behind the rows), which gives ``S`` rows of
    ``prod(batch) x T`` outputs, moved back to ``[*batch, S, T]``."""

    batch: tuple[int, ...]
    rows: int
    reduction: int
    columns: int

    @property
    def groups(self) -> int:
        return math.prod(self.batch)

    def tiling(self, hw: HardwareTarget) -> TilingAttr:
        return target_tiling(hw, self.reduction, self.columns, self.groups)

    @property
    def rows_first(self) -> tuple[int, ...]:
        """The permutation that moves the row dimension before the batch."""
        rank = len(self.batch) + 2
        return (rank - 2, *range(rank - 2), rank - 1)

    @property
    def rows_back(self) -> tuple[int, ...]:
        """The permutation that moves the row dimension back behind the batch."""
        rank = len(self.batch) + 2
        return (*range(1, rank - 1), 0, rank - 1)


def array_matmul(payload: Operation) -> ArrayMatmul | None:
    """The shape of a matmul the arrays can run (same batch dimensions on
    both sides, no broadcast), or None."""
    if not isinstance(payload, cim_graph.MatMulOp):
        return None
    lhs, rhs = tensor_shape(payload.lhs), tensor_shape(payload.rhs)
    if len(lhs) < 2 or len(lhs) != len(rhs) or lhs[:-2] != rhs[:-2]:
        return None
    return ArrayMatmul(tuple(lhs[:-2]), lhs[-2], lhs[-1], rhs[-1])


def gathered_elements(payload: Operation) -> int | None:
    """Elements of its table a vector-unit operator reads: a gather only
    the rows it picks (its output's elements); None for all of it."""
    if isinstance(payload, cim_graph.GatherOp):
        return num_elements(tensor_shape(payload.output))
    return None


EPILOGUE_KINDS = frozenset(EPILOGUE_ACTIVATIONS) - {"clip"}
"""Activations a core's vector units apply to an MVM's outputs as the last
accumulation finishes them (ISAAC's sigmoid unit and PUMA's vector unit sit
on the output path), instead of in a pass of their own; ``clip`` (ReLU6)
too."""


def epilogue_activation(op: Operation) -> tuple[str, dict[str, Attribute]] | None:
    """The kind and parameters of the activation ``op`` applies, if it is
    one an epilogue can apply: a unary kind of :data:`EPILOGUE_KINDS` (no
    parameters) or a ``clip`` (``min``, ``max``)."""
    if not isinstance(op, cim_tile.VectorOp) or len(op.inputs) != 1:
        return None
    payload = op.payload
    if isinstance(payload, cim_graph.ClipOp):
        return "clip", {"min": payload.min, "max": payload.max}
    if isinstance(payload, cim_graph.UnaryOp):
        kind = payload.kind.data.value
        if kind in EPILOGUE_KINDS:
            return kind, {}
    return None


@dataclass(frozen=True)
class Residual:
    """A residual ``add`` an MVM's last accumulations do (:func:`residual_of`)."""

    add: cim_tile.VectorOp
    """The add the accumulations replace."""
    skip: SSAValue
    """Its other operand, added to the outputs as they are finished."""
    layout: str
    """One of :data:`~cimflow.cost_model.RESIDUAL_LAYOUTS`."""


def residual_of(mvm: cim_tile.MVMOp) -> Residual | None:
    """The residual add that the vector units finishing ``mvm``'s outputs do
    as the outputs leave, instead of a pass of its own (ISAAC's and PUMA's
    vector units sit on the output path; a residual network's skip joins
    the branch there): the outputs, directly or through one ``col2im`` or
    reshape view, are used only by an elementwise ``add`` whose other
    operand, of the same shape, is an activation made before ``mvm`` (so
    its values are there when the accumulations run). None otherwise."""
    value: SSAValue = mvm.output
    layout = "rows"
    user = _only_user(value)
    if isinstance(user, cim_tile.Col2ImOp):
        value, layout = user.output, "nchw"
        user = _only_user(value)
    elif isinstance(user, cim_tile.VectorOp) and isinstance(
        user.payload, cim_graph.ReshapeOp
    ):
        value = user.outputs[0]
        user = _only_user(value)
    if not (
        isinstance(user, cim_tile.VectorOp)
        and len(user.inputs) == 2
        and len(user.outputs) == 1
        and isinstance(user.payload, cim_graph.BinaryOp)
        and user.payload.kind.data.value == "add"
    ):
        return None
    lhs, rhs = user.inputs
    if lhs is rhs:
        return None
    skip = rhs if lhs is value else lhs
    if skip.type != value.type or user.outputs[0].type != value.type:
        return None
    owner = skip.owner
    if isinstance(owner, Operation) and (
        isinstance(owner, cim_graph.WeightOp | cim_graph.ConstantOp)
        or owner.parent is not mvm.parent
        or not owner.is_before_in_block(mvm)
    ):
        return None
    return Residual(user, skip, layout)


def _only_user(value: SSAValue) -> Operation | None:
    if not value.has_one_use():
        return None
    return next(iter(value.uses)).operation


ELEMENTWISE_PRODUCERS = frozenset(EPILOGUE_HOSTS) - {"accumulate"}
"""Vector operators whose outputs an activation can follow in the same
pass over the data."""


def epilogue_source(op: Operation) -> cim_tile.MVMOp | cim_tile.VectorOp | None:
    """The operator whose outputs ``op`` is the epilogue of: ``op`` applies
    an activation (:func:`epilogue_activation`) to them and is their only use,
    and they are either an MVM's outputs (through a ``col2im`` view) that an
    accumulation finishes (the MVM adds a bias or several row tiles), or an
    element-wise vector operator's (:data:`ELEMENTWISE_PRODUCERS`, e.g. a
    residual add); else None."""
    if epilogue_activation(op) is None:
        return None
    assert isinstance(op, cim_tile.VectorOp)
    value = op.inputs[0]
    while value.has_one_use():
        owner = value.owner
        if isinstance(owner, cim_tile.Col2ImOp):
            value = owner.input
            continue
        if isinstance(owner, cim_tile.MVMOp) and (
            owner.bias is not None or owner.tiling.field("row_tiles") > 1
        ):
            return owner
        if (
            isinstance(owner, cim_tile.VectorOp)
            and value is op.inputs[0]
            and len(owner.outputs) == 1
            and isinstance(owner.payload, cim_graph.BinaryOp)
            and owner.payload.kind.data.value in ELEMENTWISE_PRODUCERS
        ):
            return owner
        return None
    return None


def stages_in_place(hw: HardwareTarget) -> bool:
    """Whether a weight written into memory-mode arrays in the layout
    compute mode reads can compute there after a switch in place: memory
    mode must expose every bit of every cell, and every array must switch
    (a segment then places its arrays from either end)."""
    array = hw.array
    cells = array.rows * array.cols * array.cell_bits
    every_array = hw.dual_mode.switchable_arrays >= hw.total_arrays
    return every_array and hw.dual_mode.memory_capacity_bytes * 8 >= cells > 0


def staged_in_place(
    hw: HardwareTarget,
    buffer_arrays: int,
    weights: Sequence[tuple[str, int]],
    next_streams: bool,
) -> dict[str, int]:
    """Which of the next segment's resident weights (name, arrays per copy,
    in program order) a ``weights`` buffer of ``buffer_arrays`` arrays
    stages in place, by the offset of its first array in the buffer: one
    copy of each on whole arrays, first fit in order. None when memory mode
    does not expose every cell (:func:`stages_in_place`) or when the next
    segment streams a weight through its free arrays, which must stay in
    one run after its resident copies."""
    if next_streams or not stages_in_place(hw):
        return {}
    offsets: dict[str, int] = {}
    used = 0
    for name, arrays in weights:
        if name in offsets or arrays <= 0 or used + arrays > buffer_arrays:
            continue
        offsets[name] = used
        used += arrays
    return offsets
