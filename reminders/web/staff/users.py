"""Staff accounts (admins): list, create, deactivate or reactivate, unlock after a lockout, reset
another user's two-step sign-in (they are signed out and enrol again), change a role, and reset a
password (a temporary one shown once, or one typed; the user chooses their own at next sign-in)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from reminders import mfa
from reminders.accounts import MIN_PASSWORD_LENGTH, AccountError, change_role, create_user, reset_password
from reminders.locations import set_staff_locations
from reminders.models import StaffUser, staff_user_locations
from reminders.models.staff import ROLES
from reminders.web.context import db, found, request_now, settings
from reminders.web.staff import audit, location_filter
from reminders.web.staff.auth import current_user, guard, revoke_sessions

bp = Blueprint("users", __name__, url_prefix="/admin")
guard(bp, admin=True)
AUDIT_PAGE = 200


def _users():
    return db().scalars(select(StaffUser).order_by(StaffUser.active.desc(), func.lower(StaffUser.email))).all()


def _works_at() -> dict[int, set[int]]:
    """Each user's locations (a user not listed works at every location)."""
    found: dict[int, set[int]] = {}
    for user_id, location_id in db().execute(select(staff_user_locations.c.user_id,
                                                    staff_user_locations.c.location_id)):
        found.setdefault(user_id, set()).add(location_id)
    return found


def _page(error: str | None = None, values: dict | None = None, status: int = 200, handed_over: dict | None = None):
    book = location_filter.book()
    page = render_template("staff/users.html", users=_users(), roles=ROLES, error=error,
                           values=values or {"email": "", "role": "staff"}, min_length=MIN_PASSWORD_LENGTH,
                           now=request_now(), mfa_required=settings().mfa_required, handed_over=handed_over,
                           places=book.choices(active_only=False) if book.several else [],
                           works_at=_works_at() if book.several else {})
    # A temporary password is shown once: never kept by the browser's cache.
    return page, status, {"Cache-Control": "no-store"} if handed_over else {}


@bp.get("/users")
def index():
    return _page()


@bp.post("/users")
def create():
    values = {"email": request.form.get("email", "").strip(), "role": request.form.get("role", "staff")}
    try:
        user = create_user(db(), values["email"], values["role"], request.form.get("password", ""))
    except AccountError as exc:
        db().rollback()
        return _page(str(exc), values, 422)
    audit.record("create_user", "staff_user", user.id, email=user.email, role=user.role)
    db().commit()
    flash(f"{user.email} can now sign in as {user.role}.", "ok")
    return redirect(url_for(".index"))


def _get(user_id: int) -> StaffUser:
    return found(StaffUser, user_id)


@bp.post("/users/<int:user_id>/active")
def set_active(user_id: int):
    user = _get(user_id)
    active = request.form.get("active") == "1"
    if user.id == current_user().id and not active:
        flash("You cannot deactivate your own account.", "error")
        return redirect(url_for(".index"))
    if user.active != active:
        user.active = active
        if not active:
            revoke_sessions(db(), user.id, request_now())
        audit.record("activate_user" if active else "deactivate_user", "staff_user", user.id, email=user.email)
        db().commit()
        flash(f"{user.email} {'reactivated' if active else 'deactivated: they are signed out and cannot sign in'}.",
              "ok")
    return redirect(url_for(".index"))


@bp.post("/users/<int:user_id>/unlock")
def unlock(user_id: int):
    user = _get(user_id)
    user.locked_until, user.failed_logins = None, 0
    audit.record("unlock_user", "staff_user", user.id, email=user.email)
    db().commit()
    flash(f"{user.email} is unlocked.", "ok")
    return redirect(url_for(".index"))


@bp.post("/users/<int:user_id>/reset-mfa")
def reset_mfa(user_id: int):
    """Another user's two-step sign-in off (a lost phone): their sessions end; if it is required for
    them, they set it up again at their next sign-in."""
    user = _get(user_id)
    if user.id == current_user().id:
        flash("You cannot reset your own two-step sign-in: ask another admin.", "error")
        return redirect(url_for(".index"))
    if not mfa.reset(db(), user):
        db().rollback()
        flash(f"{user.email} has no two-step sign-in to reset.", "error")
        return redirect(url_for(".index"))
    ended = revoke_sessions(db(), user.id, request_now())
    audit.record("reset_mfa", "staff_user", user.id, email=user.email, sessions_ended=ended)
    db().commit()
    flash(f"Two-step sign-in reset for {user.email}: they are signed out and set it up again at their next "
          "sign-in.", "ok")
    return redirect(url_for(".index"))


@bp.post("/users/<int:user_id>/role")
def set_role(user_id: int):
    user = _get(user_id)
    before, wanted = user.role, request.form.get("role", "")
    try:
        changed = change_role(db(), user, wanted)
    except AccountError as exc:
        db().rollback()
        flash(f"Role not changed: {exc}.", "error")
        return redirect(url_for(".index"))
    if changed:
        audit.record("change_role", "staff_user", user.id, email=user.email, role=user.role, from_role=before)
        db().commit()
        flash(f"{user.email} is now {user.role}.", "ok")
    if user.id == current_user().id and user.role != "admin":
        return redirect(url_for("today.index"))
    return redirect(url_for(".index"))


@bp.post("/users/<int:user_id>/password")
def reset_user_password(user_id: int):
    """A new password for someone who forgot theirs: typed by the admin, or generated and shown
    once. Their sessions end; at their next sign-in they must choose their own."""
    user = _get(user_id)
    if user.id == current_user().id:
        flash("Change your own password from “Change password”.", "error")
        return redirect(url_for(".index"))
    typed = request.form.get("password", "")
    try:
        given = reset_password(db(), user, typed or None)
    except AccountError as exc:
        db().rollback()
        flash(f"Password not reset: {exc}.", "error")
        return redirect(url_for(".index"))
    ended = revoke_sessions(db(), user.id, request_now())
    audit.record("reset_password", "staff_user", user.id, email=user.email, sessions_ended=ended,
                 how="typed by the admin" if typed else "temporary password generated")
    db().commit()
    return _page(handed_over={"email": user.email, "password": None if typed else given})


@bp.post("/users/<int:user_id>/locations")
def set_locations(user_id: int):
    """The locations a user works at: they see those locations' visits, inbox and escalations (and
    the default location's); none ticked: every location."""
    user = _get(user_id)
    places = {place.id: place for place in location_filter.book().choices(active_only=False)}
    chosen = sorted({int(v) for v in request.form.getlist("location") if v.isdigit() and int(v) in places})
    set_staff_locations(db(), user.id, chosen)
    names = ", ".join(places[i].name for i in chosen) or "every location"
    audit.record("set_staff_locations", "staff_user", user.id, email=user.email, locations=names)
    db().commit()
    flash(f"{user.email} works at {names}." if chosen else f"{user.email} works at every location.", "ok")
    return redirect(url_for(".index") + f"#user-{user.id}")


@bp.get("/audit")
def audit_log():
    return audit.log_page(AUDIT_PAGE)
