"""The moves reminders.models.outbox.ALLOWED_MOVES allows, and the conditional UPDATEs that make them.

A conditional UPDATE's sources are checked once, where it is defined (`Move`); a loaded row's move
when it is made (`check_move`), before anything on the row changes. A move the table does not allow
raises OutboxMoveRefused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.models import OutboxMessage
from reminders.models.outbox import ALLOWED_MOVES, PENDING_STATUSES, Status


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


def update_where(session: Session, where, **values):
    return session.execute(update(OutboxMessage).where(*where).values(**values)
                           .execution_options(synchronize_session=False))


def move_where(session: Session, move: Move, where, **values):
    """Move the rows of `where` still in one of the move's sources, in one UPDATE."""
    return update_where(session, (*where, move.still_there), status=move.to, **values)


def move_ids(session: Session, ids: Iterable[int], move: Move, **values) -> list[int]:
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
