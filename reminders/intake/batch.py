"""Many (patient, appointment) records at once, by the rules of reminders.intake.upsert.

The records are applied in file order, but with a few statements per batch instead of several per
record: the batch's patients, appointments and open courses are read with one query each, the
records are applied in memory (apply_changes and course_numbers are shared with the one-record
path), and only what differs is written back.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reminders.intake.bulk_sql import among, bulk_insert, bulk_update, write_changes
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import (
    OPTIONAL_PATIENT_FIELDS, PATIENT_FIELDS, PLAN_FIELDS, ClosedLocation, IntakeError, apply_changes, check_open,
    closed_locations, course_numbers, new_location_id, new_patient_values, take_patient_changes,
)
from reminders.models import Appointment, Course, Patient
from reminders.visits import moves

APPOINTMENT_COLUMNS = (
    "id", "external_id", "patient_id", "course_id", "kind", "number_in_course", "starts_at", "duration_minutes",
    "location", "location_id", "status", "confirmed_at", "reschedule_requested_at", "canceled_at", "needs_planning",
    "planning_error", "created_at", "updated_at",
)
PATIENT_COLUMNS = ("id", "external_id", *PATIENT_FIELDS, *OPTIONAL_PATIENT_FIELDS, "welcomed_at", "updated_at")
_NEW = object()  # the id of a row not inserted yet


@dataclass
class _Batch:
    """The batch's patients, visits and courses as they will be, beside what is stored."""

    patients: dict[str, SimpleNamespace] = field(default_factory=dict)  # by external_id
    originals: dict[str, dict] = field(default_factory=dict)
    visits: dict[str, SimpleNamespace] = field(default_factory=dict)  # by external_id
    visit_originals: dict[str, dict] = field(default_factory=dict)
    open_course: dict[str, object] = field(default_factory=dict)  # patient key -> course id, or a new course's key
    conditions: dict[object, str | None] = field(default_factory=dict)  # course id or key -> its condition as it will be
    stored_conditions: dict[int, str | None] = field(default_factory=dict)
    new_courses: dict[str, str] = field(default_factory=dict)  # patient key -> course key ("new:<patient key>")
    touched_courses: set = field(default_factory=set)
    closed: dict[int, str] = field(default_factory=dict)


def upsert_batch(session: Session, items: Sequence[tuple[PatientRecord, AppointmentRecord]], now: datetime,
                 series_length: int = 6) -> list[str | IntakeError]:
    """Apply (patient, appointment) records in order; one result per item: created, updated,
    unchanged, or the IntakeError that refused it (and none of its changes are kept).

    Values the columns cannot hold are refused here (IntakeError). Any other database error is
    raised for the whole batch: the caller retries smaller parts of it, each in a savepoint, to
    find the row at fault (see csv_import._write)."""
    batch = _read_batch(session, items)
    results = [_apply(batch, patient_record, record, now) for patient_record, record in items]
    # Number the visits of every course a new or changed visit is in, before writing anything:
    # new visits go in with their number; visits outside the batch that move get an UPDATE.
    outside = _number_courses(session, batch.touched_courses, batch.visits)
    _write_patients(session, batch, now)
    _write_courses(session, batch, now, series_length)
    _write_visits(session, batch, outside)
    return results


# ---------------------------------------------------------------- reading what is stored

def _read_batch(session: Session, items: Sequence[tuple[PatientRecord, AppointmentRecord]]) -> _Batch:
    batch = _Batch()
    patients_table, appointments_table = Patient.__table__, Appointment.__table__
    for row in session.execute(select(*(patients_table.c[c] for c in PATIENT_COLUMNS)).where(
            among(patients_table.c.external_id, {p.external_id for p, _ in items}, session))):
        values = row._asdict()
        batch.patients[row.external_id] = SimpleNamespace(**values, plan_changed=False)
        batch.originals[row.external_id] = values
    owner_of = {p.id: key for key, p in batch.patients.items()}
    for row in session.execute(select(*(appointments_table.c[c] for c in APPOINTMENT_COLUMNS)).where(
            among(appointments_table.c.external_id, {a.external_id for _, a in items}, session))):
        values = row._asdict()
        batch.visits[row.external_id] = SimpleNamespace(**values, owner=owner_of.get(row.patient_id, row.patient_id))
        batch.visit_originals[row.external_id] = values
    _read_open_courses(session, batch, owner_of)
    batch.closed = closed_locations(session, [record for _, record in items])
    return batch


def _read_open_courses(session: Session, batch: _Batch, owner_of: dict[int, str]) -> None:
    """Each known patient's latest open course, with its condition."""
    courses_table = Course.__table__
    known_ids = [p.id for p in batch.patients.values()]
    if not known_ids:
        return
    for row in session.execute(
        select(courses_table.c.id, courses_table.c.patient_id, courses_table.c.condition)
        .where(among(courses_table.c.patient_id, known_ids, session), courses_table.c.ended_at.is_(None))
        .order_by(courses_table.c.started_at.desc(), courses_table.c.id.desc())
    ):
        if owner_of[row.patient_id] not in batch.open_course:
            batch.open_course[owner_of[row.patient_id]] = row.id
            batch.conditions[row.id] = batch.stored_conditions[row.id] = row.condition


# ---------------------------------------------------------------- applying the records in memory

def _apply(batch: _Batch, patient_record: PatientRecord, record: AppointmentRecord,
           now: datetime) -> str | IntakeError:
    refusal = _refusal(batch, patient_record, record)
    if refusal is not None:
        return refusal
    patient_result = _apply_patient(batch, patient_record, now)
    result = _apply_visit(batch, patient_record.external_id, record, now)
    if result == "unchanged" and patient_result == "updated":
        result = "updated"
    return result


def _refusal(batch: _Batch, patient_record: PatientRecord, record: AppointmentRecord) -> IntakeError | None:
    unfit = _unfit(patient_record, record)
    if unfit:
        return IntakeError(unfit)
    visit = batch.visits.get(record.external_id)
    if visit is not None and visit.owner != patient_record.external_id:
        return IntakeError(
            f"appointment {record.external_id!r} belongs to another patient; cancel it and book a new one"
        )
    try:
        check_open(record, visit.location_id if visit is not None else None, visit is None, batch.closed)
    except ClosedLocation as exc:
        return exc
    return None


def _apply_patient(batch: _Batch, patient_record: PatientRecord, now: datetime) -> str:
    key = patient_record.external_id
    patient = batch.patients.get(key)
    if patient is None:
        batch.patients[key] = SimpleNamespace(id=_NEW, external_id=key, welcomed_at=None, updated_at=now,
                                              plan_changed=False, **new_patient_values(patient_record))
        return "created"
    changed = take_patient_changes(patient, patient_record)
    if set(changed) & set(PLAN_FIELDS):
        patient.plan_changed = True
    if changed:
        patient.updated_at = now
    return "updated" if changed else "unchanged"


def _apply_visit(batch: _Batch, key: str, record: AppointmentRecord, now: datetime) -> str:
    visit = batch.visits.get(record.external_id)
    if visit is None:
        _book(batch, key, record, now)
        return "created"
    changed = apply_changes(visit, record, now)
    if changed and visit.course_id is not None:
        batch.touched_courses.add(visit.course_id)
    if (record.condition is not None and visit.course_id in batch.conditions
            and batch.conditions[visit.course_id] != record.condition):
        batch.conditions[visit.course_id] = record.condition
        changed.append("condition")
    return "updated" if changed else "unchanged"


def _book(batch: _Batch, key: str, record: AppointmentRecord, now: datetime) -> None:
    """A new visit, in the patient's open course (a new one when they have none)."""
    course = batch.open_course.get(key)
    if course is None:
        course = batch.new_courses[key] = batch.open_course[key] = f"new:{key}"
    batch.visits[record.external_id] = SimpleNamespace(
        id=_NEW, external_id=record.external_id, owner=key, course_id=course, kind=record.kind,
        number_in_course=1, starts_at=record.starts_at, duration_minutes=record.duration_minutes,
        location=record.location, location_id=new_location_id(record), **moves.booking(record.status, now),
        reschedule_requested_at=None, needs_planning=True, planning_error=None,
        created_at=now, updated_at=now,
    )
    batch.touched_courses.add(course)
    batch.conditions.setdefault(course, None)
    if record.condition is not None:
        batch.conditions[course] = record.condition


# ---------------------------------------------------------------- writing back what differs

def _write_patients(session: Session, batch: _Batch, now: datetime) -> None:
    """Insert the new ones, write what changed on the others, re-plan on new contact details."""
    patients_table, appointments_table = Patient.__table__, Appointment.__table__
    patients = batch.patients
    fresh_patients = [p for p in patients.values() if p.id is _NEW]
    if fresh_patients:
        inserted = bulk_insert(
            session, patients_table,
            [{"external_id": p.external_id, **{f: getattr(p, f) for f in (*PATIENT_FIELDS, *OPTIONAL_PATIENT_FIELDS)},
              "sms_opted_out": False,
              "notes": "", "created_at": now, "updated_at": now} for p in fresh_patients],
            returning=("id", "external_id"),
        )
        for row in inserted:
            patients[row.external_id].id = row.id
    write_changes(session, patients_table, [
        (p.id, _differences(p, batch.originals[key], PATIENT_COLUMNS))
        for key, p in patients.items() if key in batch.originals
    ])
    replan = [p.id for key, p in patients.items() if p.plan_changed and key in batch.originals]
    if replan:
        session.execute(update(appointments_table).where(among(appointments_table.c.patient_id, replan, session))
                        .values(needs_planning=True, planning_error=None))


def _write_courses(session: Session, batch: _Batch, now: datetime, series_length: int) -> None:
    """Courses for patients who had none open; a stored course's condition that changed."""
    courses_table = Course.__table__
    if batch.new_courses:
        inserted = bulk_insert(
            session, courses_table,
            [{"patient_id": batch.patients[key].id, "started_at": now, "induction_sessions_planned": series_length,
              "condition": batch.conditions.get(course_key)} for key, course_key in batch.new_courses.items()],
            returning=("id", "patient_id"),
        )
        course_ids = {row.patient_id: row.id for row in inserted}
        resolved = {course_key: course_ids[batch.patients[key].id] for key, course_key in batch.new_courses.items()}
        for visit in batch.visits.values():
            visit.course_id = resolved.get(visit.course_id, visit.course_id)
    stored = batch.stored_conditions
    write_changes(session, courses_table, [
        (course_id, {"condition": condition}) for course_id, condition in batch.conditions.items()
        if isinstance(course_id, int) and course_id in stored and stored[course_id] != condition
    ])


def _write_visits(session: Session, batch: _Batch, outside: list[dict]) -> None:
    """Insert the new ones, write what changed on the others, then renumber the courses."""
    appointments_table = Appointment.__table__
    fresh_visits = [v for v in batch.visits.values() if v.id is _NEW]
    if fresh_visits:
        bulk_insert(session, appointments_table, [
            {**{c: getattr(v, c) for c in APPOINTMENT_COLUMNS if c not in ("id", "patient_id")},
             "patient_id": batch.patients[v.owner].id}
            for v in fresh_visits
        ])
    write_changes(session, appointments_table, [
        (v.id, _differences(v, batch.visit_originals[key], APPOINTMENT_COLUMNS)) for key, v in batch.visits.items()
        if key in batch.visit_originals
    ])
    bulk_update(session, appointments_table, [(row["_id"], {"number_in_course": row["_number"], "needs_planning": True,
                                                            "planning_error": None})
                                              for row in outside])


def _differences(state: SimpleNamespace, original: dict, columns: Sequence[str]) -> dict:
    return {c: getattr(state, c) for c in columns if c != "id" and getattr(state, c) != original[c]}


def _number_courses(session: Session, courses: set, visits: dict[str, SimpleNamespace]) -> list[dict]:
    """Renumber the given courses (ids, or keys of courses not inserted yet) with the batch's
    visits as they now stand; set the number on the batch's visits and return the UPDATE
    parameters for the visits stored outside the batch whose number changes."""
    if not courses:
        return []
    table = Appointment.__table__
    members: dict[object, list] = defaultdict(list)
    order: dict[int, tuple] = {}
    for n, visit in enumerate(visits.values()):
        if visit.course_id in courses:
            members[visit.course_id].append(visit)
            # Stored visits sort by id; new ones come after them, in the order they are inserted.
            order[id(visit)] = (0, visit.id) if visit.id is not _NEW else (1, n)
    stored = [c for c in courses if isinstance(c, int)]
    if stored:
        for row in session.execute(
            select(table.c.id, table.c.external_id, table.c.course_id, table.c.kind, table.c.status,
                   table.c.starts_at, table.c.number_in_course).where(among(table.c.course_id, stored, session))
        ):
            mine = visits.get(row.external_id)
            if mine is not None and mine.id == row.id:
                continue  # the batch's own state of this visit is already counted (or has moved course)
            members[row.course_id].append(row)
            order[id(row)] = (0, row.id)
    outside = []
    for course_visits in members.values():
        keyed = [SimpleNamespace(visit=v, id=order[id(v)], kind=v.kind, status=v.status, starts_at=v.starts_at,
                                 number_in_course=v.number_in_course) for v in course_visits]
        for item, number in course_numbers(keyed):
            if isinstance(item.visit, SimpleNamespace):
                item.visit.number_in_course = number
                item.visit.needs_planning = True
                item.visit.planning_error = None
            else:
                outside.append({"_id": item.visit.id, "_number": number})
    return outside


_LENGTHS = [(0, c, "patient_external_id" if c == "external_id" else c, Patient.__table__.c[c].type.length)
            for c in ("external_id", *PATIENT_FIELDS)]
_LENGTHS += [(1, c, c, Appointment.__table__.c[c].type.length) for c in ("external_id", "kind", "location", "status")]


def _unfit(patient: PatientRecord, record: AppointmentRecord) -> str | None:
    """Why the database could not store these records as they are, if it could not: a value
    longer than its column, or a time beyond what a UTC timestamp holds. (Checked here so that
    a batch rarely has to be retried part by part.)"""
    sources = (patient, record)
    for which, column, name, length in _LENGTHS:
        value = getattr(sources[which], column)
        if value is not None and len(value) > length:
            return f"{name} is longer than {length} characters ({len(value)})"
    try:
        record.starts_at.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return f"starts_at {record.starts_at.isoformat()} is out of range"
    return None
