"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD with dropout possible at time zero."""

from __future__ import annotations

import numpy as np

from .base import BTYDModel, distinct_rows
from .bgnbd import (
    bg_type_alive,
    bg_type_common,
    bg_type_dropped,
    bg_type_expected,
    bg_type_fallback,
    p_no_purchase_bg_type,
)


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
        r, alpha, a, b = params
        alive = bg_type_alive(r, alpha, x, T)
        dropped = bg_type_dropped(r, alpha, a, b, x, tx, c_shift=0.0)
        return bg_type_common(r, a, b, x, c_shift=0.0) + np.logaddexp(alive, dropped)

    def _make_loglik(self, x, tx, T):
        # each term on the distinct values it depends on, as BetaGeoModel's
        ux, ix = np.unique(x, return_inverse=True)
        codes_a, first_a = distinct_rows(x, T)
        codes_d, first_d = distinct_rows(x, tx)

        def loglik(params):
            r, alpha, a, b = params
            alive = bg_type_alive(r, alpha, x[first_a], T[first_a])[codes_a]
            dropped = bg_type_dropped(r, alpha, a, b, x[first_d], tx[first_d], c_shift=0.0)
            per_x = bg_type_common(r, a, b, ux, c_shift=0.0)
            return per_x[ix] + np.logaddexp(alive, dropped[codes_d])

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
