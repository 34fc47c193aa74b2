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
- a ``load`` from ``memory`` (and an op streaming from memory-mode arrays:
  an ``mvm`` fed from ``memory``, a ``program`` fed from ``memory``, a
  ``vector`` op ``in_from`` ``memory``) reads a tensor those arrays hold
  (written there by a transfer or a stream, or a model input that starts
  there), and a switch of those arrays to compute mode (or a ``free`` of
  them) loses it; an op streaming to memory-mode arrays (``out_to``
  ``memory``) writes its output there; arrays streamed from or to are in
  memory mode, and the op depends on the switch that put them there;
- a ``program`` from a ``tensor`` writes an activation tensor (declared in
  ``tensors`` or a model input) whose matrix view is in ``weights``;
- allocations (:class:`LiveAllocations`, shared with the simulator, which
  times them): an allocation in ``memory`` names memory-mode arrays; a
  ``free`` names a live allocation of that tensor in that level (and cores
  or arrays), and depends on every op that allocated it and every op that
  read that tensor from there since; a switch of arrays to compute mode
  ends the allocations in them (and a model input that starts in arrays is
  allocated there from the start).

Every problem is a one-line :class:`~cimflow.errors.CimError` naming the
trace, the op and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cimflow.cost_model import cores_of_arrays
from cimflow.errors import CimError

from .trace import (
    DTYPES,
    Alloc,
    ArrayRange,
    FreeOp,
    Level,
    MoveOp,
    MvmOp,
    Place,
    ProgramOp,
    SwitchOp,
    Trace,
    TraceOp,
    TransferOp,
    VectorOp,
    in_place,
    switches_to_compute,
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


PlaceKey = tuple[str, Level, tuple[ArrayRange, ...]]
"""A tensor, its level and the cores or arrays there: what a free names."""


def place_key(place: Place) -> PlaceKey:
    return place.tensor, place.level, place.units


@dataclass(frozen=True, slots=True)
class Contribution:
    """One allocation: ``alloc`` made by op ``op`` (-1: a model input that
    starts the run in memory-mode arrays)."""

    op: int
    alloc: Alloc


class LiveAllocations:
    """The allocations live at a point of a trace, walked in id order.

    Allocations of one place add up; a free of the place ends all of them;
    a switch of arrays to compute mode ends the ``memory`` allocations that
    touch them. Contributions are numbered in the order they are made.
    """

    def __init__(self) -> None:
        self.contributions: list[Contribution] = []
        self.live: dict[PlaceKey, list[int]] = {}

    def allocate(self, op: int, alloc: Alloc) -> int:
        self.contributions.append(Contribution(op, alloc))
        index = len(self.contributions) - 1
        self.live.setdefault(place_key(alloc), []).append(index)
        return index

    def release(self, key: PlaceKey) -> list[int] | None:
        """End every allocation of ``key``: their numbers, or None when none
        is live."""
        return self.live.pop(key, None)

    def drop_arrays(self, arrays: set[int]) -> list[int]:
        """End the ``memory`` allocations that touch ``arrays``."""
        ended: list[int] = []
        for key in [
            k
            for k in self.live
            if k[1] == "memory" and any(a in arrays for a in array_ids(k[2]))
        ]:
            ended += self.live.pop(key)
        return ended


def start_allocations(trace: Trace, live: LiveAllocations) -> None:
    """Model inputs that start in memory-mode arrays are allocated there."""
    sizes = {t.name: t.nbytes for t in trace.tensors}
    for spec in trace.model.inputs:
        if spec.arrays:
            live.allocate(
                -1, Alloc(spec.name, "memory", spec.arrays, sizes.get(spec.name, 0))
            )


def releases(trace: Trace) -> tuple[list[Contribution], dict[int, list[int]]]:
    """Every allocation of the trace, and for each op that ends some (a
    ``free``, a switch to compute mode) their numbers. A free of a place
    with nothing live ends nothing here (the meaning check refuses it)."""
    live = LiveAllocations()
    start_allocations(trace, live)
    ended: dict[int, list[int]] = {}
    for op in trace.ops:
        if isinstance(op, SwitchOp | ProgramOp) and switches_to_compute(op):
            dropped = live.drop_arrays(set(array_ids(op.arrays)))
            if dropped:
                ended[op.id] = dropped
        elif isinstance(op, FreeOp):
            freed = [i for f in op.frees for i in live.release(place_key(f)) or []]
            if freed:
                ended[op.id] = freed
        for alloc in op.allocs:
            live.allocate(op.id, alloc)
    return live.contributions, ended


def op_reads(
    op: TraceOp, trace: Trace
) -> Iterator[tuple[str, Level, tuple[ArrayRange, ...]]]:
    """The tensors an op reads from the levels allocations track, and the
    cores or arrays it reads them from (none for the global buffer)."""
    target = trace.target
    if isinstance(op, TransferOp):
        if op.src == "memory":
            yield op.tensor, "memory", op.arrays
        elif op.src == "local":
            yield op.tensor, "local", op.cores
        elif op.src == "buffer":
            yield op.tensor, "buffer", ()
    elif isinstance(op, MoveOp):
        if op.direction == "in":
            yield op.tensor, "buffer", ()
        else:
            yield op.tensor, "local", op.cores
    elif isinstance(op, MvmOp):
        if op.feed == "memory":
            yield op.input, "memory", op.feed_arrays
        elif op.feed == "buffer":
            yield op.input, "buffer", ()
        elif op.feed == "local":
            yield op.input, "local", cores_of_arrays(target, op.arrays)
    elif isinstance(op, VectorOp):
        for name in op.inputs:
            if not op.in_bytes:
                yield name, "local", op.cores
            elif op.in_from == "memory":
                yield name, "memory", op.in_arrays
            elif op.in_from == "buffer":
                yield name, "buffer", ()
    elif isinstance(op, ProgramOp):
        if in_place(op):
            yield op.weight, "memory", op.arrays
        elif op.feed == "memory":
            yield op.weight, "memory", op.feed_arrays
        elif op.feed == "buffer":
            yield op.weight, "buffer", ()


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
        self.live = LiveAllocations()
        self.readers: dict[tuple[str, Level], dict[PlaceKey, list[int]]] = {}
        """Per tensor and level, the ops that read each live place of it
        since it was allocated."""

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
        start_allocations(self.trace, self.live)

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
            elif isinstance(op, FreeOp):
                self.free(op)
            self.record_reads(op)
            self.allocate(op)
        self.op = None

    # -- allocations ---------------------------------------------------------

    def allocate(self, op: TraceOp) -> None:
        for alloc in op.allocs:
            if alloc.level == "memory":
                for index in array_ids(alloc.units):
                    state = self.array(index)
                    if not state.memory:
                        raise self.fail(
                            f"allocates '{alloc.tensor}' in array {index}, which "
                            "is in compute mode"
                        )
                    if state.writer != op.id:
                        self.after(
                            state.writer, f"allocates in array {index}, set up by"
                        )
                    state.users.append(op.id)
            key = place_key(alloc)
            self.live.allocate(op.id, alloc)
            self.readers.setdefault(key[:2], {}).setdefault(key, [])

    def record_reads(self, op: TraceOp) -> None:
        for tensor, level, units in op_reads(op, self.trace):
            places = self.readers.get((tensor, level))
            if not places:
                continue
            read = set(array_ids(units))
            for key, readers in places.items():
                if level == "buffer" or read & set(array_ids(key[2])):
                    readers.append(op.id)

    def forget_readers(self, key: PlaceKey) -> list[int]:
        places = self.readers.get(key[:2], {})
        readers = places.pop(key, [])
        if not places:
            self.readers.pop(key[:2], None)
        return readers

    def free(self, op: FreeOp) -> None:
        for place in op.frees:
            key = place_key(place)
            ended = self.live.release(key)
            if ended is None:
                where = place.level + (
                    f" {'cores' if place.level == 'local' else 'arrays'} "
                    f"{_ranges_text(place.units)}"
                    if place.units
                    else ""
                )
                raise self.fail(
                    f"frees '{place.tensor}' in {where}, which holds no live "
                    "allocation of it"
                )
            for index in ended:
                maker = self.live.contributions[index].op
                if maker >= 0:
                    self.after(maker, f"frees '{place.tensor}' allocated by")
            for reader in self.forget_readers(key):
                self.after(reader, f"frees '{place.tensor}', which is read by")
            if place.level == "memory":
                held = self.in_memory.get(place.tensor)
                if held is not None:
                    left = held - set(array_ids(place.units))
                    if left:
                        self.in_memory[place.tensor] = frozenset(left)
                    else:
                        del self.in_memory[place.tensor]

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

    def streams_from_memory(
        self, names: Sequence[str], arrays: Sequence[ArrayRange], what: str
    ) -> None:
        """The op streams ``names`` from memory-mode ``arrays``: they hold
        them (every array one of them, each of them some array)."""
        ids = frozenset(array_ids(arrays))
        for index in sorted(ids):
            self.use(index, memory=True)
        if not names:
            raise self.fail(
                f"{what} from memory-mode arrays but reads no activation tensor"
            )
        held: set[int] = set()
        for name in names:
            holding = self.in_memory.get(name, frozenset()) & ids
            if not holding or (len(names) == 1 and holding != ids):
                raise self.fail(
                    f"{what} '{name}' from memory-mode arrays that do not hold it"
                )
            held |= holding
        if not ids <= held:
            raise self.fail(
                f"{what} from array {min(ids - held)}, which holds none of "
                f"{', '.join(repr(n) for n in names)}"
            )

    def streams_to_memory(
        self, names: Sequence[str], arrays: Sequence[ArrayRange]
    ) -> None:
        """The op streams ``names`` to memory-mode ``arrays``: they hold
        them from now on (with the arrays that held them before)."""
        ids = frozenset(array_ids(arrays))
        for index in sorted(ids):
            self.use(index, memory=True)
        for name in names:
            self.in_memory[name] = self.in_memory.get(name, frozenset()) | ids

    def program(self, op: ProgramOp) -> None:
        self.slice_of(op.weight, op.k, op.n)
        activation = op.weight in self.tensors or op.weight in self.inputs
        if op.source == "tensor" and not activation:
            raise self.fail(
                f"programs arrays with tensor '{op.weight}', which is not a "
                "declared tensor"
            )
        if in_place(op):
            self.switch_in_place(op)
            return
        if op.feed == "memory":
            self.streams_from_memory([op.weight], op.feed_arrays, "programs")
        for index in array_ids(op.arrays):
            state = self.array(index)
            if state.memory:
                raise self.fail(f"programs array {index}, which is in memory mode")
            self.overwrite(index, state)
            state.weight = op.weight

    def switch_in_place(self, op: ProgramOp) -> None:
        """A program in place: its memory-mode arrays, every one holding
        its weight, switch to compute mode and compute with it."""
        ids = frozenset(array_ids(op.arrays))
        held = self.in_memory.get(op.weight, frozenset())
        if not ids <= held:
            raise self.fail(
                f"switches array {min(ids - held)} to compute weight "
                f"'{op.weight}' in place, but it does not hold it"
            )
        for index in sorted(ids):
            state = self.array(index)
            if not state.memory:
                raise self.fail(
                    f"switches array {index} to compute in place, but it is in "
                    "compute mode"
                )
            self.overwrite(index, state)
            state.memory, state.weight = False, op.weight
        self.end_memory_mode(set(ids))

    def end_memory_mode(self, ids: set[int]) -> None:
        """Arrays ``ids`` leave memory mode: what they held is gone."""
        for name in [n for n, arrays in self.in_memory.items() if arrays & ids]:
            del self.in_memory[name]
        for index in self.live.drop_arrays(ids):
            self.forget_readers(place_key(self.live.contributions[index].alloc))

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
        if op.feed == "memory":
            self.streams_from_memory([op.input], op.feed_arrays, "is fed")
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
        if op.out_to == "memory":
            self.streams_to_memory([op.output], op.out_arrays)

    def vector(self, op: VectorOp) -> None:
        for name in op.outputs:
            if name not in self.tensors:
                raise self.fail(f"writes '{name}', which is not a declared tensor")
        if op.in_from == "memory":
            activations = [
                name
                for index, name in enumerate(op.inputs)
                if (name in self.tensors or name in self.inputs)
                and not (
                    # partial sums on chip are added there, whatever else
                    # (a residual) the op streams from memory arrays
                    index == 0 and op.op == "accumulate" and name not in self.in_memory
                )
            ]
            self.streams_from_memory(activations, op.in_arrays, "streams")
        if op.out_to == "memory":
            self.streams_to_memory(op.outputs, op.out_arrays)

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
            self.end_memory_mode(ids)


def _ranges_text(ranges: Sequence[ArrayRange]) -> str:
    return ", ".join(f"[{first}, {stop})" for first, stop in ranges)


def check_semantics(trace: Trace) -> None:
    """Raise a one-line CimError if the trace breaks a rule of its meaning."""
    _Checker(trace).run()
