"""The functional executor on hand-made version-5 traces: an MVM fed from
the memory-mode arrays that hold its input (the memory-to-compute path),
memory <-> local transfers, frees, and a dynamic matmul whose second operand
is programmed from an activation tensor.

Target: sim_traces.small_target (dynaplasia shrunk to 2 cores x 4 arrays of
128 x 128, 1-bit cells, 8-bit operands: a weight takes 8 columns, so an
array holds 16 outputs; dynaplasia's memory-to-compute path).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from sim_traces import alloc, op, place, small_target, transfer

from cimflow.cimsim.functional import FunctionalError, run_functional
from cimflow.cimsim.trace import parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget

RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 128))
W = RNG.standard_normal((128, 16))


def mvm(op_id: int, deps: tuple[int, ...], **feed: Any) -> dict[str, Any]:
    return op(
        op_id,
        "mvm",
        deps,
        arrays=[[0, 1]],
        vectors=4,
        rows=128,
        cols=128,
        weight="w",
        k=[0, 128],
        n=[0, 16],
        v=[0, 4],
        input="x",
        output="y",
        **({"feed": "local", "in_bytes": 0, "out_bytes": 0, "local_bytes": 512} | feed),
    )


def document(
    ops: list[dict[str, Any]], target: HardwareTarget | None = None
) -> dict[str, Any]:
    """y = x @ w: x [4, 128] in DRAM, w [128, 16] on array 0."""
    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "feeds",
            "source": "",
            "batch": 1,
            "dims": {},
            "inputs": [{"name": "x", "shape": [4, 128], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": [4, 16], "dtype": "float32"}],
        },
        "strategy": "hand",
        "target": (target or small_target()).to_dict(),
        "tensors": [
            {"name": "x", "shape": [4, 128], "dtype": "float32", "bytes": 512},
            {"name": "y", "shape": [4, 16], "dtype": "float32", "bytes": 64},
        ],
        "constants": [],
        "weights": [{"name": "w", "layout": "kn", "groups": 1, "k": 128, "n": 16}],
        "ops": ops,
    }


def setup_ops() -> list[dict[str, Any]]:
    """Arrays 2 and 3 (core 0, beside array 0) switch to memory mode and
    take x; w is programmed into array 0."""
    return [
        op(0, "switch", arrays=[[2, 4]], to="memory"),
        transfer(
            1,
            "load",
            "dram",
            "memory",
            512,
            (0,),
            arrays=[[2, 4]],
            allocs=[alloc("x", "memory", 512, arrays=[[2, 4]])],
        ),
        transfer(2, "load", "dram", "buffer", 2048, tensor="w"),
        op(
            3,
            "program",
            (2,),
            arrays=[[0, 1]],
            rows=128,
            cols=128,
            weight="w",
            k=[0, 128],
            n=[0, 16],
        ),
    ]


def run(data: dict[str, Any], check_meaning: bool = True) -> np.ndarray[Any, Any]:
    trace = parse_trace(data, "feeds.json", check_meaning)
    return run_functional(trace, {"x": X}, "exact", {"w": W})["y"]


def test_an_mvm_fed_from_memory_mode_arrays() -> None:
    ops = [
        *setup_ops(),
        mvm(4, (1, 3), feed="memory", feed_arrays=[[2, 4]], in_bytes=512),
        free_x(5, (4,)),
        transfer(6, "store", "buffer", "dram", 64, (4,), tensor="y"),
    ]
    np.testing.assert_allclose(run(document(ops)), X @ W, rtol=1e-5)  # float32 outputs


def free_x(op_id: int, deps: tuple[int, ...]) -> dict[str, Any]:
    return op(op_id, "free", deps, frees=[place("x", "memory", arrays=[[2, 4]])])


def test_staged_through_the_local_buffer_and_back() -> None:
    ops = [
        *setup_ops(),
        # x memory -> core 0's local buffer; y local -> array 2 -> buffer
        transfer(4, "load", "memory", "local", 512, (1,), [[2, 4]], [[0, 1]]),
        mvm(5, (3, 4)),
        free_x(6, (4,)),
        transfer(7, "store", "local", "memory", 64, (5, 6), [[2, 3]], [[0, 1]], "y"),
        transfer(8, "load", "memory", "buffer", 64, (7,), [[2, 3]], tensor="y"),
        transfer(9, "store", "buffer", "dram", 64, (8,), tensor="y"),
    ]
    np.testing.assert_allclose(run(document(ops)), X @ W, rtol=1e-5)  # float32 outputs


def test_a_freed_input_cannot_feed_an_mvm() -> None:
    ops = [
        *setup_ops(),
        free_x(4, (1,)),
        mvm(5, (1, 3), feed="memory", feed_arrays=[[2, 4]], in_bytes=512),
        transfer(6, "store", "buffer", "dram", 64, (5,), tensor="y"),
    ]
    # the meaning check refuses it, and the executor on its own too
    with pytest.raises(CimError, match="is fed 'x' from memory-mode arrays that"):
        run(document(ops))
    with pytest.raises(FunctionalError) as err:
        run(document(ops), check_meaning=False)
    assert str(err.value) == (
        "feeds.json: op 5 (mvm 'mvm5'): is fed 'x' from memory-mode arrays that do "
        "not hold it (it is in DRAM)"
    )


def test_a_free_of_what_is_not_there_is_refused() -> None:
    ops = [
        *setup_ops(),
        op(4, "free", (3,), frees=[place("y", "buffer")]),
    ]
    with pytest.raises(FunctionalError) as err:
        run(document(ops), check_meaning=False)
    assert str(err.value) == (
        "feeds.json: op 4 (free 'free4'): frees 'y' in the global buffer, but it "
        "is in nowhere (never produced)"
    )


# --- a dynamic matmul: the second operand programmed from a tensor -------------

A = RNG.standard_normal((4, 32))
B = RNG.standard_normal((32, 8))


def matmul_document(load_b: bool) -> dict[str, Any]:
    """y = a @ b with both operands model inputs: b is loaded into the
    buffer (if ``load_b``) and programmed into array 0 as a 32 x 8 matrix
    (32 rows, 8 x 8 columns), then a runs through it."""
    target = small_target()
    target = dataclasses.replace(
        target, array=dataclasses.replace(target.array, dynamic_matmul=True)
    )
    ops = [
        transfer(0, "load", "dram", "buffer", 128, tensor="a"),
        transfer(1, "load", "dram", "buffer", 256, tensor="b"),
        op(
            2,
            "program",
            (1,),
            arrays=[[0, 1]],
            rows=32,
            cols=64,
            weight="b",
            k=[0, 32],
            n=[0, 8],
            source="tensor",
        ),
        op(
            3,
            "mvm",
            (0, 2),
            arrays=[[0, 1]],
            vectors=4,
            rows=32,
            cols=64,
            weight="b",
            k=[0, 32],
            n=[0, 8],
            v=[0, 4],
            input="a",
            output="y",
            feed="local",
            in_bytes=0,
            out_bytes=0,
            local_bytes=128,
        ),
        transfer(4, "store", "buffer", "dram", 32, (3,), tensor="y"),
    ]
    if not load_b:
        ops[1] = op(1, "barrier")
    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "matmul",
            "source": "",
            "batch": 1,
            "dims": {},
            "inputs": [
                {"name": "a", "shape": [4, 32], "dtype": "float32"},
                {"name": "b", "shape": [32, 8], "dtype": "float32"},
            ],
            "outputs": [{"name": "y", "shape": [4, 8], "dtype": "float32"}],
        },
        "strategy": "hand",
        "target": target.to_dict(),
        "tensors": [
            {"name": "a", "shape": [4, 32], "dtype": "float32", "bytes": 128},
            {"name": "b", "shape": [32, 8], "dtype": "float32", "bytes": 256},
            {"name": "y", "shape": [4, 8], "dtype": "float32", "bytes": 32},
        ],
        "constants": [],
        "weights": [{"name": "b", "layout": "kn", "groups": 1, "k": 32, "n": 8}],
        "ops": ops,
    }


def test_a_tensor_programmed_into_arrays_multiplies_exactly() -> None:
    trace = parse_trace(matmul_document(load_b=True), "matmul.json")
    result = run_functional(trace, {"a": A, "b": B}, "exact", {})
    np.testing.assert_allclose(result["y"], A @ B, rtol=1e-5)  # float32 outputs


def test_a_tensor_programmed_into_arrays_in_the_quantized_pipeline() -> None:
    trace = parse_trace(matmul_document(load_b=True), "matmul.json")
    result = run_functional(trace, {"a": A, "b": B}, "quantized", {})["y"]
    exact = A @ B
    # two symmetric 8-bit operands: the error stays a few percent of the
    # largest output (the same bound as the compiled models' quantized runs)
    assert np.max(np.abs(result - exact)) < 0.05 * np.max(np.abs(exact))


def test_a_tensor_program_reads_the_tensor_from_the_buffer() -> None:
    trace = parse_trace(matmul_document(load_b=False), "matmul.json")
    with pytest.raises(FunctionalError) as err:
        run_functional(trace, {"a": A, "b": B}, "exact", {})
    assert str(err.value) == (
        "matmul.json: op 2 (program 'program2'): programs arrays with tensor 'b', "
        "which is not in the buffer: it is in DRAM"
    )
