"""Event logs simulated from a known monthly stage-transition matrix, to test that stage
assignment and estimation recover it (and to benchmark them at scale)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..vocabulary import DEFAULT_EVENT_STAGES, STAGES

_TYPES = {s: [e for e, st in DEFAULT_EVENT_STAGES.items() if st == s] for s in STAGES}
_PURCHASE = STAGES.index("purchase")


def example_matrix() -> pd.DataFrame:
    """A monthly matrix with skips (awareness -> purchase), bounce-backs (evaluation ->
    engagement, retention -> evaluation) and comebacks (churned -> engagement, purchase)."""
    rows = [
        # awa   eng   eva   pur   post  ret   adv   churn
        [0.30, 0.30, 0.15, 0.10, 0.00, 0.00, 0.00, 0.15],  # awareness
        [0.05, 0.35, 0.25, 0.15, 0.00, 0.00, 0.00, 0.20],  # engagement
        [0.00, 0.20, 0.25, 0.35, 0.00, 0.00, 0.00, 0.20],  # evaluation
        [0.00, 0.00, 0.00, 0.05, 0.55, 0.25, 0.05, 0.10],  # purchase
        [0.00, 0.05, 0.05, 0.00, 0.25, 0.40, 0.10, 0.15],  # post_purchase
        [0.00, 0.05, 0.10, 0.00, 0.15, 0.45, 0.15, 0.10],  # retention
        [0.00, 0.00, 0.00, 0.00, 0.05, 0.35, 0.45, 0.15],  # advocacy
        [0.00, 0.04, 0.00, 0.02, 0.00, 0.00, 0.00, 0.94],  # churned
    ]
    return pd.DataFrame(rows, index=list(STAGES), columns=list(STAGES))


def chain_event_log(
    matrix: pd.DataFrame,
    n_customers: int = 1000,
    n_periods: int = 24,
    seed: int = 0,
    start: str = "2024-01-01",
    noise: float = 0.3,
    *,
    silent: float = 0.0,
    unannounced: float = 0.0,
    return_truth: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame] | tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Monthly stage paths drawn from ``matrix`` and the events they leave.

    Each customer enters in a uniform month of the first half (at awareness, engagement or
    evaluation) and then moves by ``matrix`` once a month, leaving one event of their stage
    each month. With probability ``noise`` a month with an event also holds an earlier event
    of a random stage, which the assignment rule (the latest signal wins) must see through.

    Sparse logs, as real ones are: with ``silent`` or ``unannounced`` above 0, a live
    customer's month leaves no event with probability ``silent`` (but a month in the purchase
    stage always does: a purchase leaves a record), a month entering churned
    leaves its churn event with probability ``1 - unannounced``, and the months a customer
    stays churned leave none. With both 0 (the default) every month leaves an event, churned
    ones too, and a seed gives the same log as before these options existed.

    Parameters
    ----------
    matrix
        Monthly transition matrix over the stages (rows sum to 1).
    n_customers, n_periods, seed, start
        Customers, months, the random seed and the first month.
    noise
        Share of months with an event that also hold an earlier event of a random stage.
    silent
        Probability that a live customer's month leaves no event.
    unannounced
        Probability that an entry into churned leaves no churn event.
    return_truth
        Also return the true stage of every customer and month.

    Returns
    -------
    (transactions, events) or (transactions, events, truth)
        An empty transactions table (stages come from the events alone) and the events,
        with the true stage in an extra column ``true_stage``; with ``return_truth``, also
        ``truth``: each customer's (rows, ``customer_id``) true stage code in each month
        (columns, a monthly PeriodIndex), the index in :data:`~clmmodels.vocabulary.STAGES`
        or -1 before entry (as :class:`~clmmodels.stages.assign.StageHistory` codes).
    """
    for name, p in (("silent", silent), ("unannounced", unannounced)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1, got {p}")
    sparse = silent > 0 or unannounced > 0
    churned = STAGES.index("churned")
    rng = np.random.default_rng(seed)
    P = matrix.reindex(index=list(STAGES), columns=list(STAGES)).to_numpy(dtype=float)
    cum = np.cumsum(P, axis=1)
    months = pd.date_range(start, periods=n_periods + 1, freq="MS").to_numpy()
    length = (months[1:] - months[:-1]) / np.timedelta64(1, "s")
    enter = rng.integers(0, max(n_periods // 2, 1), n_customers)
    state = rng.choice(3, size=n_customers, p=[0.6, 0.25, 0.15])
    ids = np.array([f"s{i:07d}" for i in range(n_customers)], dtype=object)
    cust, when, stage, truth = [], [], [], []
    true_codes = np.full((n_customers, n_periods), -1, dtype=np.int8)
    for t in range(n_periods):
        moving = enter < t
        u = rng.uniform(size=n_customers)
        nxt = np.minimum((u[:, None] > cum[state]).sum(axis=1), len(STAGES) - 1)
        before = state
        state = np.where(moving, nxt, state)
        live = np.flatnonzero(enter <= t)
        true_codes[live, t] = state[live]
        if sparse:  # which of the entered customers' months leave an event
            is_churned = state[live] == churned
            entering = is_churned & ~(moving[live] & (before[live] == churned))
            shows = np.where(
                is_churned,
                entering & (rng.uniform(size=live.size) >= unannounced),
                # a purchase always leaves its record (a transaction or purchase event)
                (rng.uniform(size=live.size) >= silent) | (state[live] == _PURCHASE),
            )
            live = live[shows]
        # The state's event falls in the second half of the month, noise in the first half.
        offset = rng.uniform(0.5, 1.0, live.size) * length[t]
        cust.append(live)
        when.append(months[t] + (offset * 1e9).astype("timedelta64[ns]"))
        stage.append(state[live])
        truth.append(state[live])
        noisy = live[rng.uniform(size=live.size) < noise]
        cust.append(noisy)
        when.append(
            months[t]
            + (rng.uniform(0.0, 0.5, noisy.size) * length[t] * 1e9).astype("timedelta64[ns]")
        )
        stage.append(rng.integers(0, len(STAGES), noisy.size))
        truth.append(state[noisy])
    stage_code = np.concatenate(stage)
    types = np.empty(stage_code.size, dtype=object)
    for code, name in enumerate(STAGES):
        here = stage_code == code
        options = np.array(_TYPES[name], dtype=object)
        types[here] = options[rng.integers(0, options.size, here.sum())]
    events = pd.DataFrame(
        {
            "customer_id": ids[np.concatenate(cust)],
            "timestamp": np.concatenate(when).astype("datetime64[s]"),
            "event_type": types,
            "true_stage": np.array(STAGES, dtype=object)[np.concatenate(truth)],
        }
    )
    events = events.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    transactions = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "timestamp": pd.Series(dtype="datetime64[ns]"),
            "amount": pd.Series(dtype=float),
        }
    )
    if not return_truth:
        return transactions, events
    truth = pd.DataFrame(
        true_codes,
        index=pd.Index(ids, name="customer_id"),
        columns=pd.period_range(start, periods=n_periods, freq="M"),
    )
    return transactions, events, truth


def write_stage_log(
    out_dir: str | Path,
    n_customers: int = 8000,
    n_periods: int = 24,
    seed: int = 0,
    silent: float = 0.0,
    unannounced: float = 0.0,
    fmt: str = "csv",
) -> Path:
    """Write an events-only dataset drawn from :func:`example_matrix` (``clm simulate
    --stage-log``): ``events`` in the contract's shape, ``truth.json`` (the matrix and the
    sparsity it was drawn with) and ``truth_stages.csv`` (each customer's true stage in each
    month), so that ``clm stages`` can be checked against the truth.

    Returns
    -------
    Path
        The folder.
    """
    from ..outputs import OutputSet

    matrix = example_matrix()
    _, events, truth = chain_event_log(
        matrix, n_customers, n_periods, seed, silent=silent, unannounced=unannounced,
        return_truth=True,
    )  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    long = truth.stack().rename("code").reset_index()
    long.columns = ["customer_id", "period", "code"]
    long = long[long["code"] >= 0]
    stages = pd.DataFrame(
        {
            "customer_id": long["customer_id"],
            "period": long["period"].astype(str),
            "stage": np.array(STAGES, dtype=object)[long["code"].to_numpy()],
        }
    )
    doc = {
        "kind": "stage log",
        "seed": seed,
        "n_customers": n_customers,
        "n_periods": n_periods,
        "period": "month",
        "silent": silent,
        "unannounced": unannounced,
        "stages": list(STAGES),
        "matrix": matrix.to_numpy().tolist(),
    }
    with OutputSet() as outs:
        outs.frame("events", str(out / f"events.{fmt}"), events.drop(columns="true_stage"), False)
        outs.frame("truth", str(out / "truth_stages.csv"), stages.set_index("customer_id"))
        outs.text("truth", str(out / "truth.json"), json.dumps(doc, indent=2) + "\n")
    return out
