"""Every exporter fixture compiles with every strategy on ``tiny`` and
``dynaplasia``, simulates, and verifies exactly against onnxruntime.

The fixtures (``tests/fixtures/exporters``, written by
``tools/export_fixtures.py``) are what PyTorch's TorchScript and dynamo ONNX
exporters write for small HF transformers and torchvision models. The matrix
is :mod:`cimflow.tools.fixture_status`'s: a file's import, weights, inputs and
reference are made once, and its ``convert-graph-to-tile`` once per target.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from cimflow.passes.pipelines import STRATEGIES
from cimflow.tools import fixture_status
from cimflow.tools.fixture_status import TARGETS, Fixture, Tiled

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exporters"
PATHS = fixture_status.fixture_paths(FIXTURES)


@cache
def _fixture(name: str) -> Fixture:
    return fixture_status.load_fixture(FIXTURES / name)


@cache
def _tiled(name: str, target: str) -> Tiled:
    return fixture_status.tile(_fixture(name), target)


def test_every_fixture_is_in_the_matrix() -> None:
    names = {p.name for p in PATHS}
    assert len(names) == 28
    for model in {name.split(".")[0] for name in names}:
        assert {f"{model}.torchscript.onnx", f"{model}.dynamo.onnx"} <= names


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", [p.name for p in PATHS])
def test_fixture_compiles_simulates_and_verifies(
    name: str, target: str, strategy: str
) -> None:
    outcome = fixture_status.run(_tiled(name, target), strategy)
    assert outcome.ok, outcome.describe()
    assert outcome.cycles > 0 and outcome.trace_ops > 0
    assert outcome.max_rel_error < 1e-5, outcome.describe()


def test_status_lists_every_fixture_and_every_failure() -> None:
    status = (FIXTURES / "STATUS.md").read_text()
    runs = len(PATHS) * len(STRATEGIES) * len(TARGETS)
    assert f"{runs} of {runs} runs pass." in status
    assert all(f"| {p.name} |" in status for p in PATHS)
    failed = fixture_status.Outcome(
        PATHS[0], "static", "tiny", 0.0, 0, 0, float("inf"), False, (), "boom"
    )
    text = fixture_status.status_markdown(PATHS[:1], [failed])
    assert "0 of 1 runs pass." in text
    assert f"- {PATHS[0].name} static tiny: boom" in text
