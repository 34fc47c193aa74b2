"""The accuracy study (``tools/accuracy_study.py``): a point of each kind
runs, calibration holds at 8 bits, the committed sweep has every sweep and
column, and the docs' table quotes it."""

from __future__ import annotations

import csv
from pathlib import Path

from cimflow.tools import accuracy_study as study

REPOSITORY = Path(__file__).resolve().parents[2]
COMMITTED = REPOSITORY / "docs" / "data" / "accuracy-sweep.csv"


def test_a_noise_point_and_an_adc_point() -> None:
    rows = study.study(
        sweeps=[
            study.Sweep("adc_bits", "array.adc_bits", (8,)),
            study.Sweep("program_sigma", "nonideal.program_sigma", (0.1,)),
        ]
    )
    ideal, noisy = rows
    assert ideal["overrides"] == "array.adc_bits=8"
    assert float(ideal["cnn_cosine_calibrated"]) >= 0.999
    assert float(ideal["digits_calibrated"]) >= 0.97
    assert float(noisy["cnn_cosine_calibrated"]) < float(ideal["cnn_cosine_calibrated"])
    assert ideal["resnet18_us"] == ""  # not a latency sweep


def test_the_committed_sweep_has_every_sweep_and_column() -> None:
    with COMMITTED.open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == study.COLUMNS
    assert [s.name for s in study.SWEEPS] == list(
        dict.fromkeys(r["sweep"] for r in rows)
    )
    for sweep in study.SWEEPS:
        points = [r for r in rows if r["sweep"] == sweep.name]
        assert [float(r["value"]) for r in points] == [float(v) for v in sweep.values]
        assert all(bool(r["resnet18_us"]) == sweep.latency for r in points)


def test_the_docs_quote_the_committed_sweep() -> None:
    with COMMITTED.open() as handle:
        rows = {(r["sweep"], r["value"]): r for r in csv.DictReader(handle)}
    text = (REPOSITORY / "docs" / "functional-verification.md").read_text()
    for key, cells in [
        (("adc_bits", "8"), "| 8 | 98.61% | 0.9495 | 0.9999 | 1250 | 1300 |"),
        (("rows_per_pass", "64"), "| 64 | 98.61% | 0.8186 | 0.9999 | 1754 | 1529 |"),
    ]:
        row = rows[key]
        assert f"{float(row['digits_calibrated']):.2%}" in cells
        assert row["cnn_cosine"] in cells and row["cnn_cosine_calibrated"] in cells
        assert f"{float(row['resnet18_us']):.0f}" in cells
        assert cells in text
