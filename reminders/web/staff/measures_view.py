"""A patient's questionnaires per course, as the patient page, the report and its PDF show them.

No Flask here: each function takes a session, the patient and `now`. The rules for response and
remission are reminders.measures.progress's; this only puts them into words.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders import scales as catalogue
from reminders.measures.progress import ScaleProgress, is_screen_negative, progress, screen_of
from reminders.measures.questionnaires import extra_words
from reminders.models import Appointment, Course, Escalation, Patient, Questionnaire
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.measures import COMPLETED, STARTED
from reminders.web.staff.charts import Chart
from reminders.web.staff.measures_chart import InfusionDay, scale_chart
from reminders.web.staff.queries import progress as visit_label

STATUS_WORDS = {"sent": "Sent, not started", "started": "Started", "completed": "Completed", "expired": "Expired"}
CHANNEL_WORDS = {"link": "By link", "sms": "By SMS"}
RULES = ("Response: a score at least 50 % below the baseline; for the PCL-5, a drop of at least the number "
         "of points the clinic set (10 by default; National Center for PTSD: 10 to 20 points is a meaningful "
         "change), given with each scale. Remission: PHQ-9 below 5, GAD-7 below 5, "
         "PCL-5 below 33, claimed only when the baseline was at or above that threshold. The baseline is the "
         "questionnaire answered before the first infusion, or failing that the course's earliest. "
         "A PHQ-2 screen negative (a PHQ-9 by text stopped after its first two questions) is not a PHQ-9 "
         "total: it is never a baseline or a latest score and never counts toward response or remission.")


def long_day(value: datetime, zone: str) -> str:
    """"Nov 4, 2026": a report outlives the year it was written in."""
    local = value.astimezone(ZoneInfo(zone))
    return f"{local:%b} {local.day}, {local.year}"


def occasion_words(occasion: str) -> str:
    if occasion == "baseline":
        return "Baseline, before infusion 1"
    if occasion.startswith("infusion_"):
        return f"Before infusion {occasion.removeprefix('infusion_')}"
    if occasion == "maintenance":
        return "Before a maintenance visit"
    if occasion == "staff":
        return "Sent by staff"
    return occasion.replace("_", " ").capitalize()


def status_of(questionnaire: Questionnaire, now: datetime) -> str:
    if questionnaire.status == COMPLETED:
        return "completed"
    if now >= questionnaire.expires_at:
        return "expired"
    return "started" if questionnaire.status == STARTED else "sent"


def change_words(change: tuple[int, float | None] | None) -> str:
    if change is None:
        return "Not yet: one score so far"
    points, percent = change
    if points == 0:
        return "No change"
    direction = "lower" if points < 0 else "higher"
    words = f"{abs(points)} point{'s' if abs(points) != 1 else ''} {direction}"
    if percent is not None:
        whole = Decimal(str(abs(percent))).quantize(Decimal(1), ROUND_HALF_UP)  # 62.5 reads as 63, as on paper
        words += f" ({'−' if points < 0 else '+'}{whole} %)"
    return words


@dataclass
class QuestionnaireRow:
    questionnaire: Questionnaire
    at: datetime  # answered, else started, else sent
    occasion: str
    scale: str  # "PHQ-9"
    band: str  # the band's label, "" until scored
    status: str  # sent | started | completed | expired
    escalation: Escalation | None

    @property
    def status_words(self) -> str:
        return STATUS_WORDS[self.status]

    @property
    def channel_words(self) -> str:
        return CHANNEL_WORDS.get(self.questionnaire.channel, self.questionnaire.channel)

    @property
    def self_harm(self) -> bool:
        return self.questionnaire.safety_raised

    @property
    def screen_negative(self) -> bool:
        return is_screen_negative(self.questionnaire)

    @property
    def score_words(self) -> str:
        """"PHQ-2 screen negative (score 2)" for a screen negative; else the score; "" until scored."""
        q = self.questionnaire
        if self.screen_negative and q.status == COMPLETED:
            return screen_of(q).words
        return "" if q.score is None else str(q.score)

    @property
    def extra_words(self) -> str | None:
        """The PHQ-9's difficulty answer in words, "Difficulty: Somewhat difficult"; None when not answered."""
        words = extra_words(self.questionnaire)
        return None if words is None else f"{self.questionnaire_extra_label}: {words}"

    @property
    def questionnaire_extra_label(self) -> str:
        extra = catalogue.get_scale(self.questionnaire.scale).extra
        return extra.key.replace("_", " ").capitalize() if extra else ""

    @property
    def safety_answers(self) -> list[tuple[int, int]]:
        """(item, answer) of the scale's self-harm items answered so far (PHQ-9 item 9)."""
        q = self.questionnaire
        items = catalogue.get_scale(q.scale).safety_items
        return [(n, q.answer_of(n)) for n in items if q.answer_of(n) is not None]


@dataclass
class ScaleView:
    progress: ScaleProgress
    chart: Chart

    @property
    def scale(self) -> catalogue.Scale:
        return self.progress.scale

    @property
    def change_words(self) -> str:
        return change_words(self.progress.change)

    @property
    def response_words(self) -> str:
        if self.progress.change is None:
            return "Not yet known"
        return "Response" if self.progress.response else "No response yet"

    @property
    def response_rule(self) -> str:
        """"at least 50 % below baseline"; the PCL-5's "at least 10 points below baseline"."""
        return self.scale.response_words()

    @property
    def screen_words(self) -> str | None:
        """A screen negative after the latest score, in words; it is not a score and changes nothing."""
        screen = self.progress.latest_screen
        if screen is None:
            return None
        return (f"{screen.words}: not a {self.scale.short_name} total, so not counted toward "
                f"response or remission")

    @property
    def remission_words(self) -> str:
        threshold = self.scale.remission_below
        if threshold is None:
            return "No remission threshold for this scale"
        if self.progress.change is None:
            return "Not yet known"
        if not catalogue.can_remit(self.scale, self.progress.baseline.score):
            return f"Started below {threshold}"
        return "Remission" if self.progress.remission else f"Not in remission (remission is below {threshold})"

    def rows(self):
        """(point, occasion words, band label), oldest first."""
        return [(p, occasion_words(p.occasion), self.progress.band_label(p)) for p in self.progress.points]

    def table_rows(self) -> list[tuple[datetime, str, str, str]]:
        """(when, occasion words, score, severity) oldest first: the scores and, between them, the
        screen negatives ("—", "PHQ-2 screen negative (score 2), not a PHQ-9 total")."""
        found = []
        for point, occasion, band in self.rows():
            if point is self.progress.baseline and point.occasion != "baseline":
                occasion += " (baseline)"
            found.append((point.taken_at, occasion, str(point.score), band))
        for screen in self.progress.screens:
            found.append((screen.taken_at, occasion_words(screen.occasion), "—",
                          f"{screen.words}, not a {self.scale.short_name} total"))
        return sorted(found, key=lambda row: row[0])


@dataclass
class CourseMeasures:
    course: Course | None  # None: questionnaires not tied to a course
    infusions: list[InfusionDay]
    scales: list[ScaleView]
    rows: list[QuestionnaireRow] = field(default_factory=list)

    @property
    def held(self) -> int:
        return sum(1 for i in self.infusions if i.held)

    @property
    def induction_dates(self) -> list[datetime]:
        if self.course is None:
            return []
        return [a.starts_at for a in self.course.appointments
                if a.kind == "induction" and a.status not in ("canceled", "no_show")]

    @property
    def self_harm_rows(self) -> list[QuestionnaireRow]:
        return [row for row in self.rows if row.self_harm]

    @property
    def lone_screen_rows(self) -> list[QuestionnaireRow]:
        """Screen negatives of a scale with no score in this course (no scale section shows them)."""
        shown = {view.scale.short_name for view in self.scales}
        return [row for row in reversed(self.rows)
                if row.screen_negative and row.status == "completed" and row.scale not in shown]


def infusion_days(course: Course | None, now: datetime, series: int) -> list[InfusionDay]:
    """The course's visits that happened (completed, or past and never marked otherwise) or are to come."""
    if course is None:
        return []
    days = []
    for visit in course.appointments:
        held = visit.status == "completed" or (visit.status in ACTIVE_STATUSES and visit.starts_at <= now)
        if held or visit.status in ACTIVE_STATUSES:
            days.append(InfusionDay(visit.starts_at, visit_label(visit, series), held))
    return days


def clinic_response_points() -> dict[str, int]:
    """The clinic's response rules (PCL5_RESPONSE_POINTS) from the running app's settings; the
    definitions' own outside a Flask app."""
    try:
        from flask import current_app, has_app_context
        if has_app_context():
            found = current_app.extensions.get("reminders.settings")
            if found is not None:
                return catalogue.response_points_of(found)
    except ImportError:  # pragma: no cover
        pass
    return {}


def patient_measures(session: Session, patient: Patient, now: datetime, series: int,
                     response_points: dict[str, int] | None = None) -> list[CourseMeasures]:
    """Per course (newest first, questionnaires outside a course last), only those with questionnaires.
    `response_points`: the clinic's response rules; None reads them from the running app."""
    if response_points is None:
        response_points = clinic_response_points()
    found = list(session.scalars(select(Questionnaire).where(Questionnaire.patient_id == patient.id)
                                 .order_by(Questionnaire.sent_at, Questionnaire.id)))
    if not found:
        return []
    escalation_ids = {q.escalation_id for q in found if q.escalation_id}
    escalations = {e.id: e for e in session.scalars(select(Escalation).where(Escalation.id.in_(escalation_ids)))} \
        if escalation_ids else {}
    course_ids = {q.course_id for q in found if q.course_id is not None}
    courses = list(session.scalars(select(Course).where(Course.id.in_(course_ids))
                                   .options(selectinload(Course.appointments).selectinload(Appointment.patient))
                                   .order_by(Course.started_at.desc(), Course.id.desc()))) if course_ids else []
    groups: list[Course | None] = courses + ([None] if any(q.course_id is None for q in found) else [])
    result = []
    for course in groups:
        mine = [q for q in found if q.course_id == (course.id if course else None)]
        infusions = infusion_days(course, now, series)
        key = course.id if course else "none"
        scales = [ScaleView(p, scale_chart(p, infusions, patient.timezone, chart_id=f"measure-{key}-{scale_key}"))
                  for scale_key, p in progress(mine, response_points).items()]
        rows = [_row(q, escalations.get(q.escalation_id), now) for q in reversed(mine)]
        result.append(CourseMeasures(course, infusions, scales, rows))
    return result


def _row(q: Questionnaire, escalation: Escalation | None, now: datetime) -> QuestionnaireRow:
    scale = catalogue.get_scale(q.scale)
    if is_screen_negative(q):
        band = screen_of(q, scale).words if q.status == COMPLETED else ""
    else:
        band = catalogue.band(scale, q.score).label("en") if q.score is not None else ""
    return QuestionnaireRow(q, q.completed_at or q.started_at or q.sent_at, occasion_words(q.occasion),
                            scale.short_name, band, status_of(q, now), escalation)


def instruments(courses: list[CourseMeasures]) -> list[catalogue.Scale]:
    """The scales the report uses, in the catalogue's order, for its footnote."""
    used = {view.scale.key for course in courses for view in course.scales}
    return [scale for key, scale in catalogue.all_scales().items() if key in used]
