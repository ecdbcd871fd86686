"""`reminders demo`: a small clinic with patients in induction and maintenance.

Visits are placed relative to now so that `reminders demo && reminders tick` sends real
messages: a first infusion in 20 hours, a later one in 26 hours, a maintenance visit in
6 days, visits held yesterday that are due a check-in, a first infusion missed yesterday (the
next visit is infusion 1 of 6 again), an induction series finished yesterday, and a
Spanish-speaking patient's first infusion in 70 hours (her full preparation goes at once).
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from reminders.config import Settings
from reminders.db import session_scope
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import StaffUser, utcnow
from reminders.planning.quiet_hours import QuietHours

# Demo patients live where it is daytime now, so the first tick is not held by quiet hours.
DAYTIME_ZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata")

PATIENTS = (
    # external id, first, last, phone, email, channel, visits (kind, hours from now, status)
    ("demo-p1", "Maya", "Lopez", "+12025550143", "maya@example.org", "both", (("induction", 20, "scheduled"),)),
    ("demo-p2", "Sam", "Okafor", "+12025550178", None, "sms",
     (("induction", -24 * 7, "completed"), ("induction", -24 * 4, "completed"), ("induction", -20, "completed"), ("induction", 26, "scheduled"))),
    ("demo-p3", "Priya", "Shah", "+12025550122", "priya@example.org", "email", (("maintenance", 24 * 6 + 2, "scheduled"),)),
    ("demo-p4", "Jordan", "Kim", "+12025550199", "jordan@example.org", "sms", (("maintenance", -22, "completed"),)),
    # Missed the first infusion yesterday: the next one is infusion 1 of 6 again, with the full preparation.
    ("demo-p5", "Alex", "Rivera", "+12025550155", None, "sms",
     (("induction", -21, "no_show"), ("induction", 24 * 2 + 3, "scheduled"))),
    # Finished the induction series yesterday: a check-in, then "plan your maintenance" the day after.
    ("demo-p6", "Dana", "Reyes", "+12025550188", None, "sms",
     tuple(("induction", -24 * days - 22, "completed") for days in (10, 8, 6, 4, 2, 0))),
    ("demo-p7", "Lucía", "Hernández", "+12025550166", "lucia@example.org", "both", (("induction", 70, "scheduled"),)),
)
# Language and medications to hold, where a demo patient has them.
PREPARATION = {
    "demo-p1": {"medications_to_hold": "No lamotrigine the morning of your visit"},
    "demo-p7": {"language": "es", "medications_to_hold": "Sin clonazepam la noche anterior"},
}


def demo_zone(settings: Settings, now: datetime) -> str:
    quiet = QuietHours(settings.quiet_hours_start, settings.quiet_hours_end)
    for zone in (settings.clinic_timezone, *DAYTIME_ZONES):
        local = now.astimezone(ZoneInfo(zone))
        if not quiet.contains(now, zone) and 9 <= local.hour < 19:
            return zone
    return settings.clinic_timezone


def load_demo(settings: Settings, now: datetime | None = None) -> list[str]:
    now = now or utcnow()
    zone = demo_zone(settings, now)
    lines = [f"Demo clinic loaded: patients live in {zone} (where it is daytime now)."]
    with session_scope() as session:
        for external_id, first, last, phone, email, channel, visits in PATIENTS:
            patient = upsert_patient(session, PatientRecord(
                external_id=external_id, first_name=first, last_name=last, phone=phone, email=email,
                timezone=zone, preferred_channel=channel, **PREPARATION.get(external_id, {}),
            ), now).patient
            for number, (kind, hours, status) in enumerate(visits, start=1):
                starts = (now + timedelta(hours=hours)).replace(second=0, microsecond=0)
                upsert_appointment(session, patient, AppointmentRecord(
                    external_id=f"{external_id}-v{number}", kind=kind, starts_at=starts,
                    duration_minutes=50, location="Suite 200", status=status,
                ), now, settings.induction_series_length)
            language = " (in Spanish)" if patient.language == "es" else ""
            lines.append(f"  {first} {last}: {len(visits)} {visits[-1][0]} visit(s), prefers {channel}{language}")
        if not session.scalar(select(func.count()).select_from(StaffUser)):
            from reminders.accounts import create_user

            password = secrets.token_urlsafe(12)
            create_user(session, "admin@demo.clinic", "admin", password)
            lines.append(f"Staff sign-in: admin@demo.clinic / {password}")
    lines.append("Next: `reminders tick` sends what is due; `reminders run` starts the service.")
    return lines
