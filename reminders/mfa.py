"""Two-step sign-in for staff: TOTP codes (RFC 6238, pyotp) and one-time recovery codes.

The TOTP secret is stored encrypted (Fernet, with a key derived from the app's SECRET_KEY: the
setting, or the file the web app keeps in REMINDERS_DATA_DIR); changing SECRET_KEY makes every
enrolment unreadable, and an admin resets them (the users page, or `reminders user reset-mfa`).
Recovery codes are stored as SHA-256 hashes and each is taken once (a conditional UPDATE, so two
requests with the same code cannot both pass). A TOTP code is taken once too: the step it belongs
to is remembered, and that step or an older one is refused afterwards.

Who must use it: every admin; staff too when MFA_REQUIRED is true. Anyone may turn it on.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from pathlib import Path

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from reminders.config import Settings
from reminders.models import RecoveryCode, StaffUser

STEP_SECONDS = 30
WINDOW = 1  # a code from the step before or after is taken too (clock drift)
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


class MfaError(ValueError):
    pass


def secret_key_of(settings: Settings) -> str:
    """The app's SECRET_KEY, as reminders.web.create_app resolves it (the setting, else the file it
    keeps in the data folder, made here if it is not there yet)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet(key: str) -> Fernet:
    derived = hashlib.sha256(b"clinic-reminders mfa secret v1\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(key: str, secret: str) -> str:
    return _fernet(key).encrypt(secret.encode()).decode()


def decrypt_secret(key: str, token: str) -> str:
    try:
        return _fernet(key).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise MfaError("the two-step secret cannot be read (SECRET_KEY changed?)") from exc


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline <svg> QR code (no file, no outside request)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, title="Two-step sign-in QR code")


def required_for(user: StaffUser, settings: Settings) -> bool:
    return user.role == "admin" or settings.mfa_required


def _clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step the 6-digit code belongs to (within WINDOW of now), else None."""
    code = _clean(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(_clean(code).encode()).hexdigest()


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    def one() -> str:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        return f"{raw[:5]}-{raw[5:]}"
    return [one() for _ in range(count)]


def enable(session: Session, user: StaffUser, key: str, secret: str, code: str, now: datetime) -> list[str]:
    """Turn two-step sign-in on with a secret the user has put in their app, proved by a code from
    it. Returns the new recovery codes (shown once); the caller commits."""
    step = totp_step(secret, code, now)
    if step is None:
        raise MfaError("That code is not right. Check the time on your phone and try the newest code.")
    user.mfa_secret = encrypt_secret(key, secret)
    user.mfa_enabled_at = now
    user.mfa_last_step = step
    return replace_recovery_codes(session, user, now)


def replace_recovery_codes(session: Session, user: StaffUser, now: datetime) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = new_recovery_codes()
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_recovery_code(c), created_at=now) for c in codes)
    return codes


def recovery_codes_left(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode)
                          .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0


def check(session: Session, user: StaffUser, key: str, code: str, now: datetime) -> str | None:
    """The second step: "totp" or "recovery" when the code is taken (the caller commits), else None."""
    if not user.mfa_enabled:
        return None
    cleaned = _clean(code)
    if len(cleaned) == 6 and cleaned.isdigit():
        step = totp_step(decrypt_secret(key, user.mfa_secret), cleaned, now)
        if step is None:
            return None
        taken = session.execute(update(StaffUser).where(
            StaffUser.id == user.id, or_(StaffUser.mfa_last_step.is_(None), StaffUser.mfa_last_step < step))
            .values(mfa_last_step=step).execution_options(synchronize_session=False)).rowcount
        return "totp" if taken == 1 else None
    if len(cleaned) != 10:
        return None
    taken = session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_recovery_code(cleaned),
        RecoveryCode.used_at.is_(None)).values(used_at=now).execution_options(synchronize_session=False)).rowcount
    return "recovery" if taken == 1 else None


def reset(session: Session, user: StaffUser) -> bool:
    """Turn the user's two-step sign-in off (they enrol again at their next sign-in if it is required).
    False if it was not on. The caller ends their sessions and commits."""
    was_on = user.mfa_enabled
    user.mfa_secret, user.mfa_enabled_at, user.mfa_last_step = None, None, None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return was_on
