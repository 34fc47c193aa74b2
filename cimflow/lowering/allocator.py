"""Space in a buffer of fixed capacity, handed out so that the schedule can
never overfill it.

The lowering emits ops in program order, but the simulator runs them as
soon as their dependencies allow, so two tensors the program order holds
one after the other may be live at the same time. :class:`SpaceAllocator`
makes the static accounting hold dynamically: it treats the capacity as
bytes that are either never used, or were released by a ``free`` op; an
allocation that reuses released bytes must depend on the ops that released
them (its ``after`` tokens). Any byte then belongs to one live tensor at a
time in every schedule the dependencies allow, and the simulator's
occupancy check can never fail on a trace the lowering wrote.

Which released bytes a grant takes decides what it waits for. Program
order is a poor guide in a pipelined segment: a tensor released early in
program order (the input of a slow layer with one copy) may be freed late
in time, and a grant taking its bytes stalls every band behind it. So a
release states when it is expected to happen (``at``, an estimate from
the lowering), and grants take the soonest released bytes first (the
oldest on a tie).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Token = TypeVar("Token")


@dataclass(order=True)
class _Released(Generic[Token]):
    at: int
    """When the release is expected to happen."""
    order: int
    """Releases so far (the tie-break: the oldest first)."""
    nbytes: int = field(compare=False)
    token: Token = field(compare=False)


@dataclass
class Grant(Generic[Token]):
    """Bytes given to one tensor: the release ops it must wait for."""

    nbytes: int
    after: list[Token] = field(default_factory=lambda: [])
    pieces: list[tuple[int, list[Token]]] = field(default_factory=lambda: [])
    """The granted bytes in order, as ``(bytes, what they wait for)``: the
    fresh bytes first, then each release's."""

    def after_range(self, start: int, stop: int) -> list[Token]:
        """What bytes ``[start, stop)`` of the grant wait for: a tensor
        written in parts (the bands of a pipelined segment) allocates each
        part when it is written, and a part waits only for its bytes."""
        tokens: list[Token] = []
        offset = 0
        for nbytes, after in self.pieces:
            if offset < stop and start < offset + nbytes:
                tokens += after
            offset += nbytes
        return tokens


@dataclass
class SpaceAllocator(Generic[Token]):
    """A buffer of ``capacity`` bytes, allocated first come, first served."""

    capacity: int
    fresh: int = -1
    """Bytes never allocated yet."""
    released: list[_Released[Token]] = field(default_factory=lambda: [])
    """Bytes released by free ops, a heap: the soonest expected first."""
    releases: int = 0
    """Releases so far."""
    live: dict[str, int] = field(default_factory=lambda: {})
    """Bytes of each live allocation, by tensor."""
    peak: int = 0
    """Most bytes live at once, in program order."""
    held: list[_Released[Token]] = field(default_factory=lambda: [])
    """Released bytes no grant may take until :meth:`unhold`."""
    fresh_after: list[Token] = field(default_factory=lambda: [])
    """Ops a grant of fresh bytes waits for (for a buffer whose bytes
    others used before it existed: what ended their use)."""

    def __post_init__(self) -> None:
        if self.fresh < 0:
            self.fresh = self.capacity

    @property
    def available(self) -> int:
        """Bytes an allocation could take now (fresh and released)."""
        return self.fresh + sum(r.nbytes for r in self.released)

    @property
    def used(self) -> int:
        return sum(self.live.values())

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.available

    def allocate(self, tensor: str, nbytes: int) -> Grant[Token]:
        """Take ``nbytes`` for ``tensor``: fresh bytes first, then the
        released ones expected soonest (whose release ops the grant lists,
        in that order). Raises
        ValueError when they do not fit (ask :meth:`fits` first)."""
        if tensor in self.live:
            raise ValueError(f"'{tensor}' is already allocated")
        if nbytes > self.available:
            # what was sized before bytes were held back may need them:
            # taking them may close a cycle, which the caller then finds
            self.unhold()
        if nbytes > self.available:
            raise ValueError(
                f"'{tensor}' needs {nbytes} bytes, {self.available} are free"
            )
        grant: Grant[Token] = Grant(nbytes)
        taken = min(self.fresh, nbytes)
        self.fresh -= taken
        if taken:
            grant.after.extend(self.fresh_after)
            grant.pieces.append((taken, list(self.fresh_after)))
        needed = nbytes - taken
        while needed > 0:
            soonest = self.released[0]
            grant.after.append(soonest.token)
            if soonest.nbytes <= needed:
                grant.pieces.append((soonest.nbytes, [soonest.token]))
                needed -= soonest.nbytes
                heapq.heappop(self.released)
            else:
                grant.pieces.append((needed, [soonest.token]))
                soonest.nbytes -= needed
                needed = 0
        self.live[tensor] = nbytes
        self.peak = max(self.peak, self.used)
        return grant

    def release(
        self, tensor: str, token: Token, at: int = 0, hold: bool = False
    ) -> int:
        """``tensor``'s bytes are released by the op ``token``, expected at
        cycle ``at`` (``hold``: no grant takes them before :meth:`unhold`);
        returns them."""
        nbytes = self.live.pop(tensor)
        if nbytes:
            released = _Released(at, self.releases, nbytes, token)
            if hold:
                self.held.append(released)
            else:
                heapq.heappush(self.released, released)
            self.releases += 1
        return nbytes

    def unhold(self) -> None:
        """Let grants take the bytes :meth:`release` held."""
        for released in self.held:
            heapq.heappush(self.released, released)
        self.held = []
