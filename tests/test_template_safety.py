"""Templates safe by construction: a template that would fail for some patient, or run without end,
is refused at save; one that gets into the database anyway is cut off at send time, the default
text goes instead and admins see the template flagged; previews cannot starve the webhooks."""
from __future__ import annotations

import re
import threading
import time
import tracemalloc

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
from tests.fixtures.staff import META_TOKEN, PASSWORD, TOKEN, make_user, mfa_code, post_form
from tests.fixtures.twoway import BASE, PHONE, Twilio, answer
from tests.helpers import book

SMS = "first_induction_72h.sms.j2"
NESTED_LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
SILENT_LOOPS = ("{% set l = range(100000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}"
                "Hi {{ patient.first_name }}")
VISIT = "2026-12-10T10:00:00-05:00"
REMINDERS_DUE = "2026-12-07T10:00:00-05:00"


# Each would build, in one step, far more than any message: refused before the step runs (the
# first grew the web process by 381 MB while its preview ran). (template, what the admin is told)
HUGE_IN_ONE_STEP = [
    ("{{ ('a'*20000).replace('a', 'a'*20000)|length }}", "'replace' would make something longer than 100000"),
    ("{{ ('a'*20000).join('a'*20000)|length }}", "'join' would make something longer than 100000"),
    ("{{ ('a'*20000)|join('a'*20000)|length }}", "the filter 'join' would make something longer than 100000"),
    ("{{ ('{0}'*20000).format('a'*20000)|length }}", "'format' would make something longer than 100000"),
    ("{{ ('{:>99999}'*20).format(*('a'*20))|length }}", "'format' would make something longer than 100000"),
    ("{{ (('%s'*20000) % (('a'*20000,)*20000))|length }}", "'%' would make something longer than 100000"),
    ("{{ ('%s'*20000)|format(*(['a'*20000]*20000))|length }}", "the filter 'format' would make something longer"),
    ("{{ ('a'.ljust(99999) ~ 'b'.rjust(99999) ~ 'c'|center(99999))|length }}", "'~' would make something longer"),
    ("{% set line = 'x'*1000 %}{{ ([line]*1000)|string|length }}", "the filter 'string' would make something longer"),
    ("{% set a = 'x'*100000 %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}{{ [b, b, b, b, b, b, b, b, b, b] }}",
     "printing a value would make something longer than 100000"),
    ("{{ ('\t'*50000).expandtabs(99999)|length }}", "'expandtabs' would make something longer than 100000"),
    ("{{ ('x'.encode() * 10**9)|length }}", "a repetition longer than 100000 is not allowed"),
    ("{% set l = ['x'*1000] %}{% for i in range(30) %}{{ l.extend(l) }}{% endfor %}",
     "access to attribute 'extend' of 'list' object is unsafe"),
]


def save(client, source: str, name: str = SMS):
    return post_form(client, f"/admin/templates/{name}", {"source": source}, token_from=f"/admin/templates/{name}")


def saved_versions(sessions) -> list[TemplateVersion]:
    with sessions() as session:
        return session.scalars(select(TemplateVersion)).all()


# ---------------------------------------------------------------- refused at save

def test_a_template_that_needs_a_last_name_is_refused_at_save(admin_client, sessions):
    response = save(admin_client, "Hi {{ patient.first_name }} {{ patient.last_name[0] }}.,\nsee you soon")
    assert response.status_code == 422
    assert "Line 1: this picks a letter or item that is not there" in response.text and "no last name" in response.text
    assert saved_versions(sessions) == []


def test_a_condition_on_the_name_that_divides_by_zero_for_others_is_refused(admin_client, sessions):
    source = ("Hi {{ patient.first_name }}\n"
              "{% if patient.first_name == 'Alex' %}see you{% else %}{{ 100 // (visit.number - visit.number) }}{% endif %}")
    response = save(admin_client, source)
    assert response.status_code == 422
    assert "Line 2: this divides by zero" in response.text and "ZeroDivisionError" not in response.text
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
                                    "{{ '%01000000d'|format(1) }}", HUGE_IN_ONE_STEP[0][0]])
def test_a_runaway_template_is_refused_at_save_quickly(admin_client, sessions, source):
    started = time.monotonic()
    response = save(admin_client, source)
    took = time.monotonic() - started
    assert response.status_code == 422, source
    # The reason names the line when the budget runs out inside the template's own code; always the
    # limit (time or size: which comes first depends on the machine's speed).
    assert "Line 1:" in response.text or "longer than" in response.text or "more than" in response.text
    assert took < 60, f"the check took {took:.1f} s"  # a bound on a hang: the check itself stops at 2 s
    assert saved_versions(sessions) == []


def test_a_render_is_cut_off_after_its_time_limit(settings):
    store = TemplateStore(settings.templates_dir)
    started = time.monotonic()
    with pytest.raises(RenderLimitExceeded):
        store.environment.from_string(SILENT_LOOPS).render(**sample_context(settings))
    assert time.monotonic() - started < 2


def preview(client, source: str, name: str = SMS):
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get(f"/admin/templates/{name}").text).group(1)
    return client.post(f"/admin/templates/{name}/preview", json={"source": source}, headers={"X-CSRFToken": token})


@pytest.mark.parametrize("source, told", HUGE_IN_ONE_STEP, ids=[told.split(" would")[0] for _, told in HUGE_IN_ONE_STEP])
def test_a_preview_that_would_build_something_huge_answers_at_once_with_a_sentence(admin_client, source, told):
    tracemalloc.start()
    try:
        started = time.monotonic()
        response = preview(admin_client, source)
        took = time.monotonic() - started
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422, response.get_json()
    answer = response.get_json()
    assert answer["ok"] is False and answer["line"] == 1 and told in answer["reason"], answer
    assert answer["message"].startswith("Line 1: ") and "Error" not in answer["message"]  # a sentence, not a class
    assert peak < 40 * 2**20, f"the preview took {peak / 2**20:.0f} MB"
    assert took < 5, f"the preview took {took:.1f} s"


def test_templates_that_use_the_same_steps_in_moderation_still_render(admin_client, settings):
    source = ("Hi {{ patient.first_name|upper }} {{ patient.last_name|center(12)|trim }}: "
              "{{ '{} at {}'.format(visit.date, visit.time) }}, {{ '%s of %s' % (visit.number, visit.series_length) }}"
              " ({{ [visit.kind, visit.location]|join(', ') }}). {{ clinic.phone.replace(' ', '') }}"
              " {{ ('-' * 3) ~ visit.number|string ~ ('-' * 3) }} {{ 'ok'.ljust(3) ~ '.' }}"
              " {{ [patient.first_name] }} {{ '%05d'|format(42) }} {{ 'a\tb'.expandtabs(2) }}")
    response = preview(admin_client, source)
    assert response.status_code == 200, response.get_json()
    text = response.get_json()["text"]
    assert text.startswith("Hi ALEX Rivera: ") and "3 of 6" in text and "(induction, Suite 200)" in text
    assert "---3---" in text and "ok ." in text and "['Alex']" in text and "00042" in text
    shipped = TemplateStore(settings.templates_dir)
    for name in shipped.all_names():  # and every message the clinic sends, as shipped
        assert preview(admin_client, shipped.default_source(name), name).status_code == 200, name


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
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/login/code"  # admins: a code too
    token = TOKEN.search(browser.get(f"{served}/login/code").text).group(1)
    signed_in = browser.post(f"{served}/login/code", data={"code": mfa_code("admin@clinic.test"), "csrf_token": token},
                             allow_redirects=False)
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
