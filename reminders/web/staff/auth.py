"""Sign-in and sign-out, the session, and the guard every other staff blueprint installs.

Wrong passwords slow the guesser down; they never lock an account (five requests from anyone
would otherwise keep every admin out during a crisis). Failures are counted per client address
and per account (rate_limits.Throttle: Redis when REDIS_URL is set, so every web process counts
alike): after 5 within 15 minutes each further attempt from that address, or for that account,
waits 1, 2, 4 ... at most 60 seconds, and is answered 429 "Too many attempts: try again in N
seconds." until then. An account's delays hold back only the addresses that have themselves got
its password wrong, so the right password from anywhere else still signs in while the account
is being hammered. Every attempt is counted before its password is checked (a right one takes
the count back), so parallel guesses get no more checks than one after another. An unknown
email is counted, checked (against a dummy hash) and answered exactly as a wrong password is:
the answers never tell whether an account exists. Changing one's password is throttled the same
way, per account (reminders.web.staff.account: that page and two-step enrolment, in this blueprint).

Sessions live in the database (StaffSession): the signed cookie carries the session's id, and
signing out, changing the password or deactivating the account ends it on the server, so a
copied cookie stops working at once. The session is cleared on sign-in so that a session
planted before sign-in is worth nothing afterwards.

Two-step sign-in (reminders.mfa): with it on, the right password leads to a second page that asks
for the code from the authenticator app, or a one-time recovery code; the session starts only
then. The code step is throttled per account like the password. Anyone who must have it (every
admin; every account with MFA_REQUIRED=true) and has not enrolled is sent to the enrolment page
before any other page.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from reminders import accounts, mfa
from reminders.accounts import password_matches
from reminders.models import Escalation, StaffSession, StaffUser
from reminders.web.context import db, request_now, settings
from reminders.web.rate_limits import Backoff, Throttle
from reminders.web.staff import audit

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

SIGN_IN = Backoff("sign-in", free=5, window=15 * 60, first_delay=1, max_delay=60)
WRONG = "That email and password do not match an active account."
SESSION_KEY = "staff_id"
SESSION_ID_KEY = "staff_session"
SEEN_EVERY = timedelta(minutes=1)  # how often last_seen_at is written (not on every request)
SECOND_STEP = Backoff("second-step", free=5, window=15 * 60, first_delay=1, max_delay=60)
PENDING_KEY = "mfa_pending"  # the signed cookie between the password and the code: user id, when, next
SECOND_STEP_MINUTES = 5
WRONG_CODE = "That code is not right. Use the newest code from your app, or one of your recovery codes."


def current_user() -> StaffUser | None:
    if "staff" not in g:
        g.staff = _session_user()
    return g.staff


def _session_user() -> StaffUser | None:
    user_id, session_id = session.get(SESSION_KEY), session.get(SESSION_ID_KEY)
    if not isinstance(user_id, int) or not isinstance(session_id, str):
        return None
    row = db().get(StaffSession, session_id)
    now = request_now()
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
            if request.method != "GET":
                return form_after_session_ended()
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if user.must_change_password:  # an admin reset the password: the user chooses their own first
            if request.is_json:
                return jsonify({"error": "choose a new password first"}), 403
            return redirect(url_for("auth.change_password"))
        if must_enrol(user):  # (the sign-in pages, in this module's own blueprint, are not guarded)
            if request.is_json:
                return jsonify({"error": "set up two-step sign-in first"}), 403
            return redirect(url_for("auth.mfa_enrol"))
        if admin and user.role != "admin":
            abort(403)
        return None


def form_after_session_ended():
    """A form sent after its session ended (signed out elsewhere, run out, the cookie gone): nothing
    is done; the sign-in page leads back to the form's page, where staff.js puts back what was
    typed (kept in the browser tab, never on the server and never a password)."""
    flash("Your session ended before this was sent, so nothing was saved. Sign in again to go back to "
          "the form: what you typed will be put back.", "warn")
    return redirect(url_for("auth.login", next=_same_site_referrer()))


def _same_site_referrer() -> str | None:
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host or not referrer.path.startswith("/"):
        return None
    target = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return target if safe_next(target) == target else None


def must_enrol(user: StaffUser) -> bool:
    """The user must turn on two-step sign-in before anything else."""
    return not user.mfa_enabled and mfa.required_for(user, settings())


def mfa_key() -> str:
    return current_app.config["SECRET_KEY"]


def page_context() -> dict:
    user = current_user()
    open_count = 0
    if user is not None:
        open_count = db().scalar(select(func.count()).select_from(Escalation).where(Escalation.status == "open")) or 0
    s = settings()
    return {"staff": user, "open_escalations": open_count, "provider_problems": _provider_problems() if user else [],
            "service_problems": service_problems() if user else [],
            "no_alert_contacts": not (s.staff_alert_phones or s.staff_alert_emails)}


def service_problems() -> list[dict]:
    """With REDIS_URL: the worker, beat or the broker not running (reminders.heartbeats), a banner
    on every staff page. Read at most every few seconds per process (ServiceWatch)."""
    state = current_app.extensions["reminders.service_watch"].state()
    return state.problems() if state is not None else []


def _provider_problems() -> list[dict]:
    """Channels whose provider is failing and paused: a banner on every staff page (provider_banner)."""
    from reminders.web.staff.provider_banner import provider_banners

    return provider_banners(db(), request_now())


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return accounts.hasher.hash("not a password anyone has")


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute URL an attacker chose."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//") \
                and "\\" not in target:
            return target
    return url_for("today.index")


def throttle() -> Throttle:
    """The app's failure counts (made with the app: see reminders.web.create_app)."""
    return current_app.extensions["reminders.sign_in_throttle"]


def client_address() -> str:
    """The caller's address as the throttle counts it (ProxyFix has read X-Forwarded-For when
    TRUSTED_PROXY_HOPS is set). An IPv6 caller counts by its /64: one home or server has them all."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _account_key(kind: str, value: str) -> str:
    """A key for the failure counts that does not put the email itself in Redis."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def too_many_attempts(wait: int) -> str:
    return f"Too many attempts: try again in {wait} second{'s' if wait != 1 else ''}."


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_template("staff/login.html", email="", error=None, next=request.args.get("next", ""))

    email = request.form.get("email", "").strip().lower()[:254]
    password = request.form.get("password", "")
    next_target = request.form.get("next", "")
    session_db, now = db(), request_now()

    def refuse(message: str, status: int, headers: dict | None = None):
        return render_template("staff/login.html", email=email, error=message, next=next_target), status, headers or {}

    # Before the account is looked up: known and unknown emails take the same path to the same answers.
    address = client_address()
    account = _account_key("account", email)
    keys = (f"address:{address}", account, f"{account}:address:{address}")
    taken = throttle().take(SIGN_IN, request_now().timestamp(), keys, only_after_failures={account: keys[2]})
    if taken.wait is not None:
        log.info("sign-in attempt throttled for %s s", taken.wait)
        return refuse(too_many_attempts(taken.wait), 429, {"Retry-After": str(taken.wait)})

    user = session_db.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email)) if email else None
    known = user is not None and user.active
    if not password_matches(user if known else StaffUser(password_hash=_dummy_hash()), password) or not known:
        audit.record("login_failed", "staff_user", user.id if known else "", actor=email or "(blank)",
                     reason="wrong password" if known else "unknown or inactive account")
        for key, failures, what in zip(keys, taken.failures, ("address", "account")):
            if failures == SIGN_IN.free:  # the delays start with the next attempt
                audit.record("login_throttled", "staff_user", user.id if known else "", actor=email or "(blank)",
                             reason=f"{SIGN_IN.free} wrong passwords in a row for this {what}",
                             **({"address": address} if what == "address" else {}))
        session_db.commit()
        return refuse(WRONG, 401)

    # The right password: its attempt is no failure (the address's and the account's counts take it
    # back; this address's own count against the account is forgotten).
    throttle().forgive(SIGN_IN, keys[:2], clear=keys[2:])
    if accounts.hasher.check_needs_rehash(user.password_hash):
        user.password_hash = accounts.hasher.hash(password)
    # (failed_logins and locked_until are left from the lockout this replaced: cleared as before)
    if user.mfa_enabled:
        # The password is right; the session starts only after the code (login_code).
        session_db.commit()
        session.clear()
        session[PENDING_KEY] = {"user_id": user.id, "at": now.timestamp(), "next": next_target}
        return redirect(url_for("auth.login_code"))
    return _signed_in(user, now, next_target)


def _signed_in(user: StaffUser, now: datetime, next_target: str, **detail):
    session_db = db()
    session_db.execute(update(StaffUser).where(StaffUser.id == user.id)
                       .values(failed_logins=0, locked_until=None, last_login_at=now))
    audit.record("login", "staff_user", user.id, actor=user.email, **detail)
    session_db.commit()
    session_db.refresh(user)
    start_session(user, now)
    if user.must_change_password:
        return redirect(url_for("auth.change_password", next=next_target or None))
    if must_enrol(user):
        return redirect(url_for("auth.mfa_enrol"))
    return redirect(safe_next(next_target))


def _pending_user(now: datetime) -> tuple[StaffUser | None, str]:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or not isinstance(pending.get("user_id"), int):
        return None, ""
    if now.timestamp() - float(pending.get("at", 0)) > SECOND_STEP_MINUTES * 60:
        session.pop(PENDING_KEY, None)
        return None, ""
    user = db().get(StaffUser, pending["user_id"])
    if user is None or not user.active or not user.mfa_enabled:
        return None, ""
    return user, str(pending.get("next", ""))


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    now = request_now()
    user, next_target = _pending_user(now)
    if user is None:
        flash("Sign in again: the code page waits only a few minutes after the password.", "error")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("staff/login_code.html", error=None)
    key = f"second-step:user:{user.id}"
    taken = throttle().take(SECOND_STEP, request_now().timestamp(), [key])
    if taken.wait is not None:
        log.info("second sign-in step throttled for %s s", taken.wait)
        return render_template("staff/login_code.html", error=too_many_attempts(taken.wait)), 429, \
            {"Retry-After": str(taken.wait)}
    try:
        method = mfa.check(db(), user, mfa_key(), request.form.get("code", ""), now)
    except mfa.MfaError:
        log.warning("a two-step secret could not be read (staff user %s): SECRET_KEY changed?", user.id)
        method = None
    if method is None:
        db().rollback()
        audit.record("login_failed", "staff_user", user.id, actor=user.email, reason="wrong two-step code")
        db().commit()
        return render_template("staff/login_code.html", error=WRONG_CODE), 401
    throttle().forgive(SECOND_STEP, clear=[key])
    session.pop(PENDING_KEY, None)
    left = mfa.recovery_codes_left(db(), user.id) if method == "recovery" else None
    response = _signed_in(user, now, next_target, second_step=method,
                          **({"recovery_codes_left": left} if left is not None else {}))
    if method == "recovery":
        flash(f"You signed in with a recovery code: {left} left. Each works once; make new ones on the "
              "two-step sign-in page if you are running out.", "ok")
    return response


@bp.post("/logout")
def logout():
    user = current_user()
    if user is not None:
        revoke_sessions(db(), user.id, request_now(), only=session.get(SESSION_ID_KEY))
        audit.record("logout", "staff_user", user.id, actor=user.email)
        db().commit()
    session.clear()
    return redirect(url_for("auth.login"))
