"""Rows that will not go after all: why staff read they were withdrawn or canceled, and the
withdrawn ones planned again when the visit's facts change back."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reminders.models import Appointment, OutboxMessage
from reminders.models.appointments import AppointmentStatus
from reminders.models.outbox import ReasonCode, Status
from reminders.outbox.moves import cancel_pending, revive_canceled
from reminders.outbox.rows import first_part_key
from reminders.planning.wanted_texts import visit_facts
from reminders.timing.rules import MISSED_VISIT, REMINDER, VISIT_MOVED, PlannedMessage, RuleSettings
from reminders.visits.series import INDUCTION


def revive_withdrawn(session: Session, own: list[OutboxMessage], wanted: dict[str, PlannedMessage], now: datetime) -> None:
    """Rows the planner withdrew when a visit's facts changed (a no-show, a renumbered series) are
    planned again when the facts change back (a no-show corrected to completed). A row canceled
    with its visit, or by anyone else, stays canceled."""
    for row in own:
        if (row.dedupe_key in wanted and row.status == Status.CANCELED
                and row.reason_code == ReasonCode.WITHDRAWN):
            message = wanted[row.dedupe_key]
            revive_canceled(session, row.id, message.planned_for, message.due_at, now)


def keep_or_cancel_following(session: Session, appointment: Appointment, row: OutboxMessage,
                             wanted: dict[str, PlannedMessage], rs: RuleSettings, now: datetime) -> None:
    """A text that follows another (the rest of a long one, reminders.sending) stays while its
    message is wanted at the same time; it is canceled with a canceled or moved visit (its first
    text, sent again for the new time, brings its own)."""
    message = wanted.get(first_part_key(row.dedupe_key))
    if message is None:
        cancel_pending(session, now, no_longer_wanted_reason(appointment, row, rs), ids=[row.id],
                       code=no_longer_wanted_code(appointment))
    elif row.planned_for != message.planned_for:
        cancel_pending(session, now, "visit moved", ids=[row.id])


def no_longer_wanted_code(appointment: Appointment) -> ReasonCode:
    """What code reads of no_longer_wanted_reason: canceled with the visit, else withdrawn by the
    planner (and planned again if the visit's facts change back)."""
    return ReasonCode.VISIT_CANCELED if appointment.status == AppointmentStatus.CANCELED else ReasonCode.WITHDRAWN


def no_longer_wanted_reason(appointment: Appointment, row: OutboxMessage, rs: RuleSettings) -> str:
    """Why a planned row will not go, in words staff can read on the visit."""
    if appointment.status == AppointmentStatus.CANCELED:
        return "visit canceled"
    if appointment.status == AppointmentStatus.NO_SHOW:
        return "visit marked no-show"
    if row.kind == REMINDER and appointment.kind == INDUCTION and row.rule != VISIT_MOVED.name:
        series = visit_facts(appointment, appointment.patient, rs).series_length
        return f"no longer applies: now infusion {appointment.number_in_course} of {series}"
    if row.rule == MISSED_VISIT:
        return "visit no longer marked no-show"
    return "no longer applies"
