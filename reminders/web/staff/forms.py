"""A record's validation errors as plain words beside the field they are about (staff forms).

PatientRecord speaks for the API and the CSV import ("first_name is missing", "phone '555' is not
a valid number (...)"); a person at the front desk gets "Enter the patient's first name." next
to the box, linked to it with aria-describedby.
"""
from __future__ import annotations

import re

from pydantic import ValidationError

PATIENT_LABELS = {
    "first_name": "First name", "last_name": "Last name", "phone": "Mobile phone", "email": "Email",
    "timezone": "Time zone", "preferred_channel": "Send reminders by", "language": "Language of messages",
    "medications_to_hold": "Medications to hold before a visit", "notes": "Notes for staff",
}
CHANNEL_WORDS = {"sms": "Text", "email": "Email", "both": "Both", "whatsapp": "WhatsApp"}


def _patient_sentence(field: str, message: str) -> str:
    lowered = message.lower()
    channel = re.search(r"\(preferred_channel is (\w+)\)", message)
    if field == "first_name" and "missing" in lowered:
        return "Enter the patient's first name."
    if field == "phone":
        if "missing" in lowered:
            way = CHANNEL_WORDS.get(channel.group(1), "") if channel else ""
            return (f"Reminders by {way} need a mobile number: enter one, or choose Email below."
                    if way else "Enter a mobile number.")
        return "This is not a phone number that can get texts. Enter a mobile number, e.g. (202) 555-0143."
    if field == "email":
        if "missing" in lowered:
            return "Reminders by email need an email address: enter one, or choose Text below."
        return "This is not an email address. It should look like name@example.org."
    if field == "timezone":
        if "missing" in lowered:
            return "Choose the patient's time zone, e.g. America/New_York."
        if "; use " in message and "not an IANA" not in message:  # a fixed offset: the region to use instead
            return _sentence(message.removeprefix("timezone "))
        return "Choose a time zone from the list, e.g. America/Chicago."
    if field == "preferred_channel":
        return "Choose how reminders are sent."
    if field == "language":
        return "Choose a language from the list."
    longer = re.search(r"longer than (\d+) characters", message)
    if longer:
        return f"Keep this to {longer.group(1)} characters or fewer."
    words = message
    for name, label in PATIENT_LABELS.items():
        words = words.replace(name, label)
    return _sentence(words)


def _sentence(words: str) -> str:
    """Capitalised, with a full stop."""
    return words[:1].upper() + words[1:] + ("" if words.endswith(".") else ".")


def patient_field_errors(error: ValidationError) -> dict[str, str]:
    """{field: sentence} for the patient form; a check across fields is put on the field to fix."""
    found: dict[str, str] = {}
    for item in error.errors():
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        loc = [str(part) for part in item.get("loc", ()) if str(part) in PATIENT_LABELS]
        if loc:
            field = loc[0]
        else:  # a whole-record check names its field first: "phone is missing (preferred_channel is sms)"
            named = re.match(r"(\w+)", message)
            field = named.group(1) if named and named.group(1) in PATIENT_LABELS else "first_name"
        if item.get("type") == "missing":
            message = f"{field} is missing"
        found.setdefault(field, _patient_sentence(field, message))
    return found


VISIT_LABELS = {"kind": "Kind of visit", "date": "Date", "time": "Time", "duration_minutes": "Length (minutes)",
                "location": "Location", "status": "Status", "condition": "Condition treated"}


def visit_time_error(message: str) -> tuple[str, str]:
    """The field and plain sentence for a date or time the visit form could not read."""
    field = "time" if message.startswith("the time") or "does not exist" in message else "date"
    return field, _sentence(message)


def _visit_sentence(field: str, message: str) -> str:
    if field == "kind":
        return "Choose induction infusion or maintenance."
    if field == "duration_minutes":
        return "Enter the length in minutes, from 5 to 600."
    if field == "status":
        return "Choose a status from the list."
    longer = re.search(r"longer than (\d+) characters", message)
    if longer:
        return f"Keep this to {longer.group(1)} characters or fewer."
    if field == "date" and "starts_at" in message:
        return _sentence(re.sub(r"starts_at \S+ is", "This date is", message))
    return _sentence(message)


def visit_field_errors(error: ValidationError) -> dict[str, str]:
    """{field: sentence} for the visit form (the record's starts_at is the form's date and time)."""
    found: dict[str, str] = {}
    for item in error.errors():
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        loc = [str(part) for part in item.get("loc", ())]
        field = next((part for part in loc if part in VISIT_LABELS), "date" if "starts_at" in loc else None)
        if field is None:
            field = "date" if "starts_at" in message else "kind"
        found.setdefault(field, _visit_sentence(field, message))
    return found
