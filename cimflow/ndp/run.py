"""One Hermes experiment end to end: activation statistics for a model, the
offline partition, and the decode simulation.

The model's neurons get their stationary activation probabilities once (the
model's property: the fitted power law of :mod:`cimflow.ndp.activations`
in a seeded neuron order, or the user's imported frequencies). From them:

- the **offline profile** the integer program solves on: the paper profiles
  128 samples of C4 and Pile (Sec. IV-B), whole sequences on independent
  contexts, whose frequencies are the long-run probabilities up to sampling
  noise; the profile is taken to be those probabilities (a profile of a few
  hundred tokens on one context path would mistake the context of the
  moment for the model's statistics);
- the **run**: one synthetic trace per sequence of the batch (each its own
  context path), ``prompt + output`` tokens, counted over the batch per
  token and neuron (a GEMV over a batch reads a neuron's weights when any
  sequence needs it, and an NDP core multiplies them for those that do).

Every synthetic layer is statistically the same, so the run may simulate the
first ``layers`` layers and scale (``simulate_decode``); the partition
always covers every layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cimflow.errors import CimError
from cimflow.milp import SolverBudget
from cimflow.ndp.activations import (
    DEFAULT_STATISTICS,
    ActivationTrace,
    TraceStatistics,
    fitted_probabilities,
    synthetic_trace,
)
from cimflow.ndp.decode import DecodeOptions, DecodeReport, simulate_decode
from cimflow.ndp.llm import DecoderShape
from cimflow.ndp.partition import (
    Partition,
    check_capacity,
    check_placement,
    solve_partition,
)
from cimflow.ndp.predictor import trace_parents
from cimflow.ndp.system import NdpSystem


@dataclass(frozen=True)
class Workload:
    """What is decoded and with which activation statistics."""

    shape: DecoderShape
    options: DecodeOptions = field(default_factory=DecodeOptions)
    statistics: TraceStatistics = DEFAULT_STATISTICS
    layers: int | None = None
    """Layers simulated (all when None); the partition covers all."""
    seed: int = 0
    stationary: tuple[npt.NDArray[np.float64], ...] | None = None
    """Imported per-block frequencies of the first blocks (repeated over the
    model's blocks), instead of the fitted power law."""
    groups: int = 32
    """Neuron groups per block in the integer program."""
    trace: ActivationTrace | None = None
    """An imported trace of one sequence (prompt + output tokens, the
    first blocks of the model) instead of synthetic ones: it drives the
    run, and its frequencies, repeated over the model's blocks, the
    partition."""
    partition: Partition | None = None
    """A placement already made (``ndp-partition``'s, read back from the
    compiled module) instead of solving the integer program here."""

    @property
    def simulated_layers(self) -> int:
        if self.trace is not None:
            return len(self.trace.active) // 2
        layers = self.layers if self.layers is not None else self.shape.layers
        if not 1 <= layers <= self.shape.layers:
            raise CimError(
                f"layers {layers} is outside 1..{self.shape.layers} for "
                f"{self.shape.name}"
            )
        return layers


def stationary_probabilities(workload: Workload) -> list[npt.NDArray[np.float64]]:
    """Each block's per-neuron activation probability, for every block of
    the model: imported ones repeated, or the fitted law in a seeded order."""
    neurons = workload.shape.neurons_per_block()
    if workload.stationary is not None:
        given = workload.stationary
        result = [given[b % len(given)] for b in range(len(neurons))]
        for b, (p, n) in enumerate(zip(result, neurons, strict=True)):
            if p.size != n:
                raise CimError(
                    f"imported frequencies of block {b % len(given)} have {p.size} "
                    f"neurons; {workload.shape.name} has {n} there"
                )
        return result
    rng = np.random.Generator(np.random.PCG64(workload.seed))
    by_size: dict[int, npt.NDArray[np.float64]] = {}
    result: list[npt.NDArray[np.float64]] = []
    for n in neurons:
        if n not in by_size:
            by_size[n] = fitted_probabilities(n, workload.statistics)
        result.append(by_size[n][rng.permutation(n)])
    return result


def batch_activity(
    workload: Workload, stationary: Sequence[npt.NDArray[np.float64]]
) -> tuple[list[npt.NDArray[np.uint8]], list[npt.NDArray[np.int32]]]:
    """The run's per-block activity as the number of the batch's sequences
    in which each neuron is active at each token, and the parents (the
    model's correlation table, the same for every sequence)."""
    options = workload.options
    blocks = 2 * workload.simulated_layers
    counts: list[npt.NDArray[np.uint8]] = []
    parents: list[npt.NDArray[np.int32]] = []
    for sequence in range(options.batch):
        trace = synthetic_trace(
            [p.size for p in stationary[:blocks]],
            options.prompt + options.output,
            seed=workload.seed + sequence,
            statistics=workload.statistics,
            stationary=stationary[:blocks],
        )
        if sequence == 0:
            counts = [block.astype(np.uint8) for block in trace.active]
            parents = list(trace.parents)
        else:
            for mine, theirs in zip(counts, trace.active, strict=True):
                mine += theirs
    return counts, parents


def imported_activity(
    workload: Workload, trace: ActivationTrace
) -> tuple[
    list[npt.NDArray[np.bool_]],
    list[npt.NDArray[np.int32]],
    list[npt.NDArray[np.float64]],
]:
    """An imported trace checked against the model and the run: its
    activity, its parents (sampled from it where the file has none) and its
    frequencies repeated over the model's blocks."""
    shape, options = workload.shape, workload.options
    neurons = shape.neurons_per_block()
    blocks = len(trace.active)
    if blocks % 2 or blocks > len(neurons):
        raise CimError(
            f"the trace has {blocks} blocks; {shape.name} needs an even number "
            f"up to {len(neurons)} (QKV and MLP of each layer)"
        )
    for b, block in enumerate(trace.active):
        if block.shape[1] != neurons[b]:
            raise CimError(
                f"trace block {b} has {block.shape[1]} neurons; {shape.name} has "
                f"{neurons[b]} there"
            )
    if trace.tokens != options.prompt + options.output:
        raise CimError(
            f"the trace has {trace.tokens} tokens; prompt {options.prompt} + "
            f"output {options.output} = {options.prompt + options.output} expected"
        )
    if options.batch != 1:
        raise CimError("a trace is one sequence: run it at batch 1")
    parents = list(trace.parents)
    if any(table.shape[1] == 0 for table in parents[1:]):
        parents = trace_parents(trace.active)
    measured = trace.frequencies()
    stationary = [measured[b % blocks] for b in range(len(neurons))]
    return list(trace.active), parents, stationary


def partition_for(
    system: NdpSystem,
    workload: Workload,
    profile: Sequence[npt.NDArray[np.float64]],
    budget: SolverBudget | None = None,
) -> Partition:
    return solve_partition(
        system,
        workload.shape,
        profile,
        batch=workload.options.batch,
        groups=workload.groups,
        kv_bytes=kv_cache_bytes(workload),
        budget=budget,
    )


def kv_cache_bytes(workload: Workload) -> int:
    """The KV cache the DIMMs hold at the end of the run: every sequence's
    prompt and output tokens."""
    options = workload.options
    tokens = (options.prompt + options.output) * options.batch
    return workload.shape.kv_bytes_per_token() * tokens


def run(system: NdpSystem, workload: Workload) -> DecodeReport:
    """Partition, trace and simulate one workload on one system."""
    return run_policies(system, workload, [workload.options.policy])[0]


def run_policies(
    system: NdpSystem, workload: Workload, policies: Sequence[str]
) -> list[DecodeReport]:
    """The same workload (one partition, one set of traces) under each of
    ``policies``."""
    check_capacity(system, workload.shape, kv_cache_bytes(workload))
    options = [dataclasses.replace(workload.options, policy=p) for p in policies]
    if all(o.policy == "base" for o in options):
        empty = Partition((), "not solved", 0.0)
        return [
            simulate_decode(system, workload.shape, empty, [], [], o) for o in options
        ]
    if workload.trace is not None:
        activity, parents, stationary = imported_activity(workload, workload.trace)
    else:
        stationary = stationary_probabilities(workload)
        activity, parents = batch_activity(workload, stationary)
    partition = workload.partition
    if partition is None:
        partition = partition_for(system, workload, stationary)
    else:
        check_placement(system, workload.shape, partition)
    return [
        simulate_decode(system, workload.shape, partition, activity, parents, o)
        for o in options
    ]
