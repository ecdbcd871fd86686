"""Validation of one incoming patient or appointment record, with reasons a person can act on."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUS_ALIASES = {"cancelled": "canceled", "no-show": "no_show", "noshow": "no_show", "booked": "scheduled"}
APPOINTMENT_STATUSES = ("scheduled", "confirmed", "canceled", "completed", "no_show")


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


def check_time_zone(value: str, label: str = "timezone") -> str:
    """The name itself when it is an IANA time zone, else ValueError saying so."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{label} {value!r} is not an IANA time zone (like America/Chicago)") from exc
    return value


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

    @field_validator("external_id", "first_name", "timezone", mode="before")
    @classmethod
    def _required(cls, value, info):
        if _blank_to_none(value) is None:
            raise ValueError(f"{info.field_name} is missing")
        return value

    @field_validator("phone", "email", "last_name", mode="before")
    @classmethod
    def _optional(cls, value):
        return _blank_to_none(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("preferred_channel", mode="before")
    @classmethod
    def _channel(cls, value):
        value = (_blank_to_none(value) or "sms").lower()
        if value not in ("sms", "email", "both"):
            raise ValueError(f"preferred_channel {value!r} must be sms, email or both")
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
        if self.preferred_channel in ("sms", "both") and not self.phone:
            raise ValueError(f"phone is missing (preferred_channel is {self.preferred_channel})")
        if self.preferred_channel in ("email", "both") and not self.email:
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

    @field_validator("external_id", mode="before")
    @classmethod
    def _required(cls, value, info):
        if _blank_to_none(value) is None:
            raise ValueError(f"{info.field_name} is missing")
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value):
        value = (_blank_to_none(value) or "")
        if not value:
            raise ValueError("kind is missing")
        if value.lower() not in ("induction", "maintenance"):
            raise ValueError(f"kind {value!r} must be induction or maintenance")
        return value.lower()

    @field_validator("starts_at", mode="before")
    @classmethod
    def _starts_at(cls, value):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("starts_at has no UTC offset")
            return value
        if _blank_to_none(value) is None:
            raise ValueError("starts_at is missing")
        return parse_instant(str(value))

    @field_validator("duration_minutes", mode="before")
    @classmethod
    def _duration(cls, value):
        value = _blank_to_none(value)
        if value is None:
            return 60
        try:
            minutes = int(str(value))
        except ValueError as exc:
            raise ValueError(f"duration_minutes {value!r} is not a whole number") from exc
        if not 5 <= minutes <= 600:
            raise ValueError(f"duration_minutes {minutes} must be between 5 and 600")
        return minutes

    @field_validator("location", mode="before")
    @classmethod
    def _location(cls, value):
        return _blank_to_none(value) or ""

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value):
        value = _blank_to_none(value)
        if value is None:
            return None
        value = STATUS_ALIASES.get(value.lower(), value.lower())
        if value not in APPOINTMENT_STATUSES:
            raise ValueError(f"status {value!r} must be one of {', '.join(APPOINTMENT_STATUSES)}")
        return value


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
