"""When the Celery worker and beat were last seen: for /healthz and the staff pages' banner.

With REDIS_URL set the service is several processes, and the web process cannot tell by itself
that the others run. Each leaves a mark in Redis (the broker, which they cannot work without):

- the worker: when it starts taking tasks and every HEARTBEAT_SECONDS after, from the timer of the
  loop that takes them (a consumer bootstep, see reminders.celery_app), so a worker that stops
  consuming stops marking;
- beat: when it starts and each time it hands out its pass (every 60 s), from beat's own thread;
- the pass: each time one finishes on a worker (`last_pass`).

A mark is the writer's UTC time, kept for KEEP_SECONDS (so "last seen 3 hours ago" can still be
said). The worker counts as running when seen within WORKER_WITHIN (90 s), beat within BEAT_WITHIN
(150 s: two passes missed).

Without REDIS_URL there is no worker or beat to watch: `reminders run` passes in its own process,
and its scheduler marks both in that process's memory (`LocalHeartbeats`), which is reported and
never counts as a problem.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from reminders import clock

log = logging.getLogger(__name__)

WORKER, BEAT, PASS = "worker", "beat", "pass"
ROLES = (WORKER, BEAT, PASS)
HEARTBEAT_SECONDS = 30.0
WORKER_WITHIN = timedelta(seconds=90)
BEAT_WITHIN = timedelta(seconds=150)
KEEP_SECONDS = 7 * 24 * 3600
KEY_PREFIX = "reminders:heartbeat:"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# A Redis that does not answer must not hold up a staff page: reads give up after this long.
REDIS_TIMEOUT_SECONDS = 1.0


def now() -> datetime:
    """The marks' clock: real UTC time, on the database's clock like every process's (never a
    test's or a request's injected clock)."""
    return clock.now()


class Heartbeats(Protocol):
    def mark(self, role: str, at: datetime | None = None) -> None: ...
    def seen(self) -> dict[str, datetime | None]: ...


class LocalHeartbeats:
    """Marks in this process's memory: `reminders run` without REDIS_URL."""

    def __init__(self):
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def mark(self, role: str, at: datetime | None = None) -> None:
        with self._lock:
            self._seen[role] = at or now()

    def seen(self) -> dict[str, datetime | None]:
        with self._lock:
            return {role: self._seen.get(role) for role in ROLES}


class RedisHeartbeats:
    """Marks in Redis, one key a role, shared by every process on that Redis."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                           socket_connect_timeout=REDIS_TIMEOUT_SECONDS)

    def mark(self, role: str, at: datetime | None = None) -> None:
        self.client.set(KEY_PREFIX + role, (at or now()).isoformat(), ex=KEEP_SECONDS)

    def seen(self) -> dict[str, datetime | None]:
        values = self.client.mget([KEY_PREFIX + role for role in ROLES])
        return {role: _instant(value) for role, value in zip(ROLES, values)}


def _instant(value) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
    except (UnicodeDecodeError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


_stores: dict[str, RedisHeartbeats] = {}
_stores_lock = threading.Lock()


def store_for(url: str | None) -> RedisHeartbeats | None:
    """This process's Redis store for a broker URL (redis-py's pool is safe across a fork); None when
    the URL is not a Redis one (`memory://`: no REDIS_URL)."""
    if not url or not url.startswith(REDIS_SCHEMES):
        return None
    with _stores_lock:
        if url not in _stores:
            _stores[url] = RedisHeartbeats(url)
        return _stores[url]


def mark(url: str | None, role: str) -> bool:
    """Mark `role` seen now in the Redis at `url`. Never raises: a process that cannot reach Redis
    says so in its log (and the web process reports the broker unreachable)."""
    store = store_for(url)
    if store is None:
        return False
    try:
        store.mark(role)
    except Exception as error:  # noqa: BLE001 - a heartbeat must never break the work it reports on
        log.warning("could not record the %s heartbeat in Redis (%s)", role, type(error).__name__)
        return False
    return True


def how_long(seconds: float) -> str:
    """12 minutes, 3 hours, 2 days: the banner's words for a time gone by."""
    minutes = max(int(seconds // 60), 1)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hours"
    return f"{hours // 24} days"


@dataclass(frozen=True)
class ServiceState:
    """What was seen of the worker and beat, as of `checked_at`."""

    watched: bool  # REDIS_URL is set: a worker or beat not seen is a problem
    checked_at: datetime
    worker: datetime | None = None
    beat: datetime | None = None
    last_pass: datetime | None = None
    broker_reachable: bool = True

    def ago(self, at: datetime | None) -> float | None:
        return None if at is None else max((self.checked_at - at).total_seconds(), 0.0)

    @property
    def worker_ok(self) -> bool:
        return self.worker is not None and self.ago(self.worker) <= WORKER_WITHIN.total_seconds()

    @property
    def beat_ok(self) -> bool:
        return self.beat is not None and self.ago(self.beat) <= BEAT_WITHIN.total_seconds()

    @property
    def missing(self) -> list[str]:
        """What is not running, for /healthz: ["broker"] when Redis cannot be read (then nothing
        is known of the others), else "worker" and "beat" when not seen recently."""
        if not self.watched:
            return []
        if not self.broker_reachable:
            return ["broker"]
        return [role for role, ok in ((WORKER, self.worker_ok), (BEAT, self.beat_ok)) if not ok]

    def as_json(self) -> dict:
        def seen(at: datetime | None, ok: bool | None) -> dict:
            ago = self.ago(at)
            return {"last_seen": _iso(at), "seconds_ago": None if ago is None else int(ago), "ok": ok}

        known = self.broker_reachable
        body = {
            "worker": seen(self.worker, self.worker_ok if known else None),
            "beat": {**seen(self.beat, self.beat_ok if known else None), "last_pass": _iso(self.last_pass)},
        }
        if not self.watched:
            for part in body.values():
                part["in_process"] = True  # `reminders run`'s scheduler: both in the web process
        if not known:
            body["broker"] = "unreachable"
        return body

    def problems(self) -> list[dict]:
        """The staff banner: a headline and a line of detail for each part that is not running."""
        found = []
        for role in self.missing:
            if role == "broker":
                found.append({"role": role, "headline": "The broker (Redis) cannot be reached: reminders and alerts "
                                                        "wait (crisis alerts are sent by the web process).",
                              "detail": "The worker and the scheduler need it; they carry on once it is back."})
            elif role == WORKER:
                ago = self.ago(self.worker)
                found.append({"role": role, "headline": "The worker is not running: reminders and alerts wait "
                                                        "(crisis alerts are sent by the web process).",
                              "detail": (f"Last seen {how_long(ago)} ago. " if ago is not None else "")
                              + "What waits is kept and goes out once a worker runs again."})
            elif role == BEAT:
                ago = self.ago(self.beat)
                headline = (f"The scheduler (beat) has not run for {how_long(ago)}." if ago is not None
                            else "The scheduler (beat) is not running.")
                found.append({"role": role, "headline": headline,
                              "detail": "Reminders, check-ins and repeated crisis alerts are not planned or handed "
                                        "out until it runs again."})
        return found


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None


def read_state(redis_url: str, local: Heartbeats | None = None, at: datetime | None = None) -> ServiceState | None:
    """The worker and beat as seen now. With REDIS_URL: from Redis (watched). Without: from this
    process's own scheduler when it has one (reported, never a problem), else None (nothing to say)."""
    at = at or now()
    if redis_url:
        store = store_for(redis_url)
        if store is None:
            return None  # a broker URL that is not plain Redis (sentinel://): nothing marks it either
        try:
            seen = store.seen()
        except Exception as error:  # noqa: BLE001 - reported as the broker being unreachable
            log.warning("could not read the worker and beat heartbeats from Redis (%s)", type(error).__name__)
            return ServiceState(True, at, broker_reachable=False)
        return ServiceState(True, at, seen[WORKER], seen[BEAT], seen[PASS])
    if local is None:
        return None
    seen = local.seen()
    return ServiceState(False, at, seen[WORKER], seen[BEAT], seen[PASS])


class ServiceWatch:
    """The web process's view: read_state, kept for `cache_seconds` so that staff pages (every page,
    and each tab's poll every few seconds) ask Redis at most once in that time. `local` is set by
    `reminders run` to its in-process scheduler's marks."""

    def __init__(self, redis_url: str, local: Heartbeats | None = None, cache_seconds: float = 5.0):
        self.redis_url, self.local, self.cache_seconds = redis_url, local, cache_seconds
        self._cached: tuple[float, ServiceState | None] | None = None
        self._lock = threading.Lock()

    def state(self, fresh: bool = False) -> ServiceState | None:
        with self._lock:
            if not fresh and self._cached is not None and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
        state = read_state(self.redis_url, self.local)
        with self._lock:
            self._cached = (time.monotonic(), state)
        return state
