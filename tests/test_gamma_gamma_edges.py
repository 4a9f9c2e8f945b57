"""Gamma-Gamma at its edges (issue #18, item 4): a fit that does not describe the spend says
so, in a warning and in the params JSON, and one that does stays quiet."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from clmmodels import load_dataset, rfm_summary
from clmmodels.clv import GammaGammaModel
from clmmodels.clv.gamma_gamma import MEAN_SPEND_TOLERANCE
from clmmodels.clv.score import score_customers
from clmmodels.errors import ClmWarning


def fit(rfm: pd.DataFrame) -> tuple[GammaGammaModel, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GammaGammaModel().fit(rfm)
    return model, [str(w.message) for w in caught if issubclass(w.category, ClmWarning)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spend_that_grows_with_frequency_is_flagged(seed):
    rng = np.random.default_rng(seed)
    f = rng.geometric(0.15, 3000)
    m = 3.0 * f * rng.lognormal(0, 0.25, 3000)  # the model assumes spend ignores frequency
    model, messages = fit(pd.DataFrame({"frequency": f, "monetary_value": m}))
    check = model.spend_check_
    assert check["relative_gap"] > MEAN_SPEND_TOLERANCE
    assert check["observed_mean_spend"] == pytest.approx(m.mean())
    (message,) = messages  # one warning, which says what to do
    assert "off the customers' observed mean" in message and "per segment" in message


def test_cdnow_and_a_simulated_company_stay_quiet(small_company):
    cdnow = rfm_summary(load_dataset("cdnow_sample").transactions, "1997-09-30")
    model, messages = fit(cdnow)
    assert abs(model.spend_check_["relative_gap"]) < 0.01 and not messages
    tx = small_company.tables["transactions"]
    scores = score_customers(tx, "2024-12-31")
    check = scores.params_json()["gamma_gamma"]["spend_check"]
    assert abs(check["relative_gap"]) < MEAN_SPEND_TOLERANCE
    assert check["parameters_at_boundary"] == []


def mp_gamma_gamma_loglik(params, x, m):
    import mpmath as mp

    p, q, gamma = map(mp.mpf, params)
    x, m = mp.mpf(x), mp.mpf(m)
    return (
        mp.loggamma(p * x + q) - mp.loggamma(p * x) - mp.loggamma(q) + q * mp.log(gamma)
        + (p * x - 1) * mp.log(m) + p * x * mp.log(x) - (p * x + q) * mp.log(gamma + m * x)
    )  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [(5.6e6, 3.0, 7e-6), (6.25, 1e9, 4e9), (6.25, 3.74, 15.44)],
    ids=["p at its edge (issue #18's fit)", "q and gamma at theirs", "CDNOW"],
)
def test_the_likelihood_and_its_gradient_at_the_edges_against_mpmath(params):
    """Where a fit runs p (spend that hardly varies within a customer) or q and gamma to an
    edge, log Gamma(px + q) - log Gamma(px) and px log(m x) - (px + q) log(gamma + m x) were
    differences of numbers near 1e10: the likelihood kept 6 digits, its gradient fewer."""
    import mpmath as mp

    mp.mp.dps = 50
    x, m = np.array([1.0, 2.0, 14.0, 120.0]), np.array([4.5, 31.2, 18.0, 250.0])
    value_and_grad = GammaGammaModel._make_loglik(x, m).value_and_grad
    ours = GammaGammaModel._loglik(np.array(params), x, m)
    for i in range(x.size):
        ref = mp_gamma_gamma_loglik(params, x[i], m[i])
        assert abs(ours[i] - float(ref)) <= 1e-12 * max(1.0, abs(float(ref))), (i, ours[i])
        w = np.zeros(x.size)
        w[i] = 1.0
        value, grad = value_and_grad(np.array(params), w)
        assert abs(value - float(ref)) <= 1e-12 * max(1.0, abs(float(ref)))
        for j, g in enumerate(grad * np.array(params)):  # in log-parameters, as the fit sees it

            def at(z, j=j, i=i):
                moved = [mp.exp(z) if k == j else mp.mpf(v) for k, v in enumerate(params)]
                return mp_gamma_gamma_loglik(moved, x[i], m[i])

            assert abs(g - float(mp.diff(at, mp.log(params[j])))) < 1e-8, (i, j, g)
