"""Today: the week's visits by day, one line each with what needs action in front; who needs
booking; visits to mark. Message states are one click away (a <details> per visit)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, render_template
from sqlalchemy import select

from reminders.followup import patients_needing_booking, visits_to_mark
from reminders.models import Appointment, utcnow
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.planning.rules import is_unmarked
from reminders.web.context import db, settings
from reminders.web.staff import display, queries
from reminders.web.staff.auth import guard

bp = Blueprint("today", __name__)
guard(bp)

# Booking nudges say "book your next visit": noise on a visit whose patient already has one booked.
BOOKING_NUDGES = ("rebook_nudge", "plan_maintenance")
# Every infusion needs an adult to drive the patient home; the reminder asks them to confirm (C).
RIDE_CHECK_AHEAD = timedelta(hours=48)


@dataclass
class Action:
    text: str
    tone: str  # warn | bad | info | good | muted
    hint: str = ""


def actions_for(row: queries.VisitRow, now: datetime) -> list[Action]:
    """What the front desk should act on for this visit, most pressing first."""
    a = row.appointment
    if a.status not in ACTIVE_STATUSES:
        return []
    found: list[Action] = []
    if a.reschedule_requested_at:
        found.append(Action("Reschedule asked", "bad",
                            f"The patient asked to move this visit ({display.date_time(a.reschedule_requested_at)}); "
                            "call them and change it."))
    if is_unmarked(a.status, a.ends_at, now):
        found.append(Action("Not marked yet", "warn", "The visit is over: mark it completed or no-show."))
    elif a.starts_at > now and not a.confirmed_at:
        if a.starts_at - now <= RIDE_CHECK_AHEAD:
            found.append(Action("Needs ride confirmation", "warn",
                                "Not confirmed yet: call to check an adult will drive the patient home."))
        else:
            found.append(Action("Not confirmed", "muted", "The patient has not replied C to confirm yet."))
    if a.kind == "induction" and a.number_in_course == 1:
        found.append(Action("First infusion", "info", "Their first infusion: allow time for questions."))
    if row.patient.sms_opted_out:
        found.append(Action("Texts off", "muted", "The patient opted out of texts: call instead."))
    return found


def message_summary(messages) -> str:
    counts = Counter(display.status_label(m.status) for m in messages)
    return ", ".join(f"{n} {label.lower()}" for label, n in counts.most_common())


def _booked_later(rows: list[queries.VisitRow]) -> set[int]:
    """Ids of the visits whose patient has a later visit booked."""
    if not rows:
        return set()
    patient_ids = {row.patient.id for row in rows}
    latest: dict[int, datetime] = {}
    for patient_id, starts_at in db().execute(
        select(Appointment.patient_id, Appointment.starts_at)
        .where(Appointment.patient_id.in_(patient_ids), Appointment.status.in_(ACTIVE_STATUSES))
    ):
        if patient_id not in latest or starts_at > latest[patient_id]:
            latest[patient_id] = starts_at
    return {row.appointment.id for row in rows if latest.get(row.patient.id, row.appointment.starts_at)
            > row.appointment.starts_at}


@bp.get("/")
def index():
    now = utcnow()
    zone = display.clinic_zone()
    groups = queries.upcoming_by_day(db(), settings(), now)
    rows = [row for group in groups for row in group.visits]
    booked_later = _booked_later(rows)
    for row in rows:
        if row.appointment.id in booked_later:
            row.messages = [m for m in row.messages if m.rule not in BOOKING_NUDGES]
    due = patients_needing_booking(db(), settings(), now)
    unmarked = visits_to_mark(db(), settings(), now)
    return render_template(
        "staff/today.html", groups=groups, due=due, unmarked=unmarked, now=now, today=now.astimezone(zone).date(),
        day_heading=display.day_heading, zone_name=settings().clinic_timezone,
        closable=lambda appointment: queries.day_has_come(appointment, now),
        progress=lambda appointment: queries.progress(appointment, settings().induction_series_length),
        actions=lambda row: actions_for(row, now),
        message_summary=message_summary,
    )
