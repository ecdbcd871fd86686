"""Planning one visit into its run: its pending rows brought in line with its current facts."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from reminders.missed_visits import keep_task_in_line
from reminders.models import Appointment, OutboxMessage
from reminders.models.appointments import ACTIVE_STATUSES
from reminders.models.outbox import PENDING_STATUSES
from reminders.outbox import OutboxRow, appointment_key
from reminders.outbox.moves import cancel_pending, reschedule_pending
from reminders.outbox.rows import first_part_key
from reminders.planning.duplicate_bookings import note_duplicate_bookings
from reminders.planning.marking import mark_for_planning
from reminders.planning.one_text_a_day import spread_non_urgent
from reminders.planning.planning_run import PlanningRun
from reminders.planning.wanted_texts import (
    after_missed_visit_outreach, moved_notices, reminders_again_after_move, visit_facts, wanted_messages,
    within_text_budget, without_slots_already_sent,
)
from reminders.planning.withdrawals import (
    keep_or_cancel_following, no_longer_wanted_code, no_longer_wanted_reason, revive_withdrawn,
)
from reminders.timing.budget import OVER_BUDGET
from reminders.timing.rules import MISSED_VISIT, VISIT_MOVED, RuleSettings


def plan_into(run: PlanningRun, appointment: Appointment, rs: RuleSettings, now: datetime) -> None:
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
            keep_or_cancel_following(session, appointment, row, wanted, rs, now)
            continue
        message = wanted.get(row.dedupe_key)
        if message is None:
            if row.dedupe_key in over_budget:
                cancel_pending(session, now, OVER_BUDGET, ids=[row.id])
            else:
                cancel_pending(session, now, no_longer_wanted_reason(appointment, row, rs), ids=[row.id],
                               code=no_longer_wanted_code(appointment))
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


def plan_later_visits_again(session: Session, run: PlanningRun, appointment: Appointment) -> None:
    """A new "we missed you" text: the patient's later visits are planned again (in this pass) so
    that their preparation waits for it (after_missed_visit_outreach)."""
    later = [row.id for row in run.visits_of(appointment.patient_id)
             if row.id != appointment.id and row.starts_at > appointment.starts_at and row.status in ACTIVE_STATUSES
             and not row.needs_planning]
    if later:
        mark_for_planning(session, appointment_ids=later)
