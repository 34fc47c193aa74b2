"""``cim-ndp``: LLM inference on a GPU with near-data-processing DIMMs
(Hermes, HPCA 2025): the offline hot/cold partition, then prefill and
token-by-token decoding with the online predictor, hot/cold adjustment and
window remapping, reported per phase.

::

    cim-ndp --model llama2-70b                        # Hermes, batch 1
    cim-ndp --model opt-66b --policy random,partition,adjust,hermes,base
    cim-ndp --model falcon-40b --system hermes_host --batch 4
    cim-ndp --model llama2-70b --set dimm.count=16 --layers 8 --json out.json
    cim-ndp --model llama2-13b --frequencies counts.npz --samples 128
    cim-ndp --model llama2-13b --trace measured.npz --prompt 64 --output 64
    cim-opt opt.onnx --dim batch=1 --dim sequence=1 -p ndp-partition -o placed.mlir
    cim-ndp --compiled placed.mlir                    # the pass's placement
    cim-ndp --list                                    # models and systems

Systems are TOML files (``hw_targets/ndp/SCHEMA.md``); activation traces are
synthetic and seeded (``cimflow.ndp.activations``) unless ``--frequencies``
gives measured per-neuron frequencies or counts, or ``--trace`` a measured
trace of one sequence. ``--compiled`` simulates the decoder of a module
``ndp-partition`` annotated, with the placement the pass wrote and the
system it recorded, instead of a shape from the table and a placement
solved here. ``docs/ndp.md`` compares the figures with the paper's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import cast

from xdsl.dialects.builtin import StringAttr

from cimflow.cli import ArgumentParser, aligned_table, exit_status
from cimflow.errors import CimError
from cimflow.hw_targets import parse_override
from cimflow.ndp.activations import TraceStatistics, load_frequencies, load_trace
from cimflow.ndp.decode import POLICIES, DecodeOptions, DecodeReport
from cimflow.ndp.graph import SYSTEM_ATTR, compiled_partition, decoder_shape
from cimflow.ndp.llm import SHAPES, DecoderShape, load_shape
from cimflow.ndp.partition import Partition
from cimflow.ndp.run import Workload, run_policies
from cimflow.ndp.system import NdpSystem, load_system, shipped_systems
from cimflow.output_files import write_output

COLUMNS: tuple[str, ...] = (
    "policy",
    "tokens/s",
    "prefill s",
    "decode s",
    "QKV s",
    "attn s",
    "proj s",
    "MLP s",
    "migr s",
    "GPU share",
    "recall",
    "precision",
    "PCIe GB",
    "link GB",
    "link mJ",
)


def report_row(report: DecodeReport) -> tuple[str, ...]:
    """One row of :data:`COLUMNS`."""
    return (
        report.policy,
        f"{report.tokens_per_second:.2f}",
        f"{report.prefill_seconds:.2f}",
        f"{report.decode_seconds:.2f}",
        f"{report.qkv_seconds:.2f}",
        f"{report.attention_seconds:.3f}",
        f"{report.projection_seconds:.2f}",
        f"{report.mlp_seconds:.2f}",
        f"{report.exposed_migration_seconds:.3f}",
        f"{report.hot_fraction_of_params:.3f}",
        f"{report.predictor.recall:.3f}",
        f"{report.predictor.precision:.3f}",
        f"{report.pcie_bytes / 1e9:.1f}",
        f"{report.dimm_link_bytes / 1e9:.2f}",
        f"{report.dimm_link_joules * 1e3:.2f}",
    )


def format_table(rows: Sequence[Sequence[str]], columns: Sequence[str]) -> str:
    return "\n".join(aligned_table([columns, *rows]))


def report_json(
    system: NdpSystem, workload: Workload, reports: Sequence[DecodeReport]
) -> str:
    """The reports with what produced them (system, model, options)."""
    options = asdict(workload.options)
    options.pop("policy")
    options["rules"] = asdict(workload.options.rules)
    document = {
        "system": system.to_dict(),
        "model": asdict(workload.shape),
        "options": options,
        "statistics": asdict(workload.statistics),
        "simulated_layers": workload.simulated_layers,
        "activity": "imported trace"
        if workload.trace is not None
        else "imported frequencies"
        if workload.stationary is not None
        else "synthetic",
        "reports": [
            {
                **{k: v for k, v in asdict(r).items() if k != "predictor"},
                "decode_seconds": r.decode_seconds,
                "total_seconds": r.total_seconds,
                "tokens_per_second": r.tokens_per_second,
                "predictor": {
                    "accuracy": r.predictor.accuracy,
                    "recall": r.predictor.recall,
                    "precision": r.predictor.precision,
                },
            }
            for r in reports
        ],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _listing() -> str:
    rows = [
        (
            s.name,
            f"{s.params / 1e9:.1f}",
            str(s.layers),
            str(s.hidden),
            str(s.ffn_hidden),
            f"{s.heads}/{s.kv_heads}",
            "gated" if s.gated_mlp else "plain",
        )
        for s in SHAPES.values()
    ]
    models = format_table(
        rows, ("model", "B params", "layers", "hidden", "ffn", "heads/kv", "MLP")
    )
    systems: list[tuple[str, ...]] = []
    for name in shipped_systems():
        system = load_system(name)
        systems.append(
            (
                name,
                system.kind,
                str(system.dimm.count),
                f"{system.dimm_bandwidth / 1e9:.1f}",
                f"{system.ndp_macs_per_second / 1e9:.0f}",
                f"{system.gpu.bandwidth_gb_per_s:g}",
                f"{system.host_link.bandwidth_gb_per_s:g}",
            )
        )
    table = format_table(
        systems,
        ("system", "kind", "DIMMs", "DIMM GB/s", "NDP GMAC/s", "GPU GB/s", "PCIe GB/s"),
    )
    return f"{models}\n\n{table}\n"


def compiled_decoder(path: Path) -> tuple[DecoderShape, Partition, str]:
    """The decoder of the module at ``path`` (named after the file), the
    placement ``ndp-partition`` wrote on it and the system it recorded."""
    from xdsl.parser import Parser
    from xdsl.utils.exceptions import ParseError

    from cimflow.universe import multiverse_context

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CimError(f"{path}: cannot read: {error}") from None
    try:
        module = Parser(multiverse_context(), text, str(path)).parse_module()
    except ParseError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        where = lines[0] if lines else str(path)
        raise CimError(
            f"{where}: not an MLIR module: {lines[-1] if lines else 'parse error'}"
        ) from None
    recorded = module.attributes.get(SYSTEM_ATTR)
    if not isinstance(recorded, StringAttr):
        raise CimError(
            f"{path}: no '{SYSTEM_ATTR}' on the module: run ndp-partition first"
        )
    try:
        shape = decoder_shape(module, path.stem)
        return shape, compiled_partition(module), recorded.data
    except CimError as error:
        raise CimError(f"{path}: {error}") from None


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cim-ndp",
        description="Simulate LLM inference on a GPU with NDP-DIMMs (Hermes).",
    )
    parser.add_argument("--model", default=None, help="model shape (--list)")
    parser.add_argument(
        "--system",
        default=None,
        help="shipped system name or .toml path (default: hermes, or the "
        "one a --compiled module names)",
    )
    parser.add_argument(
        "--compiled",
        type=Path,
        default=None,
        help="an MLIR module ndp-partition annotated: simulate its decoder "
        "with the placement the pass wrote",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one key of the system (repeatable; hw_targets/ndp/SCHEMA.md)",
    )
    parser.add_argument(
        "--policy",
        default="hermes",
        help=f"comma-separated policies: {', '.join(POLICIES)}",
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--output", type=int, default=128, help="generated tokens")
    parser.add_argument(
        "--layers",
        type=int,
        default=None,
        help="layers to simulate (default all; the others are statistically "
        "the same and scale)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sparsity", type=float, default=None, help="synthetic trace sparsity"
    )
    parser.add_argument(
        "--frequencies",
        type=Path,
        default=None,
        help="measured per-neuron frequencies or counts (.npz/.npy) instead "
        "of the fitted power law",
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="samples behind --frequencies counts"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="a measured activation trace (.npz, one (tokens, neurons) array per "
        "block) to run instead of synthetic ones",
    )
    parser.add_argument(
        "--groups", type=int, default=32, help="neuron groups per block in the ILP"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write the reports as JSON"
    )
    parser.add_argument("--list", action="store_true", help="list models and systems")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cim-ndp``."""
    try:
        args = _parser().parse_args(argv)
        if cast(bool, args.list):
            sys.stdout.write(_listing())
            return 0
        overrides = dict(parse_override(text) for text in cast(list[str], args.set))
        compiled = None
        if args.compiled is not None:
            if args.model is not None:
                raise CimError("give --model or --compiled, not both")
            compiled = compiled_decoder(cast(Path, args.compiled))
        system_spec = cast("str | None", args.system)
        if compiled is not None and system_spec is None:
            system_spec = compiled[2]
        system = load_system(system_spec or "hermes", overrides)
        if compiled is not None and system.name != compiled[2]:
            raise CimError(
                f"{args.compiled}: placed for system '{compiled[2]}', but "
                f"--system is '{system.name}'"
            )
        policies = [p.strip() for p in cast(str, args.policy).split(",") if p.strip()]
        statistics = TraceStatistics()
        if args.sparsity is not None:
            statistics = TraceStatistics(sparsity=cast(float, args.sparsity))
        stationary = None
        if args.frequencies is not None:
            stationary = load_frequencies(
                cast(Path, args.frequencies), samples=cast(int | None, args.samples)
            )
        options = DecodeOptions(
            batch=cast(int, args.batch),
            prompt=cast(int, args.prompt),
            output=cast(int, args.output),
            policy=policies[0] if policies else "hermes",
            seed=cast(int, args.seed),
        )
        workload = Workload(
            compiled[0]
            if compiled is not None
            else load_shape(cast("str | None", args.model) or "llama2-70b"),
            options,
            statistics=statistics,
            layers=cast(int | None, args.layers),
            seed=cast(int, args.seed),
            stationary=stationary,
            groups=cast(int, args.groups),
            trace=None if args.trace is None else load_trace(cast(Path, args.trace)),
            partition=None if compiled is None else compiled[1],
        )
        reports = run_policies(system, workload, policies or ["hermes"])
        changed = "".join(f"; {key} = {value}" for key, value in overrides.items())
        text = (
            f"{workload.shape.name} on {system.name} ({system.system.description}"
            f"{changed}), "
            f"batch {workload.options.batch}, prompt {workload.options.prompt}, "
            f"output {workload.options.output}, {workload.simulated_layers} of "
            f"{workload.shape.layers} layers simulated\n"
            + format_table([report_row(r) for r in reports], COLUMNS)
            + "\n"
        )
        if args.json is not None:
            write_output(cast(Path, args.json), report_json(system, workload, reports))
    except CimError as error:
        print(f"cim-ndp: error: {error}", file=sys.stderr)
        return exit_status(error)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
