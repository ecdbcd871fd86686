"""A clinic's locations: where a visit happens, which number its texts go from, whose on-call hears
about its patients. A single-location clinic stores none: the settings are its default location
(reminders.locations reads a row over the settings, field by field)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from reminders.models.base import Base, UTCDateTime, utcnow


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # short, for CSV and the API: "austin"
    name: Mapped[str] = mapped_column(String(200))  # what patients read: "Bright Minds Austin"
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Each of these, when empty (NULL), is the setting's value (CLINIC_ADDRESS, TWILIO_FROM, ...).
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(40))
    timezone: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(64))  # a number (E.164) or a Messaging Service (MG...)
    sms_per_second: Mapped[float | None] = mapped_column(Float)
    office_hours_start: Mapped[str | None] = mapped_column(String(5))  # "08:00"
    office_hours_end: Mapped[str | None] = mapped_column(String(5))
    office_days: Mapped[str | None] = mapped_column(String(60))  # "mon-fri"
    holidays: Mapped[str | None] = mapped_column(Text)  # "2026-12-25,2027-01-01"
    oncall_phones: Mapped[str | None] = mapped_column(Text)  # comma-separated, like STAFF_ALERT_PHONES
    oncall_emails: Mapped[str | None] = mapped_column(Text)
    arrive_minutes_before: Mapped[int | None] = mapped_column(Integer)
    rideshare_allowed: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# Which locations a staff user works at; none listed: every location.
staff_user_locations = Table(
    "staff_user_locations", Base.metadata,
    Column("user_id", Integer, ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", Integer, ForeignKey("locations.id", ondelete="CASCADE"), primary_key=True),
)
