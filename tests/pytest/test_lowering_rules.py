"""The lowering's rules: which weight rows each core holds, what an MVM's
input costs in feature-map rows, and the buffer allocator's dependencies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cimflow.analysis.tile_mapping import Chunk, plan_chunks, target_tiling
from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.cimsim.functional import slice_placements
from cimflow.cimsim.trace import WeightInfo
from cimflow.cost_model import (
    StreamLevel,
    concurrent_cost,
    interconnect_bandwidth,
    interconnect_path,
    stream_bytes,
    vector_cost,
    vector_op_parts,
)
from cimflow.hw_targets import HardwareTarget, load_target
from cimflow.lowering.allocator import SpaceAllocator
from cimflow.lowering.rules import (
    Window,
    array_k_spans,
    band_groups,
    banded_copies,
    banded_mvm_cycles,
    chunks_out_bytes,
    column_tiles,
    core_k_spans,
    cores_of,
    input_elements,
    merge_spans,
    split_span,
    sum_bytes,
    vector_core_count,
)
from cimflow.lowering.state import (
    chunk_start,
    copy_layout,
    crossing_sums,
    partial_parts,
)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 200),
    n=st.integers(1, 60),
    groups=st.sampled_from([1, 1, 2, 3, 8]),
    available=st.integers(1, 12),
    target=st.sampled_from(["tiny", "jain_wordline"]),
)
def test_array_rows_agree_with_the_functional_placement(
    k: int, n: int, groups: int, available: int, target: str
) -> None:
    """The lowering's view of which weight rows each array holds is the
    functional executor's placement of the same slice."""
    hw = load_target(target)
    tiling = TilingAttr.for_matrix(
        k, n, groups, hw.array.rows, hw.array.cols, hw.bit_slices
    )
    info = WeightInfo("w", "kn", groups, k, n)
    for chunk in plan_chunks(tiling, available):
        count, tiles = slice_placements(
            info, (chunk.k0, chunk.k1), (chunk.n0, chunk.n1), hw
        )
        expected: list[list[tuple[int, int]]] = [[] for _ in range(count)]
        for tile in tiles:
            expected[tile.array].append(tile.k)
        assert array_k_spans(tiling, chunk) == tuple(
            merge_spans(spans) for spans in expected
        )
        assert count == chunk.arrays


def test_each_core_holds_the_rows_of_its_arrays() -> None:
    """A 300 x 16 weight on tiny (32 x 32 arrays, 2-bit cells for 8-bit
    weights: 4 bit slices, 8 outputs per array): 10 row tiles x 2 column
    tiles = 20 arrays, row tile fastest. Placed from array 2 on 4-array
    cores: core 0 holds chunk arrays 0-1 (column tile 0, rows 0-64), core 1
    arrays 2-5 (rows 64-192), core 2 arrays 6-9 (rows 192-300), core 3
    arrays 10-13 (column tile 1, rows 0-128), core 4 rows 128-256, core 5
    rows 256-300."""
    hw = load_target("tiny")
    tiling = TilingAttr.for_matrix(300, 16, 1, 32, 32, hw.bit_slices)
    (chunk,) = plan_chunks(tiling, 20)
    assert chunk.arrays == 20
    per_core = core_k_spans(hw, tiling, chunk, 2)
    assert per_core == {
        0: ((0, 64),),
        1: ((64, 192),),
        2: ((192, 300),),
        3: ((0, 128),),
        4: ((128, 256),),
        5: ((256, 300),),
    }
    assert cores_of(hw, 2, 20) == tuple(range(6))


def test_one_sum_per_output_leaves_each_holding_core() -> None:
    """The 300 x 16 weight above, placed from array 2: column tile 0's 10
    row tiles sit in cores 0-2, column tile 1's in cores 3-5, so 3 sums of
    each of the 16 outputs leave per vector, 4-byte partial sums (tiny
    accumulates in 32 bits): 5 vectors x 16 x 3 x 4 = 960 bytes, not one
    per row tile (5 x 16 x 10 x 4 = 3200). From array 0 column tile 0 sits
    in cores 0-2 (arrays 0-9) and column tile 1 in cores 2-4 (arrays 10-19):
    still 3 holders each."""
    hw = load_target("tiny")
    tiling = TilingAttr.for_matrix(300, 16, 1, 32, 32, hw.bit_slices)
    (chunk,) = plan_chunks(tiling, 20)
    columns = column_tiles(hw, tiling, chunk, 2)
    assert columns == ((8, 10, 3), (8, 10, 3))
    assert sum_bytes(hw, columns, 5, False) == 5 * 16 * 3 * 4
    assert column_tiles(hw, tiling, chunk, 0) == ((8, 10, 3), (8, 10, 3))


def test_finished_sums_leave_as_activations() -> None:
    """A 32 x 16 weight on tiny is one row tile per column tile: each output
    has one sum, finished, one byte each (8-bit activations); streamed in
    one-array chunks over the same columns it is not (a 64 x 8 weight in
    two one-array chunks: each chunk's sums are unfinished, 4 bytes)."""
    hw = load_target("tiny")
    whole = TilingAttr.for_matrix(32, 16, 1, 32, 32, hw.bit_slices)
    (chunk,) = plan_chunks(whole, 4)
    assert sum_bytes(hw, column_tiles(hw, whole, chunk, 0), 3, False) == 3 * 16
    tall = TilingAttr.for_matrix(64, 8, 1, 32, 32, hw.bit_slices)
    chunks = plan_chunks(tall, 1)
    assert len(chunks) == 2
    assert chunks_out_bytes(hw, tall, chunks, 3) == [3 * 8 * 4, 3 * 8 * 4]


def test_a_window_moves_feature_map_rows_not_patches() -> None:
    """A 3x3 convolution, stride 1, pad 1, over one 16-channel 8x8 map:
    64 output positions of 144 patch columns (9216 patch elements). All of
    it crosses as the map itself: 8 rows x 8 x 16 = 1024 elements. Output
    rows 2-3 read input rows 1-4 (halo included); patch columns 0-72 are
    channels 0-8."""
    window = Window((1, 16, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    assert window.output_hw == (8, 8)
    everything = input_elements(window, (0, 64), [(0, 144)])
    assert everything == 8 * 8 * 16
    assert input_elements(None, (0, 64), [(0, 144)]) == 64 * 144
    assert input_elements(window, (16, 32), [(0, 144)]) == 4 * 8 * 16
    assert input_elements(window, (16, 32), [(0, 72)]) == 4 * 8 * 8
    # output rows 0-1 of the second sample of a batch of 2
    pair = Window((2, 16, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    assert input_elements(pair, (64, 80), [(0, 144)]) == 3 * 8 * 16


def test_a_strided_window_reads_its_rows() -> None:
    """7x7, stride 2, pad 3 over 3 x 32 x 32: output row 5 reads input rows
    10 - 3 = 7 to 7 + 6 = 13."""
    window = Window((1, 3, 32, 32), (7, 7), (2, 2), (3, 3, 3, 3), (1, 1))
    assert window.output_hw == (16, 16)
    assert window.input_rows(5, 6) == 7
    assert window.input_rows(0, 1) == 4  # rows -3..3, 4 inside the map


def test_reused_space_waits_for_its_release() -> None:
    space: SpaceAllocator[str] = SpaceAllocator(10)
    assert space.allocate("a", 6).after == []
    assert space.allocate("b", 4).after == []
    space.release("a", "free a")
    assert space.allocate("c", 5).after == ["free a"]
    space.release("b", "free b")
    assert space.fits(5) and not space.fits(6)
    grant = space.allocate("d", 5)
    assert grant.after == ["free a", "free b"]
    assert space.peak == 10


def test_a_grant_says_what_each_part_of_it_waits_for() -> None:
    """Fresh bytes wait for nothing; each released piece for its release,
    in the order the grant took them."""
    space: SpaceAllocator[str] = SpaceAllocator(10)
    space.allocate("a", 4)
    space.allocate("b", 3)
    space.release("a", "free a", at=50)
    space.release("b", "free b", at=20)
    grant = space.allocate("c", 9)
    assert grant.pieces == [(3, []), (3, ["free b"]), (3, ["free a"])]
    assert grant.after_range(0, 3) == []
    assert grant.after_range(2, 4) == ["free b"]
    assert grant.after_range(5, 9) == ["free b", "free a"]


def test_held_space_waits_for_unhold() -> None:
    """Bytes released with ``hold`` are taken by no grant until ``unhold``
    (a segment holding a ring keeps the bytes its gated ops release), unless
    a grant cannot fit without them."""
    space: SpaceAllocator[str] = SpaceAllocator(10)
    space.allocate("a", 6)
    space.allocate("b", 4)
    space.release("a", "free a", hold=True)
    space.release("b", "free b")
    assert space.available == 4 and space.allocate("c", 4).after == ["free b"]
    space.unhold()
    assert space.allocate("d", 6).after == ["free a"]
    space.release("c", "free c", hold=True)
    assert space.available == 0
    assert space.allocate("e", 3).after == ["free c"]


def test_reused_space_is_the_space_released_soonest() -> None:
    """A tensor released first in program order but late in time (the input
    of a slow layer) is not the space a new tensor waits for, when space
    released later in program order frees sooner."""
    space: SpaceAllocator[str] = SpaceAllocator(12)
    for name in "abc":
        space.allocate(name, 4)
    space.release("a", "free a", at=900)
    space.release("b", "free b", at=100)
    space.release("c", "free c", at=100)
    assert space.allocate("d", 6).after == ["free b", "free c"]
    assert space.allocate("e", 6).after == ["free c", "free a"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 3)), max_size=40
    )
)
def test_every_byte_has_one_owner(steps: list[tuple[bool, int, int]]) -> None:
    """Replaying allocations and releases (expected at any time), each grant
    takes its bytes from never-used space and from the releases it waits
    for, and never more bytes are live than the capacity."""
    capacity = 16
    space: SpaceAllocator[int] = SpaceAllocator(capacity)
    released: dict[int, int] = {}
    for index, (allocate, size, at) in enumerate(steps):
        name = str(size)
        if allocate and name not in space.live and space.fits(size + 1):
            before_fresh = space.fresh
            grant = space.allocate(name, size + 1)
            from_fresh = before_fresh - space.fresh
            assert from_fresh + sum(released.get(t, 0) for t in grant.after) >= (
                size + 1
            )
        elif not allocate and name in space.live:
            released[index] = space.release(name, index, at)
        assert space.used <= capacity


def test_a_stride_longer_than_the_window_reads_every_other_row_and_column() -> None:
    # ResNet's downsample: 1x1, stride 2 on 14 x 14 x 1024 -> 7 x 7; the
    # windows read rows and columns 0, 2, ..., 12 only
    downsample = Window((1, 1024, 14, 14), (1, 1), (2, 2), (0, 0, 0, 0), (1, 1))
    assert downsample.output_hw == (7, 7)
    assert downsample.input_columns == 7
    assert downsample.band_elements((0, 49), [(0, 1024)]) == 7 * 7 * 1024
    # a 3x3 window of stride 2 (pad 1) touches every row and column
    conv = Window((1, 64, 14, 14), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1))
    assert conv.band_elements((0, 49), [(0, 64 * 9)]) == 14 * 14 * 64
    # a dilated 3x3 window of stride 3: rows 3 * oh + {0, 2, 4}, oh = 0..3
    dilated = Window((1, 1, 14, 14), (3, 3), (3, 3), (0, 0, 0, 0), (2, 2))
    assert dilated.output_hw == (4, 4)
    assert dilated.input_rows(0, 4) == len(
        {3 * o + 2 * i for o in range(4) for i in range(3)}
    )


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 20),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    pad=st.integers(0, 2),
    data=st.data(),
)
def test_input_rows_are_the_rows_some_window_covers(
    size: int, kernel: int, stride: int, dilation: int, pad: int, data: st.DataObject
) -> None:
    window = Window(
        (1, 1, size, size),
        (kernel, kernel),
        (stride, stride),
        (pad, pad, pad, pad),
        (dilation, dilation),
    )
    rows, _ = window.output_hw
    if rows < 1:
        return
    first = data.draw(st.integers(0, rows - 1))
    stop = data.draw(st.integers(first + 1, rows))
    covered = {
        o * stride - pad + i * dilation
        for o in range(first, stop)
        for i in range(kernel)
    }
    assert window.input_rows(first, stop) == len({r for r in covered if 0 <= r < size})
    every_column = {
        o * stride - pad + i * dilation for o in range(rows) for i in range(kernel)
    }
    assert window.input_columns == len({c for c in every_column if 0 <= c < size})


@settings(max_examples=150, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pad=st.integers(0, 2),
    batch=st.integers(1, 2),
    data=st.data(),
)
def test_a_span_reads_what_its_windows_cover(
    height: int,
    width: int,
    kernel: int,
    stride: int,
    dilation: int,
    pad: int,
    batch: int,
    data: st.DataObject,
) -> None:
    """Any run of output positions (a band split between copies cuts rows
    anywhere) reads at least the feature-map positions its windows cover,
    exactly those when it lies within one output row or covers whole rows
    (the first and last partial rows of a longer run are counted apart, so
    where both reach one input row they may count a column twice)."""
    window = Window(
        (batch, 3, height, width),
        (kernel, kernel),
        (stride, stride),
        (pad, pad, pad, pad),
        (dilation, dilation),
    )
    rows, columns = window.output_hw
    if rows < 1 or columns < 1:
        return
    total = batch * rows * columns
    start = data.draw(st.integers(0, total - 1))
    stop = data.draw(st.integers(start + 1, total))
    covered: set[tuple[int, int, int]] = set()
    for position in range(start, stop):
        sample, rest = divmod(position, rows * columns)
        oh, ow = divmod(rest, columns)
        for i in range(kernel):
            for j in range(kernel):
                r = oh * stride - pad + i * dilation
                c = ow * stride - pad + j * dilation
                if 0 <= r < height and 0 <= c < width:
                    covered.add((sample, r, c))
    counted = window.band_elements((start, stop), [(0, kernel * kernel)])
    assert counted >= len(covered)
    per_sample = rows * columns
    one_row = batch == 1 and start // columns == (stop - 1) // columns
    whole_rows = start % columns == 0 and stop % columns == 0
    if one_row or (whole_rows and start // per_sample == (stop - 1) // per_sample):
        assert counted == len(covered)


@settings(max_examples=100, deadline=None)
@given(
    vectors=st.integers(1, 300),
    steps=st.integers(1, 40),
    copies=st.integers(1, 64),
    target=st.sampled_from(["tiny", "pimcomp_default", "dynaplasia"]),
)
def test_more_copies_never_make_a_banded_mvm_slower(
    vectors: int, steps: int, copies: int, target: str
) -> None:
    """How a pipelined segment runs an MVM's bands on its copies
    (``band_groups``): every copy it uses takes a share, none is idle while
    a band waits, and an extra copy never lengthens the MVM."""
    hw = load_target(target)
    steps = min(steps, vectors)
    per_band = -(-vectors // steps)
    for split in (False, True):
        size, count = band_groups(copies, per_band, split)
        assert 1 <= size * count <= copies
        assert size <= max(1, per_band)
    rows, cols = hw.array.rows, hw.array.cols
    fewer = banded_mvm_cycles(hw, vectors, steps, copies, rows, cols)
    more = banded_mvm_cycles(hw, vectors, steps, copies + 1, rows, cols)
    assert more <= fewer
    if copies >= banded_copies(hw, vectors, steps, rows, cols):
        assert more == fewer


def test_a_streaming_vector_op_takes_as_many_cores_as_fill_the_buffer_port() -> None:
    """On pimcomp_default's mesh the global buffer's port is 8 links wide:
    a pool that moves 57 KB and computes little is as fast on 8 cores as on
    all 136, and slower on 7."""
    mesh = load_target("pimcomp_default")
    assert interconnect_bandwidth(mesh, ((0, 8),)) == 64.0
    assert interconnect_bandwidth(mesh, ((0, 7),)) == 56.0
    assert vector_core_count(mesh, 64512, 57344, 14336, "buffer", "buffer") == 8
    # work with nothing to stream spreads over every core it can use
    assert vector_core_count(mesh, 10**7, 0, 0, "buffer", "buffer") == 136
    # a view (no work, no bytes) needs one
    assert vector_core_count(mesh, 0, 0, 0, "buffer", "buffer") == 1


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["pimcomp_default", "dynaplasia", "tiny", "isaac"]),
    st.integers(0, 1 << 22),
    st.integers(0, 1 << 20),
    st.integers(0, 1 << 20),
    st.sampled_from(["buffer", "dram"]),
)
def test_a_vector_op_takes_the_fewest_cores_that_are_as_fast_as_all(
    name: str, element_ops: int, in_bytes: int, out_bytes: int, level: StreamLevel
) -> None:
    """The cores a vector op of the graph takes compute and stream it as
    fast as every core would (hop latency aside: a window of cores never
    crosses more hops than all of them), and one core fewer would either
    stream at a lower bandwidth or compute longer than the op takes."""
    hw = load_target(name)
    count = vector_core_count(hw, element_ops, in_bytes, out_bytes, level, "buffer")
    every = hw.total_cores
    compute_all, stream_all = vector_op_parts(
        hw, element_ops, ((0, every),), in_bytes, out_bytes, in_from=level
    )
    finish = concurrent_cost(compute_all, stream_all).cycles
    crosses = stream_bytes(level, in_bytes, "buffer", out_bytes).interconnect > 0

    def hop_latency(cores: int) -> int:
        _, hops = interconnect_path(hw, ((0, cores),))
        return hw.interconnect.latency_cycles * hops if crosses else 0

    def cycles(cores: int) -> int:
        """The op's cycles on ``cores`` cores as far from the buffer as all."""
        compute, stream = vector_op_parts(
            hw, element_ops, ((0, cores),), in_bytes, out_bytes, in_from=level
        )
        if stream.cycles:
            stream_cycles = stream.cycles - hop_latency(cores) + hop_latency(every)
            return max(compute.cycles, stream_cycles)
        return compute.cycles

    def enough(cores: int) -> bool:
        bandwidth = interconnect_bandwidth(hw, ((0, cores),))
        full = interconnect_bandwidth(hw, ((0, every),))
        units = cores * hw.vector.units_per_core
        computed = vector_cost(hw, element_ops, units)
        fast = concurrent_cost(computed, stream_all).cycles <= finish
        return fast and (not crosses or bandwidth >= full)

    assert 1 <= count <= every
    assert enough(count) and cycles(count) <= cycles(every)
    if count > 1:
        assert not enough(count - 1)


def test_streamed_chunks_start_where_no_column_spans_two_cores() -> None:
    """dynaplasia: 12 arrays per core; a 1024 x 4096 weight has 4 row tiles
    per column tile. From array 21 a column's row tiles would straddle
    cores 1 and 2 (arrays 21-24); from 24 every column sits in one core.
    With no slack in the free run the chunks stay at its start."""
    hw = load_target("dynaplasia")
    tiling = target_tiling(hw, 1024, 4096, 1)
    chunks = plan_chunks(tiling, 72)
    assert copy_layout(hw, tiling, chunks[0], 21).cross_core
    assert chunk_start(hw, tiling, chunks, 21, 96) == 24
    assert not copy_layout(hw, tiling, chunks[0], 24).cross_core
    assert chunk_start(hw, tiling, chunks, 21, 21 + chunks[0].arrays) == 21


def crossing_from(
    hw: HardwareTarget, tiling: TilingAttr, chunks: list[Chunk], start: int
) -> int:
    return sum(crossing_sums(copy_layout(hw, tiling, c, start).columns) for c in chunks)


def test_streamed_chunks_start_where_the_fewest_sums_cross_cores() -> None:
    """LLaMA-2-7B's down_proj (11008 x 4096) on dynaplasia: 35 row tiles per
    column tile, so every start splits columns between cores. From array
    21 (after a 21-array activations buffer) the two column tiles of a
    chunk span 4 cores each; from 25 they span 3 each, the fewest; and the
    cost models' run from array 0 finds as few."""
    hw = load_target("dynaplasia")
    tiling = target_tiling(hw, 11008, 4096, 1)
    chunks = plan_chunks(tiling, 75)
    largest = max(c.arrays for c in chunks)
    start = chunk_start(hw, tiling, chunks, 21, 96)
    fewest = min(crossing_from(hw, tiling, chunks, s) for s in range(21, 97 - largest))
    assert start == 25
    assert crossing_from(hw, tiling, chunks, start) == fewest
    assert fewest < crossing_from(hw, tiling, chunks, 21)
    model_start = chunk_start(hw, tiling, chunks, 0, 75)
    assert crossing_from(hw, tiling, chunks, model_start) == fewest


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 12_000),
    n=st.integers(1, 2_000),
    first=st.integers(0, 40),
    available=st.integers(1, 56),
)
def test_chunk_start_is_the_best_start_of_the_free_run(
    k: int, n: int, first: int, available: int
) -> None:
    """Trying one core's worth of starts finds the fewest crossing sums of
    every start the free run allows (only a start's place in its core
    matters), and the first start that reaches them."""
    hw = load_target("dynaplasia")
    stop = first + available
    tiling = target_tiling(hw, k, n, 1)
    chunks = plan_chunks(tiling, available)
    largest = max(c.arrays for c in chunks)
    starts = range(first, stop - largest + 1)
    crossings = [crossing_from(hw, tiling, chunks, s) for s in starts]
    start = chunk_start(hw, tiling, chunks, first, stop)
    assert start == starts[crossings.index(min(crossings))]


@given(
    per_vector=st.integers(1, 4096),
    vectors=st.integers(1, 512),
    available=st.integers(0, 1 << 17),
)
def test_partial_sums_go_in_the_fewest_parts_that_fit_the_buffer(
    per_vector: int, vectors: int, available: int
) -> None:
    """One part when the sums fit half the free buffer whole, or when not
    even one vector's do (they wait in DRAM); else every near-equal part
    fits, and one part fewer would leave some part too large."""
    nbytes = per_vector * vectors
    room = available // 2
    count = partial_parts(nbytes, vectors, available)
    if nbytes <= room or per_vector > room:
        assert count == 1
        return
    assert 1 < count <= vectors
    assert max(b - a for a, b in split_span((0, vectors), count)) * per_vector <= room
    fewer = split_span((0, vectors), count - 1)
    assert max(b - a for a, b in fewer) * per_vector > room
