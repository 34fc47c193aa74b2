"""Bad ONNX input through the real console entry points (issue 9).

Every bad model or path is given to ``cim-opt`` and ``cim-verify`` exactly as
a user would: the tool must exit non-zero with exactly one line on stderr,
``<tool>: error: ...``, naming the file and the node, value or option at
fault, without a traceback, and leave an existing ``-o`` file untouched.
The inputs documented as accepted (docs/onnx-frontend.md) must compile,
simulate and verify instead.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import runpy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import AttributeProto, NodeProto, TensorProto, helper, numpy_helper

from cimflow.errors import CimError
from cimflow.frontend import model_file, prepare_model
from cimflow.frontend.common import (
    attr_float,
    attr_int,
    attr_ints,
    attr_str,
    attr_tensor,
)
from cimflow.frontend.supported import SUPPORTED_OPS, SUPPORTED_OPS_DOC, ops_table
from cimflow.tools import cim_opt, cim_sim, cim_verify

PREVIOUS = b"the output of an earlier run, which a failed run must leave alone\n"
TOOLS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "cim-opt": cim_opt.main,
    "cim-verify": cim_verify.main,
}
RUNNERS = {**TOOLS, "cim-sim": cim_sim.main}
DOCS = Path(__file__).parents[2] / "docs" / "onnx-frontend.md"

Builder = Callable[[Path], tuple[Path, list[str]]]
"""Writes a bad input under a directory; returns its path and what the error
must name besides the path."""


# -- building models -----------------------------------------------------------


def info(name: str, shape: Sequence[int | str] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def ints(name: str, values: Sequence[int]) -> TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def floats(name: str, shape: Sequence[int]) -> TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def model(
    nodes: Sequence[NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[TensorProto] = (),
    opsets: Sequence[tuple[str, int]] = (("", 17),),
    ir_version: int = 8,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
        ir_version=ir_version,
    )


def save(directory: Path, proto: onnx.ModelProto, name: str = "m.onnx") -> Path:
    path = directory / name
    path.write_bytes(proto.SerializeToString())
    return path


def linear_model() -> onnx.ModelProto:
    """A valid model: ``y = x @ w``."""
    return model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [info("x", [2, 8])],
        [info("y", [2, 4])],
        [floats("w", [8, 4])],
    )


def relu_model(
    opsets: Sequence[tuple[str, int]] = (("", 17),), ir_version: int = 8
) -> onnx.ModelProto:
    return model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        [info("x", [2, 3])],
        [info("y", [2, 3])],
        opsets=opsets,
        ir_version=ir_version,
    )


def saved(proto: onnx.ModelProto, *needles: str) -> Builder:
    def build(directory: Path) -> tuple[Path, list[str]]:
        return save(directory, proto), list(needles)

    return build


def raw(data: bytes, *needles: str, name: str = "m.onnx") -> Builder:
    def build(directory: Path) -> tuple[Path, list[str]]:
        path = directory / name
        path.write_bytes(data)
        return path, list(needles)

    return build


# -- running the tools ---------------------------------------------------------


def expect_error(
    tool: str,
    argv: Sequence[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    needles: Sequence[str],
) -> str:
    """Run ``tool``; assert the one-line error names every needle."""
    previous = tmp_path / "previous.out"
    previous.write_bytes(PREVIOUS)
    output = ["-o", str(previous)] if tool == "cim-opt" else []
    status = TOOLS[tool]([*argv, *output])
    captured = capsys.readouterr()
    assert status != 0
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert line.startswith(f"{tool}: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert captured.out == ""
    assert previous.read_bytes() == PREVIOUS
    assert not list(tmp_path.glob(".cim-opt-*")), "a temporary output was left"
    return line


def expect_success(
    tool: str, argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> str:
    status = RUNNERS[tool](list(argv))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""
    return captured.out


# -- 1. invalid ONNX, and what the file does not define ------------------------


def _gather_model(indices: Sequence[int]) -> onnx.ModelProto:
    return model(
        [helper.make_node("Gather", ["x", "idx"], ["y"], name="g", axis=0)],
        [info("x", [4, 3])],
        [info("y", [len(indices), 3])],
        [ints("idx", indices)],
    )


def _short_initializer() -> onnx.ModelProto:
    proto = linear_model()
    tensor = proto.graph.initializer[0]
    tensor.raw_data = tensor.raw_data[:20]
    return proto


INVALID: dict[str, Builder] = {
    "attribute-of-wrong-type": saved(
        model(
            [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis="1")],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "'sm : axis'",
        "INT",
        "STRING",
    ),
    "two-nodes-write-one-value": saved(
        model(
            [
                helper.make_node("Relu", ["x"], ["y"], name="first"),
                helper.make_node("Neg", ["x"], ["y"], name="second"),
            ],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "'y'",
        "node 'first'",
        "node 'second'",
    ),
    "unnamed-nodes-write-one-value": saved(
        model(
            [
                helper.make_node("Relu", ["x"], ["y"]),
                helper.make_node("Neg", ["x"], ["y"]),
            ],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "'y'",
        "node '#0'",
        "node '#1'",
    ),
    "node-writes-a-graph-input": saved(
        model(
            [
                helper.make_node("Relu", ["x"], ["x"], name="r"),
                helper.make_node("Neg", ["x"], ["y"], name="n"),
            ],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "'x'",
        "a graph input",
        "node 'r'",
    ),
    "node-writes-an-initializer": saved(
        model(
            [helper.make_node("Relu", ["x"], ["w", "w"], name="r")],
            [info("x", [8, 4])],
            [info("w", [8, 4])],
            [floats("w", [8, 4])],
        ),
        "'w'",
        "an initializer",
        "node 'r'",
    ),
    "node-writes-a-value-twice": saved(
        model(
            [helper.make_node("Split", ["x"], ["y", "y"], name="s", axis=0)],
            [info("x", [2, 3])],
            [info("y", [1, 3])],
        ),
        "node 's' writes 'y' twice",
    ),
    "reads-an-undefined-value": saved(
        model(
            [helper.make_node("Relu", ["nowhere"], ["y"], name="r")],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "node 'r' uses 'nowhere'",
    ),
    "cycle": saved(
        model(
            [
                helper.make_node("Add", ["x", "b"], ["a"], name="first"),
                helper.make_node("Relu", ["a"], ["b"], name="second"),
            ],
            [info("x", [2, 3])],
            [info("b", [2, 3])],
        ),
        "cycle through node 'first'",
    ),
    "gather-index-past-the-end": saved(
        _gather_model([0, 7]), "node 'g'", "index 7", "size 4"
    ),
    "gather-index-below-minus-size": saved(
        _gather_model([-5]), "node 'g'", "index -5", "size 4"
    ),
    "gather-index-in-shape-arithmetic": saved(
        model(
            [
                helper.make_node("Shape", ["x"], ["shape"], name="shape"),
                helper.make_node("Gather", ["shape", "i"], ["d"], name="pick"),
                helper.make_node("Reshape", ["x", "d"], ["y"], name="reshape"),
            ],
            [info("x", [2, 3])],
            [info("y", None)],
            [ints("i", [5])],
        ),
        "pick",
        "indices",
    ),
    "opset-newer-than-onnx": saved(
        relu_model(opsets=[("", onnx.defs.onnx_opset_version() + 1)]),
        f"opset {onnx.defs.onnx_opset_version() + 1} of ai.onnx",
        f"onnx {onnx.__version__}",
    ),
    "ml-opset-newer-than-onnx": saved(
        relu_model(
            opsets=[("", 17), ("ai.onnx.ml", onnx.defs.onnx_ml_opset_version() + 1)]
        ),
        f"opset {onnx.defs.onnx_ml_opset_version() + 1} of ai.onnx.ml",
        f"onnx {onnx.__version__}",
    ),
    "ir-version-newer-than-onnx": saved(
        relu_model(ir_version=onnx.IR_VERSION + 1),
        f"IR version {onnx.IR_VERSION + 1}",
        f"onnx {onnx.__version__}",
    ),
    "wrong-input-count": saved(
        model(
            [helper.make_node("Relu", ["x", "x"], ["y"], name="r")],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
        "invalid ONNX",
        "r",
        "input size 2",
    ),
    "initializer-data-too-short": saved(
        _short_initializer(), "invalid ONNX", "tensor name: w", "20 bytes"
    ),
    "shape-inference-error": saved(
        model(
            [helper.make_node("Add", ["x", "z"], ["y"], name="bad_add")],
            [info("x", [2, 3]), info("z", [4])],
            [info("y", None)],
        ),
        "shape inference failed",
        "bad_add",
    ),
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("case", INVALID)
def test_invalid_onnx_is_one_line(
    case: str, tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, needles = INVALID[case](tmp_path)
    expect_error(tool, [str(path)], tmp_path, capsys, [f"{path}: ", *needles])


def test_negative_gather_indices_in_range_are_legal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save(tmp_path, _gather_model([-1, 0, -4, 3]))
    report = expect_success(
        "cim-verify", [str(path), "--target", "tiny", "--json"], capsys
    )
    assert json.loads(report)["passed"] is True


ATTRIBUTE_READERS: dict[str, Callable[[NodeProto], object]] = {
    "INT": lambda node: attr_int(node, "a", 0),
    "FLOAT": lambda node: attr_float(node, "a", 0.0),
    "STRING": lambda node: attr_str(node, "a", ""),
    "INTS": lambda node: attr_ints(node, "a"),
    "TENSOR": lambda node: attr_tensor(node, "a"),
}
"""The frontend's attribute readers, by the type each expects."""


@pytest.mark.parametrize(
    ("expected", "attribute"),
    [
        ("INT", helper.make_attribute("a", "1")),
        ("FLOAT", helper.make_attribute("a", 1)),
        ("STRING", helper.make_attribute("a", 1.0)),
        ("INTS", helper.make_attribute("a", 3)),
        ("TENSOR", helper.make_attribute("a", [1])),
    ],
)
def test_every_attribute_read_checks_the_type(
    expected: str, attribute: AttributeProto
) -> None:
    node = helper.make_node("Anything", ["x"], ["y"], name="n")
    node.attribute.append(attribute)
    given = AttributeProto.AttributeType.Name(attribute.type)
    with pytest.raises(CimError) as raised:
        ATTRIBUTE_READERS[expected](node)
    assert str(raised.value) == (
        f"node 'n' (Anything): attribute 'a' must be of type {expected}, got {given}"
    )


def test_attribute_type_is_checked_without_the_onnx_checker() -> None:
    """``prepare_model`` on an in-memory model (no checker on that path)."""
    params = [floats(n, [2]) for n in ("s", "b", "m", "v")]
    node = helper.make_node(
        "BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn"
    )
    node.attribute.append(helper.make_attribute("training_mode", "1"))
    proto = model([node], [info("x", [1, 2, 3, 3])], [info("y", None)], params)
    with pytest.raises(CimError) as raised:
        prepare_model(proto, {}, "in-memory.onnx")
    assert str(raised.value) == (
        "in-memory.onnx: node 'bn' (BatchNormalization): attribute "
        "'training_mode' must be of type INT, got STRING"
    )


# -- 2. corrupt and truncated files --------------------------------------------


def _truncations() -> dict[str, Builder]:
    data = linear_model().SerializeToString()
    cuts = sorted({len(data) * k // 8 for k in range(1, 8)} | {len(data) - 1})
    return {f"truncated-at-{cut}": raw(data[:cut]) for cut in cuts}


def _random_files() -> dict[str, Builder]:
    return {
        f"random-bytes-{seed}": raw(np.random.default_rng(seed).bytes(400))
        for seed in range(4)
    }


def _bytes_with_bad_node_name() -> bytes:
    proto = linear_model()
    proto.graph.node[0].name = "node_named_here"
    data = proto.SerializeToString()
    assert data.count(b"node_named_here") == 1
    return data.replace(b"node_named_here", b"\xffode_named_here")


CORRUPT: dict[str, Builder] = {
    "empty": raw(b"", "empty file"),
    "text": raw(b"this is not a model\n", "not an ONNX model"),
    "tensor-proto": raw(floats("w", [3, 4]).SerializeToString(), "not an ONNX model"),
    "graph-proto": raw(linear_model().graph.SerializeToString(), "not an ONNX model"),
    "node-proto": raw(
        helper.make_node("Relu", ["x"], ["y"]).SerializeToString(), "not an ONNX model"
    ),
    "no-nodes-undefined-output": saved(
        model([], [info("x", [2, 3])], [info("y", [2, 3])]), "'y'"
    ),
    "no-graph-outputs": saved(
        model([], [info("x", [2, 3])], []), "not an ONNX model", "no graph"
    ),
    "name-not-utf8": raw(
        _bytes_with_bad_node_name(),
        "invalid ONNX",
        "model.graph.node[0].name is not valid UTF-8",
    ),
    **_truncations(),
    **_random_files(),
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_file_is_one_line(
    case: str, tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, needles = CORRUPT[case](tmp_path)
    expect_error(tool, [str(path)], tmp_path, capsys, [f"{path}: ", *needles])


def _external_model(directory: Path) -> Path:
    """``y = x @ w`` with ``w`` in ``m.data`` next to ``m.onnx``."""
    path = directory / "m.onnx"
    onnx.save(
        linear_model(),
        path,
        save_as_external_data=True,
        location="m.data",
        size_threshold=0,
    )
    return path


def _set_external(path: Path, key: str, value: str | None) -> None:
    proto = onnx.load(path, load_external_data=False)
    tensor = proto.graph.initializer[0]
    entries = [(e.key, e.value) for e in tensor.external_data if e.key != key]
    if value is not None:
        entries.append((key, value))
    del tensor.external_data[:]
    for k, v in entries:
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    onnx.save(proto, path)


def _missing_data(path: Path) -> list[str]:
    (path.parent / "m.data").unlink()
    return ["weight data of 'w' is not available", "m.data"]


def _short_data(path: Path) -> list[str]:
    _set_external(path, "length", None)
    os.truncate(path.parent / "m.data", 20)
    return ["weight data of 'w' is malformed"]


def _escaping_data(path: Path) -> list[str]:
    _set_external(path, "location", "../outside.data")
    return ["weight data of 'w' is not available", "outside"]


@pytest.mark.parametrize("spoil", [_missing_data, _short_data, _escaping_data])
def test_bad_external_data(
    spoil: Callable[[Path], list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """cim-verify needs the weights and says what is wrong with them; cim-opt
    never reads weight values, so it compiles (shape-only models)."""
    path = _external_model(tmp_path)
    needles = spoil(path)
    expect_error("cim-verify", [str(path)], tmp_path, capsys, [f"{path}: ", *needles])
    trace = tmp_path / "trace.json"
    argv = [str(path), "-p", "cim-compile-static{target=tiny}", "-t", "cim-trace"]
    expect_success("cim-opt", [*argv, "-o", str(trace)], capsys)
    assert json.loads(trace.read_text())["model"]["source"] == str(path)


def test_external_data_present_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _external_model(tmp_path)
    report = expect_success(
        "cim-verify", [str(path), "--target", "tiny", "--json"], capsys
    )
    assert json.loads(report)["passed"] is True


# -- 3. --dim names the model does not have -------------------------------------


def _symbolic_model() -> onnx.ModelProto:
    return model(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        [info("x", ["batch", "width"])],
        [info("y", ["batch", "width"])],
    )


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize(
    ("proto", "listed"),
    [
        (_symbolic_model(), "its symbolic dimensions: batch, width"),
        (relu_model(), "it has no symbolic dimensions"),
    ],
    ids=["symbolic", "static"],
)
def test_unknown_dim_name(
    proto: onnx.ModelProto,
    listed: str,
    tool: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = save(tmp_path, proto)
    dims = ["--dim", "batch=2", "--dim", "width=3"] if "batch" in listed else []
    expect_error(
        tool,
        [str(path), *dims, "--dim", "sequence=8"],
        tmp_path,
        capsys,
        [f"{path}: ", "--dim sequence", "'sequence'", listed],
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_known_dim_names_compile(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save(tmp_path, _symbolic_model())
    extra = ["--target", "tiny"] if tool == "cim-verify" else []
    expect_success(
        tool, [str(path), "--dim", "batch=2", "--dim", "width=3", *extra], capsys
    )


def test_dim_with_mlir_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.mlir"
    path.write_text("builtin.module {}\n")
    expect_error(
        "cim-opt",
        [str(path), "--dim", "batch=1"],
        tmp_path,
        capsys,
        ["--dim applies only to ONNX input"],
    )


# -- 4. messages that named the wrong thing --------------------------------------


def _negative_initializer() -> onnx.ModelProto:
    proto = linear_model()
    proto.graph.initializer[0].dims[0] = -8
    return proto


def _directory(directory: Path) -> tuple[Path, list[str]]:
    path = directory / "model.onnx"
    path.mkdir()
    return path, ["is a directory"]


def _symlink_loop(directory: Path) -> tuple[Path, list[str]]:
    path = directory / "loop.onnx"
    path.symlink_to(path)
    return path, ["symlink loop"]


def _dangling_symlink(directory: Path) -> tuple[Path, list[str]]:
    path = directory / "link.onnx"
    path.symlink_to(directory / "gone.onnx")
    return path, ["no such file", "dangling symlink"]


def _missing(directory: Path) -> tuple[Path, list[str]]:
    return directory / "absent.onnx", ["no such file"]


WRONG_BLAME: dict[str, Builder] = {
    "negative-initializer-dimension": saved(
        _negative_initializer(), "initializer 'w'", "negative dimension"
    ),
    "zero-size-input-dimension": saved(
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="r")],
            [info("x", [0, 3])],
            [info("y", [0, 3])],
        ),
        "input 'x'",
        "zero-size dimension 0",
        "[0, 3]",
    ),
    "negative-input-dimension": saved(
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="r")],
            [info("x", [-2, 3])],
            [info("y", [2, 3])],
        ),
        "input 'x'",
        "negative dimension 0",
    ),
    "directory": _directory,
    "symlink-loop": _symlink_loop,
    "dangling-symlink": _dangling_symlink,
    "missing": _missing,
    "constant-output": saved(
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="r")],
            [info("x", [2, 3])],
            [info("y", [2, 3]), info("b", [3])],
            [floats("b", [3])],
        ),
        "graph output 'b'",
        "constant",
    ),
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("case", WRONG_BLAME)
def test_error_names_the_real_fault(
    case: str, tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, needles = WRONG_BLAME[case](tmp_path)
    line = expect_error(tool, [str(path)], tmp_path, capsys, [f"{path}: ", *needles])
    for misleading in ("MatMul", "dynamic", "node 'r'"):
        assert misleading not in line


@pytest.mark.parametrize("tool", TOOLS)
def test_permission_denied(
    tool: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = save(tmp_path, linear_model())
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the open fail
        real_open = builtins.open

        def refuse(file: object, *args: object, **kwargs: object) -> object:
            if str(file) == str(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(model_file, "open", refuse, raising=False)
    expect_error(tool, [str(path)], tmp_path, capsys, [f"{path}: permission denied"])


def _passthrough_model() -> onnx.ModelProto:
    """``y = x @ w``; ``x`` is also an output (legal ONNX)."""
    proto = linear_model()
    proto.graph.output.append(info("x", [2, 8]))
    return proto


@pytest.mark.parametrize(
    "proto",
    [
        _passthrough_model(),
        model([], [info("x", [2, 3])], [info("x", [2, 3])]),
        model([], [info("x", [2, 3])], [info("x", None)]),
    ],
    ids=["with-nodes", "no-nodes", "declared-without-shape"],
)
def test_graph_output_that_is_a_graph_input(
    proto: onnx.ModelProto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accepted: compiled to a trace, simulated, and verified against
    onnxruntime, which returns the input."""
    path = save(tmp_path, proto)
    trace = tmp_path / "trace.json"
    argv = [str(path), "-p", "cim-compile-static{target=tiny}", "-t", "cim-trace"]
    expect_success("cim-opt", [*argv, "-o", str(trace)], capsys)
    document = json.loads(trace.read_text())
    outputs = [o["name"] for o in document["model"]["outputs"]]
    assert outputs == [o.name for o in proto.graph.output]
    assert not any(
        op.get("tensor") == "x" and op["kind"] == "store" for op in document["ops"]
    )
    report = json.loads(expect_success("cim-sim", [str(trace), "--json"], capsys))
    assert report["latency"]["cycles"] >= 0
    verified = json.loads(
        expect_success("cim-verify", [str(path), "--target", "tiny", "--json"], capsys)
    )
    assert verified["passed"] is True
    (exact,) = verified["modes"]
    checked = {o["name"]: o for o in exact["outputs"]}
    assert checked["x"]["max_abs_error"] == 0.0
    assert checked["x"]["passed"] is True


# -- 5. unsupported ops point to the list -----------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_unsupported_op_points_to_the_list(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save(
        tmp_path,
        model(
            [helper.make_node("Hardmax", ["x"], ["y"], name="h")],
            [info("x", [2, 3])],
            [info("y", [2, 3])],
        ),
    )
    line = expect_error(
        tool,
        [str(path)],
        tmp_path,
        capsys,
        [
            f"{path}: node 'h' has unsupported op type 'Hardmax'",
            SUPPORTED_OPS_DOC,
            "python -m cimflow.frontend.list_ops",
        ],
    )
    assert "Conv" not in line
    assert len(line) < 250 + len(str(path))


def test_docs_list_exactly_the_supported_ops() -> None:
    text = DOCS.read_text()
    document, anchor = SUPPORTED_OPS_DOC.split("#")
    assert DOCS.name == Path(document).name
    heading = "## " + anchor.replace("-", " ").capitalize()
    assert heading in text.splitlines()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(table) + "\n" == ops_table()
    listed = [line.split("`")[1] for line in table if line.startswith("| `")]
    assert listed == list(SUPPORTED_OPS)


def test_list_ops_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_module("cimflow.frontend.list_ops", run_name="__main__")
    assert capsys.readouterr().out == ops_table()
