"""Churn reasons in words: each feature family's phrase, from the customer's own values."""

from __future__ import annotations

import numpy as np
import pytest

from clmmodels.churn.reasons import describe, reasons_in_words


@pytest.mark.parametrize(
    ("feature", "row", "typical", "expected"),
    [
        ("recency_days", {"recency_days": 120.0, "mean_gap_days": 30.0}, {},
         "no purchase for 120 days; usually buys every 30"),
        # the overdue ratio and the gaps read as recency in the customer's rhythm
        ("overdue_ratio", {"recency_days": 90.0, "mean_gap_days": 45.4, "overdue_ratio": 2.0},
         {}, "no purchase for 90 days; usually buys every 45"),
        ("recency_days", {"recency_days": 1.0, "mean_gap_days": np.nan}, {},
         "bought once, 1 day ago"),
        ("tenure_days", {"tenure_days": 200.0, "recency_days": 200.0, "mean_gap_days": np.nan},
         {}, "bought once, 200 days ago"),
        ("tenure_days", {"tenure_days": 200.0, "mean_gap_days": 20.0}, {},
         "first purchase 200 days ago"),
        ("std_gap_days", {"std_gap_days": np.nan, "mean_gap_days": 12.0}, {},
         "bought on two days only"),
        ("purchases_90d", {"purchases_90d": 0}, {"purchases_90d": 2.0},
         "no purchase in the last 90 days (typical: 2)"),
        ("spend_365d", {"spend_365d": 12345.6}, {"spend_365d": 80.0},
         "spent 12,346 in the last 365 days (typical: 80)"),
        ("spend_trend_90d", {"spend_trend_90d": -1500.0}, {},
         "spent 1,500 less in the last 90 days than in the 90 before"),
        ("events_evaluation_90d", {"events_evaluation_90d": 0}, {"events_evaluation_90d": 3},
         "0 evaluation events in the last 90 days (typical: 3)"),
        ("events_churned_90d", {"events_churned_90d": 1}, {"events_churned_90d": 0},
         "1 churn signal in the last 90 days (typical: 0)"),
        ("events_post_purchase_90d", {"events_post_purchase_90d": 2}, {},
         "2 post-purchase events in the last 90 days"),
        ("days_since_event", {"days_since_event": 273.0}, {},
         "no event (visit, click, reply) for 273 days"),
        ("days_since_event", {"days_since_event": np.nan}, {}, "no event on record"),
        ("last_csat", {"last_csat": np.nan}, {}, "never answered CSAT"),
        ("bgnbd_p_alive", {"bgnbd_p_alive": 0.234}, {}, "BG/NBD: 23% likely still a customer"),
        ("acquisition_channel", {"acquisition_channel": "display"}, {},
         "acquisition channel: display"),
    ],
)  # fmt: skip
def test_each_feature_reads_in_words(feature, row, typical, expected):
    assert describe(feature, row, typical) == expected


def test_horizon_is_named_and_repeated_phrases_said_once():
    import pandas as pd

    X = pd.DataFrame(
        {"recency_days": [100.0], "mean_gap_days": [20.0], "overdue_ratio": [5.0],
         "bgnbd_p_no_purchase": [0.91]},
        index=pd.Index(["a"], name="customer_id"),
    )  # fmt: skip
    top = pd.Series([["overdue_ratio", "recency_days", "bgnbd_p_no_purchase"]], index=X.index)
    text = reasons_in_words(X, top, {}, horizon_days=90).loc["a"]
    assert text == (
        "no purchase for 100 days; usually buys every 20; "
        "BG/NBD: 91% chance of no purchase in the next 90 days"
    )
