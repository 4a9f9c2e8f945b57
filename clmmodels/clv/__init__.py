"""Probabilistic customer lifetime value: BTYD purchase models, Gamma-Gamma spend, CLV."""

from .base import BTYDModel
from .bgnbd import BetaGeoModel
from .gamma_gamma import GammaGammaModel
from .mbgnbd import ModifiedBetaGeoModel
from .pareto_nbd import ParetoNBDModel
from .value import predicted_clv

#: Model names as the CLI and the configs spell them.
MODELS: dict[str, type[BTYDModel]] = {
    "bgnbd": BetaGeoModel,
    "pnbd": ParetoNBDModel,
    "mbgnbd": ModifiedBetaGeoModel,
}

__all__ = [
    "MODELS",
    "BTYDModel",
    "BetaGeoModel",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "predicted_clv",
]
