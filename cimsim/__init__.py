"""cim-sim: the discrete-event simulator of cim-trace schedules.

``load_trace`` reads and validates a trace (``docs/trace-format.md``),
``simulate`` runs it, and ``format_report`` / ``report_dict`` /
``timeline_dict`` present the result. ``dump_trace`` is the one writer of
trace JSON, shared with the compiler's trace emitter.
"""

from .engine import (
    RESOURCE_CLASSES,
    SHARED_RESOURCES,
    SimResult,
    SimStats,
    op_cost,
    op_resources,
    simulate,
)
from .report import dump_report_json, format_report, report_dict
from .timeline import dump_timeline, timeline_dict
from .trace import (
    OP_KINDS,
    TRACE_FORMAT,
    TRACE_VERSION,
    Trace,
    TraceOp,
    dump_trace,
    load_trace,
    parse_trace,
)

__all__ = [
    "OP_KINDS",
    "RESOURCE_CLASSES",
    "SHARED_RESOURCES",
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "SimResult",
    "SimStats",
    "Trace",
    "TraceOp",
    "dump_report_json",
    "dump_timeline",
    "dump_trace",
    "format_report",
    "load_trace",
    "op_cost",
    "op_resources",
    "parse_trace",
    "report_dict",
    "simulate",
    "timeline_dict",
]
