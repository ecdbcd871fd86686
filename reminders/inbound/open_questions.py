"""At most one open numeric question per patient: the texts that ask for a bare number never overlap.

Two kinds of text ask a patient for a number: a check-in (mood 0 to 10, or how much it hurts; a
caring contact's optional mood question is one too) and a questionnaire item by text (0 to 3 for
a PHQ-9 item). On the same morning a "2" could be either. So while one is open the other waits
(reminders.sending defers it, looking again every RECHECK; of two due, the one meant to go first
goes first, even before a questionnaire's reminder that would ask its item again), and a bare
number is read as the answer to the question asked last (reminders.inbound.questionnaire_replies
.current, replies).

A question is open from when it was asked until it is answered, and at most CHECKIN_ANSWER_HOURS
(24 by default: as long as a check-in expects its number). A check-in also closes when another
text went to the patient after it (the conversation moved on: a number is then no longer read as
its answer); a questionnaire closes when it expires or is complete. Each answer to a
questionnaire by text asks its next item, so it stays open while the patient is answering.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.channel_specs import is_text_channel, text_channels
from reminders.models import CheckIn, OutboxMessage, Questionnaire
from reminders.models.measures import BY_SMS, SENT, STARTED
from reminders.models.outbox import Kind, Status
from reminders.timing.rules import asks_for_a_score

CHECKIN, QUESTIONNAIRE = "checkin", "questionnaire"
OPEN_CHECKIN = ("awaiting", "reasked")  # reminders.inbound.replies.OPEN_CHECKIN
# A text that waits for another question's answer is looked at again this often.
RECHECK = timedelta(minutes=15)
WAITING = "waiting for the answer to the question asked before (one numeric question at a time)"


@dataclass(frozen=True)
class OpenQuestion:
    kind: str  # CHECKIN | QUESTIONNAIRE
    asked_at: datetime
    closes_at: datetime  # when it stops waiting for its answer, answered or not


def question_asked_by(kind: str, rule: str, channel: str, questions_by_text: bool) -> str | None:
    """The kind of numeric question a text asks (None: it asks none)."""
    if not is_text_channel(channel):
        return None
    if asks_for_a_score(kind, rule, channel):
        return CHECKIN
    if kind == Kind.QUESTIONNAIRE and questions_by_text:
        return QUESTIONNAIRE
    return None


def open_question(session: Session, settings, patient_id: int, now: datetime) -> OpenQuestion | None:
    """The patient's open numeric question, the one asked last when (from before this rule) two are."""
    window = timedelta(hours=settings.checkin_answer_hours)
    found = [q for q in (_open_checkin(session, patient_id, now, window),
                         _open_questionnaire(session, patient_id, now, window)) if q is not None]
    return max(found, key=lambda q: q.asked_at) if found else None


def waits_until(session: Session, settings, row: OutboxMessage, now: datetime) -> datetime | None:
    """When to look again at a text that would ask a number while another kind of question is
    open; None: it may go now."""
    from reminders.measures.questionnaires import by_sms  # the measures import the inbound package

    asking = question_asked_by(row.kind, row.rule, row.channel, by_sms(settings))
    if asking is None or row.patient_id is None:
        return None
    question = open_question(session, settings, row.patient_id, now)
    if question is not None and question.kind != asking:
        return min(question.closes_at, now + RECHECK)
    # A questionnaire's reminder asks its own item again, a check-in follows a check-in; but a text
    # of the other kind that was meant to go first, and has not gone yet, goes first (it may have
    # waited: without this, reminders that keep the question open could hold it back for ever).
    if _due_before(session, row, asking, now):
        return now + RECHECK
    return None


def _due_before(session: Session, row: OutboxMessage, asking: str, now: datetime) -> bool:
    others = session.execute(
        select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.rule, OutboxMessage.channel,
               OutboxMessage.planned_for)
        .where(OutboxMessage.patient_id == row.patient_id, OutboxMessage.id != row.id,
               OutboxMessage.status.in_((Status.PLANNED, Status.QUEUED, Status.SENDING)),
               OutboxMessage.planned_for <= now, OutboxMessage.channel.in_(text_channels()))
    ).all()
    return any(question_asked_by(other.kind, other.rule, other.channel, True) not in (None, asking)
               and (other.planned_for, other.id) < (row.planned_for, row.id) for other in others)


def _open_checkin(session: Session, patient_id: int, now: datetime, window: timedelta) -> OpenQuestion | None:
    checkin = session.scalars(
        select(CheckIn).where(CheckIn.patient_id == patient_id, CheckIn.status.in_(OPEN_CHECKIN),
                              CheckIn.prompted_at >= now - window, CheckIn.prompted_at <= now)
        .order_by(CheckIn.prompted_at.desc(), CheckIn.id.desc()).limit(1)
    ).first()
    if checkin is None:
        return None
    moved_on = session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.patient_id == patient_id, OutboxMessage.channel.in_(text_channels()),
            OutboxMessage.kind.not_in((Kind.REPLY, Kind.ALERT)),
            OutboxMessage.sent_at > checkin.prompted_at, OutboxMessage.sent_at <= now,
            OutboxMessage.id != (checkin.prompt_outbox_id or 0)).limit(1))
    if moved_on is not None:
        return None
    return OpenQuestion(CHECKIN, checkin.prompted_at, checkin.prompted_at + window)


def _open_questionnaire(session: Session, patient_id: int, now: datetime, window: timedelta) -> OpenQuestion | None:
    questionnaire = session.scalars(
        select(Questionnaire).where(
            Questionnaire.patient_id == patient_id, Questionnaire.channel == BY_SMS,
            Questionnaire.status.in_((SENT, STARTED)), Questionnaire.asked_item.is_not(None),
            Questionnaire.asked_at >= now - window, Questionnaire.asked_at <= now, Questionnaire.expires_at > now)
        .order_by(Questionnaire.asked_at.desc(), Questionnaire.id.desc()).limit(1)
    ).first()
    if questionnaire is None:
        return None
    return OpenQuestion(QUESTIONNAIRE, questionnaire.asked_at,
                        min(questionnaire.asked_at + window, questionnaire.expires_at))
