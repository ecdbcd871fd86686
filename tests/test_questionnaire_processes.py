"""Done when: "an item-9 answer of 1 on the phone page brings on-call SMS and email within 60 s".

As tests/test_processes.py runs the clinic's deployment: `reminders web` and `celery -A worker
worker` as real subprocesses, a Redis server of the module's own, a PostgreSQL schema of its own,
the fake Twilio REST server and an SMTP server. The visit goes in through the JSON API, one
`reminders tick` texts the questionnaire link, and Chromium on a phone-sized screen opens it from
the text and answers up to item 9 = 1. What staff got is read where it arrives.
"""
from __future__ import annotations

import re
import shutil
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.browser.serving import CHROMIUM, chromium
from tests.fakes.smtp_server import FakeSMTP, free_port
from tests.fakes.twilio_server import FakeTwilio
from tests.processes import (CRISIS_WAIT, HOST, START_WAIT, STAFF_EMAIL, STAFF_PHONE, WEB_COMMAND,
                                  WORKER_COMMAND, Process, RedisServer, _healthy, _teardown_on_sigterm,
                                  clinic_environment, command, postgres_schema, run_cli, utcnow, wait_for)

pytestmark = [
    pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes, pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium"),
]
PATIENT_PHONE = "+16175550142"


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched

# The link goes 48 h before the first infusion (MEASURES_HOURS_BEFORE): a visit 47 h ahead has it due now.
VISIT_AHEAD = timedelta(hours=47)
PHONE_SCREEN = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """`reminders web` and one worker (no beat: the test runs the pass that texts the link)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: this test runs a Redis server of its own")
    base = tmp_path_factory.mktemp("questionnaire-processes")
    with _teardown_on_sigterm(), postgres_schema() as database_url, FakeTwilio() as twilio, FakeSMTP() as smtp:
        redis_server = RedisServer(base)
        web_url = f"http://{HOST}:{free_port()}"
        env = clinic_environment(base, database_url, redis_server.url, web_url, twilio, smtp)
        env["MEASURES_ENABLED"] = "true"
        web = Process("web", command(WEB_COMMAND, host=HOST, port=web_url.rsplit(":", 1)[1]), env, base / "web.log")
        worker = Process("worker", command(WORKER_COMMAND, concurrency=2), env, base / "worker.log")
        try:
            redis_server.start()
            run_cli(env, "init")
            web.start()
            worker.start()
            token = run_cli(env, "token", "create", "--name", "questionnaire-test").strip().splitlines()[-1]
            wait_for(lambda: _healthy(web, web_url), START_WAIT, "the web process to answer /healthz")
            worker.wait_for_log(" ready.")
            yield {"env": env, "web_url": web_url, "api_token": token, "twilio": twilio, "smtp": smtp,
                   "database_url": database_url, "processes": (web, worker, redis_server)}
        except BaseException:
            for process in (web, worker, redis_server):
                print(f"----- {process.name} -----\n{process.log()[-20000:]}")
            raise
        finally:
            for process in (worker, web, redis_server):
                process.stop()


def book_first_infusion(clinic) -> None:
    starts = (utcnow() + VISIT_AHEAD).replace(microsecond=0).isoformat()
    response = requests.post(clinic["web_url"] + "/api/v1/appointments", timeout=30,
                             headers={"Authorization": f"Bearer {clinic['api_token']}"}, json={
                                 "external_id": "q-visit-1", "patient_external_id": "q-patient-1",
                                 "first_name": "Robin", "last_name": "Ames", "phone": PATIENT_PHONE,
                                 "timezone": "America/New_York", "preferred_channel": "sms",
                                 "kind": "induction", "starts_at": starts, "location": "Suite 200"})
    assert response.status_code == 201, response.text


def texted_link(clinic) -> str:
    def link():
        for message in list(clinic["twilio"].messages):
            found = re.search(r"https?://\S+/q/[A-Za-z0-9_-]+", message["body"])
            if message["to"] == PATIENT_PHONE and found:
                return found.group(0)
        return None

    return wait_for(link, CRISIS_WAIT, "the questionnaire link texted to the patient")


def test_item_9_answered_1_on_the_phone_page_reaches_the_on_call_phone_and_email_within_60_s(clinic, browser):  # noqa: F811
    from playwright.sync_api import expect

    book_first_infusion(clinic)
    run_cli(clinic["env"], "tick", "--now", utcnow().isoformat())
    link = texted_link(clinic)
    assert link.startswith(clinic["web_url"] + "/q/")

    context = browser.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True,
                                  timezone_id="America/New_York")
    context.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    try:
        page = context.new_page()
        page.goto(link)
        expect(page.get_by_role("heading", name="Hello Robin")).to_be_visible()
        page.get_by_role("link", name="Start").tap()
        for number in range(1, 9):
            expect(page.locator(".progress")).to_contain_text(f"Question {number} of 9")
            page.get_by_role("button", name="Not at all", exact=True).tap()
        expect(page.locator(".progress")).to_contain_text("Question 9 of 9")
        expect(page.locator("legend")).to_contain_text("Thoughts that you would be better off dead")
        answered = utcnow()
        started = time.monotonic()
        page.get_by_role("button", name="Several days", exact=True).tap()
        panel = page.get_by_role("alert")
        expect(panel).to_contain_text("call or text 988")
        expect(panel).to_contain_text("If you are in danger, call 911.")
        expect(panel).to_contain_text("Your care team has been told")
    finally:
        context.close()

    def staff_text():
        return [m for m in list(clinic["twilio"].messages) if m["to"] == STAFF_PHONE]

    def staff_mail():
        return [m for m in list(clinic["smtp"].messages) if STAFF_EMAIL in m.rcpt_tos]

    texts = wait_for(staff_text, CRISIS_WAIT - (time.monotonic() - started), "the on-call SMS")
    sms_after = (texts[0]["received_at"] - answered).total_seconds()
    mails = wait_for(staff_mail, CRISIS_WAIT - (time.monotonic() - started), "the on-call email")
    mail_after = time.monotonic() - started
    assert sms_after < CRISIS_WAIT and mail_after < CRISIS_WAIT

    sms = texts[0]["body"]
    assert sms.startswith("URGENT: self-harm answer on a questionnaire")
    assert "Robin" not in sms and "Several days" not in sms and "better off dead" not in sms  # a lock screen
    mail = mails[0].message
    assert "self-harm answer on a questionnaire" in mail["Subject"]
    body = mail.get_body(("plain", "html")).get_content()
    assert "Robin Ames" in body and "PHQ-9 item 9" in body and '"Several days" (1)' in body
    assert len(texts) == 1 and len(mails) == 1

    engine = create_engine(clinic["database_url"])
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT e.reason, q.safety_raised, q.status FROM escalations e "
                "JOIN questionnaires q ON q.escalation_id = e.id")).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("self_harm_answer", True, "completed")
    print(f"\n[processes] questionnaire item 9 = 1 on the phone page: on-call SMS after {sms_after:.1f} s, "
          f"email after {mail_after:.1f} s")
