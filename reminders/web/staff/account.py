"""The signed-in user's own account: changing the password, and turning on two-step sign-in.

Both pages belong to the sign-in blueprint (auth): they are open to a user who must change the
password or enrol before anything else. Changing one's password is throttled per account like the
sign-in (reminders.web.staff.auth), and ends every other session of the user.
"""
from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, session, url_for

from reminders import mfa
from reminders.accounts import AccountError, password_matches, set_password
from reminders.models import StaffUser
from reminders.web.context import db, request_now, settings
from reminders.web.rate_limits import Backoff
from reminders.web.staff import audit
from reminders.web.staff.auth import (
    bp, current_user, mfa_key, must_enrol, revoke_sessions, safe_next, start_session, throttle, too_many_attempts,
)

log = logging.getLogger(__name__)

PASSWORD_CHANGE = Backoff("password-change", free=5, window=15 * 60, first_delay=1, max_delay=60)
PENDING_ENROL_KEY = "mfa_enrol_secret"  # the secret being enrolled (encrypted), until a code proves it


@bp.route("/account/mfa", methods=["GET", "POST"])
def mfa_enrol():
    """Turn on two-step sign-in: scan the QR code, prove it with a code, note the recovery codes
    (shown this once). With it on: how many recovery codes are left, and new ones."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("auth.mfa_enrol")))
    now, key = request_now(), mfa_key()
    if user.mfa_enabled:
        if request.method == "POST" and request.form.get("action") == "new_codes":
            if mfa.check(db(), user, key, request.form.get("code", ""), now) != "totp":
                db().rollback()
                return _enrolled_page(user, error="That code is not right: use the newest code from your app."), 422
            codes = mfa.replace_recovery_codes(db(), user, now)
            audit.record("mfa_new_recovery_codes", "staff_user", user.id)
            db().commit()
            return render_template("staff/mfa_codes.html", codes=codes)
        return _enrolled_page(user)
    secret = None
    token = session.get(PENDING_ENROL_KEY)
    if isinstance(token, str):
        try:
            secret = mfa.decrypt_secret(key, token)
        except mfa.MfaError:
            secret = None
    if secret is None or request.method == "GET" and request.args.get("fresh"):
        secret = mfa.new_secret()
        session[PENDING_ENROL_KEY] = mfa.encrypt_secret(key, secret)
    error = None
    if request.method == "POST":
        try:
            codes = mfa.enable(db(), user, key, secret, request.form.get("code", ""), now)
        except mfa.MfaError as exc:
            db().rollback()
            error = str(exc)
        else:
            audit.record("mfa_enrolled", "staff_user", user.id)
            db().commit()
            session.pop(PENDING_ENROL_KEY, None)
            return render_template("staff/mfa_codes.html", codes=codes)
    uri = mfa.provisioning_uri(secret, user.email, settings().clinic_name)
    return render_template("staff/mfa_enrol.html", qr=mfa.qr_svg(uri), secret=secret, error=error,
                           required=mfa.required_for(user, settings())), 422 if error else 200


def _enrolled_page(user: StaffUser, error: str | None = None):
    return render_template("staff/mfa_status.html", user=user, left=mfa.recovery_codes_left(db(), user.id),
                           error=error)


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Any signed-in user changes their own password; every session of theirs ends, this one restarts."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("auth.change_password")))
    forced = user.must_change_password
    next_target = request.values.get("next", "")
    if request.method == "GET":
        return render_template("staff/password.html", error=None, forced=forced, next=next_target)
    current, new = request.form.get("current_password", ""), request.form.get("new_password", "")
    key = f"user:{user.id}"
    taken = throttle().take(PASSWORD_CHANGE, request_now().timestamp(), [key])
    if taken.wait is not None:
        log.info("password change throttled for %s s", taken.wait)
        return render_template("staff/password.html", error=too_many_attempts(taken.wait), forced=forced,
                               next=next_target), 429, {"Retry-After": str(taken.wait)}
    error = None
    if not password_matches(user, current):
        error = "The current password is not right."
    else:
        throttle().forgive(PASSWORD_CHANGE, clear=[key])  # whoever knows the password is no guesser
        if new != request.form.get("confirm_password", ""):
            error = "The two new passwords are not the same."
        elif forced and new == current:
            error = "Choose a password of your own, not the one you were given."
        else:
            try:
                set_password(db(), user, new)
            except AccountError as exc:
                error = str(exc)
    if error:
        db().rollback()
        return render_template("staff/password.html", error=error, forced=forced, next=next_target), 422
    now = request_now()
    ended = revoke_sessions(db(), user.id, now)
    audit.record("forced_password_change" if forced else "change_password", "staff_user", user.id,
                 actor=user.email, sessions_ended=ended)
    db().commit()
    start_session(user, now)
    if forced:
        flash("Password changed: from now on, sign in with the one you chose.", "ok")
        if must_enrol(user):
            return redirect(url_for("auth.mfa_enrol"))
        return redirect(safe_next(next_target))
    flash("Password changed. Every other browser signed in as you has been signed out.", "ok")
    return redirect(url_for("today.index"))
