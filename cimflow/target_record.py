"""The target a module is compiled for, recorded once.

``convert-graph-to-tile`` maps operators onto one target's arrays; every
later pass must compile for that same chip. So it records the target on the
module (``cim_tile.target``: the spec it was given, the chip's name and a
hash of its content), and every later pass takes the target from there
through :func:`module_target`: a ``target`` option left empty means "the
module's", and one that names a different chip (or a target file whose
content changed since) is an error.
"""

from __future__ import annotations

import hashlib

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute

from cimflow.errors import CimError
from cimflow.hw_targets import (
    DEFAULT_TARGET,
    HardwareTarget,
    load_target,
    target_to_toml,
)

TARGET_ATTR = "cim_tile.target"
"""Module attribute: ``{spec, name, hash}`` of the target the module is
tiled for."""


def target_hash(hw: HardwareTarget) -> str:
    """``sha256:...`` of the target's content (its canonical TOML text)."""
    digest = hashlib.sha256(target_to_toml(hw).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:16]}"


def record_target(module: ModuleOp, spec: str, pass_name: str) -> HardwareTarget:
    """Load ``spec`` (default: the default target) and record it on the
    module; a module already recorded for another chip is an error."""
    hw = load_target(spec or DEFAULT_TARGET)
    recorded = _recorded(module)
    if recorded is not None and recorded[2] != target_hash(hw):
        raise CimError(
            f"{pass_name}: the module is already tiled for target "
            f"'{recorded[1]}' ({recorded[0]}), not '{hw.name}'"
        )
    module.attributes[TARGET_ATTR] = DictionaryAttr(
        {
            "spec": StringAttr(spec or DEFAULT_TARGET),
            "name": StringAttr(hw.name),
            "hash": StringAttr(target_hash(hw)),
        }
    )
    return hw


def module_target(module: ModuleOp, spec: str, pass_name: str) -> HardwareTarget:
    """The target a pass compiles ``module`` for: the recorded one, checked
    against ``spec`` when the pass names one (and against the file's current
    content). A module with no record (IR written by hand) takes ``spec``,
    or the default target."""
    recorded = _recorded(module)
    if recorded is None:
        return load_target(spec or DEFAULT_TARGET)
    recorded_spec, recorded_name, recorded_hash = recorded
    hw = load_target(spec or recorded_spec)
    if target_hash(hw) != recorded_hash:
        if spec:
            raise CimError(
                f"{pass_name}: target '{spec}' ({hw.name}) is not the module's "
                f"target '{recorded_name}' ({recorded_spec}), which "
                "convert-graph-to-tile tiled it for"
            )
        raise CimError(
            f"{pass_name}: target file '{recorded_spec}' changed since "
            "convert-graph-to-tile tiled the module for it (or the --set "
            "overrides differ)"
        )
    return hw


def module_target_spec(module: ModuleOp, spec: str) -> str:
    """The spec to name the module's target by (the recorded one when the
    pass option is empty)."""
    recorded = _recorded(module)
    if spec or recorded is None:
        return spec or DEFAULT_TARGET
    return recorded[0]


def _recorded(module: ModuleOp) -> tuple[str, str, str] | None:
    attr = module.attributes.get(TARGET_ATTR)
    if attr is None:
        return None
    values: dict[str, Attribute] = (
        dict(attr.data) if isinstance(attr, DictionaryAttr) else {}
    )
    fields = [values.get(key) for key in ("spec", "name", "hash")]
    strings = [field.data for field in fields if isinstance(field, StringAttr)]
    if len(strings) != 3:
        raise CimError(
            f"module attribute {TARGET_ATTR} must be {{spec, name, hash}} strings, "
            f"got {attr}"
        )
    return strings[0], strings[1], strings[2]
