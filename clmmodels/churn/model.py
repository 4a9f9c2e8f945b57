"""Churn classifiers: scikit-learn Pipelines with probabilities, risk bands and per-customer
reasons."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from ..errors import ClmError
from ..vocabulary import CHURN_CLASSIFIERS, RISK_BANDS
from .reasons import feature_families, reasons_in_words

LOG = logging.getLogger(__name__)
KINDS = CHURN_CLASSIFIERS
#: Default risk-band thresholds on the calibrated churn probability: low below the first,
#: high from the second on, medium between.
BANDS: tuple[float, float] = RISK_BANDS


#: Features whose effect on churn the trees may only have one sign (+1 raises the risk), by
#: the column names the pipeline gives them.
MONOTONE: dict[str, int] = {
    "num__bgnbd_p_no_purchase": 1,
    "num__bgnbd_p_alive": -1,
    "num__bgnbd_expected_purchases": -1,
}


def _pipeline(kind: str, seed: int):
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
    )
    text = make_column_selector(dtype_include=["string", "object", "category"])
    numeric = make_column_selector(dtype_exclude=["string", "object", "category"])
    if kind == "logistic":
        num = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        model = LogisticRegression(max_iter=2000)
    else:
        num = "passthrough"  # gradient boosting handles missing values itself
        # Small trees learning slowly: on transactions alone the signal is nearly BG/NBD's
        # (a feature), and deeper trees fit the snapshots' noise (ROC-AUC 0.003 below BG/NBD
        # on two simulated companies with 15 leaves at rate 0.08; 0.002-0.006 above it on
        # five with these, CDNOW included in the tests).
        # The purchase model's view can only push one way: more chance of no purchase, more
        # risk; more P(alive) or expected purchases, less. Constraining the trees so keeps
        # them from fitting the snapshots' noise against it (on the simulated company of
        # seed 123, transactions only: ROC-AUC 0.7511 against BG/NBD's 0.7508, 0.7507 without).
        model = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=4, min_samples_leaf=100,
            random_state=seed, monotonic_cst=MONOTONE,
        )  # fmt: skip
    columns = ColumnTransformer([("num", num, numeric), ("cat", categorical, text)])
    if kind != "logistic":  # feature names reach the trees, for monotonic_cst
        columns.set_output(transform="pandas")
    return make_pipeline(columns, model)


def _split_inputs(pipeline) -> set[str] | None:
    """The input features a fitted gradient-boosting pipeline's trees split on (a one-hot
    column counts for its feature); None where that cannot be read (the logistic model,
    a calibrated pair, a scikit-learn without the trees' node arrays), meaning all."""
    try:
        trees = [t for per_iteration in pipeline[-1]._predictors for t in per_iteration]
        columns = pipeline[:-1].get_feature_names_out()
        transformers = pipeline[0].transformers_
    except (AttributeError, TypeError, IndexError, KeyError):
        return None
    used: set[str] = set()
    for tree in trees:
        nodes = tree.nodes
        used.update(columns[nodes["feature_idx"][nodes["is_leaf"] == 0]])
    inputs: set[str] = set()
    for name, _, features in transformers:
        for feature in features if isinstance(features, list | tuple) else []:
            prefix = f"{name}__{feature}"
            # "cat__x_value" belongs to x; a longer feature sharing the prefix only adds work
            if any(u == prefix or u.startswith(prefix + "_") for u in used):
                inputs.add(feature)
    return inputs


#: The default of ``ChurnModel(max_rows=...)``: snapshot rows that train a model, at most.
MAX_ROWS = 500_000


class ChurnModel(BaseEstimator):
    """A churn classifier on snapshot features, with probabilities a user can read as such.

    A scikit-learn estimator: ``get_params``, ``set_params``, ``sklearn.base.clone`` and
    ``check_is_fitted`` work. The constructor only stores its arguments; ``fit`` checks them.
    Per-customer output is :meth:`score_customers` (not ``score``, which in scikit-learn means
    a metric of ``X, y``).

    Parameters
    ----------
    kind
        ``"hgb"`` (``HistGradientBoostingClassifier``) or ``"logistic"`` (the baseline).
    calibration
        ``None`` (the default: both classifiers minimise log loss, so their probabilities
        are calibrated already; the backtest's calibration table and Brier score check it),
        or ``"isotonic"`` / ``"sigmoid"`` (``CalibratedClassifierCV``, 3 folds). Isotonic
        calibration ties customers on its steps and cost 0.003-0.004 ROC-AUC in measurement.
    bands
        Thresholds of the risk bands (low < first <= medium < second <= high).
    seed
        Seed of the gradient-boosting model and of the training sample (the same data gives
        the same probabilities).
    max_rows
        At most this many snapshot rows train the model: beyond it, a random sample of them
        drawn with ``seed`` (``n_training_rows_`` of ``n_snapshot_rows_``). Fitting time and
        memory grow with the rows, the model's accuracy hardly: on a simulated company of
        100,000 customers (186,000 rows), 100,000 sampled rows gave the out-of-time ROC-AUC
        of all of them to 1e-4 (0.7972-0.7973), 50,000 to 1e-3. At a million customers
        (2.5M rows) the default cuts the fit from 112 s. ``None``: every row.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> from clmmodels.churn.features import snapshot_features, churn_labels
    >>> ds = load_dataset("cdnow_sample")
    >>> X = snapshot_features(ds, "1997-07-01")
    >>> y = churn_labels(ds, X.index, "1997-07-01", 90)
    >>> p = ChurnModel(kind="logistic").fit(X, y).predict_proba(X)
    >>> bool(p.between(0, 1).all())
    True
    """

    def __init__(
        self,
        kind: str = "hgb",
        calibration: str | None = None,
        bands: tuple[float, float] = BANDS,
        seed: int = 0,
        max_rows: int | None = MAX_ROWS,
    ) -> None:
        self.kind = kind
        self.calibration = calibration
        self.bands = bands
        self.seed = seed
        self.max_rows = max_rows

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ChurnModel:
        """Fit on features ``X`` and labels ``y`` (1 = churned).

        Parameters
        ----------
        X
            Snapshot features, one row per customer (:func:`snapshot_features`).
        y
            Churn labels aligned on ``X``'s index (:func:`churn_labels`).

        Returns
        -------
        self
        """
        if self.kind not in KINDS:
            raise ClmError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.calibration not in ("isotonic", "sigmoid", None):
            raise ClmError(f"calibration must be isotonic, sigmoid or None: {self.calibration!r}")
        lo, hi = self.bands
        if not 0 < lo < hi < 1:
            raise ClmError(f"bands must be two thresholds 0 < low < high < 1, got {self.bands}")
        if self.max_rows is not None and self.max_rows < 100:
            raise ClmError(f"max_rows must be None or at least 100, got {self.max_rows}")
        y = pd.Series(y).reindex(X.index)
        self.n_snapshot_rows_ = len(X)
        if self.rows_to_train(len(X)) < len(X):
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(len(X), self.max_rows, replace=False))
            X, y = X.iloc[rows], y.iloc[rows]
        self.n_training_rows_ = len(X)
        counts = y.value_counts()
        if len(counts) < 2 or counts.min() < 10:
            raise ClmError(
                f"training labels need at least 10 churned and 10 retained customers; got "
                f"{counts.to_dict()}"
            )
        estimator = _pipeline(self.kind, self.seed)
        if self.calibration is not None:
            estimator = CalibratedClassifierCV(estimator, method=self.calibration, cv=3)
        self.estimator_ = estimator.fit(X, y.to_numpy())
        self.feature_names_in_ = list(X.columns)
        self.horizon_days_ = X.attrs.get("horizon_days")
        # Reference values for the reasons: what a typical customer looks like.
        self.reference_ = {
            c: (X[c].median() if pd.api.types.is_numeric_dtype(X[c]) else X[c].mode().iloc[0])
            if X[c].notna().any()
            else np.nan
            for c in X.columns
        }
        self.base_rate_ = float(y.mean())
        return self

    def rows_to_train(self, n_rows: int) -> int:
        """How many of ``n_rows`` snapshot rows train the model (``max_rows`` at most)."""
        return n_rows if self.max_rows is None else min(n_rows, self.max_rows)

    @staticmethod
    def sample_words(used: int, rows: int) -> str:
        """The training sample in words, for a report or the CLI ("" when every row
        trained): ``used`` of ``rows`` (``n_training_rows_``, ``n_snapshot_rows_``)."""
        return f"a seeded sample of {used:,} of its {rows:,} rows" if used < rows else ""

    def _check(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, msg="this %(name)s is not fitted yet; call fit(X, y)")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ClmError(f"features missing from the data scored: {missing}")
        horizon = X.attrs.get("horizon_days")
        if None not in (horizon, self.horizon_days_) and horizon != self.horizon_days_:
            raise ClmError(
                f"the features look {horizon} days ahead, the model was trained on "
                f"{self.horizon_days_}: make them with snapshot_features(..., "
                f"horizon_days={self.horizon_days_})"
            )
        return X[self.feature_names_in_]

    def predict_proba(self, X: pd.DataFrame) -> pd.Series:
        """Calibrated probability of churning over the horizon, per customer."""
        X = self._check(X)
        p = self.estimator_.predict_proba(X)[:, 1]
        return pd.Series(p, index=X.index, name="churn_probability")

    def risk_band(self, p: pd.Series) -> pd.Series:
        """``low``, ``medium`` or ``high`` by the ``bands`` thresholds."""
        lo, hi = self.bands
        band = np.select([p < lo, p < hi], ["low", "medium"], "high")
        return pd.Series(
            pd.Categorical(band, ["low", "medium", "high"]), index=p.index, name="risk_band"
        )

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """How much each reason raises each customer's churn probability: the probability
        minus the probability with the reason's features set to a typical customer's values
        (the training median, or the most common category). Features that say one thing
        (recency, the gaps and the overdue ratio; BG/NBD's three scores) are one reason
        (:func:`~clmmodels.churn.reasons.feature_families`), named by its first feature.

        With calibration, the probabilities are those of the first of the cross-validated
        classifier-calibrator pairs: a third of the work of the whole ensemble (which
        dominates a profile's time at a million customers), and the same order of reasons up
        to the pairs' small differences."""
        X = self._check(X)
        pairs = getattr(self.estimator_, "calibrated_classifiers_", None)
        scorer = pairs[0] if pairs else self.estimator_
        base = scorer.predict_proba(X)[:, 1]
        split_on = _split_inputs(scorer)
        typical = X.copy()  # one copy, each family swapped in and back: memory stays 2x X
        out = {}
        for name, members in feature_families(self.feature_names_in_).items():
            if split_on is not None and not split_on.intersection(members):
                # No tree reads them: the swap changes no prediction, exactly (at a million
                # customers a prediction per unused family would be minutes of nothing).
                out[name] = np.zeros(len(X))
                continue
            for c in members:
                typical[c] = pd.Series(self.reference_[c], index=X.index).astype(X[c].dtype)
            out[name] = base - scorer.predict_proba(typical)[:, 1]
            for c in members:
                typical[c] = X[c]
        return pd.DataFrame(out, index=X.index)

    def top_features(self, X: pd.DataFrame, top: int = 3) -> pd.Series:
        """The ``top`` features that raise each customer's churn probability most (by at least
        half a percentage point, :meth:`contributions`), largest first; a list per customer."""
        contrib = self.contributions(X)
        values = contrib.to_numpy()
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        names = np.array(contrib.columns)
        lists = [[names[j] for j in idx if values[i, j] > 0.005] for i, idx in enumerate(order)]
        return pd.Series(lists, index=X.index, name="top_features")

    def reasons(self, X: pd.DataFrame, top: int = 3) -> pd.Series:
        """Why each customer's risk is high, in words: the :meth:`top_features` described
        from the customer's own values ("no purchase for 120 days; usually buys every 30");
        empty where no feature raises the probability."""
        LOG.info("reasons for %s customers", f"{len(X):,}")
        return reasons_in_words(X, self.top_features(X, top), self.reference_, self.horizon_days_)

    def score_customers(self, X: pd.DataFrame, top_reasons: int = 3) -> pd.DataFrame:
        """``churn_probability``, ``risk_band`` and ``reasons`` per customer.

        Parameters
        ----------
        X
            Snapshot features of the customers to score.
        top_reasons
            Features named in each customer's ``reasons``.

        Returns
        -------
        DataFrame
            One row per customer of ``X``: ``churn_probability``, ``risk_band``, ``reasons``.
        """
        LOG.info("scoring %s customers", f"{len(X):,}")
        p = self.predict_proba(X)
        return pd.concat([p, self.risk_band(p), self.reasons(X, top_reasons)], axis=1)
