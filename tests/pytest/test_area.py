"""Chip area: the target's ``[area]`` figures (one instance each) times the
target's counts, in ``cim-sim``'s report with TOPS/mm², in ``cim-bench``'s
CSV and in ``cim-targets``; a target without the table has no figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cimflow.analysis.area import AREA_COMPONENTS, chip_area, total_area_mm2
from cimflow.cimsim.efficiency import efficiency
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.report import format_report, report_dict
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, overridden
from cimflow.tools import bench
from cimflow.tools.cim_verify import compile_model, module_trace
from cimflow.tools.targets import format_targets

MODEL = Path(__file__).resolve().parents[2] / "tools" / "models" / "resnet_tiny.onnx"


def test_puma_area_is_its_counts_times_the_cited_figures() -> None:
    """puma: 138 tiles x 128 crossbars of 128 x 128 with 16 ADCs each, a
    768 KB global buffer and 8 vector units per tile (puma.toml's header
    derives each figure from PUMA's simulator)."""
    area = dict(chip_area(load_target("puma")) or ())
    arrays = 138 * 128
    assert list(area) == list(AREA_COMPONENTS)
    assert area["arrays"] == pytest.approx(arrays * 2.5e-5)
    assert area["adc"] == pytest.approx(arrays * 16 * 0.0012)  # 339.1 mm2
    assert area["dac"] == pytest.approx(arrays * 128 * 1.67e-7)
    assert area["array_periphery"] == pytest.approx(
        arrays * (128 * 0.00004 / 8 / 128 + (0.00006 + 2 * 0.00078) / 8)
    )
    assert area["local_buffers"] == pytest.approx(138 * (0.086 + 0.00145))
    assert area["global_buffer"] == pytest.approx(0.121 + 10 * 0.035)
    assert area["vector"] == pytest.approx(138 * 8 * (0.00567 * 32 / 45 + 0.0003))
    assert area["interconnect"] == pytest.approx(138 * (0.047 / 4 + 0.090))
    assert total_area_mm2(load_target("puma")) == pytest.approx(sum(area.values()))
    assert area["adc"] / sum(area.values()) == pytest.approx(0.904, abs=1e-3)


def test_isaac_has_the_same_components_in_its_own_counts() -> None:
    """isaac: 168 cores x 96 crossbars, one vector unit a core, and a 4 MB
    global buffer (the eDRAM slope carried to 4096 KB, an assumption)."""
    puma = load_target("puma").area
    isaac = load_target("isaac").area
    assert puma is not None and isaac is not None
    assert isaac == dataclasses.replace(puma, global_buffer_mm2=2.291)
    area = dict(chip_area(load_target("isaac")) or ())
    assert area["adc"] == pytest.approx(168 * 96 * 16 * 0.0012)
    assert area["vector"] == pytest.approx(168 * 0.004332)
    assert area["global_buffer"] == pytest.approx(0.121 + (4096 - 128) / 64 * 0.035)
    assert total_area_mm2(load_target("isaac")) == pytest.approx(348.556, rel=1e-5)


def test_area_follows_the_counts_and_set() -> None:
    base = dict(chip_area(load_target("puma")) or ())
    with overridden(["array.adcs_per_array=8", "area.adc_mm2=0.0006"]):
        halved = dict(chip_area(load_target("puma")) or ())
    assert halved["adc"] == pytest.approx(base["adc"] / 4)
    assert {k: v for k, v in halved.items() if k != "adc"} == {
        k: v for k, v in base.items() if k != "adc"
    }


def test_a_target_without_area_gives_none() -> None:
    for name in ("dynaplasia", "pimcomp_default", "tiny", "ciminus"):
        assert load_target(name).area is None
        assert chip_area(load_target(name)) is None
        assert total_area_mm2(load_target(name)) is None


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "chip.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_area_is_whole_or_absent(tmp_path: Path) -> None:
    spec = _write(tmp_path, 'base = "tiny"\n[area]\narray_mm2 = 1e-5\n')
    with pytest.raises(CimError, match=r"chip.toml: missing key 'area.adc_mm2'"):
        load_target(spec)
    negative = pytest.raises(CimError, match=r"'area.adc_mm2' must not be negative")
    with negative, overridden(["area.adc_mm2=-1"]):
        load_target("puma")
    unknown = pytest.raises(CimError, match=r"--set area.adc_mm2: unknown table 'area'")
    with unknown, overridden(["area.adc_mm2=1"]):
        load_target("tiny")
    inherited = load_target(
        _write(tmp_path, 'base = "puma"\n[target]\nclock_ghz = 0.5\n')
    )
    assert inherited.area == load_target("puma").area


def test_the_report_gives_area_and_tops_per_mm2() -> None:
    """Through the trace (whose header carries the [area] table) into the
    text and JSON reports."""
    trace = module_trace(compile_model(MODEL, "puma"))
    assert trace.target.area == load_target("puma").area
    result = simulate(trace)
    work = efficiency(result)
    area = total_area_mm2(trace.target)
    assert area is not None and work.area_mm2 == pytest.approx(area)
    assert work.tops_per_mm2 == pytest.approx(work.tops / area)
    text = format_report(result)
    assert f"TOPS/W, {work.tops_per_mm2:.4g} TOPS/mm2" in text
    assert "  adc              339.1488   90.4%" in text
    assert f"  total            {area:,.4f}  100.0%" in text
    document = report_dict(result)
    assert document["area_mm2"] == dict(chip_area(trace.target) or ())
    assert document["total_area_mm2"] == pytest.approx(area)
    assert document["tops_per_mm2"] == pytest.approx(work.tops_per_mm2)
    json.dumps(document)


def test_no_area_is_said_not_guessed() -> None:
    result = simulate(module_trace(compile_model(MODEL, "tiny")))
    text = format_report(result)
    assert "area: not given by the target (its [area] table)" in text
    assert "TOPS/mm2" not in text
    document = report_dict(result)
    assert document["area_mm2"] is None and document["tops_per_mm2"] is None


def test_bench_and_targets_list_the_area(tmp_path: Path) -> None:
    argv = ["--small", "--models", "resnet18", "--targets", "tiny,puma"]
    argv += ["--strategies", "static", "--quiet", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    rows = {r["target"]: r for r in bench.read_csv(tmp_path / "bench.csv")}
    assert (rows["tiny"]["area_mm2"], rows["tiny"]["tops_per_mm2"]) == ("", "")
    puma = rows["puma"]
    assert float(puma["area_mm2"]) == pytest.approx(374.996, rel=1e-5)
    assert float(puma["tops_per_mm2"]) == pytest.approx(
        float(puma["tops"]) / float(puma["area_mm2"]), rel=1e-3
    )
    listing = format_targets([load_target("puma"), load_target("tiny")])
    header, puma_row, tiny_row = listing.splitlines()[:3]
    assert header.endswith("area mm2")
    assert puma_row.endswith(" 375") and tiny_row.endswith(" -")
