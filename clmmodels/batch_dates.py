"""The report batch's dates: derived from the data, or from one month (``clm reports --as-of``).

A batch is as of one month, *M*. By default *M* is each dataset's last complete month (the
last calendar month its transactions cover to the end); ``--as-of YYYY-MM`` sets it for every
dataset, as if the data ended at the end of that month. Every run's date parameters that the
config leaves unset derive from *M*, by name, where the run's notebook accepts them:

==================  ============================================  ===========================
parameter           value                                          notebooks
==================  ============================================  ===========================
``month``           *M* (``YYYY-MM``)                              summary
``observation_end`` the last day of *M*                            clv, data_quality
``calibration_end`` the last day of *M* minus :data:`HOLDOUT_MONTHS`  clv, data_quality
``as_of``           the first day after *M* (data before it)       customers
``end``             the first day after *M* (exclusive)            retention, stages
``backtest_as_of``  the first day after *M* minus ``horizon_days``  churn
==================  ============================================  ===========================

So the CLV models are validated on the :data:`HOLDOUT_MONTHS` months up to the end of *M*
after being fitted on everything before. A date the config sets is kept, and checked.

Range rules: *M* after the last complete month of every dataset of the batch, *M* or its
calibration end before a dataset's first month, and a configured date outside a dataset's
data are errors (:class:`~clmmodels.errors.ClmError`, one line). A dataset that ends before
``--as-of`` is reported as of its own last complete month, with a warning; so is a run whose
notebook cannot stop at *M* (it has no such date parameter) while the data go on after it.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ClmError

#: Months between the CLV calibration end and the observation end: the holdout the models are
#: validated on (CDNOW's classic split, 1997-09-30 to 1998-06-30, is 9 months).
HOLDOUT_MONTHS = 9

#: Date parameters that derive from the batch's month (see the module's table).
DERIVED = ("month", "observation_end", "calibration_end", "as_of", "end", "backtest_as_of")
BACKTEST = "backtest_as_of"
#: Parameters that stop a notebook's data at the month's end: without one, a notebook uses
#: all the data.
CUTOFFS = ("month", "observation_end", "as_of", "end")
#: Date parameters checked against the data when the config sets them.
CHECKED = (*DERIVED, "start")

_MONTH = re.compile(r"\d{4}-\d{2}")


def parse_month(text: str, what: str = "--as-of") -> pd.Period:
    """``YYYY-MM`` as a month; a one-line :class:`ClmError` otherwise."""
    text = str(text).strip()
    if not _MONTH.fullmatch(text):
        raise ClmError(f"{what} must be a month like 2024-06, not {text!r}")
    try:
        return pd.Period(text, freq="M")
    except (ValueError, TypeError):
        raise ClmError(f"{what} must be a month like 2024-06, not {text!r}") from None


@dataclass(frozen=True)
class DataSpan:
    """The days a dataset's transactions (or, without them, its events) cover."""

    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def last_complete_month(self) -> pd.Period:
        """The last calendar month the data cover to its last day."""
        p = self.last.to_period("M")
        return p if self.last.normalize() == p.end_time.normalize() else p - 1

    @property
    def first_month(self) -> pd.Period:
        return self.first.to_period("M")

    def text(self) -> str:
        return f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}"


def month_dates(month: pd.Period, holdout_months: int = HOLDOUT_MONTHS) -> dict[str, str]:
    """The derived date parameters of ``month`` (``backtest_as_of`` needs a horizon: see
    :func:`backtest_as_of`).

    Examples
    --------
    >>> month_dates(pd.Period("1998-06", "M"))["calibration_end"]
    '1997-09-30'
    """
    after = (month + 1).start_time
    return {
        "month": str(month),
        "observation_end": _day(month.end_time),
        "calibration_end": _day((month - holdout_months).end_time),
        "as_of": _day(after),
        "end": _day(after),
    }


def backtest_as_of(month: pd.Period, horizon_days: int) -> str:
    """The latest backtest snapshot whose horizon ends with ``month``."""
    return _day((month + 1).start_time - pd.Timedelta(days=int(horizon_days)))


def _day(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d}"


@functools.lru_cache(maxsize=64)
def _inspect(path: str, mtime: float) -> dict:
    import papermill as pm

    return pm.inspect_notebook(path)


def notebook_parameters(notebook: str | Path) -> dict:
    """The parameters a notebook's ``parameters`` cell declares (papermill's inspection),
    name to its details (``default``, ``help``); empty when it declares none."""
    p = Path(notebook)
    return _inspect(str(p.resolve()), p.stat().st_mtime)


def unknown_parameters(notebook: str | Path, given: dict) -> str | None:
    """Why ``given`` does not fit ``notebook``'s parameters cell, or None: each name it does
    not declare, and the names it does. A notebook that declares none is not checked."""
    accepted = notebook_parameters(notebook)
    unknown = [k for k in given if k not in accepted]
    if not accepted or not unknown:
        return None
    names = ", ".join(repr(k) for k in unknown)
    return (
        f"unknown parameter{'s' if len(unknown) > 1 else ''} {names} for "
        f"{Path(notebook).name}; it accepts: {', '.join(accepted)}"
    )


def dataset_label(dataset: str) -> str:
    """A dataset's short name: its folder's name (``data/simulated`` -> ``simulated``)."""
    return Path(str(dataset)).name or str(dataset)


def load_span(dataset: str, cwd: Path) -> DataSpan:
    """The span of ``dataset``'s transactions, or of its events if it has no transactions (a
    folder relative to ``cwd`` or a bundled name), as the notebooks, which run in ``cwd``,
    see it."""
    from .dataset import load_dataset

    folder = Path(cwd) / dataset
    ds = load_dataset(folder if folder.exists() else dataset, tables=["transactions"])
    if ds.transactions is None:  # an events-only log: its events are its activity
        ds = load_dataset(folder if folder.exists() else dataset, tables=["events"])
        ts = ds.require("events", "the batch's dates (transactions, or else events)")
    else:
        ts = ds.transactions
    ts = ts["timestamp"]
    return DataSpan(pd.Timestamp(ts.min()), pd.Timestamp(ts.max()))


@dataclass
class Plan:
    """A batch with its dates: the month it is as of, its runs with their date parameters
    (and warnings of their own in ``notes``), what each dataset is as of, and the datasets'
    warnings."""

    month: pd.Period
    runs: list
    as_of: dict[str, pd.Period] = dataclasses.field(default_factory=dict)
    spans: dict[str, DataSpan] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
    #: The warning of each dataset that ends before the month (also atop its reports).
    ended: dict[str, str] = dataclasses.field(default_factory=dict)


def plan_batch(
    runs: list,
    as_of: str | None = None,
    holdout_months: int = HOLDOUT_MONTHS,
    spans: dict[str, DataSpan] | None = None,
    today: datetime.date | None = None,
    checked: Iterable[str] | None = None,
) -> Plan:
    """The runs with their date parameters derived (see the module's docstring).

    Parameters
    ----------
    runs
        :class:`~clmmodels.reports.Run` objects, from ``load_config``.
    as_of
        ``YYYY-MM``: render as if every dataset ended at the end of that month.
    spans
        Known spans by dataset (else each is read, once, when a run on it takes a date).
    checked
        Names of the runs whose datasets are checked against the month (the runs that will
        execute, ``--only``); by default all. The others get their dates without a check.
    """
    month = parse_month(as_of) if as_of is not None else None
    accepted = {r.name: _accepted(r) for r in runs}
    spans = dict(spans or {})
    unreadable: dict[str, str] = {}
    for r in runs:
        dated = set(accepted[r.name]) & set(CHECKED) or set(r.parameters) & set(CHECKED)
        if dated and r.dataset not in spans and r.dataset not in unreadable:
            try:
                spans[r.dataset] = load_span(r.dataset, r.cwd)
            except Exception as err:  # the run fails on it and says why
                unreadable[r.dataset] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
    used = {d: s for d, s in spans.items() if any(r.dataset == d for r in runs)}
    names = set(checked) if checked is not None else {r.name for r in runs}
    tested = {
        d: s for d, s in used.items() if any(r.dataset == d and r.name in names for r in runs)
    }
    if month is not None and tested:
        latest = max(s.last_complete_month for s in tested.values())
        if month > latest:
            where = "; ".join(f"{dataset_label(d)}: {s.text()}" for d, s in tested.items())
            raise ClmError(
                f"--as-of {month} is after the data: the last complete month is {latest} ({where})"
            )
    if month is None:
        month = (
            max(s.last_complete_month for s in used.values())
            if used
            else pd.Period(today or datetime.date.today(), freq="M") - 1
        )
    plan = Plan(month=month, runs=[], spans=used)
    for d, s in used.items():
        own = min(month, s.last_complete_month)
        plan.as_of[d] = own
        if d not in tested:
            continue
        if as_of is not None and own < month:
            plan.warnings.append(
                f"{dataset_label(d)}: the data end on {s.last:%Y-%m-%d}, before the end of "
                f"{month}; its reports are as of {own}, its last complete month"
            )
            plan.ended[d] = plan.warnings[-1]
        calibrated = any(
            r.dataset == d
            and "calibration_end" in accepted[r.name]
            and "calibration_end" not in r.parameters
            for r in runs
        )
        earliest = s.first_month + (holdout_months if calibrated else 0)
        if own < earliest:
            why = (
                f"the CLV calibration needs {holdout_months} months before it"
                if calibrated
                else "no data before it"
            )
            raise ClmError(
                f"--as-of {own}: too early for {dataset_label(d)} ({s.text()}): {why}; "
                f"the earliest month is {earliest}"
            )
    for r in runs:
        plan.runs.append(_dated_run(r, accepted[r.name], plan, holdout_months, unreadable))
    return plan


def _accepted(run) -> dict:
    try:
        return notebook_parameters(run.notebook)
    except Exception:  # an unreadable notebook fails its run when it executes
        return {}


def _dated_run(run, accepted: dict, plan: Plan, holdout_months: int, unreadable: dict):
    span = plan.spans.get(run.dataset)
    if span is None:
        if run.dataset in unreadable and set(accepted) & set(DERIVED):
            why = unreadable[run.dataset]
            note = f"{run.name}: no dates derived, the dataset cannot be read ({why})"
            return dataclasses.replace(run, notes=(*run.notes, note))
        return run
    month = plan.as_of[run.dataset]
    derived = month_dates(month, holdout_months)
    params = dict(run.parameters)
    for name, value in params.items():
        if name in CHECKED and value is not None:
            _check_date(run, name, value, span, month)
    for name in DERIVED:
        if name not in accepted or name in params:
            continue
        if name == "backtest_as_of":
            params[name] = backtest_as_of(month, _horizon(params, accepted))
        else:
            params[name] = derived[name]
    notes = list(run.notes)
    if run.dataset in plan.ended:
        notes.append(plan.ended[run.dataset])
    end = month.end_time.normalize()
    if accepted and not set(accepted) & set(CUTOFFS) and span.last.normalize() > end:
        notes.append(
            f"{run.name}: {Path(run.notebook).name} takes no date that ends its data, so it uses "
            f"all of {dataset_label(run.dataset)}'s data (to {span.last:%Y-%m-%d}), not only "
            f"the data up to {end:%Y-%m-%d}"
            + (f"; its backtest is as of {params[BACKTEST]}" if BACKTEST in params else "")
        )
    return dataclasses.replace(run, parameters=params, notes=tuple(notes))


def _horizon(params: dict, accepted: dict) -> int:
    value = params.get("horizon_days", accepted.get("horizon_days", {}).get("default", 90))
    try:
        return int(value)
    except (TypeError, ValueError):
        return 90


def _check_date(run, name: str, value: object, span: DataSpan, month: pd.Period) -> None:
    """A date the config sets must lie within the data and not after the batch's month."""
    try:
        day = parse_month(str(value), name).start_time if name == "month" else pd.Timestamp(value)
    except (ClmError, ValueError, TypeError):
        return  # not a date: the notebook says what it expects
    first, after = span.first.normalize(), span.last.normalize() + pd.Timedelta(days=1)
    where = f"run {run.name!r}: {name} {value}"
    if not first <= day <= after:
        raise ClmError(f"{where} is outside {dataset_label(run.dataset)}'s data ({span.text()})")
    if day > (month + 1).start_time:
        raise ClmError(f"{where} is after the batch's month ({month})")
