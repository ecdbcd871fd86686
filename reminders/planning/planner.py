"""The planner: turns appointments whose plan is out of date into outbox rows.

Each row's `dedupe_key` is unique, and rows are inserted with ON CONFLICT DO NOTHING, so two
planners racing on the same appointment still leave one row per appointment, rule and channel.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from reminders.interruptions import is_interruption
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.outbox import PENDING_STATUSES, TEXT_CHANNELS, Status
from reminders.outbox import OutboxRow, appointment_key, plan
from reminders.outbox.moves import cancel_pending, reschedule_pending, revive_canceled
from reminders.planning.welcome import plan_welcome
from reminders.planning.rules import (
    MISSED_VISIT, MISSED_VISIT_MARKED_WITHIN, NON_URGENT_KINDS, REMINDER, TOO_LATE, VISIT_MOVED, PlannedMessage,
    RuleSettings, Visit, default_rules, due_time, is_non_urgent, local_day, moved_to_day, plan_visit, spread_day,
    spread_rank,
)


log = logging.getLogger(__name__)

PLANNING_ERROR_LIMIT = 300  # the width of appointments.planning_error
# Planned more often than this in one pass, a visit waits for the next pass (see plan_pending).
MAX_PLANS_PER_PASS = 10


# A reminder that went counts for its slot (24 h, 72 h, 7 d before) whatever the series number
# it went under: a visit renumbered after a no-show (or back) is not reminded twice for a slot.
WENT = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.UNKNOWN)
# Rows that hold a day against another non-urgent text: all but those that will never go.
NOT_GOING = (Status.CANCELED, Status.SKIPPED, Status.FAILED)


def visit_facts(appointment: Appointment, patient: Patient, rs: RuleSettings) -> Visit:
    series = appointment.course.induction_sessions_planned if appointment.course else rs.series_length
    return Visit(appointment.kind, appointment.number_in_course, series, appointment.starts_at, patient.timezone,
                 appointment.status, appointment.duration_minutes)


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
    movable = {key: m for key, m in wanted.items() if is_non_urgent(m.rule.kind, m.channel)}
    if not movable:
        return wanted
    zone = appointment.patient.timezone
    others = session.execute(
        select(OutboxMessage.appointment_id, OutboxMessage.rule, OutboxMessage.status, OutboxMessage.due_at,
               OutboxMessage.sent_at, Appointment.starts_at)
        .outerjoin(Appointment, Appointment.id == OutboxMessage.appointment_id)
        .where(
            OutboxMessage.patient_id == appointment.patient_id,
            (OutboxMessage.appointment_id != appointment.id) | OutboxMessage.appointment_id.is_(None),
            OutboxMessage.channel.in_(TEXT_CHANNELS), OutboxMessage.kind.in_(NON_URGENT_KINDS),
            OutboxMessage.status.not_in(NOT_GOING),
        )
    ).all()
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
               if is_non_urgent(row.kind, row.channel) and row.status in PENDING_STATUSES}
    # This visit's own texts that already went hold their day too (a check-in sent, then the
    # visit planned again after it is too late to be wanted).
    went_own = {row.dedupe_key: local_day(row.sent_at or row.due_at, zone) for row in own
                if is_non_urgent(row.kind, row.channel) and row.status in WENT}
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
    """Bring one appointment's pending outbox rows in line with its current facts."""
    patient = appointment.patient
    # Every row of this visit, read once: what is pending, what went, what was withdrawn.
    own = session.scalars(select(OutboxMessage).where(OutboxMessage.appointment_id == appointment.id)).all()
    wanted = {appointment_key(appointment.id, m.rule.name, m.channel): m for m in wanted_messages(appointment, patient, rs, now)}
    wanted = without_slots_already_sent(own, wanted)
    wanted = spread_non_urgent(session, appointment, own, wanted, rs)
    wanted.update(moved_notices(own, appointment, wanted, rs, now))
    pending = [row for row in own if row.status in PENDING_STATUSES]
    revive_withdrawn(session, own, wanted, now)
    for row in pending:
        message = wanted.get(row.dedupe_key)
        if message is None:
            cancel_pending(session, now, no_longer_wanted_reason(appointment, row, rs), ids=[row.id])
        elif row.planned_for != message.planned_for and message.rule.name != VISIT_MOVED.name:
            # The visit moved. A queued row goes back to planned: its task, if still in the
            # broker, finds nothing to claim, and the row leaves again at the new time. (When the
            # time is unchanged the row keeps its due time: it may carry a retry backoff.)
            reschedule_pending(session, row.id, message.planned_for, message.due_at, now)
    new_rows = [
        OutboxRow(dedupe_key=key, kind=m.rule.kind, rule=m.rule.name, channel=m.channel, planned_for=m.planned_for,
                  due_at=m.due_at, patient_id=patient.id, appointment_id=appointment.id)
        for key, m in wanted.items()
    ]
    appointment.needs_planning = False
    note_duplicate_bookings(session, appointment)
    welcome = plan_welcome(session, patient, rs.quiet, now, new_rows)
    return welcome + len(plan(session, new_rows, now))


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
    marking a visit for planning clears the field, and planning it writes the note again.
    """
    rows = session.execute(
        select(Appointment.id, Appointment.starts_at, Appointment.status, Appointment.needs_planning,
               Appointment.planning_error)
        .where(Appointment.patient_id == appointment.patient_id, Appointment.id != appointment.id)
    ).all()
    at_instant: dict[datetime, list[int]] = {}
    for visit_id, starts_at, status in [(appointment.id, appointment.starts_at, appointment.status),
                                        *((row.id, row.starts_at, row.status) for row in rows)]:
        if status in ACTIVE_STATUSES:
            at_instant.setdefault(starts_at, []).append(visit_id)

    def note(visit_id: int, starts_at: datetime, status: str) -> str | None:
        twins = sorted(at_instant.get(starts_at, [])) if status in ACTIVE_STATUSES else []
        return duplicate_booking_note(twins) if len(twins) > 1 else None

    appointment.planning_error = note(appointment.id, appointment.starts_at, appointment.status)
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


def plan_pending(session: Session, rs: RuleSettings, now: datetime, batch: int = 500) -> int:
    """Plan every appointment marked as changed. Cost follows what changed, not the table's size.

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
    """
    created = 0
    plans: Counter[int] = Counter()
    left: set[int] = set()
    later: set[int] = set()  # the database did not answer for them: the next pass tries again
    while True:
        query = select(Appointment).where(Appointment.needs_planning, Appointment.planning_error.is_(None))
        if left or later:
            query = query.where(Appointment.id.not_in(sorted(left | later)))
        appointments = session.scalars(
            query
            .order_by(Appointment.id)
            .limit(batch)
            .with_for_update(skip_locked=True, of=Appointment)
            # Planning one visit can mark another for planning with a plain UPDATE (one text a
            # day): reload what the session holds, or a visit marked after it was planned in this
            # pass would look already planned, never be cleared, and be selected forever.
            .execution_options(populate_existing=True)
        ).all()
        if not appointments:
            if left:
                log.error("planning did not settle in one pass: appointments %s, each planned %d times and marked "
                          "again, wait for the next pass", ", ".join(map(str, sorted(left))), MAX_PLANS_PER_PASS)
            return created
        for appointment in appointments:
            plans[appointment.id] += 1
            if plans[appointment.id] > MAX_PLANS_PER_PASS:
                left.add(appointment.id)
                continue
            try:
                created += _plan_isolated(session, appointment, rs, now)
            except _NextPass:
                later.add(appointment.id)
        session.commit()


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
        if is_interruption(exc):
            _stop_here(session, savepoint, appointment_id, exc)
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


def _stop_here(session: Session, savepoint, appointment_id: int, interruption: BaseException) -> None:
    """A time limit or a stop while a visit was planned: its work is rolled back (it stays marked,
    with no `planning_error`), and the visits planned before it in this batch are kept, so that a
    pass cut short by its time limit still moves the plan on. Whatever fails here (the connection
    may have gone with the interruption) is logged; the interruption itself is what propagates."""
    try:
        savepoint.rollback()
        session.commit()
    except Exception:  # noqa: BLE001 - the caller re-raises the interruption
        log.warning("planning stopped at appointment %s and could not keep the visits planned before it; "
                    "the next pass plans them again", appointment_id)
    log.warning("planning stopped at appointment %s (%s); it stays marked for the next pass",
                appointment_id, type(interruption).__name__)


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

