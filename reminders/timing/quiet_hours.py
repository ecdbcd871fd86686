"""Quiet hours in the patient's own time zone. Pure; correct across DST changes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)  # local time quiet hours begin
    end: time = time(8, 0)  # local time they end

    def contains(self, instant: datetime, zone: str) -> bool:
        local = instant.astimezone(ZoneInfo(zone)).time()
        if self.start > self.end:  # the usual case: spans midnight
            return local >= self.start or local < self.end
        return self.start <= local < self.end

    def next_allowed(self, instant: datetime, zone: str) -> datetime:
        """`instant` itself when it is outside quiet hours, else the moment they end (UTC)."""
        if not self.contains(instant, zone):
            return instant
        tz = ZoneInfo(zone)
        local = instant.astimezone(tz)
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        # Built from the local wall-clock date, so 08:00 stays 08:00 on the day clocks change.
        return local_moment(day, self.end, tz)

    def last_allowed_before(self, instant: datetime, zone: str) -> datetime:
        """The last minute before quiet hours that precede `instant` began (UTC)."""
        tz = ZoneInfo(zone)
        local = instant.astimezone(tz)
        day = local.date()
        if self.start > self.end and local.time() < self.end:
            day -= timedelta(days=1)
        return local_moment(day, self.start, tz) - timedelta(minutes=1)


def local_moment(day, at: time, tz: ZoneInfo) -> datetime:
    """A local wall-clock time on a date, as UTC. A time skipped by a DST jump moves forward."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:  # in the spring-forward gap
        aware = (naive + timedelta(hours=1)).replace(tzinfo=tz)
    return aware.astimezone(timezone.utc)
