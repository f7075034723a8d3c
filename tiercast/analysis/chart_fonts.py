"""The fonts the report's charts are drawn with: DejaVu Sans (matplotlib's own) for Latin text, then the
bundled Noto Sans SC subset for Chinese (``fonts/README.md``), then whichever CJK fonts the machine has,
for characters outside the subset. Registered with matplotlib once, when the first chart is drawn."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from matplotlib import font_manager

FONT_DIR = Path(__file__).resolve().parent / "fonts"
CHINESE_FONT = FONT_DIR / "NotoSansSC-Regular-GB2312.otf"
# System fonts with Chinese, Japanese and Korean glyphs, used for characters the bundled font lacks.
SYSTEM_CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
                    "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC")
# The page's CSS font stack: the same order, with the names browsers know the fonts by.
CSS_FONT_STACK = ("system-ui,'DejaVu Sans','Noto Sans SC','Noto Sans CJK SC','Source Han Sans SC','PingFang SC',"
                  "'Microsoft YaHei','WenQuanYi Micro Hei',sans-serif")


@cache
def chinese_font_family() -> str:
    """The bundled font's family name, registered with matplotlib's font manager."""
    font_manager.fontManager.addfont(str(CHINESE_FONT))
    return font_manager.FontProperties(fname=CHINESE_FONT).get_name()


def chart_font_families() -> list[str]:
    """matplotlib's ``font.family`` for the charts: each character is drawn with the first font that has it."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", chinese_font_family()] + [name for name in SYSTEM_CJK_FONTS if name in installed]
