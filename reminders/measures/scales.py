"""The validated questionnaires a clinic sends, read from definitions/*.toml, and their scoring.

Each questionnaire is one TOML file; adding a scale is adding a file. Everything here is pure: the
only input/output is reading those files once.

Answers are a mapping of item number (1..n) to the chosen option's value.

Going by SMS, one item at a time, a scale with a screener (PHQ-2 for the PHQ-9, GAD-2 for the
GAD-7) asks its screener items first; when the screener is negative the questionnaire stops there
(after the safety item). Such a result is *screen negative*: it is stored and shown as "PHQ-2
screen negative (score N)", never as a PHQ-9 total, and it never counts toward a baseline, a
response or a remission (CLINICAL.md, "Measures, honestly"). On the web every item is asked.

Response is a drop of at least `response_drop` (a half) from baseline, or, for a scale with
`response_points` (the PCL-5: a change of 10 to 20 points is clinically meaningful, National Center
for PTSD), a drop of at least that many points; the clinic sets the PCL-5's (PCL5_RESPONSE_POINTS).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
LANGUAGES = ("en", "es")
# The scales a clinic knows first, in the order staff see them; any other file follows by name.
FIRST = ("phq9", "gad7", "pcl5", "pain")
# The band key a questionnaire stopped by a negative screener is stored with (its score is None).
SCREEN_NEGATIVE = "screen_negative"

DEFAULT_SCALES_FOR: dict[str, tuple[str, ...]] = {
    "depression": ("phq9", "gad7"),
    "anxiety": ("gad7", "phq9"),
    "ptsd": ("pcl5", "phq9"),
    "pain": ("pain", "phq9"),
    "other": ("phq9",),
}


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


# ---------------------------------------------------------------- loading and checking

def load_scale(path: Path) -> Scale:
    """One definition file, checked; a DefinitionError names the file and what is wrong."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise DefinitionError(f"{path.name}: not valid TOML: {error}") from error
    try:
        scale = _build(raw)
    except (KeyError, TypeError, ValueError) as error:
        raise DefinitionError(f"{path.name}: {_plain(error)}") from error
    _check(scale, path)
    return scale


def load_scales(directory: Path) -> dict[str, Scale]:
    """Every *.toml in `directory`, the clinic's usual four first, then the others by name."""
    files = sorted(Path(directory).glob("*.toml"), key=lambda path: _order(path.stem))
    scales: dict[str, Scale] = {}
    for path in files:
        scale = load_scale(path)
        scales[scale.key] = scale
    return scales


@cache
def _bundled() -> dict[str, Scale]:
    return load_scales(DEFINITIONS)


def all_scales() -> dict[str, Scale]:
    return dict(_bundled())


def get_scale(key: str) -> Scale:
    scales = _bundled()
    if key not in scales:
        raise KeyError(f"no questionnaire {key!r}; known: {', '.join(scales)}")
    return scales[key]


def _order(stem: str) -> tuple[int, str]:
    return (FIRST.index(stem), "") if stem in FIRST else (len(FIRST), stem)


def _plain(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing {error.args[0]!r}"
    return str(error)


def _wording(raw: Mapping[str, Any], what: str) -> Wording:
    missing = [lang for lang in LANGUAGES if not isinstance(raw.get(lang), str) or not raw[lang].strip()]
    if missing:
        raise DefinitionError(f"{what} has no {' or '.join(missing)} text")
    return Wording(en=raw["en"], es=raw["es"])


def _options(raw: Sequence[Mapping[str, Any]], what: str) -> tuple[Option, ...]:
    return tuple(Option(value=_whole(o["value"], f"{what} value"), wording=_wording(o, f"{what} {o['value']}"))
                 for o in raw)


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"{what} must be a whole number, not {value!r}")
    return value


def _build(raw: Mapping[str, Any]) -> Scale:
    extra = raw.get("extra")
    return Scale(
        key=raw["key"],
        short_name=raw["short_name"],
        title=_wording(raw["title"], "title"),
        instructions=_wording(raw["instructions"], "instructions"),
        recall=_wording(raw["recall"], "recall"),
        options=_options(raw["options"], "option"),
        items=tuple(Item(number=_whole(i["number"], "item number"), wording=_wording(i, f"item {i['number']}"),
                         safety=bool(i.get("safety", False))) for i in raw["items"]),
        bands=tuple(Band(low=_whole(b["low"], "band low"), high=_whole(b["high"], "band high"), key=b["key"],
                         wording=_wording(b, f"band {b['key']!r}")) for b in raw["bands"]),
        max_score=_whole(raw["max_score"], "max_score"),
        remission_below=(None if raw.get("remission_below") is None
                         else _whole(raw["remission_below"], "remission_below")),
        response_drop=float(raw["response_drop"]),
        screen_items=tuple(raw.get("screen_items", ())),
        screen_positive_at=raw.get("screen_positive_at"),
        conditions=tuple(raw.get("conditions", ())),
        source=raw["source"],
        extra=None if extra is None else Extra(
            key=extra["key"], wording=_wording(extra, "extra"), options=_options(extra["options"], "extra option")),
        response_points=(None if raw.get("response_points") is None
                         else _whole(raw["response_points"], "response_points")),
        screen_name=str(raw.get("screen_name", "")),
        preamble=None if raw.get("preamble") is None else _wording(raw["preamble"], "preamble"),
    )


def _check(scale: Scale, path: Path) -> None:
    problems = _problems(scale, path.stem)
    if problems:
        raise DefinitionError(f"{path.name}: " + "; ".join(problems))


def _problems(scale: Scale, stem: str) -> list[str]:
    problems = []
    if scale.key != stem:
        problems.append(f"key {scale.key!r} does not match the file name")
    numbers = [item.number for item in scale.items]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"items must be numbered 1 to {len(numbers)} in order, found {numbers}")
    values = [option.value for option in scale.options]
    if not values or values != sorted(set(values)) or values[0] != 0:
        problems.append(f"option values must start at 0 and rise without repeats, found {values}")
    elif values[-1] * len(scale.items) != scale.max_score:
        problems.append(f"max_score {scale.max_score} is not {len(scale.items)} items x top option {values[-1]}")
    problems += _band_problems(scale)
    if scale.remission_below is not None and not 0 < scale.remission_below <= scale.max_score:
        problems.append(f"remission_below {scale.remission_below} is outside 1..{scale.max_score}")
    if not 0 < scale.response_drop < 1:
        problems.append(f"response_drop {scale.response_drop} must be between 0 and 1")
    if scale.response_points is not None and not 0 < scale.response_points <= scale.max_score:
        problems.append(f"response_points {scale.response_points} is outside 1..{scale.max_score}")
    problems += _screener_problems(scale, values)
    return problems


def _band_problems(scale: Scale) -> list[str]:
    expected = 0
    for band in sorted(scale.bands, key=lambda b: b.low):
        if band.low > band.high:
            return [f"band {band.key!r} runs backwards ({band.low}-{band.high})"]
        if band.low > expected:
            return [f"bands leave {expected}-{band.low - 1} uncovered"]
        if band.low < expected:
            return [f"band {band.key!r} ({band.low}-{band.high}) overlaps the band below it"]
        expected = band.high + 1
    if expected != scale.max_score + 1:
        return [f"bands must end at max_score {scale.max_score}, they end at {expected - 1}"]
    keys = [band.key for band in scale.bands]
    if len(keys) != len(set(keys)):
        return [f"band keys repeat: {keys}"]
    return []


def _screener_problems(scale: Scale, values: list[int]) -> list[str]:
    if not scale.screen_items and scale.screen_positive_at is None:
        return []
    if not scale.screen_items or scale.screen_positive_at is None:
        return ["screen_items and screen_positive_at go together"]
    unknown = [n for n in scale.screen_items if n not in scale.numbers]
    if unknown:
        return [f"screen_items name items the scale does not have: {unknown}"]
    top = (values[-1] if values else 0) * len(scale.screen_items)
    if not 0 < scale.screen_positive_at <= top:
        return [f"screen_positive_at {scale.screen_positive_at} is outside 1..{top}"]
    return []


# ---------------------------------------------------------------- answers and scores

def _checked(scale: Scale, answers: Mapping[int, int]) -> dict[int, int]:
    allowed = {option.value for option in scale.options}
    for number, value in answers.items():
        if number not in scale.numbers:
            raise InvalidAnswer(f"{scale.short_name} has no item {number!r} (items 1 to {len(scale.items)})")
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise InvalidAnswer(f"{scale.short_name} item {number}: {value!r} is not one of {sorted(allowed)}")
    return dict(answers)


def screen_positive(scale: Scale, answers: Mapping[int, int]) -> bool | None:
    """Whether the screener calls for the rest; None without a screener or before it is answered."""
    answers = _checked(scale, answers)
    if not scale.has_screener or any(n not in answers for n in scale.screen_items):
        return None
    return sum(answers[n] for n in scale.screen_items) >= scale.screen_positive_at


def _screened_out(scale: Scale, answers: Mapping[int, int], by_sms: bool) -> bool:
    return by_sms and screen_positive(scale, answers) is False


def items_to_ask(scale: Scale, answers: Mapping[int, int], by_sms: bool) -> list[int]:
    """The items still to ask, in order. By SMS the screener's items come first, and a negative
    screener ends the questionnaire, except for its safety items: PHQ-9 item 9 is always asked,
    because any answer above 0 needs a clinician the same day whatever the rest says."""
    answers = _checked(scale, answers)
    if _screened_out(scale, answers, by_sms):
        return [n for n in scale.safety_items if n not in answers]
    remaining = [n for n in scale.numbers if n not in answers]
    if by_sms and scale.has_screener:
        remaining.sort(key=lambda n: n not in scale.screen_items)
    return remaining


def score(scale: Scale, answers: Mapping[int, int], by_sms: bool = False) -> int:
    """The total. Every item must be answered, except by SMS after a negative screener, when the
    items not asked count as 0."""
    answers = _checked(scale, answers)
    if not _screened_out(scale, answers, by_sms):
        missing = [n for n in scale.numbers if n not in answers]
        if missing:
            raise IncompleteAnswers(scale, missing)
    return sum(answers.values())


def screen_score(scale: Scale, answers: Mapping[int, int]) -> int | None:
    """The screener's own score (PHQ-2: items 1 and 2); None without a screener or before it is answered."""
    if not scale.has_screener or any(n not in answers for n in scale.screen_items):
        return None
    return sum(answers[n] for n in scale.screen_items)


def result(scale: Scale, answers: Mapping[int, int], by_sms: bool = False) -> Result:
    total = score(scale, answers, by_sms)
    return Result(score=total, band=band(scale, total), screened_out=_screened_out(scale, answers, by_sms),
                  screen_score=screen_score(scale, _checked(scale, answers)))


def band(scale: Scale, score: int) -> Band:
    for candidate in scale.bands:
        if score in candidate:
            return candidate
    raise ValueError(f"{scale.short_name} scores run 0 to {scale.max_score}, not {score}")


def safety_items_raised(scale: Scale, answers: Mapping[int, int]) -> list[int]:
    """Safety items answered above 0: each needs a clinician the same day."""
    answers = _checked(scale, answers)
    return [n for n in scale.safety_items if answers.get(n, 0) > 0]


def _in_range(scale: Scale, *scores: int) -> None:
    for value in scores:
        if not 0 <= value <= scale.max_score:
            raise ValueError(f"{scale.short_name} scores run 0 to {scale.max_score}, not {value}")


def with_response_points(scale: Scale, points: int | None) -> Scale:
    """The scale with the clinic's response rule (PCL5_RESPONSE_POINTS); unchanged for None."""
    if points is None or points == scale.response_points:
        return scale
    if not 0 < points <= scale.max_score:
        raise ValueError(f"{scale.short_name} response points run 1 to {scale.max_score}, not {points}")
    return replace(scale, response_points=points)


def clinic_scales(response_points: Mapping[str, int] | None = None) -> dict[str, Scale]:
    """Every scale, with the clinic's response rules (scale key -> points) applied."""
    found = all_scales()
    for key, points in (response_points or {}).items():
        if key in found:
            found[key] = with_response_points(found[key], points)
    return found


def response_points_of(settings) -> dict[str, int]:
    """The clinic's response rules from its settings: {"pcl5": PCL5_RESPONSE_POINTS}."""
    points = getattr(settings, "pcl5_response_points", None)
    return {} if points is None else {"pcl5": int(points)}


def response(scale: Scale, baseline: int, score: int) -> bool:
    """A drop of at least response_drop (a half) from a baseline above 0; for a scale with
    response_points, a drop of at least that many points."""
    _in_range(scale, baseline, score)
    if baseline <= 0:
        return False
    if scale.response_points is not None:
        return baseline - score >= scale.response_points
    # Fractions, so that exactly half is a response whatever the float rounding.
    return score <= baseline * (1 - Fraction(str(scale.response_drop)))


def can_remit(scale: Scale, baseline: int) -> bool:
    """Remission can be claimed from this baseline: the scale has a threshold and the baseline was at
    or above it (a patient who started below it did not remit, they were never above it)."""
    return scale.remission_below is not None and baseline >= scale.remission_below


def remission(scale: Scale, score: int) -> bool | None:
    """Below the remission threshold; None for a scale without one."""
    _in_range(scale, score)
    if scale.remission_below is None:
        return None
    return score < scale.remission_below


def change_from_baseline(baseline: int, score: int) -> tuple[int, float | None]:
    """Points and percent of baseline (negative is fewer symptoms); no percent from a baseline of 0."""
    points = score - baseline
    return points, (points * 100 / baseline if baseline else None)


def scale_keys_for(condition: str | None, mapping: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The keys of the questionnaires for a patient's condition, the main one first; "other" for the rest."""
    mapping = DEFAULT_SCALES_FOR if mapping is None else mapping
    name = (condition or "other").strip().lower()
    return list(mapping.get(name) or mapping.get("other") or DEFAULT_SCALES_FOR["other"])
