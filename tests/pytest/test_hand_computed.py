"""One MVM compiled and simulated, every cycle derived by hand.

The model is ``y = x @ W`` with ``x: [1, 256]`` and ``W: [256, 256]``
(``cim_graph.linear``, no bias) on a target with 16 arrays of 128 x 128
cells, derived from dynaplasia. The expected schedule is worked out below
from the lowering in ``cimflow/lowering/builder.py`` and the formulas in
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
# Lowering (convert-tile-to-meta, cimflow/lowering/builder.py), ops in id
# order. The weight (65536 bytes) has one copy, so it streams from DRAM
# straight into its arrays (cimflow/lowering/weights.py, program_from_dram),
# in one burst: its 4096 cycles of the channel are below the 40000 a burst
# may hold.
#   0 barrier   segment 0, no deps.
#   1 program   arrays [0, 16), rows 128, cols 128, k [0, 256), n [0, 256),
#               streaming its 65536 bytes from DRAM, after 0.
#   2 barrier   allocates "y" (256 bytes) in the buffer, after 0.
#   3 mvm       arrays [0, 16), 1 vector, rows 128, cols 128, streaming the
#               256-byte input from DRAM (the model input is there and the
#               stream is slower than the compute, so nothing is staged);
#               its outputs stay in the cores: both row tiles of every
#               column tile sit in one core, which adds them itself.
#   4 vector    "accumulate": 256 * (2 - 1) = 256 lane operations on the
#               units of cores [0, 2), streaming the 256 finished outputs
#               (1 byte each) out to the buffer, after 3.
#   5 store     "y" buffer -> DRAM, 256 bytes, after 4.
#   6 free      "y" in the buffer, after 4 and 5.
#
# Costs (cost_model.py), as (compute, stream) with lanes (LANES = 256): an
# op needing ceil(256 stream / compute) >= 256 lanes takes max(compute,
# stream).
#   transfer = max(link(src), link(dst)); link(dram) = latency + ceil(bytes /
#   dram_bw) to read, ceil(bytes / dram_bw) to write (posted); link(buffer)
#   = ceil(bytes / buffer_bw); the bus: latency + ceil(bytes / min(32, 32)).
#   1 program:    compute 128 rows * 1 = 128; stream max(DRAM 100 + 65536 /
#                 16 = 4196, bus 2 + 65536 / 32 = 2050) = 4196: 4196 (the
#                 bus carries its bytes at half the DRAM's rate: it takes 128
#                 of the bus's 256 lanes)
#   3 mvm:        compute 1 * (10 + 0 * 8) = 10; stream max(DRAM 100 + 256 /
#                 16 = 116, bus 2 + 256 / 32 = 10) = 116: 116
#   4 accumulate: compute 4 + ceil(256 / (32 lanes * 1 unit * 2 cores)) = 8;
#                 stream 2 + 256 / 32 = 10: 10
#   5 store y:    max(256 / 16 = 16, 8) = 16
#
# Schedule (deps, then resources; ready ops start in id order):
#   1 program     [0, 4196]
#   3 mvm         [4196, 4312]  after the program
#   4 accumulate  [4312, 4322]
#   5 store y     [4322, 4338]
# Critical path: program -> mvm -> accumulate -> store: 4196 + 116 + 10 + 16
# = 4338 cycles.

EXPECTED_KINDS = ["barrier", "program", "barrier", "mvm", "vector", "store", "free"]
EXPECTED_DEPS = [(), (0,), (0,), (1, 2), (3,), (4,), (4, 5)]
EXPECTED_CYCLES = [0, 4196, 0, 116, 10, 16, 0]
EXPECTED_START = [0, 0, 0, 4196, 4312, 4322, 4338]
EXPECTED_FINISH = [0, 4196, 0, 4312, 4322, 4338, 4338]
MAKESPAN = 4338


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
    critical = [1, 3, 4, 5]
    assert sum(EXPECTED_CYCLES[i] for i in critical) == MAKESPAN


def test_hand_computed_op_fields(target_path: str) -> None:
    """The numbers the derivation reads off each op."""
    trace, _ = compile_and_simulate(target_path)
    document = json.loads(dump_trace(compile_to_trace(target_path)))
    ops = document["ops"]
    program = ops[1]
    assert (program["feed"], program["in_bytes"]) == ("dram", 65536)
    assert (program["arrays"], program["rows"], program["cols"]) == (
        [[0, 16]],
        128,
        128,
    )
    assert (program["k"], program["n"]) == ([0, 256], [0, 256])
    mvm = ops[3]
    assert (mvm["feed"], mvm["in_bytes"], mvm["out_bytes"]) == ("dram", 256, 0)
    assert (mvm["arrays"], mvm["vectors"], mvm["v"]) == ([[0, 16]], 1, [0, 1])
    accumulate = ops[4]
    assert (accumulate["op"], accumulate["element_ops"], accumulate["cores"]) == (
        "accumulate",
        256,
        [[0, 2]],
    )
    assert (accumulate["in_bytes"], accumulate["out_bytes"]) == (0, 256)
    assert (ops[5]["tensor"], ops[5]["bytes"], ops[5]["dst"]) == ("y", 256, "dram")
    assert all(op.segment == 0 for op in trace.ops)
    assert trace.model.batch == 1
