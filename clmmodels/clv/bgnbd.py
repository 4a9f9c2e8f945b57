"""BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases while alive, dropout after a purchase."""

from __future__ import annotations

import numpy as np
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
    lifetimes_fitter = "BetaGeoFitter"

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
        # The "alive" branch depends on (x, T) only and the "dropped" one on (x, recency) only:
        # each is computed on its few distinct pairs, so a likelihood evaluation costs a handful
        # of passes over the rows (gathers, logaddexp, bincounts) and no special function.
        ux, ix = np.unique(x, return_inverse=True)
        codes_a, first_a = distinct_rows(x, T)
        codes_d, first_d = distinct_rows(x, tx)
        xa, Ta = x[first_a], T[first_a]
        xd, txd = x[first_d], tx[first_d]
        repeat_d = xd > 0

        def parts(params):
            r, alpha, a, b = params
            per_x = (
                gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
                + betaln(a, b + ux) - betaln(a, b)
            )  # fmt: skip
            alive = -(r + xa) * np.log(alpha + Ta)
            with np.errstate(divide="ignore", invalid="ignore"):
                dropped = np.where(
                    repeat_d,
                    np.log(a) - np.log(b + xd - 1) - (r + xd) * np.log(alpha + txd),
                    -np.inf,
                )
            alive_rows, dropped_rows = alive[codes_a], dropped[codes_d]
            mix = np.logaddexp(alive_rows, dropped_rows)
            return per_x, mix, dropped_rows

        def loglik(params):
            per_x, mix, _ = parts(params)
            return per_x[ix] + mix

        def value_and_grad(params, w):
            # Gradient of the weighted total; `share` is the weight of the dropped-out branch,
            # summed per distinct pair of each branch.
            r, alpha, a, b = params
            per_x, mix, dropped_rows = parts(params)
            wx = np.bincount(ix, weights=w, minlength=ux.size)
            w_share = w * np.exp(dropped_rows - mix)
            share_d = np.bincount(codes_d, weights=w_share, minlength=xd.size)
            stay_a = np.bincount(codes_a, weights=w - w_share, minlength=xa.size)
            log_aT, log_atx = np.log(alpha + Ta), np.log(alpha + txd)
            g_r = wx @ (digamma(r + ux) - digamma(r) + np.log(alpha))
            g_r -= stay_a @ log_aT + share_d @ log_atx
            g_alpha = wx.sum() * r / alpha
            g_alpha -= stay_a @ ((r + xa) / (alpha + Ta)) + share_d @ ((r + xd) / (alpha + txd))
            g_a = wx @ (digamma(a + b) - digamma(a + b + ux)) + share_d.sum() / a
            g_b = wx @ (digamma(b + ux) - digamma(a + b + ux) - digamma(b) + digamma(a + b))
            with np.errstate(divide="ignore", invalid="ignore"):
                g_b -= share_d @ np.where(repeat_d, 1 / (b + xd - 1), 0.0)
            return float(wx @ per_x + w @ mix), np.array([g_r, g_alpha, g_a, g_b])

        loglik.value_and_grad = value_and_grad
        return loglik

    def _conditional_expected_purchases(self, t, x, tx, T):
        # Fader, Hardie & Lee (2005), eq. (10), as lifetimes computes it, for all horizons at
        # once; the hypergeometric part depends on (x, T) only: once per distinct pair.
        r, alpha, a, b = self.params_
        t = np.asarray(t, dtype=float)[None, :]
        codes, first = distinct_rows(x, T)
        ux, uT = x[first][:, None], T[first][:, None]
        z = t / (alpha + uT + t)
        head = (a + b + ux - 1) / (a - 1)
        tail = 1 - ((alpha + uT) / (alpha + uT + t)) ** (r + ux) * hyp2f1(
            r + ux, b + ux, a + b + ux - 1, z
        )
        return (head * tail)[codes] * self._p_alive(x, tx, T)[:, None]

    def _p_alive(self, x, tx, T):
        # Fader, Hardie & Lee (2005), eq. (13); no repeat purchase means no dropout yet.
        r, alpha, a, b = self.params_
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x)
        return np.where(x > 0, 1 / (1 + odds), 1.0)

    def _p_no_purchase(self, t, x, tx, T):
        return p_no_purchase_bg_type(self, t, x, tx, T)

    def simulate_repeat_counts(self, T, rng):
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
    alive = np.asarray(model._p_alive(x, tx, T))
    return (1 - alive) + alive * ((alpha + T) / (alpha + T + t)) ** (r + x)
