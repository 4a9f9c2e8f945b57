"""clmmodels: customer lifecycle analytics on data in the shape of the CLM data contract."""

from .bundled import BUNDLED
from .dataset import Dataset, dataset_from_frames, load_bundled, load_dataset
from .errors import ClmError, ContractError, MissingTableError, Violation
from .rfm import calibration_holdout, rfm_summary
from .simulate import SimulationConfig, simulate_company
from .vocabulary import DEFAULT_EVENT_STAGES, STAGES

__version__ = "0.1.0"

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
