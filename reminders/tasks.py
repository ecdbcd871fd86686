"""Celery tasks. The database is the schedule: tasks carry only an outbox row's id."""
from __future__ import annotations

from functools import lru_cache

from celery import shared_task

from reminders.channels import channels_for
from reminders.config import get_settings
from reminders.db import session_factory
from reminders.models import utcnow
from reminders.pipeline import due_ids, prepare
from reminders.sending import Sender


@lru_cache(maxsize=1)
def _sender() -> Sender:
    settings = get_settings()
    return Sender(session_factory(settings.effective_database_url), settings, channels_for(settings))


@shared_task(name="reminders.tasks.run_pass")
def run_pass() -> dict:
    """Plan what changed and hand every due row to a send task."""
    settings, now = get_settings(), utcnow()
    with session_factory(settings.effective_database_url)() as session:
        summary = prepare(session, settings, now)
        ids = due_ids(session, now)
    for outbox_id in ids:
        send_message.delay(outbox_id)
    return {**summary, "queued": len(ids)}


@shared_task(name="reminders.tasks.send_message")
def send_message(outbox_id: int) -> str:
    return _sender().send(outbox_id, utcnow())
