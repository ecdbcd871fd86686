"""Fixed-window request counters for the patient pages (/q/<token>).

A limit is `Limit(name, count, seconds)`: at most `count` hits per key in each window of
`seconds` (windows start at multiples of `seconds` on the clock). With REDIS_URL set the counts
live in Redis (INCR + EXPIRE), so every web process shares them; otherwise in this process,
behind a lock (waitress serves with threads).

A Redis that does not answer must not lock patients out of their questionnaire: the count falls
back to this process's own, and the fall-back is logged.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    seconds: int


class Counter(Protocol):
    def add(self, key: str, window_seconds: int, expires_at: float) -> int: ...
    def get(self, key: str) -> int: ...


class MemoryCounter:
    """Counts in this process; windows past their end are dropped as new ones open."""

    def __init__(self):
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def add(self, key: str, window_seconds: int, expires_at: float) -> int:
        with self._lock:
            count = self._counts.get(key, (0, expires_at))[0] + 1
            self._counts[key] = (count, expires_at)
            return count

    def get(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, (0, 0.0))[0]

    def forget_before(self, now: float) -> None:
        with self._lock:
            for key in [k for k, (_, ends) in self._counts.items() if ends <= now]:
                del self._counts[key]


class RedisCounter:
    def __init__(self, url: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def add(self, key: str, window_seconds: int, expires_at: float) -> int:
        pipe = self._client.pipeline()
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        return int(pipe.execute()[0])

    def get(self, key: str) -> int:
        value = self._client.get(key)
        return int(value) if value is not None else 0


class Limiter:
    """`hit(limit, key)` counts a request and says how long to wait (None: go ahead);
    `waiting(limit, key)` says the same without counting."""

    PREFIX = "reminders:ratelimit"

    def __init__(self, redis_url: str = "", clock: Callable[[], float] = time.time):
        self.clock = clock
        self.local = MemoryCounter()
        self.shared: Counter | None = RedisCounter(redis_url) if redis_url else None

    def hit(self, limit: Limit, key: str) -> int | None:
        now = self.clock()
        window_key, ends = self._window(limit, key, now)
        count = self._call("add", window_key, limit.seconds, ends)
        return self._retry_after(count > limit.count, ends, now)

    def waiting(self, limit: Limit, key: str) -> int | None:
        now = self.clock()
        window_key, ends = self._window(limit, key, now)
        return self._retry_after(self._call("get", window_key) >= limit.count, ends, now)

    def _window(self, limit: Limit, key: str, now: float) -> tuple[str, float]:
        index = int(now // limit.seconds)
        return f"{self.PREFIX}:{limit.name}:{key}:{index}", (index + 1) * limit.seconds

    @staticmethod
    def _retry_after(over: bool, ends: float, now: float) -> int | None:
        return max(1, math.ceil(ends - now)) if over else None

    def _call(self, method: str, *args):
        if self.shared is not None:
            try:
                return getattr(self.shared, method)(*args)
            except Exception as error:  # noqa: BLE001 - counted here instead; patients are not locked out
                log.warning("rate limit counter in Redis unavailable (%s); counting in this process",
                            type(error).__name__)
        self.local.forget_before(self.clock())
        return getattr(self.local, method)(*args)
