"""Functional verification: compiled traces, executed op by op, give
onnxruntime's results (``cimflow.cimsim.functional``, ``cim-verify``)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
from functional_models import FAMILIES, integer_linear, quantized_by_onnxruntime
from xdsl.context import Context

from cimflow.cimdialect import cim_tile
from cimflow.cimsim import functional
from cimflow.cimsim.functional import (
    FunctionalError,
    WeightInfo,
    run_functional,
    slice_placements,
)
from cimflow.cimsim.trace import MvmOp, ProgramOp, Trace, parse_trace
from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_model_weights, load_weights
from cimflow.hw_targets import load_target, shipped_targets, target_to_toml
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.pipelines import STRATEGIES
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools import cim_verify
from cimflow.tools import model_builders as mb
from cimflow.tools.cim_verify import (
    VerifyReport,
    compile_model,
    verify_model,
    verify_trace,
)

TARGETS = ("dynaplasia", "tiny")
DIMS = {"batch": 1, "sequence": 8}

MODELS = FAMILIES


QUANTIZED_BOUND = 0.25
"""Largest relative output error accepted from 8-bit quantization.

Measured: 0.7 % to 9 % on these models (vit_tiny's classifier is the worst).
Symmetric 8-bit operands carry a half-step error of 1/254 of the largest
magnitude per operand, which grows through 2 to 8 MVM layers, attention
softmaxes and normalizations; 0.25 leaves a 3x margin and still catches a
quantization pipeline that is wrong (a bad offset correction or shift is
off by whole multiples of the output)."""

ADC_LIMITED = {
    ("mobilenetv2", "dynaplasia"),
    ("mobilenetv2_dynamo", "dynaplasia"),
    ("wide_linear", "dynaplasia"),
}
"""Runs whose quantized error dynaplasia's 8-bit ADC dominates (see
``test_adc_resolution_limits_the_quantized_error``)."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("functional_models")


@pytest.fixture(scope="module")
def model_path(model_dir: Path) -> Callable[[str], Path]:
    def path(name: str) -> Path:
        file = model_dir / f"{name}.onnx"
        if not file.exists():
            onnx.save(MODELS[name](), file)
        return file

    return path


@pytest.fixture(scope="module")
def report(model_path: Callable[[str], Path]) -> Callable[[str, str], VerifyReport]:
    reports: dict[tuple[str, str], VerifyReport] = {}

    def get(name: str, target: str) -> VerifyReport:
        if (name, target) not in reports:
            reports[name, target] = verify_model(
                model_path(name), target, dims=DIMS, mode="both"
            )
        return reports[name, target]

    return get


def _segments(trace: Trace) -> int:
    return len({op.segment for op in trace.ops})


def _streamed(trace: Trace) -> set[str]:
    """Weights programmed more than once within one segment (chunks)."""
    slices = Counter(
        (op.segment, op.weight) for op in trace.ops if isinstance(op, ProgramOp)
    )
    return {weight for (_, weight), count in slices.items() if count > 1}


def _multi_row_tile_mvms(trace: Trace) -> list[MvmOp]:
    rows = trace.target.array.rows
    return [
        op
        for op in trace.ops
        if isinstance(op, MvmOp)
        and op.k[1] - op.k[0] > rows
        and op.weight in {w.name for w in trace.weights if w.groups == 1}
    ]


# --------------------------------------------------------------------------
# Compiled models match onnxruntime
# --------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exact_mode_matches_onnxruntime(
    report: Callable[[str, str], VerifyReport], name: str, target: str
) -> None:
    result = report(name, target)
    exact = result.mode("exact")
    assert exact.error is None
    assert result.passed, result.format()
    assert exact.outputs
    assert all(o.max_rel_error < 1e-5 for o in exact.outputs), result.format()
    assert not result.warnings


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_splits_operators_across_arrays(
    report: Callable[[str, str], VerifyReport], name: str
) -> None:
    """On tiny the verified traces re-program arrays between segments, cut
    weights into row tiles whose partial sums are accumulated, and stream
    weights in chunks."""
    trace = report(name, "tiny").trace
    assert _segments(trace) > 1
    assert _multi_row_tile_mvms(trace)
    assert _streamed(trace), name


def test_dynaplasia_and_tiny_compile_differently(
    report: Callable[[str, str], VerifyReport],
) -> None:
    big, small = report("resnet", "dynaplasia").trace, report("resnet", "tiny").trace
    assert _segments(big) == 1 < _segments(small)
    assert not _streamed(big) and _streamed(small)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_quantized_mode_reports_a_bounded_error(
    report: Callable[[str, str], VerifyReport], name: str, target: str
) -> None:
    quantized = report(name, target).mode("quantized")
    assert quantized.error is None
    assert all(o.passed is None for o in quantized.outputs)  # reported, not judged
    error = quantized.max_rel_error
    assert 0 < error < np.inf
    if (name, target) not in ADC_LIMITED:
        assert error < QUANTIZED_BOUND, (name, target, error)


@pytest.mark.parametrize(("name", "target"), sorted(ADC_LIMITED))
def test_adc_resolution_limits_the_quantized_error(
    report: Callable[[str, str], VerifyReport],
    model_path: Callable[[str], Path],
    name: str,
    target: str,
) -> None:
    """dynaplasia drives up to 320 rows of 1-bit cells into an 8-bit ADC,
    whose step is then ``rows / 255`` LSB. MobileNetV2 packs 35 depthwise 3x3
    groups into one array: each column sums at most 9 cells but is digitized
    over 315 driven rows. wide_linear sums K = 300 rows in one array; with
    offset-binary operands the most significant slice and input bit weigh
    2^14, so one rounding step there is comparable to the whole output. A
    10-bit ADC (exact up to 1023) brings both under the bound."""
    result = report(name, target)
    assert result.mode("quantized").max_rel_error > QUANTIZED_BOUND
    trace = result.trace
    array = dataclasses.replace(trace.target.array, adc_bits=10)
    finer = dataclasses.replace(
        trace, target=dataclasses.replace(trace.target, array=array)
    )
    rerun = verify_trace(finer, model_path(name), "quantized")
    assert 0 < rerun.mode("quantized").max_rel_error < QUANTIZED_BOUND


@pytest.mark.parametrize("target", ["tiny", "jain_wordline", "dynaplasia"])
def test_quantized_pipeline_is_exact_when_nothing_is_rounded(
    tmp_path: Path, target: str
) -> None:
    """Integer weights and inputs reaching +-127 quantize with scale 1; on a
    target whose ADC resolves every column sum (tiny: 32 rows x 3; jain: 32
    active rows x 1) bit slicing, bit-serial inputs, shift-add and the
    offset-binary corrections then reproduce the exact product. dynaplasia's
    8-bit ADC over 80 rows of 1-bit cells is also exact; K = 300 is not."""
    path = tmp_path / "integer.onnx"
    for k in (80, 300):
        onnx.save(integer_linear(k=k), path)
        trace = _trace(path, target)
        rng = np.random.default_rng(3)
        x = rng.integers(-127, 128, (4, k)).astype(np.float32)
        x[0, 0] = -127
        weights = load_weights(path, {})
        exact = run_functional(trace, {"x": x}, "exact", weights)
        quantized = run_functional(trace, {"x": x}, "quantized", weights)
        (name,) = exact
        expected = x.astype(np.float64) @ weights["w"].astype(np.float64)
        np.testing.assert_allclose(exact[name], expected, rtol=1e-6)
        difference = float(np.max(np.abs(quantized[name] - exact[name])))
        rounded = target == "dynaplasia" and k == 300
        if rounded:
            assert difference > 0
        else:
            assert difference <= 1e-6 * float(np.max(np.abs(expected)))


def test_quantized_mode_honours_the_models_scales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On tiny, whose ADC resolves every column sum, a model quantized by
    onnxruntime computes in quantized mode exactly what onnxruntime computes:
    the arrays hold the model's int8 weights (per-channel scales) and the
    DACs take its uint8 activations (scale and zero point). Quantizing the
    same values again with the target's symmetric scales does not."""
    path = quantized_by_onnxruntime(FAMILIES["cnn"](), tmp_path)
    loaded = load_model_weights(path, {})
    weights = [n for n in loaded.quantization if "weight" in n]
    assert len(weights) == 6  # five convolutions and the classifier
    assert all(len(loaded.quantization[n].scale) > 1 for n in weights)
    trace = _trace(path, "tiny")
    honoured = verify_trace(trace, path, "both")
    assert honoured.passed, honoured.format()
    assert honoured.mode("quantized").max_rel_error < 1e-5, honoured.format()
    again = verify_trace(trace, path, "quantized", weights=loaded.values)
    assert again.mode("quantized").max_rel_error > 1e-3

    def off_grid(self: functional.Grid, x: functional.Array) -> None:
        return None

    monkeypatch.setattr(functional.Grid, "codes", off_grid)
    inputs_again = verify_trace(trace, path, "quantized")
    assert inputs_again.mode("quantized").max_rel_error > 1e-3


def small_dynaplasia(directory: Path) -> str:
    """dynaplasia with 32 x 32 arrays (its 96 arrays, 12 a core): a
    1100-row weight takes 35 row tiles, as LLaMA-2-7B's down projection
    takes of the real arrays."""
    hw = load_target("dynaplasia")
    small = dataclasses.replace(
        hw,
        array=dataclasses.replace(
            hw.array, rows=32, cols=32, active_rows=32, adcs_per_array=32
        ),
        dual_mode=dataclasses.replace(hw.dual_mode, memory_capacity_bytes=128),
    )
    path = directory / "dynaplasia_32.toml"
    path.write_text(target_to_toml(small), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_a_weight_streamed_in_bands_of_row_tiles_is_exact(
    tmp_path: Path, strategy: str
) -> None:
    """A 1100 x 64 weight on 96 arrays of 32 x 32, 12 a core, streams in
    three bands of row tiles (12, 12 and 11), eight columns a chunk
    (``row_groups``): each band's sums added to the running sum of its
    columns, the result is ``x @ W`` under every strategy."""
    path = tmp_path / "banded.onnx"
    onnx.save(integer_linear(vectors=6, k=1100, n=64), path)
    target = small_dynaplasia(tmp_path)
    module = compile_model(path, target, f"cim-compile{{strategy={strategy}}}")
    trace = parse_trace(build_trace(module), str(path))
    bands = {op.k for op in trace.ops if isinstance(op, MvmOp) and op.weight == "w"}
    assert bands == {(0, 384), (384, 768), (768, 1100)}
    assert_banded_product_exact(trace, path)


def assert_banded_product_exact(trace: Trace, path: Path) -> None:
    """``trace`` of ``integer_linear(vectors=6, k=1100, n=64)`` saved at
    ``path`` computes ``x @ W`` exactly."""
    rng = np.random.default_rng(5)
    x = rng.integers(-127, 128, (6, 1100)).astype(np.float32)
    weights = load_weights(path, {})
    (result,) = run_functional(trace, {"x": x}, "exact", weights).values()
    expected = x.astype(np.float64) @ weights["w"].astype(np.float64)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


# --------------------------------------------------------------------------
# Weight duplication
# --------------------------------------------------------------------------


def _tile_module(path: Path, target: str) -> Any:
    module = import_onnx(path, DIMS)
    ConvertGraphToTilePass(target).apply(Context(), module)
    StaticAllocatePass(target).apply(Context(), module)
    return module


def _set_copies(module: Any, copies: dict[int, int]) -> list[str]:
    """Give the ``index``-th MVM ``copies`` weight copies; returns their weights."""
    mvms = [op for op in module.walk() if isinstance(op, cim_tile.MVMOp)]
    names: list[str] = []
    for index, count in copies.items():
        mvm = mvms[index]
        alloc = mvm.alloc
        assert alloc is not None
        mvm.alloc = cim_tile.AllocAttr.from_ints(alloc.field("segment"), count, 1)
        names.append(mvm.weight.data)
    return names


def _lower(module: Any, target: str) -> dict[str, Any]:
    ConvertTileToMetaPass(target).apply(Context(), module)
    return build_trace(module)


def test_weight_copies_verify(model_path: Callable[[str], Path]) -> None:
    """Copies split the input vectors (2 even, 3 uneven) and still give
    onnxruntime's outputs."""
    path = model_path("resnet")
    module = _tile_module(path, "dynaplasia")
    duplicated = _set_copies(module, {0: 2, 1: 3})
    trace = parse_trace(_lower(module, "dynaplasia"), str(path))
    for weight, count in zip(duplicated, (2, 3), strict=True):
        runs = [op for op in trace.ops if isinstance(op, MvmOp) and op.weight == weight]
        programs = [
            op for op in trace.ops if isinstance(op, ProgramOp) and op.weight == weight
        ]
        # each copy runs its share, in one piece or several (as its
        # cores' local buffers take it)
        assert len(programs) == count <= len(runs)
        assert len({op.arrays for op in runs}) == count
        spans = sorted(op.v for op in runs)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    result = verify_trace(trace, path, "both")
    assert result.passed, result.format()
    assert result.mode("exact").max_rel_error < 1e-5


def test_copies_computing_the_same_vectors_twice_fail(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("resnet")
    module = _tile_module(path, "dynaplasia")
    (weight,) = _set_copies(module, {0: 2})
    document = _lower(module, "dynaplasia")
    runs = [o for o in _ops(document) if o["kind"] == "mvm" and o["weight"] == weight]
    runs[1]["v"] = list(runs[0]["v"])
    result = verify_trace(parse_trace(document), path, "exact")
    assert not result.passed
    assert "reduction rows" in (result.mode("exact").error or "")


# --------------------------------------------------------------------------
# A wrong compiler makes verification fail
# --------------------------------------------------------------------------


def _trace(path: Path, target: str) -> Trace:
    return parse_trace(build_trace(compile_model(path, target, dims=DIMS)), str(path))


def _document(path: Path, target: str) -> dict[str, Any]:
    return build_trace(compile_model(path, target, dims=DIMS))


def _ops(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["ops"]


def _drop(document: dict[str, Any], op_id: int) -> dict[str, Any]:
    """The trace without op ``op_id``; ops that depended on it depend on its
    dependencies instead."""
    result = copy.deepcopy(document)
    ops = _ops(result)
    removed = ops.pop(op_id)

    def renumber(i: int) -> int:
        return i - 1 if i > op_id else i

    for op in ops:
        deps = set(op["deps"])
        if op_id in deps:
            deps = (deps - {op_id}) | set(removed["deps"])
        op["deps"] = sorted(renumber(d) for d in deps)
        op["id"] = renumber(op["id"])
    return result


def _insert(
    document: dict[str, Any], position: int, new: list[dict[str, Any]]
) -> dict[str, Any]:
    """The trace with ``new`` ops (ids and deps already final) before the op
    at ``position``; later ids and references to them shift."""
    result = copy.deepcopy(document)
    ops = _ops(result)
    for op in ops:
        op["deps"] = [d + len(new) if d >= position else d for d in op["deps"]]
        if op["id"] >= position:
            op["id"] += len(new)
    ops[position:position] = new
    return result


def _failed(result: VerifyReport) -> tuple[bool, str | None]:
    exact = result.mode("exact")
    return exact.passed, exact.error


def _refusal(document: dict[str, Any], path: Path) -> str | None:
    """Why a trace is wrong: cim-sim's check of its meaning when it is read,
    else the functional executor's error (None if it runs)."""
    try:
        trace = parse_trace(document)
    except CimError as refused:
        return str(refused)
    return _failed(verify_trace(trace, path, "exact"))[1]


def test_program_of_the_wrong_output_slice_fails(
    model_path: Callable[[str], Path],
) -> None:
    """The second chunk of a streamed weight programs columns [0, 8) again
    instead of [8, 16): the MVM computes with the wrong weights."""
    path = model_path("resnet")
    document = _document(path, "tiny")
    chunk = next(
        op for op in _ops(document) if op["kind"] == "program" and op["n"][0] > 0
    )
    width = chunk["n"][1] - chunk["n"][0]
    chunk["n"] = [0, width]
    result = verify_trace(parse_trace(document), path, "exact")
    passed, error = _failed(result)
    assert not passed and error is None
    assert result.mode("exact").max_rel_error > 1e-3


def test_missing_program_reads_stale_weights(model_path: Callable[[str], Path]) -> None:
    path = model_path("resnet")
    document = _document(path, "tiny")
    chunk = next(
        op for op in _ops(document) if op["kind"] == "program" and op["n"][0] > 0
    )
    result = verify_trace(parse_trace(_drop(document, chunk["id"])), path, "exact")
    passed, error = _failed(result)
    assert not passed and error is None


def test_missing_bias_accumulate_fails(model_path: Callable[[str], Path]) -> None:
    """The classifier has one row tile and a bias: without its accumulate the
    MVM output is read directly and lacks the bias."""
    path = model_path("resnet")
    document = _document(path, "dynaplasia")
    accumulate = next(
        op
        for op in _ops(document)
        if op.get("op") == "accumulate" and "fc.bias" in op["inputs"]
    )
    result = verify_trace(parse_trace(_drop(document, accumulate["id"])), path, "exact")
    passed, error = _failed(result)
    assert not passed and error is None


def test_missing_partial_sum_accumulate_is_reported(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("llama")
    document = _document(path, "tiny")
    # one finishing a column range of a weight streamed in row chunks: its
    # outputs are the sum of several blocks of partial sums
    accumulate = next(
        op
        for op in _ops(document)
        if op.get("op") == "accumulate" and op.get("block", [0])[0] == 1
    )
    result = verify_trace(parse_trace(_drop(document, accumulate["id"])), path, "exact")
    passed, error = _failed(result)
    assert not passed
    assert error is not None and "'accumulate' is missing" in error


def test_missing_dependency_on_a_program_is_reported(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("cnn")
    document = _document(path, "tiny")
    ops = _ops(document)
    mvm = next(op for op in ops if op["kind"] == "mvm")
    program = next(d for d in mvm["deps"] if ops[d]["kind"] == "program")
    mvm["deps"] = [d for d in mvm["deps"] if d != program]
    error = _refusal(document, path)
    assert error is not None
    assert f"op {mvm['id']} (mvm" in error
    assert f"set up by op {program}, but does not depend on it" in error


def test_reprogramming_arrays_before_their_mvm_finishes_is_reported(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("resnet")
    document = _document(path, "tiny")
    ops = _ops(document)
    chunk = next(op for op in ops if op["kind"] == "program" and op["n"][0] > 0)
    assert chunk["feed"] == "dram"  # one burst from DRAM
    barrier = next(
        op
        for op in ops
        if op["kind"] == "barrier" and op["segment"] == chunk["segment"]
    )
    chunk["deps"] = [barrier["id"]]  # no longer after the first chunk's MVM
    error = _refusal(document, path)
    assert error is not None and "overwrites array" in error
    assert "which is used by op" in error


def test_tensor_read_before_it_is_written_is_reported(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("cnn")
    document = _document(path, "dynaplasia")
    ops = _ops(document)
    pool = next(op for op in ops if op.get("op") == "global_pool")
    later = next(op for op in ops if op["id"] > pool["id"] and op["kind"] == "vector")
    pool["inputs"][0] = later["outputs"][0]
    _, error = _failed(verify_trace(parse_trace(document), path, "exact"))
    assert error is not None
    assert f"op {pool['id']} (vector global_pool" in error and "never produced" in error


def test_memory_mode_arrays_hold_tensors(model_path: Callable[[str], Path]) -> None:
    """The first activation loaded from DRAM (the image's window view) goes
    DRAM -> memory-mode arrays -> buffer; without the switch to memory mode
    the same transfers are an error."""
    path = model_path("cnn")
    document = _document(path, "dynaplasia")
    activations = {t["name"] for t in document["tensors"]}
    load = next(
        o
        for o in _ops(document)
        if o["kind"] == "load" and o["src"] == "dram" and o["tensor"] in activations
    )
    at: int = load["id"]
    arrays = [[90, 92]]
    common = {"segment": load["segment"], "name": "staging"}
    switch = {**common, "id": at, "kind": "switch", "deps": load["deps"]}
    switch |= {"arrays": arrays, "to": "memory"}
    staged = {**load, **common, "id": at + 1, "deps": [at], "dst": "memory"}
    staged["arrays"] = arrays
    staged.pop("allocs", None)  # the load that follows allocates in the buffer
    document = _insert(document, at, [switch, staged])
    moved = _ops(document)[at + 2]
    moved |= {"src": "memory", "arrays": arrays, "deps": [at + 1]}
    assert verify_trace(parse_trace(document), path, "exact").passed
    _ops(document)[at]["to"] = "compute"
    error = _refusal(document, path)
    assert error is not None and "in compute mode" in error


def test_cim_verify_exits_1_when_the_compiler_is_wrong(
    model_path: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = cim_verify.module_trace

    def broken(module: Any, origin: str = "<trace>") -> Trace:
        document = build_trace(module)
        for op in _ops(document):
            if op["kind"] == "program" and op["n"][0] > 0:
                op["n"] = [0, op["n"][1] - op["n"][0]]
        return parse_trace(document, origin)

    monkeypatch.setattr(cim_verify, "module_trace", broken)
    path = str(model_path("resnet"))
    argv = [path, "--target", "tiny", "--dim", "batch=1"]
    assert cim_verify.main(argv) == 1
    assert "FAIL" in capsys.readouterr().out
    monkeypatch.setattr(cim_verify, "module_trace", real)
    assert cim_verify.main(argv) == 0


# --------------------------------------------------------------------------
# The executor's inputs and errors
# --------------------------------------------------------------------------


def test_unknown_vector_operator_names_the_op(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("cnn")
    document = _document(path, "dynaplasia")
    pool = next(op for op in _ops(document) if op.get("op") == "global_pool")
    pool["op"] = "frobnicate"
    trace = parse_trace(document, "cnn.json")
    with pytest.raises(FunctionalError, match="frobnicate") as caught:
        run_functional(trace, {"image": np.zeros((1, 4, 12, 12))}, "exact")
    message = str(caught.value)
    assert message.startswith(f"cnn.json: op {pool['id']} (vector frobnicate")
    assert "\n" not in message


def test_trace_without_a_source_needs_weights(
    model_path: Callable[[str], Path],
) -> None:
    path = model_path("cnn")
    document = _document(path, "dynaplasia")
    document["model"]["source"] = ""
    trace = parse_trace(document, "t.json")
    inputs = {"image": np.zeros((1, 4, 12, 12), np.float32)}
    with pytest.raises(CimError, match="names no model source"):
        run_functional(trace, inputs, "exact")
    (out,) = run_functional(trace, inputs, "exact", load_weights(path, {})).values()
    assert out.shape == (1, 10) and out.dtype == np.float32


def test_shape_only_weights_are_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "shape_only.onnx"
    onnx.save(mb.resnet_tiny(weights="shape_only"), path)
    with pytest.raises(CimError, match="weight data") as caught:
        verify_model(path, "tiny", dims=DIMS)
    assert "\n" not in str(caught.value)


def test_inputs_are_checked(model_path: Callable[[str], Path]) -> None:
    trace = _trace(model_path("cnn"), "dynaplasia")
    weights = load_weights(model_path("cnn"), {})
    with pytest.raises(CimError, match="missing model input 'image'"):
        run_functional(trace, {}, "exact", weights)
    with pytest.raises(CimError, match=r"shape \[1, 4, 8, 8\]"):
        run_functional(trace, {"image": np.zeros((1, 4, 8, 8))}, "exact", weights)
    with pytest.raises(CimError, match="unknown mode"):
        run_functional(trace, {}, "approximate", weights)  # type: ignore[arg-type]


def test_slice_placements_follow_the_array_geometry() -> None:
    tiny = load_target("tiny")  # 32 x 32 cells, 4 bit slices: 8 outputs per array
    conv = WeightInfo("w", "oihw", 1, 147, 16)
    arrays, tiles = slice_placements(conv, (0, 147), (8, 16), tiny)
    assert arrays == 5
    assert [t.k for t in tiles] == [(0, 32), (32, 64), (64, 96), (96, 128), (128, 147)]
    assert {t.n for t in tiles} == {(8, 16)} and {t.row for t in tiles} == {0}
    arrays, tiles = slice_placements(conv, (32, 100), (4, 12), tiny)
    assert arrays == 6  # rows cut at 64, 96; outputs cut at 8
    assert (tiles[0].row, tiles[0].slot, tiles[0].k, tiles[0].n) == (
        0,
        4,
        (32, 64),
        (4, 8),
    )
    depthwise = WeightInfo("dw", "oihw", 8, 9, 1)  # 3 groups per array
    arrays, tiles = slice_placements(depthwise, (0, 72), (0, 8), tiny)
    assert arrays == 3
    assert [(t.array, t.row, t.slot) for t in tiles[:4]] == [
        (0, 0, 0),
        (0, 9, 1),
        (0, 18, 2),
        (1, 0, 0),
    ]
    with pytest.raises(CimError, match="different groups"):
        slice_placements(depthwise, (0, 18), (0, 1), tiny)


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def test_cim_verify_text_and_json(
    model_path: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(model_path("bert"))
    argv = [path, "--target", "tiny", "--dim", "batch=1", "--dim", "sequence=8"]
    assert cim_verify.main([*argv, "--mode", "both"]) == 0
    text = capsys.readouterr().out
    assert "exact (rtol 0.0001, atol 1e-05): PASS" in text
    assert "quantized (reported, not judged)" in text
    assert "last_hidden_state" in text and "pooler_output" in text
    assert cim_verify.main([*argv, "--mode", "quantized", "--json", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "tiny" and report["seed"] == 3
    assert report["dims"] == {"batch": 1, "sequence": 8}
    assert report["trace"]["segments"] > 1
    (mode,) = report["modes"]
    assert mode["mode"] == "quantized" and mode["passed"] is None
    assert [o["name"] for o in mode["outputs"]] == [
        "last_hidden_state",
        "pooler_output",
    ]
    assert all(0 < o["max_rel_error"] < QUANTIZED_BOUND for o in mode["outputs"])


def _vanishing_linear(tmp_path: Path) -> Path:
    """``x @ W`` with weights around 1e-9: outputs far below ``atol``."""
    model = integer_linear(vectors=2, k=16, n=4)
    weight = onnx.numpy_helper.to_array(model.graph.initializer[0]) * 1e-11
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(weight, "w"))
    path = tmp_path / "vanishing.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_a_vanishing_output_warns_and_fails_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _vanishing_linear(tmp_path)
    trace = cim_verify.module_trace(compile_model(path, "tiny"), str(path))
    zeros = {name: np.zeros_like(w) for name, w in load_weights(path, {}).items()}
    # a trace computing with all-zero weights is wrong, yet within atol
    wrong = verify_trace(trace, path, weights=zeros)
    assert wrong.passed
    (warning,) = wrong.warnings
    assert "output 'y' has max |reference|" in warning
    assert "an output of zeros would pass" in warning
    assert "warning: output 'y'" in wrong.format()
    assert not verify_trace(trace, path, weights=zeros, strict=True).passed
    strict = verify_trace(trace, path, strict=True)
    assert not strict.passed and "FAIL" in strict.format()
    assert strict.to_dict()["warnings"] == strict.warnings
    argv = [str(path), "--target", "tiny"]
    assert cim_verify.main(argv) == 0
    assert "warning: output 'y'" in capsys.readouterr().out
    assert cim_verify.main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["modes"][0]["outputs"][0]["vanishing"] is True
    assert captured.err.startswith("cim-verify: warning: output 'y'")
    assert cim_verify.main([*argv, "--strict"]) == 1
    # the same model with real magnitudes has no warning, strict or not
    real = tmp_path / "integer_linear.onnx"
    real.write_bytes(integer_linear(vectors=2, k=16, n=4).SerializeToString())
    report = verify_model(real, "tiny", strict=True)
    assert report.passed and not report.warnings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.onnx"], "missing.onnx: no such file"),
        (["{model}", "-p", "cim-compile{strategy=1}"], "option 'strategy' takes"),
        (["{model}", "--pipeline", "no-such-pass"], "unknown pass 'no-such-pass'"),
        (["{model}", "--pipeline", "cim-compile-static{"], "pipeline"),
        (["{model}", "--dim", "batch"], "--dim 'batch'"),
        (["{model}", "--target", "nowhere"], "nowhere"),
        (
            ["{model}", "--target", "tiny", "-p", "cim-compile-static{target=puma}"],
            "sets target",
        ),
        (["{model}", "--pipeline", "convert-graph-to-tile"], "cim_meta.schedule"),
        (["{model}", "--atol", "-1"], "--atol"),
    ],
)
def test_cim_verify_bad_input_is_one_line(
    model_path: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = [a.replace("{model}", str(model_path("cnn"))) for a in args]
    assert cim_verify.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cim-verify: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{model}", "--mode", "bogus"], "invalid choice"),
        ([], "required: model"),
        (["{model}", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cim_verify_usage_error_is_one_line_and_exits_2(
    model_path: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = [a.replace("{model}", str(model_path("cnn"))) for a in args]
    assert cim_verify.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert lines[0].startswith("cim-verify: error: ") and message in lines[0]
    assert lines[0].endswith("(see cim-verify --help)")


def test_reference_runs_without_onnxruntime_graph_rewrites(tmp_path: Path) -> None:
    """Found by the random-model property: onnxruntime's optimizer folds a
    zero Pad into MaxPool's pads, but MaxPool pads with -inf, so the
    optimized session disagrees with ONNX semantics. The reference must be
    the unoptimized model."""
    import onnxruntime as ort

    pads = onnx.numpy_helper.from_array(
        np.array([0, 0, 1, 0, 0, 0, 0, 1], dtype=np.int64), "pads"
    )
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
            onnx.helper.make_node(
                "MaxPool", ["p"], ["y"], kernel_shape=[2, 2], strides=[2, 2]
            ),
        ],
        "pad_pool",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 3, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 2, 2])],
        [pads],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8
    )
    path = tmp_path / "pad_pool.onnx"
    onnx.save(model, path)
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    # onnxruntime types run() outputs as a union with bare lists and dicts.
    optimized = cast(
        "np.ndarray[Any, Any]", ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    )
    # ONNX semantics: zeros padded on top and right win every window but one.
    expected = np.array([[[[0.0, 0.0], [-4.0, 0.0]]]], dtype=np.float32)
    report = verify_model(path, target="tiny", mode="exact")
    assert report.passed, report.format()
    if np.array_equal(optimized, expected):
        pytest.skip(
            f"onnxruntime {ort.__version__} no longer folds the Pad into MaxPool: "
            "nothing left to guard against"
        )


@pytest.fixture(scope="module")
def every_target_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cimflow.tools.model_builders import TINY_BUILDERS

    directory = tmp_path_factory.mktemp("every_target")
    paths: dict[str, Path] = {}
    for family in ("resnet", "llama"):
        paths[family] = directory / f"{family}.onnx"
        onnx.save(TINY_BUILDERS[family](weights="random"), paths[family])
    return paths


@pytest.mark.parametrize("family", ["resnet", "llama"])
@pytest.mark.parametrize("target", shipped_targets())
def test_every_shipped_target_computes_the_model(
    every_target_models: dict[str, Path], target: str, family: str
) -> None:
    report = verify_model(
        every_target_models[family],
        target=target,
        dims={"batch": 1, "sequence": 8},
        mode="both",
    )
    assert report.passed, report.to_dict()
    quantized = report.mode("quantized")
    assert quantized.error is None
    assert all(np.isfinite(o.max_abs_error) for o in quantized.outputs)


def test_a_trace_finds_its_weights_from_any_directory(
    model_path: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compiled from the model's folder by a relative path, the trace names
    the model by its absolute path, so it runs from anywhere else."""
    path = model_path("cnn")
    monkeypatch.chdir(path.parent)
    document = _document(Path(path.name), "dynaplasia")
    assert document["model"]["source"] == str(path.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    trace = parse_trace(document, "t.json")
    inputs = {"image": np.zeros((1, 4, 12, 12), np.float32)}
    (out,) = run_functional(trace, inputs, "exact").values()
    assert out.shape == (1, 10)
