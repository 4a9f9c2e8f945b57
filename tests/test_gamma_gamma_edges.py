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
