"""``cim-ndp``: the report, the JSON, the listing and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cimflow.tools.ndp import main
from cimflow.tools.ndp_study import main as study


def test_the_listing_names_models_and_systems(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("llama2-70b", "opt-66b", "falcon-40b", "hermes", "hermes_host"):
        assert name in out


def test_a_run_reports_each_policy_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "run.json"
    argv = ["--model", "llama2-13b", "--layers", "1", "--output", "8"]
    argv += ["--policy", "partition,hermes", "--set", "dimm.count=4"]
    assert main([*argv, "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "llama2-13b on hermes" in out and "1 of 40 layers simulated" in out
    assert "; dimm.count = 4)" in out.splitlines()[0]
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["partition", "hermes"]
    document = json.loads(out_file.read_text(encoding="utf-8"))
    assert document["system"]["dimm"]["count"] == 4
    assert [r["policy"] for r in document["reports"]] == ["partition", "hermes"]
    first = document["reports"][1]["tokens_per_second"]
    assert main([*argv, "--json", str(out_file)]) == 0
    again = json.loads(out_file.read_text(encoding="utf-8"))
    assert again["reports"][1]["tokens_per_second"] == first


def test_imported_frequencies_drive_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "counts.npz"
    np.savez(
        path, block_0=rng.integers(0, 128, 5120), block_1=rng.integers(0, 20, 13824)
    )
    argv = ["--model", "llama2-13b", "--layers", "1", "--output", "8"]
    assert main([*argv, "--frequencies", str(path), "--samples", "128"]) == 0
    assert "hermes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "fault"),
    [
        (["--model", "gpt-5"], "unknown model 'gpt-5'"),
        (["--system", "dgx"], "unknown system 'dgx'"),
        (["--policy", "greedy"], "unknown policy 'greedy'"),
        (["--set", "dimm.count=0"], "'dimm.count' must be positive"),
        (["--set", "dimm"], "expected SECTION.KEY=VALUE"),
        (["--layers", "0"], "layers 0 is outside 1..80"),
        (["--model", "falcon-40b", "--set", "dimm.count=2"], "needs 78.0 GiB"),
        (
            ["--model", "falcon-40b", "--set", "dimm.count=2", "--policy", "base"],
            "needs 78.0 GiB",
        ),
        (["--frequencies", "missing.npz"], "missing.npz"),
        (["--batch", "x"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (1, 2)
    assert fault in err and err.count("\n") == 1 and err.startswith("cim-ndp: error:")


def test_an_unwritable_json_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing-dir" / "out.json"
    argv = ["--model", "llama2-13b", "--layers", "1", "--output", "4"]
    assert main([*argv, "--json", str(target)]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert not target.parent.exists()


def test_the_study_prints_the_ablation_beside_the_papers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert study(["--tables", "ablation", "--layers", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " over " in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "partition over random",
        "adjust over partition",
        "hermes over adjust",
    ]
    assert [row.split("|")[3].strip() for row in rows] == ["1.63", "1.33", "1.29"]


def test_a_measured_trace_drives_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One layer of LLaMA-2-13B, 12 tokens; parents are sampled from the trace.
    rng = np.random.default_rng(1)
    path = tmp_path / "trace.npz"
    np.savez(
        path,
        block_0=rng.random((12, 5120)) < 0.2,
        block_1=rng.random((12, 13824)) < 0.1,
    )
    argv = ["--model", "llama2-13b", "--prompt", "4", "--output", "8"]
    out_file = tmp_path / "run.json"
    assert main([*argv, "--trace", str(path), "--json", str(out_file)]) == 0
    assert "1 of 40 layers simulated" in capsys.readouterr().out
    document = json.loads(out_file.read_text(encoding="utf-8"))
    assert document["activity"] == "imported trace"
    assert main([*argv, "--trace", str(path), "--batch", "2"]) == 1
    assert "a trace is one sequence" in capsys.readouterr().err
    assert main(["--model", "llama2-13b", "--trace", str(path)]) == 1
    assert "the trace has 12 tokens; prompt 128 + output 128" in capsys.readouterr().err
