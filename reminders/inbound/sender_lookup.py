"""Who sent a text: the patients on the sender's number, the one it talks for, and what each has
open (a check-in, an escalation, the next visit, the latest text from us, a questionnaire by SMS),
read in one query; and the location the text is for."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, select, true
from sqlalchemy.orm import Session, aliased

from reminders.channel_specs import text_channels
from reminders import checkins
from reminders import escalations
from reminders.inbound import questionnaire_replies
from reminders.locations import LocationBook, patient_location
from reminders.models import Appointment, CheckIn, Escalation, OutboxMessage, Patient, Questionnaire
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.base import UTCDateTime
from reminders.models.measures import BY_SMS, SENT, STARTED
from reminders.models.outbox import Kind

OPEN_CHECKIN, ANSWERED = checkins.OPEN, checkins.ANSWERED


def location_of_text(session: Session, book: LocationBook, to_number: str | None, patient_id: int | None,
                     now: datetime) -> int | None:
    """The location a text is for: the one whose own sending number it was sent to, else the
    patient's, else the default (None). A number shared by several locations (the clinic's own
    number is that of every location without one) says nothing by itself."""
    if not book.several:
        return None
    by_number = book.by_sender(to_number)
    return by_number if by_number is not None else patient_location(session, patient_id, now)


def patients_for(session: Session, number: str) -> list[Patient]:
    if not number:
        return []
    return list(session.scalars(select(Patient).where(Patient.phone == number).order_by(Patient.id)))


def primary_patient(session: Session, patients: list[Patient], last: dict[int, datetime | None] | None = None
             ) -> Patient | None:
    """The patient a shared number is talking for: the one we texted last there. `last`: when
    each was texted last, when already read (sender_facts)."""
    if len(patients) <= 1:
        return patients[0] if patients else None
    if last is None:
        last = dict(session.execute(
            select(OutboxMessage.patient_id, func.max(OutboxMessage.sent_at))
            .where(OutboxMessage.patient_id.in_([p.id for p in patients]),
                   OutboxMessage.channel.in_(text_channels()), OutboxMessage.sent_at.is_not(None))
            .group_by(OutboxMessage.patient_id)
        ).all())
    return max(patients, key=lambda p: (last.get(p.id) is not None, last.get(p.id) or p.created_at, -p.id))


@dataclass
class SenderFacts:
    """What an inbound text needs to know about one patient on the sender's number."""
    patient: Patient
    checkin: CheckIn | None  # the latest asked or answered within the window (see current_checkin)
    newer_text_sent: bool  # a text went to the patient after that check-in was asked
    escalation_id: int | None  # the open escalation, if any
    next_visit: Appointment | None
    latest_text: object | None  # (kind, appointment_id, sent_at) of the latest text we sent, replies aside
    last_texted_at: datetime | None  # the latest text of any kind sent there (which patient a shared number is)
    questionnaire: Questionnaire | None = None  # by SMS, an item asked (the latest asked), expired at most LATE_ANSWER ago


def sender_facts(session: Session, number: str, now: datetime, settings) -> list[SenderFacts]:
    """The patients on this number, each with their current check-in, open escalation, next visit,
    latest text from us and questionnaire waiting for an SMS answer, in one query (correlated
    subqueries pick each one's row, so the answer is the same as current_checkin,
    escalations.open_for, next_visit and _reminded_visit's look-up would give)."""
    if not number:
        return []
    window = timedelta(hours=settings.checkin_answer_hours)
    query = _sender_facts_statement(session.get_bind().dialect)
    rows = session.execute(query, {"number": number, "now": now, "since": now - window,
                                   "closed_since": now - questionnaire_replies.LATE_ANSWER}).all()
    return [SenderFacts(patient=row[0], checkin=row[1], newer_text_sent=bool(row[1] is not None and row[3]),
                        escalation_id=row[4], next_visit=row[2],
                        latest_text=_LatestText(row[5], row[6], row[7]) if row[5] is not None else None,
                        last_texted_at=row[8], questionnaire=row[9])
            for row in rows]


_built_statements: dict[str, object] = {}
_building = threading.Lock()


def _sender_facts_statement(dialect):
    """sender_facts' statement for this database kind, built and compiled once per process.
    It is compiled before any thread can see it: SQLAlchemy fills in parts of a statement on its
    first compile, and two webhook threads compiling one new statement at once could read each
    other's half-made columns (NoSuchColumnError on a patient's text)."""
    statement = _built_statements.get(dialect.name)
    if statement is None:
        with _building:
            statement = _built_statements.get(dialect.name)
            if statement is None:
                statement = _sender_facts_query(dialect.name)
                statement.compile(dialect=dialect)
                _built_statements[dialect.name] = statement
    return statement


def _sender_facts_query(dialect: str):
    """sender_facts' statement (built once per process and database kind: aliases and subqueries
    cost more to build than the query costs to run); `number`, `now` and `since` are bound per
    text. Every part is picked per patient through an index (patient_id): on PostgreSQL the
    check-in and the visit are LATERAL joins, elsewhere joins on the id a subquery picks."""
    now = bindparam("now", type_=UTCDateTime)
    checkin_conditions, visit_conditions, asked_conditions = _picked_conditions(dialect, now)
    checkin, checkin_on = _one_per_patient(dialect, CheckIn, *checkin_conditions,
                                           order=lambda c: (c.prompted_at.desc(), c.id.desc()))
    visit, visit_on = _one_per_patient(dialect, Appointment, *visit_conditions, order=lambda a: (a.starts_at, a.id))
    asked, asked_on = _one_per_patient(dialect, Questionnaire, *asked_conditions,
                                       order=lambda q: (q.asked_at.desc(), q.id.desc()))
    return (
        select(Patient, checkin, visit, _newer_text(checkin, now), _open_escalation_id(), _latest_sent("kind", now),
               _latest_sent("appointment_id", now), _latest_sent("sent_at", now), _last_texted_at(), asked)
        .select_from(Patient)
        .outerjoin(checkin, checkin_on)
        .outerjoin(visit, visit_on)
        .outerjoin(asked, asked_on)
        .where(Patient.phone == bindparam("number"))
        .order_by(Patient.id)
    )


def _picked_conditions(dialect: str, now) -> tuple[tuple, tuple, tuple]:
    """What makes a patient's check-in, next visit and questionnaire the ones picked: on the
    model itself for PostgreSQL, else on the alias each subquery names (functions of it)."""
    since, closed_since = bindparam("since", type_=UTCDateTime), bindparam("closed_since", type_=UTCDateTime)
    if dialect == "postgresql":
        checkin_conditions = (CheckIn.status.in_(OPEN_CHECKIN + (ANSWERED,)), CheckIn.prompted_at >= since,
                              CheckIn.prompted_at <= now)
        visit_conditions = (Appointment.starts_at > now, Appointment.status.in_(ACTIVE_STATUSES))
        asked_conditions = (Questionnaire.channel == BY_SMS, Questionnaire.status.in_((SENT, STARTED)),
                            Questionnaire.asked_item.is_not(None), Questionnaire.expires_at > closed_since)
    else:
        checkin_conditions = (lambda c: c.status.in_(OPEN_CHECKIN + (ANSWERED,)), lambda c: c.prompted_at >= since,
                              lambda c: c.prompted_at <= now)
        visit_conditions = (lambda a: a.starts_at > now, lambda a: a.status.in_(ACTIVE_STATUSES))
        asked_conditions = (lambda q: q.channel == BY_SMS, lambda q: q.status.in_((SENT, STARTED)),
                            lambda q: q.asked_item.is_not(None), lambda q: q.expires_at > closed_since)
    return checkin_conditions, visit_conditions, asked_conditions


def _one_per_patient(dialect: str, model, *conditions, order):
    """The row of `model` a subquery picks for each patient, as an entity to outer-join."""
    if dialect == "postgresql":
        picked = (select(model).where(model.patient_id == Patient.id, *conditions)
                  .order_by(*order(model)).limit(1).lateral())
        return aliased(model, picked), true()
    other = aliased(model)
    picked_id = (select(other.id).where(other.patient_id == Patient.id, *[c(other) for c in conditions])
                 .order_by(*order(other)).limit(1).correlate(Patient).scalar_subquery())
    return model, model.id == picked_id


def _open_escalation_id():
    opened = aliased(Escalation)
    return (
        select(opened.id).where(opened.status.in_(escalations.ACTIVE), opened.patient_id == Patient.id)
        .order_by(opened.opened_at.desc(), opened.id.desc()).limit(1)
        .correlate(Patient).scalar_subquery())


def _latest_sent(column: str, now):
    """A column of the latest text we sent the patient, replies and staff alerts aside."""
    sent = aliased(OutboxMessage)
    return (select(getattr(sent, column))
            .where(sent.patient_id == Patient.id, sent.channel.in_(text_channels()),
                   sent.kind.not_in((Kind.REPLY, Kind.ALERT)), sent.sent_at.is_not(None), sent.sent_at <= now)
            .order_by(sent.sent_at.desc(), sent.id.desc()).limit(1)
            .correlate(Patient).scalar_subquery())


def _last_texted_at():
    any_text = aliased(OutboxMessage)
    return (
        select(func.max(any_text.sent_at))
        .where(any_text.patient_id == Patient.id, any_text.channel.in_(text_channels()),
               any_text.sent_at.is_not(None))
        .correlate(Patient).scalar_subquery())


def _newer_text(checkin, now):
    """Whether a text went to the patient after the picked check-in was asked (newer_text_sent)."""
    later = aliased(OutboxMessage)
    return exists().where(later.patient_id == Patient.id, later.channel.in_(text_channels()),
                          later.kind.not_in((Kind.REPLY, Kind.ALERT)),
                          later.sent_at > checkin.prompted_at, later.sent_at <= now,
                          later.id != func.coalesce(checkin.prompt_outbox_id, 0))

@dataclass(frozen=True)
class _LatestText:
    kind: str
    appointment_id: int | None
    sent_at: datetime


def current_checkin(session: Session, patient: Patient | None, now: datetime, settings,
                    facts: SenderFacts | None = None) -> CheckIn | None:
    """The check-in this patient's next text belongs to: asked (or answered) within
    CHECKIN_ANSWER_HOURS, with no newer text sent to the patient since it was asked.

    An open one (awaiting, re-asked) takes a score; an answered one takes details. `facts`:
    what sender_facts read for this patient (no query then)."""
    if patient is None:
        return None
    if facts is not None and facts.patient is patient:
        return None if facts.checkin is None or facts.newer_text_sent else facts.checkin
    window = timedelta(hours=settings.checkin_answer_hours)
    checkin = session.scalars(
        select(CheckIn)
        .where(CheckIn.patient_id == patient.id, CheckIn.status.in_(OPEN_CHECKIN + (ANSWERED,)),
               CheckIn.prompted_at >= now - window, CheckIn.prompted_at <= now)
        .order_by(CheckIn.prompted_at.desc(), CheckIn.id.desc())
        .limit(1)
    ).first()
    if checkin is None or newer_text_sent(session, patient, checkin, now):
        return None
    return checkin


def newer_text_sent(session: Session, patient: Patient, checkin: CheckIn, now: datetime) -> bool:
    """Whether a text (a reminder, another check-in, a nudge) went to the patient after the
    check-in was asked: then the conversation has moved on, and a number is no longer its answer."""
    return session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.patient_id == patient.id, OutboxMessage.channel.in_(text_channels()),
            OutboxMessage.kind.not_in((Kind.REPLY, Kind.ALERT)),
            OutboxMessage.sent_at > checkin.prompted_at, OutboxMessage.sent_at <= now,
            OutboxMessage.id != (checkin.prompt_outbox_id or 0))
        .limit(1)
    ) is not None


def next_visit(session: Session, patient: Patient, now: datetime) -> Appointment | None:
    return session.scalars(
        select(Appointment)
        .where(Appointment.patient_id == patient.id, Appointment.starts_at > now,
               Appointment.status.in_(ACTIVE_STATUSES))
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(1)
    ).first()
