"""/healthz and the staff pages say when the Celery worker or beat is not running.

With REDIS_URL set the worker and beat leave heartbeats in Redis (reminders.heartbeats; the real
processes are tested in tests/test_celery_redis.py). Here the heartbeats are written with the time
the test chooses, and the web app reads them: /healthz stays 200 (liveness, so the web is never
restarted over a stopped worker) and says "degraded", naming what is missing; /healthz?strict=1
answers 503 for a monitor; every staff page shows a banner. Without REDIS_URL nothing changes,
except that `reminders run`'s own scheduler is reported.
"""
from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
import redis

from reminders import heartbeats
from reminders.heartbeats import BEAT, PASS, WORKER
from tests.fixtures.staff import login, make_user

pytestmark = pytest.mark.redis

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# A Redis database of these tests' own, one per pytest-xdist worker (gw0 -> 6, gw1 -> 5).
REDIS_DB = 6 - int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
HEALTH_REDIS_URL = f"{REDIS_BASE}/{REDIS_DB}"
NOBODY_THERE = "redis://127.0.0.1:1/0"

WORKER_BANNER = "The worker is not running: reminders and alerts wait (crisis alerts are sent by the web process)."


@pytest.fixture
def redis_db():
    client = redis.Redis.from_url(HEALTH_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def celery_deployment(settings, configure, redis_db):
    """The web app of a deployment with REDIS_URL (SQLite here: the database is not the point)."""
    from reminders.web import create_app

    configured = configure(REDIS_URL=HEALTH_REDIS_URL)
    app = create_app(configured, {"TESTING": True})
    app.extensions["reminders.service_watch"].cache_seconds = 0  # each request reads what the test wrote
    return app


def seen(role: str, seconds_ago: float) -> None:
    heartbeats.store_for(HEALTH_REDIS_URL).mark(role, heartbeats.now() - timedelta(seconds=seconds_ago))


def staff_pages(app):
    make_user(app.extensions["reminders.sessions"], "desk@clinic.test")
    client = app.test_client()
    assert login(client, "desk@clinic.test").status_code == 302
    return client


# ---------------------------------------------------------------- /healthz

def test_without_redis_url_healthz_answers_as_it_always_did(client):
    for path in ("/healthz", "/healthz?strict=1"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json == {"status": "ok", "database": "ok", "providers": {}}


def test_with_the_worker_and_beat_seen_recently_healthz_is_ok(celery_deployment):
    seen(WORKER, 10)
    seen(BEAT, 30)
    seen(PASS, 29)
    client = celery_deployment.test_client()
    for path in ("/healthz", "/healthz?strict=1"):
        response = client.get(path)
        assert response.status_code == 200
        body = response.json
        assert body["status"] == "ok" and body["database"] == "ok" and "missing" not in body
        assert body["worker"]["ok"] is True and 10 <= body["worker"]["seconds_ago"] <= 15
        assert body["beat"]["ok"] is True and 30 <= body["beat"]["seconds_ago"] <= 35
        assert body["beat"]["last_pass"] and body["worker"]["last_seen"].endswith("+00:00")


def test_a_worker_not_seen_for_90_seconds_is_named_missing_and_only_the_strict_check_fails(celery_deployment):
    seen(WORKER, 95)
    seen(BEAT, 20)
    client = celery_deployment.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200  # liveness: docker compose must not restart the web over it
    assert response.json["status"] == "degraded" and response.json["missing"] == ["worker"]
    assert response.json["worker"]["ok"] is False and response.json["beat"]["ok"] is True
    strict = client.get("/healthz?strict=1")
    assert strict.status_code == 503
    assert strict.json["status"] == "degraded" and strict.json["missing"] == ["worker"]


def test_beat_counts_as_running_for_150_seconds_the_worker_for_90(celery_deployment):
    client = celery_deployment.test_client()
    seen(WORKER, 80)
    seen(BEAT, 140)
    assert client.get("/healthz?strict=1").json["status"] == "ok"
    seen(BEAT, 160)
    response = client.get("/healthz?strict=1")
    assert response.status_code == 503 and response.json["missing"] == ["beat"]


def test_a_worker_and_beat_never_seen_are_both_missing(celery_deployment):
    response = celery_deployment.test_client().get("/healthz?strict=1")
    assert response.status_code == 503
    assert response.json["missing"] == ["worker", "beat"]
    assert response.json["worker"] == {"last_seen": None, "seconds_ago": None, "ok": False}


def test_a_redis_that_does_not_answer_is_named_as_the_broker(settings, configure):
    from reminders.web import create_app

    client = create_app(configure(REDIS_URL=NOBODY_THERE), {"TESTING": True}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["database"] == "ok" and response.json["broker"] == "unreachable"
    assert response.json["status"] == "degraded" and response.json["missing"] == ["broker"]
    assert client.get("/healthz?strict=1").status_code == 503


def test_a_database_that_does_not_answer_is_still_a_503_whatever_the_worker(celery_deployment, monkeypatch):
    seen(WORKER, 1)
    seen(BEAT, 1)

    def broken():
        raise ConnectionError("the database is away")

    celery_deployment.extensions["reminders.sessions"] = broken
    response = celery_deployment.test_client().get("/healthz")
    assert response.status_code == 503 and response.json == {"status": "error", "database": "unreachable"}


# ---------------------------------------------------------------- the staff pages

def test_every_staff_page_says_when_the_worker_is_not_running(celery_deployment):
    seen(WORKER, 12 * 60)
    seen(BEAT, 10)
    client = staff_pages(celery_deployment)
    for path in ("/", "/escalations/", "/inbox/", "/patients/"):
        page = client.get(path).text
        assert WORKER_BANNER in page, path
        assert "Last seen 12 minutes ago." in page
        assert "The scheduler (beat)" not in page


def test_the_banner_says_for_how_long_beat_has_not_run(celery_deployment):
    seen(WORKER, 5)
    seen(BEAT, 12 * 60 + 30)
    client = staff_pages(celery_deployment)
    page = client.get("/").text
    assert "The scheduler (beat) has not run for 12 minutes." in page
    assert WORKER_BANNER not in page
    seen(BEAT, 3 * 3600)
    assert "The scheduler (beat) has not run for 3 hours." in client.get("/").text


def test_no_banner_while_both_run_or_without_redis_url(celery_deployment, staff_client):
    seen(WORKER, 5)
    seen(BEAT, 5)
    for client in (staff_pages(celery_deployment), staff_client):
        page = client.get("/").text
        assert "not running" not in page and "has not run" not in page


def test_a_page_left_open_learns_that_the_worker_stopped_and_started_again(celery_deployment):
    seen(WORKER, 5)
    seen(BEAT, 5)
    client = staff_pages(celery_deployment)

    def stamp() -> str:
        return client.get("/live.json").json["stamp"]

    running = stamp()
    assert stamp() == running
    seen(WORKER, 200)
    stopped = stamp()
    assert stopped != running  # Today, Escalations and Inbox reload and show the banner
    seen(WORKER, 200)
    assert stamp() == stopped  # a worker still gone does not reload the page every minute
    seen(WORKER, 1)
    assert stamp() == running


# ---------------------------------------------------------------- `reminders run` without REDIS_URL

def test_the_one_process_scheduler_counts_as_worker_and_beat_and_never_makes_healthz_fail(settings, app, client):
    from reminders.dispatch import in_process
    from reminders.runner import MinuteScheduler

    scheduler = MinuteScheduler(settings, in_process(settings))
    app.extensions["reminders.service_watch"].local = scheduler.heartbeats
    passed = threading.Event()
    real_mark = scheduler.heartbeats.mark

    def mark(role, at=None):
        real_mark(role, at)
        if role == PASS:
            scheduler.stop()
            passed.set()

    scheduler.heartbeats.mark = mark
    scheduler.start()
    assert passed.wait(60), "the scheduler's first pass did not finish"
    scheduler.join(10)
    body = client.get("/healthz").json
    assert body["status"] == "ok" and "missing" not in body
    assert body["worker"]["in_process"] and body["worker"]["last_seen"]
    assert body["beat"]["in_process"] and body["beat"]["last_pass"]

    real_mark(WORKER, heartbeats.now() - timedelta(hours=1))  # even a scheduler long silent: as before
    response = client.get("/healthz?strict=1")
    assert response.status_code == 200 and response.json["status"] == "ok"
