"""A synthetic retail world with known latent traits.

Used for scale tests and for checking models against the truth. Everything is drawn with one seeded
``numpy`` generator, vectorised over customers and rows (``np.repeat`` expansions, no per-customer
loops), so that worlds of millions of customers stay practical.

Generative model (time in days since ``start``; the period is ``[start, end)``; every parameter is a
``WorldConfig`` field):

- **Season.** ``s(t)`` is a monthly multiplier (``seasonality``, 12 values rescaled to mean 1, December
  peak by default). ``S(t) = integral of s`` is piecewise linear with knots at month starts, so a Poisson
  process with intensity ``lambda * s(t)`` is a rate-``lambda`` process on the ``S`` axis mapped back by
  ``np.interp`` (exact).
- **Acquisition.** Signup times have density proportional to ``s(t)`` over the period. A share
  ``first_order_share`` of customers place their first order at signup. A share ``established_share``
  (0 by default) were customers already: signed up ``Uniform(0, established_days)`` before ``start``,
  alive at ``start`` (their exponential lifetime runs on from there), nothing drawn before ``start``.
- **Latent traits** per customer: satisfaction ``z ~ N(0, 1)``; purchase rate
  ``lambda = Gamma(purchase_rate_shape, mean purchase_rate_mean) * region multiplier``; dropout hazard
  ``mu = Gamma(dropout_rate_shape, mean dropout_rate_mean) * exp(-b z - b^2/2) + complaint_exit_share *
  complaint rate`` with ``b = satisfaction_dropout_effect`` (the log-normal factor has mean 1, so
  dissatisfied customers leave sooner without moving the average; the second term is leaving over a
  complaint, below); lifetime ``tau ~ Exp(mu)`` after signup (Pareto/NBD: buy as Poisson while alive,
  leave in continuous time). Mean spend follows Gamma-Gamma: ``nu ~ Gamma(q, rate
  g)``, order amounts ``~ Gamma(p, rate nu)``, so mean spend ``m = p / nu`` times an age-band multiplier.
  Category preferences ``~ Dirichlet(category_concentration * category shares)``; a preferred channel
  used with probability ``channel_loyalty``; refund probability ``rho = refund_share * exp(-c z -
  c^2/2)`` (capped at 1); interaction rates for tickets and complaints rise as satisfaction falls the
  same way; an email-open rate ``~ Gamma``. Demographics (age band, region, gender) and synthetic
  personal data (name, email, phone: never features) go to the customers frame. A share
  ``wholesale_share`` of customers are wholesale buyers (trait ``wholesale``): their ``lambda`` and ``m``
  are multiplied by ``wholesale_rate_multiplier`` and ``wholesale_spend_multiplier``, so the ground truth
  (which reads the traits) covers them unchanged.
- **Orders.** While alive, orders arrive with intensity ``lambda * s(t)``. A share ``zero_amount_share``
  are free (amount 0); the others have amount ``Gamma(p, mean m)`` in cents (at least 0.01), quantity
  ``1 + Poisson(max(amount / item_price - 1, 0))``, a category from the customer's preferences and a
  channel. ``order_id`` numbers orders in time order.
- **Refunds.** Each positive order is refunded with probability ``rho`` after ``Exp(refund_delay_days)``
  days, as a negative row with the same ``order_id``: in full with probability ``refund_full_share``,
  else a fraction ``Uniform(refund_partial_min, refund_partial_max)``. Refunds happen whether or not the
  customer is still alive; rows at or after ``end`` are not written.
- **Interactions.** A share ``survey_share`` of positive orders get a survey answer ``Exp(survey_delay_days)``
  later, scored ``clip(round(survey_mean + survey_sd z + N(0, survey_noise_sd)), 1, 5)``. Support
  tickets are Poisson while alive. Complaints are Poisson while alive at rate ``c``, and each one makes
  the customer leave with probability ``complaint_exit_share``: as competing risks this is a hazard
  ``complaint_exit_share * c`` inside ``mu`` (still memoryless), non-final complaints at rate ``(1 -
  complaint_exit_share) c``, and a departure that is a complaint with probability
  ``complaint_exit_share * c / mu``, logged at the moment of leaving. Email opens are Poisson from signup
  to ``end`` at the customer's rate while alive and ``email_open_after_dropout`` times it afterwards.

Its analytic ground truth is in :mod:`tiercast.simulation.truth`; :mod:`tiercast.simulation.files` writes
a world out; :mod:`tiercast.simulation.line_items` rewrites its orders as invoice lines;
:mod:`tiercast.simulation.presets` names worlds (``default``, ``retail``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

_DAY_S = 86_400
_SECOND_NS = 10**9
_INTERACTION_KINDS = np.array(["survey", "support_ticket", "complaint", "email_open"], dtype=object)
_FIRST_NAMES = np.array(
    ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lena", "Milo",
     "Nora", "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wren", "Yara", "Zed"],
    dtype=object)
_LAST_NAMES = np.array(
    ["Abbott", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
     "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Tanaka",
     "Ulrich", "Varga", "Weber", "Young", "Zhang"],
    dtype=object)

_SEASONALITY = (0.85, 0.85, 0.95, 0.95, 1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.25, 1.45)
_CATEGORIES = {"grocery": 0.22, "home": 0.14, "fashion": 0.16, "electronics": 0.10, "beauty": 0.12,
               "sports": 0.09, "toys": 0.07, "books": 0.10}
_CHANNELS = {"web": 0.45, "app": 0.25, "store": 0.30}
_AGE_BANDS = {"18-24": 0.12, "25-34": 0.22, "35-44": 0.21, "45-54": 0.18, "55-64": 0.15, "65+": 0.12}
_AGE_SPEND = {"18-24": 0.75, "25-34": 0.9, "35-44": 1.05, "45-54": 1.15, "55-64": 1.15, "65+": 1.0}
_REGIONS = {"north": 0.22, "south": 0.26, "east": 0.2, "west": 0.24, "islands": 0.08}
_REGION_RATE = {"north": 1.0, "south": 1.1, "east": 0.95, "west": 1.05, "islands": 0.7}
_GENDERS = {"female": 0.5, "male": 0.47, "unspecified": 0.03}


class WorldConfig(BaseModel):
    """Size, period, seed and every generative parameter of the synthetic world (rates are per day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_customers: int = Field(default=10_000, gt=0, le=99_999_999)
    seed: int = Field(default=0, ge=0)
    start: date = date(2023, 1, 1)
    end: date = date(2025, 7, 1)
    # The ground-truth horizon the CLI uses by default; the default cutoff is ``end`` minus it.
    default_horizon_days: int = Field(default=180, gt=0)

    # Acquisition and purchasing (Pareto/NBD with seasonality).
    first_order_share: float = Field(default=0.85, ge=0, le=1)
    purchase_rate_mean: float = Field(default=0.0315, gt=0)
    purchase_rate_shape: float = Field(default=0.8, gt=0)
    dropout_rate_mean: float = Field(default=1 / 365, gt=0)
    dropout_rate_shape: float = Field(default=1.0, gt=0)
    seasonality: tuple[float, ...] = Field(default=_SEASONALITY, min_length=12, max_length=12)
    zero_amount_share: float = Field(default=0.01, ge=0, lt=1)

    # Spend (Gamma-Gamma): order amount ~ Gamma(spend_shape, rate nu), nu ~ Gamma(spend_heterogeneity, .).
    spend_mean: float = Field(default=50.0, gt=0)
    spend_shape: float = Field(default=6.0, gt=0)
    spend_heterogeneity: float = Field(default=4.0, gt=1)
    item_price: float = Field(default=25.0, gt=0)
    # Wholesale buyers among consumers: a share of customers whose purchase rate and mean spend are
    # multiplied (0 = none, the default world). Drawn after every other trait, so a world without them
    # draws exactly what it always did.
    wholesale_share: float = Field(default=0.0, ge=0, lt=1)
    wholesale_rate_multiplier: float = Field(default=1.0, gt=0)
    wholesale_spend_multiplier: float = Field(default=1.0, gt=0)
    # Customers already buying when the period starts (a log that opens on an existing base): signed up
    # up to ``established_days`` before ``start``, alive at ``start``, first order inside the period drawn
    # like any repeat order. 0 = everyone signs up inside the period (the default world).
    established_share: float = Field(default=0.0, ge=0, le=1)
    established_days: float = Field(default=365.0, gt=0)

    # Refunds.
    refund_share: float = Field(default=0.06, ge=0, le=1)
    refund_full_share: float = Field(default=0.6, ge=0, le=1)
    refund_partial_min: float = Field(default=0.1, gt=0, le=1)
    refund_partial_max: float = Field(default=0.9, gt=0, le=1)
    refund_delay_days: float = Field(default=10.0, gt=0)

    # Satisfaction (z ~ N(0, 1)) and how it moves behaviour: multipliers exp(-effect z - effect^2 / 2).
    satisfaction_dropout_effect: float = Field(default=0.6, ge=0)
    satisfaction_refund_effect: float = Field(default=0.4, ge=0)
    satisfaction_ticket_effect: float = Field(default=0.7, ge=0)
    satisfaction_complaint_effect: float = Field(default=1.2, ge=0)

    # Interactions.
    survey_share: float = Field(default=0.12, ge=0, le=1)
    survey_delay_days: float = Field(default=2.0, gt=0)
    survey_mean: float = Field(default=3.7, ge=1, le=5)
    survey_sd: float = Field(default=0.8, ge=0)
    survey_noise_sd: float = Field(default=0.7, ge=0)
    ticket_rate: float = Field(default=1 / 180, ge=0)
    complaint_rate: float = Field(default=1 / 1000, ge=0)
    # Chance that a complaint ends the relationship: the customer leaves then (adds to the dropout hazard).
    complaint_exit_share: float = Field(default=0.3, ge=0, le=1)
    email_open_rate_mean: float = Field(default=1 / 90, ge=0)
    email_open_rate_shape: float = Field(default=1.5, gt=0)
    email_open_after_dropout: float = Field(default=0.3, ge=0, le=1)

    # Preferences and demographics: shares sum to 1; multipliers are rescaled to a population mean of 1.
    categories: dict[str, float] = Field(default_factory=lambda: dict(_CATEGORIES), min_length=1)
    category_concentration: float = Field(default=2.0, gt=0)
    channels: dict[str, float] = Field(default_factory=lambda: dict(_CHANNELS), min_length=1)
    channel_loyalty: float = Field(default=0.8, ge=0, le=1)
    age_bands: dict[str, float] = Field(default_factory=lambda: dict(_AGE_BANDS), min_length=1)
    age_band_spend: dict[str, float] = Field(default_factory=lambda: dict(_AGE_SPEND))
    regions: dict[str, float] = Field(default_factory=lambda: dict(_REGIONS), min_length=1)
    region_purchase_rate: dict[str, float] = Field(default_factory=lambda: dict(_REGION_RATE))
    genders: dict[str, float] = Field(default_factory=lambda: dict(_GENDERS), min_length=1)

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.default_horizon_days >= (self.end - self.start).days:
            raise ValueError("default_horizon_days must be shorter than the period")
        if self.refund_partial_min > self.refund_partial_max:
            raise ValueError("refund_partial_min must not exceed refund_partial_max")
        if min(self.seasonality) <= 0:
            raise ValueError("seasonality multipliers must be positive")
        for name in ("categories", "channels", "age_bands", "regions", "genders"):
            shares = getattr(self, name)
            if min(shares.values()) <= 0 or abs(sum(shares.values()) - 1) > 1e-6:
                raise ValueError(f"{name}: shares must be positive and sum to 1")
        for name, levels in (("age_band_spend", "age_bands"), ("region_purchase_rate", "regions")):
            multipliers = getattr(self, name)
            if set(multipliers) != set(getattr(self, levels)):
                raise ValueError(f"{name}: keys must be exactly those of {levels}")
            if min(multipliers.values()) <= 0:
                raise ValueError(f"{name}: multipliers must be positive")
        return self

    @property
    def default_cutoff(self) -> pd.Timestamp:
        """The ground-truth cutoff the CLI uses by default: ``end - default_horizon_days``."""
        return pd.Timestamp(self.end) - pd.Timedelta(days=self.default_horizon_days)

    @property
    def refund_mean_fraction(self) -> float:
        """E[f], the expected refunded fraction of a refunded order."""
        partial = (self.refund_partial_min + self.refund_partial_max) / 2
        return self.refund_full_share + (1 - self.refund_full_share) * partial


@dataclass
class World:
    """The generated frames (canonical schema) plus the latent traits and the config that made them."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    interactions: pd.DataFrame
    traits: pd.DataFrame
    config: WorldConfig


@dataclass(frozen=True)
class SeasonClock:
    """Seasonal exposure ``S(t)`` (days since start): knots at month starts, ``S`` linear between them."""

    knots: np.ndarray
    exposure_at_knots: np.ndarray
    levels: np.ndarray

    @classmethod
    def from_config(cls, config: WorldConfig) -> SeasonClock:
        start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
        month_starts = pd.date_range(start, end, freq="MS")
        inner = month_starts[(month_starts > start) & (month_starts < end)]
        edges = pd.DatetimeIndex([start, *inner, end])
        multipliers = np.asarray(config.seasonality, dtype=float)
        levels = (multipliers / multipliers.mean())[edges[:-1].month - 1]
        knots = ((edges - start) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        exposure = np.concatenate([[0.0], np.cumsum(levels * np.diff(knots))])
        return cls(knots=knots, exposure_at_knots=exposure, levels=levels)

    def exposure(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.knots, self.exposure_at_knots)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.interp(y, self.exposure_at_knots, self.knots)

    def segments(self, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pieces of ``[a, b)`` with constant season: starts relative to ``a``, lengths and levels."""
        inner = self.knots[(self.knots > a) & (self.knots < b)]
        edges = np.concatenate([[a], inner, [b]])
        level_index = np.searchsorted(self.knots, edges[:-1], side="right") - 1
        return edges[:-1] - a, np.diff(edges), self.levels[level_index]


def _int_exp(log_at_start: np.ndarray, rate: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``exp(log_at_start) * integral_0^length exp(rate v) dv``, elementwise and stable as rate -> 0."""
    x = rate * length
    small = np.abs(x) < 1e-10
    with np.errstate(divide="ignore", invalid="ignore"):
        body = np.where(small, length * (1 + x / 2), np.expm1(x) / np.where(small, 1.0, rate))
    return np.exp(log_at_start) * body


def _draw_shares(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    return rng.choice(len(shares), size=size, p=np.fromiter(shares.values(), float))


def _normalised(multipliers: dict[str, float], shares: dict[str, float]) -> np.ndarray:
    """Multipliers in the order of ``shares``, rescaled so their population mean is 1."""
    values = np.array([multipliers[key] for key in shares])
    return values / np.dot(values, np.fromiter(shares.values(), float))


def _lognormal_factor(effect: float, z: np.ndarray) -> np.ndarray:
    """``exp(-effect z - effect^2 / 2)``: mean 1 for ``z ~ N(0, 1)``, larger when satisfaction is low."""
    return np.exp(-effect * z - effect**2 / 2)


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers, as an object array of str (built in Arrow, not in a loop)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "").to_numpy(zero_copy_only=False)


def _customer_ids(n: int) -> np.ndarray:
    return padded_ids("C", np.arange(1, n + 1), max(7, len(str(n))))


def days_since(timestamps: pd.Series | np.ndarray, start: pd.Timestamp) -> np.ndarray:
    """Fractional days from ``start`` to each timestamp."""
    return (np.asarray(timestamps, dtype="datetime64[ns]") - start.to_datetime64()).astype(np.int64) / (
        _DAY_S * _SECOND_NS)


def _timestamps(days: np.ndarray, start: pd.Timestamp) -> np.ndarray:
    """Days since start -> datetime64[ns], floored to whole seconds."""
    seconds = np.floor(days * _DAY_S + 1e-6).astype(np.int64)
    return start.to_datetime64().astype("datetime64[ns]") + seconds * np.timedelta64(1, "s")


def _poisson_events(rng: np.random.Generator, rate: np.ndarray, t0: np.ndarray, t1: np.ndarray,
                    clock: SeasonClock | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Independent Poisson processes, one per customer, intensity ``rate * s(t)`` on ``[t0, t1)``.

    Returns (customer row, time) per event; with no clock the intensity is flat (``s = 1``).
    """
    lo, hi = (t0, t1) if clock is None else (clock.exposure(t0), clock.exposure(t1))
    width = np.maximum(hi - lo, 0.0)
    rows = np.repeat(np.arange(rate.size), rng.poisson(rate * width))
    y = lo[rows] + rng.random(rows.size) * width[rows]
    return rows, (y if clock is None else clock.inverse(y))


def _draw_customers(config: WorldConfig, rng: np.random.Generator,
                    clock: SeasonClock) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The customers frame (demographics, personal data) and their latent traits."""
    n, start = config.n_customers, pd.Timestamp(config.start)
    ids = _customer_ids(n)
    signup = clock.inverse(rng.random(n) * clock.exposure_at_knots[-1])
    signup_ts = _timestamps(signup, start)
    age = _draw_shares(rng, config.age_bands, n)
    region = _draw_shares(rng, config.regions, n)
    gender = _draw_shares(rng, config.genders, n)

    z = rng.standard_normal(n)
    purchase_rate = rng.gamma(config.purchase_rate_shape, config.purchase_rate_mean / config.purchase_rate_shape,
                              n) * _normalised(config.region_purchase_rate, config.regions)[region]
    complaint_rate = config.complaint_rate * _lognormal_factor(config.satisfaction_complaint_effect, z)
    dropout_rate = (rng.gamma(config.dropout_rate_shape, config.dropout_rate_mean / config.dropout_rate_shape, n)
                    * _lognormal_factor(config.satisfaction_dropout_effect, z)
                    + config.complaint_exit_share * complaint_rate)
    with np.errstate(divide="ignore"):
        lifetime = rng.standard_exponential(n) / dropout_rate
    g = config.spend_mean * (config.spend_heterogeneity - 1) / config.spend_shape
    mean_spend = (config.spend_shape / rng.gamma(config.spend_heterogeneity, 1.0 / g, n)
                  * _normalised(config.age_band_spend, config.age_bands)[age])
    category_names = list(config.categories)
    preferences = rng.dirichlet(config.category_concentration * np.fromiter(config.categories.values(), float), n)
    traits = pd.DataFrame({
        "customer_id": ids,
        "signup": signup_ts,
        "satisfaction": z,
        "purchase_rate": purchase_rate,
        "dropout_rate": dropout_rate,
        "lifetime_days": lifetime,
        "mean_spend": mean_spend,
        "refund_prob": np.minimum(config.refund_share * _lognormal_factor(config.satisfaction_refund_effect, z),
                                  1.0),
        "first_order": rng.random(n) < config.first_order_share,
        "ticket_rate": config.ticket_rate * _lognormal_factor(config.satisfaction_ticket_effect, z),
        "complaint_rate": complaint_rate,
        "email_open_rate": rng.gamma(config.email_open_rate_shape,
                                     config.email_open_rate_mean / config.email_open_rate_shape, n),
        "preferred_channel": np.array(list(config.channels), dtype=object)[_draw_shares(rng, config.channels, n)],
        **{f"pref_{name}": preferences[:, k] for k, name in enumerate(category_names)},
    })

    first = _FIRST_NAMES[rng.integers(0, _FIRST_NAMES.size, n)]
    last = _LAST_NAMES[rng.integers(0, _LAST_NAMES.size, n)]
    number = pc.cast(pa.array(np.arange(1, n + 1)), pa.string())
    email = pc.utf8_lower(pc.binary_join_element_wise(pa.array(first), ".", pa.array(last), number,
                                                      "@example.com", ""))
    customers = pd.DataFrame({
        "customer_id": ids,
        "signup_date": signup_ts.astype("datetime64[D]").astype("datetime64[ns]"),
        "age_band": np.array(list(config.age_bands), dtype=object)[age],
        "region": np.array(list(config.regions), dtype=object)[region],
        "gender": np.array(list(config.genders), dtype=object)[gender],
        "name": pc.binary_join_element_wise(pa.array(first), pa.array(last), " ").to_numpy(zero_copy_only=False),
        "email": email.to_numpy(zero_copy_only=False),
        "phone": padded_ids("+1-555-", rng.integers(0, 10**7, n), 7),
    })
    wholesale = rng.random(n) < config.wholesale_share if config.wholesale_share > 0 else np.zeros(n, bool)
    traits["wholesale"] = wholesale
    traits.loc[wholesale, "purchase_rate"] *= config.wholesale_rate_multiplier
    traits.loc[wholesale, "mean_spend"] *= config.wholesale_spend_multiplier
    if config.established_share > 0:
        established = rng.random(n) < config.established_share
        tenure = rng.random(int(established.sum())) * config.established_days
        signup_ts = _timestamps(-tenure, start)
        traits.loc[established, "signup"] = signup_ts
        # Alive at start: the lifetime drawn above is memoryless, so it runs on from start.
        traits.loc[established, "lifetime_days"] = tenure + lifetime[established]
        traits.loc[established, "first_order"] = False
        customers.loc[established, "signup_date"] = signup_ts.astype("datetime64[D]").astype("datetime64[ns]")
    return customers, traits


def _sorted_frame(rows: np.ndarray, days: np.ndarray, start: pd.Timestamp, ids: np.ndarray,
                  columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A frame sorted by customer then time; ties keep generation order (an order before its refund)."""
    seconds = np.floor(days * _DAY_S + 1e-6).astype(np.int64)
    order = np.argsort(rows.astype(np.int64) * (int(seconds.max(initial=0)) + 1) + seconds, kind="stable")
    frame = {"customer_id": ids[rows[order]], "timestamp": _timestamps(days[order], start)}
    frame.update({name: values[order] for name, values in columns.items()})
    return pd.DataFrame(frame)


def draw_activity(config: WorldConfig, rng: np.random.Generator, clock: SeasonClock,
                   traits: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders, refunds and interactions of every customer, as the transactions and interactions frames."""
    start = pd.Timestamp(config.start)
    horizon = clock.knots[-1]
    ids = traits["customer_id"].to_numpy()
    signup = days_since(traits["signup"], start)
    alive_until = np.minimum(signup + traits["lifetime_days"].to_numpy(), horizon)
    # Established customers signed up before start; nothing of theirs is drawn before it.
    active_from = np.maximum(signup, 0.0)

    # Orders: the first one at signup, then seasonal Poisson while alive.
    first_rows = np.flatnonzero(traits["first_order"].to_numpy())
    repeat_rows, repeat_days = _poisson_events(rng, traits["purchase_rate"].to_numpy(), active_from, alive_until,
                                                clock)
    rows = np.concatenate([first_rows, repeat_rows])
    days = np.concatenate([signup[first_rows], repeat_days])
    n_orders = rows.size
    mean_spend = traits["mean_spend"].to_numpy()[rows]
    amount = np.maximum(np.round(rng.gamma(config.spend_shape, mean_spend / config.spend_shape), 2), 0.01)
    amount[rng.random(n_orders) < config.zero_amount_share] = 0.0
    quantity = 1.0 + rng.poisson(np.maximum(amount / config.item_price - 1.0, 0.0))

    cumulative = np.cumsum(traits[[f"pref_{name}" for name in config.categories]].to_numpy(), axis=1)
    u = rng.random(n_orders)
    category = np.zeros(n_orders, dtype=np.int64)
    for k in range(cumulative.shape[1] - 1):
        category += u >= cumulative[rows, k]
    channel_names = np.array(list(config.channels), dtype=object)
    channel = np.where(rng.random(n_orders) < config.channel_loyalty,
                       traits["preferred_channel"].to_numpy()[rows],
                       channel_names[_draw_shares(rng, config.channels, n_orders)])
    order_number = np.empty(n_orders, dtype=np.int64)
    order_number[np.argsort(days, kind="stable")] = np.arange(1, n_orders + 1)

    # Refunds of positive orders, the same order_id, some days later.
    refunded = (amount > 0) & (rng.random(n_orders) < traits["refund_prob"].to_numpy()[rows])
    source = np.flatnonzero(refunded)
    refund_days = days[source] + rng.exponential(config.refund_delay_days, source.size)
    full = rng.random(source.size) < config.refund_full_share
    fraction = np.where(full, 1.0, rng.uniform(config.refund_partial_min, config.refund_partial_max, source.size))
    refund_amount = np.where(full, amount[source], np.maximum(np.round(fraction * amount[source], 2), 0.01))
    refund_quantity = np.where(full, quantity[source], np.minimum(quantity[source],
                                                                  np.ceil(fraction * quantity[source])))
    keep = refund_days < horizon
    source, refund_days = source[keep], refund_days[keep]

    all_rows = np.concatenate([rows, rows[source]])
    all_days = np.concatenate([days, refund_days])
    category_names = np.array(list(config.categories), dtype=object)
    columns = {
        "amount": np.concatenate([amount, -refund_amount[keep]]),
        "order_id": np.concatenate([order_number, order_number[source]]),
        "quantity": np.concatenate([quantity, -refund_quantity[keep]]),
        "category": category_names[np.concatenate([category, category[source]])],
        "channel": np.concatenate([channel, channel[source]]),
    }
    inside = all_days < horizon
    transactions = _sorted_frame(all_rows[inside], all_days[inside], start, ids,
                                 {name: values[inside] for name, values in columns.items()})
    transactions["order_id"] = padded_ids("O", transactions["order_id"].to_numpy(), max(9, len(str(n_orders))))

    interactions = _draw_interactions(config, rng, traits, rows[amount > 0], days[amount > 0], active_from,
                                      alive_until, horizon)
    interactions = _sorted_frame(interactions[0], interactions[1], start, ids,
                                 {"kind": interactions[2], "score": interactions[3]})
    return transactions, interactions


def _draw_interactions(config: WorldConfig, rng: np.random.Generator, traits: pd.DataFrame,
                       order_rows: np.ndarray, order_days: np.ndarray, active_from: np.ndarray,
                       alive_until: np.ndarray, horizon: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Surveys after orders; tickets and complaints while alive, the last complaint; email opens to the end."""
    z = traits["satisfaction"].to_numpy()
    surveyed = rng.random(order_rows.size) < config.survey_share
    survey_rows = order_rows[surveyed]
    survey_days = order_days[surveyed] + rng.exponential(config.survey_delay_days, survey_rows.size)
    latent = config.survey_mean + config.survey_sd * z[survey_rows]
    score = np.clip(np.rint(latent + rng.normal(0.0, config.survey_noise_sd, survey_rows.size)), 1, 5)

    tickets = _poisson_events(rng, traits["ticket_rate"].to_numpy(), active_from, alive_until)
    complaint_rate = traits["complaint_rate"].to_numpy()
    complaints = _poisson_events(rng, complaint_rate * (1 - config.complaint_exit_share), active_from,
                                  alive_until)
    leaves = days_since(traits["signup"], pd.Timestamp(config.start)) + traits["lifetime_days"].to_numpy()
    exit_share = config.complaint_exit_share * complaint_rate / traits["dropout_rate"].to_numpy()
    exit_rows = np.flatnonzero((leaves < horizon) & (rng.random(leaves.size) < exit_share))
    exits = (exit_rows, leaves[exit_rows])
    email_rate = traits["email_open_rate"].to_numpy()
    opens_alive = _poisson_events(rng, email_rate, active_from, alive_until)
    opens_after = _poisson_events(rng, email_rate * config.email_open_after_dropout, alive_until,
                                  np.full_like(leaves, horizon))

    parts = [(survey_rows, survey_days), tickets, complaints, exits, opens_alive, opens_after]
    kind_code = np.repeat([0, 1, 2, 2, 3, 3], [p[0].size for p in parts])
    rows = np.concatenate([p[0] for p in parts])
    days = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([score, np.full(rows.size - score.size, np.nan)])
    inside = days < horizon
    return rows[inside], days[inside], _INTERACTION_KINDS[kind_code[inside]], scores[inside]


def simulate_world(config: WorldConfig) -> World:
    """Draw customers, their latent traits, transactions and interactions (see the module docstring)."""
    rng = np.random.default_rng(config.seed)
    clock = SeasonClock.from_config(config)
    customers, traits = _draw_customers(config, rng, clock)
    transactions, interactions = draw_activity(config, rng, clock, traits)
    return World(transactions=transactions, customers=customers, interactions=interactions, traits=traits,
                 config=config)
