"""Sign-in, sessions, throttling of wrong passwords, CSRF, and who may open which staff page."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, StaffUser, utcnow
from tests.conftest import REDIS_URL
from tests.fixtures.staff import (
    PASSWORD, add_escalation, add_inbound, add_patient, add_visit, csrf_token, login, make_user, post_form,
)

TEMPLATE = "induction_24h.sms.j2"


@pytest.fixture
def seeded(sessions, clock):
    """One of everything, so that every page with an id in its path has something to show."""
    with sessions() as session:
        patient = add_patient(session)
        visit = add_visit(session, patient, "v1", clock.now + timedelta(days=2))
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


def browser(app, address: str):
    """A browser at its own address (the throttle counts per address)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def said(response) -> str:
    """The sentence the sign-in page shows."""
    found = re.search(r'id="login-error">([^<]*)<', response.text)
    return found.group(1) if found else ""


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(app, sessions):
    make_user(sessions, "a@clinic.test")
    make_user(sessions, "gone@clinic.test")
    with sessions() as session:
        session.scalar(select(StaffUser).where(StaffUser.email == "gone@clinic.test")).active = False
        session.commit()
    emails = ("a@clinic.test", "nobody@clinic.test", "gone@clinic.test", "")
    browsers = [browser(app, f"203.0.113.{n}") for n in range(len(emails))]
    for attempt in range(5):  # the answer does not change as the tries go by
        answers = [login(each, email, "nope nope nope") for each, email in zip(browsers, emails)]
        assert {a.status_code for a in answers} == {401}, attempt
        assert {said(a) for a in answers} == {"That email and password do not match an active account."}
        assert not any(word in a.text for a in answers for word in ("tries", "try ", "locked"))


def test_after_five_wrong_passwords_each_attempt_waits_twice_as_long_up_to_a_minute(app, clock, sessions):
    make_user(sessions, "a@clinic.test")
    guesser = browser(app, "203.0.113.9")
    for _ in range(5):
        assert login(guesser, "a@clinic.test", "wrong password").status_code == 401
    waits = []
    for _ in range(9):
        refused = login(guesser, "a@clinic.test", PASSWORD)  # even the right password, before the wait is over
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert said(refused) == f"Too many attempts: try again in {wait} second{'s' if wait > 1 else ''}."
        waits.append(wait)
        clock.advance(seconds=wait - 0.5)
        assert login(guesser, "a@clinic.test", "wrong password").status_code == 429  # not yet
        clock.advance(seconds=0.5)
        assert login(guesser, "a@clinic.test", "wrong password").status_code == 401  # heard, and wrong
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    clock.advance(seconds=60)
    assert login(guesser, "a@clinic.test", PASSWORD).status_code == 302  # a delay, never a lock
    with sessions() as session:
        user = session.scalar(select(StaffUser))
        assert user.locked_until is None
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions.count("login_failed") == 14 and actions.count("login_throttled") == 2  # address, account
        assert actions[-1] == "login"


def test_a_throttled_unknown_email_gets_the_same_answer_as_a_throttled_account(app, clock, sessions):
    make_user(sessions, "a@clinic.test")
    known, unknown = browser(app, "203.0.113.1"), browser(app, "203.0.113.2")
    for _ in range(5):
        assert login(known, "a@clinic.test", "wrong password").status_code == 401
        assert login(unknown, "nobody@clinic.test", "wrong password").status_code == 401
    first, second = login(known, "a@clinic.test", "wrong password"), login(unknown, "nobody@clinic.test", "x")
    assert first.status_code == second.status_code == 429
    assert said(first) == said(second) == "Too many attempts: try again in 1 second."
    assert first.headers["Retry-After"] == second.headers["Retry-After"] == "1"


def test_hammering_an_admin_from_other_addresses_never_keeps_the_right_password_out(app, clock, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    attackers = [browser(app, f"198.51.100.{n}") for n in range(1, 11)]
    for round_ in range(3):
        for attacker in attackers:
            login(attacker, "admin@clinic.test", f"guess {round_}")
        clock.advance(seconds=1)
    assert login(attackers[0], "admin@clinic.test", PASSWORD).status_code == 429  # no more checks for them
    # The admin at the clinic (an address that has not got the password wrong) signs in at once.
    assert login(browser(app, "192.0.2.50"), "admin@clinic.test", PASSWORD).status_code == 302
    assert login(browser(app, "2001:db8:1:2::50"), "admin@clinic.test", PASSWORD).status_code == 302
    # An address that mistyped once waits with the account, a minute at most, then gets in.
    typo = browser(app, "192.0.2.60")
    assert login(typo, "admin@clinic.test", "admin password?").status_code == 401
    waiting = login(typo, "admin@clinic.test", PASSWORD)
    assert waiting.status_code == 429 and int(waiting.headers["Retry-After"]) <= 60
    clock.advance(seconds=int(waiting.headers["Retry-After"]))
    assert login(typo, "admin@clinic.test", PASSWORD).status_code == 302


def test_one_address_guessing_at_many_accounts_is_slowed_down(app, clock, sessions):
    guesser = browser(app, "203.0.113.77")
    for n in range(5):
        assert login(guesser, f"user{n}@clinic.test", "password1").status_code == 401
    assert login(guesser, "user5@clinic.test", "password1").status_code == 429
    # Every address of an IPv6 /64 counts as one: a new address there is no way around the wait.
    for n in range(5):
        assert login(browser(app, f"2001:db8:aa:bb::{n + 1}"), f"v6-{n}@clinic.test", "x").status_code == 401
    assert login(browser(app, "2001:db8:aa:bb::ffff"), "v6-9@clinic.test", "x").status_code == 429
    assert login(browser(app, "2001:db8:aa:cc::1"), "v6-9@clinic.test", "x").status_code == 401  # another /64


def test_colleagues_signing_in_behind_one_address_do_not_use_up_its_attempts(app, clock, sessions):
    for n in range(4):
        make_user(sessions, f"nurse{n}@clinic.test")
    clinic = "192.0.2.10"
    for n in range(4):
        assert login(browser(app, clinic), f"nurse{n}@clinic.test", "typo typo").status_code == 401
    for n in range(4):
        assert login(browser(app, clinic), f"nurse{n}@clinic.test").status_code == 302
    assert login(browser(app, clinic), "nurse0@clinic.test", "typo again").status_code == 401  # the fifth failure
    assert login(browser(app, clinic), "nurse1@clinic.test").status_code == 429  # now the address waits


def test_the_failures_are_forgotten_fifteen_minutes_after_the_last(app, clock, sessions):
    make_user(sessions, "a@clinic.test")
    guesser = browser(app, "203.0.113.9")
    for _ in range(5):
        login(guesser, "a@clinic.test", "wrong password")
    clock.advance(minutes=15, seconds=1)
    for _ in range(5):
        assert login(guesser, "a@clinic.test", "wrong password").status_code == 401
    assert login(guesser, "a@clinic.test", PASSWORD).status_code == 429


@pytest.mark.redis
def test_every_web_process_counts_the_same_failures_through_redis(settings, sessions, clock):
    from reminders.web import create_app
    from reminders.web.rate_limits import Throttle

    run = uuid.uuid4()  # the keys stay in Redis for a while: this run's own
    email, address = f"{run.hex[:12]}@clinic.test", "10.{}.{}.{}".format(*run.bytes[:3])
    make_user(sessions, email)
    first, second = (create_app(settings, {"TESTING": True, "CLOCK": clock}) for _ in range(2))
    for app in (first, second):
        app.extensions["reminders.sign_in_throttle"] = Throttle(REDIS_URL)  # as with REDIS_URL set
    for n in range(5):
        assert login(browser(first if n % 2 else second, address), email, "wrong password").status_code == 401
    assert login(browser(first, address), email, PASSWORD).status_code == 429
    assert login(browser(second, address), email, PASSWORD).status_code == 429
    assert first.extensions["reminders.sign_in_throttle"].local._state == {}  # nothing counted in the process
    assert login(browser(second, "192.0.2.99"), email, PASSWORD).status_code == 302


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
