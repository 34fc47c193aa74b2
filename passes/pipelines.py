"""Preset pipelines: a whole flow under one ``-p`` name.

``cim-compile{strategy=NAME target=T}`` runs convert-graph-to-tile, the
strategy's allocation pass and convert-tile-to-meta (``sparse_rows=true``:
``cim-sparse-rows`` before the allocation, ``sparse_orientation=best`` for
its held columns too, ``sparse_rearrangement=slice`` to slice ragged
column tiles); ``STRATEGIES`` lists the
strategies by name. ``cim-compile-static`` is ``cim-compile{strategy=static}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.errors import CimError
from cimflow.passes.cim_sparse_rows import CimSparseRowsPass
from cimflow.passes.cimmlc_allocate import CimMlcAllocatePass
from cimflow.passes.clsa_allocate import ClsaAllocatePass
from cimflow.passes.cmswitch import CmswitchPass
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.pimcomp_allocate import PimcompAllocatePass
from cimflow.passes.static_allocate import StaticAllocatePass

AllocationFactory = Callable[[str], ModulePass]
"""Builds a strategy's allocation pass for a target spec."""

STRATEGIES: dict[str, AllocationFactory] = {
    "static": StaticAllocatePass,
    "pimcomp-ht": lambda target: PimcompAllocatePass(target, "throughput"),
    "pimcomp-ll": lambda target: PimcompAllocatePass(target, "latency"),
    "clsa-cim": ClsaAllocatePass,
    "cim-mlc": CimMlcAllocatePass,
    "cmswitch": CmswitchPass,
}
"""Allocation strategies by name; each produces the same cim_tile attributes."""


def allocation_pass(strategy: str, target: str) -> ModulePass:
    """The allocation pass of ``strategy`` for ``target``."""
    factory = STRATEGIES.get(strategy)
    if factory is None:
        raise CimError(
            f"unknown strategy '{strategy}' (strategies: {', '.join(STRATEGIES)})"
        )
    return factory(target)


@dataclass(frozen=True)
class CompilePass(ModulePass):
    """convert-graph-to-tile, a strategy's allocation, convert-tile-to-meta."""

    name = "cim-compile"

    strategy: str = "static"
    """One of ``STRATEGIES``."""

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    sparse_rows: bool = False
    """Run ``cim-sparse-rows`` before the allocation: arrays hold only the
    weight rows their columns need (a pruned model's)."""

    sparse_orientation: str = "row"
    """``cim-sparse-rows``'s ``orientation`` (``row``, ``column`` or
    ``best``), with ``sparse_rows``."""

    sparse_rearrangement: str = "pad"
    """``cim-sparse-rows``'s ``rearrangement`` (``pad`` or ``slice``), with
    ``sparse_rows``."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        steps: list[ModulePass] = [ConvertGraphToTilePass(self.target)]
        if self.sparse_rows:
            steps.append(
                CimSparseRowsPass(
                    target=self.target,
                    orientation=self.sparse_orientation,
                    rearrangement=self.sparse_rearrangement,
                )
            )
        steps += [
            allocation_pass(self.strategy, self.target),
            ConvertTileToMetaPass(self.target),
        ]
        for step in steps:
            step.apply(ctx, op)


@dataclass(frozen=True)
class CompileStaticPass(ModulePass):
    """convert-graph-to-tile, cim-static-allocate, convert-tile-to-meta."""

    name = "cim-compile-static"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        CompilePass("static", self.target).apply(ctx, op)
