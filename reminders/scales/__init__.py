"""The validated questionnaires a clinic sends, read from definitions/*.toml, and their scoring.

Each questionnaire is one TOML file; adding a scale is adding a file. Everything here is pure: the
only input/output is reading those files once.

Answers are a mapping of item number (1..n) to the chosen option's value.

Going by SMS, one item at a time, a scale with a screener (PHQ-2 for the PHQ-9, GAD-2 for the
GAD-7) asks its screener items first; when the screener is negative the questionnaire stops there
(after the safety item). Such a result is *screen negative*: it is stored and shown as "PHQ-2
screen negative (score N)", never as a PHQ-9 total, and it never counts toward a baseline, a
response or a remission (CLINICAL.md, "Measures, honestly"). On the web every item is asked.

Response is a drop of at least `response_drop` (a half) from baseline, or, for a scale with
`response_points` (the PCL-5: a change of 10 to 20 points is clinically meaningful, National Center
for PTSD), a drop of at least that many points; the clinic sets the PCL-5's (PCL5_RESPONSE_POINTS).

The parts: what a scale is made of (reminders.scales.scale_definitions), reading its file
(.scale_files), scoring answers (.scoring), response and remission (.response_rules).
"""
from __future__ import annotations

from functools import cache
from typing import Mapping, Sequence

from reminders.scales.response_rules import (
    can_remit, change_from_baseline, remission, response, with_response_points,
)
from reminders.scales.scale_definitions import (
    Band, DefinitionError, Extra, IncompleteAnswers, InvalidAnswer, Item, Option, Result, Scale, Wording,
)
from reminders.scales.scale_files import DEFINITIONS, FIRST, LANGUAGES, load_scale, load_scales
from reminders.scales.scoring import (
    band, items_to_ask, result, safety_items_raised, score, screen_positive, screen_score,
)

__all__ = [
    "DEFAULT_SCALES_FOR", "DEFINITIONS", "FIRST", "LANGUAGES", "SCREEN_NEGATIVE", "Band", "DefinitionError", "Extra",
    "IncompleteAnswers", "InvalidAnswer", "Item", "Option", "Result", "Scale", "Wording", "all_scales", "band",
    "can_remit", "change_from_baseline", "clinic_scales", "get_scale", "items_to_ask", "load_scale", "load_scales",
    "remission", "response", "response_points_of", "result", "safety_items_raised", "scale_keys_for", "score",
    "screen_positive", "screen_score", "with_response_points",
]

# The band key a questionnaire stopped by a negative screener is stored with (its score is None).
SCREEN_NEGATIVE = "screen_negative"

DEFAULT_SCALES_FOR: dict[str, tuple[str, ...]] = {
    "depression": ("phq9", "gad7"),
    "anxiety": ("gad7", "phq9"),
    "ptsd": ("pcl5", "phq9"),
    "pain": ("pain", "phq9"),
    "other": ("phq9",),
}


@cache
def _bundled() -> dict[str, Scale]:
    return load_scales(DEFINITIONS)


def all_scales() -> dict[str, Scale]:
    return dict(_bundled())


def get_scale(key: str) -> Scale:
    scales = _bundled()
    if key not in scales:
        raise KeyError(f"no questionnaire {key!r}; known: {', '.join(scales)}")
    return scales[key]


def clinic_scales(response_points: Mapping[str, int] | None = None) -> dict[str, Scale]:
    """Every scale, with the clinic's response rules (scale key -> points) applied."""
    found = all_scales()
    for key, points in (response_points or {}).items():
        if key in found:
            found[key] = with_response_points(found[key], points)
    return found


def response_points_of(settings) -> dict[str, int]:
    """The clinic's response rules from its settings: {"pcl5": PCL5_RESPONSE_POINTS}."""
    points = getattr(settings, "pcl5_response_points", None)
    return {} if points is None else {"pcl5": int(points)}


def scale_keys_for(condition: str | None, mapping: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The keys of the questionnaires for a patient's condition, the main one first; "other" for the rest."""
    mapping = DEFAULT_SCALES_FOR if mapping is None else mapping
    name = (condition or "other").strip().lower()
    return list(mapping.get(name) or mapping.get("other") or DEFAULT_SCALES_FOR["other"])
