"""Questionnaires put to patients: opened when their message goes, answered item by item (on the
/q/<token> page or by SMS), scored when complete; a self-harm answer escalates at once.

Every answer is stored as it arrives, so a questionnaire left half way keeps what was answered,
and one abandoned right after item 9 has already escalated.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from reminders import scales as catalogue
from reminders.escalations import open_for_answer
from reminders.models import Appointment, Patient, Questionnaire
from reminders.models.measures import BY_LINK, BY_SMS, COMPLETED, SENT, STARTED
from reminders.preparation import date_words

log = logging.getLogger(__name__)

# A reminder this soon after the link went would only nag (the service was down and both are due).
REMINDER_NOT_BEFORE = timedelta(hours=12)
MEASURES_RULE, MEASURES_REMINDER_RULE = "measures", "measures_reminder"
# What the text and the page tell a patient a question takes.
SECONDS_PER_QUESTION = 10


class AnswerRefused(ValueError):
    """An answer the questionnaire cannot take: unknown item, value out of range, already done."""


@dataclass(frozen=True)
class Recorded:
    """What one answer did: the questionnaire now, the next item to ask (None: complete), and the
    staff alert rows to send right after the commit (a self-harm answer)."""

    questionnaire: Questionnaire
    next_item: int | None
    alert_ids: list[int]
    escalated: bool


def occasion_of(appointment: Appointment) -> str:
    if appointment.kind == "maintenance":
        return "maintenance"
    number = appointment.number_in_course
    return "baseline" if number == 1 else f"infusion_{number}"


def scales_for_course(settings, appointment: Appointment | None) -> list:
    """The scales this visit's course is measured with (MEASURES_BY_CONDITION); a name no definition
    has is logged and skipped, so a clinic's typo does not stop the others."""
    course = appointment.course if appointment is not None else None
    found = []
    for key in catalogue.scale_keys_for(course.condition if course else None, settings.measures_by_condition):
        try:
            found.append(catalogue.get_scale(key))
        except KeyError:
            log.error("MEASURES_BY_CONDITION names %r, which is not a questionnaire this service has; skipped", key)
    return found


def link(settings, questionnaire: Questionnaire) -> str:
    return f"{settings.public_base_url.rstrip('/')}/q/{questionnaire.token}"


def by_sms(settings) -> bool:
    """Without PUBLIC_BASE_URL there is no link a patient could open: the questions go by text. A
    clinic can also choose text (MEASURES_BY_SMS). The answers come back through the signed webhook."""
    return settings.measures_by_sms or not settings.public_base_url


def open_for_visit(session: Session, settings, patient: Patient, appointment: Appointment, now: datetime,
                   channel: str) -> list[Questionnaire]:
    """The questionnaires of this visit's occasion, created the first time (two senders racing
    create each once: the occasion key is unique)."""
    scales = scales_for_course(settings, appointment)
    keys = {f"appt:{appointment.id}:{scale.key}": scale for scale in scales}
    values = [dict(
        occasion_key=key, token=new_token(), patient_id=patient.id, course_id=appointment.course_id,
        appointment_id=appointment.id, scale=scale.key, occasion=occasion_of(appointment),
        language=patient.language or "en", channel=channel, status=SENT, answers={},
        screened_out=False, safety_raised=False, sent_at=now,
        expires_at=now + timedelta(days=settings.questionnaire_link_days), created_at=now,
    ) for key, scale in keys.items()]
    if values:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(Questionnaire).values(values).on_conflict_do_nothing())
    found = {q.occasion_key: q for q in session.scalars(
        select(Questionnaire).where(Questionnaire.occasion_key.in_(list(keys))))}
    return [found[key] for key in keys if key in found]


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits: not guessable, short enough for a text


def is_expired(questionnaire: Questionnaire, now: datetime) -> bool:
    return now >= questionnaire.expires_at


def pending(questionnaires: list[Questionnaire], now: datetime) -> list[Questionnaire]:
    return [q for q in questionnaires if q.status != COMPLETED and not is_expired(q, now)]


def visit_set(session: Session, questionnaire: Questionnaire) -> list[Questionnaire]:
    """The questionnaires put to the patient for the same visit, in the order they are asked."""
    if questionnaire.appointment_id is None:
        return [questionnaire]
    return list(session.scalars(select(Questionnaire).where(
        Questionnaire.appointment_id == questionnaire.appointment_id,
        Questionnaire.patient_id == questionnaire.patient_id).order_by(Questionnaire.id)))


def next_of_occasion(session: Session, questionnaire: Questionnaire, now: datetime) -> Questionnaire | None:
    """The next questionnaire of the same visit still to answer (the page leads on to it)."""
    left = pending([q for q in visit_set(session, questionnaire) if q.id != questionnaire.id], now)
    return left[0] if left else None


def workload(questionnaires: list[Questionnaire]) -> tuple[int, int]:
    """The questions still to answer in these, and about how many minutes they take."""
    questions = sum(len(items_left(q)) for q in questionnaires)
    return questions, max(1, round(questions * SECONDS_PER_QUESTION / 60))


def find_by_token(session: Session, token: str) -> Questionnaire | None:
    if not token or len(token) > 64:
        return None
    return session.scalars(select(Questionnaire).where(Questionnaire.token == token)).first()


def items_left(questionnaire: Questionnaire) -> list[int]:
    scale = catalogue.get_scale(questionnaire.scale)
    return catalogue.items_to_ask(scale, questionnaire.answered(), questionnaire.channel == BY_SMS)


def record_answer(session: Session, settings, questionnaire: Questionnaire, item: int, value: int,
                  now: datetime) -> Recorded:
    """Store one answer; score the questionnaire when nothing is left to ask. A safety item answered
    above 0 opens (or adds to) the patient's escalation and plans its staff alerts."""
    if questionnaire.status == COMPLETED:
        raise AnswerRefused("this questionnaire is already complete")
    scale = catalogue.get_scale(questionnaire.scale)
    if item not in {i.number for i in scale.items}:
        raise AnswerRefused(f"{scale.short_name} has no item {item}")
    allowed = {option.value for option in scale.options_for(item)}
    if value not in allowed:
        raise AnswerRefused(f"{value} is not an answer to {scale.short_name} item {item}")
    answers = dict(questionnaire.answers or {})
    answers[str(item)] = value
    questionnaire.answers = answers  # a new dict: the JSON column sees the change
    if questionnaire.status == SENT:
        questionnaire.status, questionnaire.started_at = STARTED, now
    alert_ids, escalated = [], False
    if item in catalogue.safety_items_raised(scale, {item: value}):
        alert_ids = _escalate(session, settings, questionnaire, scale, item, value, now)
        escalated = True
    left = items_left(questionnaire)
    if not left:
        _complete(questionnaire, scale, now)
    return Recorded(questionnaire, left[0] if left else None, alert_ids, escalated)


def _complete(questionnaire: Questionnaire, scale, now: datetime) -> None:
    """Score it; one stopped by SMS after a negative screener is screen negative instead: no total
    (the items not asked were not answered 0), band "screen_negative"."""
    answers = questionnaire.answered()
    screen_negative = questionnaire.channel == BY_SMS and catalogue.screen_positive(scale, answers) is False
    if screen_negative:
        questionnaire.score, questionnaire.band = None, catalogue.SCREEN_NEGATIVE
    else:
        total = catalogue.score(scale, answers)
        questionnaire.score = total
        questionnaire.band = catalogue.band(scale, total).key
    questionnaire.screened_out = screen_negative
    questionnaire.status, questionnaire.completed_at = COMPLETED, now
    questionnaire.asked_item = None
    log.info("questionnaire %s (%s) completed%s", questionnaire.id, scale.key,
             ", screen negative" if screen_negative else "")


def wants_extra(questionnaire: Questionnaire) -> bool:
    """The scale's unscored question after its items (the PHQ-9's difficulty question) is still to
    ask: the questionnaire is complete, was answered in full (not screen negative), has one, and a
    problem was checked off."""
    scale = catalogue.get_scale(questionnaire.scale)
    # "If you checked off any problems": asked when an item was answered above 0.
    return (scale.extra is not None and questionnaire.status == COMPLETED and not questionnaire.screened_out
            and questionnaire.extra_answer is None and any(v > 0 for v in questionnaire.answered().values()))


def record_extra(questionnaire: Questionnaire, value: int) -> None:
    """Store the answer to the unscored question after the items; the score does not change."""
    scale = catalogue.get_scale(questionnaire.scale)
    if scale.extra is None:
        raise AnswerRefused(f"{scale.short_name} has no question after its items")
    if questionnaire.status != COMPLETED:
        raise AnswerRefused("the items come first")
    if value not in {option.value for option in scale.extra.options}:
        raise AnswerRefused(f"{value} is not an answer to the {scale.short_name} {scale.extra.key} question")
    questionnaire.extra_answer = value


def extra_words(questionnaire: Questionnaire, language: str = "en") -> str | None:
    """The unscored answer in words ("Somewhat difficult"); None when not answered."""
    scale = catalogue.get_scale(questionnaire.scale)
    value = questionnaire.extra_answer
    if scale.extra is None or value is None:
        return None
    return next((o.text(language) for o in scale.extra.options if o.value == value), str(value))


def _escalate(session: Session, settings, questionnaire: Questionnaire, scale, item: int, value: int,
              now: datetime) -> list[int]:
    patient = session.get(Patient, questionnaire.patient_id)
    option = next(o for o in scale.options_for(item) if o.value == value)
    text = f"{scale.short_name} item {item}, \"{scale.item(item).text('en')}\": answered \"{option.text('en')}\" ({value})"
    escalation, ids = open_for_answer(session, settings, patient=patient, questionnaire_id=questionnaire.id,
                                      text=text, now=now)
    questionnaire.safety_raised = True
    questionnaire.escalation_id = questionnaire.escalation_id or escalation.id
    return ids


def for_message(session: Session, settings, rule: str, patient: Patient, appointment: Appointment | None,
                spec, now: datetime) -> dict | str:
    """What a questionnaire message carries (template context), or why it does not go."""
    if appointment is None:
        return "no visit for the questionnaire"
    sms = by_sms(settings)
    if sms and not spec.is_text:
        return "the questions go by text at this clinic: no link to email"
    questionnaires = open_for_visit(session, settings, patient, appointment, now, BY_SMS if sms else BY_LINK)
    if not questionnaires:
        return "no questionnaire is set for this course's condition"
    left = pending(questionnaires, now)
    if not left:
        return "questionnaire already answered"
    if rule == MEASURES_REMINDER_RULE:
        if now - min(q.sent_at for q in questionnaires) < REMINDER_NOT_BEFORE:
            return "the questionnaire went only hours ago"
        for q in left:
            q.reminded_at = now
    first = left[0]
    questions, minutes = workload(left)
    context = {
        "link": None if sms else link(settings, first),
        "by_sms": sms,
        "questions": questions,
        "minutes": minutes,
        "expires": date_words(first.expires_at.astimezone(ZoneInfo(patient.timezone)), first.language),
        "started": any(q.status == STARTED for q in left),
    }
    if sms:
        context.update(sms_question(session, first, now))
    return {"questionnaire": context}


def sms_question(session: Session, questionnaire: Questionnaire, now: datetime) -> dict:
    """Ask the next item by text: what the message says, and the questionnaire marks it asked."""
    scale = catalogue.get_scale(questionnaire.scale)
    item_number = questionnaire.asked_item or items_left(questionnaire)[0]
    questionnaire.asked_item, questionnaire.asked_at = item_number, now
    return {"question": question_words(scale, item_number, questionnaire.language)}


def question_words(scale, item_number: int, language: str) -> dict:
    options = scale.options_for(item_number)
    return {
        "stem": scale.instructions.text(language),
        "text": scale.item(item_number).text(language),
        "number": item_number,
        "of": len(scale.items),
        "options": options_words(options, language),
        "lowest": min(o.value for o in options),
        "highest": max(o.value for o in options),
    }


def options_words(options, language: str) -> str:
    """"0 Not at all, 1 Several days, ..."; a scale whose options between the ends are only numbers
    (0-10 pain) reads "0 No pain to 10 Worst pain imaginable"."""
    def said(option) -> str:
        text = option.text(language)
        return text if text.split()[0] == str(option.value) else f"{option.value} {text}"

    middle = options[1:-1]
    if middle and all(o.text(language).strip() == str(o.value) for o in middle):
        joiner = " a " if language.startswith("es") else " to "
        return said(options[0]) + joiner + said(options[-1])
    return ", ".join(said(o) for o in options)
