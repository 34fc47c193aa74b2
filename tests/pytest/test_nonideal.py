"""Device and converter non-idealities (``[nonideal]``) in quantized runs:
off, they change nothing; on, each changes the values, seeded; exact mode
ignores them; a fully stuck array follows its closed form; bad values are
one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.calibration import calibrate
from cimflow.cimsim.functional import Mode, run_functional
from cimflow.cimsim.trace import Trace
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, overridden
from cimflow.tools.cim_verify import compile_model, module_trace

Array = np.ndarray[Any, Any]

NONIDEALITIES = [
    "program_sigma=0.05",
    "read_sigma=0.05",
    "stuck_at_zero=0.02",
    "stuck_at_one=0.02",
    "adc_offset_lsb=0.5",
    "adc_inl_lsb=2",
]


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``y = x @ w`` for ``x [4, 64]``: one array of dynaplasia."""
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((64, 24)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 24])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("nonideal") / "fc.onnx"
    onnx.save(model, str(path))
    return path


def _trace(path: Path, *settings: str) -> Trace:
    with overridden([f"nonideal.{s}" for s in settings]):
        return module_trace(compile_model(path, "dynaplasia"), str(path))


def _inputs() -> dict[str, Array]:
    return {"x": np.abs(np.random.default_rng(6).standard_normal((4, 64)))}


def _run(trace: Trace, mode: Mode = "quantized") -> Array:
    (y,) = run_functional(trace, _inputs(), mode).values()
    return y


def test_shipped_targets_are_ideal() -> None:
    from cimflow.hw_targets import shipped_targets

    for name in shipped_targets():
        n = load_target(name).nonideal
        assert (
            n.program_sigma,
            n.read_sigma,
            n.stuck_at_zero,
            n.stuck_at_one,
            n.adc_offset_lsb,
            n.adc_inl_lsb,
        ) == (0, 0, 0, 0, 0, 0), name


@pytest.mark.parametrize("setting", NONIDEALITIES)
def test_each_nonideality_changes_values_reproducibly(
    layer: Path, setting: str
) -> None:
    ideal = _run(_trace(layer))
    noisy = _run(_trace(layer, setting))
    assert not np.array_equal(noisy, ideal)
    assert np.array_equal(_run(_trace(layer, setting)), noisy)
    reseeded = _run(_trace(layer, setting, "seed=7"))
    if not setting.startswith("adc_inl"):  # a bow has nothing to draw
        assert not np.array_equal(reseeded, noisy)


@pytest.mark.parametrize("setting", NONIDEALITIES)
def test_exact_mode_ignores_them(layer: Path, setting: str) -> None:
    assert np.array_equal(
        _run(_trace(layer, setting), "exact"), _run(_trace(layer), "exact")
    )


def test_more_programming_variation_errs_more(layer: Path) -> None:
    exact = _run(_trace(layer), "exact")
    errors = [
        float(np.abs(_run(_trace(layer, f"program_sigma={s}")) - exact).mean())
        for s in (0.0, 0.05, 0.2)
    ]
    assert errors[0] < errors[1] < errors[2]


def test_a_stuck_at_zero_array_leaves_the_offset_correction(layer: Path) -> None:
    # Every cell reads 0, so the analog sums vanish and only the digital
    # offset correction, made from the ideal weights, is left: with
    # unsigned inputs (no input offset) each output is -2^(b_w-1) sum_k q_x
    # times its scales.
    trace = _trace(layer, "stuck_at_zero=1")
    calibration = calibrate(trace, [_inputs()])
    (y,) = run_functional(
        trace, _inputs(), "quantized", calibration=calibration
    ).values()
    x = _inputs()["x"]
    s_x = x.max() / 255
    q_x = np.rint(x / s_x)
    weight = numpy_helper.to_array(onnx.load(str(layer)).graph.initializer[0])
    s_w = np.abs(weight.astype(np.float64)).max(axis=0) / 127
    expected = s_x * (-128 * q_x.sum(axis=1))[:, None] * s_w[None, :]
    assert np.allclose(y, expected, rtol=1e-6)  # y is float32


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("program_sigma=-0.1", "key 'nonideal.program_sigma' must not be negative"),
        ("read_sigma=2", "key 'nonideal.read_sigma' must be at most 1"),
        ("stuck_at_zero=0.6", "add up to 1.2, more than every cell"),
    ],
)
def test_bad_values_are_one_line_errors(setting: str, message: str) -> None:
    extra = ["nonideal.stuck_at_one=0.6"] if setting.startswith("stuck") else []
    with (
        pytest.raises(CimError, match=message),
        overridden([f"nonideal.{setting}", *extra]),
    ):
        load_target("dynaplasia")
