"""The published allocation strategies (PIMCOMP, CLSA-CIM, CIM-MLC): every
model family computes what onnxruntime computes under each of them, their
allocations always fit what the lowering carries out, and each does what it
claims on a model where it should."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_models import random_models, random_targets
from schedule_checks import overlaps
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from cimflow.analysis.tile_mapping import plan_chunks
from cimflow.cimdialect import cim_tile
from cimflow.cimdialect.cim_tile import Dataflow
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import ProgramOp, Trace
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import HardwareTarget, load_target, target_to_toml
from cimflow.passes import PASS_MODULES
from cimflow.passes.cimmlc_allocate import CimMlcAllocatePass
from cimflow.passes.clsa_allocate import ClsaAllocatePass
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.pimcomp_allocate import PimcompAllocatePass
from cimflow.passes.pipelines import STRATEGIES, allocation_pass
from cimflow.tools.cim_verify import module_trace, verify_model, verify_trace
from cimflow.tools.model_builders import TINY_BUILDERS

PUBLISHED = ("pimcomp-ht", "pimcomp-ll", "clsa-cim", "cim-mlc")
ROW_STRATEGIES = ("pimcomp-ll", "clsa-cim", "cim-mlc")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("strategies")
    paths: dict[str, Path] = {}
    for family, builder in TINY_BUILDERS.items():
        paths[family] = directory / f"{family}.onnx"
        onnx.save(builder(weights="random"), paths[family])
    return paths


def dims(strategy: str, batch: int | None = None) -> dict[str, int]:
    """Two samples for the throughput pipeline (so it pipelines), one else."""
    chosen = batch if batch is not None else (2 if strategy == "pimcomp-ht" else 1)
    return {"batch": chosen, "sequence": 8}


def allocated(
    path: Path, target: str, strategy: str, batch: int | None = None
) -> ModuleOp:
    """The model tiled and allocated by ``strategy`` (not lowered)."""
    module = import_onnx(path, dims(strategy, batch))
    ConvertGraphToTilePass(target).apply(Context(), module)
    allocation_pass(strategy, target).apply(Context(), module)
    return module


def lowered_trace(module: ModuleOp, target: str, origin: Path) -> Trace:
    ConvertTileToMetaPass(target).apply(Context(), module)
    module.verify()
    return module_trace(module, str(origin))


def mvms(module: ModuleOp) -> list[cim_tile.MVMOp]:
    return [op for op in module.walk() if isinstance(op, cim_tile.MVMOp)]


def dataflows(module: ModuleOp) -> dict[int, tuple[Dataflow, int]]:
    return {
        op.segment.value.data: (op.kind.data, op.blocks.value.data)
        for op in module.walk()
        if isinstance(op, cim_tile.DataflowOp)
    }


# -- every family computes the model ---------------------------------------

CASES = [
    (strategy, family, target)
    for strategy in PUBLISHED
    for family in sorted(TINY_BUILDERS)
    for target in ("tiny", "dynaplasia")
] + [(strategy, "resnet", "pimcomp_default") for strategy in PUBLISHED]


@pytest.mark.parametrize(("strategy", "family", "target"), CASES)
def test_strategy_computes_the_model(
    models: dict[str, Path], strategy: str, family: str, target: str
) -> None:
    report = verify_model(
        models[family],
        target,
        f"cim-compile{{strategy={strategy}}}",
        dims(strategy),
        mode="exact",
    )
    assert report.passed, report.to_dict()


@pytest.mark.parametrize("family", ["resnet", "mobilenetv2", "bert"])
def test_row_pipeline_of_several_samples_computes_the_model(
    models: dict[str, Path], family: str
) -> None:
    # Rows of several samples are not one band: those operators run whole.
    report = verify_model(
        models[family], "tiny", "cim-compile{strategy=clsa-cim}", dims("", 2)
    )
    assert report.passed, report.to_dict()


# -- allocations fit what the lowering carries out ---------------------------


def resident_end(ops: list[cim_tile.MVMOp]) -> int:
    """Arrays the resident weights of a segment take: copies one after
    another from array 0, each at a multiple of its alignment."""
    end = 0
    for op in ops:
        assert op.alloc is not None
        if op.alloc.field("chunks") > 1:
            continue
        align = 1 if op.align is None else op.align.value.data
        for _ in range(op.alloc.field("copies")):
            end = -(-end // align) * align + op.tiling.arrays_per_copy
    return end


def check_allocation(module: ModuleOp, hw: HardwareTarget) -> None:
    ops = mvms(module)
    assert all(op.alloc is not None for op in ops), "an MVM has no allocation"
    segments = [op.alloc.field("segment") for op in ops if op.alloc is not None]
    assert segments == sorted(segments), "segments out of program order"
    declared = dataflows(module)
    assert set(declared) == set(segments)
    for segment in set(segments):
        members = [
            op for op in ops if op.alloc and op.alloc.field("segment") == segment
        ]
        used = resident_end(members)
        assert used <= hw.total_arrays, (segment, used)
        for op in members:
            assert op.alloc is not None
            chunks = op.alloc.field("chunks")
            if chunks > 1:
                assert len(members) == 1, "a streamed weight shares its segment"
                free = hw.total_arrays - used
                assert chunks == len(plan_chunks(op.tiling, free))
            else:
                assert len(plan_chunks(op.tiling, hw.total_arrays)) == 1
    for kind, blocks in declared.values():
        assert blocks >= 1 and (kind != Dataflow.LAYER or blocks == 1)


@st.composite
def granular_targets(draw: st.DrawFn) -> HardwareTarget:
    """Random small targets in any of the three computing modes."""
    hw = draw(random_targets())
    mode = draw(st.sampled_from(["core", "crossbar", "wordline"]))
    return dataclasses.replace(
        hw, array=dataclasses.replace(hw.array, compute_granularity=mode)
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_models(), granular_targets(), st.sampled_from(PUBLISHED))
def test_allocations_fit_and_compute(
    model: onnx.ModelProto, hw: HardwareTarget, strategy: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.onnx"
        onnx.save(model, path)
        target = str(Path(directory) / "target.toml")
        Path(target).write_text(target_to_toml(hw), encoding="utf-8")
        module = import_onnx(path)
        ConvertGraphToTilePass(target).apply(Context(), module)
        allocation_pass(strategy, target).apply(Context(), module)
        check_allocation(module, hw)
        report = verify_trace(lowered_trace(module, target, path), path, "exact")
    assert report.passed, report.to_dict()


# -- each strategy does what it claims ---------------------------------------


def test_registered() -> None:
    for name in PUBLISHED:
        assert name in STRATEGIES
    for name in ("cim-pimcomp-allocate", "cim-clsa-allocate", "cim-mlc-allocate"):
        assert name in PASS_MODULES


def test_bad_options_are_one_line_errors() -> None:
    module = ModuleOp([])
    with pytest.raises(CimError, match="dataflow 'fast'"):
        PimcompAllocatePass("tiny", "fast").apply(Context(), module)
    with pytest.raises(CimError, match="blocks 0"):
        PimcompAllocatePass("tiny", "latency", 0).apply(Context(), module)
    with pytest.raises(CimError, match="blocks -1"):
        ClsaAllocatePass("tiny", -1).apply(Context(), module)
    with pytest.raises(CimError, match="blocks 0"):
        CimMlcAllocatePass("tiny", 0).apply(Context(), module)


def test_pimcomp_balance_copies_follow_the_work(models: dict[str, Path]) -> None:
    # One sample, layer by layer: the first convolution (a 16 x 16 map) has
    # 16 times the vectors of the last ones (4 x 4) and gets more copies.
    module = allocated(models["resnet"], "dynaplasia", "pimcomp-ht", batch=1)
    convs = [op for op in mvms(module) if op.vectors > 1]
    most = max(convs, key=lambda op: op.vectors)
    least = min(convs, key=lambda op: op.vectors)
    assert most.alloc is not None and least.alloc is not None
    assert most.alloc.field("copies") > least.alloc.field("copies") >= 1
    assert set(dataflows(module).values()) == {(Dataflow.LAYER, 1)}


def _cores_of(arrays: tuple[int, int], per_core: int) -> set[int]:
    return {a // per_core for a in range(*arrays)}


def test_pimcomp_copies_do_not_straddle_cores(models: dict[str, Path]) -> None:
    # tiny has cores of 4 arrays; mobilenetv2 has weights of 2 and 3 arrays.
    module = allocated(models["mobilenetv2"], "tiny", "pimcomp-ht")
    resident = {
        op.weight.data
        for op in mvms(module)
        if op.alloc is not None and op.alloc.field("chunks") == 1
    }
    trace = lowered_trace(module, "tiny", models["mobilenetv2"])
    checked = 0
    for op in trace.ops:
        if isinstance(op, ProgramOp) and op.weight in resident:
            for arrays in op.arrays:
                if arrays[1] - arrays[0] <= 4:
                    assert len(_cores_of(arrays, 4)) == 1, (op.weight, arrays)
                    checked += arrays[1] - arrays[0] > 1
    assert checked, "no multi-array copy was placed"


@pytest.mark.parametrize("family", ["resnet", "bert"])
def test_pimcomp_throughput_pipeline_beats_static(
    models: dict[str, Path], family: str
) -> None:
    path = models[family]
    static = lowered_trace(
        allocated(path, "dynaplasia", "static", 4), "dynaplasia", path
    )
    module = allocated(path, "dynaplasia", "pimcomp-ht", 4)
    assert (Dataflow.BATCH, 4) in dataflows(module).values()
    piped = lowered_trace(module, "dynaplasia", path)
    assert simulate(piped).makespan < simulate(static).makespan


@pytest.mark.parametrize("strategy", ROW_STRATEGIES)
def test_row_pipelines_overlap_layers(models: dict[str, Path], strategy: str) -> None:
    path = models["resnet"]
    module = allocated(path, "dynaplasia", strategy)
    kinds = {kind for kind, _ in dataflows(module).values()}
    assert kinds == {Dataflow.ROWS}
    trace = lowered_trace(module, "dynaplasia", path)
    assert overlaps(trace), "no layer started before its producer finished"
    static = lowered_trace(allocated(path, "dynaplasia", "static"), "dynaplasia", path)
    assert simulate(trace).makespan < simulate(static).makespan


def test_clsa_bands_are_one_output_row(models: dict[str, Path]) -> None:
    # resnet_tiny's largest feature map has 16 rows: 16 bands of one row.
    module = allocated(models["resnet"], "dynaplasia", "clsa-cim")
    assert set(dataflows(module).values()) == {(Dataflow.ROWS, 16)}


def test_clsa_duplicates_the_most_work(models: dict[str, Path]) -> None:
    module = allocated(models["resnet"], "dynaplasia", "clsa-cim")
    convs = [op for op in mvms(module) if op.vectors > 1]
    first = max(convs, key=lambda op: op.vectors)
    assert first.alloc is not None
    assert all(
        op.alloc is not None and op.alloc.field("copies") <= first.alloc.field("copies")
        for op in convs
    )
    assert first.alloc.field("copies") > 1


def _core_target(directory: str) -> str:
    hw = load_target("tiny")
    core = dataclasses.replace(
        hw,
        target=dataclasses.replace(hw.target, name="tiny_core"),
        array=dataclasses.replace(hw.array, compute_granularity="core"),
    )
    path = Path(directory) / "tiny_core.toml"
    path.write_text(target_to_toml(core), encoding="utf-8")
    return str(path)


def _resident(module: ModuleOp) -> Iterator[cim_tile.MVMOp]:
    for op in mvms(module):
        if op.alloc is not None and op.alloc.field("chunks") == 1:
            yield op


def test_cim_mlc_core_mode_places_copies_on_whole_cores(
    models: dict[str, Path], tmp_path: Path
) -> None:
    module = allocated(models["resnet"], "isscc21_core", "cim-mlc")
    assert all(
        op.align is not None and op.align.value.data == 1 for op in _resident(module)
    )
    target = _core_target(str(tmp_path))
    path = models["mobilenetv2"]
    module = allocated(path, target, "cim-mlc")
    resident = {op.weight.data for op in _resident(module)}
    assert all(
        op.align is not None and op.align.value.data == 4 for op in _resident(module)
    )
    trace = lowered_trace(module, target, path)
    owners: dict[int, str] = {}
    segment_of = {op.id: op.segment for op in trace.ops}
    for op in trace.ops:
        if isinstance(op, ProgramOp) and op.weight in resident:
            for first, stop in op.arrays:
                assert first % 4 == 0, (op.weight, first)
                for core in _cores_of((first, stop), 4):
                    key = segment_of[op.id] * 1000 + core
                    assert owners.setdefault(key, op.weight) == op.weight
    report = verify_trace(trace, path, "exact")
    assert report.passed, report.to_dict()


def test_cim_mlc_crossbar_mode_shares_cores(models: dict[str, Path]) -> None:
    # On tiny in crossbar mode, copies are packed array by array.
    module = allocated(models["resnet"], "tiny", "cim-mlc")
    assert all(op.align is None for op in mvms(module))
    assert any(
        op.alloc is not None and op.alloc.field("copies") > 1 for op in mvms(module)
    )
