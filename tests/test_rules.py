"""The clinic's default rules and quiet hours, as pure functions: no database, no clock."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from reminders.timing.quiet_hours import QuietHours
from reminders.timing.rules import RuleSettings, Visit, default_rules, plan_visit
from reminders.timing.send_checks import SendFacts, reason_not_to_send
from tests.conftest import at

RS = RuleSettings()
NY = "America/New_York"


def plan(kind, number, starts_at, zone=NY, reachable=("sms", "email")):
    visit = Visit(kind, number, 6, at(starts_at), zone)
    return {(m.rule.name, m.channel): m for m in plan_visit(visit, set(reachable), default_rules(RS), RS)}


def reminders_of(planned):
    return {key: m for key, m in planned.items() if m.rule.kind == "reminder"}


def test_first_induction_gets_full_instructions_72h_by_email_and_sms_then_24h_by_sms():
    planned = reminders_of(plan("induction", 1, "2026-12-10T10:00:00-05:00"))
    assert set(planned) == {("first_induction_72h", "email"), ("first_induction_72h", "sms"), ("first_induction_24h", "sms")}
    assert planned["first_induction_72h", "sms"].due_at == at("2026-12-07T10:00:00-05:00")
    assert planned["first_induction_24h", "sms"].due_at == at("2026-12-09T10:00:00-05:00")


def test_later_induction_gets_one_24h_reminder():
    planned = reminders_of(plan("induction", 3, "2026-12-10T14:30:00-05:00"))
    assert set(planned) == {("induction_24h", "sms")}
    assert planned["induction_24h", "sms"].due_at == at("2026-12-09T14:30:00-05:00")


def test_maintenance_gets_7_days_and_24h():
    planned = reminders_of(plan("maintenance", 1, "2026-12-10T11:00:00-05:00", reachable=("sms",)))
    assert set(planned) == {("maintenance_7d", "sms"), ("maintenance_24h", "sms")}
    assert planned["maintenance_7d", "sms"].due_at == at("2026-12-03T11:00:00-05:00")


def test_email_only_patient_gets_sms_rules_by_email():
    planned = reminders_of(plan("induction", 2, "2026-12-10T10:00:00-05:00", reachable=("email",)))
    assert set(planned) == {("induction_24h", "email")}


def test_checkins_go_by_text_the_day_after_at_ten_local_and_by_email_only_without_a_text_channel():
    planned = plan("induction", 2, "2026-12-10T16:00:00-05:00")
    assert planned["checkin_day_after", "sms"].due_at == at("2026-12-11T10:00:00-05:00")
    assert ("checkin_day_after", "email") not in planned
    by_email = plan("induction", 2, "2026-12-10T16:00:00-05:00", reachable=("email",))
    assert [key for key in by_email if key[0] == "checkin_day_after"] == [("checkin_day_after", "email")]
    assert by_email["checkin_day_after", "email"].due_at == at("2026-12-11T10:00:00-05:00")


def test_maintenance_has_weekly_checkins_until_the_interval_and_a_rebooking_nudge_a_week_before_it_ends():
    planned = plan("maintenance", 1, "2026-12-10T10:00:00-05:00", reachable=("sms",))
    weekly = sorted(m.due_at for (name, _), m in planned.items() if name.startswith("checkin_weekly"))
    assert len(weekly) == RS.maintenance_interval_days // 7
    assert weekly[0] == at("2026-12-17T10:00:00-05:00")
    # The 42-day interval ends on 21 January; the nudge goes 7 days before (MAINTENANCE_NUDGE_DAYS_BEFORE).
    assert planned["rebook_nudge", "sms"].due_at == at("2027-01-14T10:00:00-05:00")


def test_no_rebooking_nudge_after_the_last_induction_infusion():
    assert ("rebook_nudge", "sms") in plan("induction", 5, "2026-12-10T10:00:00-05:00")
    assert ("rebook_nudge", "sms") not in plan("induction", 6, "2026-12-10T10:00:00-05:00")


@pytest.mark.parametrize("local, quiet", [
    ("2026-12-10T20:59:00-05:00", False), ("2026-12-10T21:00:00-05:00", True), ("2026-12-11T03:00:00-05:00", True),
    ("2026-12-11T07:59:00-05:00", True), ("2026-12-11T08:00:00-05:00", False), ("2026-12-11T12:00:00-05:00", False),
])
def test_quiet_hours_are_21_to_8_local(local, quiet):
    assert QuietHours().contains(at(local), NY) is quiet


def test_a_reminder_due_in_quiet_hours_waits_until_eight_in_the_patients_zone():
    planned = plan("induction", 2, "2026-12-10T22:30:00-08:00", zone="America/Los_Angeles")
    assert planned["induction_24h", "sms"].planned_for == at("2026-12-09T22:30:00-08:00")
    assert planned["induction_24h", "sms"].due_at == at("2026-12-10T08:00:00-08:00")


def test_an_early_visit_is_reminded_the_evening_before_rather_than_too_late():
    # 24 h before a 07:30 visit is 07:30, in quiet hours; 08:00 that day is still fine.
    planned = plan("induction", 2, "2026-12-10T07:30:00-05:00")
    assert planned["induction_24h", "sms"].due_at == at("2026-12-09T08:00:00-05:00")
    # A custom 6 h lead for a 07:30 visit lands at 01:30; the morning would be too late.
    from reminders.timing.rules import REMINDER, Rule, due_time
    rule = Rule("short", REMINDER, "x", frozenset({"sms"}), lambda v, r: True, lambda v, r: v.starts_at - timedelta(hours=6))
    visit = Visit("induction", 2, 6, at("2026-12-10T07:30:00-05:00"), NY)
    assert due_time(rule, rule.time_for(visit, RS), visit, RS.quiet) == at("2026-12-09T20:59:00-05:00")


class TestDaylightSavingWeek:
    """US clocks go back on 2026-11-01 and forward on 2026-03-08."""

    def test_checkin_stays_at_ten_local_across_fall_back(self):
        planned = plan("induction", 2, "2026-10-31T15:00:00-04:00")
        assert planned["checkin_day_after", "sms"].due_at == at("2026-11-01T10:00:00-05:00")

    def test_24h_reminder_is_24_real_hours_across_spring_forward(self):
        planned = plan("induction", 2, "2026-03-08T12:00:00-04:00")
        assert planned["induction_24h", "sms"].due_at == at("2026-03-07T11:00:00-05:00")

    def test_quiet_hours_end_at_eight_local_on_the_morning_clocks_change(self):
        quiet = QuietHours()
        night_before_spring = at("2026-03-08T01:30:00-05:00")
        assert quiet.next_allowed(night_before_spring, NY) == at("2026-03-08T08:00:00-04:00")
        night_before_fall = at("2026-11-01T01:30:00-04:00")
        assert quiet.next_allowed(night_before_fall, NY) == at("2026-11-01T08:00:00-05:00")

    def test_a_full_week_of_evening_reminders_never_lands_in_quiet_hours(self):
        quiet = QuietHours()
        for day in range(7):
            visit_start = at("2026-10-29T21:30:00-04:00") + timedelta(days=day)
            for message in plan("induction", 2, visit_start.isoformat()).values():
                assert not quiet.contains(message.due_at, NY), message

    def test_custom_quiet_hours_that_do_not_span_midnight(self):
        quiet = QuietHours(time(12, 0), time(13, 0))
        assert quiet.contains(at("2026-12-10T12:30:00-05:00"), NY)
        assert quiet.next_allowed(at("2026-12-10T12:30:00-05:00"), NY) == at("2026-12-10T13:00:00-05:00")


NOW = datetime(2026, 12, 10, 15, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("kind, rule, facts, reason", [
    ("reminder", "induction_24h", SendFacts("canceled", NOW + timedelta(hours=20), None), "visit canceled"),
    ("reminder", "induction_24h", SendFacts("scheduled", NOW - timedelta(minutes=1), None), "visit already started"),
    ("reminder", "induction_24h", SendFacts("scheduled", NOW + timedelta(hours=5), None, superseded=True), "superseded by a later reminder"),
    ("reminder", "induction_24h", SendFacts("confirmed", NOW + timedelta(hours=5), None), None),
    ("checkin", "checkin_day_after", SendFacts("no_show", NOW - timedelta(days=1), None), "visit not attended"),
    ("checkin", "checkin_day_after", SendFacts("canceled", NOW - timedelta(days=1), None), "visit canceled"),
    ("checkin", "checkin_day_after", SendFacts("completed", NOW - timedelta(days=1), None), None),
    ("checkin", "checkin_weekly_2", SendFacts("completed", NOW - timedelta(days=14), NOW + timedelta(days=1)), "next visit takes over"),
    ("checkin", "checkin_weekly_2", SendFacts("completed", NOW - timedelta(days=14), NOW + timedelta(days=9)), None),
    ("nudge", "rebook_nudge", SendFacts("completed", NOW - timedelta(days=4), NOW + timedelta(days=9)), "next visit already booked"),
    ("nudge", "rebook_nudge", SendFacts("no_show", NOW - timedelta(days=4), None), None),
    ("checkin", "checkin_day_after", SendFacts("completed", NOW - timedelta(days=3), None, overdue_by=timedelta(days=2)), "too late to be useful"),
    ("reminder", "induction_24h", SendFacts("scheduled", NOW + timedelta(hours=1), None, overdue_by=timedelta(days=2)), None),
])
def test_reasons_not_to_send(kind, rule, facts, reason):
    assert reason_not_to_send(kind, rule, facts, NOW) == reason


# --- No-shows, unmarked visits, retention, one non-urgent text a day -----------------------------

from datetime import date  # noqa: E402

from reminders.timing.rules import counts_as_attended_at, is_unmarked, weekly_checkin_template  # noqa: E402
from reminders.timing.spreading import is_non_urgent, moved_to_day, spread_day, spread_rank  # noqa: E402


def plan_with(rs, kind, number, starts_at, status="scheduled", reachable=("sms",)):
    visit = Visit(kind, number, 6, at(starts_at), NY, status)
    return {(m.rule.name, m.channel): m for m in plan_visit(visit, set(reachable), default_rules(rs), rs)}


def test_a_missed_visit_gets_only_we_missed_you_and_the_booking_nudge():
    planned = plan_with(RS, "induction", 0, "2026-12-10T10:00:00-05:00", status="no_show")
    assert {name for name, _ in planned if not name.startswith(("first_", "induction_"))} == {"missed_visit", "rebook_nudge"}
    assert planned["missed_visit", "sms"].planned_for == at("2026-12-10T11:00:00-05:00")  # from the end of the visit


def test_a_held_visit_gets_no_we_missed_you():
    assert ("missed_visit", "sms") not in plan_with(RS, "induction", 2, "2026-12-10T10:00:00-05:00", status="completed")


def test_induction_nudge_48_hours_after_the_infusion():
    planned = plan_with(RS, "induction", 2, "2026-12-10T14:00:00-05:00", status="completed")
    assert planned["rebook_nudge", "sms"].due_at == at("2026-12-12T14:00:00-05:00")


def test_the_last_induction_infusion_gets_plan_your_maintenance_not_a_booking_nudge():
    planned = plan_with(RS, "induction", 6, "2026-12-10T10:00:00-05:00", status="completed")
    assert ("rebook_nudge", "sms") not in planned
    # Wanted the day after, at the check-in hour: the planner moves it off the check-in's day.
    assert planned["plan_maintenance", "sms"].planned_for == at("2026-12-11T10:00:00-05:00")
    assert ("plan_maintenance", "sms") not in plan_with(RS, "induction", 5, "2026-12-10T10:00:00-05:00")


def test_maintenance_nudge_days_before_is_a_setting():
    rs = RuleSettings(maintenance_nudge_days_before=0)
    planned = plan_with(rs, "maintenance", 1, "2026-12-10T10:00:00-05:00", status="completed")
    assert planned["rebook_nudge", "sms"].due_at == at("2027-01-21T10:00:00-05:00")


class TestUnmarkedVisits:
    END = at("2026-12-10T11:00:00-05:00")

    def test_counted_as_attended_two_hours_after_the_end_by_default(self):
        assert counts_as_attended_at("scheduled", self.END, RS) == self.END + timedelta(hours=2)
        assert counts_as_attended_at("confirmed", self.END, RS) == self.END + timedelta(hours=2)
        assert counts_as_attended_at("completed", self.END, RS) == self.END

    def test_never_counted_when_the_clinic_waits_for_staff(self):
        rs = RuleSettings(unmarked_counts_as_attended_after=None)
        assert counts_as_attended_at("scheduled", self.END, rs) is None
        assert counts_as_attended_at("completed", self.END, rs) == self.END
        assert counts_as_attended_at("no_show", self.END, RS) is None

    def test_the_checkin_of_an_unmarked_visit_is_not_planned_before_it_counts(self):
        rs = RuleSettings(unmarked_counts_as_attended_after=timedelta(hours=30))
        planned = plan_with(rs, "induction", 2, "2026-12-10T10:00:00-05:00")
        assert planned["checkin_day_after", "sms"].due_at == at("2026-12-11T17:00:00-05:00")
        never = plan_with(RuleSettings(unmarked_counts_as_attended_after=None), "induction", 2, "2026-12-10T10:00:00-05:00")
        assert ("checkin_day_after", "sms") not in never
        assert ("rebook_nudge", "sms") in never  # "not booked" does not depend on attendance

    def test_unmarked_from_the_end_of_the_visit(self):
        assert not is_unmarked("scheduled", self.END, self.END - timedelta(minutes=1))
        assert is_unmarked("confirmed", self.END, self.END)
        assert not is_unmarked("completed", self.END, self.END + timedelta(days=1))


@pytest.mark.parametrize("kind, rule, facts, reason", [
    ("nudge", "missed_visit", SendFacts("no_show", NOW - timedelta(hours=3), None), None),
    # A later visit booked: the text names it (tests/test_missed_and_moved.py).
    ("nudge", "missed_visit", SendFacts("no_show", NOW - timedelta(hours=3), NOW + timedelta(days=2)), None),
    ("nudge", "missed_visit", SendFacts("completed", NOW - timedelta(hours=3), None), "visit no longer marked missed"),
    ("nudge", "missed_visit", SendFacts("canceled", NOW - timedelta(hours=3), None), "visit canceled"),
    ("nudge", "plan_maintenance", SendFacts("no_show", NOW - timedelta(days=1), None), "visit not attended"),
    ("nudge", "plan_maintenance", SendFacts("completed", NOW - timedelta(days=2), NOW + timedelta(days=30)), "next visit already booked"),
    ("nudge", "plan_maintenance", SendFacts("completed", NOW - timedelta(days=2), None), None),
])
def test_reasons_not_to_send_after_a_missed_or_last_visit(kind, rule, facts, reason):
    assert reason_not_to_send(kind, rule, facts, NOW) == reason


class TestOneNonUrgentTextADay:
    def test_the_first_free_day(self):
        assert spread_day(date(2027, 1, 21), set()) == date(2027, 1, 21)
        assert spread_day(date(2027, 1, 21), {date(2027, 1, 21), date(2027, 1, 22)}) == date(2027, 1, 23)

    def test_a_text_is_not_dropped_when_no_day_is_free(self):
        week = {date(2027, 1, 21) + timedelta(days=n) for n in range(8)}
        assert spread_day(date(2027, 1, 21), week) == date(2027, 1, 21)

    def test_the_day_after_checkin_keeps_its_day_and_a_weekly_checkin_yields(self):
        order = ["checkin_day_after", "rebook_nudge", "plan_maintenance", "checkin_weekly_6", "caring_contact_2"]
        assert sorted(order, key=spread_rank) == order

    def test_we_missed_you_is_never_moved_to_another_day(self):
        assert not is_non_urgent("nudge", "sms", "missed_visit")
        assert is_non_urgent("nudge", "sms", "rebook_nudge") and is_non_urgent("checkin", "sms", "checkin_day_after")

    def test_moved_keeps_the_local_clock_time_across_a_clock_change(self):
        assert moved_to_day(at("2026-10-31T10:00:00-04:00"), date(2026, 11, 1), NY) == at("2026-11-01T10:00:00-05:00")


def test_weekly_checkins_take_turns_with_three_wordings():
    names = [weekly_checkin_template(week) for week in range(1, 7)]
    assert names == ["checkin_weekly", "checkin_weekly_b", "checkin_weekly_c"] * 2
    rules = {rule.name: rule.template for rule in default_rules(RS)}
    assert rules["checkin_weekly_2"] == "checkin_weekly_b"
