from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow


class InboundMessage(Base):
    """A text a patient (or anyone) sent to the clinic's number."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_needs_staff", "needs_staff", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32), default="")
    # The channel the patient wrote on ("sms", "whatsapp"): a check-in sent there is answered there.
    channel: Mapped[str] = mapped_column(String(10), default="sms", server_default="sms")
    body: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    classification: Mapped[str] = mapped_column(String(30), default="free_text")
    reply_body: Mapped[str | None] = mapped_column(Text)
    needs_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    # Rank in the staff inbox (reminders.inbound.replies PRIORITY_*), highest first, and why.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    flag_reason: Mapped[str] = mapped_column(String(300), default="", server_default="")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(254))
    # The staff inbox: who took the item (an email), and a note of what was done about it.
    assigned_to: Mapped[str | None] = mapped_column(String(254))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_note: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When the words (body, reply_body, done_note) were blanked after RETENTION_DAYS (reminders.retention).
    body_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped["Patient | None"] = relationship()  # noqa: F821


class CheckIn(Base):
    """A mood check-in: created when the prompt is sent, filled when the patient answers."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    prompt_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), unique=True)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="awaiting")  # awaiting|reasked|answered|to_staff
    # What the score measures: "mood" (0 worst, 10 best) or "pain" (0 no pain, 10 worst).
    kind: Mapped[str] = mapped_column(String(10), default="mood", server_default="mood")
    score: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    # Side effects and red flags read from the answer and any texts after it ("headache; BP 160/100").
    details: Mapped[str] = mapped_column(Text, default="", server_default="")
    raw_text: Mapped[str] = mapped_column(Text, default="")
    prompted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reasked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped["Patient"] = relationship()  # noqa: F821
    appointment: Mapped["Appointment | None"] = relationship()  # noqa: F821


class CheckInLink(Base):
    """The one-tap link of a check-in that went by email: PUBLIC_BASE_URL/c/<token>, no login.

    Made when the email is written (before its CheckIn exists, which the send creates), so it
    points at the email's outbox row; the page finds the check-in through that row. Random,
    single-patient, refused once answered or expired."""

    __tablename__ = "checkin_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(5), default="en")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Escalation(Base):
    """A possible crisis: re-alerted to staff until a person claims it, open until resolved."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_status_opened", "status", "opened_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    from_number: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(String(30))  # crisis_language | medical_emergency | low_score | self_harm_answer
    # A self-harm answer on a questionnaire (PHQ-9 item 9) opens one without a text.
    questionnaire_id: Mapped[int | None] = mapped_column(ForeignKey("questionnaires.id", ondelete="SET NULL", use_alter=True))
    text: Mapped[str] = mapped_column(Text, default="")
    # open (alerting) | claimed (a person is on it: alerts stop) | acknowledged (resolved, with a note)
    status: Mapped[str] = mapped_column(String(20), default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    alert_round: Mapped[int] = mapped_column(Integer, default=0)
    last_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(254))
    ack_note: Mapped[str] = mapped_column(Text, default="")
    # "I'm on it" (migration 0017_escalation_claims); acknowledged_* above record the resolution.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(254))
    # Whose on-call hears about it (migration 0022_locations): the patient's location when it opened;
    # None: the default location's (STAFF_ALERT_PHONES / STAFF_ALERT_EMAILS).
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="SET NULL"), index=True)

    patient: Mapped["Patient | None"] = relationship()  # noqa: F821


def checkin_kind(appointment) -> str:
    """What a check-in after this visit asks for: pain for a pain course, else mood."""
    course = getattr(appointment, "course", None)
    return "pain" if course is not None and course.condition == "pain" else "mood"


def last_inbound_at(session: Session, patient_id: int, channel: str) -> datetime | None:
    """When the patient last wrote to the clinic on this channel (None: never). WhatsApp lets free-
    form text go only within 24 hours of it (reminders.channels.kinds.within_free_form_window)."""
    return session.scalar(
        select(func.max(InboundMessage.received_at))
        .where(InboundMessage.patient_id == patient_id, InboundMessage.channel == channel))
