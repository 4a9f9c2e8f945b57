"""The report batch rolls forward: dates from the data, one folder per month, a months index,
clear errors for dates outside the data and for parameters a notebook does not take, and an
index that guides (issue #20, items 3 and 5)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pandas as pd
import pytest
import yaml

from clmmodels.batch_dates import HOLDOUT_MONTHS, DataSpan, month_dates, plan_batch
from clmmodels.reports import Run, index_html, key_number_lines, load_config, months_index_html

from .conftest import run_clm

ROOT = Path(__file__).resolve().parents[1]
POLICY_META = '<meta http-equiv="Content-Security-Policy"'
DATES = "calibration_end = None\nobservation_end = None\nas_of = None\nend = None\nmonth = None"


def dated_notebook(folder: Path) -> Path:
    """Takes every derived date and records what it was given as its key numbers."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'dataset = "x"\n{DATES}')
    params.metadata["tags"] = ["parameters"]
    record = (
        "from clmmodels.reports import record_key_numbers\n"
        "record_key_numbers(calibration_end=calibration_end, observation_end=observation_end,\n"
        "                   as_of=as_of, end=end, month=month)"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(record)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "dated.ipynb"
    nbformat.write(nb, path)
    return path


def transactions(folder: Path, first: str, last: str) -> Path:
    """A dataset folder: three customers buying every 9 days from ``first`` to ``last``."""
    days = pd.date_range(first, last, freq="9D").append(pd.DatetimeIndex([last]))
    rows = [f"c{i},{d:%Y-%m-%d},{10 + i}.50" for d in days for i in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transactions.csv").write_text("customer_id,timestamp,amount\n" + "\n".join(rows))
    return folder


def config(tmp_path: Path, runs: list[dict]) -> Path:
    cfg = tmp_path / "reports.yml"
    cfg.write_text(yaml.safe_dump({"runs": runs}))
    return cfg


@pytest.fixture
def two_datasets(tmp_path):
    """``long``: 2023-01-05 to 2024-05-20 (last complete month 2024-04); ``short``: to
    2023-11-30 (its last complete month 2023-11)."""
    transactions(tmp_path / "long", "2023-01-05", "2024-05-20")
    transactions(tmp_path / "short", "2023-01-02", "2023-11-30")
    nb = dated_notebook(tmp_path).name
    return config(
        tmp_path,
        [
            {"name": "dates-long", "notebook": nb, "dataset": "long"},
            {"name": "dates-short", "notebook": nb, "dataset": "short"},
        ],
    )


@pytest.mark.slow
def test_dates_derive_from_the_data_and_each_month_has_its_folder(
    tmp_path, two_datasets, monkeypatch, capsys
):
    out = tmp_path / "out"
    code, text = run_clm(
        monkeypatch, capsys, "reports", "--config", str(two_datasets), "--out", str(out)
    )
    assert code == 0, text
    month = out / "2024-04"  # the latest last complete month of the batch's data
    manifest = json.loads((month / "manifest.json").read_text())
    assert manifest["dates-long"]["key_numbers"] == {
        "calibration_end": "2023-07-31",  # HOLDOUT_MONTHS before the observation end
        "observation_end": "2024-04-30",
        "as_of": "2024-05-01",
        "end": "2024-05-01",
        "month": "2024-04",
    }
    # Each dataset by default is as of its own last complete month: no warning for that.
    assert manifest["dates-short"]["key_numbers"]["observation_end"] == "2023-11-30"
    assert "warning" not in text.lower()

    # A past month: every run's dates derive from it, in its own folder.
    code, text = run_clm(
        monkeypatch, capsys, "reports", "--config", str(two_datasets), "--out", str(out),
        "--as-of", "2024-01",
    )  # fmt: skip
    assert code == 0, text
    past = json.loads((out / "2024-01" / "manifest.json").read_text())
    assert past["dates-long"]["key_numbers"]["observation_end"] == "2024-01-31"
    assert past["dates-long"]["key_numbers"]["calibration_end"] == "2023-04-30"
    # The short dataset ends before 2024-01: as of its own last month, with a visible warning
    # in the CLI, on the month's index and atop its report.
    assert past["dates-short"]["key_numbers"]["month"] == "2023-11"
    assert "warning: short: the data end on 2023-11-30, before the end of 2024-01" in text
    index = (out / "2024-01" / "index.html").read_text()
    assert "the data end on 2023-11-30" in index and 'class="warning"' in index
    assert "as of 2023-11" in index and "as of 2024-01" in index
    assert 'href="../index.html"' in index and POLICY_META in index.split("<body", 1)[0]
    report = (out / "2024-01" / "dates-short.html").read_text()
    assert 'class="clm-warning"' in report and "the data end on 2023-11-30" in report
    assert "clm-warning" not in (out / "2024-04" / "dates-short.html").read_text()

    # The top index links the months, the latest first, and nothing else.
    top = (out / "index.html").read_text()
    links = [unquote(h) for h in re.findall(r'href="([^"]*)"', top)]
    assert links == ["2024-04/index.html", "2024-01/index.html"]
    assert POLICY_META in top.split("<body", 1)[0]


def test_dates_outside_the_data_are_one_line_errors(tmp_path, two_datasets, monkeypatch, capsys):
    out = tmp_path / "out"
    for as_of, message in [
        ("2024-05", "--as-of 2024-05 is after the data: the last complete month is 2024-04 "
                    "(long: 2023-01-05 to 2024-05-20; short: 2023-01-02 to 2023-11-30)"),
        ("2023-06", "--as-of 2023-06: too early for long (2023-01-05 to 2024-05-20): the CLV "
                    "calibration needs 9 months before it; the earliest month is 2023-10"),
        ("2024-6", "--as-of must be a month like 2024-06, not '2024-6'"),
    ]:  # fmt: skip
        code, text = run_clm(
            monkeypatch, capsys, "reports", "--config", str(two_datasets), "--out", str(out),
            "--as-of", as_of,
        )  # fmt: skip
        assert code == 2, text
        assert text.strip() == f"error: {message}", text
    # A date the config sets is checked against the data too.
    cfg = config(
        tmp_path,
        [{"name": "pinned", "notebook": "dated.ipynb", "dataset": "long",
          "parameters": {"calibration_end": "2030-01-31"}}],
    )  # fmt: skip
    code, text = run_clm(monkeypatch, capsys, "reports", "--config", str(cfg), "--out", str(out))
    assert code == 2
    assert text.strip() == (
        "error: run 'pinned': calibration_end 2030-01-31 is outside long's data "
        "(2023-01-05 to 2024-05-20)"
    )
    assert not list(out.glob("*/index.html"))  # nothing ran


def test_an_unknown_parameter_fails_its_run_naming_what_the_notebook_takes(
    tmp_path, two_datasets, monkeypatch, capsys
):
    cfg = config(
        tmp_path,
        [{"name": "typo", "notebook": "dated.ipynb", "dataset": "long",
          "parameters": {"calibraton_end": "2023-09-30"}}],
    )  # fmt: skip
    out = tmp_path / "out"
    code, text = run_clm(monkeypatch, capsys, "reports", "--config", str(cfg), "--out", str(out))
    assert code == 1
    expected = (
        "unknown parameter 'calibraton_end' for dated.ipynb; it accepts: dataset, "
        "calibration_end, observation_end, as_of, end, month"
    )
    assert expected in text
    # The failure is an HTML page with the error, linked from the index.
    page = (out / "2024-04" / "failed-typo.html").read_text()
    assert html.escape(expected) in page and POLICY_META in page.split("<body", 1)[0]
    index = (out / "2024-04" / "index.html").read_text()
    assert 'href="failed-typo.html"' in index and '.ipynb"' not in index


def test_the_real_notebooks_get_their_dates_from_the_data():
    """The default config sets no date; each run's derive from its dataset's last month."""
    runs = load_config(ROOT / "reports.yml")
    assert not any(
        k in r.parameters for r in runs for k in ("calibration_end", "observation_end", "month")
    )
    spans = {
        "cdnow": DataSpan(pd.Timestamp("1997-01-01"), pd.Timestamp("1998-06-30")),
        "data/simulated": DataSpan(pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31 21:00")),
    }
    plan = plan_batch(runs, spans=spans)
    by_name = {r.name: r.parameters for r in plan.runs}
    assert str(plan.month) == "2024-12"
    assert by_name["clv-cdnow"]["calibration_end"] == "1997-09-30"  # CDNOW's classic split
    assert by_name["clv-cdnow"]["observation_end"] == "1998-06-30"
    assert by_name["clv-simulated"]["observation_end"] == "2024-12-31"
    assert by_name["summary-simulated"]["month"] == "2024-12"
    assert by_name["customers-cdnow"]["as_of"] == "1998-07-01"
    assert by_name["churn-cdnow"]["backtest_as_of"] == "1998-04-02"  # 90 days before 07-01
    past = {r.name: r for r in plan_batch(runs, "2024-06", spans=spans).runs}
    assert past["clv-simulated"].parameters["calibration_end"] == "2023-09-30"
    # The churn notebook stops its scores and at-risk list at the month's end, too.
    assert past["churn-simulated"].parameters["as_of"] == "2024-07-01"
    assert past["churn-simulated"].parameters["backtest_as_of"] == "2024-04-02"
    assert not any("uses all" in n for n in past["churn-simulated"].notes)
    assert month_dates(pd.Period("2024-02", "M"))["observation_end"] == "2024-02-29"
    assert HOLDOUT_MONTHS == 9


def test_the_index_guides(tmp_path):
    nb = tmp_path / "summary.ipynb"
    runs = [
        Run("clv-simulated", tmp_path / "clv.ipynb", "data/simulated"),
        Run("summary-simulated", nb, "data/simulated"),
        Run("summary-cdnow", nb, "cdnow"),
        Run("stages-simulated-email", tmp_path / "stages.ipynb", "data/simulated",
            {"channel": "email"}),
    ]  # fmt: skip
    numbers = {"month": "1998-06", "churn_rate": 0.038, "nps": 31.25, "active_customers": 12345,
               "crr": 0.9, "cac": None}  # fmt: skip
    manifest = {
        "summary-cdnow": {"status": "ok", "html": "x", "key_numbers": numbers},
        "clv-simulated": {"status": "failed", "error": "ValueError: <bad>"},
    }
    page = index_html(runs, manifest, month="2024-12", as_of={"cdnow": "1998-06"})
    # Grouped by dataset, the summary first with "start here", a line on what each answers.
    assert page.index("<h2>simulated") < page.index("<h2>cdnow")
    sim = page[page.index("<h2>simulated") : page.index("<h2>cdnow")]
    assert sim.index("summary-simulated") < sim.index("clv-simulated")
    assert page.count("start here</span> ") == 2  # on the summaries
    assert "Customer value: CLV per customer and its drivers" in page
    assert "customers acquired through email" in page
    assert "as of 1998-06" in page
    # Key numbers in words, with their period, formatted for people.
    assert "lapsed (no purchase in 365 days) in 1998-06: <b>3.8%</b>" in page
    assert "NPS in 1998-06: <b>31.2</b>" in page or "NPS in 1998-06: <b>31.3</b>" in page
    assert (
        "12,345" in page and "<b>90.0%</b>" in page and "CAC (blended) in 1998-06: <b>n/a" in page
    )
    assert "churn_rate" not in page.split("<code>")[0]
    # A failure links to its page, not to the notebook's JSON.
    assert 'href="failed-clv-simulated.html"' in page and "&lt;bad&gt;" in page
    lines = dict(key_number_lines(runs[0], {"mean_p_alive": 0.4567, "data_end": "2024-12-31"}))
    assert lines == {"mean P(alive) on 2024-12-31": "45.7%", "data up to": "2024-12-31"}


def test_the_months_index_lists_only_month_folders(tmp_path):
    for name in ("2024-12", "2024-06", "notes", "2024-13x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text("x")
    (tmp_path / "2023-01").mkdir()  # no index: not listed
    page = months_index_html(tmp_path)
    assert re.findall(r'href="([^"]*)"', page) == ["2024-12/index.html", "2024-06/index.html"]
