"""DuckDB helpers: one configured connection and a SQL source for frames, files and globs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from .contract import AMOUNT_LIMIT_RULE, MAX_AMOUNT, header_violations
from .errors import ClmError, ContractError, Violation

Source = pd.DataFrame | str | Path


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC (the contract drops time zones after UTC).

    ``memory_limit`` (e.g. ``"2GB"``) caps DuckDB's memory; beyond it, it spills to disk, in
    the system's temporary folder (DuckDB's default would be ``.tmp`` in the working folder).
    """
    config = {"temp_directory": str(Path(tempfile.gettempdir()) / "clmmodels-duckdb")}
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        con = duckdb.connect(config=config)
    except duckdb.Error as err:
        raise ClmError(f"memory limit {memory_limit!r}: {err}") from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # batch logs; the scorer has its own bar
    return con


def register_source(con: duckdb.DuckDBPyConnection, name: str, source: Source) -> str:
    """Make ``source`` queryable as the view ``name``; returns ``name``.

    A DataFrame is scanned in place; a path or glob is read lazily: CSV as text (ids keep
    their leading zeros), Parquet with its own types.
    """
    if isinstance(source, pd.DataFrame):
        con.register(name, source)
        return name
    path = str(source)
    if path.endswith(".parquet"):
        reader = f"read_parquet({string_literal(path)})"
    else:
        reader = f"read_csv({string_literal(path)}, header = true, all_varchar = true)"
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {reader}")
    return name


def string_literal(text: str) -> str:
    """SQL for the string ``text`` (a path, say), its quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


# The contract's rules for transactions and events, as SQL that is true where a value breaks
# the rule: the same rules (and wording) the pandas engine checks through its schemas. Text
# (CSV) is read trimmed, {text}: a plain TRY_CAST of a CSV column is pushed into DuckDB's (2.0)
# CSV reader, which then fails on the first bad value instead of counting it. Typed columns
# (Parquet) are checked as they are, {value}, without a round trip through text.
# Empty: NULL or only what trim removes (spaces, and Unicode spaces, whose UTF-8 starts at
# 0xC2); the comparisons before trim let a Parquet scan skip row groups by their min and max.
_EMPTY = "{raw} IS NULL OR (({raw} < '!' OR {raw} >= chr(128)) AND {text} = '')"
_NOT_EMPTY = "not empty", _EMPTY, "{value} IS NULL"
_TIMESTAMP = (
    "timestamp",
    "ISO 8601 timestamp",
    "{text} <> '' AND TRY_CAST({text} AS TIMESTAMPTZ) IS NULL",
    "false",
)
# Per table: (column, rule, on text, on typed values). An event type's vocabulary depends on
# the user's mapping: stage assignment checks it.
RULES = {
    "transactions": (
        ("customer_id", "not empty", _EMPTY, _EMPTY),
        ("timestamp", *_NOT_EMPTY),
        _TIMESTAMP,
        ("amount", *_NOT_EMPTY),
        (
            "amount",
            "a finite number >= 0",
            "{text} <> '' AND coalesce(NOT isfinite(TRY_CAST({text} AS DOUBLE))"
            " OR TRY_CAST({text} AS DOUBLE) < 0, true)",
            "coalesce(NOT isfinite(CAST({value} AS DOUBLE)) OR {value} < 0, false)",
        ),
        (
            "amount",
            AMOUNT_LIMIT_RULE,
            "{text} <> '' AND coalesce(isfinite(TRY_CAST({text} AS DOUBLE))"
            f" AND TRY_CAST({{text}} AS DOUBLE) > {MAX_AMOUNT:.0f}, false)",
            "coalesce(isfinite(CAST({value} AS DOUBLE))"
            f" AND {{value}} > {MAX_AMOUNT:.0f}, false)",
        ),
    ),
    "events": (
        ("customer_id", "not empty", _EMPTY, _EMPTY),
        ("timestamp", *_NOT_EMPTY),
        _TIMESTAMP,
        ("event_type", "not empty", _EMPTY, _EMPTY),
    ),
}
SHOWN_ROWS = 5


def register_checked(con: duckdb.DuckDBPyConnection, table: str, source: Source) -> str:
    """:func:`register_source` as the view ``table`` (``"transactions"`` or ``"events"``);
    files (which no contract check has read) are checked first, and a broken rule raises
    :class:`ContractError` naming the file, the column, the rule and the first offending
    rows."""
    if not isinstance(source, pd.DataFrame):
        violations = header_violations(str(source))
        if violations:
            raise ContractError(violations, dataset=str(source))
    name = register_source(con, table, source)
    if not isinstance(source, pd.DataFrame):
        violations = check_table(con, name, str(source), table)
        if violations:
            raise ContractError(violations, dataset=str(source))
    return name


def check_table(
    con: duckdb.DuckDBPyConnection, view: str, path: str, table: str
) -> list[Violation]:
    """The contract's violations in the view ``view`` of the file(s) ``path``, by the
    :data:`RULES` of ``table``."""
    rules = RULES[table]
    kinds = {row[0]: row[1] for row in con.execute(f"DESCRIBE {view}").fetchall()}
    missing = list(dict.fromkeys(c for c, *_ in rules if c not in kinds))
    if missing:
        return [Violation(path, c, "required column", detail="the column is missing")
                for c in missing]  # fmt: skip
    tests = [
        (text if kinds[c] == "VARCHAR" else typed).format(
            text=f'trim(CAST("{c}" AS VARCHAR))', raw=f'CAST("{c}" AS VARCHAR)', value=f'"{c}"'
        )
        for c, _, text, typed in rules
    ]
    parquet = path.endswith(".parquet")
    if parquet:  # a WHERE per rule: row groups whose statistics pass are skipped
        counts = [
            con.execute(f"SELECT count(*) FROM {view} WHERE {t}").fetchall()[0][0] for t in tests
        ]
    else:  # text is parsed once
        counts = con.execute(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE {t})" for t in tests) + f" FROM {view}"
        ).fetchall()[0]
    label = "row {}" if parquet else "line {}"
    offset = 0 if parquet else 1  # a CSV's header is line 1
    out = []
    for (column, rule, *_), test, n in zip(rules, tests, counts, strict=True):
        if not n:
            continue
        first = con.execute(
            f'SELECT rn, CAST("{column}" AS VARCHAR) FROM '
            f"(SELECT row_number() OVER () AS rn, * FROM {view}) WHERE {test} "
            f"ORDER BY rn LIMIT {SHOWN_ROWS}"
        ).fetchall()
        out.append(
            Violation(
                path,
                column,
                rule,
                count=int(n),
                rows=tuple(label.format(rn + offset) for rn, _ in first),
                values=tuple("" if v is None else v for _, v in first),
            )
        )
    return out


def utc_timestamp(con: duckdb.DuckDBPyConnection, view: str, column: str) -> str:
    """SQL for ``column`` as a UTC timestamp without time zone (the contract's reading).

    Text may carry UTC offsets, so it goes through TIMESTAMPTZ (slow, ICU; the session is in
    UTC); a column that is already a timestamp without time zone (Parquet, pandas) is kept.
    """
    rows = con.execute(f'SELECT typeof("{column}") FROM {view} LIMIT 1').fetchall()
    kind = rows[0] if rows else None
    quoted = f'"{column}"'
    if kind and kind[0] in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"):
        return f"CAST({quoted} AS TIMESTAMP)"
    return f"CAST(CAST({quoted} AS TIMESTAMPTZ) AS TIMESTAMP)"
