"""cim-static-allocate: every array computes, one layer after another.

The PUMA-like baseline. Operators are taken in program order and packed into
segments while their weights fit the chip together; a segment's weights are
programmed once, and the next segment re-programs the arrays. An operator
larger than the whole chip gets a segment of its own and streams its weight
through the arrays in chunks, so no model is ever refused for its size.
Arrays a ``cim_tile.memory_buffer kv_cache`` holds for the whole run are left
out: the segments get the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.passes import ModulePass

from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.target_record import module_target

STRATEGY_ATTR = "cim_tile.strategy"
"""Module attribute naming the allocation strategy that ran."""


@dataclass(frozen=True)
class StaticAllocatePass(ModulePass):
    """Layer-by-layer allocation with all arrays in compute mode."""

    name = "cim-static-allocate"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = module_target(op, self.target, self.name)
        total = hw.total_arrays
        reserved = sum(
            inner.arrays.value.data
            for inner in op.walk()
            if isinstance(inner, cim_tile.MemoryBufferOp)
            and inner.role.data == cim_tile.BufferRole.KV_CACHE
        )
        # a KV cache that leaves no array is refused by the lowering, which
        # knows how many arrays can switch
        total = max(1, total - reserved)
        segment, used = 0, 0
        started = False
        for inner in op.walk():
            if isinstance(inner, cim_tile.MVMOp):
                need = inner.tiling.arrays_per_copy
                chunks = len(plan_chunks(inner.tiling, total, hw))
                if started and (chunks > 1 or used + need > total):
                    segment, used = segment + 1, 0
                inner.alloc = cim_tile.AllocAttr.from_ints(segment, 1, chunks)
                used += min(need, total)
                started = True
                if chunks > 1:
                    used = total
            elif isinstance(inner, cim_tile.VectorOp):
                inner.segment = IntegerAttr(segment, i64)
        op.attributes[STRATEGY_ATTR] = StringAttr("static")
