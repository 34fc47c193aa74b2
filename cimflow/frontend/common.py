"""Helpers shared by the ONNX frontend: attributes, tensors, element types."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import AttributeProto, NodeProto, TensorProto, ValueInfoProto, numpy_helper

from cimflow.errors import CimError

Array = npt.NDArray[Any]
"""A numpy array of any element type."""

ValueType = tuple[int, tuple[int, ...] | None]
"""ONNX element type and static shape (None when not fully known)."""

DEFAULT_DOMAINS = ("", "ai.onnx")


def node_label(node: NodeProto, index: int | None = None) -> str:
    """The name of ``node`` for messages, or ``#index`` when it has none."""
    if node.name:
        return node.name
    return f"#{index}" if index is not None else f"<{node.op_type}>"


def op_key(node: NodeProto) -> str:
    """The op type, prefixed with its domain outside the default ONNX domain."""
    if node.domain in DEFAULT_DOMAINS:
        return node.op_type
    return f"{node.domain}.{node.op_type}"


class NodeError(CimError):
    """A problem with one node, reported without the model's file name.

    The helpers here do not know which file a node comes from; the
    frontend's entry points prefix the file (see :func:`with_origin`).
    """


def with_origin(error: NodeError, origin: str) -> CimError:
    """``error`` as a :class:`CimError` naming the model file ``origin``."""
    return CimError(f"{origin}: {error}")


def node_error(node: NodeProto, message: str) -> NodeError:
    """A :class:`NodeError` naming ``node`` and its op type."""
    return NodeError(f"node '{node_label(node)}' ({op_key(node)}): {message}")


def find_attr(node: NodeProto, name: str) -> AttributeProto | None:
    for attr in node.attribute:
        if attr.name == name:
            return attr
    return None


def typed_attr(node: NodeProto, name: str, expected: int) -> AttributeProto | None:
    """The attribute ``name`` of ``node``, which must be of type ``expected``.

    Every attribute the frontend reads goes through here, so an attribute of
    the wrong type (``axis="1"``) is an error naming the node, the attribute
    and both types instead of being read as a default.
    """
    attr = find_attr(node, name)
    if attr is not None and attr.type != expected:
        given = AttributeProto.AttributeType.Name(attr.type)
        wanted = AttributeProto.AttributeType.Name(expected)
        raise node_error(
            node, f"attribute '{name}' must be of type {wanted}, got {given}"
        )
    return attr


def attr_int(node: NodeProto, name: str, default: int) -> int:
    attr = typed_attr(node, name, AttributeProto.INT)
    return default if attr is None else int(attr.i)


def attr_float(node: NodeProto, name: str, default: float) -> float:
    attr = typed_attr(node, name, AttributeProto.FLOAT)
    return default if attr is None else float(attr.f)


def attr_str(node: NodeProto, name: str, default: str) -> str:
    attr = typed_attr(node, name, AttributeProto.STRING)
    if attr is None:
        return default
    try:
        return attr.s.decode()
    except UnicodeDecodeError:
        raise node_error(node, f"attribute '{name}' is not UTF-8 text") from None


def attr_ints(node: NodeProto, name: str) -> list[int] | None:
    attr = typed_attr(node, name, AttributeProto.INTS)
    return None if attr is None else [int(v) for v in attr.ints]


def attr_floats(node: NodeProto, name: str) -> list[float] | None:
    attr = typed_attr(node, name, AttributeProto.FLOATS)
    return None if attr is None else [float(v) for v in attr.floats]


def attr_strs(node: NodeProto, name: str) -> list[str] | None:
    attr = typed_attr(node, name, AttributeProto.STRINGS)
    if attr is None:
        return None
    try:
        return [s.decode() for s in attr.strings]
    except UnicodeDecodeError:
        raise node_error(node, f"attribute '{name}' is not UTF-8 text") from None


def attr_tensor(node: NodeProto, name: str) -> TensorProto | None:
    attr = typed_attr(node, name, AttributeProto.TENSOR)
    return None if attr is None else attr.t


def shape_text(info: ValueInfoProto) -> str:
    """The declared shape of a value, symbolic dimensions by name: ``[batch, 3]``."""
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
        for d in info.type.tensor_type.shape.dim
    ]
    return f"[{', '.join(dims)}]"


def input_shape_problem(info: ValueInfoProto) -> str | None:
    """What keeps a graph input from having a static shape once its symbolic
    dimensions get values, or None."""
    if not info.type.HasField("tensor_type"):
        return f"input '{info.name}' is not a tensor"
    tensor_type = info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return (
            f"input '{info.name}' has no shape; re-export the model with input shapes"
        )
    for index, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            if dim.dim_value == 0:
                return (
                    f"input '{info.name}' has zero-size dimension {index} (shape "
                    f"{shape_text(info)}); empty tensors are not supported"
                )
            if dim.dim_value < 0:
                return (
                    f"input '{info.name}' has negative dimension {index} (shape "
                    f"{shape_text(info)})"
                )
        elif not dim.dim_param:
            return (
                f"input '{info.name}' has an unnamed dynamic dimension {index}; "
                "re-export it with a named or static dimension"
            )
    return None


def symbolic_dims(inputs: Iterable[ValueInfoProto]) -> list[str]:
    """The names of the symbolic dimensions of ``inputs``, sorted."""
    names = {
        dim.dim_param
        for info in inputs
        if info.type.HasField("tensor_type")
        for dim in info.type.tensor_type.shape.dim
        if not dim.HasField("dim_value") and dim.dim_param
    }
    return sorted(names)


def check_dim_names(
    inputs: Sequence[ValueInfoProto], dims: Iterable[str], origin: str
) -> None:
    """Raise :class:`CimError` for a ``--dim`` naming no symbolic input dimension."""
    known = symbolic_dims(inputs)
    for name in dims:
        if name not in known:
            has = (
                f"its symbolic dimensions: {', '.join(known)}"
                if known
                else "it has no symbolic dimensions"
            )
            raise CimError(
                f"{origin}: --dim {name}: no input of the model has a symbolic "
                f"dimension '{name}' ({has})"
            )


def check_gather_indices(
    node: NodeProto, indices: Array, data_shape: Sequence[int]
) -> None:
    """Raise :class:`NodeError` if a Gather's constant ``indices`` leave its
    axis; ONNX allows negative indices down to minus the axis size."""
    rank = len(data_shape)
    axis = attr_int(node, "axis", 0)
    if not -rank <= axis < rank:
        return  # shape inference reports the axis
    bound = data_shape[axis]
    outside = indices[(indices < -bound) | (indices >= bound)]
    if outside.size:
        raise node_error(
            node,
            f"index {int(outside.reshape(-1)[0])} is out of range for axis "
            f"{axis} of size {bound} (valid indices: {-bound} to {bound - 1})",
        )


def num_elements(shape: Iterable[int]) -> int:
    return math.prod(shape)


def np_dtype(onnx_type: int) -> np.dtype[Any]:
    """The numpy dtype of an ONNX element type."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(onnx_type))


def is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL


def has_data(tensor: TensorProto) -> bool:
    """Whether the tensor's values are present (not external data left unloaded)."""
    return not is_external(tensor) or num_elements(tensor.dims) == 0


def tensor_to_array(tensor: TensorProto) -> Array:
    """The values of a tensor whose data is present."""
    if is_external(tensor):
        tensor = _without_external(tensor)
    return numpy_helper.to_array(tensor)


def _without_external(tensor: TensorProto) -> TensorProto:
    copy = TensorProto()
    copy.CopyFrom(tensor)
    copy.data_location = TensorProto.DEFAULT
    del copy.external_data[:]
    return copy


def array_to_tensor(array: Array, name: str) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def shape_only_tensor(
    name: str, dims: Sequence[int], data_type: int, location: str
) -> TensorProto:
    """A tensor whose data lives in an external file that is not present."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = data_type
    tensor.dims.extend(dims)
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key = "location"
    entry.value = location
    return tensor


def external_location(tensor: TensorProto) -> str:
    """The external-data file named by ``tensor``, or a placeholder."""
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return "absent.data"


def constant_node_value(node: NodeProto) -> Array:
    """The value of an ONNX ``Constant`` node."""
    for attr in node.attribute:
        if attr.name == "value":
            tensor = attr_tensor(node, "value")
            assert tensor is not None
            return tensor_to_array(tensor)
        if attr.name == "value_float":
            return np.array(attr_float(node, "value_float", 0.0), dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(attr_floats(node, "value_floats"), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr_int(node, "value_int", 0), dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(attr_ints(node, "value_ints"), dtype=np.int64)
    raise ValueError(f"unsupported Constant attribute in node '{node.name}'")


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX operator set."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return 1
