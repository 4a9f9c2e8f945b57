"""BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases while alive, dropout after a purchase."""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, exprel, hyp2f1

from ..sums import dot
from .base import BTYDModel, distinct_rows
from .special import digamma_rising, log_rising


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
        alive = bg_type_alive(r, alpha, x, T)
        dropped = bg_type_dropped(r, alpha, a, b, x, tx, c_shift=-1.0)
        return bg_type_common(r, a, b, x, c_shift=-1.0) + np.logaddexp(alive, dropped)

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
            per_x = bg_type_common(r, a, b, ux, c_shift=-1.0)
            alive = bg_type_alive(r, alpha, xa, Ta)
            dropped = bg_type_dropped(r, alpha, a, b, xd, txd, c_shift=-1.0)
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
            g_r = dot(wx, digamma_rising(r, ux))
            g_r -= dot(stay_a, np.log1p(Ta / alpha)) + dot(share_d, np.log1p(txd / alpha))
            # r / alpha - (r + x) / (alpha + t) = (r / alpha) t / (alpha + t) - x / (alpha + t)
            g_alpha = dot(stay_a, ((r / alpha) * Ta - xa) / (alpha + Ta))
            g_alpha += dot(share_d, ((r / alpha) * txd - xd) / (alpha + txd))
            g_a = -dot(wx, digamma_rising(a + b, ux)) + share_d.sum() / a
            g_b = dot(wx, digamma_rising(b, ux) - digamma_rising(a + b, ux))
            with np.errstate(divide="ignore", invalid="ignore"):
                g_b -= dot(share_d, np.where(repeat_d, 1 / (b + xd - 1), 0.0))
            return dot(wx, per_x) + dot(w, mix), np.array([g_r, g_alpha, g_a, g_b])

        loglik.value_and_grad = value_and_grad
        return loglik

    def _conditional_expected_purchases(self, t, x, tx, T):
        # Fader, Hardie & Lee (2005), eq. (10), in the stable form of expected_if_alive.
        return bg_type_expected(self, t, x, tx, T, c_shift=-1.0)

    def _log_odds_dropped(self, x, tx, T) -> np.ndarray:
        """log(P(dropped out) / P(alive)) at the end of each history (Fader, Hardie & Lee
        2005, eq. 13); -inf without repeat purchases, which leave no chance to drop out."""
        r, alpha, a, b = self.params_
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.log(a) - np.log(b + x - 1) + (r + x) * np.log1p((T - tx) / (alpha + tx))
        return np.where(x > 0, odds, -np.inf)

    def _p_alive(self, x, tx, T):
        return np.exp(-np.logaddexp(0.0, self._log_odds_dropped(x, tx, T)))

    def _p_no_purchase(self, t, x, tx, T):
        return p_no_purchase_bg_type(self, t, x, tx, T)

    def _fallback_row(self, what, t, x, tx, T):
        return bg_type_fallback(self, what, t, x, tx, T, c_shift=-1.0)

    def simulate_repeat_counts(self, T, rng):
        r, alpha, a, b = self.params_
        lam = rng.gamma(r, 1 / alpha, T.size)
        drop = rng.beta(a, b, T.size)
        return np.minimum(rng.geometric(drop), rng.poisson(lam * T))  # dropout after K-th repeat


# The log-likelihood of the BG-type models (Fader, Hardie & Lee 2005, eq. 6; MBG/NBD:
# Batislam et al. 2007), in three terms, each on the distinct values it depends on:
# common + logaddexp(alive, dropped). ``c_shift`` is -1 for BG/NBD (dropout only after a repeat
# purchase) and 0 for MBG/NBD (after the first too), as in bg_type_expected. The powers of the
# scales are cancelled in closed form (r log alpha - (r + x) log(alpha + t) as
# -r log1p(t / alpha) - x log(alpha + t)), and log B(a, b + x + 1 + c_shift) - log B(a, b) is
# a difference of rising factorials: exact where r and alpha, or a and b, run to infinity
# (purchase rates or dropout that hardly vary).
def bg_type_common(r: float, a: float, b: float, x: np.ndarray, c_shift: float) -> np.ndarray:
    """The term of the purchases: log Gamma(r + x) / Gamma(r) B(a, b + x') / B(a, b)."""
    shifted = x + 1 + c_shift
    return log_rising(r, x) + log_rising(b, shifted) - log_rising(a + b, shifted)


def bg_type_alive(r: float, alpha: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The branch of a customer alive at T (the common term apart)."""
    return -r * np.log1p(T / alpha) - x * np.log(alpha + T)


def bg_type_dropped(r, alpha, a, b, x: np.ndarray, tx: np.ndarray, c_shift: float) -> np.ndarray:
    """The branch of a customer who dropped out after the last purchase; -inf where that
    cannot be (BG/NBD without a repeat purchase)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = (
            np.log(a) - np.log(b + x + c_shift)
            - r * np.log1p(tx / alpha) - x * np.log(alpha + tx)
        )  # fmt: skip
    return dropped if c_shift == 0 else np.where(x > 0, dropped, -np.inf)


def p_no_purchase_bg_type(model: BTYDModel, t, x, tx, T):
    """P(no purchase in (T, T + t]) where dropout happens only right after a purchase.

    No purchase then means dropped out already, or alive with no Poisson event in t, where
    ``lambda | alive ~ Gamma(r + x, alpha + T)``. Holds for BG/NBD and MBG/NBD alike. Both
    probabilities come from the log-odds of dropout, so neither is ``1 - (1 - tiny)``.
    """
    r, alpha = model.params_["r"], model.params_["alpha"]
    odds = model._log_odds_dropped(x, tx, T)
    norm = np.logaddexp(0.0, odds)
    quiet = -(r + x) * np.log1p(t / (alpha + T))  # log P(no event in t | alive)
    return np.exp(odds - norm) + np.exp(quiet - norm)


#: Most terms the series of :func:`expected_if_alive` may take; beyond, lifetimes' form.
MAX_TERMS = 2_000


def expected_if_alive(
    r: float, alpha: float, a: float, c: np.ndarray, x: np.ndarray, T: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """E[purchases in (T, T + t] | alive at T] of the BG-type models, and where it converged.

    The textbook form, ``c / (a - 1) * (1 - ((alpha + T) / (alpha + T + t))^(r + x)
    2F1(r + x, c - (a - 1); c; t / (alpha + T + t)))`` with ``c = a + b + x - 1`` (BG/NBD) or
    ``a + b + x`` (MBG/NBD), multiplies a power that underflows by a 2F1 that overflows once
    ``x`` is in the hundreds. Both Pfaff transformations turn it into
    ``(1 + t / (alpha + T))^(1 - a) 2F1(a - 1, d; c; u)`` with ``d = c - r - x`` and
    ``u = t / (alpha + T + t)``: small first parameters, so the series converges fast (the
    faster the larger ``x``). Dividing ``a - 1`` out of it and of the power exactly gives
    ``c (L exprel(-(a - 1) L) - (1 + t / (alpha + T))^(1 - a) S)``, ``L = log(1 + t /
    (alpha + T))`` and ``S = sum_{n >= 1} (a)_{n-1} (d)_n / ((c)_n n!) u^n``, which holds
    at ``a = 1`` too.

    Parameters
    ----------
    c, x, T
        One value per history (1-d, same length).
    t
        Horizons (1-d).

    Returns
    -------
    tuple of numpy.ndarray
        The expectation, one row per history and one column per horizon, and a boolean
        array of the same shape, False where the series had not converged in
        :data:`MAX_TERMS` terms (``u`` near 1 and small ``c``: long horizons after short
        histories).
    """
    B = a - 1
    c, d, aT = c[:, None], (c - r - x)[:, None], (alpha + T)[:, None]
    t = np.asarray(t, dtype=float)[None, :]
    L = np.log1p(t / aT)
    u = np.broadcast_to(t / (aT + t), (len(c), t.shape[1]))
    c, d = np.broadcast_to(c, u.shape), np.broadcast_to(d, u.shape)
    term = d * u / c
    total = term.copy()
    active = np.flatnonzero(np.abs(term) > 1e-17 * np.abs(total))
    flat = {
        k: v.ravel() for k, v in (("term", term), ("total", total), ("c", c), ("d", d), ("u", u))
    }
    n = 1
    while active.size and n < MAX_TERMS:
        tm = flat["term"][active] * (B + n) * (flat["d"][active] + n) * flat["u"][active]
        tm /= (flat["c"][active] + n) * (n + 1)
        flat["term"][active] = tm
        flat["total"][active] += tm
        active = active[np.abs(tm) > 1e-17 * np.abs(flat["total"][active])]
        n += 1
    converged = np.ones(u.size, dtype=bool)
    converged[active] = False
    S = flat["total"].reshape(u.shape)
    value = c * (L * exprel(-B * L) - np.exp(-B * L) * S)
    return value, converged.reshape(u.shape)


def bg_type_expected(model: BTYDModel, t, x, tx, T, c_shift: float) -> np.ndarray:
    """E[purchases in (T, T + t] | history] of BG/NBD (``c_shift = -1``) and MBG/NBD
    (``c_shift = 0``): :func:`expected_if_alive` per distinct (x, T), times P(alive).

    Where the series does not converge, lifetimes' textbook form (finite there: small ``x``);
    the base class scores whatever is still not finite by its fallback.
    """
    r, alpha, a, b = model.params_
    t = np.asarray(t, dtype=float)
    codes, first = distinct_rows(x, T)
    ux, uT = x[first], T[first]
    c = a + b + ux + c_shift
    value, ok = expected_if_alive(r, alpha, a, c, ux, uT, t)
    if not ok.all():
        rows, cols = np.nonzero(~ok)
        tk, xk, Tk, ck = t[cols], ux[rows], uT[rows], c[rows]
        z = tk / (alpha + Tk + tk)
        value[rows, cols] = (ck / (a - 1)) * (
            1 - ((alpha + Tk) / (alpha + Tk + tk)) ** (r + xk) * hyp2f1(r + xk, ck - a + 1, ck, z)
        )
    return value[codes] * model._p_alive(x, tx, T)[:, None]


def bg_type_fallback(
    model: BTYDModel, what: str, t: np.ndarray, x: float, tx: float, T: float, c_shift: float
) -> np.ndarray:
    """The fallback of the BG-type models for one history (see ``BTYDModel._fallback_row``).

    P(alive) and P(no purchase) come from the log-odds of dropout, which are finite wherever
    the parameters are. The expectation if alive is the integral over the dropout probability
    ``p ~ Beta(a, c - a + 1)`` (the posterior given survival of ``x`` purchases) of
    ``(1 - (1 + p t / (alpha + T))^-(r + x)) / p`` (Poisson purchases at rate
    ``lambda ~ Gamma(r + x, alpha + T)``, each followed by dropout with probability ``p``),
    integrated by :func:`scipy.integrate.quad` over ``log p``, where the posterior is a
    smooth bump, whatever ``x``.
    """
    from scipy.integrate import quad
    from scipy.special import expit

    r, alpha, a, b = model.params_
    odds = float(model._log_odds_dropped(np.array([x]), np.array([tx]), np.array([T]))[0])
    alive = float(expit(-odds))
    if what == "p_alive":
        return np.array([alive])
    if what == "p_no_purchase":
        return np.array([expit(odds) + alive * np.exp(-(r + x) * np.log1p(t[0] / (alpha + T)))])
    shape2 = b + x + 1 + c_shift  # c - a + 1
    norm = betaln(a, shape2)
    centre = np.log(a / (a + shape2))

    def integrand(v: float, tk: float) -> float:
        p = np.exp(v)
        log_density = a * v + (shape2 - 1) * np.log1p(-p) - norm  # times dp/dv = p
        return np.exp(log_density) * -np.expm1(-(r + x) * np.log1p(p * tk / (alpha + T))) / p

    lower = centre - 60 / a - 10  # the posterior's left tail falls like p^a
    out = [quad(integrand, lower, 0.0, args=(tk,), points=[centre], limit=200)[0] for tk in t]
    return alive * np.asarray(out)
