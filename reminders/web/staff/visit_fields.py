"""What the patient, visit and course forms share: the condition treated, the clinic location,
the visit's kind and local time, and the ids a record made by hand is given."""
from __future__ import annotations

import secrets
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flask import request

from reminders.intake.records import KEEP_LOCATION
from reminders.locations import LocationBook, LocationError
from reminders.models import Appointment, Course, Patient
from reminders.models.appointments import AppointmentStatus
from reminders.models.patients import CONDITIONS
from reminders.visits.series import is_last_induction
from reminders.web.context import found, settings
from reminders.web.staff import audit, location_filter
from reminders.zones import iana_zones, is_region

# What a course treats, as the forms offer it ("" is not recorded).
CONDITION_CHOICES = [("", "not recorded")] + [(c, "PTSD" if c == "ptsd" else c) for c in CONDITIONS]
KEEP = object()  # a form without the condition field leaves the course's as it is


def form_condition(errors: dict[str, str]):
    """The condition the posted form sets: a CONDITIONS value, None (not recorded), or KEEP."""
    if "condition" not in request.form:
        return KEEP
    value = request.form["condition"].strip().lower()
    if value and value not in CONDITIONS:
        errors["condition"] = "Choose a condition from the list."
        return KEEP
    return value or None


def set_course_condition(course: Course | None, condition) -> None:
    """Set and audit a change of what the course treats (the questionnaires it is sent follow it)."""
    if condition is KEEP or course is None or course.condition == condition:
        return
    course.condition = condition
    audit.record("change_condition", "course", course.id, patient_id=course.patient_id, condition=condition)


def open_course(patient: Patient) -> Course | None:
    """The course a new visit joins (reminders.intake.upsert.current_course), if there is one yet."""
    return next((c for c in reversed(patient.courses) if c.ended_at is None), None)


def new_external_id(prefix: str) -> str:
    return f"staff-{prefix}-{secrets.token_hex(5)}"


def zone_names() -> list[str]:
    """The zones the form offers: regions only (reminders.zones refuses "EST" and the like)."""
    return sorted(zone for zone in iana_zones() if is_region(zone))


def get_appointment(appointment_id: int) -> Appointment:
    return found(Appointment, appointment_id)


# --- The clinic location -------------------------------------------------------------------------

def book() -> LocationBook:
    return location_filter.book()


def takes_new_visits(location_id: int) -> bool:
    """Whether the location takes new visits (an inactive one keeps only the visits it has)."""
    return any(place.id == location_id for place in book().choices())


def usual_place(patient: Patient) -> str:
    """A new visit's location as the form first offers it: the patient's latest visit's, if still open."""
    held = [a for a in patient.appointments if a.status != AppointmentStatus.CANCELED and a.location_id is not None]
    if not held:
        return ""
    location_id = held[-1].location_id
    return book().place(location_id).code if takes_new_visits(location_id) else ""


def place_choices(appointment: Appointment | None) -> list:
    """The locations the form offers (the default first, as ""): the open ones, and the visit's own."""
    locations = book()
    if not locations.several:
        return []
    places = locations.choices()
    if appointment is not None and appointment.location_id is not None \
            and not takes_new_visits(appointment.location_id):
        places = [*places, locations.place(appointment.location_id)]
    return [("", locations.default.name), *((place.code, place.name) for place in places)]


def form_place(appointment: Appointment | None, errors: dict[str, str]):
    """The location the posted form chose: an id, None (the default), or KEEP_LOCATION when the form
    has no location select (a clinic with one location)."""
    if "place" not in request.form or not book().several:
        return KEEP_LOCATION
    try:
        location_id = book().match(request.form["place"])
    except LocationError:
        errors["place"] = "Choose a location from the list."
        return KEEP_LOCATION
    stored = appointment.location_id if appointment is not None else None
    if location_id is not None and location_id != stored and not takes_new_visits(location_id):
        errors["place"] = "That location is closed to new visits: choose another."
        return KEEP_LOCATION
    return location_id


# --- The visit's kind and time -------------------------------------------------------------------

def likely_kind(patient: Patient) -> str:
    held = [a for a in patient.appointments if a.status != AppointmentStatus.CANCELED]
    if not held:
        return "induction"
    last = held[-1]
    return "induction" if last.kind == "induction" and not is_last_induction(last, settings()) else "maintenance"


def local_instant(day: str, clock: str, zone: str) -> datetime:
    """A wall-clock time in the patient's zone as an aware instant; ValueError with a reason."""
    try:
        parsed_day = date.fromisoformat(day)
    except ValueError:
        raise ValueError("the date is missing or not a date") from None
    try:
        parsed_time = time.fromisoformat(clock)
    except ValueError:
        raise ValueError("the time is missing or not a time (like 09:30)") from None
    tz = ZoneInfo(zone)
    naive = datetime.combine(parsed_day, parsed_time)
    instant = naive.replace(tzinfo=tz)
    try:
        round_trip = instant.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31 23:30 in a zone behind UTC
        raise ValueError(f"the date {day} is not a plausible visit date (check the year)") from None
    if round_trip != naive:
        raise ValueError(f"{clock} on {day} does not exist in {zone} (the clocks go forward then)")
    return instant
