"""DuckDB helpers: one configured connection and a SQL source for frames, files and globs."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import duckdb

from . import contract
from .contract import header_violations
from .errors import ClmError, ContractError, Violation

if TYPE_CHECKING:  # imported where a function needs it: an engine starts before pandas is
    import pandas as pd  # imported (clm score imports it while DuckDB aggregates)

#: A table as the helpers take it: a path or glob, else a pandas DataFrame (read in place).
Source: TypeAlias = "pd.DataFrame | str | Path"


def is_frame(source: object) -> bool:
    """Whether ``source`` is a pandas DataFrame, told without importing pandas: a frame exists
    only once pandas is imported (another thread may be importing it now, halfway)."""
    frame = getattr(sys.modules.get("pandas"), "DataFrame", None)
    return frame is not None and isinstance(source, frame)


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
    try:
        con.execute("SET enable_progress_bar = false")  # batch logs; the scorer has its own bar
    except duckdb.InvalidInputException:
        pass  # a Jupyter kernel without ipywidgets, where DuckDB draws no bar and refuses the SET
    return con


#: The memory limit chosen from the data (:func:`memory_limit_for`): this many times the
#: input's bytes on disk (a Parquet file; CSV is larger for the same rows, so it gets more),
#: and never under LEAN_FLOOR. At 1M customers and 3.6M transactions (a 62 MiB Parquet file)
#: that is about 500 MiB: as fast as DuckDB's default of 80% of the machine's memory, at a
#: lower peak; a tighter limit makes the per-customer aggregation spill and take longer.
LEAN_BYTES_PER_INPUT_BYTE = 8
#: For a DataFrame, read in place: this many times its columns' bytes (strings as pointers).
LEAN_BYTES_PER_FRAME_BYTE = 4
LEAN_FLOOR = 256 * 2**20


def memory_limit_for(source) -> str | None:
    """A DuckDB memory limit for aggregating ``source`` (a path, glob or DataFrame), chosen
    from its size: :data:`LEAN_BYTES_PER_INPUT_BYTE` times its bytes, at least
    :data:`LEAN_FLOOR`, as DuckDB spells it (``"500MB"``); None (DuckDB's own default, 80%
    of the machine's memory) when that is no lower or the size cannot be told (a remote
    path, a Spark frame)."""
    if is_frame(source):
        size = int(source.memory_usage(index=True, deep=False).sum()) * LEAN_BYTES_PER_FRAME_BYTE
    elif isinstance(source, str | Path) and "://" not in str(source):
        import glob

        files = glob.glob(str(source), recursive=True)
        if not files:
            return None  # no file: the reader says so, with its own message
        size = sum(Path(f).stat().st_size for f in files) * LEAN_BYTES_PER_INPUT_BYTE
    else:
        return None
    limit = max(size, LEAN_FLOOR)
    try:
        machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        machine = None
    if machine is not None and limit >= 0.8 * machine:
        return None
    return f"{-(-limit // 10**6)}MB"  # DuckDB's MB are 10^6 bytes; rounded up


def register_source(con: duckdb.DuckDBPyConnection, name: str, source: Source) -> str:
    """Make ``source`` queryable as the view ``name``; returns ``name``.

    A DataFrame is scanned in place; a path or glob is read lazily: CSV as text (ids keep
    their leading zeros), Parquet with its own types.
    """
    if is_frame(source):
        con.register(name, source)
        return name
    path = str(source)
    if path.endswith(".parquet"):
        reader = f"read_parquet({string_literal(path)})"
    else:
        reader = f"read_csv({string_literal(path)}, header = true, all_varchar = true)"
    try:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {reader}")
    except duckdb.Error as err:  # no file matches, one cannot be opened or is not a table
        raise ContractError([_unreadable(path, err)], dataset=path) from None
    return name


def _first_line(err: Exception) -> str:
    """DuckDB's message without its error class and the SQL it quotes."""
    return str(err).split("\n")[0].split("Error: ", 1)[-1].strip()


def string_literal(text: str) -> str:
    """SQL for the string ``text`` (a path, say), its quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


SHOWN_ROWS = contract.SHOWN_ROWS


def register_checked(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: Source,
    event_types: Collection[str] | None = None,
) -> str:
    """:func:`register_source` as the view ``table``; files (which no contract check has read)
    are checked first, and a broken rule raises :class:`ContractError` naming the file, the
    column, the rule and the first offending rows. Frames are checked where they become a
    :class:`~clmmodels.dataset.Dataset`.

    An optional id that must be unique (``order_id``) is not checked here: no aggregation
    reads it, and at 100M rows the check is a hash table of every id. ``clm validate`` and
    :func:`~clmmodels.dataset.load_dataset` check it."""
    if is_frame(source):
        return register_source(con, table, source)
    key = _file_key(table, source, event_types)
    if key is not None and key in _CHECKED:
        return register_source(con, table, source)
    violations = _register_and_check(con, table, source, table, event_types, optional_ids=False)
    if violations:
        raise ContractError(violations, dataset=str(source))
    if key is not None:
        _CHECKED.add(key)
    return table


#: Files this process has checked and found in the contract's shape, by path, size and
#: modification time: an analysis that reads a file several times (the profile's stages,
#: snapshots and scores) scans it for the check once.
_CHECKED: set[tuple] = set()


def _file_key(table: str, source: Source, event_types: Collection[str] | None) -> tuple | None:
    """What identifies a checked file (None for a glob or a remote path: checked each time)."""
    path = Path(str(source))
    if "://" in str(source) or not path.is_file():
        return None
    stat = path.stat()
    types = None if event_types is None else tuple(sorted(event_types))
    return table, str(path.resolve()), stat.st_size, stat.st_mtime_ns, types


def _register_and_check(
    con, view: str, source: Source, table: str, event_types, optional_ids: bool = True
) -> list[Violation]:
    """Register ``source`` as ``view`` and check it: the header, then readability, then the
    rules, each step only if the one before passed."""
    path = None if is_frame(source) else str(source)
    violations = [] if path is None else header_violations(path)
    if not violations:
        try:
            register_source(con, view, source)
        except ContractError as err:
            return err.violations
        violations = check_table(con, view, path, table, event_types, optional_ids)
    return violations


class _Labels:
    """How users find a row: ``line n`` of a CSV as a text editor counts lines (a quoted value
    may span lines), ``row n`` of Parquet (from 1) or of a DataFrame (its position, from 0)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, view: str, path: str | None) -> None:
        self.con, self.view, self.path = con, view, path
        self.csv = path is not None and not path.endswith(".parquet")

    def __call__(self, records: list[int]) -> list[str]:
        """Labels of the data records numbered ``records`` (from 1, in file order)."""
        if self.path is None:
            return [f"row {r - 1}" for r in records]
        if not self.csv:
            return [f"row {r}" for r in records]
        return [f"line {n}" for n in self._lines(records)]

    def _lines(self, records: list[int]) -> list[int]:
        text = [c for c, kind in _kinds(self.con, self.view).items() if kind == "VARCHAR"]
        spans = " OR ".join(f'strpos("{c}", chr(10)) > 0' for c in text) or "false"
        if not self.con.execute(f"SELECT count(*) FROM {self.view} WHERE {spans}").fetchall()[0][0]:
            return [r + 1 for r in records]  # one line per record, after the header
        return _csv_lines(self.path, records)


def _csv_lines(path: str, records: list[int]) -> list[int]:
    """The first line of each data record in ``records`` (a quoted value may span lines)."""
    import csv

    wanted, found = set(records), {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        start = reader.line_num + 1
        for record, _ in enumerate(reader, start=1):
            if record in wanted:
                found[record] = start
                if len(found) == len(wanted):
                    break
            start = reader.line_num + 1
    return [found.get(r, r + 1) for r in records]


def _kinds(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {view}").fetchall()}


def _forms(column: str) -> dict[str, str]:
    """A column as the rules read it: trimmed text, text as written, the typed value."""
    quoted = f'"{column}"'
    return {
        "text": f"trim(CAST({quoted} AS VARCHAR))",
        "raw": f"CAST({quoted} AS VARCHAR)",
        "value": quoted,
    }


def _unreadable(path: str, err: Exception) -> Violation:
    message = _first_line(err)
    if "not utf-8" in str(err).lower():
        detail = f"{message}: not UTF-8 text (Latin-1, UTF-16 or compressed?); save it as UTF-8"
        return Violation(path, None, "CSV is UTF-8", detail=detail)
    return Violation(path, None, "readable CSV or Parquet", detail=message)


def _temporal(kind: str) -> bool:
    """A DuckDB type that holds instants or days (TIMESTAMP of any unit or zone, DATE)."""
    return kind.startswith(("TIMESTAMP", "DATE"))


def _not_temporal(file: str, column: str, kind: str, contract_kind: str) -> Violation:
    """A typed (Parquet, DataFrame) time column of another type: integers since the epoch
    could be seconds, milliseconds or nanoseconds, so they are not guessed."""
    rule = contract.KIND_RULES[contract_kind][0].text
    return Violation(
        file, column, rule,
        detail=f"the column holds {kind} values, not timestamps; write a Parquet TIMESTAMP "
        "or DATE column, or ISO 8601 text",
    )  # fmt: skip


def check_table(
    con: duckdb.DuckDBPyConnection,
    view: str,
    path: str | None,
    table: str,
    event_types: Collection[str] | None = None,
    optional_ids: bool = True,
) -> list[Violation]:
    """Every violation of the contract's rules for ``table`` (:mod:`clmmodels.contract`) in
    the view ``view`` of the file(s) ``path`` (``None``: a DataFrame). Event types are checked
    when ``event_types`` is given (stage assignment checks them against its mapping)."""
    file = path or f"{table} DataFrame"
    try:
        labels = _Labels(con, view, path)
        return _check(con, view, file, table, event_types, labels, optional_ids)
    except duckdb.Error as err:  # not a file DuckDB can read: encoding, binary, compressed
        return [_unreadable(file, err)]


def _check(con, view, file, table, event_types, labels, optional_ids) -> list[Violation]:
    kinds = _kinds(con, view)
    out = contract.missing_columns(table, kinds, file)
    if not con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]:
        return [Violation(file, None, contract.NON_EMPTY_TABLE_RULE)]
    checks: list[tuple[str | None, str, str, str]] = []  # column, rule, SQL test, detail
    latest = contract.latest_timestamp()
    for name, col in contract.SCHEMA[table].items():
        if name not in kinds:
            continue
        form, text = _forms(name), kinds[name] == "VARCHAR"
        if col.kind in ("datetime", "date") and not text and not _temporal(kinds[name]):
            out.append(_not_temporal(file, name, kinds[name], col.kind))
            continue
        for rule in contract.column_rules(col, latest):
            test = (rule.on_text if text else rule.on_typed).format(**form)
            checks.append((name, rule.text, test, ""))
        if col.unique and (optional_ids or col.required):
            dups = f"clm_dups_{name}"
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {dups} AS SELECT {form['raw']} AS k FROM {view} "
                f'WHERE "{name}" IS NOT NULL GROUP BY k HAVING count(*) > 1'
            )
            test = f"{form['raw']} IN (SELECT k FROM {dups})"
            checks.append((name, contract.UNIQUE_RULE, test, ""))
        if col.kind == "event_type" and event_types is not None:
            known = "clm_known_event_types"
            import pandas as pd

            con.register(known, pd.DataFrame({"t": sorted(event_types)}, dtype=object))
            test = f"{form['raw']} NOT IN (SELECT t FROM {known})"
            unknown = con.execute(
                f"SELECT DISTINCT {form['raw']} AS t FROM {view} WHERE {test} ORDER BY t"
            ).fetchall()
            detail = f"unknown event types: {', '.join(str(t) for (t,) in unknown)}"
            checks.append((name, contract.KNOWN_EVENT_RULE, test, detail))
    scores = [c for c in ("nps", "csat") if table == "surveys" and c in kinds]
    if scores:
        blank = " AND ".join(
            f"({_forms(c)['value']} IS NULL OR {_forms(c)['text']} = '')" for c in scores
        )
        checks.append((None, contract.ONE_SCORE_RULE, blank, ""))
    if not checks:
        return out
    if file.endswith(".parquet"):  # a WHERE per rule: row groups whose statistics pass are skipped
        counts = [
            con.execute(f"SELECT count(*) FROM {view} WHERE {t}").fetchall()[0][0]
            for _, _, t, _ in checks
        ]
    else:  # text is parsed once
        filters = ", ".join(f"count(*) FILTER (WHERE {t})" for _, _, t, _ in checks)
        counts = con.execute(f"SELECT {filters} FROM {view}").fetchall()[0]
    for (column, rule, test, detail), n in zip(checks, counts, strict=True):
        if not n:
            continue
        shown = f'CAST("{column}" AS VARCHAR)' if column else "NULL"
        with _in_file_order(con):
            first = con.execute(
                f"SELECT rn, {shown} FROM (SELECT row_number() OVER () AS rn, * FROM {view}) "
                f"WHERE {test} ORDER BY rn LIMIT {SHOWN_ROWS}"
            ).fetchall()
        out.append(
            Violation(
                file,
                column,
                rule,
                count=int(n),
                rows=tuple(labels([rn for rn, _ in first])),
                values=tuple("" if v is None else v for _, v in first) if column else (),
                detail=detail,
            )
        )
    return out


@contextlib.contextmanager
def _in_file_order(con: duckdb.DuckDBPyConnection):
    """Row numbers in file order (an engine may have turned the order off to save memory)."""
    (before,) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {str(before).lower()}")


def _typed_columns(con: duckdb.DuckDBPyConnection, view: str, table: str) -> str:
    """The SELECT list that types ``view``'s columns as the contract reads them (extra
    columns as they are)."""
    columns = []
    for name, kind in _kinds(con, view).items():
        col = contract.SCHEMA[table].get(name)
        if col is None:
            columns.append(f'"{name}"')
            continue
        on_text, on_typed = contract.TYPED_SQL[col.kind]
        typed = (on_text if kind == "VARCHAR" else on_typed).format(**_forms(name))
        columns.append(f'{typed} AS "{name}"')
    return ", ".join(columns)


def write_typed(
    table: str, source: str | Path, out: str | Path, event_types: Collection[str] | None = None
) -> None:
    """Check a table file against the contract (:func:`register_checked`: a broken rule raises
    :class:`ContractError` naming the file) and write it typed, as the contract reads it, to
    the Parquet file ``out``: engines then scan typed columns instead of parsing the text's
    timestamps again (four times the scan, at ten million events) on every read."""
    con = connect()
    try:
        view = register_checked(con, table, source, event_types)
        typed = _typed_columns(con, view, table)
        con.execute(
            f"COPY (SELECT {typed} FROM {view}) TO {string_literal(str(out))} (FORMAT parquet)"
        )
    finally:
        con.close()


def read_checked(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: Source,
    event_types: Collection[str] | None = None,
) -> tuple[pd.DataFrame | None, list[Violation], Callable[[list[int]], list[str]]]:
    """A table file or frame checked against the contract and typed (strings, naive UTC
    timestamps, floats, nullable integer scores; extra columns as read): the frame (None if
    it breaks a rule), its violations, and its row labeller (records numbered from 1)."""
    path = None if is_frame(source) else str(source)
    view = f"clm_{table}"
    violations = _register_and_check(con, view, source, table, event_types)
    labels = _Labels(con, view, path)
    if violations:
        return None, violations, labels
    with _in_file_order(con):
        df = con.execute(f"SELECT {_typed_columns(con, view, table)} FROM {view}").df()
    for name, col in contract.SCHEMA[table].items():
        if name not in df.columns:
            continue
        if col.kind in ("datetime", "date"):
            df[name] = df[name].astype("datetime64[ns]")
        elif col.kind in contract.SCORE_RANGES:
            df[name] = df[name].astype("Int64")
        elif col.kind in ("string", "event_type"):
            df[name] = df[name].astype(object).where(df[name].notna(), float("nan"))
    return df, [], labels


def utc_timestamp(con: duckdb.DuckDBPyConnection, view: str, column: str) -> str:
    """SQL for ``column`` as a UTC timestamp without time zone (the contract's reading).

    The contract's own typing (:data:`~clmmodels.contract.TYPED_SQL`): text may carry UTC
    offsets, so it goes through TIMESTAMPTZ (slow, ICU; the session is in UTC); a typed column
    (Parquet, pandas) is cast.
    """
    rows = con.execute(f'SELECT typeof("{column}") FROM {view} LIMIT 1').fetchall()
    on_text, on_typed = contract.TYPED_SQL["datetime"]
    typed = bool(rows) and _temporal(rows[0][0])
    return (on_typed if typed else on_text).format(**_forms(column))
