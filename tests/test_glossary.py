"""One glossary: each measure of customers leaving has one name, definition and period."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from clmmodels import glossary
from clmmodels.reports import CONTENT_SECURITY_POLICY, glossary_html, index_html

ROOT = Path(__file__).resolve().parents[1]


def test_every_term_is_distinct_and_complete():
    terms = glossary.glossary()
    assert len({t.key for t in terms}) == len({t.name for t in terms}) == len(terms)
    for t in terms:
        assert t.name and t.definition and t.period and t.reports, t


def test_terms_state_their_parameters():
    assert glossary.lapsed(365).name == "lapsed (no purchase in 365 days)"
    assert "previous 730 days" in glossary.lapsed(730).definition
    assert glossary.predicted_churn(60).name == "predicted churn (no purchase in the next 60 days)"
    assert glossary.lifetime_ended(180).name == "lifetime ended (a 180-day gap without purchase)"
    assert glossary.churned_stage(26, "week").name.startswith("in the churned stage (26 weeks")
    assert "never by silence" in glossary.churned_stage(None).name
    assert glossary.p_alive().name == "P(alive)"


def test_the_definitions_match_the_code_defaults():
    """The glossary's default periods are the package's."""
    import inspect

    from clmmodels import survival
    from clmmodels.churn import backtest
    from clmmodels.metrics import kpis
    from clmmodels.stages import DEFAULT_CHURN_AFTER

    window = inspect.signature(kpis).parameters["active_window_days"].default
    assert glossary.glossary()[0] == glossary.lapsed(window)
    gap = inspect.signature(survival.customer_lifetimes).parameters["gap_days"].default
    assert glossary.lifetime_ended(gap) in glossary.glossary()
    assert glossary.churned_stage(DEFAULT_CHURN_AFTER["month"], "month") in glossary.glossary()
    assert "horizon_days" in inspect.signature(backtest).parameters


def test_each_report_shows_its_terms():
    """The notebooks take their terms from the glossary and show them in a how-to-read box."""
    expected = {
        "summary": ["lapsed", "churned_stage"],
        "clv": ["p_alive"],
        "retention": ["lapsed", "lifetime_ended"],
        "stages": ["churned_stage", "latent_churned_stage"],
        "churn": ["predicted_churn", "p_no_purchase"],
        "customers": ["p_alive", "predicted_churn", "latent_churned_stage"],
    }
    for name, keys in expected.items():
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "present.how_to_read(" in code, name
        for key in keys:
            assert f"glossary.{key}(" in code, (name, key)


def test_the_glossary_page_lists_every_term_and_is_linked_from_the_index():
    page = glossary_html()
    assert CONTENT_SECURITY_POLICY in page and "<script" not in page
    for t in glossary.glossary():
        assert t.name in page or t.name.replace("'", "&#x27;") in page
    assert 'href="index.html"' in page
    index = index_html([], {})
    assert 'href="glossary.html"' in index
    # the same style as the index
    style = re.search(r"<style>.*?</style>", index, re.S).group()
    assert style in page
