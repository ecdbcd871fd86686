"""Triage: one decision on how urgent a text is. Pure (no I/O, no clock).

`assess(text, context)` reads a text a patient (or a relative, or anyone) sent and returns a
`Triage`: its tier, the category that decided it, every category found (for staff), and the
text's language. Every path that reads a patient's words asks this one function: a free reply,
a check-in answer, a questionnaire answer, a follow-up to an open escalation, a text from an
unknown number. The answer, the staff alert and the inbox item all follow from its result.

Tiers (CLINICAL.md), gravest last:

- ``routine``: the inbox, read in office hours;
- ``urgent``: the on-call nurse is paged now, at any hour;
- ``suicide_risk``: 988 first, on-call paged and paged again until a person claims it;
- ``emergency``: 911 first (overdose and poisoning also Poison Control), on-call paged likewise.

The phrases are data (``phrases/*.toml``, read by `engine`); the numbers (blood pressures, a
counted dose) are read by `numbers`; a statistical second opinion (`model`) raises a text the
rules call routine to ``urgent`` ("possible risk: please read") when it rates it above its
threshold. A text sent while an escalation is open belongs to it (`Context.escalation`): it keeps
the escalation's tier when it adds anything, and only a plain acknowledgement ("thanks", "who is
this?") is answered without the script and without paging again.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum

from reminders.triage import engine, numbers
from reminders.triage.languages import detect_language

log = logging.getLogger(__name__)

__all__ = ["Context", "Tier", "Triage", "assess", "detect_language"]


class Tier(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    SUICIDE_RISK = "suicide_risk"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def alerts(self) -> bool:
        """Whether on-call is paged for it now."""
        return self is not Tier.ROUTINE


_RANK = {Tier.ROUTINE: 0, Tier.URGENT: 1, Tier.SUICIDE_RISK: 2, Tier.EMERGENCY: 3}
POISONING = "overdose or poisoning"
LOW_SCORE = "low score"
FOLLOW_UP = "follow-up"
SECOND_OPINION = "possible risk (second opinion)"
BLOOD_PRESSURE_WITH_SYMPTOMS = "blood pressure with symptoms"
VERY_HIGH_BLOOD_PRESSURE = "very high blood pressure"
DISTRESS_EMOJI = "distress emoji"
# Categories that are medical emergencies of the past when the text says so ("a seizure years ago").
_OVERDOSE_IN_THE_PAST = "attempt"


@dataclass(frozen=True)
class Context:
    """What the service knows around the text."""
    escalation: str | None = None  # the tier of an escalation already open for the sender
    unknown_sender: bool = False  # no patient on file has the number
    asked: str | None = None  # "mood": the last text to the patient asked for a mood score
    score: int | None = None  # the mood score read from the text, when one was asked
    crisis_score_max: int = 2  # a mood score at or below this is a crisis (CRISIS_SCORE_MAX)
    bp_alert: tuple[int, int] = (160, 100)  # BP_ALERT_SYSTOLIC, BP_ALERT_DIASTOLIC
    use_model: bool = True
    answered: bool = False  # the text was read as the answer to the question asked (a score, an item)


@dataclass(frozen=True)
class Triage:
    tier: Tier
    category: str  # what decided the tier ("routine" when nothing did)
    reasons: tuple[str, ...] = ()  # every category found, gravest first, for staff
    language: str = "en"
    follow_up: bool = False  # sent while an escalation is open: it belongs to it
    adds: bool = False  # a follow-up that says anything more than thanks: page again now
    model_risk: float | None = None  # the second opinion's rating, when it was asked
    phrases: tuple[str, ...] = field(default=(), compare=False)  # the phrases that matched, for the log

    @property
    def alerts(self) -> bool:
        return self.tier.alerts

    @property
    def poison_control(self) -> bool:
        """An overdose or a poisoning: Poison Control beside 911."""
        return POISONING in self.reasons

    @property
    def by_model(self) -> bool:
        return self.category == SECOND_OPINION

    @property
    def acknowledgement_only(self) -> bool:
        """A follow-up that only says thanks or asks who this is."""
        return self.follow_up and not self.adds


ROUTINE = Triage(Tier.ROUTINE, "routine")


def assess(text: str, context: Context = Context()) -> Triage:
    """The tier of one text in its context. Never raises: a reader bug must not drop a crisis
    text, so a text that cannot be read is suicide risk (a person reads it now)."""
    try:
        return _assess(str(text or ""), context)
    except Exception:  # noqa: BLE001
        log.exception("triage failed; the text is treated as a possible crisis")
        tier = Tier.SUICIDE_RISK if str(text or "").strip() else Tier.ROUTINE
        return Triage(tier, "unreadable" if tier.alerts else "routine", ("unreadable",) if tier.alerts else (),
                      detect_language(text or ""), follow_up=context.escalation is not None, adds=True)


@functools.lru_cache(maxsize=256)
def _phrases_in(text: str) -> tuple[engine.Readings, tuple[tuple[str, Tier, str], ...]]:
    """The text's readings and the phrase categories found in them: the costly, context-free part,
    done once per text (the reply reader and the conversation both assess the same text)."""
    reading = engine.readings(text)
    return reading, tuple((f.category, Tier(f.tier), f.phrase) for f in engine.find_phrases(reading))


def _assess(text: str, context: Context) -> Triage:
    reading, phrases_found = _phrases_in(text)
    found = list(phrases_found)
    found += _numbers(reading, context)
    found = _history(found, reading)
    if context.asked == "mood" and context.score is not None and context.score <= context.crisis_score_max:
        found.append((LOW_SCORE, Tier.SUICIDE_RISK, f"mood {context.score}"))
    if not re.search(r"[^\W_]", reading.folded) and _distress_emoji(text):
        found.append((DISTRESS_EMOJI, Tier.URGENT, "emoji"))
    language = detect_language(text)
    found.sort(key=lambda f: -f[1].rank)
    reasons = tuple(dict.fromkeys(f[0] for f in found))
    phrases = tuple(dict.fromkeys(f[2] for f in found))
    tier, category = (found[0][1], found[0][0]) if found else (Tier.ROUTINE, "routine")
    risk = None
    if tier is Tier.ROUTINE and context.use_model and not context.answered and _worded(reading.folded):
        from reminders.triage import model  # the rules first: the model only reads what they let pass
        risk = model.risk(text)
        shipped = model.shipped_model()
        if shipped is not None and risk >= shipped.threshold:
            tier, category, reasons = Tier.URGENT, SECOND_OPINION, (SECOND_OPINION,)
    if context.escalation is None:
        return Triage(tier, category, reasons, language, model_risk=risk, phrases=phrases)
    return _follow_up(Tier(context.escalation), tier, category, reasons, language, risk, phrases, reading)


def _follow_up(open_tier: Tier, tier: Tier, category: str, reasons: tuple[str, ...], language: str,
               risk: float | None, phrases: tuple[str, ...], reading: engine.Readings) -> Triage:
    """A text while an escalation is open: its own tier if graver, else the escalation's when it
    adds anything; a plain acknowledgement stays routine (no script again, no page)."""
    if tier.rank >= open_tier.rank and tier.alerts:
        return Triage(tier, category, reasons, language, True, True, risk, phrases)
    if not tier.alerts and _only_acknowledges(reading):
        return Triage(Tier.ROUTINE, "acknowledgement", reasons, language, True, False, risk, phrases)
    return Triage(open_tier, FOLLOW_UP, reasons or (FOLLOW_UP,), language, True, True, risk, phrases)


def _worded(folded: str) -> bool:
    """Three words or more: the model is unreliable on a bare number, an emoji or "no sé"; those are
    read by the rules and the score alone."""
    return len(re.findall(r"[^\W\d_]{2,}", folded)) >= 3


def _only_acknowledges(reading: engine.Readings) -> bool:
    words = " ".join(re.findall(r"[^\W_]+", engine.squash(reading.folded)))
    return engine.phrasebook().acknowledgement.fullmatch(words) is not None


def _numbers(reading: engine.Readings, context: Context) -> list[tuple[str, Tier, str]]:
    folded = reading.folded
    found = []
    if any(numbers.NOOSE_RE.search(v) for v in reading.plain):
        found.append(("thoughts, means or plan of suicide", Tier.SUICIDE_RISK, "noose"))
    counted = any(numbers.COUNTED_DOSE_RE.search(v) for v in reading.plain) or numbers.counted_dose(folded)
    # "OD'd on heroin in 2016, clean since" is history, as the phrases' own masks read it.
    said_od = any(numbers.OD_RE.search(v) for v in reading.plain) \
        and any(numbers.OD_RE.search(v) for v in engine.beside_the_past(reading))
    if counted or said_od:
        found.append((POISONING, Tier.EMERGENCY, "a counted dose"))
    if numbers.emergency_pressure(folded):
        found.append((VERY_HIGH_BLOOD_PRESSURE, Tier.EMERGENCY, "blood pressure"))
    elif numbers.high_pressure(folded, *context.bp_alert) and _BP_SYMPTOMS.search(folded):
        found.append((BLOOD_PRESSURE_WITH_SYMPTOMS, Tier.URGENT, "blood pressure"))
    if context.asked not in ("questionnaire", "pain") and numbers.LOW_SCORE_ES.search(folded.strip()):
        # "uno de diez", "cero, todo mal": a very low mood told in words; to a questionnaire's item
        # or a pain rating it is the answer ("0 Ningún día").
        found.append((LOW_SCORE, Tier.SUICIDE_RISK, "low score"))
    return found


_BP_SYMPTOMS = re.compile(
    r"head|chest|vision|blur|see|dizz|pound|nose ?bleed|confus|short of breath|breath|faint|numb|weak|nause|vomit|"
    r"cabeza|pecho|vista|borros|mare|sangr|respir|confund|vomit|dolor|pain|hurt|ache|duele")


def _history(found: list[tuple[str, Tier, str]], reading: engine.Readings) -> list[tuple[str, Tier, str]]:
    """A medical emergency told as history ("I had a seizure years ago, is ketamine ok?") is not
    one now; an overdose told so is a past attempt (988, not 911)."""
    medical = [f for f in found if f[1] is Tier.EMERGENCY]
    if not medical or not engine.in_the_past(reading):
        return found
    if all(f[1] is Tier.EMERGENCY for f in found):
        kept = [f for f in found if f[0] == POISONING]
        return [(_OVERDOSE_IN_THE_PAST, Tier.SUICIDE_RISK, f[2]) for f in kept]
    return [f if f[1] is not Tier.EMERGENCY else (_OVERDOSE_IN_THE_PAST, Tier.SUICIDE_RISK, f[2])
            for f in found if f[1] is not Tier.EMERGENCY or f[0] == POISONING]


_DISTRESS = frozenset("😢😭💔😞😔😥😰😱🥺☹🙁😿😖😣😫😩🆘")


def _distress_emoji(text: str) -> bool:
    return any(c in _DISTRESS for c in text)
