"""Score every customer: the pipeline behind ``clm score`` and the CLV notebook."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

from ..errors import ClmError, ClmWarning
from ..rfm import rfm_summary
from ..vocabulary import ALPHA
from . import MODELS
from .base import BTYDModel
from .estimates import check_alpha
from .gamma_gamma import GammaGammaModel
from .uncertainty import BootstrapResult, bootstrap_clv
from .value import discounted_purchases_flagged

SCORE_COLUMNS = [
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases",
    "p_no_purchase",
    "expected_spend",
    "clv",
    "fallback",
]
#: True for the customers the purchase model's fallback scored (numerical integration where
#: a closed form is not finite); every scorer writes it, so files keep one shape.
FALLBACK_COLUMN = "fallback"


@dataclass
class Scores:
    """Per-customer scores, the fitted models and a JSON-ready description of the run.

    ``scores`` is None when the scores went straight to a file
    (:func:`clmmodels.clv.stream.score_to_file`).
    """

    scores: pd.DataFrame | None
    purchases: BTYDModel
    spend: GammaGammaModel
    settings: dict
    bootstrap: BootstrapResult | None = None
    warnings: list[str] = field(default_factory=list)
    n_customers: int = 0
    total_clv: float = 0.0
    #: What the summary left out, counted: ``{what: count}``.
    excluded: dict[str, int] = field(default_factory=dict)
    #: Customers whose purchase scores came from the fallback (column ``fallback``).
    n_fallback: int = 0
    #: DuckDB's memory limit for the run, as DuckDB reports it (chosen from the input's size
    #: unless given); None where DuckDB did not aggregate the files.
    memory_limit: str | None = None

    def params_json(self) -> dict:
        """The ``--params-out`` document: model, unit, both models' parameters and fit."""
        key = self.settings["model"]
        p = self.purchases
        doc = {
            **self.settings,
            key: {
                **{k: float(v) for k, v in p.params_.items()},
                "log_likelihood": p.log_likelihood_,
                "aic": p.aic_,
                "bic": p.bic_,
                "standard_errors": {k: _num(v) for k, v in p.standard_errors_.items()},
                "converged": p.converged_,
                "n_customers": p.n_customers_,
            },
            "gamma_gamma": {
                **{k: _num(v) for k, v in self.spend.params_.items()},
                "log_likelihood": _num(self.spend.log_likelihood_),
                "standard_errors": {k: _num(v) for k, v in self.spend.standard_errors_.items()},
                "degenerate": self.spend.degenerate_,
                "spend_check": getattr(self.spend, "spend_check_", None),
                "n_customers": self.spend.n_customers_,
                "excluded": self.spend.excluded_,
            },
            "n_customers": self.n_customers,
            "total_clv": self.total_clv,
            "excluded": self.excluded,
            "fallback_customers": self.n_fallback,
            "warnings": self.warnings,
        }
        if self.bootstrap is not None:
            b = self.bootstrap
            doc["bootstrap"] = {
                "alpha": b.alpha,
                "n_boot": len(b.params) + b.n_failed,
                "failed_resamples": b.n_failed,
                "total_clv": b.total,
                "params": {k: list(map(float, v)) for k, v in b.param_intervals().iterrows()},
            }
        return doc


def _num(v) -> float | None:
    return None if pd.isna(v) else float(v)


def score_customers(
    transactions,
    observation_end: str | pd.Timestamp,
    model: str = "bgnbd",
    freq: str = "W",
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    engine: str = "duckdb",
    intervals: bool = False,
    n_boot: int = 200,
    seed: int = 0,
    progress: bool = False,
    alpha: float = ALPHA,
) -> Scores:
    """Fit a purchase model and Gamma-Gamma at ``observation_end`` and score every customer.

    ``expected_purchases`` and ``p_no_purchase`` cover the next ``horizon_months``;
    ``expected_spend`` is the expected spend per purchase occasion; ``clv`` the discounted
    value over the horizon. With ``intervals``, ``clv_lower``/``clv_upper`` come from a seeded
    bootstrap over customers: (1 - ``alpha``) percentile intervals, ``alpha`` also in the
    frame's ``attrs["alpha"]``. ``alpha`` is both models' too, so it sets every interval.
    """
    if model not in MODELS:
        raise ClmError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    check_alpha(alpha)  # before the summary, which may take a while
    rfm = rfm_summary(transactions, observation_end, freq=freq, engine=engine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        purchases = MODELS[model](freq=freq, alpha=alpha).fit(rfm)
        spend = GammaGammaModel(alpha=alpha).fit(rfm)
        out = score_frame(purchases, spend, rfm, horizon_months, discount_rate)
    boot = None
    if intervals:
        boot = bootstrap_clv(
            purchases,
            spend,
            rfm,
            n_boot=n_boot,
            seed=seed,
            horizon_months=horizon_months,
            discount_rate=discount_rate,
            progress=progress,
        )
        out = out.join(boot.clv_intervals)
    out.attrs = dict(rfm.attrs)
    if boot is not None:
        out.attrs["alpha"] = boot.alpha
    settings = {
        "model": model,
        "freq": freq,
        "observation_end": rfm.attrs["observation_end"],
        "horizon_months": horizon_months,
        "discount_rate": discount_rate,
    }
    return Scores(
        out,
        purchases,
        spend,
        settings,
        boot,
        [str(w.message) for w in caught],
        n_customers=len(out),
        total_clv=float(out["clv"].sum()),
        excluded=dict(rfm.attrs.get("excluded", {})),
        n_fallback=int(out[FALLBACK_COLUMN].sum()),
    )


def score_frame(
    purchases: BTYDModel,
    spend: GammaGammaModel,
    rfm: pd.DataFrame,
    horizon_months: int,
    discount_rate: float,
) -> pd.DataFrame:
    """The :data:`SCORE_COLUMNS` of the customers of ``rfm`` with fitted models."""
    out = purchase_scores(purchases, rfm, horizon_months, discount_rate)
    out.insert(3, "monetary_value", rfm["monetary_value"])
    out["expected_spend"] = spend.expected_spend(rfm)
    clv = out.pop("discounted_purchases").to_numpy() * out["expected_spend"].to_numpy()
    out["clv"] = purchases.checked_finite(clv, rfm, "clv")
    out[FALLBACK_COLUMN] = out.pop(FALLBACK_COLUMN)  # last, as in SCORE_COLUMNS
    return out


def purchase_scores(
    purchases: BTYDModel, rfm: pd.DataFrame, horizon_months: int, discount_rate: float
) -> pd.DataFrame:
    """What the purchase model says of each row of ``rfm``: its frequency, recency and T,
    ``p_alive``, and over the horizon ``expected_purchases``, ``p_no_purchase`` and
    ``discounted_purchases`` (the CLV per unit of spend: times the expected spend, the CLV),
    and ``fallback``: True where a closed form was not finite and the model's fallback
    (numerical integration, see ``BTYDModel._fallback_row``) scored the customer instead;
    those are counted in a warning, so that a run never fails on a few extreme histories."""
    out = rfm[["frequency", "recency", "T"]].copy()
    out["p_alive"], alive_fb = purchases.p_alive_flagged(rfm)
    discounted, expected, value_fb = discounted_purchases_flagged(
        purchases, rfm, horizon_months, discount_rate
    )
    out["expected_purchases"] = expected
    out["p_no_purchase"], none_fb = purchases.p_no_purchase_flagged(rfm, months=horizon_months)
    out["discounted_purchases"] = discounted
    out[FALLBACK_COLUMN] = alive_fb | value_fb | none_fb
    if out[FALLBACK_COLUMN].any():
        warnings.warn(
            f"{purchases.name}: {int(out[FALLBACK_COLUMN].sum())} customers scored by numerical "
            "integration, where the closed-form formulas are not finite (column 'fallback')",
            ClmWarning,
            stacklevel=2,
        )
    return out
