"""``cim-verify``: check a compiled model against onnxruntime on real data.

Compiles an ONNX model exactly as ``cim-opt`` does (the ONNX frontend, then a
pass pipeline, then the ``cim-trace`` emitter, all in memory), draws seeded
random inputs, runs onnxruntime on the original ONNX file and the functional
executor (:mod:`cimflow.cimsim.functional`) on the trace, and compares every
output::

    cim-verify model.onnx --target tiny --dim batch=1 --mode both

``exact`` mode must match onnxruntime: every output's largest absolute
error at most ``--atol`` plus ``--rtol`` times its largest reference
magnitude; the exit status is 1 when it does not. An output whose largest
reference magnitude is itself within that tolerance (an output of zeros
would pass) is a warning, and with ``--strict`` a failure.
``quantized`` mode (the target's weight, activation, DAC and ADC precisions)
only reports its error. Errors in the input are one line on stderr, exit 1.

From Python, :func:`verify_model` compiles and checks a model file and
:func:`verify_trace` checks an already built trace (e.g. from a hand-edited
module) against the model it came from; both return a :class:`VerifyReport`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import onnx
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.universe import Universe
from xdsl.utils.arg_spec import ArgSpec
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException

from cimflow.analysis.zero_planes import PlaneCounts, ZeroPlaneProfile
from cimflow.cimsim.calibration import (
    CLIPPINGS,
    CalibrationOptions,
    Clipping,
    LayerError,
    calibrate,
    cosine,
    layer_errors,
    sqnr_db,
)
from cimflow.cimsim.functional import (
    Array,
    Calibration,
    FunctionalError,
    Mode,
    Recording,
    run_functional,
)
from cimflow.cimsim.trace import TensorType, Trace, parse_trace
from cimflow.cli import ArgumentParser, add_target_overrides, exit_status
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.output_files import write_output
from cimflow.pipeline_spec import checked_specs
from cimflow.universe import multiverse_context

if TYPE_CHECKING:
    from cimflow.frontend import WeightQuantization

DEFAULT_PIPELINE = "cim-compile-static"
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5
ModeChoice = Literal["exact", "quantized", "both"]
MODE_CHOICES: tuple[ModeChoice, ...] = ("exact", "quantized", "both")

_INDEX_PASS_THROUGH = frozenset(
    {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand"}
)
"""Nodes an index tensor may go through on its way to a Gather."""

_GATHERS = frozenset({"Gather", "GatherElements", "GatherND"})


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputCheck:
    """One model output compared with onnxruntime."""

    name: str
    """The ONNX output name."""
    trace_name: str
    """The tensor the trace computes it into."""
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    """``max_abs_error`` over the largest magnitude of the reference."""
    passed: bool | None
    """Within tolerance (exact mode); ``None`` in quantized mode (not judged)."""
    reference_scale: float = 0.0
    """The largest finite magnitude of the reference output."""
    tolerance: float | None = None
    """The largest absolute error the check accepts; None for integer and
    boolean outputs, which must be equal."""
    cosine: float = 1.0
    """Cosine similarity with the reference (the outputs as vectors)."""
    sqnr_db: float = math.inf
    """The reference's power over the error's, in decibels."""

    @property
    def vanishing(self) -> bool:
        """A judged float output so small that zeros would pass its check:
        its largest reference magnitude is within its tolerance."""
        return (
            self.passed is not None
            and self.tolerance is not None
            and self.reference_scale <= self.tolerance
        )

    def warning(self) -> str | None:
        """Why this output's check proves little, if it does."""
        if not self.vanishing:
            return None
        return (
            f"output '{self.name}' has max |reference| {self.reference_scale:.3g}, "
            f"within its tolerance {self.tolerance or 0.0:.3g}: an output of "
            "zeros would pass (--strict fails)"
        )


@dataclass(frozen=True)
class ModeCheck:
    """All outputs of one numeric mode."""

    mode: Mode
    outputs: tuple[OutputCheck, ...]
    error: str | None = None
    """Why the trace could not be executed (a compiler bug), if it could not."""
    seconds: float = 0.0
    layers: tuple[LayerError, ...] = ()
    """Per MVM input, the quantized run's distance from the exact run's
    (quantized mode, when asked for)."""
    zero_planes: Mapping[str, PlaneCounts] = field(
        default_factory=lambda: dict[str, PlaneCounts]()
    )
    """Per MVM weight, the input bit-planes its arrays drove and those zero
    (quantized mode, when asked for: :class:`Recording.input_planes`)."""

    @property
    def passed(self) -> bool:
        """No execution error and every judged output within tolerance."""
        return self.error is None and all(o.passed is not False for o in self.outputs)

    @property
    def warnings(self) -> list[str]:
        """One line per output whose check an output of zeros would pass."""
        return [w for o in self.outputs if (w := o.warning()) is not None]

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over the outputs (inf after an error)."""
        if self.error is not None:
            return math.inf
        return max((o.max_rel_error for o in self.outputs), default=0.0)


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify_model` / :func:`verify_trace`."""

    model: str
    target: str
    pipeline: str
    dims: Mapping[str, int]
    seed: int
    rtol: float
    atol: float
    modes: tuple[ModeCheck, ...]
    trace: Trace = field(repr=False, compare=False)
    strict: bool = False
    """Whether a vanishing output (:attr:`OutputCheck.vanishing`) fails."""
    calibration: str = ""
    """How quantized mode was calibrated (empty: it was not)."""

    @property
    def warnings(self) -> list[str]:
        """The exact-mode outputs whose check proves little, one line each."""
        return [w for m in self.modes if m.mode == "exact" for w in m.warnings]

    @property
    def passed(self) -> bool:
        """Every exact-mode check passed (quantized mode only reports) and,
        if :attr:`strict`, no output vanishes."""
        exact = all(m.passed for m in self.modes if m.mode == "exact")
        return exact and not (self.strict and self.warnings)

    def mode(self, mode: Mode) -> ModeCheck:
        """The check of one mode (a ``KeyError`` if it did not run)."""
        for check in self.modes:
            if check.mode == mode:
                return check
        raise KeyError(mode)

    def to_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (``cim-verify --json``)."""
        return {
            "model": self.model,
            "target": self.target,
            "pipeline": self.pipeline,
            "dims": dict(self.dims),
            "seed": self.seed,
            "rtol": self.rtol,
            "atol": self.atol,
            "strict": self.strict,
            "calibration": self.calibration or None,
            "passed": self.passed,
            "warnings": self.warnings,
            "trace": trace_summary(self.trace),
            "modes": [
                {
                    "mode": m.mode,
                    "passed": m.passed if m.mode == "exact" else None,
                    "error": m.error,
                    "seconds": round(m.seconds, 3),
                    "layers": [
                        {
                            "tensor": layer.tensor,
                            "layer": layer.layer,
                            "sqnr_db": _json_float(layer.sqnr_db),
                            "cosine": _json_float(layer.cosine),
                        }
                        for layer in m.layers
                    ],
                    "outputs": [
                        {
                            "name": o.name,
                            "trace_name": o.trace_name,
                            "shape": list(o.shape),
                            "max_abs_error": _json_float(o.max_abs_error),
                            "max_rel_error": _json_float(o.max_rel_error),
                            "reference_scale": _json_float(o.reference_scale),
                            "cosine": _json_float(o.cosine),
                            "sqnr_db": _json_float(o.sqnr_db),
                            "vanishing": o.vanishing,
                            "passed": o.passed,
                        }
                        for o in m.outputs
                    ],
                }
                for m in self.modes
            ],
        }

    def format(self) -> str:
        """The report as text (``cim-verify`` without ``--json``)."""
        summary = trace_summary(self.trace)
        dims = " ".join(f"{k}={v}" for k, v in sorted(self.dims.items()))
        lines = [
            f"model     {self.model}{f' ({dims})' if dims else ''}",
            f"target    {self.target}",
            f"pipeline  {self.pipeline}",
            f"trace     {summary['ops']} ops, {summary['segments']} segments, "
            f"{summary['mvm']} mvm, {summary['program']} program",
            f"inputs    seed {self.seed}",
        ]
        for check in self.modes:
            if check.mode == "exact":
                failed = not check.passed or (self.strict and check.warnings)
                verdict = "FAIL" if failed else "PASS"
                head = f"exact (rtol {self.rtol:g}, atol {self.atol:g}): {verdict}"
            else:
                how = f", calibrated: {self.calibration}" if self.calibration else ""
                head = f"quantized (reported, not judged{how}):"
            lines.append(head)
            if check.error is not None:
                lines.append(f"  error: {check.error}")
            width = max((len(o.name) for o in check.outputs), default=0)
            for out in check.outputs:
                status = ""
                if out.passed is not None:
                    status = "  ok" if out.passed else "  OUT OF TOLERANCE"
                closeness = (
                    f"  cosine {out.cosine:.4f}  SQNR {out.sqnr_db:.1f} dB"
                    if check.mode == "quantized"
                    else ""
                )
                lines.append(
                    f"  {out.name:<{width}}  {list(out.shape)}  max abs "
                    f"{out.max_abs_error:.3g}  max rel {out.max_rel_error:.3g}"
                    f"{closeness}{status}"
                )
            if check.mode == "exact":
                lines.extend(f"  warning: {w}" for w in check.warnings)
            if check.layers:
                lines.append("  per layer input (SQNR dB, cosine):")
                lines.extend(
                    f"    {layer.layer or layer.tensor}  {layer.sqnr_db:.1f}  "
                    f"{layer.cosine:.4f}"
                    for layer in check.layers
                )
        return "\n".join(lines) + "\n"


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def trace_summary(trace: Trace) -> dict[str, int]:
    """Op counts of a trace: ``ops``, ``segments`` and one count per kind."""
    counts: dict[str, int] = {
        "ops": len(trace.ops),
        "segments": len({op.segment for op in trace.ops}),
    }
    for kind in ("load", "store", "move", "program", "mvm", "vector", "switch"):
        counts[kind] = sum(1 for op in trace.ops if op.kind == kind)
    return counts


# --------------------------------------------------------------------------
# Compiling
# --------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def build_pipeline(spec: str, target: str | None = None) -> PassPipeline:
    """Parse a pass pipeline as ``cim-opt -p`` does; ``target`` is given to
    every pass that has a ``target`` option (a conflicting explicit value is
    an error)."""
    available = Universe.get_multiverse().all_passes
    specs = checked_specs(spec, available)
    if not specs:
        raise CimError("the pipeline is empty")
    passes: list[ModulePass] = []
    for pass_spec in specs:
        factory = available.get(pass_spec.name)
        if factory is None:
            raise CimError(f"pipeline '{spec}': unknown pass '{pass_spec.name}'")
        pass_type = factory()
        takes_target = any(f.name == "target" for f in dataclasses.fields(pass_type))
        if takes_target and target is not None:
            given = pass_spec.parameters.get("target")
            if given is not None and list(given) != [target]:
                raise CimError(
                    f"pipeline '{spec}': pass '{pass_spec.name}' sets target "
                    f"{list(given)}, but --target is '{target}'"
                )
            pass_spec = ArgSpec(
                pass_spec.name, {**pass_spec.parameters, "target": (target,)}
            )
        try:
            passes.append(pass_type.from_pass_spec(pass_spec))
        except (ArgSpecParseError, ValueError, TypeError) as error:
            raise CimError(
                f"pipeline '{spec}': pass '{pass_spec.name}': {_one_line(error)}"
            ) from None
    return PassPipeline(tuple(passes))


def compile_model(
    path: str | Path,
    target: str | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    dims: Mapping[str, int] | None = None,
) -> ModuleOp:
    """The module ``cim-opt PATH --dim ... -p PIPELINE`` would print."""
    from cimflow.frontend import import_onnx
    from cimflow.frontend.model_file import check_readable_file

    source = Path(path)
    check_readable_file(source)
    passes = build_pipeline(pipeline, target)
    module = import_onnx(source, dict(dims or {}))
    try:
        passes.apply(multiverse_context(), module)
    except DiagnosticException as error:
        raise CimError(_one_line(error)) from None
    return module


def module_trace(module: ModuleOp, origin: str = "<trace>") -> Trace:
    """The validated trace of a compiled module (``-t cim-trace``, in memory)."""
    from cimflow.passes.trace_target import build_trace

    return parse_trace(build_trace(module), origin)


# --------------------------------------------------------------------------
# Inputs and the reference
# --------------------------------------------------------------------------


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The static shapes shape inference finds for the model's values."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    shapes: dict[str, tuple[int, ...]] = {
        t.name: tuple(int(d) for d in t.dims) for t in model.graph.initializer
    }
    graph = inferred.graph
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(
            d.HasField("dim_value") for d in dims
        ):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _index_bound(
    node: onnx.NodeProto, shapes: Mapping[str, tuple[int, ...]]
) -> int | None:
    """How far the indices input of a gathering node may reach, if known."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    shape = shapes.get(node.input[0])
    if shape is None:
        return None
    if node.op_type in ("Gather", "GatherElements"):
        axis = attrs.get("axis", 0)
        if isinstance(axis, int) and -len(shape) <= axis < len(shape):
            return int(shape[axis])
        return None
    batch = attrs.get("batch_dims", 0)
    depth = shapes.get(node.input[1], (0,))[-1]
    indexed = shape[batch : batch + depth] if isinstance(batch, int) else ()
    return min(indexed) if indexed else None


def _gather_rows(
    model: onnx.ModelProto, name: str, shapes: Mapping[str, tuple[int, ...]]
) -> int | None:
    """The smallest extent the input ``name`` indexes through a Gather,
    GatherElements or GatherND."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    rows: int | None = None
    frontier, seen = [name], {name}
    while frontier:
        value = frontier.pop()
        for node in consumers.get(value, []):
            if (
                node.op_type in _GATHERS
                and len(node.input) > 1
                and node.input[1] == value
            ):
                size = _index_bound(node, shapes)
                if size is not None:
                    rows = size if rows is None else min(rows, size)
            elif node.op_type in _INDEX_PASS_THROUGH and node.input[0] == value:
                for out in node.output:
                    if out not in seen:
                        seen.add(out)
                        frontier.append(out)
    return rows


_ONNX_INTEGERS: dict[int, type[np.integer[Any]]] = {
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
}


def make_inputs(
    model: onnx.ModelProto, dims: Mapping[str, int], seed: int
) -> dict[str, Array]:
    """Seeded random inputs for every graph input of an ONNX model.

    Floats ~ N(0, 1); integer inputs that index a Gather, GatherElements or
    GatherND (token and position ids) uniform in ``[0, size)`` of the
    dimension they index; integer inputs named like
    masks all ones; other integers in ``[0, 4)``; booleans uniform.
    """
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[int, ...]] | None = None
    feeds: dict[str, Array] = {}
    for info in model.graph.input:
        if info.name in initializers:
            continue
        tensor_type = info.type.tensor_type
        shape: list[int] = []
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(dim.dim_value)
            elif dim.dim_param in dims:
                shape.append(dims[dim.dim_param])
            else:
                raise CimError(
                    f"input '{info.name}' has symbolic dimension "
                    f"'{dim.dim_param}'; pass --dim {dim.dim_param}=VALUE"
                )
        elem = int(tensor_type.elem_type)
        if elem in _ONNX_INTEGERS:
            dtype = _ONNX_INTEGERS[elem]
            if "mask" in info.name.lower():
                feeds[info.name] = np.ones(shape, dtype=dtype)
                continue
            if shapes is None:
                shapes = _static_shapes(model)
            rows = _gather_rows(model, info.name, shapes)
            high = rows if rows is not None else 4
            feeds[info.name] = rng.integers(0, high, shape).astype(dtype)
        elif elem == onnx.TensorProto.BOOL:
            feeds[info.name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif elem in (
            onnx.TensorProto.FLOAT,
            onnx.TensorProto.DOUBLE,
            onnx.TensorProto.FLOAT16,
        ):
            dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
            feeds[info.name] = rng.standard_normal(shape).astype(dtype)
        else:
            raise CimError(
                f"input '{info.name}' has type "
                f"{onnx.helper.tensor_dtype_to_string(elem)}, which cim-verify "
                "cannot draw"
            )
    return feeds


def reference_outputs(
    model: str | Path | onnx.ModelProto, feeds: Mapping[str, Array]
) -> list[tuple[str, Array]]:
    """onnxruntime's outputs of an ONNX file (or in-memory model), in graph
    output order."""
    import onnxruntime

    if isinstance(model, onnx.ModelProto):
        source: str | bytes = model.SerializeToString()
        origin = model.graph.name or "<model>"
    else:
        source = origin = str(model)
    runtime = cast(Any, onnxruntime)
    options = runtime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    # The reference is the model's ONNX semantics: onnxruntime's graph
    # rewrites are not always exact (its Pad fusion folds a zero Pad into
    # MaxPool, which pads with -inf), so none of them run.
    options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = runtime.InferenceSession(
            source, options, providers=["CPUExecutionProvider"]
        )
        names = [cast(str, o.name) for o in session.get_outputs()]
        values = cast(list[Array], session.run(names, dict(feeds)))
    except Exception as error:
        raise CimError(
            f"{origin}: onnxruntime cannot run it: {_one_line(error)}"
        ) from None
    return [(n, np.asarray(v)) for n, v in zip(names, values, strict=True)]


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------


def compare(
    trace_name: str,
    name: str,
    actual: Array,
    expected: Array,
    judged: bool,
    rtol: float,
    atol: float,
) -> OutputCheck:
    """Errors of one output; ``judged`` outputs must be within tolerance.

    The largest absolute difference must not exceed ``atol + rtol * scale``,
    where ``scale`` is the output's largest reference magnitude (so
    ``max_rel_error <= rtol`` passes); non-finite values must match exactly,
    integer and boolean outputs everywhere.
    """
    shape = tuple(int(d) for d in expected.shape)
    if actual.shape != expected.shape:
        return OutputCheck(name, trace_name, shape, math.inf, math.inf, False)
    exact_type = expected.dtype == np.bool_ or np.issubdtype(expected.dtype, np.integer)
    got = actual.astype(np.float64)
    want = expected.astype(np.float64)
    finite = np.isfinite(got) & np.isfinite(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if np.any(~finite & ~same):
        abs_error = math.inf
    else:
        abs_error = float(np.max(np.abs(got - want)[finite], initial=0.0))
    scale = float(np.max(np.abs(want)[np.isfinite(want)], initial=0.0))
    zero_scale = math.inf if abs_error > 0 else 0.0
    rel_error = abs_error / scale if scale > 0 else zero_scale
    tolerance = atol + rtol * scale
    within = bool(np.all(same)) if exact_type else abs_error <= tolerance
    both_finite = bool(np.all(np.isfinite(got)) and np.all(np.isfinite(want)))
    return OutputCheck(
        name,
        trace_name,
        shape,
        abs_error,
        rel_error,
        within if judged else None,
        scale,
        None if exact_type else tolerance,
        cosine(want, got) if both_finite else math.nan,
        sqnr_db(want, got) if both_finite else math.nan,
    )


def check_trace(
    trace: Trace,
    feeds: Mapping[str, Array],
    reference: Sequence[tuple[str, Array]],
    mode: Mode,
    weights: Mapping[str, Array],
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    quantization: Mapping[str, WeightQuantization] | None = None,
    calibration: Calibration | None = None,
    per_layer: bool = False,
    count_planes: bool = False,
) -> ModeCheck:
    """Run the trace in one mode and compare its outputs with ``reference``.

    Outputs are matched by their ONNX names, which the compiler keeps; a
    trace whose outputs are named otherwise is matched by position.
    ``calibration`` sets quantized mode's ranges; ``per_layer`` adds, in
    quantized mode, each MVM input's distance from its exact value;
    ``count_planes`` counts, in quantized mode, each MVM's zero input
    bit-planes.
    """
    outputs = trace.model.outputs
    if len(outputs) != len(reference):
        raise CimError(
            f"{trace.origin}: the trace has {len(outputs)} outputs, the ONNX "
            f"model {len(reference)}"
        )
    inputs: dict[str, Array] = {}
    for spec in trace.model.inputs:
        if spec.name not in feeds:
            raise CimError(
                f"{trace.origin}: the trace reads input '{spec.name}', which the "
                "ONNX model does not have"
            )
        inputs[spec.name] = feeds[spec.name]
    start = time.perf_counter()
    layers: tuple[LayerError, ...] = ()
    recording = (
        Recording(input_planes={}) if count_planes and mode == "quantized" else None
    )
    try:
        results = run_functional(
            trace, inputs, mode, weights, quantization or {}, calibration, recording
        )
        if per_layer and mode == "quantized":
            layers = tuple(
                layer_errors(trace, inputs, calibration, weights, quantization or {})
            )
    except FunctionalError as error:
        return ModeCheck(mode, (), str(error), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    checks = tuple(
        compare(
            spec.name,
            name,
            results[spec.name],
            expected,
            mode == "exact",
            rtol,
            atol,
        )
        for spec, (name, expected) in zip(
            outputs, _by_name(outputs, reference), strict=True
        )
    )
    planes = {} if recording is None else recording.input_planes or {}
    return ModeCheck(mode, checks, None, seconds, layers, planes)


def _by_name(
    outputs: Sequence[TensorType], reference: Sequence[tuple[str, Array]]
) -> Sequence[tuple[str, Array]]:
    """``reference`` reordered to follow the trace's output names, if it can."""
    named = dict(reference)
    if all(spec.name in named for spec in outputs):
        return [(spec.name, named[spec.name]) for spec in outputs]
    return reference


def _modes(mode: ModeChoice | Mode) -> tuple[Mode, ...]:
    if mode == "both":
        return ("exact", "quantized")
    if mode not in ("exact", "quantized"):
        raise CimError(f"unknown mode '{mode}' (expected exact, quantized or both)")
    return (mode,)


DEFAULT_CALIBRATION_SAMPLES = 8


@dataclass(frozen=True)
class Calibrating:
    """Quantized mode calibrated on ``samples`` seeded input draws."""

    samples: int = DEFAULT_CALIBRATION_SAMPLES
    options: CalibrationOptions = field(default_factory=CalibrationOptions)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise CimError(f"--calibrate needs at least 1 sample, got {self.samples}")

    def text(self) -> str:
        o = self.options
        clip = (
            f"percentile {o.percentile:g}" if o.clipping == "percentile" else o.clipping
        )
        weights = "per channel" if o.per_channel_weights else "per tensor"
        adc = "ADC ranges" if o.adc_ranges else "full-scale ADCs"
        return f"{self.samples} samples, {clip} clipping, {weights} weights, {adc}"


def verify_trace(
    trace: Trace,
    path: str | Path,
    mode: ModeChoice | Mode = "exact",
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    pipeline: str = "",
    weights: Mapping[str, Array] | None = None,
    strict: bool = False,
    quantization: Mapping[str, WeightQuantization] | None = None,
    calibration: Calibrating | None = None,
    count_planes: bool = False,
    per_layer: bool = False,
) -> VerifyReport:
    """Check an already built ``trace`` of the ONNX model at ``path``.

    Inputs are drawn from ``seed`` for the model's graph inputs (the trace's
    ``model.dims`` fix symbolic dimensions); weights default to the
    frontend's ``load_weights`` of ``path``, and ``quantization`` (the scales
    of dequantized weights, which quantized mode honours) to the model's when
    the weights are loaded from it. With ``calibration``, quantized mode is
    calibrated on inputs drawn from the seeds after ``seed``;
    ``count_planes`` counts its zero input bit-planes and ``per_layer``
    reports each MVM input's error (:func:`check_trace`).
    """
    from cimflow.frontend import load_model_weights

    modes = _modes(mode)
    source = Path(path)
    dims = dict(trace.model.dims)
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as error:
        raise CimError(
            f"{path}: cannot read the ONNX model: {_one_line(error)}"
        ) from None
    if weights is None:
        loaded = load_model_weights(source, dims)
        weights = loaded.values
        if quantization is None:
            quantization = loaded.quantization
    feeds = make_inputs(model, dims, seed)
    reference = reference_outputs(source, feeds)
    calibrated: Calibration | None = None
    if calibration is not None and "quantized" in modes:
        names = [spec.name for spec in trace.model.inputs]
        samples = [
            {n: v for n, v in make_inputs(model, dims, s).items() if n in names}
            for s in range(seed + 1, seed + 1 + calibration.samples)
        ]
        try:
            calibrated = calibrate(
                trace, samples, calibration.options, weights, quantization
            )
        except FunctionalError:
            calibrated = None  # the quantized check reports the trace's error
    checks = tuple(
        check_trace(
            trace,
            feeds,
            reference,
            m,
            weights,
            rtol,
            atol,
            quantization,
            calibrated,
            per_layer,
            count_planes,
        )
        for m in modes
    )
    return VerifyReport(
        model=str(path),
        target=trace.target.name,
        pipeline=pipeline,
        dims=dims,
        seed=seed,
        rtol=rtol,
        atol=atol,
        modes=checks,
        trace=trace,
        strict=strict,
        calibration="" if calibration is None else calibration.text(),
    )


def verify_model(
    path: str | Path,
    target: str | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    dims: Mapping[str, int] | None = None,
    mode: ModeChoice | Mode = "exact",
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    strict: bool = False,
    calibration: Calibrating | None = None,
    count_planes: bool = False,
    per_layer: bool = False,
) -> VerifyReport:
    """Compile the ONNX model at ``path`` and check it against onnxruntime.

    ``target`` is given to every pass of ``pipeline`` that takes one (the
    passes' own default, ``dynaplasia``, when ``None``); ``dims`` fix symbolic
    input dimensions; ``mode`` is ``exact``, ``quantized`` or ``both``;
    ``strict`` fails an exact-mode output so small that zeros would pass.
    Raises :class:`CimError` for bad input; a wrong trace is a failed check,
    not an exception.
    """
    _modes(mode)
    module = compile_model(path, target, pipeline, dims)
    trace = module_trace(module, str(path))
    return verify_trace(
        trace,
        path,
        mode,
        seed,
        rtol,
        atol,
        pipeline,
        strict=strict,
        calibration=calibration,
        count_planes=count_planes,
        per_layer=per_layer,
    )


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="cim-verify",
        description="Compile an ONNX model and check the compiled trace against "
        "onnxruntime on seeded random inputs (docs/functional-verification.md).",
    )
    parser.add_argument("model", help="the ONNX model file")
    parser.add_argument(
        "--target",
        help="hardware target given to every pass that takes one "
        "(default: the passes' own, dynaplasia)",
    )
    parser.add_argument(
        "--pipeline",
        "-p",
        default=DEFAULT_PIPELINE,
        help=f"pass pipeline, as cim-opt -p (default: {DEFAULT_PIPELINE})",
    )
    parser.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of a symbolic ONNX input dimension (repeatable)",
    )
    add_target_overrides(parser)
    parser.add_argument("--mode", choices=MODE_CHOICES, default="exact")
    parser.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    parser.add_argument(
        "--rtol",
        type=float,
        default=DEFAULT_RTOL,
        help="exact-mode tolerance relative to each output's largest reference "
        f"magnitude (default {DEFAULT_RTOL:g})",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=DEFAULT_ATOL,
        help=f"exact-mode absolute tolerance (default {DEFAULT_ATOL:g})",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) when an output's largest reference magnitude is "
        "within its tolerance, so that an output of zeros would pass",
    )
    parser.add_argument(
        "--calibrate",
        type=int,
        metavar="N",
        help="calibrate quantized mode on N seeded input draws (seeds after "
        "--seed): input ranges, per-channel weight scales, ADC ranges",
    )
    parser.add_argument(
        "--clipping",
        choices=CLIPPINGS,
        default=CalibrationOptions.clipping,
        help="how calibration sets an input's range (default "
        f"{CalibrationOptions.clipping})",
    )
    parser.add_argument(
        "--percentile",
        type=float,
        default=CalibrationOptions.percentile,
        help="the percentile --clipping percentile keeps (default "
        f"{CalibrationOptions.percentile:g})",
    )
    parser.add_argument(
        "--tensor-weight-scales",
        action="store_true",
        help="calibrate one scale per weight, not one per output channel",
    )
    parser.add_argument(
        "--full-scale-adcs",
        action="store_true",
        help="keep every ADC's range at the largest sum its rows could make",
    )
    parser.add_argument(
        "--per-layer",
        action="store_true",
        help="report each MVM input's SQNR and cosine (quantized mode)",
    )
    parser.add_argument(
        "--zero-planes",
        metavar="FILE",
        help="write, per MVM weight, how many of its input bit-planes the quantized "
        "run drove and how many were zero (a profile for cim-input-sparsity; "
        "needs --mode quantized or both)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE, not stdout"
    )
    return parser


def _calibrating(args: argparse.Namespace) -> Calibrating | None:
    """The calibration the options ask for (``None``: uncalibrated)."""
    samples = cast("int | None", args.calibrate)
    if samples is None:
        return None
    options = CalibrationOptions(
        cast(Clipping, args.clipping),
        cast(float, args.percentile),
        not cast(bool, args.tensor_weight_scales),
        not cast(bool, args.full_scale_adcs),
    )
    return Calibrating(samples, options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cim-verify``: 0 when exact mode passes (or only
    quantized mode ran), 1 when it fails or the input is bad."""
    from cimflow.frontend import check_model_dims
    from cimflow.tools.cim_opt import parse_dims

    try:
        args = _parser().parse_args(argv)
        for name in ("rtol", "atol"):
            value = cast(float, getattr(args, name))
            if not (math.isfinite(value) and value >= 0):
                raise CimError(f"--{name} must be a non-negative number, got {value}")
        dims = parse_dims(cast(list[str], args.dim))
        check_model_dims(Path(cast(str, args.model)), dims)
        calibration = _calibrating(args)
        planes_file = cast("str | None", args.zero_planes)
        if planes_file is not None and args.mode == "exact":
            raise CimError("--zero-planes needs --mode quantized or both")
        with overridden(cast(list[str], args.set)):
            report = verify_model(
                cast(str, args.model),
                cast("str | None", args.target),
                cast(str, args.pipeline),
                dims,
                cast(ModeChoice, args.mode),
                cast(int, args.seed),
                cast(float, args.rtol),
                cast(float, args.atol),
                cast(bool, args.strict),
                calibration,
                planes_file is not None,
                cast(bool, args.per_layer),
            )
        text = (
            json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n"
            if cast(bool, args.json)
            else report.format()
        )
        if planes_file is not None:
            quantized = report.mode("quantized")
            if quantized.error is not None:
                raise CimError(
                    f"no profile: the quantized run failed: {quantized.error}"
                )
            profile = ZeroPlaneProfile(
                report.target, report.seed, quantized.zero_planes
            )
            write_output(planes_file, profile.to_json())
        output = cast("str | None", args.output)
        if output is not None:
            write_output(output, text)
    except CimError as error:
        print(f"cim-verify: error: {error}", file=sys.stderr)
        return exit_status(error)
    except (DiagnosticException, ValueError, OSError) as error:
        print(f"cim-verify: error: {_one_line(error)}", file=sys.stderr)
        return 1
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    if output is not None or cast(bool, args.json):
        # the text report on stdout lists them itself
        for warning in report.warnings:
            print(f"cim-verify: warning: {warning}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
