"""Score every customer from transaction files straight to a Parquet or CSV file.

For data larger than memory. The per-customer aggregation runs in the engine (DuckDB, which
spills to disk under its memory limit, or Spark); the models are fitted on compressed
sufficient statistics fetched from it (one weighted row per distinct history, however many
customers share it); and they score those same distinct rows: each distinct purchase history
(frequency, recency, T) once, each distinct (frequency, mean repeat spend) once. The engine
joins those scores back to its customers and writes the file, so no step holds every customer
in Python. The numbers are those of :func:`clmmodels.clv.score.score_customers` on the same
data.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import warnings
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from .. import duck
from ..duck import memory_limit_for
from ..engines import open_engine
from ..errors import ClmError
from ..outputs import check_writable
from ..per_customer import customers_sql
from ..timeunits import check_freq, parse_day
from ..vocabulary import PURCHASE_MODELS

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd

    from .score import Scores

#: What the fits and the scoring import (pandas, half a second with pyarrow; scipy's special
#: functions, a fifth): imported in a thread while the engine checks and aggregates, which
#: runs without the GIL, so nothing before the aggregation may import pandas. MBG/NBD,
#: fitted without an exact gradient, also needs scipy's optimiser.
_MODEL_MODULES = ("pandas", "clmmodels.rfm", "clmmodels.clv.score", "clmmodels.clv.gamma_gamma")

#: The share of a memory limit chosen from the input's size that the final write (the join of
#: the scores to every customer, its sort and the Parquet writer) runs under: the per-customer
#: table stays in memory beside it, and under the whole limit the write took the process's
#: peak 40-70 MiB past the aggregation's at 1M customers; under 0.7 it stays below it, for
#: about 0.1 s more. A write that runs out of memory under the share runs again under the
#: whole limit.
WRITE_SHARE = 0.7

# A customer's mean repeat spend, with the same division as rfm_from_aggregates.
_MONETARY = "CASE WHEN n_days > 1 THEN (total - first_total) / (n_days - 1) ELSE 0.0 END"
# What the engine keeps per customer (as clm_customers): the columns the fit, the counts and
# the write read, the mean repeat spend computed once. Narrower than the aggregation (six
# columns of its nine), under the same memory limit as the write's join and sort beside it:
# at 1M customers the aggregation takes 0.1-0.2 s less and the peak is 25-30 MiB lower.
_KEPT_SQL = f"""
SELECT customer_id, n_days, first_day, last_day, {_MONETARY} AS monetary_value, n_after
FROM ({{aggregation}}) AS aggregation
"""
# Days as timestamps, which reach pandas as datetime64 (dates would arrive as Python objects).
_DAYS = "CAST(first_day AS TIMESTAMP) AS first_day, CAST(last_day AS TIMESTAMP) AS last_day"
# Distinct purchase histories: (n_days, first_day, last_day) is (frequency, recency, T) in days.
# Sorted: a parallel group-by returns its groups in an order that varies from run to run (and
# with the memory limit), and the fit's sums (and its warm start's sample) follow the rows'
# order, so unsorted rows would move the estimates in their last digits.
_HISTORIES_SQL = f"""
SELECT n_days, {_DAYS}, count(*) AS weight
FROM {{customers}} WHERE n_days > 0 GROUP BY n_days, first_day, last_day ORDER BY 1, 2, 3
"""
# Distinct (purchase days, mean repeat spend), sorted as the histories are.
_SPEND_SQL = """
SELECT n_days, monetary_value, count(*) AS weight
FROM {customers} WHERE n_days > 0 GROUP BY 1, 2 ORDER BY 1, 2
"""
_COUNTS_SQL = """
SELECT CAST(coalesce(sum(n_after), 0) AS BIGINT) AS after,
       sum(CASE WHEN n_days > 0 THEN 1 ELSE 0 END) AS scored
FROM {customers}
"""
# Every customer's scores: their history's and their spend's, joined on the keys those were
# grouped by (the same values from the same table: the join is exact), in SCORE_COLUMNS order.
# The two joins share no column: with n_days in both, DuckDB may join the two score tables
# to each other first, many-to-many on n_days alone (at 100M transactions the write spilled
# over 60 GB and failed; with separate keys it takes 23 s).
_SCORES_SQL = f"""
SELECT c.customer_id, h.frequency, h.recency, h.T, s.monetary_value, h.p_alive,
       h.expected_purchases, h.p_no_purchase, s.expected_spend,
       h.discounted_purchases * s.expected_spend AS clv, h.fallback
FROM (SELECT customer_id, n_days, {_DAYS}, n_days - 1 AS repeats, monetary_value
      FROM {{customers}} WHERE n_days > 0) AS c
JOIN {{histories}} AS h
  ON c.n_days = h.n_days AND c.first_day = h.first_day AND c.last_day = h.last_day
JOIN {{spend}} AS s ON c.repeats = s.frequency AND c.monetary_value = s.monetary_value
ORDER BY c.customer_id
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
    batch_rows: int = 100_000,
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
        Distinct histories scored at a time; bounds the memory the formulas need.
    memory_limit
        DuckDB's memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk. Default:
        chosen from the input's size (:func:`clmmodels.duck.memory_limit_for`, in the
        result's ``memory_limit``), or DuckDB's own (80% of RAM) where that is no higher;
        if the aggregation still runs out of memory under the chosen limit, it runs again
        under DuckDB's own. The final write runs under :data:`WRITE_SHARE` of a chosen
        limit.
    progress
        Show a bar of the run's steps (aggregate, fit, score, write).

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
    if model not in PURCHASE_MODELS:
        raise ClmError(f"model must be one of {', '.join(PURCHASE_MODELS)}, got {model!r}")
    freq = check_freq(freq)
    out = check_writable(out, "out", folder=engine == "spark")  # before the work, not after
    end = parse_day(observation_end, "observation_end")
    settings = {
        "model": model,
        "freq": freq,
        "observation_end": str(end),
        "horizon_months": horizon_months,
        "discount_rate": discount_rate,
    }
    if engine not in ("duckdb", "spark"):
        raise ClmError(f"engine must be duckdb or spark to score files, got {engine!r}")
    chosen = memory_limit is None and engine == "duckdb"
    if chosen:
        memory_limit = memory_limit_for(transactions)
    steps = _Steps(progress)
    # Spark's start-up imports pyspark: no second thread importing then.
    modules = (*_MODEL_MODULES, *(("scipy.optimize",) if model == "mbgnbd" else ()))
    imports = _Imports(*(modules if engine == "duckdb" else ()))
    with steps, _Run(engine, transactions, end, memory_limit, chosen) as run:
        imports.wait()  # pandas and the models, imported while DuckDB aggregated
        import pandas as pd

        from ..rfm import rfm_from_aggregates
        from . import MODELS
        from .gamma_gamma import GammaGammaModel
        from .score import Scores, purchase_scores

        steps.done("fitting")
        counts = run.query(_COUNTS_SQL).iloc[0]
        if not counts["scored"]:
            raise ClmError(f"no customer has a purchase by {end}")
        histories = run.query(_HISTORIES_SQL)
        rows = rfm_from_aggregates(
            histories.assign(total=0.0, first_total=0.0), pd.Timestamp(end), freq
        )
        rows.attrs["freq"] = freq
        spend_rows = run.query(_SPEND_SQL)
        spend_rows["frequency"] = spend_rows["n_days"] - 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            purchases = MODELS[model](freq=freq).fit(rows, weights=histories["weight"].to_numpy())
            spend = GammaGammaModel().fit(spend_rows, weights=spend_rows["weight"].to_numpy())
        steps.done("scoring the distinct histories")
        scored = [
            purchase_scores(purchases, rows.iloc[i : i + batch_rows], horizon_months, discount_rate)
            for i in range(0, len(rows), batch_rows)
        ]
        history_scores = pd.concat(scored)
        for i, key in enumerate(["n_days", "first_day", "last_day"]):  # the join's keys
            history_scores.insert(i, key, histories[key])
        spend_scores = spend_rows[["frequency", "monetary_value"]].assign(
            expected_spend=spend.expected_spend(spend_rows)
        )
        fallback = int(histories["weight"][history_scores["fallback"].to_numpy()].sum())
        del histories, rows, scored, spend_rows  # the write's peak is the run's
        steps.done("writing every customer's scores")
        total = run.write(history_scores, spend_scores, out, int(counts["scored"]))
        steps.done("done")
    return Scores(
        None,
        purchases,
        spend,
        settings,
        memory_limit=run.memory_limit if engine == "duckdb" else None,
        warnings=[*run.notes, *(str(w.message) for w in caught)],
        n_customers=int(counts["scored"]),
        total_clv=total,
        n_fallback=fallback,
        excluded={
            "transactions after the observation end": int(counts["after"]),
        },
    )


class _Run(AbstractContextManager):
    """The per-customer aggregation kept in the engine (a DuckDB temporary table, a persisted
    Spark DataFrame) as ``clm_customers``, to query and to score from."""

    def __init__(
        self, engine: str, source, end: dt.date, memory_limit: str | None, chosen: bool
    ) -> None:
        self.notes: list[str] = []
        self.limits: tuple[str, str] | None = None  # the chosen limit, and the write's share
        try:
            self._aggregate(engine, source, end, memory_limit)
        except duckdb.OutOfMemoryException as err:
            if not (chosen and memory_limit):
                raise self._out_of_memory(err) from None
            try:  # the limit chosen from the data was too tight: DuckDB's own default
                self._aggregate(engine, source, end, None)
            except duckdb.OutOfMemoryException as again:
                raise self._out_of_memory(again) from None
            self.notes.append(
                f"the memory limit chosen from the input's size ({memory_limit}) was too tight "
                "for the per-customer aggregation, which ran again under DuckDB's default; "
                "give --memory-limit to skip the first attempt"
            )
        else:
            megabytes = re.fullmatch(r"(\d+)MB", memory_limit or "")  # memory_limit_for's
            if chosen and megabytes:
                self.limits = (memory_limit, f"{int(int(megabytes[1]) * WRITE_SHARE)}MB")
        self.memory_limit = _setting(self.sql, "memory_limit") if engine == "duckdb" else None

    def _aggregate(self, engine: str, source, end: dt.date, memory_limit: str | None) -> None:
        self.sql = open_engine(engine, memory_limit)
        try:
            name = self.sql.checked("transactions", source)
            day = self.sql.day(name, "timestamp")
            aggregation = customers_sql(name, day, end, end)
            self.sql.materialize("clm_customers", _KEPT_SQL.format(aggregation=aggregation))
        except BaseException:
            self.sql.__exit__(None, None, None)
            raise

    @staticmethod
    def _out_of_memory(err: Exception) -> ClmError:
        first = str(err).splitlines()[0]
        return ClmError(
            f"DuckDB ran out of memory aggregating per customer ({first}); raise "
            "--memory-limit: the per-customer hash table cannot spill (100M transactions, "
            "28M customers, need 3GB)"
        )

    def __exit__(self, *exc) -> None:
        self.sql.__exit__(*exc)

    def query(self, sql: str) -> pd.DataFrame:
        return self.sql.df(sql.format(customers="clm_customers"))

    def write(
        self, histories: pd.DataFrame, spend: pd.DataFrame, out: Path, customers: int
    ) -> float:
        """Every customer's scores from those of the distinct histories and spends, to ``out``
        (atomically: an earlier ``out`` stays whole if anything fails); their total CLV."""
        sql = _SCORES_SQL.format(
            customers="clm_customers",
            histories=self.sql.table("history_scores", histories),
            spend=self.sql.table("spend_scores", spend),
        )

        def check(written: Path) -> float:  # before the rename: a short file never replaces
            rows, total = self._written(written, out.suffix)
            if rows != customers:  # every customer has a history and a spend row
                raise RuntimeError(f"wrote {rows} of {customers} customers' scores")
            return total

        try:
            if self.limits:
                try:
                    with self._memory_limit(*self.limits):
                        return self.sql.write(sql, out, check=check)
                except duckdb.OutOfMemoryException:
                    pass  # again under the whole limit
            return self.sql.write(sql, out, check=check)
        except (OSError, duckdb.IOException) as err:  # a full disk, a lost mount
            raise ClmError(
                f"could not write {out} ({_reason(err)}); an earlier file there is unchanged"
            ) from err

    @contextmanager
    def _memory_limit(self, whole: str, share: str):
        """DuckDB under the memory limit ``share`` inside the block, ``whole`` after it."""
        self.sql.con.execute(f"SET memory_limit = '{share}'")
        try:
            yield
        finally:
            self.sql.con.execute(f"SET memory_limit = '{whole}'")

    def _written(self, out: Path, suffix: str) -> tuple[int, float]:
        """The rows of the written scores and their total CLV, summed in file order (the same
        total every run: an engine's parallel sum may differ in the last digits). DuckDB
        reads its own file back on one thread (no pyarrow dataset to import and fill)."""
        if self.sql.name != "duckdb":  # Spark's folder of part files
            return _written(out, suffix)
        path = duck.string_literal(str(out))
        reader = f"read_csv({path}, header = true)" if suffix == ".csv" else f"read_parquet({path})"
        threads = _setting(self.sql, "threads")
        self.sql.con.execute("SET threads = 1")
        try:
            rows, total = self.sql.con.execute(
                f"SELECT count(*), coalesce(sum(CAST(clv AS DOUBLE)), 0) FROM {reader}"
            ).fetchall()[0]
        finally:
            self.sql.con.execute(f"SET threads = {threads}")
        return int(rows), float(total)


def _setting(sql, name: str) -> str:
    """A DuckDB setting as DuckDB prints it (``memory_limit``: ``"476.8 MiB"``)."""
    return str(sql.con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0])


class _Imports:
    """Modules imported in a thread while the caller waits on an engine (which releases the
    GIL); :meth:`wait` before using them."""

    def __init__(self, *modules: str) -> None:
        self.modules = [m for m in modules if m not in sys.modules]
        self.thread = threading.Thread(target=self._run, name="clm-imports", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # the main thread imports it again and says why
                return

    def wait(self) -> None:
        self.thread.join()


def _reason(err: Exception) -> str:
    """Why a write failed, in words: DuckDB puts the OS error in a JSON blob, with the name of
    the temporary file the user never asked for."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    code = re.search(r'"errno":\s*"(\d+)"', str(err))
    return os.strerror(int(code.group(1))) if code else str(err).splitlines()[0]


def _written(out: Path, suffix: str) -> tuple[int, float]:
    """The rows of the written scores and their total CLV, summed in file order (the same
    total every run: an engine's parallel sum may differ in the last digits)."""
    import pyarrow.dataset as ds

    kind = "csv" if suffix == ".csv" else "parquet"
    rows, total = 0, 0.0
    for batch in ds.dataset(str(out), format=kind).to_batches(columns=["clv"], use_threads=False):
        rows += batch.num_rows
        total += float(batch.column(0).to_numpy().sum())
    return rows, total


class _Steps(AbstractContextManager):
    """A progress bar over the run's steps (the first, the aggregation, is the long one at
    scale); tqdm, like every other bar of the package."""

    def __init__(self, show: bool) -> None:
        if "IPython" in sys.modules:  # a notebook's bar, maybe (tqdm.auto imports asyncio)
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm

        self.bar = tqdm(
            total=4, desc="aggregating per customer", unit="step", disable=not show, delay=1
        )  # shown after a second: a run that fails on bad input at once prints only the error

    def done(self, next_step: str) -> None:
        self.bar.update(1)
        self.bar.set_description_str(next_step)

    def __exit__(self, *exc) -> None:
        self.bar.close()
