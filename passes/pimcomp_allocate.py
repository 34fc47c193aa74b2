"""cim-pimcomp-allocate: PIMCOMP's weight replication, core mapping and
pipelines (Sun et al., "PIMCOMP: A Universal Compilation Framework for
Crossbar-based PIM DNN Accelerators", DAC 2023 / TCAD).

- Layer partitioning is our tiling (``convert-graph-to-tile``).
- Weight replication by PIMCOMP's ``balance`` rule: every layer starts with
  one copy; while arrays remain, the layer with the most MVM cycles (its
  vectors per copy, costed by the cost model, wordline passes included, and
  the time its extra copies' weights take to stream in: PIMCOMP takes
  weights as programmed, this machine programs them) gets the fewest extra
  copies that make it faster; replication stops when that bottleneck cannot
  be made faster or its next copy does not fit.
- Core mapping: a copy that fits in one core is aligned (``align``) so that
  it never straddles two cores; copies of several layers still share a core.
- Dataflow: ``throughput`` pipelines the samples of the batch through the
  segment (``batch`` with one block per sample; ``layer`` for one sample);
  ``latency`` pipelines rows of each sample's feature maps (or sequence
  positions) through the layers (``rows`` with ``blocks`` blocks).
- PIMCOMP needs the whole model on chip; here a model that does not fit is
  packed into segments (one copy of each layer fits), and a layer larger than
  the chip streams its weight in chunks in a segment of its own, as the static
  baseline does: nothing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.analysis.allocation import Segment, allocate, balance, core_align
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import module_target

PIMCOMP_DATAFLOWS = {"throughput": "pimcomp-ht", "latency": "pimcomp-ll"}
"""PIMCOMP's two dataflows and the strategy name each one records."""


@dataclass(frozen=True)
class PimcompPolicy:
    """PIMCOMP's decisions for one dataflow."""

    dataflow_mode: str
    row_blocks: int

    @property
    def strategy(self) -> str:
        return PIMCOMP_DATAFLOWS[self.dataflow_mode]

    def align(self, hw: HardwareTarget, arrays: int) -> int:
        return core_align(arrays, hw.hierarchy.arrays_per_core)

    def dataflow(self, hw: HardwareTarget, batch: int) -> Dataflow:
        if self.dataflow_mode == "latency":
            return Dataflow.ROWS
        return Dataflow.BATCH if batch > 1 else Dataflow.LAYER

    def blocks(self, hw: HardwareTarget, segment: Segment, batch: int) -> int:
        return batch if segment.kind == Dataflow.BATCH else self.row_blocks

    def replicate(self, hw: HardwareTarget, segment: Segment) -> None:
        balance(hw, segment, stop_at_bottleneck=True)


@dataclass(frozen=True)
class PimcompAllocatePass(ModulePass):
    """PIMCOMP: balanced weight replication, whole-core copies, and a batch
    (throughput) or row (latency) pipeline in every segment."""

    name = "cim-pimcomp-allocate"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    dataflow: str = "throughput"
    """``throughput`` (samples pipelined through each segment; layer by layer
    for one sample) or ``latency`` (rows pipelined through the layers)."""

    blocks: int = 8
    """Pipeline blocks of the ``latency`` dataflow (each at least one row)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.dataflow not in PIMCOMP_DATAFLOWS:
            raise CimError(
                f"cim-pimcomp-allocate: dataflow '{self.dataflow}' is not one of "
                f"{', '.join(PIMCOMP_DATAFLOWS)}"
            )
        if self.blocks < 1:
            raise CimError(f"cim-pimcomp-allocate: blocks {self.blocks} must be >= 1")
        policy = PimcompPolicy(self.dataflow, self.blocks)
        allocate(op, module_target(op, self.target, self.name), policy)
