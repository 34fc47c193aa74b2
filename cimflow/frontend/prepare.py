"""Deterministic clean-up of an ONNX model before it is imported.

:func:`prepare_model` returns a new, still standard ONNX model (it runs on
onnxruntime and computes the same function) in which:

* symbolic input dimensions are fixed from ``dims``;
* every value computable from constants is folded by the onnx package's
  reference evaluator (:mod:`cimflow.frontend.folding`): small results
  become ``Constant`` nodes, large ones (and matrices used as the weight of a
  Conv, Gemm or MatMul) initializers named ``<value>.folded``;
  ``Shape`` and ``Size`` fold from the inferred static shapes, so shape
  arithmetic folds even when the weights have no data;
* weights are never folded: an initializer that is external, larger than
  :data:`MAX_INLINE_ELEMENTS` or a floating-point tensor of rank >= 2 is
  *opaque* and only ever referenced by name;
* ``BatchNormalization`` after a ``Conv`` is folded into new initializers
  ``<weight>.bn_folded`` (and ``<bias>.bn_folded`` or
  ``<weight>.bn_folded_bias``); any other ``BatchNormalization`` becomes
  ``Mul`` + ``Add`` with initializers ``<output>.bn_scale`` / ``.bn_shift``.
  Without weight data these initializers are shape-only (external data
  whose file is absent);
* operators :mod:`cimflow.frontend.decompose` knows are rewritten into
  imported ones; a dequantized weight's scales are recorded in the
  metadata (:data:`QUANTIZATION_KEY`);
* ``Identity``, ``Dropout`` and no-op ``Cast`` disappear, dead nodes and
  unused initializers are removed, and every value carries an inferred
  static type in ``value_info``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto

from cimflow.cimdialect.cim_graph import MAX_INLINE_ELEMENTS
from cimflow.errors import CimError
from cimflow.frontend.common import (
    DEFAULT_DOMAINS,
    Array,
    NodeError,
    ValueType,
    array_to_tensor,
    attr_float,
    attr_int,
    check_gather_indices,
    default_opset,
    external_location,
    has_data,
    input_shape_problem,
    is_external,
    node_error,
    node_label,
    np_dtype,
    num_elements,
    op_key,
    shape_only_tensor,
    tensor_to_array,
    with_origin,
)
from cimflow.frontend.decompose import decompose
from cimflow.frontend.folding import fold_constants, is_foldable
from cimflow.frontend.model_file import topological_order
from cimflow.frontend.supported import IMPORTED_OPS, unsupported_op

_MAX_PASSES = 64

_WEIGHT_CONSUMERS = frozenset({"Conv", "Gemm", "MatMul"})
"""Ops whose second operand, when constant, is a weight (an initializer)."""

QUANTIZATION_KEY = "cimflow.weight_quantization"
"""Metadata key of the prepared model: JSON ``{weight: {"scale": [...],
"zero_point": [...], "axis": a}}`` of the float weights that are dequantized
integers (a ``DequantizeLinear`` of an integer initializer)."""

FOLDED_SUFFIX = ".bn_folded"
"""Added to a convolution weight's name for the weight a batch
normalization is folded into (then ``.1``, ``.2``, ... if that is taken)."""

_FOLDED_NAME = re.compile(rf"(.*){re.escape(FOLDED_SUFFIX)}(?:\.\d+)?")


def folded_from(name: str) -> str | None:
    """The weight whose batch-normalization fold is named ``name``, or None
    when ``name`` is no such fold."""
    match = _FOLDED_NAME.fullmatch(name)
    return None if match is None else match[1]


MAX_FOLDED_ELEMENTS = 1 << 28
"""Largest constant folding may create (1 GiB of float32)."""
_FLOAT_TYPES = frozenset(
    {
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.DOUBLE,
        TensorProto.BFLOAT16,
    }
)


def opaque_initializers(model: ModelProto) -> frozenset[str]:
    """Initializers that are weights: never folded, only referenced by name.

    Besides :func:`is_opaque` tensors, the integers a ``DequantizeLinear``
    reads: quantized weights, which become float weights (not constants).
    The initial states of an ``LSTM`` or ``GRU`` held in the file are
    constants (unless external or large): a zero state saves the first step's
    recurrent product. Decided before any external data is loaded, so that
    :func:`cimflow.frontend.load_weights` prepares the same graph."""
    quantized: set[str] = set()
    states: set[str] = set()
    for node in model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            continue
        if node.op_type == "DequantizeLinear":
            quantized.add(node.input[0])
        elif node.op_type in ("LSTM", "GRU"):
            states.update(node.input[5:7])

    def opaque(tensor: TensorProto) -> bool:
        if tensor.name in quantized:
            return True
        if tensor.name in states:
            return is_external(tensor) or num_elements(tensor.dims) > (
                MAX_INLINE_ELEMENTS
            )
        return is_opaque(tensor)

    return frozenset(t.name for t in model.graph.initializer if opaque(t))


def is_opaque(tensor: TensorProto) -> bool:
    """External, large, or a floating-point tensor of rank >= 2."""
    return (
        is_external(tensor)
        or num_elements(tensor.dims) > MAX_INLINE_ELEMENTS
        or (tensor.data_type in _FLOAT_TYPES and len(tensor.dims) >= 2)
    )


def prepare_model(
    model: onnx.ModelProto, dims: Mapping[str, int], origin: str
) -> onnx.ModelProto:
    """Fix input dims, infer shapes, fold constants and BatchNorm; see module doc.

    ``origin`` names the model in error messages (usually its path).
    """
    return prepare(model, dims, origin, opaque_initializers(model))


def prepare(
    model: ModelProto,
    dims: Mapping[str, int],
    origin: str,
    opaque: Iterable[str],
) -> ModelProto:
    """:func:`prepare_model` with the set of opaque initializers given.

    :func:`cimflow.frontend.onnx_import.load_weights` decides opacity before
    loading external data, so both paths see the same graph.
    """
    try:
        return _Preparer(model, dims, origin, frozenset(opaque)).run()
    except NodeError as error:
        raise with_origin(error, origin) from None


def value_type(info: ValueInfoProto) -> ValueType | None:
    """The element type and static shape recorded in a ValueInfoProto."""
    if not info.type.HasField("tensor_type"):
        return None
    tensor_type = info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return tensor_type.elem_type, None
    shape: list[int] = []
    for dim in tensor_type.shape.dim:
        if not dim.HasField("dim_value") or dim.dim_value < 0:
            return tensor_type.elem_type, None
        shape.append(int(dim.dim_value))
    return tensor_type.elem_type, tuple(shape)


class _SourceError(Exception):
    """A weight a rewrite needs is not there (the caller names the node)."""


class _Preparer:
    def __init__(
        self,
        model: ModelProto,
        dims: Mapping[str, int],
        origin: str,
        opaque: frozenset[str],
    ):
        self.model = model
        self.origin = origin
        self.opset = default_opset(model)
        self.opaque = set(opaque)
        graph = model.graph
        self.inits: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        self.init_order = [t.name for t in graph.initializer]
        self.nodes = [_copy_node(n) for n in graph.node]
        self.inputs = [_copy_info(i) for i in graph.input if i.name not in self.inits]
        self.outputs = [_copy_info(o) for o in graph.output]
        self.output_names = {o.name for o in self.outputs}
        self.folded: dict[str, Array] = {}
        self.folded_by: dict[str, str] = {}
        self.fold_failures: dict[str, str] = {}
        self.derived: dict[tuple[str, str], str] = {}
        self.quantization: dict[str, dict[str, object]] = {}
        self.init_values: dict[str, Array] = {}
        self.types: dict[str, ValueType] = {}
        self.taken: set[str] = {
            *self.inits,
            *(i.name for i in self.inputs),
            *(o for n in self.nodes for o in n.output),
        }
        self._name_nodes()
        self.node_names = {n.name for n in self.nodes}
        self._check_ops()
        self._fix_dims(dims)
        self._sort_nodes()

    def run(self) -> ModelProto:
        for _ in range(_MAX_PASSES):
            self.types = self._infer(self.nodes)
            changed = self._remove_aliases()
            changed = self._fold_pass() or changed
            if not changed:
                changed = self._decompose_pass()
            if not changed:
                break
        self._check_supported()
        self._fuse_batchnorms()
        self._materialize()
        self._eliminate_dead()
        self.types = self._infer(self.nodes)
        self._check_shapes()
        return self._build()

    # -- set-up ---------------------------------------------------------------

    def _name_nodes(self) -> None:
        for index, node in enumerate(self.nodes):
            if not node.name:
                node.name = node_label(node, index)

    def _check_ops(self) -> None:
        used = {name for node in self.nodes for name in node.input} | self.output_names
        for node in self.nodes:
            if node.domain not in DEFAULT_DOMAINS:
                raise CimError(
                    f"{self.origin}: {unsupported_op(node.name, op_key(node))}"
                )
            if node.op_type == "BatchNormalization" and (
                attr_int(node, "training_mode", 0)
                or any(o in used for o in node.output[1:] if o)
            ):
                raise CimError(
                    f"{self.origin}: node '{node.name}' is a BatchNormalization in "
                    "training mode; export the model in eval mode"
                )

    def _sort_nodes(self) -> None:
        """Order the nodes topologically, keeping the given order where valid."""
        defined = {"", *self.inits, *(i.name for i in self.inputs)}
        self.nodes = topological_order(self.nodes, defined, self.origin)

    def _fix_dims(self, dims: Mapping[str, int]) -> None:
        for info in self.inputs:
            problem = input_shape_problem(info)
            if problem is not None:
                raise CimError(f"{self.origin}: {problem}")
            for dim in info.type.tensor_type.shape.dim:
                if dim.HasField("dim_param") and dim.dim_param:
                    value = dims.get(dim.dim_param)
                    if value is None:
                        raise CimError(
                            f"{self.origin}: input '{info.name}' has symbolic "
                            f"dimension '{dim.dim_param}'; pass --dim "
                            f"{dim.dim_param}=VALUE"
                        )
                    if value < 1:
                        raise CimError(
                            f"{self.origin}: dimension '{dim.dim_param}' must be "
                            f"positive, got {value}"
                        )
                    dim.dim_value = value

    # -- shape inference ------------------------------------------------------

    def _infer(self, nodes: Sequence[NodeProto]) -> dict[str, ValueType]:
        used = {name for n in nodes for name in n.input if name} | self.output_names
        initializers: list[TensorProto] = []
        for name in self.init_order:
            if name in used and name in self.inits:
                tensor = self.inits[name]
                if name in self.opaque or not has_data(tensor):
                    tensor = shape_only_tensor(
                        name, tensor.dims, tensor.data_type, "absent.data"
                    )
                initializers.append(tensor)
        for name, value in self.folded.items():
            if name in used:
                initializers.append(array_to_tensor(value, name))
        # An output that is a graph input or an initializer keeps its type:
        # a declared type without a shape would hide the known one.
        given = {i.name: i for i in self.inputs}
        for tensor in initializers:
            given[tensor.name] = onnx.helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)
            )
        outputs = [given.get(o.name) or _without_shape(o) for o in self.outputs]
        graph = onnx.helper.make_graph(
            list(nodes), "g", self.inputs, outputs, initializers
        )
        model = onnx.helper.make_model(
            graph, opset_imports=list(self.model.opset_import)
        )
        if self.model.ir_version:
            model.ir_version = self.model.ir_version
        try:
            inferred = onnx.shape_inference.infer_shapes(
                model, check_type=True, strict_mode=True, data_prop=True
            )
        except Exception as e:
            message = " ".join(str(e).split()) or type(e).__name__
            raise CimError(f"{self.origin}: shape inference failed: {message}") from e
        types: dict[str, ValueType] = {}
        for tensor in initializers:
            types[tensor.name] = (tensor.data_type, tuple(int(d) for d in tensor.dims))
        for info in (
            *inferred.graph.input,
            *inferred.graph.value_info,
            *inferred.graph.output,
        ):
            found = value_type(info)
            if found is not None:
                types[info.name] = found
        return types

    def _static_shape(self, name: str) -> tuple[int, ...] | None:
        found = self.types.get(name)
        return None if found is None else found[1]

    # -- folding --------------------------------------------------------------

    def _value(self, name: str) -> Array | None:
        if name in self.folded:
            return self.folded[name]
        if name in self.init_values:
            return self.init_values[name]
        tensor = self.inits.get(name)
        if tensor is None or name in self.opaque or not has_data(tensor):
            return None
        value = self._tensor_value(tensor)
        self.init_values[name] = value
        return value

    def _tensor_value(self, tensor: TensorProto) -> Array:
        try:
            return tensor_to_array(tensor)
        except Exception as e:
            raise CimError(
                f"{self.origin}: initializer '{tensor.name}' is malformed: {e}"
            ) from e

    def _fold_pass(self) -> bool:
        """Fold every node whose inputs are all constant; True if any was."""
        constant: set[str] = set()
        candidates: list[NodeProto] = []
        changed = False
        for node in self.nodes:
            if node.op_type in ("Shape", "Size") and node.domain in DEFAULT_DOMAINS:
                value = self._shape_value(node)
                if value is not None:
                    self._record_folded(node, [value])
                    changed = True
                    continue
            if node.op_type == "Gather" and len(node.input) > 1:
                self._check_gather(node)
            if not is_foldable(node) or not all(
                name in constant or self._value(name) is not None
                for name in node.input
                if name
            ):
                continue
            self._check_foldable(node)
            candidates.append(node)
            constant.update(name for name in node.output if name)
        reads = {name for node in candidates for name in node.input if name}
        values = {name: v for name in reads if (v := self._value(name)) is not None}
        result = fold_constants(
            candidates,
            values,
            list(self.model.opset_import),
            self.model.ir_version or onnx.IR_VERSION,
        )
        self.fold_failures.update(result.failures)
        done: set[int] = set()
        for node in candidates:
            outputs = [name for name in node.output if name]
            if all(name in result.values for name in outputs):
                self._record_folded(node, [result.values[name] for name in outputs])
                done.add(id(node))
        if done:
            changed = True
        self.nodes = [
            n
            for n in self.nodes
            if id(n) not in done and not all(o in self.folded for o in n.output if o)
        ]
        return changed

    def _record_folded(self, node: NodeProto, values: Sequence[Array]) -> None:
        outputs = [name for name in node.output if name]
        for name, value in zip(outputs, values, strict=True):
            found = self.types.get(name)
            if found is not None and found[0]:
                value = value.astype(np_dtype(found[0]), copy=False)
            self.folded[name] = value
            self.folded_by[name] = node.name

    def _shape_value(self, node: NodeProto) -> Array | None:
        """``Shape`` or ``Size`` from the inferred static shape of its input.

        The one case the reference evaluator cannot fold: the input is not a
        constant (often a value computed from the graph inputs), but its
        shape is known once symbolic dimensions have values.
        """
        shape = self._static_shape(node.input[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return np.array(num_elements(shape), dtype=np.int64)
        rank = len(shape)
        start = attr_int(node, "start", 0)
        end = attr_int(node, "end", rank)
        start = min(max(start + rank if start < 0 else start, 0), rank)
        end = min(max(end + rank if end < 0 else end, 0), rank)
        return np.array(shape[start:end], dtype=np.int64)

    def _check_gather(self, node: NodeProto) -> None:
        """Constant Gather indices must be inside the axis (onnxruntime
        refuses them, and the evaluator's message names no node)."""
        indices = self._param(node.input[1])
        data_shape = self._static_shape(node.input[0])
        if indices is not None and data_shape is not None:
            check_gather_indices(node, indices, data_shape)

    def _check_foldable(self, node: NodeProto) -> None:
        """A folded constant must not be too large to create."""
        for name in node.output:
            shape = self._static_shape(name)
            if shape is not None and num_elements(shape) > MAX_FOLDED_ELEMENTS:
                raise CimError(
                    f"{self.origin}: folding node '{node.name}' ({node.op_type}) "
                    f"would create a constant of shape {list(shape)}, more than "
                    f"{MAX_FOLDED_ELEMENTS} elements"
                )

    # -- rewrites (cimflow.frontend.decompose) ---------------------------------

    def _decompose_pass(self) -> bool:
        """Rewrite every node :func:`decompose` knows; True if any was."""
        result: list[NodeProto] = []
        changed = False
        for node in self.nodes:
            try:
                replacement = decompose(self, node)
            except _SourceError as error:
                raise node_error(node, str(error)) from None
            if replacement is None:
                result.append(node)
            else:
                result.extend(replacement)
                changed = True
        self.nodes = result
        return changed

    def value_type(self, name: str) -> ValueType | None:
        return self.types.get(name)

    def constant(self, name: str) -> Array | None:
        return self._value(name)

    def is_weight(self, name: str) -> bool:
        return name in self.inits

    def fresh_value(self, base: str) -> str:
        return self._fresh(base)

    def fresh_node(self, base: str) -> str:
        return self._fresh_node_name(base)

    def derive_weight(
        self,
        source: str,
        suffix: str,
        shape: Sequence[int],
        data_type: int,
        compute: Callable[[Array], Array],
    ) -> str:
        """A new initializer ``<source>.<suffix>``, ``compute`` of the value of
        ``source``; shape-only (its data absent, as the source's) without it.
        The same derivation of the same source is made once."""
        key = (source, suffix)
        if key in self.derived:
            return self.derived[key]
        value = self._param(source)
        name = self._fresh(f"{source}.{suffix}")
        if value is not None:
            result = np.asarray(compute(value)).astype(np_dtype(data_type))
            assert tuple(result.shape) == tuple(shape), (result.shape, shape)
            tensor = array_to_tensor(result, name)
        elif source in self.inits:
            location = external_location(self.inits[source])
            tensor = shape_only_tensor(name, shape, data_type, location)
        else:
            raise _SourceError(
                f"'{source}' must be a weight (an initializer) or a constant"
            )
        self._add_initializer(tensor)
        self.derived[key] = name
        return name

    def record_quantization(
        self, weight: str, scale: Array, zero_point: Array, axis: int
    ) -> None:
        self.quantization[weight] = {
            "scale": [float(v) for v in scale.reshape(-1)],
            "zero_point": [int(v) for v in zero_point.reshape(-1)],
            "axis": axis,
        }

    def _remove_aliases(self) -> bool:
        graph_inputs = {i.name for i in self.inputs}
        rename: dict[str, str] = {}

        def resolve(name: str) -> str:
            while name in rename:
                name = rename[name]
            return name

        remaining: list[NodeProto] = []
        for node in self.nodes:
            for index, name in enumerate(node.input):
                node.input[index] = resolve(name)
            source = node.input[0] if node.input else ""
            if not self._is_alias(node) or source in self.folded:
                remaining.append(node)
                continue
            target = node.output[0]
            if target not in self.output_names:
                rename[target] = source
            elif (
                source not in graph_inputs
                and source not in self.inits
                and source not in self.output_names
            ):
                rename[source] = target
            else:
                remaining.append(node)
                continue
        if not rename:
            return False
        for node in remaining:
            for index, name in enumerate(node.input):
                node.input[index] = resolve(name)
            for index, name in enumerate(node.output):
                node.output[index] = resolve(name)
        self.nodes = remaining
        return True

    def _is_alias(self, node: NodeProto) -> bool:
        op = node.op_type
        if op == "Identity":
            return True
        if op == "Dropout":
            return (
                len(node.output) < 2
                or not node.output[1]
                or not self._is_used(node.output[1])
            )
        if op == "Cast":
            source = self.types.get(node.input[0])
            return source is not None and source[0] == attr_int(node, "to", 0)
        return False

    def _is_used(self, name: str) -> bool:
        return name in self.output_names or any(name in n.input for n in self.nodes)

    def _check_supported(self) -> None:
        """Every node left after folding must be one the importer takes."""
        for node in self.nodes:
            if node.op_type in ("Shape", "Size"):
                raise CimError(
                    f"{self.origin}: cannot infer a static shape for input "
                    f"'{node.input[0]}' of node '{node.name}' ({node.op_type})"
                )
            if node.op_type in IMPORTED_OPS or node.op_type == "BatchNormalization":
                continue
            failure = self.fold_failures.get(node.name)
            variable = next((n for n in node.input if n and self._value(n) is None), "")
            why = ""
            if failure is not None:
                why = f"; evaluating it on its constant inputs failed: {failure}"
            elif variable and is_foldable(node):
                why = (
                    "; other ops are folded only when every input is a constant, "
                    f"and '{variable}' is not"
                )
            raise CimError(
                f"{self.origin}: {unsupported_op(node.name, op_key(node))}{why}"
            )

    # -- BatchNormalization ---------------------------------------------------

    def _fresh(self, base: str) -> str:
        name, index = base, 1
        while name in self.taken:
            name = f"{base}.{index}"
            index += 1
        self.taken.add(name)
        return name

    def _fresh_node_name(self, base: str) -> str:
        name, index = base, 1
        while name in self.node_names:
            name = f"{base}.{index}"
            index += 1
        self.node_names.add(name)
        return name

    def _add_initializer(self, tensor: TensorProto) -> None:
        self.inits[tensor.name] = tensor
        self.init_order.append(tensor.name)
        if is_opaque(tensor):
            self.opaque.add(tensor.name)

    def _param(self, name: str) -> Array | None:
        """The value of a weight or constant, opaque or not; None without data."""
        value = self._value(name)
        if value is not None:
            return value
        tensor = self.inits.get(name)
        if tensor is not None and has_data(tensor):
            return self._tensor_value(tensor)
        return None

    def _fuse_batchnorms(self) -> None:
        producers = {o: n for n in self.nodes for o in n.output if o}
        uses: dict[str, int] = {}
        for node in self.nodes:
            for name in node.input:
                uses[name] = uses.get(name, 0) + 1
        result: list[NodeProto] = []
        for node in self.nodes:
            if node.op_type != "BatchNormalization":
                result.append(node)
                continue
            source = node.input[0]
            conv = producers.get(source)
            if (
                conv is not None
                and conv.op_type == "Conv"
                and uses.get(source, 0) == 1
                and source not in self.output_names
                and conv.input[1] in self.inits
            ):
                self._fold_into_conv(conv, node)
            else:
                result.extend(self._batchnorm_as_affine(node))
        self.nodes = result

    def _bn_scale_shift(
        self, node: NodeProto, channels: int
    ) -> tuple[Array, Array] | None:
        """Per-channel ``scale`` and ``shift`` in float64, None without data."""
        params = [self._param(name) for name in node.input[1:5]]
        gamma, beta, mean, var = params
        if gamma is None or beta is None or mean is None or var is None:
            return None
        epsilon = attr_float(node, "epsilon", 1e-5)
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        return scale.reshape(channels), shift.reshape(channels)

    def _fold_into_conv(self, conv: NodeProto, bn: NodeProto) -> None:
        weight = self.inits[conv.input[1]]
        channels = int(weight.dims[0])
        dtype = weight.data_type
        bias_name = conv.input[2] if len(conv.input) > 2 and conv.input[2] else ""
        new_weight = self._fresh(f"{weight.name}{FOLDED_SUFFIX}")
        new_bias = self._fresh(
            f"{bias_name}.bn_folded" if bias_name else f"{weight.name}.bn_folded_bias"
        )
        affine = self._bn_scale_shift(bn, channels)
        weight_value = self._param(weight.name)
        bias_value = (
            self._param(bias_name) if bias_name else np.zeros(channels, np.float64)
        )
        location = external_location(weight)
        if affine is not None and weight_value is not None:
            scale = affine[0].reshape(channels, *([1] * (len(weight.dims) - 1)))
            folded = (weight_value.astype(np.float64) * scale).astype(
                weight_value.dtype
            )
            self._add_initializer(array_to_tensor(folded, new_weight))
        else:
            self._add_initializer(
                shape_only_tensor(new_weight, weight.dims, dtype, location)
            )
        if affine is not None and bias_value is not None:
            bias = bias_value.astype(np.float64) * affine[0] + affine[1]
            self._add_initializer(
                array_to_tensor(bias.astype(np_dtype(dtype)), new_bias)
            )
        else:
            self._add_initializer(
                shape_only_tensor(new_bias, [channels], dtype, location)
            )
        del conv.input[1:]
        conv.input.extend([new_weight, new_bias])
        conv.output[0] = bn.output[0]

    def _batchnorm_as_affine(self, bn: NodeProto) -> list[NodeProto]:
        found = self.types.get(bn.input[0])
        dtype, shape = found if found is not None else (0, None)
        if shape is None or len(shape) < 2:
            raise CimError(
                f"{self.origin}: cannot infer a static shape for input "
                f"'{bn.input[0]}' of node '{bn.name}' (BatchNormalization)"
            )
        channels = shape[1]
        param_shape = [channels, *([1] * (len(shape) - 2))]
        output = bn.output[0]
        scale_name = self._fresh(f"{output}.bn_scale")
        shift_name = self._fresh(f"{output}.bn_shift")
        affine = self._bn_scale_shift(bn, channels)
        np_type = np_dtype(dtype)
        for name, index in ((scale_name, 0), (shift_name, 1)):
            if affine is None:
                location = external_location(self.inits.get(bn.input[1], TensorProto()))
                tensor = shape_only_tensor(name, param_shape, dtype, location)
            else:
                tensor = array_to_tensor(
                    affine[index].reshape(param_shape).astype(np_type), name
                )
            self._add_initializer(tensor)
        scaled = self._fresh(f"{output}.bn_scaled")
        return [
            onnx.helper.make_node(
                "Mul",
                [bn.input[0], scale_name],
                [scaled],
                name=self._fresh_node_name(f"{bn.name}.scale"),
            ),
            onnx.helper.make_node(
                "Add",
                [scaled, shift_name],
                [output],
                name=self._fresh_node_name(f"{bn.name}.shift"),
            ),
        ]

    # -- clean-up -------------------------------------------------------------

    def _materialize(self) -> None:
        """Turn folded values still in use into Constant nodes or initializers."""
        self.node_names = {n.name for n in self.nodes}
        used: list[str] = []
        seen: set[str] = set()
        for name in [n for node in self.nodes for n in node.input] + [
            o.name for o in self.outputs
        ]:
            if name and name not in seen:
                seen.add(name)
                used.append(name)
        weights = {
            node.input[1]
            for node in self.nodes
            if node.op_type in _WEIGHT_CONSUMERS and len(node.input) > 1
        }
        constants: list[NodeProto] = []
        rename: dict[str, str] = {}
        aliases: list[NodeProto] = []
        for name in used:
            value = self.folded.get(name)
            if value is None or name in self.inits:
                continue
            if value.size <= MAX_INLINE_ELEMENTS and not (
                name in weights and value.ndim >= 2
            ):
                constants.append(
                    onnx.helper.make_node(
                        "Constant",
                        [],
                        [name],
                        name=self._fresh_node_name(self.folded_by.get(name, name)),
                        value=array_to_tensor(value, name),
                    )
                )
                continue
            init_name = self._fresh(f"{name}.folded")
            self._add_initializer(array_to_tensor(value, init_name))
            rename[name] = init_name
            if name in self.output_names:
                aliases.append(
                    onnx.helper.make_node(
                        "Identity",
                        [init_name],
                        [name],
                        name=self._fresh_node_name(f"{name}.identity"),
                    )
                )
        for node in self.nodes:
            for index, name in enumerate(node.input):
                node.input[index] = rename.get(name, name)
        self.nodes = constants + self.nodes + aliases

    def _eliminate_dead(self) -> None:
        live = set(self.output_names)
        kept: list[NodeProto] = []
        for node in reversed(self.nodes):
            if any(o in live for o in node.output if o):
                kept.append(node)
                live.update(n for n in node.input if n)
        self.nodes = kept[::-1]
        self.init_order = [n for n in self.init_order if n in live]

    def _check_shapes(self) -> None:
        used = {n for node in self.nodes for n in node.input} | self.output_names
        for node in self.nodes:
            for name in node.output:
                if name and name in used:
                    found = self.types.get(name)
                    if found is None or found[1] is None:
                        raise CimError(
                            f"{self.origin}: cannot infer a static shape for output "
                            f"'{name}' of node '{node.name}' ({node.op_type})"
                        )

    def _build(self) -> ModelProto:
        model = ModelProto()
        model.ir_version = self.model.ir_version
        model.opset_import.extend(self.model.opset_import)
        model.producer_name = self.model.producer_name
        model.producer_version = self.model.producer_version
        model.domain = self.model.domain
        model.model_version = self.model.model_version
        model.doc_string = self.model.doc_string
        model.metadata_props.extend(
            p for p in self.model.metadata_props if p.key != QUANTIZATION_KEY
        )
        kept = {
            n: self.quantization[n] for n in self.init_order if n in self.quantization
        }
        if kept:
            entry = model.metadata_props.add()
            entry.key = QUANTIZATION_KEY
            entry.value = json.dumps(kept, sort_keys=True)
        graph = model.graph
        graph.name = self.model.graph.name
        graph.doc_string = self.model.graph.doc_string
        graph.node.extend(self.nodes)
        graph.input.extend(self.inputs)
        produced = {o for n in self.nodes for o in n.output}
        for info in self.outputs:
            found = self.types.get(info.name)
            if found is None or found[1] is None:
                raise CimError(
                    f"{self.origin}: cannot infer a static shape for graph output "
                    f"'{info.name}'"
                )
            graph.output.append(
                onnx.helper.make_tensor_value_info(info.name, found[0], found[1])
            )
        graph.initializer.extend(self.inits[n] for n in self.init_order)
        for node in self.nodes:
            for name in node.output:
                found = self.types.get(name)
                if name in produced and name not in self.output_names and found:
                    graph.value_info.append(
                        onnx.helper.make_tensor_value_info(name, found[0], found[1])
                    )
        return model


def _copy_node(node: NodeProto) -> NodeProto:
    copy = NodeProto()
    copy.CopyFrom(node)
    return copy


def _copy_info(info: ValueInfoProto) -> ValueInfoProto:
    copy = ValueInfoProto()
    copy.CopyFrom(info)
    return copy


def _without_shape(info: ValueInfoProto) -> ValueInfoProto:
    copy = ValueInfoProto()
    copy.name = info.name
    if info.type.HasField("tensor_type"):
        copy.type.tensor_type.elem_type = info.type.tensor_type.elem_type
    return copy
