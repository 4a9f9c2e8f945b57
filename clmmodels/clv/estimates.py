"""What every fitted CLV model exposes about its estimates."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from .mle import MLEResult


class FittedEstimates:
    """Base of the CLV models: estimates, standard errors, intervals and ``summary()``.

    The models follow scikit-learn's estimator protocol (``get_params``/``set_params``, so
    ``sklearn.base.clone`` works, and ``NotFittedError``) without importing scikit-learn, whose
    0.6 s import the batch scoring path would otherwise pay on every run.
    """

    param_names: tuple[str, ...] = ()

    @classmethod
    def _init_parameters(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters and their values."""
        return {name: getattr(self, name) for name in self._init_parameters()}

    def set_params(self, **params) -> FittedEstimates:
        """Set constructor parameters; returns self."""
        valid = self._init_parameters()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}: {valid}")
            setattr(self, name, value)
        return self

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
        if not hasattr(self, "params_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% intervals (log scale)."""
        self._check_fitted()
        parts = [self.params_.rename("estimate"), self.standard_errors_.rename("std. error")]
        return pd.concat([*parts, self.confidence_intervals_], axis=1)
