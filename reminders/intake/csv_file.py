"""An appointment CSV file as read: its text, its header, its physical lines.

A file as a whole is refused (UnusableFile) when it cannot be an appointment CSV: not text, too
large, or no header with the required columns. Its rows are checked one by one elsewhere
(reminders.intake.csv_rows).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

COLUMNS = (
    "external_id", "patient_external_id", "first_name", "last_name", "phone", "email", "timezone",
    "preferred_channel", "kind", "starts_at", "duration_minutes", "location", "status",
)
# May follow the columns above; a file without them imports the same (what is stored stays).
OPTIONAL_COLUMNS = ("language", "condition", "medications_to_hold")
REQUIRED_COLUMNS = ("external_id", "patient_external_id", "first_name", "timezone", "kind", "starts_at")
MAX_FILE_BYTES = 50 * 1024 * 1024


class UnusableFile(Exception):
    """The file as a whole cannot be read as an appointment CSV."""


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableFile(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise UnusableFile(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return decode(data)


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnusableFile("the file is not text (expected UTF-8 CSV)")


NOT_TEXT = "the file is not text (expected UTF-8 CSV)"
# A physical line as io.StringIO(text, newline="") reads it: ended by \n, \r or \r\n.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


class Lines:
    """The file's physical lines, given to csv.reader one at a time. `position` is how many have
    been read (so the line a record starts on is position + 1 before it is read); setting it
    back reads again from there, with a new reader."""

    def __init__(self, text: str):
        self.lines = _LINE.findall(text)
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1]

    def line(self, number: int) -> str:
        """Line `number` (the header is line 1), without its line break."""
        return self.lines[number - 1].rstrip("\r\n")


def header_and_lines(text: str) -> tuple[list[str], Lines]:
    lines = Lines(text)
    try:
        header = next(csv.reader(lines))
    except StopIteration:
        raise UnusableFile("the file is empty: expected a header line with the columns " + ", ".join(COLUMNS)) from None
    except csv.Error as exc:
        raise UnusableFile(f"line 1: {exc}") from exc
    if any("\x00" in name for name in header):  # e.g. UTF-16, or a binary file
        raise UnusableFile(NOT_TEXT)
    columns = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        if "\x00" in text:  # no CSV header, and NUL characters: not a text file at all
            raise UnusableFile(NOT_TEXT)
        raise UnusableFile(f"line 1: the header lacks the column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    if "phone" not in columns and "email" not in columns:
        raise UnusableFile("line 1: the header needs a phone or an email column")
    return columns, lines


def read_header(text: str) -> tuple[list[str], "csv._reader"]:
    """The lower-cased column names and a reader positioned after them; UnusableFile if the
    file as a whole cannot be an appointment CSV (no header, or not text: a NUL in the header
    line, or NULs in a file without a header). A NUL in a row rejects only that row."""
    columns, lines = header_and_lines(text)
    return columns, csv.reader(lines)


def count_lines(text: str) -> int:
    """Lines after the header: an upper bound of the rows, for a progress bar."""
    return max(text.count("\n") - (1 if text.endswith("\n") else 0), 0)
