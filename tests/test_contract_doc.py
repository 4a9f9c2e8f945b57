"""The data contract lives in the repository (docs/data-contract.md) and agrees with the code:
every table, column and rule that `contract.py` declares is written there, and the event
vocabulary there is the package's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clmmodels.contract import SCHEMA, SCORE_RANGES, TABLES
from clmmodels.vocabulary import DEFAULT_EVENT_STAGES, STAGES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "data-contract.md"
# What the doc says for each kind of column (the rule a user reads).
KIND_WORDS = {
    "string": "string",
    "datetime": "datetime",
    "date": "date",
    "amount": ">= 0, finite",
    "event_type": "vocabulary",
}


def doc_rows(heading: str) -> list[list[str]]:
    """The body rows of the first markdown table under ``heading``."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    rows, started = [], False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


def contract_table() -> dict[tuple[str, str], str]:
    out, table = {}, None
    for cells in doc_rows("## Tables"):
        table = cells[0] or table
        out[(table, cells[1])] = " ".join(cells[2:])
    return out


def test_the_contract_is_in_the_repository_and_the_code_points_to_it():
    assert DOC.exists()
    for path in (
        ROOT / "README.md",
        ROOT / "clmmodels" / "cli.py",
        ROOT / "clmmodels" / "contract.py",
    ):
        text = path.read_text(encoding="utf-8")
        assert "docs/data-contract.md" in text, path
        assert "shared/data-contract" not in text, path


@pytest.mark.parametrize("table", TABLES)
def test_every_column_and_rule_of_the_schema_is_documented(table):
    documented = contract_table()
    for column, col in SCHEMA[table].items():
        rule = documented.get((table, column))
        assert rule is not None, f"{table}.{column} is not in {DOC.name}"
        assert KIND_WORDS.get(col.kind, "integer") in rule, (table, column, rule)
        assert ("unique" in rule) == col.unique, (table, column, rule)
        assert ("optional" in rule) == (not col.required), (table, column, rule)
        if col.kind in SCORE_RANGES:
            lo, hi = SCORE_RANGES[col.kind]
            assert f"{lo}..{hi}" in rule, (table, column, rule)
    # and nothing documented that the code does not check (attribute rows aside)
    extra = {c for (t, c) in documented if t == table and not c.startswith("*")}
    assert extra == set(SCHEMA[table]), (table, extra ^ set(SCHEMA[table]))


def test_the_stage_vocabulary_is_the_packages():
    rows = doc_rows("## Lifecycle stages")
    assert [r[0] for r in rows] == list(STAGES)
    documented = {}
    for stage, events in rows:
        for event in re.findall(r"[a-z_]+", events.split("(")[0]):
            documented[event] = stage
    assert documented == dict(DEFAULT_EVENT_STAGES)
