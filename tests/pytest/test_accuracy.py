"""Task accuracy on a real data set (scikit-learn's digits, the committed
network, test and calibration splits): exact mode classifies as onnxruntime
does, and every shipped target at its own precision loses at most one
point, uncalibrated and calibrated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cimflow.hw_targets import shipped_targets
from cimflow.tools import accuracy as tool
from cimflow.tools import train_digits

MODELS = Path(tool.__file__).parent / "models"
MODEL = MODELS / "digits_mlp.onnx"
DATA = MODELS / "digits_test.npz"
CALIBRATION = MODELS / "digits_calibration.npz"


@pytest.mark.parametrize("target", shipped_targets())
def test_the_chip_keeps_the_networks_accuracy(target: str) -> None:
    result = tool.accuracy(MODEL, DATA, target, calibration=CALIBRATION)
    assert result.float >= 0.95
    assert result.exact == result.float
    assert result.quantized >= result.float - 0.01, result
    assert result.calibrated is not None
    assert result.calibrated >= result.float - 0.01, result


def test_the_committed_network_is_what_the_script_trains(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    assert train_digits.main(["--out", str(tmp_path)]) == 0
    for name in ("digits_mlp.onnx", "digits_test.npz", "digits_calibration.npz"):
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), name


def test_a_data_set_without_labels_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, image=np.zeros((2, 64), np.float32))
    assert tool.main([str(MODEL), str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"cim-accuracy: error: {path}: no 'labels' array"]


def test_the_table_lists_each_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main([str(MODEL), str(DATA), "--targets", "tiny,dynaplasia"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["target", "float", "exact", "quantized"]
    assert [line.split()[0] for line in lines[1:]] == ["tiny", "dynaplasia"]


def test_the_calibration_split_is_not_the_test_split() -> None:
    test = tool.load_arrays(DATA)["image"]
    calibration = tool.load_arrays(CALIBRATION)["image"]
    assert len(calibration) == train_digits.CALIBRATION_SIZE
    assert not {row.tobytes() for row in calibration} & {row.tobytes() for row in test}


def test_the_calibrated_column_follows_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [str(MODEL), str(DATA), "--targets", "tiny", "--calibration"]
    assert tool.main([*args, str(CALIBRATION)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["target", "float", "exact", "quantized", "calibrated"]


def test_calibration_inputs_without_the_models_input_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calibration.npz"
    np.savez(path, pixels=np.zeros((2, 64), np.float32))
    args = [str(MODEL), str(DATA), "--targets", "tiny", "--calibration", str(path)]
    assert tool.main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"cim-accuracy: error: {path}: no array for the model input 'image'"]
