"""Probabilistic customer lifetime value: BTYD purchase models, Gamma-Gamma spend, CLV."""

from ..vocabulary import PURCHASE_MODELS
from .base import BTYDModel
from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .mbgnbd import ModifiedBetaGeoModel
from .pareto_nbd import ParetoNBDModel
from .value import predicted_clv

#: Model names as the CLI and the configs spell them (``vocabulary.PURCHASE_MODELS``).
MODELS: dict[str, type[BTYDModel]] = dict(
    zip(PURCHASE_MODELS, (BetaGeoModel, ParetoNBDModel, ModifiedBetaGeoModel), strict=True)
)

__all__ = [
    "MODELS",
    "BTYDModel",
    "BetaGeoModel",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "predicted_clv",
]
