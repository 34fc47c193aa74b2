"""cim-sim on the version-5 machine: topologies, per-core vector units, the
new duration rules and buffer occupancy, every number derived by hand.

Targets (sim_traces.small_target unless a test says otherwise): dynaplasia
shrunk to 2 cores x 4 arrays of 128 x 128 with its timing:

- mvm: ``10 + (vectors - 1) * 8`` (4 vectors: 34);
- a bus: ``2 + ceil(bytes / min(32, 32))``;
- local buffers: 10240 bytes per core, read at 32 B/cycle;
- global buffer: 81920 bytes; memory-mode arrays: 2048 bytes each, 4 B/cycle
  per array to the buffer, 40 B/cycle per array to the compute arrays of
  their core;
- vector: ``4 + ceil(element_ops / (32 lanes * 1 unit * cores))``.

``mesh_target``: the same arrays as 4 cores x 2 arrays on a mesh of 8 B/cycle
links with 3 cycles per hop and a 16 B/cycle global buffer: a 2 x 2 grid
(width ceil(sqrt(4)) = 2), the buffer at router (1, 1); core c at (c % 2,
c // 2), so hops (Manhattan distance + 1) are 3, 2, 2, 1 for cores 0-3;
floor(16 / 8) = 2 channels, core c on channel c % 2.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sim_traces import (
    alloc,
    free,
    move,
    mvm,
    op,
    place,
    run,
    small_target,
    times,
    trace_dict,
    transfer,
    vector,
)

from cimflow.cimsim.engine import PeakOccupancy, op_resources, simulate
from cimflow.cimsim.report import format_report, report_dict
from cimflow.cimsim.timeline import dump_timeline
from cimflow.cimsim.trace import load_trace
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget


def four_cores(topology: str) -> HardwareTarget:
    base = small_target()
    return dataclasses.replace(
        base,
        hierarchy=dataclasses.replace(
            base.hierarchy, cores_per_chip=4, arrays_per_core=2
        ),
        interconnect=dataclasses.replace(
            base.interconnect,
            topology=topology,
            **(
                {"bandwidth_bytes_per_cycle": 8.0, "latency_cycles": 3}
                if topology == "mesh"
                else {}
            ),
        ),
        buffers=dataclasses.replace(
            base.buffers,
            global_bandwidth_bytes_per_cycle=16.0 if topology == "mesh" else 32.0,
        ),
    )


def mesh_target() -> HardwareTarget:
    return four_cores("mesh")


# --- the interconnect -----------------------------------------------------------


def test_mesh_moves_overlap_while_the_buffer_port_has_room() -> None:
    ops = [move(i, 64, [[i, i + 1]]) for i in range(4)]
    result = run(ops, mesh_target())
    # each move runs at its link's 8 B/cycle, half the 16 B/cycle port: it
    # takes all of its link's lanes and 32 of the port's
    # core 0: 3 hops: 3 * 3 + ceil(64 / min(16, 8)) = 9 + 8 = 17
    # core 1: 2 hops: 6 + 8 = 14, beside core 0's on the port
    # core 2: 2 hops: 14 cycles, once core 1's lanes free at 14
    # core 3: 1 hop: 3 + 8 = 11, once core 0's free at 17
    assert times(result) == [(0, 17), (0, 14), (14, 28), (17, 28)]
    stats = result.stats
    # busy: link 0 17, link 1 14, link 2 14, link 3 11; the port half of
    # each move's time: (17 + 14 + 14 + 11) / 2 = 28
    assert stats.interconnect_busy_cycles == {
        "link 0": 17,
        "link 1": 14,
        "link 2": 14,
        "link 3": 11,
        "gb": 28,
    }
    assert stats.busiest_interconnect == "gb"
    assert stats.shared_busy_cycles["interconnect"] == 28
    assert stats.utilization["interconnect"] == pytest.approx(1.0)
    assert op_resources(result.trace.target, result.trace.ops[2]) == ("link 2", "gb")


def test_a_bus_serializes_the_same_moves() -> None:
    ops = [move(i, 64, [[i, i + 1]]) for i in range(4)]
    result = run(ops, four_cores("bus"))
    # each 2 + ceil(64 / 32) = 4, one after another on the one bus
    assert times(result) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert result.stats.busiest_interconnect == "bus"
    assert result.stats.shared_busy_cycles["interconnect"] == 16


def test_a_mesh_move_to_every_core_holds_every_link() -> None:
    ops = [move(0, 64, [[0, 4]]), move(1, 64, [[3, 4]])]
    result = run(ops, mesh_target())
    # every core: 3 hops (core 0), bw = min(16, 2 * 8, 4 * 8) = 16:
    # 9 + ceil(64 / 16) = 13; then core 3 alone: 3 + 8 = 11
    assert times(result) == [(0, 13), (13, 24)]


# --- vector units per core --------------------------------------------------------


def test_vector_units_are_per_core() -> None:
    ops = [
        vector(0, 100, [[0, 1]]),  # 4 + ceil(100 / 32) = 8
        vector(1, 100, [[1, 2]]),  # the other core's unit: overlaps
        vector(2, 100, [[0, 1]]),  # core 0 again: after op 0
        vector(3, 100, [[0, 2]]),  # both units: 4 + ceil(100 / 64) = 6
    ]
    result = run(ops)
    assert times(result) == [(0, 8), (0, 8), (8, 16), (16, 22)]
    stats = result.stats
    # core 0: 8 + 8 + 6 = 22, core 1: 8 + 6 = 14; average over 2 cores
    assert stats.vector_busy_cycles == (22, 14)
    assert stats.shared_busy_cycles["vector"] == 36
    assert stats.utilization["vector"] == pytest.approx(36 / (2 * 22))


def test_a_streaming_vector_op_holds_the_interconnect() -> None:
    ops = [
        vector(0, 100, [[0, 1]], in_bytes=640),  # max(8, 2 + 20 = 22)
        move(1, 64, [[1, 2]]),  # the bus is busy until 22: 22 + 4
        vector(2, 100, [[1, 2]]),  # core 1's unit is free: 0 + 8
    ]
    result = run(ops)
    assert times(result) == [(0, 22), (22, 26), (0, 8)]
    # streamed bytes count as interconnect traffic
    assert result.stats.interconnect_bytes == 640 + 64


# --- MVM durations -----------------------------------------------------------------


def test_mvm_waits_for_its_local_buffer_reads() -> None:
    # compute 34; the busiest core reads ceil(2048 / 32) = 64 cycles
    result = run([mvm(0, [[0, 2]], 4, local_bytes=2048)])
    assert times(result) == [(0, 64)]
    assert result.stats.local_bytes_read == 2048
    result = run([mvm(0, [[0, 2]], 4, local_bytes=1024)])  # 32 < 34
    assert times(result) == [(0, 34)]


def test_mvm_streaming_from_the_buffer_holds_the_interconnect() -> None:
    ops = [
        mvm(0, [[0, 2]], 4, feed="buffer", in_bytes=1600),  # max(34, 2 + 50)
        move(1, 64, [[1, 2]]),  # waits for the bus: 52 + 4
        vector(2, 100, [[0, 1]]),  # holds no interconnect: 0 + 8
    ]
    result = run(ops)
    assert times(result) == [(0, 52), (52, 56), (0, 8)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == ("bus", 0, 1)


def test_mvm_fed_from_memory_holds_its_feed_arrays() -> None:
    ops = [
        # 2 feed arrays: ceil(4000 / (2 * 40)) = 50; outputs to the buffer at
        # the same time: 2 + ceil(320 / 32) = 12; compute 34 -> 50
        mvm(
            0,
            [[0, 2]],
            4,
            feed="memory",
            feed_arrays=[[2, 4]],
            in_bytes=4000,
            out_bytes=320,
        ),
        # the feed arrays are busy: max(ceil(256 / 32), ceil(256 / 8)) = 32
        transfer(1, "load", "buffer", "memory", 256, arrays=[[2, 4]]),
        # the MVM holds the bus for its outputs, as it holds every resource,
        # from start to finish; then it shares the bus with the load, which
        # crosses it to the memory-mode arrays: from 50, in 6
        move(2, 64, [[1, 2]]),
    ]
    result = run(ops)
    assert times(result) == [(0, 50), (50, 82), (50, 56)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == (
        "bus",
        0,
        1,
        2,
        3,
    )
    stats = result.stats
    assert stats.memory_bytes_read == 4000
    assert stats.interconnect_bytes == 320 + 256 + 64  # outputs, the load, the move
    assert stats.array_busy_cycles[:4] == (50, 50, 50 + 32, 50 + 32)


def test_memory_to_local_transfers_hold_only_their_arrays() -> None:
    ops = [
        # ceil(1000 / (2 * 40)) = 13
        transfer(0, "load", "memory", "local", 1000, arrays=[[2, 4]], cores=[[0, 1]]),
        transfer(1, "store", "local", "memory", 400, arrays=[[2, 3]], cores=[[0, 1]]),
        move(2, 64, [[0, 1]]),  # the bus is free: 0 + 4
    ]
    result = run(ops)
    # the store waits for array 2: ceil(400 / 40) = 10
    assert times(result) == [(0, 13), (13, 23), (0, 4)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == (2, 3)
    # 0.4 pJ per byte in the memory-mode arrays
    assert result.stats.energy_pj["memory_array"] == pytest.approx(1400 * 0.4)


def test_a_tensor_program_streams_its_values() -> None:
    target = small_target(dynamic_matmul=True)
    program = op(
        0,
        "program",
        arrays=[[0, 1]],
        rows=128,
        cols=128,
        weight="kt",
        k=[0, 128],
        n=[0, 64],
        source="tensor",
    )
    result = run([program, move(1, 64, [[1, 2]])], target)
    # rows: 128 cycles; values: 128 x 64 one-byte activations over the bus:
    # 2 + ceil(8192 / 32) = 258
    assert times(result) == [(0, 258), (258, 262)]
    assert result.stats.interconnect_bytes == 8192 + 64


# --- occupancy ---------------------------------------------------------------------


def overfull(ops: list[dict[str, Any]], target: HardwareTarget | None = None) -> str:
    with pytest.raises(CimError) as err:
        run(ops, target)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_an_overfull_global_buffer_is_refused() -> None:
    ops = [
        transfer(
            0, "load", "dram", "buffer", 1000, allocs=[alloc("x", "buffer", 50000)]
        ),
        transfer(
            1, "load", "dram", "buffer", 1000, allocs=[alloc("x", "buffer", 40000)]
        ),
    ]
    # the second load starts at 140 (after the first on the DRAM channel):
    # 50000 + 40000 > 81920
    assert overfull(ops) == (
        "<trace>: op 1 (load 'load1'): the global buffer overflows at cycle 140: "
        "40000 bytes of 'x' make 90000 of its 81920 bytes"
    )


def test_a_free_makes_room() -> None:
    ops = [
        transfer(
            0, "load", "dram", "buffer", 1000, allocs=[alloc("a", "buffer", 50000)]
        ),
        free(1, [place("a", "buffer")], (0,)),
        transfer(
            2,
            "load",
            "dram",
            "buffer",
            1000,
            (1,),
            allocs=[alloc("b", "buffer", 40000)],
        ),
    ]
    result = run(ops)
    assert times(result) == [(0, 140), (140, 140), (140, 280)]
    assert result.stats.peak_occupancy[0] == PeakOccupancy(
        "buffer", 50000, 81920, None, 0
    )


def test_frees_come_before_allocations_in_the_same_cycle() -> None:
    ops = [
        transfer(
            0, "load", "dram", "buffer", 1000, allocs=[alloc("a", "buffer", 50000)]
        ),
        free(1, [place("a", "buffer")], (0,)),
        # no dependency on the free: it starts at 140 when the DRAM frees
        transfer(
            2, "load", "dram", "buffer", 1000, allocs=[alloc("b", "buffer", 40000)]
        ),
    ]
    result = run(ops)
    assert times(result) == [(0, 140), (140, 140), (140, 280)]


def test_an_overfull_local_buffer_is_refused() -> None:
    ops = [
        # 20000 bytes over cores 0 and 1: 10000 each, of 10240
        move(0, 64, [[0, 2]], allocs=[alloc("t", "local", 20000, cores=[[0, 2]])]),
        move(1, 64, [[1, 2]], (0,), allocs=[alloc("u", "local", 300, cores=[[1, 2]])]),
    ]
    # the first move takes 2 + 2 = 4 cycles
    assert overfull(ops) == (
        "<trace>: op 1 (move 'move1'): the local buffer of core 1 overflows at "
        "cycle 4: 300 bytes of 'u' make 10300 of its 10240 bytes"
    )


def test_an_overfull_memory_array_is_refused() -> None:
    ops = [
        op(0, "switch", arrays=[[4, 6]], to="memory"),  # 1 cycle
        transfer(
            1,
            "load",
            "dram",
            "memory",
            1000,
            (0,),
            arrays=[[4, 6]],
            allocs=[alloc("x", "memory", 5000, arrays=[[4, 6]])],
        ),
    ]
    # 5000 bytes over 2 arrays: 2500 each, of 2048 (128 x 128 one-bit cells)
    assert overfull(ops) == (
        "<trace>: op 1 (load 'load1'): memory-mode array 4 overflows at cycle 1: "
        "2500 bytes of 'x' make 2500 of its 2048 bytes"
    )


def test_a_model_input_in_arrays_occupies_them_from_the_start() -> None:
    data = trace_dict(
        [
            transfer(
                0,
                "load",
                "dram",
                "memory",
                1000,
                arrays=[[4, 5]],
                tensor="y",
                allocs=[alloc("y", "memory", 1000, arrays=[[4, 5]])],
            )
        ]
    )
    data["model"]["inputs"] = [
        {"name": "kv", "shape": [1500], "dtype": "int8", "arrays": [[4, 5]]}
    ]
    data["tensors"] = [{"name": "kv", "shape": [1500], "dtype": "int8", "bytes": 1500}]
    with pytest.raises(CimError) as err:
        simulate(load_trace(data, check_meaning=False))
    assert str(err.value) == (
        "<trace>: op 0 (load 'load0'): memory-mode array 4 overflows at cycle 0: "
        "1000 bytes of 'y' make 2500 of its 2048 bytes"
    )


def occupancy_ops() -> list[dict[str, Any]]:
    return [
        # 0..140: 30000 in the buffer
        transfer(
            0, "load", "dram", "buffer", 1000, allocs=[alloc("a", "buffer", 30000)]
        ),
        # at 140 (after op 0): 4000 on core 1 (4 cycles)
        move(
            1,
            64,
            [[1, 2]],
            (0,),
            tensor="a",
            allocs=[alloc("a", "local", 4000, [[1, 2]])],
        ),
        # at 144: 3001 over cores 0 and 1: 1501 on core 0, 1500 on core 1
        move(
            2,
            64,
            [[0, 2]],
            (1,),
            tensor="a",
            allocs=[alloc("a", "local", 3001, [[0, 2]])],
        ),
        free(3, [place("a", "local", cores=[[1, 2]])], (2,)),  # at 148
        op(4, "switch", arrays=[[4, 6]], to="memory"),  # 0..1
        # 3001 over arrays 4 and 5: max(140, ceil(1000 / 8) = 125) = 140
        # cycles, after op 0 on the DRAM channel and ops 1-2 on the bus it
        # crosses to the arrays: 148..288
        transfer(
            5,
            "load",
            "dram",
            "memory",
            1000,
            (4,),
            arrays=[[4, 6]],
            allocs=[alloc("m", "memory", 3001, arrays=[[4, 6]])],
        ),
        op(6, "switch", (5,), arrays=[[4, 6]], to="compute"),  # 288..289: ends "m"
        op(7, "switch", (6,), arrays=[[4, 6]], to="memory"),  # 289..290
        # 1920 in array 4: fits, since the switch to compute ended "m";
        # max(100 + ceil(1000 / 25.6), ceil(1000 / 4)) = 250 cycles
        transfer(
            8,
            "load",
            "dram",
            "memory",
            1000,
            (7,),
            arrays=[[4, 5]],
            allocs=[alloc("n", "memory", 1920, arrays=[[4, 5]])],
        ),
    ]


def test_peak_occupancy_per_level() -> None:
    result = run(occupancy_ops())
    assert [times(result)[i] for i in (0, 1, 2, 3, 5, 6, 7, 8)] == [
        (0, 140),
        (140, 144),
        (144, 148),
        (148, 148),
        (148, 288),
        (288, 289),
        (289, 290),
        (290, 540),
    ]
    buffer, local, memory = result.stats.peak_occupancy
    assert buffer == PeakOccupancy("buffer", 30000, 81920, None, 0)
    # core 1: 4000 + 1500 = 5500 at 144 (core 0 holds 1501)
    assert local == PeakOccupancy("local", 5500, 10240, 1, 144)
    # array 4 held 1501 of "m" (3001 = 1501 + 1500), then 1920 of "n"
    assert memory == PeakOccupancy("memory", 1920, 2048, 4, 290)


def test_peak_occupancy_in_the_reports() -> None:
    result = run(occupancy_ops())
    text = format_report(result)
    assert "peak occupancy:" in text
    assert (
        "  global buffer                         30,000    81,920  36.6%         0"
    ) in text
    assert (
        "  local buffer (fullest: core 1)         5,500    10,240  53.7%       144"
    ) in text
    assert (
        "  memory-mode array (fullest: array 4)   1,920     2,048  93.8%       290"
    ) in text
    document = report_dict(result)
    assert document["version"] == 6
    assert document["peak_occupancy"] == {
        "buffer": {"bytes": 30000, "capacity": 81920, "unit": None, "cycle": 0},
        "local": {"bytes": 5500, "capacity": 10240, "unit": 1, "cycle": 144},
        "memory": {"bytes": 1920, "capacity": 2048, "unit": 4, "cycle": 290},
    }
    json.dumps(document)


def test_nothing_allocated_reports_zero_peaks() -> None:
    result = run([mvm(0, [[0, 2]], 4)])
    assert [p.nbytes for p in result.stats.peak_occupancy] == [0, 0, 0]
    assert [p.unit for p in result.stats.peak_occupancy] == [None, None, None]


def test_timeline_names_links_and_vector_units() -> None:
    ops = [move(0, 64, [[2, 3]]), vector(1, 100, [[3, 4]])]
    result = run(ops, mesh_target())
    document = json.loads(dump_timeline(result))
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in document["traceEvents"]
        if e["name"] == "thread_name"
    }
    # the move holds core 2's link and the global buffer's port (after the
    # 4 cores' links); the vector op its core's units; the path has a track
    assert threads == {
        (3, 2): "link 2",
        (3, 4): "global buffer port",
        (4, 3): "vector 3",
        (7, 0): "critical path",
    }


# --- streams from and to DRAM and memory-mode arrays ------------------------------
#
# DRAM: 100 cycles of latency + ceil(bytes / 25.6); memory-mode arrays 4 B/cycle
# each over the interconnect, 40 B/cycle each on the memory-to-compute path;
# energy per byte: DRAM 20, global buffer 0.8, interconnect 1.2, memory-mode
# arrays 0.4 pJ.


def test_an_mvm_streams_its_input_from_dram() -> None:
    ops = [
        # DRAM 100 + ceil(2560 / 25.6) = 200; the bus 2 + ceil(2560 / 32) = 82;
        # compute 34 -> 200
        mvm(0, [[0, 2]], 4, feed="dram", in_bytes=2560),
        # DRAM busy until 200: max(100 + ceil(256 / 25.6), ceil(256 / 32)) = 110
        transfer(1, "load", "dram", "buffer", 256),
        # the MVM loads the bus 80 cycles for DRAM's 100: it takes
        # ceil(256 * 80 / 100) = 205 of the bus's lanes, and the move runs
        # on the other 51: ceil((2 + 2) * 256 / 51) = 21
        move(2, 64, [[1, 2]]),
        vector(3, 100, [[1, 2]]),  # holds neither: 0 + 8
    ]
    result = run(ops)
    assert times(result) == [(0, 200), (200, 310), (0, 21), (0, 8)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == (
        "dram",
        "bus",
        0,
        1,
    )
    stats = result.stats
    assert stats.dram_bytes_read == 2560 + 256
    assert stats.dram_bytes_written == 0
    assert stats.interconnect_bytes == 2560 + 64
    # each streamed byte: DRAM, the buffer it passes through, the interconnect
    cost = result.costs[0]
    assert cost.energy_pj["dram"] == pytest.approx(2560 * 20.0)
    assert cost.energy_pj["buffer"] == pytest.approx(2560 * 0.8)
    assert cost.energy_pj["interconnect"] == pytest.approx(2560 * 1.2)


def test_slow_streams_share_the_dram_channel_finely() -> None:
    """16 MVMs on 16 arrays, each reading 256 bytes from DRAM over 1000
    vectors: compute 10 + 999 * 8 = 8002 cycles, DRAM 100 + ceil(256 /
    25.6) = 110 and the bus 2 + ceil(256 / 32) = 10 at full bandwidth, so
    each needs ceil(256 x 110 / 8002) = 4 of the 256 lanes: all run at
    once (with 8 lanes, 8 at a time would have taken two rounds)."""
    base = small_target()
    target = dataclasses.replace(
        base, hierarchy=dataclasses.replace(base.hierarchy, arrays_per_core=8)
    )
    ops = [mvm(i, [[i, i + 1]], 1000, feed="dram", in_bytes=256) for i in range(16)]
    assert times(run(ops, target)) == [(0, 8002)] * 16


def test_more_slow_streams_than_64_share_a_channel_at_once() -> None:
    """100 MVMs on 100 arrays, each reading 256 bytes from DRAM over 4000
    vectors: compute 10 + 3999 * 8 = 32002 cycles, DRAM 110 at full
    bandwidth, so each needs ceil(256 x 110 / 32002) = 1 lane, 100 in all,
    0.8 B/cycle of the channel's 25.6: all run at once (with 64 lanes the
    last 36 waited for the first 64, a second wave)."""
    base = small_target()
    target = dataclasses.replace(
        base, hierarchy=dataclasses.replace(base.hierarchy, arrays_per_core=50)
    )
    ops = [mvm(i, [[i, i + 1]], 4000, feed="dram", in_bytes=256) for i in range(100)]
    assert times(run(ops, target)) == [(0, 32002)] * 100


def test_dram_reads_and_writes_of_one_op_share_the_channel() -> None:
    result = run(
        [
            # outputs alone, a posted write: compute 34 > DRAM ceil(512 / 25.6)
            # = 20 > bus 18
            mvm(0, [[0, 2]], 4, out_to="dram", out_bytes=512),
            # both ways: DRAM 100 + ceil(3072 / 25.6) = 220 (one latency),
            # the bus 2 + ceil(3072 / 32) = 98
            mvm(
                1, [[2, 4]], 4, feed="dram", in_bytes=2560, out_to="dram", out_bytes=512
            ),
        ]
    )
    # both hold the DRAM channel: op 0 on ceil(256 x 20 / 34) = 151 of its
    # lanes, op 1 on the other 105 (the bus has room: ceil(105 x 98 / 220)
    # = 47 of the 256 - 136 op 0 leaves); at 34 op 1 takes all 256 with
    # 220 x 256 - 105 x 34 = 52,750 lane-cycles left: 34 + 207
    assert times(result) == [(0, 34), (0, 241)]
    stats = result.stats
    assert (stats.dram_bytes_read, stats.dram_bytes_written) == (2560, 1024)
    assert stats.interconnect_bytes == 512 + 3072


def test_memory_arrays_of_another_core_feed_over_the_interconnect() -> None:
    ops = [
        # arrays 4-5 sit in core 1, the MVM's arrays in core 0: the arrays
        # at 2 x 4 B/cycle, ceil(400 / 8) = 50, and the bus 2 + ceil(400 / 32)
        # = 15 at the same time; compute 34 -> 50
        mvm(0, [[0, 2]], 4, feed="memory", feed_arrays=[[4, 6]], in_bytes=400),
        move(1, 64, [[1, 2]]),  # the bus is held until 50: 50 + 4
    ]
    result = run(ops)
    assert times(result) == [(0, 50), (50, 54)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == (
        "bus",
        0,
        1,
        4,
        5,
    )
    assert result.stats.interconnect_bytes == 400 + 64
    assert result.stats.memory_bytes_read == 400
    # arrays 2-3 of its own core: the memory-to-compute path, ceil(400 / 80)
    # = 5 < 34, no interconnect, so the move overlaps it
    ops[0] = mvm(0, [[0, 2]], 4, feed="memory", feed_arrays=[[2, 4]], in_bytes=400)
    result = run(ops)
    assert times(result) == [(0, 34), (0, 4)]
    assert result.stats.interconnect_bytes == 64
    assert result.stats.memory_bytes_read == 400


def test_without_the_path_memory_arrays_of_the_same_core_use_the_interconnect() -> None:
    base = small_target()
    target = dataclasses.replace(
        base,
        dual_mode=dataclasses.replace(
            base.dual_mode, feeds_compute=False, feed_bytes_per_cycle=0.0
        ),
    )
    ops = [
        mvm(0, [[0, 2]], 4, feed="memory", feed_arrays=[[2, 4]], in_bytes=400),
        move(1, 64, [[1, 2]]),
    ]
    # ceil(400 / (2 x 4)) = 50 with the bus held, as from another core
    assert times(run(ops, target)) == [(0, 50), (50, 54)]


def test_an_mvm_streams_its_outputs_to_memory_arrays() -> None:
    # one array at 4 B/cycle: ceil(200 / 4) = 50; the bus 2 + ceil(200 / 32)
    # = 9; compute 34 -> 50
    result = run(
        [mvm(0, [[0, 2]], 4, out_to="memory", out_arrays=[[4, 5]], out_bytes=200)]
    )
    assert times(result) == [(0, 50)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == ("bus", 0, 1, 4)
    stats = result.stats
    assert (stats.memory_bytes_read, stats.memory_bytes_written) == (0, 200)
    assert stats.interconnect_bytes == 200
    assert result.costs[0].energy_pj["memory_array"] == pytest.approx(200 * 0.4)


def test_arrays_read_and_written_by_one_op_serve_both_in_turn() -> None:
    def fed(out_arrays: list[list[int]]) -> int:
        # read 400 B from arrays 4-5 (core 1): ceil(400 / 8) = 50; write 80 B
        # to one array: ceil(80 / 4) = 20; the bus 2 + ceil(480 / 32) = 17
        op = mvm(
            0,
            [[0, 2]],
            4,
            feed="memory",
            feed_arrays=[[4, 6]],
            in_bytes=400,
            out_to="memory",
            out_arrays=out_arrays,
            out_bytes=80,
        )
        return run([op]).finish[0]

    assert fed([[6, 7]]) == 50  # other arrays: at the same time
    assert fed([[5, 6]]) == 50 + 20  # array 5 reads, then writes


def test_a_vector_op_streams_from_dram_to_memory_arrays() -> None:
    result = run(
        [
            # compute 4 + ceil(100 / 32) = 8; the bus 2 + ceil(1920 / 32) = 62;
            # DRAM 100 + ceil(1280 / 25.6) = 150; arrays 4-5 ceil(640 / 8) = 80
            vector(
                0,
                100,
                [[0, 1]],
                in_bytes=1280,
                out_bytes=640,
                in_from="dram",
                out_to="memory",
                out_arrays=[[4, 6]],
            ),
            # from array 4: ceil(400 / 4) = 100, after op 0 frees it; DRAM
            # ceil(256 / 25.6) = 10 (a posted write); the bus 2 + ceil(656 /
            # 32) = 23
            vector(
                1,
                100,
                [[1, 2]],
                in_bytes=400,
                out_bytes=256,
                in_from="memory",
                in_arrays=[[4, 5]],
                out_to="dram",
            ),
        ]
    )
    assert times(result) == [(0, 150), (150, 250)]
    assert op_resources(result.trace.target, result.trace.ops[0]) == (
        "dram",
        "bus",
        "vector 0",
        4,
        5,
    )
    stats = result.stats
    assert (stats.dram_bytes_read, stats.dram_bytes_written) == (1280, 256)
    assert (stats.memory_bytes_read, stats.memory_bytes_written) == (400, 640)
    assert stats.interconnect_bytes == 1920 + 656


def program(op_id: int, arrays: list[list[int]], **keys: Any) -> dict[str, Any]:
    return op(
        op_id,
        "program",
        arrays=arrays,
        rows=128,
        cols=128,
        weight="w",
        k=[0, 128],
        n=[0, 16],
        **keys,
    )


def test_a_weight_program_streams_from_where_its_feed_says() -> None:
    result = run(
        [
            # 128 rows: 128 cycles, holding only its array
            program(0, [[0, 1]]),
            # from DRAM: 100 + ceil(2048 / 25.6) = 180; the bus 2 + 64 = 66
            program(1, [[1, 2]], feed="dram", in_bytes=2048),
            # from the buffer: the bus 66 < 128, needing ceil(66 x 256 / 128)
            # = 132 lanes; op 1 holds ceil(256 x 64 / 80) = 205 of them, so it
            # starts on 51 and at 180 takes 132 with 66 x 256 - 51 x 180 =
            # 7,716 lane-cycles left: 180 + 59
            program(2, [[2, 3]], in_bytes=2048),
            # from arrays 4-5: ceil(2048 / 8) = 256, needing every lane; no
            # bus lane is free until 180, then 124, then all 256 at 239 with
            # 256 x 256 - 124 x 59 = 58,220 left: 239 + 228
            program(3, [[3, 4]], feed="memory", feed_arrays=[[4, 6]], in_bytes=2048),
        ]
    )
    assert times(result) == [(0, 128), (0, 180), (0, 239), (180, 467)]
    target = result.trace.target
    assert op_resources(target, result.trace.ops[0]) == (0,)
    assert op_resources(target, result.trace.ops[1]) == ("dram", "bus", 1)
    assert op_resources(target, result.trace.ops[3]) == ("bus", 3, 4, 5)
    stats = result.stats
    assert stats.dram_bytes_read == 2048
    assert stats.memory_bytes_read == 2048
    assert stats.interconnect_bytes == 3 * 2048
