"""Input bit-plane profiles: how often an MVM's input bit-planes are zero.

A bit-serial array drives an input vector one bit-plane (``dac_bits`` bits
of every row) at a time; a zero detector over the rows of a word-line pass
lets the array skip a plane that is zero on all of them (CIMinus's input
bit-sparsity, ``shared/reference/ciminus.md`` §3.3). How many planes are
zero depends on the data, so it is measured: ``cim-verify --mode quantized
--zero-planes FILE`` runs the trace on its sample input in the functional
executor, which counts, per MVM weight, the planes its arrays drive (per
array, vector and pass) and those that are zero; ``cim-input-sparsity``
reads the file and enables skipping where it pays. The file is JSON::

    {"format": "cimflow-zero-planes", "version": 1, "target": "ciminus",
     "seed": 0, "weights": {"conv1.weight": {"zero": 912, "planes": 4096}}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cimflow.errors import CimError

FORMAT = "cimflow-zero-planes"
VERSION = 1
SHARE_DIGITS = 4
"""Decimal digits a share keeps in the IR (rounded down, so that a share
below 1 stays below 1 and the IR prints and parses it back exactly)."""


@dataclass(frozen=True)
class ZeroPlaneProfile:
    """Measured zero input bit-planes per MVM weight."""

    target: str
    seed: int
    counts: Mapping[str, tuple[int, int]]
    """Per weight name: ``(zero planes, planes)``."""

    def share(self, weight: str) -> float | None:
        """The share of ``weight``'s input planes that are zero, rounded
        down to :data:`SHARE_DIGITS` digits (``None``: not measured)."""
        count = self.counts.get(weight)
        if count is None or count[1] == 0:
            return None
        scale = 10**SHARE_DIGITS
        return math.floor(count[0] * scale / count[1]) / scale

    def to_json(self) -> str:
        weights = {
            name: {"zero": zero, "planes": planes}
            for name, (zero, planes) in sorted(self.counts.items())
        }
        data = {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "seed": self.seed,
            "weights": weights,
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _count(path: Path, name: str, entry: object) -> tuple[int, int]:
    if not isinstance(entry, dict):
        raise CimError(f"{path}: weight '{name}' must map to {{zero, planes}}")
    fields = cast(dict[str, object], entry)
    zero, planes = fields.get("zero"), fields.get("planes")
    if type(zero) is not int or type(planes) is not int or not 0 <= zero <= planes:
        raise CimError(
            f"{path}: weight '{name}' needs integers 0 <= zero <= planes, "
            f"got zero={zero!r}, planes={planes!r}"
        )
    return zero, planes


def read_profile(path: str | Path) -> ZeroPlaneProfile:
    """The profile in the JSON file ``path``; a one-line :class:`CimError`
    naming the file and the entry at fault."""
    source = Path(path)
    try:
        data: object = json.loads(source.read_text())
    except OSError as error:
        raise CimError(f"{source}: cannot read: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CimError(f"{source}: not JSON: {error}") from None
    if not isinstance(data, dict):
        raise CimError(f"{source}: not a zero-plane profile (expected an object)")
    fields = cast(dict[str, object], data)
    if fields.get("format") != FORMAT or fields.get("version") != VERSION:
        raise CimError(
            f"{source}: not a zero-plane profile (expected format '{FORMAT}', "
            f"version {VERSION})"
        )
    target, seed, weights = (
        fields.get("target"),
        fields.get("seed"),
        fields.get("weights"),
    )
    if not isinstance(target, str) or type(seed) is not int:
        raise CimError(
            f"{source}: keys 'target' (a name) and 'seed' (an integer) needed"
        )
    if not isinstance(weights, dict):
        raise CimError(f"{source}: key 'weights' must map weight names to counts")
    entries = cast(dict[str, object], weights)
    counts = {name: _count(source, name, entry) for name, entry in entries.items()}
    return ZeroPlaneProfile(target, seed, counts)
