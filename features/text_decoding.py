"""Which text encoding an input file is decoded with, and where and why one does not decode.

``data.encoding`` names the encoding of CSV and CDNOW text inputs (UTF-8 by default). A UTF-8 byte-order mark
says what the file is and wins. Two mistakes are caught rather than read into garbled ids and names: a file
that does not decode in the declared encoding (the error names where the undecodable text starts: its byte,
line, character within the line and column, never the bytes themselves, which may be personal data, and says
when the file decodes as GB18030, what Excel writes in China), and a UTF-8 file with non-ASCII text declared in
another encoding.

pandas decodes in chunks and reports positions within a chunk, so positions are found again here by decoding
the file from its start; that costs a pass over the file only when something is wrong (or, for a declared
non-UTF-8 encoding, the check that the file is not UTF-8).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tiercast.features.problems import phrase
from tiercast.features.schema import DataError

log = logging.getLogger(__name__)

_CHINESE_ENCODINGS = ("gb18030", "gbk", "gb2312")


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with _open_bytes(path) as handle:
        while chunk := handle.read(size):
            yield chunk


def text_encoding(path: Path, declared: str) -> str:
    """The encoding to decode ``path`` with: UTF-8 when it starts with UTF-8's byte-order mark (pandas skips
    the mark), else the declared one. A file declared in another encoding that is UTF-8 with non-ASCII text is
    refused: read the declared way, its names and ids would come out garbled (GB18030 or GBK text is
    practically never valid UTF-8 by chance, so the declaration is what is wrong)."""
    with _open_bytes(path) as handle:
        starts_with_bom = handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
    name = codecs.lookup(declared).name
    if starts_with_bom:
        if name not in ("utf-8", "utf-8-sig"):
            log.info("%s starts with a UTF-8 byte-order mark: read as UTF-8, not %s", path, declared)
        return "utf-8"
    if name not in ("utf-8", "utf-8-sig") and _has_non_ascii(path) and _first_decode_error(path, "utf-8") is None:
        raise DataError.of(path, phrase("utf8_declared_otherwise", declared=declared))
    return declared


def _has_non_ascii(path: Path) -> bool:
    return any(not chunk.isascii() for chunk in _chunks(path))


def _first_decode_error(path: Path, encoding: str) -> tuple[int, int] | None:
    """(byte offset, line number) of the first byte of ``path`` that does not decode, or None if all does."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1
    for chunk in _chunks(path):
        pending = len(decoder.getstate()[0])  # bytes of an unfinished character carried from the last chunk
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as err:
            start = offset - pending + err.start
            return start, lines + (chunk[:max(start - offset, 0)].count(b"\n"))
        offset += len(chunk)
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:  # the file ends inside a character
        return offset - len(decoder.getstate()[0]), lines
    return None


# How far back from the failing byte the start of its line is looked for.
_LOOK_BACK = 1 << 16


def _where_text_starts(path: Path, encoding: str, failing: int) -> tuple[int, int | None]:
    """(byte offset, character within its line counting from 1) of where the text holding the ``failing``
    byte starts: the run of non-ASCII bytes it belongs to. A decoder fails at the first byte that breaks its
    rules, which can be a character or more into the foreign text: GBK's 图 (CD BC) happens to be a valid UTF-8
    character, so UTF-8 fails only at the 书 after it. The character is None on a line longer than the look-back."""
    window_start = max(failing - _LOOK_BACK, 0)
    with _open_bytes(path) as handle:
        handle.seek(window_start)
        before = handle.read(failing - window_start)
    run = len(before) - len(before.rstrip(bytes(range(0x80, 0x100))))
    start = failing - run
    newline = before.rfind(b"\n")
    if newline < 0 and window_start > 0:
        return start, None
    line_start = window_start + newline + 1
    line_before = before[line_start - window_start:start - window_start]
    return start, len(line_before.decode(encoding, errors="replace")) + 1


def _column_at(path: Path, encoding: str, line: int, offset: int, delimiter: str) -> str | None:
    """The header's name of the CSV column holding byte ``offset`` on ``line`` (counting delimiters outside
    quotes); None on the header line itself."""
    if line < 2:
        return None
    with _open_bytes(path) as handle:
        header = handle.readline()
        line_start = len(header)
        for _ in range(line - 2):
            line_start += len(handle.readline())
        before = handle.read(max(offset - line_start, 0)).decode(encoding, errors="replace")
    names = next(csv.reader([header.decode(encoding, errors="replace").lstrip("\ufeff")], delimiter=delimiter), [])
    quoted, position = False, 0
    for char in before:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            position += 1
    return names[position].strip() if position < len(names) else None


def undecodable(path: Path, encoding: str, delimiter: str | None) -> DataError:
    """The DataError for a file that does not decode: where, and which encoding it may be instead."""
    where = _first_decode_error(path, encoding)
    name = codecs.lookup(encoding).name
    shown = {"utf-8": "UTF-8"}.get(name, name.upper())
    if where is None:  # pandas failed where a plain decode does not: report what we know
        return DataError.of(path, phrase("undecodable_plain", encoding=shown))
    offset, line = where
    offset, character = _where_text_starts(path, encoding, offset)
    column = _column_at(path, encoding, line, offset, delimiter) if delimiter else None
    at_character = phrase("at_character", character=f"{character:,}") if character is not None else ""
    gb18030 = name not in _CHINESE_ENCODINGS and _first_decode_error(path, "gb18030") is None
    return DataError.of(path, phrase("undecodable", encoding=shown, byte=f"{offset:,}", line=f"{line:,}",
                                     character=at_character,
                                     hint=phrase("hint_gb18030" if gb18030 else "hint_encoding")), column)
