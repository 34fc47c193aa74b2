"""``cim-targets``: the shipped targets and their key figures, or one
target as the TOML that compiles for it.

::

    cim-targets                                  # every shipped target
    cim-targets dynaplasia chips/my.toml --set array.rows=512
    cim-targets chips/my.toml --toml             # with its base and --set applied

A target file may start from another (``base = "dynaplasia"``, then only the
keys that differ) and every command that loads targets takes ``--set
SECTION.KEY=VALUE`` (``hw_targets/SCHEMA.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import cast

from cimflow.analysis.area import total_area_mm2
from cimflow.cli import (
    ArgumentParser,
    add_target_overrides,
    aligned_table,
    exit_status,
)
from cimflow.errors import CimError
from cimflow.hw_targets import (
    HardwareTarget,
    load_target,
    overridden,
    shipped_targets,
    target_to_toml,
)

COLUMNS: tuple[str, ...] = (
    "target",
    "arrays",
    "array",
    "W/A bits",
    "GHz",
    "switchable",
    "global KB",
    "local KB",
    "bus B/cycle",
    "DRAM B/cycle",
    "area mm2",
)


def key_figures(hw: HardwareTarget) -> tuple[str, ...]:
    """One row of :data:`COLUMNS` for ``hw``."""
    h = hw.hierarchy
    area = total_area_mm2(hw)
    chips = f"{h.chips} x " if h.chips > 1 else ""
    return (
        hw.name,
        f"{hw.total_arrays} ({chips}{h.cores_per_chip} x {h.arrays_per_core})",
        f"{hw.array.rows}x{hw.array.cols}x{hw.array.cell_bits}b",
        f"{hw.precision.weight_bits}/{hw.precision.activation_bits}",
        f"{hw.target.clock_ghz:g}",
        str(hw.dual_mode.switchable_arrays),
        f"{hw.buffers.global_bytes / 1024:g}",
        f"{hw.buffers.local_bytes / 1024:g}",
        f"{hw.interconnect.bandwidth_bytes_per_cycle:g} {hw.interconnect.topology}",
        f"{hw.dram.bandwidth_bytes_per_cycle:g}",
        "-" if area is None else f"{area:.4g}",
    )


def format_targets(targets: Sequence[HardwareTarget]) -> str:
    """The key figures of ``targets`` as an aligned table, then each
    target's description."""
    lines = aligned_table([COLUMNS, *(key_figures(hw) for hw in targets)])
    lines.append("")
    lines += [f"{hw.name}: {hw.target.description}" for hw in targets]
    return "\n".join(lines) + "\n"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cim-targets",
        description="List targets and their key figures (default: every shipped "
        "target), or print one as TOML.",
    )
    parser.add_argument(
        "targets", nargs="*", help="shipped target names or .toml paths"
    )
    add_target_overrides(parser)
    parser.add_argument(
        "--toml",
        action="store_true",
        help="print the one target given as a complete target file",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cim-targets``."""
    try:
        args = _parser().parse_args(argv)
        specs = cast(list[str], args.targets) or shipped_targets()
        with overridden(cast(list[str], args.set)):
            targets = [load_target(spec) for spec in specs]
        if cast(bool, args.toml):
            if len(targets) != 1:
                raise CimError("--toml prints one target: give exactly one")
            text = target_to_toml(targets[0])
        else:
            text = format_targets(targets)
    except CimError as error:
        print(f"cim-targets: error: {error}", file=sys.stderr)
        return exit_status(error)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
