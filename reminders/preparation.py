"""Preparation for a visit as clock times in the patient's zone: when to stop eating, when to stop
clear liquids, when to arrive, when the patient will be done. Pure: no database, no clock.

Fasting is counted in real hours (UTC), so on a DST night "6 hours before a 7:00 AM visit" is the
moment six hours earlier, not six hours on the wall clock. Day, month and clock words come from
small tables, never from the operating system's locale.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

ROUND_DONE_TO = 15  # minutes: "done around 11:30 AM", not "11:17 AM"

DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
           "octubre", "noviembre", "diciembre"),
}


@dataclass(frozen=True)
class Preparation:
    """The clinic's preparation settings (see reminders.config)."""

    solids_hours: float = 6
    clear_liquids_hours: float = 2
    arrive_minutes: int = 15
    recovery_minutes: int = 45
    rideshare_allowed: bool = False
    no_alcohol_hours: int = 24
    sms_medications_max_chars: int = 40

    @classmethod
    def from_settings(cls, settings) -> "Preparation":
        return cls(
            solids_hours=settings.fasting_solids_hours,
            clear_liquids_hours=settings.fasting_clear_liquids_hours,
            arrive_minutes=settings.arrive_minutes_before,
            recovery_minutes=settings.recovery_minutes,
            rideshare_allowed=settings.rideshare_allowed,
            no_alcohol_hours=settings.no_alcohol_hours,
            sms_medications_max_chars=settings.sms_medications_max_chars,
        )

    def context(self) -> dict:
        """`prep` in templates: the settings themselves, for wording that depends on them."""
        return {
            "solids_hours": _number(self.solids_hours),
            "clear_liquids_hours": _number(self.clear_liquids_hours),
            "fasting": self.solids_hours > 0,
            "arrive_minutes": self.arrive_minutes,
            "recovery_minutes": self.recovery_minutes,
            "rideshare_allowed": self.rideshare_allowed,
            "no_alcohol_hours": self.no_alcohol_hours,
        }


def _number(hours: float):
    return int(hours) if float(hours).is_integer() else hours


def language_of(language: str | None) -> str:
    return language if language in DAYS else "en"


def clock(moment: datetime, language: str = "en") -> str:
    """"9:30 AM", "noon", "midnight"; Spanish with its article: "las 9:30 a. m.", "la 1:00 p. m."."""
    hour, minute = moment.hour, moment.minute
    twelve = hour % 12 or 12
    if language_of(language) == "es":
        if (hour, minute) == (0, 0):
            return "la medianoche"
        suffix = "a. m." if hour < 12 else "p. m."
        return f"{'la' if twelve == 1 else 'las'} {twelve}:{minute:02d} {suffix}"
    if (hour, minute) == (0, 0):
        return "midnight"
    if (hour, minute) == (12, 0):
        return "noon"
    return f"{twelve}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def date_words(moment: datetime, language: str = "en") -> str:
    """"Tuesday, March 3"; "martes 3 de marzo"."""
    language = language_of(language)
    day, month = DAYS[language][moment.weekday()], MONTHS[language][moment.month - 1]
    if language == "es":
        return f"{day} {moment.day} de {month}"
    return f"{day}, {month} {moment.day}"


def clock_before_visit(moment: datetime, visit_local: datetime, language: str = "en") -> str:
    """A clock time on or before the visit's day, with the day named when it is not the same day:
    "3:30 AM", "11:00 PM the night before", "las 11:00 p. m. de la noche anterior"."""
    language = language_of(language)
    text = clock(moment, language)
    days = (visit_local.date() - moment.date()).days
    if days <= 0:
        return text
    evening = moment.hour >= 18
    if days == 1:
        if language == "es":
            return f"{text} {'de la noche anterior' if evening else 'del día anterior'}"
        return f"{text} {'the night before' if evening else 'the day before'}"
    if language == "es":
        return f"{text} del {DAYS['es'][moment.weekday()]}"
    return f"{text} on {DAYS['en'][moment.weekday()]}"


def _round_up(moment: datetime, minutes: int) -> datetime:
    extra = (-(moment.hour * 60 + moment.minute)) % minutes
    if extra == 0 and moment.second == 0 and moment.microsecond == 0:
        return moment
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=extra or minutes)


def visit_times(starts_at: datetime, duration_minutes: int, zone: str, prep: Preparation,
                language: str = "en") -> dict:
    """The preparation clock times of one visit, as words in the patient's zone and language.

    A time a setting turns off (0 hours of fasting) is None, so a template can leave its line out.
    """
    tz = ZoneInfo(zone)
    start = starts_at.astimezone(tz)

    def before(hours: float) -> str | None:
        if hours <= 0:
            return None
        # Real hours: subtract in UTC, then read the wall clock (DST nights have 23 or 25 hours).
        moment = (starts_at.astimezone(ZoneInfo("UTC")) - timedelta(hours=hours)).astimezone(tz)
        return clock_before_visit(moment, start, language)

    arrive = (starts_at - timedelta(minutes=prep.arrive_minutes)).astimezone(tz)
    done = (starts_at + timedelta(minutes=duration_minutes + prep.recovery_minutes)).astimezone(tz)
    done = _round_up(done, ROUND_DONE_TO).astimezone(tz)
    return {
        "eat_until": before(prep.solids_hours),
        "clear_liquids_until": before(prep.clear_liquids_hours),
        "arrive_at": clock_before_visit(arrive, start, language),
        "done_around": clock(done, language),
        "recovery_minutes": prep.recovery_minutes,
    }
