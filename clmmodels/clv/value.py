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
    clv, _ = clv_and_purchases(purchases, spend, rfm, horizon_months, discount_rate, expected_spend)
    return clv


def clv_and_purchases(
    purchases: BTYDModel,
    spend: GammaGammaModel,
    rfm: pd.DataFrame,
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    expected_spend: pd.Series | None = None,
) -> tuple[pd.Series, pd.Series]:
    """:func:`predicted_clv` and the expected purchases over the whole horizon, which the
    CLV's monthly sums end with: one pass over the distinct histories gives both."""
    if int(horizon_months) != horizon_months or horizon_months < 1:
        raise ClmError(f"horizon_months must be a whole number >= 1, got {horizon_months}")
    if not 0 <= discount_rate < 1:
        raise ClmError(f"discount_rate is monthly, in [0, 1); got {discount_rate}")
    value = expected_spend if expected_spend is not None else spend.expected_spend(rfm)
    purchases._check_fitted()
    months = np.arange(1, int(horizon_months) + 1)
    x, tx, T = purchases._arrays(rfm)
    cumulative, codes = purchases._expected_purchases_by_history(
        x, tx, T, months * months_to_units(1, purchases.freq)
    )
    in_month = np.diff(cumulative, axis=1, prepend=0.0)
    per_purchase_value = in_month @ (1 + discount_rate) ** -months.astype(float)
    clv = per_purchase_value[codes] * value.to_numpy()
    expected = cumulative[codes, -1]
    return (
        purchases._finite(clv, rfm, "clv"),
        purchases._finite(expected, rfm, "expected_purchases"),
    )
