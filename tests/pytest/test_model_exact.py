"""The dual-mode cost model prices what the lowering emits: for a segment of
one vector operator, its predicted cycles equal the simulated ones exactly,
on every shipped target."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from xdsl.dialects.builtin import IntegerAttr

from cimflow.cimsim.engine import simulate
from cimflow.hw_targets import load_target, shipped_targets
from cimflow.passes.cim_allocate import PREDICTED_ATTR
from cimflow.tools.cim_verify import compile_model, module_trace

SHIPPED = shipped_targets()
OPERATORS: list[tuple[str, int]] = [
    ("Relu", 1),
    ("Sigmoid", 1),
    ("Tanh", 1),
    ("Exp", 1),
    ("Softmax", 1),
    ("Add", 2),
    ("Mul", 2),
    ("Sub", 2),
]
"""ONNX operators and their operand counts (Softmax over the last axis)."""


def one_operator(kind: str, inputs: int, shape: list[int]) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(inputs)]
    node = helper.make_node(kind, names, ["y"], name="op")
    if kind == "Softmax":
        node.attribute.append(helper.make_attribute("axis", -1))
    graph = helper.make_graph(
        [node],
        "one_operator",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exact")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.sampled_from(SHIPPED),
    operator=st.sampled_from(OPERATORS),
    shape=st.lists(st.integers(1, 24), min_size=2, max_size=4),
)
def test_a_vector_operator_segment_is_predicted_exactly(
    directory: Path,
    target: str,
    operator: tuple[str, int],
    shape: list[int],
) -> None:
    """Its operands stream from DRAM while it computes (one stream, one DRAM
    latency), its result stays in the global buffer (it fits half of it,
    where the model and the lowering agree) and is stored at the end."""
    hw = load_target(target)
    elements = 1
    for size in shape:
        elements *= size
    assume(elements * hw.activation_bytes <= hw.buffers.global_bytes // 2)
    kind, inputs = operator
    path = directory / "one.onnx"
    onnx.save(one_operator(kind, inputs, shape), path)
    module = compile_model(path, target, "cim-compile{strategy=cmswitch}")
    predicted = module.attributes[PREDICTED_ATTR]
    assert isinstance(predicted, IntegerAttr)
    assert predicted.value.data == simulate(module_trace(module)).makespan
