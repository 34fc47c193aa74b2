"""Benchmark: time compile and simulate on true-shape models with shape-only weights.

Each model runs in a fresh Python process (so peak memory is its own) that
repeats every stage ``--runs`` times and reports the median wall time per
stage and the process's peak resident memory. Nothing is asserted: this
prints figures.

    python -m cimflow.tools.bench_pipeline --runs 5
    python -m cimflow.tools.bench_pipeline --models bert_base --target pimcomp_default
    python -m cimflow.tools.bench_pipeline --strategy cmswitch \
        --models llama2_7b_8l,llama2_7b_16l,llama2_7b_32l
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import onnx

from cimflow.tools import model_builders

MODELS: dict[str, tuple[Callable[..., onnx.ModelProto], dict[str, int]]] = {
    "resnet50": (model_builders.resnet50, {"batch": 1}),
    "bert_base": (model_builders.bert_base, {"batch": 1, "sequence": 128}),
    **{
        f"llama2_7b_{layers}l{suffix}": (
            partial(model_builders.llama2_7b, layers=layers, phase=phase),
            {"batch": 1, "sequence": 128},
        )
        for layers in (8, 16, 32)
        for phase, suffix in (("prefill", ""), ("decode", "_decode"))
    },
}
"""Benchmark models: builder and symbolic dimensions. ``llama2_7b_{N}l``:
the first N layers of LLaMA-2-7B's shapes (prefill, L = 128; ``_decode``:
one token after 128)."""

STAGES = ("import", "compile", "trace", "simulate")


def _worker(
    model_path: Path, dims: dict[str, int], target: str, strategy: str, runs: int
) -> dict[str, object]:
    from xdsl.context import Context

    from cimflow.cimsim.engine import simulate
    from cimflow.cimsim.trace import dump_trace, parse_trace
    from cimflow.frontend import import_onnx
    from cimflow.passes.pipelines import CompilePass
    from cimflow.passes.trace_target import build_trace

    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    ops = 0
    makespan = 0
    for _ in range(runs):
        start = time.perf_counter()
        module = import_onnx(model_path, dims)
        imported = time.perf_counter()
        CompilePass(strategy, target).apply(Context(), module)
        compiled = time.perf_counter()
        text = dump_trace(build_trace(module))
        traced = time.perf_counter()
        result = simulate(parse_trace(json.loads(text)))
        simulated = time.perf_counter()
        for stage, seconds in zip(
            STAGES,
            (
                imported - start,
                compiled - imported,
                traced - compiled,
                simulated - traced,
            ),
            strict=True,
        ):
            times[stage].append(seconds)
        ops = len(json.loads(text)["ops"])
        makespan = result.makespan
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "median_seconds": {s: statistics.median(v) for s, v in times.items()},
        "trace_ops": ops,
        "makespan_cycles": makespan,
        "peak_rss_mib": peak_kib / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="time compile and simulate of true-shape models"
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--target", default="dynaplasia")
    parser.add_argument(
        "--strategy", default="static", help="allocation strategy (cim-compile)"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--worker", nargs=2, metavar=("MODEL", "PATH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.worker:
        name, path = args.worker
        figures = _worker(
            Path(path), MODELS[name][1], args.target, args.strategy, args.runs
        )
        print(json.dumps(figures))
        return 0

    unknown = [name for name in args.models.split(",") if name not in MODELS]
    if unknown:
        parser.error(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}"
        )
    print(
        f"target {args.target}, strategy {args.strategy}, "
        f"median of {args.runs} runs per stage, seconds"
    )
    header = f"{'model':<18}" + "".join(f"{s:>10}" for s in STAGES)
    print(header + f"{'total':>10}{'ops':>9}{'peak MiB':>10}{'cycles':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            builder, _ = MODELS[name]
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(builder(weights="shape_only"), path)
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cimflow.tools.bench_pipeline",
                    "--target",
                    args.target,
                    "--strategy",
                    args.strategy,
                    "--runs",
                    str(args.runs),
                    "--worker",
                    name,
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(completed.stdout)
            medians = figures["median_seconds"]
            print(
                f"{name:<18}"
                + "".join(f"{medians[s]:>10.3f}" for s in STAGES)
                + f"{sum(medians.values()):>10.3f}{figures['trace_ops']:>9}"
                + f"{figures['peak_rss_mib']:>10.1f}{figures['makespan_cycles']:>16,}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
