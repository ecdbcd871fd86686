"""Measure the triage reader on the evaluation set in tests/data/triage_eval/.

    python scripts/crisis_eval.py              # main and held-out parts, misses of the main part listed
    python scripts/crisis_eval.py --quiet      # the tables only
    python scripts/crisis_eval.py --no-model   # the rules alone
    python scripts/crisis_eval.py --main-only  # the main part alone (while writing phrases)

Each row is {"text", "tier", "category", "language", "context"?} (see the set's README). A row
is assessed with `reminders.triage.assess` in its context (a mood score read from the text when
a mood score was asked). Recall counts a row as caught when it gets its tier or a graver one
(an emergency answer also gives 988; an urgent page beats none); a routine row is a false alarm
when it is raised to emergency or suicide risk. The held-out part was written before any tuning:
its misses are not listed, so that nobody adds phrases for them.

Exit status 1 when a target is missed: recall below 99 % for emergency or suicide risk in any
category of any language, below 95 % for urgent, or more than 2 % of routine rows raised to
emergency or suicide risk, on the main part or the held-out part.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # measure the reader of this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

from reminders.inbound.parsing import read_reply  # noqa: E402
from reminders.triage import Context, Tier, assess  # noqa: E402

DATA = ROOT / "tests" / "data" / "triage_eval"
TIERS = [Tier.EMERGENCY, Tier.SUICIDE_RISK, Tier.URGENT, Tier.ROUTINE]
TARGETS = {Tier.EMERGENCY: 0.99, Tier.SUICIDE_RISK: 0.99, Tier.URGENT: 0.95}
FALSE_ALARM_TARGET = 0.02


@dataclass(frozen=True)
class Row:
    text: str
    tier: Tier
    category: str
    language: str
    context: tuple = ()
    source: str = ""  # the file it came from

    @property
    def context_dict(self) -> dict:
        return dict(self.context)


def load(part: str) -> list[Row]:
    rows = []
    for path in sorted((DATA / part).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                rows.append(Row(raw["text"], Tier(raw["tier"]), raw["category"], raw["language"],
                                tuple(sorted(raw.get("context", {}).items())), path.stem))
    return rows


def context_of(row: Row, use_model: bool = True) -> Context:
    ctx = row.context_dict
    score = None
    if ctx.get("asked") == "mood":
        reading = read_reply(row.text, expecting_score=True)
        score = reading.score if reading.kind == "score" else None
    return Context(escalation=ctx.get("escalation"), unknown_sender=ctx.get("sender") == "unknown",
                   asked=ctx.get("asked"), score=score, use_model=use_model)


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 1.0


@dataclass
class Result:
    matrix: Counter = field(default_factory=Counter)  # (label tier, assessed tier) -> rows
    paged: dict = field(default_factory=lambda: defaultdict(Tally))  # tier -> someone paged at all
    by_file: dict = field(default_factory=lambda: defaultdict(Tally))  # (file, tier) -> caught
    recall: dict = field(default_factory=lambda: defaultdict(Tally))  # (tier, language, category)
    false_alarms: dict = field(default_factory=lambda: defaultdict(Tally))  # language
    misses: list = field(default_factory=list)
    alarms: list = field(default_factory=list)

    def tier_recall(self, tier: Tier) -> Tally:
        out = Tally()
        for (t, _, _), tally in self.recall.items():
            if t is tier:
                out.hits += tally.hits
                out.total += tally.total
        return out

    def failures(self) -> list[str]:
        failed = [f"recall {t.rate:.1%} < {TARGETS[tier]:.0%}: {tier} / {cat!r} ({lang}, {t.hits}/{t.total})"
                  for (tier, lang, cat), t in sorted(self.recall.items()) if t.rate < TARGETS[tier]]
        failed += [f"routine raised to emergency or suicide risk {t.rate:.1%} > {FALSE_ALARM_TARGET:.0%} ({lang})"
                   for lang, t in sorted(self.false_alarms.items()) if t.rate > FALSE_ALARM_TARGET]
        return failed


def evaluate(rows: list[Row], use_model: bool = True) -> Result:
    result = Result()
    for row in rows:
        got = assess(row.text, context_of(row, use_model)).tier
        result.matrix[(row.tier, got)] += 1
        if row.tier is Tier.ROUTINE:
            tally = result.false_alarms[row.language]
            tally.total += 1
            raised = got in (Tier.EMERGENCY, Tier.SUICIDE_RISK)
            tally.hits += raised
            if raised:
                result.alarms.append((row, got))
            continue
        tally = result.recall[(row.tier, row.language, row.category)]
        tally.total += 1
        caught = got.rank >= row.tier.rank
        result.paged[row.tier].total += 1
        result.paged[row.tier].hits += got.alerts
        result.by_file[(row.source, row.tier)].total += 1
        result.by_file[(row.source, row.tier)].hits += caught
        tally.hits += caught
        if not caught:
            result.misses.append((row, got))
    return result


def report(title: str, result: Result, show_texts: bool) -> str:
    lines = [title, "=" * len(title), "", "Confusion matrix (rows: label, columns: assessed)",
             f"{'':14}" + "".join(f"{t.value:>14}" for t in TIERS)]
    for label in TIERS:
        lines.append(f"{label.value:14}" + "".join(f"{result.matrix[(label, got)]:>14}" for got in TIERS))
    lines += ["", f"{'tier':13} {'language':8} {'category':34} {'caught':>9}  recall"]
    for (tier, lang, cat), t in sorted(result.recall.items(), key=lambda kv: (-kv[0][0].rank, kv[0][1], kv[0][2])):
        lines.append(f"{tier.value:13} {lang:8} {cat:34} {t.hits:>4}/{t.total:<4}  {t.rate:6.1%}")
    lines.append("")
    for tier in TIERS[:3]:
        t, p = result.tier_recall(tier), result.paged[tier]
        lines.append(f"{tier.value:13} all: {t.hits}/{t.total} = {t.rate:.1%}   (someone paged: {p.hits}/{p.total} = "
                     f"{p.rate:.1%})")
    for source in sorted({s for s, _ in result.by_file}):
        cells = [f"{tier.value} {result.by_file[(source, tier)].rate:.1%}" for tier in TIERS[:3]
                 if (source, tier) in result.by_file]
        lines.append(f"  {source}: " + ", ".join(cells))
    for lang, t in sorted(result.false_alarms.items()):
        lines.append(f"routine ({lang}) raised to emergency or suicide risk: {t.hits}/{t.total} = {t.rate:.1%}")
    failures = result.failures()
    lines += ["", "targets met" if not failures else "TARGETS MISSED:\n  " + "\n  ".join(failures)]
    if show_texts:
        lines += ["", "Missed:"] + [f"  [{r.tier}/{r.category}/{r.language}] got {g}: {r.text}" for r, g in result.misses]
        lines += ["", "Raised:"] + [f"  [{r.category}/{r.language}] got {g}: {r.text}" for r, g in result.alarms]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="the tables only")
    parser.add_argument("--no-model", action="store_true", help="the rules alone")
    parser.add_argument("--main-only", action="store_true",
                        help="the main part alone: while phrases are written, the held-out part stays unseen")
    args = parser.parse_args(argv)
    use_model = not args.no_model
    main_result = evaluate(load("main"), use_model)
    print(report("Main part (tuned and trained on)", main_result, not args.quiet))
    if args.main_only:
        return 1 if main_result.failures() else 0
    held_result = evaluate(load("heldout"), use_model)
    print()
    print(report("Held-out part (written first, never tuned on)", held_result, False))
    return 1 if main_result.failures() or held_result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
