"""The analytic ground truth of a simulated world (:mod:`tiercast.simulation.world`) at a cutoff.

Ground truth at a cutoff ``c`` with horizon ``H`` (``ground_truth``) conditions on each scored customer's
traits, on whether they are alive at ``c`` and on the observable history before ``c``. With ``u = t - c``,
window segments ``[a_k, b_k)`` of constant season ``s_k``, positive-order rate ``l = lambda (1 -
zero_amount_share)``, ``k = 1 / refund_delay_days`` and ``E[f]`` the mean refunded fraction:

- expected positive orders ``= alive * l * sum_k s_k * integral_{a_k}^{b_k} e^{-mu u} du``;
- expected value ``= alive * l * m * sum_k s_k integral e^{-mu u} [1 - rho E[f] (1 - e^{-k (H - u)})] du``
  (orders in the window, less their refunds that land in it), plus, for every positive order before
  ``c`` not yet refunded, ``-E[f] * amount * rho e^{-k x} (1 - e^{-k H}) / (1 - rho (1 - e^{-k x}))``
  with ``x`` its age at ``c`` (its refund is still to come and lands in the window);
- churn probability ``= 1`` if not alive, else ``P(no positive order) = integral_0^H mu e^{-mu u}
  e^{-l S_c(u)} du + e^{-mu H - l S_c(H)}`` with ``S_c(u)`` the seasonal exposure from ``c``; each
  segment's integral has a closed form because ``S_c`` is linear on it.

The invoice-line export (:mod:`tiercast.simulation.line_items`) keeps every amount and date of the world
and writes its refunds as the cancellation invoices, so this truth is the truth of the lines as well
(for cutoffs at midnight; its churn counts every positive order, a fully cancelled one included).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tiercast.simulation.world import _DAY_S, _SECOND_NS, SeasonClock, World, _int_exp, days_since


def _pending_refunds(world: World, cutoff: pd.Timestamp, horizon_days: int, rows: np.ndarray,
                     n_rows: int) -> np.ndarray:
    """Expected (negative) refunds landing in the window from positive orders placed before the cutoff.

    ``rows`` maps each transaction to its trait row; the result is summed per trait row.
    """
    config = world.config
    tx = world.transactions
    timestamp = tx["timestamp"].to_numpy()
    amount = tx["amount"].to_numpy()
    before = timestamp < cutoff.to_datetime64()
    # Arrow's hash lookup: pandas' isin is slow on millions of distinct Python strings.
    order_id = pa.array(tx["order_id"].to_numpy()[before], type=pa.string())
    refunded = pc.is_in(order_id, value_set=pc.unique(order_id.filter(pa.array(amount[before] < 0))))
    open_orders = before.copy()
    open_orders[before] = (amount[before] > 0) & ~refunded.to_numpy(zero_copy_only=False)
    age = (cutoff.to_datetime64() - timestamp[open_orders]).astype(np.int64) / (_DAY_S * _SECOND_NS)
    rho = world.traits["refund_prob"].to_numpy()[rows[open_orders]]
    k = 1.0 / config.refund_delay_days
    still_to_come = np.exp(-k * age)
    chance = rho * still_to_come * -np.expm1(-k * horizon_days) / (1 - rho * (1 - still_to_come))
    expected = -config.refund_mean_fraction * amount[open_orders] * chance
    return np.bincount(rows[open_orders], weights=expected, minlength=n_rows)


def ground_truth(world: World, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Expected value and churn probability in ``[cutoff, cutoff + horizon_days)`` from the latent traits.

    One row per customer with at least one transaction before the cutoff, sorted by ``customer_id``:
    ``customer_id, as_of, horizon_days, expected_value, churn_probability, expected_orders`` (positive
    orders) and ``alive`` (the latent state at the cutoff). Formulas in the module docstring.
    """
    config = world.config
    cutoff = pd.Timestamp(cutoff)
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    if not start < cutoff or cutoff + pd.Timedelta(days=horizon_days) > end:
        raise ValueError(f"the window [{cutoff}, +{horizon_days} days) must lie after {start} and end by {end}, "
                         "the simulated period")
    traits = world.traits
    c = (cutoff - start) / pd.Timedelta(days=1)
    h = float(horizon_days)
    tx_rows = pd.Index(traits["customer_id"]).get_indexer(world.transactions["customer_id"])
    before = world.transactions["timestamp"].to_numpy() < cutoff.to_datetime64()
    scored = np.flatnonzero(np.bincount(tx_rows[before], minlength=len(traits)))

    lam = traits["purchase_rate"].to_numpy()[scored, None] * (1 - config.zero_amount_share)
    mu = traits["dropout_rate"].to_numpy()[scored, None]
    rho = traits["refund_prob"].to_numpy()[scored, None]
    spend = traits["mean_spend"].to_numpy()[scored]
    alive = days_since(traits["signup"], start)[scored] + traits["lifetime_days"].to_numpy()[scored] > c

    a, length, level = SeasonClock.from_config(config).segments(c, c + h)
    k = 1.0 / config.refund_delay_days
    survival = _int_exp(-mu * a, -mu, length)                       # integral of e^{-mu u}
    refund_outside = _int_exp(-k * (h - a) - mu * a, k - mu, length)  # integral of e^{-mu u - k (h - u)}
    orders = (lam * level * survival).sum(axis=1)
    ef = config.refund_mean_fraction
    net = (lam * level * ((1 - rho * ef) * survival + rho * ef * refund_outside)).sum(axis=1) * spend
    exposure_before = np.concatenate([[0.0], np.cumsum(level * length)])
    no_order = (mu * _int_exp(-lam * exposure_before[:-1] - mu * a, -(mu + lam * level), length)).sum(axis=1)
    no_order += np.exp(-mu[:, 0] * h - lam[:, 0] * exposure_before[-1])

    pending = _pending_refunds(world, cutoff, horizon_days, tx_rows, len(traits))[scored]
    return pd.DataFrame({
        "customer_id": traits["customer_id"].to_numpy()[scored],
        "as_of": np.full(scored.size, cutoff.to_datetime64().astype("datetime64[ns]")),
        "horizon_days": np.full(scored.size, horizon_days, dtype=np.int64),
        "expected_value": np.where(alive, net, 0.0) + pending,
        "churn_probability": np.where(alive, np.clip(no_order, 0.0, 1.0), 1.0),
        "expected_orders": np.where(alive, orders, 0.0),
        "alive": alive,
    })
