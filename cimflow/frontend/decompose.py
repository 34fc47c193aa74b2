"""Exact rewrites of ONNX operators into the operators the importer takes.

:func:`cimflow.frontend.prepare.prepare_model` calls :func:`decompose` on
every node left once constants are folded. Each rewrite returns standard ONNX
nodes that compute the same function (the prepared model still runs on
onnxruntime, which the tests use to check every rewrite), so the back end
needs nothing new: weights end up in ``Conv``, ``MatMul`` and ``Gemm``
(crossbar arrays), everything else in elementwise, data-movement and
reduction ops (vector units). Index arithmetic on constant indices folds in
the next pass. Weights a rewrite needs in another layout (a 1-D convolution
kernel as 2-D, a transposed convolution kernel flipped, a recurrent layer's
per-direction matrices transposed, a quantized weight dequantized) become
new initializers named after the original (:meth:`Graph.derive_weight`),
computed from its data, or shape-only when the data is absent.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import NodeProto, TensorProto

from cimflow.frontend.common import (
    Array,
    ValueType,
    attr_float,
    attr_floats,
    attr_int,
    attr_ints,
    attr_str,
    attr_strs,
    node_error,
    np_dtype,
)


class Graph(Protocol):
    """What a rewrite may ask of the model being prepared."""

    opset: int

    def value_type(self, name: str) -> ValueType | None:
        """The inferred element type and static shape of a value."""
        ...

    def constant(self, name: str) -> Array | None:
        """The value of a constant (never of a weight), or None."""
        ...

    def is_weight(self, name: str) -> bool:
        """Whether ``name`` is an initializer (with or without its data)."""
        ...

    def derive_weight(
        self,
        source: str,
        suffix: str,
        shape: Sequence[int],
        data_type: int,
        compute: Callable[[Array], Array],
    ) -> str:
        """A new initializer ``compute(value of source)`` of ``shape``; its name."""
        ...

    def fresh_value(self, base: str) -> str: ...

    def fresh_node(self, base: str) -> str: ...

    def record_quantization(
        self, weight: str, scale: Array, zero_point: Array, axis: int
    ) -> None:
        """Note that ``weight`` is ``(q - zero_point) * scale`` of integers ``q``."""
        ...


# --------------------------------------------------------------------------
# Emitting nodes
# --------------------------------------------------------------------------


@dataclass
class _Emitter:
    """Builds the replacement of one node with fresh value and node names."""

    graph: Graph
    node: NodeProto
    nodes: list[NodeProto] = field(default_factory=lambda: [])

    @property
    def opset(self) -> int:
        return self.graph.opset

    def op(
        self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any
    ) -> str:
        return self.ops(op_type, inputs, [out] if out else 1, **attrs)[0]

    def ops(
        self,
        op_type: str,
        inputs: Sequence[str],
        outs: int | Sequence[str | None],
        **attrs: Any,
    ) -> list[str]:
        wanted = [None] * outs if isinstance(outs, int) else list(outs)
        base = self.node.output[0] or self.node.name
        names = [
            name or self.graph.fresh_value(f"{base}.{op_type.lower()}")
            for name in wanted
        ]
        self.nodes.append(
            onnx.helper.make_node(
                op_type,
                list(inputs),
                names,
                name=self.graph.fresh_node(f"{self.node.name}.{op_type}"),
                **attrs,
            )
        )
        return names

    def const(self, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.graph.fresh_value(f"{self.node.output[0] or self.node.name}.c")
        self.nodes.append(
            onnx.helper.make_node(
                "Constant",
                [],
                [name],
                name=self.graph.fresh_node(f"{self.node.name}.Constant"),
                value=onnx.numpy_helper.from_array(array, name),
            )
        )
        return name

    def ints(self, values: Sequence[int]) -> str:
        return self.const(list(values), np.int64)

    def unsqueeze(self, x: str, axes: Sequence[int], out: str | None = None) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.ints(axes)], out)
        return self.op("Unsqueeze", [x], out, axes=list(axes))

    def squeeze(self, x: str, axes: Sequence[int], out: str | None = None) -> str:
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.ints(axes)], out)
        return self.op("Squeeze", [x], out, axes=list(axes))

    def reduce_sum(
        self, x: str, axes: Sequence[int], keepdims: bool, out: str | None = None
    ) -> str:
        if self.opset >= 13:
            return self.op(
                "ReduceSum", [x, self.ints(axes)], out, keepdims=int(keepdims)
            )
        return self.op("ReduceSum", [x], out, axes=list(axes), keepdims=int(keepdims))

    def split(self, x: str, axis: int, sizes: Sequence[int]) -> list[str]:
        if len(sizes) == 1:
            return [x]
        if self.opset >= 13:
            return self.ops("Split", [x, self.ints(sizes)], len(sizes), axis=axis)
        return self.ops("Split", [x], len(sizes), axis=axis, split=list(sizes))

    def reshape(self, x: str, shape: Sequence[int], out: str | None = None) -> str:
        return self.op("Reshape", [x, self.ints(shape)], out)

    def transpose(self, x: str, perm: Sequence[int], out: str | None = None) -> str:
        if list(perm) == list(range(len(perm))) and out is None:
            return x
        return self.op("Transpose", [x], out, perm=list(perm))

    def clip(self, x: str, low: float, high: float, dtype: Any) -> str:
        if self.opset >= 11:
            return self.op("Clip", [x, self.const(low, dtype), self.const(high, dtype)])
        return self.op(
            "Min",
            [self.op("Max", [x, self.const(low, dtype)]), self.const(high, dtype)],
        )

    def slice(
        self, x: str, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int]
    ) -> str:
        if self.opset >= 10:
            return self.op(
                "Slice", [x, self.ints(starts), self.ints(ends), self.ints(axes)]
            )
        return self.op(
            "Slice", [x], starts=list(starts), ends=list(ends), axes=list(axes)
        )

    def pad(self, x: str, pads: Sequence[int]) -> str:
        if self.opset >= 11:
            return self.op("Pad", [x, self.ints(pads)])
        return self.op("Pad", [x], pads=list(pads))


def _type(graph: Graph, node: NodeProto, name: str) -> tuple[int, tuple[int, ...]]:
    found = graph.value_type(name)
    if found is None or found[1] is None:
        raise node_error(node, f"cannot infer a static shape for '{name}'")
    return found[0], found[1]


def _input(node: NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


# --------------------------------------------------------------------------
# Elementwise
# --------------------------------------------------------------------------


def _is_nan(e: _Emitter) -> None:
    x = e.node.input[0]
    e.op("Not", [e.op("Equal", [x, x])], e.node.output[0])


def _is_inf(e: _Emitter) -> None:
    """``|x| > max finite``: a value the executor holds in float64 beyond the
    float32 range is what onnxruntime's float32 holds as infinity."""
    x = e.node.input[0]
    data_type, _ = _type(e.graph, e.node, x)
    dtype = np_dtype(data_type)
    big = float(np.finfo(dtype).max)
    positive = attr_int(e.node, "detect_positive", 1) != 0
    negative = attr_int(e.node, "detect_negative", 1) != 0
    out = e.node.output[0]
    if positive and negative:
        e.op("Greater", [e.op("Abs", [x]), e.const(big, dtype)], out)
    elif positive:
        e.op("Greater", [x, e.const(big, dtype)], out)
    elif negative:
        e.op("Less", [x, e.const(-big, dtype)], out)
    else:
        e.op("Less", [e.op("Abs", [x]), e.const(0.0, dtype)], out)


def _hard_sigmoid_of(
    e: _Emitter, x: str, alpha: float, beta: float, dtype: np.dtype[Any]
) -> str:
    scaled = e.op(
        "Add", [e.op("Mul", [x, e.const(alpha, dtype)]), e.const(beta, dtype)]
    )
    return e.clip(scaled, 0.0, 1.0, dtype)


def _hard_sigmoid(e: _Emitter) -> None:
    alpha = attr_float(e.node, "alpha", 0.2)
    beta = attr_float(e.node, "beta", 0.5)
    x = e.node.input[0]
    dtype = np_dtype(_type(e.graph, e.node, x)[0])
    gate = _hard_sigmoid_of(e, x, alpha, beta, dtype)
    e.op("Identity", [gate], e.node.output[0])


def _hard_swish(e: _Emitter) -> None:
    x = e.node.input[0]
    dtype = np_dtype(_type(e.graph, e.node, x)[0])
    e.op("Mul", [x, _hard_sigmoid_of(e, x, 1.0 / 6.0, 0.5, dtype)], e.node.output[0])


def _mish(e: _Emitter) -> None:
    x = e.node.input[0]
    e.op("Mul", [x, e.op("Tanh", [e.op("Softplus", [x])])], e.node.output[0])


# --------------------------------------------------------------------------
# Gathers and scatters
# --------------------------------------------------------------------------


def _strides(shape: Sequence[int]) -> list[int]:
    return [math.prod(shape[i + 1 :]) for i in range(len(shape))]


def _int64_indices(e: _Emitter, name: str, bounds: Array | int) -> str:
    """``name`` as int64 with negative indices counted from ``bounds``."""
    data_type, _ = _type(e.graph, e.node, name)
    if data_type != TensorProto.INT64:
        name = e.op("Cast", [name], to=TensorProto.INT64)
    zero = e.const(0, np.int64)
    wrapped = e.op("Add", [name, e.const(bounds, np.int64)])
    return e.op("Where", [e.op("Less", [name, zero]), wrapped, name])


def _gather_elements(e: _Emitter) -> None:
    """``data`` flattened, one Gather of flat positions: the indices times the
    axis stride plus a constant for the other coordinates."""
    data, indices = e.node.input[0], e.node.input[1]
    _, data_shape = _type(e.graph, e.node, data)
    _, index_shape = _type(e.graph, e.node, indices)
    rank = len(data_shape)
    axis = attr_int(e.node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    strides = _strides(data_shape)
    offsets = np.zeros(index_shape, dtype=np.int64)
    for dim in range(rank):
        if dim != axis:
            coordinate = np.arange(index_shape[dim], dtype=np.int64)
            view = [1] * rank
            view[dim] = index_shape[dim]
            offsets = offsets + coordinate.reshape(view) * strides[dim]
    index = _int64_indices(e, indices, data_shape[axis])
    flat = e.op(
        "Add",
        [e.op("Mul", [index, e.const(strides[axis], np.int64)]), e.const(offsets)],
    )
    table = e.reshape(data, [math.prod(data_shape)])
    e.op("Gather", [table, flat], e.node.output[0], axis=0)


def _gather_nd(e: _Emitter) -> None:
    """``data`` with its indexed (and batch) dimensions flattened into one,
    one Gather of the flat row numbers the index tuples give."""
    data, indices = e.node.input[0], e.node.input[1]
    _, data_shape = _type(e.graph, e.node, data)
    _, index_shape = _type(e.graph, e.node, indices)
    batch = attr_int(e.node, "batch_dims", 0)
    depth = index_shape[-1]
    if depth < 1:
        raise _error(e, "index tuples must have at least one element")
    indexed = data_shape[batch : batch + depth]
    block = math.prod(indexed)
    index = _int64_indices(e, indices, np.array(indexed, dtype=np.int64))
    within = e.reduce_sum(
        e.op("Mul", [index, e.const(_strides(indexed), np.int64)]), [-1], False
    )
    rows_shape = index_shape[:-1]
    flat = within
    if batch:
        batch_index = np.zeros(rows_shape, dtype=np.int64)
        batch_strides = _strides(data_shape[:batch])
        for dim in range(batch):
            view = [1] * len(rows_shape)
            view[dim] = rows_shape[dim]
            coordinate = np.arange(rows_shape[dim], dtype=np.int64).reshape(view)
            batch_index = batch_index + coordinate * batch_strides[dim] * block
        flat = e.op("Add", [within, e.const(batch_index)])
    rest = list(data_shape[batch + depth :])
    table = e.reshape(data, [math.prod(data_shape[: batch + depth]), *rest])
    e.op("Gather", [table, flat], e.node.output[0], axis=0)


def _error(e: _Emitter, message: str) -> Exception:
    return node_error(e.node, message)


def _scatter_rounds(positions: Array, reduction: str) -> list[list[int]]:
    """Updates in application order, cut into rounds in which every target
    is written at most once ('none': only the last write of each counts)."""
    order = list(range(len(positions)))
    if reduction == "none":
        last = {int(p): u for u, p in enumerate(positions)}
        return [sorted(last.values())]
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for update in order:
        target = int(positions[update])
        level = seen.get(target, 0)
        seen[target] = level + 1
        if level == len(rounds):
            rounds.append([])
        rounds[level].append(update)
    return rounds


_SCATTER_COMBINE = {"add": "Add", "mul": "Mul", "max": "Max", "min": "Min"}


def _scatter(
    e: _Emitter,
    rows: int,
    positions: Array,
    data: str,
    updates: str,
    row_shape: Sequence[int],
    out_shape: Sequence[int],
) -> None:
    """Write ``updates`` (one row each) into rows ``positions`` of ``data``
    flattened to ``[rows, *row_shape]``, round by round."""
    reduction = attr_str(e.node, "reduction", "none")
    if reduction != "none" and reduction not in _SCATTER_COMBINE:
        raise _error(e, f"reduction '{reduction}' is not supported")
    current = e.reshape(data, [rows, *row_shape])
    source = e.reshape(updates, [len(positions), *row_shape])
    for chosen in _scatter_rounds(positions, reduction):
        pick = np.zeros(rows, dtype=np.int64)
        mask = np.zeros(rows, dtype=np.bool_)
        for update in chosen:
            pick[int(positions[update])] = update
            mask[int(positions[update])] = True
        gathered = e.op("Gather", [source, e.const(pick)], axis=0)
        if reduction != "none":
            gathered = e.op(_SCATTER_COMBINE[reduction], [current, gathered])
        condition = e.const(mask.reshape([rows] + [1] * len(row_shape)))
        current = e.op("Where", [condition, gathered, current])
    e.reshape(current, out_shape, e.node.output[0])


def _constant_indices(e: _Emitter, name: str) -> Array:
    value = e.graph.constant(name)
    if value is None:
        raise _error(
            e,
            f"indices '{name}' must be constant (a scatter to positions computed "
            "at run time is not supported)",
        )
    return value.astype(np.int64)


def _scatter_nd(e: _Emitter) -> None:
    data, indices, updates = e.node.input[0], e.node.input[1], e.node.input[2]
    _, data_shape = _type(e.graph, e.node, data)
    index = _constant_indices(e, indices)
    depth = index.shape[-1]
    indexed = list(data_shape[:depth])
    tuples = index.reshape(-1, depth)
    tuples = np.where(tuples < 0, tuples + np.array(indexed), tuples)
    if np.any(tuples < 0) or np.any(tuples >= np.array(indexed)):
        raise _error(e, f"an index tuple is outside data of shape {list(data_shape)}")
    positions = tuples @ np.array(_strides(indexed), dtype=np.int64)
    _scatter(
        e, math.prod(indexed), positions, data, updates, data_shape[depth:], data_shape
    )


def _scatter_elements(e: _Emitter) -> None:
    data, indices, updates = e.node.input[0], e.node.input[1], e.node.input[2]
    _, data_shape = _type(e.graph, e.node, data)
    index = _constant_indices(e, indices)
    rank = len(data_shape)
    axis = attr_int(e.node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    index = np.where(index < 0, index + data_shape[axis], index)
    if np.any(index < 0) or np.any(index >= data_shape[axis]):
        raise _error(e, f"an index is outside axis {axis} of size {data_shape[axis]}")
    grid: Array = np.indices(index.shape, dtype=np.int64)
    coordinates = [grid[dim] for dim in range(rank)]
    coordinates[axis] = index
    positions = np.asarray(
        np.ravel_multi_index(tuple(c.reshape(-1) for c in coordinates), data_shape)
    )
    _scatter(e, math.prod(data_shape), positions, data, updates, [], data_shape)


# --------------------------------------------------------------------------
# Einsum
# --------------------------------------------------------------------------


def _einsum_terms(
    e: _Emitter, equation: str, ranks: Sequence[int]
) -> tuple[list[str], str]:
    """The operand and output subscripts with ``...`` spelled out in letters."""
    text = equation.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise _error(
            e, f"equation '{equation}' has {len(terms)} operands, the node {len(ranks)}"
        )
    used = set(text) - set(".,->")
    spare = [c for c in string.ascii_letters if c not in used]
    ellipsis_rank = max(
        (
            rank - len(term.replace("...", ""))
            for term, rank in zip(terms, ranks, strict=True)
            if "..." in term
        ),
        default=0,
    )
    letters = spare[:ellipsis_rank]
    spelled: list[str] = []
    for term, rank in zip(terms, ranks, strict=True):
        if "..." in term:
            own = rank - len(term.replace("...", ""))
            term = term.replace("...", "".join(letters[ellipsis_rank - own :]))
        if len(term) != rank or not all(c in string.ascii_letters for c in term):
            raise _error(
                e, f"equation '{equation}' does not fit operand ranks {list(ranks)}"
            )
        if len(set(term)) != len(term):
            raise _error(
                e,
                f"equation '{equation}' takes a diagonal (a repeated "
                "subscript); only matrix products are supported",
            )
        spelled.append(term)
    if arrow:
        out = out.replace("...", "".join(letters))
    else:
        once = sorted(
            c for c in set("".join(spelled)) if "".join(spelled).count(c) == 1
        )
        out = "".join(letters) + "".join(c for c in once if c not in letters)
    if len(set(out)) != len(out) or not set(out) <= set("".join(spelled)):
        raise _error(e, f"equation '{equation}' has a bad output")
    return spelled, out


def _einsum(e: _Emitter) -> None:
    """One or two operands: sums, a transpose, and one matrix product
    (``MatMul``; on the arrays when one operand is a weight)."""
    names = [n for n in e.node.input]
    shapes = [_type(e.graph, e.node, n)[1] for n in names]
    equation = attr_str(e.node, "equation", "")
    terms, out = _einsum_terms(e, equation, [len(s) for s in shapes])
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        for letter, size in zip(term, shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                raise _error(
                    e,
                    f"subscript '{letter}' has sizes {sizes[letter]} "
                    f"and {size} (broadcasting is not supported)",
                )
    if len(names) == 1:
        x, term = _einsum_sum(e, names[0], terms[0], out)
        e.transpose(x, [term.index(c) for c in out], e.node.output[0])
        return
    if len(names) != 2:
        raise _error(e, "only one or two operands are supported")
    (a, b), (ta, tb) = names, terms
    if e.graph.is_weight(a) and not e.graph.is_weight(b):
        (a, b), (ta, tb) = (b, a), (tb, ta)
    batch = [c for c in out if c in ta and c in tb]
    contracted = [c for c in ta if c in tb and c not in out]
    a_free = [c for c in ta if c not in tb and c in out]
    b_free = [c for c in tb if c not in ta and c in out]
    k = math.prod(sizes[c] for c in contracted)
    m = math.prod(sizes[c] for c in a_free)
    n = math.prod(sizes[c] for c in b_free)
    lead = [math.prod(sizes[c] for c in batch)] if batch else []
    x, xa = _einsum_sum(e, a, ta, out + tb)
    lhs = e.reshape(
        e.transpose(x, [xa.index(c) for c in [*batch, *a_free, *contracted]]),
        [*lead, m, k],
    )
    b_order = [*batch, *contracted, *b_free]
    if e.graph.is_weight(b) and not batch:
        data_type, _ = _type(e.graph, e.node, b)
        summed = [i for i, c in enumerate(tb) if c not in ta and c not in out]
        kept = [c for c in tb if c not in [tb[i] for i in summed]]
        perm = [kept.index(c) for c in b_order]

        def as_matrix(value: Array) -> Array:
            reduced = value.sum(axis=tuple(summed)) if summed else value
            return np.transpose(reduced, perm).reshape(k, n).astype(value.dtype)

        rhs = e.graph.derive_weight(b, "einsum", [k, n], data_type, as_matrix)
    else:
        y, yb = _einsum_sum(e, b, tb, out + ta)
        rhs = e.reshape(e.transpose(y, [yb.index(c) for c in b_order]), [*lead, k, n])
    product = e.op("MatMul", [lhs, rhs])
    done = [*batch, *a_free, *b_free]
    spread = e.reshape(product, [sizes[c] for c in done])
    e.transpose(spread, [done.index(c) for c in out], e.node.output[0])


def _einsum_sum(e: _Emitter, x: str, term: str, keep: str) -> tuple[str, str]:
    """``x`` summed over the subscripts not in ``keep``; the remaining term."""
    summed = [i for i, c in enumerate(term) if c not in keep]
    if not summed:
        return x, term
    return e.reduce_sum(x, summed, False), "".join(
        c for i, c in enumerate(term) if i not in summed
    )


# --------------------------------------------------------------------------
# Convolutions and pooling
# --------------------------------------------------------------------------


def _lift_1d(
    values: list[int] | None, fill: int, pads: bool = False
) -> list[int] | None:
    """A 1-D window attribute as the 2-D one with a height of 1."""
    if values is None:
        return None
    if pads:
        return [0, values[0], 0, values[1]]
    return [fill, *values]


def _window_attrs_2d(node: NodeProto, names: Sequence[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for name in names:
        if name == "auto_pad":
            if any(a.name == name for a in node.attribute):
                attrs[name] = attr_str(node, name, "NOTSET")
        elif name in ("group", "ceil_mode", "count_include_pad", "storage_order"):
            if any(a.name == name for a in node.attribute):
                attrs[name] = attr_int(node, name, 0)
        else:
            fill = 0 if name in ("pads", "output_padding") else 1
            lifted = _lift_1d(attr_ints(node, name), fill, pads=name == "pads")
            if lifted is not None:
                attrs[name] = lifted
    return attrs


def _conv_1d(e: _Emitter) -> bool:
    node = e.node
    _, x_shape = _type(e.graph, node, node.input[0])
    if len(x_shape) != 3:
        return False
    weight = node.input[1]
    data_type, w_shape = _type(e.graph, node, weight)
    kernel = e.graph.derive_weight(
        weight,
        "conv2d",
        [w_shape[0], w_shape[1], 1, w_shape[2]],
        data_type,
        lambda w: w.reshape(w.shape[0], w.shape[1], 1, w.shape[2]),
    )
    inputs = [e.unsqueeze(node.input[0], [2]), kernel]
    if _input(node, 2):
        inputs.append(node.input[2])
    attrs = _window_attrs_2d(
        node, ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]
    )
    e.squeeze(e.op("Conv", inputs, **attrs), [2], node.output[0])
    return True


def _pool_1d(e: _Emitter) -> bool:
    node = e.node
    _, x_shape = _type(e.graph, node, node.input[0])
    if len(x_shape) != 3 or (len(node.output) > 1 and node.output[1]):
        return False
    attrs = _window_attrs_2d(
        node,
        [
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
    )
    pooled = e.op(node.op_type, [e.unsqueeze(node.input[0], [2])], **attrs)
    e.squeeze(pooled, [2], node.output[0])
    return True


def _conv_transpose(e: _Emitter) -> None:
    """Zeros inserted between the input's rows and columns (``stride - 1``
    each), the border padded by ``dilation * (kernel - 1) - pad`` (cropped
    where negative), then a stride-1 ``Conv`` with the kernel flipped and its
    input and output channels swapped per group."""
    node = e.node
    x, weight = node.input[0], node.input[1]
    _, x_shape = _type(e.graph, node, x)
    data_type, w_shape = _type(e.graph, node, weight)
    _, out_shape = _type(e.graph, node, node.output[0])
    spatial = len(x_shape) - 2
    if spatial not in (1, 2):
        raise _error(e, "only 1-D and 2-D transposed convolutions are supported")
    groups = attr_int(node, "group", 1)
    kernel = list(w_shape[2:])
    strides = attr_ints(node, "strides") or [1] * spatial
    dilations = attr_ints(node, "dilations") or [1] * spatial
    output_padding = attr_ints(node, "output_padding") or [0] * spatial
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    given_pads = attr_ints(node, "pads")
    if attr_ints(node, "output_shape") is not None or auto_pad in (
        "SAME_UPPER",
        "SAME_LOWER",
    ):
        begins: list[int] = []
        ends: list[int] = []
        for i in range(spatial):
            total = (
                strides[i] * (x_shape[2 + i] - 1)
                + output_padding[i]
                + dilations[i] * (kernel[i] - 1)
                + 1
                - out_shape[2 + i]
            )
            if auto_pad == "SAME_UPPER":
                begins.append(total // 2)
                ends.append(total - total // 2)
            else:
                begins.append(total - total // 2)
                ends.append(total // 2)
        pads = begins + ends
    elif auto_pad == "VALID" or given_pads is None:
        pads = [0] * (2 * spatial)
    else:
        pads = given_pads
    if spatial == 1:
        x = e.unsqueeze(x, [2])
        x_shape = (x_shape[0], x_shape[1], 1, x_shape[2])
        kernel, strides, dilations = [1, *kernel], [1, *strides], [1, *dilations]
        output_padding = [0, *output_padding]
        pads = [0, pads[0], 0, pads[1]]
    channels_in, per_group_out = w_shape[0], w_shape[1]

    def flipped(w: Array) -> Array:
        blocks = w.reshape(groups, channels_in // groups, per_group_out, *kernel)
        swapped = blocks.transpose(0, 2, 1, 3, 4).reshape(
            groups * per_group_out, channels_in // groups, *kernel
        )
        return swapped[:, :, ::-1, ::-1].copy()

    conv_weight = e.graph.derive_weight(
        weight,
        "conv_transposed",
        [groups * per_group_out, channels_in // groups, *kernel],
        data_type,
        flipped,
    )
    n, c, height, width = x_shape
    sh, sw = strides
    if sh > 1 or sw > 1:
        spaced = e.pad(
            e.reshape(x, [n, c, height, 1, width, 1]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1],
        )
        x = e.reshape(spaced, [n, c, height * sh, width * sw])
    size = [height * sh, width * sw]
    begin = [dilations[i] * (kernel[i] - 1) - pads[i] for i in range(2)]
    end = [
        dilations[i] * (kernel[i] - 1)
        - pads[2 + i]
        + output_padding[i]
        - (strides[i] - 1)
        for i in range(2)
    ]
    if any(v < 0 for v in begin + end):
        x = e.slice(
            x,
            [max(0, -v) for v in begin],
            [size[i] + min(0, end[i]) for i in range(2)],
            [2, 3],
        )
    if any(v > 0 for v in begin + end):
        x = e.pad(
            x, [0, 0, *[max(0, v) for v in begin], 0, 0, *[max(0, v) for v in end]]
        )
    inputs = [x, conv_weight]
    if _input(node, 2):
        inputs.append(node.input[2])
    attrs: dict[str, Any] = {"dilations": dilations, "group": groups, "strides": [1, 1]}
    if spatial == 1:
        e.squeeze(e.op("Conv", inputs, **attrs), [2], node.output[0])
    else:
        e.op("Conv", inputs, node.output[0], **attrs)


# --------------------------------------------------------------------------
# Recurrent layers
# --------------------------------------------------------------------------

_ACTIVATIONS = ("Sigmoid", "Tanh", "Relu", "Softplus", "HardSigmoid")
_WITH_ALPHA_BETA = {"HardSigmoid": (0.2, 0.5)}


@dataclass
class _Recurrent:
    """The shared set-up of an LSTM or GRU node."""

    e: _Emitter
    hidden: int
    seq: int
    directions: list[int]
    reverse: list[bool]
    layout: int
    activations: list[str]
    alphas: list[float | None]
    betas: list[float | None]
    clip: float | None
    data_type: int

    def act(self, x: str, index: int) -> str:
        """Activation ``index`` of :attr:`activations`, input clipped."""
        e = self.e
        if self.clip is not None:
            x = e.clip(x, -self.clip, self.clip, np_dtype(self.data_type))
        kind = self.activations[index]
        if kind == "HardSigmoid":
            default_alpha, default_beta = _WITH_ALPHA_BETA[kind]
            alpha = self.alphas[index]
            beta = self.betas[index]
            return _hard_sigmoid_of(
                e,
                x,
                default_alpha if alpha is None else alpha,
                default_beta if beta is None else beta,
                np_dtype(self.data_type),
            )
        return e.op(kind, [x])

    def const(self, value: float) -> str:
        return self.e.const(value, np_dtype(self.data_type))


def _recurrent(e: _Emitter, gates: int, per_direction: int) -> _Recurrent:
    node = e.node
    data_type, x_shape = _type(e.graph, node, node.input[0])
    layout = attr_int(node, "layout", 0)
    seq = x_shape[0] if layout == 0 else x_shape[1]
    hidden = attr_int(node, "hidden_size", 0)
    _, w_shape = _type(e.graph, node, node.input[1])
    if hidden < 1:
        hidden = w_shape[1] // gates
    direction = attr_str(node, "direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise _error(e, f"unknown direction '{direction}'")
    count = 2 if direction == "bidirectional" else 1
    defaults = ["Sigmoid", "Tanh", "Tanh"][:per_direction]
    canonical = {name.lower(): name for name in _ACTIVATIONS}
    listed = [
        canonical.get(kind.lower(), kind)
        for kind in attr_strs(node, "activations") or defaults * count
    ]
    if len(listed) != per_direction * count:
        raise _error(
            e, f"expected {per_direction * count} activations, got {len(listed)}"
        )
    alphas_given = attr_floats(node, "activation_alpha") or []
    betas_given = attr_floats(node, "activation_beta") or []
    alphas: list[float | None] = []
    betas: list[float | None] = []
    used = 0
    for kind in listed:
        if kind not in _ACTIVATIONS:
            raise _error(
                e,
                f"activation '{kind}' is not supported (supported: "
                f"{', '.join(_ACTIVATIONS)})",
            )
        if kind in _WITH_ALPHA_BETA:
            alphas.append(alphas_given[used] if used < len(alphas_given) else None)
            betas.append(betas_given[used] if used < len(betas_given) else None)
            used += 1
        else:
            alphas.append(None)
            betas.append(None)
    lengths = _input(node, 4)
    if lengths:
        value = e.graph.constant(lengths)
        if value is None or np.any(value != seq):
            raise _error(
                e,
                f"sequence_lens must be a constant equal to the "
                f"sequence length {seq} for every batch entry",
            )
    clip_attr = [a for a in node.attribute if a.name == "clip"]
    return _Recurrent(
        e,
        hidden,
        seq,
        list(range(count)),
        [False, True] if count == 2 else [direction == "reverse"],
        layout,
        listed,
        alphas,
        betas,
        attr_float(node, "clip", 0.0) if clip_attr else None,
        data_type,
    )


def _direction_matrix(
    r: _Recurrent, name: str, direction: int, rows: slice, suffix: str
) -> str:
    """``W[direction, rows]`` transposed, as a 2-D weight ``[in, out]``."""
    graph = r.e.graph
    data_type, shape = _type(graph, r.e.node, name)
    height = len(range(*rows.indices(shape[1])))
    return graph.derive_weight(
        name,
        f"{suffix}.d{direction}",
        [shape[2], height],
        data_type,
        lambda w: w[direction, rows].T.copy(),
    )


def _direction_bias(
    r: _Recurrent,
    name: str,
    direction: int,
    suffix: str,
    combine: Callable[[Array], Array],
    size: int,
) -> str | None:
    if not name:
        return None
    data_type, _ = _type(r.e.graph, r.e.node, name)
    return r.e.graph.derive_weight(
        name,
        f"{suffix}.d{direction}",
        [size],
        data_type,
        lambda b: combine(b[direction]).astype(b.dtype),
    )


def _initial_state(r: _Recurrent, name: str, direction: int) -> str | None:
    """The initial hidden or cell state of one direction, None when zero."""
    if not name:
        return None
    value = r.e.graph.constant(name)
    if value is not None and not np.any(value):
        return None
    axis = 0 if r.layout == 0 else 1
    return r.e.op("Gather", [name, r.e.const(direction, np.int64)], axis=axis)


def _time_steps(r: _Recurrent, projected: str) -> list[str]:
    """``[seq, batch, n]`` cut into ``seq`` tensors ``[batch, n]``."""
    e = r.e
    pieces = e.split(projected, 0, [1] * r.seq)
    return [e.squeeze(p, [0]) for p in pieces]


def _input_projection(
    r: _Recurrent, weight: str, bias: str | None, direction: int
) -> list[str]:
    """Every time step's ``x W^T + b`` from one matrix product."""
    e = r.e
    x = e.node.input[0]
    if r.layout == 1:
        x = e.transpose(x, [1, 0, 2])
    projected = e.op("MatMul", [x, weight])
    if bias is not None:
        projected = e.op("Add", [projected, bias])
    return _time_steps(r, projected)


def _outputs(
    r: _Recurrent, states: list[list[str]], last: list[str], cells: list[str] | None
) -> None:
    """``Y``, ``Y_h`` (and ``Y_c``) from each direction's states."""
    e, node = r.e, r.e.node
    if node.output and node.output[0]:
        per_direction: list[str] = []
        for sequence in states:
            stacked = [e.unsqueeze(h, [0]) for h in sequence]
            whole = stacked[0] if len(stacked) == 1 else e.op("Concat", stacked, axis=0)
            per_direction.append(e.unsqueeze(whole, [1]))
        joined = (
            per_direction[0]
            if len(per_direction) == 1
            else e.op("Concat", per_direction, axis=1)
        )
        if r.layout == 0:
            e.op("Identity", [joined], node.output[0])
        else:
            e.transpose(joined, [2, 0, 1, 3], node.output[0])
    for index, values in ((1, last), (2, cells)):
        if values is None or len(node.output) <= index or not node.output[index]:
            continue
        stacked = [e.unsqueeze(v, [0]) for v in values]
        joined = stacked[0] if len(stacked) == 1 else e.op("Concat", stacked, axis=0)
        if r.layout == 0:
            e.op("Identity", [joined], node.output[index])
        else:
            e.transpose(joined, [1, 0, 2], node.output[index])


def _lstm(e: _Emitter) -> None:
    """Unrolled over the static sequence length: one product ``X W^T`` for
    every step (arrays), per step one ``h R^T`` (arrays) and the gates."""
    node = e.node
    r = _recurrent(e, 4, 3)
    hidden = r.hidden
    coupled = attr_int(node, "input_forget", 0) != 0
    bias_name = _input(node, 3)
    peephole = _input(node, 7)
    states: list[list[str]] = []
    last: list[str] = []
    cells: list[str] = []
    for d in r.directions:
        w = _direction_matrix(r, node.input[1], d, slice(None), "lstm_w")
        rt = _direction_matrix(r, node.input[2], d, slice(None), "lstm_r")
        bias = _direction_bias(
            r,
            bias_name,
            d,
            "lstm_b",
            lambda b: b[: 4 * hidden] + b[4 * hidden :],
            4 * hidden,
        )
        steps = _input_projection(r, w, bias, d)
        h = _initial_state(r, _input(node, 5), d)
        c = _initial_state(r, _input(node, 6), d)
        # P is [directions, 3H]: the input, output and forget gates' weights
        p_i, p_o, p_f = (
            _direction_bias(
                r,
                peephole,
                d,
                f"lstm_p{k}",
                lambda p, k=k: p[k * hidden : (k + 1) * hidden],
                hidden,
            )
            for k in range(3)
        )
        order = range(r.seq - 1, -1, -1) if r.reverse[d] else range(r.seq)
        outputs: dict[int, str] = {}
        base = 3 * d
        for t in order:
            gates = steps[t]
            if h is not None:
                gates = e.op("Add", [gates, e.op("MatMul", [h, rt])])
            i, o, f, g = e.split(gates, 1, [hidden] * 4)
            if p_i is not None and p_f is not None and c is not None:
                i = e.op("Add", [i, e.op("Mul", [c, p_i])])
                f = e.op("Add", [f, e.op("Mul", [c, p_f])])
            i = r.act(i, base)
            f = e.op("Sub", [r.const(1.0), i]) if coupled else r.act(f, base)
            candidate = r.act(g, base + 1)
            fresh = e.op("Mul", [i, candidate])
            c = fresh if c is None else e.op("Add", [e.op("Mul", [f, c]), fresh])
            if p_o is not None:
                o = e.op("Add", [o, e.op("Mul", [c, p_o])])
            h = e.op("Mul", [r.act(o, base), r.act(c, base + 2)])
            outputs[t] = h
        assert h is not None and c is not None
        states.append([outputs[t] for t in range(r.seq)])
        last.append(h)
        cells.append(c)
    _outputs(r, states, last, cells)


def _gru(e: _Emitter) -> None:
    """Unrolled like :func:`_lstm`; with ``linear_before_reset`` one product
    ``h R^T`` per step, else one for the update and reset gates and one of
    ``r * h`` for the candidate."""
    node = e.node
    r = _recurrent(e, 3, 2)
    hidden = r.hidden
    before_reset = attr_int(node, "linear_before_reset", 0) != 0
    bias_name = _input(node, 3)
    states: list[list[str]] = []
    last: list[str] = []
    for d in r.directions:
        w = _direction_matrix(r, node.input[1], d, slice(None), "gru_w")

        def x_bias(b: Array) -> Array:
            w_bias, r_bias = b[: 3 * hidden], b[3 * hidden :]
            joined = w_bias + r_bias
            if before_reset:
                joined[2 * hidden :] = w_bias[2 * hidden :]
            return joined

        bias = _direction_bias(r, bias_name, d, "gru_b", x_bias, 3 * hidden)
        steps = _input_projection(r, w, bias, d)
        rh = ""
        if before_reset:
            rt = _direction_matrix(r, node.input[2], d, slice(None), "gru_r")
            h_bias = _direction_bias(
                r,
                bias_name,
                d,
                "gru_rb",
                lambda b: np.concatenate(
                    [np.zeros(2 * hidden, b.dtype), b[5 * hidden :]]
                ),
                3 * hidden,
            )
        else:
            rt = _direction_matrix(r, node.input[2], d, slice(0, 2 * hidden), "gru_rzr")
            rh = _direction_matrix(
                r, node.input[2], d, slice(2 * hidden, 3 * hidden), "gru_rh"
            )
            h_bias = None
        h = _initial_state(r, _input(node, 5), d)
        order = range(r.seq - 1, -1, -1) if r.reverse[d] else range(r.seq)
        outputs: dict[int, str] = {}
        base = 2 * d
        for t in order:
            xz, xr, xh = e.split(steps[t], 1, [hidden] * 3)
            if h is None:
                z, reset = r.act(xz, base), r.act(xr, base)
                n_in = xh
                if h_bias is not None:
                    rh_bias = e.slice(h_bias, [2 * hidden], [3 * hidden], [0])
                    n_in = e.op("Add", [xh, e.op("Mul", [reset, rh_bias])])
            elif before_reset:
                product = e.op("MatMul", [h, rt])
                if h_bias is not None:
                    product = e.op("Add", [product, h_bias])
                hz, hr, hh = e.split(product, 1, [hidden] * 3)
                z = r.act(e.op("Add", [xz, hz]), base)
                reset = r.act(e.op("Add", [xr, hr]), base)
                n_in = e.op("Add", [xh, e.op("Mul", [reset, hh])])
            else:
                hz, hr = e.split(e.op("MatMul", [h, rt]), 1, [hidden] * 2)
                z = r.act(e.op("Add", [xz, hz]), base)
                reset = r.act(e.op("Add", [xr, hr]), base)
                gated = e.op("MatMul", [e.op("Mul", [reset, h]), rh])
                n_in = e.op("Add", [xh, gated])
            candidate = r.act(n_in, base + 1)
            keep = e.op("Sub", [r.const(1.0), z])
            fresh = e.op("Mul", [keep, candidate])
            h = fresh if h is None else e.op("Add", [fresh, e.op("Mul", [z, h])])
            outputs[t] = h
        assert h is not None
        states.append([outputs[t] for t in range(r.seq)])
        last.append(h)
    _outputs(r, states, last, None)


# --------------------------------------------------------------------------
# Quantization
# --------------------------------------------------------------------------

_QUANTIZED_RANGES: dict[int, tuple[int, int]] = {
    TensorProto.INT8: (-128, 127),
    TensorProto.UINT8: (0, 255),
    TensorProto.INT16: (-32768, 32767),
    TensorProto.UINT16: (0, 65535),
}


def _broadcast_along(e: _Emitter, name: str, axis: int, rank: int) -> str:
    """A per-axis (1-D) scale or zero point shaped to broadcast along ``axis``."""
    _, shape = _type(e.graph, e.node, name)
    if len(shape) == 0 or rank == 0:
        return name
    axis = axis + rank if axis < 0 else axis
    view = [1] * rank
    view[axis] = shape[0]
    return e.reshape(name, view)


def _check_blocked(e: _Emitter) -> None:
    if attr_int(e.node, "block_size", 0):
        raise _error(e, "blocked quantization (block_size) is not supported")


def _dequantize(e: _Emitter) -> None:
    """``(x - zero_point) * scale``; of a weight, a new float weight."""
    _check_blocked(e)
    node = e.node
    x, scale, zero = node.input[0], node.input[1], _input(node, 2)
    _, x_shape = _type(e.graph, node, x)
    float_type, _ = _type(e.graph, node, scale)
    axis = attr_int(node, "axis", 1)
    rank = len(x_shape)
    if e.graph.is_weight(x):
        scale_value = e.graph.constant(scale)
        zero_value = e.graph.constant(zero) if zero else np.zeros((), np.int64)
        if scale_value is None or zero_value is None:
            raise _error(
                e, "the scale and zero point of a quantized weight must be constants"
            )
        view = [1] * rank
        if scale_value.ndim == 1 and rank:
            view[axis % rank] = scale_value.shape[0]
        else:
            view = [1] * rank if rank else []
        s = scale_value.astype(np.float64).reshape(view)
        z = zero_value.astype(np.float64).reshape(view)
        dtype = np_dtype(float_type)
        weight = e.graph.derive_weight(
            x,
            "dequantized",
            list(x_shape),
            float_type,
            lambda q: ((q.astype(np.float64) - z) * s).astype(dtype),
        )
        e.graph.record_quantization(
            weight,
            scale_value.reshape(-1),
            zero_value.reshape(-1),
            axis % rank if rank else 0,
        )
        e.op("Identity", [weight], node.output[0])
        return
    values = e.op("Cast", [x], to=float_type)
    if zero:
        values = e.op(
            "Sub",
            [
                values,
                e.op("Cast", [_broadcast_along(e, zero, axis, rank)], to=float_type),
            ],
        )
    e.op("Mul", [values, _broadcast_along(e, scale, axis, rank)], node.output[0])


def _quantize(e: _Emitter) -> None:
    """``saturate(round(x / scale) + zero_point)``, rounding half to even."""
    _check_blocked(e)
    node = e.node
    x, scale, zero = node.input[0], node.input[1], _input(node, 2)
    _, x_shape = _type(e.graph, node, x)
    float_type, _ = _type(e.graph, node, scale)
    out_type, _ = _type(e.graph, node, node.output[0])
    if out_type not in _QUANTIZED_RANGES:
        raise _error(
            e,
            f"quantizing to {TensorProto.DataType.Name(out_type)} is "
            "not supported (int8, uint8, int16, uint16 are)",
        )
    low, high = _QUANTIZED_RANGES[out_type]
    axis = attr_int(node, "axis", 1)
    rank = len(x_shape)
    dtype = np_dtype(float_type)
    rounded = e.op("Round", [e.op("Div", [x, _broadcast_along(e, scale, axis, rank)])])
    if zero:
        rounded = e.op(
            "Add",
            [
                rounded,
                e.op("Cast", [_broadcast_along(e, zero, axis, rank)], to=float_type),
            ],
        )
    e.op("Cast", [e.clip(rounded, low, high, dtype)], node.output[0], to=out_type)


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

Rewrite = Callable[[_Emitter], "bool | None"]

REWRITES: dict[str, tuple[Rewrite, str]] = {
    "IsNaN": (_is_nan, "`Not(Equal(x, x))`"),
    "IsInf": (_is_inf, "`Greater(Abs(x), max finite)` (or one sign)"),
    "HardSigmoid": (_hard_sigmoid, "`Clip(alpha x + beta, 0, 1)`"),
    "HardSwish": (_hard_swish, "`x Clip(x / 6 + 1/2, 0, 1)`"),
    "Mish": (_mish, "`x Tanh(Softplus(x))`"),
    "GatherElements": (_gather_elements, "`Gather` of flat positions"),
    "GatherND": (_gather_nd, "`Gather` of flat positions"),
    "ScatterND": (_scatter_nd, "`Gather` + `Where` (constant indices)"),
    "ScatterElements": (_scatter_elements, "`Gather` + `Where` (constant indices)"),
    "Scatter": (_scatter_elements, "as `ScatterElements` (opsets 9 and 10)"),
    "Einsum": (_einsum, "`ReduceSum`, `Transpose`, `MatMul` (matrix products)"),
    "ConvTranspose": (
        _conv_transpose,
        "zero insertion (`Reshape`, `Pad`) and a stride-1 `Conv`",
    ),
    "LSTM": (_lstm, "unrolled: `MatMul` per step (arrays) and vector gates"),
    "GRU": (_gru, "unrolled: `MatMul` per step (arrays) and vector gates"),
    "QuantizeLinear": (_quantize, "`Cast(Clip(Round(x / s) + zp))`"),
    "DequantizeLinear": (
        _dequantize,
        "`(x - zp) s`; a quantized weight becomes a float weight",
    ),
}
"""Op type → (rewrite, what it becomes, for the docs' table)."""


def _matmul_of_constant(e: _Emitter) -> bool:
    """A constant times a weight is a new weight: the arrays take only
    activations (an LSTM's non-zero initial state times ``R^T``)."""
    node = e.node
    a, b = node.input[0], node.input[1]
    value = e.graph.constant(a)
    if value is None or not e.graph.is_weight(b) or e.graph.constant(b) is not None:
        return False
    data_type, shape = _type(e.graph, node, node.output[0])
    product = e.graph.derive_weight(
        b, f"times.{a}", list(shape), data_type, lambda w: np.matmul(value, w)
    )
    e.op("Identity", [product], node.output[0])
    return True


CONDITIONAL_REWRITES: dict[str, Rewrite] = {
    "MatMul": _matmul_of_constant,
    "Conv": _conv_1d,
    "MaxPool": _pool_1d,
    "AveragePool": _pool_1d,
}
"""Imported ops rewritten in some forms (1-D windows as 2-D ones)."""


def decompose(graph: Graph, node: NodeProto) -> list[NodeProto] | None:
    """The nodes replacing ``node``, or None when it stays as it is."""
    if node.domain not in ("", "ai.onnx"):
        return None
    entry = REWRITES.get(node.op_type)
    rewrite = entry[0] if entry is not None else CONDITIONAL_REWRITES.get(node.op_type)
    if rewrite is None:
        return None
    emitter = _Emitter(graph, node)
    if rewrite(emitter) is False:
        return None
    return emitter.nodes
