"""The schedule builder of ``convert-tile-to-meta``.

It walks an allocated ``cim_tile`` function in program order and emits the
``cim_meta`` meta-ops that carry the allocation out on the machine of
``docs/machine-model.md``:

- **Segments.** A segment starts with a barrier; its resident weights are
  placed copy after copy from the first array after the KV cache's, its
  memory buffers right after them; arrays switch modes; each copy is
  programmed by streaming its weight over the interconnect from where the
  weight is (the global buffer when it fits there, memory-mode arrays that
  prefetched it, else DRAM). A weight from DRAM is programmed when the MVM
  before it is lowered (it loads while that layer computes); the segment's
  first two together, at its first MVM. A program waits for the ops that
  last used its arrays (``arrays_free``), not for the segment's barrier:
  the next segment's first weights go into arrays the segment before is
  done with while its last layers still compute.
- **Tensors** live where :mod:`cimflow.lowering.placement` puts them: the
  global buffer (allocated, and freed after the last reader), an
  activations memory buffer, or DRAM; ops stream the other levels through.
  A model output in the global buffer is stored to DRAM, and freed, once
  its last reader is done; the others are stored at the end.
- **MVMs.** Each copy takes its share of the vectors. Its cores receive
  only the input rows their arrays hold, as feature-map rows when a window
  expands the input (:mod:`cimflow.lowering.rules`). When the input is in
  the global buffer and a piece of the share fits the cores' local
  buffers, the piece is staged: moved in, computed from the local buffer,
  its outputs moved out; otherwise the MVM streams its input and outputs
  while it computes. Partial sums of row tiles in different cores, and the
  bias, are added on the copy's cores' vector units.
- **Vector work** runs on every core's vector units and streams its
  operands in and its results out; views (reshapes, ``im2col``,
  ``col2im``) cost nothing and occupy nothing.
- Weights larger than the chip stream in chunks through the free arrays
  (with a ``chunks`` buffer: double-buffered in memory-mode arrays); a
  ``weights`` buffer prefetches the next segment's weights; a ``kv_cache``
  buffer keeps a decoder's past keys and values in arrays ``[0, K)`` for the
  whole run.

The builder is split by concern, each class extending the one before:
:mod:`~cimflow.lowering.state` (what has been emitted, dependences, bands),
:mod:`~cimflow.lowering.naming`, :mod:`~cimflow.lowering.kv_cache`,
:mod:`~cimflow.lowering.buffers` (buffer placement),
:mod:`~cimflow.lowering.weights` (weight streaming),
:mod:`~cimflow.lowering.arrays` (array placement per segment),
:mod:`~cimflow.lowering.mvm`, and here the vector work and the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import IRDLOperation

from cimflow.analysis.blocking import BlockPlan
from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import i64_attr, ints, tensor_shape
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    StreamLevel,
    vector_element_ops,
)
from cimflow.errors import CimError
from cimflow.lowering.mvm import MvmLowering
from cimflow.lowering.placement import (
    VIEW_KINDS,
    Location,
    Produced,
    Ring,
    TensorState,
    ViewRecipe,
    arrays_to_hold,
)
from cimflow.lowering.rules import (
    array_matmul,
    block_elements,
    epilogue_activation,
    epilogue_source,
    gathered_elements,
    vector_core_count,
    vector_work,
    window_of,
    written_outputs,
)
from cimflow.lowering.state import CopyLayout, one_run

STREAM_LEVELS: dict[Location, StreamLevel] = {
    Location.BUFFER: "buffer",
    Location.DRAM: "dram",
    Location.MEMORY: "memory",
}
"""The cost model's name of each level a vector op streams from or to."""


def memory_ranges(
    level: Location, arrays: cim_meta.ArrayRangesAttr | None
) -> tuple[tuple[int, int], ...]:
    """The memory-mode arrays an op streams from or to at ``level``."""
    if level != Location.MEMORY or arrays is None:
        return ()
    return tuple(arrays.ranges)


NAME_ATTR = "cim_graph.name"


def io_names(
    function: func.FuncOp,
    attrs: ArrayAttr[DictionaryAttr] | None,
    count: int,
    prefix: str,
) -> list[str]:
    """ONNX names recorded on a function's arguments or results."""
    names: list[str] = []
    for index in range(count):
        name = f"{prefix}{index}"
        if attrs is not None and index < len(attrs.data):
            recorded = attrs.data[index].data.get(NAME_ATTR)
            if isinstance(recorded, StringAttr):
                name = recorded.data
        names.append(name)
    return names


class ScheduleBuilder(MvmLowering):
    """Lowers one allocated function (see the module docstring): the
    vector work and the outputs here, the rest in the classes it extends."""

    def lower_vector_like(
        self,
        op: Operation,
        kind: str,
        element_ops: int,
        params: dict[str, Attribute],
        inputs: Sequence[SSAValue],
        outputs: Sequence[SSAValue],
        gathered: int | None = None,
        addressed: bool = False,
        operands: Sequence[int] | None = None,
    ) -> None:
        """One vector-unit operator, whole or in the bands of a pipeline, on
        every core's vector units, streaming its operands in and its
        results out (a view costs and occupies nothing; ``addressed``: the
        operator is a view too, because the address generators of the op
        that reads or writes it do its work; ``operands``: which of
        ``op``'s operands ``inputs`` are, when not the first ones)."""
        plan = self.step_plan(op)
        if plan is not None and operands is not None:
            whole, chosen = plan, tuple(operands)
            plan = BlockPlan(
                whole.output, lambda index, band: whole.needs(chosen[index], band)
            )
        input_names = [self.operand_name(v) for v in inputs]
        names = [self.declare(r) for r in outputs]
        viewed = self.tensors.get(input_names[0]) if inputs else None
        view = (
            (kind in VIEW_KINDS or addressed)
            and len(outputs) == 1
            and viewed is not None
        )
        ring: Ring | None = None
        if view:
            assert viewed is not None
            targets = [self.place_view(names[0], outputs[0], viewed)]
            targets[0].view = ViewRecipe(kind, dict(params), tuple(input_names))
            opened = None
            if isinstance(op, cim_tile.Im2ColOp):
                self.windows[names[0]] = window_of(op)
        else:
            targets, opened, ring = self.place_results(plan, inputs, names, outputs)
        sources: list[tuple[TensorState | None, int]] = [
            self.operand_source(value, index, gathered)
            for index, value in enumerate(inputs)
        ]
        sources, copies = self.common_level(sources)
        rows = 1 if plan is None else plan.output.rows
        produced: list[Produced] = []
        emitted: list[cim_meta.VectorOp] = []
        steps = self.steps(plan)
        if view and viewed is not None and all(b is None for b, _ in viewed.ready):
            steps = [None]  # a view of a whole tensor is whole at once
        for step, band in enumerate(steps):
            if ring is not None:
                opened = self.ring_slot(targets[0], step)
            tokens: list[SSAValue] = [t for t in (opened,) if t is not None]
            in_states: list[TensorState] = []
            in_bytes = 0
            fraction = (
                1.0 if plan is None or band is None else (band[1] - band[0]) / rows
            )
            for index, (state, nbytes) in enumerate(sources):
                if state is None:
                    continue
                needed = (
                    None if plan is None or band is None else plan.needs(index, band)
                )
                tokens += state.tokens(needed)
                in_states.append(state)
                in_bytes += math.ceil(nbytes * fraction)
            block = None
            work = element_ops
            if plan is not None and band is not None:
                block = (plan.output.axis, *plan.output.elements(band))
                work = math.ceil(element_ops * fraction)
            out_bytes = math.ceil(sum(t.nbytes for t in targets) * fraction)
            if view:
                in_bytes = out_bytes = work = 0
            in_level, in_arrays = (
                self.stream_level(in_states) if in_states else (Location.BUFFER, None)
            )
            out_level, out_arrays = targets[0].where()
            cores = self.vector_cores(
                vector_core_count(
                    self.hw,
                    work,
                    in_bytes,
                    out_bytes,
                    STREAM_LEVELS[in_level],
                    STREAM_LEVELS[out_level],
                    memory_ranges(in_level, in_arrays),
                    memory_ranges(out_level, out_arrays),
                )
            )
            vector = cim_meta.VectorOp(
                kind,
                work,
                input_names,
                names,
                self.deps(*tokens),
                self.segment,
                label=kind,
                params=params,
                block=block,
                cores=cores,
                in_bytes=in_bytes,
                out_bytes=out_bytes,
                in_from=in_level,
                in_arrays=in_arrays if in_level == Location.MEMORY else None,
                out_to=out_level,
                out_arrays=out_arrays if out_level == Location.MEMORY else None,
            )
            token = self.emit(vector)
            emitted.append(vector)
            if view:
                self.views.add(token)
            if ring is not None:
                ring.band_of[token] = step
            for state in in_states:
                self.read(state, token)
            produced.append((band, token))
        if not view and len(names) == 1:
            self.finishers[names[0]] = emitted
        for name, state in zip(names, targets, strict=True):
            state.ready = produced
            self.layouts[name] = None if plan is None else plan.output
        for copy in copies:
            self.free(copy)

    def place_results(
        self,
        plan: BlockPlan | None,
        inputs: Sequence[SSAValue],
        names: Sequence[str],
        outputs: Sequence[SSAValue],
    ) -> tuple[list[TensorState], SSAValue | None, Ring | None]:
        """Where a vector operator's results live, what its first band waits
        for, and the ring its one result lives in, if any: made in bands by
        the op being lowered and too large for the global buffer whole, it
        may take a ring of its bands (:meth:`plan_ring`), whose slots its
        bands wait for instead."""
        made_here = (
            plan is not None
            and len(outputs) == 1
            and outputs[0] in self.body[self.position].results
        )
        ring = self.plan_ring(outputs[0], plan, self.steps(plan)) if made_here else None
        targets, allocs, after = self.place(names, list(outputs), ring)
        if names[0] in self.rings:
            return targets, None, self.rings[names[0]]
        opened = self.open_output(
            targets[0],
            allocs,
            [
                *after,
                *(
                    t
                    for index, v in enumerate(inputs)
                    if v in self.names and self.names[v] in self.tensors
                    for t in self.state(self.names[v]).tokens(
                        self.first_needs(plan, index)
                    )
                ),
            ],
        )
        return targets, opened, None

    def operand_source(
        self, value: SSAValue, index: int, gathered: int | None
    ) -> tuple[TensorState | None, int]:
        """Where a vector op's operand comes from and its bytes (None for a
        constant, which the op holds)."""
        owner = value.owner
        if isinstance(owner, cim_graph.ConstantOp):
            return None, 0
        if isinstance(owner, cim_graph.WeightOp):
            name = owner.weight_name.data
            if gathered is not None and index == 0:
                rows = max(1, gathered * self.hw.weight_bytes)
                return TensorState(name, rows, Location.DRAM), rows
            nbytes = max(1, num_elements(tensor_shape(value)) * self.hw.weight_bytes)
            return self.segment_weight(name, nbytes), nbytes
        state = self.state(self.names[value])
        return state, self.tensor_bytes(value)

    def lower_layout(self, op: cim_tile.Im2ColOp | cim_tile.Col2ImOp) -> None:
        kind = op.name.split(".")[1]
        elements = num_elements(tensor_shape(op.output))
        self.lower_vector_like(
            op,
            kind,
            vector_element_ops(kind, elements),
            dict(op.properties),
            [op.input],
            [op.output],
        )

    def lower_vector(self, op: cim_tile.VectorOp) -> None:
        if self.fused_residual(op) or self.fuse_epilogue(op):
            return
        if self.matmul_on_arrays(op):
            return
        payload = op.payload
        kind, element_ops = vector_work(payload)
        gathered = gathered_elements(payload)
        self.lower_vector_like(
            op,
            kind,
            element_ops,
            dict(payload.properties),
            list(op.inputs),
            list(op.outputs),
            gathered,
        )

    def matmul_on_arrays(self, op: cim_tile.VectorOp) -> bool:
        """An activation-by-activation matmul on the segment's free arrays,
        on a target with ``array.dynamic_matmul`` (:class:`ArrayMatmul`):
        the right operand is written into the arrays chunk after chunk (a
        tensor ``program`` from where it lives, once whatever used those
        arrays before in the segment is done) and the left operand's rows
        stream through each chunk. Seeing the left operand as rows and the
        result in the operator's shape are transposes the MVM's address
        generators do (views, like ``im2col``). False (nothing emitted) when
        the target cannot, the segment runs in bands, an operand is not an
        activation, or no array is free. An allocation's decision
        (``matmul_arrays``) says how many of the free arrays it takes, 0 for
        the vector units; without one it takes them all. With a decision it
        runs whole in a pipelined segment too, once its operands are."""
        shape = array_matmul(op.payload)
        decided = None if op.matmul_arrays is None else op.matmul_arrays.value.data
        if decided and not self.hw.array.dynamic_matmul:
            name = self.output_names.get(op.outputs[0]) or op.outputs[0].name_hint
            raise CimError(
                f"the matmul making '{name or 'its result'}' is to run on {decided} "
                f"arrays (matmul_arrays), but target '{self.hw.name}' has "
                "array.dynamic_matmul = false"
            )
        if (
            shape is None
            or decided == 0
            or not self.hw.array.dynamic_matmul
            or (decided is None and self.step_plan(op) is not None)
            or any(v not in self.names for v in op.inputs)
        ):
            return False
        available = self.dynamic_arrays()
        if decided is not None:
            available = min(available, decided)
        if available < 1:
            return False
        tiling = shape.tiling(self.hw)
        chunks = plan_chunks(tiling, available, self.hw)
        lhs, rhs = op.inputs
        element = op.outputs[0].type.element_type
        groups, rows = shape.groups, shape.rows
        transient: list[Operation] = []

        base = self.output_names.get(op.outputs[0]) or op.outputs[0].name_hint
        base = base or "matmul"

        def vector_step(payload: IRDLOperation, output: SSAValue | str) -> SSAValue:
            transient.append(payload)
            kind, work = vector_work(payload)
            if isinstance(output, str):
                result = payload.results[0]
                result.name_hint = f"{base}.{output}"
            else:
                result = output
            self.lower_vector_like(
                payload,
                kind,
                work,
                dict(payload.properties),
                list(payload.operands),
                [result],
                addressed=True,
            )
            return result

        left = lhs
        if groups > 1:
            moved = [tensor_shape(lhs)[i] for i in shape.rows_first]
            left = vector_step(
                cim_graph.TransposeOp(
                    lhs, shape.rows_first, TensorType(element, moved)
                ),
                "lhs_rows",
            )
        left = vector_step(
            cim_graph.ReshapeOp(
                left, TensorType(element, [rows, groups * shape.reduction])
            ),
            "lhs_matrix",
        )
        weight = self.names[rhs]
        mvm = cim_tile.MVMOp(
            left,
            weight,
            cim_tile.WeightLayout.KN,
            None,
            tiling,
            TensorType(element, [rows, groups * shape.columns]),
        )
        transient.append(mvm)
        mvm.output.name_hint = f"{base}.matrix"
        self.declare_weight(mvm)
        source = self.state(self.names[left])
        out_name = self.declare(mvm.output)
        (target,), allocs, after = self.place([out_name], [mvm.output])
        opened = self.open_output(target, allocs, [*after, *source.tokens()])
        operand = self.state(weight)

        def program_chunk(
            _: int, layout: CopyLayout, previous: SSAValue | None
        ) -> SSAValue:
            level, arrays = operand.where()
            token = self.program(
                weight,
                layout,
                self.deps(
                    *operand.tokens(),
                    previous,
                    *self.dynamic_busy,
                    *self.streamed_busy,
                    self.to_compute,
                ),
                cim_meta.Feed(level.value),
                arrays if level == Location.MEMORY else None,
                source=cim_meta.ProgramSource.TENSOR,
            )
            self.read(operand, token)
            return token

        finished, _ = self.compute_chunks(
            mvm,
            one_run(self.hw, tiling, chunks, self.free_array, self.free_stop),
            program_chunk,
            (source.name, out_name),
            (source, target),
            None,
            self.deps(*source.tokens(), opened),
        )
        target.ready = [(None, token) for token in finished]
        self.layouts[out_name] = None
        self.dynamic_busy = finished[-1:]
        output = op.outputs[0]
        if groups > 1:
            spread = [rows, *shape.batch, shape.columns]
            back = vector_step(
                cim_graph.ReshapeOp(mvm.output, TensorType(element, spread)),
                "rows",
            )
            vector_step(
                cim_graph.TransposeOp(back, shape.rows_back, output.type), output
            )
        else:
            vector_step(cim_graph.ReshapeOp(mvm.output, output.type), output)
        for payload in reversed(transient):
            payload.drop_all_references()
        return True

    def fused_residual(self, op: cim_tile.VectorOp) -> bool:
        """A residual add the accumulations finishing an MVM's outputs did
        (:func:`~cimflow.lowering.rules.residual_of`): its result is a view
        of the MVM's outputs, as their ``col2im`` or reshape shows them."""
        fused = self.fused_adds.get(op)
        if fused is None:
            return False
        index, branch = next(
            (i, v) for i, v in enumerate(op.inputs) if v is not fused[1]
        )
        self.lower_vector_like(
            op, "reshape", 0, {}, [branch], list(op.outputs), operands=[index]
        )
        return True

    def fuse_epilogue(self, op: cim_tile.VectorOp) -> bool:
        """An activation applied by the vector ops that finish its input
        (:func:`epilogue_source`: an MVM's accumulations or an element-wise
        operator's steps), on their lanes, as the values leave: its result
        is a view of that input, which makes no round trip of its own.
        False (nothing emitted) when those ops do not write every value."""
        source = epilogue_source(op)
        if source is None:
            return False
        produced = (
            source.output if isinstance(source, cim_tile.MVMOp) else source.outputs[0]
        )
        if isinstance(source, cim_tile.VectorOp) and source in self.fused_adds:
            produced = self.fused_adds[source][0]  # the MVM's accumulations add it
        if produced not in self.names:
            return False
        shape = tensor_shape(produced)
        mvm = produced.owner
        scale = mvm.output_scale if isinstance(mvm, cim_tile.MVMOp) else None
        if isinstance(mvm, cim_tile.MVMOp) and scale is not None:
            # steps over held columns (axis 1) cover the columns the arrays hold
            held = mvm.tiling.field("groups") * mvm.tiling.field("n")
            shape = (shape[0], held)
        finishers = self.finishers.get(self.names[produced], [])
        covered = [_block_elements(f, shape) for f in finishers]
        if not finishers or sum(covered) != math.prod(shape):
            return False
        activation = epilogue_activation(op)
        assert activation is not None
        kind, parameters = activation
        for finisher, held_elements in zip(finishers, covered, strict=True):
            # every output written, the dropped columns' too
            elements = written_outputs(held_elements, scale)
            params = dict(finisher.params.data)
            params["then"] = StringAttr(kind)
            params.update({f"then_{k}": v for k, v in parameters.items()})
            finisher.properties["attrs"] = DictionaryAttr(params)
            finisher.properties["element_ops"] = i64_attr(
                finisher.element_ops.value.data + vector_element_ops(kind, elements)
            )
        self.lower_vector_like(op, "reshape", 0, {}, list(op.inputs), list(op.outputs))
        return True

    def store_outputs(
        self, returned: Sequence[SSAValue], names: Sequence[str]
    ) -> list[str]:
        """Every model output ends in DRAM (those not stored when their last
        reader was done are stored here)."""
        outputs: list[str] = []
        for value, preferred in zip(returned, names, strict=True):
            name = self.names[value]
            outputs.append(name)
            state = self.state(name)
            level, arrays = state.where()
            if level == Location.DRAM:
                continue
            stored = self.emit(
                cim_meta.StoreOp(
                    name,
                    max(1, self.tensor_bytes(value)),
                    level,
                    Location.DRAM,
                    self.deps(*state.tokens()),
                    self.segment,
                    arrays=arrays,
                    label=preferred,
                )
            )
            self.read(state, stored)
        return outputs


def _block_elements(op: cim_meta.VectorOp, shape: Sequence[int]) -> int:
    """Elements of a tensor of ``shape`` an op's block (and an accumulation's
    ``vectors``) covers."""
    return block_elements(
        shape, None if op.block is None else ints(op.block), op.vectors
    )


__all__ = [
    "NAME_ATTR",
    "ScheduleBuilder",
    "arrays_to_hold",
    "io_names",
    "vector_work",
]
