"""Today: the week's visits by day with their messages, who needs booking, and open escalations."""
from __future__ import annotations

from flask import Blueprint, render_template

from reminders.followup import patients_needing_booking, visits_to_mark
from reminders.models import utcnow
from reminders.web.context import db, settings
from reminders.web.staff import display, queries
from reminders.web.staff.auth import guard

bp = Blueprint("today", __name__)
guard(bp)


@bp.get("/")
def index():
    now = utcnow()
    zone = display.clinic_zone()
    groups = queries.upcoming_by_day(db(), settings(), now)
    due = patients_needing_booking(db(), settings(), now)
    unmarked = visits_to_mark(db(), settings(), now)
    return render_template(
        "staff/today.html", groups=groups, due=due, unmarked=unmarked, now=now, today=now.astimezone(zone).date(),
        day_heading=display.day_heading, zone_name=settings().clinic_timezone,
        closable=lambda appointment: queries.day_has_come(appointment, now),
        progress=lambda appointment: queries.progress(appointment, settings().induction_series_length),
    )
