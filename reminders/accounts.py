"""Who may use the service: staff accounts (argon2-hashed passwords, roles) and API tokens."""
from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reminders.models import ApiToken, StaffUser
from reminders.models.staff import ROLES

hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class AccountError(ValueError):
    pass


def create_user(session: Session, email: str, role: str, password: str) -> StaffUser:
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email)):
        raise AccountError(f"a user with the email {email} exists already")
    user = StaffUser(email=email, role=role, password_hash=hasher.hash(password))
    session.add(user)
    session.commit()
    return user


def set_password(session: Session, user: StaffUser, password: str) -> None:
    """A new password the user chose (the caller ends the user's sessions: see auth.revoke_sessions)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hasher.hash(password)
    user.must_change_password = False


def temporary_password() -> str:
    """A one-time password easy to read out: four groups of four, no 0/O or 1/l to confuse."""
    picked = "".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(16))
    return "-".join(picked[i:i + 4] for i in range(0, 16, 4))


def reset_password(session: Session, user: StaffUser, password: str | None = None) -> str:
    """An admin's reset: the typed password, or a generated one; either way the user must choose
    their own at the next sign-in. Returns the password to hand over (the caller ends their sessions)."""
    given = password or temporary_password()
    set_password(session, user, given)
    user.must_change_password = True
    return given


def active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(StaffUser)
                          .where(StaffUser.role == "admin", StaffUser.active.is_(True))) or 0


def change_role(session: Session, user: StaffUser, role: str) -> bool:
    """Give the user another role; False when it is already theirs. The last active admin stays
    one: someone must be able to manage the accounts."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if user.role == role:
        return False
    if user.role == "admin" and user.active and active_admins(session) <= 1:
        raise AccountError(f"{user.email} is the only admin: make another account admin first")
    user.role = role
    return True


def password_matches(user: StaffUser, password: str) -> bool:
    try:
        return hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new API token's hash and return the token itself (shown once)."""
    token = "rem_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    session.commit()
    return token
