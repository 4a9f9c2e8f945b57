"""Snapshot features as of a date, from rows strictly before it, and the churn label.

Every feature reads only rows with ``timestamp < as_of`` (tests add rows after ``as_of`` and
check that no feature moves). Customers are those with at least one transaction before it.

The per-customer aggregations are one SQL text for DuckDB and Spark (see
:mod:`clmmodels.engines`): DuckDB reads the dataset's frames in place, or the files a dataset
left for it (``load_dataset(..., in_files=("transactions", "events"))``) without loading them,
so a million customers' events never become a pandas frame. Amounts are summed as decimals
and gaps as integers: the same data give the same features, bit for bit, on either engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import Dataset
from ..engines import DEFAULT_ENGINE, SqlEngine, open_engine, timestamp_literal
from ..errors import ClmError
from ..timeunits import as_day
from ..vocabulary import STAGES

#: Look-back windows of the recency/frequency/spend features, in days.
WINDOWS: tuple[int, ...] = (30, 90, 180, 365)
_DAY = pd.Timedelta(days=1)
_EPOCH = pd.Timestamp("1970-01-01")

# One purchase occasion per customer and calendar day (UTC), as in the BTYD models; ``age`` is
# whole days from the occasion to the as-of day, ``gap`` days since the occasion before.
_TRANSACTIONS_SQL = """
WITH daily AS (
    SELECT CAST(customer_id AS STRING) AS customer_id, {day} AS day,
           sum(CAST(amount AS DECIMAL(38, 9))) AS amount
    FROM {tx} WHERE {ts} < {at}
    GROUP BY CAST(customer_id AS STRING), {day}
),
aged AS (
    SELECT customer_id, amount, {at_days} - {days} AS age,
           {days} - lag({days}) OVER (PARTITION BY customer_id ORDER BY day) AS gap,
           row_number() OVER (PARTITION BY customer_id ORDER BY day DESC) AS from_last
    FROM daily
)
SELECT customer_id,
       CAST(min(age) AS DOUBLE) AS recency_days,
       CAST(max(age) AS DOUBLE) AS tenure_days,
       count(*) AS purchase_days,
       CAST(sum(amount) AS DOUBLE) AS total_spend,
       {windows}
       CAST(coalesce(sum(CASE WHEN age <= 90 THEN amount END), 0)
            - coalesce(sum(CASE WHEN age > 90 AND age <= 180 THEN amount END), 0) AS DOUBLE)
           AS spend_trend_90d,
       count(gap) AS n_gaps,
       CAST(count(gap) * sum(gap * gap) - sum(gap) * sum(gap) AS DOUBLE) AS gap_spread,
       CAST(max(CASE WHEN from_last = 1 THEN gap END) AS DOUBLE) AS last_gap_days
FROM aged
GROUP BY customer_id
"""
_WINDOW_SQL = """count(CASE WHEN age <= {w} THEN 1 END) AS purchases_{w}d,
       CAST(coalesce(sum(CASE WHEN age <= {w} THEN amount END), 0) AS DOUBLE) AS spend_{w}d,
"""
# Events per stage in the last 90 days, whole days since the last event's calendar day, and
# the last event's stage (events at the same instant: the later stage in the contract's order,
# as the stage assignment orders them: the one formula, stages.assign.latest_code_sql).
_EVENTS_SQL = """
SELECT customer_id,
       {counts}
       CAST({at_days} - max({days}) AS DOUBLE) AS days_since_event,
       {latest} AS last_code
FROM (SELECT CAST(e.customer_id AS STRING) AS customer_id, {ts} AS ts, m.code
      FROM {ev} e JOIN {stage_map} m ON CAST(e.event_type AS STRING) = m.event_type) AS s
WHERE ts < {at}
GROUP BY customer_id
"""
# A customer's latest answer of one score (answers at the same instant: the higher).
_SURVEY_SQL = """
WITH answers AS (
    SELECT CAST(customer_id AS STRING) AS customer_id, {ts} AS ts,
           CAST({score} AS DOUBLE) AS score
    FROM {sv} WHERE {score} IS NOT NULL AND {ts} < {at}
),
latest AS (SELECT customer_id, max(ts) AS ts FROM answers GROUP BY customer_id)
SELECT customer_id, max(score) AS last_{score}
FROM answers JOIN latest USING (customer_id, ts)
GROUP BY customer_id
"""
#: The transaction features' columns, in the order the classifiers see them.
_TX_COLUMNS = (
    ["recency_days", "tenure_days", "purchase_days", "total_spend", "mean_spend"]
    + [f"{kind}_{w}d" for w in WINDOWS for kind in ("purchases", "spend")]
    + ["spend_trend_90d", "mean_gap_days", "std_gap_days", "last_gap_days", "overdue_ratio"]
)


def _epoch_days(day: pd.Timestamp) -> int:
    return int((day - _EPOCH) / _DAY)


def _transaction_features(sql: SqlEngine, tx: str, at: pd.Timestamp, windows) -> pd.DataFrame:
    ts = sql.timestamp(tx, "timestamp")
    out = sql.df(
        _TRANSACTIONS_SQL.format(
            tx=tx, ts=ts, day=f"CAST({ts} AS DATE)", days=sql.epoch_days("day"),
            at=timestamp_literal(at), at_days=_epoch_days(at),
            windows="".join(_WINDOW_SQL.format(w=int(w)) for w in windows),
        )
    ).set_index("customer_id")  # fmt: skip
    n_gaps, spread = out.pop("n_gaps").astype(float), out.pop("gap_spread")
    out["purchase_days"] = out["purchase_days"].astype("int64")
    for w in windows:
        out[f"purchases_{w}d"] = out[f"purchases_{w}d"].astype("int64")
    out["mean_spend"] = out["total_spend"] / out["purchase_days"]
    with np.errstate(invalid="ignore", divide="ignore"):
        # Gaps are whole days: the spread n*sum(g^2) - sum(g)^2 is exact, so is the variance.
        out["mean_gap_days"] = np.where(
            n_gaps > 0, (out["tenure_days"] - out["recency_days"]) / n_gaps, np.nan
        )
        out["std_gap_days"] = np.where(
            n_gaps > 1, np.sqrt(spread / (n_gaps * (n_gaps - 1))), np.nan
        )
        # How overdue the next purchase is, in the customer's own rhythm.
        out["overdue_ratio"] = out["recency_days"] / out["mean_gap_days"]
    columns = [c for c in _TX_COLUMNS if c in out.columns]
    return out[columns + [c for c in out.columns if c not in columns]].sort_index()


def event_features(
    ds: Dataset, as_of: str | pd.Timestamp, engine: str = DEFAULT_ENGINE
) -> pd.DataFrame:
    """Every customer with an event before ``as_of`` (sorted ``customer_id``): events per
    stage in the 90 days before it, ``days_since_event`` (whole days from the last event's
    calendar day to ``as_of``) and ``last_event_stage``; empty without events."""
    at = as_day(as_of, "as_of")
    events = ds.source("events")
    if events is None:
        return pd.DataFrame(index=pd.Index([], name="customer_id"))
    with open_engine(engine) as sql:
        return _event_features(sql, events, ds.event_stages, at)


def _event_features(sql: SqlEngine, events, stages: dict[str, str], at: pd.Timestamp):
    """The features of the events ``events`` (a frame or a file: checked here, its event
    types against ``stages``)."""
    from ..stages.assign import event_stage_view, latest_code_sql

    ev = sql.checked("events", events, stages)
    ts = sql.timestamp(ev, "timestamp")
    recent = timestamp_literal(at - pd.Timedelta(days=90))
    counts = "".join(
        f"count(CASE WHEN ts >= {recent} AND code = {i} THEN 1 END) AS events_{s}_90d,\n       "
        for i, s in enumerate(STAGES)
    )
    out = sql.df(
        _EVENTS_SQL.format(
            ev=ev, ts=ts, stage_map=event_stage_view(sql, ev, stages), counts=counts,
            days=sql.epoch_days("CAST(ts AS DATE)"), latest=latest_code_sql(sql.epoch_us("ts")),
            at=timestamp_literal(at), at_days=_epoch_days(at),
        )
    ).set_index("customer_id")  # fmt: skip
    for s in STAGES:
        out[f"events_{s}_90d"] = out[f"events_{s}_90d"].astype("int64")
    code = out.pop("last_code").astype(int).to_numpy()
    out["last_event_stage"] = np.array(STAGES, dtype=object)[code]
    return out.sort_index()


def _reindexed_events(found: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Event features of the customers ``index``: no event is 0 of each stage, NaN else."""
    out = found.reindex(index)
    for s in STAGES:
        out[f"events_{s}_90d"] = out[f"events_{s}_90d"].fillna(0).astype("int64")
    out["last_event_stage"] = out["last_event_stage"].astype(object)
    return out


def _survey_features(sql: SqlEngine, sv: str, at: pd.Timestamp, index) -> pd.DataFrame:
    columns = set(sql.df(f"SELECT * FROM {sv} LIMIT 0").columns)
    ts = sql.timestamp(sv, "timestamp")
    out = pd.DataFrame(index=index)
    for score in ("nps", "csat"):
        if score in columns:
            query = _SURVEY_SQL.format(sv=sv, ts=ts, score=score, at=timestamp_literal(at))
            out[f"last_{score}"] = sql.df(query).set_index("customer_id")[f"last_{score}"]
    return out.astype(float)


def _customer_features(customers: pd.DataFrame, as_of, index) -> pd.DataFrame:
    c = customers.set_index("customer_id").reindex(index)
    acquired = c.pop("acquired_at")
    c["days_since_acquired"] = ((as_of - acquired) / _DAY).where(acquired < as_of)
    for col in c.columns:
        if not pd.api.types.is_numeric_dtype(c[col]):
            # Text as object with NaN for missing: customers absent from the customers table
            # (the contract allows it) would carry pandas' NA, which scikit-learn's imputer
            # cannot compare ("boolean value of NA is ambiguous").
            text = c[col].astype("string")
            c[col] = text.astype(object).where(text.notna(), np.nan)
    return c


def purchase_model_features(
    tx, as_of: pd.Timestamp, horizon_days: int, index: pd.Index, engine: str = DEFAULT_ENGINE
) -> pd.DataFrame:
    """BG/NBD's view of each customer, fitted on the transactions before ``as_of`` only:
    P(alive), expected purchases and P(no purchase) over the next ``horizon_days``. A
    classifier given them sees everything the purchase model sees, so it need not lose to it.
    ``tx``: the transactions as a frame or a file (:func:`clmmodels.rfm.rfm_summary` leaves
    out those from ``as_of`` on).
    """
    import warnings

    from ..clv import BetaGeoModel
    from ..errors import ClmWarning
    from ..rfm import rfm_summary

    rfm = rfm_summary(tx, as_of - _DAY, freq="W", engine=engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClmWarning)  # the backtest reports the fit's own
        bg = BetaGeoModel().fit(rfm, standard_errors=False)
    rfm = rfm.reindex(index)
    return pd.DataFrame(
        {
            "bgnbd_p_alive": bg.p_alive(rfm).to_numpy(),
            "bgnbd_expected_purchases": bg.expected_purchases(rfm, days=horizon_days).to_numpy(),
            "bgnbd_p_no_purchase": bg.p_no_purchase(rfm, days=horizon_days).to_numpy(),
        },
        index=index,
    )


def snapshot_features(
    ds: Dataset,
    as_of: str | pd.Timestamp,
    windows: tuple[int, ...] = WINDOWS,
    horizon_days: int = 90,
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """Features of every customer with a transaction before ``as_of``, from earlier rows only.

    Parameters
    ----------
    ds
        The dataset; events, surveys and customers add features when present. Transactions
        and events may be frames or files left for the engine (:meth:`Dataset.source`).
    as_of
        Snapshot date (ISO 8601); only rows with ``timestamp < as_of`` are read.
    windows
        Look-back windows in days for purchase counts and spend.
    horizon_days
        The churn horizon: BG/NBD's expected purchases and P(no purchase) cover it. A model
        scores features made with the horizon it was trained on (``attrs["horizon_days"]``).
    engine
        ``"duckdb"`` or ``"spark"``: where the per-customer aggregations run.

    Returns
    -------
    pandas.DataFrame
        One row per customer (sorted ``customer_id``): recency, tenure, purchase days, spend,
        per-window purchases and spend, spend trend, inter-purchase gaps, BG/NBD's P(alive),
        expected purchases and P(no purchase) (:func:`purchase_model_features`), events per
        stage in the last 90 days, whole days since the last event's day and its stage, the
        latest NPS/CSAT and the ``customers`` attributes. Text columns are objects
        (categorical features); absent values are NaN.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> X = snapshot_features(load_dataset("cdnow_sample"), "1997-10-01")
    >>> X.loc["00004", ["recency_days", "purchase_days", "purchases_90d"]].tolist()
    [60.0, 3.0, 1.0]
    """
    at = as_day(as_of, "as_of")
    tx = ds.require_source("transactions", "churn features")
    with open_engine(engine) as sql:
        out = _transaction_features(sql, sql.checked("transactions", tx), at, windows)
        if out.empty:
            raise ClmError(f"no transactions before {at.date()}: no customers to describe")
        events, surveys = ds.source("events"), ds.source("surveys")
        parts = []
        if events is not None:
            found = _event_features(sql, events, ds.event_stages, at)
            parts.append(_reindexed_events(found, out.index))
        if surveys is not None:
            parts.append(_survey_features(sql, sql.table("surveys", surveys), at, out.index))
    out = out.join(purchase_model_features(tx, at, horizon_days, out.index, engine))
    for part in parts:
        out = out.join(part)
    if ds.customers is not None:
        out = out.join(_customer_features(ds.customers, at, out.index))
    out.index.name = "customer_id"
    out.attrs["horizon_days"] = horizon_days
    return out


_SPAN_SQL = "SELECT min({ts}) AS first, max({ts}) AS last FROM {tx}"


def transaction_span(
    ds: Dataset, engine: str = DEFAULT_ENGINE
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and the last transaction's timestamps."""
    with open_engine(engine) as sql:
        tx = sql.checked("transactions", ds.require_source("transactions", "churn labels"))
        row = sql.df(_SPAN_SQL.format(ts=sql.timestamp(tx, "timestamp"), tx=tx)).iloc[0]
    return pd.Timestamp(row["first"]), pd.Timestamp(row["last"])


def data_end(ds: Dataset, engine: str = DEFAULT_ENGINE) -> pd.Timestamp:
    """The day after the latest transaction: the data covers [.., data_end)."""
    return transaction_span(ds, engine)[1].normalize() + _DAY


_BOUGHT_SQL = """
SELECT DISTINCT CAST(customer_id AS STRING) AS customer_id FROM {tx}
WHERE {ts} >= {start} AND {ts} < {stop}
"""


def churn_labels(
    ds: Dataset,
    customers: pd.Index,
    as_of: str | pd.Timestamp,
    horizon_days: int,
    engine: str = DEFAULT_ENGINE,
) -> pd.Series:
    """1 for each customer with no transaction in ``[as_of, as_of + horizon_days)``, else 0.

    Raises a :class:`ClmError` when the data ends before the label window does.
    """
    at = as_day(as_of, "as_of")
    stop = at + pd.Timedelta(days=horizon_days)
    end = data_end(ds, engine)
    if stop > end:
        raise ClmError(
            f"churn labels at {at.date()} need transactions up to {(stop - _DAY).date()}, "
            f"but the data ends on {(end - _DAY).date()}; use an earlier date or a shorter horizon"
        )
    with open_engine(engine) as sql:
        tx = sql.checked("transactions", ds.require_source("transactions", "churn labels"))
        bought = sql.df(
            _BOUGHT_SQL.format(
                tx=tx, ts=sql.timestamp(tx, "timestamp"), start=timestamp_literal(at),
                stop=timestamp_literal(stop),
            )
        )["customer_id"]  # fmt: skip
    return pd.Series((~customers.isin(bought)).astype(int), index=customers, name="churned")
