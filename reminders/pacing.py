"""Pacing: no sending number is asked to send faster than the carrier lets it.

US carriers and Twilio queue (and in the end refuse, with 429) what a sender sends above its
rate: about 1 message a second for a long code, 3 for a toll-free number, 100 for a short code
or a Messaging Service. `SMS_PER_SECOND` overrides what is read from `TWILIO_FROM`; a location's own
number goes at the location's texts a second, else at its kind's rate. Each number has its own
bucket, and the numbers of several locations are sent side by side (reminders.sending).

The rate holds for every worker and process together: the bucket lives in Redis (one Lua script,
so taking a slot is atomic), or in this process when there is no Redis. It is strict spacing (a
slot every 1/rate seconds; a slot taken late may be made up by a quarter of an interval), so
what the provider sees never runs ahead of the rate.

Urgent messages (staff crisis alerts, answers to a patient) go ahead of reminders: an urgent
sender waiting for a slot marks the bucket, and reminders stand back until it has gone.

A 429 with Retry-After is not handled here: the provider breaker (reminders.provider_health)
holds the channel's rows for that long, for every process, and a batch in hand stops at once
(reminders.sending). `pause` holds a sender in the bucket itself, in real time; a message that
would wait longer than LONGEST_SLOT_WAIT for its slot is handed back as a transient failure
instead of holding its worker.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

LONG_CODE_RATE, TOLL_FREE_RATE, SHORT_CODE_RATE = 1.0, 3.0, 100.0
TOLL_FREE = re.compile(r"^\+18(00|33|44|55|66|77|88)\d{7}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")
URGENT_MARK_SECONDS = 5.0  # an urgent waiter's mark outlives it by at most this (a process that died)
LONGEST_WAIT = 3600.0
# One message never waits longer than this for its slot (a sender paused by Retry-After): it is
# handed back as a transient failure, to be retried, rather than holding a worker's task.
LONGEST_SLOT_WAIT = 30.0
# A slot taken a little late (the sleep overshot) may be made up, up to this part of an interval,
# so the rate held is the rate set, not a little under it; at most that much burst after a pause.
CATCH_UP = 0.25


class SenderPaused(Exception):
    """The sender's next slot is further away than a message may wait for it."""

    def __init__(self, seconds: float):
        super().__init__(f"the sender is paused for {seconds:.0f} s")
        self.seconds = seconds



def default_rate(sender: str) -> float:
    """Messages per second a sending number or Messaging Service may send, from its form."""
    sender = (sender or "").strip().rpartition(":")[2]  # "whatsapp:+1..." is paced as its number
    if sender.startswith("MG") or SHORT_CODE.match(sender):
        return SHORT_CODE_RATE
    if TOLL_FREE.match(sender.replace(" ", "").replace("-", "")):
        return TOLL_FREE_RATE
    return LONG_CODE_RATE


def rate_for(settings, sender: str | None = None) -> float:
    return settings.sms_per_second or default_rate(sender or settings.twilio_from)


@dataclass
class LocalBucket:
    """The bucket in this process, for a service without Redis (and for tests, with a clock)."""

    clock: Callable[[], float] = time.monotonic
    _next: dict[str, float] = field(default_factory=dict)  # sender -> when its next slot is free
    _urgent_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, sender: str, rate: float, urgent: bool) -> float:
        """Take the sender's next slot now (0.0), or how many seconds to wait before asking again."""
        with self._lock:
            now = self.clock()
            free_at = self._next.get(sender, now)
            if not urgent and self._urgent_until.get(sender, 0.0) > now:
                return max(free_at - now, 0.0) + 1.0 / rate  # an urgent message goes first
            if free_at > now:
                if urgent:
                    self._urgent_until[sender] = now + URGENT_MARK_SECONDS
                return free_at - now
            self._next[sender] = max(free_at, now - CATCH_UP / rate) + 1.0 / rate
            if urgent:
                self._urgent_until.pop(sender, None)
            return 0.0

    def pause(self, sender: str, seconds: float) -> None:
        with self._lock:
            now = self.clock()
            self._next[sender] = max(self._next.get(sender, now), now + seconds)


# KEYS: the sender's next free slot, its urgent mark. ARGV: interval (µs), urgent (0/1),
# mark lifetime (ms), now (µs; empty: the Redis server's clock, the one all workers share).
_TAKE = """
local now
if ARGV[4] ~= '' then now = tonumber(ARGV[4]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local interval = tonumber(ARGV[1])
local free_at = tonumber(redis.call('GET', KEYS[1]) or now)
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return math.max(free_at - now, 0) + interval
end
if free_at > now then
  if ARGV[2] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
  return free_at - now
end
redis.call('SET', KEYS[1], math.max(free_at, now - math.floor(interval / 4)) + interval, 'PX', 3600000)  -- CATCH_UP
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
return 0
"""

# KEYS: the sender's next free slot. ARGV: pause (µs), now (µs, or empty).
_PAUSE = """
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local free_at = tonumber(redis.call('GET', KEYS[1]) or now)
redis.call('SET', KEYS[1], math.max(free_at, now + tonumber(ARGV[1])), 'PX', 3600000)
return 0
"""


class RedisBucket:
    """The bucket every worker and process shares, in Redis."""

    def __init__(self, client, prefix: str = "reminders:pace", clock: Callable[[], float] | None = None):
        self.client = client
        self.prefix = prefix
        self.clock = clock  # tests only: otherwise the Redis server's clock
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)

    def _now(self) -> str:
        return str(int(self.clock() * 1_000_000)) if self.clock else ""

    def take(self, sender: str, rate: float, urgent: bool) -> float:
        keys = [f"{self.prefix}:{sender}:next", f"{self.prefix}:{sender}:urgent"]
        waited = self._take(keys=keys, args=[int(1_000_000 / rate), int(urgent),
                                             int(URGENT_MARK_SECONDS * 1000), self._now()])
        return int(waited) / 1_000_000

    def pause(self, sender: str, seconds: float) -> None:
        self._pause(keys=[f"{self.prefix}:{sender}:next"], args=[int(seconds * 1_000_000), self._now()])


class Pacer:
    """Waits, before each message, for the sender's next slot."""

    def __init__(self, bucket, rate: float, sender: str, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("a sending rate must be above 0 messages a second")
        self.bucket, self.rate, self.sender, self.sleep = bucket, rate, sender, sleep

    def wait_for_slot(self, urgent: bool = False, longest: float = LONGEST_SLOT_WAIT) -> float:
        """Block until this sender may send one message. Returns the seconds waited; raises
        SenderPaused, before sleeping, when that would be longer than `longest`."""
        waited = 0.0
        while True:
            try:
                wait = self.bucket.take(self.sender, self.rate, urgent)
            except Exception as error:  # noqa: BLE001 - Redis away: pace this process on its own
                log.warning("pacing: the shared bucket is unavailable (%s); pacing in this process only",
                            type(error).__name__)
                self.bucket = LocalBucket()
                continue
            if wait <= 0:
                return waited
            if waited + wait > longest:
                raise SenderPaused(wait)
            self.sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """The provider said Retry-After: nobody sends from this sender for that long."""
        try:
            self.bucket.pause(self.sender, min(seconds, LONGEST_WAIT))
        except Exception as error:  # noqa: BLE001
            log.warning("pacing: could not record the provider's pause (%s)", type(error).__name__)


_pacers: dict[tuple, Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(settings, sender: str | None = None) -> Pacer:
    """The pacer of this process for a sending address, TWILIO_FROM by default (one bucket connection
    per process and sender)."""
    sender = sender or settings.twilio_from
    rate = rate_for(settings, sender)
    key = (settings.redis_url, sender, rate)
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None:
            bucket = LocalBucket()
            if settings.redis_url:
                import redis

                bucket = RedisBucket(redis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                                          socket_connect_timeout=3))
            pacer = _pacers[key] = Pacer(bucket, rate, sender or "sms")
        return pacer
