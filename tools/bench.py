"""``cim-bench``: the benchmark harness, strategies x models x targets.

For every combination of a zoo model (:mod:`cimflow.tools.zoo`, built
shape-only in a temporary directory), a target and an allocation strategy
(a name in :data:`cimflow.passes.pipelines.STRATEGIES`), the harness
compiles with ``cim-compile{strategy=S target=T}`` (timed), builds the trace
and simulates it (timed), and computes the latency lower bound of the tiled
model (:func:`cimflow.analysis.lower_bound.latency_lower_bound`). It prints a
table, and with ``--out DIR`` writes ``DIR/bench.csv`` and PNG plots (when
matplotlib is installed: ``pip install 'cimflow[bench]'``)::

    cim-bench                                   # the default suite
    cim-bench --suite full --jobs 2 --out results/
    cim-bench --models gpt2,llama2_7b --phases decode --batch 1,4,16 \\
        --sequence 128,2048 --targets dynaplasia
    cim-bench --mapping-report --models resnet18,vgg16   # PIMCOMP cross-check

A combination that fails (any exception) is reported in the ``status``
column and the sweep goes on; the exit status is 1 if any failed. With
``--jobs N`` combinations run as tasks on a local Dask cluster of ``N``
worker processes, with ``--scheduler ADDRESS`` on a running cluster
(:mod:`cimflow.tools.bench_cluster`); workers see the strategies
registered when :mod:`cimflow.passes.pipelines` is imported. ``--cache
DIR`` keeps each result as it finishes (:mod:`cimflow.tools.bench_cache`).

The CSV has one row per combination, in a fixed order (models in zoo order,
then phase, batch, sequence, target, strategy) and fixed columns
(:func:`csv_columns`); every column but the wall-clock times
(:data:`TIME_COLUMNS`, the last ones) is deterministic. ``speedup_vs_<S>``
is strategy ``S``'s latency over this row's (above 1: this row is faster),
``speedup_vs_best_other`` the same for the fastest other strategy of the
sweep; ``bound_ratio`` is the latency over the lower bound (at least 1);
``energy_<component>_uj`` splits ``energy_uj`` as ``cim-sim`` does (array,
ADC, DAC, zero detection, row indices, programming, mode switches, memory-mode arrays,
buffers, interconnect, DRAM, vector units, array and buffer leakage);
``area_mm2`` and ``tops_per_mm2`` are the chip's area and TOPS over it
(:mod:`cimflow.analysis.area`; empty where the target has no ``[area]``);
``critical_by`` names the resource class that most of the simulated
run's critical path waited on and ``critical_<class>_share`` gives each
class's share of the latency (:mod:`cimflow.cimsim.critical`);
``switch_share`` is the cycles mode switches take over the latency (an upper
bound of their overhead: switches may overlap other work);
``predicted_ratio`` is the compiler's own latency prediction (strategies that
make one: ``cim_tile.predicted_cycles``) over the simulated latency;
:data:`PROVENANCE_COLUMNS` say what produced the row.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import importlib.metadata
import io
import itertools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp

from cimflow.analysis.lower_bound import LowerBound, latency_lower_bound
from cimflow.analysis.mapping_report import (
    PIMCOMP_COMPILER_CROSSBARS,
    format_mapping,
    mapping_summary,
)
from cimflow.cimsim.critical import CRITICAL_CLASSES, critical_path, dominant_class
from cimflow.cimsim.efficiency import efficiency
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.report import status_summary
from cimflow.cimsim.trace import parse_trace
from cimflow.cli import ArgumentParser, add_target_overrides, exit_status
from cimflow.cost_model import ENERGY_COMPONENTS
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.frontend.model_file import check_readable_file
from cimflow.hw_targets import load_target, overridden
from cimflow.output_files import output_error, write_output
from cimflow.passes.cim_allocate import PREDICTED_ATTR, SolverRecord, solver_records
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.pipelines import STRATEGIES, CompilePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools.bench_cache import (
    cache_key,
    overridden_target_hash,
    project_version,
    read_cached,
    write_cached,
)
from cimflow.tools.bench_cluster import cluster_client, run_tasks
from cimflow.tools.model_builders import Phase
from cimflow.tools.zoo import (
    DEFAULT_SMALL_SEQUENCE,
    PHASES,
    ZOO,
    ZOO_BY_NAME,
    ZooEntry,
    zoo_plan,
)

DEFAULT_TARGETS: tuple[str, ...] = ("dynaplasia", "pimcomp_default")


@dataclass(frozen=True)
class Suite:
    """A preset sweep: which models, batches, sequence lengths and phases."""

    models: tuple[str, ...]
    batches: tuple[int, ...]
    sequences: tuple[int, ...]
    phases: tuple[Phase, ...] = PHASES
    description: str = ""


SUITES: dict[str, Suite] = {
    "default": Suite(
        ("resnet18", "resnet50", "vgg16", "mobilenetv2", "bert_base", "gpt2"),
        (1,),
        (128,),
        description="small and medium models at batch 1, L 128 (a few minutes)",
    ),
    "full": Suite(
        tuple(model.name for model in ZOO),
        (1, 4, 16),
        (128, 512, 2048),
        description="the whole zoo, LLM prefill and decode at batch 1-16, L 128-2048",
    ),
}
"""The ``--suite`` presets; explicit options override their fields."""

KEY_COLUMNS: tuple[str, ...] = (
    "model",
    "phase",
    "batch",
    "L",
    "target",
    "overrides",
    "strategy",
    "status",
)
ENERGY_COLUMNS: tuple[str, ...] = tuple(f"energy_{c}_uj" for c in ENERGY_COMPONENTS)
"""The energy of each component (``cim-sim``'s breakdown), after the total."""
CRITICAL_COLUMNS: tuple[str, ...] = (
    "critical_by",
    *(f"critical_{c}_share" for c in CRITICAL_CLASSES),
)
"""What the simulated run waited on: the resource class with the most
cycles on its critical path, and each class's cycles over the latency
(:mod:`cimflow.cimsim.critical`)."""
RESULT_COLUMNS: tuple[str, ...] = (
    "latency_cycles",
    "latency_ms",
    "throughput_per_s",
    "energy_uj",
    *ENERGY_COLUMNS,
    "tops",
    "tops_per_watt",
    "area_mm2",
    "tops_per_mm2",
    "array_utilization",
    "dram_bytes",
    "bound_cycles",
    "bound_by",
    "bound_ratio",
    "bound_compute_cycles",
    "bound_dram_cycles",
    "bound_interconnect_cycles",
    "bound_vector_cycles",
    "bound_chain_cycles",
    *CRITICAL_COLUMNS,
    "switch_share",
    "predicted_ratio",
    "solver_status",
    "solver_nodes",
)
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "pipeline",
    "target_hash",
    "cimflow_version",
    "highspy_version",
)
"""What produced a row: the compile pipeline (``cim-compile`` with the
strategy and target; the overrides are their own column), the content hash
of the target with its overrides, and the versions of cimflow and of the
MILP solver."""
TIME_COLUMNS: tuple[str, ...] = ("compile_s", "simulate_s", "wall_s")
"""Wall-clock columns (not deterministic), always the last ones."""


def csv_columns(strategies: Sequence[str]) -> list[str]:
    """The CSV's columns for a sweep over ``strategies``, in order."""
    speedups = [f"speedup_vs_{name}" for name in strategies]
    return [
        *KEY_COLUMNS,
        *RESULT_COLUMNS,
        *speedups,
        "speedup_vs_best_other",
        *PROVENANCE_COLUMNS,
        *TIME_COLUMNS,
    ]


@dataclass(frozen=True)
class Combination:
    """One model entry x target x strategy, picklable for worker processes."""

    index: int
    zoo_name: str
    """The zoo model (``resnet18``), also for a small variant."""
    stem: str
    """The entry's file stem (``gpt2.decode.b1.L128``)."""
    name: str
    """The entry's model name (``gpt2``, or ``gpt2_tiny`` with ``small``)."""
    phase: Phase | None
    batch: int
    sequence: int | None
    small: bool
    target: str
    strategy: str
    overrides: tuple[str, ...] = ()
    """``--set`` and ``--sweep`` overrides of the target
    (``section.key=value``)."""
    source: str = ""
    """An ONNX file to run instead of a zoo entry."""
    cache: str = ""
    """The ``--cache`` directory (empty: none)."""

    @property
    def label(self) -> str:
        """``gpt2 decode b1 L128 dynaplasia static``."""
        parts = [self.name]
        if self.phase is not None:
            parts.append(self.phase)
        parts.append(f"b{self.batch}")
        if self.sequence is not None:
            parts.append(f"L{self.sequence}")
        return " ".join([*parts, self.target, *self.overrides, self.strategy])


@dataclass(frozen=True)
class Measurement:
    """What one combination produced (``error`` set when it failed)."""

    combination: Combination
    error: str | None = None
    latency_cycles: int = 0
    latency_s: float = 0.0
    throughput: float = 0.0
    energy_pj: float = 0.0
    energy_parts: tuple[tuple[str, float], ...] = ()
    """Picojoules per energy component, in :data:`ENERGY_COMPONENTS` order."""
    array_utilization: float = 0.0
    dram_bytes: int = 0
    bound: LowerBound | None = None
    switch_cycles: int = 0
    critical_parts: tuple[tuple[str, int], ...] = ()
    """Critical-path cycles per class, in :data:`CRITICAL_CLASSES` order."""
    predicted_cycles: int | None = None
    solver: tuple[SolverRecord, ...] = ()
    """The MILP's distinct segment problems (none for heuristic strategies)."""
    compile_s: float = 0.0
    simulate_s: float = 0.0
    wall_s: float = 0.0
    tops: float = 0.0
    tops_per_watt: float = 0.0
    area_mm2: float | None = None
    """The chip's area (``None``: the target gives none)."""
    tops_per_mm2: float | None = None
    cached: bool = False
    """Read from the ``--cache`` directory, not computed in this run."""


# -- running one combination ----------------------------------------------


@dataclass
class _Cache:
    """The last imported model and its bounds, reused by later combinations."""

    stem: str | None = None
    module: ModuleOp | None = None
    bounds: dict[tuple[str, ...], LowerBound] = field(default_factory=lambda: {})


_CACHE = _Cache()


def _entry(combination: Combination) -> ZooEntry:
    phases: Sequence[Phase] = (
        PHASES if combination.phase is None else (combination.phase,)
    )
    entries, _ = zoo_plan(
        combination.batch,
        combination.sequence,
        phases,
        combination.small,
        models=[combination.zoo_name],
    )
    for entry in entries:
        if entry.stem == combination.stem:
            return entry
    raise CimError(f"no zoo entry {combination.stem}")


def _imported(combination: Combination) -> ModuleOp:
    """The cim_graph module of the combination's model (cached by model)."""
    key = combination.source or combination.stem
    if _CACHE.stem != key or _CACHE.module is None:
        if combination.source:
            module = import_onnx(Path(combination.source))
        else:
            entry = _entry(combination)
            with tempfile.TemporaryDirectory(prefix="cim-bench-") as directory:
                path = Path(directory) / entry.file_name
                onnx.save(entry.builder(), path)
                module = import_onnx(path)
        _CACHE.stem, _CACHE.module, _CACHE.bounds = key, module, {}
    return _CACHE.module.clone()


def _bound(combination: Combination) -> LowerBound:
    """The lower bound of the model on the target (cached per target and
    ``--set`` overrides)."""
    key = (combination.target, *combination.overrides)
    bound = _CACHE.bounds.get(key)
    if bound is None:
        tiled = _imported(combination)
        ConvertGraphToTilePass(combination.target).apply(Context(), tiled)
        bound = latency_lower_bound(tiled, load_target(combination.target))
        _CACHE.bounds[key] = bound
    return bound


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, CimError):
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


_TASK_LOCK = threading.Lock()
"""Held while a point is measured: ``--set`` overrides are the process's
(:func:`overridden`), so a worker with several threads runs one at a time."""


def measure_point(combination: Combination) -> Measurement:
    """Compile, simulate and bound one combination with its target's
    overrides (what a sweep's task runs, in this process or on a worker)."""
    with _TASK_LOCK, overridden(combination.overrides):
        return _measure(combination)


def _cache_key(combination: Combination) -> str:
    model: dict[str, object] = (
        {"onnx": combination.source}
        if combination.source
        else {"zoo": combination.stem, "small": combination.small}
    )
    return cache_key(
        model, combination.target, combination.overrides, combination.strategy
    )


def cached_measurement(combination: Combination) -> Measurement | None:
    """The combination's result from its ``--cache`` directory, if kept."""
    if not combination.cache:
        return None
    data = read_cached(Path(combination.cache), _cache_key(combination))
    if data is None:
        return None
    try:
        return _from_dict(data, combination)
    except (KeyError, TypeError, ValueError):
        return None  # kept by another version of this format: computed again


def keep_measurement(measurement: Measurement) -> Measurement:
    """Write a computed result to its ``--cache`` directory (a failure is
    not kept), and return it."""
    combination = measurement.combination
    if combination.cache and measurement.error is None and not measurement.cached:
        write_cached(
            Path(combination.cache), _cache_key(combination), _to_dict(measurement)
        )
    return measurement


def _to_dict(measurement: Measurement) -> dict[str, Any]:
    data = dataclasses.asdict(measurement)
    del data["combination"], data["cached"]
    return data


def _from_dict(data: dict[str, Any], combination: Combination) -> Measurement:
    """A measurement :func:`_to_dict` kept, for ``combination``."""
    fields = dict(data)
    bound = fields.pop("bound")
    solver = fields.pop("solver")
    parts = fields.pop("energy_parts")
    critical = fields.pop("critical_parts")
    return Measurement(
        combination,
        bound=None if bound is None else LowerBound(**bound),
        solver=tuple(
            SolverRecord(tuple(r["segments"]), str(r["status"]), int(r["nodes"]))
            for r in solver
        ),
        energy_parts=tuple((str(c), float(pj)) for c, pj in parts),
        critical_parts=tuple((str(c), int(cycles)) for c, cycles in critical),
        cached=True,
        **fields,
    )


def _measure(combination: Combination) -> Measurement:
    """Compile, simulate and bound one combination; errors become ``error``."""
    start = time.perf_counter()
    try:
        module = _imported(combination)
        bound = _bound(combination)
        compile_start = time.perf_counter()
        CompilePass(combination.strategy, combination.target).apply(Context(), module)
        prediction = module.attributes.get(PREDICTED_ATTR)
        predicted = (
            prediction.value.data if isinstance(prediction, IntegerAttr) else None
        )
        solver = tuple(solver_records(module))
        simulate_start = time.perf_counter()
        result = simulate(parse_trace(build_trace(module), combination.stem))
        done = time.perf_counter()
    except Exception as error:  # any failure is a table row
        return Measurement(
            combination,
            error=_error_text(error),
            wall_s=time.perf_counter() - start,
        )
    stats = result.stats
    work = efficiency(result)
    path = critical_path(result)
    return Measurement(
        combination,
        latency_cycles=stats.makespan_cycles,
        latency_s=stats.seconds,
        throughput=stats.throughput,
        energy_pj=stats.total_energy_pj,
        energy_parts=tuple((c, stats.energy_pj.get(c, 0.0)) for c in ENERGY_COMPONENTS),
        tops=work.tops,
        tops_per_watt=work.tops_per_watt,
        area_mm2=work.area_mm2,
        tops_per_mm2=work.tops_per_mm2,
        array_utilization=stats.array_utilization,
        dram_bytes=stats.dram_bytes_read + stats.dram_bytes_written,
        bound=bound,
        switch_cycles=stats.kind_cycles.get("switch", 0),
        critical_parts=tuple((c, path.cycles[c]) for c in CRITICAL_CLASSES),
        predicted_cycles=predicted,
        solver=solver,
        compile_s=simulate_start - compile_start,
        simulate_s=done - simulate_start,
        wall_s=done - start,
    )


# -- planning ---------------------------------------------------------------


def plan_sweep(
    models: Sequence[str],
    batches: Sequence[int],
    sequences: Sequence[int],
    phases: Sequence[Phase],
    targets: Sequence[str],
    strategies: Sequence[str],
    small: bool = False,
    variants: Sequence[tuple[str, ...]] = ((),),
    paths: Sequence[str] = (),
) -> tuple[list[Combination], list[str]]:
    """Every combination, in table order, and notes on skipped entries.

    Models go in zoo order; a model's entries by phase, batch and sequence
    (a CNN once per batch); then the ONNX files of ``paths`` in the given
    order (each as its shapes say); then targets, the target overrides of
    each ``variants`` entry and strategies in the given order.
    """
    order = {model.name: index for index, model in enumerate(ZOO)}
    combinations: list[Combination] = []
    notes: list[str] = []
    seen: set[str] = set()
    for zoo_name in sorted(dict.fromkeys(models), key=lambda name: order[name]):
        entries: list[ZooEntry] = []
        for batch in batches:
            for sequence in sequences:
                found, skipped = zoo_plan(
                    batch, sequence, phases, small, models=[zoo_name]
                )
                notes += [note for note in skipped if note not in notes]
                entries += [e for e in found if e.stem not in seen]
                seen.update(e.stem for e in found)
        phase_order = {None: 0, "prefill": 1, "decode": 2}
        entries.sort(key=lambda e: (phase_order[e.phase], e.batch, e.sequence or 0))
        for entry in entries:
            for target in targets:
                for variant in variants:
                    for strategy in strategies:
                        combinations.append(
                            Combination(
                                len(combinations),
                                zoo_name,
                                entry.stem,
                                entry.name,
                                entry.phase,
                                entry.batch,
                                entry.sequence,
                                small,
                                target,
                                strategy,
                                variant,
                            )
                        )
    for path in dict.fromkeys(paths):
        name = Path(path).stem
        for target in targets:
            for variant in variants:
                for strategy in strategies:
                    combinations.append(
                        Combination(
                            len(combinations),
                            path,
                            name,
                            name,
                            None,
                            _batch_of(Path(path)),
                            None,
                            False,
                            target,
                            strategy,
                            variant,
                            source=path,
                        )
                    )
    return combinations, notes


def _batch_of(path: Path) -> int:
    """The leading dimension of an ONNX file's first input (1 when it is
    symbolic or there is none)."""
    from cimflow.frontend.model_file import load_model

    inputs = list(load_model(path).graph.input)
    if not inputs or not inputs[0].type.tensor_type.shape.dim:
        return 1
    first: int = inputs[0].type.tensor_type.shape.dim[0].dim_value
    return max(1, first)


def sweep_variants(fixed: Sequence[str], axes: Sequence[str]) -> list[tuple[str, ...]]:
    """The target overrides of every point of a sweep: the ``--set``
    overrides, then one value of each ``--sweep SECTION.KEY=V1,V2,...``
    axis (every combination, the first axis slowest)."""
    values: list[list[str]] = []
    for axis in axes:
        key, sep, text = axis.partition("=")
        choices = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or "." not in key or not choices:
            raise CimError(f"--sweep '{axis}': expected SECTION.KEY=V1,V2,...")
        values.append([f"{key.strip()}={v}" for v in choices])
    return [(*fixed, *point) for point in itertools.product(*values)]


def run_sweep(
    combinations: Sequence[Combination],
    jobs: int = 1,
    progress: Callable[[int, int, Measurement], None] | None = None,
    scheduler: str | None = None,
) -> list[Measurement]:
    """Run every combination, in combination order: the cached ones are
    read first, the rest measured in this process (``jobs`` 1, no
    ``scheduler``) or as tasks on a Dask cluster (:mod:`bench_cluster`: a
    local one of ``jobs`` workers, or the one at ``scheduler``), each kept
    in the cache as it comes back."""
    total = len(combinations)
    results: dict[int, Measurement] = {}

    def finished(measurement: Measurement) -> None:
        results[measurement.combination.index] = measurement
        if progress is not None:
            progress(len(results), total, measurement)

    missing: list[Combination] = []
    for combination in combinations:
        kept = cached_measurement(combination)
        if kept is None:
            missing.append(combination)
        else:
            finished(kept)
    if scheduler is None and (jobs <= 1 or len(missing) <= 1):
        for combination in missing:
            finished(keep_measurement(measure_point(combination)))
    elif missing:
        with cluster_client(jobs, scheduler) as client:
            for combination, outcome in run_tasks(client, measure_point, missing):
                if isinstance(outcome, Measurement):
                    finished(keep_measurement(outcome))
                else:  # the task itself failed: a worker that died
                    finished(Measurement(combination, _error_text(outcome)))
    return [results[c.index] for c in combinations]


# -- rows, table, CSV -------------------------------------------------------


def _number(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}g}"


def _chip_name(spec: str) -> str:
    """The chip's own name for a target spec (a file path names the file's
    chip, not the path)."""
    try:
        return load_target(spec).name
    except CimError:
        return spec


def _target_hash(spec: str, overrides: Sequence[str]) -> str:
    """The content hash of the target with its overrides ("" when it does
    not load: its row says why)."""
    try:
        return overridden_target_hash(spec, overrides)
    except CimError:
        return ""


def _critical_cells(m: Measurement) -> dict[str, str]:
    cycles = dict(m.critical_parts)
    if not cycles:
        return {}
    return {
        "critical_by": dominant_class(cycles),
        **{
            f"critical_{c}_share": _number(cycles[c] / max(1, m.latency_cycles), 4)
            for c in CRITICAL_CLASSES
        },
    }


def measurement_rows(
    measurements: Sequence[Measurement], strategies: Sequence[str]
) -> list[dict[str, str]]:
    """One CSV row (column -> text) per measurement, speedups filled in."""
    latency: dict[tuple[str, ...], int] = {}
    for m in measurements:
        c = m.combination
        if m.error is None:
            latency[(c.source or c.stem, c.target, *c.overrides, c.strategy)] = (
                m.latency_cycles
            )
    rows: list[dict[str, str]] = []
    for m in measurements:
        c = m.combination
        row = {column: "" for column in csv_columns(strategies)}
        row.update(
            model=c.name,
            phase=c.phase or "",
            batch=str(c.batch),
            L="" if c.sequence is None else str(c.sequence),
            target=_chip_name(c.target),
            overrides=" ".join(c.overrides),
            strategy=c.strategy,
            status="ok" if m.error is None else f"error: {m.error}",
            pipeline=f"cim-compile{{strategy={c.strategy} target={c.target}}}",
            target_hash=_target_hash(c.target, c.overrides),
            cimflow_version=project_version(),
            highspy_version=importlib.metadata.version("highspy"),
            wall_s=f"{m.wall_s:.3f}",
        )
        if m.error is None and m.bound is not None:
            bound = m.bound
            row.update(
                latency_cycles=str(m.latency_cycles),
                latency_ms=_number(m.latency_s * 1e3),
                throughput_per_s=_number(m.throughput),
                energy_uj=_number(m.energy_pj / 1e6),
                **{
                    f"energy_{component}_uj": _number(pj / 1e6)
                    for component, pj in m.energy_parts
                },
                tops=_number(m.tops, 4),
                tops_per_watt=_number(m.tops_per_watt, 4),
                area_mm2="" if m.area_mm2 is None else _number(m.area_mm2),
                tops_per_mm2=""
                if m.tops_per_mm2 is None
                else _number(m.tops_per_mm2, 4),
                array_utilization=f"{m.array_utilization:.4f}",
                dram_bytes=str(m.dram_bytes),
                bound_cycles=str(bound.cycles),
                bound_by=bound.bound_by,
                bound_ratio=_number(m.latency_cycles / max(1, bound.cycles), 4),
                bound_compute_cycles=str(bound.compute_cycles),
                bound_dram_cycles=str(bound.dram_cycles),
                bound_interconnect_cycles=str(bound.interconnect_cycles),
                bound_vector_cycles=str(bound.vector_cycles),
                bound_chain_cycles=str(bound.chain_cycles),
                **_critical_cells(m),
                switch_share=_number(m.switch_cycles / max(1, m.latency_cycles), 4),
                predicted_ratio=""
                if m.predicted_cycles is None
                else _number(m.predicted_cycles / max(1, m.latency_cycles), 4),
                solver_status=status_summary(r.status for r in m.solver),
                solver_nodes=str(max((r.nodes for r in m.solver), default=0))
                if m.solver
                else "",
                compile_s=f"{m.compile_s:.3f}",
                simulate_s=f"{m.simulate_s:.3f}",
            )
            others: list[int] = []
            for other in strategies:
                theirs = latency.get(
                    (c.source or c.stem, c.target, *c.overrides, other)
                )
                if theirs is not None and m.latency_cycles > 0:
                    row[f"speedup_vs_{other}"] = _number(theirs / m.latency_cycles, 4)
                    if other != c.strategy:
                        others.append(theirs)
            if others and m.latency_cycles > 0:
                row["speedup_vs_best_other"] = _number(
                    min(others) / m.latency_cycles, 4
                )
        rows.append(row)
    return rows


def write_csv(
    path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str]
) -> None:
    """Write ``rows`` with exactly ``columns``, ``\\n`` line endings."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_output(path, buffer.getvalue())


_TEXT_COLUMNS = frozenset(
    {"model", "phase", "target", "overrides", "strategy", "bound_by", "critical_by"}
)
"""Table columns aligned left."""

_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("phase", "phase"),
    ("batch", "B"),
    ("L", "L"),
    ("target", "target"),
    ("strategy", "strategy"),
    ("latency_cycles", "cycles"),
    ("latency_ms", "ms"),
    ("throughput_per_s", "samples/s"),
    ("energy_uj", "energy uJ"),
    ("array_utilization", "util"),
    ("compile_s", "compile s"),
)


def format_table(rows: Sequence[dict[str, str]], strategies: Sequence[str]) -> str:
    """The rows as an aligned text table (errors on their own lines)."""
    table = list(_TABLE_COLUMNS)
    if any(row["overrides"] for row in rows):  # a hardware sweep
        table.insert(table.index(("target", "target")) + 1, ("overrides", "set"))
    columns = [
        *table,
        *((f"speedup_vs_{s}", f"x{s}") for s in strategies),
        ("bound_ratio", "/bound"),
        ("bound_by", "bound by"),
        ("critical_by", "waits on"),
    ]
    cycles = columns.index(("latency_cycles", "cycles"))
    cells = [[title for _, title in columns]]
    errors: list[str] = []
    for row in rows:
        cells.append([row[key] or "-" for key, _ in columns])
        if row["status"] != "ok":
            cells[-1][cycles] = "FAILED"
            label = " ".join(
                part
                for part in (row["model"], row["phase"], f"b{row['batch']}", row["L"])
                if part
            )
            errors.append(
                f"  {label} {row['target']} {row['strategy']}: {row['status']}"
            )
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text_columns = {i for i, (key, _) in enumerate(columns) if key in _TEXT_COLUMNS} | {
        len(columns) - 1
    }
    lines = [
        "  ".join(
            cell.ljust(width) if i in text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in cells
    ]
    if errors:
        lines += ["failed combinations:", *errors]
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------

PLOTS: tuple[tuple[str, str, str, bool], ...] = (
    ("latency.png", "latency_ms", "latency (ms)", True),
    ("energy.png", "energy_uj", "energy (uJ)", True),
    ("utilization.png", "array_utilization", "array utilization", False),
    ("speedup_vs_static.png", "speedup_vs_static", "speedup over static", False),
    ("bound_ratio.png", "bound_ratio", "latency / lower bound", False),
    ("compile_time.png", "compile_s", "compile time (s)", True),
)
"""``(file, column, axis label, log scale)`` of every plot. Ratios are bars
on a linear axis from zero; quantities that span orders of magnitude
across models are points on a log axis (a bar on a log axis has no
zero to start from)."""


def entry_label(row: dict[str, str]) -> str:
    """``gpt2 decode b1 L128``: a row's model entry."""
    parts = (
        row["model"],
        row["phase"],
        f"b{row['batch']}",
        row["L"] and f"L{row['L']}",
    )
    return " ".join(part for part in parts if part)


def agg_pyplot() -> Any | None:
    """matplotlib's pyplot on the non-interactive Agg backend, or None when
    matplotlib is not installed (it is an optional dependency, so it is
    used untyped)."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None


def write_plots(
    out: Path, rows: Sequence[dict[str, str]], strategies: Sequence[str]
) -> list[Path] | None:
    """One PNG per metric (:data:`PLOTS`): a panel per target (and hardware
    point of a sweep), all on one y scale, model entries along x, a bar or
    point per strategy, the legend above the panels; and ``pareto.png``,
    latency against energy of every combination (``pareto_area.png``
    against chip area, where targets give one). Failed combinations are
    left out. Returns the files written, or None when matplotlib is not
    installed."""
    pyplot = agg_pyplot()
    if pyplot is None:
        return None
    panels = list(dict.fromkeys(_panel(row) for row in rows))
    entries = list(dict.fromkeys(entry_label(row) for row in rows))
    width = 0.8 / max(1, len(strategies))
    written: list[Path] = []
    for file_name, column, label, log in PLOTS:
        if not any(row.get(column) for row in rows):
            continue
        figure, axes = pyplot.subplots(
            len(panels),
            1,
            figsize=(
                min(40.0, max(6.0, 1.0 + (0.3 * len(strategies) + 0.5) * len(entries))),
                3.4 * len(panels) + 0.6,
            ),
            squeeze=False,
            sharey=True,
            layout="constrained",
        )
        for panel, name in zip(axes[:, 0], panels, strict=True):
            for offset, strategy in enumerate(strategies):
                shift = (offset - (len(strategies) - 1) / 2) * width
                points = [
                    (entries.index(entry_label(row)) + shift, float(row[column]))
                    for row in rows
                    if _panel(row) == name
                    and row["strategy"] == strategy
                    and row.get(column)
                ]
                xs, ys = [x for x, _ in points], [y for _, y in points]
                color = f"C{offset}"
                if log:
                    panel.plot(xs, ys, "o", color=color, label=strategy)
                else:
                    panel.bar(xs, ys, width, color=color, label=strategy)
            panel.set_xticks(
                list(range(len(entries))), entries, rotation=30, ha="right", fontsize=8
            )
            panel.set_title(name)
            panel.set_ylabel(label)
            if log:
                panel.set_yscale("log")
            if column.startswith("speedup") or column == "bound_ratio":
                panel.axhline(1.0, color="black", linewidth=0.8)
        if not log:
            # once every panel is drawn: the shared scale then fits them all
            # (set on the first, it would cut the later panels' bars)
            axes[0, 0].set_ylim(bottom=0)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        figure.legend(
            handles, labels, loc="outside upper center", ncols=len(strategies)
        )
        written.append(save_png(pyplot, figure, out / file_name))
    for file_name, cost, cost_label in PARETO_PLOTS:
        pareto = _pareto(pyplot, rows, strategies, cost, cost_label)
        if pareto is not None:
            written.append(save_png(pyplot, pareto, out / file_name))
    return written


def _panel(row: dict[str, str]) -> str:
    """A plot panel's title: the target, and a sweep's hardware point."""
    return " ".join(part for part in (row["target"], row.get("overrides", "")) if part)


def save_png(pyplot: Any, figure: Any, path: Path) -> Path:
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    pyplot.close(figure)
    write_output(path, image.getvalue())
    return path


PARETO_PLOTS: tuple[tuple[str, str, str], ...] = (
    ("pareto.png", "energy_uj", "energy (uJ)"),
    ("pareto_area.png", "area_mm2", "chip area (mm2)"),
)
"""(file, CSV column, axis label): latency against each cost; a plot is
written when some row has the column (area: targets with ``[area]``)."""


def _pareto(
    pyplot: Any,
    rows: Sequence[dict[str, str]],
    strategies: Sequence[str],
    cost: str,
    cost_label: str,
) -> Any | None:
    """Latency against the ``cost`` column, one panel per model entry, a
    marker shape per strategy and a color per target and hardware point, the
    Pareto front of each panel drawn through the points no other beats on
    both."""
    done = [r for r in rows if r.get("latency_ms") and r.get(cost)]
    if not done:
        return None
    entries = list(dict.fromkeys(entry_label(row) for row in done))
    panels = list(dict.fromkeys(_panel(row) for row in done))
    markers = "osD^vP*Xhp"
    figure, axes = pyplot.subplots(
        1,
        len(entries),
        figsize=(4.2 * len(entries) + 0.5, 4.2),
        squeeze=False,
        layout="constrained",
    )
    for panel, entry in zip(axes[0, :], entries, strict=True):
        mine = [r for r in done if entry_label(r) == entry]
        for row in mine:
            strategy = strategies.index(row["strategy"]) % len(markers)
            point = panels.index(_panel(row))
            panel.plot(
                float(row["latency_ms"]),
                float(row[cost]),
                markers[strategy],
                color=f"C{point}",
            )
        front = sorted(
            (float(r["latency_ms"]), float(r[cost]))
            for r in mine
            if not any(
                float(o["latency_ms"]) <= float(r["latency_ms"])
                and float(o[cost]) <= float(r[cost])
                and o is not r
                and (o["latency_ms"], o[cost]) != (r["latency_ms"], r[cost])
                for o in mine
            )
        )
        panel.plot([x for x, _ in front], [y for _, y in front], "-", color="gray")
        panel.set_title(entry)
        panel.set_xlabel("latency (ms)")
        panel.set_ylabel(cost_label)
        panel.set_xlim(left=0)
        panel.set_ylim(bottom=0)
    handles = [
        pyplot.Line2D([], [], linestyle="", marker=markers[i % len(markers)], color="k")
        for i in range(len(strategies))
    ] + [
        pyplot.Line2D([], [], linestyle="", marker="s", color=f"C{i}")
        for i in range(len(panels))
    ]
    figure.legend(
        handles,
        [*strategies, *panels],
        loc="outside upper center",
        ncols=min(3, len(strategies) + len(panels)),
    )
    return figure


# -- mapping report ---------------------------------------------------------


def mapping_report(
    models: Sequence[str], targets: Sequence[str], budget: int | None = None
) -> str:
    """PIMCOMP cross-check tables (:mod:`cimflow.analysis.mapping_report`) of
    the models at batch 1 on each target, with ``balance`` replication for
    ``budget`` crossbars (default: the target's arrays) and a line for
    PIMCOMP's own compiler budget."""
    sections: list[str] = []
    for target in targets:
        hw = load_target(target)
        for entry in zoo_plan(1, None, ("prefill",), models=list(models))[0]:
            with tempfile.TemporaryDirectory(prefix="cim-bench-") as directory:
                path = Path(directory) / entry.file_name
                onnx.save(entry.builder(), path)
                module = import_onnx(path)
            ConvertGraphToTilePass(target).apply(Context(), module)
            summary = mapping_summary(module, budget or hw.total_arrays)
            compiler = mapping_summary(module, PIMCOMP_COMPILER_CROSSBARS)
            verdict = "fits" if compiler.fits else "does not fit: map check fails"
            sections.append(
                format_mapping(summary, f"{entry.stem} on {target}")
                + f"\nwith PIMCOMP's compiler budget ({PIMCOMP_COMPILER_CROSSBARS}"
                f" crossbars): {compiler.logical_replicated} logical crossbars"
                f" ({verdict})"
            )
    return "\n\n".join(sections)


# -- command line -------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _phases(text: str) -> tuple[Phase, ...]:
    if text == "both":
        return PHASES
    chosen = _names(text)
    phases: tuple[Phase, ...] = tuple(p for p in PHASES if p in chosen)
    if not chosen or len(phases) != len(set(chosen)):
        raise argparse.ArgumentTypeError(
            f"phases are {', '.join(PHASES)} or both, got {text!r}"
        )
    return phases


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cim-bench",
        description="Benchmark allocation strategies x zoo models x targets: "
        "compile, simulate, compare with the latency lower bound.",
    )
    suites = "; ".join(f"{name}: {suite.description}" for name, suite in SUITES.items())
    parser.add_argument(
        "--suite", choices=list(SUITES), default="default", help=f"preset ({suites})"
    )
    parser.add_argument(
        "--models",
        type=_names,
        default=None,
        help="comma-separated zoo names and ONNX files (paths ending in .onnx, "
        "run as their shapes say)",
    )
    parser.add_argument(
        "--targets",
        type=_names,
        default=None,
        help=f"comma-separated targets (default {','.join(DEFAULT_TARGETS)})",
    )
    add_target_overrides(parser)
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="SECTION.KEY=V1,V2,...",
        help="a hardware axis: every combination runs with each value of the "
        "key (repeatable: every point of the axes)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each result in DIR as it finishes and reuse it (a killed "
        "sweep run again computes only what it had not)",
    )
    parser.add_argument(
        "--strategies",
        type=_names,
        default=None,
        help="comma-separated strategies (default: all registered)",
    )
    parser.add_argument(
        "--batch", type=_ints, default=None, help="batch sizes, e.g. 1,4,16"
    )
    parser.add_argument(
        "--sequence", type=_ints, default=None, help="sequence lengths L, e.g. 128,2048"
    )
    parser.add_argument(
        "--phases", type=_phases, default=None, help="prefill, decode or both"
    )
    parser.add_argument("--small", action="store_true", help="the small zoo variants")
    parser.add_argument(
        "--out", type=Path, default=None, help="directory for CSV and plots"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run the points on a local Dask cluster of N worker processes "
        "(default 1: in this process)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the points on the running Dask cluster at ADDRESS "
        "(e.g. tcp://10.0.0.5:8786) instead",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="crossbars for --mapping-report's balance replication "
        "(default: the target's arrays)",
    )
    parser.add_argument(
        "--mapping-report",
        action="store_true",
        help="print the PIMCOMP crossbar cross-check of --models "
        "(default resnet18,vgg16) on --targets (default pimcomp_default) instead",
    )
    return parser


class _Progress:
    """One line per finished combination on stderr, with the time the rest
    is expected to take (the wall time so far per computed combination,
    which counts every worker's throughput)."""

    def __init__(self) -> None:
        self.begun = time.perf_counter()
        self.computed = 0

    def __call__(self, done: int, total: int, measurement: Measurement) -> None:
        status = "ok" if measurement.error is None else "FAILED"
        if measurement.cached:
            status = "cached"
        else:
            self.computed += 1
        elapsed = time.perf_counter() - self.begun
        left = total - done
        eta = elapsed / max(1, self.computed) * left if self.computed else 0.0
        print(
            f"[{done}/{total}] {measurement.combination.label} ... "
            f"{measurement.wall_s:.1f} s {status}"
            + (f" (about {_duration(eta)} left)" if left else ""),
            file=sys.stderr,
            flush=True,
        )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _check_names(
    parser: argparse.ArgumentParser,
    kind: str,
    names: Sequence[str],
    known: Sequence[str],
) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {kind} {', '.join(unknown)} (known: {', '.join(known)})")


def main(argv: Sequence[str] | None = None) -> int:
    """Run cim-bench; 0 when every combination ran, 1 when some failed or
    an input was bad, 2 on a bad command line."""
    try:
        return _run(argv)
    except CimError as error:
        print(f"cim-bench: error: {error}", file=sys.stderr)
        return exit_status(error)


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    models: list[str] = args.models or list(suite.models)
    paths = [m for m in models if m.endswith(".onnx") or "/" in m]
    models = [m for m in models if m not in paths]
    for path in paths:
        check_readable_file(Path(path))
    _check_names(parser, "model", models, list(ZOO_BY_NAME))
    jobs: int = args.jobs
    if jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.mapping_report:
        targets: list[str] = args.targets or ["pimcomp_default"]
        chosen = args.models or ["resnet18", "vgg16"]
        print(mapping_report(chosen, targets, args.budget))
        return 0
    targets = args.targets or list(DEFAULT_TARGETS)
    variants = sweep_variants(args.set, args.sweep)
    for variant in variants:
        with overridden(variant):
            for target in targets:
                load_target(target)
    strategies: list[str] = args.strategies or list(STRATEGIES)
    _check_names(parser, "strategy", strategies, list(STRATEGIES))
    combinations, notes = plan_sweep(
        models,
        args.batch or suite.batches,
        args.sequence or ((DEFAULT_SMALL_SEQUENCE,) if args.small else suite.sequences),
        args.phases or suite.phases,
        targets,
        strategies,
        args.small,
        variants,
        paths,
    )
    cache: Path | None = args.cache
    if cache is not None:
        combinations = [dataclasses.replace(c, cache=str(cache)) for c in combinations]
    for note in notes:
        print(f"skipped {note}", file=sys.stderr)
    start = time.perf_counter()
    scheduler: str | None = args.scheduler
    measurements = run_sweep(
        combinations, jobs, None if args.quiet else _Progress(), scheduler
    )
    wall = time.perf_counter() - start
    rows = measurement_rows(measurements, strategies)
    print(format_table(rows, strategies))
    failed = sum(1 for m in measurements if m.error is not None)
    where = (
        f"on the cluster at {scheduler}"
        if scheduler is not None
        else f"with {jobs} job{'s' if jobs > 1 else ''}"
    )
    print(f"{len(measurements)} combinations ({failed} failed) in {wall:.1f} s {where}")
    out: Path | None = args.out
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise output_error(out, error) from None
        write_csv(out / "bench.csv", rows, csv_columns(strategies))
        print(f"wrote {out / 'bench.csv'}")
        plots = write_plots(out, rows, strategies) if rows else []
        if plots is None:
            print(
                "matplotlib is not installed: no plots (pip install 'cimflow[bench]')"
            )
        else:
            for plot in plots:
                print(f"wrote {plot}")
    return 1 if failed else 0


def _iter_rows(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a CSV written by :func:`write_csv` (for tests and scripts)."""
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a ``bench.csv``."""
    return list(_iter_rows(path))


if __name__ == "__main__":
    # Run as the importable module, so that Dask's workers find the task
    # functions by name (a __main__ function would be pickled by value).
    from cimflow.tools import bench as importable

    sys.exit(importable.main())
