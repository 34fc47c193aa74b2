"""cim-cmswitch: the dual-mode allocation, ``cim-segment`` then ``cim-allocate``.

The allocation pass of the ``cmswitch`` strategy
(``cim-compile{strategy=cmswitch}``): segment boundaries by dynamic
programming, then per segment copies and memory-mode arrays by a MILP
(``docs/dual-mode.md``).

The DP prices segments with the dual-mode model, which the simulator does
not always agree with; with ``check_segments`` the static baseline's
packing (operators in program order while their weights fit the chip
together) is allocated by the same MILP on a copy of the module, and where
its boundaries differ from the DP's and the simulator finds its run
strictly faster, the module takes that allocation instead (a
``cim_tile.remark`` gives both cycle counts). With ``check_static`` the
static baseline's own plan (every array computing, one copy of each
weight) is simulated too, where the dual-mode plan was simulated by a
check, and kept where its run is strictly faster: all-compute is a point
of the dual-mode space, which the model may misprice (GPT-2's decode step
on dynaplasia: 5 344 151 cycles static, 5 344 535 as the MILP planned it).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from cimflow.ir_checks import tensor_function
from cimflow.milp import DEFAULT_NODE_LIMIT, DEFAULT_TIME_LIMIT
from cimflow.passes.cim_allocate import (
    DEFAULT_DATAFLOWS,
    DEFAULT_MAX_COPIES,
    REMARK_ATTR,
    CimAllocatePass,
    segment_bounds,
    set_remark,
    simulated_cycles,
)
from cimflow.passes.cim_segment import DEFAULT_MAX_SEGMENT_OPS, CimSegmentPass
from cimflow.passes.static_allocate import STRATEGY_ATTR, StaticAllocatePass


@dataclass(frozen=True)
class CmswitchPass(ModulePass):
    """cim-segment, then cim-allocate, with the same target."""

    name = "cim-cmswitch"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    node_limit: int = DEFAULT_NODE_LIMIT
    """Branch-and-bound nodes HiGHS may explore on each distinct segment
    problem (``cim-allocate``'s option)."""

    time_limit: float | int = DEFAULT_TIME_LIMIT
    """Seconds HiGHS may spend on each distinct segment problem: a safety
    net behind ``node_limit``."""

    mip_gap: float | int = 1e-3
    """Relative optimality gap at which HiGHS stops."""

    max_copies: int = DEFAULT_MAX_COPIES
    """Most copies of one weight considered."""

    max_segment_ops: int = DEFAULT_MAX_SEGMENT_OPS
    """Most MVMs one segment may hold (bounds the DP)."""

    kv_cache: bool = True
    """Consider keeping a decoder's past keys and values in memory-mode
    arrays for the whole run (``cim-allocate``'s option)."""

    dataflows: str = DEFAULT_DATAFLOWS
    """Dataflows a segment may take (comma-separated): ``layer`` always,
    plus the pipelined ``rows`` and ``batch`` listed."""

    solver_log: bool = False
    """Write HiGHS's log to stderr (it is silent otherwise)."""

    check_staging: bool = True
    """Keep a ``weights`` buffer (the next segment's weights staged) only
    where the simulator finds the run no faster without it
    (``cim-allocate``'s option)."""

    check_activations: bool = True
    """Keep an ``activations`` buffer only where the simulator finds the run
    no faster without it (``cim-allocate``'s option)."""

    check_alternation: bool = True
    """Simulate the plan with its streams the other way too (on one run of
    their free arrays, or alternating between its halves) and keep that
    where the run is strictly faster (``cim-allocate``'s option)."""

    check_dataflows: bool = True
    """Keep pipelined dataflows only where the simulator finds them faster
    (``cim-allocate``'s option)."""

    check_segments: bool = True
    """Allocate the static baseline's segments too and keep them where the
    simulator finds that run strictly faster than the DP's."""

    check_static: bool = True
    """Simulate the static baseline's plan too (``cim-compile{strategy=static}``'s
    allocation) and keep it where its run is strictly faster than the
    dual-mode allocation's, when the latter was simulated anyway (by a
    check of ``cim-allocate``'s or the segment check): a plan with nothing
    for the simulator to check costs no simulation (simulating both took
    32-layer LLaMA-2-7B prefill's compile on dynaplasia from 5.1 to
    14.6 s). The static plan carries no prediction or solver record."""

    segment_pricing: str = "estimate"
    """How the DP prices candidate segments (``cim-segment``'s ``pricing``:
    ``estimate`` or ``milp``, with this pass's solver budget)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        checks = self.check_segments or self.check_static
        packed = op.clone() if checks else None
        self._segment().apply(ctx, op)
        allocation = self._allocate()
        cycles = allocation.allocate(op)
        if packed is None:
            return
        StaticAllocatePass(self.target).apply(ctx, packed)
        dp_bounds = segment_bounds(tensor_function(op, self.name))
        packed_bounds = segment_bounds(tensor_function(packed, self.name))
        repack = self.check_segments and packed_bounds != dp_bounds
        static = packed.clone() if repack and self.check_static else packed
        if repack:
            packed.attributes[STRATEGY_ATTR] = op.attributes[STRATEGY_ATTR]
            packed_cycles = allocation.allocate(packed)
            if cycles is None:
                cycles = simulated_cycles(op, self.target)
            if packed_cycles is None:
                packed_cycles = simulated_cycles(packed, self.target)
            if packed_cycles < cycles:
                take_module(op, packed)
                add_remark(
                    op,
                    f"the static packing's {len(packed_bounds)} segments simulate "
                    f"to {packed_cycles} cycles, the DP's {len(dp_bounds)} to "
                    f"{cycles}: kept the static packing",
                )
                cycles = packed_cycles
        if self.check_static and cycles is not None:
            self._keep_static_if_faster(op, static, cycles)

    def _keep_static_if_faster(
        self, op: ModuleOp, static: ModuleOp, cycles: int
    ) -> None:
        """Make ``op`` the static baseline's plan (``static``) where that
        simulates strictly faster than ``op``'s (``cycles``)."""
        static_cycles = simulated_cycles(static, self.target)
        if static_cycles >= cycles:
            return
        strategy = op.attributes[STRATEGY_ATTR]
        remark = op.attributes.get(REMARK_ATTR)
        take_module(op, static)
        op.attributes[STRATEGY_ATTR] = strategy
        if remark is not None:
            op.attributes[REMARK_ATTR] = remark
        add_remark(
            op,
            f"the static baseline's plan simulates to {static_cycles} cycles, "
            f"the dual-mode allocation's to {cycles}: kept the static plan",
        )

    def _segment(self) -> CimSegmentPass:
        return CimSegmentPass(
            target=self.target,
            max_segment_ops=self.max_segment_ops,
            max_copies=self.max_copies,
            dataflows=self.dataflows,
            pricing=self.segment_pricing,
            node_limit=self.node_limit,
            time_limit=self.time_limit,
            mip_gap=self.mip_gap,
        )

    def _allocate(self) -> CimAllocatePass:
        return CimAllocatePass(
            target=self.target,
            node_limit=self.node_limit,
            time_limit=self.time_limit,
            mip_gap=self.mip_gap,
            max_copies=self.max_copies,
            kv_cache=self.kv_cache,
            dataflows=self.dataflows,
            solver_log=self.solver_log,
            check_staging=self.check_staging,
            check_activations=self.check_activations,
            check_alternation=self.check_alternation,
            check_dataflows=self.check_dataflows,
        )


def add_remark(module: ModuleOp, remark: str) -> None:
    """Append ``remark`` to the module's ``cim_tile.remark``."""
    earlier = module.attributes.get(REMARK_ATTR)
    set_remark(
        module, [*([earlier.data] if isinstance(earlier, StringAttr) else []), remark]
    )


def take_module(module: ModuleOp, other: ModuleOp) -> None:
    """Make ``module`` what ``other`` is: its attributes and body (moved)."""
    module.attributes = dict(other.attributes)
    module.properties = dict(other.properties)
    module.body.detach_block(0).erase()
    other.body.move_blocks(module.body)
