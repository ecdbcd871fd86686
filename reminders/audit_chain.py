"""Checking the audit log's hash chain (`reminders audit verify`).

Each audit row carries `prev_hash` (the hash of the row before it, by id; "" for the first) and
`hash` = sha256(prev_hash + the row's canonical JSON): reminders.models.staff.audit_hash, set on
insert by the before_flush hook there, under a lock so two writers cannot both link to one row.
A row edited in the database no longer matches its own hash; a row deleted or slipped in breaks
the link of the row after it. The application never updates or deletes audit rows (the hook
refuses it), so any break is a change made outside it.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.models import AuditEntry
from reminders.models.staff import GENESIS, audit_hash


@dataclass(frozen=True)
class Verdict:
    rows: int  # rows checked (up to and including the first broken one)
    broken_id: int | None = None
    reason: str = ""
    at: str = ""
    action: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None

    def describe(self) -> str:
        if self.ok:
            return f"OK: {self.rows} audit row{'' if self.rows == 1 else 's'}, the chain is intact"
        return (f"BROKEN: audit row {self.broken_id} ({self.at}, {self.action}): {self.reason}; "
                f"{self.rows - 1} row{'' if self.rows == 2 else 's'} before it are intact")


def verify(session: Session, batch: int = 1000) -> Verdict:
    """Walk the rows in id order; the first whose link or hash is wrong, else OK."""
    prev, count = GENESIS, 0
    query = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=batch)
    for entry in session.scalars(query):
        count += 1
        reason = ""
        if not entry.hash:
            reason = "it has no hash (written outside the application?)"
        elif (entry.prev_hash or GENESIS) != prev:
            reason = "its link to the row before does not match (a row before it was removed, changed or added)"
        elif audit_hash(prev, entry.at, entry.actor, entry.action, entry.target_type, entry.target_id,
                        entry.detail) != entry.hash:
            reason = "its contents do not match its hash (the row was changed)"
        if reason:
            return Verdict(count, entry.id, reason, entry.at.isoformat(timespec="seconds"), entry.action)
        prev = entry.hash
    return Verdict(count)
