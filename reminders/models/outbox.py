from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow

class Status(StrEnum):
    """Lifecycle of an outbox row (reminders.outbox moves it). Only `planned` rows are picked by the
    dispatcher; only `queued` rows can be claimed by a send task, and the claim is a single
    conditional UPDATE."""

    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


class Kind(StrEnum):
    """What a row is for."""

    REMINDER = "reminder"  # before a visit
    CHECKIN = "checkin"  # asks for a score after a visit, or weekly
    NUDGE = "nudge"  # book the next visit, we missed you, plan maintenance
    ALERT = "alert"  # a crisis alert to staff
    REPLY = "reply"  # a written answer to a patient, outside the webhook's own answer
    WELCOME = "welcome"  # the introduction before a patient's first text (reminders.planning.welcome)
    QUESTIONNAIRE = "questionnaire"  # a validated questionnaire before a visit (reminders.measures)


class ChannelName(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"


# The channels a patient texts back on: check-ins, replies, the welcome and opt-out belong to them.
TEXT_CHANNELS = (ChannelName.SMS, ChannelName.WHATSAPP)

PENDING_STATUSES = (Status.PLANNED, Status.QUEUED)
FINAL_STATUSES = tuple(s for s in Status if s not in (*PENDING_STATUSES, Status.SENDING))

class OutboxMessage(Base):
    """One message the service means to send, or has sent: the schedule and the log in one row."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
        Index("ix_outbox_patient_created", "patient_id", "created_at"),
        Index("ix_outbox_appointment", "appointment_id"),
        CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in Status)})",
                        name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One row per (what it is for, rule, channel): the unique key is what makes "never twice" hold
    # when two planners race. e.g. "appt:12:first_induction_24h:sms", "esc:4:alert:2:sms:+1555...".
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id", ondelete="CASCADE"))
    # The location it goes out for (its sender, words, on-call); None: the default location.
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="SET NULL"))
    from_address: Mapped[str | None] = mapped_column(String(64))  # the sender it went from
    kind: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(10))
    planned_for: Mapped[datetime] = mapped_column(UTCDateTime)  # the rule's own time
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it may go (quiet hours, backoff)
    status: Mapped[str] = mapped_column(String(20), default=Status.PLANNED)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    # 1, or the place of a text that follows the one before it: a text too long for its budget
    # goes as several, each its own row ("appt:12:induction_24h:sms:part2"), sent after the last.
    part: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    provider_id: Mapped[str | None] = mapped_column(String(100), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(30))
    error_message: Mapped[str | None] = mapped_column(String(500))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set (and committed) just before this row's own provider call: a row left `sending` without it
    # never reached the provider (reminders.outbox.moves.release_unhanded).
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the words (subject, body) were blanked after RETENTION_DAYS (reminders.retention); the
    # row stays as metadata.
    body_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped["Patient | None"] = relationship()  # noqa: F821
    appointment: Mapped["Appointment | None"] = relationship()  # noqa: F821
