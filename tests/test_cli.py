"""The clm command line: answers, exit codes, and no tracebacks on bad input."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from .conftest import VALID


def clm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clmmodels.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_validate_summarises_a_valid_dataset(make_dataset):
    r = clm("validate", str(make_dataset()))
    assert r.returncode == 0, r.stderr
    assert "valid (5 tables)" in r.stdout
    assert (
        "transactions" in r.stdout
        and "4 rows" in r.stdout
        and "2024-01-05 to 2024-02-10" in r.stdout
    )


def test_validate_reports_every_violation_without_traceback(make_dataset):
    bad_tx = VALID["transactions"].replace("42,2024-01-20,7.25,o4", "42,2024-01-20,-7.25,o4")
    bad_sv = VALID["surveys"].replace("00042,2024-01-06,9,", "00042,2024-01-06,11,")
    r = clm("validate", str(make_dataset({"transactions": bad_tx, "surveys": bad_sv})))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    assert "2 violations" in r.stderr
    assert "transactions.csv: column 'amount': rule 'a finite number >= 0'" in r.stderr
    assert "line 5" in r.stderr and "surveys.csv: column 'nps'" in r.stderr


def test_validate_unknown_folder(tmp_path):
    r = clm("validate", str(tmp_path / "missing"))
    assert r.returncode == 2 and "not a dataset folder" in r.stderr and "Traceback" not in r.stderr


def test_validate_bundled():
    r = clm("validate", "cdnow_sample")
    assert r.returncode == 0
    assert "6,919 rows" in r.stdout and "2,357 customers" in r.stdout


def test_simulate_then_rfm_with_both_engines(tmp_path):
    out = tmp_path / "co"
    r = clm("simulate", str(out), "--customers", "400", "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert (out / "truth.json").exists()
    frames = []
    for engine in ("pandas", "duckdb"):
        dest = tmp_path / f"rfm-{engine}.csv"
        r = clm(
            "rfm",
            str(out),
            "--observation-end",
            "2024-06-30",
            "--engine",
            engine,
            "--out",
            str(dest),
        )
        assert r.returncode == 0, r.stderr
        assert "left out:" in r.stdout and "transactions after the observation end" in r.stdout
        frames.append(pd.read_csv(dest, dtype={"customer_id": str}))
    pd.testing.assert_frame_equal(frames[0], frames[1], rtol=1e-12)


def test_rfm_bad_date_and_bad_output(tmp_path):
    r = clm(
        "rfm", "cdnow_sample", "--observation-end", "30/09/1997", "--out", str(tmp_path / "x.csv")
    )
    assert r.returncode == 2 and "not an ISO 8601 date" in r.stderr and "Traceback" not in r.stderr
    r = clm(
        "rfm", "cdnow_sample", "--observation-end", "1997-09-30", "--out", str(tmp_path / "x.xlsx")
    )
    assert r.returncode == 2 and "use a .csv or .parquet" in r.stderr


def test_help_explains_commands():
    r = clm("--help")
    assert r.returncode == 0
    for command in ("validate", "simulate", "rfm", "reports"):
        assert command in r.stdout
    r = clm("simulate", "--help")
    assert "--seed" in r.stdout and "truth.json" in r.stdout


def test_score_reports_the_memory_limit_it_chose_and_takes_one_given(small_company_dir, tmp_path):
    data = small_company_dir  # a few MB: the limit's floor
    r = clm("score", str(data), "--observation-end", "2024-12-31", "--out", str(tmp_path / "a.csv"))
    assert r.returncode == 0, r.stderr
    assert "DuckDB memory limit 256.5 MiB (chosen from the input's size)" in r.stdout
    r = clm(
        "score", str(data), "--observation-end", "2024-12-31", "--out", str(tmp_path / "b.csv"),
        "--memory-limit", "1GB",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "DuckDB memory limit 953.6 MiB (--memory-limit)" in r.stdout


# What `clm score` and `clm --help` must not import: each costs start-up time and memory.
HEAVY = ("matplotlib", "sklearn", "scipy.integrate", "papermill", "lifelines", "lifetimes",
         "pyspark", "pyarrow.dataset", "nbformat", "jinja2")  # fmt: skip


def _imported_by(*args: str) -> set[str]:
    """The top modules and scipy's subpackages imported by ``clm args``, run in a fresh
    interpreter."""
    code = (
        "import sys\nfrom clmmodels.cli import cli\n"
        f"try:\n    cli.main({list(args)!r}, standalone_mode=False)\n"
        "finally:\n    print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def test_clm_score_imports_only_what_it_uses(small_company_dir, tmp_path):
    modules = _imported_by(
        "score",
        str(small_company_dir),
        "--observation-end",
        "2024-12-31",
        "--out",
        str(tmp_path / "s.csv"),
    )
    assert "scipy.special" in modules and "duckdb" in modules  # the test can see imports
    # BG/NBD and Gamma-Gamma fit with their exact gradients: no scipy.optimize either
    assert not [m for m in (*HEAVY, "scipy.optimize") if m in modules]
    helped = _imported_by("score", "--help")
    assert not [m for m in (*HEAVY, "duckdb", "scipy") if m in helped]


def test_clm_score_imports_pandas_while_duckdb_aggregates(small_company_dir, tmp_path):
    """pandas (half a second with pyarrow) is imported by the scorer's import thread while
    DuckDB checks and aggregates, never by the main thread before it: nothing on the way to
    the aggregation (the CLI, the date, the engine, the contract check) needs it."""
    code = (
        "import sys, threading\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pandas':\n"
        "            print('PANDAS', threading.current_thread().name)\n"
        "sys.meta_path.insert(0, Finder())\n"
        "from clmmodels.cli import cli\n"
        f"cli.main(['score', {str(small_company_dir)!r}, '--observation-end', '2024-12-31',"
        f" '--out', {str(tmp_path / 's.parquet')!r}], standalone_mode=False)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [x for x in r.stdout.splitlines() if x.startswith("PANDAS")] == ["PANDAS clm-imports"]
    assert (tmp_path / "s.parquet").stat().st_size > 0
