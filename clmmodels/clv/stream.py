"""Score every customer from transaction files straight to a Parquet or CSV file, in batches.

For data larger than memory. The per-customer aggregation runs in the engine (DuckDB, which
spills to disk under its memory limit, or Spark); the models are fitted on compressed
sufficient statistics fetched from it (one weighted row per distinct history, however many
customers share it); and the scores are computed a batch at a time, from Arrow record batches
(DuckDB) or in ``mapInPandas`` (Spark), so no step holds every customer in Python. The numbers
are those of :func:`clmmodels.clv.score.score_customers` on the same data.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import pandas as pd

from ..engines import open_engine
from ..errors import ClmError
from ..rfm import _calibration_columns, customers_sql
from ..timeunits import as_day, check_freq
from . import MODELS
from .gamma_gamma import GammaGammaModel
from .score import SCORE_COLUMNS, Scores, score_frame

#: The aggregation's columns a batch is scored from; days as timestamps, which reach pandas
#: as datetime64 (dates would arrive as Python objects).
_BATCH_COLUMNS = [
    "n_days",
    "CAST(first_day AS TIMESTAMP) AS first_day",
    "CAST(last_day AS TIMESTAMP) AS last_day",
    "total",
    "first_total",
]
# Distinct purchase histories: (n_days, first_day, last_day) is (frequency, recency, T) in days.
_HISTORIES_SQL = """
SELECT n_days, CAST(first_day AS TIMESTAMP) AS first_day,
       CAST(last_day AS TIMESTAMP) AS last_day, count(*) AS weight
FROM {customers} WHERE n_days > 0 GROUP BY n_days, first_day, last_day
"""
# Distinct (frequency, mean repeat spend), with the same division as _calibration_columns.
_SPEND_SQL = """
SELECT n_days, CASE WHEN n_days > 1 THEN (total - first_total) / (n_days - 1) ELSE 0.0 END
       AS monetary_value, count(*) AS weight
FROM {customers} WHERE n_days > 0 GROUP BY 1, 2
"""
_COUNTS_SQL = """
SELECT CAST(coalesce(sum(n_after), 0) AS BIGINT) AS after,
       sum(CASE WHEN n_days > 0 OR n_holdout > 0 THEN 1 ELSE 0 END) AS customers,
       sum(CASE WHEN n_days > 0 THEN 1 ELSE 0 END) AS scored
FROM {customers}
"""


def score_to_file(
    transactions,
    observation_end: str | pd.Timestamp,
    out: str | Path,
    model: str = "bgnbd",
    freq: str = "W",
    horizon_months: int = 12,
    discount_rate: float = 0.01,
    engine: str = "duckdb",
    batch_rows: int = 250_000,
    memory_limit: str | None = None,
    progress: bool = False,
) -> Scores:
    """Fit at ``observation_end`` and write every customer's scores to ``out``.

    Parameters
    ----------
    transactions
        Contract-shaped transactions: a CSV/Parquet path or glob, or a DataFrame; with
        ``engine="spark"`` also a pyspark DataFrame.
    out
        A ``.parquet`` or ``.csv`` file, one row per customer sorted by ``customer_id``, with
        the columns of ``score_customers``. Spark writes a folder of part files of that name.
    engine
        ``"duckdb"`` or ``"spark"``.
    batch_rows
        Customers scored at a time (DuckDB); bounds the memory the scoring needs.
    memory_limit
        DuckDB's memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk. Default:
        DuckDB's own (80% of RAM).

    Returns
    -------
    Scores
        The fitted models and the run's description; ``scores`` is None (they are in ``out``).

    Examples
    --------
    >>> import tempfile
    >>> from clmmodels import load_dataset
    >>> tx = load_dataset("cdnow_sample").transactions
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     run = score_to_file(tx, "1997-09-30", f"{tmp}/scores.parquet")
    >>> run.n_customers, round(float(run.purchases.params_["r"]), 3)
    (2357, 0.243)
    """
    if model not in MODELS:
        raise ClmError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    check_freq(freq)
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ClmError(f"out {out}: use a .csv or .parquet file name")
    end = as_day(observation_end, "observation_end")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": model,
        "freq": freq,
        "observation_end": str(end.date()),
        "horizon_months": horizon_months,
        "discount_rate": discount_rate,
    }
    runs = {"duckdb": _DuckDBRun, "spark": _SparkRun}
    if engine not in runs:
        raise ClmError(f"engine must be duckdb or spark to score files in batches, got {engine!r}")
    with runs[engine](transactions, end, memory_limit) as run:
        counts = run.query(_COUNTS_SQL).iloc[0]
        if not counts["scored"]:
            raise ClmError(f"no customer has a purchase by {end.date()}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            purchases = _fit_purchases(model, freq, run.query(_HISTORIES_SQL), end)
            spend = _fit_spend(run.query(_SPEND_SQL))

        def score(batch: pd.DataFrame) -> pd.DataFrame:
            rfm = _calibration_columns(batch, end, freq)  # numbers only: ids stay in Arrow
            rfm.attrs["freq"] = freq
            return score_frame(purchases, spend, rfm, horizon_months, discount_rate)

        total = run.write(score, out, int(counts["scored"]), batch_rows, progress)
    return Scores(
        None,
        purchases,
        spend,
        settings,
        warnings=[str(w.message) for w in caught],
        n_customers=int(counts["scored"]),
        total_clv=total,
        excluded={
            "transactions after the observation end": int(counts["after"]),
        },
    )


def _fit_purchases(model: str, freq: str, histories: pd.DataFrame, end: pd.Timestamp):
    rows = _calibration_columns(histories.assign(total=0.0, first_total=0.0), end, freq)
    rows.attrs["freq"] = freq
    return MODELS[model](freq=freq).fit(rows, weights=histories["weight"].to_numpy(float))


def _fit_spend(rows: pd.DataFrame) -> GammaGammaModel:
    rows = rows.assign(frequency=rows["n_days"] - 1)
    return GammaGammaModel().fit(rows, weights=rows["weight"].to_numpy(float))


class _Run(AbstractContextManager):
    """The per-customer aggregation kept in the engine (a DuckDB temporary table, a persisted
    Spark DataFrame) as ``clm_customers``, to query and to score from."""

    engine: str

    def __init__(self, source, end: pd.Timestamp, memory_limit: str | None) -> None:
        self.sql = open_engine(self.engine, memory_limit)
        try:
            name = self.sql.transactions(source)
            day = self.sql.day(name, "timestamp")
            self.sql.materialize("clm_customers", customers_sql(name, day, end, end))
        except BaseException as err:
            self.sql.__exit__(None, None, None)
            if not isinstance(err, duckdb.OutOfMemoryException):
                raise
            first = str(err).splitlines()[0]
            raise ClmError(
                f"DuckDB ran out of memory aggregating per customer ({first}); raise "
                "--memory-limit: the per-customer hash table cannot spill (100M transactions, "
                "28M customers, need 3GB)"
            ) from None

    def __exit__(self, *exc) -> None:
        self.sql.__exit__(*exc)

    def query(self, sql: str) -> pd.DataFrame:
        return self.sql.df(sql.format(customers="clm_customers"))


class _DuckDBRun(_Run):
    """Scores streamed from DuckDB in Arrow record batches."""

    engine = "duckdb"

    def write(self, score, out: Path, n: int, batch_rows: int, progress: bool) -> float:
        import pyarrow as pa

        result = self.sql.con.sql(
            "SELECT customer_id, " + ", ".join(_BATCH_COLUMNS) + " FROM clm_customers "
            "WHERE n_days > 0 ORDER BY customer_id"
        )
        # DuckDB 1.x calls it fetch_record_batch, 2.x to_arrow_reader
        reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
        reader = reader(batch_rows)
        total = 0.0
        with _Writer(out) as writer, _bar(n, progress) as bar:
            for batch in _prefetched(reader):
                ids = batch.column(0)
                numbers = pa.Table.from_batches([batch]).drop_columns(["customer_id"])
                scores = score(numbers.to_pandas())
                writer.write(ids, scores)
                total += float(scores["clv"].sum())
                bar.update(len(scores))
        return total


class _SparkRun(_Run):
    """Scores computed by ``mapInPandas`` and written by Spark."""

    engine = "spark"

    def write(self, score, out: Path, n: int, batch_rows: int, progress: bool) -> float:
        schema = "customer_id STRING, " + ", ".join(
            f"{c} {'BIGINT' if c == 'frequency' else 'DOUBLE'}" for c in SCORE_COLUMNS
        )

        def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                scores = score(batch.drop(columns="customer_id").reset_index(drop=True))
                scores.insert(0, "customer_id", batch["customer_id"].to_numpy())
                yield scores

        session = self.sql.session
        scored = (
            session.table("clm_customers")
            .where("n_days > 0")
            .selectExpr("customer_id", *_BATCH_COLUMNS)
            .mapInPandas(score_partition, schema)
            .orderBy("customer_id")
        )
        writer = scored.write.mode("overwrite")
        if out.suffix == ".csv":
            writer.option("header", True).csv(str(out))
        else:
            writer.parquet(str(out))
        written = session.read.parquet(str(out)) if out.suffix == ".parquet" else None
        if written is None:
            written = session.read.option("header", True).csv(str(out))
        return float(written.selectExpr("sum(CAST(clv AS DOUBLE))").first()[0] or 0.0)


def _prefetched(batches: Iterator, depth: int = 2) -> Iterator:
    """``batches``, read ahead in a thread: DuckDB makes the next batches (without the GIL)
    while Python scores this one."""
    done = object()
    ahead: queue.Queue = queue.Queue(maxsize=depth)

    def read() -> None:
        try:
            for batch in batches:
                ahead.put(batch)
            ahead.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            ahead.put(err)

    threading.Thread(target=read, daemon=True).start()
    while (item := ahead.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class _Writer:
    """Appends scored batches to a Parquet file (ids stay Arrow strings) or a CSV file.

    Parquet batches are written in a thread (pyarrow encodes without the GIL) while the next
    one is scored."""

    def __init__(self, out: Path) -> None:
        self.out, self.parquet = out, None
        self.csv_header = True
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = None

    def __enter__(self) -> _Writer:
        return self

    def write(self, ids, scores: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.out.suffix == ".csv":
            frame = scores.copy()
            frame.insert(0, "customer_id", ids.to_pylist())
            frame.to_csv(self.out, mode="w" if self.csv_header else "a",
                         header=self.csv_header, index=False)  # fmt: skip
            self.csv_header = False
            return
        table = pa.Table.from_pandas(scores, preserve_index=False)
        table = table.add_column(0, "customer_id", ids.cast(pa.string()))
        if self.parquet is None:
            # Scores rarely repeat: dictionary encoding would be tried and dropped, at 4x the time
            self.parquet = pq.ParquetWriter(self.out, table.schema, use_dictionary=False)
        self._wait()
        self.pending = self.pool.submit(self.parquet.write_table, table)

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()  # raises what the write raised
            self.pending = None

    def __exit__(self, *exc) -> None:
        try:
            self._wait()
        finally:
            self.pool.shutdown()
        if self.parquet is not None:
            self.parquet.close()
        elif self.csv_header and self.out.suffix == ".csv":
            self.out.write_text(",".join(["customer_id", *SCORE_COLUMNS]) + "\n")


def _bar(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="scoring", unit="customer", disable=not show)
