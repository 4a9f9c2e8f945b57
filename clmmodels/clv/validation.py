"""Holdout validation: do the models forecast the holdout period they never saw?

Following Fader, Hardie & Lee (2005): the conditional-expectation table (mean holdout purchases
by calibration frequency, actual against predicted), tracking of repeat transactions week by
week across calibration and holdout, totals and per-customer errors, and a comparison table
of the three purchase models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..timeunits import DAYS_PER_UNIT, as_day, purchase_day
from .base import BTYDModel


def holdout_forecast(model: BTYDModel, ch: pd.DataFrame) -> pd.Series:
    """Each customer's expected purchases in the holdout period, from the calibration part."""
    from ..rfm import calibration_part

    days = float(ch["duration_holdout"].iloc[0]) * DAYS_PER_UNIT[model.freq]
    return model.expected_purchases(calibration_part(ch), days=days)


def conditional_expectations(
    model: BTYDModel, ch: pd.DataFrame, max_frequency: int = 7
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency: actual against the model's forecast.

    ``ch`` is a :func:`clmmodels.calibration_holdout` table; the model was fitted on its
    calibration part. Frequencies above ``max_frequency`` are pooled in one row (``7+``).
    """
    predicted = holdout_forecast(model, ch)
    group = np.minimum(ch["frequency_cal"], max_frequency)
    table = pd.DataFrame(
        {"customers": 1, "actual": ch["frequency_holdout"], "predicted": predicted, "freq": group}
    ).groupby("freq")
    out = pd.DataFrame(
        {
            "customers": table["customers"].sum(),
            "actual": table["actual"].mean(),
            "predicted": table["predicted"].mean(),
        }
    )
    out.index = [f"{i}+" if i == max_frequency else str(i) for i in out.index]
    out.index.name = "calibration frequency"
    return out


def holdout_errors(model: BTYDModel, ch: pd.DataFrame) -> dict[str, float]:
    """Total and per-customer errors of the holdout forecast."""
    predicted = holdout_forecast(model, ch).to_numpy()
    actual = ch["frequency_holdout"].to_numpy(float)
    return {
        "actual_total": float(actual.sum()),
        "predicted_total": float(predicted.sum()),
        "total_error_pct": float(100 * (predicted.sum() - actual.sum()) / actual.sum()),
        "mae": float(np.mean(np.abs(predicted - actual))),
        "rmse": float(np.sqrt(np.mean((predicted - actual) ** 2))),
    }


def tracking(
    model: BTYDModel,
    transactions: pd.DataFrame,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp,
) -> pd.DataFrame:
    """Repeat purchase occasions per week, actual and expected, calibration through holdout.

    The cohort is the customers whose first purchase is on or before ``calibration_end``;
    expected counts are the model's unconditional forecast for each customer from their first
    purchase, summed.
    """
    cal_end = as_day(calibration_end, "calibration_end")
    obs_end = as_day(observation_end, "observation_end")
    day = purchase_day(transactions["timestamp"])
    daily = (
        pd.DataFrame({"customer_id": transactions["customer_id"], "day": day})
        .loc[day <= obs_end]
        .drop_duplicates()
        .sort_values(["customer_id", "day"])
    )
    first = daily.groupby("customer_id")["day"].transform("min")
    cohort = daily[first <= cal_end]
    first = first[first <= cal_end]
    repeats = cohort[cohort["day"] > first]
    start = first.min()
    # Weeks counted from the first purchase day; the last week may be partial.
    n_weeks = (obs_end - start).days // 7 + 1
    bin_ends = start + pd.to_timedelta(7 * np.arange(1, n_weeks + 1), unit="D")
    bin_ends = bin_ends.where(
        bin_ends <= obs_end + pd.Timedelta(days=1), obs_end + pd.Timedelta(days=1)
    )
    week_of = ((repeats["day"] - start).dt.days // 7).to_numpy()
    actual = np.bincount(week_of, minlength=n_weeks)
    starts = first.groupby(cohort["customer_id"]).first().value_counts()  # customers per first day
    unit = DAYS_PER_UNIT[model.freq]
    cumulative = np.zeros(n_weeks)
    for first_day, n in starts.items():
        age = ((bin_ends - first_day).days.to_numpy() / unit).clip(min=0)
        cumulative += n * model.expected_population_purchases(age)
    out = pd.DataFrame(
        {
            "week_end": bin_ends - pd.Timedelta(days=1),
            "days": np.diff((bin_ends - start).days.to_numpy(), prepend=0),
            "actual": actual,
            "expected": np.diff(cumulative, prepend=0.0),
            "cumulative_actual": np.cumsum(actual),
            "cumulative_expected": cumulative,
        }
    )
    out["period"] = np.where(out["week_end"] <= cal_end, "calibration", "holdout")
    out.attrs["calibration_end"] = str(cal_end.date())
    return out


def compare_models(
    ch: pd.DataFrame, freq: str = "W", models: tuple[str, ...] = ("bgnbd", "pnbd", "mbgnbd")
) -> pd.DataFrame:
    """Fit each purchase model on the calibration part and score it on the holdout.

    Returns one row per model: log-likelihood, AIC, BIC and the holdout errors; a model that
    cannot be fitted gets a row with its ``error``.
    """
    from ..errors import ClmError
    from ..rfm import calibration_part
    from . import MODELS

    cal = calibration_part(ch)
    rows = []
    for key in models:
        try:
            m = MODELS[key](freq=freq).fit(cal)
        except ClmError as err:  # one model failing is a finding, not the end of the comparison
            rows.append({"model": MODELS[key].name, "key": key, "error": str(err)})
            continue
        rows.append(
            {
                "model": m.name,
                "key": key,
                "log_likelihood": m.log_likelihood_,
                "parameters": len(m.params_),
                "aic": m.aic_,
                "bic": m.bic_,
                **holdout_errors(m, ch),
            }
        )
    return pd.DataFrame(rows).set_index("model")
