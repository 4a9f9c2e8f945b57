"""Pseudonymous customer ids for output that leaves the analytics team."""

from __future__ import annotations

import hashlib

import pandas as pd


def pseudonymise(ids: pd.Series | pd.Index, salt: str = "clm") -> pd.Series:
    """Stable pseudonyms (``c-`` and 10 hex digits of a salted SHA-256) for customer ids.

    The same id and salt always give the same pseudonym, so reports can be compared month to
    month; without the salt the ids cannot be recovered by hashing guesses.

    Examples
    --------
    >>> pseudonymise(pd.Series(["00042"]), salt="s").tolist()
    ['c-43239132b9']
    """
    values = pd.Series(ids, dtype=str)
    out = values.map(lambda v: "c-" + hashlib.sha256(f"{salt}:{v}".encode()).hexdigest()[:10])
    return out.set_axis(values.index)
