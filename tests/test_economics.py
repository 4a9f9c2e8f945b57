"""Unit economics (CLV:CAC, CAC payback) and engagement, on tables small enough to do by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clmmodels import dataset_from_frames
from clmmodels.economics import (
    ALL,
    cac_payback,
    clv_to_cac,
    payback_curves,
    plot_cac_by_channel,
    plot_clv_to_cac,
    plot_payback,
    spend_window,
)
from clmmodels.errors import MissingTableError
from clmmodels.metrics import engagement

MONTH = pd.Timedelta(days=365.25 / 12)


@pytest.fixture
def shop():
    """Two channels, January's spend; the data ends 2024-06-30 (observation to 07-01)."""
    t0 = pd.Timestamp("2024-01-01")
    return dataset_from_frames(
        transactions=pd.DataFrame(
            [
                ("a", t0, 40.0),  # search: 40 in month 1, 30 more in month 3
                ("a", t0 + 2 * MONTH + pd.Timedelta(days=1), 30.0),
                ("b", pd.Timestamp("2024-01-20"), 10.0),  # search: 10 and nothing more
                ("c", pd.Timestamp("2024-01-10"), 100.0),  # social: pays back at once
                ("d", pd.Timestamp("2024-06-30"), 5.0),  # acquired in June: outside the window
            ],
            columns=["customer_id", "timestamp", "amount"],
        ),
        customers=pd.DataFrame(
            {
                "customer_id": ["a", "b", "c", "d", "e"],
                # e: acquired, no purchase yet
                "acquired_at": pd.to_datetime(
                    ["2024-01-01", "2024-01-20", "2024-01-10", "2024-06-30", "2024-01-25"]
                ),
                "acquisition_channel": ["search", "search", "social", "search", "social"],
            }
        ),
        marketing_spend=pd.DataFrame(
            {
                "date": ["2024-01-01", "2024-01-15", "2024-01-31"],
                "channel": ["search", "search", "social"],
                "spend": [50.0, 10.0, 80.0],
            }
        ),
    )


def test_spend_window_is_whole_months(shop):
    assert spend_window(shop) == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"))


def test_clv_to_cac_historical_by_hand(shop):
    t = clv_to_cac(shop)
    # January: search spent 60 on a and b (CAC 30); social 80 on c and e (CAC 40).
    assert t.loc["search", "cac"] == 30 and t.loc["social", "cac"] == 40
    assert t.loc["search", "mean_clv"] == (70 + 10) / 2
    assert t.loc["social", "mean_clv"] == (100 + 0) / 2  # e counts, with nothing spent
    assert t.loc["social", "without_clv"] == 1
    assert t.loc["search", "clv_to_cac"] == pytest.approx(40 / 30)
    assert t.loc[ALL, "cac"] == 140 / 4 and t.loc[ALL, "new_customers"] == 4
    assert t.loc[ALL, "clv_to_cac"] == pytest.approx((180 / 4) / 35)
    assert set(t["basis"]) == {"historical"}


def test_clv_to_cac_with_predicted_clv_and_margin(shop):
    predicted = pd.Series({"a": 90.0, "b": 30.0, "c": 60.0})  # e has none: counted as 0
    t = clv_to_cac(shop, clv=predicted, margin=0.5)
    assert t.loc["search", "mean_clv"] == 0.5 * 60 and t.loc["social", "mean_clv"] == 0.5 * 30
    assert t.loc["social", "without_clv"] == 1
    assert set(t["basis"]) == {"predicted"}
    with pytest.raises(ValueError, match="margin"):
        clv_to_cac(shop, margin=0)


def test_payback_curves_by_hand(shop):
    curves = payback_curves(shop, max_months=8, min_customers=1)
    # Observed months to 2024-07-01: a 5, b 5, c 5, e 5 (January acquisitions).
    search = curves["search"]
    assert search[0] == 0
    assert search[1] == (40 + 10) / 2  # first purchases
    assert search[2] == 25 and search[3] == (70 + 10) / 2  # a's second purchase in month 3
    assert search[5] == 40 and np.isnan(search[6])  # nobody observed six months
    assert curves["social"][1] == 50  # c's 100 and e's nothing


def test_payback_curve_never_falls_when_the_cohorts_seen_change():
    """An early customer who spends little, a later one who spends much: only the early one
    is observed two months. The curve adds month 2's mean revenue (the early customer's 5)
    to month 1's (50); the mean total of those observed two months would fall to 15."""
    ds = dataset_from_frames(
        transactions=pd.DataFrame(
            {
                "customer_id": ["early", "early", "late", "other"],
                "timestamp": pd.to_datetime(
                    ["2024-01-02", "2024-02-10", "2024-02-20", "2024-03-25"]
                ),  # the data end on 03-25: early observed 2 months, late 1
                "amount": [10.0, 5.0, 90.0, 1.0],
            }
        ),
        customers=pd.DataFrame(
            {
                "customer_id": ["early", "late", "other"],
                "acquired_at": pd.to_datetime(["2024-01-01", "2024-02-20", "2024-03-25"]),
                "acquisition_channel": ["search", "search", "social"],
            }
        ),
        marketing_spend=pd.DataFrame(
            {"date": ["2024-01-01"], "channel": ["search"], "spend": [10.0]}
        ),
    )
    search = payback_curves(ds, "2024-01-01", "2024-03-01", max_months=3, min_customers=1)["search"]
    assert search[1] == (10 + 90) / 2 and search[2] == 50 + 5 and np.isnan(search[3])


def test_cac_payback_by_hand(shop):
    p = cac_payback(shop, max_months=8, min_customers=1)
    # Search: CAC 30 is reached at month 3 (25 before); social: CAC 40, reached at once.
    assert p.loc["search", "payback_months"] == 3
    assert p.loc["social", "payback_months"] == 1
    assert p.loc["search", "months_observed"] == 5 and p["reached"].all()
    curves = payback_curves(shop, max_months=8, min_customers=1)  # computed once, passed in
    given = cac_payback(shop, max_months=8, min_customers=1, curves=curves)
    pd.testing.assert_frame_equal(given, p)
    never = cac_payback(
        shop, max_months=8, margin=0.1, min_customers=1
    )  # 10% margin: search never pays back
    assert not never.loc["search", "reached"] and np.isnan(never.loc["search", "payback_months"])


def test_unit_economics_need_spend(cdnow_sample):
    with pytest.raises(MissingTableError, match="marketing_spend"):
        clv_to_cac(cdnow_sample)


def test_plots_draw_on_a_given_axis(shop):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    table = clv_to_cac(shop)
    assert plot_cac_by_channel(table, ax=axes[0]) is axes[0]
    assert len(axes[1].patches) == 0
    plot_clv_to_cac(table, ax=axes[1])
    assert len(axes[1].patches) == 2  # one bar per channel, not the blended row
    plot_payback(
        payback_curves(shop, max_months=6, min_customers=1),
        cac_payback(shop, max_months=6, min_customers=1),
        ax=axes[2],
    )
    assert len(axes[2].lines) == 2 + 2  # two curves, two CAC lines
    plt.close(fig)


def test_engagement_by_hand():
    ds = dataset_from_frames(
        transactions=pd.DataFrame(
            {"customer_id": ["a", "b"], "timestamp": ["2024-01-05", "2024-02-10"],
             "amount": [1.0, 1.0]}
        ),
        events=pd.DataFrame(
            {"customer_id": ["a", "a", "p", "b"],
             "timestamp": ["2024-01-02", "2024-01-31T23:59:59", "2024-01-20", "2024-02-01"],
             "event_type": ["site_visit", "email_open", "site_visit", "app_open"]}
        ),
    )  # fmt: skip
    e = engagement(ds, "2024-01-01", "2024-03-01")
    assert e.loc["2024-01-01"].to_dict() == {
        "events": 3,  # a twice, the prospect p once
        "customers_with_events": 2,
        "active": 1,  # a bought in January; b not yet
        "events_per_active": 3.0,
    }
    assert e.loc["2024-02-01", "active"] == 2 and e.loc["2024-02-01", "events_per_active"] == 0.5


def test_engagement_needs_events(cdnow_sample):
    with pytest.raises(MissingTableError, match="events"):
        engagement(cdnow_sample, "1997-01-01", "1997-03-01")


def test_simulated_channels_differ_in_cost(small_company):
    """The simulated company's channels have different CACs (set in the simulator)."""
    ds = dataset_from_frames(**small_company.tables)
    t = clv_to_cac(ds)
    assert t.loc[ALL, "new_customers"] == t.drop(index=ALL)["new_customers"].sum()
    assert t.loc[ALL, "spend"] == pytest.approx(ds.marketing_spend["spend"].sum())
    assert t["cac"].drop(index=ALL).max() > 2 * t["cac"].drop(index=ALL).min()


def test_payback_cells_on_few_customers_are_missing(shop):
    """Two search customers are too few for a default curve; with 2 allowed, it is drawn."""
    assert payback_curves(shop, max_months=6)["search"].isna().all()
    two = payback_curves(shop, max_months=6, min_customers=2)
    assert two["search"][1] == 25 and two[ALL][5] == (70 + 10 + 100 + 0) / 4
    assert two["search"].notna().sum() == 6  # months 0-5: both observed five months
    assert payback_curves(shop, max_months=6, min_customers=5)[ALL].isna().all()
