"""cim-sparse-rows{orientation=column}: arrays hold only the columns that are
nonzero in some row (filters pruned whole), and the held columns' outputs
land at their own columns, the dropped ones their bias alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from functional_models import (
    cnn,
    quantized_by_onnxruntime,
    save_model,
    two_layer_mlp,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from tampered_traces import assert_refused, trace_document
from xdsl.context import Context

from cimflow.analysis.lower_bound import latency_lower_bound
from cimflow.analysis.sparse_tiling import column_matrix, held_columns
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import MvmOp, ProgramOp, VectorOp, parse_trace
from cimflow.errors import CimError
from cimflow.frontend import import_onnx, load_model_weights
from cimflow.hw_targets import load_target
from cimflow.passes.cim_sparse_rows import CimSparseRowsPass
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools import prune as cim_prune
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

RESNET = Path(cim_prune.__file__).parent / "models" / "resnet_tiny.onnx"


def _pipeline(
    strategy: str = "cim-static-allocate", orientation: str = "column"
) -> str:
    return (
        f"convert-graph-to-tile,cim-sparse-rows{{orientation={orientation}}},"
        f"{strategy},convert-tile-to-meta"
    )


@pytest.fixture(scope="module")
def filters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed ResNet with half of each weight's filters pruned."""
    path = tmp_path_factory.mktemp("columns") / "column.onnx"
    assert (
        cim_prune.main(
            [str(RESNET), "--pattern", "column", "--ratio", "0.5", "-o", str(path)]
        )
        == 0
    )
    return path


def test_columns_zero_in_every_row_are_dropped() -> None:
    matrix = np.zeros((2, 3, 6))
    matrix[0, :, [1, 4]] = 1.0  # group 0 keeps columns 1 and 4
    matrix[1, 2, [0, 2, 5]] = 2.0  # group 1 keeps 0, 2 and 5
    tiling = held_columns(matrix, 32, 2)  # one row tile, 2 outputs an array
    # group 1's columns take two column tiles: outputs 0-4 (columns 0, 2)
    # and 5 (column 5); group 0's fit the first, whose range is all 6
    assert tiling.column_map.tolist() == [[[1, 4, -1]], [[0, 2, 5]]]
    assert tiling.starts.tolist() == [[0, 6, 6], [0, 5, 6]]
    assert (tiling.held, tiling.misaligned) == (3, False)
    held = column_matrix(matrix, tiling, 32)
    assert held.shape == (2, 3, 3)
    assert held[0, 0].tolist() == [1.0, 1.0, 0.0]  # the padding column


def test_row_tiles_hold_their_own_columns() -> None:
    """Two row tiles of 32 rows, one keeping the even columns of 16, the
    other the odd ones: each holds its 8 in one column tile of 8 outputs,
    half the 16 their union would take, and their partial sums land
    misaligned."""
    matrix = np.zeros((1, 64, 16))
    matrix[0, :32, ::2] = 1.0
    matrix[0, 32:, 1::2] = 2.0
    tiling = held_columns(matrix, 32, 8)
    assert tiling.column_map.tolist() == [
        [list(range(0, 16, 2)), list(range(1, 16, 2))]
    ]
    assert tiling.starts.tolist() == [[0, 16]]
    assert (tiling.held, tiling.misaligned) == (8, True)
    held = column_matrix(matrix, tiling, 32)
    assert np.all(held[0, :32] == 1.0) and np.all(held[0, 32:] == 2.0)


def test_an_all_zero_group_keeps_one_column() -> None:
    tiling = held_columns(np.zeros((1, 4, 5)), 32, 2)
    assert tiling.column_map.tolist() == [[[0]]]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(0, 2**31),
)
def test_held_columns_land_their_outputs_where_the_dense_product_has_them(
    groups: int, row_tiles: int, n: int, outputs: int, seed: int
) -> None:
    """Whatever each row tile keeps, the held columns of any run of column
    tiles ``[a, b)`` of each row tile compute exactly that row tile's part
    of the dense outputs ``[starts[a], starts[b])``: its own at their
    columns, zero elsewhere; no row tile keeps more than a column tile's
    outputs in one range."""
    rng = np.random.default_rng(seed)
    rows = 4
    k = rows * row_tiles
    matrix = rng.standard_normal((groups, k, n))
    matrix *= np.repeat(rng.random((groups, row_tiles, n)) < 0.5, rows, axis=1)
    x = rng.standard_normal((groups, k))
    tiling = held_columns(matrix, rows, outputs)
    held = column_matrix(matrix, tiling, rows)
    starts = tiling.starts
    tiles = starts.shape[1] - 1
    assert tiles == -(-tiling.held // outputs)
    for g in range(groups):
        a, b = sorted(rng.integers(0, tiles + 1, 2).tolist())
        first, stop = int(starts[g, a]), int(starts[g, b])
        for r in range(row_tiles):
            part = slice(r * rows, (r + 1) * rows)
            dense = x[g, part] @ matrix[g, part]
            landed = np.zeros(stop - first)
            for j in range(a * outputs, min(b * outputs, tiling.held)):
                column = tiling.column_map[g, r, j]
                if column >= 0:
                    assert first <= column < stop
                    landed[column - first] = x[g, part] @ held[g, part, j]
            np.testing.assert_allclose(landed, dense[first:stop], atol=1e-9)


@pytest.mark.parametrize(
    "strategy", ["cim-static-allocate", "cim-clsa-allocate", "cim-cmswitch"]
)
@pytest.mark.parametrize("target", ["tiny", "dynaplasia", "ciminus"])
def test_filter_pruned_models_verify_exactly(
    filters: Path, strategy: str, target: str
) -> None:
    """And the lower bound of the held columns' mapping (its arrays' work,
    every output written) stays below the simulated run."""
    trace = module_trace(
        compile_model(filters, target, _pipeline(strategy)), str(filters)
    )
    assert any(w.columns for w in trace.weights)
    report = verify_trace(trace, filters, "both")
    assert report.passed, report.format()
    held = "convert-graph-to-tile,cim-sparse-rows{orientation=column}"
    bound = latency_lower_bound(
        compile_model(filters, target, held), load_target(target)
    )
    assert bound.cycles <= simulate(trace).stats.makespan_cycles


def test_grouped_and_streamed_weights_of_held_columns_verify_exactly(
    tmp_path: Path,
) -> None:
    """The functional test CNN (a grouped convolution of 2 groups, a
    depthwise one packed 3 to an array, a streamed 72-row convolution) with
    every third filter of each weight pruned: the unpacked weights hold
    their columns, each group its own, and the product is exact."""
    model = cnn()
    for init in model.graph.initializer:
        if len(init.dims) == 4 and init.dims[0] >= 3:
            values = onnx.numpy_helper.to_array(init).copy()
            values[::3] = 0.0
            init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    for target in ("tiny", "dynaplasia"):
        trace = module_trace(compile_model(path, target, _pipeline()), str(path))
        grouped = [w for w in trace.weights if w.columns and w.groups > 1]
        assert grouped or target != "tiny"
        report = verify_trace(trace, path, "exact")
        assert report.passed, report.format()


def test_held_columns_take_fewer_arrays_and_stream_their_output_indices(
    tmp_path: Path,
) -> None:
    """A 256 x 64 weight with three of every four filters pruned, on
    ciminus (4 outputs an array): 4 column tiles of 16 instead of 16, a
    quarter of the MVMs' arrays, faster and cheaper; each program streams
    beside its values a ``ceil(log2 64)``-bit index per output an array
    writes (where its column's outputs land), and the product stays exact
    in both modes."""
    rng = np.random.default_rng(5)
    first = rng.integers(-3, 4, (256, 64)).astype(np.float32)
    first[:, [c for c in range(64) if c % 4]] = 0.0
    second = rng.integers(-3, 4, (64, 8)).astype(np.float32)
    path = two_layer_mlp(tmp_path / "mlp.onnx", first, second)
    dense_trace = module_trace(
        compile_model(path, "ciminus", _pipeline(orientation="row"))
    )
    trace = module_trace(compile_model(path, "ciminus", _pipeline()), str(path))
    (held,) = [w for w in trace.weights if w.columns]
    assert (held.name, held.n, held.columns) == ("w1", 64, 16)

    def arrays(t: Any) -> int:
        return sum(
            stop - start
            for op in t.ops
            if isinstance(op, MvmOp) and op.weight == "w1"
            for start, stop in op.arrays
        )

    assert arrays(trace) * 4 == arrays(dense_trace)
    for op in trace.ops:
        if isinstance(op, ProgramOp) and op.weight == "w1" and op.in_bytes:
            count = sum(stop - start for start, stop in op.arrays)
            values = (op.k[1] - op.k[0]) * (op.n[1] - op.n[0])
            index_bits = count * (op.cols // 8) * math.ceil(math.log2(64))
            assert op.in_bytes == values + math.ceil(index_bits / 8)
    dense, compact = simulate(dense_trace).stats, simulate(trace).stats
    assert compact.makespan_cycles < dense.makespan_cycles
    assert (
        compact.energy_pj["adc"] < dense.energy_pj["adc"] or dense.energy_pj["adc"] == 0
    )
    assert compact.energy_pj["array"] < dense.energy_pj["array"]
    report = verify_trace(trace, path, "both")
    assert report.passed, report.format()


def test_misaligned_row_tiles_hold_half_the_arrays_and_merge_by_index(
    tmp_path: Path,
) -> None:
    """A 64 x 16 weight whose first 32 rows are zero on the odd columns and
    whose last 32 on the even ones, on tiny (32-row arrays, 8 outputs each):
    each row tile holds its 8 columns, 2 arrays instead of the 4 their union
    takes, and the product stays exact; merging the two row tiles' partial
    sums, which land on different outputs, takes an index look-up besides
    each add (CIMinus's extra accumulation): the accumulations take one
    operation more per merged sum than for a weight whose row tiles keep the
    same 8 columns."""
    rng = np.random.default_rng(9)
    second = rng.integers(-3, 4, (16, 4)).astype(np.float32)

    def compiled(first: np.ndarray[Any, Any], name: str) -> tuple[Path, Any]:
        path = two_layer_mlp(tmp_path / name, first, second)
        return path, module_trace(compile_model(path, "tiny", _pipeline()), str(path))

    misaligned = rng.integers(-3, 4, (64, 16)).astype(np.float32)
    misaligned[:32, 1::2] = misaligned[32:, ::2] = 0.0
    aligned = misaligned.copy()
    aligned[:, 1::2] = 0.0
    aligned[32:, ::2] = rng.integers(1, 4, (32, 8))
    path, trace = compiled(misaligned, "misaligned.onnx")
    _, same = compiled(aligned, "aligned.onnx")
    for t in (trace, same):
        (held,) = [w for w in t.weights if w.name == "w1" and w.columns]
        assert (held.n, held.columns) == (16, 8)

    def w1(t: Any) -> tuple[int, int]:
        arrays = sum(
            stop - start
            for op in t.ops
            if isinstance(op, MvmOp) and op.weight == "w1"
            for start, stop in op.arrays
        )
        adds = sum(
            op.element_ops
            for op in t.ops
            if isinstance(op, VectorOp)
            and op.op == "accumulate"
            and op.inputs[0]
            in {o.output for o in t.ops if isinstance(o, MvmOp) and o.weight == "w1"}
        )
        return arrays, adds

    (arrays, adds), (same_arrays, same_adds) = w1(trace), w1(same)
    dense = module_trace(compile_model(path, "tiny", _pipeline(orientation="row")))
    assert (arrays, same_arrays, w1(dense)[0]) == (2, 2, 4)
    assert adds - same_adds == 6 * 8  # one look-up per merged partial sum
    report = verify_trace(trace, path, "both")
    assert report.passed, report.format()


def test_an_activation_rides_on_the_accumulations_of_streamed_held_columns(
    tmp_path: Path,
) -> None:
    """A 300 x 32 linear with a bias and a ReLU, every other filter pruned,
    streamed through tiny's arrays in chunks of held columns: the ReLU is
    applied by the accumulations that finish the chunks' outputs (their
    steps over held columns cover the weight's outputs), as for the dense
    weight, not by a pass of its own over the output."""
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((300, 32)).astype(np.float32)
    weight[:, ::2] = 0.0
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
            onnx.helper.make_node("Relu", ["h"], ["y"]),
        ],
        "linear_relu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 300])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 32])],
        [
            onnx.numpy_helper.from_array(weight, "w"),
            onnx.numpy_helper.from_array(
                rng.standard_normal(32).astype(np.float32), "b"
            ),
        ],
    )
    path = save_model(graph, tmp_path / "linear_relu.onnx")
    for orientation in ("row", "column"):
        trace = module_trace(
            compile_model(path, "tiny", _pipeline(orientation=orientation)), str(path)
        )
        accumulations = [
            op for op in trace.ops if isinstance(op, VectorOp) and op.op == "accumulate"
        ]
        assert len(accumulations) > 1  # streamed: one a chunk
        assert {
            op.attrs.get("then") for op in accumulations if op.attrs.get("then")
        } == {"relu"}
        assert not [
            op for op in trace.ops if isinstance(op, VectorOp) and op.op == "relu"
        ]
        report = verify_trace(trace, path, "exact")
        assert report.passed, report.format()


def test_held_columns_keep_the_models_quantization(tmp_path: Path) -> None:
    """The CNN with filters pruned and quantized by onnxruntime (int8
    weights, per-channel scales): the arrays hold its integers of the held
    columns with their own scales, and tiny (whose ADC resolves every sum)
    computes what onnxruntime does."""
    model = cnn()
    for init in model.graph.initializer:
        if len(init.dims) == 4 and init.dims[0] >= 4:
            values = onnx.numpy_helper.to_array(init).copy()
            values[1::2] = 0.0
            init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    path = quantized_by_onnxruntime(model, tmp_path)
    assert load_model_weights(path, {}).quantization
    trace = module_trace(compile_model(path, "tiny", _pipeline()), str(path))
    assert any(w.columns for w in trace.weights)
    report = verify_trace(trace, path, "both")
    assert report.passed, report.format()
    assert report.mode("quantized").max_rel_error < 1e-5, report.format()


def test_a_trace_whose_held_columns_disagree_with_the_weights_fails(
    filters: Path,
) -> None:
    document = trace_document(filters, "tiny", _pipeline())
    held = next(w for w in document["weights"] if w.get("columns"))
    held["columns"] += 1
    assert_refused(document, filters, f"needs {held['columns'] - 1} columns per group")
    held["columns"] = held["n"]
    with pytest.raises(CimError, match=r"key 'columns' \(\d+\) must be below 'n'"):
        parse_trace(document, "t.json")


def test_the_orientation_that_takes_fewer_arrays_wins(
    filters: Path, tmp_path: Path
) -> None:
    """``best`` holds columns where filters are pruned (rows are all
    needed), rows where input channels are; ``row`` leaves filters dense."""

    def compacted(path: Path, orientation: str) -> tuple[int, int]:
        module = import_onnx(path)
        ConvertGraphToTilePass("tiny").apply(Context(), module)
        CimSparseRowsPass(orientation=orientation).apply(Context(), module)
        mvms = [op for op in module.walk() if isinstance(op, cim_tile.MVMOp)]
        return (
            sum(op.compacted_from is not None for op in mvms),
            sum(op.columns_from is not None for op in mvms),
        )

    rows, columns = compacted(filters, "best")
    assert columns > 0 and rows == 0
    assert compacted(filters, "row") == (0, 0)
    channels = tmp_path / "channel.onnx"
    args = [str(RESNET), "--pattern", "channel", "--ratio", "0.5", "-o", str(channels)]
    assert cim_prune.main(args) == 0
    rows, columns = compacted(channels, "best")
    assert rows > 0 and columns == 0


def test_the_compile_preset_holds_columns_when_asked(filters: Path) -> None:
    preset = build_trace(
        compile_model(
            filters,
            "tiny",
            "cim-compile{strategy=static sparse_rows=true sparse_orientation=column}",
        )
    )
    explicit = build_trace(compile_model(filters, "tiny", _pipeline()))
    assert json.dumps(preset, sort_keys=True) == json.dumps(explicit, sort_keys=True)
    assert any(w.columns for w in parse_trace(preset, "t.json").weights)


def test_a_bad_orientation_is_an_error(filters: Path) -> None:
    module = import_onnx(filters)
    ConvertGraphToTilePass("tiny").apply(Context(), module)
    with pytest.raises(
        CimError, match="orientation must be one of row, column, best, got 'diagonal'"
    ):
        CimSparseRowsPass(orientation="diagonal").apply(Context(), module)


def test_a_dense_model_maps_exactly_as_without_the_pass() -> None:
    dense = build_trace(compile_model(RESNET, "ciminus"))
    mapped = build_trace(
        compile_model(RESNET, "ciminus", _pipeline(orientation="best"))
    )
    assert json.dumps(dense, sort_keys=True) == json.dumps(mapped, sort_keys=True)
