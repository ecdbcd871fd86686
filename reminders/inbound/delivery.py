"""Twilio delivery reports: move an outbox row along, keep the error code, fall back to email.

Twilio's statuses arrive out of order at times (a late "sent" after "delivered"), so each has a
rank and a report never moves a row backwards.

Decisions:
- Our status: ``delivered`` (and WhatsApp's ``read``) -> delivered; ``failed`` -> failed;
  ``undelivered`` -> failed when the code says the number itself cannot take texts
  (PERMANENT_FAILURE_CODES), otherwise undelivered (30003 handset off or out of coverage,
  30008 unknown error: the number may well work tomorrow). Staff find both by status and
  error_code (`delivery_problems`).
- Every patient message that finally did not arrive falls back to email when the patient has an
  address, whatever the code: the patient did not get this text, and the email twin uses the
  same dedupe key as that rule's own email, so nobody gets it twice. (sending.fall_back_to_email
  leaves out check-ins, which are answered by text, and staff alerts.)
- 21610 (the recipient unsubscribed at the carrier or Twilio) also marks the patient opted
  out, so the next messages go by email instead of failing one by one.
- A staff alert that does not arrive is logged as an error; the escalation keeps re-alerting.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.models import OutboxMessage, Patient
from reminders.models.outbox import (
    DELIVERED, FAILED, KIND_ALERT, PLANNED, QUEUED, SENDING, SENT, UNDELIVERED, UNKNOWN,
)
from reminders.outbox.rows import plan_fallback_twin as fall_back_to_email

log = logging.getLogger(__name__)

# Undelivered for good: the number is unreachable as a mobile, blocked, unknown, a landline,
# filtered, unsubscribed, invalid or not a mobile number.
PERMANENT_FAILURE_CODES = frozenset({"30004", "30005", "30006", "30007", "21610", "21211", "21612", "21614", "21408"})
UNSUBSCRIBED = "21610"
CODE_REASONS = {
    "30001": "queue overflow at Twilio",
    "30002": "Twilio account suspended",
    "30003": "the phone was unreachable (off or out of coverage)",
    "30004": "the message was blocked by the recipient or carrier",
    "30005": "unknown or inactive number",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown delivery error",
    "21211": "invalid phone number",
    "21408": "texting that region is not enabled",
    "21610": "the recipient unsubscribed (replied STOP)",
    "21612": "the number cannot receive texts from ours",
    "21614": "not a mobile number",
}

# Twilio's statuses in the order they can happen; a report below the row's rank changes nothing.
RANK = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
    "undelivered": 4, "failed": 4, "canceled": 4, "delivered": 4, "read": 5,
}
FINAL = ("delivered", "read", "undelivered", "failed", "canceled")
# Our statuses a report may move on from (a row whose send we could not confirm included).
BEFORE_SENT = (PLANNED, QUEUED, SENDING, UNKNOWN)


@dataclass(frozen=True)
class StatusReport:
    outbox_id: int | None  # from our callback URL's ?outbox_id=
    message_sid: str
    status: str  # Twilio's MessageStatus
    error_code: str | None = None


def find_row(session: Session, report: StatusReport) -> OutboxMessage | None:
    row = session.get(OutboxMessage, report.outbox_id) if report.outbox_id is not None else None
    if row is None and report.message_sid:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.provider_id == report.message_sid))
    return row


def record_status(session: Session, report: StatusReport, now: datetime) -> str:
    """Apply one delivery report. Returns what happened: updated, unchanged, not_found, other_message."""
    row = find_row(session, report)
    status = (report.status or "").strip().lower()
    if row is None:
        log.warning("delivery report for an unknown message (outbox id %s, status %s)", report.outbox_id, status)
        return "not_found"
    if row.provider_id and report.message_sid and row.provider_id != report.message_sid:
        # An earlier attempt of the same row that Twilio took after all; the row follows its last send.
        log.info("outbox %s: report for another attempt (%s) ignored", row.id, status)
        return "other_message"
    if status not in RANK:
        log.info("outbox %s: unrecognised delivery status %r kept as the provider's", row.id, status[:30])
        row.provider_status = status[:30] or row.provider_status
        return "unchanged"
    current = RANK.get(row.provider_status or "", -1)
    if RANK[status] < current or (RANK[status] == current and row.provider_status in FINAL):
        return "unchanged"  # late or repeated: never move backwards
    row.provider_status = status
    if report.message_sid and not row.provider_id:
        row.provider_id = report.message_sid
    if status in ("delivered", "read"):
        row.status, row.delivered_at = DELIVERED, row.delivered_at or now
        row.status_reason = None
    elif status in ("undelivered", "failed", "canceled"):
        _not_delivered(session, row, status, report.error_code, now)
    elif row.status in BEFORE_SENT:
        # Twilio has it, so it went (a retry after a lost answer must not send it twice).
        row.status, row.sent_at = SENT, row.sent_at or now
        row.status_reason = None
    log.info("outbox %s: delivery status %s (code %s)", row.id, status, report.error_code or "-")
    return "updated"


def _not_delivered(session: Session, row: OutboxMessage, status: str, code: str | None, now: datetime) -> None:
    code = (code or "").strip() or None
    permanent = code in PERMANENT_FAILURE_CODES
    row.status = FAILED if status == "failed" or permanent else UNDELIVERED
    row.error_code = code or row.error_code
    reason = CODE_REASONS.get(code or "", f"Twilio error {code}" if code else "no reason given")
    row.error_message = f"{status}: {reason}"[:500]
    row.status_reason = "the number cannot take texts" if permanent else "the text did not arrive"
    if row.kind == KIND_ALERT:
        log.error("outbox %s: a staff crisis alert was not delivered (%s, code %s); check STAFF_ALERT_PHONES",
                  row.id, status, code)
        return
    patient = session.get(Patient, row.patient_id) if row.patient_id else None
    if patient is None:
        return
    if code == UNSUBSCRIBED and not patient.sms_opted_out:
        patient.sms_opted_out, patient.opted_out_at = True, now
        patient.opt_out_text = "(the carrier reported the number unsubscribed, error 21610)"
    if fall_back_to_email(session, row, patient, now):
        log.info("outbox %s: not delivered by text (code %s); email planned instead", row.id, code)


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
