"""Handing one rendered message to its provider, and recording what the provider said: sent, retried
later, failed for good (its fallback planned), or unknown (it may have gone: staff check)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from reminders.channels import Channel, DeliveryError, OutgoingMessage, Receipt
from reminders.checkins import open_checkin
from reminders.config import Settings
from reminders.interruptions import is_interruption
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import Kind, ReasonCode
from reminders.models.replies import checkin_kind
from reminders.outbox import moves
from reminders.outbox.rows import plan_fallback_twin
from reminders.provider_health import record_failure, record_success
from reminders.sending.outcomes import AfterHandOver, NotHandedOver, SendOutcome
from reminders.timing.rules import UNGATED_KINDS, asks_for_a_score

log = logging.getLogger("reminders.sending")


class Clock:
    """A batch's (or a send's) `now`, moved on by the whole seconds spent since: a batch paced at
    a long code's pace, or waiting out provider timeouts, runs for a minute, and a breaker opened
    from its start time would be over before it opened."""

    def __init__(self, start: datetime):
        self._start, self._began = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=int(time.monotonic() - self._began))


def hand_over(session: Session, settings: Settings, channels: dict[str, Channel], row: OutboxMessage,
              patient: Patient | None, message: OutgoingMessage, now: datetime, provider_healthy: bool,
              sent: list | None = None, recovered: Callable[[], None] = lambda: None) -> str:
    """Send one message and record it. `sent` collects the sends not yet committed; `recovered`
    is called when a paused channel answers again."""
    if row.kind in UNGATED_KINDS:
        message = replace(message, urgent=True)  # paced ahead of reminders (reminders.pacing)
    channel, clock = channels[row.channel], Clock(now)
    try:
        reserve = getattr(channel, "reserve", None)
        if reserve is not None:  # the wait for the sending number's pace comes before the record
            reserve(message)
            message = replace(message, slot_reserved=True)
        # In flight only now, just before its own provider call: a worker stopped before this
        # point leaves the row to go back to the schedule, never to "unknown".
        if not mark_in_flight(session, row, clock.now()):
            log.warning("outbox %s: no longer this worker's claim; left to whoever has it", row.id)
            return SendOutcome.NOT_CLAIMED
        receipt = channel.send(message)
    except DeliveryError as error:
        # The provider's trouble, not this message's (a code worth a few tries, such as a phone
        # switched off, is the number's trouble: it must not pause texts for everyone).
        # Timed from the answer (or the timeout), not from when the send began.
        if not error.permanent and error.max_attempts is None:
            record_failure(session, settings, row.channel, clock.now(), str(error), seconds(error.retry_after))
        return delivery_failed(session, settings, row, patient, error, clock.now())
    except NotHandedOver:
        raise
    except Exception as exc:  # noqa: BLE001 - not a provider answer: it may or may not have gone
        raise AfterHandOver(None) from exc
    _record_accepted(session, row, patient, receipt, clock.now(), provider_healthy, recovered)
    if sent is not None:
        sent.append((row, patient, receipt))
    log.info("outbox %s: sent %s %s via %s", row.id, row.rule, row.kind, row.channel)
    return SendOutcome.SENT


def _record_accepted(session: Session, row: OutboxMessage, patient: Patient | None, receipt: Receipt,
                     now: datetime, provider_healthy: bool, recovered: Callable[[], None]) -> None:
    try:
        if not provider_healthy and record_success(session, row.channel, now):
            # A paused channel answers again (its probe went): rows held meanwhile can go now.
            recovered()
        record_sent(session, row, patient, receipt, now)
    except Exception as exc:  # noqa: BLE001 - the provider has it: whatever failed here, never send again
        raise AfterHandOver(receipt) from exc


def mark_in_flight(session: Session, row: OutboxMessage, now: datetime) -> bool:
    try:
        return moves.mark_in_flight(session, row, now)
    except Exception as exc:  # noqa: BLE001 - the provider was not called: the row can go back
        if is_interruption(exc):
            raise
        raise NotHandedOver() from exc


def record_sent(session: Session, row: OutboxMessage, patient: Patient | None, receipt: Receipt,
                now: datetime) -> None:
    moves.mark_sent(session, row, receipt.provider_id, receipt.status, now)
    if row.kind == Kind.WELCOME and patient is not None:
        _record(session, patient, Patient, welcomed_at=now)
    if asks_for_a_score(row.kind, row.rule, row.channel) and patient is not None:
        appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        open_checkin(session, patient_id=patient.id, appointment_id=row.appointment_id, prompt_outbox_id=row.id,
                     kind=checkin_kind(appointment), now=now)


def _record(session: Session, obj, model, **values) -> None:
    """UPDATE one row by id (a patient), and let the loaded object show the same values without a reload."""
    session.execute(update(model).where(model.id == obj.id).values(**values)
                    .execution_options(synchronize_session=False))
    for key, value in values.items():
        set_committed_value(obj, key, value)


def delivery_failed(session: Session, settings: Settings, row: OutboxMessage, patient: Patient | None,
                    error: DeliveryError, now: datetime) -> str:
    if error.maybe_sent and row.kind != Kind.ALERT:
        # Sending again could text the patient twice; a person decides. (A staff alert is
        # retried: a second alert is better than none.)
        moves.mark_unknown(row, "the provider stopped answering during the send; check before resending",
                           error.code, str(error))
        log.warning("outbox %s: outcome unknown (code %s)", row.id, error.code)
        return SendOutcome.UNKNOWN
    if not error.permanent:
        return retry_or_fail(session, settings, row, now, str(error), code=error.code,
                             retry_after=seconds(error.retry_after), max_attempts=error.max_attempts)
    moves.mark_failed(row, "the provider refused it for good", error.code, str(error))
    log.warning("outbox %s: permanent failure (code %s)", row.id, error.code)
    if patient is not None:
        plan_fallback_twin(session, row, patient, now)
    return SendOutcome.FAILED


def settle_after_hand_over(session: Session, settings: Settings, row: OutboxMessage, receipt: Receipt | None,
                           now: datetime) -> str:
    """An error after the provider was called. Accepted: the row is sent (the details that
    failed to record are in the log). Unclear: `unknown` for staff, as when the provider stops
    answering mid-send; a staff crisis alert is tried again (a second alert beats none)."""
    if receipt is not None:
        moves.mark_sent_unrecorded(row, receipt.provider_id, receipt.status, now)
        return SendOutcome.SENT
    if row.kind == Kind.ALERT:
        return retry_or_fail(session, settings, row, now, "unexpected error during the send", code="internal",
                             max_attempts=settings.send_max_attempts)
    moves.mark_unknown(row, "an unexpected error during the send; check before resending", "internal")
    return SendOutcome.UNKNOWN


def retry_or_fail(session: Session, settings: Settings, row: OutboxMessage, now: datetime, reason: str,
                  code: str | None, retry_after: timedelta | None = None, max_attempts: int | None = None) -> str:
    """Try again later (reminders.outbox.moves.retry_or_fail). A provider's trouble (an outage,
    429, bad credentials) is retried for as long as the message can still do its job; our own
    (an internal error) at most SEND_MAX_ATTEMPTS times, a code the provider says is worth only
    a few tries at most that many."""
    visit = session.get(Appointment, row.appointment_id) if row.appointment_id else None
    return moves.retry_or_fail(row, now, reason, code, visit_starts_at=visit.starts_at if visit else None,
                               retry_after=retry_after, max_attempts=max_attempts,
                               first_wait=timedelta(seconds=settings.send_retry_first_seconds))


def hold(session: Session, row: OutboxMessage, now: datetime, reason: str, due_at: datetime | None = None,
         code: ReasonCode | None = None) -> str:
    moves.hold(session, row, now, reason, due_at=due_at, code=code)
    return SendOutcome.HELD


def seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
