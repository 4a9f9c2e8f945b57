"""Acquisition channels side by side: what each costs, what its customers are worth, how
many of them stay, and where they stand now.

One row per channel, every figure from the package's own definitions: CAC, CLV:CAC and
payback from :mod:`clmmodels.economics`, active customers and CRR from
:mod:`clmmodels.metrics`, the stage mix from :func:`clmmodels.stages.assign_stages`.
"""

from __future__ import annotations

import pandas as pd

from .dataset import Dataset, data_before
from .economics import ALL, cac_payback, clv_to_cac, lifetime_value
from .metrics import acquisitions, active_before, retention
from .plotting import axes_or_new
from .stages import assign_stages
from .stages.plots import STAGE_COLOURS
from .timeunits import as_day
from .vocabulary import ACTIVE_WINDOW_DAYS, STAGES

#: The prefix of the stage-mix columns (``stage_retention``: share in the retention stage).
STAGE_PREFIX = "stage_"


def channel_comparison(
    ds: Dataset,
    as_of: str | pd.Timestamp | None = None,
    *,
    active_window_days: int = ACTIVE_WINDOW_DAYS,
    clv: pd.Series | None = None,
    horizon_months: int = 12,
    margin: float = 1.0,
    period: str = "month",
    churn_after: int | str | None = "auto",
) -> pd.DataFrame:
    """Every acquisition channel's economics, retention and stage mix, one row per channel.

    Parameters
    ----------
    ds
        A dataset with ``transactions``, ``customers`` (their ``acquisition_channel``) and
        ``marketing_spend``.
    as_of
        Every figure uses the data before this day (ISO date); ``None`` means the day after
        the last transaction.
    active_window_days
        A customer is active with a purchase in this many days before a date (as in CRR).
    clv
        Value per customer for CLV:CAC (:func:`clmmodels.economics.clv_to_cac`); ``None``
        is what the CLV report and the summary set against CAC: spend before ``as_of`` plus
        the CLV predicted over ``horizon_months`` from it (:func:`clmmodels.economics.
        lifetime_value` of :func:`clmmodels.clv.score_customers` at the day before).
    horizon_months
        The horizon of that predicted CLV.
    margin
        Fraction of revenue that is profit, for CLV:CAC and payback (1.0: revenue).
    period, churn_after
        The stage model's period and silence before the churned stage
        (:func:`clmmodels.stages.assign_stages`).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``acquisition_channel``, numeric columns:

        - ``customers``: customers acquired through the channel before ``as_of``
          (:func:`clmmodels.metrics.acquisitions`);
        - ``new_customers``, ``spend``, ``cac``, ``mean_clv``, ``clv_to_cac``: over the whole
          months the marketing spend covers (:func:`clmmodels.economics.clv_to_cac`);
        - ``payback_months``: months until the channel's customers paid back their CAC on
          average, missing if not yet (:func:`clmmodels.economics.cac_payback`);
        - ``active_share``: share of ``customers`` active just before ``as_of``
          (:func:`clmmodels.metrics.active_before`);
        - ``crr``, ``churn_rate``: the retention rate and lapsed rate of the channel's
          customers over the last calendar month before ``as_of``
          (:func:`clmmodels.metrics.retention`);
        - ``stage_<stage>``: share of the channel's customers in each stage in the last
          period (:meth:`clmmodels.stages.StageHistory.latest`).

        ``attrs`` holds ``as_of``, ``month`` (of CRR), ``window`` (of CAC), ``basis``
        (historical or predicted CLV) and the blended figures of all channels (``blended``).

    Examples
    --------
    >>> from clmmodels import dataset_from_frames, simulate_company
    >>> company = dataset_from_frames(**simulate_company(n_customers=300, seed=1).tables)
    >>> table = channel_comparison(company)
    >>> int(table["customers"].sum()) == len(company.customers)
    True
    """
    tx = ds.require("transactions", "the channel comparison")
    ds.require("customers", "the channel comparison")
    at = (
        tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
        if as_of is None
        else as_day(as_of, "as_of")
    )
    cut = data_before(ds, at)
    if clv is None:
        from .clv.score import score_customers

        last_day = at - pd.Timedelta(days=1)
        scores = score_customers(cut.transactions, last_day, horizon_months=horizon_months)
        clv = lifetime_value(cut.transactions, scores.scores["clv"], last_day)
    economics = clv_to_cac(cut, clv=clv, margin=margin)
    payback = cac_payback(cut, margin=margin)
    acquired = acquisitions(cut)["acquisition_channel"].astype(object).fillna("unknown")
    channels = sorted(set(acquired) | (set(economics.index) - {ALL}))
    month = (at - pd.Timedelta(days=1)).to_period("M")
    month_start = max(month.start_time, cut.transactions["timestamp"].min().normalize())
    active = active_before(cut.transactions, at, active_window_days)
    known = set(cut.customers["acquisition_channel"].dropna())
    rows = {}
    for channel in channels:
        mine = acquired.index[acquired == channel]
        row = {"customers": len(mine)}
        row.update(
            economics.loc[channel, ["new_customers", "spend", "cac", "mean_clv", "clv_to_cac"]]
            if channel in economics.index
            else {}
        )
        row["payback_months"] = (
            payback.loc[channel, "payback_months"] if channel in payback.index else float("nan")
        )
        row["active_share"] = mine.isin(active).mean() if len(mine) else float("nan")
        sub = cut.for_channel(channel) if channel in known else None
        if sub is not None and len(sub.transactions):
            kpi = retention(sub, month_start, at, active_window_days)
            row["crr"], row["churn_rate"] = kpi["crr"], kpi["churn_rate"]
            history = assign_stages(
                sub.transactions, sub.events, period=period, churn_after=churn_after,
                end=at, event_stages=sub.event_stages,
            )  # fmt: skip
            latest = history.latest()
            shares = latest / latest.sum() if latest.sum() else latest * float("nan")
            row.update({f"{STAGE_PREFIX}{s}": shares.get(s, 0.0) for s in STAGES})
        rows[channel] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    columns = [
        "customers", "new_customers", "spend", "cac", "mean_clv", "clv_to_cac",
        "payback_months", "active_share", "crr", "churn_rate",
        *(f"{STAGE_PREFIX}{s}" for s in STAGES),
    ]  # fmt: skip
    table = table.reindex(columns=columns).apply(pd.to_numeric, errors="coerce")
    for c in ("customers", "new_customers"):
        table[c] = table[c].fillna(0).astype("int64")
    table.index.name = "acquisition_channel"
    table.attrs.update(
        as_of=str(at.date()),
        month=str(month),
        window=economics.attrs.get("window"),
        basis=str(economics["basis"].iloc[0]),
        blended={
            "cac": economics.loc[ALL, "cac"],
            "clv_to_cac": economics.loc[ALL, "clv_to_cac"],
            "payback_months": payback["payback_months"].get(ALL, float("nan")),
        },
    )
    return table


def stage_mix(table: pd.DataFrame) -> pd.DataFrame:
    """The ``stage_<stage>`` columns of :func:`channel_comparison` as a channel-by-stage
    table of shares (stages named as in the stage model)."""
    cols = [c for c in table.columns if c.startswith(STAGE_PREFIX)]
    return table[cols].rename(columns=lambda c: c[len(STAGE_PREFIX) :])


def plot_stage_mix(table: pd.DataFrame, ax=None, title: str = "Stage mix now, by channel"):
    """The stage mix of :func:`channel_comparison` as stacked horizontal bars (shares)."""
    mix = stage_mix(table).fillna(0.0)
    mix = mix[[s for s in mix.columns if (mix[s] > 0).any()]]
    ax = axes_or_new(ax, (9, 0.5 * len(mix) + 1.6))
    left = pd.Series(0.0, index=mix.index)
    labels = [str(c).replace("_", " ") for c in mix.index]
    for stage in mix.columns:
        ax.barh(labels, mix[stage].to_numpy(), left=left.to_numpy(),
                color=STAGE_COLOURS.get(stage, "grey"), label=stage.replace("_", "-"))  # fmt: skip
        left += mix[stage]
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return ax
