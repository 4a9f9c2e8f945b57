"""CLV from raw Parquet to a 12-month CLV for every customer: clmmodels against lifetimes alone.

Run by hand (not in the test suite):

    .venv/bin/python benchmarks/clv_benchmark.py --customers 1000000

Each path runs in its own process so that its peak memory (max RSS) is its own:

- clmmodels: DuckDB reads the Parquet file into RFM, BG/NBD and Gamma-Gamma are fitted on
  compressed rows, CLV is computed for every customer;
- lifetimes: pandas reads the file, ``summary_data_from_transaction_data`` (freq="D",
  freq_multiplier=7: exact weeks, as ours), ``BetaGeoFitter``, ``GammaGammaFitter`` and
  ``customer_lifetime_value`` (its month is 4.345 weeks, ours 365.25 / 12 days: the CLV totals
  differ by that much, the parameters must not).

Prints a table of wall time, peak memory and the parameters, and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import in_child, report

OBSERVATION_END = "2024-12-31"


def make_data(n: int, seed: int, folder: Path) -> Path:
    from clmmodels import simulate_company

    company = simulate_company(n_customers=n, seed=seed, lifecycle=False)
    path = folder / "transactions.parquet"
    company.tables["transactions"].to_parquet(path, index=False)
    return path


def run_clmmodels(path: str) -> dict:
    from clmmodels.clv import BetaGeoModel, GammaGammaModel, predicted_clv
    from clmmodels.rfm import rfm_summary

    t0 = time.perf_counter()
    rfm = rfm_summary(path, OBSERVATION_END, engine="duckdb")
    t1 = time.perf_counter()
    bg = BetaGeoModel().fit(rfm, standard_errors=False)
    gg = GammaGammaModel().fit(rfm, standard_errors=False)
    t2 = time.perf_counter()
    clv = predicted_clv(bg, gg, rfm, horizon_months=12, discount_rate=0.01)
    t3 = time.perf_counter()
    return {
        "summary_s": t1 - t0,
        "fit_s": t2 - t1,
        "clv_s": t3 - t2,
        "rows_fitted": bg.n_rows_,
        "params": {**bg.params_.to_dict(), **gg.params_.add_prefix("gg_").to_dict()},
        "customers": len(clv),
        "total_clv": float(clv.sum()),
    }


def run_lifetimes(path: str) -> dict:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    t0 = time.perf_counter()
    tx = pd.read_parquet(path)
    summary = summary_data_from_transaction_data(
        tx, "customer_id", "timestamp", monetary_value_col="amount",
        observation_period_end=OBSERVATION_END, freq="D", freq_multiplier=7,
    )  # fmt: skip
    t1 = time.perf_counter()
    bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    rep = summary[summary["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    t2 = time.perf_counter()
    clv = gg.customer_lifetime_value(
        bg, summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    t3 = time.perf_counter()
    params = {
        **bg.params_.to_dict(),
        **gg.params_.rename({"v": "gamma"}).add_prefix("gg_").to_dict(),
    }
    return {
        "summary_s": t1 - t0,
        "fit_s": t2 - t1,
        "clv_s": t3 - t2,
        "rows_fitted": len(summary),
        "params": params,
        "customers": len(clv),
        "total_clv": float(clv.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paths", default="clmmodels,lifetimes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths = {"clmmodels": run_clmmodels, "lifetimes": run_lifetimes}
        report(paths[args.child], args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = make_data(args.customers, args.seed, Path(tmp))
        import pyarrow.parquet as pq

        n_tx = pq.ParquetFile(path).metadata.num_rows
        print(
            f"data: {args.customers:,} customers, {n_tx:,} transactions "
            f"({time.perf_counter() - t:.1f} s to simulate)"
        )
        results = {}
        for which in args.paths.split(","):
            results[which] = in_child(__file__, which, str(path))
    print()
    print(
        f"{'path':<11} {'wall s':>8} {'summary s':>10} {'fit s':>8} {'CLV s':>8} "
        f"{'peak MiB':>9} {'rows fitted':>12}"
    )
    for which, r in results.items():
        print(
            f"{which:<11} {r['wall_s']:>8.1f} {r['summary_s']:>10.1f} {r['fit_s']:>8.1f} "
            f"{r['clv_s']:>8.1f} {r['peak_mib']:>9.0f} {r['rows_fitted']:>12,}"
        )
    if {"clmmodels", "lifetimes"} <= set(results):
        a, b = results["clmmodels"], results["lifetimes"]
        print(
            f"\nspeed-up (wall): {b['wall_s'] / a['wall_s']:.1f}x; "
            f"peak memory ratio: {a['peak_mib'] / b['peak_mib']:.2f}"
        )
        diffs = {k: abs(a["params"][k] / b["params"][k] - 1) for k in a["params"]}
        print("parameters, clmmodels vs lifetimes (relative difference):")
        for k, d in diffs.items():
            print(f"  {k:<9} {a['params'][k]:>12.5f} {b['params'][k]:>12.5f} {d:>10.2e}")
        print(
            f"total CLV: {a['total_clv']:,.0f} vs {b['total_clv']:,.0f} "
            "(months of 30.44 vs 30.42 days)"
        )


if __name__ == "__main__":
    main()
