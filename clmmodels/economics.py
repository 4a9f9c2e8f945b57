"""Unit economics per acquisition channel: CLV:CAC and CAC payback.

Both compare what a channel's customers cost to acquire (the contract's CAC over a window)
with what the customers acquired in that window are worth. Revenue stands in for profit
unless a ``margin`` is given: the contract carries no costs of goods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import Dataset
from .metrics import acquired_in, acquisitions, cac, historical_clv, window_bounds
from .plotting import axes_or_new
from .timeunits import DAYS_PER_MONTH

ALL = "all channels"


def spend_window(ds: Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The whole months the marketing spend covers, as ``[start, end)``."""
    months = ds.require("marketing_spend", "CAC")["date"].dt.to_period("M")
    return months.min().start_time, (months.max() + 1).start_time


def _acquired(ds: Dataset, start, end) -> tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame, dict]:
    """The window (by default the spend's), its new customers with their channel, its CAC."""
    if start is None or end is None:
        spend_start, spend_end = spend_window(ds)
        start = spend_start if start is None else start
        end = spend_end if end is None else end
    lo, hi = window_bounds(start, end)
    acq = acquisitions(ds)
    new = acquired_in(acq, lo, hi)
    new = new.assign(channel=new["acquisition_channel"].astype("object").fillna("unknown"))
    return lo, hi, new, cac(ds, lo, hi)


def _check_margin(margin: float) -> None:
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin}")


def lifetime_value(
    transactions: pd.DataFrame, predicted_clv: pd.Series, observation_end: str | pd.Timestamp
) -> pd.Series:
    """Each customer's spend up to ``observation_end`` plus their predicted CLV after it: the
    value :func:`clv_to_cac` sets against acquisition cost."""
    return historical_clv(transactions, observation_end).add(predicted_clv, fill_value=0.0)


def clv_to_cac(
    ds: Dataset,
    clv: pd.Series | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    margin: float = 1.0,
) -> pd.DataFrame:
    """CLV:CAC per acquisition channel for the customers acquired in ``[start, end)``.

    Parameters
    ----------
    ds
        A dataset with ``marketing_spend`` (for CAC) and ``transactions``.
    clv
        Predicted CLV per customer (for instance the ``clv`` column of
        :func:`clmmodels.clv.score_customers`). Without it, each customer's historical CLV
        (all spend to the end of the data) is used; the ``basis`` column says which. A new
        customer missing from ``clv`` (no purchase yet) counts as 0 and is counted in
        ``without_clv``.
    start, end
        The acquisition window; by default the whole months the marketing spend covers.
    margin
        Fraction of revenue that is profit (1.0: revenue).

    Returns
    -------
    pandas.DataFrame
        One row per channel and a last row for all channels: ``new_customers``, ``spend``,
        ``cac``, ``mean_clv``, ``clv_to_cac``, ``without_clv``, ``basis``.

    Examples
    --------
    >>> from clmmodels import dataset_from_frames, simulate_company
    >>> company = dataset_from_frames(**simulate_company(n_customers=300, seed=1).tables)
    >>> table = clv_to_cac(company)
    >>> table.loc["all channels", "basis"]
    'historical'
    """
    _check_margin(margin)
    lo, hi, new, costs = _acquired(ds, start, end)
    if clv is None:
        tx = ds.require("transactions", "historical CLV")
        value, basis = historical_clv(tx), "historical"
    else:
        value, basis = clv, "predicted"
    per_customer = value.reindex(new.index)
    missing = per_customer.isna()
    frame = pd.DataFrame(
        {
            "channel": new["channel"],
            "clv": per_customer.fillna(0.0) * margin,
            "missing": missing,
        }
    )
    groups = frame.groupby("channel")
    rows = pd.DataFrame(
        {
            "new_customers": groups.size(),
            "mean_clv": groups["clv"].mean(),
            "without_clv": groups["missing"].sum(),
        }
    )
    rows = rows.reindex(sorted(set(rows.index) | set(costs["by_channel"])))
    rows["new_customers"] = rows["new_customers"].fillna(0).astype(int)
    rows["without_clv"] = rows["without_clv"].fillna(0).astype(int)
    rows["spend"] = [costs["spend"].get(c, 0.0) for c in rows.index]
    rows["cac"] = [costs["by_channel"].get(c) for c in rows.index]
    rows.loc[ALL] = {
        "new_customers": len(frame),
        "mean_clv": frame["clv"].mean() if len(frame) else np.nan,
        "without_clv": int(frame["missing"].sum()),
        "spend": sum(costs["spend"].values()),
        "cac": costs["blended"],
    }
    rows["cac"] = pd.to_numeric(rows["cac"], errors="coerce")
    rows["clv_to_cac"] = rows["mean_clv"] / rows["cac"]
    rows["basis"] = basis
    rows.index.name = "acquisition_channel"
    rows.attrs["window"] = (str(lo.date()), str(hi.date()))
    return rows[["new_customers", "spend", "cac", "mean_clv", "clv_to_cac", "without_clv", "basis"]]


def payback_curves(
    ds: Dataset,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    max_months: int = 36,
    margin: float = 1.0,
    min_customers: int = 30,
) -> pd.DataFrame:
    """Cumulative revenue per acquired customer by months since acquisition, per channel.

    Cell (m, channel) is the expected revenue of one of the channel's customers acquired in
    ``[start, end)`` in their first ``m`` months (a month is 365.25/12 days; observation ends
    the day after the last transaction): the sum over months k = 1..m of the mean revenue in
    month k of the customers observed for at least k months. It never falls, whichever
    cohorts are observed that long (the mean cumulative revenue of those observed m months
    would drop where the earliest cohorts spent less). Each column reads against the
    channel's CAC; ``m`` = 0 is 0. A purchase dated before the customer's ``acquired_at``
    counts in their first month. Cells resting on fewer than ``min_customers`` customers
    observed that long are missing: the last months are seen only by the earliest few
    customers, and their mean would swing with each of them.
    """
    _, _, new, _ = _acquired(ds, start, end)
    return _curves(ds, new, max_months, margin, min_customers)


def _curves(
    ds: Dataset, new: pd.DataFrame, max_months: int, margin: float, min_customers: int
) -> pd.DataFrame:
    _check_margin(margin)
    tx = ds.require("transactions", "CAC payback")
    data_end = tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    month = pd.Timedelta(days=DAYS_PER_MONTH)
    observed = ((data_end - new["acquired_at"]) // month).clip(lower=0).astype(int)
    mine = tx[tx["customer_id"].isin(new.index)]
    acquired = new["acquired_at"].reindex(mine["customer_id"]).to_numpy()
    since = (mine["timestamp"] - acquired) // month
    bucket = since.clip(lower=0).astype(int) + 1  # revenue of month k counts from m = k + 1 on
    bucket = bucket[bucket <= max_months]
    revenue = (
        (mine.loc[bucket.index, "amount"] * margin)
        .groupby([mine.loc[bucket.index, "customer_id"], bucket])
        .sum()
        .unstack(fill_value=0.0)
        .reindex(index=new.index, columns=range(max_months + 1), fill_value=0.0)
    )
    seen = np.arange(max_months + 1)[None, :] <= observed.to_numpy()[:, None]
    # Each month's revenue averaged over the customers observed through it, then summed: the
    # mean of cumulative revenue over those observed m months would fall whenever the
    # earliest cohorts, the only ones seen that long, spent less than the later ones.
    revenue = revenue.where(seen)
    by_channel = revenue.groupby(new["channel"])
    curves = by_channel.mean().cumsum(axis=1).where(by_channel.count() >= min_customers).T
    curves[ALL] = revenue.mean().cumsum().where(revenue.count() >= min_customers)
    curves.index.name = "months since acquisition"
    curves.columns.name = "acquisition_channel"
    return curves


def cac_payback(
    ds: Dataset,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    max_months: int = 36,
    margin: float = 1.0,
    min_customers: int = 30,
    *,
    curves: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Months until a channel's customers have, on average, paid back their CAC.

    The first whole month ``m`` at which :func:`payback_curves` reaches the channel's CAC;
    missing when it has not within the months observed (``reached`` says so), or when the
    channel has no CAC. ``curves``: that function's result for the same arguments, when the
    caller has it already (a report that plots the curves too).

    Returns
    -------
    pandas.DataFrame
        Per channel and all channels: ``cac``, ``payback_months``, ``revenue_to_date`` (the
        curve's last observed value) and ``months_observed``.
    """
    _, _, new, costs = _acquired(ds, start, end)
    if curves is None:
        curves = _curves(ds, new, max_months, margin, min_customers)
    rows = []
    for channel in curves.columns:
        c = costs["blended"] if channel == ALL else costs["by_channel"].get(channel)
        curve = curves[channel].dropna()
        paid = curve[curve >= c].index if c is not None else pd.Index([])
        paid = paid[paid > 0]
        rows.append(
            {
                "acquisition_channel": channel,
                "cac": c,
                "payback_months": float(paid[0]) if len(paid) else np.nan,
                "revenue_to_date": float(curve.iloc[-1]) if len(curve) else np.nan,
                "months_observed": int(curve.index[-1]) if len(curve) else 0,
            }
        )
    out = pd.DataFrame(rows).set_index("acquisition_channel")
    out["cac"] = pd.to_numeric(out["cac"], errors="coerce")
    out["reached"] = out["payback_months"].notna()
    return out


def plot_cac_by_channel(table: pd.DataFrame, ax=None):
    """CAC per channel as bars, from :func:`clv_to_cac` (or any table with a ``cac`` column)."""
    ax = axes_or_new(ax, (7, 3.5))
    data = table.drop(index=ALL, errors="ignore")["cac"].dropna().sort_values()
    ax.barh(data.index.astype(str), data.to_numpy(), color="#4c72b0")
    if ALL in table.index and pd.notna(table.loc[ALL, "cac"]):
        ax.axvline(table.loc[ALL, "cac"], color="k", ls="--", lw=1, label="blended")
        ax.legend()
    ax.set_xlabel("CAC (spend per new customer)")
    ax.set_title("Customer acquisition cost by channel")
    return ax


def plot_clv_to_cac(table: pd.DataFrame, ax=None):
    """CLV:CAC per channel from :func:`clv_to_cac`, with the break-even line at 1."""
    ax = axes_or_new(ax, (7, 3.5))
    data = table.drop(index=ALL, errors="ignore")["clv_to_cac"].dropna().sort_values()
    colours = ["#c44e52" if v < 1 else "#55a868" for v in data]
    ax.barh(data.index.astype(str), data.to_numpy(), color=colours)
    ax.axvline(1, color="k", lw=1)
    basis = table["basis"].iloc[0] if len(table) else ""
    what = {"predicted": "spend so far + predicted", "historical": "spend so far"}.get(basis, basis)
    ax.set_xlabel(f"mean CLV ({what}) / CAC")
    ax.set_title("CLV:CAC by channel (left of 1: not paid back)")
    return ax


def plot_payback(curves: pd.DataFrame, payback: pd.DataFrame, ax=None):
    """Cumulative revenue per customer against each channel's CAC (dashed)."""
    ax = axes_or_new(ax, (9, 4))
    for i, channel in enumerate(c for c in curves.columns if c != ALL):
        colour = f"C{i}"
        ax.plot(curves.index, curves[channel], color=colour, label=str(channel))
        cost = payback["cac"].get(channel)
        if pd.notna(cost):
            ax.axhline(cost, color=colour, ls="--", lw=0.8)
    ax.set_xlabel("months since acquisition")
    ax.set_ylabel("cumulative revenue per customer")
    ax.set_title("CAC payback: revenue per customer (lines) against CAC (dashed)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    return ax
