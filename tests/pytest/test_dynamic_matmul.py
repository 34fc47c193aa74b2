"""Activation-by-activation matmuls on arrays, on targets with
``array.dynamic_matmul``: the lowering writes the right operand into the
segment's free arrays (tensor ``program``) and streams the left one's rows
through them; the simulator times it and the functional executor
reproduces onnxruntime exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from functional_models import FAMILIES, attention
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_builders import parse_module
from onnx import TensorProto, helper, numpy_helper

from cimflow.cimsim.engine import simulate
from cimflow.cimsim.trace import ProgramOp, Trace, VectorOp
from cimflow.errors import CimError
from cimflow.hw_targets import load_target, target_to_toml
from cimflow.passes.convert_tile_to_meta import ConvertTileToMetaPass
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

DIMS = {"batch": 1, "sequence": 8, "past": 4}


def dynamic_target(directory: Path, name: str, enabled: bool = True) -> str:
    """``name`` with ``array.dynamic_matmul`` set to ``enabled``, written as
    TOML."""
    base = load_target(name)
    variant = f"{name}_dynamic" if enabled else f"{name}_weights_only"
    target = dataclasses.replace(
        base,
        target=dataclasses.replace(base.target, name=variant),
        array=dataclasses.replace(base.array, dynamic_matmul=enabled),
    )
    path = directory / f"{variant}.toml"
    path.write_text(target_to_toml(target), encoding="utf-8")
    return str(path)


def tensor_programs(trace: Trace) -> list[ProgramOp]:
    return [
        op for op in trace.ops if isinstance(op, ProgramOp) and op.source == "tensor"
    ]


def compiled(path: Path, target: str, strategy: str = "static") -> Trace:
    module = compile_model(path, target, f"cim-compile{{strategy={strategy}}}", DIMS)
    return module_trace(module, str(path))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dynamic")


def test_both_attention_matmuls_run_on_arrays_with_row_tiles(directory: Path) -> None:
    """On tiny (8 arrays of 32 x 32, 4 bit slices): kt is 2 blocks of 16 x 40,
    5 arrays each (40 outputs x 4 slices), more than the 8 arrays at once,
    so it is written in 2 chunks of one head, the second after the first's
    MVMs; v is 2 blocks of 40 x 16, 2 row tiles x 2 column tiles each, all
    8 arrays in one chunk, and the cores add the row tiles' partial sums
    (40 rows x 2 heads x 16 outputs)."""
    path = directory / "attention.onnx"
    onnx.save(attention(heads=2, rows=40, width=16), path)
    trace = compiled(path, dynamic_target(directory, "tiny"))
    written = [(op.weight, op.k, op.n) for op in tensor_programs(trace)]
    assert written == [
        ("kt", (0, 16), (0, 40)),
        ("kt", (16, 32), (40, 80)),
        ("v", (0, 80), (0, 32)),
    ]
    vector_ops = [
        (op.op, op.element_ops) for op in trace.ops if isinstance(op, VectorOp)
    ]
    assert ("accumulate", 40 * 2 * 16) in vector_ops
    assert "matmul" not in [kind for kind, _ in vector_ops]
    report = verify_trace(trace, path, "exact")
    assert report.passed, report


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    heads=st.integers(1, 3),
    rows=st.integers(1, 48),
    width=st.integers(1, 40),
    quantized=st.booleans(),
)
def test_any_attention_shape_on_tiny_arrays_is_exact(
    directory: Path, heads: int, rows: int, width: int, quantized: bool
) -> None:
    """Reductions over one or several row tiles, blocks packed several to
    an array or cut over several, one chunk or many: the arrays give
    onnxruntime's result (exact mode), and the quantized pipeline runs."""
    path = directory / f"attention_{heads}_{rows}_{width}.onnx"
    onnx.save(attention(heads, rows, width), path)
    trace = compiled(path, dynamic_target(directory, "tiny"))
    assert {op.weight for op in tensor_programs(trace)} == {"kt", "v"}
    report = verify_trace(trace, path, "both" if quantized else "exact")
    assert report.passed, report


def test_the_vector_units_run_it_on_a_target_without_dynamic_matmul(
    directory: Path,
) -> None:
    path = directory / "attention.onnx"
    onnx.save(attention(heads=2, rows=40, width=16), path)
    trace = compiled(path, "tiny")
    assert not tensor_programs(trace)
    assert [op.op for op in trace.ops if isinstance(op, VectorOp)].count("matmul") == 2


@pytest.mark.parametrize(
    "family", ["bert", "gpt2", "vit", "llama", "gpt2_decode", "llama_decode"]
)
@pytest.mark.parametrize("strategy", ["static", "cmswitch"])
def test_transformers_verify_exactly_with_attention_on_arrays(
    directory: Path, family: str, strategy: str
) -> None:
    path = directory / f"{family}.onnx"
    if not path.exists():
        onnx.save(FAMILIES[family](), path)
    trace = compiled(path, dynamic_target(directory, "dynaplasia"), strategy)
    # two activation matmuls per layer, both layers: on arrays where the
    # strategy leaves arrays free (static always does on dynaplasia) or,
    # under cmswitch, where its allocation chose them; else on vector units
    programs = tensor_programs(trace)
    on_arrays = {program.weight for program in programs}
    on_vectors = [op.op for op in trace.ops if isinstance(op, VectorOp)]
    assert len(on_arrays) + on_vectors.count("matmul") == 4
    if strategy == "static":
        assert len(programs) == 4
    report = verify_trace(trace, path, "exact")
    assert report.passed, report


def attention_beside_linear(linear_first: bool) -> onnx.ModelProto:
    """:func:`attention` (2 heads of 8 x 8) and, independent of it, ``x [4,
    64] @ w [64, 96]``, which streams through tiny's arrays in chunks (2 row
    tiles x 12 column tiles = 24 arrays); ``linear_first`` puts the linear
    layer first in the graph."""
    model = attention(heads=2, rows=8, width=8)
    graph = model.graph
    weights = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    linear = helper.make_node("MatMul", ["x", "w"], ["y"], name="linear")
    nodes = list(graph.node)
    nodes = [linear, *nodes] if linear_first else [*nodes, linear]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.append(numpy_helper.from_array(weights, "w"))
    graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64]))
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 96]))
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("linear_first", [True, False])
def test_streamed_weights_and_activation_matmuls_share_the_free_arrays(
    directory: Path, linear_first: bool
) -> None:
    """A weight streamed in chunks and the attention matmuls, independent of
    each other, write the same free arrays of tiny in one segment, each
    only once the other is done with them (the functional executor refuses
    a reprogramming that does not wait for the arrays' readers)."""
    path = directory / f"beside_{linear_first}.onnx"
    onnx.save(attention_beside_linear(linear_first), path)
    trace = compiled(path, dynamic_target(directory, "tiny"))
    written: dict[str, set[int]] = {"weight": set(), "tensor": set()}
    for program in trace.ops:
        if isinstance(program, ProgramOp):
            for first, stop in program.arrays:
                written[program.source].update(range(first, stop))
    assert len({op.segment for op in trace.ops}) == 1
    assert written["weight"] & written["tensor"]
    report = verify_trace(trace, path, "exact")
    assert report.passed, report


def test_dynamic_matmul_changes_the_simulated_time(directory: Path) -> None:
    """The key is read by the lowering, not just by the lower bound: the
    attention leaves the vector units for the arrays, and on dynaplasia
    (8-lane vector units; an MVM computes 256 x 32 products every 8
    cycles) it runs faster."""
    path = directory / "attention_wide.onnx"
    onnx.save(attention(heads=4, rows=64, width=32), path)
    on_vectors = simulate(
        compiled(path, dynamic_target(directory, "dynaplasia", False))
    )
    on_arrays = simulate(compiled(path, dynamic_target(directory, "dynaplasia")))
    assert not tensor_programs(on_vectors.trace)
    assert tensor_programs(on_arrays.trace)
    assert on_arrays.makespan < on_vectors.makespan


QKT = "tensor<2x4x8xf32>, tensor<2x8x8xf32>"
TILING = (
    "<k = 32, n = 64, groups = 1, rows = 32, cols = 32, bit_slices = 4, "
    "row_tiles = 1, col_tiles = 8, groups_per_array = 1>"
)
SEGMENT_FULL = f"""
builtin.module attributes {{cim_tile.strategy = "static"}} {{
  func.func @full(%x: tensor<1x32xf32>, %q: tensor<2x4x8xf32>,
                  %kt: tensor<2x8x8xf32>) -> (tensor<1x64xf32>, tensor<2x4x8xf32>) {{
    %y = cim_tile.mvm %x weight "w" layout kn tiling {TILING}
         alloc <segment = 0, copies = 1, chunks = 1> mode <compute>
         : tensor<1x32xf32> -> tensor<1x64xf32>
    %s = cim_tile.vector segment 0 (%q, %kt) : ({QKT}) -> tensor<2x4x8xf32> {{
    ^bb0(%0: tensor<2x4x8xf32>, %1: tensor<2x8x8xf32>):
      %2 = cim_graph.matmul %0, %1 : ({QKT}) -> tensor<2x4x8xf32>
      cim_tile.yield %2 : tensor<2x4x8xf32>
    }}
    func.return %y, %s : tensor<1x64xf32>, tensor<2x4x8xf32>
  }}
}}
"""


def test_a_segment_without_free_arrays_keeps_the_matmul_on_vector_units(
    directory: Path,
) -> None:
    """The weight of the segment takes all 8 arrays of tiny: nothing is left
    to write the operand into."""
    ctx, module = parse_module(SEGMENT_FULL)
    ConvertTileToMetaPass(dynamic_target(directory, "tiny")).apply(ctx, module)
    text = str(module)
    assert "source tensor" not in text
    assert 'cim_meta.vector "matmul"' in text


DECIDED = """
builtin.module {
  func.func @f(%q: tensor<1x4x8xf32>, %k: tensor<1x8x4xf32>) -> tensor<1x4x4xf32> {
    %s = cim_tile.vector segment 0 matmul_arrays 2 (%q, %k)
         : (tensor<1x4x8xf32>, tensor<1x8x4xf32>) -> tensor<1x4x4xf32> {
    ^bb0(%a: tensor<1x4x8xf32>, %b: tensor<1x8x4xf32>):
      %r = cim_graph.matmul %a, %b
           : (tensor<1x4x8xf32>, tensor<1x8x4xf32>) -> tensor<1x4x4xf32>
      cim_tile.yield %r : tensor<1x4x4xf32>
    }
    func.return %s : tensor<1x4x4xf32>
  }
}
"""


def test_a_decision_for_arrays_on_a_target_without_dynamic_matmul_is_an_error() -> None:
    ctx, module = parse_module(DECIDED)
    with pytest.raises(CimError) as error:
        ConvertTileToMetaPass("tiny").apply(ctx, module)
    assert str(error.value) == (
        "the matmul making 's' is to run on 2 arrays (matmul_arrays), but "
        "target 'tiny' has array.dynamic_matmul = false"
    )


def test_a_decision_sets_how_many_free_arrays_the_matmul_takes(
    directory: Path,
) -> None:
    """On tiny (8 arrays, 8 weights per array row) an operand of 8 x 40
    takes 5 arrays; decided on 2, it is written 2 arrays at a time into
    arrays 0 and 1, chunk after chunk, although all 8 are free."""
    wide = DECIDED.replace("tensor<1x8x4xf32>", "tensor<1x8x40xf32>").replace(
        "tensor<1x4x4xf32>", "tensor<1x4x40xf32>"
    )
    ctx, module = parse_module(wide)
    ConvertTileToMetaPass(dynamic_target(directory, "tiny")).apply(ctx, module)
    trace = module_trace(module)
    programs = tensor_programs(trace)
    used = {a for p in programs for first, stop in p.arrays for a in range(first, stop)}
    assert used == {0, 1}
    assert len(programs) == 3
