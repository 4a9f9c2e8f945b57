"""What every fitted CLV model exposes about its estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .mle import MLEResult


class FittedEstimates(BaseEstimator):
    """Base of the CLV models: estimates, standard errors, intervals and ``summary()``."""

    param_names: tuple[str, ...] = ()

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
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def summary(self) -> pd.DataFrame:
        """Estimates with standard errors and 95% intervals (log scale)."""
        self._check_fitted()
        parts = [self.params_.rename("estimate"), self.standard_errors_.rename("std. error")]
        return pd.concat([*parts, self.confidence_intervals_], axis=1)
