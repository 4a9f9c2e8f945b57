"""The channel comparison: each column is the package function it comes from, per channel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from clmmodels import dataset_from_frames
from clmmodels.channels import channel_comparison, stage_mix
from clmmodels.clv.score import score_customers
from clmmodels.dataset import data_before
from clmmodels.economics import cac_payback, clv_to_cac, lifetime_value
from clmmodels.metrics import acquisitions, active_before, retention
from clmmodels.stages import assign_stages

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2024-07-01"


@pytest.fixture(scope="module")
def company(small_company):
    return dataset_from_frames(**small_company.tables)


@pytest.fixture(scope="module")
def table(company):
    return channel_comparison(company, AS_OF)


def test_one_typed_row_per_channel_summing_to_all_customers(company, table):
    cut = data_before(company, AS_OF)
    assert list(table.index) == sorted(company.customers["acquisition_channel"].unique())
    assert all(pd.api.types.is_numeric_dtype(t) for t in table.dtypes)
    assert table["customers"].sum() == len(acquisitions(cut)) == len(cut.customers)
    assert table.attrs["as_of"] == AS_OF and table.attrs["month"] == "2024-06"


def test_each_column_is_the_package_function_for_one_channel(company, table):
    channel = "paid_search"
    row = table.loc[channel]
    cut = data_before(company, AS_OF)
    # CLV as the CLV report and the summary set it against CAC: spend so far plus 12 months
    # predicted from the day before as_of.
    last_day = pd.Timestamp(AS_OF) - pd.Timedelta(days=1)
    predicted = score_customers(cut.transactions, last_day, horizon_months=12).scores["clv"]
    value = lifetime_value(cut.transactions, predicted, last_day)
    economics = clv_to_cac(cut, clv=value).loc[channel]
    assert table.attrs["basis"] == "predicted"
    for col in ("new_customers", "spend", "cac", "mean_clv", "clv_to_cac"):
        assert row[col] == pytest.approx(economics[col])
    assert row["payback_months"] == pytest.approx(cac_payback(cut).loc[channel, "payback_months"])

    mine = acquisitions(cut).query("acquisition_channel == @channel").index
    assert row["customers"] == len(mine)
    active = active_before(cut.transactions, pd.Timestamp(AS_OF), 365)
    assert row["active_share"] == pytest.approx(mine.isin(active).mean())

    sub = cut.for_channel(channel)
    kpi = retention(sub, "2024-06-01", AS_OF, 365)
    assert row["crr"] == pytest.approx(kpi["crr"])
    assert row["churn_rate"] == pytest.approx(kpi["churn_rate"])

    latest = assign_stages(
        sub.transactions, sub.events, end=AS_OF, event_stages=sub.event_stages
    ).latest()
    mix = stage_mix(table).loc[channel]
    assert mix.sum() == pytest.approx(1.0)
    for stage, n in latest.items():
        assert mix[stage] == pytest.approx(n / latest.sum())


def test_as_of_cuts_the_data(company, table):
    """Every figure uses data before as_of: the whole data give other numbers."""
    full = channel_comparison(company)
    assert full.attrs["as_of"] == "2025-01-01"
    assert (full["mean_clv"] > table["mean_clv"]).all()


@pytest.mark.slow
def test_the_notebook_renders(rendered):
    out, results = rendered
    results = [results["channels-sim"], results["channels-cdnow"]]
    executed = nbformat.read(out / "executed" / "channels-sim.ipynb", as_version=4)
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    page = (out / next(r.html for r in results if r.name == "channels-sim")).read_text()
    assert "CLV:CAC" in page and "paid_search" in page and "Payback (months)" in page
    assert (
        "no acquisition channels to compare"
        in (out / next(r.html for r in results if r.name == "channels-cdnow")).read_text()
    )
