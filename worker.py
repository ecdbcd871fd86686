"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""
from reminders.celery_app import celery_app as app  # noqa: F401
