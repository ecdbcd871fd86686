"""What a patient's text does: opt-out, confirmation, check-in answer, staff inbox, escalation.

`handle_inbound` records the text, reads it (reminders.inbound.parsing, .symptoms), acts, and
returns the answer to send back in the same request. Every text ends in one of two places:

- handled by the service, with a classification that says how: ``stop``, ``start``, ``help``,
  ``confirm`` (a visit confirmed), ``ack`` (thanks, ok, a smile: recorded, no answer),
  ``checkin_answer`` (a score recorded), or ``checkin_unreadable`` (a text that tries to give a
  score and cannot be read, re-asked once; unanswered re-asks go to staff after
  REASK_ANSWER_WAIT, see `unanswered_reasks_to_staff`), ``questionnaire_answer`` and
  ``questionnaire_unreadable`` (a questionnaire by SMS: reminders.inbound.questionnaire_replies);
- or in the staff inbox (``needs_staff``): reschedule and cancel requests, free text, questions,
  side effects and blood pressures (ranked above routine items, PRIORITY_FLAGGED, with the
  reason), unprompted scores, a confirm with no visit to confirm, a second unreadable answer,
  a bare CANCEL (an opt-out that may have meant the visit), anything from an unknown number,
  and every crisis (``crisis``, ``low_score``), which also opens an escalation.

A check-in expects its number until CHECKIN_ANSWER_HOURS have passed or a newer text went to the
patient; a second text after the score (details) is added to it. A check-in and a questionnaire by
text are never open together (reminders.inbound.open_questions), and the answer to a score says
what the number was taken as ("Thank you, Maya: 7 for your mood today, glad to hear it!"). Crisis detection runs on every
text, keywords and unknown senders included. Answers are in the patient's language.

A clinic with several locations (reminders.locations): a text is for the location whose own number
it was sent to, else the patient's (location_of_text); it is answered in that location's name,
phone and office hours, and its escalation alerts that location's on-call.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reminders import checkins
from reminders import escalations
from reminders.channels.base import InboundText
from reminders.inbound import questionnaire_replies
from reminders.inbound.conversation import Conversation, Handled, crisis_terms
from reminders.inbound.inbox_rank import PRIORITY_CRISIS, PRIORITY_FLAGGED, PRIORITY_ROUTINE
from reminders.inbound.reply_texts import fallback_reply
from reminders.inbound.sender_lookup import OPEN_CHECKIN, location_of_text, patients_for, primary_patient
from reminders.locations import LocationBook
from reminders.models import CheckIn, InboundMessage

__all__ = [
    "ERROR_CLASSIFICATION", "HANDLED", "OPEN_CHECKIN", "PRIORITY_CRISIS", "PRIORITY_FLAGGED", "PRIORITY_ROUTINE",
    "REASK_ANSWER_WAIT", "Handled", "InboundText", "fallback_reply", "handle_inbound", "keep_for_staff_after_failure",
    "location_of_text", "stored_body", "unanswered_reasks_to_staff",
]

log = logging.getLogger(__name__)

# A re-asked check-in the patient has not answered in this long goes to staff with what they wrote.
REASK_ANSWER_WAIT = timedelta(hours=4)
REASKED = checkins.REASKED
# Classifications the service handles by itself (everything else is also in the staff inbox).
HANDLED = frozenset({"stop", "start", "help", "confirm", "ack", "follow_up", "answered", "checkin_answer",
                     "checkin_unreadable",
                     "checkin_details", questionnaire_replies.ANSWERED, questionnaire_replies.UNREADABLE})
ERROR_CLASSIFICATION = "error"


# ---------------------------------------------------------------- the entry point

def handle_inbound(session: Session, settings, text: InboundText, now: datetime) -> Handled:
    """Record one inbound text and act on it. The caller commits, then sends `alert_ids` at once.

    A message id (the provider's) seen before is not acted on again: the first answer is returned.
    The text's row is inserted once what it does is known (or earlier, when a check-in or an
    escalation must point at it); the message id is unique, so a text seen before (a provider's
    retry, or the same text in a concurrent request) fails that insert, everything this request
    did is rolled back, and the first answer is returned. Nothing leaves the process before the
    caller commits (crisis alerts are sent after it), so a text is acted on once."""
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        channel=text.channel, body=stored_body(text), received_at=now, classification="received", needs_staff=True,
    )
    try:
        return Conversation(session, settings, inbound, text, now).run()
    except IntegrityError:  # the same message id was stored first (earlier, or by a concurrent request)
        session.rollback()
        earlier = _by_sid(session, text.message_sid) if text.message_sid else None
        if earlier is None:
            raise
        return _replayed(earlier)


def keep_for_staff_after_failure(session: Session, settings, text: InboundText, now: datetime) -> Handled:
    """When acting on a text failed: keep it for staff and still answer with the crisis line.

    A text that might be a crisis opens an escalation here too, if the database allows."""
    session.rollback()
    crisis = crisis_terms(text.body)
    if text.message_sid:
        earlier = _by_sid(session, text.message_sid)
        if earlier is not None:
            return _replayed(earlier)
    patient = primary_patient(session, patients_for(session, text.from_number))
    book = LocationBook.load(session, settings)
    location_id = location_of_text(session, book, text.to_number, patient.id if patient else None, now)
    reply = fallback_reply("crisis" if crisis else "received", book.settings_for(location_id))
    inbound = InboundMessage(
        message_sid=text.message_sid or None, from_number=text.from_number, to_number=text.to_number,
        channel=text.channel, body=stored_body(text), received_at=now, patient_id=patient.id if patient else None,
        classification="crisis" if crisis else ERROR_CLASSIFICATION, needs_staff=True, reply_body=reply,
        priority=PRIORITY_CRISIS if crisis else PRIORITY_ROUTINE,
        flag_reason="possible crisis" if crisis else "the service could not act on this text",
    )
    session.add(inbound)
    session.flush()
    handled = Handled(inbound.id, inbound.classification, True, reply)
    if crisis:
        escalation, ids = escalations.open_escalation(
            session, settings, patient=patient, inbound=inbound, reason=escalations.REASON_CRISIS, now=now,
            location_id=location_id)
        handled.alert_ids, handled.escalation_id = ids, escalation.id
    return handled


def stored_body(text: InboundText) -> str:
    """The text as staff see it; pictures are not fetched, so they are named."""
    notes = list(text.notes)
    if text.num_media > 0:
        what = "1 picture or file" if text.num_media == 1 else f"{text.num_media} pictures or files"
        notes.append(f"[{what} attached: see the message in Twilio's log]")
    if not notes:
        return text.body
    note = " ".join(notes)
    return f"{text.body}\n{note}" if text.body.strip() else note


def _by_sid(session: Session, sid: str) -> InboundMessage | None:
    return session.scalar(select(InboundMessage).where(InboundMessage.message_sid == sid))


def _replayed(earlier: InboundMessage) -> Handled:
    log.info("inbound %s: message id seen before; answering as the first time", earlier.id)
    return Handled(earlier.id, earlier.classification, earlier.needs_staff, earlier.reply_body, replayed=True)


# ---------------------------------------------------------------- the sweep

def unanswered_reasks_to_staff(session: Session, now: datetime) -> int:
    """Re-asked check-ins left unanswered for REASK_ANSWER_WAIT go to staff with what was written.

    Run by every pass: without it, a first unreadable answer ("dizzy since yesterday") from a
    patient who never replies to the re-ask would be seen by nobody."""
    stale = session.scalars(
        select(CheckIn).where(CheckIn.status == REASKED, CheckIn.reasked_at <= now - REASK_ANSWER_WAIT)
    ).all()
    for checkin in stale:
        checkins.hand_to_staff(checkin)
        message = session.get(InboundMessage, checkin.inbound_message_id) if checkin.inbound_message_id else None
        if message is not None:
            message.needs_staff = True
        else:
            log.warning("check-in %s went to staff without its text", checkin.id)
    return len(stale)
