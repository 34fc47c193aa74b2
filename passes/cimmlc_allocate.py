"""cim-mlc-allocate: CIM-MLC's granularity-aware mapping and scheduling
(Qu et al., "CIM-MLC: A Multi-level Compilation Stack for Computing-In-Memory
Accelerators", ASPLOS 2024).

CIM-MLC maps a network according to the computing mode the target's ISA
exposes (``target.array.compute_granularity``):

- ``core``: all arrays of a core act as one, so the allocation unit is a
  whole core. Layers are packed into segments while one copy of each fits in
  whole cores; each copy starts on a core boundary (``align`` = arrays per
  core) and takes whole cores; the cores left in the segment go to extra
  copies by CIM-MLC's duplication dynamic program (minimum total MVM cycles
  of the segment, with the time extra copies' weights take to stream in,
  each extra copy costing its cores).
- ``crossbar``: each array is addressed separately: copies are packed array
  by array (no alignment) and the same dynamic program hands out the arrays
  left, in units of arrays.
- ``wordline``: only ``active_rows`` rows drive at once, so an MVM over more
  rows takes several passes. The cost model charges the passes, so the
  dynamic program sees multi-pass layers as the slow ones and duplicates them
  first (their passes repeat for every vector, and copies split the vectors).

In every mode the layers of a segment are pipelined at crossbar level: the
``rows`` dataflow with ``blocks`` blocks (CIM-MLC's inter-layer pipeline). A
layer larger than the chip streams in chunks in a segment of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.passes import ModulePass

from cimflow.analysis.allocation import (
    Layer,
    Segment,
    allocate,
    min_total_cycles,
    placement_end,
    useful_choices,
)
from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import module_target

MAX_UNITS = 256
"""The dynamic program counts arrays in units small enough that a segment
has at most this many to hand out (one unit = one array on small chips)."""


def cores_per_copy(hw: HardwareTarget, layer: Layer) -> int:
    """Whole cores one copy of ``layer`` occupies."""
    return math.ceil(layer.arrays / hw.hierarchy.arrays_per_core)


@dataclass(frozen=True)
class CimMlcPolicy:
    """CIM-MLC's decisions for the target's computing mode."""

    row_blocks: int

    @property
    def strategy(self) -> str:
        return "cim-mlc"

    def align(self, hw: HardwareTarget, arrays: int) -> int:
        if hw.array.compute_granularity == "core":
            return hw.hierarchy.arrays_per_core
        return 1

    def dataflow(self, hw: HardwareTarget, batch: int) -> Dataflow:
        return Dataflow.ROWS

    def blocks(self, hw: HardwareTarget, segment: Segment, batch: int) -> int:
        return self.row_blocks

    def replicate(self, hw: HardwareTarget, segment: Segment) -> None:
        layers = segment.layers
        if hw.array.compute_granularity == "core":
            used = sum(cores_per_copy(hw, layer) for layer in layers)
            budget = max(0, hw.total_cores - used)
            costs = [_core_cost(hw, layer) for layer in layers]
        else:
            spare = hw.total_arrays - placement_end(layers)
            unit = max(1, math.ceil(spare / MAX_UNITS))
            budget = spare // unit
            costs = [_array_cost(layer, unit) for layer in layers]
        choices = [
            useful_choices(hw, layer, cost, budget)
            for layer, cost in zip(layers, costs, strict=True)
        ]
        for layer, copies in zip(
            layers, min_total_cycles(choices, budget), strict=True
        ):
            layer.copies = copies


def _core_cost(hw: HardwareTarget, layer: Layer) -> Callable[[int], int]:
    """Cores that ``copies`` copies take beyond the first."""
    per_copy = cores_per_copy(hw, layer)
    return lambda copies: (copies - 1) * per_copy


def _array_cost(layer: Layer, unit: int) -> Callable[[int], int]:
    """Units of ``unit`` arrays that ``copies`` copies take beyond the first."""
    return lambda copies: math.ceil((copies - 1) * layer.arrays / unit)


@dataclass(frozen=True)
class CimMlcAllocatePass(ModulePass):
    """CIM-MLC: duplication at the granularity the target's ISA exposes
    (whole cores, crossbars, or crossbars charged per wordline pass) and a
    crossbar-level row pipeline in every segment."""

    name = "cim-mlc-allocate"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    blocks: int = 8
    """Row-pipeline blocks per segment (each at least one row)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.blocks < 1:
            raise CimError(f"cim-mlc-allocate: blocks {self.blocks} must be >= 1")
        hw = module_target(op, self.target, self.name)
        allocate(op, hw, CimMlcPolicy(self.blocks))
        if hw.array.compute_granularity == "core":
            _mark_core_alignment(op, hw.hierarchy.arrays_per_core)


def _mark_core_alignment(module: ModuleOp, per_core: int) -> None:
    """State the core alignment on every resident weight, even when a core
    holds one array (``align 1`` is then what the target means)."""
    for op in module.walk():
        alloc = op.alloc if isinstance(op, cim_tile.MVMOp) else None
        if isinstance(op, cim_tile.MVMOp) and alloc and alloc.field("chunks") == 1:
            op.align = IntegerAttr(per_core, i64)
