"""Templates safe by construction: a template that would fail for some patient, or run without end,
is refused at save; one that gets into the database anyway is cut off at send time, the default
text goes instead and admins see the template flagged; previews cannot starve the webhooks."""
from __future__ import annotations

import re
import threading
import time

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from reminders.celery_app import make_celery
from reminders.models import OutboxMessage, TemplateVersion
from reminders.pipeline import run_pass
from reminders.rendering import RenderLimitExceeded, TemplateStore, render, sample_context
from reminders.web.staff import template_checks
from tests.conftest import at
from tests.fixtures.staff import META_TOKEN, PASSWORD, TOKEN, make_user, post_form
from tests.fixtures.twoway import BASE, PHONE, Twilio, answer
from tests.helpers import book

SMS = "first_induction_72h.sms.j2"
NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
SILENT_LOOPS = ("{% set l = range(100000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}"
                "Hi {{ patient.first_name }}")
VISIT = "2026-12-10T10:00:00-05:00"
REMINDERS_DUE = "2026-12-07T10:00:00-05:00"


def save(client, source: str, name: str = SMS):
    return post_form(client, f"/admin/templates/{name}", {"source": source}, token_from=f"/admin/templates/{name}")


def saved_versions(sessions) -> list[TemplateVersion]:
    with sessions() as session:
        return session.scalars(select(TemplateVersion)).all()


# ---------------------------------------------------------------- refused at save

def test_a_template_that_needs_a_last_name_is_refused_at_save(admin_client, sessions):
    response = save(admin_client, "Hi {{ patient.first_name }} {{ patient.last_name[0] }}.,\nsee you soon")
    assert response.status_code == 422
    assert "line 1:" in response.text and "no last name" in response.text
    assert saved_versions(sessions) == []


def test_a_condition_on_the_name_that_divides_by_zero_for_others_is_refused(admin_client, sessions):
    source = ("Hi {{ patient.first_name }}\n"
              "{% if patient.first_name == 'Alex' %}see you{% else %}{{ 100 // (visit.number - visit.number) }}{% endif %}")
    response = save(admin_client, source)
    assert response.status_code == 422
    assert "line 2:" in response.text and "ZeroDivisionError" in response.text
    assert saved_versions(sessions) == []


def test_names_in_other_scripts_and_every_visit_are_tried(settings):
    store = TemplateStore(settings.templates_dir)
    latin_only = "Hi {{ patient.first_name.encode('ascii').decode() }}"
    problem = template_checks.check(store, settings, SMS, latin_only)
    assert problem is not None and "Cyrillic" in problem.reason
    last_of_eight = "{{ 10 // (8 - visit.number) if visit.kind == 'induction' else '' }} see you"
    problem = template_checks.check(store, settings, "induction_24h.sms.j2", last_of_eight)
    assert problem is not None and "infusion 8 of 8" in problem.reason


@pytest.mark.parametrize("source", [NESTED_LOOPS, SILENT_LOOPS, "{{ 'x' * 10000000 }}",
                                    "{{ 'x'|center(1000000000) }}", "{{ 9 ** 9 ** 9 }}",
                                    "{{ '%01000000d'|format(1) }}"])
def test_a_runaway_template_is_refused_at_save_quickly(admin_client, sessions, source):
    started = time.monotonic()
    response = save(admin_client, source)
    took = time.monotonic() - started
    assert response.status_code == 422, source
    # The reason names the line when the budget runs out inside the template's own code; always the
    # limit (time or size: which comes first depends on the machine's speed).
    assert "line 1:" in response.text or "longer than" in response.text or "more than" in response.text
    assert took < 60, f"the check took {took:.1f} s"  # a bound on a hang: the check itself stops at 2 s
    assert saved_versions(sessions) == []


def test_a_render_is_cut_off_after_its_time_limit(settings):
    store = TemplateStore(settings.templates_dir)
    started = time.monotonic()
    with pytest.raises(RenderLimitExceeded):
        store.environment.from_string(SILENT_LOOPS).render(**sample_context(settings))
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------- forced into the database

CUT_OFF = ("longer than 200 ms", "more than 100000 characters")


def test_a_runaway_template_forced_into_the_database_is_cut_off_and_the_default_goes(
        settings, sessions, session, admin_client):
    book(session, starts_at=VISIT)
    with sessions() as db:
        db.add(TemplateVersion(name=SMS, source=NESTED_LOOPS, active=True, created_by="someone with SQL"))
        db.commit()
    started = time.monotonic()
    summary = run_pass(settings, at(REMINDERS_DUE), sessions=sessions)
    took = time.monotonic() - started
    assert summary["sent"] == 1 and took < 60, (summary, took)  # cut off, not hung

    row = session.scalar(select(OutboxMessage).where(OutboxMessage.rule == "first_induction_72h"))
    with sessions() as fresh:  # what the default file says for the same patient and visit
        expected_tail = render(TemplateStore(settings.templates_dir), SMS, _context_for(settings, fresh, row))
    assert row.status == "sent" and row.body.endswith(expected_tail) and "xxxx" not in row.body

    flagged = saved_versions(sessions)[0]
    # Cut off by the time budget or the size limit, whichever the machine's speed reaches first.
    assert flagged.failed_at is not None and any(limit in flagged.failure for limit in CUT_OFF), flagged.failure
    page = admin_client.get("/admin/templates/")
    assert 'id="failing-templates"' in page.text and SMS in page.text and "failed when sent" in page.text
    assert flagged.failure in admin_client.get(f"/admin/templates/{SMS}").text


def _context_for(settings, session, row):
    from reminders.models import Appointment, Patient
    from reminders.rendering import message_context

    appointment = session.get(Appointment, row.appointment_id)
    return message_context(settings, session.get(Patient, row.patient_id), appointment,
                           appointment.course.induction_sessions_planned)


def test_a_reply_template_that_fails_falls_back_to_the_default_and_is_flagged(web, twilio, booked, sessions):
    with sessions() as db:
        db.add(TemplateVersion(name="reply_confirmed.sms.j2", source="{{ patient.last_name[9] }}", active=True))
        db.commit()
    reply = answer(twilio.sms("C"))
    assert "confirmed" in reply.lower()
    assert saved_versions(sessions)[0].failed_at is not None


def test_the_worker_has_task_time_limits(settings):
    app = make_celery(settings)
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit


# ---------------------------------------------------------------- previews cannot starve webhooks

def test_previews_over_the_limit_are_refused_at_once():
    release = threading.Event()
    holders = [threading.Thread(target=template_checks.run_limited, args=(release.wait,))
               for _ in range(template_checks.PREVIEW_SLOTS)]
    for holder in holders:
        holder.start()
    try:
        deadline = time.monotonic() + 60
        while template_checks._slots._value and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(template_checks.PreviewBusy):
            template_checks.run_limited(lambda: None)
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        for holder in holders:
            holder.join()
    assert template_checks.run_limited(lambda: "free again") == "free again"


@pytest.fixture
def served(two_way):
    from reminders.web import create_app

    # A real threaded server, as waitress serves the app: webhooks and previews share its threads.
    app = create_app(two_way, {"TESTING": True, "SESSION_COOKIE_SECURE": False})  # plain http on loopback
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_heavy_previews_do_not_delay_a_crisis_text(served, two_way, booked, sessions):
    make_user(sessions, "admin@clinic.test", "admin")
    browser = requests.Session()
    token = TOKEN.search(browser.get(f"{served}/login").text).group(1)
    signed_in = browser.post(f"{served}/login", data={"email": "admin@clinic.test", "password": PASSWORD,
                                                      "csrf_token": token}, allow_redirects=False)
    assert signed_in.status_code == 302
    editor = browser.get(f"{served}/admin/templates/{SMS}").text
    csrf = (META_TOKEN.search(editor) or TOKEN.search(editor)).group(1)

    def crisis_text() -> tuple[requests.Response, float]:
        form = {**Twilio.sms_form("i want to end it all tonight", from_=PHONE), "AccountSid": two_way.twilio_account_sid}
        signature = RequestValidator(two_way.twilio_auth_token).compute_signature(BASE + "/twilio/sms", form)
        started = time.monotonic()
        response = requests.post(f"{served}/twilio/sms", data=form, headers={"X-Twilio-Signature": signature},
                                 timeout=60)
        return response, time.monotonic() - started

    _quiet, alone = crisis_text()
    statuses: list[int] = []
    go = threading.Barrier(5)

    def heavy_preview():
        go.wait()
        response = browser.post(f"{served}/admin/templates/{SMS}/preview", json={"source": NESTED_LOOPS},
                                headers={"X-CSRFToken": csrf}, timeout=60)
        statuses.append(response.status_code)

    previews = [threading.Thread(target=heavy_preview) for _ in range(4)]
    for preview in previews:
        preview.start()
    go.wait()
    crisis, took = crisis_text()
    for preview in previews:
        preview.join(60)
    assert crisis.status_code == 200 and "988" in crisis.text
    assert took < 15, f"the crisis text waited {took:.1f} s"  # Twilio gives a webhook 15 s
    assert sorted(set(statuses)) <= [422, 503] and len(statuses) == 4, statuses
    print(f"crisis answer in {took:.2f} s beside 4 heavy previews (answers {sorted(statuses)}), {alone:.2f} s alone")


def test_a_busy_preview_answers_503_without_waiting(admin_client, monkeypatch):
    def busy(*_args):
        raise template_checks.PreviewBusy("busy")

    monkeypatch.setattr(template_checks, "run_limited", busy)
    token = re.search(r'name="csrf-token" content="([^"]+)"', admin_client.get(f"/admin/templates/{SMS}").text)
    response = admin_client.post(f"/admin/templates/{SMS}/preview", json={"source": "hi"},
                                 headers={"X-CSRFToken": token.group(1)})
    assert response.status_code == 503 and response.get_json()["busy"] is True
    assert response.headers["Retry-After"]


def test_a_flagged_template_is_not_tried_again_until_it_is_fixed(settings, sessions, session, admin_client):
    book(session, starts_at=VISIT, email="maya@example.org", channel="both")
    with sessions() as db:
        db.add(TemplateVersion(name=SMS, source=NESTED_LOOPS, active=True, created_by="someone with SQL"))
        db.commit()
    assert run_pass(settings, at(REMINDERS_DUE), sessions=sessions)["sent"] == 2
    with sessions() as db:
        store = TemplateStore(settings.templates_dir, db)
        assert store.source(SMS) == store.default_source(SMS)  # the default, without spending a render on it
    editor = admin_client.get(f"/admin/templates/{SMS}").text
    assert "range(100000)" in editor and 'id="send-failure"' in editor  # shown to be fixed
