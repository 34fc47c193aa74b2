"""The ``cim_graph`` dialect: tensor-level operators, one per cleaned-up ONNX node.

A model is a ``func.func`` over ranked, static tensors. Weights are never
inlined: ``cim_graph.weight`` names a tensor of the model file recorded in the
module's ``cim_graph.source`` attribute, so a model whose weight data is
absent still compiles, and the simulator can later read the real values.

```mlir
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx">} {
  func.func @main(%x: tensor<1x3x8x8xf32>) -> tensor<1x4x8x8xf32> {
    %w = cim_graph.weight "conv.weight" : tensor<4x3x3x3xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1]
         dilations [1, 1] groups 1
         : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
    %z = cim_graph.unary relu %y : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
    func.return %z : tensor<1x4x8x8xf32>
  }
}
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from xdsl.dialects.builtin import (
    I1,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import (
    Attribute,
    Dialect,
    Operation,
    ParametrizedAttribute,
    SpacedOpaqueSyntaxAttribute,
    SSAValue,
)
from xdsl.irdl import (
    EqAttrConstraint,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    param_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from cimflow.cimdialect.shapes import (
    broadcast_shapes,
    conv_output_shape,
    matmul_output_shape,
    normalize_axis,
    num_elements,
    slice_length,
)

MAX_INLINE_ELEMENTS = 4096
"""Largest tensor ``cim_graph.constant`` may hold; anything bigger is a weight."""

I64Array = DenseArrayBase.constr(i64)
F32Attr = FloatAttr.constr(type=EqAttrConstraint(f32))


def tensor_shape(value: SSAValue | Attribute) -> tuple[int, ...]:
    """Static shape of a tensor value or type."""
    value_type = value.type if isinstance(value, SSAValue) else value
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"expected a tensor, got {value_type}")
    shape = tuple(value_type.get_shape())
    if any(dim < 0 for dim in shape):
        raise VerifyException(f"expected a static shape, got {value_type}")
    return shape


def element_type(value: SSAValue) -> Attribute:
    value_type = value.type
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"expected a tensor, got {value_type}")
    return cast(TensorType[Attribute], value_type).element_type


def i64_array(values: Sequence[int]) -> DenseArrayBase[IntegerType]:
    """An i64 dense array (attributes are immutable: equal ones are shared)."""
    return _i64_array(tuple(values))


@lru_cache(maxsize=1 << 16)
def _i64_array(values: tuple[int, ...]) -> DenseArrayBase[IntegerType]:
    return DenseArrayBase.from_list(i64, list(values))


@lru_cache(maxsize=1 << 16)
def i64_attr(value: int) -> IntegerAttr[IntegerType]:
    """An i64 integer attribute (shared between equal values)."""
    return IntegerAttr(value, i64)


def ints(attr: DenseArrayBase[Any]) -> tuple[int, ...]:
    """The values of an integer dense array property."""
    return tuple(int(v) for v in cast(DenseArrayBase[IntegerType], attr).get_values())


def _expect_shape(
    op: Operation, actual: Sequence[int], expected: Sequence[int]
) -> None:
    if tuple(actual) != tuple(expected):
        raise VerifyException(
            f"'{op.name}' result shape {list(actual)} does not match the "
            f"inferred shape {list(expected)}"
        )


def _same_element_type(op: Operation, *values: SSAValue) -> None:
    types = {element_type(v) for v in values}
    if len(types) > 1:
        raise VerifyException(
            f"'{op.name}' operands and results must share one element type, got "
            f"{', '.join(sorted(str(t) for t in types))}"
        )


def _is_weight(value: SSAValue) -> bool:
    return isinstance(value.owner, WeightOp)


# --------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------


@irdl_attr_definition
class WeightSourceAttr(ParametrizedAttribute):
    """Where the weights named by ``cim_graph.weight`` live.

    ``#cim_graph.source<"models/bert.onnx", batch = 1, sequence = 128>`` names
    the ONNX file (its initializers, external data included) and the values
    its symbolic input dimensions were given at import, which the frontend
    needs to derive folded weights again. An empty path means the model was
    built without a file; such a model compiles and simulates for timing but
    cannot be checked functionally.
    """

    name = "cim_graph.source"

    path: StringAttr = param_def()
    dims: DictionaryAttr = param_def()

    def __init__(self, path: str | StringAttr, dims: Mapping[str, int] | None = None):
        super().__init__(
            StringAttr(path) if isinstance(path, str) else path,
            DictionaryAttr(
                {k: IntegerAttr(v, i64) for k, v in sorted((dims or {}).items())}
            ),
        )

    @property
    def dim_values(self) -> dict[str, int]:
        values: dict[str, int] = {}
        for key, value in self.dims.data.items():
            assert isinstance(value, IntegerAttr)
            values[key] = cast(IntegerAttr[IntegerType], value).value.data
        return values

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        dims: dict[str, int] = {}
        with parser.in_angle_brackets():
            path = parser.parse_str_literal()
            while parser.parse_optional_punctuation(","):
                start = parser.pos
                key = parser.parse_identifier()
                parser.parse_punctuation("=")
                value = parser.parse_integer(allow_boolean=False)
                if key in dims:
                    parser.raise_error(
                        f"#cim_graph.source dimension '{key}' is given twice",
                        start,
                        parser.pos,
                    )
                if value < 1:
                    parser.raise_error(
                        f"#cim_graph.source dimension '{key}' must be a positive "
                        "integer",
                        start,
                        parser.pos,
                    )
                dims[key] = value
        return tuple(WeightSourceAttr(path, dims).parameters)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.path.data)
            for key, value in self.dim_values.items():
                printer.print_string(f", {key} = {value}")

    def verify(self) -> None:
        for key, value in self.dims.data.items():
            if (
                not isinstance(value, IntegerAttr)
                or cast(IntegerAttr[IntegerType], value).value.data < 1
            ):
                raise VerifyException(
                    f"#cim_graph.source dimension '{key}' must be a positive integer"
                )


class UnaryKind(StrEnum):
    RELU = "relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    ERF = "erf"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RECIPROCAL = "reciprocal"
    NEG = "neg"
    ABS = "abs"
    GELU = "gelu"
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``."""
    GELU_TANH = "gelu_tanh"
    """GPT-2's tanh approximation of GELU."""
    SILU = "silu"
    SOFTPLUS = "softplus"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    """To the nearest integer, halves to even (ONNX Round, QuantizeLinear)."""
    COS = "cos"
    SIN = "sin"
    NOT = "not"


@irdl_attr_definition
class UnaryKindAttr(EnumAttribute[UnaryKind], SpacedOpaqueSyntaxAttribute):
    """The function an elementwise ``cim_graph.unary`` applies, e.g. ``relu``."""

    name = "cim_graph.unary_kind"


class BinaryKind(StrEnum):
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    POW = "pow"
    MAX = "max"
    MIN = "min"
    EQUAL = "equal"
    LESS = "less"
    GREATER = "greater"
    AND = "and"
    OR = "or"

    @property
    def is_comparison(self) -> bool:
        return self in (BinaryKind.EQUAL, BinaryKind.LESS, BinaryKind.GREATER)


@irdl_attr_definition
class BinaryKindAttr(EnumAttribute[BinaryKind], SpacedOpaqueSyntaxAttribute):
    """The function an elementwise ``cim_graph.binary`` applies, e.g. ``add``."""

    name = "cim_graph.binary_kind"


class ReduceKind(StrEnum):
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"
    PROD = "prod"


@irdl_attr_definition
class ReduceKindAttr(EnumAttribute[ReduceKind], SpacedOpaqueSyntaxAttribute):
    """The combining function of ``cim_graph.reduce``, e.g. ``mean``."""

    name = "cim_graph.reduce_kind"


class PoolKind(StrEnum):
    MAX = "max"
    AVG = "avg"


@irdl_attr_definition
class PoolKindAttr(EnumAttribute[PoolKind], SpacedOpaqueSyntaxAttribute):
    """Max or average pooling."""

    name = "cim_graph.pool_kind"


class PadMode(StrEnum):
    CONSTANT = "constant"
    REFLECT = "reflect"
    EDGE = "edge"


@irdl_attr_definition
class PadModeAttr(EnumAttribute[PadMode], SpacedOpaqueSyntaxAttribute):
    """How ``cim_graph.pad`` fills the border."""

    name = "cim_graph.pad_mode"


# --------------------------------------------------------------------------
# Sources of values
# --------------------------------------------------------------------------


NODE_ATTR = "cim_graph.node"
"""Discardable attribute of an operation: the name of the ONNX node it
comes from, kept by every lowering down to the trace's ops (what
per-layer reports group by)."""


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named weight tensor of the model file; its data is never inlined.

    ```mlir
    %w = cim_graph.weight "layer1.0.conv1.weight" : tensor<64x64x3x3xf32>
    ```
    """

    name = "cim_graph.weight"

    weight_name = prop_def(StringAttr, prop_name="name")
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$name attr-dict `:` type($output)"

    def __init__(self, name: str, output_type: TensorType):
        super().__init__(
            properties={"name": StringAttr(name)}, result_types=[output_type]
        )

    def verify_(self) -> None:
        if not self.weight_name.data:
            raise VerifyException("'cim_graph.weight' needs a non-empty name")
        tensor_shape(self.output)


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """A small constant folded by the frontend (at most 4096 elements).

    ```mlir
    %c = cim_graph.constant dense<[0.5, 2.0]> : tensor<2xf32>
    ```
    """

    name = "cim_graph.constant"

    value = prop_def(DenseIntOrFPElementsAttr)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    def __init__(self, value: DenseIntOrFPElementsAttr[Any]):
        super().__init__(properties={"value": value}, result_types=[value.type])

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        start = parser.pos
        value = parser.parse_attribute()
        if not isinstance(value, DenseIntOrFPElementsAttr):
            parser.raise_error(
                "'cim_graph.constant' expects a dense elements value", start, parser.pos
            )
        attributes = parser.parse_optional_attr_dict()
        op = cls(cast(DenseIntOrFPElementsAttr[Any], value))
        op.attributes.update(attributes)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.value)
        printer.print_op_attributes(self.attributes)

    def verify_(self) -> None:
        if self.value.type != self.output.type:
            raise VerifyException(
                f"'cim_graph.constant' value type {self.value.type} differs from "
                f"result type {self.output.type}"
            )
        if num_elements(tensor_shape(self.output)) > MAX_INLINE_ELEMENTS:
            raise VerifyException(
                f"'cim_graph.constant' holds more than {MAX_INLINE_ELEMENTS} "
                "elements; large tensors must be cim_graph.weight"
            )


# --------------------------------------------------------------------------
# Weight-stationary operators (mapped onto crossbar arrays)
# --------------------------------------------------------------------------


@irdl_op_definition
class ConvOp(IRDLOperation):
    """2-D convolution, NCHW, with a static weight (OIHW) and optional bias.

    ``pads`` follows ONNX: ``[top, left, bottom, right]``.

    ```mlir
    %y = cim_graph.conv %x, %w, %b strides [2, 2] pads [3, 3, 3, 3]
         dilations [1, 1] groups 1
         : (tensor<1x3x224x224xf32>, tensor<64x3x7x7xf32>, tensor<64xf32>)
         -> tensor<1x64x112x112xf32>
    ```
    """

    name = "cim_graph.conv"

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)

    strides = prop_def(I64Array)
    pads = prop_def(I64Array)
    dilations = prop_def(I64Array)
    groups = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? `strides` $strides `pads` $pads "
        "`dilations` $dilations `groups` $groups attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        bias: SSAValue | None,
        strides: Sequence[int],
        pads: Sequence[int],
        dilations: Sequence[int],
        groups: int,
        output_type: TensorType,
    ):
        super().__init__(
            operands=[input, weight, bias],
            result_types=[output_type],
            properties={
                "strides": i64_array(strides),
                "pads": i64_array(pads),
                "dilations": i64_array(dilations),
                "groups": IntegerAttr(groups, i64),
            },
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.weight, self.output)
        x, w = tensor_shape(self.input), tensor_shape(self.weight)
        if len(x) != 4 or len(w) != 4:
            raise VerifyException("'cim_graph.conv' takes a 4-D input and weight")
        if not _is_weight(self.weight):
            raise VerifyException(
                "'cim_graph.conv' weight must be a cim_graph.weight (weights stay "
                "in the arrays)"
            )
        strides, pads, dilations = (
            ints(self.strides),
            ints(self.pads),
            ints(self.dilations),
        )
        if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
            raise VerifyException(
                "'cim_graph.conv' needs 2 strides, 2 dilations and 4 pads"
            )
        if min(strides + dilations) < 1 or min(pads) < 0:
            raise VerifyException(
                "'cim_graph.conv' strides and dilations must be positive, pads "
                "non-negative"
            )
        groups = self.groups.value.data
        if groups < 1 or x[1] % groups or w[0] % groups or x[1] // groups != w[1]:
            raise VerifyException(
                f"'cim_graph.conv' channels do not match: input {x[1]}, weight "
                f"{list(w)}, groups {groups}"
            )
        if self.bias is not None and tensor_shape(self.bias) != (w[0],):
            raise VerifyException(f"'cim_graph.conv' bias must have shape [{w[0]}]")
        expected = conv_output_shape(x, w[0], w[2:], strides, pads, dilations)
        if min(expected[2:]) < 1:
            raise VerifyException(
                "'cim_graph.conv' window does not fit the padded input"
            )
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class LinearOp(IRDLOperation):
    """``y = x @ W (+ b)`` with a static weight: MatMul or Gemm with a weight.

    ``W`` is stored ``[K, N]``, or ``[N, K]`` with ``transpose_weight`` (Gemm
    with ``transB = 1``). ``x`` is ``[..., K]``.

    ```mlir
    %y = cim_graph.linear %x, %w, %b transpose_weight
         : (tensor<1x128x768xf32>, tensor<3072x768xf32>, tensor<3072xf32>)
         -> tensor<1x128x3072xf32>
    ```
    """

    name = "cim_graph.linear"

    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)

    transpose_weight = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? (`transpose_weight` $transpose_weight^)? "
        "attr-dict `:` functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        bias: SSAValue | None,
        transpose_weight: bool,
        output_type: TensorType,
    ):
        super().__init__(
            operands=[input, weight, bias],
            result_types=[output_type],
            properties={"transpose_weight": UnitAttr()} if transpose_weight else {},
        )

    @property
    def reduction_size(self) -> int:
        """K, the length of the dot products."""
        w = tensor_shape(self.weight)
        return w[1] if self.transpose_weight else w[0]

    @property
    def output_size(self) -> int:
        """N, the number of outputs per input vector."""
        w = tensor_shape(self.weight)
        return w[0] if self.transpose_weight else w[1]

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.weight, self.output)
        x, w = tensor_shape(self.input), tensor_shape(self.weight)
        if len(x) < 1:
            raise VerifyException("'cim_graph.linear' input must have rank >= 1")
        if len(w) != 2:
            raise VerifyException("'cim_graph.linear' takes a 2-D weight")
        if not _is_weight(self.weight):
            raise VerifyException(
                "'cim_graph.linear' weight must be a cim_graph.weight"
            )
        if x[-1] != self.reduction_size:
            raise VerifyException(
                f"'cim_graph.linear' input inner size {x[-1]} does not match "
                f"weight {list(w)}"
            )
        if self.bias is not None and tensor_shape(self.bias) not in (
            (self.output_size,),
            (1, self.output_size),
        ):
            raise VerifyException(
                f"'cim_graph.linear' bias must have shape [{self.output_size}]"
            )
        _expect_shape(self, tensor_shape(self.output), (*x[:-1], self.output_size))


# --------------------------------------------------------------------------
# Operators run on the digital vector units
# --------------------------------------------------------------------------


@irdl_op_definition
class MatMulOp(IRDLOperation):
    """Matrix product of two activations (attention's Q·Kᵀ and P·V).

    Numpy ``matmul`` semantics with broadcast batch dimensions.

    ```mlir
    %s = cim_graph.matmul %q, %kt
         : (tensor<1x12x128x64xf32>, tensor<1x12x64x128xf32>)
         -> tensor<1x12x128x128xf32>
    ```
    """

    name = "cim_graph.matmul"

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, output_type: TensorType):
        super().__init__(operands=[lhs, rhs], result_types=[output_type])

    def verify_(self) -> None:
        _same_element_type(self, self.lhs, self.rhs, self.output)
        expected = matmul_output_shape(tensor_shape(self.lhs), tensor_shape(self.rhs))
        if expected is None:
            raise VerifyException(
                f"'cim_graph.matmul' operand shapes {list(tensor_shape(self.lhs))} "
                f"and {list(tensor_shape(self.rhs))} do not multiply"
            )
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class UnaryOp(IRDLOperation):
    """An elementwise function of one tensor.

    ```mlir
    %y = cim_graph.unary gelu %x : tensor<1x128x3072xf32> -> tensor<1x128x3072xf32>
    ```
    """

    name = "cim_graph.unary"

    kind = prop_def(UnaryKindAttr)
    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$kind $input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, kind: UnaryKind, input: SSAValue):
        super().__init__(
            operands=[input],
            result_types=[input.type],
            properties={"kind": UnaryKindAttr(kind)},
        )

    def verify_(self) -> None:
        if self.input.type != self.output.type:
            raise VerifyException(
                f"'cim_graph.unary' result type {self.output.type} differs from "
                f"input type {self.input.type}"
            )


@irdl_op_definition
class BinaryOp(IRDLOperation):
    """An elementwise function of two tensors, with numpy broadcasting.

    Comparisons give ``i1`` tensors.

    ```mlir
    %y = cim_graph.binary add %a, %b
         : (tensor<1x64x56x56xf32>, tensor<1x64x56x56xf32>) -> tensor<1x64x56x56xf32>
    ```
    """

    name = "cim_graph.binary"

    kind = prop_def(BinaryKindAttr)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$kind $lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
    )

    def __init__(
        self, kind: BinaryKind, lhs: SSAValue, rhs: SSAValue, output_type: TensorType
    ):
        super().__init__(
            operands=[lhs, rhs],
            result_types=[output_type],
            properties={"kind": BinaryKindAttr(kind)},
        )

    def verify_(self) -> None:
        expected = broadcast_shapes(tensor_shape(self.lhs), tensor_shape(self.rhs))
        if expected is None:
            raise VerifyException(
                f"'cim_graph.binary' operand shapes {list(tensor_shape(self.lhs))} "
                f"and {list(tensor_shape(self.rhs))} do not broadcast"
            )
        _expect_shape(self, tensor_shape(self.output), expected)
        if element_type(self.lhs) != element_type(self.rhs):
            raise VerifyException(
                "'cim_graph.binary' operands have different element types"
            )
        if self.kind.data in (BinaryKind.AND, BinaryKind.OR) and element_type(
            self.lhs
        ) != IntegerType(1):
            raise VerifyException(
                f"'cim_graph.binary {self.kind.data}' takes i1 operands"
            )
        if self.kind.data.is_comparison:
            if element_type(self.output) != IntegerType(1):
                raise VerifyException(
                    f"'cim_graph.binary {self.kind.data}' must produce an i1 tensor"
                )
        elif element_type(self.output) != element_type(self.lhs):
            raise VerifyException(
                "'cim_graph.binary' result element type differs from its operands'"
            )


@irdl_op_definition
class WhereOp(IRDLOperation):
    """Elementwise select: ``condition ? on_true : on_false`` with broadcasting.

    ```mlir
    %y = cim_graph.where %mask, %scores, %neg_inf
         : (tensor<1x1x1x128xi1>, tensor<1x12x128x128xf32>, tensor<f32>)
         -> tensor<1x12x128x128xf32>
    ```
    """

    name = "cim_graph.where"

    condition = operand_def(TensorType[I1])
    on_true = operand_def(TensorType)
    on_false = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = (
        "$condition `,` $on_true `,` $on_false attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(
        self,
        condition: SSAValue,
        on_true: SSAValue,
        on_false: SSAValue,
        output_type: TensorType,
    ):
        super().__init__(
            operands=[condition, on_true, on_false], result_types=[output_type]
        )

    def verify_(self) -> None:
        _same_element_type(self, self.on_true, self.on_false, self.output)
        expected = broadcast_shapes(
            tensor_shape(self.condition),
            tensor_shape(self.on_true),
            tensor_shape(self.on_false),
        )
        if expected is None:
            raise VerifyException("'cim_graph.where' operand shapes do not broadcast")
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class CastOp(IRDLOperation):
    """Element type conversion (ONNX Cast), shape unchanged.

    ```mlir
    %y = cim_graph.cast %mask : tensor<1x128xi64> -> tensor<1x128xf32>
    ```
    """

    name = "cim_graph.cast"

    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, output_type: TensorType):
        super().__init__(operands=[input], result_types=[output_type])

    def verify_(self) -> None:
        _expect_shape(self, tensor_shape(self.output), tensor_shape(self.input))


@irdl_op_definition
class ClipOp(IRDLOperation):
    """Clamp into ``[min, max]`` (ReLU6 is ``clip 0.0, 6.0``).

    ```mlir
    %y = cim_graph.clip %x min 0.0 max 6.0
         : tensor<1x32x112x112xf32> -> tensor<1x32x112x112xf32>
    ```
    """

    name = "cim_graph.clip"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    min = prop_def(F32Attr)
    max = prop_def(F32Attr)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `min` $min `max` $max attr-dict `:` type($input) `->` type($output)"
    )

    def __init__(self, input: SSAValue, low: float, high: float):
        super().__init__(
            operands=[input],
            result_types=[input.type],
            properties={"min": FloatAttr(low, f32), "max": FloatAttr(high, f32)},
        )

    def verify_(self) -> None:
        if self.input.type != self.output.type:
            raise VerifyException("'cim_graph.clip' result type differs from input")
        if self.min.value.data > self.max.value.data:
            raise VerifyException("'cim_graph.clip' min exceeds max")


@irdl_op_definition
class SoftmaxOp(IRDLOperation):
    """Softmax along one axis.

    ```mlir
    %p = cim_graph.softmax %s axis -1
         : tensor<1x12x128x128xf32> -> tensor<1x12x128x128xf32>
    ```
    """

    name = "cim_graph.softmax"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$input `axis` $axis attr-dict `:` type($input) `->` type($output)"
    )

    def __init__(self, input: SSAValue, axis: int):
        super().__init__(
            operands=[input],
            result_types=[input.type],
            properties={"axis": IntegerAttr(axis, i64)},
        )

    def verify_(self) -> None:
        if self.input.type != self.output.type:
            raise VerifyException("'cim_graph.softmax' result type differs from input")
        if normalize_axis(self.axis.value.data, len(tensor_shape(self.input))) is None:
            raise VerifyException("'cim_graph.softmax' axis out of range")


def _verify_norm(
    op: LayerNormOp | RMSNormOp, scale: SSAValue, bias: SSAValue | None = None
) -> None:
    _same_element_type(op, op.input, scale, *([bias] if bias else []), op.output)
    shape = tensor_shape(op.input)
    axis = normalize_axis(op.axis.value.data, len(shape))
    if axis is None:
        raise VerifyException(f"'{op.name}' axis out of range")
    if op.input.type != op.output.type:
        raise VerifyException(f"'{op.name}' result type differs from input")
    if broadcast_shapes(shape[axis:], tensor_shape(scale)) != shape[axis:]:
        raise VerifyException(
            f"'{op.name}' scale shape {list(tensor_shape(scale))} does not match "
            f"the normalized shape {list(shape[axis:])}"
        )
    if (
        bias is not None
        and broadcast_shapes(shape[axis:], tensor_shape(bias)) != (shape[axis:])
    ):
        raise VerifyException(
            f"'{op.name}' bias shape {list(tensor_shape(bias))} does not match "
            f"the normalized shape {list(shape[axis:])}"
        )
    if op.epsilon.value.data <= 0:
        raise VerifyException(f"'{op.name}' epsilon must be positive")


@irdl_op_definition
class LayerNormOp(IRDLOperation):
    """Layer normalization over the axes from ``axis`` to the last.

    ```mlir
    %y = cim_graph.layer_norm %x, %g, %b axis -1 epsilon 1.0e-12
         : (tensor<1x128x768xf32>, tensor<768xf32>, tensor<768xf32>)
         -> tensor<1x128x768xf32>
    ```
    """

    name = "cim_graph.layer_norm"

    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))
    epsilon = prop_def(F32Attr)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $scale (`,` $bias^)? `axis` $axis `epsilon` $epsilon attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue,
        scale: SSAValue,
        bias: SSAValue | None,
        axis: int,
        epsilon: float,
    ):
        super().__init__(
            operands=[input, scale, bias],
            result_types=[input.type],
            properties={
                "axis": IntegerAttr(axis, i64),
                "epsilon": FloatAttr(epsilon, f32),
            },
        )

    def verify_(self) -> None:
        _verify_norm(self, self.scale, self.bias)


@irdl_op_definition
class RMSNormOp(IRDLOperation):
    """RMS normalization (LLaMA): ``x / sqrt(mean(x²) + eps) * scale``.

    ```mlir
    %y = cim_graph.rms_norm %x, %g axis -1 epsilon 1.0e-06
         : (tensor<1x128x4096xf32>, tensor<4096xf32>) -> tensor<1x128x4096xf32>
    ```
    """

    name = "cim_graph.rms_norm"

    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))
    epsilon = prop_def(F32Attr)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $scale `axis` $axis `epsilon` $epsilon attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(self, input: SSAValue, scale: SSAValue, axis: int, epsilon: float):
        super().__init__(
            operands=[input, scale],
            result_types=[input.type],
            properties={
                "axis": IntegerAttr(axis, i64),
                "epsilon": FloatAttr(epsilon, f32),
            },
        )

    def verify_(self) -> None:
        _verify_norm(self, self.scale)


@irdl_op_definition
class ReduceOp(IRDLOperation):
    """Reduction over ``axes``, keeping them as size 1 with ``keepdims``.

    ```mlir
    %m = cim_graph.reduce mean %x axes [2] keepdims
         : tensor<1x128x4096xf32> -> tensor<1x128x1xf32>
    ```
    """

    name = "cim_graph.reduce"

    kind = prop_def(ReduceKindAttr)
    input = operand_def(TensorType)
    output = result_def(TensorType)
    axes = prop_def(I64Array)
    keepdims = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())

    assembly_format = (
        "$kind $input `axes` $axes (`keepdims` $keepdims^)? attr-dict "
        "`:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        kind: ReduceKind,
        input: SSAValue,
        axes: Sequence[int],
        keepdims: bool,
        output_type: TensorType,
    ):
        properties: dict[str, Attribute] = {
            "kind": ReduceKindAttr(kind),
            "axes": i64_array(axes),
        }
        if keepdims:
            properties["keepdims"] = UnitAttr()
        super().__init__(
            operands=[input], result_types=[output_type], properties=properties
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        shape = tensor_shape(self.input)
        axes = ints(self.axes)
        if any(a < 0 or a >= len(shape) for a in axes) or len(set(axes)) != len(axes):
            raise VerifyException(
                f"'cim_graph.reduce' axes {list(axes)} must be distinct and in "
                f"[0, {len(shape)})"
            )
        expected = [
            1 if i in axes else d
            for i, d in enumerate(shape)
            if self.keepdims is not None or i not in axes
        ]
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class PoolOp(IRDLOperation):
    """Max or average pooling over NCHW windows.

    ```mlir
    %y = cim_graph.pool max %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1]
         : tensor<1x64x112x112xf32> -> tensor<1x64x56x56xf32>
    ```
    """

    name = "cim_graph.pool"

    kind = prop_def(PoolKindAttr)
    input = operand_def(TensorType)
    output = result_def(TensorType)
    kernel = prop_def(I64Array)
    strides = prop_def(I64Array)
    pads = prop_def(I64Array)
    count_include_pad = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())

    assembly_format = (
        "$kind $input `kernel` $kernel `strides` $strides `pads` $pads "
        "(`count_include_pad` $count_include_pad^)? attr-dict "
        "`:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        kind: PoolKind,
        input: SSAValue,
        kernel: Sequence[int],
        strides: Sequence[int],
        pads: Sequence[int],
        count_include_pad: bool,
        output_type: TensorType,
    ):
        properties: dict[str, Attribute] = {
            "kind": PoolKindAttr(kind),
            "kernel": i64_array(kernel),
            "strides": i64_array(strides),
            "pads": i64_array(pads),
        }
        if count_include_pad:
            properties["count_include_pad"] = UnitAttr()
        super().__init__(
            operands=[input], result_types=[output_type], properties=properties
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        x = tensor_shape(self.input)
        kernel, strides, pads = ints(self.kernel), ints(self.strides), ints(self.pads)
        if len(x) != 4 or len(kernel) != 2 or len(strides) != 2 or len(pads) != 4:
            raise VerifyException(
                "'cim_graph.pool' takes a 4-D input, 2 kernel sizes, 2 strides "
                "and 4 pads"
            )
        if min(kernel + strides) < 1 or min(pads) < 0:
            raise VerifyException(
                "'cim_graph.pool' kernel and strides must be positive, pads "
                "non-negative"
            )
        expected = conv_output_shape(x, x[1], kernel, strides, pads, (1, 1))
        if min(expected[2:]) < 1:
            raise VerifyException(
                "'cim_graph.pool' window does not fit the padded input"
            )
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class GlobalPoolOp(IRDLOperation):
    """Global max or average pooling of each channel to 1x1.

    ```mlir
    %y = cim_graph.global_pool avg %x
         : tensor<1x2048x7x7xf32> -> tensor<1x2048x1x1xf32>
    ```
    """

    name = "cim_graph.global_pool"

    kind = prop_def(PoolKindAttr)
    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$kind $input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, kind: PoolKind, input: SSAValue, output_type: TensorType):
        super().__init__(
            operands=[input],
            result_types=[output_type],
            properties={"kind": PoolKindAttr(kind)},
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        x = tensor_shape(self.input)
        if len(x) < 3:
            raise VerifyException("'cim_graph.global_pool' takes an N x C x ... input")
        _expect_shape(
            self, tensor_shape(self.output), (x[0], x[1], *([1] * (len(x) - 2)))
        )


# --------------------------------------------------------------------------
# Data movement
# --------------------------------------------------------------------------


@irdl_op_definition
class ReshapeOp(IRDLOperation):
    """Reinterpret the shape (Reshape, Flatten, Squeeze, Unsqueeze).

    ```mlir
    %y = cim_graph.reshape %x : tensor<1x2048x1x1xf32> -> tensor<1x2048xf32>
    ```
    """

    name = "cim_graph.reshape"

    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, output_type: TensorType):
        super().__init__(operands=[input], result_types=[output_type])

    def verify_(self) -> None:
        if num_elements(tensor_shape(self.input)) != num_elements(
            tensor_shape(self.output)
        ) or element_type(self.input) != element_type(self.output):
            raise VerifyException(
                "'cim_graph.reshape' must keep the element count and type"
            )


@irdl_op_definition
class TransposeOp(IRDLOperation):
    """Permute dimensions: output dim ``i`` is input dim ``perm[i]``.

    ```mlir
    %y = cim_graph.transpose %x perm [0, 2, 1, 3]
         : tensor<1x128x12x64xf32> -> tensor<1x12x128x64xf32>
    ```
    """

    name = "cim_graph.transpose"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    perm = prop_def(I64Array)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `perm` $perm attr-dict `:` type($input) `->` type($output)"
    )

    def __init__(self, input: SSAValue, perm: Sequence[int], output_type: TensorType):
        super().__init__(
            operands=[input],
            result_types=[output_type],
            properties={"perm": i64_array(perm)},
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        shape, perm = tensor_shape(self.input), ints(self.perm)
        if sorted(perm) != list(range(len(shape))):
            raise VerifyException(
                f"'cim_graph.transpose' perm {list(perm)} is not a permutation of "
                f"{len(shape)} axes"
            )
        _expect_shape(self, tensor_shape(self.output), [shape[p] for p in perm])


@irdl_op_definition
class ConcatOp(IRDLOperation):
    """Join tensors along ``axis``.

    ```mlir
    %y = cim_graph.concat %a, %b axis 3
         : (tensor<1x32x128x32xf32>, tensor<1x32x128x32xf32>) -> tensor<1x32x128x64xf32>
    ```
    """

    name = "cim_graph.concat"

    inputs = var_operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$inputs `axis` $axis attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, inputs: Sequence[SSAValue], axis: int, output_type: TensorType):
        super().__init__(
            operands=[inputs],
            result_types=[output_type],
            properties={"axis": IntegerAttr(axis, i64)},
        )

    def verify_(self) -> None:
        _same_element_type(self, *self.inputs, self.output)
        if not self.inputs:
            raise VerifyException("'cim_graph.concat' needs at least one input")
        shapes = [tensor_shape(v) for v in self.inputs]
        axis = self.axis.value.data
        if not 0 <= axis < len(shapes[0]):
            raise VerifyException("'cim_graph.concat' axis out of range")
        for shape in shapes:
            if len(shape) != len(shapes[0]) or any(
                d != e
                for i, (d, e) in enumerate(zip(shape, shapes[0], strict=True))
                if i != axis
            ):
                raise VerifyException(
                    "'cim_graph.concat' inputs differ outside the concatenation axis"
                )
        expected = list(shapes[0])
        expected[axis] = sum(s[axis] for s in shapes)
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class SplitOp(IRDLOperation):
    """Cut a tensor along ``axis`` into pieces sized by the result types.

    ```mlir
    %q, %k, %v = cim_graph.split %qkv axis 2
         : tensor<1x128x2304xf32>
         -> (tensor<1x128x768xf32>, tensor<1x128x768xf32>, tensor<1x128x768xf32>)
    ```
    """

    name = "cim_graph.split"

    input = operand_def(TensorType)
    outputs = var_result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$input `axis` $axis attr-dict `:` type($input) `->` `(` type($outputs) `)`"
    )

    def __init__(self, input: SSAValue, axis: int, output_types: Sequence[TensorType]):
        super().__init__(
            operands=[input],
            result_types=[list(output_types)],
            properties={"axis": IntegerAttr(axis, i64)},
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, *self.outputs)
        shape = tensor_shape(self.input)
        axis = self.axis.value.data
        if not 0 <= axis < len(shape) or not self.outputs:
            raise VerifyException("'cim_graph.split' axis out of range or no results")
        total = 0
        for result in self.outputs:
            piece = tensor_shape(result)
            if len(piece) != len(shape) or any(
                d != e
                for i, (d, e) in enumerate(zip(piece, shape, strict=True))
                if i != axis
            ):
                raise VerifyException(
                    "'cim_graph.split' results differ from the input outside the axis"
                )
            total += piece[axis]
        if total != shape[axis]:
            raise VerifyException(
                f"'cim_graph.split' pieces sum to {total}, not {shape[axis]}"
            )


@irdl_op_definition
class SliceOp(IRDLOperation):
    """Strided slice with one ``[start, end)`` and positive step per dimension.

    ```mlir
    %y = cim_graph.slice %x starts [0, 0, 0, 32] ends [1, 32, 128, 64]
         steps [1, 1, 1, 1] : tensor<1x32x128x64xf32> -> tensor<1x32x128x32xf32>
    ```
    """

    name = "cim_graph.slice"

    input = operand_def(TensorType)
    output = result_def(TensorType)
    starts = prop_def(I64Array)
    ends = prop_def(I64Array)
    steps = prop_def(I64Array)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `starts` $starts `ends` $ends `steps` $steps attr-dict "
        "`:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        input: SSAValue,
        starts: Sequence[int],
        ends: Sequence[int],
        steps: Sequence[int],
        output_type: TensorType,
    ):
        super().__init__(
            operands=[input],
            result_types=[output_type],
            properties={
                "starts": i64_array(starts),
                "ends": i64_array(ends),
                "steps": i64_array(steps),
            },
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        shape = tensor_shape(self.input)
        starts, ends, steps = ints(self.starts), ints(self.ends), ints(self.steps)
        if not len(starts) == len(ends) == len(steps) == len(shape):
            raise VerifyException(
                "'cim_graph.slice' needs one start, end and step per dimension"
            )
        for dim, start, end, step in zip(shape, starts, ends, steps, strict=True):
            if step < 1 or not 0 <= start <= dim or not start <= end <= dim:
                raise VerifyException(
                    f"'cim_graph.slice' bounds [{start}, {end}) step {step} are "
                    f"invalid for a dimension of {dim}"
                )
        expected = [
            slice_length(s, e, st) for s, e, st in zip(starts, ends, steps, strict=True)
        ]
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class GatherOp(IRDLOperation):
    """ONNX Gather: pick slices of ``data`` along ``axis`` (embedding lookup).

    ```mlir
    %e = cim_graph.gather %table, %ids axis 0
         : (tensor<30522x768xf32>, tensor<1x128xi64>) -> tensor<1x128x768xf32>
    ```
    """

    name = "cim_graph.gather"

    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr.constr(i64))

    traits = traits_def(Pure())

    assembly_format = (
        "$data `,` $indices `axis` $axis attr-dict "
        "`:` functional-type(operands, results)"
    )

    def __init__(
        self, data: SSAValue, indices: SSAValue, axis: int, output_type: TensorType
    ):
        super().__init__(
            operands=[data, indices],
            result_types=[output_type],
            properties={"axis": IntegerAttr(axis, i64)},
        )

    def verify_(self) -> None:
        _same_element_type(self, self.data, self.output)
        data, indices = tensor_shape(self.data), tensor_shape(self.indices)
        axis = self.axis.value.data
        if not 0 <= axis < len(data):
            raise VerifyException("'cim_graph.gather' axis out of range")
        if not isinstance(element_type(self.indices), IntegerType):
            raise VerifyException("'cim_graph.gather' indices must be integers")
        expected = (*data[:axis], *indices, *data[axis + 1 :])
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class PadOp(IRDLOperation):
    """Pad every dimension; ``pads`` is ONNX's ``[begins..., ends...]``.

    ```mlir
    %y = cim_graph.pad constant %x pads [0, 0, 1, 1, 0, 0, 1, 1] value 0.0
         : tensor<1x32x112x112xf32> -> tensor<1x32x114x114xf32>
    ```
    """

    name = "cim_graph.pad"

    mode = prop_def(PadModeAttr)
    input = operand_def(TensorType)
    output = result_def(TensorType)
    pads = prop_def(I64Array)
    value = prop_def(F32Attr)

    traits = traits_def(Pure())

    assembly_format = (
        "$mode $input `pads` $pads `value` $value attr-dict "
        "`:` type($input) `->` type($output)"
    )

    def __init__(
        self,
        mode: PadMode,
        input: SSAValue,
        pads: Sequence[int],
        value: float,
        output_type: TensorType,
    ):
        super().__init__(
            operands=[input],
            result_types=[output_type],
            properties={
                "mode": PadModeAttr(mode),
                "pads": i64_array(pads),
                "value": FloatAttr(value, f32),
            },
        )

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        shape, pads = tensor_shape(self.input), ints(self.pads)
        rank = len(shape)
        if len(pads) != 2 * rank or min(pads, default=0) < 0:
            raise VerifyException(f"'cim_graph.pad' needs {2 * rank} non-negative pads")
        expected = [d + pads[i] + pads[rank + i] for i, d in enumerate(shape)]
        _expect_shape(self, tensor_shape(self.output), expected)


@irdl_op_definition
class ExpandOp(IRDLOperation):
    """Broadcast to the result shape (ONNX Expand; grouped-query attention).

    ```mlir
    %y = cim_graph.expand %kv : tensor<1x8x1x128x128xf32> -> tensor<1x8x4x128x128xf32>
    ```
    """

    name = "cim_graph.expand"

    input = operand_def(TensorType)
    output = result_def(TensorType)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, output_type: TensorType):
        super().__init__(operands=[input], result_types=[output_type])

    def verify_(self) -> None:
        _same_element_type(self, self.input, self.output)
        out = tensor_shape(self.output)
        if broadcast_shapes(tensor_shape(self.input), out) != out:
            raise VerifyException(
                f"'cim_graph.expand' cannot broadcast {list(tensor_shape(self.input))} "
                f"to {list(out)}"
            )


WEIGHT_STATIONARY_OPS: tuple[type[IRDLOperation], ...] = (ConvOp, LinearOp)

CIMGraph = Dialect(
    "cim_graph",
    [
        WeightOp,
        ConstantOp,
        ConvOp,
        LinearOp,
        MatMulOp,
        UnaryOp,
        BinaryOp,
        WhereOp,
        CastOp,
        ClipOp,
        SoftmaxOp,
        LayerNormOp,
        RMSNormOp,
        ReduceOp,
        PoolOp,
        GlobalPoolOp,
        ReshapeOp,
        TransposeOp,
        ConcatOp,
        SplitOp,
        SliceOp,
        GatherOp,
        PadOp,
        ExpandOp,
    ],
    [
        WeightSourceAttr,
        UnaryKindAttr,
        BinaryKindAttr,
        ReduceKindAttr,
        PoolKindAttr,
        PadModeAttr,
    ],
)
