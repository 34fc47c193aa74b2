"""The timeline shows the machine: every array an op holds on its own
track (as many array tracks as the report's busy arrays), dependency
flows, and counters that agree with the report; every event well formed
for the Chrome/Perfetto trace-event format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cimflow.cimsim.critical import critical_path
from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.timeline import PROCESSES, dump_timeline, op_tracks
from cimflow.tools import cim_opt
from cimflow.tools.cim_verify import compile_model, module_trace

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"


@pytest.fixture(scope="module", params=["dynaplasia", "tiny", "pimcomp_default"])
def result(request: pytest.FixtureRequest) -> SimResult:
    target = str(request.param)
    module = compile_model(
        MODEL, target, f"cim-compile{{strategy=cmswitch target={target}}}"
    )
    return simulate(module_trace(module))


@pytest.fixture(scope="module")
def events(result: SimResult) -> list[dict[str, Any]]:
    document = json.loads(dump_timeline(result))
    assert document["displayTimeUnit"] == "ns"
    return document["traceEvents"]


REQUIRED = {
    "M": {"name", "ph", "pid", "tid", "args"},
    "X": {"name", "ph", "pid", "tid", "ts", "dur", "cat", "args"},
    "s": {"name", "ph", "pid", "tid", "ts", "id", "cat"},
    "f": {"name", "ph", "pid", "tid", "ts", "id", "cat", "bp"},
    "C": {"name", "ph", "pid", "tid", "ts", "args"},
}


def test_every_event_is_well_formed(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert set(event) == REQUIRED[event["ph"]], event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert event.get("ts", 0) >= 0 and event.get("dur", 0) >= 0
        if event["ph"] == "C":
            assert all(isinstance(v, int | float) for v in event["args"].values())
    pids = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {e["pid"] for e in events} <= pids


def test_one_track_per_busy_array(
    result: SimResult, events: list[dict[str, Any]]
) -> None:
    arrays = {
        e["tid"]
        for e in events
        if e["ph"] == "M"
        and e["name"] == "thread_name"
        and e["pid"] == PROCESSES["arrays"]
    }
    assert len(arrays) == result.stats.arrays_used
    drawn = Counter(
        e["args"]["id"]
        for e in events
        if e["ph"] == "X" and e["pid"] != PROCESSES["critical path"]
    )
    target = result.trace.target
    assert all(drawn[op.id] == len(op_tracks(target, op)) for op in result.trace.ops)


def test_critical_path_track_runs_end_to_end(
    result: SimResult, events: list[dict[str, Any]]
) -> None:
    spans = sorted(
        (e["ts"], e["dur"], e["args"]["id"])
        for e in events
        if e["ph"] == "X" and e["pid"] == PROCESSES["critical path"]
    )
    assert [op for _, _, op in spans] == list(critical_path(result).ops)
    cycles_per_us = result.trace.target.target.clock_ghz * 1e3
    end = 0.0
    for ts, dur, _ in spans:
        assert ts == pytest.approx(end)
        end = ts + dur
    assert end == pytest.approx(result.makespan / cycles_per_us)


def test_flows_join_each_op_to_its_dependencies(
    result: SimResult, events: list[dict[str, Any]]
) -> None:
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts.keys() == ends.keys()
    assert len(starts) == sum(len(op.deps) for op in result.trace.ops)
    assert all(starts[i]["ts"] <= ends[i]["ts"] for i in starts)


def test_counters_agree_with_the_report(
    result: SimResult, events: list[dict[str, Any]]
) -> None:
    values: dict[str, list[float]] = {}
    for event in events:
        if event["ph"] == "C":
            values.setdefault(event["name"], []).append(event["args"]["value"])
    target = result.trace.target
    peaks = {p.level: p.nbytes for p in result.stats.peak_occupancy}
    assert max(values["global buffer bytes"]) == peaks["buffer"]
    assert (
        max(values["DRAM bytes per cycle"])
        <= target.dram.bandwidth_bytes_per_cycle + 1e-6
    )
    assert min(min(v) for v in values.values()) >= 0
    switchable = target.dual_mode.switchable_arrays
    assert max(values["arrays in memory mode"]) <= switchable
