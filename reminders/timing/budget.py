"""A budget of texts per visit (TEXTS_PER_VISIT): which of a visit's texts go, and which give way.

Pure: no database, no clock. The planner (reminders.planning.planner) asks it each time it plans
a visit, with the visit's texts that went and the ones it wants.

A visit's texts are the ones planned for it on a texting channel (SMS, WhatsApp): its reminders
and its questionnaire before it, its check-ins and nudges after it, until the next visit. What is
not the visit's is neither counted nor cut: the welcome (once per patient), replies to the
patient's own texts, crisis answers, staff alerts, emails, and caring contacts (weekly notes after
the series, which a clinic sets by number of weeks).

Clinical texts always go and always count: pre-visit instructions and reminders (with their second
part), missed-visit outreach, the day-after check-in (side effects and mood, while they matter),
and any text of a kind this module does not know. "Your visit has moved" always goes and is not
counted: the welcome promises the budget "unless a visit is moved". The others share what is left,
kept in this order:

1. the booking nudges (retention is the clinic's biggest risk) and the end-of-series prompt;
2. the questionnaire (its link, or its first question by text);
3. the weekly check-ins, spread out: the one farthest from the visit and from the next visit's
   first, then the one farthest from those, and so on (six weeks between visits, one slot: week 3);
4. the questionnaire's reminder.

A text that gives way is not sent (the planner leaves it out, or withdraws it with the reason;
reminders.outbox.visit_texts checks again at send time, when a reminder too long for two
segments has added its second part). The default of 7 is what a maintenance visit needs: its two
reminders (the day-before one in two parts, with the full preparation), the questionnaire, the
day-after check-in, the booking nudge and one weekly check-in half way to the next visit. A first
infusion's reminders carry the full instructions in two parts each: it keeps its check-in, the
nudge and the questionnaire, and its reminder when there is room.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from reminders.channel_specs import is_text_channel
from reminders.models.outbox import Kind

DEFAULT_TEXTS_PER_VISIT = 7  # reminders.config.Settings.texts_per_visit
DAY_AFTER, WEEKLY = "checkin_day_after", "checkin_weekly_"
MEASURES, MEASURES_REMINDER = "measures", "measures_reminder"
NUDGES = ("rebook_nudge", "plan_maintenance")
MISSED_VISIT, VISIT_MOVED = "missed_visit", "visit_moved"
# Not the visit's texts: never counted, never cut.
NOT_THE_VISITS = (Kind.WELCOME, Kind.REPLY, Kind.ALERT)
CARING_CONTACT = "caring_contact"
# The kinds whose texts may give way; any other kind is kept whatever the count.
MAY_GIVE_WAY = (Kind.CHECKIN, Kind.NUDGE, Kind.QUESTIONNAIRE)
OVER_BUDGET = "over the texts-per-visit budget (TEXTS_PER_VISIT)"


@dataclass(frozen=True)
class VisitText:
    """One text of a visit: wanted by the rules, or one that already went."""

    key: str  # the outbox row's dedupe_key
    rule: str
    kind: str
    channel: str
    went: bool = False


def counts(text: VisitText) -> bool:
    """Whether the text is one of the visit's texts (see the module's docstring)."""
    return (is_text_channel(text.channel) and text.kind not in NOT_THE_VISITS
            and not text.rule.startswith(CARING_CONTACT) and text.rule != VISIT_MOVED)


def is_safety(text: VisitText) -> bool:
    """A text that always goes: anything but a check-in, a nudge or a questionnaire, and of
    those the missed-visit outreach and the day-after check-in."""
    return text.kind not in MAY_GIVE_WAY or text.rule in (MISSED_VISIT, VISIT_MOVED, DAY_AFTER)


def texts_to_keep(texts: Iterable[VisitText], budget: int | None) -> set[str]:
    """The keys of the wanted texts that go; the ones left out give way. Texts that went count
    against the budget (they are never taken back); None: no budget, everything goes."""
    texts = list(texts)
    wanted = {t.key for t in texts if not t.went}
    if budget is None:
        return wanted
    counted = [t for t in texts if counts(t)]
    used = sum(1 for t in counted if t.went or is_safety(t))
    candidates = [t for t in counted if not t.went and not is_safety(t)]
    order = keeping_order(candidates, already=[t for t in counted if t.went])
    room = max(budget - used, 0)
    kept = {t.key for t in order[:room]}
    return {key for key in wanted if key in kept or key not in {t.key for t in candidates}}


def keeping_order(candidates: list[VisitText], already: list[VisitText] = ()) -> list[VisitText]:
    """The texts that may give way, the first kept first."""
    weeks = spread_weeks({week_of(t.rule) for t in candidates if t.rule.startswith(WEEKLY)} - {None},
                         {week_of(t.rule) for t in already if t.rule.startswith(WEEKLY)} - {None})

    def rank(text: VisitText) -> tuple:
        rule = text.rule
        if rule == DAY_AFTER:
            return (0, 0)
        if rule in NUDGES:
            return (1, NUDGES.index(rule))
        if rule == MEASURES:
            return (2, 0)
        if rule.startswith(WEEKLY):
            return (3, weeks.index(week_of(rule)) if week_of(rule) in weeks else len(weeks))
        if rule == MEASURES_REMINDER:
            return (4, 0)
        return (3, len(weeks))  # another check-in or nudge: with the weekly check-ins, after them

    return sorted(candidates, key=lambda t: (rank(t), t.rule, t.channel, t.key))


def week_of(rule: str) -> int | None:
    tail = rule[len(WEEKLY):] if rule.startswith(WEEKLY) else ""
    return int(tail) if tail.isdigit() else None


def spread_weeks(weeks: set[int], taken: set[int] = frozenset()) -> list[int]:
    """`weeks` in the order that keeps check-ins farthest apart: each next one is the week farthest
    from the visit (week 0), the next visit (the week after the last) and the weeks already chosen
    (and those in `taken`: their check-ins went); the earlier week on a tie."""
    if not weeks:
        return []
    chosen = {0, max(weeks | set(taken)) + 1, *taken}
    order = []
    left = set(weeks)
    while left:
        best = max(sorted(left), key=lambda w: min(abs(w - c) for c in chosen))
        order.append(best)
        chosen.add(best)
        left.remove(best)
    return order
