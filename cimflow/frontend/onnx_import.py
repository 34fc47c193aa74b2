"""Import an ONNX model as a ``cim_graph`` module.

:func:`import_onnx` loads a model without its external weight data,
prepares it (:func:`cimflow.frontend.prepare.prepare_model`), recognizes
decomposed operators (:func:`cimflow.frontend.fusion.fuse`) and emits one
``func.func`` of ``cim_graph`` operators. Weights stay in the file: each
initializer becomes a ``cim_graph.weight`` naming it, and
:func:`load_weights` returns their values for functional simulation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import onnx.external_data_helper
from onnx import ModelProto, NodeProto, TensorProto
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from cimflow.cimdialect.cim_graph import (
    NODE_ATTR,
    BinaryKind,
    BinaryOp,
    CastOp,
    ClipOp,
    ConcatOp,
    ConstantOp,
    ConvOp,
    ExpandOp,
    GatherOp,
    GlobalPoolOp,
    LayerNormOp,
    LinearOp,
    MatMulOp,
    PadMode,
    PadOp,
    PoolKind,
    PoolOp,
    ReduceKind,
    ReduceOp,
    ReshapeOp,
    RMSNormOp,
    SliceOp,
    SoftmaxOp,
    SplitOp,
    TransposeOp,
    UnaryKind,
    UnaryOp,
    WeightOp,
    WeightSourceAttr,
    WhereOp,
    element_type,
    tensor_shape,
)
from cimflow.cimdialect.shapes import broadcast_shapes, conv_output_size
from cimflow.errors import CimError
from cimflow.frontend.common import (
    DEFAULT_DOMAINS,
    Array,
    NodeError,
    attr_float,
    attr_int,
    attr_ints,
    attr_str,
    check_dim_names,
    constant_node_value,
    default_opset,
    has_data,
    is_external,
    num_elements,
    op_key,
    tensor_to_array,
    with_origin,
)
from cimflow.frontend.fusion import FUSED_DOMAIN, fuse
from cimflow.frontend.model_file import load_model
from cimflow.frontend.params import reduce_axes, slice_params, split_sizes
from cimflow.frontend.prepare import (
    QUANTIZATION_KEY,
    ValueType,
    opaque_initializers,
    prepare,
    prepare_model,
    value_type,
)
from cimflow.frontend.supported import (
    BINARY_OPS,
    REDUCE_OPS,
    UNARY_OPS,
    unsupported_op,
)

__all__ = [
    "ModelWeights",
    "WeightQuantization",
    "check_model_dims",
    "import_onnx",
    "load_model_weights",
    "load_weights",
    "onnx_frontend",
    "prepare_model",
]

NAME_ATTR = "cim_graph.name"
"""Argument and result attribute holding the ONNX input or output name."""

SOURCE_ATTR = "cim_graph.source"
"""Module attribute holding the :class:`WeightSourceAttr` of the model file."""


_FLOAT32_MAX = float(np.finfo(np.float32).max)

_ELEMENT_TYPES: dict[int, Attribute] = {
    TensorProto.FLOAT: f32,
    TensorProto.FLOAT16: f16,
    TensorProto.DOUBLE: f64,
    TensorProto.BFLOAT16: BFloat16Type(),
    TensorProto.INT64: i64,
    TensorProto.INT32: i32,
    TensorProto.INT16: i16,
    TensorProto.INT8: i8,
    TensorProto.UINT8: IntegerType(8, Signedness.UNSIGNED),
    TensorProto.BOOL: i1,
}


@dataclass(frozen=True)
class WeightQuantization:
    """A float weight that is ``(q - zero_point) * scale`` of integers ``q``
    (a ``DequantizeLinear`` of an integer initializer): one scale and zero
    point for the whole tensor, or one per index of dimension ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int


@dataclass(frozen=True)
class ModelWeights:
    """What :func:`load_model_weights` returns."""

    values: dict[str, np.ndarray]
    """Every initializer of the prepared model, by name."""
    quantization: dict[str, WeightQuantization]
    """The weights among them that are dequantized integers."""


def load_weights(path: Path, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Every initializer of the prepared model, by name, with its values.

    The model is loaded with its external data and prepared exactly as
    :func:`import_onnx` prepares it, so the names match the
    ``cim_graph.weight`` operations of the imported module. Raises
    :class:`CimError` when the weight data is absent.
    """
    return load_model_weights(path, dims).values


def load_model_weights(path: Path, dims: Mapping[str, int]) -> ModelWeights:
    """:func:`load_weights` and the quantization of the weights that are
    dequantized integers (what ``cim-verify``'s quantized mode honours)."""
    model = load_model(path)
    opaque = opaque_initializers(model)
    directory = str(Path(path).parent)
    for tensor in model.graph.initializer:
        if is_external(tensor):
            try:
                onnx.external_data_helper.load_external_data_for_tensor(
                    tensor, directory
                )
            except Exception as e:
                message = " ".join(str(e).split()) or type(e).__name__
                raise CimError(
                    f"{path}: the weight data of '{tensor.name}' is not "
                    f"available: {message}"
                ) from None
            tensor.data_location = TensorProto.DEFAULT
            del tensor.external_data[:]
    try:
        onnx.external_data_helper.load_external_data_for_model(model, directory)
    except Exception as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise CimError(f"{path}: the weight data is not available: {message}") from e
    prepared = prepare(model, dims, str(path), opaque)
    weights: dict[str, np.ndarray] = {}
    for tensor in prepared.graph.initializer:
        if not has_data(tensor):
            raise CimError(
                f"{path}: the weight data of '{tensor.name}' is not available"
            )
        try:
            weights[tensor.name] = tensor_to_array(tensor)
        except ValueError as e:
            raise CimError(
                f"{path}: the weight data of '{tensor.name}' is malformed: "
                f"{' '.join(str(e).split())}"
            ) from None
    return ModelWeights(weights, weight_quantization(prepared))


def weight_quantization(prepared: ModelProto) -> dict[str, WeightQuantization]:
    """The quantization :func:`prepare_model` recorded in a prepared model."""
    found: dict[str, WeightQuantization] = {}
    for entry in prepared.metadata_props:
        if entry.key != QUANTIZATION_KEY:
            continue
        records = cast(dict[str, dict[str, Any]], json.loads(entry.value))
        for name, record in records.items():
            found[name] = WeightQuantization(
                tuple(float(v) for v in record["scale"]),
                tuple(int(v) for v in record["zero_point"]),
                int(record["axis"]),
            )
    return found


def import_onnx(
    path: Path, dims: Mapping[str, int] | None = None, *, check_dims: bool = False
) -> ModuleOp:
    """The ``cim_graph`` module of an ONNX model; weights are not loaded.

    ``dims`` gives values to symbolic input dimensions (``{"batch": 1}``);
    names the model does not have are ignored unless ``check_dims``.
    """
    model = load_model(Path(path))
    if check_dims:
        _check_dims(model, dims or {}, str(path))
    prepared = prepare_model(model, dims or {}, str(path))
    module = import_prepared(prepared, str(path), str(path))
    # absolute, so that the trace finds the weights from any directory
    module.attributes[SOURCE_ATTR] = WeightSourceAttr(str(Path(path).resolve()), dims)
    return module


def check_model_dims(path: Path, dims: Mapping[str, int]) -> None:
    """Raise :class:`CimError` if a name in ``dims`` (``--dim NAME=VALUE``)
    is not a symbolic input dimension of the model at ``path``."""
    _check_dims(load_model(Path(path)), dims, str(path))


def _check_dims(model: ModelProto, dims: Mapping[str, int], origin: str) -> None:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    check_dim_names(inputs, dims, origin)


def onnx_frontend(path_str: str, dims: Mapping[str, int]) -> ModuleOp:
    """Entry point of the ``cim-opt`` driver for ``.onnx`` inputs: every
    ``--dim`` must name a symbolic input dimension of the model."""
    return import_onnx(Path(path_str), dims, check_dims=True)


def import_prepared(model: ModelProto, origin: str, source: str) -> ModuleOp:
    """Emit the module of a model already returned by :func:`prepare_model`."""
    try:
        return _Importer(model, origin, source).run()
    except NodeError as error:
        raise with_origin(error, origin) from None


def sanitize_identifier(name: str, default: str = "main") -> str:
    """``name`` with characters outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not cleaned:
        return default
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def dense_attr(value: Array, tensor_type: TensorType) -> DenseIntOrFPElementsAttr:
    """A dense elements attribute holding ``value`` as ``tensor_type``.

    Infinities become the largest finite value of the type (masks use them
    as "minus infinity"): xDSL 0.74 prints them as hex bit patterns that its
    parser reads back as integers.
    """
    element = tensor_type.element_type
    shape = tensor_type.get_shape()
    if isinstance(element, IntegerType):
        integer = cast("IntegerType[int, Signedness]", element)
        typed = TensorType(integer, shape)
        if integer.width.data == 1:
            flags = [int(v) for v in value.reshape(-1).astype(np.bool_)]
            return DenseIntOrFPElementsAttr.from_list(typed, flags)
        data = value.astype(np.dtype(integer.format)).tobytes()
        return DenseIntOrFPElementsAttr(typed, BytesAttr(data))
    if isinstance(element, Float16Type | Float32Type | Float64Type):
        typed = TensorType(element, shape)
        dtype = np.dtype(element.format)
        limit = np.finfo(dtype).max
        data = np.clip(value.astype(dtype), -limit, limit).tobytes()
        return DenseIntOrFPElementsAttr(typed, BytesAttr(data))
    raise ValueError(f"constants of element type {element} are not supported")


Handler = Callable[["_Importer", NodeProto], None]


class _Importer:
    def __init__(self, model: ModelProto, origin: str, source: str):
        self.model = model
        self.origin = origin
        self.source = source
        self.opset = default_opset(model)
        graph = model.graph
        self.inits = {t.name: t for t in graph.initializer}
        self.types: dict[str, ValueType] = {}
        for tensor in graph.initializer:
            self.types[tensor.name] = (
                tensor.data_type,
                tuple(int(d) for d in tensor.dims),
            )
        for info in (*graph.input, *graph.value_info, *graph.output):
            found = value_type(info)
            if found is not None:
                self.types[info.name] = found
        self.constants: dict[str, Array] = {}
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
                value = constant_node_value(node)
                self.constants[node.output[0]] = value
                self.types[node.output[0]] = (
                    onnx.helper.np_dtype_to_tensor_dtype(value.dtype),
                    tuple(value.shape),
                )
        self.values: dict[str, SSAValue] = {}
        self.block = Block()
        self.node: NodeProto = NodeProto()
        self.emitted: list[Operation] = []

    # -- values ---------------------------------------------------------------

    def fail(self, message: str) -> CimError:
        node = self.node
        return CimError(
            f"{self.origin}: node '{node.name}' ({node.op_type}): {message}"
        )

    def tensor_type(self, name: str) -> TensorType:
        found = self.types.get(name)
        if found is None or found[1] is None:
            raise CimError(
                f"{self.origin}: cannot infer a static shape for '{name}'"
                + (f" of node '{self.node.name}'" if self.node.name else "")
            )
        element = _ELEMENT_TYPES.get(found[0])
        if element is None:
            raise CimError(
                f"{self.origin}: '{name}' has unsupported element type "
                f"{TensorProto.DataType.Name(found[0])}"
            )
        return TensorType(element, found[1])

    def shape(self, name: str) -> tuple[int, ...]:
        found = self.types.get(name)
        if found is None or found[1] is None:
            self.tensor_type(name)
            raise AssertionError
        return found[1]

    def emit(self, op: Operation) -> Operation:
        self.block.add_op(op)
        self.emitted.append(op)
        node = getattr(self, "node", None)
        if node is not None and node.name:
            op.attributes[NODE_ATTR] = StringAttr(node.name)
        return op

    def operand(self, name: str) -> SSAValue:
        value = self.values.get(name)
        if value is not None:
            return value
        if name in self.inits:
            op = self.emit(WeightOp(name, self.tensor_type(name)))
        elif name in self.constants:
            op = self.emit(self.constant_op(self.constants[name], name))
        else:
            raise CimError(
                f"{self.origin}: node '{self.node.name}' uses '{name}', which no "
                "node defines"
            )
        value = op.results[0]
        self.values[name] = value
        return value

    def constant_op(self, value: Array, name: str) -> ConstantOp:
        tensor_type = self.tensor_type(name) if name in self.types else None
        if tensor_type is None:
            raise self.fail(f"no type for constant '{name}'")
        try:
            return ConstantOp(dense_attr(value, tensor_type))
        except ValueError as e:
            raise self.fail(str(e)) from e

    def new_constant(self, value: Array, element: Attribute) -> SSAValue:
        tensor_type = TensorType(element, value.shape)
        return self.emit(ConstantOp(dense_attr(value, tensor_type))).results[0]

    def const_value(self, name: str) -> Array | None:
        """The value of a constant or initializer with data, else None."""
        if not name:
            return None
        if name in self.constants:
            return self.constants[name]
        tensor = self.inits.get(name)
        if tensor is not None and has_data(tensor):
            return tensor_to_array(tensor)
        return None

    def required_const(self, index: int, what: str) -> Array:
        node = self.node
        if len(node.input) <= index or not node.input[index]:
            raise self.fail(f"missing {what}")
        value = self.const_value(node.input[index])
        if value is None:
            raise self.fail(f"{what} '{node.input[index]}' must be a constant")
        return value

    def optional_inputs(self) -> list[Array | None]:
        return [self.const_value(name) for name in self.node.input]

    def bind(self, name: str, value: SSAValue | Operation) -> None:
        self.values[name] = value if isinstance(value, SSAValue) else value.results[0]

    def alias(self) -> None:
        self.bind(self.node.output[0], self.operand(self.node.input[0]))

    def out_type(self, index: int = 0) -> TensorType:
        return self.tensor_type(self.node.output[index])

    def normalize_axis(self, axis: int, rank: int) -> int:
        normalized = axis + rank if axis < 0 else axis
        if not 0 <= normalized < rank:
            raise self.fail(f"axis {axis} is out of range for rank {rank}")
        return normalized

    # -- driver ---------------------------------------------------------------

    def run(self) -> ModuleOp:
        graph = self.model.graph
        arg_types: list[Attribute] = []
        for info in graph.input:
            arg_types.append(self.tensor_type(info.name))
        self.block = Block(arg_types=arg_types)
        for info, arg in zip(graph.input, self.block.args, strict=True):
            arg.name_hint = sanitize_identifier(info.name, "arg")
            self.values[info.name] = arg
        nodes = fuse(self.model, self.const_value, self.types)
        for node in nodes:
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
                continue
            self.node = node
            self.emitted = []
            self.import_node(node)
            for op in self.emitted:
                try:
                    op.verify()
                except VerifyException as e:
                    raise self.fail(f"produced invalid IR: {e}") from e
        self.node = NodeProto()
        results = [self.operand(o.name) for o in graph.output]
        for info, result in zip(graph.output, results, strict=True):
            if isinstance(result.owner, WeightOp | ConstantOp):
                raise CimError(
                    f"{self.origin}: graph output '{info.name}' is a constant (an "
                    "initializer, or computed from constants only); constant "
                    "outputs are not supported"
                )
        self.block.add_op(ReturnOp(*results))
        func = FuncOp(
            sanitize_identifier(graph.name),
            (arg_types, [r.type for r in results]),
            Region(self.block),
            arg_attrs=ArrayAttr(
                [DictionaryAttr({NAME_ATTR: StringAttr(i.name)}) for i in graph.input]
            ),
            res_attrs=ArrayAttr(
                [DictionaryAttr({NAME_ATTR: StringAttr(o.name)}) for o in graph.output]
            ),
        )
        module = ModuleOp([func])
        module.attributes[SOURCE_ATTR] = WeightSourceAttr(self.source)
        return module

    def import_node(self, node: NodeProto) -> None:
        if node.domain == FUSED_DOMAIN:
            handler = _FUSED_HANDLERS.get(node.op_type)
        elif node.domain in DEFAULT_DOMAINS:
            handler = _HANDLERS.get(node.op_type)
        else:
            handler = None
        if handler is None:
            raise CimError(f"{self.origin}: {unsupported_op(node.name, op_key(node))}")
        handler(self, node)

    # -- elementwise ----------------------------------------------------------

    def unary(self, node: NodeProto) -> None:
        kind = UnaryKind(UNARY_OPS[node.op_type])
        if node.op_type == "Gelu" and attr_str(node, "approximate", "none") == "tanh":
            kind = UnaryKind.GELU_TANH
        self.bind(node.output[0], self.emit(UnaryOp(kind, self.operand(node.input[0]))))

    def silu(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        self.bind(node.output[0], self.emit(UnaryOp(UnaryKind.SILU, x)))

    def binary(self, node: NodeProto) -> None:
        kind = BinaryKind(BINARY_OPS[node.op_type])
        if node.op_type in ("Max", "Min") and len(node.input) != 2:
            self.variadic(node, kind)
            return
        lhs, rhs = self.operand(node.input[0]), self.operand(node.input[1])
        self.bind(node.output[0], self.emit(BinaryOp(kind, lhs, rhs, self.out_type())))

    def variadic(self, node: NodeProto, kind: BinaryKind) -> None:
        result = self.operand(node.input[0])
        for name in node.input[1:]:
            rhs = self.operand(name)
            shape = broadcast_shapes(_shape_of(result), _shape_of(rhs))
            if shape is None:
                raise self.fail("operands do not broadcast")
            out = TensorType(_element_of(result), shape)
            result = self.emit(BinaryOp(kind, result, rhs, out)).results[0]
        self.bind(node.output[0], result)

    def compare_or_equal(self, node: NodeProto) -> None:
        """``a <= b`` as ``not (a > b)`` and ``a >= b`` as ``not (a < b)``."""
        kind = BinaryKind.GREATER if node.op_type == "LessOrEqual" else BinaryKind.LESS
        lhs, rhs = self.operand(node.input[0]), self.operand(node.input[1])
        strict = self.emit(BinaryOp(kind, lhs, rhs, self.out_type())).results[0]
        self.bind(node.output[0], self.emit(UnaryOp(UnaryKind.NOT, strict)))

    def where(self, node: NodeProto) -> None:
        cond, a, b = (self.operand(n) for n in node.input[:3])
        self.bind(node.output[0], self.emit(WhereOp(cond, a, b, self.out_type())))

    def cast(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        out = self.out_type()
        if x.type == out:
            self.bind(node.output[0], x)
            return
        self.bind(node.output[0], self.emit(CastOp(x, out)))

    def clip(self, node: NodeProto) -> None:
        low, high = -_FLOAT32_MAX, _FLOAT32_MAX
        if self.opset >= 11:
            for index in (1, 2):
                if len(node.input) > index and node.input[index]:
                    value = self.required_const(index, "clip bound")
                    if index == 1:
                        low = float(value.reshape(-1)[0])
                    else:
                        high = float(value.reshape(-1)[0])
        else:
            low = attr_float(node, "min", low)
            high = attr_float(node, "max", high)
        low, high = max(low, -_FLOAT32_MAX), min(high, _FLOAT32_MAX)
        x = self.operand(node.input[0])
        self.bind(node.output[0], self.emit(ClipOp(x, low, high)))

    # -- weight-stationary ----------------------------------------------------

    def weight(self, index: int, what: str) -> SSAValue:
        name = self.node.input[index]
        if name not in self.inits:
            raise self.fail(
                f"{what} '{name}' must be an initializer (weights are mapped to "
                "the crossbar arrays)"
            )
        return self.operand(name)

    def optional_operand(self, index: int) -> SSAValue | None:
        node = self.node
        if len(node.input) > index and node.input[index]:
            return self.operand(node.input[index])
        return None

    def conv(self, node: NodeProto) -> None:
        in_shape, w_shape = self.shape(node.input[0]), self.shape(node.input[1])
        if len(in_shape) != 4 or len(w_shape) != 4:
            raise self.fail(
                "only 2-D convolutions (4-D input and weight) are supported"
            )
        weight = self.weight(1, "weight")
        strides = attr_ints(node, "strides") or [1, 1]
        dilations = attr_ints(node, "dilations") or [1, 1]
        pads = self.window_pads(in_shape[2:], w_shape[2:], strides, dilations)
        x = self.operand(node.input[0])
        bias = self.optional_operand(2)
        groups = attr_int(node, "group", 1)
        op = ConvOp(x, weight, bias, strides, pads, dilations, groups, self.out_type())
        self.bind(node.output[0], self.emit(op))

    def window_pads(
        self,
        spatial: Sequence[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> list[int]:
        """ONNX ``[begins..., ends...]`` pads, resolving ``auto_pad``."""
        node = self.node
        auto_pad = attr_str(node, "auto_pad", "NOTSET")
        rank = len(spatial)
        if auto_pad in ("NOTSET", ""):
            return attr_ints(node, "pads") or [0] * (2 * rank)
        if auto_pad == "VALID":
            return [0] * (2 * rank)
        if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            raise self.fail(f"unknown auto_pad '{auto_pad}'")
        begins: list[int] = []
        ends: list[int] = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        return begins + ends

    def linear(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        weight = self.weight(1, "weight")
        bias = self.optional_operand(2)
        transpose = attr_int(node, "transpose_weight", 0) != 0
        op = LinearOp(x, weight, bias, transpose, self.out_type())
        self.bind(node.output[0], self.emit(op))

    def matmul(self, node: NodeProto) -> None:
        a, b = node.input[0], node.input[1]
        if b in self.inits and len(self.shape(b)) == 2 and len(self.shape(a)) >= 1:
            op = LinearOp(
                self.operand(a), self.operand(b), None, False, self.out_type()
            )
            self.bind(node.output[0], self.emit(op))
            return
        lhs, rhs = self.operand(a), self.operand(b)
        lhs_shape, rhs_shape = self.shape(a), self.shape(b)
        out = self.out_type()
        if len(lhs_shape) >= 2 and len(rhs_shape) >= 2:
            self.bind(node.output[0], self.emit(MatMulOp(lhs, rhs, out)))
            return
        if len(lhs_shape) == 1:
            lhs = self.reshape(lhs, (1, *lhs_shape))
        if len(rhs_shape) == 1:
            rhs = self.reshape(rhs, (*rhs_shape, 1))
        lhs2, rhs2 = _shape_of(lhs), _shape_of(rhs)
        batch = broadcast_shapes(lhs2[:-2], rhs2[:-2]) or ()
        full = TensorType(out.element_type, (*batch, lhs2[-2], rhs2[-1]))
        product = self.emit(MatMulOp(lhs, rhs, full)).results[0]
        self.bind(node.output[0], self.reshape(product, out.get_shape()))

    def reshape(self, value: SSAValue, shape: Sequence[int]) -> SSAValue:
        out = TensorType(_element_of(value), shape)
        if value.type == out:
            return value
        return self.emit(ReshapeOp(value, out)).results[0]

    def transpose_2d(self, value: SSAValue) -> SSAValue:
        rows, cols = _shape_of(value)
        out = TensorType(_element_of(value), (cols, rows))
        return self.emit(TransposeOp(value, (1, 0), out)).results[0]

    def gemm(self, node: NodeProto) -> None:
        alpha = attr_float(node, "alpha", 1.0)
        beta = attr_float(node, "beta", 1.0)
        trans_a = attr_int(node, "transA", 0) != 0
        trans_b = attr_int(node, "transB", 0) != 0
        out = self.out_type()
        a = self.operand(node.input[0])
        if trans_a:
            a = self.transpose_2d(a)
        c_name = node.input[2] if len(node.input) > 2 else ""
        n = out.get_shape()[-1]
        c_as_bias = (
            bool(c_name)
            and alpha == 1.0
            and beta == 1.0
            and self.shape(c_name) in ((n,), (1, n))
        )
        if node.input[1] in self.inits:
            weight = self.operand(node.input[1])
            bias = self.operand(c_name) if c_as_bias else None
            result = self.emit(LinearOp(a, weight, bias, trans_b, out)).results[0]
        else:
            b = self.operand(node.input[1])
            if trans_b:
                b = self.transpose_2d(b)
            bias = self.operand(c_name) if c_as_bias else None
            result = self.emit(MatMulOp(a, b, out)).results[0]
            if bias is not None:
                add = BinaryOp(BinaryKind.ADD, result, bias, out)
                result = self.emit(add).results[0]
        if alpha != 1.0:
            scale = self.new_constant(
                np.array(alpha, dtype=np.float32), out.element_type
            )
            result = self.emit(BinaryOp(BinaryKind.MUL, result, scale, out)).results[0]
        if c_name and not c_as_bias and beta != 0.0:
            c = self.operand(c_name)
            if beta != 1.0:
                scale = self.new_constant(
                    np.array(beta, dtype=np.float32), out.element_type
                )
                c_type = TensorType(out.element_type, self.shape(c_name))
                c = self.emit(BinaryOp(BinaryKind.MUL, c, scale, c_type)).results[0]
            result = self.emit(BinaryOp(BinaryKind.ADD, result, c, out)).results[0]
        self.bind(node.output[0], result)

    # -- normalization and reductions -----------------------------------------

    def softmax(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        shape = self.shape(node.input[0])
        rank = len(shape)
        default = -1 if self.opset >= 13 else 1
        axis = self.normalize_axis(attr_int(node, "axis", default), rank)
        if self.opset >= 13 or axis == rank - 1:
            self.bind(node.output[0], self.emit(SoftmaxOp(x, axis)))
            return
        rows = num_elements(shape[:axis])
        flat = self.reshape(x, (rows, num_elements(shape[axis:])))
        result = self.emit(SoftmaxOp(flat, 1)).results[0]
        self.bind(node.output[0], self.reshape(result, shape))

    def layer_norm(self, node: NodeProto) -> None:
        if any(o for o in node.output[1:]):
            raise self.fail("the Mean and InvStdDev outputs are not supported")
        x = self.operand(node.input[0])
        rank = len(self.shape(node.input[0]))
        axis = self.normalize_axis(attr_int(node, "axis", -1), rank)
        scale = self.operand(node.input[1])
        bias = self.optional_operand(2)
        eps = attr_float(node, "epsilon", 1e-5)
        self.bind(node.output[0], self.emit(LayerNormOp(x, scale, bias, axis, eps)))

    def rms_norm(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        rank = len(self.shape(node.input[0]))
        axis = self.normalize_axis(attr_int(node, "axis", -1), rank)
        scale = self.operand(node.input[1])
        eps = attr_float(node, "epsilon", 1e-5)
        self.bind(node.output[0], self.emit(RMSNormOp(x, scale, axis, eps)))

    def reduce(self, node: NodeProto) -> None:
        rank = len(self.shape(node.input[0]))
        axes = reduce_axes(node, self.optional_inputs(), self.opset, rank)
        if axes is None:
            raise self.fail("the axes must be a constant")
        if not axes:
            self.alias()
            return
        keepdims = attr_int(node, "keepdims", 1) != 0
        kind = ReduceKind(REDUCE_OPS[node.op_type])
        x = self.operand(node.input[0])
        op = ReduceOp(kind, x, axes, keepdims, self.out_type())
        self.bind(node.output[0], self.emit(op))

    def pool(self, node: NodeProto) -> None:
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            raise self.fail("the Indices output is not supported")
        shape = self.shape(node.input[0])
        kernel = attr_ints(node, "kernel_shape") or []
        if len(shape) != 4 or len(kernel) != 2:
            raise self.fail("only 2-D pooling (4-D input) is supported")
        strides = attr_ints(node, "strides") or [1, 1]
        dilations = attr_ints(node, "dilations") or [1, 1]
        if dilations != [1, 1]:
            raise self.fail("dilated pooling is not supported")
        pads = self.window_pads(shape[2:], kernel, strides, dilations)
        out = self.out_type()
        floor_shape = [
            conv_output_size(
                shape[2 + i], kernel[i], strides[i], pads[i], pads[2 + i], 1
            )
            for i in range(2)
        ]
        if list(out.get_shape()[2:]) != floor_shape:
            raise self.fail("ceil_mode=1 is not supported")
        kind = PoolKind.MAX if node.op_type == "MaxPool" else PoolKind.AVG
        count_include_pad = attr_int(node, "count_include_pad", 0) != 0
        x = self.operand(node.input[0])
        op = PoolOp(kind, x, kernel, strides, pads, count_include_pad, out)
        self.bind(node.output[0], self.emit(op))

    def global_pool(self, node: NodeProto) -> None:
        kind = PoolKind.MAX if node.op_type == "GlobalMaxPool" else PoolKind.AVG
        x = self.operand(node.input[0])
        self.bind(node.output[0], self.emit(GlobalPoolOp(kind, x, self.out_type())))

    # -- data movement --------------------------------------------------------

    def reshape_like(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        self.bind(node.output[0], self.reshape(x, self.out_type().get_shape()))

    def transpose(self, node: NodeProto) -> None:
        rank = len(self.shape(node.input[0]))
        perm = attr_ints(node, "perm") or list(range(rank))[::-1]
        x = self.operand(node.input[0])
        if perm == list(range(rank)):
            self.bind(node.output[0], x)
            return
        self.bind(node.output[0], self.emit(TransposeOp(x, perm, self.out_type())))

    def concat(self, node: NodeProto) -> None:
        names = [n for n in node.input if n]
        rank = len(self.shape(names[0]))
        axis = self.normalize_axis(attr_int(node, "axis", 0), rank)
        if len(names) == 1:
            self.alias()
            return
        inputs = [self.operand(n) for n in names]
        self.bind(node.output[0], self.emit(ConcatOp(inputs, axis, self.out_type())))

    def split(self, node: NodeProto) -> None:
        shape = self.shape(node.input[0])
        axis = self.normalize_axis(attr_int(node, "axis", 0), len(shape))
        sizes = split_sizes(
            node, self.optional_inputs(), self.opset, shape[axis], len(node.output)
        )
        if sizes is None:
            raise self.fail("the split sizes must be a constant")
        x = self.operand(node.input[0])
        if len(node.output) == 1:
            self.bind(node.output[0], x)
            return
        types = [self.out_type(i) for i in range(len(node.output))]
        op = self.emit(SplitOp(x, axis, types))
        for name, result in zip(node.output, op.results, strict=True):
            self.bind(name, result)

    def slice(self, node: NodeProto) -> None:
        shape = self.shape(node.input[0])
        try:
            params = slice_params(node, self.optional_inputs(), self.opset, shape)
        except ValueError as e:
            raise self.fail(f"slice steps must be positive ({e})") from e
        if params is None:
            raise self.fail("the slice bounds must be constants")
        starts, ends, steps = params
        x = self.operand(node.input[0])
        if (
            starts == [0] * len(shape)
            and ends == list(shape)
            and steps == [1] * len(shape)
        ):
            self.bind(node.output[0], x)
            return
        op = SliceOp(x, starts, ends, steps, self.out_type())
        self.bind(node.output[0], self.emit(op))

    def gather(self, node: NodeProto) -> None:
        data_shape = self.shape(node.input[0])
        axis = self.normalize_axis(attr_int(node, "axis", 0), len(data_shape))
        data = self.operand(node.input[0])
        indices_value = self.const_value(node.input[1])
        if indices_value is not None and bool(np.any(indices_value < 0)):
            normalized = np.where(
                indices_value < 0, indices_value + data_shape[axis], indices_value
            ).astype(np.int64)
            indices = self.new_constant(normalized, i64)
        else:
            indices = self.operand(node.input[1])
        self.bind(
            node.output[0], self.emit(GatherOp(data, indices, axis, self.out_type()))
        )

    def pad(self, node: NodeProto) -> None:
        shape = self.shape(node.input[0])
        rank = len(shape)
        mode = attr_str(node, "mode", "constant")
        if mode not in ("constant", "reflect", "edge"):
            raise self.fail(f"pad mode '{mode}' is not supported")
        if self.opset >= 11:
            given = [int(v) for v in self.required_const(1, "pads").reshape(-1)]
            value_array = (
                self.const_value(node.input[2]) if len(node.input) > 2 else None
            )
            if len(node.input) > 2 and node.input[2] and value_array is None:
                raise self.fail("the pad value must be a constant")
            value = 0.0 if value_array is None else float(value_array.reshape(-1)[0])
            axes_value = (
                self.const_value(node.input[3]) if len(node.input) > 3 else None
            )
        else:
            given = attr_ints(node, "pads") or []
            value = attr_float(node, "value", 0.0)
            axes_value = None
        if axes_value is not None:
            axes = [self.normalize_axis(int(a), rank) for a in axes_value.reshape(-1)]
            pads = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                pads[axis] = given[i]
                pads[rank + axis] = given[len(axes) + i]
        else:
            pads = given
        if len(pads) != 2 * rank:
            raise self.fail(f"expected {2 * rank} pads, got {len(pads)}")
        if min(pads) < 0:
            raise self.fail("negative pads are not supported")
        x = self.operand(node.input[0])
        if not any(pads):
            self.bind(node.output[0], x)
            return
        op = PadOp(PadMode(mode), x, pads, value, self.out_type())
        self.bind(node.output[0], self.emit(op))

    def expand(self, node: NodeProto) -> None:
        x = self.operand(node.input[0])
        out = self.out_type()
        if x.type == out:
            self.bind(node.output[0], x)
            return
        self.bind(node.output[0], self.emit(ExpandOp(x, out)))

    def identity(self, node: NodeProto) -> None:
        if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
            raise self.fail("the mask output of Dropout is not supported")
        self.alias()


def _shape_of(value: SSAValue) -> tuple[int, ...]:
    return tensor_shape(value)


def _element_of(value: SSAValue) -> Attribute:
    return element_type(value)


_HANDLERS: dict[str, Handler] = {
    **{op: _Importer.unary for op in UNARY_OPS},
    **{op: _Importer.binary for op in BINARY_OPS},
    **{op: _Importer.reduce for op in REDUCE_OPS},
    "LessOrEqual": _Importer.compare_or_equal,
    "GreaterOrEqual": _Importer.compare_or_equal,
    "Where": _Importer.where,
    "Cast": _Importer.cast,
    "Clip": _Importer.clip,
    "Conv": _Importer.conv,
    "MatMul": _Importer.matmul,
    "Gemm": _Importer.gemm,
    "Softmax": _Importer.softmax,
    "LayerNormalization": _Importer.layer_norm,
    "MaxPool": _Importer.pool,
    "AveragePool": _Importer.pool,
    "GlobalAveragePool": _Importer.global_pool,
    "GlobalMaxPool": _Importer.global_pool,
    "Reshape": _Importer.reshape_like,
    "Flatten": _Importer.reshape_like,
    "Squeeze": _Importer.reshape_like,
    "Unsqueeze": _Importer.reshape_like,
    "Transpose": _Importer.transpose,
    "Concat": _Importer.concat,
    "Split": _Importer.split,
    "Slice": _Importer.slice,
    "Gather": _Importer.gather,
    "Pad": _Importer.pad,
    "Expand": _Importer.expand,
    "Identity": _Importer.identity,
    "Dropout": _Importer.identity,
}

_FUSED_HANDLERS: dict[str, Handler] = {
    "Linear": _Importer.linear,
    "RMSNorm": _Importer.rms_norm,
    "Silu": _Importer.silu,
}
