"""What the KPIs count in transactions and customers, written once in the SQL DuckDB and
Spark share: acquisitions, active customers, per-window counts and revenue, historical CLV.

Frames are read in place by DuckDB, files and globs without loading them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

import pandas as pd

from ..engines import DEFAULT_ENGINE, SqlEngine, open_engine, timestamp_literal
from ..errors import ClmError
from ..timeunits import as_day
from ..vocabulary import ACTIVE_WINDOW_DAYS


def acquisitions_of(tx, customers) -> pd.DataFrame:
    with open_engine() as sql:
        t = sql.checked("transactions", tx)
        sql.materialize(
            "clm_kpi_customers",
            _KPI_CUSTOMERS_SQL.format(lasts="", ts=sql.timestamp(t, "timestamp"), tx=t),
        )
        out = sql.df(_acquired_sql(sql, customers, with_id=True) + " ORDER BY customer_id")
    out = out.set_index("customer_id").rename(
        columns={"acquired": "acquired_at", "channel": "acquisition_channel"}
    )
    out["acquired_at"] = out["acquired_at"].astype("datetime64[ns]")
    out["acquisition_channel"] = (
        out["acquisition_channel"].astype(object).where(out["acquisition_channel"].notna(), pd.NA)
    )
    return out


def window_bounds(
    start: str | pd.Timestamp, end: str | pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    lo, hi = as_day(start, "start"), as_day(end, "end")
    if hi <= lo:
        raise ClmError(f"the window's end {hi.date()} must be after its start {lo.date()}")
    return lo, hi


def acquired_in(acq: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """The rows of :func:`acquisitions` acquired in ``[lo, hi)``."""
    return acq[(acq["acquired_at"] >= lo) & (acq["acquired_at"] < hi)]


def calendar_months(
    start: str | pd.Timestamp, end: str | pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``(first day, first day of the next month)`` of every calendar month overlapping
    ``[start, end)``, whole months, the first and last ones included."""
    lo, hi = window_bounds(start, end)
    months = pd.period_range(lo, hi - pd.Timedelta(days=1), freq="M")
    return [(m.start_time, (m + 1).start_time) for m in months]


def active_at(transactions, boundary: pd.Timestamp, days: int, before: bool) -> pd.Index:
    """Customers active at ``boundary`` (``before``: at the last instant before it)."""
    with open_engine() as sql:
        t = sql.checked("transactions", transactions)
        last = _last_purchase(sql.timestamp(t, "timestamp"), boundary, before)
        ids = sql.df(
            f"SELECT CAST(customer_id AS STRING) AS customer_id FROM {t} "
            f"GROUP BY CAST(customer_id AS STRING) "
            f"HAVING {_active(last, boundary, days, before)} ORDER BY customer_id"
        )
    return pd.Index(ids["customer_id"], name="customer_id")


def _last_purchase(ts: str, boundary: pd.Timestamp, before: bool) -> str:
    """SQL for a customer's latest ``ts`` up to ``boundary`` (``before``: excluding it)."""
    return (
        f"max(CASE WHEN {ts} {'<' if before else '<='} {timestamp_literal(boundary)} THEN {ts} END)"
    )


def _active(last: str, boundary: pd.Timestamp, days: int, before: bool) -> str:
    """SQL true where ``last`` (:func:`_last_purchase`) makes a customer active: a purchase in
    the ``days`` up to ``boundary`` (the contract's definition; ``before``: the window ends
    at the last instant before ``boundary``)."""
    since = timestamp_literal(boundary - pd.Timedelta(days=days))
    return f"{last} {'>=' if before else '>'} {since}"


class WindowCounts(NamedTuple):
    """What the KPIs count in the transactions (and customers) of consecutive windows,
    indexed by each window's start: ``totals`` has ``active_start``, ``active_end``,
    ``new_customers``, ``transactions`` and ``revenue``; ``new_by_channel`` the new customers
    per acquisition channel (every channel of the customers table, and those with none)."""

    totals: pd.DataFrame
    new_by_channel: pd.DataFrame


def window_counts(
    transactions,
    boundaries: Sequence[str | pd.Timestamp],
    customers=None,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
    engine: str = DEFAULT_ENGINE,
) -> WindowCounts:
    """The counts behind the KPIs for the windows ``[b0, b1), [b1, b2), ...``.

    Active customers are counted at the last instant before each boundary (see
    :func:`retention`); an acquisition is ``customers.acquired_at``, else the first
    transaction. ``engine`` is ``"duckdb"`` (default) or ``"spark"`` (DataFrames or
    CSV/Parquet files and globs; Spark also pyspark DataFrames): one SQL text for both, one
    pass per customer, so only a row per window comes back.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> c = window_counts(tx, ["1997-01-01", "1997-02-01", "1997-03-01"])
    >>> c.totals["new_customers"].tolist()
    [781, 857]
    """
    days = [as_day(b, "boundary") for b in boundaries]
    if len(days) < 2 or any(b <= a for a, b in pairwise(days)):
        raise ClmError("boundaries: at least two days, in increasing order")
    return _window_counts_sql(transactions, days, customers, active_window_days, engine)


def _window_frames(days, totals, by_channel: pd.DataFrame, channels) -> WindowCounts:
    index = pd.DatetimeIndex(days[:-1], name="window_start")
    totals = pd.DataFrame(totals, index=index)
    by_channel = by_channel.reindex(columns=channels).fillna(0).astype("int64")
    by_channel.index = index
    by_channel.columns.name = "acquisition_channel"
    return WindowCounts(totals.astype({c: "int64" for c in totals if c != "revenue"}), by_channel)


# Per customer: the first transaction and the last one before each boundary, in one pass.
_KPI_CUSTOMERS_SQL = """
SELECT CAST(customer_id AS STRING) AS customer_id, min(ts) AS first_ts{lasts}
FROM (SELECT customer_id, {ts} AS ts FROM {tx}) GROUP BY CAST(customer_id AS STRING)
"""


_KPI_ACTIVE_SQL = "SELECT {active} FROM clm_kpi_customers"


# Revenue summed as decimals: exact, so the same in any order a parallel engine adds it.
_KPI_WINDOWS_SQL = """
SELECT {windows} FROM (SELECT {ts} AS ts, CAST(amount AS DECIMAL(38, 9)) AS amount FROM {tx})
"""


# Acquisitions: the earlier of the customers table's and the first transaction (an
# acquired_at after the first purchase is a late record); least() skips NULLs on DuckDB and
# Spark alike. Without a customers table, the first transaction.
_KPI_ACQUIRED_SQL = """
SELECT {id} least(c.acquired_at, t.first_ts) AS acquired, c.channel
FROM clm_kpi_customers t FULL OUTER JOIN (
    SELECT CAST(customer_id AS STRING) AS customer_id, {acquired_at} AS acquired_at,
           CAST(acquisition_channel AS STRING) AS channel FROM {customers}
) c ON t.customer_id = c.customer_id
"""


_KPI_FIRST_SQL = (
    "SELECT {id} first_ts AS acquired, CAST(NULL AS STRING) AS channel FROM clm_kpi_customers"
)


def _acquired_sql(sql: SqlEngine, customers, with_id: bool = False) -> str:
    """Each customer's acquisition and channel, from ``clm_kpi_customers`` and ``customers``."""
    if customers is None:
        return _KPI_FIRST_SQL.format(id="customer_id," if with_id else "")
    c = sql.checked("customers", customers)  # a file against the contract, as clm validate
    return _KPI_ACQUIRED_SQL.format(
        id="coalesce(t.customer_id, c.customer_id) AS customer_id," if with_id else "",
        acquired_at=sql.timestamp(c, "acquired_at"),
        customers=c,
    )


def _window_counts_sql(source, days, customers, active_window_days, engine) -> WindowCounts:
    lit = timestamp_literal  # short: every condition has one

    def counted(name: str, conditions: list[str]) -> str:
        return ", ".join(
            f"count(CASE WHEN {c} THEN 1 END) AS {name}{i}" for i, c in enumerate(conditions)
        )

    def inside(column: str) -> list[str]:
        return [f"{column} >= {lit(a)} AND {column} < {lit(b)}" for a, b in pairwise(days)]

    k = range(len(days) - 1)
    with open_engine(engine) as sql:
        tx = sql.checked("transactions", source)
        ts = sql.timestamp(tx, "timestamp")
        lasts = "".join(
            f", {_last_purchase('ts', b, before=True)} AS last_{i}" for i, b in enumerate(days)
        )
        sql.materialize("clm_kpi_customers", _KPI_CUSTOMERS_SQL.format(lasts=lasts, ts=ts, tx=tx))
        active = sql.df(
            _KPI_ACTIVE_SQL.format(
                active=counted(
                    "a",
                    [
                        _active(f"last_{i}", b, active_window_days, before=True)
                        for i, b in enumerate(days)
                    ],
                )
            )
        ).iloc[0]
        revenue = ", ".join(
            f"CAST(coalesce(sum(CASE WHEN {w} THEN amount END), 0) AS DOUBLE) AS r{i}"
            for i, w in enumerate(inside("ts"))
        )
        columns = f"{counted('n', inside('ts'))}, {revenue}"
        windows = sql.df(_KPI_WINDOWS_SQL.format(windows=columns, ts=ts, tx=tx)).iloc[0]
        new = sql.df(
            f"SELECT channel, {counted('new', inside('acquired'))} "
            f"FROM ({_acquired_sql(sql, customers)}) GROUP BY channel"
        )
    totals = [
        {
            "active_start": int(active[f"a{i}"]),
            "active_end": int(active[f"a{i + 1}"]),
            "new_customers": int(new[f"new{i}"].sum()),
            "transactions": int(windows[f"n{i}"]),
            "revenue": float(windows[f"r{i}"]),
        }
        for i in k
    ]
    known = new.dropna(subset=["channel"]).set_index("channel")[[f"new{i}" for i in k]]
    by_channel = pd.DataFrame(known.T.to_numpy(), columns=known.index)
    return _window_frames(days, totals, by_channel, sorted(known.index))


def historical_clv(
    transactions, observation_end: str | pd.Timestamp | None = None, engine: str = DEFAULT_ENGINE
) -> pd.Series:
    """Each customer's total spend up to the observation end (inclusive, by calendar day; by
    default all of it): the one definition of historical CLV."""
    with open_engine(engine) as sql:
        tx = sql.checked("transactions", transactions)
        kept = ""
        if observation_end is not None:
            end = as_day(observation_end, "observation_end")
            kept = f"WHERE {sql.day(tx, 'timestamp')} <= DATE '{end.date()}'"
        out = sql.df(
            "SELECT CAST(customer_id AS STRING) AS customer_id, "
            "CAST(sum(CAST(amount AS DECIMAL(38, 9))) AS DOUBLE) AS historical_clv "
            f"FROM {tx} {kept} GROUP BY CAST(customer_id AS STRING) ORDER BY customer_id"
        )
    return out.set_index("customer_id")["historical_clv"]
