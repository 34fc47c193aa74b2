"""The ONNX operators the frontend accepts."""

from __future__ import annotations

from cimflow.frontend.decompose import CONDITIONAL_REWRITES, REWRITES

UNARY_OPS: dict[str, str] = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Erf": "erf",
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Reciprocal": "reciprocal",
    "Neg": "neg",
    "Abs": "abs",
    "Softplus": "softplus",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
    "Cos": "cos",
    "Sin": "sin",
    "Not": "not",
    "Gelu": "gelu",
}
"""ONNX op type → ``cim_graph.unary`` kind."""

BINARY_OPS: dict[str, str] = {
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Div": "div",
    "Pow": "pow",
    "Max": "max",
    "Min": "min",
    "Equal": "equal",
    "Less": "less",
    "Greater": "greater",
    "And": "and",
    "Or": "or",
}
"""ONNX op type → ``cim_graph.binary`` kind."""

REDUCE_OPS: dict[str, str] = {
    "ReduceMean": "mean",
    "ReduceSum": "sum",
    "ReduceMax": "max",
    "ReduceMin": "min",
    "ReduceProd": "prod",
}

IMPORTED_OPS: frozenset[str] = frozenset(
    {
        *UNARY_OPS,
        *BINARY_OPS,
        *REDUCE_OPS,
        "LessOrEqual",
        "GreaterOrEqual",
        "Conv",
        "MatMul",
        "Gemm",
        "Where",
        "Cast",
        "Clip",
        "Softmax",
        "LayerNormalization",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Pad",
        "Expand",
        "Identity",
        "Dropout",
    }
)
"""Op types imported as ``cim_graph`` operators on activations."""

PREPARED_OPS: frozenset[str] = frozenset(
    {"Constant", "Shape", "Size", "BatchNormalization", "Identity", "Dropout"}
)
"""Op types rewritten away by :func:`prepare_model`."""

REWRITTEN_OPS: frozenset[str] = frozenset(REWRITES)
"""Op types rewritten into imported ones (:mod:`cimflow.frontend.decompose`)."""

SUPPORTED_OPS: tuple[str, ...] = tuple(
    sorted(IMPORTED_OPS | PREPARED_OPS | REWRITTEN_OPS)
)
"""The op types the frontend takes whatever their inputs; every other op of
the default ONNX domain is taken when all its inputs are constants (it is
folded)."""

SUPPORTED_OPS_DOC = "docs/onnx-frontend.md#supported-operators"
"""Where the supported operators are listed (the table :func:`ops_table` makes)."""


def unsupported_op(node_label: str, op_key: str) -> str:
    """The message for a node whose op type the frontend does not support."""
    return (
        f"node '{node_label}' has unsupported op type '{op_key}' (supported ops: "
        f"{SUPPORTED_OPS_DOC}, or run python -m cimflow.frontend.list_ops)"
    )


def op_handling(op_type: str) -> str:
    """How the frontend handles a supported op type."""
    if op_type == "MatMul":
        return "imported (a constant times a weight: folded into a new weight)"
    if op_type in CONDITIONAL_REWRITES:
        return "imported (1-D windows as 2-D ones: `Unsqueeze`, 2-D op, `Squeeze`)"
    if op_type in IMPORTED_OPS:
        return "imported"
    if op_type in REWRITES:
        return f"rewritten: {REWRITES[op_type][1]}"
    return "rewritten away when the model is prepared"


def ops_table() -> str:
    """The Markdown table of :data:`SUPPORTED_OPS` that the docs embed."""
    rows = [f"| `{op}` | {op_handling(op)} |" for op in SUPPORTED_OPS]
    return "\n".join(["| op type | handling |", "|---|---|", *rows]) + "\n"
