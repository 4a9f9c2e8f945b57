from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path

import pytest

from clmmodels import load_dataset, simulate_company

# A small dataset that keeps every rule of the contract; tests break one rule at a time.
VALID = {
    "transactions": (
        "customer_id,timestamp,amount,order_id\n"
        "00042,2024-01-05,10.00,o1\n"
        "00042,2024-01-05T18:00:00,5.50,o2\n"
        "00042,2024-02-10,20.00,o3\n"
        "42,2024-01-20,7.25,o4\n"
    ),
    "customers": (
        "customer_id,acquired_at,acquisition_channel,region\n"
        "00042,2024-01-05,search,north\n"
        "42,2024-01-20,social,south\n"
    ),
    "events": (
        "customer_id,timestamp,event_type\n"
        "00042,2024-01-01,ad_click\n"
        "00042,2024-01-03,product_view\n"
        "42,2024-01-19,site_visit\n"
    ),
    "marketing_spend": "date,channel,spend\n2024-01-01,search,100\n2024-01-01,social,50\n",
    "surveys": (
        "customer_id,timestamp,nps,csat\n00042,2024-01-06,9,\n42,2024-01-21,,4\n00042,2024-02-11,3,2\n"
    ),
}


def write_dataset(folder: Path, tables: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        path = folder / (name if "." in name else f"{name}.csv")
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def make_dataset(tmp_path):
    """Write tables (name -> CSV text) into a fresh folder; VALID fills the ones not given."""

    def make(overrides: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
        tables = {k: v for k, v in {**VALID, **(overrides or {})}.items() if k not in drop}
        return write_dataset(tmp_path / "ds", tables)

    return make


@pytest.fixture(scope="session")
def cdnow_sample():
    return load_dataset("cdnow_sample")


@pytest.fixture(scope="session")
def small_company():
    return simulate_company(n_customers=1500, seed=7)


@pytest.fixture(scope="session")
def small_company_dir(tmp_path_factory, small_company):
    return small_company.write(tmp_path_factory.mktemp("company"))


def run_clm(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``clm args`` in this process, as ``main`` does: (exit code, stdout and stderr). An
    exception that escapes ``main`` is exit 1 with its traceback, as in a shell."""
    from clmmodels import cli

    monkeypatch.setattr(sys, "argv", ["clm", *args])
    code = 0
    with warnings.catch_warnings():  # main() installs its own warning display
        try:
            cli.main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except Exception:
            code = 1
            sys.stderr.write(traceback.format_exc())
    out = capsys.readouterr()
    return code, out.out + out.err
