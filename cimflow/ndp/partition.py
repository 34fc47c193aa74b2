"""The offline hot/cold partition: Hermes's integer program (Sec. IV-B,
Eqs. 1-7; hermes.md section 4.2), solved by HiGHS.

Every sparse block's neurons go to the GPU or to one cold device (a DIMM's
NDP core, or the CPU on a host system) so that the sum over blocks of the
slower side's time is least (Eq. 1), the GPU time including two
synchronisations (Eq. 3), each side's time its neurons' activation
frequency times a per-neuron cost (Eqs. 4-5,
:mod:`cimflow.ndp.costs`), within the GPU's memory (Eq. 6) and each DIMM's
(Eq. 7: every weight is stored on a DIMM; the GPU holds copies, so a DIMM
also holds its share of the hot neurons and the dense weights).

A 70B model has about three million neurons; with nine devices that is too
many binaries. Neurons of a block are sorted by frequency and aggregated
into equal groups (as PowerInfer's public solver aggregates them); the
program decides how many neurons of each group each device takes (integers),
which is the per-neuron program when a group's neurons are equally hot.
Within a group the hottest neurons go to the GPU and the rest are dealt to
the cold devices in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cimflow.errors import CimError
from cimflow.milp import INFINITY, MilpBuilder, SolverBudget
from cimflow.ndp.costs import (
    block_kind,
    cold_devices,
    cold_neuron_seconds,
    gpu_neuron_seconds,
    neuron_bytes,
    sync_seconds,
)
from cimflow.ndp.llm import FP16_BYTES, DecoderShape
from cimflow.ndp.system import NdpSystem

GPU = 0
"""``device_of`` value of a neuron computed on the GPU; cold devices are
1..J."""

DeviceMap = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Partition:
    """Where each neuron of each sparse block is computed."""

    device_of: tuple[DeviceMap, ...]
    status: str
    objective_seconds: float
    """The program's per-token estimate (Eq. 1), sparse blocks only."""

    def gpu_bytes(self, shape: DecoderShape) -> int:
        return sum(
            int(np.count_nonzero(devices == GPU)) * neuron_bytes(shape, block_kind(b))
            for b, devices in enumerate(self.device_of)
        )


def check_placement(
    system: NdpSystem, shape: DecoderShape, partition: Partition
) -> None:
    """Raise :class:`CimError` unless ``partition`` places every block of
    ``shape`` on devices ``system`` has, within the GPU's memory."""
    blocks = 2 * shape.layers
    if len(partition.device_of) != blocks:
        raise CimError(
            f"the placement covers {len(partition.device_of)} blocks, "
            f"{shape.name} has {blocks} (a QKV and an MLP block per layer)"
        )
    devices = cold_devices(system)
    for block, placed in enumerate(partition.device_of):
        if placed.size and int(placed.max()) > devices:
            raise CimError(
                f"block {block} places a neuron on DIMM {int(placed.max())}; "
                f"system '{system.name}' has {devices}"
            )
    used, budget = partition.gpu_bytes(shape), gpu_budget_bytes(system, shape)
    if used > budget:
        raise CimError(
            f"the placement keeps {used} bytes of neurons on the GPU; system "
            f"'{system.name}' leaves room for {budget}"
        )


def dense_gpu_bytes(shape: DecoderShape) -> int:
    """Weights always on the GPU: every layer's output projection (it has no
    activation sparsity, Sec. IV-A) and the LM head."""
    return (
        shape.layers * shape.output_projection_params + shape.vocab * shape.hidden
    ) * FP16_BYTES


def prefill_buffer_bytes(shape: DecoderShape) -> int:
    """GPU memory the prefill needs to stream layers in: two layers (one
    computing, one arriving)."""
    return 2 * shape.layer_params * FP16_BYTES


def gpu_budget_bytes(system: NdpSystem, shape: DecoderShape) -> int:
    """GPU memory left for hot neurons (Eq. 6's S_GPU)."""
    budget = (
        system.gpu.memory_bytes
        - system.gpu.runtime_reserved_bytes
        - dense_gpu_bytes(shape)
        - prefill_buffer_bytes(shape)
    )
    if budget < 0:
        raise CimError(
            f"system '{system.name}': {shape.name}'s output projections and LM "
            f"head ({dense_gpu_bytes(shape) / 2**30:.1f} GiB) and prefill buffers "
            f"do not fit in 'gpu.memory_bytes' ({system.gpu.memory_bytes})"
        )
    return budget


def check_capacity(system: NdpSystem, shape: DecoderShape, kv_bytes: int) -> None:
    """Every weight and the KV cache must fit on the DIMMs (Sec. IV-A: all
    weights are stored there), or the model cannot run."""
    needed = shape.weight_bytes + kv_bytes
    if needed > system.dimm_capacity:
        raise CimError(
            f"system '{system.name}': {shape.name} needs {needed / 2**30:.1f} GiB "
            f"of DIMM memory (weights and KV cache) but {system.dimm.count} x "
            f"'dimm.capacity_bytes' hold {system.dimm_capacity / 2**30:.1f} GiB"
        )


def _sorted_groups(
    frequency: npt.NDArray[np.float64], groups: int
) -> list[npt.NDArray[np.int64]]:
    order = np.argsort(-frequency, kind="stable")
    return [
        part for part in np.array_split(order, min(groups, order.size)) if part.size
    ]


def _deal(labels_count: Sequence[int]) -> npt.NDArray[np.int8]:
    """Labels 1..J, ``labels_count[j - 1]`` of each, interleaved evenly."""
    keys: list[tuple[float, int]] = []
    for j, count in enumerate(labels_count, start=1):
        keys += [((k + 0.5) / count, j) for k in range(count)]
    keys.sort()
    return np.array([j for _, j in keys], dtype=np.int8)


def solve_partition(
    system: NdpSystem,
    shape: DecoderShape,
    frequencies: Sequence[npt.NDArray[np.float64]],
    *,
    batch: int = 1,
    groups: int = 32,
    kv_bytes: int = 0,
    budget: SolverBudget | None = None,
) -> Partition:
    """Hermes's offline integer program over frequency-sorted neuron groups.

    ``frequencies[b]`` is the activation frequency of each neuron of sparse
    block b per sequence and token (offline profile). ``kv_bytes`` is the KV
    cache the DIMMs must also hold.
    """
    check_capacity(system, shape, kv_bytes)
    devices = 1 + cold_devices(system)
    sync = sync_seconds(system, shape, batch)
    milp = MilpBuilder()
    gpu_capacity: list[tuple[int, float]] = []
    dimm_loads: list[list[tuple[int, float]]] = [[] for _ in range(devices - 1)]
    plan: list[list[tuple[npt.NDArray[np.int64], list[int]]]] = []
    block_times: list[int] = []
    for block, frequency in enumerate(frequencies):
        kind = block_kind(block)
        size = neuron_bytes(shape, kind)
        time = milp.var(0.0, INFINITY, cost=1.0)
        block_times.append(time)
        gpu_row: list[tuple[int, float]] = [(time, 1.0)]
        cold_rows: list[list[tuple[int, float]]] = [
            [(time, 1.0)] for _ in range(devices - 1)
        ]
        block_plan: list[tuple[npt.NDArray[np.int64], list[int]]] = []
        for members in _sorted_groups(frequency, groups):
            mean = float(frequency[members].mean())
            read = 1.0 - (1.0 - mean) ** batch
            counts = [
                milp.var(0.0, float(members.size), integer=True) for _ in range(devices)
            ]
            milp.row([(c, 1.0) for c in counts], members.size, members.size)
            gpu_cost = gpu_neuron_seconds(system, shape, kind, read, batch)
            gpu_row.append((counts[GPU], -gpu_cost))
            cold_cost = cold_neuron_seconds(
                system, shape, kind, read, mean * batch, batch
            )
            for j in range(1, devices):
                cold_rows[j - 1].append((counts[j], -cold_cost))
                dimm_loads[j - 1].append((counts[j], float(size)))
            gpu_capacity.append((counts[GPU], float(size)))
            block_plan.append((members, counts))
        milp.row(gpu_row, 2 * sync, INFINITY)
        for row in cold_rows:
            milp.row(row, 0.0, INFINITY)
        plan.append(block_plan)
    milp.row(gpu_capacity, 0.0, float(gpu_budget_bytes(system, shape)))
    if system.kind == "ndp":
        total_stored = shape.weight_bytes + kv_bytes
        # Each DIMM stores its cold neurons plus an even share of everything
        # else (hot neurons' home copies, dense weights, KV cache):
        # cold_j + (total - sum_k cold_k) / J <= capacity_j.
        share = 1.0 / (devices - 1)
        for j, load in enumerate(dimm_loads):
            terms = [(c, size * (1 - share)) for c, size in load]
            for k, other in enumerate(dimm_loads):
                if k != j:
                    terms += [(c, -size * share) for c, size in other]
            milp.row(
                terms,
                -INFINITY,
                system.dimm.capacity_bytes - total_stored * share,
            )
    outcome = milp.solve(budget or SolverBudget(mip_gap=1e-2, time_limit=110.0))
    if outcome.values is None:
        raise CimError(
            f"system '{system.name}': the hot/cold partition of {shape.name} has "
            f"no solution ({outcome.status})"
        )
    values = outcome.values
    device_of: list[DeviceMap] = []
    for frequency, block_plan in zip(frequencies, plan, strict=True):
        devices_of_block = np.zeros(frequency.size, dtype=np.int8)
        for members, counts in block_plan:
            taken = [round(values[c]) for c in counts]
            on_gpu = taken[GPU]
            devices_of_block[members[:on_gpu]] = GPU
            devices_of_block[members[on_gpu:]] = _deal(taken[1:])
        device_of.append(devices_of_block)
    objective = sum(values[t] for t in block_times)
    return Partition(tuple(device_of), outcome.status, objective)
