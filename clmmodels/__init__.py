"""clmmodels: customer lifecycle analytics on data in the shape of the CLM data contract.

The names below are imported when first used (``from clmmodels import load_dataset`` works
as ever), so that ``clm`` and a script that needs one module do not pay for every other's
imports (pandas, DuckDB, scipy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "BUNDLED": "bundled",
    "DEFAULT_EVENT_STAGES": "vocabulary",
    "STAGES": "vocabulary",
    "ClmError": "errors",
    "ContractError": "errors",
    "Dataset": "dataset",
    "MissingTableError": "errors",
    "SimulationConfig": "simulate",
    "Violation": "errors",
    "calibration_holdout": "rfm",
    "dataset_from_frames": "dataset",
    "load_bundled": "dataset",
    "load_dataset": "dataset",
    "rfm_summary": "rfm",
    "simulate_company": "simulate",
}

__all__ = [
    "BUNDLED",
    "DEFAULT_EVENT_STAGES",
    "STAGES",
    "ClmError",
    "ContractError",
    "Dataset",
    "MissingTableError",
    "SimulationConfig",
    "Violation",
    "__version__",
    "calibration_holdout",
    "dataset_from_frames",
    "load_bundled",
    "load_dataset",
    "rfm_summary",
    "simulate_company",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time, __getattr__ below
    from .bundled import BUNDLED
    from .dataset import Dataset, dataset_from_frames, load_bundled, load_dataset
    from .errors import ClmError, ContractError, MissingTableError, Violation
    from .rfm import calibration_holdout, rfm_summary
    from .simulate import SimulationConfig, simulate_company
    from .vocabulary import DEFAULT_EVENT_STAGES, STAGES


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
