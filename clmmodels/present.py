"""One presentation layer for the reports: tables, numbers in prose, charts, the glossary box.

Every table a report shows goes through :func:`table`, which turns each cell into text by one
set of rules, so no raw value reaches a reader:

- headers are words: ``monetary_value`` becomes "Monetary value" (:data:`HEADERS` spells the
  known names: ``p_alive`` is "P(alive)", ``clv`` "CLV"), and money columns carry the
  currency: "CLV (USD)";
- whole numbers get thousands separators (12,345), fractions that are shares are percentages
  (12.3%), money has two decimals, p-values below 0.001 read "< 0.001", and no number is
  ever in scientific notation;
- dates read YYYY-MM-DD (months YYYY-MM);
- missing values (NaN, None, ``<NA>``, NaT) read "–", booleans "yes" / "no", infinity "∞".

The chart helpers give date axes labels that do not overlap, axes their labels and legends
only the stages that occur. :func:`how_to_read` shows the glossary's terms a report uses.
:func:`raw_values` finds what the rules exist to prevent, in a page's text.
"""

from __future__ import annotations

import datetime
import math
import numbers
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .glossary import Term

#: What a missing value reads as.
MISSING = "–"
#: The currency when neither the report nor the dataset names one.
DEFAULT_CURRENCY = "USD"

#: Headers of the names the package uses that the generic rule (underscores to spaces, first
#: letter capitalised) would spell wrongly.
HEADERS: dict[str, str] = {
    "p_alive": "P(alive)",
    "clv": "CLV",
    "clv_lower": "CLV lower",
    "clv_upper": "CLV upper",
    "mean_clv": "Mean CLV",
    "total_clv": "Total CLV",
    "cac": "CAC",
    "clv_to_cac": "CLV:CAC",
    "crr": "Retention rate (CRR)",
    "nps": "NPS",
    "csat": "CSAT",
    "aic": "AIC",
    "bic": "BIC",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "p_value": "p-value",
    "mae": "MAE",
    "rmse": "RMSE",
    "ll": "Log-likelihood",
    "log_likelihood": "Log-likelihood",
    "T": "T (age)",
    "std": "Std. dev.",
    "min": "Min",
    "max": "Max",
    "25%": "25th percentile",
    "50%": "Median",
    "75%": "75th percentile",
    "top_decile_lift": "Top-decile lift",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "median_days": "Median lifetime (days)",
    "survival_90d": "Still in lifetime at 90 days",
    "survival_180d": "Still in lifetime at 180 days",
    "survival_365d": "Still in lifetime at 365 days",
    "hgb": "Gradient boosting (hgb)",
    "logistic": "Logistic regression",
    "bgnbd": "BG/NBD",
    "pnbd": "Pareto/NBD",
    "mbgnbd": "MBG/NBD",
    "bgnbd_p_alive": "BG/NBD P(alive)",
    "bgnbd_expected_purchases": "BG/NBD expected purchases",
    "bgnbd_p_no_purchase": "BG/NBD P(no purchase)",
    "recency_rule": "Recency rule",
    "df": "Degrees of freedom",
    "degrees_of_freedom": "Degrees of freedom",
}

#: Columns in money (two decimals, the currency in the header).
MONEY: frozenset[str] = frozenset({
    "monetary_value", "expected_spend", "clv", "clv_lower", "clv_upper", "mean_clv", "total_clv",
    "revenue", "spend", "cac", "value_at_risk", "total_spend", "mean_spend", "amount",
    "revenue_per_period", "value_discounted",
})  # fmt: skip
#: Columns of shares, probabilities and rates (fractions shown as percentages).
PERCENT: frozenset[str] = frozenset({
    "share", "p_alive", "churn_probability", "crr", "churn_rate", "share_of_customers",
    "survival_90d", "survival_180d", "survival_365d", "bgnbd_p_alive", "bgnbd_p_no_purchase",
})  # fmt: skip
#: Columns of p-values.
P_VALUES: frozenset[str] = frozenset({"p_value", "pvalue", "p"})


def _key(name: object) -> str:
    """``name`` as the snake-case key the rule sets use ("Value at risk" -> value_at_risk)."""
    return re.sub(r"[^0-9a-z%]+", "_", str(name).strip().lower()).strip("_")


# ---------------------------------------------------------------------------- values as text


def is_missing(value: object) -> bool:
    """NaN, None, ``pd.NA`` and NaT (a scalar; lists are never missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array-like
        return False


def number(value: object, decimals: int = 2) -> str:
    """A number for people: thousands separators, ``decimals`` places (none for whole
    numbers given as integers), never scientific notation.

    A non-zero value too small for ``decimals`` places keeps two significant digits
    (0.00031), written out in full.
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return yes_no(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)  # type: ignore[arg-type]
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and abs(v) < 0.5 * 10**-decimals:
        return np.format_float_positional(v, precision=2, unique=False, fractional=False, trim="-")
    text = f"{v:,.{decimals}f}"
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def integer(value: object) -> str:
    """A count: 12,345."""
    if is_missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    return number(v) if math.isinf(v) else f"{round(v):,}"


def percent(value: object, decimals: int = 1) -> str:
    """A fraction as a percentage: 0.1234 -> 12.3%."""
    if is_missing(value):
        return MISSING
    v = 100 * float(value)  # type: ignore[arg-type]
    if math.isinf(v):
        return number(v)
    return f"{v:,.{decimals}f}%"


def money(value: object, currency: str | None = None, decimals: int = 2) -> str:
    """An amount: 1,234.56, preceded by the currency when given (USD 1,234.56)."""
    text = number(value, decimals)
    return f"{currency} {text}" if currency and text != MISSING else text


def p_value(value: object) -> str:
    """A p-value: "< 0.001" below 0.001, else three decimals."""
    if is_missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def date(value: object) -> str:
    """A date as YYYY-MM-DD (a month period as YYYY-MM)."""
    if is_missing(value):
        return MISSING
    if isinstance(value, pd.Period):
        return str(value) if value.freqstr.startswith("M") else str(value.start_time.date())
    return pd.Timestamp(value).strftime("%Y-%m-%d")  # type: ignore[arg-type]


def yes_no(value: object) -> str:
    """True -> "yes", False -> "no"."""
    return MISSING if is_missing(value) else ("yes" if value else "no")


def cell(value: object, decimals: int = 2) -> str:
    """Any single value as text by the rules above (its kind taken from its type)."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return yes_no(value)
    if isinstance(value, pd.Timestamp | datetime.date | np.datetime64 | pd.Period):
        return date(value)
    if isinstance(value, numbers.Number):
        return number(value, decimals)
    return str(value)


def header(name: object, currency: str | None = None) -> str:
    """A column name for people; a money column's carries the currency ("CLV (USD)")."""
    text = str(name)
    key = _key(text)
    label = HEADERS.get(text) or HEADERS.get(key)
    if label is None:
        label = text.replace("_", " ").strip()
        label = label[:1].upper() + label[1:]
    if currency and key in MONEY and currency not in label:
        label = f"{label} ({currency})"
    return label


def dataset_currency(ds: object = None, currency: str | None = None) -> str:
    """The currency of a report: the one given, else the dataset's (a ``currency``
    attribute), else :data:`DEFAULT_CURRENCY`."""
    if currency:
        return str(currency)
    return str(getattr(ds, "currency", None) or DEFAULT_CURRENCY)


# ---------------------------------------------------------------------------------- tables


def _column_kind(name: object, values: pd.Series, money_cols, percent_cols, p_cols, int_cols):
    key = _key(name)
    if name in p_cols or key in p_cols:
        return "p"
    if name in percent_cols or key in percent_cols:
        return "percent"
    if name in money_cols or key in money_cols:
        return "money"
    if name in int_cols or key in int_cols:
        return "integer"
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "date"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        finite = values.dropna()
        finite = finite[np.isfinite(finite.astype(float))]
        if len(finite) and (finite == finite.round()).all() and (finite.abs() >= 10).any():
            return "integer"  # counts held as floats (a describe()'s count)
        return "number"
    return "any"


def format_frame(
    df: pd.DataFrame,
    *,
    currency: str | None = None,
    money: Iterable[str] = (),
    percent: Iterable[str] = (),
    p_values: Iterable[str] = (),
    integers: Iterable[str] = (),
    decimals: int | Mapping[str, int] = 2,
    formats: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``df`` with every cell (and index label) as text by the module's rules, and readable
    headers. Columns are money, percentages, p-values or counts by name (the module's
    :data:`MONEY`, :data:`PERCENT` and :data:`P_VALUES`, plus those given), else by dtype.
    ``formats`` maps a column to a function of one value returning text, for anything else.
    """
    money_cols = MONEY | set(money)
    percent_cols = PERCENT | set(percent)
    p_cols = P_VALUES | set(p_values)
    int_cols = set(integers)
    formats = dict(formats or {})
    out = {}
    names = {}
    for col in df.columns:
        values = df[col]
        places = decimals.get(col, 2) if isinstance(decimals, Mapping) else decimals
        if col in formats:
            fn = formats[col]
            text = values.map(lambda v, fn=fn: MISSING if is_missing(v) else fn(v))  # type: ignore[operator]
        else:
            kind = _column_kind(col, values, money_cols, percent_cols, p_cols, int_cols)
            fn = {
                "p": p_value,
                "percent": globals()["percent"],
                "money": lambda v, d=places: number(v, d),
                "integer": integer,
                "bool": yes_no,
                "date": date,
                "number": lambda v, d=places: number(v, d),
                "any": lambda v, d=places: cell(v, d),
            }[kind]
            text = values.map(fn)
        out[col] = text.astype(object)
        is_money = col in money_cols or _key(col) in money_cols
        label = (headers or {}).get(col) or header(col, currency if is_money else None)
        if is_money and currency and currency not in label:
            label = f"{label} ({currency})"
        names[col] = label
    frame = pd.DataFrame(out, index=df.index)
    frame.columns = [names[c] for c in df.columns]
    frame.index = _index_text(df.index)
    return frame


def _index_text(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        levels = [_index_text(index.get_level_values(i)) for i in range(index.nlevels)]
        names = [header(n) if n is not None else None for n in index.names]
        return pd.MultiIndex.from_arrays(levels, names=names)
    if isinstance(index, pd.RangeIndex):
        return index
    texts = [cell(v) for v in index]
    return pd.Index(texts, name=header(index.name) if index.name is not None else None)


#: Text that reads as a number (right-aligned in a table): 1,234.5, +3, -0.8 pts, 12%, < 0.001.
_NUMERIC_TEXT = re.compile(r"[-+−<>≤≥ ]*[\d,.]+\s*(%|pts)?|–|∞|−∞")


def table(
    df: pd.DataFrame | pd.Series,
    *,
    currency: str | None = None,
    money: Iterable[str] = (),
    percent: Iterable[str] = (),
    p_values: Iterable[str] = (),
    integers: Iterable[str] = (),
    decimals: int | Mapping[str, int] = 2,
    formats: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
    index: bool = True,
    caption: str | None = None,
    highlight: Mapping[str, str] | None = None,
):
    """A table for a report: :func:`format_frame`'s text in a styled HTML table (numbers
    right-aligned, text left), ready for ``display``.

    ``index=False`` hides the index; ``caption`` titles the table; ``highlight`` maps a column
    to "max" or "min" to shade its best cell.
    """
    if isinstance(df, pd.Series):
        df = df.to_frame()
    text = format_frame(
        df, currency=currency, money=money, percent=percent, p_values=p_values,
        integers=integers, decimals=decimals, formats=formats, headers=headers,
    )  # fmt: skip
    numeric = [
        text.columns[i]
        for i, c in enumerate(df.columns)
        if (pd.api.types.is_numeric_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c]))
        or text.iloc[:, i].map(lambda v: bool(_NUMERIC_TEXT.fullmatch(str(v)))).all()
    ]
    styler = text.style.format(escape="html")
    if not index or isinstance(text.index, pd.RangeIndex):
        styler = styler.hide(axis="index")
    styler = styler.set_table_styles(
        [
            {"selector": "th.col_heading", "props": "text-align: right; vertical-align: bottom"},
            {"selector": "th.row_heading", "props": "text-align: left; white-space: nowrap"},
        ]
    )
    words = [c for c in text.columns if c not in numeric]
    if numeric:
        styler = styler.set_properties(
            subset=numeric, **{"text-align": "right", "white-space": "nowrap"}
        )
    if words:
        styler = styler.set_properties(subset=words, **{"text-align": "left"})
    for col, how in (highlight or {}).items():
        values = pd.to_numeric(df[col], errors="coerce")
        if values.notna().any():
            best = values.idxmax() if how == "max" else values.idxmin()
            row = list(df.index).index(best)
            label = text.columns[list(df.columns).index(col)]
            styler = styler.set_properties(
                subset=pd.IndexSlice[text.index[row : row + 1], [label]],
                **{"background-color": "#d4edda"},
            )
    if caption:
        styler = styler.set_caption(caption)
    return styler


# -------------------------------------------------------------------------- glossary boxes


def how_to_read_html(terms: Iterable[Term], title: str = "How to read this report") -> str:
    """The glossary's ``terms`` as a small HTML box (name, definition, period)."""
    import html

    items = "".join(
        f"<li><b>{html.escape(t.name)}</b>: {html.escape(t.definition)} "
        f"<i>Period: {html.escape(t.period)}.</i></li>"
        for t in terms
    )
    return (
        '<div class="clm-how-to-read" style="border:1px solid #9bb8d3;background:#f3f8fc;'
        'border-radius:4px;padding:.6em 1em;margin:.8em 0;font-size:.92em">'
        f"<b>{html.escape(title)}.</b> Each measure of customers leaving has its own name, "
        "definition and period; the batch's glossary page lists them all."
        f'<ul style="margin:.4em 0 0 0">{items}</ul></div>'
    )


def how_to_read(*terms: Term, title: str = "How to read this report") -> None:
    """Show :func:`how_to_read_html` in the notebook."""
    from IPython.display import HTML, display

    display(HTML(how_to_read_html(terms, title)))


# ----------------------------------------------------------------------------- raw values

#: What must never reach a reader, in a page's visible text (``inner_text``): missing-value
#: markers, Python's booleans as a table cell, infinity and scientific notation.
RAW_VALUE = re.compile(
    r"(?<![\w<])(?:NaN|nan|None|NaT|inf|-inf)(?![\w>])"
    r"|<NA>"
    r"|(?:^|(?<=\t))[ ]*(?:True|False)[ ]*(?=\t|$)"
    r"|(?<![\w.])[-+]?\d+(?:\.\d+)?[eE][-+]\d+(?!\w)",
    re.MULTILINE,
)


def raw_values(text: str, context: int = 30) -> list[str]:
    """Each raw value in ``text`` (a page's visible text, table cells separated by tabs), as
    the value and ``context`` characters either side, for a message naming it."""
    found = []
    for m in RAW_VALUE.finditer(text):
        around = text[max(0, m.start() - context) : m.end() + context]
        found.append(f"{m.group().strip()!r} in {around!r}")
    return found


# ---------------------------------------------------------------------------------- charts


def date_axis(ax, axis: str = "x"):
    """Dates on ``axis`` that never overlap: matplotlib chooses how many ticks fit and writes
    each once, concisely (years, then months); returns ``ax``."""
    import matplotlib.dates as mdates

    target = ax.xaxis if axis == "x" else ax.yaxis
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    target.set_major_locator(locator)
    target.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for label in ax.get_xticklabels() if axis == "x" else ax.get_yticklabels():
        label.set_rotation(0)
        label.set_horizontalalignment("center")
    return ax


def label_axes(ax, x: str | None = None, y: str | None = None, title: str | None = None):
    """Set the axis labels and title given; returns ``ax``."""
    if x is not None:
        ax.set_xlabel(x)
    if y is not None:
        ax.set_ylabel(y)
    if title is not None:
        ax.set_title(title)
    return ax


def percent_axis(ax, axis: str = "y", decimals: int = 0):
    """Fractions on ``axis`` shown as percentages; returns ``ax``."""
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1, decimals))
    return ax


def thousands_axis(ax, axis: str = "y"):
    """Numbers on ``axis`` with thousands separators, never in scientific notation."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(
        lambda v, _: number(v, 0) if abs(v) >= 10 else number(v, 2).rstrip("0").rstrip(".")
    )
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)
    return ax


def legend_only(ax, shown: Iterable[str], labels: Mapping[str, str] | None = None, **kwargs):
    """Redraw ``ax``'s legend with only the entries whose label is in ``shown`` (the stages
    that occur), relabelled by ``labels``; the legend keeps its place. Returns ``ax``."""
    shown = set(shown)
    old = ax.get_legend()
    handles, names = ax.get_legend_handles_labels()
    keep = [(h, n) for h, n in zip(handles, names, strict=True) if n in shown]
    if old is not None:
        old.remove()
    if keep:
        options = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5), "fontsize": 8, **kwargs}
        ax.legend([h for h, _ in keep], [(labels or {}).get(n, n) for _, n in keep], **options)
    return ax


def occurring(table: pd.DataFrame) -> list[str]:
    """The columns of ``table`` (stages) with a non-zero value somewhere."""
    values = table.fillna(0)
    return [c for c in table.columns if (values[c] != 0).any()]


def stage_areas(ax, table: pd.DataFrame, x: str | None = None, y: str | None = None):
    """Finish a stacked-area chart of ``table`` (stages as columns): a legend of only the
    stages that occur, date axis, labels."""
    legend_only(ax, occurring(table))
    if isinstance(table.index, pd.PeriodIndex | pd.DatetimeIndex):
        date_axis(ax)
    label_axes(ax, x=x, y=y)
    return ax


def kpi_trends(
    series: pd.DataFrame,
    columns: list[str],
    ax=None,
    title: str = "",
    labels: Mapping[str, str] | None = None,
    y: str | None = None,
):
    """Monthly KPIs as lines (``metrics.plot_kpi_trends``) with readable legend labels (the
    glossary's names where given in ``labels``), a date axis, percentages for rates."""
    from .metrics import plot_kpi_trends

    ax = plot_kpi_trends(series, columns, ax=ax, title=title)
    names = [(labels or {}).get(c) or header(c) for c in columns]
    ax.legend(ax.get_lines()[: len(columns)], names, fontsize=8)
    date_axis(ax)
    if all(_key(c) in PERCENT for c in columns):
        percent_axis(ax)
    else:
        thousands_axis(ax)
    label_axes(
        ax, x="month", y=y or ("share" if all(_key(c) in PERCENT for c in columns) else None)
    )
    return ax


def relabel_legend(ax, labels: Mapping[str, str], **kwargs):
    """Redraw ``ax``'s legend with its entries renamed by ``labels`` (the glossary's names
    for the package's keys); entries not in ``labels`` keep their label. Returns ``ax``."""
    handles, names = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, [labels.get(n, n) for n in names], **{"fontsize": 8, **kwargs})
    return ax
