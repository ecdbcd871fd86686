"""Create or update patients and appointments by `external_id`, and keep the plan in step.

Only real changes are written, so importing the same file twice changes nothing. A change that
affects what or when a patient is sent (time, place, status, kind, contact details) marks the affected
appointments for planning; the next pass moves or cancels their pending messages.

One record at a time here; many at once with the same rules in reminders.intake.batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.intake.records import KEEP_LOCATION, AppointmentRecord, PatientRecord
from reminders.models import Appointment, Course, Location, Patient
from reminders.models.appointments import AppointmentStatus
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.planning.marking import mark_for_planning
from reminders.visits import moves

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
    changed = take_patient_changes(patient, record)
    if set(changed) & set(PLAN_FIELDS):
        session.flush()
        mark_for_planning(session, patient_id=patient.id)
    return Outcome(patient, None, "updated" if changed else "unchanged")


def take_patient_changes(patient, record: PatientRecord) -> list[str]:
    """Copy what the record changes onto the stored patient (a row or the batch's stand-in); the
    fields changed."""
    changed = patient_changes(patient, record)
    for name in changed:
        setattr(patient, name, getattr(record, name))
    if "phone" in changed:
        patient.welcomed_at = None  # a new number gets the introduction again
    return changed


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
                       series_length: int = 6, *, by: str = moves.RECORD) -> Outcome:
    """`by`: who changes the visit's status (reminders.visits.moves): the record, or staff's marks."""
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
            location_id=new_location_id(record), needs_planning=True, created_at=now, updated_at=now,
            **moves.booking(record.status, now),
        )
        session.add(appointment)
        session.flush()
        renumber_course(session, appointment.course_id)
        return Outcome(patient, appointment, "created")
    changed = apply_changes(appointment, record, now, by=by)
    if changed:
        session.flush()
        renumber_course(session, appointment.course_id)
    if appointment.course is not None and set_condition(appointment.course, record.condition):
        changed.append("condition")
    return Outcome(patient, appointment, "updated" if changed else "unchanged")


def apply_changes(appointment: Appointment, record: AppointmentRecord, now: datetime,
                  by: str = moves.RECORD) -> list[str]:
    """Set what differs; returns the names of the fields that changed."""
    wanted = {
        "kind": record.kind, "starts_at": record.starts_at,
        "duration_minutes": record.duration_minutes, "location": record.location,
    }
    if record.location_id != KEEP_LOCATION:  # a visit moved to another location is planned again
        wanted["location_id"] = record.location_id
    status = record.status
    # A feed that says "scheduled" must not undo the patient's own confirmation.
    if status == AppointmentStatus.SCHEDULED and appointment.status == AppointmentStatus.CONFIRMED:
        status = AppointmentStatus.CONFIRMED
    changed = [field for field, value in wanted.items() if getattr(appointment, field) != value]
    for field in changed:
        setattr(appointment, field, wanted[field])
    if status is not None and moves.move(appointment, status, now, by=by):
        changed.append("status")
    if "starts_at" in changed:
        moves.retimed(appointment, now)
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
        if visit.status == AppointmentStatus.CANCELED:
            continue
        if visit.status == AppointmentStatus.NO_SHOW:
            # A missed visit carries the number of the infusions held before it, so "infusion
            # number + 1 is not booked" names the one to book again.
            number = counters.get(visit.kind, 0)
        else:
            number = counters[visit.kind] = counters.get(visit.kind, 0) + 1
        if visit.number_in_course != number:
            changes.append((visit, number))
    return changes
