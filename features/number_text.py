"""Numbers written as spreadsheets and CRM exports write them: ``1,234.50``, ``¥12.00``, ``-€5.00``.

The loader parses number cells as plain numbers first (pandas, fast); only the cells that fail come here.
A cell is read when its form is unambiguous: an optional sign, at most one currency sign (:data:`CURRENCY_SIGNS`,
optionally followed by a space), digits with commas between proper groups of three (``1,234,567``) or
none, and an optional decimal point with digits after it. Forms that another locale writes differently are
refused, never guessed: a decimal comma or European grouping (``12,5``, ``1.234,50``) and commas that do not
separate groups of three (``1,23``) could mean either of two numbers, so ``1,234`` is always one thousand
two hundred and thirty-four and a column holding any of those forms is refused as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CURRENCY_SIGNS = "$€£¥￥"
# The full-width yuan/yen sign (what Chinese input methods type) is the same currency as the half-width one.
_SAME_CURRENCY = {"￥": "¥"}

_SIGN = r"[+-]?"
_CURRENCY = f"[{CURRENCY_SIGNS}]"
_DIGITS = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
# Groups: 1 sign before the currency, 2 currency, 3 sign after it, 4 digits, 5 fraction.
_FORMATTED = rf"({_SIGN})({_CURRENCY}?) ?({_SIGN})({_DIGITS}?)(\.[0-9]*)?"
# Unambiguously European: dots between groups of three with a decimal comma, or two or more dot groups.
_EUROPEAN = rf"{_SIGN}{_CURRENCY}? ?{_SIGN}[0-9]{{1,3}}(?:(?:\.[0-9]{{3}})+,[0-9]+|(?:\.[0-9]{{3}}){{2,}})"
# Any other number-like cell with a comma: a decimal comma (12,5) or a comma not between groups of three (1,23).
_WITH_COMMA = rf"{_SIGN}{_CURRENCY}? ?{_SIGN}[0-9.]*,[0-9.,]*"


@dataclass(frozen=True)
class FormattedNumbers:
    """What :func:`read_formatted` made of cells that are not plain numbers (each array has a value per cell).

    ``values`` is NaN where a cell was not read; ``currency`` the cell's currency sign ('' without one);
    ``european`` and ``misplaced_comma`` mark the two refused comma forms (see the module docstring)."""

    values: np.ndarray
    currency: np.ndarray
    european: np.ndarray
    misplaced_comma: np.ndarray


def read_formatted(cells: pd.Series) -> FormattedNumbers:
    """Read the cells (stripped text) that are numbers with a currency sign or thousands separators."""
    found = cells.str.extract(f"^{_FORMATTED}$")
    matched = found[0].notna()
    sign_before, currency, sign_after, digits, fraction = (found[i].fillna("") for i in range(5))
    number = (matched & (digits.ne("") | fraction.ne(""))  # some digits
              & ~(sign_before.ne("") & sign_after.ne("")))  # one sign at most
    text = sign_before + sign_after + digits.str.replace(",", "", regex=False) + fraction
    values = pd.to_numeric(text.where(number, None), errors="coerce").to_numpy(dtype=np.float64)
    european = cells.str.fullmatch(_EUROPEAN).to_numpy(dtype=bool)
    misplaced = (cells.str.fullmatch(_WITH_COMMA) & cells.str.contains("[0-9]")).to_numpy(dtype=bool)
    misplaced &= ~european & np.isnan(values)
    currency = currency.where(~np.isnan(values), "").replace(_SAME_CURRENCY)
    return FormattedNumbers(values, currency.to_numpy(dtype=object), european, misplaced)
