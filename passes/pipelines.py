"""Preset pipelines: a whole flow under one ``-p`` name."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.hw_targets import DEFAULT_TARGET
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.static_allocate import StaticAllocatePass


@dataclass(frozen=True)
class CompileStaticPass(ModulePass):
    """convert-graph-to-tile, cim-static-allocate, convert-tile-to-meta."""

    name = "cim-compile-static"

    target: str = DEFAULT_TARGET
    """A shipped target name or a path to a target TOML file."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for step in (
            ConvertGraphToTilePass(self.target),
            StaticAllocatePass(self.target),
            ConvertTileToMetaPass(self.target),
        ):
            step.apply(ctx, op)
