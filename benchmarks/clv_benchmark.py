"""CLV from raw Parquet to a 12-month CLV for every customer: clmmodels against lifetimes alone
(and pymc-marketing's MAP fit where it is installed), at several sizes, as whole processes.

Run by hand (not in the test suite):

    .venv/bin/python benchmarks/clv_benchmark.py --customers 23570,1000000 --repeat 3

The data: a BG/NBD company simulated here, independently of the package's own simulator
(purchase rates gamma(r, alpha) per week, dropout after each purchase beta(a, b), first
purchases spread over 18 months before the observation end, Gamma-Gamma spend). ``--params
r,alpha,a,b`` and ``--seed`` give data the package was not tuned on.

Each path runs in a process of its own, timed from outside (start-up and imports included,
as a user would see it) with its peak memory (max RSS) its own:

- clmmodels: ``clm score DIR --observation-end ... --out scores.parquet`` with its default
  flags (run as ``clmmodels.cli``'s entry point in the child): DuckDB aggregates the Parquet
  file per customer under a memory limit chosen from the file's size, BG/NBD and Gamma-Gamma
  are fitted (with standard errors) on the distinct histories DuckDB counts and score them,
  and DuckDB joins those scores to every customer and writes a Parquet file (under 0.7 of
  the limit: ``clmmodels.clv.stream.WRITE_SHARE``);
- clmmodels-memory: ``rfm_summary`` of the file into pandas, the fits on compressed rows,
  ``predicted_clv`` for every customer in memory;
- clmmodels-frame (what the notebooks do): pandas reads the file, ``rfm_summary`` of that frame
  (DuckDB reads it in place), then as clmmodels-memory;
- lifetimes: pandas reads the file, ``summary_data_from_transaction_data`` (freq="D",
  freq_multiplier=7: exact weeks, as ours), ``BetaGeoFitter``, ``GammaGammaFitter`` and
  ``customer_lifetime_value``, written to Parquet (its month is 4.345 weeks, ours 365.25 / 12
  days: the CLV totals differ by that much, the parameters must not);
- pymc-marketing (where installed): lifetimes' summary, then pymc-marketing's BG/NBD and
  Gamma-Gamma fitted by MAP and its ``expected_customer_lifetime_value``;
- duckdb-floor: the floor of any path (issue #18's): DuckDB alone reads the file and writes
  one row per customer (count, first and last timestamp, total), unsorted, as a whole
  process; no check, no model. Under the table, clmmodels' time as a multiple of it.
- duckdb-output: the floor of ``clm score``'s output: DuckDB alone runs the package's
  per-customer aggregation (``clmmodels.per_customer.customers_sql``: purchase days, not
  transactions; the first day's spend apart; exact decimal sums) and writes the 11 columns
  of ``clm score``'s file, sorted by customer, with arithmetic where the models' scores go;
  no check, no model. Under the table, its time as a multiple of the floor's.

Prints one table: per size and path the median whole-process wall time and its range, the
peak memory, and against lifetimes the speed-up and the memory ratio (medians of run-by-run
ratios: with ``--repeat N`` the paths take turns, so a busy moment of the machine falls on all
of them), and the largest relative difference of the fitted parameters from lifetimes'.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from harness import in_child, report

OBSERVATION_END = "2024-12-31"
#: The simulator's BG/NBD parameters (weeks), near what fits of CDNOW-like companies give.
DEFAULT_PARAMS = "0.5,8,0.8,2.5"
#: Gamma-Gamma spend: p, q, gamma.
SPEND = (6.0, 4.0, 15.0)
PATHS = (
    "clmmodels", "clmmodels-memory", "clmmodels-frame", "lifetimes", "pymc-marketing",
    "duckdb-floor", "duckdb-output",
)  # fmt: skip


def simulate_bgnbd(n: int, params: tuple[float, float, float, float], seed: int, folder: Path):
    """``n`` customers of a BG/NBD company, their transactions to ``folder``/transactions.parquet
    (customer_id, timestamp, amount); the path."""
    import numpy as np
    import pandas as pd

    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    end = np.datetime64(OBSERVATION_END) + np.timedelta64(1, "D")  # the end day's midnight
    span_weeks = 78.0
    first = rng.uniform(0, span_weeks, n)  # weeks before the end of the first purchase
    rate = rng.gamma(r, 1 / alpha, n)  # purchases per week
    drop = rng.beta(a, b, n)
    nu = rng.gamma(SPEND[1], 1 / SPEND[2], n)  # spend: amount ~ gamma(p, nu)
    who, when = [np.arange(n)], [first]
    alive, t = np.arange(n), first.copy()  # weeks before the end of each one's last purchase
    while alive.size:
        stays = rng.random(alive.size) >= drop[alive]  # dropout after each purchase
        alive, t = alive[stays], t[stays]
        t = t - rng.exponential(1 / rate[alive])
        kept = t > 0
        alive, t = alive[kept], t[kept]
        who.append(alive)
        when.append(t)
    who, when = np.concatenate(who), np.concatenate(when)
    seconds = np.round(when * 7 * 86400).astype("int64")
    amount = np.round(rng.gamma(SPEND[0], 1 / nu[who]), 2) + 0.01
    tx = pd.DataFrame(
        {
            "customer_id": np.char.add("C", np.char.zfill((who + 1).astype(str), 8)),
            "timestamp": end - seconds.astype("timedelta64[s]"),
            "amount": amount,
        }
    ).sort_values("timestamp", kind="stable")
    path = folder / "transactions.parquet"
    tx.to_parquet(path, index=False)
    return path, len(tx)


def run_clmmodels(path: str, memory_limit: str | None = None) -> dict:
    """``clm score`` with its default flags, through the command's entry point."""
    from clmmodels.cli import cli

    folder = Path(path).parent
    params_out = folder / "params.json"
    args = [
        "score", str(folder), "--observation-end", OBSERVATION_END, "--horizon-months", "12",
        "--discount-rate", "0.01", "--out", str(folder / "scores.parquet"),
        "--params-out", str(params_out),
    ]  # fmt: skip
    if memory_limit:
        args += ["--memory-limit", memory_limit]
    cli.main(args, standalone_mode=False)
    doc = json.loads(params_out.read_text())
    gg = {f"gg_{k}": doc["gamma_gamma"][k] for k in ("p", "q", "gamma")}
    return {
        "params": {**{k: doc["bgnbd"][k] for k in ("r", "alpha", "a", "b")}, **gg},
        "customers": doc["n_customers"],
        "total_clv": doc["total_clv"],
    }


def run_clmmodels_memory(path: str) -> dict:
    from clmmodels.rfm import rfm_summary

    return _fit_and_score(rfm_summary(path, OBSERVATION_END))


def run_clmmodels_frame(path: str) -> dict:
    """A frame already in memory (as after ``load_dataset``), with the default engine."""
    import pandas as pd

    from clmmodels.rfm import rfm_summary

    return _fit_and_score(rfm_summary(pd.read_parquet(path), OBSERVATION_END))


def run_duckdb_floor(path: str) -> dict:
    """One DuckDB scan and group-by per customer, written to Parquet: the floor."""
    import duckdb

    out = Path(path).parent / "floor.parquet"
    duckdb.sql(
        "COPY (SELECT customer_id, count(*) AS n, min(timestamp) AS first, "
        f"max(timestamp) AS last, sum(amount) AS total FROM read_parquet('{path}') "
        f"GROUP BY customer_id) TO '{out}' (FORMAT parquet)"
    )
    return {"params": {}}


def run_duckdb_output(path: str) -> dict:
    """The package's aggregation and the shape of ``clm score``'s file, without a model."""
    import duckdb

    from clmmodels.per_customer import customers_sql

    end = date.fromisoformat(OBSERVATION_END)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW tx AS SELECT * FROM read_parquet('{path}')")
    aggregation = customers_sql("tx", "CAST(timestamp AS DATE)", end, end)
    out = Path(path).parent / "output.parquet"
    con.execute(
        f"""COPY (SELECT customer_id, n_days - 1 AS frequency,
                         CAST(last_day - first_day AS DOUBLE) / 7 AS recency,
                         CAST(DATE '{end}' - first_day AS DOUBLE) / 7 AS T,
                         (total - first_total) / greatest(n_days - 1, 1) AS monetary_value,
                         1 / (1 + n_days) AS p_alive, 0.5 * n_days AS expected_purchases,
                         1 - 1 / (1 + n_days) AS p_no_purchase, total / n_days AS expected_spend,
                         total / 2 AS clv, n_days > 100 AS fallback
                  FROM ({aggregation}) WHERE n_days > 0 ORDER BY customer_id)
            TO '{out}' (FORMAT parquet)"""
    )
    return {"params": {}}


def _fit_and_score(rfm) -> dict:
    """BG/NBD and Gamma-Gamma on an RFM summary, and every customer's CLV."""
    from clmmodels.clv import BetaGeoModel, GammaGammaModel, predicted_clv

    bg = BetaGeoModel().fit(rfm, standard_errors=False)
    gg = GammaGammaModel().fit(rfm, standard_errors=False)
    clv = predicted_clv(bg, gg, rfm, horizon_months=12, discount_rate=0.01)
    return {
        "params": {**bg.params_.to_dict(), **gg.params_.add_prefix("gg_").to_dict()},
        "customers": len(clv),
        "total_clv": float(clv.sum()),
    }


def _lifetimes_summary(path: str):
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    tx = pd.read_parquet(path)
    return summary_data_from_transaction_data(
        tx, "customer_id", "timestamp", monetary_value_col="amount",
        observation_period_end=OBSERVATION_END, freq="D", freq_multiplier=7,
    )  # fmt: skip


def run_lifetimes(path: str) -> dict:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    summary = _lifetimes_summary(path)
    bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    rep = summary[summary["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    clv = gg.customer_lifetime_value(
        bg, summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    clv.to_frame("clv").to_parquet(Path(path).with_name("lifetimes.parquet"))
    params = {
        **bg.params_.to_dict(),
        **gg.params_.rename({"v": "gamma"}).add_prefix("gg_").to_dict(),
    }
    return {"params": params, "customers": len(clv), "total_clv": float(clv.sum())}


def run_pymc_marketing(path: str) -> dict:
    """pymc-marketing's BG/NBD and Gamma-Gamma, fitted by MAP, on lifetimes' summary (not run
    where this script was written: pymc-marketing was not installed; a failure is shown in
    the table, not raised)."""
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    data = _lifetimes_summary(path).reset_index()
    bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
    bg.fit(fit_method="map")
    rep = data[data["frequency"] > 0]
    gg = GammaGammaModel(data=rep[["customer_id", "frequency", "monetary_value"]])
    gg.fit(fit_method="map")
    clv = gg.expected_customer_lifetime_value(
        transaction_model=bg, data=data, future_t=12, discount_rate=0.01, time_unit="W"
    )
    post = bg.fit_result.posterior
    ggp = gg.fit_result.posterior
    params = {k: float(post[k].mean()) for k in ("r", "alpha", "a", "b")}
    params.update({f"gg_{k}": float(ggp[k].mean()) for k in ("p", "q")})
    params["gg_gamma"] = float(ggp["v"].mean())
    return {"params": params, "customers": int(clv.size), "total_clv": float(clv.sum())}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _median_ratio(done: list[dict], base: list[dict], key: str) -> tuple[float, float, float]:
    ratios = [b[key] / a[key] for a, b in zip(done, base, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _print_table(results: list[tuple[int, int, dict[str, list[dict] | str]]]) -> None:
    header = (
        f"{'customers':>10} {'transactions':>13}  {'path':<17} {'wall s':>7} {'(range)':>11} "
        f"{'peak MiB':>9} {'speed-up':>9} {'(range)':>11} {'memory':>7} {'params':>9}"
    )
    print(header)
    print("-" * len(header))
    for n, n_tx, runs in results:
        base = runs.get("lifetimes")
        first = True
        for which, done in runs.items():
            size = f"{n:>10,} {n_tx:>13,}" if first else " " * 24
            first = False
            if isinstance(done, str):  # not run: why
                print(f"{size}  {which:<17} {done}")
                continue
            walls = [r["process_s"] for r in done]
            line = (
                f"{size}  {which:<17} {statistics.median(walls):>7.2f} "
                f"{f'{min(walls):.2f}-{max(walls):.2f}':>11} "
                f"{statistics.median(r['peak_mib'] for r in done):>9.0f}"
            )
            if isinstance(base, list) and which != "lifetimes":
                speed, lo, hi = _median_ratio(done, base, "process_s")
                memory = statistics.median(
                    a["peak_mib"] / b["peak_mib"] for a, b in zip(done, base, strict=True)
                )
                theirs = base[0]["params"]
                diffs = [abs(v / theirs[k] - 1) for k, v in done[0]["params"].items()]
                diff = f"{max(diffs):>9.1e}" if diffs else f"{'-':>9}"  # the floor fits nothing
                line += f" {speed:>8.1f}x {f'{lo:.1f}-{hi:.1f}':>11} {memory:>7.2f} {diff}"
            elif which == "lifetimes":
                line += f" {'1.0x':>9} {'':>11} {'1.00':>7} {'0':>9}"
            print(line)
        ours, floor = runs.get("clmmodels"), runs.get("duckdb-floor")
        if isinstance(ours, list) and isinstance(floor, list):
            times, lo, hi = _median_ratio(floor, ours, "process_s")
            print(f"{'':>24}  clmmodels takes {times:.1f}x ({lo:.1f}-{hi:.1f}) the floor's time")
        shape = runs.get("duckdb-output")
        if isinstance(shape, list) and isinstance(floor, list):
            times, lo, hi = _median_ratio(floor, shape, "process_s")
            print(
                f"{'':>24}  the output's floor (no model) takes {times:.1f}x ({lo:.1f}-{hi:.1f})"
                " the floor's time"
            )
    print(
        "\nwall s: whole process (start-up and imports included), median of the runs; "
        "speed-up: lifetimes' wall / the path's, median of the run-by-run ratios; memory: the "
        "path's peak / lifetimes'; params: the largest relative difference of the BG/NBD and "
        "Gamma-Gamma estimates from lifetimes'."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", default="23570,1000000", help="sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    parser.add_argument(
        "--params", default=DEFAULT_PARAMS, help="the simulator's BG/NBD r,alpha,a,b (weeks)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every path")
    parser.add_argument(
        "--paths",
        default="clmmodels,lifetimes,pymc-marketing,duckdb-floor,duckdb-output",
        help=f"of {', '.join(PATHS)}",
    )
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB's memory limit for the clmmodels path"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        paths = {
            "clmmodels": functools.partial(run_clmmodels, memory_limit=args.memory_limit),
            "clmmodels-memory": run_clmmodels_memory,
            "clmmodels-frame": run_clmmodels_frame,
            "lifetimes": run_lifetimes,
            "pymc-marketing": run_pymc_marketing,
            "duckdb-floor": run_duckdb_floor,
            "duckdb-output": run_duckdb_output,
        }
        report(paths[args.child], args.data)
        return
    params = tuple(float(v) for v in args.params.split(","))
    if len(params) != 4:
        parser.error("--params takes four numbers: r,alpha,a,b")
    wanted = args.paths.split(",")
    unknown = set(wanted) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {', '.join(sorted(unknown))}; known: {', '.join(PATHS)}")
    print(f"simulated BG/NBD company: r,alpha,a,b = {args.params}; seed {args.seed}")
    options = ["--memory-limit", args.memory_limit] if args.memory_limit else []
    results = []
    for n in (int(v) for v in args.customers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            path, n_tx = simulate_bgnbd(n, params, args.seed, Path(tmp))
            print(f"{n:,} customers, {n_tx:,} transactions ({time.perf_counter() - t:.1f} s)")
            runs: dict[str, list[dict] | str] = {}
            for which in wanted:
                if which == "pymc-marketing" and not _installed("pymc_marketing"):
                    runs[which] = "not installed: skipped (pip install pymc-marketing)"
                else:
                    runs[which] = []
            for _ in range(args.repeat):
                for which, done in runs.items():
                    if isinstance(done, list):
                        t = time.perf_counter()
                        optional = which == "pymc-marketing"  # its API moves between releases
                        result = in_child(
                            __file__, which, str(path), *options, stop_on_error=not optional
                        )
                        if "error" in result:
                            runs[which] = f"failed: {result['error']}"
                            continue
                        result["process_s"] = time.perf_counter() - t
                        done.append(result)
        results.append((n, n_tx, runs))
    print()
    _print_table(results)


if __name__ == "__main__":
    main()
