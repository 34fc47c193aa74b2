"""What a trace means, checked without data (``docs/trace-format.md``,
"Meaning").

:func:`~cimflow.cimsim.trace.parse_trace` checks a trace's structure (keys,
types, ranges); :func:`check_semantics` then walks its ops in id order, as
the functional executor does, and checks what they do to the machine:

- every tensor an op writes (``mvm`` and ``vector`` outputs) and every
  ``mvm`` input is declared in ``tensors`` (or is a model input), every
  weight a ``program`` or ``mvm`` names is in ``weights``, every model
  output is declared; every ``dtype`` is one the format knows (transfers,
  moves and vector inputs may also name model parameters, which
  ``model.source`` holds and the trace does not list);
- a weight slice (``k``, ``n``) lies inside its weight's matrix, and an
  ``mvm``'s vectors ``v`` inside its input's rows;
- arrays are used in the mode they are in: ``program`` and ``mvm`` on
  compute-mode arrays, ``load`` / ``store`` to or from ``memory`` on
  memory-mode arrays (a model input's arrays start in memory mode; a
  ``switch`` changes the mode), and an op that relies on a switch depends
  on it;
- an ``mvm`` computes on arrays a ``program`` of the same weight wrote,
  and depends on that program; a ``program`` or ``switch`` that overwrites
  an array depends on every op that used it since its last write;
- a ``load`` from ``memory`` reads a tensor those arrays hold (written
  there by a transfer, or a model input that starts there), and a switch
  of those arrays to compute mode loses it.

Every problem is a one-line :class:`~cimflow.errors.CimError` naming the
trace, the op and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cimflow.errors import CimError

from .trace import (
    DTYPES,
    MvmOp,
    ProgramOp,
    SwitchOp,
    Trace,
    TraceOp,
    TransferOp,
    VectorOp,
)


class Reachability:
    """Which ops each op (transitively) depends on, recorded in id order.

    Op ``i`` depends on every op below ``prefix[i]`` and on the ops
    ``prefix[i] + b`` for the set bits ``b`` of ``above[i]``. A segment
    barrier depends on everything before it, so the bit sets stay about a
    segment long and the whole costs far less than ``n^2`` bits.
    """

    def __init__(self) -> None:
        self.prefix: list[int] = []
        self.above: list[int] = []

    def add(self, deps: Sequence[int]) -> None:
        """Record the next op, which has ``deps``."""
        start = max((self.prefix[d] for d in deps), default=0)
        bits = 0
        for d in deps:
            shift = self.prefix[d] - start
            own = self.above[d] << shift if shift >= 0 else self.above[d] >> -shift
            bits |= own | (1 << (d - start) if d >= start else 0)
        ones = ((~bits) & (bits + 1)).bit_length() - 1  # trailing set bits
        self.prefix.append(start + ones)
        self.above.append(bits >> ones)

    def depends(self, op: int, earlier: int) -> bool:
        """Whether ``op`` depends, directly or not, on ``earlier``."""
        prefix = self.prefix[op]
        return earlier < prefix or bool((self.above[op] >> (earlier - prefix)) & 1)


def op_label(op: TraceOp) -> str:
    """``op 12 (mvm 'conv1')``: how messages name an op."""
    kind = f"vector {op.op}" if isinstance(op, VectorOp) else op.kind
    return f"op {op.id} ({kind} '{op.name}')" if op.name else f"op {op.id} ({kind})"


def array_ids(ranges: Sequence[tuple[int, int]]) -> list[int]:
    """The array ids of ``[first, stop)`` ranges."""
    return [a for first, stop in ranges for a in range(first, stop)]


@dataclass
class _Array:
    memory: bool = False
    writer: int | None = None
    """The last op that set the array's content or mode (program, switch)."""
    weight: str | None = None
    """The weight its last program wrote (None: nothing computable)."""
    users: list[int] = field(default_factory=lambda: [])
    """Ops that used it since ``writer``."""


class _Checker:
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.reach = Reachability()
        self.arrays: dict[int, _Array] = {}
        self.tensors = {t.name: t for t in trace.tensors}
        self.weights = {w.name: w for w in trace.weights}
        self.inputs = {i.name for i in trace.model.inputs}
        self.in_memory: dict[str, frozenset[int]] = {}
        """Tensor -> the memory-mode arrays holding it."""
        self.op: TraceOp | None = None

    def fail(self, message: str) -> CimError:
        where = "" if self.op is None else f"{op_label(self.op)}: "
        return CimError(f"{self.trace.origin}: {where}{message}")

    def array(self, index: int) -> _Array:
        state = self.arrays.get(index)
        if state is None:
            state = self.arrays[index] = _Array()
        return state

    def check_dtypes(self) -> None:
        declared = [
            *(("tensor", t.name, t.dtype) for t in self.trace.tensors),
            *(("constant", c.name, c.dtype) for c in self.trace.constants),
            *(("model input", i.name, i.dtype) for i in self.trace.model.inputs),
            *(("model output", o.name, o.dtype) for o in self.trace.model.outputs),
        ]
        for what, name, dtype in declared:
            if dtype not in DTYPES:
                raise self.fail(
                    f"{what} '{name}' has unknown dtype {dtype!r} "
                    f"(known: {', '.join(DTYPES)})"
                )
        for output in self.trace.model.outputs:
            if output.name not in self.tensors and output.name not in self.inputs:
                raise self.fail(
                    f"model output '{output.name}' is not a declared tensor"
                )

    def start_inputs(self) -> None:
        for spec in self.trace.model.inputs:
            if spec.arrays:
                ids = frozenset(array_ids(spec.arrays))
                for index in ids:
                    self.array(index).memory = True
                self.in_memory[spec.name] = ids

    def run(self) -> None:
        self.check_dtypes()
        self.start_inputs()
        for op in self.trace.ops:
            self.op = op
            self.reach.add(op.deps)
            if isinstance(op, TransferOp):
                self.transfer(op)
            elif isinstance(op, ProgramOp):
                self.program(op)
            elif isinstance(op, MvmOp):
                self.mvm(op)
            elif isinstance(op, VectorOp):
                self.vector(op)
            elif isinstance(op, SwitchOp):
                self.switch(op)
        self.op = None

    # -- names ---------------------------------------------------------------

    def activation(self, name: str) -> None:
        """``name`` is a declared tensor or a model input."""
        if name not in self.tensors and name not in self.inputs:
            raise self.fail(f"reads '{name}', which is not a declared tensor")

    def slice_of(self, weight: str, k: tuple[int, int], n: tuple[int, int]) -> None:
        info = self.weights.get(weight)
        if info is None:
            raise self.fail(f"weight '{weight}' is not listed in the trace's weights")
        rows, cols = info.groups * info.k, info.groups * info.n
        if k[1] > rows or n[1] > cols or k[0] == k[1] or n[0] == n[1]:
            raise self.fail(
                f"slice k [{k[0]}, {k[1]}) n [{n[0]}, {n[1]}) is empty or outside "
                f"weight '{weight}' ({rows} x {cols})"
            )

    # -- arrays --------------------------------------------------------------

    def after(self, earlier: int | None, why: str) -> None:
        assert self.op is not None
        if earlier is not None and not self.reach.depends(self.op.id, earlier):
            raise self.fail(f"{why} op {earlier}, but does not depend on it")

    def overwrite(self, index: int, state: _Array) -> None:
        """The op replaces the array's content or mode: it comes after every
        use since the last write."""
        for user in state.users:
            self.after(user, f"overwrites array {index}, which is used by")
        self.after(state.writer, f"overwrites array {index}, written by")
        assert self.op is not None
        state.writer, state.users = self.op.id, []

    def use(self, index: int, memory: bool) -> _Array:
        state = self.array(index)
        if state.memory != memory:
            mode, needed = (
                ("memory", "compute") if state.memory else ("compute", "memory")
            )
            raise self.fail(
                f"uses array {index} in {needed} mode, but it is in {mode} mode"
            )
        self.after(state.writer, f"uses array {index}, set up by")
        assert self.op is not None
        state.users.append(self.op.id)
        return state

    def program(self, op: ProgramOp) -> None:
        self.slice_of(op.weight, op.k, op.n)
        for index in array_ids(op.arrays):
            state = self.array(index)
            if state.memory:
                raise self.fail(f"programs array {index}, which is in memory mode")
            self.overwrite(index, state)
            state.weight = op.weight

    def mvm(self, op: MvmOp) -> None:
        self.slice_of(op.weight, op.k, op.n)
        self.activation(op.input)
        info = self.tensors.get(op.output)
        if info is None:
            raise self.fail(f"writes '{op.output}', which is not a declared tensor")
        source = self.tensors.get(op.input)
        if source is not None and source.shape and op.v[1] > source.shape[0]:
            raise self.fail(
                f"vectors [{op.v[0]}, {op.v[1]}) are outside the "
                f"{source.shape[0]} rows of '{op.input}'"
            )
        for index in array_ids(op.arrays):
            state = self.use(index, memory=False)
            if state.weight != op.weight:
                held = (
                    f"holds weight '{state.weight}'"
                    if state.weight is not None
                    else "was never programmed"
                )
                raise self.fail(
                    f"computes with weight '{op.weight}' on array {index}, which {held}"
                )

    def vector(self, op: VectorOp) -> None:
        for name in op.outputs:
            if name not in self.tensors:
                raise self.fail(f"writes '{name}', which is not a declared tensor")

    def transfer(self, op: TransferOp) -> None:
        if "memory" not in (op.src, op.dst):
            return
        ids = frozenset(array_ids(op.arrays))
        for index in sorted(ids):
            self.use(index, memory=True)
        if op.src == "memory":
            held = self.in_memory.get(op.tensor, frozenset())
            if not ids <= held:
                raise self.fail(
                    f"reads '{op.tensor}' from memory-mode arrays that do not hold it"
                )
        else:
            self.in_memory[op.tensor] = ids

    def switch(self, op: SwitchOp) -> None:
        ids = set(array_ids(op.arrays))
        to_memory = op.to == "memory"
        for index in sorted(ids):
            state = self.array(index)
            self.overwrite(index, state)
            state.memory, state.weight = to_memory, None
        if not to_memory:
            for name in [n for n, held in self.in_memory.items() if held & ids]:
                del self.in_memory[name]


def check_semantics(trace: Trace) -> None:
    """Raise a one-line CimError if the trace breaks a rule of its meaning."""
    _Checker(trace).run()
