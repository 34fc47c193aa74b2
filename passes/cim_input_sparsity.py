"""cim-input-sparsity: enable zero skipping of input bit-planes per MVM.

A bit-serial array drives each input vector one bit-plane at a time. On a
target with zero detectors (``array.zero_skip``, CIMinus's input
bit-sparsity), each detector watches ``array.zero_detect_rows`` rows: a
plane zero on its rows leaves their cells and drivers idle, and a plane
zero on every row of a word-line pass is skipped (no cycle, no
conversion); every plane pays a detection per detector
(``energy.zero_detect_pj``). How many planes are zero depends on the data,
so it is measured: ``cim-verify --mode quantized --zero-planes FILE``
counts them per MVM weight on sample inputs in the functional executor
(``cimflow.analysis.zero_planes``). This pass reads that profile and
writes the measured shares as ``zero_planes`` (whole planes) and
``zero_groups`` (a detector's rows) on each ``cim_tile.mvm`` where
skipping serves the ``objective``; the allocation models, the lowering, the
lower bound and the simulator price them through one rule
(:func:`cimflow.lowering.rules.mvm_target`). Skipping changes no value: a
zero plane adds nothing to any column sum.

- ``profile=FILE``: the measured profile (required);
- ``objective=energy`` (default): enable skipping on an MVM where the
  cost model prices its arrays' work with skipping (the idle rows' and
  skipped planes' savings, and a detection per detector and plane) below
  the work without; ``latency``: wherever it skips a cycle (a share of
  whole planes above 0), whatever the detections cost; ``always``: on
  every measured MVM;
- ``layers=a,b``: only the MVMs of these ONNX nodes (default: all).

Run it after ``convert-graph-to-tile`` and before the allocation::

    cim-verify model.onnx --target ciminus --mode quantized --zero-planes z.json
    cim-opt model.onnx -p 'convert-graph-to-tile{target=ciminus},
        cim-input-sparsity{profile="z.json"},cim-static-allocate,convert-tile-to-meta'
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, ModuleOp, f64
from xdsl.passes import ModulePass

from cimflow.analysis.layer_selection import selected_mvms
from cimflow.analysis.tile_mapping import array_cells
from cimflow.analysis.zero_planes import read_profile
from cimflow.cimdialect import cim_tile
from cimflow.cost_model import ZeroShares, mvm_cost, with_mvm_choices
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import module_target

OBJECTIVES = ("energy", "latency", "always")


@dataclass(frozen=True)
class CimInputSparsityPass(ModulePass):
    """Enable zero skipping where a profile measured zero input bit-planes."""

    name = "cim-input-sparsity"

    profile: str = ""
    """The zero-plane profile (``cim-verify --zero-planes``)."""

    objective: str = "energy"
    """``energy``, ``latency`` or ``always``: where skipping is enabled."""

    layers: tuple[str, ...] = ()
    """ONNX node names of the MVMs to set (empty: every measured MVM)."""

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.profile:
            raise CimError(f"{self.name}: give profile=FILE (cim-verify --zero-planes)")
        if self.objective not in OBJECTIVES:
            raise CimError(
                f"{self.name}: objective must be one of {', '.join(OBJECTIVES)}, "
                f"got '{self.objective}'"
            )
        hw = module_target(op, self.target, self.name)
        if not hw.array.zero_skip:
            raise CimError(
                f"{self.name}: target '{hw.name}' has no zero detectors "
                "(array.zero_skip = false)"
            )
        profile = read_profile(self.profile)
        if profile.target != hw.name:
            raise CimError(
                f"{self.name}: {self.profile} was measured on target "
                f"'{profile.target}', the module is compiled for '{hw.name}'"
            )
        for mvm in selected_mvms(op, self.layers, self.name):
            shares = profile.shares(mvm.weight.data)
            if shares is None:
                if self.layers:
                    raise CimError(
                        f"{self.name}: {self.profile} has no planes of weight "
                        f"'{mvm.weight.data}'"
                    )
                continue
            if self.pays(hw, mvm, shares):
                mvm.zero_planes = FloatAttr(shares.planes, f64)
                mvm.zero_groups = FloatAttr(shares.groups, f64)

    def pays(self, hw: HardwareTarget, mvm: cim_tile.MVMOp, shares: ZeroShares) -> bool:
        """Whether skipping with ``shares`` serves the objective on ``mvm``:
        one array's work on one vector, priced by the cost model."""
        if self.objective == "always":
            return True
        if self.objective == "latency":
            return shares.planes > 0
        rows, cols = array_cells(mvm.tiling)
        plain = with_mvm_choices(hw, mvm.chosen_rows_per_pass)
        skipping = with_mvm_choices(hw, mvm.chosen_rows_per_pass, shares)
        return (
            mvm_cost(skipping, 1, 1, rows, cols).total_energy_pj
            < mvm_cost(plain, 1, 1, rows, cols).total_energy_pj
        )
