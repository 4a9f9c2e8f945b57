"""The data contract (``docs/data-contract.md``) declared once: its tables, columns and rules.

Each rule is SQL that is true where a value breaks it, in the dialect DuckDB and Spark share,
in two forms: on text as read from CSV (``{text}`` trimmed, ``{raw}`` as written) and on typed
values from Parquet or a DataFrame (``{value}``). :mod:`clmmodels.duck` runs them on files
and on frames alike, so every engine applies the same rules with the same words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import Violation

if TYPE_CHECKING:
    import pandas as pd

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
#: The earliest timestamp the contract accepts; the latest is the end of the day after the
#: check (UTC): no purchase or event lies in the future, whatever the customer's time zone.
EARLIEST = dt.datetime(1900, 1, 1)
TIME_RANGE_RULE = "from 1900-01-01 to today"

SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5)}


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


def latest_timestamp(now: dt.datetime | None = None) -> dt.datetime:
    """The first instant after the last one the contract accepts: the start of the day after
    tomorrow, UTC (a naive local time may run up to 14 hours ahead of UTC)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) if now is None else now
    return dt.datetime.combine(now.date(), dt.time()) + dt.timedelta(days=2)


@dataclass(frozen=True)
class Rule:
    """One rule of one column: its words, and SQL true where a value breaks it, on text
    (``{text}`` trimmed, ``{raw}`` untrimmed) and on typed values (``{value}``)."""

    text: str
    on_text: str
    on_typed: str


# Empty: NULL or only what trim removes (spaces, and Unicode spaces, whose UTF-8 starts at
# 0xC2); the comparisons before trim let a Parquet scan skip row groups by their min and max.
_EMPTY = "{raw} IS NULL OR (({raw} < '!' OR {raw} >= chr(128)) AND {text} = '')"
NOT_EMPTY = Rule("not empty", _EMPTY, "{value} IS NULL")
_TS = "TRY_CAST({text} AS TIMESTAMPTZ)"
_NUM = "TRY_CAST({text} AS DOUBLE)"


def _time_range(latest: dt.datetime) -> Rule:
    lo = f"TIMESTAMP '{EARLIEST.isoformat(sep=' ')}'"
    hi = f"TIMESTAMP '{latest.isoformat(sep=' ')}'"
    outside = "({t} < {lo} OR {t} >= {hi})"
    return Rule(
        TIME_RANGE_RULE,
        "coalesce(" + outside.format(t=f"CAST({_TS} AS TIMESTAMP)", lo=lo, hi=hi) + ", false)",
        "coalesce(" + outside.format(t="CAST({value} AS TIMESTAMP)", lo=lo, hi=hi) + ", false)",
    )


def _score(lo: int, hi: int) -> Rule:
    def broken(x: str) -> str:
        return f"coalesce(NOT ({x} = round({x}) AND {x} >= {lo} AND {x} <= {hi}), true)"

    return Rule(
        f"an integer from {lo} to {hi}",
        "{text} <> '' AND " + broken(_NUM),
        "{value} IS NOT NULL AND " + broken("CAST({value} AS DOUBLE)"),
    )


#: The rules of each kind of column, after "not empty" (for columns that must be filled).
KIND_RULES: dict[str, tuple[Rule, ...]] = {
    "string": (),
    "event_type": (),
    "datetime": (Rule("ISO 8601 timestamp", "{text} <> '' AND " + _TS + " IS NULL", "false"),),
    "date": (
        Rule(
            "ISO 8601 date without a time of day",
            "{text} <> '' AND coalesce(CAST(CAST(" + _TS + " AS TIMESTAMP) AS TIME)"
            " <> TIME '00:00:00', true)",
            "coalesce(CAST(CAST({value} AS TIMESTAMP) AS TIME) <> TIME '00:00:00', false)",
        ),
    ),
    "amount": (
        Rule(
            "a finite number >= 0",
            "{text} <> '' AND coalesce(NOT isfinite(" + _NUM + ") OR " + _NUM + " < 0, true)",
            "coalesce(NOT isfinite(CAST({value} AS DOUBLE)) OR {value} < 0, false)",
        ),
        Rule(
            AMOUNT_LIMIT_RULE,
            "{text} <> '' AND coalesce(isfinite("
            + _NUM
            + ") AND "
            + _NUM
            + f" > {MAX_AMOUNT:.0f}, false)",
            "coalesce(isfinite(CAST({value} AS DOUBLE))"
            + f" AND {{value}} > {MAX_AMOUNT:.0f}, false)",
        ),
    ),
    "nps": (_score(*SCORE_RANGES["nps"]),),
    "csat": (_score(*SCORE_RANGES["csat"]),),
}
KNOWN_EVENT_RULE = "a known event type (vocabulary or mapping)"
UNIQUE_RULE = "unique"
ONE_SCORE_RULE = "at least one of nps, csat per row"
NON_EMPTY_TABLE_RULE = "has a header and at least one row"


def column_rules(col: Col, latest: dt.datetime | None = None) -> tuple[Rule, ...]:
    """The row-by-row rules of one column, in the order they are reported."""
    rules = () if col.nullable else (NOT_EMPTY,)
    rules += KIND_RULES[col.kind]
    if col.kind in ("datetime", "date"):
        rules += (_time_range(latest_timestamp() if latest is None else latest),)
    return rules


#: How a value of each kind becomes its contract type, from text ({text}) or typed ({value}).
TYPED_SQL: dict[str, tuple[str, str]] = {
    "string": ("CAST({raw} AS VARCHAR)", "CAST({value} AS VARCHAR)"),
    "event_type": ("CAST({raw} AS VARCHAR)", "CAST({value} AS VARCHAR)"),
    "datetime": (f"CAST({_TS} AS TIMESTAMP)", "CAST({value} AS TIMESTAMP)"),
    "date": (f"CAST({_TS} AS TIMESTAMP)", "CAST({value} AS TIMESTAMP)"),
    "amount": (_NUM, "CAST({value} AS DOUBLE)"),
    "nps": (f"CAST(round({_NUM}) AS INTEGER)", "CAST(round({value}) AS INTEGER)"),
    "csat": (f"CAST(round({_NUM}) AS INTEGER)", "CAST(round({value}) AS INTEGER)"),
}


def missing_columns(table: str, columns: Collection[str], file: str) -> list[Violation]:
    """Required columns absent from ``columns`` (surveys need nps or csat)."""
    out = [
        Violation(file, name, "required column", detail="the column is missing")
        for name, col in SCHEMA[table].items()
        if col.required and name not in columns
    ]
    if table == "surveys" and not {"nps", "csat"} & set(columns):
        out.append(Violation(file, "nps", "required column", detail="surveys need nps or csat"))
    return out


def check_cross_tables(
    tables: Mapping[str, pd.DataFrame],
    files: Mapping[str, str],
    labels: Mapping[str, Callable[[list[int]], list[str]]],
) -> list[Violation]:
    """Rules that involve two tables: spend channels must be acquisition channels.
    ``labels`` gives each table's row labels from record numbers (from 1)."""
    if "marketing_spend" not in tables or "customers" not in tables:
        return []
    spend = tables["marketing_spend"]
    known = set(tables["customers"]["acquisition_channel"].astype(str))
    bad = ~spend["channel"].astype(str).isin(known)
    if not bad.any():
        return []
    positions = [int(i) for i in bad.to_numpy().nonzero()[0]]
    shown = positions[:SHOWN_ROWS]
    return [
        Violation(
            files["marketing_spend"],
            "channel",
            "matches customers.acquisition_channel values",
            count=len(positions),
            rows=tuple(labels["marketing_spend"]([p + 1 for p in shown])),
            values=tuple(str(spend["channel"].iloc[p]) for p in shown),
            detail=f"acquisition channels are: {', '.join(sorted(known))}",
        )
    ]
