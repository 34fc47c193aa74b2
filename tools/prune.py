"""``cim-prune``: prune an ONNX model's array weights to a sparsity pattern,
or report the pattern its weights have.

::

    cim-prune model.onnx --pattern block:32x32+2:4 --ratio 0.5 -o pruned.onnx
    cim-prune model.onnx --report

A weight is the ``[groups, K, N]`` matrix the arrays hold (the reduction
down, the outputs across), as the compiler maps it: every weight an MVM
reads (convolutions, Gemm, MatMul by a constant), found by importing the
model as ``cim-opt`` does. Patterns (``docs/sparsity.md``; CIMinus's
FlexBlock): ``row``, ``column``, ``channel``, ``block:RxC``, ``N:M``,
``unstructured``, or a coarse and a fine one joined by ``+``. ``--ratio``
is the share of the coarse pattern's blocks to zero (of the weights, for
``unstructured`` alone), those of least ``--criterion`` norm (L1 or L2);
``N:M`` keeps the ``N`` largest magnitudes of every ``M`` reduction rows of
an output; ``--fine-ratio`` is the share of the kept weights an
``unstructured`` fine pattern zeroes. ``--layer NAME=RATIO`` sets one
weight's ratio (0 leaves it dense). The pruned model is written whole, or
not at all; each pruned weight's detected pattern is printed.

``--report`` prints, per weight, the pattern :func:`cimflow.analysis.
sparsity.detect` finds (in the weights the arrays hold: a convolution's
with its batch normalization folded in, which keeps its zeros).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from cimflow.analysis.sparsity import (
    CRITERIA,
    Criterion,
    Pattern,
    Sparsity,
    detect,
    for_weight,
    parse_pattern,
    prune,
)
from cimflow.cimdialect import cim_tile
from cimflow.cli import ArgumentParser, exit_status
from cimflow.errors import CimError
from cimflow.frontend.prepare import folded_from
from cimflow.output_files import write_output
from cimflow.weight_layout import as_matrix, from_matrix

MAPPING_TARGET = "tiny"
"""The target the weights are mapped with: how a weight is cut into arrays
depends on it, the ``[groups, K, N]`` matrix does not."""


@dataclass(frozen=True)
class ArrayWeight:
    """A weight an MVM reads, as the arrays hold it."""

    name: str
    """Its name in the compiled model."""
    source: str
    """The model's initializer it comes from (the same, or the one a batch
    normalization was folded into)."""
    layout: str
    groups: int
    k: int
    n: int
    channel_rows: int | None
    """A convolution's ``kh * kw`` (the rows of one input channel)."""


def array_weights(
    path: Path, model: onnx.ModelProto, dims: Mapping[str, int]
) -> list[ArrayWeight]:
    """Every distinct weight the MVMs of the model at ``path`` read."""
    from cimflow.tools.cim_verify import compile_model

    initializers = {t.name: tuple(t.dims) for t in model.graph.initializer}
    module = compile_model(path, MAPPING_TARGET, "convert-graph-to-tile", dims)
    found: dict[str, ArrayWeight] = {}
    for op in module.walk():
        if not isinstance(op, cim_tile.MVMOp) or op.weight.data in found:
            continue
        name, tiling = op.weight.data, op.tiling
        folded = folded_from(name)
        source = name if name in initializers or folded is None else folded
        if source not in initializers:
            raise CimError(
                f"{path}: weight '{name}' is not an initializer of the model"
            )
        shape = initializers[source]
        layout = op.layout.data.value
        rows = shape[2] * shape[3] if layout == "oihw" and len(shape) == 4 else None
        found[name] = ArrayWeight(
            name,
            source,
            layout,
            tiling.field("groups"),
            tiling.field("k"),
            tiling.field("n"),
            rows,
        )
    return list(found.values())


def _load(path: Path) -> onnx.ModelProto:
    """The model at ``path`` with its external data, if any, read in (the
    pruned model is written whole, wherever it goes)."""
    from cimflow.frontend.model_file import load_model

    model = load_model(path)
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise CimError(f"{path}: the weight data is not available: {message}") from None
    return model


def _matrix(weight: ArrayWeight, value: np.ndarray) -> np.ndarray:
    return as_matrix(
        weight.name, weight.layout, weight.groups, weight.k, weight.n, value
    )


@dataclass(frozen=True)
class WeightReport:
    """One weight's sparsity, as :func:`report` finds it."""

    weight: ArrayWeight
    sparsity: Sparsity

    def line(self) -> str:
        w, s = self.weight, self.sparsity
        shape = f"{w.k}x{w.n}" if w.groups == 1 else f"{w.groups}x{w.k}x{w.n}"
        blocks = (
            f", {100 * s.blocks_zero:.1f}% of blocks"
            if s.pattern.coarse is not None
            else ""
        )
        return (
            f"{w.source}  [{shape}]  {100 * s.zeros:.1f}% zero  "
            f"{s.pattern.text()}{blocks}"
        )


def weight_matrices(
    path: Path, dims: Mapping[str, int] | None = None
) -> list[tuple[ArrayWeight, np.ndarray]]:
    """Every array weight of the model at ``path`` and the ``[groups, K,
    N]`` matrix the arrays hold (a convolution's with its batch
    normalization folded in)."""
    from cimflow.frontend import load_weights
    from cimflow.frontend.model_file import load_model

    weights = array_weights(path, load_model(path), dims or {})
    values = load_weights(path, dict(dims or {}))
    return [(w, _matrix(w, values[w.name])) for w in weights]


def report(path: Path, dims: Mapping[str, int] | None = None) -> list[WeightReport]:
    """The detected sparsity of every array weight of the model at ``path``,
    in the weights the arrays hold."""
    return [
        WeightReport(w, detect(matrix, w.channel_rows))
        for w, matrix in weight_matrices(path, dims)
    ]


@dataclass(frozen=True)
class PruneRequest:
    """What :func:`prune_model` does to every array weight."""

    pattern: Pattern
    ratio: float
    criterion: Criterion = "l1"
    fine_ratio: float | None = None
    layers: Mapping[str, float] | None = None
    """Ratios of single weights (initializer name -> ratio; 0: dense)."""


def prune_model(
    path: Path,
    request: PruneRequest,
    dims: Mapping[str, int] | None = None,
    report: bool = True,
) -> tuple[onnx.ModelProto, list[WeightReport]]:
    """The model at ``path`` with its array weights pruned as ``request``
    says, checked by ``onnx.checker``, and each pruned weight's detected
    sparsity (none without ``report``: detection is the slow part)."""
    model = _load(path)
    weights = array_weights(path, model, dims or {})
    layers = dict(request.layers or {})
    unknown = sorted(set(layers) - {w.source for w in weights})
    if unknown:
        raise CimError(
            f"--layer '{unknown[0]}' is not an array weight of {path} "
            f"(cim-prune {path} --report lists them)"
        )
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    pruned: dict[str, np.ndarray] = {}
    reports: list[WeightReport] = []
    for weight in weights:
        if weight.source in pruned:
            continue
        ratio = layers.get(weight.source, request.ratio)
        original = values[weight.source]
        if ratio == 0.0:
            continue
        matrix = prune(
            _matrix(weight, original),
            for_weight(request.pattern, weight.channel_rows),
            ratio,
            request.criterion,
            request.fine_ratio,
        )
        pruned[weight.source] = from_matrix(weight.layout, matrix, original.shape)
        if report:
            reports.append(WeightReport(weight, detect(matrix, weight.channel_rows)))
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name in pruned:
            value = pruned[tensor.name].astype(values[tensor.name].dtype)
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(value, tensor.name)
            )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        message = " ".join(str(error).split())
        raise CimError(f"{path}: the pruned model is not valid: {message}") from None
    return model, reports


def _parse_layers(specs: Sequence[str]) -> dict[str, float]:
    layers: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        try:
            ratio = float(value)
        except ValueError:
            ratio = -1.0
        if not sep or not name or not 0.0 <= ratio <= 1.0:
            raise CimError(f"--layer '{spec}': expected NAME=RATIO, 0 <= RATIO <= 1")
        layers[name] = ratio
    return layers


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cim-prune",
        description="Prune an ONNX model's array weights to a sparsity pattern "
        "(docs/sparsity.md), or report their patterns.",
    )
    parser.add_argument("model", help="the ONNX model")
    parser.add_argument(
        "--report",
        action="store_true",
        help="print each array weight's detected sparsity pattern, prune nothing",
    )
    parser.add_argument(
        "--pattern",
        help="row, column, channel, block:RxC, N:M, unstructured, or "
        "COARSE+FINE (block:32x32+2:4)",
    )
    parser.add_argument(
        "--ratio",
        type=float,
        default=0.5,
        help="share of the coarse pattern's blocks to zero (of the weights for "
        "unstructured alone; default 0.5)",
    )
    parser.add_argument(
        "--fine-ratio",
        type=float,
        help="share of the kept weights an unstructured fine pattern zeroes",
    )
    parser.add_argument(
        "--criterion",
        choices=CRITERIA,
        default="l1",
        help="the norm whose smallest blocks go first (default l1)",
    )
    parser.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="NAME=RATIO",
        help="the ratio of one weight (its initializer name); 0 leaves it dense",
    )
    parser.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a symbolic input dimension (as cim-opt --dim)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="the pruned model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cim-prune``."""
    from cimflow.frontend import check_model_dims
    from cimflow.tools.cim_opt import parse_dims

    try:
        args = _parser().parse_args(argv)
        path = Path(cast(str, args.model))
        dims = parse_dims(cast(list[str], args.dim))
        check_model_dims(path, dims)
        if cast(bool, args.report):
            lines = [r.line() for r in report(path, dims)]
            sys.stdout.write("".join(f"{line}\n" for line in lines))
            return 0
        spec, output = cast("str | None", args.pattern), cast("str | None", args.output)
        if spec is None or output is None:
            raise CimError("give --pattern and -o FILE (or --report)")
        request = PruneRequest(
            parse_pattern(spec),
            cast(float, args.ratio),
            cast(Criterion, args.criterion),
            cast("float | None", args.fine_ratio),
            _parse_layers(cast(list[str], args.layer)),
        )
        model, reports = prune_model(path, request, dims)
        write_output(output, model.SerializeToString())
    except CimError as error:
        print(f"cim-prune: error: {error}", file=sys.stderr)
        return exit_status(error)
    sys.stdout.write("".join(f"{r.line()}\n" for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
