"""Reading a spreadsheet export (CSV) as records: separator, header, encoding and size.

Spreadsheets write CSV in more than one dialect, and coordinators cannot be expected to
know which one theirs uses. This reader:

* takes the separator from the header row: ``,``, the ``;`` that Excel writes where the
  decimal mark is a comma (most of Europe), or a tab;
* reads the header once: a column name matches whatever its case, spaces, dashes or
  underscores (``First Name`` is ``first_name``). An unknown, repeated or missing required
  column is one error for the whole file, never one per row, and nothing is applied: an
  unknown column may be a misspelt known one (``Statut``) whose values would otherwise be
  lost without a word;
* reads UTF-8, with or without the byte-order mark Excel writes, and says how to save
  the file as "CSV UTF-8" when it is in Excel's Windows-1252 or UTF-16 instead;
* refuses a file over its size limit before reading it, and stops reading one that
  passes the limit while it is read (a pipe, a device, a file still growing), however
  long its lines.

Rows are streamed: an unreadable row raises when it is reached, so callers act on the
records only once the iteration has finished.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from reminders.errors import ConfigError
from reminders.fields import shorten
from reminders.yamlio import DocumentTooLarge, check_file_size

#: Separators recognised in the header row, the most common first (it wins a tie).
SEPARATORS: Final = (",", ";", "\t")
#: Where a header problem is reported.
HEADER: Final = "row 1 (the header)"
#: How to re-save a file that is not UTF-8.
SAVE_AS_UTF8: Final = (
    'save it again as "CSV UTF-8": in Excel, File > Save As > "CSV UTF-8 (Comma delimited) '
    '(*.csv)"; in LibreOffice or Numbers, choose the character set "Unicode (UTF-8)"'
)
_UTF16_MARKS: Final = (b"\xff\xfe", b"\xfe\xff")


def column_key(name: str) -> str:
    """A column name as compared: ``First Name``, ``first_name`` and ``FIRST-NAME`` match."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def read_rows(
    path: Path,
    columns: Iterable[str],
    required: Iterable[str],
    error: type[ConfigError],
    max_bytes: int,
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(row number, {column: cell})`` for every row with a non-empty cell.

    Rows are numbered as a spreadsheet numbers them (the header is row 1). Cells are
    stripped and empty ones left out; a cell under a column the header does not name is
    kept as ``column N`` so that its record reports it. Raises ``error`` naming the file
    for everything that makes the file as a whole unusable, and ``OSError`` when it
    cannot be read.
    """
    reader = _Reader(str(path), list(columns), list(required), error, max_bytes)
    try:
        check_file_size(path, max_bytes)
        # One opening, read through a cap: a pipe can be read only once, and a line
        # without an end must not be read whole before it is counted.
        with path.open("rb") as raw:
            capped = io.BufferedReader(_Capped(raw, max_bytes))
            if capped.peek(2)[:2] in _UTF16_MARKS:
                raise reader.fail(f'is saved as UTF-16 (Excel\'s "Unicode Text"): {SAVE_AS_UTF8}')
            handle = io.TextIOWrapper(capped, encoding="utf-8-sig", newline="")
            try:
                yield from reader.rows(handle)
            except UnicodeDecodeError as exc:
                # Only a plain file can be read again to find the row (a pipe cannot).
                row, byte = (
                    _first_undecodable(path, max_bytes)
                    if path.is_file()
                    else (0, exc.object[exc.start])
                )
                raise reader.fail(
                    f'is not UTF-8 text (byte 0x{byte:02x}; Excel\'s plain "CSV" is '
                    f"Windows-1252): {SAVE_AS_UTF8}",
                    f"row {row}" if row else "",
                ) from None
    except DocumentTooLarge as exc:
        raise reader.fail(f"refused: {exc}") from None


class _Capped(io.RawIOBase):
    """A binary file that raises DocumentTooLarge once more than ``limit`` bytes come from it."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        """Always: it is read, never written."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # typeshed: WriteableBuffer
        """Fill ``buffer`` from the file; raise past the limit."""
        data = self._raw.read(min(len(buffer), self._limit + 1 - self._read))
        self._read += len(data)
        if self._read > self._limit:
            raise DocumentTooLarge(f"the file is over the limit of {self._limit:,} bytes")
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True, slots=True)
class _Reader:
    """One file's reading: what its header may name and how to report a fault."""

    file: str
    columns: list[str]
    required: list[str]
    error: type[ConfigError]
    max_bytes: int

    def fail(self, message: str, record: str = "") -> ConfigError:
        return self.error(self.file, message, record=record)

    def rows(self, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
        bounded = self._bounded(lines)
        header = next(bounded, "")
        if not header.strip():
            return
        separator, names = self._header(header)
        reader = csv.reader(itertools.chain([header], bounded), delimiter=separator)
        next(reader)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise self.fail(
                    f"not a readable CSV file: {exc}", f"row {reader.line_num + 1}"
                ) from None
            cells: dict[str, str] = {}
            for index, cell in enumerate(row):
                text = cell.strip()
                if text:
                    name = names[index] if index < len(names) else None
                    cells[name or f"column {index + 1}"] = text
            if cells:  # a row of empty cells (",,,,") is not a record
                yield reader.line_num, cells

    def _header(self, line: str) -> tuple[str, list[str | None]]:
        """The separator and the known column of every header cell (None for a blank one)."""
        known = {column_key(name): name for name in self.columns}

        def cells(separator: str) -> list[str]:
            return next(csv.reader([line], delimiter=separator), [])

        # max() keeps the first of equals: "," unless another separator names more columns.
        separator = max(SEPARATORS, key=lambda s: sum(column_key(c) in known for c in cells(s)))
        written = [cell.strip() for cell in cells(separator)]
        names = [known.get(column_key(cell)) if cell else None for cell in written]
        unknown = [c for c, name in zip(written, names, strict=True) if c and name is None]
        repeated = sorted({n for n in names if n is not None and names.count(n) > 1})
        missing = [name for name in self.required if name not in names]
        faults = []
        if unknown:
            listed = ", ".join(repr(shorten(cell)) for cell in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            faults.append(f"unknown column {listed}{more}")
        if repeated:
            faults.append(f"column {', '.join(map(repr, repeated))} appears twice")
        if missing:
            faults.append(f"missing column {', '.join(map(repr, missing))}")
        if faults:
            raise self.fail(
                f"{'; '.join(faults)}. The first row must name the columns, from: "
                f"{', '.join(self.columns)} (capitals and spaces do not matter); "
                "remove any other column",
                HEADER,
            )
        return separator, names

    def _bounded(self, lines: Iterable[str]) -> Iterator[str]:
        """The lines, raising once they add up to more than the limit (a file growing)."""
        read = 0
        for line in lines:
            read += len(line)
            if read > self.max_bytes:
                raise self.fail(f"refused: the file is over the limit of {self.max_bytes:,} bytes")
            yield line


def _first_undecodable(path: Path, max_bytes: int) -> tuple[int, int]:
    """The line number and first offending byte of the first line that is not UTF-8."""
    with path.open("rb") as raw:
        for number, line in enumerate(io.BufferedReader(_Capped(raw, max_bytes)), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, line[exc.start]
    return 0, 0  # pragma: no cover - only called after a decoding error
