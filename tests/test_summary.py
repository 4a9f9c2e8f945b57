"""The executive summary's numbers and sentences, on a company small enough to count by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from clmmodels import dataset_from_frames
from clmmodels.errors import ClmError
from clmmodels.summary import (
    changes_in_words,
    format_headline,
    headline,
    model_kpis,
    reporting_month,
)


@pytest.fixture
def shop():
    return dataset_from_frames(
        transactions=pd.DataFrame(
            [
                ("b", "2023-12-28", 10.0),  # b is acquired in December
                ("a", "2024-01-10", 10.0),
                ("b", "2024-01-20", 10.0),
                ("a", "2024-02-05", 30.0),
                ("c", "2024-02-07", 20.0),  # new in February
                ("a", "2024-03-15", 5.0),  # the data ends mid-March
            ],
            columns=["customer_id", "timestamp", "amount"],
        ),
        surveys=pd.DataFrame(
            {
                "customer_id": ["a", "b", "a", "c"],
                "timestamp": ["2024-01-11", "2024-01-21", "2024-02-06", "2024-02-08"],
                "nps": [10, 5, 9, 9],  # January 0, February +100
            }
        ),
    )


def test_reporting_month_defaults_to_the_last_whole_month(shop):
    assert reporting_month(shop) == pd.Period("2024-02", "M")  # March is not over
    assert reporting_month(shop, "2024-03") == pd.Period("2024-03", "M")
    with pytest.raises(ClmError, match="after the data ends"):
        reporting_month(shop, "2024-04")
    with pytest.raises(ClmError, match="2024-06"):
        reporting_month(shop, "June")


def test_headline_by_hand(shop):
    t = headline(shop, pd.Period("2024-02", "M"), active_window_days=30)
    # February: active at the start (30 days to Jan 31): a, b; at the end (to Feb 29): a, c
    # (b's purchase of Jan 20 is 40 days old); c is new. CRR = (2 - 1) / 2.
    assert t.loc["customers", "current"] == 3 and t.loc["customers", "previous"] == 2
    assert t.loc["active_end", "current"] == 2 and t.loc["new_customers", "current"] == 1
    assert t.loc["crr", "current"] == 0.5 and t.loc["churn_rate", "current"] == 0.5
    assert t.loc["crr", "previous"] == 1  # January: b kept, a new
    assert t.loc["revenue", "current"] == 50 and t.loc["revenue", "change"] == 30
    assert t.loc["nps", "previous"] == 0 and t.loc["nps", "current"] == 100
    assert pd.isna(t.loc["cac", "current"]) and pd.isna(t.loc["clv", "current"])
    assert any("marketing_spend" in n for n in t.attrs["notes"])
    shown = format_headline(t)
    assert shown.loc["retention rate (CRR)", "change"] == "-50.0 pts"  # January CRR was 1
    assert shown.loc["NPS", "change"] == "+100 pts" and shown.loc["CAC (blended)", "2024-02"] == "-"


def test_changes_in_words_ranks_and_judges(shop):
    t = headline(shop, pd.Period("2024-02", "M"), active_window_days=30)
    words = changes_in_words(t)
    # CRR's 50 points against a 1-point threshold outrank NPS's 100 against 3.
    assert (
        words[0]
        == "Retention rate (CRR) fell from 100.0% to 50.0% (-50.0 points) (needs attention)."
    )
    assert words[2] == "NPS rose from +0 to +100 (+100 points) (good news)."
    assert any("Churn rate rose" in w and "needs attention" in w for w in words)
    assert not any("Customers to date" in w and "needs" in w for w in words)
    quiet = t.assign(current=t["previous"], change=0.0)
    assert changes_in_words(quiet) == []


def test_small_moves_are_not_news():
    t = pd.DataFrame(
        {"previous": [100.0, 0.90, 30.0], "current": [104.0, 0.895, 32.0]},
        index=["revenue", "crr", "nps"],
    )
    assert changes_in_words(t) == []  # 4% < 5%, 0.5 < 1 point, 2 < 3 points
    t.loc["revenue", "current"] = 106.0
    assert changes_in_words(t) == ["Revenue rose from 100 to 106 (+6%) (good news)."]


def test_model_kpis_fit_at_each_month_end(small_company):
    months = [pd.Period("2024-05", "M"), pd.Period("2024-06", "M")]
    clv, ratio = model_kpis(dataset_from_frames(**small_company.tables), months)
    assert set(clv) == set(months) and all(v > 0 for v in clv.values())
    # The simulated company acquires every month: each month has a CLV:CAC, and it is the
    # month's own clv_to_cac (value so far plus predicted, against the month's CAC).
    assert all(r is not None and r > 0 for r in ratio.values())
    assert ratio[months[0]] != ratio[months[1]]
    none = model_kpis(
        dataset_from_frames(**{**small_company.tables, "marketing_spend": None}), months[:1]
    )[1]
    assert none == {months[0]: None}  # no marketing spend: no CAC, so no ratio
