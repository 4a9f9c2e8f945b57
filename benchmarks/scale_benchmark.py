"""Per-customer CLV scores at 1M, 10M and 100M transactions: every engine, and lifetimes alone.

Run by hand (not in the test suite; 100M takes about an hour in all):

    .venv/bin/python benchmarks/scale_benchmark.py --transactions 1e6,1e7,1e8

The data are ``clm simulate``'s purchase process (BG/NBD purchases, Gamma-Gamma spend),
generated a million customers at a time and written as a folder of Parquet files, so no step
of the generation holds more than one chunk (kept in ``--cache`` for the next run). Each path
runs in a process of its own, from the Parquet files to a 12-month CLV for every customer:

- duckdb: ``score_to_file(engine="duckdb")`` (``clm score --engine duckdb``): DuckDB reads
  the glob, aggregates per customer under ``--memory-limit`` (spilling beyond it), the models
  fit on and score the distinct histories, and DuckDB joins those scores to its customers and
  writes a Parquet file;
- spark: the same with ``engine="spark"`` in local mode (``local[2]``), writing a folder of
  Parquet part files;
- pandas: ``score_customers(engine="pandas")``, every transaction in a pandas frame;
- lifetimes: pandas, ``summary_data_from_transaction_data``, ``BetaGeoFitter``,
  ``GammaGammaFitter``, ``customer_lifetime_value``.

The in-memory paths run under an address-space limit (``--max-memory``, default 20 GiB) and a
time limit, so where they stop is measured rather than assumed: a MemoryError or a timeout is
a row of the table. Peak memory counts child processes too (the Spark JVM and its workers).
"""

from __future__ import annotations

import argparse
import glob
import resource
import time
from pathlib import Path

from harness import in_child, report

OBSERVATION_END = "2024-12-31"
CHUNK_CUSTOMERS = 1_000_000
TX_PER_CUSTOMER = 3.57  # the simulated company's mean at this observation end


def make_data(n_transactions: int, seed: int, cache: Path) -> Path:
    """A folder of Parquet chunks with about ``n_transactions`` rows, generated once."""
    from clmmodels import simulate_company

    folder = cache / f"tx-{n_transactions:.0e}-seed{seed}"
    if (folder / "_done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    customers = round(n_transactions / TX_PER_CUSTOMER)
    for k, first in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
        n = min(CHUNK_CUSTOMERS, customers - first)
        company = simulate_company(n_customers=n, seed=seed + k, lifecycle=False)
        tx = company.tables["transactions"]
        tx["customer_id"] = f"k{k:03d}" + tx["customer_id"]  # chunks do not share customers
        tx.to_parquet(folder / f"part-{k:03d}.parquet", index=False)
        print(f"  chunk {k}: {n:,} customers, {len(tx):,} transactions", flush=True)
    (folder / "_done").touch()
    return folder


def run_engine(folder: str, engine: str, memory_limit: str | None) -> dict:
    from clmmodels.clv.stream import score_to_file

    out = Path(folder).parent / f"scores-{engine}.parquet"
    run = score_to_file(
        f"{folder}/*.parquet", OBSERVATION_END, out, engine=engine, memory_limit=memory_limit
    )
    return {"customers": run.n_customers, "total_clv": run.total_clv,
            "r": float(run.purchases.params_["r"])}  # fmt: skip


def run_pandas(folder: str) -> dict:
    import pandas as pd

    from clmmodels.clv.score import score_customers

    tx = pd.read_parquet(folder)
    run = score_customers(tx, OBSERVATION_END, engine="pandas")
    return {"customers": run.n_customers, "total_clv": run.total_clv,
            "r": float(run.purchases.params_["r"])}  # fmt: skip


def run_lifetimes(folder: str) -> dict:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    tx = pd.read_parquet(folder)
    s = summary_data_from_transaction_data(
        tx, "customer_id", "timestamp", monetary_value_col="amount",
        observation_period_end=OBSERVATION_END, freq="D", freq_multiplier=7,
    )  # fmt: skip
    bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    rep = s[s["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    clv = gg.customer_lifetime_value(
        bg, s["frequency"], s["recency"], s["T"], s["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    return {"customers": len(clv), "total_clv": float(clv.sum()), "r": float(bg.params_["r"])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", default="1e6,1e7,1e8")
    parser.add_argument("--paths", default="duckdb,spark,pandas,lifetimes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/clm-scale", help="where the data are kept")
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB's memory limit")
    parser.add_argument("--max-memory", type=float, default=20, help="GiB, in-memory paths")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child in ("pandas", "lifetimes"):
            limit = int(args.max_memory * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            report({"pandas": run_pandas, "lifetimes": run_lifetimes}[args.child], args.data)
        else:
            report(lambda d: run_engine(d, args.child, args.memory_limit), args.data)
        return
    import pyarrow.parquet as pq

    rows = []
    for size in (int(float(s)) for s in args.transactions.split(",")):
        t = time.perf_counter()
        print(f"data: about {size:,} transactions", flush=True)
        folder = make_data(size, args.seed, Path(args.cache))
        n_tx = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(f"{folder}/*.parquet"))
        print(f"  {n_tx:,} transactions ready ({time.perf_counter() - t:.0f} s)", flush=True)
        for which in args.paths.split(","):
            options = ["--memory-limit", args.memory_limit, "--max-memory", str(args.max_memory)]
            r = in_child(
                __file__, which, str(folder), *options, timeout=args.timeout, stop_on_error=False
            )
            rows.append((n_tx, which, r))
            print(f"  {which:<10} {_line(r)}", flush=True)
    print(f"\n{'transactions':>13} {'path':<10} {'wall s':>8} {'peak MiB':>9} "
          f"{'customers':>11} {'total CLV':>14} {'r':>8}")  # fmt: skip
    for n_tx, which, r in rows:
        print(f"{n_tx:>13,} {which:<10} {_line(r)}")


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['wall_s']:>8.1f} stopped: {r['error']}"
    return (
        f"{r['wall_s']:>8.1f} {r['peak_mib']:>9,.0f} {r['customers']:>11,} "
        f"{r['total_clv']:>14,.0f} {r['r']:>8.5f}"
    )


if __name__ == "__main__":
    main()
