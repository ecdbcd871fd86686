"""No-shows, unmarked visits and keeping patients in their course, through the planner and sender.

Each test books visits the way intake does, runs passes at chosen instants (`reminders tick
--now`) and reads what went: which text, to whom, when, how many times.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from reminders.followup import FINISHED_INDUCTION, patients_needing_booking
from reminders.intake.records import AppointmentRecord
from reminders.intake.upsert import upsert_appointment
from reminders.models import Appointment
from reminders.pipeline import run_pass
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, patient

settings = both_databases()

NY = ZoneInfo("America/New_York")


def tick(settings, when: str):
    return run_pass(settings, at(when))


def mark(session, visit: Appointment, status: str, when: str):
    """Staff (or a feed) set the visit's status at `when`."""
    session.expire_all()
    visit = session.get(Appointment, visit.id)
    upsert_appointment(session, visit.patient, AppointmentRecord(
        external_id=visit.external_id, kind=visit.kind, starts_at=visit.starts_at, location=visit.location,
        status=status,
    ), at(when))
    session.commit()


def went(session, **where) -> list[tuple[str, str, str]]:
    """(visit, rule, local send time) of every message that went by text, in order (a message's
    second text, tests/test_text_parts.py, is not listed again)."""
    rows = [row for row in outbox(session, channel="sms", **where)
            if row.status in ("sent", "delivered") and row.part == 1]
    return [(row.appointment.external_id, row.rule, row.sent_at.astimezone(NY).strftime("%m-%d %H:%M"))
            for row in sorted(rows, key=lambda row: (row.sent_at, row.id))]


def number_id(session, external_id: str) -> int:
    return session.scalar(select(Appointment.id).where(Appointment.external_id == external_id))


def texts_per_day(session) -> Counter:
    return Counter(row.sent_at.astimezone(NY).date() for row in outbox(session, channel="sms")
                   if row.status in ("sent", "delivered") and row.kind in ("checkin", "nudge"))


def number(session, external_id: str) -> int:
    session.expire_all()
    return session.scalar(select(Appointment).where(Appointment.external_id == external_id)).number_in_course


class TestNoShowKeepsNoPlaceInTheSeries:
    def book_two(self, session):
        first = book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1")
        book(session, starts_at="2026-12-12T10:00:00-05:00", appointment="a2")
        return first

    def test_after_a_missed_first_infusion_the_next_is_1_of_6_with_the_first_visit_preparation(self, settings, session):
        first = self.book_two(session)
        tick(settings, "2026-12-07T10:00:00-05:00")  # a1's 72 h reminder
        tick(settings, "2026-12-09T10:00:00-05:00")  # a1's 24 h reminder
        assert number(session, "a2") == 2
        mark(session, first, "no_show", "2026-12-10T11:30:00-05:00")
        tick(settings, "2026-12-10T11:30:00-05:00")
        assert number(session, "a2") == 1
        for when in ("2026-12-10T11:31:00-05:00", "2026-12-11T10:00:00-05:00", "2026-12-12T09:00:00-05:00",
                     "2026-12-13T10:00:00-05:00"):
            tick(settings, when)
        a2 = [(rule, sent_at) for visit, rule, sent_at in went(session, kind="reminder") if visit == "a2"]
        # The 72 h preparation is overdue when the series is renumbered: it goes at the next pass,
        # after "we missed you" (tests/test_missed_and_moved.py), then the 24 h one.
        assert a2 == [("first_induction_72h", "12-10 11:31"), ("first_induction_24h", "12-11 10:00")]
        assert "your first infusion is Saturday, December 12" in outbox(session, rule="first_induction_24h", part=1)[-1].body
        old = outbox(session, rule="induction_24h")[0]
        assert (old.status, old.status_reason) == ("canceled", "no longer applies: now infusion 1 of 6")
        # After it, "we missed you" naming the next visit (booked, so no "reply R to rebook").
        assert [rule for visit, rule, _ in went(session) if visit == "a1"] == [
            "first_induction_72h", "first_induction_24h", "missed_visit"]

    def test_a_no_show_corrected_to_completed_puts_the_series_back_and_sends_nothing_twice(self, settings, session):
        first = self.book_two(session)
        tick(settings, "2026-12-09T10:00:00-05:00")
        mark(session, first, "no_show", "2026-12-10T11:30:00-05:00")
        tick(settings, "2026-12-10T11:30:00-05:00")  # "we missed you"
        tick(settings, "2026-12-10T11:31:00-05:00")  # a2 gets the first-visit preparation now
        mark(session, first, "completed", "2026-12-10T13:00:00-05:00")
        tick(settings, "2026-12-10T13:00:00-05:00")
        assert number(session, "a2") == 2
        for when in ("2026-12-11T10:00:00-05:00", "2026-12-12T09:00:00-05:00"):
            tick(settings, when)
        a2 = [rule for visit, rule, _ in went(session, kind="reminder") if visit == "a2"]
        assert a2 == ["first_induction_72h", "induction_24h"]  # one reminder a day before, as infusion 2
        assert "infusion 2 of 6" in outbox(session, rule="induction_24h")[0].body
        assert outbox(session, rule="first_induction_24h", appointment_id=outbox(session, rule="induction_24h")[0].appointment_id)[0].status_reason \
            == "no longer applies: now infusion 2 of 6"
        # a1 was attended after all: its check-in goes the next morning.
        assert ("a1", "checkin_day_after", "12-11 10:00") in went(session)

    def test_marked_after_the_24h_reminder_went_the_first_visit_preparation_still_follows(self, settings, session):
        first = self.book_two(session)
        tick(settings, "2026-12-11T10:00:00-05:00")  # a2's "infusion 2 of 6" went
        mark(session, first, "no_show", "2026-12-11T12:00:00-05:00")  # marked a day late
        tick(settings, "2026-12-11T12:00:00-05:00")
        tick(settings, "2026-12-12T09:00:00-05:00")
        a2 = [rule for visit, rule, _ in went(session) if visit == "a2"]
        # "Infusion 2 of 6, as before" went; the full first-visit preparation follows, once.
        assert a2 == ["induction_24h", "first_induction_24h"]
        assert outbox(session, rule="first_induction_72h")[-1].status_reason == "superseded by a later reminder"


class TestMissedVisitText:
    def test_goes_once_the_same_day_when_staff_mark_a_no_show(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00", status="completed", first_name="Jo")
        tick(settings, "2026-12-10T10:30:00-05:00")
        mark(session, visit, "no_show", "2026-12-10T15:00:00-05:00")
        tick(settings, "2026-12-10T15:00:00-05:00")
        mark(session, visit, "completed", "2026-12-10T15:05:00-05:00")
        mark(session, visit, "no_show", "2026-12-10T15:10:00-05:00")
        for when in ("2026-12-10T15:10:00-05:00", "2026-12-11T10:00:00-05:00"):
            tick(settings, when)
        rows = outbox(session, rule="missed_visit")
        assert [(r.status, r.to_address) for r in rows] == [("sent", "+12025550143")]
        assert rows[0].sent_at == at("2026-12-10T15:00:00-05:00")
        assert "Hi Jo, we missed you at The Infusion Clinic" in rows[0].body
        assert "Reply R" in rows[0].body
        assert not outbox(session, rule="checkin_day_after", status="sent")

    def test_sent_naming_the_next_visit_when_one_is_already_booked(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
        book(session, starts_at="2026-12-14T10:00:00-05:00", appointment="a2")
        mark(session, visit, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        [row] = outbox(session, rule="missed_visit")
        assert row.status == "sent" and "Your next visit is Monday, December 14 at 10:00 AM" in row.body

    def test_marked_in_the_evening_waits_for_the_morning(self, settings, session):
        visit = book(session, starts_at="2026-12-10T17:00:00-05:00")
        mark(session, visit, "no_show", "2026-12-10T21:30:00-05:00")
        assert tick(settings, "2026-12-10T21:30:00-05:00")["sent"] == 0
        tick(settings, "2026-12-11T08:00:00-05:00")
        assert went(session) == [("a1", "missed_visit", "12-11 08:00")]

    def test_not_sent_when_marked_more_than_a_day_late(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00", status="completed")
        mark(session, visit, "no_show", "2026-12-11T11:30:00-05:00")
        tick(settings, "2026-12-11T11:30:00-05:00")
        assert not outbox(session, rule="missed_visit")

    def test_not_sent_to_an_opted_out_number(self, settings, session):
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
        person = patient(session)
        person.sms_opted_out = True
        session.commit()
        mark(session, visit, "no_show", "2026-12-10T12:00:00-05:00")
        tick(settings, "2026-12-10T12:00:00-05:00")
        assert [(r.status, r.status_reason) for r in outbox(session, rule="missed_visit")] == [
            ("skipped", "patient opted out of texts")]


class TestUnmarkedVisits:
    def test_by_default_an_unmarked_visit_counts_as_attended_and_gets_its_checkin(self, settings, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00")
        tick(settings, "2026-12-11T10:00:00-05:00")
        assert went(session) == [("a1", "checkin_day_after", "12-11 10:00")]

    def test_the_checkin_waits_the_clinics_hours_after_the_end_of_an_unmarked_visit(self, configure, session):
        settings = configure(unmarked_visits_count_as_attended_after_hours="30")
        book(session, starts_at="2026-12-10T10:00:00-05:00")  # ends 11:00; counts as attended 17:00 next day
        assert tick(settings, "2026-12-11T16:59:00-05:00")["sent"] == 0
        tick(settings, "2026-12-11T17:00:00-05:00")
        assert went(session) == [("a1", "checkin_day_after", "12-11 17:00")]

    def test_never_counted_the_checkin_waits_for_staff_to_mark_it(self, configure, session):
        settings = configure(unmarked_visits_count_as_attended_after_hours="")
        visit = book(session, starts_at="2026-12-10T10:00:00-05:00")
        tick(settings, "2026-12-11T10:00:00-05:00")
        assert not outbox(session, rule="checkin_day_after")
        mark(session, visit, "completed", "2026-12-11T11:00:00-05:00")
        tick(settings, "2026-12-11T11:00:00-05:00")
        assert went(session) == [("a1", "checkin_day_after", "12-11 11:00")]


class TestRetention:
    def test_induction_not_booked_nudge_after_48_hours_and_staff_see_the_patient_that_day(self, settings, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00", status="completed")
        listed = patients_needing_booking(session, settings, at("2026-12-10T12:00:00-05:00"))
        assert [(row.reason, row.overdue) for row in listed] == [("Infusion 2 of 6 is not booked", False)]
        tick(settings, "2026-12-11T10:00:00-05:00")  # the check-in
        assert tick(settings, "2026-12-12T09:59:00-05:00")["sent"] == 0
        tick(settings, "2026-12-12T10:00:00-05:00")
        assert went(session)[-1] == ("a1", "rebook_nudge", "12-12 10:00")
        assert "infusion (2 of 6) is not booked" in outbox(session, rule="rebook_nudge")[0].body
        assert patients_needing_booking(session, settings, at("2026-12-12T10:00:00-05:00"))[0].overdue

    def test_the_older_days_setting_still_works(self, configure, session):
        settings = configure(induction_rebook_days="4")
        book(session, starts_at="2026-12-10T10:00:00-05:00", status="completed")
        tick(settings, "2026-12-11T10:00:00-05:00")  # the check-in
        assert tick(settings, "2026-12-13T10:00:00-05:00")["sent"] == 0
        tick(settings, "2026-12-14T10:00:00-05:00")
        assert went(session)[-1] == ("a1", "rebook_nudge", "12-14 10:00")

    def test_after_infusion_6_of_6_a_plan_your_maintenance_text_the_day_after_the_checkin(self, settings, session):
        for n in range(6):
            book(session, starts_at=at("2026-12-01T10:00:00-05:00") + timedelta(days=2 * n), appointment=f"a{n + 1}",
                 status="completed")
        for when in ("2026-12-12T10:00:00-05:00", "2026-12-13T10:00:00-05:00", "2026-12-14T10:00:00-05:00"):
            tick(settings, when)
        assert [(rule, sent_at) for visit, rule, sent_at in went(session) if visit == "a6"] == [
            ("checkin_day_after", "12-12 10:00"), ("plan_maintenance", "12-13 10:00")]
        assert "finishing your series of 6 infusions" in outbox(session, rule="plan_maintenance")[0].body
        assert not outbox(session, rule="rebook_nudge", appointment_id=outbox(session, rule="plan_maintenance")[0].appointment_id)
        listed = patients_needing_booking(session, settings, at("2026-12-11T12:00:00-05:00"))
        assert [row.reason for row in listed] == [FINISHED_INDUCTION]

    def test_no_plan_your_maintenance_text_when_maintenance_is_already_booked(self, settings, session):
        for n in range(6):
            book(session, starts_at=at("2026-12-01T10:00:00-05:00") + timedelta(days=2 * n), appointment=f"a{n + 1}",
                 status="completed")
        book(session, starts_at="2027-01-05T10:00:00-05:00", appointment="m1", kind="maintenance")
        tick(settings, "2026-12-13T10:00:00-05:00")
        assert [r.status_reason for r in outbox(session, rule="plan_maintenance")] == ["next visit already booked"]
        assert patients_needing_booking(session, settings, at("2026-12-13T10:00:00-05:00")) == []

    def test_maintenance_nudge_goes_7_days_before_the_interval_ends(self, settings, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00", kind="maintenance", status="completed")
        for day in range(1, 44):
            run_pass(settings, at("2026-12-10T10:00:00-05:00") + timedelta(days=day))
        sent = went(session)
        assert ("a1", "rebook_nudge", "01-14 10:00") in sent  # the interval of 42 days ends on 21 January
        # Week 5's check-in fell on the nudge's day: it moved to the next day.
        assert ("a1", "checkin_weekly_5", "01-15 10:00") in sent
        assert max(texts_per_day(session).values()) == 1
        bodies = [r.body for r in outbox(session, status="sent") if r.rule.startswith("checkin_weekly")]
        # Three wordings, in turn; the sixth check-in gives way to TEXTS_PER_VISIT (7 with the
        # day-after check-in and the nudge: reminders.timing.budget).
        assert len(bodies) == 5 and len(set(bodies)) == 3


class TestOneNonUrgentTextADay:
    def test_the_sixth_weekly_checkin_and_the_booking_nudge_on_the_same_morning(self, configure, session):
        settings = configure(maintenance_nudge_days_before="0")  # the nudge on the due day, as it once was
        book(session, starts_at="2026-12-10T10:00:00-05:00", kind="maintenance", status="completed")
        for day in range(35, 45):
            run_pass(settings, at("2026-12-10T10:00:00-05:00") + timedelta(days=day))
        sent = [(rule, sent_at) for _, rule, sent_at in went(session)]
        assert ("rebook_nudge", "01-21 10:00") in sent
        assert ("checkin_weekly_6", "01-22 10:00") in sent
        assert max(texts_per_day(session).values()) == 1

    def test_a_checkin_takes_the_day_from_another_visits_nudge_which_moves(self, settings, session):
        # Infusion 1 on Thursday; infusion 2 booked for Friday afternoon, after the nudge was planned.
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1", status="completed")
        tick(settings, "2026-12-10T12:00:00-05:00")
        nudge = outbox(session, rule="rebook_nudge")[0]
        assert nudge.due_at == at("2026-12-12T10:00:00-05:00")
        book(session, starts_at="2026-12-11T15:00:00-05:00", appointment="a2")
        tick(settings, "2026-12-11T12:00:00-05:00")
        tick(settings, "2026-12-11T12:01:00-05:00")  # the moved nudge's visit is planned again
        # Saturday holds a2's check-in, Sunday a2's own nudge (planned first, same rank): Monday.
        assert outbox(session, rule="rebook_nudge")[0].due_at == at("2026-12-14T10:00:00-05:00")
        assert outbox(session, rule="checkin_day_after", appointment_id=nudge.appointment_id)[0].due_at \
            == at("2026-12-11T10:00:00-05:00")
        a2_checkin = [r for r in outbox(session, rule="checkin_day_after") if r.appointment_id != nudge.appointment_id][0]
        assert a2_checkin.due_at == at("2026-12-12T10:00:00-05:00")

    def test_a_visit_that_moves_another_planned_earlier_in_the_same_pass_is_planned_again_once(
            self, settings, session, monkeypatch):
        # Both visits are new in the same pass: a1 plans its nudge for Saturday, then a2 takes
        # Saturday for its check-in and marks a1 again, which must be planned again and cleared
        # (a visit left marked would be selected again and again: a pass that never ends).
        from reminders.planning import planner

        plans = Counter()
        plan = planner.plan_appointment

        def counted(session, appointment, rs, now):
            plans[appointment.external_id] += 1
            assert plans[appointment.external_id] <= 5, "the same visit planned over and over in one pass"
            return plan(session, appointment, rs, now)

        monkeypatch.setattr(planner, "plan_appointment", counted)
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1", status="completed")
        book(session, starts_at="2026-12-11T15:00:00-05:00", appointment="a2")
        tick(settings, "2026-12-10T12:00:00-05:00")
        assert plans == {"a1": 2, "a2": 1}
        session.expire_all()
        assert not session.scalars(select(Appointment).where(Appointment.needs_planning)).all()
        # Saturday holds a2's check-in, Sunday a2's own nudge: a1's nudge goes on Monday.
        assert outbox(session, rule="rebook_nudge", appointment_id=number_id(session, "a1"))[0].due_at \
            == at("2026-12-14T10:00:00-05:00")

    def test_reminders_are_never_moved(self, settings, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1", status="completed")
        book(session, starts_at="2026-12-12T10:00:00-05:00", appointment="a2")
        tick(settings, "2026-12-11T10:00:00-05:00")
        assert sorted(rule for _, rule, _ in went(session)) == ["checkin_day_after", "induction_24h"]


class TestEveryWayOfMarkingANoShow:
    CSV = ("external_id,patient_external_id,first_name,last_name,phone,email,timezone,preferred_channel,kind,"
           "starts_at,duration_minutes,location,status")

    def rows(self, first_status: str) -> str:
        return "\n".join([
            self.CSV,
            f"a1,p1,Maya,Lopez,+12025550143,,America/New_York,sms,induction,2026-12-10T10:00:00-05:00,50,Suite 200,{first_status}",
            "a2,p1,Maya,Lopez,+12025550143,,America/New_York,sms,induction,2026-12-12T10:00:00-05:00,50,Suite 200,",
        ]) + "\n"

    def test_a_csv_status_renumbers_the_series(self, settings, session, tmp_path):
        from click.testing import CliRunner

        from reminders.cli import main

        path = tmp_path / "visits.csv"
        for status, expected in (("scheduled", 2), ("no_show", 1), ("completed", 2)):
            path.write_text(self.rows(status), encoding="utf-8")
            assert CliRunner().invoke(main, ["import", str(path)]).exit_code == 0
            assert number(session, "a2") == expected, status

    def test_the_api_renumbers_the_series(self, client, api_headers, session):
        book(session, starts_at="2026-12-10T10:00:00-05:00", appointment="a1")
        book(session, starts_at="2026-12-12T10:00:00-05:00", appointment="a2")
        assert client.patch("/api/v1/appointments/a1", json={"status": "no_show"}, headers=api_headers).status_code == 200
        assert client.get("/api/v1/appointments/a2", headers=api_headers).json["number_in_course"] == 1
        client.patch("/api/v1/appointments/a1", json={"status": "completed"}, headers=api_headers)
        assert client.get("/api/v1/appointments/a2", headers=api_headers).json["number_in_course"] == 2
