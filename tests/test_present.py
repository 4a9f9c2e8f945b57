"""The presentation layer: each formatting rule, with a case that fails without it."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from clmmodels import glossary, present


def test_headers_are_words_with_known_names_spelled_out():
    assert present.header("monetary_value") == "Monetary value"
    assert present.header("days_since_last_purchase") == "Days since last purchase"
    assert present.header("p_alive") == "P(alive)"
    assert present.header("clv_to_cac") == "CLV:CAC"
    assert present.header("roc_auc") == "ROC-AUC"
    assert present.header("P(advocacy before churn)") == "P(advocacy before churn)"


def test_money_headers_carry_the_currency():
    assert present.header("monetary_value", currency="EUR") == "Monetary value (EUR)"
    assert present.header("clv", currency="USD") == "CLV (USD)"
    assert present.header("frequency", currency="USD") == "Frequency"  # not money


def test_numbers_have_thousands_separators_and_never_scientific_notation():
    assert present.number(1234567.891) == "1,234,567.89"
    assert present.number(1234567) == "1,234,567"
    assert present.number(np.int64(12000)) == "12,000"
    assert "e" not in present.number(1.56e-142) and present.number(1.56e-142).startswith("0.0")
    text = present.number(1.56e-7)
    assert "e" not in text.lower() and text.startswith("0.000000")
    assert present.number(3.2e21, 0) == "3,200,000,000,000,000,000,000"
    assert present.number(-0.0001, 2).startswith("-0.0001")
    assert present.number(-0.004, 2) in ("-0.004", "-0.0040")
    assert present.number(-0.0, 2) == "0.00"  # no negative zero


def test_percentages():
    assert present.percent(0.1234) == "12.3%"
    assert present.percent(1) == "100.0%"
    assert present.percent(0.5, 0) == "50%"


def test_p_values():
    assert present.p_value(1.56e-142) == "< 0.001"
    assert present.p_value(0.0009) == "< 0.001"
    assert present.p_value(0.04321) == "0.043"
    assert present.p_value(np.nan) == present.MISSING


def test_dates_read_year_month_day():
    assert present.date(pd.Timestamp("2024-06-30 13:45")) == "2024-06-30"
    assert present.date("2024-06-30") == "2024-06-30"
    assert present.date(pd.Period("2024-06", "M")) == "2024-06"
    assert present.cell(np.datetime64("2024-01-02T00:00")) == "2024-01-02"


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA, pd.NaT, float("nan")])
def test_missing_values_read_as_a_dash(missing):
    assert present.cell(missing) == present.MISSING
    assert present.number(missing) == present.MISSING
    assert present.percent(missing) == present.MISSING
    assert present.date(missing) == present.MISSING


def test_booleans_read_yes_and_no_and_infinity_a_sign():
    assert present.cell(True) == "yes" and present.cell(np.bool_(False)) == "no"
    assert present.number(float("inf")) == "∞" and present.number(-np.inf) == "−∞"


def test_money_in_prose():
    assert present.money(1234.5, "EUR") == "EUR 1,234.50"
    assert present.money(1234.5, "EUR", 0) == "EUR 1,234"
    assert present.money(None, "EUR") == present.MISSING


def test_currency_from_the_report_the_dataset_or_the_default():
    class WithCurrency:
        currency = "GBP"

    assert present.dataset_currency(WithCurrency(), "EUR") == "EUR"
    assert present.dataset_currency(WithCurrency()) == "GBP"
    assert present.dataset_currency(object()) == "USD"


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "monetary_value": [1234.5, np.nan],
            "p_alive": [0.5, None],
            "present": [True, False],
            "first": pd.to_datetime(["2024-01-02 10:00", None]),
            "rows": pd.array([1200, None], dtype="Int64"),
            "p_value": [1.56e-142, 0.2],
            "tiny": [1e-7, 3.0],
            "source": ["a file", None],
            "count": [6919.0, 2357.0],
        },
        index=pd.Index(["transactions", "customers"], name="table"),
    )


def test_format_frame_applies_every_rule():
    out = present.format_frame(frame(), currency="EUR")
    assert list(out.columns) == [
        "Monetary value (EUR)", "P(alive)", "Present", "First", "Rows", "p-value", "Tiny",
        "Source", "Count",
    ]  # fmt: skip
    assert out.iloc[0].tolist() == [
        "1,234.50", "50.0%", "yes", "2024-01-02", "1,200", "< 0.001", "0.0000001", "a file",
        "6,919",
    ]  # fmt: skip
    assert out.iloc[1].tolist() == ["–", "–", "no", "–", "–", "0.200", "3.00", "–", "2,357"]
    assert out.index.name == "Table"


def test_format_frame_takes_column_kinds_and_formats_by_name():
    df = pd.DataFrame({"share now": [0.25], "change": [3], "lift": [1.23456]})
    out = present.format_frame(
        df, percent=["share now"], formats={"change": "{:+,}".format}, decimals={"lift": 3}
    )
    assert out.iloc[0].tolist() == ["25.0%", "+3", "1.235"]


def test_table_html_holds_no_raw_value_and_escapes_text():
    df = frame().assign(source=["a finite number >= 0", None])
    page = present.table(df, currency="USD").to_html()
    for raw in ("NaN", "None", "&lt;NA&gt;", "NaT", ">True<", ">False<", "e-142", "1234.5<"):
        assert raw not in page, raw
    assert "a finite number &gt;= 0" in page
    assert "Monetary value (USD)" in page and "1,234.50" in page
    text = present.table(df).data.to_csv(sep="\t")
    assert present.raw_values(text) == []


def test_a_table_shades_the_best_cell():
    df = pd.DataFrame({"roc_auc": [0.7, 0.9]}, index=["a", "b"])
    page = present.table(df, highlight={"roc_auc": "max"}).to_html()
    assert page.count("#d4edda") == 1


@pytest.mark.parametrize(
    "text, raw",
    [
        ("customers\tFalse\t<NA>\t12", "False"),
        ("x\tTrue", "True"),
        ("p\t1.56e-142\trejected", "1.56e-142"),
        ("total 3E+05 customers", "3E+05"),
        ("median\tNaN", "NaN"),
        ("median\tnan", "nan"),
        ("value None here", "None"),
        ("last\tNaT", "NaT"),
        ("the value <NA>", "<NA>"),
        ("median days\tinf", "inf"),
    ],
)
def test_raw_values_are_found(text, raw):
    found = present.raw_values(text)
    assert found and raw in found[0]


@pytest.mark.parametrize(
    "text",
    [
        "The model is true to the data; False positives are rare.",  # words, not cells
        "pseudonym c-1e50000000 and c-3e10abcd12",  # hex, not scientific notation
        "Nancy and Nonesuch bought in 2024-01-02",
        "p < 0.001\t12,345\t–\tyes\tno",
        "information",
    ],
)
def test_what_is_not_a_raw_value(text):
    assert present.raw_values(text) == []


def test_how_to_read_box_names_each_term_with_its_period():
    terms = [glossary.lapsed(365), glossary.churned_stage(6, "month")]
    box = present.how_to_read_html(terms)
    assert "lapsed (no purchase in 365 days)" in box
    assert "in the churned stage (6 months without a signal, or a churn event)" in box
    assert box.count("Period:") == 2 and "one calendar month" in box


def test_date_axes_never_overlap():
    days = pd.date_range("2020-01-01", "2024-12-31", freq="D")
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(days, np.arange(len(days)))
    present.date_axis(ax)
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    assert 2 <= len(boxes) <= 8
    assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(boxes))
    plt.close(fig)


def test_axes_are_labelled_and_numbers_have_separators():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 2_000_000])
    present.label_axes(ax, x="month", y="revenue (USD)", title="Revenue")
    present.thousands_axis(ax)
    fig.canvas.draw()
    labelled = (ax.get_xlabel(), ax.get_ylabel(), ax.get_title())
    assert labelled == ("month", "revenue (USD)", "Revenue")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "2,000,000" in labels and not any("e" in t for t in labels)
    plt.close(fig)


def test_legends_show_only_the_stages_that_occur():
    from clmmodels.stages.plots import plot_stage_areas
    from clmmodels.vocabulary import STAGES

    table = pd.DataFrame(0.0, index=pd.period_range("2024-01", periods=4, freq="M"), columns=STAGES)
    table["retention"] = [5, 6, 7, 8]
    table["churned"] = [1, 2, 3, 4]
    ax = plot_stage_areas(table)
    assert len(ax.get_legend().get_texts()) == len(STAGES)  # the package draws every stage
    present.stage_areas(ax, table, x="month", y="customers")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["retention", "churned"]
    assert ax.get_xlabel() == "month"
    plt.close(ax.figure)


def test_kpi_trends_use_the_glossary_names():
    series = pd.DataFrame(
        {"crr": [0.9, 0.8], "churn_rate": [0.1, 0.2]},
        index=pd.to_datetime(["2024-01-01", "2024-02-01"]),
    )
    name = glossary.lapsed(365).name
    ax = present.kpi_trends(series, ["crr", "churn_rate"], labels={"churn_rate": name})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Retention rate (CRR)", name]
    assert ax.get_xlabel() == "month" and ax.get_ylabel() == "share"
    plt.close(ax.figure)


def test_relabel_legend():
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="bgnbd_p_no_purchase")
    ax.plot([0, 1], label="random")
    present.relabel_legend(ax, {"bgnbd_p_no_purchase": "BG/NBD P(no purchase)"})
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ["BG/NBD P(no purchase)", "random"]
    plt.close(fig)
