"""The fonts of the report: its charts are drawn with DejaVu Sans (matplotlib's own) for Latin text, then the
bundled Noto Sans SC subset for Chinese (``fonts/README.md``), then whichever CJK fonts the machine has, for
characters outside the subset; its page lists Chinese fonts first (for a Chinese page) and carries the
bundled font, cut to the page's own characters, for browsers on machines without one."""

from __future__ import annotations

import base64
import io
from functools import cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from matplotlib import font_manager

FONT_DIR = Path(__file__).resolve().parent / "fonts"
CHINESE_FONT = FONT_DIR / "NotoSansSC-Regular-GB2312.otf"
# System fonts with Chinese, Japanese and Korean glyphs, used for characters the bundled font lacks.
SYSTEM_CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
                    "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC")
_LATIN = "system-ui,'DejaVu Sans'"
_CHINESE = "'Noto Sans SC','Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei'"
# The page's CSS font stack. A Chinese page names its Chinese fonts first: Chromium draws the first Chinese
# text of a page as empty boxes when the font that has it comes after a Latin one that does not.
CSS_FONT_STACK = {"en": f"{_LATIN},{_CHINESE},sans-serif", "zh": f"{_CHINESE},{_LATIN},sans-serif"}
# Characters drawn with the bundled font on the page: CJK punctuation, ideographs and full-width forms.
_FIRST_CJK = 0x2E80


@cache
def chinese_font_family() -> str:
    """The bundled font's family name, registered with matplotlib's font manager."""
    font_manager.fontManager.addfont(str(CHINESE_FONT))
    return font_manager.FontProperties(fname=CHINESE_FONT).get_name()


def chart_font_families() -> list[str]:
    """matplotlib's ``font.family`` for the charts: each character is drawn with the first font that has it."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", chinese_font_family()] + [name for name in SYSTEM_CJK_FONTS if name in installed]


def css_font_face(text: str) -> str:
    """A CSS ``@font-face`` of the bundled font cut to the CJK characters of ``text``, embedded (a data URL:
    the page stays one file); the machine's own Noto Sans SC is used where it has one. Empty without CJK."""
    wanted = sorted({ord(ch) for ch in text if ord(ch) >= _FIRST_CJK})
    if not wanted:
        return ""
    options = subset.Options()
    options.name_IDs, options.notdef_outline = ["*"], True
    font = TTFont(CHINESE_FONT)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    data = io.BytesIO()
    font.save(data)
    encoded = base64.b64encode(data.getvalue()).decode("ascii")
    return ("@font-face{font-family:'Noto Sans SC';src:local('Noto Sans SC'),"
            f"url(data:font/otf;base64,{encoded}) format('opentype')}}")
