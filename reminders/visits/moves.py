"""The one way a visit's status changes: which moves are allowed, and what each one sets.

Who asks decides what is allowed. The clinic's record of the visit (staff's visit form, the CSV
import, the API, HL7, FHIR) is the truth and may put a visit in any status, correcting an earlier
one: a canceled visit reopened, a no-show that was a late arrival marked completed, a completed visit
entered in error canceled. A patient's text only confirms. Staff marking a visit from Today or the
patient's page (and undoing that mark within NO_SHOW_UNDO_MINUTES) and an erasure move less.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.models import Appointment
from reminders.models.appointments import AppointmentStatus

SCHEDULED = AppointmentStatus.SCHEDULED
CONFIRMED = AppointmentStatus.CONFIRMED
CANCELED = AppointmentStatus.CANCELED
COMPLETED = AppointmentStatus.COMPLETED
NO_SHOW = AppointmentStatus.NO_SHOW

# Who asks for a move.
RECORD = "record"  # the clinic's record of the visit: a staff form, the import, the API, HL7, FHIR
PATIENT = "patient"  # the patient's reply to a reminder
MARK = "mark"  # staff marking the visit on Today or the patient's page
UNDO = "undo"  # staff taking back their last mark
ERASURE = "erasure"  # the patient's data erased: the visits still to come are canceled

# Marks staff can take back for a few minutes (reminders.no_show_undo).
UNDOABLE = (COMPLETED, NO_SHOW)


def _all_but(status: AppointmentStatus, among=tuple(AppointmentStatus)) -> frozenset[AppointmentStatus]:
    return frozenset(among) - {status}


ALLOWED: dict[str, dict[AppointmentStatus, frozenset[AppointmentStatus]]] = {
    RECORD: {
        SCHEDULED: frozenset({CONFIRMED, CANCELED, COMPLETED, NO_SHOW}),
        CONFIRMED: frozenset({SCHEDULED, CANCELED, COMPLETED, NO_SHOW}),  # scheduled: moved to a new time
        CANCELED: frozenset({SCHEDULED, CONFIRMED, COMPLETED, NO_SHOW}),
        COMPLETED: frozenset({SCHEDULED, CONFIRMED, CANCELED, NO_SHOW}),
        NO_SHOW: frozenset({SCHEDULED, CONFIRMED, CANCELED, COMPLETED}),
    },
    PATIENT: {SCHEDULED: frozenset({CONFIRMED})},
    # Staff cancel, reopen (scheduled), or mark completed or no-show, from whatever the visit shows.
    MARK: {status: _all_but(status, (SCHEDULED, CANCELED, COMPLETED, NO_SHOW)) for status in AppointmentStatus},
    # An undo puts back whatever the visit was before the mark.
    UNDO: {status: _all_but(status) for status in UNDOABLE},
    ERASURE: {SCHEDULED: frozenset({CANCELED}), CONFIRMED: frozenset({CANCELED})},
}


class VisitMoveRefused(ValueError):
    """A status change that is not allowed for the one asking; nothing was changed."""

    def __init__(self, before: AppointmentStatus, to: AppointmentStatus, by: str):
        super().__init__(f"a visit cannot go from {before} to {to} ({by})")
        self.before, self.to, self.by = before, to, by


def allowed(before: str, to: str, *, by: str) -> bool:
    return AppointmentStatus(to) in ALLOWED[by].get(AppointmentStatus(before), frozenset())


def move(visit, to: str, now: datetime, *, by: str) -> bool:
    """Put the visit in status `to`; False when it is there already. Raises VisitMoveRefused on a
    move not allowed for `by`, leaving the visit as it was.

    `visit` is an Appointment, or anything with its columns (the batch import's rows)."""
    before, to = AppointmentStatus(visit.status), AppointmentStatus(to)
    if to == before:
        return False
    if not allowed(before, to, by=by):
        raise VisitMoveRefused(before, to, by)
    if by == MARK and to in UNDOABLE:
        note_mark(visit, now)
    elif by == UNDO:
        note_undone(visit, now)
    visit.status = to.value
    if to == CANCELED:
        visit.canceled_at = now
    if by == PATIENT:
        visit.confirmed_at = now
    elif by == ERASURE:
        visit.needs_planning = False  # nothing more goes to a patient whose data is erased
    else:  # a confirmation changes no text; any other move may
        visit.needs_planning = True
        visit.planning_error = None
    visit.updated_at = now
    return True


def retimed(visit, now: datetime) -> None:
    """The visit has a new time: a confirmation or a request to move it was for the old one."""
    visit.confirmed_at = None
    visit.reschedule_requested_at = None
    if visit.status == CONFIRMED:
        move(visit, SCHEDULED, now, by=RECORD)


def booking(status: str | None, now: datetime) -> dict[str, object]:
    """The status columns of a visit entered in `status` (None: scheduled)."""
    status = AppointmentStatus(status or SCHEDULED)
    return {"status": status.value, "confirmed_at": None, "canceled_at": now if status == CANCELED else None}


def note_mark(visit, now: datetime) -> None:
    """Remember, before the status changes, what an undo puts back."""
    visit.status_before_change = visit.status
    visit.status_changed_at = now


def note_undone(visit, now: datetime) -> None:
    """After an undo there is nothing left to undo."""
    visit.status_before_change = None
    visit.status_changed_at = now


def cancel_coming(session: Session, patient_id: int, now: datetime) -> int:
    """Cancel the patient's visits still to come, in one statement (an erasure); how many."""
    return session.execute(
        update(Appointment)
        .where(Appointment.patient_id == patient_id, Appointment.status.in_(tuple(ALLOWED[ERASURE])),
               Appointment.starts_at > now)
        .values(status=CANCELED.value, canceled_at=now, needs_planning=False, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
