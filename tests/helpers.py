"""Small builders for tests: book a visit the way intake does, read the outbox."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import Appointment, OutboxMessage, Patient
from tests.conftest import at

NY = "America/New_York"


def book(session, *, starts_at: str | datetime, patient: str = "p1", appointment: str = "a1", kind: str = "induction",
         phone: str | None = "+12025550143", email: str | None = None, channel: str = "sms", zone: str = NY,
         status: str | None = None, now: datetime | None = None, first_name: str = "Maya",
         welcomed: bool = True) -> Appointment:
    """A visit for a patient who, unless `welcomed=False`, already had the welcome text (so a test
    about reminders counts reminders; tests of the welcome itself book a new patient)."""
    now = now or at("2026-11-01T12:00:00+00:00")
    starts = at(starts_at) if isinstance(starts_at, str) else starts_at
    person = upsert_patient(session, PatientRecord(
        external_id=patient, first_name=first_name, last_name="Lopez", phone=phone, email=email,
        timezone=zone, preferred_channel=channel,
    ), now).patient
    if welcomed and person.welcomed_at is None:
        person.welcomed_at = now
    elif not welcomed:
        person.welcomed_at = None
    visit = upsert_appointment(session, person, AppointmentRecord(
        external_id=appointment, kind=kind, starts_at=starts, status=status, location="Suite 200",
    ), now).appointment
    session.commit()
    return visit


def outbox(session, **where) -> list[OutboxMessage]:
    session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    for name, value in where.items():
        query = query.where(getattr(OutboxMessage, name) == value)
    return list(session.scalars(query))


def sent(session, **where) -> list[tuple[str, str]]:
    """(rule, channel) of every row that went out, in order."""
    return [(row.rule, row.channel) for row in outbox(session, **where) if row.status in ("sent", "delivered")]


def patient(session, external_id: str = "p1") -> Patient:
    session.expire_all()
    return session.scalar(select(Patient).where(Patient.external_id == external_id))
