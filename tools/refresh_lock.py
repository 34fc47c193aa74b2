"""Regenerate ``requirements.txt``, the locked install set, from pyproject.toml.

The lock holds exact versions, with the hashes of every file PyPI has for
them, of what the README's commands install: the runtime dependencies, the
``test`` extra, and setuptools (the build backend, so the project itself
builds from the lock too, with ``--no-build-isolation``). It is resolved
for every platform and for Python 3.11 and newer (``uv pip compile
--universal``), so one file serves every machine.

Run from the repository root, with uv installed (``pip install uv``)::

    python -m cimflow.tools.refresh_lock

The versions the current lock pins are kept where they still satisfy
pyproject.toml (to move every package to its newest release, delete
``requirements.txt`` first). Then run the test suite against the new lock,
and commit both. To see
whether the newest releases still pass before refreshing, see the README's
"newest releases" command.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

LOCK_FILE = "requirements.txt"
PYTHON = "3.11"
HEADER = (
    "# The locked install set of cimflow: runtime and test dependencies and the\n"
    "# build backend, exact versions with hashes, for every platform and\n"
    "# Python >= 3.11. Do not edit: regenerate with\n"
    "#     python -m cimflow.tools.refresh_lock\n"
    "# which runs\n"
    "#     {command}\n"
    "# from these pyproject.toml inputs: {inputs}\n"
)
INPUTS_PREFIX = "# from these pyproject.toml inputs: "


def compile_command(build_requirements: Path, output: Path) -> list[str]:
    """The ``uv pip compile`` command line that writes the lock."""
    uv = shutil.which("uv") or "uv"
    return [
        uv,
        "pip",
        "compile",
        "pyproject.toml",
        str(build_requirements),
        "--extra",
        "test",
        "--universal",
        "--python-version",
        PYTHON,
        "--generate-hashes",
        "--no-header",
        "--quiet",
        "-o",
        str(output),
    ]


def locked_inputs(root: Path) -> str:
    """What the lock is resolved from, as one fingerprint: the runtime
    dependencies, the ``test`` extra and the build requirements. Console
    scripts, packages, package data and the other extras do not change it;
    a lock whose header names another fingerprint is out of date."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    requirements = sorted(
        [
            *project["dependencies"],
            *project["optional-dependencies"]["test"],
            *data["build-system"]["requires"],
        ]
    )
    digest = hashlib.sha256("\n".join(requirements).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def build_requirements(root: Path) -> list[str]:
    """The ``[build-system] requires`` of the project."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["build-system"]["requires"])


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``requirements.txt`` in the current folder (the repository)."""
    del argv
    root = Path.cwd()
    if not (root / "pyproject.toml").is_file():
        print("refresh_lock: error: run from the repository root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="cimflow-lock-") as directory:
        build = Path(directory) / "build-system.in"
        build.write_text("\n".join(build_requirements(root)) + "\n", encoding="utf-8")
        body = Path(directory) / "lock.txt"
        lock = root / LOCK_FILE
        if lock.is_file():
            # uv keeps the versions its output file already pins wherever
            # they still satisfy the inputs: a new dependency moves nothing else.
            shutil.copyfile(lock, body)
        command = compile_command(build, body)
        try:
            subprocess.run(command, check=True, cwd=root)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"refresh_lock: error: {error}", file=sys.stderr)
            return 1
        shown = " ".join(
            "build-system.in" if part == str(build) else part
            for part in command[1:-2]  # without "-o" and the temporary file
        )
        text = HEADER.format(
            command=f"uv {shown} -o {LOCK_FILE}", inputs=locked_inputs(root)
        )
        text += body.read_text(encoding="utf-8").replace(str(build), "build-system")
    (root / LOCK_FILE).write_text(text, encoding="utf-8")
    print(f"wrote {LOCK_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
