"""What each device of a Hermes system takes to compute a set of neurons,
the one rule the offline partition (its Eqs. 3-5) and the decode simulation
(hermes.md section 8) both price with.

A GEMV over neurons streams each needed neuron's weights once per step,
whatever the batch; the GPU multiplies them for every sequence of the batch,
a cold device only for the sequences in which the neuron is active
(:func:`gpu_neuron_seconds`, :func:`cold_neuron_seconds`, which both the
partition and the decode simulation price with). A device's time is the
larger of its read time and its compute time (a roofline):

- GPU: ``max(bytes / (peak x efficiency), 2 MACs / FP16 FLOPS)``;
- NDP core: ``max(bytes / DIMM bandwidth, MACs / NDP MAC rate)``
  (:attr:`~cimflow.ndp.system.NdpSystem.dimm_bandwidth`,
  :attr:`~cimflow.ndp.system.NdpSystem.ndp_macs_per_second`);
- CPU host: ``max(bytes / (host bandwidth x efficiency), 2 MACs / FP16 FLOPS)``.

Moving data: PCIe at :attr:`~cimflow.ndp.system.NdpSystem.link_bandwidth`
plus a fixed synchronisation latency; DIMM-link at its bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimflow.errors import CimError
from cimflow.ndp.llm import FP16_BYTES, DecoderShape
from cimflow.ndp.system import NdpSystem

QKV = "qkv"
MLP = "mlp"


def block_kind(block: int) -> str:
    """Block 2l is layer l's QKV block, 2l + 1 its MLP block."""
    return QKV if block % 2 == 0 else MLP


def neuron_params(shape: DecoderShape, kind: str) -> int:
    """Weights one neuron of a block of ``kind`` holds."""
    if kind == QKV:
        return shape.qkv_neuron_params
    return shape.mlp_up_params + shape.mlp_down_params


def neuron_bytes(shape: DecoderShape, kind: str) -> int:
    return neuron_params(shape, kind) * FP16_BYTES


@dataclass(frozen=True)
class DeviceCosts:
    """Seconds per byte read and per MAC on one device kind."""

    seconds_per_byte: float
    seconds_per_mac: float

    def time(self, bytes_read: float, macs: float) -> float:
        return max(bytes_read * self.seconds_per_byte, macs * self.seconds_per_mac)


def gpu_costs(system: NdpSystem) -> DeviceCosts:
    return DeviceCosts(1 / system.gpu_bandwidth, 2 / system.gpu_flops)


def cold_costs(system: NdpSystem) -> DeviceCosts:
    """One cold device: an NDP core, or the CPU on ``kind = "host"``."""
    if system.kind == "host":
        return DeviceCosts(
            1 / system.host_bandwidth, 2 / (system.host.fp16_gflops * 1e9)
        )
    return DeviceCosts(1 / system.dimm_bandwidth, 1 / system.ndp_macs_per_second)


def gpu_neuron_seconds(
    system: NdpSystem, shape: DecoderShape, kind: str, read: float, batch: int
) -> float:
    """The GPU reading ``read`` neurons of a block of ``kind`` (a count, or
    an expected count) and multiplying each for the whole batch."""
    return gpu_costs(system).time(
        read * neuron_bytes(shape, kind), read * neuron_params(shape, kind) * batch
    )


PARTIAL_SUM_BYTES = 4
"""A neuron's partial dot product for one sequence, kept in FP32 between
the slices of :func:`ndp_slices`."""


def cold_neuron_seconds(
    system: NdpSystem,
    shape: DecoderShape,
    kind: str,
    read: float,
    products: float,
    batch: int,
) -> float:
    """One cold device reading ``read`` neurons of a block of ``kind`` and
    multiplying ``products`` (neuron, sequence) pairs: it skips the
    sequences whose input to a neuron is zero. The weights stream once per
    step whatever the batch; an NDP core whose buffer does not hold the
    batch's vectors takes the step in slices of the hidden dimension
    (:func:`ndp_slices`), its neurons' partial dot products (FP32, one per
    sequence) written out and read back between slices."""
    slices = ndp_slices(system, shape, batch)
    partials = 2 * (slices - 1) * read * batch * PARTIAL_SUM_BYTES
    return cold_costs(system).time(
        read * neuron_bytes(shape, kind) + partials,
        products * neuron_params(shape, kind),
    )


def ndp_slices(system: NdpSystem, shape: DecoderShape, batch: int) -> int:
    """Slices of the hidden dimension an NDP core takes one step in: each
    slice's part of the batch's FP16 vectors in and out (sized as
    ``hidden`` wide for every block; a QKV block's outputs are wider, which
    the partial sums' small traffic does not notice) fits its buffer, so
    every cold weight is read once per step (a slice reads its part of each
    neuron's weights) and only the partial dot products cross between
    slices. One slice when the whole batch's vectors fit, and on the host
    CPU (its caches hold any batch). A buffer that cannot hold one
    sequence's input vector is refused (every weight row would be cut)."""
    if system.kind == "host":
        return 1
    vector = shape.hidden * FP16_BYTES
    if system.ndp.buffer_bytes < vector:
        raise CimError(
            f"system '{system.name}': the NDP buffer ({system.ndp.buffer_bytes} "
            f"B) cannot hold one {shape.name} input vector ({vector} B)"
        )
    return -(-2 * batch * vector // system.ndp.buffer_bytes)


def cold_devices(system: NdpSystem) -> int:
    """Devices that compute cold neurons: the DIMMs, or the one CPU."""
    return 1 if system.kind == "host" else system.dimm.count


def sync_seconds(system: NdpSystem, shape: DecoderShape, batch: int) -> float:
    """One GPU-DIMM synchronisation: a layer's activations for the batch
    over PCIe, plus the fixed latency."""
    activation_bytes = shape.hidden * batch * FP16_BYTES
    return (
        activation_bytes / system.link_bandwidth
        + system.host_link.sync_latency_us * 1e-6
    )


def pcie_seconds(system: NdpSystem, bytes_moved: float) -> float:
    return bytes_moved / system.link_bandwidth


def dimm_link_seconds(system: NdpSystem, bytes_moved: float) -> float:
    return bytes_moved / system.dimm_link_bandwidth


def dimm_link_joules(system: NdpSystem, bytes_moved: float) -> float:
    """Energy of moving ``bytes_moved`` over DIMM-to-DIMM links (the
    paper's 1.17 pJ/bit; the only energy Hermes gives)."""
    return bytes_moved * 8 * system.dimm_link.energy_pj_per_bit * 1e-12


def dense_gpu_seconds(system: NdpSystem, params: int, batch: int) -> float:
    """A dense GEMM of ``params`` weights for ``batch`` sequences on the GPU."""
    return gpu_costs(system).time(params * FP16_BYTES, params * batch)


def attention_seconds(
    system: NdpSystem, shape: DecoderShape, context: int, batch: int
) -> float:
    """One layer's attention over ``context`` cached tokens for every
    sequence, on the DIMMs holding the KV cache (spread over all of them)
    or, on a host system, on the CPU: the KV bytes read, and two MACs per
    cached element and query head group."""
    kv_bytes = 2 * shape.kv_dim * context * FP16_BYTES * batch
    macs = 2 * shape.hidden * context * batch
    devices = cold_devices(system)
    return cold_costs(system).time(kv_bytes / devices, macs / devices)
