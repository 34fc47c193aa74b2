"""Runs the lit/FileCheck suite in tests/filecheck as part of pytest."""

import os
import subprocess
import sys
from pathlib import Path

FILECHECK_DIR = Path(__file__).resolve().parents[1] / "filecheck"


def test_lit_filecheck_suite() -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run(
        [str(Path(bin_dir) / "lit"), "-q", str(FILECHECK_DIR)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
