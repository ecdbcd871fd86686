"""The Celery application, built from the settings, and the choice of dispatcher for a process.

Beat runs one pass a minute; workers send batches of outbox rows. Tasks are registered on the
app built here (never on Celery's default app), so a process that hands work to the workers
(the web app's crisis alerts, beat's pass) sends it to REDIS_URL and nowhere else.
"""
from __future__ import annotations

import gc
import importlib
import logging
import threading

from celery import Celery, bootsteps
from celery.signals import (after_task_publish, beat_init, setup_logging, worker_before_create_process,
                            worker_init, worker_process_init, worker_ready)
from sqlalchemy.orm import Session, sessionmaker

from reminders import clock, heartbeats
from reminders.alert_queue import AlertConsumerThread
from reminders.config import Settings, get_settings
from reminders.db import forget_inherited_connections, get_engine, session_factory
from reminders.dispatch import CeleryDispatcher, Dispatcher, in_process
from reminders.logs import configure_logging
from reminders.tasks import RUN_PASS_TASK, hand_out_queued_rows, register_tasks, send_alerts

# A send is a few database round trips and one provider call with its own timeout; a task still
# running after this long is stuck (a template is cut off far sooner, see reminders.rendering).
TASK_SOFT_TIME_LIMIT = 120
TASK_TIME_LIMIT = 180
# Imported by a pool process at its first send (the channels are built there, never before the fork).
SEND_MODULES = ("reminders.channels.twilio.client", "reminders.channels.smtp_email", "reminders.channels.local_outbox",
                "twilio.rest.api.v2010.account.message", "prometheus_client")


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("reminders", broker=settings.redis_url or "memory://", set_as_current=False)
    app.conf.update(
        task_ignore_result=True,
        # A task is acknowledged only after it ran, so a worker that dies mid-task has it
        # redelivered; the outbox claim makes the redelivery a no-op if the send happened.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A process handing work out must not hang on a broker that is down: it fails fast, and
        # the dispatcher puts the rows back for the next pass (or sends urgent ones itself).
        broker_connection_timeout=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        broker_transport_options={"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 10},
        timezone="UTC",
        # A pass still waiting in the queue when the next is due is dropped: the next one does its work.
        beat_schedule={"pass-every-minute": {"task": RUN_PASS_TASK, "schedule": float(settings.pass_seconds),
                                             "options": {"expires": float(settings.pass_seconds)}}},
        worker_hijack_root_logger=False,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        task_time_limit=TASK_TIME_LIMIT,
    )
    register_tasks(app)
    if settings.fhir_base_url:  # beat's FHIR sync, every FHIR_SYNC_MINUTES
        from reminders.fhir.task import register_fhir_sync

        register_fhir_sync(app, settings)
    app.steps["consumer"].add(WorkerHeartbeat)
    app.steps["worker"].add(AlertQueue)
    return app


class AlertQueue(bootsteps.StartStopStep):
    """The alert queue's consumer (reminders.alert_queue), in the worker's main process: started
    once the pool's processes are, stopped (finishing the alerts in hand) before they are, on a
    warm shutdown and a cold one alike."""

    requires = ("celery.worker.components:Pool",)

    def create(self, worker):
        return AlertConsumerThread(worker.app.connection_for_read(), send_alerts)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """The worker's heartbeat (reminders.heartbeats): marked when the worker starts taking tasks and
    every HEARTBEAT_SECONDS after, from the timer of the loop that takes them, in the worker's main
    process. A worker whose connection to the broker is lost restarts this step with its consumer;
    one that stops or hangs stops marking."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        self.timer_entry = None
        super().__init__(parent, **kwargs)

    def start(self, consumer) -> None:
        url = consumer.app.conf.broker_url

        def beat_once() -> None:
            heartbeats.mark(url, heartbeats.WORKER)

        beat_once()
        self.timer_entry = consumer.timer.call_repeatedly(heartbeats.HEARTBEAT_SECONDS, beat_once, priority=10)

    def stop(self, consumer) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


# Beat's thread (standalone `celery beat`, or embedded with `worker --beat`): set when beat starts,
# so that only the passes beat itself hands out mark it seen, not those a worker asks for.
_beat_thread = threading.local()


@worker_init.connect(dispatch_uid="reminders.worker_follows_the_database_clock")
def _worker_follows_the_database_clock(**_kwargs) -> None:
    """Due times are compared on the database server's clock (reminders.clock); prefork children
    inherit the offset and read the clock again themselves (reminders.tasks)."""
    clock.follow(get_engine())


@beat_init.connect(dispatch_uid="reminders.beat_seen_at_start")
def _beat_started(sender=None, **_kwargs) -> None:
    app = getattr(sender, "app", None)
    url = app.conf.broker_url if app is not None else None
    _beat_thread.broker_url = url
    clock.follow(get_engine())  # beat's marks are on the database's clock, like everyone's
    heartbeats.mark(url, heartbeats.BEAT)


@after_task_publish.connect(dispatch_uid="reminders.beat_seen_with_each_pass")
def _beat_handed_out_a_pass(sender=None, **_kwargs) -> None:
    """Beat handed out its pass (every PASS_SECONDS): beat is seen, whether or not a worker takes it."""
    url = getattr(_beat_thread, "broker_url", None)
    if url and sender == RUN_PASS_TASK:
        heartbeats.mark(url, heartbeats.BEAT)


def dispatcher_for(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Dispatcher:
    """The dispatcher a process uses for its whole life: Celery when REDIS_URL is set, else in process."""
    sessions = sessions or session_factory(settings.effective_database_url)
    local = in_process(settings, sessions)
    if not settings.redis_url:
        return local
    return CeleryDispatcher(make_celery(settings), sessions, local)


@worker_ready.connect(dispatch_uid="reminders.hand_out_queued_rows")
def _on_worker_ready(sender=None, **_kwargs) -> None:
    """A worker that starts (after a deploy, a crash, a reboot) hands out what a dead worker left
    queued and asks for a pass at once, instead of waiting up to a minute for beat."""
    app = getattr(sender, "app", None)
    if app is not None and RUN_PASS_TASK in app.tasks:
        hand_out_queued_rows(app)
        app.send_task(RUN_PASS_TASK)


@setup_logging.connect
def _same_logging_as_the_cli(loglevel=None, **_kwargs) -> None:
    """The worker and beat log through the same redacting set-up as `reminders` (no PHI in logs)."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    configure_logging(level if isinstance(level, int) else logging.INFO)


@worker_before_create_process.connect(dispatch_uid="reminders.freeze_before_fork")
def _freeze_before_fork(**_kwargs) -> None:
    """In the worker's main process, just before a prefork child is forked: what a send imports
    is imported once here, so the children share it instead of each importing its own copy at
    its first send; then what the app imported is moved out of the collector's reach, so a
    collection in a child does not write to (and so copy) every page of objects it shares with
    the main process (benchmarks/ratios.py: worker PSS)."""
    for name in SEND_MODULES:
        importlib.import_module(name)
    gc.freeze()


@worker_process_init.connect(dispatch_uid="reminders.fresh_connections_after_fork")
def _fresh_connections_after_fork(**_kwargs) -> None:
    """A prefork child (a replacement after a time-limit kill too) must not use the connections the
    main process opened when it started (handing out queued rows): it opens its own."""
    forget_inherited_connections()
