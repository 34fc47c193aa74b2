"""CIMinus's mapping finding (``ciminus.md`` §10 row 7): on the 16-macro
configuration, duplicating a layer's weights shortens the run and lowers
the macros' energy, yet raises the total through buffer traffic (each
copy's weights cross the buffer and the bus)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cimflow.tools.duplication_study import ConvLayer, study, table, write_plots

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


def test_the_plot_needs_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the import fails
    rows = study((ConvLayer(3, 16, 32),), macros=16)
    assert write_plots(tmp_path, rows) is None
    assert not list(tmp_path.iterdir())


def test_the_duplication_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = study((ConvLayer(3, 16, 32), ConvLayer(32, 32, 16)), macros=16)
    (written,) = write_plots(tmp_path, rows) or []
    assert written.read_bytes().startswith(b"\x89PNG")
