"""The dispatcher: claims due outbox rows for sending, and sweeps rows a dead worker left behind."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from reminders import provider_health
from reminders.models import OutboxMessage
from reminders.models.outbox import KIND_ALERT, PLANNED, QUEUED, SENDING, UNKNOWN

# A queued row nobody claimed in this long lost its task (broker restart): queue it again.
# Claiming is a conditional UPDATE, so a late original task and the new one cannot both send.
REQUEUE_AFTER = timedelta(minutes=10)
# A staff crisis alert is never left for the slow sweep: its task is handed out again sooner.
REQUEUE_ALERT_AFTER = timedelta(minutes=1)
# A worker's clock may run a little behind the process that queued the row (another host).
CLOCK_SKEW = timedelta(minutes=1)


def claim_due(session: Session, now: datetime, limit: int = 1000) -> list[int]:
    """Move due `planned` rows to `queued` and return their ids, oldest first.

    A channel whose provider is failing (its breaker is open, see reminders.provider_health)
    gives no rows but staff alerts; once its wait is over, one row goes as the probe."""
    paused, probes = provider_health.before_claiming(session, now)
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == PLANNED, OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if paused:
        due = due.where(provider_health.not_held(paused))
    ids = probes + session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()))
        .values(status=QUEUED, queued_at=now, updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(ids)


def _move(session: Session, ids: list[int], from_status: str, **values) -> list[int]:
    """Move those of `ids` still in `from_status`, in one conditional UPDATE; the ids it moved."""
    if not ids:
        return []
    moved = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == from_status)
        .values(**values)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(moved)


def queue_now(session: Session, ids: list[int], now: datetime) -> list[int]:
    """Queue these `planned` rows at once (crisis alerts), making them due now."""
    return _move(session, ids, PLANNED, status=QUEUED, queued_at=now, due_at=now, updated_at=now)


def requeue_lost(session: Session, now: datetime, after: timedelta = REQUEUE_AFTER,
                 alert_after: timedelta = REQUEUE_ALERT_AFTER) -> list[int]:
    """Queued rows whose task seems lost: stamped again and returned, to be handed out again."""
    lost = or_(OutboxMessage.queued_at <= now - after,
               and_(OutboxMessage.kind == KIND_ALERT, OutboxMessage.queued_at <= now - alert_after))
    ids = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.status == QUEUED, lost)
        .values(queued_at=now, updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(ids)


def release_to_planned(session: Session, ids: list[int], now: datetime, reason: str) -> list[int]:
    """Queued rows whose hand-off failed go back to `planned`, still due: the next pass takes them."""
    return _move(session, ids, QUEUED, status=PLANNED, queued_at=None, status_reason=reason, updated_at=now)


def mark_unknown_sends(session: Session, now: datetime, after: timedelta) -> int:
    """A row left in `sending` means a worker died between the provider call and the record.

    Whether the patient got it is unknown, so it is shown to staff rather than sent again.
    """
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < now - after)
        .values(status=UNKNOWN, status_reason="the worker stopped during the send; check before resending", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount or 0


def claim_for_sending(session: Session, outbox_id: int, now: datetime) -> bool:
    """The one place a row becomes `sending`: exactly one caller can win it."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.status == QUEUED,
               OutboxMessage.due_at <= now + CLOCK_SKEW)
        .values(status=SENDING, claimed_at=now, attempts=OutboxMessage.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def claim_many_for_sending(session: Session, ids: list[int], now: datetime) -> set[int]:
    """`claim_for_sending` for a batch, in one UPDATE: the ids this caller won. Rows another
    worker holds locked are skipped (SKIP LOCKED on PostgreSQL), not waited for."""
    if not ids:
        return set()
    claimable = (OutboxMessage.id.in_(ids), OutboxMessage.status == QUEUED,
                 OutboxMessage.due_at <= now + CLOCK_SKEW)
    chosen = select(OutboxMessage.id).where(*claimable).with_for_update(skip_locked=True)
    won = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(chosen.scalar_subquery()), *claimable)
        .values(status=SENDING, claimed_at=now, attempts=OutboxMessage.attempts + 1, updated_at=now)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return set(won)
