"""A claimed row's outcome other than a plain send (reminders.outbox.moves.sends): held, deferred,
not sent, unknown, failed, or retried later. Each reason written for staff (`status_reason`) goes
with its `reason_code` (None when the code has nothing to decide on it), which is what code reads."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import CODE_OF_RULE_WORDS, ReasonCode, Status
from reminders.outbox.moves.allowed import BACK_FROM_SENDING, check_move, move_where
from reminders.timing.retries import BACKOFF_FIRST, delivery_deadline, gave_up_reason, retry_delay, retry_time

log = logging.getLogger("reminders.outbox")

ERROR_MESSAGE_LIMIT = 500  # the width of outbox.error_message
STATUS_REASON_LIMIT = 200  # the width of outbox.status_reason
RETRYING = "retrying after a temporary error"  # how a row waiting out a backoff begins its reason
VISIT_CANCELED = "visit canceled"


def write_rendered(row: OutboxMessage, *, to: str, subject: str | None, body: str, segments: int | None) -> None:
    """What is going out, written on the row before the provider is asked."""
    row.to_address, row.subject, row.body, row.segments = to, subject, body, segments


def mark_sent_unrecorded(row: OutboxMessage, provider_id: str, provider_status: str, now: datetime) -> None:
    """Accepted, but recording the details failed after: it went, and is never sent again."""
    check_move(row, Status.SENT)
    row.status, row.sent_at, row.provider_id, row.provider_status = Status.SENT, now, provider_id, provider_status
    row.status_reason, row.reason_code = "sent; recording the details failed (see the service log)", None


def defer(row: OutboxMessage, due_at: datetime, reason: str, code: ReasonCode | None = None) -> None:
    """Not now (quiet hours): back to planned, due later."""
    check_move(row, Status.PLANNED)
    row.status, row.due_at, row.status_reason, row.reason_code = Status.PLANNED, due_at, reason, code


def hold(session: Session, row: OutboxMessage, now: datetime, reason: str, *, due_at: datetime | None = None,
         code: ReasonCode | None = None) -> None:
    """A claimed row goes back, still due (or due at `due_at`), its try not counted: the provider
    paused mid-batch, the batch ran out of time, or the patient's welcome has not gone. Commits."""
    later = {"due_at": due_at} if due_at is not None else {}
    move_where(session, BACK_FROM_SENDING, (OutboxMessage.id == row.id,), status_reason=reason, reason_code=code,
               attempts=OutboxMessage.attempts - 1, updated_at=now, **later)
    session.commit()
    session.expire(row)


def mark_unsent(row: OutboxMessage, reason: str, code: ReasonCode | None = None) -> None:
    """It will not go: canceled with its visit, otherwise skipped, with the reason for staff. A
    reason the rules give in words only (reminders.timing.send_checks.reason_not_to_send) brings its code."""
    code = code or CODE_OF_RULE_WORDS.get(reason)
    status = Status.CANCELED if code == ReasonCode.VISIT_CANCELED else Status.SKIPPED
    check_move(row, status)
    row.status, row.status_reason, row.reason_code = status, reason, code
    log.info("outbox %s: not sent (%s)", row.id, reason)


def mark_unsent_with(row: OutboxMessage, before: OutboxMessage | None) -> None:
    """A following text whose text before it will not go: canceled with it (a canceled visit),
    otherwise skipped, never sent on its own."""
    if before is not None and before.status == Status.CANCELED:
        status, why = Status.CANCELED, f"canceled with text {before.id}: {before.status_reason or 'canceled'}"
    else:
        why = ("the text before it is gone" if before is None
               else f"text {before.id} before it may not have gone: check it first" if before.status == Status.UNKNOWN
               else f"text {before.id} before it was not sent")
        status = Status.SKIPPED
    check_move(row, status)
    row.status, row.status_reason, row.reason_code = status, why[:STATUS_REASON_LIMIT], None
    log.info("outbox %s: not sent (%s)", row.id, row.status_reason)


def mark_unknown(row: OutboxMessage, reason: str, code: str | None, error: str | None = None) -> None:
    """It may have gone: a person checks before anyone resends it."""
    check_move(row, Status.UNKNOWN)
    row.status, row.error_code, row.status_reason, row.reason_code = Status.UNKNOWN, code, reason, None
    if error is not None:
        row.error_message = error[:ERROR_MESSAGE_LIMIT]


def mark_failed(row: OutboxMessage, reason: str, code: str | None, error: str) -> None:
    check_move(row, Status.FAILED)
    row.status, row.status_reason, row.reason_code = Status.FAILED, reason, None
    row.error_code, row.error_message = code, error[:ERROR_MESSAGE_LIMIT]


def retry_or_fail(row: OutboxMessage, now: datetime, error: str, code: str | None, *,
                  visit_starts_at: datetime | None, retry_after: timedelta | None = None,
                  max_attempts: int | None = None, first_wait: timedelta = BACKOFF_FIRST) -> str:
    """Try again later, with backoff from `first_wait` and jitter (at least `retry_after`), for as
    long as the message can still do its job (reminders.timing.retries.delivery_deadline) and, with
    `max_attempts`, at most that many tries. Returns "retrying" or "failed"."""
    if max_attempts is not None and row.attempts >= max_attempts:
        _give_up(row, f"gave up after {row.attempts} attempts", None, error, code)
        log.warning("outbox %s: failed after %s attempts (code %s)", row.id, row.attempts, code)
        return "failed"
    delay = retry_delay(row.attempts, row.id, first_wait)
    if retry_after is not None:
        delay = max(delay, retry_after)
    again = retry_time(now, delay, delivery_deadline(row.kind, row.planned_for, visit_starts_at))
    if again is None:
        _give_up(row, gave_up_reason(row.kind), ReasonCode.GAVE_UP, error, code)
        log.warning("outbox %s: given up after %s attempts, the deadline has come (code %s)", row.id, row.attempts, code)
        return "failed"
    check_move(row, Status.PLANNED)
    row.error_code, row.error_message = code, error[:ERROR_MESSAGE_LIMIT]
    row.status, row.due_at = Status.PLANNED, again
    row.status_reason, row.reason_code = f"{RETRYING} (attempt {row.attempts})", ReasonCode.RETRYING
    log.info("outbox %s: temporary failure (code %s), retry at %s", row.id, code, row.due_at.isoformat())
    return "retrying"


def _give_up(row: OutboxMessage, reason: str, reason_code: ReasonCode | None, error: str, code: str | None) -> None:
    check_move(row, Status.FAILED)
    row.error_code, row.error_message = code, error[:ERROR_MESSAGE_LIMIT]
    row.status, row.status_reason, row.reason_code = Status.FAILED, reason, reason_code
