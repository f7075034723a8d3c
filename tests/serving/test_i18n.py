"""The message catalogues: the same keys and placeholders in every language, English labels equal to their
codes (so English output is what it was), and Chinese labels for every name the segment namer can write."""

from __future__ import annotations

import itertools
import re
import string

import numpy as np
import pytest

from tiercast.features.lifecycle import STAGES
from tiercast.serving.i18n import CATALOGUES, DEFAULT_MEMBERSHIP, localised, messages
from tiercast.training.policy import Membership, MembershipLevel, TierPolicy
from tiercast.training.segments import _describe, _unique

ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")
# Names, not words: the product (also the command a reader types), the tracking server, the bundled data set.
NAMES = {"tiercast", "MLflow", "CDNOW"}
# A library's own error text (English) is left to the log by a translation, so it may drop this one.
DROPPABLE = {"detail"}


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def test_every_catalogue_has_the_english_keys_and_placeholders():
    english = CATALOGUES["en"]
    for language, table in CATALOGUES.items():
        assert table.keys() == english.keys(), language
        for key, template in table.items():
            wanted = placeholders(english[key])
            assert wanted - DROPPABLE <= placeholders(template) <= wanted, (language, key)


def test_the_chinese_catalogue_has_no_english_words():
    for key, template in CATALOGUES["zh"].items():
        said = re.sub(r"`[^`]*`", "", re.sub(r"\{[a-z_]+(?::[^}]*)?\}", "", template))  # a `command` is typed as it is
        words = [w for w in ENGLISH_WORD.findall(said) if w not in NAMES]
        assert not words, (key, template)


def namer_names() -> list[str]:
    """Every name the segment namer can write: each profile, told apart on each dimension, and marked new."""
    names = set()
    for r, f, m, median in itertools.product((-1, 0, 1), (0, 1), (-1, 0, 1), (1, 3)):
        names.add(_describe(r, f, m, median))
    out = set(names)
    for name in names:
        for dim in range(3):
            centres = np.zeros((3, 3))
            centres[:, dim] = [0.0, 1.0, 2.0]
            out.update(_unique([name] * 3, centres))
    out |= {f"{n} (new)" for n in list(out)}
    return sorted(out) + ["Champions", "Loyal", "New", "Potential loyalists", "Can't lose them", "At risk", "Lost",
                          "Hibernating", "Need attention", "no history"]


def test_english_labels_are_the_codes():
    en = messages("en")
    assert [en.segment(n) for n in namer_names()] == namer_names()
    assert [en.stage(s) for s in STAGES] == list(STAGES)
    assert [en.band(b) for b in ("low", "medium", "high")] == ["low", "medium", "high"]
    assert localised(TierPolicy(), en) == TierPolicy()


def test_every_segment_name_has_a_chinese_label():
    zh = messages("zh")
    labels = [zh.segment(n) for n in namer_names()]
    assert all(not ENGLISH_WORD.search(label) for label in labels), labels
    assert len(set(labels)) == len(labels)  # names told apart stay apart
    assert zh.segment("active loyal high spenders (more recent 2) (new)") == "活跃忠诚高消费客户（购买更近 2）（新）"
    assert zh.segment("a name of another shape") == "a name of another shape"


def test_default_membership_levels_are_translated_configured_ones_kept():
    zh = messages("zh")
    assert localised(TierPolicy(), zh).membership.level_order == [zh[f"membership.{n}"] for n in DEFAULT_MEMBERSHIP]
    configured = TierPolicy(membership=Membership(levels=[MembershipLevel(name="standard", min_spend=0),
                                                          MembershipLevel(name="VIP", min_spend=100)]))
    assert localised(configured, zh).membership.level_order == ["standard", "VIP"]


@pytest.mark.parametrize("x, en, zh", [(1, "1 order so far", "累计 1 笔订单"), (1204, "1,204 orders so far", "累计 1,204 笔订单"),
                                       (float("nan"), "unknown orders so far", "累计 未知 笔订单")])
def test_counts_and_numbers(x, en, zh):
    assert messages("en").count("reason.frequency", x) == en
    assert messages("zh").count("reason.frequency", x) == zh


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        messages("fr")


def test_the_english_card_is_the_one_training_writes():
    import pandas as pd

    from tiercast.serving.i18n import card_text
    from tiercast.training.quality_card import QualityGrades
    from tiercast.training.quality_card import card_text as training_card_text
    from tiercast.training.quality_card import quality_card

    rng = np.random.default_rng(3)
    actual = pd.DataFrame({"value": rng.gamma(1.0, 50.0, 400), "churned": rng.integers(0, 2, 400)})
    model = pd.DataFrame({"predicted_value": actual["value"] + rng.normal(0, 30, 400),
                          "churn_probability": rng.uniform(0, 1, 400)})
    for baseline in (model.sample(frac=1.0, random_state=1).reset_index(drop=True), None):
        card = quality_card(actual, model, baseline, QualityGrades(), "1998-01-01 to 1998-07-01")
        assert card_text(card, messages("en")) == training_card_text(card)
        chinese = card_text(card, messages("zh"))
        assert "1998-01-01" in chinese and not ENGLISH_WORD.search(chinese.replace("1998-01-01 to 1998-07-01", ""))


def test_data_errors_in_each_language():
    import pandas as pd

    from tiercast.features.schema import DataError
    from tiercast.serving.i18n import data_error_text

    sample = pd.DataFrame({"timestamp": ["not a date"]}, index=[3])
    keyed = DataError("tx.csv", "no customer has a transaction before 2025-01-01: the first one is on 2025-02-01",
                      "timestamp", sample, key="as_of_before_history",
                      values={"as_of": "2025-01-01", "first": "2025-02-01"})
    plain = DataError("tx.csv", "unparseable timestamp", "timestamp", sample)
    for err in (keyed, plain):
        assert data_error_text(err, messages("en")) == str(err)  # English exactly as the error says itself
    chinese = data_error_text(keyed, messages("zh"))
    assert chinese.startswith("tx.csv，列 'timestamp'：2025-01-01 之前没有任何客户的交易") and "not a date" in chinese
    assert "有问题的行示例" in data_error_text(plain, messages("zh"))


def test_the_loaders_data_errors_in_chinese(tmp_path):
    """The loader's common problems, said as phrases (with hints, counts and lists inside), read the same in
    English as before and have no English word in Chinese beyond the file's names, values and quoted forms."""
    from tiercast.features.loading import load_transactions
    from tiercast.features.schema import DataError
    from tiercast.serving.i18n import data_error_text

    files = {"header.csv": "customer_id,timestamp,amount,Amount\n1,2024-01-01,5,5\n",
             "dates.csv": "customer_id,timestamp,amount\n1,2024-01-01,5\n2,yesterday,5\n",
             "gbk.csv": "customer_id,timestamp,amount,category\n1,2024-01-01,5,".encode() + "客户".encode("gbk") + b"\n",
             "amounts.csv": "customer_id,timestamp,amount\n1,2024-01-01,1e13\n"}
    said = {}
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataError) as caught:
            load_transactions(path)
        err = caught.value
        assert err.key and data_error_text(err, messages("en")) == str(err)
        said[name] = data_error_text(err, messages("zh"))
    assert "表头中有重复的列名：'amount'和'Amount'" in said["header.csv"]
    assert "1 行：值不是 `ISO 8601` 日期" in said["dates.csv"] and "第 3 行" in said["dates.csv"]
    assert "`GB18030`" in said["gbk.csv"] and "列 'category'" in said["gbk.csv"]
    assert "值超出 [-1e+12, 1e+12]" in said["amounts.csv"]
    for text in said.values():
        shown = re.sub(r"'[^']*'|`[^`]*`|\S*/\S*|\S*\.csv\S*", "", text.split("\n")[0])
        assert not [w for w in ENGLISH_WORD.findall(shown) if w not in NAMES], text
