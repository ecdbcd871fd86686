"""Celery tasks, registered on the Celery app built from the settings (`reminders.celery_app`).

The database is the schedule: tasks carry only outbox row ids. Beat's `run_pass` plans and hands
every due row out in batches; `send_batch` sends a batch, each row claimed on its own, so a
redelivered or duplicate task finds nothing left to do.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache

from celery import Celery

from reminders import pipeline
from reminders.config import get_settings
from reminders.db import session_factory
from reminders.dispatch import SEND_BATCH_TASK, CeleryDispatcher, InProcessDispatcher, in_process
from reminders.models import utcnow
from reminders.outbox.moves import requeue_lost

log = logging.getLogger(__name__)

RUN_PASS_TASK = "reminders.tasks.run_pass"
SEND_MESSAGE_TASK = "reminders.tasks.send_message"


@lru_cache(maxsize=1)
def _local() -> InProcessDispatcher:
    """This worker process's sender (its channels and database pool), built once."""
    return in_process(get_settings())


def _workers(app: Celery) -> CeleryDispatcher:
    dispatcher = app.__dict__.get("_reminders_dispatcher")
    if dispatcher is None:
        dispatcher = CeleryDispatcher(app, session_factory(get_settings().effective_database_url), _local())
        app.__dict__["_reminders_dispatcher"] = dispatcher
    return dispatcher


def register_tasks(app: Celery) -> None:
    # shared=False: the tasks belong to this app only, never to Celery's default app, where a
    # process that forgot to build this one would queue work no worker ever sees.
    @app.task(name=RUN_PASS_TASK, bind=True, shared=False)
    def run_pass(task) -> dict:
        """Plan what changed and hand every due row to the workers, in batches."""
        return pipeline.run_pass(get_settings(), utcnow(), dispatcher=_workers(task.app))

    @app.task(name=SEND_BATCH_TASK, shared=False)
    def send_batch(outbox_ids: list[int]) -> list[str]:
        return _local().sender.send_batch(outbox_ids, utcnow())

    @app.task(name=SEND_MESSAGE_TASK, shared=False)
    def send_message(outbox_id: int) -> str:
        return _local().sender.send(outbox_id, utcnow())


def hand_out_queued_rows(app: Celery) -> int:
    """When a worker starts, rows still `queued` may belong to tasks that died with a worker.

    Hand them all out again: claiming is a conditional UPDATE, so a row whose original task is
    still alive somewhere is sent once all the same."""
    now = utcnow()
    with session_factory(get_settings().effective_database_url)() as session:
        ids = requeue_lost(session, now, after=timedelta(0), alert_after=timedelta(0))
    if ids:
        log.info("worker start: handing out %s queued row(s) again", len(ids))
        _workers(app).hand_off(ids, now)
    return len(ids)
