"""The offline hot/cold partition: Hermes's integer program on HiGHS."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cimflow.errors import CimError
from cimflow.ndp.costs import (
    block_kind,
    cold_costs,
    gpu_costs,
    neuron_bytes,
    neuron_params,
    sync_seconds,
)
from cimflow.ndp.llm import DecoderShape, load_shape
from cimflow.ndp.partition import (
    GPU,
    dense_gpu_bytes,
    gpu_budget_bytes,
    prefill_buffer_bytes,
    solve_partition,
)
from cimflow.ndp.run import Workload, stationary_probabilities
from cimflow.ndp.system import NdpSystem, load_system

TINY = DecoderShape("tiny", 1, 4, 5, 2, 2, 8, gated_mlp=False)


def _tiny_system(hot_neurons_fit: int) -> NdpSystem:
    """Two DIMMs, and a GPU with room for ``hot_neurons_fit`` MLP neurons."""
    fixed = dense_gpu_bytes(TINY) + prefill_buffer_bytes(TINY) + 1024
    memory = fixed + hot_neurons_fit * neuron_bytes(TINY, "mlp")
    return load_system(
        "hermes",
        {
            "dimm.count": 2,
            "gpu.memory_bytes": memory,
            "gpu.runtime_reserved_bytes": 1024,
        },
    )


def _objective(
    system: NdpSystem, frequencies: list[np.ndarray], assignment: tuple[int, ...]
) -> float | None:
    """Eq. 1 for one per-neuron assignment, or None if it breaks Eq. 6."""
    gpu, cold = gpu_costs(system), cold_costs(system)
    sync = sync_seconds(system, TINY, 1)
    total, used, start = 0.0, 0, 0
    for block, frequency in enumerate(frequencies):
        kind = block_kind(block)
        size, params = neuron_bytes(TINY, kind), neuron_params(TINY, kind)
        devices = assignment[start : start + frequency.size]
        start += frequency.size
        times = [0.0] * 3
        for device, f in zip(devices, frequency, strict=True):
            model = gpu if device == GPU else cold
            times[device] += model.time(f * size, f * params)
            used += size if device == GPU else 0
        total += max(times[0] + 2 * sync, *times[1:])
    return None if used > gpu_budget_bytes(system, TINY) else total


@pytest.mark.parametrize("hot_neurons_fit", [0, 2, 5])
def test_the_program_matches_brute_force_on_a_tiny_model(hot_neurons_fit: int) -> None:
    system = _tiny_system(hot_neurons_fit)
    frequencies = [
        np.array([0.9, 0.5, 0.2, 0.05]),
        np.array([1.0, 0.7, 0.3, 0.1, 0.02]),
    ]
    partition = solve_partition(system, TINY, frequencies, groups=16)
    found = _objective(
        system, frequencies, tuple(int(d) for m in partition.device_of for d in m)
    )
    best = min(
        value
        for assignment in itertools.product(range(3), repeat=9)
        if (value := _objective(system, frequencies, assignment)) is not None
    )
    assert partition.status == "optimal"
    assert found == pytest.approx(best, rel=1e-2)
    assert partition.objective_seconds == pytest.approx(best, rel=1e-2)


def test_hot_neurons_go_to_the_gpu_within_its_memory() -> None:
    system, shape = load_system("hermes"), load_shape("llama2-70b")
    frequencies = stationary_probabilities(Workload(shape, layers=1))
    partition = solve_partition(system, shape, frequencies)
    assert partition.status == "optimal"  # paper: about 110 s on PuLP
    assert partition.gpu_bytes(shape) <= gpu_budget_bytes(system, shape)
    mlp = partition.device_of[1]
    on_gpu = mlp == GPU
    assert frequencies[1][on_gpu].mean() > 3 * frequencies[1][~on_gpu].mean()
    loads = np.bincount(mlp, weights=frequencies[1], minlength=9)[1:]
    assert loads.max() - loads.min() <= loads.mean() * 0.02


def test_a_model_larger_than_the_dimms_is_refused() -> None:
    # Falcon-40B is 83.7 GB of FP16 weights: two 32 GiB DIMMs cannot hold it
    # (the paper, Fig. 14: it needs at least 4 DIMMs).
    shape = load_shape("falcon-40b")
    frequencies = stationary_probabilities(Workload(shape, layers=1))
    for count in (1, 2):
        system = load_system("hermes", {"dimm.count": count})
        with pytest.raises(CimError, match=r"needs 77\.9 GiB of DIMM memory"):
            solve_partition(system, shape, frequencies)
    solve_partition(load_system("hermes", {"dimm.count": 4}), shape, frequencies)


def test_a_gpu_too_small_for_the_dense_weights_is_refused() -> None:
    system = load_system("hermes", {"gpu.memory_bytes": 8 * 2**30})
    with pytest.raises(CimError, match="output projections and LM head"):
        gpu_budget_bytes(system, load_shape("llama2-70b"))
