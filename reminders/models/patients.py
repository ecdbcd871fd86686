from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.channel_specs import SMS, all_specs, spec_for
from reminders.models.base import Base, UTCDateTime, utcnow

CHANNEL_PREFERENCES = ("sms", "email", "both", "whatsapp")
# The channels each preference asks for. WhatsApp goes to the phone number, like SMS; whether the
# clinic has it switched on is the planner's business (reminders.timing.rules.choose_channels).
PREFERRED_CHANNELS = {"sms": {"sms"}, "email": {"email"}, "both": {"sms", "email"}, "whatsapp": {"whatsapp"}}
# Languages the shipped templates are written in; a third is a folder of templates
# (templates/<code>/) and a keyword table (reminders.inbound.parsing).
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
# What a course treats: decides what the check-in asks (pain 0-10 instead of mood) and, later,
# which questionnaires go. None: not recorded (treated as depression).
CONDITIONS = ("depression", "ptsd", "anxiety", "pain", "other")


def preference_needs(preference: str, contact: str) -> bool:
    """Whether a preferred channel needs this contact detail: "both" needs a phone and an email
    address (the contacts of the channels it asks for)."""
    return any(spec_for(name).contact == contact for name in PREFERRED_CHANNELS.get(preference, ()))


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint(f"preferred_channel IN ({', '.join(repr(c) for c in CHANNEL_PREFERENCES)})",
                        name="preferred_channel"),
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
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE, server_default=DEFAULT_LANGUAGE)
    # Medications this patient should hold before a visit, in the prescriber's words ("no
    # lamotrigine the morning of"): shown in the preparation email and, if short, the SMS.
    medications_to_hold: Mapped[str] = mapped_column(Text, default="", server_default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    # Set when the patient's personal data was erased (reminders.retention.erase_patient).
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
        """The channels this patient can be reached on, by preference and contact details: each
        channel whose contact detail the patient has (SMS reaches any phone), one that only reaches
        those who chose it (WhatsApp) only when chosen."""
        wanted = PREFERRED_CHANNELS.get(self.preferred_channel, {SMS.name})
        reachable = {spec.name for spec in all_specs()
                     if getattr(self, spec.contact, None) and (spec.name in wanted or not spec.chosen_only)}
        chosen = wanted & reachable
        return chosen or reachable


ERASED_NAME = "(erased)"


@event.listens_for(Patient, "before_insert")
@event.listens_for(Patient, "before_update")
def _erased_stays_erased(mapper, connection, patient: Patient) -> None:
    """An erased patient (reminders.retention.erase) keeps no personal data, whatever an import or a
    form writes to the row later: no name, no contact details, nothing sent."""
    if patient.erased_at is None:
        return
    patient.first_name, patient.last_name = ERASED_NAME, ""
    patient.phone = patient.email = patient.opt_out_text = None
    patient.notes = patient.medications_to_hold = ""
    patient.sms_opted_out = True


class Course(Base):
    """A treatment course: an induction series, then maintenance boosters."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    induction_sessions_planned: Mapped[int] = mapped_column(Integer, default=6)
    condition: Mapped[str | None] = mapped_column(String(20))  # one of CONDITIONS, or not recorded
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship(back_populates="courses")
    appointments: Mapped[list["Appointment"]] = relationship(  # noqa: F821
        back_populates="course", order_by="Appointment.starts_at"
    )
