"""How the staff pages write times, rules and states. Times always carry their zone's label."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Flask

from reminders.models.outbox import Kind, Status
from reminders.web.context import settings

RULE_LABELS = {
    "first_induction_72h": "72 h reminder (first infusion)",
    "first_induction_24h": "24 h reminder (first infusion)",
    "induction_24h": "24 h reminder",
    "maintenance_7d": "7 day reminder",
    "maintenance_24h": "24 h reminder",
    "checkin_day_after": "Day-after check-in",
    "checkin_weekly": "Weekly check-in",
    "rebook_nudge": "Booking nudge",
    "missed_visit": "We missed you",
    "plan_maintenance": "Plan maintenance",
    "welcome": "Welcome text",
    "staff_reply": "Reply from the clinic",
    "staff_text": "Text from the clinic",
    "staff_broadcast": "Text to the day's patients",
}
CHECKIN_STATES = {"awaiting": "No answer yet", "reasked": "Asked again", "answered": "Answered",
                  "to_staff": "Passed to staff"}
ESCALATION_REASONS = {"crisis_language": "Crisis words in a text", "medical_emergency": "A medical emergency",
                      "low_score": "A very low check-in score",
                      "self_harm_answer": "A self-harm answer on a questionnaire",
                      "urgent": "A text a nurse must read now"}
KIND_LABELS = {Kind.ALERT: "Staff alert", Kind.REPLY: "Reply"}
STATUS_TONES = {
    Status.PLANNED: "pending", Status.QUEUED: "pending", Status.SENDING: "pending",
    Status.SENT: "info", Status.DELIVERED: "good", Status.UNKNOWN: "warn",
    Status.UNDELIVERED: "bad", Status.FAILED: "bad", Status.SKIPPED: "muted", Status.CANCELED: "muted",
    "scheduled": "info", "confirmed": "good", "completed": "good", "no_show": "bad",
    "open": "bad", "acknowledged": "muted",
}


# What a patient's text was, as the inbox and the patient page say it (reminders.inbound.replies).
INBOUND_LABELS = {
    "stop": "Stopped texts", "start": "Texts back on", "help": "Asked for help", "ack": "Thanks",
    "confirm": "Confirmed the visit", "reschedule": "Asked to reschedule", "cancel": "Asked to cancel",
    "checkin_answer": "Check-in answer", "checkin_unreadable": "Check-in answer we could not read",
    "checkin_details": "More about the check-in", "mood_score": "Check-in answer", "free_text": "Message",
    "question": "Question", "unknown_number": "From a number not on file", "unknown": "From a number not on file",
    "crisis": "Crisis", "low_score": "Very low score", "received": "Message", "error": "Message (not read)",
    "questionnaire_answer": "Questionnaire answer",
    "questionnaire_unreadable": "Questionnaire answer we could not read",
    "questionnaire_closed": "Answer after the questions closed",
    "missed_visit": "Missed visit: call the patient",  # a staff task (reminders.missed_visits), not a text
}


def inbound_label(classification: str | None) -> str:
    if classification in INBOUND_LABELS:
        return INBOUND_LABELS[classification]
    return (classification or "message").replace("_", " ").capitalize()


def _parsed_phone(number: str | None):
    if not number:
        return None
    try:
        parsed = phonenumbers.parse(number, settings().default_phone_region)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_possible_number(parsed) else None


def phone(number: str | None) -> str:
    """A number as the clinic writes it: national format at home, international otherwise."""
    parsed = _parsed_phone(number)
    if parsed is None:
        return number or ""
    home = phonenumbers.region_code_for_number(parsed) == settings().default_phone_region
    return phonenumbers.format_number(
        parsed, phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def tel_href(number: str | None) -> str:
    """A tap-to-call link target (tel:+12025550143)."""
    parsed = _parsed_phone(number)
    if parsed is None:
        return "tel:" + "".join(ch for ch in (number or "") if ch.isdigit() or ch == "+")
    return "tel:" + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def rule_label(rule: str, kind: str | None = None) -> str:
    if rule in RULE_LABELS:
        return RULE_LABELS[rule]
    if rule.startswith("checkin_weekly_"):
        return f"Weekly check-in (week {rule.rsplit('_', 1)[-1]})"
    if kind in KIND_LABELS:
        return KIND_LABELS[kind]
    return rule.replace("_", " ").capitalize()


def status_label(status: str | None) -> str:
    return (status or "").replace("_", " ")


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(settings().clinic_timezone)


def localize(value: datetime | None, zone: str | None = None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(ZoneInfo(zone) if zone else clinic_zone())


def _clock(local: datetime) -> str:
    return local.strftime("%I:%M %p").lstrip("0")


def time_only(value: datetime | None, zone: str | None = None) -> str:
    local = localize(value, zone)
    return f"{_clock(local)} {local.tzname()}" if local else ""


def date_time(value: datetime | None, zone: str | None = None) -> str:
    local = localize(value, zone)
    if local is None:
        return ""
    return f"{local:%a %b} {local.day}, {local.year}, {_clock(local)} {local.tzname()}"


def short_date(value: datetime | date | None, zone: str | None = None) -> str:
    if value is None:
        return ""
    local = localize(value, zone) if isinstance(value, datetime) else value
    return f"{local:%b} {local.day}"


def day_heading(day: date, today: date) -> str:
    delta = (day - today).days
    name = f"{day:%A, %B} {day.day}"
    if delta == 0:
        return f"Today · {name}"
    if delta == 1:
        return f"Tomorrow · {name}"
    return name


def install(app: Flask) -> None:
    app.add_template_filter(rule_label, "rule_label")
    app.add_template_filter(status_label, "status_label")
    app.add_template_filter(inbound_label, "inbound_label")
    app.add_template_filter(phone, "phone")
    app.add_template_global(CHECKIN_STATES, "CHECKIN_STATES")
    app.add_template_global(ESCALATION_REASONS, "ESCALATION_REASONS")
    app.add_template_filter(tel_href, "tel_href")
    app.add_template_filter(time_only, "time_only")
    app.add_template_filter(date_time, "date_time")
    app.add_template_filter(short_date, "short_date")
    app.add_template_global(STATUS_TONES, "STATUS_TONES")
    app.add_template_global(clinic_zone, "clinic_zone")
