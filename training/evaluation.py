"""Holdout evaluation against the baselines teams use today, and the charts an analyst reads.

Baselines, each predicting the same window from data before its cutoff:

* ``bgnbd_gamma_gamma``: BG/NBD x Gamma-Gamma fitted on the transactions before the window
  (:class:`tiercast.training.classic.clv.ClassicCLV`), for value and churn;
* ``past_spend``: each customer's net spend over the last horizon-length period, repeated (value only);
* ``recency_rule``: the mean value and churn rate of training-window customers with the same recency
  score (1-5), a rule of thumb calibrated on the training windows.

Charts are written as PNG files: the gain chart (share of actual value captured by the top x% of customers
by prediction) and the calibration chart (churn reliability and value by decile of prediction).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tiercast.training import metrics  # noqa: E402
from tiercast.training.classic.clv import ClassicCLV  # noqa: E402
from tiercast.training.classic.rfm import rfm_summary  # noqa: E402

MODEL = "tiercast"
REFERENCE = "bgnbd_gamma_gamma"  # the classic method every comparison and the quality card measure against
BASELINES = (REFERENCE, "past_spend", "recency_rule")
# Columns of the comparison table, in order; churn columns are NaN for value-only baselines.
COMPARISON_COLUMNS = ["value_gini", "value_spearman", "value_top20_capture", "value_decile_error",
                      "value_total_ratio", "value_mae", "churn_auc", "churn_pr_auc", "churn_brier"]


def past_spend(transactions: pd.DataFrame, cutoff: pd.Timestamp, days: int, customers: pd.Index) -> pd.Series:
    """Net amount per customer in ``[cutoff - days, cutoff)`` (0 without lines there)."""
    ts = transactions["timestamp"]
    inside = ((ts >= cutoff - pd.Timedelta(days=days)) & (ts < cutoff)).to_numpy()
    spend = transactions["amount"][inside].groupby(transactions["customer_id"][inside], sort=False).sum()
    return spend.reindex(customers, fill_value=0.0).astype(np.float64)


def baseline_inputs(transactions: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """What the baselines read of the transactions before ``cutoff``, one row per customer with history there
    (index customer_id, sorted): the :func:`~tiercast.training.classic.rfm.rfm_summary` columns and
    ``past_spend``. A row reads its customer's transactions only, so the rows of customer buckets, gathered
    in customer order, are those of the whole log."""
    inputs = rfm_summary(transactions, cutoff)
    inputs["past_spend"] = past_spend(transactions, cutoff, horizon_days, inputs.index)
    return inputs


def baseline_predictions(transactions: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int,
                         frame: pd.DataFrame, training: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each baseline's ``predicted_value`` and ``churn_probability`` for the customers of ``frame``.

    ``frame`` holds the customers to predict (index customer_id, with ``r_score``); ``training`` the
    training-window rows (``r_score``, ``value``, ``churned``) the recency rule is calibrated on. Only
    transactions before ``cutoff`` are read.
    """
    return baselines_from(baseline_inputs(transactions, cutoff, horizon_days), cutoff, horizon_days, frame, training)


def baselines_from(inputs: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int, frame: pd.DataFrame,
                   training: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`baseline_predictions` from the :func:`baseline_inputs` of every customer with history before
    ``cutoff``: BG/NBD and Gamma-Gamma are fitted on all of them."""
    classic = ClassicCLV().fit_summary(inputs, cutoff).predict_summary(inputs, cutoff, horizon_days)
    classic = classic.set_index("customer_id")
    rule = training.groupby("r_score")[["value", "churned"]].mean()
    by_score = rule.reindex(frame["r_score"].to_numpy())
    overall = training[["value", "churned"]].mean()
    return {
        REFERENCE: pd.DataFrame({
            "predicted_value": classic["expected_value"].reindex(frame.index).to_numpy(),
            "churn_probability": classic["churn_probability"].reindex(frame.index).to_numpy()}, index=frame.index),
        "past_spend": pd.DataFrame({
            "predicted_value": inputs["past_spend"].reindex(frame.index, fill_value=0.0).to_numpy(),
            "churn_probability": np.nan}, index=frame.index),
        "recency_rule": pd.DataFrame({
            "predicted_value": by_score["value"].fillna(overall["value"]).to_numpy(),
            "churn_probability": by_score["churned"].fillna(overall["churned"]).to_numpy(dtype=np.float64)},
            index=frame.index),
    }


def scores(actual_value: np.ndarray, churned: np.ndarray, predicted_value: np.ndarray,
           churn_probability: np.ndarray) -> dict[str, float]:
    """Value and churn metrics under the comparison table's names (churn NaN without probabilities)."""
    value = metrics.value_report(actual_value, predicted_value)
    out = {f"value_{k}": float(v) for k, v in value.items()}
    churn_probability = np.asarray(churn_probability, dtype=np.float64)
    if np.isfinite(churn_probability).all():
        out.update({f"churn_{k}": float(v) for k, v in
                    metrics.churn_report(np.asarray(churned, dtype=int), churn_probability).items()})
    return {c: out.get(c, float("nan")) for c in COMPARISON_COLUMNS}


def comparison(actual: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per model (``predicted_value``, ``churn_probability`` frames aligned with ``actual``'s
    ``value`` and ``churned``), :data:`COMPARISON_COLUMNS` as columns."""
    rows = {name: scores(actual["value"].to_numpy(), actual["churned"].to_numpy(),
                         p["predicted_value"].to_numpy(), p["churn_probability"].to_numpy())
            for name, p in predictions.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")[COMPARISON_COLUMNS]
    table.index.name = "model"
    return table


def compare_at(transactions: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int, scored: pd.DataFrame,
               features: pd.DataFrame, rule_rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare` of ``scored`` given every customer's ``features`` at the cutoff and the transactions."""
    scored = scored.assign(r_score=features.loc[scored.index, "r_score"])
    return compare(scored, baseline_inputs(transactions, cutoff, horizon_days), cutoff, horizon_days, rule_rows)


def compare(scored: pd.DataFrame, inputs: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int,
            rule_rows: pd.DataFrame) -> pd.DataFrame:
    """The comparison table of a backtest: ``scored`` (index customer_id; ``value``, ``churned``,
    ``predicted_value``, ``churn_probability`` and the ``r_score`` at the cutoff) against the baselines fitted
    before ``cutoff`` on ``inputs`` (the :func:`baseline_inputs` of every customer with history before it).
    ``rule_rows`` holds the labelled rows the recency rule is calibrated on."""
    predictions = {MODEL: scored[["predicted_value", "churn_probability"]]}
    predictions.update(baselines_from(inputs, cutoff, horizon_days, scored, rule_rows))
    return comparison(scored, predictions)


def comparison_markdown(table: pd.DataFrame, reference: str = REFERENCE) -> str:
    """The comparison as a Markdown table; lower is better for decile error, MAE and Brier, and
    total ratio is best at 1."""
    lines = ["| model | " + " | ".join(table.columns) + " |", "| --- |" + " ---: |" * len(table.columns)]
    for name, row in table.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.3f}" for v in row]
        label = f"{name} (reference)" if name == reference else str(name)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gain_curve(actual_value: np.ndarray, predicted_value: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Share of total actual value held by the top x share of customers by prediction (x on a grid)."""
    actual = np.asarray(actual_value, dtype=np.float64)
    ranked = actual[np.argsort(-np.asarray(predicted_value, dtype=np.float64), kind="stable")]
    cumulative = np.concatenate([[0.0], np.cumsum(ranked)]) / actual.sum()
    share = np.linspace(0.0, 1.0, points)
    return pd.DataFrame({"customer_share": share,
                         "value_share": cumulative[np.round(share * len(actual)).astype(int)]})


def gain_chart(actual_value: np.ndarray, predictions: dict[str, np.ndarray], path: Path | str,
               title: str = "Gain chart") -> Path:
    """PNG: value captured against customers targeted, each model against random and perfect order."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, predicted in {"perfect order": actual_value, **predictions}.items():
        curve = gain_curve(actual_value, predicted)
        style = {"color": "grey", "linestyle": ":"} if name == "perfect order" else {}
        ax.plot(curve["customer_share"], curve["value_share"], label=name, **style)
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="random")
    ax.axvline(0.2, color="lightgrey", linewidth=0.8)
    ax.set(xlabel="share of customers, by predicted value", ylabel="share of actual value", title=title,
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def calibration_chart(actual: pd.DataFrame, predictions: dict[str, pd.DataFrame], path: Path | str,
                      title: str = "Calibration") -> Path:
    """PNG: left, churn reliability (observed rate by predicted probability); right, mean actual against
    mean predicted value by decile of prediction (log scale)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    churned = actual["churned"].to_numpy(dtype=int)
    value = actual["value"].to_numpy(dtype=np.float64)
    deciles = {name: metrics.decile_table(value, p["predicted_value"].to_numpy(dtype=np.float64))
               for name, p in predictions.items()}
    means = np.concatenate([t[["mean_predicted", "mean_actual"]].to_numpy().ravel() for t in deciles.values()])
    positive = means[means > 0]
    low, high = (positive.min() / 2, positive.max() * 2) if len(positive) else (1e-2, 1.0)
    for name, p in predictions.items():
        probability = p["churn_probability"].to_numpy(dtype=np.float64)
        if np.isfinite(probability).all():
            table = metrics.calibration_curve_table(churned, probability)
            left.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
        right.plot(deciles[name]["mean_predicted"].clip(lower=low), deciles[name]["mean_actual"].clip(lower=low),
                   marker="o", label=name)
    left.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8, label="perfect")
    left.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Churn reliability",
             xlim=(0, 1), ylim=(0, 1))
    right.plot([low, high], [low, high], color="black", linestyle="--", linewidth=0.8, label="perfect")
    right.set(xscale="log", yscale="log", xlabel="mean predicted value (decile; zero and below at the edge)",
              ylabel="mean actual value", title="Value by decile of prediction", xlim=(low, high), ylim=(low, high))
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path | str) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
