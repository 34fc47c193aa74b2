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
weight, activation, DAC and ADC precisions would classify with per-tensor
ranges of each run's own values and ADCs spanning every possible sum;
``calibrated`` (with ``--calibration FILE.npz``, inputs by name as in the
data set) what it classifies after calibration on those inputs
(:mod:`cimflow.cimsim.calibration`; ``docs/functional-verification.md``).

::

    cim-accuracy tools/models/digits_mlp.onnx tools/models/digits_test.npz \
        --calibration tools/models/digits_calibration.npz --targets dynaplasia
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
    calibrated: float | None = None
    """After calibration (None: not asked for)."""


def load_arrays(path: Path) -> dict[str, NDArray[Any]]:
    """The arrays of an ``.npz`` file by name."""
    try:
        with np.load(path) as archive:
            return {name: np.asarray(archive[name]) for name in archive.files}
    except (OSError, ValueError) as error:
        raise CimError(f"{path}: not a NumPy .npz data set ({error})") from None


def load_data(path: Path) -> tuple[dict[str, NDArray[Any]], NDArray[Any]]:
    """The inputs by name and the labels of an ``.npz`` data set."""
    arrays = load_arrays(path)
    if "labels" not in arrays:
        raise CimError(f"{path}: no 'labels' array")
    labels = arrays.pop("labels")
    return arrays, labels


def calibration_batch(
    path: Path, names: Sequence[str], count: int
) -> dict[str, NDArray[Any]]:
    """The calibration inputs at ``path`` as one batch of ``count`` samples
    (the compiled batch): cut, or repeated in order, to that size, which
    keeps their largest values and, up to rounding, their percentiles."""
    arrays = load_arrays(path)
    batch: dict[str, NDArray[Any]] = {}
    for name in names:
        if name not in arrays:
            raise CimError(f"{path}: no array for the model input '{name}'")
        value = arrays[name]
        if value.ndim == 0 or len(value) == 0:
            raise CimError(f"{path}: '{name}' holds no samples")
        batch[name] = np.resize(value, (count, *value.shape[1:]))
    return batch


def _classes(scores: NDArray[Any]) -> NDArray[Any]:
    return np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)


def _share(classes: NDArray[Any], labels: NDArray[Any]) -> float:
    return int(np.count_nonzero(classes == labels)) / max(1, len(labels))


def accuracy(
    model: Path,
    data: Path,
    target: str,
    pipeline: str = "cim-compile-static",
    calibration: Path | None = None,
) -> Accuracy:
    """``model``'s accuracy on ``data`` in floating point and on ``target``,
    and after calibration on the inputs at ``calibration`` if given."""
    import onnxruntime as ort  # pyright: ignore[reportMissingTypeStubs]

    from cimflow.cimsim.calibration import calibrate
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
    calibrated = None
    if calibration is not None:
        batch = calibration_batch(calibration, names, count)
        ranges = calibrate(trace, [batch])
        (scores,) = run_functional(
            trace, inputs, "quantized", calibration=ranges
        ).values()
        calibrated = _share(_classes(scores), labels)
    return Accuracy(
        target, shares["float"], shares["exact"], shares["quantized"], calibrated
    )


def format_accuracies(rows: Sequence[Accuracy]) -> str:
    from cimflow.cli import aligned_table

    calibrated = any(r.calibrated is not None for r in rows)
    header = ["target", "float", "exact", "quantized"]
    table: list[list[str]] = [header + (["calibrated"] if calibrated else [])]
    for r in rows:
        cells = [r.target, f"{r.float:.2%}", f"{r.exact:.2%}", f"{r.quantized:.2%}"]
        if calibrated:
            cells.append("-" if r.calibrated is None else f"{r.calibrated:.2%}")
        table.append(cells)
    return "\n".join(aligned_table(table)) + "\n"


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
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="a .npz of calibration inputs (by model input name): adds the "
        "accuracy after calibrating on them",
    )
    add_target_overrides(parser)
    try:
        args = parser.parse_args(argv)
        targets = [t.strip() for t in str(args.targets).split(",") if t.strip()]
        with overridden(cast(list[str], args.set)):
            rows = [
                accuracy(
                    Path(args.model),
                    Path(args.data),
                    t,
                    args.pipeline,
                    None if args.calibration is None else Path(args.calibration),
                )
                for t in targets
            ]
    except CimError as error:
        print(f"cim-accuracy: error: {error}", file=sys.stderr)
        return exit_status(error)
    sys.stdout.write(format_accuracies(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
