"""The ``xdsl.universe`` entry point: our dialects, passes and trace target.

Registered in pyproject.toml so that a stock ``xdsl-opt`` (or any xDSL flow
that asks the multiverse) can parse our IR and run our passes.
"""

from xdsl.context import Context
from xdsl.ir import Dialect
from xdsl.universe import Universe
from xdsl.utils.target import Target

from cimflow.passes import get_all_passes


def _cim_graph() -> Dialect:
    from cimflow.cimdialect.cim_graph import CIMGraph

    return CIMGraph


def _cim_tile() -> Dialect:
    from cimflow.cimdialect.cim_tile import CIMTile

    return CIMTile


def _cim_meta() -> Dialect:
    from cimflow.cimdialect.cim_meta import CIMMeta

    return CIMMeta


def _trace_target() -> type[Target]:
    from cimflow.passes.trace_target import CimTraceTarget

    return CimTraceTarget


CIMFLOW_UNIVERSE = Universe(
    all_dialects={
        "cim_graph": _cim_graph,
        "cim_tile": _cim_tile,
        "cim_meta": _cim_meta,
    },
    all_passes=get_all_passes(),
    all_targets={"cim-trace": _trace_target},
)


def multiverse_context() -> Context:
    """A context that knows every dialect the multiverse has (ours, xDSL's
    and any other package's), for parsing or transforming our IR."""
    context = Context()
    for name, dialect in Universe.get_multiverse().all_dialects.items():
        context.register_dialect(name, dialect)
    return context
