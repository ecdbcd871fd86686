"""Handing rows out: planned -> queued -> sending (one winner), and back when a hand-off or a
worker stops. Every move out of a shared state is a conditional UPDATE, so two workers, a late task
and a sweep cannot both move one row."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import and_, case, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import Kind, ReasonCode, Status
from reminders.outbox.moves.allowed import (
    BACK_FROM_QUEUE, BACK_FROM_SENDING, CLAIM, QUEUE, UNKNOWN_SEND, move_ids, move_where,
)

log = logging.getLogger(__name__)

# A queued row nobody claimed in this long lost its task (broker restart): queue it again.
# Claiming is a conditional UPDATE, so a late original task and the new one cannot both send.
REQUEUE_AFTER = timedelta(minutes=10)
# A staff crisis alert is never left for the slow sweep: its task is handed out again sooner.
REQUEUE_ALERT_AFTER = timedelta(minutes=1)
# The longest a batch waits for a row another transaction holds (see _claim_when_unlocked).
CLAIM_LOCK_WAIT = timedelta(seconds=5)
# A worker's clock may run a little behind the process that queued the row (another host).
CLOCK_SKEW = timedelta(minutes=1)
UNKNOWN_AFTER_CRASH = "the worker stopped during the send; check before resending"
RELEASED_UNSENT = "the worker stopped before sending it; back in the schedule"


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
    moved = move_ids(session, ids, QUEUE, queued_at=now, due_at=now, updated_at=now)
    session.commit()
    return moved


def queue_probe(session: Session, outbox_id: int, now: datetime) -> bool:
    """Queue one due row as the probe of a paused provider (its due time unchanged)."""
    return bool(move_ids(session, [outbox_id], QUEUE, queued_at=now, updated_at=now))


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
    moved = move_ids(session, ids, BACK_FROM_QUEUE, queued_at=None, status_reason=reason, reason_code=code,
                     updated_at=now)
    session.commit()
    return moved


def hold_queued(session: Session, outbox_id: int, now: datetime, reason: str) -> bool:
    """A queued row whose provider is paused goes back to `planned`, untouched otherwise."""
    return bool(move_ids(session, [outbox_id], BACK_FROM_QUEUE, status_reason=reason,
                         reason_code=ReasonCode.PROVIDER_PAUSED, updated_at=now))


def mark_unknown_sends(session: Session, now: datetime, after: timedelta) -> int:
    """A row left in `sending` whose provider call had begun (`handed_at`) means a worker died
    between the call and its record.

    Whether the patient got it is unknown, so it is shown to staff rather than sent again. Commits.
    """
    stopped = (OutboxMessage.claimed_at < now - after, OutboxMessage.handed_at.is_not(None))
    result = move_where(session, UNKNOWN_SEND, stopped, status_reason=UNKNOWN_AFTER_CRASH,
                        reason_code=ReasonCode.UNKNOWN_AFTER_CRASH, updated_at=now)
    session.commit()
    return result.rowcount or 0


def release_unhanded(session: Session, now: datetime, after: timedelta) -> int:
    """Rows claimed by a worker that stopped (a deploy's SIGTERM, a crash) before their own provider
    call go back to the schedule, still due: nothing was sent, so they are sent at the next pass.

    `after` must be longer than a live batch may take to reach them (BATCH_SECONDS): a slow worker
    that gets there later finds the row no longer its own (`mark_in_flight`) and skips it. Commits."""
    stopped = (OutboxMessage.claimed_at < now - after, OutboxMessage.handed_at.is_(None))
    result = move_where(session, BACK_FROM_SENDING, stopped,
                        status_reason=RELEASED_UNSENT, reason_code=ReasonCode.RELEASED_UNSENT, updated_at=now,
                        attempts=case((OutboxMessage.attempts > 0, OutboxMessage.attempts - 1), else_=0))
    session.commit()
    return result.rowcount or 0


def claim_for_sending(session: Session, outbox_id: int, now: datetime) -> bool:
    """The one place a row becomes `sending`: exactly one caller can win it. Commits."""
    result = move_where(session, CLAIM, (OutboxMessage.id == outbox_id, OutboxMessage.due_at <= now + CLOCK_SKEW),
                        claimed_at=now, handed_at=None, attempts=OutboxMessage.attempts + 1, updated_at=now)
    session.commit()
    return result.rowcount == 1


def claim_many_for_sending(session: Session, ids: list[int], now: datetime) -> set[int]:
    """`claim_for_sending` for a batch, in one UPDATE: the ids this caller won. Rows another
    transaction holds locked are skipped (SKIP LOCKED on PostgreSQL), not waited for; then those
    still `queued` are claimed once their lock goes (`_claim_when_unlocked`). Commits."""
    if not ids:
        return set()
    chosen = select(OutboxMessage.id).where(*_claimable(ids, now)).with_for_update(skip_locked=True)
    won = set(_claim(session, (OutboxMessage.id.in_(chosen.scalar_subquery()), *_claimable(ids, now)), now))
    session.commit()
    skipped = [i for i in ids if i not in won]
    if skipped and session.get_bind().dialect.name == "postgresql":
        won |= _claim_when_unlocked(session, skipped, now)
    return won


def _claimable(ids: list[int], now: datetime) -> tuple:
    return OutboxMessage.id.in_(ids), CLAIM.still_there, OutboxMessage.due_at <= now + CLOCK_SKEW


def _claim(session: Session, where: tuple, now: datetime) -> list[int]:
    return session.scalars(
        update(OutboxMessage)
        .where(*where)
        .values(status=CLAIM.to, claimed_at=now, handed_at=None, attempts=OutboxMessage.attempts + 1,
                updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()


def _claim_when_unlocked(session: Session, ids: list[int], now: datetime) -> set[int]:
    """Rows the batch skipped because another transaction held them. A worker claiming them
    leaves them `sending` when it commits, and the conditional UPDATE finds nothing; but the
    holder may be no sender at all (an overlapping pass), and a row skipped then would sit
    `queued` with no task until the ten-minute requeue. So wait for the locks, briefly: a
    holder that keeps them longer (or a deadlock) leaves the rows to that requeue, as before."""
    try:
        session.execute(text(f"SET LOCAL lock_timeout = '{int(CLAIM_LOCK_WAIT.total_seconds() * 1000)}ms'"))
        won = set(_claim(session, _claimable(ids, now), now))
        session.commit()
        return won
    except DBAPIError as exc:
        session.rollback()
        log.warning("%s row(s) of a batch stayed locked by another transaction (%s); the requeue takes them",
                    len(ids), type(exc).__name__)
        return set()
