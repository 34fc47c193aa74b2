"""Every registered strategy computes every small zoo model (CNNs, encoders,
decoders in prefill and decode with a KV cache) exactly, on a target small
enough that operators are split across arrays, re-programmed and streamed."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from cimflow.hw_targets import shipped_targets
from cimflow.passes.pipelines import STRATEGIES
from cimflow.tools.cim_verify import verify_model
from cimflow.tools.zoo import ZooEntry, zoo_models

ENTRIES = zoo_models(batch=2, sequence=8, small=True)
assert len({e.file_name for e in ENTRIES}) == len(ENTRIES)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("small_zoo")
    files: dict[str, Path] = {}
    for entry in ENTRIES:
        files[entry.file_name] = directory / entry.file_name
        onnx.save(entry.builder(), files[entry.file_name])
    return files


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.file_name for e in ENTRIES])
def test_strategy_computes_small_zoo_model(
    model_files: dict[str, Path], entry: ZooEntry, strategy: str
) -> None:
    report = verify_model(
        model_files[entry.file_name],
        target="tiny",
        pipeline=f"cim-compile{{strategy={strategy}}}",
        mode="exact",
    )
    assert report.passed, report.to_dict()


CROSS_TARGET_MODELS = (
    "mobilenetv2_tiny.b2.onnx",
    "bert_tiny.b2.L8.onnx",
    "llama_tiny.decode.b2.L8.onnx",
)
"""A CNN with grouped convolutions, an encoder and a decoder step with its
KV cache: on every other shipped target (the whole small zoo on all of
them, 480 runs, takes about 2.5 minutes; ``tiny`` runs it above)."""


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("target", [t for t in shipped_targets() if t != "tiny"])
@pytest.mark.parametrize("model", CROSS_TARGET_MODELS)
def test_strategy_computes_on_every_shipped_target(
    model_files: dict[str, Path], model: str, target: str, strategy: str
) -> None:
    report = verify_model(
        model_files[model],
        target=target,
        pipeline=f"cim-compile{{strategy={strategy}}}",
        mode="exact",
    )
    assert report.passed, report.to_dict()
