"""Check-ins: the one place a CheckIn row is made or changed.

A check-in is opened when its prompt is sent (reminders.sending), awaiting a score. The patient's
answer moves it: a readable score answers it; a first unreadable answer re-asks once; a second
one, or a re-ask left unanswered (reminders.inbound.replies.unanswered_reasks_to_staff), hands it
to staff with what was written. Words that come with or after the score are added to it (note,
details) whatever its status. The moves a check-in may make are in NEXT; any other raises
RefusedMove. tests/test_owners.py fails on a CheckIn written anywhere else.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.models import CheckIn


class CheckInStatus(StrEnum):
    """Stored in checkins.status: the values never change."""

    AWAITING = "awaiting"  # asked, no answer yet
    REASKED = "reasked"  # an answer we could not read: asked again once
    ANSWERED = "answered"  # a score recorded
    TO_STAFF = "to_staff"  # no score we could read: a person reads what was written


AWAITING, REASKED, ANSWERED, TO_STAFF = CheckInStatus
OPEN = (AWAITING, REASKED)  # still takes a score

# Where a check-in may go from each status. Answered and handed to staff are the ends.
NEXT: dict[CheckInStatus, frozenset[CheckInStatus]] = {
    AWAITING: frozenset({REASKED, ANSWERED, TO_STAFF}),
    REASKED: frozenset({ANSWERED, TO_STAFF}),
    ANSWERED: frozenset(),
    TO_STAFF: frozenset(),
}


class RefusedMove(ValueError):
    pass


def open_checkin(session: Session, *, patient_id: int, appointment_id: int | None, prompt_outbox_id: int,
                 kind: str, now: datetime) -> CheckIn:
    """The check-in its prompt asks for, awaiting the answer (flushed: it has its id)."""
    checkin = CheckIn(patient_id=patient_id, appointment_id=appointment_id, prompt_outbox_id=prompt_outbox_id,
                      status=AWAITING, prompted_at=now, kind=kind)
    session.add(checkin)
    session.flush()
    return checkin


def answer(checkin: CheckIn, *, score: int, note: str, text: str, inbound_id: int, now: datetime) -> None:
    """A score read from `text`, with the words around it (`note`). After a re-ask, the words of
    the unreadable answer become part of the note."""
    earlier = checkin.raw_text if checkin.status == REASKED else checkin.note
    _move(checkin, ANSWERED)
    checkin.score = score
    checkin.note = _joined(earlier, note.strip())
    _keep_text(checkin, text, inbound_id)
    checkin.answered_at = now


def reask(checkin: CheckIn, *, text: str, inbound_id: int, now: datetime) -> None:
    """A first answer we could not read: the question goes again, once."""
    _move(checkin, REASKED)
    checkin.reasked_at = now
    _keep_text(checkin, text, inbound_id)


def hand_to_staff(checkin: CheckIn, *, text: str | None = None, inbound_id: int | None = None) -> None:
    """No score we could read: a person reads what was written (`text`, when a text did it)."""
    _move(checkin, TO_STAFF)
    if text is not None:
        _keep_text(checkin, text, inbound_id)


def add_note(checkin: CheckIn, text: str) -> None:
    """Words after the score (or instead of it) that staff should see with the check-in."""
    checkin.raw_text = _appended(checkin.raw_text, text)
    checkin.note = _joined(checkin.note, text.strip())


def add_details(checkin: CheckIn, details: str) -> None:
    """Side effects and red flags read from the answer ("headache; BP 160/100")."""
    checkin.details = _joined(checkin.details, details)


def erase_words(session: Session, patient_id: int) -> None:
    """An erased patient's words go (reminders.retention.erase); scores and times stay."""
    session.execute(update(CheckIn).where(CheckIn.patient_id == patient_id).values(raw_text="", note="", details="")
                    .execution_options(synchronize_session=False))


def _move(checkin: CheckIn, to: CheckInStatus) -> None:
    current = CheckInStatus(checkin.status)
    if to not in NEXT[current]:
        raise RefusedMove(f"check-in {checkin.id} is {current}: it cannot become {to}")
    checkin.status = to


def _keep_text(checkin: CheckIn, text: str, inbound_id: int | None) -> None:
    checkin.raw_text = _appended(checkin.raw_text, text)
    if inbound_id is not None:
        checkin.inbound_message_id = inbound_id


def _appended(raw_text: str, text: str) -> str:
    return f"{raw_text}\n{text}" if raw_text else text


def _joined(*parts: str) -> str:
    return "; ".join(part for part in (p.strip() for p in parts) if part)
