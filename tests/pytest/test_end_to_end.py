"""The whole flow from the command line: ONNX -> cim-opt -> trace -> cim-sim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from cimflow.frontend.common import symbolic_dims
from cimflow.tools import cim_opt, cim_sim
from cimflow.tools.model_builders import TINY_BUILDERS

EXPORTERS = ("torchscript", "dynamo")
TARGETS = ("dynaplasia", "tiny")


def _model_file(tmp_path: Path, family: str, exporter: str) -> Path:
    path = tmp_path / f"{family}_{exporter}.onnx"
    onnx.save(TINY_BUILDERS[family](exporter=exporter, weights="random"), path)
    return path


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", sorted(TINY_BUILDERS))
def test_compile_and_simulate_every_family(
    tmp_path: Path, family: str, exporter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model_file(tmp_path, family, exporter)
    values = {"batch": 2, "sequence": 8}
    dims = symbolic_dims(onnx.load(model).graph.input)
    for target in TARGETS:
        trace = tmp_path / f"{target}.json"
        argv = [str(model)]
        argv += [arg for name in dims for arg in ("--dim", f"{name}={values[name]}")]
        argv += ["-p", f"cim-compile-static{{target={target}}}", "-t", "cim-trace"]
        assert cim_opt.main([*argv, "-o", str(trace)]) == 0, capsys.readouterr().err
        assert cim_sim.main([str(trace), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["latency"]["cycles"] > 0
        assert report["total_energy_pj"] > 0
        assert report["bytes"]["dram_read"] > 0
        assert json.loads(trace.read_text())["model"]["source"] == str(model)


def test_trace_is_identical_across_runs(tmp_path: Path) -> None:
    model = _model_file(tmp_path, "bert", "torchscript")
    texts: list[bytes] = []
    for index in range(2):
        out = tmp_path / f"run{index}.json"
        argv = [str(model), "--dim", "batch=1", "--dim", "sequence=8"]
        argv += ["-p", "cim-compile-static", "-t", "cim-trace", "-o", str(out)]
        assert cim_opt.main(argv) == 0
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]


def test_unsupported_operator_is_one_line_without_traceback(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Hardmax", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 4])],
    )
    model = tmp_path / "hardmax.onnx"
    onnx.save(onnx.helper.make_model(graph), model)
    out = tmp_path / "never.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cimflow.tools.cim_opt",
            str(model),
            "-p",
            "cim-compile-static",
            "-t",
            "cim-trace",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Hardmax" in lines[0] and "supported" in lines[0] and str(model) in lines[0]
    assert not out.exists()


def test_stock_xdsl_opt_runs_our_pass(tmp_path: Path) -> None:
    model = _model_file(tmp_path, "resnet", "torchscript")
    graph_ir = tmp_path / "graph.mlir"
    assert cim_opt.main([str(model), "--dim", "batch=1", "-o", str(graph_ir)]) == 0
    xdsl_opt = Path(sys.executable).parent / "xdsl-opt"
    result = subprocess.run(
        [str(xdsl_opt), str(graph_ir), "-p", "convert-graph-to-tile{target=tiny}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "cim_tile.mvm" in result.stdout
    assert "cim_graph.conv" not in result.stdout


def test_embedding_lookup_loads_only_the_gathered_rows(tmp_path: Path) -> None:
    model = _model_file(tmp_path, "bert", "torchscript")
    trace_path = tmp_path / "bert.json"
    argv = [str(model), "--dim", "batch=2", "--dim", "sequence=8"]
    argv += ["-p", "cim-compile-static", "-t", "cim-trace", "-o", str(trace_path)]
    assert cim_opt.main(argv) == 0
    trace = json.loads(trace_path.read_text())
    activations = {t["name"] for t in trace["tensors"]}
    gathers = [
        op
        for op in trace["ops"]
        if op.get("op") == "gather" and op["inputs"][0] not in activations
    ]
    assert gathers
    hidden = 32  # bert_tiny's width; one byte per 8-bit weight
    ids = 2 * 8  # batch x sequence token ids, at most 8 bytes each
    for gather in gathers:
        # the table stays in DRAM; the gather streams only the rows it picks
        assert gather["in_from"] == "dram"
        output = next(t for t in trace["tensors"] if t["name"] == gather["outputs"][0])
        assert output["bytes"] <= ids * hidden
        assert output["bytes"] <= gather["in_bytes"] <= output["bytes"] + ids * 8
