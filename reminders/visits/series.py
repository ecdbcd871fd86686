"""Where a visit stands in its course's induction series: how long the series is, the visit's
place in it, and whether it is the last infusion.

The course says how many infusions it plans (`induction_sessions_planned`); a visit outside any
course has the clinic's INDUCTION_SERIES_LENGTH. Shown to a person, a series is never shorter than
the visits it already has: a seventh infusion of a course of six reads "7 of 7", not "7 of 6".
"""
from __future__ import annotations

INDUCTION = "induction"


def _default_length(settings_or_default) -> int:
    return getattr(settings_or_default, "induction_series_length", settings_or_default)


def planned_length(course, settings_or_default) -> int:
    """The infusions the course plans; the clinic's default without a course (or a plan)."""
    planned = course.induction_sessions_planned if course is not None else None
    return planned or _default_length(settings_or_default)


def series_length(course, settings_or_default, visits_seen: int = 0) -> int:
    """The series length to show: what is planned, or more when more visits have been numbered."""
    return max(planned_length(course, settings_or_default), visits_seen)


def series_position(appointment, settings_or_default) -> tuple[int, int]:
    """(the visit's number, the series length shown): "infusion 3 of 6"."""
    number = appointment.number_in_course
    return number, series_length(appointment.course, settings_or_default, visits_seen=number)


def is_last_induction(appointment, settings_or_default) -> bool:
    """An induction visit whose number reaches what its course plans: no induction visit follows."""
    return (appointment.kind == INDUCTION
            and appointment.number_in_course >= planned_length(appointment.course, settings_or_default))
