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
- spark: the same SQL as DuckDB, on Spark in local mode (the JVM and its workers counted);
- latent: the files path's assignment, then the latent-stage estimate
  (:class:`clmmodels.stages.latent.LatentTransitionModel`, with ``--n-boot`` bootstrap
  resamples; 0, the default here, skips the intervals) instead of the observed rule's.

``--silent`` and ``--unannounced`` make the log sparse (``chain_event_log``'s options): the
observed rule is then biased, the latent estimate is not. For example

    nice .venv/bin/python benchmarks/stages_benchmark.py --customers 1000000 \
        --paths files,latent --silent 0.4 --unannounced 0.4

Prints wall time, peak memory and the largest difference from the true matrix.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import in_child, report

CHUNK = 100_000


def make_data(
    n: int, periods: int, seed: int, folder: Path, silent: float = 0.0, unannounced: float = 0.0
) -> int:
    from clmmodels.stages.synthetic import chain_event_log, example_matrix

    rows = 0
    for k, first in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - first)
        tx, ev = chain_event_log(
            example_matrix(), size, periods, seed=seed + k, silent=silent, unannounced=unannounced
        )
        ev["customer_id"] = f"b{k:04d}" + ev["customer_id"]
        ev.drop(columns="true_stage").to_parquet(folder / f"events-{k:04d}.parquet", index=False)
        rows += len(ev)
    tx.to_parquet(folder / "transactions.parquet", index=False)
    return rows


def run(path: str, folder: str, n_boot: int = 0) -> dict:
    import numpy as np
    import pandas as pd

    from clmmodels.stages import TransitionModel, assign_stages, markov_tests
    from clmmodels.stages.latent import LatentTransitionModel
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
    extra = {}
    if path == "latent":
        model = LatentTransitionModel(n_boot=n_boot).fit(history)
        transitions = int(np.rint(model.n_from_.sum()))
        extra = {"n_iter": model.n_iter_, "converged": model.converged_}
    else:
        model = TransitionModel().fit(history)
        extra["tests_p"] = markov_tests(history)["p_value"].round(3).tolist()
        transitions = model.n_transitions_
    t2 = time.perf_counter()
    stages = list(model.matrix_.index)
    truth = example_matrix().loc[stages, stages].to_numpy()
    error = np.abs(model.matrix_.to_numpy() - truth).max()
    return {
        "assign_s": t1 - t0,
        "estimate_s": t2 - t1,
        "customers": history.n_customers,
        "transitions": transitions,
        "max_abs_error": float(error),
        "codes_sum": int(history.codes.astype("int64").sum()),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paths", default="files,frames", help="files, frames, spark, latent")
    parser.add_argument("--silent", type=float, default=0.0, help="share of silent live months")
    parser.add_argument(
        "--unannounced", type=float, default=0.0, help="share of churn entries without an event"
    )
    parser.add_argument(
        "--n-boot", type=int, default=0, help="bootstrap resamples of the latent path"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report(lambda folder: run(args.child, folder, args.n_boot), args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        n_events = make_data(
            args.customers, args.months, args.seed, Path(tmp), args.silent, args.unannounced
        )
        print(
            f"data: {args.customers:,} customers, {args.months} months, {n_events:,} events "
            f"(silent {args.silent}, unannounced {args.unannounced}; "
            f"{time.perf_counter() - t:.1f} s to simulate)"
        )
        results = {}
        for path in args.paths.split(","):
            results[path] = in_child(__file__, path, tmp, "--n-boot", str(args.n_boot))
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
    if "latent" in results:
        r = results["latent"]
        print(f"\nlatent: {r['n_iter']} EM E-steps, converged: {r['converged']}")
    first, *others = results
    for path in others:
        a, b = results[path], results[first]
        same = a["codes_sum"] == b["codes_sum"]  # the latent path counts expected transitions
        if "latent" not in (path, first):
            same = same and a["transitions"] == b["transitions"]
        print(
            f"\n{path} vs {first}: {a['wall_s'] / b['wall_s']:.2f}x the time, "
            f"{a['peak_mib'] / b['peak_mib']:.2f}x the memory; same stages: {same}"
        )


if __name__ == "__main__":
    main()
