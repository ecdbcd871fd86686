"""The Celery application. Beat runs one pass a minute; workers send one outbox row per task."""
from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging

from reminders.config import Settings, get_settings

# A send is a few database round trips and one provider call with its own timeout; a task still
# running after this long is stuck (a template is cut off far sooner, see reminders.rendering).
TASK_SOFT_TIME_LIMIT = 120
TASK_TIME_LIMIT = 180


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
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        task_time_limit=TASK_TIME_LIMIT,
    )
    return app


celery_app = make_celery()


@setup_logging.connect
def _same_logging_as_the_cli(loglevel=None, **_kwargs) -> None:
    """The worker and beat log through the same redacting set-up as `reminders` (no PHI in logs)."""
    from reminders.logs import configure_logging

    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    configure_logging(level if isinstance(level, int) else logging.INFO)
