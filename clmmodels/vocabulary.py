"""Lifecycle stages and the default event vocabulary of the data contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .errors import ClmError
from .keyvalue import read_pairs

#: The names users choose from, kept here (no heavy import) for the command line and configs:
#: the purchase models (``clmmodels.clv.MODELS``), the churn classifiers and the churn risk
#: bands' lower edges (medium from the first, high from the second).
PURCHASE_MODELS: tuple[str, ...] = ("bgnbd", "pnbd", "mbgnbd")
CHURN_CLASSIFIERS: tuple[str, ...] = ("hgb", "logistic")
#: The stage-transition estimators (``clmmodels.stages.fit_transitions``), the default first.
STAGE_METHODS: tuple[str, ...] = ("latent", "observed")
RISK_BANDS: tuple[float, float] = (0.4, 0.7)
#: The default ``alpha`` of every interval: 95% intervals.
ALPHA = 0.05
#: A customer is active at a date with a purchase in this many days before it; not active is
#: lapsed (:func:`clmmodels.glossary.lapsed`). Every default of ``active_window_days``.
ACTIVE_WINDOW_DAYS = 365

#: The stages in their canonical order.
STAGES: tuple[str, ...] = (
    "awareness",
    "engagement",
    "evaluation",
    "purchase",
    "post_purchase",
    "retention",
    "advocacy",
    "churned",
)

_DEFAULT_EVENTS: dict[str, tuple[str, ...]] = {
    "awareness": ("ad_impression", "ad_click", "social_mention", "first_visit"),
    "engagement": (
        "site_visit",
        "email_open",
        "email_click",
        "content_view",
        "newsletter_signup",
        "app_open",
    ),
    "evaluation": ("product_view", "pricing_view", "demo_request", "trial_start", "cart_add"),
    "purchase": ("purchase",),
    "post_purchase": ("onboarding", "support_ticket", "product_usage", "return_request"),
    "retention": ("repeat_purchase", "renewal", "loyalty_join"),
    "advocacy": ("review_posted", "referral_sent", "social_share"),
    "churned": ("cancel", "unsubscribe_all", "account_closed"),
}

#: Default mapping of event type to stage.
DEFAULT_EVENT_STAGES: Mapping[str, str] = {
    event: stage for stage, events in _DEFAULT_EVENTS.items() for event in events
}


def check_event_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """Return ``mapping`` as a dict after checking that every value is a known stage."""
    bad = sorted({s for s in mapping.values() if s not in STAGES})
    if bad:
        raise ClmError(f"event mapping names unknown stages {bad}; stages are {', '.join(STAGES)}")
    return dict(mapping)


#: A dataset folder may carry its own mapping under one of these names (CSV columns
#: ``event_type,stage``, or YAML ``{event_type: stage}``): it travels with the data.
MAPPING_FILES: tuple[str, ...] = ("event_mapping.csv", "event_mapping.yml", "event_mapping.yaml")


def load_event_mapping(path: str | Path) -> dict[str, str]:
    """The company's own event vocabulary from a file: a CSV with columns ``event_type`` and
    ``stage``, or YAML mapping each event type to a stage. Every stage must be canonical
    (:data:`STAGES`) and an event type may map to one stage only; errors name the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = pathlib.Path(tmp, "m.csv")
    ...     _ = p.write_text("event_type,stage\\nlogin,engagement\\nquote,evaluation\\n")
    ...     load_event_mapping(p)
    {'login': 'engagement', 'quote': 'evaluation'}
    """
    path = Path(path)
    pairs = read_pairs(path, "event_type", "stage", "the event mapping")
    mapping: dict[str, str] = {}
    for event, stage in pairs:
        if mapping.get(event, stage) != stage:
            raise ClmError(
                f"{path}: event type {event!r} maps to both {mapping[event]!r} and {stage!r}"
            )
        mapping[event] = stage
    try:
        return check_event_mapping(mapping)
    except ClmError as err:
        raise ClmError(f"{path}: {err}") from None


def folder_event_mapping(folder: str | Path) -> dict[str, str] | None:
    """The mapping a dataset folder carries (:data:`MAPPING_FILES`), or None."""
    found = [Path(folder) / name for name in MAPPING_FILES if (Path(folder) / name).exists()]
    if len(found) > 1:
        raise ClmError(f"{folder}: keep one event mapping file, not {[p.name for p in found]}")
    return load_event_mapping(found[0]) if found else None
