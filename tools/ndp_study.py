"""The Hermes figures beside the paper's: ``python -m cimflow.tools.ndp_study``
prints the Markdown tables of ``docs/ndp.md`` (batch-1 tokens/s against
Fig. 9-10, batch scaling against Fig. 11, the ablation chain of Fig. 13,
DIMM count of Fig. 14, multipliers of Fig. 16).

Every run simulates ``--layers`` layers of each model (default 4; every
synthetic layer is statistically the same) with seeded synthetic traces, so
the tables are deterministic. Paper values are from
``shared/reference/hermes.md`` section 9.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cimflow.errors import CimError
from cimflow.ndp.decode import DecodeOptions, DecodeReport
from cimflow.ndp.llm import load_shape
from cimflow.ndp.run import Workload, run_policies
from cimflow.ndp.system import load_system

PAPER_BATCH1: dict[str, tuple[float, float, float | None]] = {
    # model: (Hermes, Hermes-host, Hermes-base) tokens/s at batch 1 (Fig. 9-10)
    "opt-13b": (135.64, 20.39, None),
    "opt-30b": (46.16, 9.07, None),
    "opt-66b": (20.37, 4.24, None),
    "llama2-13b": (91.95, 11.86, 30.90),
    "llama2-70b": (13.75, 1.97, 2.45),
    "falcon-40b": (30.02, 5.58, 4.34),
}
PAPER_BATCHES: dict[str, tuple[float, ...]] = {
    # Hermes tokens/s at batch 1, 2, 4, 8, 16 (Fig. 11; LLaMA2-70B above
    # batch 1 is tentative OCR)
    "falcon-40b": (30.02, 45.34, 70.28, 113.09, 182.72),
    "opt-66b": (20.37, 32.71, 51.58, 80.85, 125.99),
    "llama2-70b": (13.75, 16.05, 21.49, 33.36, 57.02),
}
BATCHES = (1, 2, 4, 8, 16)
PAPER_CHAIN = (1.63, 1.33, 1.29)


def _runs(
    model: str,
    policies: Sequence[str],
    *,
    layers: int,
    system: str = "hermes",
    batch: int = 1,
    overrides: dict[str, object] | None = None,
) -> list[DecodeReport]:
    shape = load_shape(model)
    workload = Workload(
        shape, DecodeOptions(batch=batch), layers=min(layers, shape.layers)
    )
    return run_policies(load_system(system, overrides), workload, policies)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def batch1_table(layers: int) -> str:
    rows: list[list[str]] = []
    for model, (hermes_paper, host_paper, base_paper) in PAPER_BATCH1.items():
        hermes, base = _runs(model, ["hermes", "base"], layers=layers)
        (host,) = _runs(model, ["partition"], layers=layers, system="hermes_host")
        ratio = hermes.tokens_per_second / host.tokens_per_second
        rows.append(
            [
                model,
                f"{hermes.tokens_per_second:.2f}",
                f"{hermes_paper:.2f}",
                f"{hermes.tokens_per_second / hermes_paper:.2f}",
                f"{host.tokens_per_second:.2f}",
                f"{host_paper:.2f}",
                f"{ratio:.2f} ({hermes_paper / host_paper:.2f})",
                f"{base.tokens_per_second:.2f}",
                "-" if base_paper is None else f"{base_paper:.2f}",
                f"{hermes.prefill_seconds / hermes.total_seconds:.2f}",
            ]
        )
    return _table(
        [
            "model",
            "Hermes",
            "paper",
            "ratio",
            "Hermes-host",
            "paper",
            "Hermes / host (paper)",
            "Hermes-base",
            "paper",
            "prefill share",
        ],
        rows,
    )


def batch_table(layers: int) -> str:
    rows: list[list[str]] = []
    for model, paper in PAPER_BATCHES.items():
        cells = [model]
        for batch, value in zip(BATCHES, paper, strict=True):
            (report,) = _runs(model, ["hermes"], layers=layers, batch=batch)
            cells.append(f"{report.tokens_per_second:.1f} ({value:.1f})")
        rows.append(cells)
    return _table(["model", *(f"batch {b} (paper)" for b in BATCHES)], rows)


def ablation_table(layers: int) -> str:
    policies = ["random", "partition", "adjust", "hermes"]
    reports = _runs("llama2-70b", policies, layers=layers)
    mlp = [r.mlp_seconds for r in reports]
    chain = [mlp[i] / mlp[i + 1] for i in range(3)]
    rows = [
        [
            f"{name} over {previous}",
            f"{value:.2f}",
            f"{paper:.2f}",
        ]
        for name, previous, value, paper in zip(
            policies[1:], policies[:-1], chain, PAPER_CHAIN, strict=True
        )
    ]
    return _table(["MLP-block latency, LLaMA2-70B", "measured", "paper"], rows)


def dimm_table(layers: int) -> str:
    rows: list[list[str]] = []
    for model in ("llama2-70b", "falcon-40b"):
        cells = [model]
        for count in (2, 4, 8, 16):
            try:
                (report,) = _runs(
                    model, ["hermes"], layers=layers, overrides={"dimm.count": count}
                )
                cells.append(f"{report.tokens_per_second:.2f}")
            except CimError as error:  # a model the DIMMs cannot hold
                cells.append("does not fit" if "DIMM memory" in str(error) else "error")
        rows.append(cells)
    return _table(["model", "2 DIMMs", "4", "8", "16"], rows)


def multiplier_table(layers: int) -> str:
    rows: list[list[str]] = []
    counts = (32, 64, 128, 256, 512)
    for batch in (1, 16):
        values = [
            _runs(
                "opt-13b",
                ["hermes"],
                layers=layers,
                batch=batch,
                overrides={"ndp.multipliers": count},
            )[0].tokens_per_second
            for count in counts
        ]
        rows.append(
            [f"OPT-13B batch {batch}"]
            + [f"{v:.1f}" for v in values]
            + [f"{values[-1] / values[0]:.2f}"]
        )
    return _table(["", *(str(c) for c in counts), "512 / 32"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ndp_study", description=__doc__)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--tables",
        default="batch1,batches,ablation,dimms,multipliers",
        help="which tables, comma-separated",
    )
    args = parser.parse_args(argv)
    makers = {
        "batch1": batch1_table,
        "batches": batch_table,
        "ablation": ablation_table,
        "dimms": dimm_table,
        "multipliers": multiplier_table,
    }
    for name in str(args.tables).split(","):
        print(f"### {name}\n\n{makers[name](int(args.layers))}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
