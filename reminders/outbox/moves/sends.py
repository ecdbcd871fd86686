"""A claimed row's own send, the path run once per message: the provider call recorded as begun,
then the send recorded, all the sends since the last commit in one UPDATE. The statements are
built once: building one costs several times running it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, event, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from reminders.db import ClinicSession
from reminders.models import OutboxMessage
from reminders.models.outbox import Status
from reminders.outbox.moves.allowed import check_move


def _bound(name: str, column: str):
    return bindparam(name, type_=OutboxMessage.__table__.c[column].type)


_outbox = OutboxMessage.__table__
_IN_FLIGHT = update(_outbox).where(
    _outbox.c.id == bindparam("row_id"), _outbox.c.status == Status.SENDING,
    _outbox.c.claimed_at == _bound("claimed", "claimed_at"),
).values(handed_at=_bound("handed", "handed_at"), updated_at=_bound("updated", "updated_at"))
_WRITE_SENT: dict = {}  # by the columns mark_sent records
_SENT = "reminders.outbox.sent"  # sends recorded in a session, written before it commits


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
