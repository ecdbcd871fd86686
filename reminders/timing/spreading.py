"""One non-urgent text a day: a check-in or nudge that would share its day with another moves on.

Pure: no database, no clock.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from reminders.channel_specs import is_text_channel
from reminders.timing.quiet_hours import local_moment
from reminders.timing.rules import CARING_CONTACT, CHECKIN, MISSED_VISIT, NUDGE, PLAN_MAINTENANCE, REBOOK_NUDGE

# How far a non-urgent text may be pushed to find a day without another one.
SPREAD_DAYS_LIMIT = 7

# Texts that can wait a day. Pre-visit reminders, visit_moved, replies and staff alerts are
# never moved and do not hold a day.
NON_URGENT_KINDS = (CHECKIN, NUDGE)


def is_non_urgent(kind: str, channel: str, rule_name: str = "") -> bool:
    """A text that can wait a day for another to have it. "We missed you" cannot: it goes the
    same day, whatever else that day holds."""
    return kind in NON_URGENT_KINDS and is_text_channel(channel) and rule_name != MISSED_VISIT


def spread_rank(rule_name: str) -> int:
    """Which of two non-urgent texts wanted the same day keeps it (lower keeps it)."""
    return next((rank for rank, name in enumerate(SPREAD_ORDER) if rule_name.startswith(name)), len(SPREAD_ORDER))


# First keeps the day. The day-after check-in asks about side effects while they matter; a
# routine weekly check-in is the one that can wait a day; a caring contact waits for anything (a
# pending one that booking will skip must not move a real text).
SPREAD_ORDER = ("checkin_day_after", REBOOK_NUDGE, PLAN_MAINTENANCE, "checkin_weekly", CARING_CONTACT)


def spread_day(wanted: date, taken: set[date], limit: int = SPREAD_DAYS_LIMIT) -> date:
    """The first day from `wanted` on that holds no other non-urgent text; `wanted` itself when
    none within `limit` days is free (a text must not vanish for want of a quiet day)."""
    for offset in range(limit + 1):
        day = wanted + timedelta(days=offset)
        if day not in taken:
            return day
    return wanted


def moved_to_day(instant: datetime, day: date, zone: str) -> datetime:
    """The same local clock time as `instant`, on `day` (UTC)."""
    tz = ZoneInfo(zone)
    return local_moment(day, instant.astimezone(tz).time().replace(tzinfo=None), tz)


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()
