"""Training on earlier snapshots, scoring at as-of, and the backtest against baselines.

Time-based design: a training snapshot at date ``t`` has features from before ``t`` and the
label "no transaction in [t, t + horizon)"; only snapshots whose label window ends by
``as_of`` are used, so scoring at ``as_of`` needs nothing from after it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from ..dataset import Dataset
from ..engines import DEFAULT_ENGINE
from ..errors import ClmError
from ..timeunits import as_day
from ..vocabulary import ACTIVE_WINDOW_DAYS
from .features import churn_labels, data_end, snapshot_features, transaction_span
from .model import ChurnModel

_DAY = pd.Timedelta(days=1)
#: Steps of long runs, for the command line's progress (silent unless a handler is set).
LOG = logging.getLogger(__name__)
VALIDATIONS = ("temporal", "customers")


def training_snapshots(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    horizon_days: int,
    n_snapshots: int = 3,
    step_days: int | None = None,
    engine: str = DEFAULT_ENGINE,
) -> tuple[pd.DataFrame, pd.Series, list[pd.Timestamp]]:
    """Features and labels of up to ``n_snapshots`` snapshots whose label windows end by
    ``as_of`` (the latest at ``as_of - horizon``, then every ``step_days``, by default the
    horizon). Snapshots with less than one horizon of data before them are skipped: a few
    days of history teach nothing, and BG/NBD cannot be fitted on them. Rows are indexed by
    (snapshot, customer_id)."""
    at = as_day(as_of, "as_of")
    step = pd.Timedelta(days=step_days or horizon_days)
    first = transaction_span(ds, engine)[0].normalize()
    xs, ys, dates = [], [], []
    for k in range(n_snapshots):
        t = at - pd.Timedelta(days=horizon_days) - k * step
        if t - first < pd.Timedelta(days=horizon_days):
            break
        LOG.info("training snapshot %d of up to %d: features at %s", k + 1, n_snapshots, t.date())
        X = snapshot_features(ds, t, horizon_days=horizon_days, engine=engine)
        xs.append(X)
        ys.append(churn_labels(ds, X.index, t, horizon_days, engine))
        dates.append(t)
    if not xs:
        raise ClmError(
            f"no training snapshot: a {horizon_days}-day label window ending by {at.date()} "
            f"starts less than {horizon_days} days after the first transaction "
            f"({first.date()}); use a later as-of or a shorter horizon"
        )
    X = pd.concat(xs, keys=dates, names=["snapshot", "customer_id"])
    X.attrs = {"horizon_days": horizon_days}
    y = pd.concat(ys, keys=dates, names=["snapshot", "customer_id"])
    return X, y, dates


def fit_churn_model(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    horizon_days: int,
    kind: str = "hgb",
    n_snapshots: int = 3,
    seed: int = 0,
    engine: str = DEFAULT_ENGINE,
) -> ChurnModel:
    """A :class:`ChurnModel` trained on the snapshots before ``as_of`` (see the module doc);
    ``engine`` aggregates the snapshots' features."""
    snapshots = training_snapshots(ds, as_of, horizon_days, n_snapshots, engine=engine)
    return _fit_on(snapshots, kind, seed)


def _fit_on(snapshots: tuple[pd.DataFrame, pd.Series, list[pd.Timestamp]], kind: str, seed: int):
    X, y, dates = snapshots
    model = ChurnModel(kind=kind, seed=seed)
    n = model.rows_to_train(len(X))
    LOG.info("fitting %s on %s of %s snapshot rows", kind, f"{n:,}", f"{len(X):,}")
    model.fit(X, y)
    model.snapshots_ = dates
    return model


def bgnbd_baselines(X: pd.DataFrame) -> pd.DataFrame:
    """BG/NBD's scores from the snapshot's own features (:func:`.features.purchase_model_features`,
    fitted on the transactions before the snapshot): P(no purchase in the horizon), a
    probability, and minus the expected purchases, a ranking."""
    return pd.DataFrame(
        {
            "bgnbd_p_no_purchase": X["bgnbd_p_no_purchase"],
            "bgnbd_expected_purchases": -X["bgnbd_expected_purchases"],
        }
    )


def score_metrics(y: np.ndarray, score: np.ndarray, probability: bool) -> dict[str, float]:
    """ROC-AUC, PR-AUC, top-decile lift, and (for probabilities) Brier score and log loss."""
    n_top = max(int(np.ceil(0.1 * len(y))), 1)
    top = np.argsort(-score, kind="stable")[:n_top]
    out = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": float(y[top].mean() / y.mean()),
        "brier": float("nan"),
        "log_loss": float("nan"),
    }
    if probability:
        p = np.clip(score, 1e-6, 1 - 1e-6)
        out["brier"] = float(brier_score_loss(y, p))
        out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    return out


@dataclass
class Backtest:
    """Out-of-sample churn scores and labels of every scorer, and what they add up to."""

    as_of: pd.Timestamp
    horizon_days: int
    validation: str
    labels: pd.Series
    scores: pd.DataFrame  # one column per scorer
    probabilities: list[str]  # the scorers whose scores are probabilities
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    training: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # temporal validation: the fitted classifiers
    #: Customers still plausibly alive at ``as_of``: active, not lapsed, as the summary
    #: counts it (a purchase in the ``ACTIVE_WINDOW_DAYS`` before it): a definition no scorer
    #: made, so that no scorer is judged on its own terms.
    alive: pd.Series | None = None

    def _metrics(self, rows: np.ndarray | slice) -> pd.DataFrame:
        y = self.labels.to_numpy()[rows]
        table = {
            name: score_metrics(y, self.scores[name].to_numpy()[rows], name in self.probabilities)
            for name in self.scores.columns
        }
        out = pd.DataFrame(table).T
        out.index.name = "scorer"
        return out

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """One row per scorer: ROC-AUC, PR-AUC, top-decile lift, Brier score, log loss, over
        every customer of the snapshot."""
        return self._metrics(slice(None))

    @functools.cached_property
    def table_alive(self) -> pd.DataFrame:
        """:attr:`table` over the customers still plausibly alive only (:attr:`alive`): the
        ones a retention campaign can still reach. Customers long gone are easy to rank as
        churners, so every scorer looks better over everyone; this table is the harder test.
        Empty when there are not both churners and buyers among them."""
        if self.alive is None:
            return pd.DataFrame()
        rows = self.alive.reindex(self.labels.index, fill_value=False).to_numpy()
        if len(np.unique(self.labels.to_numpy()[rows])) < 2:
            return pd.DataFrame()
        return self._metrics(rows)

    def gains(self) -> pd.DataFrame:
        """Share of churners found against the share of customers targeted, per scorer."""
        y = self.labels.to_numpy()
        share = np.arange(1, len(y) + 1) / len(y)
        out = {"targeted": share}
        for name in self.scores.columns:
            order = np.argsort(-self.scores[name].to_numpy(), kind="stable")
            out[name] = np.cumsum(y[order]) / y.sum()
        return pd.DataFrame(out)

    def calibration(self, scorer: str, n_bins: int = 10) -> pd.DataFrame:
        """Mean predicted against observed churn in quantile bins of one probability scorer."""
        observed, predicted = calibration_curve(
            self.labels, self.scores[scorer], n_bins=n_bins, strategy="quantile"
        )
        return pd.DataFrame({"predicted": predicted, "observed": observed})

    def to_dict(self) -> dict:
        table = self.table.astype(object).where(self.table.notna(), None)
        return {
            "as_of": str(self.as_of.date()),
            "horizon_days": self.horizon_days,
            "validation": self.validation,
            "customers": len(self.labels),
            "churn_rate": float(self.labels.mean()),
            "table": table.to_dict(orient="index"),
            "alive_customers": int(self.alive.sum()) if self.alive is not None else None,
            "table_alive": (
                self.table_alive.astype(object)
                .where(self.table_alive.notna(), None)
                .to_dict(orient="index")
            ),
            "training": self.training,
            "importance": self.importance["mean"].to_dict() if len(self.importance) else {},
        }

    def how_trained(self) -> str:
        """How the classifiers were trained, in words for a report: on which snapshots, or in
        which folds, and on a sample of their rows where ``ChurnModel``'s ``max_rows`` drew
        one (nothing left out unsaid)."""
        from ..present import date

        t = self.training
        if self.validation == "temporal":
            text = f"trained on the snapshots of {', '.join(date(s) for s in t['snapshots'])}"
        else:
            text = "scored 5-fold: each customer by a model trained on the other customers"
        sample = ChurnModel.sample_words(t.get("training_rows", 0), t.get("snapshot_rows", 0))
        return f"{text} (each model on {sample})" if sample else text

    def plot_gains(self, ax=None):
        from .plots import plot_gains

        return plot_gains(self, ax=ax)

    def plot_calibration(self, ax=None):
        from .plots import plot_calibration

        return plot_calibration(self, ax=ax)

    def plot_importance(self, ax=None, top: int = 15):
        from .plots import plot_importance

        return plot_importance(self, ax=ax, top=top)


def backtest(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    horizon_days: int,
    validation: str = "temporal",
    kinds: tuple[str, ...] = ("hgb", "logistic"),
    n_snapshots: int = 3,
    seed: int = 0,
    importance_repeats: int = 5,
    engine: str = DEFAULT_ENGINE,
) -> Backtest:
    """Evaluate churn classifiers and baselines on the customers of the snapshot at ``as_of``.

    Parameters
    ----------
    validation
        ``"temporal"``: the classifiers train on earlier snapshots (label windows ending by
        ``as_of``) and score ``as_of``, as in production. ``"customers"``: 5-fold
        out-of-fold scores at ``as_of``, for data too short for an earlier snapshot (each
        customer is scored by a model that never saw them).
    kinds
        Classifiers to compare (``hgb``, ``logistic``).
    engine
        ``"duckdb"`` or ``"spark"``: where the snapshots' features and labels are aggregated.

    Returns
    -------
    Backtest
        Scores of the classifiers, BG/NBD (P(no purchase) and expected purchases) and the
        recency rule (days since the last purchase) on the same customers; ``table`` has
        the metrics and ``importance`` the permutation importance of the first classifier.
    """
    if validation not in VALIDATIONS:
        raise ClmError(f"validation must be one of {', '.join(VALIDATIONS)}, got {validation!r}")
    at = as_day(as_of, "as_of")
    LOG.info("backtest at %s: features and labels", at.date())
    X = snapshot_features(ds, at, horizon_days=horizon_days, engine=engine)
    y = churn_labels(ds, X.index, at, horizon_days, engine)
    scores = pd.DataFrame(index=X.index)
    training: dict = {"features": list(X.columns)}
    models: dict[str, ChurnModel] = {}
    first_model = None
    if validation == "temporal":  # the same snapshots train every classifier
        snapshots = training_snapshots(ds, at, horizon_days, n_snapshots, engine=engine)
        training["snapshots"] = [str(d.date()) for d in snapshots[2]]
    for kind in kinds:
        if validation == "temporal":
            model = models[kind] = _fit_on(snapshots, kind, seed)
            scores[kind] = model.predict_proba(X)
            first_model = first_model or model
        else:
            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
            oof = np.empty(len(X))
            for train, test in folds.split(X, y):
                model = ChurnModel(kind=kind, seed=seed).fit(X.iloc[train], y.iloc[train])
                oof[test] = model.predict_proba(X.iloc[test]).to_numpy()
                first_model = first_model or model
            scores[kind] = oof
            training["folds"] = 5
    if first_model is not None:  # the first classifier's rows: every classifier's, every fold's
        training["snapshot_rows"] = first_model.n_snapshot_rows_
        training["training_rows"] = first_model.n_training_rows_
    scores = scores.join(bgnbd_baselines(X))
    scores["recency_rule"] = X["recency_days"]
    alive = X["recency_days"] <= ACTIVE_WINDOW_DAYS
    importance = pd.DataFrame()
    if importance_repeats and first_model is not None:
        LOG.info("backtest: permutation importance (%d repeats)", importance_repeats)
        result = permutation_importance(
            first_model.estimator_, X[first_model.feature_names_in_], y.to_numpy(),
            scoring="roc_auc", n_repeats=importance_repeats, random_state=seed,
        )  # fmt: skip
        importance = pd.DataFrame(
            {"mean": result.importances_mean, "std": result.importances_std},
            index=first_model.feature_names_in_,
        ).sort_values("mean", ascending=False)
        training["importance_of"] = first_model.kind
    return Backtest(
        as_of=at,
        horizon_days=horizon_days,
        validation=validation,
        labels=y,
        scores=scores,
        probabilities=[*kinds, "bgnbd_p_no_purchase"],
        importance=importance,
        training=training,
        models=models,
        alive=alive,
    )


def latest_backtest_date(
    ds: Dataset, as_of: pd.Timestamp, horizon_days: int, engine: str = DEFAULT_ENGINE
) -> pd.Timestamp:
    """``as_of`` when the data covers the horizon after it, else ``as_of - horizon``."""
    if as_of + pd.Timedelta(days=horizon_days) <= data_end(ds, engine):
        return as_of
    return as_of - pd.Timedelta(days=horizon_days)
