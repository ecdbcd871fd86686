"""A missed visit (no-show): the staff task that goes with it, and the visit its outreach names.

Every no-show puts an item in the staff inbox ("call the patient"), whether or not a later visit is
booked. It is an `InboundMessage` like the patient's texts that need a person (classification
`missed_visit`, `needs_staff`), one per visit: its `message_sid` is `task:missed_visit:<visit id>`,
so marking the visit a no-show again never adds a second. A person closes it (Mark done, or a note).
When staff correct the no-show (completed, canceled, back to scheduled) an open task is withdrawn:
closed by the service with a note saying why; marked a no-show again, a withdrawn task opens again.
One closed by a person stays closed.

The planner keeps the task in line with the visit (reminders.planning.planner), as it does the
visit's messages: every way of marking a no-show (staff UI, API, CSV, HL7, FHIR) plans the visit.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from reminders.channel_specs import SMS
from reminders.models import Appointment, InboundMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES, AppointmentStatus
from reminders.preparation import clock, date_words
from reminders.visits.series import planned_length

TASK = "missed_visit"  # the inbox item's classification
# Who closes a task the visit no longer needs (done_by); a task closed by anyone else stays closed.
WITHDRAWN_BY = "the service"
# A no-show of a visit that ended longer ago than this when marked (history loaded from a CSV or
# a feed) is the past: it gets no task. Staff see missed visits on the patient's page.
TASK_WITHIN = timedelta(days=7)


def task_sid(appointment_id: int) -> str:
    return f"task:{TASK}:{appointment_id}"


def missed_visit_label(appointment: Appointment, series_length: int) -> str:
    """"infusion 2 of 6" or "maintenance visit": a missed infusion carries the number of the
    infusions held before it (reminders.intake.upsert.course_numbers), so it was the next one."""
    if appointment.kind == "induction":
        return f"infusion {appointment.number_in_course + 1} of {series_length}"
    return "maintenance visit"


def task_text(appointment: Appointment, patient: Patient, series_length: int) -> str:
    local = appointment.starts_at.astimezone(ZoneInfo(patient.timezone))
    return (f"Missed {missed_visit_label(appointment, series_length)} on {date_words(local)} at {clock(local)}: "
            f"call the patient.")


def keep_task_in_line(session: Session, appointment: Appointment, series_length: int, now: datetime) -> None:
    """Open the visit's task when it is a no-show; withdraw it when it no longer is."""
    missed = appointment.status == AppointmentStatus.NO_SHOW
    if not missed and appointment.ends_at > now:
        return  # a visit still to come was never missed: nothing to look up
    task = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == task_sid(appointment.id)))
    if missed:
        _open(session, task, appointment, series_length, now)
    elif task is not None and task.done_at is None:
        task.done_at, task.done_by = now, WITHDRAWN_BY
        task.done_note = f"Withdrawn: the visit is now marked {appointment.status.replace('_', ' ')}."


def _open(session: Session, task: InboundMessage | None, appointment: Appointment, series_length: int,
          now: datetime) -> None:
    patient = appointment.patient
    if task is None:
        if now - appointment.ends_at > TASK_WITHIN:
            return
        session.add(InboundMessage(
            message_sid=task_sid(appointment.id), from_number=patient.phone or "", channel=SMS.name,
            body=task_text(appointment, patient, series_length), received_at=now, patient_id=patient.id,
            appointment_id=appointment.id, classification=TASK, needs_staff=True, priority=0,
        ))
        session.flush()
    elif task.done_at is not None and task.done_by == WITHDRAWN_BY:
        task.done_at = task.done_by = None  # marked a no-show again after a correction
        task.done_note = ""
        task.received_at = now


def next_booked_visit(appointment: Appointment) -> Appointment | None:
    """The patient's next visit after this one that is still on (scheduled or confirmed)."""
    session = object_session(appointment)
    if session is None:
        return None
    return session.scalars(
        select(Appointment).where(Appointment.patient_id == appointment.patient_id,
                                  Appointment.id != appointment.id, Appointment.starts_at > appointment.starts_at,
                                  Appointment.status.in_(ACTIVE_STATUSES))
        .order_by(Appointment.starts_at, Appointment.id).limit(1)
    ).first()


def next_visit_context(settings, patient: Patient, appointment: Appointment, language: str) -> dict | None:
    """The next visit as "we missed you" names it (date, time, kind), or None when none is booked."""
    from reminders.preparation import Preparation
    from reminders.rendering import visit_context

    upcoming = next_booked_visit(appointment)
    if upcoming is None:
        return None
    return visit_context(upcoming, patient.timezone, planned_length(upcoming.course, settings), language,
                         Preparation.from_settings(settings))
