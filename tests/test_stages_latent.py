"""The latent-stage (hidden Markov) transition estimates recover known chains from sparse logs
where the observed rule is biased; they agree with it on dense logs; their intervals cover;
they work on transactions alone; and the estimator behaves as a scikit-learn estimator."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from clmmodels import ClmError
from clmmodels.errors import ClmWarning
from clmmodels.stages import TransitionModel, assign_stages
from clmmodels.stages.latent import LatentTransitionModel
from clmmodels.stages.synthetic import chain_event_log, example_matrix
from clmmodels.vocabulary import DEFAULT_EVENT_STAGES, STAGES

matplotlib.use("Agg")


def max_error(model, truth: pd.DataFrame) -> float:
    """Largest |estimate - truth| over the stages the model covers."""
    stages = list(model.matrix_.index)
    return float((model.matrix_ - truth.loc[stages, stages]).abs().to_numpy().max())


def most_probable(posterior: pd.DataFrame) -> np.ndarray:
    """The stage code (index in STAGES) of each row's most probable stage."""
    codes = np.array([STAGES.index(s) for s in posterior.columns])
    return codes[posterior.to_numpy().argmax(axis=1)]


@pytest.fixture(scope="module")
def sparse_log():
    """8,000 customers, 24 months; 40% of live months and 40% of churn entries leave no event."""
    tx, ev, truth = chain_event_log(
        example_matrix(), n_customers=8000, n_periods=24, silent=0.4, unannounced=0.4, seed=11,
        return_truth=True,
    )  # fmt: skip
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    return history, truth, LatentTransitionModel(n_boot=0).fit(history)


def test_latent_recovers_the_known_matrix_where_the_observed_rule_is_biased(sparse_log):
    history, _, model = sparse_log
    assert model.stages_ == STAGES
    assert model.converged_
    assert max_error(model, example_matrix()) < 0.04  # measured 0.014
    # The observed rule keeps the stage through silent months: diagonals inflated.
    observed = TransitionModel().fit(history)
    assert max_error(observed, example_matrix()) > 0.2  # measured 0.52
    # The emission parameters are those simulated (a purchase always leaves its record).
    assert model.silence_["purchase"] == 0.0
    # Measured over seeds 11-14: 0.386-0.421 for every live stage but awareness, 0.36-0.41
    # for awareness (the fewest periods, and a silent one is easily taken for a quiet later
    # stage): its spread is about three times the binomial one.
    live = model.silence_.drop(["purchase", "churned"])
    assert np.allclose(live, 0.4, atol=0.05), live
    assert abs(live.mean() - 0.4) < 0.015
    assert model.silence_["churned"] > 0.97  # staying churned leaves no event
    assert abs(model.announce_ - 0.6) < 0.05


def test_posterior_sums_to_one_and_finds_the_stage_now_better_than_the_observed_rule(
    sparse_log,
):
    history, truth, model = sparse_log
    post = model.posterior_
    assert list(post.columns) == list(model.stages_)
    assert post.index.equals(history.customers) and post.index.name == "customer_id"
    assert np.allclose(post.sum(axis=1), 1.0)
    now = truth.loc[history.customers].iloc[:, -1].to_numpy()
    latent = (most_probable(post) == now).mean()
    observed = (history.codes[:, -1] == now).mean()
    # Measured: 0.90 (latent) against 0.65 (the last signal's stage, carried forward).
    assert latent > 0.85
    assert latent > observed + 0.15
    # The same with the fitted parameters on a history given afterwards.
    again = model.stage_probabilities(history)
    assert np.allclose(again.to_numpy(), post.to_numpy())


def brute_force(model: LatentTransitionModel, history) -> tuple[float, np.ndarray]:
    """The log-likelihood and last-period posterior by a plain forward pass over each
    customer's whole history (no segments, no distinct histories): the hidden chain is the
    live stages, churned-entered and churned-staying."""
    stages = list(model.stages_)
    n_live = len(stages) - 1
    P, q = model.matrix_.to_numpy(), model.silence_.to_numpy()
    a = model.announce_
    A = np.zeros((n_live + 2, n_live + 2))
    A[:n_live, : n_live + 1] = P[:n_live]
    A[n_live:, :n_live] = P[n_live, :n_live]
    A[n_live:, n_live + 1] = P[n_live, n_live]
    silent = np.append(q[:n_live], [1 - a, q[n_live]])
    log_lik, post = 0.0, []
    for codes, observed in zip(history.codes, history.observed, strict=True):
        t0 = int(np.argmax(codes >= 0))
        alpha = np.zeros(n_live + 2)
        alpha[stages.index(STAGES[codes[t0]])] = 1.0  # churned at entry: churned-entered
        for t in range(t0 + 1, len(codes)):
            if not observed[t]:
                e = silent
            elif STAGES[codes[t]] == "churned":
                e = np.zeros(n_live + 2)
                e[n_live:] = a, 1 - q[n_live]
            else:
                j = stages.index(STAGES[codes[t]])
                e = np.zeros(n_live + 2)
                e[j] = 1 - q[j]
            alpha = (alpha @ A) * e
            log_lik += np.log(alpha.sum())
            alpha /= alpha.sum()
        post.append(np.append(alpha[:n_live], alpha[n_live:].sum()))
    return log_lik, np.array(post)


@pytest.mark.parametrize("periods", [12, 60])
def test_segments_give_the_likelihood_and_posterior_of_whole_histories(periods):
    tx, ev = chain_event_log(
        example_matrix(), n_customers=300, n_periods=periods, silent=0.5, unannounced=0.3,
        seed=periods,
    )  # fmt: skip
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    model = LatentTransitionModel(n_boot=0).fit(history)
    log_lik, post = brute_force(model, history)
    assert np.isclose(model.log_likelihood_, log_lik, rtol=1e-10)
    assert np.allclose(model.posterior_.to_numpy(), post, atol=1e-10)


def test_the_fill_rule_of_silent_periods_does_not_matter():
    tx, ev = chain_event_log(
        example_matrix(), n_customers=600, n_periods=12, silent=0.4, unannounced=0.5, seed=9
    )
    ev = ev.drop(columns="true_stage")
    carried = LatentTransitionModel(n_boot=0).fit(assign_stages(tx, ev, churn_after=None))
    churned = LatentTransitionModel(n_boot=0).fit(assign_stages(tx, ev, churn_after=2))
    assert carried.matrix_.equals(churned.matrix_)
    assert carried.posterior_.equals(churned.posterior_)


def test_grids_longer_than_the_segment_key_are_refused():
    tx, ev = chain_event_log(example_matrix(), n_customers=50, n_periods=70, seed=1)
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    with pytest.raises(ClmError, match="at most 63 periods"):
        LatentTransitionModel(n_boot=0).fit(history)


# A second, independent simulator: a different chain, silence that differs by stage, half
# the churn entries unannounced, each customer entering with an event, one event per shown
# month of a type from the default vocabulary.
SECOND = pd.DataFrame(
    [
        # awa   eng   eva   pur   post  ret   adv   churn
        [0.40, 0.25, 0.10, 0.05, 0.00, 0.00, 0.00, 0.20],  # awareness
        [0.10, 0.40, 0.20, 0.10, 0.00, 0.00, 0.00, 0.20],  # engagement
        [0.00, 0.15, 0.35, 0.30, 0.00, 0.00, 0.00, 0.20],  # evaluation
        [0.00, 0.00, 0.00, 0.10, 0.50, 0.20, 0.10, 0.10],  # purchase
        [0.00, 0.10, 0.00, 0.00, 0.30, 0.40, 0.05, 0.15],  # post_purchase
        [0.00, 0.00, 0.05, 0.00, 0.10, 0.60, 0.15, 0.10],  # retention
        [0.00, 0.00, 0.00, 0.00, 0.05, 0.25, 0.60, 0.10],  # advocacy
        [0.03, 0.02, 0.00, 0.02, 0.00, 0.00, 0.00, 0.93],  # churned
    ],
    index=list(STAGES),
    columns=list(STAGES),
)
# Per live stage; a purchase always leaves its record (the model's LOUD_STAGES).
SECOND_SILENCE = np.array([0.6, 0.5, 0.45, 0.0, 0.35, 0.5, 0.3])


def second_log(n: int, periods: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events from SECOND (plain numpy), and each customer's true stage in the last month."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(SECOND.to_numpy(), axis=1)
    churned = STAGES.index("churned")
    enter = rng.integers(0, periods - 6, n)
    state = rng.choice(4, size=n, p=[0.5, 0.2, 0.2, 0.1])
    types = {s: [e for e, st in DEFAULT_EVENT_STAGES.items() if st == s] for s in STAGES}
    months = pd.period_range("2023-03", periods=periods, freq="M").to_timestamp()
    frames = []
    for t in range(periods):
        moving = enter < t
        before = state
        step = np.minimum((rng.uniform(size=n)[:, None] > cum[state]).sum(axis=1), churned)
        state = np.where(moving, step, state)
        is_churned = state == churned
        live_silence = SECOND_SILENCE[np.minimum(state, churned - 1)]
        entering = is_churned & moving & (before != churned)
        shows = np.where(
            is_churned,
            entering & (rng.uniform(size=n) >= 0.5),
            rng.uniform(size=n) >= live_silence,
        )
        shows = (enter == t) | ((enter < t) & shows)
        who = np.flatnonzero(shows)
        kind = [types[STAGES[s]][rng.integers(len(types[STAGES[s]]))] for s in state[who]]
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i:05d}" for i in who],
                    "timestamp": months[t] + pd.to_timedelta(rng.uniform(0, 27, who.size), "D"),
                    "event_type": kind,
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    now = pd.Series(state, index=[f"c{i:05d}" for i in range(n)], name="stage")
    return events, now


def test_latent_recovers_a_second_independently_simulated_chain():
    events, now = second_log(8000, 24, seed=29)
    tx = pd.DataFrame(
        {"customer_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[ns]"),
         "amount": pd.Series(dtype=float)}
    )  # fmt: skip
    history = assign_stages(tx, events, churn_after=None)
    model = LatentTransitionModel(n_boot=0).fit(history)
    assert model.stages_ == STAGES
    # 0.04 as for the first chain: the thinnest rows (advocacy, post_purchase: ~5,000
    # expected transitions out of each) give a cell a standard error of at most
    # sqrt(0.25 / 5000) = 0.007 were every month shown; the silence inflates it to at most
    # 0.010 here (bootstrap, 100 resamples), so 0.04 is 4 of them for the worst of 64 cells.
    # Measured: 0.012 (the observed rule: 0.49).
    assert max_error(model, SECOND) < 0.04
    assert max_error(TransitionModel().fit(history), SECOND) > 0.2
    assert np.allclose(model.silence_.drop("churned"), SECOND_SILENCE, atol=0.04)
    assert abs(model.announce_ - 0.5) < 0.06
    latent = (most_probable(model.posterior_) == now.loc[history.customers]).mean()
    assert latent > (history.codes[:, -1] == now.loc[history.customers]).mean() + 0.1


def test_dense_logs_latent_and_observed_agree():
    tx, ev = chain_event_log(example_matrix(), n_customers=3000, n_periods=18, seed=4)
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    latent = LatentTransitionModel(n_boot=0).fit(history)
    observed = TransitionModel().fit(history)
    diff = (latent.matrix_ - observed.matrix_.loc[latent.stages_, latent.stages_]).abs()
    assert diff.to_numpy().max() < 0.02
    assert latent.silence_.max() < 0.01 and latent.announce_ > 0.99
    # Every month is shown: the expected counts are the observed ones.
    counts = observed.counts_.loc[latent.stages_, latent.stages_].to_numpy()
    assert np.abs(latent.counts_.to_numpy() - counts).max() < 0.01 * counts.max()


def small_fit(data_seed: int, n_boot: int = 20, **options) -> LatentTransitionModel:
    tx, ev = chain_event_log(
        example_matrix(), n_customers=800, n_periods=12, silent=0.4, unannounced=0.5,
        seed=data_seed,
    )  # fmt: skip
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    return LatentTransitionModel(n_boot=n_boot, **options).fit(history)


@pytest.mark.slow
def test_intervals_cover_the_true_matrix_over_replications():
    inside = []
    for rep in range(5):  # 320 cells: 0.90 sits four standard errors below 0.95
        tx, ev = chain_event_log(
            example_matrix(), n_customers=1500, n_periods=24, silent=0.4, unannounced=0.4,
            seed=300 + rep,
        )  # fmt: skip
        history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
        model = LatentTransitionModel(n_boot=50, seed=rep).fit(history)
        truth = example_matrix().loc[list(model.stages_), list(model.stages_)].to_numpy()
        lower, upper = model.lower_.to_numpy(), model.upper_.to_numpy()
        inside.append((lower - 1e-9 <= truth) & (truth <= upper + 1e-9))
        assert model.lower_.attrs["alpha"] == model.upper_.attrs["alpha"] == 0.05
    # 95% intervals; measured 0.947 on these five replications (0.95 on ten, seeds 300-309;
    # 0.93 of the possible transitions, 0.97 of the impossible ones, whose estimate can sit a
    # little above 0).
    assert np.mean(inside) >= 0.90


def test_bootstrap_is_seeded_bit_for_bit_and_brackets_the_estimate():
    a, b, c = small_fit(1, seed=5), small_fit(1, seed=5), small_fit(1, seed=6)
    assert a.lower_.equals(b.lower_) and a.upper_.equals(b.upper_)
    assert a.matrix_.equals(b.matrix_) and a.posterior_.equals(b.posterior_)
    assert not a.upper_.equals(c.upper_)
    assert (a.lower_ <= a.upper_).all().all()
    table = a.summary()
    assert list(table.columns) == ["count", "probability", "lower", "upper"]
    assert table.attrs["alpha"] == 0.05
    assert table.index.names == ["from", "to"]


def test_transactions_only_model_the_stages_they_show():
    rng = np.random.default_rng(8)
    n = 1500
    cust = rng.integers(0, n, 6000)
    days = rng.integers(0, 700, cust.size)
    tx = pd.DataFrame(
        {
            "customer_id": [f"t{i:05d}" for i in cust],
            "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, "D"),
            "amount": rng.gamma(2.0, 20.0, cust.size),
        }
    )
    history = assign_stages(tx, period="month", churn_after=None)
    model = LatentTransitionModel(n_boot=0).fit(history)
    assert model.stages_ == ("purchase", "retention", "churned")
    assert list(model.matrix_.index) == list(model.matrix_.columns) == list(model.stages_)
    assert model.matrix_.index.name == "from" and model.matrix_.columns.name == "to"
    assert np.allclose(model.matrix_.sum(axis=1), 1.0)
    assert list(model.posterior_.columns) == list(model.stages_)
    assert np.allclose(model.posterior_.sum(axis=1), 1.0)
    assert model.chain().stages == list(model.stages_)
    assert model.announce_ < 0.01  # no churn event ever


def test_reaching_max_iter_warns_and_says_not_converged():
    tx, ev = chain_event_log(
        example_matrix(), n_customers=800, n_periods=12, silent=0.4, unannounced=0.5, seed=2
    )
    history = assign_stages(tx, ev.drop(columns="true_stage"), churn_after=None)
    with pytest.warns(ClmWarning, match="max_iter"):
        model = LatentTransitionModel(n_boot=0, max_iter=3).fit(history)
    assert not model.converged_ and model.n_iter_ == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LatentTransitionModel(n_boot=0).fit(history).converged_


def test_sklearn_protocol_and_parameter_checks():
    model = LatentTransitionModel(n_boot=0, seed=3)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    with pytest.raises(NotFittedError):
        model.summary()
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    fitted = small_fit(3, n_boot=0)
    check_is_fitted(fitted)
    assert not hasattr(clone(fitted), "matrix_")
    assert np.isnan(fitted.lower_.to_numpy()).all()  # n_boot=0: no intervals
    for bad in ({"n_boot": 5}, {"alpha": 1.5}, {"max_iter": 0}, {"tol": 0}):
        with pytest.raises(ClmError):
            small_fit(3, **{"n_boot": 0, **bad})
    ax = fitted.plot_heatmap()
    assert ax.get_ylabel() == "from stage"
    matplotlib.pyplot.close("all")


def test_stage_probabilities_rejects_stages_it_was_not_fitted_on():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(["2024-01-03", "2024-03-09", "2024-02-01"]),
            "amount": [5.0, 7.0, 3.0],
        }
    )
    history = assign_stages(tx, period="month", churn_after=None)
    fitted = small_fit(4, n_boot=0)
    post = fitted.stage_probabilities(history)
    assert np.allclose(post.sum(axis=1), 1.0)
    assert post.loc["a", "retention"] == 1.0  # shown in the last month
    only_tx = LatentTransitionModel(n_boot=0).fit(history)
    ev_history = assign_stages(
        tx.iloc[:0],
        pd.DataFrame({"customer_id": ["z"], "timestamp": [pd.Timestamp("2024-01-02")],
                      "event_type": ["ad_click"]}),
        churn_after=None,
    )  # fmt: skip
    with pytest.raises(ClmError, match="awareness"):
        only_tx.stage_probabilities(ev_history)


def test_synthetic_options_leave_the_default_log_unchanged_and_sparsify():
    _, dense = chain_event_log(example_matrix(), n_customers=300, n_periods=10, seed=7)
    _, same, truth = chain_event_log(
        example_matrix(), n_customers=300, n_periods=10, seed=7, return_truth=True
    )
    pd.testing.assert_frame_equal(dense, same)
    assert truth.shape == (300, 10) and truth.index.name == "customer_id"
    _, thin = chain_event_log(
        example_matrix(), n_customers=300, n_periods=10, seed=7, silent=0.5, unannounced=1.0
    )
    assert len(thin) < 0.7 * len(dense)
    assert not thin["true_stage"].eq("churned").any()  # every churn unannounced
    with pytest.raises(ValueError, match="silent"):
        chain_event_log(example_matrix(), silent=1.5)


def test_clm_simulate_a_sparse_stage_log_and_clm_stages_recover_its_matrix(
    tmp_path, monkeypatch, capsys
):
    """The issue's acceptance from the command line: 8,000 customers x 24 months, 40% of live
    months silent, 40% of churns unannounced; the default clm stages within 0.04 in every
    cell of the matrix in truth.json, the observed rule far off."""
    import json

    from .conftest import run_clm

    folder = tmp_path / "log"
    args = ["--customers", "8000", "--months", "24", "--silent", "0.4", "--unannounced", "0.4"]
    code, text = run_clm(monkeypatch, capsys, "simulate", str(folder), "--stage-log", *args,
                         "--seed", "5")  # fmt: skip
    assert code == 0, text
    doc = json.loads((folder / "truth.json").read_text())
    truth = pd.DataFrame(doc["matrix"], index=doc["stages"], columns=doc["stages"])
    found = {}
    for method in ("latent", "observed"):
        out = tmp_path / f"{method}.csv"
        code, text = run_clm(monkeypatch, capsys, "stages", str(folder), "--method", method,
                             "--out", str(out))  # fmt: skip
        assert code == 0, text
        m = pd.read_csv(out, index_col=0)
        found[method] = (m - truth.loc[m.index, m.columns]).abs().to_numpy().max()
    assert found["latent"] < 0.04 and found["observed"] > 0.2, found
    stages = pd.read_csv(folder / "truth_stages.csv")
    assert set(stages.columns) == {"customer_id", "period", "stage"}
    assert stages["customer_id"].nunique() == 8000
    code, text = run_clm(monkeypatch, capsys, "simulate", str(tmp_path / "x"), "--silent", "0.4")
    assert code == 2 and "go with --stage-log" in text
