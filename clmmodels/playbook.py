"""The playbook: ordered rules that turn a customer's profile into an action.

A rule names the values it matches (``stage``, ``risk_band``, ``value_tier``: lists) and the
ranges (``days_since_last_purchase``, ``days_since_last_event``, ``churn_probability``,
``clv``, ``p_alive``: ``{min: x, max: y}``, both inclusive, either optional) and the action.
The first rule that matches a customer gives their action; a rule without conditions matches
everyone, and a customer no rule matches gets ``"none"``. In YAML::

    rules:
      - when: {stage: [churned], days_since_last_purchase: {min: 365}}
        action: none
      - when: {risk_band: [high], value_tier: [high]}
        action: win-back offer
      - action: none
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ClmError
from .vocabulary import STAGES

#: The fields a rule may test, and the values each list field may hold.
LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "stage": STAGES,
    "risk_band": ("low", "medium", "high"),
    "value_tier": ("high", "medium", "low", "none"),
}
RANGE_FIELDS: tuple[str, ...] = (
    "days_since_last_purchase",
    "days_since_last_event",
    "churn_probability",
    "clv",
    "p_alive",
)
NO_ACTION = "none"


@dataclass(frozen=True)
class Rule:
    """Match ``when`` (field -> allowed values, or field -> (min, max)), then ``action``."""

    action: str
    when: tuple[tuple[str, object], ...] = ()

    def matches(self, profile: pd.DataFrame) -> np.ndarray:
        hit = np.ones(len(profile), dtype=bool)
        for field, test in self.when:
            values = profile[field] if field in profile else pd.Series(np.nan, profile.index)
            if field in LIST_FIELDS:
                hit &= values.isin(test).to_numpy()
            else:
                lo, hi = test
                x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
                ok = ~np.isnan(x)
                if lo is not None:
                    ok &= x >= lo
                if hi is not None:
                    ok &= x <= hi
                hit &= ok
        return hit


@dataclass(frozen=True)
class Playbook:
    """Ordered :class:`Rule` s; :meth:`actions` gives every customer one action."""

    rules: tuple[Rule, ...]
    source: str = "the default playbook"

    def actions(self, profile: pd.DataFrame) -> pd.Series:
        """The first matching rule's action per row of ``profile`` (``"none"`` if none)."""
        out = pd.Series(NO_ACTION, index=profile.index, dtype=object)
        open_ = np.ones(len(profile), dtype=bool)
        for rule in self.rules:
            hit = open_ & rule.matches(profile)
            out[hit] = rule.action
            open_ &= ~hit
        return out


def parse_playbook(doc: object, source: str = "playbook") -> Playbook:
    """A :class:`Playbook` from its YAML content, with errors naming the rule and the field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise ClmError(f"{source}: a mapping with a non-empty `rules` list")
    rules = []
    for i, raw in enumerate(doc["rules"], start=1):
        where = f"{source}: rule {i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
            raise ClmError(f"{where}: a mapping with an `action` text")
        unknown = set(raw) - {"when", "action"}
        if unknown:
            raise ClmError(f"{where}: unknown keys {sorted(unknown)}; a rule has when, action")
        when = raw.get("when") or {}
        if not isinstance(when, dict):
            raise ClmError(f"{where}: `when` must map fields to conditions")
        rules.append(Rule(raw["action"].strip() or NO_ACTION, tuple(_conditions(when, where))))
    return Playbook(tuple(rules), source)


def _conditions(when: dict, where: str):
    for field, test in when.items():
        if field in LIST_FIELDS:
            values = [test] if isinstance(test, str) else test
            if not isinstance(values, list) or not values:
                raise ClmError(f"{where}: {field} must be a value or a list of values")
            bad = [v for v in values if v not in LIST_FIELDS[field]]
            if bad:
                known = ", ".join(LIST_FIELDS[field])
                raise ClmError(f"{where}: unknown {field} {bad}; known: {known}")
            yield field, tuple(values)
        elif field in RANGE_FIELDS:
            if not isinstance(test, dict) or not test or set(test) - {"min", "max"}:
                raise ClmError(f"{where}: {field} takes {{min: x, max: y}} (either optional)")
            bounds = [test.get("min"), test.get("max")]
            for b in bounds:
                if b is not None and (isinstance(b, bool) or not isinstance(b, int | float)):
                    raise ClmError(f"{where}: {field}: the threshold {b!r} is not a number")
            lo, hi = bounds
            if lo is not None and hi is not None and lo > hi:
                raise ClmError(f"{where}: {field}: min {lo} is above max {hi}")
            yield field, (lo, hi)
        else:
            known = ", ".join([*LIST_FIELDS, *RANGE_FIELDS])
            raise ClmError(f"{where}: unknown field {field!r}; fields are {known}")


def load_playbook(path: str | Path) -> Playbook:
    """Read and check a playbook YAML file (see the module doc)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ClmError(f"{path}: cannot read the playbook ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ClmError(f"{path}: not valid YAML ({err})") from None
    return parse_playbook(doc, str(path))


#: The default playbook, first match wins: leave long-lapsed customers alone, win back
#: valuable ones slipping away, help evaluators buy, welcome new buyers, ask advocates to
#: refer, reward loyal high-value customers, nurture prospects.
DEFAULT_PLAYBOOK = parse_playbook(
    {
        "rules": [
            {"when": {"stage": ["churned"], "days_since_last_purchase": {"min": 365}},
             "action": NO_ACTION},
            {"when": {"stage": ["churned"], "value_tier": ["high", "medium"]},
             "action": "win-back offer"},
            {"when": {"stage": ["churned"]}, "action": "reactivation email"},
            {"when": {"risk_band": ["high"], "value_tier": ["high", "medium"]},
             "action": "win-back offer"},
            {"when": {"stage": ["evaluation"]}, "action": "sales assist"},
            {"when": {"stage": ["purchase", "post_purchase"]}, "action": "onboarding"},
            {"when": {"stage": ["advocacy"]}, "action": "referral ask"},
            {"when": {"stage": ["retention"], "value_tier": ["high"]}, "action": "loyalty reward"},
            {"when": {"stage": ["awareness", "engagement"]}, "action": "nurture"},
            {"action": NO_ACTION},
        ]
    },
    "the default playbook",
)  # fmt: skip
