"""What sparse weights buy on a CIMinus-like chip, through the compiler:
true-shape models with seeded random weights, pruned by ``cim-prune`` to a
pattern and ratio, compiled with and without ``cim-sparse-rows`` and
simulated on the ``ciminus`` target at several macro counts. For
``docs/sparsity.md``.

::

    python -m cimflow.tools.sparsity_study --csv docs/data/sparsity-sweep.csv
    python -m cimflow.tools.sparsity_study --intra-block --patterns 2:4,unstructured \
        --ratios 0.5 --csv docs/data/sparsity-intra-block.csv
    python -m cimflow.tools.sparsity_study --rearrangement slice \
        --models resnet18,vgg16 \
        --patterns channel,block:32x4,block:8x4,block:32x2,unstructured \
        --csv docs/data/sparsity-slicing.csv
    python -m cimflow.tools.sparsity_study --from docs/data/sparsity-sweep.csv \
        --plots docs/sparsity

Each row: model, pattern, ratio, macros, dense and held-rows latency (us),
speedup, energy (uJ) in total and per component, array utilization, and
the seconds the held-rows configuration took to compile and simulate.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from cimflow.analysis.sparsity import parse_pattern
from cimflow.cli import ArgumentParser, csv_text
from cimflow.cost_model import ENERGY_COMPONENTS
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.output_files import write_output

TARGET = "ciminus"


def held_rows_pipeline(intra_block: bool = False, rearrangement: str = "pad") -> str:
    """Held rows by the row gather alone (rows an array's columns share), or
    held columns (those nonzero in some row) where they take fewer arrays;
    with ``intra_block``, held rows by whichever of the row gather and the
    IntraBlock mapping (cells picking their inputs by multiplexers) holds
    fewer. ``rearrangement``: ragged column tiles padded or sliced."""
    options = f"rearrangement={rearrangement}"
    if not intra_block:
        options = f"intra_block=false orientation=best {options}"
    return (
        f"convert-graph-to-tile,cim-sparse-rows{{{options}}},"
        "cim-static-allocate,convert-tile-to-meta"
    )


DENSE = "convert-graph-to-tile,cim-static-allocate,convert-tile-to-meta"


@dataclass(frozen=True)
class StudyModel:
    """A true-shape model with seeded random weights."""

    name: str
    build: Callable[[], onnx.ModelProto]
    dims: tuple[tuple[str, int], ...]


def _models() -> dict[str, StudyModel]:
    from cimflow.tools import model_builders as mb

    return {
        m.name: m
        for m in (
            StudyModel(
                "resnet18", lambda: mb.resnet18(weights="random"), (("batch", 1),)
            ),
            StudyModel("vgg16", lambda: mb.vgg16(weights="random"), (("batch", 1),)),
            StudyModel(
                "mobilenetv2", lambda: mb.mobilenetv2(weights="random"), (("batch", 1),)
            ),
            StudyModel(
                "bert-base-2l",
                lambda: mb.bert(layers=2, weights="random"),
                (("batch", 1), ("sequence", 128)),
            ),
        )
    }


PATTERNS = (
    "channel",
    "column",
    "block:32x4",
    "block:8x4",
    "block:32x2",
    "block:32x1",
    "2:4",
    "unstructured",
)
"""``block:32x4`` is one ``ciminus`` sub-array (32 rows of one macro's 4
8-bit outputs); the narrower blocks depart from it. ``column`` prunes whole
filters, which only held columns save."""
RATIOS = (0.5, 0.7, 0.9)
MACROS = (4, 16, 64)

COLUMNS: tuple[str, ...] = (
    "model",
    "pattern",
    "ratio",
    "macros",
    "dense_us",
    "held_us",
    "speedup",
    "dense_uj",
    "held_uj",
    *(f"held_{c}_uj" for c in ENERGY_COMPONENTS),
    "held_array_utilization",
    "seconds",
)


def _simulate(
    path: Path, pipeline: str, dims: dict[str, int]
) -> tuple[float, float, dict[str, float], float]:
    from cimflow.cimsim.engine import simulate
    from cimflow.tools.cim_verify import compile_model, module_trace

    stats = simulate(module_trace(compile_model(path, TARGET, pipeline, dims))).stats
    return (
        stats.seconds * 1e6,
        stats.total_energy_pj / 1e6,
        {c: stats.energy_pj.get(c, 0.0) / 1e6 for c in ENERGY_COMPONENTS},
        stats.used_array_utilization,
    )


def study(
    models: Sequence[str],
    patterns: Sequence[str] = PATTERNS,
    ratios: Sequence[float] = RATIOS,
    macros: Sequence[int] = MACROS,
    intra_block: bool = False,
    rearrangement: str = "pad",
) -> list[dict[str, str]]:
    """One row per (model, pattern, ratio, macro count); the held rows by
    the row gather alone, or (``intra_block``) also by the IntraBlock
    mapping where it holds fewer (:func:`held_rows_pipeline`)."""
    held_rows = held_rows_pipeline(intra_block, rearrangement)
    from cimflow.tools import prune as cim_prune

    known = _models()
    unknown = [m for m in models if m not in known]
    if unknown:
        raise CimError(f"unknown model '{unknown[0]}' (known: {', '.join(known)})")
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="sparsity-study-") as scratch:
        directory = Path(scratch)
        for name in models:
            model = known[name]
            dims = dict(model.dims)
            base = directory / f"{name}.onnx"
            onnx.save(model.build(), base)
            dense: dict[int, tuple[float, float, dict[str, float], float]] = {}
            for count in macros:
                with overridden([f"hierarchy.arrays_per_core={count}"]):
                    dense[count] = _simulate(base, DENSE, dims)
            for pattern in patterns:
                for ratio in ratios:
                    if pattern == "2:4" and ratio != ratios[0]:
                        continue  # N:M fixes its own ratio
                    pruned = (
                        directory / f"{name}.{pattern.replace(':', '_')}.{ratio}.onnx"
                    )
                    request = cim_prune.PruneRequest(parse_pattern(pattern), ratio)
                    onnx.save(
                        cim_prune.prune_model(base, request, dims, False)[0], pruned
                    )
                    for count in macros:
                        start = time.perf_counter()
                        with overridden([f"hierarchy.arrays_per_core={count}"]):
                            held = _simulate(pruned, held_rows, dims)
                        seconds = time.perf_counter() - start
                        base_us, base_uj = dense[count][0], dense[count][1]
                        row = {
                            "model": name,
                            "pattern": pattern,
                            "ratio": "0.5" if pattern == "2:4" else f"{ratio:g}",
                            "macros": str(count),
                            "dense_us": f"{base_us:.1f}",
                            "held_us": f"{held[0]:.1f}",
                            "speedup": f"{base_us / held[0]:.2f}",
                            "dense_uj": f"{base_uj:.2f}",
                            "held_uj": f"{held[1]:.2f}",
                            **{
                                f"held_{c}_uj": f"{held[2][c]:.3f}"
                                for c in ENERGY_COMPONENTS
                            },
                            "held_array_utilization": f"{held[3]:.3f}",
                            "seconds": f"{seconds:.2f}",
                        }
                        rows.append(row)
                        print(
                            f"{name} {pattern} {row['ratio']} x{count}: "
                            f"{row['speedup']}x in {seconds:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
    return rows


def speedup_table(rows: Sequence[dict[str, str]]) -> str:
    """Markdown: the held-rows speedup of each model and pattern, a column
    per (ratio, macros) the rows have (``docs/sparsity.md`` quotes it)."""
    points = list(dict.fromkeys((r["ratio"], r["macros"]) for r in rows))
    header = "| model | pattern | " + " | ".join(
        f"r {ratio}, {macros} macros" for ratio, macros in points
    )
    lines = [header + " |", "|---|---|" + "---:|" * len(points)]
    cells = {(r["model"], r["pattern"], r["ratio"], r["macros"]): r for r in rows}
    for model, pattern in dict.fromkeys((r["model"], r["pattern"]) for r in rows):
        values = [
            f"{cells[key]['speedup']}x"
            if (key := (model, pattern, *point)) in cells
            else "-"
            for point in points
        ]
        lines.append(f"| {model} | {pattern} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV this study wrote."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise CimError(f"{path}: cannot read: {error.strerror}") from None
    if not rows or tuple(rows[0]) != COLUMNS:
        raise CimError(f"{path}: not a sparsity study CSV (its columns differ)")
    return rows


def slicing_table(
    padded: Sequence[dict[str, str]], sliced: Sequence[dict[str, str]]
) -> str:
    """Markdown: each configuration of ``sliced`` beside the same one
    padded (its row of ``padded``): speedups over dense, array utilization,
    and the held energy in total, in the arrays and in the buffers."""
    lines = [
        "| model | pattern | ratio | macros | padded | sliced | utilization "
        "padded / sliced | uJ padded / sliced | array uJ | buffer uJ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["model"], r["pattern"], r["ratio"], r["macros"]): r for r in padded}
    for row in sliced:
        pad = by_key[(row["model"], row["pattern"], row["ratio"], row["macros"])]
        lines.append(
            f"| {row['model']} | {row['pattern']} | {row['ratio']} | "
            f"{row['macros']} | {pad['speedup']}x | {row['speedup']}x | "
            f"{pad['held_array_utilization']} / {row['held_array_utilization']} | "
            f"{pad['held_uj']} / {row['held_uj']} | "
            f"{pad['held_array_uj']} / {row['held_array_uj']} | "
            f"{pad['held_buffer_uj']} / {row['held_buffer_uj']} |"
        )
    return "\n".join(lines) + "\n"


ALIGNMENT = ("block:32x4", "block:8x4", "block:32x2", "block:32x1")
"""Block shapes from one ``ciminus`` sub-array (32 rows of a macro's 4
outputs) to ever further from it: shorter blocks, then narrower ones."""


def write_plots(out: Path, rows: Sequence[dict[str, str]]) -> list[Path] | None:
    """``alignment.png``: the speedup over dense against the block shape
    (:data:`ALIGNMENT`, aligned first), a panel per model, a line per ratio
    and macro count, on axes from zero (CIMinus's finding that benefits
    fall as the pattern departs from the array's alignment). None when
    matplotlib is not installed."""
    from cimflow.tools.bench import agg_pyplot, save_png

    pyplot = agg_pyplot()
    if pyplot is None:
        return None
    cells = {(r["model"], r["pattern"], r["ratio"], r["macros"]): r for r in rows}
    models = [m for m in dict.fromkeys(r["model"] for r in rows) if m in _models()]
    counts = sorted({int(r["macros"]) for r in rows})
    ends = {str(counts[0]), str(counts[-1])}  # the fewest and the most macros
    points = [p for p in dict.fromkeys((r["ratio"], r["macros"]) for r in rows)]
    figure, axes = pyplot.subplots(
        1,
        len(models),
        figsize=(4.2 * len(models), 3.9),
        squeeze=False,
        layout="constrained",
    )
    for panel, model in zip(axes[0], models, strict=True):
        shapes = [p for p in ALIGNMENT if any(k[:2] == (model, p) for k in cells)]
        for ratio, macros in points:
            keys = [(model, shape, ratio, macros) for shape in shapes]
            if macros not in ends or not all(key in cells for key in keys):
                continue
            speedups = [float(cells[key]["speedup"]) for key in keys]
            style = "o-" if macros == str(counts[0]) else "s--"
            panel.plot(shapes, speedups, style, label=f"r {ratio}, {macros} macros")
        panel.set_title(model)
        panel.set_ylim(bottom=0)
        panel.axhline(1.0, color="grey", linewidth=0.8)
        panel.set_xlabel("block (rows x outputs)")
        panel.set_ylabel("speedup over dense")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=len(labels))
    return [save_png(pyplot, figure, out / "alignment.png")]


def median_seconds(rows: Sequence[dict[str, str]]) -> float:
    """The median time one held-rows configuration took."""
    return statistics.median(float(r["seconds"]) for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m cimflow.tools.sparsity_study",
        description="Pruned models on the CIMinus-like target, with and without "
        "cim-sparse-rows.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        default="resnet18,vgg16,mobilenetv2,bert-base-2l",
        help="comma-separated (resnet18, vgg16, mobilenetv2, bert-base-2l)",
    )
    parser.add_argument("--patterns", default=",".join(PATTERNS))
    parser.add_argument("--ratios", default=",".join(f"{r:g}" for r in RATIOS))
    parser.add_argument("--macros", default=",".join(str(m) for m in MACROS))
    parser.add_argument(
        "--intra-block",
        action="store_true",
        help="map held rows by the IntraBlock mapping too, where it holds fewer "
        "(the target's cells have input multiplexers)",
    )
    parser.add_argument(
        "--rearrangement",
        choices=("pad", "slice"),
        default="pad",
        help="ragged column tiles padded to the longest or sliced "
        "(cim-sparse-rows' rearrangement)",
    )
    parser.add_argument("--csv", type=Path, help="write the rows here")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="take the rows from this CSV (an earlier run) instead of running",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        help="write alignment.png here (needs matplotlib: the bench extra)",
    )
    try:
        args = parser.parse_args(argv)
        if args.source is not None:
            rows = _read_rows(Path(args.source))
        else:
            split = [p.strip() for p in str(args.models).split(",") if p.strip()]
            rows = study(
                split,
                [p for p in str(args.patterns).split(",") if p],
                [float(r) for r in str(args.ratios).split(",") if r],
                [int(m) for m in str(args.macros).split(",") if m],
                bool(args.intra_block),
                str(args.rearrangement),
            )
            text = csv_text(COLUMNS, rows)
            if args.csv is not None:
                write_output(args.csv, text)
            else:
                sys.stdout.write(text)
            print(
                f"sparsity_study: {len(rows)} configurations, median "
                f"{median_seconds(rows):.2f} s each",
                file=sys.stderr,
            )
        if args.plots is not None:
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            if write_plots(Path(args.plots), rows) is None:
                print(
                    "sparsity_study: matplotlib is not installed: no plots",
                    file=sys.stderr,
                )
    except (CimError, ValueError) as error:
        print(f"sparsity_study: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
