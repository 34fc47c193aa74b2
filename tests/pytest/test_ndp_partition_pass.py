"""ndp-partition on graphs: the decoder it reads and the placement it writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i8,
)

from cimflow.errors import CimError
from cimflow.frontend.onnx_import import import_onnx
from cimflow.ndp.costs import neuron_bytes
from cimflow.ndp.decode import DecodeOptions
from cimflow.ndp.graph import compiled_partition, decoder_shape, mlp_blocks
from cimflow.ndp.llm import DecoderShape
from cimflow.ndp.partition import GPU, dense_gpu_bytes, prefill_buffer_bytes
from cimflow.ndp.run import (
    Workload,
    partition_for,
    run_policies,
    stationary_probabilities,
)
from cimflow.ndp.system import load_system
from cimflow.passes.ndp_partition import NdpPartitionPass
from cimflow.tools import ndp as cim_ndp
from cimflow.tools.model_builders import opt


def _opt_module(tmp_path: Path) -> ModuleOp:
    path = tmp_path / "opt.onnx"
    model = opt(vocab=100, hidden=64, layers=3, heads=4, ffn=256, max_positions=32)
    onnx.save(model, path)
    return import_onnx(path, {"batch": 1, "sequence": 8})


def test_the_decoder_is_read_from_the_relu_mlp_blocks(tmp_path: Path) -> None:
    module = _opt_module(tmp_path)
    shape = decoder_shape(module, "opt")
    assert (shape.layers, shape.hidden, shape.ffn_hidden, shape.vocab) == (
        3,
        64,
        256,
        100,
    )
    assert [b.neurons for b in mlp_blocks(module)] == [256] * 3


def _small_gpu_system(tmp_path: Path, shape: DecoderShape) -> tuple[Path, int]:
    """A Hermes system whose GPU has room for 40 MLP neurons' weights beside
    the dense ones, and that room in bytes."""
    fixed = 1024 + dense_gpu_bytes(shape) + prefill_buffer_bytes(shape)
    room = 40 * neuron_bytes(shape, "mlp")
    small = tmp_path / "small.toml"
    small.write_text(
        f'base = "hermes"\n[system]\nname = "small"\n[gpu]\n'
        f"memory_bytes = {fixed + room}\nruntime_reserved_bytes = 1024\n",
        encoding="utf-8",
    )
    return small, room


def test_the_pass_writes_the_programs_placement(tmp_path: Path) -> None:
    module = _opt_module(tmp_path)
    shape = decoder_shape(module, "module")
    small, room = _small_gpu_system(tmp_path, shape)
    NdpPartitionPass(system=str(small), seed=3).apply(Context(), module)
    workload = Workload(shape, DecodeOptions(), seed=3)
    expected = partition_for(
        load_system(str(small)), workload, stationary_probabilities(workload)
    )
    assert module.attributes["ndp.system"] == StringAttr("small")
    assert expected.gpu_bytes(shape) <= room
    for layer, block in enumerate(mlp_blocks(module)):
        devices = block.up.attributes["ndp.device"]
        assert isinstance(devices, DenseArrayBase)
        written = list(devices.get_values())
        assert written == expected.device_of[2 * layer + 1].tolist()
        gpu = block.up.attributes["ndp.gpu_neurons"]
        assert isinstance(gpu, IntegerAttr)
        assert gpu.value.data == written.count(GPU)


def test_a_model_without_relu_blocks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    w = onnx.numpy_helper.from_array(np.eye(4, dtype=np.float32), name="w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w]
    )
    onnx.save(onnx.helper.make_model(graph), path)
    module = import_onnx(path)
    with pytest.raises(CimError, match="no ReLU MLP block"):
        NdpPartitionPass().apply(Context(), module)


def _relu_llama_onnx(
    path: Path, layers: int = 2, hidden: int = 8, ffn: int = 24
) -> None:
    """``x + down(relu(gate(x)) * up(x))`` per layer, then an LM head."""
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    x = "x"
    for layer in range(layers):
        for name, shape in (
            ("gate", (hidden, ffn)),
            ("up", (hidden, ffn)),
            ("down", (ffn, hidden)),
        ):
            weights.append(
                onnx.numpy_helper.from_array(
                    rng.standard_normal(shape).astype(np.float32), f"{name}{layer}"
                )
            )
        p = f"l{layer}_"
        nodes += [
            onnx.helper.make_node("MatMul", [x, f"gate{layer}"], [p + "g"]),
            onnx.helper.make_node("Relu", [p + "g"], [p + "r"]),
            onnx.helper.make_node("MatMul", [x, f"up{layer}"], [p + "u"]),
            onnx.helper.make_node("Mul", [p + "r", p + "u"], [p + "m"]),
            onnx.helper.make_node("MatMul", [p + "m", f"down{layer}"], [p + "d"]),
            onnx.helper.make_node("Add", [x, p + "d"], [p + "y"]),
        ]
        x = p + "y"
    weights.append(
        onnx.numpy_helper.from_array(np.ones((hidden, 5), np.float32), "head")
    )
    nodes.append(onnx.helper.make_node("MatMul", [x, "head"], ["logits"]))
    graph = onnx.helper.make_graph(
        nodes,
        "relu_llama",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, hidden])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 5])],
        weights,
    )
    onnx.save(onnx.helper.make_model(graph), path)


def test_gated_relu_mlps_are_blocks_and_share_one_placement(tmp_path: Path) -> None:
    path = tmp_path / "relu_llama.onnx"
    _relu_llama_onnx(path)
    module = import_onnx(path)
    shape = decoder_shape(module, "relu_llama")
    assert (shape.layers, shape.hidden, shape.ffn_hidden, shape.vocab) == (2, 8, 24, 5)
    assert shape.gated_mlp
    NdpPartitionPass().apply(Context(), module)
    for block in mlp_blocks(module):
        assert block.gated is not None
        gate = block.up.attributes["ndp.device"]
        up = block.gated.attributes["ndp.device"]
        assert isinstance(gate, DenseArrayBase) and isinstance(up, DenseArrayBase)
        assert len(list(gate.get_values())) == 24
        assert list(gate.get_values()) == list(up.get_values())
        assert "ndp.device" not in block.down.attributes


def _placed_file(tmp_path: Path) -> tuple[Path, Path, ModuleOp]:
    """The OPT module placed for the small-GPU system, printed to a file."""
    module = _opt_module(tmp_path)
    small, _ = _small_gpu_system(tmp_path, decoder_shape(module, "module"))
    NdpPartitionPass(system=str(small), seed=3).apply(Context(), module)
    path = tmp_path / "placed.mlir"
    path.write_text(str(module), encoding="utf-8")
    return path, small, module


def test_the_simulator_takes_the_placement_the_pass_wrote(tmp_path: Path) -> None:
    _, small, module = _placed_file(tmp_path)
    shape = decoder_shape(module, "module")
    system = load_system(str(small))
    placed = compiled_partition(module)
    workload = Workload(shape, DecodeOptions(prompt=8, output=16), seed=3)
    solved = partition_for(system, workload, stationary_probabilities(workload))
    assert [d.tolist() for d in placed.device_of] == [
        d.tolist() for d in solved.device_of
    ]
    (from_ir,) = run_policies(
        system, dataclasses.replace(workload, partition=placed), ["hermes"]
    )
    (here,) = run_policies(system, workload, ["hermes"])
    assert from_ir.tokens_per_second == here.tokens_per_second


def test_cim_ndp_runs_a_compiled_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, small, _ = _placed_file(tmp_path)
    args = ["--compiled", str(path), "--system", str(small), "--prompt", "8"]
    assert cim_ndp.main([*args, "--output", "8"]) == 0
    assert capsys.readouterr().out.startswith("placed on small ")


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ("system", [], "no 'ndp.system' on the module: run ndp-partition first"),
        ("none", ["--model", "opt-13b"], "give --model or --compiled, not both"),
        ("none", ["--system", "hermes"], "placed for system 'small', but --system"),
        ("dimm", [], "block 1 places a neuron on DIMM 99; system 'small' has 8"),
        ("count", [], "layer 0's MLP block: 'ndp.device' places 3 neurons"),
    ],
)
def test_a_bad_compiled_module_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    extra: list[str],
    message: str,
) -> None:
    path, small, module = _placed_file(tmp_path)
    first = mlp_blocks(module)[0].up
    if change == "system":
        del module.attributes["ndp.system"]
    elif change == "dimm":
        devices = first.attributes["ndp.device"]
        assert isinstance(devices, DenseArrayBase)
        values = [99, *list(devices.get_values())[1:]]
        first.attributes["ndp.device"] = DenseArrayBase.from_list(i8, values)
    elif change == "count":
        first.attributes["ndp.device"] = DenseArrayBase.from_list(i8, [0, 1, 2])
    path.write_text(str(module), encoding="utf-8")
    system = [] if "--system" in extra else ["--system", str(small)]
    assert cim_ndp.main(["--compiled", str(path), *system, *extra]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
