"""What every command-line tool shares: one-line usage errors.

argparse answers a usage error with the whole usage text and exit status 2;
our tools answer every error with one line (``cim-sim: error: ...``), usage
errors included, and keep status 2 for them so scripts can tell a bad
command line (2) from a bad input or a failed check (1).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Mapping, Sequence
from typing import NoReturn

from cimflow.errors import CimError

USAGE_STATUS = 2
"""Exit status of a usage error (argparse's)."""


class UsageError(CimError):
    """A bad command line: unknown option, missing argument, bad value."""


def raise_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` raise :class:`UsageError` instead of printing its usage
    and exiting (for parsers a library builds, e.g. ``xdsl-opt``'s)."""

    def error(message: str) -> NoReturn:
        raise UsageError(f"{message} (see {parser.prog} --help)")

    parser.error = error


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors raise :class:`UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def exit_status(error: CimError) -> int:
    """2 for a usage error, 1 for any other error."""
    return USAGE_STATUS if isinstance(error, UsageError) else 1


def add_target_overrides(parser: argparse.ArgumentParser) -> None:
    """The ``--set SECTION.KEY=VALUE`` option every command that loads
    targets takes (:func:`cimflow.hw_targets.overridden`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one key of every target loaded (repeatable; "
        "hw_targets/SCHEMA.md)",
    )


def aligned_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as text lines: the first column left-aligned, the
    others right-aligned, each as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """``rows`` as CSV under a header of ``columns``, lines ending in ``\\n``
    (the same bytes on every platform)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
