"""What every fitted CLV model exposes about its estimates."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .mle import MLEResult

if TYPE_CHECKING:  # annotations only: importing scikit-learn costs the scoring path 0.6 s
    from sklearn.utils import Tags


class FittedEstimates:
    """Base of the CLV models: estimates, standard errors, intervals and ``summary()``.

    The models follow scikit-learn's estimator protocol (``get_params``/``set_params``,
    ``__sklearn_tags__`` and ``__sklearn_is_fitted__``, so ``sklearn.base.clone`` and
    ``sklearn.utils.validation.check_is_fitted`` work, and ``NotFittedError``) without
    importing scikit-learn at import time, whose 0.6 s import the batch scoring path would
    otherwise pay on every run: only the protocol's hooks import it, when scikit-learn calls them.
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
        se = np.sqrt(np.clip(np.diag(result.cov), 0, None))
        self.standard_errors_ = pd.Series(se, index=names)
        # Intervals on the log scale (delta method): positive parameters get positive bounds.
        spread = np.exp(1.96 * se / self.params_)
        self.confidence_intervals_ = pd.DataFrame(
            {"lower 95%": self.params_ / spread, "upper 95%": self.params_ * spread}
        )
        self.covariance_ = pd.DataFrame(result.cov, index=names, columns=names)
        self.log_likelihood_ = float(result.log_likelihood)
        self.converged_ = result.converged

    def _check_fitted(self) -> None:
        # Not check_is_fitted: that would import scikit-learn on every scoring call.
        if not self.__sklearn_is_fitted__():
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% intervals (log scale)."""
        self._check_fitted()
        parts = [self.params_.rename("estimate"), self.standard_errors_.rename("std. error")]
        return pd.concat([*parts, self.confidence_intervals_], axis=1)
