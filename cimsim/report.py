"""The simulation report (text and JSON); the timeline is in
:mod:`~cimflow.cimsim.timeline`.

Every function here is deterministic: the same :class:`SimResult` always
gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from cimflow.analysis.area import chip_area

from .critical import CRITICAL_CLASSES, CriticalPath, critical_path
from .efficiency import efficiency
from .engine import SHARED_RESOURCES, PeakOccupancy, SimResult
from .layers import SEGMENT_WORK, format_layers, layer_rows
from .trace import OP_KINDS, SWITCH_DIRECTIONS

REPORT_FORMAT = "cim-sim-report"
REPORT_VERSION = 6
"""Version 2 added peak occupancy per level, the busiest interconnect
resource and per-core vector busy cycles, and local-buffer reads; version 3
per-layer rows (``layers``) and the MACs, TOPS and TOPS/W; version 4 the
chip's area by component (``area_mm2``, ``null`` where the target gives
none) and TOPS/mm²; version 5 the critical path (``critical_path``:
cycles per resource class and per layer, :mod:`~cimflow.cimsim.critical`);
version 6 the energy components ``shift_add``, ``accumulate``,
``vector_static`` and ``interconnect_static``."""

CRITICAL_LAYERS_SHOWN = 5
"""Layers the text report lists under the critical path (JSON: all)."""


def _seconds_text(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:,.3f} {unit}"
    return f"{seconds / 1e-9:,.3f} ns"


def _percent(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}%"


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines: list[str] = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def status_summary(statuses: Iterable[str]) -> str:
    """``optimal 5, node limit (gap 0.01) 1``: how many solver problems ended
    in each status, in order of first appearance."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{status} {count}" for status, count in counts.items())


def format_report(result: SimResult) -> str:
    """The report as a fixed-format text table, ending with a newline."""
    trace = result.trace
    target = trace.target
    stats = result.stats
    work = efficiency(result)
    clock = f"{target.target.clock_ghz} GHz"
    lines = [
        f"model:       {trace.model.name} (batch {trace.model.batch})",
        f"target:      {target.name} ({target.total_arrays} arrays, {clock})",
        f"             {target.target.description}",
        f"strategy:    {trace.strategy}",
        *(
            [f"solver:      {status_summary(p.status for p in trace.solver)}"]
            if trace.solver
            else []
        ),
        f"ops:         {len(trace.ops):,}",
        f"latency:     {stats.makespan_cycles:,} cycles "
        f"({_seconds_text(stats.seconds)} at {clock})",
        f"throughput:  {stats.throughput:,.3f} samples/s",
        f"compute:     {work.macs:,} MACs, {work.tops:.4g} TOPS, "
        f"{work.tops_per_watt:.4g} TOPS/W"
        + ("" if work.tops_per_mm2 is None else f", {work.tops_per_mm2:.4g} TOPS/mm2"),
        "",
        "utilization:",
    ]
    array_busy = sum(stats.array_busy_cycles)
    rows: list[tuple[str, ...]] = [
        ("resource", "busy cycles", "busy"),
        (
            f"arrays (all {target.total_arrays})",
            f"{array_busy:,}",
            _percent(stats.array_utilization),
        ),
        (
            f"arrays (used {stats.arrays_used})",
            f"{array_busy:,}",
            _percent(stats.used_array_utilization),
        ),
    ]
    labels = {
        "dram": "dram",
        "interconnect": f"interconnect (busiest: {stats.busiest_interconnect})",
        "vector": f"vector (average of {target.total_cores} cores)",
    }
    for name in SHARED_RESOURCES:
        rows.append(
            (
                labels[name],
                f"{stats.shared_busy_cycles[name]:,}",
                _percent(stats.utilization[name]),
            )
        )
    lines += _table(rows)
    path = critical_path(result)
    lines += ["", *_critical_lines(path, stats.makespan_cycles)]

    lines += ["", "peak occupancy:"]
    rows = [("level", "bytes", "capacity", "full", "at cycle")]
    for peak in stats.peak_occupancy:
        rows.append(
            (
                _peak_label(peak),
                f"{peak.nbytes:,}",
                f"{peak.capacity:,}",
                _percent(peak.nbytes / peak.capacity if peak.capacity else 0.0),
                f"{peak.cycle:,}",
            )
        )
    lines += _table(rows)

    lines += ["", "energy:"]
    total = stats.total_energy_pj
    rows = [("component", "pJ", "share")]
    for component, pj in stats.energy_pj.items():
        rows.append((component, f"{pj:,.3f}", _percent(pj / total if total else 0.0)))
    rows.append(("total", f"{total:,.3f}", _percent(1.0 if total else 0.0)))
    lines += _table(rows)
    lines += ["", *_area_lines(result)]

    lines += ["", "mode switches:"]
    rows = [("direction", "ops", "arrays")]
    for direction in SWITCH_DIRECTIONS:
        rows.append(
            (
                f"to {direction}",
                f"{stats.switch_ops[direction]:,}",
                f"{stats.array_switches[direction]:,}",
            )
        )
    lines += _table(rows)

    lines += ["", "traffic:"]
    rows = [
        ("link", "bytes"),
        ("dram read", f"{stats.dram_bytes_read:,}"),
        ("dram written", f"{stats.dram_bytes_written:,}"),
        ("interconnect", f"{stats.interconnect_bytes:,}"),
        ("memory arrays read", f"{stats.memory_bytes_read:,}"),
        ("memory arrays written", f"{stats.memory_bytes_written:,}"),
        ("local buffers read", f"{stats.local_bytes_read:,}"),
    ]
    lines += _table(rows)

    lines += ["", "ops by kind:"]
    rows = [("kind", "count", "cycles")]
    for kind in OP_KINDS:
        rows.append(
            (kind, f"{stats.op_counts[kind]:,}", f"{stats.kind_cycles[kind]:,}")
        )
    lines += _table(rows)
    layers = format_layers(result, path)
    if layers:
        lines += ["", *layers]
    return "\n".join(lines) + "\n"


def _critical_lines(path: CriticalPath, makespan: int) -> list[str]:
    def share(cycles: int) -> str:
        return _percent(cycles / makespan if makespan else 0.0)

    rows = [("class", "cycles", "share")]
    rows += [
        (c, f"{path.cycles[c]:,}", share(path.cycles[c])) for c in CRITICAL_CLASSES
    ]
    layer_rows = [("layer", "cycles", "share")]
    layer_rows += [
        (layer or SEGMENT_WORK, f"{cycles:,}", share(cycles))
        for layer, cycles in path.layer_cycles[:CRITICAL_LAYERS_SHOWN]
    ]
    lines = [
        f"critical path: {len(path.ops):,} ops, bound by {path.bound_by}",
        *_table(rows),
    ]
    if any(layer for layer, _ in path.layer_cycles):
        lines += [
            f"  by layer (the {CRITICAL_LAYERS_SHOWN} longest):",
            *_table(layer_rows, "    "),
        ]
    return lines


def _area_lines(result: SimResult) -> list[str]:
    parts = chip_area(result.trace.target)
    if parts is None:
        return ["area: not given by the target (its [area] table)"]
    total = sum(mm2 for _, mm2 in parts)
    rows = [("component", "mm2", "share")]
    for component, mm2 in parts:
        rows.append((component, f"{mm2:,.4f}", _percent(mm2 / total if total else 0.0)))
    rows.append(("total", f"{total:,.4f}", _percent(1.0 if total else 0.0)))
    return ["area:", *_table(rows)]


def _peak_label(peak: PeakOccupancy) -> str:
    if peak.level == "buffer":
        return "global buffer"
    if peak.level == "local":
        where = "" if peak.unit is None else f" (fullest: core {peak.unit})"
        return f"local buffer{where}"
    where = "" if peak.unit is None else f" (fullest: array {peak.unit})"
    return f"memory-mode array{where}"


def report_dict(result: SimResult) -> dict[str, object]:
    """The report as a JSON-ready dict (``cim-sim --json``)."""
    trace = result.trace
    target = trace.target
    stats = result.stats
    work = efficiency(result)
    area = chip_area(target)
    path = critical_path(result)
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "model": {"name": trace.model.name, "batch": trace.model.batch},
        "strategy": trace.strategy,
        "solver": [
            {"segments": list(p.segments), "status": p.status, "nodes": p.nodes}
            for p in trace.solver
        ],
        "target": {
            "name": target.name,
            "clock_ghz": target.target.clock_ghz,
            "arrays": target.total_arrays,
        },
        "ops": len(trace.ops),
        "latency": {"cycles": stats.makespan_cycles, "seconds": stats.seconds},
        "throughput_samples_per_second": stats.throughput,
        "macs": work.macs,
        "tops": work.tops,
        "tops_per_watt": work.tops_per_watt,
        "utilization": {
            "arrays": stats.array_utilization,
            "arrays_used": stats.used_array_utilization,
            **{name: stats.utilization[name] for name in SHARED_RESOURCES},
        },
        "busy_cycles": {
            "arrays": list(stats.array_busy_cycles),
            **{name: stats.shared_busy_cycles[name] for name in SHARED_RESOURCES},
            "interconnect_busiest": stats.busiest_interconnect,
            "interconnect_resources": dict(stats.interconnect_busy_cycles or {}),
            "vector_cores": list(stats.vector_busy_cycles),
        },
        "critical_path": _critical_dict(path),
        "peak_occupancy": {
            peak.level: {
                "bytes": peak.nbytes,
                "capacity": peak.capacity,
                "unit": peak.unit,
                "cycle": peak.cycle,
            }
            for peak in stats.peak_occupancy
        },
        "arrays_used": stats.arrays_used,
        "energy_pj": dict(stats.energy_pj),
        "total_energy_pj": stats.total_energy_pj,
        "area_mm2": None if area is None else dict(area),
        "total_area_mm2": work.area_mm2,
        "tops_per_mm2": work.tops_per_mm2,
        "switches": {
            "ops": dict(stats.switch_ops),
            "arrays": dict(stats.array_switches),
        },
        "bytes": {
            "dram_read": stats.dram_bytes_read,
            "dram_written": stats.dram_bytes_written,
            "interconnect": stats.interconnect_bytes,
            "memory_array_read": stats.memory_bytes_read,
            "memory_array_written": stats.memory_bytes_written,
            "local_read": stats.local_bytes_read,
        },
        "kinds": {
            kind: {"count": stats.op_counts[kind], "cycles": stats.kind_cycles[kind]}
            for kind in OP_KINDS
        },
        "layers": layer_rows(result, path),
    }


def _critical_dict(path: CriticalPath) -> dict[str, object]:
    return {
        "ops": len(path.ops),
        "bound_by": path.bound_by,
        "cycles": {c: path.cycles[c] for c in CRITICAL_CLASSES},
        "layers": [
            {"layer": layer, "cycles": cycles} for layer, cycles in path.layer_cycles
        ],
    }


def dump_report_json(result: SimResult) -> str:
    """:func:`report_dict` as indented JSON with a trailing newline."""
    return json.dumps(report_dict(result), indent=1) + "\n"
