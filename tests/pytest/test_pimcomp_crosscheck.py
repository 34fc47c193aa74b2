"""Cross-check of our tiling against PIMCOMP's crossbar counts.

PIMCOMP (``backend/CrossbarPartition.cpp``) gives one copy of a layer
``ceil(Kh*Kw*Cin / 128) * ceil(Cout / 128)`` logical crossbars of 16-bit
weights; our ``pimcomp_default`` tiling counts physical 2-bit arrays, 8 bit
slices per weight. ``docs/strategies.md`` ("Cross-check against PIMCOMP")
records the tables these tests check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from cimflow.analysis.mapping_report import (
    PIMCOMP_COMPILER_CROSSBARS,
    LayerMapping,
    _heap_pop,  # pyright: ignore[reportPrivateUsage]
    _heap_push,  # pyright: ignore[reportPrivateUsage]
    format_mapping,
    logical_crossbars,
    mapping_layers,
    mapping_summary,
    pimcomp_balance,
)
from cimflow.cimdialect.cim_tile import TilingAttr
from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.trace import MoveOp, MvmOp, ProgramOp, op_arrays
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target, overridden
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.pipelines import CompilePass
from cimflow.tools import bench, zoo
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

TARGET = "pimcomp_default"


def tiled(name: str, tmp_path: Path) -> tuple[onnx.ModelProto, ModuleOp]:
    (entry,) = zoo.zoo_models(1, models=[name])
    model = entry.builder()
    path = tmp_path / entry.file_name
    onnx.save(model, path)
    module = import_onnx(path)
    ConvertGraphToTilePass(TARGET).apply(Context(), module)
    return model, module


def onnx_layers(model: onnx.ModelProto) -> list[tuple[str, int, int]]:
    """``(weight, K, N)`` of every Conv (``K = Kh*Kw*Cin``, all input
    channels, as PIMCOMP reads them) and Gemm/MatMul, in graph order, from
    the ONNX file alone."""
    dims = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    layers: list[tuple[str, int, int]] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            cout, cin_per_group, kh, kw = dims[node.input[1]]
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            layers.append((node.input[1], kh * kw * cin_per_group * group, cout))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in dims:
            rows, cols = dims[node.input[1]]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            layers.append((node.input[1], *((cols, rows) if trans_b else (rows, cols))))
    return layers


def pimcomp_formula(k: int, n: int, size: int = 128) -> int:
    return math.ceil(k / size) * math.ceil(n / size)


@pytest.fixture(scope="module")
def resnet18(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[onnx.ModelProto, ModuleOp]:
    return tiled("resnet18", tmp_path_factory.mktemp("resnet18"))


@pytest.fixture(scope="module")
def vgg16(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, ModuleOp]:
    return tiled("vgg16", tmp_path_factory.mktemp("vgg16"))


def test_resnet18_per_layer_counts_match_pimcomp(
    resnet18: tuple[onnx.ModelProto, ModuleOp],
) -> None:
    model, module = resnet18
    hw = load_target(TARGET)
    assert hw.bit_slices == 8 and hw.array.rows == hw.array.cols == 128
    expected = onnx_layers(model)
    layers = mapping_layers(module)
    assert len(layers) == len(expected) == 21  # 20 convolutions and the fc
    for layer, (weight, k, n) in zip(layers, expected, strict=True):
        assert layer.name.startswith(weight)
        assert (layer.k * layer.groups, layer.n * layer.groups) == (k, n)
        # PIMCOMP's logical crossbars of one copy.
        assert layer.logical == pimcomp_formula(k, n)
        # Our physical arrays: the same row cut, columns per bit slices.
        assert layer.row_tiles == math.ceil(k / 128)
        assert layer.col_tiles == math.ceil(n / (128 // 8))
        assert layer.arrays == layer.row_tiles * layer.col_tiles
        assert layer.logical <= layer.arrays <= 8 * layer.logical
        if n % 128 == 0:
            assert layer.arrays == 8 * layer.logical
    assert [layer.kind for layer in layers] == ["conv"] * 20 + ["fc"]


def test_resnet18_totals(resnet18: tuple[onnx.ModelProto, ModuleOp]) -> None:
    _, module = resnet18
    hw = load_target(TARGET)
    summary = mapping_summary(module, hw.total_arrays)
    # One copy: 695 conv + 32 fc logical crossbars; 5724 physical arrays
    # (8 per logical crossbar, except 64-channel layers (4) and the 1000-way
    # fc, 63 column tiles for 8 logical columns).
    assert summary.logical == 727
    assert summary.arrays == 5724
    assert summary.arrays <= hw.total_arrays == 136 * 64
    # PIMCOMP's balance on the 8704-crossbar chip: the fc keeps one copy,
    # the layers with the most windows the most copies.
    assert summary.fits
    assert summary.logical_replicated == 5067
    assert summary.replication[-1] == 1
    assert summary.replication[0] == max(summary.replication)
    # The same replication in physical arrays would need 3.5 chips.
    assert summary.arrays_replicated == 30556
    compiler = mapping_summary(module, PIMCOMP_COMPILER_CROSSBARS)
    assert compiler.logical_replicated == 5334 and compiler.fits


def test_vgg16_does_not_fit_pimcomp(vgg16: tuple[onnx.ModelProto, ModuleOp]) -> None:
    model, module = vgg16
    layers = mapping_layers(module)
    assert [layer.logical for layer in layers] == [
        pimcomp_formula(k, n) for _, k, n in onnx_layers(model)
    ]
    conv = sum(layer.logical for layer in layers if layer.kind == "conv")
    fc = sum(layer.logical for layer in layers if layer.kind == "fc")
    assert (conv, fc) == (902, 6272 + 1024 + 256)
    # One copy fits the 8704 (and PIMCOMP's 9216) crossbars ...
    assert conv + fc == 8454
    # ... but balance replication, on PIMCOMP's own compiler budget of
    # 12 x 12 cores x 64, gives the documented 9288 and the map check fails.
    compiler = mapping_summary(module, PIMCOMP_COMPILER_CROSSBARS)
    assert compiler.logical_replicated == 9288
    assert not compiler.fits
    assert mapping_summary(module, 136 * 64).logical_replicated == 9032
    # In physical 2-bit arrays one copy is 67576 arrays, 7.8 chips.
    assert sum(layer.arrays for layer in layers) == 67576


def test_vgg16_compiles_with_the_static_strategy(tmp_path: Path) -> None:
    # Where PIMCOMP aborts, the static strategy re-programs segments and
    # streams the classifier in chunks.
    (entry,) = zoo.zoo_models(1, models=["vgg16"])
    path = tmp_path / entry.file_name
    onnx.save(entry.builder(), path)
    module = import_onnx(path)
    CompilePass("static", TARGET).apply(Context(), module)


def test_logical_crossbars_of_grouped_weights() -> None:
    # PIMCOMP maps a depthwise 3x3 over 96 channels as its block-diagonal
    # [864, 96] matrix: ceil(864 / 128) * ceil(96 / 128) = 7.
    tiling = TilingAttr.for_matrix(9, 1, 96, 128, 128, 8)
    assert logical_crossbars(tiling) == 7
    dense = TilingAttr.for_matrix(4608, 512, 1, 128, 128, 8)
    assert logical_crossbars(dense) == 36 * 4
    assert dense.arrays_per_copy == 36 * 32


def layer(kind: str, logical: int, windows: int) -> LayerMapping:
    return LayerMapping(
        name=f"{kind}{logical}x{windows}",
        kind="conv" if kind == "conv" else "fc",
        k=1,
        n=1,
        groups=1,
        vectors=windows,
        windows=windows,
        row_tiles=1,
        col_tiles=1,
        arrays=logical,
        logical=logical,
    )


def test_balance_by_hand() -> None:
    # 23 crossbars, the fc takes 3: 20 left, stop at 10 or fewer. Pops by
    # windows per copy: A 100 -> 50 -> 34 -> 25, then A (25) over B (24):
    # 20, B 24 -> 12, A 20 -> 17: 9 left <= 10.
    layers = [layer("conv", 2, 100), layer("conv", 1, 24), layer("fc", 3, 1)]
    assert pimcomp_balance(layers, 23) == [6, 2, 1]
    # Copies are capped at the windows.
    assert pimcomp_balance([layer("conv", 1, 3)], 100) == [3]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=40))
def test_heap_pops_largest_first(windows: list[int]) -> None:
    heap: list[tuple[int, int, int, int]] = []
    for index, value in enumerate(windows):
        _heap_push(heap, (index, 1, value, value))
    popped = [_heap_pop(heap)[2] for _ in windows]
    assert popped == sorted(windows, reverse=True)
    assert not heap


def test_mapping_report_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--mapping-report", "--models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "resnet18.b1 on pimcomp_default" in out
    assert "one copy: 727 PIMCOMP logical crossbars, 5724 physical arrays" in out


def test_format_mapping_lists_every_layer(
    resnet18: tuple[onnx.ModelProto, ModuleOp],
) -> None:
    summary = mapping_summary(resnet18[1], 8704)
    text = format_mapping(summary, "resnet18")
    assert len(text.splitlines()) == 1 + 1 + 21 + 2
    assert "fc.weight" in text


# --- PIMCOMP's element-pipeline (latency-mode) accounting -----------------
#
# PIMCOMP-NN evaluation/ModelEvaluation.cpp times an MVMUL at MVMUL_latency =
# 200 (read) + 16 x 200 (one input bit each) + 200 (ADC) + 200 (shift-add) +
# 200 (write) = 4000 ns (EvaluationConfig.h, 1 GHz: 4000 cycles); an array
# group (AG: the crossbars of one weight block) starts its next MVMUL only
# when the previous one's 4000 ns are over, and a core's MVMULs of different
# AGs issue at least 200 ns apart. Feature maps move once (SEND/RECV and
# LD/ST count element_num x 16 bits); weights are taken as programmed.
#
# The network below: a 3x3 convolution, 8 -> 16 channels, pad 1, on an 8 x 8
# map, then a ReLU. K = 3 x 3 x 8 = 72 rows and 16 outputs: one logical
# crossbar for PIMCOMP, and one physical 128 x 128 array here (16 outputs x
# 8 two-bit slices = 128 columns), so the two map it alike.
#   windows (output pixels)      8 x 8 = 64
#   PIMCOMP, one AG:             64 MVMULs x 4000 = 256,000 cycles
#   PIMCOMP, 8 AGs (replicated): ceil(64 / 8) = 8 MVMULs x 4000 = 32,000 each
#   feature map in:              8 x 8 x 8 elements x 2 B = 1,024 B
#   outputs out:                 8 x 8 x 16 elements x 2 B = 2,048 B
#   weights:                     72 x 16 x 2 B = 2,304 B (not timed by PIMCOMP)

PIXELS, CIN, COUT = 64, 8, 16


def small_conv(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((COUT, CIN, 3, 3)) / 5).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CIN, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, COUT, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )
    path = directory / "conv_relu.onnx"
    onnx.save(model, path)
    return path


def simulated(path: Path, strategy: str, *overrides: str) -> SimResult:
    with overridden(overrides):
        module = compile_model(path, TARGET, f"cim-compile{{strategy={strategy}}}")
        return simulate(module_trace(module, str(path)))


def test_one_array_group_takes_pimcomps_mvm_time(tmp_path: Path) -> None:
    """Without replication (``static``) the 64 windows run on one array in
    PIMCOMP's 64 x 4000 cycles; the feature map crosses to the core once
    (1,024 B) and the outputs leave once (2,048 B), PIMCOMP's volumes. What
    we time beyond PIMCOMP's estimate: programming the weights' 72 rows
    (72 x 100 cycles) as they stream from DRAM, before the first MVM, and
    under 1% after the last one (the outputs' move, the ReLU, the store)."""
    path = small_conv(tmp_path)
    result = simulated(path, "static")
    trace = result.trace
    (mvm,) = [op for op in trace.ops if isinstance(op, MvmOp)]
    assert (mvm.vectors, op_arrays(mvm)) == (PIXELS, ((0, 1),))
    assert result.finish[mvm.id] - result.start[mvm.id] == PIXELS * 4000
    moves = [op for op in trace.ops if isinstance(op, MoveOp)]
    assert sorted(op.nbytes for op in moves) == [PIXELS * CIN * 2, PIXELS * COUT * 2]
    (program,) = [op for op in trace.ops if isinstance(op, ProgramOp)]
    assert (program.feed, program.in_bytes) == ("dram", 3 * 3 * CIN * COUT * 2)
    assert result.finish[program.id] - result.start[program.id] == 72 * 100
    assert result.start[mvm.id] == result.finish[program.id]
    assert result.makespan - result.finish[mvm.id] < 0.01 * result.makespan
    assert verify_trace(trace, path, "exact").passed


def test_replicated_array_groups_take_pimcomps_mvm_time(tmp_path: Path) -> None:
    """``pimcomp-ll`` replicates the layer on 64 arrays, one window each:
    its 8 row bands run at once, each split between a group of 8 copies
    (``rules.band_groups``), and every copy runs its window in PIMCOMP's
    4000 cycles. The 64 copies are one core's arrays: their weights (64 x
    2,304 B) and the bands' inputs share its one 8 B/cycle link, so the
    copies start as those arrive, the last as the last program ends, and
    every copy is done within two windows of it (PIMCOMP's cores would wait
    for their LDs on the shared global memory instead). The unicast mesh
    programs each copy on its own; the shipped target multicasts, and one
    program writes all 64 (the link carries the same 64 x 2,304 B), after
    which every copy starts."""
    path = small_conv(tmp_path)
    result = simulated(path, "pimcomp-ll", "interconnect.multicast=false")
    mvms = [op for op in result.trace.ops if isinstance(op, MvmOp)]
    assert len(mvms) == PIXELS
    assert sorted(op_arrays(op) for op in mvms) == [
        ((a, a + 1),) for a in range(PIXELS)
    ]
    for op in mvms:
        assert op.vectors == 1
        assert result.finish[op.id] - result.start[op.id] == 4000
    programs = [op for op in result.trace.ops if isinstance(op, ProgramOp)]
    written = max(result.finish[op.id] for op in programs)
    for op in mvms:
        (program,) = [p for p in programs if p.arrays == op.arrays]
        assert result.start[op.id] >= result.finish[program.id]
    assert written <= max(result.start[op.id] for op in mvms)
    assert max(result.finish[op.id] for op in mvms) - written < 2 * 4000
    assert verify_trace(result.trace, path, "exact").passed
    multicast = simulated(path, "pimcomp-ll")
    (program,) = [op for op in multicast.trace.ops if isinstance(op, ProgramOp)]
    assert (program.copies, program.arrays) == (PIXELS, ((0, PIXELS),))
    mvms = [op for op in multicast.trace.ops if isinstance(op, MvmOp)]
    assert min(multicast.start[op.id] for op in mvms) >= multicast.finish[program.id]
    last = max(multicast.finish[op.id] for op in mvms)
    assert last - multicast.finish[program.id] < 2 * 4000
    assert verify_trace(multicast.trace, path, "exact").passed
