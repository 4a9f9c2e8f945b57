"""What every fitted CLV model exposes about its estimates, and the package's one interval
convention.

Intervals: every fitted class takes ``alpha`` (default 0.05) and every interval it reports is
a (1 - alpha) interval. Bounds are columns ``lower`` and ``upper`` in a frame about one
quantity (a summary, ``confidence_intervals_``), ``<quantity>_lower`` and ``<quantity>_upper``
in a frame with several (``clv_lower`` and ``clv_upper`` among the scores); the frame carries
its alpha in ``attrs["alpha"]``, and labels read e.g. "95% interval" (:func:`interval_label`).
"""

from __future__ import annotations

import inspect
import numbers
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import ndtri

from ..errors import ClmError
from .mle import MLEResult

if TYPE_CHECKING:  # annotations only: importing scikit-learn costs the scoring path 0.6 s
    from sklearn.utils import Tags


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, or a :class:`ClmError` unless 0 < alpha < 1.

    Parameters
    ----------
    alpha
        One minus the coverage of the intervals (0.05 for 95% intervals).

    Returns
    -------
    float
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ClmError(
            f"alpha must be a number between 0 and 1 (0.05 gives 95% intervals), got {alpha!r}"
        )
    return float(alpha)


def interval_label(alpha: float) -> str:
    """How summaries and plots name a (1 - alpha) interval.

    >>> interval_label(0.05), interval_label(0.025)
    ('95% interval', '97.5% interval')
    """
    return f"{100 * (1 - alpha):.10g}% interval"


def normal_quantile(alpha: float) -> float:
    """z of a two-sided (1 - alpha) normal interval: ``norm.ppf(1 - alpha / 2)``."""
    return float(ndtri(1 - alpha / 2))  # norm.ppf, without importing scipy.stats (1 s)


def percentile_interval(draws: np.ndarray, alpha: float, axis: int = 0):
    """Lower and upper bounds of a (1 - alpha) percentile interval over ``draws``: their
    ``100 * alpha / 2`` and ``100 * (1 - alpha / 2)`` percentiles along ``axis``.

    >>> percentile_interval(np.arange(101.0), 0.1)
    (np.float64(5.0), np.float64(95.0))
    """
    lower, upper = np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=axis)
    return lower, upper


class FittedEstimates:
    """Base of the CLV models: estimates, standard errors, intervals and ``summary()``.

    The models follow scikit-learn's estimator protocol (``get_params``/``set_params``,
    ``__sklearn_tags__`` and ``__sklearn_is_fitted__``, so ``sklearn.base.clone`` and
    ``sklearn.utils.validation.check_is_fitted`` work, and ``NotFittedError``) without
    importing scikit-learn at import time, whose 0.6 s import the batch scoring path would
    otherwise pay on every run: only the protocol's hooks import it, when scikit-learn calls them.

    Every interval a model reports is a (1 - ``alpha``) interval, ``alpha`` being the
    constructor's parameter (checked in ``fit``, like lifelines' ``alpha``). Not to be confused
    with ``params_["alpha"]``, the scale parameter of the purchase models' rate distribution.
    """

    param_names: tuple[str, ...] = ()

    @classmethod
    def _init_parameters(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters and their values.

        Parameters
        ----------
        deep
            Accepted for scikit-learn's protocol; no parameter is itself an estimator.

        Returns
        -------
        dict
            Parameter name to value, in the constructor's order.
        """
        return {name: getattr(self, name) for name in self._init_parameters()}

    def set_params(self, **params) -> FittedEstimates:
        """Set constructor parameters.

        Parameters
        ----------
        **params
            Constructor parameters and their new values.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a name is not a constructor parameter.
        """
        valid = self._init_parameters()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}: {valid}")
            setattr(self, name, value)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has stored estimates (what ``check_is_fitted`` asks)."""
        return hasattr(self, "params_")

    def __sklearn_tags__(self) -> Tags:
        """scikit-learn's estimator tags (scikit-learn >= 1.6 asks for them in
        ``check_is_fitted``); imported here, not at module level, to keep scoring fast.

        Returns
        -------
        sklearn.utils.Tags
            No target (``fit`` takes an RFM summary, not ``X, y``), fitting required.
        """
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False))

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = {k: v for k, v in self.get_params().items() if defaults[k].default != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _store_estimates(self, result: MLEResult) -> None:
        names = list(self.param_names)
        self.params_ = pd.Series(result.params, index=names)
        # A variance that is not positive (the likelihood flat or curving up along a ridge of
        # parameters running to infinity) gives no standard error, not a zero one.
        variance = np.diag(result.cov)
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.where(variance > 0, variance, np.nan))
        self.standard_errors_ = pd.Series(se, index=names)
        # Intervals on the log scale (delta method): positive parameters get positive bounds.
        with np.errstate(over="ignore"):  # at an edge (degenerate data): (0, inf), said so
            spread = np.exp(normal_quantile(self.alpha) * se / self.params_)
        self._store_intervals(self.params_ / spread, self.params_ * spread)
        self.covariance_ = pd.DataFrame(result.cov, index=names, columns=names)
        self.log_likelihood_ = float(result.log_likelihood)
        self.converged_ = result.converged

    def _store_intervals(self, lower: pd.Series, upper: pd.Series) -> None:
        """``confidence_intervals_``: columns lower and upper, the alpha in its attrs."""
        self.confidence_intervals_ = pd.DataFrame({"lower": lower, "upper": upper})
        self.confidence_intervals_.attrs["alpha"] = self.alpha

    def check_fitted(self) -> None:
        # Not check_is_fitted: that would import scikit-learn on every scoring call.
        if not self.__sklearn_is_fitted__():
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and (1 - ``alpha``) intervals (log scale).

        Returns
        -------
        DataFrame
            One row per parameter: ``estimate``, ``std. error``, ``lower``, ``upper``; the
            interval's alpha in ``attrs["alpha"]``.
        """
        self.check_fitted()
        parts = [self.params_.rename("estimate"), self.standard_errors_.rename("std. error")]
        out = pd.concat([*parts, self.confidence_intervals_], axis=1)
        out.attrs["alpha"] = self.confidence_intervals_.attrs["alpha"]
        return out
