"""A clinic's locations, read over the settings: each location is the settings with its own name,
address, phone, time zone, sender, office hours, holidays, on-call and preparation overrides.

A visit belongs to a location (`Appointment.location_id`; None is the default location, which is
the settings themselves), so code that already reads `settings` reads the location's by asking the
book for `settings_for(location_id)`. This module is the only writer of the `locations` table and
of which locations a staff user works at (`staff_user_locations`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from reminders.channel_specs import without_address_prefix
from reminders.config import Settings
from reminders.models import Appointment, Location, staff_user_locations
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.zones import check_time_zone

# Location column -> the setting it stands in for, and how a person names it.
OVERRIDES: dict[str, tuple[str, str]] = {
    "name": ("clinic_name", "name"),
    "address": ("clinic_address", "address"),
    "phone": ("clinic_phone", "phone"),
    "timezone": ("clinic_timezone", "time zone"),
    "sender": ("twilio_from", "sending number"),
    "sms_per_second": ("sms_per_second", "texts a second"),
    "office_hours_start": ("office_hours_start", "office hours start"),
    "office_hours_end": ("office_hours_end", "office hours end"),
    "office_days": ("office_days", "office days"),
    "holidays": ("clinic_holidays", "holidays"),
    "oncall_phones": ("staff_alert_phones", "on-call phones"),
    "oncall_emails": ("staff_alert_emails", "on-call emails"),
    "arrive_minutes_before": ("arrive_minutes_before", "minutes to arrive early"),
    "rideshare_allowed": ("rideshare_allowed", "rideshare home allowed"),
}
FIELDS = ("code", *OVERRIDES, "active")
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SENDER = re.compile(r"^(\+[1-9]\d{6,14}|MG[0-9a-fA-F]{32}|\d{5,6})$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


class LocationError(ValueError):
    """A location's field that cannot be stored, in words for the person who typed it."""


@dataclass(frozen=True)
class Place:
    """A location as the rest of the service reads it: who it is and its settings."""

    id: int | None  # None: the default location (the settings)
    code: str
    name: str
    settings: Settings


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _typed_override(column: str, value):
    """The setting's value for a location's field, checked as the setting itself is checked."""
    setting, words = OVERRIDES[column]
    if column == "sender":
        value = str(value).strip()
        if not SENDER.match(value):
            raise LocationError(f"The {words} {value[:40]!r} must be a number like +15550100100 or a "
                                "Messaging Service SID (MG followed by 32 letters and digits)")
        return value
    if column == "timezone":
        try:
            return check_time_zone(str(value).strip(), "The time zone")
        except ValueError as exc:
            raise LocationError(str(exc)) from None
    if column == "oncall_phones":
        return _addresses(value, E164, "The on-call phone {!r} must be in the form +15550100100")
    if column == "oncall_emails":
        return _addresses(value, EMAIL, "The on-call email {!r} is not an email address")
    try:
        checked = Settings.model_validate({setting: value})
    except ValidationError as exc:
        problem = exc.errors()[0].get("msg", "is not valid").removeprefix("Value error, ")
        raise LocationError(f"The {words} {str(value)[:60]!r}: {problem}") from None
    return getattr(checked, setting)


def _addresses(value, pattern: re.Pattern, refusal: str) -> list[str]:
    """A comma- or space-separated list, each one checked."""
    addresses = [a for a in re.split(r"[,;\s]+", str(value)) if a]
    bad = [a for a in addresses if not pattern.match(a)]
    if bad:
        raise LocationError(refusal.format(bad[0][:60]))
    return addresses


def overrides_of(location: Location) -> dict:
    """The settings a location's stored fields stand for (empty fields left out)."""
    out = {}
    for column, (setting, _) in OVERRIDES.items():
        value = getattr(location, column)
        if not _blank(value):
            out[setting] = _typed_override(column, value)
    return out


class LocationBook:
    """Every location, read once (a pass, a request): the settings of each, and look-ups."""

    def __init__(self, settings: Settings, locations: Iterable[Location] = ()):
        self.settings = settings
        self.default = Place(None, "", settings.clinic_name, settings)
        self.places: dict[int, Place] = {}
        for location in locations:
            self.places[location.id] = Place(location.id, location.code, location.name,
                                             settings.model_copy(update=overrides_of(location)))
        self._active = {location.id for location in locations if location.active}

    @classmethod
    def load(cls, session: Session, settings: Settings) -> "LocationBook":
        return cls(settings, session.scalars(select(Location).order_by(Location.name)).all())

    @property
    def several(self) -> bool:
        return bool(self.places)

    def place(self, location_id: int | None) -> Place:
        return self.places.get(location_id, self.default) if location_id is not None else self.default

    def settings_for(self, location_id: int | None) -> Settings:
        return self.place(location_id).settings

    def choices(self, *, active_only: bool = True) -> list[Place]:
        """Locations for a form or a filter, in name order (the default location not among them)."""
        return [p for i, p in self.places.items() if not active_only or i in self._active]

    def match(self, value: str | None) -> int | None:
        """The location a CSV, API or form value names, by code or name (any case). Empty is the
        default location; so is any value while no location is stored. LocationError otherwise."""
        text = " ".join(str(value or "").split())
        if not text or not self.places:
            return None
        wanted = text.casefold()
        for place in self.places.values():
            if wanted in (place.code.casefold(), place.name.casefold()):
                return place.id
        known = ", ".join(sorted(p.code for p in self.places.values()))
        raise LocationError(f"location {text[:60]!r} is not one of this clinic's locations ({known})")

    def by_sender(self, number: str | None) -> int | None:
        """The location whose sending number a text was sent to (None: the default, or not known)."""
        number = without_address_prefix((number or "").strip())
        if not number or number == self.settings.twilio_from:
            return None  # the clinic's own number is every location's that has none of its own
        owners = [place.id for place in self.places.values() if place.settings.twilio_from == number]
        return owners[0] if len(owners) == 1 else None  # a number shared by several says nothing

    def senders(self) -> dict[str, Settings]:
        """Each distinct sending number, with the settings of a location that sends from it."""
        out = {self.settings.twilio_from: self.settings}
        for place in self.places.values():
            out.setdefault(place.settings.twilio_from, place.settings)
        return out


def describe(place: Place) -> dict:
    """A location in plain values, for the CLI's list and the API."""
    s = place.settings
    return {"id": place.id, "code": place.code, "name": place.name, "address": s.clinic_address,
            "phone": s.clinic_phone, "timezone": s.clinic_timezone, "sender": s.twilio_from,
            "office_hours": f"{s.office_hours_start:%H:%M}-{s.office_hours_end:%H:%M}",
            "office_days": list(s.office_days), "holidays": [d.isoformat() for d in s.clinic_holidays],
            "oncall_phones": list(s.staff_alert_phones), "oncall_emails": list(s.staff_alert_emails),
            "arrive_minutes_before": s.arrive_minutes_before, "rideshare_allowed": s.rideshare_allowed}


def patient_location(session: Session, patient_id: int | None, now: datetime) -> int | None:
    """The location a patient belongs to now: their next active visit's, else their latest visit's."""
    if patient_id is None:
        return None
    upcoming = session.execute(
        select(Appointment.location_id).where(
            Appointment.patient_id == patient_id, Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.starts_at >= now).order_by(Appointment.starts_at).limit(1)).first()
    if upcoming is not None:
        return upcoming[0]
    latest = session.execute(
        select(Appointment.location_id).where(Appointment.patient_id == patient_id)
        .order_by(Appointment.starts_at.desc()).limit(1)).first()
    return latest[0] if latest is not None else None


def save_location(session: Session, fields: dict, *, code: str | None = None) -> Location:
    """Create a location (code None) or change the one with that code. `fields` holds what was
    typed, as text; an empty field is the setting's. LocationError names the first bad field."""
    location = None
    if code is not None:
        location = session.scalar(select(Location).where(Location.code == code))
        if location is None:
            raise LocationError(f"There is no location with the code {code!r}")
    new_code = str(fields.get("code", code or "")).strip().lower()
    if not CODE.match(new_code):
        raise LocationError("The code must be 1 to 40 lower-case letters, digits or dashes, like austin or "
                            "north-side")
    clash = session.scalar(select(Location).where(Location.code == new_code))
    if clash is not None and clash is not location:
        raise LocationError(f"Another location already has the code {new_code!r}")
    values: dict = {"code": new_code}
    for column in OVERRIDES:
        if column not in fields:
            continue
        raw = fields[column]
        if column == "name":
            if _blank(raw):
                raise LocationError("A location needs a name, as patients will read it")
            values[column] = " ".join(str(raw).split())[:200]
            continue
        if _blank(raw):
            values[column] = None
            continue
        _typed_override(column, raw)  # refused here, in words, rather than at the first text
        if column in ("sms_per_second",):
            values[column] = float(raw)
        elif column == "arrive_minutes_before":
            values[column] = int(raw)
        elif column == "rideshare_allowed":
            values[column] = raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        else:
            values[column] = str(raw).strip()
    if "active" in fields:
        raw = fields["active"]
        values["active"] = raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if location is None:
        if "name" not in values:
            raise LocationError("A location needs a name, as patients will read it")
        location = Location(**values)
        session.add(location)
    else:
        for column, value in values.items():
            setattr(location, column, value)
    session.flush()
    return location


def staff_locations(session: Session, user_id: int) -> set[int]:
    """The locations a staff user works at; empty: every location."""
    return set(session.scalars(select(staff_user_locations.c.location_id)
                               .where(staff_user_locations.c.user_id == user_id)))


def set_staff_locations(session: Session, user_id: int, location_ids: Iterable[int]) -> None:
    session.execute(delete(staff_user_locations).where(staff_user_locations.c.user_id == user_id))
    ids = sorted(set(location_ids))
    if ids:
        session.execute(insert(staff_user_locations), [{"user_id": user_id, "location_id": i} for i in ids])
