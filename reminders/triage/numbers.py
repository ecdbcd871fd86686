"""What the numbers in a text say: a blood pressure, a counted dose of pills, "OD". Pure.

Read on the folded text (reminders.triage.engine.fold): lower case, no accents."""
from __future__ import annotations

import re

EMERGENCY_BP = (180, 110)  # systolic or diastolic at or above: an emergency (CLINICAL.md)

_BP_RE = re.compile(r"(?<![\d/.:,])(\d{2,3})\s*(?:/|over|sobre|x|-|\\)\s*(\d{2,3})(?![\d/:%]|\.\d)")
_BP_WORDS_RE = re.compile(r"\b(?:bp|blood pressure|pressure|presion|presion arterial|systolic|sys|top number|upper number|"
                          r"sistolica|la alta|maxima|la de arriba)\b\D{0,20}?(\d{3})\b")
_DIA_WORDS_RE = re.compile(r"\b(?:diastolic|dia|bottom number|lower number|diastolica|la baja|minima|la de abajo)\b\D{0,20}?(\d{2,3})\b")
# The number first: "210 on top", "183 la alta", "200 de alta", "115 on bottom", "112 la baja".
_SYS_AFTER_RE = re.compile(r"\b(\d{3})\s+(?:(?:is |on |at )?(?:the )?top(?: number)?|(?:de |la |de la )?(?:alta|maxima|de arriba))\b")
_DIA_AFTER_RE = re.compile(r"\b(\d{2,3})\s+(?:(?:is |on |at )?(?:the )?bottom(?: number)?|(?:de |la |de la )?(?:baja|minima|de abajo))\b")
# Centimetres of mercury, as said in Spain and Latin America: "tensión 18/11" is 180/110; read only
# after a word of pressure ("presión", "tensión", "tengo") so that a date ("18/11") is not one.
_CMHG_RE = re.compile(r"(?:\b(?:presion|tension)\b(?:\s+(?:arterial|alta|a|en|de|es|esta|la|me|salio|dio|marca|marco|sale))*|"
                      r"\btengo)\s+(\d{2})\s*[/-]\s*(\d{1,2})(?![\d/:%])")
# Readings typed with look-alike letters ("19O/l15") and spelled out ("one ninety two over one twelve",
# "ciento noventa y cinco sobre ciento quince") are read as digits before the pressures are looked for.
_LOOKALIKE_RE = re.compile(r"(?<![^\W\d_])(?=[\dol]*\d)[\dol]{2,3}(?![^\W\d_])")
_UNITS_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "uno": 1, "un": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
                "nueve": 9}
_TEENS_TENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
               "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
               "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "diez": 10, "once": 11, "doce": 12,
               "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
               "diecinueve": 19, "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
               "setenta": 70, "ochenta": 80, "noventa": 90}
_HUNDREDS = {"ciento": 100, "cien": 100, "doscientos": 200, "trescientos": 300}
_NUMBER_WORD_RE = re.compile(r"\b(?:(?:%s|hundred|and|y|a)(?:\s+|-)?)+" % "|".join(
    sorted([*_UNITS_WORDS, *_TEENS_TENS, *_HUNDREDS], key=len, reverse=True)))


def _spelled_value(words: list[str]) -> int | None:
    words = [w for w in words if w not in ("and", "y", "a")] if len(words) > 1 else words
    total, i = 0, 0
    while i < len(words):
        w = words[i]
        if w in _HUNDREDS:
            total += _HUNDREDS[w]
        elif w == "hundred":
            total = max(total, 1) * 100
        elif w in _UNITS_WORDS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            total += _UNITS_WORDS[w] * (100 if nxt in _TEENS_TENS and total == 0 else 1)
        elif w in _TEENS_TENS:
            total += _TEENS_TENS[w]
        else:
            return None
        i += 1
    return total or None


def _as_digits(folded: str) -> str:
    """Look-alike letters and spelled numbers as digits, for reading a blood pressure."""
    text = _LOOKALIKE_RE.sub(lambda m: m[0].replace("o", "0").replace("l", "1"), folded)

    def spelled(m: re.Match[str]) -> str:
        words = re.findall(r"[a-z]+", m[0])
        while words and words[-1] in ("and", "y", "a"):
            words.pop()
        value = _spelled_value(words) if words and any(w not in ("and", "y", "a") for w in words) else None
        return f"{value} " if value and value >= 30 else m[0]
    return _NUMBER_WORD_RE.sub(spelled, text)
NOOSE_RE = re.compile(r"\bno{2,}s(?:e|es|ing)?\b")  # squashed, "noose" would read "nose"
# "OD" as a word, "o.d.", "ODing"; not squashed; not "OD'd on christmas cookies" (a treat or a show)
OD_RE = re.compile(r"\bo ?d(?:s|ed|ing)?\b(?! on (?:the |my |all the )?(?:christmas|holiday|halloween|cookies|cookie|candy|"
                   r"sugar|chocolate|cake|pizza|carbs|netflix|tv|tiktok|youtube|anime|memes|shows|reality|coffee|caffeine|"
                   r"sweets|snacks|junk food|fries|true crime|pumpkin spice|espresso|podcasts|telenovelas|k dramas|pie|tacos|cheese)\b)")
# A counted dose ("took 20 of my pills") without flagging the daily "I took my pills".
COUNTED_DOSE_RE = re.compile(
    r"\b(?:took|taken|take|swallowed|swallow)\b(?: \w+){0,2} (?:\d+|ten|twenty|thirty|fifty|hundred)"
    r"(?: \w+){0,3} (?:pills?|tablets?|meds|medications?|capsules?|sleeping)\b"
)
_NUMBER_NAMES = {
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "hundred": 100,
    "dozen": 12, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "doce": 12,
    "quince": 15, "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "cien": 100,
}
_TAKE_WORDS = frozenset("took taken take taking swallowed swallow popped ate drank tome tomo trague trago tomado".split())
_APPROX = frozenset("like about around maybe almost over nearly some a an the my of como unas unos mas de "
                    "casi sobre to".split())
UNITS = frozenset(
    "mg mgs milligrams mcg ml g gram grams iu units unit minutes minute mins min hours hour hrs hr "
    "seconds secs days day weeks week months years times time am pm oclock o miles mile blocks "
    "lbs pounds kg steps puffs sips bites breaths deep dollars bucks percent minutos minuto horas "
    "hora dias dia semanas meses anos veces pesos cuadras kilos gotas drops ml".split()
)
_CONTAINERS = frozenset(
    "bottles bottle boxes packs packets frascos frasco cajas caja blister blisters strips".split()
)
LOW_SCORE_ES = re.compile(
    r"(?<![\d.,/])\b(?:0|1|2|cero|uno|dos)\s*(?:de|sobre)\s*(?:10|diez)\b"
    "|^\\W*(?:between|entre)\\s+[012]\\s+(?:and|y|or|o)\\s+[0123]\\W*$"
    "|^\\W*menos\\s+(?:que|q|de)\\s+cero+\\W*$"
    "|^\\W*(?:un\\s+)?(?:cero+|uno+|un\\s+[012]|un\\s+dos)\\s*(?:$|[,.;:!¡?¿\\-]|\\s+(?:pelado|pelao|nomas|apenas|hoy|todo|muy|mal|"
    "fatal|horrible|pesimo|ya|no|la verdad|la neta|sinceramente|honestamente)\\b)",
)


def blood_pressures(folded: str) -> tuple[tuple[int, int], ...]:
    """Readings that look like a blood pressure ("160/100", "150 over 95"); never "7/10"."""
    folded = _as_digits(folded)
    found = []
    for m in _BP_RE.finditer(folded):
        high, low = int(m[1]), int(m[2])
        if 70 <= high <= 320 and 30 <= low <= 220 and high > low:
            found.append((high, low))
    for m in _CMHG_RE.finditer(folded):
        high, low = int(m[1]), int(m[2])
        if 14 <= high <= 30 and 6 <= low <= 20 and high > low:
            found.append((high * 10, low * 10))
    return tuple(found)


def systolic_words(folded: str) -> tuple[int, ...]:
    """A pressure given by its top number alone ("bp is 185")."""
    folded = _as_digits(folded)
    found = [*_BP_WORDS_RE.finditer(folded), *_SYS_AFTER_RE.finditer(folded)]
    return tuple(int(m[1]) for m in found if 70 <= int(m[1]) <= 320)


def diastolic_words(folded: str) -> tuple[int, ...]:
    """A bottom number named as such ("diastolic is 118")."""
    folded = _as_digits(folded)
    found = [*_DIA_WORDS_RE.finditer(folded), *_DIA_AFTER_RE.finditer(folded)]
    return tuple(int(m[1]) for m in found if 30 <= int(m[1]) <= 220)


def emergency_pressure(folded: str) -> bool:
    if any(low >= EMERGENCY_BP[1] for low in diastolic_words(folded)):
        return True
    if any(high >= EMERGENCY_BP[0] or low >= EMERGENCY_BP[1] for high, low in blood_pressures(folded)):
        return True
    return any(high >= EMERGENCY_BP[0] for high in systolic_words(folded))


def high_pressure(folded: str, systolic: int, diastolic: int) -> bool:
    """At or above the clinic's alert level (BP_ALERT_SYSTOLIC / _DIASTOLIC)."""
    if any(low >= diastolic for low in diastolic_words(folded)):
        return True
    if any(high >= systolic or low >= diastolic for high, low in blood_pressures(folded)):
        return True
    return any(high >= systolic for high in systolic_words(folded))


def counted_dose(folded: str) -> bool:
    """"took 40 of my seroquel", "swallowed like 30 trazodone", "me tome 20 clonazepam",
    "took 2 bottles of advil": a number of five or more (or any number of bottles) within a
    few words after a word of taking, not followed by a unit ("took 10 minutes")."""
    words = re.findall(r"[^\W_]+", folded)
    for i, word in enumerate(words):
        if word not in _TAKE_WORDS:
            continue
        for j in range(i + 1, min(i + 5, len(words))):
            w = words[j]
            n = int(w) if w.isdigit() and len(w) < 5 else _NUMBER_NAMES.get(w)
            if n is None:
                if w in _APPROX:
                    continue
                break
            after = words[j + 1] if j + 1 < len(words) else ""
            if after in _CONTAINERS or (n >= 5 and after not in UNITS):
                return True
            break
    return False
