"""Check-ins by email: the one-tap link in the email, and the answer given on its page.

A patient with no text channel gets the day-after and weekly check-ins by email
(reminders.timing.rules); the email carries PUBLIC_BASE_URL/c/<token>. The page's answer (a
score 0-10, side effects ticked, free words) is written as the text the SMS check-in asks for
("3, dizziness. slept badly") and goes through the same code as that text
(reminders.inbound.replies): stored as the check-in's answer, triaged, escalated, answered with
the same words (988, 911) in the patient's language.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reminders import escalations
from reminders.channels.base import InboundText
from reminders.inbound.conversation import Conversation
from reminders.inbound.inbox_rank import PRIORITY_FLAGGED
from reminders.inbound.sender_lookup import SenderFacts, next_visit
from reminders.models import CheckIn, CheckInLink, InboundMessage, OutboxMessage, Patient
from reminders.models.replies import checkin_kind
from reminders.preparation import clock, date_words

log = logging.getLogger(__name__)

# The side effects the text check-in names, in its order: what the page offers to tick, and the
# words the answer is written with (the words reminders.inbound.symptoms reads in a text).
SIDE_EFFECTS = ("floaty_or_blurry", "nausea", "vomiting", "dizziness", "headache", "high_blood_pressure")
SIDE_EFFECT_WORDS = {
    "en": {"floaty_or_blurry": "floaty or blurry vision", "nausea": "nausea", "vomiting": "vomiting",
           "dizziness": "dizziness", "headache": "headache", "high_blood_pressure": "high blood pressure"},
    "es": {"floaty_or_blurry": "se siente como flotando o ve borroso", "nausea": "náuseas", "vomiting": "vómitos",
           "dizziness": "mareo", "headache": "dolor de cabeza", "high_blood_pressure": "presión alta"},
}
FREE_TEXT_LIMIT = 1000  # characters kept from the box (a text is at most 1600)
PAGE_CHANNEL = "web"  # InboundMessage.channel of an answer given on the page


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits, as the questionnaire links


def link(settings, checkin_link: CheckInLink) -> str:
    return f"{settings.public_base_url.rstrip('/')}/c/{checkin_link.token}"


def for_message(session: Session, settings, row: OutboxMessage, patient: Patient, now: datetime) -> dict:
    """What a check-in email carries (template context): its link, made once per email (a retry
    of the same row writes the same link). Without PUBLIC_BASE_URL there is no page to link to:
    the email asks the patient to call."""
    if not settings.public_base_url:
        return {"checkin": {"link": None, "expires": None}}
    values = dict(token=new_token(), outbox_id=row.id, patient_id=patient.id, language=patient.language or "en",
                  expires_at=now + timedelta(hours=settings.checkin_answer_hours), created_at=now)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(CheckInLink).values(values).on_conflict_do_nothing())
    made = session.scalars(select(CheckInLink).where(CheckInLink.outbox_id == row.id)).one()
    expires = made.expires_at.astimezone(ZoneInfo(patient.timezone))
    joined = " a " if made.language == "es" else " at "  # "las 10:00 a. m." carries its article
    return {"checkin": {"link": link(settings, made),
                        "expires": date_words(expires, made.language) + joined + clock(expires, made.language)}}


def find_by_token(session: Session, token: str) -> CheckInLink | None:
    if not token or len(token) > 64:
        return None
    return session.scalars(select(CheckInLink).where(CheckInLink.token == token)).first()


def is_expired(checkin_link: CheckInLink, now: datetime) -> bool:
    return now >= checkin_link.expires_at


def checkin_of(session: Session, checkin_link: CheckInLink) -> CheckIn | None:
    """The check-in the email asked (created when it was sent); None while it is not sent."""
    return session.scalars(select(CheckIn).where(CheckIn.prompt_outbox_id == checkin_link.outbox_id)).first()


def asks(session: Session, checkin: CheckIn) -> str:
    """"mood" or "hurt", as the text check-in's `visit.checkin_asks`."""
    kind = checkin.kind or (checkin_kind(checkin.appointment) if checkin.appointment else "mood")
    return "hurt" if kind == "pain" else "mood"


@dataclass(frozen=True)
class PageAnswer:
    score: int
    side_effects: tuple[str, ...] = ()
    words: str = ""


def as_text(answer: PageAnswer, language: str) -> str:
    """The answer as the text check-in asks for it: "3, dizziness, headache. Slept badly"."""
    names = SIDE_EFFECT_WORDS.get(language, SIDE_EFFECT_WORDS["en"])
    text = ", ".join([str(answer.score), *(names[e] for e in SIDE_EFFECTS if e in answer.side_effects)])
    words = " ".join(answer.words.split())[:FREE_TEXT_LIMIT]
    return f"{text}. {words}" if words else text


@dataclass
class Answered:
    reply: str | None  # what a text with these words would have been answered
    crisis: bool  # an escalation was opened or added to: the page shows the crisis answer
    alert_ids: list[int]


def take_answer(session: Session, settings, checkin_link: CheckInLink, checkin: CheckIn, answer: PageAnswer,
                now: datetime) -> Answered:
    """Handle the page's answer as the same words by text; the caller commits, then sends the
    alerts at once. The link's own message id makes a second submit (a double tap, two tabs
    racing) fail its insert: nothing is handled twice."""
    patient = session.get(Patient, checkin_link.patient_id)
    body = as_text(answer, checkin_link.language)
    text = InboundText(message_sid=f"checkin-page-{checkin_link.id}", from_number=patient.phone or "", body=body)
    inbound = InboundMessage(message_sid=text.message_sid, from_number=text.from_number, channel=PAGE_CHANNEL,
                             body=body, received_at=now, classification="received", needs_staff=True)
    facts = SenderFacts(
        patient=patient, checkin=checkin, newer_text_sent=False, escalation_id=_open_escalation(session, patient),
        next_visit=next_visit(session, patient, now), latest_text=None, last_texted_at=None)
    handled = _PageConversation(session, settings, inbound, text, now, facts=[facts], score=answer.score).run()
    inbound.channel = PAGE_CHANNEL  # the replies were worded as for a text; staff see where it came from
    # The page shows the text's answer when it says what happens now (988/911 after a crisis, when
    # a nurse reads it); a routine thank-you may say "text us", so the page's own words go instead.
    inbound.reply_body = handled.reply if inbound.priority >= PRIORITY_FLAGGED else None
    checkin_link.answered_at = now
    crisis = handled.escalation_id is not None and handled.classification in escalations.CRISIS_CLASSIFICATIONS
    return Answered(inbound.reply_body, crisis, handled.alert_ids)


def _open_escalation(session: Session, patient: Patient) -> int | None:
    escalation = escalations.open_for(session, patient, patient.phone or "")
    return escalation.id if escalation is not None else None


class _PageConversation(Conversation):  # the one code path a text takes
    """The page's answer through the text's code: the score is what was tapped (a number in the
    free words, or a word like STOP there, must not change it)."""

    welcomes_first = False

    def __init__(self, *args, score: int, **kwargs):
        self.page_score = score
        super().__init__(*args, **kwargs)

    def read(self):
        reading = super().read()
        note = self.text.body[len(str(self.page_score)):].lstrip(",. ")
        return replace(reading, kind="score", score=self.page_score, note=note, keyword="")
