"""The one cost model: cycles and energy of a single operation in isolation.

The compiler's passes (tiling, allocation) and the simulator (`cim-sim`) call
these functions and nothing else for the cost of an operation; the simulator
adds only what a static model cannot see (contention, dependencies, pipeline
fill). Every function is pure and takes plain numbers, so it can be used on IR
attributes and on trace records alike.

Formulas (a target ``t``; all divisions round up to whole cycles):

- MVM on a group of arrays, ``vectors`` input vectors per array, each array
  using ``rows_used`` rows and ``cols_used`` columns. The ``adcs_per_array``
  ADCs of an array are shared by its columns: each input pass converts the
  used columns in ``adc_rounds(c) = ceil(c / adcs_per_array)`` rounds. The
  pipeline is taken as conversion-bound (as in ISAAC, where one ADC converts
  all of a crossbar's columns in each read cycle): the target's
  ``mvm_issue_interval`` and ``mvm_latency`` are those of an MVM whose
  columns convert in one round, each further round keeps the ADCs busy one
  more interval, and the rest of the latency (array settling, shift-add,
  write-back) does not depend on the columns::

      passes   = ceil(rows_used / t.array.active_rows)        # wordline mode
      interval = mvm_issue_interval * adc_rounds(cols_used)
                 [+ input_passes * mux_delay_cycles]   # IntraBlock mapping
      latency  = mvm_latency - mvm_issue_interval + interval
      cycles   = passes * (latency + (vectors - 1) * interval)

  So fewer ADCs make every MVM wider than them slower, and an MVM on few
  columns of an array with shared ADCs issues faster than a full-width one.
  An array with one ADC per column (``adcs_per_array >= cols``) converts any
  column count in one round, so its timing does not depend on
  ``cols_used``. Energy per array and vector: ``passes * array_mvm_pj``
  (on an array of sub-arrays, ``array.subarray_rows`` x ``subarray_cols``,
  only the share of a pass's sub-arrays that hold the rows and columns used:
  :func:`array_activations`) plus
  ``passes * input_passes * cols_used`` ADC conversions (every wordline pass
  digitizes every used column once per input pass) plus ``input_passes *
  rows_used`` DAC conversions. One conversion costs
  ``adc_pj_per_conversion_step * 2^adc_bits`` (Walden's figure of merit:
  energy per conversion step times the ``2^bits`` steps, with the effective
  number of bits taken as ``adc_bits``; R. H. Walden, IEEE JSAC 17(4), 1999;
  B. Murmann, "ADC Performance Survey"). Sharing ADCs changes the time, not
  the number of conversions, so it does not change the energy (ADC leakage
  is not modelled). Every converted value is shifted by its input bit and
  weight slice and added to its output's sum: one ``shift_add_pj`` per
  conversion (the ``shift_add`` component; ISAAC's and PUMA's S+A units).
- Zero skipping (an MVM for which ``cim-input-sparsity`` measured a share
  ``s`` of input bit-planes zero on every driven row of a pass and a share
  ``g`` zero on one detector's ``zero_detect_rows`` rows, on a target with
  ``array.zero_skip``): the issue interval is the time of the vector's
  bit-planes, so ``floor(s * passes * vectors * interval)`` cycles are
  skipped and ADC and shift-add energy shrink by ``1 - s``; array and DAC
  energy shrink by ``1 - g`` (idle rows); every plane pays a detection per
  detector, ``input_passes * ceil(rows_used / zero_detect_rows) *
  zero_detect_pj`` per array and vector (CIMinus's input bit-sparsity,
  detections per row group; ciminus.md §3.3 and §6, where
  ``n_bitplanes_effective = B_act * (1 - s_in)``).
- Compacted rows (``cim-sparse-rows``): an array holding only some of a
  weight's ``K`` rows gathers each held row's input by its index, read from
  the index memory when the array is programmed (CIMinus charges
  index-memory reads per tile loaded, ciminus.md §4.3 and §6.1):
  ``rows_used * ceil(log2 K)`` bits per array at ``index_read_pj_per_bit``
  (the ``index`` component). An IntraBlock mapping (row groups of ``M``,
  ``array.mux_inputs``) instead gives each weight of a held row its own
  ``ceil(log2 M)``-bit index, which sets its input multiplexer: ``rows_used
  * ceil(cols_used / bit_slices) * ceil(log2 M)`` bits per array and program;
  every input pass then routes one plane through each held weight's
  multiplexer, ``rows_used * ceil(cols_used / bit_slices) * input_passes *
  mux_select_pj`` per array and vector (the ``mux`` component; CIMinus's
  ``N_mux`` with a multiplexer per weight, ciminus.md §4.3 and §6.2; the
  selection is taken to fit in the input pass's cycle); and each group
  drives all of its inputs, ``ceil(rows_used * D / rows held)`` DAC
  conversions per input pass instead of ``rows_used``, with ``D`` the rows
  of the groups the widest column tile uses (``K``, or fewer when a nested
  FullBlock pattern drops whole groups from tiles: ``driven_rows``).
- Programming weights: arrays are written row by row, all arrays of the group
  in parallel: ``cycles = rows_used * program_cycles_per_row``; energy per
  programmed cell.
- Transfers: ``latency + ceil(bytes / bandwidth)`` on the link that carries
  them (DRAM, global buffer, or ``n`` memory-mode arrays read or written in
  parallel at ``n * memory_bandwidth``). DRAM writes are posted: the
  controller's write queue takes the bytes at the channel's rate and the
  writer never waits for the write latency (whoever reads the bytes back
  waits for its read's latency), so a write costs ``ceil(bytes /
  bandwidth)``.
- The interconnect between the global buffer and a set of cores ``C``
  (docs/machine-model.md): on a ``bus``, ``latency + ceil(bytes / min(bus,
  global))``; on a ``mesh``, ``latency * max hops over C + ceil(bytes / bw)``
  with ``bw = min(global, |C| * link)`` (each core's link, and the global
  buffer's one port shared by all).
- The memory-to-compute path: ``ceil(bytes / (n * feed_bytes_per_cycle))``
  for ``n`` memory-mode arrays feeding the compute arrays of their core.
- Streams (:func:`stream_cost`, the one rule for every op that streams data
  while it works: an MVM's input and outputs, a vector op's, a program's
  values): every streamed byte crosses the interconnect between the global
  buffer and the op's cores (``interconnect_cost`` of their sum), except an
  MVM's input fed by memory-mode arrays of its own cores over the
  memory-to-compute path; the bytes from and to DRAM share the one channel
  (``link_cycles(dram, read + written)``, with the latency only when it
  reads); memory-mode arrays stream at
  ``n * memory_bandwidth`` (``n * feed_bytes_per_cycle`` on the
  memory-to-compute path), and arrays both read and written serve the two
  one after the other. The parts run at the same time: the longest sets the
  time, and each byte is charged on every level it touches (DRAM, the global
  buffer it passes through, the interconnect, the memory-mode arrays).
- An op that streams takes the longest of its work and its streams; an MVM
  also reads its input from the local buffer: ``ceil(local_bytes /
  local_bandwidth)``.
- Vector-unit work: ``latency + ceil(element_ops / (lanes * units))``, and
  nothing for zero lane operations (a reshape is a free view); an op on cores
  ``C`` has ``units = units_per_core * |C|``; ``vector_pj_per_element`` per
  lane operation, charged to ``accumulate`` for the ops that finish an MVM's
  outputs (CIMinus's accumulator) and to ``vector`` for the rest.
- Mode switch: ``switch_latency`` for any number of arrays switched together.
- Static power (leakage) over the whole run (:func:`static_energy`):
  ``array_static_mw`` plus ``adcs_per_array * adc_static_mw`` per array,
  ``global_buffer_static_mw`` plus ``local_buffer_static_mw`` per core,
  ``vector_static_mw`` per vector unit and ``interconnect_static_mw`` per
  core, times the makespan (mW x ns = pJ). With ``energy.gate_idle_cores``
  a core's units leak only from the start of the first op that uses the
  core to the end of the last (PUMA's simulator gates cores and tiles so);
  the global buffer always leaks for the whole run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from cimflow.hw_targets import HardwareTarget

Location = Literal["dram", "buffer", "memory", "local"]
LOCATIONS: tuple[Location, ...] = ("dram", "buffer", "memory", "local")
"""Storage levels: DRAM, the global buffer, memory-mode arrays, and a core's
local buffer (reached from memory-mode arrays only by the memory-to-compute
path; the interconnect moves data between the global and local buffers)."""

Feed = Literal["local", "buffer", "memory", "dram"]
FEEDS: tuple[Feed, ...] = ("local", "buffer", "memory", "dram")
"""Where an MVM reads its input: its cores' local buffers, or streamed from
the global buffer, from memory-mode arrays or from DRAM."""

StreamLevel = Literal["buffer", "dram", "memory"]
STREAM_LEVELS: tuple[StreamLevel, ...] = ("buffer", "dram", "memory")
"""Where an op's streamed bytes come from or go to: the global buffer,
DRAM (through the global buffer) or memory-mode arrays."""

Ranges = tuple[tuple[int, int], ...]
"""Sorted, disjoint ``[first, stop)`` ranges of core or array ids."""

# Energy components, in the order reports list them.
ENERGY_COMPONENTS: tuple[str, ...] = (
    "array",
    "adc",
    "shift_add",
    "dac",
    "zero_detect",
    "index",
    "mux",
    "program",
    "switch",
    "memory_array",
    "buffer",
    "interconnect",
    "dram",
    "accumulate",
    "vector",
    "array_static",
    "buffer_static",
    "vector_static",
    "interconnect_static",
)
STATIC_COMPONENTS: tuple[str, ...] = (
    "array_static",
    "buffer_static",
    "vector_static",
    "interconnect_static",
)
"""The components no op spends: leakage over the run (:func:`static_energy`)."""


@dataclass(frozen=True)
class OpCost:
    """Cycles of one operation and its energy per component (picojoules)."""

    cycles: int
    energy_pj: Mapping[str, float] = field(default_factory=lambda: {})

    @property
    def total_energy_pj(self) -> float:
        return sum(self.energy_pj.values())


NO_COST = OpCost(0, {})
"""An op part that takes no time and no energy (a stream of no bytes)."""


def _ceil_div(numerator: float, denominator: float) -> int:
    return math.ceil(numerator / denominator) if numerator > 0 else 0


@dataclass(frozen=True)
class ZeroShares:
    """What an MVM's zero detectors find in its input bit-planes (per array,
    vector and word-line pass): the share of planes zero on every driven row
    (skipped: no cycle, no conversion) and the share of planes zero on one
    detector's rows (those rows' cells and drivers idle)."""

    planes: float
    groups: float

    def __post_init__(self) -> None:
        for share in (self.planes, self.groups):
            if not 0.0 <= share < 1.0:
                raise ValueError(
                    f"a share of zero planes must be in [0, 1), got {share}"
                )


@dataclass(frozen=True)
class MvmTarget(HardwareTarget):
    """A target as one MVM runs on it (:func:`with_mvm_choices`): the
    target's keys with the compiler's per-MVM choices applied, and what its
    zero detectors skip."""

    zero_shares: ZeroShares | None = None
    """``None``: zero skipping is off for this MVM (no detection charged)."""
    row_group: int = 0
    """An IntraBlock mapping's row group (its weights' multiplexers pick
    among that many inputs); 0: none."""
    driven_scale: Fraction | None = None
    """Inputs driven per held row (an IntraBlock mapping's groups drive all
    their inputs for fewer held rows); None: one."""

    __hash__ = HardwareTarget.__hash__


def zero_shares_of(t: HardwareTarget) -> ZeroShares | None:
    """What ``t``'s zero detectors skip (``None``: skipping off)."""
    return t.zero_shares if isinstance(t, MvmTarget) else None


def row_group_of(t: HardwareTarget) -> int:
    """The IntraBlock row group an MVM's weights pick their inputs in (0:
    none)."""
    return t.row_group if isinstance(t, MvmTarget) else 0


def row_index_bits(reduction: int, block: int = 1) -> int:
    """Bits of one index naming a held row, or a held block of ``block``
    rows, among a weight's ``reduction`` rows (0: ``reduction`` 0, every
    row held)."""
    positions = -(-reduction // block)
    return max(1, math.ceil(math.log2(positions))) if positions > 1 else 0


def weights_per_row(t: HardwareTarget, cols_used: int) -> int:
    """Weights one array row holds in ``cols_used`` columns (each spans
    ``bit_slices`` cells, which share its index and multiplexer)."""
    return -(-cols_used // t.bit_slices)


def driven_scale(row_group: int, driven: int, held: int) -> Fraction | None:
    """Inputs an array drives per weight row it holds, when not one (None):
    an IntraBlock mapping's (``row_group`` > 0) held rows of a group draw on
    every input of the group, the ``driven`` rows of the groups the widest
    column tile uses (the weight's reduction rows, or fewer where a nested
    FullBlock pattern drops groups) over the ``held`` rows."""
    return Fraction(driven, held) if row_group else None


def held_index_bits(
    t: HardwareTarget,
    reduction: int,
    row_group: int,
    rows: int,
    cols_used: int,
    block: int = 1,
    columns_from: int = 0,
) -> int:
    """Index bits of one list of ``rows`` held rows (an array's, or its
    column tiles' when they hold the same rows) of a weight's ``reduction``
    rows: an index per held block of ``block`` rows (a row gather; 1: per
    row), or, in an IntraBlock mapping of ``row_group`` rows, a
    ``ceil(log2 row_group)``-bit index per weight of each row (0: every row
    held); where the arrays hold only some of a weight's ``columns_from``
    columns, besides, the output each of its ``cols_used`` columns' weights
    writes."""
    outputs = weights_per_row(t, cols_used) * row_index_bits(columns_from)
    if row_group:
        bits = row_index_bits(row_group)  # of the row group's rows
        return rows * weights_per_row(t, cols_used) * bits + outputs
    return -(-rows // block) * row_index_bits(reduction, block) + outputs


def zero_detections(t: HardwareTarget, rows_used: int) -> int:
    """Zero detections of one input vector on one array: every input pass
    checks each ``zero_detect_rows`` group of the rows used."""
    return t.input_passes * -(-rows_used // max(1, t.array.zero_detect_rows))


@lru_cache(maxsize=256)
def with_mvm_choices(
    t: HardwareTarget,
    rows_per_pass: int = 0,
    zero_shares: ZeroShares | None = None,
    row_group: int = 0,
    driven_scale: Fraction | None = None,
) -> HardwareTarget:
    """``t`` as an MVM sees it when it drives at most ``rows_per_pass`` word
    lines per ADC pass (0: the target's own ``active_rows``), its zero
    detectors find ``zero_shares`` of its input bit-planes (``None``: no
    skipping) and its weight is an IntraBlock mapping of ``row_group`` rows
    per group (0: none) whose groups drive ``driven_scale`` inputs per held
    row.

    A compiler's choice of fewer rows per pass (``cim-rows-per-pass``) costs
    passes, and each pass converts every column again; zero skipping
    (``cim-input-sparsity``, on a target with ``array.zero_skip``) saves the
    skipped planes' share of the work and charges a detection per plane."""
    if rows_per_pass > 0 and rows_per_pass != t.array.active_rows:
        t = dataclasses.replace(
            t, array=dataclasses.replace(t.array, active_rows=rows_per_pass)
        )
    if zero_shares is None and not row_group:
        return t
    if zero_shares is not None and not t.array.zero_skip:
        raise ValueError(f"target '{t.name}' has no zero detectors (array.zero_skip)")
    tables = {f.name: getattr(t, f.name) for f in dataclasses.fields(HardwareTarget)}
    return MvmTarget(
        **tables,
        zero_shares=zero_shares,
        row_group=row_group,
        driven_scale=driven_scale,
    )


def wordline_passes(t: HardwareTarget, rows_used: int) -> int:
    """Passes one MVM needs when only ``active_rows`` word lines drive at once."""
    return max(1, _ceil_div(rows_used, t.array.active_rows))


def array_activations(t: HardwareTarget, rows_used: int, cols_used: int) -> Fraction:
    """Whole-array activations one vector costs: its word-line passes, each
    counting only the sub-arrays holding its rows and the columns used
    (``array.subarray_rows`` x ``subarray_cols``; an undivided array: one
    per pass). CIMinus activates only the sub-arrays that hold stored
    blocks (ciminus.md §4.3)."""
    passes = wordline_passes(t, rows_used)
    a = t.array
    if not a.subarray_rows and not a.subarray_cols:
        return Fraction(passes)
    block_rows = a.subarray_rows or a.rows
    block_cols = a.subarray_cols or a.cols
    per_pass = math.ceil(min(a.active_rows, a.rows) / block_rows)
    last = rows_used - (passes - 1) * a.active_rows
    row_blocks = (passes - 1) * per_pass + math.ceil(last / block_rows)
    col_blocks = math.ceil(cols_used / block_cols)
    return Fraction(row_blocks * col_blocks, per_pass * math.ceil(a.cols / block_cols))


def adc_rounds(t: HardwareTarget, cols_used: int) -> int:
    """Conversion rounds one input pass needs: ``cols_used`` columns on the
    array's ``adcs_per_array`` shared ADCs (at least one round)."""
    return max(1, -(-cols_used // t.array.adcs_per_array))


def mvm_issue_interval(t: HardwareTarget, cols_used: int) -> int:
    """Cycles between input vectors of an MVM on ``cols_used`` columns: the
    target's one-round interval times the ADC rounds the columns need, and
    for an IntraBlock mapping the multiplexers' select delay on each input
    pass (``array.mux_delay_cycles``)."""
    interval = t.array.mvm_issue_interval_cycles * adc_rounds(t, cols_used)
    if row_group_of(t):
        interval += t.input_passes * t.array.mux_delay_cycles
    return interval


def mvm_cycles(t: HardwareTarget, vectors: int, rows_used: int, cols_used: int) -> int:
    """Cycles for every array of a group to process ``vectors`` input vectors,
    each array using ``rows_used`` rows and ``cols_used`` columns."""
    if vectors <= 0:
        return 0
    passes = wordline_passes(t, rows_used)
    a = t.array
    interval = mvm_issue_interval(t, cols_used)
    latency = a.mvm_latency_cycles - a.mvm_issue_interval_cycles + interval
    dense = passes * (latency + (vectors - 1) * interval)
    shares = zero_shares_of(t)
    if shares is None:
        return dense
    return dense - math.floor(shares.planes * passes * vectors * interval)


def adc_conversion_pj(t: HardwareTarget) -> float:
    """Energy of one ADC conversion: ``adc_pj_per_conversion_step *
    2^adc_bits`` (Walden's figure of merit)."""
    return t.energy.adc_pj_per_conversion_step * 2**t.array.adc_bits


def mvm_cost(
    t: HardwareTarget, arrays: int, vectors: int, rows_used: int, cols_used: int
) -> OpCost:
    """MVMs on ``arrays`` arrays in parallel, ``vectors`` vectors each."""
    activations = arrays * vectors
    passes = wordline_passes(t, rows_used)
    e = t.energy
    shares = zero_shares_of(t)
    converted = 1.0 - (shares.planes if shares else 0.0)
    driven = 1.0 - (shares.groups if shares else 0.0)
    planes = activations * passes * t.input_passes
    inputs = rows_used
    if isinstance(t, MvmTarget) and t.driven_scale is not None:
        inputs = math.ceil(rows_used * t.driven_scale)
    whole = float(array_activations(t, rows_used, cols_used))
    energy = {
        "array": activations * whole * e.array_mvm_pj * driven,
        "adc": planes * cols_used * adc_conversion_pj(t) * converted,
        "shift_add": planes * cols_used * e.shift_add_pj * converted,
        "dac": activations * inputs * t.input_passes * e.dac_conversion_pj * driven,
    }
    if shares is not None:
        detections = activations * zero_detections(t, rows_used)
        energy["zero_detect"] = detections * e.zero_detect_pj
    if row_group_of(t):
        weights = rows_used * weights_per_row(t, cols_used)
        selects = activations * weights * t.input_passes
        energy["mux"] = selects * e.mux_select_pj
    return OpCost(mvm_cycles(t, vectors, rows_used, cols_used), energy)


def static_energy(
    t: HardwareTarget, cycles: int, core_cycles: int | None = None
) -> dict[str, float]:
    """Leakage of the chip's arrays (with their ADCs), buffers, vector units
    and interconnect over a run of ``cycles`` (picojoules per component):
    static power times the time. The global buffer leaks for the whole run;
    each core's units (its arrays, local buffer, vector units and
    interconnect share) for ``core_cycles`` summed over the cores (None:
    every core for the whole run; less where ``energy.gate_idle_cores``
    gates a core before its first op and after its last)."""
    nanoseconds = cycles / t.target.clock_ghz
    e = t.energy
    array = e.array_static_mw + e.adc_static_mw * t.array.adcs_per_array
    vector = e.vector_static_mw * t.vector.units_per_core
    if core_cycles is None:
        return {
            "array_static": array * t.total_arrays * nanoseconds,
            "buffer_static": (
                e.global_buffer_static_mw + e.local_buffer_static_mw * t.total_cores
            )
            * nanoseconds,
            "vector_static": vector * t.total_cores * nanoseconds,
            "interconnect_static": e.interconnect_static_mw
            * t.total_cores
            * nanoseconds,
        }
    core_nanoseconds = core_cycles / t.target.clock_ghz
    return {
        "array_static": array * t.hierarchy.arrays_per_core * core_nanoseconds,
        "buffer_static": e.global_buffer_static_mw * nanoseconds
        + e.local_buffer_static_mw * core_nanoseconds,
        "vector_static": vector * core_nanoseconds,
        "interconnect_static": e.interconnect_static_mw * core_nanoseconds,
    }


def program_cost(
    t: HardwareTarget, arrays: int, rows_used: int, cols_used: int, index_bits: int = 0
) -> OpCost:
    """Write weights into ``arrays`` arrays (in parallel), row by row; with
    ``index_bits`` per array, its held rows' indices are read with them
    (compacted rows, :func:`held_index_bits`) to set the gather of its
    inputs."""
    energy = {"program": arrays * rows_used * cols_used * t.energy.cell_program_pj}
    if index_bits:
        bits = arrays * index_bits
        energy["index"] = bits * t.energy.index_read_pj_per_bit
    return OpCost(rows_used * t.array.program_cycles_per_row, energy)


def switch_cost(t: HardwareTarget, arrays: int) -> OpCost:
    """Switch ``arrays`` arrays between compute and memory mode together."""
    return OpCost(
        t.dual_mode.switch_latency_cycles if arrays > 0 else 0,
        {"switch": arrays * t.energy.mode_switch_pj},
    )


def link_cycles(
    t: HardwareTarget,
    location: Location,
    nbytes: int,
    arrays: int = 0,
    reads: bool = True,
) -> int:
    """Cycles one storage level's side of a transfer takes: DRAM with its
    latency when the transfer ``reads`` it (writes are posted), ``arrays``
    memory-mode arrays in parallel, the global buffer or a core's local
    buffer."""
    if location == "local":
        return local_read_cycles(t, nbytes)
    if location == "dram":
        latency = t.dram.latency_cycles if reads else 0
        return latency + _ceil_div(nbytes, t.dram.bandwidth_bytes_per_cycle)
    if location == "memory":
        bandwidth = max(1, arrays) * t.dual_mode.memory_bandwidth_bytes_per_cycle
        if bandwidth <= 0:
            raise ValueError(f"target '{t.name}' has no memory-mode bandwidth")
        return _ceil_div(nbytes, bandwidth)
    return _ceil_div(nbytes, t.buffers.global_bandwidth_bytes_per_cycle)


def _link_energy(
    t: HardwareTarget, location: Location, nbytes: int
) -> dict[str, float]:
    e = t.energy
    if location == "local":
        return {}  # the target gives no local-buffer energy
    per_byte = {
        "dram": ("dram", e.dram_pj_per_byte),
        "buffer": ("buffer", e.buffer_pj_per_byte),
        "memory": ("memory_array", e.memory_array_pj_per_byte),
    }[location]
    return {per_byte[0]: nbytes * per_byte[1]}


def transfer_cost(
    t: HardwareTarget,
    src: Location,
    dst: Location,
    nbytes: int,
    memory_arrays: int = 0,
) -> OpCost:
    """Move ``nbytes`` between two storage levels (load or store).

    The slower side sets the time; both sides are charged energy. Between
    memory-mode arrays and a core's local buffer this is :func:`feed_cost`.
    Between memory-mode arrays and DRAM or the global buffer the bytes also
    cross the interconnect to or from the arrays' cores
    (:func:`crosses_interconnect`), which may be the slowest part.
    """
    if "local" in (src, dst):
        if {src, dst} != {"memory", "local"}:
            raise ValueError(f"no transfer between {src} and {dst}")
        return feed_cost(t, nbytes, memory_arrays)
    energy: dict[str, float] = {}
    for location in (src, dst):
        for component, pj in _link_energy(t, location, nbytes).items():
            energy[component] = energy.get(component, 0.0) + pj
    if crosses_interconnect(src, dst):
        cycles = max(crossing_parts(t, src, dst, nbytes, memory_arrays))
        energy["interconnect"] = nbytes * t.energy.interconnect_pj_per_byte
    else:
        cycles = max(
            link_cycles(t, src, nbytes, memory_arrays),
            link_cycles(t, dst, nbytes, memory_arrays, reads=False),
        )
    return OpCost(cycles, energy)


def crossing_parts(
    t: HardwareTarget, src: Location, dst: Location, nbytes: int, memory_arrays: int
) -> tuple[int, int]:
    """``(arrays, shared)`` cycles of a transfer that crosses the
    interconnect (:func:`crosses_interconnect`): its memory-mode arrays'
    side, and the other side with the interconnect, the shared bandwidth
    it takes a share of when the arrays are slower. The transfer takes the
    longer (:func:`transfer_cost`)."""
    memory = link_cycles(t, "memory", nbytes, memory_arrays, reads=src == "memory")
    other = dst if src == "memory" else src
    shared = max(
        link_cycles(t, other, nbytes, reads=other == src),
        interconnect_cost(t, nbytes).cycles,
    )
    return memory, shared


def crosses_interconnect(src: Location, dst: Location) -> bool:
    """Whether a transfer's bytes cross the interconnect: memory-mode arrays
    sit in cores, DRAM and the global buffer across the interconnect from
    them (a DRAM <-> buffer transfer does not cross it)."""
    return "memory" in (src, dst) and "local" not in (src, dst) and src != dst


# -- cores and the interconnect ---------------------------------------------


def count_ids(ranges: Ranges) -> int:
    """How many ids ``[first, stop)`` ranges hold."""
    return sum(stop - first for first, stop in ranges)


def all_cores(t: HardwareTarget) -> Ranges:
    """Every core of the target, as ranges."""
    return ((0, t.total_cores),)


@lru_cache(maxsize=1 << 14)
def cores_of_arrays(t: HardwareTarget, arrays: Ranges) -> Ranges:
    """The cores holding ``arrays`` (array ``a`` sits in core
    ``a // arrays_per_core``), as sorted, disjoint ranges."""
    per_core = t.hierarchy.arrays_per_core
    cores: list[tuple[int, int]] = []
    for first, stop in arrays:
        start, end = first // per_core, (stop - 1) // per_core + 1
        if cores and start <= cores[-1][1]:
            cores[-1] = (cores[-1][0], max(cores[-1][1], end))
        else:
            cores.append((start, end))
    return tuple(cores)


def mesh_width(t: HardwareTarget) -> tuple[int, int]:
    """Columns and rows of one chip's core grid on a mesh."""
    cores = t.hierarchy.cores_per_chip
    width = math.isqrt(cores - 1) + 1 if cores > 1 else 1
    return width, -(-cores // width)


def mesh_position(t: HardwareTarget, core: int) -> tuple[int, int]:
    """Grid position of ``core``: chips side by side in x, each a grid of
    ``mesh_width`` columns filled row by row."""
    per_chip = t.hierarchy.cores_per_chip
    width, _ = mesh_width(t)
    chip, local = divmod(core, per_chip)
    return chip * width + local % width, local // width


def mesh_hops(t: HardwareTarget, core: int) -> int:
    """Routers from the global buffer's attach point (the centre router of
    chip 0, ``(width // 2, rows // 2)``) to ``core``, counting both ends."""
    width, rows = mesh_width(t)
    x, y = mesh_position(t, core)
    return abs(x - width // 2) + abs(y - rows // 2) + 1


GLOBAL_PORT = "gb"
"""The global buffer's port onto a mesh: one resource at the buffer's
bandwidth, shared in lanes by every transfer to or from it."""


def interconnect_resources(t: HardwareTarget) -> tuple[str, ...]:
    """Every interconnect resource of the target: ``bus``, or ``link c`` per
    core and the global buffer's port :data:`GLOBAL_PORT`."""
    if t.interconnect.topology != "mesh":
        return ("bus",)
    return (*(f"link {c}" for c in range(t.total_cores)), GLOBAL_PORT)


@lru_cache(maxsize=1 << 14)
def interconnect_path(t: HardwareTarget, cores: Ranges) -> tuple[tuple[str, ...], int]:
    """The resources a transfer between the global buffer and ``cores``
    holds, and the most hops it crosses (1 on a bus)."""
    if not cores:
        raise ValueError("an interconnect transfer needs at least one core")
    if t.interconnect.topology != "mesh":
        return ("bus",), 1
    ids = [c for first, stop in cores for c in range(first, stop)]
    hops = max(mesh_hops(t, c) for c in ids)
    return (*(f"link {c}" for c in ids), GLOBAL_PORT), hops


@lru_cache(maxsize=1 << 14)
def interconnect_bandwidth(t: HardwareTarget, cores: Ranges) -> float:
    """Bytes per cycle between the global buffer and ``cores``: a bus's
    rate, or on a mesh the cores' links together, at most the buffer's
    port."""
    link = t.interconnect.bandwidth_bytes_per_cycle
    global_bw = t.buffers.global_bandwidth_bytes_per_cycle
    if t.interconnect.topology != "mesh":
        return min(link, global_bw)
    return min(global_bw, count_ids(cores) * link)


def path_loads(
    t: HardwareTarget,
    names: Sequence[str],
    cores: Ranges,
    interconnect_bytes: int,
    dram_bytes: int,
    carried: int | None = None,
) -> tuple[float, ...]:
    """Cycles each bandwidth resource ``names`` (an op's ``dram`` and
    interconnect path to ``cores``) needs for the op's bytes at its own
    full rate: ``dram`` its DRAM bytes, a bus or the global buffer's port
    every interconnect byte, a core's link that core's share of them (of
    ``carried``, a multicast's, :func:`link_bytes`). An op runs at the rate
    of the slowest; on the others it takes that share of the bandwidth
    (:func:`lane_share`)."""
    link = t.interconnect.bandwidth_bytes_per_cycle
    links = link_bytes(t, interconnect_bytes, carried)
    per_core = links / max(1, count_ids(cores))
    loads: list[float] = []
    for name in names:
        if name == "dram":
            loads.append(dram_bytes / t.dram.bandwidth_bytes_per_cycle)
        elif name == "bus":
            loads.append(interconnect_bytes / interconnect_bandwidth(t, cores))
        elif name == GLOBAL_PORT:
            loads.append(
                interconnect_bytes / t.buffers.global_bandwidth_bytes_per_cycle
            )
        else:
            loads.append(per_core / link)
    return tuple(loads)


def lane_share(lanes: int, load: float, slowest: float) -> int:
    """Lanes an op running on ``lanes`` lanes of its slowest resource (busy
    ``slowest`` cycles at the full rate) takes of one that its bytes keep
    busy ``load`` cycles: the same share of the rate, at least one lane."""
    if load >= slowest:
        return lanes
    return max(1, math.ceil(lanes * load / slowest - 1e-9))


def sends_once(t: HardwareTarget) -> bool:
    """Whether bytes several cores take leave the global buffer once: on a
    bus (every transfer reaches every core) or a mesh that multicasts."""
    return t.interconnect.topology != "mesh" or t.interconnect.multicast


def multicast_bytes(t: HardwareTarget, nbytes: int, copies: int) -> int:
    """Bytes the interconnect's links carry when ``nbytes`` read once reach
    ``copies`` copies' cores: on a mesh each copy's cores take their own
    (a bus carries them once, to every core)."""
    if t.interconnect.topology != "mesh":
        return nbytes
    return nbytes * max(1, copies)


def interconnect_cost(
    t: HardwareTarget,
    nbytes: int,
    cores: Ranges | None = None,
    carried: int | None = None,
) -> OpCost:
    """Move ``nbytes`` over the interconnect between the global buffer and
    ``cores`` (default: every core); charges the interconnect and the
    global buffer per byte. ``carried`` (default ``nbytes``), on a mesh
    that multicasts: the bytes the cores' links carry in all when several
    of ``cores`` take the same bytes, which leave the buffer's port once
    (``nbytes``)."""
    path_cores = all_cores(t) if cores is None else cores
    _, hops = interconnect_path(t, path_cores)
    e = t.energy
    links = link_bytes(t, nbytes, carried)
    if links == nbytes:
        cycles = _ceil_div(nbytes, interconnect_bandwidth(t, path_cores))
    else:
        rate = count_ids(path_cores) * t.interconnect.bandwidth_bytes_per_cycle
        cycles = max(
            _ceil_div(nbytes, t.buffers.global_bandwidth_bytes_per_cycle),
            _ceil_div(links, rate),
        )
    return OpCost(
        t.interconnect.latency_cycles * hops + cycles,
        {
            "interconnect": links * e.interconnect_pj_per_byte,
            "buffer": nbytes * e.buffer_pj_per_byte,
        },
    )


def link_bytes(t: HardwareTarget, nbytes: int, carried: int | None) -> int:
    """The bytes a transfer of ``nbytes`` through the buffer's port puts on
    the links of its cores: ``carried`` on a mesh (a multicast's), else
    ``nbytes``."""
    if carried is None or t.interconnect.topology != "mesh":
        return nbytes
    return max(nbytes, carried)


@lru_cache(maxsize=1 << 16)
def replica_stream_cycles(t: HardwareTarget, copies: int, weight_bytes: int) -> int:
    """The interconnect time of streaming a weight of ``weight_bytes`` to
    ``copies - 1`` extra copies (each copy's program streams the weight to
    its own cores; the first copy's is the segment's to pay anyway). None
    where the interconnect multicasts: one program writes every copy, its
    bytes read once and each core's link carrying its own copy's share, as
    long as for one copy."""
    if copies < 2 or not weight_bytes or t.interconnect.multicast:
        return 0
    return interconnect_cost(t, (copies - 1) * weight_bytes).cycles


def feed_cost(t: HardwareTarget, nbytes: int, arrays: int) -> OpCost:
    """``nbytes`` between ``arrays`` memory-mode arrays and the compute
    arrays (or local buffer) of their core: the memory-to-compute path."""
    bandwidth = max(1, arrays) * t.dual_mode.feed_bytes_per_cycle
    if not t.dual_mode.feeds_compute or bandwidth <= 0:
        raise ValueError(
            f"target '{t.name}' has no memory-to-compute path "
            "(dual_mode.feeds_compute is false)"
        )
    return OpCost(
        _ceil_div(nbytes, bandwidth),
        {"memory_array": nbytes * t.energy.memory_array_pj_per_byte},
    )


def concurrent_cost(*costs: OpCost) -> OpCost:
    """Parts of one op that run at the same time: the longest sets the
    cycles, every part is charged energy."""
    energy: dict[str, float] = {}
    for cost in costs:
        for component, pj in cost.energy_pj.items():
            energy[component] = energy.get(component, 0.0) + pj
    return OpCost(max((c.cycles for c in costs), default=0), energy)


def local_read_cycles(t: HardwareTarget, nbytes: int) -> int:
    """Cycles for a core to read ``nbytes`` from its local buffer."""
    return _ceil_div(nbytes, t.buffers.local_bandwidth_bytes_per_cycle)


def ranges_within(inner: Ranges, outer: Ranges) -> bool:
    """Whether every id of ``inner`` lies in ``outer`` (sorted, disjoint
    ranges)."""
    return all(
        any(first <= start and stop <= last for first, last in outer)
        for start, stop in inner
    )


def ranges_overlap(first: Ranges, second: Ranges) -> bool:
    """Whether two sets of ranges share an id."""
    return any(a < d and c < b for a, b in first for c, d in second)


@lru_cache(maxsize=1 << 14)
def feeds_directly(t: HardwareTarget, cores: Ranges, feed_arrays: Ranges) -> bool:
    """Whether memory-mode ``feed_arrays`` feed an MVM on ``cores`` by the
    memory-to-compute path: the target has it and every feed array sits in
    one of those cores (otherwise they are read over the interconnect)."""
    return t.dual_mode.feeds_compute and ranges_within(
        cores_of_arrays(t, feed_arrays), cores
    )


@dataclass(frozen=True, slots=True)
class StreamBytes:
    """The bytes an op streams while it works, by what they cross: the
    interconnect, the DRAM channel (read, written) and memory-mode arrays
    (read, written; ``direct`` of the read bytes go by the memory-to-compute
    path)."""

    interconnect: int = 0
    dram_read: int = 0
    dram_written: int = 0
    memory_read: int = 0
    memory_written: int = 0
    direct: int = 0
    links: int | None = None
    """The bytes the cores' links carry in all where a multicast puts more
    on them than cross the buffer's port (``interconnect``); None: as
    many."""


NO_STREAM = StreamBytes()


def stream_bytes(
    in_from: StreamLevel,
    in_bytes: int,
    out_to: StreamLevel,
    out_bytes: int,
    direct: bool = False,
    in_links: int | None = None,
) -> StreamBytes:
    """Where ``in_bytes`` streamed from ``in_from`` and ``out_bytes``
    streamed to ``out_to`` go: every byte crosses the interconnect except
    those of a ``direct`` input (memory-mode arrays feeding the compute
    arrays of their own core); ``in_links`` (a multicast input's) is what
    the input puts on the links of the op's cores."""
    if direct and in_from != "memory":
        raise ValueError("only memory-mode arrays feed compute arrays directly")
    crossing = 0 if direct else in_bytes
    links = None
    if crossing and in_links is not None and in_links > in_bytes:
        links = in_links + out_bytes
    return StreamBytes(
        interconnect=crossing + out_bytes,
        dram_read=in_bytes if in_from == "dram" else 0,
        dram_written=out_bytes if out_to == "dram" else 0,
        memory_read=in_bytes if in_from == "memory" else 0,
        memory_written=out_bytes if out_to == "memory" else 0,
        direct=in_bytes if direct else 0,
        links=links,
    )


def stream_cost(
    t: HardwareTarget,
    cores: Ranges,
    *,
    in_from: StreamLevel = "buffer",
    in_bytes: int = 0,
    in_arrays: Ranges = (),
    out_to: StreamLevel = "buffer",
    out_bytes: int = 0,
    out_arrays: Ranges = (),
    direct: bool = False,
    in_links: int | None = None,
) -> OpCost:
    """What an op on ``cores`` streams while it works: ``in_bytes`` from
    ``in_from`` (the memory-mode ``in_arrays`` when ``memory``) and
    ``out_bytes`` to ``out_to`` (``out_arrays``); with ``direct`` the input
    comes by the memory-to-compute path instead of the interconnect;
    ``in_links``: what a multicast input, read once, puts on the cores'
    links (:func:`interconnect_cost`).

    The parts run at the same time (:func:`concurrent_cost`):
    ``interconnect_cost`` of every byte that crosses the interconnect (its
    energy charges the global buffer the bytes pass through);
    ``link_cycles(dram)`` of the bytes read from and written to DRAM
    together (one channel, one latency); the memory-mode arrays at their
    bandwidth (:func:`memory_stream_cost`).
    """
    levels = stream_bytes(in_from, in_bytes, out_to, out_bytes, direct, in_links)
    parts: list[OpCost] = []
    if levels.interconnect:
        parts.append(interconnect_cost(t, levels.interconnect, cores, levels.links))
    dram = levels.dram_read + levels.dram_written
    if dram:
        parts.append(
            OpCost(
                link_cycles(t, "dram", dram, reads=levels.dram_read > 0),
                _link_energy(t, "dram", dram),
            )
        )
    if levels.memory_read or levels.memory_written:
        parts.append(memory_stream_cost(t, levels, in_arrays, out_arrays))
    return concurrent_cost(*parts)


def memory_stream_cost(
    t: HardwareTarget, levels: StreamBytes, in_arrays: Ranges, out_arrays: Ranges
) -> OpCost:
    """Memory-mode arrays an op streams from (``in_arrays``) and to
    (``out_arrays``): each side at ``n`` arrays' bandwidth (the read side on
    the memory-to-compute path at :func:`feed_cost`'s rate when it is
    ``direct``), both at once, or one after the other when the two share an
    array."""
    read = write = 0
    if levels.memory_read:
        n_read = count_ids(in_arrays)
        read = (
            feed_cost(t, levels.memory_read, n_read).cycles
            if levels.direct
            else link_cycles(t, "memory", levels.memory_read, n_read)
        )
    if levels.memory_written:
        write = link_cycles(t, "memory", levels.memory_written, count_ids(out_arrays))
    shared = read > 0 and write > 0 and ranges_overlap(in_arrays, out_arrays)
    nbytes = levels.memory_read + levels.memory_written
    return OpCost(
        read + write if shared else max(read, write),
        _link_energy(t, "memory", nbytes),
    )


def mvm_op_parts(
    t: HardwareTarget,
    arrays: int,
    vectors: int,
    rows_used: int,
    cols_used: int,
    *,
    local_bytes: int = 0,
    feed: Feed = "local",
    in_bytes: int = 0,
    out_bytes: int = 0,
    cores: Ranges | None = None,
    feed_arrays: Ranges = (),
    out_to: StreamLevel = "buffer",
    out_arrays: Ranges = (),
    rows_per_pass: int = 0,
    zero_shares: ZeroShares | None = None,
    row_group: int = 0,
    driven_scale: Fraction | None = None,
    in_links: int | None = None,
) -> tuple[OpCost, OpCost]:
    """An MVM op as a trace states it, as ``(compute, stream)``: :func:`mvm_cost` on
    ``arrays`` arrays, at the same time as its busiest core reads ``local_bytes`` from
    its local buffer; and as it streams (:func:`stream_cost`): ``in_bytes`` of input
    from where ``feed`` says (``feed_arrays`` for ``memory``, by the memory-to-compute
    path when :func:`feeds_directly`) and ``out_bytes`` of outputs to ``out_to``
    (``out_arrays`` for ``memory``); ``cores`` are the cores of its arrays (default
    every core); ``rows_per_pass``, ``zero_shares``, ``row_group`` and
    ``driven_scale`` are the MVM's own (:func:`with_mvm_choices`);
    ``in_links``: a multicast input's bytes on the cores' links."""
    compute = mvm_cost(
        with_mvm_choices(t, rows_per_pass, zero_shares, row_group, driven_scale),
        arrays,
        vectors,
        rows_used,
        cols_used,
    )
    local = OpCost(local_read_cycles(t, local_bytes), {})
    if not in_bytes and not out_bytes:
        return concurrent_cost(compute, local), NO_COST
    if feed == "local" and in_bytes:
        raise ValueError("an MVM fed from its local buffers streams no input")
    op_cores = all_cores(t) if cores is None else cores
    stream = stream_cost(
        t,
        op_cores,
        in_from="buffer" if feed == "local" else feed,
        in_bytes=in_bytes,
        in_arrays=feed_arrays,
        out_to=out_to,
        out_bytes=out_bytes,
        out_arrays=out_arrays,
        direct=feed == "memory" and feeds_directly(t, op_cores, feed_arrays),
        in_links=in_links,
    )
    return concurrent_cost(compute, local), stream


def mvm_op_cost(
    t: HardwareTarget,
    arrays: int,
    vectors: int,
    rows_used: int,
    cols_used: int,
    **streams: Any,
) -> OpCost:
    """:func:`mvm_op_parts` run at the same time."""
    return concurrent_cost(
        *mvm_op_parts(t, arrays, vectors, rows_used, cols_used, **streams)
    )


def program_op_parts(
    t: HardwareTarget,
    arrays: int,
    rows_used: int,
    cols_used: int,
    *,
    cores: Ranges | None = None,
    feed: StreamLevel = "buffer",
    in_bytes: int = 0,
    feed_arrays: Ranges = (),
    index_bits: int = 0,
    copies: int = 1,
) -> tuple[OpCost, OpCost]:
    """A program as a trace states it, as ``(compute, stream)``: :func:`program_cost` on
    ``arrays`` arrays (``index_bits`` per array); and ``in_bytes`` of values stream
    from ``feed`` (``feed_arrays`` for ``memory``) over the interconnect to ``cores``,
    the cores of its arrays (:func:`stream_cost`; 0 bytes: nothing streams), read
    once for its ``copies`` copies."""
    program = program_cost(t, arrays, rows_used, cols_used, index_bits)
    if not in_bytes:
        return program, NO_COST
    stream = stream_cost(
        t,
        all_cores(t) if cores is None else cores,
        in_from=feed,
        in_bytes=in_bytes,
        in_arrays=feed_arrays,
        in_links=multicast_bytes(t, in_bytes, copies),
    )
    return program, stream


def program_op_cost(
    t: HardwareTarget, arrays: int, rows_used: int, cols_used: int, **streams: Any
) -> OpCost:
    """:func:`program_op_parts` run at the same time."""
    return concurrent_cost(
        *program_op_parts(t, arrays, rows_used, cols_used, **streams)
    )


VectorWork = Literal["vector", "accumulate"]
"""The energy component of vector-unit work: ``accumulate`` for the ops
that finish an MVM's outputs (adding its row tiles' partial sums, its bias
and a fused residual, and applying the activation as they leave; CIMinus's
accumulator), ``vector`` for every other."""


def vector_work_of(op_kind: str) -> VectorWork:
    """The energy component of a vector op of kind ``op_kind``."""
    return "accumulate" if op_kind == "accumulate" else "vector"


def vector_cost(
    t: HardwareTarget, element_ops: int, units: int, work: VectorWork = "vector"
) -> OpCost:
    """``element_ops`` lane operations spread over ``units`` vector units,
    their energy charged to ``work``."""
    lanes = t.vector.lanes * max(1, units)
    if element_ops <= 0:
        return OpCost(0, {work: 0.0})
    return OpCost(
        t.vector.latency_cycles + _ceil_div(element_ops, lanes),
        {work: element_ops * t.energy.vector_pj_per_element},
    )


def vector_op_parts(
    t: HardwareTarget,
    element_ops: int,
    cores: Ranges,
    in_bytes: int = 0,
    out_bytes: int = 0,
    *,
    in_from: StreamLevel = "buffer",
    in_arrays: Ranges = (),
    out_to: StreamLevel = "buffer",
    out_arrays: Ranges = (),
    work: VectorWork = "vector",
) -> tuple[OpCost, OpCost]:
    """As ``(compute, stream)``, a vector op on the units of ``cores``
    (``units_per_core`` each), its energy charged to ``work``; and what it
    streams at the same time: ``in_bytes`` from ``in_from`` and
    ``out_bytes`` to ``out_to`` (:func:`stream_cost`)."""
    units = t.vector.units_per_core * count_ids(cores)
    compute = vector_cost(t, element_ops, units, work)
    if not in_bytes and not out_bytes:
        return compute, NO_COST
    stream = stream_cost(
        t,
        cores,
        in_from=in_from,
        in_bytes=in_bytes,
        in_arrays=in_arrays,
        out_to=out_to,
        out_bytes=out_bytes,
        out_arrays=out_arrays,
    )
    return compute, stream


def vector_op_cost(
    t: HardwareTarget,
    element_ops: int,
    cores: Ranges,
    in_bytes: int = 0,
    out_bytes: int = 0,
    **streams: Any,
) -> OpCost:
    """:func:`vector_op_parts` run at the same time."""
    return concurrent_cost(
        *vector_op_parts(t, element_ops, cores, in_bytes, out_bytes, **streams)
    )


LANES = 256
"""Each bandwidth resource (the DRAM channel, the bus, a mesh link, the
global buffer's port) is shared in this many lanes. A transfer takes as
many lanes as are free when it starts (all of them on an idle link), and
more as others free them, and runs at that share of the bandwidth
(:func:`cimflow.cimsim.engine.schedule`); an op that streams while it computes
takes the lanes its rate needs (:func:`lanes_needed`), so a long, slow
stream (an MVM reading its input as it computes) leaves the rest of the
link to other traffic instead of holding all of it. It approximates
bandwidth sharing (virtual channels on a link, interleaved DRAM requests)
in an event simulation whose resources are otherwise held whole. An op
runs on lanes of the slowest resource on its path and takes the same share
of the rate on the others (:func:`path_loads`, :func:`lane_share`): a
transfer to one core at its link's full rate holds one eighth of a global
buffer port eight links wide.

The smallest share an op holds is one lane, so the lanes must be fine:
with 8, an MVM that reads its input from DRAM at 2% of the channel's rate
held an eighth of it for its whole run, and no more than 8 such MVMs ran
at once (32 copies of a ResNet-50 layer on ``pimcomp_default`` ran in 4
waves; that layer is 4x faster with 64 lanes). With 64, MobileNetV2's
pipeline on ``pimcomp_default`` (hundreds of copies streaming through the
global buffer's 64 B/cycle port at a few bytes per 4,000-cycle MVM each)
was held 60% of its run while it moved 20 B per busy cycle; with 256 its
fastest schedule is 6.5% faster (2.72 -> 2.55 ms), VGG-16's 6%, for 30%
more simulation time over the four CNNs on both default targets (1,024
lanes: within 3% of 256 either way, at 2.8 times the bench's time;
``docs/machine-model.md``, "Bandwidth lanes")."""


def lanes_needed(compute: int, stream: int) -> int:
    """Lanes an op needs to stream ``stream`` cycles' worth of bytes (at the
    full bandwidth) within ``compute`` cycles: all of them for a transfer."""
    if compute <= 0:
        return LANES
    return max(1, min(LANES, -(-stream * LANES // compute)))


def laned_cycles(compute: int, stream: int, lanes: int) -> int:
    """An op's duration on ``lanes`` lanes: its compute, or its stream at
    ``lanes / LANES`` of the bandwidth, whichever is longer."""
    return max(compute, streamed_cycles(stream * LANES, lanes))


def streamed_cycles(lane_cycles: int, lanes: int) -> int:
    """Cycles ``lanes`` lanes take to stream ``lane_cycles`` (a stream's
    cycles at the full bandwidth times :data:`LANES`)."""
    return -(-lane_cycles // max(1, lanes))


def cycles_to_seconds(t: HardwareTarget, cycles: int) -> float:
    return cycles / (t.target.clock_ghz * 1e9)


EPILOGUE_HOSTS = ("accumulate", "add", "sub", "mul")
"""Vector ops that may apply an activation to their results as they leave
(``attrs.then``), the activation's lane operations added to their own."""

EPILOGUE_ACTIVATIONS = ("relu", "clip", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu")
"""The activations they may apply (``clip`` with ``then_min``, ``then_max``)."""

RESIDUAL_LAYOUTS = ("rows", "nchw")
"""How the residual an ``accumulate`` adds (``attrs.residual``, its last
input) lines up with the MVM's ``[V, N]`` outputs: ``rows``, the same
elements in row-major order (a reshape); ``nchw``, a feature map ``[B, C,
H, W]`` whose ``(b, h, w)`` is vector ``v`` and ``c`` output ``n`` (what
``col2im`` folds the outputs into)."""

# Lane operations per output element for vector-unit work, by kind (the
# payload's operation, e.g. "softmax", or its elementwise function, e.g.
# "gelu"). Transcendental functions are evaluated by a 4-step piecewise
# polynomial; normalizations count their statistics passes. Kinds not listed
# cost one lane operation per element (elementwise and data movement);
# "reshape" is a free view.
VECTOR_OPS_PER_ELEMENT: dict[str, int] = {
    "reshape": 0,
    # views: the window expansion happens as the cores' local buffers feed
    # their arrays, the NCHW fold as the arrays' outputs are written
    "im2col": 0,
    "col2im": 0,
    "div": 2,
    "reciprocal": 2,
    "sqrt": 2,
    "sigmoid": 4,
    "tanh": 4,
    "erf": 4,
    "exp": 4,
    "log": 4,
    "gelu": 4,
    "gelu_tanh": 4,
    "silu": 4,
    "softplus": 4,
    "cos": 4,
    "sin": 4,
    "pow": 4,
    "softmax": 5,
    "rms_norm": 6,
    "layer_norm": 8,
}


def vector_element_ops(
    kind: str, output_elements: int, work_per_output: int = 1
) -> int:
    """Lane operations of one vector-unit op.

    ``work_per_output`` is the inputs combined into one output where that is
    more than one: the reduction length of an activation matmul, the window of
    a pooling, the reduced extent of a reduction.
    """
    return VECTOR_OPS_PER_ELEMENT.get(kind, 1) * output_elements * work_per_output
