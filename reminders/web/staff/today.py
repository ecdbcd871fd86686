"""Today: the day's visits first (?day=YYYY-MM-DD for another day), then the rest of its week, one
line each with what needs action in front; who needs booking; earlier visits still to mark.
Message states are one click away (a <details> per visit)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Blueprint, render_template, request, url_for
from sqlalchemy import select

from reminders import no_show_undo
from reminders.followup import patients_needing_booking, visits_to_mark
from reminders.models import Appointment
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.timing.rules import RuleSettings, counts_as_attended_at, is_unmarked
from reminders.web.context import db, request_now, settings
from reminders.web.staff import display, location_filter, queries
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


def checkin_note(attended_at: datetime | None, now: datetime) -> str:
    """What happens to an unmarked visit's check-in: it waits, or goes without assuming the visit
    happened (it asks how the patient is today)."""
    if attended_at is None:
        return "Check-in waits until the visit is marked completed."
    if attended_at <= now:
        return (f"Not marked: its check-in, due since {display.time_only(attended_at)}, asks how the patient "
                "is today, not about the visit.")
    return (f"If still not marked at {display.time_only(attended_at)}, its check-in asks how the patient is "
            "today, not about the visit.")


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


# The days Today can show: far enough for any booking, near enough that dates stay dates.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def chosen_day(value: str | None, today: date) -> tuple[date, bool]:
    """The day asked for by ?day=YYYY-MM-DD, and whether the value could be read (else today)."""
    if not value:
        return today, True
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return today, False
    return (day, True) if FIRST_DAY <= day <= LAST_DAY else (today, False)


def day_link(day: date, today: date, location: str = "") -> str:
    place = {"location": location} if location else {}
    return url_for("today.index", **place) if day == today else url_for("today.index", day=day.isoformat(), **place)


def patient_location(row) -> int | None:
    """A patient to book belongs where their next visit is, else where their last one was."""
    return (row.next_visit or row.last_visit).location_id


def earlier_to_mark(unmarked: list, zone, shown: set[date]) -> list:
    """Visits to mark whose day is not on the page already (those are marked in their day's list)."""
    return [row for row in unmarked if row.appointment.starts_at.astimezone(zone).date() not in shown]


@bp.get("/")
def index():
    now = request_now()
    zone = display.clinic_zone()
    today = now.astimezone(zone).date()
    day, readable = chosen_day(request.args.get("day"), today)
    places = location_filter.page_filter()
    scope, here = places.scope, places.chosen
    groups = queries.upcoming_by_day(db(), settings(), now, first_day=day,
                                     where=scope.clause(Appointment.location_id))
    if not groups or groups[0].day != day:
        groups.insert(0, queries.DayGroup(day, []))  # the chosen day is shown even when empty
    rows = [row for group in groups for row in group.visits]
    booked_later = _booked_later(rows)
    for row in rows:
        if row.appointment.id in booked_later:
            row.messages = [m for m in row.messages if m.rule not in BOOKING_NUDGES]
    due = [row for row in patients_needing_booking(db(), settings(), now) if scope.admits(patient_location(row))]
    unmarked = earlier_to_mark([row for row in visits_to_mark(db(), settings(), now)
                                if scope.admits(row.appointment.location_id)], zone, {today, day})
    window = no_show_undo.undo_window(settings())
    rs = RuleSettings.from_settings(settings())
    return render_template(
        "staff/today.html", groups=groups, due=due, unmarked=unmarked, now=now, today=today, day=day,
        unreadable_day=None if readable else request.args.get("day", "")[:40],
        this_day_url=day_link(day, today, here), previous_day=day - timedelta(days=1), next_day=day + timedelta(days=1),
        previous_link=day_link(day - timedelta(days=1), today, here),
        next_link=day_link(day + timedelta(days=1), today, here), today_link=day_link(today, today, here),
        places=places, place_name=location_filter.place_name,
        day_heading=display.day_heading, zone_name=settings().clinic_timezone,
        closable=lambda appointment: queries.day_has_come(appointment, now),
        undo_until=lambda appointment: (no_show_undo.undo_until(appointment, window)
                                        if no_show_undo.can_undo(appointment, window, now) else None),
        progress=lambda appointment: queries.progress(appointment, settings().induction_series_length),
        actions=lambda row: actions_for(row, now),
        checkin_note=lambda appointment: checkin_note(counts_as_attended_at(appointment.status, appointment.ends_at, rs),
                                                     now),
        message_summary=message_summary,
    )
