"""Time units, explicit everywhere.

A week is 7 days and a month is 365.25 / 12 days. Models are fitted in one unit (``freq``:
``"D"``, ``"W"`` or ``"M"``) and every horizon carries its unit in its name
(``horizon_months``, ``horizon_days``), because mixing units up in CLV is the most reported
class of user bug in ``lifetimes``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from .errors import ClmError

if TYPE_CHECKING:  # pandas is imported where a function needs it: `clm score` reads the
    import numpy as np  # observation end, and starts its engine, before pandas is imported
    import pandas as pd

DAYS_PER_WEEK = 7.0
DAYS_PER_MONTH = 365.25 / 12

#: The one vocabulary of time: each unit's name and its one-letter code (lifetimes' ``freq``,
#: pandas' period alias). Every function that takes a unit or a period takes either spelling.
UNIT_CODES: dict[str, str] = {"day": "D", "week": "W", "month": "M", "quarter": "Q"}

#: The units a CLV model is fitted in, and the periods a stage is assigned per.
MODEL_UNITS: tuple[str, ...] = ("D", "W", "M")
STAGE_PERIODS: tuple[str, ...] = ("week", "month", "quarter")

#: Length of one model time unit in days.
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": DAYS_PER_WEEK, "M": DAYS_PER_MONTH}
UNIT_NAMES: dict[str, str] = {"D": "days", "W": "weeks", "M": "months"}


def unit_code(value: str, allowed: str = "DWMQ", what: str = "freq") -> str:
    """The code (``"D"``, ``"W"``, ``"M"``, ``"Q"``) of a unit given by code or by name
    (``"week"``), among ``allowed``; else a :class:`ClmError`."""
    by_name = dict(UNIT_CODES)
    code = value if value in UNIT_CODES.values() else by_name.get(value)
    if code is None or code not in allowed:
        names = [n for n, c in UNIT_CODES.items() if c in allowed]
        codes = [c for c in UNIT_CODES.values() if c in allowed]
        raise ClmError(
            f"{what} must be one of {', '.join(names)} (or {', '.join(codes)}), got {value!r}"
        )
    return code


def unit_name(value: str, allowed: str = "DWMQ", what: str = "period") -> str:
    """The name (``"day"``, ``"week"``, ``"month"``, ``"quarter"``) of a unit given either way."""
    code = unit_code(value, allowed, what)
    return next(name for name, c in UNIT_CODES.items() if c == code)


def check_freq(freq: str) -> str:
    """The code of a model time unit (``"D"``, ``"W"``, ``"M"``, or ``"day"``, ``"week"``,
    ``"month"``), else a :class:`ClmError`."""
    return unit_code(freq, "DWM", "freq")


def purchase_day(timestamps: pd.Series) -> pd.Series:
    """The calendar day (UTC) of each timestamp: the contract's purchase occasion (a
    customer's transactions on one day are one occasion). The SQL engines' twin is
    :meth:`clmmodels.engines.SqlEngine.day`."""
    return timestamps.dt.normalize()


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


def parse_day(value: str | dt.date, what: str = "date") -> dt.date:
    """The calendar day (UTC) of a date given by the user, with a clear error: ISO 8601 only
    (a day-first date such as 01/02/2024 must not be read as 2 January). Without pandas for a
    string Python reads (``datetime.fromisoformat``), else by pandas' ISO 8601 reader.

    Examples
    --------
    >>> parse_day("2024-03-01T23:30:00-05:00")  # 04:30 on 2 March, UTC
    datetime.date(2024, 3, 2)
    """
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.strip())
        except ValueError:  # pandas reads more ISO 8601 forms, and says what is wrong
            return _as_timestamp(value, what).date()
        if t.tzinfo is not None:
            t = t.astimezone(dt.UTC)
        return t.date()
    return _as_timestamp(value, what).date()


def as_day(value: str | pd.Timestamp, what: str = "date") -> pd.Timestamp:
    """Parse a date given by the user to a calendar day (midnight), with a clear error; the
    day :func:`parse_day` gives, as a pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(parse_day(value, what)).as_unit("ns")  # as pandas parses a string


def _as_timestamp(value, what: str) -> pd.Timestamp:
    import pandas as pd

    try:
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
    return ts
