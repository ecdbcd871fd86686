"""The builders tests make their records with, each through the code that owns what it writes
(tests/test_owners.py reads this file too): patients and visits the way intake books them, outbox
rows planned and moved as the sender moves them, escalations opened and resolved by
reminders.escalations, check-ins asked and answered through reminders.checkins. Also: reading the
outbox back.

Rows are built at the test's clock (tests.conftest.clock_now) unless a time is given."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from reminders import checkins, escalations
from reminders.channels.base import DELIVERED_STATE, UNDELIVERED_STATE, DeliveryReport
from reminders.config import get_settings
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import Appointment, CheckIn, Escalation, InboundMessage, OutboxMessage, Patient
from reminders.models.replies import checkin_kind
from reminders.models.outbox import Kind, Status
from reminders.outbox import OutboxRow, appointment_key, claim_for_sending, plan, queue_now
from reminders.outbox.delivery import record_delivery
from reminders.outbox.moves import mark_failed, mark_in_flight, mark_sent, mark_unknown
from tests.conftest import at, clock_now

NY = "America/New_York"
UNKNOWN_SENDER = "+12025550100"  # an escalation or a text from a number no patient has


# ---------------------------------------------------------------- patients and visits

def add_patient(session, external_id: str = "p1", first: str = "Maya", last: str = "Lopez",
                phone: str | None = "+12025550143", email: str | None = "maya@example.org",
                zone: str = NY, channel: str = "both", now: datetime | None = None) -> Patient:
    record = PatientRecord(external_id=external_id, first_name=first, last_name=last, phone=phone, email=email,
                           timezone=zone, preferred_channel=channel)
    patient = upsert_patient(session, record, now or clock_now()).patient
    session.commit()
    return patient


def add_visit(session, patient, external_id: str, starts_at: datetime, kind: str = "induction",
              status: str | None = "scheduled", series: int = 6, duration: int = 50,
              now: datetime | None = None) -> Appointment:
    record = AppointmentRecord(external_id=external_id, kind=kind, starts_at=starts_at, duration_minutes=duration,
                               location="Suite 200", status=status)
    appointment = upsert_appointment(session, patient, record, now or clock_now(), series).appointment
    session.commit()
    return appointment


def book(session, *, starts_at: str | datetime, patient: str = "p1", appointment: str = "a1", kind: str = "induction",
         phone: str | None = "+12025550143", email: str | None = None, channel: str = "sms", zone: str = NY,
         status: str | None = None, now: datetime | None = None, first_name: str = "Maya",
         welcomed: bool = True) -> Appointment:
    """A visit for a patient who, unless `welcomed=False`, already had the welcome text (so a test
    about reminders counts reminders; tests of the welcome itself book a new patient)."""
    now = now or at("2026-11-01T12:00:00+00:00")
    person = add_patient(session, patient, first_name, "Lopez", phone, email, zone, channel, now=now)
    if welcomed and person.welcomed_at is None:
        person.welcomed_at = now
    elif not welcomed:
        person.welcomed_at = None
    return add_visit(session, person, appointment, at(starts_at) if isinstance(starts_at, str) else starts_at,
                     kind, status, duration=60, now=now)


# ---------------------------------------------------------------- texts in

def add_inbound(session, patient, body: str, needs_staff: bool = True, minutes_ago: int = 10,
                classification: str = "free_text", **fields) -> InboundMessage:
    message = InboundMessage(from_number=patient.phone if patient else "+12025550111", body=body,
                             received_at=clock_now() - timedelta(minutes=minutes_ago),
                             patient_id=patient.id if patient else None, classification=classification,
                             needs_staff=needs_staff, **fields)
    session.add(message)
    session.commit()
    return message


# ---------------------------------------------------------------- the outbox

def add_outbox(session, patient, appointment, rule: str, channel: str, status: str, when: datetime,
               body: str | None = None, kind: str = "reminder", key: str | None = None) -> OutboxMessage:
    """The visit's message for `rule`, planned for `when`; for any other status, sent at `when`
    the way the sender sends it (queued, claimed, handed to the provider) and then recorded as
    sent, delivered, undelivered, failed or unknown."""
    row = OutboxRow(dedupe_key=key or appointment_key(appointment.id, rule, channel), kind=Kind(kind), rule=rule,
                    channel=channel, planned_for=when, due_at=when, patient_id=patient.id,
                    appointment_id=appointment.id if appointment else None, body=body)
    planned = plan(session, [row], min(when, clock_now()))
    assert planned, f"{row.dedupe_key} is in the outbox already"
    [outbox_id] = planned
    session.commit()
    if status != Status.PLANNED:
        _send(session, outbox_id, Status(status), when)
    return session.get(OutboxMessage, outbox_id)


def _send(session, outbox_id: int, status: Status, when: datetime) -> None:
    queue_now(session, [outbox_id], when)
    assert claim_for_sending(session, outbox_id, when), f"outbox {outbox_id} could not be claimed"
    row = session.get(OutboxMessage, outbox_id)
    assert mark_in_flight(session, row, when)
    if status == Status.FAILED:
        mark_failed(row, "the provider refused it", "30006", "landline or unreachable carrier")
    elif status == Status.UNKNOWN:
        mark_unknown(row, "the provider's answer was lost; check before resending", None)
    else:
        mark_sent(session, row, f"SM{outbox_id:032d}", "queued", when)
        session.commit()  # the send is written as the sender writes it, with its commit
        if status in (Status.DELIVERED, Status.UNDELIVERED):
            # The provider's final word on it (rank: above "queued", the word it was accepted with).
            state = DELIVERED_STATE if status == Status.DELIVERED else UNDELIVERED_STATE
            record_delivery(row, DeliveryReport(outbox_id, row.provider_id, state, rank=3, final=True, state=state),
                            when)
    session.commit()
    assert row.status == status, (outbox_id, row.status, status)


# ---------------------------------------------------------------- escalations and check-ins

def add_escalation(session, patient, text: str = "i don't want to be here anymore", minutes_ago: int = 5, *,
                   reason: str = escalations.REASON_CRISIS, location_id: int | None = None,
                   status: str = escalations.OPEN, acknowledged_by: str = "nurse@clinic.test",
                   acknowledged_at: datetime | None = None, ack_note: str = "") -> Escalation:
    """An escalation opened `minutes_ago` by this text (from a number no patient has, for
    patient=None), as reminders.escalations opens it: its alert round planned for the clinic's
    alert contacts. status="acknowledged": resolved at `acknowledged_at` (now by default).

    Opened for a sender with an escalation still open, the text joins that one, as it does in the
    service. The text itself is not put in the inbox: a test that wants it there adds it
    (add_inbound)."""
    opened = clock_now() - timedelta(minutes=minutes_ago)
    sender = patient.phone if patient else UNKNOWN_SENDER
    said = InboundMessage(from_number=sender, body=text, received_at=opened,
                          patient_id=patient.id if patient else None)
    escalation, _ = escalations.open_escalation(session, get_settings(), patient=patient, inbound=said,
                                                reason=reason, now=opened, location_id=location_id)
    if status == escalations.RESOLVED:
        escalations.resolve(session, escalation.id, acknowledged_by, ack_note, acknowledged_at or clock_now())
    elif status == escalations.CLAIMED:
        escalations.claim(session, escalation.id, acknowledged_by, acknowledged_at or clock_now())
    session.commit()
    return escalation


def add_checkin(session, patient, when: datetime, score: int | None, note: str = "", appointment=None) -> CheckIn:
    """A check-in asked two hours before `when` by its text (the visit's day-after check-in, when
    the test has not sent it already) and, with a score, answered at `when`."""
    asked = when - timedelta(hours=2)
    prompt = _checkin_prompt(session, patient, appointment, asked)
    checkin = checkins.open_checkin(session, patient_id=patient.id, appointment_id=prompt.appointment_id,
                                    prompt_outbox_id=prompt.id, kind=checkin_kind(appointment), now=asked)
    if score is not None:
        checkins.answer(checkin, score=score, note=note, text=f"{score} {note}".strip(), inbound_id=None, now=when)
    session.commit()
    return checkin


def _checkin_prompt(session, patient, appointment, asked: datetime) -> OutboxMessage:
    """The visit's day-after check-in text if it went and asks for no other check-in yet; else
    one sent at `asked`."""
    if appointment is not None:
        sent = session.scalar(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == appointment_key(appointment.id, "checkin_day_after", "sms"),
            OutboxMessage.status.in_((Status.SENT, Status.DELIVERED))))
        if sent is not None and session.scalar(select(CheckIn.id).where(CheckIn.prompt_outbox_id == sent.id)) is None:
            return sent
    owner = f"appt:{appointment.id}" if appointment is not None else f"patient:{patient.id}"
    return add_outbox(session, patient, appointment, "checkin_day_after", "sms", Status.SENT, asked, kind="checkin",
                      key=f"{owner}:checkin_day_after:sms:{asked:%Y%m%dT%H%M%S}")


# ---------------------------------------------------------------- reading back

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
