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
      latency  = mvm_latency - mvm_issue_interval + interval
      cycles   = passes * (latency + (vectors - 1) * interval)

  So fewer ADCs make every MVM wider than them slower, and an MVM on few
  columns of an array with shared ADCs issues faster than a full-width one.
  An array with one ADC per column (``adcs_per_array >= cols``) converts any
  column count in one round, so its timing does not depend on
  ``cols_used``. Energy per array and vector: ``passes * array_mvm_pj`` plus
  ``passes * input_passes * cols_used`` ADC conversions (every wordline pass
  digitizes every used column once per input pass) plus ``input_passes *
  rows_used`` DAC conversions. One conversion costs
  ``adc_pj_per_conversion_step * 2^adc_bits`` (Walden's figure of merit:
  energy per conversion step times the ``2^bits`` steps, with the effective
  number of bits taken as ``adc_bits``; R. H. Walden, IEEE JSAC 17(4), 1999;
  B. Murmann, "ADC Performance Survey"). Sharing ADCs changes the time, not
  the number of conversions, so it does not change the energy (ADC leakage
  is not modelled).
- Programming weights: arrays are written row by row, all arrays of the group
  in parallel: ``cycles = rows_used * program_cycles_per_row``; energy per
  programmed cell.
- Transfers: ``latency + ceil(bytes / bandwidth)`` on the link that carries
  them (DRAM, interconnect, global buffer, or ``n`` memory-mode arrays read or
  written in parallel at ``n * memory_bandwidth``).
- Vector-unit work: ``latency + ceil(element_ops / (lanes * units))``, and
  nothing for zero lane operations (a reshape is a free view).
- Mode switch: ``switch_latency`` for any number of arrays switched together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cimflow.hw_targets import HardwareTarget

Location = Literal["dram", "buffer", "memory"]
LOCATIONS: tuple[Location, ...] = ("dram", "buffer", "memory")

# Energy components, in the order reports list them.
ENERGY_COMPONENTS: tuple[str, ...] = (
    "array",
    "adc",
    "dac",
    "program",
    "switch",
    "memory_array",
    "buffer",
    "interconnect",
    "dram",
    "vector",
)


@dataclass(frozen=True)
class OpCost:
    """Cycles of one operation and its energy per component (picojoules)."""

    cycles: int
    energy_pj: Mapping[str, float] = field(default_factory=lambda: {})

    @property
    def total_energy_pj(self) -> float:
        return sum(self.energy_pj.values())


def _ceil_div(numerator: float, denominator: float) -> int:
    return math.ceil(numerator / denominator) if numerator > 0 else 0


def wordline_passes(t: HardwareTarget, rows_used: int) -> int:
    """Passes one MVM needs when only ``active_rows`` word lines drive at once."""
    return max(1, _ceil_div(rows_used, t.array.active_rows))


def adc_rounds(t: HardwareTarget, cols_used: int) -> int:
    """Conversion rounds one input pass needs: ``cols_used`` columns on the
    array's ``adcs_per_array`` shared ADCs (at least one round)."""
    return max(1, -(-cols_used // t.array.adcs_per_array))


def mvm_issue_interval(t: HardwareTarget, cols_used: int) -> int:
    """Cycles between input vectors of an MVM on ``cols_used`` columns: the
    target's one-round interval times the ADC rounds the columns need."""
    return t.array.mvm_issue_interval_cycles * adc_rounds(t, cols_used)


def mvm_cycles(t: HardwareTarget, vectors: int, rows_used: int, cols_used: int) -> int:
    """Cycles for every array of a group to process ``vectors`` input vectors,
    each array using ``rows_used`` rows and ``cols_used`` columns."""
    if vectors <= 0:
        return 0
    passes = wordline_passes(t, rows_used)
    a = t.array
    interval = mvm_issue_interval(t, cols_used)
    latency = a.mvm_latency_cycles - a.mvm_issue_interval_cycles + interval
    return passes * (latency + (vectors - 1) * interval)


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
    conversions = activations * passes * t.input_passes * cols_used
    return OpCost(
        mvm_cycles(t, vectors, rows_used, cols_used),
        {
            "array": activations * passes * e.array_mvm_pj,
            "adc": conversions * adc_conversion_pj(t),
            "dac": activations * rows_used * t.input_passes * e.dac_conversion_pj,
        },
    )


def program_cost(
    t: HardwareTarget, arrays: int, rows_used: int, cols_used: int
) -> OpCost:
    """Write weights into ``arrays`` arrays (in parallel), row by row."""
    return OpCost(
        rows_used * t.array.program_cycles_per_row,
        {"program": arrays * rows_used * cols_used * t.energy.cell_program_pj},
    )


def switch_cost(t: HardwareTarget, arrays: int) -> OpCost:
    """Switch ``arrays`` arrays between compute and memory mode together."""
    return OpCost(
        t.dual_mode.switch_latency_cycles if arrays > 0 else 0,
        {"switch": arrays * t.energy.mode_switch_pj},
    )


def link_cycles(
    t: HardwareTarget, location: Location, nbytes: int, arrays: int = 0
) -> int:
    """Cycles one storage level's side of a transfer takes: DRAM with its
    latency, ``arrays`` memory-mode arrays in parallel, or the buffer."""
    if location == "dram":
        return t.dram.latency_cycles + _ceil_div(
            nbytes, t.dram.bandwidth_bytes_per_cycle
        )
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

    The slower side sets the time; both sides are charged energy.
    """
    cycles = max(
        link_cycles(t, src, nbytes, memory_arrays),
        link_cycles(t, dst, nbytes, memory_arrays),
    )
    energy: dict[str, float] = {}
    for location in (src, dst):
        for component, pj in _link_energy(t, location, nbytes).items():
            energy[component] = energy.get(component, 0.0) + pj
    return OpCost(cycles, energy)


def interconnect_cost(t: HardwareTarget, nbytes: int) -> OpCost:
    """Move ``nbytes`` over the interconnect (global buffer <-> cores)."""
    ic = t.interconnect
    return OpCost(
        ic.latency_cycles + _ceil_div(nbytes, ic.bandwidth_bytes_per_cycle),
        {"interconnect": nbytes * t.energy.interconnect_pj_per_byte},
    )


def vector_cost(t: HardwareTarget, element_ops: int, units: int) -> OpCost:
    """``element_ops`` lane operations spread over ``units`` vector units."""
    lanes = t.vector.lanes * max(1, units)
    if element_ops <= 0:
        return OpCost(0, {"vector": 0.0})
    return OpCost(
        t.vector.latency_cycles + _ceil_div(element_ops, lanes),
        {"vector": element_ops * t.energy.vector_pj_per_element},
    )


def cycles_to_seconds(t: HardwareTarget, cycles: int) -> float:
    return cycles / (t.target.clock_ghz * 1e9)


# Lane operations per output element for vector-unit work, by kind (the
# payload's operation, e.g. "softmax", or its elementwise function, e.g.
# "gelu"). Transcendental functions are evaluated by a 4-step piecewise
# polynomial; normalizations count their statistics passes. Kinds not listed
# cost one lane operation per element (elementwise and data movement);
# "reshape" is a free view.
VECTOR_OPS_PER_ELEMENT: dict[str, int] = {
    "reshape": 0,
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
