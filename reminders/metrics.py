"""Prometheus metrics: what every process counts, and what the web process reads at scrape time.

Two kinds of numbers, kept apart on purpose:

- **Counted where it happens** (prometheus_client's multiprocess mode): messages handled by a
  sender (`reminders_messages_total{channel,kind,outcome}`, counted in whichever process sent
  them: a Celery worker's pool process, the worker's alert thread, `reminders tick`, the web
  process sending a crisis alert itself) and the Twilio webhooks' latency
  (`reminders_webhook_duration_seconds{hook}`, in the web process). Each process writes its own
  small memory-mapped file into one folder, PROMETHEUS_MULTIPROC_DIR (default
  REMINDERS_DATA_DIR/metrics), and `GET /metrics` adds up every file there, those of processes that
  have exited included: a tick's sends still count after the tick is gone. Web and worker must
  therefore share the folder (docker-compose: the `metrics` volume).
- **Read from the database at scrape time** (`DatabaseState`, in the web process): due and overdue
  rows, the oldest due row's age, open escalations and the oldest unacknowledged one's age, each
  channel's circuit breaker, and the worker's and beat's heartbeats (reminders.heartbeats). These
  are the database's state, the same whichever process asks, so nothing is pushed: a few bounded
  aggregate queries on indexed columns per scrape.

Where multiprocess mode is switched on: prometheus_client decides at import time
(`values.ValueClass`) from the PROMETHEUS_MULTIPROC_DIR variable, so a process that imported it
before the variable was set would count in its own memory only. Rather than depend on import
order in every entry point (`reminders web|run|tick`, `celery -A worker ...`), `setup()` (called
on first use, from the settings) creates the folder, sets the variable and installs the
multiprocess value class itself before the first metric exists; nothing else in the service
creates prometheus_client metrics. The file of each process is named after the host and the pid
(not the pid alone, the library's default): containers sharing the volume each have a pid 1.

Files are never deleted while the service runs (a counter of an exited process must keep
counting); a new one appears per process started (a tick, a restarted worker's pool process).
Empty the folder only with every process stopped: counters start again from zero, which
Prometheus's rate() and increase() take as a reset.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import wraps
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import func, select, text

from reminders.config import Settings, get_settings
from reminders.models import OutboxMessage
from reminders.models.outbox import PENDING_STATUSES
from reminders.models.replies import Escalation
from reminders.provider_health import breakers

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A due row not gone this long after its due time is overdue: beat passes every minute, and a
# healthy pass sends what is due within seconds (a long paced batch within a few minutes).
OVERDUE_AFTER = timedelta(minutes=5)
CHANNELS = ("sms", "email")  # always reported (0 when nothing waits), others when they have rows
WEBHOOK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0)  # Twilio gives up at 15 s
# What the scrape's queries may take (PostgreSQL) before the database part is reported down.
SCRAPE_STATEMENT_TIMEOUT_MS = 5000
NOT_COUNTED = ("not_claimed",)  # another process had the row: nothing happened here
# The classic text format, which every Prometheus reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname() or "host")
_lock = threading.Lock()
_state: dict = {"directory": None, "messages": None, "webhook": None}


def process_identifier() -> str:
    """A process's file name part: host and pid (pid alone collides across containers)."""
    return f"{_HOST}-{os.getpid()}"


def metrics_dir(settings: Settings) -> Path:
    configured = settings.prometheus_multiproc_dir or os.environ.get(ENVIRONMENT_VARIABLE, "")
    return Path(configured) if configured else Path(settings.data_dir) / "metrics"


def setup(settings: Settings | None = None) -> Path:
    """Switch this process to multiprocess mode in the settings' folder (once; later calls return
    the folder chosen first) and create the metrics. Safe to call from any entry point."""
    with _lock:
        if _state["directory"] is None:
            directory = metrics_dir(settings or get_settings())
            directory.mkdir(parents=True, exist_ok=True)
            os.environ[ENVIRONMENT_VARIABLE] = str(directory)
            from prometheus_client import Counter, Histogram, values

            values.ValueClass = values.MultiProcessValue(process_identifier)
            _state["messages"] = Counter(
                "reminders_messages", "Messages handled by a sender, by channel, kind and outcome "
                "(sent, failed, retrying, skipped, deferred, held, unknown, ...)",
                ("channel", "kind", "outcome"), registry=None)
            _state["webhook"] = Histogram(
                "reminders_webhook_duration_seconds", "Time to answer a Twilio webhook",
                ("hook",), buckets=WEBHOOK_BUCKETS, registry=None)
            _state["directory"] = directory
        elif os.environ.get(ENVIRONMENT_VARIABLE) != str(_state["directory"]):
            # Something cleared it (a test's environment): new files must go to the same folder.
            os.environ[ENVIRONMENT_VARIABLE] = str(_state["directory"])
        return _state["directory"]


# ---------------------------------------------------------------- counted where it happens

def count_sends(settings: Settings, sessions, outcomes: dict[int, str]) -> None:
    """Count a sender's outcomes (outbox id -> outcome) by the rows' channel and kind. Never
    raises: metrics must not cost a message."""
    counted = {outbox_id: outcome for outbox_id, outcome in outcomes.items() if outcome not in NOT_COUNTED}
    if not counted:
        return
    try:
        setup(settings)
        with sessions() as session:
            rows = session.execute(select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.kind)
                                   .where(OutboxMessage.id.in_(list(counted)))).all()
        messages = _state["messages"]
        for row in rows:
            messages.labels(str(row.channel), str(row.kind), counted[row.id]).inc()
    except Exception as error:  # noqa: BLE001
        log.warning("could not count %s message outcome(s) for /metrics (%s)", len(counted), type(error).__name__)


def timed(hook: str):
    """Decorator: observe how long a webhook view takes, in reminders_webhook_duration_seconds."""
    def decorate(view):
        @wraps(view)
        def observed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return view(*args, **kwargs)
            finally:
                try:
                    setup()
                    _state["webhook"].labels(hook).observe(time.perf_counter() - started)
                except Exception as error:  # noqa: BLE001 - the patient's answer comes first
                    log.warning("could not time the %s webhook for /metrics (%s)", hook, type(error).__name__)
        return observed
    return decorate


# ---------------------------------------------------------------- read at scrape time

def _timestamp(at: datetime | None) -> float | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()


def _age(now: datetime, at: datetime | None) -> float:
    if at is None:
        return 0.0
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return max((now - at).total_seconds(), 0.0)


class DatabaseState:
    """A prometheus_client collector: the database's state and the heartbeats, as of each scrape."""

    def __init__(self, sessions, now: Callable[[], datetime], service_watch=None):
        self.sessions, self.now, self.service_watch = sessions, now, service_watch

    def collect(self) -> Iterable:
        from prometheus_client.core import GaugeMetricFamily

        now = self.now()
        up = GaugeMetricFamily("reminders_database_up", "1 when the scrape could read the database")
        try:
            families = self._from_database(now)
            up.add_metric([], 1.0)
        except Exception as error:  # noqa: BLE001 - a scrape reports, it does not fail
            log.warning("/metrics could not read the database (%s)", type(error).__name__)
            families = []
            up.add_metric([], 0.0)
        yield up
        yield from families
        yield from self._heartbeats()

    def _from_database(self, now: datetime) -> list:
        from prometheus_client.core import GaugeMetricFamily

        with self.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_STATEMENT_TIMEOUT_MS}"))
            pending = (OutboxMessage.status.in_(PENDING_STATUSES), OutboxMessage.due_at <= now)
            due = dict(session.execute(select(OutboxMessage.channel, func.count()).where(*pending)
                                       .group_by(OutboxMessage.channel)).all())
            overdue = dict(session.execute(
                select(OutboxMessage.channel, func.count())
                .where(OutboxMessage.status.in_(PENDING_STATUSES), OutboxMessage.due_at <= now - OVERDUE_AFTER)
                .group_by(OutboxMessage.channel)).all())
            oldest_due = session.scalar(select(func.min(OutboxMessage.due_at)).where(*pending))
            open_count, oldest_open = session.execute(
                select(func.count(), func.min(Escalation.opened_at)).where(Escalation.status == "open")).one()
            channel_breakers = breakers(session)
            session.rollback()  # read only (and the SET LOCAL ends with it)

        due_family = GaugeMetricFamily("reminders_outbox_due", "Messages due now and not yet sent "
                                       "(planned or queued)", labels=["channel"])
        overdue_family = GaugeMetricFamily(
            "reminders_outbox_overdue",
            f"Messages due more than {int(OVERDUE_AFTER.total_seconds() // 60)} minutes ago and not yet sent",
            labels=["channel"])
        for channel in sorted(set(CHANNELS) | set(due) | set(overdue)):
            due_family.add_metric([str(channel)], float(due.get(channel, 0)))
            overdue_family.add_metric([str(channel)], float(overdue.get(channel, 0)))
        oldest = GaugeMetricFamily("reminders_outbox_oldest_due_age_seconds",
                                   "How long the oldest due message has waited (0: none waits)",
                                   value=_age(now, oldest_due))
        escalations = GaugeMetricFamily("reminders_escalations_open",
                                        "Possible crises no person has acknowledged yet", value=float(open_count or 0))
        oldest_escalation = GaugeMetricFamily(
            "reminders_escalation_oldest_unacknowledged_age_seconds",
            "How long the oldest unacknowledged escalation has been open (0: none)", value=_age(now, oldest_open))
        breaker_open = GaugeMetricFamily("reminders_provider_breaker_open",
                                         "1 while a channel's circuit breaker is open (its messages wait)",
                                         labels=["channel"])
        failures = GaugeMetricFamily("reminders_provider_consecutive_failures",
                                     "Transient provider failures in a row, by channel", labels=["channel"])
        for channel in sorted(set(CHANNELS) | set(channel_breakers)):
            state = channel_breakers.get(channel)  # none yet: the provider never failed
            breaker_open.add_metric([channel], 1.0 if state is not None and state.is_open else 0.0)
            failures.add_metric([channel], float(state.consecutive_failures or 0) if state is not None else 0.0)
        return [due_family, overdue_family, oldest, escalations, oldest_escalation, breaker_open, failures]

    def _heartbeats(self) -> Iterable:
        from prometheus_client.core import GaugeMetricFamily

        if self.service_watch is None:
            return
        try:
            state = self.service_watch.state()
        except Exception as error:  # noqa: BLE001
            log.warning("/metrics could not read the heartbeats (%s)", type(error).__name__)
            return
        if state is None:  # no REDIS_URL and no scheduler in this process: nothing is known
            return
        last_pass = _timestamp(state.last_pass)
        if last_pass is not None:
            yield GaugeMetricFamily("reminders_beat_last_pass_timestamp_seconds",
                                    "When a scheduler pass last finished (Unix time)", value=last_pass)
        seen = GaugeMetricFamily("reminders_heartbeat_timestamp_seconds",
                                 "When the worker and beat were last seen (Unix time)", labels=["role"])
        for role, at in (("worker", state.worker), ("beat", state.beat)):
            if at is not None:
                seen.add_metric([role], _timestamp(at))
        yield seen
        if state.watched:
            yield GaugeMetricFamily("reminders_broker_up", "1 when the heartbeats in Redis could be read",
                                    value=1.0 if state.broker_reachable else 0.0)


def exposition(settings: Settings, sessions, now: Callable[[], datetime], service_watch=None) -> tuple[bytes, str]:
    """The text Prometheus scrapes, and its content type: every process's counters (the files in
    the folder) and the database's state as of now."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = setup(settings)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    registry.register(DatabaseState(sessions, now, service_watch))
    return generate_latest(registry), CONTENT_TYPE
