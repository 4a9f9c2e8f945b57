"""Time units, explicit everywhere.

A week is 7 days and a month is 365.25 / 12 days. Models are fitted in one unit (``freq``:
``"D"``, ``"W"`` or ``"M"``) and every horizon carries its unit in its name
(``horizon_months``, ``horizon_days``), because mixing units up in CLV is the most reported
class of user bug in ``lifetimes``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ClmError

DAYS_PER_WEEK = 7.0
DAYS_PER_MONTH = 365.25 / 12

#: Length of one model time unit in days.
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": DAYS_PER_WEEK, "M": DAYS_PER_MONTH}
UNIT_NAMES: dict[str, str] = {"D": "days", "W": "weeks", "M": "months"}


def check_freq(freq: str) -> str:
    """Return ``freq`` if it is a known unit, else raise a :class:`ClmError`."""
    if freq not in DAYS_PER_UNIT:
        raise ClmError(
            f"freq must be one of {', '.join(DAYS_PER_UNIT)} (days, weeks, months), got {freq!r}"
        )
    return freq


def days_to_units(
    days: float | np.ndarray | pd.Series, freq: str
) -> float | np.ndarray | pd.Series:
    """Convert a duration in days to model units (continuous, never floored)."""
    return days / DAYS_PER_UNIT[check_freq(freq)]


def units_to_days(
    value: float | np.ndarray | pd.Series, freq: str
) -> float | np.ndarray | pd.Series:
    """Convert a duration in model units to days."""
    return value * DAYS_PER_UNIT[check_freq(freq)]


def months_to_units(months: float, freq: str) -> float:
    """A horizon in months expressed in model units (12 months = 52.18 weeks)."""
    return months * DAYS_PER_MONTH / DAYS_PER_UNIT[check_freq(freq)]


def as_day(value: str | pd.Timestamp, what: str = "date") -> pd.Timestamp:
    """Parse a date given by the user to a calendar day (midnight), with a clear error."""
    try:
        # ISO 8601 only: a day-first date such as 01/02/2024 must not be read as 2 January.
        ts = (
            pd.to_datetime(value, format="ISO8601")
            if isinstance(value, str)
            else pd.Timestamp(value)
        )
    except (ValueError, TypeError) as err:
        # pandas' own message runs to several lines of advice on format=; keep its first clause.
        reason = str(err).split(",")[0].split(". You might")[0]
        raise ClmError(
            f"{what}: {value!r} is not an ISO 8601 date such as 2024-03-01 ({reason})"
        ) from None
    if ts is pd.NaT:
        raise ClmError(f"{what}: a date is required")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()
