"""A GPU with near-data-processing DIMMs (or with a CPU host): the system
Hermes decodes on, loaded from TOML like every CIM target.

A system file (``hw_targets/ndp/*.toml``) has the tables ``[system]``,
``[gpu]``, ``[host_link]``, ``[dimm]``, ``[ndp]``, ``[dimm_link]`` and
``[host]``; every key of every table is required, no other key is allowed,
and ``base = "NAME"`` starts from another system file as for CIM targets.
``hw_targets/ndp/SCHEMA.md`` documents each key with its source. The derived
figures the performance model uses (a DIMM's streaming bandwidth from its
DDR4 timing, the NDP core's MAC rate) are computed here, once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from cimflow.errors import CimError
from cimflow.hw_targets import TARGETS_DIR, build_section, resolved_tables

SYSTEMS_DIR = TARGETS_DIR / "ndp"
DEFAULT_SYSTEM = "hermes"

SystemKind = Literal["ndp", "host"]
SYSTEM_KINDS: tuple[str, ...] = get_args(SystemKind)
"""``ndp``: cold neurons run on the DIMMs' NDP cores (Hermes). ``host``: on
the CPU, which reads them over its memory channels (PowerInfer-style,
the paper's Hermes-host)."""

GB = 1e9


@dataclass(frozen=True)
class SystemInfo:
    """``[system]``: identity and where cold neurons run."""

    name: str
    description: str
    kind: str


@dataclass(frozen=True)
class Gpu:
    """``[gpu]``: the consumer GPU that computes hot neurons, the output
    projection and the prefill."""

    memory_bytes: int
    runtime_reserved_bytes: int
    bandwidth_gb_per_s: float
    bandwidth_efficiency: float
    fp16_tflops: float


@dataclass(frozen=True)
class HostLink:
    """``[host_link]``: PCIe between the GPU and the host memory (the DIMMs)."""

    bandwidth_gb_per_s: float
    sync_latency_us: float


@dataclass(frozen=True)
class Dimm:
    """``[dimm]``: the NDP-DIMMs (DDR4) that hold every weight and the KV
    cache. Timings are in DRAM clock cycles (half the data rate)."""

    count: int
    capacity_bytes: int
    dimms_per_channel: int
    ranks: int
    ranks_in_parallel: int
    bank_groups: int
    banks_per_group: int
    row_bytes: int
    data_rate_mt_per_s: int
    bus_bytes: int
    t_rc: int
    t_rcd: int
    t_cl: int
    t_rp: int
    t_bl: int
    t_ccd_s: int
    t_ccd_l: int
    t_rrd_s: int
    t_rrd_l: int
    t_faw: int


@dataclass(frozen=True)
class NdpCore:
    """``[ndp]``: one NDP core per DIMM, in its center buffer."""

    clock_ghz: float
    multipliers: int
    values_per_multiplier: int
    operand_bits: int
    buffer_bytes: int


@dataclass(frozen=True)
class DimmLink:
    """``[dimm_link]``: point-to-point links between DIMMs, used to move
    cold neurons when remapping."""

    bandwidth_gb_per_s: float
    energy_pj_per_bit: float


@dataclass(frozen=True)
class Host:
    """``[host]``: the CPU and its memory channels (computes cold neurons on
    ``kind = "host"`` systems; schedules on every system)."""

    memory_bandwidth_gb_per_s: float
    bandwidth_efficiency: float
    fp16_gflops: float


@dataclass(frozen=True)
class NdpSystem:
    """A complete GPU + NDP-DIMM (or GPU + CPU host) system."""

    system: SystemInfo
    gpu: Gpu
    host_link: HostLink
    dimm: Dimm
    ndp: NdpCore
    dimm_link: DimmLink
    host: Host

    @property
    def name(self) -> str:
        return self.system.name

    @property
    def kind(self) -> SystemKind:
        return cast(SystemKind, self.system.kind)

    @property
    def gpu_bandwidth(self) -> float:
        """Bytes per second a GPU GEMV kernel streams."""
        return self.gpu.bandwidth_gb_per_s * GB * self.gpu.bandwidth_efficiency

    @property
    def gpu_flops(self) -> float:
        return self.gpu.fp16_tflops * 1e12

    @property
    def link_bandwidth(self) -> float:
        """Bytes per second between the GPU and the DIMMs, one direction:
        PCIe, or the DIMMs' memory channels when they carry less (``count /
        dimms_per_channel`` channels, each one rank's bus)."""
        channels = -(-self.dimm.count // self.dimm.dimms_per_channel)
        return min(
            self.host_link.bandwidth_gb_per_s * GB,
            channels * self.rank_peak_bandwidth,
        )

    @property
    def dimm_access_seconds(self) -> float:
        """A DIMM's first read: a row opened and its column read,
        ``t_rcd + t_cl`` DRAM cycles (half the data rate)."""
        d = self.dimm
        return (d.t_rcd + d.t_cl) / (d.data_rate_mt_per_s * 1e6 / 2)

    @property
    def rank_peak_bandwidth(self) -> float:
        """One rank's bus: data rate x bus width (DDR4-3200 x 8 B = 25.6 GB/s)."""
        return self.dimm.data_rate_mt_per_s * 1e6 * self.dimm.bus_bytes

    @property
    def rank_streaming_efficiency(self) -> float:
        """The share of a rank's peak a long sequential read keeps, from the
        DDR4 timing (JESD79-4): bursts alternate between bank groups at
        ``t_ccd_s`` (``t_ccd_l`` with one group), and a new row may be opened
        only every ``max(t_rrd, t_faw / 4, t_rc / banks)`` cycles (``t_rrd_s``
        between bank groups, ``t_rrd_l`` with one; each of the rank's banks
        opens a row at most once per ``t_rc``), each row giving
        ``row_bytes``."""
        d = self.dimm
        burst_bytes = 2 * d.t_bl * d.bus_bytes
        column_gap = d.t_ccd_s if d.bank_groups > 1 else d.t_ccd_l
        burst_limited = burst_bytes / max(d.t_bl, column_gap)
        activate_gap = max(
            d.t_rrd_s if d.bank_groups > 1 else d.t_rrd_l,
            d.t_faw / 4,
            d.t_rc / (d.bank_groups * d.banks_per_group),
        )
        activate_limited = d.row_bytes / activate_gap
        peak = 2 * d.bus_bytes
        return min(burst_limited, activate_limited, peak) / peak

    @property
    def dimm_bandwidth(self) -> float:
        """Bytes per second one NDP core reads from its own DIMM: the ranks it
        streams at once, each at the timing-limited rate."""
        return (
            self.dimm.ranks_in_parallel
            * self.rank_peak_bandwidth
            * self.rank_streaming_efficiency
        )

    @property
    def ndp_macs_per_second(self) -> float:
        """FP16 MACs per second of one NDP core: each multiplier works on
        ``values_per_multiplier`` values, one operand bit per cycle."""
        n = self.ndp
        per_cycle = n.multipliers * n.values_per_multiplier / n.operand_bits
        return per_cycle * n.clock_ghz * 1e9

    @property
    def host_bandwidth(self) -> float:
        """Bytes per second the CPU's sparse GEMV streams from host memory."""
        return self.host.memory_bandwidth_gb_per_s * GB * self.host.bandwidth_efficiency

    @property
    def dimm_link_bandwidth(self) -> float:
        return self.dimm_link.bandwidth_gb_per_s * GB

    @property
    def dimm_capacity(self) -> int:
        return self.dimm.count * self.dimm.capacity_bytes

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: dataclasses.asdict(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }


_SECTIONS: dict[str, type[Any]] = {
    "system": SystemInfo,
    "gpu": Gpu,
    "host_link": HostLink,
    "dimm": Dimm,
    "ndp": NdpCore,
    "dimm_link": DimmLink,
    "host": Host,
}
_FRACTIONS = (
    "gpu.bandwidth_efficiency",
    "host.bandwidth_efficiency",
)


def system_from_dict(data: dict[str, object], origin: str) -> NdpSystem:
    """Validate nested tables into a system, or raise a one-line CimError."""
    for key in data:
        if key not in _SECTIONS:
            raise CimError(
                f"{origin}: unknown table '{key}' "
                f"(expected one of {', '.join(_SECTIONS)})"
            )
    built: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name not in data:
            raise CimError(f"{origin}: missing table '[{name}]'")
        built[name] = build_section(origin, name, cls, data[name])
    system = NdpSystem(**built)
    _check_consistency(origin, system)
    return system


def _check_consistency(origin: str, system: NdpSystem) -> None:
    if system.system.kind not in SYSTEM_KINDS:
        raise CimError(
            f"{origin}: key 'system.kind' must be one of "
            f"{', '.join(SYSTEM_KINDS)}, got {system.system.kind!r}"
        )
    for key in _FRACTIONS:
        section, field = key.split(".")
        value = getattr(getattr(system, section), field)
        if value > 1:
            raise CimError(f"{origin}: key '{key}' must be at most 1, got {value}")
    d = system.dimm
    if d.ranks_in_parallel > d.ranks:
        raise CimError(
            f"{origin}: key 'dimm.ranks_in_parallel' ({d.ranks_in_parallel}) "
            f"exceeds 'dimm.ranks' ({d.ranks})"
        )
    if system.gpu.runtime_reserved_bytes >= system.gpu.memory_bytes:
        raise CimError(
            f"{origin}: key 'gpu.runtime_reserved_bytes' must be below "
            f"'gpu.memory_bytes' ({system.gpu.memory_bytes})"
        )
    if d.t_rc < d.t_rcd + d.t_rp:
        raise CimError(
            f"{origin}: key 'dimm.t_rc' ({d.t_rc}) is below t_rcd + t_rp "
            f"({d.t_rcd + d.t_rp}): no DDR4 part has that timing"
        )
    if system.ndp.operand_bits % 8:
        raise CimError(
            f"{origin}: key 'ndp.operand_bits' must be a multiple of 8, "
            f"got {system.ndp.operand_bits}"
        )


def shipped_systems() -> list[str]:
    """Names of the systems shipped in ``hw_targets/ndp``, sorted."""
    return sorted(p.stem for p in SYSTEMS_DIR.glob("*.toml"))


def load_system(
    spec: str = DEFAULT_SYSTEM, overrides: dict[str, object] | None = None
) -> NdpSystem:
    """Load a system by shipped name or path, with its ``base`` chain and
    ``SECTION.KEY`` overrides applied."""
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise CimError(f"{spec}: system file not found")
    else:
        path = SYSTEMS_DIR / f"{spec}.toml"
        if not path.is_file():
            raise CimError(
                f"unknown system '{spec}' (shipped systems: "
                f"{', '.join(shipped_systems())}; or give a path ending in .toml)"
            )
    tables = resolved_tables(path, shipped_dir=SYSTEMS_DIR, identity="system")
    origin = str(path)
    if overrides:
        origin += " with --set " + " ".join(f"{k}={v}" for k, v in overrides.items())
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            table = tables.get(section)
            if not isinstance(table, dict):
                raise CimError(
                    f"--set {key}: unknown table '{section}' (expected one of "
                    f"{', '.join(_SECTIONS)})"
                )
            cast(dict[str, object], table)[name] = value
    return system_from_dict(json.loads(json.dumps(tables)), origin)
