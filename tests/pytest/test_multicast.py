"""Multicast on a mesh (``interconnect.multicast``): every copy of a
replicated weight is written by one ``program`` of ``copies`` > 1, and an
input several cores of one copy read leaves the global buffer once
(``link_bytes`` / ``in_link_bytes``: what their links carry); the trace
refuses either on a target without it, the functional executor writes
every copy, and the runs move fewer bytes through the buffer's port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import MoveOp, MvmOp, ProgramOp, Trace, parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.passes.trace_target import build_trace
from cimflow.tools.cim_verify import compile_model, verify_model
from cimflow.tools.model_builders import TINY_BUILDERS

PIPELINE = "cim-compile{strategy=clsa-cim}"
UNICAST = "interconnect.multicast=false"


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multicast") / "resnet.onnx"
    onnx.save(TINY_BUILDERS["resnet"](weights="random"), path)
    return path


@pytest.fixture(scope="module")
def wide_matmul(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 vectors through a 1024 x 1024 weight: on pimcomp_default 8 row
    tiles x 64 column tiles, 512 arrays over 8 cores, each holding whole
    column tiles, so every core reads every input row."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        (rng.standard_normal((1024, 1024)) / 32).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 1024])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("multicast") / "wide.onnx"
    onnx.save(model, path)
    return path


def trace_data(path: Path, *overrides: str, pipeline: str = PIPELINE) -> dict[str, Any]:
    with overridden(overrides):
        module = compile_model(path, "pimcomp_default", pipeline, {"batch": 1})
        return build_trace(module)


def trace_of(path: Path, *overrides: str, pipeline: str = PIPELINE) -> Trace:
    return parse_trace(trace_data(path, *overrides, pipeline=pipeline), "t.json")


def programs(trace: Trace) -> Iterator[ProgramOp]:
    return (op for op in trace.ops if isinstance(op, ProgramOp))


def test_the_copies_of_a_weight_are_programmed_at_once(resnet: Path) -> None:
    multicast = trace_of(resnet)
    unicast = trace_of(resnet, UNICAST)
    shared = [op for op in programs(multicast) if op.copies > 1]
    assert shared, "clsa-cim replicates the tiny ResNet's weights"
    assert all(op.copies == 1 for op in programs(unicast))
    # free extra copies: the allocation holds more of them
    copies = sum(op.copies for op in programs(multicast))
    assert copies > sum(1 for _ in programs(unicast))
    for op in shared:
        arrays = sum(stop - start for start, stop in op.arrays)
        assert arrays % op.copies == 0
    run, alone = simulate(multicast).stats, simulate(unicast).stats
    assert run.interconnect_bytes < alone.interconnect_bytes


@pytest.mark.parametrize("overrides", [(), (UNICAST,)])
def test_every_copy_computes_exactly(resnet: Path, overrides: tuple[str, ...]) -> None:
    with overridden(overrides):
        report = verify_model(
            resnet, target="pimcomp_default", pipeline=PIPELINE, dims={"batch": 1}
        )
    assert report.passed, report.to_dict()


def test_a_multicast_program_needs_a_target_that_has_it(resnet: Path) -> None:
    data = trace_data(resnet)
    index = next(i for i, op in enumerate(data["ops"]) if op.get("copies", 1) > 1)
    data["target"]["interconnect"]["multicast"] = False
    with pytest.raises(CimError, match=r"interconnect\.multicast = false"):
        parse_trace(data, "t.json")
    data["target"]["interconnect"]["multicast"] = True
    arrays = data["ops"][index]["arrays"]
    count = sum(stop - start for start, stop in arrays)
    data["ops"][index]["copies"] = count + 1
    with pytest.raises(CimError, match=f"op {index}: key 'copies'"):
        parse_trace(data, "t.json")


def links_of(trace: Trace) -> list[tuple[int, int]]:
    """(bytes through the buffer's port, bytes on the links) of every input
    a multicast sends to several cores."""
    found: list[tuple[int, int]] = []
    for op in trace.ops:
        if isinstance(op, MoveOp) and op.link_bytes is not None:
            found.append((op.nbytes, op.link_bytes))
        if isinstance(op, MvmOp) and op.in_link_bytes is not None:
            found.append((op.in_bytes, op.in_link_bytes))
    return found


def test_an_input_every_core_reads_leaves_the_buffer_once(wide_matmul: Path) -> None:
    static = "cim-compile{strategy=static}"
    multicast = trace_of(wide_matmul, pipeline=static)
    unicast = trace_of(wide_matmul, UNICAST, pipeline=static)
    sent = links_of(multicast)
    assert sent and links_of(unicast) == []
    # 8 cores each take the 16 x 1024 input rows: 8 x what the port sends
    assert all(links == 8 * port for port, links in sent)
    run, alone = simulate(multicast).stats, simulate(unicast).stats
    assert run.interconnect_bytes < alone.interconnect_bytes
    assert run.makespan_cycles <= alone.makespan_cycles
    with overridden(()):
        report = verify_model(
            wide_matmul, target="pimcomp_default", pipeline=static, dims={}
        )
    assert report.passed, report.to_dict()


def test_link_bytes_need_a_multicast_mesh(wide_matmul: Path) -> None:
    data = trace_data(wide_matmul, pipeline="cim-compile{strategy=static}")
    index, key = next(
        (i, k)
        for i, op in enumerate(data["ops"])
        for k in ("link_bytes", "in_link_bytes")
        if k in op
    )
    data["target"]["interconnect"]["multicast"] = False
    with pytest.raises(CimError, match=f"op {index}: key '{key}'"):
        parse_trace(data, "t.json")
    data["target"]["interconnect"]["multicast"] = True
    data["ops"][index][key] = 1
    with pytest.raises(CimError, match="must be at least"):
        parse_trace(data, "t.json")
