"""Arrays made of sub-arrays (``array.subarray_rows`` x ``subarray_cols``):
an MVM activates only the sub-arrays holding the rows and columns it uses
(:func:`array_activations`), so a FullBlock pattern aligned to the
sub-arrays, whose zero blocks the compiler does not store, activates the
kept share of the dense sub-array MVMs (CIMinus's invariant, ``ciminus.md``
§10 #4). The ``ciminus`` target has CIMinus's 32 x 32 sub-arrays."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import MvmOp, count_arrays
from cimflow.cost_model import array_activations, mvm_cost
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, overridden
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

UNDIVIDED = ["array.subarray_rows=0", "array.subarray_cols=0"]


def test_an_undivided_array_is_one_activation_a_pass() -> None:
    with overridden(UNDIVIDED):
        hw = load_target("ciminus")
    assert array_activations(hw, 147, 32) == 1
    assert array_activations(hw, 1024, 8) == 1
    assert mvm_cost(hw, 1, 1, 147, 32).energy_pj["array"] == pytest.approx(3.84)


def test_only_the_sub_arrays_holding_used_rows_and_columns_activate() -> None:
    # ciminus: 1024 x 32 arrays of 1-bit cells (8-bit weights, 4 outputs an
    # array) made of 32 x 32 sub-arrays.
    hw = load_target("ciminus")
    # 147 rows fill 5 of the 32 sub-arrays stacked down the array, all 32
    # columns one sub-array across: 5/32 of an activation.
    assert array_activations(hw, 147, 32) == Fraction(5, 32)
    assert array_activations(hw, 1024, 32) == 1
    with overridden(["array.subarray_cols=16"]):
        halves = load_target("ciminus")
    # Two sub-arrays across: 8 columns use one of them.
    assert array_activations(halves, 1024, 8) == Fraction(1, 2)
    assert array_activations(halves, 64, 20) == Fraction(2 * 2, 32 * 2)
    # The array energy follows: 3.84 pJ for all 32 sub-arrays of a vector.
    assert mvm_cost(hw, 1, 1, 147, 32).energy_pj["array"] == pytest.approx(
        3.84 * 5 / 32
    )


def test_a_sub_array_must_divide_the_array() -> None:
    message = r"'array.subarray_rows' \(48\) must divide"
    with pytest.raises(CimError, match=message), overridden(["array.subarray_rows=48"]):
        load_target("ciminus")


def block_pruned_matmul(path: Path, ratio: float, vectors: int, seed: int) -> None:
    """``y = x @ w``, ``w`` 1024 x 8: two column tiles of 4 outputs, each
    one ciminus array; in each tile exactly ``ratio`` of its 32 blocks of 32
    rows x 4 outputs (one sub-array each) are zero, different blocks per
    tile."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(1, 100, (1024, 8)).astype(np.float32)
    for tile in range(2):
        zero = rng.permutation(32)[: round(32 * ratio)]
        for block in zero:
            weight[block * 32 : (block + 1) * 32, tile * 4 : (tile + 1) * 4] = 0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")],
        "block_pruned",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [vectors, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [vectors, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75])
def test_aligned_blocks_activate_the_kept_share_of_sub_array_mvms(
    tmp_path: Path, ratio: float
) -> None:
    path = tmp_path / "matmul.onnx"
    block_pruned_matmul(path, ratio, vectors=6, seed=7)
    dense = "convert-graph-to-tile,cim-static-allocate,convert-tile-to-meta"
    held = (
        "convert-graph-to-tile,cim-sparse-rows,cim-static-allocate,convert-tile-to-meta"
    )
    hw = load_target("ciminus")
    runs = {
        name: module_trace(compile_model(path, "ciminus", pipeline), str(path))
        for name, pipeline in (("dense", dense), ("held", held))
    }
    energy = {name: simulate(t).stats.energy_pj["array"] for name, t in runs.items()}
    assert verify_trace(runs["held"], path, "exact").passed

    def sub_array_mvms(name: str) -> Fraction:
        return sum(
            (
                op.vectors
                * count_arrays(op.arrays)
                * 32
                * array_activations(hw, op.rows, op.cols)
                for op in runs[name].ops
                if isinstance(op, MvmOp)
            ),
            Fraction(0),
        )

    # dense: 6 vectors x 2 arrays x 32 sub-arrays = 384
    assert sub_array_mvms("dense") == 384
    assert sub_array_mvms("held") == round((1 - ratio) * 384)
    assert energy["held"] == pytest.approx((1 - ratio) * energy["dense"])
