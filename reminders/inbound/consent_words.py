"""Opting out in the patient's own words, and asking to come back. Pure: no I/O after import.

Since April 2025 (FCC, 47 CFR 64.1200(a)(10)) consent to texts may be revoked "by any reasonable
means", not only by the carrier keywords (STOP, UNSUBSCRIBE... which reminders.inbound.parsing
reads). `revokes_consent` reads the rest: "no more texts please", "take me off this list",
"ya no me manden mensajes", "PARA". A text that also speaks of self-harm still revokes consent
when it asks to stop the texts; the caller handles the crisis itself separately.

`wants_back_in` reads a change of mind after an opt-out ("wait no, I still want the reminders",
"me equivoqué, sí quiero los recordatorios"): the caller answers with how to come back (START).

The phrases are data: consent_words.toml beside this file, one table per language (every table
is used for every text), in the small pattern syntax of reminders.inbound.phrases (documented at
the top of the TOML). They are read and checked once, at import: a bad phrase fails the import
with the phrase and the reason (ConsentWordsError).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from reminders.inbound.phrases import PhraseError, compile_phrases, fold, search_any

__all__ = ["ConsentWordsError", "PHRASES_FILE", "revokes_consent", "wants_back_in"]

PHRASES_FILE = Path(__file__).resolve().with_name("consent_words.toml")
LANGUAGES = ("en", "es")  # tables the file must have
LISTS = ("revoke", "keep", "back_in", "back_in_not")
MAX_TEXT = 5000  # characters read of one text (an SMS is at most 1600)
_CLAUSES = re.compile(r"[.,;:!?¡¿\n\r…]+")


class ConsentWordsError(ValueError):
    """consent_words.toml cannot be used: the message names the file, the place and the reason."""


@dataclass(frozen=True)
class ConsentPhrases:
    revoke: tuple[re.Pattern[str], ...]
    keep: tuple[re.Pattern[str], ...]
    back_in: tuple[re.Pattern[str], ...]
    back_in_not: tuple[re.Pattern[str], ...]


def load(path: Path = PHRASES_FILE) -> ConsentPhrases:
    """Read and check the phrases file; every language's lists are joined."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConsentWordsError(f"{path.name}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConsentWordsError(f"{path.name}: cannot be read ({exc.strerror})") from None
    groups = raw.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(v, str) and v.strip() for v in groups.values()):
        raise ConsentWordsError(f"{path.name}: [groups] holds names = \"a|b|c\" strings")
    unknown = sorted(set(raw) - {"groups", *LANGUAGES})
    if unknown:
        raise ConsentWordsError(f"{path.name}: unknown table(s) {', '.join(unknown)} "
                                f"(expected [groups] and {', '.join(f'[{lang}]' for lang in LANGUAGES)})")
    lists: dict[str, list] = {name: [] for name in LISTS}
    for language in LANGUAGES:
        table = raw.get(language)
        if not isinstance(table, dict):
            raise ConsentWordsError(f"{path.name}: missing table [{language}]")
        extra = sorted(set(table) - set(LISTS))
        if extra:
            raise ConsentWordsError(f"{path.name}: [{language}] has unknown list(s) {', '.join(extra)}")
        for name in LISTS:
            phrases = table.get(name)
            if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                raise ConsentWordsError(f"{path.name}: [{language}] {name} must be a list of phrases (strings)")
            try:
                lists[name] += compile_phrases(phrases, groups)
            except PhraseError as exc:
                raise ConsentWordsError(f"{path.name}: [{language}] {name}: {exc}") from None
    for name in ("revoke", "back_in"):
        if not lists[name]:
            raise ConsentWordsError(f"{path.name}: no {name} phrases in any language")
    return ConsentPhrases(**{name: tuple(lists[name]) for name in LISTS})


PHRASES = load()


def _clauses(text: str) -> list[str]:
    return [folded for part in _CLAUSES.split(text) if (folded := fold(part))]


def _reads(text) -> str | None:
    return text[:MAX_TEXT] if isinstance(text, str) and text.strip() else None


def revokes_consent(text: str) -> bool:
    """Whether the text asks, in words, to stop the texts ("no more texts please", "bórrenme de
    la lista", "PARA"), and is not about keeping them or about one visit ("please don't stop the
    reminders", "stop the reminder for Friday's visit only"). False for anything that is not text."""
    text = _reads(text)
    if text is None:
        return False
    if not search_any(PHRASES.revoke, fold(text)):
        return False
    return not any(search_any(PHRASES.keep, clause) for clause in _clauses(text))


def wants_back_in(text: str) -> bool:
    """Whether the text, after an opt-out, asks for the texts again ("i didn't mean to stop",
    "quiero seguir recibiendo los mensajes"). A plain "ok" or "thanks" does not."""
    text = _reads(text)
    if text is None:
        return False
    if not search_any(PHRASES.back_in, fold(text)):
        return False
    if any(search_any(PHRASES.back_in_not, clause) for clause in _clauses(text)):
        return False
    return not revokes_consent(text)
