"""A patient's text while a questionnaire by SMS waits for its answer (reminders.inbound.replies).

The questionnaire is the conversation's when its question is the latest thing we asked (a
check-in prompted later takes the number instead), it is not expired, and the patient has not
opted out. A check-in and a questionnaire by text are never open together (the later one waits:
reminders.inbound.open_questions), and each answer's reply says what the number was taken as
("2 for question 1, thank you. 2 of 9: ..."). Crisis words, STOP, HELP, START, C and R are handled before it, as always; the
questionnaire then waits. Otherwise the text is read as the answer (reminders.inbound.item_answers):

- an answer is recorded and answered with the next item, or a thank-you when it is complete (with
  the first item of the visit's next questionnaire, if one is pending);
- a self-harm answer (PHQ-9 item 9 above 0) is answered with the crisis lines, and its escalation's
  staff alerts go right after the commit like a crisis text's;
- what else the text says (a question, a side effect, a longer sentence) goes to the staff inbox too;
- anything that is not an answer is asked again once with the options; the second goes to staff.

While an escalation is open, a text joins it as today (the questionnaire waits), except answers
to the questionnaire whose own self-harm answer opened it.

An answer that comes after the questionnaire expired (within LATE_ANSWER_DAYS, its question still
the latest we asked) is not recorded: the patient is told it closed, and staff get the answer in
the inbox. It is not read as a mood score ("2" to "Feeling down" is not a mood of 2 out of 10),
except that a late answer above 0 to a self-harm item is treated as a crisis text.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders import escalations
from reminders.inbound.item_answers import ItemAnswer, read_item_answer
from reminders.inbound.parsing import Reading
from reminders import scales as catalogue
from reminders.measures.questionnaires import (AnswerRefused, items_left, next_of_occasion, question_words,
                                               record_answer, sms_question)
from reminders.channels.base import InboundText
from reminders.models import InboundMessage, Patient, Questionnaire
from reminders.models.measures import BY_SMS
from reminders.rendering import team_name

ANSWERED, UNREADABLE, CLOSED = "questionnaire_answer", "questionnaire_unreadable", "questionnaire_closed"
# How long after a questionnaire expires a number is still read as a late answer to its question.
LATE_ANSWER_DAYS = 7
LATE_ANSWER = timedelta(days=LATE_ANSWER_DAYS)
# A note this long (words) is more than an answer: staff read it.
NOTE_WORDS_FOR_STAFF = 3

FALLBACKS = {
    "en": {
        "next": "{number} of {of}: {text} Reply {options}.",
        "reask": "Sorry, we couldn't read that. Please reply with one number, {lowest} to {highest}: {text} {options}.",
        "done": "Thank you, that's all the questions. Your care team will see your answers.",
        "more": "Thanks. {questions} more: {stem} {text} Reply {options}.",
        "crisis": ("Thank you for telling us. Please call or text {crisis} now to talk with someone, day or night. "
                   "In an emergency call {emergency}. We have let {team} know, but this number is not watched "
                   "around the clock."),
        "closed": ("Thank you. Those questions have closed, so this answer was not saved; we have passed it to "
                   "{team}. In a crisis call or text {crisis}."),
    },
    "es": {
        "next": "{number} de {of}: {text} Responda {options}.",
        "reask": ("Perdone, no lo pudimos leer. Responda con un solo número, del {lowest} al {highest}: {text} "
                  "{options}."),
        "done": "Gracias, esas eran todas las preguntas. Su equipo de atención verá sus respuestas.",
        "more": "Gracias. {questions} más: {stem} {text} Responda {options}.",
        "crisis": ("Gracias por contarnos. Llame o mande un texto al {crisis} ahora, a cualquier hora (marque 2 para "
                   "español). En una emergencia, llame al {emergency}. Ya avisamos al equipo de {clinic}, pero este "
                   "número no se revisa las 24 horas."),
        "closed": ("Gracias. Esas preguntas ya cerraron, así que esta respuesta no se guardó; se la pasamos a su "
                   "equipo de atención. En una crisis llame o escriba al {crisis}."),
    },
}


class Answering(Protocol):
    """What a questionnaire's answer needs of the conversation (reminders.inbound.conversation):
    the text and its sender, what the answer found, and the conversation's own ways to flag the
    text for staff, store it and word the reply."""

    session: Session
    settings: object  # the location's: the reply's words
    clinic_settings: object  # the clinic's: a self-harm answer's escalation
    now: datetime
    text: InboundText
    inbound: InboundMessage
    patient: Patient | None
    known: object | None  # the sender's facts (reminders.inbound.sender_lookup.SenderFacts)
    questionnaire: Questionnaire | None
    closed_questionnaire: Questionnaire | None
    crisis: bool
    language: str
    crisis_priority: int
    priority: int
    reasons: list[str]
    alert_ids: list[int]
    escalation_id: int | None

    def flag(self, dry_run: bool = False, questions: bool = False) -> bool: ...

    def stored(self) -> int: ...

    def context(self) -> dict: ...

    def template(self, name: str, language: str) -> str: ...

    def render(self, name: str, context: dict) -> str | None: ...

    def reply(self, name: str) -> str: ...


# What the next question's fallback text says first: the answer it took.
NOTED = {"en": "{value} for question {number}, thank you. ", "es": "Anotamos {value} en la pregunta {number}, gracias. "}


def current(facts, open_checkin_asked_at: datetime | None, now: datetime) -> Questionnaire | None:
    """The questionnaire this text answers, from what sender_facts read (no query): none when an
    open check-in was asked after its question (the number is the check-in's). A patient who opted
    out still has it (a number is then not read as a mood score) but it takes no answer: see `takes`."""
    questionnaire = _latest_asked(facts, open_checkin_asked_at)
    return questionnaire if questionnaire is not None and questionnaire.expires_at > now else None


def closed(facts, open_checkin_asked_at: datetime | None, now: datetime) -> Questionnaire | None:
    """The questionnaire whose question is still the latest we asked but which has expired (at
    most LATE_ANSWER ago: sender_facts reads no older one)."""
    questionnaire = _latest_asked(facts, open_checkin_asked_at)
    return questionnaire if questionnaire is not None and questionnaire.expires_at <= now else None


def _latest_asked(facts, open_checkin_asked_at: datetime | None) -> Questionnaire | None:
    questionnaire = facts.questionnaire if facts is not None else None
    if questionnaire is None:
        return None
    if open_checkin_asked_at is not None and open_checkin_asked_at > questionnaire.asked_at:
        return None
    return questionnaire


def read_answer(questionnaire: Questionnaire, text: str, reading: Reading) -> ItemAnswer:
    """The text read as an answer to the questionnaire's asked item (value None: it is not one);
    for an open questionnaire or, after it closed, a late answer."""
    scale = catalogue.get_scale(questionnaire.scale)
    return read_item_answer(text, reading, scale.options_for(questionnaire.asked_item))


def is_self_harm(questionnaire: Questionnaire, value: int | None) -> bool:
    """An answer above 0 to the scale's self-harm item."""
    scale = catalogue.get_scale(questionnaire.scale)
    return bool(value) and questionnaire.asked_item in scale.safety_items


def take_late(conversation: Answering, found: ItemAnswer) -> tuple[str, bool, str | None]:
    """A late answer: not recorded; the patient is told, staff read it with the question's words."""
    questionnaire = conversation.closed_questionnaire
    conversation.inbound.appointment_id = questionnaire.appointment_id
    conversation.flag(questions=True)
    conversation.reasons.insert(0, "an answer after the questions closed: " + late_words(questionnaire, found.value))
    return CLOSED, True, _say(conversation, questionnaire, "closed", None)


def late_words(questionnaire: Questionnaire, value: int) -> str:
    """'PHQ-9 item 2 (Feeling down, depressed, or hopeless): 3 Nearly every day', for staff."""
    scale = catalogue.get_scale(questionnaire.scale)
    item = questionnaire.asked_item
    option = next((o for o in scale.options_for(item) if o.value == value), None)
    words = option.text("en") if option is not None else ""
    answer = words if words.startswith(str(value)) else f"{value} {words}".strip()
    return f"{scale.short_name} item {item} ({question_words(scale, item, 'en')['text']}): {answer}"


def takes(conversation: Answering) -> bool:
    """Whether the open questionnaire acts on this text (not a crisis, not from a number that opted out)."""
    questionnaire = conversation.questionnaire
    return questionnaire is not None and not conversation.crisis and not conversation.patient.sms_opted_out


def answers_its_own_escalation(conversation: Answering, reading: Reading) -> bool:
    """An answer to the questionnaire whose self-harm answer opened the escalation still open: it
    goes on (any other text while an escalation is open joins the escalation)."""
    questionnaire = conversation.questionnaire
    if questionnaire is None or questionnaire.escalation_id is None or conversation.known is None:
        return False
    if questionnaire.escalation_id != conversation.known.escalation_id:
        return False
    return _read(conversation, reading).value is not None


def take(conversation: Answering, reading: Reading) -> tuple[str, bool, str | None]:
    """Act on the text as the questionnaire's answer: (classification, needs staff, reply)."""
    questionnaire = conversation.questionnaire
    conversation.inbound.appointment_id = questionnaire.appointment_id
    found = _read(conversation, reading)
    if found.value is None:
        return _ask_again(conversation, questionnaire)
    item = questionnaire.asked_item
    try:
        recorded = record_answer(conversation.session, conversation.clinic_settings, questionnaire, item,
                                 found.value, conversation.now)
    except AnswerRefused:  # an item the questionnaire no longer asks: ask what it does ask
        return _ask_again(conversation, questionnaire)
    passed_on = _pass_on(conversation, found.note)
    if recorded.escalated:
        reply = _after_self_harm(conversation, questionnaire, item, found.value, recorded)
        return ANSWERED, True, reply
    if recorded.next_item is not None:
        words = _ask(conversation, questionnaire, recorded.next_item)
        return ANSWERED, passed_on, _say(conversation, questionnaire, "next", words, passed_on=passed_on,
                                         answered={"value": found.value, "number": item})
    return ANSWERED, passed_on, _finished(conversation, questionnaire, passed_on)


def _ask(conversation: Answering, questionnaire: Questionnaire, item: int) -> dict:
    """Mark `item` asked now; its words for the reply."""
    questionnaire.asked_item = item
    return sms_question(conversation.session, questionnaire, conversation.now)["question"]


def _read(conversation: Answering, reading: Reading) -> ItemAnswer:
    return read_answer(conversation.questionnaire, conversation.text.body, reading)


def _pass_on(conversation: Answering, note: str) -> bool:
    """A question, side effects, a blood pressure or a longer sentence with the answer: staff read it."""
    flagged = conversation.flag(questions=True)
    if flagged:
        return True
    if len(note.split()) >= NOTE_WORDS_FOR_STAFF:
        conversation.reasons.append("more than an answer to the questionnaire")
        return True
    return False


def _finished(conversation: Answering, questionnaire: Questionnaire, passed_on: bool) -> str:
    following = next_of_occasion(conversation.session, questionnaire, conversation.now)
    if following is None or following.channel != BY_SMS or following.asked_item is not None:
        return _say(conversation, questionnaire, "done", None, passed_on=passed_on)
    words = sms_question(conversation.session, following, conversation.now)["question"]
    return _say(conversation, following, "more", words, questions=len(items_left(following)), passed_on=passed_on)


def _after_self_harm(conversation: Answering, questionnaire: Questionnaire, item: int, value: int, recorded) -> str:
    """The crisis answer; staff alerted right after the commit; the questionnaire goes on only if
    it has items left (by SMS the safety item comes last, so it usually ends here)."""
    conversation.alert_ids.extend(recorded.alert_ids)
    conversation.escalation_id = questionnaire.escalation_id
    escalations.point_at_text(conversation.session, questionnaire.escalation_id, conversation.stored)
    conversation.priority = conversation.crisis_priority
    conversation.reasons.insert(0, f"self-harm answer: questionnaire item {item} answered {value}")
    reply = _crisis(conversation, questionnaire)
    if recorded.next_item is not None:
        words = _ask(conversation, questionnaire, recorded.next_item)
        reply = f"{reply}\n\n{_say(conversation, questionnaire, 'next', words)}"
    return reply


def _crisis(conversation: Answering, questionnaire: Questionnaire) -> str:
    settings = conversation.settings
    text = _say(conversation, questionnaire, "crisis", None)
    # Whatever staff made of the template, the answer carries both numbers.
    if settings.crisis_line not in text or settings.emergency_number not in text:
        return _fallback(conversation, questionnaire, "crisis", None)
    return text


def _ask_again(conversation: Answering, questionnaire: Questionnaire) -> tuple[str, bool, str | None]:
    """Not an answer: ask the same item again once, with the options; a second time, staff read it
    (the questionnaire still takes a number later)."""
    long_text = len(conversation.text.body.split()) > NOTE_WORDS_FOR_STAFF
    flagged = conversation.flag(questions=long_text)
    if _asked_again_before(conversation, questionnaire):
        conversation.reasons.append("questionnaire answer we could not read")
        return UNREADABLE, True, conversation.reply("flagged" if flagged else "received")
    scale = catalogue.get_scale(questionnaire.scale)
    words = question_words(scale, questionnaire.asked_item, questionnaire.language)
    return UNREADABLE, flagged, _say(conversation, questionnaire, "reask", words, passed_on=flagged)


def _asked_again_before(conversation: Answering, questionnaire: Questionnaire) -> bool:
    """Whether this item was already asked again (a text since it was asked could not be read)."""
    return conversation.session.scalar(
        select(InboundMessage.id).where(
            InboundMessage.patient_id == questionnaire.patient_id, InboundMessage.classification == UNREADABLE,
            InboundMessage.received_at > questionnaire.asked_at, InboundMessage.id != conversation.inbound.id)
        .limit(1)
    ) is not None


def _say(conversation: Answering, questionnaire: Questionnaire, name: str, words: dict | None, *, questions: int = 0,
         passed_on: bool = False, answered: dict | None = None) -> str:
    """`answered`: the answer just recorded ({"value", "number"}), which the next question's text
    confirms first ("2 for question 1, thank you."): a bare number is read as the answer to the
    question asked last, and the patient sees which one it was taken for."""
    language = questionnaire.language or conversation.language
    context = conversation.context()
    context["questionnaire"] = {"question": words or {}, "questions": questions, "passed_on": passed_on,
                                "answered": answered}
    template = conversation.template(f"reply_questionnaire_{name}", language)
    return conversation.render(template, context) or _fallback(conversation, questionnaire, name, words, questions,
                                                                 answered)


def _fallback(conversation: Answering, questionnaire: Questionnaire, name: str, words: dict | None, questions: int = 0,
              answered: dict | None = None) -> str:
    settings = conversation.settings
    language = "es" if (questionnaire.language or "").startswith("es") else "en"
    words = words or {}
    noted = NOTED[language].format(**answered) if answered and name == "next" else ""
    return noted + FALLBACKS[language][name].format(
        crisis=settings.crisis_line, emergency=settings.emergency_number, clinic=settings.clinic_name,
        team=team_name(settings.clinic_name), questions=questions, **{
            key: words.get(key, "") for key in ("number", "of", "text", "options", "lowest", "highest", "stem")})
