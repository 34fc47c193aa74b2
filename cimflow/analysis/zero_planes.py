"""Input bit-plane profiles: how often an MVM's input bit-planes are zero.

A bit-serial array drives an input vector one bit-plane (``dac_bits`` bits
of every row) at a time; a zero detector over the rows of a word-line pass
lets the array skip a plane that is zero on all of them (CIMinus's input
bit-sparsity, ``shared/reference/ciminus.md`` §3.3). How many planes are
zero depends on the data, so it is measured: ``cim-verify --mode quantized
--zero-planes FILE`` runs the trace on its sample input in the functional
executor, which counts, per MVM weight, the planes its arrays drive (per
array, vector and pass) and those zero on every driven row, and the
group-planes (one plane over one detector's ``array.zero_detect_rows``
rows) and those zero; ``cim-input-sparsity`` reads the file and enables
skipping where it pays. The file is JSON::

    {"format": "cimflow-zero-planes", "version": 1, "target": "ciminus",
     "seed": 0, "weights": {"conv1.weight": {"zero": 912, "planes": 4096,
     "zero_groups": 40210, "groups": 73728}}}
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cimflow.cost_model import ZeroShares
from cimflow.errors import CimError

FORMAT = "cimflow-zero-planes"
VERSION = 1
SHARE_DIGITS = 4
"""Decimal digits a share keeps in the IR (rounded down, so that a share
below 1 stays below 1 and the IR prints and parses it back exactly)."""


@dataclass(frozen=True)
class PlaneCounts:
    """One weight's input planes: ``zero`` of ``planes`` zero on every row
    of their pass, ``zero_groups`` of ``groups`` zero on a detector's rows."""

    zero: int
    planes: int
    zero_groups: int
    groups: int


def _share(part: int, whole: int) -> float:
    scale = 10**SHARE_DIGITS
    return math.floor(part * scale / whole) / scale if whole else 0.0


@dataclass(frozen=True)
class ZeroPlaneProfile:
    """Measured zero input bit-planes per MVM weight."""

    target: str
    seed: int
    counts: Mapping[str, PlaneCounts]
    """Per weight name."""

    def shares(self, weight: str) -> ZeroShares | None:
        """``weight``'s shares of zero planes and group-planes, rounded down
        to :data:`SHARE_DIGITS` digits (``None``: not measured)."""
        count = self.counts.get(weight)
        if count is None or count.planes == 0:
            return None
        return ZeroShares(
            _share(count.zero, count.planes), _share(count.zero_groups, count.groups)
        )

    def to_json(self) -> str:
        weights = {
            name: dataclasses.asdict(count)
            for name, count in sorted(self.counts.items())
        }
        data = {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "seed": self.seed,
            "weights": weights,
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _count(path: Path, name: str, entry: object) -> PlaneCounts:
    keys = [f.name for f in dataclasses.fields(PlaneCounts)]
    if not isinstance(entry, dict):
        raise CimError(f"{path}: weight '{name}' must map to {{{', '.join(keys)}}}")
    fields = cast(dict[str, object], entry)
    values = [fields.get(key) for key in keys]
    zero, planes, zero_groups, groups = values
    if (
        any(type(v) is not int for v in values)
        or not 0 <= cast(int, zero) <= cast(int, planes)
        or not 0 <= cast(int, zero_groups) <= cast(int, groups)
    ):
        got = ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))
        raise CimError(
            f"{path}: weight '{name}' needs integers 0 <= zero <= planes and "
            f"0 <= zero_groups <= groups, got {got}"
        )
    return PlaneCounts(*cast(list[int], values))


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
