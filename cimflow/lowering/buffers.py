"""Buffer placement: where each tensor lives (global buffer, activations
memory buffer, DRAM), when its bytes are freed, and the loads, stores and
evictions that move it between levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from xdsl.ir import Operation, SSAValue

from cimflow.analysis.allocation import segment_of
from cimflow.analysis.blocking import Band, BlockPlan
from cimflow.analysis.rings import ring_band_bytes, ring_depth, ring_fits
from cimflow.cimdialect import cim_meta
from cimflow.errors import CimError
from cimflow.lowering.kv_cache import KvCache
from cimflow.lowering.placement import (
    Location,
    Ring,
    TensorState,
    arrays_to_hold,
    spread_bytes,
)
from cimflow.lowering.state import order_by_dependences


class BufferPlacement(KvCache):
    """Where tensors live and how they move between storage levels."""

    def state(self, name: str) -> TensorState:
        return self.tensors[name]

    def last_reader(self, value: SSAValue) -> int:
        return self.last_use.get(value, self.position)

    def place(
        self,
        names: Sequence[str],
        values: Sequence[SSAValue],
        ring: Ring | None = None,
    ) -> tuple[list[TensorState], list[cim_meta.AllocAttr], list[SSAValue]]:
        """Where an op's new tensors live (together: the global buffer when
        they all fit, an activations buffer when they all fit there, else
        DRAM), the allocations its first writer makes, and what that writer
        waits for (space released by earlier frees). A tensor held in a
        ``ring`` takes the ring's bytes of the global buffer."""
        sizes = [self.tensor_bytes(v) for v in values]
        held = sizes if ring is None else [ring.nbytes]
        states: list[TensorState] = []
        for name, value, nbytes in zip(names, values, sizes, strict=True):
            state = TensorState(name, nbytes, Location.DRAM)
            state.release_at = self.last_reader(value)
            self.tensors[name] = state
            states.append(state)
        if sum(held) <= self.buffer.available:
            after: list[SSAValue] = []
            for state, value, nbytes in zip(states, values, held, strict=True):
                grant = self.buffer.allocate(state.name, nbytes)
                self.grants[state.name] = grant
                after += grant.after
                state.level, state.allocated = Location.BUFFER, True
                if value in self.output_readers:
                    # a model output leaves for DRAM when its readers are
                    # done: kept to the end, the outputs of every layer (a
                    # decoder's present keys and values) fill the buffer
                    reader, label = self.output_readers[value]
                    self.early_stores[state.name] = label
                    state.release_at = max(self.position, reader)
                self.release_after(state)
            allocs = [
                cim_meta.AllocAttr.get(s.name, nbytes, Location.BUFFER)
                for s, nbytes in zip(states, held, strict=True)
            ]
            if ring is not None:
                ring.segment = self.segment
                self.rings[states[0].name] = ring
            return states, allocs, after
        spill = self.spill_arrays
        taken = 0 if spill is None else spread_bytes(sizes, spill[0])
        if spill is not None and spill[1] >= taken:
            arrays, free = spill
            self.spill_arrays = (arrays, free - taken)
            for state in states:
                state.level, state.arrays, state.allocated = (
                    Location.MEMORY,
                    arrays,
                    True,
                )
                self.release_after(state)
            allocs = [
                cim_meta.AllocAttr.get(s.name, s.nbytes, Location.MEMORY, arrays)
                for s in states
            ]
            return states, allocs, [t for t in (self.to_memory or self.barrier,) if t]
        return states, [], []

    def place_view(self, name: str, value: SSAValue, of: TensorState) -> TensorState:
        """A view ``name`` of ``of``: it lives where ``of`` does and keeps
        it alive until its own last reader."""
        state = TensorState(name, 0, Location.DRAM, root=of)
        state.release_at = self.last_reader(value)
        self.tensors[name] = state
        owner = of.owner
        if self.last_reader(value) > owner.release_at:
            owner.release_at = self.last_reader(value)
            if owner.allocated:
                self.release_after(owner)
        return state

    def release_after(self, state: TensorState) -> None:
        self.releases.setdefault(state.release_at, []).append(state)

    def read(self, state: TensorState, token: SSAValue) -> None:
        """``token`` reads ``state``: what holds its bytes is freed after it
        (and, in a ring, the slot of each band it reads is written again
        after it)."""
        owner = state.owner
        owner.readers.append(token)
        ring = self.rings.get(owner.name)
        if ring is None:
            return
        for band in sorted(self.bands_read(ring, token)):
            later = band + ring.depth
            if later < ring.count:
                ring.waits.setdefault(later, []).append(token)

    def bands_read(self, ring: Ring, token: SSAValue) -> frozenset[int]:
        """The bands of a ringed tensor the op ``token`` reads: those whose
        ops it waits for, directly or through the views made of them."""
        found: set[int] = set()
        for operand in cast(Operation, token.owner).operands:
            band = ring.band_of.get(operand)
            if band is not None:
                found.add(band)
            else:
                found |= self.viewed_bands(ring, operand)
        return frozenset(found)

    def viewed_bands(self, ring: Ring, value: SSAValue) -> frozenset[int]:
        """The bands of a ringed tensor a view op ``value`` was made of."""
        known = ring.viewed.get(value)
        if known is not None:
            return known
        bands: frozenset[int] = frozenset()
        if value in self.views:
            bands = self.bands_read(ring, value)
        ring.viewed[value] = bands
        return bands

    def holds(self, release: SSAValue) -> bool:
        """Whether the bytes a free releases wait for the segment's end
        before another tensor takes them: in a segment of :attr:`holding`,
        a free that waits for a ring's gate, which an op taking its bytes
        (a reader of the ring) would wait for too, maybe for a band the
        ring holds after the one it reads, a cycle (:meth:`close_rings`)."""
        return self.segment in self.holding and release in self.gated

    def plan_ring(
        self, value: SSAValue, plan: BlockPlan | None, steps: Sequence[Band | None]
    ) -> Ring | None:
        """A ring for ``value``, made in ``steps`` by the op being lowered,
        when it does not fit the global buffer whole but a ring of its bands
        does (:func:`~cimflow.analysis.rings.ring_depth`)."""
        if plan is None or len(steps) < 2 or self.names[value] in self.unringed:
            return None
        nbytes = self.tensor_bytes(value)
        available = self.buffer.available
        spill = self.spill_arrays
        if nbytes <= available or (
            spill is not None and spread_bytes([nbytes], spill[0]) <= spill[1]
        ):
            return None  # whole in the buffer, or in the activations buffer
        depth = ring_depth(
            self.body,
            self.position,
            value,
            self.plans,
            self.dataflows[self.segment][1],
            segment_of,
        )
        if depth is None:
            return None
        band_bytes = ring_band_bytes(
            nbytes, plan.output.rows, [band for band in steps if band is not None]
        )
        if not ring_fits(depth, band_bytes, available):
            return None
        return Ring(depth, len(steps), band_bytes)

    def ring_slot(self, target: TensorState, band: int) -> SSAValue:
        """What the writers of ``band`` of a ringed tensor wait for: the
        first ``depth`` bands allocate a slot each (waiting only for the
        slot's bytes), a later band waits for its slot's allocation and
        (:meth:`close_rings`) for the reads of the band it held before."""
        ring = self.rings[target.name]
        slot = band % ring.depth
        if band < ring.depth:
            start = slot * ring.band_bytes
            token = self.allocate_bytes(
                target,
                start,
                start + ring.band_bytes,
                f"allocate {target.name} slot {slot}",
            )
            ring.slots.append(token)
            return token
        gate = self.emit(
            cim_meta.SegmentOp(
                self.segment,
                [ring.slots[slot]],
                label=f"{target.name} band {band} into slot {slot}",
            )
        )
        ring.gates[band] = gate
        self.gated.add(gate)
        return gate

    def close_rings(self) -> set[str]:
        """Make each gate of a ringed tensor wait for the reads of the band
        its slot held before (ops emitted after it), and put the block back
        in an order where every op follows what it waits for. When those
        waits close cycles (a read that waits, through an allocation, for
        a band the ring holds after it), the names of the ringed tensors on
        any of them, to lower again holding their segments' released bytes
        back (or, if it already did, without those rings); else none."""
        gates: dict[Operation, str] = {}
        for name, ring in self.rings.items():
            for band, gate in ring.gates.items():
                waits = ring.waits.get(band)
                op = cast(Operation, gate.owner)
                if waits:
                    # behind the reads it now waits for (the order below
                    # puts it right after them)
                    op.operands = list(dict.fromkeys([*op.operands, *waits]))
                    op.detach()
                    self.block.add_op(op)
                gates[op] = name
        if not gates:
            return set()
        looped: set[str] = set()
        for cycle in order_by_dependences(self.block):
            through = {gates[op] for op in cycle if op in gates}
            if not through:
                raise CimError(
                    f"the schedule's ops wait for each other in a cycle at "
                    f"'{cycle[0].name}', through no ring buffer"
                )
            looped |= through
        return looped

    def release_finished(self) -> None:
        """Free what nothing reads after the op just lowered."""
        for state in self.releases.pop(self.position, []):
            if state.allocated and state.release_at <= self.position:
                self.free(state)

    def free(self, state: TensorState) -> SSAValue:
        stored = (
            state.name in self.early_stores
            and state.level == Location.BUFFER
            and self.position < self.end
        )
        if stored:
            self.read(
                state,
                self.emit(
                    cim_meta.StoreOp(
                        state.name,
                        max(1, state.nbytes),
                        Location.BUFFER,
                        Location.DRAM,
                        self.deps(*state.tokens()),
                        self.segment,
                        label=self.early_stores[state.name],
                    )
                ),
            )
        tokens = [t for _, t in state.ready if t is not None] + state.readers
        token = self.emit(
            cim_meta.FreeOp(
                [state.place_attr()],
                self.deps(*tokens),
                self.segment,
                label=state.name,
            )
        )
        state.allocated = False
        if state.level == Location.BUFFER:
            self.buffer.release(
                state.name, token, self.expected[token], self.holds(token)
            )
            self.grants.pop(state.name, None)
        if stored:
            state.level = Location.DRAM
        return token

    def stream_level(
        self, states: Sequence[TensorState]
    ) -> tuple[Location, cim_meta.ArrayRangesAttr | None]:
        """Where an op streams operands in ``states`` from: the global
        buffer when all are there; else the one level the others share
        (DRAM wins over memory-mode arrays: its bytes are charged as DRAM's,
        an over-estimate for what is on chip)."""
        places = [s.where() for s in states]
        levels = {level for level, _ in places}
        if levels <= {Location.BUFFER}:
            return Location.BUFFER, None
        if Location.DRAM in levels:
            return Location.DRAM, None
        arrays = [a for level, a in places if level == Location.MEMORY]
        if len({a for a in arrays if a is not None}) == 1:
            return Location.MEMORY, arrays[0]
        return Location.DRAM, None

    def open_output(
        self,
        target: TensorState,
        allocs: Sequence[cim_meta.AllocAttr],
        after: Sequence[SSAValue],
    ) -> SSAValue | None:
        """The point where a new tensor's bytes are allocated, which every op
        writing it waits for (None when it lives in DRAM)."""
        if not allocs:
            return None
        return self.emit(
            cim_meta.SegmentOp(
                self.segment,
                self.deps(*after),
                label=f"allocate {target.name}",
                allocs=list(allocs),
            )
        )

    def writes_in_parts(
        self,
        targets: Sequence[TensorState],
        allocs: Sequence[cim_meta.AllocAttr],
        steps: int,
    ) -> bool:
        """Whether an op writing ``targets`` in ``steps`` bands allocates
        each band as it writes it (:meth:`open_part`): one tensor, placed in
        the global buffer."""
        return (
            steps > 1
            and len(targets) == 1
            and bool(allocs)
            and targets[0].level == Location.BUFFER
        )

    def open_part(
        self, target: TensorState, part: tuple[int, int], whole: int
    ) -> SSAValue | None:
        """The allocation of rows ``[start, stop)`` (an MVM output's
        vectors) of the ``whole`` rows of a tensor in the global buffer
        written in parts (the bands of a pipelined segment), which the
        part's writers wait for: it waits only for the releases of its own
        bytes of the tensor's grant, so the first band is not held up by
        space freed at the end of a layer."""
        start = part[0] * target.nbytes // whole
        stop = part[1] * target.nbytes // whole
        if stop <= start:
            return None
        return self.allocate_bytes(
            target, start, stop, f"allocate {target.name}[{part[0]}:{part[1]}]"
        )

    def allocate_bytes(
        self, target: TensorState, start: int, stop: int, label: str
    ) -> SSAValue:
        """The allocation of bytes ``[start, stop)`` of a tensor's grant of
        the global buffer, waiting only for the releases of those bytes."""
        return self.emit(
            cim_meta.SegmentOp(
                self.segment,
                self.deps(*self.grants[target.name].after_range(start, stop)),
                label=label,
                allocs=[
                    cim_meta.AllocAttr.get(target.name, stop - start, Location.BUFFER)
                ],
            )
        )

    def passing_alloc(
        self, place: str, nbytes: int
    ) -> tuple[cim_meta.AllocAttr, list[SSAValue]]:
        grant = self.buffer.allocate(place, nbytes)
        self.passing[place] = place
        return cim_meta.AllocAttr.get(place, nbytes, Location.BUFFER), grant.after

    def release_passing(self, place: str, after: Sequence[SSAValue]) -> None:
        del self.passing[place]
        token = self.emit(
            cim_meta.FreeOp(
                [cim_meta.PlaceAttr.get(place, Location.BUFFER)],
                list(after),
                self.segment,
                label=place,
            )
        )
        self.buffer.release(place, token, self.expected[token], self.holds(token))

    def load_to_buffer(
        self,
        name: str,
        nbytes: int,
        after: Sequence[SSAValue | None],
        source: TensorState | None = None,
        from_level: Location = Location.DRAM,
    ) -> TensorState:
        """A weight, bias or tensor loaded into the global buffer, from DRAM
        or from the memory-mode arrays ``source`` holds it in, when it fits
        there; else a state where it is (DRAM for a weight), for its readers
        to stream."""
        state = TensorState(name, nbytes, from_level)
        if nbytes > self.buffer.available or name in self.buffer.live:
            return state
        grant = self.buffer.allocate(name, nbytes)
        token = self.emit(
            cim_meta.LoadOp(
                name,
                nbytes,
                Location.DRAM if source is None else Location.MEMORY,
                Location.BUFFER,
                self.deps(*after, *grant.after),
                self.segment,
                arrays=None if source is None else source.arrays,
                label=name,
                allocs=[cim_meta.AllocAttr.get(name, nbytes, Location.BUFFER)],
            )
        )
        if source is not None:
            self.read(source, token)
        state.level, state.allocated = Location.BUFFER, True
        state.ready = [(None, token)]
        return state

    def stage_input(self, state: TensorState) -> TensorState | None:
        """A streamed weight's input that lives in DRAM, loaded whole into
        the segment's ``inputs`` buffer (once the input staged there before
        is freed) for every chunk to stream from there; None when the
        segment has no such buffer, the input lives elsewhere or does not
        fit (:func:`arrays_to_hold`)."""
        staging = self.input_arrays
        if staging is None or state.where()[0] != Location.DRAM:
            return None
        arrays = staging[0]
        nbytes = max(1, state.owner.nbytes)
        per_array = self.hw.dual_mode.memory_capacity_bytes
        if arrays.count < arrays_to_hold(nbytes, per_array):
            return None
        token = self.emit(
            cim_meta.LoadOp(
                state.name,
                nbytes,
                Location.DRAM,
                Location.MEMORY,
                self.deps(
                    *state.tokens(), self.to_memory or self.barrier, self.staged_input
                ),
                self.segment,
                arrays=arrays,
                label=state.name,
                allocs=[
                    cim_meta.AllocAttr.get(state.name, nbytes, Location.MEMORY, arrays)
                ],
            )
        )
        staged = TensorState(
            state.name, nbytes, Location.MEMORY, arrays, allocated=True
        )
        staged.ready = [(None, token)]
        return staged

    def copy_to_dram(self, state: TensorState) -> TensorState:
        """A copy in DRAM of a tensor in the global buffer or in memory-mode
        arrays."""
        level, arrays = state.where()
        stored = self.emit(
            cim_meta.StoreOp(
                state.name,
                max(1, state.owner.nbytes),
                level,
                Location.DRAM,
                self.deps(*state.tokens()),
                self.segment,
                arrays=arrays if level == Location.MEMORY else None,
                label=state.name,
            )
        )
        self.read(state, stored)
        copy = TensorState(state.name, state.nbytes, Location.DRAM)
        copy.ready = [(None, stored)]
        return copy

    def read_apart(self, states: Sequence[TensorState]) -> bool:
        """Whether an op may stream activations that all lie in DRAM, or
        all in one range of memory-mode arrays, beside weights and biases
        the segment loaded into the global buffer: the vector units read
        both at once (the op's bytes are charged as the activations'
        level's, an over-estimate)."""
        loaded = [s for s in states if self.segment_loads.get(s.name) is s]
        activations = {s.where() for s in states if s not in loaded}
        return (
            len(activations) == 1
            and next(iter(activations))[0] != Location.BUFFER
            and all(s.level == Location.BUFFER for s in loaded)
        )

    def common_level(
        self, sources: Sequence[tuple[TensorState | None, int]]
    ) -> tuple[list[tuple[TensorState | None, int]], list[TensorState]]:
        """Operands an op streams from one level: when they lie in different
        levels, those outside the global buffer are loaded into it first
        (copies the op frees once it has read them); activations too large
        for it stay where they are when :meth:`read_apart` allows, else
        every operand streams from DRAM."""
        states = [state for state, _ in sources if state is not None]
        places = {state.where() for state in states}
        if len(places) <= 1:
            return list(sources), []
        result: list[tuple[TensorState | None, int]] = []
        copies: list[TensorState] = []
        for state, nbytes in sources:
            if state is None or state.where()[0] == Location.BUFFER:
                result.append((state, nbytes))
                continue
            owner = state.owner
            level, _ = state.where()
            copy = self.load_to_buffer(
                state.name,
                max(1, owner.nbytes if state.root is None else nbytes),
                state.tokens(),
                source=owner if level == Location.MEMORY else None,
                from_level=level,
            )
            if copy.level == Location.BUFFER:
                copies.append(copy)
                result.append((copy, nbytes))
            else:
                result.append((state, nbytes))
        states = [state for state, _ in result if state is not None]
        if len({state.where() for state in states}) > 1 and not self.read_apart(states):
            # what still lies elsewhere is too large for the buffer: write
            # the other operands to DRAM too, and stream all from there
            result = [
                (self.copy_to_dram(state), nbytes)
                if state is not None and state.where()[0] != Location.DRAM
                else (state, nbytes)
                for state, nbytes in result
            ]
        return result, copies

    def evict_spills(
        self, keep: tuple[cim_meta.ArrayRangesAttr, int] | None
    ) -> list[SSAValue]:
        """Move tensors out of memory arrays this segment takes back (one
        nothing reads again is freed)."""
        tokens: list[SSAValue] = []
        for state in list(self.tensors.values()):
            if state.level != Location.MEMORY or not state.allocated:
                continue
            if keep is not None and state.arrays == keep[0]:
                continue
            if state.release_at >= self.position:
                stored = self.emit(
                    cim_meta.StoreOp(
                        state.name,
                        max(1, state.nbytes),
                        Location.MEMORY,
                        Location.DRAM,
                        self.deps(*state.tokens(), self.barrier),
                        self.segment,
                        arrays=state.arrays,
                        label=state.name,
                    )
                )
                self.read(state, stored)
                tokens.append(self.free(state))
                state.level, state.arrays = Location.DRAM, None
                state.ready = [(None, stored)]
                state.readers = []
                self.remake_views(state)
            else:
                tokens.append(self.free(state))
        return tokens

    def remake_views(self, moved: TensorState) -> None:
        """Views of ``moved`` still to be read, made again where it now
        lives (a view is no data: making it costs nothing)."""
        for state in list(self.tensors.values()):
            recipe = state.view
            if (
                recipe is None
                or state.owner is not moved
                or state.release_at < self.position
            ):
                continue
            level, arrays = moved.where()
            sources = [self.tensors[n] for n in recipe.inputs if n in self.tensors]
            token = self.emit(
                cim_meta.VectorOp(
                    recipe.kind,
                    0,
                    list(recipe.inputs),
                    [state.name],
                    self.deps(*(t for s in sources for t in s.tokens())),
                    self.segment,
                    label=recipe.kind,
                    params=recipe.params,
                    cores=self.all_cores,
                    in_from=level,
                    in_arrays=arrays if level == Location.MEMORY else None,
                    out_to=level,
                    out_arrays=arrays if level == Location.MEMORY else None,
                )
            )
            state.ready = [(None, token)]
