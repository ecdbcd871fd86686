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
    WELCOME = "welcome"  # the introduction before a patient's first text (reminders.outbox.welcome)
    QUESTIONNAIRE = "questionnaire"  # a validated questionnaire before a visit (reminders.measures)


class ChannelName(StrEnum):
    """The outbox row's channel: a spec's name (reminders.channel_specs says what each one is, the
    text channels among them)."""
    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"

PENDING_STATUSES = (Status.PLANNED, Status.QUEUED)
FINAL_STATUSES = tuple(s for s in Status if s not in (*PENDING_STATUSES, Status.SENDING))

# What a provider's delivery report makes of a row, whatever the row says by then
# (reminders.outbox.delivery): the provider's word on a message that went wins, even over a row
# retried, given up or withdrawn since that try.
REPORTED = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED})

# Every status change the outbox makes (reminders.outbox checks each one against this): from a
# status, the statuses a row may go to. A row never goes back to `queued` or `sending` once past
# them, and once handed to the provider never back into the schedule, unless staff resend it.
ALLOWED_MOVES: dict[Status, frozenset[Status]] = {
    # queued by the dispatcher; moved, withdrawn or given up by the planner or an outage
    Status.PLANNED: REPORTED | {Status.PLANNED, Status.QUEUED, Status.CANCELED, Status.SENT},
    # claimed by one sender; or back to the schedule (hand-off failed, provider paused, visit moved)
    Status.QUEUED: REPORTED | {Status.SENDING, Status.PLANNED, Status.CANCELED, Status.SENT},
    # the send's outcome, or back to the schedule untried (quiet hours, a retry, a released claim)
    Status.SENDING: REPORTED | {Status.SENT, Status.PLANNED, Status.UNKNOWN, Status.SKIPPED, Status.CANCELED},
    Status.SENT: REPORTED | {Status.SENT},  # a send recorded again after a failed commit
    Status.DELIVERED: REPORTED,
    Status.UNDELIVERED: REPORTED | {Status.PLANNED},  # resent by staff
    Status.FAILED: REPORTED | {Status.PLANNED, Status.CANCELED},  # resent; a following text goes again with it
    Status.SKIPPED: REPORTED | {Status.PLANNED, Status.CANCELED},  # an expired one resent; likewise
    Status.CANCELED: REPORTED | {Status.PLANNED},  # wanted again (a no-show corrected, a text taken up again)
    Status.UNKNOWN: REPORTED | {Status.SENT},  # the provider says it has it
}


class ReasonCode(StrEnum):
    """Why a row is where it is, for the code to decide on: `status_reason` tells staff, in words
    that may change; `reason_code` stays. Set with the words, cleared with them."""

    RETRYING = "retrying"  # back in the schedule after a temporary error, waiting out its backoff
    GAVE_UP = "gave_up"  # failed: the provider stayed down past the time the message could help
    WITHDRAWN = "withdrawn"  # canceled by the planner as the visit's facts changed; planned again if they change back
    VISIT_CANCELED = "visit_canceled"
    EXPIRED = "expired"  # skipped: too late to be useful (staff may resend it)
    WAITING_FOR_WELCOME = "waiting_for_welcome"  # held until the patient's welcome text goes
    NOTHING_TO_INTRODUCE = "nothing_to_introduce"  # a welcome withdrawn: no text of the patient's is planned
    UNKNOWN_AFTER_CRASH = "unknown_after_crash"  # a worker stopped during the send
    RELEASED_UNSENT = "released_unsent"  # a worker stopped before the send: back in the schedule
    QUIET_HOURS = "quiet_hours"
    PROVIDER_PAUSED = "provider_paused"  # held while the channel's provider is failing


# The reasons reminders.timing.rules gives in words only, and the code each stands for: a row
# written with just these words (a reason not to send; a row inserted with its reason) gets its code.
CODE_OF_RULE_WORDS = {
    "visit canceled": ReasonCode.VISIT_CANCELED,
    "too late to be useful": ReasonCode.EXPIRED,
}


def _code_of_inserted_reason(context) -> str | None:
    return CODE_OF_RULE_WORDS.get(context.get_current_parameters().get("status_reason"))


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
    status_reason: Mapped[str | None] = mapped_column(String(200))  # for staff
    reason_code: Mapped[str | None] = mapped_column(String(40), default=_code_of_inserted_reason)  # ReasonCode
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
