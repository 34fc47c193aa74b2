"""``cim-accuracy``: a classifier's task accuracy on a labelled data set,
in floating point (onnxruntime) and on the chip (the functional executor,
exact and at the target's precisions).

::

    cim-accuracy tools/models/digits_mlp.onnx tools/models/digits_test.npz \\
        --targets dynaplasia,tiny

The data file is a NumPy ``.npz`` with one array per model input (by its
name, the samples along the first axis) and ``labels`` (the classes); the
model's one output holds a score per class along its last axis. The whole
set runs as one batch (the model's first dimension, symbolic or equal to
the number of samples). ``exact`` must give onnxruntime's classes (its
outputs match to rounding); ``quantized`` is what a chip at the target's
weight, activation, DAC and ADC precisions would classify, with today's
per-tensor scales and no calibration (``docs/functional-verification.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from cimflow.cimsim.functional import Mode
from cimflow.cli import ArgumentParser, add_target_overrides, exit_status
from cimflow.errors import CimError
from cimflow.hw_targets import overridden

MODES: tuple[Mode, ...] = ("exact", "quantized")


@dataclass(frozen=True)
class Accuracy:
    """Shares of the samples classified right."""

    target: str
    float: float
    """onnxruntime's."""
    exact: float
    quantized: float


def load_data(path: Path) -> tuple[dict[str, NDArray[Any]], NDArray[Any]]:
    """The inputs by name and the labels of an ``.npz`` data set."""
    try:
        with np.load(path) as archive:
            arrays = {name: np.asarray(archive[name]) for name in archive.files}
    except (OSError, ValueError) as error:
        raise CimError(f"{path}: not a NumPy .npz data set ({error})") from None
    if "labels" not in arrays:
        raise CimError(f"{path}: no 'labels' array")
    labels = arrays.pop("labels")
    return arrays, labels


def _classes(scores: NDArray[Any]) -> NDArray[Any]:
    return np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)


def _share(classes: NDArray[Any], labels: NDArray[Any]) -> float:
    return int(np.count_nonzero(classes == labels)) / max(1, len(labels))


def accuracy(
    model: Path,
    data: Path,
    target: str,
    pipeline: str = "cim-compile-static",
) -> Accuracy:
    """``model``'s accuracy on ``data`` in floating point and on ``target``."""
    import onnxruntime as ort  # pyright: ignore[reportMissingTypeStubs]

    from cimflow.cimsim.functional import run_functional
    from cimflow.frontend.model_file import load_model
    from cimflow.tools.cim_verify import compile_model, module_trace

    inputs, labels = load_data(data)
    graph = load_model(model).graph
    names = [i.name for i in graph.input]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise CimError(f"{data}: no array for the model input '{missing[0]}'")
    count = len(labels)
    first = graph.input[0].type.tensor_type.shape.dim[0]
    dims = {first.dim_param: count} if first.dim_param else {}
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    reference = cast(list[NDArray[Any]], session.run(None, inputs))[0]
    trace = module_trace(compile_model(model, target, pipeline, dims), str(model))
    shares: dict[str, float] = {"float": _share(_classes(reference), labels)}
    for mode in MODES:
        (scores,) = run_functional(trace, inputs, mode).values()
        shares[mode] = _share(_classes(scores), labels)
    return Accuracy(target, shares["float"], shares["exact"], shares["quantized"])


def format_accuracies(rows: Sequence[Accuracy]) -> str:
    width = max([len("target"), *(len(r.target) for r in rows)])
    lines = [f"{'target'.ljust(width)}  {'float':>7}  {'exact':>7}  {'quantized':>9}"]
    lines += [
        f"{r.target.ljust(width)}  {r.float:>7.2%}  {r.exact:>7.2%}  "
        f"{r.quantized:>9.2%}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cim-accuracy``."""
    parser = ArgumentParser(
        prog="cim-accuracy",
        description="A classifier's accuracy on a labelled .npz data set, in "
        "floating point and on each target's chip.",
    )
    parser.add_argument("model", help="the ONNX classifier")
    parser.add_argument("data", help="the .npz data set: inputs by name, 'labels'")
    parser.add_argument(
        "--targets", default="dynaplasia", help="comma-separated targets (dynaplasia)"
    )
    parser.add_argument(
        "-p", "--pipeline", default="cim-compile-static", help="the pass pipeline"
    )
    add_target_overrides(parser)
    try:
        args = parser.parse_args(argv)
        targets = [t.strip() for t in str(args.targets).split(",") if t.strip()]
        with overridden(cast(list[str], args.set)):
            rows = [
                accuracy(Path(args.model), Path(args.data), t, args.pipeline)
                for t in targets
            ]
    except CimError as error:
        print(f"cim-accuracy: error: {error}", file=sys.stderr)
        return exit_status(error)
    sys.stdout.write(format_accuracies(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
