"""cim-segment: segment boundaries by dynamic programming over the program.

A segment is a run of the tile ops in program order (an interval of the
topological order) whose weights are resident together. Boundaries fall
right before a ``cim_tile.mvm`` (vector work stays with the MVM before it,
as in the static baseline), so with ``n`` MVMs the pass solves::

    best[0] = 0
    best[j] = min over i < j of best[i] + cost(MVMs i .. j-1)

over every segment holding at most ``max_segment_ops`` MVMs whose weights
fit the chip with one copy each; a weight larger than the chip forms a
segment of its own and streams in chunks. ``cost`` is the fast estimate
of :mod:`cimflow.analysis.dual_mode_model`: the segment's entry (its weights
loaded from DRAM and programmed) plus its body latency under the greedy
all-compute allocation (spare arrays to the copies that save the most
cycles per array, or one copy each when that is faster), with the same
formulas as the MILP. It is an upper bound
of what ``cim-allocate`` then finds for the chosen segments (memory-mode
arrays, exact copies), so the DP never sees memory mode: boundaries are
chosen for compute, and the MILP refines each chosen segment. With
``pricing=milp`` the DP prices each candidate with that MILP instead
(memory mode included, each distinct segment problem solved once, as
CMSwitch's Alg. 1 does), so it can end a segment early to leave arrays for
buffers and prefetches; it solves many more problems.

The static baseline's segments are in the search space (when none holds
more than ``max_segment_ops`` MVMs) and one copy each is among the
allocations, so under the model the result is never slower than static.

The pass writes ``#cim_tile.alloc`` (segment, those copies, chunks)
and the segment of every ``cim_tile.vector``, a complete allocation the
lowering can carry out alone; ``cim-allocate`` refines it. The module's
``cim_tile.strategy`` becomes ``cmswitch`` and ``cim_tile.predicted_cycles``
the estimate.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.analysis.dual_mode_model import (
    Allocation,
    Program,
    Segment,
    SegmentInstance,
    build_program,
    evaluate,
    greedy_allocation,
    minimal_allocation,
    parse_dataflows,
    program_entry,
)
from cimflow.errors import CimError
from cimflow.ir_checks import tensor_function
from cimflow.milp import DEFAULT_NODE_LIMIT, DEFAULT_TIME_LIMIT, SolverBudget
from cimflow.passes.cim_allocate import (
    DEFAULT_DATAFLOWS,
    DEFAULT_MAX_COPIES,
    MilpResult,
    Plan,
    check_options,
    ranked_cost,
    solve_once,
    write_plan,
)
from cimflow.target_record import module_target

DEFAULT_MAX_SEGMENT_OPS = 64

SEGMENT_PRICINGS = ("estimate", "milp")
"""The values of ``cim-segment``'s ``pricing`` option."""


def fast_allocations(inst: SegmentInstance) -> tuple[Allocation, Allocation]:
    """The all-compute allocations the fast estimate tries: greedy copies,
    and one copy each (greedy copies may cost more than they save: it
    weighs each copy against its own MVM, not the segment's shared
    interconnect and DRAM)."""
    return greedy_allocation(inst), minimal_allocation(inst)


def estimate(program: Program, first: int, stop: int, max_copies: int) -> int:
    """Entry plus body (and, for the last segment, the final stores) of tile
    ops ``[first, stop)`` under the better all-compute allocation of
    :func:`fast_allocations`."""
    return program_entry(program, first, stop) + min(
        evaluate(inst, alloc).total
        for inst in Segment(program, first, stop).instances(max_copies, memory=False)
        for alloc in fast_allocations(inst)
    )


SegmentPrice = Callable[[Program, int, int, int], int]
"""What the DP charges for tile ops ``[first, stop)`` with ``max_copies``."""


@dataclass
class MilpPricing:
    """Prices a candidate segment with the allocation MILP, memory mode
    included (CMSwitch's Alg. 1): entry plus the cheapest body over the
    segment's dataflows of the MILP's allocation and :func:`estimate`'s
    all-compute ones (so never above the estimate; a problem the solver
    fails on has only the latter). Each distinct segment problem is solved
    once (identical layers give identical problems)."""

    budget: SolverBudget
    solved: dict[SegmentInstance, MilpResult] = field(
        default_factory=lambda: dict[SegmentInstance, MilpResult]()
    )

    def __call__(self, program: Program, first: int, stop: int, max_copies: int) -> int:
        bodies: list[int] = []
        for inst in Segment(program, first, stop).instances(max_copies):
            result = solve_once(self.solved, inst, self.budget)
            allocations = list(fast_allocations(inst))
            if not result.fallback:
                allocations.append(result.allocation)
            bodies += [evaluate(inst, alloc).total for alloc in allocations]
        return program_entry(program, first, stop) + min(bodies)


def segment_bounds(
    program: Program,
    max_segment_ops: int,
    max_copies: int,
    price: SegmentPrice = estimate,
) -> tuple[list[tuple[int, int]], int]:
    """The DP's segments (tile-op intervals) and their latency as ``price``
    charges them."""
    positions = program.mvm_positions
    count = len(program.ops)
    if not positions:
        return ([(0, count)] if count else []), (
            price(program, 0, count, max_copies) if count else 0
        )
    n = len(positions)
    starts = [0, *positions[1:], count]
    total = program.arrays
    best = [0] + [-1] * n
    choice = [0] * (n + 1)
    for j in range(1, n + 1):
        arrays = 0
        for i in range(j - 1, max(-1, j - 1 - max_segment_ops), -1):
            mvm = program.ops[positions[i]].mvm
            assert mvm is not None
            if mvm.streamed:
                if i != j - 1:
                    break
            else:
                arrays += mvm.arrays
                if arrays > total:
                    break
            if best[i] < 0:
                continue
            cost = best[i] + price(program, starts[i], starts[j], max_copies)
            if best[j] < 0 or cost < best[j]:
                best[j], choice[j] = cost, i
            if mvm.streamed:
                break
        if best[j] < 0:
            raise CimError("cim-segment found no segmentation (internal error)")
    cuts: list[int] = []
    j = n
    while j > 0:
        cuts.append(j)
        j = choice[j]
    cuts.append(0)
    cuts.reverse()
    bounds = [(starts[a], starts[b]) for a, b in itertools.pairwise(cuts)]
    return bounds, best[n]


@dataclass(frozen=True)
class CimSegmentPass(ModulePass):
    """Segments by dynamic programming, all compute, greedy copies."""

    name = "cim-segment"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    max_segment_ops: int = DEFAULT_MAX_SEGMENT_OPS
    """Most MVMs (weight-stationary operators) one segment may hold: bounds
    the DP to ``O(MVMs x max_segment_ops)`` candidate segments."""

    max_copies: int = DEFAULT_MAX_COPIES
    """Most copies of one weight the estimate's greedy allocation gives."""

    dataflows: str = DEFAULT_DATAFLOWS
    """Dataflows a segment may take (comma-separated): ``layer`` always,
    plus the pipelined ``rows`` and ``batch`` listed."""

    pricing: str = "estimate"
    """How the DP prices a candidate segment: ``estimate`` (the fast
    all-compute upper bound) or ``milp`` (the allocation MILP with memory
    mode, each distinct segment solved once: it can end a segment early to
    leave arrays for buffers and prefetches, at many more solves)."""

    node_limit: int = DEFAULT_NODE_LIMIT
    """With ``pricing=milp``: branch-and-bound nodes per distinct problem."""

    time_limit: float | int = DEFAULT_TIME_LIMIT
    """With ``pricing=milp``: seconds per distinct problem (a safety net)."""

    mip_gap: float | int = 1e-3
    """With ``pricing=milp``: the relative gap at which HiGHS stops."""

    def price(self) -> SegmentPrice:
        """The DP's pricing of a candidate segment."""
        if self.pricing == "estimate":
            return estimate
        if self.pricing == "milp":
            budget = SolverBudget(
                self.node_limit, float(self.time_limit), float(self.mip_gap)
            )
            check_options(self.name, budget, self.max_copies)
            return MilpPricing(budget)
        raise CimError(
            f"cim-segment: pricing must be one of {', '.join(SEGMENT_PRICINGS)}, "
            f"got {self.pricing!r}"
        )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.max_segment_ops < 1:
            raise CimError(
                f"cim-segment: max_segment_ops must be positive, got "
                f"{self.max_segment_ops}"
            )
        if self.max_copies < 1:
            raise CimError(
                f"cim-segment: max_copies must be positive, got {self.max_copies}"
            )
        price = self.price()
        pipelined = parse_dataflows(self.dataflows, self.name)
        hw = module_target(op, self.target, self.name)
        function = tensor_function(op, self.name)
        program = build_program(function, hw, pipelined=pipelined)
        bounds, predicted = segment_bounds(
            program, self.max_segment_ops, self.max_copies, price
        )
        instances: list[SegmentInstance] = []
        allocations: list[Allocation] = []
        for first, stop in bounds:
            choices = [
                (ranked_cost(inst, evaluate(inst, alloc).total), inst, alloc)
                for inst in Segment(program, first, stop).instances(
                    self.max_copies, memory=False
                )
                for alloc in fast_allocations(inst)
            ]
            _, inst, alloc = min(choices, key=lambda choice: choice[0])
            instances.append(inst)
            allocations.append(alloc)
        plan = Plan(bounds, allocations, instances, predicted, [])
        write_plan(op, function, program, plan, "cmswitch")
