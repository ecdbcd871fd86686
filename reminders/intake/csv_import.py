"""`reminders import FILE.csv`: every good row is taken, every bad one reported with its line.

Rows are checked one by one and written in batches (BATCH_SIZE rows per transaction, a few
set-based statements per batch, see batch.upsert_batch). A batch the database refuses is
retried row by row, each in a savepoint, so one bad row never costs the good ones; a stopped
import keeps the batches already committed, and running it again is safe (upsert by external_id).

Nothing is merged in silence: a quote never closed that takes the rows after it into one cell
rejects its own row, and the lines after the one it was opened on are read again as rows
(RowValidator.merged_rows); a NUL character rejects its row, not the file.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from reminders.config import get_settings
from reminders.intake.batch import upsert_batch
from reminders.intake.csv_file import header_and_lines
from reminders.intake.csv_rows import Pending, RowResult, RowValidator
from reminders.intake.upsert import IntakeError
from reminders.locations import LocationBook

BATCH_SIZE = 500  # rows per transaction


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


def import_csv_text(session: Session, text: str, now: datetime, *, phone_region: str = "US",
                    series_length: int = 6, batch_size: int = BATCH_SIZE,
                    on_batch: Callable[[list[RowResult], int], None] | None = None,
                    locations: LocationBook | None = None) -> ImportReport:
    """Import every row; commits every `batch_size` rows, so a stopped import keeps what came before.

    on_batch(results, lines_read) is called for each batch before its commit (the caller may add
    its own rows to the same transaction, e.g. an import job's progress); lines_read counts the
    lines after the header, as count_lines does. `locations`: the clinic's locations, which the
    `location` column names (read from the database when not given)."""
    columns, lines = header_and_lines(text)
    header_lines = lines.position
    report = ImportReport()
    if locations is None:
        locations = LocationBook.load(session, get_settings())
    validator = RowValidator(columns, phone_region, locations)
    pending: list[Pending] = []
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
            pending.append(Pending(start, "", result=RowResult(start, "", "rejected", (reason,))))
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


def _flush(session: Session, pending: list[Pending], now: datetime, series_length: int, report: ImportReport,
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
