"""The one list of feature definitions.

`feature_definitions` expands the spec (windows) and the builder's fitted state (channels seen, profile
attributes, optional columns present) into the ordered list of output columns. The builder emits exactly
these columns in this order, `FeatureBuilder.feature_names_` is the model-input subset, and
`python -m tiercast.features.docs` renders the table in docs/features.md from the same list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tiercast.features.spec import FeatureSpec

Kind = Literal["numeric", "categorical", "score", "stage"]

#: optional transaction columns that add features when present at fit time
OPTIONAL_FEATURE_COLUMNS: tuple[str, ...] = ("product_id", "quantity", "category", "channel")


def slug(value: object) -> str:
    """Column-name-safe lower-case form of a channel value or attribute name ('Web Shop' -> 'web_shop')."""
    s = re.sub(r"[^0-9a-z]+", "_", str(value).strip().lower()).strip("_")
    return s or "blank"


@dataclass(frozen=True)
class FeatureDef:
    """One output column of the feature builder.

    kind: numeric (float64), categorical (pandas category, levels frozen at fit), score (int 1-5) or
    stage (lifecycle text). `model_input` is False for derived summaries (RFM scores, lifecycle stage)
    that restate other columns and exist for segments, tiers and the rule fallback.
    """

    name: str
    family: str
    definition: str
    window_days: int | None = None
    kind: Kind = "numeric"
    requires: str | None = None
    model_input: bool = True


def _windowed(spec: FeatureSpec) -> list[FeatureDef]:
    defs: list[FeatureDef] = []
    for w in spec.windows_days:
        defs += [
            FeatureDef(f"orders_{w}d", "window", f"Purchase orders whose first line is in the last {w} days.", w),
            FeatureDef(f"spend_{w}d", "window", f"Net amount (refunds included) of lines in the last {w} days.", w),
            FeatureDef(
                f"trend_orders_{w}d", "window",
                f"(orders in last {w} d - orders in the {w} d before) / (sum of both); 0 when both are 0; "
                "in [-1, 1].", w,
            ),
            FeatureDef(
                f"trend_spend_{w}d", "window",
                f"(spend in last {w} d - spend in the {w} d before) / (|both| summed); 0 when both are 0; "
                "in [-1, 1].", w,
            ),
        ]
    return defs


def _interaction(spec: FeatureSpec) -> list[FeatureDef]:
    k = spec.interaction_kinds
    defs = [
        FeatureDef("survey_score_last", "interactions",
                   f"Score of the latest `{k.survey}` interaction with a score; NaN if none."),
        FeatureDef("survey_score_mean", "interactions",
                   f"Mean score of `{k.survey}` interactions with a score; NaN if none."),
    ]
    for w in spec.interaction_windows_days:
        defs += [
            FeatureDef(f"support_tickets_{w}d", "interactions",
                       f"Number of `{k.support_ticket}` interactions in the last {w} days; 0 if none.", w),
            FeatureDef(f"complaints_{w}d", "interactions",
                       f"Number of `{k.complaint}` interactions in the last {w} days; 0 if none.", w),
        ]
    defs.append(FeatureDef("days_since_interaction", "interactions",
                           "Days since the latest interaction of any kind; NaN if none."))
    return defs


def feature_definitions(
    spec: FeatureSpec,
    *,
    optional_columns: Sequence[str] = OPTIONAL_FEATURE_COLUMNS,
    channels: Sequence[str] = (),
    profile: Mapping[str, Sequence[str] | None] | None = None,
) -> list[FeatureDef]:
    """All output columns, in order, for `spec` and a fitted state.

    optional_columns: which of product_id/quantity/category/channel feed features (those present at fit).
    channels: channel column-name suffixes (one share feature each).
    profile: customer attribute name -> categorical levels, or None for a numeric attribute (the column
    is `profile_` + slug(name)).
    """
    present = set(optional_columns)
    defs = [
        FeatureDef("recency_days", "rfm",
                   "Days from the last purchase line (amount > 0) to as_of; customers with no purchase yet: "
                   "days since their first transaction."),
        FeatureDef("frequency", "rfm", "Purchase orders: orders whose net amount is > 0."),
        FeatureDef("purchase_days", "rfm", "Distinct UTC calendar days with a purchase line."),
        FeatureDef("monetary_total", "rfm", "Net amount of all lines, refunds included."),
        FeatureDef("monetary_mean", "rfm", "monetary_total / frequency; NaN when frequency is 0."),
        FeatureDef("monetary_max", "rfm", "Largest net order value."),
        FeatureDef("largest_order_share", "rfm",
                   "Net value of the largest purchase order / net value of all purchase orders: how much of "
                   "the spend one order brings (1 for a single order); NaN with no purchase order."),
        *_windowed(spec),
        FeatureDef("tenure_days", "rhythm", "Days from the first transaction to as_of."),
        FeatureDef("gap_mean_days", "rhythm",
                   "Mean days between consecutive purchase days; NaN with fewer than 2 purchase days."),
        FeatureDef("gap_std_days", "rhythm",
                   "Sample std of days between consecutive purchase days; NaN with fewer than 3 purchase days."),
        FeatureDef("recency_over_gap", "rhythm", "recency_days / gap_mean_days; NaN when the gap is NaN or 0."),
        FeatureDef("orders_per_purchase_day", "rhythm",
                   "frequency / purchase_days: purchase orders per purchase day (several baskets a day); NaN "
                   "with no purchase day."),
        FeatureDef("refund_count", "refunds", "Lines with amount < 0 (returns and cancellations)."),
        FeatureDef("refund_share", "refunds",
                   "Refunded amount / gross purchase amount (lines > 0); NaN when there is no purchase."),
        FeatureDef("return_line_share", "refunds", "refund_count / all lines."),
        FeatureDef("cancelled_orders", "refunds",
                   "Orders with a line < 0 whose net amount is <= 0 (cancelled or fully refunded)."),
        FeatureDef("lines_per_order", "basket",
                   "Purchase lines of purchase orders / frequency; NaN when frequency is 0."),
    ]
    if "product_id" in present:
        defs += [
            FeatureDef("n_products", "basket", "Distinct product_id among the purchase lines of purchase orders.",
                       requires="product_id"),
            FeatureDef("products_per_order", "basket",
                       "Distinct product_id of each purchase order's purchase lines, summed / frequency; NaN "
                       "when frequency is 0.", requires="product_id"),
        ]
    if "quantity" in present:
        defs += [
            FeatureDef("quantity_total", "basket",
                       "Sum of quantity over the purchase lines of purchase orders, each line's quantity capped at "
                       "the quantity cap learned at fit (the quantity_cap_quantile of purchase lines' quantities; "
                       "no cap unfitted), so absurd quantities (fuel in thousandths of a gallon) count as the cap.",
                       requires="quantity"),
            FeatureDef("quantity_per_order", "basket",
                       "quantity_total / frequency: capped items per purchase order; NaN when frequency is 0.",
                       requires="quantity"),
        ]
    if "category" in present:
        defs += [
            FeatureDef("n_categories", "basket", "Distinct categories among purchase lines.", requires="category"),
            FeatureDef("top_category_share", "basket",
                       "Share of purchase lines (with a category) in the customer's most frequent category; "
                       "NaN if none.", requires="category"),
            FeatureDef("category_entropy", "basket",
                       "Shannon entropy (nats) of the customer's purchase lines over categories; NaN if none.",
                       requires="category"),
        ]
    if "channel" in present:
        defs += [
            FeatureDef(f"channel_share_{c}", "channel",
                       f"Share of purchase lines in channel `{c}` (channels seen in fit); NaN with no purchase.",
                       requires="channel")
            for c in channels
        ]
    defs += _interaction(spec)
    defs.append(FeatureDef("signup_tenure_days", "profile",
                           "Days from customers.signup_date to as_of; NaN when absent or not before as_of."))
    for name, levels in (profile or {}).items():
        if levels is None:
            defs.append(FeatureDef(f"profile_{slug(name)}", "profile",
                                   f"Numeric customer attribute `{name}`; NaN when unknown at as_of."))
        else:
            defs.append(FeatureDef(f"profile_{slug(name)}", "profile",
                                   f"Customer attribute `{name}` as a category with the levels frequent at fit; "
                                   "other values and unknown profiles are missing.", kind="categorical"))
    defs += [
        FeatureDef("r_score", "scores", "Recency score 1-5 (5 = most recent) from rfm edges.", kind="score",
                   model_input=False),
        FeatureDef("f_score", "scores", "Frequency score 1-5 from rfm edges.", kind="score", model_input=False),
        FeatureDef("m_score", "scores", "Monetary (monetary_total) score 1-5 from rfm edges.", kind="score",
                   model_input=False),
        FeatureDef("lifecycle_stage", "lifecycle", "new / active / dormant / lost (tiercast.features.lifecycle).",
                   kind="stage", model_input=False),
    ]
    return defs
