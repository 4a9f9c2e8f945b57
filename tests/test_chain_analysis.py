"""clm stages --analysis-out (issue #17, item 6): the chain analysis on data with known truth,
and the rewards file's rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clmmodels import ClmError
from clmmodels.stages import TransitionModel, assign_stages
from clmmodels.stages.analysis import chain_analysis, load_rewards
from clmmodels.stages.chain import MarkovChain
from clmmodels.stages.synthetic import chain_event_log, example_matrix

from .conftest import run_clm


@pytest.mark.parametrize("seed", [1, 2])
def test_the_analysis_recovers_the_true_chain(seed):
    tx, ev = chain_event_log(example_matrix(), n_customers=6000, n_periods=24, seed=seed)
    history = assign_stages(tx, ev, churn_after=None)
    model = TransitionModel().fit(history)
    rewards = pd.Series({"retention": 30.0, "advocacy": 40.0, "post_purchase": 20.0})
    doc = chain_analysis(model, history, rewards, discount_rate=0.01)
    truth = MarkovChain(example_matrix())
    want = truth.time_to_absorption("churned")
    got = pd.Series(doc["expected_periods_to_churn"])
    np.testing.assert_allclose(got[want.index], want, rtol=0.08)
    p_adv = truth.absorption_probabilities(("advocacy", "churned"))["advocacy"]
    np.testing.assert_allclose(
        pd.Series(doc["p_advocacy_before_churn"])[p_adv.index], p_adv, atol=0.03
    )
    clv = truth.clv(rewards, 0.01)
    np.testing.assert_allclose(pd.Series(doc["markov_clv"])[clv.index], clv, rtol=0.08)
    assert doc["tests"][0]["test"] == "homogeneity across time windows"
    json.dumps(doc)  # JSON-ready


def test_a_misspelt_reward_stage_is_an_error_before_the_work(
    make_dataset, monkeypatch, capsys, tmp_path
):
    rewards = tmp_path / "rewards.csv"
    rewards.write_text("stage,reward\nRetention,30\n")
    with pytest.raises(ClmError, match="unknown stage 'Retention'"):
        load_rewards(rewards)
    folder = make_dataset()
    out = tmp_path / "m.csv"
    args = ["stages", str(folder), "--out", str(out), "--analysis-out", str(tmp_path / "a.json")]
    code, text = run_clm(monkeypatch, capsys, *args, "--rewards", str(rewards))
    assert code == 2 and "unknown stage 'Retention'" in text and not out.exists()
    code, text = run_clm(monkeypatch, capsys, "stages", str(folder), "--out", str(out),
                     "--rewards", str(rewards))  # fmt: skip
    assert code == 2 and "give --analysis-out too" in text


def test_clm_stages_writes_the_analysis(make_dataset, monkeypatch, capsys, tmp_path):
    rewards = tmp_path / "rewards.yml"
    rewards.write_text("retention: 30\npurchase: 10\n")
    analysis = tmp_path / "a.json"
    code, text = run_clm(monkeypatch, capsys, "stages", str(make_dataset()), "--out",
                     str(tmp_path / "m.csv"), "--analysis-out", str(analysis),
                     "--rewards", str(rewards))  # fmt: skip
    assert code == 0, text
    doc = json.loads(analysis.read_text())
    assert set(doc) >= {"expected_periods_to_churn", "stationary", "markov_clv", "tests", "notes"}
    # the tiny dataset never churns: no finite time to churn, said in words, not a number
    if doc["expected_periods_to_churn"] is None:
        assert any(n.startswith("expected_periods_to_churn") for n in doc["notes"])
