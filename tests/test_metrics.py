"""Lifecycle metrics: the contract's formulas by hand, at their boundaries, and as invariants."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clmmodels import dataset_from_frames, load_dataset
from clmmodels.errors import ClmError
from clmmodels.metrics import (
    active_customers,
    cac,
    cohort_retention,
    csat,
    historical_clv,
    kpis,
    new_customers,
    nps,
    retention,
)


def tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


def test_active_window_edges():
    t = dataset_from_frames(
        transactions=tx(
            [
                ("on_d", "2024-03-01T00:00:00", 1),  # exactly d: active
                ("after_d", "2024-03-01T00:00:01", 1),  # after d: not yet
                ("edge", "2023-03-02T00:00:00", 1),  # exactly d - 365 days: out
                ("inside", "2023-03-02T00:00:01", 1),  # just inside
            ]
        )
    ).transactions
    assert sorted(active_customers(t, "2024-03-01", 365)) == ["inside", "on_d"]
    assert sorted(active_customers(t, "2024-03-01", 30)) == ["on_d"]


@pytest.fixture
def company():
    return dataset_from_frames(
        transactions=tx(
            [
                ("a", "2023-06-01", 10),  # active at start, active at end
                ("a", "2024-02-01", 10),
                ("b", "2023-07-01", 20),  # active at start, lapses by the end
                ("c", "2024-01-31T23:59:59", 5),  # acquired on the window's last day: new
                ("d", "2024-02-01", 7),  # acquired exactly at the end: not new, but active at end
                ("e", "2024-01-15", 3),  # new, has no customers row: first transaction counts
            ]
        ),
        customers=pd.DataFrame(
            {
                "customer_id": ["a", "b", "c", "d"],
                "acquired_at": ["2023-06-01", "2023-07-01", "2024-01-31T23:59:59", "2024-02-01"],
                "acquisition_channel": ["search", "social", "search", "social"],
            }
        ),
        marketing_spend=pd.DataFrame(
            {
                "date": ["2023-12-01", "2024-01-01", "2024-02-01"],
                "channel": ["search", "search", "social"],
                "spend": [1000.0, 300.0, 999.0],
            }
        ),
    )


def test_new_customers_and_retention_by_hand(company):
    # Window [2024-01-01, 2024-02-01), active window 200 days.
    assert sorted(new_customers(company, "2024-01-01", "2024-02-01")) == ["c", "e"]
    r = retention(company, "2024-01-01", "2024-02-01", active_window_days=200)
    # Just before 2024-01-01 (200 d back: 2023-06-15): b; a's 2023-06-01 purchase is too old.
    assert r["active_start"] == 1
    # Just before 2024-02-01 (back to 2023-07-16): c and e. a and d, stamped exactly at the
    # end, belong to the next window; b's purchase is too old.
    assert r["active_end"] == 2
    assert r["new_customers"] == 2
    assert r["crr"] == (2 - 2) / 1  # b, the one customer active at the start, lapsed
    assert r["churn_rate"] == 1.0


def test_crr_never_exceeds_one_with_date_only_timestamps():
    """First purchases at midnight of the window's first day are new, not active at start."""
    cdnow = load_dataset("cdnow")
    from clmmodels.metrics import kpi_series

    series = kpi_series(cdnow, "1997-01-01", "1998-07-01")
    crr = series["crr"].dropna()
    assert ((crr >= 0) & (crr <= 1)).all()
    assert series.loc["1997-01-01", "active_start"] == 0  # nobody before CDNOW's cohort
    # Acquisition months: everybody active at the start of the month is still active.
    assert series.loc["1997-02-01", "crr"] == 1.0 and series.loc["1997-03-01", "crr"] == 1.0


def test_cac_by_hand(company):
    c = cac(company, "2024-01-01", "2024-02-01")
    # Spend in the window: search 300 (the December and February rows are outside).
    # New: c (search) and e (no channel: counts in blended only).
    assert c["blended"] == 300 / 2
    assert c["by_channel"] == {"search": 300.0, "social": None}
    assert c["new_customers"] == {"search": 1, "social": 0}


def test_nps_and_csat_by_hand():
    surveys = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-02-01"]
            ),
            "nps": pd.array([10, 9, 8, 0, 6, 10], dtype="Int64"),
            "csat": pd.array([5, 4, 3, pd.NA, 1, 5], dtype="Int64"),
        }
    )
    n = nps(surveys, "2024-01-01", "2024-02-01")  # the 2024-02-01 answer is outside
    assert n["answers"] == 5 and n["nps"] == 0.0  # 2 promoters, 2 detractors, 1 passive
    points = np.array([100, 100, 0, -100, -100])
    half = 1.959964 * points.std(ddof=1) / np.sqrt(5)
    assert n["nps_ci"] == pytest.approx([-half, half], rel=1e-5)
    c = csat(surveys, "2024-01-01", "2024-02-01")
    assert c == {"csat": 50.0, "answers": 4}  # 5, 4 of {5, 4, 3, 1}


def test_historical_clv_includes_the_observation_end_day():
    t = tx([("a", "2024-01-31T23:00", 5.0), ("a", "2024-02-01", 7.0), ("b", "2024-01-01", 1.0)])
    t["timestamp"] = pd.to_datetime(t["timestamp"], format="ISO8601")
    assert historical_clv(t, "2024-01-31").to_dict() == {"a": 5.0, "b": 1.0}


def test_kpis_null_with_notes_when_tables_are_absent(cdnow_sample):
    k = kpis(cdnow_sample, "1997-06-01", "1997-07-01")
    assert k["cac"] is None and k["nps"] is None and k["csat"] is None
    assert any("marketing_spend" in n for n in k["notes"])
    assert any("surveys" in n for n in k["notes"])
    assert k["new_customers"] == 0  # CDNOW's cohort was acquired in the first quarter of 1997


def test_window_must_be_ordered(company):
    with pytest.raises(ClmError, match="must be after its start"):
        kpis(company, "2024-02-01", "2024-01-01")


def test_cdnow_cohorts_against_an_independent_computation():
    t = load_dataset("cdnow").transactions
    counts, shares = cohort_retention(t, "M")
    # Independent: a set of active months per customer, then count by hand.
    months = t.assign(m=t["timestamp"].dt.year * 12 + t["timestamp"].dt.month - 1)
    per_customer = months.groupby("customer_id")["m"].apply(set)
    first = per_customer.map(min)
    last_month = months["m"].max()
    for cohort_m in sorted(first.unique()):
        members = per_customer[first == cohort_m]
        for k in range(0, last_month - cohort_m + 1):
            expected = sum(1 for s in members if cohort_m + k in s)
            cohort = pd.Period(year=cohort_m // 12, month=cohort_m % 12 + 1, freq="M")
            assert counts.loc[cohort, k] == expected
    assert counts.iloc[0].notna().sum() == last_month - first.min() + 1
    assert (shares[0] == 1).all()


def test_on_or_after_variant_is_cumulative_from_the_right():
    t = tx(
        [
            ("a", "2024-01-05", 1),
            ("a", "2024-03-05", 1),
            ("b", "2024-01-10", 1),
            ("c", "2024-02-01", 1),
        ]
    )
    t["timestamp"] = pd.to_datetime(t["timestamp"])
    counts, _ = cohort_retention(t, "M")
    later, _ = cohort_retention(t, "M", on_or_after=True)
    jan = pd.Period("2024-01", "M")
    assert counts.loc[jan].tolist() == [2, 0, 1]  # a in March only
    assert later.loc[jan].tolist() == [2, 1, 1]  # a bought in month 2, so also "on or after" 1
    assert pd.isna(counts.loc[pd.Period("2024-02", "M"), 2])  # beyond the data: missing


@st.composite
def transactions(draw):
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.sampled_from(list("abcdefgh")), min_size=n, max_size=n))
    days = draw(st.lists(st.integers(0, 400), min_size=n, max_size=n))
    t = pd.DataFrame(
        {
            "customer_id": ids,
            "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"),
            "amount": 1.0,
        }
    )
    return t


@settings(max_examples=60, deadline=None)
@given(transactions(), st.sampled_from(["M", "W"]), st.booleans())
def test_cohort_invariants(t, period, on_or_after):
    counts, shares = cohort_retention(t, period, on_or_after=on_or_after)
    assert (shares[0] == 1).all()
    assert int(counts[0].sum()) == t["customer_id"].nunique()
    values = shares.to_numpy(dtype=float)
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1
    if on_or_after:  # never increases with k
        filled = shares.fillna(0).to_numpy()
        assert (np.diff(filled, axis=1) <= 1e-12).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=50))
def test_nps_is_within_its_scale(answers):
    s = pd.DataFrame(
        {"timestamp": pd.Timestamp("2024-01-01"), "nps": pd.array(answers, dtype="Int64")}
    )
    n = nps(s, "2024-01-01", "2024-01-02")
    assert -100 <= n["nps"] <= 100
    assert -100 <= n["nps_ci"][0] <= n["nps"] <= n["nps_ci"][1] <= 100


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=20))
def test_crr_is_one_when_nobody_lapses_and_nobody_is_new(offsets):
    """Everyone bought before the window and again inside it: all stay active, none is new."""
    rows = []
    for i, off in enumerate(offsets):
        rows.append((f"c{i}", pd.Timestamp("2023-12-01") + pd.Timedelta(days=off % 30), 1.0))
        rows.append((f"c{i}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=off % 31), 1.0))
    ds = dataset_from_frames(
        transactions=pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    )
    r = retention(ds, "2024-01-01", "2024-02-01", active_window_days=90)
    assert r["crr"] == 1.0 and r["new_customers"] == 0


def test_clm_kpis_json_and_table(small_company_dir):
    cmd = [
        sys.executable,
        "-m",
        "clmmodels.cli",
        "kpis",
        str(small_company_dir),
        "--start",
        "2023-06-01",
        "--end",
        "2023-07-01",
    ]
    r = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) >= {
        "window",
        "new_customers",
        "active_start",
        "active_end",
        "cac",
        "crr",
        "churn_rate",
        "nps",
        "csat",
        "notes",
    }
    assert doc["window"] == {"start": "2023-06-01", "end": "2023-07-01"}
    assert 0 <= doc["crr"] <= 1 and doc["churn_rate"] == pytest.approx(1 - doc["crr"])
    truth = json.loads((small_company_dir / "truth.json").read_text())["cac_by_channel"]
    for channel, value in doc["cac"]["by_channel"].items():
        assert value == pytest.approx(truth[channel], abs=0.01)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "customer retention rate" in r.stdout and "CAC, social" in r.stdout


def test_kpi_series_covers_every_month_of_the_window(small_company):
    ds = dataset_from_frames(**small_company.tables)
    series = kpi_series_of(ds, "2023-03-15", "2023-06-30")
    assert [str(m.date()) for m in series.index] == [
        "2023-03-01",
        "2023-04-01",
        "2023-05-01",
        "2023-06-01",
    ]
    one = kpis(ds, "2023-05-01", "2023-06-01")
    assert series.loc["2023-05-01", "crr"] == one["crr"]
    assert series.loc["2023-05-01", "new_customers"] == one["new_customers"]


def kpi_series_of(ds, start, end):
    from clmmodels.metrics import kpi_series

    return kpi_series(ds, start, end)


def test_cohort_curves_plot_one_line_per_cohort_and_the_mean(cdnow_sample):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clmmodels.metrics import plot_cohort_curves

    _, shares = cohort_retention(cdnow_sample.transactions, "M")
    fig, ax = plt.subplots()
    assert plot_cohort_curves(shares, ax=ax, max_cohorts=2, max_periods=6) is ax
    assert len(ax.lines) == 3
    mean = ax.lines[-1].get_ydata()
    assert len(mean) == 6 and np.allclose(mean, shares.iloc[:, 1:7].mean().to_numpy())
    plt.close(fig)


@pytest.mark.parametrize("period", ["M", "W"])
@pytest.mark.parametrize("on_or_after", [False, True])
def test_cohort_tables_on_duckdb_equal_pandas(small_company_dir, period, on_or_after):
    expected = cohort_retention(
        load_dataset(small_company_dir).transactions, period, on_or_after=on_or_after
    )
    files = cohort_retention(
        str(small_company_dir / "transactions.csv"), period, on_or_after, engine="duckdb"
    )
    for got, want in zip(files, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_cohort_tables_on_duckdb_from_a_frame(cdnow_sample):
    t = cdnow_sample.transactions
    for got, want in zip(
        cohort_retention(t, "M", engine="duckdb"), cohort_retention(t, "M"), strict=True
    ):
        pd.testing.assert_frame_equal(got, want)
    with pytest.raises(ClmError, match="engine must be"):
        cohort_retention(t, "M", engine="polars")


def assert_same_counts(got, want) -> None:
    pd.testing.assert_frame_equal(got.totals, want.totals, rtol=1e-12)
    pd.testing.assert_frame_equal(got.new_by_channel, want.new_by_channel)


def test_window_counts_on_duckdb_equal_pandas(small_company_dir, cdnow_sample):
    from clmmodels.metrics import window_counts

    ds = load_dataset(small_company_dir)
    months = pd.date_range("2023-01-01", "2024-11-01", freq="MS")
    want = window_counts(ds.transactions, months, ds.customers, active_window_days=90)
    assert want.totals["new_customers"].sum() > 0 and want.new_by_channel.shape[1] == 5
    files = [str(small_company_dir / f"{t}.csv") for t in ("transactions", "customers")]
    assert_same_counts(window_counts(*files[:1], months, files[1], 90, engine="duckdb"), want)
    # CDNOW: no customers table, so the first transaction is the acquisition
    tx = cdnow_sample.transactions
    bounds = ["1997-01-01", "1997-01-15", "1997-04-01", "1998-01-01", "1998-07-01"]
    assert_same_counts(window_counts(tx, bounds, engine="duckdb"), window_counts(tx, bounds))


def test_window_counts_on_duckdb_keep_the_boundary_instants(company):
    from clmmodels.metrics import window_counts

    bounds = ["2024-01-01", "2024-02-01"]
    got = window_counts(company.transactions, bounds, company.customers, 200, engine="duckdb")
    r = retention(company, *bounds, active_window_days=200, counts=got)
    assert (r["active_start"], r["active_end"], r["new_customers"]) == (1, 2, 2)
    assert got.new_by_channel.loc["2024-01-01"].to_dict() == {"search": 1, "social": 0}
    assert got.totals.loc["2024-01-01", "revenue"] == 8.0  # c's 5 and e's 3; a, d are at the end


def test_clm_kpis_on_duckdb_equals_pandas(small_company_dir):
    def run(engine: str) -> dict:
        window = ["--start", "2023-06-01", "--end", "2023-09-01"]
        cmd = [sys.executable, "-m", "clmmodels.cli", "kpis", str(small_company_dir), *window]
        cmd += ["--json", "--engine", engine]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    pandas_doc, duckdb_doc = run("pandas"), run("duckdb")
    assert duckdb_doc.pop("revenue") == pytest.approx(pandas_doc.pop("revenue"), rel=1e-12)
    assert duckdb_doc == pandas_doc and pandas_doc["new_customers"] > 0


def test_window_counts_on_duckdb_check_the_customers_file(tmp_path):
    from clmmodels.errors import ContractError
    from clmmodels.metrics import window_counts

    (tmp_path / "transactions.csv").write_text("customer_id,timestamp,amount\na,2024-01-02,5\n")
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,acquired_at,acquisition_channel\na,notadate,web\n")
    with pytest.raises(ContractError, match=r"'acquired_at'.*line 2 \('notadate'\)"):
        window_counts(
            str(tmp_path / "transactions.csv"), ["2024-01-01", "2024-02-01"], str(customers),
            engine="duckdb",
        )  # fmt: skip


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_an_acquisition_recorded_after_the_first_purchase_is_the_first_purchase(tmp_path, engine):
    """Customers whose acquired_at is later than their first purchases made CRR -25% and
    churn 125%: the contract now takes the earlier of the two as the acquisition."""
    from clmmodels.metrics import window_counts

    tx = tmp_path / "transactions.csv"
    rows = ["customer_id,timestamp,amount"]
    rows += [f"c{i},2023-06-0{1 + i % 5},10" for i in range(8)]  # all bought before the window
    rows += [f"c{i},2024-02-1{i % 5},10" for i in range(8)]  # and again inside it
    tx.write_text("\n".join(rows) + "\n")
    customers = tmp_path / "customers.csv"
    # Recorded as acquired inside the window, months after their first purchase.
    customers.write_text(
        "customer_id,acquired_at,acquisition_channel\n"
        + "".join(f"c{i},2024-02-01,web\n" for i in range(8))
    )
    days = [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01")]
    if engine == "pandas":
        ds = load_dataset(tmp_path)
        counts = window_counts(ds.transactions, days, ds.customers)
    else:
        counts = window_counts(str(tx), days, str(customers), engine="duckdb")
    row = counts.totals.iloc[0]
    assert row["new_customers"] == 0
    crr = (row["active_end"] - row["new_customers"]) / row["active_start"]
    assert 0 <= crr <= 1 and crr == 1.0
