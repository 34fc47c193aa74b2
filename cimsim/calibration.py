"""Post-training calibration of a trace's quantized pipeline, and the
metrics that say how close the chip's numbers stay to exact ones.

Calibration works as a deployment flow does (``docs/functional-verification.md``,
"Calibration"): the trace runs on calibration inputs, first exactly, to
see each MVM input's values, then quantized with the input grids those set,
to see the column sums each ADC converts. It sets:

- each MVM input's grid: unsigned codes ``0 .. 2^b - 1`` for a tensor that
  was never negative (after a ReLU), symmetric codes ``-(2^(b-1) - 1) ..
  2^(b-1) - 1`` otherwise, with the clipping value chosen by ``max`` (the
  largest magnitude), ``percentile`` (that percentile of the magnitudes) or
  ``mse`` (the clipping value of least mean squared quantization error
  among :data:`MSE_CANDIDATES` fractions of the largest magnitude; the
  search NVIDIA's TensorRT and PyTorch's histogram observers make);
- weight scales per output column (or one per tensor), from the weights;
- each ADC's full scale per column group (the columns of one weight bit
  slice in one array, per word-line pass): the largest sum the calibration
  inputs made there, so the ADC's codes span the sums that occur instead of
  every sum the driven rows could make; larger sums clip to its top code.

A model that carries its own scales (``QuantizeLinear`` /
``DequantizeLinear``) keeps them: they take precedence over calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from cimflow.errors import CimError

from .functional import (
    AdcKey,
    Array,
    Calibration,
    Grid,
    Recording,
    run_functional,
)
from .trace import Trace

if TYPE_CHECKING:
    from cimflow.frontend import WeightQuantization

Clipping = Literal["max", "percentile", "mse"]
CLIPPINGS: tuple[Clipping, ...] = get_args(Clipping)

DEFAULT_PERCENTILE = 99.99
"""The percentile of an input's magnitudes ``percentile`` clipping keeps."""

MSE_CANDIDATES = 100
"""Clipping values ``mse`` tries: ``i / MSE_CANDIDATES`` of the largest
magnitude, ``i = 1 .. MSE_CANDIDATES``."""


@dataclass(frozen=True)
class CalibrationOptions:
    """How :func:`calibrate` sets ranges (``cim-verify --calibrate``)."""

    clipping: Clipping = "max"
    percentile: float = DEFAULT_PERCENTILE
    per_channel_weights: bool = True
    adc_ranges: bool = True
    """Calibrate the ADCs' full scales (else they span every possible sum)."""

    def __post_init__(self) -> None:
        if self.clipping not in CLIPPINGS:
            raise CimError(
                f"unknown clipping '{self.clipping}' (expected {', '.join(CLIPPINGS)})"
            )
        if not (0 < self.percentile <= 100):
            raise CimError(
                f"the clipping percentile must be in (0, 100], got {self.percentile}"
            )


def _quantization_error(values: Array, clip: float, levels: int) -> float:
    scale = clip / levels
    q = np.clip(np.rint(values / scale), -levels, levels) * scale
    return float(np.mean((values - q) ** 2))


def clipping_value(values: Array, levels: int, options: CalibrationOptions) -> float:
    """The magnitude an input's codes reach: ``levels`` steps either side of
    zero cover ``[-clip, clip]`` (or ``[0, clip]``)."""
    magnitudes = np.abs(values.reshape(-1))
    peak = float(magnitudes.max(initial=0.0))
    if peak == 0.0 or options.clipping == "max":
        return peak
    if options.clipping == "percentile":
        return float(np.percentile(magnitudes, options.percentile)) or peak
    candidates = [peak * i / MSE_CANDIDATES for i in range(1, MSE_CANDIDATES)]
    candidates.append(peak)
    errors = [_quantization_error(magnitudes, c, levels) for c in candidates]
    return candidates[int(np.argmin(errors))]


def input_grid(values: Array, bits: int, options: CalibrationOptions) -> Grid:
    """The grid of an MVM input whose calibration values are ``values``."""
    if values.size and float(values.min()) >= 0.0:
        levels = 2**bits - 1
        clip = clipping_value(values, levels, options)
        return Grid(clip / levels if clip > 0 else 1.0, 0.0, 0, levels)
    levels = 2 ** (bits - 1) - 1
    clip = clipping_value(values, levels, options)
    return Grid(clip / levels if clip > 0 else 1.0, 0.0, -levels, levels)


def calibrate(
    trace: Trace,
    samples: Sequence[Mapping[str, Array]],
    options: CalibrationOptions | None = None,
    weights: Mapping[str, Array] | None = None,
    quantization: Mapping[str, WeightQuantization] | None = None,
) -> Calibration:
    """The calibration of ``trace`` from ``samples`` (model inputs by name,
    one mapping per calibration batch)."""
    options = options or CalibrationOptions()
    if not samples:
        raise CimError("calibration needs at least one sample of the inputs")
    seen: dict[str, list[Array]] = {}
    for sample in samples:
        recording = Recording()
        run_functional(trace, sample, "exact", weights, quantization, None, recording)
        for name, value in recording.inputs.items():
            seen.setdefault(name, []).append(value.reshape(-1))
    bits = trace.target.precision.activation_bits
    grids = {
        name: input_grid(np.concatenate(parts), bits, options)
        for name, parts in sorted(seen.items())
    }
    calibration = Calibration(grids, options.per_channel_weights, {})
    if not options.adc_ranges:
        return calibration
    peaks: dict[AdcKey, Array] = {}
    for sample in samples:
        run_functional(
            trace,
            sample,
            "quantized",
            weights,
            quantization,
            calibration,
            Recording(adc_peaks=peaks),
        )
    return Calibration(grids, options.per_channel_weights, peaks)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def sqnr_db(reference: Array, actual: Array) -> float:
    """Signal-to-quantization-noise ratio in decibels: the reference's
    power over the error's (``inf`` when they are equal)."""
    want = reference.astype(np.float64).reshape(-1)
    error = actual.astype(np.float64).reshape(-1) - want
    noise = float(np.sum(error**2))
    signal = float(np.sum(want**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(reference: Array, actual: Array) -> float:
    """Cosine similarity of two tensors taken as vectors (1 when both are
    zero, 0 when one is)."""
    a = reference.astype(np.float64).reshape(-1)
    b = actual.astype(np.float64).reshape(-1)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not (a.any() or b.any()) else 0.0
    return float(np.dot(a, b) / norms)


@dataclass(frozen=True)
class LayerError:
    """How far one MVM input of the quantized run is from the exact run's:
    the error every layer before it left (the first layer's is its input
    quantization only, which happens inside the MVM)."""

    tensor: str
    layer: str
    """The ONNX node of the first MVM that reads it."""
    sqnr_db: float
    cosine: float


def layer_errors(
    trace: Trace,
    inputs: Mapping[str, Array],
    calibration: Calibration | None = None,
    weights: Mapping[str, Array] | None = None,
    quantization: Mapping[str, WeightQuantization] | None = None,
) -> list[LayerError]:
    """Per MVM input, in the order the trace first reads them: SQNR and
    cosine of the quantized run's value against the exact run's."""
    exact, quantized = Recording(), Recording()
    run_functional(trace, inputs, "exact", weights, quantization, None, exact)
    run_functional(
        trace, inputs, "quantized", weights, quantization, calibration, quantized
    )
    return [
        LayerError(
            name,
            exact.layers[name],
            sqnr_db(value, quantized.inputs[name]),
            cosine(value, quantized.inputs[name]),
        )
        for name, value in exact.inputs.items()
        if name in quantized.inputs
    ]
