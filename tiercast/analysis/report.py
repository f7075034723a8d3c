"""The tier report: one HTML page with PNG charts, from a scored file (and optionally the one before it).

Sections: tier sizes and their share of predicted value, with the 80/20 curve of value concentration; the
tier migration matrix against a previous scoring; segment profiles; the lifecycle mix of each tier;
membership levels; and, for backtest files that carry ``actual_value``, the holdout check (mean actual
value per tier, which should fall in the policy's order). Tables are computed by small functions that the
tests check directly; charts are drawn with matplotlib's object API on the Agg canvas (no global pyplot
state), and tier names in any script are drawn with whichever CJK font the machine has.
"""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tiercast.analysis.history import CycleHistory, history_section
from tiercast.training.policy import TierPolicy

log = logging.getLogger(__name__)

REPORT_REQUIRED = ("customer_id", "predicted_value", "tier")
NOT_BEFORE = "(not scored before)"
NOT_NOW = "(not scored now)"
# Fonts with Chinese, Japanese and Korean glyphs, tried after DejaVu Sans for characters it lacks.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC")


# ------------------------------------------------------------------------------------------------ tables
def ordered(present: Sequence[str], preferred: Sequence[str], keep_all_preferred: bool = False) -> list[str]:
    """``preferred`` names first in their order (all of them, or those present), then the others sorted."""
    present = [str(p) for p in present]
    head = [p for p in preferred if keep_all_preferred or p in present]
    return head + sorted(set(present) - set(head))


def tier_summary(scores: pd.DataFrame, policy: TierPolicy) -> pd.DataFrame:
    """Per tier (every tier of the policy, empty ones too): customers, predicted value, their shares, mean
    churn probability and the action."""
    tiers = ordered(scores["tier"].unique(), policy.tier_names, keep_all_preferred=True)
    value = scores["predicted_value"].astype(float)
    grouped = scores.assign(predicted_value=value).groupby("tier")
    table = pd.DataFrame({"customers": grouped.size(), "predicted_value": grouped["predicted_value"].sum()})
    if "churn_probability" in scores:
        table["mean_churn_probability"] = grouped["churn_probability"].mean()
    table = table.reindex(tiers)
    table[["customers", "predicted_value"]] = table[["customers", "predicted_value"]].fillna(0)
    table["customers"] = table["customers"].astype(int)
    table.insert(1, "share_of_customers", table["customers"] / max(len(scores), 1))
    total = value.sum()
    table.insert(3, "share_of_value", table["predicted_value"] / total if total else np.nan)
    table["action"] = [policy.actions.get(t, "") for t in tiers]
    table.index.name = "tier"
    return table


def value_curve(predicted_value: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The 80/20 curve: share of customers (most valuable first) against their share of predicted value.

    Both start at 0 and end at 1; negative predictions count as 0."""
    values = np.sort(np.clip(predicted_value.to_numpy(dtype=float), 0, None))[::-1]
    total = values.sum()
    x = np.arange(len(values) + 1) / max(len(values), 1)
    y = np.concatenate([[0.0], np.cumsum(values) / total]) if total > 0 else x.copy()
    return x, y


def value_share_of_top(predicted_value: pd.Series, share: float = 0.2) -> float:
    """Share of the predicted value held by the top ``share`` of customers (interpolated on the curve)."""
    x, y = value_curve(predicted_value)
    return float(np.interp(share, x, y))


def migration_matrix(previous: pd.DataFrame, current: pd.DataFrame, policy: TierPolicy) -> pd.DataFrame:
    """Customers by previous tier (rows) and current tier (columns), joined on customer_id; customers in only
    one of the scorings are counted in the ``(not scored before)`` row or the ``(not scored now)`` column."""
    joined = pd.merge(previous[["customer_id", "tier"]], current[["customer_id", "tier"]], on="customer_id",
                      how="outer", suffixes=("_before", "_now"))
    before = joined["tier_before"].astype(object).where(joined["tier_before"].notna(), NOT_BEFORE)
    now = joined["tier_now"].astype(object).where(joined["tier_now"].notna(), NOT_NOW)
    rows = ordered(before[before != NOT_BEFORE].unique(), policy.tier_names) + (
        [NOT_BEFORE] if (before == NOT_BEFORE).any() else [])
    cols = ordered(now[now != NOT_NOW].unique(), policy.tier_names) + ([NOT_NOW] if (now == NOT_NOW).any() else [])
    matrix = pd.crosstab(before, now).reindex(index=rows, columns=cols, fill_value=0)
    matrix.index.name, matrix.columns.name = "tier before", "tier now"
    return matrix


def segment_profiles(scores: pd.DataFrame) -> pd.DataFrame:
    """Per segment, largest first: customers, their share, mean predicted value and churn probability, share of
    predicted value (and mean actual value for backtest files)."""
    frame = scores.assign(predicted_value=scores["predicted_value"].astype(float))
    grouped = frame.groupby("segment")
    table = pd.DataFrame({"customers": grouped.size()})
    table["share_of_customers"] = table["customers"] / len(frame)
    table["mean_predicted_value"] = grouped["predicted_value"].mean()
    total = frame["predicted_value"].sum()
    table["share_of_value"] = grouped["predicted_value"].sum() / total if total else np.nan
    for column in ("churn_probability", "trailing_spend", "actual_value"):
        if column in frame:
            table[f"mean_{column}"] = grouped[column].mean()
    return table.sort_values("customers", ascending=False, kind="stable")


def crosstab_by_tier(scores: pd.DataFrame, column: str, policy: TierPolicy,
                     column_order: Sequence[str] = ()) -> pd.DataFrame:
    """Customers by tier (rows, policy order) and the values of ``column`` (e.g. lifecycle stage)."""
    table = pd.crosstab(scores["tier"], scores[column])
    return table.reindex(index=ordered(table.index, policy.tier_names),
                         columns=ordered(table.columns, column_order), fill_value=0)


def holdout_check(scores: pd.DataFrame, policy: TierPolicy) -> tuple[pd.DataFrame, dict[str, bool]]:
    """Mean actual value per tier (policy order), overall and per source, and for each whether it falls
    tier by tier across the value tiers present."""
    frame = scores.assign(actual_value=scores["actual_value"].astype(float))
    groups = {"all": frame}
    if "source" in frame:
        groups.update({str(s): part for s, part in frame.groupby("source")})
    tiers = ordered(frame["tier"].unique(), policy.tier_names)
    table = pd.DataFrame({name: part.groupby("tier")["actual_value"].mean() for name, part in groups.items()})
    table = table.reindex(tiers)
    counts = pd.DataFrame({f"customers ({name})": part.groupby("tier").size() for name, part in groups.items()})
    falls = {}
    for name in groups:
        means = table.loc[[t for t in policy.tier_order if t in table.index], name].dropna()
        falls[name] = bool((np.diff(means.to_numpy()) < 0).all())
    table = table.add_prefix("mean actual value (").rename(columns=lambda c: c + ")")
    return table.join(counts.reindex(tiers).fillna(0).astype(int)), falls


# ------------------------------------------------------------------------------------------------ charts
def _font_families() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans"] + [name for name in CJK_FONTS if name in installed]


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})


def _tier_chart(summary: pd.DataFrame, path: Path) -> None:
    figure = Figure(figsize=(8, 0.5 * len(summary) + 1.6))
    ax = figure.add_subplot()
    y = np.arange(len(summary))
    ax.barh(y - 0.2, summary["share_of_customers"], height=0.4, label="share of customers", color="#9db4d0")
    ax.barh(y + 0.2, summary["share_of_value"].fillna(0), height=0.4, label="share of predicted value",
            color="#2b5d8c")
    ax.set_yticks(y, summary.index)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_title("Tier sizes and their share of predicted value")
    ax.legend(loc="lower right")
    _save(figure, path)


def _curve_chart(predicted_value: pd.Series, path: Path) -> None:
    x, y = value_curve(predicted_value)
    top = value_share_of_top(predicted_value)
    figure = Figure(figsize=(6, 4.5))
    ax = figure.add_subplot()
    ax.plot(x, y, color="#2b5d8c", label="customers, most valuable first")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="equal shares")
    ax.axvline(0.2, color="#c05030", linestyle="--", linewidth=1)
    ax.annotate(f"top 20% hold {top:.0%}", (0.2, top), xytext=(0.3, max(top - 0.25, 0.05)),
                arrowprops={"arrowstyle": "->"})
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("share of customers")
    ax.set_ylabel("share of predicted value")
    ax.set_title("Concentration of predicted value (80/20 curve)")
    ax.legend(loc="lower right")
    _save(figure, path)


def _migration_chart(matrix: pd.DataFrame, path: Path) -> None:
    shares = matrix.div(matrix.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
    figure = Figure(figsize=(1.1 * len(matrix.columns) + 2.5, 0.6 * len(matrix) + 2))
    ax = figure.add_subplot()
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, f"{count:,}", ha="center", va="center", color="white" if shares.iat[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    ax.set_xlabel("tier now")
    ax.set_ylabel("tier before")
    ax.set_title("Tier migration (colour: share of the row)")
    _save(figure, path)


def _segment_chart(profiles: pd.DataFrame, path: Path) -> None:
    figure = Figure(figsize=(10, 0.45 * len(profiles) + 1.6))
    left, right = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(profiles))
    left.barh(y, profiles["customers"], color="#9db4d0")
    left.set_yticks(y, profiles.index)
    left.invert_yaxis()
    left.set_title("customers")
    right.barh(y, profiles["mean_predicted_value"], color="#2b5d8c")
    right.set_title("mean predicted value")
    figure.suptitle("Segment profiles")
    _save(figure, path)


def _stacked_chart(table: pd.DataFrame, title: str, path: Path) -> None:
    shares = table.div(table.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
    figure = Figure(figsize=(8, 0.5 * len(shares) + 1.8))
    ax = figure.add_subplot()
    left = np.zeros(len(shares))
    colours = ["#2b5d8c", "#6f9bc4", "#e0a040", "#c05030", "#888888", "#4a9a6a", "#9467bd"]
    for k, column in enumerate(shares.columns):
        ax.barh(shares.index, shares[column], left=left, label=str(column), color=colours[k % len(colours)])
        left += shares[column].to_numpy()
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(len(shares.columns), 5), frameon=False)
    _save(figure, path)


# -------------------------------------------------------------------------------------------------- page
def _table(frame: pd.DataFrame, percent: Sequence[str] = (), money: Sequence[str] = (),
           ratio: Sequence[str] = ()) -> str:
    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        if column in percent:
            shown[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
        elif column in money:
            shown[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
        elif column in ratio:
            shown[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        elif pd.api.types.is_integer_dtype(values):
            shown[column] = values.map(lambda v: f"{v:,}")
    shown.columns = [str(c).replace("_", " ") for c in shown.columns]
    return shown.to_html(escape=True, border=0, classes="t", na_rep="")


_STYLE = """body{font-family:system-ui,'DejaVu Sans','Noto Sans CJK SC',sans-serif;margin:2em auto;max-width:70em;
color:#222}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table.t{border-collapse:collapse;font-size:.9em}table.t td,table.t th{padding:.25em .7em;text-align:right}
table.t th{background:#eef2f7}table.t tr:nth-child(even) td{background:#f8f9fb}img{max-width:100%}
.note{color:#555}"""


def write_report(scores: pd.DataFrame, out_dir: Path | str, policy: TierPolicy,
                 previous: pd.DataFrame | None = None, source: str = "", previous_source: str = "",
                 quality_card: dict[str, Any] | None = None, card_source: str = "",
                 history: CycleHistory | None = None) -> Path:
    """Write ``index.html`` and its PNG charts into ``out_dir``; returns the page's path.

    ``scores`` (and ``previous``) are scored tables with at least :data:`REPORT_REQUIRED`; ``source`` and
    ``previous_source`` name where they came from on the page. ``quality_card`` (tiercast.training.quality_card)
    tells readers how good the models are, ``card_source`` which models it describes or why it is absent.
    ``history`` (:func:`tiercast.analysis.history.cycle_history`) adds the runs of a cycle directory."""
    missing = [c for c in REPORT_REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    as_of = ", ".join(sorted(map(str, scores["as_of"].unique()))) if "as_of" in scores else "unknown"
    summary = tier_summary(scores, policy)
    top = value_share_of_top(scores["predicted_value"])
    parts = [f"<h1>Customer tiers at {esc(as_of)}</h1>",
             f"<p class=note>{len(scores):,} customers from {esc(source or 'the scored file')}; predicted value "
             f"{scores['predicted_value'].astype(float).sum():,.2f} in total; the top 20% of customers hold "
             f"{top:.1%} of it.</p>"]
    if "source" in scores:
        counts = scores["source"].value_counts()
        parts.append("<p class=note>Predicted by: " + ", ".join(f"{esc(str(k))} {v:,}" for k, v in counts.items())
                     + "</p>")
    parts.append("<h2>Model quality</h2>")
    if quality_card:
        parts += [f"<p><b>Grade {esc(str(quality_card['grade']))}</b> <span class=note>({esc(card_source)})</span></p>",
                  "<ul>" + "".join(f"<li>{esc(str(line))}</li>" for line in quality_card["summary"]) + "</ul>"]
    else:
        parts.append(f"<p class=note>No model-quality card: {esc(card_source or 'none given')}.</p>")
    with rc_context({"font.family": _font_families()}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        _tier_chart(summary, out / "tiers.png")
        _curve_chart(scores["predicted_value"], out / "value_curve.png")
        parts += ["<h2>Tiers</h2>",
                  _table(summary, percent=("share_of_customers", "share_of_value"), money=("predicted_value",),
                         ratio=("mean_churn_probability",)),
                  '<p><img src="tiers.png" alt="tier sizes and share of predicted value"> '
                  '<img src="value_curve.png" alt="80/20 curve of predicted value"></p>']

        parts.append("<h2>Tier migration</h2>")
        if previous is None:
            parts.append("<p class=note>No previous scoring given (tiercast report --previous PATH).</p>")
        else:
            matrix = migration_matrix(previous, scores, policy)
            both = matrix.drop(index=NOT_BEFORE, columns=NOT_NOW, errors="ignore")
            common = [t for t in both.index if t in both.columns]
            stayed = sum(int(both.at[t, t]) for t in common)
            _migration_chart(matrix, out / "migration.png")
            parts += [f"<p class=note>Against {esc(previous_source or 'the previous scoring')}: "
                      f"{int(both.to_numpy().sum()):,} customers scored both times, {stayed:,} of them "
                      f"({stayed / max(int(both.to_numpy().sum()), 1):.1%}) in the same tier.</p>",
                      _table(matrix), '<p><img src="migration.png" alt="tier migration matrix"></p>']

        if "segment" in scores:
            profiles = segment_profiles(scores)
            _segment_chart(profiles, out / "segments.png")
            parts += ["<h2>Segment profiles</h2>",
                      _table(profiles, percent=("share_of_customers", "share_of_value"),
                             money=("mean_predicted_value", "mean_trailing_spend", "mean_actual_value"),
                             ratio=("mean_churn_probability",)),
                      '<p><img src="segments.png" alt="segment profiles"></p>']
        if "lifecycle_stage" in scores:
            mix = crosstab_by_tier(scores, "lifecycle_stage", policy, ("new", "active", "dormant", "lost"))
            _stacked_chart(mix, "Lifecycle mix of each tier", out / "lifecycle.png")
            overall = mix.sum().to_frame("customers").T
            parts += ["<h2>Lifecycle mix</h2>", _table(pd.concat([mix, overall.rename(index={"customers": "all"})])),
                      '<p><img src="lifecycle.png" alt="lifecycle mix of each tier"></p>']
        if "membership" in scores:
            levels = crosstab_by_tier(scores, "membership", policy, policy.membership.level_order)
            _stacked_chart(levels, "Membership levels in each tier", out / "membership.png")
            parts += ["<h2>Membership levels</h2>",
                      f"<p class=note>By net spend over the trailing {policy.membership.window_days} days.</p>",
                      _table(levels), '<p><img src="membership.png" alt="membership levels in each tier"></p>']
        if history is not None:
            parts.append(history_section(history, out, _table))
    if "actual_value" in scores:
        check, falls = holdout_check(scores, policy)
        verdict = "; ".join(f"{esc(k)}: {'falls tier by tier' if v else 'does NOT fall tier by tier'}"
                            for k, v in falls.items())
        parts += ["<h2>Holdout check</h2>",
                  f"<p class=note>Mean actual next-period value per tier, in the policy's order ({verdict}).</p>",
                  _table(check, money=[c for c in check.columns if c.startswith("mean")])]
    page = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tiercast report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
