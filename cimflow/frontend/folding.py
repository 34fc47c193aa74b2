"""Constant folding with the onnx package's reference evaluator.

:func:`fold_constants` evaluates every node whose inputs are all known
constants with :class:`onnx.reference.ReferenceEvaluator`, the ONNX
operator definitions as the onnx package implements them for the model's
opsets: shape arithmetic, masks, rotary tables, and any subgraph an exporter
writes that needs nothing but constants. The caller
(:mod:`cimflow.frontend.prepare`) decides what is constant (weights are not)
and keeps the one special case the evaluator cannot see: ``Shape`` and
``Size`` of a value that is not constant fold from its inferred static shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, NodeProto, OperatorSetIdProto
from onnx.reference import ReferenceEvaluator

from cimflow.frontend.common import DEFAULT_DOMAINS, Array, array_to_tensor

NONDETERMINISTIC_OPS = frozenset(
    {
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
    }
)
"""Ops whose outputs are not a function of their inputs: never folded."""


def is_foldable(node: NodeProto) -> bool:
    """Whether ``node`` is computed from its listed inputs alone.

    Nodes with subgraphs (``If``, ``Loop``, ``Scan``) may read values of the
    enclosing graph that they do not list, so they are not folded.
    """
    return (
        node.domain in DEFAULT_DOMAINS
        and node.op_type not in NONDETERMINISTIC_OPS
        and not any(
            a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
            for a in node.attribute
        )
    )


@dataclass
class Folded:
    """What :func:`fold_constants` computed."""

    values: dict[str, Array] = field(default_factory=lambda: {})
    """Every output of every folded node, by name."""
    failures: dict[str, str] = field(default_factory=lambda: {})
    """Why a node could not be evaluated, by node name."""


def fold_constants(
    nodes: Sequence[NodeProto],
    constants: Mapping[str, Array],
    opsets: Sequence[OperatorSetIdProto],
    ir_version: int,
) -> Folded:
    """Evaluate ``nodes``, topologically ordered, each reading only
    ``constants`` and outputs of earlier nodes.

    All of them run as one model; if that fails, node by node, so one node
    the evaluator rejects (the failure is recorded) leaves the others folded.
    """
    folded = Folded()
    if not nodes:
        return folded
    try:
        folded.values = _evaluate(nodes, constants, opsets, ir_version)
        return folded
    except Exception:
        pass
    known = dict(constants)
    for node in nodes:
        if not all(name in known for name in node.input if name):
            continue
        try:
            values = _evaluate([node], known, opsets, ir_version)
        except Exception as error:
            message = " ".join(str(error).split()) or type(error).__name__
            folded.failures[node.name] = message
            continue
        known.update(values)
        folded.values.update(values)
    return folded


def _evaluate(
    nodes: Sequence[NodeProto],
    constants: Mapping[str, Array],
    opsets: Sequence[OperatorSetIdProto],
    ir_version: int,
) -> dict[str, Array]:
    produced = {name for node in nodes for name in node.output if name}
    read = {name for node in nodes for name in node.input if name} - produced
    outputs = [name for node in nodes for name in node.output if name]
    graph = onnx.helper.make_graph(
        list(nodes),
        "fold",
        [],
        [onnx.helper.make_empty_tensor_value_info(name) for name in outputs],
        [array_to_tensor(constants[name], name) for name in sorted(read)],
    )
    model = onnx.helper.make_model(graph, opset_imports=list(opsets))
    model.ir_version = ir_version
    with np.errstate(all="ignore"):
        results = ReferenceEvaluator(model).run(None, {})
    values: dict[str, Array] = {}
    for name, value in zip(outputs, results, strict=True):
        if not isinstance(value, np.ndarray | np.generic):
            raise ValueError(f"'{name}' is not a tensor")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"'{name}' has element type {array.dtype}")
        values[name] = array
    return values
