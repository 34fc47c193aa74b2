"""cim-sim trace reader: valid traces load, invalid ones give one-line errors."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import (
    BarrierOp,
    LoadOp,
    MvmOp,
    ProgramOp,
    StoreOp,
    SwitchOp,
    VectorOp,
    dump_trace,
    in_place,
    load_trace,
    parse_trace,
)
from cimflow.cost_model import switch_cost
from cimflow.errors import CimError
from cimflow.hw_targets import HardwareTarget, load_target


def small_target() -> HardwareTarget:
    """dynaplasia with 8 arrays of 128 x 128 (2 cores x 4 arrays), each
    storing its 128 x 128 bits (2048 B) in memory mode, whose arrays hold
    weights only (no ``dynamic_matmul``)."""
    base = load_target("dynaplasia")
    return dataclasses.replace(
        base,
        hierarchy=dataclasses.replace(
            base.hierarchy, chips=1, cores_per_chip=2, arrays_per_core=4
        ),
        array=dataclasses.replace(
            base.array, rows=128, cols=128, active_rows=128, dynamic_matmul=False
        ),
        dual_mode=dataclasses.replace(
            base.dual_mode, switchable_arrays=8, memory_capacity_bytes=2048
        ),
    )


def valid_ops() -> list[dict[str, Any]]:
    common: dict[str, Any] = {"segment": 0}
    return [
        {**common, "id": 0, "kind": "load", "deps": [], "name": "x", "src": "dram",
         "dst": "buffer", "bytes": 64, "tensor": "x", "arrays": [], "cores": []},
        {**common, "id": 1, "kind": "program", "deps": [], "name": "w",
         "arrays": [[0, 2]], "rows": 128, "cols": 64, "weight": "w", "k": [0, 128],
         "n": [0, 64]},
        {**common, "id": 2, "kind": "mvm", "deps": [0, 1], "name": "fc",
         "arrays": [[0, 2]], "vectors": 4, "rows": 128, "cols": 64, "weight": "w",
         "k": [0, 128], "n": [0, 64], "v": [0, 4], "input": "x", "output": "y",
         "feed": "local", "in_bytes": 0, "out_bytes": 0, "local_bytes": 512},
        {**common, "id": 3, "kind": "vector", "deps": [2], "name": "relu",
         "op": "relu", "element_ops": 256, "cores": [[0, 2]], "in_bytes": 0,
         "out_bytes": 0, "inputs": ["y"], "outputs": ["z"], "attrs": {}},
        {**common, "id": 4, "kind": "switch", "deps": [], "name": "sw",
         "arrays": [[4, 6], [7, 8]], "to": "memory"},
        {**common, "id": 5, "kind": "load", "deps": [3, 4], "name": "spill",
         "src": "buffer", "dst": "memory", "bytes": 256, "tensor": "z",
         "arrays": [[4, 6]], "cores": []},
        {**common, "id": 6, "kind": "move", "deps": [5], "name": "mv", "bytes": 32,
         "tensor": "z", "dir": "in", "cores": [[1, 2]]},
        {**common, "id": 7, "kind": "store", "deps": [6], "name": "out",
         "src": "buffer", "dst": "dram", "bytes": 32, "tensor": "z", "arrays": [],
         "cores": []},
        {**common, "id": 8, "kind": "barrier", "deps": [7], "name": ""},
    ]  # fmt: skip


def valid_trace() -> dict[str, Any]:
    return {
        "format": "cim-trace",
        "version": 5,
        "model": {
            "name": "m",
            "source": "m.onnx",
            "batch": 2,
            "dims": {},
            "inputs": [{"name": "x", "shape": [4, 128], "dtype": "float32"}],
            "outputs": [{"name": "z", "shape": [4, 64], "dtype": "float32"}],
        },
        "strategy": "static",
        "target": small_target().to_dict(),
        "tensors": [
            {"name": "x", "shape": [4, 128], "dtype": "float32", "bytes": 512},
            {"name": "y", "shape": [4, 64], "dtype": "float32", "bytes": 256},
            {"name": "z", "shape": [4, 64], "dtype": "float32", "bytes": 256},
        ],
        "constants": [],
        "weights": [{"name": "w", "layout": "kn", "groups": 1, "k": 128, "n": 64}],
        "ops": valid_ops(),
    }


def test_valid_trace_loads_into_typed_ops() -> None:
    trace = load_trace(valid_trace())
    assert trace.model.batch == 2
    assert trace.model.inputs[0].shape == (4, 128)
    assert trace.strategy == "static"
    assert trace.target == small_target()
    assert trace.tensors[1].nbytes == 256
    kinds = [o.kind for o in trace.ops]
    assert kinds == [
        "load", "program", "mvm", "vector", "switch", "load", "move", "store",
        "barrier",
    ]  # fmt: skip
    load, mvm, vector, switch = trace.ops[0], trace.ops[2], trace.ops[3], trace.ops[4]
    assert isinstance(load, LoadOp) and load.src == "dram" and load.nbytes == 64
    assert isinstance(mvm, MvmOp) and mvm.arrays == ((0, 2),) and mvm.v == (0, 4)
    assert mvm.deps == (0, 1)
    assert isinstance(vector, VectorOp) and vector.inputs == ("y",)
    assert isinstance(switch, SwitchOp) and switch.arrays == ((4, 6), (7, 8))
    assert isinstance(trace.ops[7], StoreOp)
    assert isinstance(trace.ops[8], BarrierOp)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mvm.vectors = 3  # type: ignore[misc]


def test_load_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(dump_trace(valid_trace()), encoding="utf-8")
    assert load_trace(path).origin == str(path)
    data = valid_trace()
    data["ops"][2]["deps"] = [0, 5]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CimError) as err:
        load_trace(path)
    assert str(err.value) == f"{path}: op 2: dep 5 is not an earlier op"


def bad(data: dict[str, Any]) -> str:
    with pytest.raises(CimError) as err:
        parse_trace(data, "t.json")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("t.json: ")
    return message


def edit_op(index: int, **changes: Any) -> dict[str, Any]:
    data = valid_trace()
    for key, value in changes.items():
        if value is None:
            del data["ops"][index][key]
        else:
            data["ops"][index][key] = value
    return data


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (2, {"deps": [0, 2]}, "op 2: dep 2 is not an earlier op"),
        (2, {"deps": [-1]}, "op 2: dep -1 is not an earlier op"),
        (2, {"deps": [1, 0]}, "op 2: key 'deps' must be sorted without duplicates"),
        (2, {"deps": [1, 1]}, "op 2: key 'deps' must be sorted without duplicates"),
        (3, {"kind": "foo"}, "op 3: unknown kind 'foo'"),
        (3, {"id": 4}, "op 3: id 4 does not match its position 3"),
        (0, {"bytes": None}, "op 0: missing key 'bytes'"),
        (0, {"bytes": "12"}, "op 0: key 'bytes' must be an integer, got \"12\""),
        (0, {"bytes": 1.5}, "op 0: key 'bytes' must be an integer"),
        (0, {"bytes": True}, "op 0: key 'bytes' must be an integer"),
        (0, {"bytes": -1}, "op 0: key 'bytes' must be at least 0, got -1"),
        (
            0,
            {"src": "disk"},
            "op 0: key 'src' must be one of 'dram', 'buffer', 'memory', 'local'",
        ),
        (0, {"dst": "dram"}, "op 0: keys 'src' and 'dst' are both 'dram'"),
        (7, {"src": "dram"}, "op 7: keys 'src' and 'dst' are both 'dram'"),
        (0, {"src": "buffer", "dst": "dram"}, "op 0: a load cannot write to 'dram'"),
        (0, {"arrays": [[0, 1]]}, "op 0: key 'arrays' must be empty unless"),
        (5, {"arrays": []}, "op 5: key 'arrays' must not be empty"),
        (
            2,
            {"arrays": [[0, 4], [2, 6]]},
            "op 2: array ranges [0, 4) and [2, 6) overlap",
        ),
        (2, {"arrays": [[4, 6], [0, 2]]}, "op 2: array ranges are not sorted"),
        (
            2,
            {"arrays": [[6, 10]]},
            "op 2: array range [6, 10) is outside the target's 8",
        ),
        (2, {"arrays": [[3, 3]]}, "op 2: array range [3, 3) is empty or negative"),
        (
            2,
            {"arrays": [[1, 2, 3]]},
            "op 2: key 'arrays' must be a list of [first, stop)",
        ),
        (2, {"arrays": 3}, "op 2: key 'arrays' must be a list, got 3"),
        (2, {"rows": 129}, "op 2: key 'rows' (129) exceeds the target's 128 rows"),
        (2, {"cols": 0}, "op 2: key 'cols' must be positive, got 0"),
        (2, {"vectors": 0}, "op 2: key 'vectors' must be positive, got 0"),
        (2, {"v": [4, 0]}, "op 2: key 'v' must satisfy 0 <= start <= stop"),
        (2, {"k": [0]}, "op 2: key 'k' must be a [start, stop) pair of integers"),
        (2, {"extra": 1}, "op 2: unknown key 'extra'"),
        (3, {"units": 2}, "op 3: unknown key 'units'"),
        (3, {"cores": [[0, 3]]}, "op 3: core range [0, 3) is outside the target's 2"),
        (3, {"cores": []}, "op 3: key 'cores' must not be empty"),
        (3, {"in_bytes": None}, "op 3: missing key 'in_bytes'"),
        (6, {"dir": "up"}, "op 6: key 'dir' must be one of 'in', 'out', got 'up'"),
        (6, {"cores": [[1, 2], [0, 1]]}, "op 6: core ranges are not sorted"),
        (
            2,
            {"feed": "disk"},
            "op 2: key 'feed' must be one of 'local', 'buffer', 'memory', 'dram'",
        ),
        (2, {"in_bytes": 4}, "op 2: key 'in_bytes' (4) must be 0 exactly when"),
        (2, {"local_bytes": -1}, "op 2: key 'local_bytes' must be at least 0"),
        (2, {"feed_arrays": [[4, 5]]}, "op 2: key 'feed_arrays' belongs only to"),
        (1, {"source": "weight"}, "op 1: key 'source' must be one of 'tensor'"),
        (
            1,
            {"source": "tensor"},
            "op 1: programs arrays with a tensor, but target 'dynaplasia' has "
            "array.dynamic_matmul = false",
        ),
        (0, {"cores": [[0, 1]]}, "op 0: key 'cores' must be empty unless"),
        (
            0,
            {"src": "buffer", "dst": "local"},
            "op 0: a local buffer is reached only by a load from 'memory' or a "
            "store to 'memory', not a load from 'buffer' to 'local'",
        ),
        (
            0,
            {"allocs": [{"tensor": "x", "level": "dram", "bytes": 64}]},
            "op 0: key 'allocs[0].level' must be one of 'buffer', 'local', 'memory'",
        ),
        (
            0,
            {"allocs": [{"tensor": "x", "level": "local", "bytes": 64}]},
            "op 0: missing key 'allocs[0].cores'",
        ),
        (
            0,
            {
                "allocs": [
                    {"tensor": "x", "level": "buffer", "bytes": 64, "arrays": [[0, 1]]}
                ]
            },
            "op 0: key 'allocs[0].arrays' does not belong to level 'buffer'",
        ),
        (
            0,
            {
                "allocs": [
                    {"tensor": "x", "level": "memory", "bytes": -1, "arrays": [[0, 1]]}
                ]
            },
            "op 0: key 'allocs[0].bytes' must be at least 0, got -1",
        ),
        (
            0,
            {
                "allocs": [
                    {"tensor": "x", "level": "local", "bytes": 1, "cores": [[0, 3]]}
                ]
            },
            "op 0: core range [0, 3) is outside the target's 2 cores",
        ),
        (0, {"allocs": {}}, "op 0: key 'allocs' must be a list, got {}"),
        (0, {"allocs": [3]}, "op 0: an alloc must be an object, got a number"),
        (3, {"inputs": [1]}, "op 3: key 'inputs' must be a list of strings, got 1"),
        (4, {"to": "off"}, "op 4: key 'to' must be one of 'compute', 'memory'"),
        (8, {"name": None}, "op 8: missing key 'name'"),
        (8, {"segment": -2}, "op 8: key 'segment' must be at least 0"),
    ],
)
def test_op_errors_name_the_op_and_key(
    index: int, changes: dict[str, Any], message: str
) -> None:
    assert bad(edit_op(index, **changes)).startswith(f"t.json: {message}")


def test_op_that_is_not_an_object() -> None:
    data = valid_trace()
    data["ops"][1] = [1, 2]
    assert bad(data) == "t.json: op 1: the op must be an object, got a list"


def test_switch_on_a_target_without_switchable_arrays() -> None:
    target = small_target()
    target = dataclasses.replace(
        target,
        dual_mode=dataclasses.replace(
            target.dual_mode,
            switchable_arrays=0,
            feeds_compute=False,
            feed_bytes_per_cycle=0.0,
        ),
    )
    data = valid_trace()
    data["target"] = target.to_dict()
    assert bad(data) == (
        "t.json: op 4: switches 3 arrays but the target has 0 switchable arrays"
    )


Edit = Callable[[dict[str, Any]], object]

TOP_LEVEL_ERRORS: list[tuple[Edit, str]] = [
    (
        lambda d: d.update(version=2),
        "t.json: unsupported trace version 2 (this cim-sim reads version 5; "
        "compile the model again)",
    ),
    (
        lambda d: d.update(version="5"),
        't.json: unsupported trace version "5" (this cim-sim reads version 5)',
    ),
    (
        lambda d: d.update(format="other"),
        "t.json: key 'format' must be 'cim-trace', got \"other\"",
    ),
    (lambda d: d.pop("ops"), "t.json: missing key 'ops'"),
    (lambda d: d.update(extra=1), "t.json: unknown key 'extra'"),
    (lambda d: d.update(ops={}), "t.json: key 'ops' must be a list, got {}"),
    (lambda d: d.update(strategy=3), "t.json: key 'strategy' must be a string"),
    (
        lambda d: d["model"].update(batch=0),
        "t.json: key 'model.batch' must be positive, got 0",
    ),
    (lambda d: d["model"].pop("source"), "t.json: missing key 'model.source'"),
    (
        lambda d: d["model"]["inputs"][0].pop("dtype"),
        "t.json: model.inputs[0]: missing key 'dtype'",
    ),
    (
        lambda d: d["tensors"][1].update(name="x"),
        "t.json: tensors[1]: duplicate tensor name 'x'",
    ),
    (
        lambda d: d["tensors"][0].update(bytes=-1),
        "t.json: tensors[0]: key 'bytes' must be at least 0, got -1",
    ),
    (lambda d: d["target"].pop("dram"), "t.json: target: missing table '[dram]'"),
    (
        lambda d: d["target"]["array"].update(rows="x"),
        "t.json: target: key 'array.rows' must be an integer",
    ),
    (lambda d: d.update(target=[]), "t.json: key 'target' must be an object"),
]


@pytest.mark.parametrize(("edit", "message"), TOP_LEVEL_ERRORS)
def test_top_level_errors(edit: Edit, message: str) -> None:
    data = valid_trace()
    edit(data)
    assert bad(data).startswith(message)


def test_trace_must_be_an_object() -> None:
    with pytest.raises(CimError, match=r"^t\.json: the trace must be an object"):
        parse_trace([1], "t.json")


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(CimError, match=r"missing\.json: no such file$"):
        load_trace(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ', encoding="utf-8")
    with pytest.raises(CimError) as err:
        load_trace(broken)
    assert str(err.value).startswith(f"{broken}: invalid JSON at line 1 column 12")


def test_dump_trace_is_deterministic_and_round_trips() -> None:
    data = valid_trace()
    text = dump_trace(data)
    assert text.endswith("}\n")
    assert json.loads(text) == data
    shuffled = copy.deepcopy(data)
    shuffled["ops"] = [dict(reversed(list(o.items()))) for o in shuffled["ops"]]
    shuffled = dict(reversed(list(shuffled.items())))
    assert dump_trace(shuffled) == text
    lines = text.splitlines()
    assert ' "format": "cim-trace",' in lines
    op_lines = [line for line in lines if line.startswith('  {"')]
    assert len(op_lines) == sum(len(data[key]) for key in ("ops", "tensors", "weights"))
    assert (
        '  {"arrays": [], "bytes": 64, "cores": [], "deps": [], "dst": "buffer", '
        '"id": 0, "kind": "load", "name": "x", "segment": 0, "src": "dram", '
        '"tensor": "x"},'
    ) in lines
    assert load_trace(json.loads(text)).ops == load_trace(data).ops


def test_dump_trace_empty_lists_and_nan() -> None:
    data = valid_trace()
    data["ops"] = []
    text = dump_trace(data)
    assert ' "ops": [],' in text.splitlines()
    assert json.loads(text) == data
    data["model"]["bad"] = float("nan")
    with pytest.raises(ValueError):
        dump_trace(data)


def resident_trace(
    x_arrays: list[list[int]], past_arrays: list[list[int]]
) -> dict[str, Any]:
    """The valid trace with a second input, ``past`` (64 bytes), and the
    arrays each input starts in (``[]``: DRAM)."""
    data = valid_trace()
    model = data["model"]
    model["inputs"].append({"name": "past", "shape": [1, 64], "dtype": "float32"})
    for entry, arrays in zip(model["inputs"], (x_arrays, past_arrays), strict=True):
        if arrays:
            entry["arrays"] = arrays
    data["tensors"].append(
        {"name": "past", "shape": [1, 64], "dtype": "float32", "bytes": 64}
    )
    return data


def test_inputs_may_start_in_memory_mode_arrays() -> None:
    trace = load_trace(resident_trace([[2, 3]], [[3, 4]]))
    assert [spec.arrays for spec in trace.model.inputs] == [((2, 3),), ((3, 4),)]
    assert trace.model.outputs[0].arrays == ()
    assert load_trace(resident_trace([], [[2, 3]])).model.inputs[0].arrays == ()


@pytest.mark.parametrize("version", [3, 4])
def test_older_versions_are_refused(version: int) -> None:
    # Versions 3 and 4 name no cores, feeds or allocations: reading them
    # would make those up, so the reader asks for a fresh compile.
    data = valid_trace()
    data["version"] = version
    assert bad(data) == (
        f"t.json: unsupported trace version {version} (this cim-sim reads "
        "version 5; compile the model again)"
    )


def _with_target(data: dict[str, Any], **dual_mode: int) -> dict[str, Any]:
    data["target"]["dual_mode"].update(dual_mode)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            resident_trace([[0, 2]], [[1, 3]]),
            "model.inputs[1] ('past'): its arrays overlap those of input 'x' (array 1)",
        ),
        (
            resident_trace([[0, 1]], [[7, 9]]),
            "model.inputs[1]: array range [7, 9) is outside the target's 8 arrays",
        ),
        (
            resident_trace([[2, 3], [0, 1]], []),
            "model.inputs[0]: array ranges are not sorted: [2, 3) before [0, 1)",
        ),
        (
            resident_trace([], [[0, 0]]),
            "model.inputs[1]: array range [0, 0) is empty or negative",
        ),
        (
            _with_target(resident_trace([[0, 1]], []), memory_capacity_bytes=100),
            "model.inputs[0] ('x'): has 512 bytes, more than its memory-mode "
            "arrays hold (1 x 100 B = 100)",
        ),
        (
            _with_target(resident_trace([[0, 2]], [[2, 3]]), switchable_arrays=2),
            "model inputs start 3 arrays in memory mode but target 'dynaplasia' "
            "has 2 switchable arrays",
        ),
    ],
)
def test_inputs_in_memory_mode_arrays_are_checked(
    data: dict[str, Any], message: str
) -> None:
    assert bad(data) == f"t.json: {message}"


def test_an_input_in_arrays_must_be_a_listed_tensor() -> None:
    data = resident_trace([], [[0, 1]])
    data["tensors"].pop()
    assert bad(data) == (
        "t.json: model.inputs[1] ('past'): starts in memory-mode arrays but is "
        "not listed in 'tensors'"
    )


# --- version 5: allocations, frees, feeds, tensor programs -------------------


def with_ops(
    *ops: dict[str, Any], edits: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The valid trace, with ``edits`` applied to its ops and ``ops``
    appended (ids from 9)."""
    data = valid_trace()
    for index, changes in (edits or {}).items():
        data["ops"][index].update(changes)
    for offset, extra in enumerate(ops):
        data["ops"].append({"id": 9 + offset, "segment": 0, "name": "", **extra})
    return data


def free_z(deps: list[int]) -> dict[str, Any]:
    return {"kind": "free", "deps": deps, "frees": [{"tensor": "z", "level": "buffer"}]}


def buffer_z() -> dict[int, dict[str, Any]]:
    """op 3 (vector relu) allocates its output 'z' in the global buffer;
    ops 5 (load to memory), 6 (move in) and 7 (store) read it from there."""
    return {3: {"allocs": [{"tensor": "z", "level": "buffer", "bytes": 256}]}}


def test_a_free_after_every_reader_is_accepted() -> None:
    data = with_ops(
        free_z([7]),
        edits=buffer_z(),
    )
    trace = load_trace(data)
    assert trace.ops[3].allocs[0].nbytes == 256
    assert trace.ops[9].kind == "free"


@pytest.mark.parametrize(
    ("extra", "edits", "message"),
    [
        (
            free_z([8]),
            {},
            "op 9 (free): frees 'z' in buffer, which holds no live allocation of it",
        ),
        (
            free_z([]),
            buffer_z(),
            "op 9 (free): frees 'z' allocated by op 3, but does not depend on it",
        ),
        (
            free_z([5]),
            buffer_z(),
            "op 9 (free): frees 'z', which is read by op 6, but does not depend on it",
        ),
        (
            {
                "kind": "free",
                "deps": [8],
                "frees": [{"tensor": "z", "level": "local", "cores": [[0, 2]]}],
            },
            {6: {"allocs": [{"tensor": "z", "level": "local", "bytes": 32,
                             "cores": [[1, 2]]}]}},
            "op 9 (free): frees 'z' in local cores [0, 2), which holds no live "
            "allocation of it",
        ),
        (
            {"kind": "barrier", "deps": []},
            {5: {"allocs": [{"tensor": "z", "level": "memory", "bytes": 256,
                             "arrays": [[6, 7]]}]}},
            "op 5 (load 'spill'): allocates 'z' in array 6, which is in compute mode",
        ),
        (
            {"kind": "switch", "deps": [8], "arrays": [[4, 6]], "to": "compute"},
            {5: {"allocs": [{"tensor": "z", "level": "memory", "bytes": 256,
                             "arrays": [[4, 6]]}]}},
            None,
        ),
    ],
)  # fmt: skip
def test_allocation_rules(
    extra: dict[str, Any], edits: dict[int, dict[str, Any]], message: str | None
) -> None:
    data = with_ops(extra, edits=edits)
    if message is None:
        load_trace(data)
        return
    assert bad(data) == f"t.json: {message}"


def test_a_switch_to_compute_ends_the_allocations_in_its_arrays() -> None:
    memory_z = {5: {"allocs": [{"tensor": "z", "level": "memory", "bytes": 256,
                                "arrays": [[4, 6]]}]}}  # fmt: skip
    data = with_ops(
        {"kind": "switch", "deps": [8], "arrays": [[4, 6]], "to": "compute"},
        {
            "kind": "free",
            "deps": [9],
            "frees": [{"tensor": "z", "level": "memory", "arrays": [[4, 6]]}],
        },
        edits=memory_z,
    )
    assert bad(data) == (
        "t.json: op 10 (free): frees 'z' in memory arrays [4, 6), which holds no "
        "live allocation of it"
    )


def feed_trace(feed_arrays: list[list[int]], held: list[list[int]]) -> dict[str, Any]:
    """x loaded into memory-mode arrays ``held`` of core 0 (arrays 2 and 3
    switch), then an MVM on arrays [0, 2) fed from ``feed_arrays``."""
    data = valid_trace()
    common: dict[str, Any] = {"segment": 0, "name": ""}
    data["ops"] = [
        {**common, "id": 0, "kind": "switch", "deps": [], "arrays": [[2, 4]],
         "to": "memory"},
        {**common, "id": 1, "kind": "load", "deps": [0], "src": "dram",
         "dst": "memory", "bytes": 512, "tensor": "x", "arrays": held, "cores": []},
        {**common, "id": 2, "kind": "program", "deps": [], "arrays": [[0, 2]],
         "rows": 128, "cols": 64, "weight": "w", "k": [0, 128], "n": [0, 64]},
        {**common, "id": 3, "kind": "mvm", "deps": [1, 2], "arrays": [[0, 2]],
         "vectors": 4, "rows": 128, "cols": 64, "weight": "w", "k": [0, 128],
         "n": [0, 64], "v": [0, 4], "input": "x", "output": "y", "feed": "memory",
         "in_bytes": 512, "out_bytes": 0, "local_bytes": 0,
         "feed_arrays": feed_arrays},
    ]  # fmt: skip
    return data


def test_an_mvm_fed_from_the_arrays_that_hold_its_input() -> None:
    trace = load_trace(feed_trace([[2, 4]], [[2, 4]]))
    mvm = trace.ops[3]
    assert isinstance(mvm, MvmOp) and mvm.feed_arrays == ((2, 4),)


@pytest.mark.parametrize(
    ("feed_arrays", "held", "message"),
    [
        (
            [[2, 4]],
            [[2, 3]],
            "op 3 (mvm): is fed 'x' from memory-mode arrays that do not hold it",
        ),
        ([[1, 3]], [[2, 4]], "op 3: key 'feed_arrays' shares array 1 with 'arrays'"),
    ],
)
def test_feed_arrays_rules(
    feed_arrays: list[list[int]], held: list[list[int]], message: str
) -> None:
    assert bad(feed_trace(feed_arrays, held)) == f"t.json: {message}"


def in_place_trace(held: list[list[int]], arrays: list[list[int]]) -> dict[str, Any]:
    """The feed trace with weight w staged in memory-mode arrays ``held``
    instead of x, switched to compute in place on ``arrays`` and used by
    an MVM there (fed from DRAM)."""
    data = feed_trace([[2, 4]], held)
    load, program, mvm = data["ops"][1:]
    allocs = [{"tensor": "w", "level": "memory", "bytes": 2048 * len(held),
               "arrays": held}]  # fmt: skip
    load.update(bytes=4096, tensor="w", allocs=allocs)
    program.update(deps=[1], arrays=arrays, feed="cells")
    mvm.update(deps=[2], arrays=arrays, feed="dram")
    del mvm["feed_arrays"]
    return data


def test_a_weight_staged_in_memory_arrays_computes_in_place() -> None:
    trace = load_trace(in_place_trace([[2, 4]], [[2, 4]]))
    program = trace.ops[2]
    assert isinstance(program, ProgramOp) and in_place(program)
    result = simulate(trace)
    switch_cycles = switch_cost(trace.target, 2).cycles
    assert result.finish[2] - result.start[2] == switch_cycles
    assert result.start[3] == result.finish[2]


@pytest.mark.parametrize(
    ("held", "arrays", "edit", "message"),
    [
        (
            [[2, 3]],
            [[2, 4]],
            {},
            "op 2 (program): switches array 3 to compute weight 'w' in place, "
            "but it does not hold it",
        ),
        (
            [[2, 4]],
            [[2, 4]],
            {"in_bytes": 64},
            "op 2: key 'in_bytes' (64) must be 0 with 'feed' 'cells': nothing streams",
        ),
        (
            [[2, 4]],
            [[2, 4]],
            {"feed_arrays": [[2, 4]]},
            "op 2: key 'feed_arrays' does not go with 'feed' 'cells'",
        ),
    ],
)
def test_in_place_program_rules(
    held: list[list[int]], arrays: list[list[int]], edit: dict[str, Any], message: str
) -> None:
    data = in_place_trace(held, arrays)
    data["ops"][2].update(edit)
    assert bad(data) == f"t.json: {message}"


def test_a_staged_weight_is_not_readable_after_its_switch() -> None:
    """The switch in place ends the staged allocation: freeing it after
    is an error (its cells hold the weight, not a memory-mode tensor)."""
    data = in_place_trace([[2, 4]], [[2, 4]])
    data["ops"].append(
        {"id": 4, "segment": 0, "name": "", "kind": "free", "deps": [3],
         "frees": [{"tensor": "w", "level": "memory", "arrays": [[2, 4]]}]}
    )  # fmt: skip
    assert bad(data) == (
        "t.json: op 4 (free): frees 'w' in memory arrays [2, 4), which holds no "
        "live allocation of it"
    )


def local_trace(
    arrays: list[list[int]], target: HardwareTarget | None = None
) -> dict[str, Any]:
    """The feed trace with the MVM fed from core 0's local buffer, staged
    there from memory-mode arrays ``arrays`` by a load."""
    data = feed_trace([[2, 4]], [[2, 4]])
    mvm = data["ops"][3]
    mvm.update(feed="local", in_bytes=0, local_bytes=512, deps=[2, 3])
    del mvm["feed_arrays"]
    data["ops"].insert(
        3,
        {"id": 3, "kind": "load", "deps": [1], "segment": 0, "name": "",
         "src": "memory", "dst": "local", "bytes": 512, "tensor": "x",
         "arrays": arrays, "cores": [[0, 1]]},
    )  # fmt: skip
    mvm["id"] = 4
    if target is not None:
        data["target"] = target.to_dict()
    return data


def test_memory_to_local_transfers() -> None:
    trace = load_trace(local_trace([[2, 4]]))
    load = trace.ops[3]
    assert isinstance(load, LoadOp) and load.cores == ((0, 1),)
    assert bad(local_trace([[3, 5]])) == (
        "t.json: op 3: key 'arrays' must lie in core 0, the core of its local buffer"
    )
    target = small_target()
    no_path = dataclasses.replace(
        target,
        dual_mode=dataclasses.replace(
            target.dual_mode, feeds_compute=False, feed_bytes_per_cycle=0.0
        ),
    )
    assert bad(local_trace([[2, 4]], no_path)) == (
        "t.json: op 3: a load between memory and local needs the memory-to-compute "
        "path, but target 'dynaplasia' has dual_mode.feeds_compute = false"
    )
    # without the path, memory-mode arrays feed an MVM over the interconnect
    load_trace(feed_trace([[2, 4]], [[2, 4]]) | {"target": no_path.to_dict()})


def tensor_program_trace(declared: bool, listed: bool) -> dict[str, Any]:
    """y = x @ x^T-like: the program writes tensor 'kt' ([128, 64], declared
    in 'tensors' when ``declared``, its matrix view in 'weights' when
    ``listed``) into arrays [2, 4)."""
    target = small_target()
    data = valid_trace()
    data["target"] = dataclasses.replace(
        target, array=dataclasses.replace(target.array, dynamic_matmul=True)
    ).to_dict()
    if declared:
        data["tensors"].append(
            {"name": "kt", "shape": [128, 64], "dtype": "float32", "bytes": 8192}
        )
    if listed:
        data["weights"].append(
            {"name": "kt", "layout": "kn", "groups": 1, "k": 128, "n": 64}
        )
    data["ops"].append(
        {"id": 9, "kind": "program", "deps": [], "segment": 0, "name": "",
         "arrays": [[2, 4]], "rows": 128, "cols": 64, "weight": "kt",
         "k": [0, 128], "n": [0, 64], "source": "tensor"},
    )  # fmt: skip
    return data


def test_tensor_programs_need_a_declared_tensor_and_its_matrix_view() -> None:
    trace = load_trace(tensor_program_trace(declared=True, listed=True))
    program = trace.ops[9]
    assert isinstance(program, ProgramOp) and program.source == "tensor"
    assert bad(tensor_program_trace(declared=False, listed=True)) == (
        "t.json: op 9 (program): programs arrays with tensor 'kt', which is not a "
        "declared tensor"
    )
    assert bad(tensor_program_trace(declared=True, listed=False)) == (
        "t.json: op 9 (program): weight 'kt' is not listed in the trace's weights"
    )


# --- streams from and to DRAM and memory-mode arrays -------------------------


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (
            2,
            {"out_to": "local", "out_bytes": 32},
            "op 2: key 'out_to' must be one of 'buffer', 'dram', 'memory', got 'local'",
        ),
        (2, {"out_to": "memory", "out_bytes": 32}, "op 2: missing key 'out_arrays'"),
        (
            2,
            {"out_arrays": [[4, 5]], "out_bytes": 32},
            "op 2: key 'out_arrays' belongs only to 'out_to' 'memory'",
        ),
        (
            2,
            {"out_to": "memory", "out_bytes": 32, "out_arrays": [[1, 3]]},
            "op 2: key 'out_arrays' shares array 1 with 'arrays'",
        ),
        (
            2,
            {"feed": "dram", "feed_arrays": [[4, 5]], "in_bytes": 4},
            "op 2: key 'feed_arrays' belongs only to 'feed' 'memory'",
        ),
        (3, {"in_from": "memory", "in_bytes": 4}, "op 3: missing key 'in_arrays'"),
        (
            3,
            {"out_to": "memory", "out_bytes": 4, "out_arrays": [[8, 9]]},
            "op 3: array range [8, 9) is outside the target's 8 arrays",
        ),
        (
            1,
            {"feed": "local"},
            "op 1: key 'feed' must be one of 'buffer', 'dram', 'memory', got 'local'",
        ),
        (
            1,
            {"feed_arrays": [[4, 5]], "in_bytes": 4},
            "op 1: key 'feed_arrays' belongs only to 'feed' 'memory'",
        ),
        (
            1,
            {"feed": "memory", "feed_arrays": [[1, 2]], "in_bytes": 4},
            "op 1: key 'feed_arrays' shares array 1 with 'arrays'",
        ),
        (1, {"in_bytes": -1}, "op 1: key 'in_bytes' must be at least 0, got -1"),
    ],
)
def test_stream_keys_are_checked(
    index: int, changes: dict[str, Any], message: str
) -> None:
    assert bad(edit_op(index, **changes)).startswith(f"t.json: {message}")


@pytest.mark.parametrize(
    ("index", "changes"),
    [(2, {"out_to": "dram"}), (3, {"in_from": "dram"}), (1, {"feed": "dram"})],
)
def test_a_stream_end_may_move_no_bytes(index: int, changes: dict[str, Any]) -> None:
    """A view of a tensor in DRAM (an im2col with in_from and out_to dram)
    streams 0 bytes from a level other than the global buffer."""
    trace = load_trace(edit_op(index, **changes))
    assert trace.ops[index].id == index


def test_streams_default_to_the_global_buffer() -> None:
    trace = load_trace(valid_trace())
    program, mvm, vector = trace.ops[1], trace.ops[2], trace.ops[3]
    assert isinstance(program, ProgramOp)
    assert (program.feed, program.in_bytes, program.feed_arrays) == ("buffer", 0, ())
    assert isinstance(mvm, MvmOp) and (mvm.out_to, mvm.out_arrays) == ("buffer", ())
    assert isinstance(vector, VectorOp)
    assert (vector.in_from, vector.out_to) == ("buffer", "buffer")


def test_memory_streams_need_memory_mode_bandwidth() -> None:
    target = small_target()
    without = dataclasses.replace(
        target,
        dual_mode=dataclasses.replace(
            target.dual_mode,
            switchable_arrays=0,
            memory_bandwidth_bytes_per_cycle=0.0,
            memory_capacity_bytes=0,
            feeds_compute=False,
            feed_bytes_per_cycle=0.0,
        ),
    )
    data = edit_op(2, out_to="memory", out_bytes=32, out_arrays=[[4, 5]])
    data["target"] = without.to_dict()
    assert bad(data) == (
        "t.json: op 2: target 'dynaplasia' has no memory-mode bandwidth"
    )


def stream_trace(*ops: dict[str, Any]) -> dict[str, Any]:
    """Arrays 4-7 (core 1) switch to memory mode (op 0), x is loaded into
    arrays 4-5 (op 1, allocated there), w is programmed into arrays 0-1
    (op 2); then ``ops`` (ids from 3)."""
    data = valid_trace()
    common: dict[str, Any] = {"segment": 0, "name": ""}
    data["ops"] = [
        {**common, "id": 0, "kind": "switch", "deps": [], "arrays": [[4, 8]],
         "to": "memory"},
        {**common, "id": 1, "kind": "load", "deps": [0], "src": "dram",
         "dst": "memory", "bytes": 512, "tensor": "x", "arrays": [[4, 6]],
         "cores": [], "allocs": [{"tensor": "x", "level": "memory", "bytes": 512,
                                  "arrays": [[4, 6]]}]},
        {**common, "id": 2, "kind": "program", "deps": [], "arrays": [[0, 2]],
         "rows": 128, "cols": 64, "weight": "w", "k": [0, 128], "n": [0, 64]},
    ]  # fmt: skip
    for offset, extra in enumerate(ops):
        data["ops"].append({"id": 3 + offset, **common, **extra})
    return data


def stream_mvm(deps: list[int], **keys: Any) -> dict[str, Any]:
    return {
        "kind": "mvm", "deps": deps, "arrays": [[0, 2]], "vectors": 4, "rows": 128,
        "cols": 64, "weight": "w", "k": [0, 128], "n": [0, 64], "v": [0, 4],
        "input": "x", "output": "y", "feed": "local", "in_bytes": 0,
        "out_bytes": 0, "local_bytes": 0,
    } | keys  # fmt: skip


def stream_vector(deps: list[int], inputs: list[str], **keys: Any) -> dict[str, Any]:
    vector: dict[str, Any] = {
        "kind": "vector", "deps": deps, "op": "add", "element_ops": 256,
        "cores": [[1, 2]], "in_bytes": 0, "out_bytes": 0, "inputs": inputs,
        "outputs": ["z"], "attrs": {},
    }  # fmt: skip
    return vector | keys


FROM_X = {"feed": "memory", "feed_arrays": [[4, 6]], "in_bytes": 512}
"""An MVM input streamed from arrays 4-5 (core 1; the MVM computes in core 0)."""
Y_TO_MEMORY = {"out_to": "memory", "out_arrays": [[6, 8]], "out_bytes": 256}


def test_streams_from_and_to_memory_arrays_of_another_core() -> None:
    trace = load_trace(
        stream_trace(
            stream_mvm([1, 2], **FROM_X, **Y_TO_MEMORY),
            # y is in arrays 6-7 now: read it back, and stream x and y
            {"kind": "load", "deps": [3], "src": "memory", "dst": "buffer",
             "bytes": 256, "tensor": "y", "arrays": [[6, 8]], "cores": []},
            stream_vector([3], ["x", "y"], in_from="memory", in_arrays=[[4, 8]],
                          in_bytes=768),
            {"kind": "free", "deps": [5],
             "frees": [{"tensor": "x", "level": "memory", "arrays": [[4, 6]]}]},
        )
    )  # fmt: skip
    mvm = trace.ops[3]
    assert isinstance(mvm, MvmOp) and mvm.out_arrays == ((6, 8),)


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (
            [stream_vector([1], ["x"], in_from="memory", in_arrays=[[6, 7]],
                           in_bytes=512)],
            "op 3 (vector add): streams 'x' from memory-mode arrays that do not "
            "hold it",
        ),
        (
            [stream_vector([1], ["x"], in_from="memory", in_arrays=[[4, 7]],
                           in_bytes=512)],
            "op 3 (vector add): streams 'x' from memory-mode arrays that do not "
            "hold it",
        ),
        (
            [stream_mvm([1, 2], **FROM_X, **Y_TO_MEMORY),
             stream_vector([3], ["x", "y"], in_from="memory", in_arrays=[[4, 7]],
                           in_bytes=768),
             stream_vector([3], ["x"], in_from="memory", in_arrays=[[4, 7]],
                           in_bytes=512)],
            "op 5 (vector add): streams 'x' from memory-mode arrays that do not "
            "hold it",
        ),
        (
            [stream_mvm([1, 2], **FROM_X),
             stream_vector([3], ["x", "y"], in_from="memory", in_arrays=[[4, 6]],
                           in_bytes=768)],
            "op 4 (vector add): streams 'y' from memory-mode arrays that do not "
            "hold it",
        ),
        (
            [stream_vector([1], ["x"], in_from="memory", in_arrays=[[2, 3]],
                           in_bytes=512)],
            "op 3 (vector add): uses array 2 in memory mode, but it is in compute "
            "mode",
        ),
        (
            [stream_mvm([1, 2], **FROM_X, out_to="memory", out_arrays=[[2, 3]],
                        out_bytes=256)],
            "op 3 (mvm): uses array 2 in memory mode, but it is in compute mode",
        ),
        (
            [stream_mvm([1, 2], out_to="memory", out_arrays=[[6, 8]],
                        out_bytes=256, feed="dram", in_bytes=512)],
            None,
        ),
        (
            [stream_mvm([2], out_to="memory", out_arrays=[[6, 8]], out_bytes=256,
                        feed="dram", in_bytes=512)],
            "op 3 (mvm): uses array 6, set up by op 0, but does not depend on it",
        ),
        (
            [stream_mvm([1, 2], **FROM_X, **Y_TO_MEMORY),
             {"kind": "switch", "deps": [3], "arrays": [[6, 8]], "to": "compute"},
             {"kind": "load", "deps": [4], "src": "memory", "dst": "buffer",
              "bytes": 256, "tensor": "y", "arrays": [[6, 8]], "cores": []}],
            "op 5 (load): uses array 6 in memory mode, but it is in compute mode",
        ),
        (
            [{"kind": "program", "deps": [1], "arrays": [[2, 3]], "rows": 128,
              "cols": 64, "weight": "w", "k": [0, 128], "n": [0, 64],
              "feed": "memory", "feed_arrays": [[4, 6]], "in_bytes": 8192}],
            "op 3 (program): programs 'w' from memory-mode arrays that do not hold "
            "it",
        ),
        (
            [stream_vector([1], ["x"], in_from="memory", in_arrays=[[4, 6]],
                           in_bytes=512),
             {"kind": "free", "deps": [1],
              "frees": [{"tensor": "x", "level": "memory", "arrays": [[4, 6]]}]}],
            "op 4 (free): frees 'x', which is read by op 3, but does not depend on it",
        ),
    ],
)  # fmt: skip
def test_stream_meaning_rules(ops: list[dict[str, Any]], message: str | None) -> None:
    data = stream_trace(*ops)
    if message is None:
        load_trace(data)
        return
    assert bad(data) == f"t.json: {message}"
