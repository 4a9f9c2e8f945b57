"""The ``clm`` command line for batch users.

Every error the input can cause is printed as a message, without a traceback, with exit
status 2 (1 is kept for "the command ran and found failures", as in ``clm reports``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from pathlib import Path

import click

from .engines import DEFAULT_ENGINE, ENGINES, engine_name
from .errors import ClmError
from .timeunits import MODEL_UNITS, STAGE_PERIODS
from .vocabulary import (
    ACTIVE_WINDOW_DAYS,
    ALPHA,
    CHURN_CLASSIFIERS,
    PURCHASE_MODELS,
    RISK_BANDS,
    STAGE_METHODS,
)

DATA_DIR_HELP = (
    "A dataset folder in the shape of the data contract, or a bundled name (cdnow, cdnow_sample)."
)


FREQ_OPTION = click.option(
    "--freq",
    type=click.Choice(MODEL_UNITS),
    default="W",
    show_default=True,
    help="Time unit of recency, T and the models: days, weeks or months.",
)


HORIZON_MONTHS_OPTION = click.option(
    "--horizon-months", default=12, show_default=True, help="CLV and forecast horizon."
)
STAGE_PERIOD_OPTION = click.option(
    "--period",
    type=click.Choice(STAGE_PERIODS),
    default="month",
    show_default=True,
    help="Calendar period of one stage per customer.",
)


def churn_horizon_option(name: str):
    """The churn horizon (``clm churn --horizon-days``, ``clm profile --churn-horizon-days``)."""
    return click.option(
        name,
        default=90,
        show_default=True,
        type=click.IntRange(min=1),
        help="Churned = no transaction in [as-of, as-of + horizon).",
    )


def churn_model_option(name: str, dest: str):
    """The churn classifier (``clm churn --model``, ``clm profile --churn-model``)."""
    return click.option(
        name,
        dest,
        type=click.Choice(CHURN_CLASSIFIERS),
        default="hgb",
        show_default=True,
        help="Gradient boosting or the logistic-regression baseline (both give probabilities).",
    )


SNAPSHOTS_OPTION = click.option(
    "--snapshots",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Earlier snapshots the churn classifier trains on, one horizon apart.",
)


def engine_option(*engines: str):
    """``--engine``: DuckDB reads the files (or a bundled dataset's frames) in place; Spark
    runs the same SQL on a cluster. ``pandas``, the old name of the in-memory path, is DuckDB."""

    def resolve(ctx, param, value: str) -> str:
        return engine_name(value)

    return click.option(
        "--engine",
        type=click.Choice([*engines, "pandas"]),
        default=DEFAULT_ENGINE,
        show_default=True,
        callback=resolve,
        help="duckdb reads the CSV/Parquet files directly, without loading them whole"
        + ("; spark runs on $SPARK_MASTER (default local[*]; extra: clmmodels[spark])."
           if "spark" in engines else ".")
        + " pandas is the old name of duckdb.",
    )  # fmt: skip


def _load(
    data_dir: str,
    tables: tuple[str, ...] | None = None,
    event_mapping: str | None = None,
    in_files: tuple[str, ...] = (),
):
    from .dataset import load_dataset

    return load_dataset(
        data_dir, event_stages=_event_mapping(event_mapping), tables=tables, in_files=in_files
    )


#: The large tables the engine reads from a folder's files without loading them.
LARGE_TABLES = ("transactions", "events")


def _event_mapping(path: str | None) -> dict[str, str] | None:
    from .vocabulary import load_event_mapping

    return load_event_mapping(path) if path else None


INTERVALS_OPTION = click.option(
    "--intervals", is_flag=True, help="Add clv_lower/clv_upper: 1 - alpha bootstrap intervals."
)
ALPHA_OPTION = click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=ALPHA,
    show_default=True,
    help="Intervals cover 1 - alpha: 0.05 gives 95%.",
)
N_BOOT_OPTION = click.option(
    "--n-boot", default=200, show_default=True, help="Bootstrap resamples."
)
EVENT_MAPPING_OPTION = click.option(
    "--event-mapping",
    default=None,
    type=click.Path(dir_okay=False),
    help="The company's own event types: a CSV with columns event_type,stage (or YAML "
    "event_type: stage) [default: DATA_DIR's event_mapping.csv or .yml if there is one, else "
    "the contract's vocabulary].",
)


def _check_outputs(
    frames: dict[str, str | None],
    texts: dict[str, str | None] | None = None,
    folders: tuple[str, ...] = (),
) -> None:
    """Check every output of a command, option -> path (None: not given), before its work
    starts: a bad path found after an hour's run costs the hour. ``frames`` are .csv or
    .parquet tables, ``texts`` JSON or text files, ``folders`` the options an engine writes as
    a folder of part files; no two may name the same file."""
    from .outputs import check_distinct, check_writable

    for option, path in frames.items():
        if path is not None:
            check_writable(path, option, folder=option in folders)
    for option, path in (texts or {}).items():
        if path is not None:
            check_writable(path, option, suffixes=None)
    check_distinct({**frames, **(texts or {})})


def _write_outputs(*outputs: tuple[str, str | None, object]) -> None:
    """Write a command's outputs, each (option, path, frame or text), once its work is done:
    all or none, each atomically (clmmodels.outputs); one without a path or content is
    skipped. A frame keeps its index: CSV's first columns, Parquet's (as the engines write)."""
    from .outputs import OutputSet

    with OutputSet() as outs:
        for option, path, content in outputs:
            if path is None or content is None:
                continue
            if isinstance(content, str):
                outs.text(option, path, content)
            else:
                outs.frame(option, path, content)


def _with_constants(**values: object):
    """Fill a command's help with the package's constants, so the text cannot drift."""

    def fill(command):
        command.__doc__ = command.__doc__.format(**values)
        return command

    return fill


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="clmmodels")
def cli() -> None:
    """Customer lifecycle analytics: CLV, churn, lifecycle stages, KPIs and the report batch.

    Data goes in as a folder in the shape of the data contract: transactions.csv (or
    .parquet) and optionally customers, events, marketing_spend and surveys. The bundled
    CDNOW data is available by name: cdnow, cdnow_sample.

    \b
    The contract, every table, column and rule: docs/data-contract.md

    \b
    Examples:
      clm validate data/simulated
      clm score cdnow --observation-end 1998-06-30 --out scores.csv
      clm churn data/simulated --as-of 2024-10-01 --out churn.csv
      clm stages data/simulated --segment acquisition_channel --out matrix.csv
      clm profile data/simulated --as-of 2024-10-01 --out profile.csv
      clm reports --jobs 2
    """


@cli.command()
@click.argument("data_dir")
@EVENT_MAPPING_OPTION
def validate(data_dir: str, event_mapping: str | None) -> None:
    """Check DATA_DIR against the data contract and summarise its tables.

    Prints rows, customers and date range per table and exits 0, or prints every violation
    (file, column, rule, first offending rows) and exits 2.
    """
    from .quality import profile

    ds = _load(data_dir, event_mapping=event_mapping)
    prof = profile(ds)
    click.echo(f"{ds.name}: valid ({len(ds.present)} tables)")
    for table, row in prof.iterrows():
        if not row["present"]:
            click.echo(f"  {table:<16} absent")
            continue
        customers = (
            ""
            if row["customers"] is None or str(row["customers"]) == "<NA>"
            else f"{row['customers']:>9,} customers  "
        )
        click.echo(
            f"  {table:<16} {row['rows']:>10,} rows  {customers}"
            f"{row['first']:%Y-%m-%d} to {row['last']:%Y-%m-%d}"
        )


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--customers", "n_customers", default=10_000, show_default=True, help="Number of customers."
)
@click.option(
    "--seed", default=42, show_default=True, help="Random seed: the same seed gives the same files."
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option(
    "--stage-log",
    is_flag=True,
    help="Instead of a company: an events-only log drawn from a known monthly stage matrix "
    "(truth.json, and each customer's true stage per month in truth_stages.csv), to check "
    "clm stages against.",
)
@click.option(
    "--months", default=24, show_default=True, type=click.IntRange(min=2),
    help="With --stage-log: months of the log.",
)  # fmt: skip
@click.option(
    "--silent", default=0.0, show_default=True, type=click.FloatRange(0, 1),
    help="With --stage-log: probability that a live customer's month leaves no event "
    "(a purchase always leaves one).",
)  # fmt: skip
@click.option(
    "--unannounced", default=0.0, show_default=True, type=click.FloatRange(0, 1),
    help="With --stage-log: probability that a churn leaves no churn event.",
)  # fmt: skip
def simulate(
    out_dir: str,
    n_customers: int,
    seed: int,
    fmt: str,
    stage_log: bool,
    months: int,
    silent: float,
    unannounced: float,
) -> None:
    """Write a simulated company with known truth to OUT_DIR.

    All five contract tables, plus truth.json (the BG/NBD, Gamma-Gamma, CAC and stage-chain
    parameters that generated them) and truth_customers.csv (each customer's latent values).
    The company acquires customers every month (more in the autumn and in a March 2024
    campaign, through a channel mix that shifts), so every month's KPIs have a value.

    With --stage-log, an events-only log from a known stage matrix instead, e.g.
    clm simulate stage_log --stage-log --customers 8000 --silent 0.4 --unannounced 0.4
    """
    from .outputs import check_writable

    check_writable(out_dir, "OUT_DIR", suffixes=None, folder=True)
    if stage_log:
        from .stages.synthetic import write_stage_log

        out = write_stage_log(out_dir, n_customers, months, seed, silent, unannounced, fmt)
        click.echo(
            f"wrote {out}: events of {n_customers:,} customers over {months} months from a known "
            f"stage matrix (silent months {silent:.0%}, unannounced churns {unannounced:.0%}); "
            "the truth in truth.json and truth_stages.csv"
        )
        return
    if (months, silent, unannounced) != (24, 0.0, 0.0):
        raise ClmError("--months, --silent and --unannounced go with --stage-log")
    from .simulate import simulate_company

    company = simulate_company(n_customers=n_customers, seed=seed)
    out = company.write(out_dir, fmt=fmt)
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in company.tables.items())
    click.echo(f"wrote {out}: {sizes} rows")


@cli.command()
@click.argument("data_dir")
@click.option("--observation-end", required=True, help="Last day observed (inclusive), ISO 8601.")
@click.option("--calibration-end", default=None, help="With it, a calibration/holdout summary.")
@FREQ_OPTION
@engine_option(*ENGINES)
@click.option("--out", required=True, help="Output file, .csv or .parquet.")
def rfm(
    data_dir: str,
    observation_end: str,
    calibration_end: str | None,
    freq: str,
    engine: str,
    out: str,
) -> None:
    """Write per-customer frequency, recency, T and monetary value for DATA_DIR."""
    from .rfm import calibration_holdout, rfm_summary

    _check_outputs({"--out": out})
    source = _Tables(data_dir, engine).source("transactions", "the RFM summary")
    if calibration_end:
        summary = calibration_holdout(
            source, calibration_end, observation_end, freq=freq, engine=engine
        )
    else:
        summary = rfm_summary(source, observation_end, freq=freq, engine=engine)
    _write_outputs(("--out", out, summary))
    click.echo(f"wrote {out}: {len(summary):,} customers")
    for what, n in summary.attrs.get("excluded", {}).items():
        click.echo(f"  left out: {n:,} {what}")


@cli.command()
@click.argument("data_dir")
@click.option("--observation-end", required=True, help="Last day observed (inclusive), ISO 8601.")
@click.option(
    "--model",
    type=click.Choice(PURCHASE_MODELS),
    default="bgnbd",
    show_default=True,
    help="Purchase model: BG/NBD, Pareto/NBD or MBG/NBD (spend is always Gamma-Gamma).",
)
@FREQ_OPTION
@HORIZON_MONTHS_OPTION
@click.option(
    "--discount-rate",
    default=0.01,
    show_default=True,
    help="Monthly discount rate (0.01 is about 12.7%/year).",
)
@engine_option(*ENGINES)
@click.option(
    "--out",
    required=True,
    help="Per-customer scores, .csv or .parquet (with --engine spark, a folder of part files).",
)
@click.option("--params-out", default=None, help="JSON with both models' parameters and fit.")
@click.option(
    "--memory-limit",
    default=None,
    help="DuckDB's memory limit, e.g. 2GB; beyond it DuckDB spills to disk [default: chosen "
    "from the input's size, printed; DuckDB's 80% of RAM where that is no lower].",
)
@INTERVALS_OPTION
@ALPHA_OPTION
@N_BOOT_OPTION
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
def score(
    data_dir: str,
    observation_end: str,
    model: str,
    freq: str,
    horizon_months: int,
    discount_rate: float,
    engine: str,
    out: str,
    params_out: str | None,
    memory_limit: str | None,
    intervals: bool,
    alpha: float,
    n_boot: int,
    seed: int,
) -> None:
    """Score every customer of DATA_DIR with a BTYD model and Gamma-Gamma.

    One row per customer with a purchase by the observation end: frequency, recency, T (in
    --freq units), monetary_value, p_alive, expected_purchases and p_no_purchase over the
    horizon, expected_spend (per purchase occasion) and clv (discounted, over the horizon).

    With --engine duckdb or spark the models fit on, and score, the distinct purchase histories
    the engine counts, and the engine joins those scores to its customers and writes --out, so
    the data may be larger than memory; --intervals (a bootstrap over all customers) holds
    them in memory instead.
    """
    import json

    # Spark writes --out as a folder of part files (unless --intervals: then pandas writes it).
    folders = ("--out",) if engine == "spark" and not intervals else ()
    _check_outputs({"--out": out}, {"--params-out": params_out}, folders=folders)
    source = _Tables(data_dir, engine).source("transactions", "CLV scores")
    settings = dict(model=model, freq=freq, horizon_months=horizon_months)
    settings.update(discount_rate=discount_rate, engine=engine, progress=True)
    scores = None  # the engine writes --out itself (atomically), without --intervals
    if not intervals:
        from .clv.stream import score_to_file  # imports the models while DuckDB aggregates

        result = score_to_file(source, observation_end, out, memory_limit=memory_limit, **settings)
    else:
        from .clv.score import score_customers

        result = score_customers(
            source,
            observation_end,
            intervals=intervals,
            n_boot=n_boot,
            seed=seed,
            alpha=alpha,
            **settings,
        )
        scores = result.scores
    doc = result.params_json()
    _write_outputs(
        ("--out", out, scores), ("--params-out", params_out, json.dumps(doc, indent=2) + "\n")
    )
    params = ", ".join(f"{k}={v:.4g}" for k, v in result.purchases.params_.items())
    click.echo(f"wrote {out}: {result.n_customers:,} customers; {model}: {params}")
    click.echo(
        f"  log-likelihood {result.purchases.log_likelihood_:.1f}; "
        f"total {horizon_months}-month CLV {doc['total_clv']:,.2f}"
    )
    for what, n in result.excluded.items():
        click.echo(f"  left out: {n:,} {what}")
    if result.memory_limit is not None:
        how = "--memory-limit" if memory_limit else "chosen from the input's size"
        click.echo(f"  DuckDB memory limit {result.memory_limit} ({how})")
    for w in result.warnings:
        click.echo(f"  warning: {w}", err=True)


@cli.command()
@click.argument("data_dir")
@click.option("--start", required=True, help="First day of the window, ISO 8601 (inclusive).")
@click.option("--end", required=True, help="Day after the window, ISO 8601 (exclusive).")
@click.option(
    "--active-window-days",
    default=ACTIVE_WINDOW_DAYS,
    show_default=True,
    help="A customer is active at a date with a transaction in the days before it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@engine_option(*ENGINES)
def kpis(
    data_dir: str, start: str, end: str, active_window_days: int, as_json: bool, engine: str
) -> None:
    """The headline KPIs of DATA_DIR over the window [START, END).

    New customers, customers active at start and end, CRR and churn rate (fractions), CAC
    blended and per channel, NPS (with a 95% interval) and CSAT (100-point scales), revenue.
    A metric whose table is absent is null, with the reason under notes. With --engine duckdb
    or spark the engine counts in the transactions and customers files; the small tables
    (marketing_spend, surveys) are read by pandas.
    """
    import json

    from .metrics import kpis as compute
    from .metrics import window_bounds, window_counts

    tables = _Tables(data_dir, engine)
    lo, hi = window_bounds(start, end)
    tx = tables.source("transactions", "KPIs")
    customers = tables.source("customers", "KPIs", required=False)
    counts = window_counts(tx, [lo, hi], customers, active_window_days, engine=engine)
    ds = tables.only("marketing_spend", "surveys")
    result = compute(ds, start, end, active_window_days, counts=counts)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    w = result["window"]
    click.echo(f"KPIs of {data_dir}, {w['start']} to {w['end']} (end excluded)")
    rows = [
        ("new customers", result["new_customers"], "{:,}"),
        (f"active at start ({active_window_days} d)", result["active_start"], "{:,}"),
        (f"active at end ({active_window_days} d)", result["active_end"], "{:,}"),
        ("customer retention rate", result["crr"], "{:.1%}"),
        ("churn rate", result["churn_rate"], "{:.1%}"),
        ("CAC, blended", (result["cac"] or {}).get("blended"), "{:,.2f}"),
        ("NPS", result["nps"], "{:.1f}"),
        ("CSAT", result["csat"], "{:.1f}"),
        ("revenue", result["revenue"], "{:,.2f}"),
        ("transactions", result["transactions"], "{:,}"),
    ]
    for name, value, fmt in rows:
        click.echo(f"  {name:<28} {'n/a' if value is None else fmt.format(value)}")
    for channel, value in ((result["cac"] or {}).get("by_channel") or {}).items():
        click.echo(f"  {'CAC, ' + channel:<28} {'n/a' if value is None else f'{value:,.2f}'}")
    for note in result["notes"]:
        click.echo(f"  note: {note}")


class _Tables:
    """The tables of DATA_DIR as the engines read them: a folder's files themselves, or a
    bundled dataset's checked frames; small tables loaded (and checked) as a dataset."""

    def __init__(self, data_dir: str, engine: str = DEFAULT_ENGINE) -> None:
        self.data_dir, self.engine = data_dir, engine

    @functools.cached_property
    def dataset(self):
        return _load(self.data_dir)

    def only(self, *tables: str):
        """The dataset with only ``tables`` loaded (the small ones: the engine reads the large
        ones from their files); a bundled dataset whole."""
        if not Path(self.data_dir).is_dir():
            return self.dataset
        return _load(self.data_dir, tables=tables)

    def event_stages(self, path: str | None) -> dict[str, str] | None:
        """The event mapping: ``path`` (--event-mapping), else the folder's own, else None
        (the contract's vocabulary; a bundled dataset's own)."""
        from .vocabulary import folder_event_mapping

        if path:
            return _event_mapping(path)
        if Path(self.data_dir).is_dir():
            return folder_event_mapping(self.data_dir)
        return self.dataset.event_stages

    def source(self, table: str, analysis: str, required: bool = True):
        """The table's file or frame; ``None`` for an absent optional table."""
        folder = Path(self.data_dir)
        if folder.is_dir():
            for ext in ("parquet", "csv"):
                if (folder / f"{table}.{ext}").exists():
                    return str(folder / f"{table}.{ext}")
            if not required:
                return None
        ds = self.dataset
        return ds.require(table, analysis) if required else ds.table(table)


@cli.command()
@click.argument("data_dir")
@STAGE_PERIOD_OPTION
@click.option(
    "--method",
    type=click.Choice(STAGE_METHODS),
    default=STAGE_METHODS[0],
    show_default=True,
    help="latent: each period's stage is hidden, its events are evidence and a silent period "
    "is missing (churn announced or not); right for real, sparse logs. observed: a silent "
    "period keeps the last stage, churned after --churn-after; exact when every customer "
    "sends a signal every period.",
)
@click.option(
    "--churn-after",
    type=click.IntRange(min=1),
    default=None,
    help="With --method observed: silent periods after which a customer is churned "
    "[default: about half a year: 26 weeks, 6 months or 2 quarters].",
)
@click.option("--end", default=None, help="Day after the last one observed (exclusive), ISO 8601.")
@click.option(
    "--segment",
    default=None,
    help="A customers column (e.g. acquisition_channel): one matrix per value, with a "
    "leading segment column.",
)
@engine_option(*ENGINES)
@click.option("--out", required=True, help="Probability matrix, .csv or .parquet.")
@click.option(
    "--counts-out",
    default=None,
    help="Transition counts (expected counts with --method latent), .csv or .parquet.",
)
@click.option(
    "--posterior-out",
    default=None,
    help="With --method latent: each customer's probability of each stage in the last "
    "period, .csv or .parquet.",
)
@click.option(
    "--analysis-out",
    default=None,
    help="JSON: expected periods until churn, P(advocacy before churn), the stationary law, "
    "Markov-chain CLV (with --rewards) and the Anderson-Goodman tests.",
)
@click.option(
    "--rewards",
    default=None,
    type=click.Path(dir_okay=False),
    help="Value of one period in each stage, for Markov-chain CLV: a CSV with columns "
    "stage,reward (or YAML stage: reward).",
)
@click.option(
    "--discount-rate",
    default=0.01,
    show_default=True,
    help="Per period, for Markov-chain CLV.",
)
@EVENT_MAPPING_OPTION
def stages(
    data_dir: str,
    period: str,
    method: str,
    churn_after: int | None,
    end: str | None,
    segment: str | None,
    engine: str,
    out: str,
    counts_out: str | None,
    posterior_out: str | None,
    analysis_out: str | None,
    rewards: str | None,
    discount_rate: float,
    event_mapping: str | None,
) -> None:
    """Stage-transition matrix of DATA_DIR: one lifecycle stage per customer and period.

    Signals come from events (the contract's vocabulary, or --event-mapping) and transactions
    (the first is a purchase, later ones retention), or from either alone. The default latent
    model estimates the matrix by maximum likelihood with silent periods as missing
    observations; --method observed keeps a customer's stage through silence and churns them
    after --churn-after silent periods.

    The matrix covers the stages this data can observe, in the contract's order (transactions
    alone show purchase, retention and churned); each row sums to 1.
    """
    import json

    import pandas as pd

    from .stages import assign_stages
    from .stages.analysis import chain_analysis, load_rewards
    from .stages.methods import fit_transitions

    _check_outputs(
        {"--out": out, "--counts-out": counts_out, "--posterior-out": posterior_out},
        {"--analysis-out": analysis_out},
    )
    if method == "latent" and churn_after is not None:
        raise ClmError("--churn-after: only --method observed churns by a count of silent periods")
    if method == "observed" and posterior_out:
        raise ClmError("--posterior-out: stage probabilities come from --method latent")
    if rewards and not analysis_out:
        raise ClmError("--rewards: give --analysis-out too (Markov-chain CLV is written there)")
    values = load_rewards(rewards) if rewards else None  # a bad file fails before the work
    analysis = "the stage-transition matrix"
    tables = _Tables(data_dir, engine)
    # Transactions or events, or both: an events-only log has its purchases as events.
    tx = tables.source("transactions", analysis, required=False)
    ev = tables.source("events", analysis, required=False)
    if tx is None and ev is None:
        raise ClmError(
            f"{data_dir}: {analysis} needs transactions or events (or both), and neither is "
            "there (expected transactions.csv/.parquet or events.csv/.parquet)"
        )
    segments = None
    if segment is not None:
        customers = tables.only("customers").require("customers", f"--segment {segment}")
        if segment not in customers.columns or segment == "customer_id":
            cols = ", ".join(c for c in customers.columns if c != "customer_id")
            raise ClmError(f"--segment {segment}: not a customers column; columns are {cols}")
        segments = customers.set_index("customer_id")[segment]
    rule = (churn_after or "auto") if method == "observed" else None
    history = assign_stages(
        tx, ev, period=period, churn_after=rule, end=end, engine=engine,
        event_stages=tables.event_stages(event_mapping),
    )  # fmt: skip
    fitted = fit_transitions(history, method, segments=segments)
    if segments is None:
        matrix, counts = fitted.matrix, fitted.counts
    else:
        matrix = pd.concat(fitted.segment_matrices, names=["segment"])
        counts = pd.concat(fitted.segment_counts, names=["segment"])
    doc = None
    if analysis_out:
        found = chain_analysis(fitted.model, history, values, discount_rate, segments)
        doc = json.dumps({"method": method, **found}, indent=2)
    posterior = fitted.model.posterior_ if posterior_out else None
    _write_outputs(
        ("--out", out, matrix), ("--counts-out", counts_out, counts),
        ("--posterior-out", posterior_out, posterior), ("--analysis-out", analysis_out, doc),
    )  # fmt: skip
    p = history.periods
    how = (
        f"churned after {history.churn_after} silent {period}s"
        if method == "observed"
        else f"latent stages ({_em_text(fitted.model)})"
    )
    click.echo(
        f"{history.n_customers:,} customers over {len(p)} {period}s ({p[0]} to {p[-1]}), "
        f"{fitted.counts.to_numpy().sum():,.0f} transitions, {how}; signals after the end "
        f"left out: {history.counts['signals_after_end']:,}"
    )
    if fitted.unobserved:
        click.echo(
            f"stages estimated: {', '.join(fitted.stages)}; not in this data (no estimate): "
            f"{', '.join(fitted.unobserved)}"
        )
    if segments is not None:
        unknown = int((~history.customers.isin(segments.index)).sum())
        click.echo(f"segments: {len(fitted.segment_matrices)}; customers without one: {unknown:,}")
    click.echo(
        f"matrix written to {out}"
        + (f", counts to {counts_out}" if counts_out else "")
        + (f", stage probabilities to {posterior_out}" if posterior_out else "")
        + (f", the chain analysis to {analysis_out}" if analysis_out else "")
    )


def _em_text(model) -> str:
    """How the latent model's fit went, in words."""
    if model.converged_:
        return f"EM converged in {model.n_iter_} iterations"
    return f"EM stopped at its bound of {model.n_iter_} iterations before converging"


@cli.command()
@click.argument("data_dir")
@click.option(
    "--as-of", required=True, help="Snapshot date, ISO 8601: features use data before it."
)
@churn_horizon_option("--horizon-days")
@churn_model_option("--model", "kind")
@SNAPSHOTS_OPTION
@click.option("--seed", default=0, show_default=True, help="Seed: same data, same probabilities.")
@click.option("--out", required=True, help="Per-customer scores, .csv or .parquet.")
@click.option(
    "--metrics-out",
    default=None,
    help="JSON with the backtest table (at as-of if the data covers the horizon after it, "
    "else one horizon earlier) against BG/NBD and the recency rule.",
)
@EVENT_MAPPING_OPTION
@engine_option(*ENGINES)
@_with_constants(medium=RISK_BANDS[0], high=RISK_BANDS[1])
def churn(
    data_dir: str,
    as_of: str,
    horizon_days: int,
    kind: str,
    snapshots: int,
    seed: int,
    out: str,
    metrics_out: str | None,
    event_mapping: str | None,
    engine: str,
) -> None:
    """Churn probability, risk band and main reasons for every customer of DATA_DIR.

    Customers are those with a transaction before --as-of. The classifier trains on earlier
    snapshots whose label windows end by --as-of, so the scores use no data from after it.
    Risk bands: low below {medium}, medium below {high}, high from {high} on.

    --engine aggregates the snapshots' features and labels from the transactions and events
    files (a CSV typed once into a temporary Parquet file); the classifier trains in memory
    (scikit-learn).
    """
    import json

    from .churn import backtest, fit_churn_model, snapshot_features
    from .churn.backtest import latest_backtest_date
    from .timeunits import as_day

    _check_outputs({"--out": out}, {"--metrics-out": metrics_out})
    ds = _load(data_dir, event_mapping=event_mapping, in_files=LARGE_TABLES)
    at = as_day(as_of, "--as-of")
    result, when = None, None
    if metrics_out:
        when = latest_backtest_date(ds, at, horizon_days, engine)
        result = backtest(
            ds, when, horizon_days, kinds=(kind,), n_snapshots=snapshots, seed=seed, engine=engine
        )
    # A backtest at as-of has already trained the very model that scores it.
    model = (
        result.models[kind]
        if result is not None and when == at
        else fit_churn_model(ds, at, horizon_days, kind, snapshots, seed, engine)
    )
    features = snapshot_features(ds, at, horizon_days=horizon_days, engine=engine)
    scores = model.score_customers(features)
    metrics = None
    if result is not None:
        payload = {"model": kind, "evaluated_at": str(when.date()), **result.to_dict()}
        metrics = json.dumps(payload, indent=2)
    # All the work is done: write both outputs, or neither if one fails.
    _write_outputs(("--out", out, scores), ("--metrics-out", metrics_out, metrics))
    bands = scores["risk_band"].value_counts().reindex(["low", "medium", "high"])
    sample = model.sample_words(model.n_training_rows_, model.n_snapshot_rows_)
    sample = f", on {sample}" if sample else ""  # ChurnModel's max_rows drew one
    click.echo(
        f"{len(scores):,} customers scored at {at.date()} ({kind}, trained on snapshots "
        f"{', '.join(str(d.date()) for d in model.snapshots_)}{sample}): "
        + ", ".join(f"{b} {n:,}" for b, n in bands.items())
        + f"; written to {out}"
    )
    if result is not None:
        from .present import format_frame, header

        alive = int(result.alive.sum())
        for what, table in (
            (f"every customer ({len(result.labels):,})", result.table),
            (f"the {alive:,} still plausibly alive (a purchase in the {ACTIVE_WINDOW_DAYS} days "
             "before)", result.table_alive),
        ):  # fmt: skip
            if len(table):
                click.echo(f"backtest at {when.date()}, {what}:")
                click.echo(format_frame(table.rename(index=header), decimals=4).to_string())


@cli.command()
@click.argument("data_dir")
@click.option(
    "--as-of", required=True, help="Profile date, ISO 8601: every column uses data before it."
)
@HORIZON_MONTHS_OPTION
@churn_horizon_option("--churn-horizon-days")
@STAGE_PERIOD_OPTION
@churn_model_option("--churn-model", "churn_model")
@SNAPSHOTS_OPTION
@click.option("--seed", default=0, show_default=True, help="Seed: same data, same profile.")
@click.option(
    "--playbook",
    default=None,
    type=click.Path(dir_okay=False),
    help="YAML rules from profile to action (first match wins) [default: the built-in playbook].",
)
@click.option("--out", required=True, help="One row per customer, .csv or .parquet.")
@EVENT_MAPPING_OPTION
@engine_option(*ENGINES)
@INTERVALS_OPTION
@ALPHA_OPTION
@N_BOOT_OPTION
def profile(
    data_dir: str,
    as_of: str,
    horizon_months: int,
    churn_horizon_days: int,
    period: str,
    churn_model: str,
    snapshots: int,
    seed: int,
    playbook: str | None,
    out: str,
    event_mapping: str | None,
    engine: str,
    intervals: bool,
    alpha: float,
    n_boot: int,
) -> None:
    """Each customer of DATA_DIR now: stage, value, risk and the next action.

    One row per customer acquired before --as-of, from data strictly before it: the most
    probable stage now with its probability and periods in it, days since the last purchase
    and event, next-period stage probabilities and expected periods to churn (the latent
    stage model, as clm stages --end AS_OF --posterior-out), P(alive), expected purchases
    and CLV (as clm score --observation-end, the day before AS_OF), churn probability, risk
    band and reasons in words (as clm churn --as-of AS_OF), value at risk (CLV x churn
    probability), value tier, segment and the playbook's action. --intervals adds
    clv_lower/clv_upper (as clm score --intervals).

    --engine reads the transactions and events from their files (a CSV typed once into a
    temporary Parquet file), never whole into memory, for the stages, the purchase
    histories and the churn features; the customers and surveys tables are loaded, and the
    classifier trains in memory (scikit-learn).
    """
    from .playbook import load_playbook
    from .profile import customer_profile

    _check_outputs({"--out": out})
    rules = load_playbook(playbook) if playbook else None
    table = customer_profile(
        _load(data_dir, event_mapping=event_mapping, in_files=LARGE_TABLES), as_of,
        horizon_months=horizon_months,
        churn_horizon_days=churn_horizon_days, period=period, churn_model=churn_model,
        snapshots=snapshots, playbook=rules, seed=seed, engine=engine, intervals=intervals,
        alpha=alpha, n_boot=n_boot,
    )  # fmt: skip
    _write_outputs(("--out", out, table))
    actions = table["action"].value_counts()
    click.echo(
        f"wrote {out}: {len(table):,} customers at {table.attrs['as_of']}; actions: "
        + ", ".join(f"{a} {n:,}" for a, n in actions.items())
    )
    for what, n in table.attrs.get("excluded", {}).items():
        click.echo(f"  left out: {n:,} {what}")


@cli.command()
@click.option(
    "--config",
    default="reports.yml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="YAML listing the runs (notebook, dataset, parameters).",
)
@click.option(
    "--out",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder.",
)
@click.option("--jobs", default=2, show_default=True, help="Notebooks run at once.")
@click.option("--only", default=None, help="Run name or glob, e.g. 'data_quality-*'.")
@click.option("--force", is_flag=True, help="Re-run even unchanged runs.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="YYYY-MM",
    help="Render a past month, as if the data ended at its end (default: the data's last "
    "complete month).",
)
def reports(
    config: str, out: str, jobs: int, only: str | None, force: bool, as_of: str | None
) -> None:
    """Run the notebook batch through papermill and render HTML into OUT/YYYY-MM/.

    The batch is as of one month: --as-of, else the last complete month of the data; every
    run's dates derive from it (see clmmodels.batch_dates). OUT/index.html links each month's
    index, the latest first. Unchanged runs (same notebook, parameters, data and package) are
    skipped. A failing run gets a page with its error (OUT/YYYY-MM/failed-NAME.html), keeps
    its executed notebook in OUT/YYYY-MM/executed/ and makes the command exit 1 after the
    other runs finish.
    """
    from .reports import load_config, run_monthly

    results, month_dir = run_monthly(
        load_config(config), out_dir=out, as_of=as_of, jobs=jobs, only=only, force=force
    )
    for r in results:
        detail = r.html if r.status != "failed" else r.error
        click.echo(f"  {r.status:<9} {r.name:<36} {detail}")
    failed = [r for r in results if r.status == "failed"]
    click.echo(
        f"{len(results) - len(failed)} of {len(results)} reports ok; "
        f"index: {month_dir / 'index.html'}; all months: {Path(out) / 'index.html'}"
    )
    if failed:
        sys.exit(1)


class _Elapsed(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"  [{record.relativeCreated / 1000:6.1f} s] {record.getMessage()}"


@contextlib.contextmanager
def _progress_on_stderr():
    """The package's steps of long work (churn training, the profile) on stderr, with the
    seconds since the start, so a batch log shows where a long command is."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    log = logging.getLogger("clmmodels")
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def main() -> None:
    """Entry point: run the CLI, turning user errors into messages without tracebacks."""
    import warnings

    from .errors import ClmWarning

    def show(message, category, *_args, **_kwargs) -> None:
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    warnings.simplefilter("always", ClmWarning)
    try:
        with _progress_on_stderr():
            cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ClmError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
