"""One non-urgent text a day per patient: a check-in or nudge moves off a day another one holds."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from reminders.models import Appointment, OutboxMessage
from reminders.models.outbox import PENDING_STATUSES
from reminders.planning.marking import mark_for_planning
from reminders.planning.planning_run import run_of
from reminders.planning.wanted_texts import WENT, visit_facts
from reminders.timing.rules import MISSED_VISIT, PlannedMessage, RuleSettings, due_time
from reminders.timing.spreading import is_non_urgent, local_day, moved_to_day, spread_day, spread_rank


def spread_non_urgent(session: Session, appointment: Appointment, own: list[OutboxMessage],
                      wanted: dict[str, PlannedMessage], rs: RuleSettings) -> dict[str, PlannedMessage]:
    """One non-urgent text a day per patient: a check-in or nudge wanted on a day that already
    holds one moves to the next free day (same clock time, then out of quiet hours).

    A day held by another visit's text of a higher rank stays with it; so does one held by a text
    of the same rank, unless that text belongs to a visit at the same instant later in the series
    (same start, higher id): between such siblings the earlier one keeps the day whichever was
    planned first. A day held by a weaker text not sent yet is taken, and that visit is planned
    again so its text moves; but only when this text is new on that day. When it already held the
    day, the other visit was planned knowing it (its text is there because no day within reach was
    free), and planning it again would only give the same result: siblings that kept marking each
    other for that reason never let the planner finish.
    """
    movable = {key: m for key, m in wanted.items() if is_non_urgent(m.rule.kind, m.channel, m.rule.name)}
    if not movable:
        return wanted
    zone = appointment.patient.timezone
    others = [row for row in run_of(session).texts_of(appointment.patient_id)
              if row.appointment_id != appointment.id and row.rule != MISSED_VISIT]  # it holds no day
    held: dict = {}  # day -> [Holder]
    for row in others:
        pending = row.status in PENDING_STATUSES
        day = local_day(row.due_at if pending or row.sent_at is None else row.sent_at, zone)
        held.setdefault(day, []).append(Holder(
            spread_rank(row.rule) if pending else -1,
            row.appointment_id if pending else None,  # None: it cannot move
            pending and row.appointment_id is not None and row.starts_at == appointment.starts_at
            and row.appointment_id > appointment.id,
        ))
    # The days this visit's pending texts hold now: what the other visits were planned around.
    holding = {row.dedupe_key: local_day(row.due_at, zone) for row in own
               if is_non_urgent(row.kind, row.channel, row.rule) and row.status in PENDING_STATUSES}
    # This visit's own texts that already went hold their day too (a check-in sent, then the
    # visit planned again after it is too late to be wanted).
    went_own = {row.dedupe_key: local_day(row.sent_at or row.due_at, zone) for row in own
                if is_non_urgent(row.kind, row.channel, row.rule) and row.status in WENT}
    to_replan: set[int] = set()
    taken: set = set()
    result = dict(wanted)
    visit = visit_facts(appointment, appointment.patient, rs)
    for key, m in sorted(movable.items(), key=lambda item: (spread_rank(item[1].rule.name), item[1].due_at, item[0])):
        if key in went_own:  # it went: it holds the day it went on
            taken.add(went_own[key])
            continue
        rank = spread_rank(m.rule.name)
        blocked = taken | {day for day, holders in held.items() if any(not h.yields_to(rank) for h in holders)}
        blocked |= {day for other, day in went_own.items() if other != key}
        wanted_day = local_day(m.due_at, zone)
        day = spread_day(wanted_day, blocked)
        if day != wanted_day:
            planned_for = moved_to_day(m.planned_for, day + (local_day(m.planned_for, zone) - wanted_day), zone)
            m = PlannedMessage(m.rule, m.channel, planned_for, due_time(m.rule, planned_for, visit, rs.quiet))
            result[key] = m
        taken.add(day)
        if holding.get(key) != day:
            to_replan |= {h.appointment_id for h in held.get(day, []) if h.yields_to(rank)}
    if to_replan:
        mark_for_planning(session, appointment_ids=sorted(to_replan))
    return result


@dataclass(frozen=True)
class Holder:
    """Another visit's non-urgent text on a day, as seen by the visit being planned."""

    rank: int  # spread_rank; -1 for a text that went (it holds its day whatever comes)
    appointment_id: int | None  # the visit to plan again when it must move; None: it cannot move
    later_sibling: bool  # of a visit at the same instant as this one, later in the series (higher id)

    def yields_to(self, rank: int) -> bool:
        """Whether this text gives its day up to a text of `rank` of the visit being planned."""
        if self.appointment_id is None:
            return False
        return self.rank > rank or (self.rank == rank and self.later_sibling)
