"""A course's scores over time, per scale: baseline, latest, change, response and remission.

The rules (CLINICAL.md): response is a score at least 50 % below baseline (the PCL-5: at least
PCL5_RESPONSE_POINTS, 10 by default, below); remission is a score below the scale's threshold
(PHQ-9 and GAD-7 under 5, PCL-5 under 33). Remission is only claimed
for a course whose baseline was at or above the threshold: a patient who started below it did not
remit, they were never above it. The baseline is the questionnaire taken for the "baseline"
occasion, or failing that the earliest completed one of the course.

A questionnaire stopped by a negative screener (a PHQ-2 by SMS) is *screen negative*: it has no
total, so it is never a baseline, a latest score, a response or a remission. It is kept apart
(`screens`) for staff to see as "PHQ-2 screen negative (score N)".
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from reminders import scales as catalogue
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
class Screen:
    """A questionnaire stopped by a negative screener: no total, only the screener's score."""
    questionnaire_id: int
    taken_at: datetime
    screen_score: int | None  # the PHQ-2's own score (items 1 and 2)
    occasion: str
    safety_raised: bool
    name: str  # "PHQ-2"

    @property
    def words(self) -> str:
        """"PHQ-2 screen negative (score 2)"."""
        score = "" if self.screen_score is None else f" (score {self.screen_score})"
        return f"{self.name} screen negative{score}"


@dataclass(frozen=True)
class ScaleProgress:
    scale: catalogue.Scale
    points: tuple[Point, ...]  # oldest first; scored questionnaires only, never a screen negative
    baseline: Point | None
    latest: Point | None
    screens: tuple[Screen, ...] = ()  # screen negatives, oldest first: not counted in any of the above

    @property
    def latest_screen(self) -> Screen | None:
        """A screen negative taken after the latest score: staff see it beside the latest total."""
        if not self.screens:
            return None
        last = self.screens[-1]
        return last if self.latest is None or last.taken_at >= self.latest.taken_at else None

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


def is_screen_negative(q: Questionnaire) -> bool:
    """Stopped by a negative screener (also a row stored before screen negatives lost their total)."""
    return bool(q.screened_out) or q.band == catalogue.SCREEN_NEGATIVE


def progress(questionnaires: list[Questionnaire],
             response_points: Mapping[str, int] | None = None) -> dict[str, ScaleProgress]:
    """Per scale (in the catalogue's order), the completed questionnaires among these; a scale with
    only screen negatives is left out (there is no score to chart). `response_points`: the clinic's
    response rules by scale key ({"pcl5": 10}, reminders.scales.response_points_of)."""
    completed = sorted((q for q in questionnaires if q.status == COMPLETED and q.completed_at is not None),
                       key=lambda q: (q.completed_at, q.id))
    done = [q for q in completed if q.score is not None and not is_screen_negative(q)]
    negatives = [q for q in completed if is_screen_negative(q)]
    found: dict[str, ScaleProgress] = {}
    for key, scale in catalogue.clinic_scales(response_points).items():
        points = tuple(_point(q) for q in done if q.scale == key)
        if not points:
            continue
        baseline = next((p for p in points if p.occasion == "baseline"), points[0])
        later = [p for p in points if p.taken_at >= baseline.taken_at]
        screens = tuple(screen_of(q, scale) for q in negatives if q.scale == key)
        found[key] = ScaleProgress(scale, points, baseline, later[-1] if later else baseline, screens)
    return found


def screen_of(q: Questionnaire, scale: catalogue.Scale | None = None) -> Screen:
    scale = scale or catalogue.get_scale(q.scale)
    return Screen(q.id, q.completed_at, catalogue.screen_score(scale, q.answered()), q.occasion, q.safety_raised,
                  scale.screener_name)


def _point(q: Questionnaire) -> Point:
    return Point(q.id, q.completed_at, q.score, q.band or "", q.occasion, q.screened_out, q.safety_raised)
