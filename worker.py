"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`.

The app is built from the settings (REDIS_URL), with the project's tasks registered on it."""
from reminders.celery_app import make_celery

app = make_celery()
