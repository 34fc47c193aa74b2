"""The physical latency limit of a tiled model on a target: an analysis.

:func:`latency_lower_bound` reads a module after ``convert-graph-to-tile``
(the ``cim_tile`` level; allocation attributes, if present, are ignored) and
returns a :class:`LowerBound`: cycles no schedule of the model can beat on
the target, whatever the allocation strategy, because each term is work that
some resource must do and that resource's peak rate. Every cycle count comes
from :mod:`cimflow.cost_model`, so the bound moves with the cost model.

Terms (``t`` the target, ``ceil`` on every division, sums over the top-level
ops of the function):

- ``compute_cycles``: every array activation spread perfectly over all
  ``t.total_arrays`` arrays at the peak issue rate::

      per_vector(r, c) = mvm_cycles(t, 2, r, c) - mvm_cycles(t, 1, r, c)
                       = wordline_passes(t, r) * mvm_issue_interval(t, c)
      array_cycles     = sum over cim_tile.mvm, over its array tiles of one
                         copy (arrays_per_copy of them), of
                         vectors * per_vector(rows, cols the tile holds)
      compute_cycles   = ceil(array_cycles / t.total_arrays)

  A tile holds ``rows`` rows except the last row tile (``k mod rows``), and
  ``outputs_per_array * bit_slices`` columns except the last column tile; a
  packed grouped tile holds ``k`` rows and ``n * bit_slices`` columns per
  group it packs. (A lowered MVM runs all arrays of a chunk for its widest
  tile, never fewer columns.) The total ``mvm_activations`` (array x vector
  x wordline pass) is reported too.
  Weight copies only split the vectors, and streamed chunks only split the
  tiles, so no strategy has fewer activations; each MVM op of ``v`` vectors
  holds its arrays ``passes * (latency + (v - 1) * interval) >= v *
  per_vector`` cycles.
- ``dram_cycles``: every byte that must cross the DRAM channel, once, at its
  peak bandwidth: each weight the model reads (an MVM weight and bias in
  full, ``groups * k * n`` and ``groups * n`` elements; a weight read by
  vector work in full, except an embedding table read only by gathers, of
  which only the gathered rows), model inputs that are used, and model
  outputs (``t.weight_bytes`` per weight element, ``t.activation_bytes`` per
  activation element, as the lowering counts them). Weights larger than the
  chip's cells are streamed more than once by real schedules; once is still
  the bound. ``dram_cycles = dram.latency + ceil(bytes / dram.bandwidth)``
  (the latency only when something is read: writes are posted), the cost
  model's ``link_cycles`` of DRAM: the DRAM side of ``transfer_cost`` (one
  read's latency is unavoidable; the other side of a transfer may be faster
  memory-mode arrays, so it is not charged).
- ``interconnect_cycles``: every MVM input tensor (deduplicated: one tensor
  feeding several MVMs, also through reshapes, counts once, at the most any
  of them reads; a convolution's feature map, not its expanded windows, and
  of it only what some window reads), every MVM output (``vectors *
  groups * n`` activations, i.e. without partial sums) and every MVM weight
  (``groups * k * n`` elements, once, however many copies or chunks a
  schedule programs) crossing the interconnect once:
  ``interconnect_cost(t, bytes)``. A weight reaches its arrays only by a
  ``program``, which streams it from the global buffer, DRAM or memory-mode
  arrays over the interconnect to the arrays' cores (no path bypasses it:
  the memory-to-compute path feeds MVM inputs, not programming).
- ``vector_cycles``: all vector-unit work on all ``total_cores *
  units_per_core`` units at once: ``vector_cost(t, element_ops, units)``,
  where ``element_ops`` sums, as the lowering counts them, every
  ``cim_tile.vector`` payload (:func:`cimflow.lowering.rules.vector_work`),
  ``im2col`` / ``col2im`` (views: none), and per
  MVM the additions of its partial sums (its column tile's ``row_tiles - 1``
  per output) and its bias (one per output).
- activation matmuls on a ``dynamic_matmul`` target may run on either: a
  share ``f`` of their work goes to ``compute_cycles`` (their MVMs' array
  cycles as ``array_cycles`` counts a weight's: the right operand tiled as
  the lowering writes it, one vector per row of the left operand) and the
  rest to ``vector_cycles``, ``f`` the share that makes the larger of the
  two least (:func:`split_matmuls`; a relaxation of placing whole matmuls,
  so no placement beats it).
- ``chain_cycles``: the longest chain of dependent MVMs (data dependencies
  through any ops), each taking at least one vector through its deepest
  tile, the first: ``mvm_cycles(t, 1, min(k, rows), min(n,
  outputs_per_array) * bit_slices)``. Even when layers overlap (rows or
  samples flowing through a pipeline) the first output of a layer waits for
  one output of the layer it reads.

``cycles = max(compute, dram, interconnect, vector, chain)``; ``bound_by``
names the largest term. Resources can overlap perfectly in this bound, so a
real schedule's makespan is never below it (``tests/pytest/
test_lower_bound.py`` checks the static strategy's simulated makespan).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation, SSAValue

from cimflow.analysis.tile_mapping import whole_copy
from cimflow.cimdialect import cim_graph, cim_meta, cim_tile
from cimflow.cimdialect.cim_graph import tensor_shape
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    cycles_to_seconds,
    interconnect_cost,
    link_cycles,
    mvm_cycles,
    mvm_issue_interval,
    vector_cost,
    vector_element_ops,
    wordline_passes,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.rules import (
    array_matmul,
    gathered_elements,
    mvm_target,
    vector_work,
    window_of,
)

TERMS: tuple[str, ...] = ("compute", "dram", "interconnect", "vector", "chain")
"""The terms of the bound, in the order ``bound_by`` breaks ties."""


@dataclass(frozen=True)
class LowerBound:
    """Cycles below which no schedule of a tiled model can finish.

    The ``*_cycles`` terms are independent limits (see the module docstring
    for each formula); ``cycles`` is their maximum. The totals behind them
    are kept for reports.
    """

    compute_cycles: int
    """All array activations over every array at the peak issue rate."""
    dram_cycles: int
    """Weights, model inputs and outputs once over DRAM at peak bandwidth."""
    interconnect_cycles: int
    """Every MVM input, output and weight once over the interconnect."""
    vector_cycles: int
    """All vector-unit work on every vector unit at once."""
    chain_cycles: int
    """The longest chain of dependent MVMs, one vector each."""
    mvm_activations: int
    """Array activations: sum of arrays x vectors x wordline passes."""
    array_cycles: int
    """Array-busy cycles at the peak issue rate (before spreading)."""
    dram_bytes: int
    """Bytes that must cross DRAM (weights, inputs, outputs)."""
    weight_bytes: int
    """The weights' share of ``dram_bytes``."""
    interconnect_bytes: int
    """MVM input, output and weight bytes."""
    vector_element_ops: int
    """Vector-unit lane operations."""

    @property
    def terms(self) -> dict[str, int]:
        """Each term's cycles by name, in :data:`TERMS` order."""
        return {
            "compute": self.compute_cycles,
            "dram": self.dram_cycles,
            "interconnect": self.interconnect_cycles,
            "vector": self.vector_cycles,
            "chain": self.chain_cycles,
        }

    @property
    def cycles(self) -> int:
        """The bound: the largest term."""
        return max(self.terms.values())

    @property
    def bound_by(self) -> str:
        """The name of the largest term (the first in :data:`TERMS` on ties)."""
        terms = self.terms
        return max(TERMS, key=lambda name: (terms[name], -TERMS.index(name)))

    def seconds(self, target: HardwareTarget) -> float:
        """The bound in seconds at the target's clock."""
        return cycles_to_seconds(target, self.cycles)


def _function_ops(module: ModuleOp) -> Iterator[Operation]:
    """Top-level ops of the module's functions, after checking the level."""
    functions = [op for op in module.ops if isinstance(op, func.FuncOp)]
    if any(isinstance(op, cim_meta.ScheduleOp) for op in module.ops):
        raise CimError(
            "latency_lower_bound reads a cim_tile module; this one is already "
            "lowered to cim_meta (bound the module before convert-tile-to-meta)"
        )
    if not functions:
        raise CimError("latency_lower_bound: the module has no func.func")
    for function in functions:
        for op in function.body.block.ops:
            if isinstance(op, cim_graph.ConvOp | cim_graph.LinearOp):
                raise CimError(
                    f"latency_lower_bound needs a tiled module: '{op.name}' is "
                    "still there; run convert-graph-to-tile first"
                )
            yield op


def _check_tiling(
    tiling: cim_tile.TilingAttr, target: HardwareTarget, weight: str
) -> None:
    geometry = tuple(tiling.field(key) for key in ("rows", "cols", "bit_slices"))
    expected = (target.array.rows, target.array.cols, target.bit_slices)
    if geometry != expected:
        raise CimError(
            f"weight '{weight}' is tiled for {geometry[0]}x{geometry[1]} arrays with "
            f"{geometry[2]} bit slices, but target '{target.name}' has "
            f"{expected[0]}x{expected[1]} arrays with {expected[2]}"
        )


def tile_cells(tiling: cim_tile.TilingAttr) -> list[tuple[int, int, int]]:
    """``(rows held, columns held, number of tiles)`` for every array tile of
    one copy.

    Row tile ``i`` of a matrix holds ``min(rows, k - i * rows)`` rows, column
    tile ``j`` holds ``min(per_array, n - j * per_array) * bit_slices``
    columns (``per_array = cols // bit_slices`` outputs), and each pair
    repeats for each group; a packed grouped weight has ``groups //
    groups_per_array`` arrays of ``groups_per_array`` groups and one array
    for the remaining groups.
    """
    k, n, groups, rows = (tiling.field(key) for key in ("k", "n", "groups", "rows"))
    slices = tiling.field("bit_slices")
    packed = tiling.field("groups_per_array")
    if packed > 1:
        full, rest = divmod(groups, packed)
        tiles = [(packed * k, packed * n * slices, full)] if full else []
        return [*tiles, (rest * k, rest * n * slices, 1)] if rest else tiles
    per_array = tiling.outputs_per_array
    col_tiles = tiling.field("col_tiles")
    last_cols = (n - (col_tiles - 1) * per_array) * slices
    if tiling.ragged:  # each column tile its own row tiles (one group)
        return [
            (min(rows, k - r * rows), min(per_array, n - c * per_array) * slices, 1)
            for c in range(col_tiles)
            for r in range(tiling.row_tiles_of(c))
        ]
    widths = [(per_array * slices, col_tiles - 1)] if col_tiles > 1 else []
    widths.append((last_cols, 1))
    return [
        (min(rows, k - r * rows), cols, count * groups)
        for r in range(tiling.field("row_tiles"))
        for cols, count in widths
    ]


def mvm_array_work(mvm: cim_tile.MVMOp, target: HardwareTarget) -> tuple[int, int]:
    """``(activations, array cycles at the peak issue rate)`` of one MVM."""
    return tiling_array_work(mvm_target(target, mvm), mvm.tiling, mvm.vectors)


def tiling_array_work(
    target: HardwareTarget, tiling: cim_tile.TilingAttr, vectors: int
) -> tuple[int, int]:
    """``(activations, array cycles at the peak issue rate)`` of ``vectors``
    through one copy of a weight tiled as ``tiling``."""
    activations = 0
    cycles = 0
    for rows_held, cols_held, count in tile_cells(tiling):
        passes = wordline_passes(target, rows_held)
        activations += count * vectors * passes
        cycles += count * vectors * passes * mvm_issue_interval(target, cols_held)
    return activations, cycles


def split_matmuls(
    target: HardwareTarget,
    array_cycles: int,
    element_ops: int,
    matmul_cycles: int,
    matmul_ops: int,
) -> tuple[int, int]:
    """``(compute_cycles, vector_cycles)`` at the share ``f`` of the
    activation matmuls run on arrays that makes the slower of the two
    least: ``(array_cycles + f * matmul_cycles) / arrays`` against the
    vector work plus ``(1 - f) * matmul_ops`` (a relaxation: a schedule
    places whole matmuls, so its pair is never below this one's larger
    term, but for the vector units' latency and a cycle of rounding, which
    ``f`` leaves out)."""
    arrays = target.total_arrays
    units = target.total_cores * target.vector.units_per_core
    lanes = target.vector.lanes * units
    on_arrays = array_cycles / arrays
    per_array_share = matmul_cycles / arrays
    on_vectors = (element_ops + matmul_ops) / lanes
    per_vector_share = matmul_ops / lanes
    share = 0.0
    if on_vectors > on_arrays and per_array_share + per_vector_share > 0:
        share = min(
            1.0, (on_vectors - on_arrays) / (per_array_share + per_vector_share)
        )
    vector_ops = element_ops + math.floor((1 - share) * matmul_ops)
    vector = vector_cost(target, vector_ops, units).cycles
    compute = math.floor(on_arrays + share * per_array_share)
    return compute, vector


def _data_of(value: SSAValue) -> tuple[SSAValue, int]:
    """The tensor ``value`` is a view of, through free reshapes and window
    expansions (a convolution's cores receive its feature map, and their
    local buffers expand the windows), and how many of its elements the
    view reads (a window whose stride skips rows or columns reads fewer:
    :meth:`~cimflow.lowering.rules.Window.band_elements`)."""
    read: int | None = None
    while True:
        owner = value.owner
        if isinstance(owner, cim_tile.Im2ColOp):
            window = window_of(owner)
            patches = tensor_shape(owner.output)
            read = window.band_elements((0, patches[0]), [(0, patches[1])])
            value = owner.input
        elif isinstance(owner, cim_tile.VectorOp) and isinstance(
            owner.payload, cim_graph.ReshapeOp
        ):
            value = owner.inputs[0]
        else:
            whole = num_elements(tensor_shape(value))
            return value, whole if read is None else min(read, whole)


def _activation_bytes(value: SSAValue, target: HardwareTarget) -> int:
    return num_elements(tensor_shape(value)) * target.activation_bytes


def latency_lower_bound(module: ModuleOp, target: HardwareTarget) -> LowerBound:
    """The physical latency limit of a ``cim_tile``-level module on ``target``.

    Raises :class:`~cimflow.errors.CimError` for a module that is not tiled
    (still ``cim_graph`` conv/linear), already lowered to ``cim_meta``, or
    tiled for different arrays than the target's.
    """
    activations = 0
    array_cycles = 0
    weight_elements: dict[str, int] = {}
    programmed_elements: dict[str, int] = {}
    used_inputs: dict[SSAValue, None] = {}
    outputs: dict[SSAValue, None] = {}
    mvm_inputs: dict[SSAValue, int] = {}
    output_bytes = 0
    element_ops = 0
    matmul_ops = 0
    matmul_cycles = 0
    chain: dict[SSAValue, int] = {}

    def need_weight(name: str, elements: int) -> None:
        weight_elements[name] = max(weight_elements.get(name, 0), elements)

    for op in _function_ops(module):
        for operand in op.operands:
            if isinstance(operand, BlockArgument):  # a model input
                used_inputs[operand] = None
        depth = max((chain.get(v, 0) for v in op.operands), default=0)
        if isinstance(op, cim_tile.MVMOp):
            tiling = op.tiling
            weight = op.weight.data
            _check_tiling(tiling, target, weight)
            groups, k, n = (tiling.field(key) for key in ("groups", "k", "n"))
            act, cycles = mvm_array_work(op, target)
            activations += act
            array_cycles += cycles
            copy = whole_copy(tiling)
            need_weight(weight, copy.weight_elements)
            programmed_elements[weight] = copy.weight_elements
            if op.bias is not None:
                need_weight(op.bias.data, groups * op.outputs_per_group)
            data, elements = _data_of(op.input)
            mvm_inputs[data] = max(mvm_inputs.get(data, 0), elements)
            outputs_count = op.vectors * groups * n
            written = op.vectors * groups * op.outputs_per_group
            output_bytes += written * target.activation_bytes
            element_ops += vector_element_ops(
                "accumulate", op.vectors * copy.merged_sums
            ) + vector_element_ops("accumulate", outputs_count, op.bias is not None)
            first_cols = min(n, tiling.outputs_per_array) * tiling.field("bit_slices")
            depth += mvm_cycles(
                mvm_target(target, op), 1, min(k, tiling.field("rows")), first_cols
            )
        elif isinstance(op, cim_tile.Im2ColOp | cim_tile.Col2ImOp):
            kind = op.name.split(".")[1]
            element_ops += vector_element_ops(
                kind, num_elements(tensor_shape(op.output))
            )
        elif isinstance(op, cim_tile.VectorOp):
            payload = op.payload
            kind, ops = vector_work(payload)
            shape = array_matmul(payload) if target.array.dynamic_matmul else None
            if shape is not None:
                matmul_ops += ops
                matmul_cycles += tiling_array_work(
                    target, shape.tiling(target), shape.rows
                )[1]
            else:
                element_ops += ops
            for index, operand in enumerate(op.inputs):
                owner = operand.owner
                if not isinstance(owner, cim_graph.WeightOp):
                    continue
                gathered = gathered_elements(payload) if index == 0 else None
                elements = (
                    num_elements(tensor_shape(operand))
                    if gathered is None
                    else gathered
                )
                need_weight(owner.weight_name.data, elements)
        elif isinstance(op, func.ReturnOp):
            for value in op.operands:
                if isinstance(value.owner, Operation) and not isinstance(
                    value.owner, cim_graph.WeightOp | cim_graph.ConstantOp
                ):
                    outputs[value] = None
        for result in op.results:
            chain[result] = depth

    weight_bytes = sum(weight_elements.values()) * target.weight_bytes
    read_bytes = weight_bytes + sum(_activation_bytes(v, target) for v in used_inputs)
    dram_bytes = read_bytes + sum(_activation_bytes(v, target) for v in outputs)
    interconnect_bytes = (
        output_bytes
        + target.activation_bytes * sum(mvm_inputs.values())
        + target.weight_bytes * sum(programmed_elements.values())
    )
    units = target.total_cores * target.vector.units_per_core
    compute_cycles = math.ceil(array_cycles / target.total_arrays)
    vector_cycles = vector_cost(target, element_ops, units).cycles
    if matmul_ops:
        compute_cycles, vector_cycles = split_matmuls(
            target, array_cycles, element_ops, matmul_cycles, matmul_ops
        )
    return LowerBound(
        compute_cycles=compute_cycles,
        dram_cycles=(
            link_cycles(target, "dram", dram_bytes, reads=read_bytes > 0)
            if dram_bytes
            else 0
        ),
        interconnect_cycles=(
            interconnect_cost(target, interconnect_bytes).cycles
            if interconnect_bytes
            else 0
        ),
        vector_cycles=vector_cycles,
        chain_cycles=max(chain.values(), default=0),
        mvm_activations=activations,
        array_cycles=array_cycles,
        dram_bytes=dram_bytes,
        weight_bytes=weight_bytes,
        interconnect_bytes=interconnect_bytes,
        vector_element_ops=element_ops,
    )
