"""A short text to every patient with a visit on one day ("The clinic is closed today because of
snow; we will call you to rebook."), for any staff member.

Three steps: write it, see exactly who gets it (and who is skipped, and why), confirm with the
count. Each recipient's text goes the way an inbox reply goes (inbox.plan_staff_reply): through
the outbox, held for the patient's quiet hours, refused for one who opted out. Its outbox key is
made of the day, the words and the patient, so pressing the button twice, or sending the same
words again, texts nobody twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.channel_specs import text_channels
from reminders.config import Settings
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.text_segments import sms_length
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit
from reminders.web.staff.auth import guard
from reminders.web.staff.display import date_time, day_heading, time_only
from reminders.web.staff.inbox import ReplyRefused, plan_staff_reply, quiet_hours
from reminders.web.staff.saved_replies import PatientConversation, send_after_welcome

bp = Blueprint("broadcast", __name__, url_prefix="/broadcast")
guard(bp)

STAFF_BROADCAST_RULE = "staff_broadcast"
DAYS_AHEAD = 60  # the furthest day a broadcast can be about
TEXT_SEGMENTS = 2  # a broadcast fits two texts (SmsLength.fits): it is read on a lock screen


@dataclass(frozen=True)
class Recipient:
    patient: Patient
    visit: Appointment  # their first visit that day
    skipped: str = ""  # why they get no text, in staff words ("" when they get it)
    goes_at: datetime | None = None  # when their text goes (the end of their quiet hours, or now)


def clinic_today(s: Settings, now: datetime) -> date:
    return now.astimezone(ZoneInfo(s.clinic_timezone)).date()


def why_skipped(patient: Patient) -> str:
    if patient.erased_at is not None:
        return "personal data erased"
    if patient.sms_opted_out:
        return f"opted out of texts (texted {patient.opt_out_text or 'STOP'}): call them"
    if not patient.phone:
        return "no mobile number on file: call or email them"
    if not set(patient.channels()) & set(text_channels()):
        return "gets messages by email only, not texts: call or email them"
    return ""


def recipients(session: Session, s: Settings, day: date, now: datetime) -> list[Recipient]:
    """Everyone with a visit still on that day (in the clinic's zone), once each, by visit time."""
    zone = ZoneInfo(s.clinic_timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    visits = session.scalars(
        select(Appointment).where(Appointment.starts_at >= start, Appointment.starts_at < end,
                                  Appointment.status.in_(ACTIVE_STATUSES))
        .order_by(Appointment.starts_at, Appointment.id).options(selectinload(Appointment.patient)))
    quiet, found, seen = quiet_hours(s), [], set()
    for visit in visits:
        patient = visit.patient
        if patient is None or patient.id in seen:
            continue
        seen.add(patient.id)
        reason = why_skipped(patient)
        found.append(Recipient(patient, visit, reason, None if reason else quiet.next_allowed(now, patient.timezone)))
    return found


def text_problem(text: str) -> str | None:
    if not text:
        return "Write the text first."
    length = sms_length(text)
    if not length.fits(TEXT_SEGMENTS):
        about = "about 300 characters" if length.encoding == "GSM-7" else "about 330 characters with accents or emoji"
        return f"It would go as {length.segments} texts; keep it to {length.allowed(TEXT_SEGMENTS)} ({about})."
    return None


def day_problem(day: date | None, today: date) -> str | None:
    if day is None:
        return "Choose a day."
    if day < today:
        return "That day has passed: choose today or a later day."
    if day > today + timedelta(days=DAYS_AHEAD):
        return f"Choose a day within the next {DAYS_AHEAD} days."
    return None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        return None


def broadcast_token(day: date, text: str) -> str:
    """The same day and words give the same key for a patient: each gets them once."""
    return hashlib.sha256(f"{day.isoformat()}\n{text}".encode()).hexdigest()[:32]


def _page(day: date | None, text: str, *, errors: dict | None = None, preview: list[Recipient] | None = None,
          changed: bool = False, status: int = 200):
    s, now = settings(), request_now()
    today = clinic_today(s, now)
    going = [r for r in preview or [] if not r.skipped]
    return render_template(
        "staff/broadcast.html", day=day or today, text=text, errors=errors or {}, preview=preview,
        going=going, skipped=[r for r in preview or [] if r.skipped], changed=changed,
        today=today, tomorrow=today + timedelta(days=1), last_day=today + timedelta(days=DAYS_AHEAD),
        day_words=day_heading(day, today) if day else "", zone=s.clinic_timezone,
        when=lambda r: "now" if r.goes_at <= now
        else f"at {date_time(r.goes_at, r.patient.timezone)} (after their quiet hours)",
        visit_time=lambda r: time_only(r.visit.starts_at, s.clinic_timezone),
    ), status


def _checked() -> tuple[date | None, str, dict]:
    day, text = _day(request.form.get("day")), request.form.get("text", "").strip()
    errors = {}
    problem = day_problem(day, clinic_today(settings(), request_now()))
    if problem:
        errors["day"] = problem
    problem = text_problem(text)
    if problem:
        errors["text"] = problem
    return day, text, errors


@bp.get("/")
def index():
    return _page(_day(request.args.get("day")), "")


@bp.post("/preview")
def preview():
    day, text, errors = _checked()
    if errors:
        return _page(day, text, errors=errors, status=422)
    return _page(day, text, preview=recipients(db(), settings(), day, request_now()))


@bp.post("/send")
def send():
    session, s, now = db(), settings(), request_now()
    day, text, errors = _checked()
    if errors:
        return _page(day, text, errors=errors, status=422)
    found = recipients(session, s, day, now)
    going = [r for r in found if not r.skipped]
    if [r.patient.id for r in going] != _ids(request.form.get("patients")):
        # Someone booked, canceled or opted out since the preview: the confirmed count is wrong now.
        return _page(day, text, preview=found, changed=True, status=409)
    token, new, already, due_now = broadcast_token(day, text), [], 0, {}
    for r in going:
        try:
            planned = plan_staff_reply(session, s, PatientConversation(f"broadcast-{day}-p{r.patient.id}", r.patient),
                                       text, now, token=token)
        except ReplyRefused:  # (why_skipped keeps them out; a race with an opt-out lands here)
            continue
        if planned.outbox_id is None:
            already += 1
            continue
        session.get(OutboxMessage, planned.outbox_id).rule = STAFF_BROADCAST_RULE
        new.append(planned.outbox_id)
        if planned.now:
            due_now[planned.outbox_id] = r.patient
    audit.record("send_broadcast", "day", day.isoformat(), day=day.isoformat(), recipients=len(new),
                 already_sent=already, skipped=len(found) - len(going), note=text[:200])
    session.commit()
    if due_now:
        send_after_welcome(session, list(due_now.values()), list(due_now), now)
    flash(_outcome(len(new), len(due_now), already), "ok")
    return redirect(url_for(".index", day=day.isoformat()))


def _ids(value: str | None) -> list[int]:
    return [int(part) for part in (value or "").split(",") if part.strip().isdigit()]


def _outcome(planned: int, now: int, already: int) -> str:
    def patients(n: int) -> str:
        return f"{n} patient{'' if n == 1 else 's'}"

    parts = []
    if planned:
        later = planned - now
        parts.append(f"Text planned for {patients(planned)}: {now} going now"
                     + (f", {later} after their quiet hours end." if later else "."))
        parts.append("Each shows on the patient's page with its state.")
    if already:
        parts.append(f"{patients(already)} already had this text: nobody was texted twice.")
    return " ".join(parts) or "Nobody to text."
