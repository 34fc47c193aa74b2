"""Export small ONNX fixtures with PyTorch's two real ONNX exporters.

Every fixture is a real torchvision, HF transformers or ``torch.nn``
architecture built from a shrunken config with seeded random weights (nothing
pretrained, nothing downloaded), exported once with the TorchScript-based
exporter (``torch.onnx.export(..., dynamo=False)``) and once with the
dynamo-based one (``dynamo=True``) into
``tests/fixtures/exporters/<name>.<exporter>.onnx``, at fixed static shapes.

Needs the ``export`` extra (torch, torchvision, transformers, onnxscript),
which cimflow itself never imports::

    python3 -m venv .venv-export
    .venv-export/bin/pip install -e '.[export]'
    .venv-export/bin/python tools/export_fixtures.py

Each exported file is checked (onnx checker, and the onnx reference evaluator
against torch on the export inputs) before it is written. A model or exporter
that fails is reported on one line and skipped (a stale file of it removed);
the exit status is then 1. A full run rewrites ``VERSIONS.md`` in the output
directory: package versions, the command, and a table of every fixture. Same
versions, same bytes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import io
import platform
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

Exporter = Literal["torchscript", "dynamo"]
EXPORTERS: tuple[Exporter, ...] = ("torchscript", "dynamo")

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/exporters"
# Pinned to the exporters' own defaults in torch 2.14 so that a newer torch
# does not silently move the fixtures to another opset.
OPSET: dict[Exporter, int] = {"torchscript": 20, "dynamo": 20}
SEED = 0
IMAGE = (1, 3, 32, 32)
SEQUENCE = 8
VOCAB = 256
# HF's default initializer_range of 0.02 leaves attention scores near zero at
# hidden size 32 (softmax almost uniform); 0.2 gives scores of order one.
INIT_RANGE = 0.2
EXPORT_PACKAGES = ("torch", "torchvision", "transformers", "onnx", "onnxscript")
# The smallest largest-magnitude output accepted: a head that gives less is
# numerically meaningless as a reference.
MIN_OUTPUT_MAGNITUDE = 1e-3
# Largest ONNX-vs-torch difference accepted, relative to the largest output.
ERROR_TOLERANCE = 1e-4
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


@dataclass(frozen=True)
class Stack:
    """The export-only packages, imported on demand (never cimflow deps)."""

    torch: Any
    torchvision: Any
    transformers: Any


@dataclass(frozen=True)
class Fixture:
    """An eval-mode module that takes ``inputs`` positionally and returns a
    tensor or a tuple of tensors, with the ONNX names of both."""

    model: Any
    inputs: tuple[Any, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


class ExportFailure(Exception):
    """A fixture that was built or exported but is not fit to commit."""


def load_stack() -> Stack:
    """Import torch, torchvision and transformers, or exit with a one-line hint."""
    modules: list[Any] = []
    for name in ("torch", "torchvision", "transformers"):
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError:
            sys.exit(
                f"export_fixtures: {name} is not installed; install the export "
                "extra in a separate venv: pip install -e '.[export]'"
            )
    return Stack(*modules)


def _keyword_wrapper(
    stack: Stack, model: Any, keywords: Sequence[str], pick: Callable[[Any], Any]
) -> Any:
    """``model`` called with its inputs by keyword, its output reduced by
    ``pick`` to a tensor or a tuple of tensors (HF returns dict-like outputs)."""

    class Picked(stack.torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: Any) -> Any:
            return pick(self.inner(**dict(zip(keywords, args, strict=True))))

    # The dynamo exporter records module classes in node metadata: keep the
    # wrapper's the same however this script is run.
    Picked.__module__ = "export_fixtures"
    Picked.__qualname__ = "Picked"
    return Picked().eval()


def _perturb_constant_parameters(stack: Stack, model: Any) -> None:
    """Give every constant parameter tensor (norm scales and shifts, zero
    biases, layer scales) random values around its constant, so that a
    fixture cannot pass verification with a scale or shift dropped."""
    torch = stack.torch
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() < 2 or bool(parameter.min() != parameter.max()):
                continue
            noise = torch.randn(parameter.shape) * 0.1
            constant = float(parameter.flatten()[0])
            parameter.copy_(noise if constant == 0.0 else constant * (1.0 + noise))


def _calibrate_batch_norms(stack: Stack, model: Any, batch: Any) -> None:
    """Set every BatchNorm's running statistics to those of ``batch``."""
    torch = stack.torch
    batch_norm = torch.nn.modules.batchnorm._BatchNorm
    norms = [module for module in model.modules() if isinstance(module, batch_norm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


def _logits(output: Any) -> Any:
    return output.logits


def _last_hidden_state(output: Any) -> Any:
    return output.last_hidden_state


# --- vision: torchvision and HF -------------------------------------------------


def _image_fixture(stack: Stack, model: Any, hf: bool) -> Fixture:
    torch = stack.torch
    _perturb_constant_parameters(stack, model)
    _calibrate_batch_norms(stack, model, torch.randn(8, *IMAGE[1:]))
    if hf:
        model = _keyword_wrapper(stack, model, ("pixel_values",), _logits)
    return Fixture(model, (torch.randn(*IMAGE),), ("pixel_values",), ("logits",))


def build_resnet(stack: Stack) -> Fixture:
    """HF ResNet (torchvision's fixes its widths at 64..512): 7x7 stem, max
    pool, two stages of one basic block at widths 16 and 32, one projection
    shortcut."""
    tf = stack.transformers
    config = tf.ResNetConfig(
        num_channels=3,
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        layer_type="basic",
        num_labels=10,
    )
    return _image_fixture(stack, tf.ResNetForImageClassification(config), hf=True)


def build_mobilenet_v2(stack: Stack) -> Fixture:
    """torchvision MobileNetV2 at half width with three inverted-residual
    stages (one residual add), ReLU6, and its fixed 1280-channel last conv."""
    tv = stack.torchvision
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2]]
    model = tv.models.MobileNetV2(
        num_classes=10, width_mult=0.5, inverted_residual_setting=setting
    )
    return _image_fixture(stack, model, hf=False)


def build_mobilenet_v3(stack: Stack) -> Fixture:
    """torchvision MobileNetV3 (small-style): ReLU and hardswish blocks with
    squeeze-and-excitation (hardsigmoid), hardswish classifier."""
    tv = stack.torchvision
    block = tv.models.mobilenetv3.InvertedResidualConfig
    # input, kernel, expanded, output, squeeze-excite, activation, stride,
    # dilation, width multiplier
    setting = [
        block(16, 3, 16, 16, True, "RE", 2, 1, 0.5),
        block(16, 3, 72, 24, False, "RE", 2, 1, 0.5),
        block(24, 5, 96, 40, True, "HS", 2, 1, 0.5),
    ]
    model = tv.models.MobileNetV3(setting, last_channel=64, num_classes=10)
    return _image_fixture(stack, model, hf=False)


def build_efficientnet(stack: Stack) -> Fixture:
    """torchvision EfficientNet (B0-style MBConv with SiLU and sigmoid
    squeeze-and-excitation) at half width."""
    tv = stack.torchvision
    mbconv = tv.models.efficientnet.MBConvConfig
    # expand ratio, kernel, stride, input, output, layers, width, depth
    setting = [
        mbconv(1, 3, 1, 32, 16, 1, 0.5, 1.0),
        mbconv(6, 3, 2, 16, 24, 1, 0.5, 1.0),
        mbconv(6, 5, 2, 24, 40, 1, 0.5, 1.0),
    ]
    model = tv.models.EfficientNet(
        setting,
        dropout=0.0,
        stochastic_depth_prob=0.0,
        num_classes=10,
        last_channel=64,
    )
    return _image_fixture(stack, model, hf=False)


def build_convnext(stack: Stack) -> Fixture:
    """torchvision ConvNeXt: patchify stem, depthwise 7x7 blocks with
    channels-last LayerNorm, GELU MLP and layer scale, one downsampling."""
    tv = stack.torchvision
    stage = tv.models.convnext.CNBlockConfig
    model = tv.models.ConvNeXt(
        [stage(16, 32, 1), stage(32, None, 1)],
        stochastic_depth_prob=0.0,
        layer_scale=0.5,  # torchvision's 1e-6 would all but switch the blocks off
        num_classes=10,
    )
    return _image_fixture(stack, model, hf=False)


def build_vit(stack: Stack) -> Fixture:
    """HF ViT: 8x8 patches of a 32x32 image, one encoder layer, CLS head."""
    tf = stack.transformers
    config = tf.ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=10,
        initializer_range=INIT_RANGE,
    )
    return _image_fixture(stack, tf.ViTForImageClassification(config), hf=True)


# --- text and audio: HF ---------------------------------------------------------


def _token_fixture(
    stack: Stack, model: Any, pick: Callable[[Any], Any], output_names: tuple[str, ...]
) -> Fixture:
    """An HF text model on one sequence of random tokens, all attended."""
    torch = stack.torch
    _perturb_constant_parameters(stack, model)
    model.eval()
    names = ("input_ids", "attention_mask")
    input_ids = torch.randint(0, VOCAB, (1, SEQUENCE), dtype=torch.int64)
    attention_mask = torch.ones(1, SEQUENCE, dtype=torch.int64)
    return Fixture(
        _keyword_wrapper(stack, model, names, pick),
        (input_ids, attention_mask),
        names,
        output_names,
    )


def build_bert(stack: Stack) -> Fixture:
    """HF BERT encoder: one layer, hidden 32, token and pooled outputs."""
    tf = stack.transformers
    config = tf.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQUENCE,
        initializer_range=INIT_RANGE,
    )
    return _token_fixture(
        stack,
        tf.BertModel(config),
        lambda output: (output.last_hidden_state, output.pooler_output),
        ("last_hidden_state", "pooler_output"),
    )


def build_gpt2(stack: Stack) -> Fixture:
    """HF GPT-2 LM, prefill without KV cache: one block, hidden 32."""
    tf = stack.transformers
    config = tf.GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQUENCE,
        n_embd=32,
        n_layer=1,
        n_head=2,
        initializer_range=INIT_RANGE,
        use_cache=False,
    )
    return _token_fixture(stack, tf.GPT2LMHeadModel(config), _logits, ("logits",))


def build_llama(stack: Stack) -> Fixture:
    """HF LLaMA LM, prefill without KV cache: RMSNorm, rotary embeddings,
    SwiGLU MLP, one layer."""
    tf = stack.transformers
    config = tf.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=SEQUENCE,
        initializer_range=INIT_RANGE,
        use_cache=False,
    )
    return _token_fixture(stack, tf.LlamaForCausalLM(config), _logits, ("logits",))


def build_qwen2(stack: Stack) -> Fixture:
    """HF Qwen2 LM, prefill without KV cache: grouped-query attention (four
    query heads share two key/value heads) with q/k/v biases, one layer."""
    tf = stack.transformers
    config = tf.Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=SEQUENCE,
        initializer_range=INIT_RANGE,
        use_cache=False,
    )
    return _token_fixture(stack, tf.Qwen2ForCausalLM(config), _logits, ("logits",))


def build_t5_encoder(stack: Stack) -> Fixture:
    """HF T5 encoder: bucketed relative position bias, RMS norm without
    mean, ReLU MLP, one layer.

    Eager attention: with SDPA, torch 2.14's dynamo exporter fails to
    decompose it ("Cannot view a tensor with shape [1, 8, 2, 16] and strides
    (256, 16, 128, 1) as a tensor with shape (1, 8, 32)")."""
    tf = stack.transformers
    config = tf.T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        use_cache=False,
        attn_implementation="eager",
    )
    return _token_fixture(
        stack, tf.T5EncoderModel(config), _last_hidden_state, ("last_hidden_state",)
    )


def build_whisper_encoder(stack: Stack) -> Fixture:
    """HF Whisper audio encoder: two Conv1d + GELU front end (the second at
    stride 2) over 16 mel bins x 16 frames, sinusoidal positions, one
    pre-norm encoder layer."""
    torch, tf = stack.torch, stack.transformers
    config = tf.WhisperConfig(
        num_mel_bins=16,
        d_model=32,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_source_positions=SEQUENCE,
        init_std=INIT_RANGE,
    )
    encoder = tf.models.whisper.modeling_whisper.WhisperEncoder(config)
    _perturb_constant_parameters(stack, encoder)
    encoder.eval()
    frames = 2 * config.max_source_positions  # the stride-2 conv halves them
    names = ("input_features",)
    return Fixture(
        _keyword_wrapper(stack, encoder, names, _last_hidden_state),
        (torch.randn(1, config.num_mel_bins, frames),),
        names,
        ("last_hidden_state",),
    )


# --- recurrent: torch.nn --------------------------------------------------------


def _lstm_outputs(output: Any) -> Any:
    sequence, (hidden, cell) = output
    return sequence, hidden, cell


def _gru_outputs(output: Any) -> Any:
    sequence, hidden = output
    return sequence, hidden


def _recurrent_fixture(
    stack: Stack, layer: Any, pick: Callable[[Any], Any], output_names: tuple[str, ...]
) -> Fixture:
    """A batch-first recurrent layer over a random sequence of 16 features."""
    torch = stack.torch
    _perturb_constant_parameters(stack, layer)
    layer.eval()
    names = ("input",)
    return Fixture(
        _keyword_wrapper(stack, layer, names, pick),
        (torch.randn(1, SEQUENCE, 16),),
        names,
        output_names,
    )


def build_lstm(stack: Stack) -> Fixture:
    """torch.nn.LSTM: one layer, 16 inputs, hidden 32, batch first."""
    lstm = stack.torch.nn.LSTM(16, 32, num_layers=1, batch_first=True)
    return _recurrent_fixture(stack, lstm, _lstm_outputs, ("output", "hidden", "cell"))


def build_gru(stack: Stack) -> Fixture:
    """torch.nn.GRU: one layer, 16 inputs, hidden 32, batch first."""
    gru = stack.torch.nn.GRU(16, 32, num_layers=1, batch_first=True)
    return _recurrent_fixture(stack, gru, _gru_outputs, ("output", "hidden"))


BUILDERS: dict[str, Callable[[Stack], Fixture]] = {
    "resnet": build_resnet,
    "mobilenet_v2": build_mobilenet_v2,
    "mobilenet_v3": build_mobilenet_v3,
    "efficientnet": build_efficientnet,
    "convnext": build_convnext,
    "vit": build_vit,
    "bert": build_bert,
    "gpt2": build_gpt2,
    "llama": build_llama,
    "qwen2": build_qwen2,
    "t5_encoder": build_t5_encoder,
    "whisper_encoder": build_whisper_encoder,
    "lstm": build_lstm,
    "gru": build_gru,
}


# --- export ---------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """A written fixture and what its export measured."""

    path: Path
    max_output: float
    max_error: float


def _outputs(stack: Stack, fixture: Fixture) -> list[np.ndarray[Any, Any]]:
    with stack.torch.no_grad():
        result: Any = fixture.model(*fixture.inputs)
    if not isinstance(result, tuple):
        return [result.detach().numpy()]
    return [tensor.detach().numpy() for tensor in cast(tuple[Any, ...], result)]


def _export_proto(
    stack: Stack, fixture: Fixture, exporter: Exporter
) -> onnx.ModelProto:
    torch = stack.torch
    names: dict[str, Any] = {
        "input_names": list(fixture.input_names),
        "output_names": list(fixture.output_names),
        "opset_version": OPSET[exporter],
    }
    if exporter == "torchscript":
        buffer = io.BytesIO()
        torch.onnx.export(fixture.model, fixture.inputs, buffer, dynamo=False, **names)
        return onnx.load_model_from_string(buffer.getvalue())
    program = torch.onnx.export(
        fixture.model, fixture.inputs, dynamo=True, verbose=False, **names
    )
    return program.model_proto


def _drop_stack_traces(model: onnx.ModelProto) -> None:
    """Remove the dynamo exporter's per-node Python stack traces: they hold
    this machine's absolute paths (the module and FX-node records stay)."""
    for graph in [model.graph, *(function for function in model.functions)]:
        for node in graph.node:
            kept = [p for p in node.metadata_props if p.key != STACK_TRACE_KEY]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)


def export_fixture(stack: Stack, name: str, exporter: Exporter, out: Path) -> Exported:
    """Build fixture ``name`` afresh from the seed, export it, check the ONNX
    file against torch with the onnx reference evaluator, and write it."""
    torch = stack.torch
    torch.manual_seed(SEED)
    fixture = BUILDERS[name](stack)
    expected = _outputs(stack, fixture)
    max_output = max(float(np.abs(array).max()) for array in expected)
    if max_output < MIN_OUTPUT_MAGNITUDE:
        raise ExportFailure(f"largest output magnitude {max_output:.1e} is negligible")
    model = _export_proto(stack, fixture, exporter)
    _drop_stack_traces(model)
    onnx.checker.check_model(model, full_check=True)
    feeds = {
        input_name: tensor.numpy()
        for input_name, tensor in zip(fixture.input_names, fixture.inputs, strict=True)
    }
    actual = ReferenceEvaluator(model).run(None, feeds)
    if not isinstance(actual, list):
        raise ExportFailure("the onnx reference evaluator returned no output list")
    if len(actual) != len(expected):
        raise ExportFailure(
            f"{len(actual)} ONNX outputs for {len(expected)} torch ones"
        )
    max_error = 0.0
    for output_name, want, got in zip(
        fixture.output_names, expected, actual, strict=True
    ):
        if np.shape(got) != want.shape:
            raise ExportFailure(
                f"output {output_name}: ONNX shape {np.shape(got)}, torch {want.shape}"
            )
        max_error = max(max_error, float(np.abs(np.asarray(got) - want).max()))
    if max_error > ERROR_TOLERANCE * max_output:
        raise ExportFailure(
            f"ONNX differs from torch by {max_error:.2e} "
            f"(largest output {max_output:.2e})"
        )
    path = out / f"{name}.{exporter}.onnx"
    partial = path.with_suffix(".onnx.partial")
    partial.write_bytes(model.SerializeToString())
    partial.replace(path)
    return Exported(path, max_output, max_error)


# --- VERSIONS.md ----------------------------------------------------------------


def _op_counts(path: Path) -> tuple[int, str]:
    graph = onnx.load(str(path)).graph
    counts = Counter(node.op_type for node in graph.node)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return len(graph.node), ", ".join(f"{op} {count}" for op, count in ordered)


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions_markdown(
    exported: Sequence[Exported], failures: Sequence[str], command: str
) -> str:
    """The text of ``VERSIONS.md`` for one run of this script."""
    lines = [
        "# Exporter fixtures: versions and contents",
        "",
        "Written by `tools/export_fixtures.py`; do not edit by hand. Every model is",
        "built from a shrunken config with seeded random weights (nothing",
        "pretrained or downloaded); `torchscript` files come from",
        "`torch.onnx.export(..., dynamo=False)`, `dynamo` files from",
        "`torch.onnx.export(..., dynamo=True)` (its default ONNX optimization on),",
        f"both at opset {OPSET['torchscript']}, static shapes. The dynamo exporter's",
        "per-node Python stack traces (`pkg.torch.onnx.stack_trace`, which hold",
        "absolute paths) are removed; nothing else is changed.",
        "",
        "## Versions",
        "",
        "| package | version |",
        "|---|---|",
        f"| python | {platform.python_version()} |",
        *(f"| {name} | {_package_version(name)} |" for name in EXPORT_PACKAGES),
        f"| numpy | {np.__version__} |",
        "",
        "## Command",
        "",
        "```sh",
        "python3 -m venv .venv-export",
        ".venv-export/bin/pip install -e '.[export]'",
        command,
        "```",
        "",
        "## Fixtures",
        "",
        "`max |out|` is the largest output magnitude on the export inputs, `max",
        "err` the largest difference between the ONNX file (run by",
        "`onnx.reference`) and torch on them.",
        "",
        "| file | bytes | nodes | max \\|out\\| | max err | op types |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for item in exported:
        nodes, ops = _op_counts(item.path)
        lines.append(
            f"| {item.path.name} | {item.path.stat().st_size} | {nodes} "
            f"| {item.max_output:.3g} | {item.max_error:.1e} | {ops} |"
        )
    total = sum(item.path.stat().st_size for item in exported)
    lines += ["", f"{len(exported)} files, {total} bytes in all.", ""]
    if failures:
        lines += ["## Not exported", ""]
        lines += [f"- {failure}" for failure in failures]
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="tools/export_fixtures.py",
        description="Export small ONNX fixtures with torch's two ONNX exporters.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BUILDERS),
        help="export only this model (repeatable); VERSIONS.md is then not written",
    )
    args = parser.parse_args(arguments)
    stack = load_stack()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    exported: list[Exported] = []
    failures: list[str] = []
    for name in args.only or BUILDERS:
        for exporter in EXPORTERS:
            label = f"{name}.{exporter}"
            try:
                item = export_fixture(stack, name, exporter, out)
            except Exception as error:  # one model's failure must not stop the rest
                reason = f"{type(error).__name__}: {_first_line(error)}"
                failures.append(f"`{label}`: {reason}")
                print(f"FAILED {label}: {reason}", file=sys.stderr, flush=True)
                (out / f"{label}.onnx").unlink(missing_ok=True)
                continue
            exported.append(item)
            print(
                f"wrote {item.path} ({item.path.stat().st_size} bytes, "
                f"max |out| {item.max_output:.3g}, max err {item.max_error:.1e})",
                flush=True,
            )
    if not args.only:
        command = shlex.join(
            [".venv-export/bin/python", "tools/export_fixtures.py", *arguments]
        )
        (out / "VERSIONS.md").write_text(versions_markdown(exported, failures, command))
    return 1 if failures else 0


def _first_line(error: BaseException) -> str:
    """The first non-empty line of the innermost cause's message."""
    while error.__cause__ is not None:
        error = error.__cause__
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
