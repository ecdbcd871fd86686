"""A patient's active visits that start at the same instant: a likely duplicate booking, noted
for staff on each (`planning_error`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.models import Appointment
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.planning.marking import PLANNING_ERROR_LIMIT
from reminders.planning.planning_run import run_of


DUPLICATE_BOOKING = "{count} visits of this patient start at the same time (ids {ids}): check for a duplicate booking"
DUPLICATE_IDS_SHOWN = 10


def duplicate_booking_note(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:DUPLICATE_IDS_SHOWN]) + (", …" if len(ids) > DUPLICATE_IDS_SHOWN else "")
    return DUPLICATE_BOOKING.format(count=len(ids), ids=shown)[:PLANNING_ERROR_LIMIT]


def note_duplicate_bookings(session: Session, appointment: Appointment) -> None:
    """Tell staff, in `planning_error`, of a patient's active visits that start at the same instant.

    They are all planned as booked (nothing is refused: either may be the real one); each carries
    the note until it is canceled or moved, or its twin is. On a planned visit (`needs_planning`
    false) `planning_error` is only ever this note: a visit that could not be planned keeps
    `needs_planning` with its reason, and that reason is never overwritten here. Every way of
    marking a visit for planning clears the field, and planning it writes the note again (the
    visit's own note with the run's writes, the other visits' at once).
    """
    run = run_of(session)
    rows = [row for row in run.visits_of(appointment.patient_id) if row.id != appointment.id]
    at_instant: dict[datetime, list[int]] = {}
    for visit_id, starts_at, status in [(appointment.id, appointment.starts_at, appointment.status),
                                        *((row.id, row.starts_at, row.status) for row in rows)]:
        if status in ACTIVE_STATUSES:
            at_instant.setdefault(starts_at, []).append(visit_id)

    def note(visit_id: int, starts_at: datetime, status: str) -> str | None:
        twins = sorted(at_instant.get(starts_at, [])) if status in ACTIVE_STATUSES else []
        return duplicate_booking_note(twins) if len(twins) > 1 else None

    run.notes[appointment.id] = note(appointment.id, appointment.starts_at, appointment.status)
    for row in rows:
        if row.needs_planning:
            continue  # noted when it is planned in its turn; a reason it could not be planned stays
        wanted = note(row.id, row.starts_at, row.status)
        if row.planning_error != wanted:
            session.execute(
                update(Appointment).where(Appointment.id == row.id, Appointment.needs_planning.is_(False))
                .values(planning_error=wanted).execution_options(synchronize_session=False)
            )
