"""Calibrated quantized mode (``cimflow.cimsim.calibration``): input grids,
per-channel weight scales and ADC ranges from calibration inputs; a single
layer against a closed form derived here; PyTorch-exported networks at 8
bits on dynaplasia; SQNR and cosine."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.calibration import (
    CalibrationOptions,
    calibrate,
    clipping_value,
    cosine,
    input_grid,
    layer_errors,
    sqnr_db,
)
from cimflow.cimsim.functional import run_functional
from cimflow.cimsim.trace import Trace
from cimflow.errors import CimError
from cimflow.tools import cim_verify
from cimflow.tools.cim_verify import (
    Calibrating,
    compile_model,
    module_trace,
    verify_model,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exporters"

Array = np.ndarray[Any, Any]


def _gemm_trace(directory: Path, weight: Array) -> Trace:
    """The dynaplasia trace of ``y = x @ weight`` for ``x [4, K]``."""
    path = _gemm_model(directory / "fc.onnx", weight)
    return module_trace(compile_model(path, "dynaplasia"), str(path))


def _gemm_model(path: Path, weight: Array) -> Path:
    """``y = x @ weight`` for ``x [4, K]``, saved at ``path``."""
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, n])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _per_column(weight: Array, bits: int) -> tuple[Array, Array]:
    top = 2 ** (bits - 1) - 1
    scale = np.abs(weight).max(axis=0) / top
    return np.clip(np.rint(weight / scale), -top, top), scale


def test_a_layer_whose_sums_fit_the_adc_is_the_closed_form(tmp_path: Path) -> None:
    # 64 rows of 1-bit cells driven by a 1-bit DAC: no column sum passes
    # 64, within an 8-bit ADC's 255 codes, so the calibrated chip computes
    # exactly s_x * s_w[n] * sum_k q_x[k] q_w[k, n] with q_x the unsigned
    # codes of x on [0, max x] and q_w the per-column symmetric integers.
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((64, 24))
    trace = _gemm_trace(tmp_path, weight)
    calibration_x = np.abs(rng.standard_normal((4, 64)))
    calibration = calibrate(trace, [{"x": calibration_x}])
    x = np.abs(rng.standard_normal((4, 64))) * 0.9
    (y,) = run_functional(
        trace, {"x": x}, "quantized", calibration=calibration
    ).values()
    s_x = calibration_x.max() / 255
    q_x = np.clip(np.rint(x / s_x), 0, 255)
    q_w, s_w = _per_column(weight.astype(np.float32).astype(np.float64), 8)
    assert np.allclose(y, s_x * (q_x @ q_w) * s_w, rtol=1e-6, atol=1e-9)


def test_inputs_beyond_the_calibrated_range_clip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((32, 8))
    trace = _gemm_trace(tmp_path, weight)
    small = np.abs(rng.standard_normal((4, 32)))
    calibration = calibrate(trace, [{"x": small}], CalibrationOptions(adc_ranges=False))
    large = small * 10
    (y,) = run_functional(
        trace, {"x": large}, "quantized", calibration=calibration
    ).values()
    (clipped,) = run_functional(
        trace,
        {"x": np.minimum(large, small.max())},
        "quantized",
        calibration=calibration,
    ).values()
    assert np.array_equal(y, clipped)


def test_calibrated_adc_ranges_recover_what_full_scale_adcs_lose() -> None:
    # ResNet's ReLU'd inputs use a quarter of the codes the driven rows could
    # sum to; the full-scale ADC's step drops their low bits
    path = FIXTURES / "resnet.torchscript.onnx"
    plain = verify_model(path, mode="quantized").mode("quantized").outputs[0]
    calibrated = (
        verify_model(path, mode="quantized", calibration=Calibrating())
        .mode("quantized")
        .outputs[0]
    )
    assert plain.cosine < 0.97
    assert calibrated.cosine > 0.999
    assert calibrated.sqnr_db > plain.sqnr_db + 20


@pytest.mark.parametrize(
    "name",
    [
        "resnet.torchscript",
        "mobilenet_v2.torchscript",
        "efficientnet.torchscript",
        "vit.dynamo",
        "bert.torchscript",
        "gpt2.torchscript",
        "llama.torchscript",
    ],
)
def test_exported_networks_keep_cosine_at_8_bits_on_dynaplasia(name: str) -> None:
    report = verify_model(
        FIXTURES / f"{name}.onnx",
        "dynaplasia",
        mode="quantized",
        calibration=Calibrating(),
    )
    check = report.mode("quantized")
    assert check.error is None
    for output in check.outputs:
        assert output.cosine >= 0.99, (name, output)


def test_calibration_is_deterministic() -> None:
    path = FIXTURES / "mobilenet_v2.torchscript.onnx"
    first, second = (
        verify_model(path, mode="quantized", calibration=Calibrating(4))
        .mode("quantized")
        .outputs
        for _ in range(2)
    )
    assert first == second


def test_per_layer_errors_start_exact_and_name_the_layers() -> None:
    path = FIXTURES / "resnet.torchscript.onnx"
    trace = module_trace(compile_model(path, "dynaplasia"), str(path))
    model = onnx.load(str(path), load_external_data=False)
    feeds = cim_verify.make_inputs(model, {}, 0)
    layers = layer_errors(trace, feeds)
    assert layers[0].sqnr_db == math.inf  # the model input itself
    assert all(layer.layer for layer in layers)
    assert all(layer.cosine > 0.5 for layer in layers)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([4, 8]),
)
def test_mse_clipping_errs_no_more_than_max_clipping(
    values: list[float], bits: int
) -> None:
    x = np.array(values)
    levels = 2 ** (bits - 1) - 1
    mse = clipping_value(x, levels, CalibrationOptions("mse"))
    peak = clipping_value(x, levels, CalibrationOptions("max"))
    percentile = clipping_value(x, levels, CalibrationOptions("percentile", 90))

    def error(clip: float) -> float:
        if clip == 0:
            return float(np.mean(x**2))
        scale = clip / levels
        rounded: Array = np.clip(np.rint(x / scale), -levels, levels) * scale
        return float(np.mean((x - rounded) ** 2))

    assert mse <= peak and percentile <= peak
    assert error(mse) <= error(peak) + 1e-12


def test_grids_are_unsigned_after_a_relu_and_symmetric_otherwise() -> None:
    unsigned = input_grid(np.array([0.0, 1.0, 2.55]), 8, CalibrationOptions())
    assert (unsigned.low, unsigned.high, unsigned.zero) == (0, 255, 0.0)
    assert unsigned.scale == pytest.approx(0.01)
    signed = input_grid(np.array([-1.27, 0.5]), 8, CalibrationOptions())
    assert (signed.low, signed.high) == (-127, 127)
    assert signed.scale == pytest.approx(0.01)


def test_metrics() -> None:
    a = np.array([1.0, 2.0, 3.0])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert sqnr_db(a, a) == math.inf
    assert sqnr_db(a, a * 1.1) == pytest.approx(20.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clipping": "entropy"}, "unknown clipping 'entropy'"),
        ({"percentile": 0.0}, "must be in (0, 100]"),
    ],
)
def test_bad_options_are_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CimError, match=message.replace("(", r"\(").replace("]", r"\]")):
        CalibrationOptions(**options)


def test_cim_verify_reports_calibration_cosine_and_layers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(FIXTURES / "resnet.torchscript.onnx")
    args = [path, "--mode", "quantized", "--calibrate", "2", "--per-layer"]
    assert cim_verify.main(args) == 0
    out = capsys.readouterr().out
    assert "calibrated: 2 samples, max clipping, per channel weights, ADC ranges" in out
    assert "cosine" in out and "SQNR" in out
    assert "per layer input (SQNR dB, cosine):" in out
    assert cim_verify.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["calibration"].startswith("2 samples")
    assert report["modes"][0]["outputs"][0]["cosine"] > 0.99
    assert report["modes"][0]["layers"]


def test_cim_verify_rejects_no_calibration_samples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(FIXTURES / "resnet.torchscript.onnx")
    assert cim_verify.main([path, "--mode", "quantized", "--calibrate", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["cim-verify: error: --calibrate needs at least 1 sample, got 0"]
