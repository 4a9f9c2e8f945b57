"""Probabilistic customer lifetime value: BTYD purchase models, Gamma-Gamma spend, CLV.

The names below are imported when first used (``from clmmodels.clv import BetaGeoModel``
works as ever): :mod:`.stream` starts its engine before scipy is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Public name -> the module that defines it; MODELS is built from the three model modules.
_EXPORTS = {
    "BTYDModel": "base",
    "BetaGeoModel": "bgnbd",
    "GammaGammaModel": "gamma_gamma",
    "ModifiedBetaGeoModel": "mbgnbd",
    "ParetoNBDModel": "pareto_nbd",
    "predicted_clv": "value",
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

if TYPE_CHECKING:
    from .base import BTYDModel
    from .bgnbd import BetaGeoModel
    from .gamma_gamma import GammaGammaModel
    from .mbgnbd import ModifiedBetaGeoModel
    from .pareto_nbd import ParetoNBDModel
    from .value import predicted_clv

    #: Model names as the CLI and the configs spell them (``vocabulary.PURCHASE_MODELS``).
    MODELS: dict[str, type[BTYDModel]]


def _models() -> dict:
    from ..vocabulary import PURCHASE_MODELS
    from .bgnbd import BetaGeoModel
    from .mbgnbd import ModifiedBetaGeoModel
    from .pareto_nbd import ParetoNBDModel

    return dict(
        zip(PURCHASE_MODELS, (BetaGeoModel, ParetoNBDModel, ModifiedBetaGeoModel), strict=True)
    )


def __getattr__(name: str):
    if name == "MODELS":
        value = _models()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
