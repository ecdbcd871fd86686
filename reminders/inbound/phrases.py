"""Phrases as small patterns over a folded text: the shared reader of `answers` and `consent_words`.

Pure: standard library only, no I/O.

`fold(text)` is how a patient's text is compared: NFKC, lower case (casefold), accents and
invisible format characters removed, apostrophes dropped ("don't" -> "dont"), every other
punctuation mark a space, letters repeated in a row counted once ("stooop" -> "stop",
"messages" -> "mesages", "bórrenme" -> "borenme"), single spaces between words.

A phrase is words separated by spaces, matched as whole words, in order, next to each other,
anywhere in the folded text. Its words are folded the same way, so a phrase may be written
with accents and doubled letters ("mañana", "messages"). Tokens:

    word        that word
    a|b|c       any one of these words
    a_b         the words "a b" (inside an alternative: "do_not|dont")
    word*       any word starting so ("text*": text, texts, texting)
    [a|b]       optional: one of these, or nothing
    @name       a named group of alternatives (the caller's table of groups)
    ...         up to 3 other words; ...N up to N
    ^           (first token only) the phrase starts the text
    $           (last token only) the phrase ends the text
    !a|b        (last token only) not followed by any of these

A malformed phrase raises PhraseError with the phrase in the message.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

__all__ = ["PhraseError", "compile_phrase", "compile_phrases", "fold", "search_any"]

_APOSTROPHES = frozenset("'’‘`´ʼ′")
_REPEATS = re.compile(r"([^\W\d_])\1+")
_NOT_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"[a-z0-9]+")
_GAP = re.compile(r"\.\.\.(\d*)")
MAX_GAP = 9


class PhraseError(ValueError):
    """A phrase that cannot be read: the message names it and says why."""


def fold(text: str) -> str:
    """The text as phrases see it: "Don't TEXT me!!" -> "dont text me"."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if c not in _APOSTROPHES and not unicodedata.combining(c)
                   and unicodedata.category(c) != "Cf")
    text = _REPEATS.sub(r"\1", _NOT_WORD.sub(" ", text))
    return " ".join(text.split())


def _padded(folded: str) -> str:
    """" w1 w2 ": every word of the text is preceded and followed by a space."""
    return f" {folded} " if folded else " "


def _word(word: str, phrase: str) -> str:
    stem = word.endswith("*")
    body = fold(word[:-1] if stem else word)
    if not _WORD.fullmatch(body):
        raise PhraseError(f"{phrase!r}: {word!r} is not a word (letters and digits, an optional * at the end)")
    return re.escape(body) + (r"[^ ]*" if stem else "")


def _alternatives(token: str, phrase: str, groups: Mapping[str, str], seen: tuple[str, ...] = ()) -> str:
    alternatives = []
    for alternative in token.split("|"):
        if alternative.startswith("@"):
            name = alternative[1:]
            if name not in groups:
                raise PhraseError(f"{phrase!r}: no group named {name!r}")
            if name in seen:
                raise PhraseError(f"{phrase!r}: group {name!r} contains itself")
            alternatives.append(_alternatives(groups[name], phrase, groups, seen + (name,)))
            continue
        words = alternative.split("_")
        if not alternative or not all(words):
            raise PhraseError(f"{phrase!r}: an empty word in {token!r}")
        alternatives.append(" ".join(_word(word, phrase) for word in words))
    return "(?:" + "|".join(alternatives) + ")"


def compile_phrase(phrase: str, groups: Mapping[str, str] | None = None) -> re.Pattern[str]:
    """The regex of one phrase, to be searched in `_padded(fold(text))` (see `search_any`)."""
    groups = groups or {}
    if not isinstance(phrase, str):
        raise PhraseError(f"{phrase!r}: a phrase is a string")
    tokens = phrase.split()
    if not tokens:
        raise PhraseError(f"{phrase!r}: an empty phrase")
    start = r"\A " if tokens[0] == "^" else " "
    if tokens[0] == "^":
        tokens = tokens[1:]
    ahead = ""
    if tokens and tokens[-1].startswith("!"):
        ahead = "(?!" + _alternatives(tokens.pop()[1:], phrase, groups) + " )"
    end = ""
    if tokens and tokens[-1] == "$":
        end = r"\Z"
        tokens.pop()
        if ahead:
            raise PhraseError(f"{phrase!r}: $ and ! cannot both end a phrase")
    parts = []
    for index, token in enumerate(tokens):
        gap = _GAP.fullmatch(token)
        if gap:
            if index in (0, len(tokens) - 1):
                raise PhraseError(f"{phrase!r}: ... must stand between two words")
            most = int(gap.group(1) or 3)
            if not 1 <= most <= MAX_GAP:
                raise PhraseError(f"{phrase!r}: ...{most}: a gap is 1 to {MAX_GAP} words")
            parts.append(r"(?:[^ ]+ ){0,%d}" % most)
        elif token in ("^", "$") or token.startswith("!"):
            raise PhraseError(f"{phrase!r}: {token!r} may only start (^) or end ($, !) a phrase")
        elif token.startswith("[") or token.endswith("]"):
            if not (token.startswith("[") and token.endswith("]")) or len(token) < 3:
                raise PhraseError(f"{phrase!r}: {token!r}: an optional word is written [a|b]")
            parts.append("(?:" + _alternatives(token[1:-1], phrase, groups) + " )?")
        else:
            parts.append(_alternatives(token, phrase, groups) + " ")
    if not any(not _GAP.fullmatch(t) and not t.startswith("[") for t in tokens):
        raise PhraseError(f"{phrase!r}: a phrase needs at least one word that is not optional")
    pattern = start + "".join(parts) + ahead + end
    try:
        return re.compile(pattern)
    except re.error as exc:  # pragma: no cover - the tokens above only build valid regexes
        raise PhraseError(f"{phrase!r}: {exc}") from exc


def compile_phrases(phrases: Iterable[str], groups: Mapping[str, str] | None = None) -> tuple[re.Pattern[str], ...]:
    return tuple(compile_phrase(phrase, groups) for phrase in phrases)


def search_any(patterns: Iterable[re.Pattern[str]], folded: str) -> bool:
    """Whether any pattern is found in a text already folded with `fold`."""
    padded = _padded(folded)
    return any(pattern.search(padded) for pattern in patterns)
