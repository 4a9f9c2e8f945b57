"""The papermill batch: notebooks run, HTML is clean, failures are isolated, reruns skip."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from clmmodels import load_dataset
from clmmodels.errors import ClmError
from clmmodels.reports import load_config, run_reports

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_clean_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    # saved with the project's kernel (`make lab` registers it), not the system's python3
    assert nb.metadata.kernelspec["name"] == "clm-notebooks"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for line in params[0].source.splitlines():
        assert "#" in line, f"parameter without a comment: {line}"  # papermill --help-notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_documents_every_parameter(path):
    """`papermill --help-notebook` drops parameters it cannot parse (`str | None`, say)."""
    import ast

    from papermill.inspection import inspect_notebook

    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    declared = [node.target.id for node in ast.parse(cell.source).body]
    found = inspect_notebook(str(path))
    assert list(found) == declared
    assert all(p["help"] and p["inferred_type_name"] != "None" for p in found.values())


def assert_clean_outputs(out: Path, name: str) -> None:
    """The executed notebook shows no error and no stderr (warnings would reach the HTML)."""
    nb = nbformat.read(out / "executed" / f"{name}.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    bad = [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert not bad, (name, bad)


def write_config(tmp_path: Path, runs: list[dict]) -> Path:
    cfg = tmp_path / "reports.yml"
    cfg.write_text(yaml.safe_dump({"runs": runs}))
    return cfg


def failing_notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('dataset = "x"  # the dataset')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "failing.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_batch_renders_isolates_failures_and_skips_unchanged(tmp_path, small_company_dir):
    dq = str(ROOT / "notebooks" / "data_quality.ipynb")
    cfg = write_config(
        tmp_path,
        [
            {
                "name": "dq-sim",
                "notebook": dq,
                "dataset": str(small_company_dir),
            },  # an absolute path
            {
                "name": "dq-cdnow",
                "notebook": dq,
                "dataset": "cdnow_sample",
                "parameters": {"calibration_end": "1997-09-30"},
            },
            {
                "name": "broken",
                "notebook": str(failing_notebook(tmp_path)),
                "dataset": "cdnow_sample",
            },
        ],
    )
    out = tmp_path / "out"
    results = {r.name: r for r in run_reports(load_config(cfg), out, jobs=2, progress=False)}
    assert results["dq-sim"].status == "ok" and results["dq-cdnow"].status == "ok"
    assert results["broken"].status == "failed"
    assert "deliberate failure" in results["broken"].error

    for name in ("dq-sim", "dq-cdnow"):
        page = (out / f"{name}.html").read_text()
        assert (
            "quality.check_dataset" not in page and "import matplotlib" not in page
        )  # code hidden
        images = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', page)
        assert images and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in page  # no warnings shown
        assert_clean_outputs(out, name)
        assert "keeps the data contract" in page
    assert results["dq-cdnow"].key_numbers == {
        "valid": True,
        "customers": 2357,
        "transactions": 6919,
        "data_end": "1998-06-30",
        "tables": 1,
    }
    # The failure keeps its executed notebook with the failing cell marked, and no HTML.
    assert not (out / "broken.html").exists()
    executed = (out / "executed" / "broken.ipynb").read_text()
    assert "deliberate failure" in executed and "papermill-error-cell" in executed
    index = (out / "index.html").read_text()
    assert index.count('class="failed"') == 1 and "deliberate failure" in index
    assert "customers: <b>2,357</b>" in index

    again = {r.name: r.status for r in run_reports(load_config(cfg), out, jobs=2, progress=False)}
    assert again == {"dq-sim": "unchanged", "dq-cdnow": "unchanged", "broken": "failed"}
    forced = run_reports(load_config(cfg), out, only="dq-cdnow", force=True, progress=False)
    assert [(r.name, r.status) for r in forced] == [("dq-cdnow", "ok")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) == {"dq-sim", "dq-cdnow", "broken"}
    assert not list(out.rglob("*.tmp*"))  # no half-written files left behind


@pytest.mark.slow
def test_a_broken_dataset_is_reported_not_crashed(tmp_path, make_dataset):
    from .conftest import VALID

    bad = make_dataset({"transactions": VALID["transactions"].replace("7.25", "-1")})
    cfg = write_config(
        tmp_path,
        [
            {
                "name": "dq-bad",
                "notebook": str(ROOT / "notebooks" / "data_quality.ipynb"),
                "dataset": str(bad),
            }
        ],
    )
    (res,) = run_reports(load_config(cfg), tmp_path / "out", progress=False)
    assert res.status == "ok"
    page = (tmp_path / "out" / "dq-bad.html").read_text()
    assert "breaks the data contract" in page and "a finite number &gt;= 0" in page
    assert res.key_numbers == {"valid": False, "violations": 1}


def test_config_errors(tmp_path):
    with pytest.raises(ClmError, match="no such reports config"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ClmError, match="lacks notebook"):
        load_config(write_config(tmp_path, [{"name": "a", "dataset": "cdnow"}]))
    with pytest.raises(ClmError, match="does not exist"):
        load_config(
            write_config(tmp_path, [{"name": "a", "dataset": "cdnow", "notebook": "nope.ipynb"}])
        )
    nb = str(ROOT / "notebooks" / "data_quality.ipynb")
    with pytest.raises(ClmError, match="repeated: a"):
        load_config(write_config(tmp_path, [{"name": "a", "dataset": "x", "notebook": nb}] * 2))


def test_default_config_lists_every_notebook():
    runs = load_config(ROOT / "reports.yml")
    assert {r.notebook.name for r in runs} == {p.name for p in NOTEBOOKS}


@pytest.mark.slow
def test_clv_notebook_on_both_kinds_of_data(rendered):
    """Transactions only (CDNOW) and a full company (channels, spend: the CLV:CAC section)."""
    out, results = rendered
    cdnow = (out / "clv-cdnow.html").read_text()
    # The calibration fit on the CDNOW sample is the published one: its LL is in the table.
    assert "no customers and marketing_spend table" in cdnow and "-9,582.43" in cdnow
    sim = (out / "clv-sim.html").read_text()
    assert "CLV:CAC" in sim and "paid_search" in sim and "Payback months" in sim
    assert "C000" not in sim  # customer ids pseudonymised in stakeholder output
    assert results["clv-sim"].key_numbers["customers"] == 1500
    for name in ("clv-cdnow", "clv-sim"):
        assert_clean_outputs(out, name)


@pytest.mark.slow
def test_retention_notebook_on_both_kinds_of_data(rendered):
    out, results = rendered
    cdnow = (out / "retention-cdnow.html").read_text()
    assert "no surveys table" in cdnow and "no customers table" in cdnow
    assert "Nobody can lapse before 1998-01-01" in cdnow  # 365 days after the first purchase
    sim = (out / "retention-sim.html").read_text()
    assert "Log-rank test across 5 channels" in sim and "NPS <strong>" in sim
    assert results["retention-cdnow"].key_numbers["customers"] == 2357
    for name in ("retention-cdnow", "retention-sim"):
        assert_clean_outputs(out, name)


@pytest.mark.slow
def test_stages_notebook_on_both_kinds_of_data_and_per_channel(rendered):
    out, results = rendered
    cdnow = (out / "stages-cdnow.html").read_text()
    assert "no events table" in cdnow and "Anderson-Goodman" in cdnow
    # The latent model (the default): its intervals, how sure it is of each customer's stage,
    # and only the stages transactions can show.
    assert "95% bootstrap interval (20 resamples" in cdnow
    assert "of customers have a stage the model gives at least 80%" in cdnow
    assert "This data cannot see awareness, engagement, evaluation" in cdnow
    assert results["stages-cdnow"].key_numbers["method"] == "latent"
    full = (out / "stages-sim.html").read_text()
    assert "homogeneity across segments" in full and "Long-run distribution" in full
    # Stage values over business horizons, the lift over a churned customer, the time to a
    # lapse beside the time to the churned stage, with the discount rate and currency.
    for words in (
        "Value over 12 months",
        "Value over 36 months",
        "Lift over a churned",
        "months without a purchase",
        "discounted at 1.0% per month",
    ):
        assert words in full, words
    assert "P(advocacy before churn)" in full
    email = (out / "stages-sim-email.html").read_text()
    assert "(email)" in email and "homogeneity across segments" not in email
    by_email = (out / "retention-sim-email.html").read_text()
    assert "came through email, so there is one curve" in by_email
    # A report as of a past date leaves out (and counts) what came after it.
    assert "Data from 2024-07-01 on are left out of every figure:" in by_email
    dq = (out / "data_quality-sim.html").read_text()
    assert "The profile below stops at the observation end, 2024-06-30" in dq
    assert "2024-12" not in dq.split("What each table holds")[1].split("What the analyses")[0]
    everyone = results["stages-sim"].key_numbers["customers"]
    assert 0 < results["stages-sim-email"].key_numbers["customers"] < everyone
    events = (out / "stages-events.html").read_text()
    assert "Signals come from events alone" in events
    for name in ("stages-cdnow", "stages-sim", "stages-sim-email", "retention-sim-email",
                 "stages-events"):  # fmt: skip
        assert_clean_outputs(out, name)


def test_churn_notebook_on_both_kinds_of_data(rendered, small_company_dir):
    out, results = rendered
    cdnow = (out / "churn-cdnow.html").read_text()
    assert "holds transactions only" in cdnow and "BG/NBD P(no purchase" in cdnow
    sim = (out / "churn-sim.html").read_text()
    assert "events, surveys, customers tables" in sim
    for name in ("churn-cdnow", "churn-sim"):
        k = results[name].key_numbers
        assert 0 <= k["high_risk"] <= k["customers_scored"]
        assert 0.5 < k["roc_auc"] <= 1 and 0.5 < k["bgnbd_roc_auc"] <= 1
        assert_clean_outputs(out, name)
    # Pseudonymised: no raw customer id reaches the at-risk table.
    sim_ids = set(load_dataset(str(small_company_dir)).transactions["customer_id"].astype(str))
    shown = re.findall(r"<th[^>]*>([^<]+)</th>", sim)
    assert shown and not sim_ids & set(shown)


TARGET_COLUMNS = [
    "customer_id", "stage", "value_tier", "clv", "churn_probability", "value_at_risk", "action",
    "reasons",
]  # fmt: skip


@pytest.mark.slow
def test_customers_notebook_on_both_kinds_of_data(rendered, small_company_dir):
    """The customer profile report: ids pseudonymised in the page, real in the target list
    that the batch writes beside it (``{out}`` in a parameter is the output folder)."""
    out, results = rendered
    data = {"customers-cdnow": "cdnow_sample", "customers-sim": str(small_company_dir)}
    cdnow = (out / "customers-cdnow.html").read_text()
    assert "transactions alone" in cdnow and "no customers table" in cdnow
    sim = (out / "customers-sim.html").read_text()
    assert "events and transactions" in sim and "no customers table" not in sim
    assert results["customers-cdnow"].key_numbers["customers"] == 2357
    for name, dataset in data.items():
        ds = load_dataset(dataset)
        ids = set(ds.transactions["customer_id"].astype(str))
        if ds.customers is not None:
            ids |= set(ds.customers["customer_id"].astype(str))
        k = results[name].key_numbers
        assert k["as_of"] == str((ds.transactions["timestamp"].max() + pd.Timedelta(days=1)).date())
        assert 0 < k["customers"] <= len(ids)
        assert 0 < k["value_at_risk"] <= k["clv_total"]
        assert 0 < k["value_at_risk_share"] < 1 and 0 < k["targeted"] < k["customers"]
        assert k["targets_file"] == f"{name}-targets.csv"
        # Pseudonymised: no raw id among the words of the page's text, pseudonyms listed.
        page = (out / f"{name}.html").read_text()
        text = re.sub(r"<(style|script)\b.*?</\1>|<[^>]+>", " ", page, flags=re.S)
        assert not ids & set(re.findall(r"[\w-]+", text))
        assert len(set(re.findall(r"<th[^>]*>(c-[0-9a-f]{10})</th>", page))) >= 10
        assert f"{name}-targets.csv" in page  # the report names its CRM file
        # The target list: real ids, the documented columns, most value at risk first.
        targets = pd.read_csv(out / f"{name}-targets.csv", dtype={"customer_id": str})
        assert targets.columns.tolist() == TARGET_COLUMNS
        assert len(targets) == k["targeted"] and targets["customer_id"].is_unique
        assert set(targets["customer_id"]) <= ids
        assert (targets["action"] != "none").all()
        risk = targets["value_at_risk"].dropna()
        assert risk.is_monotonic_decreasing and len(risk) > 0.9 * len(targets)
        assert_clean_outputs(out, name)


def test_out_in_a_parameter_is_the_output_folder(tmp_path, monkeypatch):
    from clmmodels.reports import with_out_folder

    rep = tmp_path / "rep"
    params = {"dataset": "cdnow", "csv": "{out}/a.csv", "files": ["{out}/b", 3],
              "more": {"k": "{out}"}, "n": 2, "off": None, "text": "{outside}"}  # fmt: skip
    assert with_out_folder(params, rep) == {
        "dataset": "cdnow", "csv": f"{rep}/a.csv", "files": [f"{rep}/b", 3],
        "more": {"k": str(rep)}, "n": 2, "off": None, "text": "{outside}",
    }  # fmt: skip
    # A relative --out is made absolute: notebooks run in the config's folder, not here.
    monkeypatch.chdir(tmp_path)
    assert with_out_folder("{out}/x.csv", "rep") == f"{rep}/x.csv"


def test_workers_share_the_cores_unless_the_user_chose(monkeypatch):
    from clmmodels import reports

    for var in reports._THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    monkeypatch.setattr(reports.os, "cpu_count", lambda: 8)
    reports._share_cores(4)
    assert reports.os.environ["OMP_NUM_THREADS"] == "2"
    assert reports.os.environ["OPENBLAS_NUM_THREADS"] == "2"
    assert reports.os.environ["MKL_NUM_THREADS"] == "3"


def test_summary_notebook_on_both_kinds_of_data(rendered):
    out, results = rendered
    cdnow = (out / "summary-cdnow.html").read_text()
    assert "no events table" in cdnow and "no marketing_spend table" in cdnow
    assert "No new customers this month:</strong> the last customer in the data was" in cdnow
    assert 'href="clv-cdnow.html"' in cdnow and 'href="index.html"' in cdnow
    assert "CAC (blended) in 1998-06: <b>n/a</b>" in (out / "index.html").read_text()  # no None
    sim = (out / "summary-sim.html").read_text()
    assert "June 2024" in sim and "events per active customer" in sim
    k = results["summary-sim"].key_numbers
    assert k["month"] == "2024-06" and 0 <= k["crr"] <= 1 and k["nps"] is not None
    assert k["clv"] > 0
    for name in ("summary-cdnow", "summary-sim"):
        assert_clean_outputs(out, name)


def test_a_change_anywhere_in_the_package_or_its_libraries_reruns_the_reports(
    tmp_path, monkeypatch
):
    """The cache key covers every module (subpackages too), the templates and the versions of
    the libraries that compute the numbers: an edit to clv/bgnbd.py used to leave every report
    'unchanged'."""
    import shutil

    import clmmodels
    from clmmodels import reports

    package = tmp_path / "clmmodels"
    shutil.copytree(
        Path(clmmodels.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = reports.code_fingerprint(package)
    for edited in (package / "clv" / "bgnbd.py", next((package / "templates").rglob("*.j2"))):
        edited.write_text(edited.read_text() + "\n# edited\n")
        after = reports.code_fingerprint(package)
        assert after != before, edited
        before = after
    (package / "clv" / "__pycache__").mkdir(exist_ok=True)  # compiled files are not code
    (package / "clv" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert reports.code_fingerprint(package) == before

    run = reports.Run("r", ROOT / "notebooks" / "clv.ipynb", "cdnow_sample", cwd=ROOT)
    key = reports.run_key(run)
    assert reports.run_key(run) == key  # stable
    monkeypatch.setattr(reports, "code_fingerprint", lambda: "another package")
    assert reports.run_key(run) != key
    monkeypatch.undo()
    versions = {**reports.library_versions(), "scipy": "99.0"}
    monkeypatch.setattr(reports, "library_versions", lambda: versions)
    assert reports.run_key(run) != key
    assert {"numpy", "scipy", "pandas", "lifetimes", "scikit-learn", "lifelines", "duckdb"} <= set(
        reports.COMPUTING_LIBRARIES
    )
