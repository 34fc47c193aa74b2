"""ndp-partition: Hermes's hot/cold neuron split, written on the graph.

For a ``cim_graph`` decoder with ReLU MLP blocks (``linear, relu, linear``,
or ReLU-LLaMA's gated ``relu(gate) * up, down``;
:mod:`cimflow.ndp.graph`), solves the offline integer program of Hermes
(:func:`cimflow.ndp.partition.solve_partition`) for the NDP system named by
``system`` on the decoder the blocks imply, with the seeded synthetic
activation statistics of :mod:`cimflow.ndp.activations`, and writes on each
block's first linear (the gate and the up projection of a gated block, and
every projection of a ReLU'd QKV block) where
each neuron runs: ``ndp.device`` (one entry per neuron: 0 the GPU, j the
j-th DIMM) and ``ndp.gpu_neurons``. A layer whose Q, K and V read no ReLU
(OPT's) still has its QKV neurons placed, as Hermes prices them: that
placement goes on the layer's MLP block, as ``ndp.qkv_device``. The
module records the system in ``ndp.system``. ``cim-ndp --compiled``
simulates what this placement does.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i8,
    i64,
)
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from cimflow.ndp.activations import TraceStatistics
from cimflow.ndp.decode import DecodeOptions
from cimflow.ndp.graph import (
    DEVICE_ATTR,
    GPU_NEURONS_ATTR,
    QKV_DEVICE_ATTR,
    SYSTEM_ATTR,
    decoder_shape,
    mlp_blocks,
    qkv_blocks,
)
from cimflow.ndp.partition import GPU
from cimflow.ndp.run import Workload, partition_for, stationary_probabilities
from cimflow.ndp.system import load_system


@dataclass(frozen=True)
class NdpPartitionPass(ModulePass):
    """Split each ReLU block's neurons between the GPU and the NDP-DIMMs."""

    name = "ndp-partition"

    system: str = "hermes"
    """A shipped NDP system (``hw_targets/ndp``) or a path to one."""
    batch: int = 1
    """Sequences decoded together (the program prices reads per batch)."""
    sparsity: float = 0.85
    """Mean share of inactive neurons of the synthetic statistics."""
    seed: int = 0
    """Seeds the synthetic statistics' neuron order."""
    groups: int = 32
    """Neuron groups per block in the integer program."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        system = load_system(self.system)
        shape = decoder_shape(op, "module")
        workload = Workload(
            shape,
            DecodeOptions(batch=self.batch),
            statistics=TraceStatistics(sparsity=self.sparsity),
            seed=self.seed,
            groups=self.groups,
        )
        partition = partition_for(system, workload, stationary_probabilities(workload))
        qkv = qkv_blocks(op)
        for layer, block in enumerate(mlp_blocks(op)):
            for linear in (block.up, block.gated):
                if linear is not None:
                    _annotate(linear, partition.device_of[2 * layer + 1].tolist())
            qkv_devices = partition.device_of[2 * layer].tolist()
            if layer < len(qkv) and qkv[layer].neurons == shape.hidden:
                for projection in qkv[layer].projections:
                    _annotate(projection, qkv_devices)
            else:
                block.up.attributes[QKV_DEVICE_ATTR] = DenseArrayBase.from_list(
                    i8, qkv_devices
                )
        op.attributes[SYSTEM_ATTR] = StringAttr(system.name)


def _annotate(linear: Operation, devices: list[int]) -> None:
    linear.attributes[DEVICE_ATTR] = DenseArrayBase.from_list(i8, devices)
    linear.attributes[GPU_NEURONS_ATTR] = IntegerAttr(
        sum(1 for d in devices if d == GPU), i64
    )
