"""Helpers shared by the staff UI tests (no tests here): accounts, signing in, CSRF tokens, seeds."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import CheckIn, Escalation, InboundMessage, OutboxMessage, utcnow
from reminders.web.staff.accounts import create_user

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def make_user(sessions, email: str, role: str = "staff", password: str = PASSWORD) -> int:
    with sessions() as session:
        return create_user(session, email, role, password).id


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    found = TOKEN.search(page.text) or META_TOKEN.search(page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client, email: str, password: str = PASSWORD):
    """Sign in through the real form, token and all."""
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def post_form(client, path: str, data: dict | None = None, *, token_from: str = "/", **kwargs):
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, token_from)}, **kwargs)


@pytest.fixture
def admin_client(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    assert login(client, "admin@clinic.test").status_code == 302
    return client


@pytest.fixture
def staff_client(app, sessions):
    make_user(sessions, "staff@clinic.test", "staff")
    client = app.test_client()
    assert login(client, "staff@clinic.test").status_code == 302
    return client


def add_patient(session, external_id: str = "p1", first: str = "Maya", last: str = "Lopez",
                phone: str | None = "+12025550143", email: str | None = "maya@example.org",
                zone: str = "America/New_York", channel: str = "both"):
    record = PatientRecord(external_id=external_id, first_name=first, last_name=last, phone=phone, email=email,
                           timezone=zone, preferred_channel=channel)
    patient = upsert_patient(session, record, utcnow()).patient
    session.commit()
    return patient


def add_visit(session, patient, external_id: str, starts_at: datetime, kind: str = "induction",
              status: str = "scheduled", series: int = 6):
    record = AppointmentRecord(external_id=external_id, kind=kind, starts_at=starts_at, duration_minutes=50,
                               location="Suite 200", status=status)
    appointment = upsert_appointment(session, patient, record, utcnow(), series).appointment
    session.commit()
    return appointment


def add_escalation(session, patient, text: str = "i don't want to be here anymore", minutes_ago: int = 5,
                   **fields) -> Escalation:
    opened = utcnow() - timedelta(minutes=minutes_ago)
    escalation = Escalation(patient_id=patient.id if patient else None, from_number=patient.phone if patient else "+12025550100",
                            reason="crisis_language", text=text, opened_at=opened, alert_round=1,
                            last_alerted_at=opened, next_alert_at=opened + timedelta(minutes=15), **fields)
    session.add(escalation)
    session.commit()
    return escalation


def add_inbound(session, patient, body: str, needs_staff: bool = True, minutes_ago: int = 10,
                classification: str = "free_text", **fields) -> InboundMessage:
    message = InboundMessage(from_number=patient.phone if patient else "+12025550111", body=body,
                             received_at=utcnow() - timedelta(minutes=minutes_ago),
                             patient_id=patient.id if patient else None, classification=classification,
                             needs_staff=needs_staff, **fields)
    session.add(message)
    session.commit()
    return message


def add_checkin(session, patient, when: datetime, score: int | None, note: str = "", appointment=None) -> CheckIn:
    checkin = CheckIn(patient_id=patient.id, appointment_id=appointment.id if appointment else None,
                      status="answered" if score is not None else "awaiting", score=score, note=note,
                      raw_text=f"{score} {note}".strip(), prompted_at=when - timedelta(hours=2),
                      answered_at=when if score is not None else None)
    session.add(checkin)
    session.commit()
    return checkin


def add_outbox(session, patient, appointment, rule: str, channel: str, status: str, when: datetime,
               body: str | None = None, kind: str = "reminder") -> OutboxMessage:
    row = OutboxMessage(dedupe_key=f"appt:{appointment.id}:{rule}:{channel}", patient_id=patient.id,
                        appointment_id=appointment.id, kind=kind, rule=rule, channel=channel, planned_for=when,
                        due_at=when, status=status, body=body,
                        sent_at=when if status in ("sent", "delivered") else None)
    session.add(row)
    session.commit()
    return row
