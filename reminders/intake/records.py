"""Validation of one incoming patient or appointment record, with reasons a person can act on."""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import phonenumbers

from reminders.models.patients import CHANNEL_PREFERENCES, CONDITIONS, LANGUAGES, preference_needs
from reminders.zones import check_time_zone
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUS_ALIASES = {"cancelled": "canceled", "no-show": "no_show", "noshow": "no_show", "booked": "scheduled"}
APPOINTMENT_STATUSES = ("scheduled", "confirmed", "canceled", "completed", "no_show")
APPOINTMENT_KINDS = ("induction", "maintenance")
DURATION_RANGE = (5, 600)
# A record whose door named no location: a stored visit keeps its own (a new one: the default).
KEEP_LOCATION = "keep"

# The longest text each field may hold: the width of its database column (a longer value would
# fail at the database, for every row in the same transaction, instead of being refused here).
MAX_LENGTH = {
    "external_id": 128, "patient_external_id": 128, "first_name": 100, "last_name": 100, "email": 254,
    "timezone": 64, "location": 200, "kind": 20, "status": 20, "preferred_channel": 10,
    "phone": 40,  # raw, as typed: "(202) 555-0143 ext. 12"; stored in E.164 (at most 16)
    "starts_at": 64, "duration_minutes": 12,
    "language": 8, "condition": 20,
    "medications_to_hold": 500,  # a note in the prescriber's words; a paragraph belongs in the chart
}
# Whatever the window setting says, a visit outside these years is a typo, and dates near the
# ends of the calendar break the arithmetic that plans reminders (9999-12-01 + a week).
EARLIEST_VISIT = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_VISIT = datetime(2100, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class VisitWindow:
    """How far back and ahead a visit may be booked, seen from `now`."""

    now: datetime
    past: timedelta = timedelta(days=365)
    future: timedelta = timedelta(days=730)

    @classmethod
    def from_settings(cls, settings, now: datetime) -> "VisitWindow":
        return cls(now, timedelta(days=settings.visit_window_past_days),
                   timedelta(days=settings.visit_window_future_days))

    def check(self, starts_at: datetime) -> None:
        if starts_at < self.now - self.past:
            raise ValueError(
                f"starts_at {starts_at.date().isoformat()} is more than {self.past.days} days in the past "
                f"(visits can be entered from {(self.now - self.past).date().isoformat()}); check the year")
        if starts_at > self.now + self.future:
            raise ValueError(
                f"starts_at {starts_at.date().isoformat()} is more than {self.future.days} days ahead "
                f"(visits can be booked until {(self.now + self.future).date().isoformat()}); check the year")


_window: ContextVar[VisitWindow | None] = ContextVar("visit_window", default=None)


@contextmanager
def visit_window(window: VisitWindow):
    """Check every AppointmentRecord made inside against this window (a CSV import, a form).

    A record can also be given one as `AppointmentRecord.model_validate(data, context={"visit_window": w})`.
    Without either, only the calendar's sane years are checked, so that code with a fixed clock
    (the demo, tests, a re-validation of a stored visit) is not judged by today's date.
    """
    token = _window.set(window)
    try:
        yield window
    finally:
        _window.reset(token)


def _text(value, field: str):
    """Refuse what is not text, or text a column cannot hold: a NUL, or more than its width."""
    if value is None:
        return None
    if not isinstance(value, str):
        kind = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
        raise ValueError(f"{field} must be text, not {kind.get(type(value), type(value).__name__)}")
    if "\x00" in value:
        raise ValueError(f"{field} contains a NUL character")
    limit = MAX_LENGTH.get(field)
    if limit is not None and len(value.strip()) > limit:
        raise ValueError(f"{field} is longer than {limit} characters")
    return value


def normalize_phone(raw: str, region: str = "US") -> str:
    """E.164 form of a phone number, or ValueError saying what is wrong with it."""
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone {raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_instant(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"starts_at {raw!r} is not an ISO-8601 date and time") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"starts_at {raw!r} has no UTC offset (write it like 2026-03-03T09:30:00-05:00)")
    return value


def check_visit_time(value: datetime, window: VisitWindow | None = None) -> datetime:
    """A visit's start in the calendar's sane years and, when given, inside the booking window."""
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:  # year 1 at +05:00, year 9999 at -05:00
        raise ValueError(f"starts_at {value.isoformat()} is outside the calendar") from None
    if not EARLIEST_VISIT <= utc < LATEST_VISIT:
        raise ValueError(f"starts_at {value.isoformat()} is not a plausible visit date (check the year)")
    if window is not None:
        window.check(utc)
    return value


def check_language(value: str | None) -> str | None:
    """"en" or "es" (any case; a region such as "es-MX" is read as its language), else ValueError."""
    if value is None:
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if code not in LANGUAGES:
        raise ValueError(f"language {value!r} must be one of {', '.join(LANGUAGES)}")
    return code


def check_condition(value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() not in CONDITIONS:
        raise ValueError(f"condition {value!r} must be one of {', '.join(CONDITIONS)}")
    return value.lower()


def _blank_to_none(value):
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class PatientRecord(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    external_id: str
    first_name: str
    last_name: str | None = ""
    phone: str | None = None
    email: str | None = None
    timezone: str
    preferred_channel: str = "sms"
    phone_region: str = "US"
    # None: not given (a file without the column, an API call without the field), so what is
    # stored stays; a new patient gets English and no note.
    language: str | None = None
    medications_to_hold: str | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value):
        return check_language(_blank_to_none(_text(value, "language")))

    @field_validator("medications_to_hold", mode="before")
    @classmethod
    def _medications(cls, value):
        if value is None:
            return None
        return " ".join((_text(value, "medications_to_hold") or "").split())  # blank: no note

    @field_validator("external_id", "first_name", "timezone", mode="before")
    @classmethod
    def _required(cls, value, info):
        if _blank_to_none(_text(value, info.field_name)) is None:
            raise ValueError(f"{info.field_name} is missing")
        return value

    @field_validator("phone", "email", "last_name", mode="before")
    @classmethod
    def _optional(cls, value, info):
        return _blank_to_none(_text(value, info.field_name))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("preferred_channel", mode="before")
    @classmethod
    def _channel(cls, value):
        value = (_blank_to_none(_text(value, "preferred_channel")) or "sms").lower()
        if value not in CHANNEL_PREFERENCES:
            raise ValueError(f"preferred_channel {value!r} must be sms, email, both or whatsapp")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value):
        if value is not None and not EMAIL.match(value):
            raise ValueError(f"email {value!r} is not an email address")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _reachable(self):
        if self.phone is not None:
            self.phone = normalize_phone(self.phone, self.phone_region)
        if preference_needs(self.preferred_channel, "phone") and not self.phone:
            raise ValueError(f"phone is missing (preferred_channel is {self.preferred_channel})")
        if preference_needs(self.preferred_channel, "email") and not self.email:
            raise ValueError(f"email is missing (preferred_channel is {self.preferred_channel})")
        self.last_name = self.last_name or ""
        return self


class AppointmentRecord(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    external_id: str
    kind: str
    starts_at: datetime
    duration_minutes: int = 60
    location: str = ""
    status: str | None = None  # None keeps what is stored (or scheduled for a new visit)
    # What the visit's course treats (CONDITIONS); None keeps what is stored.
    condition: str | None = None
    _location_id: int | None | str = PrivateAttr(default=KEEP_LOCATION)

    @property
    def location_id(self) -> int | None | str:
        """The clinic location (reminders.locations) the door found the visit's fields to name: an
        id, None for the default location, or KEEP_LOCATION. Set by the door (see `locate`), never
        taken from a request's data; the `location` text stays as given."""
        return self._location_id

    @location_id.setter
    def location_id(self, value: int | None | str) -> None:
        self._location_id = value

    @field_validator("condition", mode="before")
    @classmethod
    def _condition(cls, value):
        return check_condition(_blank_to_none(_text(value, "condition")))

    @field_validator("external_id", mode="before")
    @classmethod
    def _required(cls, value, info):
        if _blank_to_none(_text(value, info.field_name)) is None:
            raise ValueError(f"{info.field_name} is missing")
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value):
        value = (_blank_to_none(_text(value, "kind")) or "")
        if not value:
            raise ValueError("kind is missing")
        if value.lower() not in APPOINTMENT_KINDS:
            raise ValueError(f"kind {value!r} must be induction or maintenance")
        return value.lower()

    @field_validator("starts_at", mode="before")
    @classmethod
    def _starts_at(cls, value, info: ValidationInfo):
        window = (info.context or {}).get("visit_window", _window.get())
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("starts_at has no UTC offset")
            return check_visit_time(value, window)
        if _blank_to_none(_text(value, "starts_at")) is None:
            raise ValueError("starts_at is missing")
        return check_visit_time(parse_instant(value), window)

    @field_validator("duration_minutes", mode="before")
    @classmethod
    def _duration(cls, value):
        if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
            if not (isinstance(value, float) and value.is_integer()):
                raise ValueError(f"duration_minutes {value!r} is not a whole number")
            value = int(value)
        value = _blank_to_none(_text(value, "duration_minutes") if isinstance(value, str) else value)
        if value is None:
            return 60
        try:
            minutes = int(str(value))
        except ValueError as exc:
            raise ValueError(f"duration_minutes {value!r} is not a whole number") from exc
        low, high = DURATION_RANGE
        if not low <= minutes <= high:
            raise ValueError(f"duration_minutes {minutes} must be between {low} and {high}")
        return minutes

    @field_validator("location", mode="before")
    @classmethod
    def _location(cls, value):
        return _blank_to_none(_text(value, "location")) or ""

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value):
        value = _blank_to_none(_text(value, "status"))
        if value is None:
            return None
        value = STATUS_ALIASES.get(value.lower(), value.lower())
        if value not in APPOINTMENT_STATUSES:
            raise ValueError(f"status {value!r} must be one of {', '.join(APPOINTMENT_STATUSES)}")
        return value


def locate(book, *names: str | None) -> int | None:
    """The location a visit's fields name (reminders.locations.LocationBook.match): the first of
    `names` that is a location's code or name. None (the default location) when none is given or
    while the clinic stores no location; LocationError, naming the first value, when none is one."""
    refused = None
    for name in names:
        if name is None or not str(name).strip():
            continue
        try:
            return book.match(name)
        except ValueError as exc:  # LocationError
            refused = refused or exc
    if refused is not None:
        raise refused
    return None


def error_fields(error: ValidationError) -> list[str]:
    """The names of the fields a ValidationError is about, in order, each once."""
    found: list[str] = []
    for item in error.errors():
        loc = item.get("loc", ())
        if loc:
            name = str(loc[0])
        else:  # a check across fields ("phone is missing (preferred_channel is sms)") names it first
            name = item.get("msg", "").removeprefix("Value error, ").split(" ", 1)[0]
        if name and name not in found:
            found.append(name)
    return found


def reasons(error: ValidationError) -> list[str]:
    """Pydantic's errors as short sentences: 'timezone 'Mars/Base' is not an IANA time zone'."""
    out = []
    for item in error.errors():
        message = item.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        field = ".".join(str(part) for part in item.get("loc", ()))
        if item.get("type") == "missing":
            message = f"{field} is missing"
        elif field and field not in message and item.get("type") != "value_error":
            message = f"{field}: {message}"
        out.append(message)
    return out
