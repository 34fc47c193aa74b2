"""Where every tensor lives while the schedule runs.

A tensor the schedule produces lives in one level for its whole life: the
global buffer when it fits there (its bytes are allocated by the op that
first writes it and released by a ``free`` op after its last reader),
memory-mode arrays of an ``activations`` buffer when the strategy gave the
segment one and it fits, else DRAM. Ops stream what is in DRAM or in
memory-mode arrays through the interconnect as they run (the global buffer
only passes it through), so nothing ever has to fit the buffer whole.

A *view* (a reshape, the window expansion ``im2col``, the layout fold
``col2im``) occupies nothing of its own: it lives where the tensor it views
lives, and keeps that tensor alive until its own last reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.ir import Attribute, SSAValue

from cimflow.analysis.blocking import Band
from cimflow.cimdialect import cim_meta

Location = cim_meta.Location
Produced = tuple[Band | None, SSAValue | None]
"""A band of a tensor (None: all of it) and the op after which it exists."""


@dataclass(frozen=True)
class ViewRecipe:
    """The zero-cost vector op that made a view: its kind, parameters and
    operand names."""

    kind: str
    params: dict[str, Attribute]
    inputs: tuple[str, ...]


@dataclass
class TensorState:
    """One tensor the schedule keeps (a model input, a produced tensor, or a
    weight loaded for a segment)."""

    name: str
    nbytes: int
    level: Location
    arrays: cim_meta.ArrayRangesAttr | None = None
    """The memory-mode arrays holding it (level memory)."""
    ready: list[Produced] = field(default_factory=lambda: [])
    """The ops after which each band of it exists."""
    readers: list[SSAValue] = field(default_factory=lambda: [])
    """Ops that read it since it was placed (a free waits for them)."""
    allocated: bool = False
    """Its bytes are allocated where it lives (a free must release them)."""
    release_at: int = -1
    """Program position after which nothing reads it (or a view of it)."""
    root: TensorState | None = None
    """For a view: the tensor whose bytes it sees (where it lives, who
    reads it); its own ``ready`` are the ops that made the view."""
    view: ViewRecipe | None = None
    """For a view: how it was made, to make it again where its root moves."""

    @property
    def owner(self) -> TensorState:
        """The tensor that holds the bytes: the root of a view, else itself."""
        return self if self.root is None else self.root.owner

    def tokens(self, rows: Band | None = None) -> list[SSAValue]:
        """The ops after which rows ``rows`` (all of them) exist."""
        return [
            token
            for band, token in self.ready
            if token is not None
            and (
                band is None
                or rows is None
                or (band[0] < rows[1] and rows[0] < band[1])
            )
        ]

    def where(self) -> tuple[Location, cim_meta.ArrayRangesAttr | None]:
        owner = self.owner
        return owner.level, owner.arrays

    def place_attr(self) -> cim_meta.PlaceAttr:
        return cim_meta.PlaceAttr.get(self.name, self.level, self.arrays)


@dataclass
class Ring:
    """A tensor made in ``count`` bands and held in a ring of ``depth`` slots
    of ``band_bytes`` each (:mod:`cimflow.analysis.rings`): band ``j`` goes
    into slot ``j % depth`` once every op that reads band ``j - depth`` has
    read it."""

    depth: int
    count: int
    band_bytes: int
    segment: int = 0
    slots: list[SSAValue] = field(default_factory=lambda: [])
    """The allocation of each slot (made by the band first written there)."""
    gates: dict[int, SSAValue] = field(default_factory=lambda: {})
    """For each band past the first ``depth``: what its writers wait for."""
    waits: dict[int, list[SSAValue]] = field(default_factory=lambda: {})
    """For each such band: the reads of the band its slot held before."""
    band_of: dict[SSAValue, int] = field(default_factory=lambda: {})
    """The ops after which each band exists, to the band."""
    viewed: dict[SSAValue, frozenset[int]] = field(default_factory=lambda: {})
    """Views made of its bands, to those bands."""

    @property
    def nbytes(self) -> int:
        return self.depth * self.band_bytes


def spread_bytes(sizes: list[int], arrays: cim_meta.ArrayRangesAttr) -> int:
    """Bytes tensors of ``sizes`` take of the memory-mode ``arrays``: the
    simulator splits each evenly, the first ``nbytes % count`` arrays taking
    one byte more, so reserving ``ceil(nbytes / count)`` on every array
    keeps each within its capacity whatever else the range holds."""
    count = max(1, arrays.count)
    return sum(count * -(-size // count) for size in sizes)


def arrays_to_hold(size: int, capacity: int) -> int:
    """Memory-mode arrays of ``capacity`` bytes a tensor of ``size`` bytes
    needs on arrays of its own (at least one): the fewest over which
    :func:`spread_bytes` keeps it within each array's capacity
    (``count * ceil(size / count) <= count * capacity`` exactly when
    ``count >= ceil(size / capacity)``)."""
    return max(1, -(-size // max(1, capacity)))


VIEW_KINDS = frozenset({"reshape", "im2col", "col2im"})
"""Vector kinds that make no data of their own: the result is the operand
seen another way (a reshape re-indexes it; ``im2col`` is expanded by the
cores' local buffers as an MVM reads it; ``col2im`` is written in NCHW order
by the MVM's output address generator)."""
