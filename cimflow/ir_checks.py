"""Checks of the IR a pass is given, shared by the passes.

The passes compile one function of tensors; an MLIR file can hold anything,
so a pass first takes the module's function through :func:`tensor_function`
and gets a one-line error, not an assertion, for anything else.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from cimflow.errors import CimError


def tensor_function(module: ModuleOp, pass_name: str) -> func.FuncOp:
    """The module's one ``func.func``, whose arguments and results are
    statically shaped tensors."""
    functions = [op for op in module.ops if isinstance(op, func.FuncOp)]
    if len(functions) != 1:
        raise CimError(f"{pass_name} expects one func.func, found {len(functions)}")
    function = functions[0]
    signature = function.function_type
    for what, types in (
        ("argument", signature.inputs.data),
        ("result", signature.outputs.data),
    ):
        for index, kind in enumerate(types):
            if not isinstance(kind, TensorType):
                raise CimError(
                    f"{pass_name}: function @{function.sym_name.data} {what} "
                    f"{index} has type {kind}; the passes compile functions of "
                    "tensors"
                )
            if any(size < 0 for size in kind.get_shape()):
                raise CimError(
                    f"{pass_name}: function @{function.sym_name.data} {what} "
                    f"{index} has the dynamic shape {kind}; fix its dimensions "
                    "(cim-opt --dim NAME=VALUE for an ONNX model)"
                )
    return function
