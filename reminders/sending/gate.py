"""May a claimed row go now? Its channel, the patient's consent, the visit still on, quiet hours, a
crisis, an open question, the visit's text budget, the welcome text first. Each check that stops a
row records why on it (skipped, deferred) and answers with the outcome; None lets it go."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.channels import Channel
from reminders.channel_specs import spec_for
from reminders.channels.kinds import within_free_form_window
from reminders.config import Settings
from reminders.escalations import crisis_open
from reminders.inbound import open_questions
from reminders.models import Appointment, OutboxMessage, Patient
from reminders.models.appointments import AppointmentStatus
from reminders.models.outbox import Kind, ReasonCode, Status
from reminders.models.replies import last_inbound_at
from reminders.outbox import moves
from reminders.outbox.rows import plan_fallback_twin, previous_part_key
from reminders.outbox.visit_texts import gives_way
from reminders.outbox.welcome import (
    WAITING_FOR_WELCOME, reason_not_to_welcome, send_welcome_first, waits_for_welcome, welcome_wait_until,
)
from reminders.sending.outcomes import SendOutcome
from reminders.timing.budget import OVER_BUDGET
from reminders.timing.rules import REMINDER, UNGATED_KINDS, RuleSettings
from reminders.timing.send_checks import SendFacts, reason_not_to_send

# Automated asks wait while a crisis escalation of the patient's is open (checked again this often).
PAUSED_IN_A_CRISIS = (Kind.CHECKIN, Kind.QUESTIONNAIRE, Kind.NUDGE)
CRISIS_PAUSE_RECHECK = timedelta(minutes=30)
# A following text whose text before it has not gone yet looks again this often.
FOLLOWING_RECHECK = timedelta(minutes=1)
# What a text before a following one may end as, for the following one to go: it was handed over.
# (One left `unknown` may not have gone: the text after it waits for no one and is skipped, for
# staff to see with it.)
HANDED_OVER = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
OPTED_OUT = "patient opted out of texts"


def finish_unsent(row: OutboxMessage, reason: str) -> str:
    moves.mark_unsent(row, reason)
    return SendOutcome.SKIPPED


def first_part(session: Session, settings: Settings, channels: dict[str, Channel], row: OutboxMessage,
               patient: Patient | None, appointment: Appointment | None, now: datetime, where: Settings,
               facts: "BatchFacts | None", send: Callable[[int, datetime], str]) -> str | None:
    """Whether a row (not a following text) goes now: None, or the outcome that stopped it."""
    spec = spec_for(row.channel)
    reason = reason_for_another_channel(session, channels, row, spec, patient, now)
    if reason:
        plan_fallback_twin(session, row, patient, now)
        return finish_unsent(row, reason)
    if row.kind == Kind.REPLY and spec.is_text and patient is not None and patient.sms_opted_out:
        # A written answer planned before the patient opted out (held for quiet hours) stays unsent.
        return finish_unsent(row, OPTED_OUT)
    if row.kind in UNGATED_KINDS:
        return None
    return _scheduled(session, settings, row, spec, patient, appointment, now, where, facts, send)


def _scheduled(session: Session, settings: Settings, row: OutboxMessage, spec, patient: Patient | None,
               appointment: Appointment | None, now: datetime, where: Settings, facts: "BatchFacts | None",
               send: Callable[[int, datetime], str]) -> str | None:
    """The checks of a scheduled text (not an alert, not a reply)."""
    rules = RuleSettings.from_settings(settings)
    reason = row_reason_not_to_send(session, row, appointment, now, facts)
    if reason:
        return finish_unsent(row, reason)
    if spec.is_text and patient is not None and patient.sms_opted_out:
        plan_fallback_twin(session, row, patient, now)
        return finish_unsent(row, OPTED_OUT)
    if held_for_quiet_hours(rules, row, patient, now, where):
        return SendOutcome.DEFERRED
    if row.kind in PAUSED_IN_A_CRISIS and patient is not None and crisis_open(session, patient.id):
        # No "how is your mood 0 to 10?" to a patient a nurse is reaching out to now.
        moves.defer(row, now + CRISIS_PAUSE_RECHECK, "paused while a crisis escalation is open")
        return SendOutcome.DEFERRED
    waiting = open_questions.waits_until(session, settings, row, now)  # one number asked at a time
    if waiting is not None:
        moves.defer(row, waiting, open_questions.WAITING)
        return SendOutcome.DEFERRED
    if gives_way(session, row, rules.texts_per_visit):
        return finish_unsent(row, OVER_BUDGET)
    reason = introduce(session, row, patient, now, send)
    if reason == WAITING_FOR_WELCOME:  # held, not tried: its try is not counted
        moves.defer(row, welcome_wait_until(session, patient, now), reason, ReasonCode.WAITING_FOR_WELCOME)
        row.attempts = max(row.attempts - 1, 0)
        return SendOutcome.DEFERRED
    return finish_unsent(row, reason) if reason else None


def following_part(session: Session, settings: Settings, row: OutboxMessage, patient: Patient | None,
                   appointment: Appointment | None, now: datetime, where: Settings) -> str | OutboxMessage:
    """A text that follows another (the rest of a message too long for one): it goes once the one
    before it went, with the words written when that one was rendered; it is canceled or skipped
    with it, and waits while it waits. The outcome that stopped it, else the text before it."""
    before = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == previous_part_key(row)))
    if before is None or before.status in (Status.CANCELED, Status.SKIPPED, Status.FAILED, Status.UNKNOWN):
        moves.mark_unsent_with(row, before)
        return SendOutcome.SKIPPED
    if before.status not in HANDED_OVER:
        moves.defer(row, max(now + FOLLOWING_RECHECK, before.due_at), f"waiting for text {before.id} to go first")
        return SendOutcome.DEFERRED
    if appointment is not None and appointment.status == AppointmentStatus.CANCELED:
        return finish_unsent(row, moves.VISIT_CANCELED)
    if patient is not None and patient.sms_opted_out:
        return finish_unsent(row, OPTED_OUT)
    if held_for_quiet_hours(RuleSettings.from_settings(settings), row, patient, now, where):
        return SendOutcome.DEFERRED
    return before


def held_for_quiet_hours(rules: RuleSettings, row: OutboxMessage, patient: Patient | None, now: datetime,
                         where: Settings) -> bool:
    """Deferred to the end of the patient's quiet hours, in their own zone, when `now` is in them."""
    zone = patient.timezone if patient else where.clinic_timezone
    quiet = rules.quiet
    if not quiet.contains(now, zone):
        return False
    moves.defer(row, quiet.next_allowed(now, zone), "waiting for the end of quiet hours", ReasonCode.QUIET_HOURS)
    return True


def reason_for_another_channel(session: Session, channels: dict[str, Channel], row: OutboxMessage, spec,
                               patient: Patient | None, now: datetime) -> str | None:
    """Why this row goes by its channel's fallback instead: the channel is switched off, or it is
    free-form text outside the channel's window (WhatsApp's 24 hours since the patient wrote)."""
    if patient is None or not spec.fallback:
        return None
    instead = spec_for(spec.fallback).words
    if row.channel not in channels:
        return f"{spec.words}s are switched off: sent as {instead} instead"
    if row.kind == Kind.REPLY and not within_free_form_window(
            spec, last_inbound_at(session, patient.id, row.channel), now):
        hours = spec.free_form_window.total_seconds() / 3600
        return f"more than {hours:.0f} h since the patient last wrote by {spec.words}: sent as {instead} instead"
    return None


def needs_introduction(row: OutboxMessage, patient: Patient | None) -> bool:
    """A text that must wait for the patient's welcome text to go first."""
    return (spec_for(row.channel).is_text and row.kind not in (*UNGATED_KINDS, Kind.WELCOME)
            and patient is not None and patient.welcomed_at is None)


def introduce(session: Session, row: OutboxMessage, patient: Patient | None, now: datetime,
              send: Callable[[int, datetime], str]) -> str | None:
    """The welcome text (its own row, reminders.outbox.welcome): it goes once, and before the
    patient's first other text (`send` sends it, in a session of its own). Returns why a welcome
    row is not sent, or that this text waits for it."""
    if row.kind == Kind.WELCOME:
        return reason_not_to_welcome(patient)
    if needs_introduction(row, patient):
        send_welcome_first(session, patient, now, send)
        if waits_for_welcome(session, patient):  # it could not go (an outage): this text waits, held
            return WAITING_FOR_WELCOME
    return None


def row_reason_not_to_send(session: Session, row: OutboxMessage, appointment: Appointment | None,
                           now: datetime, facts: "BatchFacts | None" = None) -> str | None:
    if appointment is None:
        return None
    facts = facts or BatchFacts.read(session, [row], [appointment], now)  # a batch of one
    facts_now = SendFacts(
        status=appointment.status,
        starts_at=appointment.starts_at,
        next_visit_starts_at=facts.next_visit_start(appointment),
        superseded=facts.superseded(row),
        overdue_by=now - row.planned_for,
    )
    return reason_not_to_send(row.kind, row.rule, facts_now, now)


@dataclass
class BatchFacts:
    """The re-check facts of a batch (or of one row), read in two queries instead of two per row."""

    visits_by_patient: dict[int, list[tuple[datetime, int]]]
    later_reminders: dict[tuple[int, str], list[tuple[datetime, int]]]

    @classmethod
    def read(cls, session: Session, rows, appointments, now: datetime) -> "BatchFacts":
        patient_ids = {a.patient_id for a in appointments}
        visits: dict[int, list[tuple[datetime, int]]] = {}
        if patient_ids:
            for patient_id, starts_at, appointment_id in session.execute(
                    select(Appointment.patient_id, Appointment.starts_at, Appointment.id)
                    .where(Appointment.patient_id.in_(patient_ids), Appointment.status != AppointmentStatus.CANCELED)):
                visits.setdefault(patient_id, []).append((starts_at, appointment_id))
        reminders: dict[tuple[int, str], list[tuple[datetime, int]]] = {}
        appointment_ids = {r.appointment_id for r in rows if r.kind == REMINDER and r.appointment_id is not None}
        if appointment_ids:
            for appointment_id, channel, planned_for, outbox_id in session.execute(
                    select(OutboxMessage.appointment_id, OutboxMessage.channel, OutboxMessage.planned_for, OutboxMessage.id)
                    .where(OutboxMessage.appointment_id.in_(appointment_ids), OutboxMessage.kind == REMINDER,
                           OutboxMessage.planned_for <= now, OutboxMessage.status.not_in((Status.CANCELED, Status.SKIPPED)))):
                reminders.setdefault((appointment_id, channel), []).append((planned_for, outbox_id))
        return cls(visits, reminders)

    def next_visit_start(self, appointment: Appointment) -> datetime | None:
        later = [starts for starts, other in self.visits_by_patient.get(appointment.patient_id, ())
                 if other != appointment.id and starts > appointment.starts_at]
        return min(later, default=None)

    def superseded(self, row: OutboxMessage) -> bool:
        """When several reminders for one visit are overdue at once, only the latest one goes: a
        later reminder of the same visit and channel is due too."""
        if row.kind != REMINDER:
            return False
        return any(other != row.id and planned > row.planned_for
                   for planned, other in self.later_reminders.get((row.appointment_id, row.channel), ()))
