"""One SQL text, two engines: DuckDB on one machine, Spark on a cluster.

The aggregations that read transactions or events (RFM summaries, cohort tables, KPI counts,
stage assignment) write their SQL once, in the dialect both engines share, and run it through
:func:`open_engine`. What the dialects spell differently (timestamps in UTC, microseconds
since the epoch) comes from the engine, and only small results come back to pandas.

>>> import pandas as pd
>>> tx = pd.DataFrame({"customer_id": ["a", "b"], "amount": [5.0, 7.0],
...                    "timestamp": pd.to_datetime(["2024-01-03", "2024-03-09"])})
>>> with open_engine("duckdb") as sql:
...     name = sql.checked("transactions", tx)
...     sql.df(f"SELECT count(*) AS n FROM {name}")["n"].tolist()
[2]
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .errors import ClmError
from .outputs import atomic_path

if TYPE_CHECKING:  # frames come back from an engine; it starts before pandas is imported
    import pandas as pd

# DuckDB (clmmodels.duck) is imported when an engine first needs it: ``clm --help`` and the
# commands that never aggregate do without.

T = TypeVar("T")

ENGINES = ("duckdb", "spark")
#: DuckDB reads pandas frames in place, so frames and files share one SQL text and one engine.
DEFAULT_ENGINE = "duckdb"
#: "pandas" named the in-memory twin of every aggregation, now gone: frames go to DuckDB.
_ALIASES = {"pandas": "duckdb"}


class SqlEngine(AbstractContextManager):
    """A DuckDB connection or a Spark session behind one small interface."""

    name: str
    #: The writer makes a folder of part files of the output's name (Spark), not one file.
    writes_folder = False

    def checked(self, table: str, source, event_types: Collection[str] | None = None) -> str:
        """Register the ``"transactions"`` or ``"events"`` (checked against the contract if
        files, event types against ``event_types`` when given: a broken rule names the file
        and its first offending lines); the view name."""
        raise NotImplementedError

    def table(self, name: str, source) -> str:
        """Register any other table (a frame, a path or glob); the view name."""
        raise NotImplementedError

    def timestamp(self, view: str, column: str) -> str:
        """SQL for ``column`` of ``view`` as a UTC timestamp without time zone."""
        raise NotImplementedError

    def day(self, view: str, column: str) -> str:
        """SQL for the UTC calendar day of ``column`` of ``view``."""
        return f"CAST({self.timestamp(view, column)} AS DATE)"

    def epoch_us(self, ts: str) -> str:
        """SQL for microseconds since 1970-01-01 of the timestamp ``ts``."""
        raise NotImplementedError

    def epoch_days(self, day: str) -> str:
        """SQL for days since 1970-01-01 of the date ``day``."""
        raise NotImplementedError

    def df(self, sql: str) -> pd.DataFrame:
        """Run a query; its (small) result as pandas."""
        raise NotImplementedError

    def materialize(self, name: str, sql: str) -> None:
        """Keep a query's result as the table ``name`` for the next queries."""
        raise NotImplementedError

    def view(self, name: str, sql: str) -> None:
        """Name a query ``name`` for the next queries (computed where they use it)."""
        raise NotImplementedError

    def write(self, sql: str, path: Path, check: Callable[[Path], T] | None = None) -> T | None:
        """Write a query's result to ``path``, Parquet or CSV (with a header) by its suffix.

        Atomically: into a temporary sibling of ``path``, renamed onto it at the end; if the
        write (or ``check``) fails, the temporary is removed and an earlier ``path`` is left
        whole. ``check`` reads the written temporary before the rename; its result is
        returned.
        """
        with atomic_path(path, folder=self.writes_folder) as tmp:
            self._copy(sql, tmp, Path(path).suffix)
            return check(tmp) if check is not None else None

    def _copy(self, sql: str, path: Path, suffix: str) -> None:
        """Write a query's result to ``path`` as ``suffix`` says (``.csv`` or ``.parquet``)."""
        raise NotImplementedError


class DuckDBEngine(SqlEngine):
    name = "duckdb"

    def __init__(self, memory_limit: str | None = None) -> None:
        from . import duck

        self.duck = duck
        self.con = duck.connect(memory_limit=memory_limit)
        self.con.execute("SET preserve_insertion_order = false")  # less memory; queries sort

    def __exit__(self, *exc) -> None:
        self.con.close()

    def checked(self, table: str, source, event_types: Collection[str] | None = None) -> str:
        return self.duck.register_checked(self.con, table, source, event_types)

    def table(self, name: str, source) -> str:
        return self.duck.register_source(self.con, name, source)

    def timestamp(self, view: str, column: str) -> str:
        return self.duck.utc_timestamp(self.con, view, column)

    def epoch_us(self, ts: str) -> str:
        return f"epoch_us({ts})"

    def epoch_days(self, day: str) -> str:
        return f"CAST(epoch({day}) / 86400 AS BIGINT)"

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def materialize(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def _copy(self, sql: str, path: Path, suffix: str) -> None:
        options = "FORMAT csv, HEADER" if suffix == ".csv" else "FORMAT parquet"
        # path is already a temporary: DuckDB's own (tmp_<name>) would be one more to clean.
        self.con.execute(
            f"COPY ({sql}) TO {self.duck.string_literal(str(path))} ({options}, USE_TMP_FILE false)"
        )


class SparkEngine(SqlEngine):
    name = "spark"
    writes_folder = True

    def __init__(self) -> None:
        from . import spark

        self.spark = spark
        self.session = spark.session()
        self.kept: list = []

    def __exit__(self, *exc) -> None:
        for frame in self.kept:
            frame.unpersist()

    def checked(self, table: str, source, event_types: Collection[str] | None = None) -> str:
        if isinstance(source, str | Path):
            check_files(table, source, event_types)
        return self.table(table, source)

    def table(self, name: str, source) -> str:
        return self.spark.register_source(self.session, f"clm_{name}", source)

    def timestamp(self, view: str, column: str) -> str:
        kinds = dict(self.session.table(view).dtypes)
        return self.spark.utc_timestamp(column, kinds.get(column, "string"))

    def epoch_us(self, ts: str) -> str:
        return f"unix_micros({ts})"

    def epoch_days(self, day: str) -> str:
        return f"CAST(unix_date({day}) AS BIGINT)"

    def df(self, sql: str) -> pd.DataFrame:
        return self.session.sql(sql).toPandas()

    def materialize(self, name: str, sql: str) -> None:
        frame = self.session.sql(sql).persist()
        self.kept.append(frame)
        frame.createOrReplaceTempView(name)

    def view(self, name: str, sql: str) -> None:
        self.session.sql(sql).createOrReplaceTempView(name)

    def _copy(self, sql: str, path: Path, suffix: str) -> None:
        """A folder of part files named ``path`` (in order, for a query that sorts)."""
        writer = self.session.sql(sql).write.mode("overwrite")  # over the empty temporary
        if suffix == ".csv":
            writer.option("header", True).csv(str(path))
        else:
            writer.parquet(str(path))


def timestamp_literal(t: pd.Timestamp) -> str:
    """SQL for the timestamp ``t`` (without time zone), in both engines' dialect."""
    return f"TIMESTAMP '{t.isoformat(sep=' ')}'"


def engine_name(engine: str) -> str:
    """``engine`` checked against :data:`ENGINES` (``"pandas"``, the old name of the
    in-memory path, is DuckDB on the frames)."""
    name = _ALIASES.get(engine, engine)
    if name not in ENGINES:
        raise ClmError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return name


def open_engine(engine: str = DEFAULT_ENGINE, memory_limit: str | None = None) -> SqlEngine:
    """A :class:`SqlEngine` for ``"duckdb"`` or ``"spark"`` (use it in a ``with`` block)."""
    name = engine_name(engine)
    return DuckDBEngine(memory_limit) if name == "duckdb" else SparkEngine()


def check_files(table: str, source: str | Path, event_types: Collection[str] | None = None) -> None:
    """Check transaction or event files against the contract, as the DuckDB engine does before
    it reads them (DuckDB scans, the same rules and messages as ``clm validate``).

    Spark reads local files after this check; paths DuckDB cannot read (``hdfs://``, a
    cluster's object store) are left to Spark, unchecked.
    """
    if "://" in str(source) and not str(source).startswith("file://"):
        return
    from . import duck

    con = duck.connect()
    try:
        duck.register_checked(con, table, source, event_types)  # raises ContractError
    finally:
        con.close()
