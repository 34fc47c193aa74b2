"""cim-input-sparsity: enable zero skipping of input bit-planes per MVM.

A bit-serial array drives each input vector one bit-plane at a time. On a
target with zero detectors (``array.zero_skip``, CIMinus's input
bit-sparsity), a plane that is zero on every row of a word-line pass is
skipped: no cycles, no array, DAC or ADC work, but every plane pays a
detection (``energy.zero_detect_pj``). How many planes are zero depends on
the data, so it is measured: ``cim-verify --mode quantized --zero-planes
FILE`` counts them per MVM weight on sample inputs in the functional
executor (``cimflow.analysis.zero_planes``). This pass reads that profile
and writes the measured share as ``zero_planes`` on each ``cim_tile.mvm``
whose share reaches ``min_share``; the allocation models, the lowering, the
lower bound and the simulator price it through one rule
(:func:`cimflow.lowering.rules.mvm_target`). Skipping changes no value: a
zero plane adds nothing to any column sum.

- ``profile=FILE``: the measured profile (required);
- ``min_share=S``: enable skipping only where at least this share of the
  planes was zero (default 0.05). Skipping never costs time, but every
  plane pays a detection: on the shipped ``ciminus`` target a detection is
  0.1 pJ and a skipped plane saves 0.48 pJ of array energy plus 0.01 pJ per
  driven row, so a few percent pays on a 3 x 3 convolution's hundreds of
  rows and not on a few rows;
- ``layers=a,b``: only the MVMs of these ONNX nodes (default: all).

Run it after ``convert-graph-to-tile`` and before the allocation::

    cim-verify model.onnx --target ciminus --mode quantized --zero-planes z.json
    cim-opt model.onnx -p 'convert-graph-to-tile{target=ciminus},
        cim-input-sparsity{profile=z.json},cim-static-allocate,convert-tile-to-meta'
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, ModuleOp, f64
from xdsl.passes import ModulePass

from cimflow.analysis.layer_selection import selected_mvms
from cimflow.analysis.zero_planes import read_profile
from cimflow.errors import CimError
from cimflow.target_record import module_target


@dataclass(frozen=True)
class CimInputSparsityPass(ModulePass):
    """Enable zero skipping where a profile measured zero input bit-planes."""

    name = "cim-input-sparsity"

    profile: str = ""
    """The zero-plane profile (``cim-verify --zero-planes``)."""

    min_share: float = 0.05
    """Enable skipping where at least this share of the planes was zero."""

    layers: tuple[str, ...] = ()
    """ONNX node names of the MVMs to set (empty: every measured MVM)."""

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    target convert-graph-to-tile recorded on the module."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not self.profile:
            raise CimError(f"{self.name}: give profile=FILE (cim-verify --zero-planes)")
        if not 0.0 <= self.min_share < 1.0:
            raise CimError(
                f"{self.name}: min_share must be in [0, 1), got {self.min_share}"
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
            share = profile.share(mvm.weight.data)
            if share is None:
                if self.layers:
                    raise CimError(
                        f"{self.name}: {self.profile} has no planes of weight "
                        f"'{mvm.weight.data}'"
                    )
                continue
            if share >= self.min_share:
                mvm.zero_planes = FloatAttr(share, f64)
