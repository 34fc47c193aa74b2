"""cim-allocate: per segment, copies and memory-mode arrays by a MILP.

The segments are given (by ``cim-segment``, or any allocation pass: the
``segment`` of every ``#cim_tile.alloc`` and ``cim_tile.vector``, each a
contiguous run in program order). For each segment the pass builds the
allocation problem of :mod:`cimflow.analysis.dual_mode_model` and solves it
exactly with HiGHS (``highspy``); ``docs/dual-mode.md`` states the
formulation. It then rewrites the decisions as the lowering reads them:
``copies`` and ``chunks`` of each ``#cim_tile.alloc``, one
``cim_tile.memory_buffer activations`` and one ``weights`` buffer per
segment that uses memory arrays (earlier buffers, ``cim_tile.dataflow``
declarations and copy alignments are dropped: this pass owns them).

Segments whose problem is identical (repeated transformer layers) are solved
once: the cache key is the problem itself, a frozen tuple of numbers.

The MILP starts from the greedy all-compute allocation, so a time limit
keeps the best incumbent found. If HiGHS fails or finds the problem
infeasible, the segment falls back to all compute, one copy each (chunks as
the static baseline cuts them); the module's ``cim_tile.remark`` and a
warning on stderr say so. The module's ``cim_tile.predicted_cycles`` is the
model's latency of the whole allocation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass

from cimflow.analysis.dual_mode_model import (
    STREAM_ARRAYS,
    Allocation,
    Program,
    Segment,
    SegmentInstance,
    build_program,
    evaluate,
    greedy_allocation,
    memory_arrays,
    minimal_allocation,
    op_times,
    parse_dataflows,
    program_entry,
    stream_terms,
    tensor_bytes,
    tile_ops,
    violations,
)
from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.ir_checks import tensor_function
from cimflow.milp import (
    DEFAULT_NODE_LIMIT,
    DEFAULT_TIME_LIMIT,
    INFINITY,
    OPTIMAL,
    MilpBuilder,
    SolverBudget,
)
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass, arrays_to_hold
from cimflow.passes.static_allocate import STRATEGY_ATTR, StaticAllocatePass
from cimflow.target_record import module_target

PREDICTED_ATTR = "cim_tile.predicted_cycles"
"""Module attribute: the cost model's latency of the allocation, in cycles."""

SOLVER_ATTR = "cim_tile.solver"
"""Module attribute: per distinct segment problem the MILP solved, how it
ended (an array of ``{segments, status, nodes}`` dictionaries)."""

REMARK_ATTR = "cim_tile.remark"
"""Module attribute: what the allocation passes want a reader to know
(fallbacks, time limits)."""

DEFAULT_MAX_COPIES = 512
"""Copies of one weight considered by default. A large chip needs many for
its first layers (ResNet-18's first convolution on pimcomp_default, 8
arrays a copy and 12,544 vectors of 4,000 cycles: 32 copies took 1.8 ms of
a 7.4 ms run; 128 copies, 5.0 ms in all). 512 rather than 128: cmswitch on
pimcomp_default, MobileNetV2 2.62 -> 2.08 ms, and at batch 16 ResNet-18
36.6 -> 25.6 ms, VGG-16 195 -> 165 ms, MobileNetV2 31.2 -> 25.8 ms, at
about twice the compile time there (dynaplasia's 96 arrays never reach
128). Beyond 32 the counts are priced about 1/8 apart
(:func:`~cimflow.analysis.dual_mode_model.copy_counts`)."""


# --------------------------------------------------------------------------
# The MILP
# --------------------------------------------------------------------------


@dataclass
class MilpResult:
    """The allocation of one segment and how it was found."""

    allocation: Allocation
    status: str
    """``optimal``, ``trivial`` (nothing to decide), ``node limit`` or
    ``time limit`` (best incumbent, with its gap), or ``fallback: ...``."""
    fallback: bool = False
    nodes: int = 0
    """Branch-and-bound nodes HiGHS explored."""


def _pick(values: Sequence[float], columns: Sequence[int]) -> int:
    """The option whose binary selector is set."""
    return max(range(len(columns)), key=lambda i: values[columns[i]])


def solve_segment(
    inst: SegmentInstance, budget: SolverBudget | None = None
) -> MilpResult:
    """The MILP of ``docs/dual-mode.md`` for one segment, solved by HiGHS.

    Columns: a binary per copy choice of each resident MVM (one chosen), per
    activation option, per prefetch option and per priced memory-array
    count of a streamed weight; integer memory arrays per role; a binary
    ``u`` (memory arrays in use); the finish time ``e_k`` of each op and the
    body latency ``L``. Never raises: a failure is a fallback result.
    """
    try:
        return _solve(inst, budget or SolverBudget())
    except Exception as error:  # HiGHS or numerical trouble: never crash
        return MilpResult(
            minimal_allocation(inst), f"fallback: {type(error).__name__}: {error}", True
        )


def solve_once(
    solved: dict[SegmentInstance, MilpResult],
    inst: SegmentInstance,
    budget: SolverBudget,
) -> MilpResult:
    """``inst``'s MILP result, solved only the first time it is asked for
    (identical segments pose identical problems)."""
    result = solved.get(inst)
    if result is None:
        result = solve_segment(inst, budget)
        solved[inst] = result
    return result


def _solve(inst: SegmentInstance, budget: SolverBudget) -> MilpResult:
    greedy = greedy_allocation(inst)
    decisions = (
        sum(1 for t in inst.ops if len(t.copies) > 1)
        + (len(inst.act_arrays) > 1)
        + (len(inst.pre_arrays) > 1)
    )
    if decisions == 0:
        problems = violations(inst, greedy)
        if problems:
            return MilpResult(greedy, f"fallback: {problems[0]}", True)
        return MilpResult(greedy, "trivial")
    lp = MilpBuilder()
    total, switchable = inst.total_arrays, inst.switchable
    # copies selectors
    copy_cols: list[list[int]] = []
    compute_terms: list[tuple[int, float]] = []
    compute_const = inst.fixed_arrays
    for term in inst.ops:
        if len(term.copies) > 1:
            cols = [lp.var(0, 1, integer=True) for _ in term.copies]
            lp.row([(c, 1.0) for c in cols], 1, 1)
            compute_terms += [
                (c, float(d * term.arrays_per_copy))
                for c, (d, _) in zip(cols, term.copies, strict=True)
            ]
            copy_cols.append(cols)
        else:
            copy_cols.append([])
            if term.copies:
                compute_const += term.copies[0][0] * term.arrays_per_copy
    # ties go to the allocation with fewer arrays: a cost per array that
    # sums to under half a cycle (model costs are whole cycles)
    tie = 1.0 / (4.0 * (total + 1))
    for column, arrays in compute_terms:
        lp.cost[column] += tie * arrays
    # memory options
    room = float(max(0, switchable))
    m_act = lp.var(0, room, tie, integer=True)
    m_pre = lp.var(0, room, tie, integer=True)
    act_cols = [lp.var(0, 1, integer=True) for _ in inst.act_arrays]
    # the next segment's programs of what is not staged, per prefetch option
    pre_cols = [lp.var(0, 1, float(x), integer=True) for x in inst.next_program]
    lp.row([(c, 1.0) for c in act_cols], 1, 1)
    lp.row([(c, 1.0) for c in pre_cols], 1, 1)
    lp.row(
        [(m_act, 1.0)]
        + [(c, -float(a)) for c, a in zip(act_cols, inst.act_arrays, strict=True)],
        0,
        0,
    )
    lp.row(
        [(m_pre, 1.0)]
        + [(c, -float(p)) for c, p in zip(pre_cols, inst.pre_arrays, strict=True)],
        0,
        0,
    )
    # capacities: what each buffer holds fits its arrays
    lp.row(
        [(c, float(b)) for c, b in zip(act_cols, inst.act_bytes, strict=True)]
        + [(m_act, -float(inst.capacity))],
        -INFINITY,
        0,
    )
    lp.row(
        [(c, float(b)) for c, b in zip(pre_cols, inst.pre_bytes, strict=True)]
        + [(m_pre, -float(inst.capacity))],
        -INFINITY,
        0,
    )
    memory = [(m_act, 1.0), (m_pre, 1.0)]
    fixed_memory = inst.fixed_memory  # memory arrays of this problem
    uses_memory = lp.var(
        1 if fixed_memory > 0 else 0,
        1 if switchable > 0 else 0,
        inst.switch_cycles,
        integer=True,
    )
    # arrays: compute + memory fit the chip (one array left to a stream)
    stream = 1 if inst.streams else 0
    lp.row(
        compute_terms + memory,
        -INFINITY,
        total - compute_const - stream - fixed_memory,
    )
    # memory arrays sit right after the compute arrays, below `switchable`
    lp.row(
        [*compute_terms, *memory, (uses_memory, float(total - switchable))],
        -INFINITY,
        total - compute_const - fixed_memory,
    )
    lp.row([*memory, (uses_memory, -room)], -INFINITY, 0)
    lp.row(
        [(uses_memory, 1.0), (m_act, -1.0), (m_pre, -1.0)],
        -INFINITY,
        fixed_memory,
    )
    # streamed chunks: priced by the total memory-array count
    stream_cols: list[int] = []
    if inst.memory_options:
        stream_cols = [lp.var(0, 1, integer=True) for _ in inst.memory_options]
        lp.row([(c, 1.0) for c in stream_cols], 1, 1)
        lp.row(
            [
                (c, float(m))
                for c, m in zip(stream_cols, inst.memory_options, strict=True)
            ]
            + [(m_act, -1.0), (m_pre, -1.0)],
            0,
            0,
        )
    # durations, band times, finish times of the first and last bands
    first_cols: list[int] = []
    last_cols: list[int] = []
    band_exprs: list[tuple[float, list[tuple[int, float]]]] = []
    is_pred = {p for term in inst.ops for p in term.preds}
    body = lp.var(float(max(inst.interconnect, inst.vector)), INFINITY, 1.0)
    # the extra copies' programs share the interconnect with the moves
    replicas = [
        (c, -float(cycles))
        for cols, term in zip(copy_cols, inst.ops, strict=True)
        if cols and term.replicas
        for c, cycles in zip(cols, term.replicas, strict=True)
        if cycles
    ]
    fixed_replicas = sum(
        term.replicas[0]
        for cols, term in zip(copy_cols, inst.ops, strict=True)
        if not cols and term.replicas
    )
    if replicas or fixed_replicas:
        lp.row([(body, 1.0), *replicas], inst.interconnect + fixed_replicas, INFINITY)
    for k, term in enumerate(inst.ops):
        act: list[tuple[int, float]] = []
        if term.act:
            act = [(c, float(x)) for c, x in zip(act_cols, term.act, strict=True)]
        duration = list(act)
        constant = float(term.fixed)
        if copy_cols[k]:
            duration += [
                (c, float(cycles))
                for c, (_, cycles) in zip(copy_cols[k], term.copies, strict=True)
            ]
        elif term.copies:
            constant += term.copies[0][1]
        if term.chunk:
            duration += [
                (c, float(x)) for c, x in zip(stream_cols, term.chunk, strict=True)
            ]
        band = (constant / term.bands, [(c, x / term.bands) for c, x in duration])
        band_exprs.append(band)
        first = lp.var(0, INFINITY)
        last = first if term.bands == 1 else lp.var(0, INFINITY)
        first_cols.append(first)
        last_cols.append(last)
        minus_band = [(c, -x) for c, x in band[1]]
        waits = term.waits or tuple(0 for _ in term.preds)
        # first band: after the producer bands it reads
        if not term.preds:
            lp.row([(first, 1.0), *minus_band], band[0], INFINITY)
        for p, wait in zip(term.preds, waits, strict=True):
            if wait > 0:
                lead, terms = band_exprs[p]
                ready = [(first_cols[p], -1.0)] + [
                    (c, -x * (wait - 1)) for c, x in terms
                ]
                lp.row(
                    [(first, 1.0), *ready, *minus_band],
                    band[0] + lead * (wait - 1),
                    INFINITY,
                )
            else:
                lp.row(
                    [(first, 1.0), (last_cols[p], -1.0), *minus_band],
                    band[0],
                    INFINITY,
                )
        if term.bands > 1:
            # last band: a band after the producers' last, and the op's
            # whole duration after its first band started
            for p in term.preds:
                lp.row(
                    [(last, 1.0), (last_cols[p], -1.0), *minus_band],
                    band[0],
                    INFINITY,
                )
            lp.row(
                [(last, 1.0), (first, -1.0), *[(c, -x) for c, x in duration], *band[1]],
                constant - band[0],
                INFINITY,
            )
        column = last
        if k not in is_pred:
            lp.row([(body, 1.0), (column, -1.0)], 0, INFINITY)
        if term.chunk_tail:  # the prefetch waits for the stream's last load
            lp.row(
                [(body, 1.0), (column, -1.0)]
                + [
                    (c, float(x))
                    for c, x in zip(stream_cols, term.chunk_tail, strict=True)
                ]
                + [
                    (c, -float(x)) for c, x in zip(pre_cols, inst.pre_dram, strict=True)
                ],
                0,
                INFINITY,
            )
    dram = [(c, -float(x)) for c, x in zip(act_cols, inst.act_dram, strict=True)]
    dram += [(c, -float(x)) for c, x in zip(pre_cols, inst.pre_dram, strict=True)]
    dram += [(c, -float(x)) for c, x in zip(stream_cols, inst.chunk_dram, strict=True)]
    lp.row([(body, 1.0), *dram], float(inst.dram_fixed), INFINITY)
    lp.row(
        [(body, 1.0)]
        + [(c, -float(x)) for c, x in zip(act_cols, inst.act_memory, strict=True)],
        0,
        INFINITY,
    )
    # transition: evictions, then the next segment's DRAM loads of what was
    # not staged
    transition = lp.var(0, INFINITY, 1.0)
    lp.row(
        [(transition, 1.0)]
        + [(c, -float(x)) for c, x in zip(act_cols, inst.act_evict, strict=True)]
        + [(c, -float(x)) for c, x in zip(pre_cols, inst.next_dram, strict=True)],
        0,
        INFINITY,
    )
    start = _start_values(inst, greedy, lp, copy_cols, act_cols, pre_cols, stream_cols)
    start[m_act] = 0.0
    start[m_pre] = 0.0
    start[uses_memory] = 1.0 if fixed_memory > 0 else 0.0
    _fill_times(inst, greedy, start, (first_cols, last_cols), body)
    start[transition] = float(inst.act_evict[greedy.act] + inst.next_dram[greedy.pre])
    offset = float(inst.final)
    outcome = lp.solve(budget, offset, start)
    values = outcome.values
    if values is None:
        return MilpResult(
            minimal_allocation(inst),
            f"fallback: HiGHS: {outcome.status}",
            True,
            outcome.nodes,
        )
    copies = tuple(
        term.copies[_pick(values, copy_cols[k])][0]
        if copy_cols[k]
        else (term.copies[0][0] if term.copies else 1)
        for k, term in enumerate(inst.ops)
    )
    chosen = Allocation(copies, _pick(values, act_cols), _pick(values, pre_cols))
    if violations(inst, chosen):
        return MilpResult(
            minimal_allocation(inst),
            "fallback: HiGHS returned an allocation that does not fit",
            True,
            outcome.nodes,
        )
    if evaluate(inst, greedy).total < evaluate(inst, chosen).total:
        chosen = greedy  # an unfinished search that did not reach its start
    label = (
        OPTIMAL
        if outcome.status == OPTIMAL
        else f"{outcome.status} (gap {outcome.gap:.3g})"
    )
    return MilpResult(chosen, label, nodes=outcome.nodes)


def _start_values(
    inst: SegmentInstance,
    alloc: Allocation,
    lp: MilpBuilder,
    copy_cols: Sequence[Sequence[int]],
    act_cols: Sequence[int],
    pre_cols: Sequence[int],
    stream_cols: Sequence[int],
) -> list[float]:
    values = [0.0] * len(lp.cost)
    for k, term in enumerate(inst.ops):
        if copy_cols[k]:
            chosen = [d for d, _ in term.copies].index(alloc.copies[k])
            values[copy_cols[k][chosen]] = 1.0
    values[act_cols[alloc.act]] = 1.0
    values[pre_cols[alloc.pre]] = 1.0
    if stream_cols:
        values[stream_cols[inst.memory_options.index(memory_arrays(inst, alloc))]] = 1.0
    return values


def _fill_times(
    inst: SegmentInstance,
    alloc: Allocation,
    values: list[float],
    columns: tuple[Sequence[int], Sequence[int]],
    body: int,
) -> None:
    """Band finish times and body latency of the starting allocation."""
    for k, times in enumerate(op_times(inst, alloc)):
        values[columns[0][k]] = times.first
        values[columns[1][k]] = times.last
    values[body] = float(evaluate(inst, alloc).body)


# --------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------


def segment_runs(ops: Sequence[Operation]) -> list[tuple[int, int, int]]:
    """``(segment, first, stop)`` of each run of tile ops in one segment
    (a vector op without a segment joins the current one)."""
    runs: list[tuple[int, int, int]] = []
    current = 0
    for index, op in enumerate(ops):
        segment = current
        if isinstance(op, cim_tile.MVMOp):
            if op.alloc is None:
                raise CimError(
                    f"cim_tile.mvm of weight '{op.weight.data}' has no segment; run "
                    "cim-segment (or another allocation pass) before cim-allocate"
                )
            segment = op.alloc.field("segment")
        elif isinstance(op, cim_tile.VectorOp) and op.segment is not None:
            segment = op.segment.value.data
        current = segment
        if runs and runs[-1][0] == segment:
            runs[-1] = (segment, runs[-1][1], index + 1)
        else:
            if any(r[0] >= segment for r in runs):
                raise CimError(
                    f"cim-allocate needs each segment to be one run of operators in "
                    f"increasing order; segment {segment} is not"
                )
            runs.append((segment, index, index + 1))
    return runs


@dataclass
class Plan:
    """Segments ``[first, stop)`` and their allocations, with the model's
    prediction."""

    bounds: list[tuple[int, int]]
    allocations: list[Allocation]
    instances: list[SegmentInstance]
    predicted: int
    remarks: list[str]
    solver: list[SolverRecord] = field(default_factory=lambda: [])
    """How each distinct problem behind the chosen allocations was solved."""
    alternates: bool = True
    """Whether a streamed weight may alternate between the halves of its
    free arrays where the model streams it faster so (false: every stream
    takes one run of them; :func:`keep_alternation_that_pays`)."""


@dataclass(frozen=True)
class SolverRecord:
    """One distinct segment problem: the segments that share it, and how
    HiGHS ended on it."""

    segments: tuple[int, ...]
    status: str
    nodes: int


def predicted_cycles(
    program: Program,
    bounds: Sequence[tuple[int, int]],
    instances: Sequence[SegmentInstance],
    allocations: Sequence[Allocation],
) -> int:
    """The model's latency of the whole program: the first segment's entry
    plus each segment's body and transition."""
    if not bounds:
        return 0
    return program_entry(program, *bounds[0]) + sum(
        evaluate(inst, alloc).total
        for inst, alloc in zip(instances, allocations, strict=True)
    )


def segments_of(program: Program, bounds: Sequence[tuple[int, int]]) -> list[Segment]:
    """Model segments for ``bounds``, each knowing the next one."""
    segments: list[Segment] = []
    for index, (first, stop) in enumerate(bounds):
        following = bounds[index + 1] if index + 1 < len(bounds) else (None, None)
        segments.append(Segment(program, first, stop, *following))
    return segments


def allocate(
    program: Program,
    bounds: Sequence[tuple[int, int]],
    budget: SolverBudget | None = None,
    max_copies: int = DEFAULT_MAX_COPIES,
    cache: dict[SegmentInstance, MilpResult] | None = None,
) -> Plan:
    """Solve every segment's MILP (each distinct problem once, also across
    the calls that share ``cache``)."""
    budget = budget or SolverBudget()
    cache = {} if cache is None else cache
    sharing: dict[SegmentInstance, list[int]] = {}
    allocations: list[Allocation] = []
    instances: list[SegmentInstance] = []
    remarks: list[str] = []
    for index, segment in enumerate(segments_of(program, bounds)):
        best: tuple[tuple[float, int], SegmentInstance, MilpResult] | None = None
        for inst in segment.instances(max_copies):
            result = solve_once(cache, inst, budget)
            cost = evaluate(inst, result.allocation)
            # on a tie, the shorter critical path: the model's resource
            # terms are bounds the simulator's contention only approaches
            rank = (ranked_cost(inst, cost.total), cost.critical_path)
            if best is None or (not result.fallback and rank < best[0]):
                best = (rank, inst, result)
        assert best is not None
        _, inst, result = best
        if result.fallback:
            remarks.append(f"segment {index}: {result.status}")
        elif result.status not in ("optimal", "trivial"):
            remarks.append(f"segment {index}: {result.status}, best incumbent used")
        instances.append(inst)
        allocations.append(result.allocation)
        sharing.setdefault(inst, []).append(index)
    predicted = predicted_cycles(program, bounds, instances, allocations)
    solver = [
        SolverRecord(tuple(segments), cache[inst].status, cache[inst].nodes)
        for inst, segments in sharing.items()
    ]
    return Plan(list(bounds), allocations, instances, predicted, remarks, solver)


def write_plan(
    module: ModuleOp,
    function: func.FuncOp,
    program: Program,
    plan: Plan,
    strategy: str,
) -> None:
    """Record a plan as the tile-level attributes the lowering carries out."""
    hw = program.hw
    block = function.body.block
    for op in list(block.ops):
        if isinstance(op, cim_tile.MemoryBufferOp | cim_tile.DataflowOp):
            op.detach()
            op.erase()
    dataflows = [
        cim_tile.DataflowOp(segment, inst.dataflow, inst.blocks)
        for segment, inst in enumerate(plan.instances)
        if inst.dataflow != Dataflow.LAYER
    ]
    if dataflows and block.first_op is not None:
        block.insert_ops_before(dataflows, block.first_op)
    capacity = hw.dual_mode.memory_capacity_bytes
    for segment, ((first, stop), inst, alloc) in enumerate(
        zip(plan.bounds, plan.instances, plan.allocations, strict=True)
    ):
        free = stream_arrays(inst, alloc)
        on_arrays = free if inst.matmul_arrays == STREAM_ARRAYS else inst.matmul_arrays
        streamed = streamed_chunks(program, segment, plan, plan.alternates)
        matmul_arrays = IntegerAttr(on_arrays, i64)
        for local, info in enumerate(program.ops[first:stop]):
            op = info.op
            if isinstance(op, cim_tile.VectorOp):
                op.segment = IntegerAttr(segment, i64)
                if info.matmul is not None:
                    op.matmul_arrays = matmul_arrays
            mvm = info.mvm
            if mvm is None:
                continue
            assert isinstance(op, cim_tile.MVMOp)
            chunks = streamed[first + local][0] if mvm.streamed else 1
            op.alloc = cim_tile.AllocAttr.from_ints(
                segment, alloc.copies[local], chunks
            )
            op.properties.pop("align", None)
        anchor = program.ops[first].op
        act, pre = inst.act_arrays[alloc.act], inst.pre_arrays[alloc.pre]
        for role, arrays in (
            (cim_tile.BufferRole.ACTIVATIONS, act),
            (cim_tile.BufferRole.WEIGHTS, pre),
            (cim_tile.BufferRole.CHUNKS, inst.chunk_buffer),
            (cim_tile.BufferRole.INPUTS, inst.input_buffer),
        ):
            if arrays > 0:
                block.insert_op_before(
                    cim_tile.MemoryBufferOp(role, arrays, arrays * capacity, segment),
                    anchor,
                )
    if program.reserved > 0 and block.first_op is not None:
        block.insert_op_before(
            cim_tile.MemoryBufferOp(
                cim_tile.BufferRole.KV_CACHE,
                program.reserved,
                program.reserved * capacity,
                0,
                list(program.held),
            ),
            block.first_op,
        )
    module.attributes[STRATEGY_ATTR] = StringAttr(strategy)
    module.attributes[PREDICTED_ATTR] = IntegerAttr(plan.predicted, i64)


DEFAULT_DATAFLOWS = "layer,rows,batch"
"""Every dataflow (``layer`` plus each pipelined one)."""

PIPELINED_MARGIN = 0.05
"""A pipelined instance replaces the best one so far only when the model
finds it faster by more than this share: the model prices bands
approximately, and a pipelined choice costs two whole simulations to check
(:func:`keep_pipelining_that_pays`). Measured (2026-12-03): LLaMA-2-7B
prefill segments (a streamed projection, the residual add and RMSNorm)
4.5% faster in 32 row bands by the model, as fast in the simulator (two
layers: 49 036 123 cycles pipelined, 49 033 323 not), and the check took
two thirds of the 32-layer compile (was 2%, when the model found them 1%
faster)."""


CHUNK_BUFFER_MARGIN = 0.03
"""An instance with a ``chunks`` buffer replaces the best one so far only
when the model finds it faster by more than this share: the model's
stream schedule (:func:`~cimflow.analysis.dual_mode_model.stream_terms`)
gives each op the whole DRAM channel or bus, where the simulator shares
them in lanes with the segment's other traffic. Measured (2026-12-03):
ResNet-18 on dynaplasia, the ``layer4`` segments predicted 0.1% faster
with a buffer of 58 arrays and simulated 15-25% slower (1.128 ms against
1.061 ms); GPT-2's LM head in decode predicted 6% faster with one and
simulated faster by as much."""


def ranked_cost(inst: SegmentInstance, cycles: int) -> float:
    """What a segment's instance is chosen by: its cycles, plus
    :data:`PIPELINED_MARGIN` of them when it runs in bands and
    :data:`CHUNK_BUFFER_MARGIN` when it double-buffers a streamed weight in
    memory-mode arrays."""
    margin = 0.0 if inst.dataflow == Dataflow.LAYER else PIPELINED_MARGIN
    margin += CHUNK_BUFFER_MARGIN if inst.chunk_buffer else 0.0
    return cycles * (1 + margin)


KV_INPUT_PREFIX = "past"
"""Model inputs whose name starts with this are a decoder's KV cache (the
``past_key_values.{i}.key`` / ``.value`` of Hugging Face exports)."""

KV_MAX_SHARE = 0.5
"""A KV cache is given at most this share of the switchable arrays (a
search bound: the arrays it takes are lost to every segment)."""


def simulated_cycles(module: ModuleOp, target: str) -> int:
    """The makespan ``cim-sim`` finds for an allocated module (lowered on
    a copy)."""
    from cimflow.passes.trace_target import build_trace  # it imports this module

    lowered = module.clone()
    ConvertTileToMetaPass(target).apply(Context(), lowered)
    trace = parse_trace(build_trace(lowered), "<cim-allocate>", check_meaning=False)
    return simulate(trace).makespan


def segment_bounds(function: func.FuncOp) -> list[tuple[int, int]]:
    """Each segment's first and stop index among the function's tile ops."""
    return [(first, stop) for _, first, stop in segment_runs(tile_ops(function))]


def _dataflow_ops(function: func.FuncOp) -> list[cim_tile.DataflowOp]:
    return [op for op in function.body.block.ops if isinstance(op, cim_tile.DataflowOp)]


def _write_dataflows(
    function: func.FuncOp, flows: Sequence[cim_tile.DataflowOp]
) -> None:
    block = function.body.block
    if flows and block.first_op is not None:
        block.insert_ops_before([op.clone() for op in flows], block.first_op)


def _erase_dataflows(function: func.FuncOp) -> None:
    for op in _dataflow_ops(function):
        op.detach()
        op.erase()


MAX_BAND_CHECKS = 4
"""Simulations :func:`keep_band_counts_that_pay` may spend, on the first
row-pipelined segments in program order (each is a whole lowering and
simulation: VGG-16 on pimcomp_default, three of them, took its compile
from 38 to 106 s). Measured (2026-12-06) with 8: what the checks won came
from the first segments (those with the largest feature maps): ResNet-50
on dynaplasia, 13 such segments, 2 557 353 -> 2 480 203 cycles over the
first four, 2 478 763 over eight."""


def row_band_choices(program: Program, plan: Plan) -> dict[int, list[int]]:
    """Per segment the plan runs in ``rows`` dataflow, the band counts the
    model priced for it (:meth:`Segment.pipeline_blocks`); none for a
    segment that streams a weight, which its stream holds whatever its
    bands (OPT-6.7B at L 32 on dynaplasia, whose row-pipelined segments all
    stream a projection: four checks found 382 450 615 -> 382 449 235
    cycles and took its compile from 24 to 79 s)."""
    segments = segments_of(program, plan.bounds)
    return {
        index: segments[index].pipeline_blocks(Dataflow.ROWS)
        for index, inst in enumerate(plan.instances)
        if inst.dataflow == Dataflow.ROWS and not inst.streams
    }


def set_band_counts(function: func.FuncOp, blocks: Mapping[int, int]) -> None:
    """Give the segments in ``blocks`` that many pipeline blocks."""
    for op in _dataflow_ops(function):
        count = blocks.get(op.segment.value.data)
        if count is not None:
            op.properties["blocks"] = IntegerAttr(count, i64)


def keep_band_counts_that_pay(
    module: ModuleOp,
    function: func.FuncOp,
    target: str,
    choices: Mapping[int, Sequence[int]],
    current: int | None = None,
) -> tuple[dict[int, int], int, list[str]]:
    """Each row-pipelined segment's band count checked by the simulator, as
    :func:`keep_pipelining_that_pays` checks the pipelining itself: the
    model prices bands only approximately (MobileNetV2 on dynaplasia, its
    first segment in 8 bands: 785 294 simulated cycles, in 32: 733 185).
    Segment by segment in program order (at most :data:`MAX_BAND_CHECKS`
    simulations), each other count of ``choices`` replaces the module's
    when the whole run simulates strictly faster with it (``current``: the
    module's simulated cycles, when known). Returns the counts changed, the
    simulated cycles of the module as left, and a remark per change."""
    if current is None:
        current = simulated_cycles(module, target)
    changed: dict[int, int] = {}
    remarks: list[str] = []
    checks = 0
    for op in _dataflow_ops(function):
        segment = op.segment.value.data
        if op.kind.data != Dataflow.ROWS:
            continue
        for count in choices.get(segment, ()):
            kept = op.blocks.value.data
            if count == kept or checks >= MAX_BAND_CHECKS:
                continue
            checks += 1
            set_band_counts(function, {segment: count})
            cycles = simulated_cycles(module, target)
            if cycles < current:
                remarks.append(
                    f"segment {segment} runs in {count} row bands, not {kept}: "
                    f"{cycles} simulated cycles, not {current}"
                )
                current, changed[segment] = cycles, count
            else:
                set_band_counts(function, {segment: kept})
    return changed, current, remarks


MAX_BUFFER_CHECKS = 8
"""Simulations :func:`drop_buffers_that_cost` may spend on each buffer role,
on the first groups of segments in program order that have one (ResNet-50
on dynaplasia stages weights in six)."""


def buffer_arrays(
    inst: SegmentInstance, alloc: Allocation, role: cim_tile.BufferRole
) -> int:
    """Arrays of a segment's ``weights`` or ``activations`` buffer."""
    if role == cim_tile.BufferRole.WEIGHTS:
        return inst.pre_arrays[alloc.pre]
    return inst.act_arrays[alloc.act]


def without_buffer(alloc: Allocation, role: cim_tile.BufferRole) -> Allocation:
    """``alloc`` with no ``weights`` or ``activations`` buffer (option 0)."""
    if role == cim_tile.BufferRole.WEIGHTS:
        return replace(alloc, pre=0)
    return replace(alloc, act=0)


def buffer_groups(plan: Plan, role: cim_tile.BufferRole) -> list[list[int]]:
    """Segments of ``plan`` with a ``role`` buffer (``weights``: staging the
    next segment's weights; ``activations``: holding the tensors it would
    spill), in program order, grouped: segments whose problem and decisions
    are the same (a transformer's repeated layers) form one group, ordered
    by its first segment."""
    groups: dict[tuple[SegmentInstance, Allocation], list[int]] = {}
    for index, (inst, alloc) in enumerate(
        zip(plan.instances, plan.allocations, strict=True)
    ):
        if buffer_arrays(inst, alloc, role) > 0:
            groups.setdefault((inst, alloc), []).append(index)
    return list(groups.values())


def _dropped_remark(
    group: Sequence[int], role: cim_tile.BufferRole, cycles: int, current: int
) -> str:
    noun = "segment" if len(group) == 1 else "segments"
    verb = "s" if len(group) == 1 else ""
    what = (
        f"stage{verb} no weights"
        if role == cim_tile.BufferRole.WEIGHTS
        else f"keep{verb} no activations in memory-mode arrays"
    )
    indices = ", ".join(str(index) for index in group)
    return f"{noun} {indices} {what}: {cycles} simulated cycles, not {current}"


def drop_buffers_that_cost(
    module: ModuleOp,
    function: func.FuncOp,
    target: str,
    strategy: str,
    planned: tuple[Program, Plan],
    role: cim_tile.BufferRole,
    current: int | None = None,
) -> tuple[Plan, int | None, list[str]]:
    """The plan to keep, of the module's ``planned`` one (already written,
    simulating to ``current`` cycles when known) and the same plan without
    the ``role`` buffer of a group of segments (:func:`buffer_groups`),
    checked by the simulator group by group in program order (at most
    :data:`MAX_BUFFER_CHECKS`), each dropped when the whole run simulates
    strictly faster without it.

    ``weights``: the model prices the next segment's unstaged loads and
    programs as following the segment, where the lowering starts them as
    soon as the arrays and the DRAM allow, beside the segment's tail; and
    staging moves DRAM traffic into a segment whose channel its own spills
    may keep busy. ResNet-18 on dynaplasia: ``fc`` staged in 50 arrays
    beside ``layer4.1.conv2``'s stream, which ran in 5 chunks instead of 3,
    predicted 4 338 cycles faster and simulated 6 575 slower; ResNet-50
    there: each of its six buffers simulated 755-8 917 cycles slower than
    none. ``activations``: the model may value holding a segment's spilled
    tensors in memory-mode arrays where the simulator does not (GPT-2's
    decode step on dynaplasia: 8 arrays in each layer's first segment,
    5 353 223 simulated cycles with them, 5 344 535 without, the chunks of
    its streamed weights the same; a memory-mode array slower than the DRAM
    is chosen too, ``test_cim_allocate.py``).

    Returns the plan, its simulated cycles (``current`` when nothing was
    checked) and a remark per group dropped; the module is left holding
    the plan."""
    program, plan = planned
    groups = buffer_groups(plan, role)[:MAX_BUFFER_CHECKS]
    if not groups:
        return plan, current, []
    if current is None:
        current = simulated_cycles(module, target)
    remarks: list[str] = []
    for group in groups:
        allocations = list(plan.allocations)
        for index in group:
            allocations[index] = without_buffer(allocations[index], role)
        trial = replace(
            plan,
            allocations=allocations,
            predicted=predicted_cycles(
                program, plan.bounds, plan.instances, allocations
            ),
        )
        write_plan(module, function, program, trial, strategy)
        cycles = simulated_cycles(module, target)
        if cycles < current:
            remarks.append(_dropped_remark(group, role, cycles, current))
            plan, current = trial, cycles
        else:
            write_plan(module, function, program, plan, strategy)
    return plan, current, remarks


def stream_arrays(inst: SegmentInstance, alloc: Allocation) -> int:
    """The free arrays a segment's streamed weights pass through: those its
    resident copies and memory-mode arrays leave."""
    memory = memory_arrays(inst, alloc) + inst.fixed_memory
    return inst.total_arrays - inst.fixed_arrays - memory


def streamed_chunks(
    program: Program, segment: int, plan: Plan, alternates: bool
) -> dict[int, tuple[int, int]]:
    """Per streamed MVM of ``segment`` (by its index in ``program``), the
    chunk count ``write_plan`` writes for it (its stream as the model
    prices it fastest, or, without ``alternates``, on one run of the free
    arrays) and its count on one run."""
    hw = program.hw
    (first, stop), inst = plan.bounds[segment], plan.instances[segment]
    free = stream_arrays(inst, plan.allocations[segment])
    counts: dict[int, tuple[int, int]] = {}
    for index in range(first, stop):
        mvm = program.ops[index].mvm
        if mvm is None or not mvm.streamed:
            continue
        one_run = len(plan_chunks(mvm.op.tiling, free, hw))
        fastest = stream_terms(
            hw, mvm, free, inst.chunk_buffer // 2, inst.input_buffer
        )[2]
        counts[index] = (fastest if alternates else one_run, one_run)
    return counts


def alternating_streams(program: Program, plan: Plan) -> bool:
    """Whether some streamed weight of ``plan`` would alternate between the
    halves of its free arrays, the way the model prices it fastest."""
    return any(
        chunks != one_run
        for segment in range(len(plan.bounds))
        for chunks, one_run in streamed_chunks(program, segment, plan, True).values()
    )


def keep_alternation_that_pays(
    module: ModuleOp,
    target: str,
    planned: tuple[Program, Plan],
    current: int | None = None,
) -> tuple[Plan, int | None, list[str]]:
    """The plan to keep, of the module's ``planned`` one (already written,
    simulating to ``current`` cycles when known) and, when some streamed
    weight would alternate between the halves of its free arrays, the same
    plan the other way (every stream on one run of them, when ``planned``
    alternates; else alternating where the model prices it faster): the
    latter when the simulator finds it strictly faster. The model replays a
    stream alone; in a model, the halves also hold the arrays the next
    segment's weights wait for, and the stream's twice as many input reads
    share the bus with other segments' traffic (GPT-2's small prompt on
    tiny: its projections and embedding priced 3-16% faster alternating,
    the run simulated 12 214 cycles so, 11 714 on one run). Returns the
    plan, its simulated cycles and a remark when it changed; the module is
    left holding the plan."""
    program, plan = planned
    if not alternating_streams(program, plan):
        return plan, current, []
    if current is None:
        current = simulated_cycles(module, target)
    trial = replace(plan, alternates=not plan.alternates)
    write_streams(program, trial)
    cycles = simulated_cycles(module, target)
    if cycles < current:
        way = (
            "alternate between halves of their free arrays"
            if trial.alternates
            else "take one run of arrays, not alternating halves"
        )
        remark = f"streamed weights {way}: {cycles} simulated cycles, not {current}"
        return trial, cycles, [remark]
    write_streams(program, plan)
    return plan, current, []


def write_streams(program: Program, plan: Plan) -> None:
    """Rewrite, on the module holding ``plan``, the chunk count of each of
    its streamed weights, as ``plan.alternates`` says (the rest of the
    module as the checks left it: band counts, dataflows)."""
    for segment in range(len(plan.bounds)):
        counts = streamed_chunks(program, segment, plan, plan.alternates)
        for index, (chunks, _) in counts.items():
            op = program.ops[index].op
            assert isinstance(op, cim_tile.MVMOp) and op.alloc is not None
            place = (op.alloc.field("segment"), op.alloc.field("copies"))
            op.alloc = cim_tile.AllocAttr.from_ints(*place, chunks)


def keep_pipelining_that_pays(
    module: ModuleOp,
    function: func.FuncOp,
    target: str,
    strategy: str,
    planned: tuple[Program, Plan],
    layer_only: Callable[[], tuple[Program, Plan]],
    pipelined: int | None = None,
) -> tuple[Plan, int | None, list[str]]:
    """The plan to keep, of the module's ``planned`` one (already written,
    maybe with band counts of its own, simulating to ``pipelined`` cycles
    when known) and, when it runs some segment pipelined, the same copies with
    every segment in ``layer`` dataflow, the plan ``layer_only`` solves
    for layer dataflow alone, and that plan's copies pipelined as planned:
    the one the simulator finds fastest, pipelining only when strictly
    faster (the model prices bands only approximately, and the copies it
    gave the bands may not pay without them, nor the bands need them:
    VGG-16 on dynaplasia, 9 063 978 cycles as planned, 9 051 015 with the
    layer plan, 8 642 220 with its copies in the planned bands); its
    simulated cycles (``pipelined`` when nothing was checked); a remark
    when the plan changes. The module is left holding the kept plan."""
    if not _dataflow_ops(function):
        return planned[1], pipelined, []
    if pipelined is None:
        pipelined = simulated_cycles(module, target)
    flows = [op.clone() for op in _dataflow_ops(function)]
    _erase_dataflows(function)
    dropped = simulated_cycles(module, target)
    program, plan = layer_only()
    write_plan(module, function, program, plan, strategy)
    solved = simulated_cycles(module, target)
    _write_dataflows(function, flows)
    crossed = simulated_cycles(module, target)
    if crossed < min(pipelined, dropped, solved):
        return (
            plan,
            crossed,
            [
                f"pipelined dataflows kept with an allocation solved for layer "
                f"dataflow: {crossed} simulated cycles, {pipelined} as planned"
            ],
        )
    _erase_dataflows(function)
    if solved <= min(pipelined, dropped):
        kept, how = plan, "an allocation solved for layer dataflow"
    else:
        write_plan(module, function, *planned, strategy)
        _erase_dataflows(function)
        if pipelined < min(dropped, solved):
            _write_dataflows(function, flows)
            return planned[1], pipelined, []
        kept, how = planned[1], "the same copies"
    return (
        kept,
        min(dropped, solved),
        [
            f"pipelined dataflows dropped: {pipelined} simulated cycles, "
            f"{min(dropped, solved)} in layer dataflow with {how}"
        ],
    )


def kv_cache_options(
    function: func.FuncOp, hw: HardwareTarget
) -> list[tuple[int, dict[str, int]]]:
    """``(reserved arrays, held inputs -> their arrays)`` worth pricing: none,
    then the first 1, 2, 4, ... past inputs in order of first use (the first
    layers' caches), each on ``ceil(bytes / capacity)`` arrays of its own,
    while they take at most ``KV_MAX_SHARE`` of the switchable arrays."""
    capacity = hw.dual_mode.memory_capacity_bytes
    options: list[tuple[int, dict[str, int]]] = [(0, {})]
    if hw.dual_mode.switchable_arrays <= 0 or capacity <= 0:
        return options
    first_use: dict[str, int] = {}
    position = {op: index for index, op in enumerate(function.body.block.ops)}
    for arg in function.body.block.args:
        name = arg.name_hint or ""
        if name.startswith(KV_INPUT_PREFIX) and arg.uses:
            first_use[name] = min(position.get(u.operation, 0) for u in arg.uses)
    names = sorted(first_use, key=lambda n: (first_use[n], n))
    sizes = {
        arg.name_hint: arrays_to_hold(tensor_bytes(hw, arg), capacity)
        for arg in function.body.block.args
        if arg.name_hint in first_use
    }
    limit = hw.dual_mode.switchable_arrays * KV_MAX_SHARE
    count = 1
    while names and count <= len(names):
        held = {name: sizes[name] for name in names[:count]}
        if sum(held.values()) > limit:
            break
        options.append((sum(held.values()), held))
        if count == len(names):
            break
        count = min(2 * count, len(names))
    return options


def warn(pass_name: str, remarks: Sequence[str]) -> None:
    for remark in remarks:
        sys.stderr.write(f"{pass_name}: warning: {remark}\n")


def set_remark(module: ModuleOp, remarks: Sequence[str]) -> None:
    if remarks:
        module.attributes[REMARK_ATTR] = StringAttr("; ".join(remarks))


def check_options(pass_name: str, budget: SolverBudget, max_copies: int) -> None:
    """A one-line error for a solver budget or copy limit out of range."""
    if not budget.time_limit >= 0:
        raise CimError(
            f"{pass_name}: time_limit must not be negative, got {budget.time_limit}"
        )
    if budget.node_limit < 0:
        raise CimError(
            f"{pass_name}: node_limit must not be negative, got {budget.node_limit}"
        )
    if not budget.mip_gap >= 0:
        raise CimError(
            f"{pass_name}: mip_gap must not be negative, got {budget.mip_gap}"
        )
    if max_copies < 1:
        raise CimError(f"{pass_name}: max_copies must be positive, got {max_copies}")


def record_solver(module: ModuleOp, plan: Plan) -> None:
    """The module's ``cim_tile.solver``: per distinct segment problem, its
    segments, HiGHS's status and node count (absent if nothing was solved)."""
    records = [
        DictionaryAttr(
            {
                "segments": DenseArrayBase.from_list(i64, record.segments),
                "status": StringAttr(record.status),
                "nodes": IntegerAttr(record.nodes, i64),
            }
        )
        for record in plan.solver
    ]
    if records:
        module.attributes[SOLVER_ATTR] = ArrayAttr(records)
    else:
        module.attributes.pop(SOLVER_ATTR, None)


def solver_records(module: ModuleOp) -> list[SolverRecord]:
    """The module's ``cim_tile.solver`` records (none if nothing was solved)."""
    attr = module.attributes.get(SOLVER_ATTR)
    if not isinstance(attr, ArrayAttr):
        return []
    records: list[SolverRecord] = []
    entries: tuple[Attribute, ...] = cast(ArrayAttr[Attribute], attr).data
    for entry in entries:
        if not isinstance(entry, DictionaryAttr):
            raise CimError(f"{SOLVER_ATTR}: expected dictionaries, got {entry}")
        segments, status, nodes = (
            entry.data.get(key) for key in ("segments", "status", "nodes")
        )
        if not (
            isinstance(segments, DenseArrayBase)
            and isinstance(status, StringAttr)
            and isinstance(nodes, IntegerAttr)
        ):
            raise CimError(
                f"{SOLVER_ATTR}: each entry needs segments (array<i64>), "
                f"status (string) and nodes (integer), got {entry}"
            )
        values = tuple(int(v) for v in segments.get_values())
        records.append(SolverRecord(values, status.data, nodes.value.data))
    return records


@dataclass(frozen=True)
class CimAllocatePass(ModulePass):
    """Copies and memory-mode arrays per segment, by a MILP (HiGHS)."""

    name = "cim-allocate"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    node_limit: int = DEFAULT_NODE_LIMIT
    """Branch-and-bound nodes HiGHS may explore on each distinct segment
    problem (then the best incumbent is used): a deterministic budget."""

    time_limit: float | int = DEFAULT_TIME_LIMIT
    """Seconds HiGHS may spend on each distinct segment problem: a safety
    net behind ``node_limit``, reported when reached (it makes the result
    depend on the machine's speed)."""

    mip_gap: float | int = 1e-3
    """Relative optimality gap at which HiGHS stops."""

    max_copies: int = DEFAULT_MAX_COPIES
    """Most copies of one weight considered."""

    kv_cache: bool = True
    """Consider keeping the decoder's past keys and values (inputs named
    ``past*``) in memory-mode arrays for the whole run."""

    dataflows: str = DEFAULT_DATAFLOWS
    """Dataflows a segment may take (comma-separated): ``layer`` always,
    plus the pipelined ``rows`` and ``batch`` listed."""

    solver_log: bool = False
    """Write HiGHS's log to stderr (it is silent otherwise)."""

    check_staging: bool = True
    """Lower and simulate the module without the ``weights`` buffer of each
    group of identical segments that stages the next segment's weights,
    keeping a buffer only where the run is not faster without it
    (:func:`drop_buffers_that_cost`), before ``check_dataflows``; a plan
    that check solves for layer dataflow instead keeps its staging
    unchecked."""

    check_activations: bool = True
    """The same check, after ``check_staging``, for the ``activations``
    buffer of each group of identical segments (the tensors a segment would
    spill, held in memory-mode arrays)."""

    check_dataflows: bool = True
    """When some segment is to run pipelined, lower and simulate the
    module: with each row-pipelined segment's other band counts, keeping
    one that is faster (:func:`keep_band_counts_that_pay`), then with every
    segment in ``layer`` dataflow, with the copies solved for it, and with
    those copies in the planned bands, keeping the fastest
    (:func:`keep_pipelining_that_pays`)."""

    check_alternation: bool = True
    """When the model would alternate some streamed weight between the
    halves of its free arrays, lower and simulate the module the other way
    too (every stream on one run of them, or alternating again), keeping it
    where it is strictly faster (:func:`keep_alternation_that_pays`): first,
    so that the other checks check the plan it kept, and again last, for
    the plan they kept."""

    @property
    def budget(self) -> SolverBudget:
        return SolverBudget(
            self.node_limit,
            float(self.time_limit),
            float(self.mip_gap),
            self.solver_log,
        )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.allocate(op)

    def allocate(self, op: ModuleOp) -> int | None:
        """Allocate ``op``; the simulated cycles of the module as left when a
        check measured them."""
        budget = self.budget
        check_options(self.name, budget, self.max_copies)
        pipelined = parse_dataflows(self.dataflows, self.name)
        hw = module_target(op, self.target, self.name)
        function = tensor_function(op, self.name)
        bounds = segment_bounds(function)
        no_cache: list[tuple[int, dict[str, int]]] = [(0, {})]
        options = kv_cache_options(function, hw) if self.kv_cache else no_cache
        chosen: tuple[Plan, Program] | None = None
        solved: dict[SegmentInstance, MilpResult] = {}
        for reserved, held in options:
            program = build_program(function, hw, reserved, held, pipelined)
            plan = allocate(program, bounds, budget, self.max_copies, solved)
            fits = not any(
                violations(i, a)
                for i, a in zip(plan.instances, plan.allocations, strict=True)
            )
            if chosen is None or (fits and plan.predicted < chosen[0].predicted):
                chosen = (plan, program)
        assert chosen is not None
        plan, program = chosen
        remarks = list(plan.remarks)
        if any(
            violations(i, a)
            for i, a in zip(plan.instances, plan.allocations, strict=True)
        ):
            plan, remarks = _static_fallback(op, hw, self.target, remarks)
            program = build_program(function, hw)
        strategy = op.attributes.get(STRATEGY_ATTR)
        name = strategy.data if isinstance(strategy, StringAttr) else "cim-allocate"
        write_plan(op, function, program, plan, name)
        checked: list[str] = []
        cycles: int | None = None
        if self.check_alternation:
            plan, cycles, checked = keep_alternation_that_pays(
                op, self.target, (program, plan)
            )
        roles = [
            role
            for role, check in (
                (cim_tile.BufferRole.WEIGHTS, self.check_staging),
                (cim_tile.BufferRole.ACTIVATIONS, self.check_activations),
            )
            if check
        ]
        for role in roles:
            plan, cycles, dropped = drop_buffers_that_cost(
                op, function, self.target, name, (program, plan), role, cycles
            )
            checked += dropped
        if self.check_dataflows:

            def layer_only() -> tuple[Program, Plan]:
                layer = build_program(
                    function, hw, program.reserved, dict(program.held), ()
                )
                solution = allocate(layer, bounds, budget, self.max_copies, solved)
                layer_programs.append(layer)
                return layer, replace(solution, alternates=plan.alternates)

            layer_programs: list[Program] = []

            banded: list[str] = []
            choices = row_band_choices(program, plan)
            if choices:
                _, cycles, banded = keep_band_counts_that_pay(
                    op, function, self.target, choices, cycles
                )
            kept, cycles, pipelining = keep_pipelining_that_pays(
                op, function, self.target, name, (program, plan), layer_only, cycles
            )
            if kept is not plan:
                checked = []  # the plan they checked gave way to the layer plan
                program = layer_programs[-1]
            if not _dataflow_ops(function):
                banded = []  # the bands were dropped with the pipelining
            plan, checked = kept, [*checked, *banded, *pipelining]
        if self.check_alternation:  # the other way again, for the plan kept
            plan, cycles, other_way = keep_alternation_that_pays(
                op, self.target, (program, plan), cycles
            )
            checked += other_way
        record_solver(op, plan)
        set_remark(op, [*remarks, *checked])
        warn(self.name, remarks)
        return cycles


def _static_fallback(
    module: ModuleOp, hw: HardwareTarget, target: str, remarks: list[str]
) -> tuple[Plan, list[str]]:
    """Segments that do not fit even with one copy each: the static
    baseline's segments, all compute, one copy each."""
    StaticAllocatePass(target).apply(Context(), module)
    function = tensor_function(module, "cim-allocate")
    program = build_program(function, hw)
    bounds = segment_bounds(function)
    instances = [s.instance(1, memory=False) for s in segments_of(program, bounds)]
    allocations = [minimal_allocation(i) for i in instances]
    predicted = predicted_cycles(program, bounds, instances, allocations)
    remarks = [
        *remarks,
        "the given segments do not fit the chip even with one copy each; "
        "fell back to the static baseline's segments, all compute, one copy",
    ]
    return Plan(bounds, allocations, instances, predicted, remarks), remarks
