"""The segment budget of a text: SMS_SEGMENTS a text, each part between break lines on its own,
unless an admin sends it anyway as the very number of segments it costs."""
from __future__ import annotations

from dataclasses import dataclass

from reminders.rendering import (
    PART_BREAK, SMS_SEGMENTS, TemplateProblem, TemplateStore, render, texts_as_sent, without_break,
)
from reminders.sending import SPLIT_KINDS
from reminders.text_segments import sms_length
from reminders.timing.rules import RuleSettings, default_rules
from reminders.web.staff.template_samples import CandidateStore, base_name, segmented


@dataclass(frozen=True)
class OverBudget(TemplateProblem):
    """A text over its segment budget: saved only when an admin sends it anyway as `segments`."""
    segments: int = 0


def may_split(settings, name: str) -> bool:
    """Whether this SMS template goes as several texts when it does not fit one: a reminder's or
    a nudge's (reminders.sending.SPLIT_KINDS); a question, a reply, a welcome goes whole."""
    if not segmented(name):
        return False
    base = base_name(name)
    return any(rule.template == base and rule.kind in SPLIT_KINDS
               for rule in default_rules(RuleSettings.from_settings(settings)))


def authored_parts(text: str) -> list[str]:
    """The texts as the template's author divided them, at its break lines (---)."""
    parts, current = [], []
    for line in text.split("\n"):
        if line.strip() == PART_BREAK:
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    return [part.strip("\n") for part in parts if part.strip()]


def over_budget(candidate: TemplateStore, settings, name: str, context: dict) -> OverBudget | None:
    """A text whose part would cost more than SMS_SEGMENTS (in GSM-7; the UCS-2 ones that hold as
    much) for the sample patient: the part named, with what it costs."""
    if not segmented(name):
        return None
    splits = may_split(settings, name)
    text = render(candidate, name, context, keep_break=splits)
    whole = without_break(text)
    if sms_length(whole).fits(SMS_SEGMENTS):
        return None
    parts = authored_parts(text) if splits else [whole]
    # A message that goes whole may cost what its shipped default costs (a Spanish emergency answer).
    allowance = 0 if splits else _default_segments(candidate, name, context)
    over = [(number, part) for number, part in enumerate(parts, start=1)
            if sms_length(part).segments > max(sms_length(part).allowed(SMS_SEGMENTS), allowance)]
    if not over:
        return None
    sent = texts_as_sent(candidate, name, context, splits)
    segments = sum(sms_length(part).segments for part in sent)
    number, part = over[0]
    length = sms_length(part)
    which = f"Text {number} of {len(parts)}" if len(parts) > 1 else "This text"
    limit = length.allowed(SMS_SEGMENTS)
    keeps_to = f"its default costs {allowance}" if allowance > limit else f"a text keeps to {limit}"
    reason = (f"{which} is {length.segments} segments ({len(part)} characters, {length.encoding}) for Alex Rivera; "
              f"{keeps_to}. Shorten it")
    reason += (", or put a line of three dashes (---) where the next text may begin." if splits else ".")
    reason += f" As it is, it would go as {segments} segments"
    reason += f" in {len(sent)} texts." if len(sent) > 1 else "."
    return OverBudget(name, None, reason, segments)


def _default_segments(store: TemplateStore, name: str, context: dict) -> int:
    """What the shipped default of this text costs for the sample patient (0 without one)."""
    default = store.default_source(name)
    if default is None:
        return 0
    try:
        return sms_length(render(CandidateStore(store, name, default), name, context)).segments
    except Exception:  # noqa: BLE001 - a default that cannot render sets no allowance
        return 0
