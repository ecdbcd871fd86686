"""Moving outbox rows along their lifecycle: the only code that changes a row's status.

planned -> queued (claim_due, queue_now) -> sending (claim_for_sending, one winner) -> sent, then
delivered or undelivered (reminders.outbox.delivery); or back to planned (retry, quiet hours,
a paused provider), or to skipped, canceled, failed or unknown. Every move out of a shared state
is a conditional UPDATE, so two workers, a late task and a sweep cannot both move one row.

Every move is checked against reminders.models.outbox.ALLOWED_MOVES: a conditional UPDATE's
sources once, where it is defined (`Move`); a loaded row's move when it is made (`check_move`),
before anything on the row changes. A move the table does not allow raises OutboxMoveRefused.
Each reason written for staff (`status_reason`) goes with its `reason_code` (None when the code
has nothing to decide on it), which is what code reads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import and_, bindparam, case, event, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from reminders.db import ClinicSession
from reminders.models import OutboxMessage
from reminders.models.outbox import (
    ALLOWED_MOVES, CODE_OF_RULE_WORDS, PENDING_STATUSES, Kind, ReasonCode, Status,
)
from reminders.planning.retries import delivery_deadline, gave_up_reason, retry_delay, retry_time

log = logging.getLogger("reminders.outbox")

# A queued row nobody claimed in this long lost its task (broker restart): queue it again.
# Claiming is a conditional UPDATE, so a late original task and the new one cannot both send.
REQUEUE_AFTER = timedelta(minutes=10)
# A staff crisis alert is never left for the slow sweep: its task is handed out again sooner.
REQUEUE_ALERT_AFTER = timedelta(minutes=1)
# A worker's clock may run a little behind the process that queued the row (another host).
CLOCK_SKEW = timedelta(minutes=1)
ERROR_MESSAGE_LIMIT = 500  # the width of outbox.error_message
STATUS_REASON_LIMIT = 200  # the width of outbox.status_reason
RETRYING = "retrying after a temporary error"  # how a row waiting out a backoff begins its reason
UNKNOWN_AFTER_CRASH = "the worker stopped during the send; check before resending"
RELEASED_UNSENT = "the worker stopped before sending it; back in the schedule"
VISIT_CANCELED = "visit canceled"


class OutboxMoveRefused(Exception):
    """A status change reminders.models.outbox.ALLOWED_MOVES does not allow."""

    def __init__(self, sources, to: str, outbox_id: int | None = None):
        self.sources, self.to, self.outbox_id = tuple(sources), to, outbox_id
        which = f"outbox {outbox_id}" if outbox_id is not None else "an outbox row"
        super().__init__(f"{which} may not move from {'/'.join(map(str, self.sources))} to {to}")


def may_move(status: str, to: str) -> bool:
    return to in ALLOWED_MOVES.get(status, ())


@dataclass(frozen=True)
class Move:
    """A conditional move: the rows still in one of `sources` go to `to`. Refused when defined if
    any source may not go there."""

    sources: tuple[Status, ...]
    to: Status

    def __post_init__(self):
        refused = [status for status in self.sources if not may_move(status, self.to)]
        if refused:
            raise OutboxMoveRefused(refused, self.to)

    @property
    def still_there(self):
        """The condition a row must meet, as the UPDATE runs, to be moved."""
        if len(self.sources) == 1:
            return OutboxMessage.status == self.sources[0]
        return OutboxMessage.status.in_(self.sources)


def check_move(row: OutboxMessage, to: Status) -> None:
    """Before a loaded row's status is changed: the move must be allowed, or nothing changes."""
    if not may_move(row.status, to):
        raise OutboxMoveRefused((row.status,), to, row.id)


QUEUE = Move((Status.PLANNED,), Status.QUEUED)
CLAIM = Move((Status.QUEUED,), Status.SENDING)
BACK_FROM_QUEUE = Move((Status.QUEUED,), Status.PLANNED)
BACK_FROM_SENDING = Move((Status.SENDING,), Status.PLANNED)
UNKNOWN_SEND = Move((Status.SENDING,), Status.UNKNOWN)
CANCEL_PENDING = Move(PENDING_STATUSES, Status.CANCELED)
RESCHEDULE = Move(PENDING_STATUSES, Status.PLANNED)
REVIVE = Move((Status.CANCELED,), Status.PLANNED)


def _update(session: Session, where, **values):
    return session.execute(update(OutboxMessage).where(*where).values(**values)
                           .execution_options(synchronize_session=False))


def _moved(session: Session, move: Move, where, **values):
    """Move the rows of `where` still in one of the move's sources, in one UPDATE."""
    return _update(session, (*where, move.still_there), status=move.to, **values)


def _move(session: Session, ids: Iterable[int], move: Move, **values) -> list[int]:
    """Move those of `ids` still in one of the move's sources, in one conditional UPDATE; the ids moved."""
    ids = list(ids)
    if not ids:
        return []
    moved = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), move.still_there)
        .values(status=move.to, **values)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(moved)


# ---------------------------------------------------------------- handing rows out

def claim_due(session: Session, now: datetime, limit: int = 1000, *, held_channels: Iterable[str] = (),
              probes: Iterable[int] = ()) -> list[int]:
    """Move due `planned` rows to `queued` and return their ids, oldest first (with `probes`,
    rows the caller queued already). Rows of `held_channels` stay, except staff alerts.
    Commits."""
    held = list(held_channels)
    due = (
        select(OutboxMessage.id)
        .where(QUEUE.still_there, OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if held:
        due = due.where(or_(OutboxMessage.channel.not_in(held), OutboxMessage.kind == Kind.ALERT))
    ids = list(probes) + session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()), QUEUE.still_there)
        .values(status=QUEUE.to, queued_at=now, updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(ids)


def queue_now(session: Session, ids: list[int], now: datetime) -> list[int]:
    """Queue these `planned` rows at once (crisis alerts, a welcome), making them due now. Commits."""
    moved = _move(session, ids, QUEUE, queued_at=now, due_at=now, updated_at=now)
    session.commit()
    return moved


def queue_probe(session: Session, outbox_id: int, now: datetime) -> bool:
    """Queue one due row as the probe of a paused provider (its due time unchanged)."""
    return bool(_move(session, [outbox_id], QUEUE, queued_at=now, updated_at=now))


def requeue_lost(session: Session, now: datetime, after: timedelta = REQUEUE_AFTER,
                 alert_after: timedelta = REQUEUE_ALERT_AFTER) -> list[int]:
    """Queued rows whose task seems lost: stamped again and returned, to be handed out again. Commits."""
    lost = or_(OutboxMessage.queued_at <= now - after,
               and_(OutboxMessage.kind == Kind.ALERT, OutboxMessage.queued_at <= now - alert_after))
    ids = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.status == Status.QUEUED, lost)
        .values(queued_at=now, updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(ids)


def release_to_planned(session: Session, ids: list[int], now: datetime, reason: str,
                       code: ReasonCode | None = None) -> list[int]:
    """Queued rows whose hand-off failed go back to `planned`, still due: the next pass takes them. Commits."""
    moved = _move(session, ids, BACK_FROM_QUEUE, queued_at=None, status_reason=reason, reason_code=code,
                  updated_at=now)
    session.commit()
    return moved


def hold_queued(session: Session, outbox_id: int, now: datetime, reason: str) -> bool:
    """A queued row whose provider is paused goes back to `planned`, untouched otherwise."""
    return bool(_move(session, [outbox_id], BACK_FROM_QUEUE, status_reason=reason,
                      reason_code=ReasonCode.PROVIDER_PAUSED, updated_at=now))


def mark_unknown_sends(session: Session, now: datetime, after: timedelta) -> int:
    """A row left in `sending` whose provider call had begun (`handed_at`) means a worker died
    between the call and its record.

    Whether the patient got it is unknown, so it is shown to staff rather than sent again. Commits.
    """
    stopped = (OutboxMessage.claimed_at < now - after, OutboxMessage.handed_at.is_not(None))
    result = _moved(session, UNKNOWN_SEND, stopped,
                    status_reason=UNKNOWN_AFTER_CRASH, reason_code=ReasonCode.UNKNOWN_AFTER_CRASH, updated_at=now)
    session.commit()
    return result.rowcount or 0


def release_unhanded(session: Session, now: datetime, after: timedelta) -> int:
    """Rows claimed by a worker that stopped (a deploy's SIGTERM, a crash) before their own provider
    call go back to the schedule, still due: nothing was sent, so they are sent at the next pass.

    `after` must be longer than a live batch may take to reach them (BATCH_SECONDS): a slow worker
    that gets there later finds the row no longer its own (`mark_in_flight`) and skips it. Commits."""
    stopped = (OutboxMessage.claimed_at < now - after, OutboxMessage.handed_at.is_(None))
    result = _moved(session, BACK_FROM_SENDING, stopped,
                    status_reason=RELEASED_UNSENT, reason_code=ReasonCode.RELEASED_UNSENT, updated_at=now,
                    attempts=case((OutboxMessage.attempts > 0, OutboxMessage.attempts - 1), else_=0))
    session.commit()
    return result.rowcount or 0


def _bound(name: str, column: str):
    return bindparam(name, type_=OutboxMessage.__table__.c[column].type)


# The statements run once per message, built once: building one costs several times running it.
_outbox = OutboxMessage.__table__
_IN_FLIGHT = update(_outbox).where(
    _outbox.c.id == bindparam("row_id"), _outbox.c.status == Status.SENDING,
    _outbox.c.claimed_at == _bound("claimed", "claimed_at"),
).values(handed_at=_bound("handed", "handed_at"), updated_at=_bound("updated", "updated_at"))
_WRITE_SENT: dict = {}  # by the columns mark_sent records


def _write_sent_statement(columns: tuple[str, ...]):
    if columns not in _WRITE_SENT:
        _WRITE_SENT[columns] = update(_outbox).where(_outbox.c.id == bindparam("sent_id")).values(
            {name: _bound(name, name) for name in columns})
    return _WRITE_SENT[columns]


def mark_in_flight(session: Session, row: OutboxMessage, now: datetime) -> bool:
    """Just before this row's own provider call: record that the call begins. Only while the row is
    still this caller's claim (`sending`, its claim time unchanged); False when it is not (the sweep
    released it meanwhile). Commits (and with it any sends recorded earlier)."""
    result = session.execute(_IN_FLIGHT, {"row_id": row.id, "claimed": row.claimed_at, "handed": now, "updated": now})
    session.commit()
    return result.rowcount == 1


def claim_for_sending(session: Session, outbox_id: int, now: datetime) -> bool:
    """The one place a row becomes `sending`: exactly one caller can win it. Commits."""
    result = _moved(session, CLAIM, (OutboxMessage.id == outbox_id, OutboxMessage.due_at <= now + CLOCK_SKEW),
                    claimed_at=now, handed_at=None, attempts=OutboxMessage.attempts + 1, updated_at=now)
    session.commit()
    return result.rowcount == 1


def claim_many_for_sending(session: Session, ids: list[int], now: datetime) -> set[int]:
    """`claim_for_sending` for a batch, in one UPDATE: the ids this caller won. Rows another
    worker holds locked are skipped (SKIP LOCKED on PostgreSQL), not waited for. Commits."""
    if not ids:
        return set()
    claimable = (OutboxMessage.id.in_(ids), CLAIM.still_there, OutboxMessage.due_at <= now + CLOCK_SKEW)
    chosen = select(OutboxMessage.id).where(*claimable).with_for_update(skip_locked=True)
    won = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(chosen.scalar_subquery()), *claimable)
        .values(status=CLAIM.to, claimed_at=now, handed_at=None, attempts=OutboxMessage.attempts + 1,
                updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return set(won)


# ---------------------------------------------------------------- pending rows the plan changed

def cancel_pending(session: Session, now: datetime, reason: str, *, ids: Iterable[int] | None = None,
                   escalation_id: int | None = None, code: ReasonCode | None = None) -> int:
    """Cancel rows not claimed by a sender yet (by id, or every row of an escalation)."""
    where = []
    if ids is not None:
        where.append(OutboxMessage.id.in_(list(ids)))
    if escalation_id is not None:
        where.append(OutboxMessage.escalation_id == escalation_id)
    return _moved(session, CANCEL_PENDING, where, status_reason=reason, reason_code=code, updated_at=now).rowcount or 0


def reschedule_pending(session: Session, outbox_id: int, planned_for: datetime, due_at: datetime,
                       now: datetime, channel: str | None = None) -> None:
    """A pending row's visit moved: it goes at the new time (and, for a welcome, on the channel of
    the text it introduces). A queued row goes back to planned: its task, if still in the broker,
    finds nothing to claim."""
    also = {"channel": channel} if channel else {}
    _moved(session, RESCHEDULE, (OutboxMessage.id == outbox_id,),
           planned_for=planned_for, due_at=due_at, updated_at=now, **also)


def revive_canceled(session: Session, outbox_id: int, planned_for: datetime, due_at: datetime, now: datetime,
                    channel: str | None = None) -> None:
    """A row withdrawn by the planner is wanted again (a no-show corrected to completed)."""
    also = {"channel": channel} if channel else {}
    _moved(session, REVIVE, (OutboxMessage.id == outbox_id,), status_reason=None, reason_code=None,
           planned_for=planned_for, due_at=due_at, updated_at=now, **also)


def bring_forward_retries(session: Session, channel: str, now: datetime, _retrying_words: str | None = None) -> int:
    """Rows of a channel waiting out a retry backoff go now: the provider answers again. (Found by
    their reason_code; the words staff read are not looked at.)"""
    return _update(session, (OutboxMessage.channel == channel, OutboxMessage.status == Status.PLANNED,
                             OutboxMessage.due_at > now, OutboxMessage.reason_code == ReasonCode.RETRYING),
                   due_at=now, updated_at=now).rowcount or 0


def fail_many(session: Session, ids: list[int], statuses, now: datetime, reason: str, code: str) -> int:
    """Give up on rows still in `statuses` (a provider down past the time they could help)."""
    if not ids:
        return 0
    return _moved(session, Move(tuple(statuses), Status.FAILED), (OutboxMessage.id.in_(ids),),
                  status_reason=reason, reason_code=ReasonCode.GAVE_UP,
                  error_code=func.coalesce(OutboxMessage.error_code, code), updated_at=now).rowcount or 0


# ---------------------------------------------------------------- a claimed row's outcome

def write_rendered(row: OutboxMessage, *, to: str, subject: str | None, body: str, segments: int | None) -> None:
    """What is going out, written on the row before the provider is asked."""
    row.to_address, row.subject, row.body, row.segments = to, subject, body, segments


def mark_sent(session: Session, row: OutboxMessage, provider_id: str, provider_status: str, now: datetime) -> None:
    """The provider accepted it. Written with the next commit, all the sends since the last one in
    a single UPDATE (one statement, many rows: this runs once per message sent). A session not
    made by reminders.db writes it at once."""
    check_move(row, Status.SENT)
    values = dict(status=Status.SENT, status_reason=None, reason_code=None, sent_at=now, provider_id=provider_id,
                  provider_status=provider_status, error_code=None, error_message=None, updated_at=now)
    for key, value in values.items():
        set_committed_value(row, key, value)
    session.info.setdefault(_SENT, {})[row.id] = values
    if not isinstance(session, ClinicSession):
        write_sent(session)


_SENT = "reminders.outbox.sent"  # sends recorded in a session, written before it commits


def write_sent(session: Session) -> int:
    """Write the sends `mark_sent` recorded in this session (also done before every commit)."""
    sent = session.info.pop(_SENT, None)
    if not sent:
        return 0
    columns = tuple(next(iter(sent.values())))
    session.execute(_write_sent_statement(columns), [{"sent_id": outbox_id, **values} for outbox_id, values in sent.items()])
    return len(sent)


@event.listens_for(ClinicSession, "before_commit")
def _write_sent_before_commit(session: Session) -> None:
    write_sent(session)


@event.listens_for(ClinicSession, "after_rollback")
def _forget_sent_on_rollback(session: Session) -> None:
    # Rolled back with everything else; the sender records them again (Sender._record_again).
    session.info.pop(_SENT, None)


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
    _moved(session, BACK_FROM_SENDING, (OutboxMessage.id == row.id,), status_reason=reason, reason_code=code,
           attempts=OutboxMessage.attempts - 1, updated_at=now, **later)
    session.commit()
    session.expire(row)


def mark_unsent(row: OutboxMessage, reason: str, code: ReasonCode | None = None) -> None:
    """It will not go: canceled with its visit, otherwise skipped, with the reason for staff. A
    reason the rules give in words only (reminders.planning.send_checks.reason_not_to_send) brings its code."""
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
                  max_attempts: int | None = None) -> str:
    """Try again later, with backoff and jitter (at least `retry_after`), for as long as the
    message can still do its job (reminders.planning.retries.delivery_deadline) and, with
    `max_attempts`, at most that many tries. Returns "retrying" or "failed"."""
    if max_attempts is not None and row.attempts >= max_attempts:
        _give_up(row, f"gave up after {row.attempts} attempts", None, error, code)
        log.warning("outbox %s: failed after %s attempts (code %s)", row.id, row.attempts, code)
        return "failed"
    delay = retry_delay(row.attempts, row.id)
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
