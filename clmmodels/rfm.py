"""RFM summaries for the BTYD models, from raw transactions.

Definitions (the data contract's): a customer's transactions on one calendar day are one
purchase occasion; ``frequency`` counts repeat purchase days (occasions after the first);
``recency`` is the time from the first to the last occasion and ``T`` from the first occasion
to the observation end, in continuous time (days / 7 for weeks); ``monetary_value`` is the
mean of the repeat occasions' totals (0 without repeats). The observation end is the last
calendar day observed: occasions on it count, and time is measured to its start, as in the
CDNOW literature.

One SQL text, two engines: ``"duckdb"`` (the default) on a DataFrame, read in place, or
straight on CSV/Parquet files (globs too) without loading them whole, and ``"spark"`` (the
optional extra) on a pyspark DataFrame or files, locally or on a cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import duck
from .engines import DEFAULT_ENGINE, open_engine
from .errors import ClmError
from .per_customer import customers_sql
from .timeunits import as_day, check_freq, days_to_units

# Per customer: first/last calibration day, calibration purchase days, their total, the first
# day's total, and the holdout days and total.
_AGG_COLUMNS = [
    "first_day",
    "last_day",
    "n_days",
    "total",
    "first_total",
    "n_holdout",
    "total_holdout",
]


def _aggregate(
    source: duck.Source, cal_end: pd.Timestamp, obs_end: pd.Timestamp, engine: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    with open_engine(engine) as sql:
        name = sql.checked("transactions", source)
        day = sql.day(name, "timestamp")
        return _typed(sql.df(customers_sql(name, day, cal_end, obs_end) + " ORDER BY customer_id"))


def _typed(out: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The engine's result as pandas, indexed by customer, in the aggregates' dtypes: customers
    with a calibration purchase, and the counts of what is left out."""
    counts = {
        "after": int(out["n_after"].sum()),
        "customers": int(((out["n_days"] > 0) | (out["n_holdout"] > 0)).sum()),
    }
    out = out.loc[out["n_days"] > 0].set_index("customer_id")[_AGG_COLUMNS]
    out["first_day"] = pd.to_datetime(out["first_day"]).astype("datetime64[ns]")
    out["last_day"] = pd.to_datetime(out["last_day"]).astype("datetime64[ns]")
    out["n_days"] = out["n_days"].astype("int64")
    out["n_holdout"] = out["n_holdout"].astype("int64")
    out["total_holdout"] = out["total_holdout"].astype("float64")
    return out, counts


def rfm_from_aggregates(agg: pd.DataFrame, cal_end: pd.Timestamp, freq: str) -> pd.DataFrame:
    """RFM from per-customer aggregates (days as datetime64 of any unit), in numpy: the batch
    scorer calls it once per batch."""
    first, last = agg["first_day"].to_numpy(), agg["last_day"].to_numpy()
    day = np.timedelta64(1, "D")
    repeat = agg["n_days"].to_numpy(dtype=np.int64) - 1
    spend = agg["total"].to_numpy(dtype=float) - agg["first_total"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(repeat > 0, spend / repeat, 0.0)
    out = pd.DataFrame(
        {
            "frequency": repeat,
            "recency": days_to_units((last - first) / day, freq),
            "T": days_to_units((np.datetime64(cal_end) - first) / day, freq),
            "monetary_value": monetary,
            "first_purchase": first,
        },
        index=agg.index,
    )
    out.index.name = "customer_id"
    return out


def rfm_summary(
    transactions: duck.Source,
    observation_end: str | pd.Timestamp,
    freq: str = "W",
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per customer at ``observation_end``.

    Parameters
    ----------
    transactions
        Contract-shaped transactions: a DataFrame or a CSV/Parquet path or glob (Spark also
        takes a pyspark DataFrame).
    observation_end
        The last calendar day observed (inclusive). Later transactions are left out and
        counted in ``result.attrs["excluded"]``.
    freq
        Time unit of ``recency`` and ``T``: ``"D"``, ``"W"`` (default) or ``"M"``.
    engine
        ``"duckdb"`` (default) or ``"spark"``; both give the same numbers.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``customer_id`` (sorted), with ``frequency``, ``recency``, ``T``,
        ``monetary_value`` and ``first_purchase``.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> rfm = rfm_summary(tx, "1997-09-30")
    >>> int(rfm.loc["00004", "frequency"]), round(float(rfm.loc["00004", "T"]), 2)
    (2, 38.86)
    """
    freq = check_freq(freq)
    end = as_day(observation_end, "observation_end")
    agg, counts = _aggregate(transactions, end, end, engine)
    out = rfm_from_aggregates(agg, end, freq)
    out.attrs["excluded"] = {"transactions after the observation end": counts["after"]}
    out.attrs["freq"] = freq
    out.attrs["observation_end"] = str(end.date())
    return out


def calibration_holdout(
    transactions: duck.Source,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp,
    freq: str = "W",
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """RFM in the calibration period and purchases in the holdout period, per customer.

    Customers whose first purchase falls after ``calibration_end`` are not in the result (the
    models cannot score them); they are counted in ``result.attrs["excluded"]``, as are
    transactions after ``observation_end``.

    Returns
    -------
    pandas.DataFrame
        ``frequency_cal``, ``recency_cal``, ``T_cal``, ``monetary_value_cal``,
        ``first_purchase``, ``frequency_holdout`` (purchase days in the holdout),
        ``monetary_value_holdout`` (their mean total) and ``duration_holdout``.

    Examples
    --------
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> ch = calibration_holdout(tx, "1997-09-30", "1998-06-30")
    >>> float(ch["duration_holdout"].iloc[0].round(2))
    39.0
    """
    freq = check_freq(freq)
    cal_end = as_day(calibration_end, "calibration_end")
    obs_end = as_day(observation_end, "observation_end")
    if obs_end <= cal_end:
        raise ClmError(
            f"observation_end {obs_end.date()} must be after calibration_end {cal_end.date()}"
        )
    agg, counts = _aggregate(transactions, cal_end, obs_end, engine)
    out = rfm_from_aggregates(agg, cal_end, freq).add_suffix("_cal")
    out = out.rename(columns={"first_purchase_cal": "first_purchase"})
    out["frequency_holdout"] = agg["n_holdout"].astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["monetary_value_holdout"] = np.where(
            agg["n_holdout"] > 0, agg["total_holdout"] / agg["n_holdout"], 0.0
        )
    out["duration_holdout"] = float(days_to_units((obs_end - cal_end).days, freq))
    out.attrs["excluded"] = {
        "transactions after the observation end": counts["after"],
        "customers whose first purchase is after the calibration end": counts["customers"]
        - len(out),
    }
    out.attrs["freq"] = freq
    out.attrs["calibration_end"] = str(cal_end.date())
    out.attrs["observation_end"] = str(obs_end.date())
    return out


def calibration_part(ch: pd.DataFrame) -> pd.DataFrame:
    """The calibration columns of :func:`calibration_holdout` under the names models fit on."""
    cols = ["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal", "first_purchase"]
    out = ch[cols].rename(columns=lambda c: c.removesuffix("_cal"))
    out.attrs = {"freq": ch.attrs.get("freq"), "observation_end": ch.attrs.get("calibration_end")}
    return out
