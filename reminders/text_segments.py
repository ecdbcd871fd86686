"""SMS length: GSM-7 versus UCS-2, and how many segments a text costs. Pure."""
from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)


GSM7_SEGMENTS = 2  # what a text may cost in GSM-7 (README "Language")
# A text with a character GSM-7 lacks (a name like Lucía, a Spanish "día", an emoji) goes as UCS-2,
# 67 characters a segment instead of 153: its budget is the segments that hold the same words.
GSM7_PER_SEGMENT, UCS2_PER_SEGMENT = 153, 67


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    per_segment: int

    def allowed(self, gsm7_segments: int = GSM7_SEGMENTS) -> int:
        """The segments this text may cost in its encoding (2 GSM-7 segments: 5 UCS-2 ones)."""
        return segments_allowed(self.encoding, gsm7_segments)

    def fits(self, gsm7_segments: int = GSM7_SEGMENTS) -> bool:
        return self.segments <= self.allowed(gsm7_segments)


def segments_allowed(encoding: str, gsm7_segments: int = GSM7_SEGMENTS) -> int:
    """A budget of GSM-7 segments in the given encoding: as many UCS-2 segments as it takes to hold
    the same number of characters (2 -> 5, 335 characters; 3 -> 7), so the same words fit either way."""
    if encoding == "GSM-7":
        return gsm7_segments
    return -(-(gsm7_segments * GSM7_PER_SEGMENT) // UCS2_PER_SEGMENT)


def sms_length(text: str) -> SmsLength:
    """The encoding a text goes in (GSM-7 when every character is in it, else UCS-2) and what it costs."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, GSM7_PER_SEGMENT, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, UCS2_PER_SEGMENT, "UCS-2"
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0, single)
    return SmsLength(encoding, units, -(-units // multi), multi)


def gsm_safe(text: str) -> str:
    """Swap look-alike punctuation that would force UCS-2 (and cost twice or more) for GSM-7's.

    Curly quotes and non-breaking spaces usually arrive by copy-paste from a word processor. Letters
    are never changed: a name or a word keeps its accents (á, í, ó, ú make the text UCS-2, counted
    honestly by `sms_length`)."""
    table = {
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
        "\u00a0": " ", "\u2026": "...", "\u2022": "-",
    }
    return "".join(table.get(ch, ch) for ch in text)
