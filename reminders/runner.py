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

from reminders import clock, heartbeats
from reminders.celery_app import dispatcher_for
from reminders.config import Settings
from reminders.db import get_engine
from reminders.dispatch import Dispatcher
from reminders.models import utcnow
from reminders.pipeline import run_pass
from reminders.web import create_app, server_options

log = logging.getLogger(__name__)


class MinuteScheduler(threading.Thread):
    """Runs a pass every PASS_SECONDS (on the minute, by default) until stopped.

    It is this process's worker and beat both: each minute marks them seen in `heartbeats` (and
    `last_pass` once the pass is done), which /healthz reports (reminders.heartbeats)."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher):
        super().__init__(name="reminders-scheduler", daemon=True)
        self.settings = settings
        self.dispatcher = dispatcher
        self.stopping = threading.Event()
        self.heartbeats = heartbeats.LocalHeartbeats()

    def run(self) -> None:
        while not self.stopping.is_set():
            now = utcnow()
            self.heartbeats.mark(heartbeats.WORKER)
            self.heartbeats.mark(heartbeats.BEAT)
            try:
                summary = run_pass(self.settings, now, dispatcher=self.dispatcher)
                self.heartbeats.mark(heartbeats.PASS)
                if any(summary.get(k) for k in ("sent", "failed", "deferred", "skipped")):
                    log.info("pass at %s: %s", now.isoformat(timespec="seconds"), summary)
            except Exception:  # noqa: BLE001 - the scheduler must outlive a bad pass
                log.exception("pass at %s failed; the next one will try again", now.isoformat(timespec="seconds"))
            self.stopping.wait(self.until_next_pass())

    def until_next_pass(self) -> float:
        """Seconds to the next pass: passes start on the minute (on a multiple of PASS_SECONDS)."""
        every = self.settings.pass_seconds
        now = utcnow().timestamp()
        return every - now % every

    def stop(self) -> None:
        self.stopping.set()


def start_celery(settings: Settings) -> subprocess.Popen:
    """A Celery worker with an embedded beat, on the same database, data folder and templates as
    this process (it runs from the package's folder, so relative defaults must not move)."""
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--beat", "--loglevel", "INFO",
               "--concurrency", "2", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REMINDERS_DATA_DIR": str(settings.data_dir.resolve()),
           "DATABASE_URL": settings.effective_database_url, "TEMPLATES_DIR": str(settings.templates_dir.resolve())}
    if settings.outbox_dir:
        env["OUTBOX_DIR"] = str(settings.outbox_dir.resolve())
    return subprocess.Popen(command, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env)


def run_service(settings: Settings, host: str, port: int) -> None:
    from waitress import serve

    clock.follow(get_engine(settings.effective_database_url))
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
        app.extensions["reminders.service_watch"].local = scheduler.heartbeats
        scheduler.start()
    try:
        serve(app, host=host, port=port, threads=8, ident="clinic-reminders", **server_options(settings))
    finally:
        if scheduler:
            scheduler.stop()
        if worker:
            worker.terminate()
            worker.wait(timeout=20)
