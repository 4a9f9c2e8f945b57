"""One interval convention (#21): every fitted class takes ``alpha`` (default 0.05) and reports
(1 - alpha) intervals only; bounds are columns ``lower``/``upper`` (``<quantity>_lower`` and
``<quantity>_upper`` in a frame of several quantities) and a frame carries its alpha in
``attrs["alpha"]``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.base import clone

from clmmodels import ClmError, rfm_summary
from clmmodels.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel, ParetoNBDModel
from clmmodels.clv.estimates import interval_label
from clmmodels.clv.score import score_customers
from clmmodels.clv.uncertainty import bootstrap_clv
from clmmodels.errors import ClmWarning
from clmmodels.stages import StageHistory, TransitionModel, assign_stages
from clmmodels.stages.estimate import transitions, wilson_interval
from clmmodels.stages.synthetic import chain_event_log, example_matrix

CLV_MODELS = [BetaGeoModel, ParetoNBDModel, ModifiedBetaGeoModel, GammaGammaModel]
FITTED_CLASSES = [*CLV_MODELS, TransitionModel]
#: Every interval column: lower/upper, or <quantity>_lower/<quantity>_upper.
INTERVAL_COLUMN = re.compile(r"([a-z_]+_)?(lower|upper)")


def _interval_columns(frame: pd.DataFrame) -> list[str]:
    """The columns about bounds, which must all follow the one pattern."""
    found = [c for c in frame.columns if re.search(r"lower|upper|%|interval|ci\b", str(c))]
    assert found, list(frame.columns)
    for c in found:
        assert INTERVAL_COLUMN.fullmatch(c), c
    return found


@pytest.fixture(scope="module")
def rfm(cdnow_sample):
    return rfm_summary(cdnow_sample.transactions, "1997-09-30")


@pytest.fixture(scope="module")
def history():
    tx, ev = chain_event_log(example_matrix(), n_customers=500, n_periods=12, seed=1)
    return assign_stages(tx, ev, period="month", churn_after=None)


@pytest.fixture(scope="module")
def clv_fits(rfm):
    """Each CLV model fitted at alpha 0.05 (the default) and 0.10."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        return {
            (cls, alpha): cls(alpha=alpha).fit(rfm) for cls in CLV_MODELS for alpha in (0.05, 0.10)
        }


def _history(codes: list[list[int]]) -> StageHistory:
    codes = np.array(codes, dtype=np.int8)
    return StageHistory(
        customers=pd.Index([f"c{i}" for i in range(len(codes))]),
        periods=pd.period_range("2024-01", periods=codes.shape[1], freq="M"),
        codes=codes,
        observed=np.ones_like(codes, bool),
        period="month",
        churn_after=None,
    )


# -- alpha is one constructor parameter of every fitted class ------------------------------
@pytest.mark.parametrize("cls", FITTED_CLASSES, ids=lambda c: c.__name__)
def test_alpha_is_a_parameter_that_clone_and_set_params_keep(cls):
    assert cls().get_params()["alpha"] == 0.05
    model = cls(alpha=0.1)
    assert model.get_params()["alpha"] == 0.1
    assert clone(model).get_params()["alpha"] == 0.1
    assert clone(model.set_params(alpha=0.2)).alpha == 0.2
    assert "alpha=0.2" in repr(model)


@pytest.mark.parametrize("cls", FITTED_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("alpha", [0, 1, -0.05, 1.5, float("nan"), "0.05", True])
def test_alpha_is_stored_as_given_and_checked_in_fit(cls, alpha, rfm, history):
    model = cls(alpha=alpha)  # scikit-learn style: the constructor only stores it
    assert model.alpha is alpha
    with pytest.raises(ClmError, match="alpha must be a number between 0 and 1"):
        model.fit(history if cls is TransitionModel else rfm)


# -- parameter intervals of the CLV models --------------------------------------------------
@pytest.mark.parametrize("cls", CLV_MODELS, ids=lambda c: c.__name__)
def test_parameter_intervals_are_normal_on_the_log_scale_at_alpha(cls, clv_fits):
    wide, narrow = clv_fits[cls, 0.05], clv_fits[cls, 0.10]
    pd.testing.assert_series_equal(wide.params_, narrow.params_)  # alpha changes no estimate
    for model in (wide, narrow):
        z = norm.ppf(1 - model.alpha / 2)
        ci, p, se = model.confidence_intervals_, model.params_, model.standard_errors_
        np.testing.assert_allclose(np.log(ci["upper"] / p), z * se / p, rtol=1e-12)
        np.testing.assert_allclose(np.log(p / ci["lower"]), z * se / p, rtol=1e-12)
        assert ci.attrs["alpha"] == model.alpha
    assert norm.ppf(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert (narrow.confidence_intervals_["lower"] > wide.confidence_intervals_["lower"]).all()
    assert (narrow.confidence_intervals_["upper"] < wide.confidence_intervals_["upper"]).all()


@pytest.mark.parametrize("cls", CLV_MODELS, ids=lambda c: c.__name__)
def test_clv_summaries_follow_the_one_pattern_and_carry_alpha(cls, clv_fits):
    model = clv_fits[cls, 0.10]
    summary = model.summary()
    assert list(summary.columns) == ["estimate", "std. error", "lower", "upper"]
    assert _interval_columns(summary) == ["lower", "upper"]
    assert list(model.confidence_intervals_.columns) == ["lower", "upper"]
    assert summary.attrs["alpha"] == 0.10
    pd.testing.assert_frame_equal(summary[["lower", "upper"]], model.confidence_intervals_)


def test_a_degenerate_spend_fit_has_the_same_interval_columns():
    flat = pd.DataFrame({"frequency": [1, 2, 3, 0], "monetary_value": [20.0, 20.0, 20.0, 0.0]})
    with pytest.warns(ClmWarning, match="same mean spend"):
        gg = GammaGammaModel(alpha=0.2).fit(flat)
    assert gg.degenerate_
    assert list(gg.summary().columns) == ["estimate", "std. error", "lower", "upper"]
    assert gg.summary().attrs["alpha"] == 0.2


def test_interval_labels_name_the_level():
    assert interval_label(0.05) == "95% interval"
    assert interval_label(0.1) == "90% interval"
    assert interval_label(0.025) == "97.5% interval"


# -- the stages' transition matrix -----------------------------------------------------------
def test_wilson_interval_matches_the_known_values():
    # statsmodels' proportion_confint(3, 10, alpha, method="wilson"), by hand
    k, n = np.array(3), np.array(10)
    assert [float(b) for b in wilson_interval(k, n)] == pytest.approx([0.1078, 0.6032], abs=5e-5)
    assert [float(b) for b in wilson_interval(k, n, alpha=0.10)] == pytest.approx(
        [0.1269, 0.5583], abs=5e-5
    )


def test_transition_model_reports_wilson_intervals_at_its_alpha():
    # Ten customers in purchase, three move on to retention and seven churn.
    h = _history([[3, 5]] * 3 + [[3, 7]] * 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)  # a row of 10 transitions is sparse
        models = {a: TransitionModel(alpha=a).fit(h) for a in (0.05, 0.10)}
    for alpha, known in ((0.05, (0.1078, 0.6032)), (0.10, (0.1269, 0.5583))):
        m = models[alpha]
        cell = (m.lower_.loc["purchase", "retention"], m.upper_.loc["purchase", "retention"])
        assert cell == pytest.approx(known, abs=5e-5)
        assert m.lower_.attrs["alpha"] == m.upper_.attrs["alpha"] == alpha
        summary = m.summary()
        assert list(summary.columns) == ["count", "probability", "lower", "upper"]
        assert _interval_columns(summary) == ["lower", "upper"]
        assert summary.attrs["alpha"] == alpha
        row = summary.loc[("purchase", "retention")]
        assert (row["lower"], row["upper"]) == pytest.approx(known, abs=5e-5)


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_bootstrap_bounds_are_the_alpha_percentiles_of_the_resamples(history, alpha):
    model = TransitionModel(ci="bootstrap", n_boot=30, seed=7, alpha=alpha).fit(history)
    draws = model._bootstrap(transitions(history), history.n_customers)  # the same seed
    assert draws.shape == (30, 8, 8)
    np.testing.assert_array_equal(model.lower_, np.percentile(draws, 100 * alpha / 2, axis=0))
    np.testing.assert_array_equal(model.upper_, np.percentile(draws, 100 - 100 * alpha / 2, axis=0))
    assert model.summary().attrs["alpha"] == alpha


def test_bootstrap_needs_enough_resamples_for_its_alpha(history):
    with pytest.raises(ClmError, match="at least 100 for 99% intervals, got 50"):
        TransitionModel(ci="bootstrap", n_boot=50, alpha=0.01).fit(history)
    with pytest.raises(ClmError, match="at least 20 for 95% intervals, got 19"):
        TransitionModel(ci="bootstrap", n_boot=19).fit(history)


# -- the CLV bootstrap and the scores --------------------------------------------------------
def test_clv_bootstrap_takes_the_models_alpha_and_its_percentiles(rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        bg, gg = BetaGeoModel(alpha=0.2).fit(rfm), GammaGammaModel(alpha=0.2).fit(rfm)
        narrow = bootstrap_clv(bg, gg, rfm, n_boot=10, seed=5, progress=False)
        wide = bootstrap_clv(bg, gg, rfm, n_boot=10, seed=5, alpha=0.05, progress=False)
    assert narrow.alpha == 0.2 and wide.alpha == 0.05
    for result in (narrow, wide):
        assert _interval_columns(result.clv_intervals) == ["clv_lower", "clv_upper"]
        assert result.clv_intervals.attrs["alpha"] == result.alpha
        ints = result.param_intervals()
        assert list(ints.columns) == ["lower", "upper"] and ints.attrs["alpha"] == result.alpha
        a = result.alpha
        expected = result.params.quantile([a / 2, 1 - a / 2]).T
        np.testing.assert_allclose(ints.to_numpy(), expected.to_numpy())
    # The same seed draws the same resamples: the 95% interval holds the 80% one.
    assert (wide.clv_intervals["clv_lower"] <= narrow.clv_intervals["clv_lower"]).all()
    assert (wide.clv_intervals["clv_upper"] >= narrow.clv_intervals["clv_upper"]).all()
    assert (wide.clv_intervals["clv_lower"] < narrow.clv_intervals["clv_lower"]).any()
    assert wide.total["lower"] < narrow.total["lower"] < narrow.total["upper"] < wide.total["upper"]


def test_clv_bootstrap_asks_for_alpha_when_the_models_differ(rfm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        bg, gg = BetaGeoModel().fit(rfm), GammaGammaModel(alpha=0.1).fit(rfm)
    with pytest.raises(ClmError, match=r"alpha=0\.05 and the spend model alpha=0\.1"):
        bootstrap_clv(bg, gg, rfm, n_boot=10, progress=False)


def test_one_alpha_sets_every_interval_of_the_scores(cdnow_sample):
    scores = score_customers(
        cdnow_sample.transactions, "1997-09-30", intervals=True, n_boot=10, alpha=0.2
    )
    assert scores.purchases.alpha == scores.spend.alpha == scores.bootstrap.alpha == 0.2
    assert scores.purchases.summary().attrs["alpha"] == 0.2
    assert _interval_columns(scores.scores) == ["clv_lower", "clv_upper"]
    assert scores.scores.attrs["alpha"] == 0.2
    assert scores.params_json()["bootstrap"]["alpha"] == 0.2


def test_clm_score_takes_alpha(tmp_path, small_company_dir):
    run = [sys.executable, "-m", "clmmodels.cli", "score", str(small_company_dir)]
    run += ["--observation-end", "2024-09-30", "--out", str(tmp_path / "s.parquet")]
    r = subprocess.run([*run, "--alpha", "1.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Invalid value for '--alpha': 1.5 is not in the range 0<x<1" in r.stderr
    params = tmp_path / "p.json"
    extra = ["--intervals", "--n-boot", "10", "--alpha", "0.2", "--params-out", str(params)]
    r = subprocess.run([*run, *extra], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(params.read_text())["bootstrap"]["alpha"] == 0.2
    assert {"clv_lower", "clv_upper"} <= set(pd.read_parquet(tmp_path / "s.parquet").columns)
