"""Reads behind the staff pages. No Flask here: each takes a session, the settings and `now`."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, selectinload

from reminders.channel_specs import SMS
from reminders.models import Appointment, CheckIn, Escalation, InboundMessage, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.outbox import PENDING_STATUSES, Kind
from reminders.followup import series_length
from reminders.web.staff.charts import Infusion, MoodPoint


def progress(appointment: Appointment, default_series: int) -> str:
    if appointment.status in ("canceled", "no_show"):  # a visit that did not happen keeps no place in the series
        return appointment.kind.capitalize()
    if appointment.kind == "induction":
        return f"Induction {appointment.number_in_course} of {series_length(appointment, default_series)}"
    return "Maintenance"


def day_has_come(appointment: Appointment, now: datetime) -> bool:
    """A visit can be marked completed or no-show from its day on (in the patient's zone)."""
    zone = ZoneInfo(appointment.patient.timezone)
    return appointment.starts_at.astimezone(zone).date() <= now.astimezone(zone).date()


# --- Today -------------------------------------------------------------------------------------

@dataclass
class VisitRow:
    appointment: Appointment
    patient: Patient
    progress: str
    messages: list[OutboxMessage] = field(default_factory=list)


@dataclass
class DayGroup:
    day: date
    visits: list[VisitRow]


def local_day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def upcoming_by_day(session: Session, settings, now: datetime, days: int = 7, first_day: date | None = None,
                    where=None) -> list[DayGroup]:
    """Visits from the start of `first_day` (today by default, clinic time) for `days` days,
    grouped by clinic-local day; `where`: a condition on the visit (its location)."""
    zone = ZoneInfo(settings.clinic_timezone)
    first_day = first_day or now.astimezone(zone).date()
    start = local_day_start(first_day, zone)
    end = local_day_start(first_day + timedelta(days=days), zone)
    query = select(Appointment).where(Appointment.starts_at >= start, Appointment.starts_at < end)
    if where is not None:
        query = query.where(where)
    appointments = session.scalars(
        query.order_by(Appointment.starts_at, Appointment.id)
        .options(selectinload(Appointment.patient), selectinload(Appointment.course))
    ).all()
    messages: dict[int, list[OutboxMessage]] = defaultdict(list)
    if appointments:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.appointment_id.in_([a.id for a in appointments]))
            .order_by(OutboxMessage.planned_for, OutboxMessage.id)
        ).all()
        for row in rows:
            messages[row.appointment_id].append(row)
    groups: dict[date, DayGroup] = {}
    for appointment in appointments:
        day = appointment.starts_at.astimezone(zone).date()
        group = groups.setdefault(day, DayGroup(day, []))
        group.visits.append(VisitRow(appointment, appointment.patient,
                                     progress(appointment, settings.induction_series_length),
                                     messages.get(appointment.id, [])))
    return [groups[day] for day in sorted(groups)]


def patient_location_of(patient_id, now: datetime):
    """reminders.locations.patient_location as a column beside each row of a list (one query for
    the list): the patient's next active visit's location, else their latest visit's."""
    upcoming = and_(Appointment.status.in_(ACTIVE_STATUSES), Appointment.starts_at >= now)
    return (select(Appointment.location_id).where(Appointment.patient_id == patient_id)
            .order_by(case((upcoming, 0), else_=1), case((upcoming, Appointment.starts_at)),
                      Appointment.starts_at.desc())
            .limit(1).correlate_except(Appointment).scalar_subquery())


# --- Patient ------------------------------------------------------------------------------------

@dataclass
class TimelineItem:
    at: datetime
    direction: str  # out | in
    title: str
    body: str
    status: str
    channel: str
    note: str = ""
    planned: bool = False  # not sent yet (a reminder or check-in still to come, a reply waiting)
    kind: str = ""  # the outbox kind, or the inbound text's classification
    flagged: bool = False  # an inbound text ranked above routine (a crisis, a side effect)


def _outbound_item(row: OutboxMessage) -> TimelineItem:
    from reminders.web.staff.display import rule_label

    when = row.delivered_at or row.sent_at or row.due_at
    note = row.status_reason or row.error_message or ""
    planned = row.status in PENDING_STATUSES
    if planned and not row.body:
        note = note or "written from the template when it is sent"
    elif planned and row.kind == Kind.REPLY:
        note = note or "waiting to go at the time shown (the end of the patient's quiet hours)"
    return TimelineItem(when, "out", rule_label(row.rule, row.kind), row.body or "", row.status, row.channel, note,
                        planned=planned, kind=row.kind)


def _inbound_item(message: InboundMessage) -> TimelineItem:
    from reminders.web.staff.display import inbound_label

    note = f"The service answered: “{message.reply_body}”" if message.reply_body else ""
    if message.done_note:
        note = f"{note} · " if note else ""
        note += f"What was done: {message.done_note}"
    return TimelineItem(message.received_at, "in", inbound_label(message.classification), message.body,
                        "needs staff" if message.needs_staff and not message.done_at else "",
                        message.channel or SMS.name, note, kind=message.classification, flagged=message.priority >= 1)


def timeline(session: Session, patient_id: int) -> list[TimelineItem]:
    """Everything sent to and from the patient, newest first (planned messages included)."""
    items = [_outbound_item(row) for row in
             session.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient_id))]
    items += [_inbound_item(message) for message in
              session.scalars(select(InboundMessage).where(InboundMessage.patient_id == patient_id))]
    return sorted(items, key=lambda item: item.at, reverse=True)


def thread(session: Session, patient_id: int | None, from_number: str) -> list[TimelineItem]:
    """The conversation beside an inbox item, oldest first: the patient's texts and what was sent
    to them (a reply still waiting for the end of quiet hours included; reminders still to come
    are not part of the conversation yet)."""
    if patient_id is None:
        inbound = session.scalars(select(InboundMessage).where(InboundMessage.patient_id.is_(None),
                                                               InboundMessage.from_number == from_number))
        return sorted((_inbound_item(m) for m in inbound), key=lambda item: item.at)
    items = [item for item in timeline(session, patient_id)
             if not item.planned or item.kind == Kind.REPLY]
    return sorted(items, key=lambda item: item.at)


def red_flags(session: Session, patient_id: int) -> list[InboundMessage]:
    """The patient's texts ranked above routine (side effects, a high blood pressure, a crisis), newest first."""
    return list(session.scalars(
        select(InboundMessage).where(InboundMessage.patient_id == patient_id, InboundMessage.priority >= 1)
        .order_by(InboundMessage.received_at.desc())
    ))


def checkins(session: Session, patient_id: int) -> list[CheckIn]:
    return list(session.scalars(
        select(CheckIn).where(CheckIn.patient_id == patient_id)
        .order_by(func.coalesce(CheckIn.answered_at, CheckIn.prompted_at, CheckIn.created_at), CheckIn.id)
        .options(selectinload(CheckIn.appointment))
    ))


def checkin_time(checkin: CheckIn) -> datetime:
    return checkin.answered_at or checkin.prompted_at or checkin.created_at


def mood_points(rows: list[CheckIn]) -> list[MoodPoint]:
    # A pain score (0 none, 10 worst) runs the other way: it is listed, not drawn as mood.
    return [MoodPoint(checkin_time(row), row.score) for row in rows if row.score is not None and row.kind != "pain"]


def infusion_marks(appointments: list[Appointment], now: datetime, default_series: int) -> list[Infusion]:
    """Visits held (completed, or past and never marked otherwise)."""
    return [
        Infusion(a.starts_at, progress(a, default_series))
        for a in appointments
        if a.status == "completed" or (a.status in ACTIVE_STATUSES and a.starts_at <= now)
    ]


def patient_escalations(session: Session, patient_id: int) -> list[Escalation]:
    return list(session.scalars(
        select(Escalation).where(Escalation.patient_id == patient_id).order_by(Escalation.opened_at.desc())
    ))
