"""The dates of an induction course from a pattern: pure scheduling, no I/O.

A course starts on a first date at a wall-clock time in the patient's zone and follows a pattern:
Mon/Wed/Fri, or every 2 or 3 days. A visit never falls on a day the clinic is closed (or, for
Mon/Wed/Fri, on a weekday the pattern leaves out): it moves to the next open day, and the
pattern carries on from there. Every visit keeps the wall-clock time across a daylight-saving
change (9:00 stays 9:00; its UTC instant moves by the hour).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}
# Pattern key -> (what staff read, the weekdays it allows or None, the step in days or None)
PATTERNS: dict[str, tuple[str, frozenset[str] | None, int | None]] = {
    "mon-wed-fri": ("Monday, Wednesday and Friday", frozenset({"mon", "wed", "fri"}), None),
    "every-2-days": ("Every 2 days", None, 2),
    "every-3-days": ("Every 3 days", None, 3),
}
DEFAULT_PATTERN = "mon-wed-fri"
MAX_LENGTH = 12


class CourseDatesError(ValueError):
    """Why these dates cannot be planned, in words for staff."""


@dataclass(frozen=True)
class CoursePlan:
    first_day: date
    at: time
    zone: str
    pattern: str = DEFAULT_PATTERN
    length: int = 6
    closed_days: frozenset[str] = frozenset({"sat", "sun"})
    holidays: frozenset[date] = frozenset()  # CLINIC_HOLIDAYS: skipped like a closed day


def open_days(pattern: str, closed_days) -> frozenset[str]:
    """The weekdays a visit of this pattern may fall on."""
    if pattern not in PATTERNS:
        raise CourseDatesError("Choose one of the patterns offered.")
    allowed = PATTERNS[pattern][1] or frozenset(WEEKDAYS)
    days = frozenset(allowed) - frozenset(closed_days)
    if not days:
        raise CourseDatesError("The clinic is closed on every day this pattern allows.")
    return days


def weekday(day: date) -> str:
    return WEEKDAYS[day.weekday()]


def course_days(plan: CoursePlan) -> list[date]:
    """The local dates of the visits, the first date first."""
    if not 1 <= plan.length <= MAX_LENGTH:
        raise CourseDatesError(f"A course has between 1 and {MAX_LENGTH} visits.")
    allowed = open_days(plan.pattern, plan.closed_days)
    if weekday(plan.first_day) not in allowed:
        name = DAY_NAMES[weekday(plan.first_day)]
        if weekday(plan.first_day) in plan.closed_days:
            raise CourseDatesError(f"The first date is a {name}, when the clinic is closed. Choose an open day.")
        raise CourseDatesError(f"The first date is a {name}; the pattern \"{PATTERNS[plan.pattern][0]}\" "
                               f"has no {name}. Choose another first date or another pattern.")
    if plan.first_day in plan.holidays:
        raise CourseDatesError(f"The first date, {plan.first_day:%A %B} {plan.first_day.day}, is a clinic holiday. "
                               "Choose an open day.")
    step = PATTERNS[plan.pattern][2]
    days = [plan.first_day]
    while len(days) < plan.length:
        candidate = days[-1] + timedelta(days=step or 1)
        while weekday(candidate) not in allowed or candidate in plan.holidays:
            candidate += timedelta(days=1)
        days.append(candidate)
    return days


def local_start(day: date, at: time, zone: str) -> datetime:
    """`at` on `day` in `zone` as an aware instant; CourseDatesError when the clocks skip it."""
    tz = ZoneInfo(zone)
    naive = datetime.combine(day, at)
    instant = naive.replace(tzinfo=tz)
    if instant.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != naive:
        raise CourseDatesError(f"{at.strftime('%H:%M')} on {day.isoformat()} does not exist in {zone} "
                               "(the clocks go forward then). Choose another time.")
    return instant


def course_starts(plan: CoursePlan) -> list[datetime]:
    """The visits' start instants (aware, in the plan's zone)."""
    return [local_start(day, plan.at, plan.zone) for day in course_days(plan)]


def next_day(after: date, pattern: str, closed_days, holidays=frozenset()) -> date:
    """The next date of the pattern after a visit on `after` (for suggesting the next visit), past
    closed days and holidays."""
    allowed = open_days(pattern, closed_days)
    candidate = after + timedelta(days=PATTERNS[pattern][2] or 1)
    while weekday(candidate) not in allowed or candidate in holidays:
        candidate += timedelta(days=1)
    return candidate


def guess_pattern(days: list[date]) -> str:
    """The pattern a run of visit dates looks like (Mon/Wed/Fri unless they keep a 2 or 3 day step)."""
    gaps = {(b - a).days for a, b in zip(days, days[1:])}
    if gaps and all(weekday(d) in ("mon", "wed", "fri") for d in days):
        return "mon-wed-fri"
    if gaps == {3}:
        return "every-3-days"
    if gaps == {2}:
        return "every-2-days"
    return DEFAULT_PATTERN
