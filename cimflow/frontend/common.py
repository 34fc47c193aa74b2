"""Helpers shared by the ONNX frontend: attributes, tensors, element types."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import AttributeProto, NodeProto, TensorProto, numpy_helper

Array = npt.NDArray[Any]
"""A numpy array of any element type."""

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


def find_attr(node: NodeProto, name: str) -> AttributeProto | None:
    for attr in node.attribute:
        if attr.name == name:
            return attr
    return None


def attr_int(node: NodeProto, name: str, default: int) -> int:
    attr = find_attr(node, name)
    return default if attr is None else int(attr.i)


def attr_float(node: NodeProto, name: str, default: float) -> float:
    attr = find_attr(node, name)
    return default if attr is None else float(attr.f)


def attr_str(node: NodeProto, name: str, default: str) -> str:
    attr = find_attr(node, name)
    return default if attr is None else attr.s.decode()


def attr_ints(node: NodeProto, name: str) -> list[int] | None:
    attr = find_attr(node, name)
    return None if attr is None else [int(v) for v in attr.ints]


def attr_tensor(node: NodeProto, name: str) -> TensorProto | None:
    attr = find_attr(node, name)
    return None if attr is None else attr.t


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
            return tensor_to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    raise ValueError(f"unsupported Constant attribute in node '{node.name}'")


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX operator set."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return 1
