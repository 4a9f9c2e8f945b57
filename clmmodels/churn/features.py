"""Snapshot features as of a date, from rows strictly before it, and the churn label.

Every feature reads only rows with ``timestamp < as_of`` (tests add rows after ``as_of`` and
check that no feature moves). Customers are those with at least one transaction before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset, rows_before
from ..errors import ClmError
from ..timeunits import as_day, purchase_day
from ..vocabulary import STAGES

#: Look-back windows of the recency/frequency/spend features, in days.
WINDOWS: tuple[int, ...] = (30, 90, 180, 365)
_DAY = pd.Timedelta(days=1)


def _transaction_features(tx: pd.DataFrame, as_of: pd.Timestamp, windows) -> pd.DataFrame:
    # One purchase occasion per customer and calendar day, as in the BTYD models.
    daily = (
        tx.assign(day=purchase_day(tx["timestamp"]))
        .groupby(["customer_id", "day"], sort=True)["amount"]
        .sum()
        .reset_index()
    )
    g = daily.groupby("customer_id", sort=True)
    first, last = g["day"].min(), g["day"].max()
    out = pd.DataFrame(
        {
            "recency_days": (as_of - last) / _DAY,
            "tenure_days": (as_of - first) / _DAY,
            "purchase_days": g["day"].count(),
            "total_spend": g["amount"].sum(),
        }
    )
    out["mean_spend"] = out["total_spend"] / out["purchase_days"]
    age = (as_of - daily["day"]) / _DAY
    for w in windows:
        inside = daily[age.to_numpy() <= w].groupby("customer_id")
        out[f"purchases_{w}d"] = inside["day"].count().reindex(out.index, fill_value=0)
        out[f"spend_{w}d"] = inside["amount"].sum().reindex(out.index, fill_value=0.0)
    prev = daily[(age > 90).to_numpy() & (age <= 180).to_numpy()].groupby("customer_id")
    out["spend_trend_90d"] = out.get("spend_90d", 0.0) - prev["amount"].sum().reindex(
        out.index, fill_value=0.0
    )
    gaps = daily["day"].diff() / _DAY
    gaps[daily["customer_id"].ne(daily["customer_id"].shift())] = np.nan
    gap = gaps.groupby(daily["customer_id"])
    out["mean_gap_days"] = gap.mean()
    out["std_gap_days"] = gap.std()
    out["last_gap_days"] = gap.last()
    # How overdue the next purchase is, in the customer's own rhythm.
    out["overdue_ratio"] = out["recency_days"] / out["mean_gap_days"]
    return out


def _event_features(ev: pd.DataFrame, stages: dict[str, str], as_of, index) -> pd.DataFrame:
    recent = ev[ev["timestamp"] >= as_of - pd.Timedelta(days=90)]
    stage = recent["event_type"].map(stages)
    # groupby-size, not crosstab: crosstab counts in Python, minutes at a million customers
    counts = (
        pd.DataFrame({"customer_id": recent["customer_id"].to_numpy(), "stage": stage.to_numpy()})
        .groupby(["customer_id", "stage"], sort=True)
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(STAGES), fill_value=0)
    )
    out = counts.add_prefix("events_").add_suffix("_90d").reindex(index, fill_value=0)
    last = ev.groupby("customer_id")["timestamp"].max()
    out["days_since_event"] = ((as_of - last) / _DAY).reindex(index)
    last_stage = ev.sort_values("timestamp", kind="stable").groupby("customer_id").last()
    out["last_event_stage"] = last_stage["event_type"].map(stages).reindex(index)
    return out


def _survey_features(sv: pd.DataFrame, index) -> pd.DataFrame:
    sv = sv.sort_values("timestamp", kind="stable")
    out = pd.DataFrame(index=index)
    for score in ("nps", "csat"):
        if score in sv.columns:
            answered = sv.dropna(subset=[score])
            out[f"last_{score}"] = answered.groupby("customer_id")[score].last().reindex(index)
    return out.astype(float)


def _customer_features(customers: pd.DataFrame, as_of, index) -> pd.DataFrame:
    c = customers.set_index("customer_id").reindex(index)
    acquired = c.pop("acquired_at")
    c["days_since_acquired"] = ((as_of - acquired) / _DAY).where(acquired < as_of)
    for col in c.columns:
        if not pd.api.types.is_numeric_dtype(c[col]):
            # Text as object with NaN for missing: customers absent from the customers table
            # (the contract allows it) would carry pandas' NA, which scikit-learn's imputer
            # cannot compare ("boolean value of NA is ambiguous").
            text = c[col].astype("string")
            c[col] = text.astype(object).where(text.notna(), np.nan)
    return c


def purchase_model_features(
    tx: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int, index: pd.Index
) -> pd.DataFrame:
    """BG/NBD's view of each customer, fitted on the transactions before ``as_of`` only:
    P(alive), expected purchases and P(no purchase) over the next ``horizon_days``. A
    classifier given them sees everything the purchase model sees, so it need not lose to it.
    """
    import warnings

    from ..clv import BetaGeoModel
    from ..errors import ClmWarning
    from ..rfm import rfm_summary

    rfm = rfm_summary(tx, as_of - _DAY, freq="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)  # the backtest reports the fit's own
        bg = BetaGeoModel().fit(rfm, standard_errors=False)
    rfm = rfm.reindex(index)
    return pd.DataFrame(
        {
            "bgnbd_p_alive": bg.p_alive(rfm).to_numpy(),
            "bgnbd_expected_purchases": bg.expected_purchases(rfm, days=horizon_days).to_numpy(),
            "bgnbd_p_no_purchase": bg.p_no_purchase(rfm, days=horizon_days).to_numpy(),
        },
        index=index,
    )


def snapshot_features(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    windows: tuple[int, ...] = WINDOWS,
    horizon_days: int = 90,
) -> pd.DataFrame:
    """Features of every customer with a transaction before ``as_of``, from earlier rows only.

    Parameters
    ----------
    ds
        The dataset; events, surveys and customers add features when present.
    as_of
        Snapshot date (ISO 8601); only rows with ``timestamp < as_of`` are read.
    windows
        Look-back windows in days for purchase counts and spend.
    horizon_days
        The churn horizon: BG/NBD's expected purchases and P(no purchase) cover it. A model
        scores features made with the horizon it was trained on (``attrs["horizon_days"]``).

    Returns
    -------
    pandas.DataFrame
        One row per customer (sorted ``customer_id``): recency, tenure, purchase days, spend,
        per-window purchases and spend, spend trend, inter-purchase gaps, BG/NBD's P(alive),
        expected purchases and P(no purchase) (:func:`purchase_model_features`), events per
        stage in the last 90 days, the latest NPS/CSAT and the ``customers`` attributes. Text
        columns are objects (categorical features); absent values are NaN.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> X = snapshot_features(load_dataset("cdnow_sample"), "1997-10-01")
    >>> X.loc["00004", ["recency_days", "purchase_days", "purchases_90d"]].tolist()
    [60.0, 3.0, 1.0]
    """
    at = as_day(as_of, "as_of")
    tx = rows_before(ds.require("transactions", "churn features"), at)
    if tx.empty:
        raise ClmError(f"no transactions before {at.date()}: no customers to describe")
    out = _transaction_features(tx, at, windows)
    out = out.join(purchase_model_features(tx, at, horizon_days, out.index))
    ev = rows_before(ds.events, at)
    if ev is not None:
        out = out.join(_event_features(ev, ds.event_stages, at, out.index))
    sv = rows_before(ds.surveys, at)
    if sv is not None:
        out = out.join(_survey_features(sv, out.index))
    if ds.customers is not None:
        out = out.join(_customer_features(ds.customers, at, out.index))
    out.index.name = "customer_id"
    out.attrs["horizon_days"] = horizon_days
    return out


def data_end(ds: Dataset) -> pd.Timestamp:
    """The day after the latest transaction: the data covers [.., data_end)."""
    return ds.require("transactions", "churn labels")["timestamp"].max().normalize() + _DAY


def churn_labels(
    ds: Dataset, customers: pd.Index, as_of: str | pd.Timestamp, horizon_days: int
) -> pd.Series:
    """1 for each customer with no transaction in ``[as_of, as_of + horizon_days)``, else 0.

    Raises a :class:`ClmError` when the data ends before the label window does.
    """
    at = as_day(as_of, "as_of")
    stop = at + pd.Timedelta(days=horizon_days)
    end = data_end(ds)
    if stop > end:
        raise ClmError(
            f"churn labels at {at.date()} need transactions up to {(stop - _DAY).date()}, "
            f"but the data ends on {(end - _DAY).date()}; use an earlier date or a shorter horizon"
        )
    tx = ds.transactions
    inside = tx[(tx["timestamp"] >= at) & (tx["timestamp"] < stop)]
    bought = customers.isin(inside["customer_id"].unique())
    return pd.Series((~bought).astype(int), index=customers, name="churned")
