"""CIMinus's mapping finding (``ciminus.md`` §10 row 7): on the 16-macro
configuration, duplicating a layer's weights shortens the run and lowers
the macros' energy, yet raises the total through buffer traffic (each
copy's weights cross the buffer and the bus)."""

from __future__ import annotations

from pathlib import Path

from cimflow.tools.duplication_study import ConvLayer, study, table

REPOSITORY = Path(__file__).resolve().parents[2]


def test_duplication_raises_total_energy_through_buffer_traffic() -> None:
    single, duplicated = study((ConvLayer(32, 32, 16),), macros=16)
    assert single["strategy"] == "static" and duplicated["strategy"] == "pimcomp-ht"
    assert int(duplicated["cycles"]) < int(single["cycles"])
    assert float(duplicated["macro_nj"]) < float(single["macro_nj"])
    assert float(duplicated["buffer_nj"]) > float(single["buffer_nj"])
    assert float(duplicated["dram_nj"]) == float(single["dram_nj"])
    assert float(duplicated["total_nj"]) > float(single["total_nj"])


def test_a_layer_filling_every_macro_gets_no_copy() -> None:
    single, duplicated = study((ConvLayer(64, 64, 8),), macros=16)
    assert {k: v for k, v in single.items() if k != "strategy"} == {
        k: v for k, v in duplicated.items() if k != "strategy"
    }


def test_the_docs_quote_the_study() -> None:
    text = (REPOSITORY / "docs" / "sparsity.md").read_text(encoding="utf-8")
    assert table(study()) in text
