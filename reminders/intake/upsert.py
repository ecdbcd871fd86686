"""Create or update patients and appointments by `external_id`, and keep the plan in step.

Only real changes are written, so importing the same file twice changes nothing. A change that
affects what or when a patient is sent (time, place, status, kind, contact details) marks the affected
appointments for planning; the next pass moves or cancels their pending messages.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Iterable, Sequence

from sqlalchemy import any_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from reminders.intake.records import KEEP_LOCATION, AppointmentRecord, PatientRecord
from reminders.models import Appointment, Course, Location, Patient
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.planning.planner import mark_for_planning

PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")
# Changes to these fields change what is sent or where, so they re-plan the patient's visits.
PLAN_FIELDS = ("phone", "email", "timezone", "preferred_channel")
# Written only when the record carries them (None: a file without the column keeps what is stored).
OPTIONAL_PATIENT_FIELDS = ("language", "medications_to_hold")
NEW_PATIENT_DEFAULTS = {"language": DEFAULT_LANGUAGE, "medications_to_hold": ""}


class IntakeError(ValueError):
    """A record that cannot be applied, with a reason a person can act on."""


class ClosedLocation(IntakeError):
    """A new visit (or a visit moved) at a location that no longer takes visits."""


def closed_locations(session: Session, records: Iterable[AppointmentRecord]) -> dict[int, str]:
    """The locations these records name that are closed (inactive), with their codes."""
    ids = {r.location_id for r in records if isinstance(r.location_id, int)}
    if not ids:
        return {}
    return dict(session.execute(select(Location.id, Location.code)
                                .where(Location.id.in_(ids), Location.active.is_(False))).all())


def check_open(record: AppointmentRecord, stored_location_id: int | None, new: bool, closed: dict[int, str]) -> None:
    """An inactive location takes no new visits; the visits already there stay (and may change)."""
    wanted = record.location_id
    if wanted in closed and (new or stored_location_id != wanted):
        raise ClosedLocation(f"location {closed[wanted]!r} is closed: it takes no new visits")


def fresh(query):
    """Read what the database holds now, not what this session saw earlier: the scheduler
    changes rows (needs_planning) behind a long-lived session's back."""
    return query.execution_options(populate_existing=True)


@dataclass(frozen=True)
class Outcome:
    patient: Patient | None
    appointment: Appointment | None
    result: str  # created | updated | unchanged


def upsert_patient(session: Session, record: PatientRecord, now: datetime, default_series: int = 6) -> Outcome:
    patient = session.scalar(fresh(select(Patient).where(Patient.external_id == record.external_id)))
    if patient is None:
        patient = Patient(external_id=record.external_id, created_at=now, updated_at=now,
                          **new_patient_values(record))
        session.add(patient)
        session.flush()
        return Outcome(patient, None, "created")
    changed = patient_changes(patient, record)
    for field in changed:
        setattr(patient, field, getattr(record, field))
    if "phone" in changed:
        patient.welcomed_at = None  # a new number gets the introduction again
    if set(changed) & set(PLAN_FIELDS):
        session.flush()
        mark_for_planning(session, patient_id=patient.id)
    return Outcome(patient, None, "updated" if changed else "unchanged")


def patient_changes(patient, record: PatientRecord) -> list[str]:
    """The fields where the record differs from what is stored (an optional field only when given)."""
    return [f for f in PATIENT_FIELDS if getattr(patient, f) != getattr(record, f)] + [
        f for f in OPTIONAL_PATIENT_FIELDS if getattr(record, f) is not None and getattr(patient, f) != getattr(record, f)
    ]


def new_patient_values(record: PatientRecord) -> dict:
    values = {f: getattr(record, f) for f in PATIENT_FIELDS}
    for field in OPTIONAL_PATIENT_FIELDS:
        given = getattr(record, field)
        values[field] = NEW_PATIENT_DEFAULTS[field] if given is None else given
    return values


def set_condition(course: Course, condition: str | None) -> bool:
    """The course's condition from a record that names one; True when it changed."""
    if condition is None or course.condition == condition:
        return False
    course.condition = condition
    return True


def current_course(session: Session, patient: Patient, now: datetime, series_length: int) -> Course:
    course = session.scalar(
        select(Course).where(Course.patient_id == patient.id, Course.ended_at.is_(None)).order_by(Course.started_at.desc())
    )
    if course is None:
        course = Course(patient_id=patient.id, started_at=now, induction_sessions_planned=series_length)
        session.add(course)
        session.flush()
    return course


def upsert_appointment(session: Session, patient: Patient, record: AppointmentRecord, now: datetime,
                       series_length: int = 6) -> Outcome:
    appointment = session.scalar(fresh(select(Appointment).where(Appointment.external_id == record.external_id)))
    if appointment is not None and appointment.patient_id != patient.id:
        raise IntakeError(
            f"appointment {record.external_id!r} belongs to another patient; cancel it and book a new one"
        )
    check_open(record, appointment.location_id if appointment is not None else None, appointment is None,
               closed_locations(session, [record]))
    if appointment is None:
        course = current_course(session, patient, now, series_length)
        set_condition(course, record.condition)
        appointment = Appointment(
            external_id=record.external_id, patient_id=patient.id, course_id=course.id, kind=record.kind,
            starts_at=record.starts_at, duration_minutes=record.duration_minutes, location=record.location,
            location_id=new_location_id(record), status=record.status or "scheduled", needs_planning=True,
            created_at=now, updated_at=now,
        )
        if appointment.status == "canceled":
            appointment.canceled_at = now
        session.add(appointment)
        session.flush()
        renumber_course(session, appointment.course_id)
        return Outcome(patient, appointment, "created")
    changed = apply_changes(appointment, record, now)
    if changed:
        session.flush()
        renumber_course(session, appointment.course_id)
    if appointment.course is not None and set_condition(appointment.course, record.condition):
        changed.append("condition")
    return Outcome(patient, appointment, "updated" if changed else "unchanged")


def apply_changes(appointment: Appointment, record: AppointmentRecord, now: datetime) -> list[str]:
    """Set what differs; returns the names of the fields that changed."""
    wanted = {
        "kind": record.kind, "starts_at": record.starts_at,
        "duration_minutes": record.duration_minutes, "location": record.location,
    }
    if record.location_id != KEEP_LOCATION:  # a visit moved to another location is planned again
        wanted["location_id"] = record.location_id
    status = record.status
    # A feed that says "scheduled" must not undo the patient's own confirmation.
    if status == "scheduled" and appointment.status == "confirmed":
        status = "confirmed"
    if status is not None:
        wanted["status"] = status
    changed = [field for field, value in wanted.items() if getattr(appointment, field) != value]
    for field in changed:
        setattr(appointment, field, wanted[field])
    if "status" in changed and appointment.status == "canceled":
        appointment.canceled_at = now
    if "starts_at" in changed:
        appointment.confirmed_at = None
        appointment.reschedule_requested_at = None
        if appointment.status == "confirmed":
            appointment.status = "scheduled"  # a confirmation was for the old time
    if changed:
        appointment.needs_planning = True
        appointment.planning_error = None  # changed: worth trying to plan again
        appointment.updated_at = now
    return changed


def new_location_id(record: AppointmentRecord) -> int | None:
    return None if record.location_id == KEEP_LOCATION else record.location_id


def renumber_course(session: Session, course_id: int | None) -> None:
    """Number the course's induction visits 1..n by time; canceled and missed (no-show) visits
    take no place in the series: after a missed first infusion the next visit is 1 of 6 again.

    A visit whose number changes is re-planned: the new first infusion needs the full
    instructions that the canceled or missed one would have had.
    """
    if course_id is None:
        return
    visits = session.scalars(fresh(
        select(Appointment).where(Appointment.course_id == course_id).order_by(Appointment.starts_at, Appointment.id)
    )).all()
    for visit, number in course_numbers(visits):
        visit.number_in_course = number
        visit.needs_planning = True
        visit.planning_error = None


def course_numbers(visits: Iterable) -> list[tuple]:
    """(visit, its new number) for the visits of one course whose number must change.

    A visit is anything with id, kind, status, starts_at and number_in_course."""
    counters = {"induction": 0, "maintenance": 0}
    changes = []
    for visit in sorted(visits, key=lambda v: (v.starts_at, v.id)):
        if visit.status == "canceled":
            continue
        if visit.status == "no_show":
            # A missed visit carries the number of the infusions held before it, so "infusion
            # number + 1 is not booked" names the one to book again.
            number = counters.get(visit.kind, 0)
        else:
            number = counters[visit.kind] = counters.get(visit.kind, 0) + 1
        if visit.number_in_course != number:
            changes.append((visit, number))
    return changes


# --- Many records at once ------------------------------------------------------------------------
#
# The same rules as upsert_patient and upsert_appointment applied in file order, but with a few
# statements per batch instead of several per record: the batch's patients, appointments and
# open courses are read with one query each, the records are applied in memory (apply_changes and
# course_numbers are shared with the one-record path), and only what differs is written back.

APPOINTMENT_COLUMNS = (
    "id", "external_id", "patient_id", "course_id", "kind", "number_in_course", "starts_at", "duration_minutes",
    "location", "location_id", "status", "confirmed_at", "reschedule_requested_at", "canceled_at", "needs_planning",
    "planning_error", "created_at", "updated_at",
)
PATIENT_COLUMNS = ("id", "external_id", *PATIENT_FIELDS, *OPTIONAL_PATIENT_FIELDS, "welcomed_at", "updated_at")
_NEW = object()  # the id of a row not inserted yet


def upsert_batch(session: Session, items: Sequence[tuple[PatientRecord, AppointmentRecord]], now: datetime,
                 series_length: int = 6) -> list[str | IntakeError]:
    """Apply (patient, appointment) records in order; one result per item: created, updated,
    unchanged, or the IntakeError that refused it (and none of its changes are kept).

    Values the columns cannot hold are refused here (IntakeError). Any other database error is
    raised for the whole batch: the caller retries smaller parts of it, each in a savepoint, to
    find the row at fault (see csv_import._write)."""
    patients_table, appointments_table, courses_table = Patient.__table__, Appointment.__table__, Course.__table__
    patient_ids = {p.external_id for p, _ in items}
    visit_ids = {a.external_id for _, a in items}

    patients: dict[str, SimpleNamespace] = {}
    originals: dict[str, dict] = {}
    for row in session.execute(select(*(patients_table.c[c] for c in PATIENT_COLUMNS))
                               .where(_among(patients_table.c.external_id, patient_ids, session))):
        values = row._asdict()
        patients[row.external_id] = SimpleNamespace(**values, plan_changed=False)
        originals[row.external_id] = values
    owner_of = {p.id: key for key, p in patients.items()}

    visits: dict[str, SimpleNamespace] = {}
    visit_originals: dict[str, dict] = {}
    for row in session.execute(select(*(appointments_table.c[c] for c in APPOINTMENT_COLUMNS))
                               .where(_among(appointments_table.c.external_id, visit_ids, session))):
        values = row._asdict()
        visits[row.external_id] = SimpleNamespace(**values, owner=owner_of.get(row.patient_id, row.patient_id))
        visit_originals[row.external_id] = values

    open_course: dict[str, object] = {}  # patient key -> course id, or a new course's key
    conditions: dict[object, str | None] = {}  # course id or key -> its condition as it will be
    stored_conditions: dict[int, str | None] = {}
    known_ids = [p.id for p in patients.values()]
    if known_ids:
        for row in session.execute(
            select(courses_table.c.id, courses_table.c.patient_id, courses_table.c.condition)
            .where(_among(courses_table.c.patient_id, known_ids, session), courses_table.c.ended_at.is_(None))
            .order_by(courses_table.c.started_at.desc(), courses_table.c.id.desc())
        ):
            if owner_of[row.patient_id] not in open_course:
                open_course[owner_of[row.patient_id]] = row.id
                conditions[row.id] = stored_conditions[row.id] = row.condition
    new_courses: dict[str, str] = {}  # patient key -> course key ("new:<patient key>")
    touched_courses: set = set()
    closed = closed_locations(session, [record for _, record in items])

    results: list[str | IntakeError] = []
    for patient_record, record in items:
        key = patient_record.external_id
        patient = patients.get(key)
        visit = visits.get(record.external_id)
        unfit = _unfit(patient_record, record)
        if unfit:
            results.append(IntakeError(unfit))
            continue
        if visit is not None and visit.owner != key:
            results.append(IntakeError(
                f"appointment {record.external_id!r} belongs to another patient; cancel it and book a new one"
            ))
            continue
        try:
            check_open(record, visit.location_id if visit is not None else None, visit is None, closed)
        except ClosedLocation as exc:
            results.append(exc)
            continue
        if patient is None:
            patient = SimpleNamespace(id=_NEW, external_id=key, welcomed_at=None, updated_at=now, plan_changed=False,
                                      **new_patient_values(patient_record))
            patients[key] = patient
            patient_result = "created"
        else:
            changed = patient_changes(patient, patient_record)
            for field in changed:
                setattr(patient, field, getattr(patient_record, field))
            if "phone" in changed:
                patient.welcomed_at = None  # a new number gets the introduction again
            if set(changed) & set(PLAN_FIELDS):
                patient.plan_changed = True
            if changed:
                patient.updated_at = now
            patient_result = "updated" if changed else "unchanged"

        if visit is None:
            course = open_course.get(key)
            if course is None:
                course = new_courses[key] = open_course[key] = f"new:{key}"
            visit = SimpleNamespace(
                id=_NEW, external_id=record.external_id, owner=key, course_id=course, kind=record.kind,
                number_in_course=1, starts_at=record.starts_at, duration_minutes=record.duration_minutes,
                location=record.location, location_id=new_location_id(record),
                status=record.status or "scheduled", confirmed_at=None,
                reschedule_requested_at=None, canceled_at=None, needs_planning=True, planning_error=None,
                created_at=now, updated_at=now,
            )
            if visit.status == "canceled":
                visit.canceled_at = now
            visits[record.external_id] = visit
            touched_courses.add(course)
            conditions.setdefault(course, None)
            if record.condition is not None:
                conditions[course] = record.condition
            result = "created"
        else:
            changed = apply_changes(visit, record, now)
            if changed and visit.course_id is not None:
                touched_courses.add(visit.course_id)
            if (record.condition is not None and visit.course_id in conditions
                    and conditions[visit.course_id] != record.condition):
                conditions[visit.course_id] = record.condition
                changed.append("condition")
            result = "updated" if changed else "unchanged"
        if result == "unchanged" and patient_result == "updated":
            result = "updated"
        results.append(result)

    # Number the visits of every course a new or changed visit is in, before writing anything:
    # new visits go in with their number; visits outside the batch that move get an UPDATE.
    outside = _number_courses(session, touched_courses, visits)

    # Patients: insert the new ones, write what changed on the others, re-plan on new contact details.
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
    _write_changes(session, patients_table, [
        (p.id, _differences(p, originals[key], PATIENT_COLUMNS)) for key, p in patients.items() if key in originals
    ])
    replan = [p.id for key, p in patients.items() if p.plan_changed and key in originals]
    if replan:
        session.execute(update(appointments_table).where(_among(appointments_table.c.patient_id, replan, session))
                        .values(needs_planning=True, planning_error=None))

    # Courses for patients who had none open.
    if new_courses:
        inserted = bulk_insert(
            session, courses_table,
            [{"patient_id": patients[key].id, "started_at": now, "induction_sessions_planned": series_length,
              "condition": conditions.get(course_key)} for key, course_key in new_courses.items()],
            returning=("id", "patient_id"),
        )
        course_ids = {row.patient_id: row.id for row in inserted}
        resolved = {course_key: course_ids[patients[key].id] for key, course_key in new_courses.items()}
        for visit in visits.values():
            visit.course_id = resolved.get(visit.course_id, visit.course_id)
    _write_changes(session, courses_table, [
        (course_id, {"condition": condition}) for course_id, condition in conditions.items()
        if isinstance(course_id, int) and course_id in stored_conditions and stored_conditions[course_id] != condition
    ])

    # Appointments: insert the new ones, write what changed on the others, then renumber the courses.
    fresh_visits = [v for v in visits.values() if v.id is _NEW]
    if fresh_visits:
        bulk_insert(session, appointments_table, [
            {**{c: getattr(v, c) for c in APPOINTMENT_COLUMNS if c not in ("id", "patient_id")}, "patient_id": patients[v.owner].id}
            for v in fresh_visits
        ])
    _write_changes(session, appointments_table, [
        (v.id, _differences(v, visit_originals[key], APPOINTMENT_COLUMNS)) for key, v in visits.items()
        if key in visit_originals
    ])
    bulk_update(session, appointments_table, [(row["_id"], {"number_in_course": row["_number"], "needs_planning": True,
                                                                         "planning_error": None})
                                              for row in outside])
    return results


def _among(column, values, session: Session):
    """column IN (values). On PostgreSQL `= ANY(array)`: one parameter, not hundreds."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def _differences(state: SimpleNamespace, original: dict, columns: Sequence[str]) -> dict:
    return {c: getattr(state, c) for c in columns if c != "id" and getattr(state, c) != original[c]}


def _write_changes(session: Session, table, changes: list[tuple[int, dict]]) -> None:
    """One UPDATE per set of changed columns, for the rows that changed."""
    groups: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for row_id, values in changes:
        if values:
            groups[tuple(sorted(values))].append((row_id, values))
    for rows in groups.values():
        bulk_update(session, table, rows)


def _pg_type(table, column: str, dialect) -> str:
    """The column's type without a length: an explicit cast to VARCHAR(n) would cut a longer
    value short where storing it into the column refuses it."""
    return re.sub(r"\(\d+\)", "", table.c[column].type.compile(dialect=dialect))


def bulk_insert(session: Session, table, rows: list[dict], returning: Sequence[str] = ()):
    """INSERT many rows (all with the same keys); the `returning` columns of each row, if asked.

    On PostgreSQL one INSERT ... SELECT FROM unnest(arrays): a short statement whatever the
    number of rows (a VALUES list of thousands of parameters costs more to build and parse than
    to run). Elsewhere SQLAlchemy's executemany."""
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        statement = insert(table)
        if returning:
            return list(session.execute(statement.returning(*(table.c[c] for c in returning)), rows))
        session.execute(statement, rows)
        return []
    columns = list(rows[0])
    arrays = tuple([_bind(table, c, row[c], dialect) for row in rows] for c in columns)
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest("
           + ", ".join(f"%s::{_pg_type(table, c, dialect)}[]" for c in columns) + ")")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
        return list(connection.exec_driver_sql(sql, arrays))
    connection.exec_driver_sql(sql, arrays)
    return []


def bulk_update(session: Session, table, rows: list[tuple[int, dict]]) -> None:
    """UPDATE rows by id, each with the same columns: [(id, {column: value})]."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = sorted(rows[0][1])
    if dialect.name != "postgresql":
        statement = (update(table).where(table.c.id == bindparam("_id"))
                     .values({c: bindparam(f"_{c}") for c in columns}))
        session.execute(statement, [{"_id": row_id, **{f"_{c}": v for c, v in values.items()}}
                                    for row_id, values in rows])
        return
    arrays = ([row_id for row_id, _ in rows],
              *([_bind(table, c, values[c], dialect) for _, values in rows] for c in columns))
    sql = (f"UPDATE {table.name} SET {', '.join(f'{c} = v.{c}' for c in columns)} FROM unnest("
           + ", ".join(["%s::integer[]", *(f"%s::{_pg_type(table, c, dialect)}[]" for c in columns)])
           + f") AS v(id, {', '.join(columns)}) WHERE {table.name}.id = v.id")
    connection.exec_driver_sql(sql, arrays)


def _bind(table, column: str, value, dialect):
    """The value as the column's type would send it (e.g. UTCDateTime's checks and conversion)."""
    column_type = table.c[column].type
    if isinstance(column_type, TypeDecorator):
        return column_type.process_bind_param(value, dialect)
    return value


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
                   table.c.starts_at, table.c.number_in_course).where(_among(table.c.course_id, stored, session))
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
