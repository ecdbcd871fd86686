from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow

CHANNEL_PREFERENCES = ("sms", "email", "both")


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint("preferred_channel IN ('sms', 'email', 'both')", name="preferred_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str] = mapped_column(String(64))
    preferred_channel: Mapped[str] = mapped_column(String(10), default="sms")
    sms_opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opt_out_text: Mapped[str | None] = mapped_column(String(160))
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    welcomed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    courses: Mapped[list["Course"]] = relationship(back_populates="patient", order_by="Course.started_at")
    appointments: Mapped[list["Appointment"]] = relationship(  # noqa: F821
        back_populates="patient", order_by="Appointment.starts_at"
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def channels(self) -> set[str]:
        """The channels this patient can be reached on, by preference and contact details."""
        wanted = {"sms", "email"} if self.preferred_channel == "both" else {self.preferred_channel}
        reachable = set()
        if self.phone:
            reachable.add("sms")
        if self.email:
            reachable.add("email")
        chosen = wanted & reachable
        return chosen or reachable


class Course(Base):
    """A treatment course: an induction series, then maintenance boosters."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    induction_sessions_planned: Mapped[int] = mapped_column(Integer, default=6)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship(back_populates="courses")
    appointments: Mapped[list["Appointment"]] = relationship(  # noqa: F821
        back_populates="course", order_by="Appointment.starts_at"
    )
