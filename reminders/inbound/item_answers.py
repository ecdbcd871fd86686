"""Read a text as the answer to one questionnaire item asked by SMS.

Pure: no I/O. An answer is one of the item's values, given as a digit ("2", "2.", "2!"), a number
word in English or Spanish ("two", "dos", "cero"), or an option's own words ("several days",
"varios días", accents and case ignored); a number and words that agree ("1 several days") are one
answer. Several numbers ("1 2 3", "1-2", "1.5"), a number and words that disagree, or a number out
of range are not an answer: the caller asks again. What else the text says is kept as `note`
("2, and can my husband drive me?" -> "and can my husband drive me?").
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

from reminders.inbound.parsing import KEYWORDS, Reading

NUMBER_WORDS = {word: value for table in KEYWORDS.values() for value, word in enumerate(table["numbers"])}
# Words that join numbers: a text made only of numbers and these gives several answers, not one.
_JOINERS = frozenset("or o to a and y maybe quizas tal vez".split())


@dataclass(frozen=True)
class ItemAnswer:
    value: int | None  # None: not an answer; ask again
    note: str = ""  # what else the text says, for staff


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, one space between words."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", text))


def is_bare_number(text: str) -> bool:
    """Only a number, digits or a word ("cero", "2!")."""
    words = fold(text).split()
    return len(words) == 1 and (words[0].isdigit() or words[0] in NUMBER_WORDS)


def option_phrases(options: Iterable) -> dict[str, int]:
    """Each option's words, in both languages, folded -> its value. An option that is only its
    number ("3" on a 0-10 scale) has no words; "0 No pain" counts as "no pain"."""
    phrases = {}
    for option in options:
        for language in ("en", "es"):
            words = fold(option.text(language))
            words = re.sub(rf"^{option.value}\b\s*", "", words)
            if words and not words.isdigit():
                phrases[words] = option.value
    return phrases


def read_item_answer(text: str, reading: Reading, options: Iterable) -> ItemAnswer:
    """The value `text` gives the item whose options are `options`; `reading` is parsing's
    reading of the same text (expecting a number)."""
    options = list(options)
    allowed = {option.value for option in options}
    folded = fold(text)
    said, rest = _by_words(folded, option_phrases(options))
    numbers = [w for w in folded.split() if w.isdigit() or w in NUMBER_WORDS]
    if not numbers:
        return ItemAnswer(said, _note(text, rest)) if said is not None else ItemAnswer(None)
    if _several(folded, numbers) or reading.kind != "score" or reading.score is None:
        return ItemAnswer(None)
    value = reading.score
    if value not in allowed or (said is not None and said != value):
        return ItemAnswer(None)
    note = reading.note
    if said is not None:
        note = _without_phrases(note, option_phrases(options))
    return ItemAnswer(value, note.strip())


def _by_words(folded: str, phrases: dict[str, int]) -> tuple[int | None, str]:
    """The one value the option words in the text name (None: none, or several), and the text
    without them."""
    found = {value for phrase, value in phrases.items() if re.search(rf"\b{re.escape(phrase)}\b", folded)}
    if len(found) != 1:
        return None, folded
    return found.pop(), _without_phrases(folded, phrases)


def _without_phrases(text: str, phrases: dict[str, int]) -> str:
    folded = fold(text)
    for phrase in sorted(phrases, key=len, reverse=True):
        folded = re.sub(rf"\b{re.escape(phrase)}\b", " ", folded)
    return " ".join(folded.split())


def _note(text: str, rest: str) -> str:
    """What the text says besides the option's words: the whole text when there is more."""
    return text.strip() if len(rest.split()) > 1 else ""


def _several(folded: str, numbers: list[str]) -> bool:
    """Several numbers offered as the answer: "1 2 3", "1 or 2", "1-2", "1.5", "idk maybe 1 or 2"."""
    def value(word: str) -> int:
        return NUMBER_WORDS[word] if word in NUMBER_WORDS else int(word)

    if len({value(n) for n in numbers}) < 2:
        return False
    words = folded.split()
    if all(w in numbers or w in _JOINERS for w in words) or len(words) <= 4:
        return True
    places = [i for i, w in enumerate(words) if w in numbers]
    return any(b - a == 1 or (b - a == 2 and words[a + 1] in _JOINERS) for a, b in zip(places, places[1:]))
