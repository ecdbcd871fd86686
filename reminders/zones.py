"""Time zone names: the clinic's (CLINIC_TIMEZONE) and each patient's must be an IANA region zone.

A region zone ("America/New_York") follows the place's summer time. The database also holds fixed
offsets and old aliases ("EST", "Etc/GMT+5", "EST5EDT", "UTC", "US/Eastern"): with "EST" every clock
time is an hour off all summer, so those are refused with the region to use instead.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Names in the zone database that are not places: the server's own zone, a placeholder, a link
# used to build other zones. A patient's clock must be a real IANA zone.
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})
# The first part of every region zone's name.
REGIONS = frozenset({"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe",
                     "Indian", "Pacific"})
# A standard (winter) offset in minutes -> the region most clinics with it mean.
REGION_FOR_OFFSET = {
    -600: "Pacific/Honolulu", -540: "America/Anchorage", -480: "America/Los_Angeles", -420: "America/Denver",
    -360: "America/Chicago", -300: "America/New_York", -240: "America/Halifax", -210: "America/St_Johns",
    -180: "America/Sao_Paulo", 0: "Europe/London", 60: "Europe/Paris", 120: "Europe/Athens", 180: "Europe/Moscow",
    240: "Asia/Dubai", 330: "Asia/Kolkata", 480: "Asia/Singapore", 540: "Asia/Tokyo", 600: "Australia/Sydney",
    720: "Pacific/Auckland",
}
TYPED_OFFSET = re.compile(r"^(?:UTC|GMT|Z)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
EXAMPLE = "America/New_York"


@lru_cache(maxsize=1)
def iana_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_PLACES


def is_region(name: str) -> bool:
    return name.split("/", 1)[0] in REGIONS and "/" in name and name in iana_zones()


def _winter_offset_minutes(name: str) -> int | None:
    try:
        offset = datetime(2026, 1, 15, 12, tzinfo=timezone.utc).astimezone(ZoneInfo(name)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return int(offset.total_seconds() // 60) if offset is not None else None


def _typed_offset_minutes(value: str) -> int | None:
    """'UTC-5', 'GMT+05:30', '-0500' as minutes east of UTC."""
    found = TYPED_OFFSET.match(value.strip())
    if not found:
        return None
    minutes = int(found.group(2)) * 60 + int(found.group(3) or 0)
    return -minutes if found.group(1) == "-" else minutes


def suggested_region(value: str) -> str | None:
    """The region zone someone who typed `value` most likely means, when one can be told."""
    if value.startswith("Etc/GMT") and value[7:8] in "+-" and value[8:].isdigit():
        # POSIX style: Etc/GMT+5 is five hours *behind* UTC.
        minutes = -int(value[7:]) * 60
    elif value in iana_zones():
        minutes = _winter_offset_minutes(value)
    else:
        minutes = _typed_offset_minutes(value)
    return REGION_FOR_OFFSET.get(minutes) if minutes is not None else None


def _keeps_one_offset(name: str) -> bool:
    winter = _winter_offset_minutes(name)
    try:
        summer = datetime(2026, 7, 15, 12, tzinfo=timezone.utc).astimezone(ZoneInfo(name)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return True
    return summer is not None and winter == int(summer.total_seconds() // 60)


def region_problem(value: str) -> str | None:
    """Why `value` is not a region zone, in words for staff ("EST is a fixed offset; use
    America/New_York"), or None when it is one."""
    if is_region(value):
        return None
    shown = value if len(value) <= 64 else value[:40] + "..."
    region = suggested_region(value)
    use = f"use {region}" if region else f"use the region's name, like {EXAMPLE}"
    if _typed_offset_minutes(value) is not None or value in iana_zones() and _keeps_one_offset(value):
        return f"{shown} is a fixed offset (no summer time); {use}"
    if value in iana_zones():
        return f"{shown} is an old alias, not a region; {use}"
    return f"{shown!r} is not an IANA time zone; {use}"


def check_time_zone(value: str, label: str = "timezone") -> str:
    """The name itself when it is an IANA region zone, else ValueError saying which one to use."""
    problem = region_problem(value)
    if problem is not None:
        raise ValueError(f"{label} {problem}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{label} {value[:40]!r} is not an IANA time zone; use a region like {EXAMPLE}") from exc
    return value
