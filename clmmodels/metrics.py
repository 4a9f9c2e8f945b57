"""Lifecycle metrics, exactly as the data contract defines them."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .dataset import Dataset
from .engines import check_customer_file, open_engine, timestamp_literal
from .errors import ClmError
from .plotting import axes_or_new
from .timeunits import as_day


def acquisitions(ds: Dataset) -> pd.DataFrame:
    """Each customer's acquisition date and channel.

    The acquisition is the earlier of ``customers.acquired_at`` and the first transaction (an
    ``acquired_at`` after the customer's first purchase is a late record: the purchase shows
    the customer was acquired by then); the channel is ``customers.acquisition_channel``, else
    missing.
    """
    return _acquisitions(ds.require("transactions", "acquisitions"), ds.customers)


def _acquisitions(tx: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    first = tx.groupby("customer_id")["timestamp"].min().rename("acquired_at")
    out = first.to_frame().assign(acquisition_channel=pd.NA)
    if customers is not None:
        known = customers.set_index("customer_id")[["acquired_at", "acquisition_channel"]]
        # the earlier of the two (NaT, no purchase yet, is skipped)
        earlier = pd.concat([known["acquired_at"], first.reindex(known.index)], axis=1).min(axis=1)
        known = known.assign(acquired_at=earlier)
        out = pd.concat([known, out.drop(index=known.index, errors="ignore")])
    out.index.name = "customer_id"
    return out


def cac(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    counts: WindowCounts | None = None,
) -> dict:
    """Customer acquisition cost over ``[start, end)``: blended and per channel.

    ``spend in the window / new customers``; per channel, the channel's spend over the
    customers acquired through it. A channel with spend but no new customer has no CAC (None).
    The new customers are counted from ``ds``, or taken from ``counts`` (:func:`window_counts`
    of a window starting at ``start``, from any engine).

    Returns
    -------
    dict
        ``{"blended": x, "by_channel": {channel: x}, "spend": {...}, "new_customers": {...}}``
    """
    lo, hi = _window(start, end)
    spend = ds.require("marketing_spend", "CAC")
    if counts is None:  # only the acquisitions: no pass over transactions for the rest
        new = _acquired_in(acquisitions(ds), lo, hi)
        n_new, by_channel_new = len(new), new.groupby("acquisition_channel").size()
    else:
        n_new = int(counts.totals.loc[lo, "new_customers"])
        by_channel_new = counts.new_by_channel.loc[lo]
    in_window = spend[(spend["date"] >= lo) & (spend["date"] < hi)]
    by_channel_spend = in_window.groupby("channel")["spend"].sum()
    known = set(spend["channel"]) | set(by_channel_new.index)
    if ds.customers is not None:
        known |= set(ds.customers["acquisition_channel"])
    channels = sorted(known)  # every channel, every window

    def ratio(s: float, n: int) -> float | None:
        return float(s) / int(n) if n else None

    return {
        "blended": ratio(by_channel_spend.sum(), n_new),
        "by_channel": {
            c: ratio(by_channel_spend.get(c, 0.0), by_channel_new.get(c, 0)) for c in channels
        },
        "spend": {c: float(by_channel_spend.get(c, 0.0)) for c in channels},
        "new_customers": {c: int(by_channel_new.get(c, 0)) for c in channels},
    }


def _window(
    start: str | pd.Timestamp, end: str | pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    lo, hi = as_day(start, "start"), as_day(end, "end")
    if hi <= lo:
        raise ClmError(f"the window's end {hi.date()} must be after its start {lo.date()}")
    return lo, hi


def new_customers(ds: Dataset, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.Index:
    """Customers whose acquisition falls in ``[start, end)``."""
    return _acquired_in(acquisitions(ds), *_window(start, end)).index


def _acquired_in(acq: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """The rows of :func:`acquisitions` acquired in ``[lo, hi)``."""
    return acq[(acq["acquired_at"] >= lo) & (acq["acquired_at"] < hi)]


def active_customers(
    transactions: pd.DataFrame, at: str | pd.Timestamp, active_window_days: int = 365
) -> pd.Index:
    """Customers with a transaction in ``(at - active_window_days, at]``.

    ``at`` is an instant (a date means its midnight), so a transaction stamped exactly ``at``
    counts and one exactly ``active_window_days`` earlier does not.
    """
    return _active_at(transactions, as_day(at, "date"), active_window_days)


def active_before(
    transactions: pd.DataFrame, boundary: pd.Timestamp, active_window_days: int = 365
) -> pd.Index:
    """Customers active at the last instant before ``boundary`` (a window's start or end).

    This is how CRR measures ``S`` and ``E`` (see :func:`retention`), so every count of
    active customers at a month's end agrees with it.
    """
    return _active_at(transactions, boundary - pd.Timedelta(1, "ns"), active_window_days)


def calendar_months(
    start: str | pd.Timestamp, end: str | pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``(first day, first day of the next month)`` of every calendar month overlapping
    ``[start, end)``, whole months, the first and last ones included."""
    lo, hi = _window(start, end)
    months = pd.period_range(lo, hi - pd.Timedelta(days=1), freq="M")
    return [(m.start_time, (m + 1).start_time) for m in months]


def _active_at(transactions: pd.DataFrame, instant: pd.Timestamp, days: int) -> pd.Index:
    t = transactions["timestamp"]
    inside = (t > instant - pd.Timedelta(days=days)) & (t <= instant)
    return pd.Index(transactions.loc[inside, "customer_id"].unique(), name="customer_id")


def retention(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = 365,
    counts: WindowCounts | None = None,
) -> dict:
    """CRR = (E - N) / S and churn = 1 - CRR over ``[start, end)``.

    ``S`` and ``E`` are the customers active at start and at end, ``N`` the new customers in
    the window. Both are measured at the last instant before ``start`` and before ``end``, so
    the window partitions time: a purchase stamped exactly ``start`` (a date-only timestamp on
    the first day) belongs to the window, not to ``S``, and one stamped exactly ``end`` to the
    next window. Measured at the boundary instants themselves, a first purchase on the first
    day would count in both ``S`` and ``N``, and CRR could exceed 1. With nobody active at
    start, CRR is undefined (None). ``counts`` (:func:`window_counts`, any engine) saves
    counting again.
    """
    lo, hi = _window(start, end)
    if counts is None:
        tx = ds.require("transactions", "CRR")
        counts = window_counts(tx, [lo, hi], ds.customers, active_window_days)
    row = counts.totals.loc[lo]
    s, e, n = (int(row[c]) for c in ("active_start", "active_end", "new_customers"))
    crr = (e - n) / s if s else None
    return {
        "active_start": s,
        "active_end": e,
        "new_customers": n,
        "crr": crr,
        "churn_rate": None if crr is None else 1 - crr,
    }


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
    active_window_days: int = 365,
    engine: str = "pandas",
) -> WindowCounts:
    """The counts behind the KPIs for the windows ``[b0, b1), [b1, b2), ...``.

    Active customers are counted at the last instant before each boundary (see
    :func:`retention`); an acquisition is ``customers.acquired_at``, else the first
    transaction. ``engine`` is ``"pandas"`` (DataFrames), ``"duckdb"`` or ``"spark"``
    (DataFrames or CSV/Parquet files and globs; Spark also pyspark DataFrames): one SQL text
    for both, one pass per customer, so only a row per window comes back.

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
    if engine == "pandas":
        return _window_counts_pandas(transactions, days, customers, active_window_days)
    return _window_counts_sql(transactions, days, customers, active_window_days, engine)


def _window_counts_pandas(tx, days, customers, active_window_days) -> WindowCounts:
    acq = _acquisitions(tx, customers)
    active = [len(active_before(tx, b, active_window_days)) for b in days]
    totals, by_channel = [], []
    for i, (lo, hi) in enumerate(pairwise(days)):
        inside = (tx["timestamp"] >= lo) & (tx["timestamp"] < hi)
        new = _acquired_in(acq, lo, hi)
        totals.append(
            {
                "active_start": active[i],
                "active_end": active[i + 1],
                "new_customers": len(new),
                "transactions": int(inside.sum()),
                "revenue": float(tx.loc[inside, "amount"].sum()),
            }
        )
        by_channel.append(new.groupby("acquisition_channel").size())
    channels = [] if customers is None else sorted(customers["acquisition_channel"].unique())
    return _window_frames(days, totals, pd.DataFrame(by_channel), channels)


def _window_frames(days, totals, by_channel: pd.DataFrame, channels) -> WindowCounts:
    index = pd.DatetimeIndex(days[:-1], name="window_start")
    totals = pd.DataFrame(totals, index=index)
    by_channel = by_channel.reindex(columns=channels).fillna(0).astype("int64")
    by_channel.index = index
    by_channel.columns.name = "acquisition_channel"
    return WindowCounts(totals.astype({c: "int64" for c in totals if c != "revenue"}), by_channel)


# Per customer: the first transaction and the last one before each boundary, in one pass.
_KPI_CUSTOMERS_SQL = """
SELECT CAST(customer_id AS STRING) AS customer_id, min(ts) AS first_ts, {lasts}
FROM (SELECT customer_id, {ts} AS ts FROM {tx}) GROUP BY CAST(customer_id AS STRING)
"""
_KPI_ACTIVE_SQL = "SELECT {active} FROM clm_kpi_customers"
_KPI_WINDOWS_SQL = """
SELECT {windows} FROM (SELECT {ts} AS ts, CAST(amount AS DOUBLE) AS amount FROM {tx})
"""
# Acquisitions: the earlier of the customers table's and the first transaction's (as
# _acquisitions); least() skips NULLs on DuckDB and Spark alike.
_KPI_ACQUIRED_SQL = """
SELECT least(c.acquired_at, t.first_ts) AS acquired, c.channel
FROM clm_kpi_customers t FULL OUTER JOIN (
    SELECT CAST(customer_id AS STRING) AS customer_id, {acquired_at} AS acquired_at,
           CAST(acquisition_channel AS STRING) AS channel FROM {customers}
) c ON t.customer_id = c.customer_id
"""
_KPI_FIRST_SQL = (
    "SELECT first_ts AS acquired, CAST(NULL AS STRING) AS channel FROM clm_kpi_customers"
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
        lasts = ", ".join(
            f"max(CASE WHEN ts < {lit(b)} THEN ts END) AS last_{i}" for i, b in enumerate(days)
        )
        sql.materialize("clm_kpi_customers", _KPI_CUSTOMERS_SQL.format(lasts=lasts, ts=ts, tx=tx))
        since = [b - pd.Timedelta(days=active_window_days) for b in days]
        active = sql.df(
            _KPI_ACTIVE_SQL.format(
                active=counted("a", [f"last_{i} >= {lit(b)}" for i, b in enumerate(since)])
            )
        ).iloc[0]
        revenue = ", ".join(
            f"coalesce(sum(CASE WHEN {w} THEN amount END), 0) AS r{i}"
            for i, w in enumerate(inside("ts"))
        )
        columns = f"{counted('n', inside('ts'))}, {revenue}"
        windows = sql.df(_KPI_WINDOWS_SQL.format(windows=columns, ts=ts, tx=tx)).iloc[0]
        if customers is None:
            acquired = _KPI_FIRST_SQL
        else:
            if isinstance(customers, str | Path):
                check_customer_file(customers)
            c = sql.table("customers", customers)
            acquired = _KPI_ACQUIRED_SQL.format(
                acquired_at=sql.timestamp(c, "acquired_at"), customers=c
            )
        new = sql.df(
            f"SELECT channel, {counted('new', inside('acquired'))} "
            f"FROM ({acquired}) GROUP BY channel"
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


def _answers(surveys: pd.DataFrame, score: str, start, end) -> pd.Series:
    """The non-missing ``score`` answers given in ``[start, end)``."""
    lo, hi = _window(start, end)
    if score not in surveys:
        return pd.Series(dtype="Int64")
    in_window = (surveys["timestamp"] >= lo) & (surveys["timestamp"] < hi)
    return surveys.loc[in_window, score].dropna()


def nps(
    surveys: pd.DataFrame, start: str | pd.Timestamp, end: str | pd.Timestamp, level: float = 0.95
) -> dict:
    """Net promoter score over the nps answers in ``[start, end)``, with a normal interval.

    NPS is the mean of +100 (answers 9-10), 0 (7-8) and -100 (0-6); its standard error is that
    of a mean, so the interval is ``nps +/- z * sd / sqrt(n)``, clipped to [-100, 100].
    """
    from scipy.stats import norm

    scores = _answers(surveys, "nps", start, end).astype(int)
    n = len(scores)
    if n == 0:
        return {"nps": None, "nps_ci": None, "answers": 0}
    points = np.where(scores >= 9, 100.0, np.where(scores <= 6, -100.0, 0.0))
    value = float(points.mean())
    half = float(norm.ppf(0.5 + level / 2) * points.std(ddof=1) / np.sqrt(n)) if n > 1 else np.inf
    ci = [max(-100.0, value - half), min(100.0, value + half)]
    return {"nps": value, "nps_ci": ci, "answers": n}


def csat(surveys: pd.DataFrame, start: str | pd.Timestamp, end: str | pd.Timestamp) -> dict:
    """Share of csat answers of 4 or 5 in ``[start, end)``, on a 100-point scale."""
    scores = _answers(surveys, "csat", start, end)
    if len(scores) == 0:
        return {"csat": None, "answers": 0}
    return {"csat": float(100 * (scores >= 4).mean()), "answers": len(scores)}


def historical_clv(transactions: pd.DataFrame, observation_end: str | pd.Timestamp) -> pd.Series:
    """Each customer's total spend up to the observation end (inclusive, by calendar day)."""
    end = as_day(observation_end, "observation_end")
    kept = transactions["timestamp"].dt.normalize() <= end
    return transactions.loc[kept].groupby("customer_id")["amount"].sum().rename("historical_clv")


def cohort_retention(
    transactions, period: str = "M", on_or_after: bool = False, engine: str = "pandas"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cohort retention: counts and shares by cohort and periods since the first purchase.

    The cohort is the calendar period (``"M"`` month, ``"W"`` week from Monday) of a customer's
    first transaction; cell (cohort, k) counts the cohort's customers with a transaction in
    period cohort + k (with ``on_or_after``, in that period or any later one). Column 0 is the
    whole cohort; cells beyond the last period in the data are missing, not zero.

    ``engine`` is ``"pandas"`` (a DataFrame), ``"duckdb"`` or ``"spark"`` (a DataFrame, or
    CSV/Parquet files and globs; Spark also a pyspark DataFrame): the same SQL in both counts
    customers per (cohort, period), so only the small table comes back.

    Returns
    -------
    (counts, shares)
    """
    if period not in ("M", "W"):
        raise ClmError(f"period must be 'M' (months) or 'W' (weeks), got {period!r}")
    if engine == "pandas":
        visits, last = _cohort_cells_pandas(transactions, period)
    else:
        visits, last = _cohort_cells_sql(transactions, period, engine)
    return _cohort_tables(visits, last, period, on_or_after)


def _cohort_cells_pandas(tx: pd.DataFrame, period: str) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Customers per (cohort, period visited, last period visited), and the last period."""
    p = tx["timestamp"].dt.to_period(period).dt.start_time
    visits = pd.DataFrame({"customer_id": tx["customer_id"], "p": p}).drop_duplicates()
    per = visits.groupby("customer_id")["p"]
    visits["cohort"], visits["last"] = per.transform("min"), per.transform("max")
    cells = visits.groupby(["cohort", "p", "last"]).size().rename("customers").reset_index()
    return cells, p.max()


# Each customer's distinct periods, with the first (cohort) and the last; counted per cell.
_COHORT_SQL = """
WITH visits AS (
    SELECT DISTINCT CAST(customer_id AS STRING) AS customer_id,
           CAST(date_trunc('{unit}', {ts}) AS DATE) AS p
    FROM {source}
),
customers AS (
    SELECT customer_id, min(p) AS cohort, max(p) AS last FROM visits GROUP BY customer_id
)
SELECT cohort, p, last, count(*) AS customers
FROM visits JOIN customers ON visits.customer_id = customers.customer_id
GROUP BY cohort, p, last
"""


def _cohort_cells_sql(source, period: str, engine: str) -> tuple[pd.DataFrame, pd.Timestamp]:
    unit = {"M": "month", "W": "week"}[period]
    with open_engine(engine) as sql:
        name = sql.checked("transactions", source)
        ts = sql.timestamp(name, "timestamp")
        cells = sql.df(_COHORT_SQL.format(unit=unit, ts=ts, source=name))
    for col in ("cohort", "p", "last"):
        cells[col] = pd.to_datetime(cells[col])
    return cells, cells["p"].max()


def _cohort_tables(
    cells: pd.DataFrame, last_period: pd.Timestamp, period: str, on_or_after: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    def offset(later: pd.Series, earlier: pd.Series) -> pd.Series:
        if period == "M":
            return (later.dt.year - earlier.dt.year) * 12 + later.dt.month - earlier.dt.month
        return (later - earlier).dt.days // 7

    cells = cells.assign(k=offset(cells["p"], cells["cohort"]))
    if on_or_after:  # a visit in period k means retained at every k' <= k
        firsts = cells[cells["k"] == 0]
        reach = firsts.assign(k=offset(firsts["last"], firsts["cohort"]))
        reach = reach.groupby(["cohort", "k"])["customers"].sum().unstack(fill_value=0)
        reach = reach.reindex(columns=range(int(reach.columns.max()) + 1), fill_value=0)
        counts = reach.iloc[:, ::-1].cumsum(axis=1).iloc[:, ::-1]
    else:
        counts = cells.groupby(["cohort", "k"])["customers"].sum().unstack(fill_value=0)
    counts = counts.reindex(columns=range(int(counts.columns.max()) + 1), fill_value=0)
    cohorts = pd.Series(counts.index)
    horizon = offset(pd.Series(last_period, index=cohorts.index), cohorts).to_numpy()
    observed = np.arange(counts.shape[1])[None, :] <= horizon[:, None]
    counts = counts.where(observed).astype("Int64")
    counts.index = pd.PeriodIndex(counts.index, freq=period)
    shares = counts.astype(float).div(counts[0].astype(float), axis=0)
    counts.index.name = shares.index.name = "cohort"
    counts.columns.name = shares.columns.name = "periods since first purchase"
    return counts, shares


def kpis(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = 365,
    counts: WindowCounts | None = None,
) -> dict:
    """The headline KPIs of ``[start, end)`` as one JSON-ready dict.

    A metric whose table is absent is None, with the reason in ``notes``. ``counts``
    (:func:`window_counts` of a window starting at ``start``, from any engine) replaces the
    counting in ``ds.transactions`` and ``ds.customers``, which may then be absent.
    """
    lo, hi = _window(start, end)
    if counts is None:
        tx = ds.require("transactions", "KPIs")
        counts = window_counts(tx, [lo, hi], ds.customers, active_window_days)
    out: dict = {"window": {"start": str(lo.date()), "end": str(hi.date())}}
    out["active_window_days"] = active_window_days
    notes: list[str] = []
    out.update(retention(ds, lo, hi, active_window_days, counts=counts))
    if out["crr"] is None:
        notes.append("crr: no customer was active at the start of the window")
    if ds.marketing_spend is not None:
        c = cac(ds, lo, hi, counts=counts)
        out["cac"] = {"blended": c["blended"], "by_channel": c["by_channel"]}
        if c["blended"] is None:
            notes.append("cac: no new customers in the window")
    else:
        out["cac"] = None
        notes.append("cac: the dataset has no marketing_spend table")
    if ds.surveys is not None:
        n = nps(ds.surveys, lo, hi)
        out["nps"], out["nps_ci"] = n["nps"], n["nps_ci"]
        out["csat"] = csat(ds.surveys, lo, hi)["csat"]
        if n["nps"] is None:
            notes.append("nps: no nps answers in the window")
        if out["csat"] is None:
            notes.append("csat: no csat answers in the window")
    else:
        out["nps"] = out["nps_ci"] = out["csat"] = None
        notes.append("nps, csat: the dataset has no surveys table")
    out["revenue"] = float(counts.totals.loc[lo, "revenue"])
    out["transactions"] = int(counts.totals.loc[lo, "transactions"])
    out["notes"] = notes
    return out


def kpi_series(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = 365,
    counts: WindowCounts | None = None,
) -> pd.DataFrame:
    """:func:`kpis` for every calendar month overlapping ``[start, end)``, one row per month.

    Each row covers its whole calendar month, the first and last ones included. The counts
    come from one :func:`window_counts` over the month boundaries (or are given: ``counts``).
    """
    months = calendar_months(start, end)
    if counts is None:
        tx = ds.require("transactions", "KPIs")
        bounds = [m for m, _ in months] + [months[-1][1]]
        counts = window_counts(tx, bounds, ds.customers, active_window_days)
    rows = []
    for m_start, m_end in months:
        k = kpis(ds, m_start, m_end, active_window_days, counts=counts)
        cac_blended = (k["cac"] or {}).get("blended")
        rows.append(
            {
                "month": m_start,
                "new_customers": k["new_customers"],
                "active_start": k["active_start"],
                "active_end": k["active_end"],
                "crr": k["crr"],
                "churn_rate": k["churn_rate"],
                "cac": cac_blended,
                "nps": k["nps"],
                "csat": k["csat"],
                "revenue": k["revenue"],
            }
        )
    return pd.DataFrame(rows).set_index("month")


def engagement(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = 365,
) -> pd.DataFrame:
    """Events per active customer for every calendar month overlapping ``[start, end)``.

    ``events`` counts the month's events (every type); ``active`` is the customers active
    at the month's end (the contract's definition, as in :func:`kpis`);
    ``events_per_active`` divides the two. ``customers_with_events`` counts the customers
    with at least one event in the month, whether active or not (prospects are not active).
    """
    events = ds.require("events", "engagement")
    tx = ds.require("transactions", "engagement")
    rows = []
    for m_start, m_end in calendar_months(start, end):
        inside = events[(events["timestamp"] >= m_start) & (events["timestamp"] < m_end)]
        active = len(active_before(tx, m_end, active_window_days))
        rows.append(
            {
                "month": m_start,
                "events": len(inside),
                "customers_with_events": inside["customer_id"].nunique(),
                "active": active,
                "events_per_active": len(inside) / active if active else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("month")


def plot_cohort_heatmap(shares: pd.DataFrame, ax=None, max_periods: int = 18):
    """Cohort retention shares as a heatmap (cohorts down, periods since first purchase across)."""
    data = shares.iloc[:, 1 : max_periods + 1].astype(float)
    ax = axes_or_new(ax, (10, 0.35 * len(data) + 1.5))
    image = ax.imshow(data.to_numpy(), aspect="auto", cmap="Blues", vmin=0)
    ax.set_xticks(range(data.shape[1]), data.columns)
    ax.set_yticks(range(len(data)), [str(c) for c in data.index])
    ax.set_xlabel("periods since first purchase")
    ax.set_ylabel("cohort (first purchase)")
    ax.set_title("Share of each cohort buying again, by period")
    ax.figure.colorbar(image, ax=ax, label="share of cohort")
    return ax


def plot_cohort_curves(shares: pd.DataFrame, ax=None, max_cohorts: int = 8, max_periods: int = 18):
    """Retention curves: each cohort's share buying in period k, one line per cohort.

    The first ``max_cohorts`` cohorts (the longest observed) are drawn, lighter for later
    ones, with the unweighted mean over every cohort's observed cells in black.
    """
    ax = axes_or_new(ax, (9, 4))
    data = shares.iloc[:, : max_periods + 1].astype(float)
    shown = data.iloc[:max_cohorts]
    colours = _blues(len(shown))
    for (cohort, row), colour in zip(shown.iterrows(), colours, strict=True):
        ax.plot(row.index[1:], row.to_numpy()[1:], color=colour, lw=1, label=str(cohort))
    ax.plot(data.columns[1:], data.mean().to_numpy()[1:], color="k", lw=2.2, label="mean")
    ax.set_xlabel(data.columns.name or "periods since first purchase")
    ax.set_ylabel("share of cohort buying")
    ax.set_title("Retention curves by cohort")
    ax.legend(fontsize=7, ncol=2)
    return ax


def _blues(n: int) -> list:
    """``n`` shades of blue, dark (first) to light (last)."""
    from matplotlib import colormaps

    return [colormaps["Blues"](x) for x in np.linspace(0.95, 0.35, max(n, 1))][:n]


def plot_kpi_trends(series: pd.DataFrame, columns: list[str], ax=None, title: str = ""):
    """Monthly KPIs from :func:`kpi_series` as lines."""
    ax = axes_or_new(ax, (9, 3.5))
    for col in columns:
        ax.plot(series.index, series[col], marker="o", label=col.replace("_", " "))
    ax.set_title(title or ", ".join(columns))
    ax.legend()
    return ax
