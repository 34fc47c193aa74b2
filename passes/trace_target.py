"""The ``cim-trace`` output target: a cim_meta schedule as a trace JSON file.

See docs/trace-format.md. Parallel groups are flattened: their ops take the
group's dependencies, and a ``barrier`` op stands for the group's token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from xdsl.context import Context
from xdsl.dialects.builtin import (
    AnyFloat,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.utils.target import Target

from cimflow.cimdialect import cim_graph, cim_meta
from cimflow.cimdialect.cim_graph import NODE_ATTR, ints
from cimflow.cimsim.trace import TRACE_VERSION, dump_trace
from cimflow.collector import paused_collector
from cimflow.errors import CimError
from cimflow.passes.cim_allocate import solver_records
from cimflow.target_record import module_target

JsonDict = dict[str, object]


def _dtype(element: Attribute) -> str:
    if isinstance(element, IntegerType):
        if element.width.data == 1:
            return "bool"
        integer = cast("IntegerType[int, Signedness]", element)
        unsigned = integer.signedness.data == Signedness.UNSIGNED
        return f"{'uint' if unsigned else 'int'}{element.width.data}"
    return str(element).replace("f", "float", 1)


def json_value(attr: Attribute) -> object:
    """An operator parameter as JSON: numbers, strings, lists and booleans."""
    if isinstance(attr, IntegerAttr):
        return cast(IntegerAttr[IntegerType], attr).value.data
    if isinstance(attr, FloatAttr):
        return cast(FloatAttr[AnyFloat], attr).value.data
    if isinstance(attr, DenseArrayBase):
        return list(ints(cast(DenseArrayBase[IntegerType], attr)))
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, UnitAttr):
        return True
    if isinstance(attr, EnumAttribute):
        return cast(EnumAttribute[Any], attr).data.value
    raise CimError(f"cim-trace cannot write the parameter {attr}")


def _block(block: DenseArrayBase[IntegerType] | None) -> list[int] | None:
    return None if block is None else list(ints(block))


def _ranges(
    ranges: cim_meta.ArrayRangesAttr | cim_meta.CoreRangesAttr,
) -> list[list[int]]:
    return [[start, stop] for start, stop in ranges.ranges]


def _place(
    tensor: StringAttr, level: cim_meta.LocationAttr, units: cim_meta.Units
) -> JsonDict:
    """``{tensor, level}`` and the ``cores`` or ``arrays`` of the level."""
    record: JsonDict = {"tensor": tensor.data, "level": level.data.value}
    if isinstance(units, cim_meta.CoreRangesAttr):
        record["cores"] = _ranges(units)
    elif isinstance(units, cim_meta.ArrayRangesAttr):
        record["arrays"] = _ranges(units)
    return record


def _alloc(alloc: cim_meta.AllocAttr) -> JsonDict:
    return _place(alloc.tensor, alloc.level, alloc.units) | {
        "bytes": alloc.size.value.data
    }


def _cores(cores: cim_meta.CoreRangesAttr | None, every: list[list[int]]) -> object:
    """A cores property as trace ranges (absent: every core)."""
    return every if cores is None else _ranges(cores)


def _span(attr: DenseArrayBase[IntegerType]) -> list[int]:
    return list(ints(attr))


def _stream_end(
    level: cim_meta.Location | cim_meta.Feed,
    arrays: cim_meta.ArrayRangesAttr | None,
    keys: tuple[str, str],
) -> JsonDict:
    """The keys of one end of a stream that differ from their defaults: its
    level (default the global buffer) and its memory-mode arrays."""
    record: JsonDict = {}
    if level.value != "buffer":
        record[keys[0]] = level.value
    if arrays is not None:
        record[keys[1]] = _ranges(arrays)
    return record


def _fields(op: Operation, every_core: list[list[int]]) -> JsonDict:
    """The kind-specific keys of one meta-op (``every_core``: the ranges
    of all the target's cores, for ops that name none)."""
    if isinstance(op, cim_meta.LoadOp | cim_meta.StoreOp):
        return {
            "kind": "load" if isinstance(op, cim_meta.LoadOp) else "store",
            "src": op.src.data.value,
            "dst": op.dst.data.value,
            "bytes": op.size.value.data,
            "tensor": op.tensor.data,
            "arrays": _ranges(op.arrays) if op.arrays is not None else [],
            "cores": _ranges(op.cores) if op.cores is not None else [],
        }
    if isinstance(op, cim_meta.MoveOp):
        return {
            "kind": "move",
            "dir": op.direction.data.value,
            "cores": _cores(op.cores, every_core),
            "bytes": op.size.value.data,
            "tensor": op.tensor.data,
            "block": _block(op.block),
        } | ({} if op.link_bytes is None else {"link_bytes": op.link_bytes.value.data})
    if isinstance(op, cim_meta.ProgramOp | cim_meta.MVMOp):
        fields: JsonDict = {
            "kind": "program" if isinstance(op, cim_meta.ProgramOp) else "mvm",
            "arrays": _ranges(op.arrays),
            "rows": op.rows.value.data,
            "cols": op.cols.value.data,
            "weight": op.weight.data,
            "k": _span(op.k),
            "n": _span(op.n),
        }
        if isinstance(op, cim_meta.ProgramOp):
            if op.source.data == cim_meta.ProgramSource.TENSOR:
                fields["source"] = "tensor"
            if op.in_bytes.value.data:
                fields["in_bytes"] = op.in_bytes.value.data
            if op.copies.value.data > 1:
                fields["copies"] = op.copies.value.data
            return fields | _stream_end(
                op.feed.data, op.feed_arrays, ("feed", "feed_arrays")
            )
        fields |= {
            "vectors": op.vectors.value.data,
            "v": _span(op.v),
            "input": op.input.data,
            "output": op.output.data,
            "feed": op.feed.data.value,
            "in_bytes": op.in_bytes.value.data,
            "out_bytes": op.out_bytes.value.data,
            "local_bytes": op.local_bytes.value.data,
        }
        if op.feed_arrays is not None:
            fields["feed_arrays"] = _ranges(op.feed_arrays)
        if op.rows_per_pass is not None:
            fields["rows_per_pass"] = op.rows_per_pass.value.data
        if op.in_link_bytes is not None:
            fields["in_link_bytes"] = op.in_link_bytes.value.data
        if op.zero_planes is not None:
            fields["zero_planes"] = op.zero_planes.value.data
        if op.zero_groups is not None:
            fields["zero_groups"] = op.zero_groups.value.data
        return fields | _stream_end(
            op.out_to.data, op.out_arrays, ("out_to", "out_arrays")
        )
    if isinstance(op, cim_meta.VectorOp):
        fields = {
            "kind": "vector",
            "op": op.kind.data,
            "element_ops": op.element_ops.value.data,
            "cores": _cores(op.cores, every_core),
            "in_bytes": op.in_bytes.value.data,
            "out_bytes": op.out_bytes.value.data,
            "inputs": [i.data for i in op.inputs],
            "outputs": [o.data for o in op.outputs],
            "attrs": {k: json_value(v) for k, v in op.params.data.items()},
            "block": _block(op.block),
        }
        fields |= _stream_end(op.in_from.data, op.in_arrays, ("in_from", "in_arrays"))
        return fields | _stream_end(
            op.out_to.data, op.out_arrays, ("out_to", "out_arrays")
        )
    if isinstance(op, cim_meta.SwitchOp):
        return {"kind": "switch", "arrays": _ranges(op.arrays), "to": op.to.data.value}
    if isinstance(op, cim_meta.FreeOp):
        return {
            "kind": "free",
            "frees": [_place(f.tensor, f.level, f.units) for f in op.frees],
        }
    if isinstance(op, cim_meta.SegmentOp | cim_meta.ParallelOp):
        return {"kind": "barrier"}
    raise CimError(f"cim-trace cannot emit '{op.name}'")


@dataclass
class _TraceWriter:
    ops: list[JsonDict]
    ids: dict[SSAValue, int]
    every_core: list[list[int]]

    def add(self, op: Operation, extra_deps: list[int]) -> int:
        assert isinstance(
            op,
            cim_meta.SegmentOp
            | cim_meta.ParallelOp
            | cim_meta.LoadOp
            | cim_meta.StoreOp
            | cim_meta.MoveOp
            | cim_meta.ProgramOp
            | cim_meta.MVMOp
            | cim_meta.VectorOp
            | cim_meta.SwitchOp
            | cim_meta.FreeOp,
        )
        deps = sorted({self.ids[d] for d in op.operands} | set(extra_deps))
        if isinstance(op, cim_meta.ParallelOp):
            inner_ids = [self.add(inner, deps) for inner in op.body.block.ops]
            deps = sorted(set(inner_ids))
        record: JsonDict = {
            "id": len(self.ops),
            "deps": deps,
            "segment": op.segment.value.data,
            "name": op.label.data if op.label is not None else "",
        }
        node = op.attributes.get(NODE_ATTR)
        if isinstance(node, StringAttr):
            record["layer"] = node.data
        record |= _fields(op, self.every_core)
        if op.allocs is not None:
            record["allocs"] = [_alloc(a) for a in op.allocs]
        self.ops.append(record)
        self.ids[op.results[0]] = record["id"]  # type: ignore[assignment]
        return len(self.ops) - 1


@paused_collector()
def build_trace(module: ModuleOp) -> JsonDict:
    """The trace document of the module's one ``cim_meta.schedule``."""
    schedules = [op for op in module.ops if isinstance(op, cim_meta.ScheduleOp)]
    if len(schedules) != 1:
        raise CimError(
            f"cim-trace needs exactly one cim_meta.schedule, found {len(schedules)}; "
            "run the passes down to convert-tile-to-meta first"
        )
    schedule = schedules[0]
    hw = module_target(module, schedule.target.data, "cim-trace")
    body = list(schedule.body.block.ops)
    decls = {op.tensor.data: op for op in body if isinstance(op, cim_meta.TensorDeclOp)}

    def io(name: str, model_input: bool = False) -> JsonDict:
        decl = decls[name]
        tensor_type = decl.tensor_type
        assert isinstance(tensor_type, TensorType)
        entry: JsonDict = {
            "name": name,
            "shape": list(tensor_type.get_shape()),
            "dtype": _dtype(tensor_type.element_type),
        }
        if model_input and decl.arrays is not None:
            entry["arrays"] = _ranges(decl.arrays)
        return entry

    def constant(decl: cim_meta.ConstantDeclOp) -> JsonDict:
        value_type = cast(TensorType[Attribute], decl.value.get_type())
        element = value_type.element_type
        values = cast(Sequence[float], decl.value.get_values())
        if element == IntegerType(1):
            numbers: list[float] = [1 if v else 0 for v in values]
        else:
            numbers = [v if isinstance(v, int) else float(v) for v in values]
        return {
            "name": decl.tensor.data,
            "shape": list(value_type.get_shape()),
            "dtype": _dtype(element),
            "values": numbers,
        }

    source = module.attributes.get("cim_graph.source")
    writer = _TraceWriter([], {}, [[0, hw.total_cores]])
    for op in body:
        if not isinstance(
            op, cim_meta.TensorDeclOp | cim_meta.ConstantDeclOp | cim_meta.WeightDeclOp
        ):
            writer.add(op, [])
    tensors: list[JsonDict] = []
    for name, decl in decls.items():
        tensor_type = decl.tensor_type
        assert isinstance(tensor_type, TensorType)
        tensors.append(
            {
                "name": name,
                "shape": list(tensor_type.get_shape()),
                "dtype": _dtype(tensor_type.element_type),
                "bytes": decl.size.value.data,
            }
        )
    return {
        "format": "cim-trace",
        "version": TRACE_VERSION,
        "model": {
            "name": schedule.sym_name.data,
            "source": source.path.data
            if isinstance(source, cim_graph.WeightSourceAttr)
            else "",
            "batch": schedule.batch.value.data,
            "dims": source.dim_values
            if isinstance(source, cim_graph.WeightSourceAttr)
            else {},
            "inputs": [io(n.data, model_input=True) for n in schedule.inputs],
            "outputs": [io(n.data) for n in schedule.outputs],
        },
        "strategy": schedule.strategy.data,
        "target": hw.to_dict(),
        "tensors": tensors,
        "constants": [
            constant(op) for op in body if isinstance(op, cim_meta.ConstantDeclOp)
        ],
        "weights": [
            {
                "name": op.weight.data,
                "layout": op.layout.data.value,
                "groups": op.groups.value.data,
                "k": op.k.value.data,
                "n": op.n.value.data,
            }
            | ({} if op.rows is None else {"rows": op.rows.value.data})
            | (
                {}
                if op.intra_block is None
                else {"intra_block": op.intra_block.value.data}
            )
            | ({} if op.driven is None else {"driven": op.driven.value.data})
            | (
                {}
                if op.index_block is None
                else {"index_block": op.index_block.value.data}
            )
            | ({} if op.columns is None else {"columns": op.columns.value.data})
            | (
                {}
                if op.column_row_tiles is None
                else {"column_row_tiles": list(ints(op.column_row_tiles))}
            )
            for op in body
            if isinstance(op, cim_meta.WeightDeclOp)
        ],
        "ops": writer.ops,
        "solver": [
            {"segments": list(r.segments), "status": r.status, "nodes": r.nodes}
            for r in solver_records(module)
        ],
    }


@dataclass(frozen=True)
class CimTraceTarget(Target):
    """``-t cim-trace``: write the schedule as a versioned trace JSON."""

    name = "cim-trace"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(dump_trace(build_trace(module)))
