"""Maximum-likelihood stage-transition matrices with (1 - alpha) intervals, overall and per
group."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..clv.estimates import check_alpha, interval_label, normal_quantile, percentile_interval
from ..errors import ClmError, ClmWarning
from ..vocabulary import ALPHA, STAGES
from .assign import StageHistory
from .chain import MarkovChain

_N = len(STAGES)
UNKNOWN_SEGMENT = "(none)"


def transitions(history: StageHistory, order: int = 1) -> dict[str, np.ndarray]:
    """Every observed transition between consecutive periods, as flat arrays.

    Returns ``from`` and ``to`` stage codes, ``customer`` (row in ``history.customers``) and
    ``t`` (index of the period moved *from*). With ``order=2``, also ``prev``: the stage one
    period before ``from`` (only transitions that have one).
    """
    if order not in (1, 2):
        raise ClmError("order must be 1 or 2")
    codes = history.codes
    if codes.shape[1] <= order:
        raise ClmError(f"order-{order} transitions need at least {order + 1} periods")
    # Every customer-period that has entered and has `order` periods after it.
    cust, t = np.nonzero(codes[:, : codes.shape[1] - order] >= 0)
    out = {"customer": cust, "t": t + order - 1}
    out["from"] = codes[cust, t + order - 1]
    out["to"] = codes[cust, t + order]
    if order == 2:
        out["prev"] = codes[cust, t]
    return out


def count_matrix(frm: np.ndarray, to: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The 8 x 8 transition count matrix (canonical stage order)."""
    flat = np.bincount(frm.astype(np.int64) * _N + to, weights=weights, minlength=_N * _N)
    return flat.reshape(_N, _N)


def grouped_counts(frm: np.ndarray, to: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Count matrices per group: shape (n_groups, 8, 8)."""
    flat = (group.astype(np.int64) * _N + frm) * _N + to
    return np.bincount(flat, minlength=n_groups * _N * _N).reshape(n_groups, _N, _N)


def probabilities(counts: np.ndarray) -> np.ndarray:
    """Row-normalised counts; a stage never left from keeps 1 on its diagonal."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=-1, keepdims=True)
    P = np.divide(counts, n, out=np.zeros_like(counts), where=n > 0)
    empty = n[..., 0] == 0
    idx = np.arange(_N)
    P[..., idx, idx] = np.where(empty, 1.0, P[..., idx, idx])
    return P


def wilson_interval(k: np.ndarray, n: np.ndarray, alpha: float = ALPHA):
    """(1 - alpha) Wilson score interval for each cell's binomial margin of its row's
    multinomial.

    >>> [round(float(b), 4) for b in wilson_interval(np.array(3), np.array(10))]
    [0.1078, 0.6032]
    """
    z = normal_quantile(alpha)
    n = np.broadcast_to(n, k.shape).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def customer_segments(history: StageHistory, segments: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Code of each history customer's segment (customers without one get ``(none)``)."""
    labels = segments.astype(str).reindex(history.customers).fillna(UNKNOWN_SEGMENT)
    cat = pd.Categorical(labels)
    return cat.codes.astype(np.int64), [str(c) for c in cat.categories]


def period_windows(
    history: StageHistory, windows: int | Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Window of each period: ``windows`` consecutive equal parts, or split at the given
    ISO dates (each starts a window). Returns the window code per period and the labels."""
    n_t = len(history.periods)
    if isinstance(windows, int):
        if windows < 1 or windows > n_t - 1:
            raise ClmError(f"windows must be between 1 and {n_t - 1} (periods - 1), got {windows}")
        code = np.minimum(np.arange(n_t) * windows // max(n_t - 1, 1), windows - 1)
    else:
        starts = history.periods.start_time
        cuts = pd.to_datetime(list(windows))
        code = np.searchsorted(cuts.values, starts.values, side="right")
    labels = []
    for c in np.unique(code):
        span = history.periods[code == c]
        labels.append(f"{span[0]}..{span[-1]}")
    return pd.factorize(code)[0], labels


def transition_frame(
    values: np.ndarray, stages: Sequence[str] = STAGES, name: str | None = None
) -> pd.DataFrame:
    """A square table over ``stages``: from-stage rows named ``from``, to-stage columns named
    ``to`` (or ``name``), as every fitted transition model shows its matrices."""
    out = pd.DataFrame(values, index=pd.Index(list(stages), name="from"), columns=list(stages))
    out.columns.name = name or "to"
    return out


def transition_summary(model) -> pd.DataFrame:
    """A fitted transition model's long table: from, to, count, probability, lower, upper
    (stages left at least once), the interval's alpha in ``attrs["alpha"]``; the ``summary``
    of :class:`TransitionModel` and of the latent model."""
    out = pd.DataFrame(
        {
            "count": model.counts_.stack(),
            "probability": model.matrix_.stack(),
            "lower": model.lower_.stack(),
            "upper": model.upper_.stack(),
        }
    )
    out = out[model.n_from_.reindex(out.index.get_level_values(0)).to_numpy() > 0]
    out.attrs["alpha"] = model.lower_.attrs["alpha"]
    return out


def _frame(values: np.ndarray, name: str | None = None) -> pd.DataFrame:
    return transition_frame(values, name=name)


def _observed_chain(counts: pd.DataFrame, matrix: pd.DataFrame) -> MarkovChain:
    """The chain over the stages seen in some transition (a stage the data never shows would
    be a spurious closed class of its own)."""
    seen = [s for s in STAGES if counts.loc[s].sum() > 0 or counts[s].sum() > 0]
    return MarkovChain(matrix.loc[seen, seen])


class TransitionModel(BaseEstimator):
    """Maximum-likelihood estimate of the stage-transition matrix, with (1 - alpha) intervals.

    A scikit-learn estimator: ``get_params``, ``set_params``, ``sklearn.base.clone`` and
    ``check_is_fitted`` work. The constructor only stores its arguments; ``fit`` checks them.

    Parameters
    ----------
    ci
        ``"multinomial"`` (Wilson interval per cell, from the row's multinomial) or
        ``"bootstrap"`` (percentiles over customers resampled with replacement).
    n_boot, seed
        Bootstrap resamples and seed.
    min_transitions
        A row resting on fewer transitions gets a :class:`ClmWarning` and is listed in
        ``sparse_rows_``.
    alpha
        The intervals are (1 - alpha) intervals: 0.05 gives 95% intervals (Wilson's, or the
        bootstrap's ``100 * alpha / 2`` and ``100 * (1 - alpha / 2)`` percentiles).

    Attributes
    ----------
    counts_, matrix_, lower_, upper_ : DataFrame
        Counts, probabilities and interval bounds (from-stage rows, to-stage columns); the
        bounds carry their alpha in ``attrs["alpha"]``.
    n_from_ : Series
        Transitions out of each stage.
    segment_counts_, segment_matrices_ : dict
        Per segment, when ``fit`` got segments.
    chain_ : MarkovChain
        The overall chain over the stages seen in the data, for absorbing-chain analysis,
        forecasts and CLV.

    Examples
    --------
    >>> from clmmodels.stages.synthetic import chain_event_log, example_matrix
    >>> from clmmodels.stages.assign import assign_stages
    >>> tx, ev = chain_event_log(example_matrix(), n_customers=500, n_periods=12, seed=1)
    >>> h = assign_stages(tx, ev, period="month", churn_after=None)
    >>> m = TransitionModel().fit(h)
    >>> bool(np.allclose(m.matrix_.sum(axis=1), 1))
    True
    """

    def __init__(
        self,
        ci: str = "multinomial",
        n_boot: int = 200,
        seed: int = 0,
        min_transitions: int = 30,
        alpha: float = ALPHA,
    ) -> None:
        self.ci = ci
        self.n_boot = n_boot
        self.seed = seed
        self.min_transitions = min_transitions
        self.alpha = alpha

    def fit(self, history: StageHistory, segments: pd.Series | None = None) -> TransitionModel:
        """Estimate from a :class:`StageHistory`.

        Parameters
        ----------
        history
            Stage of each customer in each period (:func:`assign_stages`).
        segments
            customer_id to a segment label, for a matrix per segment as well.

        Returns
        -------
        self
        """
        if self.ci not in ("multinomial", "bootstrap"):
            raise ClmError(f"ci must be 'multinomial' or 'bootstrap', got {self.ci!r}")
        alpha = check_alpha(self.alpha)
        # At least 1/alpha resamples (20 for 95%): percentiles resting on more than the extremes.
        least = max(20, int(np.ceil(1 / alpha - 1e-9)))
        if self.ci == "bootstrap" and self.n_boot < least:
            raise ClmError(
                f"n_boot must be at least {least} for {interval_label(alpha)}s, got {self.n_boot}"
            )
        tr = transitions(history)
        counts = count_matrix(tr["from"], tr["to"])
        n_from = counts.sum(axis=1)
        if self.ci == "multinomial":
            lower, upper = wilson_interval(counts, n_from[:, None], alpha)
        else:
            lower, upper = percentile_interval(self._bootstrap(tr, history.n_customers), alpha)
        self.counts_ = _frame(counts.astype(np.int64))
        self.matrix_ = _frame(probabilities(counts))
        self.lower_, self.upper_ = _frame(lower), _frame(upper)
        self.lower_.attrs["alpha"] = self.upper_.attrs["alpha"] = alpha
        self.n_from_ = pd.Series(n_from.astype(np.int64), index=list(STAGES), name="transitions")
        self.n_transitions_ = int(n_from.sum())
        self.sparse_rows_ = self._sparse({"all": counts})
        self.segment_counts_, self.segment_matrices_ = {}, {}
        if segments is not None:
            code, labels = customer_segments(history, segments)
            per = grouped_counts(tr["from"], tr["to"], code[tr["customer"]], len(labels))
            for g, label in enumerate(labels):
                self.segment_counts_[label] = _frame(per[g].astype(np.int64))
                self.segment_matrices_[label] = _frame(probabilities(per[g]))
            self.sparse_rows_ += self._sparse(dict(zip(labels, per, strict=True)))
        self.chain_ = _observed_chain(self.counts_, self.matrix_)
        return self

    def _sparse(self, tables: dict[str, np.ndarray]) -> list[tuple[str, str, int]]:
        found = []
        for label, counts in tables.items():
            n = counts.sum(axis=1)
            for i in np.flatnonzero((n > 0) & (n < self.min_transitions)):
                found.append((label, STAGES[i], int(n[i])))
        if found:
            shown = ", ".join(f"{s} in {g} ({n})" for g, s, n in found[:8])
            more = f" and {len(found) - 8} more" if len(found) > 8 else ""
            warnings.warn(
                f"{len(found)} matrix rows rest on fewer than {self.min_transitions} "
                f"transitions, so their probabilities are uncertain: {shown}{more}",
                ClmWarning,
                stacklevel=3,
            )
        return found

    def _bootstrap(self, tr: dict[str, np.ndarray], n_customers: int) -> np.ndarray:
        """The transition matrices of ``n_boot`` seeded resamples of customers."""
        # One row per (customer, from, to) with its count, then multinomial customer weights.
        key = (tr["customer"].astype(np.int64) * _N + tr["from"]) * _N + tr["to"]
        uniq, mult = np.unique(key, return_counts=True)
        cust, cell = uniq // (_N * _N), uniq % (_N * _N)
        rng = np.random.default_rng(self.seed)
        draws = np.empty((self.n_boot, _N, _N))
        for b in range(self.n_boot):
            w = rng.multinomial(n_customers, np.full(n_customers, 1.0 / n_customers))
            flat = np.bincount(cell, weights=w[cust] * mult, minlength=_N * _N)
            draws[b] = probabilities(flat.reshape(_N, _N))
        return draws

    def check_fitted(self) -> None:
        check_is_fitted(self, msg="this %(name)s is not fitted yet; call fit(history)")

    def chain(self, segment: str | None = None) -> MarkovChain:
        """The Markov chain overall, or of one segment."""
        self.check_fitted()
        if segment is None:
            return self.chain_
        if segment not in self.segment_matrices_:
            raise ClmError(f"unknown segment {segment!r}; fitted: {list(self.segment_matrices_)}")
        return _observed_chain(self.segment_counts_[segment], self.segment_matrices_[segment])

    def summary(self) -> pd.DataFrame:
        """Long table: from, to, count, probability, lower, upper (observed rows only), the
        interval's alpha in ``attrs["alpha"]``."""
        self.check_fitted()
        return transition_summary(self)

    def plot_heatmap(self, ax=None, segment: str | None = None):
        """Transition heatmap: probabilities as colour, with the counts written in."""
        from .plots import plot_transition_heatmap

        self.check_fitted()
        if segment is None:
            return plot_transition_heatmap(self.matrix_, self.counts_, ax=ax)
        self.chain(segment)
        return plot_transition_heatmap(
            self.segment_matrices_[segment], self.segment_counts_[segment], ax=ax, title=segment
        )
