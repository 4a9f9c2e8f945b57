"""The rendered reports in a real browser: no console errors, every image loaded.

Needs Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it) and Playwright's
Python package (a dev extra), which drives that Chromium without downloading a browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from clmmodels.reports import load_config, run_reports

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


def test_index_and_every_report_load_cleanly(tmp_path):
    runs = [
        {
            "name": "dq",
            "notebook": str(ROOT / "notebooks/data_quality.ipynb"),
            "dataset": "cdnow_sample",
        },
        {
            "name": "ret",
            "notebook": str(ROOT / "notebooks/retention.ipynb"),
            "dataset": "cdnow_sample",
        },
    ]
    cfg = tmp_path / "reports.yml"
    cfg.write_text(yaml.safe_dump({"runs": runs}))
    out = tmp_path / "out"
    results = run_reports(load_config(cfg), out, jobs=2, progress=False)
    assert all(r.status == "ok" for r in results), results
    pages = [out / "index.html", *(out / r.html for r in results)]
    shots = out / "screenshots"
    shots.mkdir()
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
            page.close()
            assert problems == [], (page_path.name, problems)
            assert all(images), (page_path.name, images)
            if page_path.name != "index.html":
                assert images, f"{page_path.name} shows no plot"
        browser.close()
    assert len(list(shots.glob("*.png"))) == len(pages)
