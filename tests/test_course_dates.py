"""The dates of an induction course from a pattern (reminders.timing.course_dates)."""
from __future__ import annotations

from datetime import date, time, timedelta, timezone

import pytest

from reminders.timing.course_dates import (
    CourseDatesError, CoursePlan, course_days, course_starts, guess_pattern, next_day,
)

NY = "America/New_York"


def days(first: date, pattern: str, length: int = 6, closed=("sat", "sun")) -> list[str]:
    plan = CoursePlan(first, time(9), NY, pattern, length, frozenset(closed))
    return [f"{d:%a} {d.isoformat()}" for d in course_days(plan)]


def test_mon_wed_fri_runs_over_the_weekend():
    assert days(date(2026, 3, 2), "mon-wed-fri") == [
        "Mon 2026-03-02", "Wed 2026-03-04", "Fri 2026-03-06", "Mon 2026-03-09", "Wed 2026-03-11", "Fri 2026-03-13"]


def test_mon_wed_fri_from_a_wednesday():
    assert days(date(2026, 3, 4), "mon-wed-fri", 3) == ["Wed 2026-03-04", "Fri 2026-03-06", "Mon 2026-03-09"]


def test_every_two_days_skips_closed_days_and_goes_on_from_the_moved_visit():
    # Thu 5, Sat 7 -> Mon 9, Wed 11, Fri 13, Sun 15 -> Mon 16
    assert days(date(2026, 3, 5), "every-2-days") == [
        "Thu 2026-03-05", "Mon 2026-03-09", "Wed 2026-03-11", "Fri 2026-03-13", "Mon 2026-03-16", "Wed 2026-03-18"]


def test_every_three_days():
    assert days(date(2026, 3, 2), "every-3-days", 4) == [
        "Mon 2026-03-02", "Thu 2026-03-05", "Mon 2026-03-09", "Thu 2026-03-12"]


def test_closed_days_are_a_setting():
    assert days(date(2026, 3, 5), "every-2-days", 3, closed=("sun",)) == [
        "Thu 2026-03-05", "Sat 2026-03-07", "Mon 2026-03-09"]
    assert days(date(2026, 3, 2), "mon-wed-fri", 3, closed=("sat", "sun", "wed")) == [
        "Mon 2026-03-02", "Fri 2026-03-06", "Mon 2026-03-09"]


def test_a_first_date_the_clinic_is_closed_or_the_pattern_leaves_out_is_refused():
    with pytest.raises(CourseDatesError, match="Saturday, when the clinic is closed"):
        days(date(2026, 3, 7), "every-2-days")
    with pytest.raises(CourseDatesError, match="has no Tuesday"):
        days(date(2026, 3, 3), "mon-wed-fri")
    with pytest.raises(CourseDatesError, match="between 1 and 12"):
        days(date(2026, 3, 2), "mon-wed-fri", 13)
    with pytest.raises(CourseDatesError, match="closed on every day"):
        days(date(2026, 3, 2), "mon-wed-fri", closed=("mon", "wed", "fri"))


def test_the_wall_clock_time_holds_across_the_spring_change():
    # US clocks go forward on Sun 8 Mar 2026: 9:00 is 14:00 UTC before, 13:00 UTC after.
    starts = course_starts(CoursePlan(date(2026, 3, 4), time(9), NY, "mon-wed-fri", 3))
    assert [s.strftime("%a %H:%M") for s in starts] == ["Wed 09:00", "Fri 09:00", "Mon 09:00"]
    assert [s.astimezone(timezone.utc).hour for s in starts] == [14, 14, 13]


def test_the_wall_clock_time_holds_across_the_autumn_change():
    # Clocks go back on Sun 1 Nov 2026: 9:00 is 13:00 UTC before, 14:00 UTC after.
    starts = course_starts(CoursePlan(date(2026, 10, 30), time(9), NY, "every-3-days", 2, frozenset()))
    assert [s.date().isoformat() for s in starts] == ["2026-10-30", "2026-11-02"]
    assert [s.astimezone(timezone.utc).hour for s in starts] == [13, 14]
    assert starts[1].astimezone(timezone.utc) - starts[0].astimezone(timezone.utc) == timedelta(days=3, hours=1)


def test_a_time_the_clocks_skip_is_refused():
    with pytest.raises(CourseDatesError, match="does not exist"):
        course_starts(CoursePlan(date(2026, 3, 6), time(2, 30), NY, "every-2-days", 3, frozenset()))


def test_the_next_day_of_a_running_course():
    assert next_day(date(2026, 3, 6), "mon-wed-fri", ["sat", "sun"]) == date(2026, 3, 9)
    assert next_day(date(2026, 3, 5), "every-3-days", ["sat", "sun"]) == date(2026, 3, 9)
    assert guess_pattern([date(2026, 3, 2), date(2026, 3, 4), date(2026, 3, 6)]) == "mon-wed-fri"
    assert guess_pattern([date(2026, 3, 3), date(2026, 3, 6), date(2026, 3, 9)]) == "every-3-days"
    assert guess_pattern([date(2026, 3, 3), date(2026, 3, 5)]) == "every-2-days"
