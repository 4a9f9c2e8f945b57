"""Lifecycle stages and the default event vocabulary of the data contract."""

from __future__ import annotations

from collections.abc import Mapping

from .errors import ClmError

#: The names users choose from, kept here (no heavy import) for the command line and configs:
#: the purchase models (``clmmodels.clv.MODELS``), the churn classifiers and the churn risk
#: bands' lower edges (medium from the first, high from the second).
PURCHASE_MODELS: tuple[str, ...] = ("bgnbd", "pnbd", "mbgnbd")
CHURN_CLASSIFIERS: tuple[str, ...] = ("hgb", "logistic")
RISK_BANDS: tuple[float, float] = (0.4, 0.7)

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
