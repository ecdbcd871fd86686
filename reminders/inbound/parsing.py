"""Read a patient's text reply: keyword, appointment answer, mood score, free text, crisis.

Pure: standard library only, no I/O. The caller decides what to do with a `Reading`.

Keywords come from one table per language (`KEYWORDS`: English and Spanish, in
reminders.inbound.reply_keywords with the rules that find them); every table is
used for every text, so "PARAR" opts out and "siete" is a score whatever the patient's language.

Kinds, checked in this order (the first that fits wins):

``empty``       nothing alphanumeric (blank, punctuation), or emoji that are neither a
                thumbs-up nor a smile or thanks ("😢": staff read it).
``soft_confirm`` (emoji) a thumbs-up or OK hand alone, or with smiles.
``ack``         (emoji) smiles, hearts, folded hands alone.
``stop``        opt-out.  Keywords OPT_OUT_WORDS.  The rule, on the message folded to
                lower case without accents, apostrophes, punctuation and emoji, split into
                words, with "opt out" joined to OPTOUT, "stop all" to STOPALL, "un stop"
                to UNSTOP, and letters repeated in a row counted once ("stooop" = "stop"):
                (a) every word is an opt-out keyword ("Stop.", "'stop'", "STOP!!!",
                    "opt-out", "stop all", "stop stop"); or
                (b) every word is STOP, STOPALL, UNSUBSCRIBE, OPTOUT, QUIT or one of the
                    POLITE_WORDS, with at least one keyword ("stop please", "please stop",
                    "STOP texting me", "unsubscribe me", "quit sending these", "parar por
                    favor").  The words in a table's "opt_out_alone" (CANCEL, END, REVOKE, ALTO,
                    CANCELAR, BAJA) must stand alone: "cancel please" usually means the
                    appointment, "the end" is not a request; or
                (c) the first word is STOP, STOPALL, UNSUBSCRIBE or OPTOUT and the message
                    holds crisis language ("STOP i want to kill myself") or speaks of the
                    messages themselves ("STOP sending me these stupid texts"): US rules
                    count such a sentence as revoking consent.
                Anything else is not an opt-out ("please don't stop sending", "I need to
                cancel my appointment", "end it all").
``start``       opt back in: every word is START, UNSTOP or YES (same folding, no extra
                words).  So a bare "yes" is ``start`` (carrier rule), never ``confirm``.
``help``        every word is HELP or INFO.
``confirm``     "C", "confirm(ed|ing)", "I confirm", "I'll be there"; "sí", "confirmo", "ahí
                estaré"; with optional "ok/yes/thanks/please..." around, or a bare 1 when not
                expecting a score.
``reschedule``  "R", "reschedule", "need to reschedule", "can I reschedule?", a bare 3
                when not expecting a score, or (after the score check) any text with a
                word starting "resched" and no "no/not/don't/never" in the 3 words before.
``soft_confirm`` "see you then", "sounds good", "nos vemos": a confirmation only right after a
                reminder (the caller decides), else thanks.
``ack``         only thanks or ok: "ok", "thanks", "thank you so much", "gracias", "vale".
``score``       a mood score 0 (worst) to 10 (best); see `_find_score`.  ``note`` is the
                rest of the text ("6, bit of a headache" -> "bit of a headache"), or the
                whole text when the score was rounded ("6.5" -> 7) or a range ("5-6" -> 5).
``unclear_score`` (expecting a score) a short text that tries to give one and cannot be read:
                "sevn", "idk 5ish?".  Re-asked once.
``free_text``   everything else; ``note`` holds the stripped text.

Reschedule also covers a request to cancel or move the visit anywhere in a text ("I need to
cancel", "can't make it tomorrow", "no puedo ir"), unless negated ("I don't need to cancel").

``crisis_terms`` is filled on every kind with the emergency and suicide-risk categories the
triage reader (reminders.triage) finds: a keyword answer must still see a crisis ("STOP i want to
kill myself"). How urgent a text is, is decided by `reminders.triage.assess` alone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from reminders.inbound.consent_words import revokes_consent
from reminders.inbound.reply_keywords import (CANCEL_WORDS, CONFIRM_RE, HELP_WORDS, KEYWORDS, LANGUAGES, OPT_IN_WORDS,
                                              OPT_OUT_WORDS, POLITE_WORDS, RESCHEDULE_RE, SOFT_CONFIRM_RE,
                                              asks_reschedule, asks_who_we_are, is_ack, keyword_kind,
                                              symbols_kind)
from reminders.triage import Context, Tier, assess
from reminders.triage.engine import fold as _fold
from reminders.triage.numbers import UNITS as _UNITS

__all__ = [
    "CANCEL_WORDS",
    "HELP_WORDS",
    "KEYWORDS",
    "KINDS",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "POLITE_WORDS",
    "Reading",
    "read_reply",
]

KINDS = ("stop", "start", "help", "confirm", "soft_confirm", "reschedule", "ack", "score", "unclear_score",
         "free_text", "empty")


@dataclass(frozen=True)
class Reading:
    kind: str
    score: int | None = None
    note: str = ""
    crisis_terms: tuple[str, ...] = ()
    # For ``stop``: the keyword itself ("cancel"), so a CANCEL can be shown to staff.
    keyword: str = ""


# ---------------------------------------------------------------- normalizing

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘`´ʼ′"})


def _plain_words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _fold(text).replace("'", ""))


def _crisis_terms(text: str) -> tuple[str, ...]:
    """The crisis categories (emergency and suicide risk) the triage reader finds in the text."""
    triage = assess(text, Context(use_model=False))
    return triage.reasons if triage.tier.rank >= Tier.SUICIDE_RISK.rank else ()

# ---------------------------------------------------------------- mood scores

_NUMBER_WORDS = {w: i for lang in LANGUAGES for i, w in enumerate(KEYWORDS[lang]["numbers"])}
_NUM = r"(?:[0-9]+(?:\.[0-9]+)?|" + "|".join(_NUMBER_WORDS) + ")"
_OUT_OF_RANGE = Decimal(999)
_RANGE = rf"(?P<a>{_NUM})(?:\s*(?:-|–|—|to|or|a|o)\s*(?P<b>{_NUM}))?"
_NOT_AFTER = r"(?<![\w.:/$#-])"
_SCALE_RE = re.compile(
    rf"{_NOT_AFTER}{_RANGE}\s*(?:/|out\s+of|outta|of|de|sobre)\s*(?:10|ten|diez)(?!\w|[-.:/]\d)", re.I
)
_TOKEN_RE = re.compile(rf"{_NOT_AFTER}{_RANGE}(?:\s*-?\s*ish)?(?!\w|%|[-.:/]\d)", re.I)
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_NEXT_WORD_RE = re.compile(r"\s*[^\W_]+(?:'[^\W_]+)*")

_ADJECTIVES = {"low", "high", "good", "strong", "weak", "decent", "steady", "shaky", "bad"}
_STRONG_CUES = set("a an mood moods score rating rate rated solid say level un animo pain dolor".split())
_WEAK_CUES = {"about", "maybe", "probably", "prob", "honestly", "like", "feeling", "feel", "felt", "como",
              "diria", "creo", "tal", "vez", "unos", "es", "esta", "estoy", "sobre",
              "im", "its", "is", "was"}
_BLOCKERS = {"at", "by", "until", "till", "til", "before", "from", "on", "of", "room", "suite",
             "unit", "apt", "page", "step", "number", "no", "took", "take", "taking", "ext"}
_AT_MOST_RE = re.compile(r"\s*at\s+(?:most|best|least)\b", re.I)
_FOLLOWERS = set(
    "but and or today tonight now this though tho i im id ive feeling feel mood with w overall "
    "maybe ish so pretty for because bc cause cuz thanks thank thx ty lol haha too again still "
    "yesterday honestly mostly right atm after since "
    "pero y con hoy ahora gracias porque creo mas o menos ayer".split()
)
_ALL_CUES = _STRONG_CUES | _WEAK_CUES | _ADJECTIVES
_NOTE_FILLER = _ALL_CUES | set(
    "i id ive my it would today tonight now right overall out 10 ten so pretty much ish "
    "at give gives giving guess think "
    "thanks thank you thx ty ok okay lol un una como de yo hoy diria creo gracias".split()
)
_NOTE_LEADERS = set("but and today tonight now though tho with w so overall pero y con hoy".split())
_SEPARATORS = ",;:-–—.!?()/"


@dataclass(frozen=True)
class _Score:
    value: int
    start: int  # where the score phrase (cue words included) starts
    end: int
    derived: bool  # rounded from a decimal or taken from a range
    alone: bool


def _words_of(text: str) -> list[str]:
    return [w.lower().replace("'", "") for w in _WORD_RE.findall(text)]


def _number(word: str) -> Decimal:
    if word.lower() in _NUMBER_WORDS:
        return Decimal(_NUMBER_WORDS[word.lower()])
    if len(word.partition(".")[0]) > 3:  # far out of range (and keeps Decimal in precision)
        return _OUT_OF_RANGE
    return Decimal(word)


def _value(m: re.Match[str]) -> tuple[int, bool]:
    """The score a number or range stands for (rounded half up, lower end), and whether
    it had to be derived that way.  Out of range: any end outside 0..10."""
    ends = [_number(m["a"])] + ([_number(m["b"])] if m["b"] else [])
    if not all(0 <= n <= 10 for n in ends):
        return int(_OUT_OF_RANGE), False
    low = min(ends)
    rounded = low.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rounded), len(ends) > 1 or "." in m["a"]


def _cue_start(text: str, pos: int) -> int:
    """Move `pos` back over the cue words right before it ("I'd say a" 6)."""
    for w in reversed(list(_WORD_RE.finditer(text, max(0, pos - 80), pos))):
        if w.group().lower().replace("'", "") not in _ALL_CUES or text[w.end():pos].strip():
            break
        pos = w.start()
    return pos


# Words after a number that show it counts things rather than scores a mood.
_COUNTED = frozenset(
    "more less pills pill tablets tablet meds times glasses cups drinks people kids of out x st nd rd th "
    "am pm oclock ish a questions question things thing quick small".split()
)


def _scoreish(text: str, m: re.Match[str], expecting: bool, scale: bool) -> bool:
    """Is this number a score, judged by the words around it?"""
    before = text[max(0, m.start() - 80): m.start()]
    prev = _words_of(before)[-2:]
    following = _NEXT_WORD_RE.match(text, m.end())
    next_word = _words_of(following.group())[0] if following else None
    if prev and prev[-1] in _BLOCKERS:
        return False
    if scale:  # "3/10 at 2pm" is a date; "2/10 at most" a score
        return next_word not in {"at", "am", "pm"} or _AT_MOST_RE.match(text, m.end()) is not None
    leads = not _WORD_RE.search(text, 0, m.start())
    if next_word is not None and next_word not in _FOLLOWERS:
        # Answering a check-in, a number that opens the text is the score, whatever follows
        # ("6 blurry vision last night"), unless it counts something ("10 min late", "2 pills").
        if not (expecting and leads and next_word not in _UNITS and next_word not in _COUNTED):
            return False
    if leads or _STRONG_CUES & set(prev):
        return True
    trailing = not _WORD_RE.search(text, m.end()) and before.rstrip()[-1:] in tuple(_SEPARATORS)
    return expecting and (bool(prev) and prev[-1] in _WEAK_CUES or trailing)


def _candidates(text: str, expecting: bool) -> list[_Score]:
    scale = [m for m in _SCALE_RE.finditer(text) if _scoreish(text, m, expecting, True)]
    matches = scale or [m for m in _TOKEN_RE.finditer(text) if _scoreish(text, m, expecting, False)]
    found = []
    for m in matches:
        value, derived = _value(m)
        alone = not (scale or _WORD_RE.search(text, 0, m.start()) or _WORD_RE.search(text, m.end()))
        found.append(_Score(value, _cue_start(text, m.start()), m.end(), derived, alone))
    return found


def _find_score(text: str, expecting: bool) -> _Score | None:
    """The mood score in `text`, or None.

    - "N/10", "N / 10", "N out of 10" (N a digit or a number word) win over any other number.
    - Otherwise a number counts when it is alone, leads the message, or follows a cue
      ("a", "mood", "score", "say", "solid"...), and is followed by the end, punctuation
      or a small set of words ("but", "and", "today", "feeling"...).  With `expecting`
      also after weak cues ("about", "maybe", "is"...) or last after punctuation
      ("feeling ok, 6").  Never after "at", "by", "on", "took"..., never times, dates,
      ordinals or units ("10:30", "3pm", "3/4", "12th", "10 minutes").
    - Decimals round half up ("6.5" -> 7); ranges take the lower, worse end ("5-6" -> 5).
    - Two different candidate values, or a value outside 0..10, means no score.
    """
    found = _candidates(text, expecting)
    if len({s.value for s in found}) != 1 or not 0 <= found[0].value <= 10:
        return None
    return found[0]


def _score_note(text: str, score: _Score) -> str:
    """What the patient said besides the score; the whole text when rounded or a range."""
    if score.derived:
        return " ".join(text.split())
    rest = " ".join((text[: score.start] + " " + text[score.end:]).split())
    rest = re.sub(r"\s*[,;:]\s*(?=[.!?])", "", rest)  # "Pretty good, . Bit of" -> "Pretty good. Bit of"
    rest = re.sub(r"\s+([,.;:!?])", r"\1", rest)
    if all(w in _NOTE_FILLER for w in _words_of(rest)):
        return ""
    while True:
        rest = rest.lstrip(_SEPARATORS + " ").rstrip(",;:-–— ")
        if rest.endswith(")") and "(" not in rest:
            rest = rest[:-1].rstrip()
        head, _, tail = rest.partition(" ")
        if head.lower().strip(_SEPARATORS) not in _NOTE_LEADERS:
            return rest
        rest = tail


# ---------------------------------------------------------------- reading

def asks_who_is_writing(text: str) -> bool:
    """The whole text asks who is writing ("who is this?", "¿quién es?")."""
    return asks_who_we_are(_plain_words(text))


def read_reply(text: str, *, expecting_score: bool = False) -> Reading:
    """Classify one inbound text; see the module docstring for the kinds and rules.

    `expecting_score`: the last message sent to this patient was a mood check-in, so a
    bare 1 or 3 is a score rather than confirm/reschedule, and looser score phrasing counts.
    """
    crisis = _crisis_terms(text)
    words = _plain_words(text)
    if not words:
        return Reading(symbols_kind(text), crisis_terms=crisis)
    keyword = keyword_kind(words, crisis) or (("stop", "") if revokes_consent(text) else None)
    if keyword:
        kind, word = keyword
        with_words = kind == "stop" and bool(crisis)  # rule (c): keep what they wrote
        return Reading(kind, note=text.strip() if with_words else "", crisis_terms=crisis, keyword=word)
    joined = " ".join(words)
    if CONFIRM_RE.fullmatch(joined):
        return Reading("confirm", crisis_terms=crisis)
    if RESCHEDULE_RE.fullmatch(joined):
        return Reading("reschedule", crisis_terms=crisis)
    if SOFT_CONFIRM_RE.fullmatch(joined):
        return Reading("soft_confirm", crisis_terms=crisis)
    if is_ack(words) and not (expecting_score and _digits(text)):
        return Reading("ack", crisis_terms=crisis)
    return _score_or_rest(text, words, expecting_score, crisis)


def _digits(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _score_or_rest(
    text: str, words: list[str], expecting: bool, crisis: tuple[str, ...]
) -> Reading:
    clean = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    clean = "".join(c for c in clean if unicodedata.category(c) != "Cf")
    score = _find_score(clean, expecting)
    if score and score.alone and not score.derived and not expecting and score.value in (1, 3):
        return Reading("confirm" if score.value == 1 else "reschedule", crisis_terms=crisis)
    if score:
        return Reading("score", score.value, _score_note(clean, score), crisis)
    if asks_reschedule(words):
        return Reading("reschedule", note=text.strip(), crisis_terms=crisis)
    if expecting and _tries_a_score(words):
        return Reading("unclear_score", note=text.strip(), crisis_terms=crisis)
    return Reading("free_text", note=text.strip(), crisis_terms=crisis)


# Words of a short text that is trying to give a score and did not quite ("sevn", "idk 5ish?").
_UNSURE = frozenset("idk dunno unsure sure not maybe hmm hmmm um umm no se nose ish or o".split())


def _near_number(word: str) -> bool:
    """A misspelt number word: one letter changed, missing, added or swapped ("sevn", "fvie")."""
    if len(word) < 3 or word in _NUMBER_WORDS:
        return False
    for number in _NUMBER_WORDS:
        if len(number) < 4 or abs(len(number) - len(word)) > 1:
            continue
        if _one_edit(word, number):
            return True
    return False


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _tries_a_score(words: list[str]) -> bool:
    """A short answer to a check-in with a number in it, or a number word misspelt."""
    if len(words) > 3:
        return False
    numeric = [w for w in words if any(c.isdigit() for c in w) or _near_number(w)]
    return bool(numeric) and all(w in _UNSURE or w in numeric for w in words)
