"""Analysis of a stage-transition Markov chain: absorbing-chain results, forecasts, the
stationary distribution and Markov-chain CLV (Pfeifer & Carraway 2000).

The estimated chain lets churned customers come back, so churned is not absorbing in it.
Questions about *reaching* a stage (how long until churn, advocacy before churn) are first-
passage questions, answered on the chain in which the target stages are made absorbing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from ..errors import ClmError
from ..vocabulary import STAGES


class MarkovChain:
    """A finite Markov chain over named stages.

    Parameters
    ----------
    matrix
        Row-stochastic transition matrix, stages as index and columns (same order).

    Examples
    --------
    >>> P = pd.DataFrame([[0.5, 0.5], [0.0, 1.0]], index=["a", "churned"],
    ...                  columns=["a", "churned"])
    >>> float(MarkovChain(P).time_to_absorption()["a"])
    2.0
    """

    def __init__(self, matrix: pd.DataFrame) -> None:
        if list(matrix.index) != list(matrix.columns):
            raise ClmError("a transition matrix needs the same stages as index and columns")
        values = matrix.to_numpy(dtype=float)
        if (values < 0).any() or not np.allclose(values.sum(axis=1), 1.0, atol=1e-9):
            raise ClmError("a transition matrix needs non-negative rows that sum to 1")
        self.matrix = matrix.astype(float)
        self.stages = list(matrix.index)

    def _idx(self, stages: str | Sequence[str]) -> list[int]:
        names = [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in names if s not in self.stages]
        if unknown:
            raise ClmError(f"unknown stages {unknown}; the chain has {self.stages}")
        return [self.stages.index(s) for s in names]

    def _absorbing_parts(self, absorbing: str | Sequence[str]):
        target = self._idx(absorbing)
        transient = [i for i in range(len(self.stages)) if i not in target]
        P = self.matrix.to_numpy()
        Q = P[np.ix_(transient, transient)]
        R = P[np.ix_(transient, target)]
        try:
            N = np.linalg.inv(np.eye(len(transient)) - Q)
        except np.linalg.LinAlgError:
            N = None
        if N is None or not np.isfinite(N).all() or (N < -1e-9).any():
            raise ClmError(
                f"some stages never reach {absorbing}: no finite absorbing-chain results"
            )
        return transient, target, N, R

    def fundamental_matrix(self, absorbing: str | Sequence[str] = "churned") -> pd.DataFrame:
        """N = (I - Q)^-1: expected periods in each transient stage, from each transient one,
        before the first entry into an ``absorbing`` stage."""
        transient, _, N, _ = self._absorbing_parts(absorbing)
        names = [self.stages[i] for i in transient]
        return pd.DataFrame(N, index=names, columns=names)

    def time_to_absorption(self, absorbing: str | Sequence[str] = "churned") -> pd.Series:
        """Expected periods from each stage until first entering ``absorbing`` (0 there)."""
        transient, _, N, _ = self._absorbing_parts(absorbing)
        out = pd.Series(0.0, index=self.stages, name="expected_periods")
        out.iloc[transient] = N.sum(axis=1)
        return out

    def time_to_lapse(
        self, periods: int, active: Sequence[str] = ("purchase", "retention")
    ) -> pd.Series:
        """Expected periods from each stage until the end of the first run of ``periods``
        periods in a row outside the ``active`` stages (a lapse: by default, ``periods``
        periods without a purchase), counting the periods after today.

        Unlike the first entry into churned, a lapse needs time in the quiet stages, so it
        differs between a stage that buys and one that does not even where customers come back
        from churned. The chain is expanded to (stage, quiet periods so far) and the lapse made
        absorbing.

        >>> P = pd.DataFrame([[0.5, 0.5], [0.0, 1.0]], index=["retention", "churned"],
        ...                  columns=["retention", "churned"])
        >>> MarkovChain(P).time_to_lapse(2).round(3).tolist()
        [3.0, 2.0]
        """
        if int(periods) != periods or periods < 1:
            raise ClmError(f"a lapse is a whole number of periods >= 1, got {periods}")
        quiet = ~np.isin(self.stages, list(active))
        P = self.matrix.to_numpy()
        n, k = len(self.stages), int(periods)
        # Transient states (stage, q) with q < k quiet periods so far; index q * n + stage.
        Q = np.zeros((n * k, n * k))
        for q in range(k):
            rows = slice(q * n, (q + 1) * n)
            Q[rows, 0:n] += P * ~quiet  # a period in an active stage resets the count
            if q + 1 < k:  # else: the lapse is complete, absorbed
                Q[rows, (q + 1) * n : (q + 2) * n] += P * quiet
        try:
            steps = np.linalg.solve(np.eye(n * k) - Q, np.ones(n * k))
        except np.linalg.LinAlgError:
            steps = np.full(n * k, np.inf)
        if not np.isfinite(steps).all() or (steps < 0).any():
            raise ClmError(f"some stages never lapse for {k} periods: no finite time to it")
        return pd.Series(steps[:n], index=self.stages, name="expected_periods")

    def absorption_probabilities(
        self, absorbing: Sequence[str] = ("advocacy", "churned")
    ) -> pd.DataFrame:
        """Probability, from each stage, that each ``absorbing`` stage is the first of them
        reached (B = N R). With the default, column ``advocacy`` is the probability of
        reaching advocacy before churn."""
        transient, target, N, R = self._absorbing_parts(absorbing)
        names = [self.stages[i] for i in target]
        out = pd.DataFrame(0.0, index=self.stages, columns=names)
        out.iloc[transient, :] = N @ R
        for j, i in enumerate(target):
            out.iloc[i, j] = 1.0
        return out

    def forecast(self, start: pd.Series, steps: int) -> pd.DataFrame:
        """Expected customers per stage for ``steps`` periods after ``start`` (a count or
        share per stage); row 0 is ``start``. New customers are not forecast."""
        x = start.reindex(self.stages).fillna(0.0).to_numpy(dtype=float)
        rows = [x]
        P = self.matrix.to_numpy()
        for _ in range(steps):
            rows.append(rows[-1] @ P)
        out = pd.DataFrame(rows, columns=self.stages)
        out.index.name = "step"
        return out

    def closed_classes(self) -> list[list[str]]:
        """Closed communicating classes (a chain ends up in one of them)."""
        P = self.matrix.to_numpy()
        n, label = connected_components(P > 0, directed=True, connection="strong")
        closed = []
        for c in range(n):
            members = np.flatnonzero(label == c)
            outside = np.setdiff1d(np.arange(len(P)), members)
            if not (P[np.ix_(members, outside)] > 0).any():
                closed.append([self.stages[i] for i in members])
        return closed

    def stationary(self) -> pd.Series | None:
        """The stationary distribution, or ``None`` when it is not unique (more than one
        closed class). Stages outside the closed class get 0."""
        closed = self.closed_classes()
        if len(closed) != 1:
            return None
        idx = self._idx(closed[0])
        P = self.matrix.to_numpy()[np.ix_(idx, idx)]
        k = len(idx)
        # pi (P - I) = 0 with sum(pi) = 1, as one least-squares system (exact: it is consistent).
        A = np.vstack([(P - np.eye(k)).T, np.ones(k)])
        b = np.concatenate([np.zeros(k), [1.0]])
        pi = np.linalg.lstsq(A, b, rcond=None)[0]
        out = pd.Series(0.0, index=self.stages, name="stationary")
        out.iloc[idx] = np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()
        return out

    def clv(
        self, rewards: pd.Series, discount_rate: float, horizon: int | None = None
    ) -> pd.Series:
        """Markov-chain CLV (Pfeifer & Carraway 2000): the expected discounted value of a
        customer from each stage, ``sum_{t=0}^{T} ((1 + d)^-1 P)^t R``.

        Parameters
        ----------
        rewards
            Net value of one period in each stage (e.g. mean revenue per customer-period).
        discount_rate
            Per period (use a monthly rate with monthly periods).
        horizon
            Last period T counted; ``None`` is the infinite horizon ``(I - P/(1+d))^-1 R``.
        """
        if discount_rate < 0 or (discount_rate == 0 and horizon is None):
            raise ClmError("discount_rate must be > 0 (>= 0 with a finite horizon)")
        unknown = [s for s in rewards.index if s not in self.stages and s not in STAGES]
        if unknown:  # a misspelt stage would silently be worth 0
            raise ClmError(f"rewards name unknown stages {unknown}; stages are {', '.join(STAGES)}")
        R = rewards.reindex(self.stages).fillna(0.0).to_numpy(dtype=float)
        M = self.matrix.to_numpy() / (1.0 + discount_rate)
        if horizon is None:
            value = np.linalg.solve(np.eye(len(R)) - M, R)
        else:
            value, term = R.copy(), R.copy()
            for _ in range(horizon):
                term = M @ term
                value += term
        return pd.Series(value, index=self.stages, name="clv")

    def plot_time_to_churn(self, ax=None):
        """Bars of the expected periods until churn from each stage."""
        from .plots import plot_time_to_churn

        return plot_time_to_churn(self, ax=ax)
