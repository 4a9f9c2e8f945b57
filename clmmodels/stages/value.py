"""Rewards per stage for Markov-chain CLV, measured from the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vocabulary import STAGES
from .assign import PERIODS, StageHistory


def stage_rewards(history: StageHistory, transactions: pd.DataFrame) -> pd.DataFrame:
    """Mean revenue per customer-period in each stage, as a reward for :meth:`MarkovChain.clv`.

    Returns one row per stage: ``customer_periods``, ``revenue`` and ``reward`` (revenue per
    customer-period). Transactions outside the history's customers or periods are counted in
    ``attrs["excluded_transactions"]``.
    """
    period = transactions["timestamp"].dt.to_period(PERIODS[history.period])
    t = history.periods.get_indexer(period)
    i = history.customers.get_indexer(transactions["customer_id"])
    inside = (t >= 0) & (i >= 0)
    codes = history.codes[i[inside], t[inside]]
    revenue = np.bincount(
        codes, weights=transactions["amount"].to_numpy()[inside], minlength=len(STAGES)
    )
    present = history.codes[history.codes >= 0]
    n = np.bincount(present, minlength=len(STAGES))
    out = pd.DataFrame({"customer_periods": n, "revenue": revenue}, index=list(STAGES))
    out["reward"] = np.divide(revenue, n, out=np.zeros(len(STAGES)), where=n > 0)
    out.index.name = "stage"
    out.attrs["excluded_transactions"] = int((~inside).sum())
    return out
