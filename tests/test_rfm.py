"""RFM summaries: the published CDNOW summary, the contract's definitions, and engine identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clmmodels import calibration_holdout, dataset_from_frames, rfm_summary
from clmmodels.bundled import CDNOW_CALIBRATION_END, CDNOW_END, lifetimes_datasets_dir
from clmmodels.errors import ClmError
from clmmodels.timeunits import DAYS_PER_MONTH, days_to_units, months_to_units, units_to_days

# The published summary is rounded to two decimals.
PUBLISHED_DECIMALS = 0.005 + 1e-9


@pytest.mark.published
def test_cdnow_sample_summary_equals_published(cdnow_sample):
    """From raw transactions to Fader & Hardie's published x, t_x, T, zbar for all 2,357."""
    published = pd.read_csv(
        lifetimes_datasets_dir() / "cdnow_customers_summary_with_transactions.csv"
    )
    published = published.set_index("ID").sort_index()
    ours = rfm_summary(cdnow_sample.transactions, CDNOW_CALIBRATION_END, freq="W")
    sample_id = cdnow_sample.transactions.drop_duplicates("customer_id").set_index("customer_id")[
        "sample_id"
    ]
    ours = ours.join(sample_id.astype(int)).set_index("sample_id").sort_index()
    assert len(ours) == len(published) == 2357
    assert ours.index.equals(published.index)
    assert (ours["frequency"] == published["x"]).all()
    assert np.abs(ours["recency"] - published["t_x"]).max() <= PUBLISHED_DECIMALS
    assert np.abs(ours["T"] - published["T"]).max() <= PUBLISHED_DECIMALS
    assert np.abs(ours["monetary_value"] - published["zbar"]).max() <= PUBLISHED_DECIMALS


def tiny() -> pd.DataFrame:
    return dataset_from_frames(
        transactions=pd.DataFrame(
            {
                "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
                "timestamp": [
                    "2024-01-01T09:00",
                    "2024-01-01T20:00",  # same day: one occasion
                    "2024-01-15",
                    "2024-01-31",  # exactly on the observation end: counted
                    "2024-01-10",
                    "2024-01-20",
                    "2024-02-01",  # after the end: left out and counted
                ],
                "amount": [10.0, 5.0, 20.0, 30.0, 8.0, 0.0, 99.0],
            }
        )
    ).transactions


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_definitions_by_hand(engine):
    s = rfm_summary(tiny(), "2024-01-31", freq="D", engine=engine)
    assert s.index.tolist() == ["a", "b", "c"]
    assert s["frequency"].tolist() == [2, 0, 0]
    assert s["recency"].tolist() == [30.0, 0.0, 0.0]
    assert s["T"].tolist() == [30.0, 21.0, 11.0]
    assert s["monetary_value"].tolist() == [25.0, 0.0, 0.0]  # mean of repeat days, first excluded
    assert s.attrs["excluded"] == {"transactions after the observation end": 1}
    assert s.attrs["freq"] == "D" and s.attrs["observation_end"] == "2024-01-31"


def test_weeks_are_days_over_seven_never_floored():
    d = rfm_summary(tiny(), "2024-01-31", freq="D")
    w = rfm_summary(tiny(), "2024-01-31", freq="W")
    m = rfm_summary(tiny(), "2024-01-31", freq="M")
    assert np.allclose(w["T"], d["T"] / 7)
    assert w.loc["c", "T"] == pytest.approx(11 / 7)
    assert np.allclose(m["T"], d["T"] / DAYS_PER_MONTH)


def test_time_unit_conversions_round_trip():
    assert days_to_units(14.0, "W") == 2.0
    assert units_to_days(2.0, "W") == 14.0
    assert units_to_days(days_to_units(100.0, "M"), "M") == pytest.approx(100.0)
    assert months_to_units(12, "W") == pytest.approx(365.25 / 7)
    assert months_to_units(12, "D") == pytest.approx(365.25)
    with pytest.raises(ClmError, match="freq must be one of"):
        days_to_units(1.0, "weeks")


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_calibration_holdout_by_hand(engine):
    ch = calibration_holdout(tiny(), "2024-01-14", "2024-01-31", freq="D", engine=engine)
    # c's first purchase is after the calibration end: not scorable, counted.
    assert ch.index.tolist() == ["a", "b"]
    assert ch["frequency_cal"].tolist() == [0, 0]
    assert ch["frequency_holdout"].tolist() == [2, 0]
    assert ch["monetary_value_holdout"].tolist() == [25.0, 0.0]
    assert ch["duration_holdout"].tolist() == [17.0, 17.0]
    assert ch.attrs["excluded"] == {
        "transactions after the observation end": 1,
        "customers whose first purchase is after the calibration end": 1,
    }


def test_holdout_must_end_after_calibration():
    with pytest.raises(ClmError, match="must be after calibration_end"):
        calibration_holdout(tiny(), "2024-01-31", "2024-01-31")


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a.index.equals(b.index)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if np.issubdtype(a[col].dtype, np.floating):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-12, atol=1e-9)
        else:
            assert (a[col] == b[col]).all(), col


def test_engines_identical_on_cdnow(cdnow_sample, tmp_path):
    tx = cdnow_sample.transactions
    tx.to_parquet(tmp_path / "transactions.parquet")
    tx.assign(timestamp=tx["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp_path / "transactions.csv", index=False
    )
    base = calibration_holdout(tx, CDNOW_CALIBRATION_END, CDNOW_END)
    for source in (tx, str(tmp_path / "transactions.parquet"), str(tmp_path / "transactions.csv")):
        other = calibration_holdout(source, CDNOW_CALIBRATION_END, CDNOW_END, engine="duckdb")
        assert_same(base, other)
        assert other.attrs == base.attrs


def test_engines_identical_on_simulated(small_company, small_company_dir):
    tx = dataset_from_frames(transactions=small_company.tables["transactions"]).transactions
    base = rfm_summary(tx, "2024-06-30", freq="D")
    assert base.attrs["excluded"]["transactions after the observation end"] > 0
    from_csv = rfm_summary(
        str(small_company_dir / "transactions.csv"), "2024-06-30", freq="D", engine="duckdb"
    )
    assert_same(base, from_csv)
    assert from_csv.attrs == base.attrs


def test_duckdb_reads_globs_of_many_files(cdnow_sample, tmp_path):
    tx = cdnow_sample.transactions
    for i, part in enumerate(np.array_split(np.arange(len(tx)), 3)):
        tx.iloc[part].to_parquet(tmp_path / f"part-{i}.parquet")
    glob = rfm_summary(str(tmp_path / "part-*.parquet"), CDNOW_CALIBRATION_END, engine="duckdb")
    assert_same(rfm_summary(tx, CDNOW_CALIBRATION_END), glob)


def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "transactions.csv")
    with pytest.raises(ClmError, match="No files found"):
        rfm_summary(missing, "2024-01-01")


def test_bad_engine_and_date():
    with pytest.raises(ClmError, match="engine must be one of"):
        rfm_summary(tiny(), "2024-01-31", engine="spark-ish")
    with pytest.raises(ClmError, match="observation_end"):
        rfm_summary(tiny(), "31/01/2024")


@pytest.mark.parametrize(
    "text",
    ["2024-03-01", " 2024-03-01 ", "2024-03-01T23:30:00-05:00", "2024-03-01 10:00",
     "2024-03-01T00:00:00Z", "2024-02-29T23:59:59.999+01:00", "20240301", "2024-03"],
)  # fmt: skip
def test_the_day_read_without_pandas_is_the_day_pandas_reads(text):
    """parse_day (Python's ISO 8601 reader, so that `clm score` starts its engine before
    pandas is imported) gives the calendar day (UTC) that pandas' ISO 8601 parser gives."""
    from clmmodels.timeunits import as_day, parse_day

    ts = pd.to_datetime(text.strip(), format="ISO8601")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    assert parse_day(text) == ts.date() and as_day(text) == ts.normalize()
    assert as_day(text).unit == "ns"


@pytest.mark.parametrize("text", ["01/02/2024", "2024-13-01", "yesterday", ""])
def test_a_date_that_is_not_iso_8601_is_a_clear_error(text):
    from clmmodels.timeunits import parse_day

    with pytest.raises(ClmError, match=r"observation_end: .*(ISO 8601|a date is required)"):
        parse_day(text, "observation_end")
