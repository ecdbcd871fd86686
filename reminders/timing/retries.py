"""Retrying a message through a provider's outage: how long to wait, and when to give up.

Pure: no database, no clock.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from reminders.models.outbox import Kind
from reminders.timing.rules import ALERT, BEFORE_VISIT_KINDS, REMINDER, TOO_LATE

# Backoff between tries of one message: 30 s (SEND_RETRY_FIRST_SECONDS), 1, 2, 4 ... minutes, at
# most BACKOFF_CAP, plus up to JITTER of itself so that rows that failed together do not all come
# back in the same second.
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(minutes=30)
JITTER = 0.2
# The last try before a deadline is this much before it (a reminder a minute before the visit).
LAST_TRY_BEFORE_DEADLINE = timedelta(minutes=1)


def delivery_deadline(kind: str, planned_for: datetime, visit_starts_at: datetime | None) -> datetime | None:
    """The moment a message can no longer do its job, so retrying it stops; None: never stop.

    The same limits `reason_not_to_send` applies to a late message: a reminder is no use once its
    visit has started, a check-in or nudge (or a reply) TOO_LATE after its own time only confuses.
    A staff crisis alert is retried until someone acknowledges the escalation (which cancels it).
    A welcome (HELP/STOP) is never too late: the patient's other texts wait for it.
    """
    if kind in (ALERT, Kind.WELCOME):
        return None
    if kind in BEFORE_VISIT_KINDS and visit_starts_at is not None:
        return visit_starts_at
    return planned_for + TOO_LATE


def gave_up_reason(kind: str) -> str:
    """What staff read on a message the provider's outage kept from going in time."""
    if kind == REMINDER:
        return "provider unavailable until the visit"
    return "provider unavailable until it was too late to be useful"


def retry_time(now: datetime, delay: timedelta, deadline: datetime | None) -> datetime | None:
    """When to try again after a temporary failure: after `delay`, but never past the deadline's
    last try. None when even that is no longer ahead: give up."""
    at = now + delay
    if deadline is None:
        return at
    at = min(at, deadline - LAST_TRY_BEFORE_DEADLINE)
    return at if at > now else None


def backoff(attempt: int, cap: timedelta = BACKOFF_CAP, first: timedelta = BACKOFF_FIRST) -> timedelta:
    """The wait after the `attempt`-th failure, without jitter: doubling from `first` up to `cap`."""
    return min(first * 2 ** min(max(attempt - 1, 0), 30), cap)


def retry_delay(attempt: int, key: str | int, first: timedelta = BACKOFF_FIRST) -> timedelta:
    """backoff(attempt) plus 0 to JITTER of it, fixed for a (key, attempt): spread, yet repeatable."""
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    fraction = int.from_bytes(digest[:4], "big") / 2 ** 32
    base = backoff(attempt, first=first)
    return base + timedelta(seconds=round(base.total_seconds() * JITTER * fraction))
