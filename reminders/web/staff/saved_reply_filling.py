"""Saved replies filled in for a patient: a small template in the same sandbox, with the strict names
and variables of the message templates (reminders.rendering.message_context), rendered with the
patient's next visit so that "eat nothing after 3:30 AM" is their own clock time."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SecurityError
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Settings
from reminders.models import Appointment, Patient, SavedReply
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.rendering import LimitedEnvironment, message_context

# "después de las 3:30 a. m.." -> "a. m." (as reminders.rendering.render tidies a template's text)
_CLOCK_THEN_STOP = re.compile(r"\b([ap]\. m\.)\.")
_ENVIRONMENT = LimitedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class OfferedReply:
    id: int
    title: str
    text: str  # filled in for the patient ("" when it cannot be)
    problem: str = ""  # why it cannot be offered for this patient, in plain words


def replies_in(session: Session, language: str) -> list[SavedReply]:
    return list(session.scalars(
        select(SavedReply).where(SavedReply.language == language, SavedReply.deleted_at.is_(None))
        .order_by(SavedReply.position, SavedReply.id)))


def next_visit(session: Session, patient: Patient, now: datetime) -> Appointment | None:
    return session.scalar(
        select(Appointment).where(Appointment.patient_id == patient.id, Appointment.status.in_(ACTIVE_STATUSES),
                                  Appointment.starts_at >= now)
        .order_by(Appointment.starts_at).limit(1))


def fill_in(body: str, context: dict) -> str:
    """The reply's words for one patient: rendered in the sandbox, spaces tidied, lines kept."""
    text = _CLOCK_THEN_STOP.sub(r"\1", _ENVIRONMENT.from_string(body).render(**context))
    lines = (" ".join(line.split()) for line in text.strip().splitlines())
    return "\n".join(lines).strip()


def problem_words(exc: BaseException) -> str:
    """A failed reply's reason for staff and admins, not Jinja's."""
    if isinstance(exc, TemplateSyntaxError):
        return (f"Line {exc.lineno}: the {{{{ }}}} or {{% %}} markers do not pair up or a word in them is "
                "misspelt. Check that each {{ has its }} and each {% if %} its {% endif %}.")
    if isinstance(exc, UndefinedError):
        message = str(exc)
        if "'None' has no attribute" in message or "NoneType" in message:
            return "It needs a booked visit, and this patient has none."
        name = re.search(r"attribute '([^']+)'|'([^']+)' is undefined", message)
        word = next((part for part in name.groups() if part), "") if name else ""
        return f"“{word}” is not one of the details a saved reply can use; the list below gives them."
    if isinstance(exc, SecurityError):
        return "It asks for something a saved reply may not do (a very long or endless repetition)."
    return "It could not be filled in for a patient: check the words between {{ }} against the list below."


def reply_context(s: Settings, patient: Patient, visit: Appointment | None, language: str) -> dict:
    return message_context(s, patient, visit, s.induction_series_length, language)


def offered_replies(session: Session, s: Settings, patient: Patient | None, now: datetime) -> list[OfferedReply]:
    """The saved replies in the patient's language (English when the clinic has none in it), each
    filled in for this patient."""
    if patient is None:
        return []
    language = patient.language or DEFAULT_LANGUAGE
    replies = replies_in(session, language)
    if not replies and language != DEFAULT_LANGUAGE:
        replies, language = replies_in(session, DEFAULT_LANGUAGE), DEFAULT_LANGUAGE
    context = reply_context(s, patient, next_visit(session, patient, now), language)
    offered = []
    for reply in replies:
        try:
            offered.append(OfferedReply(reply.id, reply.title, fill_in(reply.body, context)))
        except Exception as exc:  # noqa: BLE001 - one broken reply must not take the page down
            offered.append(OfferedReply(reply.id, reply.title, "", problem_words(exc)))
    return offered
