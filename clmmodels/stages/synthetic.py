"""Event logs simulated from a known monthly stage-transition matrix, to test that stage
assignment and estimation recover it (and to benchmark them at scale)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vocabulary import DEFAULT_EVENT_STAGES, STAGES

_TYPES = {s: [e for e, st in DEFAULT_EVENT_STAGES.items() if st == s] for s in STAGES}


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly stage paths drawn from ``matrix`` and the events they leave.

    Each customer enters in a uniform month of the first half (at awareness, engagement or
    evaluation) and then moves by ``matrix`` once a month, leaving one event of their stage
    each month. With probability ``noise`` a month also holds an earlier event of a random
    stage, which the assignment rule (the latest signal wins) must see through.

    Returns
    -------
    (transactions, events)
        An empty transactions table (stages come from the events alone) and the events,
        with the true stage in an extra column ``true_stage``.
    """
    rng = np.random.default_rng(seed)
    P = matrix.reindex(index=list(STAGES), columns=list(STAGES)).to_numpy(dtype=float)
    cum = np.cumsum(P, axis=1)
    months = pd.date_range(start, periods=n_periods + 1, freq="MS").to_numpy()
    length = (months[1:] - months[:-1]) / np.timedelta64(1, "s")
    enter = rng.integers(0, max(n_periods // 2, 1), n_customers)
    state = rng.choice(3, size=n_customers, p=[0.6, 0.25, 0.15])
    ids = np.array([f"s{i:07d}" for i in range(n_customers)], dtype=object)
    cust, when, stage, truth = [], [], [], []
    for t in range(n_periods):
        moving = enter < t
        u = rng.uniform(size=n_customers)
        nxt = np.minimum((u[:, None] > cum[state]).sum(axis=1), len(STAGES) - 1)
        state = np.where(moving, nxt, state)
        live = np.flatnonzero(enter <= t)
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
    return transactions, events
