"""Hardware targets: TOML files loaded into frozen, validated dataclasses.

A target file has one table per dataclass below (``[target]``, ``[hierarchy]``,
``[array]``, ``[precision]``, ``[dual_mode]``, ``[buffers]``,
``[interconnect]``, ``[dram]``, ``[vector]``, ``[energy]``, ``[nonideal]``);
every key of every table is required and no other key is allowed.
``hw_targets/SCHEMA.md`` documents each key. Passes and tools take
``target=NAME`` (a file shipped in this folder, without ``.toml``) or
``target=path/to/file.toml``.

Any problem is a :class:`~cimflow.errors.CimError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast, get_args

from cimflow.errors import CimError

TARGETS_DIR = Path(__file__).parent
DEFAULT_TARGET = "dynaplasia"

ComputeGranularity = Literal["core", "crossbar", "wordline"]
COMPUTE_GRANULARITIES: tuple[str, ...] = get_args(ComputeGranularity)
Topology = Literal["bus", "mesh"]
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
"""What ``interconnect.topology`` may say: ``bus`` (one link shared by every
core) or ``mesh`` (a 2-D grid of links between neighbouring cores)."""


@dataclass(frozen=True)
class TargetInfo:
    """``[target]``: identity and clock."""

    name: str
    description: str
    clock_ghz: float


@dataclass(frozen=True)
class Hierarchy:
    """``[hierarchy]``: chips x cores per chip x arrays per core."""

    chips: int
    cores_per_chip: int
    arrays_per_core: int


@dataclass(frozen=True)
class ArrayParams:
    """``[array]``: one crossbar array, its periphery and timing.

    ``mvm_latency_cycles`` is the time from issuing one input vector (all of
    its bits) to having the digitized outputs; ``mvm_issue_interval_cycles`` is
    the interval at which the next vector may be issued when MVMs pipeline.
    ``active_rows`` is how many word lines are driven at once: fewer than
    ``rows`` means one MVM takes ``ceil(rows_used / active_rows)`` passes
    (CIM-MLC's wordline computing mode). Latency and interval are those of
    an MVM whose columns convert in one round of the ``adcs_per_array``
    shared ADCs; each further round adds one interval
    (``cimflow.cost_model.mvm_issue_interval``).
    """

    rows: int
    cols: int
    cell_bits: int
    dac_bits: int
    adc_bits: int
    adcs_per_array: int
    active_rows: int
    mvm_latency_cycles: int
    mvm_issue_interval_cycles: int
    program_cycles_per_row: int
    compute_granularity: str
    dynamic_matmul: bool
    zero_skip: bool
    """Zero detectors skip an input bit-plane (``dac_bits`` bits of every
    driven row) that is zero on every row of a word-line pass, on the MVMs
    the compiler measured and enabled it for (``cim-input-sparsity``).
    Each detector covers ``zero_detect_rows`` rows: a plane zero on a
    group's rows leaves that group's cells and drivers idle; a plane zero
    on every group of the pass skips its cycle."""
    zero_detect_rows: int
    mux_inputs: int
    """Inputs of the multiplexer in front of each weight's cells (0: none,
    a cell takes its row's input): an IntraBlock mapping (``cim-sparse-rows``)
    may then cut a weight's rows into groups of up to this many, each cell
    picking its own input among its group's."""
    mux_delay_cycles: int
    """Cycles the multiplexers' select adds to each input pass of an MVM
    whose cells pick their inputs (an IntraBlock mapping; CIMinus's
    ``t_mux``)."""
    subarray_rows: int
    """Rows of one sub-array (0: the array is not divided): an MVM
    activates only the sub-arrays holding the rows and columns it uses, and
    ``energy.array_mvm_pj`` is the energy of all of them."""
    subarray_cols: int
    """Columns of one sub-array (0: the array's width)."""


@dataclass(frozen=True)
class Precision:
    """``[precision]``: operand widths in bits."""

    weight_bits: int
    activation_bits: int
    accumulator_bits: int


@dataclass(frozen=True)
class DualMode:
    """``[dual_mode]``: arrays that can switch to memory mode.

    ``switchable_arrays`` is 0 on a target whose arrays only compute.
    Capacity and bandwidth are per array in memory mode.
    ``feeds_compute``: memory-mode arrays feed the compute arrays of their
    own core directly (input activations in, outputs back), at
    ``feed_bytes_per_cycle`` per array (0 when they do not).
    """

    switchable_arrays: int
    switch_latency_cycles: int
    memory_capacity_bytes: int
    memory_bandwidth_bytes_per_cycle: float
    feeds_compute: bool
    feed_bytes_per_cycle: float


@dataclass(frozen=True)
class Buffers:
    """``[buffers]``: the chip's global buffer and each core's local buffer."""

    global_bytes: int
    global_bandwidth_bytes_per_cycle: float
    local_bytes: int
    local_bandwidth_bytes_per_cycle: float


@dataclass(frozen=True)
class Interconnect:
    """``[interconnect]``: the network between the global buffer and cores:
    one shared ``bus``, or a ``mesh`` of per-core links (docs/machine-model.md)."""

    topology: str
    bandwidth_bytes_per_cycle: float
    latency_cycles: int
    multicast: bool = False
    """Whether one transfer from the global buffer (or DRAM, or memory-mode
    arrays) can reach the cores of several copies of a weight at once: the
    bus, or the mesh's routers, deliver the bytes read once to every
    destination core (:func:`cimflow.cost_model.interconnect_cost`)."""


@dataclass(frozen=True)
class Dram:
    """``[dram]``: off-chip main memory."""

    bandwidth_bytes_per_cycle: float
    latency_cycles: int


@dataclass(frozen=True)
class VectorUnit:
    """``[vector]``: the digital vector units (one or more per core)."""

    units_per_core: int
    lanes: int
    latency_cycles: int


@dataclass(frozen=True)
class Energy:
    """``[energy]``: energy per access, in picojoules, and static power
    (leakage, ``*_static_mw``) in milliwatts.

    ``adc_pj_per_conversion_step`` is the ADC's Walden figure of merit: one
    conversion of an ``adc_bits`` ADC costs ``adc_pj_per_conversion_step *
    2^adc_bits``.
    """

    array_mvm_pj: float
    adc_pj_per_conversion_step: float
    shift_add_pj: float
    """One shift-and-add: a converted column value (one input pass of one
    wordline pass) shifted by its input bit and weight slice and added to
    its output's running sum."""
    dac_conversion_pj: float
    cell_program_pj: float
    mode_switch_pj: float
    memory_array_pj_per_byte: float
    buffer_pj_per_byte: float
    interconnect_pj_per_byte: float
    dram_pj_per_byte: float
    vector_pj_per_element: float
    zero_detect_pj: float
    """One zero detection: one input bit-plane over the rows of one
    word-line pass of one array (charged where skipping is enabled)."""
    index_read_pj_per_bit: float
    """One bit of a row index read from the index memory: an array that
    holds compacted rows gathers each held row's input by its index."""
    mux_select_pj: float
    """One input plane routed through one weight's input multiplexer (an
    IntraBlock mapping: ``array.mux_inputs``)."""
    array_static_mw: float
    """Leakage of one array with its periphery but its ADCs, in milliwatts,
    for the whole run (``static power x makespan``)."""
    adc_static_mw: float
    """Leakage of one ADC (``array.adcs_per_array`` per array)."""
    global_buffer_static_mw: float
    """Leakage of the global buffer, in milliwatts."""
    local_buffer_static_mw: float
    """Leakage of one core's local buffer, in milliwatts."""
    vector_static_mw: float
    """Leakage of one vector unit (``vector.units_per_core`` per core)."""
    interconnect_static_mw: float
    """Leakage of one core's share of the interconnect (its router or bus
    port), in milliwatts."""
    gate_idle_cores: bool
    """Whether a core is power-gated before the first op that uses it
    starts and after the last ends: its arrays (with their ADCs), local
    buffer, vector units and interconnect share leak only in between (as
    PUMA's simulator gates its cores and tiles). The global buffer leaks
    over the whole run either way. false: every unit leaks over the run."""


@dataclass(frozen=True)
class Area:
    """``[area]`` (optional): the silicon area of one instance of each
    component, in square millimetres, which the chip's counts multiply
    (:mod:`cimflow.analysis.area`). A target without the table has no area
    figures: nothing is assumed for it."""

    array_mm2: float
    """The cells of one array."""
    adc_mm2: float
    """One ADC (``array.adcs_per_array`` per array)."""
    dac_mm2: float
    """One row's input driver or DAC (``array.rows`` per array)."""
    array_periphery_mm2: float
    """The rest of one array's periphery: sample-and-hold, shift-and-add,
    input and output registers."""
    local_buffer_mm2: float
    """One core's local buffer."""
    global_buffer_mm2: float
    """The global buffer."""
    vector_unit_mm2: float
    """One vector unit (``vector.units_per_core`` per core)."""
    router_mm2: float
    """One core's share of the interconnect (its router or bus port)."""


@dataclass(frozen=True)
class NonIdeal:
    """``[nonideal]``: device and converter non-idealities of quantized
    functional runs (``docs/functional-verification.md``), all zero for an
    ideal chip; they change values, never timing or energy.

    Cell values are in units of one cell level (a ``cell_bits`` cell holds
    ``0 .. 2^cell_bits - 1``), ADC errors in units of its step (LSB)."""

    seed: int
    """Seeds every draw: the same seed gives the same chip and the same
    noise."""
    program_sigma: float
    """Programming variation: each programmed cell holds its level plus a
    normal error of this many times its full range, drawn per program."""
    read_sigma: float
    """Read noise: each driven cell adds a normal error of this many times
    its full range times its input digit to a column sum, drawn per read."""
    stuck_at_zero: float
    """Share of cells stuck at level 0 (fixed per physical array)."""
    stuck_at_one: float
    """Share of cells stuck at the top level (fixed per physical array)."""
    adc_offset_lsb: float
    """Standard deviation of each ADC's fixed offset (per column)."""
    adc_inl_lsb: float
    """Integral nonlinearity: a bow over the range peaking at mid-scale."""


# Keys that may be zero; every other number must be positive.
_MAY_BE_ZERO = frozenset(
    {
        "dual_mode.switchable_arrays",
        "dual_mode.switch_latency_cycles",
        "dual_mode.memory_capacity_bytes",
        "dual_mode.memory_bandwidth_bytes_per_cycle",
        "dual_mode.feed_bytes_per_cycle",
        "interconnect.latency_cycles",
        "dram.latency_cycles",
        "vector.latency_cycles",
        "array.zero_detect_rows",
        "array.mux_inputs",
        "array.mux_delay_cycles",
        "array.subarray_rows",
        "array.subarray_cols",
    }
    | {f"energy.{f.name}" for f in dataclasses.fields(Energy)}
    | {f"nonideal.{f.name}" for f in dataclasses.fields(NonIdeal)}
    | {f"area.{f.name}" for f in dataclasses.fields(Area)}
)


@dataclass(frozen=True)
class HardwareTarget:
    """A complete CIM accelerator description."""

    target: TargetInfo
    hierarchy: Hierarchy
    array: ArrayParams
    precision: Precision
    dual_mode: DualMode
    buffers: Buffers
    interconnect: Interconnect
    dram: Dram
    vector: VectorUnit
    energy: Energy
    nonideal: NonIdeal
    area: Area | None = None
    """``None``: the target gives no area figures."""

    def __hash__(self) -> int:
        # the compiler's caches key on the target: hash its fields once
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(
                tuple(getattr(self, f.name) for f in dataclasses.fields(self))
            )
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, Any]:
        # string hashes differ between processes: never carry one over
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def total_cores(self) -> int:
        return self.hierarchy.chips * self.hierarchy.cores_per_chip

    @property
    def total_arrays(self) -> int:
        return self.total_cores * self.hierarchy.arrays_per_core

    @property
    def bit_slices(self) -> int:
        """Columns one weight occupies: ceil(weight_bits / cell_bits)."""
        return math.ceil(self.precision.weight_bits / self.array.cell_bits)

    @property
    def input_passes(self) -> int:
        """DAC passes per input vector: ceil(activation_bits / dac_bits)."""
        return math.ceil(self.precision.activation_bits / self.array.dac_bits)

    @property
    def activation_bytes(self) -> int:
        return math.ceil(self.precision.activation_bits / 8)

    @property
    def weight_bytes(self) -> int:
        return math.ceil(self.precision.weight_bits / 8)

    @property
    def accumulator_bytes(self) -> int:
        return math.ceil(self.precision.accumulator_bits / 8)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The target as nested tables, exactly as a TOML file would hold it."""
        return {
            f.name: dataclasses.asdict(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


# Plausibility bounds: a value beyond them describes no chip that could be
# built and would make the compiler or the simulator run out of memory or
# overflow; ``hw_targets/SCHEMA.md`` lists them. Keys not listed here take
# the bound of their unit (by the key's suffix).
_UPPER_BOUNDS: dict[str, float] = {
    "target.clock_ghz": 100,
    "hierarchy.chips": 4096,
    "hierarchy.cores_per_chip": 65536,
    "hierarchy.arrays_per_core": 65536,
    "array.rows": 65536,
    "array.cols": 65536,
    "array.cell_bits": 8,
    "array.dac_bits": 16,
    "array.adc_bits": 24,
    "array.adcs_per_array": 65536,
    "array.active_rows": 65536,
    "energy.adc_pj_per_conversion_step": 1e9,
    "precision.weight_bits": 64,
    "precision.activation_bits": 64,
    "precision.accumulator_bits": 128,
    "dual_mode.switchable_arrays": 2**20,
    "nonideal.seed": 2**63 - 1,
    "nonideal.program_sigma": 1,
    "nonideal.read_sigma": 1,
    "nonideal.stuck_at_zero": 1,
    "nonideal.stuck_at_one": 1,
    "nonideal.adc_offset_lsb": 2**24,
    "nonideal.adc_inl_lsb": 2**24,
    "vector.units_per_core": 1024,
    "vector.lanes": 65536,
}
_UNIT_BOUNDS: tuple[tuple[str, float], ...] = (
    ("_cycles", 1e9),
    ("_bytes", 2**40),
    ("_per_cycle", 2**20),
    ("_pj", 1e9),
    ("_per_byte", 1e9),
    ("_per_element", 1e9),
    ("_mw", 1e9),
    ("_mm2", 1e5),
)
MAX_TOTAL_ARRAYS = 2**20
"""Most arrays a target may have in all (chips x cores x arrays per core)."""


def upper_bound(key: str) -> float:
    """The largest plausible value of ``key`` (``section.name``)."""
    bound = _UPPER_BOUNDS.get(key)
    if bound is not None:
        return bound
    for suffix, unit_bound in _UNIT_BOUNDS:
        if key.endswith(suffix):
            return unit_bound
    return 2**40


def _check_value(origin: str, key: str, value: object, field_type: object) -> object:
    if field_type in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CimError(f"{origin}: key '{key}' must be an integer, got {value!r}")
    elif field_type in ("float", float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CimError(f"{origin}: key '{key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if not math.isfinite(number):
            raise CimError(f"{origin}: key '{key}' must be finite, got {value!r}")
        value = number
    elif field_type in ("bool", bool):
        if not isinstance(value, bool):
            raise CimError(
                f"{origin}: key '{key}' must be true or false, got {value!r}"
            )
        return value
    elif field_type in ("str", str):
        if not isinstance(value, str):
            raise CimError(f"{origin}: key '{key}' must be a string, got {value!r}")
        return value
    number = cast(float, value)
    if number > upper_bound(key):
        raise CimError(
            f"{origin}: key '{key}' must be at most {upper_bound(key):g}, got "
            f"{value!r} (a plausibility bound, hw_targets/SCHEMA.md)"
        )
    if key in _MAY_BE_ZERO:
        if number < 0:
            raise CimError(f"{origin}: key '{key}' must not be negative, got {value!r}")
    elif number <= 0:
        raise CimError(f"{origin}: key '{key}' must be positive, got {value!r}")
    return value


def build_section(origin: str, section: str, cls: type[Any], raw: object) -> Any:
    if not isinstance(raw, dict):
        raise CimError(f"{origin}: '{section}' must be a table")
    table = cast(dict[str, object], raw)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise CimError(
                f"{origin}: unknown key '{section}.{key}' "
                f"(expected one of {', '.join(fields)})"
            )
    values: dict[str, object] = {}
    for name, field in fields.items():
        if name not in table:
            raise CimError(f"{origin}: missing key '{section}.{name}'")
        values[name] = _check_value(
            origin, f"{section}.{name}", table[name], field.type
        )
    return cls(**values)


def _check_consistency(origin: str, hw: HardwareTarget) -> None:
    if hw.total_arrays > MAX_TOTAL_ARRAYS:
        raise CimError(
            f"{origin}: {hw.hierarchy.chips} chips x {hw.hierarchy.cores_per_chip} "
            f"cores x {hw.hierarchy.arrays_per_core} arrays is {hw.total_arrays} "
            f"arrays, more than the plausible {MAX_TOTAL_ARRAYS}"
        )
    if hw.array.active_rows > hw.array.rows:
        raise CimError(
            f"{origin}: key 'array.active_rows' ({hw.array.active_rows}) exceeds "
            f"'array.rows' ({hw.array.rows})"
        )
    if hw.array.compute_granularity not in COMPUTE_GRANULARITIES:
        raise CimError(
            f"{origin}: key 'array.compute_granularity' must be one of "
            f"{', '.join(COMPUTE_GRANULARITIES)}, got "
            f"{hw.array.compute_granularity!r}"
        )
    if hw.dual_mode.switchable_arrays > hw.total_arrays:
        raise CimError(
            f"{origin}: key 'dual_mode.switchable_arrays' "
            f"({hw.dual_mode.switchable_arrays}) exceeds the chip's "
            f"{hw.total_arrays} arrays"
        )
    if hw.dual_mode.switchable_arrays > 0 and (
        hw.dual_mode.memory_capacity_bytes == 0
        or hw.dual_mode.memory_bandwidth_bytes_per_cycle == 0
    ):
        raise CimError(
            f"{origin}: switchable arrays need a positive "
            "'dual_mode.memory_capacity_bytes' and "
            "'dual_mode.memory_bandwidth_bytes_per_cycle'"
        )
    if hw.interconnect.topology not in TOPOLOGIES:
        raise CimError(
            f"{origin}: key 'interconnect.topology' must be one of "
            f"{', '.join(TOPOLOGIES)}, got {hw.interconnect.topology!r}"
        )
    array = hw.array
    if array.zero_skip and not 1 <= array.zero_detect_rows <= array.active_rows:
        raise CimError(
            f"{origin}: key 'array.zero_detect_rows' must be from 1 to "
            f"array.active_rows ({array.active_rows}) when 'array.zero_skip' is "
            f"true, got {array.zero_detect_rows}"
        )
    for key, size, whole in (
        ("subarray_rows", array.subarray_rows, array.rows),
        ("subarray_cols", array.subarray_cols, array.cols),
    ):
        if size and whole % size:
            raise CimError(
                f"{origin}: key 'array.{key}' ({size}) must divide the array's "
                f"{whole}, or be 0 (not divided)"
            )
    inputs = array.mux_inputs
    if inputs > 1 and (inputs & (inputs - 1) or inputs > array.rows):
        raise CimError(
            f"{origin}: key 'array.mux_inputs' must be 0, 1 or a power of two up "
            f"to array.rows ({array.rows}), got {inputs}"
        )
    if array.mux_delay_cycles and inputs < 2:
        raise CimError(
            f"{origin}: key 'array.mux_delay_cycles' ({array.mux_delay_cycles}) "
            "needs input multiplexers ('array.mux_inputs' of 2 or more)"
        )
    dual_mode = hw.dual_mode
    if dual_mode.feeds_compute != (dual_mode.feed_bytes_per_cycle > 0):
        raise CimError(
            f"{origin}: key 'dual_mode.feed_bytes_per_cycle' "
            f"({dual_mode.feed_bytes_per_cycle:g}) must be positive exactly when "
            f"'dual_mode.feeds_compute' is true"
        )
    if dual_mode.feeds_compute and dual_mode.switchable_arrays == 0:
        raise CimError(
            f"{origin}: key 'dual_mode.feeds_compute' is true but "
            "'dual_mode.switchable_arrays' is 0 (only memory-mode arrays feed "
            "compute arrays)"
        )
    if hw.array.cell_bits > hw.precision.weight_bits:
        raise CimError(
            f"{origin}: key 'array.cell_bits' ({hw.array.cell_bits}) exceeds "
            f"'precision.weight_bits' ({hw.precision.weight_bits})"
        )
    if hw.array.mvm_issue_interval_cycles > hw.array.mvm_latency_cycles:
        raise CimError(
            f"{origin}: key 'array.mvm_issue_interval_cycles' exceeds "
            "'array.mvm_latency_cycles'"
        )
    input_row = hw.array.rows * hw.activation_bytes
    for key, held in (
        ("buffers.global_bytes", hw.buffers.global_bytes),
        ("buffers.local_bytes", hw.buffers.local_bytes),
    ):
        if held < input_row:
            raise CimError(
                f"{origin}: key '{key}' ({held}) cannot hold one input vector "
                f"of an array ('array.rows' x activation bytes = {input_row})"
            )
    stuck = hw.nonideal.stuck_at_zero + hw.nonideal.stuck_at_one
    if stuck > 1:
        raise CimError(
            f"{origin}: keys 'nonideal.stuck_at_zero' and 'nonideal.stuck_at_one' "
            f"add up to {stuck:g}, more than every cell"
        )
    cells = hw.array.rows * hw.array.cols * hw.array.cell_bits // 8
    if hw.dual_mode.memory_capacity_bytes > cells:
        raise CimError(
            f"{origin}: key 'dual_mode.memory_capacity_bytes' "
            f"({hw.dual_mode.memory_capacity_bytes}) exceeds the array's cells "
            f"('array.rows' x 'array.cols' x 'array.cell_bits' / 8 = {cells})"
        )


def target_from_dict(data: Mapping[str, object], origin: str) -> HardwareTarget:
    """Validate nested tables (from TOML or a trace header) into a target."""
    if not isinstance(data, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise CimError(f"{origin}: a target must be a table of tables")
    sections = {f.name: f for f in dataclasses.fields(HardwareTarget)}
    for key in data:
        if key not in sections:
            raise CimError(
                f"{origin}: unknown table '{key}' "
                f"(expected one of {', '.join(sections)})"
            )
    built: dict[str, object] = {}
    for name in sections:
        if name not in data:
            if name in _OPTIONAL_SECTIONS:
                continue
            raise CimError(f"{origin}: missing table '[{name}]'")
        section_cls = _SECTION_CLASSES[name]
        built[name] = build_section(origin, name, section_cls, data[name])
    hw = HardwareTarget(**cast(dict[str, Any], built))
    _check_consistency(origin, hw)
    return hw


_SECTION_CLASSES: dict[str, type[Any]] = {
    "target": TargetInfo,
    "hierarchy": Hierarchy,
    "array": ArrayParams,
    "precision": Precision,
    "dual_mode": DualMode,
    "buffers": Buffers,
    "interconnect": Interconnect,
    "dram": Dram,
    "vector": VectorUnit,
    "energy": Energy,
    "nonideal": NonIdeal,
    "area": Area,
}
_OPTIONAL_SECTIONS = frozenset({"area"})


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for plain text
    raise TypeError(f"no TOML spelling for {value!r}")


def tables_to_toml(tables: Mapping[str, Mapping[str, object]]) -> str:
    """Nested tables of scalars (as ``HardwareTarget.to_dict()`` gives) as TOML."""
    lines: list[str] = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def target_to_toml(hw: HardwareTarget) -> str:
    """A target as the text of a target file that loads back to it."""
    return tables_to_toml(hw.to_dict())


def shipped_targets() -> list[str]:
    """Names of the targets shipped in this folder, sorted."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def resolve_target_path(spec: str) -> Path:
    """Map ``NAME`` or ``path.toml`` to a file, or raise a CimError."""
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise CimError(f"{spec}: target file not found")
        return path
    path = TARGETS_DIR / f"{spec}.toml"
    if not path.is_file():
        raise CimError(
            f"unknown target '{spec}' (shipped targets: "
            f"{', '.join(shipped_targets())}; or give a path ending in .toml)"
        )
    return path


_overrides: tuple[tuple[str, object], ...] = ()
"""``--set`` overrides every target loaded now applies (:func:`overridden`)."""


def parse_override(text: str) -> tuple[str, object]:
    """``section.key=value`` as ``("section.key", value)``; the value is read
    as a TOML value (``512``, ``1.5``, ``true``, ``"bus"``), and as a string
    when it is none (``mesh``)."""
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name or not value.strip():
        raise CimError(f"--set '{text}': expected SECTION.KEY=VALUE")
    try:
        parsed: object = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return f"{section}.{name}", parsed


@contextmanager
def overridden(overrides: Sequence[str]) -> Generator[None]:
    """Within the block, every target loaded (:func:`load_target`) has the
    ``--set`` ``overrides`` (``section.key=value``) applied over its file."""
    global _overrides
    parsed = tuple(parse_override(text) for text in overrides)
    saved, _overrides = _overrides, parsed
    try:
        yield
    finally:
        _overrides = saved


def active_overrides() -> tuple[str, ...]:
    """The ``--set`` overrides in force, as given."""
    return tuple(f"{key}={_toml_value(value)}" for key, value in _overrides)


def load_target_file(path: Path) -> HardwareTarget:
    """Read and validate one TOML target file, its ``base`` chain and the
    ``--set`` overrides in force (parsed once per content: a file rewritten
    between two loads is read again)."""
    tables = resolved_tables(path)
    origin = str(path)
    if _overrides:
        origin += " with --set " + " ".join(active_overrides())
        for key, value in _overrides:
            section, name = key.split(".", 1)
            table = tables.get(section)
            if not isinstance(table, dict):
                raise CimError(
                    f"--set {key}: unknown table '{section}' (expected one of "
                    f"{', '.join(_SECTION_CLASSES)})"
                )
            cast(dict[str, object], table)[name] = value
    return _validated(json.dumps(tables, sort_keys=True), origin)


@lru_cache(maxsize=64)
def _validated(tables: str, origin: str) -> HardwareTarget:
    return target_from_dict(json.loads(tables), origin)


@lru_cache(maxsize=64)
def _parse_toml(content: bytes, origin: str) -> dict[str, object]:
    try:
        return tomllib.loads(content.decode("utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise CimError(f"{origin}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise CimError(f"{origin}: not UTF-8 text: {err.reason}") from None


def resolved_tables(
    path: Path,
    chain: tuple[Path, ...] = (),
    shipped_dir: Path = TARGETS_DIR,
    identity: str = "target",
) -> dict[str, object]:
    """The tables of the target file ``path`` over those of its ``base``
    (a name shipped in ``shipped_dir``, or a path from the file's folder),
    key by key; a child that names no chip in its ``identity`` table
    (``[target]``; an NDP system's ``[system]``) is named after its file,
    and one that does not describe itself says what it changed."""
    try:
        content = path.read_bytes()
    except OSError as err:
        raise CimError(f"{path}: cannot read: {err.strerror}") from None
    data = json.loads(json.dumps(_parse_toml(content, str(path))))
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise CimError(f"{path}: key 'base' must be a target name or path")
    if base.endswith(".toml") or "/" in base:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise CimError(f"{path}: base target file '{base}' not found")
    elif (shipped_dir / f"{base}.toml").is_file():
        base_path = (shipped_dir / f"{base}.toml").resolve()
    else:
        shipped = sorted(p.stem for p in shipped_dir.glob("*.toml"))
        raise CimError(
            f"{path}: base target '{base}' is not a shipped target "
            f"({', '.join(shipped)}) or a path ending in .toml"
        )
    if base_path in (*chain, path.resolve()):
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve(), base_path))
        raise CimError(f"{path}: its 'base' chain loops ({cycle})")
    tables = resolved_tables(base_path, (*chain, path.resolve()), shipped_dir, identity)
    for section, values in data.items():
        inherited = tables.get(section)
        if isinstance(values, dict) and isinstance(inherited, dict):
            cast(dict[str, object], inherited).update(cast(dict[str, object], values))
        else:
            tables[section] = values
    info = tables.get(identity)
    own = cast(dict[str, object], data.get(identity) or {})
    if isinstance(info, dict):
        info = cast(dict[str, object], info)
        if "name" not in own:
            info["name"] = path.stem
        if "description" not in own:
            changed = [
                f"{section}.{key}"
                for section, values in data.items()
                if section != identity and isinstance(values, dict)
                for key in cast(dict[str, object], values)
            ]
            info["description"] = (
                f"{base} with {', '.join(changed) or 'nothing'} changed: "
                f"{info.get('description', '')}"
            )
    return tables


def load_target(spec: str = DEFAULT_TARGET) -> HardwareTarget:
    """Load a target by shipped name or by path (with its base and the
    ``--set`` overrides in force)."""
    return load_target_file(resolve_target_path(spec))
