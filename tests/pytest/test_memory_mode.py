"""Memory-mode arrays in the lowering: mode switches, weight prefetch for the
next segment, activations spilled into arrays instead of DRAM, eviction
when a segment takes those arrays back, and a decoder's KV cache kept in
memory-mode arrays for the whole run."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx
import pytest
from functional_models import matmul_relu_chain, one_linear, wide_linear
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Block

from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import (
    FreeOp,
    LoadOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    SwitchOp,
    Trace,
    VectorOp,
    op_arrays,
    parse_trace,
)
from cimflow.cost_model import transfer_cost
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target, target_to_toml
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools import model_builders as mb
from cimflow.tools.cim_opt import main as cim_opt_main
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

Buffer = tuple[int, cim_tile.BufferRole, int, int]
"""(segment, role, arrays, bytes)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Four 24x24 layers on the tiny target (two segments of 6 arrays, two
    arrays free each) whose memory arrays hold 4 KiB each."""
    directory = tmp_path_factory.mktemp("memory")
    path = directory / "mlp.onnx"
    onnx.save(matmul_relu_chain(4, 150), path)
    # Memory-mode arrays of 4 KiB: 512 rows of 32 2-bit cells (an array stores
    # at most its cells); the 24-row weights still take one row tile.
    tiny = load_target("tiny")
    target = dataclasses.replace(
        tiny,
        array=dataclasses.replace(tiny.array, rows=512, active_rows=512),
        dual_mode=dataclasses.replace(tiny.dual_mode, memory_capacity_bytes=4096),
    )
    target_path = directory / "tinymem.toml"
    target_path.write_text(target_to_toml(target), encoding="utf-8")
    return path, str(target_path)


def allocated(path: Path, target: str) -> tuple[Context, ModuleOp, Block]:
    """The model tiled for ``target`` and statically allocated (for
    ``allocate_for``, default ``target``): a context, the module and its
    function body, ready for memory buffers."""
    module = import_onnx(path)
    ctx = Context()
    ConvertGraphToTilePass(target).apply(ctx, module)
    StaticAllocatePass(target).apply(ctx, module)
    function = next(op for op in module.ops if isinstance(op, func.FuncOp))
    return ctx, module, function.body.block


def compile_with_buffers(
    path: Path,
    target: str,
    buffers: Sequence[Buffer],
    segments: Sequence[int] | None = None,
) -> ModuleOp:
    ctx, module, block = allocated(path, target)
    if segments is not None:
        resegment(block, segments)
    for segment, role, arrays, size in buffers:
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(role, arrays, size, segment), block.first_op
        )
    ConvertTileToMetaPass(target).apply(ctx, module)
    module.verify()
    return module


def trace_of(setup: tuple[Path, str], buffers: Sequence[Buffer]) -> Trace:
    path, target = setup
    return module_trace(compile_with_buffers(path, target, buffers), str(path))


WEIGHTS = cim_tile.BufferRole.WEIGHTS
ACTIVATIONS = cim_tile.BufferRole.ACTIVATIONS


def written_to_memory(trace: Trace) -> list[tuple[int, str]]:
    """(segment, tensor) of what ops put into memory-mode arrays: a store
    or load there, or an MVM's or vector op's outputs streamed there."""
    written: list[tuple[int, str]] = []
    for op in trace.ops:
        if isinstance(op, StoreOp | LoadOp) and op.dst == "memory":
            written.append((op.segment, op.tensor))
        elif isinstance(op, MvmOp) and op.out_to == "memory":
            written.append((op.segment, op.output))
        elif isinstance(op, VectorOp) and op.out_to == "memory":
            written += [(op.segment, name) for name in op.outputs]
    return list(dict.fromkeys(written))


def read_from_memory(trace: Trace) -> list[tuple[int, str]]:
    """(segment, tensor) of what ops read from memory-mode arrays: a load
    or store from there, or an MVM's, program's or vector op's stream."""
    activations = {t.name for t in trace.tensors} | {t.name for t in trace.model.inputs}
    read: list[tuple[int, str]] = []
    for op in trace.ops:
        if isinstance(op, StoreOp | LoadOp) and op.src == "memory":
            read.append((op.segment, op.tensor))
        elif isinstance(op, MvmOp) and op.feed == "memory":
            read.append((op.segment, op.input))
        elif isinstance(op, ProgramOp) and op.feed in ("memory", "cells"):
            read.append((op.segment, op.weight))
        elif isinstance(op, VectorOp) and op.in_from == "memory":
            read += [(op.segment, n) for n in op.inputs if n in activations]
    return list(dict.fromkeys(read))


def test_large_activations_spill_into_memory_arrays(setup: tuple[Path, str]) -> None:
    trace = trace_of(setup, [(0, ACTIVATIONS, 2, 8192), (1, ACTIVATIONS, 2, 8192)])
    into = written_to_memory(trace)
    back = read_from_memory(trace)
    assert into and back
    assert {tensor for _, tensor in back} <= {tensor for _, tensor in into}
    assert verify_trace(trace, setup[0], "exact").passed


def resegment(block: Block, segments: Sequence[int]) -> None:
    """Give the i-th MVM (and the vector work after it) segment ``segments[i]``."""
    index = -1
    for op in block.ops:
        if isinstance(op, cim_tile.MVMOp):
            index += 1
            assert op.alloc is not None
            op.alloc = cim_tile.AllocAttr.from_ints(
                segments[index], op.alloc.field("copies"), op.alloc.field("chunks")
            )
        elif isinstance(op, cim_tile.VectorOp) and index >= 0:
            op.segment = IntegerAttr(segments[index], i64)


def staged_trace(
    setup: tuple[Path, str], segments: Sequence[int], buffers: Sequence[Buffer]
) -> Trace:
    """The trace with the i-th MVM in segment ``segments[i]`` and
    ``buffers``."""
    path, target = setup
    module = compile_with_buffers(path, target, buffers, segments)
    return module_trace(module, str(path))


def in_place_programs(
    trace: Trace,
) -> list[tuple[int, str, tuple[tuple[int, int], ...]]]:
    return [
        (op.segment, op.weight, op.arrays)
        for op in trace.ops
        if isinstance(op, ProgramOp) and op.feed == "cells"
    ]


def test_next_segment_weights_are_staged_in_place(setup: tuple[Path, str]) -> None:
    """Layer 0 alone in segment 0 (arrays 0-2) stages w1 in its weights
    buffer, at the top (arrays 5-7: each weight takes its copy's 3 whole
    arrays, so w2 does not fit the 5); segment 1 is laid out from the top
    down, w1 first, which switches to compute mode where it is."""
    trace = staged_trace(setup, [0, 1, 1, 2], [(0, WEIGHTS, 5, 5 * 4096)])
    switches = [
        (s.segment, s.to, s.arrays) for s in trace.ops if isinstance(s, SwitchOp)
    ]
    assert switches == [(0, "memory", ((3, 8),)), (1, "compute", ((3, 5),))]
    assert written_to_memory(trace) == [(0, "w1")]
    assert in_place_programs(trace) == [(1, "w1", ((5, 8),))]
    programs = {
        op.weight: (op.feed, op.arrays)
        for op in trace.ops
        if isinstance(op, ProgramOp) and op.segment == 1
    }
    assert programs["w2"] == ("dram", ((2, 5),))
    assert verify_trace(trace, setup[0], "exact").passed


def test_segments_alternate_ends_to_stage_in_place(setup: tuple[Path, str]) -> None:
    """One layer per segment, each staging the next in a weights buffer at
    its far end: the segments are laid out from alternate ends, and every
    weight after the first switches in place."""
    buffers = [(s, WEIGHTS, 5, 5 * 4096) for s in range(3)]
    trace = staged_trace(setup, [0, 1, 2, 3], buffers)
    assert in_place_programs(trace) == [
        (1, "w1", ((5, 8),)),
        (2, "w2", ((0, 3),)),
        (3, "w3", ((5, 8),)),
    ]
    assert verify_trace(trace, setup[0], "exact").passed


def test_spills_leave_arrays_a_later_segment_takes_back(
    setup: tuple[Path, str],
) -> None:
    """Layer 0 alone in segment 0 spills its relu (layer 1's input) into its
    2 activation arrays; when segment 1 takes them back, the relu is evicted
    to DRAM and freed before the switch (layer 0's product streams straight into the
    relu and never lands there)."""
    path, target = setup
    ctx, module, block = allocated(path, target)
    resegment(block, [0, 1, 1, 2])
    assert block.first_op is not None
    block.insert_op_before(
        cim_tile.MemoryBufferOp(ACTIVATIONS, 2, 8192, 0), block.first_op
    )
    ConvertTileToMetaPass(target).apply(ctx, module)
    trace = module_trace(module, str(path))
    evictions = [
        op
        for op in trace.ops
        if isinstance(op, StoreOp) and op.src == "memory" and op.dst == "dram"
    ]
    # the tile-level names: "t" is layer 0's product, "t.1" its relu
    assert written_to_memory(trace) == [(0, "t.1")]
    assert [(op.tensor, op.segment) for op in evictions] == [("t.1", 1)]
    (switch_back,) = [
        op for op in trace.ops if isinstance(op, SwitchOp) and op.to == "compute"
    ]
    assert any(
        isinstance(op, FreeOp) and evictions[0].id in op.deps
        for op in trace.ops
        if op.id in switch_back.deps
    )
    assert verify_trace(trace, path, "exact").passed


def test_a_smaller_buffer_waits_for_the_evictions(setup: tuple[Path, str]) -> None:
    """Segment 0's activations buffer is 3 arrays, segment 1's the first 2
    of them: they stay in memory mode (no switch), but the relu segment 0
    left there is evicted to DRAM, and whatever segment 1 puts into the
    arrays is allocated only after that eviction has freed them."""
    path, target = setup
    ctx, module, block = allocated(path, target)
    resegment(block, [0, 1, 2, 2])
    for segment, arrays in ((0, 3), (1, 2)):
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(ACTIVATIONS, arrays, 4096 * arrays, segment),
            block.first_op,
        )
    ConvertTileToMetaPass(target).apply(ctx, module)
    trace = module_trace(module, str(path))
    assert not [op for op in trace.ops if isinstance(op, SwitchOp) and op.segment == 1]
    (eviction,) = [
        op
        for op in trace.ops
        if isinstance(op, FreeOp)
        and any(p.tensor == "t.1" and p.level == "memory" for p in op.frees)
    ]
    placed = [
        op
        for op in trace.ops
        if op.segment == 1 and any(a.level == "memory" for a in op.allocs)
    ]
    assert placed
    deps = {op.id: op.deps for op in trace.ops}
    for op in placed:
        before: set[int] = set()
        stack = list(op.deps)
        while stack:
            dep = stack.pop()
            if dep not in before:
                before.add(dep)
                stack.extend(deps[dep])
        assert eviction.id in before, op
    assert verify_trace(trace, path, "exact").passed


def test_a_kept_buffer_counts_what_it_still_holds(setup: tuple[Path, str]) -> None:
    """One layer per segment, each with the same 2 activation arrays (8 KiB):
    every relu output (3600 B) goes into them and the next segment, which
    keeps the buffer, reads it back from there; the model's output is then
    stored to DRAM. What the arrays hold never exceeds their capacity (the
    simulator checks every allocation)."""
    path, target = setup
    ctx, module, block = allocated(path, target)
    resegment(block, [0, 1, 2, 3])
    for segment in range(4):
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(ACTIVATIONS, 2, 8192, segment), block.first_op
        )
    ConvertTileToMetaPass(target).apply(ctx, module)
    trace = module_trace(module, str(path))
    assert written_to_memory(trace) == [(0, "t.1"), (1, "t.3"), (2, "t.5"), (3, "r3")]
    assert read_from_memory(trace) == [(1, "t.1"), (2, "t.3"), (3, "t.5"), (3, "r3")]
    assert not [
        op for op in trace.ops if isinstance(op, SwitchOp) and op.to == "compute"
    ]
    (peak,) = [p for p in simulate(trace).stats.peak_occupancy if p.level == "memory"]
    assert 3600 // 2 <= peak.nbytes <= peak.capacity
    assert verify_trace(trace, path, "exact").passed


def test_prefetch_yields_the_dram_to_its_segment(setup: tuple[Path, str]) -> None:
    """The prefetch of segment 1's weights is emitted after segment 0's own
    work, so at equal readiness the DRAM serves segment 0 first."""
    trace = staged_trace(setup, [0, 1, 1, 2], [(0, WEIGHTS, 5, 5 * 4096)])
    prefetches = [
        op.id for op in trace.ops if isinstance(op, LoadOp) and op.dst == "memory"
    ]
    own = [
        op.id
        for op in trace.ops
        if op.segment == 0 and not (isinstance(op, LoadOp) and op.dst == "memory")
    ]
    assert prefetches and min(prefetches) > max(own)


def test_buffers_beyond_the_switchable_arrays_are_refused(
    setup: tuple[Path, str],
) -> None:
    path, target = setup
    with pytest.raises(CimError, match=r"segment 0 needs 9 arrays .* 'tiny' has 8"):
        compile_with_buffers(path, target, [(0, WEIGHTS, 3, 4096)])
    with pytest.raises(CimError, match=r"needs arrays up to 9 .* can switch 8"):
        compile_with_buffers(path, target, [(0, ACTIVATIONS, 3, 4096)])


# --------------------------------------------------------------------------
# A decoder's KV cache kept in memory-mode arrays (kv_cache buffers)
# --------------------------------------------------------------------------

KV_CACHE = cim_tile.BufferRole.KV_CACHE
KV_INPUTS = tuple(
    f"past_key_values.{layer}.{kind}" for layer in range(2) for kind in ("key", "value")
)
"""The tiny GPT-2's past keys and values, in input order."""
KV_BYTES = 256
"""Bytes of each: [1, 2 heads, 8 positions, 16] one-byte activations, one
256-byte memory-mode array of tiny."""

KvBuffer = tuple[int, int, int, tuple[str, ...]]
"""(arrays, bytes, segment, holds) of a kv_cache buffer."""


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny GPT-2's decode step (one token against 8 cached positions,
    2 layers) and a directory for targets."""
    directory = tmp_path_factory.mktemp("decoder")
    path = directory / "gpt2_decode.onnx"
    model = mb.gpt2_tiny(weights="random", phase="decode", batch=1, sequence=8)
    onnx.save(model, path)
    return path, directory


def kv_cache(
    arrays: int, holds: Sequence[str] = KV_INPUTS, size: int | None = None
) -> KvBuffer:
    """A kv_cache buffer of ``arrays`` arrays (bytes: all they hold)."""
    return arrays, size or arrays * KV_BYTES, 0, tuple(holds)


def decoder_module(
    decoder: tuple[Path, Path],
    kv_buffers: Sequence[KvBuffer],
    buffers: Sequence[Buffer] = (),
    keep_kv_cache: bool = True,
    target: str = "tiny",
) -> tuple[Context, ModuleOp]:
    """The decode step tiled for ``target`` and allocated statically beside
    the KV cache's arrays, with the buffers inserted (not lowered yet);
    without ``keep_kv_cache``, the same segments with the arrays reserved
    but the cache left in DRAM."""
    module = import_onnx(decoder[0])
    ctx = Context()
    ConvertGraphToTilePass(target).apply(ctx, module)
    function = next(op for op in module.ops if isinstance(op, func.FuncOp))
    block = function.body.block
    kv_ops = [cim_tile.MemoryBufferOp(KV_CACHE, *spec) for spec in kv_buffers]
    for op in kv_ops:
        assert block.first_op is not None
        block.insert_op_before(op, block.first_op)
    StaticAllocatePass().apply(ctx, module)
    if not keep_kv_cache:
        for op in kv_ops:
            op.properties["holds"] = ArrayAttr[StringAttr]([])
    for segment, role, arrays, size in buffers:
        assert block.first_op is not None
        block.insert_op_before(
            cim_tile.MemoryBufferOp(role, arrays, size, segment), block.first_op
        )
    return ctx, module


def lowered_decoder(
    decoder: tuple[Path, Path],
    kv_buffers: Sequence[KvBuffer],
    buffers: Sequence[Buffer] = (),
    keep_kv_cache: bool = True,
) -> ModuleOp:
    """:func:`decoder_module` lowered."""
    ctx, module = decoder_module(decoder, kv_buffers, buffers, keep_kv_cache)
    ConvertTileToMetaPass().apply(ctx, module)
    module.verify()
    return module


def held_loads(trace: Trace, names: Sequence[str]) -> list[LoadOp]:
    """The loads of tensors ``names``."""
    return [op for op in trace.ops if isinstance(op, LoadOp) and op.tensor in names]


def test_a_decoders_kv_cache_stays_in_memory_mode_arrays(
    decoder: tuple[Path, Path],
) -> None:
    """The decode step holds its 4 past keys and values in arrays 0-3 of
    tiny (one each) while its segments, allocated for the 4 arrays left, run
    on arrays 4-7. Each layer's concat reads them memory -> buffer: the
    trace says they start there, nothing switches, the result
    matches onnxruntime, and the simulated run reads exactly the cache's
    1024 bytes less from DRAM than the same schedule with the cache in DRAM
    (measured: 28609 against 29633 bytes, 5971 against 6455 cycles)."""
    path, _ = decoder
    module = lowered_decoder(decoder, [kv_cache(4)])
    document = build_trace(module)
    assert document["version"] == 5
    trace = parse_trace(document, str(path))
    starts = {spec.name: spec.arrays for spec in trace.model.inputs}
    assert starts == {
        "input_ids": (),
        **{name: ((i, i + 1),) for i, name in enumerate(KV_INPUTS)},
    }
    loads = held_loads(trace, KV_INPUTS)
    assert [(op.tensor, op.src, op.dst, op.arrays) for op in loads] == [
        (name, "memory", "buffer", starts[name]) for name in KV_INPUTS
    ]
    assert not any(isinstance(op, SwitchOp) for op in trace.ops)
    assert verify_trace(trace, path, "exact").passed

    kept = simulate(trace)
    in_dram = simulate(
        module_trace(
            lowered_decoder(decoder, [kv_cache(4)], keep_kv_cache=False), str(path)
        )
    )
    assert kept.stats.dram_bytes_read == in_dram.stats.dram_bytes_read - 4 * KV_BYTES
    assert kept.stats.memory_bytes_read == 4 * KV_BYTES
    read_out = transfer_cost(trace.target, "memory", "buffer", KV_BYTES, 1)
    assert all(kept.costs[op.id] == read_out for op in loads)
    assert kept.makespan < in_dram.makespan


def test_segments_start_after_the_kv_arrays_and_never_switch_them(
    decoder: tuple[Path, Path],
) -> None:
    """Layer 0's cache in arrays 0-1 (layer 1's stays in DRAM); everything
    else from array 2 on: streamed weights in chunks over arrays 2-7,
    segment 1's resident c_proj on 2-5 and its activations buffer right
    after (6-7), the only arrays switched to memory and back."""
    path, _ = decoder
    module = lowered_decoder(
        decoder,
        [kv_cache(2, KV_INPUTS[:2])],
        [(1, ACTIVATIONS, 2, 512)],
    )
    trace = module_trace(module, str(path))
    kv = 2
    assert [spec.arrays for spec in trace.model.inputs] == [
        (),
        ((0, 1),),
        ((1, 2),),
        (),
        (),
    ]
    switches = [(op.to, op.arrays) for op in trace.ops if isinstance(op, SwitchOp)]
    assert switches == [("memory", ((6, 8),)), ("compute", ((6, 8),))]
    cached = held_loads(trace, KV_INPUTS[:2])
    assert cached and all(op.src == "memory" for op in cached)
    for op in trace.ops:
        if op not in cached:
            assert all(first >= kv for first, _ in op_arrays(op)), op
    programs = {op.arrays for op in trace.ops if isinstance(op, ProgramOp)}
    assert ((2, 6),) in programs  # c_proj, resident
    # the streamed chunks, programmed in parts that pass the global buffer
    assert all(
        kv <= first and stop <= 8 for arrays in programs for first, stop in arrays
    )
    in_dram = held_loads(trace, KV_INPUTS[2:])
    assert in_dram and all(op.src == "dram" for op in in_dram)
    assert verify_trace(trace, path, "exact").passed


@pytest.mark.parametrize(
    ("kv_buffers", "message"),
    [
        (
            [kv_cache(4, size=1000)],
            "kv_cache memory buffer cannot hold 'past_key_values.1.value': its 4 "
            "tensors take 1024 bytes, more than its 1000 (min(bytes 1000, 4 arrays "
            "x 256 B))",
        ),
        (
            [kv_cache(3)],
            "kv_cache memory buffer cannot hold 'past_key_values.1.value': its 4 "
            "tensors take 1024 bytes, more than its 768 (min(bytes 768, 3 arrays x "
            "256 B))",
        ),
        (
            [kv_cache(9)],
            "kv_cache memory buffer takes 9 arrays but target 'tiny' can switch 8 "
            "to memory mode",
        ),
        (
            [kv_cache(4, (*KV_INPUTS[:3], "present.1.value"))],
            "kv_cache memory buffer holds 'present.1.value', which is not a model "
            "input (a function argument)",
        ),
        (
            [kv_cache(2, KV_INPUTS[:2]), kv_cache(2, KV_INPUTS[2:])],
            "the function declares 2 kv_cache memory buffers; one holds the whole "
            "KV cache",
        ),
        (
            [(4, 1024, 1, KV_INPUTS)],
            "kv_cache memory buffer has segment 1; it holds the KV cache for the "
            "whole run and is declared with segment 0",
        ),
        (
            [kv_cache(4, ("past_key_values.0.key", "past_key_values_0_key"))],
            "kv_cache memory buffer holds 'past_key_values_0_key' twice",
        ),
    ],
)
def test_kv_cache_errors_are_one_line(
    decoder: tuple[Path, Path],
    kv_buffers: Sequence[KvBuffer],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each in the pass (a CimError) and from cim-opt (exit 1, one line)."""
    ctx, module = decoder_module(decoder, kv_buffers)
    source = tmp_path / "decode.mlir"
    source.write_text(str(module), encoding="utf-8")
    with pytest.raises(CimError) as error:
        ConvertTileToMetaPass().apply(ctx, module)
    assert str(error.value) == message
    code = cim_opt_main([str(source), "-p", "convert-tile-to-meta{target=tiny}"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.splitlines() == [f"cim-opt: error: {message}"]


def test_each_held_tensor_takes_arrays_of_its_own(
    decoder: tuple[Path, Path], setup: tuple[Path, str]
) -> None:
    """On arrays of 4 KiB, 2 arrays hold the cache's 1024 bytes, but a trace
    input starts in arrays no other input uses: 4 tensors need 4."""
    ctx, module = decoder_module(decoder, [kv_cache(2, size=8192)], target=setup[1])
    with pytest.raises(CimError) as error:
        ConvertTileToMetaPass().apply(ctx, module)
    assert str(error.value) == (
        "kv_cache memory buffer has 2 arrays, fewer than its 4 tensors need with "
        "arrays of their own (4096 B each)"
    )


def kv_document(decoder: tuple[Path, Path]) -> dict[str, Any]:
    """The trace of the decode step with its whole cache in arrays 0-3."""
    return build_trace(lowered_decoder(decoder, [kv_cache(4)]))


def switch_first(document: dict[str, Any]) -> str:
    """Op 0 (segment 0's barrier) switches array 0 to compute instead."""
    document["ops"][0] |= {"kind": "switch", "arrays": [[0, 1]], "to": "compute"}
    return "uses array 0 in memory mode, but it is in compute mode"


def read_elsewhere(document: dict[str, Any]) -> str:
    """The first cache load names the arrays of the next tensor."""
    load = first_kv_load(document)
    load["arrays"] = [[1, 2]]
    return "reads 'past_key_values.0.key' from memory-mode arrays that do not hold it"


def read_from_dram(document: dict[str, Any]) -> str:
    """The first cache load reads DRAM, where the cache never is."""
    load = first_kv_load(document)
    load |= {"src": "dram", "arrays": []}
    return "reads 'past_key_values.0.key' from dram, but it is in memory arrays"


def first_kv_load(document: dict[str, Any]) -> dict[str, Any]:
    """The first op of the document that reads the first cached tensor."""
    ops: list[dict[str, Any]] = document["ops"]
    return next(op for op in ops if op.get("tensor") == KV_INPUTS[0])


@pytest.mark.parametrize("misuse", [switch_first, read_elsewhere, read_from_dram])
def test_misused_kv_arrays_are_refused(
    decoder: tuple[Path, Path], misuse: Callable[[dict[str, Any]], str]
) -> None:
    """Misuse of the arrays is refused when the trace is read (cim-sim's
    check of its meaning); a read of a tensor from where it is not, by the
    functional executor, which tracks data."""
    document = kv_document(decoder)
    message = misuse(document)
    load = first_kv_load(document)
    try:
        trace = parse_trace(document)
    except CimError as refused:
        error: str | None = str(refused)
    else:
        error = verify_trace(trace, decoder[0], "exact").mode("exact").error
    assert error is not None
    assert f"op {load['id']} (load" in error and error.endswith(message), error


# --- a chunks buffer double-buffers a streamed weight ------------------------


def streamed_with_chunk_buffer(
    path: Path, arrays: int
) -> tuple[ModuleOp, cim_tile.MVMOp]:
    """``wide_linear`` statically allocated on tiny, its streamed weight given
    a ``chunks`` buffer of ``arrays`` arrays (chunks re-cut for the rest)."""
    module = compile_model(path, "tiny", "convert-graph-to-tile,cim-static-allocate")
    hw = load_target("tiny")
    function = next(op for op in module.walk() if isinstance(op, func.FuncOp))
    streamed = next(
        op
        for op in function.walk()
        if isinstance(op, cim_tile.MVMOp)
        and op.alloc is not None
        and op.alloc.field("chunks") > 1
    )
    assert streamed.alloc is not None
    segment = streamed.alloc.field("segment")
    chunks = len(plan_chunks(streamed.tiling, hw.total_arrays - arrays))
    streamed.alloc = cim_tile.AllocAttr.from_ints(segment, 1, chunks)
    capacity = arrays * hw.dual_mode.memory_capacity_bytes
    function.body.block.insert_op_before(
        cim_tile.MemoryBufferOp(cim_tile.BufferRole.CHUNKS, arrays, capacity, segment),
        streamed,
    )
    return module, streamed


def test_a_chunks_buffer_prefetches_the_next_chunks(tmp_path: Path) -> None:
    """With a chunks buffer of two halves of 2 arrays, every chunk after the
    first that fits a half is loaded from DRAM into the halves in turn while
    the chunk before programs and computes, programmed from its half, and
    the result is still what onnxruntime computes."""
    path = tmp_path / "wide.onnx"
    onnx.save(wide_linear(), path)
    module, streamed = streamed_with_chunk_buffer(path, 4)
    weight = streamed.weight.data
    ConvertTileToMetaPass("tiny").apply(Context(), module)
    trace = module_trace(module)
    prefetches = [
        op
        for op in trace.ops
        if isinstance(op, LoadOp) and op.tensor == weight and op.dst == "memory"
    ]
    readouts = [
        op
        for op in trace.ops
        if isinstance(op, ProgramOp) and op.weight == weight and op.feed == "memory"
    ]
    assert prefetches and len(readouts) == len(prefetches)
    halves = [op.arrays for op in prefetches]
    assert len(set(halves)) == 2  # two halves, used in turn
    assert all(a != b for a, b in itertools.pairwise(halves))
    assert all(sum(stop - start for start, stop in half) == 2 for half in halves)
    by_id = {op.id: op for op in trace.ops}
    for readout in readouts:  # each program from a half waits for its prefetch
        assert any(
            dep in prefetches
            and isinstance(dep, LoadOp)
            and dep.arrays == readout.feed_arrays
            for dep in (by_id[d] for d in readout.deps)
        )
    assert any(isinstance(op, SwitchOp) and op.to == "memory" for op in trace.ops)
    report = verify_trace(trace, path, "exact")
    assert report.passed, report.format()


def test_a_chunks_buffer_needs_two_halves(tmp_path: Path) -> None:
    path = tmp_path / "wide.onnx"
    onnx.save(wide_linear(), path)
    module, _ = streamed_with_chunk_buffer(path, 1)
    with pytest.raises(CimError, match="chunks buffer has 1 arrays; it needs two"):
        ConvertTileToMetaPass("tiny").apply(Context(), module)


FILECHECK_INPUTS = Path(__file__).parents[1] / "filecheck" / "passes" / "Inputs"
SLOW_DRAM_TINY = FILECHECK_INPUTS / "tiny_slow_dram.toml"
"""tiny with DRAM at 1 B/cycle: the filecheck tests' target, used here too."""


def test_the_slow_dram_target_is_tiny_but_for_its_dram() -> None:
    tiny, slow = load_target("tiny"), load_target(str(SLOW_DRAM_TINY))
    assert slow.dram == dataclasses.replace(tiny.dram, bandwidth_bytes_per_cycle=1.0)
    assert dataclasses.replace(slow, target=tiny.target, dram=tiny.dram) == tiny


def stream_input_model(directory: Path) -> Path:
    """``y = x @ w``: x [8, 32] (256 B, a model input, so in DRAM), w [32,
    256] (32 arrays of tiny: it streams)."""
    path = directory / "stream_input.onnx"
    onnx.save(one_linear(8, 32, 256), path)
    return path


def staged_loads(trace: Trace) -> list[LoadOp]:
    return [op for op in trace.ops if isinstance(op, LoadOp) and op.dst == "memory"]


def test_a_streamed_weights_input_waits_in_an_inputs_buffer(tmp_path: Path) -> None:
    """With DRAM at 1 B/cycle, cmswitch keeps the input x in one memory-mode
    array while w streams through the other 7 (cim-allocate.mlir's INPUTS
    case): x is loaded from DRAM once, every chunk's MVM streams it from
    that array, a free releases it after the last, the run computes the
    model exactly, and it is faster than static's, whose 4 chunks each
    read x from DRAM again."""
    path = stream_input_model(tmp_path)
    target = str(SLOW_DRAM_TINY)
    pipeline = "cim-compile{strategy=%s}"
    trace = module_trace(compile_model(path, target, pipeline % "cmswitch"), str(path))
    (load,) = staged_loads(trace)
    assert (load.tensor, load.src, load.nbytes) == ("x", "dram", 256)
    mvms = [op for op in trace.ops if isinstance(op, MvmOp)]
    assert len(mvms) == 5
    assert all(op.feed == "memory" and op.feed_arrays == load.arrays for op in mvms)
    assert all(load.id in op.deps for op in mvms)
    assert not set(op_arrays(load)) & {a for op in mvms for a in op_arrays(op)}
    (free,) = [
        op
        for op in trace.ops
        if isinstance(op, FreeOp) and any(p.tensor == "x" for p in op.frees)
    ]
    assert {op.id for op in mvms} <= set(free.deps)
    report = verify_trace(trace, path, "exact")
    assert report.passed, report.format()
    static = module_trace(compile_model(path, target, pipeline % "static"), str(path))
    assert not staged_loads(static)
    assert simulate(trace).makespan < simulate(static).makespan


def test_a_fast_dram_leaves_the_input_there(tmp_path: Path) -> None:
    """At tiny's own 8 B/cycle the fifth chunk an inputs buffer costs is
    dearer than the reads it saves: every chunk reads x from DRAM."""
    path = stream_input_model(tmp_path)
    module = compile_model(path, "tiny", "cim-compile{strategy=cmswitch}")
    trace = module_trace(module, str(path))
    assert not staged_loads(trace)
    mvms = [op for op in trace.ops if isinstance(op, MvmOp)]
    assert len(mvms) == 4 and {op.feed for op in mvms} == {"dram"}
