"""Creating outbox rows: one typed row, one insert that leaves an existing key alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reminders.channel_specs import spec_for
from reminders.channels.kinds import reachable
from reminders.models import OutboxMessage
from reminders.models.outbox import PENDING_STATUSES, Kind, Status
from reminders.outbox.moves import Move


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
    part: int = 1  # a text that follows the one before it (plan_following_parts)
    segments: int | None = None
    location_id: int | None = None  # the visit's or the patient's location (reminders.locations)
    from_address: str | None = None  # the sender, when known at planning (a text that follows another)

    def values(self, now: datetime) -> dict:
        return {**asdict(self), "status": Status.PLANNED, "attempts": 0, "created_at": now, "updated_at": now}


def appointment_key(appointment_id: int, rule: str, channel: str) -> str:
    return f"appt:{appointment_id}:{rule}:{channel}"


def part_key(first_key: str, part: int) -> str:
    """The key of a following text: "appt:12:induction_24h:sms:part2"."""
    return f"{first_key}:part{part}"


def first_part_key(key: str) -> str:
    """The key of the message a part belongs to (the key itself for a first part)."""
    head, _, tail = key.rpartition(":part")
    return head if head and tail.isdigit() else key


def previous_part_key(row: OutboxMessage) -> str:
    first = first_part_key(row.dedupe_key)
    return first if row.part <= 2 else part_key(first, row.part - 1)


# A following text still waiting, or canceled with a moved visit, takes the new words; one the text
# no longer needs is canceled.
TAKEN_UP = Move((*PENDING_STATUSES, Status.CANCELED), Status.PLANNED)
NO_LONGER_NEEDED = Move(PENDING_STATUSES, Status.CANCELED)


def plan_following_parts(session: Session, first: OutboxMessage, texts: list[str], segments: list[int],
                         now: datetime) -> list[int]:
    """The texts that follow `first` (already rendered, in order), one row each, due now: each
    goes once the one before it went (reminders.sending). A part already sent is left as it went;
    one still waiting (or canceled with a moved visit) takes the new words; parts the text no
    longer needs are canceled. The ids planned or taken up again."""
    existing = {row.part: row for row in _parts_of(session, first)
                if row.dedupe_key == part_key(first.dedupe_key, row.part)}
    wanted = dict(enumerate(texts, start=2))
    ids: list[int] = []
    for part, row in existing.items():
        if part in wanted and row.status in TAKEN_UP.sources:
            taken = session.execute(update(OutboxMessage).where(
                OutboxMessage.id == row.id, TAKEN_UP.still_there).values(
                status=TAKEN_UP.to, status_reason=_part_reason(part, first), reason_code=None, body=wanted[part],
                segments=segments[part - 2], to_address=first.to_address, planned_for=first.planned_for,
                from_address=first.from_address,
                due_at=now, queued_at=None,
                updated_at=now).execution_options(synchronize_session=False)).rowcount
            if taken:
                ids.append(row.id)
        elif part not in wanted and row.status in NO_LONGER_NEEDED.sources:
            session.execute(update(OutboxMessage).where(
                OutboxMessage.id == row.id, NO_LONGER_NEEDED.still_there).values(
                status=NO_LONGER_NEEDED.to, status_reason="no longer needed: the text is shorter now", reason_code=None,
                updated_at=now).execution_options(synchronize_session=False))
    new = [OutboxRow(
        dedupe_key=part_key(first.dedupe_key, part), kind=Kind(first.kind), rule=first.rule, channel=first.channel,
        planned_for=first.planned_for, due_at=now, patient_id=first.patient_id,
        appointment_id=first.appointment_id, to_address=first.to_address, body=text,
        status_reason=_part_reason(part, first), part=part, segments=segments[part - 2],
        location_id=first.location_id, from_address=first.from_address,
    ) for part, text in wanted.items() if part not in existing]
    return ids + plan(session, new, now)


# Built once (this runs for every long text sent): the rows whose key starts with a prefix, found
# through the visit's (or the patient's) index their parts share with the first text: a LIKE alone
# is a scan of the whole table under SQLite (its LIKE ignores case, the key's index does not) and
# under a PostgreSQL database whose collation is not "C".
_PARTS = select(OutboxMessage).where(OutboxMessage.dedupe_key.like(bindparam("pattern"), escape="/"))
_PARTS_OF_VISIT = _PARTS.where(OutboxMessage.appointment_id == bindparam("owner"))
_PARTS_OF_PATIENT = _PARTS.where(OutboxMessage.patient_id == bindparam("owner"))


def _parts_of(session: Session, first: OutboxMessage):
    pattern = f"{first.dedupe_key}:part".replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    if first.appointment_id is not None:
        return session.scalars(_PARTS_OF_VISIT, {"pattern": pattern, "owner": first.appointment_id})
    if first.patient_id is not None:
        return session.scalars(_PARTS_OF_PATIENT, {"pattern": pattern, "owner": first.patient_id})
    return session.scalars(_PARTS, {"pattern": pattern})


def _part_reason(part: int, first: OutboxMessage) -> str:
    return f"text {part}: the rest of message {first.id}, sent after it"


def following_parts(session: Session, sent: list[OutboxMessage]) -> list[int]:
    """The planned texts that follow these rows, which just went (in their order)."""
    keys = [part_key(first_part_key(row.dedupe_key), row.part + 1) for row in sent]
    if not keys:
        return []
    found = dict(session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.id).where(
        OutboxMessage.dedupe_key.in_(keys), OutboxMessage.status == Status.PLANNED)).all())
    return [found[key] for key in keys if key in found]


def plan(session: Session, rows: Iterable[OutboxRow], now: datetime) -> list[int]:
    """Insert rows; a row whose dedupe_key exists already is left alone. The ids inserted."""
    values = [row.values(now) for row in rows]
    if not values:
        return []
    return list(session.execute(_plan_statement(session.get_bind().dialect.name), values).scalars())


_PLAN_STATEMENTS: dict = {}


def _plan_statement(dialect: str):
    """The insert, built once per dialect (the rows go as parameters: building the statement with
    them cost several times running it)."""
    if dialect not in _PLAN_STATEMENTS:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        _PLAN_STATEMENTS[dialect] = (insert(OutboxMessage.__table__)
                                     .on_conflict_do_nothing(index_elements=["dedupe_key"])
                                     .returning(OutboxMessage.__table__.c.id))
    return _PLAN_STATEMENTS[dialect]


# Never sent in place of another: a staff alert has its own row per channel, a welcome belongs
# to the channel it introduces.
NO_TWIN = (Kind.ALERT, Kind.WELCOME)
# Only a channel the patient texts back on can carry these: a reply to a text. (A check-in that
# cannot go by text goes by email, answered on its page: reminders.inbound.checkin_links.)
TEXT_ONLY = (Kind.REPLY,)


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
        location_id=row.location_id,
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
