"""The ONNX operators the frontend accepts."""

from __future__ import annotations

from cimflow.frontend.folding import EVALUATORS

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

FOLD_ONLY_OPS: frozenset[str] = frozenset(EVALUATORS) - IMPORTED_OPS - PREPARED_OPS
"""Op types accepted only when every input is a constant (they are folded)."""

SUPPORTED_OPS: tuple[str, ...] = tuple(
    sorted(IMPORTED_OPS | PREPARED_OPS | FOLD_ONLY_OPS)
)
