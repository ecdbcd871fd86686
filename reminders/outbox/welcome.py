"""The welcome text: its own outbox row, once per patient and phone number, before the first text.

Planned with a patient's appointments (plan_welcomes): one row (`patient:<id>:welcome:sms:<number
digest>`, unique, so a restart or a racing planner plans it once) due a minute before the earliest
text planned for the patient, and moved with it. A batch holding a patient's text but not their
welcome claims the welcome into itself and sends it first (reminders.sending.batch); a text sent on
its own (a paused provider's probe) sends it first through `send_welcome_first`. A patient
welcomed already (by this row, or in the answer to a text of their own) gets no row, and a row
still pending then is skipped at send time. A new number resets `welcomed_at`, so the new number
is introduced too.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reminders.channel_specs import is_text_channel, text_channels
from reminders.locations import patient_location
from reminders.models import OutboxMessage, Patient
from reminders.models.outbox import PENDING_STATUSES, Kind, ReasonCode, Status
from reminders.outbox import OutboxRow
from reminders.outbox.moves import cancel_pending, queue_now, reschedule_pending, revive_canceled
from reminders.timing.quiet_hours import QuietHours

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
    return is_text_channel(channel) and kind not in NOT_SCHEDULED


def plan_welcomes(session: Session, planned: Sequence[tuple[Patient, Sequence[OutboxRow]]], quiet: QuietHours,
                  now: datetime) -> list[OutboxRow]:
    """Keep each patient's welcome row a minute ahead of their earliest pending text, counting the
    rows the planner is about to insert for them (`planned`: patient and new rows, not stored yet,
    one entry per patient). It goes on the channel of that first text. A welcome row already
    stored is moved (or withdrawn) here; the rows to create are returned, for the caller to insert
    before the texts they introduce: older than those, a welcome goes first even when both wait
    for the end of quiet hours."""
    patients = {patient.id: (patient, new_rows) for patient, new_rows in planned if needs_welcome(patient)}
    if not patients:
        return []
    pending: dict[int, list[tuple[datetime, str]]] = {}  # each patient's first pending text, by channel
    for row in session.execute(
        select(OutboxMessage.patient_id, func.min(OutboxMessage.due_at).label("due_at"), OutboxMessage.channel).where(
            OutboxMessage.patient_id.in_(sorted(patients)), OutboxMessage.channel.in_(text_channels()),
            OutboxMessage.status.in_(PENDING_STATUSES), OutboxMessage.kind.not_in(NOT_SCHEDULED),
        ).group_by(OutboxMessage.patient_id, OutboxMessage.channel)
    ):
        pending.setdefault(row.patient_id, []).append((row.due_at, row.channel))
    keys = {welcome_key(patient): patient_id for patient_id, (patient, _) in patients.items()}
    stored = {row.patient_id: row for row in session.execute(
        select(OutboxMessage.id, OutboxMessage.patient_id, OutboxMessage.status, OutboxMessage.reason_code,
               OutboxMessage.due_at, OutboxMessage.channel)
        .where(OutboxMessage.dedupe_key.in_(sorted(keys)))
    )}
    to_create = []
    for patient_id, (patient, new_rows) in patients.items():
        texts = pending.get(patient_id, []) + [(r.due_at, r.channel) for r in new_rows
                                                if _scheduled_text(r.channel, r.kind)]
        row = _welcome(session, patient, stored.get(patient_id), min(texts) if texts else None, quiet, now,
                       new_rows)
        if row is not None:
            to_create.append(row)
    return to_create


def _location(session: Session, patient: Patient, new_rows: Sequence[OutboxRow], now: datetime) -> int | None:
    """The location a welcome goes out for: that of the first text planned now, whose number it
    introduces, else the patient's (reminders.locations.patient_location)."""
    texts = sorted((r for r in new_rows if _scheduled_text(r.channel, r.kind)), key=lambda r: r.due_at)
    return texts[0].location_id if texts else patient_location(session, patient.id, now)


def _welcome(session: Session, patient: Patient, stored, first: tuple[datetime, str] | None, quiet: QuietHours,
             now: datetime, new_rows: Sequence[OutboxRow] = ()) -> OutboxRow | None:
    """The patient's welcome kept ahead of their `first` text (due time, channel): the stored row
    moved or withdrawn, else the row to create."""
    if first is None:
        if stored is not None and stored.status in PENDING_STATUSES:
            cancel_pending(session, now, NOTHING_TO_INTRODUCE, ids=[stored.id], code=ReasonCode.NOTHING_TO_INTRODUCE)
        return None
    text_due, channel = first
    at = text_due - AHEAD
    due = quiet.next_allowed(at, patient.timezone)
    if stored is None:
        return OutboxRow(dedupe_key=welcome_key(patient), kind=Kind.WELCOME, rule=WELCOME_RULE, channel=channel,
                         planned_for=at, due_at=due, patient_id=patient.id,
                         location_id=_location(session, patient, new_rows, now))
    if stored.status in PENDING_STATUSES and (stored.due_at != due or stored.channel != channel):
        reschedule_pending(session, stored.id, at, due, now, channel=channel)
    elif stored.status == Status.CANCELED and stored.reason_code == ReasonCode.NOTHING_TO_INTRODUCE:
        revive_canceled(session, stored.id, at, due, now, channel=channel)
    return None


def pending_welcome(session: Session, patient: Patient) -> int | None:
    """The id of the patient's welcome row when it is still to go."""
    if not needs_welcome(patient):
        return None
    return session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.dedupe_key == welcome_key(patient), OutboxMessage.status.in_(PENDING_STATUSES)))


WAITING_FOR_WELCOME = "waiting for the welcome text to go first"
# A welcome that failed (refused, or the number unreachable) is for staff to resend: the texts
# after it look again this seldom meanwhile.
AFTER_A_FAILED_WELCOME = timedelta(minutes=30)
# Looking again for a welcome still to go: at its own time, at the earliest a minute from now.
WELCOME_RECHECK = timedelta(minutes=1)


def _welcome_row(session: Session, patient: Patient):
    return session.execute(select(OutboxMessage.status, OutboxMessage.due_at).where(
        OutboxMessage.dedupe_key == welcome_key(patient))).first()


def waits_for_welcome(session: Session, patient: Patient | None) -> bool:
    """A patient's other texts wait while their welcome (the HELP/STOP text) is still to go or
    failed: they are held, never sent without it. No row (none was needed) or one that was
    skipped (already welcomed), is being sent, or may have gone (unknown) keeps nobody waiting."""
    if patient is None or not needs_welcome(patient):
        return False
    row = _welcome_row(session, patient)
    return row is not None and (row.status in PENDING_STATUSES or row.status == Status.FAILED)


def welcome_wait_until(session: Session, patient: Patient, now: datetime) -> datetime:
    """When a text held for the patient's welcome looks again."""
    row = _welcome_row(session, patient)
    if row is None or row.status == Status.FAILED:
        return now + AFTER_A_FAILED_WELCOME
    return max(row.due_at, now + WELCOME_RECHECK)


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
