"""Regenerate the benchmark tables of ``docs/`` from the ``cim-bench`` CSVs
committed beside them (``docs/data/``), so a table cannot drift from the
run it reports.

::

    python -m cimflow.tools.doc_tables           # rewrite the tables
    python -m cimflow.tools.doc_tables --check   # exit 1 if one differs

A table lives between ``<!-- generated: NAME -->`` and ``<!-- end
generated -->`` in its document; :data:`TABLES` says which CSV and which
layout each one has. To refresh a table, run the ``cim-bench`` command its
document gives with ``--out``, copy the ``bench.csv`` over the CSV in
``docs/data/``, run this script and commit all three.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cimflow.cimsim.critical import CRITICAL_CLASSES
from cimflow.errors import CimError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

Row = dict[str, str]

STRATEGY_ORDER = (
    "static",
    "pimcomp-ht",
    "pimcomp-ll",
    "clsa-cim",
    "cim-mlc",
    "cmswitch",
)

MODEL_NAMES = {
    "mobilenetv2": "MobileNetV2",
    "resnet18": "ResNet-18",
    "vgg16": "VGG-16",
    "bert_large": "BERT-large",
    "llama2_7b": "LLaMA-2-7B",
    "opt_6_7b": "OPT-6.7B",
    "opt_13b": "OPT-13B",
}

PAPER_OVER_CIM_MLC = {
    ("bert_large", "1"): "1.19 at 32, par at 512",
    ("opt_6_7b", "1"): "1.50 at 32, 1.23 at 256",
    ("opt_6_7b", "8"): "1.41, 1.27, 1.23, 1.22, 1.22 (L 32, 128-2048)",
}
"""CMSwitch's speedups over CIM-MLC over sequence length (its evaluation,
as ``shared/reference`` and issue 12 quote them)."""


def read_rows(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["status"] == "ok"]


def _ms(value: float) -> str:
    """Four significant digits, as the tables print latencies."""
    if value == 0:
        return "0"
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"


def _model_label(row: Row) -> str:
    batch = "" if row["batch"] == "1" else f"b{row['batch']}"
    return " ".join(part for part in (row["model"], row["phase"], batch) if part)


def _head(columns: Sequence[str], alignments: str) -> list[str]:
    """A table's header row and its separator (``alignments``: one of
    ``l``/``r`` per column)."""
    rule = {"l": "---|", "r": "---:|"}
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "".join(rule[a] for a in alignments),
    ]


def default_suite(rows: Sequence[Row]) -> list[str]:
    """Per model and target: the bound, what bounds it, and every
    strategy's latency with its ratio to the bound."""
    strategies = [s for s in STRATEGY_ORDER if any(r["strategy"] == s for r in rows)]
    lines = _head(
        ["model", "target", "bound ms", "bound by", *(f"`{s}`" for s in strategies)],
        "llrl" + "r" * len(strategies),
    )
    groups: dict[tuple[str, str], dict[str, Row]] = {}
    for row in rows:
        groups.setdefault((_model_label(row), row["target"]), {})[row["strategy"]] = row
    for (model, target), by_strategy in groups.items():
        first = next(iter(by_strategy.values()))
        per_cycle = float(first["latency_ms"]) / int(first["latency_cycles"])
        bound_ms = int(first["bound_cycles"]) * per_cycle
        cells = [
            f"{_ms(float(r['latency_ms']))} ({float(r['bound_ratio']):.2f})"
            if (r := by_strategy.get(s)) is not None
            else ""
            for s in strategies
        ]
        lines.append(
            f"| {model} | {target} | {_ms(bound_ms)} | {first['bound_by']} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def sequence_sweep(rows: Sequence[Row]) -> list[str]:
    """``cmswitch`` over the best baseline per model, batch and L, with the
    best baseline's latency over the bound, and CMSwitch's own figures."""
    rows = [r for r in rows if r["L"]]
    lengths = sorted({int(r["L"]) for r in rows})
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for row, best in _against_best_baseline(rows):
        entry = cells.setdefault((row["model"], row["batch"]), {})
        entry[int(row["L"])] = (
            f"{float(row['speedup_vs_best_other']):.3f} "
            f"({float(best['bound_ratio']):.2f})"
        )
    lines = _head(
        ["model", "batch", *(f"L {n}" for n in lengths), "paper (over CIM-MLC)"],
        "lr" + "l" * len(lengths) + "l",
    )
    for (model, batch), entry in cells.items():
        values = [entry.get(n, "") for n in lengths]
        paper = PAPER_OVER_CIM_MLC.get((model, batch), "")
        lines.append(
            f"| {MODEL_NAMES.get(model, model)} | {batch} | "
            + " | ".join(values)
            + f" | {paper} |"
        )
    return lines


CRITICAL_SHOWN = ("compute", "program", "dram", "interconnect", "vector")
"""Critical-path classes the waits-on table shows (the others are zero or
near it on the default suite)."""


def critical_paths(rows: Sequence[Row]) -> list[str]:
    """Per model and target, the fastest strategy's latency over the bound,
    what the bound names, and what its simulated run waited on: each
    class's share of its critical path."""
    lines = _head(
        [
            "model",
            "target",
            "fastest",
            "/ bound",
            "bound by",
            "waits on",
            *CRITICAL_SHOWN,
        ],
        "lllrll" + "r" * len(CRITICAL_SHOWN),
    )
    fastest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (_model_label(row), row["target"])
        if key not in fastest or int(row["latency_cycles"]) < int(
            fastest[key]["latency_cycles"]
        ):
            fastest[key] = row
    for (model, target), row in fastest.items():
        shares = [f"{float(row[f'critical_{c}_share']):.2f}" for c in CRITICAL_SHOWN]
        lines.append(
            f"| {model} | {target} | `{row['strategy']}` | "
            f"{float(row['bound_ratio']):.2f} | {row['bound_by']} | "
            f"{row['critical_by']} | " + " | ".join(shares) + " |"
        )
    return lines


def _waits(row: Row, shown: int = 3) -> str:
    """A run's largest critical-path classes with their shares."""
    shares = sorted(
        ((float(row[f"critical_{c}_share"]), c) for c in CRITICAL_CLASSES),
        key=lambda item: (-item[0], CRITICAL_CLASSES.index(item[1])),
    )
    return ", ".join(f"{c} {share:.2f}" for share, c in shares[:shown] if share > 0)


def dual_mode_waits(rows: Sequence[Row]) -> list[str]:
    """Per entry: ``cmswitch`` over the best baseline, and what each of the
    two runs waited on (its largest critical-path classes)."""
    lines = _head(
        [
            "entry",
            "over best baseline",
            "best baseline waits on",
            "`cmswitch` waits on",
        ],
        "lrll",
    )
    for row, best in _against_best_baseline(rows):
        lines.append(
            f"| {MODEL_NAMES.get(row['model'], row['model'])} | "
            f"{float(row['speedup_vs_best_other']):.3f} | "
            f"`{best['strategy']}`: {_waits(best)} | {_waits(row)} |"
        )
    return lines


def _against_best_baseline(rows: Sequence[Row]) -> list[tuple[Row, Row]]:
    """Each ``cmswitch`` row that has a speedup, with the fastest other
    strategy's row of the same entry."""
    pairs: list[tuple[Row, Row]] = []
    for row in rows:
        if row["strategy"] != "cmswitch" or not row["speedup_vs_best_other"]:
            continue
        best = min(
            (r for r in rows if _same_entry(r, row) and r["strategy"] != "cmswitch"),
            key=lambda r: int(r["latency_cycles"]),
        )
        pairs.append((row, best))
    return pairs


def _same_entry(a: Row, b: Row) -> bool:
    keys = ("model", "phase", "batch", "L", "target", "overrides")
    return all(a.get(k, "") == b.get(k, "") for k in keys)


@dataclass(frozen=True)
class Table:
    document: str
    sources: tuple[str, ...]
    """CSVs in ``docs/data/``, read together."""
    layout: Callable[[Sequence[Row]], list[str]]


TABLES: dict[str, Table] = {
    "default-suite": Table("strategies.md", ("default-suite.csv",), default_suite),
    "critical-paths": Table("strategies.md", ("default-suite.csv",), critical_paths),
    "cnn-batch": Table("strategies.md", ("cnn-batch.csv",), critical_paths),
    "paper-suite-waits": Table("dual-mode.md", ("paper-suite.csv",), dual_mode_waits),
    "sequence-sweep": Table(
        "dual-mode.md",
        ("sequence-sweep-b1.csv", "paper-suite.csv", "sequence-sweep-b8.csv"),
        sequence_sweep,
    ),
}


def _region(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)(<!-- end generated -->)",
        re.S,
    )


def render(name: str, docs: Path = DOCS) -> str:
    """Table ``name`` from its CSVs in ``docs/data``."""
    table = TABLES[name]
    rows: list[Row] = []
    for source in table.sources:
        rows += read_rows(docs / "data" / source)
    return "\n".join(table.layout(rows)) + "\n"


def refresh(check: bool, docs: Path = DOCS) -> list[str]:
    """Rewrite (or with ``check`` only compare) every table of the
    documents in ``docs``; the names of those that differed."""
    stale: list[str] = []
    for name, table in TABLES.items():
        path = docs / table.document
        text = path.read_text(encoding="utf-8")
        match = _region(name).search(text)
        if match is None:
            raise CimError(f"{path}: no '<!-- generated: {name} -->' region")
        fresh = render(name, docs)
        if match.group(2) != fresh:
            stale.append(name)
            if not check:
                updated = text[: match.start(2)] + fresh + text[match.end(2) :]
                path.write_text(updated, encoding="utf-8")
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cimflow.tools.doc_tables",
        description="Regenerate docs/ benchmark tables from docs/data/*.csv.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only report tables that differ"
    )
    args = parser.parse_args(argv)
    try:
        stale = refresh(bool(args.check))
    except CimError as error:
        print(f"doc_tables: error: {error}", file=sys.stderr)
        return 1
    for name in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {name}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
