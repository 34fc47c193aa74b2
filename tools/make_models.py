"""Write the ONNX models bundled with cimflow.

``python -m cimflow.tools.make_models`` (re)writes ``resnet_tiny.onnx`` into
``tools/models/``: a ResNet-style CNN on 1x3x32x32 inputs with real
float32 weights, small enough to ship. ``--all`` also writes the small
variant of every model family in both exporter styles
(``<family>_<exporter>.onnx``, symbolic ``batch``/``sequence`` dims).
Output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import onnx

from cimflow.tools.model_builders import TINY_BUILDERS, Exporter, resnet_tiny

DEFAULT_OUT = Path(__file__).resolve().parent / "models"


def bundled_model() -> onnx.ModelProto:
    """The model shipped as ``tools/models/resnet_tiny.onnx``."""
    return resnet_tiny(batch=1, exporter="torchscript", weights="random", seed=0)


def write_models(out: Path, everything: bool = False) -> list[Path]:
    """Write the bundled model (and with ``everything`` all tiny models) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, onnx.ModelProto] = {"resnet_tiny": bundled_model()}
    if everything:
        for family, builder in TINY_BUILDERS.items():
            for exporter in get_args(Exporter):
                models[f"{family}_{exporter}"] = builder(exporter=exporter)
    written: list[Path] = []
    for name, model in models.items():
        path = out / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cimflow.tools.make_models",
        description="Write the ONNX models bundled with cimflow.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--all", action="store_true", help="also write every tiny model family"
    )
    args = parser.parse_args(argv)
    for path in write_models(args.out, args.all):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
