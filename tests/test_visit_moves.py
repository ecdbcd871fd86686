"""A visit's status moves (reminders.visits.moves) and its place in the series (reminders.visits.series)."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from reminders.models import Appointment, Course
from reminders.models.appointments import ACTIVE_STATUSES, ATTENDED_OR_PENDING, STATUSES, AppointmentStatus
from reminders.visits import moves
from reminders.visits.moves import (
    ALLOWED, CANCELED, COMPLETED, CONFIRMED, ERASURE, MARK, NO_SHOW, PATIENT, RECORD, SCHEDULED, UNDO,
    VisitMoveRefused, booking, cancel_coming, move, retimed,
)
from reminders.visits.series import is_last_induction, planned_length, series_length, series_position
from tests.conftest import at, both_databases
from tests.helpers import book

settings = both_databases()

EARLIER = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 10, 16, 30, tzinfo=timezone.utc)
COLUMNS = ("status", "confirmed_at", "canceled_at", "status_changed_at", "status_before_change", "needs_planning",
           "planning_error", "updated_at")


def visit(status: str, **more) -> Appointment:
    values = dict(status=status, needs_planning=False, planning_error="could not plan", updated_at=EARLIER)
    return Appointment(**{**values, **more})


def columns(appointment: Appointment) -> dict:
    return {name: getattr(appointment, name) for name in COLUMNS}


def every_allowed_move():
    return [pytest.param(by, before, to, id=f"{by}:{before}->{to}")
            for by, table in ALLOWED.items() for before, targets in table.items() for to in sorted(targets)]


def test_statuses_keep_the_stored_values():
    assert STATUSES == ("scheduled", "confirmed", "canceled", "completed", "no_show")
    assert ACTIVE_STATUSES == ("scheduled", "confirmed")
    assert ATTENDED_OR_PENDING == ("scheduled", "confirmed", "completed")
    assert {"scheduled": 1}[AppointmentStatus.SCHEDULED] == 1


@pytest.mark.parametrize(("by", "before", "to"), every_allowed_move())
def test_every_allowed_move_works(by, before, to):
    appointment = visit(before)
    assert move(appointment, to, NOW, by=by) is True
    assert appointment.status == to and type(appointment.status) is str
    assert appointment.updated_at == NOW
    assert appointment.canceled_at == (NOW if to == CANCELED else None)
    assert appointment.confirmed_at == (NOW if by == PATIENT else None)
    if by == ERASURE:
        assert appointment.needs_planning is False
    elif by == PATIENT:  # a confirmation changes no text
        assert appointment.needs_planning is False and appointment.planning_error == "could not plan"
    else:
        assert appointment.needs_planning is True and appointment.planning_error is None


def test_the_record_may_put_a_visit_in_any_status():
    for before in AppointmentStatus:
        assert ALLOWED[RECORD][before] == frozenset(AppointmentStatus) - {before}


@pytest.mark.parametrize(("by", "before", "to"), [
    (PATIENT, CONFIRMED, CANCELED), (PATIENT, CANCELED, CONFIRMED), (PATIENT, COMPLETED, CONFIRMED),
    (MARK, SCHEDULED, CONFIRMED), (UNDO, SCHEDULED, CANCELED), (UNDO, CANCELED, SCHEDULED),
    (ERASURE, COMPLETED, CANCELED), (ERASURE, NO_SHOW, CANCELED), (ERASURE, SCHEDULED, COMPLETED),
])
def test_a_refused_move_raises_and_changes_nothing(by, before, to):
    appointment = visit(before, status_before_change="scheduled", status_changed_at=EARLIER)
    kept = columns(appointment)
    with pytest.raises(VisitMoveRefused) as refused:
        move(appointment, to, NOW, by=by)
    assert (refused.value.before, refused.value.to, refused.value.by) == (before, to, by)
    assert columns(appointment) == kept


def test_a_move_to_the_same_status_is_a_no_op():
    appointment = visit("completed")
    kept = columns(appointment)
    assert move(appointment, "completed", NOW, by=PATIENT) is False  # not refused either
    assert columns(appointment) == kept


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        move(visit("scheduled"), "arrived", NOW, by=RECORD)


def test_a_staff_mark_remembers_what_an_undo_puts_back():
    appointment = visit("confirmed")
    move(appointment, NO_SHOW, NOW, by=MARK)
    assert (appointment.status_before_change, appointment.status_changed_at) == ("confirmed", NOW)
    move(appointment, CONFIRMED, NOW, by=UNDO)
    assert appointment.status == "confirmed"
    assert (appointment.status_before_change, appointment.status_changed_at) == (None, NOW)


def test_only_attendance_marks_can_be_undone():
    assert moves.UNDOABLE == (COMPLETED, NO_SHOW)
    appointment = visit("scheduled")
    move(appointment, CANCELED, NOW, by=MARK)  # a cancellation by staff is not undone from the notice
    assert appointment.status_before_change is None and appointment.status_changed_at is None
    move(appointment, COMPLETED, NOW, by=RECORD)  # the visit form or a feed: no undo either
    assert appointment.status_before_change is None


def test_a_new_time_drops_the_confirmation():
    appointment = visit("confirmed", confirmed_at=EARLIER, reschedule_requested_at=EARLIER)
    retimed(appointment, NOW)
    assert appointment.status == "scheduled"
    assert appointment.confirmed_at is None and appointment.reschedule_requested_at is None
    assert appointment.needs_planning is True
    canceled = visit("canceled", canceled_at=EARLIER)
    retimed(canceled, NOW)
    assert (canceled.status, canceled.canceled_at) == ("canceled", EARLIER)


def test_booking_values():
    assert booking(None, NOW) == {"status": "scheduled", "confirmed_at": None, "canceled_at": None}
    assert booking("canceled", NOW) == {"status": "canceled", "confirmed_at": None, "canceled_at": NOW}
    with pytest.raises(ValueError):
        booking("arrived", NOW)


def test_the_batch_rows_move_too():
    row = SimpleNamespace(status="scheduled", confirmed_at=None, canceled_at=None, needs_planning=False,
                          planning_error=None, updated_at=EARLIER)
    assert move(row, CANCELED, NOW, by=RECORD)
    assert (row.status, row.canceled_at, row.needs_planning) == ("canceled", NOW, True)


def test_an_erasure_cancels_only_the_visits_still_to_come(session):
    now = at("2026-12-05T12:00:00+00:00")
    book(session, starts_at="2026-12-01T15:00:00+00:00", appointment="past")
    book(session, starts_at="2026-12-08T15:00:00+00:00", appointment="coming")
    book(session, starts_at="2026-12-09T15:00:00+00:00", appointment="confirmed", status="confirmed")
    book(session, starts_at="2026-12-10T15:00:00+00:00", appointment="done", status="completed")
    patient_id = session.scalar(select(Appointment.patient_id).where(Appointment.external_id == "past"))
    assert cancel_coming(session, patient_id, now) == 2
    session.commit()
    session.expire_all()
    stored = {a.external_id: a for a in session.scalars(select(Appointment))}
    assert {k: a.status for k, a in stored.items()} == {
        "past": "scheduled", "coming": "canceled", "confirmed": "canceled", "done": "completed"}
    assert stored["coming"].canceled_at == now and stored["coming"].needs_planning is False


# --- The series ----------------------------------------------------------------------------------

def induction(number: int, course: Course | None, kind: str = "induction") -> SimpleNamespace:
    return SimpleNamespace(kind=kind, number_in_course=number, course=course)


def test_the_series_length_of_a_course_with_a_plan():
    course = Course(induction_sessions_planned=4)
    assert planned_length(course, 6) == 4
    assert series_length(course, 6) == 4
    assert series_length(course, 6, visits_seen=5) == 5  # a fifth infusion of four reads "5 of 5"
    assert series_position(induction(3, course), 6) == (3, 4)
    assert series_position(induction(5, course), 6) == (5, 5)
    assert [is_last_induction(induction(n, course), 6) for n in (3, 4, 5)] == [False, True, True]


def test_the_series_length_without_a_course_or_a_plan():
    settings = SimpleNamespace(induction_series_length=6)
    assert planned_length(None, settings) == 6 == planned_length(None, 6)
    assert planned_length(Course(induction_sessions_planned=None), settings) == 6
    assert series_length(None, settings, visits_seen=7) == 7
    assert series_position(induction(2, None), settings) == (2, 6)
    assert [is_last_induction(induction(n, None), settings) for n in (5, 6)] == [False, True]


def test_a_maintenance_visit_is_never_the_last_induction():
    assert not is_last_induction(induction(9, Course(induction_sessions_planned=6), kind="maintenance"), 6)
