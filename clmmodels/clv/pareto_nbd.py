"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases, exponential lifetimes.

Every quantity is computed in log space from one integral,

    I(y0, y1) = integral over (y0, y1) of (alpha + tau)^-p (beta + tau)^-q dtau,

which is the dropped-out part of the likelihood (Hardie's note 009 writes it as a difference of
two Gauss hypergeometric functions; the difference cancels when recency is near T and each
term overflows for frequent buyers, the failures of lifetimes' formula). The integral of a
positive function has neither problem; see :func:`log_integral`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import exprel

from ..sums import dot
from ..timeunits import UNIT_NAMES
from .base import BTYDModel, distinct_rows
from .special import digamma_rising, log_rising

#: Gauss-Legendre rule per panel of :func:`log_integral`, and the panel ends as fractions of
#: the interval: geometric, each panel ``_RATIO`` as wide as the next towards either end.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
_RATIO, _LEVELS = 1 / 8, 8
_HALF = 0.5 * _RATIO ** np.arange(_LEVELS + 1.0)
_FRACTIONS = np.concatenate([[1.0], 1 - _HALF[::-1][:-1], _HALF, [0.0]])
#: Rows of :func:`log_integral` computed together.
_BLOCK = 4096


def log_integral(
    alpha: float,
    beta: float,
    p: np.ndarray,
    q: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    moments: bool = False,
    relative: bool = False,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """``log I`` with ``I`` the integral of ``f(tau) = (alpha + tau)^-p (beta + tau)^-q`` over
    ``(y0, y1)`` (``-inf`` where ``y0 == y1``), elementwise; ``p + q > 1``.

    With ``M = max(alpha, beta)`` and ``k = p + q - 1``, the substitution
    ``u = ((M + y0) / (M + tau))^k`` turns ``I / f(y0)`` into ``(M + y0) / k`` times the
    integral over ``(u1, 1)`` of ``h(u) = (1 + c (1 - u^(1/k)))^-e``
    (``c = |alpha - beta| / (m + y0)``, ``m = min(alpha, beta)``, ``e`` the exponent of ``m``):
    the power-law decay, however steep (``p`` grows with the purchases), is taken out exactly,
    and ``h`` is smooth, at most 1 (at ``u = 1``, where the panels of the Gauss-Legendre rule
    are graded) and at least ``(1 + c)^-e``. No term of ``log(I / f(y0))`` grows with the
    exponents: where ``s`` and ``beta`` run to infinity together (dropout that hardly
    varies), ``log I`` is ``-(s + 1) log(beta + y0)`` plus a number of order one, and the
    callers cancel that power against their own in closed form (``log1p``), not by
    subtracting two numbers near 1e15.

    Parameters
    ----------
    alpha, beta
        The scale parameters (> 0).
    p, q
        The exponents; broadcast with ``y0`` and ``y1``.
    y0, y1
        The bounds, ``0 <= y0 <= y1``.
    moments
        Also return, under the normalised integrand, the means of ``log(1 + tau / alpha)``,
        ``log(1 + tau / beta)``, ``tau / (alpha + tau)`` and ``tau / (beta + tau)`` (what the
        derivatives of ``log I`` are made of, in forms that stay exact for large scales).
    relative
        Return ``log(I / f(y0))`` instead of ``log I``.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        ``log I`` (or ``log(I / f(y0))``), and with ``moments`` the four means.

    Examples
    --------
    >>> round(float(np.exp(log_integral(1.0, 1.0, 1.0, 1.0, 0.0, 1.0))), 12)  # 1/1 - 1/2
    0.5
    """
    p, q, y0, y1 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (p, q, y0, y1)))
    shape = p.shape
    rows = [v.ravel() for v in (p, q, y0, y1)]
    # a block of rows at a time: the nodes' temporaries (rows x 288) then stay in the cache
    parts = [
        _log_integral_rows(alpha, beta, *(v[i : i + _BLOCK, None] for v in rows), moments, relative)
        for i in range(0, max(len(rows[0]), 1), _BLOCK)
    ]
    out = [np.concatenate(column).reshape(shape) for column in zip(*parts, strict=True)]
    return (*out,) if moments else out[0]


def _log_integral_rows(alpha, beta, p, q, y0, y1, moments, relative) -> list[np.ndarray]:
    """:func:`log_integral` of rows given as columns ``(n, 1)``: its outputs, flat."""
    big, small = max(alpha, beta), min(alpha, beta)
    e = q if alpha >= beta else p  # the exponent of the smaller scale
    k = p + q - 1
    log_m0 = np.log(big + y0)
    # log u at tau = y1; u1 is 0 when the decay over (y0, y1) underflows, which the rule handles
    log_u1 = -k * np.log1p((y1 - y0) / (big + y0))
    width = -np.expm1(log_u1)
    # panel ends graded geometrically towards both ends of (u1, 1): towards 1, where h peaks
    # when the scales differ, and towards u1, near u = 0 when the decay over (y0, y1) is
    # steep, where u^(1/k) has an algebraic singularity; as fractions of the width from 1
    dist = width * _FRACTIONS  # (rows, panels + 1), decreasing
    lo, hi = dist[:, 1:], dist[:, :-1]
    half = (hi - lo) / 2
    dist = (lo + half)[:, :, None] + half[:, :, None] * _NODES  # (rows, panels, nodes)
    wts = (half[:, :, None] * _WEIGHTS).reshape(len(p), -1)
    dist = dist.reshape(len(p), -1)
    log_big = -np.log1p(-dist) / k  # log((M + tau) / (M + y0)) = -log(u) / k
    # log((m + tau) / (m + y0)) - log_big = log(1 + c (1 - u^(1/k))), with no 1 - z to round
    log_gap = np.log1p((big - small) / (small + y0) * -np.expm1(-log_big))
    log_h = -e * log_gap
    top = log_h.max(axis=1, keepdims=True)
    scaled = wts * np.exp(log_h - top)
    total = scaled.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_i = top + np.log(total) + log_m0 - np.log(k)  # log(I / f(y0))
    if not relative:
        log_i = log_i - p * np.log(alpha + y0) - q * np.log(beta + y0)
    log_i = np.where(y1 > y0, log_i, -np.inf)[:, 0]
    if not moments:
        return [log_i]
    with np.errstate(invalid="ignore"):  # 0 / 0 where y0 == y1: masked by the caller
        omega = scaled / total  # normalised weights of the integrand at the nodes
    # log(1 + tau / scale) = log(1 + y0 / scale) + log((scale + tau) / (scale + y0))
    log_small = log_big + log_gap
    log_a, log_b = (log_big, log_small) if alpha >= beta else (log_small, log_big)
    log_a = log_a + np.log1p(y0 / alpha)
    log_b = log_b + np.log1p(y0 / beta)
    means = [(omega * v).sum(axis=1) for v in (log_a, log_b, -np.expm1(-log_a), -np.expm1(-log_b))]
    return [log_i, *means]


def _alive_and_dropped(params, x, tx, T, moments: bool = False):
    """The two branches of the log-likelihood after ``log Gamma(r + x) - log Gamma(r)``:
    alive at T, ``r log alpha + s log beta - (r + x) log(alpha + T) - s log(beta + T)``, and
    dropped out in (tx, T), ``log s + r log alpha + s log beta + log I``; each with its powers
    of the scales cancelled in closed form (``log1p``), so that neither loses its digits where
    ``alpha`` or ``beta`` is large (Hardie's ``s log beta`` and ``s log(beta + T)`` are both
    near 1e15 at ``s = 1e14``). With ``moments``, the integral's means too."""
    r, alpha, s, beta = params
    alive = -r * np.log1p(T / alpha) - x * np.log(alpha + T) - s * np.log1p(T / beta)
    out = log_integral(alpha, beta, r + x, s + 1, tx, T, moments=moments, relative=True)
    log_r = out[0] if moments else out
    dropped = (
        np.log(s) + log_r - r * np.log1p(tx / alpha) - x * np.log(alpha + tx)
        - s * np.log1p(tx / beta) - np.log(beta + tx)
    )  # fmt: skip
    return (alive, dropped, out) if moments else (alive, dropped)


def pareto_loglik(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each customer's Pareto/NBD log-likelihood (Hardie's note 009, eq. 18), in log space.

    Examples
    --------
    >>> ll = pareto_loglik([0.553, 10.578, 0.606, 11.669], np.array([2.0]), np.array([30.4]),
    ...                    np.array([38.9]))
    >>> round(float(ll[0]), 4)  # as lifetimes gives
    -9.5554
    """
    alive, dropped = _alive_and_dropped(params, x, tx, T)
    return log_rising(params[0], x) + np.logaddexp(alive, dropped)


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

    @property
    def dropout_per(self) -> str:  # the base class's ClassVar, in this model's time unit
        return f"per {UNIT_NAMES[self.freq][:-1]}"

    def mean_dropout(self) -> float:
        """The mean dropout rate per time unit (``freq``), ``s / beta``.

        Examples
        --------
        >>> from clmmodels import load_dataset
        >>> tx = load_dataset("cdnow_sample").transactions
        >>> round(ParetoNBDModel().fit_transactions(tx, "1997-09-30").mean_dropout(), 4)
        0.052
        """
        self.check_fitted()
        return float(self.params_["s"] / self.params_["beta"])

    @staticmethod
    def _loglik(params, x, tx, T):
        return pareto_loglik(params, x, tx, T)

    def _make_loglik(self, x, tx, T):
        # Rows are (usually) distinct histories already; the common factor depends on x only.
        ux, ix = np.unique(x, return_inverse=True)

        def loglik(params):
            return pareto_loglik(params, x, tx, T)

        def value_and_grad(params, w):
            # d log L = pi d(alive) + (1 - pi) d(dropped), pi = P(alive | history); the
            # derivatives in the forms that stay exact for large scales (see log_integral)
            r, alpha, s, beta = params
            alive, dropped, (_, m_la, m_lb, m_ta, m_tb) = _alive_and_dropped(
                params, x, tx, T, moments=True
            )
            mix = np.logaddexp(alive, dropped)
            pi = np.exp(alive - mix)
            gone = 1 - pi
            wx = np.bincount(ix, weights=w, minlength=ux.size)
            value = dot(wx, log_rising(r, ux)) + dot(w, mix)
            with np.errstate(invalid="ignore"):
                m_la, m_lb, m_ta, m_tb = (
                    np.where(gone > 0, m, 0.0) for m in (m_la, m_lb, m_ta, m_tb)
                )
            wp, wg = w * pi, w * gone
            g_r = dot(wx, digamma_rising(r, ux))
            g_r -= dot(wp, np.log1p(T / alpha)) + dot(wg, m_la)
            # r / alpha - (r + x) / (alpha + tau) as (r / alpha) tau / (alpha + tau) - x / ...
            g_alpha = dot(wp, (r / alpha) * T / (alpha + T) - x / (alpha + T))
            g_alpha += dot(wg, (r / alpha) * m_ta - x * (1 - m_ta) / alpha)
            g_s = -dot(wp, np.log1p(T / beta)) + dot(wg, 1 / s - m_lb)
            # s / beta - (s + 1) / (beta + tau) as (s / beta) tau / (beta + tau) - 1 / ...
            g_beta = dot(wp, (s / beta) * T / (beta + T))
            g_beta += dot(wg, (s / beta) * m_tb - (1 - m_tb) / beta)
            return value, np.array([g_r, g_alpha, g_s, g_beta])

        loglik.value_and_grad = value_and_grad
        return loglik

    def _x0(self, x, T, w):
        scale = float(np.average(T, weights=w)) or 1.0
        return np.array([1.0, scale, 1.0, scale])

    def _log_p_alive(self, x, tx, T) -> np.ndarray:
        alive, dropped = _alive_and_dropped(self.params_.to_numpy(), x, tx, T)
        return alive - np.logaddexp(alive, dropped)

    def _p_alive(self, x, tx, T):
        return np.exp(self._log_p_alive(x, tx, T))

    def _conditional_expected_purchases(self, t, x, tx, T):
        # Hardie's note 009 / lifetimes: P(alive) (r + x)(beta + T) / ((alpha + T)(s - 1))
        # (1 - ((beta + T) / (beta + T + t))^(s - 1)), the last factor over (s - 1) written
        # with exprel, which stays exact at and near s = 1.
        r, alpha, s, beta = self.params_
        t = np.asarray(t, dtype=float)[None, :]
        log_alive = self._log_p_alive(x, tx, T)[:, None]
        bT = (beta + T)[:, None]
        L = np.log1p(t / bT)
        per_unit = L * exprel(-(s - 1) * L)  # (1 - exp(-(s - 1) L)) / (s - 1)
        log_e = log_alive + np.log((r + x)[:, None]) - np.log(alpha + T)[:, None] + np.log(bT)
        return np.exp(log_e + np.log(per_unit))

    def _p_no_purchase(self, t, x, tx, T):
        # No purchase in (T, T + t]: dropped out, or alive with lambda ~ Gamma(r + x, alpha + T)
        # and mu ~ Gamma(s, beta + T) and no purchase before dropout or the horizon. The
        # chance of a purchase when alive is (r + x)(alpha + T)^(r + x)(beta + T)^s times the
        # integral over (0, t) of (alpha + T + v)^-(r + x + 1) (beta + T + v)^-s.
        r, alpha, s, beta = self.params_
        codes, first = distinct_rows(x, T)
        ux, uT = x[first], T[first]
        # the powers (alpha + T)^(r + x) (beta + T)^s cancel the integrand's at T exactly
        log_i = log_integral(alpha + 0.0, beta + 0.0, r + ux + 1, s, uT, uT + t, relative=True)
        log_buy = np.log(r + ux) - np.log(alpha + uT) + log_i
        buy_if_alive = np.exp(log_buy)[codes]
        return 1 - np.exp(self._log_p_alive(x, tx, T)) * buy_if_alive

    def _fallback_row(self, what, t, x, tx, T):
        """By :func:`scipy.integrate.quad` of the same integrals, scaled so that their
        integrands stay near 1 (see ``BTYDModel._fallback_row``)."""
        from scipy.integrate import quad

        r, alpha, s, beta = self.params_

        def relative(tau: float) -> float:  # the dropped-out integrand over the alive term
            g = (r + x) * np.log1p((T - tau) / (alpha + tau)) + s * np.log1p(
                (T - tau) / (beta + tau)
            )
            return np.exp(min(g, 700.0)) / (beta + tau)

        scale = (alpha + tx) / (r + x + s + 1)  # the integrand's decay length after tx
        ratio = quad(relative, tx, T, points=[min(tx + scale, T)], limit=200)[0] if T > tx else 0.0
        alive = 1 / (1 + s * ratio)
        if what == "p_alive":
            return np.array([alive])
        if what == "expected":
            L = np.log1p(t / (beta + T))
            per_unit = L * exprel(-(s - 1) * L)
            return alive * (r + x) / (alpha + T) * (beta + T) * per_unit

        def buy(v: float) -> float:  # density of the first purchase at T + v, if alive
            g = -(r + x) * np.log1p(v / (alpha + T)) - s * np.log1p(v / (beta + T))
            return (r + x) * np.exp(g) / (alpha + T + v)

        return np.array([1 - alive * quad(buy, 0.0, t[0], limit=200)[0]])

    def simulate_repeat_counts(self, T, rng):
        r, alpha, s, beta = self.params_
        lam = rng.gamma(r, 1 / alpha, T.size)
        lifetime = rng.exponential(1 / rng.gamma(s, 1 / beta, T.size))
        return rng.poisson(lam * np.minimum(lifetime, T))
