"""Transition matrices recover a known chain; chain analysis equals independent linear
algebra; the Anderson-Goodman tests reject what they should and only that."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.exceptions import NotFittedError

from clmmodels import ClmError
from clmmodels.errors import ClmWarning
from clmmodels.stages import (
    MarkovChain,
    StageHistory,
    TransitionModel,
    assign_stages,
    markov_tests,
    stage_rewards,
)
from clmmodels.stages.homogeneity import likelihood_ratio
from clmmodels.stages.synthetic import chain_event_log, example_matrix
from clmmodels.vocabulary import STAGES


@pytest.fixture(scope="module")
def known():
    P = example_matrix()
    tx, ev = chain_event_log(P, n_customers=20_000, n_periods=24, seed=3)
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    return P, ev, history


def test_assignment_sees_through_noise_to_the_true_stage(known):
    _, ev, history = known
    # The latest event of each month is the true stage's, so assignment recovers every one.
    last = (
        ev.assign(period=ev["timestamp"].dt.to_period("M"))
        .groupby(["customer_id", "period"])["true_stage"]
        .last()
    )
    long = history.to_long().set_index(["customer_id", "period"])["stage"].astype(str)
    assert long.reindex(last.index).eq(last).all()


def test_estimate_recovers_the_known_matrix_within_sampling_error(known):
    P, _, history = known
    model = TransitionModel().fit(history)
    n = model.n_from_.to_numpy()[:, None]
    truth = P.to_numpy()
    se = np.sqrt(truth * (1 - truth) / n)
    z = np.abs(model.matrix_.to_numpy() - truth)[truth > 0] / se[truth > 0]
    assert z.max() < 4.0  # 38 cells: |z| > 4 would happen by chance once in ~400 runs
    assert (model.matrix_.to_numpy()[truth == 0] == 0).all()
    inside = (model.lower_.to_numpy() <= truth) & (truth <= model.upper_.to_numpy())
    assert inside[truth > 0].mean() > 0.85  # 95% intervals, 38 cells
    assert np.allclose(model.matrix_.sum(axis=1), 1.0)


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate(known):
    _, _, history = known
    a = TransitionModel(ci="bootstrap", n_boot=40, seed=7).fit(history)
    b = TransitionModel(ci="bootstrap", n_boot=40, seed=7).fit(history)
    assert a.lower_.equals(b.lower_) and a.upper_.equals(b.upper_)
    m = a.matrix_.to_numpy()
    assert ((a.lower_.to_numpy() <= m + 1e-12) & (m <= a.upper_.to_numpy() + 1e-12)).all()
    wilson = TransitionModel().fit(history)
    width_b = (a.upper_ - a.lower_).to_numpy()[m > 0]
    width_w = (wilson.upper_ - wilson.lower_).to_numpy()[m > 0]
    # Resampling customers (whose transitions are correlated) is not much narrower.
    assert np.median(width_b / width_w) > 0.8


def test_never_left_stages_and_sparse_rows():
    codes = np.array([[3, 5, 5, 7], [3, 5, 7, 7]], dtype=np.int8)
    h = StageHistory(
        customers=pd.Index(["a", "b"]),
        periods=pd.period_range("2024-01", periods=4, freq="M"),
        codes=codes,
        observed=np.ones_like(codes, bool),
        period="month",
        churn_after=None,
    )
    with pytest.warns(ClmWarning, match="fewer than 30 transitions"):
        m = TransitionModel().fit(h)
    assert m.matrix_.loc["awareness", "awareness"] == 1.0  # never left: its own row
    assert m.matrix_.loc["purchase", "retention"] == 1.0
    assert m.matrix_.loc["retention"].tolist() == [0, 0, 0, 0, 0, 1 / 3, 0, 2 / 3]
    assert list(m.matrix_.index) == list(STAGES) == list(m.matrix_.columns)
    assert ("all", "retention", 3) in m.sparse_rows_
    with pytest.raises(NotFittedError):
        TransitionModel().chain()
    with pytest.raises(ClmError, match="ci must be"):
        TransitionModel(ci="exact").fit(h)


def test_segments_get_their_own_matrices():
    P1, P2 = example_matrix(), example_matrix()
    P2.loc["retention"] = [0, 0, 0, 0, 0.05, 0.75, 0.15, 0.05]
    h, segments = _two_groups(P1, P2, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)
        m = TransitionModel().fit(h, segments=segments)
    assert set(m.segment_matrices_) == {"one", "two"}
    assert m.segment_matrices_["two"].loc["retention", "retention"] == pytest.approx(0.75, abs=0.03)
    assert m.segment_matrices_["one"].loc["retention", "retention"] == pytest.approx(0.45, abs=0.03)
    total = m.segment_counts_["one"] + m.segment_counts_["two"]
    assert total.equals(m.counts_)


def _two_groups(P1, P2, seed, n=6000, periods=18):
    tx, a = chain_event_log(P1, n_customers=n, n_periods=periods, seed=seed)
    _, b = chain_event_log(P2, n_customers=n, n_periods=periods, seed=seed + 100)
    b = b.assign(customer_id="t" + b["customer_id"])
    ev = pd.concat([a, b], ignore_index=True).drop(columns="true_stage")
    h = assign_stages(tx, ev, churn_after=None)
    segments = pd.Series(np.where(h.customers.str.startswith("t"), "two", "one"), index=h.customers)
    return h, segments


def test_homogeneity_tests_reject_different_segments_and_keep_equal_ones():
    P2 = example_matrix()
    P2.loc["retention"] = [0, 0, 0, 0, 0.05, 0.75, 0.15, 0.05]
    h, seg = _two_groups(example_matrix(), P2, seed=5)
    table = markov_tests(h, segments=seg).set_index("test")
    assert table.loc["homogeneity across segments", "p_value"] < 1e-10
    assert table.loc["homogeneity across segments", "H0"] == "rejected"
    # Same chain in both groups and over time, and first order: nothing to reject.
    h, seg = _two_groups(example_matrix(), example_matrix(), seed=6)
    table = markov_tests(h, segments=seg, windows=3).set_index("test")
    assert (table["p_value"] > 0.001).all(), table
    assert list(table.columns) == ["groups", "statistic", "df", "p_value", "H0"]


def test_order_test_rejects_a_second_order_chain():
    rng = np.random.default_rng(0)
    n, t_max = 5000, 14
    codes = np.empty((n, t_max), dtype=np.int8)
    codes[:, :2] = rng.integers(3, 6, (n, 2))
    for t in range(2, t_max):
        # From retention, where one was before decides: came from purchase -> stays more.
        came_from_purchase = codes[:, t - 2] == 3
        stay = rng.uniform(size=n) < np.where(came_from_purchase, 0.8, 0.3)
        codes[:, t] = np.where(codes[:, t - 1] == 5, np.where(stay, 5, 3), rng.integers(3, 6, n))
    h = StageHistory(
        customers=pd.Index([f"c{i}" for i in range(n)]),
        periods=pd.period_range("2024-01", periods=t_max, freq="M"),
        codes=codes,
        observed=np.ones_like(codes, bool),
        period="month",
        churn_after=None,
    )
    table = markov_tests(h, windows=None).set_index("test")
    assert table.loc["first order (against second order)", "H0"] == "rejected"


def test_likelihood_ratio_equals_scipy_contingency_g_test():
    rng = np.random.default_rng(1)
    tables = rng.integers(0, 40, size=(3, 8, 8))
    tables[:, 2, :] = 0  # a stage nobody left: not testable, 0 df
    tables[1, 4, :] = 0  # a group that never left stage 4
    g2, df, per = likelihood_ratio(tables)
    expected, expected_df = 0.0, 0
    for i in range(8):
        t = tables[:, i, :]
        t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
        if t.shape[0] < 2:
            continue
        stat, _, dof, _ = stats.chi2_contingency(t, correction=False, lambda_="log-likelihood")
        expected += stat
        expected_df += dof
    assert g2 == pytest.approx(expected, rel=1e-10) and df == expected_df
    assert per.loc["evaluation", "df"] == 0


def _independent_hitting_times(P: np.ndarray, target: int) -> np.ndarray:
    """h = 1 + P h off the target, h[target] = 0, as one square system (no fundamental matrix)."""
    n = len(P)
    A, b = np.eye(n) - P, np.ones(n)
    A[target], b[target] = np.eye(n)[target], 0.0
    return np.linalg.solve(A, b)


def test_absorbing_chain_results_equal_independent_linear_algebra():
    P = example_matrix()
    chain = MarkovChain(P)
    churned, advocacy = STAGES.index("churned"), STAGES.index("advocacy")
    expected = _independent_hitting_times(P.to_numpy(), churned)
    assert np.abs(chain.time_to_absorption().to_numpy() - expected).max() < 1e-10
    # Advocacy before churn: the absorbing chain's far power holds the absorption probabilities.
    A = P.to_numpy().copy()
    A[[advocacy, churned]] = np.eye(8)[[advocacy, churned]]
    far = np.linalg.matrix_power(A, 4000)
    probs = chain.absorption_probabilities(("advocacy", "churned"))
    assert np.abs(probs.to_numpy() - far[:, [advocacy, churned]]).max() < 1e-10
    N = chain.fundamental_matrix()
    assert np.allclose(N.sum(axis=1), chain.time_to_absorption().drop("churned"), atol=1e-12)


def test_stationary_distribution_and_forecast():
    P = example_matrix()
    chain = MarkovChain(P)
    pi = chain.stationary()
    values, vectors = np.linalg.eig(P.to_numpy().T)
    v = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    assert np.abs(pi.to_numpy() - v / v.sum()).max() < 1e-10
    start = pd.Series({"awareness": 100.0, "retention": 50.0})
    fc = chain.forecast(start, 3)
    manual = start.reindex(STAGES).fillna(0).to_numpy() @ np.linalg.matrix_power(P.to_numpy(), 3)
    assert np.allclose(fc.iloc[3].to_numpy(), manual, atol=1e-10)
    assert fc.sum(axis=1).round(10).eq(150).all()
    # Two closed classes (advocacy and churned both absorbing): no unique stationary law.
    Q = P.copy()
    Q.loc["advocacy"] = np.eye(8)[STAGES.index("advocacy")]
    Q.loc["churned"] = np.eye(8)[STAGES.index("churned")]
    assert MarkovChain(Q).stationary() is None
    assert sorted(map(tuple, MarkovChain(Q).closed_classes())) == [("advocacy",), ("churned",)]


def test_markov_clv_follows_pfeifer_carraway():
    P = example_matrix()
    R = pd.Series(0.0, index=STAGES)
    R[["purchase", "retention", "advocacy"]] = [50.0, 30.0, 35.0]
    chain, d = MarkovChain(P), 0.01
    assert chain.clv(R, d, horizon=0).equals(R.rename("clv"))
    one = R.to_numpy() + P.to_numpy() @ R.to_numpy() / (1 + d)
    assert np.allclose(chain.clv(R, d, horizon=1).to_numpy(), one, atol=1e-12)
    infinite = chain.clv(R, d).to_numpy()
    assert np.allclose(chain.clv(R, d, horizon=5000).to_numpy(), infinite, rtol=1e-10)
    assert (infinite >= chain.clv(R, d, horizon=24).to_numpy()).all()
    with pytest.raises(ClmError, match="discount_rate"):
        chain.clv(R, 0.0)


def test_chain_rejects_bad_matrices():
    with pytest.raises(ClmError, match="sum to 1"):
        MarkovChain(pd.DataFrame([[0.5, 0.4], [0, 1]], index=["a", "b"], columns=["a", "b"]))
    stuck = pd.DataFrame([[1.0, 0.0], [0.5, 0.5]], index=["a", "churned"], columns=["a", "churned"])
    with pytest.raises(ClmError, match="never reach"):
        MarkovChain(stuck).time_to_absorption()


def test_stage_rewards_average_revenue_per_customer_period():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "timestamp": pd.to_datetime(["2024-01-05", "2024-03-02", "2024-01-20", "2025-01-01"]),
            "amount": [10.0, 30.0, 20.0, 99.0],
        }
    )
    h = assign_stages(tx, churn_after=None, end="2024-04-01")
    r = stage_rewards(h, tx)
    # purchase: a Jan, a Feb, b Jan, b Feb, b Mar = 5 customer-periods, revenue 10 + 20.
    assert r.loc["purchase", "customer_periods"] == 5 and r.loc["purchase", "revenue"] == 30
    assert r.loc["retention", "reward"] == 30.0
    assert r.attrs["excluded_transactions"] == 1


def test_clm_stages_writes_the_matrix_in_contract_order(clm_here, tmp_path, make_dataset):
    folder = make_dataset()
    out, counts = tmp_path / "m.csv", tmp_path / "c.csv"
    r = clm_here("stages", str(folder), "--method", "observed", "--out", str(out), "--counts-out",
            str(counts))  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = pd.read_csv(out, index_col=0)
    # The stages this data shows (every event falls in the month of a purchase, which is the
    # latest signal there), in contract order; the others have no estimate and no row.
    assert list(m.index) == ["purchase", "retention"] == list(m.columns)
    assert "not in this data (no estimate): awareness, engagement, evaluation" in r.stdout
    assert np.allclose(m.sum(axis=1), 1.0)
    # January ends with each customer's first purchase; in February 00042 buys again.
    assert m.loc["purchase", "retention"] == 0.5 and m.loc["purchase", "purchase"] == 0.5
    c = pd.read_csv(counts, index_col=0)
    assert c.to_numpy().sum() > 0 and "2 customers" in r.stdout
    latent = clm_here("stages", str(folder), "--out", str(out))
    assert latent.returncode == 0, latent.stderr
    m = pd.read_csv(out, index_col=0)
    assert list(m.index) == ["purchase", "retention", "churned"] == list(m.columns)
    assert np.allclose(m.sum(axis=1), 1.0)
    seg = clm_here("stages", str(folder), "--out", str(out), "--segment", "acquisition_channel")
    assert seg.returncode == 0, seg.stderr
    by = pd.read_csv(out, index_col=[0, 1])
    assert set(by.index.get_level_values("segment")) == {"search", "social"}


def test_clm_stages_errors_are_clear(clm_here, make_dataset, tmp_path):
    bad = make_dataset({"events": "customer_id,timestamp,event_type\n42,2024-01-19,\n"})
    r = clm_here("stages", str(bad), "--out", str(tmp_path / "m.csv"), "--engine", "duckdb")
    assert r.returncode == 2 and "Traceback" not in r.stderr  # checked before DuckDB reads it
    assert "events.csv" in r.stderr and "event_type" in r.stderr and "line 2" in r.stderr
    folder = make_dataset()
    r = clm_here("stages", str(folder), "--out", str(tmp_path / "m.csv"), "--segment", "colour")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--segment colour: not a customers column; columns are acquired_at" in r.stderr
    (folder / "customers.csv").unlink()
    no_customers = folder
    r = clm_here(
        "stages", str(no_customers), "--out", str(tmp_path / "m.csv"), "--segment", "region"
    )
    assert r.returncode == 2 and "customers" in r.stderr
    m = str(tmp_path / "m.csv")
    r = clm_here("stages", str(folder), "--out", m, "--churn-after", "3")
    assert r.returncode == 2 and "only --method observed" in r.stderr
    post = str(tmp_path / "p.csv")
    r = clm_here("stages", str(folder), "--method", "observed", "--out", m, "--posterior-out", post)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--posterior-out: stage probabilities come from --method latent" in r.stderr


def test_clm_stages_writes_each_customers_stage_probabilities(clm_here, make_dataset, tmp_path):
    folder = make_dataset()
    post = tmp_path / "post.csv"
    r = clm_here(
        "stages", str(folder), "--out", str(tmp_path / "m.csv"), "--posterior-out", str(post)
    )
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(post, index_col="customer_id", dtype={"customer_id": str})
    assert sorted(table.index) == ["00042", "42"]
    assert list(table.columns) == ["purchase", "retention", "churned"]
    assert np.allclose(table.sum(axis=1), 1.0) and (table.to_numpy() >= 0).all()


def test_time_to_a_lapse_matches_a_simulation_and_differs_by_stage():
    """Expected periods until the first run of k periods without a purchase: the expanded
    chain's answer against a Monte Carlo run of the same chain (a chain where churned
    customers come back, so first entry into churned hardly differs between stages)."""
    names = ["engagement", "purchase", "retention", "churned"]
    P = pd.DataFrame(
        [[0.5, 0.2, 0.1, 0.2], [0.2, 0.1, 0.5, 0.2], [0.1, 0.05, 0.7, 0.15],
         [0.2, 0.05, 0.05, 0.7]],
        index=names, columns=names,
    )  # fmt: skip
    chain = MarkovChain(P)
    want = chain.time_to_lapse(3)
    rng = np.random.default_rng(11)
    cum = P.to_numpy().cumsum(axis=1)
    quiet = np.array([True, False, False, True])
    for start, expected in want.items():
        n = 40_000
        state = np.full(n, names.index(start))
        run, steps, done = np.zeros(n, int), np.zeros(n, int), np.zeros(n, bool)
        while not done.all():
            live = ~done
            u = rng.uniform(size=live.sum())
            state[live] = (u[:, None] > cum[state[live]]).sum(axis=1)
            steps[live] += 1
            run[live] = np.where(quiet[state[live]], run[live] + 1, 0)
            done |= run == 3
        assert abs(steps.mean() - expected) < 4 * steps.std() / np.sqrt(n), start
    assert want["retention"] > want["engagement"] + 1  # buying stages are further from a lapse
    with pytest.raises(ClmError, match="whole number"):
        chain.time_to_lapse(0)
