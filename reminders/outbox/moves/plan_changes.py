"""Pending rows the plan changed: canceled, rescheduled, wanted again, brought forward or given up on."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import func
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import ReasonCode, Status
from reminders.outbox.moves.allowed import CANCEL_PENDING, RESCHEDULE, REVIVE, Move, move_where, update_where


def cancel_pending(session: Session, now: datetime, reason: str, *, ids: Iterable[int] | None = None,
                   escalation_id: int | None = None, code: ReasonCode | None = None) -> int:
    """Cancel rows not claimed by a sender yet (by id, or every row of an escalation)."""
    where = []
    if ids is not None:
        where.append(OutboxMessage.id.in_(list(ids)))
    if escalation_id is not None:
        where.append(OutboxMessage.escalation_id == escalation_id)
    return move_where(session, CANCEL_PENDING, where, status_reason=reason, reason_code=code,
                      updated_at=now).rowcount or 0


def reschedule_pending(session: Session, outbox_id: int, planned_for: datetime, due_at: datetime,
                       now: datetime, channel: str | None = None) -> None:
    """A pending row's visit moved: it goes at the new time (and, for a welcome, on the channel of
    the text it introduces). A queued row goes back to planned: its task, if still in the broker,
    finds nothing to claim."""
    also = {"channel": channel} if channel else {}
    move_where(session, RESCHEDULE, (OutboxMessage.id == outbox_id,),
               planned_for=planned_for, due_at=due_at, updated_at=now, **also)


def revive_canceled(session: Session, outbox_id: int, planned_for: datetime, due_at: datetime, now: datetime,
                    channel: str | None = None) -> None:
    """A row withdrawn by the planner is wanted again (a no-show corrected to completed)."""
    also = {"channel": channel} if channel else {}
    move_where(session, REVIVE, (OutboxMessage.id == outbox_id,), status_reason=None, reason_code=None,
               planned_for=planned_for, due_at=due_at, updated_at=now, **also)


def bring_forward_retries(session: Session, channel: str, now: datetime, _retrying_words: str | None = None) -> int:
    """Rows of a channel waiting out a retry backoff go now: the provider answers again. (Found by
    their reason_code; the words staff read are not looked at.)"""
    return update_where(session, (OutboxMessage.channel == channel, OutboxMessage.status == Status.PLANNED,
                                  OutboxMessage.due_at > now, OutboxMessage.reason_code == ReasonCode.RETRYING),
                        due_at=now, updated_at=now).rowcount or 0


def fail_many(session: Session, ids: list[int], statuses, now: datetime, reason: str, code: str) -> int:
    """Give up on rows still in `statuses` (a provider down past the time they could help)."""
    if not ids:
        return 0
    return move_where(session, Move(tuple(statuses), Status.FAILED), (OutboxMessage.id.in_(ids),),
                      status_reason=reason, reason_code=ReasonCode.GAVE_UP,
                      error_code=func.coalesce(OutboxMessage.error_code, code), updated_at=now).rowcount or 0
