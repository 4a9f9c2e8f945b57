"""Plots of the lifecycle metrics. Each takes an optional matplotlib ``ax`` and returns it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import axes_or_new


def plot_cohort_heatmap(shares: pd.DataFrame, ax=None, max_periods: int = 18):
    """Cohort retention shares as a heatmap (cohorts down, periods since first purchase across)."""
    data = shares.iloc[:, 1 : max_periods + 1].astype(float)
    ax = axes_or_new(ax, (10, 0.35 * len(data) + 1.5))
    image = ax.imshow(data.to_numpy(), aspect="auto", cmap="Blues", vmin=0)
    ax.set_xticks(range(data.shape[1]), data.columns)
    ax.set_yticks(range(len(data)), [str(c) for c in data.index])
    ax.set_xlabel("periods since first purchase")
    ax.set_ylabel("cohort (first purchase)")
    ax.set_title("Share of each cohort buying again, by period")
    ax.figure.colorbar(image, ax=ax, label="share of cohort")
    return ax


def plot_cohort_curves(shares: pd.DataFrame, ax=None, max_cohorts: int = 8, max_periods: int = 18):
    """Retention curves: each cohort's share buying in period k, one line per cohort.

    The first ``max_cohorts`` cohorts (the longest observed) are drawn, lighter for later
    ones, with the unweighted mean over every cohort's observed cells in black.
    """
    ax = axes_or_new(ax, (9, 4))
    data = shares.iloc[:, : max_periods + 1].astype(float)
    shown = data.iloc[:max_cohorts]
    colours = _blues(len(shown))
    for (cohort, row), colour in zip(shown.iterrows(), colours, strict=True):
        ax.plot(row.index[1:], row.to_numpy()[1:], color=colour, lw=1, label=str(cohort))
    ax.plot(data.columns[1:], data.mean().to_numpy()[1:], color="k", lw=2.2, label="mean")
    ax.set_xlabel(data.columns.name or "periods since first purchase")
    ax.set_ylabel("share of cohort buying")
    ax.set_title("Retention curves by cohort")
    ax.legend(fontsize=7, ncol=2)
    return ax


def _blues(n: int) -> list:
    """``n`` shades of blue, dark (first) to light (last)."""
    from matplotlib import colormaps

    return [colormaps["Blues"](x) for x in np.linspace(0.95, 0.35, max(n, 1))][:n]


def plot_kpi_trends(series: pd.DataFrame, columns: list[str], ax=None, title: str = ""):
    """Monthly KPIs from :func:`kpi_series` as lines."""
    ax = axes_or_new(ax, (9, 3.5))
    for col in columns:
        ax.plot(series.index, series[col], marker="o", label=col.replace("_", " "))
    ax.set_title(title or ", ".join(columns))
    ax.legend()
    return ax
