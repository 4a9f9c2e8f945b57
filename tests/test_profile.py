"""The customer profile (issue #19): each column equals the command it comes from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clmmodels import ClmError, dataset_from_frames, load_dataset
from clmmodels.playbook import DEFAULT_PLAYBOOK, load_playbook, parse_playbook
from clmmodels.profile import customer_profile
from clmmodels.vocabulary import STAGES

from .conftest import run_clm

AS_OF = "2024-10-01"
FAST = {"churn_model": "logistic", "snapshots": 1}


@pytest.fixture(scope="module")
def company(small_company):
    return dataset_from_frames(**small_company.tables)


@pytest.fixture(scope="module")
def profile(company):
    return customer_profile(company, AS_OF, **FAST)


def test_one_row_per_customer_acquired_before_the_date(company, profile):
    c = company.customers
    assert set(profile.index) == set(c.loc[c["acquired_at"] < AS_OF, "customer_id"])
    assert profile.index.is_monotonic_increasing
    assert (profile["first_seen"] < pd.Timestamp(AS_OF)).all()


def test_the_commands_agree_with_the_profile(company_dir, monkeypatch, capsys, tmp_path):
    """clm profile against clm score (the day before), clm churn and clm stages (--end)."""
    out = {name: tmp_path / f"{name}.csv" for name in ("profile", "score", "churn", "stages")}
    day_before = str((pd.Timestamp(AS_OF) - pd.Timedelta(days=1)).date())
    fast = ["--model", "logistic", "--snapshots", "1"]
    runs = {
        "profile": ["profile", company_dir, "--as-of", AS_OF, "--churn-model", "logistic",
                    "--snapshots", "1", "--intervals", "--n-boot", "20", "--alpha", "0.1"],
        "score": ["score", company_dir, "--observation-end", day_before, "--intervals",
                  "--n-boot", "20", "--alpha", "0.1"],
        "churn": ["churn", company_dir, "--as-of", AS_OF, *fast],
        "stages": ["stages", company_dir, "--end", AS_OF, "--posterior-out",
                   str(tmp_path / "posterior.csv")],
    }  # fmt: skip
    for name, args in runs.items():
        code, text = run_clm(monkeypatch, capsys, *args, "--out", str(out[name]))
        assert code == 0, text
    prof = pd.read_csv(out["profile"], index_col="customer_id")
    score = pd.read_csv(out["score"], index_col="customer_id")
    churn = pd.read_csv(out["churn"], index_col="customer_id")
    matrix = pd.read_csv(out["stages"], index_col=0)
    buyers = score.index
    for col in ("p_alive", "expected_purchases", "clv", "clv_lower", "clv_upper"):
        np.testing.assert_allclose(prof.loc[buyers, col], score[col], rtol=1e-9)
    assert (prof["clv_lower"] <= prof["clv"]).all() and (prof["clv"] <= prof["clv_upper"]).all()
    np.testing.assert_allclose(
        prof.loc[churn.index, "churn_probability"], churn["churn_probability"], rtol=1e-12
    )
    assert (prof.loc[churn.index, "risk_band"] == churn["risk_band"]).all()
    reasons = prof.loc[churn.index, "reasons"].fillna("")
    assert (reasons == churn["reasons"].fillna("")).all()
    # The stage now: clm stages' most probable one, with its probability; next period: those
    # probabilities times clm stages' matrix.
    posterior = pd.read_csv(tmp_path / "posterior.csv", index_col="customer_id")
    staged = prof.dropna(subset=["stage"])
    assert set(staged.index) <= set(posterior.index)
    post = posterior.loc[staged.index]
    assert (staged["stage"] == post.idxmax(axis=1)).all()
    np.testing.assert_allclose(staged["stage_probability"], post.max(axis=1), rtol=1e-9)
    nxt = staged[[f"next_{s}" for s in matrix.columns]].to_numpy()
    np.testing.assert_allclose(nxt, post[matrix.index].to_numpy() @ matrix.to_numpy(), atol=1e-9)
    others = [f"next_{s}" for s in STAGES if s not in matrix.columns]
    assert (staged[others] == 0).all().all()  # stages this data cannot see


def test_the_profile_from_files_equals_the_profile_from_frames(company_dir):
    """At scale the transactions and events stay in their files (``clm profile`` leaves them
    there for DuckDB): the same profile as from the frames, bit for bit."""
    lazy = load_dataset(company_dir, in_files=("transactions", "events"))
    assert lazy.transactions is None and lazy.events is None
    from_files = customer_profile(lazy, AS_OF, **FAST)
    pd.testing.assert_frame_equal(
        from_files, customer_profile(load_dataset(company_dir), AS_OF, **FAST)
    )


def test_stage_is_the_latent_models_most_probable_stage_now(company, profile):
    from clmmodels.stages import LatentTransitionModel, assign_stages

    history = assign_stages(company.transactions, company.events, end=AS_OF, churn_after=None)
    assert str(history.periods[-1]) == "2024-09"  # the period holding the day before
    post = LatentTransitionModel(n_boot=0).fit(history).posterior_
    shown = post.index.intersection(profile.index)
    assert (profile.loc[shown, "stage"] == post.loc[shown].idxmax(axis=1)).all()
    assert profile["stage_probability"].dropna().between(1 / 8, 1).all()
    # Less sure of a silent customer's stage than of one with a signal this month.
    listed = history.customers.isin(profile.index)
    quiet = ~history.observed[listed, -1]
    sure = profile.loc[history.customers[listed], "stage_probability"].to_numpy()
    assert sure[quiet].mean() < sure[~quiet].mean()


def test_periods_in_stage_count_the_run_of_signals_or_the_silence(company, profile):
    from clmmodels.stages import assign_stages

    history = assign_stages(company.transactions, company.events, end=AS_OF, churn_after=None)
    checked = {"run": 0, "silence": 0}
    for i in range(200):
        row, cid = history.codes[i], history.customers[i]
        if row[-1] < 0 or cid not in profile.index:
            continue
        if profile.loc[cid, "stage"] == STAGES[row[-1]]:  # the run of the last signal's stage
            run = 0
            for code in row[::-1]:
                if code != row[-1]:
                    break
                run += 1
            want, kind = run, "run"
        else:  # a move nobody saw: periods since the last signal
            seen = np.flatnonzero(history.observed[i])
            want, kind = len(row) - 1 - seen[-1], "silence"
        assert profile.loc[cid, "periods_in_stage"] == want, cid
        checked[kind] += 1
    assert checked["run"] > 20 and checked["silence"] > 5, checked


def test_derived_columns(profile):
    nxt = profile[[f"next_{s}" for s in STAGES]].dropna()
    np.testing.assert_allclose(nxt.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(
        profile["value_at_risk"], profile["clv"] * profile["churn_probability"]
    )
    buyers = profile["clv"].notna()
    assert set(profile.loc[buyers, "value_tier"]) == {"high", "medium", "low"}
    top = profile.loc[buyers, "clv"].quantile(0.8)
    assert (profile.loc[profile["value_tier"] == "high", "clv"] >= top).all()
    # Periods to churn weigh each stage's by its probability: 0 for the surely churned, and
    # fewer for the probably churned than for the rest.
    to_churn, churned = profile["expected_periods_to_churn"], profile["stage"] == "churned"
    assert (to_churn[churned & (profile["stage_probability"] > 1 - 1e-9)] < 1e-6).all()
    assert to_churn[churned].mean() < to_churn[~churned & profile["stage"].notna()].mean()
    assert profile["action"].notna().all()
    assert (profile["days_since_last_purchase"].dropna() >= 1).all()  # data before as-of only


def test_rows_on_or_after_the_date_change_nothing(company, profile):
    later = {}
    for name in ("transactions", "events", "surveys"):
        df = company.table(name)
        shifted = df.assign(
            timestamp=pd.Timestamp(AS_OF) + (df["timestamp"] - df["timestamp"].min())
        )
        if "order_id" in shifted:
            shifted["order_id"] = "later-" + shifted["order_id"]
        later[name] = pd.concat([df, shifted[shifted["timestamp"] < "2026-01-01"]])
    ds = dataset_from_frames(
        transactions=later["transactions"], events=later["events"], surveys=later["surveys"],
        customers=company.customers, marketing_spend=company.marketing_spend,
    )  # fmt: skip
    again = customer_profile(ds, AS_OF, **FAST)
    pd.testing.assert_frame_equal(again, profile)


def test_transactions_only_data_get_a_profile():
    ds = load_dataset("cdnow_sample")
    p = customer_profile(ds, "1998-01-01", **FAST)
    assert len(p) == 2357
    assert set(p["stage"]) <= {"purchase", "retention", "churned"}
    assert p["days_since_last_event"].isna().all()
    assert p["action"].notna().all()


def test_the_playbook_first_match_wins():
    profile = pd.DataFrame(
        {
            "stage": ["churned", "churned", "retention", "evaluation", "advocacy"],
            "days_since_last_purchase": [400, 30, 10, 5, 20],
            "value_tier": ["high", "high", "high", "low", "low"],
            "risk_band": ["high", "high", "high", "low", "low"],
        }
    )
    assert DEFAULT_PLAYBOOK.actions(profile).tolist() == [
        "none", "win-back offer", "win-back offer", "sales assist", "referral ask",
    ]  # fmt: skip
    only = parse_playbook({"rules": [{"when": {"stage": "advocacy"}, "action": "thanks"}]})
    assert only.actions(profile).tolist() == ["none"] * 4 + ["thanks"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": {"stage": ["loyal"]}, "action": "x"}, "rule 1: unknown stage ['loyal']"),
        ({"when": {"mood": ["happy"]}, "action": "x"}, "rule 1: unknown field 'mood'"),
        ({"when": {"clv": {"min": "lots"}}, "action": "x"}, "the threshold 'lots' is not a number"),
        ({"when": {"clv": {"min": 5, "max": 1}}, "action": "x"}, "min 5 is above max 1"),
        ({"when": {"clv": 3}, "action": "x"}, "clv takes {min: x, max: y}"),
        ({"when": {"stage": ["advocacy"]}}, "rule 1: a mapping with an `action` text"),
    ],
)
def test_a_bad_playbook_is_a_clear_error(tmp_path, monkeypatch, capsys, company_dir, rule, message):
    import yaml

    path = tmp_path / "playbook.yml"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    with pytest.raises(ClmError, match=message.replace("[", r"\[").replace("{", r"\{")):
        load_playbook(path)
    code, text = run_clm(monkeypatch, capsys, "profile", company_dir, "--as-of", AS_OF,
                     "--playbook", str(path), "--out", str(tmp_path / "p.csv"))  # fmt: skip
    assert code == 2 and "Traceback" not in text and str(path) in text


@pytest.fixture(scope="module")
def company_dir(small_company_dir):
    return str(small_company_dir)
