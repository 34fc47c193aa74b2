"""Shared parsing and printing of ``<key = value, ...>`` attribute bodies."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.parser import AttrParser
from xdsl.printer import Printer


def parse_int_fields(parser: AttrParser, keys: Sequence[str]) -> list[int]:
    """Parse ``<k1 = 1, k2 = 2, ...>`` with exactly ``keys`` in that order."""
    values: list[int] = []
    with parser.in_angle_brackets():
        for index, key in enumerate(keys):
            if index:
                parser.parse_punctuation(",")
            parser.parse_keyword(key)
            parser.parse_punctuation("=")
            values.append(parser.parse_integer(allow_boolean=False))
    return values


def print_int_fields(printer: Printer, fields: Sequence[tuple[str, int]]) -> None:
    """Print ``<k1 = 1, k2 = 2, ...>``."""
    with printer.in_angle_brackets():
        printer.print_string(", ".join(f"{key} = {value}" for key, value in fields))
