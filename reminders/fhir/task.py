"""Beat's FHIR sync, every FHIR_SYNC_MINUTES, when FHIR_BASE_URL is set (see celery_app.make_celery)."""
from __future__ import annotations

import logging

from celery import Celery

from reminders.config import get_settings

log = logging.getLogger(__name__)

FHIR_SYNC_TASK = "reminders.fhir.sync"


def register_fhir_sync(app: Celery, settings) -> None:
    """The sync task on this app, and its beat entry. The visits it changes are planned by the
    next pass (beat's every minute), not by the sync."""

    @app.task(name=FHIR_SYNC_TASK, shared=False, ignore_result=True)
    def fhir_sync() -> dict:
        from reminders.fhir.client import FhirError
        from reminders.fhir.sync import sync

        try:
            report = sync(get_settings(), plan=False)
        except FhirError as exc:
            log.error("fhir sync failed, the next one reads the same changes again: %s", exc)
            return {"error": str(exc)}
        summary = report.summary()
        for problem in summary["problems"]:
            log.warning("fhir sync: %s %s: %s", problem["resource"], problem["result"], "; ".join(problem["reasons"]))
        return {k: v for k, v in summary.items() if k not in ("problems", "canceled_visits")}

    app.conf.beat_schedule = {**(app.conf.beat_schedule or {}),
                              "fhir-sync": {"task": FHIR_SYNC_TASK, "schedule": 60.0 * settings.fhir_sync_minutes}}
