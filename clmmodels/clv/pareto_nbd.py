"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases, exponential lifetimes."""

from __future__ import annotations

import numpy as np

from .base import BTYDModel


class ParetoNBDModel(BTYDModel):
    """The Pareto/NBD model: purchase rates ``lambda ~ Gamma(r, alpha)`` and dropout rates
    ``mu ~ Gamma(s, beta)``, dropout at any time.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> model = ParetoNBDModel().fit_transactions(tx, "1997-09-30")
    >>> model.params_.round(3).to_dict()
    {'r': 0.553, 'alpha': 10.578, 's': 0.606, 'beta': 11.669}
    >>> round(model.log_likelihood_, 1)
    -9595.0
    """

    name = "Pareto/NBD"
    param_names = ("r", "alpha", "s", "beta")
    lifetimes_fitter = "ParetoNBDFitter"
    dropout_shape = "s"

    @staticmethod
    def _loglik(params, x, tx, T):
        # lifetimes' implementation of Hardie's note 009, eq. (18), in the data's own units.
        from lifetimes import ParetoNBDFitter

        return ParetoNBDFitter._conditional_log_likelihood(tuple(params), x, tx, T)

    def _x0(self, x, T, w):
        scale = float(np.average(T, weights=w)) or 1.0
        return np.array([1.0, scale, 1.0, scale])

    def _p_no_purchase(self, t, x, tx, T):
        # Hardie's note 028, eq. (16), with n = 0; lifetimes' formula is vectorised in x, tx, T.
        return self._lifetimes().conditional_probability_of_n_purchases_up_to_time(0, t, x, tx, T)

    def simulate_repeat_counts(self, T, rng):
        r, alpha, s, beta = self.params_
        lam = rng.gamma(r, 1 / alpha, T.size)
        lifetime = rng.exponential(1 / rng.gamma(s, 1 / beta, T.size))
        return rng.poisson(lam * np.minimum(lifetime, T))
