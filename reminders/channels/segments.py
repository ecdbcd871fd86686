"""SMS length: GSM-7 versus UCS-2, and how many segments a text costs. Pure."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int
    per_segment: int


def sms_length(text: str) -> SmsLength:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0, single)
    return SmsLength(encoding, units, -(-units // multi), multi)


def gsm_safe(text: str, fold_accents: bool = True) -> str:
    """Swap look-alike characters that would force UCS-2 (and double the cost) for GSM-7 ones.

    Curly quotes and non-breaking spaces usually arrive by copy-paste from a word processor.
    """
    table = {
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
        "\u00a0": " ", "\u2026": "...", "\u2022": "-",
    }
    text = "".join(table.get(ch, ch) for ch in text)
    return "".join(_fold(ch) for ch in text) if fold_accents else text


def _fold(ch: str) -> str:
    """An accented letter GSM-7 lacks (á, í, ó, ú, ë...) as its plain letter: Spanish texts keep
    é, ñ, ü, ¿ and ¡ (GSM-7 has them) and cost 160 characters a segment instead of 70. Letters
    with no plain form (Cyrillic, Chinese, Arabic) stay as they are."""
    if len(ch) != 1 or ch in GSM7_BASIC or ch in GSM7_EXTENSION or ch.isascii():
        return ch
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return base if base and all(c in GSM7_BASIC for c in base) else ch
