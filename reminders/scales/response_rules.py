"""Response and remission, judged against a patient's baseline, and the clinic's own response rule
for a scale (PCL5_RESPONSE_POINTS)."""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from reminders.scales.scale_definitions import Scale


def _in_range(scale: Scale, *scores: int) -> None:
    for value in scores:
        if not 0 <= value <= scale.max_score:
            raise ValueError(f"{scale.short_name} scores run 0 to {scale.max_score}, not {value}")


def with_response_points(scale: Scale, points: int | None) -> Scale:
    """The scale with the clinic's response rule (PCL5_RESPONSE_POINTS); unchanged for None."""
    if points is None or points == scale.response_points:
        return scale
    if not 0 < points <= scale.max_score:
        raise ValueError(f"{scale.short_name} response points run 1 to {scale.max_score}, not {points}")
    return replace(scale, response_points=points)


def response(scale: Scale, baseline: int, score: int) -> bool:
    """A drop of at least response_drop (a half) from a baseline above 0; for a scale with
    response_points, a drop of at least that many points."""
    _in_range(scale, baseline, score)
    if baseline <= 0:
        return False
    if scale.response_points is not None:
        return baseline - score >= scale.response_points
    # Fractions, so that exactly half is a response whatever the float rounding.
    return score <= baseline * (1 - Fraction(str(scale.response_drop)))


def can_remit(scale: Scale, baseline: int) -> bool:
    """Remission can be claimed from this baseline: the scale has a threshold and the baseline was at
    or above it (a patient who started below it did not remit, they were never above it)."""
    return scale.remission_below is not None and baseline >= scale.remission_below


def remission(scale: Scale, score: int) -> bool | None:
    """Below the remission threshold; None for a scale without one."""
    _in_range(scale, score)
    if scale.remission_below is None:
        return None
    return score < scale.remission_below


def change_from_baseline(baseline: int, score: int) -> tuple[int, float | None]:
    """Points and percent of baseline (negative is fewer symptoms); no percent from a baseline of 0."""
    points = score - baseline
    return points, (points * 100 / baseline if baseline else None)
