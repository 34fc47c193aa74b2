"""ONNX frontend on whole models in both PyTorch exporter styles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from frontend_reference import assert_close, onnxruntime_outputs, random_feeds, run
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func, FuncOp
from xdsl.parser import Parser

from cimflow.cimdialect.cim_graph import (
    MAX_INLINE_ELEMENTS,
    CIMGraph,
    ConstantOp,
    ConvOp,
    UnaryOp,
    WeightOp,
    WeightSourceAttr,
    ints,
    tensor_shape,
)
from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_weights, prepare_model
from cimflow.tools import make_models
from cimflow.tools import model_builders as mb

FAMILIES = list(mb.TINY_BUILDERS)
EXPORTERS = ["torchscript", "dynamo"]
DIMS = {"batch": 2, "sequence": 8}

_TRANSFORMER_COMMON = {"matmul": 4, "softmax": 2}
EXPECTED_OPS: dict[tuple[str, str], dict[str, int]] = {
    ("resnet", "torchscript"): {"conv": 6, "linear": 1, "pool": 1, "global_pool": 1},
    ("resnet", "dynamo"): {"conv": 6, "linear": 1, "pool": 1, "reduce": 1},
    ("mobilenetv2", "torchscript"): {"conv": 16, "clip": 11, "linear": 1, "pad": 0},
    ("mobilenetv2", "dynamo"): {"conv": 16, "clip": 11, "linear": 1, "pad": 0},
    ("vit", "torchscript"): {
        "conv": 1,
        "linear": 9,
        "layer_norm": 5,
        **_TRANSFORMER_COMMON,
    },
    ("vit", "dynamo"): {"conv": 1, "linear": 9, "layer_norm": 5, **_TRANSFORMER_COMMON},
    ("bert", "torchscript"): {"linear": 13, "layer_norm": 5, **_TRANSFORMER_COMMON},
    ("bert", "dynamo"): {"linear": 13, "layer_norm": 5, **_TRANSFORMER_COMMON},
    ("gpt2", "torchscript"): {"linear": 9, "layer_norm": 5, "split": 2, "where": 2},
    ("gpt2", "dynamo"): {"linear": 9, "layer_norm": 5, "split": 2},
    ("llama", "torchscript"): {"linear": 15, "rms_norm": 5, "expand": 4},
    ("llama", "dynamo"): {"linear": 15, "rms_norm": 5, "expand": 4},
}
"""Expected operator counts of the tiny models (``cim_graph.`` prefix dropped)."""

EXPECTED_UNARY: dict[str, dict[str, int]] = {
    "resnet": {"relu": 5},
    "mobilenetv2": {},
    "vit": {"gelu": 2},
    "bert": {"gelu": 2, "tanh": 1},
    "gpt2": {"gelu_tanh": 2},
    "llama": {"silu": 2, "neg": 4},
}


def op_counts(module: ModuleOp) -> Counter[str]:
    return Counter(
        op.name.removeprefix("cim_graph.")
        for op in module.walk()
        if op.name.startswith("cim_graph.")
    )


def unary_counts(module: ModuleOp) -> Counter[str]:
    return Counter(
        op.kind.data.value for op in module.walk() if isinstance(op, UnaryOp)
    )


def save(model: onnx.ModelProto, directory: Path, name: str) -> Path:
    path = directory / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def tiny_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], Path]:
    directory = tmp_path_factory.mktemp("models")
    return {
        (family, exporter): save(
            mb.TINY_BUILDERS[family](exporter=exporter),
            directory,
            f"{family}_{exporter}",
        )
        for family in FAMILIES
        for exporter in EXPORTERS
    }


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_import_tiny_model(
    family: str, exporter: str, tiny_models: dict[tuple[str, str], Path]
) -> None:
    path = tiny_models[family, exporter]
    module = import_onnx(path, DIMS)
    module.verify()
    assert module.attributes["cim_graph.source"] == WeightSourceAttr(str(path), DIMS)
    counts = op_counts(module)
    for name, count in EXPECTED_OPS[family, exporter].items():
        assert counts[name] == count, (name, counts)
    unary = unary_counts(module)
    for kind, count in EXPECTED_UNARY[family].items():
        assert unary[kind] == count, (kind, unary)
    for kind in ("erf", "sigmoid", "pow") if family != "resnet" else ():
        assert unary[kind] == 0, f"{kind} should have been fused"

    model = onnx.load(str(path))
    original = {t.name: t for t in model.graph.initializer}
    weights = load_weights(path, DIMS)
    weight_ops = [op for op in module.walk() if isinstance(op, WeightOp)]
    names = [op.weight_name.data for op in weight_ops]
    assert len(names) == len(set(names)), "each weight is emitted once"
    for op in weight_ops:
        name = op.weight_name.data
        assert name in weights
        assert tensor_shape(op.output) == weights[name].shape
        assert name in original or name.endswith(
            (".bn_folded", ".bn_folded_bias", ".folded")
        )
    for op in module.walk():
        if isinstance(op, ConstantOp):
            assert np.prod(tensor_shape(op.output)) <= MAX_INLINE_ELEMENTS
    for name, tensor in original.items():
        if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.dims) >= 2:
            assert name in names or f"{name}.bn_folded" in names, name


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_prepared_model_computes_the_same(
    family: str, exporter: str, tiny_models: dict[tuple[str, str], Path]
) -> None:
    model = onnx.load(str(tiny_models[family, exporter]))
    prepared = prepare_model(model, DIMS, "model.onnx")
    onnx.checker.check_model(prepared)
    assert not any(
        n.op_type in ("Identity", "Dropout", "Shape") for n in prepared.graph.node
    )
    if exporter == "dynamo" and family in ("resnet", "mobilenetv2"):
        assert not any(n.op_type == "BatchNormalization" for n in prepared.graph.node)
    feeds = random_feeds(model, DIMS)
    assert_close(
        onnxruntime_outputs(model, feeds), onnxruntime_outputs(prepared, feeds)
    )


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_imported_module_computes_the_same(
    family: str, exporter: str, tiny_models: dict[tuple[str, str], Path]
) -> None:
    path = tiny_models[family, exporter]
    model = onnx.load(str(path))
    feeds = random_feeds(model, DIMS)
    expected = onnxruntime_outputs(model, feeds)
    actual = run(import_onnx(path, DIMS), load_weights(path, DIMS), feeds)
    assert_close(expected, actual, rtol=1e-3 if family == "gpt2" else 1e-4)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_shape_only_model_imports_without_data(
    family: str, exporter: str, tmp_path: Path, tiny_models: dict[tuple[str, str], Path]
) -> None:
    model = mb.TINY_BUILDERS[family](exporter=exporter, weights="shape_only")
    assert any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer
    )
    path = save(model, tmp_path, "shape_only")
    module = import_onnx(path, DIMS)
    module.verify()
    with_data = import_onnx(tiny_models[family, exporter], DIMS)
    assert [op.name for op in module.walk()] == [op.name for op in with_data.walk()]
    with pytest.raises(CimError, match="weight data"):
        load_weights(path, DIMS)


@pytest.mark.parametrize("weights", ["random", "shape_only"])
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_builders_are_deterministic(family: str, exporter: str, weights: str) -> None:
    builder: Any = mb.TINY_BUILDERS[family]
    first = builder(exporter=exporter, weights=weights).SerializeToString()
    assert builder(exporter=exporter, weights=weights).SerializeToString() == first
    assert builder(
        exporter=exporter, weights=weights, seed=1
    ).SerializeToString() != first or (weights == "shape_only")


@pytest.mark.parametrize("family", FAMILIES)
def test_import_is_deterministic(
    family: str, tiny_models: dict[tuple[str, str], Path]
) -> None:
    path = tiny_models[family, "dynamo"]
    assert str(import_onnx(path, DIMS)) == str(import_onnx(path, DIMS))


def test_printed_ir_parses_back(tiny_models: dict[tuple[str, str], Path]) -> None:
    context = Context()
    for dialect in (Builtin, Func, CIMGraph):
        context.load_dialect(dialect)
    for path in tiny_models.values():
        text = str(import_onnx(path, DIMS))
        parsed = Parser(context, text).parse_module()
        parsed.verify()
        assert str(parsed) == text


def test_symbolic_dims_are_fixed(tiny_models: dict[tuple[str, str], Path]) -> None:
    path = tiny_models["bert", "torchscript"]
    module = import_onnx(path, {"batch": 3, "sequence": 5})
    text = str(module)
    assert "tensor<3x5xi64>" in text
    assert '-> (tensor<3x5x32xf32> {cim_graph.name = "last_hidden_state"}' in text


def test_decomposed_layer_norm_is_fused(tmp_path: Path) -> None:
    model = mb.bert_tiny(exporter="torchscript", opset=14)
    assert not any(n.op_type == "LayerNormalization" for n in model.graph.node)
    path = save(model, tmp_path, "bert14")
    module = import_onnx(path, DIMS)
    assert op_counts(module)["layer_norm"] == 5
    feeds = random_feeds(model, DIMS)
    assert_close(
        onnxruntime_outputs(model, feeds), run(module, load_weights(path, DIMS), feeds)
    )


def test_exported_pads_fold_into_their_convolutions(tmp_path: Path) -> None:
    """The dynamo MobileNetV2 pads each stride-2 depthwise input with an
    explicit bottom/right ``Pad``: each folds into its ``Conv`` (no pad op
    is left, the convolution pads asymmetrically), and the module computes
    what onnxruntime computes on the exported graph."""
    model = mb.mobilenetv2_tiny(exporter="dynamo")
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert pads
    path = save(model, tmp_path, "mobilenetv2_pads")
    module = import_onnx(path, DIMS)
    assert op_counts(module)["pad"] == 0
    asymmetric = [
        op
        for op in module.walk()
        if isinstance(op, ConvOp) and tuple(ints(op.pads)) == (0, 0, 1, 1)
    ]
    assert len(asymmetric) == len(pads)
    feeds = random_feeds(model, DIMS)
    assert_close(
        onnxruntime_outputs(model, feeds), run(module, load_weights(path, DIMS), feeds)
    )


TRUE_SHAPES: list[tuple[str, dict[str, int], tuple[int, ...]]] = [
    ("resnet18", {"conv": 20, "linear": 1}, (1, 1000)),
    ("resnet50", {"conv": 53, "linear": 1}, (1, 1000)),
    ("mobilenetv2", {"conv": 52, "linear": 1, "clip": 35}, (1, 1000)),
    ("vit_b16", {"conv": 1, "linear": 49, "layer_norm": 25, "softmax": 12}, (1, 1000)),
    (
        "bert_base",
        {"linear": 73, "layer_norm": 25, "matmul": 24, "softmax": 12},
        (1, 128, 768),
    ),
    ("gpt2_small", {"linear": 49, "layer_norm": 25, "softmax": 12}, (1, 128, 50257)),
]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("builder", "expected", "output"), TRUE_SHAPES)
def test_true_shape_models_import_shape_only(
    builder: str,
    expected: dict[str, int],
    output: tuple[int, ...],
    exporter: str,
    tmp_path: Path,
) -> None:
    model = getattr(mb, builder)(exporter=exporter, weights="shape_only")
    path = save(model, tmp_path, builder)
    module = import_onnx(path, {"batch": 1, "sequence": 128})
    module.verify()
    counts = op_counts(module)
    for name, count in expected.items():
        assert counts[name] == count, (name, counts)
    func = module.body.block.first_op
    assert isinstance(func, FuncOp)
    assert tensor_shape(func.function_type.outputs.data[0]) == output


def test_resnet50_has_true_shapes() -> None:
    model = mb.resnet50(exporter="dynamo", weights="shape_only")
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert dims["conv1.weight"] == (64, 3, 7, 7)
    assert dims["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert dims["fc.weight"] == (1000, 2048)
    total = sum(int(np.prod(d)) for n, d in dims.items() if "running" not in n)
    assert 25_500_000 < total < 25_600_000


def test_bert_base_has_true_shapes() -> None:
    model = mb.bert_base(exporter="torchscript", weights="shape_only")
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert dims["embeddings.word_embeddings.weight"] == (30522, 768)
    assert dims["encoder.layer.11.output.LayerNorm.bias"] == (768,)
    total = sum(int(np.prod(d)) for n, d in dims.items() if "position_ids" not in n)
    assert 109_000_000 < total < 110_000_000


def test_bundled_model_is_current_and_small() -> None:
    path = make_models.DEFAULT_OUT / "resnet_tiny.onnx"
    assert path.stat().st_size < 1_000_000
    assert path.read_bytes() == make_models.bundled_model().SerializeToString()
    module = import_onnx(path)
    module.verify()
    model = onnx.load(str(path))
    feeds = random_feeds(model, {})
    assert feeds["input"].shape == (1, 3, 32, 32)
    assert_close(
        onnxruntime_outputs(model, feeds), run(module, load_weights(path, {}), feeds)
    )


def test_make_models_writes_models(tmp_path: Path) -> None:
    assert make_models.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "resnet_tiny.onnx").read_bytes() == (
        make_models.DEFAULT_OUT / "resnet_tiny.onnx"
    ).read_bytes()
