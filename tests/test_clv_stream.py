"""Scoring in batches from files (DuckDB) gives the in-memory scores, fits and counts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from clmmodels import rfm_summary
from clmmodels.cli import cli
from clmmodels.clv import BetaGeoModel, GammaGammaModel, mle
from clmmodels.clv.score import score_customers
from clmmodels.clv.stream import score_to_file
from clmmodels.errors import ClmError


def read_scores(path) -> pd.DataFrame:
    if str(path).endswith(".csv"):
        return pd.read_csv(path, dtype={"customer_id": str})
    return pd.read_parquet(path)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_batches_give_the_in_memory_scores(small_company_dir, tmp_path, suffix):
    source = str(small_company_dir / "transactions.csv")
    # An observation end inside the data: later transactions are left out and counted.
    memory = score_customers(source, "2024-09-30", engine="duckdb")
    out = tmp_path / f"scores.{suffix}"
    streamed = score_to_file(source, "2024-09-30", out, batch_rows=300)  # several batches
    expected = memory.scores.reset_index()
    got = read_scores(out)
    assert len(got) == len(expected) == streamed.n_customers
    assert got["customer_id"].is_monotonic_increasing
    # The SQL engine sums the same amounts; fits agree to the optimiser's tolerance.
    pd.testing.assert_frame_equal(got, expected, rtol=1e-6)
    np.testing.assert_allclose(streamed.purchases.params_, memory.purchases.params_, rtol=1e-7)
    np.testing.assert_allclose(streamed.spend.params_, memory.spend.params_, rtol=1e-6)
    assert streamed.excluded == memory.excluded
    assert streamed.excluded["transactions after the observation end"] > 0
    assert streamed.spend.excluded_ == memory.spend.excluded_
    assert streamed.total_clv == pytest.approx(memory.total_clv, rel=1e-9)
    a, b = streamed.params_json(), memory.params_json()
    assert a.keys() == b.keys()
    assert a["bgnbd"]["standard_errors"] == pytest.approx(b["bgnbd"]["standard_errors"], rel=1e-4)


def test_the_streaming_scorer_matches_the_in_memory_one_at_the_edges(cdnow_sample, tmp_path):
    """The streaming scorer's aggregation and join against score_customers': a customer seen
    only after the end, one with two transactions on their first day and more after the end,
    and purchase days before 1970 (negative epoch days)."""
    tx = cdnow_sample.transactions[["customer_id", "timestamp", "amount"]]
    first = tx.loc[tx["customer_id"] == tx["customer_id"].iloc[0]].iloc[0]
    extra = pd.DataFrame(
        {
            "customer_id": ["late", first["customer_id"], first["customer_id"], "old", "old"],
            "timestamp": pd.to_datetime(
                ["1997-12-01", first["timestamp"], "1998-01-05", "1969-03-01", "1997-02-01"]
            ),
            "amount": [5.0, 7.25, 9.0, 11.0, 13.0],
        }
    )
    data = pd.concat([tx, extra], ignore_index=True)
    memory = score_customers(data, "1997-09-30")
    run = score_to_file(data, "1997-09-30", tmp_path / "s.parquet")
    got = read_scores(tmp_path / "s.parquet")
    assert "late" not in set(got["customer_id"]) and "old" in set(got["customer_id"])
    assert run.n_customers == len(memory.scores) == len(got)
    assert run.excluded == memory.excluded
    pd.testing.assert_frame_equal(got, memory.scores.reset_index(), rtol=1e-6)


@pytest.mark.published
def test_published_cdnow_numbers_through_the_batch_scorer(cdnow_sample, tmp_path):
    run = score_to_file(cdnow_sample.transactions, "1997-09-30", tmp_path / "s.parquet",
                        model="pnbd")  # fmt: skip
    params = run.purchases.params_.round(3).to_dict()
    assert params == {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
    assert run.purchases.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)
    assert run.n_customers == 2357
    assert run.purchases.n_customers_ == 2357 and run.purchases.n_rows_ < 2357


def test_warm_start_reaches_the_same_optimum(cdnow_sample, monkeypatch):
    rfm = rfm_summary(cdnow_sample.transactions, "1997-09-30")
    cold_bg, cold_gg = BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm)
    monkeypatch.setattr(mle, "WARM_START_ROWS", 100)  # CDNOW's 1,200 rows now start warm
    monkeypatch.setattr(mle, "WARM_START_CUSTOMERS", 500)
    warm_bg, warm_gg = BetaGeoModel().fit(rfm), GammaGammaModel().fit(rfm)
    assert warm_bg.convergence_["iterations"] < cold_bg.convergence_["iterations"]
    np.testing.assert_allclose(warm_bg.params_, cold_bg.params_, rtol=1e-6)
    np.testing.assert_allclose(warm_gg.params_, cold_gg.params_, rtol=1e-5)
    np.testing.assert_allclose(warm_bg.standard_errors_, cold_bg.standard_errors_, rtol=1e-4)


def test_newton_steps_finish_what_bfgs_leaves(cdnow_sample, monkeypatch):
    rfm = rfm_summary(cdnow_sample.transactions, "1997-09-30")
    default = BetaGeoModel().fit(rfm)
    monkeypatch.setattr(mle, "NEWTON_FROM", 1e-2)  # BFGS stops far out; Newton does the rest
    early = BetaGeoModel().fit(rfm)
    assert early.convergence_["iterations"] < default.convergence_["iterations"]
    assert early.convergence_["gradient"] < 1e-8 and default.convergence_["gradient"] < 1e-8
    # a gradient below 1e-8 pins the flat (a, b) ridge to about 1e-6 relative, 1e-5 of an SE
    assert (np.abs(early.params_ - default.params_) < 1e-5 * default.standard_errors_).all()
    assert early.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)


def test_standard_errors_from_newtons_last_step_match_those_at_the_optimum(
    cdnow_sample, monkeypatch
):
    rfm = rfm_summary(cdnow_sample.transactions, "1997-09-30")
    used = []
    natural = mle._natural_hessian
    monkeypatch.setattr(mle, "_natural_hessian", lambda *a: used.append(1) or natural(*a))
    bg = BetaGeoModel().fit(rfm)
    assert used  # Newton stepped, and its Hessian gave the errors
    # the Hessian at the optimum itself, by differences of the exact gradient
    x, tx, T = (rfm[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    w = np.ones(len(rfm))
    value_and_grad = bg._make_loglik(x, tx, T).value_and_grad
    hess = mle._jacobian(lambda p: -value_and_grad(p, w)[1], bg.params_.to_numpy())
    np.testing.assert_allclose(
        bg.standard_errors_, np.sqrt(np.diag(np.linalg.inv(hess))), rtol=1e-4
    )


def test_clm_score_streams_with_duckdb_and_matches_pandas(small_company_dir, tmp_path):
    runner = CliRunner()
    outs, docs = {}, {}
    for engine in ("pandas", "duckdb"):
        out, params = tmp_path / f"{engine}.parquet", tmp_path / f"{engine}.json"
        result = runner.invoke(
            cli,
            ["score", str(small_company_dir), "--observation-end", "2024-12-31",
             "--engine", engine, "--out", str(out), "--params-out", str(params),
             "--memory-limit", "256MB"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outs[engine], docs[engine] = read_scores(out), json.loads(params.read_text())
    pd.testing.assert_frame_equal(outs["duckdb"], outs["pandas"], rtol=1e-6)
    assert docs["duckdb"]["bgnbd"]["r"] == pytest.approx(docs["pandas"]["bgnbd"]["r"], rel=1e-7)
    assert docs["duckdb"]["n_customers"] == docs["pandas"]["n_customers"]


def test_bad_memory_limit_and_out_are_clear_errors(small_company_dir, tmp_path):
    with pytest.raises(ClmError, match="memory limit 'lots'"):
        score_to_file(str(small_company_dir / "transactions.csv"), "2024-12-31",
                      tmp_path / "s.parquet", memory_limit="lots")  # fmt: skip
    with pytest.raises(ClmError, match=r"use a \.csv or \.parquet"):
        score_to_file(str(small_company_dir / "transactions.csv"), "2024-12-31",
                      tmp_path / "s.json")  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "clmmodels.cli", "score", str(small_company_dir),
         "--observation-end", "2024-12-31", "--engine", "duckdb",
         "--out", str(tmp_path / "s.csv"), "--memory-limit", "lots"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "memory limit 'lots'" in r.stderr
    assert "Traceback" not in r.stderr


def test_memory_limit_is_chosen_from_the_data_and_reported(small_company_dir, tmp_path):
    from clmmodels import duck

    source = small_company_dir / "transactions.csv"
    chosen = duck.memory_limit_for(str(source))
    size = source.stat().st_size * duck.LEAN_BYTES_PER_INPUT_BYTE
    assert chosen == f"{-(-max(size, duck.LEAN_FLOOR) // 10**6)}MB"
    big = pd.DataFrame({"a": np.zeros(10**7)})  # 80 MB of columns: above the floor
    assert duck.memory_limit_for(big) == f"{-(-80_000_128 * 4 // 10**6)}MB"
    assert duck.memory_limit_for("hdfs://cluster/tx/*.parquet") is None
    run = score_to_file(str(source), "2024-12-31", tmp_path / "a.parquet")
    con = duck.connect(chosen)
    (expected,) = con.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    assert run.memory_limit == expected  # as DuckDB spells it, e.g. 256.5 MiB
    given = score_to_file(str(source), "2024-12-31", tmp_path / "b.parquet", memory_limit="1GB")
    assert given.memory_limit == "953.6 MiB" != run.memory_limit
    # the limit changes neither the estimates nor the total, in any digit
    assert given.purchases.params_.equals(run.purchases.params_)
    assert given.spend.params_.equals(run.spend.params_)
    assert given.total_clv == run.total_clv


def test_a_chosen_limit_too_tight_falls_back_to_duckdbs_own(
    small_company_dir, tmp_path, monkeypatch
):
    import clmmodels.clv.stream as stream

    source = str(small_company_dir / "transactions.csv")
    monkeypatch.setattr(stream, "memory_limit_for", lambda _: "2MB")
    run = score_to_file(source, "2024-12-31", tmp_path / "s.parquet")
    assert run.memory_limit != "1.9 MiB" and run.n_customers > 0
    assert any("ran again under DuckDB's default" in w for w in run.warnings)
    with pytest.raises(ClmError, match="raise --memory-limit"):  # a limit given is kept
        score_to_file(source, "2024-12-31", tmp_path / "s.parquet", memory_limit="2MB")


def test_histories_reach_the_fit_sorted(small_company_dir, tmp_path, monkeypatch):
    """A parallel group-by returns groups in any order; the fit must see them in one order."""
    seen = []
    original = BetaGeoModel.fit

    def spy(self, rows, weights=None, **kwargs):
        seen.append(rows[["frequency", "T", "recency"]].copy())
        return original(self, rows, weights=weights, **kwargs)

    monkeypatch.setattr(BetaGeoModel, "fit", spy)
    score_to_file(str(small_company_dir / "transactions.csv"), "2024-12-31", tmp_path / "s.csv")
    rows = seen[0]
    # sorted by (purchase days, first day, last day): frequency up, T down within it
    order = rows.assign(neg_T=-rows["T"]).sort_values(["frequency", "neg_T", "recency"])
    assert (order.index == rows.index).all()


def test_the_write_runs_under_a_share_of_the_chosen_limit_and_again_under_it_all(
    small_company_dir, tmp_path, monkeypatch
):
    """The final write (join, sort, Parquet) runs under WRITE_SHARE of a limit chosen from the
    data; if it runs out of memory there, it runs again under the whole limit, to the same
    file. A limit given by the user is kept for the write."""
    import duckdb

    import clmmodels.clv.stream as stream
    from clmmodels import duck
    from clmmodels.engines import DuckDBEngine

    source = str(small_company_dir / "transactions.csv")
    reference = score_to_file(source, "2024-12-31", tmp_path / "reference.parquet")
    limits, original = [], DuckDBEngine.write

    def short_of_memory_once(self, sql, path, check=None):
        (limit,) = self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0]
        limits.append(limit)
        if len(limits) == 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate")
        return original(self, sql, path, check=check)

    monkeypatch.setattr(DuckDBEngine, "write", short_of_memory_once)
    run = score_to_file(source, "2024-12-31", tmp_path / "s.parquet")
    chosen = stream.memory_limit_for(source)
    share = f"{int(int(chosen[:-2]) * stream.WRITE_SHARE)}MB"
    spelt = [
        duck.connect(limit).execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        for limit in (share, chosen)
    ]
    assert limits == spelt  # the share first, then the whole limit
    assert run.memory_limit == spelt[1] and run.total_clv == reference.total_clv
    assert read_scores(tmp_path / "s.parquet").equals(read_scores(tmp_path / "reference.parquet"))
    limits.clear()
    limits.append("skip the failure")
    score_to_file(source, "2024-12-31", tmp_path / "given.parquet", memory_limit="1GB")
    assert limits[1:] == ["953.6 MiB"]  # a limit the user gave is the write's too
