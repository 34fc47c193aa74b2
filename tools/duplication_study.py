"""Does duplicating a layer's weights save energy? CIMinus's mapping study
(its Fig. 12; ``ciminus.md`` §9 finding 7) found that duplication raises
array utilization and shortens the run, but that the extra buffer accesses
it causes can cancel the macros' energy saving. This study compiles single
convolution layers (CIFAR ResNet-20's shapes, seeded random weights) on the
``ciminus`` target with 16 macros, once with every weight held once
(``static``) and once with PIMCOMP's balance replication (``pimcomp-ht``,
copies wherever arrays are free), and splits each run's energy into:

- ``macro``: the arrays' compute and leakage (array, ADC, DAC, zero
  detection, array static);
- ``program``: writing the weights (each copy is written);
- ``buffer``: the global and local buffers and the bus (buffer,
  interconnect, buffer static);
- ``dram``: off-chip traffic.

::

    python -m cimflow.tools.duplication_study [--macros 16] [--csv FILE] \
        [--plots docs/sparsity]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cimflow.cli import ArgumentParser, csv_text
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.output_files import write_output

TARGET = "ciminus"
STRATEGIES = ("static", "pimcomp-ht")
PARTS: dict[str, tuple[str, ...]] = {
    "macro": ("array", "adc", "shift_add", "dac", "zero_detect", "array_static"),
    "program": ("program",),
    "buffer": ("buffer", "interconnect", "buffer_static"),
    "dram": ("dram",),
}


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: ``cin -> cout`` channels on a ``size x size`` input."""

    cin: int
    cout: int
    size: int
    kernel: int = 3
    stride: int = 1

    @property
    def name(self) -> str:
        s = f"/{self.stride}" if self.stride > 1 else ""
        return f"conv{self.kernel} {self.cin}->{self.cout} @{self.size}{s}"

    def model(self) -> onnx.ModelProto:
        rng = np.random.default_rng(0)
        shape = (self.cout, self.cin, self.kernel, self.kernel)
        weight = rng.standard_normal(shape).astype(np.float32)
        out = self.size // self.stride
        node = helper.make_node(
            "Conv",
            ["x", "w"],
            ["y"],
            name="conv",
            kernel_shape=[self.kernel] * 2,
            pads=[self.kernel // 2] * 4,
            strides=[self.stride] * 2,
        )
        graph = helper.make_graph(
            [node],
            "layer",
            [
                helper.make_tensor_value_info(
                    "x", TensorProto.FLOAT, [1, self.cin, self.size, self.size]
                )
            ],
            [
                helper.make_tensor_value_info(
                    "y", TensorProto.FLOAT, [1, self.cout, out, out]
                )
            ],
            [numpy_helper.from_array(weight, "w")],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


RESNET20_LAYERS = (
    ConvLayer(3, 16, 32),
    ConvLayer(16, 16, 32),
    ConvLayer(16, 32, 32, stride=2),
    ConvLayer(32, 32, 16),
    ConvLayer(32, 64, 16, stride=2),
    ConvLayer(64, 64, 8),
)
"""CIFAR ResNet-20's distinct convolutions (He et al., 2016, §4.2)."""

COLUMNS = (
    "layer",
    "strategy",
    "cycles",
    *(f"{part}_nj" for part in PARTS),
    "total_nj",
)


def layer_energy(layer: ConvLayer, strategy: str, macros: int) -> dict[str, str]:
    """One layer compiled with ``strategy`` on ``macros`` macros: its cycles
    and energy by :data:`PARTS`, in nanojoules (3 decimals)."""
    from cimflow.cimsim.engine import simulate
    from cimflow.tools.cim_verify import compile_model, module_trace

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "layer.onnx"
        onnx.save(layer.model(), path)
        with overridden([f"hierarchy.arrays_per_core={macros}"]):
            pipeline = f"cim-compile{{strategy={strategy} target={TARGET}}}"
            stats = simulate(module_trace(compile_model(path, TARGET, pipeline))).stats
    row = {
        "layer": layer.name,
        "strategy": strategy,
        "cycles": str(stats.makespan_cycles),
    }
    for part, components in PARTS.items():
        row[f"{part}_nj"] = f"{sum(stats.energy_pj[c] for c in components) / 1e3:.3f}"
    row["total_nj"] = f"{stats.total_energy_pj / 1e3:.3f}"
    return row


def study(
    layers: Sequence[ConvLayer] = RESNET20_LAYERS, macros: int = 16
) -> list[dict[str, str]]:
    """Every layer under every strategy of :data:`STRATEGIES`."""
    return [layer_energy(layer, s, macros) for layer in layers for s in STRATEGIES]


def table(rows: Sequence[dict[str, str]]) -> str:
    """The study as a Markdown table: each duplicated run against the same
    layer's run without copies (ratios of duplicated over single)."""
    lines = [
        "| layer | cycles | macro nJ | program nJ | buffer nJ | dram nJ | total nJ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for single, duplicated in zip(rows[::2], rows[1::2], strict=True):
        cells = [single["layer"]]
        for key in ("cycles", *(f"{p}_nj" for p in PARTS), "total_nj"):
            a, b = float(single[key]), float(duplicated[key])
            fmt = "{:.0f}" if key == "cycles" else "{:.1f}"
            ratio = f" ({b / a:.2f}x)" if a else ""
            cells.append(f"{fmt.format(a)} -> {fmt.format(b)}{ratio}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plots(out: Path, rows: Sequence[dict[str, str]]) -> list[Path] | None:
    """``duplication.png``: per layer, left its macros' and its buffers'
    energy without copies and with them; right, duplicated over single, its
    cycles, macro, buffer and total energy (DRAM's is the same either
    way), on axes from zero. None when matplotlib is not installed."""
    from cimflow.tools.bench import agg_pyplot, save_png

    pyplot = agg_pyplot()
    if pyplot is None:
        return None
    pairs = list(zip(rows[::2], rows[1::2], strict=True))
    layers = [single["layer"] for single, _ in pairs]
    figure, (energy, ratios) = pyplot.subplots(
        1, 2, figsize=(12, 4.2), layout="constrained"
    )
    for offset, (part, color) in enumerate(
        (("macro", "tab:blue"), ("buffer", "tab:green"))
    ):
        for side, hatch in ((0, None), (1, "//")):
            values = [float(pair[side][f"{part}_nj"]) for pair in pairs]
            where = [i + (2 * offset + side - 1.5) * 0.2 for i in range(len(pairs))]
            label = f"{part}, {'duplicated' if side else 'single'}"
            energy.bar(where, values, 0.2, color=color, hatch=hatch, label=label)
    energy.set_xticks(range(len(pairs)), layers)
    energy.set_ylabel("energy (nJ)")
    energy.legend(fontsize=8)
    for key, style in (
        ("cycles", "o-"),
        ("macro_nj", "s--"),
        ("buffer_nj", "^--"),
        ("total_nj", "D-"),
    ):
        values = [float(b[key]) / float(a[key]) for a, b in pairs]
        ratios.plot(layers, values, style, label=key.removesuffix("_nj"))
    ratios.axhline(1.0, color="grey", linewidth=0.8)
    ratios.set_ylim(bottom=0)
    ratios.set_ylabel("duplicated / single")
    ratios.legend(fontsize=8)
    for axes in (energy, ratios):
        axes.tick_params(axis="x", labelsize=7, labelrotation=20)
    return [save_png(pyplot, figure, out / "duplication.png")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m cimflow.tools.duplication_study",
        description="Energy of duplicated weights on the CIMinus-like target.",
    )
    parser.add_argument("--macros", type=int, default=16, help="macros (default 16)")
    parser.add_argument("--csv", help="write the rows here")
    parser.add_argument(
        "--plots", help="write duplication.png here (needs matplotlib: the bench extra)"
    )
    try:
        args = parser.parse_args(argv)
        macros = int(args.macros)
        if macros < 1:
            raise CimError(f"--macros must be positive, got {macros}")
        rows = study(macros=macros)
        if args.csv:
            write_output(str(args.csv), csv_text(COLUMNS, rows))
        if args.plots:
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            if write_plots(Path(args.plots), rows) is None:
                print(
                    "duplication_study: matplotlib is not installed: no plots",
                    file=sys.stderr,
                )
    except CimError as error:
        print(f"duplication_study: error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
