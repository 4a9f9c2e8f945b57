"""CLV from raw Parquet to a 12-month CLV for every customer: clmmodels against lifetimes alone.

Run by hand (not in the test suite):

    .venv/bin/python benchmarks/clv_benchmark.py --customers 1000000

Each path runs in its own process so that its peak memory (max RSS) is its own:

- clmmodels (``clm score --engine duckdb``, :func:`clmmodels.clv.stream.score_to_file`): DuckDB
  aggregates the Parquet file per customer, BG/NBD and Gamma-Gamma are fitted (with standard
  errors) on the distinct histories DuckDB counts and score them, and DuckDB joins those scores
  (P(alive), expected purchases, P(no purchase), expected spend, CLV) to every customer and
  writes a Parquet file;
- clmmodels-memory: ``rfm_summary`` of the file into pandas, the fits on compressed rows,
  ``predicted_clv`` for every customer in memory;
- clmmodels-frame (what the notebooks do): pandas reads the file, ``rfm_summary`` of that frame
  (DuckDB reads it in place), then as clmmodels-memory;
- lifetimes: pandas reads the file, ``summary_data_from_transaction_data`` (freq="D",
  freq_multiplier=7: exact weeks, as ours), ``BetaGeoFitter``, ``GammaGammaFitter`` and
  ``customer_lifetime_value`` (its month is 4.345 weeks, ours 365.25 / 12 days: the CLV totals
  differ by that much, the parameters must not).

Prints a table of wall time, peak memory and the parameters, and the ratios. With
``--repeat N`` every path runs N times, the paths taking turns (a busy moment of the machine
then falls on all of them); the table shows medians and the ranges, and the ratios are taken
run by run (run i of a path against run i of lifetimes).
"""

from __future__ import annotations

import argparse
import functools
import statistics
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


def run_clmmodels(path: str, memory_limit: str | None = None) -> dict:
    from clmmodels.clv.stream import score_to_file

    out = str(Path(path).with_name("scores.parquet"))
    t0 = time.perf_counter()
    run = score_to_file(
        path, OBSERVATION_END, out, horizon_months=12, discount_rate=0.01, memory_limit=memory_limit
    )
    t1 = time.perf_counter()
    return {
        "summary_s": float("nan"),
        "fit_s": float("nan"),
        "clv_s": t1 - t0,
        "rows_fitted": run.purchases.n_rows_,
        "params": {
            **run.purchases.params_.to_dict(),
            **run.spend.params_.add_prefix("gg_").to_dict(),
        },
        "customers": run.n_customers,
        "total_clv": run.total_clv,
    }


def run_clmmodels_memory(path: str) -> dict:
    from clmmodels.rfm import rfm_summary

    t0 = time.perf_counter()
    rfm = rfm_summary(path, OBSERVATION_END)
    return _fit_and_score(rfm, t0)


def run_clmmodels_frame(path: str) -> dict:
    """A frame already in memory (as after ``load_dataset``), with the default engine."""
    import pandas as pd

    from clmmodels.rfm import rfm_summary

    t0 = time.perf_counter()
    rfm = rfm_summary(pd.read_parquet(path), OBSERVATION_END)
    return _fit_and_score(rfm, t0)


def _fit_and_score(rfm, t0: float) -> dict:
    """BG/NBD and Gamma-Gamma on an RFM summary made since ``t0``, and every customer's CLV."""
    from clmmodels.clv import BetaGeoModel, GammaGammaModel, predicted_clv

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
    parser.add_argument("--repeat", type=int, default=1, help="runs of every path")
    parser.add_argument("--paths", default="clmmodels,clmmodels-memory,clmmodels-frame,lifetimes")
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB's memory limit for the clmmodels path"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths = {
            "clmmodels": run_clmmodels,
            "clmmodels-memory": run_clmmodels_memory,
            "clmmodels-frame": run_clmmodels_frame,
            "lifetimes": run_lifetimes,
        }
        run = paths[args.child]
        if args.child == "clmmodels":
            run = functools.partial(run, memory_limit=args.memory_limit)
        report(run, args.data)
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
        options = ["--memory-limit", args.memory_limit] if args.memory_limit else []
        runs: dict[str, list[dict]] = {which: [] for which in args.paths.split(",")}
        for _ in range(args.repeat):
            for which, done in runs.items():
                done.append(in_child(__file__, which, str(path), *options))
    print()
    print(
        f"{'path':<17} {'wall s':>8} {'(range)':>13} {'summary s':>10} {'fit s':>8} "
        f"{'CLV s':>8} {'peak MiB':>9} {'rows fitted':>12}"
    )

    def cell(value: float, width: int) -> str:
        return f"{'-':>{width}}" if value != value else f"{value:>{width}.1f}"  # NaN: not split

    def median(done: list[dict], key: str) -> float:
        return float(statistics.median(r[key] for r in done))

    for which, done in runs.items():
        walls = [r["wall_s"] for r in done]
        spread = f"{min(walls):.1f}-{max(walls):.1f}"
        print(
            f"{which:<17} {median(done, 'wall_s'):>8.1f} {spread:>13} "
            f"{cell(median(done, 'summary_s'), 10)} {cell(median(done, 'fit_s'), 8)} "
            f"{cell(median(done, 'clv_s'), 8)} {median(done, 'peak_mib'):>9.0f} "
            f"{done[0]['rows_fitted']:>12,}"
        )
    if "lifetimes" not in runs:
        return
    base = runs["lifetimes"]
    for which, done in runs.items():
        if which == "lifetimes":
            continue
        speed = [b["wall_s"] / a["wall_s"] for a, b in zip(done, base, strict=True)]
        memory = [a["peak_mib"] / b["peak_mib"] for a, b in zip(done, base, strict=True)]
        print(
            f"\n{which}: speed-up (wall) {statistics.median(speed):.1f}x "
            f"(runs: {', '.join(f'{v:.1f}' for v in speed)}); peak memory ratio "
            f"{statistics.median(memory):.2f} (runs: {', '.join(f'{v:.2f}' for v in memory)})"
        )
        a, b = done[0], base[0]
        diffs = {k: abs(a["params"][k] / b["params"][k] - 1) for k in a["params"]}
        print(f"  parameters, {which} vs lifetimes (relative difference):")
        for k, d in diffs.items():
            print(f"    {k:<9} {a['params'][k]:>12.5f} {b['params'][k]:>12.5f} {d:>10.2e}")
        print(
            f"  total CLV: {a['total_clv']:,.0f} vs {b['total_clv']:,.0f} "
            "(months of 30.44 vs 30.42 days)"
        )


if __name__ == "__main__":
    main()
