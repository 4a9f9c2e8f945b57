"""Bootstrap intervals for the parameters, each customer's CLV and the total.

Customers are resampled with replacement (as multinomial weights on the fitted rows, which
is the same thing and much cheaper) and both models are refitted on every resample, warm-started
at the point estimate. Seeded: the same seed gives the same intervals, (1 - alpha) percentile
intervals at the models' ``alpha`` unless told otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ClmError
from .base import BTYDModel
from .estimates import check_alpha, percentile_interval
from .gamma_gamma import GammaGammaModel
from .value import predicted_clv


@dataclass
class BootstrapResult:
    """Parameter draws, per-customer CLV intervals and the total's interval, all (1 - alpha)
    percentile intervals."""

    params: pd.DataFrame  # one row per replicate
    clv_intervals: pd.DataFrame  # clv_lower, clv_upper per customer; attrs["alpha"]
    total: dict  # estimate, lower, upper
    alpha: float
    n_failed: int

    def param_intervals(self) -> pd.DataFrame:
        """Percentile intervals of every parameter: columns lower and upper, one row per
        parameter, the alpha in ``attrs["alpha"]``. A resample's NaN (a degenerate spend fit)
        is left out."""
        q = [self.alpha / 2, 1 - self.alpha / 2]
        out = self.params.quantile(q).T.set_axis(["lower", "upper"], axis=1)
        out.attrs["alpha"] = self.alpha
        return out


def bootstrap_clv(
    purchases: BTYDModel,
    spend: GammaGammaModel,
    rfm: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    alpha: float | None = None,
    progress: bool = True,
) -> BootstrapResult:
    """Bootstrap the fitted ``purchases`` and ``spend`` models over customers.

    Parameters
    ----------
    purchases, spend
        Fitted models; they are copied, never changed.
    n_boot
        Number of resamples.
    alpha
        The intervals are (1 - alpha) percentile intervals; by default the models' ``alpha``
        (so the one set on the models sets these too). Required when the two models differ.

    Returns
    -------
    BootstrapResult
        Memory grows with ``n_boot`` x customers (float32), about 0.8 GB for 200 x 1M.
    """
    if alpha is None:
        if purchases.alpha != spend.alpha:
            raise ClmError(
                f"the purchase model has alpha={purchases.alpha!r} and the spend model "
                f"alpha={spend.alpha!r}: pass the bootstrap's own alpha="
            )
        alpha = purchases.alpha
    alpha = check_alpha(alpha)
    if n_boot < 10:
        raise ClmError(f"n_boot must be at least 10 for percentile intervals, got {n_boot}")
    rng = np.random.default_rng(seed)
    n = len(rfm)
    point = predicted_clv(purchases, spend, rfm, horizon_months, discount_rate)
    draws = np.empty((n_boot, n), dtype=np.float32)
    rows, failed = [], 0
    for b in _progress(range(n_boot), progress):
        weights = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        try:
            p = copy.deepcopy(purchases).fit(
                rfm, weights=weights, init=purchases.params_.to_numpy(), standard_errors=False
            )
            init = None if spend.degenerate_ else spend.params_.to_numpy()
            s = copy.deepcopy(spend).fit(rfm, weights=weights, init=init, standard_errors=False)
        except ClmError:
            failed += 1  # a resample without enough repeat buyers: counted, not hidden
            draws[b] = np.nan
            continue
        draws[b] = predicted_clv(p, s, rfm, horizon_months, discount_rate).to_numpy()
        rows.append({**p.params_.to_dict(), **s.params_.add_prefix("gg_").to_dict()})
    draws = draws[~np.isnan(draws).any(axis=1)]  # failed resamples, counted in n_failed
    lo, hi = percentile_interval(draws, alpha)
    clv_intervals = pd.DataFrame({"clv_lower": lo, "clv_upper": hi}, index=rfm.index)
    clv_intervals.attrs["alpha"] = alpha
    total_lo, total_hi = percentile_interval(draws.sum(axis=1, dtype=float), alpha)
    return BootstrapResult(
        params=pd.DataFrame(rows),
        clv_intervals=clv_intervals,
        total={"estimate": float(point.sum()), "lower": float(total_lo), "upper": float(total_hi)},
        alpha=alpha,
        n_failed=failed,
    )


def _progress(steps: range, show: bool):
    """A progress bar only when asked: tqdm.auto warns in kernels without ipywidgets."""
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="bootstrap")
