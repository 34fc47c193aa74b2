"""Hardware targets: every shipped file loads, headline numbers, validation."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimflow.cost_model import mvm_cycles
from cimflow.errors import CimError
from cimflow.hw_targets import (
    DEFAULT_TARGET,
    TARGETS_DIR,
    HardwareTarget,
    load_target,
    load_target_file,
    shipped_targets,
    tables_to_toml,
    target_from_dict,
    target_to_toml,
)

DYNAPLASIA_TEXT = (TARGETS_DIR / "dynaplasia.toml").read_text(encoding="utf-8")

EXPECTED_TARGETS = {
    "dynaplasia",
    "pimcomp_default",
    "isaac",
    "puma",
    "multichip",
    "jain_wordline",
    "isscc21_core",
    "tiny",
}

MIB = 8 * 2**20  # bits in a MiB


def capacity_bits(t: HardwareTarget) -> int:
    return t.total_arrays * t.array.rows * t.array.cols * t.array.cell_bits


# --- editing the text of dynaplasia.toml -------------------------------------


def _edit(text: str, table: str, key: str, new_line: str | None) -> str:
    """Replace (or drop, if ``new_line`` is None) ``key`` in ``[table]``."""
    lines = text.splitlines(keepends=True)
    current = ""
    for i, line in enumerate(lines):
        header = re.match(r"\[(\w+)\]\s*$", line)
        if header:
            current = header.group(1)
        elif current == table and re.match(rf"{key}\s*=", line):
            lines[i] = "" if new_line is None else new_line + "\n"
            return "".join(lines)
    raise AssertionError(f"no key {table}.{key} in dynaplasia.toml")


def set_key(table: str, key: str, literal: str) -> str:
    return _edit(DYNAPLASIA_TEXT, table, key, f"{key} = {literal}")


def drop_key(table: str, key: str) -> str:
    return _edit(DYNAPLASIA_TEXT, table, key, None)


def drop_table(table: str) -> str:
    out: list[str] = []
    current = ""
    for line in DYNAPLASIA_TEXT.splitlines(keepends=True):
        header = re.match(r"\[(\w+)\]\s*$", line)
        if header:
            current = header.group(1)
        if current != table:
            out.append(line)
    assert len(out) < len(DYNAPLASIA_TEXT.splitlines())
    return "".join(out)


def load_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    """Write ``text`` to a file, load it, and return the CimError message."""
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CimError) as info:
        load_target_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return path, message


# --- shipped targets ----------------------------------------------------------


def test_expected_targets_are_shipped() -> None:
    assert set(shipped_targets()) >= EXPECTED_TARGETS
    assert DEFAULT_TARGET in shipped_targets()


@pytest.mark.parametrize("name", shipped_targets())
def test_shipped_target_loads(name: str) -> None:
    t = load_target(name)
    assert t.name == name  # target.name is the file name
    assert t.target.description
    assert t.total_arrays > 0
    assert t.array.mvm_issue_interval_cycles <= t.array.mvm_latency_cycles
    assert t.dual_mode.switchable_arrays <= t.total_arrays


@pytest.mark.parametrize("name", shipped_targets())
def test_shipped_target_header_cites_sources(name: str) -> None:
    text = (TARGETS_DIR / f"{name}.toml").read_text(encoding="utf-8")
    header = text.split("\n[", 1)[0]
    if name == "tiny":
        assert "TESTS ONLY" in header
    else:
        assert "# Sources:" in header
        assert "# Assumptions" in header


@pytest.mark.parametrize("name", shipped_targets())
def test_shipped_target_round_trips(name: str) -> None:
    t = load_target(name)
    assert target_from_dict(t.to_dict(), "dict") == t
    through_json = json.loads(json.dumps(t.to_dict()))
    assert target_from_dict(through_json, "json") == t


def test_default_target_is_dynaplasia() -> None:
    assert load_target().name == "dynaplasia"


def test_dynaplasia_headline() -> None:
    t = load_target("dynaplasia")
    assert t.total_arrays == 96
    assert (t.array.rows, t.array.cols) == (320, 320)
    assert capacity_bits(t) == 96 * 320 * 320  # 9.6 Mb
    assert t.dual_mode.switchable_arrays == 96
    assert t.dual_mode.switch_latency_cycles == 1
    assert (t.precision.weight_bits, t.precision.activation_bits) == (8, 8)


def test_pimcomp_default_headline() -> None:
    t = load_target("pimcomp_default")
    assert t.total_cores == 136
    assert t.total_arrays == 136 * 64
    assert (t.array.rows, t.array.cols, t.array.cell_bits) == (128, 128, 2)
    assert (t.array.dac_bits, t.array.adc_bits, t.array.adcs_per_array) == (1, 8, 16)
    # One ADC round of the 8 that 16 ADCs need for 128 columns: a full-width
    # MVM takes 500 - 500 + 8 x 500 = 4000 cycles (4000 ns at 1 GHz), the
    # crossbar's next vector 4000 cycles later, as PIMCOMP's evaluation model
    # (an array group's MVMs do not overlap).
    assert t.array.mvm_latency_cycles == 500
    assert t.array.mvm_issue_interval_cycles == 500
    assert mvm_cycles(t, 1, 128, 128) == 4000
    assert mvm_cycles(t, 2, 128, 128) == 8000
    assert t.bit_slices == 8
    assert t.input_passes == 16
    assert t.buffers.local_bandwidth_bytes_per_cycle == 25.6
    assert t.buffers.global_bandwidth_bytes_per_cycle == 64.0
    assert t.interconnect.bandwidth_bytes_per_cycle == 8.0
    assert (t.vector.lanes, t.vector.latency_cycles) == (32, 4)


@pytest.mark.parametrize(
    ("name", "shape", "mib"),
    [
        ("isaac", (1, 168, 96, 128, 128), 63),
        ("puma", (1, 138, 128, 128, 128), 69),
        ("multichip", (16, 4, 8, 512, 1024), 64),
    ],
)
def test_pimcomp_tcad_architectures(
    name: str, shape: tuple[int, int, int, int, int], mib: int
) -> None:
    t = load_target(name)
    h = t.hierarchy
    got = (h.chips, h.cores_per_chip, h.arrays_per_core, t.array.rows, t.array.cols)
    assert got == shape
    assert t.array.cell_bits == 2
    assert capacity_bits(t) == mib * MIB  # the TCAD table's capacity


def test_puma_buffers() -> None:
    t = load_target("puma")
    assert t.buffers.global_bytes == 786432
    assert t.buffers.local_bytes == 64 * 1024
    assert t.precision.weight_bits == 16


def test_cim_mlc_granularities() -> None:
    jain = load_target("jain_wordline")
    assert jain.array.compute_granularity == "wordline"
    assert (jain.total_cores, jain.hierarchy.arrays_per_core) == (4, 2)
    assert (jain.array.rows, jain.array.cols, jain.array.active_rows) == (256, 64, 32)
    assert math.ceil(jain.array.rows / jain.array.active_rows) == 8
    isscc = load_target("isscc21_core")
    assert isscc.array.compute_granularity == "core"
    assert (isscc.total_cores, isscc.hierarchy.arrays_per_core) == (16, 1)
    assert (isscc.array.rows, isscc.array.cols) == (1152, 256)
    assert isscc.array.active_rows == 1152
    for t in (jain, isscc):
        assert t.array.cell_bits == 1


def test_tiny_is_dual_mode() -> None:
    t = load_target("tiny")
    assert t.total_arrays == 8
    assert t.dual_mode.switchable_arrays == t.total_arrays
    cell_bytes = t.array.rows * t.array.cols * t.array.cell_bits // 8
    assert t.dual_mode.memory_capacity_bytes == cell_bytes
    assert t.dual_mode.memory_bandwidth_bytes_per_cycle > 0


def test_dynaplasia_memory_arrays_feed_compute_arrays() -> None:
    t = load_target("dynaplasia")
    # one 320-bit row per cycle: 320 / 8 = 40 bytes
    assert t.dual_mode.feeds_compute
    assert t.dual_mode.feed_bytes_per_cycle == 40.0
    assert t.interconnect.topology == "bus"


@pytest.mark.parametrize("name", shipped_targets())
def test_only_dynaplasia_feeds_compute(name: str) -> None:
    t = load_target(name)
    assert t.dual_mode.feeds_compute == (name == "dynaplasia")
    assert t.interconnect.topology in ("bus", "mesh")


def test_feeding_compute_needs_switchable_arrays_and_bandwidth(
    tmp_path: Path,
) -> None:
    text = _edit(
        DYNAPLASIA_TEXT, "dual_mode", "switchable_arrays", "switchable_arrays = 0"
    )
    _, message = load_error(tmp_path, text)
    assert message.endswith(
        "key 'dual_mode.feeds_compute' is true but 'dual_mode.switchable_arrays' "
        "is 0 (only memory-mode arrays feed compute arrays)"
    )
    text = set_key("dual_mode", "feeds_compute", "false")
    _, message = load_error(tmp_path, text)
    assert message.endswith(
        "key 'dual_mode.feed_bytes_per_cycle' (40) must be positive exactly when "
        "'dual_mode.feeds_compute' is true"
    )
    text = _edit(text, "dual_mode", "feed_bytes_per_cycle", "feed_bytes_per_cycle = 0")
    assert not load_target_file_text(tmp_path, text).dual_mode.feeds_compute


def load_target_file_text(tmp_path: Path, text: str) -> HardwareTarget:
    path = tmp_path / "ok.toml"
    path.write_text(text, encoding="utf-8")
    return load_target_file(path)


@pytest.mark.parametrize(
    "name",
    ["pimcomp_default", "isaac", "puma", "multichip", "jain_wordline", "isscc21_core"],
)
def test_compute_only_targets_have_no_memory_mode(name: str) -> None:
    t = load_target(name)
    assert dataclasses.astuple(t.dual_mode) == (0, 0, 0, 0.0, False, 0.0)
    assert t.energy.mode_switch_pj == 0
    assert t.energy.memory_array_pj_per_byte == 0


def test_target_by_path(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(DYNAPLASIA_TEXT, encoding="utf-8")
    assert load_target(str(path)) == load_target("dynaplasia")


# --- validation errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # unknown / missing key, table
        (set_key("target", "clock_ghz", "1.0\nfrequency = 2"), "target.frequency"),
        (drop_key("array", "adcs_per_array"), "array.adcs_per_array"),
        (DYNAPLASIA_TEXT + "\n[cache]\nsize = 1\n", "cache"),
        (drop_table("vector"), "[vector]"),
        # wrong types
        (set_key("array", "rows", '"320"'), "array.rows"),
        (set_key("hierarchy", "chips", "true"), "hierarchy.chips"),
        (set_key("vector", "lanes", "32.0"), "vector.lanes"),
        (set_key("array", "dynamic_matmul", "0"), "array.dynamic_matmul"),
        (set_key("array", "compute_granularity", "1"), "array.compute_granularity"),
        (set_key("target", "clock_ghz", '"fast"'), "target.clock_ghz"),
        (set_key("target", "clock_ghz", "true"), "target.clock_ghz"),
        (set_key("target", "name", "3"), "target.name"),
        (set_key("target", "clock_ghz", "inf"), "target.clock_ghz"),
        (set_key("target", "clock_ghz", "nan"), "target.clock_ghz"),
        (set_key("target", "clock_ghz", "1" + "0" * 400), "target.clock_ghz"),
        # non-positive sizes and rates, negative latencies and energies
        (set_key("array", "cols", "0"), "array.cols"),
        (set_key("buffers", "global_bytes", "-1"), "buffers.global_bytes"),
        (set_key("hierarchy", "cores_per_chip", "0"), "hierarchy.cores_per_chip"),
        (set_key("target", "clock_ghz", "0.0"), "target.clock_ghz"),
        (set_key("dram", "bandwidth_bytes_per_cycle", "-25.6"), "dram.bandwidth"),
        (set_key("array", "mvm_latency_cycles", "0"), "array.mvm_latency_cycles"),
        (set_key("dram", "latency_cycles", "-5"), "dram.latency_cycles"),
        (set_key("interconnect", "latency_cycles", "-1"), "interconnect.latency"),
        (set_key("energy", "dram_pj_per_byte", "-1.0"), "energy.dram_pj_per_byte"),
        # consistency
        (set_key("array", "active_rows", "321"), "array.active_rows"),
        (set_key("array", "compute_granularity", '"bitline"'), "compute_granularity"),
        (set_key("dual_mode", "switchable_arrays", "97"), "switchable_arrays"),
        (set_key("dual_mode", "memory_capacity_bytes", "0"), "memory_capacity_bytes"),
        (set_key("array", "cell_bits", "16"), "array.cell_bits"),
        (set_key("array", "mvm_issue_interval_cycles", "11"), "mvm_issue_interval"),
        # plausibility: a topology the model has, buffers that hold one input
        # vector of an array (320 rows x 1 byte), memory mode within the cells
        # (320 x 320 x 1 bit = 12800 bytes)
        (set_key("interconnect", "topology", '"ring"'), "interconnect.topology"),
        (set_key("interconnect", "topology", '"Mesh"'), "interconnect.topology"),
        (set_key("buffers", "global_bytes", "64"), "buffers.global_bytes"),
        (set_key("buffers", "global_bytes", "319"), "buffers.global_bytes"),
        (set_key("buffers", "local_bytes", "319"), "buffers.local_bytes"),
        (
            set_key("dual_mode", "memory_capacity_bytes", "12801"),
            "dual_mode.memory_capacity_bytes",
        ),
        (set_key("dual_mode", "feeds_compute", "1"), "dual_mode.feeds_compute"),
        (set_key("dual_mode", "feed_bytes_per_cycle", "0"), "feed_bytes_per_cycle"),
        (set_key("dual_mode", "feed_bytes_per_cycle", "-1"), "feed_bytes_per_cycle"),
    ],
)
def test_validation_error_names_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    _, message = load_error(tmp_path, text)
    assert key in message


def test_plausibility_limits_are_inclusive(tmp_path: Path) -> None:
    # A buffer of exactly one input vector (320 rows x 1 byte) and memory mode
    # storing exactly the 320 x 320 one-bit cells load; both topologies do.
    text = set_key("buffers", "global_bytes", "320")
    text = _edit(text, "buffers", "local_bytes", "local_bytes = 320")
    text = _edit(text, "interconnect", "topology", 'topology = "mesh"')
    path = tmp_path / "edge.toml"
    path.write_text(text, encoding="utf-8")
    t = load_target_file(path)
    assert (t.buffers.global_bytes, t.buffers.local_bytes) == (320, 320)
    assert t.dual_mode.memory_capacity_bytes == 320 * 320 // 8
    assert t.interconnect.topology == "mesh"


def test_plausibility_errors_say_why(tmp_path: Path) -> None:
    _, message = load_error(tmp_path, set_key("buffers", "local_bytes", "100"))
    assert "(100) cannot hold one input vector" in message
    assert "= 320" in message
    text = set_key("dual_mode", "memory_capacity_bytes", "20000")
    _, message = load_error(tmp_path, text)
    assert "(20000) exceeds the array's cells" in message
    assert "= 12800" in message
    _, message = load_error(tmp_path, set_key("interconnect", "topology", '"ring"'))
    assert "must be one of bus, mesh, got 'ring'" in message


def test_zero_is_allowed_where_documented(tmp_path: Path) -> None:
    text = set_key("dram", "latency_cycles", "0")
    text = _edit(text, "energy", "dram_pj_per_byte", "dram_pj_per_byte = 0")
    text = _edit(text, "dual_mode", "switchable_arrays", "switchable_arrays = 0")
    text = _edit(text, "dual_mode", "feeds_compute", "feeds_compute = false")
    text = _edit(text, "dual_mode", "feed_bytes_per_cycle", "feed_bytes_per_cycle = 0")
    path = tmp_path / "zero.toml"
    path.write_text(text, encoding="utf-8")
    t = load_target_file(path)
    assert t.dram.latency_cycles == 0
    assert t.energy.dram_pj_per_byte == 0.0
    assert isinstance(t.energy.dram_pj_per_byte, float)  # ints become floats
    assert t.dual_mode.switchable_arrays == 0


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    _, message = load_error(tmp_path, set_key("array", "rows", "= 320"))
    assert "invalid TOML" in message
    assert "line" in message


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    _, message = load_error(tmp_path, set_key("array", "rows", "320\nrows = 64"))
    assert "invalid TOML" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[target]\n")
    with pytest.raises(CimError, match=re.escape("binary.toml")):
        load_target_file(path)


def test_table_must_be_a_table() -> None:
    data: dict[str, object] = dict(load_target("dynaplasia").to_dict())
    data["array"] = 5
    with pytest.raises(CimError, match=r"trace\.json: 'array' must be a table"):
        target_from_dict(data, "trace.json")


def test_target_must_be_a_dict() -> None:
    with pytest.raises(CimError, match=re.escape("trace.json")):
        target_from_dict(cast(Any, []), "trace.json")


def test_unknown_shipped_name() -> None:
    with pytest.raises(CimError) as info:
        load_target("no_such_target")
    message = str(info.value)
    assert "no_such_target" in message
    assert "dynaplasia" in message  # lists the shipped targets


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(CimError, match=re.escape(str(missing))):
        load_target(str(missing))
    with pytest.raises(CimError, match="not found"):
        load_target(str(tmp_path / "no_suffix"))


# --- properties ---------------------------------------------------------------


FULL_TARGET = "puma"
"""A shipped target with every table, the optional ``[area]`` included."""


def _section_classes() -> dict[str, Any]:
    t = load_target(FULL_TARGET)
    return {name: type(getattr(t, name)) for name in t.to_dict()}


# (table, key, "int" or "float") of every numeric key of the schema.
NUMERIC_KEYS: list[tuple[str, str, str]] = [
    (section, f.name, str(f.type))
    for section, cls in _section_classes().items()
    for f in dataclasses.fields(cls)
    if str(f.type) in ("int", "float")
]

positive_values = st.one_of(
    st.integers(min_value=1, max_value=2048),
    st.integers(min_value=1, max_value=10**400),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
    st.floats(min_value=1e-300, allow_nan=False, allow_infinity=True),
)


@st.composite
def edited_targets(draw: st.DrawFn) -> tuple[str, dict[str, dict[str, Any]]]:
    name = draw(st.sampled_from(shipped_targets()))
    data = copy.deepcopy(load_target(name).to_dict())
    edits = draw(
        st.lists(st.sampled_from(NUMERIC_KEYS), min_size=1, max_size=6, unique=True)
    )
    for section, key, _ in edits:
        if section not in data:  # an optional table this target leaves out
            data[section] = copy.deepcopy(load_target(FULL_TARGET).to_dict()[section])
        data[section][key] = draw(positive_values)
    return name, data


def _check_invariants(t: HardwareTarget) -> None:
    assert t.array.active_rows <= t.array.rows
    assert t.array.cell_bits <= t.precision.weight_bits
    assert t.array.mvm_issue_interval_cycles <= t.array.mvm_latency_cycles
    assert t.dual_mode.switchable_arrays <= t.total_arrays
    assert t.array.compute_granularity in ("core", "crossbar", "wordline")
    assert t.interconnect.topology in ("bus", "mesh")
    input_vector = t.array.rows * t.activation_bytes
    assert min(t.buffers.global_bytes, t.buffers.local_bytes) >= input_vector
    cells = t.array.rows * t.array.cols * t.array.cell_bits // 8
    assert t.dual_mode.memory_capacity_bytes <= cells


@settings(max_examples=200, deadline=None)
@given(edited_targets())
def test_positive_edits_load_or_raise_cim_error(
    case: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, data = case
    try:
        t = target_from_dict(dict(data), "edited")
    except CimError as err:
        assert "edited" in str(err)
        return
    _check_invariants(t)
    assert target_from_dict(t.to_dict(), "again") == t
    for section, key, kind in NUMERIC_KEYS:
        if section not in data:  # an optional table left out stays out
            assert getattr(t, section) is None
            continue
        value = getattr(getattr(t, section), key)
        assert isinstance(value, int if kind == "int" else float)
        given_value = data[section][key]
        assert value == (given_value if kind == "int" else float(given_value))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edited_targets())
def test_positive_edits_through_toml_text(
    tmp_path: Path, case: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    _, data = case
    path = tmp_path / "edited.toml"
    path.write_text(tables_to_toml(data), encoding="utf-8")
    try:
        t = load_target_file(path)
    except CimError as err:
        assert str(path) in str(err)
        return
    _check_invariants(t)
    assert t == target_from_dict(data, "dict")


@pytest.mark.parametrize("name", shipped_targets())
def test_shipped_target_round_trips_through_toml_text(
    tmp_path: Path, name: str
) -> None:
    t = load_target(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(target_to_toml(t), encoding="utf-8")
    assert load_target_file(path) == t


# --- SCHEMA.md documents every key and who reads it ---------------------------

SCHEMA_TEXT = (TARGETS_DIR / "SCHEMA.md").read_text(encoding="utf-8")


def _schema_tables() -> dict[str, dict[str, list[str]]]:
    """``section -> key -> cells`` of the key tables of SCHEMA.md."""
    tables: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in SCHEMA_TEXT.splitlines():
        heading = re.match(r"### `\[(\w+)\]`", line)
        if heading:
            section = heading.group(1)
            tables[section] = {}
        elif line.startswith("## "):
            section = None
        elif section and (row := re.match(r"\| `(\w+)` \|(.*)\|$", line)):
            tables[section][row.group(1)] = [c.strip() for c in row.group(2).split("|")]
    return tables


def test_schema_documents_every_key_and_its_reader() -> None:
    tables = _schema_tables()
    sections = _section_classes()
    assert set(tables) == set(sections)
    for section, cls in sections.items():
        documented = tables[section]
        assert set(documented) == {f.name for f in dataclasses.fields(cls)}, section
        for key, cells in documented.items():
            assert cells[-1], f"{section}.{key} has no 'read by'"


def test_schema_shipped_table_matches_the_files() -> None:
    rows = {
        m.group(1): [c.strip() for c in line.split("|")[1:-1]]
        for line in SCHEMA_TEXT.split("## Shipped targets", 1)[1].splitlines()
        if (m := re.match(r"\| `(\w+)`", line))
    }
    assert set(rows) == set(shipped_targets())
    for name, cells in rows.items():
        t = load_target(name)
        rounds = -(-t.array.cols // t.array.adcs_per_array)
        assert cells[5] == f"{t.array.adcs_per_array} ({rounds})", name
        assert cells[9] == t.interconnect.topology, name
