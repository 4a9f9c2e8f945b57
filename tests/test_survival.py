"""Customer lifetimes: the lapse rule by hand, Kaplan-Meier by hand, log-rank on known truth."""

from __future__ import annotations

import pandas as pd
import pytest

from clmmodels import dataset_from_frames
from clmmodels.errors import ClmError
from clmmodels.metrics import acquisitions
from clmmodels.survival import customer_lifetimes, kaplan_meier, logrank, survival_summary


def frame(rows):
    t = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    t["timestamp"] = pd.to_datetime(t["timestamp"], format="ISO8601")
    return t


def test_lapse_rule_by_hand():
    t = frame(
        [
            ("lapses", "2024-01-01", 1), ("lapses", "2024-01-11", 1),  # then 290 quiet days
            ("lapses", "2024-10-28", 1),                                  # comes back: too late
            ("censored", "2024-01-01", 1), ("censored", "2024-03-01", 1),  # quiet 75 days
            ("final_gap", "2024-01-01", 1),                               # never again: lapses
            ("late", "2024-05-15T10:00", 1), ("late", "2024-06-01", 1),
        ]
    )  # fmt: skip
    lt = customer_lifetimes(t, "2024-05-15", gap_days=100)
    assert lt.loc["lapses"].tolist() == [10 + 100, True]  # lapse dated 100 days after 01-11
    assert lt.loc["censored"].tolist() == [135, False]  # 01-01 to the observation end
    assert lt.loc["final_gap"].tolist() == [100, True]
    assert lt.loc["late"].tolist() == [0, False]  # first bought on the last day; later ignored
    with pytest.raises(ClmError, match="gap_days"):
        customer_lifetimes(t, "2024-05-15", gap_days=0)


def test_kaplan_meier_matches_a_hand_computation():
    table = pd.DataFrame(
        {"duration_days": [5.0, 8.0, 10.0, 10.0, 12.0], "lapsed": [True, False, True, False, True]},
        index=list("abcde"),
    )
    kmf = kaplan_meier(table)["all customers"]
    # At 5: 5 at risk, 1 lapse -> 4/5. At 10: 3 at risk (8 censored), 1 lapse -> 4/5 * 2/3.
    # At 12: 1 at risk, 1 lapse -> 0.
    assert kmf.predict(5) == pytest.approx(0.8)
    assert kmf.predict(11) == pytest.approx(0.8 * 2 / 3)
    assert kmf.predict(12) == pytest.approx(0.0)
    summary = survival_summary(table)
    assert summary.loc["all customers", "median_days"] == 12.0
    assert summary.loc["all customers", "lapsed"] == 3


def test_channels_with_the_same_truth_do_not_differ(small_company):
    ds = dataset_from_frames(**small_company.tables)
    lt = customer_lifetimes(ds.transactions, "2024-12-31", gap_days=180)
    channels = acquisitions(ds)["acquisition_channel"]
    test = logrank(lt, channels)
    assert test["groups"] == 5 and test["degrees_of_freedom"] == 4
    assert test["p_value"] > 0.01  # simulated channels share one purchase and dropout process
    per_channel = survival_summary(lt, channels)
    assert per_channel["customers"].sum() == len(lt)


def test_logrank_finds_a_real_difference():
    short = [(f"s{i}", f"2024-01-{1 + i % 20:02d}", 1.0) for i in range(60)]
    long = [(f"l{i}", f"2024-01-{1 + i % 20:02d}", 1.0) for i in range(60)]
    long += [(f"l{i}", f"2024-0{2 + j}-{1 + i % 20:02d}", 1.0) for i in range(60) for j in range(4)]
    lt = customer_lifetimes(frame(short + long), "2024-12-31", gap_days=45)
    groups = pd.Series({c: c[0] for c in lt.index})
    assert logrank(lt, groups)["p_value"] < 1e-6
