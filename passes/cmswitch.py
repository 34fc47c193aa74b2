"""cim-cmswitch: the dual-mode allocation, ``cim-segment`` then ``cim-allocate``.

The allocation pass of the ``cmswitch`` strategy
(``cim-compile{strategy=cmswitch}``): segment boundaries by dynamic
programming, then per segment copies and memory-mode arrays by a MILP
(``docs/dual-mode.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.milp import DEFAULT_NODE_LIMIT, DEFAULT_TIME_LIMIT
from cimflow.passes.cim_allocate import (
    DEFAULT_DATAFLOWS,
    DEFAULT_MAX_COPIES,
    CimAllocatePass,
)
from cimflow.passes.cim_segment import DEFAULT_MAX_SEGMENT_OPS, CimSegmentPass


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

    check_dataflows: bool = True
    """Keep pipelined dataflows only where the simulator finds them faster
    (``cim-allocate``'s option)."""

    segment_pricing: str = "estimate"
    """How the DP prices candidate segments (``cim-segment``'s ``pricing``:
    ``estimate`` or ``milp``, with this pass's solver budget)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        CimSegmentPass(
            target=self.target,
            max_segment_ops=self.max_segment_ops,
            max_copies=self.max_copies,
            dataflows=self.dataflows,
            pricing=self.segment_pricing,
            node_limit=self.node_limit,
            time_limit=self.time_limit,
            mip_gap=self.mip_gap,
        ).apply(ctx, op)
        CimAllocatePass(
            target=self.target,
            node_limit=self.node_limit,
            time_limit=self.time_limit,
            mip_gap=self.mip_gap,
            max_copies=self.max_copies,
            kv_cache=self.kv_cache,
            dataflows=self.dataflows,
            solver_log=self.solver_log,
            check_staging=self.check_staging,
            check_dataflows=self.check_dataflows,
        ).apply(ctx, op)
