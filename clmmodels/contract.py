"""The data contract (``docs/data-contract.md``) declared as pandera schemas.

Tables are checked as read (strings from CSV, typed values from Parquet), so every rule sees
the user's own values, then converted to typed frames. All violations of a table are collected
in one pass (pandera's lazy mode) and reported with the user's row labels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import Violation

if TYPE_CHECKING:
    import pandera.pandas as pa

# pandera is imported where a table is checked: it takes half a second (and imports pyspark
# when installed), which every `import clmmodels` and every `clm` command would otherwise pay.

TABLES: tuple[str, ...] = ("transactions", "customers", "events", "marketing_spend", "surveys")

#: How many offending rows a violation shows.
SHOWN_ROWS = 5


@dataclass(frozen=True)
class Col:
    """One column of the contract: its kind, and whether it must be there, filled and unique."""

    kind: str  # "string", "datetime", "date", "amount", "nps", "csat", "event_type"
    required: bool = True
    nullable: bool = False
    unique: bool = False


SCHEMA: dict[str, dict[str, Col]] = {
    "transactions": {
        "customer_id": Col("string"),
        "timestamp": Col("datetime"),
        "amount": Col("amount"),
        "order_id": Col("string", required=False, nullable=True, unique=True),
    },
    "customers": {
        "customer_id": Col("string", unique=True),
        "acquired_at": Col("datetime"),
        "acquisition_channel": Col("string"),
    },
    "events": {
        "customer_id": Col("string"),
        "timestamp": Col("datetime"),
        "event_type": Col("event_type"),
    },
    "marketing_spend": {
        "date": Col("date"),
        "channel": Col("string"),
        "spend": Col("amount"),
    },
    "surveys": {
        "customer_id": Col("string"),
        "timestamp": Col("datetime"),
        "nps": Col("nps", required=False, nullable=True),
        "csat": Col("csat", required=False, nullable=True),
    },
}

#: The largest amount (and spend) the contract accepts: no purchase is worth more, and sums
#: of amounts up to it stay finite however many rows there are (1e308 summed to inf).
MAX_AMOUNT = 1e15
AMOUNT_LIMIT_RULE = "at most 1e15"

SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5)}


#: A time of day followed by a UTC offset (``Z``, ``+09:00``, ``-0530``, ``+09``); a date alone
#: (``2024-01-05``) has none, whatever its last characters look like.
_UTC_OFFSET = (
    r"\d[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?"  # date's last digit, time of day
    r"\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)\s*$"  # the offset
)


def header_violations(path: str) -> list[Violation]:
    """A CSV or Parquet file whose header names a column twice: readers would silently keep
    one of them (pandas renames the second ``amount.1``, DuckDB ``amount_1``), so it is an
    error naming the column and its positions. Unreadable headers are left to the reader."""
    import csv

    try:
        if str(path).endswith(".parquet"):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            with open(path, encoding="utf-8-sig", newline="") as f:
                names = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error, ValueError):
        return []
    names = [n.strip() for n in names]
    out = []
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        at = [str(i + 1) for i, n in enumerate(names) if n == name]
        out.append(
            Violation(
                str(path), name, "column names are unique",
                detail=f"the header names it {len(at)} times, as columns {', '.join(at)}",
            )
        )  # fmt: skip
    return out


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 strings (or datetimes) to naive UTC ``datetime64``; unparseable gives NaT.

    Each string is read by itself: one with a UTC offset is converted to UTC, one without is
    taken as it is. (One pass of pandas' ``to_datetime(utc=True)`` over both kinds carries the
    last offset it saw to the timezone-less strings after it.)
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[ns]")
    # Arrow's regex (RE2) finds the strings with an offset; most files have none or only.
    aware = values.astype("string[pyarrow]").str.contains(_UTC_OFFSET, na=False).to_numpy(bool)
    if aware.all() or not aware.any():
        return _to_naive_utc(values, utc=bool(aware.any()))
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    out[aware] = _to_naive_utc(values[aware], utc=True)
    out[~aware] = _to_naive_utc(values[~aware], utc=False)
    return out


def _to_naive_utc(values: pd.Series, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(values, format="ISO8601", utc=utc, errors="coerce")
    return (parsed.dt.tz_localize(None) if utc else parsed).astype("datetime64[ns]")


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def _not_blank(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip() != ""


def _is_timestamp(s: pd.Series) -> pd.Series:
    return parse_timestamps(s).notna()


def _is_date(s: pd.Series) -> pd.Series:
    parsed = parse_timestamps(s)
    return parsed.notna() & (parsed == parsed.dt.normalize())


def _is_amount(s: pd.Series) -> pd.Series:
    x = _numbers(s)
    return np.isfinite(x) & (x >= 0)


def _is_plausible_amount(s: pd.Series) -> pd.Series:
    x = _numbers(s)
    return ~(np.isfinite(x) & (x > MAX_AMOUNT))  # non-numbers are the rule above's to report


def _score_check(lo: int, hi: int) -> Callable[[pd.Series], pd.Series]:
    def check(s: pd.Series) -> pd.Series:
        x = _numbers(s)
        return (x == np.round(x)) & (x >= lo) & (x <= hi)

    return check


def _unique(s: pd.Series) -> pd.Series:
    return ~s.astype(str).duplicated(keep=False)


def _checks(col: Col, event_types: Collection[str]) -> list[pa.Check]:
    """The pandera checks for one column; the ``error`` text is the rule shown to users."""
    import pandera.pandas as pa

    checks: list[pa.Check] = []
    if col.kind in ("string", "event_type"):
        checks.append(pa.Check(_not_blank, error="not empty"))
    if col.kind == "datetime":
        checks.append(pa.Check(_is_timestamp, error="ISO 8601 timestamp"))
    elif col.kind == "date":
        checks.append(pa.Check(_is_date, error="ISO 8601 date without a time of day"))
    elif col.kind == "amount":
        checks.append(pa.Check(_is_amount, error="a finite number >= 0"))
        checks.append(pa.Check(_is_plausible_amount, error=AMOUNT_LIMIT_RULE))
    elif col.kind in SCORE_RANGES:
        lo, hi = SCORE_RANGES[col.kind]
        checks.append(pa.Check(_score_check(lo, hi), error=f"an integer from {lo} to {hi}"))
    elif col.kind == "event_type":
        allowed = frozenset(event_types)
        checks.append(
            pa.Check(lambda s: s.isin(allowed), error="a known event type (vocabulary or mapping)")
        )
    if col.unique:
        checks.append(pa.Check(_unique, error="unique"))
    return checks


def schema_for(table: str, event_types: Collection[str] = ()) -> pa.DataFrameSchema:
    """The pandera schema of one contract table, checking values as read."""
    import pandera.pandas as pa

    columns = {
        name: pa.Column(
            None, checks=_checks(col, event_types), nullable=col.nullable, required=col.required
        )
        for name, col in SCHEMA[table].items()
    }
    frame_checks = []
    if table == "surveys":
        frame_checks.append(
            pa.Check(
                lambda df: df.reindex(columns=["nps", "csat"]).notna().any(axis=1),
                error="at least one of nps, csat per row",
            )
        )
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False, coerce=False)


_PANDERA_RULES = {
    "not_nullable": "not empty",
    "column_in_dataframe": "required column",
}


def check_table(
    raw: pd.DataFrame,
    table: str,
    file: str,
    row_label: Callable[[int], str],
    event_types: Collection[str] = (),
) -> list[Violation]:
    """Every violation of the contract in one table, read but not yet typed."""
    if raw.empty:
        return [Violation(file, None, "has a header and at least one row")]
    violations: list[Violation] = []
    if table == "surveys" and not {"nps", "csat"} & set(raw.columns):
        violations.append(
            Violation(file, "nps", "required column", detail="surveys need nps or csat")
        )
    from pandera.errors import SchemaErrors

    try:
        schema_for(table, event_types).validate(raw, lazy=True)
    except SchemaErrors as err:
        violations += _violations_from_failures(err.failure_cases, raw, file, row_label)
    return violations


def _violations_from_failures(
    failures: pd.DataFrame, raw: pd.DataFrame, file: str, row_label: Callable[[int], str]
) -> list[Violation]:
    out = []
    failures = failures.assign(rule=failures["check"].map(lambda c: _PANDERA_RULES.get(c, c)))
    # A frame-level check is reported by pandera once per column: report it once per row.
    frame_level = (failures["schema_context"] == "DataFrameSchema") & (
        failures["rule"] != "required column"
    )
    failures.loc[frame_level, "column"] = None
    for (column, rule), group in failures.groupby(["column", "rule"], dropna=False, sort=False):
        if rule == "required column":
            for name in group["failure_case"]:
                out.append(Violation(file, str(name), rule, detail="the column is missing"))
            continue
        positions = sorted({int(i) for i in group["index"].dropna()})
        column = None if pd.isna(column) else str(column)
        shown = positions[:SHOWN_ROWS]
        values: tuple[str, ...] = ()
        if column is not None and column in raw.columns:
            values = tuple(_show(raw[column].iloc[p]) for p in shown)
        detail = ""
        if rule.startswith("a known event type"):
            unknown = sorted({str(v) for v in raw[column].iloc[positions] if pd.notna(v)})
            detail = f"unknown event types: {', '.join(unknown)}"
        out.append(
            Violation(
                file,
                column,
                rule,
                count=len(positions),
                rows=tuple(row_label(p) for p in shown),
                values=values,
                detail=detail,
            )
        )
    return out


def _show(value: object) -> str:
    return "" if pd.isna(value) else str(value)


def check_cross_tables(
    tables: Mapping[str, pd.DataFrame],
    files: Mapping[str, str],
    row_labels: Mapping[str, Callable[[int], str]],
) -> list[Violation]:
    """Rules that involve two tables: spend channels must be acquisition channels."""
    if "marketing_spend" not in tables or "customers" not in tables:
        return []
    spend = tables["marketing_spend"]
    known = set(tables["customers"]["acquisition_channel"].astype(str))
    bad = ~spend["channel"].astype(str).isin(known)
    if not bad.any():
        return []
    positions = np.flatnonzero(bad.to_numpy())
    return [
        Violation(
            files["marketing_spend"],
            "channel",
            "matches customers.acquisition_channel values",
            count=len(positions),
            rows=tuple(row_labels["marketing_spend"](p) for p in positions[:SHOWN_ROWS]),
            values=tuple(str(spend["channel"].iloc[p]) for p in positions[:SHOWN_ROWS]),
            detail=f"acquisition channels are: {', '.join(sorted(known))}",
        )
    ]


def to_typed(raw: pd.DataFrame, table: str) -> pd.DataFrame:
    """Convert a table that passed :func:`check_table` to its contract types.

    Strings stay strings (``00042`` is not ``42``), timestamps become naive UTC, amounts
    floats and scores nullable integers. Extra columns are kept as read.
    """
    df = raw.copy()
    for name, col in SCHEMA[table].items():
        if name not in df.columns:
            continue
        if col.kind in ("string", "event_type"):
            df[name] = df[name].where(df[name].isna(), df[name].astype(str)).astype(object)
        elif col.kind in ("datetime", "date"):
            df[name] = parse_timestamps(df[name])
        elif col.kind == "amount":
            df[name] = _numbers(df[name])
        else:
            df[name] = _numbers(df[name]).round().astype("Int64")
    return df.reset_index(drop=True)
