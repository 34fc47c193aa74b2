"""``cim-sim``: simulate a cim-trace and report latency, utilization and energy.

Usage: ``cim-sim trace.json [--json] [--timeline FILE] [--layers FILE]
[--critical FILE] [-o FILE]``. Errors in
the input are printed as ``cim-sim: error: <one line>`` and exit with 1.
"""

from __future__ import annotations

import sys

from cimflow.cimsim.critical import critical_csv
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.layers import layers_csv
from cimflow.cimsim.report import dump_report_json, format_report
from cimflow.cimsim.timeline import dump_timeline
from cimflow.cimsim.trace import load_trace
from cimflow.cli import ArgumentParser, exit_status
from cimflow.errors import CimError
from cimflow.output_files import write_output


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cim-sim",
        description="Simulate a cim-trace (docs/trace-format.md) and report "
        "latency, throughput, utilization, energy and traffic.",
    )
    parser.add_argument("trace", help="the trace JSON written by cim-opt -t cim-trace")
    parser.add_argument(
        "--json", action="store_true", help="write the report as JSON instead of text"
    )
    parser.add_argument(
        "--timeline",
        metavar="FILE",
        help="also write a Chrome/Perfetto trace-event timeline to FILE",
    )
    parser.add_argument(
        "--layers",
        metavar="FILE",
        help="also write per-layer (ONNX node) latency, energy, array "
        "utilization and critical-path cycles as CSV to FILE",
    )
    parser.add_argument(
        "--critical",
        metavar="FILE",
        help="also write the critical path's ops (first to last, with their "
        "class and whether each waited for data or for a resource) as CSV to FILE",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE, not stdout"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run cim-sim; returns the exit status (0 on success, 1 on a bad input,
    2 on a bad command line)."""
    try:
        args = _parser().parse_args(argv)
        trace_path: str = args.trace
        as_json: bool = args.json
        timeline: str | None = args.timeline
        output: str | None = args.output
        layers: str | None = args.layers
        critical: str | None = args.critical
        result = simulate(load_trace(trace_path))
        report = dump_report_json(result) if as_json else format_report(result)
        if timeline is not None:
            write_output(timeline, dump_timeline(result))
        if layers is not None:
            write_output(layers, layers_csv(result))
        if critical is not None:
            write_output(critical, critical_csv(result))
        if output is not None:
            write_output(output, report)
        else:
            sys.stdout.write(report)
            sys.stdout.flush()
    except CimError as err:
        print(f"cim-sim: error: {err}", file=sys.stderr)
        return exit_status(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
