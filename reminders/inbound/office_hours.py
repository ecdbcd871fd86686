"""When a nurse will read the inbox: office hours in the clinic's zone (a location's, for a text
sent to it), with its holidays closed. Pure.

`when_read(now, ...)` says "today" inside office hours, else when the office next opens, in words a
patient reads on a lock screen ("tomorrow at 8 AM", "Monday at 8 AM"), in English or Spanish.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("el lunes", "el martes", "el miércoles", "el jueves", "el viernes", "el sábado", "el domingo"),
}
_TOMORROW = {"en": "tomorrow", "es": "mañana"}
_TODAY = {"en": "today", "es": "hoy"}


@dataclass(frozen=True)
class OfficeHours:
    start: time
    end: time
    days: tuple[str, ...]  # "mon".."sun"
    zone: str
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_settings(cls, settings) -> "OfficeHours":
        return cls(settings.office_hours_start, settings.office_hours_end, tuple(settings.office_days),
                   settings.clinic_timezone, frozenset(settings.clinic_holidays))

    def is_office_day(self, day: date) -> bool:
        return WEEKDAYS[day.weekday()] in self.days and day not in self.holidays

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.zone))
        return self.is_office_day(local.date()) and self.start <= local.time() < self.end

    def next_opening(self, now: datetime) -> datetime | None:
        """The next time the office opens after `now` (local), or None with no office days."""
        local = now.astimezone(ZoneInfo(self.zone))
        for ahead in range(0, 8 + len(self.holidays)):
            day = (local + timedelta(days=ahead)).date()
            opening = datetime.combine(day, self.start, ZoneInfo(self.zone))
            if self.is_office_day(day) and opening > local:
                return opening
        return None


def clock_time(moment: datetime, language: str = "en") -> str:
    """"8 AM", "8:30 AM" (English); "las 8:00", "las 8:30" (Spanish, 24-hour as clinics write it)."""
    if language == "es":
        return f"{'la' if moment.hour == 1 else 'las'} {moment.hour}:{moment.minute:02d}"
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'AM' if moment.hour < 12 else 'PM'}"


def when_read(hours: OfficeHours, now: datetime, language: str = "en") -> str:
    """"today" when the office is open, else "tomorrow at 8 AM" / "Monday at 8 AM" (or Spanish)."""
    language = language if language in _DAY_NAMES else "en"
    if hours.is_open(now):
        return _TODAY[language]
    opening = hours.next_opening(now)
    if opening is None:
        return _TOMORROW[language]
    local = now.astimezone(ZoneInfo(hours.zone))
    gap = (opening.date() - local.date()).days
    at = "at" if language == "en" else "a"
    if gap == 0:
        day = _TODAY[language]
    elif gap == 1:
        day = _TOMORROW[language]
    else:
        day = _DAY_NAMES[language][opening.weekday()]
    return f"{day} {at} {clock_time(opening, language)}"
