"""DuckDB helpers: one configured connection and a SQL source for frames, files and globs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from .errors import ClmError

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
    quoted = path.replace("'", "''")
    if path.endswith(".parquet"):
        reader = f"read_parquet('{quoted}')"
    else:
        reader = f"read_csv('{quoted}', header = true, all_varchar = true)"
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {reader}")
    return name


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


def utc_day(con: duckdb.DuckDBPyConnection, view: str, column: str) -> str:
    """SQL for the UTC calendar day of ``column``."""
    return f"CAST({utc_timestamp(con, view, column)} AS DATE)"
