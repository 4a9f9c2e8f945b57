from __future__ import annotations

import subprocess
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
    r = _clm_here(monkeypatch, capsys, *args)
    return r.returncode, r.stdout + r.stderr


def _clm_here(monkeypatch, capsys, *args: str) -> subprocess.CompletedProcess:
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
    return subprocess.CompletedProcess(["clm", *args], code, out.out, out.err)


@pytest.fixture
def clm_here(monkeypatch, capsys):
    """``clm args`` run in this process (a second faster than a new interpreter), with the
    answer a subprocess would give: ``returncode``, ``stdout``, ``stderr``."""
    return lambda *args: _clm_here(monkeypatch, capsys, *args)


# The default batch's notebooks rendered once for every test that reads a report (the browser
# test and each notebook's checks): the CDNOW sample (transactions only), a small simulated
# company (every table), one channel of it, and an events-only log. Fast settings.
BATCH_SETTINGS = {
    "clv": {"n_boot": 10},
    "churn": {
        "importance_repeats": 1,
        "top_n": 5,
        "models": "logistic",
        "profile_model": "logistic",
    },
    "customers": {"churn_model": "logistic", "snapshots": 1},
    "stages": {"n_boot": 0},
}
BATCH_EXTRA = {
    "clv-sim": {"calibration_end": "2024-06-30", "observation_end": "2024-12-31"},
    "churn-sim": {"models": "hgb"},
    "customers-cdnow": {"targets_csv": "{out}/customers-cdnow-targets.csv"},
    "customers-sim": {"targets_csv": "{out}/customers-sim-targets.csv"},
    "summary-cdnow": {"reports": "clv-cdnow, churn-cdnow"},
    "summary-sim": {"month": "2024-06"},
    "stages-cdnow": {"n_boot": 20},
    "stages-sim-email": {"channel": "email"},
    "retention-sim-email": {"channel": "email", "end": "2024-07-01"},
    "data_quality-sim": {"observation_end": "2024-06-30"},
}
#: (notebook, dataset tag) pairs rendered: every notebook on CDNOW but channels (it needs
#: customers and spend), every one on the simulated company.
BATCH_RUNS = [
    *(f"{nb}-cdnow" for nb in ("clv", "churn", "customers", "data_quality", "retention",
                                "stages", "summary", "channels")),
    *(f"{nb}-sim" for nb in ("clv", "churn", "customers", "data_quality", "retention",
                              "stages", "summary", "channels")),
    "stages-sim-email", "retention-sim-email", "stages-events",
]  # fmt: skip


@pytest.fixture(scope="session")
def events_only_dir(tmp_path_factory):
    """An events-only log (no transactions table) from a known monthly stage chain."""
    from clmmodels.stages.synthetic import chain_event_log, example_matrix

    _, events = chain_event_log(example_matrix(), n_customers=400, n_periods=12, seed=3)
    folder = tmp_path_factory.mktemp("events_only")
    events.drop(columns="true_stage").to_csv(folder / "events.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, small_company_dir, events_only_dir):
    """``(out, results by run name)`` of one batch of :data:`BATCH_RUNS`; every run ok."""
    import yaml

    from clmmodels.reports import load_config, run_reports

    root = Path(__file__).resolve().parents[1]
    datasets = {"cdnow": "cdnow_sample", "sim": str(small_company_dir),
                "events": str(events_only_dir)}  # fmt: skip
    runs = []
    for name in BATCH_RUNS:
        notebook, tag = name.split("-")[:2]
        params = {**BATCH_SETTINGS.get(notebook, {}), **BATCH_EXTRA.get(name, {})}
        runs.append({"name": name, "notebook": str(root / "notebooks" / f"{notebook}.ipynb"),
                     "dataset": datasets[tag], "parameters": params})  # fmt: skip
    folder = tmp_path_factory.mktemp("rendered")
    (folder / "reports.yml").write_text(yaml.safe_dump({"runs": runs}))
    out = folder / "out"
    results = {r.name: r for r in run_reports(load_config(folder / "reports.yml"), out, jobs=2,
                                              progress=False)}  # fmt: skip
    failed = {n: r.error for n, r in results.items() if r.status != "ok"}
    assert not failed, failed
    return out, results


def pytest_collection_modifyitems(items):
    """The batch renders inside the first test that asks for it: those tests get the time a
    whole batch takes on two cores (about three minutes), not the 300 s of one test."""
    for item in items:
        if "rendered" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(900))
