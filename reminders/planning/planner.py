"""The planner: turns appointments whose plan is out of date into outbox rows.

Each row's `dedupe_key` is unique, and rows are inserted with ON CONFLICT DO NOTHING, so two
planners racing on the same appointment still leave one row per appointment, rule and channel.

Visits are planned soonest first, in runs of visits of different patients (PlanningRun): what
planning them reads is read once for the run, and their new rows are written together at its
end, so that a pass after a large import plans thousands of visits a minute. A pass may be given
a time budget (`planning_budget`): it then stops between runs and leaves the rest to the next.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator, Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from reminders.interruptions import is_interruption
from reminders.missed_visits import keep_task_in_line
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.outbox import PENDING_STATUSES, TEXT_CHANNELS, Status
from reminders.outbox import OutboxRow, appointment_key, plan
from reminders.outbox.rows import first_part_key
from reminders.outbox.moves import cancel_pending, reschedule_pending, revive_canceled
from reminders.planning.budget import OVER_BUDGET, VisitText, is_safety, texts_to_keep
from reminders.planning.welcome import plan_welcomes
from reminders.planning.rules import (
    BEFORE_VISIT_KINDS, MIN_NOTICE, MISSED_VISIT, MISSED_VISIT_MARKED_WITHIN, NON_URGENT_KINDS,
    REMINDED_AGAIN_AFTER_MOVE, REMINDER, TOO_LATE, VISIT_MOVED, PlannedMessage, RuleSettings, Visit, default_rules,
    due_time, is_non_urgent, local_day, moved_to_day, plan_visit, spread_day, spread_rank,
)


log = logging.getLogger(__name__)

PLANNING_ERROR_LIMIT = 300  # the width of appointments.planning_error
# Planned more often than this in one pass, a visit waits for the next pass (see plan_pending).
MAX_PLANS_PER_PASS = 10
# A visit with a row due this soon is planned before any other (see _marked).
DUE_SOON = timedelta(minutes=5)


# A reminder that went counts for its slot (24 h, 72 h, 7 d before) whatever the series number
# it went under: a visit renumbered after a no-show (or back) is not reminded twice for a slot.
WENT = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.UNKNOWN)
# Rows that hold a day against another non-urgent text: all but those that will never go.
NOT_GOING = (Status.CANCELED, Status.SKIPPED, Status.FAILED)


def visit_facts(appointment: Appointment, patient: Patient, rs: RuleSettings) -> Visit:
    series = appointment.course.induction_sessions_planned if appointment.course else rs.series_length
    return Visit(appointment.kind, appointment.number_in_course, series, appointment.starts_at, patient.timezone,
                 appointment.status, appointment.duration_minutes, appointment.status_changed_at)


def wanted_messages(appointment: Appointment, patient: Patient, rs: RuleSettings, now: datetime) -> list[PlannedMessage]:
    if appointment.status == "canceled":
        return []
    visit = visit_facts(appointment, patient, rs)
    wanted = []
    for message in plan_visit(visit, patient.channels(), default_rules(rs), rs):
        if message.rule.kind == REMINDER:
            if appointment.starts_at <= now or appointment.status not in ("scheduled", "confirmed"):
                continue
        else:
            if message.planned_for < now - TOO_LATE:  # history imported, a visit entered late
                continue
            if message.rule.name == MISSED_VISIT and now > appointment.ends_at + MISSED_VISIT_MARKED_WITHIN:
                continue  # marked too late for "we missed you today": the staff list shows it
        wanted.append(message)
    return wanted


def reminder_slot(rule_name: str) -> str:
    return rule_name.rsplit("_", 1)[-1]


def without_slots_already_sent(own: list[OutboxMessage], wanted: dict[str, PlannedMessage]) -> dict[str, PlannedMessage]:
    slots: dict[tuple[str, str], set[str]] = {}
    for row in own:
        if row.kind == REMINDER and row.status in WENT:
            slots.setdefault((reminder_slot(row.rule), row.channel), set()).add(row.rule)

    def keep(m: PlannedMessage) -> bool:
        sent = slots.get((reminder_slot(m.rule.name), m.channel), set()) - {m.rule.name}
        # Only the first-visit preparation may follow a reminder of the same slot: a patient told
        # "infusion 2 of 6, as before" who missed infusion 1 needs the full instructions.
        return not sent or (carries_first_visit_preparation(m.rule.name)
                            and not any(carries_first_visit_preparation(rule) for rule in sent))

    return {key: m for key, m in wanted.items() if m.rule.kind != REMINDER or keep(m)}


def carries_first_visit_preparation(rule_name: str) -> bool:
    return rule_name.startswith("first_induction")


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


def plan_appointment(session: Session, appointment: Appointment, rs: RuleSettings, now: datetime) -> int:
    """Bring one appointment's pending outbox rows in line with its current facts.

    Within a run (plan_pending) its new rows are written with the run's, and counted there (0 is
    returned); called on its own, it is a run of one: its facts are read and its rows written now.
    """
    run = session.info.get(RUN_KEY)
    if run is not None and appointment.id in run.ids:
        _plan_into(run, appointment, rs, now)
        return 0
    with PlanningRun(session, [appointment]).open() as run:
        _plan_into(run, appointment, rs, now)
        return run.write(rs, now)


def _plan_into(run: "PlanningRun", appointment: Appointment, rs: RuleSettings, now: datetime) -> None:
    """Work out the visit's plan. Rows that are to go no longer or at another time are changed now;
    the new rows and the visit's own update are left to the run (PlanningRun.write)."""
    session = run.session
    # Every row of this visit, read once: what is pending, what went, what was withdrawn.
    own = run.rows_of(appointment.id)
    wanted = {appointment_key(appointment.id, m.rule.name, m.channel): m
              for m in wanted_messages(appointment, appointment.patient, rs, now)}
    again = reminders_again_after_move(own, appointment, wanted, now)
    wanted = without_slots_already_sent(own, wanted)
    wanted, over_budget = within_text_budget(own, wanted, rs)
    wanted = spread_non_urgent(session, appointment, own, wanted, rs)
    wanted.update(moved_notices(own, appointment, wanted, rs, now))
    wanted.update(again)
    wanted, held = after_missed_visit_outreach(run, appointment, wanted, rs, now)
    pending = [row for row in own if row.status in PENDING_STATUSES]
    revive_withdrawn(session, own, wanted, now)
    for row in pending:
        if first_part_key(row.dedupe_key) != row.dedupe_key:
            _keep_or_cancel_following(session, appointment, row, wanted, rs, now)
            continue
        message = wanted.get(row.dedupe_key)
        if message is None:
            reason = OVER_BUDGET if row.dedupe_key in over_budget else no_longer_wanted_reason(appointment, row, rs)
            cancel_pending(session, now, reason, ids=[row.id])
        elif row.planned_for != message.planned_for and message.rule.name != VISIT_MOVED.name:
            # The visit moved. A queued row goes back to planned: its task, if still in the
            # broker, finds nothing to claim, and the row leaves again at the new time. (When the
            # time is unchanged the row keeps its due time: it may carry a retry backoff.)
            reschedule_pending(session, row.id, message.planned_for, message.due_at, now)
        elif row.dedupe_key in held and row.due_at < message.due_at:
            reschedule_pending(session, row.id, message.planned_for, message.due_at, now)  # after "we missed you"
    follow_the_visits_location(session, appointment, pending)
    stored = {row.dedupe_key for row in own}
    if any(m.rule.name == MISSED_VISIT and key not in stored for key, m in wanted.items()):
        plan_later_visits_again(session, run, appointment)
    keep_task_in_line(session, appointment, visit_facts(appointment, appointment.patient, rs).series_length, now)
    new_rows = [
        OutboxRow(dedupe_key=key, kind=m.rule.kind, rule=m.rule.name, channel=m.channel, planned_for=m.planned_for,
                  due_at=m.due_at, patient_id=appointment.patient_id, appointment_id=appointment.id,
                  location_id=appointment.location_id)
        for key, m in wanted.items() if key not in stored
    ]
    note_duplicate_bookings(session, appointment)
    run.planned(appointment, new_rows)


def follow_the_visits_location(session: Session, appointment: Appointment, pending: list) -> None:
    """The texts still to go of a visit moved to another location go out for the new one."""
    moved = [row.id for row in pending if row.location_id != appointment.location_id]
    if moved:
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(moved))
                        .values(location_id=appointment.location_id).execution_options(synchronize_session=False))


DUPLICATE_BOOKING = "{count} visits of this patient start at the same time (ids {ids}): check for a duplicate booking"
DUPLICATE_IDS_SHOWN = 10


def duplicate_booking_note(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:DUPLICATE_IDS_SHOWN]) + (", …" if len(ids) > DUPLICATE_IDS_SHOWN else "")
    return DUPLICATE_BOOKING.format(count=len(ids), ids=shown)[:PLANNING_ERROR_LIMIT]


def note_duplicate_bookings(session: Session, appointment: Appointment) -> None:
    """Tell staff, in `planning_error`, of a patient's active visits that start at the same instant.

    They are all planned as booked (nothing is refused: either may be the real one); each carries
    the note until it is canceled or moved, or its twin is. On a planned visit (`needs_planning`
    false) `planning_error` is only ever this note: a visit that could not be planned keeps
    `needs_planning` with its reason, and that reason is never overwritten here. Every way of
    marking a visit for planning clears the field, and planning it writes the note again (the
    visit's own note with the run's writes, the other visits' at once).
    """
    run = run_of(session)
    rows = [row for row in run.visits_of(appointment.patient_id) if row.id != appointment.id]
    at_instant: dict[datetime, list[int]] = {}
    for visit_id, starts_at, status in [(appointment.id, appointment.starts_at, appointment.status),
                                        *((row.id, row.starts_at, row.status) for row in rows)]:
        if status in ACTIVE_STATUSES:
            at_instant.setdefault(starts_at, []).append(visit_id)

    def note(visit_id: int, starts_at: datetime, status: str) -> str | None:
        twins = sorted(at_instant.get(starts_at, [])) if status in ACTIVE_STATUSES else []
        return duplicate_booking_note(twins) if len(twins) > 1 else None

    run.notes[appointment.id] = note(appointment.id, appointment.starts_at, appointment.status)
    for row in rows:
        if row.needs_planning:
            continue  # noted when it is planned in its turn; a reason it could not be planned stays
        wanted = note(row.id, row.starts_at, row.status)
        if row.planning_error != wanted:
            session.execute(
                update(Appointment).where(Appointment.id == row.id, Appointment.needs_planning.is_(False))
                .values(planning_error=wanted).execution_options(synchronize_session=False)
            )


# The planner's own reasons for withdrawing a row when a visit's facts changed (a no-show, a
# renumbered series). Facts can change back (a no-show corrected to completed): such a row is
# planned again. A row canceled with its visit, or by anyone else, stays canceled.
WITHDRAWN = ("no longer applies", "visit marked no-show", "visit no longer marked no-show")


def revive_withdrawn(session: Session, own: list[OutboxMessage], wanted: dict[str, PlannedMessage], now: datetime) -> None:
    for row in own:
        if (row.dedupe_key in wanted and row.status == Status.CANCELED
                and row.status_reason and row.status_reason.startswith(WITHDRAWN)):
            message = wanted[row.dedupe_key]
            revive_canceled(session, row.id, message.planned_for, message.due_at, now)


def within_text_budget(own: list[OutboxMessage], wanted: dict[str, PlannedMessage],
                       rs: RuleSettings) -> tuple[dict[str, PlannedMessage], set[str]]:
    """The visit's wanted texts within TEXTS_PER_VISIT (reminders.planning.budget), and the keys of
    those that give way. Its texts that went, and its safety texts the rules do not plan (a "visit
    moved" notice, a text's second part), count against it."""
    if rs.texts_per_visit is None:
        return wanted, set()
    went = {row.dedupe_key for row in own if row.status in WENT}
    texts = [VisitText(key, m.rule.name, m.rule.kind, m.channel, went=key in went) for key, m in wanted.items()]
    texts += [VisitText(row.dedupe_key, row.rule, row.kind, row.channel, went=True) for row in own
              if row.dedupe_key not in wanted and (row.status in WENT or row.status in PENDING_STATUSES and is_safety(
                  VisitText(row.dedupe_key, row.rule, row.kind, row.channel)))]
    keep = texts_to_keep(texts, rs.texts_per_visit) | went
    return {key: m for key, m in wanted.items() if key in keep}, set(wanted) - keep


def _keep_or_cancel_following(session: Session, appointment: Appointment, row: OutboxMessage,
                              wanted: dict[str, PlannedMessage], rs: RuleSettings, now: datetime) -> None:
    """A text that follows another (the rest of a long one, reminders.sending) stays while its
    message is wanted at the same time; it is canceled with a canceled or moved visit (its first
    text, sent again for the new time, brings its own)."""
    message = wanted.get(first_part_key(row.dedupe_key))
    if message is None:
        cancel_pending(session, now, no_longer_wanted_reason(appointment, row, rs), ids=[row.id])
    elif row.planned_for != message.planned_for:
        cancel_pending(session, now, "visit moved", ids=[row.id])


def no_longer_wanted_reason(appointment: Appointment, row: OutboxMessage, rs: RuleSettings) -> str:
    """Why a planned row will not go, in words staff can read on the visit."""
    if appointment.status == "canceled":
        return "visit canceled"
    if appointment.status == "no_show":
        return "visit marked no-show"
    if row.kind == REMINDER and appointment.kind == "induction" and row.rule != VISIT_MOVED.name:
        series = visit_facts(appointment, appointment.patient, rs).series_length
        return f"no longer applies: now infusion {appointment.number_in_course} of {series}"
    if row.rule == MISSED_VISIT:
        return "visit no longer marked no-show"
    return "no longer applies"


def moved_notices(own: list[OutboxMessage], appointment: Appointment, wanted: dict[str, PlannedMessage],
                  rs: RuleSettings, now: datetime) -> dict[str, PlannedMessage]:
    """One "your visit has moved" message per channel when a reminder already went for another time.

    Keyed by the new time, so each move is told once and a second move tells the newest time.
    """
    if appointment.status not in ("scheduled", "confirmed") or appointment.starts_at <= now:
        return {}
    delivered = [row for row in own if row.kind == REMINDER and row.status in (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)]
    channels = {
        row.channel for row in delivered
        if row.dedupe_key in wanted and wanted[row.dedupe_key].planned_for != row.planned_for
    }
    due = rs.quiet.next_allowed(now, appointment.patient.timezone)
    stamp = appointment.starts_at.strftime("%Y%m%dT%H%MZ")
    return {
        f"{appointment_key(appointment.id, VISIT_MOVED.name, channel)}:{stamp}": PlannedMessage(VISIT_MOVED, channel, now, due)
        for channel in channels
    }


def reminders_again_after_move(own: list[OutboxMessage], appointment: Appointment, wanted: dict[str, PlannedMessage],
                               now: datetime) -> dict[str, PlannedMessage]:
    """A 24 h reminder that went for an earlier time of the visit goes again before its new time.

    Only when its new moment is still ahead (the new time is more than 24 h after the notice of
    the move): nearer than that, the notice, which carries the whole preparation, is its reminder.
    Keyed by the new time like the notice, so each time the visit moves to is reminded once.
    """
    if appointment.status not in ("scheduled", "confirmed") or appointment.starts_at <= now:
        return {}
    went = [row for row in own if row.kind == REMINDER and row.status in WENT]
    stamp = appointment.starts_at.strftime("%Y%m%dT%H%MZ")
    again = {}
    for m in wanted.values():
        slot = reminder_slot(m.rule.name)
        if m.rule.kind != REMINDER or slot not in REMINDED_AGAIN_AFTER_MOVE or m.planned_for <= now:
            continue
        same_slot = [row for row in went if reminder_slot(row.rule) == slot and row.channel == m.channel]
        if same_slot and all(row.planned_for != m.planned_for for row in same_slot):
            again[f"{appointment_key(appointment.id, m.rule.name, m.channel)}:{stamp}"] = m
    return again


# "We missed you" goes before the preparation of the patient's next visit: that comes at least
# this long after it (the next pass), so that it never arrives first or alone.
OUTREACH_FIRST = timedelta(minutes=1)


def after_missed_visit_outreach(run: "PlanningRun", appointment: Appointment, wanted: dict[str, PlannedMessage],
                                rs: RuleSettings, now: datetime) -> tuple[dict[str, PlannedMessage], set[str]]:
    """Hold this visit's pre-visit texts until the "we missed you" text of an earlier visit still
    to go has gone. Returns the messages and the keys held. A hold that would leave less than
    MIN_NOTICE before the visit is not made (the preparation matters more than the order)."""
    outreach = [text.due_at for text in run.texts_of(appointment.patient_id)
                if text.rule == MISSED_VISIT and text.status in PENDING_STATUSES and text.starts_at is not None
                and text.starts_at < appointment.starts_at]
    if not outreach:
        return wanted, set()
    # It goes at the next pass, or at the end of the patient's quiet hours.
    hold = rs.quiet.next_allowed(max(max(outreach), now), appointment.patient.timezone) + OUTREACH_FIRST
    if hold > appointment.starts_at - MIN_NOTICE:
        return wanted, set()
    result, held = dict(wanted), set()
    for key, m in wanted.items():
        if m.rule.kind in BEFORE_VISIT_KINDS and m.due_at < hold:
            result[key] = PlannedMessage(m.rule, m.channel, m.planned_for, hold)
            held.add(key)
    return result, held


def plan_later_visits_again(session: Session, run: "PlanningRun", appointment: Appointment) -> None:
    """A new "we missed you" text: the patient's later visits are planned again (in this pass) so
    that their preparation waits for it (after_missed_visit_outreach)."""
    later = [row.id for row in run.visits_of(appointment.patient_id)
             if row.id != appointment.id and row.starts_at > appointment.starts_at and row.status in ACTIVE_STATUSES
             and not row.needs_planning]
    if later:
        mark_for_planning(session, appointment_ids=later)


def plan_pending(session: Session, rs: RuleSettings, now: datetime, batch: int = 500) -> int:
    """Plan every appointment marked as changed, soonest first. Cost follows what changed, not the
    table's size. Returns the outbox rows created.

    Each appointment is planned in a savepoint of its own: one that cannot be planned (a bad
    record, a bug) keeps `needs_planning`, gets the reason in `planning_error` for staff, and is
    left out of later passes until it changes; every other appointment is planned as usual.

    Trouble that is not the record's own is never recorded against it. The database not answering
    in time (statement_timeout, a lock, SQLite busy) leaves the visit marked for the next pass and
    this pass goes on with the others; a lost connection ends the pass. A time limit (Celery's
    SoftTimeLimitExceeded), Ctrl-C or an exit ends the pass at once: the visit in hand is rolled
    back and stays marked, what was planned before it is kept, and the interruption propagates.

    Planning one visit can mark another of the patient's visits again (one text a day), which
    settles within a few rounds. A visit marked again more than MAX_PLANS_PER_PASS times in one
    pass is left marked for the next pass, so that visits marking each other (a bug) cannot keep
    the pass from sending everyone else's messages.

    Within a `planning_budget`, no new run of visits starts once the budget is spent (the first
    always does: every pass moves the plan on); the visits still marked are planned by the next
    passes, soonest first.
    """
    budget = _budget.get()
    created = 0
    plans: Counter[int] = Counter()
    left: set[int] = set()
    later: set[int] = set()  # the database did not answer for them: the next pass tries again
    while True:
        appointments = _marked(session, batch, left | later, now)
        if not appointments:
            _log_unsettled(left)
            return created
        for visits in runs_of_different_patients(appointments):
            to_plan = []
            for appointment in visits:
                plans[appointment.id] += 1
                if plans[appointment.id] > MAX_PLANS_PER_PASS:
                    left.add(appointment.id)
                else:
                    to_plan.append(appointment)
            created += _plan_run(session, to_plan, rs, now, later, budget)
            if budget is not None and budget.spent():
                break  # the rest of the batch stays marked
        session.commit()
        if budget is not None and budget.spent():
            budget.stopped = _still_marked(session, left | later)
            session.commit()
            if budget.stopped:
                log.info("planning stopped after %.0f s (%d visits planned this pass); the next pass plans the rest, "
                         "soonest first", budget.seconds, budget.visits)
            _log_unsettled(left)
            return created


def _log_unsettled(left: set[int]) -> None:
    if left:
        log.error("planning did not settle in one pass: appointments %s, each planned %d times and marked again, "
                  "wait for the next pass", ", ".join(map(str, sorted(left))), MAX_PLANS_PER_PASS)


def _marked(session: Session, batch: int, skipped: set[int], now: datetime) -> list[Appointment]:
    """The next visits to plan. First those with a row due (or nearly): a visit moved away from a
    reminder due now must be planned before the pass hands that reminder out. Then the others,
    soonest first: a visit starting soon has the most to send soon."""
    due_soon = select(OutboxMessage.appointment_id).where(
        OutboxMessage.status.in_(PENDING_STATUSES), OutboxMessage.due_at <= now + DUE_SOON)
    visits = _marked_where(session, batch, skipped, Appointment.id.in_(due_soon))
    if len(visits) < batch:
        visits += _marked_where(session, batch - len(visits), skipped | {visit.id for visit in visits})
    return visits


def _marked_where(session: Session, batch: int, skipped: set[int], *which) -> list[Appointment]:
    query = select(Appointment).where(Appointment.needs_planning, Appointment.planning_error.is_(None), *which)
    if skipped:
        query = query.where(Appointment.id.not_in(sorted(skipped)))
    return list(session.scalars(
        query
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(batch)
        .with_for_update(skip_locked=True, of=Appointment)
        .options(selectinload(Appointment.patient), selectinload(Appointment.course))
        # Planning one visit can mark another for planning with a plain UPDATE (one text a
        # day): reload what the session holds, or a visit marked after it was planned in this
        # pass would look already planned, never be cleared, and be selected forever.
        .execution_options(populate_existing=True)
    ).all())


def _still_marked(session: Session, skipped: set[int]) -> bool:
    query = select(Appointment.id).where(Appointment.needs_planning, Appointment.planning_error.is_(None))
    if skipped:
        query = query.where(Appointment.id.not_in(sorted(skipped)))
    return session.scalar(query.limit(1)) is not None


def runs_of_different_patients(appointments: Sequence[Appointment]) -> Iterator[list[Appointment]]:
    """The visits in their order, cut where a patient comes again: no run holds two visits of one
    patient, since planning one changes what planning the other must read."""
    run: list[Appointment] = []
    patients: set[int] = set()
    for appointment in appointments:
        if appointment.patient_id in patients:
            yield run
            run, patients = [], set()
        run.append(appointment)
        patients.add(appointment.patient_id)
    if run:
        yield run


def _plan_run(session: Session, visits: list[Appointment], rs: RuleSettings, now: datetime, later: set[int],
              budget: "PlanningBudget | None") -> int:
    """Plan a run's visits, each in a savepoint of its own, and write their rows together."""
    if not visits:
        return 0
    run = PlanningRun(session, visits)
    with run.open():
        for appointment in visits:
            try:
                _plan_isolated(session, appointment, rs, now)
            except _NextPass:
                later.add(appointment.id)
            except BaseException as exc:
                if is_interruption(exc):
                    _keep_what_was_planned(session, run, rs, now, appointment.id, exc)
                raise
        created = _write_run(session, run, rs, now, later)
    if budget is not None:
        budget.visits += run.written
    return created


def _write_run(session: Session, run: "PlanningRun", rs: RuleSettings, now: datetime, later: set[int]) -> int:
    """Write the run's rows in one savepoint. Should the database refuse them, each of its visits
    is planned again on its own (so that one visit's bad row costs only that visit)."""
    savepoint = session.begin_nested()
    try:
        created = run.write(rs, now)
        savepoint.commit()
        return created
    except BaseException as exc:  # noqa: BLE001 - one visit must not stop the plan for everyone else
        if is_interruption(exc):
            _stop_here(session, savepoint, run.planned_ids[0] if run.planned_ids else 0, exc)
            raise
        if isinstance(exc, InterfaceError) or getattr(exc, "connection_invalidated", False):
            raise
        savepoint.rollback()
        log.warning("the rows of %d visits could not be written together (%s); each is planned on its own",
                    len(run.planned_ids), type(getattr(exc, "orig", None) or exc).__name__)
    created = 0
    run.written = 0
    with run.closed():
        for appointment in run.planned_appointments:
            try:
                created += _plan_isolated(session, appointment, rs, now)
                run.written += 1
            except _NextPass:
                later.add(appointment.id)
            except BaseException as exc:
                if is_interruption(exc):
                    _keep_what_was_planned(session, None, rs, now, appointment.id, exc)
                raise
    return created


def _keep_what_was_planned(session: Session, run: "PlanningRun | None", rs: RuleSettings, now: datetime,
                           appointment_id: int, interruption: BaseException) -> None:
    """A time limit or a stop while a visit was planned (its own savepoint is rolled back already):
    the visits planned before it (in its run, and in the runs before) are written and kept, so
    that a pass cut short still moves the plan on. Whatever fails here is logged; the interruption
    is what propagates."""
    try:
        if run is not None:
            with session.begin_nested():
                run.write(rs, now)
    except BaseException:  # noqa: BLE001 - the caller re-raises the interruption
        log.warning("planning stopped at appointment %s and could not write the visits planned before it in its "
                    "run; the next pass plans them again", appointment_id)
    try:
        session.commit()
    except BaseException:  # noqa: BLE001 - the caller re-raises the interruption
        log.warning("planning stopped at appointment %s and could not keep the visits planned before it; "
                    "the next pass plans them again", appointment_id)
    log.warning("planning stopped at appointment %s (%s); it stays marked for the next pass",
                appointment_id, type(interruption).__name__)


class _NextPass(Exception):
    """The database did not answer while this visit was planned: it stays marked for the next pass."""


def _plan_isolated(session: Session, appointment: Appointment, rs: RuleSettings, now: datetime) -> int:
    appointment_id = appointment.id
    savepoint = session.begin_nested()
    try:
        created = plan_appointment(session, appointment, rs, now)
        savepoint.commit()
        return created
    except BaseException as exc:  # noqa: BLE001 - one visit must not stop the plan for everyone else
        run = session.info.get(RUN_KEY)
        if run is not None:
            run.forget(appointment)  # what it planned is rolled back: none of it is written
        if is_interruption(exc):
            _roll_back(savepoint)  # the caller keeps what was planned before it
            raise
        if isinstance(exc, InterfaceError) or getattr(exc, "connection_invalidated", False):
            raise  # the connection is gone: the pass ends, the next one starts on a new connection
        savepoint.rollback()
        if isinstance(exc, OperationalError):
            log.warning("appointment %s: the database did not answer while planning (%s); planned at the next pass",
                        appointment_id, type(getattr(exc, "orig", None) or exc).__name__)
            raise _NextPass() from exc
        reason = planning_error_text(exc)
        # Logged once: the appointment is not tried again until it changes (mark_for_planning,
        # an edit through intake), which clears the error.
        log.error("appointment %s: reminders could not be planned (%s); kept for staff and skipped until it changes",
                  appointment_id, type(exc).__name__)
        session.execute(
            update(Appointment).where(Appointment.id == appointment_id)
            .values(planning_error=reason).execution_options(synchronize_session=False)
        )
        return 0


def _roll_back(savepoint) -> None:
    try:
        savepoint.rollback()
    except Exception:  # noqa: BLE001 - the connection may have gone with the interruption
        log.warning("could not roll back the visit in hand; its transaction ends with the pass")


def _stop_here(session: Session, savepoint, appointment_id: int, interruption: BaseException) -> None:
    """A time limit or a stop while a run's rows were written: they are rolled back (its visits
    stay marked, with no `planning_error`), and the runs written before it are kept. Whatever fails
    here (the connection may have gone with the interruption) is logged; the interruption itself is
    what propagates."""
    try:
        savepoint.rollback()
        session.commit()
    except Exception:  # noqa: BLE001 - the caller re-raises the interruption
        log.warning("planning stopped at appointment %s and could not keep the visits planned before it; "
                    "the next pass plans them again", appointment_id)
    log.warning("planning stopped at appointment %s (%s); it stays marked for the next pass",
                appointment_id, type(interruption).__name__)


# -- what planning a run of visits reads and writes ------------------------------------------

RUN_KEY = "reminders.planning.run"  # in Session.info: the run whose visits are being planned
# Outbox rows are written this many to a statement (PostgreSQL takes at most 65,535 parameters
# in one, and a row has 17).
ROWS_PER_INSERT = 500
# A visit's own rows: what the planner reads of each.
OWN_COLUMNS = (OutboxMessage.id, OutboxMessage.appointment_id, OutboxMessage.dedupe_key, OutboxMessage.kind,
               OutboxMessage.rule, OutboxMessage.channel, OutboxMessage.status, OutboxMessage.status_reason,
               OutboxMessage.planned_for, OutboxMessage.due_at, OutboxMessage.sent_at, OutboxMessage.location_id)


class PlanningRun:
    """Visits of different patients planned together (plan_appointment plans each into the run).

    What planning them reads is read here, once for the run: each visit's own rows, its patient's
    non-urgent texts (one text a day) and visits (duplicate bookings). Rows to cancel or move are
    changed as each visit is planned, in its savepoint; the new rows, welcome texts and the visits'
    own updates wait for `write`, which makes a few statements of them for the whole run instead of
    a dozen a visit.
    """

    def __init__(self, session: Session, appointments: Sequence[Appointment]):
        self.session = session
        self.ids = {appointment.id for appointment in appointments}
        patients = sorted({appointment.patient_id for appointment in appointments})
        self.notes: dict[int, str | None] = {}  # note_duplicate_bookings, by visit
        self.planned_appointments: list[Appointment] = []
        self.written = 0
        self._new_rows: dict[int, list[OutboxRow]] = {}
        self._own = _grouped(session.execute(
            select(*OWN_COLUMNS).where(OutboxMessage.appointment_id.in_(sorted(self.ids))).order_by(OutboxMessage.id)
        ), "appointment_id")
        self._visits = _grouped(session.execute(
            select(Appointment.id, Appointment.patient_id, Appointment.starts_at, Appointment.status,
                   Appointment.needs_planning, Appointment.planning_error)
            .where(Appointment.patient_id.in_(patients))
        ), "patient_id")
        starts = {visit.id: visit.starts_at for visits in self._visits.values() for visit in visits}
        self._texts: dict[int, list[HeldText]] = defaultdict(list)
        for row in session.execute(
            select(OutboxMessage.patient_id, OutboxMessage.appointment_id, OutboxMessage.rule, OutboxMessage.status,
                   OutboxMessage.due_at, OutboxMessage.sent_at)
            .where(OutboxMessage.patient_id.in_(patients), OutboxMessage.channel.in_(TEXT_CHANNELS),
                   OutboxMessage.kind.in_(NON_URGENT_KINDS), OutboxMessage.status.not_in(NOT_GOING))
        ):
            self._texts[row.patient_id].append(HeldText(row.appointment_id, row.rule, row.status, row.due_at,
                                                        row.sent_at, starts.get(row.appointment_id)))

    @contextmanager
    def open(self) -> Iterator["PlanningRun"]:
        """plan_appointment plans into this run while it is open."""
        previous = self.session.info.get(RUN_KEY)
        self.session.info[RUN_KEY] = self
        try:
            yield self
        finally:
            self._restore(previous)

    @contextmanager
    def closed(self) -> Iterator[None]:
        previous = self.session.info.pop(RUN_KEY, None)
        try:
            yield
        finally:
            self._restore(previous)

    def _restore(self, previous: "PlanningRun | None") -> None:
        if previous is None:
            self.session.info.pop(RUN_KEY, None)
        else:
            self.session.info[RUN_KEY] = previous

    def rows_of(self, appointment_id: int) -> list:
        return self._own.get(appointment_id, [])

    def texts_of(self, patient_id: int) -> list["HeldText"]:
        """The patient's non-urgent texts that went or will go (one text a day)."""
        return self._texts.get(patient_id, [])

    def visits_of(self, patient_id: int) -> list:
        return self._visits.get(patient_id, [])

    def planned(self, appointment: Appointment, new_rows: list[OutboxRow]) -> None:
        self.planned_appointments.append(appointment)
        self._new_rows[appointment.id] = new_rows

    def forget(self, appointment: Appointment) -> None:
        if self._new_rows.pop(appointment.id, None) is not None:
            self.planned_appointments.remove(appointment)

    @property
    def planned_ids(self) -> list[int]:
        return [appointment.id for appointment in self.planned_appointments]

    def write(self, rs: RuleSettings, now: datetime) -> int:
        """Write what the run's visits planned: the welcome texts first (each is older than the texts
        it introduces), then the new rows, then the visits themselves as planned. The rows created."""
        visits = self.planned_appointments
        if not visits:
            return 0
        welcomes = plan_welcomes(self.session, [(a.patient, self._new_rows[a.id]) for a in visits], rs.quiet, now)
        created = _insert(self.session, welcomes, now)
        created += _insert(self.session, [row for a in visits for row in self._new_rows[a.id]], now)
        table = Appointment.__table__
        self.session.execute(
            update(table).where(table.c.id == bindparam("visit_id"))
            .values(needs_planning=False, planning_error=bindparam("note")),
            [{"visit_id": a.id, "note": self.notes.get(a.id)} for a in visits],
        )
        for appointment in visits:  # what this session holds agrees with what was written
            set_committed_value(appointment, "needs_planning", False)
            set_committed_value(appointment, "planning_error", self.notes.get(appointment.id))
        self.written = len(visits)
        return created


@dataclass(frozen=True)
class HeldText:
    """A non-urgent text of the patient, as spread_non_urgent weighs it against a new one."""

    appointment_id: int | None
    rule: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    starts_at: datetime | None  # of its visit


def _insert(session: Session, rows: list[OutboxRow], now: datetime) -> int:
    return sum(len(plan(session, rows[start:start + ROWS_PER_INSERT], now))
               for start in range(0, len(rows), ROWS_PER_INSERT))


def _grouped(result, key: str) -> dict[int, list]:
    groups: dict[int, list] = defaultdict(list)
    for row in result:
        groups[getattr(row, key)].append(row)
    return groups


def run_of(session: Session) -> PlanningRun:
    """The run the visit in hand is planned into (plan_appointment opens one)."""
    return session.info[RUN_KEY]


# -- a time budget for one pass ---------------------------------------------------------------

@dataclass
class PlanningBudget:
    """How long one pass may plan (None: until nothing is marked); planning stops between runs of
    visits once it is spent. It counts the visits planned under it."""

    seconds: float | None
    clock: Callable[[], float] = time.monotonic
    visits: int = 0
    stopped: bool = False  # it stopped with visits still marked: the next pass goes on

    def __post_init__(self) -> None:
        self.started = self.clock()

    def spent(self) -> bool:
        return self.seconds is not None and self.clock() - self.started >= self.seconds


_budget: ContextVar[PlanningBudget | None] = ContextVar("planning_budget", default=None)


@contextmanager
def planning_budget(seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Iterator[PlanningBudget]:
    """`plan_pending` within this block plans for at most `seconds` (None: until nothing is marked)."""
    budget = PlanningBudget(seconds, clock)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def planning_error_text(exc: Exception) -> str:
    """What staff read on the visit: plain words first, then the error's own name."""
    if isinstance(exc, OverflowError):
        text = "its date is too far from today to plan reminders for; check the year and save the visit again"
    else:
        text = f"the reminders could not be planned ({type(exc).__name__}); the service log has the details"
    return text[:PLANNING_ERROR_LIMIT]


def mark_for_planning(session: Session, *, patient_id: int | None = None, appointment_ids: list[int] | None = None) -> None:
    stmt = update(Appointment).values(needs_planning=True, planning_error=None)
    if patient_id is not None:
        stmt = stmt.where(Appointment.patient_id == patient_id)
    if appointment_ids is not None:
        stmt = stmt.where(Appointment.id.in_(appointment_ids))
    session.execute(stmt.execution_options(synchronize_session=False))

