"""What the BTYD purchase models share: fitting on compressed RFM rows, fitted attributes,
explicit time units, and checks that turn degenerate data into clear messages."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import ClmError, ClmWarning
from ..rfm import rfm_summary
from ..timeunits import DAYS_PER_UNIT, UNIT_NAMES, check_freq
from ..vocabulary import ALPHA
from .estimates import FittedEstimates, check_alpha
from .mle import MLEResult, fit_mle, warm_start

#: A parameter estimate beyond these bounds sits on the edge of the parameter space.
BOUNDARY = (1e-5, 1e5)
#: A gamma or beta shape above this leaves a spread under about 3% of the mean: no
#: heterogeneity worth the name.
NO_SPREAD = 1e3


def compress(
    rfm: pd.DataFrame, columns: list[str], weights: np.ndarray | None = None
) -> pd.DataFrame:
    """One weighted row per distinct value of ``columns`` (the models' sufficient statistics),
    in order of first appearance."""
    arrays = [rfm[c].to_numpy() for c in columns]
    codes, first = distinct_rows(*arrays)
    w = np.ones(len(rfm)) if weights is None else np.asarray(weights, dtype=float)
    out = pd.DataFrame({c: a[first] for c, a in zip(columns, arrays, strict=True)})
    out["weight"] = np.bincount(codes, weights=w, minlength=first.size)
    return out


def distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct rows of ``columns`` and the index of one row per code.

    ``columns[k][first]`` are the distinct rows; ``codes`` maps every row to its distinct row.
    Hashing, not sorting: the distinct rows come in no particular order.
    """
    codes, n = np.zeros(len(columns[0]), dtype=np.int64), 1
    for col in columns:
        c, uniques = pd.factorize(col)
        if n * len(uniques) >= 2**62:  # re-code before the combined code could overflow
            codes, kept = pd.factorize(codes)
            n = len(kept)
        codes, n = codes * len(uniques) + c, n * len(uniques)
    codes, _ = pd.factorize(codes)
    first = np.empty(codes.max() + 1 if codes.size else 0, dtype=np.int64)
    first[codes] = np.arange(codes.size)  # any row of a code stands for all of them
    return codes, first


def horizon_units(
    freq: str, days: float | None, weeks: float | None, months: float | None
) -> float:
    """A horizon given in exactly one explicit unit, converted to the model's unit."""
    given = {"days": days, "weeks": weeks, "months": months}
    set_ = {k: v for k, v in given.items() if v is not None}
    if len(set_) != 1:
        raise ClmError("give the horizon in exactly one unit: days=, weeks= or months=")
    unit, value = next(iter(set_.items()))
    if value < 0:
        raise ClmError(f"the horizon must be >= 0, got {unit}={value}")
    per_day = {UNIT_NAMES[code]: n for code, n in DAYS_PER_UNIT.items()}[unit]
    return float(value) * per_day / DAYS_PER_UNIT[freq]


def check_rfm(rfm: pd.DataFrame, freq: str, what: str) -> None:
    """Columns present, values consistent, and the same time unit as the model."""
    missing = [c for c in ("frequency", "recency", "T") if c not in rfm.columns]
    if missing:
        raise ClmError(f"{what}: the RFM summary lacks {', '.join(missing)}")
    data_freq = rfm.attrs.get("freq")
    if data_freq is not None and data_freq != freq:
        raise ClmError(
            f"{what}: the summary is in {UNIT_NAMES[data_freq]} (freq={data_freq!r}) but the "
            f"model is in {UNIT_NAMES[freq]} (freq={freq!r}); summarise with freq={freq!r}"
        )
    x, tx, T = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    problems = {
        "frequency is a whole number >= 0": (x < 0) | (x != np.round(x)),
        "0 <= recency <= T": (tx < 0) | (tx > T + 1e-9),
        "recency is 0 when frequency is 0": (x == 0) & (tx > 0),
        "values are finite": ~np.isfinite(x) | ~np.isfinite(tx) | ~np.isfinite(T),
    }
    for rule, bad in problems.items():
        if bad.any():
            ids = rfm.index[bad][:5].tolist()
            raise ClmError(
                f"{what}: rule '{rule}' broken by {int(bad.sum())} customers, first: {ids}"
            )


class BTYDModel(FittedEstimates):
    """Base of the purchase models (BG/NBD, Pareto/NBD, MBG/NBD).

    Parameters
    ----------
    freq
        Time unit of the RFM summaries the model is fitted on and scores: ``"D"``, ``"W"``
        or ``"M"``. Horizons are always given with their unit (``months=12``).
    tol
        Gradient tolerance of the optimiser.
    alpha
        Every interval the model reports is a (1 - alpha) interval: 0.05 gives 95% intervals
        (``confidence_intervals_``, ``summary()``, and by default the bootstrap's).
    """

    name: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    #: The lifetimes fitter whose prediction formulas the model uses (imported when first
    #: needed: the fitting and scoring paths of BG/NBD and MBG/NBD do without it).
    lifetimes_fitter: ClassVar[str]
    #: The shape parameter of the dropout distribution (beta's a for BG/NBD and MBG/NBD,
    #: gamma's s for Pareto/NBD): at zero the data show no dropout; above NO_SPREAD the dropout
    #: hardly varies (a gamma's spread is 1/sqrt(s) of its mean, a beta's below 1/sqrt(a)).
    dropout_shape: ClassVar[str] = "a"
    #: What :meth:`mean_dropout` is per.
    dropout_per: ClassVar[str] = "per repeat purchase"

    def __init__(self, freq: str = "W", tol: float = 1e-8, alpha: float = ALPHA) -> None:
        self.freq = freq
        self.tol = tol
        self.alpha = alpha

    # -- what each model defines -------------------------------------------------------
    @staticmethod
    def _loglik(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _make_loglik(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray):
        """The log-likelihood of these rows as a function of the parameters alone.

        Models override it to precompute what does not change between evaluations.
        """
        return lambda params: self._loglik(params, x, tx, T)

    def _lifetimes(self):
        """A lifetimes fitter carrying this model's parameters, for its prediction formulas."""
        import lifetimes

        fitter = getattr(lifetimes, self.lifetimes_fitter)()
        fitter.params_ = self.params_.copy()
        return fitter

    def _p_alive(self, x, tx, T) -> np.ndarray:
        """P(alive at the end of the history): lifetimes' formula, or a model's own."""
        return self._lifetimes().conditional_probability_alive(x, tx, T)

    def _p_no_purchase(self, t: float, x, tx, T) -> np.ndarray:
        raise NotImplementedError

    def _conditional_expected_purchases(self, t: np.ndarray, x, tx, T) -> np.ndarray:
        """E[purchases in (T, T + t_k] | history], one column per horizon ``t_k``: lifetimes'
        formula, or a model's faster one."""
        fitter = self._lifetimes()
        return np.column_stack(
            [fitter.conditional_expected_number_of_purchases_up_to_time(tk, x, tx, T) for tk in t]
        )

    def _x0(self, x: np.ndarray, T: np.ndarray, w: np.ndarray) -> np.ndarray:
        scale = float(np.average(T, weights=w)) or 1.0
        return np.array([1.0, scale, 1.0, 1.0])

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        rfm: pd.DataFrame,
        weights: np.ndarray | None = None,
        init: np.ndarray | None = None,
        standard_errors: bool = True,
    ) -> BTYDModel:
        """Fit by maximum likelihood on an RFM summary (see :func:`clmmodels.rfm_summary`).

        Customers with the same (frequency, recency, T) are fitted as one weighted row, which
        gives the same estimate as one row each. ``weights`` counts each customer (the bootstrap
        resamples that way); ``init`` starts the optimiser elsewhere than the default;
        ``standard_errors=False`` skips the Hessian (NaN errors) where only estimates matter.

        Returns
        -------
        self
        """
        code = check_freq(self.freq)
        if code != self.freq:  # the code, as the fitted model reports its unit
            raise ClmError(f"freq: give the unit's code {code!r}, not {self.freq!r}")
        check_alpha(self.alpha)
        check_rfm(rfm, self.freq, f"fitting {self.name}")
        self._check_data(rfm, None if weights is None else np.asarray(weights, dtype=float))
        rows = compress(rfm, ["frequency", "recency", "T"], weights)
        x, tx, T, w = (
            rows[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "weight")
        )
        x0 = self._x0(x, T, w) if init is None else np.asarray(init, dtype=float)
        result = fit_mle(
            self._make_loglik(x, tx, T), w, x0, tol=self.tol, covariance=standard_errors,
            warm=warm_start(self._make_loglik, w, x, tx, T),
        )  # fmt: skip
        self._set_fitted(result, n=float(w.sum()), n_rows=len(rows))
        return self

    def fit_transactions(
        self, transactions, observation_end: str | pd.Timestamp, engine: str = "duckdb"
    ) -> BTYDModel:
        """Summarise contract-shaped transactions at ``observation_end`` and fit."""
        rfm = rfm_summary(transactions, observation_end, freq=self.freq, engine=engine)
        return self.fit(rfm)

    def _check_data(self, rfm: pd.DataFrame, weights: np.ndarray | None) -> None:
        if weights is not None:  # rows weighted by customers: resampled, or compressed
            rfm = rfm[weights > 0]
        n = len(rfm) if weights is None else round(weights.sum())
        if n < 2:
            raise ClmError(
                f"{self.name} needs the purchase histories of many customers to estimate how "
                f"purchase rates and dropout vary between them; got {n} customer"
            )
        if (rfm["frequency"] == 0).all():
            raise ClmError(
                f"no customer made a repeat purchase by the observation end, so {self.name} "
                "cannot tell a low purchase rate from dropout; use a later observation end or "
                "more history"
            )

    def _set_fitted(self, result: MLEResult, n: float, n_rows: int) -> None:
        if result.budget_reached and not np.isfinite(result.log_likelihood):
            raise ClmError(
                f"{self.name} found no parameters at which these data have a finite likelihood "
                f"in {result.n_evaluations:,} evaluations; the histories are outside what the "
                "model can describe (check for duplicated or synthetic transactions)"
            )
        if not result.converged and not result.budget_reached:
            raise ClmError(
                f"{self.name} did not converge ({result.message}; "
                f"gradient {result.grad_norm:.2g}). This usually means the data hold too "
                "little repeat-purchase information"
            )
        self._store_estimates(result)
        k = len(self.param_names)
        self.aic_ = 2 * k - 2 * self.log_likelihood_
        self.bic_ = k * np.log(n) - 2 * self.log_likelihood_
        self.convergence_ = {
            "unstable": result.unstable,
            "message": result.message,
            "iterations": result.n_iter,
            "gradient": result.grad_norm,
            "evaluations": result.n_evaluations,
            "budget_reached": result.budget_reached,
        }
        self.n_customers_ = round(n)
        self.n_rows_ = n_rows
        if result.unstable:
            values = ", ".join(f"{p}={v:.4g}" for p, v in self.params_.items())
            warnings.warn(
                f"{self.name}: the optimum lies at extreme parameters ({values}) where the "
                "likelihood cannot be evaluated next to it, so standard errors are unavailable; "
                "the data may fit another model better (compare AIC and holdout errors)",
                ClmWarning,
                stacklevel=3,
            )
        if result.budget_reached:
            values = ", ".join(f"{p}={v:.4g}" for p, v in self.params_.items())
            warnings.warn(
                f"{self.name}: {result.message}; the estimate ({values}) is the best point "
                f"found and may not be the maximum (gradient {result.grad_norm:.2g}); compare "
                "another model's AIC",
                ClmWarning,
                stacklevel=3,
            )
        self.convergence_["degenerate"] = self.degenerate_readings()
        for reading in self.convergence_["degenerate"]:
            warnings.warn(f"{self.name}: {reading}", ClmWarning, stacklevel=3)
        at_edge = [p for p, v in self.params_.items() if not BOUNDARY[0] < v < BOUNDARY[1]]
        if at_edge and not self.convergence_["degenerate"]:  # else said above, in words
            warnings.warn(
                f"{self.name}: {', '.join(at_edge)} at the edge of the parameter space "
                f"({', '.join(f'{p}={self.params_[p]:.3g}' for p in at_edge)}); the data hold "
                "little information about it, so treat predictions with care",
                ClmWarning,
                stacklevel=3,
            )

    def degenerate_readings(self) -> list[str]:
        """What the fitted parameters say about the data when they run to an edge, in words:
        no dropout, no spread in purchase rates, no spread in dropout."""
        self.check_fitted()
        p, shape = self.params_, self.dropout_shape
        out = []
        # no dropout: the shape at zero, or the mean at zero along the ridge where shape and
        # scale run to infinity together (a fit of such data may end either way)
        mean = self.mean_dropout()
        if p[shape] < BOUNDARY[0] or mean < BOUNDARY[0]:
            reading = f"{shape} = {p[shape]:.2g}" if p[shape] < BOUNDARY[0] else (
                f"a mean dropout of {mean:.2g} {self.dropout_per}"
            )  # fmt: skip
            out.append(
                f"the data show no sign of dropout ({reading}): customers seem to "
                "stay for ever, so P(alive) is near 1 for everyone; a longer history or a "
                "model without dropout may suit these data better"
            )
        elif p[shape] > NO_SPREAD:
            out.append(
                f"dropout hardly varies between customers ({shape} = {p[shape]:.3g}: its spread "
                f"is under {1 / np.sqrt(p[shape]):.1%} of its mean)"
            )
        if p["r"] > NO_SPREAD:
            out.append(
                f"purchase rates hardly vary between customers (r = {p['r']:.3g}: their spread "
                f"is {1 / np.sqrt(p['r']):.1%} of their mean)"
            )
        return out

    def mean_dropout(self) -> float:
        """The mean chance of dropping out after a repeat purchase (BG/NBD and MBG/NBD:
        ``a / (a + b)``), or the mean dropout rate per time unit (Pareto/NBD: ``s / beta``).

        Examples
        --------
        >>> from clmmodels import load_dataset
        >>> from clmmodels.clv import BetaGeoModel
        >>> tx = load_dataset("cdnow_sample").transactions
        >>> round(BetaGeoModel().fit_transactions(tx, "1997-09-30").mean_dropout(), 3)
        0.246
        """
        self.check_fitted()
        return float(self.params_["a"] / (self.params_["a"] + self.params_["b"]))

    def log_likelihood(self, rfm: pd.DataFrame) -> float:
        """Log-likelihood of ``rfm`` at the fitted parameters."""
        self.check_fitted()
        x, tx, T = self.history_arrays(rfm)
        return float(self._loglik(self.params_.to_numpy(), x, tx, T).sum())

    def history_arrays(self, rfm: pd.DataFrame):
        check_rfm(rfm, self.freq, f"scoring with {self.name}")
        return (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))

    def checked_finite(self, values: np.ndarray, rfm: pd.DataFrame, what: str) -> pd.Series:
        bad = ~np.isfinite(values)
        if bad.any():
            raise ClmError(
                f"{self.name} gave no finite {what} for {int(bad.sum())} customers "
                f"(first: {rfm.index[bad][:5].tolist()}); their histories are outside what the "
                "fitted parameters can score"
            )
        return pd.Series(values, index=rfm.index, name=what)

    # -- the fallback: one customer never sinks a run ----------------------------------------
    def _fallback_row(self, what: str, t: np.ndarray, x: float, tx: float, T: float) -> np.ndarray:
        """``what`` ("p_alive", "expected", "p_no_purchase") of one history by numerical
        integration of the model's integral representation (:mod:`scipy.integrate`), for the
        rare histories whose closed form is not finite; one value per horizon ``t``."""
        raise NotImplementedError

    def _with_fallback(
        self, values: np.ndarray, what: str, t: np.ndarray, x, tx, T
    ) -> tuple[np.ndarray, np.ndarray]:
        """``values`` (one row per history), with the rows that are not finite scored by
        :meth:`_fallback_row` instead, and which rows those were."""
        values = np.array(values, dtype=float)
        rows = values.reshape(len(values), -1)
        flagged = ~np.isfinite(rows).all(axis=1)
        for i in np.flatnonzero(flagged):
            try:
                with np.errstate(all="ignore"):
                    rows[i] = self._fallback_row(what, t, float(x[i]), float(tx[i]), float(T[i]))
            except (NotImplementedError, ArithmeticError, ValueError):
                pass  # left not finite: checked_finite names the customer
        return values, flagged

    def p_alive(self, rfm: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active at the end of their history."""
        return self.p_alive_flagged(rfm)[0]

    def p_alive_flagged(self, rfm: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
        """:meth:`p_alive`, and which customers the fallback scored (see :meth:`_fallback_row`)."""
        self.check_fitted()
        x, tx, T = self.history_arrays(rfm)
        with np.errstate(all="ignore"):
            p = np.asarray(self._p_alive(x, tx, T), dtype=float)
        p, flagged = self._with_fallback(p, "p_alive", np.zeros(1), x, tx, T)
        return self.checked_finite(p, rfm, "p_alive"), flagged

    def expected_purchases(
        self,
        rfm: pd.DataFrame,
        *,
        days: float | None = None,
        weeks: float | None = None,
        months: float | None = None,
    ) -> pd.Series:
        """Expected repeat purchases of each customer in the horizon after their history."""
        self.check_fitted()
        t = horizon_units(self.freq, days, weeks, months)
        return self._expected_purchases_units(rfm, t)

    def _expected_purchases_units(self, rfm: pd.DataFrame, t: float) -> pd.Series:
        """Expected purchases of each customer within ``t`` model units."""
        x, tx, T = self.history_arrays(rfm)
        if t <= 0:
            return pd.Series(0.0, index=rfm.index, name="expected_purchases")
        per_history, codes = self.expected_purchases_by_history(x, tx, T, np.array([t]))
        return self.checked_finite(per_history[codes, 0], rfm, "expected_purchases")

    def expected_purchases_by_history(
        self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, horizons: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected purchases within each of ``horizons`` (model units, > 0), one row per
        distinct (frequency, recency, T) history, and each customer's row: customers share
        their histories, so the formulas run once per history."""
        per_history, codes, _ = self.expected_purchases_by_history_flagged(x, tx, T, horizons)
        return per_history, codes

    def expected_purchases_by_history_flagged(
        self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, horizons: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`expected_purchases_by_history`, and which distinct histories the fallback
        scored (see :meth:`_fallback_row`)."""
        codes, first = distinct_rows(x, tx, T)
        xf, txf, Tf = x[first], tx[first], T[first]
        horizons = np.asarray(horizons, dtype=float)
        with np.errstate(all="ignore"):
            e = self._conditional_expected_purchases(horizons, xf, txf, Tf)
        e = np.asarray(e, dtype=float).reshape(first.size, len(horizons))
        e, flagged = self._with_fallback(e, "expected", horizons, xf, txf, Tf)
        return e, codes, flagged

    def p_no_purchase(
        self,
        rfm: pd.DataFrame,
        *,
        days: float | None = None,
        weeks: float | None = None,
        months: float | None = None,
    ) -> pd.Series:
        """Probability of no purchase at all in the horizon after each customer's history."""
        return self.p_no_purchase_flagged(rfm, days=days, weeks=weeks, months=months)[0]

    def p_no_purchase_flagged(
        self,
        rfm: pd.DataFrame,
        *,
        days: float | None = None,
        weeks: float | None = None,
        months: float | None = None,
    ) -> tuple[pd.Series, np.ndarray]:
        """:meth:`p_no_purchase`, and which customers the fallback scored."""
        self.check_fitted()
        t = horizon_units(self.freq, days, weeks, months)
        x, tx, T = self.history_arrays(rfm)
        with np.errstate(all="ignore"):
            p = np.asarray(self._p_no_purchase(t, x, tx, T), dtype=float)
        p, flagged = self._with_fallback(p, "p_no_purchase", np.array([t]), x, tx, T)
        return self.checked_finite(p, rfm, "p_no_purchase"), flagged

    def expected_population_purchases(self, t_units: np.ndarray) -> np.ndarray:
        """Expected repeat purchases of a new customer in their first ``t_units`` (model units)."""
        self.check_fitted()
        return np.asarray(
            self._lifetimes().expected_number_of_purchases_up_to_time(np.asarray(t_units, float))
        )

    # -- plots (lifelines style: the fitted model plots itself) ---------------------------
    def plot_period_transactions(
        self, rfm: pd.DataFrame, max_frequency: int = 7, seed: int = 0, ax=None
    ):
        """Customers by repeat purchases, actual against the model; see :mod:`.plots`."""
        from .plots import plot_period_transactions

        self.check_fitted()
        return plot_period_transactions(self, rfm, max_frequency, seed, ax)

    def plot_frequency_recency_matrix(
        self, T: float, max_frequency: int = 20, horizon_weeks: float = 4, ax=None
    ):
        """Expected purchases in the next weeks by frequency and recency."""
        from .plots import plot_frequency_recency_matrix

        self.check_fitted()
        return plot_frequency_recency_matrix(self, T, max_frequency, horizon_weeks, ax)

    def plot_p_alive_matrix(self, T: float, max_frequency: int = 20, ax=None):
        """P(alive) by frequency and recency."""
        from .plots import plot_p_alive_matrix

        self.check_fitted()
        return plot_p_alive_matrix(self, T, max_frequency, ax)

    def plot_p_alive_history(self, transactions, customer_id: str, observation_end, ax=None):
        """One customer's P(alive) over time."""
        from .plots import plot_p_alive_history

        self.check_fitted()
        return plot_p_alive_history(self, transactions, customer_id, observation_end, ax)
