"""Sending outbox rows: re-check, render, send through their channel, record what happened.

The row is claimed with a conditional UPDATE first, so a redelivered task or a second worker
finds nothing to do. The rendered text is written before the provider is called, and the row is
marked in flight (`handed_at`) just before its own call: a worker that dies after that leaves the
row in `sending`, which the sweep turns into `unknown` for staff; one that dies (or loses its
database) before it, leaves a row that goes back to the schedule. A provider failure that opens the
breaker, here or in another process, stops the batch in hand: its other rows go back, untried.

The parts: `gate` (may this row go now), `compose` (its message), `handover` (the provider call and
its record), `batch` (a batch claimed, prepared and handed over), `records` (sends kept through a
failing database), `numbers` (each location's sending number), `outcomes`, and `sender` (Sender).
"""
from reminders.sending.batch import BATCH_SECONDS
from reminders.sending.compose import SPLIT_KINDS
from reminders.sending.outcomes import NOT_HANDED_OVER, SendOutcome
from reminders.sending.sender import Sender
from reminders.timing.retries import backoff, retry_delay

__all__ = ["BATCH_SECONDS", "NOT_HANDED_OVER", "SPLIT_KINDS", "SendOutcome", "Sender", "backoff", "retry_delay"]
