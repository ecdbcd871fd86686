"""Creating outbox rows: one typed row, one insert that leaves an existing key alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reminders.channels.kinds import reachable, spec_for
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


# Never sent in place of another: a staff alert has its own row per channel, a welcome belongs
# to the channel it introduces.
NO_TWIN = (Kind.ALERT, Kind.WELCOME)
# Only a channel the patient texts back on can carry these (a check-in is answered by text).
TEXT_ONLY = (Kind.CHECKIN, Kind.REPLY)


def plan_fallback_twin(session: Session, row: OutboxMessage, patient, now: datetime) -> bool:
    """Plan the twin of a message that cannot reach the patient on its own channel, on the first
    channel down its fallbacks that can (a WhatsApp message by text, else by email; a text by
    email). False when there is none.

    The twin uses the same key the rule's own message on that channel would have, so a patient
    who already gets the rule that way does not get it twice."""
    if row.kind in NO_TWIN:
        return False
    spec = _fallback_for(row, patient)
    if spec is None:
        return False
    key = appointment_key(row.appointment_id, row.rule, spec.name) if row.appointment_id else f"{row.dedupe_key}:{spec.name}"
    written = row.kind == Kind.REPLY  # a written answer carries its words; a rule's message is rendered again
    twin = OutboxRow(
        dedupe_key=key, kind=Kind(row.kind), rule=row.rule, channel=spec.name, planned_for=row.planned_for,
        due_at=now, patient_id=patient.id, appointment_id=row.appointment_id,
        subject=row.subject if written else None, body=row.body if written else None,
        status_reason=f"{spec.words} in place of {spec_for(row.channel).words} {row.id}",
    )
    return bool(plan(session, [twin], now))


def _fallback_for(row: OutboxMessage, patient):
    """The first fallback of the row's channel the patient can be reached on and that can carry it."""
    name = spec_for(row.channel).fallback
    while name is not None:
        spec = spec_for(name)
        if reachable(patient, spec) and (spec.is_text or row.kind not in TEXT_ONLY):
            return spec
        name = spec.fallback
    return None
