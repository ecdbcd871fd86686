"""Create or update patients and appointments by `external_id`, and keep the plan in step.

Only real changes are written, so importing the same file twice changes nothing. A change that
affects what or when a patient is sent (time, status, kind, contact details) marks the affected
appointments for planning; the next pass moves or cancels their pending messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.models import Appointment, Course, Patient
from reminders.planning.planner import mark_for_planning

PATIENT_FIELDS = ("first_name", "last_name", "phone", "email", "timezone", "preferred_channel")
# Changes to these fields change what is sent or where, so they re-plan the patient's visits.
PLAN_FIELDS = ("phone", "email", "timezone", "preferred_channel")


class IntakeError(ValueError):
    """A record that cannot be applied, with a reason a person can act on."""


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
                          **{f: getattr(record, f) for f in PATIENT_FIELDS})
        session.add(patient)
        session.flush()
        return Outcome(patient, None, "created")
    changed = [f for f in PATIENT_FIELDS if getattr(patient, f) != getattr(record, f)]
    for field in changed:
        setattr(patient, field, getattr(record, field))
    if "phone" in changed:
        patient.welcomed_at = None  # a new number gets the introduction again
    if set(changed) & set(PLAN_FIELDS):
        session.flush()
        mark_for_planning(session, patient_id=patient.id)
    return Outcome(patient, None, "updated" if changed else "unchanged")


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
    if appointment is None:
        course = current_course(session, patient, now, series_length)
        appointment = Appointment(
            external_id=record.external_id, patient_id=patient.id, course_id=course.id, kind=record.kind,
            starts_at=record.starts_at, duration_minutes=record.duration_minutes, location=record.location,
            status=record.status or "scheduled", needs_planning=True, created_at=now, updated_at=now,
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
    return Outcome(patient, appointment, "updated" if changed else "unchanged")


def apply_changes(appointment: Appointment, record: AppointmentRecord, now: datetime) -> list[str]:
    """Set what differs; returns the names of the fields that changed."""
    wanted = {
        "kind": record.kind, "starts_at": record.starts_at,
        "duration_minutes": record.duration_minutes, "location": record.location,
    }
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


def renumber_course(session: Session, course_id: int | None) -> None:
    """Number the course's induction visits 1..n by time; canceled visits take no number.

    A visit whose number changes is re-planned: the new first infusion needs the full
    instructions that the canceled one would have had.
    """
    if course_id is None:
        return
    visits = session.scalars(fresh(
        select(Appointment).where(Appointment.course_id == course_id).order_by(Appointment.starts_at, Appointment.id)
    )).all()
    counters = {"induction": 0, "maintenance": 0}
    for visit in visits:
        if visit.status == "canceled":
            continue
        counters[visit.kind] += 1
        if visit.number_in_course != counters[visit.kind]:
            visit.number_in_course = counters[visit.kind]
            visit.needs_planning = True
            visit.planning_error = None
