"""Plots of stage histories and chains. Each takes an optional matplotlib ``ax``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import axes_or_new
from ..vocabulary import STAGES

#: One colour per stage, the same in every plot (funnel blues, purchase greens, churn grey).
STAGE_COLOURS = dict(
    zip(
        STAGES,
        ["#c6dbef", "#6baed6", "#2171b5", "#74c476", "#31a354", "#006d2c", "#fd8d3c", "#969696"],
        strict=True,
    )
)


def plot_transition_heatmap(
    matrix: pd.DataFrame, counts: pd.DataFrame | None = None, ax=None, title: str = ""
):
    """Probabilities as colour; each cell shows the probability and, below, the count."""
    ax = axes_or_new(ax, (8, 6.5))
    P = matrix.to_numpy(dtype=float)
    image = ax.imshow(P, cmap="Blues", vmin=0, vmax=1)
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            text = f"{P[i, j]:.2f}"
            if counts is not None:
                text += f"\n{int(counts.iat[i, j]):,}"
            colour = "white" if P[i, j] > 0.55 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(P.shape[1]), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(P.shape[0]), matrix.index)
    ax.set_xlabel("to stage (next period)")
    ax.set_ylabel("from stage")
    ax.set_title(title or "Stage transition probabilities (and counts)")
    ax.figure.colorbar(image, ax=ax, label="probability", fraction=0.046)
    return ax


def plot_stage_areas(table: pd.DataFrame, ax=None, ylabel: str = "customers", title: str = ""):
    """Stacked area of a table with stages as columns (a distribution, a forecast)."""
    ax = axes_or_new(ax, (10, 4))
    x = table.index.to_timestamp() if isinstance(table.index, pd.PeriodIndex) else table.index
    ax.stackplot(
        x,
        table.to_numpy(dtype=float).T,
        labels=list(table.columns),
        colors=[STAGE_COLOURS[s] for s in table.columns],
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.margins(x=0)
    return ax


def plot_stage_distribution(history, ax=None, share: bool = True):
    """Stacked area of customers (or shares) per stage and period."""
    return plot_stage_areas(
        history.distribution(share=share),
        ax=ax,
        ylabel="share of customers" if share else "customers",
        title="Customers by lifecycle stage over time",
    )


def plot_flows(history, ax=None, t: int = -1, min_share: float = 0.002):
    """Flows between the stages of two consecutive periods (an alluvial diagram)."""
    from matplotlib.patches import Polygon

    ax = axes_or_new(ax, (8, 6))
    flows = history.flows(t).to_numpy(dtype=float)
    total = flows.sum()
    t = t % len(history.periods)
    gap = 0.01 * total
    left = flows.sum(axis=1)
    right = flows.sum(axis=0)
    y_left = np.concatenate([[0], np.cumsum(left + gap)[:-1]])
    y_right = np.concatenate([[0], np.cumsum(right + gap)[:-1]])
    out_off, in_off = y_left.copy(), y_right.copy()
    for i, stage in enumerate(STAGES):
        for j in range(len(STAGES)):
            f = flows[i, j]
            if f <= min_share * total:
                out_off[i] += f
                in_off[j] += f
                continue
            poly = [
                (0.1, out_off[i]),
                (0.9, in_off[j]),
                (0.9, in_off[j] + f),
                (0.1, out_off[i] + f),
            ]
            ax.add_patch(Polygon(poly, closed=True, alpha=0.45, color=STAGE_COLOURS[stage], lw=0))
            out_off[i] += f
            in_off[j] += f
    for x, ys, sizes, align in ((0.0, y_left, left, "right"), (0.9, y_right, right, "left")):
        for k, stage in enumerate(STAGES):
            if sizes[k] == 0:
                continue
            ax.add_patch(
                Polygon(
                    [
                        (x, ys[k]),
                        (x + 0.1, ys[k]),
                        (x + 0.1, ys[k] + sizes[k]),
                        (x, ys[k] + sizes[k]),
                    ],
                    color=STAGE_COLOURS[stage],
                )
            )
            label_x = x - 0.01 if align == "right" else x + 0.11
            ax.text(
                label_x,
                ys[k] + sizes[k] / 2,
                f"{stage} ({int(sizes[k]):,})",
                ha=align,
                va="center",
                fontsize=8,
            )
    ax.set_xlim(-0.35, 1.35)
    ax.set_ylim(max(y_left[-1] + left[-1], y_right[-1] + right[-1]), 0)
    ax.axis("off")
    ax.set_title(
        f"Customers moving between stages: {history.periods[t - 1]} to {history.periods[t]}"
    )
    return ax


def plot_time_to_churn(chain, ax=None):
    """Horizontal bars: expected periods until first churn, from each stage."""
    ax = axes_or_new(ax, (7, 4))
    times = chain.time_to_absorption("churned").drop("churned")
    ax.barh(
        times.index[::-1],
        times.to_numpy()[::-1],
        color=[STAGE_COLOURS.get(s, "grey") for s in times.index[::-1]],
    )
    for y, v in enumerate(times.to_numpy()[::-1]):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("expected periods until churn")
    ax.set_title("How long customers stay, by the stage they are in")
    return ax
