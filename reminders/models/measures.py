from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow

# A questionnaire's life: sent (link or first SMS item out), started (an answer in), completed.
# Expiry is read from expires_at, not stored: a link past it is refused whatever its status.
SENT, STARTED, COMPLETED = "sent", "started", "completed"
# How the patient answers: the /q/<token> page, or by SMS one item at a time (no PUBLIC_BASE_URL).
BY_LINK, BY_SMS = "link", "sms"


class Questionnaire(Base):
    """One validated scale (PHQ-9, GAD-7, PCL-5, pain) put to one patient on one occasion.

    The token is the patient's key to the /q/<token> page: random, single-patient, refused once
    the questionnaire is completed or expired. The answers are kept as they come in (item number
    -> value), so a questionnaire left half way keeps what was answered."""

    __tablename__ = "questionnaires"
    __table_args__ = (
        Index("ix_questionnaires_patient_scale", "patient_id", "scale", "completed_at"),
        Index("ix_questionnaires_sms_open", "patient_id", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What makes "one per occasion" hold when two senders race: "appt:12:phq9", "staff:<uuid>:gad7".
    occasion_key: Mapped[str] = mapped_column(String(100), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id", ondelete="SET NULL"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    scale: Mapped[str] = mapped_column(String(20))  # reminders.scales key: phq9, gad7, pcl5, pain
    occasion: Mapped[str] = mapped_column(String(30))  # baseline | infusion_3 | infusion_6 | maintenance | staff
    language: Mapped[str] = mapped_column(String(5), default="en")
    channel: Mapped[str] = mapped_column(String(10), default=BY_LINK)
    status: Mapped[str] = mapped_column(String(20), default=SENT)
    answers: Mapped[dict] = mapped_column(JSON, default=dict)  # {"1": 0, "2": 3, ...}
    # By SMS: the item last asked, and when (a number in reply answers it).
    asked_item: Mapped[int | None] = mapped_column(Integer)
    asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(30))
    # By SMS a negative screener (PHQ-2, GAD-2) ends it early: "screen negative", stored with no
    # score and band "screen_negative"; the screener's score is read from its answers.
    screened_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # The answer to the scale's unscored question after its items (the PHQ-9's difficulty question).
    extra_answer: Mapped[int | None] = mapped_column(Integer)
    safety_raised: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped["Patient"] = relationship()  # noqa: F821
    appointment: Mapped["Appointment | None"] = relationship()  # noqa: F821

    def answer_of(self, item: int) -> int | None:
        value = (self.answers or {}).get(str(item))
        return int(value) if value is not None else None

    def answered(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in (self.answers or {}).items()}
