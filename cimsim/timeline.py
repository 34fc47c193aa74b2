"""A Chrome/Perfetto trace-event timeline of a simulated schedule.

Every op is drawn on every resource it holds (:func:`op_tracks`): each
array on its own track (so the array tracks are exactly the arrays the
report counts as used), the DRAM channel, the bus or each mesh link and
the global buffer's port, each core's vector units; ops holding nothing on
a ``sync`` track; the ops of the critical path
(:mod:`~cimflow.cimsim.critical`) once more on a ``critical path`` track,
end to end from 0 to the makespan. Flow events (``s``/``f``) join each op to the ops it
depends on, from the end of the dependency to the start of the op, on
their first tracks. Counter tracks (``C``) show the global buffer's,
the local buffers' and the memory-mode arrays' bytes in use, the arrays
in memory mode, and the DRAM channel's and the interconnect's bytes per
cycle (each op's bytes spread evenly over its duration).

Times are microseconds (``ts``, ``dur``), as the format wants; the result
is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from cimflow.cost_model import GLOBAL_PORT, crosses_interconnect
from cimflow.hw_targets import HardwareTarget

from .critical import critical_path
from .engine import SimResult, occupancy_series, op_resources, op_streams
from .semantics import array_ids
from .trace import (
    MoveOp,
    ProgramOp,
    SwitchOp,
    TraceOp,
    TransferOp,
    switches_to_compute,
)

PROCESSES: dict[str, int] = {
    "arrays": 1,
    "dram": 2,
    "interconnect": 3,
    "vector": 4,
    "sync": 5,
    "counters": 6,
    "critical path": 7,
}
"""Timeline processes (``pid``), one per resource class, then counters and
the critical path."""

Track = tuple[str, int]


def op_tracks(target: HardwareTarget, op: TraceOp) -> list[Track]:
    """The tracks an op is drawn on: ``(process, tid)`` of every resource it
    holds (an array's id; 0 for the DRAM channel and the bus; a mesh link's
    core, and the global buffer's port after the last core; a core's vector
    units), or the ``sync`` track."""
    tracks: list[Track] = []
    for resource in op_resources(target, op):
        if isinstance(resource, int):
            tracks.append(("arrays", resource))
        elif resource == "dram":
            tracks.append(("dram", 0))
        elif resource == "bus":
            tracks.append(("interconnect", 0))
        elif resource == GLOBAL_PORT:
            tracks.append(("interconnect", target.total_cores))
        elif resource.startswith("link "):
            tracks.append(("interconnect", int(resource.split()[1])))
        elif resource.startswith("vector "):
            tracks.append(("vector", int(resource.split()[1])))
    return tracks or [("sync", 0)]


def _track_name(target: HardwareTarget, track: Track) -> str:
    process, tid = track
    if process == "arrays":
        return f"array {tid} (core {tid // target.hierarchy.arrays_per_core})"
    if process == "interconnect":
        if target.interconnect.topology != "mesh":
            return "bus"
        return "global buffer port" if tid == target.total_cores else f"link {tid}"
    if process == "vector":
        return f"vector {tid}"
    return process


def _bytes_on(target: HardwareTarget, op: TraceOp) -> tuple[int, int]:
    """Bytes an op moves through the DRAM channel and over the
    interconnect."""
    if isinstance(op, TransferOp):
        dram = op.nbytes if "dram" in (op.src, op.dst) else 0
        return dram, op.nbytes if crosses_interconnect(op.src, op.dst) else 0
    if isinstance(op, MoveOp):
        return 0, op.nbytes
    streams = op_streams(target, op)
    return streams.dram_read + streams.dram_written, streams.interconnect


def _rate_counter(
    spans: Iterable[tuple[int, int, int]],
) -> list[tuple[int, float]]:
    """``(cycle, bytes per cycle)`` after each change of the summed rate of
    ``(start, finish, bytes)`` spans."""
    changes: dict[int, float] = {}
    for start, finish, nbytes in spans:
        if nbytes <= 0 or finish <= start:
            continue
        rate = nbytes / (finish - start)
        changes[start] = changes.get(start, 0.0) + rate
        changes[finish] = changes.get(finish, 0.0) - rate
    points: list[tuple[int, float]] = [(0, 0.0)]
    level = 0.0
    for cycle in sorted(changes):
        level += changes[cycle]
        points.append((cycle, round(max(0.0, level), 6)))
    return points


def _memory_mode(result: SimResult) -> list[tuple[int, int]]:
    """Arrays in memory mode after each switch: the model inputs' arrays
    from the start, then every switch (and every switch in place) at its
    end."""
    trace = result.trace
    modes = {a for tensor in trace.model.inputs for a in array_ids(tensor.arrays)}
    points = [(0, len(modes))]
    changes: list[tuple[int, int, bool, tuple[tuple[int, int], ...]]] = []
    for op, finish in zip(trace.ops, result.finish, strict=True):
        if isinstance(op, SwitchOp | ProgramOp) and switches_to_compute(op):
            changes.append((finish, op.id, False, op.arrays))
        elif isinstance(op, SwitchOp):
            changes.append((finish, op.id, True, op.arrays))
    for finish, _, to_memory, ranges in sorted(changes):
        arrays = set(array_ids(ranges))
        if to_memory:
            modes |= arrays
        else:
            modes -= arrays
        points.append((finish, len(modes)))
    return points


def _counter_events(result: SimResult, cycles_per_us: float) -> list[dict[str, object]]:
    trace = result.trace
    target = trace.target
    series = occupancy_series(trace, result.start)
    dram: list[tuple[int, int, int]] = []
    interconnect: list[tuple[int, int, int]] = []
    for op, start, finish in zip(trace.ops, result.start, result.finish, strict=True):
        through_dram, over_interconnect = _bytes_on(target, op)
        dram.append((start, finish, through_dram))
        interconnect.append((start, finish, over_interconnect))
    counters: list[tuple[str, Iterable[tuple[int, float]]]] = [
        ("global buffer bytes", ((t, float(v)) for t, v in series["buffer"])),
        ("local buffers bytes", ((t, float(v)) for t, v in series["local"])),
        ("memory-mode array bytes", ((t, float(v)) for t, v in series["memory"])),
        ("arrays in memory mode", ((t, float(v)) for t, v in _memory_mode(result))),
        ("DRAM bytes per cycle", _rate_counter(dram)),
        ("interconnect bytes per cycle", _rate_counter(interconnect)),
    ]
    events: list[dict[str, object]] = []
    for name, points in counters:
        last: dict[int, float] = {}
        for cycle, value in points:
            last[cycle] = value  # the value after the cycle's last change
        for cycle, value in sorted(last.items()):
            event: dict[str, object] = {
                "args": {"value": value},
                "name": name,
                "ph": "C",
                "pid": PROCESSES["counters"],
                "tid": 0,
                "ts": cycle / cycles_per_us,
            }
            events.append(event)
    return events


def timeline_events(result: SimResult) -> list[dict[str, object]]:
    """Metadata, op spans, dependency flows and counters, in that order."""
    trace = result.trace
    target = trace.target
    cycles_per_us = target.target.clock_ghz * 1e3
    spans: list[dict[str, object]] = []
    flows: list[dict[str, object]] = []
    used: set[Track] = set()
    first_track: list[Track] = []
    on_path = set(critical_path(result).ops)
    for op, start, finish in zip(trace.ops, result.start, result.finish, strict=True):
        tracks = op_tracks(target, op)
        first_track.append(tracks[0])
        used.update(tracks)
        drawn = [*tracks, ("critical path", 0)] if op.id in on_path else tracks
        for process, tid in drawn:
            spans.append(
                {
                    "args": {"id": op.id, "kind": op.kind, "name": op.name},
                    "cat": op.kind,
                    "dur": (finish - start) / cycles_per_us,
                    "name": op.name or op.kind,
                    "ph": "X",
                    "pid": PROCESSES[process],
                    "tid": tid,
                    "ts": start / cycles_per_us,
                }
            )
    edge = 0
    for op, start in zip(trace.ops, result.start, strict=True):
        process, tid = first_track[op.id]
        for dep in op.deps:
            source, source_tid = first_track[dep]
            common = {"cat": "dep", "id": edge, "name": "dep"}
            flows.append(
                {
                    **common,
                    "ph": "s",
                    "pid": PROCESSES[source],
                    "tid": source_tid,
                    "ts": result.finish[dep] / cycles_per_us,
                }
            )
            flows.append(
                {
                    **common,
                    "bp": "e",
                    "ph": "f",
                    "pid": PROCESSES[process],
                    "tid": tid,
                    "ts": start / cycles_per_us,
                }
            )
            edge += 1
    used_processes = {process for process, _ in used} | {"counters"}
    if on_path:
        used_processes.add("critical path")
        used.add(("critical path", 0))
    metadata: list[dict[str, object]] = []
    for process, pid in PROCESSES.items():
        if process not in used_processes:
            continue
        metadata.append(
            {
                "args": {"name": process},
                "name": "process_name",
                "ph": "M",
                "pid": pid,
                "tid": 0,
            }
        )
        metadata.append(
            {
                "args": {"sort_index": pid},
                "name": "process_sort_index",
                "ph": "M",
                "pid": pid,
                "tid": 0,
            }
        )
    for track in sorted(used, key=lambda t: (PROCESSES[t[0]], t[1])):
        metadata.append(
            {
                "args": {"name": _track_name(target, track)},
                "name": "thread_name",
                "ph": "M",
                "pid": PROCESSES[track[0]],
                "tid": track[1],
            }
        )
    return [*metadata, *spans, *flows, *_counter_events(result, cycles_per_us)]


def timeline_dict(result: SimResult) -> dict[str, object]:
    """The trace-event document (:func:`timeline_events`)."""
    return {"displayTimeUnit": "ns", "traceEvents": timeline_events(result)}


def dump_timeline(result: SimResult) -> str:
    """:func:`timeline_dict` as JSON, one event per line."""
    encode = json.JSONEncoder(sort_keys=True).encode
    body = ",\n".join(map(encode, timeline_events(result)))
    return (
        '{"displayTimeUnit": "ns", "traceEvents": [\n'
        + body
        + ("\n" if body else "")
        + "]}\n"
    )
