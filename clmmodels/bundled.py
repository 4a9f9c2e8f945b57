"""The bundled datasets: CDNOW as shipped by ``lifetimes``, loaded into the contract's shape.

CDNOW (Fader & Hardie) is the purchase history of the cohort of customers who first bought at
CDNOW in the first quarter of 1997, to the end of June 1998: 23,570 customers, and a 1-in-10
sample of 2,357 of them. It has transactions only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from .errors import ClmError

#: Bundled dataset names and what they hold.
BUNDLED: dict[str, str] = {
    "cdnow": "CDNOW, all 23,570 customers (lifetimes' CDNOW_master.txt)",
    "cdnow_sample": "CDNOW, the 2,357-customer sample (lifetimes' CDNOW_sample.txt)",
}

#: The calibration end used by the published analyses of CDNOW (39 weeks).
CDNOW_CALIBRATION_END = "1997-09-30"
#: The last day of the CDNOW data (78 weeks).
CDNOW_END = "1998-06-30"


def lifetimes_datasets_dir() -> Path:
    """The folder of lifetimes' data files, found without importing ``lifetimes.datasets``
    (which needs setuptools' ``pkg_resources``, gone from setuptools 82 on)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise ClmError("the bundled datasets come with lifetimes: pip install lifetimes")
    return Path(spec.origin).parent / "datasets"


def _read_cdnow(sample: bool) -> pd.DataFrame:
    if sample:
        names = ["customer_id", "sample_id", "date", "cds", "amount"]
        path = lifetimes_datasets_dir() / "CDNOW_sample.txt"
        header = None
    else:
        names = ["customer_id", "date", "cds", "amount"]
        path = lifetimes_datasets_dir() / "CDNOW_master.txt"
        header = 0
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=header,
        names=names,
        dtype={"customer_id": str, "sample_id": str, "date": str},
    )
    raw["timestamp"] = pd.to_datetime(raw.pop("date"), format="%Y%m%d")
    extras = [c for c in raw.columns if c not in ("customer_id", "timestamp", "amount")]
    return raw[["customer_id", "timestamp", "amount", *extras]]


def bundled_tables(name: str) -> dict[str, pd.DataFrame]:
    """The tables of a bundled dataset (see :data:`BUNDLED`), as read, not yet checked:
    :func:`clmmodels.load_dataset` checks and types them."""
    if name not in BUNDLED:
        raise KeyError(f"no bundled dataset {name!r}; bundled: {', '.join(BUNDLED)}")
    return {"transactions": _read_cdnow(sample=name == "cdnow_sample")}
