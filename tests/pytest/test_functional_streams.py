"""The functional executor on streams: ops that read their input from DRAM
or memory-mode arrays and write their outputs there (trace version 5,
``feed`` / ``in_from`` / ``out_to``), partial sums left in DRAM and
accumulated from there, weights programmed straight from DRAM, and
memory-mode arrays read over the interconnect on a target without the
memory-to-compute path.

Target: sim_traces.small_target (2 cores x 4 arrays of 128 x 128, 1-bit
cells, 8-bit weights: an array holds 128 rows and 16 outputs); x [4, 128]
times w [128, 16] fits one array, x2 [4, 256] times w2 [256, 16] takes two
(two row tiles, so two partial-sum blocks per output).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from sim_traces import op, small_target, transfer

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.functional import FunctionalError, run_functional
from cimflow.cimsim.trace import parse_trace
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 128))
W = RNG.standard_normal((128, 16))
X2 = RNG.standard_normal((4, 256))
W2 = RNG.standard_normal((256, 16))
B = RNG.standard_normal(16)
WEIGHTS = {"w": W, "w2": W2, "b": B}
INPUTS = {"x": X, "x2": X2}


def no_path_target() -> HardwareTarget:
    """small_target without the memory-to-compute path."""
    base = small_target()
    return dataclasses.replace(
        base,
        dual_mode=dataclasses.replace(
            base.dual_mode, feeds_compute=False, feed_bytes_per_cycle=0.0
        ),
    )


def document(
    ops: list[dict[str, Any]], output: str, target: HardwareTarget | None = None
) -> dict[str, Any]:
    """Inputs x and x2 in DRAM; ``output`` ([4, 16]) the model's output."""

    def tensor(name: str, shape: list[int]) -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": "float32"}

    declared = [
        tensor("x", [4, 128]) | {"bytes": 512},
        tensor("x2", [4, 256]) | {"bytes": 1024},
        *(tensor(name, [4, 16]) | {"bytes": 64} for name in ("y", "z")),
    ]
    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "streams",
            "source": "",
            "batch": 1,
            "dims": {},
            "inputs": [tensor("x", [4, 128]), tensor("x2", [4, 256])],
            "outputs": [tensor(output, [4, 16])],
        },
        "strategy": "hand",
        "target": (target or small_target()).to_dict(),
        "tensors": declared,
        "constants": [],
        "weights": [
            {"name": "w", "layout": "kn", "groups": 1, "k": 128, "n": 16},
            {"name": "w2", "layout": "kn", "groups": 1, "k": 256, "n": 16},
        ],
        "ops": ops,
    }


def run(
    data: dict[str, Any], output: str, check_meaning: bool = True
) -> np.ndarray[Any, Any]:
    trace = parse_trace(data, "streams.json", check_meaning)
    simulate(trace)  # the schedule runs too
    return run_functional(trace, INPUTS, "exact", WEIGHTS)[output]


def program(
    op_id: int, deps: tuple[int, ...], wide: bool = False, **keys: Any
) -> dict[str, Any]:
    """w into array 0, or w2 into arrays 0-1 (``wide``)."""
    return op(
        op_id,
        "program",
        deps,
        arrays=[[0, 2]] if wide else [[0, 1]],
        rows=128,
        cols=128,
        weight="w2" if wide else "w",
        k=[0, 256] if wide else [0, 128],
        n=[0, 16],
        **keys,
    )


def mvm(
    op_id: int, deps: tuple[int, ...], wide: bool = False, **keys: Any
) -> dict[str, Any]:
    """x @ w on array 0, or x2 @ w2 on arrays 0-1 (``wide``), into y."""
    streams = {"feed": "local", "in_bytes": 0, "out_bytes": 0, "local_bytes": 0}
    return op(
        op_id,
        "mvm",
        deps,
        arrays=[[0, 2]] if wide else [[0, 1]],
        vectors=4,
        rows=128,
        cols=128,
        weight="w2" if wide else "w",
        k=[0, 256] if wide else [0, 128],
        n=[0, 16],
        v=[0, 4],
        input="x2" if wide else "x",
        output="y",
        **(streams | keys),
    )


def vector(
    op_id: int, deps: tuple[int, ...], kind: str, inputs: list[str], **keys: Any
) -> dict[str, Any]:
    output = "y" if kind == "accumulate" else "z"
    return op(
        op_id,
        "vector",
        deps,
        op=kind,
        element_ops=64,
        cores=[[0, 1]],
        inputs=inputs,
        outputs=[output],
        attrs={},
        **({"in_bytes": 0, "out_bytes": 0} | keys),
    )


def test_an_mvm_streams_to_dram_and_a_vector_op_reads_it_back() -> None:
    ops = [
        transfer(0, "load", "dram", "buffer", 512),
        # the weight straight from DRAM: no load of it
        program(1, (), feed="dram", in_bytes=2048),
        mvm(2, (0, 1), feed="buffer", in_bytes=512, out_to="dram", out_bytes=64),
        vector(3, (2,), "relu", ["y"], in_from="dram", in_bytes=64, out_to="dram")
        | {"out_bytes": 64},
    ]
    result = run(document(ops, "z"), "z")
    np.testing.assert_allclose(result, np.maximum(X @ W, 0), rtol=1e-5)


def test_a_weight_program_fed_from_the_buffer_needs_the_weight_there() -> None:
    ops = [
        transfer(0, "load", "dram", "buffer", 512),
        program(1, ()),
        mvm(2, (0, 1), feed="buffer", in_bytes=512, out_to="dram", out_bytes=64),
    ]
    with pytest.raises(FunctionalError) as err:
        run(document(ops, "y"), "y")
    assert str(err.value) == (
        "streams.json: op 1 (program 'program1'): reads 'w', which is not on "
        "chip: it is in DRAM (a weight never loaded)"
    )
    ops[1] = program(1, (), feed="dram", in_bytes=2048)
    np.testing.assert_allclose(run(document(ops, "y"), "y"), X @ W, rtol=1e-5)


def partial_ops(accumulate: dict[str, Any]) -> list[dict[str, Any]]:
    """x2 @ w2 streamed from DRAM to DRAM: two partial-sum blocks per output
    (one per row tile), then ``accumulate`` (op 2)."""
    return [
        program(0, (), wide=True, feed="dram", in_bytes=4096),
        mvm(1, (0,), wide=True, feed="dram", in_bytes=1024, out_to="dram")
        | {"out_bytes": 128},
        accumulate,
    ]


def test_partial_sums_left_in_dram_are_accumulated_from_there() -> None:
    accumulate = vector(
        2,
        (1,),
        "accumulate",
        ["y", "b"],
        in_from="dram",
        in_bytes=128,
        out_to="dram",
        out_bytes=64,
    )
    result = run(document(partial_ops(accumulate), "y"), "y")
    np.testing.assert_allclose(result, X2 @ W2 + B, rtol=1e-5)


def parted_ops(
    parts: tuple[tuple[int, int], ...] = ((0, 2), (2, 4)),
    last: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """x2 @ w2 on arrays 0-1 in ``parts`` of its 4 vectors, each part's
    partial sums (two blocks per output) added as soon as they are out
    (``attrs {vectors}``, a block over all 16 columns; ``last``: keys
    replacing the last addition's)."""
    ops = [program(0, (), wide=True, feed="dram", in_bytes=4096)]
    for index, (v0, v1) in enumerate(parts):
        computed = 1 + 2 * index
        ops.append(
            mvm(
                computed,
                (0,) if index == 0 else (0, computed - 2),
                wide=True,
                feed="dram",
                in_bytes=256 * (v1 - v0),
                out_to="buffer",
            )
            | {"vectors": v1 - v0, "v": [v0, v1], "out_bytes": 32 * (v1 - v0)}
        )
        ops.append(
            vector(
                computed + 1,
                (computed,),
                "accumulate",
                ["y"],
                block=[1, 0, 16],
                in_bytes=32 * (v1 - v0),
                out_to="dram",
                out_bytes=16 * (v1 - v0),
            )
            | {"attrs": {"vectors": [v0, v1]}}
        )
    ops[-1] |= last or {}
    return ops


def test_a_chunk_s_partial_sums_are_added_in_parts_of_its_vectors() -> None:
    result = run(document(parted_ops(), "y"), "y")
    np.testing.assert_allclose(result, X2 @ W2, rtol=1e-5)


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (
            [
                *parted_ops()[:-1],
                vector(4, (2, 3), "relu", ["y"], in_from="dram", in_bytes=64),
            ],
            "op 4 (vector relu 'vector4'): reads 'y' while its partial sums are "
            "not accumulated",
        ),
        (
            parted_ops(last={"attrs": {"vectors": [0, 4]}}),
            "op 4 (vector accumulate 'vector4'): accumulates 'y' whose partial sums "
            "cover 0 to 256 of the 256 reduction rows per output",
        ),
        (
            parted_ops(last={"attrs": {"vectors": [2, 5]}}),
            "op 4 (vector accumulate 'vector4'): accumulate's vectors [2, 5] are "
            "not [v0, v1) of the 4 vectors of 'y' with a block over its columns "
            "([1, n0, n1])",
        ),
        (
            parted_ops(last={"block": None}),
            "op 4 (vector accumulate 'vector4'): accumulate's vectors [2, 4] are "
            "not [v0, v1) of the 4 vectors of 'y' with a block over its columns "
            "([1, n0, n1])",
        ),
    ],
)
def test_parts_of_a_chunk_s_vectors_are_each_added_once_inside_it(
    ops: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(FunctionalError) as err:
        run(document(ops, "y"), "y")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("accumulate", "message"),
    [
        (
            vector(2, (1,), "relu", ["y"], in_from="dram", in_bytes=128),
            "op 2 (vector relu 'vector2'): reads 'y' while its partial sums are not "
            "accumulated (up to 2 blocks per element, 256 to 256 of 256 "
            "reduction rows); a vector op 'accumulate' is missing",
        ),
        (
            vector(2, (1,), "accumulate", ["y"]),
            "op 2 (vector accumulate 'vector2'): accumulates 'y' from the cores, but "
            "it is in unaccumulated partial sums in DRAM",
        ),
        (
            vector(2, (1,), "accumulate", ["y"], in_from="buffer", in_bytes=128),
            "op 2 (vector accumulate 'vector2'): accumulates 'y' from the buffer, "
            "but it is in unaccumulated partial sums in DRAM",
        ),
        (
            transfer(2, "store", "buffer", "dram", 64, (1,), tensor="y"),
            "op 2 (store 'store2'): reads 'y' from buffer, but it is in "
            "unaccumulated partial sums in DRAM",
        ),
    ],
)
def test_partial_sums_in_dram_are_read_only_from_dram(
    accumulate: dict[str, Any], message: str
) -> None:
    with pytest.raises(FunctionalError) as err:
        run(document(partial_ops(accumulate), "y"), "y")
    assert str(err.value) == f"streams.json: {message}"


def memory_ops(mvm_arrays: list[list[int]]) -> list[dict[str, Any]]:
    """Arrays 4-7 (core 1) switch to memory mode and take x (arrays 4-5);
    w goes to array 0 (core 0); an MVM streams x from arrays
    ``mvm_arrays`` and y to array 6; a vector op streams y from there and
    z to DRAM."""
    return [
        op(0, "switch", arrays=[[4, 8]], to="memory"),
        transfer(1, "load", "dram", "memory", 512, (0,), arrays=[[4, 6]]),
        program(2, (), feed="dram", in_bytes=2048),
        mvm(
            3,
            (1, 2),
            feed="memory",
            feed_arrays=mvm_arrays,
            in_bytes=512,
            out_to="memory",
            out_arrays=[[6, 7]],
            out_bytes=64,
        ),
        vector(
            4,
            (3,),
            "relu",
            ["y"],
            in_from="memory",
            in_arrays=[[6, 7]],
            in_bytes=64,
            out_to="dram",
            out_bytes=64,
        ),
    ]


def test_memory_arrays_feed_over_the_interconnect_without_the_path() -> None:
    data = document(memory_ops([[4, 6]]), "z", no_path_target())
    result = run(data, "z")
    np.testing.assert_allclose(result, np.maximum(X @ W, 0), rtol=1e-5)
    # the MVM waits for x: max(ceil(512 / (2 x 4)) = 64 from the arrays,
    # 2 + ceil(576 / 32) = 20 on the bus, ceil(64 / 4) = 16 into array 6)
    trace = parse_trace(data, "streams.json")
    costs = simulate(trace).costs
    assert costs[3].cycles == 64


def test_a_stream_from_arrays_that_do_not_hold_the_tensor() -> None:
    data = document(memory_ops([[5, 7]]), "z", no_path_target())
    with pytest.raises(CimError, match="is fed 'x' from memory-mode arrays that do"):
        run(data, "z")
    with pytest.raises(FunctionalError) as err:
        run(data, "z", check_meaning=False)
    assert str(err.value) == (
        "streams.json: op 3 (mvm 'mvm3'): is fed 'x' from memory-mode arrays that "
        "do not hold it (it is in DRAM and memory arrays)"
    )


def test_outputs_streamed_to_memory_arrays_are_there_for_a_store() -> None:
    ops = memory_ops([[4, 6]])[:4]
    ops.append(transfer(4, "store", "memory", "dram", 64, (3,), [[6, 7]], tensor="y"))
    result = run(document(ops, "y", no_path_target()), "y")
    np.testing.assert_allclose(result, X @ W, rtol=1e-5)


def test_a_switch_to_compute_loses_partial_sums_in_its_arrays() -> None:
    ops = [
        op(0, "switch", arrays=[[4, 8]], to="memory"),
        program(1, (), wide=True, feed="dram", in_bytes=4096),
        mvm(2, (0, 1), wide=True, feed="dram", in_bytes=1024, out_to="memory")
        | {"out_arrays": [[6, 8]], "out_bytes": 128},
        op(3, "switch", (2,), arrays=[[6, 8]], to="compute"),
        vector(
            4,
            (3,),
            "accumulate",
            ["y"],
            in_from="memory",
            in_arrays=[[6, 8]],
            in_bytes=128,
            out_to="dram",
            out_bytes=64,
        ),
    ]
    with pytest.raises(FunctionalError) as err:
        run(document(ops, "y"), "y", check_meaning=False)
    assert str(err.value) == (
        "streams.json: op 4 (vector accumulate 'vector4'): accumulates 'y', which "
        "has no partial sums (it is in nowhere (op 3 switched the memory-mode "
        "arrays holding it to compute mode))"
    )
    del ops[3]
    ops[3] = ops[3] | {"id": 3, "deps": [2], "name": "vector3"}
    np.testing.assert_allclose(run(document(ops, "y"), "y"), X2 @ W2, rtol=1e-5)
