"""Shared plotting helper: every plot takes an optional matplotlib ``ax`` and returns it."""

from __future__ import annotations


def axes_or_new(ax=None, size: tuple[float, float] = (7, 4)):
    """``ax``, or the axes of a new figure of ``size`` inches (matplotlib imported lazily)."""
    import matplotlib.pyplot as plt

    return ax if ax is not None else plt.subplots(figsize=size)[1]
