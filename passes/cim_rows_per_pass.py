"""cim-rows-per-pass: how many word lines each MVM drives per ADC pass.

An analog array sums, in each column, the currents of the rows driven
together, and its ADC resolves that sum in ``2^adc_bits`` codes. The more
rows a pass drives, the larger the sums its ADC must span, so the coarser
its step; driving fewer rows per pass keeps the resolution and costs time
(``ceil(rows / r)`` passes per input vector) and energy (every pass converts
every column again). The target's ``array.active_rows`` is the most a pass
may drive; this pass chooses fewer for the MVMs it names and writes the
choice as ``rows_per_pass`` on each ``cim_tile.mvm``, which the allocation
models, the lowering, the simulator and the functional executor all follow
(:func:`cimflow.lowering.rules.mvm_target`).

- ``rows=R``: at most ``R`` rows per pass;
- ``lossless=true``: the most rows whose largest possible sum the ADC
  resolves exactly, ``floor((2^adc_bits - 1) / ((2^dac_bits - 1)
  (2^cell_bits - 1)))``, for every MVM whose arrays use more rows than that
  (nothing changes where the target's active rows are that few already);
- ``layers=a,b``: only the MVMs of these ONNX nodes (default: all).

Run it after ``convert-graph-to-tile`` and before the allocation, so that
the allocation prices the passes::

    cim-opt model.onnx -p 'convert-graph-to-tile{target=dynaplasia},
        cim-rows-per-pass{lossless=true},cim-static-allocate,convert-tile-to-meta'
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.passes import ModulePass

from cimflow.analysis.layer_selection import selected_mvms
from cimflow.analysis.tile_mapping import array_cells
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import module_target


def lossless_rows(hw: HardwareTarget) -> int:
    """The most rows per pass whose largest column sum the ADC resolves
    exactly (0: not even one row's)."""
    a = hw.array
    largest_row = (2**a.dac_bits - 1) * (2**a.cell_bits - 1)
    return (2**a.adc_bits - 1) // largest_row


@dataclass(frozen=True)
class CimRowsPerPassPass(ModulePass):
    """Choose the rows each MVM drives per ADC pass."""

    name = "cim-rows-per-pass"

    rows: int = 0
    """At most this many rows per pass (0: see ``lossless``)."""

    lossless: bool = False
    """Drive at most the rows whose largest sum the ADC resolves exactly."""

    layers: tuple[str, ...] = ()
    """ONNX node names of the MVMs to set (empty: every MVM)."""

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def chosen(self, hw: HardwareTarget) -> int:
        """The rows per pass the options ask for on ``hw``."""
        if (self.rows > 0) == self.lossless:
            raise CimError(
                f"{self.name}: give exactly one of rows=R (R >= 1) and lossless=true"
            )
        if self.rows < 0:
            raise CimError(f"{self.name}: rows must be positive, got {self.rows}")
        rows = self.rows or min(lossless_rows(hw), hw.array.active_rows)
        if rows < 1:
            raise CimError(
                f"{self.name}: target '{hw.name}' cannot convert even one row's "
                f"largest sum exactly ({hw.array.adc_bits}-bit ADC, "
                f"{hw.array.dac_bits}-bit DAC, {hw.array.cell_bits}-bit cells)"
            )
        if rows > hw.array.active_rows:
            raise CimError(
                f"{self.name}: rows={rows} exceeds the {hw.array.active_rows} "
                f"active rows of target '{hw.name}'"
            )
        return rows

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = module_target(op, self.target, self.name)
        rows = self.chosen(hw)
        for mvm in selected_mvms(op, self.layers, self.name):
            if array_cells(mvm.tiling)[0] > rows:
                mvm.rows_per_pass = IntegerAttr(rows, i64)
