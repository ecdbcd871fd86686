"""Preparation as clock times: pure arithmetic, in the patient's zone, through DST, in both languages."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from reminders.config import Settings
from reminders.preparation import Preparation, clock, date_words, visit_times

NY = "America/New_York"


def local(text: str, zone: str = NY) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def times(start: str, zone: str = NY, language: str = "en", duration: int = 60, **prep) -> dict:
    return visit_times(local(start, zone), duration, zone, Preparation(**prep), language)


def test_a_morning_visit_gives_the_times_a_patient_reads():
    assert times("2026-03-03T09:30") == {
        "eat_until": "3:30 AM", "clear_liquids_until": "7:30 AM", "arrive_at": "9:15 AM",
        "done_around": "11:15 AM", "recovery_minutes": 45,
    }


def test_an_early_visit_names_the_night_before():
    assert times("2026-03-03T07:00", solids_hours=8)["eat_until"] == "11:00 PM the night before"
    assert times("2026-03-03T07:00", solids_hours=8, language="es")["eat_until"] == "las 11:00 p. m. de la noche anterior"
    assert times("2026-03-03T06:00")["eat_until"] == "midnight"
    assert times("2026-03-03T18:00")["eat_until"] == "noon"
    assert times("2026-03-03T09:00", solids_hours=24)["eat_until"] == "9:00 AM the day before"


def test_fasting_counts_real_hours_across_the_spring_forward_night():
    # 8 March 2026: clocks go from 2:00 to 3:00 AM. Six real hours before 7:00 AM EDT is midnight EST.
    assert times("2026-03-08T07:00")["eat_until"] == "midnight"
    assert times("2026-03-08T09:30")["eat_until"] == "3:30 AM"


def test_fasting_counts_real_hours_across_the_fall_back_night():
    # 1 November 2026: 2:00 AM EDT becomes 1:00 AM EST. Six real hours before 6:30 AM EST is 1:30 AM EDT.
    assert times("2026-11-01T06:30")["eat_until"] == "1:30 AM"
    assert times("2026-11-01T06:30")["clear_liquids_until"] == "4:30 AM"


def test_times_are_in_the_patients_zone():
    start = datetime(2026, 3, 3, 15, 30, tzinfo=ZoneInfo("UTC"))
    assert visit_times(start, 60, "America/Los_Angeles", Preparation())["arrive_at"] == "7:15 AM"
    assert visit_times(start, 60, "America/New_York", Preparation())["arrive_at"] == "10:15 AM"


def test_done_around_adds_recovery_to_the_booked_length_and_rounds_up_to_a_quarter_hour():
    assert times("2026-03-03T09:30", duration=40, recovery_minutes=30)["done_around"] == "10:45 AM"
    assert times("2026-03-03T09:30", duration=60, recovery_minutes=0)["done_around"] == "10:30 AM"
    assert times("2026-03-03T11:10", duration=50, recovery_minutes=0)["done_around"] == "noon"


def test_a_setting_of_zero_leaves_the_line_out():
    got = times("2026-03-03T09:30", solids_hours=0, clear_liquids_hours=0)
    assert got["eat_until"] is None and got["clear_liquids_until"] is None


def test_half_hours_are_allowed():
    assert times("2026-03-03T09:30", solids_hours=6.5)["eat_until"] == "3:00 AM"


@pytest.mark.parametrize("when, en, es", [
    ("2026-03-03T09:30", "9:30 AM", "las 9:30 a. m."),
    ("2026-03-03T13:05", "1:05 PM", "la 1:05 p. m."),
    ("2026-03-03T00:00", "midnight", "la medianoche"),
    ("2026-03-03T12:00", "noon", "las 12:00 p. m."),
    ("2026-03-03T23:45", "11:45 PM", "las 11:45 p. m."),
])
def test_clock_words(when, en, es):
    assert (clock(local(when)), clock(local(when), "es")) == (en, es)


def test_dates_do_not_depend_on_the_system_locale():
    assert date_words(local("2026-09-30T07:30")) == "Wednesday, September 30"
    assert date_words(local("2026-09-30T07:30"), "es") == "miércoles 30 de septiembre"
    assert date_words(local("2026-03-08T07:30"), "fr") == "Sunday, March 8"  # no table: English


def test_clear_liquids_longer_than_food_is_refused_at_start():
    with pytest.raises(ValidationError, match="FASTING_CLEAR_LIQUIDS_HOURS"):
        Settings(fasting_solids_hours=2, fasting_clear_liquids_hours=6)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTING_SOLIDS_HOURS", "8")
    monkeypatch.setenv("RIDESHARE_ALLOWED", "true")
    monkeypatch.setenv("ARRIVE_MINUTES_BEFORE", "30")
    prep = Preparation.from_settings(Settings())
    assert (prep.solids_hours, prep.rideshare_allowed, prep.arrive_minutes) == (8, True, 30)
