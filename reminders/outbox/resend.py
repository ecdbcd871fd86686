"""Resending what did not go: a patient's failed or expired messages, put back in the schedule.

A message the provider refused, or one an outage kept until it was "too late to be useful", can
be sent again by staff, one or all of a patient's at once. Not everything may go again:

- a reminder (or a questionnaire before a visit) whose visit has started or passed, or a message
  about a canceled visit: it would tell the patient something that is no longer true;
- a text to a patient who opted out (STOP);
- a welcome to a patient who has been welcomed since.

A resent row is the same row, back to `planned` (its history is in the audit log): due now, or
at the end of the patient's quiet hours, its tries counted afresh, addressed to the patient's
contact as it is now, and its words rendered again when it goes, so that it still passes every
check at send time (opt-out, quiet hours, the welcome first).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from reminders.channel_specs import is_text_channel
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import Kind, ReasonCode, Status
from reminders.outbox.moves import Move
from reminders.outbox.rows import part_key
from reminders.timing.quiet_hours import QuietHours
from reminders.timing.rules import BEFORE_VISIT_KINDS

# What may be put back in the schedule: failed, undelivered, or skipped for being late (an outage,
# or the service being down, kept it past its use).
RESEND = Move((Status.FAILED, Status.UNDELIVERED, Status.SKIPPED), Status.PLANNED)
# The texts after a resent one, dropped with it, go again with it.
PARTS_GO_AGAIN = Move((Status.SKIPPED, Status.FAILED), Status.CANCELED)
# Failed messages older than this are history, not something to resend.
LOOK_BACK = timedelta(days=14)

VISIT_PASSED, VISIT_CANCELED, OPTED_OUT = "visit_passed", "visit_canceled", "opted_out"


@dataclass(frozen=True)
class Resendable:
    """A message of the patient's that did not go, and why it may not go again (None: it may)."""

    outbox_id: int
    kind: str
    rule: str
    channel: str
    status: str
    why_it_did_not_go: str
    planned_for: datetime
    visit_starts_at: datetime | None
    blocked: str | None

    @property
    def can_go(self) -> bool:
        return self.blocked is None


def _did_not_go(now: datetime):
    return (
        or_(OutboxMessage.status.in_((Status.FAILED, Status.UNDELIVERED)),
            (OutboxMessage.status == Status.SKIPPED) & (OutboxMessage.reason_code == ReasonCode.EXPIRED)),
        OutboxMessage.kind != Kind.ALERT, OutboxMessage.part == 1, OutboxMessage.updated_at >= now - LOOK_BACK,
    )


def what_did_not_go(session: Session, patient: Patient, now: datetime) -> list[Resendable]:
    """The patient's messages that failed or expired lately, oldest first, each with whether it may go again."""
    if patient.erased_at is not None:
        return []
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.rule, OutboxMessage.channel, OutboxMessage.status,
               OutboxMessage.status_reason, OutboxMessage.planned_for, Appointment.starts_at, Appointment.status)
        .outerjoin(Appointment, Appointment.id == OutboxMessage.appointment_id)
        .where(OutboxMessage.patient_id == patient.id, *_did_not_go(now))
        .order_by(OutboxMessage.planned_for, OutboxMessage.id)
    ).all()
    found = []
    for row in rows:
        if row.kind == Kind.WELCOME and patient.welcomed_at is not None:
            continue  # welcomed since: nothing is missing
        found.append(Resendable(row.id, row.kind, row.rule, row.channel, row.status,
                                row[5] or row.status, row.planned_for, row[7], _blocked(row, patient, now)))
    return found


def _blocked(row, patient: Patient, now: datetime) -> str | None:
    visit_starts_at, visit_status = row[7], row[8]
    if visit_status == "canceled":
        return VISIT_CANCELED
    if row.kind in BEFORE_VISIT_KINDS and visit_starts_at is not None and visit_starts_at <= now:
        return VISIT_PASSED
    if is_text_channel(row.channel) and patient.sms_opted_out:
        return OPTED_OUT
    return None


def resend(session: Session, patient: Patient, ids: list[int], quiet: QuietHours, now: datetime, by: str) -> list[int]:
    """Put back in the schedule those of `ids` that may go again; the ids put back. The caller commits."""
    allowed = {item.outbox_id: item for item in what_did_not_go(session, patient, now) if item.can_go}
    due = quiet.next_allowed(now, patient.timezone)
    resent = []
    for outbox_id in ids:
        item = allowed.get(outbox_id)
        if item is None or not _back_in_schedule(session, item, due, now, by):
            continue
        resent.append(outbox_id)
        if item.kind == Kind.WELCOME:
            _release_held_for_welcome(session, patient, due, now)
    return resent


def _back_in_schedule(session: Session, item: Resendable, due: datetime, now: datetime, by: str) -> bool:
    if item.status not in RESEND.sources:
        return False
    moved = session.execute(
        update(OutboxMessage).where(OutboxMessage.id == item.outbox_id, OutboxMessage.status == item.status)
        .values(status=RESEND.to, status_reason=f"resent by {by}"[:200], reason_code=None, planned_for=now, due_at=due,
                attempts=0, error_code=None, error_message=None, to_address=None, provider_id=None,
                provider_status=None, queued_at=None, claimed_at=None, handed_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        _following_parts_go_again(session, item.outbox_id, now)
    return bool(moved)


def _following_parts_go_again(session: Session, outbox_id: int, now: datetime) -> None:
    """The texts after it (the rest of a long one) were dropped with it: canceled here, they are
    taken up again with new words when it is rendered (reminders.outbox.rows.plan_following_parts)."""
    key = session.scalar(select(OutboxMessage.dedupe_key).where(OutboxMessage.id == outbox_id))
    keys = [part_key(key, part) for part in range(2, 10)]
    session.execute(
        update(OutboxMessage).where(OutboxMessage.dedupe_key.in_(keys), PARTS_GO_AGAIN.still_there)
        .values(status=PARTS_GO_AGAIN.to, status_reason="to go again with the text before it", reason_code=None,
                updated_at=now)
        .execution_options(synchronize_session=False))


def _release_held_for_welcome(session: Session, patient: Patient, due: datetime, now: datetime) -> None:
    """Texts held for the welcome go right after it, not at their next look."""
    session.execute(
        update(OutboxMessage).where(OutboxMessage.patient_id == patient.id, OutboxMessage.status == Status.PLANNED,
                                    OutboxMessage.reason_code == ReasonCode.WAITING_FOR_WELCOME,
                                    OutboxMessage.due_at > due)
        .values(due_at=due, updated_at=now).execution_options(synchronize_session=False))
