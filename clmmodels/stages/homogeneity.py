"""Anderson–Goodman (1957) likelihood-ratio tests for Markov chains.

- **Homogeneity** across groups (time windows or segments): H0 says every group moves by the
  same matrix. For each from-stage, the table of groups x to-stages is a test of independence;
  G² = 2 Σ n_gij ln(p̂_gij / p̂_ij), summed over from-stages, with Σ_i (G_i - 1)(K_i - 1)
  degrees of freedom (G_i groups that left stage i, K_i to-stages reached from it).
- **Order:** H0 says the chain is first order. For each middle stage j, the rows "came from
  i" x "went to k" form the same kind of table; a second-order chain rejects it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..vocabulary import STAGES
from .assign import StageHistory
from .estimate import customer_segments, grouped_counts, period_windows, transitions

_N = len(STAGES)


def likelihood_ratio(tables: np.ndarray) -> tuple[float, int, pd.DataFrame]:
    """G² statistic and degrees of freedom of groups x stages x stages count tables.

    Returns the total statistic, the total degrees of freedom and a per-from-stage table.
    """
    rows = []
    for i in range(tables.shape[1]):
        t = tables[:, i, :].astype(float)
        t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
        g, k = t.shape
        if g < 2 or k < 2:
            rows.append((STAGES[i], 0.0, 0))
            continue
        expected = t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / t.sum()
        nz = t > 0
        g2 = 2.0 * float((t[nz] * np.log(t[nz] / expected[nz])).sum())
        rows.append((STAGES[i], g2, (g - 1) * (k - 1)))
    per = pd.DataFrame(rows, columns=["stage", "statistic", "df"]).set_index("stage")
    per["p_value"] = np.where(per["df"] > 0, stats.chi2.sf(per["statistic"], per["df"]), np.nan)
    return float(per["statistic"].sum()), int(per["df"].sum()), per


def _row(test: str, groups: int, tables: np.ndarray, alpha: float) -> dict:
    g2, df, _ = likelihood_ratio(tables)
    p = float(stats.chi2.sf(g2, df)) if df > 0 else float("nan")
    verdict = "not testable" if df == 0 else ("rejected" if p < alpha else "not rejected")
    return {"test": test, "groups": groups, "statistic": g2, "df": df, "p_value": p, "H0": verdict}


def markov_tests(
    history: StageHistory,
    segments: pd.Series | None = None,
    windows: int | Sequence[str] | None = 2,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The Anderson–Goodman tests as one table: ``test, groups, statistic, df, p_value, H0``.

    Rows: homogeneity across time ``windows`` (``None`` to skip), across ``segments`` (a
    customer_id -> label Series, when given), and first- against second-order dependence.

    Examples
    --------
    >>> from clmmodels.stages.synthetic import chain_event_log, example_matrix
    >>> from clmmodels.stages.assign import assign_stages
    >>> tx, ev = chain_event_log(example_matrix(), n_customers=300, n_periods=8, seed=2)
    >>> h = assign_stages(tx, ev, churn_after=None)
    >>> markov_tests(h)["test"].tolist()
    ['homogeneity across time windows', 'first order (against second order)']
    """
    tr = transitions(history)
    out = []
    if windows is not None:
        code, labels = period_windows(history, windows)
        tables = grouped_counts(tr["from"], tr["to"], code[tr["t"]], len(labels))
        out.append(_row("homogeneity across time windows", len(labels), tables, alpha))
    if segments is not None:
        code, labels = customer_segments(history, segments)
        tables = grouped_counts(tr["from"], tr["to"], code[tr["customer"]], len(labels))
        out.append(_row("homogeneity across segments", len(labels), tables, alpha))
    tr2 = transitions(history, order=2)
    # For each middle stage j (axis 1), the previous stage i plays the group (axis 0).
    tables = grouped_counts(tr2["from"], tr2["to"], tr2["prev"], _N)
    out.append(_row("first order (against second order)", _N, tables, alpha))
    return pd.DataFrame(out)
