"""Measure the crisis reader on the evaluation set in tests/data/crisis_eval/.

    python scripts/crisis_eval.py            # main set and dev set, misses listed
    python scripts/crisis_eval.py --quiet    # the tables only

Each row of a JSON Lines file there is {"text", "crisis", "category", "language"}.  A crisis
row is caught when `detect_crisis` finds crisis language in it; a "low score" row also counts
as caught when `read_reply(text, expecting_score=True)` reads a score of CRISIS_SCORE_MAX or
less (the caller escalates those).  An ordinary row is a false alarm when `detect_crisis` flags
it.  en.jsonl and es.jsonl are the main set the reader is tuned on; dev.jsonl was written
before tuning and kept aside, so its figures estimate how the reader does on texts it has not
seen.

Exit status 1 when the main set misses a target: recall below RECALL_TARGET in any category
of any language, or false alarms above FALSE_ALARM_TARGET in any language.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # measure the reader of this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

from reminders.inbound.parsing import detect_crisis, read_reply  # noqa: E402

DATA = ROOT / "tests" / "data" / "crisis_eval"
MAIN_FILES = ("en.jsonl", "es.jsonl")
DEV_FILES = ("dev.jsonl",)
CRISIS_SCORE_MAX = 2  # the default crisis_score_max of reminders.config
RECALL_TARGET = 0.99
FALSE_ALARM_TARGET = 0.05
LOW_SCORE = "low score"


@dataclass(frozen=True)
class Row:
    text: str
    crisis: bool
    category: str
    language: str


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


@dataclass
class Result:
    recall: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    false_alarms: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    misses: list[Row] = field(default_factory=list)
    alarms: list[tuple[Row, tuple[str, ...]]] = field(default_factory=list)

    def recall_by_language(self) -> dict[str, Tally]:
        out: dict[str, Tally] = defaultdict(Tally)
        for (language, _), tally in self.recall.items():
            out[language].hits += tally.hits
            out[language].total += tally.total
        return out

    def failures(self) -> list[str]:
        """The targets this result misses, in words (empty when all are met)."""
        failed = [f"recall {t.rate:.1%} < {RECALL_TARGET:.0%} for {cat!r} ({lang})"
                  for (lang, cat), t in sorted(self.recall.items()) if t.rate < RECALL_TARGET]
        failed += [f"false alarms {t.rate:.1%} > {FALSE_ALARM_TARGET:.0%} ({lang})"
                   for lang, t in sorted(self.false_alarms.items()) if t.rate > FALSE_ALARM_TARGET]
        return failed


def load(names: tuple[str, ...] = MAIN_FILES, folder: Path = DATA) -> list[Row]:
    rows = []
    for name in names:
        with open(folder / name, encoding="utf-8") as f:
            rows += [Row(**json.loads(line)) for line in f if line.strip()]
    return rows


def caught(row: Row) -> tuple[str, ...] | bool:
    """The crisis terms found in the row, or for a low score True when the score path
    escalates it; () or False when the reader lets it pass."""
    terms = detect_crisis(row.text)
    if terms or row.category != LOW_SCORE:
        return terms
    reading = read_reply(row.text, expecting_score=True)
    return reading.kind == "score" and reading.score is not None and reading.score <= CRISIS_SCORE_MAX


def evaluate(rows: list[Row]) -> Result:
    result = Result()
    for row in rows:
        found = caught(row)
        if row.crisis:
            tally = result.recall[(row.language, row.category)]
            tally.total += 1
            tally.hits += bool(found)
            if not found:
                result.misses.append(row)
        else:
            tally = result.false_alarms[row.language]
            tally.total += 1
            tally.hits += bool(found)
            if found:
                result.alarms.append((row, found if isinstance(found, tuple) else ()))
    return result


def report(title: str, result: Result, show_texts: bool = True) -> str:
    lines = [title, "=" * len(title), f"{'language':8}  {'category':22}  {'caught':>9}  recall"]
    for (language, category), t in sorted(result.recall.items()):
        lines.append(f"{language:8}  {category:22}  {t.hits:>4}/{t.total:<4}  {t.rate:6.1%}")
    for language, t in sorted(result.recall_by_language().items()):
        lines.append(f"{language:8}  {'ALL CRISIS':22}  {t.hits:>4}/{t.total:<4}  {t.rate:6.1%}")
    lines.append("")
    lines.append(f"{'language':8}  {'ordinary texts flagged':22}  {'':>9}  false alarms")
    for language, t in sorted(result.false_alarms.items()):
        lines.append(f"{language:8}  {'':22}  {t.hits:>4}/{t.total:<4}  {t.rate:6.1%}")
    if show_texts:
        lines.append("")
        lines.append(f"Missed crisis texts ({len(result.misses)}):")
        lines += [f"  [{r.language} / {r.category}] {r.text!r}" for r in result.misses]
        lines.append(f"False alarms ({len(result.alarms)}):")
        lines += [f"  [{r.language} / {r.category}] {r.text!r} -> {', '.join(terms)}"
                  for r, terms in result.alarms]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    show = "--quiet" not in argv
    main_result = evaluate(load(MAIN_FILES))
    dev_result = evaluate(load(DEV_FILES))
    print(report("Main set (tuned on)", main_result, show))
    print()
    print(report("Dev set (kept aside: an estimate for unseen texts)", dev_result, show))
    failed = main_result.failures()
    print()
    if failed:
        print("TARGETS MISSED on the main set:")
        print("\n".join(f"  {f}" for f in failed))
        return 1
    print(f"Targets met on the main set: recall >= {RECALL_TARGET:.0%} in every category and "
          f"language, false alarms <= {FALSE_ALARM_TARGET:.0%}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
