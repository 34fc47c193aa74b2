"""What the chip's analog pipeline does to accuracy, and what it costs:
sweeps of ADC resolution, rows driven per ADC pass and device
non-idealities on one target, each point giving the digits network's task
accuracy and a PyTorch-exported CNN's output cosine (uncalibrated and
calibrated), and ResNet-18's simulated latency and energy where the swept
key changes them. For ``docs/functional-verification.md``.

::

    python -m cimflow.tools.accuracy_study --csv docs/data/accuracy-sweep.csv \\
        --plots docs/accuracy

Each point is the target with ``--set`` overrides (``array.adc_bits``,
``array.active_rows``, ``nonideal.*``). Plots need matplotlib (the
``bench`` extra); the CSV does not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from cimflow.cimsim.calibration import calibrate, cosine
from cimflow.cimsim.functional import run_functional
from cimflow.cli import ArgumentParser, csv_text
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.output_files import write_output

MODELS = Path(__file__).resolve().parent / "models"
REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_CNN = (
    REPOSITORY / "tests" / "fixtures" / "exporters" / "resnet.torchscript.onnx"
)
CALIBRATION_SEEDS = range(1, 9)
"""Input draws the CNN is calibrated on (seed 0 is measured)."""


@dataclass(frozen=True)
class Sweep:
    """One swept key and its values."""

    name: str
    key: str
    values: tuple[float, ...]
    fixed: tuple[str, ...] = ()
    """Overrides held for the whole sweep."""
    latency: bool = False
    """The key changes time or energy: simulate ResNet-18 at each point."""


SWEEPS = (
    Sweep("adc_bits", "array.adc_bits", (4, 5, 6, 7, 8, 10), latency=True),
    Sweep(
        "rows_per_pass",
        "array.active_rows",
        (16, 32, 64, 128, 320),
        ("array.adc_bits=6",),
        latency=True,
    ),
    Sweep("program_sigma", "nonideal.program_sigma", (0, 0.01, 0.02, 0.05, 0.1)),
    Sweep("read_sigma", "nonideal.read_sigma", (0, 0.01, 0.02, 0.05, 0.1)),
    Sweep("adc_offset", "nonideal.adc_offset_lsb", (0, 0.05, 0.1, 0.2, 0.5)),
)

COLUMNS: tuple[str, ...] = (
    "sweep",
    "value",
    "overrides",
    "digits_quantized",
    "digits_calibrated",
    "cnn_cosine",
    "cnn_cosine_calibrated",
    "resnet18_us",
    "resnet18_uj",
)


def _value_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _cnn_cosines(path: Path, target: str) -> tuple[float, float]:
    from cimflow.frontend import load_model_weights
    from cimflow.tools.cim_verify import (
        compile_model,
        make_inputs,
        module_trace,
        reference_outputs,
    )

    trace = module_trace(compile_model(path, target), str(path))
    model = onnx.load(str(path), load_external_data=False)
    names = [spec.name for spec in trace.model.inputs]
    loaded = load_model_weights(path, {})
    weights, scales = loaded.values, loaded.quantization

    def draw(seed: int) -> dict[str, Any]:
        return {n: v for n, v in make_inputs(model, {}, seed).items() if n in names}

    feeds = draw(0)
    (reference,) = (value for _, value in reference_outputs(path, feeds))
    samples = [draw(seed) for seed in CALIBRATION_SEEDS]
    ranges = calibrate(trace, samples, None, weights, scales)
    (plain,) = run_functional(trace, feeds, "quantized", weights, scales).values()
    (tuned,) = run_functional(
        trace, feeds, "quantized", weights, scales, ranges
    ).values()
    return cosine(reference, plain), cosine(reference, tuned)


def _resnet18(target: str) -> tuple[float, float]:
    """ResNet-18's (true shapes, batch 1) latency in microseconds and energy
    in microjoules, compiled with the static pipeline."""
    from cimflow.cimsim.engine import simulate
    from cimflow.tools.cim_verify import compile_model, module_trace
    from cimflow.tools.zoo import zoo_plan

    (entry,), _ = zoo_plan(1, models=["resnet18"])
    with tempfile.TemporaryDirectory(prefix="accuracy-study-") as directory:
        path = Path(directory) / entry.file_name
        onnx.save(entry.builder(), path)
        result = simulate(module_trace(compile_model(path, target), str(path)))
    stats = result.stats
    return stats.seconds * 1e6, stats.total_energy_pj / 1e6


def study(
    target: str = "dynaplasia",
    cnn: Path = DEFAULT_CNN,
    sweeps: Sequence[Sweep] = SWEEPS,
) -> list[dict[str, str]]:
    """One row per swept point (:data:`COLUMNS`)."""
    from cimflow.tools.accuracy import accuracy

    rows: list[dict[str, str]] = []
    for sweep in sweeps:
        for value in sweep.values:
            overrides = [*sweep.fixed, f"{sweep.key}={_value_text(value)}"]
            with overridden(overrides):
                digits = accuracy(
                    MODELS / "digits_mlp.onnx",
                    MODELS / "digits_test.npz",
                    target,
                    calibration=MODELS / "digits_calibration.npz",
                )
                plain, tuned = _cnn_cosines(cnn, target)
                latency = _resnet18(target) if sweep.latency else None
            rows.append(
                {
                    "sweep": sweep.name,
                    "value": _value_text(value),
                    "overrides": " ".join(overrides),
                    "digits_quantized": f"{digits.quantized:.4f}",
                    "digits_calibrated": f"{digits.calibrated or 0.0:.4f}",
                    "cnn_cosine": f"{plain:.4f}",
                    "cnn_cosine_calibrated": f"{tuned:.4f}",
                    "resnet18_us": "" if latency is None else f"{latency[0]:.2f}",
                    "resnet18_uj": "" if latency is None else f"{latency[1]:.2f}",
                }
            )
            print(" ".join(rows[-1].values()), file=sys.stderr, flush=True)
    return rows


_LABELS = {
    "adc_bits": "ADC bits",
    "rows_per_pass": "rows driven per ADC pass (6-bit ADC)",
    "program_sigma": "programming variation (share of a cell's range)",
    "read_sigma": "read noise (share of a cell's range)",
    "adc_offset": "ADC offset (LSB, std. dev.)",
}


def write_plots(out: Path, rows: Sequence[dict[str, str]]) -> list[Path] | None:
    """One PNG per sweep: accuracy and cosine against the swept value on
    axes from zero (and ResNet-18's latency where it changes). None when
    matplotlib is not installed."""
    from cimflow.tools.bench import agg_pyplot, save_png

    pyplot = agg_pyplot()
    if pyplot is None:
        return None
    written: list[Path] = []
    for name in dict.fromkeys(row["sweep"] for row in rows):
        points = [row for row in rows if row["sweep"] == name]
        xs = [float(row["value"]) for row in points]
        timed = all(row["resnet18_us"] for row in points)
        figure, axes = pyplot.subplots(
            1,
            2 if timed else 1,
            figsize=(10 if timed else 5.5, 3.8),
            squeeze=False,
            layout="constrained",
        )
        quality = axes[0, 0]
        for column, label, style in (
            ("digits_quantized", "digits accuracy", "o--"),
            ("digits_calibrated", "digits accuracy, calibrated", "o-"),
            ("cnn_cosine", "ResNet output cosine", "s--"),
            ("cnn_cosine_calibrated", "ResNet output cosine, calibrated", "s-"),
        ):
            quality.plot(xs, [float(row[column]) for row in points], style, label=label)
        quality.set_ylim(0, 1.02)
        quality.set_xlabel(_LABELS.get(name, name))
        quality.set_ylabel("accuracy / cosine")
        quality.legend(fontsize=8, loc="lower left")
        if timed:
            cost = axes[0, 1]
            cost.plot(
                xs, [float(row["resnet18_us"]) for row in points], "o-", color="C4"
            )
            cost.set_ylim(bottom=0)
            cost.set_xlabel(_LABELS.get(name, name))
            cost.set_ylabel("ResNet-18 latency (us)", color="C4")
            energy = cost.twinx()
            energy.plot(
                xs, [float(row["resnet18_uj"]) for row in points], "s--", color="C5"
            )
            energy.set_ylim(bottom=0)
            energy.set_ylabel("ResNet-18 energy (uJ)", color="C5")
        written.append(save_png(pyplot, figure, out / f"{name}.png"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m cimflow.tools.accuracy_study",
        description="Accuracy against ADC bits, rows per pass and device noise, "
        "with ResNet-18's latency where it changes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", default="dynaplasia", help="(dynaplasia)")
    parser.add_argument("--cnn", type=Path, default=DEFAULT_CNN, help="the CNN")
    parser.add_argument("--sweep", action="append", help="only these sweeps")
    parser.add_argument("--csv", type=Path, help="write the rows here")
    parser.add_argument("--plots", type=Path, help="write PNG plots to this folder")
    try:
        args = parser.parse_args(argv)
        chosen = [s for s in SWEEPS if not args.sweep or s.name in args.sweep]
        if args.sweep and len(chosen) != len(set(args.sweep)):
            known = ", ".join(s.name for s in SWEEPS)
            raise CimError(f"unknown sweep in {args.sweep} (known: {known})")
        rows = study(args.target, args.cnn, chosen)
        text = csv_text(COLUMNS, rows)
        if args.csv is not None:
            write_output(args.csv, text)
        else:
            sys.stdout.write(text)
        if args.plots is not None:
            args.plots.mkdir(parents=True, exist_ok=True)
            if write_plots(args.plots, rows) is None:
                print(
                    "accuracy_study: matplotlib is not installed: no plots",
                    file=sys.stderr,
                )
    except CimError as error:
        print(f"accuracy_study: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
