"""The words of the common data problems (:class:`~tiercast.features.schema.DataError`), in English, by key.

A raise site says its problem as a :class:`Phrase`: a key of :data:`PROBLEMS` and the values its template
takes, which may themselves be phrases (a hint, a count before a problem) or :class:`Joined` lists. The
English is ``str(phrase)``; the message catalogues (``tiercast.serving.i18n``) take these templates as their
English ``data_error.KEY`` entries and say the same phrase in another language. File and column names,
values and sample rows are given as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROBLEMS: dict[str, str] = {
    # -- reading a file
    "file_not_found": "file not found",
    "unsupported_type": "unsupported file type '{suffix}': use .csv, .csv.gz, .parquet or CDNOW's .txt",
    "file_empty": "the file is empty",
    "no_data_rows": "the file has no data rows",
    "table_empty": "the table has no rows",
    "query_empty": "the query returns no rows",
    "column_missing": "required column missing; columns found: {found}",
    "repeated_header": ("the header names a column more than once: {names}; which one to read would be a guess, so "
                        "rename or remove all but one"),
    "name_twice": "{name} twice",
    "name_times": "{name} {count} times",
    "read_as": "'{original}' (read as {name} by data.columns)",
    "and": " and ",
    "then": "; ",
    # -- text encodings
    "undecodable_plain": "not {encoding} text",
    "undecodable": "not {encoding} text: byte {byte} (line {line}{character}) starts text that does not decode; {hint}",
    "at_character": ", character {character}",
    "hint_gb18030": ("the whole file decodes as GB18030 (what Excel writes in China, GBK being a part of it): if that "
                     "is what it is, set `data.encoding: gb18030` in the config"),
    "hint_encoding": ("save it as UTF-8, or name its encoding in the config (`data.encoding: ...`, e.g. gb18030, "
                      "latin-1, cp1252)"),
    "utf8_declared_otherwise": ("the file is UTF-8 text with non-ASCII characters, but `data.encoding` says "
                                "{declared}: read that way its text would be garbled; remove data.encoding (UTF-8 is "
                                "the default) or save the file in the encoding it names"),
    # -- values of a column: "{count} {problem}"
    "counted": "{count} {problem}",
    "empty_ids": "rows have an empty {column}",
    "blank_labels": "values are blank",
    "too_long": "values are longer than {length} characters",
    "not_iso_dates": ("values are not ISO 8601 dates or datetimes (YYYY-MM-DD, optionally with a time and a UTC "
                      "offset: 2025-01-31T14:05:00+08:00)"),
    "dates_out_of_range": ("values are outside the supported range, {earliest} to {latest} (in UTC; see "
                           "docs/contract.md): a date such as 1600-01-01 or 2300-01-01 is usually a placeholder for "
                           "an unknown date or a typing slip; correct these rows or leave them out of the file"),
    "not_finite": ("values are not finite numbers: not a number at all (nan, n/a), infinite (inf) or beyond what a "
                   "float holds (1e400)"),
    "beyond_bound": ("values are outside [-{bound}, {bound}], the size docs/contract.md allows for {column}: such a "
                     "value is usually a placeholder (1e308, 9.99e307) or a slip of units; correct these rows or "
                     "leave them out of the file"),
    "european_numbers": ("values are written the European way (dots between thousands, a decimal comma: 1.234,50), "
                         "which tiercast does not guess; {forms}"),
    "misplaced_comma": ("values have a comma that is not a thousands separator between groups of three digits: a "
                        "decimal comma (12,5) or a misplaced separator (1,23) could mean either of two numbers; {forms}"),
    "number_forms": ("write numbers with a decimal point, optionally with one currency sign and commas between "
                     "groups of three digits (1,234.50, ¥12.00, -€5.00), or as plain numbers"),
    "several_currencies": ("values have another currency sign than the column's usual '{usual}' (signs found: "
                           "{signs}): amounts in different currencies cannot be added up; convert them to one "
                           "currency first"),
    # -- scored files
    "scores_columns_missing": "missing column(s) {missing}; is this a file written by tiercast score?",
    "no_scored_customers": "no scored customers in the file",
    "not_a_finite_number": "not a finite number",
    "repeated_customers": "customers appear more than once",
    # -- what a command needs of the data
    "no_transactions": "no transactions left to use",
    "as_of_before_history": "no customer has a transaction before {as_of}: the first one is on {first}",
    "history_not_a_folder": "not a folder: give the directory tiercast cycle writes its runs in",
}


@dataclass(frozen=True)
class Phrase:
    """A problem's words by key, with the values its template takes (text, numbers, phrases, joined lists)."""

    key: str
    values: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return PROBLEMS[self.key].format(**{name: str(value) for name, value in self.values.items()})


def phrase(key: str, **values: object) -> Phrase:
    if key not in PROBLEMS:
        raise KeyError(f"no data problem '{key}'")
    return Phrase(key, values)


@dataclass(frozen=True)
class Joined:
    """Items said one after the other, with the separator that is :data:`PROBLEMS`' ``separator`` entry."""

    separator: str
    items: tuple[object, ...]

    def __str__(self) -> str:
        return PROBLEMS[self.separator].join(map(str, self.items))
