"""Churn features in words: what a customer's value of a feature says, for the reasons a
marketer reads ("no purchase for 120 days; usually buys every 30").

One phrase per feature family, from the customer's own row (so a phrase can use a second
feature, as recency does the usual gap) and the typical customer's value (the training
median, or the most common category) for comparison.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import pandas as pd

#: Features that say one thing, read as one reason (named by the first): recency in the
#: customer's own rhythm, and BG/NBD's view of the customer.
FAMILIES: dict[str, tuple[str, ...]] = {
    "recency_days": ("recency_days", "overdue_ratio", "mean_gap_days", "last_gap_days"),
    "bgnbd_p_no_purchase": ("bgnbd_p_no_purchase", "bgnbd_p_alive", "bgnbd_expected_purchases"),
}
_WINDOW = re.compile(r"^(purchases|spend)_(\d+)d$")
_EVENTS = re.compile(r"^events_(\w+)_(\d+)d$")


def _n(v: float, digits: int = 0) -> str:
    """A number for people: thousands separators, no trailing ``.0``."""
    return f"{v:,.{digits}f}"


def _days(v: float) -> str:
    v = round(v)
    return "1 day" if v == 1 else f"{_n(v)} days"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def feature_families(columns: list[str]) -> dict[str, list[str]]:
    """The reasons among ``columns``: each family of :data:`FAMILIES` present, under its
    first feature's name, and every other feature on its own; in ``columns``' order.

    >>> feature_families(["tenure_days", "overdue_ratio", "recency_days"])
    {'tenure_days': ['tenure_days'], 'recency_days': ['overdue_ratio', 'recency_days']}
    """
    lead = {m: name for name, members in FAMILIES.items() for m in members}
    grouped: dict[str, list[str]] = {}
    for c in columns:
        grouped.setdefault(lead.get(c, c), []).append(c)
    return grouped


def _typical(ref) -> str:
    return "" if _missing(ref) else f" (typical: {_n(ref)})"


def _recency(row: Mapping[str, object]) -> str:
    """Recency in the customer's own rhythm: the one phrase of recency, the overdue ratio,
    the gaps and (for one-day buyers) tenure."""
    recency, gap = row.get("recency_days"), row.get("mean_gap_days")
    if _missing(recency):
        return "no purchase yet"
    if _missing(gap):
        return f"bought once, {_days(recency)} ago"
    return f"no purchase for {_days(recency)}; usually buys every {_n(gap)}"


def describe(
    feature: str,
    row: Mapping[str, object],
    typical: Mapping[str, object],
    horizon_days: int | None = None,
) -> str:
    """The sentence that says what ``row[feature]`` tells about this customer.

    Parameters
    ----------
    feature
        A column of :func:`~clmmodels.churn.snapshot_features`.
    row
        The customer's features.
    typical
        A typical customer's features, for comparison.
    horizon_days
        The churn horizon, for the BG/NBD features.

    Returns
    -------
    str
        A short phrase in words; unknown features read ``feature: value``.

    Examples
    --------
    >>> describe("recency_days", {"recency_days": 120.0, "mean_gap_days": 30.0}, {})
    'no purchase for 120 days; usually buys every 30'
    >>> describe("purchases_90d", {"purchases_90d": 0}, {"purchases_90d": 2.0})
    'no purchase in the last 90 days (typical: 2)'
    """
    v = row.get(feature)
    ref = typical.get(feature)
    horizon = f"the next {_days(horizon_days)}" if horizon_days else "the horizon"
    if feature in ("recency_days", "overdue_ratio", "mean_gap_days", "last_gap_days"):
        return _recency(row)
    if feature == "std_gap_days":
        if _missing(v):
            return (
                _recency(row) if _missing(row.get("mean_gap_days")) else "bought on two days only"
            )
        return f"irregular buyer (gaps vary by {_days(v)})"
    if m := _WINDOW.match(feature):
        what, window = m.groups()
        if what == "purchases":
            text = (
                f"no purchase in the last {window} days"
                if v == 0
                else f"{_n(v)} purchase days in the last {window} days"
            )
        else:
            text = f"spent {_n(v)} in the last {window} days"
        return text + _typical(ref)
    if m := _EVENTS.match(feature):
        stage, window = m.groups()
        # churned-stage events are the churn signals (a cancellation, an unsubscribe)
        what = "churn signal" if stage == "churned" else f"{stage.replace('_', '-')} event"
        return f"{_n(v)} {what}{'' if v == 1 else 's'} in the last {window} days" + _typical(ref)
    simple = {
        "tenure_days": lambda: (
            _recency(row)
            if _missing(row.get("mean_gap_days"))
            else f"first purchase {_days(v)} ago"
        ),
        "purchase_days": lambda: f"bought on {_n(v)} days in all",
        "total_spend": lambda: f"spent {_n(v)} in all" + _typical(ref),
        "mean_spend": lambda: f"spends {_n(v)} per purchase day" + _typical(ref),
        "spend_trend_90d": lambda: (
            f"spent {_n(abs(v))} {'less' if v < 0 else 'more'} in the last 90 days than in the "
            "90 before"
        ),
        "days_since_event": lambda: f"no event (visit, click, reply) for {_days(v)}",
        "last_event_stage": lambda: f"last activity at the {str(v).replace('_', ' ')} stage",
        "days_since_acquired": lambda: f"acquired {_days(v)} ago",
        "bgnbd_p_alive": lambda: f"BG/NBD: {v:.0%} likely still a customer",
        "bgnbd_expected_purchases": lambda: f"BG/NBD expects {v:,.1f} purchases in {horizon}",
        "bgnbd_p_no_purchase": lambda: (
            f"BG/NBD: {v:.0%} chance of no purchase in {horizon}"
            + ("" if _missing(alive := row.get("bgnbd_p_alive")) else f" (P(alive) {alive:.0%})")
        ),
        "last_nps": lambda: f"last NPS answer {_n(v)}",
        "last_csat": lambda: f"last CSAT answer {_n(v)}",
    }
    if _missing(v):
        absent = {
            "days_since_event": "no event on record",
            "last_nps": "never answered NPS",
            "last_csat": "never answered CSAT",
        }
        return absent.get(feature, f"{feature.replace('_', ' ')} unknown")
    if feature in simple:
        return simple[feature]()
    if isinstance(v, str):
        return f"{feature.replace('_', ' ')}: {v}"
    return f"{feature.replace('_', ' ')}: {_n(v, 2)}"


def reasons_in_words(
    X: pd.DataFrame,
    top: pd.Series,
    typical: Mapping[str, object],
    horizon_days: int | None = None,
) -> pd.Series:
    """Each customer's top features (``top``: lists of names per row, most important first)
    as phrases joined by ``"; "``; a phrase said twice (recency and overdue ratio both read
    as recency) is said once."""
    text = []
    rows = X.to_dict(orient="records")  # one conversion: X.loc per customer is slow at scale
    for row, names in zip(rows, top.reindex(X.index), strict=True):
        phrases: list[str] = []
        for name in names:
            phrase = describe(name, row, typical, horizon_days)
            if phrase not in phrases:
                phrases.append(phrase)
        text.append("; ".join(phrases))
    return pd.Series(text, index=X.index, name="reasons")
