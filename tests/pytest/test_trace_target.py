"""The cim-trace target writes every version-5 key of a cim_meta schedule.

A hand-written schedule on sim_traces.small_target with dynamic matmul (2
cores x 4 arrays of 128 x 128): q is loaded, moved to core 0 and staged
into memory-mode arrays 2-3 of that core; k (a tensor) is programmed into
array 0; two MVMs read q from core 0's local buffer and from arrays 2-3;
a free releases q everywhere; a vector op streams its data.
"""

# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim_traces import small_target
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.parser import Parser

from cimflow.cimdialect.cim_meta import CIMMeta
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import TRACE_VERSION, dump_trace, parse_trace
from cimflow.hw_targets import target_to_toml
from cimflow.passes.trace_target import build_trace

SCHEDULE = """
builtin.module {
  cim_meta.schedule @v5 target "TARGET" strategy "hand" batch 1 inputs ["q", "k"] outputs ["o"] {
    cim_meta.tensor "q" : tensor<4x64xf32> bytes 256
    cim_meta.tensor "k" : tensor<64x8xf32> bytes 512
    cim_meta.tensor "o" : tensor<4x8xf32> bytes 32
    cim_meta.weight "k" layout kn groups 1 k 64 n 8
    %0 = cim_meta.load "q" 256 bytes dram -> buffer segment 0 allocs [#cim_meta.alloc<"q" 256 bytes buffer>]
    %1 = cim_meta.load "k" 512 bytes dram -> buffer segment 0
    %2 = cim_meta.move "q" 256 bytes in cores <0:1> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes local cores <0:1>>] after(%0)
    %3 = cim_meta.program "k" arrays <0:1> rows 64 cols 64 k [0, 64] n [0, 8] source tensor segment 0 after(%1)
    %4 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" local_bytes 256 segment 0 after(%2, %3)
    %5 = cim_meta.switch arrays <2:4> to <memory> segment 0
    %6 = cim_meta.store "q" 256 bytes local -> memory arrays <2:4> cores <0:1> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes memory arrays <2:4>>] after(%2, %5)
    %7 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed memory feed_arrays <2:4> in_bytes 256 out_bytes 32 segment 0 after(%4, %6)
    %8 = cim_meta.free [#cim_meta.place<"q" buffer>, #cim_meta.place<"q" local cores <0:1>>, #cim_meta.place<"q" memory arrays <2:4>>] segment 0 label "q done" after(%6, %7)
    %9 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <0:2> in_bytes 32 out_bytes 32 segment 0 after(%7)
    %10 = cim_meta.move "o" 32 bytes out segment 0 after(%9)
    %11 = cim_meta.store "o" 32 bytes buffer -> dram segment 0 after(%10)
  }
}
"""


def trace_document(tmp_path: Path) -> dict[str, Any]:
    target = small_target(dynamic_matmul=True)
    path = tmp_path / "hand.toml"
    path.write_text(target_to_toml(target), encoding="utf-8")
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(CIMMeta)
    module = Parser(ctx, SCHEDULE.replace("TARGET", str(path))).parse_module()
    module.verify()
    return build_trace(module)


def test_every_version_5_key_is_written(tmp_path: Path) -> None:
    document = json.loads(dump_trace(trace_document(tmp_path)))
    assert document["version"] == TRACE_VERSION == 5
    ops = document["ops"]
    assert ops[0]["allocs"] == [{"bytes": 256, "level": "buffer", "tensor": "q"}]
    assert "allocs" not in ops[1]
    assert (ops[2]["dir"], ops[2]["cores"]) == ("in", [[0, 1]])
    assert ops[2]["allocs"] == [
        {"bytes": 256, "cores": [[0, 1]], "level": "local", "tensor": "q"}
    ]
    assert ops[3]["source"] == "tensor"
    assert (ops[4]["feed"], ops[4]["in_bytes"], ops[4]["local_bytes"]) == (
        "local",
        0,
        256,
    )
    assert "feed_arrays" not in ops[4]
    assert (ops[6]["src"], ops[6]["dst"], ops[6]["cores"]) == (
        "local",
        "memory",
        [[0, 1]],
    )
    assert (ops[7]["feed"], ops[7]["feed_arrays"]) == ("memory", [[2, 4]])
    assert (ops[7]["in_bytes"], ops[7]["out_bytes"]) == (256, 32)
    assert ops[8] == {
        "deps": [6, 7],
        "frees": [
            {"level": "buffer", "tensor": "q"},
            {"cores": [[0, 1]], "level": "local", "tensor": "q"},
            {"arrays": [[2, 4]], "level": "memory", "tensor": "q"},
        ],
        "id": 8,
        "kind": "free",
        "name": "q done",
        "segment": 0,
    }
    assert (ops[9]["cores"], ops[9]["in_bytes"], ops[9]["out_bytes"]) == (
        [[0, 2]],
        32,
        32,
    )
    # a move without cores reaches every core
    assert (ops[10]["dir"], ops[10]["cores"]) == ("out", [[0, 2]])
    assert ops[11]["cores"] == [] and ops[11]["arrays"] == []
    # the weight views the tensor declared before it
    assert [w["name"] for w in document["weights"]] == ["k"]
    assert "k" in {t["name"] for t in document["tensors"]}


def test_the_written_trace_is_read_back_and_simulated(tmp_path: Path) -> None:
    trace = parse_trace(json.loads(dump_trace(trace_document(tmp_path))), "hand")
    result = simulate(trace)
    buffer, local, memory = result.stats.peak_occupancy
    assert (buffer.nbytes, local.nbytes, local.unit) == (256, 256, 0)
    # 256 bytes over arrays 2 and 3: 128 each
    assert (memory.nbytes, memory.unit) == (128, 2)


STREAMS = """
builtin.module {
  cim_meta.schedule @streams target "TARGET" strategy "hand" batch 1 inputs ["q"] outputs ["o"] {
    cim_meta.tensor "q" : tensor<4x64xf32> bytes 256
    cim_meta.tensor "o" : tensor<4x8xf32> bytes 32
    cim_meta.weight "w" layout kn groups 1 k 64 n 8
    %0 = cim_meta.switch arrays <4:8> to <memory> segment 0
    %1 = cim_meta.program "w" arrays <0:1> rows 64 cols 64 k [0, 64] n [0, 8] feed dram in_bytes 512 segment 0
    %2 = cim_meta.mvm "w" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed dram in_bytes 256 out_to memory out_arrays <4:5> out_bytes 32 segment 0 after(%0, %1)
    %3 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <1:2> in_from memory in_arrays <4:5> in_bytes 32 out_to dram out_bytes 32 segment 0 after(%2)
    %4 = cim_meta.program "w" arrays <1:2> rows 64 cols 64 k [0, 64] n [0, 8] segment 0
  }
}
"""


def test_stream_keys_are_written_when_not_default(tmp_path: Path) -> None:
    target = small_target()
    path = tmp_path / "hand.toml"
    path.write_text(target_to_toml(target), encoding="utf-8")
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(CIMMeta)
    module = Parser(ctx, STREAMS.replace("TARGET", str(path))).parse_module()
    module.verify()
    document = json.loads(dump_trace(build_trace(module)))
    ops = document["ops"]
    assert (ops[1]["feed"], ops[1]["in_bytes"]) == ("dram", 512)
    assert "feed_arrays" not in ops[1]
    assert (ops[2]["feed"], ops[2]["out_to"], ops[2]["out_arrays"]) == (
        "dram",
        "memory",
        [[4, 5]],
    )
    assert (ops[3]["in_from"], ops[3]["in_arrays"], ops[3]["out_to"]) == (
        "memory",
        [[4, 5]],
        "dram",
    )
    assert "out_arrays" not in ops[3]
    # defaults stay unwritten: a program from the buffer streaming nothing
    assert not {"feed", "in_bytes", "feed_arrays"} & set(ops[4])
    trace = parse_trace(document, "streams")
    # the MVM: DRAM 100 + ceil(256 / 25.6) = 110 (array 4: ceil(32 / 4) = 8,
    # the bus 2 + ceil(288 / 32) = 11, compute 34)
    assert simulate(trace).costs[2].cycles == 110
