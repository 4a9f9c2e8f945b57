"""The Spark engine (optional extra) gives the pandas engine's numbers, in local mode."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip(
    "pyspark", reason="the spark engine is an optional extra: pip install -e '.[spark]'"
)
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17 or later on the PATH", allow_module_level=True)

from clmmodels import calibration_holdout, rfm_summary  # noqa: E402
from clmmodels import spark as clm_spark  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session():
    spark = clm_spark.session()
    yield spark
    spark.stop()


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    for col in a.columns:
        if np.issubdtype(a[col].dtype, np.number):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-12, atol=1e-12, err_msg=col)
        else:
            assert (a[col] == b[col]).all(), col
    assert a.attrs.get("excluded") == b.attrs.get("excluded")


def test_rfm_on_cdnow_from_a_spark_frame_and_from_pandas(session, cdnow_sample):
    tx = cdnow_sample.transactions
    expected = rfm_summary(tx, "1997-09-30")
    assert_same(rfm_summary(tx, "1997-09-30", engine="spark"), expected)
    frame = session.createDataFrame(tx)
    assert_same(rfm_summary(frame, "1997-09-30", engine="spark"), expected)


def test_calibration_holdout_on_simulated_csv_files(session, small_company_dir):
    from clmmodels import load_dataset

    tx = load_dataset(small_company_dir).transactions
    expected = calibration_holdout(tx, "2024-06-30", "2024-10-31")
    got = calibration_holdout(
        str(small_company_dir / "transactions.csv"), "2024-06-30", "2024-10-31", engine="spark"
    )
    assert_same(got, expected)
    assert got.attrs["excluded"]  # transactions after the observation end are counted


def test_utc_offsets_read_as_utc(session, tmp_path):
    csv = tmp_path / "transactions.csv"
    csv.write_text(
        "customer_id,timestamp,amount\n"
        "007,2024-03-01T23:30:00-02:00,10\n"  # 01:30 UTC on March 2
        "007,2024-03-05T10:00:00,5\n"
    )
    r = rfm_summary(str(csv), "2024-03-10", freq="D", engine="spark")
    assert list(r.index) == ["007"]  # the leading zeros survive
    assert r.loc["007", "first_purchase"] == pd.Timestamp("2024-03-02")
    assert r.loc["007", "recency"] == 3


def test_clm_score_with_the_spark_engine_streams_part_files(session, small_company_dir, tmp_path):
    from click.testing import CliRunner

    from clmmodels.cli import cli

    runner = CliRunner()
    out = {}
    for engine in ("pandas", "spark"):
        path = tmp_path / f"scores-{engine}.csv"
        result = runner.invoke(
            cli,
            ["score", str(small_company_dir), "--observation-end", "2024-12-31",
             "--engine", engine, "--out", str(path)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        # Spark writes a folder of part files (mapInPandas over partitions), in id order.
        files = sorted(path.glob("part-*.csv")) if path.is_dir() else [path]
        frames = [pd.read_csv(f, dtype={"customer_id": str}) for f in files]
        out[engine] = pd.concat(frames, ignore_index=True).set_index("customer_id")
    assert engine == "spark" and path.is_dir()
    # The summaries agree to 1e-12 (above); sums in another order move the fitted optimum in
    # the ninth digit, so the scores are held to the optimiser's tolerance, as for DuckDB.
    pd.testing.assert_frame_equal(out["spark"], out["pandas"], rtol=1e-6)
    for command in ("rfm", "score", "kpis", "stages"):  # every engine command offers Spark
        assert "spark" in runner.invoke(cli, [command, "--help"]).output, command


def test_score_to_parquet_with_spark_from_a_spark_frame(session, cdnow_sample, tmp_path):
    from clmmodels.clv.score import score_customers
    from clmmodels.clv.stream import score_to_file

    tx = cdnow_sample.transactions
    expected = score_customers(tx, "1997-09-30")
    run = score_to_file(session.createDataFrame(tx), "1997-09-30", tmp_path / "s.parquet",
                        engine="spark")  # fmt: skip
    got = pd.read_parquet(tmp_path / "s.parquet")  # pyarrow reads Spark's folder as one table
    pd.testing.assert_frame_equal(got, expected.scores.reset_index(), rtol=1e-6)
    assert run.excluded == expected.excluded and run.n_customers == 2357
    assert run.total_clv == pytest.approx(expected.total_clv, rel=1e-7)


def test_cohort_tables_on_spark_equal_pandas(session, small_company_dir):
    from clmmodels import load_dataset
    from clmmodels.metrics import cohort_retention

    tx = load_dataset(small_company_dir).transactions
    for period in ("M", "W"):
        expected = cohort_retention(tx, period, on_or_after=True)
        got = cohort_retention(
            str(small_company_dir / "transactions.csv"), period, True, engine="spark"
        )
        for a, b in zip(got, expected, strict=True):
            pd.testing.assert_frame_equal(a, b)


def test_spark_checks_transaction_files_against_the_contract(
    session, tmp_path, monkeypatch, capsys
):
    from clmmodels.cli import main
    from clmmodels.errors import ContractError

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "transactions.csv").write_text(
        "customer_id,timestamp,amount\na,2024-01-02,5.0\nb,2024-01-03,-2.5\nc,not a date,1.0\n"
    )
    path = str(folder / "transactions.csv")
    with pytest.raises(ContractError) as err:
        rfm_summary(path, "2024-06-30", engine="spark")
    found = {(v.column, v.rule, v.rows) for v in err.value.violations}
    assert found == {
        ("amount", "a finite number >= 0", ("line 3",)),
        ("timestamp", "ISO 8601 timestamp", ("line 4",)),
    }
    args = ["rfm", str(folder), "--observation-end", "2024-06-30", "--engine", "spark"]
    monkeypatch.setattr("sys.argv", ["clm", *args, "--out", str(tmp_path / "rfm.csv")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and "line 3" in stderr and "line 4" in stderr


def test_window_counts_on_spark_equal_pandas(session, small_company_dir):
    from clmmodels import load_dataset
    from clmmodels.metrics import window_counts

    ds = load_dataset(small_company_dir)
    months = pd.date_range("2023-01-01", "2024-11-01", freq="MS")
    want = window_counts(ds.transactions, months, ds.customers, active_window_days=90)
    files = [str(small_company_dir / f"{t}.csv") for t in ("transactions", "customers")]
    got = window_counts(files[0], months, files[1], 90, engine="spark")
    pd.testing.assert_frame_equal(got.totals, want.totals, rtol=1e-12)
    pd.testing.assert_frame_equal(got.new_by_channel, want.new_by_channel)


@pytest.mark.parametrize(("period", "end"), [("month", None), ("week", "2024-06-03")])
def test_stage_assignment_on_spark_equals_pandas(session, small_company_dir, period, end):
    from clmmodels import load_dataset
    from clmmodels.stages import assign_stages

    ds = load_dataset(small_company_dir)
    want = assign_stages(ds.transactions, ds.events, period=period, end=end)
    files = [str(small_company_dir / f"{t}.csv") for t in ("transactions", "events")]
    got = assign_stages(*files, period=period, end=end, engine="spark")
    assert list(got.customers) == list(want.customers)
    assert got.periods.equals(want.periods) and got.counts == want.counts
    np.testing.assert_array_equal(got.codes, want.codes)
    np.testing.assert_array_equal(got.observed, want.observed)
    assert (want.counts["signals_after_end"] > 0) == (end is not None)  # exclusion exercised


def test_stage_assignment_on_spark_lists_unknown_event_types(session, tmp_path):
    from clmmodels.errors import ClmError, ContractError
    from clmmodels.stages import assign_stages

    tx = tmp_path / "transactions.csv"
    tx.write_text("customer_id,timestamp,amount\na,2024-01-02,5.0\n")
    ev = tmp_path / "events.csv"
    ev.write_text("customer_id,timestamp,event_type\na,2024-01-01,ad_click\na,2024-01-03,bogus\n")
    with pytest.raises(
        ClmError, match=r"events.csv: column 'event_type'.*first: line 3 \('bogus'\)"
    ):
        assign_stages(str(tx), str(ev), engine="spark")
    # an event file that breaks the contract is checked before Spark reads it
    ev.write_text("customer_id,timestamp,event_type\na,2024-01-01,ad_click\n,yesterday,\n")
    with pytest.raises(ContractError) as err:
        assign_stages(str(tx), str(ev), engine="spark")
    found = {(v.column, v.rule, v.rows) for v in err.value.violations}
    assert found == {
        ("customer_id", "not empty", ("line 3",)),
        ("timestamp", "ISO 8601 timestamp", ("line 3",)),
        ("event_type", "not empty", ("line 3",)),
    }


def test_parquet_written_by_pandas_nanoseconds_and_all(session, cdnow_sample, tmp_path):
    import pyarrow.parquet as pq

    tx = cdnow_sample.transactions
    path = tmp_path / "transactions.parquet"
    tx.to_parquet(path, index=False)
    unit = pq.ParquetFile(path).schema.column(1).logical_type
    assert "timeUnit=nanoseconds" in str(unit)  # what Spark refuses as a timestamp
    expected = rfm_summary(tx, "1997-09-30")
    assert_same(rfm_summary(str(path), "1997-09-30", engine="spark"), expected)


def test_the_profile_on_spark_equals_duckdb(session, small_company):
    """clm profile --engine spark: the stages and purchase histories aggregated by Spark give
    the same profile as DuckDB."""
    from clmmodels import dataset_from_frames
    from clmmodels.profile import customer_profile

    ds = dataset_from_frames(**small_company.tables)
    fast = {"churn_model": "logistic", "snapshots": 1}
    duck = customer_profile(ds, "2024-10-01", engine="duckdb", **fast)
    spark = customer_profile(ds, "2024-10-01", engine="spark", **fast)
    pd.testing.assert_frame_equal(spark, duck, check_exact=False, rtol=1e-12, atol=1e-12)
