"""A text too long for one SMS, split into the texts it goes as: at its break line first, then
line by line, then between words. Nothing is cut."""
from __future__ import annotations

from reminders.text_segments import sms_length

SMS_SEGMENTS = 2  # GSM-7 segments a default text may cost, or the UCS-2 ones that hold as much (SmsLength.fits)


# A line of its own in a text template: what comes before it is what the first text must say
# (when, where, arrive, fasting, the ride home); what follows it (the medications note, the
# after-visit cautions) goes as the next text when the whole does not fit one. Nothing is cut.
PART_BREAK = "---"


def without_break(text: str) -> str:
    """The text as one message: the break line taken out."""
    return "\n".join(line for line in text.split("\n") if line.strip() != PART_BREAK)


def text_parts(text: str, segments: int = SMS_SEGMENTS) -> list[str]:
    """The texts one rendered text goes as, in order, each within `segments` (SmsLength.fits).

    Whole when it fits. Otherwise the lines before the break line, then those after it, each
    group packed line by line into as few texts as hold it; a line longer than a text on its own
    is cut between words, never dropped."""
    whole = without_break(text)
    if sms_length(whole).fits(segments):
        return [whole] if whole else []
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip() == PART_BREAK:
            groups.append([])
        elif line:
            groups[-1].append(line)
    first, rest = groups[0], [line for group in groups[1:] for line in group]
    # The first text keeps its opening lines; those at its end that do not fit go first in the next.
    while len(first) > 1 and not sms_length("\n".join(first)).fits(segments):
        rest.insert(0, first.pop())
    return _packed(first, segments) + _packed(rest, segments)


def _packed(lines: list[str], segments: int) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    for line in lines:
        for piece in _pieces(line, segments):
            if current and not sms_length("\n".join([*current, piece])).fits(segments):
                parts.append("\n".join(current))
                current = []
            current.append(piece)
    if current:
        parts.append("\n".join(current))
    return parts


def _pieces(line: str, segments: int) -> list[str]:
    """A line as it fits in texts: whole, or cut between words."""
    if sms_length(line).fits(segments):
        return [line]
    pieces, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and not sms_length(candidate).fits(segments):
            pieces.append(current)
            candidate = word
        current = candidate
    return pieces + [current] if current else pieces
