"""The real Celery path: the Redis broker on the machine, an in-process worker, PostgreSQL.

Beat's `run_pass` task plans and hands the due rows out in `send_batch` tasks; a duplicate task
for a row already sent changes nothing. The test broker is a Redis database of its own (flushed
before and after) and a queue name of the test's own. The tests send tasks by name through the
app built from the settings, as beat and the web process do.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, worker_ready
from sqlalchemy import select

from reminders.alert_queue import ALERT_QUEUE
from reminders.channels.local_outbox import read_outbox
from reminders.db import session_factory
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import Status
from tests.processes import one_text_templates

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# One database per pytest-xdist worker (gw0 -> 13, gw1 -> 14), so parallel workers never flush
# each other's broker.
REDIS_DB = int(os.environ.get("TEST_CELERY_REDIS_DB", "13")) + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
BROKER_URL = f"{REDIS_BASE}/{REDIS_DB}"
NOW = datetime(2026, 3, 10, 16, 0, tzinfo=timezone.utc)  # noon in New York
WAIT_SECONDS = 90.0  # a bound on a hang only: waits end as soon as the condition holds


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
def celery_settings(pg_settings, configure, broker, monkeypatch, tmp_path):
    """PostgreSQL, the Redis broker, no providers (the local outbox), the clock at NOW; one text
    per reminder (these tests count hand-offs; a reminder's following text: tests/test_text_parts.py)."""
    import reminders.tasks as tasks

    settings = configure(REDIS_URL=BROKER_URL, TEMPLATES_DIR=str(one_text_templates(tmp_path / "templates")))
    monkeypatch.setattr(tasks, "utcnow", lambda: NOW)
    tasks._senders.clear()
    yield settings
    tasks._senders.clear()


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


@pytest.fixture
def two_way_poster(celery_settings, configure):
    """two_way_poster(**settings) -> post(body) -> the TwiML answer, from a web app built from
    those settings (Twilio's auth token and public URL for the signature; the local outbox)."""
    from reminders.web import create_app
    from tests.fixtures.twoway import BASE, Twilio, answer

    def make(**values):
        settings = configure(TWILIO_AUTH_TOKEN="test-auth-token", PUBLIC_BASE_URL=BASE, **values)
        app = create_app(settings, {"TESTING": True, "CLOCK": lambda: NOW})
        poster = Twilio(app.test_client(), "test-auth-token")
        return lambda body: answer(poster.sms(body))

    return make


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
    return [row.id for row in rows(settings) if row.status == Status.SENT]


def outbox_references(settings) -> Counter[int]:
    return Counter(int(m["reference"]) for m in read_outbox(settings.effective_outbox_dir))


def test_the_beat_pass_through_redis_sends_each_due_reminder_once(celery_settings, worker, finished, broker):
    from reminders.dispatch import SEND_BATCH_TASK
    from reminders.tasks import RUN_PASS_TASK

    app, _running = worker
    load_visits(celery_settings, due=12, later=5)

    # What beat does every minute: the run_pass task, through the broker.
    first = app.send_task(RUN_PASS_TASK)
    assert wait_until(lambda: first.id in finished), "the worker never ran run_pass"
    assert finished[first.id]["queued"] == 12
    assert wait_until(lambda: len(sent_ids(celery_settings)) == 12), \
        f"only {len(sent_ids(celery_settings))} of 12 reminders were sent"

    sent = sent_ids(celery_settings)
    assert wait_until(lambda: outbox_references(celery_settings) == Counter({i: 1 for i in sent}))
    assert {r.rule for r in rows(celery_settings) if r.status == Status.SENT} == {"induction_24h"}
    assert all(r.attempts == 1 and r.provider_id.startswith("local-") for r in rows(celery_settings) if r.status == Status.SENT)
    # The visits ten days out are planned, not sent: the database holds the schedule.
    assert all(r.status == Status.PLANNED and r.due_at > NOW for r in rows(celery_settings) if r.id not in sent)
    assert Counter(v for k, v in finished.items() if k != first.id for v in v) == Counter({"sent": 12})

    # Beat again at the same instant, and duplicate tasks for rows already sent: nothing changes.
    before = {r.id: (r.status, r.attempts, r.provider_id) for r in rows(celery_settings)}
    again = app.send_task(RUN_PASS_TASK)
    duplicates = [app.send_task(SEND_BATCH_TASK, args=[[sent[0]]]), app.send_task(SEND_BATCH_TASK, args=[[sent[-1]]]),
                  app.send_task(SEND_BATCH_TASK, args=[[sent[0]]])]
    ids = [again.id] + [d.id for d in duplicates]
    assert wait_until(lambda: all(i in finished for i in ids)), "the duplicate tasks never ran"
    assert finished[again.id].get("queued", 0) == 0
    assert [finished[d.id] for d in duplicates] == [["not_claimed"]] * 3
    assert {r.id: (r.status, r.attempts, r.provider_id) for r in rows(celery_settings)} == before
    assert outbox_references(celery_settings) == Counter({i: 1 for i in sent})
    # It really went through this Redis database, and everything given out was acknowledged.
    queue = app.conf.task_default_queue
    assert broker.exists(f"_kombu.binding.{queue}")
    assert broker.llen(queue) == 0
    assert wait_until(lambda: broker.hlen("unacked") == 0)


def test_a_pass_run_with_the_workers_dispatcher_hands_each_due_row_to_a_worker(celery_settings, worker, finished):
    """A pass run outside the worker (as the web process or `reminders run` may) with the Celery
    dispatcher still sends through the broker, each row once, in batches."""
    from reminders.dispatch import BATCH_SIZE, CeleryDispatcher, in_process
    from reminders.pipeline import run_pass

    app, _running = worker
    sessions = session_factory(celery_settings.effective_database_url)
    dispatcher = CeleryDispatcher(app, sessions, in_process(celery_settings, sessions))
    load_visits(celery_settings, due=BATCH_SIZE + 5, later=0)
    summary = run_pass(celery_settings, NOW, dispatcher=dispatcher)
    assert summary["queued"] == BATCH_SIZE + 5 and summary["sent"] == 0
    assert wait_until(lambda: len(sent_ids(celery_settings)) == BATCH_SIZE + 5)
    assert wait_until(lambda: len(finished) == 2), "two batches, two tasks"
    assert outbox_references(celery_settings) == Counter({i: 1 for i in sent_ids(celery_settings)})

    # A second pass hands out nothing more.
    assert run_pass(celery_settings, NOW, dispatcher=dispatcher).get("queued", 0) == 0


def test_the_web_app_with_redis_url_hands_crisis_alerts_to_that_broker(celery_settings, configure, broker, two_way_poster):
    """Regression: the web process once queued alert tasks on Celery's default app (amqp on
    localhost), where no worker ever saw them. Its tasks must land in REDIS_URL's queue."""
    post = two_way_poster(REDIS_URL=BROKER_URL, STAFF_ALERT_EMAILS="oncall@clinic.example")
    answer = post("i want to end my life")
    assert "988" in answer
    assert broker.llen("celery") == 0  # on the alert queue (reminders.alert_queue), never behind reminders
    queued = [json.loads(raw) for raw in broker.lrange(ALERT_QUEUE, 0, -1)]
    assert [message["headers"]["task"] for message in queued] == ["reminders.tasks.send_batch"]
    with session_factory(celery_settings.effective_database_url)() as session:
        alert = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert")).one()
    assert json.loads(base64.b64decode(queued[0]["body"]))[0] == [[alert.id]]
    assert alert.status == "queued"


def test_an_alert_no_worker_claims_is_sent_by_the_web_process_within_seconds(celery_settings, broker,
                                                                             two_way_poster, caplog):
    """A live broker is not a live worker: with no worker consuming, the web process sends the
    crisis alert itself once ALERT_CLAIM_WAIT has passed, each alert on its own."""
    post = two_way_poster(REDIS_URL=BROKER_URL, STAFF_ALERT_EMAILS="oncall@clinic.example,director@clinic.example")
    assert "988" in post("i want to end my life")

    def statuses():
        with session_factory(celery_settings.effective_database_url)() as session:
            return [row.status for row in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert"))]

    assert wait_until(lambda: statuses() == ["sent", "sent"], timeout=30), statuses()
    assert sorted(m["to"] for m in read_outbox(celery_settings.effective_outbox_dir)) == [
        "director@clinic.example", "oncall@clinic.example"]
    assert "not claimed by any worker" in caplog.text
    assert len(broker.lrange(ALERT_QUEUE, 0, -1)) == 2  # one task an alert: an email never waits for a text


def test_with_the_broker_down_crisis_alerts_go_from_the_web_process_at_once(celery_settings, two_way_poster, caplog):
    post = two_way_poster(REDIS_URL="redis://127.0.0.1:1/0", STAFF_ALERT_EMAILS="oncall@clinic.example")
    answer = post("i want to end my life")
    assert "988" in answer
    with session_factory(celery_settings.effective_database_url)() as session:
        alert = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert")).one()
    assert alert.status == "sent"
    assert [m["to"] for m in read_outbox(celery_settings.effective_outbox_dir)] == ["oncall@clinic.example"]
    assert "handing 1 urgent row(s) to the Celery workers failed" in caplog.text


def test_with_the_broker_down_a_pass_puts_its_rows_back_for_the_next_pass(celery_settings, caplog):
    from celery import Celery

    from reminders.dispatch import CeleryDispatcher, in_process
    from reminders.pipeline import run_pass

    sessions = session_factory(celery_settings.effective_database_url)
    down = Celery("reminders", broker="redis://127.0.0.1:1/0", set_as_current=False)
    down.conf.update(broker_connection_timeout=1, broker_transport_options={"socket_connect_timeout": 1},
                     task_publish_retry_policy={"max_retries": 0})
    load_visits(celery_settings, due=3, later=0)
    summary = run_pass(celery_settings, NOW, dispatcher=CeleryDispatcher(down, sessions, in_process(celery_settings, sessions)))
    assert summary["handoff_failed"] == 3
    due = [r for r in rows(celery_settings) if r.due_at <= NOW]
    assert len(due) == 3 and {r.status for r in due} == {Status.PLANNED}
    assert "they stay due and the next pass" in caplog.text
    # The next pass, in process this time, sends each once.
    assert run_pass(celery_settings, NOW)["sent"] == 3
    assert len(read_outbox(celery_settings.effective_outbox_dir)) == 3


class _Consumer:
    """What worker_ready's sender offers the handler: the worker's app."""

    def __init__(self, app):
        self.app = app


def test_rows_a_killed_worker_left_queued_go_out_once_when_a_worker_starts(celery_settings, broker, finished):
    """A worker killed with tasks in hand leaves their rows `queued` (the broker would redeliver
    them only after its visibility timeout). A worker that starts hands them out again at once."""
    from reminders.celery_app import make_celery
    from reminders.pipeline import due_ids, prepare

    load_visits(celery_settings, due=6, later=0)
    with session_factory(celery_settings.effective_database_url)() as session:
        prepare(session, celery_settings, NOW)
        queued = due_ids(session, NOW)  # queued, but their tasks died with the old worker
    assert len(queued) == 6 and sent_ids(celery_settings) == []

    app = make_celery(celery_settings)
    app.conf.task_default_queue = f"reminders-test-{uuid.uuid4().hex[:8]}"
    previous_current, previous_default = celery_state._tls.current_app, celery_state.default_app
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            # `celery worker` sends worker_ready once its consumer is up (the test worker does not).
            worker_ready.send(sender=_Consumer(app))
            assert wait_until(lambda: len(sent_ids(celery_settings)) == 6), "the queued rows were not handed out again"
    finally:
        celery_state._set_current_app(previous_current)
        celery_state.set_default_app(previous_default)
    assert outbox_references(celery_settings) == Counter({i: 1 for i in queued})


def test_a_batch_held_by_a_paused_sender_asks_for_a_pass_when_the_pause_ends(celery_settings, broker):
    """A 429 with Retry-After 5 s pauses the sender; the batch in hand puts its rows back. They
    must not wait for beat's next minute: one pass is asked for, due when the pause ends, however
    many batches were held."""
    import reminders.tasks as tasks
    from reminders.celery_app import make_celery
    from reminders.models import ProviderHealth

    app = make_celery(celery_settings)
    with session_factory(celery_settings.effective_database_url)() as session:
        session.add(ProviderHealth(channel="sms", consecutive_failures=1, open_until=NOW + timedelta(seconds=5),
                                   failing_since=NOW, updated_at=NOW))
        session.commit()
    tasks._follow_up["at"] = None
    asked = datetime.now(timezone.utc)  # Celery stamps the countdown on the wall clock
    for _held_batch in range(3):
        tasks._pass_when_the_pause_ends(app)
    queued = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    assert [message["headers"]["task"] for message in queued] == [tasks.RUN_PASS_TASK]
    countdown = (datetime.fromisoformat(queued[0]["headers"]["eta"]) - asked).total_seconds()
    assert 4 <= countdown <= 7, countdown


# ---------------------------------------------------------------- heartbeats: /healthz and the staff banner

@pytest.fixture
def quick_heartbeats(monkeypatch):
    """The worker's heartbeat every 0.2 s instead of 30 s (set before the worker starts)."""
    from reminders import heartbeats

    monkeypatch.setattr(heartbeats, "HEARTBEAT_SECONDS", 0.2)


def heartbeat(broker, role: str) -> str | None:
    value = broker.get(f"reminders:heartbeat:{role}")
    return value.decode() if value else None


def test_a_running_worker_marks_itself_seen_and_each_pass_it_runs_marks_the_last_pass(
        quick_heartbeats, celery_settings, worker, finished, broker):
    from reminders.tasks import RUN_PASS_TASK
    from reminders.web import create_app

    app, _running = worker
    first = wait_until(lambda: heartbeat(broker, "worker"))
    assert first, "the worker never marked itself seen"
    assert wait_until(lambda: heartbeat(broker, "worker") not in (None, first)), "the worker marked itself only once"
    assert heartbeat(broker, "pass") is None

    done = app.send_task(RUN_PASS_TASK)
    assert wait_until(lambda: done.id in finished)
    assert heartbeat(broker, "pass")
    assert heartbeat(broker, "beat") is None  # a pass asked for by anyone but beat does not stand for beat

    body = create_app(celery_settings, {"TESTING": True}).test_client().get("/healthz").json
    assert body["worker"]["ok"] is True and body["beat"]["last_pass"]
    assert body["status"] == "degraded" and body["missing"] == ["beat"]  # this test runs no beat


def test_a_stopped_worker_stops_marking_itself_seen(quick_heartbeats, celery_settings, broker):
    from reminders.celery_app import make_celery

    app = make_celery(celery_settings)
    app.conf.task_default_queue = f"reminders-test-{uuid.uuid4().hex[:8]}"
    previous_current, previous_default = celery_state._tls.current_app, celery_state.default_app
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            assert wait_until(lambda: heartbeat(broker, "worker")), "the worker never marked itself seen"
    finally:
        celery_state._set_current_app(previous_current)
        celery_state.set_default_app(previous_default)
    last = heartbeat(broker, "worker")
    threading.Event().wait(1.0)  # five of its heartbeats
    assert heartbeat(broker, "worker") == last


def test_beat_marks_itself_seen_when_it_starts_and_each_time_it_hands_out_the_pass(celery_settings, broker, tmp_path):
    from celery.beat import Service

    from reminders.celery_app import make_celery
    from reminders.tasks import RUN_PASS_TASK

    app = make_celery(celery_settings)
    queue = app.conf.task_default_queue = f"reminders-test-{uuid.uuid4().hex[:8]}"
    app.conf.beat_schedule = {"pass-every-minute": {"task": RUN_PASS_TASK, "schedule": 0.5}}  # a minute, shortened
    beat = Service(app, max_interval=0.1, schedule_filename=str(tmp_path / "celerybeat-schedule"),
                   remote_control=False)
    thread = threading.Thread(target=beat.start, name="test-beat", daemon=True)
    thread.start()
    try:
        started = wait_until(lambda: heartbeat(broker, "beat"))
        assert started, "beat did not mark itself seen when it started"
        assert wait_until(lambda: broker.llen(queue) >= 1), "beat never handed out its pass"
        assert wait_until(lambda: heartbeat(broker, "beat") != started), "handing out the pass did not mark beat"
    finally:
        beat.stop()
        thread.join(10)
    last = heartbeat(broker, "beat")
    app.send_task(RUN_PASS_TASK)  # as a worker asks for a pass after a pause: not beat
    assert heartbeat(broker, "beat") == last
