"""Numerical stability of the CLV models at extreme histories (issue #18, items 1-3).

Every reference here is computed in the test with mpmath at 50 digits from the textbook
formulas (or their Pfaff transformation where mpmath's own series is slow), so the tests
check the closed forms against high precision rather than against pinned numbers.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from clmmodels import load_dataset, rfm_summary
from clmmodels.clv import BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel
from clmmodels.clv.pareto_nbd import log_integral, pareto_loglik
from clmmodels.clv.special import digamma_rising, log_rising
from clmmodels.errors import ClmWarning

mp.mp.dps = 50

# The published CDNOW fits (Fader, Hardie & Lee 2005; Batislam et al. 2007; Fader & Hardie).
BG = (0.243, 4.414, 0.793, 2.426)
MBG = (0.525, 6.183, 0.891, 1.614)
PNBD = (0.553, 10.578, 0.606, 11.669)


def fitted(model, params):
    m = model()
    m.params_ = pd.Series(params, index=model.param_names)
    return m


# -- mpmath references ----------------------------------------------------------------------
def mp_bg_alive(params, x, tx, T, mbg=False):
    r, alpha, a, b = map(mp.mpf, params)
    x, tx, T = map(mp.mpf, (x, tx, T))
    if not mbg and x == 0:
        return mp.mpf(1)
    shift = 0 if mbg else 1
    return 1 / (1 + a / (b + x - shift) * ((alpha + T) / (alpha + tx)) ** (r + x))


def mp_bg_expected(params, x, tx, T, t, mbg=False):
    """Eq. (10) of Fader, Hardie & Lee (2005) (MBG: Batislam et al.), its 2F1 Pfaff-transformed
    twice, ``2F1(r+x, b'; c; z) = (1-z)^-(r+x) ... = (1-w)^(1-a) 2F1(a-1, c-r-x; c; u)``."""
    r, alpha, a, b = map(mp.mpf, params)
    x, tx, T, t = map(mp.mpf, (x, tx, T, t))
    c = a + b + x - (0 if mbg else 1)
    g = (1 + t / (alpha + T)) ** (1 - a) * mp.hyp2f1(a - 1, c - r - x, c, t / (alpha + T + t))
    return c / (a - 1) * (1 - g) * mp_bg_alive(params, x, tx, T, mbg)


def mp_bg_expected_textbook(params, x, tx, T, t):
    """Eq. (10) as printed (slow in mpmath for x in the tens of thousands)."""
    r, alpha, a, b = map(mp.mpf, params)
    x, tx, T, t = map(mp.mpf, (x, tx, T, t))
    z = t / (alpha + T + t)
    f = mp.hyp2f1(r + x, b + x, a + b + x - 1, z)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f
    return (a + b + x - 1) / (a - 1) * tail * mp_bg_alive(params, x, tx, T)


def mp_pareto_a0(params, x, y):
    """Hardie's note 009: the integral from y to infinity, by its 2F1 (the alpha >= beta and
    alpha < beta forms are the same analytic function)."""
    r, alpha, s, beta = map(mp.mpf, params)
    big, small = max(alpha, beta), min(alpha, beta)
    e = s + 1 if alpha >= beta else r + x
    k = r + s + x
    return (big + y) ** (-k) / k * mp.hyp2f1(e, k, k + 1, (big - small) / (big + y))


def mp_pareto_alive(params, x, tx, T):
    r, alpha, s, beta = map(mp.mpf, params)
    x, tx, T = map(mp.mpf, (x, tx, T))
    alive = (alpha + T) ** (-(r + x)) * (beta + T) ** (-s)
    dropped = s * (mp_pareto_a0(params, x, tx) - mp_pareto_a0(params, x, T))
    return alive / (alive + dropped)


def mp_pareto_loglik(params, x, tx, T):
    r, alpha, s, beta = map(mp.mpf, params)
    x, tx, T = map(mp.mpf, (x, tx, T))
    alive = (alpha + T) ** (-(r + x)) * (beta + T) ** (-s)
    dropped = s * (mp_pareto_a0(params, x, tx) - mp_pareto_a0(params, x, T))
    common = mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha) + s * mp.log(beta)
    return common + mp.log(alive + dropped)


def mp_pareto_expected(params, x, tx, T, t):
    r, alpha, s, beta = map(mp.mpf, params)
    x, tx, T, t = map(mp.mpf, (x, tx, T, t))
    per = (r + x) * (beta + T) / ((alpha + T) * (s - 1))
    return per * (1 - ((beta + T) / (beta + T + t)) ** (s - 1)) * mp_pareto_alive(params, x, tx, T)


def close(ours: float, ref, rtol: float = 1e-9) -> bool:
    ref = float(ref)
    return abs(ours - ref) <= rtol * abs(ref) + 1e-300


def one(x, tx, T):
    return np.array([float(x)]), np.array([float(tx)]), np.array([float(T)])


# -- the table of issue #18 ------------------------------------------------------------------
@pytest.mark.parametrize("x", [10_000, 50_000])
def test_bgnbd_expected_purchases_of_very_frequent_buyers(x):
    model = fitted(BetaGeoModel, BG)
    for tx, T in [(78.0, 78.0), (77.99, 78.0), (77.9, 78.0), (38.8, 38.86)]:
        rfm = pd.DataFrame({"frequency": [x], "recency": [tx], "T": [T]})
        ours = float(model.expected_purchases(rfm, weeks=52).iloc[0])
        assert close(ours, mp_bg_expected(BG, x, tx, T, 52)), (x, tx, T, ours)
    if x == 10_000:  # the textbook form too, where mpmath evaluates it in reasonable time
        ours = float(model._conditional_expected_purchases([52.0], *one(x, 77.99, 78.0))[0, 0])
        assert close(ours, mp_bg_expected_textbook(BG, x, 77.99, 78.0, 52))


@pytest.mark.parametrize("x", [10_000, 50_000])
def test_mbgnbd_expected_purchases_of_very_frequent_buyers(x):
    model = fitted(ModifiedBetaGeoModel, MBG)
    for tx, T in [(78.0, 78.0), (77.99, 78.0), (77.9, 78.0), (38.8, 38.86)]:
        rfm = pd.DataFrame({"frequency": [x], "recency": [tx], "T": [T]})
        ours = float(model.expected_purchases(rfm, weeks=52).iloc[0])
        assert close(ours, mp_bg_expected(MBG, x, tx, T, 52, mbg=True)), (x, tx, T, ours)


@pytest.mark.parametrize(("x", "truth"), [(132, 6.2061), (133, 6.2529)])
def test_pareto_expected_purchases_where_the_powers_overflowed(x, truth):
    """(alpha + T)^(r + s + x) passes 1e308 between x = 132 and 133 at T = 200."""
    model = fitted(ParetoNBDModel, PNBD)
    rfm = pd.DataFrame({"frequency": [x], "recency": [200.0], "T": [200.0]})
    ours = float(model.expected_purchases(rfm, weeks=10).iloc[0])
    assert close(ours, mp_pareto_expected(PNBD, x, 200, 200, 10))
    assert ours == pytest.approx(truth, abs=1e-3)  # the figures, at 4 digits
    assert close(float(model.p_alive(rfm).iloc[0]), mp_pareto_alive(PNBD, x, 200, 200))


@pytest.fixture(scope="module")
def daily_buyer_dir(tmp_path_factory):
    """The CDNOW sample plus one customer who buys every day of its 78 weeks."""
    tx = load_dataset("cdnow_sample").transactions[["customer_id", "timestamp", "amount"]]
    days = pd.date_range("1997-01-01", periods=78 * 7, freq="D")
    daily = pd.DataFrame({"customer_id": "daily", "timestamp": days, "amount": 20.0})
    out = tmp_path_factory.mktemp("daily")
    pd.concat([tx, daily]).to_csv(out / "transactions.csv", index=False)
    return out


def test_one_daily_buyer_does_not_sink_clm_score(daily_buyer_dir, tmp_path):
    out = tmp_path / "scores.csv"
    r = subprocess.run(
        [sys.executable, "-m", "clmmodels.cli", "score", str(daily_buyer_dir),
         "--observation-end", "1998-06-30", "--horizon-months", "60", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    scores = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert np.isfinite(scores[["p_alive", "expected_purchases", "clv"]]).all().all()
    # lifetimes' formula at the same parameters gives 1074.0028 for this customer
    assert scores.loc["daily", "expected_purchases"] == pytest.approx(1074.0028, abs=1e-3)


# -- P(alive) and E[X] at extreme histories against mpmath, all three models ------------------
EXTREME = [
    (0, 0.0, 78.0),
    (1, 0.5, 78.0),
    (545, 77.857, 77.857),
    (545, 70.0, 78.0),
    (2_000, 38.8, 38.86),
    (10_000, 77.99, 78.0),
    (40, 0.2, 500.0),
]


@pytest.mark.parametrize(("model", "params", "mbg"), [
    (BetaGeoModel, BG, False), (ModifiedBetaGeoModel, MBG, True),
], ids=["BG/NBD", "MBG/NBD"])  # fmt: skip
def test_bg_type_against_mpmath(model, params, mbg):
    m = fitted(model, params)
    for x, tx, T in EXTREME:
        assert close(float(m._p_alive(*one(x, tx, T))[0]), mp_bg_alive(params, x, tx, T, mbg))
        e = m._conditional_expected_purchases(np.array([1.0, 52.0, 261.0]), *one(x, tx, T))
        for t, ours in zip((1.0, 52.0, 261.0), e[0], strict=True):
            assert close(ours, mp_bg_expected(params, x, tx, T, t, mbg), 1e-8), (x, tx, T, t)


def test_pareto_against_mpmath():
    m = fitted(ParetoNBDModel, PNBD)
    for x, tx, T in EXTREME:
        args = one(x, tx, T)
        assert close(float(m._p_alive(*args)[0]), mp_pareto_alive(PNBD, x, tx, T)), (x, tx, T)
        assert close(float(pareto_loglik(PNBD, *args)[0]), mp_pareto_loglik(PNBD, x, tx, T))
        e = m._conditional_expected_purchases(np.array([1.0, 52.0, 261.0]), *args)
        for t, ours in zip((1.0, 52.0, 261.0), e[0], strict=True):
            assert close(ours, mp_pareto_expected(PNBD, x, tx, T, t), 1e-8), (x, tx, T, t)


@pytest.mark.parametrize("scales", [(10.578, 11.669), (4.0, 1e-3), (1e-3, 4.0), (4.0, 1e4)])
def test_pareto_integral_against_mpmath(scales):
    """The quadrature behind every Pareto/NBD quantity, where the scales differ by 10^7 too."""
    alpha, beta = scales
    for p, q in [(0.3, 1.6), (1.5, 0.2), (130.0, 1.6)]:
        for y0, y1 in [(0.0, 0.1), (0.0, 39.0), (30.0, 39.0), (199.99, 200.0), (1.0, 5000.0)]:
            big, small = max(alpha, beta), min(alpha, beta)
            e, k = (q if alpha >= beta else p), p + q - 1

            def tail(y, big=big, small=small, e=e, k=k):
                y = mp.mpf(y)
                return (big + y) ** (-k) / k * mp.hyp2f1(e, k, k + 1, (big - small) / (big + y))

            ref = mp.log(tail(y0) - tail(y1))
            ours = float(log_integral(alpha, beta, p, q, y0, y1))
            assert abs(ours - float(ref)) <= 1e-9 * max(1.0, abs(float(ref))), (p, q, y0, y1)


def mp_pareto_by_quadrature(params, x, tx, T):
    """Log-likelihood and P(alive) from the integral itself (mpmath's quadrature, on eight
    panels), not its 2F1: independent of the exponents' size."""
    r, alpha, s, beta = map(mp.mpf, params)
    x, tx, T = map(mp.mpf, (x, tx, T))
    alive = (alpha + T) ** (-(r + x)) * (beta + T) ** (-s)
    dropped = s * mp.quad(
        lambda tau: (alpha + tau) ** (-(r + x)) * (beta + tau) ** (-(s + 1)), mp.linspace(tx, T, 9)
    )
    common = mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha) + s * mp.log(beta)
    return common + mp.log(alive + dropped), alive / (alive + dropped)


RIDGES = {
    "dropout hardly varies": (1.3, 28.0, 1e14, 5e15),
    "purchase rates hardly vary": (1e12, 4e13, 0.6, 11.7),
}  # at CDNOW's estimates: test_pareto_against_mpmath, and the gradient in test_clv.py


@pytest.mark.parametrize("params", list(RIDGES.values()), ids=list(RIDGES))
def test_pareto_where_rates_or_dropout_hardly_vary_against_mpmath(params):
    """Where (s, beta) or (r, alpha) run to infinity together (fits of data whose dropout or
    purchase rates hardly vary go there), Hardie's s log(beta) and s log(beta + T) are both
    near 1e15, as are log Gamma(r + x) and log Gamma(r): the likelihood was a difference of
    the two (-0.5 for -0.765 at the first history), and its gradient off by 0.6. The
    log-likelihood, P(alive) and the gradient (in log-parameters, as the fit sees it)
    against mpmath's at 50 digits."""
    mp.mp.dps = 50
    m = fitted(ParetoNBDModel, params)
    for x, tx, T in [(0, 0.0, 40.0), (2, 30.4, 38.9), (15, 70.0, 78.0)]:
        args = one(x, tx, T)
        ref, ref_alive = mp_pareto_by_quadrature(params, x, tx, T)
        assert close(float(pareto_loglik(params, *args)[0]), ref, 1e-11), (x, tx, T)
        assert close(float(m._p_alive(*args)[0]), ref_alive, 1e-11), (x, tx, T)
        _, grad = m._make_loglik(*args).value_and_grad(np.array(params), np.ones(1))
        for i, ours in enumerate(grad * np.array(params)):

            def at(z, i=i, history=(x, tx, T)):
                moved = [mp.exp(z) if j == i else mp.mpf(v) for j, v in enumerate(params)]
                return mp_pareto_by_quadrature(moved, *history)[0]

            assert abs(ours - float(mp.diff(at, mp.log(params[i])))) < 1e-9, (x, tx, T, i)


def mp_bg_loglik(params, x, tx, T, mbg=False):
    r, alpha, a, b = map(mp.mpf, params)
    x, tx, T = map(mp.mpf, (x, tx, T))
    shift = 0 if mbg else 1
    common = (
        mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha)
        + mp.log(mp.beta(a, b + x + 1 - shift)) - mp.log(mp.beta(a, b))
    )  # fmt: skip
    alive = (alpha + T) ** -(r + x)
    dropped = a / (b + x - shift) * (alpha + tx) ** -(r + x) if (mbg or x > 0) else 0
    return common + mp.log(alive + dropped)


BG_RIDGES = {
    "purchase rates hardly vary": (1e12, 4e13, 0.8, 2.5),
    "dropout hardly varies": (0.49, 7.6, 1e9, 3e9),
}


@pytest.mark.parametrize("params", list(BG_RIDGES.values()), ids=list(BG_RIDGES))
@pytest.mark.parametrize(("model", "mbg"), [(BetaGeoModel, False), (ModifiedBetaGeoModel, True)])
def test_bg_type_where_rates_or_dropout_hardly_vary_against_mpmath(model, mbg, params):
    """r log(alpha) - (r + x) log(alpha + T), log Gamma(r + x) - log Gamma(r) at r = 1e12,
    and log B(a, b + x) - log B(a, b) at a = 1e9: each a difference of numbers near 3e13 (or
    2e10) until they were written with log1p and Stirling's series. The log-likelihood,
    P(alive) and (BG/NBD) the gradient against mpmath's."""
    mp.mp.dps = 50
    m = fitted(model, params)
    for x, tx, T in [(0, 0.0, 40.0), (2, 30.4, 38.9), (15, 70.0, 78.0), (545, 70.0, 78.0)]:
        args = one(x, tx, T)
        ref = mp_bg_loglik(params, x, tx, T, mbg)
        assert close(float(m._loglik(np.array(params), *args)[0]), ref, 1e-12), (x, tx, T)
        assert close(float(m._make_loglik(*args)(np.array(params))[0]), ref, 1e-12)
        assert close(float(m._p_alive(*args)[0]), mp_bg_alive(params, x, tx, T, mbg), 1e-12)
        if mbg:
            continue  # no exact gradient
        _, grad = m._make_loglik(*args).value_and_grad(np.array(params), np.ones(1))
        for i, ours in enumerate(grad * np.array(params)):

            def at(z, i=i, history=(x, tx, T)):
                moved = [mp.exp(z) if j == i else mp.mpf(v) for j, v in enumerate(params)]
                return mp_bg_loglik(moved, *history)

            assert abs(ours - float(mp.diff(at, mp.log(params[i])))) < 1e-9, (x, tx, T, i)


@pytest.mark.parametrize("r", [0.3, 7.0, 199.9, 200.1, 1e4, 1e8, 1e15])
def test_rising_factorial_differences_against_mpmath(r):
    mp.mp.dps = 40
    x = np.array([0.0, 1.0, 2.5, 100.0, 5_000.0, 1e6])
    log_r, psi_r = log_rising(r, x), digamma_rising(r, x)
    for i, xi in enumerate(x):
        ref = mp.loggamma(mp.mpf(r) + xi) - mp.loggamma(r)
        ref_psi = mp.digamma(mp.mpf(r) + xi) - mp.digamma(r)
        assert close(float(log_r[i]), ref, 1e-12) and close(float(psi_r[i]), ref_psi, 1e-12)


def test_pareto_no_purchase_probability_against_lifetimes(cdnow_sample):
    from lifetimes import ParetoNBDFitter

    rfm = rfm_summary(cdnow_sample.transactions, "1997-09-30")
    m = fitted(ParetoNBDModel, PNBD)
    theirs = ParetoNBDFitter()
    theirs.params_ = m.params_.copy()
    x, tx, T = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(
        m.p_no_purchase(rfm, weeks=52),
        theirs.conditional_probability_of_n_purchases_up_to_time(0, 52, x, tx, T),
        rtol=1e-9,
    )


# -- the fallback ------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "params"), [
    (BetaGeoModel, BG), (ModifiedBetaGeoModel, MBG), (ParetoNBDModel, PNBD),
], ids=["BG/NBD", "MBG/NBD", "Pareto/NBD"])  # fmt: skip
def test_fallback_integration_agrees_with_the_closed_forms(model, params):
    m = fitted(model, params)
    t = np.array([4.35, 52.0, 261.0])
    for x, tx, T in [(0, 0.0, 30.0), (3, 20.0, 39.0), (545, 77.857, 77.857), (2_000, 38.8, 38.86)]:
        args = one(x, tx, T)
        closed = m._conditional_expected_purchases(t, *args)[0]
        np.testing.assert_allclose(m._fallback_row("expected", t, x, tx, T), closed, rtol=1e-6)
        p = m._fallback_row("p_alive", t, x, tx, T)[0]
        assert p == pytest.approx(float(m._p_alive(*args)[0]), rel=1e-6, abs=1e-300)
        none = m._fallback_row("p_no_purchase", t[1:2], x, tx, T)[0]
        assert none == pytest.approx(float(m._p_no_purchase(52.0, *args)[0]), rel=1e-6)


def test_a_customer_the_formulas_cannot_score_is_flagged_not_fatal(
    cdnow_sample, monkeypatch, tmp_path
):
    from clmmodels.clv.score import score_customers
    from clmmodels.clv.stream import score_to_file

    tx = cdnow_sample.transactions
    victim = tx["customer_id"].iloc[0]
    original = BetaGeoModel._conditional_expected_purchases

    def broken(self, t, x, tx_, T):  # as if the closed form failed for the first history
        e = original(self, t, x, tx_, T)
        e[(x == 1) & (tx_ > 30)] = np.nan
        return e

    monkeypatch.setattr(BetaGeoModel, "_conditional_expected_purchases", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        run = score_customers(tx, "1997-09-30")
    scores = run.scores
    flagged = (scores["frequency"] == 1) & (scores["recency"] > 30)
    assert flagged.any() and victim in scores.index
    assert (scores["fallback"] == flagged).all() and run.n_fallback == flagged.sum()
    assert run.params_json()["fallback_customers"] == run.n_fallback
    assert any("scored by numerical integration" in w for w in run.warnings)
    # the file scorer (clm score's default path) writes the same column and count
    out = tmp_path / "scores.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        streamed = score_to_file(tx, "1997-09-30", out)
    written = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert (written["fallback"] == flagged.reindex(written.index)).all()
    assert streamed.n_fallback == run.n_fallback
    monkeypatch.setattr(BetaGeoModel, "_conditional_expected_purchases", original)
    clean = score_customers(tx, "1997-09-30")
    assert not clean.scores["fallback"].any() and clean.n_fallback == 0
    np.testing.assert_allclose(scores["clv"], clean.scores["clv"], rtol=1e-6)


# -- Pareto/NBD fits ----------------------------------------------------------------------------
def simulate_pareto(n: int, params, seed: int) -> pd.DataFrame:
    """Pareto/NBD histories: Poisson purchases at lambda until an exponential lifetime."""
    r, alpha, s, beta = params
    rng = np.random.default_rng(seed)
    T = rng.uniform(40, 78, n)
    lam = rng.gamma(r, 1 / alpha, n)
    life = rng.exponential(1 / rng.gamma(s, 1 / beta, n))
    end = np.minimum(life, T)
    x = rng.poisson(lam * end)
    last = np.where(x > 0, end * rng.beta(np.maximum(x, 1), 1), 0.0)  # max of x uniforms
    return pd.DataFrame({"frequency": x.astype(float), "recency": last, "T": T})


@pytest.mark.slow
def test_pareto_fit_reaches_the_maximum_on_high_frequency_data():
    from scipy.optimize import minimize

    truth = (4.0, 1.0, 0.5, 40.0)  # four purchases a week on average: 180 in a history
    rfm = simulate_pareto(3_000, truth, seed=18)
    x, tx, T = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClmWarning)  # no "no standard errors", no bound
        m = ParetoNBDModel().fit(rfm)
    assert m.converged_ and np.isfinite(m.standard_errors_).all()

    def objective(z):
        return -float(pareto_loglik(np.exp(z), x, tx, T).sum())

    ref = minimize(objective, np.log(truth), method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-4, "maxfev": 1500})  # fmt: skip
    assert m.log_likelihood_ >= -ref.fun - 0.1
    assert abs(m.log_likelihood_ - m.log_likelihood(rfm)) < 1e-6


def test_pareto_reproduces_the_published_cdnow_fit(cdnow_sample):
    """Fader & Hardie's Excel fit: r=0.5534, alpha=10.5802, s=0.6061, beta=11.6562, LL -9595.0.
    The (s, beta) ridge is flat: the maximum lies at beta=11.669 (as lifetimes finds), 0.0002
    log-likelihood units above the published point."""
    rfm = rfm_summary(cdnow_sample.transactions, "1997-09-30")
    m = ParetoNBDModel().fit(rfm)
    published = np.array([0.5534, 10.5802, 0.6061, 11.6562])
    np.testing.assert_allclose(m.params_, published, rtol=2e-3)
    assert m.params_.round(3).to_dict() == dict(zip(m.param_names, PNBD, strict=True))
    assert round(m.log_likelihood_, 1) == -9595.0
    x, tx, T = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    at_published = float(pareto_loglik(published, x, tx, T).sum())
    assert round(at_published, 1) == -9595.0 and m.log_likelihood_ >= at_published


@pytest.mark.slow
def test_pareto_converges_on_the_full_cdnow(tmp_path):
    out = tmp_path / "scores.csv"
    r = subprocess.run(
        [sys.executable, "-m", "clmmodels.cli", "score", "cdnow", "--observation-end",
         "1998-06-30", "--model", "pnbd", "--out", str(out), "--params-out",
         str(tmp_path / "p.json")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    doc = json.loads((tmp_path / "p.json").read_text())["pnbd"]
    assert doc["converged"] and all(np.isfinite(v) for v in doc["standard_errors"].values())
    assert len(pd.read_csv(out)) == 23_570


# -- the same bits on any number of cores ------------------------------------------------------
@pytest.mark.parametrize("model", [BetaGeoModel, ParetoNBDModel])  # their exact gradients
def test_likelihoods_and_gradients_do_not_depend_on_the_blas_threads(model):
    """The BLAS splits a long dot product across its threads (beyond 10,000 terms), which
    changed the weighted sums' last bits with the core count, and so the fits'; measured: the
    BG/NBD fit of 200,000 rows moved by 1e-15, and at a ridge by 1e6 in b."""
    from threadpoolctl import threadpool_limits

    rfm = simulate_pareto(30_000, (0.5, 2.0, 0.8, 20.0), seed=23)
    x, tx, T = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    w = np.random.default_rng(23).integers(1, 9, x.size).astype(float)
    value_and_grad = model()._make_loglik(x, tx, T).value_and_grad
    params = np.array([0.5, 2.0, 0.8, 3.0 if model is BetaGeoModel else 20.0])
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            value, grad = value_and_grad(params, w)
        runs.append([value, *grad])
    assert runs[0] == runs[1]


def test_fits_do_not_depend_on_the_blas_threads():
    from threadpoolctl import threadpool_limits

    from clmmodels.clv import GammaGammaModel

    rfm = simulate_pareto(60_000, (0.5, 2.0, 0.8, 20.0), seed=24)
    repeat = rfm[rfm["frequency"] > 0].copy()
    repeat["monetary_value"] = np.random.default_rng(24).gamma(6.0, 5.0, len(repeat))
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            fits = [BetaGeoModel().fit(rfm), ModifiedBetaGeoModel().fit(rfm)]
            fits.append(GammaGammaModel().fit(repeat))
        runs.append([v for m in fits for v in (*m.params_, m.log_likelihood_)])
    assert runs[0] == runs[1]


def test_the_integral_in_blocks_equals_it_row_by_row():
    """log_integral works 4,096 rows at a time (its temporaries are rows x 288): across the
    blocks' edges, in any shape, each row is what it is alone."""
    rng = np.random.default_rng(5)
    n = 9_000  # three blocks
    p, q = rng.uniform(0.5, 40.0, n), rng.uniform(0.6, 3.0, n)
    y0 = rng.uniform(0.0, 50.0, n)
    y1 = y0 + rng.exponential(10.0, n) * (rng.random(n) > 0.05)  # some empty intervals
    whole = log_integral(4.0, 11.0, p, q, y0, y1, moments=True)
    for i in (0, 4_095, 4_096, 8_191, 8_192, n - 1):
        alone = log_integral(4.0, 11.0, p[i], q[i], y0[i], y1[i], moments=True)
        for w, a in zip(whole, alone, strict=True):
            assert np.array_equal(w[i], a, equal_nan=True), i
    shaped = log_integral(4.0, 11.0, *(v.reshape(90, 100) for v in (p, q, y0, y1)))
    assert shaped.shape == (90, 100) and np.array_equal(shaped.ravel(), whole[0])
