"""Named world configurations: ``default`` (the world the tests and benchmarks were built on) and
``retail`` (shaped like the online retailer of issue #18).

``retail`` mirrors an online retailer's two-year invoice log: a few thousand customers, wholesale
buyers among consumers (the top 1% of customers bring about 30% of revenue, single orders reach tens of
thousands), an autumn peak (September-November monthly revenue 1.6-1.9x the summer months, the same each
year) and cancellations shortly after the order. The period is chosen so that the default cutoff, 90
days before the end and about 21 months in, has the autumn peak in its outcome window. Written out with
:mod:`tiercast.simulation.line_items`, its orders become about 800k invoice lines.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tiercast.simulation.world import WorldConfig

# Monthly multipliers, January first: quiet winter and summer, the peak from September to November and
# a December that ends early (orders for Christmas are placed before it).
_RETAIL_SEASONALITY = (0.8, 0.75, 0.9, 0.85, 0.9, 0.85, 0.8, 0.85, 1.25, 1.4, 1.55, 1.05)

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "retail": {
        "n_customers": 5_000,
        "start": date(2023, 12, 1),
        "end": date(2025, 12, 10),
        "default_horizon_days": 90,
        "established_share": 0.5,
        "seasonality": _RETAIL_SEASONALITY,
        "purchase_rate_mean": 0.02,
        "purchase_rate_shape": 1.5,
        "spend_mean": 300.0,
        "spend_shape": 3.0,
        "spend_heterogeneity": 6.0,
        "item_price": 3.0,
        "wholesale_share": 0.01,
        "wholesale_rate_multiplier": 6.0,
        "wholesale_spend_multiplier": 5.0,
        # Cancellations: few orders, mostly in part, within days (about 2% of invoice lines).
        "refund_share": 0.045,
        "refund_full_share": 0.25,
        "refund_partial_min": 0.05,
        "refund_partial_max": 0.5,
        "refund_delay_days": 3.0,
    },
}


def preset_config(name: str, **overrides: Any) -> WorldConfig:
    """The named preset's ``WorldConfig``, with ``overrides`` (e.g. ``n_customers``, ``seed``) on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown world preset {name!r}; choose one of {sorted(PRESETS)}")
    return WorldConfig(**{**PRESETS[name], **overrides})
