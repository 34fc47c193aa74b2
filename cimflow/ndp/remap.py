"""Window-based remapping of cold neurons between DIMMs (Sec. IV-D,
Algorithm 1, Fig. 8b).

Cold neurons are computed by the NDP unit of the DIMM that stores them, so a
block's DIMM time is that of its busiest DIMM. Which neurons fire drifts from
token to token: over a window of 5 tokens the DIMMs' loads stay within 5 %
of each other, over longer spans they diverge by 1.2-2.5x. Every
:data:`WINDOW_TOKENS` tokens the host therefore rebalances each block
(``shared/reference/hermes.md`` §7):

1. ``A_i`` is neuron ``i``'s activation count over the window, and DIMM
   ``j``'s load is ``Z_j = sum of A_i over the neurons on DIMM j``;
2. the DIMMs are sorted by load, heaviest first, and paired: the heaviest
   with the lightest, the second with the second-lightest, and so on (the
   middle DIMM of an odd count stays out);
3. within each pair the heavy DIMM hands its most-activated neurons to the
   light one while that strictly lowers the pair's maximum load.

The paper's pseudocode reads ``while Z_id <= Z_{J-id}``; as hermes.md notes,
its intent is ``>`` (move while the heavy side is heavier) and the partner
index is ``J-1-id``. Taken literally, "move the most-activated neuron while
the heavy side is heavier" can overshoot and raise the pair's maximum, so
here a neuron with count ``c`` moves only if ``Z_light + c < Z_heavy`` (and
``c > 0``), and the pair stops at the first neuron, in order of decreasing
count, that fails this. Each move then goes from the heavier DIMM of the
pair to the lighter and lowers the pair's maximum; the imbalance left is at
most the count of the neuron that stopped the pair (or, when the last move
tipped the balance, below the count of that neuron), so at most the window's
length in tokens when counts are per token.

The moved neurons' weights travel over DIMM-link (25 GB/s per link); the
pairs are disjoint, so their transfers run on different bridges at once
(:attr:`RemapResult.busiest_pair_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cimflow.errors import CimError

IntArray = NDArray[np.int64]

WINDOW_TOKENS = 5
"""Tokens per remapping window (Sec. IV-D)."""

OFF_DIMM = -1
"""``dimm_of`` of a neuron no DIMM computes (a hot, GPU-resident neuron)."""


@dataclass(frozen=True)
class RemapResult:
    """One window's remapping of one block.

    ``moved[i]`` went from DIMM ``source[i]`` to ``destination[i]``, in pair
    order and, within a pair, by decreasing count. ``pairs[p]`` is pair
    ``p``'s (heavy, light) DIMMs and ``pair_bytes[p]`` the bytes it moved.
    """

    dimm_of: NDArray[np.integer[Any]]
    moved: IntArray
    source: IntArray
    destination: IntArray
    loads_before: IntArray
    loads_after: IntArray
    pairs: IntArray
    pair_bytes: IntArray

    @property
    def moved_bytes(self) -> int:
        """Bytes moved over all DIMM-links."""
        return int(self.pair_bytes.sum())

    @property
    def busiest_pair_bytes(self) -> int:
        """Bytes of the pair that moved the most: the pairs transfer in
        parallel over disjoint links, so this sets the transfer time."""
        return int(self.pair_bytes.max()) if self.pair_bytes.size else 0


def dimm_loads(dimm_of: ArrayLike, counts: ArrayLike, dimms: int) -> IntArray:
    """``Z_j``: the summed counts of the neurons on each DIMM (neurons off
    the DIMMs, ``dimm_of < 0``, count for none)."""
    dimm, activations = _checked(dimm_of, counts, dimms)
    return _loads(dimm, activations, dimms)


def _loads(dimm: IntArray, activations: IntArray, dimms: int) -> IntArray:
    # Shifted by one, the off-DIMM neurons land in bin 0, which is dropped.
    summed = np.bincount(dimm + 1, weights=activations, minlength=dimms + 1)
    return summed[1:].astype(np.int64)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(
    dimm_of: ArrayLike, counts: ArrayLike, dimms: int
) -> tuple[IntArray, IntArray]:
    if not _is_integer(dimms) or dimms < 1:
        raise CimError(f"DIMM count must be an integer >= 1, got {dimms!r}")
    dimm = np.asarray(dimm_of)
    activations = np.asarray(counts)
    for name, values in (("dimm_of", dimm), ("counts", activations)):
        if values.ndim != 1 or not (
            np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_
        ):
            raise CimError(f"{name} must be a vector of integers, got {values.dtype}")
    if dimm.shape != activations.shape:
        raise CimError(
            f"dimm_of has {dimm.size} neurons but counts has {activations.size}"
        )
    if dimm.size:
        if dimm.min() < OFF_DIMM or dimm.max() >= dimms:
            raise CimError(
                f"dimm_of must hold DIMM indices 0..{dimms - 1} or {OFF_DIMM}, "
                f"got {int(dimm.min())}..{int(dimm.max())}"
            )
        if activations.min() < 0:
            raise CimError(f"counts must be >= 0, got {int(activations.min())}")
    return dimm.astype(np.int64), activations.astype(np.int64)


def remap_window(
    dimm_of: ArrayLike,
    counts: ArrayLike,
    dimms: int,
    neuron_bytes: int | ArrayLike = 0,
) -> RemapResult:
    """Rebalance one block's cold neurons across ``dimms`` DIMMs after a
    window (Algorithm 1 with the corrections in the module docstring).

    ``dimm_of[i]`` is the DIMM of neuron ``i``, or :data:`OFF_DIMM` for a
    neuron computed elsewhere, which never moves; ``counts[i]`` is its
    activation count over the window; ``neuron_bytes`` the bytes of one
    neuron's weights, one for all or one per neuron. Ties go to the lowest
    index: among DIMMs of equal load and among neurons of equal count.
    """
    dimm, activations = _checked(dimm_of, counts, dimms)
    sizes = np.asarray(neuron_bytes, dtype=np.int64)
    if sizes.ndim not in (0, 1) or (sizes.ndim == 1 and sizes.shape != dimm.shape):
        raise CimError(
            f"neuron_bytes must be one size or one per neuron ({dimm.size}), "
            f"got shape {sizes.shape}"
        )
    if sizes.size and sizes.min() < 0:
        raise CimError(f"neuron_bytes must be >= 0, got {int(sizes.min())}")

    loads_before = _loads(dimm, activations, dimms)
    loads = loads_before.copy()
    by_load = np.argsort(-loads_before, kind="stable")
    pairs = np.stack([by_load[: dimms // 2], by_load[::-1][: dimms // 2]], axis=1)
    new_dimm = np.array(dimm_of, copy=True)
    moved_parts: list[IntArray] = []
    source_parts: list[IntArray] = []
    pair_bytes = np.zeros(len(pairs), dtype=np.int64)
    for pair, (heavy, light) in enumerate(pairs.tolist()):
        gap = int(loads[heavy] - loads[light])
        if gap <= 1:
            # no count c with 0 < c < gap
            continue
        members = np.flatnonzero(dimm == heavy)
        by_count = np.argsort(-activations[members], kind="stable")
        ranked = members[by_count]
        ranked_counts = activations[ranked]
        # The k-th neuron in this order moves iff 2 * S_k + c_k < gap, where
        # S_k sums the counts moved before it; S_k + S_(k+1) never decreases,
        # so the moves are a prefix.
        after = np.cumsum(ranked_counts)
        take = int(np.searchsorted(2 * after - ranked_counts, gap, side="left"))
        take = min(take, int(np.count_nonzero(ranked_counts)))
        if take == 0:
            continue
        chosen = ranked[:take]
        shifted = int(after[take - 1])
        loads[heavy] -= shifted
        loads[light] += shifted
        new_dimm[chosen] = light
        moved_parts.append(chosen)
        source_parts.append(np.full(take, heavy, dtype=np.int64))
        pair_bytes[pair] = (
            int(sizes[chosen].sum()) if sizes.ndim == 1 else take * int(sizes)
        )

    moved = np.concatenate(moved_parts) if moved_parts else np.zeros(0, np.int64)
    source = np.concatenate(source_parts) if source_parts else np.zeros(0, np.int64)
    return RemapResult(
        dimm_of=new_dimm,
        moved=moved.astype(np.int64),
        source=source,
        destination=new_dimm[moved].astype(np.int64),
        loads_before=loads_before,
        loads_after=loads,
        pairs=pairs.astype(np.int64),
        pair_bytes=pair_bytes,
    )
