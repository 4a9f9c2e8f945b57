"""Discounted customer lifetime value from a purchase model and a spend model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ClmError
from ..timeunits import months_to_units
from .base import BTYDModel
from .gamma_gamma import GammaGammaModel


def predicted_clv(
    purchases: BTYDModel,
    spend: GammaGammaModel,
    rfm: pd.DataFrame,
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    expected_spend: pd.Series | None = None,
) -> pd.Series:
    """Expected discounted value of each customer's purchases in the next ``horizon_months``.

    ``sum over months m = 1..H of E[purchases in month m] * E[spend per purchase] / (1 + d)^m``,
    with a month of 365.25 / 12 days whatever the model's unit, and ``d`` the monthly discount
    rate (0.01 is about 12.7% a year).

    Examples
    --------
    >>> from clmmodels import load_dataset, rfm_summary
    >>> from clmmodels.clv import BetaGeoModel, GammaGammaModel
    >>> rfm = rfm_summary(load_dataset("cdnow_sample").transactions, "1997-09-30")
    >>> clv = predicted_clv(BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm), rfm)
    >>> bool((clv >= 0).all())
    True
    """
    value = expected_spend if expected_spend is not None else spend.expected_spend(rfm)
    discounted, _ = discounted_purchases(purchases, rfm, horizon_months, discount_rate)
    return purchases.checked_finite(discounted.to_numpy() * value.to_numpy(), rfm, "clv")


def discounted_purchases(
    purchases: BTYDModel, rfm: pd.DataFrame, horizon_months: int = 12, discount_rate: float = 0.01
) -> tuple[pd.Series, pd.Series]:
    """Each customer's expected purchases in months 1..H, discounted and summed (the CLV per
    unit of spend), and the expected purchases over the whole horizon, which the monthly sums
    end with: one pass over the distinct histories gives both."""
    discounted, expected, _ = discounted_purchases_flagged(
        purchases, rfm, horizon_months, discount_rate
    )
    return discounted, expected


def discounted_purchases_flagged(
    purchases: BTYDModel, rfm: pd.DataFrame, horizon_months: int = 12, discount_rate: float = 0.01
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """:func:`discounted_purchases`, and which customers were scored by the purchase model's
    fallback (numerical integration where the closed form is not finite)."""
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ClmError(f"horizon_months must be a whole number >= 1, got {horizon_months}")
    if not 0 <= discount_rate < 1:
        raise ClmError(f"discount_rate is monthly, in [0, 1); got {discount_rate}")
    purchases.check_fitted()
    months = np.arange(1, int(horizon_months) + 1)
    x, tx, T = purchases.history_arrays(rfm)
    cumulative, codes, flagged = purchases.expected_purchases_by_history_flagged(
        x, tx, T, months * months_to_units(1, purchases.freq)
    )
    in_month = np.diff(cumulative, axis=1, prepend=0.0)
    per_history = in_month @ (1 + discount_rate) ** -months.astype(float)
    return (
        purchases.checked_finite(per_history[codes], rfm, "discounted_purchases"),
        purchases.checked_finite(cumulative[codes, -1], rfm, "expected_purchases"),
        flagged[codes],
    )
