"""A simulated world's orders written as an online retailer's invoice lines (issue #18).

The world (:mod:`tiercast.simulation.world`) draws one row per order and one per refund. Real retail
exports are invoice-line logs instead: many lines per invoice, each a product, a quantity and its price,
and cancellations as separate invoices. ``line_items`` rewrites a world that way without changing any
money or date, so the world's ground truth (:mod:`tiercast.simulation.truth`) holds for the lines as it
does for the orders:

- **Catalogue.** ``n_products`` products, each with a category (the world's category shares), a list
  price from a few price points (``price_points``, in cents; shops price at 0.85, 1.25, 2.95, ...) and a
  popularity ``1 / rank^popularity_exponent`` (a few best sellers, a long tail).
- **Lines of an order.** Each line's category is the order's own with probability ``basket_focus``,
  else drawn from the category shares; its product is drawn by popularity within that category; its
  quantity is a pack size (``pack_sizes``, e.g. 1, 2, 6, 12, 24) times the order's scale (below): the
  order's own pack size (one drawn per order: a buyer who buys by the dozen) with probability
  ``pack_focus``, else one drawn afresh. Lines
  are added while they fit in the order's amount; the remainder, when not zero, is one more line (the
  next product, quantity ``max(1, round(remainder / list price))``: a line priced off list, as a discount
  or surcharge is). The lines therefore sum to the order's amount to the cent. An order larger than
  ``max_lines`` typical lines (a wholesale order) keeps about ``max_lines`` lines with larger quantities:
  its pack sizes are multiplied by ``amount / (max_lines * typical line value)``. A free order (amount 0)
  is one line of amount 0 and quantity 1.
- **Identical lines.** Two lines of one order with the same pack size, the same price point and the same
  category are identical once ``product_id`` is left out, as in real exports: the price points and pack
  sizes are few, so about a third of the rows of the default ``retail`` world are such repeats.
- **Cancellations.** The world's refund of an order becomes a cancellation invoice, Online Retail style:
  order id ``C`` + the order's number, negative amounts and quantities, at the refund's time. It mirrors
  the order's lines from the first while their total fits in the refunded amount; the remainder, if any,
  is part of the next line (its quantity scaled, at least 1). A full refund mirrors every line.
- **Invoice times.** The world draws times uniformly over the day; an invoice log has business hours.
  Each time keeps its date and is mapped linearly from the whole day onto ``[open_hour, close_hour)``, so
  the order of events (an order before its cancellation) and every date are kept.

**Ground truth.** Amounts and dates are the world's, so per-customer value in any window between
midnights, and the number of orders with a positive amount, are exactly those of ``world.transactions``:
``ground_truth(world, ...)`` is the truth of the line-item export too, cancellations included (they are
the world's refunds, which the truth already expects). Two things the truth does not know: invoice
times within a day (only whole-day cutoffs are exact) and the reading "a fully cancelled order is not an
order"; a model that reads orders that way should be judged on churn against realised outcomes (what the
backtest does), not against ``churn_probability``.

Everything is drawn from a generator seeded by ``(world seed, LineItemConfig.seed)``, vectorised over
lines: a world of ~40k orders becomes ~800k lines in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiercast.simulation.world import World, padded_ids

_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9
_REDRAWS = 4

# List prices in cents and their shares in the catalogue: cheap items common, a few dear ones.
_PRICE_POINTS = (42, 55, 65, 85, 125, 145, 165, 195, 210, 250, 295, 375, 425, 495, 595, 795, 995, 1_275)
_PRICE_WEIGHTS = (6, 4, 5, 14, 20, 5, 12, 5, 8, 4, 16, 5, 3, 6, 2, 2, 1, 1)
# Pack sizes a line is bought in (quantity before the order's scale) and how often.
_PACK_SIZES = (1, 2, 3, 4, 6, 8, 10, 12, 24, 48)
_PACK_WEIGHTS = (18, 12, 6, 6, 12, 4, 5, 22, 10, 5)

LINE_ITEM_COLUMNS = ("customer_id", "timestamp", "amount", "order_id", "product_id", "quantity", "category")


class LineItemConfig(BaseModel):
    """The catalogue and basket parameters of a line-item export (prices in cents)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, ge=0)
    n_products: int = Field(default=4_000, gt=0)
    popularity_exponent: float = Field(default=0.9, ge=0)
    price_points: tuple[int, ...] = Field(default=_PRICE_POINTS, min_length=1)
    price_weights: tuple[float, ...] = Field(default=_PRICE_WEIGHTS, min_length=1)
    pack_sizes: tuple[int, ...] = Field(default=_PACK_SIZES, min_length=1)
    pack_weights: tuple[float, ...] = Field(default=_PACK_WEIGHTS, min_length=1)
    basket_focus: float = Field(default=0.8, ge=0, le=1)
    pack_focus: float = Field(default=0.7, ge=0, le=1)
    max_lines: int = Field(default=50, gt=0)
    open_hour: int = Field(default=7, ge=0, le=23)
    close_hour: int = Field(default=20, ge=1, le=24)

    @model_validator(mode="after")
    def _check(self) -> LineItemConfig:
        for values, weights in (("price_points", "price_weights"), ("pack_sizes", "pack_weights")):
            if len(getattr(self, values)) != len(getattr(self, weights)):
                raise ValueError(f"{weights} must have one weight per entry of {values}")
            if min(getattr(self, values)) <= 0 or min(getattr(self, weights)) <= 0:
                raise ValueError(f"{values} and {weights} must be positive")
        if self.close_hour <= self.open_hour:
            raise ValueError("close_hour must be after open_hour")
        return self


class _Catalogue:
    """Products sorted by category, with their list prices and a sampler by popularity within a category."""

    def __init__(self, config: LineItemConfig, n_categories: int, category_shares: np.ndarray,
                 rng: np.random.Generator) -> None:
        if config.n_products < n_categories:
            raise ValueError(f"n_products ({config.n_products}) must be at least the number of categories "
                             f"({n_categories})")
        # One product per category first, so that no category is empty; the rest by the shares.
        drawn = np.concatenate([np.arange(n_categories),
                                rng.choice(n_categories, config.n_products - n_categories, p=category_shares)])
        rank = rng.permutation(config.n_products) + 1  # popularity rank over the whole catalogue
        by_category = np.lexsort((rank, drawn))
        self.category = drawn[by_category]
        popularity = 1.0 / rank[by_category].astype(float) ** config.popularity_exponent
        weights = np.asarray(config.price_weights, float)
        self.price = np.asarray(config.price_points, np.int64)[
            rng.choice(weights.size, config.n_products, p=weights / weights.sum())]
        # Cumulative popularity within each category, shifted by the category number: category c's
        # products cover (c, c + 1], so one searchsorted draws a product of any category.
        totals = np.bincount(self.category, weights=popularity, minlength=n_categories)
        ends = np.cumsum(np.bincount(self.category, minlength=n_categories))
        running = np.cumsum(popularity)
        block_start = np.concatenate([[0.0], running[ends[:-1] - 1]])
        within = (running - block_start[self.category]) / totals[self.category]
        within[ends - 1] = 1.0
        self._keys = self.category + within
        self.mean_price = float(np.dot(popularity / popularity.sum(), self.price))

    def draw(self, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A product index per entry of ``category``, by popularity within it."""
        index = np.searchsorted(self._keys, category + rng.random(category.size), side="right")
        return np.minimum(index, self._keys.size - 1)


def _business_hours(timestamps: np.ndarray, config: LineItemConfig) -> np.ndarray:
    """Each time on the same date, the whole day mapped linearly onto ``[open_hour, close_hour)``."""
    ns = timestamps.astype("datetime64[ns]").astype(np.int64)
    midnight = ns - ns % _DAY_NS
    span = (config.close_hour - config.open_hour) * _HOUR_NS
    seconds = (config.open_hour * _HOUR_NS + (ns - midnight) / _DAY_NS * span) // 10**9
    return (midnight + seconds.astype(np.int64) * 10**9).astype("datetime64[ns]")


def _fill_orders(amount: np.ndarray, order_category: np.ndarray, catalogue: _Catalogue,
                 config: LineItemConfig, category_shares: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines of each order (amounts in cents): (order index, product, quantity, amount), in line order."""
    packs = np.asarray(config.pack_sizes, np.int64)
    pack_weights = np.asarray(config.pack_weights, float) / sum(config.pack_weights)
    typical_line = catalogue.mean_price * float(np.dot(packs, pack_weights))
    scale = np.maximum(1.0, amount / (typical_line * config.max_lines))
    # Candidate lines: about twice what fills the order, so that running out is rare (then the remainder
    # line is larger, nothing else changes).
    n_candidates = np.ceil(2 * amount / (typical_line * scale)).astype(np.int64) + 8
    order = np.repeat(np.arange(amount.size), n_candidates)
    focused = rng.random(order.size) < config.basket_focus
    category = np.where(focused, order_category[order],
                        rng.choice(category_shares.size, order.size, p=category_shares))
    product = catalogue.draw(category, rng)
    # An invoice lists a product once: a best seller drawn again for the same order is redrawn (a few
    # passes leave a rare repeat, as real invoices have).
    for _ in range(_REDRAWS):
        again = pd.Series(order * catalogue.price.size + product).duplicated().to_numpy()
        if not again.any():
            break
        product[again] = catalogue.draw(category[again], rng)
    order_pack = rng.choice(packs.size, amount.size, p=pack_weights)
    pack = np.where(rng.random(order.size) < config.pack_focus, order_pack[order],
                    rng.choice(packs.size, order.size, p=pack_weights))
    quantity = np.maximum(1, np.rint(packs[pack] * scale[order])).astype(np.int64)
    value = quantity * catalogue.price[product]

    first = np.concatenate([[0], np.cumsum(n_candidates)[:-1]])
    running = np.cumsum(value)
    within = running - (running[first] - value[first])[order]  # running total inside the order
    fits = within <= amount[order]
    kept = np.bincount(order, weights=fits, minlength=amount.size).astype(np.int64)
    kept_total = np.bincount(order, weights=np.where(fits, value, 0), minlength=amount.size)
    remainder = amount - np.rint(kept_total).astype(np.int64)
    # The remainder line: the next candidate (the last one when every candidate fitted).
    needs_rest = (remainder > 0) | (kept == 0)
    rest_at = first + np.minimum(kept, n_candidates - 1)
    rest_quantity = np.maximum(1, np.rint(remainder / catalogue.price[product[rest_at]])).astype(np.int64)

    line = fits.copy()
    line[rest_at[needs_rest]] = True
    line_amount = np.where(fits, value, 0)
    line_amount[rest_at[needs_rest]] = remainder[needs_rest]
    quantity[rest_at[needs_rest]] = rest_quantity[needs_rest]
    # A remainder placed on the last candidate when all fitted adds to that line instead.
    exhausted = needs_rest & (kept == n_candidates)
    line_amount[rest_at[exhausted]] = value[rest_at[exhausted]] + remainder[exhausted]
    quantity[rest_at[exhausted]] = np.maximum(
        1, np.rint(line_amount[rest_at[exhausted]] / catalogue.price[product[rest_at[exhausted]]]))
    return order[line], product[line], quantity[line], line_amount[line]


def _cancel_lines(line_order: np.ndarray, quantity: np.ndarray, line_amount: np.ndarray,
                  refunded_order: np.ndarray, refund_amount: np.ndarray, n_orders: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines of each refund mirroring its order's lines: (refund, line mirrored, quantity, amount > 0)."""
    lines_per_order = np.bincount(line_order, minlength=n_orders)
    first_line = np.concatenate([[0], np.cumsum(lines_per_order)[:-1]])
    per_refund = lines_per_order[refunded_order]
    refund = np.repeat(np.arange(refunded_order.size), per_refund)
    offset = np.arange(refund.size) - np.repeat(np.cumsum(per_refund) - per_refund, per_refund)
    source = first_line[refunded_order][refund] + offset
    running = np.cumsum(line_amount)
    within = running[source] - (running[first_line] - line_amount[first_line])[refunded_order][refund]
    before = within - line_amount[source]
    target = refund_amount[refund]
    mirrored = before < target  # the prefix of lines that starts before the refunded amount is used up
    refund, source, before, target = refund[mirrored], source[mirrored], before[mirrored], target[mirrored]
    amount = np.minimum(line_amount[source], target - before)
    whole = amount == line_amount[source]
    partial_quantity = np.clip(np.rint(quantity[source] * amount / np.maximum(line_amount[source], 1)),
                               1, quantity[source])
    return refund, source, np.where(whole, quantity[source], partial_quantity).astype(np.int64), amount


def line_items(world: World, config: LineItemConfig | None = None, product_id: bool = True) -> pd.DataFrame:
    """The world's transactions as invoice lines (see the module docstring), sorted by time then invoice.

    Columns ``customer_id, timestamp, amount, order_id, product_id, quantity, category``; without
    ``product_id`` when ``product_id`` is False (as many exports are).
    """
    config = config or LineItemConfig()
    rng = np.random.default_rng([world.config.seed, config.seed])
    category_names = np.array(list(world.config.categories), dtype=object)
    shares = np.fromiter(world.config.categories.values(), float)
    catalogue = _Catalogue(config, category_names.size, shares / shares.sum(), rng)

    tx = world.transactions
    amount_cents = np.rint(tx["amount"].to_numpy() * 100).astype(np.int64)
    is_order = amount_cents >= 0
    orders = np.flatnonzero(is_order)
    refunds = np.flatnonzero(~is_order)
    order_number = tx["order_id"].str.slice(1).astype(np.int64).to_numpy()
    category_code = pd.Index(category_names).get_indexer(tx["category"].to_numpy())

    line_order, product, quantity, line_amount = _fill_orders(
        amount_cents[orders], category_code[orders], catalogue, config, shares / shares.sum(), rng)
    # Each refund row names its order by order_id; the world writes every order before its refunds.
    position = pd.Index(order_number[orders]).get_indexer(order_number[refunds])
    refund, source, cancel_quantity, cancel_amount = _cancel_lines(
        line_order, quantity, line_amount, position, -amount_cents[refunds], orders.size)

    row = np.concatenate([orders[line_order], refunds[refund]])  # the world's transaction of each line
    n_lines = line_order.size
    cancelled = np.concatenate([np.zeros(n_lines, bool), np.ones(refund.size, bool)])
    all_product = np.concatenate([product, product[source]])
    timestamp = _business_hours(tx["timestamp"].to_numpy()[row], config)
    # Time, then orders before cancellations at the same second, then invoice, then line.
    sort = np.lexsort((np.concatenate([np.arange(n_lines), source]), order_number[row], cancelled, timestamp))
    width = max(9, len(str(int(order_number.max(initial=0)))))
    numbers = padded_ids("", order_number[row][sort], width)
    frame = {
        "customer_id": tx["customer_id"].to_numpy()[row][sort],
        "timestamp": timestamp[sort],
        "amount": np.concatenate([line_amount, -cancel_amount])[sort] / 100,
        "order_id": np.where(cancelled[sort], "C", "O").astype(object) + numbers,
        "product_id": padded_ids("P", all_product[sort] + 1, max(5, len(str(catalogue.price.size)))),
        "quantity": np.concatenate([quantity, -cancel_quantity])[sort],
        "category": category_names[catalogue.category[all_product[sort]]],
    }
    if not product_id:
        del frame["product_id"]
    return pd.DataFrame(frame)
