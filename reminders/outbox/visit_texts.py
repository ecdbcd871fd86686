"""The texts-per-visit budget (reminders.timing.budget) checked again just before a text goes.

The planner keeps a visit's texts within TEXTS_PER_VISIT when it plans them, but some texts are
only known at send time: a reminder too long for two segments goes on in a second text
(reminders.outbox.rows.plan_following_parts). So a check-in, nudge or questionnaire text about to
go is weighed once more against the visit's texts that went and those still to go: when the
budget is full without it, it gives way (skipped, with the reason for staff).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import PENDING_STATUSES, Status
from reminders.timing.budget import VisitText, counts, is_safety, texts_to_keep

# A text that is going or went (whatever the carrier said since).
GOING = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.UNKNOWN)


def gives_way(session: Session, row: OutboxMessage, texts_per_visit: int | None) -> bool:
    """Whether this claimed row gives way to the visit's other texts (never a safety text)."""
    if texts_per_visit is None or row.appointment_id is None:
        return False
    this = VisitText(row.dedupe_key, row.rule, row.kind, row.channel)
    if not counts(this) or is_safety(this):
        return False
    others = session.execute(
        select(OutboxMessage.id, OutboxMessage.dedupe_key, OutboxMessage.rule, OutboxMessage.kind,
               OutboxMessage.channel, OutboxMessage.status)
        .where(OutboxMessage.appointment_id == row.appointment_id, OutboxMessage.id != row.id,
               OutboxMessage.status.in_((*GOING, *PENDING_STATUSES)))
    ).all()
    texts = [VisitText(other.dedupe_key, other.rule, other.kind, other.channel, went=other.status in GOING)
             for other in others] + [this]
    return this.key not in texts_to_keep(texts, texts_per_visit)
