"""Creating outbox rows: one typed row, one insert that leaves an existing key alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import Kind, Status


@dataclass(frozen=True)
class OutboxRow:
    """A row to plan. Its `dedupe_key` is unique: planning it twice leaves one row."""

    dedupe_key: str
    kind: Kind
    rule: str
    channel: str
    planned_for: datetime  # the rule's own time
    due_at: datetime  # when it may go (quiet hours, backoff)
    patient_id: int | None = None
    appointment_id: int | None = None
    escalation_id: int | None = None
    to_address: str | None = None  # written now for texts not rendered from a rule's template
    subject: str | None = None
    body: str | None = None
    status_reason: str | None = None

    def values(self, now: datetime) -> dict:
        return {**asdict(self), "status": Status.PLANNED, "attempts": 0, "created_at": now, "updated_at": now}


def appointment_key(appointment_id: int, rule: str, channel: str) -> str:
    return f"appt:{appointment_id}:{rule}:{channel}"


def plan(session: Session, rows: Iterable[OutboxRow], now: datetime) -> list[int]:
    """Insert rows; a row whose dedupe_key exists already is left alone. The ids inserted."""
    values = [row.values(now) for row in rows]
    if not values:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxMessage).values(values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return list(session.scalars(stmt).all())
