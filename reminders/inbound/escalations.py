"""Crisis escalations (filled in by the two-way work)."""
from __future__ import annotations

from datetime import datetime


def plan_due_alerts(session, settings, now: datetime) -> int:
    """Plan staff alerts for open escalations whose next alert is due. Returns rows planned."""
    return 0
