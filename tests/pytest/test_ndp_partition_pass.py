"""ndp-partition on graphs: the decoder it reads and the placement it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, StringAttr

from cimflow.errors import CimError
from cimflow.frontend.onnx_import import import_onnx
from cimflow.ndp.costs import neuron_bytes
from cimflow.ndp.decode import DecodeOptions
from cimflow.ndp.graph import decoder_shape, mlp_blocks
from cimflow.ndp.partition import GPU, dense_gpu_bytes, prefill_buffer_bytes
from cimflow.ndp.run import Workload, partition_for, stationary_probabilities
from cimflow.ndp.system import load_system
from cimflow.passes.ndp_partition import NdpPartitionPass
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


def test_the_pass_writes_the_programs_placement(tmp_path: Path) -> None:
    module = _opt_module(tmp_path)
    shape = decoder_shape(module, "module")
    # A GPU with room for 40 MLP neurons' weights beside the dense ones.
    fixed = 1024 + dense_gpu_bytes(shape) + prefill_buffer_bytes(shape)
    room = 40 * neuron_bytes(shape, "mlp")
    small = tmp_path / "small.toml"
    small.write_text(
        f'base = "hermes"\n[system]\nname = "small"\n[gpu]\n'
        f"memory_bytes = {fixed + room}\nruntime_reserved_bytes = 1024\n",
        encoding="utf-8",
    )
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
