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
from reminders.outbox.moves import ERROR_MESSAGE_LIMIT

log = logging.getLogger("reminders.outbox")

UPDATED, UNCHANGED, OTHER_MESSAGE = "updated", "unchanged", "other_message"
PROVIDER_STATUS_WIDTH = 30  # outbox.provider_status
# Our statuses a report may move on from (a row whose send we could not confirm included).
BEFORE_SENT = (Status.PLANNED, Status.QUEUED, Status.SENDING, Status.UNKNOWN)


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
    row.provider_status = report.provider_status
    if report.provider_id and not row.provider_id:
        row.provider_id = report.provider_id
    if report.state in (DELIVERED_STATE, READ_STATE):
        row.status, row.delivered_at, row.status_reason = Status.DELIVERED, row.delivered_at or now, None
    elif report.state in (UNDELIVERED_STATE, FAILED_STATE):
        row.status = Status.FAILED if report.state == FAILED_STATE or report.permanent else Status.UNDELIVERED
        row.error_code = report.error_code or row.error_code
        row.error_message = f"{report.provider_status}: {report.reason or 'no reason given'}"[:ERROR_MESSAGE_LIMIT]
        row.status_reason = "the number cannot take texts" if report.permanent else "the text did not arrive"
    elif row.status in BEFORE_SENT:
        # The provider has it, so it went (a retry after a lost answer must not send it twice).
        row.status, row.sent_at, row.status_reason = Status.SENT, row.sent_at or now, None
    log.info("outbox %s: delivery status %s (code %s)", row.id, report.provider_status, report.error_code or "-")
    return UPDATED


def not_delivered(row: OutboxMessage) -> bool:
    return row.status in (Status.FAILED, Status.UNDELIVERED)
