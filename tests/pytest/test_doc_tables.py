"""The benchmark tables in docs/ are what their committed cim-bench CSVs
say (python -m cimflow.tools.doc_tables regenerates them)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cimflow.tools import doc_tables


def test_every_generated_table_matches_its_csv() -> None:
    assert doc_tables.refresh(check=True) == []


def test_a_changed_result_makes_its_table_stale(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(doc_tables.DOCS, docs)
    source = docs / "data" / doc_tables.TABLES["default-suite"].sources[0]
    lines = source.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    first = lines[1].split(",")
    column = header.index("bound_ratio")
    first[column] = "9.99"
    lines[1] = ",".join(first)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert doc_tables.refresh(check=True, docs=docs) == ["default-suite"]
    assert doc_tables.refresh(check=False, docs=docs) == ["default-suite"]
    assert "(9.99)" in (docs / "strategies.md").read_text(encoding="utf-8")
    assert doc_tables.refresh(check=True, docs=docs) == []
