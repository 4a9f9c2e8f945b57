"""Hostile and careless inputs (issue #22): one set of rules, the same words on every path.

Each case runs through ``clm validate`` (the dataset loader) and through the commands that read
files with an engine (``clm score``, ``clm stages``, ``clm kpis``, ``clm profile``, ``clm churn``
on DuckDB): exit 2, the file,
the column, the rule and the first offending lines, and never a traceback.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from clmmodels import rfm_summary
from clmmodels.contract import latest_timestamp

from .conftest import VALID, run_clm

COMMANDS = {
    "validate": [],
    "score": ["--observation-end", "2024-03-31", "--engine", "duckdb"],
    "stages": ["--engine", "duckdb"],
    "kpis": ["--start", "2024-01-01", "--end", "2024-02-01", "--engine", "duckdb"],
    # Both leave the transactions and events in their files for DuckDB to check and read.
    "profile": ["--as-of", "2024-03-01", "--churn-model", "logistic", "--snapshots", "1"],
    "churn": ["--as-of", "2024-03-01", "--model", "logistic", "--snapshots", "1"],
}


def run(monkeypatch, capsys, command: str, folder, tmp_path) -> tuple[int, str]:
    args = [command, str(folder), *COMMANDS[command]]
    if command in ("score", "stages", "profile", "churn"):
        args += ["--out", str(tmp_path / "out.csv")]
    return run_clm(monkeypatch, capsys, *args)


def tx_with(line: str) -> str:
    """The valid transactions with their last row replaced by ``line``."""
    return VALID["transactions"].replace("42,2024-01-20,7.25,o4", line)


TIME_CASES = {
    "year 9999 (beyond pandas' 2262)": "42,9999-01-20,7.25,o4",
    "year 2262": "42,2262-04-12,7.25,o4",
    "a year in the future": f"42,{latest_timestamp().year + 5}-01-20,7.25,o4",
    "before 1900": "42,1899-12-31,7.25,o4",
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", TIME_CASES)
def test_implausible_timestamps_are_errors_everywhere(
    make_dataset, monkeypatch, capsys, tmp_path, command, case
):
    folder = make_dataset({"transactions": tx_with(TIME_CASES[case])})
    code, text = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, text
    assert "Traceback" not in text
    assert "transactions.csv: column 'timestamp': rule 'from 1900-01-01 to today'" in text
    assert "first: line 5" in text


def test_tomorrow_is_accepted_for_time_zones_ahead_of_utc():
    now = pd.Timestamp("2026-11-26 23:30")
    assert latest_timestamp(now) == pd.Timestamp("2026-11-28")


UNREADABLE = {
    "Latin-1": (
        "CSV is UTF-8",
        "customer_id,timestamp,amount\ncaf\xe9,2024-01-05,1\n".encode("latin-1"),
    ),
    "UTF-16": ("CSV is UTF-8", "customer_id,timestamp,amount\n1,2024-01-05,1\n".encode("utf-16")),
    "gzip": ("CSV is UTF-8", gzip.compress(b"customer_id,timestamp,amount\n1,2024-01-05,1\n")),
    "binary": (None, bytes(np.random.default_rng(3).integers(0, 256, 400, dtype=np.uint8))),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_files_are_errors_everywhere(
    make_dataset, monkeypatch, capsys, tmp_path, command, case
):
    rule, content = UNREADABLE[case]
    folder = make_dataset({"transactions": content})
    code, text = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, text
    assert "Traceback" not in text
    assert "transactions.csv: rule '" in text
    if rule:
        assert f"rule '{rule}'" in text and "not UTF-8 text" in text
    else:
        assert "rule 'readable CSV or Parquet'" in text or "rule 'CSV is UTF-8'" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_a_header_only_file_is_an_error_everywhere(
    make_dataset, monkeypatch, capsys, tmp_path, command
):
    folder = make_dataset({"transactions": "customer_id,timestamp,amount,order_id\n"})
    code, text = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, text
    assert "transactions.csv: rule 'has a header and at least one row'" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_epoch_integers_in_parquet_are_not_guessed(
    make_dataset, monkeypatch, capsys, tmp_path, command
):
    folder = make_dataset(drop=("transactions",))
    pd.DataFrame(
        {
            "customer_id": ["1", "2"],
            "timestamp": [1704412800000, 1704499200000],
            "amount": [1.0, 2.0],
        }
    ).to_parquet(folder / "transactions.parquet", index=False)
    code, text = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, text
    assert "column 'timestamp': rule 'ISO 8601 timestamp'" in text
    assert "holds BIGINT values, not timestamps" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_lines_are_counted_as_an_editor_counts_them(
    make_dataset, monkeypatch, capsys, tmp_path, command
):
    # Line 2 holds a note over three lines, so the bad amount of the third record is on line 6.
    text = (
        "customer_id,timestamp,amount,note\n"
        '1,2024-01-05,1,"one\ntwo\nthree"\n'
        "2,2024-01-06,2,\n"
        "3,2024-01-07,-3,\n"
    )
    folder = make_dataset({"transactions": text})
    code, out = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, out
    assert "rule 'a finite number >= 0' broken by 1 row; first: line 6 ('-3')" in out


def test_timestamp_text_is_read_the_same_on_every_path(make_dataset, tmp_path):
    from clmmodels import load_dataset

    folder = make_dataset({"transactions": tx_with("42, 2024-01-20T10:00:00+02:00 ,7.25,o4")})
    loaded = load_dataset(folder).transactions
    files = rfm_summary(str(folder / "transactions.csv"), "2024-03-31", freq="D")
    frames = rfm_summary(loaded, "2024-03-31", freq="D")
    assert loaded["timestamp"].iloc[-1] == pd.Timestamp("2024-01-20 08:00")
    pd.testing.assert_frame_equal(files, frames)


def test_duckdb_sums_are_the_same_bit_for_bit_run_after_run(tmp_path):
    """Amounts of very different sizes on one customer's days, over several row groups that
    DuckDB's threads add up in whatever order they finish: exact decimal sums do not care."""
    rng = np.random.default_rng(11)
    n = 600_000
    tx = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 50, n).astype(str),
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 3, n), unit="D"),
            "amount": np.round(10.0 ** rng.uniform(-2, 9, n), 2),
        }
    )
    path = tmp_path / "transactions.parquet"
    tx.to_parquet(path, index=False, row_group_size=20_000)
    runs = [rfm_summary(str(path), "2024-01-31", freq="D") for _ in range(6)]
    for other in runs[1:]:
        assert (
            other["monetary_value"].to_numpy().tobytes()
            == runs[0]["monetary_value"].to_numpy().tobytes()
        )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_year_alone_is_not_a_timestamp_anywhere(
    make_dataset, monkeypatch, capsys, tmp_path, command
):
    # pandas read "2024" as 2024-01-01 and DuckDB refused it: one reader now, one answer.
    folder = make_dataset({"transactions": tx_with("42,2024,7.25,o4")})
    code, text = run(monkeypatch, capsys, command, folder, tmp_path)
    assert code == 2, text
    assert "column 'timestamp': rule 'ISO 8601 timestamp' broken by 1 row; first: line 5" in text


def test_a_file_changed_after_its_check_is_checked_again(
    make_dataset, monkeypatch, capsys, tmp_path
):
    """The engines check a file once per process (the profile reads it several times), keyed
    by its path, size and modification time: a file rewritten since is checked again."""
    folder = make_dataset({})
    code, text = run(monkeypatch, capsys, "stages", folder, tmp_path)
    assert code == 0, text
    (folder / "transactions.csv").write_text(tx_with(TIME_CASES["year 9999 (beyond pandas' 2262)"]))
    code, text = run(monkeypatch, capsys, "stages", folder, tmp_path)
    assert code == 2, text
    assert "transactions.csv: column 'timestamp': rule 'from 1900-01-01 to today'" in text
