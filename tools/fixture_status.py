"""Every exporter fixture through every strategy and target.

Each ONNX file in ``tests/fixtures/exporters`` is compiled with every
strategy (:data:`cimflow.passes.pipelines.STRATEGIES`) for every target of
:data:`TARGETS`, its trace simulated (``cim-sim``'s engine) and executed by
the functional executor in exact mode against onnxruntime (``cim-verify``'s
check, on its seeded inputs). What one file shares across the runs is made
once: the imported ``cim_graph`` module, the weights, the inputs and the
reference outputs, and per target the ``convert-graph-to-tile`` result.
``tests/pytest/test_exporter_fixtures.py`` runs the same matrix;

    python -m cimflow.tools.fixture_status [--fixtures DIR] [-o STATUS.md]

writes the Markdown table of ``tests/fixtures/exporters/STATUS.md`` (with
compile times, which vary from machine to machine: a snapshot, not a test).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.functional import Array
from cimflow.errors import CimError
from cimflow.frontend.decompose import REWRITES
from cimflow.output_files import write_output
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.pipelines import STRATEGIES, allocation_pass
from cimflow.tools.cim_verify import (
    check_trace,
    make_inputs,
    module_trace,
    reference_outputs,
)
from cimflow.universe import multiverse_context

TARGETS: tuple[str, ...] = ("tiny", "dynaplasia")
"""The targets every fixture is compiled for: the smallest one (operators
split over many arrays, weights streamed) and the default."""

DEFAULT_FIXTURES = Path("tests/fixtures/exporters")


def fixture_paths(directory: Path = DEFAULT_FIXTURES) -> list[Path]:
    """The fixture files, sorted."""
    return sorted(directory.glob("*.onnx"))


@dataclass(frozen=True)
class Fixture:
    """What every run of one fixture shares."""

    path: Path
    module: ModuleOp
    """The imported ``cim_graph`` module (never changed: runs clone it)."""
    weights: Mapping[str, Array]
    feeds: Mapping[str, Array]
    reference: Sequence[tuple[str, Array]]
    import_seconds: float


def load_fixture(path: Path) -> Fixture:
    """Import ``path`` and compute its inputs and reference outputs once."""
    from cimflow.frontend import import_onnx, load_weights

    model = onnx.load(str(path), load_external_data=False)
    start = time.perf_counter()
    module = import_onnx(path, {})
    seconds = time.perf_counter() - start
    feeds = make_inputs(model, {}, 0)
    return Fixture(
        path,
        module,
        load_weights(path, {}),
        feeds,
        reference_outputs(path, feeds),
        seconds,
    )


@dataclass(frozen=True)
class Tiled:
    """A fixture after ``convert-graph-to-tile`` for one target."""

    fixture: Fixture
    target: str
    module: ModuleOp
    seconds: float


def tile(fixture: Fixture, target: str) -> Tiled:
    module = fixture.module.clone()
    start = time.perf_counter()
    ConvertGraphToTilePass(target).apply(multiverse_context(), module)
    return Tiled(fixture, target, module, time.perf_counter() - start)


@dataclass(frozen=True)
class Outcome:
    """One fixture, strategy and target: compiled, simulated and verified."""

    path: Path
    strategy: str
    target: str
    compile_seconds: float
    """Frontend, convert-graph-to-tile, allocation, lowering and trace."""
    cycles: int
    trace_ops: int
    max_rel_error: float
    passed: bool
    warnings: tuple[str, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.passed and not self.warnings

    def describe(self) -> str:
        where = f"{self.path.name} {self.strategy} {self.target}"
        if self.error is not None:
            return f"{where}: {self.error}"
        if self.warnings:
            return f"{where}: {'; '.join(self.warnings)}"
        return f"{where}: max rel error {self.max_rel_error:.3g} (exact mode failed)"


def run(tiled: Tiled, strategy: str) -> Outcome:
    """Allocate with ``strategy``, lower, build the trace, simulate it and
    check it in exact mode; errors are part of the outcome."""
    fixture, target = tiled.fixture, tiled.target
    start = time.perf_counter()
    try:
        module = tiled.module.clone()
        context = multiverse_context()
        allocation_pass(strategy, target).apply(context, module)
        ConvertTileToMetaPass(target).apply(context, module)
        trace = module_trace(module, str(fixture.path))
        seconds = time.perf_counter() - start
        cycles = simulate(trace).makespan
        check = check_trace(
            trace, fixture.feeds, fixture.reference, "exact", fixture.weights
        )
    except (CimError, DiagnosticException) as error:
        message = " ".join(str(error).split())
        return Outcome(
            fixture.path, strategy, target, 0.0, 0, 0, float("inf"), False, (), message
        )
    return Outcome(
        fixture.path,
        strategy,
        target,
        fixture.import_seconds + tiled.seconds + seconds,
        cycles,
        len(trace.ops),
        check.max_rel_error,
        check.passed,
        tuple(check.warnings),
        check.error,
    )


def run_matrix(paths: Sequence[Path]) -> list[Outcome]:
    """Every fixture x strategy x target of :data:`TARGETS`."""
    outcomes: list[Outcome] = []
    for path in paths:
        fixture = load_fixture(path)
        for target in TARGETS:
            tiled = tile(fixture, target)
            outcomes.extend(run(tiled, strategy) for strategy in STRATEGIES)
    return outcomes


def status_markdown(paths: Sequence[Path], outcomes: Sequence[Outcome]) -> str:
    """The table of ``STATUS.md``."""
    by_key = {(o.path, o.strategy, o.target): o for o in outcomes}
    runs = len(STRATEGIES) * len(TARGETS)
    passed = sum(o.ok for o in outcomes)
    strategies = ", ".join(f"`{s}`" for s in STRATEGIES)
    targets = " and ".join(f"`{t}`" for t in TARGETS)
    lines = [
        "# Exporter fixtures through cimflow: status",
        "",
        "Written by `python -m cimflow.tools.fixture_status -o "
        "tests/fixtures/exporters/STATUS.md`",
        "(do not edit by hand); `tests/pytest/test_exporter_fixtures.py` runs the same",
        "matrix and fails on any failure. Every fixture is compiled with every "
        "strategy",
        f"({strategies}) for {targets},",
        "simulated by cim-sim's engine and executed in exact mode against onnxruntime",
        "on cim-verify's seeded inputs (seed 0); an output so small that zeros "
        "would pass",
        "counts as a failure (`cim-verify --strict`).",
        "",
        f"{passed} of {len(outcomes)} runs pass.",
        "",
        f"`max rel` is the largest exact-mode relative error over the {runs} "
        "runs of a file;",
        "`rewritten` lists its ops that the frontend rewrites "
        "(`cimflow/frontend/decompose.py`).",
        "The static and cmswitch columns are for `dynaplasia`: compile time (frontend,",
        "convert-graph-to-tile, allocation, lowering, trace; one run on the "
        "machine that",
        "wrote this file, so only a rough guide) and simulated cycles.",
        "",
        "| file | ONNX nodes | rewritten | runs passed | max rel | static compile "
        "| static cycles | cmswitch compile | cmswitch cycles |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in paths:
        mine = [o for o in outcomes if o.path == path]
        worst = max((o.max_rel_error for o in mine), default=float("inf"))
        static = by_key.get((path, "static", "dynaplasia"))
        cmswitch = by_key.get((path, "cmswitch", "dynaplasia"))
        graph = onnx.load(str(path), load_external_data=False).graph
        ranks = {t.name: len(t.dims) for t in graph.initializer}
        rewritten = Counter(n.op_type for n in graph.node if n.op_type in REWRITES)
        rewritten.update(
            "Conv (1-D)"
            for n in graph.node
            if n.op_type == "Conv" and ranks.get(n.input[1]) == 3
        )
        cells = [
            path.name,
            str(len(graph.node)),
            ", ".join(f"{op} {count}" for op, count in sorted(rewritten.items()))
            or "—",
            f"{sum(o.ok for o in mine)}/{runs}",
            f"{worst:.2g}",
        ]
        for outcome in (static, cmswitch):
            if outcome is None or outcome.error is not None:
                cells += ["—", "—"]
            else:
                cells += [f"{outcome.compile_seconds:.2f} s", f"{outcome.cycles:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [o.describe() for o in outcomes if not o.ok]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cimflow.tools.fixture_status", description=__doc__
    )
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("-o", "--output", help="write the table here, not stdout")
    args = parser.parse_args(argv)
    paths = fixture_paths(args.fixtures)
    if not paths:
        print(
            f"fixture_status: error: no .onnx file in {args.fixtures}", file=sys.stderr
        )
        return 1
    try:
        outcomes = run_matrix(paths)
        text = status_markdown(paths, outcomes)
        if args.output:
            write_output(args.output, text)
        else:
            sys.stdout.write(text)
    except CimError as error:
        print(f"fixture_status: error: {error}", file=sys.stderr)
        return 1
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
