"""Lifecycle metrics, exactly as the data contract defines them.

``counts`` counts in transactions and customers (one SQL text for DuckDB and Spark); ``kpis``
turns the counts into the contract's KPIs; ``surveys`` scores NPS and CSAT; ``cohorts`` builds
cohort retention tables; ``plots`` draws them.
"""

from .cohorts import cohort_retention
from .counts import (
    WindowCounts,
    acquired_in,
    acquisitions_of,
    active_at,
    calendar_months,
    historical_clv,
    window_bounds,
    window_counts,
)
from .kpis import (
    acquisitions,
    active_before,
    active_customers,
    cac,
    engagement,
    kpi_series,
    kpis,
    new_customers,
    retention,
)
from .plots import plot_cohort_curves, plot_cohort_heatmap, plot_kpi_trends
from .surveys import csat, nps

__all__ = [
    "WindowCounts",
    "acquired_in",
    "acquisitions",
    "acquisitions_of",
    "active_at",
    "active_before",
    "active_customers",
    "cac",
    "calendar_months",
    "cohort_retention",
    "csat",
    "engagement",
    "historical_clv",
    "kpi_series",
    "kpis",
    "new_customers",
    "nps",
    "plot_cohort_curves",
    "plot_cohort_heatmap",
    "plot_kpi_trends",
    "retention",
    "window_bounds",
    "window_counts",
]
