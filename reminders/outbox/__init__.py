"""The outbox: every message the service means to send, or has sent, and the only code that
creates, claims, moves and records its rows (reminders.outbox.rows, .moves, .delivery), the welcome
text's own row among them (.welcome), and a text's place in its visit's budget at send time (.visit_texts).

"Never twice" is audited here: a row is created once per `dedupe_key` (ON CONFLICT DO NOTHING),
claimed by one conditional UPDATE, and its status never moves backwards.
"""
from reminders.models.outbox import ChannelName, Kind, Status
from reminders.outbox.moves import (
    OutboxMoveRefused, cancel_pending, claim_due, claim_for_sending, claim_many_for_sending, mark_sent, mark_unsent,
    queue_now, requeue_lost, retry_or_fail,
)
from reminders.outbox.rows import OutboxRow, appointment_key, plan, plan_fallback_twin

__all__ = [
    "ChannelName", "Kind", "OutboxMoveRefused", "OutboxRow", "Status", "appointment_key", "cancel_pending", "claim_due",
    "claim_for_sending", "claim_many_for_sending", "mark_sent", "mark_unsent", "plan", "plan_fallback_twin",
    "queue_now", "requeue_lost", "retry_or_fail",
]
