"""A CSV row's cells turned into a patient and an appointment record, or rejected with reasons.

Nothing is merged in silence: a quote never closed that takes the rows after it into one cell
rejects its own row, and the lines after the one it was opened on are read again as rows
(RowValidator.merged_rows); a NUL character rejects its row, not the file.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from reminders.intake.csv_file import LINE_BREAK, Lines
from reminders.intake.records import AppointmentRecord, PatientRecord, locate, normalize_phone, reasons
from reminders.locations import LocationBook

PATIENT_CELLS = ("patient_external_id", "first_name", "last_name", "phone", "email", "timezone", "preferred_channel",
                 "language", "medications_to_hold")


@dataclass(frozen=True)
class RowResult:
    line: int  # the line the record starts on; the header is line 1
    external_id: str
    result: str  # created | updated | unchanged | rejected
    reasons: tuple[str, ...] = ()


@dataclass
class Pending:
    line: int
    external_id: str
    records: tuple[PatientRecord, AppointmentRecord] | None = None
    result: RowResult | None = None
    reread_from: int = 0  # a record that swallowed rows: the line to read again from


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

    def merged_rows(self, cells: list[str], line: int, lines: Lines) -> Pending | None:
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
                breaks = len(LINE_BREAK.findall(cell))
                if opened + breaks >= number:
                    break
                opened += breaks
            field_end = min(opened + len(LINE_BREAK.findall(cells[index])), last)
            position = self.columns.index("external_id")
            external_id = cells[position].strip().replace("\x00", "") if position < index else ""
            reason = (f"a quoted field opened on line {opened} is not closed; lines {opened}-{field_end} were read "
                      f"as one field (the lines after line {opened} are read as rows of their own)")
            return Pending(line, external_id, result=RowResult(line, external_id, "rejected", (reason,)),
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

    def check(self, cells: list[str], line: int) -> Pending:
        columns = self.columns
        values = dict(zip(columns, cells))
        external_id = values.get("external_id", "").strip()
        damaged = [columns[n] if n < len(columns) else f"value {n + 1}" for n, cell in enumerate(cells) if "\x00" in cell]
        if damaged:  # a damaged line: nothing in it is taken, the other rows are
            return Pending(line, external_id.replace("\x00", ""), result=RowResult(
                line, external_id.replace("\x00", ""), "rejected",
                tuple(f"{name} contains a NUL character" for name in damaged)))
        if len(cells) != len(columns):
            return Pending(line, external_id, result=RowResult(
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
            return Pending(line, external_id, result=RowResult(line, external_id, "rejected", tuple(errors)))
        return Pending(line, external_id, records=(patient_record, appointment_record))


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
