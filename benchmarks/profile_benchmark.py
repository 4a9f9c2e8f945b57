"""The customer profile at scale: time and peak memory, 100k to 1M customers with events.

Run by hand (not in the test suite; 1M customers take about half an hour on 2 cores):

    .venv/bin/python benchmarks/profile_benchmark.py --customers 100000,1000000

The data are ``clm simulate``'s company (customers, transactions, events, surveys), written
once per size as CSV files in ``--cache``. Each path runs in a process of its own, from the
files to a written per-customer table, with default options:

- profile: ``clm profile DATA --as-of AS_OF`` (stages, CLV, churn, playbook in one table),
  with the transactions and events left in their files for DuckDB, as the command does;
- parts: what a user ran before the profile existed, one after the other in one process:
  ``clm score`` (CLV), ``clm churn`` (risk) and ``clm stages`` (the latest stage), joined by
  customer id;
- lifetimes: the value part alone the lifetimes way (pandas, ``BetaGeoFitter``,
  ``GammaGammaFitter``, ``customer_lifetime_value``), for scale.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import in_child, report

AS_OF = "2024-10-01"


def make_data(n: int, seed: int, folder: Path) -> None:
    from clmmodels import simulate_company

    if not (folder / "transactions.csv").exists():
        # Into a sibling renamed at the end: an interrupted run leaves no half-written cache.
        import shutil

        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        simulate_company(n_customers=n, seed=seed).write(partial)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)


def run(path: str, data: str) -> dict:
    import pandas as pd

    from clmmodels import load_dataset

    out = Path(tempfile.mkdtemp()) / "out.parquet"
    if path == "profile":
        from clmmodels.profile import customer_profile

        # As clm profile reads a folder: the transactions and events stay in their files.
        ds = load_dataset(data, in_files=("transactions", "events"))
        table = customer_profile(ds, AS_OF)
        table.to_parquet(out)
    elif path == "parts":
        from clmmodels.churn import fit_churn_model, snapshot_features
        from clmmodels.clv.score import score_customers
        from clmmodels.stages import assign_stages

        ds = load_dataset(data)
        day_before = pd.Timestamp(AS_OF) - pd.Timedelta(days=1)
        value = score_customers(ds.transactions, day_before).scores
        risk = fit_churn_model(ds, AS_OF, 90).score_customers(snapshot_features(ds, AS_OF))
        stage = assign_stages(ds.transactions, ds.events, event_stages=ds.event_stages, end=AS_OF)
        table = value.join(risk, how="outer").join(stage.latest().rename("stage"), how="outer")
        table.to_parquet(out)
    else:
        from lifetimes import BetaGeoFitter, GammaGammaFitter
        from lifetimes.utils import summary_data_from_transaction_data

        tx = pd.read_csv(Path(data) / "transactions.csv", parse_dates=["timestamp"])
        tx = tx[tx["timestamp"] < AS_OF]
        rfm = summary_data_from_transaction_data(
            tx, "customer_id", "timestamp", "amount", freq="W", observation_period_end=AS_OF
        )
        bg = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
        rep = rfm[rfm["frequency"] > 0]
        gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
        table = gg.customer_lifetime_value(
            bg, rfm["frequency"], rfm["recency"], rfm["T"], rfm["monetary_value"], time=12,
            freq="W", discount_rate=0.01,
        ).to_frame()  # fmt: skip
        table.to_parquet(out)
    return {"rows": len(table)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", default="100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--paths", default="profile,parts,lifetimes")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "clm-profile-bench"))
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report(lambda data: run(args.child, data), args.data)
        return
    rows = []
    for n in (int(float(s)) for s in args.customers.split(",")):
        folder = Path(args.cache) / f"company-{n}-seed{args.seed}"
        make_data(n, args.seed, folder)
        for path in args.paths.split(","):
            r = in_child(__file__, path, str(folder), timeout=args.timeout, stop_on_error=False)
            rows.append((n, path, r))
            print(f"{n:>9,} {path:<10} {r}", flush=True)
    print()
    print(f"{'customers':>10} | {'path':<10} | {'wall s':>8} | {'peak MiB':>9} | vs profile")
    print(f"{'-' * 10} | {'-' * 10} | {'-' * 8} | {'-' * 9} | ----------")
    base = {n: r for n, p, r in rows if p == "profile"}
    for n, path, r in rows:
        if "error" in r:
            print(f"{n:>10,} | {path:<10} | {r['wall_s']:>8.1f} | {'':>9} | {r['error']}")
            continue
        ratio = (
            f"{r['wall_s'] / base[n]['wall_s']:.2f}x time, "
            f"{r['peak_mib'] / base[n]['peak_mib']:.2f}x memory"
            if n in base and "error" not in base[n]
            else ""
        )
        print(f"{n:>10,} | {path:<10} | {r['wall_s']:>8.1f} | {r['peak_mib']:>9,.0f} | {ratio}")


if __name__ == "__main__":
    main()
