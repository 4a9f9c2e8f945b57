"""The two estimators of the stage-transition matrix behind one call: ``latent`` (the default,
:class:`~clmmodels.stages.latent.LatentTransitionModel`: silent periods are missing
observations) and ``observed`` (:class:`~clmmodels.stages.estimate.TransitionModel`: a silent
period keeps the stage, exact on dense logs), overall and per segment, over the stages the data
can observe."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ClmError, ClmWarning
from ..vocabulary import ALPHA, STAGE_METHODS, STAGES
from .assign import StageHistory
from .estimate import TransitionModel, customer_segments
from .latent import LatentTransitionModel

METHODS = STAGE_METHODS
DEFAULT_METHOD = STAGE_METHODS[0]


@dataclass
class StageMatrices:
    """A fitted estimator, its matrix and (expected) counts over ``stages``, and the same per
    segment when segments were given."""

    method: str
    model: TransitionModel | LatentTransitionModel
    stages: tuple[str, ...]
    matrix: pd.DataFrame
    counts: pd.DataFrame
    segment_matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    segment_counts: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def unobserved(self) -> tuple[str, ...]:
        """Stages of the vocabulary the data cannot see (no estimate for them)."""
        return tuple(s for s in STAGES if s not in self.stages)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ClmError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def fit_transitions(
    history: StageHistory,
    method: str = DEFAULT_METHOD,
    segments: pd.Series | None = None,
    n_boot: int = 0,
    seed: int = 0,
    alpha: float = ALPHA,
) -> StageMatrices:
    """Fit ``method`` on ``history`` (and on each segment's customers), over the stages the
    data can observe.

    Parameters
    ----------
    history
        From :func:`~clmmodels.stages.assign.assign_stages`; for ``latent``, assigned with
        ``churn_after=None`` (silence is the model's to explain, not a rule's).
    method
        ``"latent"`` or ``"observed"``.
    segments
        customer_id -> label: a matrix per segment as well.
    n_boot, seed, alpha
        The latent model's bootstrap intervals (0: none; the observed rule's intervals are
        Wilson's, from ``alpha``).

    Returns
    -------
    StageMatrices
    """
    check_method(method)
    if method == "observed":
        model = TransitionModel(alpha=alpha).fit(history, segments=segments)
        seen = list(history.stages_seen)
        out = StageMatrices(method, model, tuple(seen), model.matrix_.loc[seen, seen],
                            model.counts_.loc[seen, seen])  # fmt: skip
        for label, m in model.segment_matrices_.items():
            out.segment_matrices[label] = m.loc[seen, seen]
            out.segment_counts[label] = model.segment_counts_[label].loc[seen, seen]
        return out
    model = LatentTransitionModel(n_boot=n_boot, seed=seed, alpha=alpha).fit(history)
    out = StageMatrices(method, model, model.stages_, model.matrix_, model.counts_)
    if segments is not None:
        code, labels = customer_segments(history, segments)
        for g, label in enumerate(labels):
            part = LatentTransitionModel(n_boot=0, seed=seed, alpha=alpha)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ClmWarning)
                part.fit(history.subset(np.flatnonzero(code == g)))
            for w in caught:  # say which segment's fit the warning is about
                warnings.warn(f"segment {label}: {w.message}", w.category, stacklevel=2)
            # Each segment over the stages it shows (the CSV leaves the others' cells blank).
            out.segment_matrices[label] = part.matrix_
            out.segment_counts[label] = part.counts_
    return out
