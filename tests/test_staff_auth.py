"""Sign-in, sessions, lockout, CSRF, and who may open which staff page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, StaffUser, utcnow
from tests.fixtures.staff import (
    PASSWORD, add_escalation, add_inbound, add_patient, add_visit, csrf_token, login, make_user, post_form,
)

TEMPLATE = "induction_24h.sms.j2"


@pytest.fixture
def seeded(sessions):
    """One of everything, so that every page with an id in its path has something to show."""
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", utcnow() + timedelta(days=2))
        escalation = add_escalation(session, patient)
        message = add_inbound(session, patient, "can we talk about the dose")
        return {"patient": patient.id, "visit": visit.id, "escalation": escalation.id, "message": message.id,
                "course": visit.course_id}


def staff_pages(ids):
    return [
        "/", "/escalations/", "/inbox/", "/patients/", f"/patients/{ids['patient']}",
        f"/patients/{ids['patient']}/checkins.csv", "/patients/new", f"/patients/{ids['patient']}/edit",
        f"/patients/{ids['patient']}/visits/new", f"/visits/{ids['visit']}/edit", "/visits/import",
    ]


ADMIN_PAGES = ["/admin/templates/", f"/admin/templates/{TEMPLATE}", "/admin/users", "/admin/audit"]


def admin_posts(ids):
    return [
        f"/admin/templates/{TEMPLATE}", f"/admin/templates/{TEMPLATE}/reset", f"/admin/templates/{TEMPLATE}/versions/1/restore",
        "/admin/users", "/admin/users/1/active", "/admin/users/1/unlock",
    ]


def staff_posts(ids):
    return [
        "/logout", f"/escalations/{ids['escalation']}/acknowledge", f"/inbox/{ids['message']}/done",
        "/patients/new", f"/patients/{ids['patient']}/edit", f"/patients/{ids['patient']}/visits/new",
        f"/visits/{ids['visit']}/edit", f"/visits/{ids['visit']}/status", f"/courses/{ids['course']}/series",
        "/visits/import",
    ]


def test_every_page_sends_a_visitor_without_a_session_to_sign_in(client, seeded):
    for path in staff_pages(seeded) + ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path


def test_login_page_is_open_and_carries_a_csrf_token(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="csrf_token"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_staff_user_opens_staff_pages_but_gets_403_on_admin_pages(staff_client, seeded):
    for path in staff_pages(seeded):
        assert staff_client.get(path).status_code == 200, path
    for path in ADMIN_PAGES:
        assert staff_client.get(path).status_code == 403, path
    for path in admin_posts(seeded):
        assert post_form(staff_client, path).status_code == 403, path
    preview = staff_client.post(f"/admin/templates/{TEMPLATE}/preview", json={"source": "hi"},
                                headers={"X-CSRFToken": csrf_token(staff_client, "/")})
    assert preview.status_code == 403


def test_admin_opens_admin_pages(admin_client, seeded):
    for path in ADMIN_PAGES:
        assert admin_client.get(path).status_code == 200, path


def test_preview_without_a_session_answers_401_json(client):
    response = client.post(f"/admin/templates/{TEMPLATE}/preview", json={"source": "hi"},
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 401
    assert response.get_json() == {"error": "sign in first"}


def test_forms_without_a_csrf_token_fail(app, admin_client, seeded):
    app.config["WTF_CSRF_ENABLED"] = True  # the default; said out loud because this test is about it
    for path in staff_posts(seeded) + admin_posts(seeded):
        response = admin_client.post(path, data={"note": "x", "status": "canceled", "source": "hi"})
        assert response.status_code == 400, path
        assert "security token" in response.text
    preview = admin_client.post(f"/admin/templates/{TEMPLATE}/preview", json={"source": "hi"})
    assert preview.status_code == 400
    wrong = admin_client.post("/inbox/1/done", data={"csrf_token": "forged"})
    assert wrong.status_code == 400


def test_sign_in_without_a_csrf_token_fails(app, client, sessions):
    app.config["WTF_CSRF_ENABLED"] = True
    make_user(sessions, "a@clinic.test")
    response = client.post("/login", data={"email": "a@clinic.test", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_sign_in_starts_a_fresh_session_and_records_it(client, sessions):
    make_user(sessions, "a@clinic.test")
    with client.session_transaction() as planted:
        planted["staff_id"] = 999
        planted["planted"] = "by an attacker"
    token = csrf_token(client)
    response = client.post("/login", data={"email": "A@Clinic.test ", "password": PASSWORD, "csrf_token": token,
                                           "next": "/inbox/"})
    assert response.status_code == 302 and response.headers["Location"] == "/inbox/"
    with client.session_transaction() as current:
        assert "planted" not in current
        assert isinstance(current["staff_id"], int) and current["staff_id"] != 999
        assert current.get("csrf_token") is None or current["csrf_token"] != token
    assert client.get("/").status_code == 200
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"
    assert timedelta(hours=11) < cookie.expires - utcnow() <= timedelta(hours=12)  # a shift, not 31 days
    with sessions() as session:
        user = session.scalar(select(StaffUser))
        assert user.last_login_at is not None
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "login")).actor == "a@clinic.test"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(client, sessions, target):
    make_user(sessions, "a@clinic.test")
    response = client.post("/login", data={"email": "a@clinic.test", "password": PASSWORD,
                                           "csrf_token": csrf_token(client), "next": target})
    assert response.headers["Location"] == "/"


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(client, sessions):
    user_id = make_user(sessions, "a@clinic.test")
    for attempt in range(1, 5):
        response = login(client, "a@clinic.test", "wrong password")
        assert response.status_code == 401
        assert f"{5 - attempt} more" in response.text
    fifth = login(client, "a@clinic.test", "wrong password")
    assert fifth.status_code == 429
    assert "locked for 15 more minutes" in fifth.text
    refused = login(client, "a@clinic.test", PASSWORD)  # even the right password, while locked
    assert refused.status_code == 429
    assert client.get("/").status_code == 302
    with sessions() as session:
        user = session.get(StaffUser, user_id)
        assert user.locked_until - utcnow() > timedelta(minutes=14)
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions.count("login_failed") == 4
        assert "account_locked" in actions and "login_refused_locked" in actions
        user.locked_until = utcnow() - timedelta(seconds=1)  # fifteen minutes later
        session.commit()
    assert login(client, "a@clinic.test", PASSWORD).status_code == 302
    with sessions() as session:
        user = session.get(StaffUser, user_id)
        assert user.failed_logins == 0 and user.locked_until is None


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client, sessions):
    make_user(sessions, "a@clinic.test")
    unknown = login(client, "nobody@clinic.test", PASSWORD)
    wrong = login(client, "a@clinic.test", "nope nope nope")
    assert unknown.status_code == wrong.status_code == 401
    assert "do not match an active account" in unknown.text and "do not match an active account" in wrong.text


def test_sign_out_ends_the_session(admin_client):
    assert admin_client.get("/").status_code == 200
    response = post_form(admin_client, "/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert admin_client.get("/").status_code == 302


def test_a_deactivated_account_is_signed_out_and_cannot_sign_in(client, sessions):
    user_id = make_user(sessions, "a@clinic.test")
    assert login(client, "a@clinic.test").status_code == 302
    with sessions() as session:
        session.get(StaffUser, user_id).active = False
        session.commit()
    assert client.get("/").status_code == 302
    assert login(client, "a@clinic.test").status_code == 401
