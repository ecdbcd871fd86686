"""The visit as an iCalendar file, attached to reminder emails so patients can add it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


PRODID = "-//Clinic reminders//Visit//EN"
# The entry's title and description, in the language of the email it is attached to.
WORDS = {
    "en": ("Visit at {clinic}", "Questions or changes: {phone}"),
    "es": ("Cita en {clinic}", "Preguntas o cambios: {phone}"),
}


def visit_words(clinic_name: str, clinic_phone: str, language: str | None) -> tuple[str, str]:
    """(title, description) of a visit's calendar entry; English for a language without words here."""
    title, description = WORDS.get(language or "en", WORDS["en"])
    return title.format(clinic=clinic_name), description.format(phone=clinic_phone)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time would be read in the patient's device zone: wrong by hours.
        raise ValueError(f"{name} must carry a time zone")
    return value.astimezone(timezone.utc)


def visit_ics(
    uid: str,
    starts_at: datetime,
    ends_at: datetime,
    summary: str,
    location: str,
    description: str,
    organizer_email: str | None = None,
) -> bytes:
    """One VEVENT in UTC, published (not an invitation), with a reminder 2 hours before."""
    start, end = _utc(starts_at, "starts_at"), _utc(ends_at, "ends_at")
    if end <= start:
        raise ValueError("ends_at must be after starts_at")

    from icalendar import Alarm, Calendar, Event, vCalAddress  # only an email's calendar file needs it

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")

    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime.now(timezone.utc).replace(microsecond=0))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    if location:
        event.add("location", location)
    if description:
        event.add("description", description)
    if organizer_email:
        event.add("organizer", vCalAddress(f"mailto:{organizer_email}"))

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", timedelta(hours=-2))
    event.add_component(alarm)

    cal.add_component(event)
    return cal.to_ical()
