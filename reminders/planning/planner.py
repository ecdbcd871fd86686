"""The planner: turns appointments whose plan is out of date into outbox rows.

Each row's `dedupe_key` is unique, and rows are inserted with ON CONFLICT DO NOTHING, so two
planners racing on the same appointment still leave one row per appointment, rule and channel.

Visits are planned soonest first, in runs of visits of different patients (PlanningRun): what
planning them reads is read once for the run, and their new rows are written together at its
end, so that a pass after a large import plans thousands of visits a minute. A pass may be given
a time budget (`planning_budget`): it then stops between runs and leaves the rest to the next.

This module is the pass: which visits, in which runs, and what a visit that fails or a pass that
is stopped leaves behind. Planning one visit is reminders.planning.one_visit; the texts it wants,
reminders.planning.wanted_texts.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator, Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, selectinload

from reminders.interruptions import is_interruption
from reminders.models import Appointment, OutboxMessage
from reminders.models.outbox import PENDING_STATUSES
from reminders.planning.marking import mark_for_planning, planning_error_text
from reminders.planning.one_visit import plan_into
from reminders.planning.planning_run import RUN_KEY, PlanningRun
from reminders.planning.wanted_texts import wanted_messages
from reminders.timing.rules import RuleSettings

__all__ = [
    "MAX_PLANS_PER_PASS", "PlanningBudget", "mark_for_planning", "plan_appointment", "plan_pending",
    "planning_budget", "planning_error_text", "wanted_messages",
]

log = logging.getLogger(__name__)


# Planned more often than this in one pass, a visit waits for the next pass (see plan_pending).
MAX_PLANS_PER_PASS = 10
# A visit with a row due this soon is planned before any other (see _marked).
DUE_SOON = timedelta(minutes=5)


def plan_appointment(session: Session, appointment: Appointment, rs: RuleSettings, now: datetime) -> int:
    """Bring one appointment's pending outbox rows in line with its current facts.

    Within a run (plan_pending) its new rows are written with the run's, and counted there (0 is
    returned); called on its own, it is a run of one: its facts are read and its rows written now.
    """
    run = session.info.get(RUN_KEY)
    if run is not None and appointment.id in run.ids:
        plan_into(run, appointment, rs, now)
        return 0
    with PlanningRun(session, [appointment]).open() as run:
        plan_into(run, appointment, rs, now)
        return run.write(rs, now)


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
              budget: PlanningBudget | None) -> int:
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


def _write_run(session: Session, run: PlanningRun, rs: RuleSettings, now: datetime, later: set[int]) -> int:
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


def _keep_what_was_planned(session: Session, run: PlanningRun | None, rs: RuleSettings, now: datetime,
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
