"""What became of a row handed to the sender, and the two ways a send can break off."""
from __future__ import annotations

from enum import StrEnum

from reminders.channels import Receipt


class SendOutcome(StrEnum):
    """A row's outcome, counted in a pass's summary and in GET /metrics (a plain string too)."""

    SENT = "sent"
    DEFERRED = "deferred"  # still wanted, later: quiet hours, a crisis, an open question, its welcome
    SKIPPED = "skipped"  # no longer wanted
    FAILED = "failed"  # refused for good
    RETRYING = "retrying"  # refused for now
    UNKNOWN = "unknown"  # may have gone: staff check before resending
    HELD = "held"  # back in the schedule untried: a paused provider, the number's pace
    GAVE_UP = "gave_up"  # its provider paused for longer than the message is worth
    NOT_CLAIMED = "not_claimed"  # another worker has it, or it is no longer due
    NOT_HANDED = "not_handed"  # not handed over and not put back: the sweep puts it back

    # A pass's summary (a dict of outcomes) is logged and printed: it reads as it always did.
    __repr__ = str.__repr__


# Outcomes of a provider's trouble (a refusal worth retrying; no answer in time, the text perhaps
# gone): they count toward the breaker, which may have opened with them.
PROVIDER_TROUBLE = (SendOutcome.RETRYING, SendOutcome.UNKNOWN)
NOT_HANDED_OVER = "the database failed just before the send; back in the schedule"


class NotHandedOver(Exception):
    """The database failed just before the provider call (recording the row in flight): nothing went."""


class AfterHandOver(Exception):
    """Raised once the provider was called: with its receipt when it accepted the message."""

    def __init__(self, receipt: Receipt | None):
        super().__init__("error after the provider was called")
        self.receipt = receipt
