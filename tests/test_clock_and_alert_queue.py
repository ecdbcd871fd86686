"""Every process keeps to the database server's clock (reminders.clock), and staff alerts have a
queue and a consumer of their own (reminders.alert_queue). The processes themselves are checked in
tests/faults/test_alert_faults.py (a worker 11 minutes behind; a backlog at 5 s a call)."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine

from reminders import clock
from reminders.alert_queue import AlertConsumer, outbox_ids
from reminders.models import utcnow


@pytest.fixture(autouse=True)
def own_clock():
    clock.forget()
    yield
    clock.forget()


@pytest.mark.postgres
def test_a_process_whose_clock_runs_11_minutes_behind_keeps_to_the_databases_clock(postgres_url, monkeypatch, caplog):
    engine = create_engine(postgres_url)
    true_now = clock.system_now
    monkeypatch.setattr(clock, "system_now", lambda: true_now() - timedelta(minutes=11))
    monkeypatch.setattr(clock, "_start_reading_every_minute", lambda: None)
    with caplog.at_level(logging.WARNING, logger="reminders.clock"):
        measured = clock.follow(engine)
    assert abs(measured - timedelta(minutes=11)) < timedelta(seconds=1)
    assert abs(utcnow() - true_now()) < timedelta(seconds=1)  # what every due time is compared with
    assert "660" in caplog.text and "behind the database server's" in caplog.text
    engine.dispose()


@pytest.mark.postgres
def test_a_clock_in_step_with_the_database_is_left_as_it_is(postgres_url, monkeypatch):
    engine = create_engine(postgres_url)
    monkeypatch.setattr(clock, "_start_reading_every_minute", lambda: None)
    assert clock.follow(engine) == timedelta(0)
    engine.dispose()


def test_sqlite_is_a_file_on_this_machine_and_needs_no_reading(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert clock.follow(engine) == timedelta(0) and clock.offset() == timedelta(0)


def test_a_database_that_does_not_answer_keeps_the_last_offset_and_raises_nothing(monkeypatch):
    class Unreachable:
        class dialect:
            name = "postgresql"

        def connect(self):
            raise OSError("connection refused")

    monkeypatch.setattr(clock, "_start_reading_every_minute", lambda: None)
    clock._state["offset"] = timedelta(seconds=30)
    assert clock.follow(Unreachable()) == timedelta(seconds=30)
    assert clock.offset() == timedelta(seconds=30)


def test_the_ids_a_send_task_carries_are_read_from_celerys_message_body():
    assert outbox_ids([[[17]], {}, {"callbacks": None}]) == [17]
    assert outbox_ids([[[3, 4]], {}, {}]) == [3, 4]
    assert outbox_ids([[5], {}, {}]) == [5]


class _Message:
    def __init__(self):
        self.acked = False

    def ack(self):
        self.acked = True


def test_alerts_taken_from_the_queue_are_sent_side_by_side_not_one_after_the_other():
    """An SMS alert to a slow provider must not hold up the email alert taken after it."""
    release, started = threading.Event(), []
    lock = threading.Lock()

    def send(ids):
        with lock:
            started.append(ids)
        release.wait(10)

    consumer = AlertConsumer(connection=None, send=send)
    messages = [_Message(), _Message()]
    consumer.on_message([[[1]], {}, {}], messages[0])
    consumer.on_message([[[2]], {}, {}], messages[1])
    deadline = threading.Event()
    for _ in range(200):
        if len(started) == 2:
            break
        deadline.wait(0.05)
    release.set()
    consumer.senders.shutdown(wait=True)
    assert sorted(map(tuple, started)) == [(1,), (2,)] and all(m.acked for m in messages)


def test_a_garbled_alert_message_is_dropped_with_a_log_line_not_a_dead_consumer(caplog):
    consumer = AlertConsumer(connection=None, send=lambda ids: None)
    message = _Message()
    consumer.on_message([[["not an id"]], {}, {}], message)
    consumer.senders.shutdown(wait=True)
    assert message.acked and "dropped" in caplog.text
