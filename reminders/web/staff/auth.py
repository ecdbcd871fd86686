"""Sign-in and sign-out, the session, and the guard every other staff blueprint installs.

Lockout: the fifth wrong password in a row locks the account for 15 minutes; while locked even
the right password is refused. The session is cleared on sign-in so that a session id planted
before sign-in is worth nothing afterwards.
"""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from reminders.models import Escalation, StaffUser, utcnow
from reminders.web import db
from reminders.web.staff import audit
from reminders.web.staff.accounts import hasher, password_matches

bp = Blueprint("auth", __name__)

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_KEY = "staff_id"


def current_user() -> StaffUser | None:
    if "staff" not in g:
        user_id = session.get(SESSION_KEY)
        user = db().get(StaffUser, user_id) if isinstance(user_id, int) else None
        g.staff = user if user is not None and user.active else None
    return g.staff


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
    return {"staff": user, "open_escalations": open_count, "provider_problems": _provider_problems() if user else []}


def _provider_problems() -> list[dict]:
    """Channels whose provider is failing and paused: a banner on every staff page."""
    from reminders.provider_health import provider_status
    from reminders.web.staff.display import localize
    from reminders.web.twilio_hooks import request_now

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

    if user is not None and user.locked_until is not None and user.locked_until > now:
        audit.record("login_refused_locked", "staff_user", user.id, actor=email)
        session_db.commit()
        return refuse(_locked_message(user, now), 429)
    if user is None or not user.active:
        password_matches(StaffUser(password_hash=_dummy_hash()), password)  # same time as a real check
        audit.record("login_failed", "staff_user", "", actor=email or "(blank)", reason="unknown or inactive account")
        session_db.commit()
        return refuse("That email and password do not match an active account.", 401)
    if not password_matches(user, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= LOCK_AFTER:
            user.failed_logins, user.locked_until = 0, now + LOCK_FOR
            audit.record("account_locked", "staff_user", user.id, actor=email)
            session_db.commit()
            return refuse(_locked_message(user, now), 429)
        audit.record("login_failed", "staff_user", user.id, actor=email, reason="wrong password")
        session_db.commit()
        left = LOCK_AFTER - user.failed_logins
        return refuse(f"That email and password do not match an active account. "
                      f"{left} more {'try' if left == 1 else 'tries'} before the account is locked for "
                      f"{LOCK_FOR.seconds // 60} minutes.", 401)

    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    audit.record("login", "staff_user", user.id, actor=user.email)
    session_db.commit()
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session[SESSION_KEY] = user.id
    session.permanent = True
    return redirect(safe_next(next_target))


def _locked_message(user: StaffUser, now) -> str:
    minutes = max(1, -(-int((user.locked_until - now).total_seconds()) // 60))
    return (f"Too many wrong passwords: this account is locked for {minutes} more "
            f"minute{'s' if minutes != 1 else ''}. Ask an admin if you need in sooner.")


@bp.post("/logout")
def logout():
    user = current_user()
    if user is not None:
        audit.record("logout", "staff_user", user.id, actor=user.email)
        db().commit()
    session.clear()
    return redirect(url_for("auth.login"))
