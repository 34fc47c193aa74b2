"""Train the digits network and write it, with its test split and a
calibration split, for the accuracy checks: ``tools/models/digits_mlp.onnx``,
``tools/models/digits_test.npz`` and ``tools/models/digits_calibration.npz``.

::

    pip install -e '.[train]'            # scikit-learn, for this script only
    python -m cimflow.tools.train_digits

The data are scikit-learn's handwritten digits (1797 8x8 images of 16 gray
levels, shipped with the package: nothing downloads), scaled to [0, 1];
the last 360 images in a seeded shuffle are the test split, the first 100
(training images) the calibration split. The network is
scikit-learn's MLPClassifier, 64 -> 32 (ReLU) -> 10, seeded, written as
ONNX ``Gemm``, ``Relu``, ``Gemm`` with a symbolic ``batch`` dimension
(input ``image``, output ``logits``). The output is byte-for-byte the same
on every run with the same scikit-learn.
"""

from __future__ import annotations

import argparse
import importlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cimflow.output_files import write_output

DEFAULT_OUT = Path(__file__).resolve().parent / "models"
TEST_SIZE = 360
CALIBRATION_SIZE = 100
SEED = 0
HIDDEN = 32


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train images, train labels, test images, test labels)``."""
    datasets: Any = importlib.import_module("sklearn.datasets")
    digits = datasets.load_digits()
    images = (np.asarray(digits.data, np.float32) / 16.0).astype(np.float32)
    labels = np.asarray(digits.target, np.int64)
    order = np.random.default_rng(SEED).permutation(len(labels))
    train, test = order[:-TEST_SIZE], order[-TEST_SIZE:]
    return images[train], labels[train], images[test], labels[test]


def digits_model(layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """``Gemm`` (and ``Relu`` between) over ``(weight [in, out], bias)``
    layers: logits of ``image [batch, 64]``."""
    nodes: list[onnx.NodeProto] = []
    initializers: list[TensorProto] = []
    value = "image"
    for index, (weight, bias) in enumerate(layers):
        w, b = f"fc{index}.weight", f"fc{index}.bias"
        initializers.append(numpy_helper.from_array(weight.astype(np.float32), w))
        initializers.append(numpy_helper.from_array(bias.astype(np.float32), b))
        out = "logits" if index == len(layers) - 1 else f"hidden{index}"
        nodes.append(helper.make_node("Gemm", [value, w, b], [out], name=f"fc{index}"))
        value = out
        if index < len(layers) - 1:
            nodes.append(
                helper.make_node(
                    "Relu", [value], [f"{value}.relu"], name=f"relu{index}"
                )
            )
            value = f"{value}.relu"
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _npz(images: np.ndarray, labels: np.ndarray) -> bytes:
    data = io.BytesIO()
    np.savez(data, image=images, labels=labels)
    return data.getvalue()


def train() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """The trained network and the test split's images and labels."""
    networks: Any = importlib.import_module("sklearn.neural_network")
    x_train, y_train, x_test, y_test = split()
    classifier: Any = networks.MLPClassifier(
        hidden_layer_sizes=(HIDDEN,), random_state=SEED, max_iter=600
    )
    classifier.fit(x_train, y_train)
    weights: list[np.ndarray] = [np.asarray(w) for w in classifier.coefs_]
    biases: list[np.ndarray] = [np.asarray(b) for b in classifier.intercepts_]
    layers = list(zip(weights, biases, strict=True))
    return digits_model(layers), x_test, y_test


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cimflow.tools.train_digits", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model, images, labels = train()
    x_train, y_train, _, _ = split()
    calibration = _npz(x_train[:CALIBRATION_SIZE], y_train[:CALIBRATION_SIZE])
    write_output(out / "digits_mlp.onnx", model.SerializeToString())
    write_output(out / "digits_test.npz", _npz(images, labels))
    write_output(out / "digits_calibration.npz", calibration)
    print(f"wrote digits_mlp.onnx, digits_test.npz and digits_calibration.npz to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
