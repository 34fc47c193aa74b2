"""The dual-mode segment cost model of ``cim-segment`` and ``cim-allocate``.

CMSwitch-style compilation splits the operators into *segments* (runs of
the topological order whose weights are resident together) and decides,
per segment, how many copies each weight gets (compute mode) and how many
arrays serve as memory (memory mode). This module predicts the latency of
a segment under such an allocation. Every number comes from
:mod:`cimflow.cost_model` (``mvm_cycles``, ``program_cost``,
``transfer_cost``, ``switch_cost``, ``vector_cost``, ``interconnect_cost``)
applied to exactly the meta-operations ``convert-tile-to-meta`` emits for
the allocation, so the model and the simulator price the same work.

Program
-------
:func:`build_program` reads the tile-level function in program order; the
*tile ops* are ``cim_tile.mvm``, ``cim_tile.vector``, ``cim_tile.im2col``
and ``cim_tile.col2im``. A segment is an interval ``[first, stop)`` of them
(an interval of the topological order, so parallel branches and residuals
stay inside or outside together). Each tile op ``k`` has, from the lowering
of layer dataflow:

- ``fixed_k``: cycles that no allocation changes, one after another:
  ``interconnect_cost`` of moving its input to the arrays and gathering the
  partial sums back, ``vector_cost`` of its work (``im2col``, ``col2im``;
  a streamed MVM's accumulations), and ``transfer_cost(dram,
  buffer, b)`` of every load that always comes from DRAM (model inputs,
  spilled tensors of earlier segments — evicted to DRAM when their segment
  ends —, gathered embedding rows); a vector op is the one op the lowering
  emits for it, ``vector_op_cost`` of its work while it streams its
  operands in and its results out (from DRAM when every operand is there,
  else from the global buffer after the loads; a view costs nothing);
- a tensor it produces is *spilled* when the lowering would store it (a whole
  tensor over half the global buffer); each consumer loads it again;
- weights read by vector ops and biases are loaded once per segment.

Allocation
----------
Per segment: copies ``d_k`` of every resident MVM ``k`` (``d_k * A_k``
arrays, ``A_k`` arrays per copy), ``a`` arrays of an ``activations`` buffer,
``p`` arrays of a ``weights`` buffer that prefetches the next segment's
weights; ``M = a + p`` memory arrays. A weight larger than the chip streams
in ``chunks = len(plan_chunks(tiling, T - compute - M))`` chunks through the
free arrays (``T`` the chip's arrays). The lowering fills both buffers first
fit in program order with capacity ``arrays * memory_capacity_bytes``.

Formulas (``tc(src, dst, b, n)`` is ``transfer_cost(...).cycles``)
-------------------------------------------------------------------
- MVM compute with ``d`` copies (vectors split between the copies, every
  copy running all row tiles of the weight at once), its accumulations of
  row tiles, bias and a fused residual (``acc_k`` lane operations) on the
  vector units of the cores its copies hold (the lowering adds each
  copy's sums on its own cores: ``cores(d) = min(C, ceil(d A_k / A_core))``
  of the ``C`` cores, ``A_core`` arrays each), and the extra copies'
  weights (``b_k`` bytes) streaming to their arrays::

      mvm_k(d) = mvm_cycles(ceil(V_k / d), rows_k, cols_k)
                 + vector_cost(acc_k, cores(d) * units_per_core)
                 + interconnect(repl_k(d)),   repl_k(d) = (d - 1) b_k

- streamed weight, over the chunks of the plan for ``T - compute - M``
  arrays: ``chunk_k(M)`` is the end of the ops the lowering emits for it
  (:func:`stream_ops`), each at its cost-model cycles, scheduled on the
  DRAM channel and the bus (:func:`stream_terms`): per chunk, its program
  straight from DRAM (or, with a ``chunks``
  buffer of two halves of ``h`` arrays, a variant of the segment's problem
  with ``T - compute - M - 2h`` arrays for the chunks, programmed from the
  half that prefetched it ``tc(dram, memory, b, h)``), its MVM streaming
  its input rows (from DRAM again when the input lives there) and partial
  sums, and the additions of its partial sums;
- activation matmul on a ``dynamic_matmul`` target, in a variant of the
  segment's problem with ``R`` arrays kept free for it (``T - R`` for the
  rest; :meth:`Segment.matmul_array_choices`): the same schedule with the
  right operand as the chunks' source, each programmed from where it lives
  (:func:`matmul_cycles`), replacing its vector-unit cycles, vector and
  interconnect shares; in a segment that streams a weight, on the arrays
  the stream passes through, as ``chunk_k(M)`` is;

- spill traffic with ``a`` activation arrays: a spilled tensor of ``b``
  bytes that fits the buffer (first fit) is stored with
  ``tc(buffer, memory, b, a)`` and loaded by each consumer with
  ``tc(memory, buffer, b, a)``; otherwise ``tc(buffer, dram, b)`` and
  ``tc(dram, buffer, b)``. ``act_k(a)`` is op ``k``'s share (its stores and
  loads); a tensor still needed after the segment is evicted at the next
  segment's start: ``evict(a) = sum tc(memory, dram, b, a)``;
- op duration and critical path (layer dataflow: an op starts when its
  producers in the segment have finished)::

      dur_k = fixed_k + mvm_k(d_k) + chunk_k(M) + act_k(a)
      e_k   = dur_k + max(e_j for producers j of k in the segment)

- body latency, a min-max over the critical path and every shared
  resource's occupancy::

      body = max(max_k e_k,
                 DRAM:  sum of DRAM loads/stores + prefetch(p) + stream(M),
                 memory arrays: sum of tc(.., memory, ..) of the buffer,
                 interconnect: sum of moves + sum_k interconnect(repl_k(d_k)),
                 vector units: sum of vector work,
                 stream_end + prefetch(p))

  ``stream(M)`` is all of ``chunk_k(M)``, not only its loads: the lowering
  issues a chunk's load after the previous chunk's MVMs, and DRAM traffic
  that slips into that gap cannot be preempted, so it delays the stream as
  much as if the gap were DRAM time. The prefetch is emitted after the
  stream's last load (so it never stalls the stream):
  ``stream_end = e_k - tail_k(M)``, ``tail_k`` the last chunk's program and
  MVMs;
- entry of a segment: evictions of the previous segment's buffer, then its
  resident weights loaded from DRAM one after another, then the slowest
  program (or all their bytes over the interconnect), but for the weights
  ``P`` the previous segment staged in place in its ``weights`` buffer::

      entry = evict(a_prev) + sum_{w not in P} tc(dram, buffer, b_w)
              + max(max_{w not in P} program_cost(rows_w),
                    interconnect(sum_{w not in P} b_w))

  ``P`` is what ``p_prev`` arrays stage (:func:`staged_in_place`: one copy
  of each weight on ``A_w`` whole arrays, first fit in program order; none
  when the next segment streams a weight), at ``prefetch(p) = sum_{w in P}
  tc(dram, memory, b_w, A_w)`` of that segment's DRAM time; those arrays
  switch to compute mode in place at the next segment's start (its mode
  switch); further copies of a staged weight are programmed from its
  staged arrays before they switch, which the model leaves out;
- mode switches: ``2 * switch_cost(M)`` when ``M > 0`` (to memory at the
  segment's start, back to compute at the next one);
- segment objective (what the MILP minimizes; it holds everything that
  depends on this segment's decisions)::

      cost = body + entry_next(a, p) + 2 * switch_cost(M) [+ final]

  ``final`` (last segment only) stores the outputs left in the buffer; the
  model's prediction for the program is ``entry_0 + sum_s cost_s``.

Constraints: ``sum_k d_k A_k + M <= T`` (and ``<= T - 1`` when a weight
streams, which needs one array); when ``M > 0``, ``sum_k d_k A_k + M <=
S`` (the lowering puts the buffers right after the compute arrays and only
the first ``S`` arrays switch); each buffer holds what it is given
(``bytes <= arrays * memory_capacity_bytes``).

What the model leaves out: ops overlapping the segment's entry (vector ops
that need no weight), a resident weight's one copy programmed straight
from DRAM in bursts chained in DRAM order (priced as its load, with the
slowest program after all loads: the same where a burst's transfer
outlasts its program, short by up to a program time per burst where it
does not: small weights on ReRAM), the order in which the simulator grants a shared
resource to ops of parallel branches, the lowering keeping spilled tensors
in a following segment's identical buffer (the model evicts them: an upper
bound), a vector op streaming a spilled result out as it computes (the model
stores it after the op: up to 1.5x on a large element-wise op whose input
and output live in DRAM), where a tensor fits (the lowering: the room left
in the global buffer; the model: half of it), and where an activation
matmul on arrays, run whole in a pipelined segment, leaves the ops after it
(the model keeps their bands). Measured against ``cim-sim`` on the small zoo
on ``tiny`` and ``dynaplasia``: see ``PREDICTION_BOUND`` in
``tests/pytest/test_cim_allocate.py``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Literal

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from cimflow.analysis.allocation import batch_size, feature_rows, pipeline_plans
from cimflow.analysis.blocking import Band, BlockPlan, bands, skip_band
from cimflow.analysis.rings import ring_band_bytes, ring_depth, ring_fits
from cimflow.analysis.tile_mapping import plan_chunks, whole_copy
from cimflow.cimdialect import cim_graph, cim_tile
from cimflow.cimdialect.cim_graph import tensor_shape
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cimdialect.shapes import num_elements
from cimflow.cost_model import (
    Location,
    OpCost,
    concurrent_cost,
    cores_of_arrays,
    interconnect_cost,
    mvm_op_cost,
    program_cost,
    program_op_cost,
    replica_stream_cycles,
    switch_cost,
    transfer_cost,
    vector_cost,
    vector_element_ops,
    vector_op_parts,
)
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.lowering.placement import VIEW_KINDS, arrays_to_hold
from cimflow.lowering.rules import (
    NO_ROW_INDICES,
    RowIndices,
    Window,
    array_matmul,
    banded_copies,
    banded_mvm_cycles,
    chunks_out_bytes,
    epilogue_source,
    finishing_ops,
    gathered_elements,
    held_input_scale,
    merge_ops,
    mvm_input_bytes,
    mvm_target,
    mvm_window,
    program_bytes,
    residual_of,
    row_indices_of,
    split_span,
    staged_in_place,
    stages_in_place,
    vector_work,
    written_outputs,
)
from cimflow.lowering.state import (
    chunk_add_bytes,
    chunk_adds,
    chunk_ends,
    chunk_out_bytes,
    chunk_part_count,
    chunk_stream,
    columns_bias_bytes,
    copy_layout,
    copy_local_bytes,
    keeps_bias,
    mvm_feed,
    partials_fit,
    runs_of,
    stream_alternatives,
)
from cimflow.passes.clsa_allocate import MAX_ROW_BANDS

Part = Literal["interconnect", "vector", "dram", "accumulate"]

ROW_BAND_CHOICES = (8, MAX_ROW_BANDS)
"""Most bands a ``rows`` pipelined segment is priced at (each a separate
instance; the best one wins): PIMCOMP's 8 and CLSA-CIM's row-granular cap.
Fewer, larger bands pay fewer per-band latencies: cmswitch on dynaplasia,
ResNet-18 1.318 -> 1.257 ms and ResNet-50 3.72 -> 3.65 ms with 8 added
(MobileNetV2 and VGG-16 0.5% faster; once dropped when MobileNetV2 ran 4%
slower with it, before DRAM writes were posted and line-buffered pieces
stopped loading)."""

TileOp = cim_tile.MVMOp | cim_tile.VectorOp | cim_tile.Im2ColOp | cim_tile.Col2ImOp
TILE_OPS = (cim_tile.MVMOp, cim_tile.VectorOp, cim_tile.Im2ColOp, cim_tile.Col2ImOp)

INPUT = -1
"""Producer index of a model input."""

SKIP = -1
"""Operand position (in :attr:`OpInfo.reads`) of the skip an MVM's fused
residual adds, which :func:`~cimflow.analysis.blocking.skip_band` maps to
rows."""


# --------------------------------------------------------------------------
# The program: tile ops with their allocation-independent costs
# --------------------------------------------------------------------------


@dataclass
class TensorInfo:
    """An activation tensor as the lowering stores it."""

    name: str
    nbytes: int
    producer: int
    """Tile-op index of its producer, or :data:`INPUT`."""
    spilled: bool = False
    """Stored after it is produced (to DRAM, or an activations buffer)."""
    consumers: list[int] = field(default_factory=lambda: [])
    """Tile ops that fetch it, once per operand that reads it."""
    outputs: int = 0
    """How many times the function returns it."""


@dataclass
class MvmInfo:
    """What the model needs of one ``cim_tile.mvm``."""

    op: cim_tile.MVMOp
    arrays: int
    """Arrays one resident copy occupies (one chunk covering the weight)."""
    vectors: int
    rows: int
    """Rows used per array (wordline passes)."""
    cols: int
    """Columns used per array (ADC rounds)."""
    weight_bytes: int
    """Bytes of the whole weight (one load at a segment's start)."""
    program: int
    """Cycles to program one copy."""
    streamed: bool
    """Larger than the chip: it streams in chunks."""
    window: Window | None = None
    """The convolution window its input is expanded by (an ``im2col``)."""
    input_in_dram: bool = False
    """Its input lives in DRAM (a model input or a spilled tensor): every
    chunk of a streamed weight streams it from there again."""
    bias_bytes: int = 0
    """Bytes of its bias (0: none)."""
    residual: bool = False
    """Its accumulations add a fused residual."""
    output_in_dram: bool = False
    """Its output is spilled to DRAM: a streamed weight's last chunks write
    their finished outputs there."""
    accumulate_ops: int = 0
    """Lane operations of its accumulations (partial sums, bias, a fused
    residual) when resident: they run on its copies' cores' vector units
    (:func:`accumulate_cycles`), so they are priced with its copies."""
    input_bytes: int = 0
    """Bytes of its input as stored (what an ``inputs`` buffer takes)."""
    local_bytes: int = 0
    """Bytes the busiest core's local buffer supplies per vector of a
    resident copy (the window-expanded input of its row tiles,
    :func:`~cimflow.lowering.state.mvm_feed`'s ``expanded``), read while
    its arrays compute."""


@dataclass(frozen=True)
class MatmulInfo:
    """An activation-by-activation matmul a ``dynamic_matmul`` target may run
    on arrays (:meth:`cimflow.lowering.builder.ScheduleBuilder.matmul_on_arrays`):
    its right operand written into free arrays chunk after chunk, its left
    operand's rows streaming through them."""

    tiling: cim_tile.TilingAttr
    vectors: int
    """Rows of the left operand (the MVM's input vectors)."""
    operand_in_dram: bool
    """The right operand lives in DRAM: its programs stream it from there."""
    input_in_dram: bool
    output_in_dram: bool
    vector: int
    """Its vector-unit compute cycles (part of the op's ``vector``)."""
    interconnect: int
    """Its operand and result streams (part of the op's ``interconnect``)."""


@dataclass
class OpInfo:
    """One tile op and its allocation-independent costs."""

    index: int
    op: TileOp
    fixed: int = 0
    """Serial cycles no allocation changes."""
    fixed_dram: int = 0
    """The DRAM-holding part of ``fixed``."""
    interconnect: int = 0
    vector: int = 0
    segment_loads: dict[str, int] = field(default_factory=lambda: {})
    """Weights and biases loaded once per segment: name -> load cycles."""
    fetches: list[int] = field(default_factory=lambda: [])
    """Spilled tensors it loads (tensor ids, one per operand)."""
    outputs: list[int] = field(default_factory=lambda: [])
    """Tensors it produces (tensor ids)."""
    preds: list[int] = field(default_factory=lambda: [])
    """Tile ops producing its operands (distinct, in order)."""
    parts: list[tuple[Part, int]] = field(default_factory=lambda: [])
    """What ``fixed`` is made of, to price one band of it: interconnect
    bytes, vector element ops, DRAM bytes loaded."""
    streams: tuple[int, int, int, bool] | None = None
    """For a vector op: the work, bytes in and bytes out of the one op the
    lowering emits for it, and whether it streams its operands from DRAM
    (its cycles are those of its work and streams at the same time)."""
    reads: list[tuple[int, int]] = field(default_factory=lambda: [])
    """``(operand position, producing tile op)`` of each operand a tile op
    produced (the positions :attr:`BlockPlan.needs` takes, or :data:`SKIP`)."""
    mvm: MvmInfo | None = None
    matmul: MatmulInfo | None = None
    """Set for an activation matmul the arrays could run instead."""


@dataclass
class Program:
    """The tile ops of a function, their tensors and the target."""

    hw: HardwareTarget
    ops: list[OpInfo]
    tensors: list[TensorInfo]
    final: int
    """Cycles of storing the outputs left in the global buffer at the end."""
    batch: int = 1
    pipelines: dict[Dataflow, dict[int, BlockPlan]] = field(default_factory=lambda: {})
    """Per pipelined dataflow, how each tile op it blocks runs when every
    segment uses that dataflow (tile-op index -> plan)."""
    reserved: int = 0
    """Arrays ``[0, reserved)`` a KV cache holds for the whole run: segments
    use the rest."""
    held: dict[str, int] = field(default_factory=lambda: {})
    """Model inputs that start in those arrays: name -> arrays holding it."""

    @property
    def arrays(self) -> int:
        """Arrays the segments may use."""
        return self.hw.total_arrays - self.reserved

    @property
    def switchable(self) -> int:
        """Switchable arrays the segments may use."""
        return max(0, self.hw.dual_mode.switchable_arrays - self.reserved)

    @property
    def mvm_positions(self) -> list[int]:
        return [op.index for op in self.ops if op.mvm is not None]


def tile_ops(function: func.FuncOp) -> list[TileOp]:
    """The tile ops of a function body, in program order."""
    return [op for op in function.body.block.ops if isinstance(op, TILE_OPS)]


def tensor_bytes(hw: HardwareTarget, value: SSAValue) -> int:
    return num_elements(tensor_shape(value)) * hw.activation_bytes


@lru_cache(maxsize=1 << 16)
def tc(
    hw: HardwareTarget, src: Location, dst: Location, nbytes: int, arrays: int = 0
) -> int:
    """``transfer_cost(hw, src, dst, nbytes, arrays).cycles`` (memoized)."""
    return transfer_cost(hw, src, dst, nbytes, arrays).cycles


def dram_load(hw: HardwareTarget, nbytes: int) -> int:
    """``transfer_cost(dram, buffer, nbytes)`` in cycles."""
    return tc(hw, "dram", "buffer", max(1, nbytes))


def parse_dataflows(text: str, pass_name: str) -> tuple[Dataflow, ...]:
    """The pipelined dataflows named in a pass option (``rows,batch``;
    ``layer`` or empty: none), or a CimError naming the bad one."""
    kinds: list[Dataflow] = []
    for name in (part.strip() for part in text.split(",")):
        if not name or name == Dataflow.LAYER.value:
            continue
        if name not in {kind.value for kind in PIPELINED_DATAFLOWS}:
            raise CimError(
                f"{pass_name}: unknown dataflow '{name}' (dataflows: layer, "
                + ", ".join(kind.value for kind in PIPELINED_DATAFLOWS)
                + ")"
            )
        kinds.append(Dataflow(name))
    return tuple(kinds)


def _everywhere(kind: Dataflow) -> Callable[[int], Dataflow]:
    return lambda _segment: kind


PIPELINED_DATAFLOWS = (Dataflow.ROWS, Dataflow.BATCH)
"""The pipelined dataflows a segment may take besides ``layer``."""


@dataclass(frozen=True)
class _OperandStreams:
    """What the one op the lowering emits for a vector operator streams in."""

    in_bytes: int
    """Bytes of the operands a vector op streams in (constants excepted)."""
    from_dram: bool
    """Every streamed operand lies in DRAM (model inputs, gathered table
    rows), so the op streams them from there; otherwise the lowering loads
    those in DRAM into the global buffer first (its ``common_level``)."""


def _vector_op(
    hw: HardwareTarget, work: int, in_bytes: int, out_bytes: int, from_dram: bool
) -> tuple[OpCost, OpCost]:
    """The compute and the streams of a vector op on every core's units."""
    return vector_op_parts(
        hw,
        work,
        ((0, hw.total_cores),),
        in_bytes,
        out_bytes,
        in_from="dram" if from_dram else "buffer",
    )


def _operand_streams(
    hw: HardwareTarget,
    op: cim_tile.VectorOp,
    gathered: int | None,
    tensor_of: dict[SSAValue, int],
    tensors: list[TensorInfo],
    held: dict[str, int],
) -> _OperandStreams:
    """What the lowering's vector op streams in, by the rule of
    :meth:`cimflow.lowering.builder.ScheduleBuilder.operand_source`."""
    in_bytes = 0
    levels: set[bool] = set()
    for position, value in enumerate(op.inputs):
        owner = value.owner
        if isinstance(owner, cim_graph.ConstantOp):
            continue
        if isinstance(owner, cim_graph.WeightOp):
            if gathered is not None and position == 0:
                in_bytes += max(1, gathered * hw.weight_bytes)
                levels.add(True)
            else:
                in_bytes += max(1, num_elements(tensor_shape(value)) * hw.weight_bytes)
                levels.add(False)
            continue
        in_bytes += tensor_bytes(hw, value)
        tensor_id = tensor_of.get(value)
        tensor = None if tensor_id is None else tensors[tensor_id]
        levels.add(
            tensor is not None and tensor.producer == INPUT and tensor.name not in held
        )
    return _OperandStreams(in_bytes, levels == {True})


def _lives_in_dram(
    op: cim_tile.MVMOp,
    tensor_of: dict[SSAValue, int],
    tensors: list[TensorInfo],
    held: dict[str, int],
) -> bool:
    """Whether an MVM's input (a window's feature map) lives in DRAM: a model
    input not held in memory-mode arrays, or a spilled tensor."""
    value = op.input
    owner = value.owner
    if isinstance(owner, cim_tile.Im2ColOp):
        value = owner.input
    tensor_id = tensor_of.get(value)
    return tensor_id is not None and _in_dram(tensors[tensor_id], held)


def _input_bytes(
    op: cim_tile.MVMOp, tensor_of: dict[SSAValue, int], tensors: list[TensorInfo]
) -> int:
    """Bytes of an MVM's input as stored (0: not a tensor the model tracks)."""
    tensor_id = tensor_of.get(op.input)
    return 0 if tensor_id is None else tensors[tensor_id].nbytes


def _in_dram(tensor: TensorInfo, held: dict[str, int]) -> bool:
    """Whether a tensor lives in DRAM: a model input not held in memory-mode
    arrays, or a spilled tensor."""
    if tensor.producer == INPUT:
        return tensor.name not in held
    return tensor.spilled


def _matmul_info(
    hw: HardwareTarget,
    op: cim_tile.VectorOp,
    vector_parts: tuple[int, int],
    tensor_of: dict[SSAValue, int],
    tensors: list[TensorInfo],
    held: dict[str, int],
) -> MatmulInfo | None:
    """What running ``op`` on arrays needs, when it is an activation matmul
    the target's arrays can run (both operands activations)."""
    shape = array_matmul(op.payload)
    if shape is None or not hw.array.dynamic_matmul:
        return None
    found = [tensor_of.get(v) for v in (*op.inputs, op.outputs[0])]
    if any(t is None for t in found):
        return None

    lhs, rhs, out = (tensors[t] for t in found if t is not None)
    compute, stream = vector_parts
    return MatmulInfo(
        shape.tiling(hw),
        shape.rows,
        _in_dram(rhs, held),
        _in_dram(lhs, held),
        out.spilled,
        compute,
        stream,
    )


def matmul_cycles(hw: HardwareTarget, matmul: MatmulInfo, arrays: int) -> int:
    """Cycles of an activation matmul on ``arrays`` free arrays: the chunks
    the lowering programs from its right operand and computes, one after
    another (:func:`stream_ops` with the operand as the chunks' source)."""
    return _stream_terms(
        hw,
        matmul.tiling,
        matmul.vectors,
        arrays,
        input_in_dram=matmul.input_in_dram,
        output_in_dram=matmul.output_in_dram,
        operand="dram" if matmul.operand_in_dram else "buffer",
    )[0]


def build_program(
    function: func.FuncOp,
    hw: HardwareTarget,
    reserved: int = 0,
    held: dict[str, int] | None = None,
    pipelined: Sequence[Dataflow] = PIPELINED_DATAFLOWS,
) -> Program:
    """The cost-model view of a tile-level function (see the module doc);
    ``reserved`` arrays hold the ``held`` inputs (name -> their arrays),
    which consumers then read out of memory-mode arrays, not DRAM;
    segments may run in ``layer`` dataflow or any of ``pipelined`` that
    applies (``batch`` needs more than one sample)."""
    held = {} if held is None else held
    arrays = hw.total_arrays - reserved
    body = function.body.block
    ops = tile_ops(function)
    units = hw.total_cores * hw.vector.units_per_core
    half_buffer = hw.buffers.global_bytes // 2
    tensors: list[TensorInfo] = []
    tensor_of: dict[SSAValue, int] = {}
    for arg in body.args:
        tensor_of[arg] = len(tensors)
        tensors.append(TensorInfo(arg.name_hint or "input", tensor_bytes(hw, arg), -1))
    infos: list[OpInfo] = []
    # residual adds an MVM's accumulations do -> their skip
    fused_adds: dict[cim_tile.VectorOp, SSAValue] = {}

    def fetch(
        info: OpInfo, value: SSAValue, gathered: int | None, position: int | None = 0
    ) -> None:
        owner = value.owner
        if isinstance(owner, cim_graph.ConstantOp):
            return
        if isinstance(owner, cim_graph.WeightOp):
            name = owner.weight_name.data
            if gathered is not None:
                cycles = dram_load(hw, gathered * hw.weight_bytes)
                info.fixed += cycles
                info.fixed_dram += cycles
                info.parts.append(("dram", gathered * hw.weight_bytes))
            else:
                elements = num_elements(tensor_shape(value))
                info.segment_loads[name] = dram_load(hw, elements * hw.weight_bytes)
            return
        tensor_id = tensor_of.get(value)
        if tensor_id is None:
            return
        tensor = tensors[tensor_id]
        if tensor.producer >= 0:
            if position is not None:
                info.reads.append((position, tensor.producer))
            if tensor.producer not in info.preds:
                info.preds.append(tensor.producer)
        if tensor.producer == INPUT and tensor.name in held:
            info.fixed += tc(hw, "memory", "buffer", tensor.nbytes, held[tensor.name])
        elif tensor.producer == INPUT:
            cycles = dram_load(hw, tensor.nbytes)
            info.fixed += cycles
            info.fixed_dram += cycles
            info.parts.append(("dram", tensor.nbytes))
        elif tensor.spilled:
            info.fetches.append(tensor_id)
            tensor.consumers.append(info.index)

    def produce(info: OpInfo, value: SSAValue, spill: bool) -> None:
        nbytes = tensor_bytes(hw, value)
        tensor_of[value] = len(tensors)
        info.outputs.append(len(tensors))
        tensors.append(
            TensorInfo(
                value.name_hint or "t",
                nbytes,
                info.index,
                spilled=spill and nbytes > half_buffer,
            )
        )

    for index, op in enumerate(ops):
        info = OpInfo(index, op)
        infos.append(info)
        if isinstance(op, cim_tile.MVMOp):
            fetch(info, op.input, None)
            tiling = op.tiling
            vectors = op.vectors
            plan = plan_chunks(tiling, arrays, hw)
            chunk = plan[0]
            window = mvm_window(op)
            in_bytes = mvm_input_bytes(
                hw, tiling, plan, window, vectors, held_input_scale(op)
            )
            local_bytes = copy_local_bytes(hw, op, chunk, window)
            move_in = interconnect_cost(hw, max(1, in_bytes)).cycles
            groups, n = tiling.field("groups"), tiling.field("n")
            outputs = vectors * groups * n
            scale = op.output_scale
            gather_bytes = sum(chunks_out_bytes(hw, tiling, plan, vectors, scale))
            residual = residual_of(op)
            fused = residual is not None and residual.skip in tensor_of
            if residual is not None and fused:
                # the accumulations stream the skip in and add it
                fused_adds[residual.add] = residual.skip
                fetch(info, residual.skip, None, SKIP)
                gather_bytes += tensor_bytes(hw, residual.skip)
            misaligned = op.misaligned_columns is not None
            extra = merge_ops(
                vectors * whole_copy(tiling).merged_sums, misaligned
            ) + finishing_ops(outputs, (op.bias is not None) + fused, scale)
            gather = interconnect_cost(hw, max(1, gather_bytes)).cycles
            accumulate = vector_cost(hw, extra, units).cycles if extra else 0
            bias_bytes = columns_bias_bytes(hw, tiling, 0, scale)
            if op.bias is not None:
                info.segment_loads[op.bias.data] = dram_load(hw, bias_bytes)
            streamed = len(plan) > 1
            in_dram = _lives_in_dram(op, tensor_of, tensors, held)
            # a streamed weight's chunks move their inputs and sums as they
            # compute (priced per chunk: stream_terms)
            info.fixed += accumulate if streamed else move_in + gather
            info.interconnect += move_in + gather
            info.vector += accumulate
            info.parts.append(("interconnect", max(1, in_bytes)))
            info.parts.append(("interconnect", max(1, gather_bytes)))
            info.parts.append(("vector" if streamed else "accumulate", extra))
            feeds_col2im = bool(op.output.uses) and all(
                isinstance(use.operation, cim_tile.Col2ImOp) for use in op.output.uses
            )
            produce(info, op.output, not feeds_col2im)
            info.mvm = MvmInfo(
                op,
                chunk.arrays,
                vectors,
                chunk.rows,
                chunk.cols,
                program_bytes(hw, chunk, row_indices=row_indices_of(op)),
                program_cost(hw, chunk.arrays, chunk.rows, chunk.cols).cycles,
                streamed,
                window,
                in_dram,
                bias_bytes if op.bias is not None else 0,
                fused,
                tensors[info.outputs[-1]].spilled,
                0 if streamed else extra,
                _input_bytes(op, tensor_of, tensors),
                local_bytes,
            )
            continue
        if isinstance(op, cim_tile.VectorOp) and op in fused_adds:
            # done by the accumulations of the MVM it adds a residual to:
            # the result is that MVM's tensor
            skip = fused_adds[op]
            branch = next(v for v in op.inputs if v is not skip)
            source = tensor_of.get(branch)
            if source is not None:
                tensor_of[op.outputs[0]] = source
                if tensors[source].producer >= 0:
                    info.preds.append(tensors[source].producer)
            continue
        if isinstance(op, cim_tile.VectorOp) and epilogue_source(op) is not None:
            # applied by the accumulations that finish the MVM's outputs:
            # their lanes do the work, the result is their tensor
            _, work = vector_work(op.payload)
            cycles = vector_cost(hw, work, units).cycles
            info.fixed += cycles
            info.vector += cycles
            info.parts.append(("vector", work))
            source = tensor_of.get(op.inputs[0])
            if source is not None:
                tensor_of[op.outputs[0]] = source
                if tensors[source].producer >= 0:
                    info.preds.append(tensors[source].producer)
            continue
        if isinstance(op, cim_tile.VectorOp):
            payload = op.payload
            kind, work = vector_work(payload)
            gathered = gathered_elements(payload)
            serial_loads, dram_loads = info.fixed, info.fixed_dram
            for position, value in enumerate(op.inputs):
                fetch(info, value, gathered if position == 0 else None, position)
            serial_loads = info.fixed - serial_loads
            dram_loads = info.fixed_dram - dram_loads
            if kind not in VIEW_KINDS:
                streams = _operand_streams(hw, op, gathered, tensor_of, tensors, held)
                # one op streams its operands and results while it computes
                # (all from DRAM: one stream, no load before it)
                if streams.from_dram:
                    info.fixed -= serial_loads
                    info.fixed_dram += dram_load(hw, streams.in_bytes) - dram_loads
                out_bytes = sum(tensor_bytes(hw, r) for r in op.outputs)
                info.streams = (work, streams.in_bytes, out_bytes, streams.from_dram)
                compute, stream = _vector_op(hw, *info.streams)
                info.fixed += max(compute.cycles, stream.cycles)
                info.vector += compute.cycles
                info.interconnect += stream.cycles
                for value in op.outputs:
                    produce(info, value, True)
                info.matmul = _matmul_info(
                    hw, op, (compute.cycles, stream.cycles), tensor_of, tensors, held
                )
                continue
            results: Sequence[SSAValue] = list(op.outputs)
            spill = True
        else:
            kind = op.name.split(".")[1]
            work = vector_element_ops(kind, num_elements(tensor_shape(op.output)))
            fetch(info, op.input, None)
            results = [op.output]
            spill = isinstance(op, cim_tile.Col2ImOp)
        cycles = vector_cost(hw, work, units).cycles
        info.fixed += cycles
        info.vector += cycles
        info.parts.append(("vector", work))
        for value in results:
            produce(info, value, spill)
    final = 0
    terminator = body.last_op
    if isinstance(terminator, func.ReturnOp):
        for value in terminator.operands:
            tensor_id = tensor_of.get(value)
            if tensor_id is None or tensors[tensor_id].producer == INPUT:
                continue
            tensor = tensors[tensor_id]
            tensor.outputs += 1
            if not tensor.spilled:
                final += tc(hw, "buffer", "dram", max(1, tensor.nbytes))
    batch = batch_size(function)
    index_of: dict[Operation, int] = {op: index for index, op in enumerate(ops)}
    pipelines: dict[Dataflow, dict[int, BlockPlan]] = {}
    for kind in pipelined:
        if kind == Dataflow.LAYER or (kind == Dataflow.BATCH and batch < 2):
            continue
        plans = pipeline_plans(
            function,
            _everywhere(kind),
            batch,
            lambda op: len(plan_chunks(op.tiling, arrays, hw)) > 1,
        )
        pipelines[kind] = {
            index_of[op]: plan for op, plan in plans.items() if op in index_of
        }
    return Program(hw, infos, tensors, final, batch, pipelines, reserved, dict(held))


# --------------------------------------------------------------------------
# One segment: the numbers of its allocation problem
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpTerm:
    """One tile op of a segment instance (pure numbers)."""

    fixed: int
    preds: tuple[int, ...]
    """Local indices of its producers inside the segment."""
    copies: tuple[tuple[int, int], ...] = ()
    """``(d, mvm_k(d))`` choices of a resident MVM (increasing ``d``)."""
    arrays_per_copy: int = 0
    act: tuple[int, ...] = ()
    """``act_k(a)`` per activation option (empty: 0 for all)."""
    chunk: tuple[int, ...] = ()
    """``chunk_k(M)`` per memory-array option (streamed MVM; empty: none)."""
    chunk_tail: tuple[int, ...] = ()
    """Cycles after its last chunk's load, per memory-array option."""
    bands: int = 1
    """Steps it runs in (a pipelined segment blocks it; 1: whole)."""
    waits: tuple[int, ...] = ()
    """Per producer in ``preds``: how many of the producer's bands its first
    band needs (0: the whole producer); empty: whole producers."""
    replicas: tuple[int, ...] = ()
    """Per choice in ``copies``: the interconnect cycles of programming its
    extra copies, which the segment's moves share (empty: none)."""

    @cached_property
    def _choice(self) -> dict[int, int]:
        return {d: index for index, (d, _) in enumerate(self.copies)}

    def offers(self, copies: int) -> bool:
        """Whether ``copies`` is among :attr:`copies`' counts."""
        return copies in self._choice

    def copy_cycles(self, copies: int) -> int:
        """``mvm_k(d)`` of the choice with ``copies`` copies (0: no choice)."""
        return self.copies[self._choice[copies]][1] if self.copies else 0

    def replica_cycles(self, copies: int) -> int:
        """:attr:`replicas` of the choice with ``copies`` copies."""
        return self.replicas[self._choice[copies]] if self.replicas else 0


@dataclass(frozen=True)
class SegmentInstance:
    """A segment's allocation problem, as numbers only.

    Two segments with equal instances (repeated transformer layers) have the
    same optimal allocation, so the instance is the cache key of the MILP.
    Options are listed with the empty option (0 arrays) first.
    """

    total_arrays: int
    switchable: int
    capacity: int
    """Bytes one memory-mode array holds."""
    ops: tuple[OpTerm, ...]
    fixed_arrays: int
    """Compute arrays not chosen by the copies (resident weights of a
    segment that also streams one)."""
    streams: bool
    """A weight streams through the free arrays (needs at least one)."""
    act_arrays: tuple[int, ...]
    act_bytes: tuple[int, ...]
    act_dram: tuple[int, ...]
    act_memory: tuple[int, ...]
    act_evict: tuple[int, ...]
    pre_arrays: tuple[int, ...]
    pre_bytes: tuple[int, ...]
    pre_dram: tuple[int, ...]
    next_dram: tuple[int, ...]
    """DRAM loads of the next segment's weights not staged (per prefetch
    option)."""
    next_program: tuple[int, ...]
    """The next segment's programs of the weights not staged (per prefetch
    option): the slowest one, or all their bytes over the interconnect."""
    memory_options: tuple[int, ...]
    """Memory-array counts ``M`` the streamed chunks are priced at (the
    index of ``OpTerm.chunk``); empty when nothing streams."""
    chunk_dram: tuple[int, ...]
    """DRAM time a stream takes, per ``memory_options``: its chunk loads and
    the programs and MVMs between them (the lowering issues the next load
    only after them, and other traffic slipping into those gaps holds the
    DRAM, which cannot be preempted, so it delays the stream as much)."""
    dram_fixed: int
    interconnect: int
    vector: int
    switch_cycles: int
    """Both mode switches of a segment that uses memory arrays."""
    final: int
    dataflow: Dataflow = Dataflow.LAYER
    blocks: int = 1
    """Pipeline blocks of a pipelined dataflow (1 for ``layer``)."""
    chunk_buffer: int = 0
    """Memory-mode arrays double-buffering the streamed weight's chunks
    (fixed for this problem; they also need the mode switches)."""
    matmul_arrays: int = 0
    """Free arrays kept for the segment's activation matmuls, which run on
    them (fixed for this problem; 0: on the vector units;
    :data:`STREAM_ARRAYS`: on those its streamed weight passes through)."""
    input_buffer: int = 0
    """Memory-mode arrays holding the input of each weight the segment
    streams (fixed for this problem; they also need the mode switches)."""

    @property
    def fixed_memory(self) -> int:
        """Memory-mode arrays this problem fixes (its ``chunks`` and
        ``inputs`` buffers)."""
        return self.chunk_buffer + self.input_buffer


@dataclass(frozen=True)
class Allocation:
    """Decisions for one segment: copies per op (1 where there is no
    choice), and the indices of the activation and prefetch options."""

    copies: tuple[int, ...]
    act: int = 0
    pre: int = 0


@dataclass(frozen=True)
class SegmentCost:
    """The model's latency of one segment under an allocation."""

    critical_path: int
    dram: int
    memory: int
    body: int
    transition: int
    compute_arrays: int
    memory_arrays: int

    @property
    def total(self) -> int:
        """``body + transition``: what the MILP minimizes."""
        return self.body + self.transition


def copies_choices(
    hw: HardwareTarget, info: MvmInfo, limit: int, total: int
) -> tuple[tuple[int, int], ...]:
    """``(d, mvm_k(d))`` for the copy counts worth having: each one makes the
    MVM faster than every smaller count (a count that does not shorten
    ``ceil(V / d)`` only takes arrays), among :func:`copy_counts` up to
    ``limit`` copies and the ``total`` arrays. ``mvm_k(d)`` includes
    streaming the ``d - 1`` extra copies' weights over the interconnect to
    their arrays (the first copy's is in the segment's entry)."""
    return banded_copy_choices(
        mvm_target(hw, info.op),
        total,
        info.vectors,
        info.rows,
        info.cols,
        info.arrays,
        1,
        limit,
        info.weight_bytes,
        info.accumulate_ops,
        info.local_bytes,
    )


def replica_choices(
    hw: HardwareTarget, choices: Sequence[tuple[int, int]], weight_bytes: int
) -> tuple[int, ...]:
    """:attr:`OpTerm.replicas` of ``choices``: per copy count, the
    interconnect cycles of streaming the extra copies' weights."""
    return tuple(replica_stream_cycles(hw, d, weight_bytes) for d, _ in choices)


def replica_interconnect(inst: SegmentInstance, copies: Sequence[int]) -> int:
    """The segment's moves on the interconnect and every extra copy's
    program with ``copies`` copies of each op: they share it."""
    return inst.interconnect + sum(
        term.replica_cycles(d) for term, d in zip(inst.ops, copies, strict=True)
    )


ALTERNATE_MARGIN = 0.02
"""A weight's chunks alternate between the halves of the free arrays only
when that streams it faster by more than this share: the replay of
:func:`stream_ops` does not see an MVM's input crossing the bus while the
next chunk's program does (twice the chunks read the input twice as often)."""


@dataclass(frozen=True)
class _StreamOp:
    """One op the lowering emits to stream a weight (:func:`stream_ops`)."""

    cycles: int
    deps: tuple[int, ...]
    """Earlier ops (indices) it waits for."""
    resource: Literal["dram", "bus", "arrays"]
    """What it holds: DRAM (loads, an MVM streaming its input from DRAM;
    on a bus the interconnect too, which DRAM's bytes cross), the
    interconnect (programs, additions), or only its arrays (other MVMs)."""
    kind: Literal["load", "program", "mvm", "add", "move"]


def stream_ops(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    vectors: int,
    available: int,
    half: int,
    window: Window | None,
    input_in_dram: bool,
    finishing: tuple[int, bool],
    output_in_dram: bool = False,
    operand: Literal["weight", "buffer", "dram"] = "weight",
    input_scale: Fraction | None = None,
    row_indices: RowIndices = NO_ROW_INDICES,
    output_scale: Fraction | None = None,
    misaligned: bool = False,
    staged: tuple[int, int] = (0, 0),
    alternates: bool = False,
) -> tuple[list[_StreamOp], int]:
    """The loads, programs and MVMs ``run_chunks`` emits for a weight streamed
    through ``available`` arrays, in its order, and the chunk count: per
    chunk, its program once the chunk before has computed (from the half of
    a ``chunks`` buffer of ``half`` arrays that prefetched it, else straight
    from DRAM in one burst), then the load of the next chunk into the other
    half (once the chunk before it there was programmed), then the chunk's
    MVM, which streams the input
    rows its arrays hold (from DRAM when the input lives there) and its
    sums out, then (unless it finishes its outputs alone) its cores add its
    partial sums, the running sum of the chunks before it over the same
    columns and the bias (``finishing``: the weight's bias bytes, 0 for
    none, and whether a fused residual is added; a chunk reads its own
    columns' bias), and
    the next chunk's program waits for that. A chunk that alone covers its
    columns, whose cores' partial sums meet in the global buffer, runs its
    vectors in the parts whose partial sums fit half of it
    (:func:`~cimflow.lowering.state.chunk_part_count`), each MVM after the one
    before and each part added as soon as it is out. The loads go in DRAM order,
    one after another (the programs from DRAM among them). Partial sums
    wait where :func:`~cimflow.lowering.state.partials_fit` puts them with
    the whole global buffer free, a running sum with the first partial
    sums over its columns; finished outputs go to DRAM when
    ``output_in_dram``. With ``operand`` ``buffer`` or ``dram`` the chunks
    are an activation's (an activation matmul on arrays): each is programmed
    from where that tensor lives, at the activation width, once the chunk
    before has computed, outside DRAM order and with no ``chunks`` buffer.
    ``input_scale``: inputs per held weight row (:func:`held_input_scale`;
    None: one); ``row_indices``: a compacted weight's, whose held rows'
    indices its chunks carry (:func:`row_indices_of`); ``output_scale``:
    outputs written per held column (``cim_tile.mvm.output_scale``);
    ``misaligned``: its row tiles hold different columns; ``staged``: the
    arrays of an ``inputs`` buffer and the input's bytes, when an input in
    DRAM is loaded into it first and every chunk's MVM streams it from
    there (the arrays sit past the free ones)."""
    biased, residual = finishing[0] > 0, finishing[1]
    sums_in_dram: dict[int, bool] = {}
    # the global buffer beside the weight's bias and its outputs kept there
    every_output = vectors * tiling.field("groups") * tiling.field("n")
    kept = 0 if output_in_dram else written_outputs(every_output, output_scale)
    free_bytes = hw.buffers.global_bytes - finishing[0] - kept * hw.activation_bytes
    stream = chunk_stream(hw, tiling, 0, available, alternates)
    chunks = stream.chunks
    capacity = half * hw.dual_mode.memory_capacity_bytes
    ends = chunk_ends(chunks)
    ops: list[_StreamOp] = []
    staging, input_bytes = staged if input_in_dram else (0, 0)
    input_ready: tuple[int, ...] = ()
    if staging:
        ops.append(
            _StreamOp(
                tc(hw, "dram", "memory", max(1, input_bytes), staging),
                (),
                "dram",
                "load",
            )
        )
        input_ready = (0,)
    input_arrays = ((available, available + staging),) if staging else ()
    last_load: tuple[int, ...] = ()
    # the move of the bias each set of cores keeps, by the cores
    kept_biases: dict[tuple[tuple[int, int], ...], int] = {}
    prefetched: dict[int, int] = {}
    programs_of: list[tuple[int, ...]] = []
    mvm: tuple[int, ...] = ()
    chunk_end: list[tuple[int, ...]] = []
    # per running sum (by its first column), the last addition into it
    summed: dict[int, tuple[int, ...]] = {}
    for index, chunk in enumerate(chunks):
        if index:
            chunk_end.append(mvm)
        reused = stream.reuses(index)
        mvm = () if reused is None else chunk_end[reused]
        start = stream.starts[index]
        cores = cores_of_arrays(hw, ((start, start + chunk.arrays),))
        nbytes = program_bytes(hw, chunk, operand != "weight", row_indices)
        # an activation's chunk from where it lives, once the chunk before
        # has computed; a weight's from the half that prefetched it, else
        # in one burst from DRAM (in DRAM order with the loads)
        from_half = operand == "weight" and index in prefetched
        if operand != "weight":
            feed, deps = operand, mvm
        elif from_half:
            feed, deps = "memory", (prefetched[index], *mvm)
        else:
            feed, deps = "dram", (*last_load, *mvm)
        cycles = program_op_cost(
            hw,
            chunk.arrays,
            chunk.rows,
            chunk.cols,
            cores=cores,
            feed=feed,
            in_bytes=nbytes,
            feed_arrays=((0, half),) if from_half else (),
        ).cycles
        ops.append(
            _StreamOp(cycles, deps, "dram" if feed == "dram" else "bus", "program")
        )
        programs = (len(ops) - 1,)
        if feed == "dram" and operand == "weight":
            last_load = programs
        programs_of.append(programs)
        following = chunks[index + 1] if index + 1 < len(chunks) else None
        if following is not None and half > 0:
            after = program_bytes(hw, following, row_indices=row_indices)
            if after <= capacity:  # the next chunk into the other half
                emptied = programs_of[index - 1] if index >= 1 else ()
                ops.append(
                    _StreamOp(
                        tc(hw, "dram", "memory", after, half),
                        (*last_load, *emptied),
                        "dram",
                        "load",
                    )
                )
                last_load = (len(ops) - 1,)
                prefetched[index + 1] = len(ops) - 1
        layout = copy_layout(hw, tiling, chunk, start)
        cores = tuple(runs_of(layout.cores))
        first, last = ends[index]
        in_cores = first and last and not layout.cross_core
        parts = [(0, vectors)]
        if first and last and not in_cores:  # MvmLowering.chunk_parts
            whole_adds = chunk_adds(
                chunk, vectors, True, True, biased + residual, output_scale, misaligned
            )
            streamed = chunk_out_bytes(
                hw, layout, vectors, True, True, whole_adds, output_scale
            )
            parts = split_span(
                (0, vectors), chunk_part_count(streamed, vectors, free_bytes)
            )
        source: Literal["memory", "dram", "buffer"] = (
            "memory" if staging else "dram" if input_in_dram else "buffer"
        )
        held: Literal["dram", "bus", "arrays"] = (
            "bus" if staging else "dram" if input_in_dram else "arrays"
        )
        part_mvm: tuple[int, ...] = ()
        previous: tuple[int, int] | None = None
        bias_bytes = columns_bias_bytes(hw, tiling, chunk.n1 - chunk.n0, output_scale)
        bias_kept = biased and keeps_bias(
            hw.buffers.local_bytes, 0, bias_bytes, bias_bytes == finishing[0]
        )
        for part in parts:
            count = part[1] - part[0]
            feed = mvm_feed(
                hw,
                layout,
                part,
                window,
                previous,
                input_scale=input_scale,
                output_scale=output_scale,
                misaligned=misaligned,
            )
            previous = part
            outputs = count * (chunk.n1 - chunk.n0)
            adds = chunk_adds(
                chunk, count, first, last, biased + residual, output_scale, misaligned
            )
            streamed = chunk_out_bytes(
                hw, layout, count, first, last, adds, output_scale
            )
            partials_in_dram = False
            if adds and not in_cores:
                room = outputs * hw.accumulator_bytes if first and not last else 0
                partials_in_dram = sums_in_dram.get(chunk.n0, False) or not (
                    partials_fit(streamed, room, hw.buffers.global_bytes)
                )
                if first and not last:
                    sums_in_dram[chunk.n0] = partials_in_dram
            sums_to_dram = partials_in_dram if adds else output_in_dram
            ops.append(
                _StreamOp(
                    mvm_op_cost(
                        hw,
                        chunk.arrays,
                        count,
                        chunk.rows,
                        chunk.cols,
                        local_bytes=feed.expanded,
                        feed=source,
                        in_bytes=max(1, feed.in_bytes),
                        in_links=feed.in_links,
                        out_bytes=streamed,
                        cores=cores,
                        feed_arrays=input_arrays,
                        out_to="dram" if sums_to_dram else "buffer",
                    ).cycles,
                    (*programs, *input_ready, *part_mvm),
                    held,
                    "mvm",
                )
            )
            part_mvm = mvm = (len(ops) - 1,)
            if not adds:
                continue
            # add_in_cores or add_chunk
            written = written_outputs(outputs, output_scale)
            finishing_bytes = (bias_bytes if biased and not bias_kept else 0) + (
                written * hw.activation_bytes if residual else 0
            )
            kept_bias: tuple[int, ...] = ()
            if bias_kept and last:  # moved into the cores once (MvmLowering.hold_bias)
                if cores not in kept_biases:
                    move = interconnect_cost(hw, bias_bytes, cores).cycles
                    ops.append(_StreamOp(move, (), "bus", "move"))
                    kept_biases[cores] = len(ops) - 1
                kept_bias = (kept_biases[cores],)
            in_bytes, out_bytes = chunk_add_bytes(
                hw,
                outputs,
                streamed,
                (first, last, in_cores),
                finishing_bytes,
                output_scale,
            )
            out_in_dram = output_in_dram if last else partials_in_dram
            ops.append(
                _StreamOp(
                    concurrent_cost(
                        *vector_op_parts(
                            hw,
                            adds,
                            cores,
                            in_bytes,
                            out_bytes,
                            in_from="dram" if partials_in_dram else "buffer",
                            out_to="dram" if out_in_dram else "buffer",
                        )
                    ).cycles,
                    (*part_mvm, *kept_bias, *summed.get(chunk.n0, ())),
                    "dram" if partials_in_dram or out_in_dram else "bus",
                    "add",
                )
            )
            mvm = (len(ops) - 1,)
            if not (first and last):  # the next addition into the sum waits
                summed[chunk.n0] = mvm
    return ops, len(chunks)


@lru_cache(maxsize=4096)
def _stream_terms(
    hw: HardwareTarget,
    tiling: cim_tile.TilingAttr,
    vectors: int,
    available: int,
    half: int = 0,
    window: Window | None = None,
    input_in_dram: bool = False,
    finishing: tuple[int, bool] = (0, False),
    output_in_dram: bool = False,
    operand: Literal["weight", "buffer", "dram"] = "weight",
    input_scale: Fraction | None = None,
    row_indices: RowIndices = NO_ROW_INDICES,
    output_scale: Fraction | None = None,
    misaligned: bool = False,
    staged: tuple[int, int] = (0, 0),
) -> tuple[int, int, int, int]:
    # a weight's chunks from DRAM may alternate between the halves of the
    # arrays (a chunks buffer prefetches them instead); the faster way wins,
    # on all the arrays when neither is by the margin

    def replayed(alternates: bool) -> tuple[tuple[int, int, int, int], int]:
        """The stream's terms, and the cycles of its programs."""
        ops, chunks = stream_ops(
            hw,
            tiling,
            vectors,
            available,
            half,
            window,
            input_in_dram,
            finishing,
            output_in_dram,
            operand,
            input_scale,
            row_indices,
            output_scale,
            misaligned,
            staged,
            alternates,
        )
        programs = sum(op.cycles for op in ops if op.kind == "program")
        return _replay_stream(ops, chunks, hw), programs

    one_run, programs = replayed(False)
    if (
        half
        or operand != "weight"
        # an MVM reading its input from DRAM takes the channel the next
        # chunk's program needs: halves would read the input twice as often
        or (input_in_dram and not staged[0])
        # bound by its programs, one after another in DRAM order:
        # alternating chunks program the same bytes in more bursts
        or one_run[0] * (1 - ALTERNATE_MARGIN) <= programs
        or True not in stream_alternatives(hw, tiling, available)
    ):
        return one_run
    halves, _ = replayed(True)
    return halves if halves[0] < one_run[0] * (1 - ALTERNATE_MARGIN) else one_run


def _replay_stream(
    ops: list[_StreamOp], chunks: int, hw: HardwareTarget
) -> tuple[int, int, int, int]:
    """:func:`stream_terms` of the ops :func:`stream_ops` emits."""
    # each op starts once its deps are done and what it holds is free, the
    # one ready first (then the one emitted first) taking it first; on a bus
    # the bytes an op moves to or from DRAM cross it too
    end = [0] * len(ops)
    free = {"dram": 0, "bus": 0}  # an MVM's arrays are its own
    holds: dict[str, tuple[str, ...]] = {
        "dram": ("dram", "bus") if hw.interconnect.topology == "bus" else ("dram",),
        "bus": ("bus",),
        "arrays": (),
    }
    waiting = [len(op.deps) for op in ops]
    users: list[list[int]] = [[] for _ in ops]
    for index, op in enumerate(ops):
        for dep in op.deps:
            users[dep].append(index)
    ready = [(0, index) for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    last_load = 0
    while ready:
        at, index = heapq.heappop(ready)
        op = ops[index]
        held = holds[op.resource]
        start = max([at, *(free[resource] for resource in held)])
        end[index] = start + op.cycles
        for resource in held:
            free[resource] = end[index]
        if op.resource == "dram" and op.kind in ("load", "program"):  # DRAM order
            last_load = max(last_load, end[index])
        for user in users[index]:
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, (max(end[d] for d in ops[user].deps), user))
    finish = max(end, default=0)
    return finish, last_load, chunks, finish - last_load


def stream_terms(
    hw: HardwareTarget, mvm: MvmInfo, available: int, half: int = 0, staging: int = 0
) -> tuple[int, int, int, int]:
    """``chunk_k`` cycles, the end of its last transfer in DRAM order (a
    load, or a program straight from DRAM), the chunk count and the cycles
    after that transfer, of streaming ``mvm`` through ``available`` arrays
    (:func:`stream_ops`, each op once its deps are done and its DRAM
    channel or bus is free); with ``half`` > 0 a ``chunks`` buffer of two
    halves of ``half`` arrays takes each next chunk that fits a half from
    DRAM while the current one programs and computes; with ``staging`` > 0
    an ``inputs`` buffer of that many arrays holds its input when it lives
    in DRAM and fits (:func:`staged_input`)."""
    return _stream_terms(
        mvm_target(hw, mvm.op),
        mvm.op.tiling,
        mvm.vectors,
        available,
        half,
        mvm.window,
        mvm.input_in_dram,
        (mvm.bias_bytes, mvm.residual),
        mvm.output_in_dram,
        input_scale=held_input_scale(mvm.op),
        row_indices=row_indices_of(mvm.op),
        output_scale=mvm.op.output_scale,
        misaligned=mvm.op.misaligned_columns is not None,
        staged=staged_input(hw, mvm, staging),
    )


def input_arrays_needed(hw: HardwareTarget, mvm: MvmInfo) -> int:
    """Arrays an ``inputs`` buffer needs to hold a streamed weight's input
    (0: its input does not live in DRAM, or is a window's expansion, or
    the target has no memory mode)."""
    capacity = hw.dual_mode.memory_capacity_bytes
    if not mvm.streamed or not mvm.input_in_dram or mvm.window is not None:
        return 0
    return arrays_to_hold(mvm.input_bytes, capacity) if capacity > 0 else 0


def staged_input(hw: HardwareTarget, mvm: MvmInfo, staging: int) -> tuple[int, int]:
    """``(arrays, bytes)`` of ``mvm``'s input held in an ``inputs`` buffer
    of ``staging`` arrays, as the lowering stages it
    (:meth:`~cimflow.lowering.buffers.BufferPlacement.stage_input`); (0, 0)
    when it is not."""
    needed = input_arrays_needed(hw, mvm)
    if not needed or staging < needed:
        return (0, 0)
    return (staging, max(1, mvm.input_bytes))


STREAM_ARRAYS = -1
"""``SegmentInstance.matmul_arrays`` of activation matmuls that take the free
arrays a streamed weight passes through (between its chunks)."""


MATMUL_ARRAY_SHARES = (1, 2, 4)
"""Free arrays an activation matmul is priced on, as shares of the arrays
its right operand takes whole (each share one more problem to solve)."""


EVERY_COPY_COUNT_TO = 32
"""Copy counts priced one by one up to here; beyond, about 1/8 apart (the
MILP's binaries grow with the counts, and a copy more of 40 changes little)."""


def copy_counts(top: int) -> Iterator[int]:
    """The copy counts worth pricing up to ``top``: every count up to
    :data:`EVERY_COPY_COUNT_TO`, then counts about 1/8 apart, and ``top``."""
    d = 1
    while d < top:
        yield d
        d = d + 1 if d < EVERY_COPY_COUNT_TO else max(d + 1, math.ceil(d * 9 / 8))
    yield top


def copies_cycles(
    hw: HardwareTarget,
    vectors: int,
    rows: int,
    cols: int,
    copies: int,
    weight_bytes: int,
    accumulate_ops: int,
    arrays: int,
    local_bytes: int = 0,
) -> int:
    """``mvm_k(d)``: ``vectors`` split over ``copies`` copies of a weight of
    ``weight_bytes``, run whole (:func:`copies_run_cycles`, one band), and
    the extra copies' weights streaming over the interconnect to their
    arrays."""
    cycles = copies_run_cycles(
        hw, vectors, 1, copies, rows, cols, accumulate_ops, arrays, local_bytes
    )
    return cycles + replica_stream_cycles(hw, copies, weight_bytes)


def copies_run_cycles(
    hw: HardwareTarget,
    vectors: int,
    steps: int,
    copies: int,
    rows: int,
    cols: int,
    accumulate_ops: int,
    arrays: int,
    local_bytes: int = 0,
) -> int:
    """An MVM run in ``steps`` bands on ``copies`` copies as the lowering
    runs it: the bands one after another, each split between the copies
    (:func:`~cimflow.lowering.rules.banded_mvm_cycles`, its busiest core
    reading ``local_bytes`` a vector from its local buffer), and each
    band's share of ``accumulate_ops`` on the copies' cores
    (:func:`accumulate_cycles`)."""
    per_band = math.ceil(accumulate_ops / steps)
    cycles = banded_mvm_cycles(hw, vectors, steps, copies, rows, cols, local_bytes)
    return cycles + steps * accumulate_cycles(hw, per_band, copies, arrays)


@dataclass
class Segment:
    """A segment of a program: tile ops ``[first, stop)``."""

    program: Program
    first: int
    stop: int
    next_first: int | None = None
    """First op of the next segment (whose weights a buffer prefetches)."""
    next_stop: int | None = None
    banded: frozenset[int] = frozenset()
    """Tensors made here in bands (a pipelined dataflow) whose bands the
    lowering keeps in a ring of the global buffer, so they are never
    spilled (:meth:`banded_tensors`)."""

    @property
    def hw(self) -> HardwareTarget:
        return self.program.hw

    @property
    def infos(self) -> list[OpInfo]:
        return self.program.ops[self.first : self.stop]

    @property
    def is_last(self) -> bool:
        return self.stop >= len(self.program.ops)

    def resident(self) -> list[MvmInfo]:
        return [i.mvm for i in self.infos if i.mvm is not None and not i.mvm.streamed]

    def streamed(self) -> list[MvmInfo]:
        return [i.mvm for i in self.infos if i.mvm is not None and i.mvm.streamed]

    def next_resident(self) -> list[MvmInfo]:
        if self.next_first is None or self.next_stop is None:
            return []
        return [
            i.mvm
            for i in self.program.ops[self.next_first : self.next_stop]
            if i.mvm is not None and not i.mvm.streamed
        ]

    # -- activation buffer --------------------------------------------------

    def spilled_here(self) -> list[int]:
        """Spilled tensors produced in the segment, in the order the
        lowering places them."""
        return [
            t
            for i in self.infos
            for t in i.outputs
            if self.program.tensors[t].spilled and t not in self.banded
        ]

    def activation_terms(
        self, arrays: int
    ) -> tuple[tuple[int, ...], int, int, int, int]:
        """``act_k(a)`` per op, held bytes, DRAM, memory and eviction cycles
        with an activations buffer of ``arrays`` arrays (first fit)."""
        hw = self.hw
        tensors = self.program.tensors
        free = arrays * hw.dual_mode.memory_capacity_bytes
        in_memory: set[int] = set()
        held = 0
        for t in self.spilled_here():
            nbytes = tensors[t].nbytes
            if arrays > 0 and free >= nbytes:
                in_memory.add(t)
                free -= nbytes
                held += nbytes
        dram = memory = evict = 0
        act: list[int] = []
        for info in self.infos:
            cycles = 0
            for t in info.outputs:
                tensor = tensors[t]
                if not tensor.spilled or t in self.banded:
                    continue
                if t in in_memory:
                    cost = tc(hw, "buffer", "memory", tensor.nbytes, arrays)
                    memory += cost
                else:
                    cost = tc(hw, "buffer", "dram", tensor.nbytes)
                    dram += cost
                cycles += cost
            for t in info.fetches:
                tensor = tensors[t]
                nbytes = max(1, tensor.nbytes)
                if not self.first <= tensor.producer < self.stop or t in self.banded:
                    continue  # an earlier segment's (in fixed), or in the buffer
                if t in in_memory:
                    cost = tc(hw, "memory", "buffer", nbytes, arrays)
                    memory += cost
                else:
                    cost = tc(hw, "dram", "buffer", nbytes)
                    dram += cost
                cycles += cost
            act.append(cycles)
        for t in in_memory:
            tensor = tensors[t]
            if tensor.outputs or any(c >= self.stop for c in tensor.consumers):
                count = tensor.outputs if self.is_last else 1
                evict += count * tc(hw, "memory", "dram", max(1, tensor.nbytes), arrays)
        return tuple(act), held, dram, memory, evict

    # -- weights buffer -----------------------------------------------------

    def next_streams(self) -> bool:
        if self.next_first is None or self.next_stop is None:
            return False
        return any(
            i.mvm is not None and i.mvm.streamed
            for i in self.program.ops[self.next_first : self.next_stop]
        )

    def prefetch_terms(self, arrays: int) -> tuple[int, int, int, int]:
        """Held bytes, DRAM cycles of the prefetch, and the next segment's
        DRAM loads and programs with a ``weights`` buffer of ``arrays``
        arrays staging weights in place (:func:`staged_in_place`)."""
        hw = self.hw
        upcoming = self.next_resident()
        by_weight: dict[str, MvmInfo] = {}
        for mvm in upcoming:
            by_weight.setdefault(mvm.op.weight.data, mvm)
        staged = staged_in_place(
            hw,
            arrays,
            [(name, m.arrays) for name, m in by_weight.items()],
            self.next_streams(),
        )
        mvms = [by_weight[name] for name in staged]
        held = sum(m.weight_bytes for m in mvms)
        prefetch = sum(tc(hw, "dram", "memory", m.weight_bytes, m.arrays) for m in mvms)
        dram, program = entry_parts(hw, upcoming, frozenset(staged))
        return held, prefetch, dram, program

    # -- the instance -------------------------------------------------------

    def base_durations(self) -> list[int]:
        """Allocation-independent cycles per op: ``fixed`` plus loads of
        spilled tensors made in earlier segments (from DRAM)."""
        tensors = self.program.tensors
        durations: list[int] = []
        for info in self.infos:
            cycles = info.fixed
            for t in info.fetches:
                if not self.first <= tensors[t].producer < self.stop:
                    cycles += dram_load(self.hw, tensors[t].nbytes)
            durations.append(cycles)
        return durations

    def fixed_dram(self) -> int:
        """DRAM cycles no decision of this segment changes."""
        tensors = self.program.tensors
        loads: dict[str, int] = {}
        cycles = 0
        for info in self.infos:
            cycles += info.fixed_dram
            loads.update(info.segment_loads)
            for t in info.fetches:
                if not self.first <= tensors[t].producer < self.stop:
                    cycles += dram_load(self.hw, tensors[t].nbytes)
        return cycles + sum(loads.values())

    def instance(
        self,
        max_copies: int,
        memory: bool = True,
        chunk_buffer: int = 0,
        matmul_arrays: int = 0,
        input_buffer: int = 0,
    ) -> SegmentInstance:
        """The segment's allocation problem (options pruned: an option that
        takes more arrays than another and is nowhere cheaper is dropped);
        with ``memory`` False, all compute (no memory-array options); with
        ``chunk_buffer`` arrays double-buffering its streamed weight; with
        ``matmul_arrays`` free arrays kept for its activation matmuls
        (:data:`STREAM_ARRAYS`: the free arrays its streamed weight passes
        through, one after the other); with ``input_buffer`` arrays holding
        its streamed weights' inputs (:func:`staged_input`)."""
        hw = self.hw
        total = self.program.arrays - max(0, matmul_arrays)
        switchable = min(self.program.switchable, total) if memory else 0
        streams = bool(self.streamed())
        resident = self.resident()
        least = sum(m.arrays for m in resident)
        fixed_arrays = least if streams else 0
        memory_room = (
            min(switchable, total - (1 if streams else 0))
            - least
            - chunk_buffer
            - input_buffer
        )
        half = chunk_buffer // 2
        saturate = _saturation(hw)

        def streaming(memory: int) -> int:
            """The free arrays a streamed weight passes through."""
            return total - fixed_arrays - memory - chunk_buffer - input_buffer

        # activation options
        act_opts: list[tuple[int, tuple[int, ...], int, int, int, int]] = []
        spilled = self.spilled_here()
        sizes = [self.program.tensors[t].nbytes for t in spilled]
        candidates = (
            _candidates(
                sizes, saturate, memory_room, hw.dual_mode.memory_capacity_bytes
            )
            if switchable > 0
            else [0]
        )
        for a in candidates:
            act, held, dram, in_memory, evict = self.activation_terms(a)
            key = (*act, dram, in_memory, evict)
            if any(
                all(x >= y for x, y in zip(key, (*o[1], o[3], o[4], o[5]), strict=True))
                for o in act_opts
            ):
                continue
            act_opts.append((a, act, held, dram, in_memory, evict))
        # prefetch options
        pre_opts: list[tuple[int, int, int, int, int]] = []
        upcoming: list[MvmInfo] = []
        for mvm in self.next_resident():
            if all(m.op.weight.data != mvm.op.weight.data for m in upcoming):
                upcoming.append(mvm)
        # a staged weight takes its copy's whole arrays
        capacity = hw.dual_mode.memory_capacity_bytes
        sizes = [m.arrays * capacity for m in upcoming]
        candidates = (
            _candidates(sizes, saturate, memory_room, capacity)
            if switchable > 0 and stages_in_place(hw)
            else [0]
        )
        for p in candidates:
            held, prefetch, dram, program = self.prefetch_terms(p)
            if any(
                prefetch >= o[2] and dram >= o[3] and program >= o[4] for o in pre_opts
            ):
                continue
            pre_opts.append((p, held, prefetch, dram, program))
        # streamed chunks per memory-array count
        memory_options: tuple[int, ...] = ()
        chunk_dram: tuple[int, ...] = ()
        stream_ops = {id(m.op): m for m in self.streamed()}
        if streams:
            memory_options = tuple(
                sorted(
                    {
                        a[0] + p[0]
                        for a in act_opts
                        for p in pre_opts
                        if a[0] + p[0] <= memory_room
                    }
                )
            )
            chunk_dram = tuple(
                sum(
                    stream_terms(hw, m, streaming(memory), half, input_buffer)[0]
                    for m in stream_ops.values()
                )
                for memory in memory_options
            )
        durations = self.base_durations()
        vector = sum(i.vector for i in self.infos)
        interconnect = sum(i.interconnect for i in self.infos)
        on_free: dict[int, tuple[int, ...]] = {}
        if matmul_arrays:
            for local, info in enumerate(self.infos):
                if info.matmul is None:
                    continue
                vector -= info.matmul.vector
                interconnect -= info.matmul.interconnect
                # its cycles on arrays replace those on the vector units and
                # the loads of its operands (which the chunks' programs and
                # MVMs stream from where they live)
                if matmul_arrays == STREAM_ARRAYS:
                    durations[local] = 0
                    on_free[local] = tuple(
                        matmul_cycles(
                            hw,
                            info.matmul,
                            streaming(memory),
                        )
                        for memory in memory_options
                    )
                else:
                    durations[local] = matmul_cycles(hw, info.matmul, matmul_arrays)
        terms: list[OpTerm] = []
        for local, info in enumerate(self.infos):
            preds = tuple(
                p - self.first for p in info.preds if self.first <= p < self.stop
            )
            act = tuple(o[1][local] for o in act_opts)
            if not any(act):
                act = ()
            mvm = info.mvm
            if mvm is not None and mvm.streamed:
                streams_at = [
                    stream_terms(hw, mvm, streaming(memory), half, input_buffer)
                    for memory in memory_options
                ]
                terms.append(
                    OpTerm(
                        durations[local],
                        preds,
                        act=act,
                        chunk=tuple(t[0] for t in streams_at),
                        chunk_tail=tuple(t[3] for t in streams_at),
                    )
                )
            elif mvm is not None:
                choices = (
                    (
                        (
                            1,
                            copies_run_cycles(
                                mvm_target(hw, mvm.op),
                                mvm.vectors,
                                1,
                                1,
                                mvm.rows,
                                mvm.cols,
                                mvm.accumulate_ops,
                                mvm.arrays,
                                mvm.local_bytes,
                            ),
                        ),
                    )
                    if streams
                    else copies_choices(hw, mvm, max_copies, total)
                )
                terms.append(
                    OpTerm(
                        durations[local],
                        preds,
                        choices,
                        0 if streams else mvm.arrays,
                        act,
                        replicas=replica_choices(hw, choices, mvm.weight_bytes),
                    )
                )
            else:
                terms.append(
                    OpTerm(
                        durations[local], preds, act=act, chunk=on_free.get(local, ())
                    )
                )
        return SegmentInstance(
            total_arrays=total,
            switchable=self.program.switchable,
            capacity=hw.dual_mode.memory_capacity_bytes,
            ops=tuple(terms),
            fixed_arrays=fixed_arrays,
            streams=streams,
            act_arrays=tuple(o[0] for o in act_opts),
            act_bytes=tuple(o[2] for o in act_opts),
            act_dram=tuple(o[3] for o in act_opts),
            act_memory=tuple(o[4] for o in act_opts),
            act_evict=tuple(o[5] for o in act_opts),
            pre_arrays=tuple(o[0] for o in pre_opts),
            pre_bytes=tuple(o[1] for o in pre_opts),
            pre_dram=tuple(o[2] for o in pre_opts),
            next_dram=tuple(o[3] for o in pre_opts),
            next_program=tuple(o[4] for o in pre_opts),
            memory_options=memory_options,
            chunk_dram=chunk_dram,
            dram_fixed=self.fixed_dram(),
            interconnect=interconnect,
            vector=vector,
            switch_cycles=2 * switch_cost(hw, 1).cycles,
            final=self.program.final if self.is_last else 0,
            chunk_buffer=chunk_buffer,
            matmul_arrays=matmul_arrays,
            input_buffer=input_buffer,
        )

    def _blocked(self, kind: Dataflow) -> dict[int, BlockPlan]:
        plans = self.program.pipelines.get(kind, {})
        return {i: plans[i] for i in range(self.first, self.stop) if i in plans}

    def pipeline_blocks(self, kind: Dataflow) -> list[int]:
        """Block counts worth pricing for ``kind``: ``rows``, the feature-map
        rows or sequence positions of the segment's longest blocked op, cut
        to at most ``ROW_BAND_CHOICES`` bands; ``batch``, one per sample."""
        local = self._blocked(kind)
        if not local:
            return []
        if kind == Dataflow.BATCH:
            return [self.program.batch] if self.program.batch > 1 else []
        rows = [
            r
            for i, plan in local.items()
            if (r := feature_rows(self.program.ops[i].op, plan.output)) is not None
        ]
        longest = max(rows, default=1)
        return sorted({c for c in (min(b, longest) for b in ROW_BAND_CHOICES) if c > 1})

    def pipelined_instance(
        self,
        layer: SegmentInstance,
        kind: Dataflow,
        blocks: int,
        max_copies: int,
        unbanded: frozenset[int] = frozenset(),
    ) -> SegmentInstance | None:
        """The segment's allocation problem (``layer``: the same in layer
        dataflow) when it runs pipelined by ``kind`` in ``blocks`` bands, or
        None when no op runs in more than one band (a streamed weight runs
        whole, and so do the ops of ``unbanded``: activation matmuls on arrays;
        the ops around them may still run in bands)."""
        local = {i: p for i, p in self._blocked(kind).items() if i not in unbanded}
        steps = {i: bands(plan.output.rows, blocks) for i, plan in local.items()}
        terms: list[OpTerm] = []
        extra: dict[Part, int] = {"interconnect": 0, "vector": 0, "dram": 0}
        for term, info in zip(layer.ops, self.infos, strict=True):
            plan = local.get(info.index)
            if plan is None or len(steps[info.index]) < 2:
                terms.append(term)
                continue
            count = len(steps[info.index])
            duration, banded = banded_parts(self.hw, info, count)
            whole = duration - info.fixed
            for part in extra:
                extra[part] += banded[part]
            extra["interconnect"] -= info.interconnect
            extra["vector"] -= info.vector
            extra["dram"] -= info.fixed_dram
            first_band = steps[info.index][0]
            waits = tuple(
                _band_wait(
                    [
                        _rows_read(plan, local.get(pred), pos, first_band)
                        for pos, j in info.reads
                        if j == pred
                    ],
                    steps.get(pred),
                )
                for pred in (p + self.first for p in term.preds)
            )
            copies, replicas = term.copies, term.replicas
            if copies and info.mvm is not None:
                copies = banded_copy_choices(
                    mvm_target(self.hw, info.mvm.op),
                    layer.total_arrays,
                    info.mvm.vectors,
                    info.mvm.rows,
                    info.mvm.cols,
                    info.mvm.arrays,
                    count,
                    max_copies,
                    info.mvm.weight_bytes,
                    info.mvm.accumulate_ops,
                    info.mvm.local_bytes,
                )
                replicas = replica_choices(self.hw, copies, info.mvm.weight_bytes)
            terms.append(
                replace(
                    term,
                    fixed=term.fixed + whole,
                    copies=copies,
                    replicas=replicas,
                    bands=count,
                    waits=waits,
                )
            )
        if all(t.bands == 1 for t in terms):
            return None
        return replace(
            layer,
            ops=tuple(terms),
            dram_fixed=layer.dram_fixed + extra["dram"],
            interconnect=layer.interconnect + extra["interconnect"],
            vector=layer.vector + extra["vector"],
            dataflow=kind,
            blocks=blocks,
        )

    def instances(self, max_copies: int, memory: bool = True) -> list[SegmentInstance]:
        """The segment's problem in ``layer`` dataflow, then in each
        pipelined dataflow that applies; each with its activation matmuls on
        the vector units and on each of :meth:`matmul_array_choices`."""
        choices = [0, *self.matmul_array_choices()]
        layers = [self.instance(max_copies, memory, matmul_arrays=a) for a in choices]
        found = list(layers)
        if memory and self.streamed():
            buffer = self.chunk_buffer_arrays()
            if buffer:
                found.append(self.instance(max_copies, memory, buffer))
            staging = self.input_buffer_arrays()
            if staging:
                found.append(self.instance(max_copies, memory, input_buffer=staging))
        matmuls = frozenset(i.index for i in self.infos if i.matmul is not None)
        for kind in self.program.pipelines:
            for blocks in self.pipeline_blocks(kind):
                banded = self.banded_tensors(kind, blocks)
                segment = replace(self, banded=banded)
                for arrays, layer in zip(choices, layers, strict=True):
                    base = (
                        segment.instance(max_copies, memory, matmul_arrays=arrays)
                        if banded
                        else layer
                    )
                    # a matmul on arrays runs whole, once its operands are
                    pipelined = segment.pipelined_instance(
                        base,
                        kind,
                        blocks,
                        max_copies,
                        matmuls if arrays else frozenset(),
                    )
                    if pipelined is not None:
                        found.append(pipelined)
        return found

    def matmul_array_choices(self) -> list[int]:
        """Free-array counts worth keeping for the segment's activation
        matmuls (on a ``dynamic_matmul`` target): the arrays that hold the
        largest one's right operand whole, and a half and a quarter of them,
        within what one copy of each resident weight leaves; in a segment
        that streams a weight, the free arrays it streams through
        (:data:`STREAM_ARRAYS`)."""
        matmuls = [i.matmul for i in self.infos if i.matmul is not None]
        if not matmuls:
            return []
        if self.streamed():
            return [STREAM_ARRAYS]
        room = self.program.arrays - sum(m.arrays for m in self.resident())
        whole = max(m.tiling.arrays_per_copy for m in matmuls)
        counts = {min(room, math.ceil(whole / s)) for s in MATMUL_ARRAY_SHARES}
        return sorted((c for c in counts if c >= 1), reverse=True)

    def input_buffer_arrays(self) -> int:
        """The smallest ``inputs`` buffer that holds the input of each weight
        the segment streams from DRAM (one at a time), or 0 when there is
        none or the buffer would leave a stream fewer arrays than one
        column of its row tiles."""
        hw = self.hw
        streamed = self.streamed()
        needed = max((input_arrays_needed(hw, m) for m in streamed), default=0)
        room = (
            min(self.program.switchable, self.program.arrays)
            - sum(m.arrays for m in self.resident())
            - needed
        )
        tallest = max((m.op.tiling.field("row_tiles") for m in streamed), default=0)
        return needed if needed and room >= tallest else 0

    def chunk_buffer_arrays(self) -> int:
        """The smallest ``chunks`` buffer (two equal halves) whose halves take
        every chunk of the segment's streamed weights as they are then cut,
        or 0 when none fits the switchable arrays."""
        return _chunk_buffer(
            self.hw,
            tuple((m.op.tiling, row_indices_of(m.op)) for m in self.streamed()),
            sum(m.arrays for m in self.resident()),
            self.program.arrays,
            self.program.switchable,
        )

    def banded_tensors(self, kind: Dataflow, blocks: int) -> frozenset[int]:
        """Spilled tensors that ops of this segment make in more than one band
        when it runs pipelined by ``kind`` in ``blocks`` bands and that a
        ring of their bands holds in the global buffer, by the lowering's
        rule (:func:`~cimflow.analysis.rings.ring_depth`,
        :func:`~cimflow.analysis.rings.ring_fits`; the buffer taken as free
        but for the rings made before that are still read). The others
        spill band by band, as in ``layer`` dataflow."""
        local = self._blocked(kind)
        infos = self.infos
        index_of = {info.op: info.index for info in infos}
        ops: list[Operation] = [info.op for info in infos]
        plans: dict[Operation, BlockPlan] = {
            self.program.ops[i].op: plan for i, plan in local.items()
        }

        def inside(op: Operation) -> int | None:
            return 0 if op in index_of else None

        free = self.hw.buffers.global_bytes
        rings: list[tuple[int, int]] = []  # (bytes, last reader)
        found: set[int] = set()
        for i, plan in local.items():
            steps = bands(plan.output.rows, blocks)
            if len(steps) < 2:
                continue
            info = self.program.ops[i]
            if len(info.op.results) != 1:
                continue  # the lowering rings an op's only result
            for t, value in zip(info.outputs, info.op.results, strict=False):
                tensor = self.program.tensors[t]
                if not tensor.spilled:
                    continue
                source, start = _bytes_of(value, index_of)
                depth = ring_depth(
                    ops, start - self.first, source, plans, blocks, inside
                )
                if depth is None:
                    continue
                size = ring_band_bytes(tensor.nbytes, plan.output.rows, steps)
                live = sum(nbytes for nbytes, last in rings if last >= i)
                if ring_fits(depth, size, free - live):
                    found.add(t)
                    rings.append((depth * size, max(tensor.consumers, default=i)))
        return frozenset(found)


def _bytes_of(value: SSAValue, index_of: dict[TileOp, int]) -> tuple[SSAValue, int]:
    """The value whose bytes hold ``value`` in the lowering, and the index
    of its producer: a ``cim_tile.col2im`` result is a view of its MVM's
    outputs, where the lowering places the ring."""
    owner = value.owner
    if isinstance(owner, cim_tile.Col2ImOp) and owner.input.owner in index_of:
        producer = owner.input.owner
        assert isinstance(producer, TileOp)
        return owner.input, index_of[producer]
    assert isinstance(owner, TileOp)
    return value, index_of[owner]


def banded_parts(
    hw: HardwareTarget, info: OpInfo, steps: int
) -> tuple[int, dict[Part, int]]:
    """An op's ``fixed`` cycles when it runs in ``steps`` bands, each band
    priced at its share (every transfer and vector op pays its latency once
    per band), and what it holds of each resource."""
    units = hw.total_cores * hw.vector.units_per_core
    cycles: dict[Part, int] = {"interconnect": 0, "vector": 0, "dram": 0}
    duration = 0
    for part, amount in info.parts:
        share = math.ceil(amount / steps)
        if info.streams is not None and info.streams[3]:
            continue  # loads the vector op streams instead, below
        if part == "interconnect":
            one = interconnect_cost(hw, max(1, share)).cycles
        elif part in ("vector", "accumulate"):
            one = vector_cost(hw, share, units).cycles
        else:
            one = dram_load(hw, share)
        if part == "accumulate":  # priced with the copies (accumulate_cycles)
            cycles["vector"] += steps * one
            continue
        cycles[part] += steps * one
        duration += steps * one
    if info.streams is not None:
        work, in_bytes, out_bytes, from_dram = info.streams
        compute, stream = _vector_op(
            hw,
            math.ceil(work / steps),
            math.ceil(in_bytes / steps),
            math.ceil(out_bytes / steps),
            from_dram,
        )
        duration += steps * max(compute.cycles, stream.cycles)
        cycles["vector"] += steps * compute.cycles
        cycles["interconnect"] += steps * stream.cycles
        if from_dram:
            cycles["dram"] += steps * dram_load(hw, math.ceil(in_bytes / steps))
    return duration, cycles


@lru_cache(maxsize=4096)
def _chunk_buffer(
    hw: HardwareTarget,
    tilings: tuple[tuple[cim_tile.TilingAttr, RowIndices], ...],
    resident: int,
    arrays: int,
    switchable: int,
) -> int:
    room = min(switchable, arrays - 1) - resident
    capacity = hw.dual_mode.memory_capacity_bytes
    for half in range(1, room // 2 + 1):
        available = arrays - resident - 2 * half
        if available < 1:
            break
        largest = max(
            program_bytes(hw, chunk, row_indices=indices)
            for tiling, indices in tilings
            for chunk in plan_chunks(tiling, available, hw)
        )
        if largest <= half * capacity:
            return 2 * half
    return 0


def _rows_read(
    plan: BlockPlan, skip: BlockPlan | None, position: int, band: Band
) -> Band | None:
    """The rows of its operand at ``position`` that ``band`` of an op run as
    ``plan`` reads (None: all); for :data:`SKIP`, of its fused residual's
    skip, whose producer runs as ``skip`` (None: whole)."""
    if position != SKIP:
        return plan.needs(position, band)
    return skip_band(None if skip is None else skip.output, plan.output, band)


def _band_wait(needed: Sequence[Band | None], producer: Sequence[Band] | None) -> int:
    """How many of a producer's bands the first band of a consumer needs
    (0: all of the producer, which then runs whole or is read whole)."""
    if not needed or producer is None or len(producer) < 2:
        return 0
    last = 0
    for rows in needed:
        if rows is None:
            return 0
        last = max(last, rows[1])
    for index, band in enumerate(producer):
        if band[1] >= last:
            return index + 1
    return 0


@lru_cache(maxsize=65536)
def banded_copy_choices(
    hw: HardwareTarget,
    total: int,
    vectors: int,
    rows: int,
    cols: int,
    arrays: int,
    steps: int,
    limit: int,
    weight_bytes: int,
    accumulate_ops: int,
    local_bytes: int = 0,
) -> tuple[tuple[int, int], ...]:
    """``(d, cycles)`` of an MVM run in ``steps`` bands (whole: 1) on ``d``
    copies, as the lowering runs it (:func:`~cimflow.lowering.rules.banded_mvm_cycles`:
    the bands one after another, each split between the copies, its busiest
    core reading ``local_bytes`` a vector from its local buffer), its
    ``accumulate_ops`` on the copies' cores (:func:`copies_run_cycles`),
    and the extra copies' weights streaming to their arrays; counts that do
    not shorten the bands are dropped."""
    most = banded_copies(hw, vectors, steps, rows, cols)
    top = max(1, min(limit, most, total // max(1, arrays)))
    choices: list[tuple[int, int]] = []
    last = -1
    for d in copy_counts(top):
        cycles = copies_run_cycles(
            hw, vectors, steps, d, rows, cols, accumulate_ops, arrays, local_bytes
        )
        if cycles != last:
            choices.append((d, cycles + replica_stream_cycles(hw, d, weight_bytes)))
            last = cycles
    return tuple(choices)


def accumulate_cycles(
    hw: HardwareTarget, element_ops: int, copies: int, arrays: int
) -> int:
    """An MVM's accumulations of ``element_ops`` lane operations with
    ``copies`` copies of ``arrays`` arrays: each copy's on the vector units
    of the cores that hold it (the lowering's ``add_in_cores``), the copies
    side by side from one array on, so on the units of the cores ``copies x
    arrays`` consecutive arrays span (at most every core)."""
    if element_ops <= 0:
        return 0
    held = min(hw.total_arrays, max(1, copies * arrays))
    ((first, stop),) = cores_of_arrays(hw, ((0, held),))
    units = (stop - first) * hw.vector.units_per_core
    return vector_cost(hw, element_ops, units).cycles


def _candidates(
    sizes: Sequence[int], saturate: int, room: int, capacity: int
) -> list[int]:
    """Array counts at which a first-fit buffer over items of ``sizes`` may
    change cost: every count up to ``saturate`` (bandwidth still grows),
    then only where the first-fit set changes, up to ``room``."""
    if not sizes or room <= 0 or capacity <= 0:
        return [0]
    counts = list(range(min(saturate, room) + 1))
    arrays = counts[-1]
    while arrays < room:
        free = arrays * capacity
        gap: int | None = None
        for size in sizes:
            if free >= size:
                free -= size
            elif gap is None or size - free < gap:
                gap = size - free
        if gap is None:
            break  # everything fits already
        arrays = -(-(arrays * capacity + gap) // capacity)
        if arrays <= room:
            counts.append(arrays)
    return counts


def _saturation(hw: HardwareTarget) -> int:
    """Memory arrays beyond which a transfer no longer gets faster (the
    buffer or DRAM side is then the slower one)."""
    per_array = hw.dual_mode.memory_bandwidth_bytes_per_cycle
    if per_array <= 0:
        return 0
    fastest = max(
        hw.buffers.global_bandwidth_bytes_per_cycle, hw.dram.bandwidth_bytes_per_cycle
    )
    return max(1, math.ceil(fastest / per_array))


def entry_parts(
    hw: HardwareTarget,
    resident: Sequence[MvmInfo],
    staged: set[str] | frozenset[str] = frozenset(),
) -> tuple[int, int]:
    """DRAM loads (one after another) and programs of a segment's resident
    weights but those the segment before staged in place (they switch to
    compute mode with the segment's memory arrays): the slowest program's
    row writes, or all their bytes streaming over the interconnect to the
    arrays, whichever is longer."""
    loaded = [m for m in resident if m.op.weight.data not in staged]
    dram = sum(dram_load(hw, m.weight_bytes) for m in loaded)
    program = max((m.program for m in loaded), default=0)
    streamed = sum(m.weight_bytes for m in loaded)
    if streamed:  # every weight byte reaches its arrays over the interconnect
        program = max(program, interconnect_cost(hw, streamed).cycles)
    return dram, program


def entry_cycles(
    hw: HardwareTarget,
    resident: Sequence[MvmInfo],
    staged: set[str] | frozenset[str] = frozenset(),
) -> int:
    """Loading and programming a segment's resident weights."""
    dram, program = entry_parts(hw, resident, staged)
    return dram + program


# --------------------------------------------------------------------------
# Evaluating an allocation
# --------------------------------------------------------------------------


def memory_arrays(inst: SegmentInstance, alloc: Allocation) -> int:
    return inst.act_arrays[alloc.act] + inst.pre_arrays[alloc.pre]


def compute_arrays(inst: SegmentInstance, alloc: Allocation) -> int:
    return inst.fixed_arrays + sum(
        d * term.arrays_per_copy
        for term, d in zip(inst.ops, alloc.copies, strict=True)
        if term.copies
    )


def violations(inst: SegmentInstance, alloc: Allocation) -> list[str]:
    """Why an allocation does not fit (empty: it does)."""
    problems: list[str] = []
    compute = compute_arrays(inst, alloc)
    memory = memory_arrays(inst, alloc) + inst.fixed_memory
    if compute + memory + (1 if inst.streams else 0) > inst.total_arrays:
        problems.append(
            f"{compute} compute + {memory} memory arrays exceed the "
            f"{inst.total_arrays} of the chip"
        )
    if memory > 0 and compute + memory > inst.switchable:
        problems.append(
            f"memory arrays placed after {compute} compute arrays go past the "
            f"{inst.switchable} switchable arrays"
        )
    if inst.act_bytes[alloc.act] > inst.act_arrays[alloc.act] * inst.capacity:
        problems.append("the activations buffer holds more than its capacity")
    if inst.pre_bytes[alloc.pre] > inst.pre_arrays[alloc.pre] * inst.capacity:
        problems.append("the weights buffer holds more than its capacity")
    for term, d in zip(inst.ops, alloc.copies, strict=True):
        if term.copies and not term.offers(d):
            problems.append(f"{d} copies is not among the choices")
        elif not term.copies and d != 1:
            problems.append("copies of an op that is not a resident MVM")
    if inst.streams and memory - inst.fixed_memory not in inst.memory_options:
        problems.append(f"{memory} memory arrays is not a priced option")
    return problems


@dataclass(frozen=True)
class OpTimes:
    """When an op's first and last bands finish, and one band's cycles
    (an op run whole: one band, ``first == last``)."""

    first: float
    last: float
    band: float


def op_times(inst: SegmentInstance, alloc: Allocation) -> list[OpTimes]:
    """Finish times of every op of a segment under ``alloc``.

    An op of ``n`` bands and duration ``dur`` (its cycles with its copies,
    as the lowering groups them) takes ``t = dur / n`` per band; its first
    band starts when the producer bands it reads are done (the ``w``-th
    band of a blocked producer finishes ``(w - 1) t_p`` after its first; a
    whole producer, at its end), and its last band finishes
    ``t`` after its producers' last ones, or ``dur - t`` after its first
    band, whichever is later. With one band everywhere (``layer``) this is
    the critical path ``e_k = dur_k + max e_j``."""
    memory = memory_arrays(inst, alloc)
    stream_index = inst.memory_options.index(memory) if inst.memory_options else -1
    times: list[OpTimes] = []
    for term, d in zip(inst.ops, alloc.copies, strict=True):
        act = term.act[alloc.act] if term.act else 0
        duration = term.fixed + act + term.copy_cycles(d)
        if term.chunk:
            duration += term.chunk[stream_index]
        band = duration / term.bands
        ready = done = 0.0
        waits = term.waits or tuple(0 for _ in term.preds)
        for p, wait in zip(term.preds, waits, strict=True):
            producer = times[p]
            if wait > 0:
                ready = max(ready, producer.first + (wait - 1) * producer.band)
            else:
                ready = max(ready, producer.last)
            done = max(done, producer.last)
        first = ready + band
        times.append(OpTimes(first, max(done + band, first - band + duration), band))
    return times


def evaluate(inst: SegmentInstance, alloc: Allocation) -> SegmentCost:
    """The segment's latency under ``alloc`` (see the module doc)."""
    memory = memory_arrays(inst, alloc)
    stream_index = inst.memory_options.index(memory) if inst.memory_options else -1
    times = op_times(inst, alloc)
    finish = [math.ceil(t.last - 1e-6) for t in times]
    critical = max(finish, default=0)
    dram = inst.dram_fixed + inst.act_dram[alloc.act] + inst.pre_dram[alloc.pre]
    if inst.chunk_dram:
        dram += inst.chunk_dram[stream_index]
    mem = inst.act_memory[alloc.act]
    interconnect = replica_interconnect(inst, alloc.copies)
    body = max(critical, dram, mem, interconnect, inst.vector)
    for term, end in zip(inst.ops, finish, strict=True):
        if term.chunk_tail:  # the prefetch waits for the stream's last load
            stream_end = end - term.chunk_tail[stream_index]
            body = max(body, stream_end + inst.pre_dram[alloc.pre])
    transition = (
        inst.act_evict[alloc.act]
        + inst.next_dram[alloc.pre]
        + inst.next_program[alloc.pre]
        + (inst.switch_cycles if memory + inst.fixed_memory > 0 else 0)
        + inst.final
    )
    return SegmentCost(
        critical, dram, mem, body, transition, compute_arrays(inst, alloc), memory
    )


def minimal_allocation(inst: SegmentInstance) -> Allocation:
    """All compute, one copy each, no memory arrays."""
    return Allocation(tuple(1 for _ in inst.ops))


def greedy_allocation(inst: SegmentInstance) -> Allocation:
    """All compute; spare arrays go, one useful step at a time, to the copy
    that saves the most cycles per array (the fast estimate of the DP and
    the MILP's starting incumbent)."""
    copies = [1 for _ in inst.ops]
    steps = [0 for _ in inst.ops]
    free = inst.total_arrays - compute_arrays(inst, minimal_allocation(inst))
    if inst.streams:
        return minimal_allocation(inst)
    heap: list[tuple[float, int]] = []

    def push(k: int) -> None:
        term = inst.ops[k]
        step = steps[k]
        if step + 1 < len(term.copies):
            (d0, c0), (d1, c1) = term.copies[step], term.copies[step + 1]
            extra = (d1 - d0) * term.arrays_per_copy
            heapq.heappush(heap, (-(c0 - c1) / max(1, extra), k))

    for k, term in enumerate(inst.ops):
        if term.copies:
            push(k)
    while heap:
        _, k = heapq.heappop(heap)
        term = inst.ops[k]
        step = steps[k]
        (d0, _), (d1, _) = term.copies[step], term.copies[step + 1]
        extra = (d1 - d0) * term.arrays_per_copy
        if extra > free:
            continue
        free -= extra
        steps[k] = step + 1
        copies[k] = d1
        push(k)
    return Allocation(tuple(copies))


def program_entry(program: Program, first: int, stop: int) -> int:
    """Entry cycles of a segment whose weights all come from DRAM."""
    return entry_cycles(
        program.hw,
        [
            i.mvm
            for i in program.ops[first:stop]
            if i.mvm is not None and not i.mvm.streamed
        ],
    )
