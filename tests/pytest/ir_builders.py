"""Small cim_graph programs written as text, shared by the pass tests, and
the context that parses them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func
from xdsl.parser import Parser

from cimflow.cimdialect.cim_graph import CIMGraph
from cimflow.cimdialect.cim_meta import CIMMeta
from cimflow.cimdialect.cim_tile import CIMTile


def make_context() -> Context:
    """A context with the builtin, func and the three cimflow dialects."""
    ctx = Context()
    for dialect in (Builtin, Func, CIMGraph, CIMTile, CIMMeta):
        ctx.load_dialect(dialect)
    return ctx


def parse_module(text: str) -> tuple[Context, ModuleOp]:
    ctx = make_context()
    return ctx, Parser(ctx, text).parse_module()


def chain_ir(
    vectors: int,
    dims: Sequence[int],
    relu: Literal["all", "between", "none"] = "all",
    residual: bool = False,
) -> str:
    """Linear layers ``dims[i] -> dims[i + 1]`` on ``[vectors, dims[0]]``.

    ``relu`` follows every layer (``all``), every layer but the last
    (``between``) or none; ``residual`` adds each layer's input back after
    its relu when the widths agree (a branch that stays inside or outside a
    segment).
    """
    body: list[str] = []
    value = "%x"
    layers = len(dims) - 1
    for index, (k, n) in enumerate(itertools.pairwise(dims)):
        w_type = f"tensor<{k}x{n}xf32>"
        in_type, out_type = f"tensor<{vectors}x{k}xf32>", f"tensor<{vectors}x{n}xf32>"
        body.append(f'%w{index} = cim_graph.weight "l{index}.w" : {w_type}')
        body.append(
            f"%y{index} = cim_graph.linear {value}, %w{index} : "
            f"({in_type}, {w_type}) -> {out_type}"
        )
        result = f"%y{index}"
        if relu == "all" or (relu == "between" and index < layers - 1):
            body.append(
                f"%r{index} = cim_graph.unary relu {result} : {out_type} -> {out_type}"
            )
            result = f"%r{index}"
        if residual and k == n:
            body.append(
                f"%s{index} = cim_graph.binary add {result}, {value} : "
                f"({out_type}, {out_type}) -> {out_type}"
            )
            result = f"%s{index}"
        value = result
    last = f"tensor<{vectors}x{dims[-1]}xf32>"
    lines = "\n    ".join(body)
    return (
        "builtin.module {\n"
        f"  func.func @chain(%x: tensor<{vectors}x{dims[0]}xf32>) -> {last} {{\n"
        f"    {lines}\n"
        f"    func.return {value} : {last}\n"
        "  }\n"
        "}\n"
    )
