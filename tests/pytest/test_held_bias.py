"""A bias stays in the local buffers of the cores that add it: one ``move``
brings it in (its bytes allocated there) before the first accumulation of
its MVM on those cores, the accumulations there read nothing more of it
over the interconnect, and a ``free`` after the last of them releases it;
a bias that would take more than a quarter of the cores' part of the local
buffer is read by every accumulation instead. Exact either way."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import parse_trace
from cimflow.hw_targets import load_target, overridden
from cimflow.lowering.state import KEPT_BIAS_SHARE, kept_bias_bytes
from cimflow.passes.trace_target import build_trace
from cimflow.tools.cim_verify import compile_model, verify_model

PIPELINE = "cim-compile{strategy=static}"
NARROW, WIDE = 64, 3000
"""Output channels of the two convolutions: dynaplasia's 10 KB local
buffer keeps a 64-byte bias, not a 3,000-byte one (over a quarter of it;
the wide weight still fits the 96 arrays whole)."""


@pytest.fixture(scope="module")
def two_convs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    for name, cin, cout, x, y in (
        ("narrow", 16, NARROW, "x", "h"),
        ("wide", NARROW, WIDE, "h", "y"),
    ):
        shape = (cout, cin, 1, 1)
        weights.append(
            numpy_helper.from_array(
                rng.integers(-2, 3, shape).astype(np.float32), f"{name}_w"
            )
        )
        weights.append(
            numpy_helper.from_array(
                rng.integers(-2, 3, (cout,)).astype(np.float32), f"{name}_b"
            )
        )
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y]))
    graph = helper.make_graph(
        nodes,
        "two_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDE, 8, 8])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("bias") / "two_convs.onnx"
    onnx.save(model, path)
    return path


def trace_data(path: Path, target: str) -> dict[str, Any]:
    with overridden(()):
        return build_trace(compile_model(path, target, PIPELINE, {}))


def accumulations(data: dict[str, Any], bias: str) -> list[dict[str, Any]]:
    return [
        op
        for op in data["ops"]
        if op["kind"] == "vector" and op["op"] == "accumulate" and bias in op["inputs"]
    ]


def test_a_bias_moves_into_its_cores_once(two_convs: Path) -> None:
    data = trace_data(two_convs, "dynaplasia")
    moves = [
        op for op in data["ops"] if op["kind"] == "move" and op["tensor"] == "narrow_b"
    ]
    assert moves
    assert max(Counter(str(op["cores"]) for op in moves).values()) == 1
    freed = {
        place["tensor"]: op
        for op in data["ops"]
        if op["kind"] == "free"
        for place in op["frees"]
    }
    readers = accumulations(data, "narrow_b")
    assert readers
    for move in moves:
        (alloc,) = move["allocs"]
        assert alloc["level"] == "local" and alloc["cores"] == move["cores"]
        assert alloc["bytes"] == NARROW * sum(b - a for a, b in move["cores"])
        released = freed[alloc["tensor"]]
        assert all(
            op["id"] in released["deps"]
            for op in readers
            if op["cores"] == move["cores"]
        )
    for op in readers:
        held = [m for m in moves if m["id"] in op["deps"]]
        assert covered_cores(held) == core_ids(op["cores"])
        assert op["in_bytes"] == 0  # partial sums in the cores, bias there too
    simulate(parse_trace(data, "t.json"))


def core_ids(ranges: list[list[int]]) -> list[int]:
    return [core for first, stop in ranges for core in range(first, stop)]


def covered_cores(moves: list[dict[str, Any]]) -> list[int]:
    """The cores bias ``moves`` brought it to, each as often as moved."""
    return sorted(core for move in moves for core in core_ids(move["cores"]))


RESNET_TINY = (
    Path(__file__).resolve().parents[2] / "tools" / "models" / "resnet_tiny.onnx"
)
"""A model whose clsa-cim copies on tiny share cores: an accumulation's
cores overlap those of another copy that keeps the same bias."""


def test_a_core_keeps_a_bias_once_for_every_copy_it_adds_for() -> None:
    pipeline = "cim-compile{strategy=clsa-cim}"
    with overridden(()):
        data: dict[str, Any] = build_trace(
            compile_model(RESNET_TINY, "tiny", pipeline, {})
        )
        report = verify_model(RESNET_TINY, target="tiny", pipeline=pipeline, dims={})
    assert report.passed, report.to_dict()
    ops: list[dict[str, Any]] = data["ops"]
    moves = {
        op["id"]: op
        for op in ops
        if op["kind"] == "move" and op["name"].startswith(op["tensor"] + "@")
    }
    kept: Counter[tuple[str, int]] = Counter(
        (op["tensor"], core) for op in moves.values() for core in core_ids(op["cores"])
    )
    assert kept and max(kept.values()) == 1
    shared = 0
    for op in ops:
        if op["kind"] != "vector" or op["op"] != "accumulate":
            continue
        held = [moves[dep] for dep in op["deps"] if dep in moves]
        if held:
            assert covered_cores(held) == core_ids(op["cores"])
            shared += len(held) > 1
    assert shared  # some accumulation reads a bias another copy brought


def test_a_bias_over_a_quarter_of_the_local_buffer_is_read_each_time(
    two_convs: Path,
) -> None:
    local = load_target("dynaplasia").buffers.local_bytes
    assert kept_bias_bytes(local, WIDE) == 0 < kept_bias_bytes(local, NARROW)
    data = trace_data(two_convs, "dynaplasia")
    assert not any(
        op["kind"] == "move" and op["tensor"] == "wide_b" for op in data["ops"]
    )
    readers = accumulations(data, "wide_b")
    assert readers and all(op["in_bytes"] >= WIDE for op in readers)


@pytest.mark.parametrize("target", ["dynaplasia", "pimcomp_default"])
def test_accumulations_with_a_kept_bias_compute_exactly(
    two_convs: Path, target: str
) -> None:
    with overridden(()):
        report = verify_model(two_convs, target=target, pipeline=PIPELINE, dims={})
    assert report.passed, report.to_dict()


def test_biases_stay_only_in_a_quarter_of_the_part() -> None:
    part = 4096
    quarter = part // KEPT_BIAS_SHARE
    assert kept_bias_bytes(part, quarter) == quarter
    assert kept_bias_bytes(part, quarter + 1) == 0
