"""Recency, frequency and monetary value: the inputs of the classic models, in two conventions.

* :func:`rfm_summary` reads the transactions (customer-day convention of BTYD models, lifetimes and
  Fader-Hardie-Lee): the classic baseline :class:`~tiercast.training.classic.clv.ClassicCLV` uses it.
* :func:`rfm_from_features` reads the feature builder's columns :data:`RFM_INPUTS`: the classic forecast
  columns (:class:`~tiercast.training.classic.forecast.ClassicFeatures`) use it, so that they need nothing
  but a feature row and score one customer exactly as in a batch.

They differ in the details below, which moves the fitted parameters and every forecast a little (on CDNOW at
1998-01-01, 23,570 customers: x differs for 4 customers, t_x for 2, T by one day for everyone, m for 99%; the
two rank customers alike, correlation > 0.99):

=======  ==========================================  ============================================
         ``rfm_summary``                             ``rfm_from_features``
=======  ==========================================  ============================================
x        later days whose *net* amount is > 0        days with a purchase line, less one
T        birth day to the start of the last          first transaction to the cutoff instant
         observed day (whole days)                   (``tenure_days``)
t_x      birth day to the last repeat purchase day   T - ``recency_days``
m        mean net amount of the *repeat* purchase    net amount of *all* lines (the first day and
         days                                        refunds included) per purchase day
=======  ==========================================  ============================================

Unifying them would change either the baseline (checked against the published CDNOW fit and lifetimes) or
every model figure, so both stay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Builder columns the classic forecast reads: purchase days, recency, age and net spend.
RFM_INPUTS = ["purchase_days", "recency_days", "tenure_days", "monetary_total"]


def rfm_summary(
    transactions: pd.DataFrame, cutoff: pd.Timestamp | str, time_unit_days: float = 1.0
) -> pd.DataFrame:
    """Per-customer recency/frequency/monetary summary from the rows with ``timestamp < cutoff``.

    Transactions are first netted per customer and calendar day (UTC), the "customer-day purchase"
    convention of BTYD models. A customer's *birth* is their first transaction day of any amount (so
    every customer with history before the cutoff has a row). A *repeat purchase* is a later day with
    positive net amount; days netting to zero or below (refunds, free items) do not count, matching
    the churn definition "no order with amount > 0".

    All times live on the day grid, as in lifetimes and Fader-Hardie-Lee: ``T`` runs from the birth
    day to the *last observed day* (the day holding the last instant before the cutoff), so a purchase
    on that day has recency == T. With cutoff 1997-10-01 this gives T = 38.86 weeks for a 1997-01-01
    birth, the published CDNOW summary.

    Columns, indexed by ``customer_id`` (sorted):
    ``frequency`` number of repeat purchase days; ``recency`` birth to last repeat purchase day (0 when
    frequency is 0); ``T`` birth to last observed day; ``monetary_value`` mean net amount of the
    repeat purchase days (0 when frequency is 0). Durations are in units of ``time_unit_days`` days.
    """
    cutoff = pd.Timestamp(cutoff)
    before = (transactions["timestamp"] < cutoff).to_numpy()
    # The three columns of the rows before the cutoff, grouped as they are: no copy of the log's other columns.
    day = transactions["timestamp"][before].dt.floor("D").rename("day")
    by_day = [transactions["customer_id"][before], day]
    days = transactions["amount"][before].groupby(by_day, sort=True).sum().reset_index()
    birth = days.groupby("customer_id", sort=True)["day"].min()
    is_repeat = (days["day"] > days["customer_id"].map(birth)) & (days["amount"] > 0)
    repeats = days.loc[is_repeat].groupby("customer_id")
    unit = pd.Timedelta(days=time_unit_days)
    last_observed_day = (cutoff - pd.Timedelta(1, "ns")).floor("D")
    last = repeats["day"].max().reindex(birth.index).fillna(birth)
    summary = pd.DataFrame(
        {
            "frequency": repeats.size().reindex(birth.index, fill_value=0).astype(np.float64),
            "recency": (last - birth) / unit,
            "T": (last_observed_day - birth) / unit,
            "monetary_value": repeats["amount"].mean().reindex(birth.index, fill_value=0.0),
        }
    )
    summary.index.name = "customer_id"
    return summary


def rfm_from_features(rfm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD and Gamma-Gamma inputs from the builder's :data:`RFM_INPUTS` (columns of ``rfm``): repeat
    purchase days x, time of last purchase t_x, age T (days) and net spend per purchase day m."""
    days, recency, tenure, total = rfm.T
    x = np.maximum(days - 1.0, 0.0)
    t_x = np.where(x > 0, np.maximum(tenure - recency, 0.0), 0.0)
    m = np.where(days > 0, total / np.maximum(days, 1.0), 0.0)
    return x, t_x, tenure, np.maximum(m, 0.0)
