"""PASS_SECONDS: how often beat (and `reminders run`'s scheduler) starts a pass, and what follows
from it: a pass left waiting past the next is dropped, and a pass plans for at most a third of
the interval so that passes never pile up behind a large import."""
from __future__ import annotations

from datetime import datetime, timezone
from unittest import mock

import pytest
from pydantic import ValidationError

from reminders.celery_app import make_celery
from reminders.pipeline import scheduled_planning_seconds
from reminders.runner import MinuteScheduler


def test_beat_passes_every_pass_seconds_and_drops_a_pass_still_waiting_at_the_next(configure):
    settings = configure(PASS_SECONDS=7, REDIS_URL="redis://127.0.0.1:6379/15")
    (entry,) = make_celery(settings).conf.beat_schedule.values()
    assert entry["task"] == "reminders.tasks.run_pass"
    assert entry["schedule"] == 7.0
    assert entry["options"]["expires"] == 7.0


def test_a_clinic_passes_every_minute_by_default(configure):
    settings = configure()
    assert settings.pass_seconds == 60
    (entry,) = make_celery(settings).conf.beat_schedule.values()
    assert entry["schedule"] == 60.0


def test_a_pass_plans_for_twenty_seconds_a_minute_and_a_third_of_a_shorter_interval(configure):
    assert scheduled_planning_seconds(configure()) == 20.0
    assert scheduled_planning_seconds(configure(PASS_SECONDS=6)) == 2.0
    assert scheduled_planning_seconds(configure(PASS_SECONDS=600)) == 20.0


def test_reminders_run_starts_its_passes_on_the_interval(configure):
    scheduler = MinuteScheduler(configure(), dispatcher=None)
    at = datetime(2026, 12, 7, 16, 30, 20, tzinfo=timezone.utc)
    with mock.patch("reminders.runner.utcnow", return_value=at):
        assert scheduler.until_next_pass() == 40.0
    fast = MinuteScheduler(configure(PASS_SECONDS=15), dispatcher=None)
    with mock.patch("reminders.runner.utcnow", return_value=at):
        assert fast.until_next_pass() == 10.0


def test_a_pass_interval_outside_one_second_to_an_hour_is_refused(configure):
    for wrong in ("0", "3601", "soon"):
        with pytest.raises(ValidationError, match="pass_seconds"):
            configure(PASS_SECONDS=wrong)
