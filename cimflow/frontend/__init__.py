"""The ONNX frontend: prepare an ONNX model and import it as ``cim_graph``.

* :func:`prepare_model` cleans a model up (static shapes, folded constants,
  BatchNorm folded into convolutions) while keeping it standard ONNX;
* :func:`import_onnx` emits the ``cim_graph`` module of a model file;
* :func:`load_weights` returns the values of the weights the module names
  (:func:`load_model_weights` also the scales of dequantized ones);
* :func:`check_model_dims` checks that ``--dim`` names are the model's.
"""

from cimflow.frontend.onnx_import import (
    ModelWeights,
    WeightQuantization,
    check_model_dims,
    import_onnx,
    load_model_weights,
    load_weights,
    onnx_frontend,
)
from cimflow.frontend.prepare import prepare_model

__all__ = [
    "ModelWeights",
    "WeightQuantization",
    "check_model_dims",
    "import_onnx",
    "load_model_weights",
    "load_weights",
    "onnx_frontend",
    "prepare_model",
]
