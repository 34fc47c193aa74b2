"""Ring buffers for tensors made in bands: how many of a tensor's bands a
pipelined segment must hold at once.

In a segment pipelined by rows, a tensor made band by band is read band by
band a little later: a 3 x 3 window reads three rows of it, a residual add
the same rows some layers downstream. It never has to be whole anywhere: a
ring of ``depth`` bands suffices when band ``j`` is written only after every
op reading band ``j - depth`` has read it (the lowering makes band ``j``'s
writers wait for those reads). That wait must not close a cycle: a reader of
band ``k`` may itself wait, through the ops between, for later bands of the
tensor (the next conv's window, a skip add behind two convs). ``depth`` is
one more than the largest such lead (the furthest band any op that reads
the tensor's bytes, or a view of them, transitively waits for, past the
first band it reads), plus :data:`SLACK_BANDS`.

The analysis replays the segment's blocking plans
(:func:`cimflow.analysis.allocation.pipeline_plans`), band by band, the way
the lowering cuts every blocked operator (:func:`blocking.bands`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from cimflow.analysis.blocking import Band, BlockPlan, bands
from cimflow.cimdialect import cim_graph, cim_tile
from cimflow.lowering.rules import epilogue_activation

SLACK_BANDS = 1
"""Slots beyond the fewest without a cycle, so that the producer writes a
band while the slowest reader still reads the one before (with none, the
two alternate: a 3 x 3 window's reader and its producer took 67 ms instead
of 61 ms on VGG-16's first layers, `clsa-cim` on pimcomp_default; with one,
30 ms; with three, 29.7 ms, for twice the buffer)."""

Reach = list[int]
"""Per band of a value: the last band of the ringed tensor it waits for."""


def ring_band_bytes(nbytes: int, rows: int, steps: Sequence[Band]) -> int:
    """Bytes of the largest of ``steps`` (bands of a tensor of ``nbytes``
    cut into ``rows`` rows): one slot of its ring."""
    return max(math.ceil(nbytes * (band[1] - band[0]) / rows) for band in steps)


def ring_fits(depth: int, band_bytes: int, available: int) -> bool:
    """Whether a ring of ``depth`` slots of ``band_bytes`` takes at most half
    of the ``available`` bytes of the global buffer (the rest stays for the
    tensors the segment keeps whole, and for other rings)."""
    return depth * band_bytes <= available // 2


def _views_bytes(op: Operation) -> bool:
    """Whether ``op``'s result may be a view of its first operand's bytes in
    the lowering (a reshape or window expansion, a layout fold, or an
    element-wise operator or activation, a clip too, that the producer's
    accumulations may apply as the values leave,
    :func:`~cimflow.lowering.rules.epilogue_activation`): its readers read
    the ringed tensor."""
    if isinstance(op, cim_tile.Im2ColOp | cim_tile.Col2ImOp):
        return True
    if isinstance(op, cim_tile.VectorOp):
        return epilogue_activation(op) is not None or isinstance(
            op.payload,
            cim_graph.ReshapeOp | cim_graph.UnaryOp | cim_graph.BinaryOp,
        )
    return False


def _overlapping(value_bands: Sequence[Band], rows: Band | None) -> range:
    """Indices of ``value_bands`` (in order, disjoint) that rows ``rows``
    (None: all) touch."""
    if rows is None:
        return range(len(value_bands))
    first = bisect.bisect_right(value_bands, rows[0], key=itemgetter(1))
    stop = bisect.bisect_left(value_bands, rows[1], key=itemgetter(0))
    return range(first, stop)


def ring_depth(
    ops: Sequence[Operation],
    start: int,
    value: SSAValue,
    plans: Mapping[Operation, BlockPlan],
    blocks: int,
    segment_of: Callable[[Operation], int | None],
) -> int | None:
    """Bands of ``value`` (the result of ``ops[start]``, made in bands) a
    ring must hold, or None when no ring can hold it: something outside its
    segment, a model output, or an operator that runs whole reads its bytes,
    or the ring would need every band."""
    producer = ops[start]
    plan = plans.get(producer)
    if plan is None:
        return None
    own = bands(plan.output.rows, blocks)
    count = len(own)
    segment = segment_of(producer)
    band_lists: dict[SSAValue, Sequence[Band]] = {value: own}
    reach: dict[SSAValue, Reach] = {value: list(range(count))}
    low: dict[SSAValue, Reach] = {value: list(range(count))}
    lead = 0
    seen: set[Operation] = set()
    for op in itertools.islice(ops, start + 1, None):
        at = segment_of(op)
        if at is not None and at != segment:
            break
        touched = [(i, v) for i, v in enumerate(op.operands) if v in reach]
        if not touched:
            continue
        seen.add(op)
        op_plan = plans.get(op)
        reads_bytes = any(v in low for _, v in touched)
        if op_plan is None:
            if reads_bytes:
                return None
            for result in op.results:
                band_lists[result] = [(0, 1)]
                reach[result] = [count - 1]
            continue
        out = bands(op_plan.output.rows, blocks)
        out_reach: Reach = []
        out_low: Reach = []
        inputs = [
            (index, band_lists[operand], reach[operand], low.get(operand))
            for index, operand in touched
        ]
        for band in out:
            furthest, first = -1, count
            for index, operand_bands, operand_reach, operand_low in inputs:
                hit = _overlapping(operand_bands, op_plan.needs(index, band))
                if not hit:
                    continue
                furthest = max(furthest, *operand_reach[hit.start : hit.stop])
                if operand_low is not None:
                    first = min(first, *operand_low[hit.start : hit.stop])
            out_reach.append(furthest)
            out_low.append(first)
            if first < count:
                lead = max(lead, furthest - first)
        for result in op.results:
            band_lists[result] = out
            reach[result] = out_reach
            if reads_bytes and _views_bytes(op):
                low[result] = out_low
    for held in low:
        for use in held.uses:
            if use.operation not in seen or isinstance(use.operation, func.ReturnOp):
                return None
    depth = lead + 1 + SLACK_BANDS
    return depth if depth < count else None
