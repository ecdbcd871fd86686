"""The planner: turns appointments whose plan is out of date into outbox rows.

Each row's `dedupe_key` is unique, and rows are inserted with ON CONFLICT DO NOTHING, so two
planners racing on the same appointment still leave one row per appointment, rule and channel.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.outbox import CANCELED, PENDING_STATUSES, PLANNED
from reminders.models.outbox import DELIVERED, SENT, UNDELIVERED
from reminders.planning.welcome import plan_welcome
from reminders.planning.rules import (
    REMINDER, TOO_LATE, VISIT_MOVED, PlannedMessage, RuleSettings, Visit, default_rules, plan_visit,
)


log = logging.getLogger(__name__)

PLANNING_ERROR_LIMIT = 300  # the width of appointments.planning_error


def appointment_key(appointment_id: int, rule: str, channel: str) -> str:
    return f"appt:{appointment_id}:{rule}:{channel}"


def insert_ignoring_duplicates(session: Session, rows: list[dict]) -> int:
    """Insert outbox rows; a row whose dedupe_key exists already is left alone. Returns inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxMessage).values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return len(session.execute(stmt).all())


def visit_facts(appointment: Appointment, patient: Patient, rs: RuleSettings) -> Visit:
    series = appointment.course.induction_sessions_planned if appointment.course else rs.series_length
    return Visit(appointment.kind, appointment.number_in_course, series, appointment.starts_at, patient.timezone)


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
            if appointment.status == "no_show" and message.rule.kind == "checkin":
                continue
        wanted.append(message)
    return wanted


def plan_appointment(session: Session, appointment: Appointment, rs: RuleSettings, now: datetime) -> int:
    """Bring one appointment's pending outbox rows in line with its current facts."""
    patient = appointment.patient
    wanted = {appointment_key(appointment.id, m.rule.name, m.channel): m for m in wanted_messages(appointment, patient, rs, now)}
    wanted.update(moved_notices(session, appointment, wanted, rs, now))
    pending = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.appointment_id == appointment.id, OutboxMessage.status.in_(PENDING_STATUSES)
        )
    ).all()
    for row in pending:
        message = wanted.get(row.dedupe_key)
        if message is None:
            reason = "visit canceled" if appointment.status == "canceled" else "no longer applies"
            _update_if_pending(session, row.id, status=CANCELED, status_reason=reason)
        elif row.planned_for != message.planned_for and message.rule.name != VISIT_MOVED.name:
            # The visit moved. A queued row goes back to planned: its task, if still in the
            # broker, finds nothing to claim, and the row leaves again at the new time. (When the
            # time is unchanged the row keeps its due time: it may carry a retry backoff.)
            _update_if_pending(session, row.id, status=PLANNED, planned_for=message.planned_for, due_at=message.due_at)
    new_rows = [
        {
            "dedupe_key": key, "patient_id": patient.id, "appointment_id": appointment.id,
            "kind": m.rule.kind, "rule": m.rule.name, "channel": m.channel,
            "planned_for": m.planned_for, "due_at": m.due_at, "status": PLANNED, "attempts": 0,
            "created_at": now, "updated_at": now,
        }
        for key, m in wanted.items()
    ]
    appointment.needs_planning = False
    welcome = plan_welcome(session, patient, rs.quiet, now, insert_ignoring_duplicates, new_rows)
    return welcome + insert_ignoring_duplicates(session, new_rows)


def moved_notices(session: Session, appointment: Appointment, wanted: dict[str, PlannedMessage],
                  rs: RuleSettings, now: datetime) -> dict[str, PlannedMessage]:
    """One "your visit has moved" message per channel when a reminder already went for another time.

    Keyed by the new time, so each move is told once and a second move tells the newest time.
    """
    if appointment.status not in ("scheduled", "confirmed") or appointment.starts_at <= now:
        return {}
    delivered = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.appointment_id == appointment.id, OutboxMessage.kind == REMINDER,
            OutboxMessage.status.in_((SENT, DELIVERED, UNDELIVERED)),
        )
    ).all()
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


def _update_if_pending(session: Session, outbox_id: int, **values) -> None:
    """Change a row only while no sender has claimed it."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.status.in_(PENDING_STATUSES))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def plan_pending(session: Session, rs: RuleSettings, now: datetime, batch: int = 500) -> int:
    """Plan every appointment marked as changed. Cost follows what changed, not the table's size.

    Each appointment is planned in a savepoint of its own: one that cannot be planned (a bad
    record, a bug) keeps `needs_planning`, gets the reason in `planning_error` for staff, and is
    left out of later passes until it changes; every other appointment is planned as usual.
    """
    created = 0
    while True:
        appointments = session.scalars(
            select(Appointment)
            .where(Appointment.needs_planning, Appointment.planning_error.is_(None))
            .order_by(Appointment.id)
            .limit(batch)
            .with_for_update(skip_locked=True, of=Appointment)
        ).all()
        if not appointments:
            return created
        for appointment in appointments:
            created += _plan_isolated(session, appointment, rs, now)
        session.commit()


def _plan_isolated(session: Session, appointment: Appointment, rs: RuleSettings, now: datetime) -> int:
    appointment_id = appointment.id
    savepoint = session.begin_nested()
    try:
        created = plan_appointment(session, appointment, rs, now)
        savepoint.commit()
        return created
    except Exception as exc:  # noqa: BLE001 - one visit must not stop the plan for everyone else
        savepoint.rollback()
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

