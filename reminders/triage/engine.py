"""The matcher: finds the triage categories named in a text, from the phrase files. Pure.

The phrases live in ``phrases/<language>.toml`` and topic files beside it (``en-goodbyes.toml``;
``[words]`` are shared by all files; every file's phrases are
searched in every text, so a Spanish phrase is found in a mostly English text). A file holds:

- ``[words]``: named alternations, used in phrases as ``{NAME}``;
- ``[shorthand]``: a texting spelling and what it stands for (``dont = "do not"``, ``q = "que"``);
- ``[masks] idioms``: idioms blanked out before the search ("dying to know", "me muero de
  hambre") and statements that a crisis is absent ("no thoughts of hurting myself", "not
  suicidal"), narrow on purpose (a mask must never hide a crisis);
- ``[masks] past``: a crisis told as long past ("tried to kill myself back in college",
  "overdosed in 2019"), blanked when a ``[masks] well`` phrase says the sender is well now ("doing
  great", "stable") unless a ``[masks] relapse`` phrase says it is back ("again", "going to");
- ``[away]``: saying one will not be here (a goodbye), unless the text speaks of a ``trips`` word;
- ``[history]``: words that put a medical emergency in the past, unless a ``now`` word is there;
- ``[squeezed]``: stems searched with every space and mark removed ("s u i c i d e"), except
  where a mask hid them;
- ``[emoji]``: an emoji and the word it stands for when used as one ("🔫" = "gun");
- ``[acknowledgements] patterns``: regular expressions (Python's) for a whole text that only
  acknowledges ("thanks", "who is this"), matched on its words joined by single spaces;
- ``[[category]]``: ``name``, ``tier`` (emergency, suicide_risk, urgent, routine) and ``phrases``.

The pattern language of a phrase (`compile_phrase`), searched in the text folded (lower case, no
accents, punctuation gone, shorthand expanded, letters repeated in a row counted once):

- words separated by spaces must follow each other; words may also run together ("killmyself");
- ``word*`` is a stem (up to 5 more letters inside a phrase, any number at its end);
- ``a|b*|c_d`` is any one of these, ``_`` joining words (``c_d`` is "c d");
- ``...`` stands for up to three other words, ``...N`` for up to N (also right before ``$``);
- ``$`` is the end of the text, on its own or as one of the choices (``now|$``);
- a last token ``!a|b_c|d*`` means "not followed by the words a, or b c, or a word starting d".

Files are checked when they load: an unknown ``{NAME}``, an unknown tier, an empty phrase or one
that does not compile fails with the file and the phrase (`PhraseError`).
"""
from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

PHRASES_DIR = Path(__file__).resolve().parent / "phrases"
TIERS = ("routine", "urgent", "suicide_risk", "emergency")


class PhraseError(ValueError):
    """A phrase file that cannot be used, with the file and the phrase."""


@dataclass(frozen=True)
class Category:
    name: str
    tier: str
    language: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Found:
    """One category found in a text, with the phrase (as written in its file) that found it."""
    category: str
    tier: str
    phrase: str


# ---------------------------------------------------------------- folding

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘`´ʼ′"})
# Letters from other scripts that look like Latin ones ("kіll" with a Cyrillic і): NFKC leaves
# them, so they are mapped here before anything is read.
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s",
    "к": "k", "м": "m", "н": "h", "т": "t", "в": "b", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l",
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c", "Т": "t", "Х": "x",
    "І": "i", "Ј": "j", "Ѕ": "s", "α": "a", "ο": "o", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p", "τ": "t",
    "υ": "u", "Α": "a", "Β": "b", "Ε": "e", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t",
    "ı": "i", "ł": "l", "ø": "o", "ß": "ss",
})


def fold(text: str) -> str:
    """NFKC, look-alike letters to Latin, lower case, no accents, no invisible format
    characters, one apostrophe."""
    text = unicodedata.normalize("NFKC", str(text)).translate(_CONFUSABLES)
    text = unicodedata.normalize("NFKD", text.casefold())
    kept = (c for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return "".join(kept).translate(_APOSTROPHES)


def squash(word: str) -> str:
    """Letters repeated in a row count once: "stooop" -> "stop". Digits keep their repeats, so a
    reading of 199/111 is not 19/1 and a year such as 1990 never reads as a pressure of 190."""
    return re.sub(r"([^\W\d])\1+", r"\1", word)


# ---------------------------------------------------------------- phrases

def compile_phrase(phrase: str, capture: bool = False) -> str:
    """The regex for one phrase (see the module docstring), to search in squashed text. With
    `capture`, each of its words (not its ``...`` gaps) is a group of its own."""
    tokens = phrase.split()
    if not tokens:
        raise ValueError("empty phrase")
    ahead = ""
    if tokens[-1].startswith("!"):
        alts = [_not_followed_by(alt) for alt in tokens.pop()[1:].split("|")]
        ahead = r"(?! (?:" + "|".join(alts) + r")\b)"
    parts = []
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        ends_word = last or tokens[i + 1].startswith("...")  # "tree ..." must not match "treatment"
        if token.startswith("..."):
            gap = int(token[3:] or 3)
            # before the end of the text the last word of the gap has no space after it
            parts.append(r"(?:\w++(?: |$)){0,%d}" % gap if not last and tokens[i + 1] == "$"
                         else r"(?:\w++ ){0,%d}" % gap)
            continue
        if token == "$":
            parts.append(token)
            continue
        alts = []
        for alt in token.split("|"):
            if alt == "$":  # the end of the text as one of the choices ("taken care of $|now")
                alts.append("$")
                continue
            words = alt.split("_")
            body = []
            for j, word in enumerate(words):
                w = re.escape(squash(fold(word.rstrip("*"))))
                if word.endswith("*"):
                    w += r"\w*+" if last and j == len(words) - 1 else r"\w{0,5}"
                body.append(w)
            alts.append(" ?".join(body) + ("" if alt.endswith("*") or not ends_word else r"\b"))
        parts.append(("(" if capture else "(?:") + "|".join(alts) + ")")
    return r"\b" + " ?".join(parts) + ahead


def _not_followed_by(alt: str) -> str:
    """One choice of a closing ``!`` list: words joined by ``_``, the last may be a stem."""
    words = alt.split("_")
    body = [re.escape(squash(fold(w.rstrip("*")))) + (r"\w*" if w.endswith("*") else "") for w in words]
    return " ".join(body)


def one_pattern(phrases: tuple[str, ...] | list[str], capture: bool = False) -> re.Pattern[str]:
    if not phrases:
        return re.compile(r"(?!x)x")
    return re.compile("|".join(compile_phrase(p, capture) for p in phrases))


def _blank_words(pattern: re.Pattern[str], text: str) -> str:
    """Every match of `pattern` (compiled with `capture`) blanked, except the words its ``...``
    gaps stood for: "regalé mis cosas por la mudanza y quiero morirme, ya no voy a necesitar
    nada" keeps "quiero morirme" however wide the idiom's gaps."""
    def blank(m: re.Match[str]) -> str:
        kept = list(m.group(0))
        for group in range(1, pattern.groups + 1):
            start, end = m.span(group)
            if start != -1:
                kept[start - m.start():end - m.start()] = " " * (end - start)
        return "".join(kept)
    return pattern.sub(blank, text)


_NAME_RE = re.compile(r"\{([A-Z_]+)\}")


def _expand(phrase: str, words: dict[str, str], where: str) -> str:
    def name(m: re.Match[str]) -> str:
        if m[1] not in words:
            raise PhraseError(f"{where}: unknown name {{{m[1]}}} in phrase {phrase!r}")
        return words[m[1]]
    return _NAME_RE.sub(name, phrase)


@dataclass(frozen=True)
class Phrasebook:
    """Every language's phrase file, compiled."""
    categories: tuple[Category, ...]
    shorthand: dict[str, str]
    idioms: re.Pattern[str]
    idiom_words: re.Pattern[str]  # the same, each word a group: what a match blanks (_blank_words)
    past: re.Pattern[str]
    well: re.Pattern[str]
    relapse: re.Pattern[str]
    away: re.Pattern[str]
    trips: re.Pattern[str]
    history: re.Pattern[str]
    now: re.Pattern[str]
    squeezed: dict[str, tuple[str, ...]]
    emoji: dict[str, str]
    acknowledgement: re.Pattern[str]
    languages: tuple[str, ...]

    def tier_of(self, category: str) -> str:
        return next((c.tier for c in self.categories if c.name == category), "suicide_risk")


def load_phrasebook(folder: Path = PHRASES_DIR) -> Phrasebook:
    """Read and check every ``*.toml`` in `folder`."""
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise PhraseError(f"{folder}: no phrase files")
    words: dict[str, str] = {}
    data = []
    for path in files:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PhraseError(f"{path.name}: {exc}") from exc
        words.update(table.get("words", {}))
        data.append((path.name, table))
    categories: list[Category] = []
    shorthand: dict[str, str] = {}
    lists: dict[str, list[str]] = {k: [] for k in ("idioms", "past", "well", "relapse", "away", "trips", "history", "now")}
    squeezed: dict[str, list[str]] = {}
    emoji: dict[str, str] = {}
    thanks: list[str] = []
    for name, table in data:
        where = name
        shorthand.update({squash(k): v for k, v in table.get("shorthand", {}).items()})
        emoji.update({unicodedata.normalize("NFKC", k).casefold(): f" {v} " for k, v in table.get("emoji", {}).items()})
        thanks += table.get("acknowledgements", {}).get("patterns", [])
        lists["idioms"] += table.get("masks", {}).get("idioms", [])
        lists["past"] += table.get("masks", {}).get("past", [])
        lists["well"] += table.get("masks", {}).get("well", [])
        lists["relapse"] += table.get("masks", {}).get("relapse", [])
        lists["away"] += table.get("away", {}).get("phrases", [])
        lists["trips"] += table.get("away", {}).get("trips", [])
        lists["history"] += table.get("history", {}).get("phrases", [])
        lists["now"] += table.get("history", {}).get("now", [])
        for category, stems in table.get("squeezed", {}).items():
            squeezed.setdefault(category, []).extend(stems)
        for entry in table.get("category", []):
            if entry.get("tier") not in TIERS:
                raise PhraseError(f"{where}: category {entry.get('name')!r} has tier {entry.get('tier')!r}; "
                                  f"one of {', '.join(TIERS)}")
            phrases = tuple(_expand(p, words, where) for p in entry.get("phrases", []))
            for raw, phrase in zip(entry.get("phrases", []), phrases):
                try:
                    re.compile(compile_phrase(phrase))
                except (ValueError, re.error) as exc:
                    raise PhraseError(f"{where}: category {entry['name']!r}, phrase {raw!r}: {exc}") from exc
            categories.append(Category(entry["name"], entry["tier"], table.get("language", name), phrases))
    expanded = {k: [_expand(p, words, k) for p in v] for k, v in lists.items()}
    known = {c.name for c in categories}
    for category in squeezed:
        if category not in known:
            raise PhraseError(f"[squeezed] names an unknown category {category!r}")
    return Phrasebook(
        categories=tuple(categories), shorthand=shorthand,
        idioms=one_pattern(expanded["idioms"]), idiom_words=one_pattern(expanded["idioms"], capture=True),
        past=one_pattern(expanded["past"]),
        well=one_pattern(expanded["well"]), relapse=one_pattern(expanded["relapse"]), away=one_pattern(expanded["away"]),
        trips=one_pattern(expanded["trips"]), history=one_pattern(expanded["history"]),
        now=one_pattern(expanded["now"]), squeezed={k: tuple(v) for k, v in squeezed.items()}, emoji=emoji,
        acknowledgement=_whole_text(thanks),
        languages=tuple(dict.fromkeys(table.get("language", n) for n, table in data)),
    )


def _whole_text(patterns: list[str]) -> re.Pattern[str]:
    try:
        return re.compile("(?:" + "|".join(f"(?:{p})" for p in patterns) + ")" if patterns else r"(?!x)x")
    except re.error as exc:
        raise PhraseError(f"[acknowledgements]: {exc}") from exc


@functools.cache
def phrasebook() -> Phrasebook:
    return load_phrasebook()


@functools.cache
def _category_patterns() -> tuple[tuple[str, str, re.Pattern[str], tuple[str, ...]], ...]:
    """Each category name with its tier and one pattern for all languages' phrases (compiled on
    first use: all of them take most of a second)."""
    book = phrasebook()
    merged: dict[str, list[str]] = {}
    for category in book.categories:
        merged.setdefault(category.name, []).extend(category.phrases)
    return tuple((name, book.tier_of(name), one_pattern(phrases), tuple(phrases)) for name, phrases in merged.items())


# ---------------------------------------------------------------- readings of a text

_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "+": "t"}
_LEET_I = str.maketrans({**_LEET, "1": "i", "|": "i"})
_LEET_L = str.maketrans({**_LEET, "1": "l", "|": "l"})
_HAS_LETTER = re.compile(r"[^\W\d_]")


def _leet(text: str, table: dict[int, str]) -> str:
    """Leetspeak read in words that hold a letter ("k1ll", "$uicide"); numbers stay numbers."""
    return re.sub(r"\S+", lambda m: m[0].translate(table) if _HAS_LETTER.search(m[0]) else m[0], text)


def _words(text: str, shorthand: dict[str, str]) -> list[str]:
    text = re.sub(r"[\W_]+", " ", text.replace("'", ""))
    return [shorthand.get(squash(w), w) for w in text.split()]


@dataclass(frozen=True)
class Readings:
    folded: str  # the text folded, emoji as words
    plain: tuple[str, ...]  # folded, punctuation gone, shorthand expanded: as written and two leetspeak spellings
    squashed: tuple[str, ...]  # the same, repeated letters once, idioms masked
    squeezed: str  # no spaces or marks at all
    expanded: str = ""  # squeezed from the text with shorthand expanded
    masked: str = ""  # squeezed from the text with shorthand expanded and masks applied

    def squeezed_stem(self, stem: str) -> bool:
        """A stem found with spaces and marks removed, unless a mask hid it ("not suicidal",
        "overdosed on netflix"): a stem that only shorthand breaks up ("s u i c i d e") counts."""
        return stem in self.squeezed and not (stem in self.expanded and stem not in self.masked)


def readings(text: str) -> Readings:
    """The text as the phrases are searched in it; emoji that stand for words ("🔫", "💊") read
    as those words."""
    book = phrasebook()
    text = re.sub(r"\bOD'?d\b", "od", str(text))  # "ODd": "odd" once folded, so read before
    folded = "".join(book.emoji.get(c, c) for c in fold(text))
    base = re.sub(r"\bod'd\b", "od", folded)  # "OD'd" would otherwise read "odd"
    base = re.sub(r"\bw/o\b", "without", base)
    spellings = (base, _leet(base, _LEET_I), _leet(base, _LEET_L))
    plain = tuple(dict.fromkeys(" ".join(_words(v, book.shorthand)) for v in spellings))
    squashed = tuple(dict.fromkeys(_masked(squash(v), book) for v in plain))
    return Readings(folded, plain, squashed, _squeeze(base), _squeeze(plain[0]), _squeeze(squashed[0]))


def _masked(text: str, book: Phrasebook) -> str:
    """Idioms blanked out; a crisis told as long past blanked too when the text says the sender is
    well now, unless it says it is back."""
    if book.idioms.search(text):  # most texts hold no idiom: the slower pattern only when one does
        text = _blank_words(book.idiom_words, text)
    return " ".join(_past_blanked(text, book).split())


def _past_blanked(text: str, book: Phrasebook) -> str:
    """A squashed text with a crisis told as long past blanked, when the text says the sender is
    well now and not that it is back; else the text as it was."""
    if book.well.search(text) and not book.relapse.search(text):
        return book.past.sub(" ", text)
    return text


def _squeeze(text: str) -> str:
    return squash(re.sub(r"[\W_]+", "", text))


def find_phrases(reading: Readings) -> list[Found]:
    """Every category whose phrases occur in the text, with the first phrase that did."""
    found = []
    for name, tier, pattern, phrases in _category_patterns():
        for text in reading.squashed:
            m = pattern.search(text)
            if m:
                found.append(Found(name, tier, _which(phrases, text, m.start())))
                break
    book = phrasebook()
    if any(book.away.search(v) for v in reading.squashed) and not any(book.trips.search(v) for v in reading.squashed):
        found.append(Found("preparation and goodbyes", "suicide_risk", "(not being here)"))
    for category, stems in book.squeezed.items():
        stem = next((s for s in stems if reading.squeezed_stem(s)), None)
        if stem:
            found.append(Found(category, book.tier_of(category), stem))
    return found


@functools.lru_cache(maxsize=4096)
def _compiled(phrase: str) -> re.Pattern[str]:
    return re.compile(compile_phrase(phrase))


def _which(phrases: tuple[str, ...], text: str, start: int) -> str:
    """The phrase whose own pattern matches at `start` (for staff: why it was flagged)."""
    for phrase in phrases:
        if _compiled(phrase).match(text, start):
            return phrase
    return phrases[0] if phrases else ""


def beside_the_past(reading: Readings) -> tuple[str, ...]:
    """The plain readings with a crisis told as long past ("OD'd on heroin in 2016") blanked, as the
    phrases' own masks blank it (`_past_blanked`); a reading with nothing blanked stays as it was."""
    book = phrasebook()
    out = []
    for text in reading.plain:
        squashed = squash(text)
        blanked = _past_blanked(squashed, book)
        out.append(text if blanked == squashed else blanked)
    return tuple(out)


def in_the_past(reading: Readings) -> bool:
    """A medical word about the past ("a seizure years ago") with nothing said of now."""
    book = phrasebook()
    return any(book.history.search(v) and not book.now.search(v) for v in reading.squashed)
