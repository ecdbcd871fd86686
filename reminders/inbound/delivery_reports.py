"""Delivery reports: the row moves along (reminders.outbox.delivery), then what follows for the
patient: an email in place of a text that did not arrive, an opt-out the carrier reported.

A report arrives already translated by its channel (reminders.channels.twilio.webhooks.parse_status)
into a DeliveryReport: its rank, whether it is final, where it leaves the message, and whether
its error means the number cannot take texts. Reports arrive out of order at times (a late "sent"
after "delivered"), so a report never moves a row backwards.

Decisions:
- Our status: delivered (and WhatsApp's read) -> delivered; not delivered -> failed when the
  provider failed it or the number itself cannot take texts (report.permanent), otherwise
  undelivered (a phone off or out of coverage, an unknown error: the number may well work
  tomorrow). Staff find both by status and error_code (`delivery_problems`).
- Every patient message that finally did not arrive falls back to email when the patient has an
  address, whatever the code: the patient did not get this text, and the email twin uses the
  same dedupe key as that rule's own email, so nobody gets it twice. (outbox.plan_fallback_twin
  leaves out check-ins, which are answered by text, and staff alerts.)
- A recipient who unsubscribed at the carrier or provider is also marked opted out, so the next
  messages go by email instead of failing one by one.
- A staff alert that does not arrive is logged as an error; the escalation keeps re-alerting.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.channel_specs import is_text_channel
from reminders import consent
from reminders.channels.base import FAILED_STATE, UNDELIVERED_STATE, DeliveryReport
from reminders.models import OutboxMessage, Patient
from reminders.models.outbox import Kind, Status
from reminders.outbox.delivery import UPDATED, record_delivery
from reminders.outbox.rows import plan_fallback_twin

log = logging.getLogger(__name__)

NOT_DELIVERED = (UNDELIVERED_STATE, FAILED_STATE)


def find_row(session: Session, report: DeliveryReport) -> OutboxMessage | None:
    row = session.get(OutboxMessage, report.outbox_id) if report.outbox_id is not None else None
    if row is None and report.provider_id:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.provider_id == report.provider_id))
    return row


def apply_delivery_report(session: Session, report: DeliveryReport, now: datetime) -> str:
    """Apply one delivery report. Returns what happened: updated, unchanged, not_found, other_message."""
    row = find_row(session, report)
    if row is None:
        log.warning("delivery report for an unknown message (outbox id %s, status %s)",
                    report.outbox_id, report.provider_status)
        return "not_found"
    outcome = record_delivery(row, report, now)
    if outcome == UPDATED and report.state in NOT_DELIVERED:
        _after_not_delivered(session, row, report, now)
    return outcome


def _after_not_delivered(session: Session, row: OutboxMessage, report: DeliveryReport, now: datetime) -> None:
    if row.kind == Kind.ALERT:
        log.error("outbox %s: a staff crisis alert was not delivered (%s, code %s); check STAFF_ALERT_PHONES",
                  row.id, report.provider_status, report.error_code)
        return
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    if patient is None:
        return
    if report.unsubscribed and is_text_channel(row.channel):
        consent.opt_out(patient, row.channel, now,
                        how=f"(the carrier reported the number unsubscribed, error {report.error_code})")
    if plan_fallback_twin(session, row, patient, now):
        log.info("outbox %s: not delivered by text (code %s); email planned instead", row.id, report.error_code)


def delivery_problems(session: Session, limit: int = 200) -> list[OutboxMessage]:
    """Messages that did not arrive, or may not have, newest first: for staff to call or fix a
    number. `unknown` ones stopped mid-send and must be checked before anyone resends them."""
    return list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status.in_((Status.FAILED, Status.UNDELIVERED, Status.UNKNOWN)))
        .order_by(OutboxMessage.updated_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
        .options(selectinload(OutboxMessage.patient))
    ))
