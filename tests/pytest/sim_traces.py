"""Hand-made version-5 traces for the cim-sim tests.

The default target is dynaplasia shrunk to 8 arrays of 128 x 128 (2 cores x
4 arrays), with dynaplasia's timing, energy, buffers and memory-to-compute
path; the builders fill every key an op kind needs with the values of an op
that streams nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.trace import load_trace
from cimflow.hw_targets import HardwareTarget, load_target


def small_target(**array_changes: Any) -> HardwareTarget:
    base = load_target("dynaplasia")
    array_fields: dict[str, Any] = {"rows": 128, "cols": 128, "active_rows": 128}
    array = dataclasses.replace(base.array, **(array_fields | array_changes))
    return dataclasses.replace(
        base,
        hierarchy=dataclasses.replace(
            base.hierarchy, chips=1, cores_per_chip=2, arrays_per_core=4
        ),
        array=array,
        dual_mode=dataclasses.replace(
            base.dual_mode, switchable_arrays=8, memory_capacity_bytes=2048
        ),
    )


def op(
    op_id: int, kind: str, deps: tuple[int, ...] = (), **keys: Any
) -> dict[str, Any]:
    return {
        "id": op_id,
        "kind": kind,
        "deps": list(deps),
        "segment": 0,
        "name": f"{kind}{op_id}",
        **keys,
    }


def mvm(
    op_id: int,
    arrays: list[list[int]],
    vectors: int,
    deps: tuple[int, ...] = (),
    rows: int = 128,
    cols: int = 64,
    **feed: Any,
) -> dict[str, Any]:
    keys = {"feed": "local", "in_bytes": 0, "out_bytes": 0, "local_bytes": 0}
    return op(
        op_id,
        "mvm",
        deps,
        arrays=arrays,
        vectors=vectors,
        rows=rows,
        cols=cols,
        weight="w",
        k=[0, rows],
        n=[0, cols],
        v=[0, vectors],
        input="x",
        output="y",
        **(keys | feed),
    )


def move(
    op_id: int,
    nbytes: int,
    cores: list[list[int]],
    deps: tuple[int, ...] = (),
    direction: str = "in",
    tensor: str = "t",
    **keys: Any,
) -> dict[str, Any]:
    return op(
        op_id,
        "move",
        deps,
        bytes=nbytes,
        tensor=tensor,
        dir=direction,
        cores=cores,
        **keys,
    )


def vector(
    op_id: int,
    element_ops: int,
    cores: list[list[int]],
    deps: tuple[int, ...] = (),
    in_bytes: int = 0,
    out_bytes: int = 0,
    **streams: Any,
) -> dict[str, Any]:
    return op(
        op_id,
        "vector",
        deps,
        op="add",
        element_ops=element_ops,
        cores=cores,
        in_bytes=in_bytes,
        out_bytes=out_bytes,
        inputs=[],
        outputs=["z"],
        attrs={},
        **streams,
    )


def transfer(
    op_id: int,
    kind: str,
    src: str,
    dst: str,
    nbytes: int,
    deps: tuple[int, ...] = (),
    arrays: list[list[int]] | None = None,
    cores: list[list[int]] | None = None,
    tensor: str = "x",
    **keys: Any,
) -> dict[str, Any]:
    return op(
        op_id,
        kind,
        deps,
        src=src,
        dst=dst,
        bytes=nbytes,
        tensor=tensor,
        arrays=arrays or [],
        cores=cores or [],
        **keys,
    )


def place(
    tensor: str,
    level: str,
    cores: list[list[int]] | None = None,
    arrays: list[list[int]] | None = None,
) -> dict[str, Any]:
    """A ``frees`` entry (and, with ``bytes``, an ``allocs`` one)."""
    entry: dict[str, Any] = {"tensor": tensor, "level": level}
    if cores is not None:
        entry["cores"] = cores
    if arrays is not None:
        entry["arrays"] = arrays
    return entry


def alloc(
    tensor: str,
    level: str,
    nbytes: int,
    cores: list[list[int]] | None = None,
    arrays: list[list[int]] | None = None,
) -> dict[str, Any]:
    return place(tensor, level, cores, arrays) | {"bytes": nbytes}


def free(
    op_id: int, frees: list[dict[str, Any]], deps: tuple[int, ...] = ()
) -> dict[str, Any]:
    return op(op_id, "free", deps, frees=frees)


def trace_dict(
    ops: list[dict[str, Any]], target: HardwareTarget | None = None, batch: int = 1
) -> dict[str, Any]:
    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "m",
            "source": "",
            "batch": batch,
            "dims": {},
            "inputs": [],
            "outputs": [],
        },
        "strategy": "static",
        "target": (target or small_target()).to_dict(),
        "tensors": [],
        "constants": [],
        "weights": [],
        "ops": ops,
    }


def run(ops: list[dict[str, Any]], target: HardwareTarget | None = None) -> SimResult:
    # Schedules only: these MVMs compute on arrays nothing programmed.
    return simulate(load_trace(trace_dict(ops, target), check_meaning=False))


def times(result: SimResult) -> list[tuple[int, int]]:
    return list(zip(result.start, result.finish, strict=True))
