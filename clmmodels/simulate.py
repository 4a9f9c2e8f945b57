"""A simulated company with known truth, in the shape of the data contract.

Purchases follow BG/NBD and spend Gamma-Gamma, with population parameters written to
``truth.json`` so that models can be checked against what generated the data:

- customers are acquired every month of the acquisition period (by default until the end:
  a living company), more of them in the autumn peak and in one campaign month, through
  channels whose mix shifts over time; each makes a first purchase when acquired; repeat
  purchases come at rate ``lambda ~ Gamma(r, alpha)`` per week, and after each repeat
  purchase the customer drops out with probability ``p ~ Beta(a, b)``;
- each purchase is worth ``z ~ Gamma(p_gg, nu)`` with ``nu ~ Gamma(q, gamma)`` per customer;
  some purchases are split into two orders on the same day;
- marketing spend per channel and month is the channel's true CAC times the customers it
  acquired that month, so CAC computed from the tables equals the truth;
- lifecycle events come from a monthly stage Markov chain (with skips, bounce-backs and
  churn), whose matrix changes once the customer has dropped out, so events carry signal
  about churn that transactions alone do not;
- satisfaction surveys follow some purchases, scored lower by customers prone to drop out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ClmError
from .vocabulary import DEFAULT_EVENT_STAGES, STAGES

#: Stages the monthly event chain moves between (purchase and retention come from transactions).
CHAIN_STAGES = ("engagement", "evaluation", "post_purchase", "retention", "advocacy", "churned")

# Monthly transition matrices over CHAIN_STAGES (rows: from, columns: to).
ALIVE_MATRIX = (
    (0.40, 0.20, 0.10, 0.15, 0.05, 0.10),
    (0.25, 0.30, 0.15, 0.15, 0.05, 0.10),
    (0.20, 0.10, 0.30, 0.25, 0.10, 0.05),
    (0.15, 0.10, 0.15, 0.40, 0.15, 0.05),
    (0.15, 0.05, 0.10, 0.30, 0.35, 0.05),
    (0.30, 0.10, 0.00, 0.05, 0.00, 0.55),
)
DEAD_MATRIX = (
    (0.25, 0.05, 0.00, 0.05, 0.00, 0.65),
    (0.20, 0.15, 0.00, 0.05, 0.00, 0.60),
    (0.15, 0.05, 0.15, 0.05, 0.00, 0.60),
    (0.15, 0.05, 0.05, 0.15, 0.00, 0.60),
    (0.10, 0.00, 0.00, 0.10, 0.20, 0.60),
    (0.08, 0.02, 0.00, 0.00, 0.00, 0.90),
)

# Event types each stage emits. Purchases come from transactions, so the chain emits no
# purchase or repeat_purchase events that a transaction would not back.
_PURCHASE_EVENTS = {"purchase", "repeat_purchase"}
_STAGE_EVENTS = {
    s: np.array(
        [e for e, st in DEFAULT_EVENT_STAGES.items() if st == s and e not in _PURCHASE_EVENTS],
        dtype=object,
    )
    for s in STAGES
}
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulated company (BG/NBD rates are per week)."""

    n_customers: int = 10_000
    seed: int = 42
    start: str = "2023-01-01"
    #: Days from ``start`` in which customers are acquired; ``None``: until ``end`` (a living
    #: company, acquiring every month, so every month's KPIs have a value).
    acquisition_days: int | None = None
    end: str = "2024-12-31"
    #: Acquisitions per month follow the seasons (peak in November, this much above the mean),
    #: with one campaign month that acquires ``campaign_lift`` times as many (YYYY-MM; through
    #: ``campaign_channel``).
    seasonality: float = 0.25
    campaign_month: str | None = "2024-03"
    campaign_lift: float = 2.0
    campaign_channel: str = "social"
    #: Each channel's share moves linearly from its ``channels`` share at ``start`` to this at
    #: the end of the acquisition period (the channel mix shifts; shares add up to 1).
    final_shares: dict[str, float] | None = field(
        default_factory=lambda: {
            "paid_search": 0.25,
            "social": 0.35,
            "email": 0.15,
            "referral": 0.15,
            "display": 0.10,
        }
    )
    r: float = 0.5
    alpha: float = 8.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 4.0
    gamma: float = 15.0
    #: channel -> (share of customers, true CAC)
    channels: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "paid_search": (0.30, 42.0),
            "social": (0.25, 28.0),
            "email": (0.15, 12.0),
            "referral": (0.15, 18.0),
            "display": (0.15, 55.0),
        }
    )
    split_order_share: float = 0.05
    survey_share: float = 0.25
    #: Simulate events and surveys too (benchmarks of transactions-only work turn them off).
    lifecycle: bool = True

    @property
    def acquisition_end(self) -> pd.Timestamp:
        """The end (exclusive) of the acquisition period."""
        last = pd.Timestamp(self.end) + pd.Timedelta(days=1)
        if self.acquisition_days is None:
            return last
        return pd.Timestamp(self.start) + pd.Timedelta(days=self.acquisition_days)

    def validate(self) -> None:
        if self.n_customers < 1:
            raise ClmError(f"--customers must be at least 1, got {self.n_customers}")
        shares = np.array([s for s, _ in self.channels.values()])
        if not np.isclose(shares.sum(), 1.0):
            raise ClmError("channel shares must add up to 1")
        if self.final_shares is not None and (
            set(self.final_shares) != set(self.channels)
            or not np.isclose(sum(self.final_shares.values()), 1.0)
        ):
            raise ClmError("final_shares must name every channel and add up to 1")
        if self.campaign_month is not None and self.campaign_channel not in self.channels:
            raise ClmError(f"campaign_channel {self.campaign_channel!r} is not a channel")
        if self.acquisition_end <= pd.Timestamp(self.start):
            raise ClmError("the acquisition period must hold at least one day")
        if pd.Timestamp(self.end) + pd.Timedelta(days=1) < self.acquisition_end:
            raise ClmError("end must not be before the end of the acquisition period")


@dataclass
class SimulatedCompany:
    """The five contract tables, the population truth and each customer's latent values."""

    tables: dict[str, pd.DataFrame]
    truth: dict
    latent: pd.DataFrame

    def write(self, out_dir: str | Path, fmt: str = "csv") -> Path:
        """Write the tables (CSV or Parquet), ``truth.json`` and ``truth_customers.csv``."""
        if fmt not in ("csv", "parquet"):
            raise ClmError(f"format must be csv or parquet, got {fmt!r}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                df.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S")
            else:
                df.to_parquet(path, index=False)
        (out / "truth.json").write_text(json.dumps(self.truth, indent=2, sort_keys=True) + "\n")
        self.latent.to_csv(
            out / "truth_customers.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S"
        )
        return out


def simulate_company(config: SimulationConfig | None = None, **overrides) -> SimulatedCompany:
    """Simulate a company; the same config (seed included) gives the same tables.

    Examples
    --------
    >>> company = simulate_company(n_customers=200, seed=1)
    >>> sorted(company.tables)
    ['customers', 'events', 'marketing_spend', 'surveys', 'transactions']
    """
    cfg = config or SimulationConfig()
    if overrides:
        cfg = SimulationConfig(**{**asdict(cfg), **overrides})
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_customers
    end = np.datetime64(pd.Timestamp(cfg.end) + pd.Timedelta(days=1), "ns")  # end of last day

    ids = np.array([f"C{i:06d}" for i in range(1, n + 1)], dtype=object)
    names = list(cfg.channels)
    acquired, channel = _acquisitions(rng, n, cfg)
    lam = rng.gamma(cfg.r, 1.0 / cfg.alpha, n)  # per week
    drop = rng.beta(cfg.a, cfg.b, n)
    nu = rng.gamma(cfg.q, 1.0 / cfg.gamma, n)

    tx, died_at = _purchases(rng, ids, acquired, end, lam, drop, nu, cfg)
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "acquired_at": acquired,
            "acquisition_channel": channel,
            "region": rng.choice(["north", "south", "east", "west"], size=n),
        }
    )
    spend = _marketing_spend(customers, cfg)
    tables = {"transactions": tx, "customers": customers, "marketing_spend": spend}
    if cfg.lifecycle:
        tables["events"] = _events(rng, ids, acquired, died_at, end)
        tables["surveys"] = _surveys(rng, tx, drop, end, cfg.survey_share)

    latent = pd.DataFrame(
        {
            "customer_id": ids,
            "lambda_per_week": lam,
            "dropout_p": drop,
            "nu": nu,
            "alive_at_end": pd.isna(died_at),
            "dropped_out_at": died_at,
        }
    )
    truth = {
        "seed": cfg.seed,
        "n_customers": n,
        "start": cfg.start,
        "end": cfg.end,
        "observation_end": cfg.end,
        "freq": "W",
        "bgnbd": {"r": cfg.r, "alpha": cfg.alpha, "a": cfg.a, "b": cfg.b},
        "gamma_gamma": {"p": cfg.p, "q": cfg.q, "gamma": cfg.gamma},
        "cac_by_channel": {c: cfg.channels[c][1] for c in names},
        "channel_share": {c: cfg.channels[c][0] for c in names},
        "channel_share_at_end": dict(cfg.final_shares or {c: cfg.channels[c][0] for c in names}),
        "acquisition": {
            "end": str(cfg.acquisition_end.date()),
            "seasonality": cfg.seasonality,
            "campaign_month": cfg.campaign_month,
            "campaign_lift": cfg.campaign_lift,
            "campaign_channel": cfg.campaign_channel,
        },
        "stage_chain": {
            "stages": list(CHAIN_STAGES),
            "period": "month",
            "alive": [list(r) for r in ALIVE_MATRIX],
            "dropped_out": [list(r) for r in DEAD_MATRIX],
        },
        "share_alive_at_end": float(latent["alive_at_end"].mean()),
        "n_transactions": len(tx),
    }
    return SimulatedCompany(tables=tables, truth=truth, latent=latent)


def _acquisitions(rng, n: int, cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """When and through which channel each customer is acquired: months weighted by the
    seasons and the campaign, a uniform instant within the month, and a channel mix that
    shifts over the period (the campaign month's extra customers come through its channel)."""
    lo, hi = pd.Timestamp(cfg.start), cfg.acquisition_end
    months = pd.period_range(lo, hi - pd.Timedelta(seconds=1), freq="M")
    first = months.start_time.to_numpy().copy()
    first[0] = max(first[0], lo.to_datetime64())
    last = (months.end_time + pd.Timedelta(microseconds=1)).to_numpy().copy()
    last[-1] = min(last[-1], hi.to_datetime64())
    days = (last - first) / np.timedelta64(1, "D")
    season = 1 + cfg.seasonality * np.cos(2 * np.pi * (months.month.to_numpy() - 11) / 12)
    campaign = (months == pd.Period(cfg.campaign_month, "M")) if cfg.campaign_month else False
    weight = days * season * np.where(campaign, cfg.campaign_lift, 1.0)
    month = rng.choice(len(months), size=n, p=weight / weight.sum())
    offset = rng.uniform(0, 1, n) * days[month] * 86400
    acquired = first[month] + offset.astype("timedelta64[s]")
    names = list(cfg.channels)
    start_share = np.array([cfg.channels[c][0] for c in names])
    end_share = (
        start_share if cfg.final_shares is None else np.array([cfg.final_shares[c] for c in names])
    )
    span = max(len(months) - 1, 1)
    share = start_share + np.outer(month / span, end_share - start_share)  # per customer
    if cfg.campaign_month:  # the campaign's extra customers: its channel
        extra = campaign[month] & (rng.uniform(size=n) < 1 - 1 / cfg.campaign_lift)
        share[extra] = np.eye(len(names))[names.index(cfg.campaign_channel)]
    pick = (rng.uniform(size=n)[:, None] > np.cumsum(share, axis=1)).sum(axis=1)
    channel = np.array(names, dtype=object)[np.minimum(pick, len(names) - 1)]
    return acquired.astype("datetime64[ns]"), channel


def _purchases(rng, ids, acquired, end, lam, drop, nu, cfg):
    """BG/NBD purchase times and Gamma-Gamma amounts, vectorised.

    Repeat purchases form a Poisson process of rate lambda on (0, T]; the customer drops out
    right after the K-th repeat purchase, K ~ Geometric(p). Given the count M of process events
    in (0, T], their times are sorted uniforms; the customer makes min(K, M) of them.
    """
    n = len(ids)
    T = (end - acquired) / np.timedelta64(1, "D") / 7.0
    m = rng.poisson(lam * T)
    k = rng.geometric(drop)
    made = np.minimum(k, m)
    owner = np.repeat(np.arange(n), m)
    u = rng.uniform(0, 1, owner.size) * T[owner]
    order = np.lexsort((u, owner))
    owner, u = owner[order], u[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(m) - m, m)
    keep = rank < made[owner]
    owner, u = owner[keep], u[keep]
    died = k <= m
    died_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    last = np.cumsum(made) - 1
    has = made > 0
    died_at[died & has] = acquired[died & has] + (u[last[died & has]] * 7 * 86400e9).astype(
        "timedelta64[ns]"
    )

    buyer = np.concatenate([np.arange(n), owner])
    times = np.concatenate(
        [acquired, acquired[owner] + (u * 7 * 86400e9).astype("timedelta64[ns]")]
    )
    amount = rng.gamma(cfg.p, 1.0 / nu[buyer])
    # Some purchases are two orders on the same day: the contract makes them one occasion.
    split = rng.uniform(size=buyer.size) < cfg.split_order_share
    share = rng.uniform(0.2, 0.8, split.sum())
    first_part = amount.copy()
    first_part[split] = amount[split] * share
    buyer = np.concatenate([buyer, buyer[split]])
    later = times[split] + (rng.uniform(0, 1, split.sum()) * 600e9).astype("timedelta64[ns]")
    day_end = times[split].astype("datetime64[D]") + _DAY
    later = np.minimum(later, day_end.astype("datetime64[ns]") - np.timedelta64(1, "s"))
    times = np.concatenate([times, later])
    amount = np.concatenate([first_part, amount[split] - first_part[split]])

    tx = pd.DataFrame(
        {
            "customer_id": ids[buyer],
            "timestamp": times.astype("datetime64[s]"),
            "amount": amount.round(2),
        }
    )
    tx = tx.sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    tx.insert(0, "order_id", [f"O{i:07d}" for i in range(1, len(tx) + 1)])
    return tx[["order_id", "customer_id", "timestamp", "amount"]], died_at


def _marketing_spend(customers: pd.DataFrame, cfg: SimulationConfig) -> pd.DataFrame:
    month = customers["acquired_at"].dt.to_period("M").dt.to_timestamp()
    counts = customers.groupby([month.rename("date"), "acquisition_channel"]).size()
    grid = pd.MultiIndex.from_product(
        [sorted(month.unique()), list(cfg.channels)], names=["date", "channel"]
    )
    counts = counts.reindex(grid, fill_value=0)
    cac = np.array([cfg.channels[c][1] for c in grid.get_level_values("channel")])
    out = counts.rename("spend").reset_index()
    out["spend"] = (out["spend"] * cac).round(2)
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out


def _events(rng, ids, acquired, died_at, end) -> pd.DataFrame:
    n = len(ids)
    rows_id, rows_t, rows_type = [], [], []

    def emit(mask, when, stage_names):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        rows_id.append(ids[idx])
        rows_t.append(when[idx])
        types = np.empty(idx.size, dtype=object)
        for stage in np.unique(stage_names[idx]):
            here = stage_names[idx] == stage
            choices = _STAGE_EVENTS[stage]
            types[here] = choices[rng.integers(0, choices.size, here.sum())]
        rows_type.append(types)

    # Before acquisition: a funnel that may start late and skip stages.
    funnel = np.array(["awareness", "engagement", "evaluation"], dtype=object)
    first = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    for step in range(3):
        at_step = first <= step
        skip = rng.uniform(size=n) < 0.3
        mask = at_step & ~(skip & (step > first))
        when = acquired - ((3 - step) * 7 + rng.uniform(0, 7, n)) * 86400e9 * np.timedelta64(
            1, "ns"
        )
        emit(mask, when.astype("datetime64[ns]"), np.repeat(funnel[step], n))

    # After acquisition: a monthly chain, alive or dropped-out matrix by the dropout date.
    stages = np.array(CHAIN_STAGES, dtype=object)
    alive_m, dead_m = np.cumsum(ALIVE_MATRIX, axis=1), np.cumsum(DEAD_MATRIX, axis=1)
    state = np.full(n, CHAIN_STAGES.index("post_purchase"))
    month = np.timedelta64(30, "D").astype("timedelta64[ns]")
    onboarded = acquired + np.timedelta64(1, "D")
    emit(onboarded < end, onboarded, np.repeat("post_purchase", n))  # nothing after the end
    t = acquired.copy()
    while True:
        t = t + month
        live = t < end
        if not live.any():
            break
        dead = ~pd.isna(died_at) & (died_at < t)
        cum = np.where(dead[:, None], dead_m[state], alive_m[state])
        nxt = (rng.uniform(size=n)[:, None] > cum).sum(axis=1)
        nxt = np.minimum(nxt, len(CHAIN_STAGES) - 1)
        entered_churn = (nxt == CHAIN_STAGES.index("churned")) & (state != nxt)
        state = nxt
        churned = state == CHAIN_STAGES.index("churned")
        # An explicit churn event on most entries into churned; otherwise one event a month.
        emits = live & np.where(
            churned, entered_churn & (rng.uniform(size=n) < 0.7), rng.uniform(size=n) < 0.8
        )
        when = t + (rng.uniform(0, 29, n) * 86400e9).astype("timedelta64[ns]")
        emit(emits & (when < end), when, stages[state])

    events = pd.DataFrame(
        {
            "customer_id": np.concatenate(rows_id),
            "timestamp": np.concatenate(rows_t).astype("datetime64[s]"),
            "event_type": np.concatenate(rows_type),
        }
    )
    return events.sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)


def _surveys(
    rng, tx: pd.DataFrame, drop: np.ndarray, end: np.datetime64, share: float
) -> pd.DataFrame:
    asked = tx[rng.uniform(size=len(tx)) < share].copy()
    cust = asked["customer_id"].str[1:].astype(int).to_numpy() - 1
    p = drop[cust]
    nps = np.clip(np.round(rng.normal(9.0 - 7.0 * p, 1.5)), 0, 10)
    csat = np.clip(np.round(rng.normal(4.5 - 2.5 * p, 0.7)), 1, 5)
    which = rng.choice(3, size=len(asked), p=[0.5, 0.25, 0.25])  # both, nps only, csat only
    out = pd.DataFrame(
        {
            "customer_id": asked["customer_id"].to_numpy(),
            "timestamp": (
                asked["timestamp"] + pd.to_timedelta(rng.uniform(1, 7, len(asked)), "D")
            ).dt.floor("s"),
            "nps": pd.array(np.where(which != 2, nps, np.nan), dtype="Float64").astype("Int64"),
            "csat": pd.array(np.where(which != 1, csat, np.nan), dtype="Float64").astype("Int64"),
        }
    )
    out = out[out["timestamp"] < end]
    return out.sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)
