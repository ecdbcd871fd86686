"""Read a patient's text reply: keyword, appointment answer, mood score, free text, crisis.

Pure: standard library only, no I/O. The caller decides what to do with a `Reading`.

Kinds, checked in this order (the first that fits wins):

``empty``       nothing alphanumeric (blank, punctuation, emoji only).
``stop``        opt-out.  Keywords OPT_OUT_WORDS.  The rule, on the message folded to
                lower case without accents, apostrophes, punctuation and emoji, split into
                words, with "opt out" joined to OPTOUT, "stop all" to STOPALL, "un stop"
                to UNSTOP, and letters repeated in a row counted once ("stooop" = "stop"):
                (a) every word is an opt-out keyword ("Stop.", "'stop'", "STOP!!!",
                    "opt-out", "stop all", "stop stop"); or
                (b) every word is STOP, STOPALL, UNSUBSCRIBE, OPTOUT, QUIT or one of the
                    POLITE_WORDS, with at least one keyword ("stop please", "please stop",
                    "STOP texting me", "unsubscribe me", "quit sending these").  CANCEL,
                    END and REVOKE must stand alone: "cancel please" usually means the
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
``confirm``     "C", "confirm(ed|ing)", "I confirm", "I'll be there", with optional
                "ok/yes/thanks/please..." around, or a bare 1 when not expecting a score.
``reschedule``  "R", "reschedule", "need to reschedule", "can I reschedule?", a bare 3
                when not expecting a score, or (after the score check) any text with a
                word starting "resched" and no "no/not/don't/never" in the 3 words before.
``score``       a mood score 0 (worst) to 10 (best); see `_find_score`.  ``note`` is the
                rest of the text ("6, bit of a headache" -> "bit of a headache"), or the
                whole text when the score was rounded ("6.5" -> 7) or a range ("5-6" -> 5).
``free_text``   everything else; ``note`` holds the stripped text.

``crisis_terms`` is filled on every kind, from `detect_crisis`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "CRISIS_LABELS",
    "HELP_WORDS",
    "KINDS",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "POLITE_WORDS",
    "Reading",
    "crisis_kind",
    "detect_crisis",
    "looks_spanish",
    "read_reply",
]

KINDS = ("stop", "start", "help", "confirm", "reschedule", "score", "free_text", "empty")
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
POLITE_WORDS = frozenset(
    "please pls plz thanks thank you thankyou thx ty ok okay now immediately asap me "
    "text texts texting txt txts message messages messaging msg msgs sms send sending "
    "contact contacting reminder reminders from this these the list number".split()
)


@dataclass(frozen=True)
class Reading:
    kind: str
    score: int | None = None
    note: str = ""
    crisis_terms: tuple[str, ...] = ()


# ---------------------------------------------------------------- normalizing

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘`´ʼ′"})


def _fold(text: str) -> str:
    """NFKC, lower case, no accents, no invisible format characters, one apostrophe."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    kept = (c for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return "".join(kept).translate(_APOSTROPHES)


def _squash(word: str) -> str:
    """Letters repeated in a row count once: "stooop" -> "stop"."""
    return re.sub(r"(.)\1+", r"\1", word)


def _plain_words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _fold(text).replace("'", ""))


# ---------------------------------------------------------------- crisis

def _phrase(phrase: str) -> str:
    """Regex for a phrase, to search in squashed text (see `_crisis_readings`).

    Words may run together ("killmyself"); "word*" is a stem (up to 5 more letters inside
    a phrase, any number at its end); "..." stands for up to three other words."""
    tokens = phrase.split()
    parts = []
    for i, token in enumerate(tokens):
        if token == "...":
            parts.append(r"(?:\w++ ){0,3}")
            continue
        part = re.escape(_squash(token.rstrip("*")))
        if token.endswith("*"):
            part += r"\w*" if i == len(tokens) - 1 else r"\w{0,5}"
        parts.append(part)
    return r"\b" + " ?".join(parts) + ("" if phrase.endswith("*") else r"\b")


_CRISIS_PHRASES: dict[str, tuple[str, ...]] = {
    "suicide": (
        "suicid*", "sucid*", "suisid*", "suicd*", "suiced*", "suecid*", "siucid*",
        "suside*", "sewer slide*", "un alive*", "k m s", "k y s", "self delet*",
        "kil* my self", "end* it all", "end* my life", "end* my own life", "to end it",
        "end* everything", "end* things", "tak* my own life", "tak* my life",
        "took my own life",
        "hang* my self", "shoot* my self", "drown* my self", "poison* my self",
        "jump* off", "jump* in front of", "gun to my head", "blow my brains",
        "going to jump", "jump* to my death", "want* ... end* it", "going to end* it",
        "danger to my self", "am not safe", "not feel* safe", "do not feel safe",
    ),
    "wants to die": (
        "want* ... die", "want* ... dead", "wish* i ... dead", "wish* i ... die",
        "wish* i ... never ... born", "hope i ... die", "better off dead",
        "rather be dead", "rather die", "ready to die", "kil me",
        "not ... want* to ... live", "not ... want* to be alive", "not ... want* to exist",
        "not ... want* to be ... here", "not ... want* to wake up",
        "longer want* to live", "tired of living", "tired of being alive",
        "want* to disappear", "disappear forever",
        "rather not be alive", "rather not ... live", "rather not ... exist", "rather not be here",
        "sleep forever", "never wake up", "not ... wake up", "done with life", "done with living",
        "am done with ... every thing", "am done with it all", "tired of life",
    ),
    "self-harm": (
        "hurt* my self", "harm* my self", "self harm*", "self injur*", "cut* my self",
        "cutting again", "burn* my self", "starv* my self", "slit* my wrist*",
    ),
    "overdose": (
        "over dos*", "took all ... pills", "take all ... pills", "too many ... pills",
        "too many ... med*", "whole bottle", "bunch of pills", "handful of pills",
        "pill* to end", "pill* to die", "med* to end", "stockpil*",
    ),
    "hopelessness": (
        "no way out", "can not go on", "could not go on", "can not do this any more",
        "can not take it any more", "can not take this any more", "can not live like this",
        "giv* up on life", "giv* up on living", "good bye forever", "final good bye",
        "this is good bye", "am a burden", "being a burden", "such a burden",
        "burden to every*", "burden on every*", "better off without me",
        "nothing to live for", "no reason to live", "no point in living",
        "no point living", "no point in life", "hopeless*", "no hope", "am worthless",
        "tired of every thing", "care if i ... gone", "better off if i ... gone",
        "no body would ... miss me", "no one would ... miss me", "no body would ... care",
        "no one would ... care", "no body would ... notice", "no one would ... notice",
        "not see the point", "no point any more", "what is the point", "feel* like giv* up",
        "just giv* up", "want* to give up", "am giv* up", "want* ... all to stop", "make it all stop",
        "pain to end", "pain to stop", "good bye every*", "can not do this", "can not cope",
    ),
    "medical emergency": (
        "can not breath*", "hard to breath*", "chest pain*", "chest hurt*", "pass* out", "fainted",
        "seizure*", "heart attack", "stroke", "heart ... racing", "call* an ambulance",
    ),
}
_CRISIS_RES = {
    label: re.compile("|".join(map(_phrase, phrases))) for label, phrases in _CRISIS_PHRASES.items()
}
_OD_RE = re.compile(r"\bo ?d(?:s|ed|ing)?\b")  # "OD" as a word, "o.d.", "ODing"; not squashed
# A counted dose ("took 20 of my pills") without flagging the daily "I took my pills".
_COUNTED_DOSE_RE = re.compile(
    r"\b(?:took|taken|take|swallowed|swallow)\b(?: \w+){0,2} (?:\d+|ten|twenty|thirty|fifty|hundred)"
    r"(?: \w+){0,3} (?:pills?|tablets?|meds|medications?|capsules?|sleeping)\b"
)
# Searched with all spaces removed too, to catch "s u i c i d e" and "kill my-self".
_SQUEEZED = {"suicide": ("suicid", "kilmyself", "unalive"), "self-harm": ("selfharm",),
             "overdose": ("overdos",)}
CRISIS_LABELS = tuple(_CRISIS_PHRASES)

_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "+": "t"}
_LEET_I = str.maketrans({**_LEET, "1": "i", "|": "i"})
_LEET_L = str.maketrans({**_LEET, "1": "l", "|": "l"})

# Keyed by the squashed word; expanded so that one phrase covers every spelling.
_CANONICAL = {
    "dont": "do not", "dnt": "do not", "doesnt": "does not", "didnt": "did not",
    "cant": "can not", "canot": "can not", "couldnt": "could not", "wont": "will not",
    "im": "i am", "wana": "want to", "wanta": "want to", "gona": "going to",
    "2": "to", "u": "you", "myslef": "myself", "mysef": "myself", "myslf": "myself",
}


def _crisis_words(text: str) -> list[str]:
    text = re.sub(r"[\W_]+", " ", text.replace("'", ""))
    return [_CANONICAL.get(_squash(w), w) for w in text.split()]


def _crisis_readings(text: str) -> tuple[list[str], list[str], str]:
    """Readings of `text` to search: folded, punctuation gone, contractions expanded, in
    plain and two leetspeak spellings (1 as i, 1 as l); the same squashed (letters repeated
    in a row counted once); and the plain squashed one with no spaces at all."""
    base = re.sub(r"\bod'd\b", "od", _fold(text))  # "OD'd" would otherwise read "odd"
    spellings = (base, base.translate(_LEET_I), base.translate(_LEET_L))
    plain = [" ".join(_crisis_words(v)) for v in spellings]
    squashed = [_squash(v) for v in plain]
    return plain, squashed, _squash(re.sub(r"[\W_]+", "", base))


def detect_crisis(text: str) -> tuple[str, ...]:
    """Labels (in CRISIS_LABELS order) of the crisis language found in `text`, or ().

    Over-flags rather than misses: contractions expanded ("dont" -> "do not", "wanna" ->
    "want to", "im" -> "i am"), leetspeak read, repeated letters tolerated ("diiie"),
    words allowed to run together, accents, case and punctuation ignored."""
    plain, squashed, squeezed = _crisis_readings(text)
    found = {label for label, rx in _CRISIS_RES.items() if any(rx.search(v) for v in squashed)}
    found |= {label for label, stems in _SQUEEZED.items() if any(s in squeezed for s in stems)}
    if any(_OD_RE.search(v) or _COUNTED_DOSE_RE.search(v) for v in plain):
        found.add("overdose")
    return tuple(label for label in CRISIS_LABELS if label in found)


# ---------------------------------------------------------------- keywords

def _keys(words: set[str] | frozenset[str]) -> frozenset[str]:
    return frozenset(_squash(w.lower()) for w in words)


_OUT = _keys(OPT_OUT_WORDS)
_OUT_WITH_POLITE = _keys({"stop", "stopall", "unsubscribe", "optout", "quit"})
_OUT_LEADING = _keys({"stop", "stopall", "unsubscribe", "optout"})
_IN = _keys(OPT_IN_WORDS)
_HELP = _keys(HELP_WORDS)
_POLITE = _keys(POLITE_WORDS)
_JOINED = _keys({"optout", "stopall", "unstop"})


def _join_pairs(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and out[-1] + word in _JOINED:
            out[-1] += word
        else:
            out.append(word)
    return out


def _keyword_kind(words: list[str], crisis: tuple[str, ...]) -> str | None:
    """"stop", "start", "help" or None, by the rules in the module docstring."""
    keys = _join_pairs([_squash(w) for w in words])
    core = {k for k in keys if k not in _POLITE}
    polite = len(core) < len(set(keys))
    if core and core <= _OUT and (not polite or core <= _OUT_WITH_POLITE):
        return "stop"
    if not polite and core and core <= _IN:
        return "start"
    if not polite and core and core <= _HELP:
        return "help"
    if keys[0] in _OUT_LEADING and (crisis or _ABOUT_MESSAGES & set(keys)):
        return "stop"
    return None


# Words that show a leading STOP is about the texts, not about something else.
_ABOUT_MESSAGES = frozenset(
    "text texts texting txt txts message messages messaging msg msgs sms sending send contacting "
    "contact reminders reminder spam spamming bothering number".split()
)


# ---------------------------------------------------------------- confirm / reschedule

# Matched against the words joined by single spaces ("I'll" is "ill").
_PRE = (
    r"(?:(?:ok|okay|k|yes|yeah|yep|yup|sure|great|perfect|hi|hello|hey"
    r"|thanks|thank you|thx|ty|please|pls) )*"
)
_POST = r"(?: (?:thanks|thank you|thx|ty|please|pls|ok|great|bye|see you(?: then| there| soon)?))*"
_WHAT = r"(?: (?:my |the )?(?:appointment|appt|visit|infusion|session|booking))?"
_CONFIRM_RE = re.compile(
    rf"{_PRE}(?:c|confirm|confirmed|confirming|i confirm|(?:i )?(?:ill|will|shall) be there)"
    rf"{_WHAT}{_POST}"
)
_RESCHEDULE_RE = re.compile(
    rf"{_PRE}(?:r|resched|reschedule|(?:i )?(?:need|want|would like|id like|have) to reschedule"
    rf"|(?:can|could|may) i reschedule|please reschedule){_WHAT}{_POST}"
)
_NEGATIONS = set("no not dont never nevermind nope didnt doesnt wont without".split())


def _asks_reschedule(words: list[str]) -> bool:
    for i, word in enumerate(words):
        if word.startswith("resched") and not _NEGATIONS & set(words[max(0, i - 3):i]):
            return True
    return False


# ---------------------------------------------------------------- mood scores

_NUMBER_WORDS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())
}
_NUM = r"(?:[0-9]+(?:\.[0-9]+)?|" + "|".join(_NUMBER_WORDS) + ")"
_OUT_OF_RANGE = Decimal(999)
_RANGE = rf"(?P<a>{_NUM})(?:\s*(?:-|–|—|to|or)\s*(?P<b>{_NUM}))?"
_NOT_AFTER = r"(?<![\w.:/$#-])"
_SCALE_RE = re.compile(
    rf"{_NOT_AFTER}{_RANGE}\s*(?:/|out\s+of|outta|of)\s*(?:10|ten)(?!\w|[-.:/]\d)", re.I
)
_TOKEN_RE = re.compile(rf"{_NOT_AFTER}{_RANGE}(?:\s*-?\s*ish)?(?!\w|%|[-.:/]\d)", re.I)
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_NEXT_WORD_RE = re.compile(r"\s*[^\W_]+(?:'[^\W_]+)*")

_ADJECTIVES = {"low", "high", "good", "strong", "weak", "decent", "steady", "shaky", "bad"}
_STRONG_CUES = set("a an mood moods score rating rate rated solid say level".split())
_WEAK_CUES = {"about", "maybe", "probably", "prob", "honestly", "like", "feeling", "feel", "felt",
              "im", "its", "is", "was"}
_BLOCKERS = {"at", "by", "until", "till", "til", "before", "from", "on", "of", "room", "suite",
             "unit", "apt", "page", "step", "number", "no", "took", "take", "taking", "ext"}
_FOLLOWERS = set(
    "but and or today tonight now this though tho i im id ive feeling feel mood with w overall "
    "maybe ish so pretty for because bc cause cuz thanks thank thx ty lol haha too again still "
    "yesterday honestly mostly right atm after since".split()
)
_ALL_CUES = _STRONG_CUES | _WEAK_CUES | _ADJECTIVES
_NOTE_FILLER = _ALL_CUES | set(
    "i id ive my it would today tonight now right overall out 10 ten so pretty much ish "
    "at give gives giving guess think "
    "thanks thank you thx ty ok okay lol".split()
)
_NOTE_LEADERS = set("but and today tonight now though tho with w so overall".split())
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


def _scoreish(text: str, m: re.Match[str], expecting: bool, scale: bool) -> bool:
    """Is this number a score, judged by the words around it?"""
    before = text[max(0, m.start() - 80): m.start()]
    prev = _words_of(before)[-2:]
    following = _NEXT_WORD_RE.match(text, m.end())
    next_word = _words_of(following.group())[0] if following else None
    if prev and prev[-1] in _BLOCKERS:
        return False
    if scale:
        return next_word not in {"at", "am", "pm"}
    if next_word is not None and next_word not in _FOLLOWERS:
        return False
    if not _WORD_RE.search(text, 0, m.start()) or _STRONG_CUES & set(prev):
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

def read_reply(text: str, *, expecting_score: bool = False) -> Reading:
    """Classify one inbound text; see the module docstring for the kinds and rules.

    `expecting_score`: the last message sent to this patient was a mood check-in, so a
    bare 1 or 3 is a score rather than confirm/reschedule, and looser score phrasing counts.
    """
    crisis = detect_crisis(text)
    words = _plain_words(text)
    if not words:
        return Reading("empty", crisis_terms=crisis)
    keyword = _keyword_kind(words, crisis)
    if keyword:
        with_words = keyword == "stop" and bool(crisis)  # rule (c): keep what they wrote
        return Reading(keyword, note=text.strip() if with_words else "", crisis_terms=crisis)
    joined = " ".join(words)
    if _CONFIRM_RE.fullmatch(joined):
        return Reading("confirm", crisis_terms=crisis)
    if _RESCHEDULE_RE.fullmatch(joined):
        return Reading("reschedule", crisis_terms=crisis)
    return _score_or_rest(text, words, expecting_score, crisis)


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
    if _asks_reschedule(words):
        return Reading("reschedule", note=text.strip(), crisis_terms=crisis)
    return Reading("free_text", note=text.strip(), crisis_terms=crisis)


# ---------------------------------------------------------------- what kind of urgent, which language

MEDICAL_LABELS = frozenset({"medical emergency"})


def crisis_kind(terms: tuple[str, ...]) -> str | None:
    """"suicidal" when any label speaks of suicide or self-harm (it wins: the answer leads with the
    crisis line), "medical" when only a medical emergency was found (the answer leads with 911)."""
    if not terms:
        return None
    return "medical" if set(terms) <= MEDICAL_LABELS else "suicidal"


_SPANISH_WORDS = frozenset(
    "que quiero no ya mas estoy esta estoy me mi yo tengo puedo vivir morir matar hola gracias "
    "por favor para con pero muy bien mal dolor pecho respirar cita manana hoy ayuda siento "
    "nada todo vida todos mejor sin ella el los las una uno soy eres aguanto puedo".split()
)
_ENGLISH_WORDS = frozenset(
    "i the to and my me is it you want not am im have can dont just feel this that of in be so "
    "with for what all life will".split()
)


def looks_spanish(text: str) -> bool:
    """Whether a text reads as Spanish: more common Spanish words than English ones."""
    words = _plain_words(text)
    spanish = sum(w in _SPANISH_WORDS for w in words) + 2 * bool(re.search(r"[ñ¿¡]", text.lower()))
    english = sum(w in _ENGLISH_WORDS for w in words)
    return spanish > english and spanish >= 1
