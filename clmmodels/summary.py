"""The executive summary: a month's headline KPIs against the month before, in numbers and words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .dataset import Dataset
from .errors import ClmError
from .metrics import acquisitions, kpis
from .vocabulary import ACTIVE_WINDOW_DAYS

# Row label, how a value is shown, and whether "up" is good news (None: neither).
HEADLINES: dict[str, tuple[str, str, bool | None]] = {
    "customers": ("customers to date", "{:,.0f}", True),
    "active_end": ("active customers", "{:,.0f}", True),
    "new_customers": ("new customers", "{:,.0f}", True),
    "crr": ("retention rate (CRR)", "{:.1%}", True),
    "churn_rate": ("churn rate", "{:.1%}", False),
    "revenue": ("revenue", "{:,.0f}", True),
    "cac": ("CAC (blended)", "{:,.2f}", False),
    "nps": ("NPS", "{:+.0f}", True),
    "csat": ("CSAT", "{:.0f}", True),
    "clv": ("mean predicted CLV per active customer", "{:,.2f}", True),
    "clv_to_cac": ("CLV:CAC", "{:.2f}", True),
}
_RATES = {"crr", "churn_rate"}  # fractions: changes in percentage points
_SCORES = {"nps", "csat"}  # 100-point scales: changes in points


def reporting_month(ds: Dataset, month: str | None = None) -> pd.Period:
    """``month`` (``YYYY-MM``), or by default the last calendar month the data covers whole."""
    last = ds.require("transactions", "the executive summary")["timestamp"].max()
    if month is None:
        p = last.to_period("M")
        complete = last.normalize() == p.end_time.normalize()
        return p if complete else p - 1
    if not re.fullmatch(r"\d{4}-\d{2}", str(month)):
        raise ClmError(f"month must look like 2024-06, got {month!r}")
    p = pd.Period(month, freq="M")
    if p.start_time > last:
        raise ClmError(f"month {p} starts after the data ends ({last.date()})")
    return p


def headline(
    ds: Dataset,
    month: pd.Period,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
    clv: dict[pd.Period, float | None] | None = None,
    clv_to_cac: dict[pd.Period, float | None] | None = None,
) -> pd.DataFrame:
    """The headline KPIs of ``month`` and of the month before, and the change.

    Parameters
    ----------
    ds
        The dataset; a KPI whose table is absent is missing (NaN), not an error.
    month
        The reporting month, for instance from :func:`reporting_month`.
    clv, clv_to_cac
        Optional model-based KPIs by month, computed by the caller (they need a model fit).

    Returns
    -------
    pandas.DataFrame
        Indexed by KPI key (see :data:`HEADLINES`), with columns ``previous``, ``current``,
        ``change`` (points for rates) and ``kpi`` (the label). ``attrs["notes"]`` holds the
        reasons for missing KPIs.
    """
    months = [month - 1, month]
    acquired = acquisitions(ds)["acquired_at"]
    columns, notes = {}, []
    for m in months:
        k = kpis(ds, m.start_time, (m + 1).start_time, active_window_days)
        notes = k["notes"]
        values = {
            "customers": int((acquired < (m + 1).start_time).sum()),
            "active_end": k["active_end"],
            "new_customers": k["new_customers"],
            "crr": k["crr"],
            "churn_rate": k["churn_rate"],
            "revenue": k["revenue"],
            "cac": (k["cac"] or {}).get("blended"),
            "nps": k["nps"],
            "csat": k["csat"],
            "clv": (clv or {}).get(m),
            "clv_to_cac": (clv_to_cac or {}).get(m),
        }
        columns[m] = pd.Series(values, dtype=float)
    out = pd.DataFrame({"previous": columns[months[0]], "current": columns[months[1]]})
    out["change"] = out["current"] - out["previous"]
    out["kpi"] = [HEADLINES[k][0] for k in out.index]
    out.attrs["notes"] = notes
    out.attrs["months"] = (str(months[0]), str(months[1]))
    return out


def model_kpis(
    ds: Dataset,
    months: list[pd.Period],
    model: str = "bgnbd",
    freq: str = "W",
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
) -> tuple[dict[pd.Period, float], dict[pd.Period, float | None]]:
    """Mean predicted CLV per active customer, and CLV:CAC, at the end of each month.

    The models are fitted on the data up to each month's last day. CLV is the discounted
    value over ``horizon_months``; CLV:CAC sets the month's new customers' spend so far plus
    their predicted CLV against the month's blended CAC (None without marketing spend), as
    :func:`clmmodels.economics.clv_to_cac` does.
    """
    from .clv.score import score_customers
    from .economics import ALL, clv_to_cac, lifetime_value
    from .metrics import active_before

    tx = ds.require("transactions", "CLV")
    clv, ratio = {}, {}
    for m in months:
        end = (m + 1).start_time
        last_day = end - pd.Timedelta(days=1)
        scores = score_customers(
            tx, last_day, model=model, freq=freq, horizon_months=horizon_months,
            discount_rate=discount_rate,
        ).scores  # fmt: skip
        active = active_before(tx, end, active_window_days)
        clv[m] = float(scores["clv"].reindex(active).mean())
        ratio[m] = None
        if ds.marketing_spend is not None:
            value = lifetime_value(tx, scores["clv"], last_day)
            r = clv_to_cac(ds, clv=value, start=m.start_time, end=end).loc[ALL, "clv_to_cac"]
            ratio[m] = None if pd.isna(r) else float(r)
    return clv, ratio


def format_headline(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`headline` as text for people: each row in its own format, blanks for missing."""

    def show(key: str, value: float, change: bool = False) -> str:
        if pd.isna(value):
            return "-"
        if change and key in _RATES:
            return f"{100 * value:+.1f} pts"
        if change and key in _SCORES:
            return f"{value:+.0f} pts"
        fmt = HEADLINES[key][1]
        if change and not fmt.startswith("{:+"):
            fmt = fmt.replace("{:", "{:+")
        return fmt.format(value)

    prev, cur = table.attrs.get("months", ("previous", "current"))
    return pd.DataFrame(
        {
            prev: [show(k, v) for k, v in table["previous"].items()],
            cur: [show(k, v) for k, v in table["current"].items()],
            "change": [show(k, v, change=True) for k, v in table["change"].items()],
        },
        index=pd.Index(table["kpi"], name="KPI"),
    )


def changes_in_words(
    table: pd.DataFrame, relative: float = 0.05, rate_points: float = 1.0, score_points: float = 3.0
) -> list[str]:
    """Sentences for the KPIs that moved, biggest move (against its threshold) first.

    A count or amount moved when it changed by more than ``relative`` of its previous value;
    CRR and churn by more than ``rate_points`` percentage points; NPS and CSAT by more than
    ``score_points`` points of their 100-point scales. Each sentence says whether the move is
    good news.
    """
    moves = []
    for key, row in table.iterrows():
        prev, cur = row["previous"], row["current"]
        if pd.isna(prev) or pd.isna(cur) or prev == cur:
            continue
        if key in _RATES:
            size, delta = abs(cur - prev) * 100 / rate_points, f"{100 * (cur - prev):+.1f} points"
        elif key in _SCORES:
            size, delta = abs(cur - prev) / score_points, f"{cur - prev:+.0f} points"
        elif prev:
            size, delta = (
                abs(cur - prev) / (relative * abs(prev)),
                f"{(cur - prev) / abs(prev):+.0%}",
            )
        else:
            size, delta = np.inf, "from zero"
        if size <= 1:
            continue
        label, fmt, up_is_good = HEADLINES[key]
        verb = "rose" if cur > prev else "fell"
        good = None if up_is_good is None else (cur > prev) == up_is_good
        tone = "" if good is None else (" (good news)" if good else " (needs attention)")
        sentence = (
            f"{label[0].upper()}{label[1:]} {verb} from {fmt.format(prev)} to {fmt.format(cur)}"
        )
        moves.append((size, f"{sentence} ({delta}){tone}."))
    return [sentence for _, sentence in sorted(moves, key=lambda m: -m[0])]
