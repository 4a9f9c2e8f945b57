"""The contract's lifecycle KPIs of a window: new customers, CRR and churn, CAC, NPS, CSAT,
revenue; monthly series of them, and engagement."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..timeunits import as_day
from ..vocabulary import ACTIVE_WINDOW_DAYS
from .counts import (
    WindowCounts,
    acquired_in,
    acquisitions_of,
    active_at,
    calendar_months,
    window_bounds,
    window_counts,
)
from .surveys import csat, nps


def acquisitions(ds: Dataset) -> pd.DataFrame:
    """Each customer's acquisition date and channel.

    The acquisition is the earlier of ``customers.acquired_at`` and the first transaction (an
    ``acquired_at`` after the customer's first purchase is a late record: the purchase shows
    the customer was acquired by then); the channel is ``customers.acquisition_channel``, else
    missing.
    """
    return acquisitions_of(ds.require("transactions", "acquisitions"), ds.customers)


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
    lo, hi = window_bounds(start, end)
    spend = ds.require("marketing_spend", "CAC")
    if counts is None:  # only the acquisitions: no pass over transactions for the rest
        new = acquired_in(acquisitions(ds), lo, hi)
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


def new_customers(ds: Dataset, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.Index:
    """Customers whose acquisition falls in ``[start, end)``."""
    return acquired_in(acquisitions(ds), *window_bounds(start, end)).index


def active_customers(
    transactions: pd.DataFrame, at: str | pd.Timestamp, active_window_days: int = ACTIVE_WINDOW_DAYS
) -> pd.Index:
    """Customers with a transaction in ``(at - active_window_days, at]``.

    ``at`` is an instant (a date means its midnight), so a transaction stamped exactly ``at``
    counts and one exactly ``active_window_days`` earlier does not.
    """
    return active_at(transactions, as_day(at, "date"), active_window_days, before=False)


def active_before(
    transactions: pd.DataFrame, boundary: pd.Timestamp, active_window_days: int = ACTIVE_WINDOW_DAYS
) -> pd.Index:
    """Customers active at the last instant before ``boundary`` (a window's start or end).

    This is how CRR measures ``S`` and ``E`` (see :func:`retention`), so every count of
    active customers at a month's end agrees with it.
    """
    return active_at(transactions, boundary, active_window_days, before=True)


def retention(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
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
    lo, hi = window_bounds(start, end)
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


def kpis(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
    counts: WindowCounts | None = None,
) -> dict:
    """The headline KPIs of ``[start, end)`` as one JSON-ready dict.

    A metric whose table is absent is None, with the reason in ``notes``. ``counts``
    (:func:`window_counts` of a window starting at ``start``, from any engine) replaces the
    counting in ``ds.transactions`` and ``ds.customers``, which may then be absent.
    """
    lo, hi = window_bounds(start, end)
    if counts is None:
        tx = ds.require("transactions", "KPIs")
        counts = window_counts(tx, [lo, hi], ds.customers, active_window_days)
    out: dict = {"window": {"start": str(lo.date()), "end": str(hi.date())}}
    out["active_window_days"] = active_window_days
    notes: list[str] = []
    out.update(retention(ds, lo, hi, active_window_days, counts=counts))
    if out["crr"] is None:
        notes.append("CRR: no customer was active at the start of the window")
    if ds.marketing_spend is not None:
        c = cac(ds, lo, hi, counts=counts)
        out["cac"] = {"blended": c["blended"], "by_channel": c["by_channel"]}
        if c["blended"] is None:
            notes.append("CAC: no new customers in the window")
    else:
        out["cac"] = None
        notes.append("CAC: the dataset has no marketing_spend table")
    if ds.surveys is not None:
        n = nps(ds.surveys, lo, hi)
        out["nps"], out["nps_ci"] = n["nps"], n["nps_ci"]
        out["csat"] = csat(ds.surveys, lo, hi)["csat"]
        if n["nps"] is None:
            notes.append("NPS: no NPS answers in the window")
        if out["csat"] is None:
            notes.append("CSAT: no CSAT answers in the window")
    else:
        out["nps"] = out["nps_ci"] = out["csat"] = None
        notes.append("NPS and CSAT: the dataset has no surveys table")
    out["revenue"] = float(counts.totals.loc[lo, "revenue"])
    out["transactions"] = int(counts.totals.loc[lo, "transactions"])
    out["notes"] = notes
    return out


def kpi_series(
    ds: Dataset,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
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
    active_window_days: int = ACTIVE_WINDOW_DAYS,
) -> pd.DataFrame:
    """Events per active customer for every calendar month overlapping ``[start, end)``.

    ``events`` counts the month's events (every type); ``active`` is the customers active
    at the month's end (the contract's definition, as in :func:`kpis`);
    ``events_per_active`` divides the two. ``customers_with_events`` counts the customers
    with at least one event in the month, whether active or not (prospects are not active).
    """
    events = ds.require("events", "engagement")
    tx = ds.require("transactions", "engagement")
    months = calendar_months(start, end)
    bounds = [m for m, _ in months] + [months[-1][1]]
    active_end = window_counts(tx, bounds, None, active_window_days).totals["active_end"]
    rows = []
    for (m_start, m_end), active in zip(months, active_end.astype(int), strict=True):
        inside = events[(events["timestamp"] >= m_start) & (events["timestamp"] < m_end)]
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
