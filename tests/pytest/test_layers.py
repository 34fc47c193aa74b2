"""Per-layer figures: every ONNX node of a compiled model is a row, whose
energies add up to the run's, with its span and array utilization; the
layer each op works for survives the trace's round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, cast

import onnx
import pytest

from cimflow.cimsim.engine import SimResult, simulate
from cimflow.cimsim.layers import SEGMENT_WORK, layer_rows, layers_csv
from cimflow.cimsim.report import format_report, report_dict
from cimflow.cimsim.trace import dump_trace, parse_trace
from cimflow.passes.trace_target import build_trace
from cimflow.tools import cim_opt, cim_sim
from cimflow.tools.cim_verify import compile_model, module_trace

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"


def trace_ops(document: dict[str, object]) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], document["ops"])


@pytest.fixture(scope="module", params=["static", "cmswitch", "clsa-cim"])
def result(request: pytest.FixtureRequest) -> SimResult:
    pipeline = f"cim-compile{{strategy={request.param} target=dynaplasia}}"
    return simulate(module_trace(compile_model(MODEL, "dynaplasia", pipeline)))


def test_every_node_is_a_row_and_energies_add_up(result: SimResult) -> None:
    rows = layer_rows(result)
    names = [str(row["layer"]) for row in rows]
    nodes = [n.name for n in onnx.load(str(MODEL)).graph.node if n.op_type == "Conv"]
    assert set(nodes) <= set(names)
    assert len(names) == len(set(names))
    total = sum(float(str(row["energy_pj"])) for row in rows)
    assert total == pytest.approx(result.stats.total_energy_pj, rel=1e-9)
    for row in rows:
        assert 0.0 <= float(str(row["array_utilization"])) <= 1.0 + 1e-9
        start, finish = int(str(row["start_cycle"])), int(str(row["finish_cycle"]))
        assert 0 <= start <= finish <= result.stats.makespan_cycles
    critical = [int(str(row["critical_cycles"])) for row in rows]
    assert sum(critical) == result.stats.makespan_cycles
    conv = next(row for row in rows if row["layer"] == nodes[0])
    assert int(str(conv["arrays"])) > 0 and float(str(conv["energy_pj"])) > 0


def test_reports_carry_the_layers(result: SimResult) -> None:
    assert report_dict(result)["layers"] == layer_rows(result)
    text = format_report(result)
    assert "\nlayers:\n" in text and SEGMENT_WORK in text
    table = list(csv.DictReader(io.StringIO(layers_csv(result))))
    assert [r["layer"] for r in table] == [r["layer"] for r in layer_rows(result)]


def test_the_layer_survives_the_trace_round_trip(tmp_path: Path) -> None:
    module = compile_model(MODEL, "tiny", "cim-compile-static")
    document = build_trace(module)
    layers = {op.get("layer", "") for op in trace_ops(document)}
    trace = parse_trace(document, "t.json")
    assert {op.layer for op in trace.ops} == layers
    path = tmp_path / "t.json"
    path.write_text(dump_trace(document), encoding="utf-8")
    out = tmp_path / "layers.csv"
    assert (
        cim_sim.main([str(path), "--layers", str(out), "-o", str(tmp_path / "r")]) == 0
    )
    assert out.read_text(encoding="utf-8").startswith("layer,ops,start_cycle,")


def test_a_trace_without_layers_reports_none(tmp_path: Path) -> None:
    document = build_trace(compile_model(MODEL, "tiny", "cim-compile-static"))
    for op in trace_ops(document):
        op.pop("layer", None)
    result = simulate(parse_trace(document, "t.json"))
    assert "layers:" not in format_report(result)
    assert [row["layer"] for row in layer_rows(result)] == [SEGMENT_WORK]
