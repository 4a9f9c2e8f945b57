"""Stage assignment and transition estimation at scale: 1M customers x 24 months of events.

Run by hand (not in the test suite):

    .venv/bin/python benchmarks/stages_benchmark.py --customers 1000000

Events come from a known monthly chain (``clmmodels.stages.synthetic``), written as a glob
of Parquet files. Each path runs in its own process so that its peak memory is its own:

- files: DuckDB reads the Parquet glob and aggregates to the latest signal per customer and
  month; numpy fills the customer x month grid; the matrix and the Anderson-Goodman tests
  follow;
- frames: pandas reads every file into memory (as a notebook holds its data), and the same
  SQL runs on the frames with the default engine (DuckDB reads them in place);
- spark: the same SQL as DuckDB, on Spark in local mode (the JVM and its workers counted).

Prints wall time, peak memory and the largest difference from the true matrix.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import in_child, report

CHUNK = 100_000


def make_data(n: int, periods: int, seed: int, folder: Path) -> int:
    from clmmodels.stages.synthetic import chain_event_log, example_matrix

    rows = 0
    for k, first in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - first)
        tx, ev = chain_event_log(example_matrix(), size, periods, seed=seed + k)
        ev["customer_id"] = f"b{k:04d}" + ev["customer_id"]
        ev.drop(columns="true_stage").to_parquet(folder / f"events-{k:04d}.parquet", index=False)
        rows += len(ev)
    tx.to_parquet(folder / "transactions.parquet", index=False)
    return rows


def run(path: str, folder: str) -> dict:
    import numpy as np
    import pandas as pd

    from clmmodels.stages import TransitionModel, assign_stages, markov_tests
    from clmmodels.stages.synthetic import example_matrix

    t0 = time.perf_counter()
    tx_path, ev_glob = f"{folder}/transactions.parquet", f"{folder}/events-*.parquet"
    settings = {"period": "month", "churn_after": None}
    if path == "frames":
        tx = pd.read_parquet(tx_path)
        ev = pd.concat([pd.read_parquet(p) for p in sorted(Path(folder).glob("events-*"))])
        history = assign_stages(tx, ev, **settings)
    else:  # the chain's purchases are events: its transactions table is empty, and a file
        # with no rows breaks the contract, so the (empty) table goes as a frame
        engine = "spark" if path == "spark" else "duckdb"
        tx = pd.read_parquet(tx_path)
        history = assign_stages(tx, ev_glob, **settings, engine=engine)
    t1 = time.perf_counter()
    model = TransitionModel().fit(history)
    tests = markov_tests(history)
    t2 = time.perf_counter()
    error = np.abs(model.matrix_.to_numpy() - example_matrix().to_numpy()).max()
    return {
        "assign_s": t1 - t0,
        "estimate_s": t2 - t1,
        "customers": history.n_customers,
        "transitions": model.n_transitions_,
        "max_abs_error": float(error),
        "tests_p": tests["p_value"].round(3).tolist(),
        "codes_sum": int(history.codes.astype("int64").sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paths", default="files,frames", help="files, frames, spark")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report(lambda folder: run(args.child, folder), args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        n_events = make_data(args.customers, args.months, args.seed, Path(tmp))
        print(
            f"data: {args.customers:,} customers, {args.months} months, {n_events:,} events "
            f"({time.perf_counter() - t:.1f} s to simulate)"
        )
        results = {}
        for path in args.paths.split(","):
            results[path] = in_child(__file__, path, tmp)
    print()
    print(
        f"{'path':<8} {'wall s':>7} {'assign s':>9} {'estimate s':>11} {'peak MiB':>9} "
        f"{'transitions':>12} {'max |P - truth|':>16}"
    )
    for engine, r in results.items():
        print(
            f"{engine:<8} {r['wall_s']:>7.1f} {r['assign_s']:>9.1f} {r['estimate_s']:>11.1f} "
            f"{r['peak_mib']:>9.0f} {r['transitions']:>12,} {r['max_abs_error']:>16.4f}"
        )
    first, *others = results
    for path in others:
        a, b = results[path], results[first]
        same = a["codes_sum"] == b["codes_sum"] and a["transitions"] == b["transitions"]
        print(
            f"\n{path} vs {first}: {a['wall_s'] / b['wall_s']:.2f}x the time, "
            f"{a['peak_mib'] / b['peak_mib']:.2f}x the memory; same stages: {same}"
        )


if __name__ == "__main__":
    main()
