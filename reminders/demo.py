"""`reminders demo`: a small clinic with patients in induction and maintenance.

Visits are placed relative to now so that `reminders demo && reminders tick` sends real
messages: a first infusion in 20 hours, a later one in 26 hours, a maintenance visit in
6 days, visits held yesterday that are due a check-in, a first infusion missed yesterday (the
next visit is infusion 1 of 6 again), an induction series finished yesterday, and a
Spanish-speaking patient's first infusion in 70 hours (her full preparation goes at once).

Two finished courses carry questionnaire history for the outcomes page and the patient page:
Dana (depression) answered PHQ-9 and GAD-7 before infusions 1, 3 and 6, and Jordan (PTSD, now in
maintenance) the PCL-5: Dana responded and remitted on both, Jordan remitted (under 33) with a
drop short of half.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reminders import scales as catalogue
from reminders.config import Settings
from reminders.db import session_scope
from reminders.intake.records import AppointmentRecord, PatientRecord
from reminders.intake.upsert import upsert_appointment, upsert_patient
from reminders.models import Appointment, Patient, Questionnaire, StaffUser, utcnow
from reminders.models.measures import BY_LINK, COMPLETED
from reminders.timing.quiet_hours import QuietHours

# Demo patients live where it is daytime now, so the first tick is not held by quiet hours.
DAYTIME_ZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata")

PATIENTS = (
    # external id, first, last, phone, email, channel, visits (kind, hours from now, status)
    ("demo-p1", "Maya", "Lopez", "+12025550143", "maya@example.org", "both", (("induction", 20, "scheduled"),)),
    ("demo-p2", "Sam", "Okafor", "+12025550178", None, "sms",
     (("induction", -24 * 7, "completed"), ("induction", -24 * 4, "completed"), ("induction", -20, "completed"), ("induction", 26, "scheduled"))),
    ("demo-p3", "Priya", "Shah", "+12025550122", "priya@example.org", "email", (("maintenance", 24 * 6 + 2, "scheduled"),)),
    # Induction six weeks ago, a booster yesterday.
    ("demo-p4", "Jordan", "Kim", "+12025550199", "jordan@example.org", "sms",
     tuple(("induction", -24 * days - 22, "completed") for days in (48, 46, 44, 42, 40, 38))
     + (("maintenance", -22, "completed"),)),
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
CONDITIONS = {"demo-p1": "depression", "demo-p4": "ptsd", "demo-p6": "depression"}
# Scores answered before infusions 1 (baseline), 3 and 6 of the induction series.
MEASURED_INFUSIONS = (1, 3, 6)
SCORES = {
    "demo-p6": {"phq9": (18, 11, 4), "gad7": (15, 9, 4)},
    "demo-p4": {"pcl5": (52, 38, 30)},
}
ANSWERED_BEFORE = timedelta(hours=30)  # the link goes 48 h before; most answer within the day


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
            booked = []
            for number, (kind, hours, status) in enumerate(visits, start=1):
                starts = (now + timedelta(hours=hours)).replace(second=0, microsecond=0)
                booked.append(upsert_appointment(session, patient, AppointmentRecord(
                    external_id=f"{external_id}-v{number}", kind=kind, starts_at=starts,
                    duration_minutes=50, location="Suite 200", status=status, condition=CONDITIONS.get(external_id),
                ), now, settings.induction_series_length).appointment)
            if external_id in SCORES:
                session.flush()
                seed_questionnaires(session, patient, booked, SCORES[external_id])
            language = " (in Spanish)" if patient.language == "es" else ""
            kinds = dict.fromkeys(kind for kind, _, _ in visits)
            counted = " and ".join(f"{sum(v[0] == kind for v in visits)} {kind}" for kind in kinds)
            measured = f", {' and '.join(catalogue.get_scale(k).short_name for k in SCORES[external_id])} answered" \
                if external_id in SCORES else ""
            lines.append(f"  {first} {last}: {counted} visit(s), prefers {channel}{language}{measured}")
        if not session.scalar(select(func.count()).select_from(StaffUser)):
            from reminders.accounts import create_user

            password = secrets.token_urlsafe(12)
            create_user(session, "admin@demo.clinic", "admin", password)
            lines.append(f"Staff sign-in: admin@demo.clinic / {password}")
    lines.append("Next: `reminders tick` sends what is due; `reminders run` starts the service.")
    return lines


def seed_questionnaires(session: Session, patient: Patient, visits: list[Appointment],
                        scores: dict[str, tuple[int, ...]]) -> None:
    """Completed questionnaires before the measured infusions, keyed as the sender keys them (so
    loading the demo twice, or a tick, adds none)."""
    inductions = [v for v in visits if v.kind == "induction"]
    for scale_key, totals in scores.items():
        scale = catalogue.get_scale(scale_key)
        for number, total in zip(MEASURED_INFUSIONS, totals):
            visit = inductions[number - 1]
            key = f"appt:{visit.id}:{scale_key}"
            if session.scalar(select(Questionnaire.id).where(Questionnaire.occasion_key == key)):
                continue
            answers = spread(scale, total)
            outcome = catalogue.result(scale, answers)
            sent = visit.starts_at - timedelta(hours=48)
            done = visit.starts_at - ANSWERED_BEFORE
            session.add(Questionnaire(
                occasion_key=key, token=secrets.token_urlsafe(16), patient_id=patient.id, course_id=visit.course_id,
                appointment_id=visit.id, scale=scale_key, occasion="baseline" if number == 1 else f"infusion_{number}",
                language=patient.language or "en", channel=BY_LINK, status=COMPLETED,
                answers={str(item): value for item, value in answers.items()}, score=outcome.score,
                band=outcome.band.key, screened_out=False, safety_raised=False, sent_at=sent,
                expires_at=sent + timedelta(days=7), started_at=done - timedelta(minutes=2), completed_at=done,
                created_at=sent))


def spread(scale: catalogue.Scale, total: int) -> dict[int, int]:
    """Answers adding up to `total`, spread over the items, none on a self-harm item."""
    items = [item for item in scale.items if not item.safety]
    top = max(option.value for option in scale.options_for(items[0]))
    answers = {item.number: 0 for item in scale.items}
    for index in range(total):
        number = items[index % len(items)].number
        if answers[number] >= top:
            raise ValueError(f"{scale.short_name} cannot reach {total} without its self-harm item")
        answers[number] += 1
    return answers
