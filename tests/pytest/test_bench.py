"""cim-bench: a tiny sweep's CSV, determinism, plots, failures, parallel runs."""

from __future__ import annotations

import importlib.metadata
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from cimflow.errors import CimError
from cimflow.hw_targets import load_target
from cimflow.passes.pipelines import STRATEGIES
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.target_record import target_hash
from cimflow.tools import bench, bench_cluster

TINY_SWEEP = [
    "--small",
    "--models",
    "resnet18,bert_base",
    "--targets",
    "tiny",
    "--strategies",
    "static",
    "--quiet",
]


def without_times(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {k: v for k, v in row.items() if k not in bench.TIME_COLUMNS} for row in rows
    ]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert bench.main([*TINY_SWEEP, "--out", str(out)]) == 0
    return out


def test_csv_has_the_columns_and_rows(sweep: Path) -> None:
    text = (sweep / "bench.csv").read_text(encoding="utf-8")
    header = text.splitlines()[0].split(",")
    assert header == bench.csv_columns(["static"])
    assert header[-len(bench.TIME_COLUMNS) :] == list(bench.TIME_COLUMNS)
    rows = bench.read_csv(sweep / "bench.csv")
    assert [(r["model"], r["phase"], r["batch"], r["L"]) for r in rows] == [
        ("resnet_tiny", "", "1", ""),
        ("bert_tiny", "", "1", "16"),
    ]
    for row in rows:
        assert (row["pipeline"], row["target_hash"], row["cimflow_version"]) == (
            "cim-compile{strategy=static target=tiny}",
            target_hash(load_target("tiny")),
            importlib.metadata.version("cimflow"),
        )
        assert row["highspy_version"] == importlib.metadata.version("highspy")
        assert (row["target"], row["strategy"], row["status"]) == (
            "tiny",
            "static",
            "ok",
        )
        cycles = int(row["latency_cycles"])
        assert cycles >= int(row["bound_cycles"]) > 0
        assert float(row["bound_ratio"]) >= 1
        assert float(row["latency_ms"]) == pytest.approx(cycles / 1e6, rel=1e-5)
        assert float(row["throughput_per_s"]) == pytest.approx(
            1e3 / float(row["latency_ms"]), rel=1e-4
        )
        assert float(row["energy_uj"]) > 0
        parts = [float(row[column]) for column in bench.ENERGY_COLUMNS]
        assert min(parts) >= 0
        assert sum(parts) == pytest.approx(float(row["energy_uj"]), rel=1e-4)
        assert 0 < float(row["array_utilization"]) <= 1
        assert row["speedup_vs_static"] == "1"
        assert row["bound_by"] in ("compute", "dram", "interconnect", "vector", "chain")
        assert int(row["bound_cycles"]) == max(
            int(row[f"bound_{term}_cycles"])
            for term in ("compute", "dram", "interconnect", "vector", "chain")
        )
        shares = {c: float(row[f"critical_{c}_share"]) for c in bench.CRITICAL_CLASSES}
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
        assert shares[row["critical_by"]] == max(shares.values())
        assert shares["idle"] == 0
        assert all(float(row[column]) >= 0 for column in bench.TIME_COLUMNS)


def test_sweep_is_deterministic(sweep: Path, tmp_path: Path) -> None:
    assert bench.main([*TINY_SWEEP, "--out", str(tmp_path)]) == 0
    first = bench.read_csv(sweep / "bench.csv")
    second = bench.read_csv(tmp_path / "bench.csv")
    assert without_times(first) == without_times(second)


def test_plots_are_written(sweep: Path) -> None:
    pytest.importorskip("matplotlib")
    for file_name in [*(p[0] for p in bench.PLOTS), "pareto.png"]:
        path = sweep / file_name
        assert path.is_file() and path.read_bytes().startswith(b"\x89PNG"), file_name


def test_ratios_and_speedups_are_linear_plots() -> None:
    """Every ratio and speedup is drawn on a linear axis (from zero:
    ``write_plots`` sets the bottom of every linear axis to 0)."""
    assert all(not log for _, column, _, log in bench.PLOTS if "ratio" in column)
    assert all(
        not log for _, column, _, log in bench.PLOTS if column.startswith("speedup")
    )


def test_no_matplotlib_no_plots(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    rows = bench.read_csv(sweep / "bench.csv")
    assert bench.write_plots(tmp_path, rows, ["static"]) is None
    assert not list(tmp_path.glob("*.png"))


def test_no_matplotlib_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = ["--small", "--models", "resnet18", "--targets", "tiny", "--quiet"]
    assert bench.main([*args, "--out", str(tmp_path)]) == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert (tmp_path / "bench.csv").is_file()


@dataclass(frozen=True)
class BrokenAllocation(ModulePass):
    """An allocation strategy that always fails."""

    name = "test-broken-allocate"

    target: str = "tiny"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        raise CimError("this strategy refuses every model")


def test_failures_are_rows_and_speedups_compare_strategies(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(STRATEGIES, "static_again", StaticAllocatePass)
    monkeypatch.setitem(STRATEGIES, "broken", BrokenAllocation)
    strategies = "static,static_again,broken"
    args = ["--small", "--models", "resnet18,vgg16", "--targets", "tiny"]
    code = bench.main([*args, "--strategies", strategies, "--out", str(tmp_path)])
    assert code == 1  # some combinations failed, the sweep went on
    captured = capsys.readouterr()
    assert "[6/6] vgg_tiny b1 tiny broken ... " in captured.err
    assert "FAILED" in captured.out
    assert "this strategy refuses every model" in captured.out
    rows = bench.read_csv(tmp_path / "bench.csv")
    assert list(rows[0]) == bench.csv_columns(strategies.split(","))
    assert [(r["model"], r["strategy"]) for r in rows] == [
        (model, strategy)
        for model in ("resnet_tiny", "vgg_tiny")
        for strategy in strategies.split(",")
    ]
    for row in rows:
        if row["strategy"] == "broken":
            assert row["status"] == "error: this strategy refuses every model"
            assert row["latency_cycles"] == row["speedup_vs_static"] == ""
        else:
            assert row["status"] == "ok"
            assert row["speedup_vs_static"] == row["speedup_vs_static_again"] == "1"
            assert row["speedup_vs_broken"] == ""
            assert row["speedup_vs_best_other"] == "1"  # the other static
            assert row["switch_share"] == "0"  # tiny's static never switches


def test_dual_mode_rows_report_switch_share(tmp_path: Path) -> None:
    """cmswitch's mode switches (MobileNetV2's prefetch buffers on tiny)
    show in ``switch_share``; its speedup over the best other strategy is
    that strategy's latency over its own."""
    args = ["--small", "--models", "mobilenetv2", "--targets", "tiny"]
    code = bench.main(
        [*args, "--strategies", "static,cmswitch", "--out", str(tmp_path)]
    )
    assert code == 0
    rows = {r["strategy"]: r for r in bench.read_csv(tmp_path / "bench.csv")}
    dual, static = rows["cmswitch"], rows["static"]
    assert 0 < float(dual["switch_share"]) < 1
    assert 0.5 < float(dual["predicted_ratio"]) < 2
    assert static["predicted_ratio"] == ""  # the static baseline predicts nothing
    expected = int(static["latency_cycles"]) / int(dual["latency_cycles"])
    assert float(dual["speedup_vs_best_other"]) == pytest.approx(expected, rel=1e-3)


def test_parallel_sweep_matches_serial(sweep: Path, tmp_path: Path) -> None:
    assert bench.main([*TINY_SWEEP, "--jobs", "2", "--out", str(tmp_path)]) == 0
    serial = bench.read_csv(sweep / "bench.csv")
    parallel = bench.read_csv(tmp_path / "bench.csv")
    assert without_times(parallel) == without_times(serial)


def test_plan_orders_and_deduplicates() -> None:
    combinations, notes = bench.plan_sweep(
        models=["gpt2", "resnet50", "resnet18"],
        batches=[1, 2],
        sequences=[8, 40],
        phases=["prefill", "decode"],
        targets=["tiny", "dynaplasia"],
        strategies=["static"],
        small=True,
    )
    labels = [c.label for c in combinations]
    # resnet18 and resnet50 share one small variant, listed once per batch;
    # gpt2_tiny's 32 positions leave out L = 40.
    assert labels == [
        f"{entry} {target} static"
        for entry in (
            "resnet_tiny b1",
            "resnet_tiny b2",
            "gpt2_tiny prefill b1 L8",
            "gpt2_tiny prefill b2 L8",
            "gpt2_tiny decode b1 L8",
            "gpt2_tiny decode b2 L8",
        )
        for target in ("tiny", "dynaplasia")
    ]
    assert [c.index for c in combinations] == list(range(len(combinations)))
    assert len(notes) == 4 and all("L40" in note for note in notes)


def test_suites_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(bench.SUITES) == {"default", "full"}
    full = bench.SUITES["full"]
    assert (full.batches, full.sequences) == ((1, 4, 16), (128, 512, 2048))
    for bad, status, message in (
        (["--models", "alexnet"], 2, "unknown model alexnet"),
        (["--strategies", "nonesuch"], 2, "unknown strategy nonesuch"),
        (["--targets", "nowhere"], 1, "unknown target 'nowhere'"),
        (["--batch", "0"], 2, "expected positive integers"),
        (["--phases", "train"], 2, "phases are"),
        (["--jobs", "0"], 2, "--jobs must be at least 1"),
        (["--bogus"], 2, "unrecognized arguments: --bogus"),
    ):
        assert bench.main(bad) == status
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1 and captured.out == ""
        assert lines[0].startswith("cim-bench: error: ") and message in lines[0]


MODEL_FILE = Path(bench.__file__).parent / "models" / "resnet_tiny.onnx"

HARDWARE_SWEEP = [
    "--small",
    "--models",
    f"resnet18,{MODEL_FILE}",
    "--targets",
    "tiny",
    "--strategies",
    "static,cmswitch",
    "--sweep",
    "buffers.global_bytes=2048,8192",
]


def test_a_hardware_sweep_runs_every_point_and_onnx_files(tmp_path: Path) -> None:
    assert bench.main([*HARDWARE_SWEEP, "--quiet", "--out", str(tmp_path)]) == 0
    rows = bench.read_csv(tmp_path / "bench.csv")
    assert [(r["model"], r["overrides"], r["strategy"]) for r in rows] == [
        (model, f"buffers.global_bytes={size}", strategy)
        for model in ("resnet_tiny", "resnet_tiny")
        for size in (2048, 8192)
        for strategy in ("static", "cmswitch")
    ]
    # speedups compare strategies at the same hardware point
    for point in range(0, 8, 2):
        static, cmswitch = rows[point], rows[point + 1]
        assert float(cmswitch["speedup_vs_static"]) == pytest.approx(
            int(static["latency_cycles"]) / int(cmswitch["latency_cycles"]), rel=1e-3
        )
    assert rows[0]["latency_cycles"] != rows[2]["latency_cycles"]  # the buffer counts
    assert rows[0]["target_hash"] != rows[2]["target_hash"] == rows[3]["target_hash"]


DASK_SWEEP = [
    "--small",
    "--models",
    f"resnet18,bert_base,{MODEL_FILE}",
    "--targets",
    "tiny",
    "--strategies",
    "static,cmswitch",
    "--sweep",
    "array.rows=32,64,128",
    "--jobs",
    "2",
]


def _cached_lines(progress: str) -> int:
    return sum(
        line.endswith(" cached") or " cached (" in line
        for line in progress.splitlines()
    )


def test_a_killed_dask_sweep_resumes_from_its_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 models x 3 array sizes x 2 strategies on a local Dask cluster of
    two workers, killed (the client, whose cluster goes with it) once four
    results are in the cache: the same command computes only the rest, and
    its CSV is an uninterrupted run's."""
    cache = tmp_path / "cache"
    argv = [*DASK_SWEEP, "--cache", str(cache)]
    command = [sys.executable, "-m", "cimflow.tools.bench", *argv, "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while len(list(cache.glob("*.json"))) < 4 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    kept = len(list(cache.glob("*.json")))
    assert 4 <= kept < 18, "the sweep ended before it could be killed"
    assert bench.main([*argv, "--out", str(tmp_path / "resumed")]) == 0
    assert _cached_lines(capsys.readouterr().err) == kept  # nothing computed twice
    assert len(list(cache.glob("*.json"))) == 18
    assert bench.main([*DASK_SWEEP, "--quiet", "--out", str(tmp_path / "whole")]) == 0
    resumed = bench.read_csv(tmp_path / "resumed" / "bench.csv")
    whole = bench.read_csv(tmp_path / "whole" / "bench.csv")
    assert len(whole) == 18 and all(row["status"] == "ok" for row in whole)
    assert without_times(resumed) == without_times(whole)
    # run again, everything comes from the cache and no cluster starts
    assert bench.main([*argv, "--out", str(tmp_path / "again")]) == 0
    assert _cached_lines(capsys.readouterr().err) == 18


def test_a_sweep_on_a_running_cluster(sweep: Path, tmp_path: Path) -> None:
    """``--scheduler ADDRESS`` submits to a cluster someone else started."""
    options: dict[str, Any] = {
        "n_workers": 1,
        "threads_per_worker": 2,
        "dashboard_address": None,
        "memory_limit": 0,
    }
    cluster = LocalCluster(**options)
    with cluster:
        argv = [*TINY_SWEEP, "--scheduler", str(cluster.scheduler_address)]
        assert bench.main([*argv, "--out", str(tmp_path)]) == 0
    served = bench.read_csv(tmp_path / "bench.csv")
    assert without_times(served) == without_times(bench.read_csv(sweep / "bench.csv"))


def test_an_unreachable_scheduler_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_cluster, "CONNECT_TIMEOUT_S", 1.0)
    argv = [*TINY_SWEEP, "--scheduler", "tcp://127.0.0.1:9"]
    assert bench.main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0].startswith(
        "cim-bench: error: --scheduler tcp://127.0.0.1:9: cannot reach the scheduler"
    )


def test_a_cluster_without_workers_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scheduler nobody works for would leave the sweep waiting forever."""
    monkeypatch.setattr(bench_cluster, "CONNECT_TIMEOUT_S", 1.0)
    options: dict[str, Any] = {"n_workers": 0, "dashboard_address": None}
    cluster = LocalCluster(**options)
    with cluster:
        address = str(cluster.scheduler_address)
        assert bench.main([*TINY_SWEEP, "--scheduler", address]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0] == (
        f"cim-bench: error: --scheduler {address}: the cluster has no workers "
        "(none joined within 1 s)"
    )


def test_a_failed_task_is_its_items_outcome() -> None:
    """A task that raises on the cluster comes back as its exception, and
    the other items still finish."""
    with bench_cluster.cluster_client(2, None) as client:
        outcomes = dict(bench_cluster.run_tasks(client, math.factorial, [3, -1, 4]))
    assert outcomes[3] == 6 and outcomes[4] == 24
    assert isinstance(outcomes[-1], ValueError)


def test_a_bad_sweep_axis_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([*TINY_SWEEP, "--sweep", "array.rows"]) == 1
    assert "--sweep 'array.rows'" in capsys.readouterr().err


def test_a_target_file_is_named_by_its_chip(tmp_path: Path) -> None:
    chip = tmp_path / "chips" / "mine.toml"
    chip.parent.mkdir()
    chip.write_text('base = "tiny"\n[target]\nname = "my_chip"\n', encoding="utf-8")
    argv = ["--small", "--models", "resnet18", "--strategies", "static", "--quiet"]
    assert bench.main([*argv, "--targets", str(chip), "--out", str(tmp_path)]) == 0
    (row,) = bench.read_csv(tmp_path / "bench.csv")
    assert row["target"] == "my_chip"
