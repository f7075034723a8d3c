"""Fixtures the whole suite shares, made once per session.

The CDNOW purchase log is loaded once as canonical transactions; tests take subsets of it (new frames) and
never change it in place.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.loading import CleaningReport, load_transactions

ROOT = Path(__file__).resolve().parents[1]
CDNOW = ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz"


@pytest.fixture(scope="session")
def cdnow_loaded() -> tuple[pd.DataFrame, CleaningReport]:
    """Every CDNOW purchase and the loader's cleaning report."""
    return load_transactions(CDNOW)


@pytest.fixture(scope="session")
def cdnow_transactions(cdnow_loaded: tuple[pd.DataFrame, CleaningReport]) -> pd.DataFrame:
    """Every CDNOW purchase (23,570 customers, ids "00001" to "23570")."""
    return cdnow_loaded[0]


@pytest.fixture(scope="session")
def cdnow_first(cdnow_transactions: pd.DataFrame) -> Callable[[int], pd.DataFrame]:
    """``cdnow_first(n)``: the purchases of the first ``n`` CDNOW customers, as a new frame."""

    def first(n: int) -> pd.DataFrame:
        tx = cdnow_transactions
        return tx[tx["customer_id"].astype(int) <= n].reset_index(drop=True)

    return first


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store in the test's folder, which is also the working directory."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def headless_browser(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path | str]:
    """``headless_browser(page, screenshot=None)``: the DOM of a local HTML page as Chromium renders it, or,
    with ``screenshot`` (a PNG path), the page's picture at 1200 px wide. Skipped without Chromium, except
    in CI (``CI=true``), where a missing browser fails the test."""
    browser = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                    if (found := shutil.which(name))), None)
    if browser is None:
        message = "no headless browser: install Chromium (Debian: apt-get install -y chromium) to check pages"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    profile = tmp_path_factory.mktemp("chromium-profile")

    def render(page: Path, screenshot: Path | None = None, height: int = 8000) -> Path | str:
        args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--hide-scrollbars", f"--window-size=1200,{height}"]
        args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        done = subprocess.run([*args, Path(page).resolve().as_uri()], capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return screenshot if screenshot else done.stdout

    return render


class EnglishWords:
    """The English words (three letters or more) a person would read in a text, for checking output in another
    language. Not words a person reads: names (the product, which is also the command typed; its tracking
    server; the bundled data set), identifiers quoted as written (a registry alias such as 'champion', a
    `command` to type), ids (letters run together with digits, as in a run id), paths
    and URLs (anything with a slash), and log records (the operator's diagnostics, in English like the
    libraries' own)."""

    NAMES = ("tiercast", "MLflow", "CDNOW")
    WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{3,}(?![A-Za-z0-9])")  # letters run together with digits: an id
    LOG_RECORD = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
    PATH = re.compile(r"\S*/\S*")
    QUOTED = re.compile(r"'[^'\s]+'|`[^`]+`")

    def __call__(self, text: str) -> list[str]:
        lines = [line for line in str(text).splitlines() if not self.LOG_RECORD.match(line)]
        kept = self.QUOTED.sub(" ", self.PATH.sub(" ", "\n".join(lines)))
        return [w for w in self.WORD.findall(kept) if w not in self.NAMES]


@pytest.fixture(scope="session")
def english_words() -> EnglishWords:
    """``english_words(text)``: the English words a person would read in ``text`` (see :class:`EnglishWords`)."""
    return EnglishWords()
