"""The audit log: who looked at which patient, and who changed what. Committed with the change."""
from __future__ import annotations

from flask import g

from reminders.models import AuditEntry, utcnow
from reminders.web.context import db


def record(action: str, target_type: str = "", target_id: int | str | None = "", *, actor: str | None = None,
           **detail) -> AuditEntry:
    """Add an entry to the request's session; the caller commits it together with its change."""
    if actor is None:
        user = g.get("staff")
        actor = user.email if user is not None else "(anonymous)"
    entry = AuditEntry(
        at=utcnow(), actor=actor[:254], action=action[:60], target_type=target_type[:40],
        target_id="" if target_id is None else str(target_id)[:64], detail=detail,
    )
    db().add(entry)
    return entry
