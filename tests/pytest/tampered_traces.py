"""Traces compiled as JSON documents to tamper with, and the functional
check's refusal of one that no longer matches its model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cimflow.cimsim.trace import parse_trace
from cimflow.passes.trace_target import build_trace
from cimflow.tools.cim_verify import compile_model, verify_trace


def trace_document(path: Path, target: str, pipeline: str) -> dict[str, Any]:
    """The trace of ``path`` compiled by ``pipeline`` on ``target``, as a
    JSON document of its own."""
    return json.loads(json.dumps(build_trace(compile_model(path, target, pipeline))))


def assert_refused(document: dict[str, Any], path: Path, message: str) -> None:
    """The exact functional check of ``document`` against ``path`` fails
    with an error that says ``message``."""
    report = verify_trace(parse_trace(document, "t.json"), path, "exact")
    assert not report.passed
    assert message in (report.mode("exact").error or "")
