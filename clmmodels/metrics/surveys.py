"""Survey scores of a window: NPS with its interval, and CSAT."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .counts import window_bounds


def _answers(surveys: pd.DataFrame, score: str, start, end) -> pd.Series:
    """The non-missing ``score`` answers given in ``[start, end)``."""
    lo, hi = window_bounds(start, end)
    if score not in surveys:
        return pd.Series(dtype="Int64")
    in_window = (surveys["timestamp"] >= lo) & (surveys["timestamp"] < hi)
    return surveys.loc[in_window, score].dropna()


def nps(
    surveys: pd.DataFrame, start: str | pd.Timestamp, end: str | pd.Timestamp, level: float = 0.95
) -> dict:
    """Net promoter score over the nps answers in ``[start, end)``, with a normal interval.

    NPS is the mean of +100 (answers 9-10), 0 (7-8) and -100 (0-6); its standard error is that
    of a mean, so the interval is ``nps +/- z * sd / sqrt(n)``, clipped to [-100, 100].
    """
    from scipy.stats import norm

    scores = _answers(surveys, "nps", start, end).astype(int)
    n = len(scores)
    if n == 0:
        return {"nps": None, "nps_ci": None, "answers": 0}
    points = np.where(scores >= 9, 100.0, np.where(scores <= 6, -100.0, 0.0))
    value = float(points.mean())
    half = float(norm.ppf(0.5 + level / 2) * points.std(ddof=1) / np.sqrt(n)) if n > 1 else np.inf
    ci = [max(-100.0, value - half), min(100.0, value + half)]
    return {"nps": value, "nps_ci": ci, "answers": n}


def csat(surveys: pd.DataFrame, start: str | pd.Timestamp, end: str | pd.Timestamp) -> dict:
    """Share of csat answers of 4 or 5 in ``[start, end)``, on a 100-point scale."""
    scores = _answers(surveys, "csat", start, end)
    if len(scores) == 0:
        return {"csat": None, "answers": 0}
    return {"csat": float(100 * (scores >= 4).mean()), "answers": len(scores)}
