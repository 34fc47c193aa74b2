"""Shared parsing and printing of ``<key = value, ...>`` attribute bodies."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.parser import AttrParser
from xdsl.printer import Printer


def parse_int_fields(
    parser: AttrParser, keys: Sequence[str], list_key: str = ""
) -> tuple[list[int], list[int]]:
    """Parse ``<k1 = 1, k2 = 2, ...>`` with exactly ``keys`` in that order,
    then, when ``list_key`` is given, an optional ``, list_key = [1, 2]``
    (empty when absent)."""
    values: list[int] = []
    listed: list[int] = []
    with parser.in_angle_brackets():
        for index, key in enumerate(keys):
            if index:
                parser.parse_punctuation(",")
            parser.parse_keyword(key)
            parser.parse_punctuation("=")
            values.append(parser.parse_integer(allow_boolean=False))
        if list_key and parser.parse_optional_punctuation(","):
            parser.parse_keyword(list_key)
            parser.parse_punctuation("=")
            listed = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE,
                lambda: parser.parse_integer(allow_boolean=False),
            )
    return values, listed


def print_int_fields(
    printer: Printer,
    fields: Sequence[tuple[str, int]],
    listed: tuple[str, Sequence[int]] = ("", ()),
) -> None:
    """Print ``<k1 = 1, k2 = 2, ...>`` and, when its list is not empty,
    ``, key = [1, 2]`` after them."""
    body = ", ".join(f"{key} = {value}" for key, value in fields)
    key, values = listed
    if values:
        body += f", {key} = [{', '.join(str(v) for v in values)}]"
    with printer.in_angle_brackets():
        printer.print_string(body)
