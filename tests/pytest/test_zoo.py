"""The model zoo: true shapes, parameter counts, KV-cache decode graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from frontend_reference import assert_close, onnxruntime_outputs, run
from xdsl.dialects.func import FuncOp

from cimflow.cimdialect.cim_graph import tensor_shape
from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_weights
from cimflow.tools import cim_opt, cim_sim, zoo
from cimflow.tools import model_builders as mb
from cimflow.tools.zoo import ZooEntry

ENTRIES = zoo.zoo_models(batch=1, sequence=128)
SMALL = zoo.zoo_models(batch=2, sequence=6, small=True)
DECODERS = {"gpt2": mb.gpt2_tiny, "llama": mb.llama_tiny, "opt": mb.opt_tiny}
EXPORTERS = ("torchscript", "dynamo")


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_zoo_lists_every_model_and_phase() -> None:
    stems = [entry.stem for entry in ENTRIES]
    assert stems == [
        "resnet18.b1",
        "resnet50.b1",
        "vgg16.b1",
        "mobilenetv2.b1",
        "bert_base.b1.L128",
        "bert_large.b1.L128",
        "gpt2.prefill.b1.L128",
        "gpt2.decode.b1.L128",
        "llama2_7b.prefill.b1.L128",
        "llama2_7b.decode.b1.L128",
        "opt_6_7b.prefill.b1.L128",
        "opt_6_7b.decode.b1.L128",
        "opt_13b.prefill.b1.L128",
        "opt_13b.decode.b1.L128",
    ]
    assert all(entry.weights == "shape_only" for entry in ENTRIES)
    decode = zoo.zoo_models(4, 1024, ("decode",), models=["llama2_7b", "resnet18"])
    assert [e.file_name for e in decode] == [
        "resnet18.b4.onnx",
        "llama2_7b.decode.b4.L1024.onnx",
    ]
    small = zoo.zoo_models(small=True)
    assert [e.name for e in small if e.phase != "decode"] == [
        "resnet_tiny",
        "vgg_tiny",
        "mobilenetv2_tiny",
        "bert_tiny",
        "gpt2_tiny",
        "llama_tiny",
        "opt_tiny",
    ]
    assert all(e.weights == "random" and e.sequence in (None, 16) for e in small)


def test_zoo_skips_what_exceeds_the_positions() -> None:
    entries, skipped = zoo.zoo_plan(1, 1024, models=["gpt2", "bert_base"])
    assert [e.stem for e in entries] == ["gpt2.prefill.b1.L1024"]
    assert skipped == [
        "bert_base.b1.L1024: 1024 positions exceed the 512 bert_base has",
        "gpt2.decode.b1.L1024: 1025 positions exceed the 1024 gpt2 has",
    ]
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.zoo_models(models=["gpt3"])
    with pytest.raises(ValueError, match="exceeds"):
        mb.gpt2_small(sequence=1024, phase="decode", weights="shape_only")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.stem)
def test_zoo_entry_imports(entry: ZooEntry, tmp_path: Path) -> None:
    model = entry.builder()
    assert all(len(t.raw_data) <= 1024 for t in model.graph.initializer)
    for value in [*model.graph.input, *model.graph.output]:
        assert all(isinstance(d, int) for d in _shape(value)), value.name
    path = tmp_path / entry.file_name
    path.write_bytes(model.SerializeToString())
    assert path.stat().st_size < 1_000_000
    module = import_onnx(path)
    module.verify()
    func = module.body.block.first_op
    assert isinstance(func, FuncOp)
    outputs = [tensor_shape(t) for t in func.function_type.outputs.data]
    inputs = [tensor_shape(t) for t in func.function_type.inputs.data]
    if entry.phase is None:
        return
    vocab = outputs[0][-1]
    layers = (len(outputs) - 1) // 2
    if entry.phase == "prefill":
        assert outputs == [(1, 128, vocab)]
        assert inputs == [(1, 128)]
        return
    config = {
        "gpt2": (12, 12, 64),
        "llama2_7b": (32, 32, 128),
        "opt_6_7b": (32, 32, 128),
        "opt_13b": (40, 40, 128),
    }
    assert layers == config[entry.name][0]
    _, heads, head_dim = config[entry.name]
    assert inputs == [(1, 1)] + [(1, heads, 128, head_dim)] * 2 * layers
    assert outputs == [(1, 1, vocab)] + [(1, heads, 129, head_dim)] * 2 * layers
    names = [i.name for i in model.graph.input[1:3]] + [
        o.name for o in model.graph.output[1:3]
    ]
    assert names == [
        "past_key_values.0.key",
        "past_key_values.0.value",
        "present.0.key",
        "present.0.value",
    ]


TORCHSCRIPT_DECODERS = zoo.zoo_models(
    1, 128, models=["gpt2", "llama2_7b", "opt_6_7b"], exporter="torchscript"
)


@pytest.mark.parametrize("entry", TORCHSCRIPT_DECODERS, ids=lambda e: e.stem)
def test_torchscript_decoders_import(entry: ZooEntry, tmp_path: Path) -> None:
    path = tmp_path / entry.file_name
    path.write_bytes(entry.builder().SerializeToString())
    module = import_onnx(path)
    module.verify()
    func = module.body.block.first_op
    assert isinstance(func, FuncOp)
    tokens = 1 if entry.phase == "decode" else 128
    assert tensor_shape(func.function_type.outputs.data[0])[:2] == (1, tokens)


@pytest.mark.parametrize("model", zoo.ZOO, ids=lambda m: m.name)
def test_parameter_counts_match_published(model: zoo.ZooModel) -> None:
    entry = zoo.zoo_models(models=[model.name], phases=("prefill",))[0]
    count = zoo.parameter_count(entry.builder())
    if model.name == "bert_large":
        # The paper's "340M" is rounded: the true shapes (as HF's BertModel)
        # have 335,141,888 parameters, 1.4% fewer.
        assert count == 335_141_888
        assert abs(count - model.published) / model.published < 0.015
        return
    assert abs(count - model.published) / model.published < 0.01, count


def test_true_shapes_of_new_models() -> None:
    vgg = {
        t.name: tuple(t.dims) for t in mb.vgg16(weights="shape_only").graph.initializer
    }
    assert vgg["features.28.weight"] == (512, 512, 3, 3)
    assert vgg["classifier.0.weight"] == (4096, 25088)
    assert vgg["classifier.6.weight"] == (1000, 4096)
    opt = mb.opt_6_7b(weights="shape_only", exporter="dynamo")
    dims = {t.name: tuple(t.dims) for t in opt.graph.initializer}
    assert dims["model.decoder.embed_positions.weight"] == (2050, 4096)
    assert dims["model.decoder.layers.31.fc1.weight"] == (16384, 4096)
    assert dims["model.decoder.layers.31.self_attn.q_proj.bias"] == (4096,)
    assert "lm_head.weight" not in dims
    bert = mb.bert_large(weights="shape_only")
    dims = {t.name: tuple(t.dims) for t in bert.graph.initializer}
    assert dims["encoder.layer.23.intermediate.dense.bias"] == (4096,)


def _outputs(model: onnx.ModelProto, feeds: dict[str, Any]) -> dict[str, Any]:
    return onnxruntime_outputs(model, feeds)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", sorted(DECODERS))
def test_decode_with_cache_matches_prefill(family: str, exporter: str) -> None:
    """Decoding token L+1 against the prefill's K/V of tokens 1..L gives the
    logits and K/V of a prefill over all L+1 tokens."""
    builder: Any = DECODERS[family]
    batch, past = 2, 9
    ids = np.random.default_rng(7).integers(0, 64, (batch, past + 1), np.int64)
    full = _outputs(
        builder(exporter=exporter, batch=batch, sequence=past + 1, use_cache=True),
        {"input_ids": ids},
    )
    prefix = _outputs(
        builder(exporter=exporter, batch=batch, sequence=past, use_cache=True),
        {"input_ids": ids[:, :past]},
    )
    decode = builder(exporter=exporter, batch=batch, sequence=past, phase="decode")
    feeds: dict[str, Any] = {"input_ids": ids[:, past:]}
    for value in decode.graph.input[1:]:
        feeds[value.name] = prefix[value.name.replace("past_key_values", "present")]
    step = _outputs(decode, feeds)
    assert set(step) == set(full)
    np.testing.assert_allclose(
        step["logits"][:, 0], full["logits"][:, -1], rtol=1e-4, atol=1e-5
    )
    for name in sorted(set(step) - {"logits"}):
        np.testing.assert_allclose(step[name], full[name], rtol=1e-4, atol=1e-5)
    # symbolic batch and past length give the same graph semantics
    symbolic = _outputs(builder(exporter=exporter, phase="decode"), feeds)
    np.testing.assert_allclose(symbolic["logits"], step["logits"], rtol=1e-5, atol=1e-6)
    assert not (full["logits"][:, -1] == full["logits"][:, -2]).all()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", sorted(DECODERS))
def test_decode_graph_imports_and_computes_the_same(
    family: str, exporter: str, tmp_path: Path
) -> None:
    builder: Any = DECODERS[family]
    model = builder(exporter=exporter, phase="decode")
    path = tmp_path / "decode.onnx"
    path.write_bytes(model.SerializeToString())
    dims = {"batch": 2, "sequence": 5}
    rng = np.random.default_rng(3)
    feeds: dict[str, Any] = {"input_ids": rng.integers(0, 64, (2, 1), np.int64)}
    for value in model.graph.input[1:]:
        shape = [dims[d] if isinstance(d, str) else d for d in _shape(value)]
        feeds[value.name] = rng.normal(0, 1, shape).astype(np.float32)
    module = import_onnx(path, dims)
    module.verify()
    actual = run(module, load_weights(path, dims), feeds)
    assert_close(_outputs(model, feeds), actual, rtol=1e-4)


def test_small_models_have_weights_true_shapes_do_not(tmp_path: Path) -> None:
    small = zoo.zoo_models(1, 8, ("prefill",), True, models=["opt_6_7b"])[0]
    path = tmp_path / small.file_name
    path.write_bytes(small.builder().SerializeToString())
    assert load_weights(path, {})
    true = zoo.zoo_models(1, 8, ("prefill",), models=["opt_6_7b"])[0]
    path = tmp_path / true.file_name
    path.write_bytes(true.builder().SerializeToString())
    with pytest.raises(CimError, match="weight data"):
        load_weights(path, {})


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_vgg_tiny_runs_like_onnxruntime(exporter: str, tmp_path: Path) -> None:
    model = mb.vgg_tiny(exporter=exporter, batch=2)
    path = tmp_path / "vgg.onnx"
    path.write_bytes(model.SerializeToString())
    feeds = {"input": np.random.default_rng(0).normal(0, 1, (2, 3, 32, 32))}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    module = import_onnx(path)
    assert_close(
        _outputs(model, feeds),
        run(module, load_weights(path, {}), feeds),
        rtol=1e-4,
    )


@pytest.mark.parametrize("entry", SMALL, ids=lambda e: e.stem)
def test_small_zoo_compiles_and_simulates(
    entry: ZooEntry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every small model, decode steps included, through cim-opt and cim-sim."""
    model = tmp_path / entry.file_name
    model.write_bytes(entry.builder().SerializeToString())
    trace = tmp_path / "trace.json"
    argv = [str(model), "-p", "cim-compile-static{target=tiny}", "-t", "cim-trace"]
    assert cim_opt.main([*argv, "-o", str(trace)]) == 0, capsys.readouterr().err
    assert cim_sim.main([str(trace), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency"]["cycles"] > 0
    assert report["bytes"]["dram_read"] > 0
    if entry.phase == "decode":
        described = json.loads(trace.read_text())["model"]
        inputs = {i["name"]: i["shape"] for i in described["inputs"]}
        assert inputs["input_ids"] == [2, 1]
        past = inputs["past_key_values.1.value"]
        assert past[0] == 2 and past[2] == 6
        assert [o["shape"][2] for o in described["outputs"][1:]] == [7] * 4


def test_zoo_cli_writes_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path), "--batch", "2", "--sequence", "64"]
    assert zoo.main([*argv, "--models", "resnet18,gpt2", "--phase", "both"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "gpt2.decode.b2.L64.onnx",
        "gpt2.prefill.b2.L64.onnx",
        "resnet18.b2.onnx",
    ]
    assert "11.69M parameters" in out and "124.44M parameters" in out
    for name in names:
        assert f"{tmp_path / name} (" in out
    model = onnx.load(
        str(tmp_path / "gpt2.decode.b2.L64.onnx"), load_external_data=False
    )
    assert _shape(model.graph.input[1]) == [2, 12, 64, 64]
    small = tmp_path / "small"
    assert (
        zoo.main(
            [
                "--out",
                str(small),
                "--small",
                "--models",
                "opt_6_7b",
                "--phase",
                "decode",
            ]
        )
        == 0
    )
    assert [p.name for p in small.iterdir()] == ["opt_tiny.decode.b1.L16.onnx"]
    assert zoo.main(["--out", str(small), "--models", "nope"]) == 1
    assert "unknown zoo model" in capsys.readouterr().err


def test_zoo_is_deterministic() -> None:
    for entry in zoo.zoo_models(2, 8, small=True, models=["llama2_7b", "opt_6_7b"]):
        assert (
            entry.builder().SerializeToString() == entry.builder().SerializeToString()
        )
