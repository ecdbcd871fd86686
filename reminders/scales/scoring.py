"""Answers and scores: which items are left to ask (the SMS screener first), the total, its
severity band, and the safety items raised. Answers map item number (1..n) to the chosen value."""
from __future__ import annotations

from typing import Mapping

from reminders.scales.scale_definitions import Band, IncompleteAnswers, InvalidAnswer, Result, Scale


def _checked(scale: Scale, answers: Mapping[int, int]) -> dict[int, int]:
    allowed = {option.value for option in scale.options}
    for number, value in answers.items():
        if number not in scale.numbers:
            raise InvalidAnswer(f"{scale.short_name} has no item {number!r} (items 1 to {len(scale.items)})")
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise InvalidAnswer(f"{scale.short_name} item {number}: {value!r} is not one of {sorted(allowed)}")
    return dict(answers)


def screen_positive(scale: Scale, answers: Mapping[int, int]) -> bool | None:
    """Whether the screener calls for the rest; None without a screener or before it is answered."""
    answers = _checked(scale, answers)
    if not scale.has_screener or any(n not in answers for n in scale.screen_items):
        return None
    return sum(answers[n] for n in scale.screen_items) >= scale.screen_positive_at


def _screened_out(scale: Scale, answers: Mapping[int, int], by_sms: bool) -> bool:
    return by_sms and screen_positive(scale, answers) is False


def items_to_ask(scale: Scale, answers: Mapping[int, int], by_sms: bool) -> list[int]:
    """The items still to ask, in order. By SMS the screener's items come first, and a negative
    screener ends the questionnaire, except for its safety items: PHQ-9 item 9 is always asked,
    because any answer above 0 needs a clinician the same day whatever the rest says."""
    answers = _checked(scale, answers)
    if _screened_out(scale, answers, by_sms):
        return [n for n in scale.safety_items if n not in answers]
    remaining = [n for n in scale.numbers if n not in answers]
    if by_sms and scale.has_screener:
        remaining.sort(key=lambda n: n not in scale.screen_items)
    return remaining


def score(scale: Scale, answers: Mapping[int, int], by_sms: bool = False) -> int:
    """The total. Every item must be answered, except by SMS after a negative screener, when the
    items not asked count as 0."""
    answers = _checked(scale, answers)
    if not _screened_out(scale, answers, by_sms):
        missing = [n for n in scale.numbers if n not in answers]
        if missing:
            raise IncompleteAnswers(scale, missing)
    return sum(answers.values())


def screen_score(scale: Scale, answers: Mapping[int, int]) -> int | None:
    """The screener's own score (PHQ-2: items 1 and 2); None without a screener or before it is answered."""
    if not scale.has_screener or any(n not in answers for n in scale.screen_items):
        return None
    return sum(answers[n] for n in scale.screen_items)


def result(scale: Scale, answers: Mapping[int, int], by_sms: bool = False) -> Result:
    total = score(scale, answers, by_sms)
    return Result(score=total, band=band(scale, total), screened_out=_screened_out(scale, answers, by_sms),
                  screen_score=screen_score(scale, _checked(scale, answers)))


def band(scale: Scale, score: int) -> Band:
    for candidate in scale.bands:
        if score in candidate:
            return candidate
    raise ValueError(f"{scale.short_name} scores run 0 to {scale.max_score}, not {score}")


def safety_items_raised(scale: Scale, answers: Mapping[int, int]) -> list[int]:
    """Safety items answered above 0: each needs a clinician the same day."""
    answers = _checked(scale, answers)
    return [n for n in scale.safety_items if answers.get(n, 0) > 0]
