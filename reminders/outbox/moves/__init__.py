"""Moving outbox rows along their lifecycle: the only code that changes a row's status.

planned -> queued (claim_due, queue_now) -> sending (claim_for_sending, one winner) -> sent, then
delivered or undelivered (reminders.outbox.delivery); or back to planned (retry, quiet hours,
a paused provider), or to skipped, canceled, failed or unknown. Every move out of a shared state
is a conditional UPDATE, so two workers, a late task and a sweep cannot both move one row.

Every move is checked against reminders.models.outbox.ALLOWED_MOVES (.allowed). The parts: handing
rows out (.claims), a send recorded (.sends), a claimed row's other outcomes (.outcomes), pending
rows the plan changed (.plan_changes).
"""
from reminders.outbox.moves.allowed import (
    BACK_FROM_QUEUE, BACK_FROM_SENDING, CANCEL_PENDING, CLAIM, QUEUE, RESCHEDULE, REVIVE, UNKNOWN_SEND, Move,
    OutboxMoveRefused, check_move, may_move,
)
from reminders.outbox.moves.claims import (
    CLOCK_SKEW, RELEASED_UNSENT, REQUEUE_AFTER, REQUEUE_ALERT_AFTER, UNKNOWN_AFTER_CRASH, claim_due,
    claim_for_sending, claim_many_for_sending, hold_queued, mark_unknown_sends, queue_now, queue_probe,
    release_to_planned, release_unhanded, requeue_lost,
)
from reminders.outbox.moves.outcomes import (
    ERROR_MESSAGE_LIMIT, RETRYING, STATUS_REASON_LIMIT, VISIT_CANCELED, defer, hold, mark_failed,
    mark_sent_unrecorded, mark_unknown, mark_unsent, mark_unsent_with, retry_or_fail, write_rendered,
)
from reminders.outbox.moves.plan_changes import (
    bring_forward_retries, cancel_pending, fail_many, reschedule_pending, revive_canceled,
)
from reminders.outbox.moves.sends import (
    _forget_sent_on_rollback, _write_sent_before_commit, mark_in_flight, mark_sent, write_sent,
)

__all__ = [
    "BACK_FROM_QUEUE", "BACK_FROM_SENDING", "CANCEL_PENDING", "CLAIM", "CLOCK_SKEW", "ERROR_MESSAGE_LIMIT", "QUEUE",
    "RELEASED_UNSENT", "REQUEUE_AFTER", "REQUEUE_ALERT_AFTER", "RESCHEDULE", "RETRYING", "REVIVE",
    "STATUS_REASON_LIMIT", "UNKNOWN_AFTER_CRASH", "UNKNOWN_SEND", "VISIT_CANCELED", "Move", "OutboxMoveRefused",
    "bring_forward_retries", "cancel_pending", "check_move", "claim_due", "claim_for_sending",
    "claim_many_for_sending", "defer", "fail_many", "hold", "hold_queued", "mark_failed", "mark_in_flight",
    "mark_sent", "mark_sent_unrecorded", "mark_unknown", "mark_unknown_sends", "mark_unsent", "mark_unsent_with",
    "may_move", "queue_now", "queue_probe", "release_to_planned", "release_unhanded", "requeue_lost",
    "reschedule_pending", "retry_or_fail", "revive_canceled", "write_rendered", "write_sent",
    "_forget_sent_on_rollback", "_write_sent_before_commit",
]
