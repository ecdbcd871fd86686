"""Handing rows out: planned -> queued -> sending (one winner), and back when a hand-off or a
worker stops. Every move out of a shared state is a conditional UPDATE, so two workers, a late task
and a sweep cannot both move one row."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import Kind, ReasonCode, Status
from reminders.outbox.moves.allowed import (
    BACK_FROM_QUEUE, BACK_FROM_SENDING, CLAIM, QUEUE, UNKNOWN_SEND, move_ids, move_where,
)

# A queued row nobody claimed in this long lost its task (broker restart): queue it again.
# Claiming is a conditional UPDATE, so a late original task and the new one cannot both send.
REQUEUE_AFTER = timedelta(minutes=10)
# A staff crisis alert is never left for the slow sweep: its task is handed out again sooner.
REQUEUE_ALERT_AFTER = timedelta(minutes=1)
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
