"""Sending one outbox row: re-check, render, send through its channel, record what happened.

The row is claimed with a conditional UPDATE first, so a redelivered task or a second worker
finds nothing to do. The rendered text is written before the provider is called; a worker that
dies after that leaves the row in `sending`, which the sweep turns into `unknown` for staff.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from reminders.calendar import visit_ics
from reminders.channels import Attachment, Channel, DeliveryError, OutgoingMessage, Receipt
from reminders.channels.kinds import spec_for
from reminders.channels.segments import sms_length
from reminders.config import Settings
from reminders.models import Appointment, CheckIn, OutboxMessage, Patient
from reminders.models.replies import checkin_kind
from reminders.models.outbox import (
    CANCELED, FAILED, KIND_ALERT, KIND_CHECKIN, KIND_REPLY, KIND_WELCOME, PLANNED, SENDING, SENT, SKIPPED,
    UNKNOWN,
)
from reminders.planning.welcome import reason_not_to_welcome, send_welcome_first
from reminders.planning.dispatcher import claim_for_sending, claim_many_for_sending
from reminders.planning.planner import appointment_key, insert_ignoring_duplicates
from reminders.logs import patient_values, sensitive
from reminders.planning.rules import (
    REMINDER, Rule, RuleSettings, SendFacts, backoff, delivery_deadline, gave_up_reason, reason_not_to_send,
    retry_delay, retry_time, rules_by_name,
)
from reminders.provider_health import (
    RETRYING, breaker, breakers, gate, hold_reason, record_failure, record_success, release_probe,
)
from reminders.rendering import (
    TemplateStore, flag_failures, message_context, message_templates, render, template_language, text_template,
)

log = logging.getLogger(__name__)

# Staff alerts and direct replies are about a person now: no quiet hours, no visit checks.
UNGATED_KINDS = (KIND_ALERT, KIND_REPLY)
# The longest a batch hands messages over (pacing makes them wait); well inside a task's limit.
BATCH_SECONDS = 60.0


__all__ = ["Sender", "backoff", "fall_back_to_email", "retry_delay"]


@dataclass
class Sender:
    sessions: sessionmaker[Session]
    settings: Settings
    channels: dict[str, Channel]

    @property
    def rule_settings(self) -> RuleSettings:
        return RuleSettings.from_settings(self.settings)

    def send(self, outbox_id: int, now: datetime) -> str:
        """Send one row if it is still wanted. Returns the outcome: sent, deferred, skipped, ..."""
        with self.sessions() as session:
            # While the channel's provider is failing, the row waits untouched (reminders.provider_health).
            passage, healthy = gate(session, outbox_id, now)
            if passage != "go":
                session.commit()
            if passage in ("held", "gave_up"):
                return passage
            if not claim_for_sending(session, outbox_id, now):
                return "not_claimed"
            return self._send_one_claimed(session, outbox_id, now, healthy, probe=passage == "probe")

    def _send_one_claimed(self, session: Session, outbox_id: int, now: datetime, healthy: bool,
                          probe: bool = False, store: TemplateStore | None = None) -> str:
        row = session.get(OutboxMessage, outbox_id)
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        # Whatever fails below, the log shows none of this patient's details or the text.
        with sensitive(*patient_values(patient), row.to_address, row.body):
            try:
                outcome = self._send_claimed(session, row, now, provider_healthy=healthy, store=store)
            except _AfterHandOver as after:
                outcome = self._after_hand_over_failed(session, outbox_id, after, now)
            except Exception as exc:  # noqa: BLE001 - recorded on this row; the pass goes on for the others
                outcome = self._internal_error(session, outbox_id, exc, now)
            if probe:
                release_probe(session, row.channel, outbox_id, now)  # unless the provider answered
            session.commit()
        return outcome

    def _after_hand_over_failed(self, session: Session, outbox_id: int, after: "_AfterHandOver", now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: error after the message was handed to the provider", outbox_id)
        return self._settle_after_hand_over(session, row, after.receipt, now)

    def _internal_error(self, session: Session, outbox_id: int, exc: Exception, now: datetime) -> str:
        session.rollback()
        row = session.get(OutboxMessage, outbox_id)
        with sensitive(row.to_address, row.body, row.subject):
            log.exception("outbox %s: unexpected error while sending", outbox_id)
        return self._retry_or_fail(session, row, now, f"internal error: {type(exc).__name__} (see the service log)",
                                   code="internal")

    # ------------------------------------------------------------------ batches

    def send_batch(self, outbox_ids: list[int], now: datetime) -> list[str]:
        """Send a batch of queued rows; the outcome of each, in the order given.

        One claim for the batch, a few set-based reads, every rendered text written in one
        commit before the first provider call, then one commit per message sent. A row whose
        channel is paused (its provider failing) goes through `send`, one by one, where the
        breaker decides (probe, hold, give up)."""
        if not outbox_ids:
            return []
        outcomes: dict[int, str] = {}
        with self.sessions() as session:
            state = breakers(session)
            kinds = dict(session.execute(select(OutboxMessage.id, OutboxMessage.channel)
                                         .where(OutboxMessage.id.in_(outbox_ids))
                                         .where(OutboxMessage.kind != KIND_ALERT)).all())
            one_by_one = [i for i in outbox_ids if kinds.get(i) in state and state[kinds[i]].is_open]
            together = [i for i in outbox_ids if i not in set(one_by_one)]
            claimed = claim_many_for_sending(session, together, now)
            for outbox_id in together:
                if outbox_id not in claimed:
                    outcomes[outbox_id] = "not_claimed"
            if claimed:
                healthy = {channel: not (b.is_open or b.consecutive_failures) for channel, b in state.items()}
                outcomes.update(self._send_claimed_batch(session, claimed, now, healthy))
        for outbox_id in one_by_one:
            outcomes[outbox_id] = self.send(outbox_id, now)
        return [outcomes.get(outbox_id, "not_claimed") for outbox_id in outbox_ids]

    def _send_claimed_batch(self, session: Session, ids: list[int], now: datetime,
                            healthy: dict[str, bool]) -> dict[int, str]:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)).all()
        order = {outbox_id: n for n, outbox_id in enumerate(ids)}
        # A patient's welcome goes before their other texts of the batch (reminders.planning.welcome).
        rows = sorted(rows, key=lambda r: (r.kind != KIND_WELCOME, order[r.id]))
        patients = _by_id(session, Patient, {r.patient_id for r in rows})
        appointments = _by_id(session, Appointment, {r.appointment_id for r in rows},
                              selectinload(Appointment.course))
        facts = _BatchFacts.read(session, rows, appointments.values(), now)
        store = TemplateStore(self.settings.templates_dir, session)  # the versions checked once for the batch
        outcomes: dict[int, str] = {}
        ready: list[tuple[OutboxMessage, Patient | None, OutgoingMessage]] = []
        welcomed_here = {r.patient_id for r in rows if r.kind == KIND_WELCOME}
        # A text to a patient not yet welcomed whose welcome is not in this batch goes on its own
        # after the batch, where the welcome is sent first (send_welcome_first, in its own session).
        later: list[int] = []
        try:
            for row in rows:
                patient, appointment = patients.get(row.patient_id), appointments.get(row.appointment_id)
                if self._needs_introduction(row, patient) and patient.id not in welcomed_here:
                    later.append(row.id)
                    continue
                with sensitive(*patient_values(patient), row.to_address, row.body):
                    try:
                        prepared = self._prepare(session, store, row, patient, appointment, now, facts)
                    except DeliveryError as error:
                        outcomes[row.id] = self._delivery_failed(session, row, patient, error, now)
                        continue
                    if isinstance(prepared, str):
                        outcomes[row.id] = prepared
                    else:
                        ready.append((row, patient, prepared))
            flag_failures(session, store, now)
            session.commit()  # every row says what is going out before the provider is asked
        except Exception:  # noqa: BLE001 - one row's trouble must not cost the others: one by one
            session.rollback()
            log.exception("a batch of %s row(s) could not be prepared together; sending them one by one", len(rows))
            return {outbox_id: self._send_one_claimed(session, outbox_id, now, False) for outbox_id in ids}

        paused: set[str] = set()
        # Paced at a long code's 1 a second, a batch could outlast its task's time limit: what is
        # left after BATCH_SECONDS goes back, due, to the next round (or the next pass).
        deadline, handed = time.monotonic() + BATCH_SECONDS, 0
        for row, patient, message in ready:
            if row.channel in paused and row.kind != KIND_ALERT:
                outcomes[row.id] = _hold(session, row, now, hold_reason(row.channel))
                continue
            if handed and time.monotonic() > deadline and row.kind != KIND_ALERT:
                outcomes[row.id] = _hold(session, row, now, "waiting for the sending number's pace")
                continue
            with sensitive(*patient_values(patient), message.to, message.body, message.subject):
                try:
                    outcome = self._hand_over(session, row, patient, message, now,
                                              healthy.get(row.channel, False))
                except _AfterHandOver as after:
                    outcome = self._after_hand_over_failed(session, row.id, after, now)
                except Exception as exc:  # noqa: BLE001 - recorded on this row; the batch goes on
                    outcome = self._internal_error(session, row.id, exc, now)
                session.commit()
            outcomes[row.id] = outcome
            handed += 1
            if outcome == "sent":
                healthy[row.channel] = True
            elif outcome == "retrying":
                healthy[row.channel] = False
                state = breaker(session, row.channel)
                if state is not None and state.is_open:
                    paused.add(row.channel)  # the rest of the batch waits with the others
        for outbox_id in later:
            outcomes[outbox_id] = self._send_one_claimed(session, outbox_id, now, False, store=store)
        return outcomes

    def _prepare(self, session: Session, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                 appointment: Appointment | None, now: datetime, facts: "_BatchFacts | None" = None):
        """Decide whether a claimed row still goes, and render it: an outcome (skipped, deferred)
        or the message."""
        if row.kind not in UNGATED_KINDS:
            reason = self._reason_not_to_send(session, row, appointment, now, facts)
            if reason:
                return self._finish_unsent(row, reason, now)
            if spec_for(row.channel).is_text and patient is not None and patient.sms_opted_out:
                fall_back_to_email(session, row, patient, now)
                return self._finish_unsent(row, "patient opted out of texts", now)
            zone = patient.timezone if patient else self.settings.clinic_timezone
            quiet = self.rule_settings.quiet
            if quiet.contains(now, zone):
                row.status, row.due_at = PLANNED, quiet.next_allowed(now, zone)
                row.status_reason = "waiting for the end of quiet hours"
                return "deferred"
            reason = self._introduce(session, row, patient, now)
            if reason:
                return self._finish_unsent(row, reason, now)
        message = self._render_row(store, row, patient, appointment)
        row.to_address, row.subject, row.body = message.to, message.subject, message.body
        if spec_for(row.channel).counts_segments:
            row.segments = sms_length(message.body).segments
        return message

    def _render_row(self, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                    appointment: Appointment | None) -> OutgoingMessage:
        """The message one row sends."""
        rules = rules_by_name(self.rule_settings)
        return self._compose(store, row, patient, appointment, rules.get(row.rule))

    @staticmethod
    def _needs_introduction(row: OutboxMessage, patient: Patient | None) -> bool:
        """A text that must wait for the patient's welcome text to go first."""
        return (spec_for(row.channel).is_text and row.kind not in (*UNGATED_KINDS, KIND_WELCOME)
                and patient is not None and patient.welcomed_at is None)

    def _introduce(self, session: Session, row: OutboxMessage, patient: Patient | None, now: datetime) -> str | None:
        """The welcome text (its own row, reminders.planning.welcome): it goes once, and before the
        patient's first other text. Returns why a welcome row is not sent."""
        if row.kind == KIND_WELCOME:
            return reason_not_to_welcome(patient)
        if self._needs_introduction(row, patient):
            send_welcome_first(session, patient, now, self.send)
        return None

    def _send_claimed(self, session: Session, row: OutboxMessage, now: datetime, *,
                      provider_healthy: bool = False, store: TemplateStore | None = None) -> str:
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        store = store or TemplateStore(self.settings.templates_dir, session)
        message = self._prepare(session, store, row, patient, appointment, now)
        if isinstance(message, str):
            return message
        flag_failures(session, store, now)  # a staff template that failed: the default went, admins see it
        session.commit()  # the row says what is going out before the provider is asked

        with sensitive(message.to, message.body, message.subject):
            return self._hand_over(session, row, patient, message, now, provider_healthy)

    def _hand_over(self, session: Session, row: OutboxMessage, patient: Patient | None, message: OutgoingMessage,
                   now: datetime, provider_healthy: bool) -> str:
        if row.kind in UNGATED_KINDS:
            message = replace(message, urgent=True)  # paced ahead of reminders (reminders.pacing)
        try:
            receipt = self.channels[row.channel].send(message)
        except DeliveryError as error:
            if not error.permanent:  # the provider's trouble, not this message's
                record_failure(session, self.settings, row.channel, now, str(error),
                               _seconds(error.retry_after))
            return self._delivery_failed(session, row, patient, error, now)
        except Exception as exc:  # noqa: BLE001 - not a provider answer: it may or may not have gone
            raise _AfterHandOver(None) from exc
        try:
            if not provider_healthy:  # a failure recorded meanwhile is reset by the next success
                record_success(session, row.channel, now)
            # Plain UPDATEs (no unit of work to flush): this runs once per message sent.
            _record(session, row, OutboxMessage, status=SENT, status_reason=None, sent_at=now,
                    provider_id=receipt.provider_id, provider_status=receipt.status,
                    error_code=None, error_message=None, updated_at=now)
            if row.kind == KIND_WELCOME and patient is not None:
                _record(session, patient, Patient, welcomed_at=now)
            if row.kind == KIND_CHECKIN and patient is not None:
                appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
                session.add(CheckIn(patient_id=patient.id, appointment_id=row.appointment_id,
                                    prompt_outbox_id=row.id, status="awaiting", prompted_at=now,
                                    kind=checkin_kind(appointment)))
                session.flush()
        except Exception as exc:  # noqa: BLE001 - the provider has it: whatever failed here, never send again
            raise _AfterHandOver(receipt) from exc
        log.info("outbox %s: sent %s %s via %s", row.id, row.rule, row.kind, row.channel)
        return "sent"

    def _settle_after_hand_over(self, session: Session, row: OutboxMessage, receipt: Receipt | None,
                                now: datetime) -> str:
        """An error after the provider was called. Accepted: the row is sent (the details that
        failed to record are in the log). Unclear: `unknown` for staff, as when the provider stops
        answering mid-send; a staff crisis alert is tried again (a second alert beats none)."""
        if receipt is not None:
            row.status, row.sent_at, row.provider_id, row.provider_status = SENT, now, receipt.provider_id, receipt.status
            row.status_reason = "sent; recording the details failed (see the service log)"
            return "sent"
        if row.kind == KIND_ALERT:
            return self._retry_or_fail(session, row, now, "unexpected error during the send", code="internal")
        row.status, row.error_code = UNKNOWN, "internal"
        row.status_reason = "an unexpected error during the send; check before resending"
        return "unknown"

    def _reason_not_to_send(self, session: Session, row: OutboxMessage, appointment: Appointment | None,
                            now: datetime, facts: "_BatchFacts | None" = None) -> str | None:
        if appointment is None:
            return None
        facts = facts or _BatchFacts.read(session, [row], [appointment], now)  # a batch of one
        facts_now = SendFacts(
            status=appointment.status,
            starts_at=appointment.starts_at,
            next_visit_starts_at=facts.next_visit_start(appointment),
            superseded=facts.superseded(row),
            overdue_by=now - row.planned_for,
        )
        return reason_not_to_send(row.kind, row.rule, facts_now, now)

    def _compose(self, store: TemplateStore, row: OutboxMessage, patient: Patient | None,
                 appointment: Appointment | None, rule: Rule | None) -> OutgoingMessage:
        spec = spec_for(row.channel)
        callback = None
        if spec.reports_delivery and self.settings.public_base_url:
            callback = f"{self.settings.public_base_url.rstrip('/')}/twilio/status?outbox_id={row.id}"
        to = row.to_address
        if not to and patient is not None:
            to = patient.phone if spec.contact == "phone" else patient.email
        if not to:
            raise DeliveryError(f"no {row.channel} address on file", permanent=True, code="no_address")
        if row.body is not None and rule is None:  # written when planned: staff alerts, replies
            return OutgoingMessage(to=to, body=row.body, subject=row.subject, status_callback=callback, reference=str(row.id))
        if rule is None:
            raise DeliveryError(f"no rule named {row.rule!r}", permanent=True, code="unknown_rule")
        series = appointment.course.induction_sessions_planned if appointment and appointment.course else self.settings.induction_series_length
        language = patient.language if patient else None
        if spec.is_text:
            body = text_template(store, rule.template, spec, language)
            context = message_context(self.settings, patient, appointment, series, template_language(body))
            return OutgoingMessage(to=to, body=render(store, body, context),
                                   status_callback=callback, reference=str(row.id))
        names = message_templates(store, rule.template, language)
        context = message_context(self.settings, patient, appointment, series, template_language(names["text"]))
        attachments = ()
        if appointment is not None and rule.kind == REMINDER:
            attachments = (self._calendar_entry(appointment, patient),)
        return OutgoingMessage(
            to=to,
            subject=render(store, names["subject"], context),
            body=render(store, names["text"], context),
            html=render(store, names["html"], context) if names["html"] else None,
            attachments=attachments,
            reference=str(row.id),
        )

    def _calendar_entry(self, appointment: Appointment, patient: Patient) -> Attachment:
        data = visit_ics(
            uid=f"appointment-{appointment.id}@clinic-reminders",
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            summary=f"Visit at {self.settings.clinic_name}",
            location=appointment.location or self.settings.clinic_address,
            description=f"Questions or changes: {self.settings.clinic_phone}",
        )
        return Attachment("visit.ics", "text/calendar", data)

    def _finish_unsent(self, row: OutboxMessage, reason: str, now: datetime) -> str:
        row.status = CANCELED if reason == "visit canceled" else SKIPPED
        row.status_reason = reason
        log.info("outbox %s: not sent (%s)", row.id, reason)
        return "skipped"

    def _delivery_failed(self, session: Session, row: OutboxMessage, patient: Patient | None,
                         error: DeliveryError, now: datetime) -> str:
        if error.maybe_sent and row.kind != KIND_ALERT:
            # Sending again could text the patient twice; a person decides. (A staff alert is
            # retried: a second alert is better than none.)
            row.status, row.error_code, row.error_message = UNKNOWN, error.code, str(error)[:500]
            row.status_reason = "the provider stopped answering during the send; check before resending"
            log.warning("outbox %s: outcome unknown (code %s)", row.id, error.code)
            return "unknown"
        if not error.permanent:
            return self._retry_or_fail(session, row, now, str(error), code=error.code,
                                       retry_after=_seconds(error.retry_after))
        row.status, row.error_code, row.error_message = FAILED, error.code, str(error)[:500]
        row.status_reason = "the provider refused it for good"
        log.warning("outbox %s: permanent failure (code %s)", row.id, error.code)
        if patient is not None:
            fall_back_to_email(session, row, patient, now)
        return "failed"

    def _retry_or_fail(self, session: Session, row: OutboxMessage, now: datetime, reason: str, code: str | None,
                       retry_after: timedelta | None = None) -> str:
        """Try again later, with backoff and jitter. A provider's trouble (an outage, 429, bad
        credentials) is retried for as long as the message can still do its job; our own
        (an internal error) at most SEND_MAX_ATTEMPTS times."""
        row.error_code, row.error_message = code, reason[:500]
        if code == "internal" and row.attempts >= self.settings.send_max_attempts:
            row.status, row.status_reason = FAILED, f"gave up after {row.attempts} attempts"
            log.warning("outbox %s: failed after %s attempts (code %s)", row.id, row.attempts, code)
            return "failed"
        delay = retry_delay(row.attempts, row.id)
        if retry_after is not None:
            delay = max(delay, retry_after)
        visit = session.get(Appointment, row.appointment_id) if row.appointment_id else None
        deadline = delivery_deadline(row.kind, row.planned_for, visit.starts_at if visit else None)
        again = retry_time(now, delay, deadline)
        if again is None:
            row.status, row.status_reason = FAILED, gave_up_reason(row.kind)
            log.warning("outbox %s: given up after %s attempts, the deadline has come (code %s)", row.id, row.attempts, code)
            return "failed"
        row.status, row.due_at = PLANNED, again
        row.status_reason = f"{RETRYING} (attempt {row.attempts})"
        log.info("outbox %s: temporary failure (code %s), retry at %s", row.id, code, row.due_at.isoformat())
        return "retrying"


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


class _AfterHandOver(Exception):
    """Raised once the provider was called: with its receipt when it accepted the message."""

    def __init__(self, receipt: Receipt | None):
        super().__init__("error after the provider was called")
        self.receipt = receipt


def _record(session: Session, obj, model, **values) -> None:
    """UPDATE one row by id, and let the loaded object show the same values without a reload."""
    session.execute(update(model).where(model.id == obj.id).values(**values)
                    .execution_options(synchronize_session=False))
    for key, value in values.items():
        set_committed_value(obj, key, value)


def _by_id(session: Session, model, ids: set, *options) -> dict:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {obj.id: obj for obj in session.scalars(select(model).where(model.id.in_(ids)).options(*options))}


def _hold(session: Session, row: OutboxMessage, now: datetime, reason: str) -> str:
    """The row goes back, still due, its try not counted: the provider paused mid-batch, or the
    batch ran out of time."""
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id == row.id, OutboxMessage.status == SENDING)
        .values(status=PLANNED, status_reason=reason, attempts=OutboxMessage.attempts - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.expire(row)
    return "held"


@dataclass
class _BatchFacts:
    """The re-check facts of a batch (or of one row), read in two queries instead of two per row."""

    visits_by_patient: dict[int, list[tuple[datetime, int]]]
    later_reminders: dict[tuple[int, str], list[tuple[datetime, int]]]

    @classmethod
    def read(cls, session: Session, rows, appointments, now: datetime) -> "_BatchFacts":
        patient_ids = {a.patient_id for a in appointments}
        visits: dict[int, list[tuple[datetime, int]]] = {}
        if patient_ids:
            for patient_id, starts_at, appointment_id in session.execute(
                    select(Appointment.patient_id, Appointment.starts_at, Appointment.id)
                    .where(Appointment.patient_id.in_(patient_ids), Appointment.status != "canceled")):
                visits.setdefault(patient_id, []).append((starts_at, appointment_id))
        reminders: dict[tuple[int, str], list[tuple[datetime, int]]] = {}
        appointment_ids = {r.appointment_id for r in rows if r.kind == REMINDER and r.appointment_id is not None}
        if appointment_ids:
            for appointment_id, channel, planned_for, outbox_id in session.execute(
                    select(OutboxMessage.appointment_id, OutboxMessage.channel, OutboxMessage.planned_for, OutboxMessage.id)
                    .where(OutboxMessage.appointment_id.in_(appointment_ids), OutboxMessage.kind == REMINDER,
                           OutboxMessage.planned_for <= now, OutboxMessage.status.not_in((CANCELED, SKIPPED)))):
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


def fall_back_to_email(session: Session, row: OutboxMessage, patient: Patient, now: datetime) -> bool:
    """Plan the email twin of an SMS that cannot reach the patient. False when there is none to send.

    The twin uses the same key an emailed version of that rule would have, so a patient who
    already gets the rule by email does not get it twice.
    """
    if row.channel != "sms" or not patient.email or row.kind in (*UNGATED_KINDS, KIND_CHECKIN, KIND_WELCOME):
        return False
    key = appointment_key(row.appointment_id, row.rule, "email") if row.appointment_id else f"{row.dedupe_key}:email"
    inserted = insert_ignoring_duplicates(session, [{
        "dedupe_key": key, "patient_id": patient.id, "appointment_id": row.appointment_id,
        "kind": row.kind, "rule": row.rule, "channel": "email",
        "planned_for": row.planned_for, "due_at": now, "status": PLANNED, "attempts": 0,
        "status_reason": f"email in place of text message {row.id}", "created_at": now, "updated_at": now,
    }])
    return bool(inserted)
