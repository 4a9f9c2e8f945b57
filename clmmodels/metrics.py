"""Lifecycle metrics, exactly as the data contract defines them."""

from __future__ import annotations

import pandas as pd

from .dataset import Dataset
from .timeunits import as_day


def acquisitions(ds: Dataset) -> pd.DataFrame:
    """Each customer's acquisition date and channel.

    The acquisition is ``customers.acquired_at``, else the first transaction; the channel is
    ``customers.acquisition_channel``, else missing.
    """
    tx = ds.require("transactions", "acquisitions")
    first = tx.groupby("customer_id")["timestamp"].min().rename("acquired_at")
    out = first.to_frame().assign(acquisition_channel=pd.NA)
    if ds.customers is not None:
        known = ds.customers.set_index("customer_id")[["acquired_at", "acquisition_channel"]]
        out = pd.concat([known, out.drop(index=known.index, errors="ignore")])
    out.index.name = "customer_id"
    return out


def cac(ds: Dataset, start: str | pd.Timestamp, end: str | pd.Timestamp) -> dict:
    """Customer acquisition cost over ``[start, end)``: blended and per channel.

    ``spend in the window / new customers``; per channel, the channel's spend over the
    customers acquired through it. A channel with spend but no new customer has no CAC (None).

    Returns
    -------
    dict
        ``{"blended": x, "by_channel": {channel: x}, "spend": {...}, "new_customers": {...}}``
    """
    lo, hi = as_day(start, "start"), as_day(end, "end")
    spend = ds.require("marketing_spend", "CAC")
    acq = acquisitions(ds)
    new = acq[(acq["acquired_at"] >= lo) & (acq["acquired_at"] < hi)]
    in_window = spend[(spend["date"] >= lo) & (spend["date"] < hi)]
    by_channel_spend = in_window.groupby("channel")["spend"].sum()
    by_channel_new = new.groupby("acquisition_channel").size()
    channels = sorted(set(by_channel_spend.index) | set(by_channel_new.index))

    def ratio(s: float, n: int) -> float | None:
        return float(s) / int(n) if n else None

    return {
        "blended": ratio(by_channel_spend.sum(), len(new)),
        "by_channel": {
            c: ratio(by_channel_spend.get(c, 0.0), by_channel_new.get(c, 0)) for c in channels
        },
        "spend": {c: float(by_channel_spend.get(c, 0.0)) for c in channels},
        "new_customers": {c: int(by_channel_new.get(c, 0)) for c in channels},
    }
