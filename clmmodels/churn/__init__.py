"""Churn classifiers on time-based snapshots, and their honest comparison with BG/NBD."""

from .backtest import Backtest, backtest, fit_churn_model, training_snapshots
from .features import WINDOWS, churn_labels, event_features, snapshot_features
from .model import BANDS, ChurnModel

__all__ = [
    "BANDS",
    "WINDOWS",
    "Backtest",
    "ChurnModel",
    "backtest",
    "churn_labels",
    "event_features",
    "fit_churn_model",
    "snapshot_features",
    "training_snapshots",
]
