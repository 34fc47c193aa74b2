"""A chip of one's own: target files that start from another (``base``),
``--set`` overrides on every command, and ``cim-targets``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cimflow.errors import CimError
from cimflow.hw_targets import (
    load_target,
    overridden,
    parse_override,
    shipped_targets,
    target_to_toml,
)
from cimflow.tools import bench, cim_opt, cim_verify, targets
from cimflow.tools.bench import read_csv

MODEL = Path(cim_opt.__file__).parent / "models" / "resnet_tiny.onnx"

FIVE_LINES = """base = "dynaplasia"
[target]
name = "dynaplasia_512"
[array]
rows = 512
"""


def test_a_five_line_chip_is_its_base_with_one_key_changed(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(FIVE_LINES, encoding="utf-8")
    mine, base = load_target(str(path)), load_target("dynaplasia")
    assert mine.name == "dynaplasia_512"
    assert mine.array == dataclasses.replace(base.array, rows=512)
    assert dataclasses.replace(mine, target=base.target, array=base.array) == base


def test_bases_chain_by_relative_path_and_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "chips").mkdir()
    (tmp_path / "chips" / "mid.toml").write_text(
        'base = "tiny"\n[buffers]\nglobal_bytes = 8192\n', encoding="utf-8"
    )
    leaf = tmp_path / "leaf.toml"
    leaf.write_text(
        'base = "chips/mid.toml"\n[dram]\nlatency_cycles = 7\n', encoding="utf-8"
    )
    hw, tiny = load_target(str(leaf)), load_target("tiny")
    assert (hw.name, hw.buffers.global_bytes, hw.dram.latency_cycles) == (
        "leaf",
        8192,
        7,
    )
    assert hw.target.description.startswith("chips/mid.toml with dram.latency")
    assert hw.array == tiny.array


@pytest.mark.parametrize(
    ("files", "fault"),
    [
        ({"a.toml": 'base = "b.toml"', "b.toml": 'base = "a.toml"'}, "loops"),
        ({"a.toml": 'base = "a.toml"'}, "loops"),
        ({"a.toml": 'base = "nowhere.toml"'}, "'nowhere.toml' not found"),
        ({"a.toml": 'base = "nochip"'}, "'nochip' is not a shipped target"),
        ({"a.toml": "base = 3"}, "'base' must be a target name"),
        ({"a.toml": 'base = "tiny"\n[array]\nrowz = 3'}, "unknown key 'array.rowz'"),
        ({"a.toml": 'base = "tiny"\n[array]\nrows = 2'}, "exceeds 'array.rows'"),
    ],
)
def test_a_bad_base_is_one_error_naming_the_file(
    tmp_path: Path, files: dict[str, str], fault: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
    with pytest.raises(CimError, match=fault) as error:
        load_target(str(tmp_path / "a.toml"))
    assert "a.toml" in str(error.value)


def test_overrides_apply_inside_the_block_only() -> None:
    with overridden(["array.adc_bits=6", "interconnect.topology=mesh"]):
        hw = load_target("dynaplasia")
        assert (hw.array.adc_bits, hw.interconnect.topology) == (6, "mesh")
    assert load_target("dynaplasia").interconnect.topology == "bus"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("array.rows=512", ("array.rows", 512)),
        (
            "dram.bandwidth_bytes_per_cycle=12.8",
            ("dram.bandwidth_bytes_per_cycle", 12.8),
        ),
        ("array.dynamic_matmul=true", ("array.dynamic_matmul", True)),
        ('interconnect.topology="mesh"', ("interconnect.topology", "mesh")),
        ("interconnect.topology=mesh", ("interconnect.topology", "mesh")),
    ],
)
def test_override_values_read_as_toml(text: str, expected: tuple[str, object]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("override", "fault"),
    [
        ("rows=512", "expected SECTION.KEY=VALUE"),
        ("array.rows", "expected SECTION.KEY=VALUE"),
        ("array.rows=", "expected SECTION.KEY=VALUE"),
        ("arrays.rows=5", "unknown table 'arrays'"),
        ("array.rowz=5", "unknown key 'array.rowz'"),
        ("array.rows=many", "must be an integer"),
        ("array.rows=0", "must be positive"),
    ],
)
def test_a_bad_override_is_named(override: str, fault: str) -> None:
    with pytest.raises(CimError, match=fault) as error, overridden([override]):
        load_target("tiny")
    assert override.split("=")[0] in str(error.value)


def test_cim_opt_compiles_for_the_overridden_chip(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    argv = [str(MODEL), "-p", "cim-compile-static{target=tiny}", "-t", "cim-trace"]
    assert (
        cim_opt.main([*argv, "--set", "buffers.global_bytes=8192", "-o", str(trace)])
        == 0
    )
    recorded = json.loads(trace.read_text(encoding="utf-8"))["target"]
    assert recorded["buffers"]["global_bytes"] == 8192


def test_cim_opt_refuses_a_bad_override_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out.mlir"
    output.write_text("before", encoding="utf-8")
    argv = [str(MODEL), "-p", "cim-compile-static{target=tiny}", "-o", str(output)]
    assert cim_opt.main([*argv, "--set", "array.rowz=4"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "unknown key 'array.rowz'" in err[0]
    assert output.read_text(encoding="utf-8") == "before"


def test_cim_verify_and_cim_bench_take_overrides(tmp_path: Path) -> None:
    argv = [str(MODEL), "--target", "tiny", "--set", "buffers.global_bytes=8192"]
    assert cim_verify.main(argv) == 0
    sweep = [
        "--models",
        "resnet18",
        "--small",
        "--targets",
        "tiny",
        "--strategies",
        "static",
        "--quiet",
    ]
    plain, changed = tmp_path / "plain", tmp_path / "changed"
    assert bench.main([*sweep, "--out", str(plain)]) == 0
    assert bench.main([*sweep, "--set", "array.adc_bits=6", "--out", str(changed)]) == 0
    energy = [
        float(read_csv(d / "bench.csv")[0]["energy_adc_uj"]) for d in (plain, changed)
    ]
    assert energy[1] < energy[0]


def test_cim_targets_lists_every_shipped_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert targets.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "target"
    listed = [line.split()[0] for line in lines[1 : 1 + len(shipped_targets())]]
    assert listed == shipped_targets()
    row = next(line for line in lines if line.startswith("dynaplasia "))
    assert row.split()[1:5] == ["96", "(8", "x", "12)"]


def test_cim_targets_prints_a_resolved_target_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(FIVE_LINES, encoding="utf-8")
    assert targets.main([str(path), "--set", "array.adc_bits=6", "--toml"]) == 0
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(capsys.readouterr().out, encoding="utf-8")
    with overridden(["array.adc_bits=6"]):
        expected = load_target(str(path))
    assert load_target(str(resolved)) == expected
    assert target_to_toml(expected) == resolved.read_text(encoding="utf-8")
    assert targets.main(["tiny", "dynaplasia", "--toml"]) == 1
    assert "exactly one" in capsys.readouterr().err
