"""Churn: features see only the past, labels their window, and the classifiers beat what
they should (acceptance figures of issue #6 on CDNOW and a simulated company)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from clmmodels import ClmError, load_dataset, simulate_company
from clmmodels.churn import (
    ChurnModel,
    backtest,
    churn_labels,
    fit_churn_model,
    snapshot_features,
    training_snapshots,
)
from clmmodels.dataset import data_before, dataset_from_frames


@pytest.fixture(scope="module")
def company_ds(small_company_dir):
    return load_dataset(small_company_dir)


def tiny():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "timestamp": ["2024-01-01", "2024-03-02", "2024-05-31", "2024-05-01", "2024-06-01"],
            "amount": ["10", "20", "30", "5", "7"],
        }
    )
    return dataset_from_frames(transactions=tx)


def test_features_by_hand():
    X = snapshot_features(tiny(), "2024-06-01")  # b's purchase on as-of itself is not seen
    a, b = X.loc["a"], X.loc["b"]
    assert a["recency_days"] == 1 and a["tenure_days"] == 152 and a["purchase_days"] == 3
    # purchases_30d: [2024-05-02, 2024-06-01) holds a's 05-31 purchase and b's 05-01 is out.
    assert a["purchases_30d"] == 1 and b["purchases_30d"] == 0 and b["purchases_90d"] == 1
    # 90 days back is 03-03: the 03-02 purchase falls in the previous 90 days, with 01-01.
    assert a["spend_90d"] == 30 and a["spend_180d"] == 60 and a["spend_trend_90d"] == 30 - 30
    assert a["mean_gap_days"] == pytest.approx((61 + 90) / 2) and a["last_gap_days"] == 90
    assert np.isnan(b["mean_gap_days"]) and b["total_spend"] == 5


def test_gap_spread_events_and_surveys_by_hand():
    """The gaps' standard deviation (exact from integer sums), the events' and the surveys'
    features, ties at one instant included (the later stage; the higher answer)."""
    ds = tiny()
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "timestamp": ["2024-02-01 10:00", "2024-05-30 23:00", "2024-05-30 23:00",
                          "2024-06-01 00:00"],  # b's is on as-of itself: not seen
            "event_type": ["ad_click", "support_ticket", "referral_sent", "ad_click"],
        }
    )  # fmt: skip
    surveys = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "timestamp": ["2024-01-05", "2024-04-01", "2024-04-01", "2024-06-02"],
            "nps": [2, 9, 7, 10],
        }
    )
    ds = dataset_from_frames(transactions=tiny().transactions, events=events, surveys=surveys)
    X = snapshot_features(ds, "2024-06-01")
    a, b = X.loc["a"], X.loc["b"]
    assert a["std_gap_days"] == pytest.approx(np.std([61, 90], ddof=1), rel=1e-15)
    assert np.isnan(b["std_gap_days"])  # one purchase: no gap
    assert a["events_post_purchase_90d"] == 1 and a["events_advocacy_90d"] == 1
    assert a["events_awareness_90d"] == 0  # 02-01 is before the 90 days
    assert a["last_event_stage"] == "advocacy"  # same instant: the later stage wins
    assert a["days_since_event"] == 2  # 05-30 23:00 to 06-01: whole days from its calendar day
    assert np.isnan(b["days_since_event"]) and b["events_awareness_90d"] == 0
    assert a["last_nps"] == 9 and np.isnan(b["last_nps"])  # tie at 04-01: the higher answer


def test_features_from_files_equal_features_from_frames(company_ds, small_company_dir):
    """A dataset that leaves its transactions and events in their files for DuckDB gives the
    same features, bit for bit, as the frames; and run after run."""
    lazy = load_dataset(small_company_dir, in_files=("transactions", "events"))
    assert lazy.transactions is None and lazy.events is None
    assert set(lazy.files) == {"transactions", "events"}
    from_files = snapshot_features(lazy, "2024-06-01")
    pd.testing.assert_frame_equal(from_files, snapshot_features(company_ds, "2024-06-01"))
    pd.testing.assert_frame_equal(from_files, snapshot_features(lazy, "2024-06-01"))
    y = churn_labels(lazy, from_files.index, "2024-06-01", 90)
    assert y.equals(churn_labels(company_ds, from_files.index, "2024-06-01", 90))
    with pytest.raises(ClmError, match=r"needs the transactions in memory.*transactions\.csv"):
        lazy.require("transactions", "the retention report")
    # what cuts or filters frames would lose the tables left in files: it refuses, naming them
    with pytest.raises(ClmError, match=r"needs every table in memory.*events \(.*events\.csv\)"):
        data_before(lazy, "2024-06-01")
    with pytest.raises(ClmError, match=r"a report for channel 'email' needs every table"):
        lazy.for_channel("email")


def test_rows_after_as_of_change_no_feature(company_ds):
    as_of = pd.Timestamp("2024-06-01")
    before = snapshot_features(company_ds, as_of)
    later = {}
    for name in ("transactions", "events", "surveys"):
        df = company_ds.table(name)
        shifted = df.assign(timestamp=as_of + (df["timestamp"] - df["timestamp"].min()))
        newcomer = shifted.head(3).assign(customer_id="NEW")
        later[name] = pd.concat([df, shifted, newcomer], ignore_index=True)
    after = snapshot_features(dataclasses.replace(company_ds, **later), as_of)
    pd.testing.assert_frame_equal(before, after)
    assert "NEW" not in after.index
    assert {"events_churned_90d", "last_nps", "acquisition_channel", "last_event_stage"} <= set(
        after.columns
    )


def test_labels_cover_exactly_the_horizon():
    ds = tiny()
    y = churn_labels(ds, pd.Index(["a", "b"]), "2024-05-01", 31)  # [05-01, 06-01)
    assert y.to_dict() == {"a": 0, "b": 0}
    y = churn_labels(ds, pd.Index(["a", "b"]), "2024-05-02", 30)  # [05-02, 06-01): b's 06-01 out
    assert y.to_dict() == {"a": 0, "b": 1}
    with pytest.raises(ClmError, match="need transactions up to 2024-06-02, but the data ends"):
        churn_labels(ds, pd.Index(["a"]), "2024-05-04", 30)


def test_training_snapshots_end_their_labels_by_as_of(company_ds):
    X, y, dates = training_snapshots(company_ds, "2024-10-01", 90, n_snapshots=3)
    assert [str(d.date()) for d in dates] == ["2024-07-03", "2024-04-04", "2024-01-05"]
    assert X.index.names == ["snapshot", "customer_id"] and y.index.equals(X.index)
    with pytest.raises(ClmError, match="no training snapshot"):
        training_snapshots(company_ds, "2023-03-01", 90)
    # a snapshot needs one horizon of data before it
    first = company_ds.transactions["timestamp"].min().normalize()
    _, _, dates = training_snapshots(company_ds, first + pd.Timedelta(days=200), 90, 3)
    assert [d - first for d in dates] == [pd.Timedelta(days=110)]


def test_a_model_trains_on_a_seeded_sample_beyond_max_rows(company_ds):
    """Beyond max_rows snapshot rows, a sample drawn with the seed trains the model: the
    same seed gives the same probabilities, the rows and their labels stay together (a
    sample that split them would rank no better than chance), and the CLI says so."""
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    X, y, _ = training_snapshots(company_ds, "2024-07-01", 90, n_snapshots=2)
    test_X = snapshot_features(company_ds, "2024-10-01")
    test_y = churn_labels(company_ds, test_X.index, "2024-10-01", 90)
    half = len(X) // 2
    full = ChurnModel(seed=1, max_rows=None).fit(X, y)
    a = ChurnModel(seed=1, max_rows=half).fit(X, y)
    b = clone(a).fit(X, y)
    assert (full.n_training_rows_, a.n_training_rows_) == (len(X), half)
    assert a.n_snapshot_rows_ == len(X) and a.get_params()["max_rows"] == half
    assert a.predict_proba(test_X).equals(b.predict_proba(test_X))
    assert not a.predict_proba(test_X).equals(full.predict_proba(test_X))
    auc = {m: roc_auc_score(test_y, m.predict_proba(test_X)) for m in (full, a)}
    assert auc[a] > 0.7 and abs(auc[a] - auc[full]) < 0.03, auc
    with pytest.raises(ClmError, match="max_rows must be None or at least 100"):
        ChurnModel(max_rows=50).fit(X, y)


def test_a_report_says_how_the_classifiers_were_trained_and_on_what_sample():
    from clmmodels.churn.backtest import Backtest

    def how(validation: str, **training) -> str:
        return Backtest(pd.Timestamp("2024-10-01"), 90, validation, pd.Series(dtype=int),
                        pd.DataFrame(), [], training=training).how_trained()  # fmt: skip

    dates = {"snapshots": ["2024-07-03", "2024-04-04"]}
    assert how("temporal", **dates, snapshot_rows=900, training_rows=900) == (
        "trained on the snapshots of 2024-07-03, 2024-04-04"
    )
    assert how("temporal", **dates, snapshot_rows=2_500_000, training_rows=500_000).endswith(
        "2024-04-04 (each model on a seeded sample of 500,000 of its 2,500,000 rows)"
    )
    assert how("customers").startswith("scored 5-fold")


def test_model_is_seeded_banded_and_explains(company_ds):
    X, y, _ = training_snapshots(company_ds, "2024-10-01", 90, n_snapshots=2)
    score_X = snapshot_features(company_ds, "2024-10-01")
    p1 = ChurnModel(seed=3).fit(X, y).predict_proba(score_X)
    p2 = ChurnModel(seed=3).fit(X, y).predict_proba(score_X)
    assert p1.equals(p2) and p1.between(0, 1).all()
    m = ChurnModel(kind="logistic", bands=(0.5, 0.8)).fit(X, y)
    scores = m.score_customers(score_X)
    expected = np.select(
        [scores["churn_probability"] < 0.5, scores["churn_probability"] < 0.8],
        ["low", "medium"],
        "high",
    )
    assert (scores["risk_band"].astype(str).to_numpy() == expected).all()
    high = scores[scores["risk_band"] == "high"]
    assert (high["reasons"].str.len() > 0).mean() > 0.5
    # A reason is a feature whose typical value would lower the probability, said in words.
    top = m.top_features(score_X.loc[high.index])
    assert set(top.explode().dropna()) <= set(score_X.columns)
    contrib = m.contributions(score_X.loc[high.index])
    for cid, names in top.head(50).items():
        assert all(contrib.loc[cid, n] > 0.005 for n in names)
    assert not high["reasons"].str.contains(r"_|\+0\.", regex=True).any()
    with pytest.raises(NotFittedError):
        ChurnModel().predict_proba(score_X)
    with pytest.raises(ClmError, match="kind must be one of hgb, logistic"):
        ChurnModel(kind="forest").fit(X, y)
    with pytest.raises(ClmError, match="at least 10 churned and 10 retained"):
        ChurnModel().fit(X.head(30), y.head(30) * 0 + 1)


def test_acceptance_cdnow_matches_bgnbd():
    """CDNOW, as-of 1997-10-01, horizon to the end of the data (273 days). The data starts
    nine months before, so no earlier snapshot has a full label window: 5-fold scores over
    customers, every customer scored by a model that never saw them."""
    result = backtest(
        load_dataset("cdnow"), "1997-10-01", 273, validation="customers", importance_repeats=0
    )
    t = result.table["roc_auc"]
    assert len(result.labels) == 23_570
    # Never worse than the purchase model it competes with (issue #19): 0.771 against 0.763.
    assert t["hgb"] >= max(t["bgnbd_p_no_purchase"], t["bgnbd_expected_purchases"])
    assert t["logistic"] >= t["bgnbd_expected_purchases"] - 0.01
    assert result.table.loc["hgb", "brier"] <= result.table.loc["bgnbd_p_no_purchase", "brier"]


def test_acceptance_cdnow_in_time_never_worse_than_bgnbd():
    """CDNOW, 90 days, temporal: the snapshot at 1997-01-04 (three days of data, on which
    BG/NBD cannot be fitted) is skipped, and the classifier trained on the two after it
    ranks the customers at least as well as BG/NBD (0.775 against 0.769)."""
    result = backtest(load_dataset("cdnow"), "1997-10-01", 90, kinds=("hgb",),
                      importance_repeats=0)  # fmt: skip
    assert result.training["snapshots"] == ["1997-07-03", "1997-04-04"]
    t = result.table["roc_auc"]
    assert t["hgb"] >= max(t["bgnbd_p_no_purchase"], t["bgnbd_expected_purchases"])


@pytest.mark.parametrize("seed", [123, 2024])
def test_acceptance_transactions_only_never_worse_than_bgnbd(seed):
    """Transactions, customers and surveys, no events (issue #19's company), on seeds the
    classifier's settings were not chosen on (those were 42 and 7): the temporal backtest
    ranks at least as well as BG/NBD fitted on the same past (issue #19's target), and its
    probabilities are as good: on the living company of seed 123 a tie, Brier 0.14142 against
    BG/NBD's 0.14135 (ROC-AUC 0.7511 against 0.7509); seed 2024 0.1432 against 0.1442."""
    tables = simulate_company(n_customers=10_000, seed=seed).tables
    tables.pop("events")
    result = backtest(dataset_from_frames(**tables), "2024-07-01", 90, kinds=("hgb",),
                      importance_repeats=0)  # fmt: skip
    t = result.table
    assert t.loc["hgb", "roc_auc"] >= t.loc["bgnbd_p_no_purchase", "roc_auc"]
    assert t.loc["hgb", "roc_auc"] >= t.loc["bgnbd_expected_purchases", "roc_auc"]
    assert t.loc["hgb", "brier"] <= t.loc["bgnbd_p_no_purchase", "brier"] + 0.0005


def test_acceptance_simulated_company_beats_bgnbd_with_events_and_surveys():
    ds = simulate_company(n_customers=10_000, seed=42)
    ds = dataset_from_frames(**ds.tables)
    result = backtest(ds, "2024-07-01", 90, kinds=("hgb",), importance_repeats=2)
    t = result.table["roc_auc"]
    assert t["hgb"] >= t["bgnbd_p_no_purchase"] + 0.02
    assert t["hgb"] >= t["recency_rule"] + 0.03
    assert result.training["snapshots"] == ["2024-04-02", "2024-01-03", "2023-10-05"]
    assert result.training["importance_of"] == "hgb"
    # What the transactions do not hold is what helps: an events feature ranks near the top.
    assert any(f.startswith(("days_since_event", "events_", "last_event")) for f in
               result.importance.index[:3])  # fmt: skip
    calib = result.calibration("hgb")
    assert (calib["predicted"] - calib["observed"]).abs().mean() < 0.06
    gains = result.gains()
    assert gains["hgb"].iloc[len(gains) // 10] > 0.1  # top decile finds more than its share


def test_clm_churn_scores_and_writes_the_backtest(clm_here, small_company_dir, tmp_path):
    out, metrics = tmp_path / "churn.csv", tmp_path / "m.json"
    r = clm_here(
        "churn", str(small_company_dir), "--as-of", "2024-10-01", "--horizon-days", "90",
        "--model", "logistic", "--out", str(out), "--metrics-out", str(metrics),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert list(scores.columns[:3]) == ["customer_id", "churn_probability", "risk_band"]
    ds = load_dataset(small_company_dir)
    before = ds.transactions[ds.transactions["timestamp"] < "2024-10-01"]["customer_id"]
    assert set(scores["customer_id"]) == set(before)
    payload = json.loads(metrics.read_text())
    assert payload["evaluated_at"] == "2024-10-01" and payload["validation"] == "temporal"
    assert {"logistic", "bgnbd_p_no_purchase", "recency_rule"} <= set(payload["table"])
    # progress on stderr, step by step with the seconds since the start; no raw NaN printed
    assert "training snapshot 1 of up to 3: features at 2024-07-03" in r.stderr
    assert re.search(r"\[\s*\d+\.\d s\] reasons for [\d,]+ customers", r.stderr)
    assert "Brier score" in r.stdout and "NaN" not in r.stdout and "nan" not in r.stdout
    # scored on everyone and, said so, on the customers still plausibly alive
    X = snapshot_features(ds, "2024-10-01")
    assert payload["alive_customers"] == int((X["recency_days"] <= 365).sum()) < len(X)
    assert set(payload["table_alive"]) == set(payload["table"])
    assert payload["table_alive"]["logistic"]["roc_auc"] != payload["table"]["logistic"]["roc_auc"]
    assert f"the {payload['alive_customers']:,} still plausibly alive" in r.stdout
    # every snapshot row trained the model (below ChurnModel's max_rows), and the JSON says so
    assert payload["training"]["training_rows"] == payload["training"]["snapshot_rows"] > 0
    late = clm_here("churn", str(small_company_dir), "--as-of", "2023-02-01", "--out", str(out))
    assert late.returncode == 2 and "no training snapshot" in late.stderr
    assert "Traceback" not in late.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_clm_churn_scores_customers_missing_from_the_customers_table(
    clm_here, small_company_dir, tmp_path, fmt
):
    """The contract allows buyers without a customers row; their attributes are missing, and
    scikit-learn's imputer used to crash on pandas' NA ('boolean value of NA is ambiguous').
    Parquet with integer ids went the same way."""
    folder = tmp_path / "ds"
    folder.mkdir()
    for table in ("transactions", "customers"):
        df = pd.read_csv(small_company_dir / f"{table}.csv", dtype=str)
        if table == "customers":
            df = df.iloc[: len(df) // 3]
        if fmt == "parquet":
            df["customer_id"] = df["customer_id"].str.extract(r"(\d+)")[0].astype(int)
            df.to_parquet(folder / f"{table}.parquet", index=False)
        else:
            df.to_csv(folder / f"{table}.csv", index=False)
    out = tmp_path / "churn.csv"
    r = clm_here("churn", str(folder), "--as-of", "2024-10-01", "--out", str(out))
    assert r.returncode == 0, r.stderr
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert scores["churn_probability"].between(0, 1).all() and len(scores) > 300


def test_features_carry_bgnbds_view_from_the_past_only(company_ds):
    """P(alive), expected purchases and P(no purchase) over the horizon, as BG/NBD gives them
    when fitted on the transactions before the snapshot (issue #19: a classifier that sees
    what the purchase model sees)."""
    from clmmodels.clv import BetaGeoModel
    from clmmodels.rfm import rfm_summary

    X = snapshot_features(company_ds, "2024-07-01", horizon_days=60)
    rfm = rfm_summary(company_ds.transactions, "2024-06-30").reindex(X.index)
    bg = BetaGeoModel().fit(rfm, standard_errors=False)
    np.testing.assert_allclose(X["bgnbd_p_alive"], bg.p_alive(rfm), rtol=1e-10)
    np.testing.assert_allclose(
        X["bgnbd_expected_purchases"], bg.expected_purchases(rfm, days=60), rtol=1e-10
    )
    np.testing.assert_allclose(X["bgnbd_p_no_purchase"], bg.p_no_purchase(rfm, days=60), rtol=1e-10)
    assert X.attrs["horizon_days"] == 60


def test_a_model_refuses_features_made_for_another_horizon(company_ds):
    model = fit_churn_model(company_ds, "2024-10-01", 90, kind="logistic", n_snapshots=1)
    with pytest.raises(
        ClmError, match="the features look 30 days ahead, the model was trained on 90"
    ):
        model.score_customers(snapshot_features(company_ds, "2024-10-01", horizon_days=30))


def test_reasons_skip_only_what_no_tree_reads(company_ds, monkeypatch):
    """A reason no tree splits on contributes exactly 0, so the trees' own structure spares
    its prediction; the contributions equal those of a prediction per reason, bit for bit."""
    from clmmodels.churn import model as churn_model

    X, y, _ = training_snapshots(company_ds, "2024-10-01", 90, n_snapshots=1)
    hgb = ChurnModel(seed=1).fit(X, y)
    score_X = snapshot_features(company_ds, "2024-10-01")
    split_on = churn_model._split_inputs(hgb.estimator_)
    assert split_on and split_on < set(hgb.feature_names_in_)  # some skipped, some read
    fast = hgb.contributions(score_X)
    monkeypatch.setattr(churn_model, "_split_inputs", lambda pipeline: None)
    pd.testing.assert_frame_equal(fast, hgb.contributions(score_X), check_exact=True)
    logistic = ChurnModel(kind="logistic").fit(X, y)
    monkeypatch.undo()
    assert churn_model._split_inputs(logistic.estimator_) is None  # reads every feature
