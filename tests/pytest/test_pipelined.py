"""Pipelined segments: operators split into row or sample steps whose
dependencies are exactly the producer steps they read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
from schedule_checks import overlaps
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from cimflow.analysis.blocking import bands
from cimflow.cimdialect import cim_tile
from cimflow.cimsim.engine import simulate
from cimflow.cimsim.semantics import Reachability
from cimflow.cimsim.trace import MoveOp, MvmOp, Trace, VectorOp
from cimflow.frontend import import_onnx
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.passes.static_allocate import StaticAllocatePass
from cimflow.tools.cim_verify import module_trace, verify_trace
from cimflow.tools.model_builders import TINY_BUILDERS


def compile_with_dataflow(
    path: Path, dims: dict[str, int], target: str, kind: str, blocks: int
) -> ModuleOp:
    module = import_onnx(path, dims)
    ctx = Context()
    ConvertGraphToTilePass(target).apply(ctx, module)
    StaticAllocatePass(target).apply(ctx, module)
    function = next(op for op in module.ops if isinstance(op, func.FuncOp))
    segments = {
        op.alloc.field("segment")
        for op in function.walk()
        if isinstance(op, cim_tile.MVMOp) and op.alloc is not None
    }
    block = function.body.block
    for segment in sorted(segments):
        declaration = cim_tile.DataflowOp(segment, cim_tile.Dataflow(kind), blocks)
        assert block.first_op is not None
        block.insert_op_before(declaration, block.first_op)
    ConvertTileToMetaPass(target).apply(ctx, module)
    module.verify()
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pipelined")
    paths: dict[str, Path] = {}
    for family, builder in TINY_BUILDERS.items():
        paths[family] = directory / f"{family}.onnx"
        onnx.save(builder(weights="random"), paths[family])
    return paths


CASES = [
    ("rows", 4, "dynaplasia", 1),
    ("batch", 4, "dynaplasia", 4),
    ("rows", 3, "tiny", 1),
]


@pytest.mark.parametrize(("kind", "blocks", "target", "batch"), CASES)
@pytest.mark.parametrize("family", sorted(TINY_BUILDERS))
def test_pipelined_segments_compute_the_model_and_overlap(
    models: dict[str, Path],
    family: str,
    kind: str,
    blocks: int,
    target: str,
    batch: int,
) -> None:
    dims = {"batch": batch, "sequence": 8}
    path = models[family]
    layered = module_trace(
        compile_with_dataflow(path, dims, target, "layer", 1), str(path)
    )
    piped = module_trace(
        compile_with_dataflow(path, dims, target, kind, blocks), str(path)
    )
    steps = [op for op in piped.ops if isinstance(op, VectorOp) and op.block]
    assert steps, "nothing was pipelined"
    report = verify_trace(piped, path, "exact")
    assert report.passed, report.to_dict()
    assert overlaps(piped), "no operator started before its producer finished"
    if family in ("resnet", "mobilenetv2"):
        assert simulate(piped).makespan < simulate(layered).makespan


def _drop_dependency(trace: Trace) -> Trace:
    """Remove, from the second step of a pipelined vector op, its dependency
    on the producer step that wrote its rows."""
    ops = list(trace.ops)
    by_id = {op.id: op for op in ops}
    for op in ops:
        if not isinstance(op, VectorOp) or op.block is None or op.block[1] == 0:
            continue
        producers = [
            d
            for d in op.deps
            if isinstance(by_id[d], VectorOp | MoveOp)
            and getattr(by_id[d], "block", None) is not None
        ]
        if producers:
            kept = tuple(d for d in op.deps if d != producers[-1])
            ops[op.id] = dataclasses.replace(op, deps=kept)
            return dataclasses.replace(trace, ops=tuple(ops))
    raise AssertionError("no pipelined step with a pipelined producer")


def test_a_missing_step_dependency_is_caught(models: dict[str, Path]) -> None:
    path = models["resnet"]
    module = compile_with_dataflow(path, {"batch": 1}, "dynaplasia", "rows", 4)
    trace = module_trace(module, str(path))
    assert verify_trace(trace, path, "exact").passed
    broken = verify_trace(_drop_dependency(trace), path, "exact")
    assert not broken.passed
    error = broken.mode("exact").error
    assert error is not None
    assert "does not depend on" in error or "uses rows" in error


def test_bands_split_rows_evenly() -> None:
    assert bands(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert bands(2, 4) == [(0, 1), (1, 2)]
    assert bands(5, 1) == [(0, 5)]


def test_a_banded_mvm_output_is_allocated_band_by_band(
    models: dict[str, Path],
) -> None:
    """In a pipelined segment an MVM's output in the global buffer is
    allocated band by band, each part just before the band that writes it:
    its parts add up to the tensor, the first band does not wait for the
    allocation of the last one, and the trace still computes the model."""
    path = models["resnet"]
    module = compile_with_dataflow(path, {"batch": 1}, "tiny", "rows", 3)
    trace = module_trace(module, str(path))
    reach = Reachability()
    for op in trace.ops:
        reach.add(op.deps)
    sizes = {tensor.name: tensor.nbytes for tensor in trace.tensors}
    parts: dict[str, list[tuple[int, int]]] = {}
    for op in trace.ops:
        for alloc in op.allocs:
            if alloc.level == "buffer" and alloc.tensor in sizes:
                parts.setdefault(alloc.tensor, []).append((op.id, alloc.nbytes))
    banded = {
        name: made
        for name, made in parts.items()
        if len(made) > 1
        and any(isinstance(op, MvmOp) and op.output == name for op in trace.ops)
    }
    assert banded, "no MVM output was allocated in parts"
    for name, made in banded.items():
        assert sum(nbytes for _, nbytes in made) == sizes[name]
        first_writer = min(
            op.id for op in trace.ops if isinstance(op, MvmOp) and op.output == name
        )
        assert reach.depends(first_writer, made[0][0])
        assert not reach.depends(first_writer, made[-1][0])
    assert verify_trace(trace, path, "exact").passed
