"""Holdout validation tables and the CLV plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from clmmodels import calibration_holdout, simulate_company
from clmmodels.clv import BetaGeoModel, GammaGammaModel, ParetoNBDModel, predicted_clv
from clmmodels.clv.plots import (
    plot_calibration_vs_holdout,
    plot_clv_distribution,
    plot_tracking,
)
from clmmodels.clv.validation import (
    compare_models,
    conditional_expectations,
    holdout_errors,
    tracking,
)
from clmmodels.rfm import calibration_part


@pytest.fixture(scope="module")
def cdnow_ch(cdnow_sample):
    return calibration_holdout(cdnow_sample.transactions, "1997-09-30", "1998-06-30")


@pytest.fixture(scope="module")
def cdnow_bg(cdnow_ch):
    return BetaGeoModel().fit(calibration_part(cdnow_ch))


@pytest.mark.published
def test_conditional_expectations_table(cdnow_ch, cdnow_bg):
    table = conditional_expectations(cdnow_bg, cdnow_ch)
    assert table.index.tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["customers"].sum() == len(cdnow_ch)
    # Actual means by hand, independently of the table's grouping code.
    zero = cdnow_ch[cdnow_ch["frequency_cal"] == 0]["frequency_holdout"].mean()
    assert table.loc["0", "actual"] == pytest.approx(zero)
    assert table["predicted"].is_monotonic_increasing


def test_tracking_counts_every_repeat_purchase(cdnow_sample, cdnow_ch, cdnow_bg):
    for end in ("1998-06-30", "1998-06-27"):  # whole and partial last week
        ch = calibration_holdout(cdnow_sample.transactions, "1997-09-30", end)
        tr = tracking(cdnow_bg, cdnow_sample.transactions, "1997-09-30", end)
        assert tr["actual"].sum() == ch["frequency_cal"].sum() + ch["frequency_holdout"].sum()
        cal = tr[tr["period"] == "calibration"]
        assert cal["actual"].sum() == ch["frequency_cal"].sum()
    # The fitted model reproduces the calibration total it was fitted on within a few percent.
    last = cal.iloc[-1]
    assert last["cumulative_expected"] == pytest.approx(last["cumulative_actual"], rel=0.05)


@pytest.mark.slow
def test_holdout_forecast_is_right_when_the_model_is_right():
    company = simulate_company(n_customers=5000, seed=8)
    tx = company.tables["transactions"]
    ch = calibration_holdout(tx, "2024-06-30", "2024-12-31")
    bg = BetaGeoModel().fit(calibration_part(ch))
    errors = holdout_errors(bg, ch)
    # Measured over seeds 1-12 (5,000 customers acquired every month): total error mean
    # +1.3%, sd 4.2% with fitted parameters (seed 8 the largest, +11.4%), so 3 sd is the bound.
    assert abs(errors["total_error_pct"]) < 12.6
    tr = tracking(bg, tx, "2024-06-30", "2024-12-31")
    assert tr["cumulative_expected"].iloc[-1] == pytest.approx(
        tr["cumulative_actual"].iloc[-1], rel=0.05
    )


def test_model_comparison_table(cdnow_ch):
    table = compare_models(cdnow_ch)
    assert table.index.tolist() == ["BG/NBD", "Pareto/NBD", "MBG/NBD"]
    assert table.loc["BG/NBD", "log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    assert (table["aic"] == 2 * 4 - 2 * table["log_likelihood"]).all()
    assert (table["actual_total"] == cdnow_ch["frequency_holdout"].sum()).all()
    assert (table["mae"] > 0).all()


def test_plots_draw_on_given_axes(cdnow_sample, cdnow_ch, cdnow_bg):
    cal = calibration_part(cdnow_ch)
    fig, axes = plt.subplots(2, 4)
    ax = cdnow_bg.plot_period_transactions(cal, ax=axes[0, 0])
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights[:8]) == len(cal)  # actual bars count every customer
    assert sum(heights[8:]) == pytest.approx(len(cal), rel=1e-9)  # so do the model's
    assert cdnow_bg.plot_frequency_recency_matrix(T=39, ax=axes[0, 1]) is axes[0, 1]
    assert cdnow_bg.plot_p_alive_matrix(T=39, ax=axes[0, 2]) is axes[0, 2]
    ParetoNBDModel().fit(cal).plot_period_transactions(cal, ax=axes[0, 3])
    plot_calibration_vs_holdout(conditional_expectations(cdnow_bg, cdnow_ch), ax=axes[1, 0])
    plot_tracking(
        tracking(cdnow_bg, cdnow_sample.transactions, "1997-09-30", "1998-06-30"), ax=axes[1, 1]
    )
    ax = cdnow_bg.plot_p_alive_history(
        cdnow_sample.transactions, "00004", "1998-06-30", ax=axes[1, 2]
    )
    p = ax.get_lines()[0].get_ydata()
    assert p[0] == 1.0 and np.all((p > 0) & (p <= 1))
    clv = predicted_clv(cdnow_bg, GammaGammaModel().fit(cal), cal)
    assert plot_clv_distribution(clv, ax=axes[1, 3]) is axes[1, 3]
    plt.close(fig)
