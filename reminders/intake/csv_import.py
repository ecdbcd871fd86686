"""`reminders import FILE.csv`: every good row is taken, every bad one reported with its line.

Rows are checked one by one and written in batches (BATCH_SIZE rows per transaction, a few
set-based statements per batch, see upsert.upsert_batch). A batch the database refuses is
retried row by row, each in a savepoint, so one bad row never costs the good ones; a stopped
import keeps the batches already committed, and running it again is safe (upsert by external_id).

Nothing is merged in silence: a quote never closed that takes the rows after it into one cell
rejects its own row, and the lines after the one it was opened on are read again as rows
(RowValidator.merged_rows); a NUL character rejects its row, not the file.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from reminders.config import get_settings
from reminders.intake.records import AppointmentRecord, PatientRecord, locate, normalize_phone, reasons
from reminders.intake.upsert import IntakeError, upsert_batch
from reminders.locations import LocationBook

COLUMNS = (
    "external_id", "patient_external_id", "first_name", "last_name", "phone", "email", "timezone",
    "preferred_channel", "kind", "starts_at", "duration_minutes", "location", "status",
)
# May follow the columns above; a file without them imports the same (what is stored stays).
OPTIONAL_COLUMNS = ("language", "condition", "medications_to_hold")
REQUIRED_COLUMNS = ("external_id", "patient_external_id", "first_name", "timezone", "kind", "starts_at")
PATIENT_CELLS = ("patient_external_id", "first_name", "last_name", "phone", "email", "timezone", "preferred_channel",
                 "language", "medications_to_hold")
MAX_FILE_BYTES = 50 * 1024 * 1024
BATCH_SIZE = 500  # rows per transaction


class UnusableFile(Exception):
    """The file as a whole cannot be read as an appointment CSV."""


@dataclass(frozen=True)
class RowResult:
    line: int  # the line the record starts on; the header is line 1
    external_id: str
    result: str  # created | updated | unchanged | rejected
    reasons: tuple[str, ...] = ()


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for row in self.rows if row.result == result)

    @property
    def rejected(self) -> list[RowResult]:
        return [row for row in self.rows if row.result == "rejected"]

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0

    def summary(self) -> dict:
        return {
            "rows": len(self.rows),
            **{name: self.count(name) for name in ("created", "updated", "unchanged", "rejected")},
            "errors": [{"line": r.line, "external_id": r.external_id, "reasons": list(r.reasons)} for r in self.rejected],
        }


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
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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


def _read_header(text: str) -> tuple[list[str], Lines]:
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
    columns, lines = _read_header(text)
    return columns, csv.reader(lines)


def count_lines(text: str) -> int:
    """Lines after the header: an upper bound of the rows, for a progress bar."""
    return max(text.count("\n") - (1 if text.endswith("\n") else 0), 0)


@dataclass
class _Pending:
    line: int
    external_id: str
    records: tuple[PatientRecord, AppointmentRecord] | None = None
    result: RowResult | None = None
    reread_from: int = 0  # a record that swallowed rows: the line to read again from


def import_csv_text(session: Session, text: str, now: datetime, *, phone_region: str = "US",
                    series_length: int = 6, batch_size: int = BATCH_SIZE,
                    on_batch: Callable[[list[RowResult], int], None] | None = None,
                    locations: LocationBook | None = None) -> ImportReport:
    """Import every row; commits every `batch_size` rows, so a stopped import keeps what came before.

    on_batch(results, lines_read) is called for each batch before its commit (the caller may add
    its own rows to the same transaction, e.g. an import job's progress); lines_read counts the
    lines after the header, as count_lines does. `locations`: the clinic's locations, which the
    `location` column names (read from the database when not given)."""
    columns, lines = _read_header(text)
    header_lines = lines.position
    report = ImportReport()
    if locations is None:
        locations = LocationBook.load(session, get_settings())
    validator = RowValidator(columns, phone_region, locations)
    pending: list[_Pending] = []
    reader = csv.reader(lines)
    while True:
        start = lines.position + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            reason = f"unreadable CSV: {exc}"
            if lines.position > start:  # most likely a quote never closed: read the lines after this one as rows
                reason += (f"; lines {start}-{lines.position} were read as one row (is a quote not closed?), "
                           f"the lines after line {start} are read as rows of their own")
                lines.position = start
                reader = csv.reader(lines)
            pending.append(_Pending(start, "", result=RowResult(start, "", "rejected", (reason,))))
            continue
        if lines.position > start and (merged := validator.merged_rows(cells, start, lines)) is not None:
            pending.append(merged)
            # Read again from the line after the one the quote was opened on: those lines are rows.
            lines.position = merged.reread_from - 1
            reader = csv.reader(lines)
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        pending.append(validator.check(cells, start))
        if len(pending) >= batch_size:
            _flush(session, pending, now, series_length, report, on_batch, lines.position - header_lines)
            pending = []
    _flush(session, pending, now, series_length, report, on_batch, lines.position - header_lines)
    return report


class RowValidator:
    """Turns a row's cells into records, or a rejected RowResult with the reasons.

    A patient with several visits repeats the same cells on each row: the patient record (and
    its phone number parsing) is worked out once per distinct set of cells."""

    def __init__(self, columns: list[str], phone_region: str, locations: LocationBook | None = None):
        self.columns = columns
        self.phone_region = phone_region
        self.locations = locations
        self.patients: dict[tuple, PatientRecord | list[str]] = {}

    def patient(self, values: dict) -> PatientRecord | list[str]:
        key = tuple(values.get(name) for name in PATIENT_CELLS)
        found = self.patients.get(key)
        if found is None:
            try:
                found = PatientRecord(
                    external_id=values.get("patient_external_id", ""), first_name=values.get("first_name", ""),
                    last_name=values.get("last_name", ""), phone=values.get("phone"), email=values.get("email"),
                    timezone=values.get("timezone", ""), preferred_channel=values.get("preferred_channel"),
                    phone_region=self.phone_region, language=values.get("language"),
                    medications_to_hold=values.get("medications_to_hold"),
                )
            except ValidationError as exc:
                found = [r.replace("external_id is missing", "patient_external_id is missing") for r in reasons(exc)]
            self.patients[key] = found
        return found

    def merged_rows(self, cells: list[str], line: int, lines: Lines) -> _Pending | None:
        """A record read over several lines (a quoted field with line breaks) whose later lines,
        each taken alone, look like rows of this file: a quote that was never closed (or closed
        only by a quote in a later row) took them into one field. The record is rejected, naming
        the lines, and the lines after the one the quote was opened on are to be read again as
        rows. None for a quoted note that only spans lines ("take half\nthe dose")."""
        last = lines.position
        for number in range(line + 1, last + 1):
            if not self.looks_like_a_row(lines.line(number)):
                continue
            opened, index = line, 0  # the cell that holds the line break before line `number`
            for index, cell in enumerate(cells):
                breaks = len(_LINE_BREAK.findall(cell))
                if opened + breaks >= number:
                    break
                opened += breaks
            field_end = min(opened + len(_LINE_BREAK.findall(cells[index])), last)
            position = self.columns.index("external_id")
            external_id = cells[position].strip().replace("\x00", "") if position < index else ""
            reason = (f"a quoted field opened on line {opened} is not closed; lines {opened}-{field_end} were read "
                      f"as one field (the lines after line {opened} are read as rows of their own)")
            return _Pending(line, external_id, result=RowResult(line, external_id, "rejected", (reason,)),
                            reread_from=opened + 1)
        return None

    def looks_like_a_row(self, text: str) -> bool:
        """A line that, taken alone, has the shape of a row: as many values as the header has
        columns, or a date at the starts_at column, or a phone number at the phone column."""
        try:
            values = next(csv.reader([text]), [])
        except csv.Error:
            values = text.split(",")
        if len(values) < 2:
            return False
        if len(values) >= len(self.columns):
            return True
        position = self.columns.index("starts_at")
        if position < len(values) and _is_date(values[position]):
            return True
        position = self.columns.index("phone") if "phone" in self.columns else len(values)
        return position < len(values) and _is_phone(values[position], self.phone_region)

    def check(self, cells: list[str], line: int) -> _Pending:
        columns = self.columns
        values = dict(zip(columns, cells))
        external_id = values.get("external_id", "").strip()
        damaged = [columns[n] if n < len(columns) else f"value {n + 1}" for n, cell in enumerate(cells) if "\x00" in cell]
        if damaged:  # a damaged line: nothing in it is taken, the other rows are
            return _Pending(line, external_id.replace("\x00", ""), result=RowResult(
                line, external_id.replace("\x00", ""), "rejected",
                tuple(f"{name} contains a NUL character" for name in damaged)))
        if len(cells) != len(columns):
            return _Pending(line, external_id, result=RowResult(
                line, external_id, "rejected", (f"has {len(cells)} values where the header has {len(columns)} columns",)))
        errors: list[str] = []
        patient_record = self.patient(values)
        if isinstance(patient_record, list):
            errors += patient_record
        try:
            appointment_record = AppointmentRecord(
                external_id=external_id, kind=values.get("kind", ""), starts_at=values.get("starts_at", ""),
                duration_minutes=values.get("duration_minutes"), location=values.get("location"),
                status=values.get("status"), condition=values.get("condition"),
            )
            if self.locations is not None:
                appointment_record.location_id = locate(self.locations, appointment_record.location)
        except ValidationError as exc:
            errors += reasons(exc)
        except ValueError as exc:  # LocationError: a location the clinic does not have
            errors.append(str(exc))
        if errors:
            return _Pending(line, external_id, result=RowResult(line, external_id, "rejected", tuple(errors)))
        return _Pending(line, external_id, records=(patient_record, appointment_record))


def _is_date(value: str) -> bool:
    value = value.strip()
    if len(value) < 10 or not value[:4].isdigit():
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_phone(value: str, region: str) -> bool:
    if sum(ch.isdigit() for ch in value) < 7:
        return False
    try:
        normalize_phone(value, region)
    except ValueError:
        return False
    return True


def _flush(session: Session, pending: list[_Pending], now: datetime, series_length: int, report: ImportReport,
           on_batch, lines_read: int) -> None:
    """Write one batch and commit it. A batch the database refuses is split in halves, each tried
    again in a savepoint, down to the row at fault, which is reported with the reason: the other
    rows are kept, at the cost of a few more statements per bad row, not one round per row."""
    todo = [item for item in pending if item.records is not None]
    _open_transaction(session)
    outcomes = _write(session, [item.records for item in todo], now, series_length)
    for item, outcome in zip(todo, outcomes):
        if isinstance(outcome, Exception):
            item.result = RowResult(item.line, item.external_id, "rejected", (failure_reason(outcome),))
        else:
            item.result = RowResult(item.line, item.external_id, outcome)
    results = [item.result for item in pending]
    report.rows.extend(results)
    if on_batch is not None:
        on_batch(results, lines_read)
    session.commit()


def _open_transaction(session: Session) -> None:
    """Make sure the batch's savepoints sit inside a transaction. The sqlite3 module opens one
    only before a data change, and SQLite commits at once the RELEASE of a savepoint opened
    outside a transaction: the batch and what on_batch adds would not commit together."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _write(session: Session, items: list, now: datetime, series_length: int) -> list[str | Exception]:
    """upsert_batch in a savepoint; on failure, the halves in order (the rows' order matters:
    a later row may update what an earlier one created)."""
    if not items:
        return []
    try:
        with session.begin_nested():
            return upsert_batch(session, items, now, series_length)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise  # the database is gone, not this row: stop; what was committed is kept
        if len(items) == 1:
            return [exc]
    except Exception as exc:  # noqa: BLE001 - e.g. a value the database layer cannot take
        if len(items) == 1:
            return [exc]
    middle = len(items) // 2
    return (_write(session, items[:middle], now, series_length)
            + _write(session, items[middle:], now, series_length))


def failure_reason(exc: Exception) -> str:
    """A short reason for a row the database would not take."""
    if isinstance(exc, IntakeError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"the database refused the row: {detail}"
    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"the row could not be stored: {exc.orig}"
    return f"the row could not be stored: {exc}"
