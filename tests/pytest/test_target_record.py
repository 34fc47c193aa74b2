"""The target is recorded once, by convert-graph-to-tile, and every later
pass compiles for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from xdsl.context import Context

from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target, target_to_toml
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.target_record import TARGET_ATTR, module_target, target_hash
from cimflow.tools import cim_opt

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"


def test_later_passes_take_the_recorded_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = (
        "convert-graph-to-tile{target=tiny},cim-static-allocate,convert-tile-to-meta"
    )
    out = tmp_path / "t.json"
    argv = [str(MODEL), "-p", pipeline, "-t", "cim-trace", "-o", str(out)]
    assert cim_opt.main(argv) == 0
    assert (
        json.loads(out.read_text(encoding="utf-8"))["target"]["target"]["name"]
        == "tiny"
    )


@pytest.mark.parametrize(
    "pipeline",
    [
        "convert-graph-to-tile{target=tiny},cim-static-allocate{target=isaac}",
        "convert-graph-to-tile{target=tiny},cim-static-allocate,"
        "convert-tile-to-meta{target=dynaplasia}",
        "cim-compile{target=tiny},convert-graph-to-tile{target=puma}",
    ],
)
def test_passes_that_name_another_chip_are_refused(
    pipeline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mlir"
    assert cim_opt.main([str(MODEL), "-p", pipeline, "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "tiny" in err[0] and not out.exists()


def test_a_target_file_changed_between_passes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chip.toml"
    tiny = load_target("tiny")
    path.write_text(target_to_toml(tiny), encoding="utf-8")
    module = import_onnx(MODEL)
    ConvertGraphToTilePass(str(path)).apply(Context(), module)
    recorded = module.attributes[TARGET_ATTR]
    assert f'hash = "{target_hash(tiny)}"' in str(recorded)
    path.write_text(
        target_to_toml(tiny).replace("latency_cycles = 20", "latency_cycles = 21"),
        encoding="utf-8",
    )
    with pytest.raises(CimError, match="changed since convert-graph-to-tile"):
        StaticAllocatePass().apply(Context(), module)
    assert module_target(module, "tiny", "x") == tiny
