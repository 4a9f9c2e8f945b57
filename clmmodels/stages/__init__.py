"""Lifecycle stages: assignment per period, transition matrices, tests and chain analysis."""

from .assign import DEFAULT_CHURN_AFTER, PERIODS, StageHistory, assign_stages
from .chain import MarkovChain
from .estimate import TransitionModel
from .homogeneity import markov_tests
from .latent import LatentTransitionModel
from .methods import DEFAULT_METHOD, METHODS, StageMatrices, fit_transitions
from .value import stage_rewards

__all__ = [
    "DEFAULT_CHURN_AFTER",
    "DEFAULT_METHOD",
    "METHODS",
    "PERIODS",
    "LatentTransitionModel",
    "MarkovChain",
    "StageHistory",
    "StageMatrices",
    "TransitionModel",
    "assign_stages",
    "fit_transitions",
    "markov_tests",
    "stage_rewards",
]
