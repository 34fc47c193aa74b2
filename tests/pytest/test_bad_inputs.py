"""Bad input of every class is a one-line error; output files are safe.

Each case runs a real command-line entry point and checks the exit status,
that stderr is exactly one line naming what is at fault (no traceback), and
that an output file given with ``-o`` that existed before is untouched.
Bad ONNX models have a module of their own (``test_bad_onnx_inputs.py``).
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cimflow.hw_targets import load_target, target_to_toml
from cimflow.tools import bench, cim_opt, cim_sim, cim_verify

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"
OLD_OUTPUT = "an earlier run's output\n"

Main = Callable[[list[str]], int]


def one_error_line(capsys: pytest.CaptureFixture[str], tool: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{tool}: error: "), lines[0]
    assert captured.out == ""
    return lines[0]


def refused(
    main: Main,
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tool: str,
    status: int = 1,
) -> str:
    """Run ``main`` with ``-o`` an existing file: it fails with ``status``,
    one line, and leaves the file as it was."""
    output = tmp_path / "existing-output"
    output.write_text(OLD_OUTPUT, encoding="utf-8")
    assert main([*argv, "-o", str(output)]) == status
    line = one_error_line(capsys, tool)
    assert output.read_text(encoding="utf-8") == OLD_OUTPUT
    return line


# -- traces whose meaning is wrong ----------------------------------------------


@pytest.fixture(scope="module")
def trace_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("trace") / "t.json"
    argv = [str(MODEL), "-p", "cim-compile-static{target=tiny}", "-t", "cim-trace"]
    assert cim_opt.main([*argv, "-o", str(path)]) == 0
    return json.loads(path.read_text(encoding="utf-8"))


def first(document: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(op for op in document["ops"] if op["kind"] == kind)


def mvm_on_memory_mode_array(document: dict[str, Any]) -> str:
    """The first program's arrays are switched to memory mode first."""
    program = first(document, "program")
    ops: list[dict[str, Any]] = document["ops"]
    switch: dict[str, Any] = {
        "id": program["id"],
        "kind": "switch",
        "deps": program["deps"],
        "segment": program["segment"],
        "name": "",
        "arrays": program["arrays"],
        "to": "memory",
    }
    for op in ops[program["id"] :]:
        op["id"] += 1
        op["deps"] = [d + 1 if d >= program["id"] else d for d in op["deps"]]
    program["deps"] = [switch["id"]]
    ops.insert(switch["id"], switch)
    return "programs array 0, which is in memory mode"


def read_from_arrays_never_switched(document: dict[str, Any]) -> str:
    load = first(document, "load")
    load |= {"src": "memory", "dst": "buffer", "arrays": [[7, 8]]}
    return "uses array 7 in memory mode, but it is in compute mode"


def undeclared_mvm_input(document: dict[str, Any]) -> str:
    first(document, "mvm")["input"] = "nonesuch"
    return "reads 'nonesuch', which is not a declared tensor"


def undeclared_mvm_weight(document: dict[str, Any]) -> str:
    first(document, "mvm")["weight"] = "nonesuch"
    return "weight 'nonesuch' is not listed in the trace's weights"


def mvm_with_another_weight(document: dict[str, Any]) -> str:
    mvms = [op for op in document["ops"] if op["kind"] == "mvm"]
    other = next(op for op in mvms if op["weight"] != mvms[0]["weight"])
    mvms[0] |= {"weight": other["weight"], "k": other["k"], "n": other["n"]}
    return f"computes with weight '{other['weight']}' on array"


def unknown_dtype(document: dict[str, Any]) -> str:
    document["tensors"][0]["dtype"] = "float8"
    return "has unknown dtype 'float8'"


def huge_size(document: dict[str, Any]) -> str:
    first(document, "load")["bytes"] = 10**400
    return "key 'bytes' must be at most 2^53 - 1"


def implausible_target(document: dict[str, Any]) -> str:
    document["target"]["hierarchy"]["chips"] = 10**12
    return "key 'hierarchy.chips' must be at most 4096"


@pytest.mark.parametrize(
    "corrupt",
    [
        mvm_on_memory_mode_array,
        read_from_arrays_never_switched,
        undeclared_mvm_input,
        undeclared_mvm_weight,
        mvm_with_another_weight,
        unknown_dtype,
        huge_size,
        implausible_target,
    ],
)
def test_cim_sim_refuses_a_trace_that_means_something_impossible(
    trace_document: dict[str, Any],
    corrupt: Callable[[dict[str, Any]], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = copy.deepcopy(trace_document)
    message = corrupt(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    line = refused(cim_sim.main, [str(path)], tmp_path, capsys, "cim-sim")
    assert line.startswith(f"cim-sim: error: {path}: ") and message in line


def test_the_unchanged_trace_simulates(
    trace_document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(trace_document), encoding="utf-8")
    assert cim_sim.main([str(path), "-o", str(tmp_path / "report.txt")]) == 0


# -- IR, targets and pass options -----------------------------------------------


def test_a_function_of_non_tensors_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "scalar.mlir"
    source.write_text(
        "builtin.module {\n  func.func @main(%x: i32) -> i32 {\n"
        "    func.return %x : i32\n  }\n}\n",
        encoding="utf-8",
    )
    argv = [str(source), "-p", "cim-static-allocate,convert-tile-to-meta"]
    line = refused(cim_opt.main, argv, tmp_path, capsys, "cim-opt")
    assert line == (
        "cim-opt: error: convert-tile-to-meta: function @main argument 0 has type "
        "i32; the passes compile functions of tensors"
    )


def test_an_implausible_target_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = target_to_toml(load_target("tiny")).replace("chips = 1", "chips = 10000")
    target = tmp_path / "huge.toml"
    target.write_text(text, encoding="utf-8")
    argv = [str(MODEL), "-p", f'cim-compile-static{{target="{target}"}}']
    line = refused(cim_opt.main, argv, tmp_path, capsys, "cim-opt")
    assert line == (
        f"cim-opt: error: {target}: key 'hierarchy.chips' must be at most 4096, "
        "got 10000 (a plausibility bound, hw_targets/SCHEMA.md)"
    )


def test_a_target_rewritten_between_two_loads_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "chip.toml"
    tiny = load_target("tiny")
    path.write_text(target_to_toml(tiny), encoding="utf-8")
    assert load_target(str(path)).hierarchy.chips == 1
    path.write_text(
        target_to_toml(tiny).replace("chips = 1", "chips = 2"), encoding="utf-8"
    )
    assert load_target(str(path)).hierarchy.chips == 2


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            "cim-compile{strategy=cmswitch},cim-allocate{time_limit=abc}",
            "pass 'cim-allocate': option 'time_limit' takes a number, got 'abc'",
        ),
        (
            "cim-allocate{max_copies=1.5}",
            "pass 'cim-allocate': option 'max_copies' takes an integer, got '1.5'",
        ),
        (
            "cim-allocate{kv_cache=maybe}",
            "pass 'cim-allocate': option 'kv_cache' takes true or false, got 'maybe'",
        ),
        ("cim-allocate{bogus=1}", "pass 'cim-allocate' has no option 'bogus'"),
        ("cim-compile{strategy=2}", "option 'strategy' takes a string, got '2'"),
        ("no-such-pass", "unknown pass 'no-such-pass'"),
        ("cim-compile{", "cannot parse the pass pipeline"),
    ],
)
def test_a_bad_pass_option_names_the_pass_and_the_option(
    pipeline: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(
        cim_opt.main, [str(MODEL), "-p", pipeline], tmp_path, capsys, "cim-opt"
    )
    assert message in line


def test_a_list_option_is_taken_as_documented(tmp_path: Path) -> None:
    """``dataflows=layer,rows`` as docs/dual-mode.md writes it, unquoted."""
    written = tmp_path / "out.mlir"
    pipeline = (
        "convert-graph-to-tile{target=tiny},"
        "cim-cmswitch{target=tiny dataflows=layer,rows}"
    )
    argv = [str(MODEL), "-p", pipeline, "-o", str(written)]
    assert cim_opt.main(argv) == 0
    assert "cim_tile.strategy" in written.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("main", "tool", "argv", "message"),
    [
        (cim_opt.main, "cim-opt", ["--bogus"], "unrecognized arguments: --bogus"),
        (cim_opt.main, "cim-opt", [str(MODEL), "-t", "nope"], "invalid choice"),
        (cim_sim.main, "cim-sim", [], "required: trace"),
        (cim_verify.main, "cim-verify", [str(MODEL), "--mode", "x"], "invalid"),
        (bench.main, "cim-bench", ["--jobs", "x"], "invalid int value"),
    ],
)
def test_a_usage_error_is_one_line_with_status_2(
    main: Main,
    tool: str,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(argv) == 2
    line = one_error_line(capsys, tool)
    assert message in line and line.endswith(f"(see {tool} --help)")


# -- the solver says nothing on stdout --------------------------------------------


def test_a_dual_mode_trace_on_stdout_is_valid_json_for_cim_sim(tmp_path: Path) -> None:
    """``cim-opt MODEL -p 'cim-compile{strategy=cmswitch}' -t cim-trace >
    t.json && cim-sim t.json`` in real processes: HiGHS writes its banner
    from C, past Python's sys.stdout."""
    compiled = subprocess.run(
        [
            sys.executable,
            "-m",
            "cimflow.tools.cim_opt",
            str(MODEL),
            "-p",
            "cim-compile{strategy=cmswitch}",
            "-t",
            "cim-trace",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "HiGHS" not in compiled.stdout + compiled.stderr
    trace = tmp_path / "t.json"
    trace.write_text(compiled.stdout, encoding="utf-8")
    assert json.loads(compiled.stdout)["strategy"] == "cmswitch"
    assert cim_sim.main([str(trace), "-o", str(tmp_path / "report.txt")]) == 0


# -- output files -----------------------------------------------------------------


def compile_to(output: Path | str) -> int:
    return cim_opt.main(
        [str(MODEL), "-p", "cim-compile-static{target=tiny}", "-o", str(output)]
    )


def test_output_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.mlir"
    target.write_text(OLD_OUTPUT, encoding="utf-8")
    link = tmp_path / "link.mlir"
    link.symlink_to(target)
    assert compile_to(link) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "cim_meta.schedule" in target.read_text(encoding="utf-8")


def test_output_to_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=read)
    reader.start()
    assert compile_to(fifo) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert b"cim_meta.schedule" in received[0]


def test_output_to_a_character_device_is_written_through() -> None:
    assert compile_to(os.devnull) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_new_output_gets_the_umask_and_a_replaced_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    new = tmp_path / "new.mlir"
    old_mask = os.umask(0o027)
    try:
        assert compile_to(new) == 0
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    new.chmod(0o604)
    assert compile_to(new) == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o604
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.mlir"]


def _missing_folder(folder: Path) -> Path:
    return folder / "missing" / "out.mlir"


def _folder(folder: Path) -> Path:
    return folder


def _symlink_loop(folder: Path) -> Path:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_missing_folder, "no such directory"),
        (_folder, "is a directory"),
        (_symlink_loop, "symlink loop"),
    ],
)
def test_an_output_that_cannot_be_written_says_why(
    make: Callable[[Path], Path],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = make(tmp_path)
    assert compile_to(output) == 1
    assert one_error_line(capsys, "cim-opt") == (
        f"cim-opt: error: {output}: cannot write: {reason}"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_in_a_read_only_folder_says_permission_denied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert compile_to(folder / "out.mlir") == 1
    finally:
        folder.chmod(0o700)
    line = one_error_line(capsys, "cim-opt")
    assert line.endswith("out.mlir: cannot write: permission denied")
