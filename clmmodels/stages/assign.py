"""One lifecycle stage per customer and period, from events and transactions.

The rule, edge by edge (tests in ``tests/test_stages_assign.py`` pin each one):

1. **Signals.** Each event is a signal of the stage its type maps to (the contract's
   vocabulary or the user's mapping; an unknown type is an error listing every unknown type).
   Each transaction is a signal too: ``purchase`` on the calendar day of the customer's first
   transaction (a split first order is still one first purchase), ``retention`` after it.
2. **Several signals in one period:** the stage is that of the period's *latest* signal, so
   it is where the customer stands at the end of the period. Signals at the same instant are
   ordered by the canonical stage order (the later stage wins).
3. **A period without signals:** the customer keeps the previous period's stage, until the
   ``churn_after``-th consecutive period without a signal, which is ``churned`` (as are the
   periods after it). ``churn_after=1`` makes every silent period churned.
4. **An explicit churn event** (``cancel``, ``unsubscribe_all``, ``account_closed``) makes the
   period ``churned``; silence after it stays churned.
5. **Coming back:** a signal after churning sets the stage of that signal again.
6. **Entry and end:** a customer enters in the period of their first signal (no stage
   before it). The grid runs from the earliest period to the period holding the last signal,
   or, when ``end`` is given, to the period holding the day before ``end``; signals on or
   after ``end`` are excluded and counted. The last period may be partial: choose ``end`` on a
   period boundary to avoid that.

Periods are calendar weeks (Monday to Sunday), months or quarters, in UTC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import duck
from ..engines import DEFAULT_ENGINE, SqlEngine, open_engine, timestamp_literal
from ..errors import ClmError
from ..timeunits import STAGE_PERIODS, as_day, unit_name
from ..vocabulary import DEFAULT_EVENT_STAGES, STAGES, check_event_mapping

#: pandas' period of each stage period (weeks from Monday to Sunday).
PERIODS: dict[str, str] = dict(zip(STAGE_PERIODS, ("W-SUN", "M", "Q"), strict=True))
#: ``churn_after`` when none is given: about half a year of silence, in each period.
DEFAULT_CHURN_AFTER: dict[str, int] = {"week": 26, "month": 6, "quarter": 2}

_CHURNED = STAGES.index("churned")
_PURCHASE = STAGES.index("purchase")
_RETENTION = STAGES.index("retention")
_N = len(STAGES)
_MONDAY_EPOCH_DAYS = 4  # 1970-01-05, the first Monday after the epoch


def check_period(period: str) -> str:
    """The name (``"week"``, ``"month"``, ``"quarter"``) of a period given by name or code."""
    return unit_name(period, "WMQ", "period")


def _period_ordinal_sql(ts: str, period: str, epoch_days) -> str:
    if period == "week":
        days = epoch_days(f"CAST({ts} AS DATE)")
        return f"CAST(floor(({days} - {_MONDAY_EPOCH_DAYS}) / 7) AS BIGINT)"
    month = f"((year({ts}) - 1970) * 12 + month({ts}) - 1)"
    return f"CAST(floor({month} / 3) AS BIGINT)" if period == "quarter" else month


def period_index(ordinals: np.ndarray, period: str) -> pd.PeriodIndex:
    """The :class:`pandas.PeriodIndex` of period ordinals as :func:`assign_stages` counts them."""
    if period == "week":
        starts = pd.to_datetime((ordinals * 7 + _MONDAY_EPOCH_DAYS).astype("int64"), unit="D")
        return pd.PeriodIndex(starts, freq=PERIODS[period])
    return pd.PeriodIndex.from_ordinals(ordinals, freq=PERIODS[period])


@dataclass
class StageHistory:
    """Every customer's stage in every period, as :func:`assign_stages` assigned it.

    ``codes[i, t]`` is the index in :data:`~clmmodels.vocabulary.STAGES` of customer ``i`` in
    period ``t``, or -1 before the customer's first signal; ``observed[i, t]`` says whether
    that period had a signal (else the stage was carried forward or set by inactivity).
    """

    customers: pd.Index
    periods: pd.PeriodIndex
    codes: np.ndarray
    observed: np.ndarray
    period: str
    churn_after: int | None
    #: Counts of what was left out, and of the signals used.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_customers(self) -> int:
        return len(self.customers)

    @property
    def stages_seen(self) -> tuple[str, ...]:
        """The stages some customer-period is in, in canonical order: what this data can
        observe (transactions alone show purchase, retention and, by inactivity, churned).
        Matrices and charts show these only: a stage nobody is ever in has no estimate."""
        present = np.bincount(self.codes[self.codes >= 0], minlength=_N) > 0
        return tuple(s for s, seen in zip(STAGES, present, strict=True) if seen)

    def with_churn_after(self, churn_after: int | str = "auto") -> StageHistory:
        """This history (assigned with ``churn_after=None``: silence keeps the stage) with the
        observed rule's churn by silence applied, as :func:`assign_stages` would give it with
        ``churn_after``, without reading the data again."""
        if self.churn_after is not None:
            raise ClmError("with_churn_after needs a history assigned with churn_after=None")
        churn_after = _check_churn_after(churn_after, self.period)
        if churn_after is None:
            return self
        codes = self.codes.copy()
        _churn_by_silence(codes, _last_seen(self.observed), churn_after)
        return dataclasses.replace(self, codes=codes, churn_after=churn_after)

    def subset(self, rows: np.ndarray) -> StageHistory:
        """The history of some customers (a boolean mask or positions in ``customers``), on
        the same period grid."""
        return dataclasses.replace(
            self,
            customers=self.customers[rows],
            codes=self.codes[rows],
            observed=self.observed[rows],
            counts={**self.counts, "customers": len(self.customers[rows])},
        )

    def to_long(self, observed_only: bool = False) -> pd.DataFrame:
        """One row per customer and period present: ``customer_id, period, stage, observed``."""
        rows, cols = np.nonzero(self.observed if observed_only else self.codes >= 0)
        return pd.DataFrame(
            {
                "customer_id": self.customers[rows],
                "period": self.periods[cols],
                "stage": pd.Categorical.from_codes(self.codes[rows, cols], categories=STAGES),
                "observed": self.observed[rows, cols],
            }
        )

    def distribution(self, share: bool = False) -> pd.DataFrame:
        """Customers in each stage (columns, canonical order) per period (rows)."""
        n_t = len(self.periods)
        present = self.codes >= 0
        t = np.broadcast_to(np.arange(n_t), self.codes.shape)[present]
        flat = np.bincount(t * _N + self.codes[present], minlength=n_t * _N)
        out = pd.DataFrame(flat.reshape(n_t, _N), index=self.periods, columns=list(STAGES))
        out.index.name = "period"
        if share:
            out = out.div(out.sum(axis=1).replace(0, np.nan), axis=0)
        return out

    def latest(self) -> pd.Series:
        """Customers per stage in the last period (those who have entered)."""
        return self.distribution().iloc[-1]

    def flows(self, t: int = -1) -> pd.DataFrame:
        """Customers moving from each stage in period ``t - 1`` to each stage in period ``t``."""
        n_t = len(self.periods)
        t = t % n_t
        if t == 0:
            raise ClmError("flows need two periods; period 0 has no previous one")
        a, b = self.codes[:, t - 1], self.codes[:, t]
        both = a >= 0
        flat = np.bincount(a[both] * _N + b[both], minlength=_N * _N).reshape(_N, _N)
        out = pd.DataFrame(flat, index=list(STAGES), columns=list(STAGES))
        out.index.name, out.columns.name = "from", "to"
        return out

    def plot_distribution(self, ax=None, share: bool = True):
        """Stacked area of the stage distribution over time."""
        from .plots import plot_stage_distribution

        return plot_stage_distribution(self, ax=ax, share=share)

    def plot_flows(self, ax=None, t: int = -1):
        """Flows between the stages of two consecutive periods."""
        from .plots import plot_flows

        return plot_flows(self, ax=ax, t=t)


def _unknown_event_error(unknown: list[str], counts: list[int], mapping: Mapping[str, str]):
    shown = ", ".join(f"{u!r} ({c} rows)" for u, c in zip(unknown, counts, strict=True))
    return ClmError(
        f"events: column 'event_type': rule 'one of the vocabulary or the mapping' broken by "
        f"{sum(counts)} rows; unknown types: {shown}. Known types: {', '.join(sorted(mapping))}"
    )


def event_stage_view(sql: SqlEngine, events: str, mapping: Mapping[str, str]) -> str:
    """Register ``mapping`` (event type -> stage) as a view of ``event_type`` and ``code`` (the
    stage's position in :data:`~clmmodels.vocabulary.STAGES`) for joins with the events view
    ``events``; its name. An event type of ``events`` that the mapping lacks is an error
    listing every unknown type."""
    stage_map = sql.table(
        "stage_map",
        pd.DataFrame(
            {"event_type": list(mapping), "code": [STAGES.index(s) for s in mapping.values()]}
        ),
    )
    unknown = sql.df(_UNKNOWN_TYPES_SQL.format(ev=events, stage_map=stage_map))
    if len(unknown):
        raise _unknown_event_error(
            unknown["t"].tolist(), unknown["n"].astype(int).tolist(), mapping
        )
    return stage_map


class Latest(NamedTuple):
    """Each customer's latest signal per period: ``customers`` sorted, and per row the
    customer's position in it, the period ordinal and the stage code."""

    customers: np.ndarray
    customer: np.ndarray
    ordinal: np.ndarray
    code: np.ndarray


# One SQL text for DuckDB and Spark (see clmmodels.engines); {placeholders} are filled per
# engine: the UTC timestamps and microseconds since the epoch.
_TX_SIGNALS_SQL = """
WITH tx AS (
    SELECT CAST(customer_id AS STRING) AS customer_id, {tx_ts} AS ts FROM {tx}
),
tx_first AS (
    SELECT customer_id, min(CAST(ts AS DATE)) AS first_day FROM tx GROUP BY customer_id
)
SELECT customer_id, ts,
       CASE WHEN CAST(ts AS DATE) = first_day THEN {purchase} ELSE {retention} END AS code
FROM tx JOIN tx_first USING (customer_id)
"""

_EVENT_SIGNALS = """
SELECT CAST(e.customer_id AS STRING) AS customer_id, {ev_ts} AS ts, m.code
FROM {ev} e JOIN {stage_map} m ON CAST(e.event_type AS STRING) = m.event_type
"""

_UNKNOWN_TYPES_SQL = """
SELECT t, count(*) AS n FROM (SELECT CAST(event_type AS STRING) AS t FROM {ev})
WHERE t NOT IN (SELECT event_type FROM {stage_map}) GROUP BY t ORDER BY t
"""


def latest_code_sql(us: str, code: str = "code") -> str:
    """SQL aggregate for the stage code of the latest signal: the largest time in
    microseconds ``us``, signals at one instant ordered by stage (the later stage wins). The
    remainder is made non-negative: before 1970 the key is negative."""
    return f"CAST((max({us} * {_N} + {code}) % {_N} + {_N}) % {_N} AS TINYINT)"


# The latest signal per customer and period.
_LATEST_SQL = """
SELECT customer_id, ordinal, {latest} AS code
FROM (SELECT customer_id, {ordinal} AS ordinal, ts, code FROM clm_signals {before_end})
GROUP BY customer_id, ordinal
"""
# Customers numbered in sorted order, so only small integers travel back to Python.
_IDS_SQL = """
SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) - 1 AS INT) AS customer
FROM (SELECT DISTINCT customer_id FROM clm_latest)
"""


def _last_per_period_sql(
    transactions: duck.Source | None,
    events: duck.Source | None,
    mapping: dict[str, str],
    period: str,
    end: pd.Timestamp | None,
    engine: str,
) -> tuple[Latest, int, int | None]:
    """The latest signal per customer and period, the signals on or after ``end`` (counted),
    and the ordinal of the period holding the day before ``end``."""
    with open_engine(engine) as sql:
        parts = []
        if transactions is not None:
            tx = sql.checked("transactions", transactions)
            parts.append(
                _TX_SIGNALS_SQL.format(
                    tx=tx,
                    tx_ts=sql.timestamp(tx, "timestamp"),
                    purchase=_PURCHASE,
                    retention=_RETENTION,
                )
            )
        if events is not None:
            ev = sql.checked("events", events, mapping)
            stage_map = event_stage_view(sql, ev, mapping)
            parts.append(
                _EVENT_SIGNALS.format(
                    ev=ev, ev_ts=sql.timestamp(ev, "timestamp"), stage_map=stage_map
                )
            )
        sql.view("clm_signals", " UNION ALL ".join(parts))
        end_literal = None if end is None else timestamp_literal(end)
        sql.materialize(
            "clm_latest",
            _LATEST_SQL.format(
                ordinal=_period_ordinal_sql("ts", period, sql.epoch_days),
                latest=latest_code_sql(sql.epoch_us("ts")),
                before_end="" if end is None else f"WHERE ts < {end_literal}",
            ),
        )
        sql.materialize("clm_ids", _IDS_SQL)
        rows = sql.df(
            "SELECT customer, CAST(ordinal AS BIGINT) AS ordinal, code "
            "FROM clm_latest JOIN clm_ids USING (customer_id)"
        )
        names = sql.df("SELECT customer_id FROM clm_ids ORDER BY customer")
        out = Latest(
            names["customer_id"].to_numpy().astype(str),
            rows["customer"].to_numpy(),
            rows["ordinal"].to_numpy(),
            rows["code"].to_numpy().astype(np.int8),
        )
        excluded, end_ordinal = 0, None
        if end is not None:
            late = f"SELECT count(*) AS n FROM clm_signals WHERE ts >= {end_literal}"
            excluded = int(sql.df(late)["n"].iloc[0])
            day_before = timestamp_literal(end - pd.Timedelta(days=1))
            ordinal = _period_ordinal_sql(day_before, period, sql.epoch_days)
            end_ordinal = int(sql.df(f"SELECT CAST({ordinal} AS BIGINT) AS o")["o"].iloc[0])
    return out, excluded, end_ordinal


def _check_churn_after(churn_after: int | str | None, period: str) -> int | None:
    """``churn_after`` as a whole number of periods (``"auto"``: about half a year), or None."""
    if churn_after == "auto":
        churn_after = DEFAULT_CHURN_AFTER[period]
    if churn_after is not None and (int(churn_after) != churn_after or churn_after < 1):
        raise ClmError(f"churn_after must be a whole number of periods >= 1, got {churn_after}")
    return None if churn_after is None else int(churn_after)


def _last_seen(observed: np.ndarray) -> np.ndarray:
    """Index of the latest observed period at or before each period (-1: not entered yet)."""
    seen = np.where(observed, np.arange(observed.shape[1], dtype=np.int32), -1)
    np.maximum.accumulate(seen, axis=1, out=seen)
    return seen


def _churn_by_silence(codes: np.ndarray, seen: np.ndarray, churn_after: int) -> None:
    """Rule 3's churn: from the ``churn_after``-th silent period in a row, ``churned`` (in
    place)."""
    silent_for = np.arange(codes.shape[1], dtype=np.int32) - seen
    codes[(seen >= 0) & (silent_for >= churn_after)] = _CHURNED


def _fill(
    last: Latest, churn_after: int | None, end_ordinal: int | None
) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """Dense (customer x period) codes from the latest signal per period, by rules 3-6."""
    customers, cust, ordinal = last.customers, last.customer, last.ordinal
    first = int(ordinal.min())
    last_ord = int(ordinal.max()) if end_ordinal is None else end_ordinal
    n_t = last_ord - first + 1
    t = ordinal - first
    obs_code = np.full((len(customers), n_t), -1, dtype=np.int8)
    obs_code[cust, t] = last.code
    observed = obs_code >= 0
    seen = _last_seen(observed)
    rows = np.arange(len(customers))[:, None]
    codes = np.where(seen >= 0, obs_code[rows, np.maximum(seen, 0)], -1).astype(np.int8)
    if churn_after is not None:
        _churn_by_silence(codes, seen, churn_after)
    ordinals = np.arange(first, last_ord + 1)
    return pd.Index(customers, name="customer_id"), ordinals, codes, observed


def assign_stages(
    transactions: duck.Source | None,
    events: duck.Source | None = None,
    *,
    period: str = "month",
    churn_after: int | str | None = "auto",
    event_stages: Mapping[str, str] | None = None,
    end: str | pd.Timestamp | None = None,
    engine: str = DEFAULT_ENGINE,
) -> StageHistory:
    """Assign every customer one lifecycle stage per period (the rule is in the module doc).

    Parameters
    ----------
    transactions, events
        Tables in the shape of the data contract: DataFrames or CSV/Parquet paths or globs;
        Spark also takes pyspark DataFrames; either may be ``None``, not both. Without
        events, stages come from transactions alone (purchase, retention, and churned by
        inactivity); without transactions, from events alone (purchases are then the events
        whose type maps to ``purchase`` or ``retention``, e.g. ``purchase`` and
        ``repeat_purchase``).
    period
        ``"week"``, ``"month"`` or ``"quarter"``.
    churn_after
        Consecutive periods without a signal after which a customer is churned; ``None``
        never churns by inactivity; ``"auto"`` is about half a year (:data:`DEFAULT_CHURN_AFTER`).
    event_stages
        Mapping of event type to stage; the contract's vocabulary by default.
    end
        Day after the last one observed (exclusive), ISO 8601; signals from it on are excluded
        and counted. By default the grid ends at the period of the latest signal.
    engine
        ``"duckdb"`` (default) or ``"spark"``, for files or frames (the same result; one SQL
        text for both).

    Returns
    -------
    StageHistory

    Examples
    --------
    >>> tx = pd.DataFrame({"customer_id": ["a", "a"], "amount": [5.0, 7.0],
    ...                    "timestamp": pd.to_datetime(["2024-01-03", "2024-03-09"])})
    >>> h = assign_stages(tx, period="month", churn_after=None)
    >>> h.to_long()["stage"].tolist()
    ['purchase', 'purchase', 'retention']
    """
    period = check_period(period)
    if transactions is None and events is None:
        raise ClmError("stages need transactions or events (or both); neither was given")
    churn_after = _check_churn_after(churn_after, period)
    mapping = check_event_mapping(event_stages or DEFAULT_EVENT_STAGES)
    end_ts = None if end is None else as_day(end, "end")
    last, excluded, end_ordinal = _last_per_period_sql(
        transactions, events, mapping, period, end_ts, engine
    )
    if len(last.code) == 0:
        raise ClmError("no transactions or events before the end: nothing to assign stages to")
    customers, ordinals, codes, observed = _fill(last, churn_after, end_ordinal)
    return StageHistory(
        customers=customers,
        periods=period_index(ordinals, period),
        codes=codes,
        observed=observed,
        period=period,
        churn_after=churn_after,
        counts={
            "customers": len(customers),
            "customer_periods_observed": int(observed.sum()),
            "signals_after_end": excluded,
        },
    )
