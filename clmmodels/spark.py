"""Spark helpers (the optional extra ``clmmodels[spark]``): a session and a SQL source.

The aggregations write one SQL text that DuckDB and Spark SQL both run; this module gives
Spark what :mod:`clmmodels.duck` gives DuckDB. The session is the active one (yours, or the
one ``spark-submit`` made), else a new one on ``$SPARK_MASTER`` (default ``local[*]``).
Either way its SQL time zone is set to UTC: the contract reads every timestamp in UTC.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ClmError

if TYPE_CHECKING:  # pyspark is optional
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'clmmodels[spark]' (and Java 17 or later)"


def _pyspark():
    try:
        import pyspark.sql
    except ImportError as err:
        raise ClmError(f"the spark engine needs pyspark: {INSTALL_HINT}") from err
    return pyspark.sql


def session() -> SparkSession:
    """The active SparkSession, else a new one on ``$SPARK_MASTER`` (``local[*]``), in UTC."""
    sql = _pyspark()
    spark = sql.SparkSession.getActiveSession()
    if spark is None:
        master = os.environ.get("SPARK_MASTER", "local[*]")
        builder = sql.SparkSession.builder.master(master)
        if master.startswith("local"):
            # Local Python workers (mapInPandas) run this interpreter, which has the package;
            # on a cluster PYSPARK_PYTHON names the workers' own.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = (
            builder.appName("clmmodels")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")  # no stage bars in CLI output
            .config("spark.sql.shuffle.partitions", os.environ.get("CLM_SPARK_PARTITIONS", "8"))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # pandas writes Parquet timestamps in nanoseconds, which Spark refuses as timestamps; it
    # reads them as longs instead, and utc_timestamp turns those into timestamps.
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return spark


def is_spark_frame(source: Any) -> bool:
    """True for a pyspark DataFrame (without importing pyspark when it is not loaded)."""
    return type(source).__module__.startswith("pyspark.sql")


def register_source(spark: SparkSession, name: str, source: Any) -> str:
    """Make ``source`` queryable as the temporary view ``name``; returns ``name``.

    ``source`` is a pyspark DataFrame, a pandas DataFrame, or a path or glob of Parquet or
    CSV files (CSV read as text, so ids keep their leading zeros, as with DuckDB).
    """
    frame: SparkDataFrame
    if is_spark_frame(source):
        frame = source
    elif isinstance(source, pd.DataFrame):
        frame = spark.createDataFrame(source)
    elif isinstance(source, str | Path):
        path = str(source)
        if path.endswith(".parquet"):
            frame = spark.read.parquet(path)
        else:
            frame = spark.read.option("header", True).option("inferSchema", False).csv(path)
    else:
        raise ClmError(f"the spark engine reads a DataFrame or a path, got {type(source).__name__}")
    frame.createOrReplaceTempView(name)
    return name


def utc_timestamp(column: str, kind: str = "string") -> str:
    """Spark SQL for ``column`` as a UTC timestamp (the session's time zone is UTC): text with
    offsets or a timestamp is cast; a ``bigint`` is a Parquet timestamp in nanoseconds (see
    :func:`session`)."""
    if kind == "bigint":
        return f"timestamp_micros(div(`{column}`, 1000))"
    return f"CAST(`{column}` AS TIMESTAMP)"
