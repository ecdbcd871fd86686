from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow

# Lifecycle of an outbox row. Only `planned` rows are picked by the dispatcher; only `queued`
# rows can be claimed by a send task, and the claim is a single conditional UPDATE.
PLANNED, QUEUED, SENDING = "planned", "queued", "sending"
SENT, DELIVERED, UNDELIVERED, FAILED = "sent", "delivered", "undelivered", "failed"
SKIPPED, CANCELED, UNKNOWN = "skipped", "canceled", "unknown"
PENDING_STATUSES = (PLANNED, QUEUED)
FINAL_STATUSES = (SENT, DELIVERED, UNDELIVERED, FAILED, SKIPPED, CANCELED, UNKNOWN)

KIND_REMINDER, KIND_CHECKIN, KIND_NUDGE = "reminder", "checkin", "nudge"
KIND_ALERT, KIND_REPLY, KIND_FALLBACK = "alert", "reply", "fallback"
KIND_WELCOME = "welcome"  # the introduction before a patient's first text (reminders.planning.welcome)


class OutboxMessage(Base):
    """One message the service means to send, or has sent: the schedule and the log in one row."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
        Index("ix_outbox_patient_created", "patient_id", "created_at"),
        Index("ix_outbox_appointment", "appointment_id"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in (*PENDING_STATUSES, SENDING, *FINAL_STATUSES))})",
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
    kind: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(10))
    planned_for: Mapped[datetime] = mapped_column(UTCDateTime)  # the rule's own time
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it may go (quiet hours, backoff)
    status: Mapped[str] = mapped_column(String(20), default=PLANNED)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    provider_id: Mapped[str | None] = mapped_column(String(100), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(30))
    error_message: Mapped[str | None] = mapped_column(String(500))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped["Patient | None"] = relationship()  # noqa: F821
    appointment: Mapped["Appointment | None"] = relationship()  # noqa: F821
