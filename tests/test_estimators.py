"""Every fitted class follows scikit-learn's estimator protocol: ``clone`` gives an unfitted
copy with the same parameters, ``check_is_fitted`` tells fitted from unfitted, ``fit`` returns
self and ``set_params`` refuses names the constructor does not take."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple

import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from clmmodels import rfm_summary
from clmmodels.churn import ChurnModel, churn_labels, snapshot_features
from clmmodels.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel, ParetoNBDModel
from clmmodels.stages import TransitionModel, assign_stages
from clmmodels.stages.synthetic import chain_event_log, example_matrix


class Case(NamedTuple):
    make: Callable[[], object]  # an unfitted model with some parameters off their defaults
    fit: Callable[[object, dict], object]  # fits it on the small data, returning what fit does


def _fit_rfm(model, data):
    return model.fit(data["rfm"])


def _fit_history(model, data):
    return model.fit(data["history"])


def _fit_churn(model, data):
    return model.fit(data["X"], data["y"])


CASES = {
    "BetaGeoModel": Case(lambda: BetaGeoModel(tol=1e-7), _fit_rfm),
    "ParetoNBDModel": Case(lambda: ParetoNBDModel(tol=1e-7), _fit_rfm),
    "ModifiedBetaGeoModel": Case(lambda: ModifiedBetaGeoModel(tol=1e-7), _fit_rfm),
    "GammaGammaModel": Case(lambda: GammaGammaModel(tol=1e-7), _fit_rfm),
    "TransitionModel": Case(
        lambda: TransitionModel(ci="bootstrap", n_boot=20, seed=3, min_transitions=5),
        _fit_history,
    ),
    "ChurnModel": Case(
        lambda: ChurnModel(kind="logistic", calibration="sigmoid", bands=(0.3, 0.6), seed=1),
        _fit_churn,
    ),
}


@pytest.fixture(scope="module")
def data(cdnow_sample):
    tx, ev = chain_event_log(example_matrix(), n_customers=500, n_periods=12, seed=1)
    X = snapshot_features(cdnow_sample, "1997-07-01")
    return {
        "rfm": rfm_summary(cdnow_sample.transactions, "1997-09-30"),
        "history": assign_stages(tx, ev, period="month", churn_after=None),
        "X": X,
        "y": churn_labels(cdnow_sample, X.index, "1997-07-01", 90),
    }


@pytest.fixture(scope="module")
def fitted(data):
    """One fitted model per class, fitted once for the module."""
    return {name: case.fit(case.make(), data) for name, case in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_unfitted_model_is_not_fitted(name):
    model = CASES[name].make()
    with pytest.raises(NotFittedError):
        check_is_fitted(model)


@pytest.mark.parametrize("name", CASES)
def test_fit_returns_self_and_then_counts_as_fitted(name, data):
    model = CASES[name].make()
    assert CASES[name].fit(model, data) is model
    check_is_fitted(model)


@pytest.mark.parametrize("name", CASES)
def test_clone_is_an_unfitted_copy_with_the_same_parameters(name, fitted):
    model = fitted[name]
    copy = clone(model)
    assert type(copy) is type(model) and copy is not model
    assert copy.get_params() == model.get_params() == CASES[name].make().get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    check_is_fitted(model)  # cloning leaves the original fitted


@pytest.mark.parametrize("name", CASES)
def test_set_params_sets_known_names_and_refuses_unknown_ones(name):
    model = CASES[name].make()
    first, value = next(iter(model.get_params().items()))
    assert model.set_params(**{first: value}) is model
    with pytest.raises(ValueError):
        model.set_params(no_such_parameter=1)
    assert "no_such_parameter" not in model.get_params()


def test_methods_that_need_a_fit_say_which_call_is_missing(data):
    missing = r"this ChurnModel is not fitted yet; call fit\(X, y\)"
    with pytest.raises(NotFittedError, match=missing):
        ChurnModel().predict_proba(data["X"])
    with pytest.raises(NotFittedError, match=r"this TransitionModel is not fitted yet"):
        TransitionModel().summary()
    with pytest.raises(NotFittedError, match="this GammaGammaModel is not fitted yet"):
        GammaGammaModel().expected_spend(data["rfm"])


def test_churn_model_scores_customers_not_accuracy(fitted, data):
    scores = fitted["ChurnModel"].score_customers(data["X"].head(20), top_reasons=2)
    assert list(scores.columns) == ["churn_probability", "risk_band", "reasons"]
    assert scores.index.equals(data["X"].index[:20])
    assert not hasattr(ChurnModel, "score")  # scikit-learn's score(X, y) means a metric


def test_clv_models_still_import_without_scikit_learn():
    code = "import sys, clmmodels.clv; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
