"""Hermes's sparse blocks found in a ``cim_graph`` module: where ReLU makes
neurons skippable, and the decoder shape they imply.

- An **MLP block** is ``linear -> relu -> linear`` (OPT's ``fc1, ReLU,
  fc2``) or, gated, ``relu(linear) * linear -> linear`` (ReLU-LLaMA's
  ``down(relu(gate(x)) * up(x))``): its neurons are the first linear's
  outputs, each skipped with its row of the first weight (and of the up
  weight) and its column of the last when the ReLU gives zero.
- A **QKV block** is a ReLU whose result only linears read, two or more of
  them (the ReLU Hermes inserts before Q, K and V): its neurons are that
  input's elements.

Blocks are listed in program order, one MLP block per decoder layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from cimflow.cimdialect import cim_graph
from cimflow.errors import CimError
from cimflow.ndp.llm import DecoderShape
from cimflow.ndp.partition import DeviceMap, Partition


@dataclass(frozen=True)
class MlpBlock:
    """``up -> relu -> down``, or ``relu(up) * gated -> down``."""

    up: cim_graph.LinearOp
    relu: cim_graph.UnaryOp
    down: cim_graph.LinearOp
    gated: cim_graph.LinearOp | None = None

    @property
    def neurons(self) -> int:
        return _features(self.up.output)

    @property
    def hidden(self) -> int:
        return _features(self.up.input)


@dataclass(frozen=True)
class QkvBlock:
    """A ReLU read only by two or more linears (Q, K, V)."""

    relu: cim_graph.UnaryOp
    projections: tuple[cim_graph.LinearOp, ...]

    @property
    def neurons(self) -> int:
        return _features(self.relu.output)


def _features(value: SSAValue) -> int:
    value_type = value.type
    assert isinstance(value_type, TensorType)
    return int(value_type.get_shape()[-1])


def _is_relu(op: Operation | None) -> bool:
    return (
        isinstance(op, cim_graph.UnaryOp) and op.kind.data == cim_graph.UnaryKind.RELU
    )


def _only_user(value: SSAValue) -> Operation | None:
    users = [use.operation for use in value.uses]
    return users[0] if len(users) == 1 else None


def mlp_blocks(module: ModuleOp) -> list[MlpBlock]:
    blocks: list[MlpBlock] = []
    for op in module.walk():
        if not isinstance(op, cim_graph.LinearOp):
            continue
        relu = _only_user(op.output)
        if not isinstance(relu, cim_graph.UnaryOp) or not _is_relu(relu):
            continue
        down = _only_user(relu.output)
        if isinstance(down, cim_graph.LinearOp) and down.input == relu.output:
            blocks.append(MlpBlock(op, relu, down))
        elif isinstance(down, cim_graph.BinaryOp):
            gated = _gated_block(op, relu, down)
            if gated is not None:
                blocks.append(gated)
    return blocks


def _gated_block(
    gate: cim_graph.LinearOp, relu: cim_graph.UnaryOp, product: cim_graph.BinaryOp
) -> MlpBlock | None:
    """``relu(gate(x)) * up(x) -> down``, or None."""
    if product.kind.data != cim_graph.BinaryKind.MUL:
        return None
    other = product.rhs if product.lhs == relu.output else product.lhs
    up = other.owner
    down = _only_user(product.output)
    if (
        isinstance(up, cim_graph.LinearOp)
        and up.input == gate.input
        and isinstance(down, cim_graph.LinearOp)
        and down.input == product.output
    ):
        return MlpBlock(gate, relu, down, up)
    return None


def qkv_blocks(module: ModuleOp) -> list[QkvBlock]:
    blocks: list[QkvBlock] = []
    for op in module.walk():
        if not isinstance(op, cim_graph.UnaryOp) or not _is_relu(op):
            continue
        users = [use.operation for use in op.output.uses]
        if len(users) >= 2 and all(
            isinstance(u, cim_graph.LinearOp) and u.input == op.output for u in users
        ):
            linears = tuple(u for u in users if isinstance(u, cim_graph.LinearOp))
            blocks.append(QkvBlock(op, linears))
    return blocks


def decoder_shape(module: ModuleOp, name: str) -> DecoderShape:
    """The decoder the module's MLP blocks imply: one layer per block, the
    width, hidden size and gating of the first, multi-head attention as wide as the
    model (QKV neurons of ``3 x hidden`` weights), the LM head's vocabulary
    from the widest linear outside the blocks."""
    blocks = mlp_blocks(module)
    if not blocks:
        raise CimError(
            "ndp-partition: no ReLU MLP block (linear, relu, linear) in the "
            "module: Hermes splits neurons that ReLU makes skippable"
        )
    first = blocks[0]
    for block in blocks[1:]:
        if (block.hidden, block.neurons) != (first.hidden, first.neurons):
            node = block.up.attributes.get("cim_graph.node")
            raise CimError(
                f"ndp-partition: MLP block at {node or 'a linear'} is "
                f"{block.hidden} x {block.neurons}, the first is "
                f"{first.hidden} x {first.neurons}: layers must be alike"
            )
    inside = {id(op) for b in blocks for op in (b.up, b.down, b.gated) if op}
    vocab = max(
        (
            _features(op.output)
            for op in module.walk()
            if isinstance(op, cim_graph.LinearOp) and id(op) not in inside
        ),
        default=1,
    )
    return DecoderShape(
        name,
        len(blocks),
        first.hidden,
        first.neurons,
        1,
        1,
        vocab,
        gated_mlp=first.gated is not None,
    )


SYSTEM_ATTR = "ndp.system"
"""Module attribute: the NDP system ``ndp-partition`` placed the neurons for."""
DEVICE_ATTR = "ndp.device"
"""On a block's linears: the device of each neuron (0 the GPU, j the j-th
DIMM)."""
GPU_NEURONS_ATTR = "ndp.gpu_neurons"
"""On a block's linears: how many of its neurons the GPU holds."""
QKV_DEVICE_ATTR = "ndp.qkv_device"
"""On a layer's MLP block, when its Q, K and V read no ReLU: the device of
each of the layer's QKV neurons."""


def _placed_devices(
    linear: cim_graph.LinearOp, neurons: int, what: str, key: str = DEVICE_ATTR
) -> DeviceMap:
    attr = linear.attributes.get(key)
    if not isinstance(attr, DenseArrayBase):
        raise CimError(
            f"{what} carries no '{key}': run ndp-partition on the module first"
        )
    devices = np.array(attr.get_values(), dtype=np.int8)
    if devices.size != neurons or (devices.size and devices.min() < 0):
        raise CimError(
            f"{what}: '{key}' places {devices.size} neurons, the block has "
            f"{neurons} (devices must be 0 for the GPU or a DIMM's number)"
        )
    return devices


def compiled_partition(module: ModuleOp) -> Partition:
    """The placement ``ndp-partition`` wrote on the module's blocks, in the
    simulator's block order (each layer's QKV block, then its MLP block)."""
    shape = decoder_shape(module, "module")
    qkv = qkv_blocks(module)
    device_of: list[DeviceMap] = []
    for layer, block in enumerate(mlp_blocks(module)):
        what = f"layer {layer}'s QKV block"
        if layer < len(qkv) and qkv[layer].neurons == shape.hidden:
            placed = _placed_devices(qkv[layer].projections[0], shape.hidden, what)
        else:
            placed = _placed_devices(block.up, shape.hidden, what, QKV_DEVICE_ATTR)
        device_of.append(placed)
        device_of.append(
            _placed_devices(block.up, shape.ffn_hidden, f"layer {layer}'s MLP block")
        )
    return Partition(tuple(device_of), "compiled", 0.0)
