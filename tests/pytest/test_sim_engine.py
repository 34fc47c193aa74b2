"""cim-sim engine: hand-computed schedules, statistics and a property test.

Unless a test says otherwise the target is dynaplasia shrunk to 8 arrays of
128 x 128 (2 cores x 4 arrays), with dynaplasia's timing and energy:

- mvm: mvm_latency 10, issue interval 8, active_rows 128 -> one wordline pass
  for rows <= 128; 320 ADCs, so any column count converts in one round;
  ``cycles = 10 + (vectors - 1) * 8``; input_passes = activation_bits /
  dac_bits = 8 / 1 = 8; one ADC conversion 0.00651 pJ/step * 2^8 steps,
  and 0.045 pJ to shift and add its value.
- program: 1 cycle per row.
- switch: switch_latency 1 cycle; mode_switch_pj 2.0 per array.
- DRAM: latency 100 + ceil(bytes / 25.6); buffer: ceil(bytes / 32);
  memory-mode arrays: ceil(bytes / (4.0 * n_arrays)).
- interconnect (a bus): latency 2 + ceil(bytes / min(32, 32)); vector:
  latency 4 + ceil(element_ops / (32 lanes * 1 unit per core * cores)).
- a move is also charged 0.8 pJ per byte on the global buffer's side.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_traces import (
    move,
    mvm,
    op,
    run,
    small_target,
    times,
    trace_dict,
    transfer,
    vector,
)

from cimflow.cimsim.critical import critical_path
from cimflow.cimsim.engine import (
    Loads,
    Schedule,
    bandwidth_loads,
    compute_stats,
    held_resources,
    lane_shares,
    op_costs,
    op_resources,
    op_timings,
    schedule,
    simulate,
)
from cimflow.cimsim.report import dump_report_json, report_dict
from cimflow.cimsim.trace import Trace, load_trace
from cimflow.cost_model import (
    ENERGY_COMPONENTS,
    LANES,
    lane_share,
    laned_cycles,
    lanes_needed,
)
from cimflow.hw_targets import HardwareTarget


def test_single_mvm() -> None:
    # 2 arrays x 4 vectors, 128 rows, 64 cols: 1 pass, 10 + 3 * 8 = 34 cycles.
    result = run([mvm(0, [[0, 2]], 4)])
    stats = result.stats
    assert times(result) == [(0, 34)]
    assert stats.makespan_cycles == 34
    assert stats.seconds == pytest.approx(34e-9)
    assert stats.throughput == pytest.approx(1 / 34e-9)
    # activations = 2 arrays * 4 vectors = 8
    # array: 8 * 1 pass * 12.0 = 96; adc: 8 * 1 wordline pass * 64 cols *
    # 8 input passes = 4096 conversions of 0.00651 pJ/step * 2^8 = 1.66656 pJ,
    # 6826.22976; shift-add: 4096 * 0.045 = 184.32; dac: 8 * 128 rows * 8
    # passes * 0.01 = 81.92
    assert stats.energy_pj["array"] == pytest.approx(96.0)
    assert stats.energy_pj["adc"] == pytest.approx(6826.22976)
    assert stats.energy_pj["shift_add"] == pytest.approx(184.32)
    assert stats.energy_pj["dac"] == pytest.approx(81.92)
    assert stats.total_energy_pj == pytest.approx(7188.46976)
    assert stats.array_busy_cycles == (34, 34, 0, 0, 0, 0, 0, 0)
    assert stats.arrays_used == 2
    # 68 busy array-cycles over 8 arrays * 34 cycles; over the 2 used arrays.
    assert stats.array_utilization == pytest.approx(0.25)
    assert stats.used_array_utilization == pytest.approx(1.0)
    assert stats.op_counts["mvm"] == 1
    assert stats.kind_cycles["mvm"] == 34


def test_wordline_mode_takes_several_passes() -> None:
    # active_rows 48: ceil(128 / 48) = 3 passes of 10 + (4 - 1) * 8 = 34 cycles.
    result = run([mvm(0, [[0, 2]], 4)], small_target(active_rows=48))
    assert times(result) == [(0, 102)]
    # array energy: 8 activations * 3 passes * 12.0
    assert result.stats.energy_pj["array"] == pytest.approx(288.0)


def test_shared_adcs_convert_in_rounds() -> None:
    # 16 ADCs for 128 columns: 64 columns take 4 rounds, interval 4 x 8 = 32,
    # latency 10 - 8 + 32 = 34, 4 vectors 34 + 3 x 32 = 130 cycles; 16
    # columns take one round, 10 + 3 x 8 = 34 (the energy does not change:
    # 2 x 4 x 64 x 8 conversions x 1.66656 pJ = 6826.22976, and
    # 2 x 4 x 16 x 8 x 1.66656 = 1706.55744).
    result = run(
        [mvm(0, [[0, 2]], 4), mvm(1, [[2, 4]], 4, cols=16)],
        small_target(adcs_per_array=16),
    )
    assert times(result) == [(0, 130), (0, 34)]
    assert result.stats.energy_pj["adc"] == pytest.approx(6826.22976 + 1706.55744)


def test_mvms_on_same_arrays_serialize() -> None:
    result = run([mvm(0, [[0, 2]], 4), mvm(1, [[1, 3]], 4)])
    assert times(result) == [(0, 34), (34, 68)]
    assert result.makespan == 68


def test_mvms_on_disjoint_arrays_overlap() -> None:
    result = run([mvm(0, [[0, 2]], 4), mvm(1, [[2, 4]], 4)])
    assert times(result) == [(0, 34), (0, 34)]
    assert result.makespan == 34


def test_load_then_dependent_mvm() -> None:
    # DRAM: 100 + ceil(1000 / 25.6) = 140; buffer: ceil(1000 / 32) = 32 -> 140.
    result = run(
        [transfer(0, "load", "dram", "buffer", 1000), mvm(1, [[0, 1]], 4, (0,))]
    )
    assert times(result) == [(0, 140), (140, 174)]
    stats = result.stats
    assert stats.dram_bytes_read == 1000
    assert stats.dram_bytes_written == 0
    assert stats.shared_busy_cycles["dram"] == 140
    # dram: 1000 * 20.0; buffer: 1000 * 0.8
    assert stats.energy_pj["dram"] == pytest.approx(20000.0)
    assert stats.energy_pj["buffer"] == pytest.approx(800.0)


def test_two_loads_contend_for_dram() -> None:
    result = run(
        [
            transfer(0, "load", "dram", "buffer", 1000),
            transfer(1, "load", "dram", "buffer", 1000),
        ]
    )
    assert times(result) == [(0, 140), (140, 280)]
    assert result.stats.utilization["dram"] == pytest.approx(1.0)
    assert result.stats.dram_bytes_read == 2000


def test_buffer_to_memory_load_does_not_hold_dram() -> None:
    ops = [
        transfer(0, "load", "dram", "buffer", 1000),
        transfer(1, "load", "buffer", "memory", 1024, arrays=[[4, 8]]),
    ]
    result = run(ops)
    # memory: ceil(1024 / (4.0 * 4)) = 64; buffer: ceil(1024 / 32) = 32; the
    # bus to the arrays' core: less -> 64. It holds the bus, not DRAM.
    assert times(result) == [(0, 140), (0, 64)]
    target = result.trace.target
    assert op_resources(target, result.trace.ops[1]) == ("bus", 4, 5, 6, 7)
    assert op_resources(target, result.trace.ops[0]) == ("dram",)


def test_memory_mode_transfers_share_the_bus() -> None:
    """Memory-mode arrays sit in cores: a load from the global buffer into
    them crosses the bus, which a move into the cores also needs. Each
    alone is bus-limited (4096 / 32 = 128 cycles of the bus; the 8 arrays
    take 4096 / 32 too), together they need twice the bus."""
    alone = [
        run([move(0, 4096, [[0, 2]])]).makespan,
        run([transfer(0, "load", "buffer", "memory", 4096, arrays=[[0, 8]])]).makespan,
    ]
    both = run(
        [
            move(0, 4096, [[0, 2]]),
            transfer(1, "load", "buffer", "memory", 4096, arrays=[[0, 8]]),
        ]
    ).makespan
    assert max(alone) < 140
    assert both >= 2 * 128


def test_barrier_joins_parallel_groups() -> None:
    ops = [
        mvm(0, [[0, 2]], 4),  # 0..34
        mvm(1, [[2, 4]], 1),  # 0..10
        op(2, "barrier", (0, 1)),  # zero cycles at 34
        mvm(3, [[2, 4]], 1, (2,)),  # 34..44
    ]
    result = run(ops)
    assert times(result) == [(0, 34), (0, 10), (34, 34), (34, 44)]
    assert result.stats.kind_cycles["barrier"] == 0
    assert result.makespan == 44


def test_switch_round_trip() -> None:
    ops = [
        op(0, "switch", arrays=[[4, 8]], to="memory"),  # 1 cycle
        transfer(1, "load", "buffer", "memory", 1024, (0,), [[4, 8]]),  # 64
        # memory: ceil(512 / 16) = 32; buffer: ceil(512 / 32) = 16 -> 32
        transfer(2, "store", "memory", "buffer", 512, (1,), [[4, 8]]),
        op(3, "switch", (2,), arrays=[[4, 8]], to="compute"),  # 1 cycle
    ]
    result = run(ops)
    stats = result.stats
    assert times(result) == [(0, 1), (1, 65), (65, 97), (97, 98)]
    assert dict(stats.switch_ops) == {"compute": 1, "memory": 1}
    assert dict(stats.array_switches) == {"compute": 4, "memory": 4}
    assert stats.memory_bytes_written == 1024
    assert stats.memory_bytes_read == 512
    # switch: 2 ops * 4 arrays * 2.0; memory_array: (1024 + 512) * 0.4;
    # buffer: (1024 + 512) * 0.8
    assert stats.energy_pj["switch"] == pytest.approx(16.0)
    assert stats.energy_pj["memory_array"] == pytest.approx(614.4)
    assert stats.energy_pj["buffer"] == pytest.approx(1228.8)
    assert stats.array_busy_cycles[4:] == (98, 98, 98, 98)


def test_partial_sum_additions_are_their_own_component() -> None:
    # Two vector ops of 100 lane operations on core 0, one adding an MVM's
    # partial sums (CIMinus's accumulator), one an element-wise add: the
    # same time (4 + ceil(100 / 32) = 8 cycles each, one after the other on
    # the core's one unit) and 100 * 0.3 pJ each, charged to ``accumulate``
    # and to ``vector``; the cost of one is not taken for the other.
    accumulate = dict(vector(0, 100, [[0, 1]]), op="accumulate")
    result = run([accumulate, vector(1, 100, [[0, 1]])])
    assert times(result) == [(0, 8), (8, 16)]
    assert result.stats.energy_pj["accumulate"] == pytest.approx(30.0)
    assert result.stats.energy_pj["vector"] == pytest.approx(30.0)


def test_energy_sums_over_ops_and_components() -> None:
    ops = [
        mvm(0, [[0, 2]], 4),  # array 96, adc 6826.22976, dac 81.92, shift-add 184.32
        op(
            1,
            "program",
            arrays=[[2, 4]],
            rows=128,
            cols=64,
            weight="w",
            k=[0, 128],
            n=[0, 64],
        ),
        move(2, 64, [[0, 1]]),  # 2 + 2 = 4 cycles, 64 * 1.2 and 64 * 0.8
        vector(3, 100, [[0, 1]]),
        transfer(4, "store", "buffer", "dram", 256),
    ]
    result = run(ops)
    energy = result.stats.energy_pj
    assert list(energy) == list(ENERGY_COMPONENTS)
    expected = {
        "array": 96.0,
        "adc": 6826.22976,
        "shift_add": 4096 * 0.045,  # one per conversion
        "dac": 81.92,
        "program": 2 * 128 * 64 * 0.05,
        "switch": 0.0,
        "memory_array": 0.0,
        "buffer": 256 * 0.8 + 64 * 0.8,
        "interconnect": 64 * 1.2,
        "dram": 256 * 20.0,
        "vector": 100 * 0.3,
    }
    for component, pj in expected.items():
        assert energy[component] == pytest.approx(pj), component
    assert result.stats.total_energy_pj == pytest.approx(sum(expected.values()))
    # program: 128 rows * 1; vector: 4 + ceil(100 / 32) = 8;
    # store, a posted write: max(ceil(256 / 25.6), ceil(256 / 32)) = 10
    assert times(result) == [(0, 34), (0, 128), (0, 4), (0, 8), (0, 10)]
    assert result.stats.interconnect_bytes == 64
    assert result.stats.dram_bytes_written == 256
    assert result.stats.shared_busy_cycles == {
        "dram": 10,
        "interconnect": 4,
        "vector": 8,
    }


def test_same_trace_twice_gives_identical_report() -> None:
    ops = [
        transfer(0, "load", "dram", "buffer", 1000),
        mvm(1, [[0, 2]], 4, (0,)),
        mvm(2, [[1, 3]], 2),
        vector(3, 300, [[0, 2]], (1, 2)),
    ]
    first = dump_report_json(simulate(load_trace(trace_dict(ops), check_meaning=False)))
    second = dump_report_json(
        simulate(load_trace(trace_dict(ops), check_meaning=False))
    )
    assert first == second
    json.loads(first)


def test_higher_id_starts_before_blocked_lower_id() -> None:
    ops = [
        mvm(0, [[0, 1]], 4),  # array 0, 0..34
        mvm(1, [[0, 2]], 1),  # needs arrays 0 and 1: waits for op 0
        mvm(2, [[1, 2]], 1),  # array 1 is free: starts at 0 (no reservation)
        mvm(3, [[2, 3]], 1, (2,)),  # ready at 10
    ]
    result = run(ops)
    assert times(result) == [(0, 34), (34, 44), (0, 10), (10, 20)]


def test_lower_id_wins_when_both_ready() -> None:
    ops = [
        mvm(0, [[0, 1]], 4),  # 0..34
        mvm(1, [[2, 3]], 1),  # 0..10
        mvm(2, [[0, 1]], 1, (1,)),  # ready at 10, array 0 busy until 34
        mvm(3, [[0, 1]], 2),  # ready at 0, waits for array 0 too
    ]
    result = run(ops)
    # At 34 both 2 and 3 are ready for array 0: id 2 first.
    assert times(result) == [(0, 34), (0, 10), (34, 44), (44, 62)]


def dram_trace(count: int) -> Trace:
    """``count`` loads from DRAM, each holding the channel alone."""
    ops = [transfer(i, "load", "dram", "buffer", 64) for i in range(count)]
    return load_trace(trace_dict(ops), check_meaning=False)


def dram_loads(timings: list[tuple[int, int]]) -> Schedule:
    """The schedule of :func:`dram_trace`'s loads with the given
    ``(compute, stream)`` timings."""
    return schedule(dram_trace(len(timings)), timings)


def test_an_op_starts_on_the_last_free_lane_and_takes_more_as_they_free() -> None:
    # op 0 needs ceil(255 x 256 / 256) = 255 lanes; op 1, a transfer, starts
    # on the one left: 2,560 lane-cycles, 256 of them by cycle 256, then all
    # the lanes: 256 + ceil(2,304 / 256) = 265
    run = dram_loads([(256, 255), (0, 10)])
    assert (run.start, run.finish) == ([0, 0], [256, 265])
    assert run.lane_steps(1) == ((0, 1), (256, 256))
    assert run.lane_steps(0) == ((0, 255),)
    # the channel is busy 255 x 256 + 256 + 9 x 256 = 67,840 lane-cycles,
    # 265 cycles of all its lanes (op 1 counted on its first lane only: 257)
    trace = dram_trace(2)
    stats = compute_stats(trace, op_costs(trace), run)
    assert stats.shared_busy_cycles["dram"] == 265


def test_a_running_op_short_of_lanes_bids_before_a_later_op() -> None:
    # op 0 needs ceil(50 x 256 / 100) = 128 lanes until 100; op 1 starts on
    # the other 128 (80 x 256 = 20,480 lane-cycles, 12,800 by 100); op 2
    # finds none free. At 100 op 1, the lower id, takes all 256 and ends at
    # 100 + 7,680 / 256 = 130; op 2 waits for it and runs 10 more. (Had op 2
    # taken the freed lanes first, it would end at 120 and op 1 at 160.)
    run = dram_loads([(100, 50), (0, 80), (0, 10)])
    assert (run.start, run.finish) == ([0, 0, 130], [100, 130, 140])
    assert run.lane_steps(1) == ((0, 128), (100, 256))


@settings(max_examples=20, deadline=None)
@given(loads=st.lists(st.floats(0.01, 100.0), min_size=2, max_size=3))
def test_the_inverse_lane_table_gives_the_most_lanes_that_fit(
    loads: list[float],
) -> None:
    shares = lane_shares(tuple(loads))
    assert shares is not None
    table, inverse = shares
    for index in range(len(loads)):
        for free in range(LANES + 1):
            fits = [lanes for lanes in range(LANES + 1) if table[lanes][index] <= free]
            assert inverse[index][free] == max(fits)


def test_zero_cycle_ops_finish_when_they_start() -> None:
    target = dataclasses.replace(
        small_target(),
        dual_mode=dataclasses.replace(
            small_target().dual_mode, switch_latency_cycles=0
        ),
    )
    ops = [
        mvm(0, [[0, 1]], 1),  # 0..10
        op(1, "switch", arrays=[[0, 1]], to="memory"),  # waits for array 0
        op(2, "barrier", (1,)),
        mvm(3, [[1, 2]], 1, (2,)),
    ]
    result = run(ops, target)
    assert times(result) == [(0, 10), (10, 10), (10, 10), (10, 20)]


def test_empty_trace() -> None:
    result = run([])
    assert result.makespan == 0
    assert result.stats.throughput == 0.0
    assert result.stats.array_utilization == 0.0
    assert report_dict(result)["ops"] == 0


def test_throughput_uses_batch() -> None:
    result = simulate(
        load_trace(trace_dict([mvm(0, [[0, 1]], 1)], batch=4), check_meaning=False)
    )
    # 10 cycles at 1 GHz = 10 ns for 4 samples.
    assert result.stats.throughput == pytest.approx(4 / 10e-9)


# --- property test ------------------------------------------------------------


def prop_target(topology: str = "bus") -> HardwareTarget:
    """Zero-latency switch, vector and DRAM, so zero-cycle ops that hold
    resources show up; on a mesh, 8 B/cycle links and a 16 B/cycle global
    buffer (a port as wide as the 2 cores' links)."""
    base = small_target()
    target = dataclasses.replace(
        base,
        dual_mode=dataclasses.replace(base.dual_mode, switch_latency_cycles=0),
        vector=dataclasses.replace(base.vector, latency_cycles=0),
        dram=dataclasses.replace(base.dram, latency_cycles=0),
    )
    if topology == "bus":
        return target
    return dataclasses.replace(
        target,
        interconnect=dataclasses.replace(
            target.interconnect, topology="mesh", bandwidth_bytes_per_cycle=8.0
        ),
        buffers=dataclasses.replace(
            target.buffers, global_bandwidth_bytes_per_cycle=16.0
        ),
    )


@st.composite
def array_ranges(draw: st.DrawFn) -> list[list[int]]:
    ids = sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=4)))
    ranges: list[list[int]] = []
    for a in ids:
        if ranges and ranges[-1][1] == a:
            ranges[-1][1] = a + 1
        else:
            ranges.append([a, a + 1])
    return ranges


@st.composite
def core_ranges(draw: st.DrawFn) -> list[list[int]]:
    first = draw(st.integers(0, 1))
    return [[first, draw(st.integers(first + 1, 2))]]


PROPERTY_KINDS = (
    "mvm",
    "mvm",
    "load",
    "mem",
    "store",
    "move",
    "vector",
    "switch",
    "barrier",
    "stream",
    "feed",
    "far",
    "program",
)


@st.composite
def random_ops(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 14))
    ops: list[dict[str, Any]] = []
    for i in range(count):
        deps = (
            tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        )
        kind = draw(st.sampled_from(PROPERTY_KINDS))
        if kind == "mvm":
            ops.append(mvm(i, draw(array_ranges()), draw(st.integers(1, 4)), deps))
        elif kind == "load":
            ops.append(
                transfer(i, "load", "dram", "buffer", draw(st.integers(0, 200)), deps)
            )
        elif kind == "mem":
            ops.append(
                transfer(
                    i,
                    "load",
                    "buffer",
                    "memory",
                    draw(st.integers(0, 200)),
                    deps,
                    draw(array_ranges()),
                )
            )
        elif kind == "store":
            ops.append(
                transfer(i, "store", "buffer", "dram", draw(st.integers(0, 200)), deps)
            )
        elif kind == "move":
            ops.append(move(i, draw(st.integers(0, 200)), draw(core_ranges()), deps))
        elif kind == "vector":
            ops.append(vector(i, draw(st.integers(0, 100)), draw(core_ranges()), deps))
        elif kind == "switch":
            ops.append(
                op(
                    i,
                    "switch",
                    deps,
                    arrays=draw(array_ranges()),
                    to=draw(st.sampled_from(["compute", "memory"])),
                )
            )
        elif kind == "stream":
            ops.append(
                vector(
                    i,
                    draw(st.integers(0, 100)),
                    draw(core_ranges()),
                    deps,
                    in_bytes=draw(st.integers(1, 200)),
                )
            )
        elif kind == "feed":
            # an MVM on arrays of core 0 streaming from the buffer, or fed
            # from core 0's other arrays
            arrays = [[0, 2]]
            if draw(st.booleans()):
                ops.append(
                    mvm(
                        i,
                        arrays,
                        2,
                        deps,
                        feed="buffer",
                        in_bytes=draw(st.integers(1, 200)),
                    )
                )
            else:
                ops.append(
                    mvm(
                        i,
                        arrays,
                        2,
                        deps,
                        feed="memory",
                        feed_arrays=[[2, 4]],
                        in_bytes=draw(st.integers(1, 200)),
                        out_bytes=draw(st.integers(0, 50)),
                    )
                )
        elif kind == "far":
            ops.append(far_stream(draw, i, deps))
        elif kind == "program":
            # a weight streamed from DRAM, the buffer or arrays 4-5
            feed = draw(st.sampled_from(["buffer", "dram", "memory"]))
            ops.append(
                op(
                    i,
                    "program",
                    deps,
                    arrays=[[2, 3]],
                    rows=128,
                    cols=128,
                    weight="w",
                    k=[0, 128],
                    n=[0, 16],
                    feed=feed,
                    in_bytes=draw(st.integers(0 if feed == "buffer" else 1, 200)),
                    **({"feed_arrays": [[4, 6]]} if feed == "memory" else {}),
                )
            )
        else:
            ops.append(op(i, "barrier", deps))
    return ops


def far_stream(draw: st.DrawFn, i: int, deps: tuple[int, ...]) -> dict[str, Any]:
    """An MVM on arrays 0-1 or a vector op streaming from DRAM or arrays 4-5
    (core 1) and to the buffer, DRAM or arrays 5-6 or 6-7 (sharing array 5
    with the source, or not)."""
    source = draw(st.sampled_from(["dram", "memory"]))
    sink = draw(st.sampled_from(["buffer", "dram", "memory"]))
    in_arrays = [[4, 6]] if source == "memory" else None
    out_arrays = (
        draw(st.sampled_from([[[5, 7]], [[6, 8]]])) if sink == "memory" else None
    )
    in_bytes = draw(st.integers(1, 200))
    out_bytes = draw(st.integers(0 if sink == "buffer" else 1, 50))
    if draw(st.booleans()):
        keys: dict[str, Any] = {"feed": source, "in_bytes": in_bytes}
        keys |= {"out_to": sink, "out_bytes": out_bytes}
        if in_arrays:
            keys["feed_arrays"] = in_arrays
        if out_arrays:
            keys["out_arrays"] = out_arrays
        return mvm(i, [[0, 2]], 2, deps, **keys)
    keys = {"in_from": source, "out_to": sink}
    if in_arrays:
        keys["in_arrays"] = in_arrays
    if out_arrays:
        keys["out_arrays"] = out_arrays
    return vector(
        i,
        draw(st.integers(0, 100)),
        draw(core_ranges()),
        deps,
        in_bytes=in_bytes,
        out_bytes=out_bytes,
        **keys,
    )


def lanes_on(loads: Loads, lanes: int, index: int) -> int:
    """Lanes an op on ``lanes`` lanes of its slowest bandwidth resource
    holds of its ``index``-th one."""
    if loads is None:
        return lanes
    return lane_share(lanes, loads[index], max(loads))


Steps = list[tuple[int, int]]


def reference_schedule(trace: Trace) -> tuple[list[int], list[int], list[Steps]]:
    """Start, finish and ``(cycle, lanes)`` steps of every op by the letter
    of the semantics, stepping from one finish to the next: at each, the
    lowest-id op that can act does, until none can. An unstarted op can
    start when its deps are done, its exclusive resources free and every
    bandwidth resource it holds has a free lane; it takes the most lanes,
    up to what it needs, whose shares are free. A running op short of what
    it needs can take more when their shares are free; its bytes left
    stream at the new rate."""
    n = len(trace.ops)
    timings = op_timings(trace, op_costs(trace))
    resources = held_resources(trace)
    loads = bandwidth_loads(trace)
    start: list[int | None] = [None] * n
    finish: list[int | None] = [None] * n
    steps: list[Steps] = [[] for _ in range(n)]
    left = [0] * n  # lane-cycles of stream left at the last step
    now = 0

    def running(j: int) -> bool:
        s, f = start[j], finish[j]
        return s is not None and f is not None and s <= now < f

    def free_lanes(r: int) -> int:
        return LANES - sum(
            lanes_on(loads[j], steps[j][-1][1], resources[j][1].index(r))
            for j in range(n)
            if running(j) and r in resources[j][1]
        )

    def most_lanes(i: int, having: int) -> int:
        compute, stream = timings[i]
        fits = [
            lanes
            for lanes in range(1, lanes_needed(compute, stream) + 1)
            if all(
                lanes_on(loads[i], lanes, k)
                - (lanes_on(loads[i], having, k) if having else 0)
                <= free_lanes(r)
                for k, r in enumerate(resources[i][1])
            )
        ]
        return max(fits, default=0)

    def can_start(i: int) -> bool:
        if start[i] is not None:
            return False
        if not all(
            (f := finish[d]) is not None and f <= now for d in trace.ops[i].deps
        ):
            return False
        exclusive, bandwidth = resources[i]
        if any(set(exclusive) & set(resources[j][0]) for j in range(n) if running(j)):
            return False
        return all(free_lanes(r) > 0 for r in bandwidth)

    def can_grow(i: int) -> bool:
        if not running(i) or not resources[i][1]:
            return False
        having = steps[i][-1][1]
        return having < lanes_needed(*timings[i]) and most_lanes(i, having) > having

    while True:
        while acting := [i for i in range(n) if can_start(i) or can_grow(i)]:
            i = acting[0]
            compute, stream = timings[i]
            if start[i] is None:
                lanes = most_lanes(i, 0) if resources[i][1] else LANES
                duration = (
                    laned_cycles(compute, stream, lanes) if resources[i][1] else compute
                )
                start[i], finish[i] = now, now + duration
                steps[i] = [(now, lanes)]
                left[i] = stream * LANES
                continue
            start_i, finish_i = start[i], finish[i]
            assert start_i is not None and finish_i is not None
            at, having = steps[i][-1]
            more = most_lanes(i, having)
            left[i] -= having * (now - at)
            steps[i].append((now, more))
            finish[i] = min(finish_i, max(start_i + compute, now + -(-left[i] // more)))
        later = [f for f in finish if f is not None and f > now]
        if not later:
            break
        now = min(later)
    assert None not in start, "reference simulation stalled"
    return (
        [s for s in start if s is not None],
        [f for f in finish if f is not None],
        steps,
    )


@pytest.mark.parametrize("topology", ["bus", "mesh"])
@settings(max_examples=100, deadline=None)
@given(ops=random_ops())
def test_schedule_properties(topology: str, ops: list[dict[str, Any]]) -> None:
    trace = load_trace(trace_dict(ops, prop_target(topology)), check_meaning=False)
    timings = op_timings(trace, op_costs(trace))
    resources = held_resources(trace)
    run = schedule(trace, timings, resources)
    loads = bandwidth_loads(trace)
    for o in trace.ops:
        compute, stream = timings[o.id]
        took = run.finish[o.id] - run.start[o.id]
        steps = run.lane_steps(o.id)
        if resources[o.id][1] and took:
            needed = lanes_needed(compute, stream)
            lanes = [lanes for _, lanes in steps]
            assert lanes[0] >= 1 and lanes == sorted(set(lanes)) and lanes[-1] <= needed
            # the stream is done by the finish, and not a cycle earlier
            # unless the compute holds the op longer
            ends = [at for at, _ in steps[1:]] + [run.finish[o.id]]
            streamed = [
                (end - at) * lanes for (at, lanes), end in zip(steps, ends, strict=True)
            ]
            assert sum(streamed) >= stream * LANES
            if took > compute:
                assert sum(streamed) - lanes[-1] < stream * LANES
            if len(steps) == 1:
                assert took == laned_cycles(compute, stream, lanes[0])
        else:
            assert steps == ((run.start[o.id], run.lanes[o.id]),)
            assert took == (laned_cycles(compute, stream, LANES) if stream else compute)
        for dep in o.deps:
            assert run.start[o.id] >= run.finish[dep]
    for a, b in itertools.combinations(range(len(trace.ops)), 2):
        apart = run.finish[a] <= run.start[b] or run.finish[b] <= run.start[a]
        if (
            set(resources[a][0]) & set(resources[b][0])
            and timings[a][0]
            and timings[b][0]
        ):
            assert apart, (a, b)

    def lanes_at(i: int, t: int) -> int:
        return [lanes for at, lanes in run.lane_steps(i) if at <= t][-1]

    times = sorted({*run.start, *run.finish})
    for t in times:
        running = [
            i for i in range(len(trace.ops)) if run.start[i] <= t < run.finish[i]
        ]
        free: dict[int, int] = {}
        for r in {r for _, bandwidth in resources for r in bandwidth}:
            held = sum(
                lanes_on(loads[i], lanes_at(i, t), resources[i][1].index(r))
                for i in running
                if r in resources[i][1]
            )
            assert held <= LANES, (r, t)
            free[r] = LANES - held
        # work-conserving: an op waiting at t for nothing but lanes finds
        # none free on one of its resources
        for o in trace.ops:
            exclusive, bandwidth = resources[o.id]
            if not bandwidth or run.start[o.id] <= t:
                continue
            if any(run.finish[d] > t for d in o.deps):
                continue
            if any(set(exclusive) & set(resources[j][0]) for j in running):
                continue
            assert any(free[r] == 0 for r in bandwidth), (o.id, t)
    longest = [0] * len(trace.ops)
    for o in trace.ops:
        fastest = laned_cycles(*timings[o.id], LANES)
        longest[o.id] = max((longest[d] for d in o.deps), default=0) + fastest
    assert max(run.finish) >= max(longest)
    assert simulate(trace).makespan == max(run.finish)
    reference = reference_schedule(trace)
    assert (run.start, run.finish) == reference[:2]
    assert [list(run.lane_steps(i)) for i in range(len(trace.ops))] == reference[2]


@pytest.mark.parametrize("topology", ["bus", "mesh"])
@settings(max_examples=100, deadline=None)
@given(ops=random_ops())
def test_critical_path_covers_the_makespan(
    topology: str, ops: list[dict[str, Any]]
) -> None:
    # Every cycle of the run lies in one op of the chain, each op starting
    # when the one before it on the chain finished; nothing is idle.
    trace = load_trace(trace_dict(ops, prop_target(topology)), check_meaning=False)
    result = simulate(trace)
    path = critical_path(result)
    assert sum(path.cycles.values()) == result.makespan
    assert path.cycles["idle"] == 0
    assert result.start[path.ops[0]] == 0
    assert result.finish[path.ops[-1]] == result.makespan
    for before, after in itertools.pairwise(path.ops):
        assert result.finish[before] == result.start[after]
    assert path.entered[0] == "start"
    assert len(path.entered) == len(path.ops)
    for (before, after), how in zip(
        itertools.pairwise(path.ops), path.entered[1:], strict=True
    ):
        assert (before in trace.ops[after].deps) == (how == "data")
    assert sum(cycles for _, cycles in path.layer_cycles) == result.makespan


def test_heap_reference_agrees_on_a_contended_trace() -> None:
    # Many overlapping array groups all ready at once: the waiting structures
    # must give the same schedule as the sweep.
    ops = [
        mvm(i, [[a, a + width]], 1 + i % 3)
        for i, (a, width) in enumerate(
            itertools.islice(((x % 6, 1 + (x * 7) % 3) for x in itertools.count()), 60)
        )
    ]
    trace = load_trace(trace_dict(ops), check_meaning=False)
    result = simulate(trace)
    assert list(result.start) == reference_schedule(trace)[0]
    assert min(result.start) == 0
