"""A delivery report applied to its row: the row moves forward only, never back.

Providers report out of order at times (a late "sent" after "delivered"); each report carries its
rank (reminders.channels.base.DeliveryReport), and a report below the row's rank changes nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime

from reminders.channels.base import (
    DELIVERED_STATE, FAILED_STATE, READ_STATE, UNDELIVERED_STATE, DeliveryReport,
)
from reminders.models import OutboxMessage
from reminders.models.outbox import Status
from reminders.outbox.moves import ERROR_MESSAGE_LIMIT, Move, check_move

log = logging.getLogger("reminders.outbox")

UPDATED, UNCHANGED, OTHER_MESSAGE = "updated", "unchanged", "other_message"
PROVIDER_STATUS_WIDTH = 30  # outbox.provider_status
# Our statuses a report may move on from (a row whose send we could not confirm included).
BEFORE_SENT = Move((Status.PLANNED, Status.QUEUED, Status.SENDING, Status.UNKNOWN), Status.SENT).sources


def record_delivery(row: OutboxMessage, report: DeliveryReport, now: datetime) -> str:
    """Apply one report to its row: updated, unchanged or other_message (a report for an
    earlier attempt of the same row, which the provider took after all: the row follows its
    last send)."""
    if row.provider_id and report.provider_id and row.provider_id != report.provider_id:
        log.info("outbox %s: report for another attempt (%s) ignored", row.id, report.provider_status)
        return OTHER_MESSAGE
    if report.state is None:
        log.info("outbox %s: unrecognised delivery status %r kept as the provider's", row.id,
                 report.provider_status[:PROVIDER_STATUS_WIDTH])
        row.provider_status = report.provider_status[:PROVIDER_STATUS_WIDTH] or row.provider_status
        return UNCHANGED
    current = report.rank_of(row.provider_status)
    if report.rank < current or (report.rank == current and report.final):
        return UNCHANGED  # late or repeated: never move backwards
    status = _status_after(row, report)
    if status is not None:
        check_move(row, status)
    row.provider_status = report.provider_status
    if report.provider_id and not row.provider_id:
        row.provider_id = report.provider_id
    if status == Status.DELIVERED:
        row.status, row.delivered_at, row.status_reason, row.reason_code = status, row.delivered_at or now, None, None
    elif status in (Status.FAILED, Status.UNDELIVERED):
        row.status = status
        row.error_code = report.error_code or row.error_code
        row.error_message = f"{report.provider_status}: {report.reason or 'no reason given'}"[:ERROR_MESSAGE_LIMIT]
        row.status_reason = "the number cannot take texts" if report.permanent else "the text did not arrive"
        row.reason_code = None
    elif status == Status.SENT:
        # The provider has it, so it went (a retry after a lost answer must not send it twice).
        row.status, row.sent_at, row.status_reason, row.reason_code = status, row.sent_at or now, None, None
    log.info("outbox %s: delivery status %s (code %s)", row.id, report.provider_status, report.error_code or "-")
    return UPDATED


def _status_after(row: OutboxMessage, report: DeliveryReport) -> Status | None:
    """The status a report moves the row to; None: it stays."""
    if report.state in (DELIVERED_STATE, READ_STATE):
        return Status.DELIVERED
    if report.state in (UNDELIVERED_STATE, FAILED_STATE):
        return Status.FAILED if report.state == FAILED_STATE or report.permanent else Status.UNDELIVERED
    return Status.SENT if row.status in BEFORE_SENT else None


def not_delivered(row: OutboxMessage) -> bool:
    return row.status in (Status.FAILED, Status.UNDELIVERED)
