"""The ``cim_meta`` dialect: the schedule of meta-operations a chip executes.

A ``cim_meta.schedule`` lists, in issue order, CMSwitch-style meta-ops:
switching array modes, programming weights, MVMs on array groups, vector
work, loads and stores between DRAM, buffers and memory-mode arrays, moves
over the interconnect, parallel groups and segment boundaries. Every op
returns a ``!cim_meta.token``; an op starts only after the ops whose tokens it
takes ``after(...)`` have finished. Sizes, array and core sets are explicit,
so the trace target is a straight walk. Any meta-op may carry ``allocs``:
the tensors it places in a storage level (the global buffer, cores' local
buffers, memory-mode arrays), held until a ``cim_meta.free`` releases them
(docs/trace-format.md, docs/machine-model.md).

```mlir
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1
    inputs ["x"] outputs ["y"] {
  cim_meta.tensor "x" : tensor<1x512xf32> bytes 512
  cim_meta.tensor "y" : tensor<1x10xf32> bytes 10
  %0 = cim_meta.load "x" 512 bytes dram -> buffer segment 0
  %1 = cim_meta.load "fc.weight" 5120 bytes dram -> buffer segment 0
  %2 = cim_meta.program "fc.weight" arrays <0:2> rows 320 cols 80 k [0, 512]
       n [0, 10] segment 0 after(%1)
  %3 = cim_meta.mvm "fc.weight" arrays <0:2> vectors 1 rows 320 cols 80
       k [0, 512] n [0, 10] v [0, 1] input "x" output "y" segment 0 after(%0, %2)
  %4 = cim_meta.store "y" 10 bytes buffer -> dram segment 0 after(%3)
}
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, cast

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    SymbolNameConstraint,
    TensorType,
    f64,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import (
    Attribute,
    Dialect,
    Operation,
    ParametrizedAttribute,
    Region,
    SpacedOpaqueSyntaxAttribute,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    EqAttrConstraint,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    param_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from cimflow.cimdialect.cim_graph import MAX_INLINE_ELEMENTS, i64_array, i64_attr, ints
from cimflow.cimdialect.cim_tile import (
    ArrayMode,
    ArrayModeAttr,
    WeightLayout,
    WeightLayoutAttr,
    shares_from_attrs,
)
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    EPILOGUE_ACTIVATIONS,
    EPILOGUE_HOSTS,
    RESIDUAL_LAYOUTS,
    ZeroShares,
)

I64Array = DenseArrayBase.constr(i64)


@irdl_attr_definition
class TokenType(ParametrizedAttribute, TypeAttribute):
    """Completion of a meta-op: ``!cim_meta.token``."""

    name = "cim_meta.token"


_TOKEN = TokenType()


class Location(StrEnum):
    DRAM = "dram"
    BUFFER = "buffer"
    MEMORY = "memory"
    LOCAL = "local"


@irdl_attr_definition
class LocationAttr(EnumAttribute[Location], SpacedOpaqueSyntaxAttribute):
    """Where bytes live: off-chip ``dram``, the on-chip global ``buffer``,
    ``memory``-mode arrays, or a core's ``local`` buffer.

    ```mlir
    #cim_meta<location local>
    ```
    """

    name = "cim_meta.location"


class MoveDirection(StrEnum):
    IN = "in"
    OUT = "out"


@irdl_attr_definition
class MoveDirectionAttr(EnumAttribute[MoveDirection], SpacedOpaqueSyntaxAttribute):
    """Which way a move crosses the interconnect: ``in`` (global buffer to
    cores) or ``out`` (cores to global buffer).

    ```mlir
    #cim_meta<dir out>
    ```
    """

    name = "cim_meta.dir"


class Feed(StrEnum):
    LOCAL = "local"
    BUFFER = "buffer"
    MEMORY = "memory"
    DRAM = "dram"
    CELLS = "cells"


@irdl_attr_definition
class FeedAttr(EnumAttribute[Feed], SpacedOpaqueSyntaxAttribute):
    """Where an MVM or a program reads what it streams: an MVM's input
    already in its cores' ``local`` buffers (staged there by a move), or
    streamed from the global ``buffer``, from ``memory``-mode arrays (of its
    own cores by the memory-to-compute path, else over the interconnect) or
    from ``dram`` through the global buffer; a program's values from the
    ``buffer``, ``dram``, ``memory``-mode arrays, or its arrays' own
    ``cells`` (staged there in memory mode: the program switches them to
    compute mode in place).

    ```mlir
    #cim_meta<feed memory>
    ```
    """

    name = "cim_meta.feed"


class ProgramSource(StrEnum):
    WEIGHT = "weight"
    TENSOR = "tensor"


@irdl_attr_definition
class ProgramSourceAttr(EnumAttribute[ProgramSource], SpacedOpaqueSyntaxAttribute):
    """What a program writes: a model ``weight`` or the values of an
    activation ``tensor`` (the run-time operand of a dynamic matmul).

    ```mlir
    #cim_meta<source tensor>
    ```
    """

    name = "cim_meta.source"


@lru_cache(maxsize=1 << 16)
def _pairs(bounds: DenseArrayBase) -> tuple[tuple[int, int], ...]:
    """``bounds`` read as ``start, stop`` pairs (remembered: the lowering
    and the trace writer read the same ranges many times)."""
    flat = ints(bounds)
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


class _IdRangesAttr(ParametrizedAttribute):
    """Sorted, disjoint ``start:stop`` ranges of ids (arrays or cores)."""

    bounds: DenseArrayBase = param_def(I64Array)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return list(_pairs(self.bounds))

    @property
    def count(self) -> int:
        return sum(stop - start for start, stop in self.ranges)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        def parse_range() -> list[int]:
            start = parser.parse_integer(allow_boolean=False)
            parser.parse_punctuation(":")
            return [start, parser.parse_integer(allow_boolean=False)]

        with parser.in_angle_brackets():
            pairs = parser.parse_comma_separated_list(
                parser.Delimiter.NONE, parse_range
            )
        return (i64_array([b for pair in pairs for b in pair]),)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string(", ".join(f"{a}:{b}" for a, b in self.ranges))

    def verify(self) -> None:
        flat = ints(self.bounds)
        if not flat or len(flat) % 2:
            raise VerifyException(f"#{self.name} needs at least one start:stop range")
        previous_stop = -1
        for start, stop in self.ranges:
            if start < 0 or stop <= start or start < previous_stop:
                raise VerifyException(
                    f"#{self.name} ranges must be non-empty, sorted and disjoint, "
                    f"got {start}:{stop}"
                )
            previous_stop = stop


@irdl_attr_definition
class ArrayRangesAttr(_IdRangesAttr):
    """A set of global array ids as sorted, disjoint ``start:stop`` ranges.

    ```mlir
    #cim_meta.arrays<0:16, 32:40>
    ```
    """

    name = "cim_meta.arrays"

    bounds: DenseArrayBase = param_def(I64Array)

    @staticmethod
    def from_ranges(ranges: Sequence[tuple[int, int]]) -> ArrayRangesAttr:
        """The attribute of ``ranges`` (equal ones are shared: attributes
        are immutable)."""
        return _array_ranges(tuple(b for r in ranges for b in r))


@irdl_attr_definition
class CoreRangesAttr(_IdRangesAttr):
    """A set of core ids as sorted, disjoint ``start:stop`` ranges (core
    ``c`` holds arrays ``[c * arrays_per_core, (c + 1) * arrays_per_core)``).

    ```mlir
    #cim_meta.cores<0:2, 5:6>
    ```
    """

    name = "cim_meta.cores"

    bounds: DenseArrayBase = param_def(I64Array)

    @staticmethod
    def from_ranges(ranges: Sequence[tuple[int, int]]) -> CoreRangesAttr:
        """The attribute of ``ranges`` (equal ones are shared)."""
        return _core_ranges(tuple(b for r in ranges for b in r))


@lru_cache(maxsize=1 << 14)
def _array_ranges(bounds: tuple[int, ...]) -> ArrayRangesAttr:
    return ArrayRangesAttr(i64_array(bounds))


@lru_cache(maxsize=1 << 14)
def _core_ranges(bounds: tuple[int, ...]) -> CoreRangesAttr:
    return CoreRangesAttr(i64_array(bounds))


@lru_cache(maxsize=1 << 16)
def _string(text: str) -> StringAttr:
    """A string attribute (names and labels repeat over a schedule's ops;
    attributes are immutable, so equal ones are shared)."""
    return StringAttr(text)


@cache
def _location(level: Location) -> LocationAttr:
    return LocationAttr(level)


@cache
def _feed(feed: Feed) -> FeedAttr:
    return FeedAttr(feed)


Units = ArrayRangesAttr | CoreRangesAttr | NoneAttr
"""The cores (level ``local``), arrays (``memory``) or none (``buffer``) of a
placement."""


def _parse_level_units(parser: AttrParser) -> tuple[LocationAttr, Units]:
    """A level, then ``cores <...>``, ``arrays <...>`` or nothing."""
    level = LocationAttr(parser.parse_str_enum(Location))
    units: Units = NoneAttr()
    if parser.parse_optional_keyword("cores"):
        (bounds,) = CoreRangesAttr.parse_parameters(parser)
        units = CoreRangesAttr(cast(DenseArrayBase, bounds))
    elif parser.parse_optional_keyword("arrays"):
        (bounds,) = ArrayRangesAttr.parse_parameters(parser)
        units = ArrayRangesAttr(cast(DenseArrayBase, bounds))
    return level, units


def _print_level_units(printer: Printer, level: LocationAttr, units: Units) -> None:
    printer.print_string(f" {level.data.value}")
    if not isinstance(units, NoneAttr):
        printer.print_string(
            " cores " if isinstance(units, CoreRangesAttr) else " arrays "
        )
        units.print_parameters(printer)


def _verify_level_units(what: str, level: LocationAttr, units: Units) -> None:
    """The ``local`` level names cores, ``memory`` arrays, ``buffer`` neither."""
    expected: dict[Location, tuple[type[Attribute], str]] = {
        Location.BUFFER: (NoneAttr, "neither cores nor arrays"),
        Location.LOCAL: (CoreRangesAttr, "its cores"),
        Location.MEMORY: (ArrayRangesAttr, "its arrays"),
    }
    if level.data not in expected:
        raise VerifyException(
            f"#{what} level must be buffer, local or memory, got {level.data.value}"
        )
    kind, names = expected[level.data]
    if type(units) is not kind:
        raise VerifyException(f"#{what} in {level.data.value} names {names}")


@irdl_attr_definition
class AllocAttr(ParametrizedAttribute):
    """``bytes`` of tensor ``tensor`` placed in a storage level: the global
    ``buffer``, the ``local`` buffers of some cores (split evenly among
    them) or ``memory``-mode arrays. An op's ``allocs`` occupy their level
    from the op's start until a ``cim_meta.free`` names them.

    ```mlir
    #cim_meta.alloc<"x" 4096 bytes buffer>
    #cim_meta.alloc<"x" 2048 bytes local cores <0:2>>
    #cim_meta.alloc<"y" 512 bytes memory arrays <8:10>>
    ```
    """

    name = "cim_meta.alloc"

    tensor: StringAttr = param_def()
    size: IntegerAttr = param_def()
    level: LocationAttr = param_def()
    units: Units = param_def()

    @staticmethod
    def get(
        tensor: str,
        size: int,
        level: Location,
        units: ArrayRangesAttr | CoreRangesAttr | None = None,
    ) -> AllocAttr:
        return AllocAttr(
            _string(tensor),
            i64_attr(size),
            _location(level),
            NoneAttr() if units is None else units,
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            tensor = StringAttr(parser.parse_str_literal())
            size = i64_attr(parser.parse_integer(allow_boolean=False))
            parser.parse_keyword("bytes")
            level, units = _parse_level_units(parser)
        return (tensor, size, level, units)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.tensor.data)
            printer.print_string(f" {self.size.value.data} bytes")
            _print_level_units(printer, self.level, self.units)

    def verify(self) -> None:
        if self.size.value.data < 0:
            raise VerifyException("#cim_meta.alloc bytes must not be negative")
        _verify_level_units("cim_meta.alloc", self.level, self.units)


@irdl_attr_definition
class PlaceAttr(ParametrizedAttribute):
    """Where a tensor was allocated: what a ``cim_meta.free`` releases
    (every live allocation of that tensor in that level and cores or
    arrays).

    ```mlir
    #cim_meta.place<"x" buffer>
    #cim_meta.place<"x" local cores <0:2>>
    ```
    """

    name = "cim_meta.place"

    tensor: StringAttr = param_def()
    level: LocationAttr = param_def()
    units: Units = param_def()

    @staticmethod
    def get(
        tensor: str,
        level: Location,
        units: ArrayRangesAttr | CoreRangesAttr | None = None,
    ) -> PlaceAttr:
        return PlaceAttr(
            _string(tensor),
            _location(level),
            NoneAttr() if units is None else units,
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            tensor = StringAttr(parser.parse_str_literal())
            level, units = _parse_level_units(parser)
        return (tensor, level, units)

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.tensor.data)
            _print_level_units(printer, self.level, self.units)

    def verify(self) -> None:
        _verify_level_units("cim_meta.place", self.level, self.units)


def _verify_span(op: Operation, key: str, span: DenseArrayBase) -> tuple[int, int]:
    values = ints(span)
    if len(values) != 2 or not 0 <= values[0] < values[1]:
        raise VerifyException(f"'{op.name}' {key} must be a non-empty [start, stop)")
    return values[0], values[1]


def _verify_block(op: Operation, block: DenseArrayBase | None) -> None:
    if block is None:
        return
    values = ints(block)
    if len(values) != 3 or values[0] < 0 or not 0 <= values[1] < values[2]:
        raise VerifyException(
            f"'{op.name}' block must be [axis, start, stop) with start < stop"
        )


def _ids(ranges: _IdRangesAttr) -> list[int]:
    return [i for start, stop in ranges.ranges for i in range(start, stop)]


_STREAM_LEVELS = (Location.BUFFER, Location.DRAM, Location.MEMORY)


def _verify_stream_end(
    op: Operation,
    level: Location | Feed,
    arrays: ArrayRangesAttr | None,
    keys: tuple[str, str],
) -> None:
    """One end of a stream: the level is the global buffer, DRAM or
    memory-mode arrays, which it names exactly then (it may stream 0 bytes
    from any: a view of a tensor in DRAM moves nothing). ``keys`` name the
    level and the arrays."""
    level_key, arrays_key = keys
    if level.value not in _STREAM_LEVELS:
        raise VerifyException(
            f"'{op.name}' {level_key} must be buffer, dram or memory, got {level.value}"
        )
    if (level.value == Location.MEMORY) != (arrays is not None):
        raise VerifyException(
            f"'{op.name}' names {arrays_key} exactly when its {level_key} is memory"
        )


def _verify_disjoint(
    op: Operation, key: str, streamed: ArrayRangesAttr | None, arrays: ArrayRangesAttr
) -> None:
    if streamed is not None and set(_ids(streamed)) & set(_ids(arrays)):
        raise VerifyException(f"'{op.name}' {key} and arrays must be disjoint")


class _MetaOp(IRDLOperation):
    """Fields every scheduled meta-op has."""

    deps = var_operand_def(TokenType())
    token = result_def(TokenType())
    segment = prop_def(IntegerAttr.constr(i64))
    label = opt_prop_def(StringAttr)
    allocs = opt_prop_def(ArrayAttr[AllocAttr])

    def _init_meta(
        self,
        deps: Sequence[SSAValue],
        properties: Mapping[str, Attribute | None],
        regions: Sequence[Region] = (),
    ) -> None:
        # Lowering a large model builds 10^5 meta-ops: every one has one
        # variadic operand and one token result, so skip the generic IRDL
        # argument builder (``Operation.create`` does the same).
        Operation.__init__(
            self,
            operands=tuple(deps),
            result_types=(_TOKEN,),
            properties={k: v for k, v in properties.items() if v is not None},
            regions=regions,
        )

    def verify_segment(self) -> None:
        if self.segment.value.data < 0:
            raise VerifyException(f"'{self.name}' segment must not be negative")
        if self.allocs is not None and not self.allocs.data:
            raise VerifyException(f"'{self.name}' allocs, when given, are not empty")

    def verify_(self) -> None:
        self.verify_segment()


def _common_properties(
    segment: int, label: str | None, allocs: Sequence[AllocAttr] = ()
) -> dict[str, Attribute]:
    properties: dict[str, Attribute] = {"segment": i64_attr(segment)}
    if label:
        properties["label"] = _string(label)
    if allocs:
        properties["allocs"] = ArrayAttr(allocs)
    return properties


_TAIL_FORMAT = "(`label` $label^)? (`allocs` $allocs^)? (`after` `(` $deps^ `)`)?"
_DEPS_FORMAT = f"`segment` $segment {_TAIL_FORMAT} attr-dict"


_LEVEL = {Location.DRAM: 0, Location.MEMORY: 1, Location.BUFFER: 2, Location.LOCAL: 3}


class _TransferOp(_MetaOp):
    tensor = prop_def(StringAttr)
    size = prop_def(IntegerAttr.constr(i64), prop_name="bytes")
    src = prop_def(LocationAttr)
    dst = prop_def(LocationAttr)
    arrays = opt_prop_def(ArrayRangesAttr)
    cores = opt_prop_def(CoreRangesAttr)

    assembly_format = (
        "$tensor $bytes `bytes` $src `->` $dst (`arrays` $arrays^)? "
        "(`cores` $cores^)? " + _DEPS_FORMAT
    )

    def __init__(
        self,
        tensor: str,
        size: int,
        src: Location,
        dst: Location,
        deps: Sequence[SSAValue],
        segment: int,
        arrays: ArrayRangesAttr | None = None,
        label: str | None = None,
        *,
        cores: CoreRangesAttr | None = None,
        allocs: Sequence[AllocAttr] = (),
    ):
        properties = _common_properties(segment, label, allocs) | {
            "tensor": _string(tensor),
            "bytes": i64_attr(size),
            "src": _location(src),
            "dst": _location(dst),
        }
        if arrays is not None:
            properties["arrays"] = arrays
        if cores is not None:
            properties["cores"] = cores
        self._init_meta(deps, properties)

    def verify_(self) -> None:
        self.verify_segment()
        if self.size.value.data < 1:
            raise VerifyException(f"'{self.name}' moves at least one byte")
        src, dst = self.src.data, self.dst.data
        if src == dst:
            raise VerifyException(f"'{self.name}' source and destination are the same")
        if Location.LOCAL in (src, dst) and Location.MEMORY not in (src, dst):
            raise VerifyException(
                f"'{self.name}' reaches a local buffer only from memory-mode arrays "
                "(the global buffer's path to the cores is cim_meta.move)"
            )
        toward_arrays = _LEVEL[dst] > _LEVEL[src]
        if toward_arrays != isinstance(self, LoadOp):
            raise VerifyException(
                f"'{self.name}' cannot move {src} -> {dst}: loads move toward the "
                "arrays (dram -> memory -> buffer, memory -> local), stores away"
            )
        uses_memory = Location.MEMORY in (src, dst)
        if uses_memory != (self.arrays is not None):
            raise VerifyException(
                f"'{self.name}' names arrays exactly when it reads or writes "
                "memory-mode arrays"
            )
        uses_local = Location.LOCAL in (src, dst)
        if uses_local != (self.cores is not None):
            raise VerifyException(
                f"'{self.name}' names cores exactly when it reads or writes a "
                "local buffer"
            )
        if self.cores is not None and self.cores.count != 1:
            raise VerifyException(
                f"'{self.name}' to or from a local buffer names one core"
            )


@irdl_op_definition
class LoadOp(_TransferOp):
    """Bring bytes closer to the arrays: DRAM -> memory-mode arrays -> buffer,
    or memory-mode arrays -> the local buffer of their core (the
    memory-to-compute path; ``cores`` names that one core).

    ```mlir
    %t = cim_meta.load "x" 150528 bytes dram -> buffer segment 0
    %u = cim_meta.load "x" 4096 bytes memory -> local arrays <8:10> cores <0:1>
         segment 0 allocs [#cim_meta.alloc<"x" 4096 bytes local cores <0:1>>]
    ```
    """

    name = "cim_meta.load"


@irdl_op_definition
class StoreOp(_TransferOp):
    """Write bytes out: buffer -> memory-mode arrays -> DRAM, or a core's
    local buffer -> memory-mode arrays of that core.

    ```mlir
    %t = cim_meta.store "y" 4096 bytes buffer -> memory arrays <88:96> segment 0
         after(%m)
    %u = cim_meta.store "y" 512 bytes local -> memory arrays <8:9> cores <0:1>
         segment 0 after(%m)
    ```
    """

    name = "cim_meta.store"


@irdl_op_definition
class MoveOp(_MetaOp):
    """Move bytes over the interconnect between the global buffer and cores:
    ``in`` to the local buffers of ``cores``, ``out`` from them (without
    ``cores``: every core of the target).

    ```mlir
    %t = cim_meta.move "x" 4096 bytes in cores <0:2> segment 0 after(%l)
    %u = cim_meta.move "y" 640 bytes out segment 0 after(%m)
    %v = cim_meta.move "x" 4096 bytes in cores <0:2> link_bytes 8192 segment 0
    ```

    ``link_bytes``: what the cores' links carry in all, where a multicast
    mesh sends bytes several of the cores take once through the global
    buffer's port (``bytes``).
    """

    name = "cim_meta.move"

    tensor = prop_def(StringAttr)
    size = prop_def(IntegerAttr.constr(i64), prop_name="bytes")
    direction = prop_def(MoveDirectionAttr, prop_name="dir")
    cores = opt_prop_def(CoreRangesAttr)
    block = opt_prop_def(I64Array)
    link_bytes = opt_prop_def(IntegerAttr.constr(i64))

    assembly_format = (
        "$tensor $bytes `bytes` $dir (`cores` $cores^)? (`block` $block^)? "
        "(`link_bytes` $link_bytes^)? " + _DEPS_FORMAT
    )

    def __init__(
        self,
        tensor: str,
        size: int,
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        block: tuple[int, int, int] | None = None,
        *,
        direction: MoveDirection = MoveDirection.IN,
        cores: CoreRangesAttr | None = None,
        allocs: Sequence[AllocAttr] = (),
        link_bytes: int | None = None,
    ):
        properties = _common_properties(segment, label, allocs) | {
            "tensor": _string(tensor),
            "bytes": i64_attr(size),
            "dir": MoveDirectionAttr(direction),
        }
        if cores is not None:
            properties["cores"] = cores
        if block is not None:
            properties["block"] = i64_array(block)
        if link_bytes is not None:
            properties["link_bytes"] = i64_attr(link_bytes)
        self._init_meta(deps, properties)

    def verify_(self) -> None:
        self.verify_segment()
        if self.size.value.data < 1:
            raise VerifyException("'cim_meta.move' moves at least one byte")
        _verify_block(self, self.block)
        _verify_link_bytes(self, self.link_bytes, self.size, "bytes")


def _verify_link_bytes(
    op: Operation,
    links: IntegerAttr[Any] | None,
    sent: IntegerAttr[Any],
    sent_name: str,
) -> None:
    if links is not None and links.value.data < sent.value.data:
        raise VerifyException(
            f"'{op.name}' link bytes ({links.value.data}) must be at least its "
            f"{sent_name} ({sent.value.data})"
        )


class _ArrayWorkOp(_MetaOp):
    weight = prop_def(StringAttr)
    arrays = prop_def(ArrayRangesAttr)
    rows = prop_def(IntegerAttr.constr(i64))
    cols = prop_def(IntegerAttr.constr(i64))
    k = prop_def(I64Array)
    n = prop_def(I64Array)

    def verify_array_work(self) -> None:
        self.verify_segment()
        if self.rows.value.data < 1 or self.cols.value.data < 1:
            raise VerifyException(f"'{self.name}' uses at least one row and column")
        _verify_span(self, "k", self.k)
        _verify_span(self, "n", self.n)


@irdl_op_definition
class ProgramOp(_ArrayWorkOp):
    """Write a slice of a weight into arrays (``rows`` x ``cols`` used in each).

    ``k`` and ``n`` give the ``[start, stop)`` part of the weight's ``[K, N]``
    matrix (all groups) the arrays hold after this op. With ``source tensor``
    the values come from the activation tensor ``weight`` (its matrix view
    declared by a ``cim_meta.weight`` of the same name: the run-time operand
    of a dynamic matmul), streamed to the arrays' cores as they are written.

    ``feed`` says where the values are: in the global ``buffer`` (default),
    in ``dram`` or in the memory-mode ``feed_arrays``; ``in_bytes`` of them
    stream to the arrays' cores over the interconnect while the arrays are
    written (0, only with ``feed buffer``: nothing streams, except a tensor's
    values). With ``feed cells`` the arrays, in memory mode, already hold
    the slice in their cells (a prefetch staged it there in the layout
    compute mode reads): the program switches them to compute mode in place
    and streams nothing.

    ``copies`` (default 1) writes the slice into that many copies at once,
    on a target whose interconnect multicasts: ``arrays`` lists them in
    order, the same number of arrays each, and the values read once
    (``in_bytes`` of them) reach every copy's cores.

    ```mlir
    %t = cim_meta.program "fc.weight" arrays <0:4> rows 320 cols 320
         k [0, 768] n [0, 80] segment 0 after(%l)
    %u = cim_meta.program "k.t" arrays <4:5> rows 64 cols 64 k [0, 64] n [0, 8]
         source tensor segment 0 after(%m)
    %v = cim_meta.program "fc.weight" arrays <0:4> rows 320 cols 320
         k [0, 768] n [0, 80] feed dram in_bytes 61440 segment 0
    %w = cim_meta.program "fc.weight" arrays <4:8> rows 320 cols 320
         k [0, 768] n [0, 80] feed cells segment 1 after(%s)
    %x = cim_meta.program "fc.weight" arrays <0:4, 8:12> rows 320 cols 320
         k [0, 768] n [0, 80] in_bytes 61440 copies 2 segment 0 after(%l)
    ```
    """

    name = "cim_meta.program"

    source = prop_def(
        ProgramSourceAttr, default_value=ProgramSourceAttr(ProgramSource.WEIGHT)
    )
    feed = prop_def(FeedAttr, default_value=FeedAttr(Feed.BUFFER))
    feed_arrays = opt_prop_def(ArrayRangesAttr)
    in_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    copies = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(1))

    assembly_format = (
        "$weight `arrays` $arrays `rows` $rows `cols` $cols `k` $k `n` $n "
        "(`source` $source^)? (`feed` $feed^)? (`feed_arrays` $feed_arrays^)? "
        "(`in_bytes` $in_bytes^)? (`copies` $copies^)? " + _DEPS_FORMAT
    )

    def __init__(
        self,
        weight: str,
        arrays: ArrayRangesAttr,
        rows: int,
        cols: int,
        k: tuple[int, int],
        n: tuple[int, int],
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        *,
        source: ProgramSource = ProgramSource.WEIGHT,
        feed: Feed = Feed.BUFFER,
        in_bytes: int = 0,
        feed_arrays: ArrayRangesAttr | None = None,
        allocs: Sequence[AllocAttr] = (),
        copies: int = 1,
    ):
        properties = _common_properties(segment, label, allocs) | {
            "weight": _string(weight),
            "arrays": arrays,
            "rows": i64_attr(rows),
            "cols": i64_attr(cols),
            "k": i64_array(k),
            "n": i64_array(n),
            "source": ProgramSourceAttr(source),
            "feed": _feed(feed),
            "in_bytes": i64_attr(in_bytes),
            "copies": i64_attr(copies),
        }
        if feed_arrays is not None:
            properties["feed_arrays"] = feed_arrays
        self._init_meta(deps, properties)

    def verify_(self) -> None:
        self.verify_array_work()
        if self.in_bytes.value.data < 0:
            raise VerifyException("'cim_meta.program' in_bytes must not be negative")
        copies = self.copies.value.data
        if copies < 1 or self.arrays.count % copies:
            raise VerifyException(
                f"'cim_meta.program' copies ({copies}) must be positive and "
                f"divide its {self.arrays.count} arrays"
            )
        if self.feed.data == Feed.CELLS:
            if copies != 1:
                raise VerifyException(
                    "'cim_meta.program' with feed cells switches one copy in place"
                )
            if self.in_bytes.value.data or self.feed_arrays is not None:
                raise VerifyException(
                    "'cim_meta.program' with feed cells streams nothing: no "
                    "in_bytes, no feed_arrays"
                )
            if self.source.data != ProgramSource.WEIGHT:
                raise VerifyException(
                    "'cim_meta.program' stages only weights in place (feed cells)"
                )
            return
        _verify_stream_end(
            self,
            self.feed.data,
            self.feed_arrays,
            ("feed", "feed_arrays"),
        )
        _verify_disjoint(self, "feed_arrays", self.feed_arrays, self.arrays)


@irdl_op_definition
class MVMOp(_ArrayWorkOp):
    """Matrix-vector products on a group of arrays holding one weight slice.

    Input vectors ``v`` (rows of tensor ``input``) times the ``k`` x ``n``
    slice give (partial) outputs in tensor ``output``; each array processes
    ``vectors`` vectors.

    ``feed`` says where the input comes from: ``local`` (default: already in
    the local buffers of the arrays' cores), or ``in_bytes`` streamed while
    it computes from the global ``buffer`` over the interconnect, from the
    memory-mode ``feed_arrays`` (by the memory-to-compute path when they sit
    in the arrays' cores on a target that has it, else over the
    interconnect) or from ``dram`` through the global buffer.
    ``out_bytes`` stream out as it computes to ``out_to``: the global
    ``buffer`` (default), ``dram`` or the memory-mode ``out_arrays`` (0
    bytes: the outputs stay in the cores, a move gathers them);
    ``local_bytes`` is what the busiest core reads from its local buffer
    into its arrays (the sliding-window expansion happens there);
    ``rows_per_pass`` the word lines driven per ADC pass when the compiler
    chose fewer than the target's ``active_rows``; ``zero_planes`` the share
    of input bit-planes skipped as zero and ``zero_groups`` the share idle on
    a zero detector's rows, where the compiler enabled zero skipping
    (``cim-input-sparsity``); ``in_link_bytes`` what its input puts on its
    cores' links in all, where a multicast mesh sends bytes several cores
    take once through the buffer's port (``in_bytes``).

    ```mlir
    %t = cim_meta.mvm "fc.weight" arrays <0:4> vectors 128 rows 320 cols 320
         k [0, 768] n [0, 80] v [0, 128] input "x" output "y" segment 0
         after(%p, %l)
    %u = cim_meta.mvm "fc.weight" arrays <0:4> vectors 128 rows 320 cols 320
         k [0, 768] n [0, 80] v [0, 128] input "x" output "y" feed memory
         feed_arrays <4:6> in_bytes 98304 local_bytes 40960 segment 0
    %w = cim_meta.mvm "fc.weight" arrays <0:4> vectors 128 rows 320 cols 320
         k [0, 768] n [0, 80] v [0, 128] input "x" output "y" feed dram
         in_bytes 98304 out_to memory out_arrays <8:10> out_bytes 10240
         segment 0
    %r = cim_meta.mvm "fc.weight" arrays <0:4> vectors 128 rows 320 cols 320
         k [0, 768] n [0, 80] v [0, 128] input "x" output "y" rows_per_pass 64
         zero_planes 1.250000e-01 zero_groups 4.375000e-01 segment 0
    %s = cim_meta.mvm "fc.weight" arrays <0:128> vectors 128 rows 320 cols 320
         k [0, 768] n [0, 80] v [0, 128] input "x" output "y" feed buffer
         in_bytes 98304 in_link_bytes 196608 segment 0
    ```
    """

    name = "cim_meta.mvm"

    vectors = prop_def(IntegerAttr.constr(i64))
    v = prop_def(I64Array)
    input = prop_def(StringAttr)
    output = prop_def(StringAttr)
    feed = prop_def(FeedAttr, default_value=FeedAttr(Feed.LOCAL))
    feed_arrays = opt_prop_def(ArrayRangesAttr)
    in_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    out_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    local_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    out_to = prop_def(LocationAttr, default_value=LocationAttr(Location.BUFFER))
    out_arrays = opt_prop_def(ArrayRangesAttr)
    rows_per_pass = opt_prop_def(IntegerAttr.constr(i64))
    zero_planes = opt_prop_def(FloatAttr.constr(type=EqAttrConstraint(f64)))
    zero_groups = opt_prop_def(FloatAttr.constr(type=EqAttrConstraint(f64)))
    in_link_bytes = opt_prop_def(IntegerAttr.constr(i64))

    assembly_format = (
        "$weight `arrays` $arrays `vectors` $vectors `rows` $rows `cols` $cols "
        "`k` $k `n` $n `v` $v `input` $input `output` $output "
        "(`feed` $feed^)? (`feed_arrays` $feed_arrays^)? "
        "(`in_bytes` $in_bytes^)? (`in_link_bytes` $in_link_bytes^)? "
        "(`out_to` $out_to^)? "
        "(`out_arrays` $out_arrays^)? (`out_bytes` $out_bytes^)? "
        "(`local_bytes` $local_bytes^)? (`rows_per_pass` $rows_per_pass^)? "
        "(`zero_planes` $zero_planes^)? (`zero_groups` $zero_groups^)? " + _DEPS_FORMAT
    )

    def __init__(
        self,
        weight: str,
        arrays: ArrayRangesAttr,
        vectors: int,
        rows: int,
        cols: int,
        k: tuple[int, int],
        n: tuple[int, int],
        v: tuple[int, int],
        input: str,
        output: str,
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        *,
        feed: Feed = Feed.LOCAL,
        in_bytes: int = 0,
        out_bytes: int = 0,
        local_bytes: int = 0,
        feed_arrays: ArrayRangesAttr | None = None,
        out_to: Location = Location.BUFFER,
        out_arrays: ArrayRangesAttr | None = None,
        allocs: Sequence[AllocAttr] = (),
        rows_per_pass: int = 0,
        zero_shares: ZeroShares | None = None,
        in_link_bytes: int | None = None,
    ):
        properties = _common_properties(segment, label, allocs) | {
            "weight": _string(weight),
            "arrays": arrays,
            "vectors": i64_attr(vectors),
            "rows": i64_attr(rows),
            "cols": i64_attr(cols),
            "k": i64_array(k),
            "n": i64_array(n),
            "v": i64_array(v),
            "input": _string(input),
            "output": _string(output),
            "feed": _feed(feed),
            "in_bytes": i64_attr(in_bytes),
            "out_bytes": i64_attr(out_bytes),
            "local_bytes": i64_attr(local_bytes),
            "out_to": _location(out_to),
        }
        if feed_arrays is not None:
            properties["feed_arrays"] = feed_arrays
        if out_arrays is not None:
            properties["out_arrays"] = out_arrays
        if rows_per_pass:
            properties["rows_per_pass"] = i64_attr(rows_per_pass)
        if zero_shares is not None:
            properties["zero_planes"] = FloatAttr(zero_shares.planes, f64)
            properties["zero_groups"] = FloatAttr(zero_shares.groups, f64)
        if in_link_bytes is not None:
            properties["in_link_bytes"] = i64_attr(in_link_bytes)
        self._init_meta(deps, properties)

    @property
    def chosen_rows_per_pass(self) -> int:
        """The rows per ADC pass the compiler chose (0: the target's)."""
        return 0 if self.rows_per_pass is None else self.rows_per_pass.value.data

    @property
    def zero_shares(self) -> ZeroShares | None:
        """Its zero-skipping shares, as the cost model takes them (None:
        skipping off)."""
        return shares_from_attrs(self.zero_planes, self.zero_groups, self.name)

    def verify_(self) -> None:
        self.verify_array_work()
        if self.rows_per_pass is not None and self.rows_per_pass.value.data < 1:
            raise VerifyException("'cim_meta.mvm' rows_per_pass must be positive")
        shares_from_attrs(self.zero_planes, self.zero_groups, self.name)
        start, stop = _verify_span(self, "v", self.v)
        if self.vectors.value.data < 1 or self.vectors.value.data > stop - start:
            raise VerifyException(
                "'cim_meta.mvm' vectors per array must be in [1, size of v]"
            )
        sizes = (self.in_bytes, self.out_bytes, self.local_bytes)
        if min(size.value.data for size in sizes) < 0:
            raise VerifyException(
                "'cim_meta.mvm' in_bytes, out_bytes and local_bytes must not be "
                "negative"
            )
        feed = self.feed.data
        if (feed == Feed.LOCAL) != (self.in_bytes.value.data == 0):
            raise VerifyException(
                "'cim_meta.mvm' streams in_bytes > 0 exactly when its feed is "
                "buffer, memory or dram"
            )
        if feed != Feed.LOCAL:
            _verify_stream_end(
                self,
                feed,
                self.feed_arrays,
                ("feed", "feed_arrays"),
            )
        elif self.feed_arrays is not None:
            raise VerifyException(
                "'cim_meta.mvm' names feed_arrays exactly when its feed is memory"
            )
        _verify_stream_end(
            self,
            self.out_to.data,
            self.out_arrays,
            ("out_to", "out_arrays"),
        )
        _verify_disjoint(self, "feed_arrays", self.feed_arrays, self.arrays)
        _verify_disjoint(self, "out_arrays", self.out_arrays, self.arrays)
        _verify_link_bytes(self, self.in_link_bytes, self.in_bytes, "in_bytes")


@irdl_op_definition
class VectorOp(_MetaOp):
    """Work on the digital vector units: ``element_ops`` lane operations.

    ``kind`` says what it computes (a ``cim_graph`` operator such as
    ``softmax``, an elementwise function such as ``gelu``, or ``accumulate``
    for partial sums), ``attrs`` the operator's parameters. With ``block [axis,
    start, stop]`` it produces only that range of its outputs along ``axis``
    (one step of a pipelined segment). It runs on the vector units of
    ``cores`` (without ``cores``: every core), streaming ``in_bytes`` from
    ``in_from`` and ``out_bytes`` to ``out_to`` over the interconnect while
    it runs: the global ``buffer`` (default), ``dram`` through the global
    buffer, or the memory-mode ``in_arrays`` / ``out_arrays`` (0 bytes: its
    data is staged by moves or already local). An ``accumulate`` that
    finishes its outputs, or an element-wise ``add``, ``sub`` or ``mul``,
    may apply an activation to its results as they leave: ``attrs {then =
    "relu"}`` (``clip`` with ``then_min`` and ``then_max``), its work
    included in ``element_ops``. An ``accumulate`` may also add a residual,
    its last input, before the activation: ``attrs {residual = "nchw"}``
    (a feature map whose ``(b, h, w)`` is the output's vector and ``c`` its
    column) or ``"rows"`` (the outputs' own row-major order), streamed in
    with the rest of ``in_bytes``. An ``accumulate`` over output columns
    (``block [1, n0, n1]``) may add only some of their vectors: ``attrs
    {vectors = array<i64: v0, v1>}`` (a part of a streamed chunk's vectors,
    whose partial sums fit the global buffer).

    ```mlir
    %t = cim_meta.vector "softmax" element_ops 98304 inputs ["s"]
         outputs ["p"] attrs {axis = 3 : i64} segment 0 after(%m)
    %u = cim_meta.vector "relu" element_ops 4096 inputs ["y"] outputs ["z"]
         attrs {} cores <0:2> in_bytes 4096 out_bytes 4096 segment 0
    %w = cim_meta.vector "accumulate" element_ops 4096 inputs ["y"]
         outputs ["y"] attrs {} cores <0:2> in_from dram in_bytes 8192
         out_to memory out_arrays <8:10> out_bytes 4096 segment 0
    %x = cim_meta.vector "accumulate" element_ops 8192 inputs ["y", "b"]
         outputs ["y"] attrs {then = "relu"} cores <0:2> in_bytes 16
         segment 0
    %r = cim_meta.vector "accumulate" element_ops 8192 inputs ["y", "b", "s"]
         outputs ["y"] attrs {residual = "nchw", then = "relu"} cores <0:2>
         in_bytes 4112 segment 0
    %p = cim_meta.vector "accumulate" element_ops 1280 inputs ["y", "b"]
         outputs ["y"] attrs {vectors = array<i64: 0, 32>} block [1, 0, 40]
         cores <0:2> in_bytes 10280 segment 0
    ```
    """

    name = "cim_meta.vector"

    kind = prop_def(StringAttr)
    element_ops = prop_def(IntegerAttr.constr(i64))
    inputs = prop_def(ArrayAttr[StringAttr])
    outputs = prop_def(ArrayAttr[StringAttr])
    params = prop_def(DictionaryAttr, prop_name="attrs")
    block = opt_prop_def(I64Array)
    cores = opt_prop_def(CoreRangesAttr)
    in_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    out_bytes = prop_def(IntegerAttr.constr(i64), default_value=i64_attr(0))
    in_from = prop_def(LocationAttr, default_value=LocationAttr(Location.BUFFER))
    out_to = prop_def(LocationAttr, default_value=LocationAttr(Location.BUFFER))
    in_arrays = opt_prop_def(ArrayRangesAttr)
    out_arrays = opt_prop_def(ArrayRangesAttr)

    assembly_format = (
        "$kind `element_ops` $element_ops `inputs` $inputs "
        "`outputs` $outputs `attrs` $attrs (`block` $block^)? "
        "(`cores` $cores^)? (`in_from` $in_from^)? (`in_arrays` $in_arrays^)? "
        "(`in_bytes` $in_bytes^)? (`out_to` $out_to^)? "
        "(`out_arrays` $out_arrays^)? (`out_bytes` $out_bytes^)? " + _DEPS_FORMAT
    )

    def __init__(
        self,
        kind: str,
        element_ops: int,
        inputs: Sequence[str],
        outputs: Sequence[str],
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        params: Mapping[str, Attribute] | None = None,
        block: tuple[int, int, int] | None = None,
        *,
        cores: CoreRangesAttr | None = None,
        in_bytes: int = 0,
        out_bytes: int = 0,
        in_from: Location = Location.BUFFER,
        out_to: Location = Location.BUFFER,
        in_arrays: ArrayRangesAttr | None = None,
        out_arrays: ArrayRangesAttr | None = None,
        allocs: Sequence[AllocAttr] = (),
    ):
        properties = _common_properties(segment, label, allocs) | {
            "kind": _string(kind),
            "element_ops": i64_attr(element_ops),
            "inputs": ArrayAttr([_string(i) for i in inputs]),
            "outputs": ArrayAttr([_string(o) for o in outputs]),
            "attrs": DictionaryAttr(dict(params or {})),
            "in_bytes": i64_attr(in_bytes),
            "out_bytes": i64_attr(out_bytes),
            "in_from": _location(in_from),
            "out_to": _location(out_to),
        }
        if block is not None:
            properties["block"] = i64_array(block)
        if cores is not None:
            properties["cores"] = cores
        if in_arrays is not None:
            properties["in_arrays"] = in_arrays
        if out_arrays is not None:
            properties["out_arrays"] = out_arrays
        self._init_meta(deps, properties)

    @property
    def vectors(self) -> tuple[int, int] | None:
        """The vectors ``[v0, v1)`` an ``accumulate`` over output columns adds
        (``attrs {vectors}``; None: all of them)."""
        vectors = self.params.data.get("vectors")
        if not isinstance(vectors, DenseArrayBase):
            return None
        values = ints(cast(DenseArrayBase[IntegerType], vectors))
        return (values[0], values[1]) if len(values) == 2 else None

    def _verify_vectors(self) -> None:
        if "vectors" not in self.params.data:
            return
        span = self.vectors
        block = None if self.block is None else ints(self.block)
        if (
            span is None
            or self.kind.data != "accumulate"
            or block is None
            or block[0] != 1
            or not 0 <= span[0] < span[1]
        ):
            raise VerifyException(
                "'cim_meta.vector' vectors is [v0, v1) with v0 < v1, of an "
                "accumulate over output columns (block [1, n0, n1])"
            )

    def verify_(self) -> None:
        self.verify_segment()
        sizes = (self.element_ops, self.in_bytes, self.out_bytes)
        if min(size.value.data for size in sizes) < 0:
            raise VerifyException(
                "'cim_meta.vector' element_ops, in_bytes and out_bytes must not be "
                "negative"
            )
        if not self.outputs.data:
            raise VerifyException("'cim_meta.vector' produces at least one tensor")
        residual = self.params.data.get("residual")
        if residual is not None and (
            self.kind.data != "accumulate"
            or not isinstance(residual, StringAttr)
            or residual.data not in RESIDUAL_LAYOUTS
            or len(self.inputs.data) < 2
        ):
            raise VerifyException(
                "'cim_meta.vector' residual is an accumulate's last input, laid "
                f"out as one of {', '.join(RESIDUAL_LAYOUTS)}"
            )
        self._verify_vectors()
        then = self.params.data.get("then")
        if then is not None:
            if self.kind.data not in EPILOGUE_HOSTS:
                raise VerifyException(
                    f"'cim_meta.vector' {self.kind.data} cannot apply an activation "
                    f"(then): only {', '.join(EPILOGUE_HOSTS)} can"
                )
            if (
                not isinstance(then, StringAttr)
                or then.data not in EPILOGUE_ACTIVATIONS
            ):
                raise VerifyException(
                    f"'cim_meta.vector' then must name one of "
                    f"{', '.join(EPILOGUE_ACTIVATIONS)}"
                )
        _verify_block(self, self.block)
        _verify_stream_end(
            self,
            self.in_from.data,
            self.in_arrays,
            ("in_from", "in_arrays"),
        )
        _verify_stream_end(
            self,
            self.out_to.data,
            self.out_arrays,
            ("out_to", "out_arrays"),
        )


@irdl_op_definition
class SwitchOp(_MetaOp):
    """Switch arrays to compute or memory mode.

    ```mlir
    %t = cim_meta.switch arrays <88:96> to <memory> segment 1 after(%b)
    ```
    """

    name = "cim_meta.switch"

    arrays = prop_def(ArrayRangesAttr)
    to = prop_def(ArrayModeAttr)

    assembly_format = "`arrays` $arrays `to` $to " + _DEPS_FORMAT

    def __init__(
        self,
        arrays: ArrayRangesAttr,
        to: ArrayMode,
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        *,
        allocs: Sequence[AllocAttr] = (),
    ):
        self._init_meta(
            deps,
            _common_properties(segment, label, allocs)
            | {"arrays": arrays, "to": ArrayModeAttr(to)},
        )


@irdl_op_definition
class SegmentOp(_MetaOp):
    """Boundary before segment ``segment``: everything it waits for is done.

    ```mlir
    %t = cim_meta.segment 1 after(%a, %b)
    ```
    """

    name = "cim_meta.segment"

    assembly_format = f"$segment {_TAIL_FORMAT} attr-dict"

    def __init__(
        self,
        segment: int,
        deps: Sequence[SSAValue],
        label: str | None = None,
        *,
        allocs: Sequence[AllocAttr] = (),
    ):
        self._init_meta(
            deps,
            _common_properties(segment, label, allocs),
        )


@irdl_op_definition
class FreeOp(_MetaOp):
    """Release allocations: each entry of ``frees`` names a tensor and where
    it was allocated, and every live allocation of it there ends when this
    op runs (zero time, no resources). It comes after every op that reads
    what it frees.

    ```mlir
    %t = cim_meta.free [#cim_meta.place<"x" buffer>,
         #cim_meta.place<"x" local cores <0:2>>] segment 0 after(%m)
    ```
    """

    name = "cim_meta.free"

    frees = prop_def(ArrayAttr[PlaceAttr])

    assembly_format = "$frees " + _DEPS_FORMAT

    def __init__(
        self,
        frees: Sequence[PlaceAttr],
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
    ):
        self._init_meta(
            deps,
            _common_properties(segment, label) | {"frees": ArrayAttr(frees)},
        )

    def verify_(self) -> None:
        self.verify_segment()
        if not self.frees.data:
            raise VerifyException("'cim_meta.free' releases at least one allocation")
        if self.allocs is not None:
            raise VerifyException("'cim_meta.free' allocates nothing")


@irdl_op_definition
class ParallelOp(_MetaOp):
    """A group of meta-ops that may run at the same time.

    Ops in the body start after the group's own ``after`` tokens (and their
    own); the group's token completes when every op in the body has.

    ```mlir
    %t = cim_meta.parallel segment 0 after(%p) {
      %a = cim_meta.mvm "w" arrays <0:4> ... segment 0
      %b = cim_meta.mvm "w" arrays <4:8> ... segment 0
    }
    ```
    """

    name = "cim_meta.parallel"

    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    assembly_format = f"`segment` $segment {_TAIL_FORMAT} attr-dict-with-keyword $body"

    def __init__(
        self,
        body: Region,
        deps: Sequence[SSAValue],
        segment: int,
        label: str | None = None,
        *,
        allocs: Sequence[AllocAttr] = (),
    ):
        self._init_meta(deps, _common_properties(segment, label, allocs), [body])

    def verify_(self) -> None:
        self.verify_segment()
        for op in self.body.block.ops:
            if not isinstance(op, _MetaOp):
                raise VerifyException(
                    f"'cim_meta.parallel' may only hold meta-ops, got '{op.name}'"
                )


@irdl_op_definition
class TensorDeclOp(IRDLOperation):
    """Declares an activation tensor the schedule refers to by name.

    A model input declared with ``arrays`` starts the run in those
    memory-mode arrays (a decoder's KV cache kept on chip) instead of DRAM;
    the arrays start in memory mode.

    ```mlir
    cim_meta.tensor "conv1.out" : tensor<1x64x112x112xf32> bytes 802816
    cim_meta.tensor "past.0.key" : tensor<1x2x8x16xf32> bytes 256 arrays <0:1>
    ```
    """

    name = "cim_meta.tensor"

    tensor = prop_def(StringAttr)
    tensor_type = prop_def(TensorType, prop_name="type")
    size = prop_def(IntegerAttr.constr(i64), prop_name="bytes")
    arrays = opt_prop_def(ArrayRangesAttr)

    assembly_format = "$tensor `:` $type `bytes` $bytes (`arrays` $arrays^)? attr-dict"

    def __init__(
        self,
        tensor: str,
        tensor_type: TensorType,
        size: int,
        arrays: ArrayRangesAttr | None = None,
    ):
        properties: dict[str, Attribute] = {
            "tensor": StringAttr(tensor),
            "type": tensor_type,
            "bytes": i64_attr(size),
        }
        if arrays is not None:
            properties["arrays"] = arrays
        super().__init__(properties=properties)

    def verify_(self) -> None:
        if not self.tensor.data or self.size.value.data < 0:
            raise VerifyException(
                "'cim_meta.tensor' needs a non-empty name and a non-negative byte size"
            )


@irdl_op_definition
class ConstantDeclOp(IRDLOperation):
    """A small constant the schedule refers to by name, with its value.

    ```mlir
    cim_meta.constant "scale" = dense<0.125> : tensor<f32>
    ```
    """

    name = "cim_meta.constant"

    tensor = prop_def(StringAttr)
    value = prop_def(DenseIntOrFPElementsAttr)

    assembly_format = "$tensor `=` $value attr-dict"

    def __init__(self, tensor: str, value: DenseIntOrFPElementsAttr[Any]):
        super().__init__(properties={"tensor": StringAttr(tensor), "value": value})

    def verify_(self) -> None:
        if not self.tensor.data:
            raise VerifyException("'cim_meta.constant' needs a name")
        value_type = self.value.get_type()
        if not isinstance(value_type, TensorType):
            raise VerifyException("'cim_meta.constant' holds a tensor value")
        if num_elements(value_type.get_shape()) > MAX_INLINE_ELEMENTS:
            raise VerifyException(
                f"'cim_meta.constant' holds more than {MAX_INLINE_ELEMENTS} elements"
            )


@irdl_op_definition
class WeightDeclOp(IRDLOperation):
    """How a weight held in arrays maps to its ``[groups*K, groups*N]`` matrix.

    The stored tensor (in the model file) reshapes to ``groups`` blocks of
    ``K x N`` through ``layout``: ``kn`` as is, ``nk`` transposed, ``oihw``
    a convolution kernel ``[groups*N, K]`` per group of output channels. A
    weight may share its name with a ``cim_meta.tensor`` declared before
    it: the matrix view of that activation tensor, which a ``program`` with
    ``source tensor`` writes into arrays.

    ``rows`` (``cim-sparse-rows``): the arrays hold ``rows`` of the ``K``
    rows per group, those some column of the array needs
    (:func:`~cimflow.analysis.sparse_tiling.compacted_rows`), and every
    ``k`` range of a program or MVM of the weight counts held rows. With
    ``intra_block`` ``M`` the held rows are an IntraBlock mapping instead:
    each cell holds its column's own weight row of a group of ``M``, whose
    input it picks by an ``M``:1 multiplexer
    (:func:`~cimflow.analysis.sparse_tiling.intra_block_rows`); ``driven``
    is then the rows whose inputs the widest column tile's arrays drive,
    when a nested FullBlock pattern leaves tiles without some row groups
    (absent: all ``k``). ``index_block`` (with ``rows``, no
    ``intra_block``): the held rows come in whole blocks of that many rows
    from multiples of it, and their indices name blocks
    (:func:`~cimflow.analysis.sparse_tiling.row_index_block`; absent: rows).
    ``columns`` (no ``rows``): each row tile's arrays hold ``columns`` of
    the ``N`` columns per group, those nonzero in some of its rows, and each
    column tile owns a contiguous range of outputs
    (:func:`~cimflow.analysis.sparse_tiling.held_columns`); every ``n``
    range of a program or MVM of the weight counts held columns.
    ``column_row_tiles`` (with ``rows``, one group): each column tile's
    arrays hold only the first ``min(rows, m * array
    rows)`` of its held rows, ``m`` its entry (``#cim_tile.tiling``'s
    ``column_row_tiles``: ragged column tiles sliced, not padded to the
    longest).

    ```mlir
    cim_meta.weight "fc.weight" layout nk groups 1 k 512 n 10
    cim_meta.weight "conv.weight" layout oihw groups 1 k 576 n 64 rows 288
    cim_meta.weight "conv2.weight" layout oihw groups 1 k 576 n 64 rows 288
        index_block 9
    cim_meta.weight "conv3.weight" layout oihw groups 1 k 576 n 64 columns 32
    cim_meta.weight "fc2.weight" layout nk groups 1 k 512 n 64 rows 256 intra_block 4
    cim_meta.weight "fc3.weight" layout nk groups 1 k 512 n 64 rows 128
        intra_block 4 driven 256
    cim_meta.weight "fc4.weight" layout nk groups 1 k 512 n 64 rows 300
        column_row_tiles [3, 1]
    ```
    """

    name = "cim_meta.weight"

    weight = prop_def(StringAttr)
    layout = prop_def(WeightLayoutAttr)
    groups = prop_def(IntegerAttr.constr(i64))
    k = prop_def(IntegerAttr.constr(i64))
    n = prop_def(IntegerAttr.constr(i64))
    rows = opt_prop_def(IntegerAttr.constr(i64))
    intra_block = opt_prop_def(IntegerAttr.constr(i64))
    driven = opt_prop_def(IntegerAttr.constr(i64))
    index_block = opt_prop_def(IntegerAttr.constr(i64))
    columns = opt_prop_def(IntegerAttr.constr(i64))
    column_row_tiles = opt_prop_def(I64Array)

    assembly_format = (
        "$weight `layout` $layout `groups` $groups `k` $k `n` $n "
        "(`rows` $rows^)? (`intra_block` $intra_block^)? (`driven` $driven^)? "
        "(`index_block` $index_block^)? (`columns` $columns^)? "
        "(`column_row_tiles` $column_row_tiles^)? attr-dict"
    )

    def __init__(
        self,
        weight: str,
        layout: WeightLayout,
        groups: int,
        k: int,
        n: int,
        rows: int = 0,
        intra_block: int = 0,
        driven: int = 0,
        index_block: int = 0,
        columns: int = 0,
        column_row_tiles: Sequence[int] = (),
    ):
        properties: dict[str, Attribute] = {
            "weight": StringAttr(weight),
            "layout": WeightLayoutAttr(layout),
            "groups": i64_attr(groups),
            "k": i64_attr(k),
            "n": i64_attr(n),
        }
        if rows:
            properties["rows"] = i64_attr(rows)
        if intra_block:
            properties["intra_block"] = i64_attr(intra_block)
        if driven:
            properties["driven"] = i64_attr(driven)
        if index_block:
            properties["index_block"] = i64_attr(index_block)
        if columns:
            properties["columns"] = i64_attr(columns)
        if column_row_tiles:
            properties["column_row_tiles"] = i64_array(column_row_tiles)
        super().__init__(properties=properties)

    def verify_(self) -> None:
        if not self.weight.data:
            raise VerifyException("'cim_meta.weight' needs a name")
        if min(a.value.data for a in (self.groups, self.k, self.n)) < 1:
            raise VerifyException("'cim_meta.weight' groups, k and n must be positive")
        if self.rows is not None and not 1 <= self.rows.value.data <= self.k.value.data:
            raise VerifyException("'cim_meta.weight' rows must be in [1, k]")
        if self.intra_block is not None:
            group = self.intra_block.value.data
            if self.rows is None:
                raise VerifyException("'cim_meta.weight' intra_block needs rows")
            if group < 2 or group & (group - 1):
                raise VerifyException(
                    "'cim_meta.weight' intra_block must be a power of two from 2, "
                    f"got {group}"
                )
        if self.driven is not None:
            if self.rows is None or self.intra_block is None:
                raise VerifyException("'cim_meta.weight' driven needs intra_block")
            if not self.rows.value.data <= self.driven.value.data <= self.k.value.data:
                raise VerifyException(
                    "'cim_meta.weight' driven must lie between rows and k"
                )
        if self.index_block is not None:
            if self.rows is None or self.intra_block is not None:
                raise VerifyException(
                    "'cim_meta.weight' index_block needs rows without intra_block"
                )
            if not 2 <= self.index_block.value.data < self.k.value.data:
                raise VerifyException(
                    "'cim_meta.weight' index_block must lie between 2 and k"
                )
        if self.columns is not None:
            if self.rows is not None:
                raise VerifyException(
                    "'cim_meta.weight' holds compacted rows or columns, not both"
                )
            if not 1 <= self.columns.value.data < self.n.value.data:
                raise VerifyException("'cim_meta.weight' columns must be in [1, n)")
        if self.column_row_tiles is not None:
            counts = ints(self.column_row_tiles)
            if self.rows is None or self.groups.value.data != 1:
                raise VerifyException(
                    "'cim_meta.weight' column_row_tiles needs rows and one group"
                )
            if not counts or min(counts) < 1:
                raise VerifyException(
                    "'cim_meta.weight' column_row_tiles must be positive"
                )


@irdl_op_definition
class ScheduleOp(IRDLOperation):
    """A compiled model: tensor declarations and meta-ops in issue order.

    ```mlir
    cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1
        inputs ["x"] outputs ["y"] {
      ...
    }
    ```
    """

    name = "cim_meta.schedule"

    sym_name = prop_def(SymbolNameConstraint())
    target = prop_def(StringAttr)
    strategy = prop_def(StringAttr)
    batch = prop_def(IntegerAttr.constr(i64))
    inputs = prop_def(ArrayAttr[StringAttr])
    outputs = prop_def(ArrayAttr[StringAttr])
    body = region_def("single_block")

    traits = traits_def(NoTerminator(), SymbolOpInterface())

    assembly_format = (
        "$sym_name `target` $target `strategy` $strategy `batch` $batch "
        "`inputs` $inputs `outputs` $outputs attr-dict-with-keyword $body"
    )

    def __init__(
        self,
        sym_name: str,
        target: str,
        strategy: str,
        batch: int,
        inputs: Sequence[str],
        outputs: Sequence[str],
        body: Region,
    ):
        super().__init__(
            regions=[body],
            properties={
                "sym_name": StringAttr(sym_name),
                "target": StringAttr(target),
                "strategy": StringAttr(strategy),
                "batch": i64_attr(batch),
                "inputs": ArrayAttr([StringAttr(n) for n in inputs]),
                "outputs": ArrayAttr([StringAttr(n) for n in outputs]),
            },
        )

    def verify_(self) -> None:
        if self.batch.value.data < 1:
            raise VerifyException("'cim_meta.schedule' batch must be positive")
        declared: set[str] = set()
        tensors: set[str] = set()
        for op in self.body.block.ops:
            if isinstance(op, TensorDeclOp | ConstantDeclOp | WeightDeclOp):
                name = op.weight if isinstance(op, WeightDeclOp) else op.tensor
                matrix_view = isinstance(op, WeightDeclOp) and name.data in tensors
                if name.data in declared and not matrix_view:
                    raise VerifyException(
                        f"'cim_meta.schedule' declares '{name.data}' twice (tensors, "
                        "constants and weights share one namespace, except the "
                        "weight view of a tensor declared before it)"
                    )
                declared.add(name.data)
                if isinstance(op, TensorDeclOp):
                    tensors.add(name.data)
            elif not isinstance(op, _MetaOp):
                raise VerifyException(
                    f"'cim_meta.schedule' may only hold meta-ops, got '{op.name}'"
                )
        for name in [*self.inputs, *self.outputs]:
            if name.data not in declared:
                raise VerifyException(
                    f"'cim_meta.schedule' input/output '{name.data}' is not declared"
                )
        self.verify_resident_inputs()

    def verify_resident_inputs(self) -> None:
        """Only model inputs start in memory-mode arrays, each in its own."""
        inputs = {name.data for name in self.inputs}
        taken: dict[int, str] = {}
        for op in self.body.block.ops:
            if not isinstance(op, TensorDeclOp) or op.arrays is None:
                continue
            name = op.tensor.data
            if name not in inputs:
                raise VerifyException(
                    f"'cim_meta.schedule' tensor '{name}' starts in memory-mode "
                    "arrays but is not a schedule input"
                )
            for start, stop in op.arrays.ranges:
                for array in range(start, stop):
                    other = taken.setdefault(array, name)
                    if other != name:
                        raise VerifyException(
                            f"'cim_meta.schedule' inputs '{other}' and '{name}' "
                            f"both start in array {array}"
                        )


CIMMeta = Dialect(
    "cim_meta",
    [
        ScheduleOp,
        TensorDeclOp,
        ConstantDeclOp,
        WeightDeclOp,
        LoadOp,
        StoreOp,
        MoveOp,
        ProgramOp,
        MVMOp,
        VectorOp,
        SwitchOp,
        SegmentOp,
        ParallelOp,
        FreeOp,
    ],
    [
        TokenType,
        LocationAttr,
        MoveDirectionAttr,
        FeedAttr,
        ProgramSourceAttr,
        ArrayRangesAttr,
        CoreRangesAttr,
        AllocAttr,
        PlaceAttr,
    ],
)
