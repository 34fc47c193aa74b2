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
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Token = TypeVar("Token")


@dataclass
class _Released(Generic[Token]):
    nbytes: int
    token: Token


@dataclass
class Grant(Generic[Token]):
    """Bytes given to one tensor: the release ops it must wait for."""

    nbytes: int
    after: list[Token] = field(default_factory=lambda: [])


@dataclass
class SpaceAllocator(Generic[Token]):
    """A buffer of ``capacity`` bytes, allocated first come, first served."""

    capacity: int
    fresh: int = -1
    """Bytes never allocated yet."""
    released: deque[_Released[Token]] = field(default_factory=lambda: deque())
    """Bytes released by free ops, oldest first."""
    live: dict[str, int] = field(default_factory=lambda: {})
    """Bytes of each live allocation, by tensor."""
    peak: int = 0
    """Most bytes live at once, in program order."""
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
        """Take ``nbytes`` for ``tensor``: fresh bytes first, then the oldest
        released ones (whose release ops the grant lists). Raises
        ValueError when they do not fit (ask :meth:`fits` first)."""
        if tensor in self.live:
            raise ValueError(f"'{tensor}' is already allocated")
        if nbytes > self.available:
            raise ValueError(
                f"'{tensor}' needs {nbytes} bytes, {self.available} are free"
            )
        grant: Grant[Token] = Grant(nbytes)
        taken = min(self.fresh, nbytes)
        self.fresh -= taken
        if taken:
            grant.after.extend(self.fresh_after)
        needed = nbytes - taken
        while needed > 0:
            oldest = self.released[0]
            grant.after.append(oldest.token)
            if oldest.nbytes <= needed:
                needed -= oldest.nbytes
                self.released.popleft()
            else:
                oldest.nbytes -= needed
                needed = 0
        self.live[tensor] = nbytes
        self.peak = max(self.peak, self.used)
        return grant

    def release(self, tensor: str, token: Token) -> int:
        """``tensor``'s bytes are released by the op ``token``; returns them."""
        nbytes = self.live.pop(tensor)
        if nbytes:
            self.released.append(_Released(nbytes, token))
        return nbytes
