"""The Celery application. Beat runs one pass a minute; workers send one outbox row per task."""
from __future__ import annotations

from celery import Celery

from reminders.config import Settings, get_settings


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("reminders", broker=settings.redis_url or "memory://", include=["reminders.tasks"])
    app.conf.update(
        task_ignore_result=True,
        # A task is acknowledged only after it ran, so a worker that dies mid-task has it
        # redelivered; the outbox claim makes the redelivery a no-op if the send happened.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        timezone="UTC",
        beat_schedule={"pass-every-minute": {"task": "reminders.tasks.run_pass", "schedule": 60.0}},
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery()
