"""The critical path of a simulated schedule (cimflow.cimsim.critical)."""

from __future__ import annotations

import csv
import io

from sim_traces import move, mvm, op, run, times, transfer, vector

from cimflow.cimsim.critical import (
    CRITICAL_CLASSES,
    PATH_COLUMNS,
    critical_class,
    critical_csv,
    critical_path,
    dominant_class,
)
from cimflow.cimsim.report import format_report, report_dict


def test_path_follows_data_then_arrays() -> None:
    # load 0-140 (DRAM: 100 + ceil(1000 / 25.6)); both MVMs wait for it, the
    # first takes arrays 0-1 for 34 cycles (10 + 3 x 8), the second shares
    # array 1 and runs 174-208. Back from the second: it waited for the
    # first's arrays, which waited for the load's data.
    result = run(
        [
            transfer(0, "load", "dram", "buffer", 1000, layer="a"),
            mvm(1, [[0, 2]], 4, (0,), layer="b"),
            mvm(2, [[1, 3]], 4, (0,), layer="c"),
        ]
    )
    assert times(result) == [(0, 140), (140, 174), (174, 208)]
    path = critical_path(result)
    assert path.ops == (0, 1, 2)
    assert path.entered == ("start", "data", "resource")
    assert path.cycles == {c: 0 for c in CRITICAL_CLASSES} | {
        "dram": 140,
        "compute": 68,
    }
    assert path.bound_by == "dram"
    assert path.layer_cycles == (("a", 140), ("b", 34), ("c", 34))


def test_off_path_work_does_not_count() -> None:
    # the vector op on core 1 runs beside the MVM and ends first: the MVM
    # alone is the path.
    result = run([mvm(0, [[0, 2]], 4), vector(1, 8, [[1, 2]])])
    path = critical_path(result)
    assert path.ops == (0,)
    assert path.cycles["compute"] == result.makespan
    assert path.cycles["vector"] == 0


def test_empty_and_tied_classes() -> None:
    path = critical_path(run([]))
    assert path.ops == ()
    assert sum(path.cycles.values()) == 0
    assert path.bound_by == "compute"  # first of the classes among equals
    assert dominant_class({"vector": 5, "dram": 5}) == "dram"


def test_report_shows_the_path() -> None:
    result = run(
        [
            transfer(0, "load", "dram", "buffer", 1000, layer="a"),
            mvm(1, [[0, 2]], 4, (0,), layer="b"),
        ]
    )
    text = format_report(result)
    assert "critical path: 2 ops, bound by dram" in text
    assert "  dram             140  80.5%" in text
    assert "    a         140  80.5%" in text
    document = report_dict(result)
    assert document["critical_path"] == {
        "ops": 2,
        "bound_by": "dram",
        "cycles": {c: 0 for c in CRITICAL_CLASSES} | {"dram": 140, "compute": 34},
        "layers": [{"layer": "a", "cycles": 140}, {"layer": "b", "cycles": 34}],
    }


def test_path_as_csv() -> None:
    result = run(
        [
            transfer(0, "load", "dram", "buffer", 1000, layer="a"),
            mvm(1, [[0, 2]], 4, (0,), layer="b"),
            mvm(2, [[1, 3]], 4, (0,), layer="c"),
        ]
    )
    rows = list(csv.DictReader(io.StringIO(critical_csv(result))))
    assert list(rows[0]) == list(PATH_COLUMNS)
    assert [
        (r["op"], r["class"], r["start_cycle"], r["cycles"], r["after"]) for r in rows
    ] == [
        ("0", "dram", "0", "140", "start"),
        ("1", "compute", "140", "34", "data"),
        ("2", "compute", "174", "34", "resource"),
    ]


def test_each_kind_counts_for_its_class() -> None:
    # a switch of arrays 0-1 to memory mode, a load into them from the
    # buffer, a store of it to DRAM, a move to core 0 and a vector op there,
    # each waiting for the one before: every class but compute and program.
    result = run(
        [
            op(0, "switch", arrays=[[0, 2]], to="memory"),
            transfer(1, "load", "buffer", "memory", 64, (0,), arrays=[[0, 2]]),
            transfer(2, "store", "memory", "dram", 64, (1,), arrays=[[0, 2]]),
            move(3, 64, [[0, 1]], (2,)),
            vector(4, 64, [[0, 1]], (3,)),
        ]
    )
    path = critical_path(result)
    assert path.ops == (0, 1, 2, 3, 4)
    took = [f - s for s, f in zip(result.start, result.finish, strict=True)]
    assert [critical_class(o) for o in result.trace.ops] == [
        "switch",
        "memory",
        "dram",
        "interconnect",
        "vector",
    ]
    assert path.cycles == {c: 0 for c in CRITICAL_CLASSES} | {
        "switch": took[0],
        "memory": took[1],
        "dram": took[2],
        "interconnect": took[3],
        "vector": took[4],
    }
