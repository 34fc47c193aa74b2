"""The cost model's machine functions (docs/machine-model.md), by hand.

Targets: ``bus``, dynaplasia (8 cores of 12 arrays, a 32 B/cycle bus with 2
cycles of latency, 32 B/cycle global and local buffers, 4 B/cycle per
memory-mode array to the buffer and 40 B/cycle on the memory-to-compute
path, DRAM at 25.6 B/cycle after 100 cycles, one 32-lane vector unit per
core with 4 cycles of latency); ``mesh``, the same chip on a mesh of 8
B/cycle links with 3 cycles per hop and a 20 B/cycle global buffer.
"""

from __future__ import annotations

import dataclasses

import pytest

from cimflow.cost_model import (
    StreamBytes,
    cores_of_arrays,
    feed_cost,
    feeds_directly,
    interconnect_bandwidth,
    interconnect_cost,
    interconnect_path,
    interconnect_resources,
    lane_share,
    mesh_hops,
    mesh_position,
    mesh_width,
    multicast_bytes,
    mvm_cost,
    mvm_op_cost,
    path_loads,
    program_cost,
    program_op_cost,
    replica_stream_cycles,
    stream_bytes,
    stream_cost,
    transfer_cost,
    vector_cost,
    vector_op_cost,
)
from cimflow.hw_targets import HardwareTarget, load_target

BUS = load_target("dynaplasia")


def mesh(cores_per_chip: int = 8, chips: int = 1) -> HardwareTarget:
    return dataclasses.replace(
        BUS,
        hierarchy=dataclasses.replace(
            BUS.hierarchy, chips=chips, cores_per_chip=cores_per_chip
        ),
        interconnect=dataclasses.replace(
            BUS.interconnect,
            topology="mesh",
            bandwidth_bytes_per_cycle=8.0,
            latency_cycles=3,
        ),
        buffers=dataclasses.replace(BUS.buffers, global_bandwidth_bytes_per_cycle=20.0),
    )


def test_cores_of_arrays() -> None:
    # 12 arrays per core: arrays 0-11 core 0, 12-23 core 1, ...
    assert cores_of_arrays(BUS, ((0, 2),)) == ((0, 1),)
    assert cores_of_arrays(BUS, ((10, 14),)) == ((0, 2),)
    assert cores_of_arrays(BUS, ((0, 1), (24, 25), (40, 50))) == ((0, 1), (2, 5))
    assert cores_of_arrays(BUS, ((0, 1), (11, 13))) == ((0, 2),)


def test_bus_is_one_shared_resource() -> None:
    assert interconnect_resources(BUS) == ("bus",)
    assert interconnect_path(BUS, ((0, 8),)) == (("bus",), 1)
    assert interconnect_path(BUS, ((3, 4),)) == (("bus",), 1)
    # latency 2 + ceil(100 / min(32, 32)) = 2 + 4 = 6, whatever the cores;
    # energy 1.2 pJ/B on the interconnect, 0.8 pJ/B at the global buffer
    for cores in (((0, 1),), ((0, 8),), None):
        cost = interconnect_cost(BUS, 100, cores)
        assert cost.cycles == 6
        assert cost.energy_pj == pytest.approx({"interconnect": 120.0, "buffer": 80.0})


def test_a_bus_is_capped_by_the_global_buffer() -> None:
    slow = dataclasses.replace(
        BUS,
        buffers=dataclasses.replace(BUS.buffers, global_bandwidth_bytes_per_cycle=10.0),
    )
    # 2 + ceil(100 / min(32, 10)) = 12
    assert interconnect_cost(slow, 100).cycles == 12


def test_mesh_grid_and_hops() -> None:
    t = mesh()
    # 8 cores: width ceil(sqrt(8)) = 3, rows ceil(8 / 3) = 3; the global
    # buffer attaches at (3 // 2, 3 // 2) = (1, 1)
    assert mesh_width(t) == (3, 3)
    assert [mesh_position(t, c) for c in range(8)] == [
        (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2),
    ]  # fmt: skip
    # hops = |x - 1| + |y - 1| + 1
    assert [mesh_hops(t, c) for c in range(8)] == [3, 2, 3, 2, 1, 2, 3, 2]
    # a link per core and the global buffer's one port
    assert interconnect_resources(t) == (*(f"link {c}" for c in range(8)), "gb")


def test_mesh_chips_sit_side_by_side() -> None:
    t = mesh(cores_per_chip=4, chips=2)
    # width 2, rows 2 per chip; chip 1 starts at x = 2; attach (1, 1)
    assert [mesh_position(t, c) for c in range(8)] == [
        (0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1),
    ]  # fmt: skip
    assert [mesh_hops(t, c) for c in range(8)] == [3, 2, 2, 1, 3, 4, 2, 3]


def test_mesh_path_and_cost() -> None:
    t = mesh()
    # one core: its link and the port; bw = min(20, 1 * 8) = 8
    assert interconnect_path(t, ((4, 5),)) == (("link 4", "gb"), 1)
    assert interconnect_bandwidth(t, ((4, 5),)) == 8.0
    # 3 * 1 + ceil(100 / 8) = 3 + 13 = 16
    assert interconnect_cost(t, 100, ((4, 5),)).cycles == 16
    # cores 0 and 2: bw = min(20, 2 * 8) = 16, hops 3: 9 + ceil(100 / 16)
    path, hops = interconnect_path(t, ((0, 1), (2, 3)))
    assert (path, hops) == (("link 0", "link 2", "gb"), 3)
    assert interconnect_cost(t, 100, ((0, 1), (2, 3))).cycles == 9 + 7
    # cores 3 and 4: bw = 16, hops 2
    assert interconnect_cost(t, 100, ((3, 5),)).cycles == 6 + 7
    # every core: bw = min(20, 64) = 20, hops 3: 9 + ceil(100 / 20) = 14
    assert interconnect_cost(t, 100).cycles == 9 + 5
    assert interconnect_cost(t, 100, ((0, 8),)) == interconnect_cost(t, 100)


def test_the_global_buffer_port_caps_a_mesh() -> None:
    t = dataclasses.replace(
        mesh(),
        buffers=dataclasses.replace(BUS.buffers, global_bandwidth_bytes_per_cycle=12.0),
    )
    # one core: min(12, 8) = 8; two or more: the port's 12
    assert interconnect_bandwidth(t, ((0, 1),)) == 8.0
    assert interconnect_bandwidth(t, ((0, 2),)) == 12.0
    assert interconnect_bandwidth(t, ((0, 8),)) == 12.0
    slow_links = dataclasses.replace(
        t,
        interconnect=dataclasses.replace(
            t.interconnect, bandwidth_bytes_per_cycle=64.0
        ),
    )
    # links faster than the buffer: one core already fills the port
    assert interconnect_bandwidth(slow_links, ((0, 1),)) == 12.0


def test_an_op_loads_each_resource_on_its_path_by_its_bytes_there() -> None:
    t = mesh()
    names = ("dram", "link 0", "link 2", "gb")
    # 100 bytes read from DRAM (25.6 B/cycle) and over the interconnect to
    # cores 0 and 2: DRAM 100 / 25.6, each link its 50 at 8 B/cycle, the
    # port all 100 at 20 B/cycle
    loads = path_loads(t, names, ((0, 1), (2, 3)), 100, 100)
    assert loads == pytest.approx((100 / 25.6, 50 / 8, 50 / 8, 100 / 20))
    slowest = max(loads)  # the links: the op runs at their rate
    # on 64 lanes of the links it takes ceil(64 * 3.906 / 6.25) = 40 of the
    # DRAM's and ceil(64 * 5 / 6.25) = 52 of the port's
    shares = [lane_share(64, load, slowest) for load in loads]
    assert shares == [40, 64, 64, 52]
    # a share is at least one lane, and the slowest takes what it is given
    assert lane_share(1, 0.001, slowest) == 1
    assert lane_share(7, slowest, slowest) == 7
    # on a bus one resource carries every byte
    assert path_loads(BUS, ("bus",), ((0, 2),), 64, 0) == (2.0,)


def multicast(t: HardwareTarget) -> HardwareTarget:
    return dataclasses.replace(
        t, interconnect=dataclasses.replace(t.interconnect, multicast=True)
    )


def test_a_multicast_reads_once_and_each_copy_takes_its_bytes() -> None:
    t = multicast(mesh())
    cores = ((0, 4),)  # 4 copies of a one-core weight, 100 bytes each
    # the port sends 100 once (5 cycles at 20 B/cycle); the links carry
    # 4 x 100 over 4 x 8 B/cycle, ceil(400 / 32) = 13; hops 3: 9 + 13
    cost = interconnect_cost(t, 100, cores, carried=multicast_bytes(t, 100, 4))
    assert cost.cycles == 9 + 13
    assert cost.energy_pj["buffer"] == pytest.approx(100 * 0.8)
    assert cost.energy_pj["interconnect"] == pytest.approx(
        400 * t.energy.interconnect_pj_per_byte
    )
    # as long as programming one copy on its one core (3 hops away too)
    assert interconnect_cost(t, 100, ((0, 1),)).cycles == 9 + 13
    # without multicast the four streams cross the port: ceil(400 / 20)
    assert interconnect_cost(t, 400, cores).cycles == 9 + 20
    # each link carries its copy's 100, the port 100
    names = ("link 0", "link 1", "link 2", "link 3", "gb")
    assert path_loads(t, names, cores, 100, 0, carried=400) == pytest.approx(
        (100 / 8,) * 4 + (100 / 20,)
    )
    # a bus delivers the bytes once to every core
    assert multicast_bytes(BUS, 64, 4) == 64
    assert interconnect_cost(multicast(BUS), 64, ((0, 4),), carried=256) == (
        interconnect_cost(BUS, 64, ((0, 4),))
    )
    # a program of 4 copies streams so; an input two cores read each, sent
    # once, puts 200 bytes on their links
    program = program_op_cost(t, 4, 64, 256, cores=cores, in_bytes=100, copies=4)
    assert program.cycles == max(64, 9 + 13)
    levels = stream_bytes("buffer", 100, "buffer", 10, in_links=200)
    assert (levels.interconnect, levels.links) == (110, 210)
    assert stream_bytes("buffer", 100, "buffer", 10).links is None
    two = ((0, 1), (2, 3))
    # port ceil(100 / 20) = 5, links ceil(200 / 16) = 13, hops 3
    assert stream_cost(t, two, in_bytes=100, in_links=200).cycles == 9 + 13


def test_extra_copies_stream_for_free_only_where_the_interconnect_multicasts() -> None:
    t = mesh()
    # three extra copies of 1000 bytes over every core: 9 + ceil(3000 / 20)
    assert replica_stream_cycles(t, 4, 1000) == 9 + 150
    assert replica_stream_cycles(multicast(t), 4, 1000) == 0
    assert replica_stream_cycles(t, 1, 1000) == 0


def test_interconnect_needs_cores() -> None:
    with pytest.raises(ValueError, match="at least one core"):
        interconnect_path(BUS, ())


def test_feed_cost_and_local_transfers() -> None:
    # ceil(1000 / (2 arrays * 40)) = 13 cycles; 0.4 pJ/B in the arrays
    cost = feed_cost(BUS, 1000, 2)
    assert cost.cycles == 13
    assert cost.energy_pj == pytest.approx({"memory_array": 400.0})
    assert transfer_cost(BUS, "memory", "local", 1000, 2) == cost
    assert transfer_cost(BUS, "local", "memory", 1000, 2) == cost
    with pytest.raises(ValueError, match="no transfer between buffer and local"):
        transfer_cost(BUS, "buffer", "local", 1000)
    without = load_target("pimcomp_default")
    with pytest.raises(ValueError, match="no memory-to-compute path"):
        feed_cost(without, 1000, 2)


def test_mvm_duration_takes_the_longest_part() -> None:
    # compute: 1 pass of 10 + (4 - 1) * 8 = 34 cycles
    compute = mvm_cost(BUS, 2, 4, 320, 64)
    assert compute.cycles == 34
    assert mvm_op_cost(BUS, 2, 4, 320, 64) == compute
    # local reads: ceil(2048 / 32) = 64 > 34
    assert mvm_op_cost(BUS, 2, 4, 320, 64, local_bytes=2048).cycles == 64
    assert mvm_op_cost(BUS, 2, 4, 320, 64, local_bytes=1000).cycles == 34
    # streaming from the buffer over the bus: 2 + ceil((1600 + 64) / 32) = 54
    streamed = mvm_op_cost(
        BUS, 2, 4, 320, 64, feed="buffer", in_bytes=1600, out_bytes=64, cores=((0, 1),)
    )
    assert streamed.cycles == 54
    # energy: the compute's plus (1600 + 64) B at 1.2 + 0.8 pJ/B
    assert streamed.energy_pj["interconnect"] == pytest.approx(1664 * 1.2)
    assert streamed.energy_pj["buffer"] == pytest.approx(1664 * 0.8)
    assert streamed.energy_pj["adc"] == pytest.approx(compute.energy_pj["adc"])
    # from 2 memory-mode arrays: ceil(4000 / 80) = 50, outputs over the bus
    # at the same time: 2 + ceil(320 / 32) = 12 -> 50
    fed = mvm_op_cost(
        BUS,
        2,
        4,
        320,
        64,
        feed="memory",
        in_bytes=4000,
        out_bytes=320,
        cores=((0, 1),),
        feed_arrays=((2, 4),),
    )
    assert fed.cycles == 50
    assert fed.energy_pj["memory_array"] == pytest.approx(4000 * 0.4)
    assert fed.energy_pj["interconnect"] == pytest.approx(320 * 1.2)
    # the stream on its own
    stream = stream_cost(
        BUS,
        ((0, 1),),
        in_from="memory",
        in_bytes=4000,
        in_arrays=((2, 4),),
        out_bytes=320,
        direct=True,
    )
    assert stream.cycles == 50
    assert stream.energy_pj == pytest.approx(
        {"memory_array": 4000 * 0.4, "interconnect": 320 * 1.2, "buffer": 320 * 0.8}
    )
    assert stream_cost(BUS, ((0, 1),)).cycles == 0
    assert stream_cost(BUS, ((0, 1),), out_bytes=64).cycles == 2 + 2


def test_vector_cost_per_core() -> None:
    # 4 + ceil(1000 / (32 lanes * 1 unit * 3 cores)) = 4 + 11 = 15
    assert vector_op_cost(BUS, 1000, ((0, 3),)).cycles == 15
    assert vector_op_cost(BUS, 1000, ((0, 3),)) == vector_cost(BUS, 1000, 3)
    assert vector_op_cost(BUS, 0, ((0, 3),)).cycles == 0
    # streaming 640 B in and out over the bus: 2 + ceil(1280 / 32) = 42 > 15
    streamed = vector_op_cost(BUS, 1000, ((0, 3),), 640, 640)
    assert streamed.cycles == 42
    assert streamed.energy_pj["vector"] == pytest.approx(1000 * 0.3)
    assert streamed.energy_pj["interconnect"] == pytest.approx(1280 * 1.2)


def test_a_program_streams_its_values() -> None:
    # program: 64 rows * 1 cycle = 64; the values, 64 x 32 = 2048 one-byte
    # activations, over the bus: 2 + 64 = 66
    cost = program_op_cost(BUS, 1, 64, 256, cores=((0, 1),), in_bytes=2048)
    assert cost.cycles == 66
    base = program_cost(BUS, 1, 64, 256)
    assert cost.energy_pj["program"] == pytest.approx(base.energy_pj["program"])
    assert cost.energy_pj["buffer"] == pytest.approx(2048 * 0.8)
    # few values: the row writes take longer; none: only the row writes
    assert program_op_cost(BUS, 1, 64, 256, cores=((0, 1),), in_bytes=32).cycles == 64
    assert program_op_cost(BUS, 1, 64, 256) == base


# --- streams (stream_cost) ---------------------------------------------------


def test_stream_bytes_by_level() -> None:
    # every byte crosses the interconnect; DRAM and memory-mode arrays count
    # theirs
    assert stream_bytes("dram", 100, "memory", 50) == StreamBytes(
        interconnect=150, dram_read=100, memory_written=50
    )
    assert stream_bytes("buffer", 100, "dram", 50) == StreamBytes(
        interconnect=150, dram_written=50
    )
    # a direct memory feed skips the interconnect
    assert stream_bytes("memory", 100, "buffer", 20, direct=True) == StreamBytes(
        interconnect=20, memory_read=100, direct=100
    )
    with pytest.raises(ValueError, match="only memory-mode arrays feed"):
        stream_bytes("dram", 100, "buffer", 0, direct=True)


def test_feeds_directly_only_within_the_mvms_cores() -> None:
    core0 = ((0, 1),)
    assert feeds_directly(BUS, core0, ((2, 4),))
    assert not feeds_directly(BUS, core0, ((12, 14),))  # core 1
    assert not feeds_directly(BUS, core0, ((10, 14),))  # partly core 1
    assert feeds_directly(BUS, ((0, 2),), ((10, 14),))
    without = dataclasses.replace(
        BUS,
        dual_mode=dataclasses.replace(
            BUS.dual_mode, feeds_compute=False, feed_bytes_per_cycle=0.0
        ),
    )
    assert not feeds_directly(without, core0, ((2, 4),))


def test_stream_cost_takes_the_longest_part() -> None:
    core0 = ((0, 1),)
    # from DRAM: 100 + ceil(512 / 25.6) = 120; the bus 2 + 16 = 18
    cost = stream_cost(BUS, core0, in_from="dram", in_bytes=512)
    assert cost.cycles == 120
    assert cost.energy_pj == pytest.approx(
        {"dram": 512 * 20.0, "interconnect": 512 * 1.2, "buffer": 512 * 0.8}
    )
    # read from and written to DRAM: one channel, one latency:
    # 100 + ceil(1024 / 25.6) = 140
    both = stream_cost(
        BUS, core0, in_from="dram", in_bytes=512, out_to="dram", out_bytes=512
    )
    assert both.cycles == 140
    # 3 memory-mode arrays over the interconnect: ceil(600 / 12) = 50; the
    # bus 2 + ceil(600 / 32) = 21
    memory = stream_cost(
        BUS, core0, in_from="memory", in_bytes=600, in_arrays=((12, 15),)
    )
    assert memory.cycles == 50
    assert memory.energy_pj["memory_array"] == pytest.approx(600 * 0.4)
    # the same on the memory-to-compute path: ceil(600 / 120) = 5, no bus
    direct = stream_cost(
        BUS, core0, in_from="memory", in_bytes=600, in_arrays=((2, 5),), direct=True
    )
    assert direct.cycles == 5
    assert "interconnect" not in direct.energy_pj

    # writing 2 arrays: ceil(200 / 8) = 25; reading 1: ceil(100 / 4) = 25;
    # disjoint: at once (25), sharing array 13: one after the other (50)
    def both_ways(out_arrays: tuple[tuple[int, int], ...]) -> int:
        return stream_cost(
            BUS,
            core0,
            in_from="memory",
            in_bytes=100,
            in_arrays=((13, 14),),
            out_to="memory",
            out_bytes=200,
            out_arrays=out_arrays,
        ).cycles

    assert both_ways(((14, 16),)) == 25
    assert both_ways(((12, 14),)) == 50


def test_streams_on_a_mesh_use_the_ops_cores() -> None:
    t = mesh()
    # core 4, 1 hop: 3 + ceil(100 / 8) = 16; DRAM 100 + ceil(100 / 25.6) = 104
    assert stream_cost(t, ((4, 5),), in_bytes=100).cycles == 16
    assert stream_cost(t, ((4, 5),), in_from="dram", in_bytes=100).cycles == 104
    # memory-mode arrays of core 0 read by an op on core 4: 2 arrays,
    # ceil(100 / 8) = 13 < 16, only core 4's link and the port
    assert (
        stream_cost(
            t, ((4, 5),), in_from="memory", in_bytes=100, in_arrays=((0, 2),)
        ).cycles
        == 16
    )


def test_every_op_streams_by_the_one_rule() -> None:
    core0 = ((0, 1),)
    stream = stream_cost(
        BUS,
        core0,
        in_from="dram",
        in_bytes=2560,
        out_to="memory",
        out_bytes=200,
        out_arrays=((12, 13),),
    )
    # DRAM 100 + 100 = 200 > the bus 2 + 87 = 89 > one array ceil(200 / 4) = 50
    assert stream.cycles == 200
    mvm = mvm_op_cost(
        BUS,
        2,
        4,
        320,
        64,
        feed="dram",
        in_bytes=2560,
        out_to="memory",
        out_bytes=200,
        out_arrays=((12, 13),),
        cores=core0,
    )
    compute = mvm_cost(BUS, 2, 4, 320, 64)
    assert mvm.cycles == 200
    assert mvm.energy_pj["dram"] == pytest.approx(stream.energy_pj["dram"])
    assert mvm.energy_pj["adc"] == pytest.approx(compute.energy_pj["adc"])
    vector = vector_op_cost(
        BUS,
        1000,
        core0,
        2560,
        200,
        in_from="dram",
        out_to="memory",
        out_arrays=((12, 13),),
    )
    assert vector.cycles == 200
    assert vector.energy_pj["memory_array"] == pytest.approx(200 * 0.4)
    program = program_op_cost(
        BUS,
        1,
        64,
        256,
        cores=core0,
        feed="memory",
        in_bytes=400,
        feed_arrays=((12, 13),),
    )
    # one array: ceil(400 / 4) = 100 > the bus 15 > 64 rows
    assert program.cycles == 100
    with pytest.raises(ValueError, match="streams no input"):
        mvm_op_cost(BUS, 2, 4, 320, 64, in_bytes=64)
