"""convert-graph-to-tile: partition weight-stationary operators onto arrays.

``cim_graph.conv`` becomes ``cim_tile.im2col`` + ``cim_tile.mvm`` +
``cim_tile.col2im``; ``cim_graph.linear`` becomes an MVM over the flattened
input vectors. The tiling follows the target's array geometry: the unrolled
reduction dimension is cut by array rows, output channels times bit slices
by array columns. Every other ``cim_graph`` operator is wrapped in a
``cim_tile.vector`` for the digital vector units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.irdl import IRDLOperation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.transforms.dead_code_elimination import region_dce

from cimflow.analysis.tile_mapping import target_tiling
from cimflow.cimdialect import cim_graph, cim_tile
from cimflow.cimdialect.cim_graph import NODE_ATTR, ints, tensor_shape
from cimflow.hw_targets import HardwareTarget
from cimflow.target_record import record_target


def weight_name(op: cim_graph.ConvOp | cim_graph.LinearOp) -> str:
    owner = op.weight.owner
    assert isinstance(owner, cim_graph.WeightOp)
    return owner.weight_name.data


def bias_name(op: cim_graph.ConvOp | cim_graph.LinearOp) -> str | None:
    if op.bias is None:
        return None
    owner = op.bias.owner
    if not isinstance(owner, cim_graph.WeightOp):
        return None
    return owner.weight_name.data


@dataclass
class LowerConvToMVM(RewritePattern):
    """conv(x, W) -> col2im(mvm(im2col(x))) with W tiled onto arrays."""

    hw: HardwareTarget

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, op: cim_graph.ConvOp, rewriter: PatternRewriter
    ) -> None:
        if op.bias is not None and bias_name(op) is None:
            return
        x, w = tensor_shape(op.input), tensor_shape(op.weight)
        out = tensor_shape(op.output)
        groups = op.groups.value.data
        element = op.output.type
        assert isinstance(element, TensorType)
        vectors = out[0] * out[2] * out[3]
        k = w[1] * w[2] * w[3]
        cols = cim_tile.Im2ColOp(
            op.input,
            w[2:],
            ints(op.strides),
            ints(op.pads),
            ints(op.dilations),
            groups,
            TensorType(element.element_type, [vectors, x[1] * w[2] * w[3]]),
        )
        mvm = cim_tile.MVMOp(
            cols.output,
            weight_name(op),
            cim_tile.WeightLayout.OIHW,
            bias_name(op),
            target_tiling(self.hw, k, w[0] // groups, groups),
            TensorType(element.element_type, [vectors, w[0]]),
        )
        back = cim_tile.Col2ImOp(mvm.output, element)
        rewriter.replace(op, carry_node(op, [cols, mvm, back]), [back.output])


def carry_node(source: Operation, ops: list[Operation]) -> list[Operation]:
    """``ops`` with the ONNX node name ``source`` came from."""
    node = source.attributes.get(NODE_ATTR)
    if node is not None:
        for op in ops:
            op.attributes[NODE_ATTR] = node
    return ops


@dataclass
class LowerLinearToMVM(RewritePattern):
    """linear(x[..., K], W) -> reshape(mvm(reshape(x) : [V, K]))."""

    hw: HardwareTarget

    @op_type_rewrite_pattern
    def match_and_rewrite(
        self, op: cim_graph.LinearOp, rewriter: PatternRewriter
    ) -> None:
        if op.bias is not None and bias_name(op) is None:
            return
        x = tensor_shape(op.input)
        element = op.output.type
        assert isinstance(element, TensorType)
        k, n = op.reduction_size, op.output_size
        vectors = math.prod(x[:-1])
        new_ops: list[Operation] = []
        source = op.input
        if len(x) != 2:
            flat = cim_graph.ReshapeOp(
                op.input, TensorType(element.element_type, [vectors, k])
            )
            new_ops.append(cim_tile.VectorOp.wrap(flat))
            source = new_ops[-1].results[0]
        mvm = cim_tile.MVMOp(
            source,
            weight_name(op),
            cim_tile.WeightLayout.NK
            if op.transpose_weight
            else cim_tile.WeightLayout.KN,
            bias_name(op),
            target_tiling(self.hw, k, n, 1),
            TensorType(element.element_type, [vectors, n]),
        )
        new_ops.append(mvm)
        result = mvm.output
        if len(x) != 2:
            new_ops.append(
                cim_tile.VectorOp.wrap(cim_graph.ReshapeOp(mvm.output, element))
            )
            result = new_ops[-1].results[0]
        rewriter.replace(op, carry_node(op, new_ops), [result])


class WrapVectorWork(RewritePattern):
    """Any other cim_graph operator -> cim_tile.vector around it."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if (
            op.dialect_name() != cim_graph.CIMGraph.name
            or isinstance(
                op,
                cim_graph.WeightOp
                | cim_graph.ConstantOp
                | cim_graph.ConvOp
                | cim_graph.LinearOp,
            )
            or isinstance(op.parent_op(), cim_tile.VectorOp)
        ):
            return
        assert isinstance(op, IRDLOperation)
        rewriter.replace(op, carry_node(op, [cim_tile.VectorOp.wrap(op.clone())]))


@dataclass(frozen=True)
class ConvertGraphToTilePass(ModulePass):
    """Partition weight-stationary operators into crossbar tiles for a target."""

    name = "convert-graph-to-tile"

    target: str = ""
    """A shipped target name or a path to a target TOML file; empty: the
    default target (dynaplasia). Recorded on the module for later passes."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        hw = record_target(op, self.target, self.name)
        PatternRewriteWalker(
            GreedyRewritePatternApplier(
                [LowerConvToMVM(hw), LowerLinearToMVM(hw), WrapVectorWork()]
            ),
            apply_recursively=False,
        ).rewrite_module(op)
        for region in op.regions:
            region_dce(region)
