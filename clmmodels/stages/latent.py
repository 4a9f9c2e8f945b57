"""Latent-stage transition estimates for sparse event logs: a hidden Markov model (issue #17).

Real logs are sparse: a live customer is silent in many periods and most churners never send a
churn event. Carrying the stage forward through silent periods (the observed rule of
:class:`~clmmodels.stages.estimate.TransitionModel`) then inflates the diagonal. Here the stage
of every period is latent and a period's signal is evidence of it:

- a live stage ``s`` leaves no signal with probability ``q_s`` (``silence_``) and otherwise
  shows ``s`` itself; the purchase stage always shows (:data:`LOUD_STAGES`);
- churned is two hidden sub-states sharing the churned row of the transition matrix:
  *churned, just entered* shows a churn signal with probability ``a`` (``announce_``) and is
  silent otherwise; *churned, staying* is silent with probability ``q_churned`` and shows
  churned otherwise;
- a customer enters in the period of their first signal, in the stage it shows (churned: just
  entered); the grid's last period is the last one.

The estimates are maximum likelihood, by EM (Baum-Welch, scaled forward-backward),
accelerated by SQUAREM (Varadhan & Roland 2008) and started from the observed rule's counts
between consecutive observed periods. A transition may land on probability 0 (as an
impossible one should; plain EM only creeps towards it); one the likelihood wants back (its
gradient breaks the Karush-Kuhn-Tucker condition) is revived and EM goes on. A move between
live stages that the data never show between two consecutive periods with signals is not
used at all (:func:`_support`).

Since only a live stage shows itself, a period with a live signal fixes the hidden state, and
given it the past and the future are independent (the Markov property). The likelihood is
therefore a product over *segments*: from one period with a live signal (or the entry) to the
next one (or the grid's end). Customers share segments, so EM runs forward-backward once per
distinct segment, weighted by how often it occurs, vectorised over segments: its cost grows
with the number of distinct segments (thousands), not with customers. The bootstrap resamples
customers (multinomial weights; customers with the same history are pooled, which gives the
same distribution) and maps their weights onto the segments.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..clv.estimates import check_alpha, interval_label, percentile_interval
from ..errors import ClmError, ClmWarning
from ..sums import dot
from ..vocabulary import ALPHA, STAGES
from .assign import StageHistory
from .chain import MarkovChain
from .estimate import transition_frame, transition_summary

_CHURNED = STAGES.index("churned")
#: Stages that always leave a signal: a period in the purchase stage has a purchase, and a
#: purchase leaves a record (a transaction or a purchase event). Without this, a stage that the
#: data show once per customer (the first purchase) can become a silent "dormant" state that
#: soaks up quiet periods, a degenerate maximum of the likelihood.
LOUD_STAGES: tuple[str, ...] = ("purchase",)
_NOT_ENTERED = -1
#: The most periods a segment's silent/churned pattern fits (the bits of a uint64); longer
#: grids are an error (weeks cover more than a year: choose months).
_MAX_PERIODS = 63
#: Rounds of EM after bringing back transitions that a jump set to 0 too early.
_REVIVALS = 3
_CHUNK = 100_000


@dataclass
class _Params:
    """Transition matrix over the stages (churned last), silence per live stage, and the
    churned sub-states' emission probabilities."""

    P: np.ndarray
    q: np.ndarray
    announce: float
    q_churned: float
    #: Live stages that are never silent (their silence stays 0): see :data:`LOUD_STAGES`.
    loud: np.ndarray

    def hidden(self) -> tuple[np.ndarray, np.ndarray]:
        """The hidden chain (live stages, churned-entered, churned-staying) and its emission
        table: rows symbols (live stages, churned, silent), columns hidden states."""
        n_live = len(self.q)
        K = n_live + 2
        A = np.zeros((K, K))
        A[:n_live, :n_live] = self.P[:n_live, :n_live]
        A[:n_live, n_live] = self.P[:n_live, n_live]  # a live stage enters churned
        A[n_live:, :n_live] = self.P[n_live, :n_live]  # comebacks, from either sub-state
        A[n_live:, n_live + 1] = self.P[n_live, n_live]  # staying churned
        E = np.zeros((n_live + 2, K))
        live = np.arange(n_live)
        E[live, live] = 1 - self.q
        E[n_live + 1, :n_live] = self.q
        E[n_live, n_live], E[n_live + 1, n_live] = self.announce, 1 - self.announce
        E[n_live, n_live + 1], E[n_live + 1, n_live + 1] = 1 - self.q_churned, self.q_churned
        return A, E

    def copy(self) -> _Params:
        return _Params(self.P.copy(), self.q.copy(), self.announce, self.q_churned, self.loud)


@dataclass
class _Segments:
    """Distinct segments, longest first: the hidden start state, the symbols after it (padded
    with -1), their lengths and, per step, how many segments are that long or longer."""

    start: np.ndarray
    symbols: np.ndarray
    length: np.ndarray
    active: np.ndarray


@dataclass
class _Data:
    """A history cut into segments: the distinct segments, each distinct customer history's
    segment counts (a sparse matrix), how many customers have each history, each customer's
    history and each history's last segment."""

    segments: _Segments
    per_history: sparse.csr_matrix
    n_history: np.ndarray
    history_of: np.ndarray
    last_segment: np.ndarray
    init_counts: np.ndarray
    silent_share: float


def _unique_rows(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of an int8 matrix, the row of each input row among them, and their counts
    (rows as 8-byte words, sorted with one lexsort)."""
    n, width = Z.shape
    words = -(-width // 8)
    padded = np.full((n, words * 8), _NOT_ENTERED, dtype=np.int8)
    padded[:, :width] = Z
    keys = padded.view(np.uint64)
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    first = order[new]
    return Z[first], inverse, np.bincount(group)


def _symbols(history: StageHistory, stages: tuple[str, ...]) -> np.ndarray:
    """Each customer's observation in each period: the index of the signal's stage in
    ``stages`` (churned last), ``len(stages)`` when silent, -1 before entry."""
    n_live = len(stages) - 1
    lookup = np.full(len(STAGES), -2, dtype=np.int8)
    for i, s in enumerate(stages):
        lookup[STAGES.index(s)] = i
    codes, observed = history.codes, history.observed
    Z = np.where(codes >= 0, np.int8(n_live + 1), np.int8(_NOT_ENTERED))
    Z[observed] = lookup[codes[observed]]
    if (Z == -2).any():
        unknown = sorted({STAGES[c] for c in np.unique(codes[observed]) if lookup[c] < 0})
        raise ClmError(f"the history shows stages the model was not fitted on: {unknown}")
    return Z


def _segment_keys(U: np.ndarray, n_live: int) -> tuple[np.ndarray, np.ndarray]:
    """Each segment of each row of ``U`` (in row-major order): its row, and a key of two
    words: its start state, closing live signal (or the grid's end) and length, then which of
    its inner periods showed churned (the others are silent)."""
    T = U.shape[1]
    t_idx = np.arange(T, dtype=np.int8)
    is_cut = (U >= 0) & (U < n_live)
    is_cut[np.arange(len(U)), np.argmax(U >= 0, axis=1)] = True  # the entry
    # Next cut after each period (T: none, the segment runs to the grid's end).
    at = np.where(is_cut, t_idx, np.int8(T))
    next_incl = np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1]
    nxt = np.full_like(next_incl, T)
    nxt[:, :-1] = next_incl[:, 1:]
    # Bit u of the prefix sums: period u showed churned (inside a segment: churned or silent).
    bits = np.cumsum(
        (U == n_live).astype(np.uint64) << np.arange(T, dtype=np.uint64), axis=1, dtype=np.uint64
    )
    row, t = np.nonzero(is_cut)
    t_end = nxt[row, t].astype(np.int64)  # the closing live signal, or T
    interior = t_end - t - 1
    shift = np.minimum(t + 1, T - 1).astype(np.uint64)  # no inner period: the pattern is 0
    pattern = (bits[row, t_end - 1] - bits[row, t]) >> shift
    start = U[row, t].astype(np.int64)  # churned at entry: the churned-entered state
    closing = np.where(t_end < T, U[row, np.minimum(t_end, T - 1)], n_live + 1).astype(np.int64)
    head = (start * (n_live + 2) + closing) * (T + 1) + interior
    return row, np.column_stack([head.astype(np.uint64), pattern])


def _cut(Z: np.ndarray, n_live: int) -> _Data:
    """Cut the distinct histories into segments at their live signals and entry."""
    T = Z.shape[1]
    if T > _MAX_PERIODS:
        raise ClmError(f"the latent model takes at most {_MAX_PERIODS} periods, got {T}")
    # Observed-rule counts between consecutive observed periods: EM's starting point.
    a, b = Z[:, :-1].ravel(), Z[:, 1:].ravel()
    both = (a >= 0) & (a <= n_live) & (b >= 0) & (b <= n_live)
    k = n_live + 1
    pair = a[both].astype(np.int64) * k + b[both]
    U, history_of, n_history = _unique_rows(Z)
    init = np.bincount(pair, minlength=k * k).reshape(k, k).astype(float)
    entered = Z >= 0
    silent_share = float((Z == n_live + 1).sum() / max(entered.sum(), 1))

    rows, keys = [], []
    for first in range(0, len(U), _CHUNK):  # chunks bound the memory of the int64 temporaries
        row, key = _segment_keys(U[first : first + _CHUNK], n_live)
        rows.append(row + first)
        keys.append(key)
    row, key = np.concatenate(rows), np.concatenate(keys)
    uniq, seg_of_cut, _ = _unique_rows(key.view(np.int8))
    uniq = uniq.view(np.uint64)

    # Decode the distinct segments into padded symbol rows.
    pattern_u = uniq[:, 1]
    rest = uniq[:, 0].astype(np.int64)
    interior_u = rest % (T + 1)
    rest //= T + 1
    closing_u, start_u = rest % (n_live + 2), rest // (n_live + 2)
    has_close = closing_u < n_live
    length = interior_u + has_close
    width = max(int(length.max()), 1)
    steps = np.arange(width)
    sym = np.where(
        steps < interior_u[:, None],
        np.where((pattern_u[:, None] >> steps.astype(np.uint64)) & 1, n_live, n_live + 1),
        -1,
    )
    sym[np.flatnonzero(has_close), interior_u[has_close]] = closing_u[has_close]
    order = np.argsort(-length, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    length_o = length[order]
    segments = _Segments(
        start=start_u[order].astype(np.int64),
        symbols=sym[order].astype(np.int8),
        length=length_o,
        active=(length_o[:, None] > steps).sum(axis=0),
    )
    seg = rank[seg_of_cut]
    per_history = sparse.csr_matrix(
        (np.ones(len(seg)), (row, seg)), shape=(len(U), len(uniq))
    )  # duplicates are summed
    last = np.full(len(U), -1, dtype=np.int64)
    last[row] = seg  # the cuts come in row-major order: the last one per row wins
    return _Data(segments, per_history, n_history, history_of, last, init, silent_share)


def _forward_backward(
    seg: _Segments, A: np.ndarray, E: np.ndarray, w: np.ndarray, stats: bool = True
):
    """One E-step over the distinct segments with weights ``w``: the log-likelihood, the
    expected transitions between hidden states, the expected periods in each hidden state
    (emissions counted) and those of them silent, and each segment's last-period posterior."""
    K = A.shape[0]
    n = len(seg.start)
    emit = E[seg.symbols]  # each segment's emission column per step (padding: unused)
    alpha = np.zeros((n, K))
    alpha[np.arange(n), seg.start] = 1.0
    alphas, scales = [alpha], []
    final = alpha.copy()
    log_lik = 0.0
    for t, m in enumerate(seg.active):
        a = alphas[-1][:m] @ A
        a *= emit[:m, t]
        c = a.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # an impossible history: -inf
            a /= c[:, None]
            log_lik += dot(w[:m], np.log(c))
        alphas.append(a)
        scales.append(c)
        m_next = seg.active[t + 1] if t + 1 < len(seg.active) else 0
        final[m_next:m] = a[m_next:m]
    if not stats:
        return log_lik, final
    G = np.zeros((K, K))
    total, quiet = np.zeros(K), np.zeros(K)
    silent_w = w[:, None] * (seg.symbols == E.shape[0] - 1)
    beta = np.ones((n, K))  # rows past a segment's end stay 1
    for t in range(len(seg.active) - 1, -1, -1):
        m = seg.active[t]
        eb = emit[:m, t] * beta[:m]
        G += (alphas[t][:m].T * (w[:m] / scales[t])) @ eb
        gamma = alphas[t + 1] * beta[:m]
        total += dot(w[:m], gamma)
        quiet += dot(silent_w[:m, t], gamma)
        np.divide(eb @ A.T, scales[t][:, None], out=beta[:m])
    # G is the log-likelihood's gradient in the hidden chain's matrix; times it, the
    # expected transitions.
    return log_lik, final, G * A, G, total, quiet


def _m_step(prev: _Params, X: np.ndarray, total: np.ndarray, quiet: np.ndarray) -> _Params:
    """Maximum-likelihood parameters from expected counts (the churned sub-states pooled)."""
    n_live = len(prev.q)
    counts = _stage_counts(X, n_live)
    n = counts.sum(axis=1, keepdims=True)
    P = np.where(n > 0, counts / np.where(n > 0, n, 1.0), prev.P)
    q = np.where(total[:n_live] > 0, quiet[:n_live] / np.maximum(total[:n_live], 1e-300), prev.q)
    q[prev.loud] = 0.0
    c1, c2 = total[n_live], total[n_live + 1]
    announce = 1 - quiet[n_live] / c1 if c1 > 0 else prev.announce
    q_churned = quiet[n_live + 1] / c2 if c2 > 0 else prev.q_churned
    return _Params(P, q, float(announce), float(q_churned), prev.loud)


def _stage_counts(X: np.ndarray, n_live: int) -> np.ndarray:
    """Expected transitions between the stages: the churned sub-states' rows and columns
    pooled."""
    k = n_live + 1
    out = np.zeros((k, k))
    out[:, :n_live] = np.vstack([X[:n_live, :n_live], X[n_live:, :n_live].sum(axis=0)])
    out[:, n_live] = np.concatenate([X[:n_live, n_live:].sum(axis=1), [X[n_live:, n_live:].sum()]])
    return out


def _em_step(seg: _Segments, w: np.ndarray, params: _Params) -> tuple[float, _Params]:
    """The log-likelihood at ``params`` and one EM update of them."""
    A, E = params.hidden()
    with np.errstate(invalid="ignore", divide="ignore"):  # an impossible jump: rejected
        log_lik, _, X, _, total, quiet = _forward_backward(seg, A, E, w)
        return log_lik, _m_step(params, X, total, quiet)


def _extrapolate(p0: _Params, p1: _Params, p2: _Params) -> _Params | None:
    """SQUAREM's step (Varadhan & Roland 2008, scheme S3) from two EM updates of ``p0``,
    kept inside the parameter space; None when EM has stopped moving."""
    flat = [np.concatenate([p.P.ravel(), p.q, [p.announce, p.q_churned]]) for p in (p0, p1, p2)]
    r = flat[1] - flat[0]
    v = flat[2] - 2 * flat[1] + flat[0]
    vv = float(v @ v)
    if vv == 0.0:
        return None
    step = min(-np.sqrt(float(r @ r) / vv), -1.0)
    x = flat[0] - 2 * step * r + step**2 * v
    # A transition probability below 0 goes to 0 (EM only creeps towards a boundary; the fit
    # revives it if the likelihood wants it back); the emission probabilities stay a little
    # inside (0, 1), a fraction of the way from EM's second update.
    k, n_live = p0.P.shape[0], len(p0.q)
    x[: k * k] = np.clip(x[: k * k], 0.0, 1.0)
    x[k * k :] = np.where(
        x[k * k :] <= 0,
        0.01 * flat[2][k * k :],
        np.where(x[k * k :] >= 1, 1 - 0.01 * (1 - flat[2][k * k :]), x[k * k :]),
    )
    P = x[: k * k].reshape(k, k)
    P /= P.sum(axis=1, keepdims=True)
    q = np.where(p0.loud, 0.0, x[k * k : k * k + n_live])
    return _Params(P, q, float(x[-2]), float(x[-1]), p0.loud)


def _support(init_counts: np.ndarray, n_live: int) -> np.ndarray:
    """The transitions the model may use: a move between live stages that the data show at
    least once between two consecutive periods with signals, every stay, and every move into
    or out of churned (an unannounced churn, and a comeback after one, are never seen
    directly). Without it, EM can route silent periods through a stage the data show only once
    per customer (awareness before the first purchase, say) and make a silent "dormant" state
    of it: a degenerate maximum, with moves nobody ever made."""
    support = init_counts > 0
    support[np.diag_indices_from(support)] = True
    support[:, n_live] = support[n_live, :] = True
    return support


def _revivable(P: np.ndarray, gradient: np.ndarray, n_from: np.ndarray) -> np.ndarray:
    """Transitions at probability 0 that the likelihood wants above 0: the Karush-Kuhn-Tucker
    condition of a maximum on the simplex (a zero cell's gradient at most the row's
    multiplier, ``sum_j P_ij dL/dP_ij``, the expected transitions out of the row) broken."""
    return (P == 0) & (gradient > n_from[:, None] * (1 + 1e-6) + 1e-9)


def _em(
    seg: _Segments, w: np.ndarray, start: _Params, max_iter: int, tol: float, n_customers: int
) -> tuple[_Params, float, int, bool]:
    """EM from ``start``, accelerated by SQUAREM (each cycle: two EM updates, an extrapolation
    and an EM update of it, kept only if the likelihood rose), until two consecutive EM
    updates change the log-likelihood per customer by less than ``tol``, or ``max_iter``
    E-steps. Returns the parameters, their log-likelihood, the E-steps and convergence."""
    params, n_iter = start, 0
    scale = tol * max(n_customers, 1)
    while True:
        ll0, p1 = _em_step(seg, w, params)
        n_iter += 1
        if n_iter >= max_iter:
            return params, ll0, n_iter, False
        ll1, p2 = _em_step(seg, w, p1)
        n_iter += 1
        if ll1 - ll0 < scale:
            return p1, ll1, n_iter, True
        if n_iter >= max_iter:
            return p1, ll1, n_iter, False
        jump = _extrapolate(params, p1, p2)
        if jump is None:
            params = p2
            continue
        ll_jump, p_new = _em_step(seg, w, jump)
        n_iter += 1
        rose = ll_jump >= ll1
        if n_iter >= max_iter:
            return (jump, ll_jump, n_iter, False) if rose else (p1, ll1, n_iter, False)
        params = p_new if rose else p2


class LatentTransitionModel(BaseEstimator):
    """Maximum-likelihood stage-transition matrix when the stage is latent: a hidden Markov
    model for sparse event logs, with bootstrap (1 - alpha) intervals and each customer's
    probability of each stage now.

    A silent period is a missing observation, not a repeat of the last stage (the observed rule
    of :class:`~clmmodels.stages.estimate.TransitionModel`, biased towards the diagonal when
    logs are sparse). Each live stage is silent with its own probability; churned is entered
    announced (a churn event) or not. The model covers the stages the data shows (and churned,
    which can be entered unannounced). The module docstring has the model and the algorithm.

    A scikit-learn estimator: ``get_params``, ``set_params``, ``sklearn.base.clone`` and
    ``check_is_fitted`` work. The constructor only stores its arguments; ``fit`` checks them.

    Parameters
    ----------
    n_boot
        Bootstrap resamples of customers for the intervals (at least ``1 / alpha``; 0 skips
        the intervals, which are then NaN).
    seed
        Seed of the bootstrap: the same seed gives the same intervals, bit for bit.
    alpha
        The intervals are (1 - alpha) percentile intervals: 0.05 gives 95% intervals.
    max_iter
        Most EM iterations (E-steps: forward-backward passes); reaching it leaves
        ``converged_`` False, with a :class:`~clmmodels.errors.ClmWarning`.
    tol
        EM stops when an iteration changes the log-likelihood per customer by less than
        ``tol``.
    boot_iter
        Most EM iterations per bootstrap resample (each starts from the estimate; bounded,
        without a warning).

    Attributes
    ----------
    stages_ : tuple of str
        The stages modelled, in canonical order: those with a signal in the data, and churned.
    matrix_, lower_, upper_ : DataFrame
        Transition probabilities and their interval bounds (from-stage rows, to-stage columns,
        over ``stages_``); the bounds carry their alpha in ``attrs["alpha"]``.
    counts_ : DataFrame
        Expected transitions (floats) at the estimate.
    n_from_ : Series
        Expected transitions out of each stage.
    silence_ : Series
        Probability that a period in each stage leaves no signal (churned: staying churned).
    announce_ : float
        Probability that entering churned leaves a churn signal.
    log_likelihood_ : float
        Log-likelihood of the histories given their entry.
    n_iter_, converged_ : int, bool
        EM iterations (E-steps), and whether the log-likelihood settled within ``max_iter``.
    posterior_ : DataFrame
        Each customer's (rows, ``customer_id``) probability of each stage (columns,
        ``stages_``) in the grid's last period.
    chain_ : MarkovChain
        The chain over ``stages_``, for absorbing-chain analysis, forecasts and CLV.

    Examples
    --------
    >>> from clmmodels.stages.synthetic import chain_event_log, example_matrix
    >>> from clmmodels.stages.assign import assign_stages
    >>> tx, ev = chain_event_log(example_matrix(), n_customers=500, n_periods=12, seed=1,
    ...                          silent=0.4, unannounced=0.5)
    >>> h = assign_stages(tx, ev, period="month", churn_after=None)
    >>> m = LatentTransitionModel(n_boot=20).fit(h)
    >>> m.stages_[-1], bool(np.allclose(m.matrix_.sum(axis=1), 1))
    ('churned', True)
    >>> bool(np.allclose(m.posterior_.sum(axis=1), 1))
    True
    """

    def __init__(
        self,
        n_boot: int = 200,
        seed: int = 0,
        alpha: float = ALPHA,
        max_iter: int = 500,
        tol: float = 1e-8,
        boot_iter: int = 50,
    ) -> None:
        self.n_boot = n_boot
        self.seed = seed
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.boot_iter = boot_iter

    def _check_params(self) -> float:
        alpha = check_alpha(self.alpha)
        least = max(20, int(np.ceil(1 / alpha - 1e-9)))
        if self.n_boot != 0 and self.n_boot < least:
            raise ClmError(
                f"n_boot must be 0 (no intervals) or at least {least} for "
                f"{interval_label(alpha)}s, got {self.n_boot}"
            )
        for name in ("max_iter", "boot_iter"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ClmError(f"{name} must be a whole number >= 1, got {value}")
        if not self.tol > 0:
            raise ClmError(f"tol must be > 0, got {self.tol}")
        return alpha

    def fit(self, history: StageHistory) -> LatentTransitionModel:
        """Estimate from a :class:`~clmmodels.stages.assign.StageHistory` (its observed
        signals; how it filled the silent periods does not matter).

        Parameters
        ----------
        history
            Stage of each customer in each period (:func:`~clmmodels.stages.assign_stages`).

        Returns
        -------
        self
        """
        alpha = self._check_params()
        if len(history.periods) < 2:
            raise ClmError("the transition matrix needs at least two periods")
        shown = np.unique(history.codes[history.observed])
        stages = tuple(s for i, s in enumerate(STAGES) if i in shown or i == _CHURNED)
        n_live = len(stages) - 1
        data = _cut(_symbols(history, stages), n_live)
        w = np.asarray(data.n_history @ data.per_history, dtype=float)
        loud = np.isin(stages[:n_live], LOUD_STAGES)
        support = _support(data.init_counts, n_live)
        params, n_iter = self._start(data, n_live, loud, support), 0
        for _ in range(_REVIVALS + 1):
            params, log_lik, used, converged = _em(
                data.segments, w, params, int(self.max_iter) - n_iter, self.tol,
                history.n_customers,
            )  # fmt: skip
            n_iter += used
            A, E = params.hidden()
            _, final, X, G, _, _ = _forward_backward(data.segments, A, E, w)
            counts = _stage_counts(X, n_live)
            dead = _revivable(params.P, _stage_counts(G, n_live), counts.sum(axis=1)) & support
            if not (converged and dead.any() and n_iter < self.max_iter):
                break
            params = params.copy()
            params.P[dead] = 0.01 / len(stages)
            params.P /= params.P.sum(axis=1, keepdims=True)
        if not converged:
            warnings.warn(
                f"EM stopped at max_iter={self.max_iter} iterations before the log-likelihood "
                f"settled (tol={self.tol} per customer): the estimates may still move; raise "
                "max_iter",
                ClmWarning,
                stacklevel=2,
            )
        never_left = counts.sum(axis=1) == 0  # as TransitionModel: 1 on the diagonal
        if never_left.any():
            params = params.copy()
            params.P[never_left] = np.eye(len(stages))[never_left]
        if self.n_boot:
            draws = self._bootstrap(data, params, len(history.customers))
            lower, upper = percentile_interval(draws, alpha)
        else:
            lower = upper = np.full_like(params.P, np.nan)
        self.stages_ = stages
        self.matrix_ = transition_frame(params.P, stages)
        self.counts_ = transition_frame(counts, stages)
        self.lower_, self.upper_ = transition_frame(lower, stages), transition_frame(upper, stages)
        self.lower_.attrs["alpha"] = self.upper_.attrs["alpha"] = alpha
        self.n_from_ = pd.Series(counts.sum(axis=1), index=list(stages), name="transitions")
        self.silence_ = pd.Series(
            np.append(params.q, params.q_churned), index=list(stages), name="silence"
        )
        self.announce_ = params.announce
        self.log_likelihood_ = log_lik
        self.n_iter_ = n_iter
        self.converged_ = converged
        self._params = params
        self.posterior_ = self._posterior(history, data, final)
        self.chain_ = MarkovChain(self.matrix_)
        return self

    @staticmethod
    def _start(data: _Data, n_live: int, loud: np.ndarray, support: np.ndarray) -> _Params:
        """EM's starting point: the observed-rule matrix between consecutive observed periods
        (with a little weight on every cell, so no transition starts impossible)."""
        counts = data.init_counts
        k = n_live + 1
        n = counts.sum(axis=1, keepdims=True)
        P = np.where(support, counts + 0.01 * np.maximum(n, 1) / k, 0.0)
        P /= P.sum(axis=1, keepdims=True)
        q = np.where(loud, 0.0, float(np.clip(data.silent_share, 0.05, 0.95)))
        return _Params(P, q, 0.5, 0.5, loud)

    def _bootstrap(self, data: _Data, params: _Params, n_customers: int) -> np.ndarray:
        """Transition matrices of ``n_boot`` seeded resamples of customers, each by EM from the
        estimate. Resampling customers and pooling those with the same history is the same as
        a multinomial draw over the distinct histories with their shares."""
        rng = np.random.default_rng(self.seed)
        share = data.n_history / n_customers
        draws = np.empty((self.n_boot, *params.P.shape))
        for b in range(self.n_boot):
            n_h = rng.multinomial(n_customers, share)
            w = np.asarray(n_h @ data.per_history, dtype=float)
            fit = _em(data.segments, w, params, int(self.boot_iter), self.tol, n_customers)
            draws[b] = fit[0].P
        return draws

    def _posterior(self, history: StageHistory, data: _Data, final: np.ndarray) -> pd.DataFrame:
        n_live = len(self.stages_) - 1
        by_history = final[data.last_segment]
        stage = np.column_stack([by_history[:, :n_live], by_history[:, n_live:].sum(axis=1)])
        np.clip(stage, 0.0, 1.0, out=stage)  # rounding may leave 1 + 2e-16
        out = pd.DataFrame(
            stage[data.history_of],
            index=pd.Index(history.customers, name="customer_id"),
            columns=list(self.stages_),
        )
        out.columns.name = "stage"
        return out

    def check_fitted(self) -> None:
        check_is_fitted(self, msg="this %(name)s is not fitted yet; call fit(history)")

    def stage_probabilities(self, history: StageHistory) -> pd.DataFrame:
        """Each customer's probability of each stage in the last period of ``history``, with
        the fitted parameters (the history may show only stages in ``stages_``).

        Parameters
        ----------
        history
            Stage of each customer in each period (:func:`~clmmodels.stages.assign_stages`).

        Returns
        -------
        DataFrame
            Rows ``customer_id``, columns ``stages_``; each row sums to 1.
        """
        self.check_fitted()
        n_live = len(self.stages_) - 1
        data = _cut(_symbols(history, self.stages_), n_live)
        A, E = self._params.hidden()
        w = np.zeros(len(data.segments.start))
        final = _forward_backward(data.segments, A, E, w, stats=False)[1]
        return self._posterior(history, data, final)

    def chain(self) -> MarkovChain:
        """The Markov chain over ``stages_``."""
        self.check_fitted()
        return self.chain_

    def summary(self) -> pd.DataFrame:
        """Long table: from, to, count (expected), probability, lower, upper (stages left at
        least once), the interval's alpha in ``attrs["alpha"]``."""
        self.check_fitted()
        return transition_summary(self)

    def plot_heatmap(self, ax=None):
        """Transition heatmap: probabilities as colour, with the expected counts (rounded)
        written in."""
        from .plots import plot_transition_heatmap

        self.check_fitted()
        return plot_transition_heatmap(
            self.matrix_,
            self.counts_.round(),
            ax=ax,
            title="Stage transition probabilities (latent stages; expected counts)",
        )
