"""The real Celery path: the Redis broker on the machine, an in-process worker, PostgreSQL.

Beat's `run_pass` task plans and queues; one `send_message` task per due row sends it; a
duplicate task for a row already sent changes nothing. The test broker is a Redis database
of its own (flushed before and after) and a queue name of the test's own.
"""
from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from sqlalchemy import select

from reminders.channels.local_outbox import read_outbox
from reminders.db import session_factory
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import PLANNED, SENT

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
REDIS_DB = int(os.environ.get("TEST_CELERY_REDIS_DB", "13"))
BROKER_URL = f"{REDIS_BASE}/{REDIS_DB}"
NOW = datetime(2026, 3, 10, 16, 0, tzinfo=timezone.utc)  # noon in New York
WAIT_SECONDS = 10.0


def wait_until(check, timeout: float = WAIT_SECONDS, step: float = 0.05):
    """Poll `check` until it returns something truthy; bounded, with short event waits."""
    pause = threading.Event()
    deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout)
    while True:
        value = check()
        if value:
            return value
        if datetime.now(timezone.utc) >= deadline:
            return value
        pause.wait(step)


@pytest.fixture
def broker():
    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def celery_settings(pg_settings, configure, broker, monkeypatch):
    """PostgreSQL, the Redis broker, no providers (the local outbox), the clock at NOW."""
    import reminders.tasks as tasks

    settings = configure(REDIS_URL=BROKER_URL)
    monkeypatch.setattr(tasks, "utcnow", lambda: NOW)
    tasks._sender.cache_clear()
    yield settings
    tasks._sender.cache_clear()


@pytest.fixture
def finished():
    """Ids of tasks the worker has finished (task_postrun fires in the worker's thread)."""
    done: dict[str, object] = {}
    lock = threading.Lock()

    def record(sender=None, task_id=None, retval=None, **_):
        with lock:
            done[task_id] = retval

    task_postrun.connect(record, weak=False)
    yield done
    task_postrun.disconnect(record)


@pytest.fixture
def worker(celery_settings):
    """A Celery app built from the settings (so it uses the test broker) and a worker in a thread."""
    from reminders.celery_app import make_celery

    previous_current, previous_default = celery_state._tls.current_app, celery_state.default_app
    app = make_celery(celery_settings)
    app.conf.task_default_queue = f"reminders-test-{uuid.uuid4().hex[:8]}"
    assert app.conf.broker_url == BROKER_URL
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as running:
            yield app, running
    finally:
        celery_state._set_current_app(previous_current)
        celery_state.set_default_app(previous_default)


def load_visits(settings, due: int, later: int) -> None:
    """`due` visits whose 24 h reminder is due at NOW, and `later` visits ten days out."""
    with session_factory(settings.effective_database_url)() as session:
        for i in range(due + later):
            patient = Patient(external_id=f"pat-{i}", first_name=f"Pat{i}", last_name="Example",
                              phone=f"+1415555{i:04d}", timezone="America/New_York",
                              preferred_channel="sms", welcomed_at=NOW - timedelta(days=30))
            starts = NOW + (timedelta(hours=22) if i < due else timedelta(days=10))
            session.add(Appointment(external_id=f"appt-{i}", patient=patient, kind="induction",
                                    number_in_course=2, starts_at=starts, location="Suite 200",
                                    status="scheduled", needs_planning=True))
        session.commit()


def rows(settings) -> list[OutboxMessage]:
    with session_factory(settings.effective_database_url)() as session:
        return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def sent_ids(settings) -> list[int]:
    return [row.id for row in rows(settings) if row.status == SENT]


def outbox_references(settings) -> Counter[int]:
    return Counter(int(m["reference"]) for m in read_outbox(settings.effective_outbox_dir))


def test_the_beat_pass_through_redis_sends_each_due_reminder_once(celery_settings, worker, finished, broker):
    import reminders.tasks as tasks

    app, _running = worker
    load_visits(celery_settings, due=12, later=5)

    # What beat does every minute: the run_pass task, through the broker.
    first = tasks.run_pass.delay()
    assert wait_until(lambda: first.id in finished), "the worker never ran run_pass"
    assert finished[first.id]["queued"] == 12
    assert wait_until(lambda: len(sent_ids(celery_settings)) == 12), \
        f"only {len(sent_ids(celery_settings))} of 12 reminders were sent"

    sent = sent_ids(celery_settings)
    assert wait_until(lambda: outbox_references(celery_settings) == Counter({i: 1 for i in sent}))
    assert {r.rule for r in rows(celery_settings) if r.status == SENT} == {"induction_24h"}
    assert all(r.attempts == 1 and r.provider_id.startswith("local-") for r in rows(celery_settings) if r.status == SENT)
    # The visits ten days out are planned, not sent: the database holds the schedule.
    assert all(r.status == PLANNED and r.due_at > NOW for r in rows(celery_settings) if r.id not in sent)
    assert Counter(v for k, v in finished.items() if k != first.id) == Counter({"sent": 12})

    # Beat again at the same instant, and duplicate tasks for rows already sent: nothing changes.
    before = {r.id: (r.status, r.attempts, r.provider_id) for r in rows(celery_settings)}
    again = tasks.run_pass.delay()
    duplicates = [tasks.send_message.delay(sent[0]), tasks.send_message.delay(sent[-1]),
                  tasks.send_message.delay(sent[0])]
    ids = [again.id] + [d.id for d in duplicates]
    assert wait_until(lambda: all(i in finished for i in ids)), "the duplicate tasks never ran"
    assert finished[again.id]["queued"] == 0
    assert [finished[d.id] for d in duplicates] == ["not_claimed"] * 3
    assert {r.id: (r.status, r.attempts, r.provider_id) for r in rows(celery_settings)} == before
    assert outbox_references(celery_settings) == Counter({i: 1 for i in sent})
    # It really went through this Redis database, and everything given out was acknowledged.
    queue = app.conf.task_default_queue
    assert broker.exists(f"_kombu.binding.{queue}")
    assert broker.llen(queue) == 0
    assert wait_until(lambda: broker.hlen("unacked") == 0)


def test_run_pass_called_in_process_hands_each_due_row_to_a_worker(celery_settings, worker, finished):
    """`reminders.tasks.run_pass()` called directly (as `reminders run` may) still sends through
    the broker: one send_message task per due row, each row sent once."""
    import reminders.tasks as tasks

    load_visits(celery_settings, due=8, later=0)
    summary = tasks.run_pass()
    assert summary["queued"] == 8
    assert wait_until(lambda: len(sent_ids(celery_settings)) == 8)
    assert wait_until(lambda: Counter(finished.values()) == Counter({"sent": 8}))
    assert outbox_references(celery_settings) == Counter({i: 1 for i in sent_ids(celery_settings)})

    # A second pass queues nothing more.
    assert tasks.run_pass()["queued"] == 0
