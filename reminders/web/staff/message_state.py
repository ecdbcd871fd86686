"""A message's state in staff words: waiting, sent, failed; never "sent" before it went.

Used by the reply notice on an inbox item and by /live.json, which carries these states (ids and
a word, no text) so that an open page shows "waiting" turn into "sent" without a reload.
"""
from __future__ import annotations

from sqlalchemy import select

from reminders.models import OutboxMessage
from reminders.models.outbox import Kind, Status
from reminders.provider_health import breaker
from reminders.web.staff.provider_banner import who_answers

WAITING, SENT, FAILED, NOT_SENT, UNCLEAR = "waiting", "sent", "failed", "not sent", "unclear"
STATES = {
    Status.PLANNED: WAITING, Status.QUEUED: WAITING, Status.SENDING: WAITING,
    Status.SENT: SENT, Status.DELIVERED: SENT,
    Status.UNDELIVERED: FAILED, Status.FAILED: FAILED,
    Status.SKIPPED: NOT_SENT, Status.CANCELED: NOT_SENT,
    Status.UNKNOWN: UNCLEAR,
}
# How many ids one poll may ask about (a page shows a handful).
MOST_IDS = 50


def _an_id(text: str | None) -> int | None:
    """A row id from a query string, or None (a huge number is none: the database would refuse it)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) <= 18 else None


def state_of(status: str) -> str:
    return STATES.get(status, WAITING)


def reply_words(state: str, name: str, reason: str | None = None) -> str:
    """The notice after a staff reply, for its state now."""
    if state == SENT:
        return f"Reply to {name} sent."
    if state == WAITING:
        return (f"Reply to {name} is waiting to go out{': ' + reason if reason else ''}. "
                "It goes automatically; this note changes when it has gone.")
    if state == FAILED:
        return f"Reply to {name} could not be sent{': ' + reason if reason else ''}. Call {name}, or resend it from their page."
    if state == UNCLEAR:
        return f"Reply to {name} may not have gone (the provider stopped answering). Check with {name} before resending."
    return f"Reply to {name} was not sent{': ' + reason if reason else ''}."


def parse_ids(value: str | None) -> list[int]:
    ids = [_an_id(part) for part in (value or "").split(",")[:MOST_IDS]]
    return [i for i in ids if i is not None]


def states(session, ids: list[int]) -> dict[str, str]:
    """Each asked-for outbox row's state, by id (as text: JSON keys)."""
    if not ids:
        return {}
    rows = session.execute(select(OutboxMessage.id, OutboxMessage.status).where(OutboxMessage.id.in_(ids)))
    return {str(row.id): state_of(row.status) for row in rows}


def reply_notice(session, outbox_id: str | None, patient) -> dict | None:
    """The notice on an inbox item after a reply was sent from it (?reply=<outbox id>): its state
    now, and the words for each state for the page to switch to as /live.json reports it."""
    row_id = _an_id(outbox_id)
    if patient is None or row_id is None:
        return None
    row = session.get(OutboxMessage, row_id)
    if row is None or row.kind != Kind.REPLY or row.patient_id != patient.id:
        return None
    state, name = state_of(row.status), patient.first_name
    paused = breaker(session, row.channel)
    who = who_answers(row.channel)
    waiting_why = f"{who} is not answering right now" if paused is not None and paused.is_open else None
    words = {WAITING: reply_words(WAITING, name, waiting_why), SENT: reply_words(SENT, name),
             FAILED: reply_words(FAILED, name, row.status_reason), NOT_SENT: reply_words(NOT_SENT, name, row.status_reason),
             UNCLEAR: reply_words(UNCLEAR, name)}
    return {"id": row.id, "state": state, "text": words[state], "words": words}
