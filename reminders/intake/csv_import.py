"""`reminders import FILE.csv`: every good row is taken, every bad one reported with its line."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session

from reminders.intake.records import AppointmentRecord, PatientRecord, reasons
from reminders.intake.upsert import IntakeError, upsert_appointment, upsert_patient

COLUMNS = (
    "external_id", "patient_external_id", "first_name", "last_name", "phone", "email", "timezone",
    "preferred_channel", "kind", "starts_at", "duration_minutes", "location", "status",
)
REQUIRED_COLUMNS = ("external_id", "patient_external_id", "first_name", "timezone", "kind", "starts_at")
MAX_FILE_BYTES = 50 * 1024 * 1024


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


def import_csv_text(session: Session, text: str, now: datetime, *, phone_region: str = "US",
                    series_length: int = 6) -> ImportReport:
    if "\x00" in text:
        raise UnusableFile("the file is not text (expected UTF-8 CSV)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UnusableFile("the file is empty: expected a header line with the columns " + ", ".join(COLUMNS)) from None
    except csv.Error as exc:
        raise UnusableFile(f"line 1: {exc}") from exc
    columns = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise UnusableFile(f"line 1: the header lacks the column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    if "phone" not in columns and "email" not in columns:
        raise UnusableFile("line 1: the header needs a phone or an email column")

    report = ImportReport()
    line = 2
    while True:
        start = line
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rows.append(RowResult(start, "", "rejected", (f"unreadable CSV: {exc}",)))
            line = reader.line_num + 1
            continue
        line = reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        report.rows.append(_import_row(session, columns, cells, start, now, phone_region, series_length))
    session.commit()
    return report


def _import_row(session: Session, columns: list[str], cells: list[str], line: int, now: datetime,
                phone_region: str, series_length: int) -> RowResult:
    if len(cells) != len(columns):
        values = dict(zip(columns, cells))
        return RowResult(line, values.get("external_id", "").strip(), "rejected",
                         (f"has {len(cells)} values where the header has {len(columns)} columns",))
    values = dict(zip(columns, cells))
    external_id = values.get("external_id", "").strip()
    errors: list[str] = []
    patient_record = appointment_record = None
    try:
        patient_record = PatientRecord(
            external_id=values.get("patient_external_id", ""), first_name=values.get("first_name", ""),
            last_name=values.get("last_name", ""), phone=values.get("phone"), email=values.get("email"),
            timezone=values.get("timezone", ""), preferred_channel=values.get("preferred_channel"),
            phone_region=phone_region,
        )
    except ValidationError as exc:
        errors += [r.replace("external_id is missing", "patient_external_id is missing") for r in reasons(exc)]
    try:
        appointment_record = AppointmentRecord(
            external_id=external_id, kind=values.get("kind", ""), starts_at=values.get("starts_at", ""),
            duration_minutes=values.get("duration_minutes"), location=values.get("location"),
            status=values.get("status"),
        )
    except ValidationError as exc:
        errors += reasons(exc)
    if errors:
        return RowResult(line, external_id, "rejected", tuple(errors))
    savepoint = session.begin_nested()
    try:
        patient_outcome = upsert_patient(session, patient_record, now)
        outcome = upsert_appointment(session, patient_outcome.patient, appointment_record, now, series_length)
        savepoint.commit()
    except IntakeError as exc:
        savepoint.rollback()
        return RowResult(line, external_id, "rejected", (str(exc),))
    result = outcome.result
    if result == "unchanged" and patient_outcome.result == "updated":
        result = "updated"
    return RowResult(line, external_id, result)
