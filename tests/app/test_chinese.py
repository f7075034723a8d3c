"""``language: zh`` end to end: ``backtest``, ``score``, ``report``, ``train``, ``simulate``, ``features``, ``plan``,
``evaluate-plan``, ``monitor`` and ``cycle`` with the shipped ``configs/zh.yaml`` write no English word a person
reads (scored labels and reasons, the report's text, the command line's summaries, monitor.json's verdict,
cycle.json's decisions, data errors),
while the code columns keep their codes for programs; the report's charts draw every Chinese character with
a font that has it, with no system CJK font; and a real headless browser renders the page as Chinese."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fontTools.ttLib import TTFont

from tiercast.analysis import report_fonts
from tiercast.analysis.report import write_report
from tiercast.cli import main
from tiercast.config import load_config
from tiercast.features.lifecycle import STAGES
from tiercast.features.loading import read_scores

ROOT = Path(__file__).resolve().parents[2]
ZH = ROOT / "configs" / "zh.yaml"
# What people read in a scored file; the others are ids, dates, numbers and codes (source is model/fallback
# by the contract; the *_code columns are for programs).
READ_COLUMNS = ("segment", "lifecycle_stage", "tier", "action", "fallback_reason", "reasons", "value_tier",
                "membership", "churn_risk_band")
CODES = {"lifecycle_stage_code": set(STAGES), "churn_risk_band_code": {"low", "medium", "high"},
         "source": {"model", "fallback"}}
CJK = range(0x3400, 0xA000)


class PageText(HTMLParser):
    """The text a reader sees on a page (and image descriptions), without styles and typed commands."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0
        self.lang: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag in ("style", "code"):
            self.hidden += 1
        if "alt" in attrs:
            self.parts.append(attrs["alt"])

    def handle_endtag(self, tag):
        if tag in ("style", "code"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def page_text(path: Path) -> PageText:
    parser = PageText()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def chinese_config(tmp_path_factory) -> Path:
    """configs/zh.yaml, with the rules scoring when there are no champion models and a quick training."""
    return zh_config(tmp_path_factory.mktemp("config"), fallback={"allow_in_batch": True},
                     training={"tuning": {"trials": 1}})


def zh_config(folder: Path, **settings) -> Path:
    """configs/zh.yaml with ``settings`` on top."""
    found = {**yaml.safe_load(ZH.read_text(encoding="utf-8")), **settings}
    path = folder / "zh.yaml"
    path.write_text(yaml.safe_dump(found, allow_unicode=True), encoding="utf-8")
    return path


def assert_chinese_scores(path: Path, english_words) -> pd.DataFrame:
    scores = read_scores(path)
    for column in READ_COLUMNS:
        said = scores[column].dropna().astype(str)
        found = sorted({w for text in said.unique() for w in english_words(text)})
        assert not found, (column, found, said[said.map(lambda t: bool(english_words(t)))].head(3).tolist())
    for column, codes in CODES.items():
        assert set(scores[column].unique()) <= codes, column
    assert scores["segment_code"].str.contains(r"[A-Za-z]").all()  # the namer's (English) names, for programs
    return scores


def test_backtest_score_and_report_in_chinese(tmp_path, store, chinese_config, small_cdnow, english_words, capsys):
    config = ["--config", str(chinese_config)]
    backtest = tmp_path / "backtest.csv"
    assert main([*config, "backtest", "--transactions", str(small_cdnow), "--cutoff", "1998-01-01",
                 "--horizon-days", "181", "--out", str(backtest)]) == 0
    said = capsys.readouterr()
    assert "回测" in said.out and not english_words(said.out), said.out
    assert not english_words(said.err), said.err
    modelled = assert_chinese_scores(backtest, english_words)
    assert (modelled["source"] == "model").mean() > 0.9
    assert modelled["reasons"].str.contains("提高价值|降低价值").all()

    scored = tmp_path / "scores.csv"  # no champion in this store: the rules answer, and say why in Chinese
    assert main([*config, "score", "--transactions", str(small_cdnow), "--as-of", "1998-07-01",
                 "--out", str(scored)]) == 0
    said = capsys.readouterr()
    assert "层级" in said.out and not english_words(said.out), said.out
    assert "警告" in said.err and not english_words(said.err), said.err
    ruled = assert_chinese_scores(scored, english_words)
    assert set(ruled["source"]) == {"fallback"} and ruled["fallback_reason"].eq("无法加载冠军模型").all()

    report = tmp_path / "report"
    assert main([*config, "report", "--scores", str(backtest), "--previous", str(scored), "--out", str(report)]) == 0
    said = capsys.readouterr()
    assert not english_words(said.out + said.err), said.out + said.err
    page = page_text(report / "index.html")
    text = "\n".join(page.parts)
    assert page.lang == "zh-CN" and "客户分级" in text and "验证期检验" in text and "高价值" in text
    assert not english_words(text), sorted(set(english_words(text)))


def test_english_stays_english(tmp_path, store, small_cdnow, english_words, capsys):
    config = tmp_path / "en.yaml"
    config.write_text(yaml.safe_dump({"fallback": {"allow_in_batch": True}}))
    scored = tmp_path / "scores.csv"
    assert main(["--config", str(config), "score", "--transactions", str(small_cdnow), "--as-of", "1998-07-01",
                 "--out", str(scored)]) == 0
    assert "Scored 4,000 customers" in capsys.readouterr().out
    scores = read_scores(scored)
    for label, code in (("segment", "segment_code"), ("lifecycle_stage", "lifecycle_stage_code"),
                        ("churn_risk_band", "churn_risk_band_code")):
        assert scores[label].equals(scores[code])  # in English a label is its code
    assert scores["reasons"].str.contains("RFM score").all()
    write_report(scores, tmp_path / "report", load_config().policy)
    assert page_text(tmp_path / "report" / "index.html").lang == "en"


def chinese_scores(n: int = 400) -> pd.DataFrame:
    """A scored table as configs/zh.yaml writes it, with every tier, stage, band and membership level."""
    policy = load_config(ZH).policy
    rng = np.random.default_rng(7)
    stages = rng.choice(list(STAGES), n)
    bands = rng.choice(["low", "medium", "high"], n)
    return pd.DataFrame({
        "customer_id": [f"{i:05d}" for i in range(n)], "as_of": "1998-07-01",
        "predicted_value": rng.gamma(1.0, 80.0, n), "churn_probability": rng.uniform(0, 1, n),
        "segment_code": rng.choice(["active loyal high spenders", "lapsing one-timers", "cooling occasional mid spenders",
                                    "At risk"], n), "segment": "",
        "lifecycle_stage_code": stages, "lifecycle_stage": stages, "churn_risk_band_code": bands,
        "churn_risk_band": bands, "tier": rng.choice(policy.tier_names, n),
        "membership": rng.choice(policy.membership.level_order, n), "source": rng.choice(["model", "fallback"], n),
        "actual_value": rng.gamma(1.0, 70.0, n)})


def test_the_charts_draw_every_chinese_character_with_a_font_that_has_it(tmp_path, monkeypatch):
    """No system CJK font (as on CI): only DejaVu Sans and the bundled font are in the charts' font list. A
    character neither has would make matplotlib warn that its glyph is missing: here that is an error."""
    monkeypatch.setattr(report_fonts, "SYSTEM_CJK_FONTS", ())
    assert report_fonts.chart_font_families() == ["DejaVu Sans", "Noto Sans SC"]
    scores = chinese_scores()
    previous = scores.assign(tier=scores["tier"].sample(frac=1.0, random_state=1).to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = write_report(scores, tmp_path, load_config(ZH).policy, previous, language="zh")
    charts = sorted(tmp_path.glob("*.png"))
    assert len(charts) == 6
    # Every Chinese character on the page (the charts show the same tier, stage, level and segment labels and
    # the catalogue's chart titles) is in the bundled font.
    covered = TTFont(report_fonts.CHINESE_FONT).getBestCmap()
    from tiercast.serving.i18n.zh import MESSAGES
    used = {ch for ch in page.read_text(encoding="utf-8") + "".join(MESSAGES.values()) if ord(ch) in CJK}
    assert len(used) > 200 and not sorted(ch for ch in used if ord(ch) not in covered)


def test_the_chinese_report_in_a_real_browser(tmp_path, headless_browser):
    from PIL import Image

    page = write_report(chinese_scores(), tmp_path, load_config(ZH).policy, language="zh")
    dom = headless_browser(page)
    assert '<html lang="zh-CN">' in dom and "客户分级（1998-07-01）" in dom and "各层级的生命周期构成" in dom
    shot = np.asarray(Image.open(headless_browser(page, tmp_path / "page.png", height=1600)).convert("L"), float)
    assert shot.std() > 10  # text and charts, not a blank page
    assert (shot < 128).mean() > 0.01  # dark ink: drawn glyphs and bars
    if not subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout.strip():
        # No Chinese font on this machine (as on CI): the page's own font draws the text, and without it the
        # browser draws empty boxes instead, a different picture.
        bare = tmp_path / "without_font.html"
        bare.write_text(re.sub(r"@font-face\{[^}]*\}", "", page.read_text(encoding="utf-8")), encoding="utf-8")
        boxes = np.asarray(Image.open(headless_browser(bare, tmp_path / "boxes.png", height=1600)).convert("L"), float)
        top = slice(0, 560)  # the headings, notes and tier table, above the first chart
        assert np.abs(shot[top] - boxes[top]).mean() > 1.0


def test_the_history_of_a_cycle_in_chinese(tmp_path, english_words):
    """The history section (report --history) in Chinese; feature names in the drift table are identifiers
    (docs/features.md), not words."""
    from tiercast.analysis.history import CycleHistory

    tiers = load_config(ZH).policy.tier_names
    shares = pd.DataFrame([[0.25] * 4 + [0.0] * 2, [0.2] * 5 + [0.0]], index=pd.Index(["2024-07-01", "2024-08-01"],
                                                                                        name="as_of"), columns=tiers)
    quality = pd.DataFrame([{"scored": "2024-07-01", "measured": "2024-08-01", "window": "partial (31 of 181 days)",
                             "customers": 1800, "norm_gini": 0.61, "top20_capture": 0.55, "churn_auc": 0.7,
                             "total_ratio": 0.9, "grade": "B", "promised_grade": "A", "promised_churn_auc": 0.8,
                             "retrain_recommended": True}])
    drift = pd.DataFrame({"2024-08-01": [0.31, 0.02]}, index=["recency_days", "spend_365d"])
    page = write_report(chinese_scores(), tmp_path, load_config(ZH).policy, history=CycleHistory(shares, quality, drift),
                        language="zh")
    text = "\n".join(page_text(page).parts)
    assert "历次运行" in text and "部分（181 天中的 31 天）" in text and "建议重新训练" in text
    assert set(english_words(text)) <= set(english_words(" ".join(drift.index)))


def test_a_data_problem_is_said_in_chinese(tmp_path, store, chinese_config, small_cdnow, english_words, capsys):
    out = tmp_path / "scores.csv"
    assert main(["--config", str(chinese_config), "score", "--transactions", str(small_cdnow), "--as-of", "1990-01-01",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "错误" in err and "1990-01-01 之前没有任何客户的交易" in err and not english_words(err), err
    assert not out.exists()


def test_train_and_the_quality_card_in_chinese(tmp_path, store, chinese_config, small_cdnow, english_words, capsys):
    config = ["--config", str(chinese_config)]
    assert main([*config, "train", "--transactions", str(small_cdnow), "--cutoff", "1998-01-01", "--horizon-days",
                 "181", "--trials", "0"]) == 0
    said = capsys.readouterr().out
    assert "模型质量：等级" in said and "已晋升为冠军" in said and not english_words(said), said
    scored = tmp_path / "scores.csv"
    assert main([*config, "score", "--transactions", str(small_cdnow), "--as-of", "1998-07-01", "--out",
                 str(scored)]) == 0
    assert set(assert_chinese_scores(scored, english_words)["source"]) <= {"model", "fallback"}
    assert main([*config, "report", "--scores", str(scored), "--out", str(tmp_path / "report")]) == 0
    said = capsys.readouterr()
    text = "\n".join(page_text(tmp_path / "report" / "index.html").parts)
    assert "任取一位流失客户和一位留存客户" in said.out and "任取一位流失客户和一位留存客户" in text
    for shown in (said.out, said.err, text):
        assert not english_words(shown), sorted(set(english_words(shown)))


def said_in_chinese(capsys, english_words, *needles: str) -> str:
    """What the command printed: every needle, and no English word on stdout or stderr."""
    said = capsys.readouterr()
    for needle in needles:
        assert needle in said.out, (needle, said.out)
    assert not english_words(said.out) and not english_words(said.err), (said.out, said.err)
    return said.out


def refused_in_chinese(capsys, english_words, *needles: str) -> None:
    """A data problem: the error line in Chinese, naming the file and column (and bad rows) as they are."""
    err = capsys.readouterr().err
    head = err.split("\n")[0]
    assert "错误" in head and not english_words(head), err
    for needle in needles:
        assert needle in err, (needle, err)


def test_simulate_features_plan_and_evaluate_plan_in_chinese(tmp_path, small_cdnow, monitored_world, english_words,
                                                             capsys):
    config = ["--config", str(zh_config(tmp_path))]
    assert main([*config, "simulate", "--customers", "300", "--out", str(tmp_path / "world"), "--line-items"]) == 0
    said_in_chinese(capsys, english_words, "已模拟 300 位客户", "发票行", "真实值")

    features = tmp_path / "features.csv"
    assert main([*config, "features", "--transactions", str(small_cdnow), "--as-of", "1998-01-01",
                 "--out", str(features)]) == 0
    said_in_chinese(capsys, english_words, "已为 4,000 位客户生成 1998-01-01 的特征", "数据质量报告")

    plan = tmp_path / "plan.csv"
    assert main([*config, "plan", "--scores", str(monitored_world.scores), "--budget", "2000",
                 "--cost-per-contact", "5", "--out", str(plan)]) == 0
    said_in_chinese(capsys, english_words, "挽留计划", "对照组", "预期回报")
    assert main([*config, "evaluate-plan", "--plan", str(plan), "--transactions", str(monitored_world.stable),
                 "--horizon-days", "90", "--out", str(tmp_path / "result.json")]) == 0
    said_in_chinese(capsys, english_words, "处理组", "置信区间", "结果 ->")

    # A data problem of each family: the loader's (features), a scored file's (plan), a plan file's.
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("customer_id,timestamp\n1,2024-01-01\n", encoding="utf-8")
    assert main([*config, "features", "--transactions", str(lacking), "--as-of", "2024-06-01",
                 "--out", str(tmp_path / "f.csv")]) == 2
    refused_in_chinese(capsys, english_words, "lacking.csv，列 'amount'：缺少必需的列")
    assert main([*config, "plan", "--scores", str(lacking), "--budget", "10", "--cost-per-contact", "1",
                 "--out", str(tmp_path / "p.csv")]) == 2
    refused_in_chinese(capsys, english_words, "lacking.csv：缺少列 [", "'churn_probability'")
    assert main([*config, "evaluate-plan", "--plan", str(lacking), "--transactions", str(monitored_world.stable),
                 "--out", str(tmp_path / "r.json")]) == 2
    refused_in_chinese(capsys, english_words, "lacking.csv，列 'group'：缺少必需的列")
    assert not any((tmp_path / name).exists() for name in ("f.csv", "p.csv", "r.json"))


def test_monitor_and_cycle_in_chinese(tmp_path, in_world, english_words, capsys):
    from ..quick_store import QUICK
    from .conftest import CUTOFF

    config = ["--config", str(zh_config(tmp_path, **QUICK))]  # the monitored world's quick training
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph")  # the drift chart draws its Chinese with a font that has it
        assert main([*config, "monitor", "--scores", str(in_world.scores), "--transactions", str(in_world.shifted),
                     "--as-of", "2025-01-01", "--out", str(tmp_path / "monitor")]) == 0
    said_in_chinese(capsys, english_words, "已监测 2024-07-01 的评分", "完整窗口", "建议重新训练")
    found = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    # Programs read the codes; people read the verdict, reasons and comparison in the configured language.
    assert found["verdict_code"] == "retrain_recommended" and found["retrain_recommended"] is True
    assert {"features_drifted", "total_ratio"} <= set(found["reason_codes"])
    assert len(found["reason_codes"]) == len(found["reasons"])
    for text in (found["verdict"], *found["reasons"], found["realized"]["comparison"]):
        assert not english_words(text), text

    runs = tmp_path / "runs"  # the champion's first run, then this as_of's, in Chinese
    shutil.copytree(in_world.runs / CUTOFF, runs / CUTOFF)
    assert main([*config, "cycle", "--transactions", str(in_world.stable), "--as-of", "2025-01-01",
                 "--dir", str(runs)]) == 0
    said_in_chinese(capsys, english_words, "周期 2025-01-01", "已监测 2024-07-01 的运行", "与 2024-07-01 相比的层级迁移")
    record = json.loads((runs / "2025-01-01" / "cycle.json").read_text())
    assert record["decisions"] and not english_words("\n".join(record["decisions"]))

    # A data problem: the loader's words for a bad amount, with the file, the column and the bad line.
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\n1,2024-01-01,5\n2,2024-01-02,1e13\n", encoding="utf-8")
    assert main([*config, "cycle", "--transactions", str(bad), "--as-of", "2025-02-01", "--dir", str(runs)]) == 2
    refused_in_chinese(capsys, english_words, "bad.csv，列 'amount'：1 行：值超出", "第 3 行")
    assert not (runs / "2025-02-01").exists()
    assert main([*config, "monitor", "--scores", str(in_world.scores), "--transactions", str(bad),
                 "--as-of", "2025-01-01", "--out", str(tmp_path / "m2")]) == 2
    refused_in_chinese(capsys, english_words, "bad.csv，列 'amount'")
