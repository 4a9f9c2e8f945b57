"""The per-customer aggregation behind RFM summaries and the streaming scorer: one SQL text
for DuckDB and Spark, the contract's definitions of :mod:`clmmodels.rfm`.

Without pandas: ``clm score`` starts this aggregation in its engine before pandas is imported
(it imports pandas while the engine works).
"""

from __future__ import annotations

import datetime as dt

# One text for DuckDB and Spark SQL: STRING, min_by and DATE literals mean the same in both.
# A single pass over the purchase days: one row per customer with any transaction, whether in
# the calibration period, the holdout or after the observation end (to count what is left out).
# A customer's first day overall is their first calibration day when they have one. Amounts
# are summed as decimals (exact to 1e-9, integers inside), so the sums do not depend on the
# order a parallel engine adds them in: the same file gives the same numbers, bit for bit.
CUSTOMERS_SQL = """
SELECT customer_id,
       min(CASE WHEN day <= DATE '{cal_end}' THEN day END) AS first_day,
       max(CASE WHEN day <= DATE '{cal_end}' THEN day END) AS last_day,
       count(CASE WHEN day <= DATE '{cal_end}' THEN 1 END) AS n_days,
       CAST(sum(CASE WHEN day <= DATE '{cal_end}' THEN amount END) AS DOUBLE) AS total,
       CAST(min_by(amount, day) AS DOUBLE) AS first_total,
       count(CASE WHEN day > DATE '{cal_end}' AND day <= DATE '{obs_end}' THEN 1 END)
           AS n_holdout,
       CAST(coalesce(sum(CASE WHEN day > DATE '{cal_end}' AND day <= DATE '{obs_end}'
                              THEN amount END), 0) AS DOUBLE) AS total_holdout,
       CAST(coalesce(sum(CASE WHEN day > DATE '{obs_end}' THEN n_tx END), 0) AS BIGINT)
           AS n_after
FROM (
    SELECT CAST(customer_id AS STRING) AS customer_id, {day} AS day,
           sum(CAST(amount AS DECIMAL(38, 9))) AS amount, count(*) AS n_tx
    FROM {source}
    GROUP BY CAST(customer_id AS STRING), {day}
) AS daily
GROUP BY customer_id
"""


def customers_sql(source: str, day: str, cal_end: dt.date, obs_end: dt.date) -> str:
    """The per-customer aggregation of :data:`CUSTOMERS_SQL` over the view ``source``, with
    the calibration and observation ends (dates, or midnight timestamps such as pandas')."""
    return CUSTOMERS_SQL.format(
        source=source, day=day, cal_end=_day(cal_end), obs_end=_day(obs_end)
    )


def _day(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value
