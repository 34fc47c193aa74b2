"""convert-tile-to-meta: turn an allocated cim_tile function into a schedule.

The allocation attributes (segment, copies, chunks, dataflow, memory
buffers) are the decisions; this pass only carries them out, so every
strategy shares it. :mod:`cimflow.lowering.builder` says what is emitted
for each operator on the machine of ``docs/machine-model.md``, by the rules
of :mod:`cimflow.lowering.rules` (which every cost model calls too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, Region, SSAValue
from xdsl.passes import ModulePass

from cimflow.analysis.allocation import pipeline_plans, segment_of
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import NODE_ATTR, tensor_shape
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.collector import paused_collector
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.ir_checks import tensor_function
from cimflow.lowering.builder import (
    ScheduleBuilder,
    arrays_to_hold,
    io_names,
    vector_work,
)
from cimflow.lowering.placement import Location, TensorState
from cimflow.lowering.rules import NO_ROW_INDICES, row_indices_of
from cimflow.passes.static_allocate import STRATEGY_ATTR
from cimflow.target_record import module_target, module_target_spec

__all__ = ["ConvertTileToMetaPass", "arrays_to_hold", "vector_work"]


def _kv_cache_buffer(ops: Iterable[Operation]) -> cim_tile.MemoryBufferOp | None:
    """The function's one ``kv_cache`` memory buffer, if it declares one."""
    buffers = [
        op
        for op in ops
        if isinstance(op, cim_tile.MemoryBufferOp)
        and op.role.data == cim_tile.BufferRole.KV_CACHE
    ]
    if len(buffers) > 1:
        raise CimError(
            f"the function declares {len(buffers)} kv_cache memory buffers; one "
            "holds the whole KV cache"
        )
    if not buffers:
        return None
    segment = buffers[0].segment.value.data
    if segment != 0:
        raise CimError(
            f"kv_cache memory buffer has segment {segment}; it holds the KV cache "
            "for the whole run and is declared with segment 0"
        )
    return buffers[0]


def _arguments_by_name(
    args: Sequence[SSAValue], names: Sequence[str]
) -> dict[str, SSAValue]:
    """Function arguments by name hint and by trace input name (which wins)."""
    by_name = {arg.name_hint: arg for arg in args if arg.name_hint}
    by_name.update(zip(names, args, strict=True))
    return by_name


def _segment_of(op: Operation) -> int | None:
    if isinstance(op, cim_tile.MVMOp) and op.alloc is None:
        raise CimError(
            f"cim_tile.mvm of weight '{op.weight.data}' has no allocation; run an "
            "allocation pass (e.g. cim-static-allocate) before convert-tile-to-meta"
        )
    return segment_of(op)


@dataclass(frozen=True)
class ConvertTileToMetaPass(ModulePass):
    """Lower an allocated cim_tile function to a cim_meta schedule."""

    name = "convert-tile-to-meta"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    @paused_collector()
    def apply(self, ctx: Context, op: ModuleOp) -> None:
        function = tensor_function(op, self.name)
        hw = module_target(op, self.target, self.name)
        unringed: set[str] = set()
        holding: set[int] = set()
        while True:
            builder, outputs = _lower(
                function, hw, frozenset(unringed), frozenset(holding)
            )
            looped = builder.close_rings()
            if not looped:
                break
            # a ring whose slots would wait for reads that wait for them
            # (through an allocation): its segment holds released bytes
            # back, and if it already did, the ring is given up
            for name in sorted(looped):
                segment = builder.rings[name].segment
                if segment in holding:
                    unringed.add(name)
                holding.add(segment)
        for decl in reversed(builder.decls):
            if builder.block.first_op is not None:
                builder.block.insert_op_before(decl, builder.block.first_op)
            else:
                builder.block.add_op(decl)
        strategy = op.attributes.get(STRATEGY_ATTR)
        schedule = cim_meta.ScheduleOp(
            function.sym_name.data,
            module_target_spec(op, self.target),
            strategy.data if isinstance(strategy, StringAttr) else "unknown",
            builder.batch,
            [builder.names[a] for a in function.body.block.args],
            outputs,
            Region(builder.block),
        )
        op.body.block.insert_op_before(schedule, function)
        function.detach()
        function.erase()


def _lower(
    function: func.FuncOp,
    hw: HardwareTarget,
    unringed: frozenset[str],
    holding: frozenset[int],
) -> tuple[ScheduleBuilder, list[str]]:
    """The schedule of ``function`` (its ops in ``builder.block``) and its
    outputs' names; no tensor named in ``unringed`` is held in a ring, and
    the ``holding`` segments hold released bytes back while they hold a
    ring (:attr:`~cimflow.lowering.state.BuilderState.holding`)."""
    builder = ScheduleBuilder(hw)
    builder.unringed, builder.holding = unringed, holding
    body = function.body.block
    for inner in body.ops:
        if isinstance(inner, cim_graph.WeightOp):
            builder.used_names.add(inner.weight_name.data)
        elif isinstance(inner, cim_tile.MVMOp):
            builder.used_names.add(inner.weight.data)
            if inner.bias is not None:
                builder.used_names.add(inner.bias.data)
            indices = row_indices_of(inner)
            if indices != NO_ROW_INDICES:
                builder.row_indices[inner.weight.data] = indices
    terminator = body.last_op
    if isinstance(terminator, func.ReturnOp) and function.res_attrs is not None:
        recorded_outputs = io_names(
            function, function.res_attrs, len(terminator.operands), "output"
        )
        for value, name in zip(terminator.operands, recorded_outputs, strict=True):
            if value not in body.args:
                builder.output_names.setdefault(value, name)
    returned_values = (
        list(terminator.operands) if isinstance(terminator, func.ReturnOp) else []
    )
    end = len(list(body.ops))
    builder.end = end
    for position, inner in enumerate(body.ops):
        if isinstance(inner, func.ReturnOp):
            continue
        for operand in inner.operands:
            builder.last_use[operand] = position
    labels = io_names(function, function.res_attrs, len(returned_values), "output")
    for value, label in zip(returned_values, labels, strict=True):
        if value not in builder.output_readers:
            reader = builder.last_use.get(value, -1)
            builder.output_readers[value] = (reader, label)
        builder.last_use[value] = end
    inputs = io_names(function, function.arg_attrs, len(body.args), "input")
    for arg, name in zip(body.args, inputs, strict=True):
        builder.declare(arg, name)
        state = TensorState(name, builder.tensor_bytes(arg), Location.DRAM)
        state.ready = [(None, None)]
        builder.tensors[name] = state
    if body.args and tensor_shape(body.args[0]):
        builder.batch = max(1, tensor_shape(body.args[0])[0])
    kv_cache = _kv_cache_buffer(body.ops)
    if kv_cache is not None:
        builder.hold_kv_cache(kv_cache, _arguments_by_name(list(body.args), inputs))
    for inner in body.ops:
        if isinstance(inner, cim_tile.DataflowOp):
            builder.dataflows[inner.segment.value.data] = (
                inner.kind.data,
                inner.blocks.value.data,
            )
    builder.body = list(body.ops)
    if any(
        kind != Dataflow.LAYER and blocks > 1
        for kind, blocks in builder.dataflows.values()
    ):
        builder.plans = pipeline_plans(
            function,
            lambda segment: builder.dataflows.get(segment, (Dataflow.LAYER, 1))[0],
            builder.batch,
        )
    mvms_by_segment: dict[int, list[cim_tile.MVMOp]] = {}
    buffers_by_segment: dict[int, list[cim_tile.MemoryBufferOp]] = {}
    for inner in body.ops:
        if isinstance(inner, cim_tile.MVMOp):
            segment = _segment_of(inner)
            assert segment is not None
            mvms_by_segment.setdefault(segment, []).append(inner)
        elif (
            isinstance(inner, cim_tile.MemoryBufferOp)
            and inner.role.data != cim_tile.BufferRole.KV_CACHE
        ):
            buffers_by_segment.setdefault(inner.segment.value.data, []).append(inner)
    order = sorted(mvms_by_segment)

    def enter(segment: int) -> None:
        later = [s for s in order if s > segment]
        builder.enter_segment(
            segment,
            mvms_by_segment.get(segment, []),
            buffers_by_segment.get(segment, []),
            mvms_by_segment.get(later[0], []) if later else [],
        )

    enter(0)
    returned: list[SSAValue] = []
    for position, inner in enumerate(body.ops):
        builder.position = position
        segment = _segment_of(inner)
        builder.node = None
        if segment is not None and segment != builder.segment:
            enter(segment)
        node = inner.attributes.get(NODE_ATTR)
        builder.node = node if isinstance(node, StringAttr) else None
        if isinstance(inner, cim_tile.MVMOp):
            builder.lower_mvm(inner)
        elif isinstance(inner, cim_tile.Im2ColOp | cim_tile.Col2ImOp):
            builder.lower_layout(inner)
        elif isinstance(inner, cim_tile.VectorOp):
            builder.lower_vector(inner)
        elif isinstance(inner, func.ReturnOp):
            returned = list(inner.operands)
        elif not isinstance(
            inner,
            cim_graph.WeightOp
            | cim_graph.ConstantOp
            | cim_tile.MemoryBufferOp
            | cim_tile.DataflowOp,
        ):
            raise CimError(f"convert-tile-to-meta cannot lower '{inner.name}'")
        builder.release_finished()
    builder.node = None
    builder.flush_prefetch()
    recorded = io_names(function, function.res_attrs, len(returned), "output")
    outputs = builder.store_outputs(returned, recorded)
    builder.position = end
    builder.release_finished()
    builder.leave_segment()
    return builder, outputs
