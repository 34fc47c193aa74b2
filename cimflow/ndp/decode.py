"""Token-by-token simulation of LLM inference on a Hermes system: the
per-token performance model of hermes.md section 8, driven by activation
traces, with the paper's online mechanisms.

For every decode step and every sparse block (a layer's QKV input neurons,
then its MLP neurons) the simulation

1. finds the block's active neurons: a QKV block's are its input's nonzero
   elements (the ReLU before QKV has run, so nothing is predicted), an MLP
   block's are predicted from each neuron's 4-bit state and its two
   parents' activity in the QKV block before it (Sec. IV-C.1,
   :mod:`cimflow.ndp.predictor`); the devices compute that set, and the
   predictor's recall and precision are counted;
2. prices the phase as ``max(GPU time + 2 syncs, slowest cold device)``
   with the one cost rule of :mod:`cimflow.ndp.costs`;
3. updates the states with the actual activity, and (policy ``adjust`` and
   ``hermes``) copies neurons whose state passed ``T_h`` to the GPU, evicting
   the lowest-state residents (Sec. IV-C.2), as many as the GPU's lead
   over the DIMMs in this phase could absorb (one more active neuron each):
   the paper swaps unconditionally, which on a model the GPU mostly holds
   (the partition balanced the two sides) moves work onto the side that is
   already the slower one;
4. every ``remap_window`` tokens (policy ``hermes``) rebalances the cold
   neurons among the DIMMs by their activity in the window (Sec. IV-D,
   :mod:`cimflow.ndp.remap`).

Swaps cross PCIe and remaps the DIMM-links while the GPU computes the
layer's output projection, when the DIMMs are idle; only what exceeds the
projection's time adds to the token. A layer is
``QKV + attention + max(projection, swaps + remaps) + MLP``; a token adds
the LM head. The prefill runs on the GPU with its weights streamed over PCIe
(the paper's offloading), before decoding.

Policies (Sec. V-A.2, V-C): ``random`` (hot set and DIMMs drawn at random,
same GPU memory), ``partition`` (the offline program, fixed), ``adjust``
(plus online hot/cold adjustment), ``hermes`` (plus window remapping), and
``base`` (Hermes-base: no sparsity; a layer runs where its weights live).
On a ``host`` system cold neurons run on the CPU, which has nothing to
remap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from cimflow.errors import CimError
from cimflow.ndp.costs import (
    attention_seconds,
    block_kind,
    cold_devices,
    cold_neuron_seconds,
    dense_gpu_seconds,
    dimm_link_joules,
    dimm_link_seconds,
    gpu_neuron_seconds,
    neuron_bytes,
    neuron_params,
    pcie_seconds,
    sync_seconds,
)
from cimflow.ndp.llm import FP16_BYTES, DecoderShape
from cimflow.ndp.partition import (
    GPU,
    Partition,
    dense_gpu_bytes,
    gpu_budget_bytes,
)
from cimflow.ndp.predictor import (
    DEFAULT_RULES,
    PredictionStats,
    PredictorRules,
    initial_states,
    predict_tokens,
)
from cimflow.ndp.remap import OFF_DIMM, remap_window
from cimflow.ndp.system import NdpSystem

Policy = Literal["random", "partition", "adjust", "hermes", "base"]
POLICIES: tuple[str, ...] = get_args(Policy)
ActivityMatrix = npt.NDArray[np.bool_] | npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DecodeOptions:
    """How one run decodes."""

    batch: int = 1
    prompt: int = 128
    """Prompt tokens per sequence (the paper fixes input and output at 128)."""
    output: int = 128
    policy: str = "hermes"
    remap_window: int = 5
    """Tokens per remapping window (Sec. IV-D)."""
    rules: PredictorRules = field(default_factory=lambda: DEFAULT_RULES)
    seed: int = 0
    """Seeds the ``random`` policy's placement."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise CimError(
                f"unknown policy '{self.policy}' "
                f"(expected one of {', '.join(POLICIES)})"
            )
        for name in ("batch", "prompt", "output", "remap_window"):
            if getattr(self, name) < 1:
                raise CimError(
                    f"option '{name}' must be at least 1, got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class DecodeReport:
    """What one run took: seconds per phase (summed over the run), bytes
    per link, and the predictor's quality."""

    system: str
    model: str
    policy: str
    batch: int
    prompt: int
    output: int
    simulated_layers: int
    prefill_seconds: float
    qkv_seconds: float
    attention_seconds: float
    projection_seconds: float
    mlp_seconds: float
    exposed_migration_seconds: float
    lm_head_seconds: float
    gpu_bytes_read: float
    cold_bytes_read: float
    pcie_bytes: float
    dimm_link_bytes: float
    dimm_link_joules: float
    """Energy of the remapping traffic over the DIMM links (the one energy
    the system gives; GPU, DIMM and PCIe energy are not modelled)."""
    swapped_neurons: int
    remapped_neurons: int
    hot_fraction_of_params: float
    predictor: PredictionStats

    @property
    def decode_seconds(self) -> float:
        return (
            self.qkv_seconds
            + self.attention_seconds
            + self.projection_seconds
            + self.mlp_seconds
            + self.exposed_migration_seconds
            + self.lm_head_seconds
        )

    @property
    def total_seconds(self) -> float:
        return self.prefill_seconds + self.decode_seconds

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens over the whole run, prefill included (the paper's
        end-to-end metric)."""
        return self.batch * self.output / self.total_seconds


def prefill_seconds(
    system: NdpSystem, shape: DecoderShape, resident_bytes: int, options: DecodeOptions
) -> float:
    """The prompt on the GPU, layer by layer: the weights not resident on
    the GPU stream over PCIe while it computes (FlexGen-style offloading),
    each layer's read waiting for the DIMMs' first access, and the prompt's
    KV cache goes to the DIMMs."""
    streamed = max(0, shape.weight_bytes - resident_bytes)
    tokens = options.prompt * options.batch
    compute = 2 * shape.params * tokens / system.gpu_flops
    kv = shape.kv_bytes_per_token() * tokens
    loads = pcie_seconds(system, streamed)
    if streamed:
        loads += shape.layers * system.dimm_access_seconds
    return max(loads, compute) + pcie_seconds(system, kv)


def _random_partition(
    partition: Partition, devices: int, seed: int
) -> tuple[npt.NDArray[np.int8], ...]:
    rng = np.random.Generator(np.random.PCG64(seed))
    result: list[npt.NDArray[np.int8]] = []
    for device_of in partition.device_of:
        hot = int(np.count_nonzero(device_of == GPU))
        shuffled = np.full(device_of.size, GPU, dtype=np.int8)
        shuffled[hot:] = rng.integers(1, devices + 1, device_of.size - hot)
        result.append(shuffled[rng.permutation(device_of.size)])
    return tuple(result)


def gpu_resident_layers(system: NdpSystem, shape: DecoderShape) -> int:
    """Hermes-base keeps whole layers on the GPU, as many as fit."""
    layer_bytes = shape.sparse_layer_params * FP16_BYTES
    return min(shape.layers, gpu_budget_bytes(system, shape) // layer_bytes)


def _dense_phase_seconds(
    system: NdpSystem, shape: DecoderShape, kind: str, on_gpu: bool, batch: int
) -> float:
    """A block with every neuron active, on the GPU or spread over the cold
    devices."""
    neurons = shape.hidden if kind == "qkv" else shape.ffn_hidden
    if on_gpu:
        sync = 2 * sync_seconds(system, shape, batch)
        return gpu_neuron_seconds(system, shape, kind, neurons, batch) + sync
    share = neurons / cold_devices(system)
    return cold_neuron_seconds(system, shape, kind, share, share * batch, batch)


def simulate_decode(
    system: NdpSystem,
    shape: DecoderShape,
    partition: Partition,
    activity: Sequence[ActivityMatrix],
    parents: Sequence[npt.NDArray[np.int32]],
    options: DecodeOptions,
) -> DecodeReport:
    """Simulate prefill and decoding.

    ``activity[b]`` is sparse block b's activity, shape
    ``(prompt + output, neurons)``: in how many of the batch's sequences
    each neuron is active at each token (bool for one sequence). A neuron's
    weights are read once per step if any sequence needs it; the GPU
    multiplies them for the whole batch, an NDP core only for the sequences
    whose input is nonzero (its bit-serial multipliers skip zeros). The
    first ``prompt`` rows are the prefill, whose frequencies initialise the
    predictor. ``parents[b]`` holds each neuron's two
    correlated neurons in block b - 1. The activity may cover the first
    layers only: the decode time scales by ``layers / simulated layers``.
    Policy ``base`` uses neither (every neuron is active).
    """
    if options.policy == "base":
        return _simulate_base(system, shape, options)
    blocks = len(activity)
    if blocks == 0 or blocks % 2 or blocks > 2 * shape.layers:
        raise CimError(
            f"activity has {blocks} blocks; expected an even number up to "
            f"{2 * shape.layers} (QKV and MLP of each simulated layer)"
        )
    tokens = options.prompt + options.output
    for b, matrix in enumerate(activity):
        expected = (tokens, shape.neurons_per_block()[b])
        if matrix.shape != expected:
            raise CimError(
                f"activity of block {b} has shape {matrix.shape}, expected {expected}"
            )
    devices = cold_devices(system)
    if options.policy == "random":
        device_maps = _random_partition(partition, devices, options.seed)[:blocks]
    else:
        device_maps = partition.device_of[:blocks]
    sync = sync_seconds(system, shape, options.batch)
    steps = options.output
    phase = np.zeros((blocks, steps))
    migration = np.zeros((blocks, steps))
    traffic = _Traffic()
    stats = PredictionStats.of(np.zeros(0, np.bool_), np.zeros(0, np.bool_))
    rules = options.rules
    adjusts = options.policy in ("adjust", "hermes")
    remaps = options.policy == "hermes" and devices > 1
    for b in range(blocks):
        kind = block_kind(b)
        size = neuron_bytes(shape, kind)
        on_gpu: npt.NDArray[np.bool_] = device_maps[b] == GPU
        dealt = np.arange(on_gpu.size, dtype=np.int64) % devices
        home = np.where(on_gpu, dealt, device_maps[b].astype(np.int64) - 1)
        start = initial_states((activity[b][: options.prompt] > 0).mean(axis=0), rules)
        decoded = activity[b][options.prompt : options.prompt + steps] > 0
        parent_counts: npt.NDArray[np.int32] | int = 0
        if kind != "qkv":
            parent_active = activity[b - 1][options.prompt : options.prompt + steps] > 0
            parent_counts = parent_active[:, parents[b]].sum(axis=2, dtype=np.int32)
        predicted, states_after = predict_tokens(start, parent_counts, decoded, rules)
        window = np.zeros(on_gpu.size, dtype=np.int64)
        for step in range(steps):
            t = options.prompt + step
            sequences = activity[b][t]
            actual = sequences > 0
            if kind == "qkv":
                computed = actual
            else:
                computed = predicted[step]
                stats = stats + PredictionStats.of(computed, actual)
            on_gpu_count = int(np.count_nonzero(computed & on_gpu))
            off_gpu = computed & ~on_gpu
            cold_counts = np.bincount(home[off_gpu], minlength=devices)
            cold_products = np.bincount(
                home[off_gpu], weights=sequences[off_gpu], minlength=devices
            )
            gpu_time = (
                gpu_neuron_seconds(system, shape, kind, on_gpu_count, options.batch)
                + 2 * sync
            )
            cold_time = max(
                cold_neuron_seconds(
                    system, shape, kind, float(n), float(m), options.batch
                )
                for n, m in zip(cold_counts, cold_products, strict=True)
            )
            phase[b, step] = max(gpu_time, cold_time)
            traffic.gpu += on_gpu_count * size
            traffic.cold += float(cold_counts.sum()) * size
            traffic.pcie += 2 * shape.hidden * options.batch * FP16_BYTES
            states = states_after[step]
            if adjusts and gpu_time < cold_time:
                one = gpu_neuron_seconds(system, shape, kind, 1, options.batch)
                room = int((cold_time - gpu_time) / one)
                moved = _adjust(states, on_gpu, rules, room)
                traffic.swapped += moved
                traffic.pcie += moved * size
                migration[b, step] += pcie_seconds(system, moved * size)
            window += actual
            if remaps and (step + 1) % options.remap_window == 0:
                result = remap_window(
                    np.where(on_gpu, OFF_DIMM, home), window, devices, size
                )
                home = np.where(on_gpu, home, result.dimm_of)
                traffic.remapped += int(result.moved.size)
                traffic.dimm_link += result.moved_bytes
                migration[b, step] += dimm_link_seconds(
                    system, result.busiest_pair_bytes
                )
                window[:] = 0
    scale = shape.layers / (blocks // 2)
    projection = _projection_seconds(system, shape, options.batch)
    layer_migration = migration[0::2] + migration[1::2]
    exposed = float(np.maximum(0.0, layer_migration - projection).sum()) * scale
    hot_params = sum(
        int(np.count_nonzero(d == GPU)) * neuron_params(shape, block_kind(b))
        for b, d in enumerate(device_maps)
    )
    sparse_params = sum(
        n * neuron_params(shape, block_kind(b))
        for b, n in enumerate(shape.neurons_per_block()[:blocks])
    )
    hot_fraction = hot_params / sparse_params
    return _report(
        system,
        shape,
        options,
        simulated_layers=blocks // 2,
        hot_fraction=hot_fraction,
        qkv=float(phase[0::2].sum()) * scale,
        mlp=float(phase[1::2].sum()) * scale,
        exposed=exposed,
        traffic=traffic.scaled(scale),
        predictor=stats,
    )


@dataclass
class _Traffic:
    gpu: float = 0.0
    cold: float = 0.0
    pcie: float = 0.0
    dimm_link: float = 0.0
    swapped: float = 0
    remapped: float = 0

    def scaled(self, factor: float) -> _Traffic:
        return _Traffic(
            *(getattr(self, f.name) * factor for f in dataclasses.fields(self))
        )


def _projection_seconds(system: NdpSystem, shape: DecoderShape, batch: int) -> float:
    """One layer's output projection, on the GPU for every token."""
    return dense_gpu_seconds(system, shape.output_projection_params, batch)


def _simulate_base(
    system: NdpSystem, shape: DecoderShape, options: DecodeOptions
) -> DecodeReport:
    """Hermes-base: every neuron active; the first layers that fit run on
    the GPU, the others on the cold devices, each holding an equal share."""
    on_gpu = gpu_resident_layers(system, shape)
    steps, batch = options.output, options.batch
    qkv = mlp = 0.0
    traffic = _Traffic()
    for kind in ("qkv", "mlp"):
        neurons = shape.hidden if kind == "qkv" else shape.ffn_hidden
        block_bytes = neurons * neuron_bytes(shape, kind)
        seconds = on_gpu * _dense_phase_seconds(system, shape, kind, True, batch) + (
            shape.layers - on_gpu
        ) * _dense_phase_seconds(system, shape, kind, False, batch)
        if kind == "qkv":
            qkv = seconds * steps
        else:
            mlp = seconds * steps
        traffic.gpu += on_gpu * block_bytes * steps
        traffic.cold += (shape.layers - on_gpu) * block_bytes * steps
    traffic.pcie = 4 * shape.layers * shape.hidden * batch * FP16_BYTES * steps
    return _report(
        system,
        shape,
        options,
        simulated_layers=shape.layers,
        hot_fraction=on_gpu / shape.layers,
        qkv=qkv,
        mlp=mlp,
        exposed=0.0,
        traffic=traffic,
        predictor=PredictionStats.of(np.ones(1, np.bool_), np.ones(1, np.bool_)),
    )


def _report(
    system: NdpSystem,
    shape: DecoderShape,
    options: DecodeOptions,
    *,
    simulated_layers: int,
    hot_fraction: float,
    qkv: float,
    mlp: float,
    exposed: float,
    traffic: _Traffic,
    predictor: PredictionStats,
) -> DecodeReport:
    steps, batch = options.output, options.batch
    contexts = options.prompt + np.arange(steps)
    attention = shape.layers * sum(
        attention_seconds(system, shape, int(c), batch) for c in contexts
    )
    sparse_bytes = shape.sparse_layer_params * shape.layers * FP16_BYTES
    resident = dense_gpu_bytes(shape) + int(hot_fraction * sparse_bytes)
    return DecodeReport(
        system=system.name,
        model=shape.name,
        policy=options.policy,
        batch=batch,
        prompt=options.prompt,
        output=steps,
        simulated_layers=simulated_layers,
        prefill_seconds=prefill_seconds(system, shape, resident, options),
        qkv_seconds=qkv,
        attention_seconds=attention,
        projection_seconds=_projection_seconds(system, shape, batch)
        * steps
        * shape.layers,
        mlp_seconds=mlp,
        exposed_migration_seconds=exposed,
        lm_head_seconds=dense_gpu_seconds(system, shape.vocab * shape.hidden, batch)
        * steps,
        gpu_bytes_read=traffic.gpu,
        cold_bytes_read=traffic.cold,
        pcie_bytes=traffic.pcie,
        dimm_link_bytes=traffic.dimm_link,
        dimm_link_joules=dimm_link_joules(system, traffic.dimm_link),
        swapped_neurons=round(traffic.swapped),
        remapped_neurons=round(traffic.remapped),
        hot_fraction_of_params=hot_fraction,
        predictor=predictor,
    )


def _adjust(
    states: npt.NDArray[np.uint8],
    on_gpu: npt.NDArray[np.bool_],
    rules: PredictorRules,
    limit: int,
) -> int:
    """Online hot/cold adjustment (Sec. IV-C.2), in place on ``on_gpu``:
    each neuron off the GPU whose state exceeds ``T_h``, hottest first,
    replaces the resident with the lowest state, while that state is lower,
    at most ``limit`` of them; returns the number copied to the GPU."""
    candidates = np.flatnonzero(~on_gpu & (states > rules.hot_threshold))
    if candidates.size == 0:
        return 0
    residents = np.flatnonzero(on_gpu)
    victims = residents[np.argsort(states[residents], kind="stable")]
    arrivals = candidates[
        np.argsort(-states[candidates].astype(np.int16), kind="stable")
    ]
    count = min(arrivals.size, victims.size, limit)
    better = states[arrivals[:count]] > states[victims[:count]]
    count = int(np.count_nonzero(better))
    on_gpu[victims[:count]] = False
    on_gpu[arrivals[:count]] = True
    return count
