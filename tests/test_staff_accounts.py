"""Accounts: an admin changes a role and resets a password (in the UI and on the command line); the
user then chooses their own at sign-in; a form sent after the session ended leads back to it."""
from __future__ import annotations

import re

from click.testing import CliRunner
from sqlalchemy import select

from reminders.models import AuditEntry, StaffUser
from tests.fixtures.staff import PASSWORD, csrf_token, login, make_user, post_form

NEW_PASSWORD = "my own choice 42"


def user(sessions, email: str) -> StaffUser:
    with sessions() as session:
        return session.scalar(select(StaffUser).where(StaffUser.email == email))


def actions(sessions, action: str) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def choose_password(client, given: str, new: str = NEW_PASSWORD, confirm: str | None = None):
    return post_form(client, "/account/password", {"current_password": given, "new_password": new,
                                                   "confirm_password": new if confirm is None else confirm},
                     token_from="/account/password")


# --- Roles ---------------------------------------------------------------------------------------

def test_an_admin_changes_a_role_and_it_is_audited(app, admin_client, sessions):
    nurse_id = make_user(sessions, "nurse@clinic.test")
    page = admin_client.get("/admin/users").text
    assert 'aria-label="Change role of nurse@clinic.test"' in page
    assert f'<label class="sr-only" for="role-{nurse_id}">Role of nurse@clinic.test</label>' in page
    done = post_form(admin_client, f"/admin/users/{nurse_id}/role", {"role": "admin"}, token_from="/admin/users",
                     follow_redirects=True)
    assert "nurse@clinic.test is now admin." in done.text
    assert user(sessions, "nurse@clinic.test").role == "admin"
    entry = actions(sessions, "change_role")[0]
    assert entry.actor == "admin@clinic.test" and entry.detail == {"email": "nurse@clinic.test", "role": "admin",
                                                                   "from_role": "staff"}
    assert "Changed a staff account&#39;s role" in admin_client.get("/admin/audit").text


def test_the_last_admin_keeps_the_role(admin_client, sessions):
    me = user(sessions, "admin@clinic.test")
    refused = post_form(admin_client, f"/admin/users/{me.id}/role", {"role": "staff"}, token_from="/admin/users",
                        follow_redirects=True)
    assert "Role not changed: admin@clinic.test is the only admin: make another account admin first." in refused.text
    assert user(sessions, "admin@clinic.test").role == "admin"
    assert actions(sessions, "change_role") == []


def test_staff_cannot_change_roles_or_reset_passwords(staff_client, sessions):
    boss = make_user(sessions, "boss@clinic.test", "admin")
    token = csrf_token(staff_client, "/")
    assert staff_client.post(f"/admin/users/{boss}/role", data={"role": "staff", "csrf_token": token}).status_code == 403
    assert staff_client.post(f"/admin/users/{boss}/password", data={"csrf_token": token}).status_code == 403


# --- Password reset ------------------------------------------------------------------------------

def test_a_reset_shows_a_temporary_password_once_and_the_user_must_choose_their_own(app, admin_client, sessions):
    nurse_id = make_user(sessions, "nurse@clinic.test")
    nurse = app.test_client()
    assert login(nurse, "nurse@clinic.test").status_code == 302
    response = post_form(admin_client, f"/admin/users/{nurse_id}/password", {"password": ""}, token_from="/admin/users")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    given = re.search(r'<code class="temporary-password">([a-z0-9-]+)</code>', response.text).group(1)
    assert len(given) == 19 and "Tell it to them in person" in response.text
    assert given not in admin_client.get("/admin/users").text  # shown once
    assert nurse.get("/").headers["Location"].startswith("/login")  # signed out everywhere
    assert login(app.test_client(), "nurse@clinic.test", PASSWORD).status_code == 401  # the old one is gone

    fresh = app.test_client()
    signed_in = login(fresh, "nurse@clinic.test", given)
    assert signed_in.status_code == 302 and signed_in.headers["Location"].startswith("/account/password")
    assert fresh.get("/patients/").headers["Location"] == "/account/password"  # nothing else until then
    form = fresh.get("/account/password").text
    assert "Choose a new password" in form and "An admin reset your password" in form
    assert "The password you were given" in form
    same = choose_password(fresh, given, given)
    assert same.status_code == 422 and "Choose a password of your own" in same.text
    assert choose_password(fresh, given).status_code == 302
    assert fresh.get("/patients/").status_code == 200
    assert user(sessions, "nurse@clinic.test").must_change_password is False
    assert login(app.test_client(), "nurse@clinic.test", NEW_PASSWORD).headers["Location"] == "/"

    reset = actions(sessions, "reset_password")[0]
    assert reset.detail["how"] == "temporary password generated" and given not in str(reset.detail)
    assert actions(sessions, "forced_password_change")[0].actor == "nurse@clinic.test"


def test_an_admin_may_type_the_new_password_but_not_a_short_one(app, admin_client, sessions):
    nurse_id = make_user(sessions, "nurse@clinic.test")
    short = post_form(admin_client, f"/admin/users/{nurse_id}/password", {"password": "short"}, token_from="/admin/users",
                      follow_redirects=True)
    assert "Password not reset: the password must be at least 10 characters." in short.text
    typed = post_form(admin_client, f"/admin/users/{nurse_id}/password", {"password": "typed by the admin"},
                      token_from="/admin/users")
    assert typed.status_code == 200 and "temporary-password" not in typed.text
    assert "sign in with the password you typed" in typed.text
    assert login(app.test_client(), "nurse@clinic.test", "typed by the admin").headers["Location"].startswith(
        "/account/password")


def test_an_admin_resets_their_own_password_only_the_usual_way(admin_client, sessions):
    me = user(sessions, "admin@clinic.test")
    assert f"/admin/users/{me.id}/password" not in admin_client.get("/admin/users").text
    refused = post_form(admin_client, f"/admin/users/{me.id}/password", token_from="/admin/users", follow_redirects=True)
    assert "Change your own password" in refused.text
    assert user(sessions, "admin@clinic.test").must_change_password is False


# --- The command line ----------------------------------------------------------------------------

def test_the_command_line_resets_a_password_and_sets_a_role(app, sessions, settings):
    from reminders.cli import main

    make_user(sessions, "admin@clinic.test", "admin")
    make_user(sessions, "nurse@clinic.test")
    runner = CliRunner()
    reset = runner.invoke(main, ["user", "reset-password", "Nurse@clinic.test"])
    assert reset.exit_code == 0, reset.output
    given = re.search(r"sign-in\): (\S+)", reset.output).group(1)
    assert user(sessions, "nurse@clinic.test").must_change_password is True
    assert login(app.test_client(), "nurse@clinic.test", given).headers["Location"].startswith("/account/password")

    typed = runner.invoke(main, ["user", "reset-password", "--email", "nurse@clinic.test", "--password-stdin"],
                          input="from standard input\n")
    assert typed.exit_code == 0 and "from standard input" not in typed.output

    promoted = runner.invoke(main, ["user", "set-role", "nurse@clinic.test", "admin"])
    assert promoted.exit_code == 0 and "nurse@clinic.test is now admin" in promoted.output
    runner.invoke(main, ["user", "set-role", "nurse@clinic.test", "staff"])
    last = runner.invoke(main, ["user", "set-role", "admin@clinic.test", "staff"])
    assert last.exit_code == 1 and "the only admin" in last.output
    unknown = runner.invoke(main, ["user", "set-role", "nobody@clinic.test", "admin"])
    assert unknown.exit_code == 1 and "no staff account nobody@clinic.test" in unknown.output
    with sessions() as session:
        done = session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "(command line)")).all()
    assert done == ["reset_password", "reset_password", "change_role", "change_role"]


# --- A form sent after the session ended --------------------------------------------------------

def test_a_form_sent_after_signing_out_elsewhere_leads_back_to_its_page(app, staff_client, sessions):
    from tests.fixtures.staff import add_patient

    with sessions() as session:
        patient = add_patient(session)
    page = f"/patients/{patient.id}/visits/new"
    token = csrf_token(staff_client, page)
    other = app.test_client()
    login(other, "staff@clinic.test")
    post_form(other, "/logout")  # ... ends only that one; end them all, as a password change does:
    with sessions() as session:
        from reminders.models import StaffSession
        for row in session.scalars(select(StaffSession)):
            row.revoked_at = row.created_at
        session.commit()
    sent = staff_client.post(page, data={"kind": "induction", "date": "2026-12-10", "time": "10:00",
                                         "csrf_token": token}, headers={"Referer": f"http://localhost{page}"})
    assert sent.status_code == 302 and sent.headers["Location"] == f"/login?next=/patients/{patient.id}/visits/new"
    sign_in = staff_client.get(sent.headers["Location"]).text
    assert "Your session ended before this was sent, so nothing was saved." in sign_in


def test_a_form_whose_cookie_ran_out_leads_to_sign_in_not_an_error(app, sessions):
    from tests.fixtures.staff import add_patient

    with sessions() as session:
        patient = add_patient(session)
    page = f"/patients/{patient.id}/visits/new"
    stranger = app.test_client()  # no cookie at all: the session and its form token are gone
    sent = stranger.post(page, data={"kind": "induction", "csrf_token": "stale"},
                         headers={"Referer": f"http://localhost{page}"})
    assert sent.status_code == 302 and sent.headers["Location"] == f"/login?next=/patients/{patient.id}/visits/new"
    elsewhere = stranger.post(page, data={"csrf_token": "stale"}, headers={"Referer": "https://evil.example/x"})
    assert elsewhere.headers["Location"] == "/login"
