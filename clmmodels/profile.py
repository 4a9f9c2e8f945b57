"""The customer lifecycle profile: where each customer stands now, what they are worth, what
is at risk, and what to do next, one row per customer.

Every column comes from the package's one implementation of it, on data strictly before the
as-of date, so the profile agrees with the commands that compute each part:

- ``stage``, ``stage_probability``: the most probable stage in the last period (which holds
  the day before ``as_of``) and its probability, from the latent stage model
  (:class:`~clmmodels.stages.LatentTransitionModel` on :func:`clmmodels.stages.assign_stages`
  with ``end=as_of``; ``clm stages --end --posterior-out``);
- ``periods_in_stage``: periods since the first signal of the customer's current run of
  signals of that stage (silent periods between them count); where the most probable stage
  is not the last signal's (a move nobody saw, say into churned), the periods since the last
  signal;
- ``next_<stage>``: the probability of each stage in the next period, the customer's stage
  probabilities times the model's matrix; ``expected_periods_to_churn``: periods until first
  entering ``churned`` by its absorbing chain, weighted by the stage probabilities (0 for the
  surely churned);
- ``p_alive``, ``expected_purchases``, ``clv`` (and ``clv_lower``, ``clv_upper`` when asked):
  :func:`clmmodels.clv.score_customers` at the day before ``as_of`` (``clm score
  --observation-end``);
- ``churn_probability``, ``risk_band``, ``reasons``: the churn classifier at ``as_of``
  (``clm churn --as-of``);
- ``value_at_risk`` = ``clv`` x ``churn_probability``; ``value_tier`` by predicted CLV;
  ``segment`` = stage and tier; ``action`` from the playbook (:mod:`clmmodels.playbook`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .dataset import Dataset
from .engines import DEFAULT_ENGINE, open_engine, timestamp_literal
from .errors import ClmError
from .playbook import DEFAULT_PLAYBOOK, Playbook
from .timeunits import as_day
from .vocabulary import ALPHA, STAGES

#: Value tiers by predicted CLV among customers with a purchase: the top fifth is high, the
#: next three tenths medium, the rest low; customers without a purchase yet are "none".
LOG = logging.getLogger(__name__)
VALUE_TIERS: tuple[tuple[str, float], ...] = (("high", 0.8), ("medium", 0.5), ("low", 0.0))


def customer_profile(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    horizon_months: int = 12,
    churn_horizon_days: int = 90,
    period: str = "month",
    churn_model: str = "hgb",
    snapshots: int = 3,
    playbook: Playbook | None = None,
    seed: int = 0,
    engine: str = DEFAULT_ENGINE,
    intervals: bool = False,
    alpha: float = ALPHA,
    n_boot: int = 200,
) -> pd.DataFrame:
    """One row per customer acquired before ``as_of``: stage, value, risk and next action.

    Parameters
    ----------
    ds
        A dataset with transactions (customers, events and surveys add to it).
    as_of
        The profile's date: every column uses data strictly before it.
    horizon_months
        Horizon of ``expected_purchases`` and ``clv``.
    churn_horizon_days
        Churned = no purchase in ``[as_of, as_of + churn_horizon_days)``, as ``clm churn``.
    period
        Stage period: ``"week"``, ``"month"`` or ``"quarter"``.
    churn_model, snapshots, seed
        The churn classifier (``"hgb"`` or ``"logistic"``), its training snapshots and seed.
    playbook
        Rules that give each customer an action; :data:`DEFAULT_PLAYBOOK` by default.
    engine
        Where the stages, the purchase histories and the churn features are aggregated:
        ``"duckdb"`` (reads the frames in place, or the files the dataset left for it:
        ``load_dataset(..., in_files=)``) or ``"spark"``; the same SQL, the same numbers.
    intervals, alpha, n_boot
        With ``intervals``, ``clv_lower``/``clv_upper``: (1 - ``alpha``) bootstrap intervals
        over ``n_boot`` resamples, as ``clm score --intervals``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted); the columns are listed in the module doc.
        ``attrs["excluded"]`` counts what was left out.

    Examples
    --------
    >>> from clmmodels import dataset_from_frames, simulate_company
    >>> ds = dataset_from_frames(**simulate_company(n_customers=400, seed=3).tables)
    >>> p = customer_profile(ds, "2024-10-01", churn_model="logistic", snapshots=1)
    >>> bool(p["action"].notna().all())
    True
    """
    from .churn import event_features, fit_churn_model, snapshot_features
    from .clv.score import score_customers
    from .stages import LatentTransitionModel, assign_stages

    at = as_day(as_of, "as_of")
    last_day = at - pd.Timedelta(days=1)
    tx = ds.require_source("transactions", "the customer profile")
    LOG.info("churn features at %s", at.date())
    try:
        features = snapshot_features(ds, at, horizon_days=churn_horizon_days, engine=engine)
    except ClmError as err:
        if "no transactions before" in str(err):
            raise ClmError(f"no transactions before {at.date()}: nothing to profile") from None
        raise

    LOG.info("stages by %s", period)
    history = assign_stages(
        tx, ds.source("events"), period=period, churn_after=None, event_stages=ds.event_stages,
        end=at, engine=engine,
    )  # fmt: skip
    model = LatentTransitionModel(n_boot=0).fit(history)
    stages = _stages_now(history, model.posterior_)
    matrix = model.matrix_.reindex(index=list(STAGES), columns=list(STAGES), fill_value=0.0)
    posterior = model.posterior_.reindex(columns=list(STAGES), fill_value=0.0)
    next_stage = posterior.to_numpy() @ matrix.to_numpy()
    to_churn = posterior.to_numpy() @ _periods_to_churn(model).reindex(list(STAGES), fill_value=0.0)

    LOG.info("purchase model and CLV")
    scores = score_customers(
        tx, last_day, horizon_months=horizon_months, engine=engine, intervals=intervals,
        alpha=alpha, n_boot=n_boot, seed=seed,
    ).scores  # fmt: skip
    value = ["p_alive", "expected_purchases", "clv"]
    value += ["clv_lower", "clv_upper"] if intervals else []
    LOG.info("churn classifier")
    churn = fit_churn_model(ds, at, churn_horizon_days, churn_model, snapshots, seed, engine)
    risk = churn.score_customers(features)

    customers = _customers(ds, at, stages.index, features.index)
    out = pd.DataFrame(index=customers)
    if ds.customers is not None:
        channel = ds.customers.set_index("customer_id")["acquisition_channel"]
        out["acquisition_channel"] = channel.reindex(customers)
    out["first_seen"] = _first_seen(ds, at, engine).reindex(customers)
    out["stage"] = stages["stage"].reindex(customers)
    out["stage_probability"] = stages["stage_probability"].reindex(customers)
    out["periods_in_stage"] = stages["periods_in_stage"].reindex(customers)
    out["days_since_last_purchase"] = features["recency_days"].reindex(customers)
    out["days_since_last_event"] = (
        event_features(ds, at, engine)["days_since_event"].reindex(customers)
        if ds.has("events")
        else np.nan
    )
    nxt = pd.DataFrame(next_stage, index=posterior.index, columns=[f"next_{s}" for s in STAGES])
    out = out.join(nxt.reindex(customers))
    out["expected_periods_to_churn"] = pd.Series(to_churn, index=posterior.index).reindex(customers)
    out = out.join(scores[value].reindex(customers))
    out = out.join(risk[["churn_probability", "risk_band", "reasons"]].reindex(customers))
    out["value_at_risk"] = out["clv"] * out["churn_probability"]
    out["value_tier"] = value_tiers(out["clv"])
    out["segment"] = out["stage"].fillna("no signal yet") + " / " + out["value_tier"]
    LOG.info("playbook")
    out["action"] = (playbook or DEFAULT_PLAYBOOK).actions(out)
    out.index.name = "customer_id"
    out.attrs["as_of"] = str(at.date())
    out.attrs["excluded"] = {
        "customers acquired on or after the as-of date": _acquired_from(ds, at),
    }
    return out.sort_index()


def value_tiers(clv: pd.Series) -> pd.Series:
    """``high``, ``medium`` or ``low`` by the rank of ``clv`` among customers with one
    (:data:`VALUE_TIERS`); ``none`` without (no purchase yet)."""
    rank = clv.rank(pct=True, method="max")
    tier = pd.Series("none", index=clv.index, dtype=object)
    for name, lowest in reversed(VALUE_TIERS):
        tier[rank > lowest] = name
    tier[rank.isna()] = "none"
    return tier


def _stages_now(history, posterior: pd.DataFrame) -> pd.DataFrame:
    """Each customer's most probable stage in the last period, its probability, and how many
    periods it has lasted (the module doc says how they are counted)."""
    codes = history.codes  # the last signal carried through silence (churn_after=None)
    last = codes[:, -1]
    n_t = codes.shape[1]
    steps = np.arange(n_t)
    # Trailing run of the last signal's stage: periods from the last change to the end.
    changed = np.where(codes != last[:, None], steps, -1).max(axis=1)
    run = n_t - 1 - changed
    # Periods since the last signal (0: a signal in the last period).
    silent = n_t - 1 - np.where(history.observed, steps, -1).max(axis=1)
    entered = last >= 0
    post = posterior.loc[history.customers[entered]]
    stage = post.idxmax(axis=1).to_numpy()
    same = stage == np.array(STAGES, dtype=object)[last[entered]]
    return pd.DataFrame(
        {
            "stage": stage,
            "stage_probability": post.max(axis=1).to_numpy(),
            "periods_in_stage": np.where(same, run[entered], silent[entered]),
        },
        index=history.customers[entered],
    )


def _periods_to_churn(model) -> pd.Series:
    """Expected periods until first entering ``churned``, by stage (NaN where the chain has
    no finite answer, say a stage no customer ever leaves)."""
    try:
        return model.chain().time_to_absorption("churned")
    except ClmError:
        return pd.Series(np.nan, index=list(STAGES))


def _customers(ds: Dataset, at: pd.Timestamp, with_stage: pd.Index, bought: pd.Index) -> pd.Index:
    """Customers acquired before ``at``: by the customers table (its ``acquired_at``, or a
    purchase before it, as the contract defines acquisition), else by a transaction or event
    before it (``with_stage``; ``bought``: those with a purchase before it). A listed customer
    acquired later is not one yet, whatever events (an ad seen, a visit) came before."""
    ids = set(with_stage)
    if ds.customers is not None:
        c = ds.customers
        acquired = (c["acquired_at"] < at) | c["customer_id"].isin(bought)
        ids -= set(c.loc[~acquired, "customer_id"])
        ids |= set(c.loc[acquired, "customer_id"])
    return pd.Index(sorted(ids), name="customer_id")


# The first transaction or event before the as-of date.
_FIRST_SEEN_SQL = """
SELECT customer_id, min(ts) AS first_seen
FROM ({rows}) AS seen
WHERE ts < {at}
GROUP BY customer_id
"""


def _first_seen(ds: Dataset, at: pd.Timestamp, engine: str) -> pd.Series:
    """The earliest of a customer's acquisition, transactions and events before ``at``."""
    with open_engine(engine) as sql:
        rows = []
        for table in ("transactions", "events"):
            if ds.has(table):
                types = ds.event_stages if table == "events" else None
                view = sql.checked(table, ds.source(table), types)
                ts = sql.timestamp(view, "timestamp")
                rows.append(
                    f"SELECT CAST(customer_id AS STRING) AS customer_id, {ts} AS ts FROM {view}"
                )
        query = _FIRST_SEEN_SQL.format(rows=" UNION ALL ".join(rows), at=timestamp_literal(at))
        seen = sql.df(query).set_index("customer_id")["first_seen"]
    seen = seen.astype("datetime64[ns]")
    if ds.customers is not None:
        c = ds.customers
        acquired = c.loc[c["acquired_at"] < at].set_index("customer_id")["acquired_at"]
        seen = pd.concat([seen, acquired]).groupby(level=0).min()
    return seen


def _acquired_from(ds: Dataset, at: pd.Timestamp) -> int:
    if ds.customers is None:
        return 0
    return int((ds.customers["acquired_at"] >= at).sum())
