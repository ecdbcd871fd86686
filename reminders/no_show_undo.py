"""Marking a visit completed or no-show, and undoing it for a few minutes (NO_SHOW_UNDO_MINUTES).

Staff mark a visit from Today or the patient's page; a mistaken no-show must not reach the
patient: "we missed you" waits until the undo window has closed (reminders.timing.rules,
`_missed_visit_time`), and an undo puts back the status the visit had (scheduled or confirmed),
so the planner withdraws the text before it goes.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from reminders.models import Appointment
from reminders.models.appointments import AppointmentStatus
from reminders.visits.moves import UNDOABLE, note_mark  # noqa: F401  (the marks are made by visits.moves)


def undo_window(settings) -> timedelta:
    return timedelta(minutes=settings.no_show_undo_minutes)


def undo_until(appointment: Appointment, window: timedelta) -> datetime | None:
    """Until when staff can undo the visit's last mark; None when there is nothing to undo."""
    if appointment.status not in UNDOABLE or appointment.status_changed_at is None:
        return None
    before = appointment.status_before_change
    if not before or before == appointment.status or not window:
        return None
    return appointment.status_changed_at + window


def can_undo(appointment: Appointment, window: timedelta, now: datetime) -> bool:
    until = undo_until(appointment, window)
    return until is not None and now < until


def status_to_restore(appointment: Appointment) -> str:
    return appointment.status_before_change or AppointmentStatus.SCHEDULED
