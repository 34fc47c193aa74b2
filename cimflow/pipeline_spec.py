"""Pass pipelines as the user writes them (``-p 'a{x=1},b'``), checked.

xDSL parses a pipeline and converts each option to its field's type; its
errors name neither the pass nor the option (``Incompatible types: given
('abc',), expected float | int``). :func:`checked_specs` parses the same
text, checks every pass name, option name and option type first, and says
which one is wrong in one line. It also accepts a comma-separated value for
a string option unquoted (``dataflows=layer,rows``, which the pipeline
grammar reads as a list) by joining it back, so the documented form works.
``cim-opt`` and ``cim-verify`` both go through it.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin, get_type_hints

from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpec, ParameterListType, parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError

from cimflow.errors import CimError

PassRegistry = Mapping[str, Callable[[], type[ModulePass]]]
"""Pass name -> a loader of its class (xDSL's ``available_passes``)."""


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if get_origin(hint) in (Union, types.UnionType):
        return get_args(hint)
    return (hint,)


def describe_type(hint: Any) -> str:
    """What an option of type ``hint`` takes, in words."""
    kinds = set(_alternatives(hint)) - {type(None)}
    if kinds == {bool}:
        return "true or false"
    if kinds <= {int, float} and float in kinds:
        return "a number"
    if kinds == {int}:
        return "an integer"
    if kinds == {str}:
        return "a string"
    if all(get_origin(kind) is tuple for kind in kinds):
        return "a comma-separated list"
    return " or ".join(sorted(getattr(k, "__name__", str(k)) for k in kinds))


def _value_text(value: ParameterListType) -> str:
    if not value:
        return "nothing"
    return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in value)


def _options(pass_type: type[ModulePass]) -> dict[str, Any]:
    hints = get_type_hints(pass_type)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(pass_type)
        if f.init and f.name != "name"
    }


def _check_spec(spec: ArgSpec, pass_type: type[ModulePass]) -> ArgSpec:
    options = _options(pass_type)
    parameters: dict[str, ParameterListType] = {}
    for key, value in spec.normalize_parameter_names().parameters.items():
        hint = options.get(key)
        if hint is None:
            known = ", ".join(options) or "none"
            raise CimError(
                f"pass '{spec.name}' has no option '{key}' (its options: {known})"
            )
        if str in _alternatives(hint) and len(value) > 1:
            value = (_value_text(value),)
        parameters[key] = value
    checked = ArgSpec(spec.name, parameters)
    try:
        pass_type.from_pass_spec(checked)
    except (ValueError, TypeError, ArgSpecParseError) as error:
        for key, value in parameters.items():
            if not _converts(pass_type, ArgSpec(spec.name, {key: value})):
                raise CimError(
                    f"pass '{spec.name}': option '{key}' takes "
                    f"{describe_type(options[key])}, got '{_value_text(value)}'"
                ) from None
        raise CimError(f"pass '{spec.name}': {_one_line(error)}") from None
    except CimError:
        pass  # a value the pass itself refuses: it says so when it runs
    return checked


def _converts(pass_type: type[ModulePass], spec: ArgSpec) -> bool:
    try:
        pass_type.from_pass_spec(spec)
    except (ValueError, TypeError, ArgSpecParseError):
        return False
    except CimError:
        pass
    return True


def checked_specs(text: str, available: PassRegistry) -> list[ArgSpec]:
    """The passes of the pipeline ``text``, each pass and option checked."""
    try:
        specs = list(parse_pipeline(text))
    except ArgSpecParseError as error:
        raise CimError(
            f"cannot parse the pass pipeline '{text}': {_one_line(error)} "
            '(write paths and strings in quotes, e.g. target="chips/my.toml")'
        ) from None
    checked: list[ArgSpec] = []
    for spec in specs:
        factory = available.get(spec.name)
        if factory is None:
            raise CimError(f"unknown pass '{spec.name}' in the pipeline '{text}'")
        checked.append(_check_spec(spec, factory()))
    return checked


def pipeline_text(specs: Sequence[ArgSpec]) -> str:
    """The pipeline text of checked specs (strings quoted)."""
    return ",".join(str(spec) for spec in specs)
