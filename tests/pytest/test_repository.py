"""The repository keeps its promises: CI runs the README's test command, and
the lock file pins every dependency pyproject.toml declares."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cimflow.tools import refresh_lock
from cimflow.tools.refresh_lock import INPUTS_PREFIX, locked_inputs

ROOT = Path(__file__).resolve().parents[2]


def readme_command(after: str) -> str:
    """The first ``sh`` code line of the README after the text ``after``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.+?)\n```", readme[readme.index(after) :], re.S)
    assert block is not None
    return block.group(1).strip()


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    command = readme_command("Run the whole test suite")
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert script.rstrip().splitlines()[-1] == command
    assert "--require-hashes -r requirements.txt" in command


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for match in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M):
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["test"],
        *project["build-system"]["requires"],
    ]
    pins = locked_versions()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not locked"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}"
        )


def test_the_lock_was_resolved_from_the_current_dependency_inputs() -> None:
    # pyproject.toml's dependencies, test extra and build requirements are
    # what the lock resolves; changing them without regenerating the lock
    # (python -m cimflow.tools.refresh_lock) fails here.
    header = [
        line
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.startswith(INPUTS_PREFIX)
    ]
    assert header == [INPUTS_PREFIX + locked_inputs(ROOT)]


def test_every_locked_line_has_hashes() -> None:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# "))
    entries = re.split(r"\n(?=[A-Za-z0-9])", body)
    for entry in entries:
        if "==" in entry:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_readmes_python_snippet_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Python example, run from the repository root as written,
    compiles, simulates and prints the report."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.+?)\n```", readme, re.S)
    assert block is not None
    monkeypatch.chdir(ROOT)
    exec(compile(block.group(1), "README.md", "exec"), {})
    report = capsys.readouterr().out
    assert "strategy:    cmswitch" in report and "latency:" in report


def test_cim_opt_lists_its_passes_with_their_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cimflow.passes import PASS_MODULES
    from cimflow.tools import cim_opt

    assert cim_opt.main(["--list-passes"]) == 0
    text = capsys.readouterr().out
    listed = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert listed == list(PASS_MODULES)
    assert "  time_limit: float | int = 120.0\n      Seconds HiGHS may spend" in text


def test_refreshing_the_lock_keeps_its_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv is handed the current lock as its output file, whose pins it keeps
    wherever they still satisfy pyproject.toml: adding a dependency moves
    nothing else."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "requirements.txt").write_text("numpy==1.26.0\n", encoding="utf-8")
    seen: list[str] = []

    def fake_uv(command: list[str], check: bool, cwd: Path) -> None:
        del check, cwd
        output = Path(command[command.index("-o") + 1])
        seen.append(output.read_text(encoding="utf-8"))
        output.write_text("numpy==1.26.0 \\\n    --hash=sha256:00\n", encoding="utf-8")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(refresh_lock.subprocess, "run", fake_uv)
    assert refresh_lock.main([]) == 0
    assert seen == ["numpy==1.26.0\n"]
    written = (tmp_path / "requirements.txt").read_text(encoding="utf-8")
    assert written.endswith("numpy==1.26.0 \\\n    --hash=sha256:00\n")
    assert INPUTS_PREFIX + locked_inputs(tmp_path) in written
