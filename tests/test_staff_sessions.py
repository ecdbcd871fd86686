"""Server-side sessions (a copied cookie dies with sign-out and with a password change), and
delays after wrong passwords that parallel guesses cannot get past, on sign-in and on a change
of password."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from reminders.models import AuditEntry, StaffSession, StaffUser
from tests.fixtures.staff import PASSWORD, csrf_token, login, make_user, post_form

NEW_PASSWORD = "a brand new passphrase"


def copy_of(app, client):
    """A second browser holding the same session cookie (stolen, or copied off a shared PC)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


@pytest.fixture
def signed_in(app, sessions):
    make_user(sessions, "a@clinic.test")
    client = app.test_client()
    assert login(client, "a@clinic.test").status_code == 302
    return client


def test_a_copied_cookie_stops_working_after_sign_out(app, signed_in, sessions):
    thief = copy_of(app, signed_in)
    assert thief.get("/").status_code == 200
    assert post_form(signed_in, "/logout").status_code == 302
    assert thief.get("/").status_code == 302
    assert thief.get("/patients/").headers["Location"].startswith("/login")
    with sessions() as session:
        assert session.scalar(select(StaffSession)).revoked_at is not None


def test_a_copied_cookie_stops_working_after_a_password_change(app, signed_in, sessions):
    thief = copy_of(app, signed_in)
    other_browser = app.test_client()
    assert login(other_browser, "a@clinic.test").status_code == 302
    assert thief.get("/").status_code == other_browser.get("/").status_code == 200

    changed = post_form(signed_in, "/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                         "confirm_password": NEW_PASSWORD},
                        token_from="/account/password")
    assert changed.status_code == 302
    assert signed_in.get("/").status_code == 200  # the one who changed it stays signed in
    assert thief.get("/").status_code == 302
    assert other_browser.get("/").status_code == 302
    assert login(app.test_client(), "a@clinic.test", PASSWORD).status_code == 401
    assert login(app.test_client(), "a@clinic.test", NEW_PASSWORD).status_code == 302
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "change_password"))
        assert entry.detail["sessions_ended"] == 2


def test_a_password_change_needs_the_current_password(app, signed_in):
    wrong = post_form(signed_in, "/account/password", {"current_password": "not it at all", "new_password": NEW_PASSWORD,
                                                       "confirm_password": NEW_PASSWORD}, token_from="/account/password")
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    short = post_form(signed_in, "/account/password", {"current_password": PASSWORD, "new_password": "short",
                                                       "confirm_password": "short"}, token_from="/account/password")
    assert short.status_code == 422 and "at least" in short.text
    assert signed_in.get("/").status_code == 200


def test_a_deactivated_account_loses_its_sessions(app, signed_in, admin_client, sessions):
    with sessions() as session:
        user_id = session.scalar(select(StaffUser.id).where(StaffUser.email == "a@clinic.test"))
    post_form(admin_client, f"/admin/users/{user_id}/active", {"active": "0"}, token_from="/admin/users")
    with sessions() as session:
        rows = session.scalars(select(StaffSession).where(StaffSession.user_id == user_id)).all()
        assert rows and all(row.revoked_at is not None for row in rows)
    assert signed_in.get("/").status_code == 302


def change(client, current: str, new: str = NEW_PASSWORD):
    return post_form(client, "/account/password", {"current_password": current, "new_password": new,
                                                   "confirm_password": new}, token_from="/account/password")


def test_thirty_wrong_current_passwords_get_five_checked_then_each_waits_longer(signed_in, monkeypatch, clock):
    checked = count_checks(monkeypatch)
    answers = [change(signed_in, f"guess {n}") for n in range(30)]
    assert [a.status_code for a in answers] == [422] * 5 + [429] * 25
    assert checked[0] == 5
    assert "Too many attempts: try again in 1 second." in answers[-1].text and answers[-1].headers["Retry-After"] == "1"
    assert change(signed_in, PASSWORD).status_code == 429  # the right one too, until the wait is over
    clock.advance(seconds=1)
    assert change(signed_in, "guess 30").status_code == 422
    assert "try again in 2 seconds" in change(signed_in, PASSWORD).text
    clock.advance(seconds=2)
    assert change(signed_in, PASSWORD).status_code == 302  # a delay, not a lock
    assert signed_in.get("/").status_code == 200


def test_a_password_change_waits_per_account_not_for_everyone(app, signed_in, sessions, monkeypatch):
    for n in range(6):
        change(signed_in, f"guess {n}")
    assert change(signed_in, PASSWORD).status_code == 429
    make_user(sessions, "b@clinic.test")
    colleague = app.test_client()  # the same address: a colleague at the clinic
    assert login(colleague, "b@clinic.test").status_code == 302
    assert change(colleague, PASSWORD).status_code == 302


def count_checks(monkeypatch) -> list[int]:
    from reminders.web.staff import account, auth

    checked, lock = [0], threading.Lock()
    real_check = auth.password_matches

    def counting_check(user, password):
        with lock:
            checked[0] += 1
        return real_check(user, password)

    monkeypatch.setattr(auth, "password_matches", counting_check)
    monkeypatch.setattr(account, "password_matches", counting_check)
    return checked


@pytest.mark.postgres
def test_forty_parallel_guesses_from_one_address_get_only_five_checked(pg_settings, monkeypatch, clock):
    from reminders.db import session_factory
    from reminders.web import create_app

    app = create_app(pg_settings, {"TESTING": True, "CLOCK": clock})
    make_user(session_factory(pg_settings.effective_database_url), "a@clinic.test")
    checked = count_checks(monkeypatch)
    clients = [app.test_client() for _ in range(40)]
    tokens = [csrf_token(client) for client in clients]

    def guess(index: int) -> int:
        return clients[index].post("/login", data={"email": "a@clinic.test", "password": f"guess {index}",
                                                   "csrf_token": tokens[index]}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert checked[0] == 5, f"{checked[0]} passwords checked"
    assert statuses.count(401) == 5 and statuses.count(429) == 35
    assert login(app.test_client(), "a@clinic.test").status_code == 429  # the right one too, from there
    assert checked[0] == 5
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.50"
    assert login(elsewhere, "a@clinic.test").status_code == 302  # the account itself is never locked
    with session_factory(pg_settings.effective_database_url)() as session:
        assert session.scalar(select(StaffUser)).locked_until is None
