"""A course's scores over time, per scale: baseline, latest, change, response and remission.

The rules (CLINICAL.md): response is a score at least 50 % below baseline; remission is a score
below the scale's threshold (PHQ-9 and GAD-7 under 5, PCL-5 under 33). Remission is only claimed
for a course whose baseline was at or above the threshold: a patient who started below it did not
remit, they were never above it. The baseline is the questionnaire taken for the "baseline"
occasion, or failing that the earliest completed one of the course.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.measures import scales as catalogue
from reminders.models import Questionnaire
from reminders.models.measures import COMPLETED


@dataclass(frozen=True)
class Point:
    questionnaire_id: int
    taken_at: datetime
    score: int
    band: str  # the band's key: "moderate"
    occasion: str
    screened_out: bool
    safety_raised: bool


@dataclass(frozen=True)
class ScaleProgress:
    scale: catalogue.Scale
    points: tuple[Point, ...]  # oldest first
    baseline: Point | None
    latest: Point | None

    @property
    def change(self) -> tuple[int, float | None] | None:
        """Points and percent from baseline to the latest score; None with fewer than two scores."""
        if self.baseline is None or self.latest is None or self.latest is self.baseline:
            return None
        return catalogue.change_from_baseline(self.baseline.score, self.latest.score)

    @property
    def response(self) -> bool:
        return self.change is not None and catalogue.response(self.scale, self.baseline.score, self.latest.score)

    @property
    def remission(self) -> bool | None:
        """None: the scale has no remission threshold, or there is nothing yet to compare."""
        if self.scale.remission_below is None or self.change is None:
            return None
        return catalogue.can_remit(self.scale, self.baseline.score) and bool(
            catalogue.remission(self.scale, self.latest.score))

    def band_label(self, point: Point, language: str = "en") -> str:
        return catalogue.band(self.scale, point.score).label(language)


def progress(questionnaires: list[Questionnaire]) -> dict[str, ScaleProgress]:
    """Per scale (in the catalogue's order), the completed questionnaires among these."""
    done = sorted((q for q in questionnaires if q.status == COMPLETED and q.score is not None),
                  key=lambda q: (q.completed_at, q.id))
    found: dict[str, ScaleProgress] = {}
    for key, scale in catalogue.all_scales().items():
        points = tuple(_point(q) for q in done if q.scale == key)
        if not points:
            continue
        baseline = next((p for p in points if p.occasion == "baseline"), points[0])
        later = [p for p in points if p.taken_at >= baseline.taken_at]
        found[key] = ScaleProgress(scale, points, baseline, later[-1] if later else baseline)
    return found


def _point(q: Questionnaire) -> Point:
    return Point(q.id, q.completed_at, q.score, q.band or "", q.occasion, q.screened_out, q.safety_raised)


def course_progress(session: Session, patient_id: int, course_id: int | None = None) -> dict[str, ScaleProgress]:
    """One patient's progress, for one course or (None) across all their questionnaires."""
    query = select(Questionnaire).where(Questionnaire.patient_id == patient_id, Questionnaire.status == COMPLETED)
    if course_id is not None:
        query = query.where(Questionnaire.course_id == course_id)
    return progress(list(session.scalars(query)))
