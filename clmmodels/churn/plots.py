"""Plots of a churn backtest. Each takes an optional matplotlib ``ax``."""

from __future__ import annotations

from ..plotting import axes_or_new


def plot_gains(backtest, ax=None):
    """Cumulative share of churners found against the share of customers targeted."""
    ax = axes_or_new(ax, (6, 4.5))
    gains = backtest.gains()
    step = max(len(gains) // 400, 1)
    sampled = gains.iloc[::step]
    for name in backtest.scores.columns:
        ax.plot(sampled["targeted"], sampled[name], label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="random")
    ax.set_xlabel("share of customers targeted (highest scores first)")
    ax.set_ylabel("share of churners found")
    ax.set_title("Gains chart")
    ax.legend(fontsize=8)
    return ax


def plot_calibration(backtest, ax=None):
    """Predicted against observed churn rate in deciles of each probability scorer."""
    ax = axes_or_new(ax, (5, 4.5))
    for name in backtest.probabilities:
        curve = backtest.calibration(name)
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect")
    ax.set_xlabel("predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Calibration (deciles of predictions)")
    ax.legend(fontsize=8)
    return ax


def plot_importance(backtest, ax=None, top: int = 15):
    """Permutation importance: the drop in ROC-AUC when a feature is shuffled."""
    imp = backtest.importance.head(top).iloc[::-1]
    ax = axes_or_new(ax, (7, 0.3 * len(imp) + 1.2))
    ax.barh(imp.index, imp["mean"], xerr=imp["std"], color="#3182bd")
    ax.set_xlabel("drop in ROC-AUC when shuffled")
    kind = backtest.training.get("importance_of", "the classifier")
    ax.set_title(f"What {kind} relies on (permutation importance)")
    return ax
