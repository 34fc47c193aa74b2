"""Reading an ONNX model file and checking that it is valid ONNX.

:func:`load_model` is the only way the frontend reads a model file. It
refuses, with one line naming the file and what is wrong:

* a path that is not a readable regular file (missing, a directory, a
  symlink loop, permission denied);
* bytes that are not an ONNX ``ModelProto`` (empty, corrupt, truncated,
  another protobuf message);
* a string that is not UTF-8 (a name, a doc string);
* a model newer than the installed ``onnx`` package understands (IR version
  or operator set);
* a value written twice (by two nodes, or by a node and a graph input or
  initializer), a node reading a value nothing defines, a cycle;
* a graph input with a zero-size, negative or unnamed dynamic dimension or
  no shape, an initializer with a negative dimension;
* anything else ``onnx.checker.check_model(full_check=True)`` rejects:
  attribute types, input counts, tensor data sizes, type and shape
  inference errors.

Three things the checker refuses are accepted, because onnxruntime runs
such models and the frontend does not depend on them: nodes out of
topological order (the frontend sorts them), external weight data that is
absent (only ``cim-verify`` needs the weights; it reports their absence
when it loads them), and graph outputs declared without a shape (the
frontend infers every shape).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

import onnx
import onnx.checker
import onnx.defs
import onnx.shape_inference
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from onnx import ModelProto, NodeProto, ValueInfoProto

from cimflow.errors import CimError
from cimflow.frontend.common import input_shape_problem, is_external, node_label


def check_readable_file(path: str | Path) -> None:
    """Raise :class:`CimError` unless ``path`` is a regular file we can read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise CimError(
                f"{path}: no such file (a dangling symlink to '{target}')"
            ) from None
        raise CimError(f"{path}: no such file") from None
    except OSError as error:
        raise CimError(f"{path}: {_os_reason(error)}") from None
    if stat.S_ISDIR(mode):
        raise CimError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise CimError(f"{path}: is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise CimError(f"{path}: {_os_reason(error)}") from None


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENOTDIR:
        return "a component of the path is not a directory"
    return f"cannot read: {error.strerror or type(error).__name__}"


def load_model(path: str | Path) -> ModelProto:
    """The model of an ONNX file, without its external data, checked.

    Raises :class:`CimError` naming the file for every problem listed in
    the module documentation.
    """
    check_readable_file(path)
    if os.path.getsize(path) == 0:
        raise CimError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError:
        raise CimError(
            f"{path}: not an ONNX model: it does not parse as an ONNX ModelProto "
            "(corrupt, truncated, or another kind of file)"
        ) from None
    except OSError as error:
        raise CimError(f"{path}: {_os_reason(error)}") from None
    except Exception as error:
        reason = _first_line(error)
        raise CimError(f"{path}: cannot read the ONNX model: {reason}") from None
    check_model(model, str(path))
    return model


def check_model(model: ModelProto, origin: str) -> None:
    """Raise :class:`CimError` naming ``origin`` unless ``model`` is valid ONNX."""
    if not model.HasField("graph") or not model.graph.output:
        raise CimError(
            f"{origin}: not an ONNX model (no graph with outputs; is it another "
            "kind of protobuf?)"
        )
    text_error = _undecodable_text(model, "model")
    if text_error is not None:
        raise CimError(f"{origin}: invalid ONNX: {text_error} is not valid UTF-8")
    _check_versions(model, origin)
    graph = model.graph
    _check_single_writer(graph.node, graph.input, graph.initializer, origin)
    for tensor in graph.initializer:
        if any(d < 0 for d in tensor.dims):
            raise CimError(
                f"{origin}: initializer '{tensor.name}' has a negative dimension "
                f"(dims {list(tensor.dims)})"
            )
    initializers = {t.name for t in graph.initializer}
    for info in graph.input:
        problem = None if info.name in initializers else input_shape_problem(info)
        if problem is not None:
            raise CimError(f"{origin}: {problem}")
    defined = {"", *(t.name for t in graph.initializer), *(i.name for i in graph.input)}
    order = _topological_indices(graph.node, defined, origin)
    checked = _checkable_copy(model, order, origin)
    try:
        onnx.checker.check_model(checked, full_check=True)
    except onnx.shape_inference.InferenceError as error:
        raise CimError(
            f"{origin}: shape inference failed: {_checker_message(error)}"
        ) from None
    except onnx.checker.ValidationError as error:
        raise CimError(f"{origin}: invalid ONNX: {_checker_message(error)}") from None
    except UnicodeDecodeError:
        raise CimError(
            f"{origin}: invalid ONNX: a name or string is not valid UTF-8"
        ) from None


def topological_order(
    nodes: Sequence[NodeProto], defined: Iterable[str], origin: str
) -> list[NodeProto]:
    """``nodes`` in a topological order, keeping the given order where valid.

    ``defined`` holds the values available before any node (graph inputs,
    initializers, ``""`` for omitted optional inputs). Raises
    :class:`CimError` for a node reading a value nothing defines and for a
    cycle.
    """
    return [nodes[i] for i in _topological_indices(nodes, defined, origin)]


def _topological_indices(
    nodes: Sequence[NodeProto], defined: Iterable[str], origin: str
) -> list[int]:
    available = set(defined)
    produced = {o for n in nodes for o in n.output}
    for index, node in enumerate(nodes):
        for name in node.input:
            if name not in available and name not in produced:
                raise CimError(
                    f"{origin}: node '{node_label(node, index)}' uses '{name}', "
                    "which is neither an input, an initializer nor a node output"
                )
    ordered: list[int] = []
    pending = list(range(len(nodes)))
    while pending:
        waiting: list[int] = []
        for index in pending:
            node = nodes[index]
            if all(name in available for name in node.input):
                ordered.append(index)
                available.update(node.output)
            else:
                waiting.append(index)
        if len(waiting) == len(pending):
            first = waiting[0]
            raise CimError(
                f"{origin}: the graph has a cycle through node "
                f"'{node_label(nodes[first], first)}'"
            )
        pending = waiting
    return ordered


def _undecodable_text(message: Message, path: str) -> str | None:
    """The path of the first string field of ``message`` that is not UTF-8.

    ONNX strings are UTF-8; a bad one would otherwise fail wherever the
    frontend first reads it.
    """
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            # upb hands out the raw bytes of a string that does not decode
            texts: list[object] = (
                [value] if isinstance(value, str | bytes) else list(value)
            )
            for index, text in enumerate(texts):
                if isinstance(text, bytes):
                    repeated = not isinstance(value, str | bytes)
                    return f"{path}.{field.name}" + (f"[{index}]" if repeated else "")
            continue
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        repeated = not isinstance(value, Message)
        items: list[Message] = list(value) if repeated else [value]
        for index, item in enumerate(items):
            where = f"{path}.{field.name}" + (f"[{index}]" if repeated else "")
            found = _undecodable_text(item, where)
            if found is not None:
                return found
    return None


def _check_versions(model: ModelProto, origin: str) -> None:
    installed = f"the installed onnx {onnx.__version__}"
    if model.ir_version > onnx.IR_VERSION:
        raise CimError(
            f"{origin}: the model has IR version {model.ir_version}, newer than "
            f"{installed} reads (up to {onnx.IR_VERSION}); upgrade onnx or "
            "re-export the model for an older IR version"
        )
    newest = {
        "": onnx.defs.onnx_opset_version(),
        "ai.onnx": onnx.defs.onnx_opset_version(),
        "ai.onnx.ml": onnx.defs.onnx_ml_opset_version(),
    }
    for entry in model.opset_import:
        known = newest.get(entry.domain)
        if known is not None and entry.version > known:
            domain = entry.domain or "ai.onnx"
            raise CimError(
                f"{origin}: the model uses opset {entry.version} of {domain}, "
                f"newer than {installed} knows (up to {known}); upgrade onnx or "
                f"re-export the model with opset {known} or older"
            )


def _check_single_writer(
    nodes: Sequence[NodeProto],
    inputs: Sequence[ValueInfoProto],
    initializers: Iterable[onnx.TensorProto],
    origin: str,
) -> None:
    """Every value has one definition (ONNX's static single assignment)."""
    writers: dict[str, str] = {}
    for tensor in initializers:
        writers[tensor.name] = "an initializer"
    for info in inputs:
        writers.setdefault(info.name, "a graph input")
    for index, node in enumerate(nodes):
        label = f"node '{node_label(node, index)}'"
        for name in node.output:
            if not name:
                continue
            first = writers.get(name)
            if first == label:
                raise CimError(f"{origin}: {label} writes '{name}' twice")
            if first is not None:
                raise CimError(
                    f"{origin}: '{name}' is written by both {first} and {label}"
                )
            writers[name] = label


def _checkable_copy(model: ModelProto, order: Sequence[int], origin: str) -> ModelProto:
    """``model`` with what the frontend accepts and the checker does not
    (see the module documentation) made acceptable to the checker."""
    graph = model.graph
    in_order = list(order) == sorted(order)
    external = [t for t in graph.initializer if is_external(t)]
    shapeless = [o for o in graph.output if not _has_shape(o)]
    if in_order and not external and not shapeless:
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    if not in_order:
        nodes = list(model.graph.node)
        del graph.node[:]
        graph.node.extend(nodes[i] for i in order)
    if external:
        declared = {i.name for i in graph.input}
        kept = [t for t in model.graph.initializer if not is_external(t)]
        for tensor in external:  # tensors of ``model``, not of ``copy``
            if tensor.name not in declared:
                graph.input.append(
                    onnx.helper.make_tensor_value_info(
                        tensor.name, tensor.data_type, list(tensor.dims)
                    )
                )
        del graph.initializer[:]
        graph.initializer.extend(kept)
    if shapeless:
        _fill_output_shapes(copy, origin)
    return copy


def _has_shape(info: ValueInfoProto) -> bool:
    return not info.type.HasField("tensor_type") or info.type.tensor_type.HasField(
        "shape"
    )


def _fill_output_shapes(model: ModelProto, origin: str) -> None:
    """Give graph outputs declared without a shape their inferred shape."""
    graph = model.graph
    given = {i.name: i.type for i in graph.input}
    for tensor in graph.initializer:
        given[tensor.name] = onnx.helper.make_tensor_type_proto(
            tensor.data_type, list(tensor.dims)
        )
    for output in graph.output:
        if not _has_shape(output) and output.name in given:
            output.type.CopyFrom(given[output.name])
    try:
        inferred = onnx.shape_inference.infer_shapes(
            model, check_type=True, strict_mode=True
        ).graph
    except onnx.shape_inference.InferenceError as error:
        raise CimError(
            f"{origin}: shape inference failed: {_checker_message(error)}"
        ) from None
    except Exception:
        return  # the checker reports it
    types = {
        info.name: info.type
        for info in (*inferred.input, *inferred.value_info, *inferred.output)
        if _has_shape(info)
    }
    for output in graph.output:
        if _has_shape(output):
            continue
        found = types.get(output.name)
        if found is None:
            raise CimError(
                f"{origin}: graph output '{output.name}' has no shape and shape "
                "inference cannot give it one"
            )
        output.type.CopyFrom(found)


def _checker_message(error: Exception) -> str:
    """The checker's first line, with the node its context names."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message = lines[0]
    marker = "Bad node spec for node. Name: "
    for line in lines[1:]:
        if marker in line:
            name, _, op_type = line.split(marker, 1)[1].partition(" OpType: ")
            if f"'{name}" not in message and f": {name})" not in message:
                message += f" (node '{name}', {op_type.strip()})"
            break
    return message


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
