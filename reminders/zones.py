"""Time zone names: the clinic's (CLINIC_TIMEZONE) and each patient's must be a real IANA zone."""
from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Names in the zone database that are not places: the server's own zone, a placeholder, a link
# used to build other zones. A patient's clock must be a real IANA zone.
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def iana_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_PLACES


def check_time_zone(value: str, label: str = "timezone") -> str:
    """The name itself when it is an IANA time zone, else ValueError saying so."""
    shown = value if len(value) <= 64 else value[:40] + "..."
    if value not in iana_zones():
        raise ValueError(f"{label} {shown!r} is not an IANA time zone (like America/Chicago)")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{label} {shown!r} is not an IANA time zone (like America/Chicago)") from exc
    return value
