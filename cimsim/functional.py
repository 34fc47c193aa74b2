"""Functional simulation: run a cim-trace on real data, meta-op by meta-op.

:func:`run_functional` executes the ops of a trace in id order (a valid
topological order) with numpy; it never looks at the ONNX graph. What each op
does to data is documented in ``docs/functional-verification.md``:

- DRAM, the on-chip buffers and the memory-mode arrays are dictionaries
  from tensor name to value; ``load`` / ``store`` copy a tensor between them
  (the memory-to-compute path between memory-mode arrays and a core's
  local buffer too), and every op finds what it reads where the trace says
  it is (model inputs start in DRAM, or in the memory-mode arrays the trace
  gives them): an op that streams reads its input from the level its
  ``feed`` / ``in_from`` names and writes its outputs to ``out_to``'s (a
  weight ``program`` fed from DRAM reads the model's weight, as a ``load``
  does). Values do not tell the global buffer from the cores' local
  buffers (moves check that what they carry exists; where bytes sit and
  whether they fit is cim-sim's); a ``free`` checks that what it releases
  is there, and a free of memory-mode arrays drops the tensor from them;
  allocations do not change values;
- ``program`` writes a weight slice (or, with ``source`` ``tensor``, the
  values of an activation tensor) into the cells of its arrays, laid out
  deterministically from the array geometry (:func:`slice_placements`);
  ``mvm`` multiplies its input rows (from the chip, the global buffer, DRAM
  or the memory-mode arrays that feed it, as its ``feed`` says) by exactly
  what its arrays hold and leaves one partial-sum block per row tile where
  its outputs go (on chip, in DRAM or in memory-mode arrays); the vector op
  ``accumulate`` adds them (and a bias), reading them from there;
- every other vector op applies its ``op`` with its ``attrs``
  (:func:`apply_operator`, the one numpy definition of the vector-unit
  operators, also used by the tests' reference interpreter).

Two numeric modes: ``exact`` (float64, no quantization) and ``quantized``
(integer weights cut into cell slices, offset-binary activations fed a DAC
width at a time, ADC-digitized column sums, shift-add, digital offset
correction and dequantization).

Anything that shows the trace is wrong (a tensor read where it is not, an
op that does not depend on the op that wrote what it reads, partial sums
never accumulated, a program overwriting arrays an unfinished MVM reads) is a
:class:`FunctionalError` naming the op.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from cimflow.analysis.sparse_tiling import (
    ColumnTiling,
    RowMap,
    column_matrix,
    compacted_matrix,
    compacted_rows,
    held_columns,
    intra_block_driven_rows,
    intra_block_matrix,
    intra_block_rows,
    row_group_starts,
    row_index_block,
    tile_rows_used,
)
from cimflow.analysis.zero_planes import PlaneCounts
from cimflow.cost_model import EPILOGUE_ACTIVATIONS, EPILOGUE_HOSTS, RESIDUAL_LAYOUTS
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.weight_layout import as_matrix

if TYPE_CHECKING:
    from cimflow.frontend import ModelWeights, WeightQuantization

from .semantics import Reachability, array_ids, op_label
from .trace import (
    BarrierOp,
    FreeOp,
    LoadOp,
    MoveOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    SwitchOp,
    TensorType,
    Trace,
    TraceOp,
    TransferOp,
    VectorOp,
    WeightInfo,
    in_place,
)

Array: TypeAlias = np.ndarray[Any, Any]
Selection: TypeAlias = list[tuple[Array, Array]]
"""The inputs an array's cells may take, each with the 0/1 mask of the
cells (array rows x columns) that take it."""
Mode = Literal["exact", "quantized"]
MODES: tuple[Mode, ...] = ("exact", "quantized")


class FunctionalError(CimError):
    """The trace does something a correct schedule never does (one line)."""


_LEVEL_TEXT = {
    "dram": "DRAM",
    "buffer": "the buffer",
    "local": "the cores",
    "memory": "memory-mode arrays",
}


def _partial_level(location: str) -> str:
    """Where partial sums read from ``location`` live: on chip (``buffer``,
    for the global and local buffers alike), ``dram`` or ``memory``."""
    return "buffer" if location == "local" else location


# --------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy type of a trace ``dtype`` (``float32``, ``int64``, ``bool``)."""
    if dtype == "bool":
        return np.dtype(np.bool_)
    if dtype.startswith(("int", "uint")):
        return np.dtype(dtype)
    if dtype in ("float16", "float32", "float64"):
        return np.dtype(dtype)
    return np.dtype(np.float32)


def _compute_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """Floats are computed and held in float64; other types as declared."""
    return np.dtype(np.float64) if dtype.kind == "f" else dtype


# --------------------------------------------------------------------------
# Vector-unit operators
# --------------------------------------------------------------------------

_ERF = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


UNARY_FUNCTIONS: dict[str, Callable[[Array], Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "erf": _ERF,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "reciprocal": lambda x: 1 / x,
    "neg": np.negative,
    "abs": np.abs,
    "gelu": lambda x: 0.5 * x * (1 + _ERF(x / math.sqrt(2.0))),
    "gelu_tanh": _gelu_tanh,
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.rint,
    "cos": np.cos,
    "sin": np.sin,
    "not": np.logical_not,
}
"""``cim_graph.unary`` kinds, by name."""

BINARY_FUNCTIONS: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "equal": np.equal,
    "less": np.less,
    "greater": np.greater,
    "and": np.logical_and,
    "or": np.logical_or,
}
"""``cim_graph.binary`` kinds (numpy broadcasting), by name."""

REDUCE_FUNCTIONS: dict[str, Callable[..., Array]] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": np.prod,
}
"""``cim_graph.reduce`` kinds, by name."""


def _attr(attrs: Mapping[str, object], key: str) -> object:
    if key not in attrs:
        raise CimError(f"missing attribute '{key}'")
    return attrs[key]


def _attr_int(attrs: Mapping[str, object], key: str) -> int:
    value = _attr(attrs, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CimError(f"attribute '{key}' must be an integer, got {value!r}")
    return value


def _attr_float(attrs: Mapping[str, object], key: str) -> float:
    value = _attr(attrs, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CimError(f"attribute '{key}' must be a number, got {value!r}")
    return float(value)


def _attr_str(attrs: Mapping[str, object], key: str) -> str:
    value = _attr(attrs, key)
    if not isinstance(value, str):
        raise CimError(f"attribute '{key}' must be a string, got {value!r}")
    return value


def _attr_ints(attrs: Mapping[str, object], key: str) -> tuple[int, ...]:
    value = _attr(attrs, key)
    items = cast(list[object], value) if isinstance(value, list) else None
    if items is None or any(
        isinstance(v, bool) or not isinstance(v, int) for v in items
    ):
        raise CimError(f"attribute '{key}' must be a list of integers, got {value!r}")
    return tuple(cast(list[int], items))


def _attr_flag(attrs: Mapping[str, object], key: str) -> bool:
    """A unit attribute: present (``true``) or absent."""
    return bool(attrs.get(key, False))


def softmax(x: Array, axis: int) -> Array:
    """Softmax along ``axis``."""
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def normalize(
    x: Array,
    scale: Array,
    bias: Array | None,
    axis: int,
    epsilon: float,
    rms: bool,
) -> Array:
    """Layer normalization (``rms=False``) or RMS normalization over the axes
    from ``axis`` to the last, then ``* scale (+ bias)``."""
    axes = tuple(range(axis % x.ndim, x.ndim))
    if rms:
        y = x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + epsilon)
    else:
        centered = x - x.mean(axis=axes, keepdims=True)
        y = centered / np.sqrt((centered**2).mean(axis=axes, keepdims=True) + epsilon)
    y = y * scale
    return y + bias if bias is not None else y


def pool(
    x: Array,
    kind: str,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    count_include_pad: bool,
) -> Array:
    """Max or average pooling over NCHW windows; pads ``[top, left, bottom,
    right]``; averages count only real elements unless ``count_include_pad``."""
    kh, kw = kernel
    sh, sw = strides
    top, left, bottom, right = pads
    is_max = kind == "max"
    padded = np.pad(
        x,
        ((0, 0), (0, 0), (top, bottom), (left, right)),
        constant_values=-np.inf if is_max else 0.0,
    )
    ones = np.pad(np.ones(x.shape[2:]), ((top, bottom), (left, right)))
    oh = (padded.shape[2] - kh) // sh + 1
    ow = (padded.shape[3] - kw) // sw + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for r in range(oh):
        for c in range(ow):
            window = padded[:, :, r * sh : r * sh + kh, c * sw : c * sw + kw]
            if is_max:
                out[:, :, r, c] = window.max(axis=(2, 3))
            else:
                count = (
                    kh * kw
                    if count_include_pad
                    else ones[r * sh : r * sh + kh, c * sw : c * sw + kw].sum()
                )
                out[:, :, r, c] = window.sum(axis=(2, 3)) / count
    return out


def im2col(
    x: Array,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
) -> Array:
    """Unroll NCHW windows: row ``(n, oh, ow)``, column ``(c, kh, kw)``.

    Channels are contiguous per group, so this is also the group-major order
    of ``cim_tile.im2col``; padding reads zeros.
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[
                :,
                :,
                i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw,
            ]
            cols[:, :, :, :, i, j] = window.transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw)


def col2im(m: Array, shape: Sequence[int]) -> Array:
    """Fold MVM outputs ``[N*H*W, C]`` back into NCHW ``shape``."""
    n, c, h, w = shape
    return m.reshape(n, h, w, c).transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class _Call:
    """One vector-unit operator application."""

    attrs: Mapping[str, object]
    inputs: Sequence[Array]
    shapes: Sequence[tuple[int, ...]]
    dtypes: Sequence[np.dtype[Any]]

    def arg(self, index: int) -> Array:
        if index >= len(self.inputs):
            raise CimError(f"takes at least {index + 1} inputs, got {len(self.inputs)}")
        return self.inputs[index]

    def optional(self, index: int) -> Array | None:
        return self.inputs[index] if index < len(self.inputs) else None


def _slice(call: _Call) -> Array:
    starts = _attr_ints(call.attrs, "starts")
    ends = _attr_ints(call.attrs, "ends")
    steps = _attr_ints(call.attrs, "steps")
    index = tuple(slice(s, e, st) for s, e, st in zip(starts, ends, steps, strict=True))
    return call.arg(0)[index]


def _pad(call: _Call) -> Array:
    pads = _attr_ints(call.attrs, "pads")
    x = call.arg(0)
    rank = x.ndim
    widths = [(pads[i], pads[rank + i]) for i in range(rank)]
    mode = _attr_str(call.attrs, "mode")
    if mode == "constant":
        return np.pad(x, widths, constant_values=_attr_float(call.attrs, "value"))
    if mode not in ("reflect", "edge"):
        raise CimError(f"unknown pad mode '{mode}'")
    return np.pad(x, widths, mode=mode)


def _split(call: _Call) -> list[Array]:
    axis = _attr_int(call.attrs, "axis")
    sizes = [shape[axis] for shape in call.shapes]
    return list(np.split(call.arg(0), np.cumsum(sizes)[:-1], axis=axis))


def _reduce(call: _Call) -> Array:
    kind = _attr_str(call.attrs, "kind")
    if kind not in REDUCE_FUNCTIONS:
        raise CimError(f"unknown reduction '{kind}'")
    return REDUCE_FUNCTIONS[kind](
        call.arg(0),
        axis=_attr_ints(call.attrs, "axes"),
        keepdims=_attr_flag(call.attrs, "keepdims"),
    )


def _global_pool(call: _Call) -> Array:
    x = call.arg(0)
    reduce = np.max if _attr_str(call.attrs, "kind") == "max" else np.mean
    return reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True)


def _norm(call: _Call, rms: bool) -> Array:
    return normalize(
        call.arg(0),
        call.arg(1),
        None if rms else call.optional(2),
        _attr_int(call.attrs, "axis"),
        _attr_float(call.attrs, "epsilon"),
        rms,
    )


_OPERATORS: dict[str, Callable[[_Call], Array | list[Array]]] = {
    "matmul": lambda c: np.matmul(c.arg(0), c.arg(1)),
    "where": lambda c: np.where(c.arg(0).astype(np.bool_), c.arg(1), c.arg(2)),
    "cast": lambda c: c.arg(0).astype(c.dtypes[0]),
    "clip": lambda c: np.clip(
        c.arg(0), _attr_float(c.attrs, "min"), _attr_float(c.attrs, "max")
    ),
    "softmax": lambda c: softmax(c.arg(0), _attr_int(c.attrs, "axis")),
    "layer_norm": lambda c: _norm(c, rms=False),
    "rms_norm": lambda c: _norm(c, rms=True),
    "reduce": _reduce,
    "pool": lambda c: pool(
        c.arg(0),
        _attr_str(c.attrs, "kind"),
        _attr_ints(c.attrs, "kernel"),
        _attr_ints(c.attrs, "strides"),
        _attr_ints(c.attrs, "pads"),
        _attr_flag(c.attrs, "count_include_pad"),
    ),
    "global_pool": _global_pool,
    "reshape": lambda c: c.arg(0).reshape(c.shapes[0]),
    "expand": lambda c: np.broadcast_to(c.arg(0), c.shapes[0]).copy(),
    "transpose": lambda c: np.transpose(c.arg(0), _attr_ints(c.attrs, "perm")),
    "concat": lambda c: np.concatenate(list(c.inputs), axis=_attr_int(c.attrs, "axis")),
    "split": _split,
    "slice": _slice,
    "gather": lambda c: np.take(
        c.arg(0), c.arg(1).astype(np.int64), axis=_attr_int(c.attrs, "axis")
    ),
    "pad": _pad,
    "im2col": lambda c: im2col(
        c.arg(0),
        _attr_ints(c.attrs, "kernel"),
        _attr_ints(c.attrs, "strides"),
        _attr_ints(c.attrs, "pads"),
        _attr_ints(c.attrs, "dilations"),
    ),
    "col2im": lambda c: col2im(c.arg(0), c.shapes[0]),
}

VECTOR_OPERATORS: frozenset[str] = frozenset(
    {*UNARY_FUNCTIONS, *BINARY_FUNCTIONS, *_OPERATORS}
)
"""Every vector ``op`` :func:`apply_operator` knows (``accumulate`` is the
executor's own)."""


def apply_operator(
    kind: str,
    attrs: Mapping[str, object],
    inputs: Sequence[Array],
    outputs: Sequence[tuple[Sequence[int], np.dtype[Any]]],
) -> list[Array]:
    """Apply the vector-unit operator ``kind`` (a trace vector op's ``op``).

    ``attrs`` are its parameters as the trace writes them, ``outputs`` the
    shape and type of each result (reshape, expand, split, cast and col2im
    take them from there). Float inputs are computed in float64; results are
    returned uncast. Raises :class:`CimError` for an unknown kind or bad
    attributes.
    """
    args = [
        x.astype(np.float64) if x.dtype.kind == "f" and x.dtype != np.float64 else x
        for x in (np.asarray(v) for v in inputs)
    ]
    call = _Call(
        attrs,
        args,
        [tuple(shape) for shape, _ in outputs],
        [dtype for _, dtype in outputs],
    )
    if kind in UNARY_FUNCTIONS:
        result: Array | list[Array] = UNARY_FUNCTIONS[kind](call.arg(0))
    elif kind in BINARY_FUNCTIONS:
        result = BINARY_FUNCTIONS[kind](call.arg(0), call.arg(1))
    elif kind in _OPERATORS:
        result = _OPERATORS[kind](call)
    else:
        raise CimError(
            f"unknown vector operator '{kind}' (known: "
            f"{', '.join(sorted(VECTOR_OPERATORS | {'accumulate'}))})"
        )
    return [np.asarray(r) for r in result] if isinstance(result, list) else [result]


# --------------------------------------------------------------------------
# Integer grids (quantized mode)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A tensor whose values are ``scale * (q - zero)`` for integers ``q`` in
    ``[low, high]``: what a model's ``DequantizeLinear`` (a cast of 8- or
    16-bit integers, then ``- zero point`` and ``* scale``) produces.

    Quantized mode follows grids through data movement, so an MVM whose input
    is on one feeds the integers ``q`` to the DACs with the model's scale and
    zero point instead of quantizing the input again.
    """

    scale: float
    zero: float
    low: int
    high: int

    def holds(self, value: float) -> bool:
        """Whether ``value`` is on the grid (a padding value, say)."""
        q = value / self.scale + self.zero
        return bool(abs(q - round(q)) < 1e-6 and self.low <= round(q) <= self.high)

    def codes(self, x: Array) -> Array | None:
        """The integers ``q`` of ``x``, or None if ``x`` is not on the grid."""
        q = x / self.scale + self.zero
        rounded = np.rint(q)
        if x.size == 0 or np.any(np.abs(q - rounded) > 1e-3):
            return None
        if rounded.min() < self.low or rounded.max() > self.high:
            return None
        return rounded


_GRID_INTEGERS = frozenset(
    np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16)
)
"""Integer types a cast to float puts on a grid (a quantized tensor's)."""

_GRID_MOVES = frozenset(
    {"reshape", "transpose", "expand", "slice", "split", "col2im", "gather"}
)
"""Vector operators whose outputs hold some of their first input's values."""


def _scalar(value: Array | None) -> float | None:
    if value is None or value.size == 0 or value.dtype.kind not in "biuf":
        return None
    first = value.reshape(-1)[0]
    return float(first) if np.all(value == first) else None


def _is_epilogue_key(key: str) -> bool:
    return key == "then" or key.startswith("then_")


def _epilogue_params(op: VectorOp) -> dict[str, object]:
    """The parameters of the activation a vector op applies (its
    ``then_*`` attributes, without the prefix)."""
    return {
        key.removeprefix("then_"): value
        for key, value in op.attrs.items()
        if key.startswith("then_")
    }


def grid_after(
    kind: str,
    attrs: Mapping[str, object],
    inputs: Sequence[Array],
    grids: Sequence[Grid | None],
    out_dtype: np.dtype[Any],
) -> Grid | None:
    """The grid of a vector operator's outputs, given its inputs' grids."""
    first = grids[0] if grids else None
    if kind == "cast" and out_dtype.kind == "f":
        source = inputs[0].dtype
        if source in _GRID_INTEGERS:
            info = np.iinfo(source)
            return Grid(1.0, 0.0, int(info.min), int(info.max))
        return first
    if kind in _GRID_MOVES:
        return first
    if kind == "concat":
        return first if all(g == first for g in grids) else None
    if kind in ("relu", "pool", "global_pool", "im2col", "pad") and first is None:
        return None
    if first is not None:
        if kind == "relu" and first.holds(0.0):
            return first
        if kind in ("pool", "global_pool") and attrs.get("kind") == "max":
            return first
        if kind == "im2col" and first.holds(0.0):
            return first
        if kind == "pad" and attrs.get("mode") != "constant":
            return first
        if kind == "pad" and first.holds(float(_attr_float(attrs, "value"))):
            return first
    if kind in ("add", "sub", "mul", "div") and len(inputs) == 2 and first:
        c = _scalar(inputs[1]) if grids[1] is None else None
        if c is None:
            return None
        if kind == "add":
            return Grid(
                first.scale, first.zero - c / first.scale, first.low, first.high
            )
        if kind == "sub":
            return Grid(
                first.scale, first.zero + c / first.scale, first.low, first.high
            )
        if c == 0:
            return None
        scale = first.scale * c if kind == "mul" else first.scale / c
        return Grid(scale, first.zero, first.low, first.high)
    if kind in ("add", "mul") and len(inputs) == 2 and grids[1] is not None:
        return grid_after(kind, attrs, inputs[::-1], grids[::-1], out_dtype)
    return None


# --------------------------------------------------------------------------
# Weights on arrays
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where one tile of a weight slice sits in the arrays of a program/mvm.

    Rows ``k`` and columns ``n`` of the block-diagonal ``[G*K, G*N]`` matrix
    occupy array ``array`` (an index into the op's array list) from cell row
    ``row``; output ``j`` of the tile uses the ``bit_slices`` columns from
    ``(slot + j) * bit_slices``, least significant slice first.
    """

    array: int
    row: int
    slot: int
    k: tuple[int, int]
    n: tuple[int, int]


def groups_per_array(info: WeightInfo, target: HardwareTarget) -> int:
    """Groups packed block-diagonally into one array (as
    ``cim_tile.TilingAttr.for_matrix`` decides); 1 when not packed."""
    outputs = target.array.cols // target.bit_slices
    if info.groups < 2:
        return 1
    return max(
        1, min(info.groups, target.array.rows // info.held_k, outputs // info.held_n)
    )


def _cuts(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut at the multiples of ``size``."""
    return [
        (max(start, t * size), min(stop, (t + 1) * size))
        for t in range(start // size, -(-stop // size))
    ]


def slice_placements(
    info: WeightInfo,
    k: tuple[int, int],
    n: tuple[int, int],
    target: HardwareTarget,
) -> tuple[int, tuple[Placement, ...]]:
    """The arrays a ``[k0, k1) x [n0, n1)`` slice of a weight needs, and its tiles.

    Each group's local rows are cut at multiples of ``array.rows`` (row
    tiles) and its local outputs at multiples of ``cols // bit_slices``
    (column tiles); arrays are taken group by group, column tile by column
    tile, row tile by row tile. Packed groups share one array along its
    diagonal. Raises :class:`CimError` for a slice outside the matrix or not
    block-diagonal. A weight whose column tiles hold different rows
    (``column_row_tiles``) takes for each column tile only the arrays of
    its own rows in the slice.
    """
    groups, big_k, big_n = info.groups, info.held_k, info.held_n
    if info.column_row_tiles and len(info.column_row_tiles) != -(
        -big_n // (target.array.cols // target.bit_slices)
    ):
        raise CimError(
            f"weight '{info.name}' lists row tiles of "
            f"{len(info.column_row_tiles)} column tiles, but its {big_n} "
            "columns make a different number"
        )
    (k0, k1), (n0, n1) = k, n
    if not (0 <= k0 < k1 <= groups * big_k and 0 <= n0 < n1 <= groups * big_n):
        raise CimError(
            f"slice k [{k0}, {k1}) n [{n0}, {n1}) is empty or outside weight "
            f"'{info.name}' ({groups} x {big_k} x {big_n})"
        )
    k_groups = range(k0 // big_k, -(-k1 // big_k))
    n_groups = range(n0 // big_n, -(-n1 // big_n))
    if k_groups != n_groups:
        raise CimError(
            f"slice k [{k0}, {k1}) n [{n0}, {n1}) of weight '{info.name}' spans "
            "different groups in k and n"
        )
    rows = target.array.rows
    outputs = target.array.cols // target.bit_slices
    packed = groups_per_array(info, target)
    tiles: list[Placement] = []
    if packed > 1:
        if k0 % big_k or k1 % big_k or n0 % big_n or n1 % big_n:
            raise CimError(
                f"slice k [{k0}, {k1}) n [{n0}, {n1}) of packed weight "
                f"'{info.name}' does not hold whole groups"
            )
        for index, g in enumerate(k_groups):
            position = index % packed
            tiles.append(
                Placement(
                    index // packed,
                    position * big_k,
                    position * big_n,
                    (g * big_k, (g + 1) * big_k),
                    (g * big_n, (g + 1) * big_n),
                )
            )
        return -(-len(k_groups) // packed), tuple(tiles)
    array = 0
    for g in k_groups:
        local_k = (max(k0, g * big_k) - g * big_k, min(k1, (g + 1) * big_k) - g * big_k)
        local_n = (max(n0, g * big_n) - g * big_n, min(n1, (g + 1) * big_n) - g * big_n)
        for c0, c1 in _cuts(*local_n, outputs):
            top = min(local_k[1], info.column_rows(c0 // outputs, rows))
            for r0, r1 in _cuts(local_k[0], top, rows):
                tiles.append(
                    Placement(
                        array,
                        r0 % rows,
                        c0 % outputs,
                        (g * big_k + r0, g * big_k + r1),
                        (g * big_n + c0, g * big_n + c1),
                    )
                )
                array += 1
    return array, tuple(tiles)


def weight_blocks(info: WeightInfo, stored: Array) -> Array:
    """The stored weight as ``[groups, K, N]`` blocks, through its layout."""
    return as_matrix(
        info.name, info.layout, info.groups, info.k, info.n, stored.astype(np.float64)
    )


def _signed_max(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def quantize_symmetric(values: Array, bits: int) -> tuple[Array, float]:
    """Symmetric per-tensor quantization: integers in ``[-(2^(b-1)-1),
    2^(b-1)-1]`` (as float64) and the scale with ``values ~ q * scale``."""
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    scale = peak / _signed_max(bits) if peak > 0 else 1.0
    q = np.clip(np.rint(values / scale), -_signed_max(bits), _signed_max(bits))
    return q, scale


def quantize_per_column(blocks: Array, bits: int) -> tuple[Array, Array]:
    """Symmetric quantization of ``[G, K, N]`` weight blocks with one scale
    per output column (the ``G * N`` scales in column order)."""
    peak = np.max(np.abs(blocks), axis=1, keepdims=True) if blocks.size else blocks
    scale = np.where(peak > 0, peak / _signed_max(bits), 1.0)
    q = np.clip(np.rint(blocks / scale), -_signed_max(bits), _signed_max(bits))
    return q, scale.reshape(-1)


AdcKey: TypeAlias = tuple[str, tuple[int, int], tuple[int, int], int, int]
"""One ADC range's place: an MVM's weight, its ``k`` and ``n`` slice, the
array's position among the MVM's arrays and the first row of the word-line
pass."""


@dataclass(frozen=True)
class Calibration:
    """What calibration inputs set for quantized runs
    (:func:`cimflow.cimsim.calibration.calibrate`): each MVM input's grid
    (its DAC codes' scale and zero), whether weights take a scale per output
    column, and each ADC's full scale per column group (the columns of one
    weight bit slice in one array and word-line pass): the column sum its
    top code stands for; larger sums clip."""

    inputs: Mapping[str, Grid]
    per_channel_weights: bool
    adc_full_scale: Mapping[AdcKey, Array]
    """Per key, one full scale per bit slice (empty: ideal ADCs)."""


@dataclass
class Recording:
    """What a run observes for calibration and per-layer metrics: the input
    of each MVM (once per tensor) and the largest column sum each ADC saw
    per bit slice (before conversion, which a recording run skips)."""

    inputs: dict[str, Array] = field(default_factory=lambda: {})
    layers: dict[str, str] = field(default_factory=lambda: {})
    """The ONNX node of the first MVM reading each recorded input."""
    adc_peaks: dict[AdcKey, Array] | None = None
    """Set to a dict to record ADC peaks (and run the ADCs ideal)."""
    input_planes: dict[str, PlaneCounts] | None = None
    """Set to a dict to count, per MVM weight, the input bit-planes its
    arrays drive (per array, vector and word-line pass) and those zero on
    every driven row of the pass, the planes zero detectors skip, and the
    same per detector (``array.zero_detect_rows`` rows; quantized mode)."""


# --------------------------------------------------------------------------
# The executor
# --------------------------------------------------------------------------


@dataclass
class _Stored:
    value: Array
    writers: tuple[int, ...]
    """The ops whose results these are (none for model inputs and weights)."""
    arrays: frozenset[int] = frozenset()
    bands: tuple[tuple[int, int, int, int], ...] = ()
    """For a tensor written in pipeline steps: ``(axis, start, stop, writer)``
    of each step; rows no step wrote are NaN."""


@dataclass
class _Partials:
    """Partial sums of an MVM output waiting to be accumulated."""

    shape: tuple[int, int]
    weight: str
    reduction: int
    """K: the reduction length every output element needs."""
    covered: Array
    """Per output element, the reduction rows its blocks have summed."""
    count: Array
    """Per output element, how many blocks it has."""
    blocks: list[tuple[int, int, int, int, Array, int]] = field(
        default_factory=lambda: []
    )
    """``(v0, v1, n0, n1, values, writer)`` of each partial-sum block."""
    writers: list[int] = field(default_factory=lambda: [])
    level: str = "buffer"
    """Where the MVMs wrote them: ``buffer`` (on chip), ``dram`` or
    ``memory`` (the memory-mode ``arrays``)."""
    arrays: frozenset[int] = frozenset()


@dataclass
class _ArrayState:
    cells: Array | None = None
    writer: int | None = None
    readers: list[int] = field(default_factory=lambda: [])
    memory: bool = False
    conductance: Array | None = None
    """What the cells hold after programming errors and stuck cells (None:
    exactly ``cells``)."""


class _Noise:
    """The target's non-idealities (``[nonideal]``), each draw seeded by the
    target's seed, what it models and where: a program (its op and array),
    a physical array (stuck cells, ADC offsets), a read (its op, array
    position and word-line pass)."""

    def __init__(self, hw: HardwareTarget) -> None:
        self.params = hw.nonideal
        self.top = 2**hw.array.cell_bits - 1
        self.cols = hw.array.cols
        self.offsets: dict[int, Array] = {}

    def rng(self, *where: int) -> np.random.Generator:
        return np.random.default_rng([self.params.seed, *where])

    @property
    def cells_ideal(self) -> bool:
        p = self.params
        return p.program_sigma == 0 and p.stuck_at_zero == 0 and p.stuck_at_one == 0

    def programmed(self, cells: Array, op_id: int, array: int) -> Array:
        """The levels ``cells`` hold once programmed into ``array``."""
        p = self.params
        held: Array = cells
        shape: tuple[int, ...] = tuple(int(d) for d in cells.shape)
        if p.program_sigma:
            error: Array = self.rng(1, op_id, array).standard_normal(shape)
            held = cells + p.program_sigma * self.top * error
        if p.stuck_at_zero or p.stuck_at_one:
            draw: Array = self.rng(2, array).random(shape)
            held = np.where(draw < p.stuck_at_zero, 0.0, held)
            held = np.where(draw >= 1.0 - p.stuck_at_one, float(self.top), held)
        return held

    def read_error(
        self, digits: Array, columns: int, where: tuple[int, int, int]
    ) -> Array | None:
        """Read noise of the column sums of one word-line pass (``digits``:
        ``[input bit groups, vectors, rows]``), or None."""
        sigma = self.params.read_sigma
        if not sigma:
            return None
        spread: Array = sigma * self.top * np.sqrt((digits**2).sum(axis=2))
        draw = self.rng(3, *where).standard_normal((*spread.shape, columns))
        return spread[:, :, None] * draw

    def adc_offset(self, array: int, first_column: int, width: int) -> Array | float:
        """The fixed offsets (LSB) of an array's ADCs on ``width`` columns."""
        if not self.params.adc_offset_lsb:
            return 0.0
        offsets = self.offsets.get(array)
        if offsets is None:
            draw = self.rng(4, array).standard_normal(self.cols)
            offsets = self.offsets[array] = self.params.adc_offset_lsb * draw
        return offsets[first_column : first_column + width]

    def bow(self, codes: Array, levels: int) -> Array:
        """The integral nonlinearity at ``codes`` (LSB): ``4 inl c (1 - c)``
        at the fraction ``c`` of the range."""
        fraction: Array = np.clip(codes / levels, 0.0, 1.0)
        return 4.0 * self.params.adc_inl_lsb * fraction * (1.0 - fraction)


class _Executor:
    """State and semantics of one functional run."""

    def __init__(
        self,
        trace: Trace,
        weights: Mapping[str, Array],
        mode: Mode,
        quantization: Mapping[str, WeightQuantization],
        calibration: Calibration | None = None,
        recording: Recording | None = None,
    ) -> None:
        self.trace = trace
        self.hw = trace.target
        self.mode: Mode = mode
        self.weights = weights
        self.quantization = quantization
        self.calibration = calibration
        self.recording = recording
        self.noise = _Noise(self.hw)
        self.grids: dict[str, Grid] = {}
        """Tensors on an integer grid (quantized mode)."""
        self.tensor_info = {t.name: t for t in trace.tensors}
        self.input_names = {i.name for i in trace.model.inputs}
        self.weight_info = {w.name: w for w in trace.weights}
        self.constants: dict[str, Array] = {}
        for const in trace.constants:
            dtype = numpy_dtype(const.dtype)
            if dtype == np.bool_:
                value = np.array([v != 0 for v in const.values], dtype=np.bool_)
            elif dtype.kind in "iu":
                value = np.array([int(v) for v in const.values], dtype=dtype)
            else:
                value = np.array(const.values, dtype=np.float64)
            self.constants[const.name] = value.reshape(const.shape)
        self.dram: dict[str, _Stored] = {}
        self.buffer: dict[str, _Stored] = {}
        self.memory: dict[str, _Stored] = {}
        self.dropped: dict[str, int] = {}
        """Tensors memory-mode arrays held until a switch to compute (by id)."""
        self.partials: dict[str, _Partials] = {}
        self.arrays: dict[int, _ArrayState] = {}
        self.reach = Reachability()
        self.blocks: dict[str, tuple[Array, float | Array]] = {}
        self.row_maps: dict[str, RowMap] = {}
        self.column_maps: dict[str, ColumnTiling] = {}
        """Per column-compacted weight, the columns its row tiles hold
        (:func:`~cimflow.analysis.sparse_tiling.held_columns`)."""
        self.group_starts: dict[str, Array] = {}
        """Per IntraBlock weight, each held row's group's first weight row."""
        self.placements: dict[
            tuple[str, tuple[int, int], tuple[int, int]],
            tuple[int, tuple[Placement, ...]],
        ] = {}
        self.op: TraceOp | None = None

    # -- messages and ordering ---------------------------------------------

    def fail(self, message: str) -> FunctionalError:
        where = op_label(self.op) if self.op is not None else "the trace"
        return FunctionalError(f"{self.trace.origin}: {where}: {message}")

    def requires(self, writers: Sequence[int | None], what: str) -> None:
        """The current op must (transitively) depend on every writer."""
        assert self.op is not None
        for writer in writers:
            if writer is not None and not self.reach.depends(self.op.id, writer):
                raise self.fail(
                    f"reads {what} written by op {writer} but does not depend on it"
                )

    # -- storage -----------------------------------------------------------

    def level(self, location: str) -> dict[str, _Stored]:
        """The dictionary of a storage level; the global buffer and the
        cores' local buffers share one."""
        if location == "dram":
            return self.dram
        if location in ("buffer", "local"):
            return self.buffer
        return self.memory

    def where_is(self, name: str) -> str:
        places = [
            loc
            for loc, level in (
                ("DRAM", self.dram),
                ("the buffer", self.buffer),
                ("memory arrays", self.memory),
            )
            if name in level
        ]
        partial = self.partials.get(name)
        if partial is not None:
            places.append(
                "unaccumulated partial sums"
                + {"buffer": "", "dram": " in DRAM", "memory": " in memory arrays"}[
                    partial.level
                ]
            )
        if not places and name in self.weights and name not in self.tensor_info:
            places.append("DRAM (a weight never loaded)")
        if not places and name in self.dropped:
            places.append(
                f"nowhere (op {self.dropped[name]} switched the memory-mode "
                "arrays holding it to compute mode)"
            )
        return " and ".join(places) if places else "nowhere (never produced)"

    def stored_at(self, location: str, name: str, verb: str = "reads") -> _Stored:
        """``name`` at ``location`` (its partial sums there completed
        first; in DRAM also a weight of the model)."""
        partial = self.partials.get(name)
        if partial is not None and partial.level == _partial_level(location):
            self.materialize(name)
        stored = self.level(location).get(name)
        if (
            stored is None
            and location == "dram"
            and name not in self.tensor_info
            and name in self.weights
        ):
            stored = _Stored(np.asarray(self.weights[name]), ())
        if stored is None:
            raise self.fail(
                f"{verb} '{name}' from {location}, but it is in {self.where_is(name)}"
            )
        return stored

    def fetch(self, location: str, name: str) -> _Stored:
        """``name`` at ``location``, for a transfer."""
        stored = self.stored_at(location, name)
        self.requires(stored.writers, f"'{name}'")
        return stored

    def read(self, name: str) -> Array:
        """An operand of on-chip compute: a constant or a tensor on chip."""
        if name in self.constants:
            return self.constants[name]
        partial = self.partials.get(name)
        if partial is not None and partial.level != "dram":
            self.materialize(name)
        stored = self.buffer.get(name) or self.memory.get(name)
        if stored is None:
            raise self.fail(
                f"reads '{name}', which is not on chip: it is in {self.where_is(name)}"
            )
        return self.value_of(stored, name)

    def value_of(self, stored: _Stored, name: str) -> Array:
        """What the current op reads of a stored tensor: all of it, after
        every op that wrote it (of a tensor written in steps, see
        :meth:`visible`)."""
        if not stored.bands:
            self.requires(stored.writers, f"'{name}'")
            return stored.value
        if name in self.partials:  # some columns still wait for an accumulate
            self.materialize(name)
        return self.visible(stored)

    def memory_mode(self, arrays: frozenset[int], what: str) -> None:
        """Arrays an op streams from or to are in memory mode."""
        for index in sorted(arrays):
            if not self.array(index).memory:
                raise self.fail(f"{what} array {index}, which is in compute mode")

    def held(self, name: str, arrays: frozenset[int], what: str) -> _Stored:
        """``name`` in memory-mode ``arrays``, which must all hold it."""
        partial = self.partials.get(name)
        if partial is not None and partial.level == "memory":
            self.materialize(name)
        stored = self.memory.get(name)
        if stored is None or not arrays <= stored.arrays:
            raise self.fail(
                f"{what} '{name}' from memory-mode arrays that do not hold it "
                f"(it is in {self.where_is(name)})"
            )
        return stored

    def streamed_operand(
        self, op: VectorOp, name: str, in_arrays: frozenset[int]
    ) -> tuple[Array, frozenset[int]]:
        """An input of a vector op, and the memory-mode arrays it came from:
        a constant from anywhere; with ``in_bytes`` from where ``in_from``
        says (from DRAM also a model parameter; from memory-mode arrays an
        activation tensor that some of ``in_arrays`` hold), else on chip."""
        if name in self.constants:
            return self.constants[name], frozenset()
        level = op.in_from if op.in_bytes or op.in_from != "buffer" else "local"
        activation = name in self.tensor_info or name in self.input_names
        if level == "dram":
            return self.value_of(self.stored_at("dram", name, "streams"), name), (
                frozenset()
            )
        if level != "memory" or not activation:
            return self.read(name), frozenset()
        partial = self.partials.get(name)
        if partial is not None and partial.level == "memory":
            self.materialize(name)
        stored = self.memory.get(name)
        holding: frozenset[int] = (
            frozenset() if stored is None else stored.arrays & in_arrays
        )
        if stored is None or not holding:
            raise self.fail(
                f"streams '{name}' from memory-mode arrays that do not hold it "
                f"(it is in {self.where_is(name)})"
            )
        return self.value_of(stored, name), holding

    def visible(self, stored: _Stored) -> Array:
        """A tensor written in steps as the current op may see it: rows of
        steps it does not depend on (and rows never written) are NaN, so a
        result that uses them shows the missing dependency."""
        assert self.op is not None
        value = stored.value
        hidden = [
            band for band in stored.bands if not self.reach.depends(self.op.id, band[3])
        ]
        if not hidden:
            return value
        value = value.copy()
        for axis, start, stop, _ in hidden:
            index: list[slice] = [slice(None)] * value.ndim
            index[axis] = slice(start, stop)
            value[tuple(index)] = np.nan
        return value

    def check_complete(self, value: Array, what: str) -> None:
        if value.dtype.kind == "f" and np.isnan(value).any():
            raise self.fail(
                f"{what} uses rows that ops it does not depend on wrote (or "
                "that nothing wrote yet)"
            )

    def write(
        self,
        name: str,
        value: Array,
        writers: tuple[int, ...] | None = None,
        block: tuple[int, int, int] | None = None,
        level: str = "buffer",
        arrays: frozenset[int] = frozenset(),
        vectors: tuple[int, int] | None = None,
    ) -> None:
        """A result of on-chip compute (by the current op unless ``writers``
        says otherwise), checked against its declaration, written to
        ``level`` (the memory-mode ``arrays``, with those that held it
        before); with ``block`` only that range of it (one pipeline
        step), and with ``vectors`` only those rows of it (a part of a
        chunk's accumulation; recorded as a step of the block's range, so
        readers must depend on every part)."""
        assert self.op is not None
        info = self.tensor_info.get(name)
        if info is None:
            raise self.fail(f"writes '{name}', which is not a declared tensor")
        if tuple(value.shape) != info.shape:
            raise self.fail(
                f"produces '{name}' of shape {list(value.shape)}, declared "
                f"{list(info.shape)}"
            )
        dtype = _compute_dtype(numpy_dtype(info.dtype))
        store = self.level(level)
        before = store.get(name)
        if before is not None:
            arrays |= before.arrays
        if block is None:
            store[name] = _Stored(
                np.asarray(value).astype(dtype),
                (self.op.id,) if writers is None else writers,
                arrays,
            )
            return
        axis, start, stop = block
        if not 0 <= axis < value.ndim or stop > value.shape[axis]:
            raise self.fail(
                f"block {list(block)} is outside '{name}' of shape {list(info.shape)}"
            )
        stored = before
        if stored is None or not stored.bands:
            stored = _Stored(np.full(info.shape, np.nan, dtype=dtype), ())
        index: list[slice] = [slice(None)] * value.ndim
        index[axis] = slice(start, stop)
        if vectors is not None:
            index[0] = slice(*vectors)
        target = stored.value
        target[tuple(index)] = np.asarray(value)[tuple(index)].astype(dtype)
        writer = self.op.id
        store[name] = _Stored(
            target,
            (*stored.writers, writer),
            arrays,
            bands=(*stored.bands, (axis, start, stop, writer)),
        )

    # -- partial sums ------------------------------------------------------

    def materialize(self, name: str) -> None:
        """Partial sums read as a tensor without an accumulate: one block
        per element, each over the whole reduction."""
        partial = self.partials.pop(name)
        count, covered = partial.count, partial.covered
        # outputs earlier accumulates already wrote (a sliced weight's
        # column tiles with one row tile need none) take no block here
        earlier = self.level(partial.level).get(name)
        written = np.zeros(partial.shape, dtype=bool)
        if earlier is not None and earlier.bands:
            written = ~np.isnan(np.asarray(earlier.value, dtype=np.float64))
        pending = ~written
        if np.any(count[pending] != 1) or np.any(covered[pending] != partial.reduction):
            blocks = int(count.max())
            raise self.fail(
                f"reads '{name}' while its partial sums are not accumulated "
                f"(up to {blocks} blocks per element, "
                f"{int(covered.min())} to {int(covered.max())} of "
                f"{partial.reduction} reduction rows); a vector op "
                "'accumulate' is missing"
            )
        value = np.zeros(partial.shape)
        writers, bands = (
            tuple(partial.writers),
            tuple((0, v0, v1, w) for v0, v1, _, _, _, w in partial.blocks),
        )
        if earlier is not None and earlier.bands:
            value = np.where(written, earlier.value, 0.0)
            writers, bands = (*earlier.writers, *writers), (*earlier.bands, *bands)
        for v0, v1, n0, n1, block, _ in partial.blocks:
            value[v0:v1, n0:n1] = block
        dtype = _compute_dtype(numpy_dtype(self.tensor_info[name].dtype))
        self.level(partial.level)[name] = _Stored(
            value.astype(dtype), writers, partial.arrays, bands=bands
        )

    def add_partial(
        self,
        name: str,
        info: WeightInfo,
        v: tuple[int, int],
        tile: Placement,
        block: Array,
        level: str = "buffer",
        arrays: frozenset[int] = frozenset(),
    ) -> None:
        """One partial-sum block of ``name``, written to ``level`` (the
        memory-mode ``arrays``)."""
        assert self.op is not None
        declared = self.tensor_info.get(name)
        if declared is None or len(declared.shape) != 2:
            raise self.fail(f"writes '{name}', which is not a declared 2-D tensor")
        done = self.level(level).get(name)
        if done is not None and not done.bands:
            raise self.fail(f"writes partial sums into '{name}', which is complete")
        shape = (declared.shape[0], declared.shape[1])
        partial = self.partials.get(name)
        if partial is None:
            zeros = np.zeros(shape, dtype=np.int64)
            partial = _Partials(
                shape, info.name, info.held_k, zeros, zeros.copy(), level=level
            )
            self.partials[name] = partial
        if partial.level != level:
            raise self.fail(
                f"streams partial sums of '{name}' to {level}, but its other "
                f"partial sums are in {self.where_is(name)}"
            )
        partial.arrays |= arrays
        if partial.weight != info.name:
            raise self.fail(
                f"adds partial sums of weight '{info.name}' to '{name}', which "
                f"holds partial sums of weight '{partial.weight}'"
            )
        v0, v1 = v
        (n0, n1), landing = self.output_columns(info, tile)
        if landing is not None:
            placed = np.zeros((block.shape[0], n1 - n0), dtype=block.dtype)
            real = landing >= 0
            placed[:, landing[real]] = block[:, real]
            block = placed
        partial.blocks.append((v0, v1, n0, n1, block, self.op.id))
        partial.covered[v0:v1, n0:n1] += (
            tile.k[1] - tile.k[0] + self.sliced_off(info, tile)
        )
        partial.count[v0:v1, n0:n1] += 1
        if not partial.writers or partial.writers[-1] != self.op.id:
            partial.writers.append(self.op.id)

    def accumulate(self, op: VectorOp) -> None:
        """Add the partial sums of a tensor (of rows ``op.block``, or all of
        them) and the bias, if named."""
        self.grids.pop(op.outputs[0] if op.outputs else "", None)
        residual = op.attrs.get("residual")
        operands = len(op.inputs) - (residual is not None)
        if operands not in (1, 2) or list(op.outputs) != [op.inputs[0]]:
            raise self.fail(
                "accumulate takes the partial sums' tensor (and a bias, and a "
                "residual when it adds one) and writes that tensor"
            )
        if residual is not None and residual not in RESIDUAL_LAYOUTS:
            raise self.fail(
                f"accumulate adds a residual laid out as {residual!r} "
                f"(layouts: {', '.join(RESIDUAL_LAYOUTS)})"
            )
        name = op.inputs[0]
        partial = self.partials.get(name)
        if partial is None:
            raise self.fail(
                f"accumulates '{name}', which has no partial sums "
                f"(it is in {self.where_is(name)})"
            )
        source = op.in_from if op.in_bytes or op.in_from != "buffer" else "local"
        in_arrays = frozenset(array_ids(op.in_arrays))
        # partial sums on chip are added there, whatever else (a bias) the op
        # streams in from elsewhere
        if partial.level != "buffer" and partial.level != _partial_level(source):
            raise self.fail(
                f"accumulates '{name}' from {_LEVEL_TEXT[source]}, but it is in "
                f"{self.where_is(name)}"
            )
        if source == "memory":
            self.memory_mode(in_arrays, "streams from")
            if partial.level == "memory" and not in_arrays <= partial.arrays:
                raise self.fail(
                    f"accumulates '{name}' from memory-mode arrays that do not "
                    "hold its partial sums"
                )
        bounds = [(0, partial.shape[0]), (0, partial.shape[1])]
        if op.block is not None:
            axis, start, stop = op.block
            if axis not in (0, 1):
                raise self.fail(
                    "accumulate steps cut the vectors (axis 0) or the outputs (axis 1)"
                )
            info = self.weight_info.get(partial.weight)
            if axis == 1 and info is not None and info.columns:
                # the held columns' outputs (and the dropped ones they own)
                start, stop = self.output_of(info, start), self.output_of(info, stop)
            bounds[axis] = (start, stop)
        vectors: tuple[int, int] | None = None
        stated = op.attrs.get("vectors")
        if stated is not None:
            items = cast(list[object], stated) if isinstance(stated, list) else []
            values = [v for v in items if isinstance(v, int)]
            if not (
                op.block is not None
                and op.block[0] == 1
                and len(items) == len(values) == 2
                and 0 <= values[0] < values[1] <= partial.shape[0]
            ):
                raise self.fail(
                    f"accumulate's vectors {stated!r} are not [v0, v1) of the "
                    f"{partial.shape[0]} vectors of '{name}' with a block over its "
                    "columns ([1, n0, n1])"
                )
            vectors = bounds[0] = (values[0], values[1])
        (r0, r1), (c0, c1) = bounds
        inside = [
            b
            for b in partial.blocks
            if b[0] < r1 and r0 < b[1] and b[2] < c1 and c0 < b[3]
        ]
        self.requires([b[5] for b in inside], f"partial sums of '{name}'")
        if op.attrs.get("running"):
            return  # partial sums of some reduction rows summed; more join later
        covered = partial.covered[r0:r1, c0:c1]
        if np.any(covered != partial.reduction):
            low, high = int(covered.min()), int(covered.max())
            raise self.fail(
                f"accumulates '{name}' whose partial sums cover {low} to {high} "
                f"of the {partial.reduction} reduction rows per output"
            )
        value = np.zeros(partial.shape)
        for v0, v1, n0, n1, block, _ in inside:
            value[v0:v1, n0:n1] += block
        if operands == 2:
            bias, _ = self.streamed_operand(op, op.inputs[1], in_arrays)
            bias = bias.astype(np.float64).reshape(-1)
            if bias.size != partial.shape[1]:
                raise self.fail(
                    f"bias '{op.inputs[1]}' has {bias.size} values for "
                    f"{partial.shape[1]} outputs"
                )
            value = value + bias
        if residual is not None:
            skip = self.residual_rows(op, str(residual), partial.shape, in_arrays)
            value[r0:r1, c0:c1] += skip[r0:r1, c0:c1]
        then = self.activation_after(op)
        if then is not None:
            value = self.apply_activation(then, op, value)
        partial.covered[r0:r1, c0:c1] = -1
        partial.blocks = [
            b
            for b in partial.blocks
            if not (r0 <= b[0] and b[1] <= r1 and c0 <= b[2] and b[3] <= c1)
        ]
        if not partial.blocks:
            del self.partials[name]
        block = None if op.block is None else (op.block[0], *bounds[op.block[0]])
        self.write_output(op, name, value, block, vectors)

    def residual_rows(
        self,
        op: VectorOp,
        layout: str,
        shape: tuple[int, int],
        in_arrays: frozenset[int],
    ) -> Array:
        """An accumulation's residual (its last input) as ``[V, N]`` rows
        lined up with the outputs (``layout``: ``rows``, a reshape of them;
        ``nchw``, the feature map ``col2im`` folds them into)."""
        name = op.inputs[-1]
        skip, _ = self.streamed_operand(op, name, in_arrays)
        skip = np.asarray(skip, dtype=np.float64)
        if layout == "nchw" and skip.ndim == 4 and skip.shape[1] == shape[1]:
            skip = skip.transpose(0, 2, 3, 1)
        elif layout == "nchw":
            raise self.fail(
                f"residual '{name}' of shape {list(skip.shape)} is no feature map "
                f"of {shape[1]} channels"
            )
        if skip.size != shape[0] * shape[1]:
            raise self.fail(
                f"residual '{name}' has {skip.size} values for {shape[0]} x "
                f"{shape[1]} outputs"
            )
        return skip.reshape(shape)

    def activation_after(self, op: VectorOp) -> str | None:
        """The activation ``attrs.then`` a vector op applies to its results
        as they leave, if any (a unary kind, or ``clip`` with ``then_min``
        and ``then_max``)."""
        then = op.attrs.get("then")
        if then is None:
            return None
        if not isinstance(then, str) or then not in EPILOGUE_ACTIVATIONS:
            raise self.fail(f"'{op.op}' applies unknown activation {then!r}")
        if op.op not in EPILOGUE_HOSTS:
            raise self.fail(f"'{op.op}' cannot apply an activation (then)")
        return then

    def apply_activation(self, kind: str, op: VectorOp, value: Array) -> Array:
        shape = [(value.shape, value.dtype)]
        try:
            (result,) = apply_operator(kind, _epilogue_params(op), [value], shape)
        except (CimError, ValueError, TypeError) as error:
            message = " ".join(str(error).split()) or type(error).__name__
            raise self.fail(f"'{op.op}' then {kind}: {message}") from None
        return np.asarray(result)

    def write_output(
        self,
        op: VectorOp,
        name: str,
        value: Array,
        block: tuple[int, int, int] | None,
        vectors: tuple[int, int] | None = None,
    ) -> None:
        """An output of a vector op, written where ``out_to`` says when it
        streams its outputs (else on chip)."""
        level = op.out_to if op.out_bytes or op.out_to != "buffer" else "buffer"
        arrays = frozenset(array_ids(op.out_arrays))
        if level == "memory":
            self.memory_mode(arrays, "streams to")
        self.write(
            name, value, block=block, level=level, arrays=arrays, vectors=vectors
        )

    # -- arrays ------------------------------------------------------------

    def array(self, index: int) -> _ArrayState:
        state = self.arrays.get(index)
        if state is None:
            state = self.arrays[index] = _ArrayState()
        return state

    def slice_tiles(
        self, weight: str, k: tuple[int, int], n: tuple[int, int], arrays: int
    ) -> tuple[WeightInfo, tuple[Placement, ...]]:
        info = self.weight_info.get(weight)
        if info is None:
            raise self.fail(f"weight '{weight}' is not listed in the trace's weights")
        key = (weight, k, n)
        if key not in self.placements:
            try:
                self.placements[key] = slice_placements(info, k, n, self.hw)
            except CimError as error:
                raise self.fail(str(error)) from None
        needed, tiles = self.placements[key]
        if needed != arrays:
            raise self.fail(
                f"lists {arrays} arrays, but weight '{weight}' k [{k[0]}, {k[1]}) "
                f"n [{n[0]}, {n[1]}) takes {needed} on "
                f"{self.hw.array.rows}x{self.hw.array.cols} arrays"
            )
        return info, tiles

    def weight_values(
        self, info: WeightInfo, stored: Array
    ) -> tuple[Array, float | Array]:
        """``[G, K, N]`` values to program: exact reals, or offset-binary
        unsigned integers and their scale (one, or one per output column
        when the model gives per-channel scales)."""
        cached = self.blocks.get(info.name)
        if cached is None:
            try:
                blocks = weight_blocks(info, stored)
            except CimError as error:
                raise self.fail(str(error)) from None
            if info.intra_block:
                blocks = intra_block_matrix(blocks, self.row_map(info, blocks))
            elif info.rows:
                blocks = compacted_matrix(
                    blocks, self.row_map(info, blocks), self.outputs_per_array
                )
            elif info.columns:
                blocks = column_matrix(
                    blocks, self.column_tiling(info, blocks), self.hw.array.rows
                )
            bits = self.hw.precision.weight_bits
            model = self.model_weight_integers(info, blocks)
            if self.mode == "exact":
                cached = (blocks, 1.0)
            elif model is not None:
                cached = (model[0] + 2 ** (bits - 1), model[1])
            elif self.calibration is not None and self.calibration.per_channel_weights:
                q, scales = quantize_per_column(blocks, bits)
                cached = (q + 2 ** (bits - 1), scales)
            else:
                q, scale = quantize_symmetric(blocks, bits)
                cached = (q + 2 ** (bits - 1), scale)
            self.blocks[info.name] = cached
        return cached

    def model_weight_integers(
        self, info: WeightInfo, blocks: Array
    ) -> tuple[Array, float | Array] | None:
        """The model's own integers and scales of a dequantized weight (per
        tensor, or per output channel) if they fit the target's weight bits."""
        quant = self.quantization.get(info.name)
        if quant is None:
            return None
        columns = info.groups * info.n
        output_axis = 1 if info.layout == "kn" else 0
        if len(quant.scale) == 1:
            scale: float | Array = quant.scale[0]
            per_column = np.full(columns, quant.scale[0])
        elif quant.axis == output_axis and len(quant.scale) == columns:
            scale = per_column = np.array(quant.scale)
        else:
            return None
        if np.any(per_column == 0):
            return None
        if info.columns:
            # each row tile's held columns keep their own output's scale
            column_map = self.column_maps[info.name].column_map
            by_output = per_column.reshape(info.groups, 1, info.n)
            held = np.where(
                column_map >= 0,
                np.take_along_axis(by_output, np.maximum(column_map, 0), 2),
                1.0,
            )
            row_tile: npt.NDArray[np.int64] = (
                np.arange(blocks.shape[1], dtype=np.int64) // self.hw.array.rows
            )
            exact = blocks / held[:, row_tile, :]
            if isinstance(scale, np.ndarray):
                scale = held.reshape(-1)
        else:
            exact = blocks / per_column.reshape(info.groups, 1, info.held_n)
        integers = np.rint(exact)
        bits = self.hw.precision.weight_bits
        if np.any(np.abs(exact - integers) > 1e-3) or not (
            -(2 ** (bits - 1)) <= integers.min() and integers.max() < 2 ** (bits - 1)
        ):
            return None
        return integers, scale

    def weight_scale(self, info: WeightInfo) -> float | Array:
        """The dequantization scale of a weight (1 in exact mode), or its
        scale per output column."""
        if self.mode == "exact":
            return 1.0
        if info.name not in self.blocks:
            self.load_weight_blocks(info)
        return self.blocks[info.name][1]

    def program(self, op: ProgramOp) -> None:
        ids = array_ids(op.arrays)
        per_copy = len(ids) // op.copies
        info, tiles = self.slice_tiles(op.weight, op.k, op.n, per_copy)
        stored = self.program_values(op)
        if in_place(op):
            self.switch_arrays(set(ids), to_memory=False)
        if op.source == "tensor":
            self.check_complete(stored, f"programming tensor '{op.weight}'")
            self.blocks.pop(info.name, None)  # this value, not an earlier one
        values, _ = self.weight_values(info, stored)
        slices = self.hw.bit_slices
        cell_bits = self.hw.array.cell_bits
        rows, cols = self.hw.array.rows, self.hw.array.cols
        for index in ids:
            state = self.array(index)
            if state.memory:
                raise self.fail(f"programs array {index}, which is in memory mode")
            for reader in state.readers:
                self.requires_before(reader, index)
            if state.writer is not None:
                self.requires_before(state.writer, index)
            state.cells = np.zeros((rows, cols))
            state.conductance = None
            state.writer = op.id
            state.readers = []
        for copy, tile in itertools.product(range(op.copies), tiles):
            g = tile.k[0] // info.held_k
            block = values[
                g,
                tile.k[0] - g * info.held_k : tile.k[1] - g * info.held_k,
                tile.n[0] - g * info.held_n : tile.n[1] - g * info.held_n,
            ]
            cells = self.arrays[ids[copy * per_copy + tile.array]].cells
            assert cells is not None
            height, width = block.shape
            first = tile.slot * slices
            columns = slice(first, first + width * slices, slices)
            if self.mode == "exact":
                cells[tile.row : tile.row + height, columns] = block
                continue
            for s in range(slices):
                digit = np.floor_divide(block, 2 ** (s * cell_bits)) % 2**cell_bits
                cells[
                    tile.row : tile.row + height,
                    slice(first + s, first + s + width * slices, slices),
                ] = digit
        if self.mode == "quantized" and not self.noise.cells_ideal:
            for index in ids:
                state = self.arrays[index]
                assert state.cells is not None
                state.conductance = self.noise.programmed(state.cells, op.id, index)

    def program_values(self, op: ProgramOp) -> Array:
        """The weight (or tensor) a program writes, read where its ``feed``
        says: the buffer, DRAM (a weight from the model) or the memory-mode
        arrays that hold it."""
        name = op.weight
        if in_place(op):
            own = frozenset(array_ids(op.arrays))
            self.memory_mode(own, "switches in place")
            return self.value_of(self.held(name, own, "computes in place with"), name)
        if op.feed == "dram":
            return self.value_of(self.stored_at("dram", name, "programs"), name)
        if op.feed == "memory":
            fed = frozenset(array_ids(op.feed_arrays))
            self.memory_mode(fed, "programs from")
            return self.value_of(self.held(name, fed, "programs"), name)
        partial = self.partials.get(name)
        on_chip = partial is not None and partial.level == "buffer"
        if op.source == "tensor" and name not in self.buffer and not on_chip:
            raise self.fail(
                f"programs arrays with tensor '{name}', which is not in "
                f"the buffer: it is in {self.where_is(name)}"
            )
        return self.read(name)

    def requires_before(self, earlier: int, array: int) -> None:
        assert self.op is not None
        if not self.reach.depends(self.op.id, earlier):
            raise self.fail(
                f"reprograms array {array}, which op {earlier} uses, but does not "
                "depend on it"
            )

    def mvm_input(self, op: MvmOp) -> Array:
        """The input an MVM reads where its ``feed`` says: memory-mode
        arrays that hold it, DRAM, the global buffer, or the chip."""
        name = op.input
        if op.feed == "memory":
            fed = frozenset(array_ids(op.feed_arrays))
            self.memory_mode(fed, "is fed from")
            return self.value_of(self.held(name, fed, "is fed"), name)
        if op.feed == "dram":
            return self.value_of(self.stored_at("dram", name, "streams"), name)
        partial = self.partials.get(name)
        on_chip = partial is not None and partial.level == "buffer"
        if op.feed == "buffer" and name not in self.buffer and not on_chip:
            raise self.fail(
                f"streams '{name}' from the buffer, but it is in {self.where_is(name)}"
            )
        return self.read(name)

    def mvm(self, op: MvmOp) -> None:
        ids = array_ids(op.arrays)
        info, tiles = self.slice_tiles(op.weight, op.k, op.n, len(ids))
        x = self.mvm_input(op)
        groups_k = info.groups * info.k
        if x.ndim != 2 or x.shape[1] != groups_k:
            raise self.fail(
                f"input '{op.input}' has shape {list(x.shape)}, not [vectors, "
                f"{groups_k}] for weight '{op.weight}'"
            )
        v0, v1 = op.v
        if not 0 <= v0 < v1 <= x.shape[0]:
            raise self.fail(
                f"vectors [{v0}, {v1}) are outside the {x.shape[0]} rows of "
                f"'{op.input}'"
            )
        self.check_complete(x[v0:v1], f"the MVM reading '{op.input}'")
        recording = self.recording
        if recording is not None and op.input not in recording.inputs:
            recording.inputs[op.input] = x.astype(np.float64)
            recording.layers[op.input] = op.layer
        for index in ids:
            state = self.array(index)
            if state.memory:
                raise self.fail(f"computes on array {index}, which is in memory mode")
            self.requires((state.writer,), f"array {index}")
            state.readers.append(op.id)
        bits = self.hw.precision.activation_bits
        x_offset = float(2 ** (bits - 1))
        grid = self.grids.get(op.input)
        codes = None if grid is None else grid.codes(x.astype(np.float64))
        if self.mode == "exact":
            inputs, scale = x[v0:v1].astype(np.float64), 1.0
        elif grid is not None and codes is not None and grid.high - grid.low < 2**bits:
            # the model's integers, offset to unsigned DAC codes
            inputs, scale = codes[v0:v1] - grid.low, grid.scale
            x_offset = grid.zero - grid.low
        elif (calibrated := self.calibrated_grid(op.input)) is not None:
            q = np.rint(x[v0:v1].astype(np.float64) / calibrated.scale)
            q = np.clip(q + calibrated.zero, calibrated.low, calibrated.high)
            inputs, scale = q - calibrated.low, calibrated.scale
            x_offset = calibrated.zero - calibrated.low
        else:
            q, scale = quantize_symmetric(x.astype(np.float64), bits)
            inputs = q[v0:v1] + 2 ** (bits - 1)
        weight_scale = self.weight_scale(info)
        level = op.out_to if op.out_bytes or op.out_to != "buffer" else "buffer"
        out_arrays = frozenset(array_ids(op.out_arrays))
        if level == "memory":
            self.memory_mode(out_arrays, "streams to")
        by_array: dict[int, list[Placement]] = {}
        for tile in tiles:
            by_array.setdefault(tile.array, []).append(tile)
        for position, placed in sorted(by_array.items()):
            cells = self.arrays[ids[position]].cells
            if cells is None:
                cells = np.zeros((self.hw.array.rows, self.hw.array.cols))
            held_inputs, driven = inputs, placed
            selection: Selection | None = None
            pad = 0.0 if self.mode == "exact" else x_offset
            if info.intra_block:
                selection = self.selected_inputs(info, placed, inputs, pad)
            elif info.rows:
                held_inputs, first_row = self.held_inputs(info, placed[0], inputs, pad)
                driven = [
                    replace(tile, k=(tile.k[0] - first_row, tile.k[1] - first_row))
                    for tile in placed
                ]
            key = (op.weight, op.k, op.n, position)
            held = self.arrays[ids[position]].conductance
            for tile, block in zip(
                placed,
                self.array_outputs(
                    cells,
                    driven,
                    held_inputs,
                    x_offset,
                    key,
                    (ids[position], held),
                    selection,
                ),
                strict=True,
            ):
                factor = self.column_scale(info, weight_scale, tile)
                self.add_partial(
                    op.output,
                    info,
                    op.v,
                    tile,
                    block * (scale * factor),
                    level,
                    out_arrays,
                )

    @property
    def outputs_per_array(self) -> int:
        return self.hw.array.cols // self.hw.bit_slices

    def column_tiling(self, info: WeightInfo, blocks: Array) -> ColumnTiling:
        """The columns a column-compacted weight's arrays hold, row tile by
        row tile, from its values (the compiler's rule), checked against the
        trace."""
        cached = self.column_maps.get(info.name)
        if cached is None:
            cached = held_columns(blocks, self.hw.array.rows, self.outputs_per_array)
            if cached.held != info.columns:
                raise self.fail(
                    f"weight '{info.name}' needs {cached.held} columns per group "
                    f"once the columns zero in all of a row tile's rows are "
                    f"dropped, but the trace holds {info.columns}"
                )
            self.column_maps[info.name] = cached
        return cached

    def output_columns(
        self, info: WeightInfo, tile: Placement
    ) -> tuple[tuple[int, int], npt.NDArray[np.int64] | None]:
        """The outputs a tile's held columns write (the same columns, or,
        for a column-compacted weight, those its column tiles own,
        :func:`~cimflow.analysis.sparse_tiling.held_columns`) and, then,
        where in them each held column's values land (-1: a padding
        column's, which land nowhere)."""
        if not info.columns:
            return tile.n, None
        (n0, n1), (k0, _) = tile.n, tile.k
        column_map = self.column_tiling_of(info).column_map
        span = (self.output_of(info, n0), self.output_of(info, n1))
        g = n0 // info.columns
        row_tile = (k0 - g * info.held_k) // self.hw.array.rows
        held = column_map[g, row_tile, n0 - g * info.columns : n1 - g * info.columns]
        return span, np.where(held >= 0, held + g * info.n - span[0], -1)

    def output_of(self, info: WeightInfo, column: int) -> int:
        """Where the outputs of the column tile of a column-compacted
        weight's held column ``column`` (of ``groups * columns``: a column
        tile's first, or a group's end) start."""
        starts = self.column_tiling_of(info).starts
        g, held = divmod(column, info.columns)
        if g == info.groups:
            return info.groups * info.n
        return g * info.n + int(starts[g, -(-held // self.outputs_per_array)])

    def column_tiling_of(self, info: WeightInfo) -> ColumnTiling:
        if info.name not in self.column_maps:
            self.load_weight_blocks(info)
        return self.column_maps[info.name]

    def column_scale(
        self, info: WeightInfo, scale: float | Array, tile: Placement
    ) -> float | Array:
        """The dequantization factors of a tile's held columns: one scale,
        one per held column, or, for a column-compacted weight quantized
        by its model per output channel, its row tile's columns'."""
        if not isinstance(scale, np.ndarray):
            return scale
        n0, n1 = tile.n
        held = info.groups * info.held_n
        if scale.size == held:
            return scale[n0:n1]
        row_tiles = scale.size // held
        g = n0 // info.held_n
        row_tile = (tile.k[0] - g * info.held_k) // self.hw.array.rows
        base = (g * row_tiles + row_tile) * info.held_n - g * info.held_n
        return scale[base + n0 : base + n1]

    def row_map(self, info: WeightInfo, blocks: Array) -> RowMap:
        """The rows each column tile's arrays hold of a compacted weight
        (each column's, of an IntraBlock one), from its values (the
        compiler's rule), checked against the trace."""
        cached = self.row_maps.get(info.name)
        if cached is None:
            group = info.intra_block
            cached = (
                intra_block_rows(blocks, group, self.outputs_per_array)
                if group
                else compacted_rows(blocks, self.outputs_per_array)
            )
            if cached.shape[2] != info.rows:
                raise self.fail(
                    f"weight '{info.name}' needs {cached.shape[2]} rows per group "
                    f"once rows no array needs are dropped, but the trace holds "
                    f"{info.rows}"
                )
            if group:
                driven = intra_block_driven_rows(
                    cached, group, info.k, self.outputs_per_array
                )
                if driven != info.driven_k:
                    raise self.fail(
                        f"weight '{info.name}' drives the inputs of {driven} rows "
                        f"per group in its widest column tile, but the trace says "
                        f"{info.driven_k}"
                    )
            self.check_sliced(info, cached)
            if not group and row_index_block(cached, info.k) % info.rows_per_index:
                raise self.fail(
                    f"weight '{info.name}' indexes its held rows in blocks of "
                    f"{info.rows_per_index}, but its held rows are not whole "
                    f"blocks of {info.rows_per_index} rows"
                )
            self.row_maps[info.name] = cached
        return cached

    def sliced_off(self, info: WeightInfo, tile: Placement) -> int:
        """Held rows a sliced column tile's arrays leave out (its padding,
        zero: :meth:`check_sliced`), counted once with its last row tile."""
        column = tile.n[0] // self.outputs_per_array
        top = info.column_rows(column, self.hw.array.rows)
        return info.held_k - top if tile.k[1] == top else 0

    def check_sliced(self, info: WeightInfo, row_map: RowMap) -> None:
        """Refuse row tiles of a column tile too few for the rows it holds
        (a weight whose column tiles are sliced, ``column_row_tiles``)."""
        if not info.column_row_tiles:
            return
        per_list = self.outputs_per_array if info.intra_block else 1
        used = tile_rows_used(row_map, per_list)
        for column, (held, count) in enumerate(
            zip(used, info.column_row_tiles, strict=False)
        ):
            if held > count * self.hw.array.rows:
                raise self.fail(
                    f"weight '{info.name}' holds {held} rows in column tile "
                    f"{column}, but the trace gives it {count} row tiles of "
                    f"{self.hw.array.rows} rows"
                )

    def held_inputs(
        self, info: WeightInfo, tile: Placement, inputs: Array, pad: float
    ) -> tuple[Array, int]:
        """The inputs a compacted weight's array drives, in held rows: each
        held row's input is the input of the weight row it holds (``pad``,
        a zero, on padding rows). An array holds one group's rows (the
        compiler compacts no weight with several groups per array), so only
        that group's ``held_k`` rows are built; the second value is the
        first of them in held-row coordinates."""
        g = tile.k[0] // info.held_k
        column_tile = (tile.n[0] - g * info.held_n) // self.outputs_per_array
        if info.name not in self.row_maps:
            self.load_weight_blocks(info)
        rows = self.row_maps[info.name][g, column_tile]
        held = np.full((inputs.shape[0], info.held_k), pad)
        real = np.flatnonzero(rows >= 0)
        held[:, real] = inputs[:, g * info.k + rows[real]]
        return held, g * info.held_k

    def selected_inputs(
        self, info: WeightInfo, placed: Sequence[Placement], inputs: Array, pad: float
    ) -> Selection:
        """What an IntraBlock weight's array computes with, one entry per
        input its cells' multiplexers may pick (``s`` of each row group's
        ``M``): the ``s``-th input of each held row's group on that row
        (``pad`` past the last row), and which cells (array rows x the
        columns its tiles span) pick it. A padding cell picks the first."""
        if info.name not in self.row_maps:
            self.load_weight_blocks(info)
        row_map = self.row_maps[info.name]
        group = info.intra_block
        starts = self.group_starts.get(info.name)
        if starts is None:
            starts = self.group_starts[info.name] = row_group_starts(
                row_map, group, self.outputs_per_array
            )
        slices = self.hw.bit_slices
        used_rows = max(t.row + t.k[1] - t.k[0] for t in placed)
        first = min(t.slot for t in placed) * slices
        stop = max(t.slot + t.n[1] - t.n[0] for t in placed) * slices
        picks = [
            (
                np.full((inputs.shape[0], used_rows), pad),
                np.zeros((used_rows, stop - first)),
            )
            for _ in range(group)
        ]
        padded = np.concatenate([inputs, np.full((inputs.shape[0], 1), pad)], axis=1)
        for tile in placed:
            g = tile.k[0] // info.rows
            h0, h1 = tile.k[0] - g * info.rows, tile.k[1] - g * info.rows
            n0, n1 = tile.n[0] - g * info.held_n, tile.n[1] - g * info.held_n
            tile_starts = starts[g, n0 // self.outputs_per_array, h0:h1]
            cells = row_map[g, n0:n1, h0:h1].T
            chosen = np.where(cells >= 0, cells - tile_starts[:, None], 0)
            rows = slice(tile.row, tile.row + h1 - h0)
            columns = slice(
                tile.slot * slices - first, (tile.slot + n1 - n0) * slices - first
            )
            for s, (driven, mask) in enumerate(picks):
                logical = tile_starts + s
                source = np.where(
                    (logical >= 0) & (logical < info.k), g * info.k + logical, -1
                )
                driven[:, rows] = padded[:, source]
                mask[rows, columns] = np.repeat(chosen == s, slices, axis=1)
        return picks

    def load_weight_blocks(self, info: WeightInfo) -> None:
        """Load a weight's blocks (and, compacted, its row map)."""
        if info.name not in self.weights:
            raise self.fail(f"weight '{info.name}' has no values")
        self.weight_values(info, np.asarray(self.weights[info.name]))

    def calibrated_grid(self, name: str) -> Grid | None:
        """The grid calibration set for an MVM input (quantized mode)."""
        if self.calibration is None:
            return None
        grid = self.calibration.inputs.get(name)
        bits = self.hw.precision.activation_bits
        if grid is None or grid.high - grid.low >= 2**bits:
            return None
        return grid

    def array_outputs(
        self,
        cells: Array,
        placed: Sequence[Placement],
        inputs: Array,
        x_offset: float,
        key: tuple[str, tuple[int, int], tuple[int, int], int],
        physical: tuple[int, Array | None],
        selection: Selection | None = None,
    ) -> list[Array]:
        """Each tile's outputs from one array: exact dot products, or the
        quantized pipeline (integer results before dequantization). The
        cells take their row's input, or, with ``selection``
        (:meth:`selected_inputs`), the one their multiplexer picks."""
        slices = self.hw.bit_slices
        cell_bits = self.hw.array.cell_bits
        used_rows = max(t.row + t.k[1] - t.k[0] for t in placed)
        first = min(t.slot for t in placed) * slices
        stop = max(t.slot + t.n[1] - t.n[0] for t in placed) * slices
        if selection is None:
            driven = np.zeros((inputs.shape[0], used_rows))
            for tile in placed:
                driven[:, tile.row : tile.row + tile.k[1] - tile.k[0]] = inputs[
                    :, tile.k[0] : tile.k[1]
                ]
            selection = [(driven, np.ones((used_rows, stop - first)))]
        window = cells[:used_rows, first:stop]
        exact = self.mode == "exact"
        if exact:
            sums = np.zeros((inputs.shape[0], stop - first))
            for driven, mask in selection:
                sums += driven @ (window * mask)
        else:
            array, held = physical
            conducting = window if held is None else held[:used_rows, first:stop]
            sums = self.analog(selection, conducting, key, first, array)
        significance = 2.0 ** (cell_bits * np.arange(slices))
        outputs: list[Array] = []
        for tile in placed:
            width = tile.n[1] - tile.n[0]
            start = tile.slot * slices - first
            columns = sums[:, start : start + width * slices].reshape(-1, width, slices)
            result = columns @ significance
            if self.mode == "quantized":
                height = tile.k[1] - tile.k[0]
                rows = slice(tile.row, tile.row + height)
                weight_sums = (
                    window[rows, start : start + width * slices].reshape(
                        height, width, slices
                    )
                    @ significance
                ).sum(axis=0)
                # the inputs each output column's cells take, summed
                input_sums = sum(
                    driven[:, rows]
                    @ mask[rows, start : start + width * slices : slices]
                    for driven, mask in selection
                )
                w_offset = 2 ** (self.hw.precision.weight_bits - 1)
                result = (
                    result
                    - x_offset * weight_sums[None, :]
                    - w_offset * input_sums
                    + height * x_offset * w_offset
                )
            outputs.append(result)
        return outputs

    def analog(
        self,
        selection: Selection,
        window: Array,
        key: tuple[str, tuple[int, int], tuple[int, int], int],
        first_column: int,
        array_id: int,
    ) -> Array:
        """Column sums of the quantized pipeline: inputs fed ``dac_bits`` at a
        time, ``active_rows`` word lines per pass (the MVM's own
        ``rows_per_pass`` when the compiler chose one), each column sum digitized
        by an ``adc_bits`` ADC, then shifted and added over input bit groups.

        The ADC's range is the largest sum the driven rows could make, or,
        when calibrated, the full scale calibration set for the column's bit
        slice (sums above it clip to the top code); either way a step finer
        than one (the sums are integers) gains nothing. The target's
        ``[nonideal]`` errors enter here: the cells' programmed levels (in
        ``window``), read noise on each sum, each ADC's offset and its
        nonlinearity before rounding. ``selection``: the inputs and the
        cells that take each (:meth:`array_outputs`); read noise and zero
        detection see, on each row, the largest of the inputs its cells may
        pick."""
        array = self.hw.array
        slices = self.hw.bit_slices
        width = int(window.shape[1])
        column_slice: Array = np.arange(first_column, first_column + width) % slices
        dac, adc = array.dac_bits, array.adc_bits
        passes = self.hw.input_passes

        def planes_of(driven: Array) -> Array:
            codes = driven.astype(np.int64)
            return np.stack(
                [(codes >> (p * dac)) & (2**dac - 1) for p in range(passes)]
            ).astype(np.float64)

        picks = [(planes_of(driven), window * mask) for driven, mask in selection]
        digits = picks[0][0]
        for other, _ in picks[1:]:
            digits = np.maximum(digits, other)
        vectors, rows = selection[0][0].shape
        total = np.zeros((vectors, window.shape[1]))
        weights = 2.0 ** (dac * np.arange(passes))
        levels = 2**adc - 1
        peaks = None if self.recording is None else self.recording.adc_peaks
        calibrated = (
            None if self.calibration is None else self.calibration.adc_full_scale
        )
        noise = self.noise
        offset = noise.adc_offset(array_id, first_column, width)
        per_pass = array.active_rows
        if isinstance(self.op, MvmOp) and self.op.rows_per_pass:
            per_pass = self.op.rows_per_pass
        planes = None if self.recording is None else self.recording.input_planes
        for r0 in range(0, rows, per_pass):
            r1 = min(rows, r0 + per_pass)
            if planes is not None and isinstance(self.op, MvmOp):
                self.count_planes(planes, self.op.weight, digits[:, :, r0:r1])
            sums = picks[0][0][:, :, r0:r1] @ picks[0][1][r0:r1]
            for taken, cells in picks[1:]:
                sums = sums + taken[:, :, r0:r1] @ cells[r0:r1]
            pass_key = (*key, r0)
            if peaks is not None:
                seen = np.zeros(slices)
                np.maximum.at(seen, column_slice, sums.max(axis=(0, 1), initial=0.0))
                earlier = peaks.get(pass_key)
                peaks[pass_key] = seen if earlier is None else np.maximum(earlier, seen)
                total += np.tensordot(weights, sums, axes=1)
                continue
            read_at = (self.op.id if self.op else 0, key[3], r0)
            read = noise.read_error(digits[:, :, r0:r1], width, read_at)
            if read is not None:
                sums = sums + read
            if calibrated and pass_key in calibrated:
                full: Array = calibrated[pass_key][column_slice]
                step: Array | float = np.maximum(1.0, full / levels)
            else:
                full_scale = (r1 - r0) * (2**dac - 1) * (2**array.cell_bits - 1)
                step = full_scale / levels if full_scale > levels else 1.0
            codes = sums / step + offset
            if noise.params.adc_inl_lsb:
                codes = codes + noise.bow(codes, levels)
            sums = np.clip(np.rint(codes), 0, levels) * step
            total += np.tensordot(weights, sums, axes=1)
        return total

    def count_planes(
        self, planes: dict[str, PlaneCounts], weight: str, driven: Array
    ) -> None:
        """Add one pass's ``[planes, vectors, rows]`` digits to ``weight``'s
        counts of zero planes and zero detector groups."""
        nonzero = driven != 0
        rows = nonzero.shape[2]
        group = self.hw.array.zero_detect_rows or rows
        starts = np.arange(0, rows, group, dtype=np.intp)
        grouped = np.logical_or.reduceat(nonzero, starts, axis=2)
        seen = planes.get(weight, PlaneCounts(0, 0, 0, 0))
        planes[weight] = PlaneCounts(
            seen.zero + int(np.count_nonzero(~nonzero.any(axis=2))),
            seen.planes + nonzero.shape[0] * nonzero.shape[1],
            seen.zero_groups + int(np.count_nonzero(~grouped)),
            seen.groups + grouped.size,
        )

    # -- ops ---------------------------------------------------------------

    def transfer(self, op: TransferOp) -> None:
        stored = self.fetch(op.src, op.tensor)
        arrays = frozenset(array_ids(op.arrays))
        for side in (op.src, op.dst):
            if side == "memory":
                for index in arrays:
                    if not self.array(index).memory:
                        raise self.fail(
                            f"uses array {index} as memory, but it is in compute mode"
                        )
        if op.src == "memory" and not arrays <= stored.arrays:
            raise self.fail(f"reads '{op.tensor}' from arrays that do not hold it")
        self.level(op.dst)[op.tensor] = _Stored(
            stored.value, (op.id,), arrays if op.dst == "memory" else frozenset()
        )

    def move(self, op: MoveOp) -> None:
        name = op.tensor
        rows = None if op.block is None else (op.block[1], op.block[2])
        partial = self.partials.get(name)
        if partial is not None and partial.level != "dram":
            writers = [
                b[5]
                for b in partial.blocks
                if rows is None or (b[0] < rows[1] and rows[0] < b[1])
            ]
            self.requires(writers, f"partial sums of '{name}'")
            return
        if name in self.constants:
            return
        stored = self.buffer.get(name) or self.memory.get(name)
        if stored is None:
            raise self.fail(
                f"moves '{name}', which is not on chip: it is in {self.where_is(name)}"
            )
        if op.block is None or not stored.bands:
            self.requires(stored.writers, f"'{name}'")
            return
        axis, start, stop = op.block
        self.requires(
            [
                w
                for a, b0, b1, w in stored.bands
                if a == axis and b0 < stop and start < b1
            ],
            f"rows [{start}, {stop}) of '{name}'",
        )

    def free(self, op: FreeOp) -> None:
        """Nothing to compute: what a free names must be there, and memory-mode
        arrays it frees no longer hold the tensor. (Space allocated under a
        name that is no tensor, such as a band passing through, holds nothing
        to check.)"""
        for place in op.frees:
            name = place.tensor
            if name not in self.tensor_info and name not in self.weights:
                # an allocation of a part of some tensor passing through (a
                # staged band, a weight part): a name for space, not data
                continue
            if place.level == "memory":
                freed = frozenset(array_ids(place.units))
                partial = self.partials.get(name)
                if (
                    partial is not None
                    and partial.level == "memory"
                    and freed <= partial.arrays
                ):
                    partial.arrays -= freed
                    if not partial.arrays:
                        del self.partials[name]
                    continue
                stored = self.memory.get(name)
                if stored is None or not freed <= stored.arrays:
                    raise self.fail(
                        f"frees '{name}' in memory-mode arrays that do not hold it "
                        f"(it is in {self.where_is(name)})"
                    )
                left = stored.arrays - freed
                if left:
                    self.memory[name] = _Stored(stored.value, stored.writers, left)
                else:
                    del self.memory[name]
                continue
            partial = self.partials.get(name)
            on_chip = (self.buffer, self.memory, self.constants)
            partial_on_chip = partial is not None and partial.level != "dram"
            if not partial_on_chip and not any(name in level for level in on_chip):
                where = "the global buffer" if place.level == "buffer" else "cores"
                raise self.fail(
                    f"frees '{name}' in {where}, but it is in {self.where_is(name)}"
                )

    def switch(self, op: SwitchOp) -> None:
        self.switch_arrays(set(array_ids(op.arrays)), op.to == "memory")
        for index in array_ids(op.arrays):
            self.array(index).writer = op.id

    def switch_arrays(self, ids: set[int], to_memory: bool) -> None:
        """Arrays change mode: their cells no longer hold what they held
        (a program in place writes them right after)."""
        assert self.op is not None
        for index in ids:
            state = self.array(index)
            for reader in state.readers:
                self.requires_before(reader, index)
            state.memory = to_memory
            state.cells, state.readers = None, []
        if not to_memory:
            for name in [n for n, s in self.memory.items() if s.arrays & ids]:
                del self.memory[name]
                self.dropped[name] = self.op.id
            for name, partial in list(self.partials.items()):
                if partial.level == "memory" and partial.arrays & ids:
                    del self.partials[name]
                    self.dropped[name] = self.op.id

    def place_input(self, spec: TensorType, value: Array) -> None:
        """A model input at the start: in DRAM, or in the memory-mode arrays
        the trace says it starts in."""
        if not spec.arrays:
            self.dram[spec.name] = _Stored(value, ())
            return
        ids = frozenset(array_ids(spec.arrays))
        for index in ids:
            self.array(index).memory = True
        self.memory[spec.name] = _Stored(value, (), ids)

    def vector(self, op: VectorOp) -> None:
        if op.op == "accumulate":
            self.accumulate(op)
            return
        inputs = self.vector_inputs(op)
        outputs: list[tuple[Sequence[int], np.dtype[Any]]] = []
        for name in op.outputs:
            info = self.tensor_info.get(name)
            if info is None:
                raise self.fail(f"writes '{name}', which is not a declared tensor")
            outputs.append((info.shape, numpy_dtype(info.dtype)))
        then = self.activation_after(op)
        attrs = {k: v for k, v in op.attrs.items() if not _is_epilogue_key(k)}
        try:
            results = apply_operator(op.op, attrs, inputs, outputs)
        except (CimError, ValueError, IndexError, TypeError) as error:
            message = " ".join(str(error).split()) or type(error).__name__
            raise self.fail(message) from None
        if len(results) != len(op.outputs):
            raise self.fail(
                f"'{op.op}' gives {len(results)} results for {len(op.outputs)} outputs"
            )
        if then is not None:
            results = [self.apply_activation(then, op, value) for value in results]
        if self.mode == "quantized":
            grids = [self.grids.get(name) for name in op.inputs]
            for name, value, (_, dtype) in zip(
                op.outputs, results, outputs, strict=True
            ):
                found = grid_after(op.op, attrs, inputs, grids, dtype)
                if then is not None:
                    found = grid_after(
                        then, _epilogue_params(op), [value], [found], dtype
                    )
                if found is None:
                    self.grids.pop(name, None)
                else:
                    self.grids[name] = found
        for name, value in zip(op.outputs, results, strict=True):
            part = value
            if op.block is not None:
                axis, start, stop = op.block
                index: list[slice] = [slice(None)] * value.ndim
                index[axis] = slice(start, stop)
                part = value[tuple(index)]
            self.check_complete(np.asarray(part), f"'{op.op}' producing '{name}'")
            self.write_output(op, name, value, op.block)

    def vector_inputs(self, op: VectorOp) -> list[Array]:
        """The inputs of a vector op (:meth:`streamed_operand`); streamed
        from memory-mode arrays, every one of its ``in_arrays`` holds one of
        them."""
        in_arrays = frozenset(array_ids(op.in_arrays))
        streams_memory = bool(op.in_bytes) and op.in_from == "memory"
        if streams_memory:
            self.memory_mode(in_arrays, "streams from")
        values: list[Array] = []
        used: frozenset[int] = frozenset()
        for name in op.inputs:
            value, holding = self.streamed_operand(op, name, in_arrays)
            values.append(value)
            used |= holding
        if streams_memory and used != in_arrays:
            raise self.fail(
                f"streams from array {min(in_arrays - used)}, which holds none of "
                "its inputs"
            )
        return values

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        for spec in self.trace.model.inputs:
            if spec.name not in inputs:
                raise FunctionalError(
                    f"{self.trace.origin}: missing model input '{spec.name}'"
                )
            value = np.asarray(inputs[spec.name])
            if tuple(value.shape) != spec.shape:
                raise FunctionalError(
                    f"{self.trace.origin}: model input '{spec.name}' has shape "
                    f"{list(value.shape)}, the trace expects {list(spec.shape)}"
                )
            dtype = _compute_dtype(numpy_dtype(spec.dtype))
            self.place_input(spec, value.astype(dtype))
        for op in self.trace.ops:
            self.op = op
            self.reach.add(op.deps)
            if isinstance(op, LoadOp | StoreOp):
                self.transfer(op)
            elif isinstance(op, MoveOp):
                self.move(op)
            elif isinstance(op, ProgramOp):
                self.program(op)
            elif isinstance(op, MvmOp):
                self.mvm(op)
            elif isinstance(op, VectorOp):
                self.vector(op)
            elif isinstance(op, SwitchOp):
                self.switch(op)
            elif isinstance(op, FreeOp):
                self.free(op)
            else:
                assert isinstance(op, BarrierOp)
        self.op = None
        results: dict[str, Array] = {}
        for spec in self.trace.model.outputs:
            partial = self.partials.get(spec.name)
            if partial is not None and partial.level == "dram":
                self.materialize(spec.name)
            stored = self.dram.get(spec.name)
            if stored is None:
                raise FunctionalError(
                    f"{self.trace.origin}: model output '{spec.name}' is never "
                    f"stored to DRAM (it is in {self.where_is(spec.name)})"
                )
            results[spec.name] = stored.value.astype(numpy_dtype(spec.dtype))
        return results


def trace_weights(trace: Trace) -> dict[str, Array]:
    """The weights of the trace's model: ``load_weights`` of ``model.source``
    with ``model.dims``; a :class:`CimError` when there is no source or the
    weight data is absent."""
    return trace_model_weights(trace).values


def trace_model_weights(trace: Trace) -> ModelWeights:
    """:func:`trace_weights` and the scales of the dequantized ones."""
    if not trace.model.source:
        raise CimError(
            f"{trace.origin}: the trace names no model source ('model.source' is "
            "empty), so there are no weight values to run it with"
        )
    from cimflow.frontend import load_model_weights

    source = Path(trace.model.source)
    if not source.is_file():
        raise CimError(f"{trace.origin}: model source {source}: no such file")
    return load_model_weights(source, trace.model.dims)


def run_functional(
    trace: Trace,
    inputs: Mapping[str, Array],
    mode: Mode,
    weights: Mapping[str, Array] | None = None,
    quantization: Mapping[str, WeightQuantization] | None = None,
    calibration: Calibration | None = None,
    recording: Recording | None = None,
) -> dict[str, Array]:
    """Execute ``trace`` on ``inputs`` (by the trace's model input names).

    Returns the model outputs by the trace's output names, in their declared
    types. ``weights`` default to :func:`trace_weights`, and
    ``quantization`` (the model's own scales of dequantized weights, which
    quantized mode honours) to those of the trace's model when ``weights``
    are loaded from it too, else to none. ``calibration`` sets quantized
    mode's input grids, weight scales and ADC ranges (exact mode ignores
    it); ``recording`` collects what the run observes. Raises
    :class:`FunctionalError` when the trace is wrong (naming the op) and
    :class:`CimError` for bad arguments.
    """
    if mode not in MODES:
        raise CimError(f"unknown mode '{mode}' (expected exact or quantized)")
    if weights is None:
        loaded = trace_model_weights(trace)
        weights = loaded.values
        if quantization is None:
            quantization = loaded.quantization
    executor = _Executor(
        trace, weights, mode, quantization or {}, calibration, recording
    )
    return executor.run(inputs)
