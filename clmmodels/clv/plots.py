"""Plots of the CLV models. Each takes an optional matplotlib ``ax`` and returns it."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from ..plotting import axes_or_new as _ax
from ..timeunits import DAYS_PER_UNIT, UNIT_NAMES, as_day, purchase_day


class PurchaseModel(Protocol):
    """What these plots ask of a fitted purchase model (:class:`~clmmodels.clv.base.BTYDModel`
    has it; the models import their plots, so the plots name no model class)."""

    name: str
    freq: str

    def p_alive(self, rfm: pd.DataFrame) -> pd.Series: ...

    def expected_purchases(self, rfm: pd.DataFrame, weeks: float) -> pd.Series: ...

    def simulate_repeat_counts(self, T: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def plot_period_transactions(
    model: PurchaseModel, rfm: pd.DataFrame, max_frequency: int = 7, seed: int = 0, ax=None
):
    """Customers by number of repeat purchases: actual against the model (seeded simulation)."""
    ax = _ax(ax)
    rng = np.random.default_rng(seed)
    T = rfm["T"].to_numpy(float)
    draws = 20
    simulated = np.concatenate([model.simulate_repeat_counts(T, rng) for _ in range(draws)])
    bins = np.arange(max_frequency + 1)
    actual = np.bincount(
        np.minimum(rfm["frequency"].to_numpy(int), max_frequency), minlength=max_frequency + 1
    )
    expected = (
        np.bincount(np.minimum(simulated, max_frequency), minlength=max_frequency + 1) / draws
    )
    width = 0.4
    ax.bar(bins - width / 2, actual, width, label="actual", color="#1f77b4")
    ax.bar(bins + width / 2, expected, width, label=model.name, color="#ff7f0e")
    ax.set_xticks(bins, [*map(str, bins[:-1]), f"{max_frequency}+"])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("customers")
    ax.set_title("Customers by repeat purchases: actual and model")
    ax.legend()
    return ax


def _grid(
    model: PurchaseModel, max_frequency: int, T: float
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    x = np.arange(max_frequency + 1)
    recency = np.linspace(0, T, 60)
    xx, rr = np.meshgrid(x, recency, indexing="ij")
    grid = pd.DataFrame({"frequency": xx.ravel(), "recency": rr.ravel(), "T": T})
    grid.loc[grid["frequency"] == 0, "recency"] = 0.0
    grid.attrs["freq"] = model.freq
    return x, recency, grid


def _matrix_plot(ax, values, x, recency, title, label, unit):
    image = ax.imshow(
        values, origin="lower", aspect="auto", cmap="viridis",
        extent=(recency[0], recency[-1], x[0] - 0.5, x[-1] + 0.5),
    )  # fmt: skip
    ax.set_xlabel(f"recency: time of last purchase ({unit})")
    ax.set_ylabel("frequency: repeat purchases")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label=label)
    return ax


def plot_frequency_recency_matrix(
    model: PurchaseModel, T: float, max_frequency: int = 20, horizon_weeks: float = 4, ax=None
):
    """Expected purchases in the next ``horizon_weeks`` by frequency and recency, at age ``T``."""
    ax = _ax(ax)
    x, recency, grid = _grid(model, max_frequency, T)
    values = (
        model.expected_purchases(grid, weeks=horizon_weeks).to_numpy().reshape(len(x), len(recency))
    )
    unit = UNIT_NAMES[model.freq]
    title = f"Expected purchases in the next {horizon_weeks:g} weeks ({model.name})"
    return _matrix_plot(ax, values, x, recency, title, "expected purchases", unit)


def plot_p_alive_matrix(model: PurchaseModel, T: float, max_frequency: int = 20, ax=None):
    """Probability of being alive by frequency and recency, for customers of age ``T``."""
    ax = _ax(ax)
    x, recency, grid = _grid(model, max_frequency, T)
    values = model.p_alive(grid).to_numpy().reshape(len(x), len(recency))
    unit = UNIT_NAMES[model.freq]
    return _matrix_plot(ax, values, x, recency, f"P(alive) ({model.name})", "P(alive)", unit)


def plot_calibration_vs_holdout(table: pd.DataFrame, ax=None):
    """Mean holdout purchases by calibration frequency (:func:`conditional_expectations`)."""
    ax = _ax(ax)
    ax.plot(table.index, table["actual"], marker="o", label="actual")
    ax.plot(table.index, table["predicted"], marker="s", label="model")
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout period")
    ax.set_title("Conditional expectations: calibration against holdout")
    ax.legend()
    return ax


def plot_tracking(table: pd.DataFrame, cumulative: bool = True, ax=None):
    """Repeat purchases per week across calibration and holdout (:func:`tracking`)."""
    ax = _ax(ax, (9, 4))
    if cumulative:
        actual, expected = table["cumulative_actual"], table["cumulative_expected"]
    else:  # per 7 days, so a short last week does not look like a drop
        actual = table["actual"] * 7 / table["days"]
        expected = table["expected"] * 7 / table["days"]
    ax.plot(table["week_end"], actual, label="actual")
    ax.plot(table["week_end"], expected, linestyle="--", label="model")
    ax.axvline(
        pd.Timestamp(table.attrs["calibration_end"]),
        color="grey",
        linestyle=":",
        label="calibration end",
    )
    ax.set_ylabel(("cumulative " if cumulative else "") + "repeat purchases")
    ax.set_title(("Cumulative" if cumulative else "Weekly") + " repeat purchases: actual and model")
    ax.legend()
    return ax


def plot_p_alive_history(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    customer_id: str,
    observation_end: str | pd.Timestamp,
    ax=None,
):
    """One customer's P(alive) day by day from the first purchase, purchases marked."""
    ax = _ax(ax, (9, 3))
    end = as_day(observation_end, "observation_end")
    days = purchase_day(transactions.loc[transactions["customer_id"] == customer_id, "timestamp"])
    days = np.sort(days[days <= end].unique())
    if len(days) == 0:
        raise ValueError(f"customer {customer_id!r} has no purchase by {end.date()}")
    calendar = pd.date_range(days[0], end, freq="D")
    first = calendar[0]
    n_before = np.searchsorted(days, calendar, side="right")  # purchase days up to each day
    last = days[n_before - 1]
    unit = DAYS_PER_UNIT[model.freq]
    hist = pd.DataFrame(
        {
            "frequency": n_before - 1,
            "recency": (pd.DatetimeIndex(last) - first).days / unit,
            "T": (calendar - first).days / unit,
        }
    )
    hist.attrs["freq"] = model.freq
    ax.plot(calendar, model.p_alive(hist), label="P(alive)")
    for d in days:
        ax.axvline(d, color="grey", linestyle=":", linewidth=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("P(alive)")
    ax.set_title(f"Customer {customer_id}: P(alive) over time (dotted: purchases)")
    return ax


def plot_clv_distribution(clv: pd.Series, ax=None, bins: int = 50):
    """Histogram of predicted CLV (log scale on counts: a few customers hold most value)."""
    ax = _ax(ax)
    ax.hist(clv, bins=bins, color="#2a9d8f")
    ax.set_yscale("log")
    ax.set_xlabel("predicted CLV")
    ax.set_ylabel("customers (log scale)")
    ax.set_title(f"Predicted CLV of {len(clv):,} customers; total {clv.sum():,.0f}")
    return ax
