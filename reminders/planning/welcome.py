"""The welcome text: its own outbox row, once per patient and phone number, before the first text.

Planned with a patient's appointments: one row (`patient:<id>:welcome:sms:<number digest>`, unique,
so a restart or a racing planner plans it once) due a minute before the earliest text planned for
the patient, and moved with it. When that earliest text goes in the same pass, or the two rows
meet in quiet hours, the sender sends the welcome first (`send_welcome_first`). A patient
welcomed already (by this row, or in the answer to a text of their own) gets no row, and a row
still pending then is skipped at send time. A new number resets `welcomed_at`, so the new number
is introduced too.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage, Patient
from reminders.models.outbox import PENDING_STATUSES, TEXT_CHANNELS, ChannelName, Kind, Status
from reminders.outbox import OutboxRow, plan
from reminders.outbox.moves import cancel_pending, queue_now, reschedule_pending, revive_canceled
from reminders.planning.quiet_hours import QuietHours

WELCOME_RULE = "welcome"
AHEAD = timedelta(minutes=1)
# Texts that are not the scheduled kind: a welcome is not planned for them.
NOT_SCHEDULED = (Kind.ALERT, Kind.REPLY, Kind.WELCOME)
NOTHING_TO_INTRODUCE = "no text planned for the patient yet"


def welcome_key(patient: Patient) -> str:
    """One welcome per patient and number, whichever text channel it goes on (the key keeps the
    "sms" of the rows planned before there was a second one)."""
    digest = hashlib.sha256((patient.phone or "").encode()).hexdigest()[:12]
    return f"patient:{patient.id}:welcome:sms:{digest}"


def needs_welcome(patient: Patient) -> bool:
    return bool(patient.phone) and patient.welcomed_at is None and not patient.sms_opted_out


def _scheduled_text(channel: str, kind: str) -> bool:
    return channel in TEXT_CHANNELS and kind not in NOT_SCHEDULED


def plan_welcome(session: Session, patient: Patient, quiet: QuietHours, now: datetime,
                 new_rows: Sequence[OutboxRow] = ()) -> int:
    """Keep the patient's welcome row a minute ahead of their earliest pending text, counting the
    rows the planner is about to insert (`new_rows`): called before they are, the welcome row is
    older than they are, so it goes first even when both wait for the end of quiet hours. It
    goes on the channel of that first text. Returns 1 when a row was created."""
    if not needs_welcome(patient):
        return 0
    pending = session.execute(
        select(OutboxMessage.due_at, OutboxMessage.channel).where(
            OutboxMessage.patient_id == patient.id, OutboxMessage.channel.in_(TEXT_CHANNELS),
            OutboxMessage.status.in_(PENDING_STATUSES), OutboxMessage.kind.not_in(NOT_SCHEDULED),
        ).order_by(OutboxMessage.due_at).limit(1)
    ).first()
    texts = [tuple(pending)] if pending else []
    candidates = {r.dedupe_key: (r.due_at, r.channel) for r in new_rows if _scheduled_text(r.channel, r.kind)}
    if candidates:
        known = set(session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(candidates))))
        texts += [text for key, text in candidates.items() if key not in known]
    first, channel = min(texts) if texts else (None, ChannelName.SMS)
    key = welcome_key(patient)
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
    if first is None:
        if row is not None and row.status in PENDING_STATUSES:
            cancel_pending(session, now, NOTHING_TO_INTRODUCE, ids=[row.id])
        return 0
    at = first - AHEAD
    due = quiet.next_allowed(at, patient.timezone)
    if row is None:
        return len(plan(session, [OutboxRow(dedupe_key=key, kind=Kind.WELCOME, rule=WELCOME_RULE, channel=channel,
                                            planned_for=at, due_at=due, patient_id=patient.id)], now))
    if row.status in PENDING_STATUSES and (row.due_at != due or row.channel != channel):
        reschedule_pending(session, row.id, at, due, now, channel=channel)
    elif row.status == Status.CANCELED and row.status_reason == NOTHING_TO_INTRODUCE:
        revive_canceled(session, row.id, at, due, now, channel=channel)
    return 0


def pending_welcome(session: Session, patient: Patient) -> int | None:
    """The id of the patient's welcome row when it is still to go."""
    if not needs_welcome(patient):
        return None
    return session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.dedupe_key == welcome_key(patient), OutboxMessage.status.in_(PENDING_STATUSES)))


def reason_not_to_welcome(patient: Patient | None) -> str | None:
    """At send time: a welcome goes only to a patient not yet introduced on this number."""
    if patient is None or not patient.phone:
        return "no phone number"
    if patient.welcomed_at is not None:
        return "already welcomed"
    return None


def send_welcome_first(session: Session, patient: Patient, now: datetime,
                       send: Callable[[int, datetime], str]) -> None:
    """Before a patient's first text goes: send their pending welcome now, in its own row. Its
    claim keeps it to once: when the pass handed it out too, the later try finds nothing to do."""
    welcome_id = pending_welcome(session, patient)
    if welcome_id is None:
        return
    queue_now(session, [welcome_id], now)  # planned -> queued and due now; a queued one stays queued
    send(welcome_id, now)
    session.refresh(patient)
