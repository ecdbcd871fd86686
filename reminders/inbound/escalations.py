"""Crisis escalations: opened from a reply, alerted to staff until a person acknowledges.

(The alerting rounds are filled in by the two-way work; the signatures here are the contract
the webhook, the API and the staff UI use.)
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reminders.models import Escalation


class EscalationNotFound(LookupError):
    pass


def plan_due_alerts(session: Session, settings, now: datetime) -> int:
    """Plan staff alerts for open escalations whose next alert is due. Returns rows planned."""
    return 0


def acknowledge(session: Session, escalation_id: int, by: str, note: str, now: datetime) -> Escalation:
    """A person has seen it: stop re-alerting. Acknowledging twice keeps the first record."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise EscalationNotFound(f"no escalation {escalation_id}")
    if escalation.status != "acknowledged":
        escalation.status = "acknowledged"
        escalation.acknowledged_at = now
        escalation.acknowledged_by = by
        escalation.ack_note = note or ""
        escalation.next_alert_at = None
    return escalation
