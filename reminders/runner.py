"""`reminders run`: web, worker and scheduler on one machine.

With REDIS_URL set, a Celery worker with an embedded beat runs beside the web server. Without
it, a scheduler thread runs one pass a minute in this process: nothing but Python is needed.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone

from reminders.celery_app import dispatcher_for
from reminders.config import Settings
from reminders.dispatch import Dispatcher
from reminders.pipeline import run_pass
from reminders.web import create_app

log = logging.getLogger(__name__)


class MinuteScheduler(threading.Thread):
    """Runs a pass at the start of every minute until stopped."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher):
        super().__init__(name="reminders-scheduler", daemon=True)
        self.settings = settings
        self.dispatcher = dispatcher
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = datetime.now(timezone.utc)
            try:
                summary = run_pass(self.settings, now, dispatcher=self.dispatcher)
                if any(summary.get(k) for k in ("sent", "failed", "deferred", "skipped")):
                    log.info("pass at %s: %s", now.isoformat(timespec="seconds"), summary)
            except Exception:  # noqa: BLE001 - the scheduler must outlive a bad pass
                log.exception("pass at %s failed; the next one will try again", now.isoformat(timespec="seconds"))
            self.stopping.wait(60 - datetime.now(timezone.utc).second)

    def stop(self) -> None:
        self.stopping.set()


def start_celery(settings: Settings) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--beat", "--loglevel", "INFO",
               "--concurrency", "2", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_service(settings: Settings, host: str, port: int) -> None:
    from waitress import serve

    dispatcher = dispatcher_for(settings)  # builds the channels: logs whether Twilio/SMTP or the local outbox is used
    app = create_app(settings, dispatcher=dispatcher)
    url = f"http://{host}:{port}/"
    print(f"Staff UI:     {url}", flush=True)
    if not (settings.twilio_configured and settings.smtp_configured):
        print(f"Local outbox: {settings.effective_outbox_dir}", flush=True)
    worker = scheduler = None
    if settings.redis_url:
        print("Worker:       Celery with beat, broker at REDIS_URL", flush=True)
        worker = start_celery(settings)
    else:
        print("Worker:       in this process, one pass a minute (set REDIS_URL to use Celery)", flush=True)
        scheduler = MinuteScheduler(settings, dispatcher)
        scheduler.start()
    try:
        serve(app, host=host, port=port, threads=8, ident="clinic-reminders")
    finally:
        if scheduler:
            scheduler.stop()
        if worker:
            worker.terminate()
            worker.wait(timeout=20)
