"""cim-clsa-allocate: CLSA-CIM's cross-layer scheduling with weight
duplication (Pelke et al., "CLSA-CIM: A Cross-Layer Scheduling Approach for
Computing-in-Memory Architectures", DATE 2024).

- Cross-layer scheduling: a layer starts on the part of its input that is
  already computed. Every segment runs the ``rows`` dataflow: each operator
  runs in bands of output rows (feature-map rows, or sequence positions) and
  each band waits only for the producer bands it reads. By default
  (``blocks = 0``) a band is one output row of the operator with the most
  rows (CLSA-CIM's row-granular sets), up to ``MAX_ROW_BANDS`` bands; no band
  is ever less than one row.
- Weight duplication: one copy of every layer of the segment is placed, then
  the arrays that remain go, one copy at a time, to the layer with the most
  MVM cycles (cost model, with the time extra copies' weights take to
  stream in) that another copy still makes faster and that still fits; a
  layer that cannot take one is passed over for the next (the first CNN
  layers, with the largest feature maps, usually win).
- Segments and streamed weights as in the static baseline: layers packed in
  program order while one copy of each fits; a layer larger than the chip
  streams in chunks in a segment of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.analysis.allocation import Segment, allocate, balance
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import module_target

MAX_ROW_BANDS = 32
"""By default a band is one output row, but an operator runs in at most this
many bands (longer maps and sequences put several rows in a band), so that a
long sequence does not multiply the schedule by its length."""


@dataclass(frozen=True)
class ClsaPolicy:
    """CLSA-CIM's decisions."""

    row_blocks: int

    @property
    def strategy(self) -> str:
        return "clsa-cim"

    def align(self, hw: HardwareTarget, arrays: int) -> int:
        return 1

    def dataflow(self, hw: HardwareTarget, batch: int) -> Dataflow:
        return Dataflow.ROWS

    def blocks(self, hw: HardwareTarget, segment: Segment, batch: int) -> int:
        if self.row_blocks > 0:
            return self.row_blocks
        return min(MAX_ROW_BANDS, max(segment.rows, default=1))

    def replicate(self, hw: HardwareTarget, segment: Segment) -> None:
        balance(hw, segment, stop_at_bottleneck=False)


@dataclass(frozen=True)
class ClsaAllocatePass(ModulePass):
    """CLSA-CIM: row-band cross-layer scheduling in every segment, and
    duplication of the layers with the most MVM work in the arrays left."""

    name = "cim-clsa-allocate"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    blocks: int = 0
    """Row bands per operator in a segment: 0 for one output row per band
    (of the operator with the most rows, at most ``MAX_ROW_BANDS`` bands),
    else at most this many bands (never less than a row each)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.blocks < 0:
            raise CimError(f"cim-clsa-allocate: blocks {self.blocks} must be >= 0")
        allocate(op, module_target(op, self.target, self.name), ClsaPolicy(self.blocks))
