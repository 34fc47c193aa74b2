"""Multicast programming: on a target whose interconnect multicasts
(``interconnect.multicast``), every copy of a replicated weight is written
by one ``program`` of ``copies`` > 1 whose values leave the global buffer
once; the trace refuses such a program elsewhere, the functional executor
writes every copy, and the run moves fewer bytes through the buffer's port
than the same allocation programmed copy by copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import ProgramOp, Trace, parse_trace
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


def trace_data(path: Path, *overrides: str) -> dict[str, Any]:
    with overridden(overrides):
        module = compile_model(path, "pimcomp_default", PIPELINE, {"batch": 1})
        return build_trace(module)


def trace_of(path: Path, *overrides: str) -> Trace:
    return parse_trace(trace_data(path, *overrides), "t.json")


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
