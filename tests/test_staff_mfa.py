"""Two-step sign-in: TOTP codes (computed here with pyotp from the enrolled secret, as a phone app
would) and one-time recovery codes; required for admins, and for staff with MFA_REQUIRED=true; an
admin resets another user's, and the audit log says so."""
from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, StaffUser
from tests.conftest import clock_now
from tests.fixtures.staff import csrf_token, login, make_user, mfa_code, mfa_secret, post_form

SECRET_ON_PAGE = re.compile(r'<code id="mfa-secret">([A-Z2-7]+)</code>')
RECOVERY_CODES = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


def password_step(client, email: str):
    return login(client, email, second_step=False)


def code_step(client, code: str):
    return client.post("/login/code", data={"code": code, "csrf_token": csrf_token(client, "/login/code")})


def actions(sessions) -> list[AuditEntry]:
    with sessions() as session:
        return session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()


def enrol_through_the_page(client) -> tuple[str, list[str]]:
    """Scan the QR code (read the key shown beside it), type the app's code: the recovery codes."""
    page = client.get("/account/mfa")
    assert page.status_code == 200 and "<svg" in page.text and "Set up two-step sign-in" in page.text
    secret = SECRET_ON_PAGE.search(page.text).group(1)
    done = post_form(client, "/account/mfa", {"code": pyotp.TOTP(secret).at(clock_now())}, token_from="/account/mfa")
    assert done.status_code == 200, done.text
    codes = RECOVERY_CODES.findall(done.text)
    assert len(codes) == 10 and "shown only now" in done.text
    return secret, codes


def test_sign_in_takes_the_password_then_a_code_from_the_authenticator_app(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    first = password_step(client, "admin@clinic.test")
    assert first.status_code == 302 and first.headers["Location"] == "/login/code"
    assert client.get("/").headers["Location"].startswith("/login")  # no session before the code
    assert "Enter the 6-digit code" in client.get("/login/code").text
    code = pyotp.TOTP(mfa_secret("admin@clinic.test")).at(clock_now())
    signed_in = code_step(client, code)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    login_row = [e for e in actions(sessions) if e.action == "login"][-1]
    assert login_row.actor == "admin@clinic.test" and login_row.detail == {"second_step": "totp"}


def test_a_wrong_code_is_refused_and_a_code_is_taken_only_once(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    password_step(client, "admin@clinic.test")
    right = pyotp.TOTP(mfa_secret("admin@clinic.test")).at(clock_now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = code_step(client, wrong)
    assert refused.status_code == 401 and "That code is not right" in refused.text
    assert client.get("/").headers["Location"].startswith("/login")
    assert code_step(client, right).status_code == 302
    # Someone who saw the code over the shoulder cannot use it again.
    other = app.test_client()
    password_step(other, "admin@clinic.test")
    assert code_step(other, right).status_code == 401
    failed = [e for e in actions(sessions) if e.action == "login_failed"]
    assert [e.detail["reason"] for e in failed] == ["wrong two-step code", "wrong two-step code"]


def test_the_code_page_is_no_way_round_the_password(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    assert client.get("/login/code").headers["Location"] == "/login"
    token = csrf_token(client)
    skipped = client.post("/login/code", data={"code": mfa_code("admin@clinic.test"), "csrf_token": token})
    assert skipped.status_code == 302 and skipped.headers["Location"] == "/login"
    assert client.get("/").headers["Location"].startswith("/login")
    assert login(client, "admin@clinic.test", "not the password").status_code == 401


def test_an_admin_without_mfa_is_sent_to_enrol_before_anything_else_and_a_recovery_code_works_once(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin", mfa=False)
    client = app.test_client()
    signed_in = login(client, "admin@clinic.test")
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/account/mfa"
    for path in ("/", "/admin/users", "/patients/", "/escalations/"):
        answer = client.get(path)
        assert answer.status_code == 302 and answer.headers["Location"] == "/account/mfa", path
    page = client.get("/account/mfa")
    assert "needs two-step sign-in" in page.text
    with sessions() as session:  # nothing stored until a code proves the app has the secret
        assert session.scalar(select(StaffUser)).mfa_secret is None
    wrong = post_form(client, "/account/mfa", {"code": "000000"}, token_from="/account/mfa")
    assert wrong.status_code == 422 and "That code is not right" in wrong.text

    secret, codes = enrol_through_the_page(client)
    assert client.get("/").status_code == 200 and client.get("/admin/users").status_code == 200
    with sessions() as session:
        stored = session.scalar(select(StaffUser))
        assert stored.mfa_enabled_at is not None and secret not in stored.mfa_secret  # encrypted
    assert "mfa_enrolled" in [e.action for e in actions(sessions)]
    assert "10 recovery codes left" in client.get("/account/mfa").text

    # A lost phone: a recovery code signs in, once.
    post_form(client, "/logout")
    again = app.test_client()
    password_step(again, "admin@clinic.test")
    used = code_step(again, codes[0].upper())
    assert used.status_code == 302 and again.get("/").status_code == 200
    assert "9 recovery codes left" in again.get("/account/mfa").text
    third = app.test_client()
    password_step(third, "admin@clinic.test")
    assert code_step(third, codes[0]).status_code == 401
    assert code_step(third, codes[1]).status_code == 302


def test_staff_sign_in_with_a_password_alone_unless_mfa_is_required(app, sessions):
    make_user(sessions, "nurse@clinic.test", "staff")
    client = app.test_client()
    assert login(client, "nurse@clinic.test").headers["Location"] == "/"
    assert client.get("/").status_code == 200


@pytest.fixture
def required_app(configure, settings, clock):
    from reminders.web import create_app

    return create_app(configure(MFA_REQUIRED="true"), {"TESTING": True, "CLOCK": clock})


def test_mfa_required_sends_staff_to_enrol_before_anything_else(required_app, sessions):
    make_user(sessions, "nurse@clinic.test", "staff")
    client = required_app.test_client()
    assert login(client, "nurse@clinic.test").headers["Location"] == "/account/mfa"
    assert client.get("/").headers["Location"] == "/account/mfa"
    assert client.get("/patients/").headers["Location"] == "/account/mfa"
    enrol_through_the_page(client)
    assert client.get("/").status_code == 200
    # From now on the password alone is not enough.
    other = required_app.test_client()
    assert password_step(other, "nurse@clinic.test").headers["Location"] == "/login/code"
    assert code_step(other, mfa_code("nurse@clinic.test")).status_code == 302


def test_an_admin_resets_another_users_mfa_and_the_audit_log_says_so(app, admin_client, sessions):
    other_id = make_user(sessions, "second@clinic.test", "admin")
    other = app.test_client()
    assert login(other, "second@clinic.test").status_code == 302 and other.get("/").status_code == 200

    users = admin_client.get("/admin/users").text
    assert f'/admin/users/{other_id}/reset-mfa' in users
    with sessions() as session:
        me = session.scalar(select(StaffUser).where(StaffUser.email == "admin@clinic.test"))
    assert f"/admin/users/{me.id}/reset-mfa" not in users  # not one's own

    forged = admin_client.post(f"/admin/users/{other_id}/reset-mfa")  # no CSRF token
    assert forged.status_code == 400
    done = post_form(admin_client, f"/admin/users/{other_id}/reset-mfa", token_from="/admin/users")
    assert done.status_code == 302
    assert "Two-step sign-in reset for second@clinic.test" in admin_client.get("/admin/users").text

    assert other.get("/").headers["Location"].startswith("/login")  # signed out at once
    again = app.test_client()
    assert login(again, "second@clinic.test").headers["Location"] == "/account/mfa"  # enrols again
    entry = [e for e in actions(sessions) if e.action == "reset_mfa"][-1]
    assert entry.actor == "admin@clinic.test" and entry.target_type == "staff_user"
    assert entry.target_id == str(other_id) and entry.detail["email"] == "second@clinic.test"
    audit_page = admin_client.get("/admin/audit").text
    assert "Reset a user&#39;s two-step sign-in" in audit_page or "Reset a user's two-step sign-in" in audit_page


def test_a_staff_user_cannot_reset_mfa(app, staff_client, sessions):
    other_id = make_user(sessions, "boss@clinic.test", "admin")
    answer = staff_client.post(f"/admin/users/{other_id}/reset-mfa",
                               data={"csrf_token": csrf_token(staff_client, "/")})
    assert answer.status_code == 403
    with sessions() as session:
        assert session.get(StaffUser, other_id).mfa_enabled


def test_the_code_step_slows_down_a_guesser(app, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    client = app.test_client()
    password_step(client, "admin@clinic.test")
    answers = [code_step(client, "000000").status_code for _ in range(7)]
    assert answers[:5] == [401] * 5 and 429 in answers[5:]


def test_the_command_line_resets_a_users_mfa(settings, sessions):
    import os
    import subprocess
    import sys
    from pathlib import Path

    make_user(sessions, "lost-phone@clinic.test", "admin")
    done = subprocess.run([sys.executable, "-m", "reminders.cli", "user", "reset-mfa", "--email", "Lost-Phone@clinic.test"],
                          cwd=Path(__file__).resolve().parent.parent, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "two-step sign-in reset for lost-phone@clinic.test" in done.stdout, done.stderr
    with sessions() as session:
        assert not session.scalar(select(StaffUser)).mfa_enabled
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "reset_mfa"))
        assert entry.actor == "(command line)" and entry.detail == {"email": "lost-phone@clinic.test"}
