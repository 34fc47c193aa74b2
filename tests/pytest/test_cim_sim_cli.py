"""The cim-sim command line: reports, outputs, exit codes and error lines."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cimflow.cimsim.timeline import PROCESSES
from cimflow.cimsim.trace import dump_trace
from cimflow.hw_targets import load_target
from cimflow.tools.cim_sim import main


def trace_dict() -> dict[str, Any]:
    """A weight programmed into 2 arrays of a 128 x 128 dynaplasia, then two
    mvms on them: 128 + 34 + 10 = 172 cycles.

    program cycles = 128 rows x 1 cycle per row; mvm cycles = 10 +
    (vectors - 1) * 8: 4 vectors -> 34, 1 vector -> 10.
    """
    base = load_target("dynaplasia")
    target = dataclasses.replace(
        base,
        array=dataclasses.replace(base.array, rows=128, cols=128, active_rows=128),
        dual_mode=dataclasses.replace(base.dual_mode, memory_capacity_bytes=2048),
    )

    def mvm(op_id: int, vectors: int, deps: list[int]) -> dict[str, Any]:
        return {
            "id": op_id,
            "kind": "mvm",
            "deps": deps,
            "segment": 0,
            "name": f"fc{op_id}",
            "arrays": [[0, 2]],
            "vectors": vectors,
            "rows": 128,
            "cols": 64,
            "weight": "w",
            "k": [0, 128],
            "n": [0, 64],
            "v": [0, vectors],
            "input": "x",
            "output": "y",
            "feed": "local",
            "in_bytes": 0,
            "out_bytes": 0,
            "local_bytes": 0,
        }

    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "m",
            "source": "",
            "batch": 1,
            "dims": {},
            "inputs": [{"name": "x", "shape": [4, 128], "dtype": "float32"}],
            "outputs": [],
        },
        "strategy": "static",
        "target": target.to_dict(),
        "tensors": [
            {"name": "x", "shape": [4, 128], "dtype": "float32", "bytes": 512},
            {"name": "y", "shape": [4, 64], "dtype": "float32", "bytes": 256},
        ],
        "constants": [],
        "weights": [{"name": "w", "layout": "kn", "groups": 1, "k": 128, "n": 64}],
        "ops": [
            {
                "id": 0,
                "kind": "program",
                "deps": [],
                "segment": 0,
                "name": "w",
                "arrays": [[0, 2]],
                "rows": 128,
                "cols": 64,
                "weight": "w",
                "k": [0, 128],
                "n": [0, 64],
            },
            mvm(1, 4, [0]),
            mvm(2, 1, [1]),
            {"id": 3, "kind": "barrier", "deps": [2], "segment": 0, "name": ""},
        ],
    }


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.json"
    path.write_text(dump_trace(trace_dict()), encoding="utf-8")
    return path


def test_text_report(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(trace_file)]) == 0
    out = capsys.readouterr().out
    assert "latency:     172 cycles (172.000 ns at 1.0 GHz)" in out
    assert "ops:         4" in out
    target_lines = (
        "target:      dynaplasia (96 arrays, 1.0 GHz)\n             DynaPlasia"
    )
    assert target_lines in out  # the target's description under its name
    assert out.endswith("\n")


def test_json_report(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(trace_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "cim-sim-report"
    assert report["latency"]["cycles"] == 172
    assert report["kinds"]["mvm"] == {"count": 2, "cycles": 44}
    assert report["kinds"]["program"] == {"count": 1, "cycles": 128}
    assert report["kinds"]["barrier"] == {"count": 1, "cycles": 0}
    assert report["arrays_used"] == 2
    assert next(iter(report["energy_pj"])) == "array"


def test_critical_path_file(trace_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "critical.csv"
    code = main([str(trace_file), "-o", str(tmp_path / "r"), "--critical", str(path)])
    assert code == 0
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "op,kind,name,layer,class,start_cycle,finish_cycle,cycles,after"
    assert [line.split(",")[-1] for line in lines[1:]] == ["start", "data", "data"]


def test_output_file_and_timeline(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    timeline = tmp_path / "timeline.json"
    code = main(
        [str(trace_file), "--json", "-o", str(out), "--timeline", str(timeline)]
    )
    assert code == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text(encoding="utf-8"))["latency"]["cycles"] == 172
    events = json.loads(timeline.read_text(encoding="utf-8"))["traceEvents"]
    spans: dict[int, list[dict[str, Any]]] = {}
    critical: list[int] = []
    for event in events:
        if event["ph"] == "X" and event["pid"] == PROCESSES["critical path"]:
            critical.append(event["args"]["id"])
        elif event["ph"] == "X":
            spans.setdefault(event["args"]["id"], []).append(event)
    # the path: program, MVM, vector op (the barrier ends with the vector
    # op: the lower id is the path's end)
    assert critical == [0, 1, 2]
    # every op on each array it holds (the barrier on the sync track)
    assert {
        i: sorted((e["ts"], e["dur"], e["tid"]) for e in s) for i, s in spans.items()
    } == {
        0: [(0.0, 0.128, 0), (0.0, 0.128, 1)],
        1: [(0.128, 0.034, 0), (0.128, 0.034, 1)],
        2: [(0.162, 0.01, 0), (0.162, 0.01, 1)],
        3: [(0.172, 0.0, 0)],
    }
    assert spans[1][0]["args"] == {"id": 1, "name": "fc1", "kind": "mvm"}
    assert spans[1][0]["pid"] != spans[3][0]["pid"]
    names = {e["args"].get("name") for e in events if e["ph"] == "M"}
    assert {"arrays", "array 0 (core 0)", "array 1 (core 0)"} <= names
    flows = sorted((e["id"], e["ph"], e["ts"]) for e in events if e["ph"] in "sf")
    assert flows == [
        (0, "f", 0.128),
        (0, "s", 0.128),
        (1, "f", 0.162),
        (1, "s", 0.162),
        (2, "f", 0.172),
        (2, "s", 0.172),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.json",
        "t.json",
        "timeline.json",
    ]


def test_same_trace_gives_identical_output(
    trace_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(trace_file), "--json"])
    first = capsys.readouterr().out
    main([str(trace_file), "--json"])
    assert capsys.readouterr().out == first


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cim-sim: error: ")
    return lines[0]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.json")]) == 1
    assert (
        error_line(capsys) == f"cim-sim: error: {tmp_path / 'nope.json'}: no such file"
    )


def test_invalid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text("{nope", encoding="utf-8")
    assert main([str(path)]) == 1
    assert "invalid JSON at line 1 column 2" in error_line(capsys)


def test_invalid_trace_keeps_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = trace_dict()
    data["ops"][1]["deps"] = [2]  # a later op
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "report.txt"
    out.write_text("old\n", encoding="utf-8")
    assert (
        main([str(path), "-o", str(out), "--timeline", str(tmp_path / "tl.json")]) == 1
    )
    assert (
        error_line(capsys)
        == f"cim-sim: error: {path}: op 1: dep 2 is not an earlier op"
    )
    assert out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "t.json"]


def test_unwritable_output(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-dir" / "report.txt"
    assert main([str(trace_file), "-o", str(out)]) == 1
    assert (
        error_line(capsys) == f"cim-sim: error: {out}: cannot write: no such directory"
    )


def test_failed_write_leaves_no_partial_file(
    trace_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "report.txt"
    out.write_text("old\n", encoding="utf-8")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    assert main([str(trace_file), "-o", str(out)]) == 1
    assert (
        error_line(capsys)
        == f"cim-sim: error: {out}: cannot write: no space left on device"
    )
    assert out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "t.json"]


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cimflow.tools.cim_sim", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_module_exit_codes(trace_file: Path, tmp_path: Path) -> None:
    ok = run_module(str(trace_file), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["latency"]["cycles"] == 172
    data = trace_dict()
    data["version"] = 6
    path = tmp_path / "v6.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    failed = run_module(str(path))
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr == (
        f"cim-sim: error: {path}: unsupported trace version 6 "
        "(this cim-sim reads version 5)\n"
    )


def test_usage_error_is_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert error_line(capsys) == (
        "cim-sim: error: the following arguments are required: trace "
        "(see cim-sim --help)"
    )
