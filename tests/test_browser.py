"""The rendered reports in a real browser: no console errors, every image loaded, and no raw
value (NaN, None, <NA>, NaT, True/False cells, scientific notation) in what a reader sees.

Needs Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it) and Playwright's
Python package (a dev extra), which drives that Chromium without downloading a browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clmmodels.present import raw_values

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (a dev extra)"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium"),
]
# As root in a closed network: no sandbox, and no background connections that would fail.
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def assert_no_raw_values(name: str, text: str) -> None:
    """Fail naming the page and each raw value in its visible text (``inner_text``: table
    cells separated by tabs, rows by newlines)."""
    found = raw_values(text)
    assert not found, f"{name} shows raw values: " + " | ".join(found[:10])


def test_index_and_every_report_load_cleanly(rendered):
    """Every page of the batch rendered once for the suite (``rendered`` in conftest.py: every
    notebook on the CDNOW sample and on a small simulated company, one channel, an
    events-only log)."""
    out, results = rendered
    pages = [out / "index.html", out / "glossary.html", *(out / r.html for r in results.values())]
    shots = out / "screenshots"
    shots.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for page_path in pages:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m, sink=problems: m.type == "error" and sink.append(m.text))
            page.on("pageerror", lambda e, sink=problems: sink.append(str(e)))
            page.on("requestfailed", lambda r, sink=problems: sink.append(f"failed: {r.url}"))
            page.goto(page_path.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
            )
            page.screenshot(path=str(shots / f"{page_path.stem}.png"), full_page=True)
            text = page.inner_text("body")
            page.close()
            assert_no_raw_values(page_path.name, text)
            assert problems == [], (page_path.name, problems)
            assert all(images), (page_path.name, images)
            if page_path.name not in ("index.html", "glossary.html", "channels-cdnow.html"):
                assert images, f"{page_path.name} shows no plot"
        browser.close()
    assert len(list(shots.glob("*.png"))) == len(pages)


def test_the_raw_value_check_fails_on_a_page_that_shows_them(tmp_path):
    """The check reads what Chromium shows: a pandas table with raw values fails it, naming
    the page and the values; the same table through the presentation layer passes."""
    import numpy as np
    import pandas as pd

    from clmmodels.present import table

    df = pd.DataFrame(
        {"present": [True, False], "rows": pd.array([3, None], dtype="Int64"),
         "last": pd.to_datetime(["2024-01-02", None]), "p_value": [1.56e-142, np.nan]},
        index=["transactions", "customers"],
    )  # fmt: skip
    raw = tmp_path / "raw.html"
    raw.write_text(f"<html><body><p>Result</p>{df.to_html()}</body></html>")
    fine = tmp_path / "fine.html"
    fine.write_text(f"<html><body><p>Result</p>{table(df).to_html()}</body></html>")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(raw.as_uri())
        raw_text = page.inner_text("body")
        page.goto(fine.as_uri())
        fine_text = page.inner_text("body")
        browser.close()
    with pytest.raises(AssertionError) as failure:
        assert_no_raw_values("raw.html", raw_text)
    message = str(failure.value)
    assert "raw.html" in message
    for value in ("True", "False", "<NA>", "NaT", "e-142", "NaN"):
        assert value in message, value
    assert_no_raw_values("fine.html", fine_text)
