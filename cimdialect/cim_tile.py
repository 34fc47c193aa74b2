"""The ``cim_tile`` dialect: operators mapped onto crossbar arrays.

Every weight-stationary operator becomes a ``cim_tile.mvm`` over a matrix of
input vectors, partitioned into array tiles (``#cim_tile.tiling``); the
allocation passes decide copies, weight chunks and segment
(``#cim_tile.alloc``). Work the arrays cannot do runs on the vector units as
``cim_tile.vector`` regions; arrays used as plain memory are declared by
``cim_tile.memory_buffer``.

```mlir
%cols = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1]
        dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>
%y = cim_tile.mvm %cols weight "conv.weight" layout oihw
     tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128,
       bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1>
     alloc <segment = 0, copies = 1, chunks = 1>
     mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import (
    Attribute,
    Block,
    BlockArgument,
    Dialect,
    ParametrizedAttribute,
    Region,
    SpacedOpaqueSyntaxAttribute,
    SSAValue,
)
from xdsl.irdl import (
    EqAttrConstraint,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    lazy_traits_def,
    operand_def,
    opt_prop_def,
    param_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsTerminator, Pure
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from cimflow.cimdialect.attr_syntax import parse_int_fields, print_int_fields
from cimflow.cimdialect.cim_graph import (
    CIMGraph,
    WeightOp,
    i64_array,
    ints,
    tensor_shape,
)
from cimflow.cimdialect.shapes import conv_output_shape
from cimflow.cost_model import ZeroShares

I64Array = DenseArrayBase.constr(i64)


class ArrayMode(StrEnum):
    COMPUTE = "compute"
    MEMORY = "memory"


@irdl_attr_definition
class ArrayModeAttr(EnumAttribute[ArrayMode]):
    """What a group of arrays does: ``#cim_tile.mode<compute>`` or ``<memory>``."""

    name = "cim_tile.mode"

    def print_parameter(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string(self.data.value)

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> ArrayMode:
        with parser.in_angle_brackets():
            return parser.parse_str_enum(ArrayMode)


class WeightLayout(StrEnum):
    KN = "kn"
    """Stored ``[K, N]`` (MatMul's second operand)."""
    NK = "nk"
    """Stored ``[N, K]`` (Gemm with transB)."""
    OIHW = "oihw"
    """Convolution ``[O, I/groups, kh, kw]``: per group K = I/groups*kh*kw."""


@irdl_attr_definition
class WeightLayoutAttr(EnumAttribute[WeightLayout], SpacedOpaqueSyntaxAttribute):
    """How the stored weight maps to the ``[K, N]`` matrix of each group."""

    name = "cim_tile.layout"


class BufferRole(StrEnum):
    ACTIVATIONS = "activations"
    CHUNKS = "chunks"
    INPUTS = "inputs"
    KV_CACHE = "kv_cache"
    WEIGHTS = "weights"


@irdl_attr_definition
class BufferRoleAttr(EnumAttribute[BufferRole], SpacedOpaqueSyntaxAttribute):
    """What memory-mode arrays hold: activations, a KV cache, the next
    segment's weights, the next chunks of a streamed weight, or the input
    of a streamed weight."""

    name = "cim_tile.role"


class Dataflow(StrEnum):
    LAYER = "layer"
    """Each operator finishes before the next starts."""
    BATCH = "batch"
    """Samples of the batch flow through the operators as a pipeline."""
    ROWS = "rows"
    """Rows (of feature maps or sequence positions) flow through the
    operators: an operator starts on the rows its inputs already have."""


@irdl_attr_definition
class DataflowAttr(EnumAttribute[Dataflow], SpacedOpaqueSyntaxAttribute):
    """How the operators of a segment overlap: ``layer``, ``batch``, ``rows``."""

    name = "cim_tile.dataflow_kind"


_TILING_KEYS = (
    "k",
    "n",
    "groups",
    "rows",
    "cols",
    "bit_slices",
    "row_tiles",
    "col_tiles",
    "groups_per_array",
)
_RAGGED_KEY = "column_row_tiles"


@irdl_attr_definition
class TilingAttr(ParametrizedAttribute):
    """How one copy of a ``[groups x K x N]`` weight is cut into array tiles.

    Rows hold the reduction dimension (``row_tiles = ceil(k / rows)``);
    columns hold outputs times bit slices, whole weights per array
    (``col_tiles = ceil(n / (cols // bit_slices))``). Small groups (depthwise
    convolutions) are packed ``groups_per_array`` to an array along the
    diagonal, which needs one tile per group.

    ```mlir
    #cim_tile.tiling<k = 576, n = 64, groups = 1, rows = 128, cols = 128,
      bit_slices = 4, row_tiles = 5, col_tiles = 2, groups_per_array = 1>
    ```

    A weight whose column tiles hold different numbers of rows
    (``cim-sparse-rows{rearrangement=slice}``: each column tile keeps only
    the rows its columns need) may give each column tile its own row tiles,
    ``column_row_tiles``, the longest ``row_tiles``: a column tile of ``m``
    row tiles holds rows ``[0, min(k, m * rows))`` on ``m`` arrays
    (CIMinus's slicing of ragged compressed columns; without it every column
    tile is padded to ``row_tiles``). One group, not packed::

        #cim_tile.tiling<k = 300, n = 64, groups = 1, rows = 128, cols = 128,
          bit_slices = 4, row_tiles = 3, col_tiles = 2, groups_per_array = 1,
          column_row_tiles = [3, 1]>
    """

    name = "cim_tile.tiling"

    k: IntegerAttr = param_def()
    n: IntegerAttr = param_def()
    groups: IntegerAttr = param_def()
    rows: IntegerAttr = param_def()
    cols: IntegerAttr = param_def()
    bit_slices: IntegerAttr = param_def()
    row_tiles: IntegerAttr = param_def()
    col_tiles: IntegerAttr = param_def()
    groups_per_array: IntegerAttr = param_def()
    column_row_tiles: DenseArrayBase = param_def(I64Array)
    """Row tiles of each column tile; empty: ``row_tiles`` each."""

    @staticmethod
    def for_matrix(
        k: int, n: int, groups: int, rows: int, cols: int, bit_slices: int
    ) -> TilingAttr:
        """The partition of a weight onto ``rows x cols`` arrays."""
        outputs_per_array = cols // bit_slices
        packed = min(groups, rows // k, outputs_per_array // n) if n else 0
        if groups > 1 and packed > 1:
            return TilingAttr.from_ints(
                k, n, groups, rows, cols, bit_slices, 1, 1, packed
            )
        return TilingAttr.from_ints(
            k,
            n,
            groups,
            rows,
            cols,
            bit_slices,
            math.ceil(k / rows),
            math.ceil(n / outputs_per_array),
            1,
        )

    @staticmethod
    def from_ints(*values: int, column_row_tiles: Sequence[int] = ()) -> TilingAttr:
        fields = [IntegerAttr(v, i64) for v in values]
        return TilingAttr.new([*fields, i64_array(column_row_tiles)])

    def sliced(self, column_row_tiles: Sequence[int]) -> TilingAttr:
        """This tiling with each column tile's own row tiles (the longest
        becomes ``row_tiles``); as it is when they are all alike."""
        fields = {key: self.field(key) for key in _TILING_KEYS}
        longest = max(column_row_tiles)
        fields["row_tiles"] = longest
        ragged = () if min(column_row_tiles) == longest else column_row_tiles
        return TilingAttr.from_ints(*fields.values(), column_row_tiles=ragged)

    @property
    def ragged(self) -> bool:
        """Whether its column tiles hold different numbers of row tiles."""
        return bool(ints(self.column_row_tiles))

    def row_tiles_of(self, column_tile: int) -> int:
        """Row tiles of column tile ``column_tile`` (of one group)."""
        ragged = ints(self.column_row_tiles)
        return ragged[column_tile] if ragged else self.field("row_tiles")

    def rows_of(self, column_tile: int) -> int:
        """Weight rows column tile ``column_tile``'s arrays hold."""
        return min(self.field("k"), self.row_tiles_of(column_tile) * self.field("rows"))

    def field(self, key: str) -> int:
        attr = getattr(self, key)
        assert isinstance(attr, IntegerAttr)
        return attr.value.data

    @property
    def outputs_per_array(self) -> int:
        return self.field("cols") // self.field("bit_slices")

    @property
    def arrays_per_copy(self) -> int:
        """Arrays one full copy of the weight occupies."""
        ragged = ints(self.column_row_tiles)
        per_group = sum(ragged) or self.field("row_tiles") * self.field("col_tiles")
        return per_group * math.ceil(
            self.field("groups") / self.field("groups_per_array")
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values, ragged = parse_int_fields(parser, _TILING_KEYS, _RAGGED_KEY)
        return [*(IntegerAttr(v, i64) for v in values), i64_array(ragged)]

    def print_parameters(self, printer: Printer) -> None:
        fields = [(key, self.field(key)) for key in _TILING_KEYS]
        print_int_fields(printer, fields, (_RAGGED_KEY, ints(self.column_row_tiles)))

    def verify(self) -> None:
        k, n, groups, rows, cols, slices, row_tiles, col_tiles, packed = (
            self.field(key) for key in _TILING_KEYS
        )
        if min(k, n, groups, rows, cols, slices, row_tiles, col_tiles, packed) < 1:
            raise VerifyException("#cim_tile.tiling fields must be positive")
        if slices > cols:
            raise VerifyException(
                f"#cim_tile.tiling: {slices} bit slices do not fit {cols} columns"
            )
        if packed > 1:
            if packed > groups or packed * k > rows or packed * n > cols // slices:
                raise VerifyException(
                    f"#cim_tile.tiling: {packed} groups of {k}x{n} do not fit one "
                    f"{rows}x{cols} array with {slices} bit slices"
                )
            if row_tiles != 1 or col_tiles != 1:
                raise VerifyException(
                    "#cim_tile.tiling: packed groups need row_tiles = col_tiles = 1"
                )
        elif row_tiles != math.ceil(k / rows) or col_tiles != math.ceil(
            n / (cols // slices)
        ):
            raise VerifyException(
                f"#cim_tile.tiling: k = {k}, n = {n} on {rows}x{cols} arrays with "
                f"{slices} bit slices needs {math.ceil(k / rows)} row tiles and "
                f"{math.ceil(n / (cols // slices))} column tiles"
            )
        self._verify_ragged()

    def _verify_ragged(self) -> None:
        ragged = ints(self.column_row_tiles)
        if not ragged:
            return
        row_tiles, col_tiles = self.field("row_tiles"), self.field("col_tiles")
        if self.field("groups") != 1:
            raise VerifyException(
                f"#cim_tile.tiling: {_RAGGED_KEY} needs one group, "
                f"got {self.field('groups')}"
            )
        if len(ragged) != col_tiles:
            raise VerifyException(
                f"#cim_tile.tiling: {_RAGGED_KEY} has {len(ragged)} entries "
                f"for {col_tiles} column tiles"
            )
        if min(ragged) < 1 or max(ragged) != row_tiles or min(ragged) == row_tiles:
            raise VerifyException(
                f"#cim_tile.tiling: {_RAGGED_KEY} must lie in [1, {row_tiles}], "
                f"reach row_tiles = {row_tiles} and differ, got {list(ragged)}"
            )


_ALLOC_KEYS = ("segment", "copies", "chunks")


@irdl_attr_definition
class AllocAttr(ParametrizedAttribute):
    """Allocation decisions for one ``cim_tile.mvm``.

    ``copies`` weight copies split the input vectors between them (weight
    duplication); ``chunks > 1`` streams the weight through the arrays in that
    many pieces when one copy does not fit: the count it takes on all the
    segment's free arrays, or the count on half of them, which makes the
    chunks alternate between the two halves (one programs while the other
    computes; ``cimflow.lowering.state.alternates_for``); ``segment`` is the
    run of operators whose weights are resident together.

    ```mlir
    #cim_tile.alloc<segment = 2, copies = 4, chunks = 1>
    ```
    """

    name = "cim_tile.alloc"

    segment: IntegerAttr = param_def()
    copies: IntegerAttr = param_def()
    chunks: IntegerAttr = param_def()

    @staticmethod
    def from_ints(segment: int, copies: int, chunks: int) -> AllocAttr:
        return AllocAttr(
            IntegerAttr(segment, i64),
            IntegerAttr(copies, i64),
            IntegerAttr(chunks, i64),
        )

    def field(self, key: str) -> int:
        attr = getattr(self, key)
        assert isinstance(attr, IntegerAttr)
        return attr.value.data

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values, _ = parse_int_fields(parser, _ALLOC_KEYS)
        return [IntegerAttr(v, i64) for v in values]

    def print_parameters(self, printer: Printer) -> None:
        print_int_fields(printer, [(key, self.field(key)) for key in _ALLOC_KEYS])

    def verify(self) -> None:
        if self.field("segment") < 0:
            raise VerifyException("#cim_tile.alloc segment must not be negative")
        if self.field("copies") < 1 or self.field("chunks") < 1:
            raise VerifyException("#cim_tile.alloc copies and chunks must be positive")
        if self.field("copies") > 1 and self.field("chunks") > 1:
            raise VerifyException(
                "#cim_tile.alloc: a weight streamed in chunks cannot also be duplicated"
            )


def _matrix_shape(value: SSAValue, op_name: str) -> tuple[int, int]:
    shape = tensor_shape(value)
    if len(shape) != 2:
        raise VerifyException(f"'{op_name}' works on 2-D [vectors x features] tensors")
    return shape[0], shape[1]


def _check_row_count(
    key: str,
    count: IntegerAttr | None,
    allowed: bool,
    needs: str,
    bounds: tuple[int, int],
) -> None:
    """A row count of a compacted ``cim_tile.mvm`` (absent, or allowed and
    between the rows held and the weight's rows)."""
    if count is None:
        return
    if not allowed:
        raise VerifyException(f"'cim_tile.mvm' {key} needs {needs}")
    held, k = bounds
    if not held <= count.value.data <= k:
        raise VerifyException(
            f"'cim_tile.mvm' {key} ({count.value.data}) must lie between the "
            f"{held} rows held and the {k} of the weight"
        )


@irdl_op_definition
class MVMOp(IRDLOperation):
    """Matrix-vector products of every input row with a stationary weight.

    The input is ``[V, groups*K]``, the output ``[V, groups*N]``; group ``g``
    multiplies columns ``[g*K, (g+1)*K)`` by its own ``[K, N]`` weight. The
    weight is named, never an operand: it lives in the arrays. ``bias`` names
    a ``[groups*N]`` weight added after accumulation. ``rows_per_pass``
    (``cim-rows-per-pass``) drives at most that many of an array's rows per
    ADC pass instead of the target's ``active_rows``. ``zero_planes``
    (``cim-input-sparsity``) enables zero skipping: the share of input
    bit-planes measured to be zero on every row of a pass, which the arrays
    skip, and ``zero_groups`` the share zero on one zero detector's rows,
    which leave those rows idle.

    ```mlir
    %y = cim_tile.mvm %x weight "fc.weight" layout nk bias "fc.bias"
         tiling <k = 512, n = 10, groups = 1, rows = 320,
           cols = 320, bit_slices = 8, row_tiles = 2, col_tiles = 1,
           groups_per_array = 1>
         alloc <segment = 0, copies = 1, chunks = 1>
         rows_per_pass 64 zero_planes 1.250000e-01 zero_groups 4.375000e-01
         mode <compute> : tensor<1x512xf32> -> tensor<1x10xf32>
    ```

    ``compacted_from`` (``cim-sparse-rows``) keeps the weight's ``K`` when
    the arrays hold fewer rows (the tiling's ``k``); with ``intra_block``
    each cell picks its input among a row group of that many rows (a 2:4
    weight of 512 rows held in 256):

    ```mlir
    %y = cim_tile.mvm %x weight "fc.weight" layout nk
         tiling <k = 256, n = 10, groups = 1, rows = 320,
           cols = 320, bit_slices = 8, row_tiles = 1, col_tiles = 1,
           groups_per_array = 1>
         compacted_from 512 intra_block 4
         mode <compute> : tensor<1x512xf32> -> tensor<1x10xf32>
    ```

    ``driven_rows`` (with ``intra_block``): the weight rows whose inputs
    the widest column tile's arrays drive, when a FullBlock pattern nested
    in the IntraBlock one leaves some tiles without some row groups (none:
    all ``compacted_from``), e.g. ``compacted_from 512 intra_block 4
    driven_rows 256``.

    ``input_rows`` (with ``compacted_from``): the weight rows whose inputs
    some array reads, when they are not the rows held (the row gather) or
    all of them (an IntraBlock mapping): the union over the column tiles,
    which a core holding several tiles' arrays takes in, e.g.
    ``compacted_from 512 input_rows 384``.

    ``index_block`` (with ``compacted_from``, no ``intra_block``): every
    held row list is whole blocks of that many rows from multiples of it,
    so an index names a block, not a row
    (:func:`~cimflow.analysis.sparse_tiling.row_index_block`), e.g. the 9
    rows of each kept channel of a 3 x 3 convolution: ``compacted_from 576
    index_block 9``.

    A tiling with ``column_row_tiles`` (with ``compacted_from``;
    ``cim-sparse-rows{rearrangement=slice}``): each column tile holds only
    its own rows, on as many arrays as they fill, e.g. ``tiling <k = 140,
    ..., row_tiles = 2, col_tiles = 2, groups_per_array = 1,
    column_row_tiles = [2, 1]> compacted_from 144``.

    ``columns_from`` (``cim-sparse-rows{orientation=column}``) keeps the
    weight's ``N`` when each row tile's arrays hold only the columns that
    are nonzero in some of its rows (the tiling's ``n``): a filter pruned
    whole computes nothing, and its outputs are its bias alone. The output
    stays ``[V, groups*N]``; each held column's outputs land at its own
    column (:func:`~cimflow.analysis.sparse_tiling.held_columns`), e.g. a
    ``[576, 64]`` weight with half its filters zero: ``tiling <k = 576, n =
    32, ...> columns_from 64``; ``misaligned_columns`` when the row tiles
    hold different columns (their partial sums land on different
    outputs), e.g. ``columns_from 64 misaligned_columns``.
    """

    name = "cim_tile.mvm"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    weight = prop_def(StringAttr)
    layout = prop_def(WeightLayoutAttr)
    bias = opt_prop_def(StringAttr)
    tiling = prop_def(TilingAttr)
    alloc = opt_prop_def(AllocAttr)
    align = opt_prop_def(IntegerAttr.constr(i64))
    """Each copy starts at a multiple of this many arrays (e.g. a core)."""
    rows_per_pass = opt_prop_def(IntegerAttr.constr(i64))
    """Word lines driven per ADC pass (none: the target's ``active_rows``)."""
    compacted_from = opt_prop_def(IntegerAttr.constr(i64))
    """The weight's rows per group before the rows no array needs were
    dropped (``cim-sparse-rows``); the tiling's ``k`` is the rows held."""
    intra_block = opt_prop_def(IntegerAttr.constr(i64))
    """With ``compacted_from``: the held rows are an IntraBlock mapping
    whose cells each pick their input among a row group of this many
    weight rows (:func:`~cimflow.analysis.sparse_tiling.intra_block_rows`)
    instead of rows shared by an array's columns."""
    driven_rows = opt_prop_def(IntegerAttr.constr(i64))
    """With ``intra_block``: the weight rows whose inputs the widest column
    tile's arrays drive
    (:func:`~cimflow.analysis.sparse_tiling.intra_block_driven_rows`;
    none: every row, ``compacted_from``)."""
    input_rows = opt_prop_def(IntegerAttr.constr(i64))
    """With ``compacted_from``: the weight rows whose inputs some array reads
    (:func:`~cimflow.analysis.sparse_tiling.gathered_rows`; none: the rows
    held, or, with ``intra_block``, every row)."""
    index_block = opt_prop_def(IntegerAttr.constr(i64))
    """With ``compacted_from`` (a row gather): the rows one index of the
    held row lists names (none: one)."""
    columns_from = opt_prop_def(IntegerAttr.constr(i64))
    """The weight's columns per group before the columns zero in all of a
    row tile's rows were dropped (none: the tiling's ``n``, every column
    held)."""
    misaligned_columns = opt_prop_def(UnitAttr)
    """With ``columns_from``: its row tiles hold different columns, so their
    partial sums land on different outputs."""
    zero_planes = opt_prop_def(FloatAttr.constr(type=EqAttrConstraint(f64)))
    """Share of input bit-planes its arrays skip as zero (none: skipping off)."""
    zero_groups = opt_prop_def(FloatAttr.constr(type=EqAttrConstraint(f64)))
    """Share of input bit-planes zero on one zero detector's rows, whose
    cells and drivers stay idle (with ``zero_planes``)."""
    mode = prop_def(ArrayModeAttr)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `weight` $weight `layout` $layout (`bias` $bias^)? "
        "`tiling` $tiling (`alloc` $alloc^)? (`align` $align^)? "
        "(`rows_per_pass` $rows_per_pass^)? "
        "(`compacted_from` $compacted_from^)? (`intra_block` $intra_block^)? "
        "(`driven_rows` $driven_rows^)? (`input_rows` $input_rows^)? "
        "(`index_block` $index_block^)? (`columns_from` $columns_from^)? "
        "(`misaligned_columns` $misaligned_columns^)? "
        "(`zero_planes` $zero_planes^)? "
        "(`zero_groups` $zero_groups^)? "
        "`mode` $mode "
        "attr-dict `:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: str,
        layout: WeightLayout,
        bias: str | None,
        tiling: TilingAttr,
        output_type: TensorType,
    ):
        properties: dict[str, Attribute] = {
            "weight": StringAttr(weight),
            "layout": WeightLayoutAttr(layout),
            "tiling": tiling,
            "mode": ArrayModeAttr(ArrayMode.COMPUTE),
        }
        if bias is not None:
            properties["bias"] = StringAttr(bias)
        super().__init__(
            operands=[input], result_types=[output_type], properties=properties
        )

    @property
    def vectors(self) -> int:
        return tensor_shape(self.input)[0]

    @property
    def chosen_rows_per_pass(self) -> int:
        """The rows per ADC pass the compiler chose (0: the target's)."""
        return 0 if self.rows_per_pass is None else self.rows_per_pass.value.data

    @property
    def zero_shares(self) -> ZeroShares | None:
        """Its zero-skipping shares, as the cost model takes them (None:
        skipping off)."""
        return shares_from_attrs(self.zero_planes, self.zero_groups, self.name)

    @property
    def row_group(self) -> int:
        """The IntraBlock row group its held rows' cells pick inputs in (0:
        none)."""
        return 0 if self.intra_block is None else self.intra_block.value.data

    @property
    def reduction(self) -> int:
        """``K``: the rows per group of the weight the input multiplies
        (more than the tiling's ``k`` when the held rows are compacted)."""
        if self.compacted_from is not None:
            return self.compacted_from.value.data
        return self.tiling.field("k")

    @property
    def driven(self) -> int:
        """Weight rows per group whose inputs an array drives at most (its
        held rows, or, in an IntraBlock mapping, its row groups' rows)."""
        if self.driven_rows is not None:
            return self.driven_rows.value.data
        return self.reduction

    @property
    def outputs_per_group(self) -> int:
        """``N``: the outputs per group the MVM writes (more than the
        tiling's ``n`` when its arrays hold only the nonzero columns)."""
        if self.columns_from is not None:
            return self.columns_from.value.data
        return self.tiling.field("n")

    @property
    def output_scale(self) -> Fraction | None:
        """Outputs written per column held (None: one)."""
        held = self.tiling.field("n")
        outputs = self.outputs_per_group
        return None if outputs == held else Fraction(outputs, held)

    @property
    def rows_per_index(self) -> int:
        """Rows one index of its held row lists names (1: rows one by one)."""
        return 1 if self.index_block is None else self.index_block.value.data

    @property
    def gathered_input_rows(self) -> int:
        """Weight rows per group whose inputs reach its arrays' cores: the
        rows held, all of them in an IntraBlock mapping (its groups draw
        on every input), or ``input_rows``."""
        if self.input_rows is not None:
            return self.input_rows.value.data
        if self.intra_block is not None:
            return self.reduction
        return self.tiling.field("k")

    def verify_(self) -> None:
        if self.mode.data != ArrayMode.COMPUTE:
            raise VerifyException("'cim_tile.mvm' runs on arrays in compute mode")
        vectors, features = _matrix_shape(self.input, self.name)
        out_vectors, outputs = _matrix_shape(self.output, self.name)
        groups, k, n = (self.tiling.field(key) for key in ("groups", "k", "n"))
        if self.compacted_from is not None:
            if self.compacted_from.value.data < k:
                raise VerifyException(
                    f"'cim_tile.mvm' compacted_from "
                    f"({self.compacted_from.value.data}) is fewer rows than the "
                    f"{k} its tiling holds"
                )
            k = self.compacted_from.value.data
        if self.intra_block is not None:
            group = self.intra_block.value.data
            if self.compacted_from is None:
                raise VerifyException(
                    "'cim_tile.mvm' intra_block needs compacted_from (the "
                    "weight's rows before the mapping)"
                )
            if group < 2 or group & (group - 1):
                raise VerifyException(
                    f"'cim_tile.mvm' intra_block must be a power of two from 2, "
                    f"got {group}"
                )
        held = self.tiling.field("k")
        _check_row_count(
            "driven_rows",
            self.driven_rows,
            self.intra_block is not None,
            "intra_block (only an IntraBlock mapping drives other rows than it holds)",
            (held, k),
        )
        _check_row_count(
            "input_rows",
            self.input_rows,
            self.compacted_from is not None,
            "compacted_from (only compacted rows gather their inputs)",
            (held, k),
        )
        if self.index_block is not None:
            if self.compacted_from is None or self.intra_block is not None:
                raise VerifyException(
                    "'cim_tile.mvm' index_block needs compacted_from without "
                    "intra_block (only a row gather lists its held rows)"
                )
            if not 2 <= self.index_block.value.data < k:
                raise VerifyException(
                    f"'cim_tile.mvm' index_block ({self.index_block.value.data}) "
                    f"must lie between 2 and the {k} rows of the weight"
                )
        if self.tiling.ragged and self.compacted_from is None:
            raise VerifyException(
                "'cim_tile.mvm' a tiling with column_row_tiles needs "
                "compacted_from (only compacted column tiles hold their own rows)"
            )
        if self.columns_from is not None:
            if self.columns_from.value.data <= n:
                raise VerifyException(
                    f"'cim_tile.mvm' columns_from ({self.columns_from.value.data}) "
                    f"must exceed the {n} columns its tiling holds"
                )
            if self.compacted_from is not None:
                raise VerifyException(
                    "'cim_tile.mvm' compacts either its rows (compacted_from) or "
                    "its columns (columns_from), not both"
                )
            n = self.columns_from.value.data
        elif self.misaligned_columns is not None:
            raise VerifyException(
                "'cim_tile.mvm' misaligned_columns needs columns_from"
            )
        if features != groups * k or outputs != groups * n or vectors != out_vectors:
            raise VerifyException(
                f"'cim_tile.mvm' maps [{vectors} x {features}] to "
                f"[{out_vectors} x {outputs}] but its tiling is {groups} groups of "
                f"{k} x {n}"
            )
        if not self.weight.data:
            raise VerifyException("'cim_tile.mvm' needs a weight name")
        if self.bias is not None and not self.bias.data:
            raise VerifyException("'cim_tile.mvm' bias name must not be empty")
        if self.align is not None and self.align.value.data < 1:
            raise VerifyException("'cim_tile.mvm' align must be positive")
        if self.rows_per_pass is not None and self.rows_per_pass.value.data < 1:
            raise VerifyException("'cim_tile.mvm' rows_per_pass must be positive")
        shares_from_attrs(self.zero_planes, self.zero_groups, self.name)


def shares_from_attrs(
    zero_planes: FloatAttr | None, zero_groups: FloatAttr | None, op_name: str
) -> ZeroShares | None:
    """An MVM's zero-skipping shares from its ``zero_planes`` and
    ``zero_groups``: both or neither, each in ``[0, 1)`` (else a
    :class:`VerifyException`)."""
    if zero_planes is None and zero_groups is None:
        return None
    if zero_planes is None or zero_groups is None:
        raise VerifyException(f"'{op_name}' needs both zero_planes and zero_groups")
    try:
        return ZeroShares(zero_planes.value.data, zero_groups.value.data)
    except ValueError as error:
        raise VerifyException(f"'{op_name}' {error}") from None


@irdl_op_definition
class Im2ColOp(IRDLOperation):
    """Unroll NCHW convolution windows into rows of an MVM input.

    Row ``(n, oh, ow)`` holds, group by group, the window's ``(c, kh, kw)``
    values (zero where it reads padding), matching an OIHW weight reshaped to
    ``[O, I/groups*kh*kw]``. It runs in the input buffer's address generator.

    ```mlir
    %c = cim_tile.im2col %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1]
         dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<16x144xf32>
    ```
    """

    name = "cim_tile.im2col"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    kernel = prop_def(I64Array)
    strides = prop_def(I64Array)
    pads = prop_def(I64Array)
    dilations = prop_def(I64Array)
    groups = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$input `kernel` $kernel `strides` $strides `pads` $pads `dilations` "
        "$dilations `groups` $groups attr-dict `:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        input: SSAValue,
        kernel: Sequence[int],
        strides: Sequence[int],
        pads: Sequence[int],
        dilations: Sequence[int],
        groups: int,
        output_type: TensorType,
    ):
        super().__init__(
            operands=[input],
            result_types=[output_type],
            properties={
                "kernel": i64_array(kernel),
                "strides": i64_array(strides),
                "pads": i64_array(pads),
                "dilations": i64_array(dilations),
                "groups": IntegerAttr(groups, i64),
            },
        )

    def output_spatial(self) -> tuple[int, ...]:
        x = tensor_shape(self.input)
        shape = conv_output_shape(
            x,
            x[1],
            ints(self.kernel),
            ints(self.strides),
            ints(self.pads),
            ints(self.dilations),
        )
        return shape[2:]

    def verify_(self) -> None:
        x = tensor_shape(self.input)
        kernel = ints(self.kernel)
        if len(x) != 4 or len(kernel) != 2:
            raise VerifyException("'cim_tile.im2col' unrolls 2-D NCHW windows")
        strides, pads = ints(self.strides), ints(self.pads)
        dilations = ints(self.dilations)
        if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
            raise VerifyException(
                "'cim_tile.im2col' needs 2 strides, 2 dilations and 4 pads"
            )
        if min(kernel + strides + dilations) < 1 or min(pads) < 0:
            raise VerifyException(
                "'cim_tile.im2col' kernel, strides and dilations must be positive, "
                "pads non-negative"
            )
        groups = self.groups.value.data
        if groups < 1 or x[1] % groups:
            raise VerifyException(
                f"'cim_tile.im2col' {x[1]} channels do not split into {groups} groups"
            )
        oh, ow = self.output_spatial()
        expected = (x[0] * oh * ow, x[1] * kernel[0] * kernel[1])
        if tensor_shape(self.output) != expected:
            raise VerifyException(
                f"'cim_tile.im2col' result must be {list(expected)}, got "
                f"{list(tensor_shape(self.output))}"
            )


@irdl_op_definition
class Col2ImOp(IRDLOperation):
    """Fold MVM outputs ``[N*H*W, C]`` back into an NCHW tensor.

    ```mlir
    %y = cim_tile.col2im %m : tensor<64x32xf32> -> tensor<1x32x8x8xf32>
    ```
    """

    name = "cim_tile.col2im"

    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, output_type: TensorType):
        super().__init__(operands=[input], result_types=[output_type])

    def verify_(self) -> None:
        rows, channels = _matrix_shape(self.input, self.name)
        out = tensor_shape(self.output)
        if len(out) != 4 or out[1] != channels or out[0] * out[2] * out[3] != rows:
            raise VerifyException(
                f"'cim_tile.col2im' cannot fold [{rows} x {channels}] into {list(out)}"
            )


@irdl_op_definition
class YieldOp(IRDLOperation):
    """Terminates a ``cim_tile.vector`` body with its results.

    ```mlir
    cim_tile.yield %r : tensor<1x128x768xf32>
    ```
    """

    name = "cim_tile.yield"

    values = var_operand_def(TensorType)

    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(VectorOp)))

    assembly_format = "($values^ `:` type($values))? attr-dict"

    def __init__(self, values: Sequence[SSAValue]):
        super().__init__(operands=[values])


@irdl_op_definition
class VectorOp(IRDLOperation):
    """Work for the digital vector units, described by ``cim_graph`` ops.

    The body holds exactly one ``cim_graph`` operator (not a weight-stationary
    one) applied to the block arguments, then ``cim_tile.yield``. Operands
    include the weights the operator reads (norm scales, embedding tables).

    ```mlir
    %p = cim_tile.vector segment 0 (%s) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    ^bb0(%a: tensor<1x2x4x4xf32>):
      %r = cim_graph.softmax %a axis -1 : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
      cim_tile.yield %r : tensor<1x2x4x4xf32>
    }
    ```

    On a target whose arrays compute with written activations
    (``array.dynamic_matmul``), an activation-by-activation ``cim_graph.matmul``
    may carry ``matmul_arrays``, the allocation's decision: run it on that
    many of the segment's free arrays (its right operand written into them),
    or, with 0, on the vector units. Without it the lowering uses whatever
    arrays the segment leaves free.

    ```mlir
    %s = cim_tile.vector segment 0 matmul_arrays 8 (%q, %k) : (tensor<4x8xf32>,
        tensor<8x4xf32>) -> tensor<4x4xf32> {
    ^bb0(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>):
      %r = cim_graph.matmul %a, %b : (tensor<4x8xf32>, tensor<8x4xf32>)
          -> tensor<4x4xf32>
      cim_tile.yield %r : tensor<4x4xf32>
    }
    ```
    """

    name = "cim_tile.vector"

    inputs = var_operand_def(TensorType)
    outputs = var_result_def(TensorType)
    segment = opt_prop_def(IntegerAttr.constr(i64))
    matmul_arrays = opt_prop_def(IntegerAttr.constr(i64))
    body = region_def("single_block")

    assembly_format = (
        "(`segment` $segment^)? (`matmul_arrays` $matmul_arrays^)? ` ` `(` $inputs `)` "
        "attr-dict `:` functional-type($inputs, $outputs) $body"
    )

    def __init__(
        self,
        inputs: Sequence[SSAValue],
        output_types: Sequence[Attribute],
        body: Region,
        segment: int | None = None,
    ):
        super().__init__(
            operands=[inputs],
            result_types=[output_types],
            regions=[body],
            properties={}
            if segment is None
            else {"segment": IntegerAttr(segment, i64)},
        )

    @property
    def payload(self) -> IRDLOperation:
        """The one ``cim_graph`` operator the body applies."""
        op = self.body.block.first_op
        assert isinstance(op, IRDLOperation)
        return op

    def verify_(self) -> None:
        block = self.body.block
        ops = list(block.ops)
        if len(ops) != 2 or not isinstance(ops[-1], YieldOp):
            raise VerifyException(
                "'cim_tile.vector' body must hold one cim_graph op and cim_tile.yield"
            )
        payload = ops[0]
        if payload.dialect_name() != CIMGraph.name or isinstance(payload, WeightOp):
            raise VerifyException(
                f"'cim_tile.vector' body must apply a cim_graph operator, got "
                f"'{payload.name}'"
            )
        if payload.name in ("cim_graph.conv", "cim_graph.linear"):
            raise VerifyException(
                f"'{payload.name}' is weight-stationary: it maps to cim_tile.mvm"
            )
        if any(
            not (isinstance(v, BlockArgument) and v.block is block)
            for v in payload.operands
        ):
            raise VerifyException(
                "'cim_tile.vector' payload must only use the body's arguments"
            )
        if list(ops[-1].operands) != list(payload.results):
            raise VerifyException(
                "'cim_tile.vector' must yield exactly its payload's results"
            )
        if [a.type for a in block.args] != [v.type for v in self.inputs]:
            raise VerifyException(
                "'cim_tile.vector' block arguments must match its operands"
            )
        yielded = [v.type for v in ops[-1].operands]
        if yielded != [v.type for v in self.outputs]:
            raise VerifyException("'cim_tile.vector' yields types unlike its results")
        if self.segment is not None and self.segment.value.data < 0:
            raise VerifyException("'cim_tile.vector' segment must not be negative")
        if self.matmul_arrays is not None:
            if payload.name != "cim_graph.matmul":
                raise VerifyException(
                    f"'cim_tile.vector' matmul_arrays applies to a cim_graph.matmul, "
                    f"not '{payload.name}'"
                )
            if self.matmul_arrays.value.data < 0:
                raise VerifyException(
                    "'cim_tile.vector' matmul_arrays must not be negative"
                )

    @staticmethod
    def wrap(payload: IRDLOperation, segment: int | None = None) -> VectorOp:
        """Move ``payload`` (already detached) into a new vector op's body."""
        inputs = list(payload.operands)
        block = Block(arg_types=[v.type for v in inputs])
        for index, arg in enumerate(block.args):
            payload.operands[index] = arg
        block.add_ops([payload, YieldOp(list(payload.results))])
        return VectorOp(
            inputs, [r.type for r in payload.results], Region(block), segment
        )


@irdl_op_definition
class MemoryBufferOp(IRDLOperation):
    """Arrays switched to memory mode to hold data for a segment.

    ``activations`` buffers hold tensors that do not fit the global buffer
    (instead of spilling them to DRAM); ``weights`` buffers prefetch the next
    segment's weights while this segment computes; ``chunks`` buffers
    double-buffer the weight a segment streams (its two halves take the
    next chunks from DRAM while the current chunk programs and computes);
    ``inputs`` buffers hold the input of each weight the segment streams,
    when it lives in DRAM: loaded once, then every chunk streams it from
    the arrays instead of reading it from DRAM again; ``kv_cache`` buffers
    hold the model inputs named in ``holds`` (a decoder's past keys and
    values) for the whole run: the lowering takes at most one, with
    segment 0, keeps its inputs in arrays ``[0, arrays)`` from the start
    and places every segment after them.

    ```mlir
    cim_tile.memory_buffer kv_cache arrays 8 bytes 102400 segment 0
        holds ["past_key_values.0.key"] mode <memory>
    ```
    """

    name = "cim_tile.memory_buffer"

    role = prop_def(BufferRoleAttr)
    arrays = prop_def(IntegerAttr.constr(i64))
    size = prop_def(IntegerAttr.constr(i64), prop_name="bytes")
    segment = prop_def(IntegerAttr.constr(i64))
    holds = opt_prop_def(ArrayAttr[StringAttr])
    mode = prop_def(ArrayModeAttr)

    assembly_format = (
        "$role `arrays` $arrays `bytes` $bytes `segment` $segment "
        "(`holds` $holds^)? `mode` $mode attr-dict"
    )

    def __init__(
        self,
        role: BufferRole,
        arrays: int,
        size: int,
        segment: int,
        holds: Sequence[str] = (),
    ):
        properties: dict[str, Attribute] = {
            "role": BufferRoleAttr(role),
            "arrays": IntegerAttr(arrays, i64),
            "bytes": IntegerAttr(size, i64),
            "segment": IntegerAttr(segment, i64),
            "mode": ArrayModeAttr(ArrayMode.MEMORY),
        }
        if holds:
            properties["holds"] = ArrayAttr([StringAttr(h) for h in holds])
        super().__init__(properties=properties)

    def verify_(self) -> None:
        if self.mode.data != ArrayMode.MEMORY:
            raise VerifyException("'cim_tile.memory_buffer' arrays are in memory mode")
        if self.arrays.value.data < 1 or self.size.value.data < 1:
            raise VerifyException(
                "'cim_tile.memory_buffer' needs at least one array and one byte"
            )
        if self.segment.value.data < 0:
            raise VerifyException(
                "'cim_tile.memory_buffer' segment must not be negative"
            )
        if (self.holds is not None) != (self.role.data == BufferRole.KV_CACHE):
            raise VerifyException(
                "'cim_tile.memory_buffer' names the tensors it holds exactly "
                "when it is a kv_cache"
            )


@irdl_op_definition
class DataflowOp(IRDLOperation):
    """How a segment's operators execute: one after another (``layer``), or
    pipelined in ``blocks`` steps over samples (``batch``) or rows (``rows``),
    each step of an operator waiting only for the steps of its producers that
    hold the data it reads. A segment without a declaration runs ``layer``.

    ```mlir
    cim_tile.dataflow segment 0 rows blocks 8
    ```
    """

    name = "cim_tile.dataflow"

    segment = prop_def(IntegerAttr.constr(i64))
    kind = prop_def(DataflowAttr)
    blocks = prop_def(IntegerAttr.constr(i64))

    assembly_format = "`segment` $segment $kind `blocks` $blocks attr-dict"

    def __init__(self, segment: int, kind: Dataflow, blocks: int):
        super().__init__(
            properties={
                "segment": IntegerAttr(segment, i64),
                "kind": DataflowAttr(kind),
                "blocks": IntegerAttr(blocks, i64),
            }
        )

    def verify_(self) -> None:
        if self.segment.value.data < 0:
            raise VerifyException("'cim_tile.dataflow' segment must not be negative")
        blocks = self.blocks.value.data
        if blocks < 1:
            raise VerifyException("'cim_tile.dataflow' needs at least one block")
        if self.kind.data == Dataflow.LAYER and blocks != 1:
            raise VerifyException("'cim_tile.dataflow' layer runs in one block")


CIMTile = Dialect(
    "cim_tile",
    [MVMOp, Im2ColOp, Col2ImOp, VectorOp, YieldOp, MemoryBufferOp, DataflowOp],
    [
        ArrayModeAttr,
        WeightLayoutAttr,
        BufferRoleAttr,
        TilingAttr,
        AllocAttr,
        DataflowAttr,
    ],
)
