"""Read, validate and write cim-trace documents (``docs/trace-format.md``).

:func:`load_trace` turns a trace (a JSON file or an already-parsed dict) into a
frozen :class:`Trace`; every problem is a one-line
:class:`~cimflow.errors.CimError` naming the file and the op or key at fault.
:func:`dump_trace` writes a trace dict the same way every time, for the
compiler's trace emitter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, TypeAlias, cast

from cimflow.collector import paused_collector
from cimflow.cost_model import (
    FEEDS,
    LOCATIONS,
    STREAM_LEVELS,
    Feed,
    Location,
    StreamLevel,
    ZeroShares,
    cores_of_arrays,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget, target_from_dict

TRACE_FORMAT = "cim-trace"
WEIGHT_LAYOUTS = ("kn", "nk", "oihw")
"""How a weight maps to its matrix (see cimflow.cimdialect.cim_tile.WeightLayout)."""
DTYPES: tuple[str, ...] = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
)
"""Element types a tensor, constant or model input/output may have."""
TRACE_VERSION = 5
"""The version the compiler writes, and the only one :func:`parse_trace`
reads: traces of versions 3 and 4 say nothing of the cores data moves to,
where tensors live or how MVMs are fed, so they are refused (compile the
model again)."""

OP_KINDS: tuple[str, ...] = (
    "load",
    "store",
    "move",
    "program",
    "mvm",
    "vector",
    "switch",
    "barrier",
    "free",
)

ProgramFeed = Literal["buffer", "dram", "memory", "cells"]
"""Where a program's values come from: a stream level, or the arrays' own
cells (staged in memory mode, switched to compute in place)."""

SwitchDirection = Literal["compute", "memory"]
SWITCH_DIRECTIONS: tuple[SwitchDirection, ...] = ("compute", "memory")

MoveDirection = Literal["in", "out"]
MOVE_DIRECTIONS: tuple[MoveDirection, ...] = ("in", "out")

Level = Literal["buffer", "local", "memory"]
LEVELS: tuple[Level, ...] = ("buffer", "local", "memory")
"""Storage levels whose occupancy the simulator tracks (DRAM is unbounded)."""

ProgramSource = Literal["weight", "tensor"]

Block: TypeAlias = tuple[int, int, int]
"""``(axis, start, stop)``: the part of its outputs a pipelined step makes."""

ArrayRange: TypeAlias = tuple[int, int]
"""A ``[first, stop)`` range of global array ids."""


@dataclass(frozen=True, slots=True)
class TensorType:
    """One model input or output: ``{name, shape, dtype}``, and for an input
    that starts the run in memory-mode arrays instead of DRAM (a KV cache
    kept on chip), those ``arrays``."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    arrays: tuple[ArrayRange, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The trace's ``model`` object."""

    name: str
    source: str
    batch: int
    dims: Mapping[str, int]
    inputs: tuple[TensorType, ...]
    outputs: tuple[TensorType, ...]


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One entry of ``tensors``: a named activation tensor and its size."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class ConstantInfo:
    """One entry of ``constants``: a small named constant and its values."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class WeightInfo:
    """One entry of ``weights``: how an array-held weight maps to its matrix."""

    name: str
    layout: str
    groups: int
    k: int
    n: int
    rows: int = 0
    """Rows per group the arrays hold when fewer than ``k`` (the rows some
    column of each array needs, :func:`cimflow.analysis.sparse_tiling.
    compacted_rows`); the ``k`` ranges of its programs and MVMs count them.
    0: all ``k``."""
    intra_block: int = 0
    """With ``rows``: the held rows are an IntraBlock mapping whose cells
    each pick their input among a row group of this many weight rows
    (:func:`cimflow.analysis.sparse_tiling.intra_block_rows`). 0: the rows
    an array's columns share."""
    driven: int = 0
    """With ``intra_block``: the rows per group whose inputs the widest
    column tile's arrays drive, when a nested FullBlock pattern leaves
    tiles without some row groups
    (:func:`cimflow.analysis.sparse_tiling.intra_block_driven_rows`). 0:
    all ``k``."""
    index_block: int = 0
    """With ``rows`` (no ``intra_block``): the held rows are whole blocks of
    this many rows from multiples of it, and their indices name blocks
    (:func:`cimflow.analysis.sparse_tiling.row_index_block`). 0: rows."""
    columns: int = 0
    """Columns per group each row tile's arrays hold when fewer than ``n``
    (those nonzero in some of its rows; each column tile owns a contiguous
    range of outputs, :func:`cimflow.analysis.sparse_tiling.held_columns`);
    the ``n`` ranges of its programs and MVMs count them. 0: all ``n``."""
    column_row_tiles: tuple[int, ...] = ()
    """With ``rows`` (one group): the arrays (row tiles) of each column tile,
    which hold its first ``min(rows, count * array rows)`` held rows
    (ragged column tiles sliced). Empty: every column tile all ``rows``."""

    @property
    def held_k(self) -> int:
        """Rows per group the arrays hold."""
        return self.rows or self.k

    def column_rows(self, column: int, array_rows: int) -> int:
        """Held rows column tile ``column``'s arrays hold: all ``held_k``,
        or, sliced, its first ``min(held_k, count * array_rows)``."""
        if not self.column_row_tiles:
            return self.held_k
        return min(self.held_k, self.column_row_tiles[column] * array_rows)

    @property
    def driven_k(self) -> int:
        """Rows per group whose inputs an IntraBlock mapping's arrays drive."""
        return self.driven or self.k

    @property
    def held_n(self) -> int:
        """Columns per group the arrays hold."""
        return self.columns or self.n

    @property
    def rows_per_index(self) -> int:
        """Rows one index of its held row lists names."""
        return self.index_block or 1


@dataclass(frozen=True, slots=True)
class Place:
    """Where a tensor is allocated: a level and its ``units`` (the cores of
    ``local``, the arrays of ``memory``, none for ``buffer``)."""

    tensor: str
    level: Level
    units: tuple[ArrayRange, ...]


@dataclass(frozen=True, slots=True)
class Alloc(Place):
    """An entry of an op's ``allocs``: ``nbytes`` of ``tensor`` placed in
    ``level`` (split evenly among its cores or arrays) from the op's start
    until a ``free`` names it."""

    nbytes: int


@dataclass(frozen=True, slots=True)
class OpBase:
    """The keys every op has (``allocs`` and ``layer`` are optional, empty
    by default)."""

    kind: ClassVar[str] = ""
    id: int
    deps: tuple[int, ...]
    segment: int
    name: str
    allocs: tuple[Alloc, ...] = field(default=(), kw_only=True)
    layer: str = field(default="", kw_only=True)
    """The ONNX node the op works for (empty: the segment's own work, such
    as its barrier, mode switches and prefetches)."""


@dataclass(frozen=True, slots=True)
class TransferOp(OpBase):
    """A ``load`` or ``store`` between two storage levels (``cores``: the
    one core of a memory-to-local transfer, else empty)."""

    src: Location
    dst: Location
    nbytes: int
    tensor: str
    arrays: tuple[ArrayRange, ...]
    cores: tuple[ArrayRange, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadOp(TransferOp):
    """``load``: data moves towards the compute (DRAM -> buffer -> memory)."""

    kind: ClassVar[str] = "load"


@dataclass(frozen=True, slots=True)
class StoreOp(TransferOp):
    """``store``: data moves away from the compute."""

    kind: ClassVar[str] = "store"


@dataclass(frozen=True, slots=True)
class MoveOp(OpBase):
    """``move``: bytes over the interconnect, ``in`` from the global buffer
    to ``cores`` or ``out`` from them."""

    kind: ClassVar[str] = "move"
    nbytes: int
    tensor: str
    block: Block | None
    direction: MoveDirection = "in"
    cores: tuple[ArrayRange, ...] = ()
    link_bytes: int | None = None
    """What the cores' links carry in all where a multicast sends bytes
    several of them take once through the buffer's port (``nbytes``);
    None: ``nbytes``."""


@dataclass(frozen=True, slots=True)
class ProgramOp(OpBase):
    """``program``: write a weight slice (or, with ``source`` ``tensor``,
    an activation tensor's values) into arrays, reading it from where
    ``feed`` says and streaming ``in_bytes`` of it to the arrays' cores;
    with ``feed`` ``cells`` the arrays hold the slice already, in memory
    mode, and switch to compute mode in place (:func:`in_place`)."""

    kind: ClassVar[str] = "program"
    arrays: tuple[ArrayRange, ...]
    rows: int
    cols: int
    weight: str
    k: tuple[int, int]
    n: tuple[int, int]
    source: ProgramSource = "weight"
    feed: ProgramFeed = "buffer"
    in_bytes: int = 0
    feed_arrays: tuple[ArrayRange, ...] = ()
    copies: int = 1
    """Copies written at once (a multicast): ``arrays`` in order, the same
    number each; ``in_bytes`` are read once and reach every copy."""


def in_place(op: ProgramOp) -> bool:
    """Whether a program only switches arrays whose cells already hold its
    slice (staged there in memory mode) to compute mode."""
    return op.feed == "cells"


@dataclass(frozen=True, slots=True)
class MvmOp(OpBase):
    """``mvm``: matrix-vector multiplications on a group of arrays, fed
    from its cores' local buffers, the global buffer, memory-mode
    ``feed_arrays`` or DRAM; its streamed outputs go to ``out_to`` (the
    memory-mode ``out_arrays`` for ``memory``)."""

    kind: ClassVar[str] = "mvm"
    arrays: tuple[ArrayRange, ...]
    vectors: int
    rows: int
    cols: int
    weight: str
    k: tuple[int, int]
    n: tuple[int, int]
    v: tuple[int, int]
    input: str
    output: str
    feed: Feed = "local"
    in_bytes: int = 0
    out_bytes: int = 0
    local_bytes: int = 0
    feed_arrays: tuple[ArrayRange, ...] = ()
    out_to: StreamLevel = "buffer"
    out_arrays: tuple[ArrayRange, ...] = ()
    rows_per_pass: int = 0
    """Word lines driven per ADC pass, when the compiler chose fewer than
    the target's ``active_rows`` (0: the target's)."""
    zero_shares: ZeroShares | None = None
    """What its zero detectors skip, where the compiler enabled zero
    skipping (``None``: off): keys ``zero_planes`` and ``zero_groups``."""
    in_link_bytes: int | None = None
    """What its input puts on its cores' links in all where a multicast
    sends bytes several of them take once (``in_bytes``); None: as many."""


@dataclass(frozen=True, slots=True)
class VectorOp(OpBase):
    """``vector``: element-wise work on the vector units of ``cores``,
    streaming ``in_bytes`` from ``in_from`` and ``out_bytes`` to ``out_to``
    (the memory-mode ``in_arrays`` / ``out_arrays`` for ``memory``)."""

    kind: ClassVar[str] = "vector"
    op: str
    element_ops: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, object]
    block: Block | None
    cores: tuple[ArrayRange, ...] = ()
    in_bytes: int = 0
    out_bytes: int = 0
    in_from: StreamLevel = "buffer"
    out_to: StreamLevel = "buffer"
    in_arrays: tuple[ArrayRange, ...] = ()
    out_arrays: tuple[ArrayRange, ...] = ()


@dataclass(frozen=True, slots=True)
class SwitchOp(OpBase):
    """``switch``: arrays change between compute and memory mode."""

    kind: ClassVar[str] = "switch"
    arrays: tuple[ArrayRange, ...]
    to: SwitchDirection


@dataclass(frozen=True, slots=True)
class BarrierOp(OpBase):
    """``barrier``: a zero-cycle join."""

    kind: ClassVar[str] = "barrier"


@dataclass(frozen=True, slots=True)
class FreeOp(OpBase):
    """``free``: a zero-cycle release of allocations."""

    kind: ClassVar[str] = "free"
    frees: tuple[Place, ...] = ()


TraceOp: TypeAlias = (
    LoadOp
    | StoreOp
    | MoveOp
    | ProgramOp
    | MvmOp
    | VectorOp
    | SwitchOp
    | BarrierOp
    | FreeOp
)
ArrayOp: TypeAlias = LoadOp | StoreOp | ProgramOp | MvmOp | SwitchOp


def switches_to_compute(op: TraceOp) -> bool:
    """Whether an op turns memory-mode arrays into compute arrays, ending
    what they stored: a switch to compute mode, or a program in place."""
    if isinstance(op, SwitchOp):
        return op.to == "compute"
    return isinstance(op, ProgramOp) and in_place(op)


@dataclass(frozen=True, slots=True)
class SolveInfo:
    """One entry of ``solver``: a distinct segment problem the allocation's
    MILP solved, the segments sharing it, and how HiGHS ended."""

    segments: tuple[int, ...]
    status: str
    nodes: int


@dataclass(frozen=True, slots=True)
class Trace:
    """A validated cim-trace; ``origin`` names it in messages."""

    model: ModelInfo
    strategy: str
    target: HardwareTarget
    tensors: tuple[TensorInfo, ...]
    constants: tuple[ConstantInfo, ...]
    weights: tuple[WeightInfo, ...]
    ops: tuple[TraceOp, ...]
    origin: str
    solver: tuple[SolveInfo, ...] = ()


def op_arrays(op: TraceOp) -> tuple[ArrayRange, ...]:
    """The array ranges an op holds (empty for kinds without arrays): its
    ``arrays`` and the memory-mode arrays it streams from and to."""
    if isinstance(op, MvmOp):
        if op.feed_arrays or op.out_arrays:
            return merge_ranges(op.arrays, merge_ranges(op.feed_arrays, op.out_arrays))
        return op.arrays
    if isinstance(op, ProgramOp):
        return merge_ranges(op.arrays, op.feed_arrays) if op.feed_arrays else op.arrays
    if isinstance(op, VectorOp):
        if op.in_arrays or op.out_arrays:
            return merge_ranges(op.in_arrays, op.out_arrays)
        return ()
    if isinstance(op, (TransferOp, SwitchOp)):
        return op.arrays
    return ()


def merge_ranges(
    first: Sequence[ArrayRange], second: Sequence[ArrayRange]
) -> tuple[ArrayRange, ...]:
    """The union of two sets of sorted, disjoint ranges, sorted and with
    touching ranges joined."""
    merged: list[ArrayRange] = []
    for start, stop in sorted((*first, *second)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return tuple(merged)


def count_arrays(ranges: Sequence[ArrayRange]) -> int:
    """Number of arrays in a list of disjoint ``[first, stop)`` ranges."""
    return sum(stop - first for first, stop in ranges)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_pair(value: object) -> tuple[int, int] | None:
    if type(value) is not list and type(value) is not tuple:
        return None
    items = cast(Sequence[object], value)
    if len(items) != 2:
        return None
    first, second = items
    if type(first) is not int or type(second) is not int:
        return None
    return first, second


_MISSING = object()

MAX_INTEGER = 2**53 - 1
"""The largest integer a trace may hold anywhere (sizes, counts, ids): the
largest that converts to a float exactly, far beyond any real chip or
model, so arithmetic on trace numbers can never overflow."""


class _Fields:
    """Typed access to one JSON object, with one-line errors."""

    __slots__ = ("data", "key_prefix", "prefix")

    def __init__(
        self, raw: object, prefix: str, what: str, key_prefix: str = ""
    ) -> None:
        if not isinstance(raw, dict):
            raise CimError(f"{prefix}{what} must be an object, got {_type_name(raw)}")
        self.data = cast(dict[str, object], raw)
        self.prefix = prefix
        self.key_prefix = key_prefix

    def fail(self, message: str) -> CimError:
        return CimError(f"{self.prefix}{message}")

    def key(self, key: str) -> str:
        return f"'{self.key_prefix}{key}'"

    def get(self, key: str) -> object:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            raise self.fail(f"missing key {self.key(key)}")
        return value

    def wrong(self, key: str, value: object, expected: str) -> CimError:
        if value is _MISSING:
            return self.fail(f"missing key {self.key(key)}")
        return self.fail(f"key {self.key(key)} must be {expected}, got {_short(value)}")

    def check_keys(self, allowed: frozenset[str]) -> None:
        if allowed.issuperset(self.data):
            return
        for key in self.data:
            if key not in allowed:
                raise self.fail(
                    f"unknown key {self.key(key)} "
                    f"(expected {', '.join(sorted(allowed))})"
                )

    def integer(self, key: str, minimum: int = 0) -> int:
        value = self.data.get(key, _MISSING)
        if type(value) is not int:
            raise self.wrong(key, value, "an integer")
        if value < minimum:
            bound = "positive" if minimum == 1 else f"at least {minimum}"
            raise self.fail(f"key {self.key(key)} must be {bound}, got {value}")
        if value > MAX_INTEGER:
            raise self.fail(
                f"key {self.key(key)} must be at most 2^53 - 1, got {_short(value)}"
            )
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key, _MISSING)
        if type(value) not in (int, float) or not math.isfinite(cast(float, value)):
            raise self.wrong(key, value, "a finite number")
        return float(cast(float, value))

    def string(self, key: str) -> str:
        value = self.data.get(key, _MISSING)
        if type(value) is not str:
            raise self.wrong(key, value, "a string")
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str:
        value = self.string(key)
        if value not in choices:
            raise self.fail(
                f"key {self.key(key)} must be one of "
                f"{', '.join(repr(c) for c in choices)}, got {value!r}"
            )
        return value

    def list_of(self, key: str) -> Sequence[object]:
        value = self.data.get(key, _MISSING)
        if type(value) is not list and type(value) is not tuple:
            raise self.wrong(key, value, "a list")
        return cast(Sequence[object], value)

    def int_list(self, key: str, minimum: int = 0) -> tuple[int, ...]:
        items = self.list_of(key)
        for item in items:
            if type(item) is not int or not minimum <= item <= MAX_INTEGER:
                raise self.fail(
                    f"key {self.key(key)} must be a list of integers from {minimum} "
                    f"to 2^53 - 1, got {_short(item)}"
                )
        return tuple(cast(Sequence[int], items))

    def str_list(self, key: str) -> tuple[str, ...]:
        items = self.list_of(key)
        for item in items:
            if not isinstance(item, str):
                raise self.fail(
                    f"key {self.key(key)} must be a list of strings, got {_short(item)}"
                )
        return tuple(cast(Sequence[str], items))

    def span(self, key: str) -> tuple[int, int]:
        value = self.get(key)
        pair = _int_pair(value)
        if pair is None:
            raise self.fail(
                f"key {self.key(key)} must be a [start, stop) pair of integers, "
                f"got {_short(value)}"
            )
        start, stop = pair
        if not 0 <= start <= stop <= MAX_INTEGER:
            raise self.fail(
                f"key {self.key(key)} must satisfy 0 <= start <= stop <= 2^53 - 1, "
                f"got [{_short(start)}, {_short(stop)})"
            )
        return start, stop


ArrayReader: TypeAlias = Callable[[_Fields, bool], tuple[ArrayRange, ...]]
"""Reads and checks the ``arrays`` key of an object (required or not)."""


def _tensor_types(
    fields: _Fields, key: str, arrays: ArrayReader | None = None
) -> tuple[TensorType, ...]:
    """The entries of ``model.inputs`` or ``model.outputs``; with ``arrays``
    an entry may name the memory-mode arrays it starts in."""
    allowed = frozenset({"name", "shape", "dtype"})
    if arrays is not None:
        allowed |= {"arrays"}
    result: list[TensorType] = []
    for index, raw in enumerate(fields.list_of(key)):
        item = _Fields(
            raw, f"{fields.prefix}{fields.key_prefix}{key}[{index}]: ", "the entry"
        )
        item.check_keys(allowed)
        result.append(
            TensorType(
                item.string("name"),
                item.int_list("shape"),
                item.string("dtype"),
                arrays(item, True)
                if arrays is not None and "arrays" in item.data
                else (),
            )
        )
    return tuple(result)


def _model(raw: object, prefix: str, arrays: ArrayReader) -> ModelInfo:
    """The ``model`` object; ``arrays`` reads the arrays inputs start in."""
    fields = _Fields(raw, prefix, "key 'model'", "model.")
    fields.check_keys(
        frozenset({"name", "source", "batch", "dims", "inputs", "outputs"})
    )
    dims = _Fields(fields.get("dims"), prefix, "key 'model.dims'", "model.dims.")
    return ModelInfo(
        name=fields.string("name"),
        source=fields.string("source"),
        batch=fields.integer("batch", 1),
        dims={key: dims.integer(key, 1) for key in sorted(dims.data)},
        inputs=_tensor_types(fields, "inputs", arrays),
        outputs=_tensor_types(fields, "outputs"),
    )


def _check_resident_inputs(
    model: ModelInfo,
    tensors: Sequence[TensorInfo],
    target: HardwareTarget,
    prefix: str,
) -> None:
    """Inputs that start in memory-mode arrays: each in arrays of its own,
    no more bytes than they hold, no more arrays than can switch (a target
    with switchable arrays has memory-mode bandwidth)."""
    sizes = {t.name: t.nbytes for t in tensors}
    dual_mode = target.dual_mode
    owners: dict[int, str] = {}
    for index, spec in enumerate(model.inputs):
        if not spec.arrays:
            continue
        where = f"{prefix}model.inputs[{index}] ('{spec.name}'): "
        for array in (a for first, stop in spec.arrays for a in range(first, stop)):
            other = owners.setdefault(array, spec.name)
            if other != spec.name:
                raise CimError(
                    f"{where}its arrays overlap those of input '{other}' "
                    f"(array {array})"
                )
        if spec.name not in sizes:
            raise CimError(
                f"{where}starts in memory-mode arrays but is not listed in 'tensors'"
            )
        count = count_arrays(spec.arrays)
        capacity = count * dual_mode.memory_capacity_bytes
        if sizes[spec.name] > capacity:
            raise CimError(
                f"{where}has {sizes[spec.name]} bytes, more than its memory-mode "
                f"arrays hold ({count} x {dual_mode.memory_capacity_bytes} B = "
                f"{capacity})"
            )
    if len(owners) > dual_mode.switchable_arrays:
        raise CimError(
            f"{prefix}model inputs start {len(owners)} arrays in memory mode but "
            f"target '{target.name}' has {dual_mode.switchable_arrays} switchable "
            "arrays"
        )


def _tensors(fields: _Fields) -> tuple[TensorInfo, ...]:
    result: list[TensorInfo] = []
    seen: set[str] = set()
    for index, raw in enumerate(fields.list_of("tensors")):
        item = _Fields(raw, f"{fields.prefix}tensors[{index}]: ", "the entry")
        item.check_keys(frozenset({"name", "shape", "dtype", "bytes"}))
        name = item.string("name")
        if name in seen:
            raise item.fail(f"duplicate tensor name {name!r}")
        seen.add(name)
        result.append(
            TensorInfo(
                name,
                item.int_list("shape"),
                item.string("dtype"),
                item.integer("bytes"),
            )
        )
    return tuple(result)


def _constants(fields: _Fields) -> tuple[ConstantInfo, ...]:
    result: list[ConstantInfo] = []
    for index, raw in enumerate(fields.list_of("constants")):
        item = _Fields(raw, f"{fields.prefix}constants[{index}]: ", "the entry")
        item.check_keys(frozenset({"name", "shape", "dtype", "values"}))
        shape = item.int_list("shape")
        values = item.list_of("values")
        if not all(_constant_number(v) for v in values):
            raise item.fail(
                "key 'values' must be a list of finite numbers (integers within "
                "64 bits)"
            )
        if len(values) != math.prod(shape):
            raise item.fail(
                f"key 'values' has {len(values)} numbers for shape {list(shape)}"
            )
        result.append(
            ConstantInfo(
                item.string("name"),
                shape,
                item.string("dtype"),
                tuple(cast(Sequence[float], values)),
            )
        )
    return tuple(result)


def _solver(fields: _Fields) -> tuple[SolveInfo, ...]:
    if "solver" not in fields.data:
        return ()
    result: list[SolveInfo] = []
    for index, raw in enumerate(fields.list_of("solver")):
        item = _Fields(raw, f"{fields.prefix}solver[{index}]: ", "the entry")
        item.check_keys(frozenset({"segments", "status", "nodes"}))
        result.append(
            SolveInfo(
                item.int_list("segments"), item.string("status"), item.integer("nodes")
            )
        )
    return tuple(result)


def _constant_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    return isinstance(value, float) and math.isfinite(value)


def _weights(fields: _Fields) -> tuple[WeightInfo, ...]:
    result: list[WeightInfo] = []
    for index, raw in enumerate(fields.list_of("weights")):
        item = _Fields(raw, f"{fields.prefix}weights[{index}]: ", "the entry")
        item.check_keys(
            frozenset(
                {
                    "name",
                    "layout",
                    "groups",
                    "k",
                    "n",
                    "rows",
                    "intra_block",
                    "driven",
                    "index_block",
                    "columns",
                    "column_row_tiles",
                }
            )
        )
        k = item.integer("k", 1)
        rows = item.integer("rows", 1) if "rows" in item.data else 0
        if rows > k:
            raise item.fail(f"key 'rows' ({rows}) exceeds 'k' ({k})")
        group = item.integer("intra_block", 2) if "intra_block" in item.data else 0
        if group and (not rows or group & (group - 1)):
            raise item.fail(
                f"key 'intra_block' ({group}) needs 'rows' and must be a power of two"
            )
        driven = item.integer("driven", 1) if "driven" in item.data else 0
        if driven and (not group or not rows <= driven <= k):
            raise item.fail(
                f"key 'driven' ({driven}) needs 'intra_block' and must lie between "
                f"'rows' ({rows}) and 'k' ({k})"
            )
        block = item.integer("index_block", 2) if "index_block" in item.data else 0
        if block and (not rows or group or block >= k):
            raise item.fail(
                f"key 'index_block' ({block}) needs 'rows' without 'intra_block' "
                f"and must be below 'k' ({k})"
            )
        n = item.integer("n", 1)
        columns = item.integer("columns", 1) if "columns" in item.data else 0
        if columns and (rows or columns >= n):
            raise item.fail(
                f"key 'columns' ({columns}) must be below 'n' ({n}) and comes "
                "without 'rows'"
            )
        groups = item.integer("groups", 1)
        sliced = (
            item.int_list("column_row_tiles", 1)
            if "column_row_tiles" in item.data
            else ()
        )
        if sliced and (not rows or groups != 1):
            raise item.fail("key 'column_row_tiles' needs 'rows' and one group")
        result.append(
            WeightInfo(
                item.string("name"),
                item.choice("layout", WEIGHT_LAYOUTS),
                groups,
                k,
                n,
                rows,
                group,
                driven,
                block,
                columns,
                sliced,
            )
        )
    return tuple(result)


def _block(fields: _Fields) -> Block | None:
    value = fields.data.get("block")
    if value is None:
        return None
    items = fields.int_list("block")
    if len(items) != 3 or not items[1] < items[2]:
        raise fields.fail(
            f"key 'block' must be null or [axis, start, stop] with start < stop, "
            f"got {_short(value)}"
        )
    return items[0], items[1], items[2]


def _attrs(fields: _Fields) -> dict[str, object]:
    raw = fields.get("attrs")
    if not isinstance(raw, dict):
        raise fields.wrong("attrs", raw, "an object")
    attrs = cast(dict[str, object], raw)
    for key, value in attrs.items():
        shown: object = value
        items: list[object] = (
            cast(list[object], value) if isinstance(value, list) else [value]
        )
        if not all(isinstance(v, int | float | str | bool) for v in items):
            raise fields.fail(
                f"key 'attrs.{key}' must be a number, string, boolean or list of "
                f"numbers, got {_short(shown)}"
            )
    return dict(sorted(attrs.items()))


_COMMON_KEYS = frozenset({"id", "kind", "deps", "segment", "name", "allocs", "layer"})
_TRANSFER_KEYS = _COMMON_KEYS | {"src", "dst", "bytes", "tensor", "arrays", "cores"}
_KIND_KEYS: dict[str, frozenset[str]] = {
    "load": _TRANSFER_KEYS,
    "store": _TRANSFER_KEYS,
    "move": _COMMON_KEYS | {"dir", "cores", "bytes", "tensor", "block", "link_bytes"},
    "program": _COMMON_KEYS
    | {"arrays", "rows", "cols", "weight", "k", "n", "source"}
    | {"feed", "in_bytes", "feed_arrays", "copies"},
    "mvm": _COMMON_KEYS
    | {"arrays", "vectors", "rows", "cols", "weight", "k", "n", "v", "input", "output"}
    | {"feed", "in_bytes", "out_bytes", "local_bytes", "feed_arrays"}
    | {"out_to", "out_arrays", "rows_per_pass", "zero_planes", "zero_groups"}
    | {"in_link_bytes"},
    "vector": _COMMON_KEYS
    | {"op", "element_ops", "cores", "in_bytes", "out_bytes", "inputs", "outputs"}
    | {"attrs", "block", "in_from", "out_to", "in_arrays", "out_arrays"},
    "switch": _COMMON_KEYS | {"arrays", "to"},
    "barrier": _COMMON_KEYS,
    "free": _COMMON_KEYS - {"allocs"} | {"frees"},
}
_PLACE_KEYS = frozenset({"tensor", "level", "cores", "arrays"})
_ALLOC_KEYS = _PLACE_KEYS | {"bytes"}


class _OpReader:
    """Validates ops against one target."""

    def __init__(self, target: HardwareTarget, origin: str) -> None:
        self.target = target
        self.origin = origin
        self.total_arrays = target.total_arrays
        self.total_cores = target.total_cores
        self.builders: dict[
            str, Callable[[_Fields, int, tuple[int, ...], int, str], TraceOp]
        ] = {
            "load": self._transfer,
            "store": self._transfer,
            "move": self._move,
            "program": self._program,
            "mvm": self._mvm,
            "vector": self._vector,
            "switch": self._switch,
            "barrier": self._barrier,
            "free": self._free,
        }

    def read(self, raw: object, index: int) -> TraceOp:
        fields = _Fields(raw, f"{self.origin}: op {index}: ", "the op")
        op_id = fields.integer("id")
        if op_id != index:
            raise fields.fail(
                f"id {op_id} does not match its position {index} in 'ops'"
            )
        kind = fields.string("kind")
        builder = self.builders.get(kind)
        if builder is None:
            raise fields.fail(f"unknown kind {kind!r} (expected {', '.join(OP_KINDS)})")
        fields.check_keys(_KIND_KEYS[kind])
        deps_raw = fields.list_of("deps")
        previous = -1
        for dep in deps_raw:
            if type(dep) is not int:
                raise fields.fail(
                    f"key 'deps' must be a list of integers, got {_short(dep)}"
                )
            if not 0 <= dep < index:
                raise fields.fail(f"dep {dep} is not an earlier op")
            if dep <= previous:
                raise fields.fail(
                    "key 'deps' must be sorted without duplicates, "
                    f"got {_short(deps_raw)}"
                )
            previous = dep
        deps = tuple(cast(Sequence[int], deps_raw))
        op = builder(
            fields, index, deps, fields.integer("segment"), fields.string("name")
        )
        if "layer" in fields.data:
            op = dataclasses.replace(op, layer=fields.string("layer"))
        if "allocs" not in fields.data:
            return op
        allocs = self._allocs(fields)
        return dataclasses.replace(op, allocs=allocs) if allocs else op

    def ranges(
        self, fields: _Fields, key: str, required: bool, cores: bool = False
    ) -> tuple[ArrayRange, ...]:
        """The ``key`` of ``fields``: sorted, disjoint ranges of array (or,
        with ``cores``, core) ids on the chip."""
        items = fields.list_of(key)
        limit = self.total_cores if cores else self.total_arrays
        what = "core" if cores else "array"
        ranges: list[ArrayRange] = []
        for item in items:
            pair = _int_pair(item)
            if pair is None:
                raise fields.fail(
                    f"key {fields.key(key)} must be a list of [first, stop) pairs of "
                    f"integers, got {_short(item)}"
                )
            first, stop = pair
            if not 0 <= first < stop:
                raise fields.fail(
                    f"{what} range [{first}, {stop}) is empty or negative"
                )
            if stop > limit:
                raise fields.fail(
                    f"{what} range [{first}, {stop}) is outside the target's "
                    f"{limit} {what}s"
                )
            if ranges:
                prev_first, prev_stop = ranges[-1]
                if first < prev_first:
                    raise fields.fail(
                        f"{what} ranges are not sorted: [{prev_first}, {prev_stop}) "
                        f"before [{first}, {stop})"
                    )
                if first < prev_stop:
                    raise fields.fail(
                        f"{what} ranges [{prev_first}, {prev_stop}) and "
                        f"[{first}, {stop}) overlap"
                    )
            ranges.append((first, stop))
        if required and not ranges:
            raise fields.fail(f"key {fields.key(key)} must not be empty")
        return tuple(ranges)

    def arrays(self, fields: _Fields, required: bool) -> tuple[ArrayRange, ...]:
        """The ``arrays`` key of ``fields``: sorted, disjoint ranges on the chip."""
        return self.ranges(fields, "arrays", required)

    def cores(self, fields: _Fields, required: bool) -> tuple[ArrayRange, ...]:
        """The ``cores`` key of ``fields``: sorted, disjoint core ranges."""
        return self.ranges(fields, "cores", required, cores=True)

    def _place(self, item: _Fields, alloc: bool) -> Place:
        item.check_keys(_ALLOC_KEYS if alloc else _PLACE_KEYS)
        level = cast(Level, item.choice("level", LEVELS))
        unit_key = {"buffer": None, "local": "cores", "memory": "arrays"}[level]
        for key in ("cores", "arrays"):
            if key != unit_key and key in item.data:
                raise item.fail(
                    f"key {item.key(key)} does not belong to level {level!r}"
                )
        units: tuple[ArrayRange, ...] = ()
        if unit_key is not None:
            units = self.ranges(item, unit_key, True, cores=unit_key == "cores")
        tensor = item.string("tensor")
        if alloc:
            return Alloc(tensor, level, units, item.integer("bytes"))
        return Place(tensor, level, units)

    def _allocs(self, fields: _Fields) -> tuple[Alloc, ...]:
        allocs: list[Alloc] = []
        for index, raw in enumerate(fields.list_of("allocs")):
            item = _Fields(raw, fields.prefix, "an alloc", f"allocs[{index}].")
            allocs.append(cast(Alloc, self._place(item, alloc=True)))
        return tuple(allocs)

    def _rows_cols(self, fields: _Fields) -> tuple[int, int]:
        rows = fields.integer("rows", 1)
        cols = fields.integer("cols", 1)
        if rows > self.target.array.rows:
            raise fields.fail(
                f"key 'rows' ({rows}) exceeds the target's {self.target.array.rows} "
                "rows per array"
            )
        if cols > self.target.array.cols:
            raise fields.fail(
                f"key 'cols' ({cols}) exceeds the target's {self.target.array.cols} "
                "columns per array"
            )
        return rows, cols

    def stream_end(
        self,
        fields: _Fields,
        level: StreamLevel,
        keys: tuple[str, str],
        compute_arrays: tuple[ArrayRange, ...] = (),
    ) -> tuple[ArrayRange, ...]:
        """One end of a stream: ``level`` (the key ``keys[0]``) names
        memory-mode arrays (the key ``keys[1]``) exactly when it is
        ``memory``, none of the op's ``compute_arrays``. Returns the arrays.
        (Its bytes may be 0 at any level: a view of a tensor in DRAM moves
        nothing.)"""
        level_key, arrays_key = keys
        if level != "memory":
            if arrays_key in fields.data:
                raise fields.fail(
                    f"key '{arrays_key}' belongs only to '{level_key}' 'memory'"
                )
            return ()
        arrays = self.ranges(fields, arrays_key, True)
        shared = set(_ids(arrays)) & set(_ids(compute_arrays))
        if shared:
            raise fields.fail(
                f"key '{arrays_key}' shares array {min(shared)} with 'arrays'"
            )
        if self.target.dual_mode.memory_bandwidth_bytes_per_cycle <= 0:
            raise fields.fail(
                f"target '{self.target.name}' has no memory-mode bandwidth"
            )
        return arrays

    def level(self, fields: _Fields, key: str) -> StreamLevel:
        """An optional stream level (default the global buffer)."""
        if key not in fields.data:
            return "buffer"
        return cast(StreamLevel, fields.choice(key, STREAM_LEVELS))

    def needs_feed_path(self, fields: _Fields, what: str) -> None:
        if not self.target.dual_mode.feeds_compute:
            raise fields.fail(
                f"{what} needs the memory-to-compute path, but target "
                f"'{self.target.name}' has dual_mode.feeds_compute = false"
            )

    def _transfer(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        kind = fields.data["kind"]
        src = cast(Location, fields.choice("src", LOCATIONS))
        dst = cast(Location, fields.choice("dst", LOCATIONS))
        if src == dst:
            raise fields.fail(f"keys 'src' and 'dst' are both {src!r}")
        if kind == "load" and dst == "dram":
            raise fields.fail("a load cannot write to 'dram' (that is a store)")
        if kind == "store" and src == "dram":
            raise fields.fail("a store cannot read from 'dram' (that is a load)")
        uses_local = "local" in (src, dst)
        if uses_local and (kind, src, dst) not in (
            ("load", "memory", "local"),
            ("store", "local", "memory"),
        ):
            raise fields.fail(
                "a local buffer is reached only by a load from 'memory' or a store "
                f"to 'memory', not a {kind} from {src!r} to {dst!r}"
            )
        uses_memory = "memory" in (src, dst)
        arrays = self.arrays(fields, required=uses_memory)
        if not uses_memory and arrays:
            raise fields.fail(
                "key 'arrays' must be empty unless 'src' or 'dst' is 'memory'"
            )
        cores = self.cores(fields, required=uses_local)
        if uses_local:
            self.needs_feed_path(fields, f"a {kind} between memory and local")
            if count_arrays(cores) != 1:
                raise fields.fail(
                    f"key 'cores' must name the one core of the local buffer, got "
                    f"{count_arrays(cores)} cores"
                )
            if cores_of_arrays(self.target, arrays) != cores:
                raise fields.fail(
                    f"key 'arrays' must lie in core {cores[0][0]}, the core of its "
                    "local buffer"
                )
        elif cores:
            raise fields.fail(
                "key 'cores' must be empty unless 'src' or 'dst' is 'local'"
            )
        if uses_memory and self.target.dual_mode.memory_bandwidth_bytes_per_cycle <= 0:
            raise fields.fail(
                f"target '{self.target.name}' has no memory-mode bandwidth"
            )
        cls = LoadOp if kind == "load" else StoreOp
        return cls(
            id=op_id,
            deps=deps,
            segment=segment,
            name=name,
            src=src,
            dst=dst,
            nbytes=fields.integer("bytes"),
            tensor=fields.string("tensor"),
            arrays=arrays,
            cores=cores,
        )

    def _move(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        return MoveOp(
            id=op_id,
            deps=deps,
            segment=segment,
            name=name,
            nbytes=fields.integer("bytes"),
            tensor=fields.string("tensor"),
            block=_block(fields),
            direction=cast(MoveDirection, fields.choice("dir", MOVE_DIRECTIONS)),
            cores=self.cores(fields, required=True),
            link_bytes=self.link_bytes(fields, "link_bytes", fields.integer("bytes")),
        )

    def _program(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        arrays = self.arrays(fields, required=True)
        rows, cols = self._rows_cols(fields)
        in_bytes = fields.integer("in_bytes") if "in_bytes" in fields.data else 0
        feed: ProgramFeed
        source: ProgramSource = "weight"
        if fields.data.get("feed") == "cells":
            self.check_in_place(fields, in_bytes)
            feed, feed_arrays = "cells", ()
        else:
            feed = self.level(fields, "feed")
            feed_arrays = self.stream_end(fields, feed, ("feed", "feed_arrays"), arrays)
        if "source" in fields.data:
            fields.choice("source", ("tensor",))
            source = "tensor"
            if not self.target.array.dynamic_matmul:
                raise fields.fail(
                    f"programs arrays with a tensor, but target '{self.target.name}' "
                    "has array.dynamic_matmul = false"
                )
        copies = self.program_copies(fields, arrays, feed)
        return ProgramOp(
            id=op_id,
            deps=deps,
            segment=segment,
            name=name,
            arrays=arrays,
            rows=rows,
            cols=cols,
            weight=fields.string("weight"),
            k=fields.span("k"),
            n=fields.span("n"),
            source=source,
            feed=feed,
            in_bytes=in_bytes,
            feed_arrays=feed_arrays,
            copies=copies,
        )

    def program_copies(
        self, fields: _Fields, arrays: tuple[ArrayRange, ...], feed: ProgramFeed
    ) -> int:
        """A program's ``copies``: 1 when absent; more only on a target whose
        interconnect multicasts, dividing its arrays, not in place."""
        if "copies" not in fields.data:
            return 1
        copies = fields.integer("copies", 1)
        count = sum(stop - start for start, stop in arrays)
        if count % copies:
            raise fields.fail(
                f"key 'copies' ({copies}) must divide the program's {count} arrays"
            )
        if copies > 1 and not self.target.interconnect.multicast:
            raise fields.fail(
                f"programs {copies} copies at once, but target "
                f"'{self.target.name}' has interconnect.multicast = false"
            )
        if copies > 1 and feed == "cells":
            raise fields.fail("key 'copies' does not go with 'feed' 'cells'")
        return copies

    def check_in_place(self, fields: _Fields, in_bytes: int) -> None:
        """A program fed by its own cells streams nothing, writes a weight,
        and needs arrays that switch."""
        for key in ("feed_arrays", "source"):
            if key in fields.data:
                raise fields.fail(f"key '{key}' does not go with 'feed' 'cells'")
        if in_bytes:
            raise fields.fail(
                f"key 'in_bytes' ({in_bytes}) must be 0 with 'feed' 'cells': "
                "nothing streams"
            )
        if self.target.dual_mode.switchable_arrays <= 0:
            raise fields.fail(
                f"stages a weight in place, but target '{self.target.name}' "
                "has no switchable arrays"
            )

    def _mvm(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        arrays = self.arrays(fields, required=True)
        rows, cols = self._rows_cols(fields)
        feed = cast(Feed, fields.choice("feed", FEEDS))
        in_bytes = fields.integer("in_bytes")
        if (feed == "local") != (in_bytes == 0):
            raise fields.fail(
                f"key 'in_bytes' ({in_bytes}) must be 0 exactly when 'feed' is "
                f"'local' (got feed {feed!r})"
            )
        feed_arrays = self.stream_end(
            fields,
            "buffer" if feed == "local" else feed,
            ("feed", "feed_arrays"),
            arrays,
        )
        out_to = self.level(fields, "out_to")
        out_bytes = fields.integer("out_bytes")
        out_arrays = self.stream_end(fields, out_to, ("out_to", "out_arrays"), arrays)
        rows_per_pass = 0
        if "rows_per_pass" in fields.data:
            rows_per_pass = fields.integer("rows_per_pass", 1)
            if rows_per_pass > self.target.array.active_rows:
                raise fields.fail(
                    f"key 'rows_per_pass' ({rows_per_pass}) exceeds the target's "
                    f"{self.target.array.active_rows} active rows"
                )
        return MvmOp(
            id=op_id,
            deps=deps,
            segment=segment,
            name=name,
            arrays=arrays,
            vectors=fields.integer("vectors", 1),
            rows=rows,
            cols=cols,
            weight=fields.string("weight"),
            k=fields.span("k"),
            n=fields.span("n"),
            v=fields.span("v"),
            input=fields.string("input"),
            output=fields.string("output"),
            feed=feed,
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            local_bytes=fields.integer("local_bytes"),
            feed_arrays=feed_arrays,
            out_to=out_to,
            out_arrays=out_arrays,
            rows_per_pass=rows_per_pass,
            zero_shares=self.zero_shares(fields),
            in_link_bytes=self.link_bytes(fields, "in_link_bytes", in_bytes),
        )

    def link_bytes(self, fields: _Fields, key: str, sent: int) -> int | None:
        """A multicast's bytes on the links (``key``, optional): at least the
        ``sent`` bytes, and more only on a mesh that multicasts."""
        if key not in fields.data:
            return None
        carried = fields.integer(key)
        if carried < sent:
            raise fields.fail(
                f"key '{key}' ({carried}) must be at least the {sent} bytes sent"
            )
        interconnect = self.target.interconnect
        if carried > sent and not (
            interconnect.multicast and interconnect.topology == "mesh"
        ):
            raise fields.fail(
                f"key '{key}' ({carried}) exceeds the {sent} bytes sent, but "
                f"target '{self.target.name}' has no multicast mesh"
            )
        return carried

    def zero_shares(self, fields: _Fields) -> ZeroShares | None:
        """An MVM's ``zero_planes`` and ``zero_groups``: both or neither,
        shares in ``[0, 1)``, on a target with zero detectors."""
        keys = ("zero_planes", "zero_groups")
        given = [key in fields.data for key in keys]
        if not any(given):
            return None
        if not all(given):
            raise fields.fail("keys 'zero_planes' and 'zero_groups' go together")
        shares = [fields.number(key) for key in keys]
        for key, share in zip(keys, shares, strict=True):
            if not 0.0 <= share < 1.0:
                raise fields.fail(f"key '{key}' ({share}) must be in [0, 1)")
        if not self.target.array.zero_skip:
            raise fields.fail(
                f"key 'zero_planes' needs a target with zero detectors; "
                f"'{self.target.name}' has array.zero_skip = false"
            )
        return ZeroShares(*shares)

    def _vector(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        cores = self.cores(fields, required=True)
        outputs = fields.str_list("outputs")
        if not outputs:
            raise fields.fail("key 'outputs' must name at least one tensor")
        in_from = self.level(fields, "in_from")
        in_bytes = fields.integer("in_bytes")
        in_arrays = self.stream_end(fields, in_from, ("in_from", "in_arrays"))
        out_to = self.level(fields, "out_to")
        out_bytes = fields.integer("out_bytes")
        out_arrays = self.stream_end(fields, out_to, ("out_to", "out_arrays"))
        return VectorOp(
            id=op_id,
            deps=deps,
            segment=segment,
            name=name,
            op=fields.string("op"),
            element_ops=fields.integer("element_ops"),
            inputs=fields.str_list("inputs"),
            outputs=outputs,
            attrs=_attrs(fields),
            block=_block(fields),
            cores=cores,
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            in_from=in_from,
            out_to=out_to,
            in_arrays=in_arrays,
            out_arrays=out_arrays,
        )

    def _switch(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        arrays = self.arrays(fields, required=True)
        to = cast(SwitchDirection, fields.choice("to", SWITCH_DIRECTIONS))
        switchable = self.target.dual_mode.switchable_arrays
        if count_arrays(arrays) > switchable:
            raise fields.fail(
                f"switches {count_arrays(arrays)} arrays but the target has "
                f"{switchable} switchable arrays"
            )
        return SwitchOp(
            id=op_id, deps=deps, segment=segment, name=name, arrays=arrays, to=to
        )

    def _barrier(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        return BarrierOp(id=op_id, deps=deps, segment=segment, name=name)

    def _free(
        self,
        fields: _Fields,
        op_id: int,
        deps: tuple[int, ...],
        segment: int,
        name: str,
    ) -> TraceOp:
        frees: list[Place] = []
        for index, raw in enumerate(fields.list_of("frees")):
            item = _Fields(raw, fields.prefix, "a free", f"frees[{index}].")
            frees.append(self._place(item, alloc=False))
        if not frees:
            raise fields.fail("key 'frees' must name at least one allocation")
        return FreeOp(
            id=op_id, deps=deps, segment=segment, name=name, frees=tuple(frees)
        )


def _ids(ranges: Sequence[ArrayRange]) -> list[int]:
    return [i for first, stop in ranges for i in range(first, stop)]


_TOP_KEYS = frozenset(
    {
        "format",
        "version",
        "model",
        "strategy",
        "target",
        "tensors",
        "constants",
        "weights",
        "ops",
        "solver",
    }
)


@paused_collector()
def parse_trace(
    data: object, origin: str = "<trace>", check_meaning: bool = True
) -> Trace:
    """Validate a parsed trace document, its structure and (unless
    ``check_meaning`` is false: a schedule-only trace, e.g. a timing test's)
    its meaning (:mod:`cimflow.cimsim.semantics`); ``origin`` names it in
    errors."""
    top = _Fields(data, f"{origin}: ", "the trace")
    fmt = top.get("format")
    if fmt != TRACE_FORMAT:
        raise top.fail(f"key 'format' must be {TRACE_FORMAT!r}, got {_short(fmt)}")
    version = top.get("version")
    if type(version) is not int or version != TRACE_VERSION:
        older = type(version) is int and 0 < version < TRACE_VERSION
        raise top.fail(
            f"unsupported trace version {_short(version)} (this cim-sim reads "
            f"version {TRACE_VERSION}"
            + ("; compile the model again)" if older else ")")
        )
    top.check_keys(_TOP_KEYS)
    raw_target = top.get("target")
    if not isinstance(raw_target, dict):
        raise top.fail(f"key 'target' must be an object, got {_type_name(raw_target)}")
    target = target_from_dict(cast(dict[str, object], raw_target), f"{origin}: target")
    reader = _OpReader(target, origin)
    model = _model(top.get("model"), top.prefix, reader.arrays)
    strategy = top.string("strategy")
    tensors = _tensors(top)
    _check_resident_inputs(model, tensors, target, top.prefix)
    constants = _constants(top)
    weights = _weights(top)
    ops = tuple(reader.read(raw, index) for index, raw in enumerate(top.list_of("ops")))
    trace = Trace(
        model=model,
        strategy=strategy,
        target=target,
        tensors=tensors,
        constants=constants,
        weights=weights,
        ops=ops,
        origin=origin,
        solver=_solver(top),
    )
    if check_meaning:
        from .semantics import check_semantics  # it reads the types defined here

        check_semantics(trace)
    return trace


def load_trace(
    source: str | os.PathLike[str] | Mapping[str, object],
    origin: str | None = None,
    check_meaning: bool = True,
) -> Trace:
    """Load and validate a trace from a JSON file path or an already-parsed dict.

    ``origin`` names the trace in error messages (default: the path, or
    ``<trace>`` for a dict).
    """
    if isinstance(source, Mapping):
        return parse_trace(dict(source), origin or "<trace>", check_meaning)
    path = Path(source)
    name = origin or str(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CimError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = (
            (err.strerror or str(err)) if isinstance(err, OSError) else "not UTF-8 text"
        )
        raise CimError(f"{name}: cannot read: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CimError(
            f"{name}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except RecursionError:
        raise CimError(f"{name}: invalid JSON: nested too deeply") from None
    return parse_trace(data, name, check_meaning)


def _dump_compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


def dump_trace(trace: Mapping[str, object]) -> str:
    """Serialize a trace dict deterministically (sorted keys, trailing newline).

    The top level and its objects are indented one key per line; every element
    of a top-level list (each op, each tensor) is written compactly on one
    line, so traces diff well and FileCheck can match one op per line. The
    same dict always gives the same string.
    """
    lines = ["{"]
    keys = sorted(trace)
    for position, key in enumerate(keys):
        comma = "," if position < len(keys) - 1 else ""
        lines += _dump_member(key, trace[key], comma)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dump_member(key: str, value: object, comma: str) -> list[str]:
    head = f" {json.dumps(key)}: "
    if not value or not isinstance(value, (Mapping, list, tuple)):
        return [head + _dump_compact(value) + comma]
    if isinstance(value, Mapping):
        table = cast(Mapping[str, object], value)
        body = [
            f"  {json.dumps(sub_key)}: {_dump_compact(table[sub_key])},"
            for sub_key in sorted(table)
        ]
        opening, closing = "{", "}"
    else:
        body = [f"  {_dump_compact(item)}," for item in cast(Sequence[object], value)]
        opening, closing = "[", "]"
    body[-1] = body[-1][:-1]
    return [head + opening, *body, f" {closing}{comma}"]
