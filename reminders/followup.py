"""Who should be booked and is not: the staff list behind the rebooking nudge.

About half of patients do not finish the induction series, a fifth stop after the first
infusion. Listed here:
- induction: the series is not finished (and the course not ended) and no next infusion is
  booked within INDUCTION_REBOOK_HOURS of the last one (nothing booked, or booked later). Listed
  from the day of the last infusion, so staff can call before the window closes; `overdue` says
  whether it has (the patient's "not booked" text goes then too).
- a finished induction series with nothing booked: listed from the day of the last infusion
  ("Induction finished: plan maintenance"), the day the patient's "plan your maintenance" text
  is planned for.
- maintenance: nothing booked and MAINTENANCE_INTERVAL_DAYS have passed since the last visit.
The last visit is the latest one held or still on the books (a no-show or a canceled visit
does not count as held); a no-show since then is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, selectinload

from reminders.channel_specs import is_text_channel
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES, ATTENDED_OR_PENDING, AppointmentStatus
from reminders.timing.rules import PLAN_MAINTENANCE, RuleSettings, counts_as_attended_at, is_unmarked
from reminders.visits.series import is_last_induction, series_position

NUDGE_RULE = "rebook_nudge"
FINISHED_INDUCTION = "Induction finished: plan maintenance"


@dataclass(frozen=True)
class Followup:
    patient: Patient
    kind: str  # induction | maintenance: what should be booked next
    last_visit: Appointment
    next_visit: Appointment | None  # booked, but too late
    due_by: datetime  # when the next visit should have happened by
    overdue: bool
    reason: str
    missed_since: Appointment | None  # a no-show after the last visit held
    nudge: OutboxMessage | None  # the rebooking nudge for the last visit, if one was planned


def series_length(appointment: Appointment, default: int) -> int:
    return series_position(appointment, default)[1]


def patients_needing_booking(session: Session, settings, now: datetime) -> list[Followup]:
    """Patients to call about booking, most overdue first."""
    by_patient = _visit_per_patient(
        session, func.max, Appointment.starts_at <= now, Appointment.status.in_(ATTENDED_OR_PENDING),
        tie_to_later_id=True,
    )
    if not by_patient:
        return []
    upcoming = _first_upcoming(session, now, list(by_patient))
    missed = _latest_no_shows(session, now, list(by_patient))
    nudges = _nudges(session, [visit.id for visit in by_patient.values()])
    rebook = settings.induction_rebook_after
    interval = timedelta(days=settings.maintenance_interval_days)
    found: list[Followup] = []
    for patient_id, visit in by_patient.items():
        if visit.course is not None and visit.course.ended_at is not None and visit.course.ended_at <= now:
            continue  # the course is over: nothing to book
        following = upcoming.get(patient_id)
        series = series_length(visit, settings.induction_series_length)
        no_show = missed.get(patient_id)
        no_show = no_show if no_show is not None and no_show.starts_at > visit.starts_at else None
        if visit.kind == "induction" and not is_last_induction(visit, settings):
            due_by = visit.starts_at + rebook
            if following is not None and following.starts_at <= due_by:
                continue
            what = f"Infusion {visit.number_in_course + 1} of {series}"
            reason = (f"{what} is not booked" if following is None else
                      f"{what} is booked more than {_span(rebook)} after the last")
            found.append(Followup(visit.patient, "induction", visit, following, due_by, now >= due_by, reason,
                                  no_show, nudges.get(visit.id)))
        elif following is None and visit.kind == "induction" and visit.starts_at + interval > now:
            found.append(Followup(visit.patient, "maintenance", visit, None, visit.starts_at + interval, False,
                                  FINISHED_INDUCTION, no_show, nudges.get(visit.id)))
        elif following is None and visit.starts_at + interval <= now:
            days = (now - visit.starts_at).days
            what = "the induction series ended" if visit.kind == "induction" else "last maintenance visit"
            found.append(Followup(visit.patient, "maintenance", visit, None, visit.starts_at + interval, True,
                                  f"Maintenance due: {what} {days} days ago, nothing booked", no_show,
                                  nudges.get(visit.id)))
    return sorted(found, key=lambda row: (row.due_by, row.patient.id))


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    count, unit = (hours // 24, "day") if hours % 24 == 0 else (hours, "hour")
    return f"{count} {unit}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class UnmarkedVisit:
    appointment: Appointment
    patient: Patient
    counts_as_attended_at: datetime | None  # when its check-in goes if nobody marks it; None: waits


def visits_to_mark(session: Session, settings, now: datetime, days: int = 14) -> list[UnmarkedVisit]:
    """Visits over (from their end) that nobody marked completed or no-show, oldest first.

    Listed for the last `days` days: older ones are history staff close from the patient's page."""
    rs = RuleSettings.from_settings(settings)
    rows = session.scalars(
        select(Appointment)
        .where(Appointment.status.in_(ACTIVE_STATUSES), Appointment.starts_at <= now,
               Appointment.starts_at >= now - timedelta(days=days))
        .order_by(Appointment.starts_at, Appointment.id)
        .options(selectinload(Appointment.patient), selectinload(Appointment.course))
    ).all()
    return [
        UnmarkedVisit(row, row.patient, counts_as_attended_at(row.status, row.ends_at, rs))
        for row in rows if is_unmarked(row.status, row.ends_at, now)
    ]


def _first_upcoming(session: Session, now: datetime, patient_ids: list[int]) -> dict[int, Appointment]:
    return _visit_per_patient(
        session, func.min, Appointment.starts_at > now, Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.patient_id.in_(patient_ids),
    )


def _visit_per_patient(session: Session, pick, *where, tie_to_later_id: bool = False) -> dict[int, Appointment]:
    """For each patient, the visit matching `where` whose start is `pick` (func.min or func.max) of
    theirs. Two visits at that same instant: the lower id wins, or the later with tie_to_later_id."""
    chosen = (
        select(Appointment.patient_id, pick(Appointment.starts_at).label("at"))
        .where(*where)
        .group_by(Appointment.patient_id)
        .subquery()
    )
    rows = session.scalars(
        select(Appointment)
        .join(chosen, and_(Appointment.patient_id == chosen.c.patient_id, Appointment.starts_at == chosen.c.at))
        .where(*where)
        .order_by(Appointment.id if tie_to_later_id else Appointment.id.desc())
        .options(selectinload(Appointment.patient), selectinload(Appointment.course))
    ).all()
    return {row.patient_id: row for row in rows}  # the last one written for a patient wins


def _latest_no_shows(session: Session, now: datetime, patient_ids: list[int]) -> dict[int, Appointment]:
    rows = session.scalars(
        select(Appointment)
        .where(Appointment.status == AppointmentStatus.NO_SHOW, Appointment.starts_at <= now,
               Appointment.patient_id.in_(patient_ids))
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    return {row.patient_id: row for row in rows}  # the latest wins


def _nudges(session: Session, appointment_ids: list[int]) -> dict[int, OutboxMessage]:
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.rule.in_((NUDGE_RULE, PLAN_MAINTENANCE)), OutboxMessage.appointment_id.in_(appointment_ids))
        .order_by(OutboxMessage.id)
    ).all()
    nudges: dict[int, OutboxMessage] = {}
    for row in rows:  # the text if there is one, else the email
        if row.appointment_id not in nudges or is_text_channel(row.channel):
            nudges[row.appointment_id] = row
    return nudges

