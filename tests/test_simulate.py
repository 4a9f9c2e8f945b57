"""The simulated company: deterministic, in the contract's shape, and true to its truth."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from clmmodels import load_dataset, rfm_summary, simulate_company
from clmmodels.errors import ClmError
from clmmodels.vocabulary import DEFAULT_EVENT_STAGES


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = simulate_company(n_customers=300, seed=3).write(tmp_path / "a")
    b = simulate_company(n_customers=300, seed=3).write(tmp_path / "b")
    c = simulate_company(n_customers=300, seed=4).write(tmp_path / "c")
    assert digest(a) == digest(b)
    assert digest(a)["transactions.csv"] != digest(c)["transactions.csv"]
    assert sorted(digest(a)) == [
        "customers.csv",
        "events.csv",
        "marketing_spend.csv",
        "surveys.csv",
        "transactions.csv",
        "truth.json",
        "truth_customers.csv",
    ]


def test_keeps_the_contract_in_csv_and_parquet(small_company, small_company_dir, tmp_path):
    ds = load_dataset(small_company_dir)
    assert ds.present == ["transactions", "customers", "events", "marketing_spend", "surveys"]
    pq = load_dataset(small_company.write(tmp_path / "pq", fmt="parquet"))
    pd.testing.assert_frame_equal(ds.transactions, pq.transactions, check_dtype=False)


def test_marketing_spend_gives_the_true_cac(small_company):
    t = small_company.tables
    truth = small_company.truth["cac_by_channel"]
    spend = t["marketing_spend"].groupby("channel")["spend"].sum()
    new = t["customers"].groupby("acquisition_channel").size()
    cac = spend / new
    for channel, value in truth.items():
        assert cac[channel] == pytest.approx(value, abs=0.01)


def test_first_purchase_is_the_acquisition(small_company):
    t = small_company.tables
    first = t["transactions"].groupby("customer_id")["timestamp"].min()
    acquired = t["customers"].set_index("customer_id")["acquired_at"]
    assert (first.reindex(acquired.index) == acquired).all()


def test_events_are_consistent_with_purchases_and_dropout(small_company):
    t = small_company.tables
    ev = t["events"].merge(t["customers"][["customer_id", "acquired_at"]], on="customer_id")
    stage = ev["event_type"].map(DEFAULT_EVENT_STAGES)
    before = ev["timestamp"] < ev["acquired_at"]
    assert set(stage[before]) <= {"awareness", "engagement", "evaluation"}
    assert before.groupby(ev["customer_id"]).any().all()  # everybody has a funnel before buying
    # Purchases come from transactions only: no purchase events without a transaction.
    assert not ev["event_type"].isin(["purchase", "repeat_purchase"]).any()
    # Stages skip: some customers enter the funnel past awareness.
    first_stage = stage[before].groupby(ev.loc[before, "customer_id"]).first()
    assert (first_stage != "awareness").mean() > 0.2
    # Dropped-out customers send churn events far more often than active ones.
    latent = small_company.latent.set_index("customer_id")
    churn_share = (stage == "churned").groupby(ev["customer_id"]).mean()
    dead = ~latent["alive_at_end"].reindex(churn_share.index)
    assert churn_share[dead].mean() > 2 * churn_share[~dead].mean()


def test_a_living_company_acquires_every_month_and_nothing_happens_after_the_end(
    small_company,
):
    t = small_company.tables
    end = pd.Timestamp(small_company.truth["end"]) + pd.Timedelta(days=1)
    for name in ("transactions", "events", "surveys"):
        assert t[name]["timestamp"].max() < end, name  # a customer acquired on the last day
    months = t["customers"]["acquired_at"].dt.to_period("M")
    assert months.nunique() == 24  # every month of 2023 and 2024
    per_month = months.value_counts()
    assert (
        per_month[pd.Period("2024-03", "M")]
        > 1.5 * per_month.drop(pd.Period("2024-03", "M")).median()
    )
    share = t["customers"].groupby(t["customers"]["acquired_at"].dt.year)["acquisition_channel"]
    social = share.value_counts(normalize=True).xs("social", level=1)
    assert social[2024] > social[2023]  # the mix shifts towards social
    spend = t["marketing_spend"]
    assert (pd.to_datetime(spend["date"]).dt.to_period("M").max()) == pd.Period("2024-12", "M")


def test_truth_is_written(small_company_dir):
    truth = json.loads((small_company_dir / "truth.json").read_text())
    assert truth["bgnbd"] == {"r": 0.5, "alpha": 8.0, "a": 0.8, "b": 2.5}
    assert truth["gamma_gamma"] == {"p": 6.0, "q": 4.0, "gamma": 15.0}
    for key in ("alive", "dropped_out"):
        assert np.allclose(np.sum(truth["stage_chain"][key], axis=1), 1.0)


@pytest.mark.slow
def test_purchases_and_spend_recover_the_true_parameters():
    """An independent fit (lifetimes) lands within 3 standard errors of the truth."""
    company = simulate_company(n_customers=6000, seed=11)
    s = rfm_summary(company.tables["transactions"], company.truth["observation_end"], freq="W")
    bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    for name, true in company.truth["bgnbd"].items():
        est, se = bg.summary.loc[name, "coef"], bg.summary.loc[name, "se(coef)"]
        assert abs(est - true) < 3 * se, (name, est, se, true)
    rep = s[s["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    for name, key in (("p", "p"), ("q", "q"), ("v", "gamma")):
        est, se = gg.summary.loc[name, "coef"], gg.summary.loc[name, "se(coef)"]
        assert abs(est - company.truth["gamma_gamma"][key]) < 3 * se, (name, est, se)


def test_bad_configuration():
    with pytest.raises(ClmError, match="at least 1"):
        simulate_company(n_customers=0)
