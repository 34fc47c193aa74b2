"""One MVM compiled and simulated, every cycle derived by hand.

The model is ``y = x @ W`` with ``x: [1, 256]`` and ``W: [256, 256]``
(``cim_graph.linear``, no bias) on a target with 16 arrays of 128 x 128
cells, derived from dynaplasia. The expected schedule is worked out below
from the lowering in ``passes/convert_tile_to_meta.py`` and the formulas in
``cimflow/cost_model.py``; the simulated makespan must equal it exactly.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func
from xdsl.parser import Parser

from cimflow.cimdialect.cim_graph import CIMGraph
from cimflow.cimdialect.cim_meta import CIMMeta
from cimflow.cimdialect.cim_tile import CIMTile
from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.trace import Trace, dump_trace, parse_trace
from cimflow.hw_targets import HardwareTarget, load_target, target_to_toml
from cimflow.passes.pipelines import CompileStaticPass
from cimflow.passes.trace_target import build_trace

MODEL = """
builtin.module {
  func.func @main(%x: tensor<1x256xf32>) -> tensor<1x256xf32> {
    %w = cim_graph.weight "w" : tensor<256x256xf32>
    %y = cim_graph.linear %x, %w
         : (tensor<1x256xf32>, tensor<256x256xf32>) -> tensor<1x256xf32>
    func.return %y : tensor<1x256xf32>
  }
}
"""


def hand_target() -> HardwareTarget:
    """dynaplasia with 1 chip x 2 cores x 8 arrays of 128 x 128, 2-bit cells
    and round-number transfer rates."""
    base = load_target("dynaplasia")
    return dataclasses.replace(
        base,
        target=dataclasses.replace(base.target, name="hand128"),
        hierarchy=dataclasses.replace(
            base.hierarchy, chips=1, cores_per_chip=2, arrays_per_core=8
        ),
        array=dataclasses.replace(
            base.array,
            rows=128,
            cols=128,
            active_rows=128,
            cell_bits=2,
            dac_bits=1,
            mvm_latency_cycles=10,
            mvm_issue_interval_cycles=8,
            program_cycles_per_row=1,
        ),
        precision=dataclasses.replace(
            base.precision, weight_bits=8, activation_bits=8, accumulator_bits=32
        ),
        dual_mode=dataclasses.replace(
            base.dual_mode, switchable_arrays=16, memory_capacity_bytes=4096
        ),
        buffers=dataclasses.replace(
            base.buffers, global_bytes=81920, global_bandwidth_bytes_per_cycle=32.0
        ),
        interconnect=dataclasses.replace(
            base.interconnect, bandwidth_bytes_per_cycle=32.0, latency_cycles=2
        ),
        dram=dataclasses.replace(
            base.dram, bandwidth_bytes_per_cycle=16.0, latency_cycles=100
        ),
        vector=dataclasses.replace(
            base.vector, units_per_core=1, lanes=32, latency_cycles=4
        ),
    )


@pytest.fixture
def target_path(tmp_path: Path) -> str:
    path = tmp_path / "hand128.toml"
    path.write_text(target_to_toml(hand_target()), encoding="utf-8")
    return str(path)


def compile_to_trace(target: str) -> dict[str, object]:
    """The model through cim-compile-static, as a trace document."""
    ctx = Context()
    for dialect in (Builtin, Func, CIMGraph, CIMTile, CIMMeta):
        ctx.load_dialect(dialect)
    module = Parser(ctx, MODEL).parse_module()
    CompileStaticPass(target).apply(ctx, module)
    module.verify()
    return build_trace(module)


def compile_and_simulate(target: str) -> tuple[Trace, SimResult]:
    trace = parse_trace(json.loads(dump_trace(compile_to_trace(target))), "<hand>")
    return trace, simulate(trace)


# --- the derivation --------------------------------------------------------
#
# Target: 2 cores x 8 arrays = 16 arrays of 128 x 128; bit_slices =
# ceil(8 / 2) = 4, so an array holds 128 / 4 = 32 outputs. activation and
# weight bytes = 1, accumulator bytes = 4. Vector units: 2 cores x 1 = 2, of
# 32 lanes each.
#
# Tiling (convert-graph-to-tile): k = 256, n = 256: row_tiles = ceil(256 /
# 128) = 2, col_tiles = ceil(256 / 32) = 8, 16 arrays: one copy fits the chip
# exactly, so cim-static-allocate gives segment 0, copies 1, chunks 1.
#
# Lowering (convert-tile-to-meta), ops in id order:
#   0 barrier   segment 0, no deps.
#   1 load      "w" DRAM -> buffer, 256 * 256 * 1 = 65536 bytes, after 0.
#   2 program   "w" arrays [0, 16), rows min(256, 128) = 128, cols
#               min(256, 32) * 4 = 128, after 1.
#   3 load      "input0" (model inputs start in DRAM) 256 bytes, after 0.
#   4 move      "input0" 256 bytes in to the cores of arrays [0, 16): [0, 2),
#               after 3.
#   5 mvm       arrays [0, 16), 1 vector, rows 128, cols 128, after 2 and 4.
#   6 move      "y" out from cores [0, 2): 2 row tiles, so each of the 256
#               outputs travels as two 4-byte partial sums: 256 * 2 * 4 =
#               2048 bytes, after 5.
#   7 vector    "accumulate": 256 * (2 - 1) = 256 lane operations on the
#               units of every core [0, 2), nothing streamed, after 6.
#   8 store     "y" buffer -> DRAM, 256 bytes, after 7.
#
# Costs (cost_model.py):
#   transfer = max(link(src), link(dst)); link(dram) = latency + ceil(bytes /
#   dram_bw); link(buffer) = ceil(bytes / buffer_bw)
#   1 load w:     max(100 + 65536 / 16 = 4196, 65536 / 32 = 2048) = 4196
#   2 program:    rows * program_cycles_per_row = 128 * 1 = 128
#   3 load x:     max(100 + 256 / 16 = 116, 256 / 32 = 8) = 116
#   4 move x:     a bus: latency + ceil(256 / min(32, 32)) = 2 + 8 = 10
#   5 mvm:        passes = ceil(128 / 128) = 1; 1 * (10 + (1 - 1) * 8) = 10
#   6 move y:     2 + ceil(2048 / 32) = 66
#   7 accumulate: vector latency + ceil(256 / (32 lanes * 1 unit * 2 cores))
#                 = 4 + 4 = 8
#   8 store y:    max(100 + 256 / 16 = 116, 8) = 116
#
# Schedule (deps, then resources; ready ops start in id order):
#   0 barrier     [0, 0]
#   1 load w      [0, 4196]     takes the DRAM channel first (lower id)
#   3 load x      [4196, 4312]  ready at 0 but waits for the DRAM channel
#   2 program     [4196, 4324]  after load w, in parallel with load x
#   4 move x      [4312, 4322]
#   5 mvm         [4324, 4334]  waits for the program (4324 > 4322)
#   6 move y      [4334, 4400]
#   7 accumulate  [4400, 4408]
#   8 store y     [4408, 4524]
# Critical path: barrier -> load w -> program -> mvm -> move y -> accumulate
# -> store: 0 + 4196 + 128 + 10 + 66 + 8 + 116 = 4524 cycles.

EXPECTED_KINDS = [
    "barrier",
    "load",
    "program",
    "load",
    "move",
    "mvm",
    "move",
    "vector",
    "store",
]
EXPECTED_DEPS = [(), (0,), (1,), (0,), (3,), (2, 4), (5,), (6,), (7,)]
EXPECTED_CYCLES = [0, 4196, 128, 116, 10, 10, 66, 8, 116]
EXPECTED_START = [0, 0, 4196, 4196, 4312, 4324, 4334, 4400, 4408]
EXPECTED_FINISH = [0, 4196, 4324, 4312, 4322, 4334, 4400, 4408, 4524]
MAKESPAN = 4524


def test_target_file_round_trips(target_path: str) -> None:
    hw = load_target(target_path)
    assert hw == hand_target()
    assert (hw.total_arrays, hw.bit_slices, hw.total_cores) == (16, 4, 2)


def test_hand_computed_makespan(target_path: str) -> None:
    trace, result = compile_and_simulate(target_path)
    assert [op.kind for op in trace.ops] == EXPECTED_KINDS
    assert [op.deps for op in trace.ops] == EXPECTED_DEPS
    assert [cost.cycles for cost in result.costs] == EXPECTED_CYCLES
    assert list(result.start) == EXPECTED_START
    assert list(result.finish) == EXPECTED_FINISH
    assert result.makespan == MAKESPAN
    # the critical path, summed
    critical = [0, 1, 2, 5, 6, 7, 8]
    assert sum(EXPECTED_CYCLES[i] for i in critical) == MAKESPAN


def test_hand_computed_op_fields(target_path: str) -> None:
    """The numbers the derivation reads off each op."""
    trace, _ = compile_and_simulate(target_path)
    document = json.loads(dump_trace(compile_to_trace(target_path)))
    ops = document["ops"]
    assert (ops[1]["tensor"], ops[1]["bytes"], ops[1]["src"], ops[1]["dst"]) == (
        "w",
        65536,
        "dram",
        "buffer",
    )
    assert (ops[2]["arrays"], ops[2]["rows"], ops[2]["cols"]) == ([[0, 16]], 128, 128)
    assert (ops[2]["k"], ops[2]["n"]) == ([0, 256], [0, 256])
    assert (ops[3]["tensor"], ops[3]["bytes"]) == ("input0", 256)
    assert (ops[4]["tensor"], ops[4]["bytes"]) == ("input0", 256)
    assert (ops[4]["dir"], ops[4]["cores"]) == ("in", [[0, 2]])
    assert (ops[5]["feed"], ops[5]["in_bytes"], ops[5]["out_bytes"]) == ("local", 0, 0)
    assert (ops[5]["arrays"], ops[5]["vectors"], ops[5]["v"]) == ([[0, 16]], 1, [0, 1])
    assert (ops[6]["tensor"], ops[6]["bytes"]) == ("y", 2048)
    assert (ops[6]["dir"], ops[6]["cores"]) == ("out", [[0, 2]])
    assert (ops[7]["op"], ops[7]["element_ops"], ops[7]["cores"]) == (
        "accumulate",
        256,
        [[0, 2]],
    )
    assert (ops[7]["in_bytes"], ops[7]["out_bytes"]) == (0, 0)
    assert (ops[8]["tensor"], ops[8]["bytes"], ops[8]["dst"]) == ("y", 256, "dram")
    assert all(op.segment == 0 for op in trace.ops)
    assert trace.model.batch == 1
