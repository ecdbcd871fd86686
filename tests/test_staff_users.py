"""Staff accounts page (admins): create, deactivate, reactivate, unlock."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from reminders.models import AuditEntry, StaffUser
from tests.conftest import clock_now
from tests.fixtures.staff import PASSWORD, login, make_user, post_form


def user(sessions, email: str) -> StaffUser:
    with sessions() as session:
        return session.scalar(select(StaffUser).where(StaffUser.email == email))


def test_admin_creates_a_user_who_can_sign_in(app, admin_client, sessions):
    response = post_form(admin_client, "/admin/users", {"email": "New@Clinic.test", "role": "staff", "password": PASSWORD},
                         token_from="/admin/users")
    assert response.status_code == 302
    created = user(sessions, "new@clinic.test")
    assert created.role == "staff" and created.password_hash.startswith("$argon2")
    assert "new@clinic.test" in admin_client.get("/admin/users").text
    assert login(app.test_client(), "new@clinic.test").status_code == 302
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "create_user"))
        assert entry.actor == "admin@clinic.test" and entry.detail == {"email": "new@clinic.test", "role": "staff"}


def test_create_user_explains_what_is_wrong(admin_client):
    short = post_form(admin_client, "/admin/users", {"email": "a@clinic.test", "role": "staff", "password": "short"},
                      token_from="/admin/users")
    assert short.status_code == 422 and "at least 10 characters" in short.text
    again = post_form(admin_client, "/admin/users", {"email": "admin@clinic.test", "role": "admin", "password": PASSWORD},
                      token_from="/admin/users")
    assert again.status_code == 422 and "exists already" in again.text


def test_deactivate_reactivate_and_not_yourself(app, admin_client, sessions):
    other_id = make_user(sessions, "other@clinic.test")
    other = app.test_client()
    assert login(other, "other@clinic.test").status_code == 302
    post_form(admin_client, f"/admin/users/{other_id}/active", {"active": "0"}, token_from="/admin/users")
    assert user(sessions, "other@clinic.test").active is False
    assert other.get("/").status_code == 302  # signed out on the next request
    assert "deactivated" in admin_client.get("/admin/users").text
    post_form(admin_client, f"/admin/users/{other_id}/active", {"active": "1"}, token_from="/admin/users")
    assert user(sessions, "other@clinic.test").active is True

    me = user(sessions, "admin@clinic.test")
    refused = post_form(admin_client, f"/admin/users/{me.id}/active", {"active": "0"}, token_from="/admin/users",
                        follow_redirects=True)
    assert "cannot deactivate your own account" in refused.text
    assert user(sessions, "admin@clinic.test").active is True
    with sessions() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "staff_user")).all()
    assert "deactivate_user" in actions and "activate_user" in actions


def test_admin_unlocks_a_lock_left_from_before_and_it_keeps_nobody_out(app, admin_client, sessions):
    # Wrong passwords now slow a guesser down (tests/test_staff_auth.py): nothing locks an account.
    locked_id = make_user(sessions, "locked@clinic.test")
    with sessions() as session:
        session.get(StaffUser, locked_id).locked_until = clock_now() + timedelta(minutes=10)
        session.commit()
    assert "locked until" in admin_client.get("/admin/users").text
    post_form(admin_client, f"/admin/users/{locked_id}/unlock", token_from="/admin/users")
    assert user(sessions, "locked@clinic.test").locked_until is None
    with sessions() as session:
        session.get(StaffUser, locked_id).locked_until = clock_now() + timedelta(minutes=10)
        session.commit()
    assert login(app.test_client(), "locked@clinic.test").status_code == 302
    assert user(sessions, "locked@clinic.test").locked_until is None
