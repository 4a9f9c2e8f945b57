"""One glossary: every figure that measures customers leaving, defined once.

The reports measure leaving in six different ways, each answering another question over
another period. Each has one name, used in every report, table header and chart legend that
shows it, and one definition, written here from the code that computes it:

- :func:`lapsed`: the summary's and the retention report's monthly churn rate (1 - CRR,
  :func:`clmmodels.metrics.retention`), a flow over one month;
- :func:`lifetime_ended`: the end of a customer's lifetime in the retention report's survival
  curves (:func:`clmmodels.survival.customer_lifetimes`);
- :func:`p_alive`: BG/NBD's probability that a customer has not dropped out for good (the CLV
  and customers reports), a state at one date;
- :func:`predicted_churn` (and BG/NBD's :func:`p_no_purchase` it is compared with): the churn
  classifier's probability of no purchase over the coming days (:mod:`clmmodels.churn`);
- :func:`churned_stage`: the lifecycle stage model's ``churned`` stage
  (:func:`clmmodels.stages.assign_stages`), a state at the end of each period, and
  :func:`latent_churned_stage`, the latent stage model's probability of it.

Terms take the report's parameters (the active window, the horizon, ...), so a report run
with other parameters states its own periods. :func:`glossary` lists them all with their
defaults, for the glossary page of the report batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocabulary import ACTIVE_WINDOW_DAYS

#: The churn events of the contract's vocabulary (an event of these types makes the period
#: ``churned``), as the glossary spells them.
_CHURN_EVENTS = "cancel, unsubscribe_all or account_closed"


@dataclass(frozen=True)
class Term:
    """One figure: its name wherever it is shown, what it means, over which period, where."""

    key: str
    name: str
    definition: str
    period: str
    reports: str


def lapsed(active_window_days: int = ACTIVE_WINDOW_DAYS) -> Term:
    """The monthly churn rate of the summary and the retention report (1 - CRR)."""
    d = f"{active_window_days:,}"
    return Term(
        key="lapsed",
        name=f"lapsed (no purchase in {d} days)",
        definition=(
            f"The month's churn rate: the share of the customers active at the start of the "
            f"month (a purchase in the previous {d} days) who are no longer active at its end. "
            "It is 1 − CRR, with CRR = (active at the end − new customers) / active at the "
            "start, so customers who come back after a longer gap offset some who leave."
        ),
        period=f"one calendar month; active means a purchase in the previous {d} days",
        reports="summary, retention",
    )


def lifetime_ended(gap_days: int = 180) -> Term:
    """The event of the retention report's survival curves."""
    d = f"{gap_days:,}"
    return Term(
        key="lifetime_ended",
        name=f"lifetime ended (a {d}-day gap without purchase)",
        definition=(
            f"A customer's lifetime runs from the first purchase to the first time they go "
            f"{d} days without a purchase, dated {d} days after the last purchase before that "
            "gap. Customers with no such gap by the end of the data are still in their "
            "lifetime (censored). The survival curves show the share whose lifetime has not "
            "ended, by days since the first purchase."
        ),
        period=f"from the first purchase to the first {d}-day gap",
        reports="retention",
    )


def p_alive() -> Term:
    """BG/NBD's probability of being alive, in the CLV and customers reports."""
    return Term(
        key="p_alive",
        name="P(alive)",
        definition=(
            "The BG/NBD model's probability that a customer has not dropped out for good, "
            "given how often and how recently they bought. Dropping out is never seen in the "
            "data; the model infers it. Below 50% a customer is more likely gone than not."
        ),
        period="at one date (the observation end); no horizon",
        reports="CLV, customers",
    )


def predicted_churn(horizon_days: int = 90) -> Term:
    """The churn classifier's probability, in the churn and customers reports."""
    d = f"{horizon_days:,}"
    return Term(
        key="predicted_churn",
        name=f"predicted churn (no purchase in the next {d} days)",
        definition=(
            f"The churn classifier's probability that a customer who has bought before a date "
            f"makes no purchase in the {d} days from it. The backtest checks it against what "
            f"happened: the share of customers with no purchase in the {d} days after an "
            "earlier date. Value at risk is a customer's CLV times this probability."
        ),
        period=f"the next {d} days",
        reports="churn, customers",
    )


def p_no_purchase(horizon_days: int = 90) -> Term:
    """BG/NBD's probability of no purchase, the churn report's benchmark."""
    d = f"{horizon_days:,}"
    return Term(
        key="p_no_purchase",
        name=f"BG/NBD P(no purchase in the next {d} days)",
        definition=(
            f"The BG/NBD model's probability that a customer makes no purchase in the next "
            f"{d} days, whether they have dropped out or are only between purchases. The churn "
            "report compares the classifier with it."
        ),
        period=f"the next {d} days",
        reports="churn",
    )


def churned_stage(churn_after: int | None = 6, period: str = "month") -> Term:
    """The stage model's ``churned`` stage."""
    if churn_after is None:
        silence, name = "", "in the churned stage (a churn event; never by silence)"
    else:
        silence = f"{churn_after} {period}{'s' if churn_after != 1 else ''}"
        name = f"in the churned stage ({silence} without a signal, or a churn event)"
    return Term(
        key="churned_stage",
        name=name,
        definition=(
            (
                f"A customer is in the churned stage after {silence} in a row with no "
                "purchase and no event, "
                if churn_after is not None
                else "A customer is in the churned stage "
            )
            + f"or from the {period} of a churn event ({_CHURN_EVENTS}); any later purchase or "
            f"event takes them out of it. It is where customers stand at the end of each "
            f"{period}: the share counts everyone gone by then, not only those who left in "
            f"the {period}."
        ),
        period=f"the stage at the end of each {period}",
        reports="stages, summary, customers",
    )


def latent_churned_stage(period: str = "month") -> Term:
    """The latent stage model's ``churned`` stage: a probability, not a rule."""
    return Term(
        key="latent_churned_stage",
        name="P(in the churned stage) (latent stage model)",
        definition=(
            f"The latent stage model's probability that a customer is in the churned stage at "
            f"the end of the {period}, from all their signals. A {period} without a signal is "
            f"missing evidence, weighed by how often customers in each stage stay silent; a "
            f"churn may be announced ({_CHURN_EVENTS}) or not. Summed over customers it gives "
            f"the expected number in the churned stage."
        ),
        period=f"the stage at the end of each {period}",
        reports="stages",
    )


def glossary() -> list[Term]:
    """Every term, with the default parameters of the reports."""
    return [
        lapsed(),
        lifetime_ended(),
        p_alive(),
        predicted_churn(),
        p_no_purchase(),
        churned_stage(),
        latent_churned_stage(),
    ]
