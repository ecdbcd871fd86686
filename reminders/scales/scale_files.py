"""Reading the questionnaire definitions (definitions/*.toml, one file a scale) and checking them:
a file that cannot be used raises DefinitionError naming the file and what is wrong."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from reminders.scales.scale_definitions import (
    Band, DefinitionError, Extra, Item, Option, Scale, Wording,
)

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
LANGUAGES = ("en", "es")
# The scales a clinic knows first, in the order staff see them; any other file follows by name.
FIRST = ("phq9", "gad7", "pcl5", "pain")


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
