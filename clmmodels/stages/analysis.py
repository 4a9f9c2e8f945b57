"""The chain analysis of a fitted transition matrix, as one JSON-ready document: expected
periods until churn, the probability of reaching advocacy before churn, the stationary law,
Markov-chain CLV from per-stage rewards, and the Anderson–Goodman tests.

Each result the chain cannot give (no finite time to churn when some stage never reaches it,
no unique stationary law with several closed classes) is ``None`` with the reason in
``notes``, never a made-up number.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ClmError
from ..keyvalue import read_pairs
from ..vocabulary import STAGES
from .assign import StageHistory
from .estimate import TransitionModel
from .homogeneity import markov_tests


def load_rewards(path: str | Path) -> pd.Series:
    """Per-stage rewards (value of one period in a stage) from a CSV with columns
    ``stage,reward`` or YAML ``{stage: reward}``; stage names must be canonical."""
    path = Path(path)
    pairs = read_pairs(path, "stage", "reward", "the rewards file")
    values = {}
    for stage, reward in pairs:
        if stage not in STAGES:
            raise ClmError(
                f"{path}: unknown stage {stage!r} (stages are {', '.join(STAGES)}); a misspelt "
                "stage would be worth 0"
            )
        try:
            values[stage] = float(reward)
        except (TypeError, ValueError):
            raise ClmError(f"{path}: the reward of {stage} is not a number: {reward!r}") from None
    return pd.Series(values, name="reward")


def chain_analysis(
    model: TransitionModel,
    history: StageHistory,
    rewards: pd.Series | None = None,
    discount_rate: float = 0.01,
    segments: pd.Series | None = None,
) -> dict:
    """The chain analysis of ``model`` (fitted on ``history``) as a JSON-ready dict.

    Parameters
    ----------
    model
        A fitted :class:`TransitionModel`.
    history
        The stage history it was fitted on (for the tests).
    rewards
        Value of one period in each stage, for Markov-chain CLV (:func:`load_rewards`).
    discount_rate
        Per period, for Markov-chain CLV.
    segments
        customer_id -> label, to test homogeneity across segments too.

    Returns
    -------
    dict
        ``stages``, ``expected_periods_to_churn``, ``p_advocacy_before_churn``,
        ``closed_classes``, ``stationary``, ``markov_clv`` (with ``rewards``), ``tests`` and
        ``notes``.
    """
    chain = model.chain()
    notes: list[str] = []

    def attempt(what: str, compute):
        try:
            return compute()
        except ClmError as err:
            notes.append(f"{what}: {err}")
            return None

    def as_dict(series: pd.Series | None) -> dict | None:
        return None if series is None else {k: float(v) for k, v in series.items()}

    to_churn = attempt("expected_periods_to_churn", lambda: chain.time_to_absorption("churned"))
    advocacy = None
    if {"advocacy", "churned"} <= set(chain.stages):
        advocacy = attempt(
            "p_advocacy_before_churn",
            lambda: chain.absorption_probabilities(("advocacy", "churned"))["advocacy"],
        )
    else:
        notes.append("p_advocacy_before_churn: the data show no advocacy or no churn")
    stationary = chain.stationary()
    if stationary is None:
        notes.append("stationary: no unique stationary law (more than one closed class)")
    value = None
    if rewards is not None:
        value = attempt("markov_clv", lambda: chain.clv(rewards, discount_rate))
    windows = 2 if len(history.periods) > 2 else None  # two halves need two transitions each
    if windows is None:
        notes.append("tests: too few periods to compare time windows")
    tests = attempt("tests", lambda: markov_tests(history, segments=segments, windows=windows))
    return {
        "period": history.period,
        "stages": list(chain.stages),
        "expected_periods_to_churn": as_dict(to_churn),
        "p_advocacy_before_churn": as_dict(advocacy),
        "closed_classes": chain.closed_classes(),
        "stationary": as_dict(stationary),
        "markov_clv": as_dict(value),
        "discount_rate": discount_rate if rewards is not None else None,
        "tests": None
        if tests is None
        else tests.astype(object).where(tests.notna(), None).to_dict(orient="records"),
        "notes": notes,
    }
