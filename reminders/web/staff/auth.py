"""Sign-in and sign-out, the session, and the guard every other staff blueprint installs.

Lockout: the fifth wrong password in a row locks the account for 15 minutes; while locked even
the right password is refused. Each attempt first takes one of the five tries with a single
conditional UPDATE (see `_take_a_try`), so concurrent guesses cannot get more than five
passwords checked.

Sessions live in the database (StaffSession): the signed cookie carries the session's id, and
signing out, changing the password or deactivating the account ends it on the server, so a
copied cookie stops working at once. The session is cleared on sign-in so that a session
planted before sign-in is worth nothing afterwards.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from reminders.accounts import AccountError, hasher, password_matches, set_password
from reminders.models import Escalation, StaffSession, StaffUser, utcnow
from reminders.web.context import db, request_now, settings
from reminders.web.staff import audit

bp = Blueprint("auth", __name__)

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_KEY = "staff_id"
SESSION_ID_KEY = "staff_session"
SEEN_EVERY = timedelta(minutes=1)  # how often last_seen_at is written (not on every request)


def current_user() -> StaffUser | None:
    if "staff" not in g:
        g.staff = _session_user()
    return g.staff


def _session_user() -> StaffUser | None:
    user_id, session_id = session.get(SESSION_KEY), session.get(SESSION_ID_KEY)
    if not isinstance(user_id, int) or not isinstance(session_id, str):
        return None
    row = db().get(StaffSession, session_id)
    now = utcnow()
    if row is None or row.revoked_at is not None or row.user_id != user_id \
            or now - row.created_at > current_app.permanent_session_lifetime:
        return None
    user = db().get(StaffUser, user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = now
        db().commit()
    return user


def start_session(user: StaffUser, now: datetime) -> None:
    """A new server-side session for the user, in a fresh cookie."""
    # The user's ended and run-out sessions are of no more use: they go as a new one starts.
    db().execute(delete(StaffSession).where(
        StaffSession.user_id == user.id,
        or_(StaffSession.revoked_at.is_not(None),
            StaffSession.created_at < now - current_app.permanent_session_lifetime)))
    row = StaffSession(id=secrets.token_urlsafe(32), user_id=user.id, created_at=now, last_seen_at=now)
    db().add(row)
    db().commit()
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session[SESSION_KEY], session[SESSION_ID_KEY] = user.id, row.id
    session.permanent = True
    g.staff = user


def revoke_sessions(db_session: Session, user_id: int, now: datetime, only: str | None = None) -> int:
    """End the user's sessions (or just one): their cookies stop working at once."""
    query = update(StaffSession).where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None))
    if only is not None:
        query = query.where(StaffSession.id == only)
    return db_session.execute(query.values(revoked_at=now)).rowcount


def guard(blueprint: Blueprint, *, admin: bool = False) -> None:
    """Require a signed-in user (and the admin role) for every view of the blueprint."""

    @blueprint.before_request
    def _require_session():
        user = current_user()
        if user is None:
            if request.is_json:
                return jsonify({"error": "sign in first"}), 401
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("auth.login", next=target))
        if admin and user.role != "admin":
            abort(403)
        return None


def page_context() -> dict:
    user = current_user()
    open_count = 0
    if user is not None:
        open_count = db().scalar(select(func.count()).select_from(Escalation).where(Escalation.status == "open")) or 0
    s = settings()
    return {"staff": user, "open_escalations": open_count, "provider_problems": _provider_problems() if user else [],
            "no_alert_contacts": not (s.staff_alert_phones or s.staff_alert_emails)}


def _provider_problems() -> list[dict]:
    """Channels whose provider is failing and paused: a banner on every staff page."""
    from reminders.provider_health import provider_status
    from reminders.web.staff.display import localize

    now = request_now()
    problems = []
    for status in provider_status(db(), now):
        if status["state"] != "paused":
            continue
        since = localize(status["failing_since"] or now)
        today = localize(now).date()
        since_text = f"{since:%H:%M}" if since.date() == today else f"{since:%b} {since.day} {since:%H:%M}"
        problems.append({**status, "since_text": since_text})
    return problems


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher.hash("not a password anyone has")


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute URL an attacker chose."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//") \
                and "\\" not in target:
            return target
    return url_for("today.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_template("staff/login.html", email="", error=None, next=request.args.get("next", ""))

    email = request.form.get("email", "").strip().lower()[:254]
    password = request.form.get("password", "")
    next_target = request.form.get("next", "")
    session_db, now = db(), utcnow()
    user = session_db.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email)) if email else None

    def refuse(message: str, status: int):
        return render_template("staff/login.html", email=email, error=message, next=next_target), status

    if user is None or not user.active:
        password_matches(StaffUser(password_hash=_dummy_hash()), password)  # same time as a real check
        audit.record("login_failed", "staff_user", "", actor=email or "(blank)", reason="unknown or inactive account")
        session_db.commit()
        return refuse("That email and password do not match an active account.", 401)
    tries = _take_a_try(session_db, user.id, now)
    if tries is None:  # locked, or the last tries are being checked right now
        session_db.refresh(user)
        audit.record("login_refused_locked", "staff_user", user.id, actor=email)
        session_db.commit()
        return refuse(_locked_message(user, now), 429)
    if not password_matches(user, password):
        if tries >= LOCK_AFTER:  # the last try: _take_a_try set the lock with it
            session_db.refresh(user)
            audit.record("account_locked", "staff_user", user.id, actor=email)
            session_db.commit()
            return refuse(_locked_message(user, now), 429)
        audit.record("login_failed", "staff_user", user.id, actor=email, reason="wrong password")
        session_db.commit()
        left = LOCK_AFTER - tries
        return refuse(f"That email and password do not match an active account. "
                      f"{left} more {'try' if left == 1 else 'tries'} before the account is locked for "
                      f"{LOCK_FOR.seconds // 60} minutes.", 401)

    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    session_db.execute(update(StaffUser).where(StaffUser.id == user.id)
                       .values(failed_logins=0, locked_until=None, last_login_at=now))
    audit.record("login", "staff_user", user.id, actor=user.email)
    session_db.commit()
    session_db.refresh(user)
    start_session(user, now)
    return redirect(safe_next(next_target))


def _take_a_try(db_session: Session, user_id: int, now: datetime) -> int | None:
    """Count one more password attempt, atomically; None when no try is left (locked).

    One conditional UPDATE ... RETURNING, committed before the slow password check: concurrent
    attempts queue on the row, and each sees the count the one before it left, so at most
    LOCK_AFTER passwords are checked per lockout period however many arrive at once. A lock
    that has run out starts the count again."""
    expired = and_(StaffUser.locked_until.is_not(None), StaffUser.locked_until <= now)
    taken = db_session.execute(
        update(StaffUser)
        .where(StaffUser.id == user_id,
               or_(expired, and_(StaffUser.locked_until.is_(None), StaffUser.failed_logins < LOCK_AFTER)))
        .values(failed_logins=case((expired, 1), else_=StaffUser.failed_logins + 1),
                # The last try sets the lock in the same statement (a right password lifts it), so
                # no crash between the two can leave an account counted out but never unlocked.
                locked_until=case((and_(~expired, StaffUser.failed_logins + 1 >= LOCK_AFTER), now + LOCK_FOR),
                                  else_=None))
        .returning(StaffUser.failed_logins)
        .execution_options(synchronize_session=False)
    ).scalar()
    db_session.commit()
    return taken


def _locked_message(user: StaffUser, now) -> str:
    until = user.locked_until if user.locked_until is not None and user.locked_until > now else now + LOCK_FOR
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    return (f"Too many wrong passwords: this account is locked for {minutes} more "
            f"minute{'s' if minutes != 1 else ''}. Ask an admin if you need in sooner.")


@bp.post("/logout")
def logout():
    user = current_user()
    if user is not None:
        revoke_sessions(db(), user.id, utcnow(), only=session.get(SESSION_ID_KEY))
        audit.record("logout", "staff_user", user.id, actor=user.email)
        db().commit()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Any signed-in user changes their own password; every session of theirs ends, this one restarts."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("auth.change_password")))
    if request.method == "GET":
        return render_template("staff/password.html", error=None)
    current, new = request.form.get("current_password", ""), request.form.get("new_password", "")
    error = None
    if not password_matches(user, current):
        error = "The current password is not right."
    elif new != request.form.get("confirm_password", ""):
        error = "The two new passwords are not the same."
    else:
        try:
            set_password(db(), user, new)
        except AccountError as exc:
            error = str(exc)
    if error:
        db().rollback()
        return render_template("staff/password.html", error=error), 422
    now = utcnow()
    ended = revoke_sessions(db(), user.id, now)
    audit.record("change_password", "staff_user", user.id, actor=user.email, sessions_ended=ended)
    db().commit()
    start_session(user, now)
    flash("Password changed. Every other browser signed in as you has been signed out.", "ok")
    return redirect(url_for("today.index"))
