"""The MVMs a pass's ``layers`` option names: ONNX node names, which every
op keeps from the importer on (``cim_graph.node``)."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation

from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_graph import NODE_ATTR
from cimflow.errors import CimError


def node_name(op: Operation) -> str:
    """The ONNX node ``op`` works for ("" when it has none)."""
    node = op.attributes.get(NODE_ATTR)
    return node.data if isinstance(node, StringAttr) else ""


def selected_mvms(
    module: ModuleOp, layers: Sequence[str], pass_name: str
) -> list[cim_tile.MVMOp]:
    """Every ``cim_tile.mvm`` of ``module``, or those of the ONNX nodes
    ``layers`` names; a :class:`CimError` for a name no MVM has."""
    mvms = [op for op in module.walk() if isinstance(op, cim_tile.MVMOp)]
    if not layers:
        return mvms
    names = {node_name(mvm) for mvm in mvms}
    unknown = sorted(set(layers) - names)
    if unknown:
        raise CimError(f"{pass_name}: no MVM of ONNX node '{unknown[0]}'")
    return [mvm for mvm in mvms if node_name(mvm) in layers]
