"""The clinic's outcomes: courses that finished induction, and per scale how many responded and remitted.

How each number is counted (shown to staff on the outcomes page too):
- A course finished induction when as many of its induction infusions were attended (marked
  completed) as the course planned, or when the series' last infusion was attended. Induction
  ended on that infusion's day.
- The baseline is the course's baseline questionnaire (reminders.measures.progress). The
  post-induction score is the first of the course's later scores taken for the series' last
  infusion (or a later one), or within POST_INDUCTION_DAYS after induction ended.
- A screen negative (a PHQ-2 by SMS that stopped the PHQ-9) has no total: it is never a baseline
  or a post-induction score, so it never counts toward response or remission.
- Response: at least 50 % below baseline (PCL-5: at least PCL5_RESPONSE_POINTS points below),
  counted among courses with a baseline above 0.
  Remission: below the scale's threshold, counted among courses whose baseline was at or above it
  (a patient who started below it did not remit). Median change: post-induction minus baseline.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders import scales as catalogue
from reminders.measures.progress import Point, ScaleProgress, progress
from reminders.models import Course, Questionnaire
from reminders.models.measures import COMPLETED
from reminders.models.patients import CONDITIONS

POST_INDUCTION_DAYS = 30
NOT_RECORDED = "not_recorded"  # the condition filter's value for a course without one
ATTENDED = "completed"


@dataclass(frozen=True)
class Filters:
    condition: str | None = None  # one of CONDITIONS, NOT_RECORDED, or None for every course
    ended_from: date | None = None  # induction ended on or after this day (clinic's zone)
    ended_to: date | None = None  # ... and on or before this one
    zone: str = "UTC"


@dataclass(frozen=True)
class CourseOutcome:
    """One finished course, one scale: what the CSV export has one line for."""
    patient_id: int
    patient_external_id: str | None
    course_id: int
    condition: str | None
    induction_ended_at: datetime
    induction_ended_on: date  # in the clinic's zone
    scale: catalogue.Scale
    baseline: int | None
    post_induction: int | None

    @property
    def measured(self) -> bool:
        return self.baseline is not None and self.post_induction is not None

    @property
    def change(self) -> tuple[int, float | None] | None:
        if not self.measured:
            return None
        return catalogue.change_from_baseline(self.baseline, self.post_induction)

    @property
    def response(self) -> bool | None:
        """None: nothing to compare, or a baseline of 0 (nothing to halve)."""
        if not self.measured or self.baseline <= 0:
            return None
        return catalogue.response(self.scale, self.baseline, self.post_induction)

    @property
    def remission(self) -> bool | None:
        """None: nothing to compare, no threshold, or a baseline already below it."""
        if not self.measured or not catalogue.can_remit(self.scale, self.baseline):
            return None
        return bool(catalogue.remission(self.scale, self.post_induction))

    @property
    def month(self) -> str:
        return self.induction_ended_on.strftime("%Y-%m")


@dataclass(frozen=True)
class Share:
    count: int
    of: int

    @property
    def percent(self) -> int | None:
        return round(self.count * 100 / self.of) if self.of else None

    def __str__(self) -> str:
        return f"{self.count} of {self.of}, {self.percent} %" if self.of else "none to count"


@dataclass(frozen=True)
class ScaleSummary:
    scale: catalogue.Scale
    courses: int  # finished courses with any score on this scale
    measured: Share  # with a baseline and a post-induction score, of those
    response: Share
    remission: Share | None  # None: the scale has no remission threshold
    median_points: float | None
    median_percent: float | None


@dataclass(frozen=True)
class Group:
    label: str
    patients: int
    courses: int
    scales: tuple[ScaleSummary, ...]


@dataclass(frozen=True)
class Outcomes:
    filters: Filters
    overall: Group
    by_condition: tuple[Group, ...]
    by_month: tuple[Group, ...]
    rows: tuple[CourseOutcome, ...]


def condition_label(condition: str | None) -> str:
    return {None: "not recorded", "ptsd": "PTSD"}.get(condition, condition)


def induction_end(course: Course) -> datetime | None:
    """When the course's induction was over: the attended infusion that completed the series."""
    attended = sorted((a for a in course.appointments if a.kind == "induction" and a.status == ATTENDED),
                      key=lambda a: a.starts_at)
    planned = course.induction_sessions_planned
    for count, visit in enumerate(attended, start=1):
        if count >= planned or visit.number_in_course >= planned:
            return visit.starts_at
    return None


def post_induction(found: ScaleProgress, planned: int, ended_at: datetime) -> Point | None:
    """The first score after the baseline taken for the series' last infusion or in the weeks after."""
    until = ended_at + timedelta(days=POST_INDUCTION_DAYS)
    for point in found.points:
        if point is found.baseline or point.taken_at < found.baseline.taken_at or point.taken_at > until:
            continue
        if _infusion_number(point.occasion) >= planned or point.taken_at > ended_at:
            return point
    return None


def _infusion_number(occasion: str) -> int:
    prefix, _, number = occasion.partition("_")
    return int(number) if prefix == "infusion" and number.isdigit() else 0


def finished_courses(session: Session, filters: Filters) -> list[tuple[Course, datetime]]:
    query = select(Course).options(selectinload(Course.appointments), selectinload(Course.patient))
    if filters.condition == NOT_RECORDED:
        query = query.where(Course.condition.is_(None))
    elif filters.condition:
        query = query.where(Course.condition == filters.condition)
    zone = ZoneInfo(filters.zone)
    found = []
    for course in session.scalars(query.order_by(Course.id)):
        ended = induction_end(course)
        if ended is None:
            continue
        day = ended.astimezone(zone).date()
        if (filters.ended_from and day < filters.ended_from) or (filters.ended_to and day > filters.ended_to):
            continue
        found.append((course, ended))
    return found


def course_rows(session: Session, filters: Filters, response_points: Mapping[str, int] | None = None
                ) -> tuple[list[tuple[Course, datetime]], list[CourseOutcome]]:
    courses = finished_courses(session, filters)
    by_course: dict[int, list[Questionnaire]] = defaultdict(list)
    if courses:
        for q in session.scalars(select(Questionnaire).where(
                Questionnaire.course_id.in_([c.id for c, _ in courses]), Questionnaire.status == COMPLETED)):
            by_course[q.course_id].append(q)
    zone = ZoneInfo(filters.zone)
    rows = []
    for course, ended in courses:
        for key, found in progress(by_course[course.id], response_points).items():
            after = post_induction(found, course.induction_sessions_planned, ended)
            rows.append(CourseOutcome(
                course.patient_id, course.patient.external_id, course.id, course.condition, ended,
                ended.astimezone(zone).date(), found.scale, found.baseline.score if found.baseline else None,
                after.score if after else None))
    return courses, rows


def summarize(label: str, courses: list[tuple[Course, datetime]], rows: list[CourseOutcome],
              response_points: Mapping[str, int] | None = None) -> Group:
    scales = []
    for key, scale in catalogue.clinic_scales(response_points).items():
        mine = [r for r in rows if r.scale.key == key]
        if mine:
            scales.append(_scale_summary(scale, mine))
    return Group(label, len({c.patient_id for c, _ in courses}), len(courses), tuple(scales))


def _scale_summary(scale: catalogue.Scale, rows: list[CourseOutcome]) -> ScaleSummary:
    measured = [r for r in rows if r.measured]
    can_respond = [r for r in measured if r.response is not None]
    can_remit = [r for r in measured if r.remission is not None]
    points = [r.change[0] for r in measured]
    percents = [r.change[1] for r in measured if r.change[1] is not None]
    return ScaleSummary(
        scale, len(rows), Share(len(measured), len(rows)),
        Share(sum(r.response for r in can_respond), len(can_respond)),
        Share(sum(r.remission for r in can_remit), len(can_remit)) if scale.remission_below is not None else None,
        statistics.median(points) if points else None, statistics.median(percents) if percents else None)


def outcomes(session: Session, filters: Filters, response_points: Mapping[str, int] | None = None) -> Outcomes:
    """`response_points`: the clinic's response rules ({"pcl5": PCL5_RESPONSE_POINTS})."""
    courses, rows = course_rows(session, filters, response_points)
    conditions = [c for c in (*CONDITIONS, None) if any(course.condition == c for course, _ in courses)]
    by_condition = tuple(
        summarize(condition_label(c), [x for x in courses if x[0].condition == c], [r for r in rows if r.condition == c],
                  response_points)
        for c in conditions)
    zone = ZoneInfo(filters.zone)
    months = sorted({ended.astimezone(zone).strftime("%Y-%m") for _, ended in courses})
    by_month = tuple(
        summarize(m, [x for x in courses if x[1].astimezone(zone).strftime("%Y-%m") == m], [r for r in rows if r.month == m],
                  response_points)
        for m in months)
    return Outcomes(filters, summarize("All courses", courses, rows, response_points), by_condition, by_month,
                    tuple(rows))
