"""Delivery reports: move an outbox row along, keep the error code, fall back to email.

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
  same dedupe key as that rule's own email, so nobody gets it twice. (sending.fall_back_to_email
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

from reminders.channels.base import DELIVERED_STATE, FAILED_STATE, READ_STATE, UNDELIVERED_STATE, DeliveryReport
from reminders.models import OutboxMessage, Patient
from reminders.models.outbox import (
    DELIVERED, FAILED, KIND_ALERT, PLANNED, QUEUED, SENDING, SENT, UNDELIVERED, UNKNOWN,
)
from reminders.sending import fall_back_to_email

log = logging.getLogger(__name__)

# Our statuses a report may move on from (a row whose send we could not confirm included).
BEFORE_SENT = (PLANNED, QUEUED, SENDING, UNKNOWN)
NOT_DELIVERED = (UNDELIVERED_STATE, FAILED_STATE)
PROVIDER_STATUS_WIDTH = 30  # OutboxMessage.provider_status


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
    if row.provider_id and report.provider_id and row.provider_id != report.provider_id:
        # An earlier attempt of the same row that the provider took after all; the row follows its last send.
        log.info("outbox %s: report for another attempt (%s) ignored", row.id, report.provider_status)
        return "other_message"
    outcome = record_report(row, report, now)
    if outcome == "updated" and report.state in NOT_DELIVERED:
        _after_not_delivered(session, row, report, now)
    return outcome


def record_report(row: OutboxMessage, report: DeliveryReport, now: datetime) -> str:
    """The row's own record of a report, never backwards: updated or unchanged."""
    if report.state is None:
        log.info("outbox %s: unrecognised delivery status %r kept as the provider's",
                 row.id, report.provider_status[:PROVIDER_STATUS_WIDTH])
        row.provider_status = report.provider_status[:PROVIDER_STATUS_WIDTH] or row.provider_status
        return "unchanged"
    current = report.rank_of(row.provider_status)
    if report.rank < current or (report.rank == current and report.final):
        return "unchanged"  # late or repeated: never move backwards
    row.provider_status = report.provider_status
    if report.provider_id and not row.provider_id:
        row.provider_id = report.provider_id
    if report.state in (DELIVERED_STATE, READ_STATE):
        row.status, row.delivered_at = DELIVERED, row.delivered_at or now
        row.status_reason = None
    elif report.state in NOT_DELIVERED:
        row.status = FAILED if report.state == FAILED_STATE else UNDELIVERED
        row.error_code = report.error_code or row.error_code
        row.error_message = f"{report.provider_status}: {report.reason or 'no reason given'}"[:500]
        row.status_reason = "the number cannot take texts" if report.permanent else "the text did not arrive"
    elif row.status in BEFORE_SENT:
        # The provider has it, so it went (a retry after a lost answer must not send it twice).
        row.status, row.sent_at = SENT, row.sent_at or now
        row.status_reason = None
    log.info("outbox %s: delivery status %s (code %s)", row.id, report.provider_status, report.error_code or "-")
    return "updated"


def _after_not_delivered(session: Session, row: OutboxMessage, report: DeliveryReport, now: datetime) -> None:
    if row.kind == KIND_ALERT:
        log.error("outbox %s: a staff crisis alert was not delivered (%s, code %s); check STAFF_ALERT_PHONES",
                  row.id, report.provider_status, report.error_code)
        return
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    if patient is None:
        return
    if report.unsubscribed and not patient.sms_opted_out:
        patient.sms_opted_out, patient.opted_out_at = True, now
        patient.opt_out_text = f"(the carrier reported the number unsubscribed, error {report.error_code})"
    if fall_back_to_email(session, row, patient, now):
        log.info("outbox %s: not delivered by text (code %s); email planned instead", row.id, report.error_code)


def delivery_problems(session: Session, limit: int = 200) -> list[OutboxMessage]:
    """Messages that did not arrive, or may not have, newest first: for staff to call or fix a
    number. `unknown` ones stopped mid-send and must be checked before anyone resends them."""
    return list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status.in_((FAILED, UNDELIVERED, UNKNOWN)))
        .order_by(OutboxMessage.updated_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
        .options(selectinload(OutboxMessage.patient))
    ))
