"""Visits of one patient booked at the same instant (a duplicate booking, an import run twice
under new ids): the planner plans them in one pass, in a fixed order, and tells staff.

Each visit's check-in and nudge want the same days, so there are more texts than free days and
most of them share a day in the end; planning one such visit used to mark its siblings for
planning again and again, and the pass never reached anyone else's reminders.
"""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from reminders.models import Appointment
from reminders.pipeline import run_pass
from reminders.planning import one_visit, planner
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, sent

settings = both_databases()

SAME_TIME = "2026-12-10T10:00:00-05:00"
OTHER_VISIT = "2026-12-10T11:00:00-05:00"
# 72 hours before the other patient's first infusion: their first reminder is due.
NOW = "2026-12-07T11:00:00-05:00"
# Planned at most this many times each in one pass: once, and again when a sibling took a day
# from one of its texts. (The `plans` fixture stops a pass that loops at ten times this, so that
# the test fails instead of hanging.)
PLANS_PER_VISIT = 3


class Runaway(BaseException):
    """Not an Exception: the planner's per-visit guard must not swallow it."""


@pytest.fixture
def plans(monkeypatch) -> Counter:
    """How many times each visit (by external id) was planned; a runaway pass is stopped."""
    counted: Counter = Counter()
    plan = planner.plan_appointment

    def counting(session, appointment, rs, now):
        counted[appointment.external_id] += 1
        if counted[appointment.external_id] > 10 * PLANS_PER_VISIT:
            raise Runaway(f"{appointment.external_id} planned {counted[appointment.external_id]} times in one pass")
        return plan(session, appointment, rs, now)

    monkeypatch.setattr(planner, "plan_appointment", counting)
    return counted


def book_same_time(session, count: int, kind: str = "induction") -> list[Appointment]:
    return [book(session, starts_at=SAME_TIME, appointment=f"a{n}", kind=kind) for n in range(1, count + 1)]


def still_marked(session) -> list[str]:
    session.expire_all()
    return [a.external_id for a in session.scalars(select(Appointment).where(Appointment.needs_planning))]


@pytest.mark.parametrize("kind", ["induction", "maintenance"])
@pytest.mark.parametrize("count", [6, 8, 12])
def test_same_time_visits_are_planned_in_one_pass_and_everyone_elses_reminders_go(
        settings, session, plans, count, kind):
    visits = book_same_time(session, count, kind)
    other = book(session, starts_at=OTHER_VISIT, patient="p2", appointment="b1", phone="+12025550178",
                 first_name="Sam")

    summary = run_pass(settings, at(NOW))

    assert sent(session, appointment_id=other.id) == [("first_induction_72h", "sms")]
    assert summary["sent"] >= 1
    assert max(plans.values()) <= PLANS_PER_VISIT, plans
    assert sum(plans.values()) <= PLANS_PER_VISIT * (count + 1), plans
    assert still_marked(session) == []  # converged: nothing left for the next pass
    assert all(outbox(session, appointment_id=visit.id) for visit in visits)

    # A second pass finds nothing to plan and plans nothing again.
    plans.clear()
    run_pass(settings, at("2026-12-07T11:01:00-05:00"))
    assert plans == Counter()


def test_the_series_follows_start_time_then_id_and_the_first_keeps_the_wanted_days(settings, session, plans):
    visits = book_same_time(session, 8)
    run_pass(settings, at(NOW))
    session.expire_all()
    assert [session.get(Appointment, v.id).number_in_course for v in visits] == list(range(1, 9))
    day_after = {row.appointment_id: row.due_at for row in outbox(session, rule="checkin_day_after")}
    # The first visit of the series keeps the day after for its check-in; the others move on.
    assert day_after[visits[0].id] == at("2026-12-11T10:00:00-05:00")
    assert len(set(day_after.values())) == 8  # one check-in a day while days within reach are free


def test_a_file_of_same_time_visits_is_numbered_in_the_order_of_its_rows(settings, session):
    """The batch import numbers as the one-record path does: by start time, then id."""
    from reminders.intake.records import AppointmentRecord, PatientRecord
    from reminders.intake.batch import upsert_batch

    person = PatientRecord(external_id="p1", first_name="Maya", last_name="Lopez", phone="+12025550143", email=None,
                           timezone="America/New_York", preferred_channel="sms")
    earlier = book(session, starts_at="2026-12-08T10:00:00-05:00", appointment="a0")
    rows = [(person, AppointmentRecord(external_id=f"a{n}", kind="induction", starts_at=at(SAME_TIME)))
            for n in (3, 1, 2)]
    assert upsert_batch(session, rows, at("2026-11-01T12:00:00Z")) == ["created"] * 3
    session.commit()
    session.expire_all()
    visits = session.scalars(select(Appointment).order_by(Appointment.id)).all()
    assert [(v.external_id, v.number_in_course) for v in visits] == [("a0", 1), ("a3", 2), ("a1", 3), ("a2", 4)]
    assert visits[0].id == earlier.id


def test_the_same_visits_planned_in_another_order_end_the_same(settings, session, plans):
    """Which sibling keeps a day does not depend on which was planned first."""
    visits = book_same_time(session, 8)
    run_pass(settings, at(NOW))
    first = {(row.appointment_id, row.rule): row.due_at for row in outbox(session) if row.kind in ("checkin", "nudge")}
    # Every visit planned again, the last first (as a second planner taking them in turns would).
    for visit in reversed(visits):
        planner.mark_for_planning(session, appointment_ids=[visit.id])
        session.commit()
        run_pass(settings, at(NOW))
    again = {(row.appointment_id, row.rule): row.due_at for row in outbox(session) if row.kind in ("checkin", "nudge")
             and row.status == "planned"}
    assert again == first
    assert still_marked(session) == []


class TestDuplicateBookings:
    def test_both_are_planned_and_staff_are_told_to_check(self, settings, session, plans):
        first, second = book_same_time(session, 2)
        book(session, starts_at="2026-12-14T10:00:00-05:00", appointment="a3")
        run_pass(settings, at(NOW))
        session.expire_all()
        note = (f"2 visits of this patient start at the same time (ids {first.id}, {second.id}): "
                "check for a duplicate booking")
        for visit in (first, second):
            stored = session.get(Appointment, visit.id)
            assert stored.planning_error == note
            assert not stored.needs_planning  # planned, not refused
            assert {row.rule for row in outbox(session, appointment_id=visit.id)} >= {"checkin_day_after"}
        assert session.scalar(select(Appointment).where(Appointment.external_id == "a3")).planning_error is None
        # The note neither stops planning nor starts it again.
        assert set(plans) == {"a1", "a2", "a3"} and max(plans.values()) <= PLANS_PER_VISIT
        assert still_marked(session) == []

    def test_the_note_goes_once_the_duplicate_is_canceled(self, settings, session):
        first, second = book_same_time(session, 2)
        run_pass(settings, at(NOW))
        book(session, starts_at=SAME_TIME, appointment="a2", status="canceled")
        run_pass(settings, at(NOW))
        session.expire_all()
        assert session.get(Appointment, first.id).planning_error is None
        assert session.get(Appointment, second.id).planning_error is None
        assert [row.status for row in outbox(session, appointment_id=second.id)] == ["canceled"] * len(
            outbox(session, appointment_id=second.id))

    def test_the_note_goes_once_the_duplicate_is_moved(self, settings, session):
        first, second = book_same_time(session, 2)
        run_pass(settings, at(NOW))
        book(session, starts_at="2026-12-11T10:00:00-05:00", appointment="a2")
        run_pass(settings, at(NOW))
        session.expire_all()
        assert session.get(Appointment, first.id).planning_error is None
        assert session.get(Appointment, second.id).planning_error is None

    def test_a_canceled_visit_at_the_same_time_is_no_duplicate(self, settings, session):
        book(session, starts_at=SAME_TIME, appointment="a1")
        book(session, starts_at=SAME_TIME, appointment="a2", status="canceled")
        run_pass(settings, at(NOW))
        session.expire_all()
        assert [a.planning_error for a in session.scalars(select(Appointment))] == [None, None]

    def test_a_visit_that_could_not_be_planned_keeps_its_reason(self, settings, session, monkeypatch):
        first, second = book_same_time(session, 2)
        real = one_visit.moved_notices

        def fails_for_the_second(session_, appointment, *args):
            if appointment.id == second.id:
                raise RuntimeError("a bug that only this visit meets")
            return real(session_, appointment, *args)

        monkeypatch.setattr(one_visit, "moved_notices", fails_for_the_second)
        run_pass(settings, at(NOW))
        run_pass(settings, at("2026-12-07T11:01:00-05:00"))
        session.expire_all()
        broken = session.get(Appointment, second.id)
        assert broken.needs_planning and "RuntimeError" in broken.planning_error  # kept for staff, not overwritten
        assert "duplicate booking" in session.get(Appointment, first.id).planning_error


def test_visits_that_would_mark_each_other_forever_wait_for_the_next_pass(settings, session, plans, monkeypatch, caplog):
    """Whatever the cause (here a bug planted on purpose), two visits that keep marking each other
    are planned a bounded number of times; the pass goes on and sends everyone else's messages."""
    first, second = book_same_time(session, 2)
    other = book(session, starts_at=OTHER_VISIT, patient="p2", appointment="b1", phone="+12025550178",
                 first_name="Sam")
    spread = one_visit.spread_non_urgent

    def marks_its_twin(session_, appointment, *args):
        twin = second.id if appointment.id == first.id else first.id
        planner.mark_for_planning(session_, appointment_ids=[twin])
        return spread(session_, appointment, *args)

    monkeypatch.setattr(one_visit, "spread_non_urgent", marks_its_twin)
    with caplog.at_level("ERROR", logger="reminders.planning.planner"):
        run_pass(settings, at(NOW))
    assert sent(session, appointment_id=other.id) == [("first_induction_72h", "sms")]
    assert plans["a1"] <= planner.MAX_PLANS_PER_PASS + 1 and plans["a2"] <= planner.MAX_PLANS_PER_PASS + 1
    assert still_marked(session) and set(still_marked(session)) <= {"a1", "a2"}  # tried again next pass
    assert "planning did not settle in one pass" in caplog.text
