"""MACs, TOPS and TOPS/W: every strategy's trace does each weight element
times each vector once, the model's own MAC count (convolutions, grouped
ones included, and fully connected layers, from the ONNX shapes)."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
import pytest

from cimflow.cimsim.efficiency import efficiency
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.report import format_report, report_dict
from cimflow.tools import model_builders as mb
from cimflow.tools.cim_verify import compile_model, module_trace


def model_macs(model: onnx.ModelProto) -> int:
    """MACs of the Conv and Gemm nodes, from the inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [
            *inferred.graph.value_info,
            *inferred.graph.output,
            *inferred.graph.input,
        ]
    }
    shapes |= {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]
            macs += math.prod(out) * math.prod(weight[1:])
        elif node.op_type == "Gemm":
            out = shapes[node.output[0]]
            macs += math.prod(out) * shapes[node.input[0]][-1]
    return macs


@pytest.mark.parametrize("family", ["resnet", "mobilenetv2"])
@pytest.mark.parametrize("strategy", ["static", "pimcomp-ht", "cmswitch"])
def test_the_trace_does_the_models_macs(
    family: str, strategy: str, tmp_path: Path
) -> None:
    builder = {"resnet": mb.resnet_tiny, "mobilenetv2": mb.mobilenetv2_tiny}[family]
    model = builder(batch=1, weights="random")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    pipeline = f"cim-compile{{strategy={strategy} target=dynaplasia}}"
    result = simulate(module_trace(compile_model(path, "dynaplasia", pipeline)))
    work = efficiency(result)
    assert work.macs == model_macs(model)
    assert work.tops == pytest.approx(2 * work.macs / result.stats.seconds / 1e12)
    assert work.tops_per_watt == pytest.approx(
        2 * work.macs / result.stats.total_energy_pj
    )
    report = report_dict(result)
    assert (report["macs"], report["tops"]) == (work.macs, work.tops)
    assert f"{work.macs:,} MACs" in format_report(result)
