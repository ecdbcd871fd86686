from __future__ import annotations

import enum
from datetime import datetime, timedelta

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reminders.models.base import Base, UTCDateTime, utcnow

KINDS = ("induction", "maintenance")
DURATION_MINUTES = (5, 600)


class AppointmentStatus(enum.StrEnum):
    """Where a visit stands. The values are what the database stores (migration 0002_checks);
    reminders.visits.moves says which changes are allowed and makes them."""

    SCHEDULED = "scheduled"
    CONFIRMED = "confirmed"  # the patient replied to confirm
    CANCELED = "canceled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


STATUSES = tuple(AppointmentStatus)
# Still to happen: reminders go, and the time is held.
ACTIVE_STATUSES = (AppointmentStatus.SCHEDULED, AppointmentStatus.CONFIRMED)
ATTENDED_OR_PENDING = (*ACTIVE_STATUSES, AppointmentStatus.COMPLETED)


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_patient_start", "patient_id", "starts_at"),
        # The planner reads only appointments whose plan is out of date: a partial index keeps
        # that read proportional to what changed, not to every visit ever stored.
        Index(
            "ix_appointments_needs_planning",
            "needs_planning",
            postgresql_where=text("needs_planning"),
            sqlite_where=text("needs_planning"),
        ),
        # The last line of defence behind intake's checks (migration 0002_checks).
        CheckConstraint(one_of("kind", KINDS), name="kind"),
        CheckConstraint(one_of("status", STATUSES), name="status"),
        CheckConstraint(f"duration_minutes BETWEEN {DURATION_MINUTES[0]} AND {DURATION_MINUTES[1]}",
                        name="duration_minutes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    number_in_course: Mapped[int] = mapped_column(Integer, default=1)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    location: Mapped[str] = mapped_column(String(200), default="")  # as booked: a room, or the location's name
    # The clinic location (reminders.locations); None: the default location, the settings.
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=AppointmentStatus.SCHEDULED.value)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reschedule_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When staff last marked it completed or no-show, and the status an undo puts back
    # (migration 0021_no_show_undo; reminders.no_show_undo).
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_before_change: Mapped[str | None] = mapped_column(String(20))
    needs_planning: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why the planner could not plan this visit (shown to staff); the planner leaves it alone
    # until the visit changes, which clears this. On a visit that was planned (needs_planning
    # false) it holds only a note for staff: another active visit of the patient at the same
    # instant, a likely duplicate booking (planner.note_duplicate_bookings).
    planning_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped["Patient"] = relationship(back_populates="appointments")  # noqa: F821
    course: Mapped["Course | None"] = relationship(back_populates="appointments")  # noqa: F821
    place: Mapped["Location | None"] = relationship()  # noqa: F821  (the stored location, when not the default)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
