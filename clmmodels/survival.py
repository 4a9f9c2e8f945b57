"""Customer lifetime survival: Kaplan-Meier curves (lifelines), log-rank tests, medians.

A customer's lifetime runs from the first purchase to the lapse: the first time the customer
goes ``gap_days`` without a purchase, dated ``gap_days`` after the last purchase before that
gap. A customer who has not lapsed by the observation end is censored there.
"""

from __future__ import annotations

import pandas as pd

from .errors import ClmError
from .plotting import axes_or_new
from .timeunits import as_day, purchase_day


def customer_lifetimes(
    transactions: pd.DataFrame, observation_end: str | pd.Timestamp, gap_days: int = 180
) -> pd.DataFrame:
    """One row per customer: ``duration_days`` from first purchase to lapse or censoring, and
    ``lapsed`` (the event indicator). Transactions after the observation end are not used."""
    if gap_days < 1:
        raise ClmError(f"gap_days must be at least 1, got {gap_days}")
    end = as_day(observation_end, "observation_end")
    day = purchase_day(transactions["timestamp"])
    days = (
        pd.DataFrame({"customer_id": transactions["customer_id"], "day": day})[day <= end]
        .drop_duplicates()
        .sort_values(["customer_id", "day"])
    )
    g = days.groupby("customer_id")["day"]
    gap_after = (g.shift(-1).fillna(end) - days["day"]).dt.days  # to the next purchase or the end
    lapse_here = gap_after > gap_days
    lapses = days[lapse_here].groupby("customer_id")["day"].min()  # last purchase before 1st gap
    first_day = g.min()
    lapsed = first_day.index.isin(lapses.index)
    lapse_at = lapses.reindex(first_day.index) + pd.Timedelta(days=gap_days)
    stop = lapse_at.where(lapsed, end)
    out = pd.DataFrame(
        {"duration_days": (stop - first_day).dt.days.astype(float), "lapsed": lapsed},
        index=first_day.index,
    )
    return out


def kaplan_meier(table: pd.DataFrame, by: pd.Series | None = None) -> dict:
    """Kaplan-Meier fits of ``customer_lifetimes`` output, overall or per group of ``by``."""
    from lifelines import KaplanMeierFitter

    if by is None:
        groups = {"all customers": table}
    else:
        labels = by.reindex(table.index)
        groups = {str(k): table.loc[labels == k] for k in sorted(labels.dropna().unique())}
    fits = {}
    for name, part in groups.items():
        if len(part):
            fits[name] = KaplanMeierFitter(label=name).fit(part["duration_days"], part["lapsed"])
    return fits


def survival_summary(table: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """Customers, lapses, median lifetime (days; inf if never below one half) and survival at
    90/180/365 days, per group."""
    rows = []
    for name, kmf in kaplan_meier(table, by).items():
        at = {d: float(kmf.predict(d)) for d in (90, 180, 365)}
        rows.append(
            {
                "group": name,
                "customers": int(kmf.event_observed.size),
                "lapsed": int(kmf.event_observed.sum()),
                "median_days": float(kmf.median_survival_time_),
                **{f"survival_{d}d": v for d, v in at.items()},
            }
        )
    return pd.DataFrame(rows).set_index("group")


def logrank(table: pd.DataFrame, by: pd.Series) -> dict:
    """Log-rank test that the groups of ``by`` share one survival curve."""
    from lifelines.statistics import multivariate_logrank_test

    groups = by.reindex(table.index)
    keep = groups.notna()
    result = multivariate_logrank_test(
        table.loc[keep, "duration_days"], groups[keep], table.loc[keep, "lapsed"]
    )
    return {
        "statistic": float(result.test_statistic),
        "degrees_of_freedom": int(result.degrees_of_freedom),
        "p_value": float(result.p_value),
        "groups": int(groups[keep].nunique()),
    }


def plot_survival(fits: dict, ax=None, ci: bool = True):
    """Kaplan-Meier curves, one per group, on one axis."""
    ax = axes_or_new(ax, (8, 4))
    for kmf in fits.values():
        kmf.plot_survival_function(ax=ax, ci_show=ci)
    ax.set_xlabel("days since first purchase")
    ax.set_ylabel("share not yet lapsed")
    ax.set_ylim(0, 1.02)
    ax.set_title("Customer survival (Kaplan-Meier)")
    return ax
