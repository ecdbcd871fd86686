"""Fixed-window request counters for the patient pages (/q/<token>), and growing delays after
failed sign-ins (`Throttle`).

A limit is `Limit(name, count, seconds)`: at most `count` hits per key in each window of
`seconds` (windows start at multiples of `seconds` on the clock). With REDIS_URL set the counts
live in Redis (INCR + EXPIRE), so every web process shares them; otherwise in this process,
behind a lock (waitress serves with threads).

A Redis that does not answer must not lock patients out of their questionnaire: the count falls
back to this process's own, and the fall-back is logged.

A `Throttle` counts failures per key (an address, an account) and makes the next attempt wait
once there have been too many: 1 second, then 2, 4 ... at most a minute (`Backoff`). It never
locks anything: whoever waits the few seconds is heard. Each attempt is counted before it is
checked, in one step (a Lua script in Redis, a lock here), so a burst of parallel guesses gets
no more checks than one guess after another would; a right password takes its count back.
Time is the caller's `now` (seconds), so the app's injected clock drives it.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

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


# ---------------------------------------------------------------- growing delays after failures

@dataclass(frozen=True)
class Backoff:
    """`free` failures cost nothing; after them each next attempt waits `first_delay` seconds from
    the last one, doubled with each further failure, at most `max_delay`. The failures are
    forgotten `window` seconds after the last one."""
    name: str
    free: int = 5
    window: int = 15 * 60
    first_delay: int = 1
    max_delay: int = 60

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return float(min(self.max_delay, self.first_delay * 2 ** min(failures - self.free, 32)))


@dataclass(frozen=True)
class Taken:
    """What `Throttle.take` answers: `wait` seconds (nothing was counted), or None and each key's
    failures with this attempt counted."""
    wait: int | None
    failures: tuple[int, ...] = ()


class MemoryFailures:
    """Failures in this process: key -> (failures, time of the last one, when the key may go)."""

    def __init__(self):
        self._state: dict[str, tuple[int, float, float]] = {}
        self._lock = threading.Lock()
        self._swept_at = float("-inf")

    def take(self, backoff: Backoff, now: float, keys: Sequence[str], conditions: Sequence[int]) -> Taken:
        with self._lock:
            self._sweep(now)
            states = [self._current(backoff, key, now) for key in keys]
            wait = _wait(backoff, now, states, conditions)
            if wait is not None:
                return Taken(wait)
            forget_at = now + backoff.window + backoff.max_delay
            for key, (failures, _) in zip(keys, states):
                self._state[key] = (failures + 1, now, forget_at)
            return Taken(None, tuple(failures + 1 for failures, _ in states))

    def forgive(self, keys: Sequence[str], clear: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                if key in self._state:
                    failures, last, forget_at = self._state[key]
                    self._state[key] = (max(failures - 1, 0), last, forget_at)
            for key in clear:
                self._state.pop(key, None)

    def _current(self, backoff: Backoff, key: str, now: float) -> tuple[int, float]:
        failures, last, _ = self._state.get(key, (0, 0.0, 0.0))
        return (0, last) if last < now - backoff.window else (failures, last)

    def _sweep(self, now: float) -> None:
        """Drop keys whose failures are forgotten (at most once a minute: many addresses may be counted)."""
        if now - self._swept_at < 60:
            return
        self._swept_at = now
        for key in [k for k, (_, _, forget_at) in self._state.items() if forget_at < now]:
            del self._state[key]


def _wait(backoff: Backoff, now: float, states: Sequence[tuple[int, float]], conditions: Sequence[int]) -> int | None:
    """The longest wait any key asks for; a key with a condition asks only while that key has failures."""
    wait = 0.0
    for (failures, last), condition in zip(states, conditions):
        if condition >= 0 and states[condition][0] == 0:
            continue
        wait = max(wait, last + backoff.delay(failures) - now)
    return max(1, math.ceil(wait)) if wait > 0 else None


# KEYS: the keys. ARGV: now, window, free, first delay, max delay, seconds to keep a key, then for
# each key the (1-based) index of the key whose failures it depends on, or 0.
_TAKE = """
local now, window, free = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first, longest, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local failures, last = {}, {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'f', 't')
  failures[i], last[i] = tonumber(state[1]) or 0, tonumber(state[2]) or 0
  if last[i] < now - window then failures[i] = 0 end
end
local wait = 0
for i = 1, #KEYS do
  local condition = tonumber(ARGV[6 + i])
  if failures[i] >= free and (condition == 0 or failures[condition] > 0) then
    local delay = math.min(longest, first * 2 ^ math.min(failures[i] - free, 32))
    wait = math.max(wait, last[i] + delay - now)
  end
end
if wait > 0 then return {tostring(wait)} end
local counted = {'0'}
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'f', failures[i] + 1, 't', ARGV[1])
  redis.call('EXPIRE', key, keep)
  counted[i + 1] = tostring(failures[i] + 1)
end
return counted
"""
# KEYS: the keys to take one failure back from, then the keys to clear. ARGV: how many of the first.
_FORGIVE = """
for i, key in ipairs(KEYS) do
  if i > tonumber(ARGV[1]) then
    redis.call('DEL', key)
  elseif (tonumber(redis.call('HGET', key, 'f') or '0') or 0) > 0 then
    redis.call('HINCRBY', key, 'f', -1)
  end
end
return 0
"""


class RedisFailures:
    def __init__(self, url: str):
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._take = self._client.register_script(_TAKE)
        self._forgive = self._client.register_script(_FORGIVE)

    def take(self, backoff: Backoff, now: float, keys: Sequence[str], conditions: Sequence[int]) -> Taken:
        keep = backoff.window + backoff.max_delay + 60
        answer = self._take(keys=list(keys), args=[repr(now), backoff.window, backoff.free, backoff.first_delay,
                                                   backoff.max_delay, keep, *(c + 1 for c in conditions)])
        values = [float(v) for v in answer]
        if len(values) == 1:
            return Taken(max(1, math.ceil(values[0])))
        return Taken(None, tuple(int(v) for v in values[1:]))

    def forgive(self, keys: Sequence[str], clear: Sequence[str]) -> None:
        self._forgive(keys=[*keys, *clear], args=[len(keys)])


class Throttle:
    """Growing delays after failures, per key (see Backoff), shared by every web process through
    Redis when REDIS_URL is set, else counted in this process. A Redis that does not answer
    falls back to this process's count (logged), as the page limits do."""

    PREFIX = "reminders:backoff"

    def __init__(self, redis_url: str = ""):
        self.local = MemoryFailures()
        self.shared: RedisFailures | None = RedisFailures(redis_url) if redis_url else None

    def take(self, backoff: Backoff, now: float, keys: Sequence[str],
             only_after_failures: Mapping[str, str] | None = None) -> Taken:
        """Count one attempt under every key, unless a key says wait: then `Taken(wait=seconds)`
        and nothing is counted. `only_after_failures` maps a key to another of `keys`: the first
        makes the caller wait only while the second has failures of its own (an account's delays
        hold back only the addresses that have got its password wrong)."""
        keys = list(keys)
        if not keys:
            return Taken(None)
        conditions = [keys.index(only_after_failures[key]) if only_after_failures and key in only_after_failures
                      else -1 for key in keys]
        return self._call("take", backoff, now, [self._key(backoff, k) for k in keys], conditions)

    def forgive(self, backoff: Backoff, keys: Sequence[str] = (), clear: Sequence[str] = ()) -> None:
        """An attempt that was right: take its failure back from `keys`, and forget `clear` altogether."""
        self._call("forgive", [self._key(backoff, k) for k in keys], [self._key(backoff, k) for k in clear])

    def _key(self, backoff: Backoff, key: str) -> str:
        return f"{self.PREFIX}:{backoff.name}:{key}"

    def _call(self, method: str, *args):
        if self.shared is not None:
            try:
                return getattr(self.shared, method)(*args)
            except Exception as error:  # noqa: BLE001 - counted here instead; nobody is locked out
                log.warning("sign-in failure counts in Redis unavailable (%s); counting in this process",
                            type(error).__name__)
        return getattr(self.local, method)(*args)
