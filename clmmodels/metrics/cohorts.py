"""Cohort retention: customers by the period of their first purchase and the periods they
come back in, counted in SQL (DuckDB or Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engines import DEFAULT_ENGINE, open_engine
from ..timeunits import unit_code


def cohort_retention(
    transactions, period: str = "M", on_or_after: bool = False, engine: str = DEFAULT_ENGINE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cohort retention: counts and shares by cohort and periods since the first purchase.

    The cohort is the calendar period (``"M"`` month, ``"W"`` week from Monday) of a customer's
    first transaction; cell (cohort, k) counts the cohort's customers with a transaction in
    period cohort + k (with ``on_or_after``, in that period or any later one). Column 0 is the
    whole cohort; cells beyond the last period in the data are missing, not zero.

    ``engine`` is ``"duckdb"`` (default) or ``"spark"`` (a DataFrame, or CSV/Parquet files
    and globs; Spark also a pyspark DataFrame): the same SQL in both counts customers per
    (cohort, period), so only the small table comes back.

    Returns
    -------
    (counts, shares)
    """
    period = unit_code(period, "WM", "period")
    visits, last = _cohort_cells_sql(transactions, period, engine)
    return _cohort_tables(visits, last, period, on_or_after)


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
