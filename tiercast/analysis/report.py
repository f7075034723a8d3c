"""The tier report: one HTML page with PNG charts, from a scored file (and optionally the one before it).

Sections: tier sizes and their share of predicted value, with the 80/20 curve of value concentration; the
tier migration matrix against a previous scoring; segment profiles; the lifecycle mix of each tier;
membership levels; and, for backtest files that carry ``actual_value``, the holdout check (mean actual
value per tier, which should fall in the policy's order). Tables are computed by small functions that the
tests check directly; charts are drawn with matplotlib's object API on the Agg canvas (no global pyplot
state). Every word is in the configured language (:mod:`tiercast.serving.i18n`); Chinese is drawn with the
bundled font (:mod:`tiercast.analysis.report_fonts`), so a missing glyph is a bug to see, not a warning to hide.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tiercast.analysis.report_fonts import CSS_FONT_STACK, chart_font_families, css_font_face
from tiercast.analysis.history import CycleHistory, history_section
from tiercast.features.lifecycle import STAGES
from tiercast.serving.i18n import ENGLISH, Messages, card_lines, localised, messages
from tiercast.training.policy import TierPolicy

log = logging.getLogger(__name__)

REPORT_REQUIRED = ("customer_id", "predicted_value", "tier")
NOT_BEFORE = "(not scored before)"
NOT_NOW = "(not scored now)"
# Columns whose codes the report shows as labels in its language, when the scored file has the codes.
LABELLED = {"segment": ("segment_code", "segment"), "lifecycle_stage": ("lifecycle_stage_code", "stage"),
            "churn_risk_band": ("churn_risk_band_code", "band")}


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


def holdout_check(scores: pd.DataFrame, policy: TierPolicy, m: Messages = ENGLISH
                  ) -> tuple[pd.DataFrame, dict[str, bool]]:
    """Mean actual value per tier (policy order), overall and per source, and for each whether it falls
    tier by tier across the value tiers present (the groups and columns named in ``m``'s language)."""
    frame = scores.assign(actual_value=scores["actual_value"].astype(float))
    groups = {m["report.all"]: frame}
    if "source" in frame:
        groups.update({m.source(str(s)): part for s, part in frame.groupby("source")})
    tiers = ordered(frame["tier"].unique(), policy.tier_names)
    table = pd.DataFrame({name: part.groupby("tier")["actual_value"].mean() for name, part in groups.items()})
    table = table.reindex(tiers)
    counts = pd.DataFrame({m.text("column.customers_of", group=name): part.groupby("tier").size()
                           for name, part in groups.items()})
    falls = {}
    for name in groups:
        means = table.loc[[t for t in policy.tier_order if t in table.index], name].dropna()
        falls[name] = bool((np.diff(means.to_numpy()) < 0).all())
    table = table.rename(columns=lambda name: m.text("column.mean_actual_value_of", group=name))
    return table.join(counts.reindex(tiers).fillna(0).astype(int)), falls


# ------------------------------------------------------------------------------------------------ charts
def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})


def _tier_chart(summary: pd.DataFrame, path: Path, m: Messages) -> None:
    figure = Figure(figsize=(8, 0.5 * len(summary) + 1.6))
    ax = figure.add_subplot()
    y = np.arange(len(summary))
    ax.barh(y - 0.2, summary["share_of_customers"], height=0.4, label=m["chart.share_of_customers"],
            color="#9db4d0")
    ax.barh(y + 0.2, summary["share_of_value"].fillna(0), height=0.4, label=m["chart.share_of_predicted_value"],
            color="#2b5d8c")
    ax.set_yticks(y, summary.index)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_title(m["chart.tiers_title"])
    ax.legend(loc="lower right")
    _save(figure, path)


def _curve_chart(predicted_value: pd.Series, path: Path, m: Messages) -> None:
    x, y = value_curve(predicted_value)
    top = value_share_of_top(predicted_value)
    figure = Figure(figsize=(6, 4.5))
    ax = figure.add_subplot()
    ax.plot(x, y, color="#2b5d8c", label=m["chart.most_valuable_first"])
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label=m["chart.equal_shares"])
    ax.axvline(0.2, color="#c05030", linestyle="--", linewidth=1)
    ax.annotate(m.text("chart.top_hold", share=f"{top:.0%}"), (0.2, top), xytext=(0.3, max(top - 0.25, 0.05)),
                arrowprops={"arrowstyle": "->"})
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel(m["chart.share_of_customers"])
    ax.set_ylabel(m["chart.share_of_predicted_value"])
    ax.set_title(m["chart.curve_title"])
    ax.legend(loc="lower right")
    _save(figure, path)


def _migration_chart(matrix: pd.DataFrame, path: Path, m: Messages) -> None:
    shares = matrix.div(matrix.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
    figure = Figure(figsize=(1.1 * len(matrix.columns) + 2.5, 0.6 * len(matrix) + 2))
    ax = figure.add_subplot()
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, f"{count:,}", ha="center", va="center", color="white" if shares.iat[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    ax.set_xlabel(m["chart.tier_now"])
    ax.set_ylabel(m["chart.tier_before"])
    ax.set_title(m["chart.migration_title"])
    _save(figure, path)


def _segment_chart(profiles: pd.DataFrame, path: Path, m: Messages) -> None:
    figure = Figure(figsize=(10, 0.45 * len(profiles) + 1.6))
    left, right = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(profiles))
    left.barh(y, profiles["customers"], color="#9db4d0")
    left.set_yticks(y, profiles.index)
    left.invert_yaxis()
    left.set_title(m["chart.customers"])
    right.barh(y, profiles["mean_predicted_value"], color="#2b5d8c")
    right.set_title(m["chart.mean_predicted_value"])
    figure.suptitle(m["chart.segments_title"])
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
def _header(name: object, m: Messages) -> object:
    """A column or index name as a table header in ``m``'s language (names without a catalogue entry: as
    written, with spaces for underscores)."""
    if name is None:
        return None
    return m.table.get(f"column.{str(name).replace(' ', '_')}", str(name).replace("_", " "))


def _table(frame: pd.DataFrame, percent: Sequence[str] = (), money: Sequence[str] = (),
           ratio: Sequence[str] = (), m: Messages = ENGLISH) -> str:
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
    shown.columns = [_header(c, m) for c in shown.columns]
    shown.index.name = _header(shown.index.name, m)
    return shown.to_html(escape=True, border=0, classes="t", na_rep="")


_STYLE = """body{font-family:FONT_STACK;margin:2em auto;max-width:70em;
color:#222}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table.t{border-collapse:collapse;font-size:.9em}table.t td,table.t th{padding:.25em .7em;text-align:right}
table.t th{background:#eef2f7}table.t tr:nth-child(even) td{background:#f8f9fb}img{max-width:100%}
.note{color:#555}"""


def _labelled(scores: pd.DataFrame, m: Messages) -> pd.DataFrame:
    """``scores`` with the labels of :data:`LABELLED` in ``m``'s language, from their codes where the file has
    them (a file scored in another language reads in the report's)."""
    update = {column: m.labels(kind, scores[code].to_numpy(dtype=object))
              for column, (code, kind) in LABELLED.items() if code in scores and column in scores}
    return scores.assign(**update) if update else scores


def write_report(scores: pd.DataFrame, out_dir: Path | str, policy: TierPolicy,
                 previous: pd.DataFrame | None = None, source: str = "", previous_source: str = "",
                 quality_card: dict[str, Any] | None = None, card_source: str = "",
                 history: CycleHistory | None = None, language: str = "en") -> Path:
    """Write ``index.html`` and its PNG charts into ``out_dir``, in ``language``; returns the page's path.

    ``scores`` (and ``previous``) are scored tables with at least :data:`REPORT_REQUIRED`; ``source`` and
    ``previous_source`` name where they came from on the page. ``quality_card`` (tiercast.training.quality_card)
    tells readers how good the models are, ``card_source`` which models it describes or why it is absent.
    ``history`` (:func:`tiercast.analysis.history.cycle_history`) adds the runs of a cycle directory."""
    missing = [c for c in REPORT_REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}")
    m = messages(language)
    policy = localised(policy, m)
    scores = _labelled(scores, m)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    esc = html.escape

    def table(frame: pd.DataFrame, **formats: Sequence[str]) -> str:
        return _table(frame, m=m, **formats)

    as_of = (", ".join(sorted(map(str, scores["as_of"].unique()))) if "as_of" in scores
             else m["report.unknown_as_of"])
    summary = tier_summary(scores, policy)
    top = value_share_of_top(scores["predicted_value"])
    parts = [f"<h1>{esc(m.text('report.heading', as_of=as_of))}</h1>",
             "<p class=note>" + esc(m.text(
                 "report.overview", customers=f"{len(scores):,}", source=source or m["report.the_scored_file"],
                 total=f"{scores['predicted_value'].astype(float).sum():,.2f}", top=f"{top:.1%}")) + "</p>"]
    if "source" in scores:
        counts = scores["source"].value_counts()
        said = m.join([f"{m.source(str(k))} {v:,}" for k, v in counts.items()])
        parts.append(f"<p class=note>{esc(m.text('report.predicted_by', counts=said))}</p>")
    parts.append(f"<h2>{esc(m['report.model_quality'])}</h2>")
    if quality_card:
        parts += [f"<p><b>{esc(m.text('report.grade', grade=quality_card['grade']))}</b> "
                  f"<span class=note>({esc(card_source)})</span></p>",
                  "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in card_lines(quality_card, m)) + "</ul>"]
    else:
        parts.append(f"<p class=note>{esc(m.text('report.no_card', why=card_source or m['report.none_given']))}</p>")
    with rc_context({"font.family": chart_font_families()}):
        _tier_chart(summary, out / "tiers.png", m)
        _curve_chart(scores["predicted_value"], out / "value_curve.png", m)
        parts += [f"<h2>{esc(m['report.tiers'])}</h2>",
                  table(summary, percent=("share_of_customers", "share_of_value"), money=("predicted_value",),
                        ratio=("mean_churn_probability",)),
                  f'<p><img src="tiers.png" alt="{esc(m["report.tiers_alt"])}"> '
                  f'<img src="value_curve.png" alt="{esc(m["report.curve_alt"])}"></p>']

        parts.append(f"<h2>{esc(m['report.migration'])}</h2>")
        if previous is None:
            command = "<code>tiercast report --previous PATH</code>"
            parts.append(f"<p class=note>{esc(m['report.no_previous']).format(command=command)}</p>")
        else:
            matrix = migration_matrix(previous, scores, policy)
            both = matrix.drop(index=NOT_BEFORE, columns=NOT_NOW, errors="ignore")
            common = [t for t in both.index if t in both.columns]
            stayed = sum(int(both.at[t, t]) for t in common)
            total = int(both.to_numpy().sum())
            shown = matrix.rename(index={NOT_BEFORE: m["report.not_before"]}, columns={NOT_NOW: m["report.not_now"]})
            _migration_chart(shown, out / "migration.png", m)
            parts += ["<p class=note>" + esc(m.text(
                          "report.against", source=previous_source or m["report.the_previous_scoring"],
                          both=f"{total:,}", stayed=f"{stayed:,}", share=f"{stayed / max(total, 1):.1%}")) + "</p>",
                      table(shown), f'<p><img src="migration.png" alt="{esc(m["report.migration_alt"])}"></p>']

        if "segment" in scores:
            profiles = segment_profiles(scores)
            _segment_chart(profiles, out / "segments.png", m)
            parts += [f"<h2>{esc(m['report.segments'])}</h2>",
                      table(profiles, percent=("share_of_customers", "share_of_value"),
                            money=("mean_predicted_value", "mean_trailing_spend", "mean_actual_value"),
                            ratio=("mean_churn_probability",)),
                      f'<p><img src="segments.png" alt="{esc(m["report.segments_alt"])}"></p>']
        if "lifecycle_stage" in scores:
            mix = crosstab_by_tier(scores, "lifecycle_stage", policy, [m.stage(s) for s in STAGES])
            _stacked_chart(mix, m["chart.lifecycle_title"], out / "lifecycle.png")
            overall = mix.sum().to_frame("customers").T
            parts += [f"<h2>{esc(m['report.lifecycle'])}</h2>",
                      table(pd.concat([mix, overall.rename(index={"customers": m["report.all"]})])),
                      f'<p><img src="lifecycle.png" alt="{esc(m["report.lifecycle_alt"])}"></p>']
        if "membership" in scores:
            levels = crosstab_by_tier(scores, "membership", policy, policy.membership.level_order)
            _stacked_chart(levels, m["chart.membership_title"], out / "membership.png")
            parts += [f"<h2>{esc(m['report.membership'])}</h2>",
                      f"<p class=note>{esc(m.text('report.membership_note', days=policy.membership.window_days))}</p>",
                      table(levels), f'<p><img src="membership.png" alt="{esc(m["report.membership_alt"])}"></p>']
        if history is not None:
            parts.append(history_section(history, out, table, m=m))
    if "actual_value" in scores:
        check, falls = holdout_check(scores, policy, m)
        verdict = m["report.verdict_separator"].join(
            m.text("report.falls" if v else "report.does_not_fall", group=k) for k, v in falls.items())
        parts += [f"<h2>{esc(m['report.holdout'])}</h2>",
                  f"<p class=note>{esc(m.text('report.holdout_note', verdict=verdict))}</p>",
                  table(check, money=list(check.columns[:len(falls)]))]  # the means, then the customer counts
    body = "\n".join(parts)
    # Latin text needs no font of the page's own; CJK text (a Chinese page, or tier names in any) carries one.
    style = css_font_face(body + m["report.title"]) + _STYLE.replace("FONT_STACK", CSS_FONT_STACK.get(language, CSS_FONT_STACK["en"]))
    page = (f"<!doctype html>\n<html lang=\"{m.html_lang}\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(m['report.title'])}</title><style>{style}</style></head><body>\n"
            + body + "\n</body></html>\n")
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path

