"""Marking visits for planning, and what staff read on a visit that could not be planned."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.models import Appointment

PLANNING_ERROR_LIMIT = 300  # the width of appointments.planning_error


def planning_error_text(exc: Exception) -> str:
    """What staff read on the visit: plain words first, then the error's own name."""
    if isinstance(exc, OverflowError):
        text = "its date is too far from today to plan reminders for; check the year and save the visit again"
    else:
        text = f"the reminders could not be planned ({type(exc).__name__}); the service log has the details"
    return text[:PLANNING_ERROR_LIMIT]


def mark_for_planning(session: Session, *, patient_id: int | None = None, appointment_ids: list[int] | None = None) -> None:
    stmt = update(Appointment).values(needs_planning=True, planning_error=None)
    if patient_id is not None:
        stmt = stmt.where(Appointment.patient_id == patient_id)
    if appointment_ids is not None:
        stmt = stmt.where(Appointment.id.in_(appointment_ids))
    session.execute(stmt.execution_options(synchronize_session=False))
