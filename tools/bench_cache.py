"""The result cache of ``cim-bench --cache DIR``: one JSON file per
combination, named by a content hash of what decides its result.

The key is the SHA-256 of the model (a zoo entry by its file stem and
variant, which the project's builders make deterministically; an ONNX file
by its bytes), the target's content with the ``--set`` / ``--sweep``
overrides applied (:func:`cimflow.target_record.target_hash`), the
strategy, and the project's version. A sweep writes each result as it
finishes (whole or not at all), so a killed sweep run again computes only
what it had not finished; a result from another version of cimflow, a
changed target file or model is another key and runs again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from cimflow.hw_targets import load_target, overridden
from cimflow.output_files import write_output
from cimflow.target_record import target_hash


def project_version() -> str:
    """The installed cimflow's version."""
    return importlib.metadata.version("cimflow")


def overridden_target_hash(target: str, overrides: Sequence[str]) -> str:
    """The content hash of ``target`` with ``overrides`` applied."""
    with overridden(overrides):
        return target_hash(load_target(target))


def cache_key(
    model: dict[str, object],
    target: str,
    overrides: Sequence[str],
    strategy: str,
) -> str:
    """The content hash naming a result: ``model`` says which model
    (``{"zoo": stem, "small": bool}``, or ``{"onnx": path}``, hashed by its
    bytes), then the target with ``overrides`` applied, the strategy and
    the project's version."""
    if "onnx" in model:
        content = Path(str(model["onnx"])).read_bytes()
        model = {"onnx": hashlib.sha256(content).hexdigest()}
    identity = {
        "model": model,
        "target": overridden_target_hash(target, overrides),
        "strategy": strategy,
        "version": project_version(),
    }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def read_cached(directory: Path, key: str) -> dict[str, Any] | None:
    """The result kept under ``key``, if it is there and readable."""
    path = directory / f"{key}.json"
    if not path.is_file():
        return None
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: computed again, and written over
    return cast(dict[str, Any], data) if isinstance(data, dict) else None


def write_cached(directory: Path, key: str, data: dict[str, Any]) -> None:
    """Keep a result under ``key`` (whole or not at all)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=1) + "\n"
    write_output(directory / f"{key}.json", text)
