"""Whether a message still should go when it is due: the visit canceled, already held, missed,
or the next one booked; a message too late to be useful.

Pure: no database, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reminders.timing.rules import (
    BEFORE_VISIT_KINDS, CHECKIN, MISSED_VISIT, NEXT_VISIT_TAKES_OVER, NUDGE, REBOOK_NUDGE, TOO_LATE,
)


@dataclass(frozen=True)
class SendFacts:
    """What is true at send time of the visit a message is about."""

    status: str  # the appointment's status now
    starts_at: datetime
    next_visit_starts_at: datetime | None  # the patient's next visit after this one, not canceled
    superseded: bool = False  # a later reminder for the same visit and channel is also due
    overdue_by: timedelta = timedelta(0)  # how long past its own time the message is


def reason_not_to_send(kind: str, rule_name: str, facts: SendFacts, now: datetime) -> str | None:
    """None when the message should go now; otherwise why not, in a word staff can read."""
    if facts.status == "canceled":
        return "visit canceled"
    if kind in BEFORE_VISIT_KINDS:
        if facts.status not in ("scheduled", "confirmed"):
            return f"visit {facts.status.replace('_', ' ')}"
        if facts.starts_at <= now:
            return "visit already started"
        if facts.superseded:
            return "superseded by a later reminder"
        return None
    if rule_name == MISSED_VISIT:
        # It goes whether or not a later visit is booked: the text names that visit, or asks them to rebook.
        if facts.status != "no_show":
            return "visit no longer marked missed"
        return "too late to be useful" if facts.overdue_by > TOO_LATE else None
    if facts.status == "no_show" and rule_name != REBOOK_NUDGE:
        return "visit not attended"
    if facts.starts_at > now:
        return "visit not yet held"
    if facts.overdue_by > TOO_LATE:
        return "too late to be useful"
    if kind == CHECKIN and rule_name.startswith("checkin_weekly") and facts.next_visit_starts_at is not None:
        if facts.next_visit_starts_at <= now + NEXT_VISIT_TAKES_OVER:
            return "next visit takes over"
    if kind == NUDGE and facts.next_visit_starts_at is not None:
        return "next visit already booked"
    return None
