"""Every rule of the data contract: a failing case each, and a passing case per accepted oddity."""

from __future__ import annotations

import pandas as pd
import pytest

from clmmodels import ContractError, MissingTableError, dataset_from_frames, load_dataset
from clmmodels.errors import ClmError

from .conftest import VALID


def violations(path) -> list:
    with pytest.raises(ContractError) as err:
        load_dataset(path)
    return err.value.violations


def replace_line(table: str, old: str, new: str) -> dict:
    assert old in VALID[table]
    return {table: VALID[table].replace(old, new)}


def test_valid_dataset_loads_typed(make_dataset):
    ds = load_dataset(make_dataset())
    assert ds.present == ["transactions", "customers", "events", "marketing_spend", "surveys"]
    tx = ds.transactions
    assert tx["customer_id"].tolist() == ["00042", "00042", "00042", "42"]
    assert pd.api.types.is_datetime64_dtype(tx["timestamp"])
    assert tx["amount"].dtype == float
    assert ds.surveys["nps"].dtype == "Int64"
    assert ds.customers["region"].tolist() == ["north", "south"]  # extra columns kept


KNOWN = "a known event type (vocabulary or mapping)"
# (table, line in VALID, replacement, column, rule, offending CSV lines)
BROKEN = [
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        ",2024-01-20,7.25,o4",
        "customer_id",
        "not empty",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "  ,2024-01-20,7.25,o4",
        "customer_id",
        "not empty",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "\u00a0,2024-01-20,7.25,o4",  # a no-break space is blank too
        "customer_id",
        "not empty",
        ["line 5"],
    ),
    ("transactions", "42,2024-01-20,7.25,o4", "42,,7.25,o4", "timestamp", "not empty", ["line 5"]),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,20/01/2024,7.25,o4",
        "timestamp",
        "ISO 8601 timestamp",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,-7.25,o4",
        "amount",
        "a finite number >= 0",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,inf,o4",
        "amount",
        "a finite number >= 0",
        ["line 5"],
    ),
    (  # finite, but its sums overflow: an empty monetary value on pandas, inf on DuckDB
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,1e308,o4",
        "amount",
        "at most 1e15",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,seven,o4",
        "amount",
        "a finite number >= 0",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,,o4",
        "amount",
        "not empty",
        ["line 5"],
    ),
    (
        "transactions",
        "42,2024-01-20,7.25,o4",
        "42,2024-01-20,7.25,o1",
        "order_id",
        "unique",
        ["line 2", "line 5"],
    ),
    (
        "customers",
        "42,2024-01-20,social,south",
        "00042,2024-01-20,social,south",
        "customer_id",
        "unique",
        ["line 2", "line 3"],
    ),
    (
        "customers",
        "42,2024-01-20,social,south",
        ",2024-01-20,social,south",
        "customer_id",
        "not empty",
        ["line 3"],
    ),
    (
        "customers",
        "42,2024-01-20,social,south",
        "42,,social,south",
        "acquired_at",
        "not empty",
        ["line 3"],
    ),
    (
        "customers",
        "42,2024-01-20,social,south",
        "42,yesterday,social,south",
        "acquired_at",
        "ISO 8601 timestamp",
        ["line 3"],
    ),
    (
        "customers",
        "42,2024-01-20,social,south",
        "42,2024-01-20,,south",
        "acquisition_channel",
        "not empty",
        ["line 3"],
    ),
    (
        "events",
        "42,2024-01-19,site_visit",
        ",2024-01-19,site_visit",
        "customer_id",
        "not empty",
        ["line 4"],
    ),
    (
        "events",
        "42,2024-01-19,site_visit",
        "42,2024-13-19,site_visit",
        "timestamp",
        "ISO 8601 timestamp",
        ["line 4"],
    ),
    (
        "events",
        "42,2024-01-19,site_visit",
        "42,2024-01-19,tiktok_view",
        "event_type",
        KNOWN,
        ["line 4"],
    ),
    ("events", "42,2024-01-19,site_visit", "42,2024-01-19,", "event_type", "not empty", ["line 4"]),
    (
        "marketing_spend",
        "2024-01-01,social,50",
        "2024-01-01T12:00:00,social,50",
        "date",
        "ISO 8601 date without a time of day",
        ["line 3"],
    ),
    (
        "marketing_spend",
        "2024-01-01,social,50",
        "Jan 2024,social,50",
        "date",
        "ISO 8601 date without a time of day",
        ["line 3"],
    ),
    (
        "marketing_spend",
        "2024-01-01,social,50",
        "2024-01-01,,50",
        "channel",
        "not empty",
        ["line 3"],
    ),
    (
        "marketing_spend",
        "2024-01-01,social,50",
        "2024-01-01,social,-50",
        "spend",
        "a finite number >= 0",
        ["line 3"],
    ),
    (
        "marketing_spend",
        "2024-01-01,social,50",
        "2024-01-01,tv,50",
        "channel",
        "matches customers.acquisition_channel values",
        ["line 3"],
    ),
    (
        "surveys",
        "00042,2024-01-06,9,",
        "00042,2024-01-06,11,",
        "nps",
        "an integer from 0 to 10",
        ["line 2"],
    ),
    (
        "surveys",
        "00042,2024-01-06,9,",
        "00042,2024-01-06,8.5,",
        "nps",
        "an integer from 0 to 10",
        ["line 2"],
    ),
    (
        "surveys",
        "42,2024-01-21,,4",
        "42,2024-01-21,,6",
        "csat",
        "an integer from 1 to 5",
        ["line 3"],
    ),
    (
        "surveys",
        "42,2024-01-21,,4",
        "42,2024-01-21,,0",
        "csat",
        "an integer from 1 to 5",
        ["line 3"],
    ),
    (
        "surveys",
        "42,2024-01-21,,4",
        "42,2024-01-21,,",
        None,
        "at least one of nps, csat per row",
        ["line 3"],
    ),
    ("surveys", "42,2024-01-21,,4", ",2024-01-21,,4", "customer_id", "not empty", ["line 3"]),
]


@pytest.mark.parametrize(("table", "old", "new", "column", "rule", "rows"), BROKEN)
def test_each_rule_is_enforced_with_file_column_rule_and_rows(
    make_dataset, table, old, new, column, rule, rows
):
    path = make_dataset(replace_line(table, old, new))
    found = [v for v in violations(path) if v.rule == rule]
    assert len(found) == 1, violations(path)
    v = found[0]
    assert v.file.endswith(f"{table}.csv")
    assert v.column == column
    assert list(v.rows) == rows
    assert v.count == len(rows)
    message = str(v)
    assert f"{table}.csv" in message and rule in message and rows[0] in message


# The file engines (DuckDB) check transaction and event files in SQL: the same rules, rows
# and values. In Parquet only empty ids and amounts can be wrong: typed columns hold no text to
# misread. Event types outside the mapping are stage assignment's to report (test_stages).
SQL_CHECKED = [
    b for b in BROKEN if b[0] in ("transactions", "events") and b[4] not in ("unique", KNOWN)
]
SQL_CASES = [(*b, "csv") for b in SQL_CHECKED] + [
    (*b, "parquet") for b in SQL_CHECKED if b[4] == "not empty" and b[3] != "timestamp"
]


@pytest.mark.parametrize(("table", "old", "new", "column", "rule", "rows", "fmt"), SQL_CASES)
def test_duckdb_checks_transaction_files_as_the_contract_does(
    make_dataset, tmp_path, table, old, new, column, rule, rows, fmt
):
    from clmmodels import duck

    path = make_dataset(replace_line(table, old, new)) / f"{table}.csv"
    if fmt == "parquet":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if column == "amount":
            raw["amount"] = pd.to_numeric(raw["amount"])
        path = tmp_path / f"{table}.parquet"
        raw.to_parquet(path, index=False)
        rows = [f"row {int(line.split()[1]) - 1}" for line in rows]  # no header line
    expected = [v for v in violations(path.parent) if v.file == str(path)] if fmt == "csv" else []
    con = duck.connect()
    with pytest.raises(ContractError) as err:
        duck.register_checked(con, table, str(path))
    (v,) = err.value.violations
    assert (v.file, v.column, v.rule) == (str(path), column, rule)
    assert list(v.rows) == rows
    if expected:
        assert v == expected[0]


def test_duckdb_reports_missing_transaction_columns(tmp_path):
    from clmmodels import duck

    path = tmp_path / "transactions.csv"
    path.write_text("customer_id,amount\n1,2\n")
    with pytest.raises(ContractError, match="column 'timestamp': rule 'required column'"):
        duck.register_checked(duck.connect(), "transactions", str(path))


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("transactions", "customer_id"),
        ("transactions", "timestamp"),
        ("transactions", "amount"),
        ("customers", "acquired_at"),
        ("customers", "acquisition_channel"),
        ("events", "event_type"),
        ("marketing_spend", "spend"),
        ("surveys", "timestamp"),
    ],
)
def test_missing_required_column(make_dataset, table, column):
    header, *rest = VALID[table].splitlines()
    cols = header.split(",")
    i = cols.index(column)
    text = "\n".join(
        ",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in [header, *rest]
    )
    found = violations(make_dataset({table: text + "\n"}))
    assert any(v.column == column and v.rule == "required column" for v in found), found


def test_surveys_need_nps_or_csat_column(make_dataset):
    found = violations(make_dataset({"surveys": "customer_id,timestamp\n1,2024-01-01\n"}))
    assert any(v.rule == "required column" and v.column == "nps" for v in found)


def test_unknown_event_types_are_listed(make_dataset):
    text = VALID["events"] + "42,2024-01-22,tiktok_view\n42,2024-01-23,snap\n42,2024-01-24,snap\n"
    (v,) = violations(make_dataset({"events": text}))
    assert v.count == 3
    assert "snap, tiktok_view" in v.detail


def test_users_own_event_mapping(make_dataset):
    text = "customer_id,timestamp,event_type\n1,2024-01-01,tiktok_view\n1,2024-01-02,checkout\n"
    path = make_dataset({"events": text})
    ds = load_dataset(path, event_stages={"tiktok_view": "awareness", "checkout": "evaluation"})
    assert len(ds.events) == 2
    with pytest.raises(ClmError, match="unknown stages"):
        load_dataset(path, event_stages={"tiktok_view": "hype"})


def test_header_only_table_is_an_error(make_dataset):
    (v,) = violations(make_dataset({"surveys": "customer_id,timestamp,nps,csat\n"}))
    assert v.rule == "has a header and at least one row" and v.file.endswith("surveys.csv")


def test_empty_file_is_an_error(make_dataset):
    (v,) = violations(make_dataset({"events": ""}))
    assert v.rule == "has a header and at least one row"


def test_non_utf8_file_is_an_error(make_dataset):
    latin1 = "customer_id,acquired_at,acquisition_channel\n1,2024-01-05,caf\xe9\n".encode("latin-1")
    found = violations(make_dataset({"customers": latin1}, drop=("marketing_spend",)))
    assert any(v.rule == "CSV is UTF-8" and v.file.endswith("customers.csv") for v in found)


def test_all_violations_of_all_tables_are_reported_together(make_dataset):
    path = make_dataset(
        {
            **replace_line("transactions", "42,2024-01-20,7.25,o4", "42,2024-01-20,-1,o4"),
            **replace_line("surveys", "00042,2024-01-06,9,", "00042,2024-01-06,12,"),
            **replace_line("events", "42,2024-01-19,site_visit", "42,bad,site_visit"),
        }
    )
    with pytest.raises(ContractError) as err:
        load_dataset(path)
    rules = {(v.file.rsplit("/", 1)[-1], v.rule) for v in err.value.violations}
    assert rules == {
        ("transactions.csv", "a finite number >= 0"),
        ("surveys.csv", "an integer from 0 to 10"),
        ("events.csv", "ISO 8601 timestamp"),
    }
    assert "3 violations" in str(err.value)


def test_csv_and_parquet_of_one_table_is_ambiguous(make_dataset):
    path = make_dataset()
    pd.DataFrame({"customer_id": ["1"], "timestamp": ["2024-01-01"], "amount": [1.0]}).to_parquet(
        path / "transactions.parquet"
    )
    with pytest.raises(ClmError, match=r"both transactions\.csv and transactions\.parquet"):
        load_dataset(path)


def test_not_a_folder(tmp_path):
    with pytest.raises(ClmError, match="not a dataset folder"):
        load_dataset(tmp_path / "nope")


def test_folder_without_tables(tmp_path):
    with pytest.raises(ClmError, match="no contract tables"):
        load_dataset(tmp_path)


# Accepted oddities


def test_utf8_bom_is_accepted(make_dataset):
    ds = load_dataset(make_dataset({"transactions": "\ufeff" + VALID["transactions"]}))
    assert ds.transactions.columns[0] == "customer_id"


def test_absent_optional_tables_are_accepted(make_dataset):
    ds = load_dataset(make_dataset(drop=("customers", "events", "marketing_spend", "surveys")))
    assert ds.present == ["transactions"]
    with pytest.raises(MissingTableError, match="CAC needs the 'marketing_spend' table"):
        ds.require("marketing_spend", "CAC")


def test_leading_zeros_are_kept(make_dataset):
    ds = load_dataset(make_dataset())
    assert set(ds.transactions["customer_id"]) == {"00042", "42"}
    assert ds.transactions.groupby("customer_id").size().to_dict() == {"00042": 3, "42": 1}


def test_utc_offsets_are_converted_then_dropped(make_dataset):
    text = (
        "customer_id,timestamp,amount\n"
        "1,2024-03-01T23:30:00-02:00,1\n2,2024-03-01T01:00:00+02:00,1\n3,2024-03-01,1\n"
    )
    ds = load_dataset(make_dataset({"transactions": text}, drop=("customers", "marketing_spend")))
    assert ds.transactions["timestamp"].tolist() == [
        pd.Timestamp("2024-03-02 01:30"),
        pd.Timestamp("2024-02-29 23:00"),
        pd.Timestamp("2024-03-01"),
    ]
    assert ds.transactions["timestamp"].dt.tz is None


def test_an_offset_on_one_row_does_not_shift_the_rows_without_one(make_dataset):
    """pandas' one-pass parse carried +09:00 from the first row to every timezone-less time
    after it (114 of 300 customers got another T); each row is now read by itself, as DuckDB
    reads it."""
    from clmmodels import duck

    text = (
        "customer_id,timestamp,amount\n"
        "1,2024-03-01T10:00:00+09:00,1\n2,2024-03-01T10:00:00,1\n3,2024-03-01 10:00,1\n"
        "4,2024-03-01T10:00:00Z,1\n5,2024-03-01T10:00:00-0530,1\n6,2024-03-01,1\n"
    )
    folder = make_dataset({"transactions": text}, drop=("customers", "marketing_spend"))
    expected = [
        pd.Timestamp("2024-03-01 01:00"),
        pd.Timestamp("2024-03-01 10:00"),
        pd.Timestamp("2024-03-01 10:00"),
        pd.Timestamp("2024-03-01 10:00"),
        pd.Timestamp("2024-03-01 15:30"),
        pd.Timestamp("2024-03-01"),
    ]
    assert load_dataset(folder).transactions["timestamp"].tolist() == expected
    con = duck.connect()
    view = duck.register_checked(con, "transactions", str(folder / "transactions.csv"))
    sql = duck.utc_timestamp(con, view, "timestamp")
    assert [r[0] for r in con.execute(f"SELECT {sql} FROM {view}").fetchall()] == expected


def test_order_id_is_optional(make_dataset):
    text = "customer_id,timestamp,amount\n1,2024-01-01,1\n"
    assert len(load_dataset(make_dataset({"transactions": text})).transactions) == 1


def test_surveys_with_only_one_score_column(make_dataset):
    ds = load_dataset(make_dataset({"surveys": "customer_id,timestamp,csat\n1,2024-01-01,5\n"}))
    assert ds.surveys["csat"].tolist() == [5]


def test_parquet_tables_are_accepted(make_dataset, tmp_path):
    src = load_dataset(make_dataset())
    out = tmp_path / "pq"
    out.mkdir()
    for table in src.present:
        frame = src.table(table)
        if table == "transactions":  # typed, tz-aware timestamps and integer-like ids from Parquet
            frame = frame.assign(timestamp=frame["timestamp"].dt.tz_localize("Europe/Paris"))
        frame.to_parquet(out / f"{table}.parquet")
    ds = load_dataset(out)
    assert ds.present == src.present
    assert ds.transactions["customer_id"].tolist() == src.transactions["customer_id"].tolist()
    shifted = src.transactions["timestamp"] - pd.Timedelta(hours=1)  # Paris is UTC+1 in January
    assert ds.transactions["timestamp"].tolist() == shifted.tolist()


def test_parquet_violations_are_labelled_by_row(tmp_path):
    pd.DataFrame(
        {"customer_id": ["1", "2"], "timestamp": ["2024-01-01", "x"], "amount": [1.0, 2.0]}
    ).to_parquet(tmp_path / "transactions.parquet")
    (v,) = violations(tmp_path)
    assert v.rows == ("row 2",)


def test_frames_are_checked_like_files():
    tx = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"], "amount": [1, -2]}
    )
    with pytest.raises(ContractError, match="row 1"):
        dataset_from_frames(transactions=tx)


def test_for_channel_keeps_one_channels_customers_in_every_table(make_dataset):
    ds = load_dataset(make_dataset())
    search = ds.for_channel("search")
    assert set(search.transactions["customer_id"]) == {"00042"}
    assert set(search.events["customer_id"]) == {"00042"}
    assert set(search.surveys["customer_id"]) == {"00042"}
    assert search.marketing_spend["channel"].tolist() == ["search"]
    assert search.name.endswith("(search)")
    with pytest.raises(ClmError, match="no customers acquired through 'tv'; channels are search"):
        ds.for_channel("tv")
    with pytest.raises(MissingTableError):
        load_dataset("cdnow_sample").for_channel("search")


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_column_named_twice_in_the_header_is_an_error(make_dataset, engine):
    """`amount,amount` used the first column silently; now the file, the column and its
    positions, on every engine."""
    from clmmodels import duck

    text = "customer_id,timestamp,amount,amount\n1,2024-03-01,5,7\n"
    folder = make_dataset({"transactions": text}, drop=("customers", "marketing_spend"))
    with pytest.raises(ContractError) as err:
        if engine == "pandas":
            load_dataset(folder)
        else:
            duck.register_checked(duck.connect(), "transactions", str(folder / "transactions.csv"))
    (v,) = [v for v in err.value.violations if v.rule == "column names are unique"]
    assert v.file.endswith("transactions.csv") and v.column == "amount"
    assert "columns 3, 4" in str(v)
