"""Keeping the record of sends when the database fails around them: a send the provider took is
recorded again after a failed commit; a row the provider never saw goes back to the schedule."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from reminders.interruptions import is_interruption
from reminders.models import OutboxMessage
from reminders.sending.handover import hold, record_sent
from reminders.sending.outcomes import NOT_HANDED_OVER, SendOutcome

log = logging.getLogger("reminders.sending")


def commit_sends(session: Session, unsaved: list, now: datetime) -> None:
    """Commit the sends recorded since the last commit. A commit that fails (the database
    ended the session) is tried once more on a fresh connection, the sends recorded again: each
    went to the provider, and a send left unrecorded would be shown to staff as unknown."""
    try:
        session.commit()
    except Exception as exc:  # noqa: BLE001
        if is_interruption(exc):
            raise
        log.warning("committing %s send(s) failed (%s); trying once more", len(unsaved), type(exc).__name__)
        session.rollback()
        record_again(session, unsaved, now)
        session.commit()
    unsaved.clear()


def not_handed_over(session: Session, row: OutboxMessage, unsaved: list, now: datetime) -> str:
    """The database failed just before the provider call: nothing went. The row goes back to
    the schedule, still due; if even that fails, the sweep puts it back (never `unknown`)."""
    session.rollback()
    log.warning("outbox %s: not handed to the provider (the database failed just before); back in the "
                "schedule", row.id)
    record_again(session, unsaved, now)
    try:
        outcome = hold(session, row, now, NOT_HANDED_OVER)  # commits the sends recorded again too
    except Exception as exc:  # noqa: BLE001 - the sweep releases it (release_unhanded)
        if is_interruption(exc):
            raise
        session.rollback()
        log.warning("outbox %s: could not be put back (%s); the sweep will", row.id, type(exc).__name__)
        outcome = SendOutcome.NOT_HANDED
    unsaved.clear()
    return outcome


def record_again(session: Session, unsaved: list, now: datetime) -> None:
    """Sends recorded since the last commit went with the rollback of a failed one: record
    them again. If even that fails they stay in `sending`, and staff see them as unknown."""
    try:
        for row, patient, receipt in unsaved:
            record_sent(session, row, patient, receipt, now)
    except Exception:  # noqa: BLE001
        session.rollback()
        unsaved.clear()
        log.exception("sends of this batch could not be recorded; they will show as unknown")
