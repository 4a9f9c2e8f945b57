"""BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases while alive, dropout after a purchase."""

from __future__ import annotations

import numpy as np
from lifetimes import BetaGeoFitter
from scipy.special import betaln, digamma, gammaln, hyp2f1

from .base import BTYDModel, distinct_rows


class BetaGeoModel(BTYDModel):
    """The BG/NBD model.

    Purchase rates ``lambda ~ Gamma(r, alpha)``; after each repeat purchase a customer drops
    out with probability ``p ~ Beta(a, b)``.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> model = BetaGeoModel().fit_transactions(tx, "1997-09-30")
    >>> model.params_.round(3).to_dict()
    {'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}
    >>> round(model.log_likelihood_, 1)
    -9582.4
    """

    name = "BG/NBD"
    param_names = ("r", "alpha", "a", "b")
    lifetimes_fitter = BetaGeoFitter

    @staticmethod
    def _loglik(params, x, tx, T):
        r, alpha, a, b = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
        alive = -(r + x) * np.log(alpha + T)
        with np.errstate(divide="ignore", invalid="ignore"):
            dropped = np.where(
                x > 0, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + tx), -np.inf
            )
        return common + np.logaddexp(alive, dropped)

    def _make_loglik(self, x, tx, T):
        # Special functions of x and logs of T and recency on their few distinct values only.
        ux, ix = np.unique(x, return_inverse=True)
        uT, iT = np.unique(T, return_inverse=True)
        utx, itx = np.unique(tx, return_inverse=True)
        repeat = x > 0

        def parts(params):
            r, alpha, a, b = params
            per_x = (
                gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
                + betaln(a, b + ux) - betaln(a, b)
            )  # fmt: skip
            log_aT, log_atx = np.log(alpha + uT)[iT], np.log(alpha + utx)[itx]
            alive = -(r + x) * log_aT
            with np.errstate(divide="ignore", invalid="ignore"):
                drop_x = np.log(a) - np.log(b + ux - 1)
                dropped = np.where(repeat, drop_x[ix] - (r + x) * log_atx, -np.inf)
            mix = np.logaddexp(alive, dropped)
            return per_x, mix, dropped, log_aT, log_atx

        def loglik(params):
            per_x, mix, *_ = parts(params)
            return per_x[ix] + mix

        def value_and_grad(params, w):
            # Gradient of the weighted total; `share` is the weight of the dropped-out branch.
            r, alpha, a, b = params
            per_x, mix, dropped, log_aT, log_atx = parts(params)
            wx = np.bincount(ix, weights=w, minlength=ux.size)
            share = np.exp(dropped - mix)
            stay = 1 - share
            rx = r + x
            g_r = wx @ (digamma(r + ux) - digamma(r) + np.log(alpha))
            g_r -= w @ (stay * log_aT + share * log_atx)
            g_alpha = wx.sum() * r / alpha
            g_alpha -= w @ (rx * (stay / (alpha + uT[iT]) + share / (alpha + utx[itx])))
            g_a = wx @ (digamma(a + b) - digamma(a + b + ux)) + (w @ share) / a
            g_b = wx @ (digamma(b + ux) - digamma(a + b + ux) - digamma(b) + digamma(a + b))
            with np.errstate(divide="ignore", invalid="ignore"):
                g_b -= w @ np.where(repeat, share / (b + x - 1), 0.0)
            return float(wx @ per_x + w @ mix), np.array([g_r, g_alpha, g_a, g_b])

        loglik.value_and_grad = value_and_grad
        return loglik

    def _conditional_expected_purchases(self, t, x, tx, T):
        # Fader, Hardie & Lee (2005), eq. (10), as lifetimes computes it; the hypergeometric
        # part depends on (x, T) only, so it is evaluated once per distinct pair.
        r, alpha, a, b = self.params_
        codes, first = distinct_rows(x, T)
        ux, uT = x[first], T[first]
        z = t / (alpha + uT + t)
        head = (a + b + ux - 1) / (a - 1)
        tail = 1 - ((alpha + uT) / (alpha + uT + t)) ** (r + ux) * hyp2f1(
            r + ux, b + ux, a + b + ux - 1, z
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            alive_odds = np.where(
                x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x), 0.0
            )
        return (head * tail)[codes] / (1 + alive_odds)

    def _p_no_purchase(self, t, x, tx, T):
        return p_no_purchase_bg_type(self, t, x, tx, T)

    def _simulate_repeat_counts(self, T, rng):
        r, alpha, a, b = self.params_
        lam = rng.gamma(r, 1 / alpha, T.size)
        drop = rng.beta(a, b, T.size)
        return np.minimum(rng.geometric(drop), rng.poisson(lam * T))  # dropout after K-th repeat


def p_no_purchase_bg_type(model: BTYDModel, t, x, tx, T):
    """P(no purchase in (T, T + t]) where dropout happens only right after a purchase.

    No purchase then means dropped out already, or alive with no Poisson event in t, where
    ``lambda | alive ~ Gamma(r + x, alpha + T)``. Holds for BG/NBD and MBG/NBD alike.
    """
    r, alpha = model.params_["r"], model.params_["alpha"]
    alive = np.asarray(model._lifetimes().conditional_probability_alive(x, tx, T))
    return (1 - alive) + alive * ((alpha + T) / (alpha + T + t)) ** (r + x)
