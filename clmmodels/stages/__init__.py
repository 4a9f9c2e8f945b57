"""Lifecycle stages: assignment per period, transition matrices, tests and chain analysis."""

from .assign import DEFAULT_CHURN_AFTER, PERIODS, StageHistory, assign_stages
from .chain import MarkovChain
from .estimate import TransitionModel
from .homogeneity import markov_tests
from .value import stage_rewards

__all__ = [
    "DEFAULT_CHURN_AFTER",
    "PERIODS",
    "MarkovChain",
    "StageHistory",
    "TransitionModel",
    "assign_stages",
    "markov_tests",
    "stage_rewards",
]
