"""Celery tasks, registered on the Celery app built from the settings (`reminders.celery_app`).

The database is the schedule: tasks carry only outbox row ids. Beat's `run_pass` plans and hands
every due row out in batches; `send_batch` sends a batch, each row claimed on its own, so a
redelivered or duplicate task finds nothing left to do.
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

from celery import Celery

from reminders import clock, heartbeats, pipeline
from reminders.config import get_settings
from reminders.db import session_factory
from reminders.dispatch import SEND_BATCH_TASK, CeleryDispatcher, InProcessDispatcher, in_process
from reminders.models import utcnow
from reminders.outbox.moves import requeue_lost
from reminders.provider_health import breakers

log = logging.getLogger(__name__)

RUN_PASS_TASK = "reminders.tasks.run_pass"


# Built once per process, keyed by its pid: a prefork child must not use the sender (its HTTP
# connections to the provider) or the dispatcher its parent built before forking.
_senders: dict[int, InProcessDispatcher] = {}


def _local() -> InProcessDispatcher:
    """This worker process's sender (its channels and database pool), built once."""
    pid = os.getpid()
    if pid not in _senders:
        _senders.clear()
        _senders[pid] = in_process(get_settings())
    return _senders[pid]


def _now():
    clock.keep_in_step()  # a prefork child has no clock-reading thread of its own (reminders.clock)
    return utcnow()


# The alert queue's senders (reminders.alert_queue): threads of the worker's main process, each
# with its own sender, so that no provider client is shared between two threads.
_alert_senders = threading.local()


def send_alerts(outbox_ids: list[int]) -> list[str]:
    """Send staff alerts taken from the alert queue, in the calling thread."""
    if getattr(_alert_senders, "pid", None) != os.getpid():
        _alert_senders.pid, _alert_senders.dispatcher = os.getpid(), in_process(get_settings())
    return _alert_senders.dispatcher.sender.send_batch(outbox_ids, _now())


def _workers(app: Celery) -> CeleryDispatcher:
    key = ("_reminders_dispatcher", os.getpid())
    dispatcher = app.__dict__.get(key)
    if dispatcher is None:
        dispatcher = CeleryDispatcher(app, session_factory(get_settings().effective_database_url), _local())
        app.__dict__[key] = dispatcher
    return dispatcher


def register_tasks(app: Celery) -> None:
    # shared=False: the tasks belong to this app only, never to Celery's default app, where a
    # process that forgot to build this one would queue work no worker ever sees.
    @app.task(name=RUN_PASS_TASK, bind=True, shared=False)
    def run_pass(task) -> dict:
        """Plan what changed and hand every due row to the workers, in batches."""
        summary = pipeline.run_pass(get_settings(), _now(), dispatcher=_workers(task.app))
        heartbeats.mark(task.app.conf.broker_url, heartbeats.PASS)  # /healthz: beat's `last_pass`
        return summary

    @app.task(name=SEND_BATCH_TASK, bind=True, shared=False)
    def send_batch(task, outbox_ids: list[int]) -> list[str]:
        sender = _local().sender
        sender.provider_recovered = False
        outcomes = sender.send_batch(outbox_ids, _now())
        if sender.provider_recovered:
            _pass_now(task.app)  # the probe went: what waited for the paused channel goes now
        elif "held" in outcomes:
            _pass_when_the_pause_ends(task.app)
        return outcomes


# A batch that put rows back because its sender was paused (a 429's Retry-After, the sending
# number's pace) asks for a pass when the pause ends, not at beat's next minute. One such pass per
# worker process and pause: a hundred held batches ask once.
FOLLOW_UP_LIMITS = (1.0, 60.0)
_follow_up = {"at": None}


def _pass_when_the_pause_ends(app: Celery) -> None:
    now = utcnow()
    with _local().sender.sessions() as session:
        paused = [b.open_until for b in breakers(session, only_open=True).values()]
    resume = min(paused) if paused else now
    low, high = FOLLOW_UP_LIMITS
    countdown = min(max((resume - now).total_seconds(), low), high)
    at = now + timedelta(seconds=countdown)
    if _follow_up["at"] is not None and now < _follow_up["at"] <= at:
        return  # a pass is already coming, no later than this one would
    _follow_up["at"] = at
    try:
        app.send_task(RUN_PASS_TASK, countdown=countdown)
    except Exception:  # noqa: BLE001 - beat's next pass takes them in any case
        log.warning("could not ask for a pass after a pause; beat's next pass sends the held rows")
        return
    log.info("rows held while their sender was paused: a pass in %.0f s", countdown)


def _pass_now(app: Celery) -> None:
    _follow_up["at"] = None
    try:
        app.send_task(RUN_PASS_TASK)
    except Exception:  # noqa: BLE001 - beat's next pass takes them in any case
        log.warning("could not ask for a pass after the provider recovered; beat's next pass sends the held rows")


def hand_out_queued_rows(app: Celery) -> int:
    """When a worker starts, rows still `queued` may belong to tasks that died with a worker.

    Hand them all out again: claiming is a conditional UPDATE, so a row whose original task is
    still alive somewhere is sent once all the same."""
    now = _now()
    with session_factory(get_settings().effective_database_url)() as session:
        ids = requeue_lost(session, now, after=timedelta(0), alert_after=timedelta(0))
        alerts = set(pipeline.alert_ids(session, ids))
    if ids:
        log.info("worker start: handing out %s queued row(s) again", len(ids))
        _workers(app).hand_off([i for i in ids if i in alerts], now, urgent=True)
        _workers(app).hand_off([i for i in ids if i not in alerts], now)
    return len(ids)
