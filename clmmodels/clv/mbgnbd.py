"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD with dropout possible at time zero."""

from __future__ import annotations

import numpy as np

from .base import BTYDModel
from .bgnbd import bg_type_expected, bg_type_fallback, p_no_purchase_bg_type
from .special import log_rising


class ModifiedBetaGeoModel(BTYDModel):
    """The MBG/NBD model: like BG/NBD, but a customer may drop out right after the first
    purchase too, so customers without repeat purchases are not all 'alive'.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> ModifiedBetaGeoModel().fit_transactions(tx, "1997-09-30").params_.round(3).to_dict()
    {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614}
    """

    name = "MBG/NBD"
    param_names = ("r", "alpha", "a", "b")
    lifetimes_fitter = "ModifiedBetaGeoFitter"

    @staticmethod
    def _loglik(params, x, tx, T):
        # the powers of alpha cancelled in closed form, as in BetaGeoModel._loglik
        r, alpha, a, b = params
        common = log_rising(r, x) + log_rising(b, x + 1) - log_rising(a + b, x + 1)
        alive = -r * np.log1p(T / alpha) - x * np.log(alpha + T)
        dropped = np.log(a) - np.log(b + x) - r * np.log1p(tx / alpha) - x * np.log(alpha + tx)
        return common + np.logaddexp(alive, dropped)

    def _make_loglik(self, x, tx, T):
        ux, ix = np.unique(x, return_inverse=True)
        uT, iT = np.unique(T, return_inverse=True)
        utx, itx = np.unique(tx, return_inverse=True)

        def loglik(params):
            r, alpha, a, b = params
            per_x = log_rising(r, ux) + log_rising(b, ux + 1) - log_rising(a + b, ux + 1)
            alive = -r * np.log1p(uT / alpha)[iT] - x * np.log(alpha + uT)[iT]
            dropped = (
                (np.log(a) - np.log(b + ux))[ix]
                - r * np.log1p(utx / alpha)[itx] - x * np.log(alpha + utx)[itx]
            )  # fmt: skip
            return per_x[ix] + np.logaddexp(alive, dropped)

        return loglik

    def _log_odds_dropped(self, x, tx, T) -> np.ndarray:
        """log(P(dropped out) / P(alive)) at the end of each history (Batislam et al. 2007):
        dropout is possible after every purchase, the first included."""
        r, alpha, a, b = self.params_
        return np.log(a) - np.log(b + x) + (r + x) * np.log1p((T - tx) / (alpha + tx))

    def _p_alive(self, x, tx, T):
        return np.exp(-np.logaddexp(0.0, self._log_odds_dropped(x, tx, T)))

    def _conditional_expected_purchases(self, t, x, tx, T):
        # lifetimes' formula (Batislam et al. 2007), in the stable form of expected_if_alive
        return bg_type_expected(self, t, x, tx, T, c_shift=0.0)

    def _p_no_purchase(self, t, x, tx, T):
        return p_no_purchase_bg_type(self, t, x, tx, T)

    def _fallback_row(self, what, t, x, tx, T):
        return bg_type_fallback(self, what, t, x, tx, T, c_shift=0.0)

    def simulate_repeat_counts(self, T, rng):
        r, alpha, a, b = self.params_
        lam = rng.gamma(r, 1 / alpha, T.size)
        drop = rng.beta(a, b, T.size)
        return np.minimum(rng.geometric(drop) - 1, rng.poisson(lam * T))  # may drop at time 0
