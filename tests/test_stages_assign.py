"""The stage assignment rule, edge by edge, on tiny hand-made logs (both engines)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clmmodels import ClmError, simulate_company
from clmmodels.stages import assign_stages

ENGINES = ["pandas", "duckdb"]


def frames(tx_rows=(), ev_rows=()):
    tx = pd.DataFrame(list(tx_rows), columns=["customer_id", "timestamp", "amount"])
    tx["timestamp"] = pd.to_datetime(tx["timestamp"], format="ISO8601").astype("datetime64[ns]")
    tx["amount"] = tx["amount"].astype(float)
    ev = pd.DataFrame(list(ev_rows), columns=["customer_id", "timestamp", "event_type"])
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], format="ISO8601").astype("datetime64[ns]")
    return tx, (ev if len(ev) else None)


def stages_of(history, customer="a") -> list[str]:
    long = history.to_long()
    return long.loc[long["customer_id"] == customer, "stage"].astype(str).tolist()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_latest_signal_of_a_period_sets_its_stage(engine):
    tx, ev = frames(
        ev_rows=[
            ("a", "2024-01-03", "product_view"),  # evaluation
            ("a", "2024-01-20", "site_visit"),  # engagement: latest in January
            ("a", "2024-02-02", "email_open"),
            ("a", "2024-02-02", "review_posted"),  # same instant: the later stage wins
        ]
    )
    h = assign_stages(tx, ev, churn_after=None, engine=engine)
    assert stages_of(h) == ["engagement", "advocacy"]
    assert h.observed.all()


def test_ties_are_broken_by_stage_order_before_1970_too():
    """The latest signal is found as max(time * 8 + stage), negative before the epoch."""
    tx, ev = frames(
        ev_rows=[
            ("a", "1965-03-02 10:00", "review_posted"),
            ("a", "1965-03-02 10:00", "email_open"),  # same instant: advocacy still wins
            ("a", "1965-04-01", "product_view"),
        ]
    )
    assert stages_of(assign_stages(tx, ev, churn_after=None)) == ["advocacy", "evaluation"]


@pytest.mark.parametrize("engine", ENGINES)
def test_first_transaction_day_is_purchase_and_later_ones_retention(engine):
    tx, ev = frames(
        tx_rows=[
            ("a", "2024-01-05T09:00", 10),
            ("a", "2024-01-05T18:00", 5),  # split first order: still the first purchase
            ("a", "2024-03-10", 7),
        ],
        ev_rows=[("a", "2024-01-01", "ad_click")],
    )
    h = assign_stages(tx, ev, churn_after=None, engine=engine)
    assert stages_of(h) == ["purchase", "purchase", "retention"]
    assert h.observed[0].tolist() == [True, False, True]


@pytest.mark.parametrize("engine", ENGINES)
def test_events_alone_or_with_transactions_give_the_same_stages(engine):
    """An events-only log (its orders as purchase events) assigns what the transactions do;
    the same orders in both tables are not counted twice (one purchase, then retention)."""
    orders = [("a", "2024-01-05T09:00", 10), ("a", "2024-03-10T12:00", 7), ("b", "2024-02-01", 3)]
    order_events = [
        ("a", "2024-01-05T09:00", "purchase"),
        ("a", "2024-03-10T12:00", "repeat_purchase"),
        ("b", "2024-02-01", "purchase"),
    ]
    visits = [("a", "2024-02-14", "site_visit"), ("b", "2024-03-02", "review_posted")]
    tx, _ = frames(tx_rows=orders)
    _, ev_only = frames(ev_rows=order_events + visits)
    _, visits_only = frames(ev_rows=visits)
    from_tx = assign_stages(tx, visits_only, churn_after=None, engine=engine)
    from_events = assign_stages(None, ev_only, churn_after=None, engine=engine)
    from_both = assign_stages(tx, ev_only, churn_after=None, engine=engine)
    for customer in ("a", "b"):
        want = stages_of(from_tx, customer)
        assert stages_of(from_events, customer) == want
        assert stages_of(from_both, customer) == want
    assert stages_of(from_tx, "a") == ["purchase", "engagement", "retention"]
    assert from_both.observed.sum() == from_tx.observed.sum()
    with pytest.raises(ClmError, match="transactions or events"):
        assign_stages(None, None, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_silence_keeps_the_stage_until_the_kth_silent_period_churns(engine):
    tx, ev = frames(
        tx_rows=[("a", "2024-01-05", 10), ("b", "2024-06-05", 10)],  # b extends the grid
    )
    h = assign_stages(tx, ev, churn_after=3, engine=engine)
    # January purchase; Feb and Mar silent (kept); April is the 3rd silent month: churned.
    assert stages_of(h) == ["purchase", "purchase", "purchase", "churned", "churned", "churned"]
    h1 = assign_stages(tx, ev, churn_after=1, engine=engine)
    assert stages_of(h1)[:2] == ["purchase", "churned"]
    never = assign_stages(tx, ev, churn_after=None, engine=engine)
    assert set(stages_of(never)) == {"purchase"}


@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_churn_event_then_a_comeback(engine):
    tx, ev = frames(
        tx_rows=[("a", "2024-01-05", 10), ("a", "2024-05-20", 30)],
        ev_rows=[("a", "2024-02-10", "cancel")],
    )
    h = assign_stages(tx, ev, churn_after=None, engine=engine)
    # Churned in February by the event, silent March and April stay churned, May comes back.
    assert stages_of(h) == ["purchase", "churned", "churned", "churned", "retention"]


@pytest.mark.parametrize("engine", ENGINES)
def test_customers_enter_at_their_first_signal_and_end_cuts_and_counts(engine):
    tx, ev = frames(
        tx_rows=[("a", "2024-01-05", 10), ("b", "2024-02-15", 10), ("a", "2024-04-01", 3)],
        ev_rows=[("b", "2024-03-31T23:59:59", "support_ticket")],
    )
    h = assign_stages(tx, ev, churn_after=None, end="2024-04-01", engine=engine)
    assert [str(p) for p in h.periods] == ["2024-01", "2024-02", "2024-03"]
    assert h.codes[h.customers.get_loc("b")].tolist()[0] == -1  # not entered in January
    assert stages_of(h, "b") == ["purchase", "post_purchase"]
    assert h.counts["signals_after_end"] == 1
    # An end beyond the data extends the grid with silent periods.
    later = assign_stages(tx, ev, churn_after=2, end="2024-07-01", engine=engine)
    assert len(later.periods) == 6 and stages_of(later, "b")[-1] == "churned"


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_event_types_are_an_error_listing_them(engine):
    tx, ev = frames(
        tx_rows=[("a", "2024-01-05", 10)],
        ev_rows=[
            ("a", "2024-01-01", "ad_click"),
            ("a", "2024-01-02", "webinar"),
            ("a", "2024-01-03", "webinar"),
            ("a", "2024-01-04", "podcast"),
        ],
    )
    with pytest.raises(ClmError, match=r"3 rows.*'podcast' \(1 rows\), 'webinar' \(2 rows\)"):
        assign_stages(tx, ev, engine=engine)
    mapping = {"ad_click": "awareness", "webinar": "evaluation", "podcast": "engagement"}
    h = assign_stages(tx, ev, event_stages=mapping, churn_after=None, engine=engine)
    assert stages_of(h) == ["purchase"]


@pytest.mark.parametrize("engine", ENGINES)
def test_weeks_start_on_monday_and_quarters_on_calendar_quarters(engine):
    tx, ev = frames(
        tx_rows=[("a", "2024-01-07", 1)],  # a Sunday
        ev_rows=[("a", "2024-01-08", "site_visit"), ("a", "2024-03-31", "review_posted")],
    )
    w = assign_stages(tx, ev, period="week", churn_after=None, engine=engine)
    assert str(w.periods[0]) == "2024-01-01/2024-01-07"
    assert stages_of(w)[:2] == ["purchase", "engagement"]
    q = assign_stages(tx, ev, period="quarter", churn_after=None, engine=engine)
    assert [str(p) for p in q.periods] == ["2024Q1"] and stages_of(q) == ["advocacy"]


def test_bad_parameters_are_clear_errors():
    tx, _ = frames(tx_rows=[("a", "2024-01-05", 10)])
    with pytest.raises(ClmError, match="period must be one of week, month, quarter"):
        assign_stages(tx, period="day")
    with pytest.raises(ClmError, match="churn_after must be a whole number"):
        assign_stages(tx, churn_after=0)
    with pytest.raises(ClmError, match="engine must be one of"):
        assign_stages(tx, engine="spark-ish")


def test_engines_agree_on_a_simulated_company_from_files(tmp_path):
    company = simulate_company(n_customers=1500, seed=11)
    folder = company.write(tmp_path / "co", fmt="parquet")
    tx, ev = company.tables["transactions"], company.tables["events"]
    tx = tx.assign(timestamp=pd.to_datetime(tx["timestamp"]))
    ev = ev.assign(timestamp=pd.to_datetime(ev["timestamp"]))
    a = assign_stages(tx, ev, end="2024-12-01")
    b = assign_stages(
        str(folder / "transactions.parquet"),
        str(folder / "events.parquet"),
        end="2024-12-01",
        engine="duckdb",
    )
    assert a.customers.equals(b.customers) and a.periods.equals(b.periods)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.observed, b.observed)
    assert a.counts == b.counts and a.counts["signals_after_end"] > 0


def test_clm_stages_on_an_events_only_log_and_on_a_folder_with_neither(
    tmp_path, monkeypatch, capsys
):
    from .conftest import run_clm, write_dataset

    orders = "customer_id,timestamp,event_type\na,2024-01-05,purchase\na,2024-02-10,site_visit\n"
    folder = write_dataset(tmp_path / "events_only", {"events": orders})
    code, text = run_clm(
        monkeypatch, capsys, "stages", str(folder), "--out", str(tmp_path / "m.csv")
    )
    assert code == 0, text
    matrix = pd.read_csv(tmp_path / "m.csv", index_col=0)
    assert matrix.loc["purchase", "engagement"] == 1.0
    empty = write_dataset(
        tmp_path / "neither", {"customers": "customer_id,acquired_at\na,2024-01-01\n"}
    )
    code, text = run_clm(
        monkeypatch, capsys, "stages", str(empty), "--out", str(tmp_path / "n.csv")
    )
    assert code == 2 and "needs transactions or events" in text and "Traceback" not in text


def test_the_observed_rule_derives_from_the_signals_without_reading_them_again(small_company):
    t = small_company.tables
    signals = assign_stages(t["transactions"], t["events"], churn_after=None)
    for k in ("auto", 1, 3):
        want = assign_stages(t["transactions"], t["events"], churn_after=k)
        got = signals.with_churn_after(k)
        assert np.array_equal(got.codes, want.codes) and got.churn_after == want.churn_after
    assert signals.with_churn_after(None) is signals
    with pytest.raises(ClmError, match="churn_after=None"):
        want.with_churn_after(2)
    with pytest.raises(ClmError, match="whole number"):
        signals.with_churn_after(0)
