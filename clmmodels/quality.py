"""Data quality: what each table holds, and what each analysis would leave out, and why."""

from __future__ import annotations

import pandas as pd

from .contract import SCHEMA, TABLES
from .dataset import Dataset
from .plotting import axes_or_new
from .timeunits import as_day, purchase_day

_TIME_COLUMN = {
    "transactions": "timestamp",
    "customers": "acquired_at",
    "events": "timestamp",
    "marketing_spend": "date",
    "surveys": "timestamp",
}


def profile(ds: Dataset) -> pd.DataFrame:
    """One row per contract table: rows, customers, date range, extra columns, or absent.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> int(profile(load_dataset("cdnow_sample")).loc["transactions", "rows"])
    6919
    """
    rows = []
    for table in TABLES:
        df = ds.table(table)
        if df is None:
            rows.append({"table": table, "present": False})
            continue
        when = df[_TIME_COLUMN[table]]
        rows.append(
            {
                "table": table,
                "present": True,
                "rows": len(df),
                "customers": df["customer_id"].nunique() if "customer_id" in df else pd.NA,
                "first": when.min(),
                "last": when.max(),
                "extra columns": ", ".join(c for c in df.columns if c not in SCHEMA[table]),
                "source": ds.sources.get(table, ""),
            }
        )
    out = pd.DataFrame(rows).set_index("table")
    out["rows"] = out["rows"].astype("Int64")
    out["customers"] = out["customers"].astype("Int64")
    return out


def default_observation_end(ds: Dataset) -> pd.Timestamp:
    """The last calendar day with a transaction: the natural observation end."""
    return ds.require("transactions", "the observation end")["timestamp"].max().normalize()


def exclusions(
    ds: Dataset,
    observation_end: str | pd.Timestamp | None = None,
    calibration_end: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """What each analysis would leave out of this dataset, counted, with the reason.

    Parameters
    ----------
    observation_end
        Last day observed (inclusive); by default the last transaction day.
    calibration_end
        End of the calibration period for holdout validation, if any.

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis``, ``left out``, ``count``, ``of`` and ``share``. Rows with a count
        of zero are kept, so a reader sees that the check was made.
    """
    tx = ds.require("transactions", "the exclusions check")
    end = (
        as_day(observation_end, "observation_end")
        if observation_end is not None
        else default_observation_end(ds)
    )
    rows = []

    def add(analysis: str, what: str, count: int, of: int) -> None:
        rows.append({"analysis": analysis, "left out": what, "count": int(count), "of": int(of)})

    tx_day = purchase_day(tx["timestamp"])
    add(
        "CLV, churn, retention",
        "transactions after the observation end",
        (tx_day > end).sum(),
        len(tx),
    )
    first = purchase_day(tx[tx_day <= end].groupby("customer_id")["timestamp"].min())
    if calibration_end is not None:
        cal = as_day(calibration_end, "calibration_end")
        add(
            "CLV holdout validation",
            "customers whose first purchase is after the calibration end",
            (first > cal).sum(),
            len(first),
        )
    buyers = set(first.index)
    if ds.customers is not None:
        known = set(ds.customers["customer_id"])
        add(
            "CAC and CLV:CAC by channel",
            "buyers absent from customers (no channel)",
            len(buyers - known),
            len(buyers),
        )
        add(
            "CLV and churn scores",
            "customers without a transaction by the observation end",
            len(known - buyers),
            len(known),
        )
    for table in ("events", "surveys"):
        df = ds.table(table)
        if df is not None:
            late = purchase_day(df["timestamp"]) > end
            add(f"{table} analyses", f"{table} after the observation end", late.sum(), len(df))
    out = pd.DataFrame(rows)
    out["share"] = (out["count"] / out["of"].where(out["of"] > 0)).fillna(0.0)
    return out


def monthly_counts(ds: Dataset) -> pd.DataFrame:
    """Rows per calendar month for every present table with a time column."""
    series = {}
    for table in ds.present:
        when = ds.table(table)[_TIME_COLUMN[table]]
        series[table] = when.dt.to_period("M").value_counts().sort_index()
    out = pd.DataFrame(series).astype("Int64")  # a month without rows stays missing
    out.index = out.index.to_timestamp()
    out.index.name = "month"
    return out


def plot_monthly_counts(ds: Dataset, ax=None):
    """Rows per month per table, one line each (log scale: tables differ by orders of magnitude)."""
    ax = axes_or_new(ax, (9, 3.5))
    counts = monthly_counts(ds).astype(float)  # gaps, not zeros, on the log scale
    counts.plot(ax=ax, marker=".", logy=True)
    ax.set_title(f"Rows per month: {ds.name}")
    ax.set_xlabel("")
    ax.set_ylabel("rows (log scale)")
    return ax


def check_dataset(path: str) -> tuple[Dataset | None, pd.DataFrame]:
    """Load a dataset, returning its violations as a table instead of raising.

    Returns the dataset (``None`` when it breaks the contract) and one row per violation.
    """
    from .dataset import load_dataset
    from .errors import ContractError

    columns = ["file", "column", "rule", "rows", "first offending rows", "detail"]
    try:
        return load_dataset(path), pd.DataFrame(columns=columns)
    except ContractError as err:
        rows = [
            [v.file, v.column or "", v.rule, v.count, ", ".join(v.rows), v.detail]
            for v in err.violations
        ]
        return None, pd.DataFrame(rows, columns=columns)


def amount_summary(ds: Dataset) -> pd.DataFrame:
    """Transaction amounts and purchase days per customer, described."""
    tx = ds.require("transactions", "the amount summary")
    days = tx.assign(day=purchase_day(tx["timestamp"])).groupby("customer_id")["day"].nunique()
    out = pd.DataFrame(
        {
            "amount per transaction": tx["amount"].describe(),
            "purchase days per customer": days.describe(),
        }
    ).T
    out["zero amounts"] = [int((tx["amount"] == 0).sum()), pd.NA]
    return out
