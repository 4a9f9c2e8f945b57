"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import betaln

from ..errors import ClmError, ClmWarning
from ..sums import dot
from ..vocabulary import ALPHA
from .base import BOUNDARY, compress
from .estimates import FittedEstimates, check_alpha
from .mle import fit_mle, warm_start
from .special import digamma_rising

#: How far the fitted population mean spend per purchase (p * gamma / (q - 1)) may stray from
#: the observed mean of the customers' mean spend before the fit is called into question: on
#: CDNOW they agree to 0.3%; spend that grows with frequency (the model assumes it does not)
#: pulls them apart.
MEAN_SPEND_TOLERANCE = 0.2


class GammaGammaModel(FittedEstimates):
    """Average spend per purchase occasion: ``z ~ Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)``.

    Fitted on customers with at least one repeat purchase and a positive mean repeat spend;
    the others are counted in ``excluded_``. Scores every customer: one without repeat
    purchases gets the population mean.

    Parameters
    ----------
    tol
        Gradient tolerance of the optimiser.
    alpha
        Every interval the model reports is a (1 - alpha) interval: 0.05 gives 95% intervals.

    Examples
    --------
    >>> from clmmodels import load_dataset, rfm_summary
    >>> rfm = rfm_summary(load_dataset("cdnow_sample").transactions, "1997-09-30")
    >>> GammaGammaModel().fit(rfm).params_.round(2).to_dict()
    {'p': 6.25, 'q': 3.74, 'gamma': 15.44}
    """

    name = "Gamma-Gamma"
    param_names = ("p", "q", "gamma")

    def __init__(self, tol: float = 1e-8, alpha: float = ALPHA) -> None:
        self.tol = tol
        self.alpha = alpha

    @staticmethod
    def _loglik(params, x, m):
        # q log(gamma) + px log(m x) - (px + q) log(gamma + m x) with log1p, and the Gamma
        # functions as scipy's betaln (asymptotic where an argument is large): no difference
        # of large numbers where a fit runs p, q or gamma to its edge
        p, q, gamma = params
        px, mx = p * x, m * x
        return -betaln(px, q) - np.log(m) - px * np.log1p(gamma / mx) - q * np.log1p(mx / gamma)

    @classmethod
    def _make_loglik(cls, x: np.ndarray, m: np.ndarray):
        # Special functions depend on the frequency alone: computed on its few distinct values.
        # Of the rest, only log(gamma + m x) changes with the parameters row by row.
        ux, ix = np.unique(x, return_inverse=True)
        log_m, mx = np.log(m), m * x

        def loglik(params):
            return cls._loglik(params, x, m)

        def value_and_grad(params, w):
            # the terms of _loglik and their derivatives, in the same forms
            p, q, gamma = params
            wx = np.bincount(ix, weights=w, minlength=ux.size)
            pux = p * ux
            log_g, log_mx = np.log1p(gamma / mx), np.log1p(mx / gamma)
            xw = w * x
            value = (
                -dot(wx, betaln(pux, q)) - dot(w, log_m)
                - p * dot(xw, log_g) - q * dot(w, log_mx)
            )  # fmt: skip
            g_p = dot(wx * ux, digamma_rising(pux, q)) - dot(xw, log_g)
            g_q = dot(wx, digamma_rising(q, pux)) - dot(w, log_mx)
            # q / gamma - (p x + q) / (gamma + m x) as (q m x / gamma - p x) / (gamma + m x)
            g_gamma = dot(w, (q * mx / gamma - p * x) / (gamma + mx))
            return float(value), np.array([g_p, g_q, g_gamma])

        loglik.value_and_grad = value_and_grad
        return loglik

    def fit(
        self,
        rfm: pd.DataFrame,
        weights: np.ndarray | None = None,
        init: np.ndarray | None = None,
        standard_errors: bool = True,
    ) -> GammaGammaModel:
        """Fit on an RFM summary with ``frequency`` and ``monetary_value``.

        Returns
        -------
        self
        """
        check_alpha(self.alpha)
        for col in ("frequency", "monetary_value"):
            if col not in rfm.columns:
                raise ClmError(f"fitting Gamma-Gamma: the RFM summary lacks {col}")
        if weights is not None:  # a resample: customers drawn k times count k times
            w_all = np.asarray(weights, dtype=float)
            rfm = rfm.assign(_w=w_all)[w_all > 0]
        else:
            rfm = rfm.assign(_w=1.0)
        usable = (rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)
        w = rfm["_w"].to_numpy()  # customers, also when rows are compressed histories
        self.excluded_ = {
            "customers without repeat purchases": round(w[rfm["frequency"] == 0].sum()),
            "repeat customers whose repeat purchases total 0": round(
                w[(rfm["frequency"] > 0) & (rfm["monetary_value"] <= 0)].sum()
            ),
        }
        data = rfm.loc[usable]
        n_usable = round(float(data["_w"].sum()))  # customers, also when rows are compressed
        if n_usable < 2:
            raise ClmError(
                f"Gamma-Gamma needs repeat purchases of several customers to learn how spend "
                f"varies between them; {n_usable} customer(s) have a repeat purchase with spend"
            )
        # numpy arrays from here: numpy probing a Series hashes its (often huge) string index
        m, freq, w_data = (data[c].to_numpy(float) for c in ("monetary_value", "frequency", "_w"))
        self.spend_frequency_correlation_ = (
            float(np.corrcoef(freq, m)[0, 1]) if m.std() > 0 else 0.0
        )
        self.mean_spend_ = float(np.average(m, weights=freq * w_data))
        self.n_customers_ = n_usable
        if np.ptp(m) <= 1e-9 * max(1.0, abs(m.mean())):
            self._degenerate(
                "every repeat customer has the same mean spend, so spend shows no heterogeneity "
                "and the Gamma-Gamma optimum lies at the boundary (q -> infinity)"
            )
            return self
        rows = compress(data, ["frequency", "monetary_value"], w_data)
        x, mv, w = (rows[c].to_numpy(float) for c in ("frequency", "monetary_value", "weight"))
        x0 = np.array([1.0, 1.0, mv.mean()]) if init is None else np.asarray(init, dtype=float)
        result = fit_mle(
            self._make_loglik(x, mv), w, x0, tol=self.tol, covariance=standard_errors,
            warm=warm_start(self._make_loglik, w, x, mv),
        )  # fmt: skip
        inside = BOUNDARY[0] < result.params[1] < BOUNDARY[1]
        if result.budget_reached or not (result.converged and inside):
            self._degenerate(
                f"the Gamma-Gamma fit {result.message} without reaching the maximum "
                f"(q = {result.params[1]:.3g}, gradient {result.grad_norm:.2g})"
                if result.budget_reached and inside
                else "spend varies too little between customers for the Gamma-Gamma model: "
                f"its optimum lies at the boundary (q = {result.params[1]:.3g})"
            )
            return self
        self.degenerate_ = False
        self._store_estimates(result)
        warned = self._check_mean_spend(float(np.average(m, weights=w_data)))
        if not warned and abs(self.spend_frequency_correlation_) > 0.3:
            warnings.warn(
                f"Gamma-Gamma assumes spend does not depend on purchase frequency, but they "
                f"correlate at {self.spend_frequency_correlation_:.2f} in these data",
                ClmWarning,
                stacklevel=2,
            )
        return self

    def _check_mean_spend(self, observed: float) -> bool:
        """Compare the fit's population mean spend with the customers' observed mean, and
        flag parameters at the optimiser's boundary; both land in ``spend_check_``. True if
        it warned."""
        p, q, gamma = self.params_
        implied = gamma * p / (q - 1) if q > 1 else np.inf
        gap = implied / observed - 1 if observed > 0 else np.nan
        at_edge = [k for k, v in self.params_.items() if not BOUNDARY[0] < v < BOUNDARY[1]]
        self.spend_check_ = {
            "implied_mean_spend": float(implied),
            "observed_mean_spend": observed,
            "relative_gap": float(gap),
            "tolerance": MEAN_SPEND_TOLERANCE,
            "parameters_at_boundary": at_edge,
        }
        if at_edge or not abs(gap) <= MEAN_SPEND_TOLERANCE:
            edge = f"; {', '.join(at_edge)} ran to the optimiser's boundary" if at_edge else ""
            warnings.warn(
                f"Gamma-Gamma's mean spend per purchase ({implied:,.2f}) is {gap:+.0%} off the "
                f"customers' observed mean ({observed:,.2f}){edge}: the model does not describe "
                f"this spend (spend and frequency correlate at "
                f"{self.spend_frequency_correlation_:.2f}; the model assumes they do not). "
                "Fit it per segment of similar customers, or value spend at the observed mean.",
                ClmWarning,
                stacklevel=3,
            )
            return True
        return False

    def _degenerate(self, why: str) -> None:
        warnings.warn(
            f"{why}; expected spend is the observed mean spend ({self.mean_spend_:.2f}) "
            "for every customer",
            ClmWarning,
            stacklevel=3,
        )
        self.degenerate_ = True
        self.spend_check_ = {"degenerate": why}
        self.params_ = pd.Series(np.nan, index=list(self.param_names))
        self.standard_errors_ = self.params_.copy()
        self._store_intervals(self.params_, self.params_)
        self.log_likelihood_ = np.nan
        self.converged_ = False

    def expected_spend(self, rfm: pd.DataFrame) -> pd.Series:
        """Expected spend per future purchase occasion of each customer."""
        self.check_fitted()
        if self.degenerate_:
            return pd.Series(self.mean_spend_, index=rfm.index, name="expected_spend")
        p, q, gamma = self.params_
        x = rfm["frequency"].to_numpy(float)
        m = np.where(
            rfm["monetary_value"].to_numpy(float) > 0, rfm["monetary_value"].to_numpy(float), 0.0
        )
        # A customer whose repeat purchases total 0 carries no spend information: population mean.
        x = np.where(m > 0, x, 0.0)
        # Fader, Hardie & Lee (2005b), eq. (5): a weighted mean of the population mean spend
        # and the customer's own, weighted by how many repeat purchases the latter rests on.
        weight = p * x / (p * x + q - 1)
        values = (1 - weight) * gamma * p / (q - 1) + weight * m
        return pd.Series(values, index=rfm.index, name="expected_spend")
