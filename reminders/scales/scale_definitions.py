"""What a questionnaire is made of, as read from its definition file: its wording in each language,
items, options, severity bands, screener and response rule; and a scored result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class DefinitionError(ValueError):
    """A definition file that cannot be used; the message starts with the file's name."""


class InvalidAnswer(ValueError):
    """An answer to an item the scale does not have, or a value that is not one of its options."""


class IncompleteAnswers(ValueError):
    """A score asked for before every item was answered."""

    def __init__(self, scale: "Scale", missing: Sequence[int]):
        self.missing = list(missing)
        super().__init__(f"{scale.short_name}: no answer yet to item(s) {', '.join(map(str, self.missing))}")


@dataclass(frozen=True)
class Wording:
    en: str
    es: str

    def text(self, lang: str | None = "en") -> str:
        """The wording in `lang`; English for a language the scale is not written in."""
        return self.es if lang and lang.lower().startswith("es") else self.en


@dataclass(frozen=True)
class Option:
    value: int
    wording: Wording

    def text(self, lang: str | None = "en") -> str:
        return self.wording.text(lang)


@dataclass(frozen=True)
class Item:
    number: int
    wording: Wording
    safety: bool = False

    def text(self, lang: str | None = "en") -> str:
        return self.wording.text(lang)


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    key: str
    wording: Wording

    def label(self, lang: str | None = "en") -> str:
        return self.wording.text(lang)

    def __contains__(self, score: int) -> bool:
        return self.low <= score <= self.high


@dataclass(frozen=True)
class Extra:
    """An unscored question asked after the items (the PHQ-9's difficulty question)."""
    key: str
    wording: Wording
    options: tuple[Option, ...]

    def text(self, lang: str | None = "en") -> str:
        return self.wording.text(lang)


@dataclass(frozen=True)
class Scale:
    key: str
    short_name: str
    title: Wording
    instructions: Wording
    recall: Wording
    options: tuple[Option, ...]
    items: tuple[Item, ...]
    bands: tuple[Band, ...]
    max_score: int
    remission_below: int | None
    response_drop: float
    screen_items: tuple[int, ...]
    screen_positive_at: int | None
    conditions: tuple[str, ...]
    source: str
    extra: Extra | None = None
    # Response as a drop of at least this many points (None: a drop of response_drop from baseline).
    response_points: int | None = None
    screen_name: str = ""  # "PHQ-2": what the screener is called when it screens a patient out
    # Said once before the items (the PCL-5's instruction naming the worst event); None: none.
    preamble: Wording | None = None

    def item(self, number: int) -> Item:
        for item in self.items:
            if item.number == number:
                return item
        raise KeyError(f"{self.short_name} has no item {number} (items 1 to {len(self.items)})")

    def options_for(self, item: int | Item) -> tuple[Option, ...]:
        self.item(item.number if isinstance(item, Item) else item)
        return self.options

    def text(self, lang: str | None = "en") -> str:
        """The title and the instructions, as a questionnaire opens."""
        return f"{self.title.text(lang)}\n{self.instructions.text(lang)}"

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(item.number for item in self.items)

    @property
    def safety_items(self) -> tuple[int, ...]:
        return tuple(item.number for item in self.items if item.safety)

    @property
    def has_screener(self) -> bool:
        return bool(self.screen_items)

    @property
    def screener_name(self) -> str:
        return self.screen_name or f"{self.short_name} screener"

    def response_words(self) -> str:
        """"at least 50 % below baseline" or "at least 10 points below baseline"."""
        if self.response_points is not None:
            return f"at least {self.response_points} points below baseline"
        return f"at least {round(self.response_drop * 100)} % below baseline"


@dataclass(frozen=True)
class Result:
    score: int  # the total; for a screened-out result only the answers given, NOT a total of the scale
    band: Band
    screened_out: bool  # stopped by SMS after a negative screener: screen negative, not a total
    screen_score: int | None = None  # the screener's own score (PHQ-2), when there is a screener
