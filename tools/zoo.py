"""The model zoo: the benchmark models as ONNX files with their true shapes.

``python -m cimflow.tools.zoo --out DIR`` writes ResNet-18, ResNet-50,
VGG-16, MobileNetV2, BERT-base, BERT-large, GPT-2 (124M), LLaMA-2-7B,
OPT-6.7B and OPT-13B, the decoders (GPT-2, LLaMA, OPT) in both phases:
``prefill`` over ``L`` tokens and ``decode`` of one token per sequence
against a KV cache of ``L`` past positions. Every dimension is static (batch
``B`` and ``L`` baked in), so ``cim-opt`` needs no ``--dim``; files are named
``<model>[.<phase>].b<B>[.L<L>].onnx`` (``llama2_7b.decode.b4.L1024.onnx``,
``resnet18.b1.onnx``).

True-shape models are written shape-only: every tensor over 1 KiB is
external data in a file that is never written, so even the 7B models are
files of a few hundred kilobytes that import in about a second
(:func:`cimflow.frontend.load_weights` refuses them). ``--small`` writes the
small variant of each family instead (``resnet_tiny``, ``vgg_tiny``,
``mobilenetv2_tiny``, ``bert_tiny``, ``gpt2_tiny``, ``llama_tiny``,
``opt_tiny``) with real random weights, for functional checks.

The graphs follow the dynamo exporter's patterns by default (``--exporter
torchscript`` for the other style); the torchscript exporter's constant
folding stores tied LM heads (GPT-2, OPT) a second time, pre-transposed,
which inflates their initializers over the published parameter counts.

A decoder's prefill longer than its position table, or decode past its end,
is skipped with a note (GPT-2 has 1024 positions, OPT 2048, LLaMA-2 4096,
BERT 512).

From Python, :func:`zoo_models` lists the entries (each with a ``builder``
returning the ``ModelProto``) for a benchmark harness to build on demand.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import onnx
from onnx import ModelProto

from cimflow.analysis.sparsity import parse_pattern
from cimflow.errors import CimError
from cimflow.output_files import write_output
from cimflow.tools import model_builders as mb
from cimflow.tools.model_builders import Exporter, Phase, Weights
from cimflow.tools.prune import PruneRequest, prune_model

Kind = Literal["cnn", "encoder", "decoder"]

PHASES: tuple[Phase, ...] = get_args(Phase)
"""The phases of decoder transformers, in order."""

DEFAULT_SEQUENCE = 128
"""``L`` of the true-shape transformers unless given."""

DEFAULT_SMALL_SEQUENCE = 16
"""``L`` of the small transformers unless given (their tables are short)."""


@dataclass(frozen=True)
class ZooModel:
    """A model of the zoo before batch, sequence length and phase are chosen."""

    name: str
    """Zoo name (``gpt2``, ``llama2_7b``, ...)."""
    family: str
    """Model family, as in :data:`model_builders.TINY_BUILDERS` (``llama``)."""
    kind: Kind
    """``decoder`` models have phases; ``encoder`` ones a sequence length only."""
    builder: Callable[..., ModelProto]
    """The true-shape builder."""
    published: float
    """The published parameter count."""
    small: str
    """Name of the small variant."""
    small_builder: Callable[..., ModelProto]
    """The small variant's builder."""
    positions: int | None = None
    """Length of the position table of transformers (prefill ``L`` and decode
    ``L + 1`` must fit)."""
    small_positions: int | None = None
    """Length of the small variant's position table."""


ZOO: tuple[ZooModel, ...] = (
    ZooModel(
        "resnet18", "resnet", "cnn", mb.resnet18, 11.7e6, "resnet_tiny", mb.resnet_tiny
    ),
    ZooModel(
        "resnet50", "resnet", "cnn", mb.resnet50, 25.6e6, "resnet_tiny", mb.resnet_tiny
    ),
    ZooModel("vgg16", "vgg", "cnn", mb.vgg16, 138e6, "vgg_tiny", mb.vgg_tiny),
    ZooModel(
        "mobilenetv2",
        "mobilenetv2",
        "cnn",
        mb.mobilenetv2,
        3.5e6,
        "mobilenetv2_tiny",
        mb.mobilenetv2_tiny,
    ),
    ZooModel(
        "bert_base",
        "bert",
        "encoder",
        mb.bert_base,
        110e6,
        "bert_tiny",
        mb.bert_tiny,
        512,
        64,
    ),
    ZooModel(
        "bert_large",
        "bert",
        "encoder",
        mb.bert_large,
        340e6,
        "bert_tiny",
        mb.bert_tiny,
        512,
        64,
    ),
    ZooModel(
        "gpt2",
        "gpt2",
        "decoder",
        mb.gpt2_small,
        124e6,
        "gpt2_tiny",
        mb.gpt2_tiny,
        1024,
        32,
    ),
    ZooModel(
        "llama2_7b",
        "llama",
        "decoder",
        mb.llama2_7b,
        6.74e9,
        "llama_tiny",
        mb.llama_tiny,
        4096,
        64,
    ),
    ZooModel(
        "opt_6_7b",
        "opt",
        "decoder",
        mb.opt_6_7b,
        6.7e9,
        "opt_tiny",
        mb.opt_tiny,
        2048,
        64,
    ),
    ZooModel(
        "opt_13b",
        "opt",
        "decoder",
        mb.opt_13b,
        12.85e9,
        "opt_tiny",
        mb.opt_tiny,
        2048,
        64,
    ),
)
"""Every zoo model, in the order they are written."""

ZOO_BY_NAME: dict[str, ZooModel] = {model.name: model for model in ZOO}


@dataclass(frozen=True)
class ZooEntry:
    """One ONNX file of the zoo: a model at a batch, sequence length and phase."""

    name: str
    """Model name (a zoo name, or a small variant's with ``small``)."""
    family: str
    """Model family (``resnet``, ``vgg``, ``mobilenetv2``, ``bert``, ``gpt2``,
    ``llama``, ``opt``)."""
    phase: Phase | None
    """``prefill`` or ``decode`` for decoder transformers, else None."""
    batch: int
    """Static batch size."""
    sequence: int | None
    """Tokens (prefill, encoders) or past length ``L`` (decode); None for CNNs."""
    builder: Callable[[], ModelProto]
    """Builds the model (deterministic; shape-only unless ``small``)."""
    small: bool = False
    """A small variant with real weights instead of a true-shape model."""
    exporter: Exporter = "dynamo"
    """The exporter whose node patterns the graph follows."""

    @property
    def weights(self) -> Weights:
        """``random`` for small variants, ``shape_only`` for true shapes."""
        return "random" if self.small else "shape_only"

    @property
    def stem(self) -> str:
        """``<name>[.<phase>].b<batch>[.L<sequence>]``."""
        parts = [self.name]
        if self.phase is not None:
            parts.append(self.phase)
        parts.append(f"b{self.batch}")
        if self.sequence is not None:
            parts.append(f"L{self.sequence}")
        return ".".join(parts)

    @property
    def file_name(self) -> str:
        """The file the zoo writes the entry to."""
        return f"{self.stem}.onnx"


def _model_names(models: Sequence[str] | None) -> list[ZooModel]:
    if models is None:
        return list(ZOO)
    unknown = [name for name in models if name not in ZOO_BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown zoo model(s) {', '.join(unknown)}; known: "
            + ", ".join(ZOO_BY_NAME)
        )
    return [model for model in ZOO if model.name in models]


def zoo_plan(
    batch: int = 1,
    sequence: int | None = None,
    phases: Sequence[Phase] = PHASES,
    small: bool = False,
    *,
    models: Sequence[str] | None = None,
    exporter: Exporter = "dynamo",
) -> tuple[list[ZooEntry], list[str]]:
    """The entries of :func:`zoo_models` and a note for each one skipped
    because its sequence does not fit the model's position table."""
    if batch < 1:
        raise ValueError(f"batch must be positive, not {batch}")
    if sequence is None:
        sequence = DEFAULT_SMALL_SEQUENCE if small else DEFAULT_SEQUENCE
    if sequence < 1:
        raise ValueError(f"sequence must be positive, not {sequence}")
    for phase in phases:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
    if exporter not in get_args(Exporter):
        raise ValueError(f"unknown exporter {exporter!r}")
    weights: Weights = "random" if small else "shape_only"
    entries: list[ZooEntry] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for model in _model_names(models):
        name = model.small if small else model.name
        if name in seen:
            continue
        seen.add(name)
        build = model.small_builder if small else model.builder
        options: dict[str, Any] = {
            "batch": batch,
            "exporter": exporter,
            "weights": weights,
        }
        if model.kind == "cnn":
            entries.append(
                ZooEntry(
                    name,
                    model.family,
                    None,
                    batch,
                    None,
                    functools.partial(build, **options),
                    small,
                    exporter,
                )
            )
            continue
        positions = model.small_positions if small else model.positions
        assert positions is not None
        options["sequence"] = sequence
        model_phases: Sequence[Phase | None] = (
            [p for p in PHASES if p in phases] if model.kind == "decoder" else [None]
        )
        for phase in model_phases:
            needed = sequence + 1 if phase == "decode" else sequence
            entry = ZooEntry(
                name,
                model.family,
                phase,
                batch,
                sequence,
                functools.partial(
                    build, **options, **({} if phase is None else {"phase": phase})
                ),
                small,
                exporter,
            )
            if needed > positions:
                skipped.append(
                    f"{entry.stem}: {needed} positions exceed the {positions} "
                    f"{name} has"
                )
                continue
            entries.append(entry)
    return entries, skipped


def zoo_models(
    batch: int = 1,
    sequence: int | None = None,
    phases: Sequence[Phase] = PHASES,
    small: bool = False,
    *,
    models: Sequence[str] | None = None,
    exporter: Exporter = "dynamo",
) -> list[ZooEntry]:
    """The zoo's entries for ``batch`` and ``sequence`` (default 128, or 16
    with ``small``): CNNs once, encoders at ``sequence`` tokens, decoders once
    per phase in ``phases``; the small variants (deduplicated) with ``small``.

    ``models`` restricts the zoo to some of its names (:data:`ZOO_BY_NAME`).
    Entries whose sequence exceeds the model's positions are left out (see
    :func:`zoo_plan` for the notes).
    """
    return zoo_plan(batch, sequence, phases, small, models=models, exporter=exporter)[0]


_FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
)
_BUFFER_SUFFIXES = (".running_mean", ".running_var")


def parameter_count(model: ModelProto) -> int:
    """Elements of the model's floating-point initializers, BatchNorm running
    statistics (buffers, not parameters) left out; works on shape-only models."""
    return sum(
        math.prod(tensor.dims)
        for tensor in model.graph.initializer
        if tensor.data_type in _FLOAT_TYPES
        and not tensor.name.endswith(_BUFFER_SUFFIXES)
    )


@dataclass(frozen=True)
class Written:
    """A zoo file :func:`write_zoo` wrote."""

    entry: ZooEntry
    path: Path
    size: int
    """Bytes of the file."""
    parameters: int
    """:func:`parameter_count` of the model."""


def write_zoo(out: Path, entries: Sequence[ZooEntry]) -> list[Written]:
    """Build every entry and write it to ``out / entry.file_name``."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Written] = []
    for entry in entries:
        model = entry.builder()
        data = model.SerializeToString()
        path = out / entry.file_name
        path.write_bytes(data)
        written.append(Written(entry, path, len(data), parameter_count(model)))
    return written


def _size(count: float) -> str:
    for unit in ("", "k", "M", "B"):
        if count < 1000:
            return f"{count:.0f}{unit}" if unit == "" else f"{count:.2f}{unit}"
        count /= 1000
    return f"{count:.2f}T"


def _phase_list(text: str) -> tuple[Phase, ...]:
    if text == "both":
        return PHASES
    if text == "prefill":
        return ("prefill",)
    if text == "decode":
        return ("decode",)
    raise argparse.ArgumentTypeError(f"invalid phase {text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cimflow.tools.zoo``."""
    parser = argparse.ArgumentParser(
        prog="python -m cimflow.tools.zoo",
        description="Write the cimflow model zoo as ONNX files with static shapes.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--batch", type=int, default=1, help="batch size (1)")
    parser.add_argument(
        "--sequence",
        type=int,
        default=None,
        help=f"tokens (prefill, encoders) or past length L (decode) "
        f"({DEFAULT_SEQUENCE}, {DEFAULT_SMALL_SEQUENCE} with --small)",
    )
    parser.add_argument(
        "--phase",
        type=_phase_list,
        default=PHASES,
        metavar="{prefill,decode,both}",
        help="decoder phases to write (both)",
    )
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated zoo names (all: {','.join(ZOO_BY_NAME)})",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="write the small variants with real weights instead",
    )
    parser.add_argument(
        "--prune",
        metavar="PATTERN",
        help="with --small, also write each model pruned to PATTERN (as "
        "cim-prune --pattern), named <model>.<pattern>.r<ratio>.onnx",
    )
    parser.add_argument(
        "--prune-ratio",
        type=float,
        default=0.5,
        help="cim-prune --ratio of --prune (0.5)",
    )
    parser.add_argument(
        "--exporter",
        choices=get_args(Exporter),
        default="dynamo",
        help="PyTorch exporter style of the graphs (dynamo)",
    )
    args = parser.parse_args(argv)
    models: list[str] | None = None
    if args.models is not None:
        models = [name.strip() for name in str(args.models).split(",") if name.strip()]
    try:
        entries, skipped = zoo_plan(
            args.batch,
            args.sequence,
            args.phase,
            args.small,
            models=models,
            exporter=args.exporter,
        )
    except ValueError as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 1
    for note in skipped:
        print(f"skipped {note}", file=sys.stderr)
    out: Path = args.out
    total = files = 0
    try:
        request = _prune_request(args.prune, args.prune_ratio, args.small)
        for item in write_zoo(out, entries):
            total, files = total + item.size, files + 1
            kind = "random weights" if item.entry.small else "shape-only"
            print(
                f"wrote {item.path} ({item.size:,} bytes, "
                f"{_size(item.parameters)} parameters, {kind})"
            )
            if request is not None:
                path = write_pruned(item.path, request)
                total, files = total + path.stat().st_size, files + 1
                print(f"wrote {path} (pruned to {request.pattern.text()})")
    except CimError as error:
        print(f"zoo: error: {error}", file=sys.stderr)
        return 1
    print(f"{files} files, {total:,} bytes in {out}")
    return 0


def _prune_request(
    pattern: str | None, ratio: float, small: bool
) -> PruneRequest | None:
    if pattern is None:
        return None
    if not small:
        raise CimError("--prune needs --small (true-shape models have no weights)")
    return PruneRequest(parse_pattern(pattern), ratio)


def pruned_name(path: Path, request: PruneRequest) -> Path:
    """Where :func:`write_pruned` writes the pruned variant of ``path``:
    ``<stem>.<pattern>.r<ratio>.onnx`` (``block:8x8+2:4`` as
    ``block8x8_2of4``)."""
    slug = request.pattern.text().replace("block:", "block")
    slug = slug.replace(":", "of").replace("+", "_")
    return path.with_name(f"{path.stem}.{slug}.r{request.ratio:g}.onnx")


def write_pruned(path: Path, request: PruneRequest) -> Path:
    """The zoo model at ``path`` pruned as ``request`` says, written beside it."""
    model, _ = prune_model(path, request)
    target = pruned_name(path, request)
    write_output(target, model.SerializeToString())
    return target


if __name__ == "__main__":
    raise SystemExit(main())
