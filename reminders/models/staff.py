from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, event, false, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import instance_state

from reminders.models.base import Base, UTCDateTime, utcnow

ROLES = ("admin", "staff")


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10), default="staff")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Two-step sign-in (reminders.mfa): the TOTP secret, encrypted with a key derived from
    # SECRET_KEY (never stored or logged in the clear); set when enrolment is confirmed with a code.
    mfa_secret: Mapped[str | None] = mapped_column(String(255))
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The TOTP time step last accepted: the same code (or an older one) is not taken twice.
    mfa_last_step: Mapped[int | None] = mapped_column(Integer)
    # Set by a password reset (an admin's, or the CLI's): the user chooses a new one at next sign-in.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None and bool(self.mfa_secret)


class RecoveryCode(Base):
    """A one-time recovery code for two-step sign-in: only its SHA-256 is stored; used once."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # The chain (reminders.audit_chain): hash = sha256(prev_hash + the row's canonical JSON), and
    # prev_hash is the hash of the row before it (by id). Set on insert (the before_flush hook
    # below); rows are never updated or deleted by the application.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class TemplateVersion(Base):
    """A staff-edited version of one template file; the newest active one overrides the default."""

    __tablename__ = "template_versions"
    __table_args__ = (Index("ix_template_versions_name", "name", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))  # the file name in templates/, e.g. induction_24h.sms.j2
    source: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when this version failed while a message was rendered (the default file went instead).
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure: Mapped[str | None] = mapped_column(String(500))


class StaffSession(Base):
    """A signed-in browser. The cookie carries only `id`; sign-out or a new password revokes the row,
    so a copied cookie stops working at once."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # secrets.token_urlsafe(32)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- The audit chain: computed on insert, never changed ---------------------------------------------

GENESIS = ""  # the prev_hash of the first row
AUDIT_LOCK_KEY = 0x617564  # PostgreSQL advisory lock that serialises audit inserts ("aud")


def canonical_audit_json(at: datetime, actor: str, action: str, target_type: str, target_id: str,
                         detail: dict | None) -> str:
    """The row's fields as one canonical JSON text (sorted keys, no spaces, UTC microseconds)."""
    when = at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
    return json.dumps({"at": when, "actor": actor, "action": action, "target_type": target_type or "",
                       "target_id": str(target_id or ""), "detail": detail or {}},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def audit_hash(prev_hash: str | None, at: datetime, actor: str, action: str, target_type: str,
               target_id: str, detail: dict | None) -> str:
    body = (prev_hash or GENESIS) + canonical_audit_json(at, actor, action, target_type, target_id, detail)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class AuditRowsAreFinal(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


def last_audit_hash(session: Session) -> str:
    """The hash of the newest row, after taking the chain's lock (PostgreSQL: an advisory lock held to
    the end of the transaction, so two writers cannot both link to the same row; SQLite: its
    single write lock serialises writers)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    found = connection.execute(select(AuditEntry.__table__.c.hash)
                               .order_by(AuditEntry.__table__.c.id.desc()).limit(1)).first()
    return (found[0] or "") if found else GENESIS


@event.listens_for(Session, "before_flush")
def _chain_audit_rows(session: Session, flush_context, instances) -> None:
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise AuditRowsAreFinal("audit rows are never deleted")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj, include_collections=False):
            raise AuditRowsAreFinal("audit rows are never changed")
    new = sorted((obj for obj in session.new if isinstance(obj, AuditEntry)),
                 key=lambda obj: instance_state(obj).insert_order or 0)
    if not new:
        return
    prev = last_audit_hash(session)
    for entry in new:
        entry.at = entry.at or utcnow()
        entry.target_type = entry.target_type or ""
        entry.target_id = "" if entry.target_id is None else str(entry.target_id)
        # What is stored is what is hashed: the detail as JSON reads it back.
        entry.detail = json.loads(json.dumps(entry.detail or {}, default=str))
        entry.prev_hash = prev
        entry.hash = prev = audit_hash(prev, entry.at, entry.actor, entry.action, entry.target_type,
                                       entry.target_id, entry.detail)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_audit_changes(state) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is AuditEntry:
        raise AuditRowsAreFinal("audit rows are never changed or deleted")
