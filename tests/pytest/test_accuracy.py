"""Task accuracy on a real data set (scikit-learn's digits, the committed
network and test split): exact mode classifies as onnxruntime does, and
every shipped target at its own precision loses at most one point."""

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


@pytest.mark.parametrize("target", shipped_targets())
def test_the_chip_keeps_the_networks_accuracy(target: str) -> None:
    result = tool.accuracy(MODEL, DATA, target)
    assert result.float >= 0.95
    assert result.exact == result.float
    assert result.quantized >= result.float - 0.01, result


def test_the_committed_network_is_what_the_script_trains(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    assert train_digits.main(["--out", str(tmp_path)]) == 0
    for name in ("digits_mlp.onnx", "digits_test.npz"):
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
