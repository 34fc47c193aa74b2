"""Property: random small models on random small targets compute what
onnxruntime computes, after compilation, through the functional simulator.

The default example count keeps CI fast; set ``CIM_RANDOM_MODELS`` to run
more, e.g. ``CIM_RANDOM_MODELS=500 python -m pytest
tests/pytest/test_random_models.py``. With ``CIM_FAIL_DIR`` set, a failing
model and target are also written there (``fail.onnx``, ``fail.toml``) for
``cim-verify`` to reproduce.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from hypothesis import HealthCheck, given, settings
from random_models import random_models, random_targets

from cimflow.hw_targets import HardwareTarget, target_to_toml
from cimflow.tools.cim_verify import verify_model

EXAMPLES = int(os.environ.get("CIM_RANDOM_MODELS", "25"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_models(), random_targets())
def test_random_model_matches_onnxruntime(
    model: onnx.ModelProto, hw: HardwareTarget
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        model_path = Path(directory) / "model.onnx"
        onnx.save(model, model_path)
        target_path = Path(directory) / "target.toml"
        target_path.write_text(target_to_toml(hw), encoding="utf-8")
        report = verify_model(model_path, target=str(target_path), mode="exact")
        keep = os.environ.get("CIM_FAIL_DIR")
        if keep and not report.passed:
            onnx.save(model, Path(keep) / "fail.onnx")
            (Path(keep) / "fail.toml").write_text(target_to_toml(hw))
        assert report.passed, report.to_dict()
