"""A decoder's KV cache kept in memory-mode arrays for the whole run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.ir import SSAValue

from cimflow.cimdialect import cim_meta, cim_tile
from cimflow.errors import CimError
from cimflow.lowering.naming import Naming
from cimflow.lowering.placement import (
    Location,
    arrays_to_hold,
)


def share_arrays(
    sizes: Sequence[int], arrays: int, capacity: int
) -> list[tuple[int, int]] | None:
    """Consecutive ``[start, stop)`` ranges of arrays ``[0, arrays)``, one per
    tensor of ``sizes`` bytes: each gets the arrays of ``capacity`` bytes it
    needs (at least one), and the arrays left over are shared out in order
    (more arrays read a tensor out faster). None when they need more."""
    needs = [arrays_to_hold(size, capacity) for size in sizes]
    spare = arrays - sum(needs)
    if spare < 0:
        return None
    ranges: list[tuple[int, int]] = []
    start = 0
    for index, need in enumerate(needs):
        count = need + spare // len(needs) + (1 if index < spare % len(needs) else 0)
        ranges.append((start, start + count))
        start += count
    return ranges


def held_values(
    buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
) -> list[SSAValue]:
    """The function arguments a ``kv_cache`` buffer names in ``holds``."""
    values: list[SSAValue] = []
    for hold in buffer.holds.data if buffer.holds is not None else ():
        value = inputs.get(hold.data)
        if value is None:
            raise CimError(
                f"kv_cache memory buffer holds '{hold.data}', which is not a "
                "model input (a function argument)"
            )
        if value in values:
            raise CimError(f"kv_cache memory buffer holds '{hold.data}' twice")
        values.append(value)
    return values


class KvCache(Naming):
    """The KV cache in arrays ``[0, K)``."""

    def hold_kv_cache(
        self, buffer: cim_tile.MemoryBufferOp, inputs: Mapping[str, SSAValue]
    ) -> None:
        """Keep the model inputs a ``kv_cache`` buffer holds in its arrays
        ``[0, K)`` for the whole run (each in arrays of its own, in memory
        mode from the start); every segment places its arrays from ``K``."""
        count = buffer.arrays.value.data
        dual_mode = self.hw.dual_mode
        if count > min(dual_mode.switchable_arrays, self.hw.total_arrays):
            raise CimError(
                f"kv_cache memory buffer takes {count} arrays but target "
                f"'{self.hw.name}' can switch {dual_mode.switchable_arrays} to "
                "memory mode"
            )
        values = held_values(buffer, inputs)
        names = [self.names[v] for v in values]
        sizes = [self.tensor_bytes(v) for v in values]
        capacity = min(buffer.size.value.data, count * dual_mode.memory_capacity_bytes)
        if sum(sizes) > capacity:
            overflow = next(
                name
                for index, name in enumerate(names)
                if sum(sizes[: index + 1]) > capacity
            )
            raise CimError(
                f"kv_cache memory buffer cannot hold '{overflow}': its "
                f"{len(names)} tensors take {sum(sizes)} bytes, more than its "
                f"{capacity} (min(bytes {buffer.size.value.data}, {count} arrays x "
                f"{dual_mode.memory_capacity_bytes} B))"
            )
        ranges = share_arrays(sizes, count, dual_mode.memory_capacity_bytes)
        if ranges is None:
            raise CimError(
                f"kv_cache memory buffer has {count} arrays, fewer than its "
                f"{len(names)} tensors need with arrays of their own "
                f"({dual_mode.memory_capacity_bytes} B each)"
            )
        for name, run in zip(names, ranges, strict=True):
            arrays = cim_meta.ArrayRangesAttr.from_ranges([run])
            state = self.tensors[name]
            state.level, state.arrays = Location.MEMORY, arrays
            self.declaration(name).arrays = arrays
        self.reserved = count
        self.memory_mode |= set(range(count))

    def beside_kv_cache(self) -> str:
        if not self.reserved:
            return ""
        return f" besides the {self.reserved} arrays of the KV cache"
